//! The classic compressors tenbits is measured against, at their
//! strongest common settings, in this process.

use std::io::{self, Read, Write};

/// A classic compressor at a fixed level: one name, one way in, one way out.
#[derive(Debug, Clone, Copy)]
pub struct Baseline {
    /// As its command line would say it (`xz -9`).
    pub name: &'static str,
    encode: fn(&[u8]) -> io::Result<Vec<u8>>,
    decode: fn(&[u8]) -> io::Result<Vec<u8>>,
}

impl Baseline {
    /// `data` compressed.
    pub fn compress(&self, data: &[u8]) -> io::Result<Vec<u8>> {
        (self.encode)(data)
    }

    /// `packed` decompressed.
    pub fn decompress(&self, packed: &[u8]) -> io::Result<Vec<u8>> {
        (self.decode)(packed)
    }
}

/// Writes `data` through an encoder over a `Vec` and finishes it.
fn through<W: Write>(
    mut encoder: W,
    data: &[u8],
    finish: fn(W) -> io::Result<Vec<u8>>,
) -> io::Result<Vec<u8>> {
    encoder.write_all(data)?;
    finish(encoder)
}

/// Reads a decoder to its end.
fn drain(mut decoder: impl Read) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    decoder.read_to_end(&mut out)?;
    Ok(out)
}

/// gzip -9, bzip2 -9, xz -9 and zstd -19.
pub fn baselines() -> [Baseline; 4] {
    use flate2::{read::GzDecoder, write::GzEncoder};
    [
        Baseline {
            name: "gzip -9",
            encode: |d| {
                through(
                    GzEncoder::new(Vec::new(), flate2::Compression::best()),
                    d,
                    GzEncoder::finish,
                )
            },
            decode: |c| drain(GzDecoder::new(c)),
        },
        Baseline {
            name: "bzip2 -9",
            encode: |d| {
                let encoder = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                through(encoder, d, bzip2::write::BzEncoder::finish)
            },
            decode: |c| drain(bzip2::read::BzDecoder::new(c)),
        },
        Baseline {
            name: "xz -9",
            encode: |d| {
                through(
                    liblzma::write::XzEncoder::new(Vec::new(), 9),
                    d,
                    liblzma::write::XzEncoder::finish,
                )
            },
            decode: |c| drain(liblzma::read::XzDecoder::new(c)),
        },
        Baseline {
            name: "zstd -19",
            encode: |d| zstd::bulk::compress(d, 19),
            decode: |c| zstd::stream::decode_all(c),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_baseline_round_trips_and_compresses_repetition() {
        let text = b"tenbits codes text with a language model. ".repeat(50);
        for codec in baselines() {
            let packed = codec.compress(&text).unwrap();
            assert!(
                packed.len() < text.len() / 5,
                "{}: {}",
                codec.name,
                packed.len()
            );
            assert_eq!(codec.decompress(&packed).unwrap(), text, "{}", codec.name);
            assert!(
                codec.decompress(b"not compressed data").is_err(),
                "{}",
                codec.name
            );
        }
    }
}
