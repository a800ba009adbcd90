//! The `.tb` file format: a compact header, then the range-coded payload.
//!
//! Layout (all integers little-endian or unsigned LEB128 varints):
//!
//! | field               | encoding                                         |
//! |---------------------|--------------------------------------------------|
//! | magic               | `b"TENB"`                                        |
//! | format version      | `u16` LE, currently [`FORMAT_VERSION`] (1)       |
//! | flags               | `u8`; bit 0: an adapter id follows; bit 1: a lossy note follows; others 0 |
//! | model name          | `u8` length + UTF-8 bytes (at most 255)          |
//! | adapter id          | only if flag bit 0: `u8` length + UTF-8 bytes    |
//! | lossy note          | only if flag bit 1: `u8` length + UTF-8 bytes    |
//! | model fingerprint   | 16 bytes (SHA-256 prefix, [`ID_LEN`])            |
//! | tokenizer hash      | 16 bytes (SHA-256 prefix)                        |
//! | chunk tokens        | varint (`u32`)                                   |
//! | max batch           | varint (`u32`)                                   |
//! | token count         | varint (`u64`)                                   |
//! | original length     | varint (`u64`)                                   |
//! | checksum            | 8 bytes: SHA-256 of the original bytes, truncated|
//! | payload length      | varint (`u64`)                                   |
//! | CRC-32              | `u32` LE: CRC-32 (IEEE) of every byte above, then of the payload |
//! | payload             | `payload length` bytes                           |
//!
//! With a 20-byte model name the header is about 120 bytes, 64 of them the two
//! hashes. The CRC covers the payload as well as the header, so a damaged file
//! is rejected before any model is run; the SHA-256 checksum of the original
//! bytes then confirms that decoding reproduced them exactly ([`verify`]).
//!
//! [`read_container`] never panics: any input gives a header and payload or a
//! [`ContainerError`].

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The first four bytes of every `.tb` file.
pub const MAGIC: [u8; 4] = *b"TENB";

/// The format version this crate writes and reads.
pub const FORMAT_VERSION: u16 = 1;

/// The longest model name or adapter id, in bytes of UTF-8.
pub const MAX_STRING_LEN: usize = 255;

/// Flag bit: an adapter id follows the model name.
const FLAG_ADAPTER: u8 = 1;

/// Flag bit: a lossy note follows (the payload is a rewrite, not the input).
const FLAG_LOSSY: u8 = 2;

/// Bytes of the model fingerprint and tokenizer hash kept in a header: the
/// first 128 bits of their SHA-256, plenty to tell model files apart while
/// keeping the header small (it matters for short texts).
pub const ID_LEN: usize = 16;

/// Everything needed to decode a `.tb` payload and to check the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version; [`write_container`] accepts only [`FORMAT_VERSION`].
    pub format_version: u16,
    /// Human-readable name of the model that coded the payload (at most 255
    /// bytes of UTF-8).
    pub model_name: String,
    /// Fingerprint of the exact model weights; decoding needs the same model.
    pub model_fingerprint: [u8; ID_LEN],
    /// Hash of the tokenizer; decoding needs the same tokenizer.
    pub tokenizer_hash: [u8; ID_LEN],
    /// Optional adapter (e.g. a fine-tune) applied to the model (at most 255
    /// bytes of UTF-8).
    pub adapter_id: Option<String>,
    /// Set when the payload is a lossy rewrite of the input, not the input:
    /// what it was rewritten from and how (at most 255 bytes of UTF-8, e.g.
    /// `rewriter=qwen2.5-coder-1.5b prompt=1 n=5 seed=0 original=2048`).
    /// Decoding restores the rewrite exactly.
    pub lossy: Option<String>,
    /// Tokens per independently coded chunk.
    pub chunk_tokens: u32,
    /// Largest number of chunks run through the model in one batch.
    pub max_batch: u32,
    /// Total number of coded tokens.
    pub token_count: u64,
    /// Length in bytes of the original data.
    pub original_len: u64,
    /// [`checksum`] of the original data.
    pub checksum: [u8; 8],
}

