//! Lossless compression of bytes with a language model.
//!
//! A [`LanguageModel`] predicts each next token; its logits become integer
//! frequencies (`tenbits_coding::quantize_logits`) that drive one range-coded
//! stream. The principal pieces:
//!
//! * [`compress`] / [`decompress`] — bytes to a `.tb` container and back;
//! * [`Layout`] — how the token sequence is cut into chunks and the chunks
//!   into batches that run in lockstep (derived from the header alone, so
//!   both directions agree without storing it);
//! * one private driver, `run_schedule`, that both directions call with a
//!   different [`TokenCoder`]: the encoder codes the known token, the decoder
//!   decodes it. Same code, same batch shapes, same inputs: the decoder sees
//!   bit-for-bit the logits the encoder saw.
//!
//! ```no_run
//! use tenbits_inference::{OnnxModel, SessionSettings};
//! use tenbits_lossless::{compress, decompress, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut model = OnnxModel::load("tests/fixtures/tiny".as_ref(), SessionSettings { threads: 1 })?;
//! let options = Options { model_name: "tiny".into(), ..Options::default() };
//! let (packed, stats) = compress(&mut model, b"hello, hello, hello", &options, &mut |_| {})?;
//! assert_eq!(decompress(&mut model, &packed, &mut |_| {})?, b"hello, hello, hello");
//! println!("{} tokens, model cross-entropy {:.1} bits", stats.tokens, stats.model_bits);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod adapters;
mod route;

pub use adapters::AdapterChoice;
pub use route::{route, Routing, ROUTE_TOKENS};

use tenbits_coding::{
    read_container, write_container, CodingError, ContainerError, Decoder, Encoder, Header,
};
use tenbits_inference::{Fingerprint, InferenceError, LanguageModel};

pub use tenbits_coding::Header as ContainerHeader;

/// Compression settings. Both are stored in the header, so decompression
/// needs none of them.
#[derive(Debug, Clone)]
pub struct Options {
    /// Name recorded in the header so `decompress` can pick the model.
    pub model_name: String,
    /// Tokens per chunk: each chunk is coded with context from its own start
    /// only, so this is the context length the model sees. Longer chunks
    /// compress better (1024: 0.98 bits/byte on the dictionary sample, 256:
    /// 1.15) but leave fewer chunks to batch, so short inputs code slower.
    pub chunk_tokens: usize,
    /// Set for a lossy rewrite: the note the header carries (see
    /// [`ContainerHeader::lossy`]).
    pub lossy: Option<String>,
    /// Most chunks run together in one batch. The key/value cache holds
    /// `max_batch × chunk_tokens` tokens (about 48 MB per 1,000 tokens for
    /// SmolLM2-135M).
    pub max_batch: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model_name: String::new(),
            chunk_tokens: 1024,
            max_batch: 16,
            lossy: None,
        }
    }
}

/// Largest batch a header may ask for; guards against corrupted headers.
const MAX_BATCH_LIMIT: usize = 4096;

/// Progress of a run, in tokens.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Tokens coded so far.
    pub done_tokens: u64,
    /// Tokens in the whole input.
    pub total_tokens: u64,
}

/// What a compression run measured.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Tokens coded (escapes included).
    pub tokens: u64,
    /// Chunks the tokens were cut into.
    pub chunks: usize,
    /// Lockstep batches the chunks ran in.
    pub batches: usize,
    /// Bytes of the range-coded payload.
    pub payload_bytes: usize,
    /// Bytes of the whole container (header included).
    pub container_bytes: usize,
    /// The model's own cross-entropy of the tokens, in bits: the size an
    /// ideal coder would reach with these float probabilities.
    pub model_bits: f64,
    /// What the quantized frequency tables charge for the tokens, in bits:
    /// the size an ideal coder over these integer tables would reach.
    pub table_bits: f64,
}

