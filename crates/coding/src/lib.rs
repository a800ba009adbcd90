//! Entropy coding for tenbits: from model logits to the bytes of a `.tb` file
//! and back.
//!
//! This crate knows nothing about models, tokenizers or runtimes. It takes
//! logits (or integer frequencies) and bytes, in three steps:
//!
//! 1. [`quantize`]: [`quantize_logits`] turns one row of logits into integer
//!    frequencies summing to exactly `2^24` ([`TOTAL`]), every token at least
//!    1, deterministically on every platform, so that the encoder and the
//!    decoder build the same table from the same logits. [`log2_prob`] gives
//!    the model's own cost of a token in bits, for reporting.
//! 2. [`range`]: an [`Encoder`] codes one symbol at a time, each under its
//!    own frequency table, so symbols of many independent streams can be
//!    interleaved in one output; a [`Decoder`] replays them given the same
//!    tables in the same order. The output is within a couple of bytes of the
//!    information content. Decoding damaged data never panics.
//! 3. [`container`]: [`write_container`] wraps the coded payload with a
//!    [`Header`] (model and tokenizer identity, schedule, token count,
//!    original length and [`checksum`]) into a `.tb` file;
//!    [`read_container`] parses and integrity-checks one, and [`verify`]
//!    checks the decoded bytes against the header before they are written.
//!
//! ```
//! use tenbits_coding::{
//!     header_checksum, quantize_logits, read_container, verify, write_container, Decoder,
//!     Encoder, FilesId, Header, ModelRef, Schedule, Windowed, FORMAT_VERSION, TOTAL,
//! };
//!
//! // A stand-in "model": the same logits for every position.
//! let logits = [2.0f32, 0.5, -1.0, 3.0];
//! let mut freqs = Vec::new();
//! quantize_logits(&logits, &mut freqs);
//! assert_eq!(freqs.iter().sum::<u32>(), TOTAL);
//!
//! // Encode some tokens.
//! let tokens = [3usize, 0, 3, 1, 2];
//! let mut encoder = Encoder::new();
//! for &t in &tokens {
//!     encoder.encode(t, &freqs)?;
//! }
//! let payload = encoder.finish();
//!
//! // Wrap them in a container.
//! let original = b"what the tokens spell";
//! let header = Header {
//!     format_version: FORMAT_VERSION,
//!     model: ModelRef::Named("toy".into()),
//!     files: FilesId::Tiny([0; 2]),
//!     adapter_id: None,
//!     lossy: None,
//!     schedule: Schedule::Windowed(Windowed::DEFAULT),
//!     token_count: tokens.len() as u64,
//!     original_len: original.len() as u64,
//!     checksum: header_checksum(FORMAT_VERSION, original),
//! };
//! let file = write_container(&header, &payload)?;
//!
//! // Read it back and decode, rebuilding each table from the same logits.
//! let (header_back, payload_back) = read_container(&file)?;
//! assert_eq!(header_back, header);
//! let mut decoder = Decoder::new(payload_back)?;
//! let mut decoded = Vec::new();
//! for _ in 0..header_back.token_count {
//!     quantize_logits(&logits, &mut freqs);
//!     decoded.push(decoder.decode(&freqs)?);
//! }
//! assert_eq!(decoded, tokens);
//!
//! // Detokenising would give back the original; check before writing it.
//! verify(&header_back, original)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod blocks;
pub mod container;
pub mod quantize;
pub mod range;

pub use blocks::{is_blocks, BlockReader, BlockWriter, BlocksError, MAGIC_BLOCKS};
pub use container::{
    checksum, header_checksum, read_container, verify, write_container, ContainerError, FilesId,
    Header, ModelRef, Schedule, Windowed, FORMAT_VERSION, MAGIC, MAGIC2, MAGIC3,
};
pub use quantize::{freq_bits, log2_prob, quantize_logits, MAX_VOCAB, PRECISION, TOTAL};
pub use range::{Cdf, CodingError, Decoder, Encoder, MAX_TOTAL};