/// Errors from reading, writing and verifying `.tb` containers.
///
/// Each message is one line that says what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContainerError {
    /// The data does not start with the `TENB` magic.
    #[error("not a tenbits .tb file (bad magic)")]
    NotATenbitsFile,
    /// The file was written in a format version this build cannot read.
    #[error("unsupported .tb format version {found} (this build reads version {supported}); use a tenbits release that supports version {found}")]
    UnsupportedVersion {
        /// The version in the file (or in the header to write).
        found: u16,
        /// The version this build supports.
        supported: u16,
    },
    /// The file ends inside the header.
    #[error(
        "the .tb file is truncated (it ends inside the {what}); get a complete copy of the file"
    )]
    Truncated {
        /// Which part of the header is cut off.
        what: &'static str,
    },
    /// The CRC-32 over header and payload does not match.
    #[error("the .tb file is corrupted (CRC-32 mismatch over header and payload); get an intact copy of the file")]
    Corrupted,
    /// The payload is shorter or longer than the header says.
    #[error("the .tb payload is {found} bytes but the header says {expected}: the file is truncated or has trailing bytes; get an intact copy of the file")]
    PayloadLength {
        /// The payload length recorded in the header.
        expected: u64,
        /// The number of bytes actually following the header.
        found: u64,
    },
    /// A header field holds a value that is not allowed.
    #[error("invalid .tb header field: {what}")]
    InvalidField {
        /// Which field, and what is wrong with it.
        what: &'static str,
    },
    /// Decoding produced a different number of bytes than the original.
    #[error("decoding produced {found} bytes but the original had {expected}: the decoder did not reproduce the original (likely a different model, ONNX Runtime build or CPU than the one that compressed it); nothing was written")]
    LengthMismatch {
        /// The original length recorded in the header.
        expected: u64,
        /// The length of the decoded data.
        found: u64,
    },
    /// Decoding produced bytes whose checksum differs from the original's.
    #[error("checksum mismatch: the decoder produced different bytes than the original (likely a different model, ONNX Runtime build or CPU than the one that compressed it); nothing was written")]
    ChecksumMismatch,
}

