//! The `.tb` file format: a compact header, then the range-coded payload.
//!
//! This build writes format 3 and reads formats 1, 2 and 3. All integers
//! are unsigned LEB128 varints unless said otherwise.
//!
//! **Format 3** (written since tenbits 0.3). A default-model file of a few
//! kilobytes has a 17-byte header, for model answers of 1–3 KB about a
//! sixth of the file:
//!
//! | field               | encoding                                         |
//! |---------------------|--------------------------------------------------|
//! | magic               | [`MAGIC3`] (`74 b4`); the second byte names the format (`74 b5` … `74 bf` are kept for later ones) |
//! | model and flags     | `u8`: bits 0–2 the flags of format 2; bits 3–7 the registry id if it is 1–31, else 0 and format 2's model field follows |
//! | adapter hash        | only if flag bit 0: 6 bytes                      |
//! | lossy note          | only if flag bit 1: `u8` length + UTF-8 bytes    |
//! | files id            | 2 bytes: SHA-256 of the model's and tokenizer's SHA-256, truncated ([`FilesId::Tiny`]) |
//! | schedule, token count, original length, checksum, CRC-32, payload | as in format 2 |
//!
//! A wrong model or tokenizer passes the 16-bit files id with probability
//! 2^-16 (1 in 65,536); it then decodes other tokens, which the 32-bit
//! checksum of the original refuses except with a further 2^-32, so wrong
//! bytes come out with odds about 2^-48. The CRC-32 and the checksum are
//! those of format 2, with the same odds (below).
//!
//! **Format 2** (written by tenbits 0.2, read only). A default-model file
//! of a few kilobytes has a 21-byte header:
//!
//! | field               | encoding                                         |
//! |---------------------|--------------------------------------------------|
//! | magic               | [`MAGIC2`] (`74 b2`)                             |
//! | format version      | `u8`: 2                                          |
//! | flags               | `u8`; bit 0: adapter, bit 1: lossy note, bit 2: schedule; others 0 |
//! | model               | varint registry id ([`ModelRef::Registered`]); 0: `u8` length + UTF-8 name follows |
//! | adapter hash        | only if flag bit 0: 6 bytes                      |
//! | lossy note          | only if flag bit 1: `u8` length + UTF-8 bytes    |
//! | files id            | 4 bytes: SHA-256 of the model's and tokenizer's SHA-256, truncated ([`FilesId::Short`]) |
//! | schedule            | only if flag bit 2: window, keep, max streams, min segment (varints), mixing (`u8`); absent: [`Windowed::DEFAULT`] |
//! | token count         | varint                                           |
//! | original length     | varint                                           |
//! | checksum            | 4 bytes: SHA-256 of the original bytes, truncated|
//! | CRC-32              | `u32` LE: CRC-32 (IEEE) of every byte above, then of the payload |
//! | payload             | the rest of the file                             |
//!
//! What the short fields cost in safety (the odds are for accidents, not
//! for an adversary, who can forge any checksum):
//! - a wrong model or tokenizer passes the 32-bit files id with
//!   probability 2^-32 (1 in 4.3 billion); it then decodes other tokens,
//!   which the 32-bit checksum of the original catches except with a
//!   further 2^-32, so wrong bytes come out with odds about 2^-64;
//! - a damaged or truncated file passes the CRC-32 with probability 2^-32
//!   (and never for a burst of up to 32 flipped bits); the payload length
//!   is not stored, since the CRC covers where the file ends;
//! - a decoder that drifts (another CPU's float kernels) gives other
//!   tokens, caught by the checksum except with probability 2^-32.
//!
//! **Format 1** (read only): magic `b"TENB"`, `u16` LE version 1, flags,
//! the model name, 16-byte model and tokenizer hashes, chunk tokens and
//! max batch ([`Schedule::Chunked`]), token count, original length, an
//! 8-byte checksum, the payload length and a CRC-32: 74 bytes for the
//! default model.
//!
//! [`read_container`] never panics: any input gives a header and payload or a
//! [`ContainerError`].

use sha2::{Digest, Sha256};
use thiserror::Error;

/// The first four bytes of every format-1 `.tb` file.
pub const MAGIC: [u8; 4] = *b"TENB";

/// The first two bytes of every format-2 `.tb` file (not text, not the
/// start of any format-1 file).
pub const MAGIC2: [u8; 2] = [0x74, 0xB2];

/// The first two bytes of every format-3 `.tb` file; no version byte
/// follows (the magic is the version).
pub const MAGIC3: [u8; 2] = [0x74, 0xB4];

/// The format version this crate writes.
pub const FORMAT_VERSION: u16 = 3;

/// Registry ids that format 3 packs into its first header byte.
const PACKED_IDS: std::ops::RangeInclusive<u32> = 1..=31;

/// The longest model name, adapter id or lossy note, in bytes of UTF-8.
pub const MAX_STRING_LEN: usize = 255;

/// Flag bit: an adapter id follows the model.
const FLAG_ADAPTER: u8 = 1;