/// Everything that can go wrong compressing or decompressing.
#[derive(Debug, thiserror::Error)]
pub enum LosslessError {
    /// The `.tb` container is damaged, truncated or not one.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The model failed.
    #[error(transparent)]
    Inference(#[from] InferenceError),
    /// The file names another model than the one loaded.
    #[error("this file was compressed with model `{file_model}` (fingerprint {file_fp}), but `{loaded_model}` (fingerprint {loaded_fp}) is loaded; decompress with `--model {file_model}` and the same model files")]
    WrongModel {
        /// The model named in the file.
        file_model: String,
        /// Its fingerprint, as recorded.
        file_fp: String,
        /// The model loaded.
        loaded_model: String,
        /// Its fingerprint.
        loaded_fp: String,
    },
    /// The file was made with another tokenizer.
    #[error("this file's tokenizer (hash {file}) differs from the loaded model's ({loaded}); use the same model files it was compressed with")]
    WrongTokenizer {
        /// The tokenizer hash recorded in the file.
        file: String,
        /// The loaded tokenizer's hash.
        loaded: String,
    },
    /// The file was coded under another LoRA adapter than the model runs
    /// with (or under one while it runs without, or the other way round).
    #[error("{}", adapter_message(.file.as_deref(), .loaded.as_deref()))]
    WrongAdapter {
        /// The adapter hash recorded in the file, if any.
        file: Option<String>,
        /// The adapter the model runs with, if any.
        loaded: Option<String>,
    },
    /// The header is consistent but describes something impossible (a
    /// batch larger than allowed, a checksum that does not match, ...).
    #[error("corrupted file: {0}")]
    Corrupted(String),
    /// The payload does not decode under the model's probabilities: the
    /// file is damaged, or the runtime computes other floats.
    #[error("corrupted file: {0}")]
    CorruptPayload(#[source] CodingError),
    /// The options cannot work (zero-length chunks, a model without
    /// context, ...).
    #[error("invalid options: {0}")]
    Options(String),
    /// The range coder refused a symbol while encoding (a frequency table
    /// that cannot code the token: a bug, not bad input).
    #[error("range coder: {0}")]
    Coding(#[from] CodingError),
}

fn adapter_message(file: Option<&str>, loaded: Option<&str>) -> String {
    match (file, loaded) {
        (Some(f), Some(l)) => format!(
            "this file was compressed with the adapter of hash {f}, but `{l}` is loaded; decompress with that adapter"
        ),
        (Some(f), None) => format!(
            "this file was compressed with the adapter of hash {f}; decompress with that adapter installed"
        ),
        (None, Some(l)) => format!(
            "this file was compressed without an adapter, but `{l}` is loaded; decompress with --adapter none"
        ),
        (None, None) => "adapter mismatch".to_string(),
    }
}

/// How tokens are cut into chunks and chunks into lockstep batches.
///
/// Chunks get nearly equal lengths (at most `chunk_tokens`), and batches
/// nearly equal sizes (at most `max_batch`), so few steps are wasted on
/// streams that already finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// `(first token, length)` of each chunk.
    pub chunks: Vec<(usize, usize)>,
    /// `(first chunk, number of chunks)` of each batch.
    pub batches: Vec<(usize, usize)>,
}

impl Layout {
    /// The layout for `tokens` tokens.
    ///
    /// ```
    /// let layout = tenbits_lossless::Layout::new(10, 4, 2);
    /// assert_eq!(layout.chunks, vec![(0, 4), (4, 3), (7, 3)]);
    /// assert_eq!(layout.batches, vec![(0, 2), (2, 1)]);
    /// ```
    pub fn new(tokens: usize, chunk_tokens: usize, max_batch: usize) -> Layout {
        let chunks = split_evenly(tokens, chunk_tokens.max(1));
        let batches = split_evenly(chunks.len(), max_batch.max(1));
        Layout { chunks, batches }
    }
}

/// Splits `n` items into `ceil(n / most)` consecutive runs of nearly equal
/// length, longer runs first.
fn split_evenly(n: usize, most: usize) -> Vec<(usize, usize)> {
    if n == 0 {
        return Vec::new();
    }
    let parts = n.div_ceil(most);
    let (base, extra) = (n / parts, n % parts);
    let mut start = 0;
    (0..parts)
        .map(|i| {
            let len = base + usize::from(i < extra);
            let run = (start, len);
            start += len;
            run
        })
        .collect()
}

/// The frequency table for one position: the model's quantized logits,
/// then a floor of 1 for every symbol past the model's vocabulary (tokens
/// the model has no logit for, and the tokenizer's byte escapes). Both
/// directions build it here, the same way.
fn symbol_table(logits: &[f32], table_len: usize, freqs: &mut Vec<u32>) {
    tenbits_coding::quantize_logits(logits, freqs);
    freqs.resize(table_len.max(logits.len()), 1);
}

/// Bits the table charges for `symbol`.
fn table_cost(freqs: &[u32], symbol: usize, table_len: usize, vocab: usize) -> f64 {
    let total = tenbits_coding::TOTAL as f64 + table_len.saturating_sub(vocab) as f64;
    total.log2() - f64::from(freqs[symbol]).log2()
}

/// One direction of coding, called once per token in schedule order.
trait TokenCoder {
    /// Given the model's logits for position `pos` of `chunk`, returns the
    /// token there (the known one when encoding, the decoded one when decoding).
    fn code(&mut self, chunk: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError>;
}

/// The token every chunk is conditioned on first: the document separator,
/// as the model saw between documents in training.
fn start_token<M: LanguageModel>(model: &M) -> u32 {
    let tokenizer = model.tokenizer();
    tokenizer
        .token_id("<|endoftext|>")
        .or(model.config().bos_token_id)
        .unwrap_or(0)
}

/// Runs the model over the layout in lockstep batches and lets `coder` pick
/// each token. Shared by both directions.
fn run_schedule<M: LanguageModel>(
    model: &mut M,
    layout: &Layout,
    coder: &mut dyn TokenCoder,
    total_tokens: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<(), LosslessError> {
    let start = start_token(model);
    let vocab = model.vocab_size();
    // Escapes and tokens the model has no logit for are coded, never fed.
    let feedable = vocab.min(model.tokenizer().escape_base() as usize);
    let mut logits = Vec::new();
    let mut done = 0u64;
    for &(first_chunk, count) in &layout.batches {
        let chunks = &layout.chunks[first_chunk..first_chunk + count];
        let steps = chunks.iter().map(|&(_, len)| len).max().unwrap_or(0);
        let mut cache = model.new_cache(count, steps);
        // Streams that finished keep running on the start token, so the
        // batch shape never changes within a batch.
        let mut inputs = vec![start; count];
        for step in 0..steps {
            model.forward(&mut cache, &inputs, &mut logits)?;
            for (j, &(_, len)) in chunks.iter().enumerate() {
                inputs[j] = if step < len {
                    done += 1;
                    let symbol =
                        coder.code(first_chunk + j, step, &logits[j * vocab..(j + 1) * vocab])?;
                    if (symbol as usize) < feedable {
                        symbol
                    } else {
                        start
                    }
                } else {
                    start
                };
            }
            progress(Progress {
                done_tokens: done,
                total_tokens,
            });
        }
    }
    Ok(())
}

struct EncodeCoder<'a> {
    tokens: &'a [u32],
    layout: &'a Layout,
    table_len: usize,
    encoder: Encoder,
    freqs: Vec<u32>,
    model_bits: f64,
    table_bits: f64,
}

impl TokenCoder for EncodeCoder<'_> {
    fn code(&mut self, chunk: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError> {
        let token = self.tokens[self.layout.chunks[chunk].0 + pos];
        symbol_table(logits, self.table_len, &mut self.freqs);
        self.encoder.encode(token as usize, &self.freqs)?;
        let cost = table_cost(&self.freqs, token as usize, self.table_len, logits.len());
        self.model_bits += if (token as usize) < logits.len() {
            tenbits_coding::log2_prob(logits, token as usize)
        } else {
            // The model has no probability for an escape; count what the
            // table charges, so the comparison stays honest.
            cost
        };
        self.table_bits += cost;
        Ok(token)
    }
}

struct DecodeCoder<'a, 'd> {
    tokens: &'a mut [u32],
    layout: &'a Layout,
    table_len: usize,
    decoder: Decoder<'d>,
    freqs: Vec<u32>,
}

impl TokenCoder for DecodeCoder<'_, '_> {
    fn code(&mut self, chunk: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError> {
        symbol_table(logits, self.table_len, &mut self.freqs);
        let token = self
            .decoder
            .decode(&self.freqs)
            .map_err(LosslessError::CorruptPayload)? as u32;
        self.tokens[self.layout.chunks[chunk].0 + pos] = token;
        Ok(token)
    }
}

/// Compresses `data` into a `.tb` container.
pub fn compress<M: LanguageModel>(
    model: &mut M,
    data: &[u8],
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<u8>, Stats), LosslessError> {
    let context = model.config().context_length;
    if options.chunk_tokens == 0 || options.chunk_tokens > context {
        return Err(LosslessError::Options(format!(
            "chunk length must be between 1 and the model's context length ({context} tokens), not {}",
            options.chunk_tokens
        )));
    }
    if options.max_batch == 0 || options.max_batch > MAX_BATCH_LIMIT {
        return Err(LosslessError::Options(format!(
            "batch size must be between 1 and {MAX_BATCH_LIMIT}"
        )));
    }
    let tokens = model.tokenizer().encode_bytes(data)?;
    let layout = Layout::new(tokens.len(), options.chunk_tokens, options.max_batch);
    let table_len = model.tokenizer().symbol_count();
    let mut coder = EncodeCoder {
        tokens: &tokens,
        layout: &layout,
        table_len,
        encoder: Encoder::new(),
        freqs: Vec::new(),
        model_bits: 0.0,
        table_bits: 0.0,
    };
    run_schedule(model, &layout, &mut coder, tokens.len() as u64, progress)?;
    let (model_bits, table_bits) = (coder.model_bits, coder.table_bits);
    let payload = coder.encoder.finish();

    let fingerprint = model.fingerprint();
    let header = Header {
        format_version: tenbits_coding::FORMAT_VERSION,
        model_name: options.model_name.clone(),
        model_fingerprint: fingerprint.model_id(),
        tokenizer_hash: fingerprint.tokenizer_id(),
        adapter_id: model.adapter_id().map(|a| a.header_text()),
        lossy: options.lossy.clone(),
        chunk_tokens: options.chunk_tokens as u32,
        max_batch: options.max_batch as u32,
        token_count: tokens.len() as u64,
        original_len: data.len() as u64,
        checksum: tenbits_coding::checksum(data),
    };
    let container = write_container(&header, &payload)?;
    let stats = Stats {
        tokens: tokens.len() as u64,
        chunks: layout.chunks.len(),
        batches: layout.batches.len(),
        payload_bytes: payload.len(),
        container_bytes: container.len(),
        model_bits,
        table_bits,
    };
    Ok((container, stats))
}

/// Bytes of a container's payload (the rest is header and CRC).
pub fn payload_bytes(container: &[u8]) -> Result<usize, LosslessError> {
    Ok(read_container(container)?.1.len())
}

/// Reads a container's header without decoding it.
pub fn inspect(container: &[u8]) -> Result<Header, LosslessError> {
    Ok(read_container(container)?.0)
}

/// Decompresses a `.tb` container made by [`compress`] with the same model.
///
/// Returns the original bytes exactly, or an error: a different model, a
/// corrupted file, or a decoder that drifted (caught by the checksum).
pub fn decompress<M: LanguageModel>(
    model: &mut M,
    container: &[u8],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<u8>, LosslessError> {
    let (header, payload) = read_container(container)?;
    check_model(&header, model.fingerprint(), &model.config().name)?;
    let loaded = model.adapter_id();
    if header.adapter_id != loaded.map(|a| a.header_text()) {
        return Err(LosslessError::WrongAdapter {
            file: header.adapter_id.clone(),
            loaded: loaded.map(|a| a.to_string()),
        });
    }
    let context = model.config().context_length;
    let chunk_tokens = header.chunk_tokens as usize;
    let max_batch = header.max_batch as usize;
    if chunk_tokens == 0 || chunk_tokens > context || max_batch == 0 || max_batch > MAX_BATCH_LIMIT
    {
        return Err(LosslessError::Corrupted(format!(
            "header asks for {chunk_tokens}-token chunks in batches of {max_batch}, outside what this model allows"
        )));
    }
    // Every coded token carries at least one byte, and costs at least
    // -log2(1 - (V-1)/2^24) bits (the frequency floor caps any probability
    // below 1), so these bounds hold for every honest file and stop a forged
    // header from making us allocate without limit.
    let symbols = model.vocab_size().max(model.tokenizer().symbol_count()) as f64;
    let min_bits_per_token = -(1.0 - (symbols - 1.0) / tenbits_coding::TOTAL as f64).log2();
    let most_tokens = ((payload.len() as f64 + 8.0) * 8.0 / min_bits_per_token).ceil() as u64;
    if header.token_count > header.original_len || header.token_count > most_tokens {
        return Err(LosslessError::Corrupted(format!(
            "header claims {} tokens for {} bytes in a {}-byte payload",
            header.token_count,
            header.original_len,
            payload.len()
        )));
    }
    let token_count = header.token_count as usize;
    let layout = Layout::new(token_count, chunk_tokens, max_batch);
    let mut tokens = vec![0u32; token_count];
    let decoder = Decoder::new(payload).map_err(LosslessError::CorruptPayload)?;
    let table_len = model.tokenizer().symbol_count();
    let mut coder = DecodeCoder {
        tokens: &mut tokens,
        layout: &layout,
        table_len,
        decoder,
        freqs: Vec::new(),
    };
    run_schedule(model, &layout, &mut coder, token_count as u64, progress)?;
    let data = model.tokenizer().decode_bytes(&tokens);
    tenbits_coding::verify(&header, &data)?;
    Ok(data)
}

/// Refuses a file made with other model files.
fn check_model(
    header: &Header,
    loaded: &Fingerprint,
    loaded_name: &str,
) -> Result<(), LosslessError> {
    if header.model_fingerprint != loaded.model_id() {
        return Err(LosslessError::WrongModel {
            file_model: header.model_name.clone(),
            file_fp: Fingerprint::short_hex(&header.model_fingerprint),
            loaded_model: loaded_name.to_string(),
            loaded_fp: Fingerprint::short_hex(&loaded.model),
        });
    }
    if header.tokenizer_hash != loaded.tokenizer_id() {
        return Err(LosslessError::WrongTokenizer {
            file: Fingerprint::short_hex(&header.tokenizer_hash),
            loaded: Fingerprint::short_hex(&loaded.tokenizer),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn layout_covers_every_token_once_within_limits(tokens in 0usize..5000, chunk in 1usize..600, batch in 1usize..70) {
            let layout = Layout::new(tokens, chunk, batch);
            let mut next = 0;
            for &(start, len) in &layout.chunks {
                prop_assert_eq!(start, next);
                prop_assert!(len >= 1 && len <= chunk);
                next += len;
            }
            prop_assert_eq!(next, tokens);
            let mut next_chunk = 0;
            for &(first, count) in &layout.batches {
                prop_assert_eq!(first, next_chunk);
                prop_assert!(count >= 1 && count <= batch);
                next_chunk += count;
            }
            prop_assert_eq!(next_chunk, layout.chunks.len());
        }
    }

    #[test]
    fn chunks_are_balanced() {
        let layout = Layout::new(1025, 512, 32);
        assert_eq!(layout.chunks, vec![(0, 342), (342, 342), (684, 341)]);
    }
}