/// The checksum stored in [`Header::checksum`]: the first 8 bytes of the
/// SHA-256 of `data`.
pub fn checksum(data: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// Checks that `decoded` has the original's length and [`checksum`].
///
/// Call it before writing decoded output anywhere.
pub fn verify(header: &Header, decoded: &[u8]) -> Result<(), ContainerError> {
    let found = decoded.len() as u64;
    if found != header.original_len {
        return Err(ContainerError::LengthMismatch {
            expected: header.original_len,
            found,
        });
    }
    if checksum(decoded) != header.checksum {
        return Err(ContainerError::ChecksumMismatch);
    }
    Ok(())
}

/// Serialises `header` and `payload` into a complete `.tb` file.
///
/// Fails with [`ContainerError::UnsupportedVersion`] if
/// `header.format_version` is not [`FORMAT_VERSION`], and with
/// [`ContainerError::InvalidField`] if the model name or adapter id is longer
/// than [`MAX_STRING_LEN`] bytes.
pub fn write_container(header: &Header, payload: &[u8]) -> Result<Vec<u8>, ContainerError> {
    if header.format_version != FORMAT_VERSION {
        return Err(ContainerError::UnsupportedVersion {
            found: header.format_version,
            supported: FORMAT_VERSION,
        });
    }
    if header.model_name.len() > MAX_STRING_LEN {
        return Err(ContainerError::InvalidField {
            what: "model name is longer than 255 bytes",
        });
    }
    if header
        .adapter_id
        .as_ref()
        .is_some_and(|a| a.len() > MAX_STRING_LEN)
    {
        return Err(ContainerError::InvalidField {
            what: "adapter id is longer than 255 bytes",
        });
    }
    if header
        .lossy
        .as_ref()
        .is_some_and(|a| a.len() > MAX_STRING_LEN)
    {
        return Err(ContainerError::InvalidField {
            what: "lossy note is longer than 255 bytes",
        });
    }

    let mut out = Vec::with_capacity(128 + payload.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&header.format_version.to_le_bytes());
    let mut flags = 0;
    if header.adapter_id.is_some() {
        flags |= FLAG_ADAPTER;
    }
    if header.lossy.is_some() {
        flags |= FLAG_LOSSY;
    }
    out.push(flags);
    put_str(&mut out, &header.model_name);
    if let Some(adapter) = &header.adapter_id {
        put_str(&mut out, adapter);
    }
    if let Some(note) = &header.lossy {
        put_str(&mut out, note);
    }
    out.extend_from_slice(&header.model_fingerprint);
    out.extend_from_slice(&header.tokenizer_hash);
    put_varint(&mut out, u64::from(header.chunk_tokens));
    put_varint(&mut out, u64::from(header.max_batch));
    put_varint(&mut out, header.token_count);
    put_varint(&mut out, header.original_len);
    out.extend_from_slice(&header.checksum);
    put_varint(&mut out, payload.len() as u64);
    let crc = crc32_update(crc32_update(CRC_INIT, &out), payload) ^ CRC_INIT;
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Parses a `.tb` file into its header and payload (borrowed from `data`).
///
/// Checks, in order: the magic, the format version, that the header is
/// complete and well formed, that exactly `payload length` bytes follow it,
/// the CRC-32 over header and payload, and finally the field values (UTF-8
/// strings, no unknown flags, `u32` ranges). Never panics.
pub fn read_container(data: &[u8]) -> Result<(Header, &[u8]), ContainerError> {
    let mut r = Reader { data, pos: 0 };

    // Magic: a short prefix of it is a truncated file, anything else is not
    // ours.
    let magic_len = data.len().min(MAGIC.len());
    if data[..magic_len] != MAGIC[..magic_len] {
        return Err(ContainerError::NotATenbitsFile);
    }
    r.bytes::<4>("magic")?;
    let format_version = u16::from_le_bytes(r.bytes::<2>("format version")?);
    if format_version != FORMAT_VERSION {
        return Err(ContainerError::UnsupportedVersion {
            found: format_version,
            supported: FORMAT_VERSION,
        });
    }

    // Structure.
    let flags = r.bytes::<1>("flags")?[0];
    let model_name = r.str_bytes("model name")?;
    let adapter_id = if flags & FLAG_ADAPTER != 0 {
        Some(r.str_bytes("adapter id")?)
    } else {
        None
    };
    let lossy = if flags & FLAG_LOSSY != 0 {
        Some(r.str_bytes("lossy note")?)
    } else {
        None
    };
    let model_fingerprint = r.bytes::<ID_LEN>("model fingerprint")?;
    let tokenizer_hash = r.bytes::<ID_LEN>("tokenizer hash")?;
    let chunk_tokens = r.varint("chunk tokens")?;
    let max_batch = r.varint("max batch")?;
    let token_count = r.varint("token count")?;
    let original_len = r.varint("original length")?;
    let checksum = r.bytes::<8>("checksum")?;
    let payload_len = r.varint("payload length")?;
    let header_end = r.pos;
    let crc_stored = u32::from_le_bytes(r.bytes::<4>("header CRC")?);
    let payload = &data[r.pos..];

    if payload.len() as u64 != payload_len {
        return Err(ContainerError::PayloadLength {
            expected: payload_len,
            found: payload.len() as u64,
        });
    }
    let crc = crc32_update(crc32_update(CRC_INIT, &data[..header_end]), payload) ^ CRC_INIT;
    if crc != crc_stored {
        return Err(ContainerError::Corrupted);
    }

    // Values.
    if flags & !(FLAG_ADAPTER | FLAG_LOSSY) != 0 {
        return Err(ContainerError::InvalidField {
            what: "unknown flag bits are set",
        });
    }
    let model_name = utf8(model_name, "model name is not valid UTF-8")?;
    let adapter_id = adapter_id
        .map(|a| utf8(a, "adapter id is not valid UTF-8"))
        .transpose()?;
    let lossy = lossy
        .map(|a| utf8(a, "lossy note is not valid UTF-8"))
        .transpose()?;
    let chunk_tokens = u32::try_from(chunk_tokens).map_err(|_| ContainerError::InvalidField {
        what: "chunk tokens does not fit in 32 bits",
    })?;
    let max_batch = u32::try_from(max_batch).map_err(|_| ContainerError::InvalidField {
        what: "max batch does not fit in 32 bits",
    })?;

    let header = Header {
        format_version,
        model_name,
        model_fingerprint,
        tokenizer_hash,
        adapter_id,
        lossy,
        chunk_tokens,
        max_batch,
        token_count,
        original_len,
        checksum,
    };
    Ok((header, payload))
}

fn utf8(bytes: &[u8], what: &'static str) -> Result<String, ContainerError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| ContainerError::InvalidField { what })
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    // Length checked by the caller.
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// Unsigned LEB128.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A bounds-checked cursor over the input.
struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ContainerError> {
        let rest = &self.data[self.pos..];
        if rest.len() < n {
            return Err(ContainerError::Truncated { what });
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn bytes<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ContainerError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn str_bytes(&mut self, what: &'static str) -> Result<&'a [u8], ContainerError> {
        let len = self.take(1, what)?[0];
        self.take(usize::from(len), what)
    }

    /// Unsigned LEB128 of at most 10 bytes, in its shortest form.
    fn varint(&mut self, what: &'static str) -> Result<u64, ContainerError> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let b = self.take(1, what)?[0];
            let bits = u64::from(b & 0x7F);
            if i == 9 && bits > 1 {
                return Err(ContainerError::InvalidField {
                    what: "varint overflows 64 bits",
                });
            }
            v |= bits << (7 * i);
            if b & 0x80 == 0 {
                if b == 0 && i > 0 {
                    return Err(ContainerError::InvalidField {
                        what: "varint is not in its shortest form",
                    });
                }
                return Ok(v);
            }
        }
        Err(ContainerError::InvalidField {
            what: "varint is longer than 10 bytes",
        })
    }
}

const CRC_INIT: u32 = 0xFFFF_FFFF;

/// Byte-wise table for the reflected CRC-32 (IEEE 802.3, polynomial
/// `0xEDB88320`), the one used by zip, gzip and PNG.
const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// Continues a CRC-32 (pre-inverted state in, state out; XOR with
/// `CRC_INIT` at the end).
fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample_header(payload_src: &[u8]) -> Header {
        Header {
            format_version: FORMAT_VERSION,
            model_name: "SmolLM2-135M-Instruct".into(),
            model_fingerprint: [0xAB; ID_LEN],
            tokenizer_hash: [0xCD; ID_LEN],
            adapter_id: None,
            lossy: None,
            chunk_tokens: 512,
            max_batch: 16,
            token_count: 12_345,
            original_len: payload_src.len() as u64,
            checksum: checksum(payload_src),
        }
    }

    #[test]
    fn crc32_known_value() {
        assert_eq!(crc32_update(CRC_INIT, b"123456789") ^ CRC_INIT, 0xCBF4_3926);
    }

    #[test]
    fn checksum_is_sha256_prefix() {
        // SHA-256("abc") = ba7816bf 8f01cfea ...
        assert_eq!(
            checksum(b"abc"),
            [0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea]
        );
    }

    #[test]
    fn header_is_compact() {
        let h = sample_header(b"hello");
        let file = write_container(&h, &[]).unwrap();
        // 4 + 2 + 1 + 22 + 2 * ID_LEN + 2 + 1 + 2 + 1 + 8 + 1 + 4
        assert_eq!(file.len(), 80);
        let (back, payload) = read_container(&file).unwrap();
        assert_eq!(back, h);
        assert!(payload.is_empty());
    }

    #[test]
    fn roundtrip_with_adapter() {
        let mut h = sample_header(b"data");
        h.adapter_id = Some("ünïcode-adapter".into());
        h.token_count = u64::MAX;
        h.original_len = u64::MAX;
        h.chunk_tokens = u32::MAX;
        let payload = vec![1u8, 2, 3, 0, 255];
        let file = write_container(&h, &payload).unwrap();
        let (back, p) = read_container(&file).unwrap();
        assert_eq!(back, h);
        assert_eq!(p, &payload[..]);
    }

    #[test]
    fn specific_errors() {
        let h = sample_header(b"x");
        let file = write_container(&h, b"payload").unwrap();

        assert_eq!(
            read_container(b"PK\x03\x04rest"),
            Err(ContainerError::NotATenbitsFile)
        );
        assert_eq!(
            read_container(b"TE"),
            Err(ContainerError::Truncated { what: "magic" })
        );
        assert_eq!(
            read_container(b""),
            Err(ContainerError::Truncated { what: "magic" })
        );

        let mut v2 = file.clone();
        v2[4] = 2;
        assert_eq!(
            read_container(&v2),
            Err(ContainerError::UnsupportedVersion {
                found: 2,
                supported: 1
            })
        );

        assert_eq!(
            read_container(&file[..40]),
            Err(ContainerError::Truncated {
                what: "model fingerprint"
            })
        );
        assert_eq!(
            read_container(&file[..file.len() - 1]),
            Err(ContainerError::PayloadLength {
                expected: 7,
                found: 6
            })
        );
        let mut longer = file.clone();
        longer.push(0);
        assert_eq!(
            read_container(&longer),
            Err(ContainerError::PayloadLength {
                expected: 7,
                found: 8
            })
        );
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 0x10;
        assert_eq!(read_container(&flipped), Err(ContainerError::Corrupted));

        let mut bad = h.clone();
        bad.model_name = "x".repeat(256);
        assert!(matches!(
            write_container(&bad, &[]),
            Err(ContainerError::InvalidField { .. })
        ));
        let mut bad = h.clone();
        bad.adapter_id = Some("y".repeat(256));
        assert!(matches!(
            write_container(&bad, &[]),
            Err(ContainerError::InvalidField { .. })
        ));
        let mut bad = h.clone();
        bad.model_name = "é".repeat(127) + "a"; // 255 bytes: fine
        assert!(write_container(&bad, &[]).is_ok());
        bad.format_version = 7;
        assert_eq!(
            write_container(&bad, &[]),
            Err(ContainerError::UnsupportedVersion {
                found: 7,
                supported: 1
            })
        );
    }

    /// Rebuilds a file from raw header bytes with a correct CRC, to reach the
    /// checks that come after the CRC.
    fn with_crc(header: &[u8], payload: &[u8]) -> Vec<u8> {
        let crc = crc32_update(crc32_update(CRC_INIT, header), payload) ^ CRC_INIT;
        let mut out = header.to_vec();
        out.extend_from_slice(&crc.to_le_bytes());
        out.extend_from_slice(payload);
        out
    }

    fn raw_header(flags: u8, name: &[u8], varints: [&[u8]; 4]) -> Vec<u8> {
        let mut h = b"TENB\x01\x00".to_vec();
        h.push(flags);
        h.push(name.len() as u8);
        h.extend_from_slice(name);
        h.extend_from_slice(&[0u8; 2 * ID_LEN]);
        for v in varints {
            h.extend_from_slice(v);
        }
        h.extend_from_slice(&[0u8; 8]);
        h.push(0); // payload length 0
        h
    }

    #[test]
    fn a_lossy_note_round_trips_and_its_absence_writes_the_old_bytes() {
        let mut h = sample_header(b"rewrite");
        let plain = write_container(&h, b"payload").unwrap();
        h.lossy = Some("rewriter=qwen2.5-coder-1.5b prompt=1 n=5 seed=0 original=2048".into());
        let lossy = write_container(&h, b"payload").unwrap();
        assert_eq!(read_container(&lossy).unwrap().0, h);
        assert_eq!(
            lossy.len(),
            plain.len() + 1 + h.lossy.as_ref().unwrap().len()
        );
        h.lossy = None;
        assert_eq!(write_container(&h, b"payload").unwrap(), plain);
        h.lossy = Some("x".repeat(256));
        assert!(write_container(&h, b"payload").is_err());
    }

    #[test]
    fn field_validation_after_crc() {
        let ok = raw_header(0, b"m", [&[1], &[1], &[0], &[0]]);
        assert!(read_container(&with_crc(&ok, &[])).is_ok());

        let cases: [(Vec<u8>, &str); 6] = [
            (
                raw_header(4, b"m", [&[1], &[1], &[0], &[0]]),
                "unknown flag bits are set",
            ),
            (
                raw_header(0, b"\xff", [&[1], &[1], &[0], &[0]]),
                "model name is not valid UTF-8",
            ),
            (
                raw_header(0, b"m", [&[0x80, 0x80, 0x80, 0x80, 0x10], &[1], &[0], &[0]]),
                "chunk tokens does not fit in 32 bits",
            ),
            (
                raw_header(0, b"m", [&[1], &[0xFF, 0xFF, 0xFF, 0xFF, 0x10], &[0], &[0]]),
                "max batch does not fit in 32 bits",
            ),
            (
                raw_header(0, b"m", [&[1], &[1], &[0x80, 0x00], &[0]]),
                "varint is not in its shortest form",
            ),
            (
                raw_header(
                    0,
                    b"m",
                    [
                        &[1],
                        &[1],
                        &[0],
                        &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x02],
                    ],
                ),
                "varint overflows 64 bits",
            ),
        ];
        for (raw, what) in cases {
            assert_eq!(
                read_container(&with_crc(&raw, &[])),
                Err(ContainerError::InvalidField { what }),
            );
        }
        // The largest 10-byte varint is fine.
        let max = raw_header(
            0,
            b"m",
            [
                &[1],
                &[1],
                &[0],
                &[0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01],
            ],
        );
        assert_eq!(
            read_container(&with_crc(&max, &[])).unwrap().0.original_len,
            u64::MAX
        );
    }

    #[test]
    fn verify_detects_differences() {
        let data = b"the original text";
        let h = sample_header(data);
        assert_eq!(verify(&h, data), Ok(()));
        assert_eq!(
            verify(&h, b"the original tex"),
            Err(ContainerError::LengthMismatch {
                expected: 17,
                found: 16
            })
        );
        assert_eq!(
            verify(&h, b"the original texT"),
            Err(ContainerError::ChecksumMismatch)
        );
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let data = b"some original bytes";
        let mut h = sample_header(data);
        h.adapter_id = Some("lora-1".into());
        let file = write_container(&h, b"\x00\x01coded payload\xff").unwrap();
        assert!(read_container(&file).is_ok());
        for cut in 0..file.len() {
            assert!(
                read_container(&file[..cut]).is_err(),
                "truncated to {cut} bytes was accepted"
            );
        }
        for i in 0..file.len() {
            for bit in 0..8 {
                let mut bad = file.clone();
                bad[i] ^= 1 << bit;
                assert!(
                    read_container(&bad).is_err(),
                    "bit {bit} of byte {i} flipped was accepted"
                );
            }
        }
    }

    fn header_strategy() -> impl Strategy<Value = Header> {
        (
            "\\PC{0,60}",
            any::<[u8; ID_LEN]>(),
            any::<[u8; ID_LEN]>(),
            prop::option::of("[a-z0-9/_.-]{0,255}"),
            (prop::option::of("[a-z0-9= ._-]{0,255}"), any::<u32>()),
            any::<u32>(),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 8]>(),
        )
            .prop_map(
                |(name, fp, tok, adapter, (lossy, chunk), batch, count, len, sum)| Header {
                    format_version: FORMAT_VERSION,
                    model_name: name,
                    model_fingerprint: fp,
                    tokenizer_hash: tok,
                    adapter_id: adapter,
                    lossy,
                    chunk_tokens: chunk,
                    max_batch: batch,
                    token_count: count,
                    original_len: len,
                    checksum: sum,
                },
            )
            .prop_filter("name fits", |h| h.model_name.len() <= MAX_STRING_LEN)
    }

    proptest! {
        #[test]
        fn prop_roundtrip(h in header_strategy(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
            let file = write_container(&h, &payload).unwrap();
            let (back, p) = read_container(&file).unwrap();
            prop_assert_eq!(back, h);
            prop_assert_eq!(p, &payload[..]);
        }

        #[test]
        fn prop_arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let _ = read_container(&data);
        }

        #[test]
        fn prop_arbitrary_after_magic_never_panic(data in prop::collection::vec(any::<u8>(), 0..400)) {
            let mut file = b"TENB\x01\x00".to_vec();
            file.extend_from_slice(&data);
            // Random bytes essentially never carry a valid CRC.
            prop_assert!(read_container(&file).is_err());
        }

        #[test]
        fn prop_damage_is_rejected(
            h in header_strategy(),
            payload in prop::collection::vec(any::<u8>(), 0..100),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            junk in prop::collection::vec(any::<u8>(), 1..10),
        ) {
            let file = write_container(&h, &payload).unwrap();
            let cut = cut.index(file.len());
            prop_assert!(read_container(&file[..cut]).is_err());
            let mut bad = file.clone();
            bad[flip.index(file.len())] ^= 1 << bit;
            prop_assert!(read_container(&bad).is_err());
            let mut longer = file.clone();
            longer.extend_from_slice(&junk);
            prop_assert!(read_container(&longer).is_err());
        }
    }
}