/// Flag bit: a lossy note follows (the payload is a rewrite, not the input).
const FLAG_LOSSY: u8 = 2;

/// Flag bit (format 2): the schedule follows; absent, it is
/// [`Windowed::DEFAULT`].
const FLAG_SCHEDULE: u8 = 4;

/// Bytes of each hash in a format-1 header: the first 128 bits of the
/// SHA-256.
pub const ID_LEN: usize = 16;

/// Bytes of an adapter's hash in a format-2 header (12 hex digits as text).
pub const ADAPTER_HASH_LEN: usize = 6;

/// Which model coded the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelRef {
    /// A model of tenbits' registry, by its permanent id (`id` in
    /// `models.toml`, never reused); one byte for the first 127 models.
    Registered(u32),
    /// Any other model, by name (at most 255 bytes of UTF-8).
    Named(String),
}

/// What identifies the exact model and tokenizer files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FilesId {
    /// Format 1: the first 16 bytes of the model's and of the tokenizer's
    /// SHA-256.
    Full {
        /// Model weights.
        model: [u8; ID_LEN],
        /// Tokenizer.
        tokenizer: [u8; ID_LEN],
    },
    /// Format 2: the first 4 bytes of SHA-256(model SHA-256 ‖ tokenizer
    /// SHA-256) (see the module docs for the odds).
    Short([u8; 4]),
    /// Format 3: the first 2 bytes of the same digest.
    Tiny([u8; 2]),
}

impl FilesId {
    /// The stored prefix of the files' digest (formats 2 and 3): files
    /// match when their digest starts with it. `None` for format 1, which
    /// keeps separate hashes.
    pub fn short_bytes(&self) -> Option<&[u8]> {
        match self {
            FilesId::Full { .. } => None,
            FilesId::Short(id) => Some(id),
            FilesId::Tiny(id) => Some(id),
        }
    }

    /// The id as this format stores it, for a format of short ids (2 or 3).
    pub fn for_format(format_version: u16, short: [u8; 4]) -> FilesId {
        if format_version == 2 {
            FilesId::Short(short)
        } else {
            FilesId::Tiny([short[0], short[1]])
        }
    }
}

/// How the tokens were cut into streams and fed to the model. Decoding
/// runs the same schedule, so it needs it exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schedule {
    /// Format 1: chunks of `chunk_tokens`, each coded from its own start,
    /// `max_batch` at a time.
    Chunked {
        /// Tokens per independently coded chunk.
        chunk_tokens: u32,
        /// Most chunks run through the model in one batch.
        max_batch: u32,
    },
    /// Format 2: contiguous segments, one per stream, each coded with a
    /// sliding window.
    Windowed(Windowed),
}

/// The format-2 schedule: the tokens are cut into at most `max_streams`
/// segments of at least `min_segment` tokens, which run side by side in one
/// batch; each stream sees up to `window` tokens of context, and when its
/// window is full it restarts from its last `keep` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Windowed {
    /// Most tokens of context (the key/value cache's length).
    pub window: u32,
    /// Tokens of context kept when the window slides (fewer than `window`).
    pub keep: u32,
    /// Most streams (segments) run together.
    pub max_streams: u32,
    /// Fewest tokens per segment: fewer tokens make fewer streams.
    pub min_segment: u32,
    /// Mixing of the model with the text's own statistics: 0 none, 1 the
    /// token match model of `tenbits-lossless`.
    pub mixing: u8,
}

impl Windowed {
    /// The schedule a format-2 header without flag bit 2 stands for. Fixed
    /// forever: files that omit it rely on these values.
    pub const DEFAULT: Windowed = Windowed {
        window: 2048,
        keep: 1024,
        max_streams: 8,
        min_segment: 768,
        mixing: 1,
    };
}

/// Everything needed to decode a `.tb` payload and to check the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Format version: 1, 2 or 3; [`write_container`] writes any of them.
    pub format_version: u16,
    /// The model that coded the payload (format 1: always by name).
    pub model: ModelRef,
    /// Identity of the exact model and tokenizer files (format 1:
    /// [`FilesId::Full`], format 2: [`FilesId::Short`], format 3:
    /// [`FilesId::Tiny`]).
    pub files: FilesId,
    /// Optional LoRA adapter applied to the model: its hash as 12 hex
    /// digits (format 1 allows any text of at most 255 bytes).
    pub adapter_id: Option<String>,
    /// Set when the payload is a lossy rewrite of the input, not the input:
    /// what it was rewritten from and how (at most 255 bytes of UTF-8, e.g.
    /// `rewriter=qwen2.5-coder-1.5b prompt=1 n=5 seed=0 original=2048`).
    /// Decoding restores the rewrite exactly.
    pub lossy: Option<String>,
    /// How the tokens ran through the model (format 1: [`Schedule::Chunked`],
    /// formats 2 and 3: [`Schedule::Windowed`]).
    pub schedule: Schedule,
    /// Total number of coded tokens.
    pub token_count: u64,
    /// Length in bytes of the original data.
    pub original_len: u64,
    /// [`checksum`] of the original data, truncated: 8 bytes in format 1,
    /// 4 in formats 2 and 3.
    pub checksum: Vec<u8>,
}

impl Header {
    /// Bytes of checksum the format keeps.
    pub fn checksum_len(format_version: u16) -> usize {
        if format_version == 1 {
            8
        } else {
            4
        }
    }
}

/// Errors from reading, writing and verifying `.tb` containers.
///
/// Each message is one line that says what went wrong and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ContainerError {
    /// The data does not start with a `.tb` magic.
    #[error("not a tenbits .tb file (bad magic)")]
    NotATenbitsFile,
    /// The file was written in a format version this build cannot read.
    #[error("unsupported .tb format version {found} (this build reads versions 1 to {supported}); use a tenbits release that supports version {found}")]
    UnsupportedVersion {
        /// The version in the file (or in the header to write).
        found: u16,
        /// The newest version this build supports.
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
    #[error("the .tb file is corrupted or truncated (CRC-32 mismatch over header and payload); get an intact copy of the file")]
    Corrupted,
    /// The payload is shorter or longer than a format-1 header says.
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

/// The first 8 bytes of the SHA-256 of `data`; headers keep a prefix of it
/// ([`Header::checksum_len`]).
pub fn checksum(data: &[u8]) -> [u8; 8] {
    let digest = Sha256::digest(data);
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// The checksum a header of `format_version` records for `data`.
pub fn header_checksum(format_version: u16, data: &[u8]) -> Vec<u8> {
    checksum(data)[..Header::checksum_len(format_version)].to_vec()
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
    let sum = checksum(decoded);
    if header.checksum.len() > sum.len() || sum[..header.checksum.len()] != header.checksum[..] {
        return Err(ContainerError::ChecksumMismatch);
    }
    Ok(())
}

fn check_str(s: Option<&str>, what: &'static str) -> Result<(), ContainerError> {
    if s.is_some_and(|s| s.len() > MAX_STRING_LEN) {
        return Err(ContainerError::InvalidField { what });
    }
    Ok(())
}

/// Serialises `header` and `payload` into a complete `.tb` file, in the
/// header's format version (1, 2 or 3).
///
/// Fails with [`ContainerError::UnsupportedVersion`] for other versions,
/// and with [`ContainerError::InvalidField`] when a field does not fit the
/// version: a string over [`MAX_STRING_LEN`] bytes, a format-2 or -3
/// adapter id that is not 12 hex digits, fingerprints, schedule or checksum
/// of another version.
pub fn write_container(header: &Header, payload: &[u8]) -> Result<Vec<u8>, ContainerError> {
    let bad = |what| Err(ContainerError::InvalidField { what });
    check_str(
        match &header.model {
            ModelRef::Named(name) => Some(name),
            ModelRef::Registered(_) => None,
        },
        "model name is longer than 255 bytes",
    )?;
    check_str(
        header.adapter_id.as_deref(),
        "adapter id is longer than 255 bytes",
    )?;
    check_str(
        header.lossy.as_deref(),
        "lossy note is longer than 255 bytes",
    )?;
    if header.checksum.len() != Header::checksum_len(header.format_version) {
        return bad("checksum length does not match the format version");
    }
    let mut out = Vec::with_capacity(32 + payload.len());
    let mut flags = 0;
    if header.adapter_id.is_some() {
        flags |= FLAG_ADAPTER;
    }
    if header.lossy.is_some() {
        flags |= FLAG_LOSSY;
    }
    match header.format_version {
        1 => {
            let (
                ModelRef::Named(name),
                FilesId::Full { model, tokenizer },
                Schedule::Chunked {
                    chunk_tokens,
                    max_batch,
                },
            ) = (&header.model, &header.files, header.schedule)
            else {
                return bad("format 1 needs a model name, full hashes and a chunked schedule");
            };
            out.extend_from_slice(&MAGIC);
            out.extend_from_slice(&1u16.to_le_bytes());
            out.push(flags);
            put_str(&mut out, name);
            if let Some(adapter) = &header.adapter_id {
                put_str(&mut out, adapter);
            }
            if let Some(note) = &header.lossy {
                put_str(&mut out, note);
            }
            out.extend_from_slice(model);
            out.extend_from_slice(tokenizer);
            put_varint(&mut out, u64::from(chunk_tokens));
            put_varint(&mut out, u64::from(max_batch));
            put_varint(&mut out, header.token_count);
            put_varint(&mut out, header.original_len);
            out.extend_from_slice(&header.checksum);
            put_varint(&mut out, payload.len() as u64);
        }
        version @ (2 | 3) => {
            let (files, Schedule::Windowed(schedule)) = (&header.files, header.schedule) else {
                return bad("formats 2 and 3 need a windowed schedule");
            };
            let files: &[u8] = match (version, files) {
                (2, FilesId::Short(id)) => id,
                (3, FilesId::Tiny(id)) => id,
                _ => return bad("format 2 needs a 4-byte files id, format 3 a 2-byte one"),
            };
            let adapter = match &header.adapter_id {
                None => None,
                Some(hex) => match parse_hex::<ADAPTER_HASH_LEN>(hex) {
                    Some(bytes) => Some(bytes),
                    None => return bad("a format-2 or -3 adapter id must be 12 hex digits"),
                },
            };
            if schedule != Windowed::DEFAULT {
                flags |= FLAG_SCHEDULE;
            }
            if header.model == ModelRef::Registered(0) {
                return bad("registry model id 0 is reserved");
            }
            let packed = match header.model {
                ModelRef::Registered(id) if version == 3 && PACKED_IDS.contains(&id) => id as u8,
                _ => 0,
            };
            if version == 3 {
                out.extend_from_slice(&MAGIC3);
                out.push(packed << 3 | flags);
            } else {
                out.extend_from_slice(&MAGIC2);
                out.push(2);
                out.push(flags);
            }
            match &header.model {
                _ if packed != 0 => {}
                ModelRef::Registered(id) => put_varint(&mut out, u64::from(*id)),
                ModelRef::Named(name) => {
                    put_varint(&mut out, 0);
                    put_str(&mut out, name);
                }
            }
            if let Some(adapter) = adapter {
                out.extend_from_slice(&adapter);
            }
            if let Some(note) = &header.lossy {
                put_str(&mut out, note);
            }
            out.extend_from_slice(files);
            if flags & FLAG_SCHEDULE != 0 {
                for v in [
                    schedule.window,
                    schedule.keep,
                    schedule.max_streams,
                    schedule.min_segment,
                ] {
                    put_varint(&mut out, u64::from(v));
                }
                out.push(schedule.mixing);
            }
            put_varint(&mut out, header.token_count);
            put_varint(&mut out, header.original_len);
            out.extend_from_slice(&header.checksum);
        }
        found => {
            return Err(ContainerError::UnsupportedVersion {
                found,
                supported: FORMAT_VERSION,
            })
        }
    }
    let crc = crc32_update(crc32_update(CRC_INIT, &out), payload) ^ CRC_INIT;
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Ok(out)
}

/// Parses a `.tb` file into its header and payload (borrowed from `data`).
///
/// Checks, in order: the magic, the format version, that the header is
/// complete and well formed, (format 1) that exactly `payload length`
/// bytes follow it, the CRC-32 over header and payload, and finally the
/// field values (UTF-8 strings, no unknown flags, `u32` ranges). Never
/// panics.
pub fn read_container(data: &[u8]) -> Result<(Header, &[u8]), ContainerError> {
    // A short prefix of a magic is a truncated file, anything else that
    // starts with neither is not ours.
    if data.starts_with(&MAGIC3) {
        read_windowed(data, 3)
    } else if let [0x74, later @ 0xB5..=0xBF, ..] = data {
        // Kept for formats after 3 (`74 b5` is format 4): named as a later
        // version rather than as not ours.
        Err(ContainerError::UnsupportedVersion {
            found: u16::from(later - MAGIC3[1]) + 3,
            supported: FORMAT_VERSION,
        })
    } else if data.starts_with(&MAGIC2) {
        read_windowed(data, 2)
    } else if data.starts_with(&MAGIC) {
        read_v1(data)
    } else if MAGIC.starts_with(data) || MAGIC2.starts_with(data) {
        Err(ContainerError::Truncated { what: "magic" })
    } else {
        Err(ContainerError::NotATenbitsFile)
    }
}

fn read_v1(data: &[u8]) -> Result<(Header, &[u8]), ContainerError> {
    let mut r = Reader { data, pos: 0 };
    r.bytes::<4>("magic")?;
    let format_version = u16::from_le_bytes(r.bytes::<2>("format version")?);
    expect_version(format_version, 1)?;

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
    let model = r.bytes::<ID_LEN>("model fingerprint")?;
    let tokenizer = r.bytes::<ID_LEN>("tokenizer hash")?;
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
    check_crc(data, header_end, payload, crc_stored)?;

    // Values.
    if flags & !(FLAG_ADAPTER | FLAG_LOSSY) != 0 {
        return Err(ContainerError::InvalidField {
            what: "unknown flag bits are set",
        });
    }
    let header = Header {
        format_version,
        model: ModelRef::Named(utf8(model_name, "model name is not valid UTF-8")?),
        files: FilesId::Full { model, tokenizer },
        adapter_id: adapter_id
            .map(|a| utf8(a, "adapter id is not valid UTF-8"))
            .transpose()?,
        lossy: lossy
            .map(|a| utf8(a, "lossy note is not valid UTF-8"))
            .transpose()?,
        schedule: Schedule::Chunked {
            chunk_tokens: to_u32(chunk_tokens, "chunk tokens does not fit in 32 bits")?,
            max_batch: to_u32(max_batch, "max batch does not fit in 32 bits")?,
        },
        token_count,
        original_len,
        checksum: checksum.to_vec(),
    };
    Ok((header, payload))
}

/// Formats 2 and 3 (`version`, which the magic named).
fn read_windowed(data: &[u8], version: u16) -> Result<(Header, &[u8]), ContainerError> {
    let mut r = Reader { data, pos: 0 };
    r.bytes::<2>("magic")?;
    let format_version = if version == 3 {
        3
    } else {
        u16::from(r.bytes::<1>("format version")?[0])
    };
    expect_version(format_version, version)?;

    // Structure.
    let (flags, packed) = if version == 3 {
        let byte = r.bytes::<1>("model and flags")?[0];
        (byte & 7, u32::from(byte >> 3))
    } else {
        (r.bytes::<1>("flags")?[0], 0)
    };
    let model_id = if packed != 0 {
        u64::from(packed)
    } else {
        r.varint("model id")?
    };
    let model_name = if model_id == 0 {
        Some(r.str_bytes("model name")?)
    } else {
        None
    };
    let adapter = if flags & FLAG_ADAPTER != 0 {
        Some(r.bytes::<ADAPTER_HASH_LEN>("adapter hash")?)
    } else {
        None
    };
    let lossy = if flags & FLAG_LOSSY != 0 {
        Some(r.str_bytes("lossy note")?)
    } else {
        None
    };
    let files = if version == 3 {
        FilesId::Tiny(r.bytes::<2>("files id")?)
    } else {
        FilesId::Short(r.bytes::<4>("files id")?)
    };
    let schedule = if flags & FLAG_SCHEDULE != 0 {
        let mut v = [0u64; 4];
        for (slot, what) in v
            .iter_mut()
            .zip(["window", "keep", "max streams", "min segment"])
        {
            *slot = r.varint(what)?;
        }
        Some((v, r.bytes::<1>("mixing")?[0]))
    } else {
        None
    };
    let token_count = r.varint("token count")?;
    let original_len = r.varint("original length")?;
    let checksum = r.bytes::<4>("checksum")?;
    let header_end = r.pos;
    let crc_stored = u32::from_le_bytes(r.bytes::<4>("CRC")?);
    let payload = &data[r.pos..];
    check_crc(data, header_end, payload, crc_stored)?;

    // Values.
    if flags & !(FLAG_ADAPTER | FLAG_LOSSY | FLAG_SCHEDULE) != 0 {
        return Err(ContainerError::InvalidField {
            what: "unknown flag bits are set",
        });
    }
    if version == 3 && packed == 0 && model_id != 0 && model_id <= u64::from(*PACKED_IDS.end()) {
        // One spelling per header: ids 1–31 are packed.
        return Err(ContainerError::InvalidField {
            what: "a registry id of 1 to 31 must be packed into the first byte",
        });
    }
    let model = match model_name {
        Some(name) => ModelRef::Named(utf8(name, "model name is not valid UTF-8")?),
        None => ModelRef::Registered(to_u32(model_id, "model id does not fit in 32 bits")?),
    };
    let schedule = match schedule {
        None => Windowed::DEFAULT,
        Some(([window, keep, max_streams, min_segment], mixing)) => Windowed {
            window: to_u32(window, "window does not fit in 32 bits")?,
            keep: to_u32(keep, "keep does not fit in 32 bits")?,
            max_streams: to_u32(max_streams, "max streams does not fit in 32 bits")?,
            min_segment: to_u32(min_segment, "min segment does not fit in 32 bits")?,
            mixing,
        },
    };
    let header = Header {
        format_version,
        model,
        files,
        adapter_id: adapter.map(|a| a.iter().map(|b| format!("{b:02x}")).collect()),
        lossy: lossy
            .map(|a| utf8(a, "lossy note is not valid UTF-8"))
            .transpose()?,
        schedule: Schedule::Windowed(schedule),
        token_count,
        original_len,
        checksum: checksum.to_vec(),
    };
    Ok((header, payload))
}

/// Refuses a version other than the one this magic belongs to.
fn expect_version(found: u16, wanted: u16) -> Result<(), ContainerError> {
    if found != wanted {
        return Err(ContainerError::UnsupportedVersion {
            found,
            supported: FORMAT_VERSION,
        });
    }
    Ok(())
}

fn check_crc(
    data: &[u8],
    header_end: usize,
    payload: &[u8],
    stored: u32,
) -> Result<(), ContainerError> {
    let crc = crc32_update(crc32_update(CRC_INIT, &data[..header_end]), payload) ^ CRC_INIT;
    if crc != stored {
        return Err(ContainerError::Corrupted);
    }
    Ok(())
}

fn to_u32(v: u64, what: &'static str) -> Result<u32, ContainerError> {
    u32::try_from(v).map_err(|_| ContainerError::InvalidField { what })
}

/// `N` bytes from exactly `2N` lowercase or uppercase hex digits.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
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
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
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
        read_varint(
            || Ok(self.take(1, what)?[0]),
            |fault| ContainerError::InvalidField {
                what: match fault {
                    VarintFault::Overflows => "varint overflows 64 bits",
                    VarintFault::NotShortest => "varint is not in its shortest form",
                    VarintFault::TooLong => "varint is longer than 10 bytes",
                },
            },
        )
    }
}

/// Why bytes are not a varint.
pub(crate) enum VarintFault {
    /// The tenth byte holds more than the 64th bit.
    Overflows,
    /// A final zero byte after others: a longer spelling of a number.
    NotShortest,
    /// No final byte within ten.
    TooLong,
}

/// Unsigned LEB128 of at most 10 bytes, in its shortest form, read byte
/// by byte from `next`; `fault` makes the error for bytes that are not one.
pub(crate) fn read_varint<E>(
    mut next: impl FnMut() -> Result<u8, E>,
    fault: impl Fn(VarintFault) -> E,
) -> Result<u64, E> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = next()?;
        let bits = u64::from(b & 0x7F);
        if i == 9 && bits > 1 {
            return Err(fault(VarintFault::Overflows));
        }
        v |= bits << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(fault(VarintFault::NotShortest));
            }
            return Ok(v);
        }
    }
    Err(fault(VarintFault::TooLong))
}

pub(crate) const CRC_INIT: u32 = 0xFFFF_FFFF;

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
pub(crate) fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &b in data {
        crc = CRC_TABLE[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A format-1 header, as tenbits 0.1 wrote them.
    fn v1_header(payload_src: &[u8]) -> Header {
        Header {
            format_version: 1,
            model: ModelRef::Named("SmolLM2-135M-Instruct".into()),
            files: FilesId::Full {
                model: [0xAB; ID_LEN],
                tokenizer: [0xCD; ID_LEN],
            },
            adapter_id: None,
            lossy: None,
            schedule: Schedule::Chunked {
                chunk_tokens: 512,
                max_batch: 16,
            },
            token_count: 12_345,
            original_len: payload_src.len() as u64,
            checksum: header_checksum(1, payload_src),
        }
    }

    /// A format-2 header of a registry model with the default schedule.
    fn v2_header(payload_src: &[u8]) -> Header {
        Header {
            format_version: 2,
            model: ModelRef::Registered(1),
            files: FilesId::Short([0xAB, 0xCD, 0xEF, 0x01]),
            adapter_id: None,
            lossy: None,
            schedule: Schedule::Windowed(Windowed::DEFAULT),
            token_count: 700,
            original_len: 2_900,
            checksum: header_checksum(2, payload_src),
        }
    }

    /// The same header in format 3.
    fn v3_header(payload_src: &[u8]) -> Header {
        Header {
            format_version: 3,
            files: FilesId::Tiny([0xAB, 0xCD]),
            checksum: header_checksum(3, payload_src),
            ..v2_header(payload_src)
        }
    }

    #[test]
    fn magics_are_distinct_and_none_is_a_prefix_of_another() {
        let magics: [&[u8]; 4] = [&MAGIC, &MAGIC2, &MAGIC3, &crate::MAGIC_BLOCKS];
        for (i, a) in magics.iter().enumerate() {
            for b in &magics[i + 1..] {
                assert!(!a.starts_with(b) && !b.starts_with(a), "{a:?} {b:?}");
            }
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
        assert_eq!(header_checksum(2, b"abc"), vec![0xba, 0x78, 0x16, 0xbf]);
    }

    #[test]
    fn format_1_header_keeps_its_layout() {
        let h = v1_header(b"hello");
        let file = write_container(&h, &[]).unwrap();
        // 4 + 2 + 1 + 22 + 2 * ID_LEN + 2 + 1 + 2 + 1 + 8 + 1 + 4
        assert_eq!(file.len(), 80);
        assert_eq!(&file[..6], b"TENB\x01\x00");
        let (back, payload) = read_container(&file).unwrap();
        assert_eq!(back, h);
        assert!(payload.is_empty());
    }

    #[test]
    fn format_2_header_of_a_default_model_file_is_21_bytes() {
        let h = v2_header(b"hello");
        let file = write_container(&h, b"payload").unwrap();
        // magic 2, version 1, flags 1, model id 1, files id 4, token count 2,
        // original length 2, checksum 4, CRC 4.
        assert_eq!(file.len() - 7, 21);
        assert_eq!(&file[..4], &[0x74, 0xB2, 2, 0]);
        let (back, payload) = read_container(&file).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, b"payload");
    }

    #[test]
    fn format_3_header_of_a_default_model_file_is_17_bytes() {
        let h = v3_header(b"hello");
        let file = write_container(&h, b"payload").unwrap();
        // magic 2, model id and flags 1, files id 2, token count 2,
        // original length 2, checksum 4, CRC 4.
        assert_eq!(file.len() - 7, 17);
        assert_eq!(&file[..5], &[0x74, 0xB4, 1 << 3, 0xAB, 0xCD]);
        let (back, payload) = read_container(&file).unwrap();
        assert_eq!(back, h);
        assert_eq!(payload, b"payload");
        // Ids past 31 and names take format 2's model field.
        for (model, first) in [
            (ModelRef::Registered(31), vec![31 << 3]),
            (ModelRef::Registered(32), vec![0, 32]),
            (ModelRef::Registered(300), vec![0, 0xAC, 0x02]),
            (ModelRef::Named("m".into()), vec![0, 0, 1, b'm']),
        ] {
            let h = Header {
                model,
                ..v3_header(b"hello")
            };
            let file = write_container(&h, &[]).unwrap();
            assert_eq!(&file[2..2 + first.len()], &first[..], "{:?}", h.model);
            assert_eq!(read_container(&file).unwrap().0, h);
        }
    }

    #[test]
    fn files_ids_of_formats_2_and_3_match_the_same_files() {
        let short = [1, 2, 3, 4];
        assert_eq!(FilesId::for_format(2, short), FilesId::Short(short));
        assert_eq!(FilesId::for_format(3, short), FilesId::Tiny([1, 2]));
        for format in [2, 3] {
            let id = FilesId::for_format(format, short);
            let stored = id.short_bytes().unwrap();
            assert!(short.starts_with(stored));
            assert_eq!([1, 2, 3, 5].starts_with(stored), format == 3);
            assert!(![1, 9, 3, 4].starts_with(stored));
        }
        let full = FilesId::Full {
            model: [0; ID_LEN],
            tokenizer: [0; ID_LEN],
        };
        assert_eq!(full.short_bytes(), None);
    }

    #[test]
    fn format_2_optional_fields_round_trip() {
        for mut h in [v2_header(b"data"), v3_header(b"data")] {
            h.model = ModelRef::Named("ünïcode-model".into());
            h.adapter_id = Some("0123456789ab".into());
            h.lossy = Some("rewriter=x n=5".into());
            h.schedule = Schedule::Windowed(Windowed {
                window: 512,
                keep: 128,
                max_streams: 32,
                min_segment: 64,
                mixing: 0,
            });
            h.token_count = u64::MAX;
            h.original_len = u64::MAX;
            let file = write_container(&h, &[1, 2, 3]).unwrap();
            let (back, payload) = read_container(&file).unwrap();
            assert_eq!(back, h);
            assert_eq!(payload, &[1, 2, 3]);
        }
        // A schedule equal to the default is not written.
        let mut d = v2_header(b"data");
        let plain = write_container(&d, &[]).unwrap();
        d.schedule = Schedule::Windowed(Windowed {
            ..Windowed::DEFAULT
        });
        assert_eq!(write_container(&d, &[]).unwrap(), plain);
    }

    #[test]
    fn format_2_refuses_what_it_cannot_hold() {
        let h = v2_header(b"x");
        for (change, what) in [
            (
                Box::new(|h: &mut Header| h.adapter_id = Some("lora-1".into()))
                    as Box<dyn Fn(&mut Header)>,
                "a format-2 or -3 adapter id must be 12 hex digits",
            ),
            (
                Box::new(|h: &mut Header| h.adapter_id = Some("+123456789ab".into())),
                "a format-2 or -3 adapter id must be 12 hex digits",
            ),
            (
                Box::new(|h: &mut Header| h.model = ModelRef::Registered(0)),
                "registry model id 0 is reserved",
            ),
            (
                Box::new(|h: &mut Header| h.checksum = vec![0; 8]),
                "checksum length does not match the format version",
            ),
            (
                Box::new(|h: &mut Header| {
                    h.schedule = Schedule::Chunked {
                        chunk_tokens: 1,
                        max_batch: 1,
                    }
                }),
                "formats 2 and 3 need a windowed schedule",
            ),
            (
                Box::new(|h: &mut Header| h.files = FilesId::Tiny([0, 0])),
                "format 2 needs a 4-byte files id, format 3 a 2-byte one",
            ),
        ] {
            let mut bad = h.clone();
            change(&mut bad);
            assert_eq!(
                write_container(&bad, &[]),
                Err(ContainerError::InvalidField { what })
            );
        }
        let mut bad = h.clone();
        bad.format_version = 7;
        assert_eq!(
            write_container(&bad, &[]),
            Err(ContainerError::UnsupportedVersion {
                found: 7,
                supported: 3
            })
        );
    }

    #[test]
    fn specific_errors() {
        let h = v1_header(b"x");
        let file = write_container(&h, b"payload").unwrap();

        assert_eq!(
            read_container(b"PK\x03\x04rest"),
            Err(ContainerError::NotATenbitsFile)
        );
        for short in [&b"TE"[..], b"", b"\x74"] {
            assert_eq!(
                read_container(short),
                Err(ContainerError::Truncated { what: "magic" })
            );
        }
        assert_eq!(
            read_container(b"\x74\xB2"),
            Err(ContainerError::Truncated {
                what: "format version"
            })
        );

        let mut v4 = file.clone();
        v4[4] = 4;
        assert_eq!(
            read_container(&v4),
            Err(ContainerError::UnsupportedVersion {
                found: 4,
                supported: 3
            })
        );
        assert_eq!(
            read_container(&[0x74, 0xB5, 0, 0]),
            Err(ContainerError::UnsupportedVersion {
                found: 4,
                supported: 3
            })
        );
        let mut v2_file = write_container(&v2_header(b"x"), b"p").unwrap();
        v2_file[2] = 9;
        assert_eq!(
            read_container(&v2_file),
            Err(ContainerError::UnsupportedVersion {
                found: 9,
                supported: 3
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
        bad.model = ModelRef::Named("x".repeat(256));
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
        bad.model = ModelRef::Named("é".repeat(127) + "a"); // 255 bytes: fine
        assert!(write_container(&bad, &[]).is_ok());
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
        for mut h in [
            v1_header(b"rewrite"),
            v2_header(b"rewrite"),
            v3_header(b"rewrite"),
        ] {
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
        // Format 2: unknown flags and an id past 32 bits, behind a good CRC.
        let mut v2 = vec![0x74, 0xB2, 2, 8, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            read_container(&with_crc(&v2, &[])),
            Err(ContainerError::InvalidField {
                what: "unknown flag bits are set"
            })
        );
        v2[3] = 0;
        assert!(read_container(&with_crc(&v2, &[])).is_ok());
        let mut big_id = vec![0x74, 0xB2, 2, 0, 0x80, 0x80, 0x80, 0x80, 0x10];
        big_id.extend_from_slice(&[0; 10]);
        assert_eq!(
            read_container(&with_crc(&big_id, &[])),
            Err(ContainerError::InvalidField {
                what: "model id does not fit in 32 bits"
            })
        );
        // Format 3: an id of 1–31 spelled as a varint is a second spelling.
        let packed = [0x74, 0xB4, 1 << 3, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_container(&with_crc(&packed, &[])).is_ok());
        let unpacked = [0x74, 0xB4, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            read_container(&with_crc(&unpacked, &[])),
            Err(ContainerError::InvalidField {
                what: "a registry id of 1 to 31 must be packed into the first byte"
            })
        );
    }

    #[test]
    fn verify_detects_differences() {
        let data = b"the original text";
        for mut h in [v1_header(data), v2_header(data), v3_header(data)] {
            h.original_len = data.len() as u64;
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
    }

    #[test]
    fn every_truncation_and_bit_flip_is_rejected() {
        let data = b"some original bytes";
        let mut v1 = v1_header(data);
        v1.adapter_id = Some("lora-1".into());
        let mut v2 = v2_header(data);
        v2.adapter_id = Some("00ff00ff00ff".into());
        let mut v3 = v3_header(data);
        v3.adapter_id = Some("00ff00ff00ff".into());
        for h in [v1, v2, v3] {
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
    }

    fn v1_strategy() -> impl Strategy<Value = Header> {
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
                    format_version: 1,
                    model: ModelRef::Named(name),
                    files: FilesId::Full {
                        model: fp,
                        tokenizer: tok,
                    },
                    adapter_id: adapter,
                    lossy,
                    schedule: Schedule::Chunked {
                        chunk_tokens: chunk,
                        max_batch: batch,
                    },
                    token_count: count,
                    original_len: len,
                    checksum: sum.to_vec(),
                },
            )
            .prop_filter(
                "name fits",
                |h| matches!(&h.model, ModelRef::Named(n) if n.len() <= MAX_STRING_LEN),
            )
    }

    fn windowed_strategy(format_version: u16) -> impl Strategy<Value = Header> {
        (
            prop_oneof![
                (1u32..).prop_map(ModelRef::Registered),
                "[a-z0-9._-]{0,60}".prop_map(ModelRef::Named)
            ],
            any::<[u8; 4]>(),
            prop::option::of(any::<[u8; 6]>()),
            prop::option::of("[a-z0-9= ._-]{0,255}"),
            (any::<[u32; 4]>(), any::<u8>(), any::<bool>()),
            any::<u64>(),
            any::<u64>(),
            any::<[u8; 4]>(),
        )
            .prop_map(
                move |(model, files, adapter, lossy, (s, mixing, default), count, len, sum)| {
                    Header {
                        format_version,
                        model,
                        files: FilesId::for_format(format_version, files),
                        adapter_id: adapter.map(|a| a.iter().map(|b| format!("{b:02x}")).collect()),
                        lossy,
                        schedule: Schedule::Windowed(if default {
                            Windowed::DEFAULT
                        } else {
                            Windowed {
                                window: s[0],
                                keep: s[1],
                                max_streams: s[2],
                                min_segment: s[3],
                                mixing,
                            }
                        }),
                        token_count: count,
                        original_len: len,
                        checksum: sum.to_vec(),
                    }
                },
            )
    }

    fn any_header() -> impl Strategy<Value = Header> {
        prop_oneof![v1_strategy(), windowed_strategy(2), windowed_strategy(3)]
    }

    proptest! {
        #[test]
        fn prop_roundtrip(h in any_header(), payload in prop::collection::vec(any::<u8>(), 0..300)) {
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
            for magic in [&b"TENB\x01\x00"[..], &[0x74, 0xB2, 2], &[0x74, 0xB4]] {
                let mut file = magic.to_vec();
                file.extend_from_slice(&data);
                // Random bytes essentially never carry a valid CRC.
                prop_assert!(read_container(&file).is_err());
            }
        }

        #[test]
        fn prop_damage_is_rejected(
            h in any_header(),
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
