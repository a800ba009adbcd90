//! Lossless compression of bytes with a language model.
//!
//! A [`LanguageModel`] predicts each next token; its logits become integer
//! frequencies (`tenbits_coding::quantize_logits`), optionally mixed with a
//! match model of the text itself ([`mix`]), that drive one range-coded
//! stream. The principal pieces:
//!
//! * [`compress`] / [`decompress`] — bytes to a `.tb` container and back;
//! * [`Options`] and [`level`] — the [`Windowed`] schedule (streams, sliding
//!   window, mixing) a file is written with; `decompress` reads it from the
//!   header, so it takes no options;
//! * [`Plan`] — how the tokens are cut into segments, one per stream, all
//!   run side by side in one batch (derived from the header alone);
//! * one private driver per schedule (`run_windowed`, and `run_chunked`
//!   for format-1 files) that both directions call with a different
//!   [`TokenCoder`]: the encoder codes the known token, the decoder decodes
//!   it. Same code, same batch shapes, same inputs: the decoder sees bit for
//!   bit the logits the encoder saw.
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
pub mod mix;
mod route;
pub mod stream;

pub use adapters::AdapterChoice;
pub use route::{route, Routing, ROUTE_TOKENS};
pub use stream::{
    compress_stream, StreamDecoder, StreamProgress, StreamStats, DEFAULT_BLOCK_BYTES,
};
pub use tenbits_coding::{FilesId, ModelRef, Schedule, Windowed};

use mix::{MatchMixer, Prediction};
use tenbits_coding::{
    read_container, write_container, CodingError, ContainerError, Decoder, Encoder, Header,
};
use tenbits_inference::{Fingerprint, InferenceError, LanguageModel, Registry};

pub use tenbits_coding::Header as ContainerHeader;

/// Compression settings. The schedule is stored in the header, so
/// decompression needs none of them.
#[derive(Debug, Clone)]
pub struct Options {
    /// The model's name: a registry model is recorded by its one-byte id,
    /// any other by this name, so `decompress` can pick the model.
    pub model_name: String,
    /// How tokens run through the model: [`Schedule::Windowed`] writes
    /// format 3 (the default, [`Windowed::DEFAULT`]); [`Schedule::Chunked`]
    /// writes format 1, as tenbits 0.1 did (kept so that old files stay
    /// testable).
    pub schedule: Schedule,
    /// Set for a lossy rewrite: the note the header carries (see
    /// [`ContainerHeader::lossy`]).
    pub lossy: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            model_name: String::new(),
            schedule: Schedule::Windowed(Windowed::DEFAULT),
            lossy: None,
        }
    }
}

/// A compression level, as `tenbits compress -1` … `-9` choose them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    /// The level, 1 (fastest) to 9 (smallest).
    pub level: u8,
    /// The schedule it writes.
    pub schedule: Windowed,
    /// The registry models it chooses between for each input (the one
    /// that codes its first [`MODEL_ROUTE_BYTES`] bytes in fewest bits),
    /// where it names any; else the default model or the one asked for.
    pub models: &'static [&'static str],
}

/// Bytes of an input scored under each of a level's models to choose one
/// (the same bytes for every model, whatever its tokenizer).
pub const MODEL_ROUTE_BYTES: usize = 1024;

/// Default compression level.
pub const DEFAULT_LEVEL: u8 = 6;

/// The schedule and model of compression level `n` (1..=9; others are
/// clamped). Measured sizes and speeds are in README.md.
///
/// ```
/// let default = tenbits_lossless::level(tenbits_lossless::DEFAULT_LEVEL);
/// assert_eq!(default.schedule, tenbits_lossless::Windowed::DEFAULT);
/// ```
pub fn level(n: u8) -> Level {
    let n = n.clamp(1, 9);
    let w = |window, keep, max_streams, min_segment, mixing| Windowed {
        window,
        keep,
        max_streams,
        min_segment,
        mixing,
    };
    let (schedule, models): (Windowed, &'static [&'static str]) = match n {
        1 => (w(512, 128, 32, 128, 0), &[]),
        2 => (w(1024, 256, 24, 192, 1), &[]),
        3 => (w(1024, 512, 16, 256, 1), &[]),
        4 => (w(2048, 1024, 12, 384, 1), &[]),
        5 => (w(2048, 1024, 10, 512, 1), &[]),
        6 => (Windowed::DEFAULT, &[]),
        7 => (w(2048, 1024, 4, 1536, 1), &[]),
        8 => (w(4096, 2048, 1, 1, 1), &[]),
        // Qwen2.5-Coder-0.5B codes Python far better than SmolLM2 and
        // English prose worse (results/levels/): choose per input.
        _ => (Windowed::DEFAULT, &["smollm2-135m", "qwen2.5-coder-0.5b"]),
    };
    Level {
        level: n,
        schedule,
        models,
    }
}

/// Largest batch (streams) a header may ask for; guards against corrupted
/// headers.
const MAX_BATCH_LIMIT: usize = 4096;

/// Tokens of each cold start whose cost [`Stats::cold_starts`] records.
pub const COLD_TOKENS: usize = 64;

/// Logit floats one forward pass may return when a window slides (about
/// 128 MB): the context is refed in pieces of at most this many.
const REFILL_LOGITS: usize = 1 << 25;

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
    /// Streams (segments, or format-1 chunks) the tokens were cut into.
    pub chunks: usize,
    /// Lockstep batches the streams ran in (1 for formats 2 and 3).
    pub batches: usize,
    /// Times a window slid (the context refed from its kept part).
    pub slides: usize,
    /// Forward passes run (both directions run the same ones).
    pub forwards: u64,
    /// Bytes of the range-coded payload.
    pub payload_bytes: usize,
    /// Bytes of the whole container (header included).
    pub container_bytes: usize,
    /// The model's own cross-entropy of the tokens, in bits: the size an
    /// ideal coder would reach with these float probabilities, without
    /// mixing.
    pub model_bits: f64,
    /// What the coder's tables charge for the tokens, in bits (after
    /// mixing): the size an ideal coder over these integer tables would
    /// reach.
    pub table_bits: f64,
    /// Every stream start after the text's first: `(first token, bits
    /// charged for its first COLD_TOKENS tokens)`. What those tokens would
    /// cost with context ([`warm_bits`]) gives the price of cold starts.
    pub cold_starts: Vec<(usize, f64)>,
    /// Match-model predictions made, and how many came true.
    pub mix_predicted: u64,
    /// Match-model predictions that came true.
    pub mix_hits: u64,
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
    /// The framing of a file of blocks is damaged, or reading it failed.
    #[error(transparent)]
    Blocks(#[from] tenbits_coding::BlocksError),
    /// Reading the input failed.
    #[error("cannot read the input")]
    Read(#[source] std::io::Error),
    /// Writing the output failed.
    #[error("cannot write the output")]
    Write(#[source] std::io::Error),
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

/// The name of the model a header names: a registry id is looked up in
/// this build's registry (`#ID` when it does not know it).
///
/// A name read from a file is escaped (`escape_debug`): it reaches
/// terminals through messages, and a forged header must not carry
/// control sequences there.
pub fn model_name(model: &ModelRef) -> String {
    match model {
        ModelRef::Named(name) => name.escape_debug().to_string(),
        ModelRef::Registered(id) => Registry::embedded()
            .model_by_id(*id)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| format!("#{id}")),
    }
}

/// How a format-2 or -3 file's tokens are cut into segments, one per stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// `(first token, length)` of each segment.
    pub segments: Vec<(usize, usize)>,
    /// Tokens of context each stream holds.
    pub window: usize,
    /// Tokens kept when a window slides.
    pub keep: usize,
}

impl Plan {
    /// The plan for `tokens` tokens: as many streams as segments of at
    /// least `min_segment` tokens allow, at most `max_streams`, of nearly
    /// equal lengths.
    ///
    /// ```
    /// use tenbits_lossless::{Plan, Windowed};
    /// let schedule = Windowed { window: 8, keep: 4, max_streams: 3, min_segment: 4, mixing: 0 };
    /// assert_eq!(Plan::new(10, &schedule).segments, vec![(0, 5), (5, 5)]);
    /// assert_eq!(Plan::new(100, &schedule).segments.len(), 3);
    /// ```
    pub fn new(tokens: usize, schedule: &Windowed) -> Plan {
        let streams = (tokens / (schedule.min_segment.max(1) as usize)).clamp(
            1,
            (schedule.max_streams.max(1) as usize).min(MAX_BATCH_LIMIT),
        );
        Plan {
            segments: split_evenly(tokens, tokens.div_ceil(streams).max(1)),
            window: schedule.window as usize,
            keep: schedule.keep as usize,
        }
    }
}

/// How format-1 tokens are cut into chunks and chunks into lockstep
/// batches.
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

/// The symbol model both directions build each step from the same logits:
/// the model's quantized logits, then a floor of 1 for every symbol past
/// the model's vocabulary (tokens the model has no logit for, and the
/// tokenizer's byte escapes), then, with mixing, the match model's split.
struct SymbolModel {
    table_len: usize,
    freqs: Vec<u32>,
    /// Sum of `freqs` as built.
    total: u64,
    mixer: Option<MatchMixer>,
}

/// Denominator of the mixer's hit flag.
const FLAG_TOTAL: u32 = 4096;

impl SymbolModel {
    fn new(table_len: usize, streams: usize, mixing: bool) -> SymbolModel {
        SymbolModel {
            table_len,
            freqs: Vec::new(),
            total: 0,
            mixer: mixing.then(|| MatchMixer::new(streams)),
        }
    }

    /// Builds the step's table and the mixer's prediction for `stream`.
    fn prepare(&mut self, stream: usize, logits: &[f32]) -> Option<Prediction> {
        tenbits_coding::quantize_logits(logits, &mut self.freqs);
        self.freqs.resize(self.table_len.max(logits.len()), 1);
        self.total = u64::from(tenbits_coding::TOTAL) + (self.freqs.len() - logits.len()) as u64;
        self.mixer
            .as_ref()?
            .predict(stream, &self.freqs, self.total)
    }

    /// The two flag frequencies: `[miss, hit]`.
    fn flag(p: &Prediction) -> [u32; 2] {
        [FLAG_TOTAL - p.p_hit, p.p_hit]
    }

    /// Codes `token`, returning the bits the tables charge.
    fn encode(
        &mut self,
        stream: usize,
        logits: &[f32],
        token: u32,
        encoder: &mut Encoder,
    ) -> Result<f64, LosslessError> {
        let prediction = self.prepare(stream, logits);
        let total = self.total as f64;
        let bits = match prediction {
            Some(p) => {
                let hit = p.symbol == token as usize;
                let flag = Self::flag(&p);
                encoder.encode(usize::from(hit), &flag)?;
                let mut bits = (f64::from(FLAG_TOTAL) / f64::from(flag[usize::from(hit)])).log2();
                if !hit {
                    let removed = self.freqs[p.symbol];
                    self.freqs[p.symbol] = 0;
                    encoder.encode(token as usize, &self.freqs)?;
                    bits += ((total - f64::from(removed)) / f64::from(self.freqs[token as usize]))
                        .log2();
                }
                bits
            }
            None => {
                encoder.encode(token as usize, &self.freqs)?;
                (total / f64::from(self.freqs[token as usize])).log2()
            }
        };
        if let Some(mixer) = &mut self.mixer {
            mixer.update(stream, token, prediction);
        }
        Ok(bits)
    }

    fn decode(
        &mut self,
        stream: usize,
        logits: &[f32],
        decoder: &mut Decoder,
    ) -> Result<u32, LosslessError> {
        let prediction = self.prepare(stream, logits);
        let token = match prediction {
            Some(p) => {
                let hit = decoder
                    .decode(&Self::flag(&p))
                    .map_err(LosslessError::CorruptPayload)?
                    == 1;
                if hit {
                    p.symbol
                } else {
                    self.freqs[p.symbol] = 0;
                    decoder
                        .decode(&self.freqs)
                        .map_err(LosslessError::CorruptPayload)?
                }
            }
            None => decoder
                .decode(&self.freqs)
                .map_err(LosslessError::CorruptPayload)?,
        } as u32;
        if let Some(mixer) = &mut self.mixer {
            mixer.update(stream, token, prediction);
        }
        Ok(token)
    }
}

/// One direction of coding, called once per token in schedule order.
trait TokenCoder {
    /// Given the model's logits for position `pos` of stream `stream`,
    /// returns the token there (the known one when encoding, the decoded
    /// one when decoding).
    fn code(&mut self, stream: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError>;
}

/// The token every stream is conditioned on first: the document separator,
/// as the model saw between documents in training.
fn start_token<M: LanguageModel>(model: &M) -> u32 {
    let tokenizer = model.tokenizer();
    tokenizer
        .token_id("<|endoftext|>")
        .or(model.config().bos_token_id)
        .unwrap_or(0)
}

/// The token fed after coding `symbol`: itself, or for an escape or a
/// token the model has no logit for (coded, never fed) the start token.
fn feed_as(symbol: u32, feedable: usize, start: u32) -> u32 {
    if (symbol as usize) < feedable {
        symbol
    } else {
        start
    }
}

/// What a driver reports back.
#[derive(Debug, Default)]
struct RunCounts {
    forwards: u64,
    slides: usize,
}

/// Formats 2 and 3: every segment in its own stream, all in one batch, each with
/// a sliding window. Shared by both directions.
fn run_windowed<M: LanguageModel>(
    model: &mut M,
    plan: &Plan,
    coder: &mut dyn TokenCoder,
    total_tokens: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunCounts, LosslessError> {
    let mut counts = RunCounts::default();
    let streams = plan.segments.len();
    if streams == 0 {
        return Ok(counts);
    }
    let start = start_token(model);
    let vocab = model.vocab_size();
    let feedable = vocab.min(model.tokenizer().escape_base() as usize);
    let steps = plan.segments.iter().map(|&(_, len)| len).max().unwrap_or(0);
    let (window, keep) = (plan.window, plan.keep);
    let piece = (REFILL_LOGITS / (streams * vocab).max(1)).clamp(1, keep);
    let mut logits = Vec::new();
    // Caches hold no more slots than the rest of the run can fill: the
    // attention of a static cache costs every slot, used or not.
    let mut cache = model.new_cache(streams, window.min(steps));
    let mut used = 0usize;
    // What each stream was fed, and the input it is about to be fed (the
    // last entry); trimmed to what a slide needs.
    let mut fed: Vec<Vec<u32>> = vec![vec![start]; streams];
    let mut done = 0u64;
    for step in 0..steps {
        let row = if used < window {
            let inputs: Vec<u32> = fed
                .iter()
                .map(|f| *f.last().expect("never empty"))
                .collect();
            model.forward(&mut cache, &inputs, &mut logits)?;
            counts.forwards += 1;
            used += 1;
            1
        } else {
            // The window is full: start again from the start token and the
            // last keep - 1 tokens (the pending input included).
            // The old cache goes first: both at once would double the peak.
            drop(cache);
            cache = model.new_cache(streams, window.min(keep + steps - step));
            counts.slides += 1;
            let context: Vec<&[u32]> = fed.iter().map(|f| &f[f.len() - (keep - 1)..]).collect();
            let mut offset = 0;
            let mut last = 0;
            while offset < keep {
                let len = piece.min(keep - offset);
                let mut tokens = Vec::with_capacity(streams * len);
                for ctx in &context {
                    for i in offset..offset + len {
                        tokens.push(if i == 0 { start } else { ctx[i - 1] });
                    }
                }
                model.forward(&mut cache, &tokens, &mut logits)?;
                counts.forwards += 1;
                offset += len;
                last = len;
            }
            used = keep;
            last
        };
        for (j, &(_, len)) in plan.segments.iter().enumerate() {
            let input = if step < len {
                done += 1;
                let at = (j * row + row - 1) * vocab;
                let symbol = coder.code(j, step, &logits[at..at + vocab])?;
                feed_as(symbol, feedable, start)
            } else {
                // Streams that finished keep running on the start token, so
                // the batch shape never changes.
                start
            };
            let f = &mut fed[j];
            f.push(input);
            if f.len() > 2 * window {
                f.drain(..f.len() - window);
            }
        }
        progress(Progress {
            done_tokens: done,
            total_tokens,
        });
    }
    Ok(counts)
}

/// Format 1: chunks coded from their own start, `max_batch` at a time.
fn run_chunked<M: LanguageModel>(
    model: &mut M,
    layout: &Layout,
    coder: &mut dyn TokenCoder,
    total_tokens: u64,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunCounts, LosslessError> {
    let mut counts = RunCounts::default();
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
        let mut inputs = vec![start; count];
        for step in 0..steps {
            model.forward(&mut cache, &inputs, &mut logits)?;
            counts.forwards += 1;
            for (j, &(_, len)) in chunks.iter().enumerate() {
                inputs[j] = if step < len {
                    done += 1;
                    let symbol =
                        coder.code(first_chunk + j, step, &logits[j * vocab..(j + 1) * vocab])?;
                    feed_as(symbol, feedable, start)
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
    Ok(counts)
}

/// Segment (or chunk) starts: `(first token, length)` per stream.
fn stream_spans(schedule: &Schedule, tokens: usize) -> Vec<(usize, usize)> {
    match schedule {
        Schedule::Chunked {
            chunk_tokens,
            max_batch,
        } => Layout::new(tokens, *chunk_tokens as usize, *max_batch as usize).chunks,
        Schedule::Windowed(w) => Plan::new(tokens, w).segments,
    }
}

/// Runs `schedule` over `tokens` tokens with `coder`.
fn run_schedule<M: LanguageModel>(
    model: &mut M,
    schedule: &Schedule,
    tokens: usize,
    coder: &mut dyn TokenCoder,
    progress: &mut dyn FnMut(Progress),
) -> Result<RunCounts, LosslessError> {
    match schedule {
        Schedule::Chunked {
            chunk_tokens,
            max_batch,
        } => {
            let layout = Layout::new(tokens, *chunk_tokens as usize, *max_batch as usize);
            run_chunked(model, &layout, coder, tokens as u64, progress)
        }
        Schedule::Windowed(w) => {
            run_windowed(model, &Plan::new(tokens, w), coder, tokens as u64, progress)
        }
    }
}

struct EncodeCoder<'a> {
    tokens: &'a [u32],
    spans: &'a [(usize, usize)],
    symbols: SymbolModel,
    encoder: Encoder,
    model_bits: f64,
    table_bits: f64,
    cold: Vec<f64>,
}

impl TokenCoder for EncodeCoder<'_> {
    fn code(&mut self, stream: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError> {
        let token = self.tokens[self.spans[stream].0 + pos];
        let cost = self
            .symbols
            .encode(stream, logits, token, &mut self.encoder)?;
        self.model_bits += if (token as usize) < logits.len() {
            tenbits_coding::log2_prob(logits, token as usize)
        } else {
            // The model has no probability for an escape; count what the
            // table charges, so the comparison stays honest.
            cost
        };
        self.table_bits += cost;
        if pos < COLD_TOKENS {
            self.cold[stream] += cost;
        }
        Ok(token)
    }
}

struct DecodeCoder<'a, 'd> {
    tokens: &'a mut [u32],
    spans: &'a [(usize, usize)],
    symbols: SymbolModel,
    decoder: Decoder<'d>,
}

impl TokenCoder for DecodeCoder<'_, '_> {
    fn code(&mut self, stream: usize, pos: usize, logits: &[f32]) -> Result<u32, LosslessError> {
        let token = self.symbols.decode(stream, logits, &mut self.decoder)?;
        self.tokens[self.spans[stream].0 + pos] = token;
        Ok(token)
    }
}

/// Checks a schedule against the model (`what` says whose it is, for the
/// message): a corrupted header or impossible options are refused before
/// anything is allocated.
fn check_schedule(schedule: &Schedule, context: usize) -> Result<(), String> {
    match *schedule {
        Schedule::Chunked {
            chunk_tokens,
            max_batch,
        } => {
            let (c, b) = (chunk_tokens as usize, max_batch as usize);
            if c == 0 || c > context || b == 0 || b > MAX_BATCH_LIMIT {
                return Err(format!(
                    "{c}-token chunks in batches of {b} (chunks must be 1 to {context} tokens, batches 1 to {MAX_BATCH_LIMIT})"
                ));
            }
        }
        Schedule::Windowed(w) => {
            let (window, keep) = (w.window as usize, w.keep as usize);
            if window < 2 || window > context || keep == 0 || keep >= window {
                return Err(format!(
                    "a {window}-token window keeping {keep} (the window must be 2 to {context} tokens, and keep 1 to window - 1)"
                ));
            }
            if w.max_streams == 0 || w.max_streams as usize > MAX_BATCH_LIMIT || w.min_segment == 0
            {
                return Err(format!(
                    "at most {} streams of at least {} tokens (streams must be 1 to {MAX_BATCH_LIMIT}, segments at least 1 token)",
                    w.max_streams, w.min_segment
                ));
            }
            if w.mixing > 1 {
                return Err(format!(
                    "mixing mode {} (this build knows 0 and 1)",
                    w.mixing
                ));
            }
        }
    }
    Ok(())
}

/// A windowed schedule shrunk to fit a model of `context` tokens (the
/// window at most the context, keeping at most half of it); the header
/// records the schedule as run.
fn fit_to_context(schedule: Schedule, context: usize) -> Schedule {
    match schedule {
        Schedule::Windowed(mut w) if w.window as usize > context => {
            w.window = context as u32;
            w.keep = w.keep.min(w.window / 2).max(1);
            Schedule::Windowed(w)
        }
        other => other,
    }
}

fn mixing_of(schedule: &Schedule) -> bool {
    matches!(schedule, Schedule::Windowed(w) if w.mixing == 1)
}

/// Compresses `data` into a `.tb` container.
pub fn compress<M: LanguageModel>(
    model: &mut M,
    data: &[u8],
    options: &Options,
    progress: &mut dyn FnMut(Progress),
) -> Result<(Vec<u8>, Stats), LosslessError> {
    let context = model.config().context_length;
    let schedule = fit_to_context(options.schedule, context);
    check_schedule(&schedule, context)
        .map_err(|e| LosslessError::Options(format!("cannot code with {e} on this model")))?;
    let tokens = model.tokenizer().encode_bytes(data)?;
    let spans = stream_spans(&schedule, tokens.len());
    let mut coder = EncodeCoder {
        tokens: &tokens,
        spans: &spans,
        symbols: SymbolModel::new(
            model.tokenizer().symbol_count(),
            spans.len(),
            mixing_of(&schedule),
        ),
        encoder: Encoder::new(),
        model_bits: 0.0,
        table_bits: 0.0,
        cold: vec![0.0; spans.len()],
    };
    let counts = run_schedule(model, &schedule, tokens.len(), &mut coder, progress)?;
    let (model_bits, table_bits) = (coder.model_bits, coder.table_bits);
    let (mix_predicted, mix_hits) = coder
        .symbols
        .mixer
        .as_ref()
        .map_or((0, 0), |m| (m.predicted, m.hit));
    let cold_starts = spans
        .iter()
        .zip(&coder.cold)
        .skip(1)
        .map(|(&(start, _), &bits)| (start, bits))
        .collect();
    let payload = coder.encoder.finish();

    let fingerprint = model.fingerprint();
    let format_version = match schedule {
        Schedule::Chunked { .. } => 1,
        Schedule::Windowed(_) => tenbits_coding::FORMAT_VERSION,
    };
    let registered = Registry::embedded()
        .model(&options.model_name)
        .ok()
        .map(|m| m.id);
    // Format 1 names every model and keeps full hashes; later formats name
    // registry models by id and keep a prefix of one digest.
    let (model_ref, files) = if format_version == 1 {
        (
            ModelRef::Named(options.model_name.clone()),
            FilesId::Full {
                model: fingerprint.model_id(),
                tokenizer: fingerprint.tokenizer_id(),
            },
        )
    } else {
        (
            registered.map_or_else(
                || ModelRef::Named(options.model_name.clone()),
                ModelRef::Registered,
            ),
            FilesId::for_format(format_version, fingerprint.files_id()),
        )
    };
    let header = Header {
        format_version,
        model: model_ref,
        files,
        adapter_id: model.adapter_id().map(|a| a.header_text()),
        lossy: options.lossy.clone(),
        schedule,
        token_count: tokens.len() as u64,
        original_len: data.len() as u64,
        checksum: tenbits_coding::header_checksum(format_version, data),
    };
    let container = write_container(&header, &payload)?;
    let batches = match schedule {
        Schedule::Chunked { max_batch, .. } => spans.len().div_ceil(max_batch as usize),
        Schedule::Windowed(_) => usize::from(!spans.is_empty()),
    };
    let stats = Stats {
        tokens: tokens.len() as u64,
        chunks: spans.len(),
        batches,
        slides: counts.slides,
        forwards: counts.forwards,
        payload_bytes: payload.len(),
        container_bytes: container.len(),
        model_bits,
        table_bits,
        cold_starts,
        mix_predicted,
        mix_hits,
    };
    Ok((container, stats))
}

/// What the tokens at each cold start would cost with context: for every
/// `(first token, _)` of [`Stats::cold_starts`], the model's bits for the
/// first [`COLD_TOKENS`] tokens there when it also sees the `context`
/// tokens before them (one forward pass per start, without mixing). The
/// difference from the recorded bits is what cutting the text cost.
pub fn warm_bits<M: LanguageModel>(
    model: &mut M,
    data: &[u8],
    cold_starts: &[(usize, f64)],
    context: usize,
) -> Result<Vec<f64>, LosslessError> {
    let tokens = model.tokenizer().encode_bytes(data)?;
    let vocab = model.vocab_size();
    let feedable = vocab.min(model.tokenizer().escape_base() as usize) as u32;
    let start = start_token(model);
    let table_len = model.tokenizer().symbol_count();
    let context = context.min(
        model
            .config()
            .context_length
            .saturating_sub(COLD_TOKENS + 1),
    );
    let mut symbols = SymbolModel::new(table_len, 1, false);
    let mut logits = Vec::new();
    let mut out = Vec::with_capacity(cold_starts.len());
    for &(first, _) in cold_starts {
        let from = first.saturating_sub(context);
        let end = (first + COLD_TOKENS).min(tokens.len());
        let mut fed = vec![start];
        fed.extend(tokens[from..end.saturating_sub(1)].iter().map(|&t| {
            if t < feedable {
                t
            } else {
                start
            }
        }));
        let mut cache = model.new_cache(1, fed.len());
        model.forward(&mut cache, &fed, &mut logits)?;
        let mut bits = 0.0;
        for (i, &token) in tokens[first..end].iter().enumerate() {
            let row = first - from + i;
            let row_logits = &logits[row * vocab..(row + 1) * vocab];
            symbols.prepare(0, row_logits);
            bits += (symbols.total as f64 / f64::from(symbols.freqs[token as usize])).log2();
        }
        out.push(bits);
    }
    Ok(out)
}

/// Bytes of a container's header (everything but the payload).
pub fn header_bytes(container: &[u8]) -> Result<usize, LosslessError> {
    Ok(container.len() - read_container(container)?.1.len())
}

/// Bytes of a container's payload (the rest is header and CRC).
pub fn payload_bytes(container: &[u8]) -> Result<usize, LosslessError> {
    Ok(read_container(container)?.1.len())
}

/// Reads a container's header without decoding it.
pub fn inspect(container: &[u8]) -> Result<Header, LosslessError> {
    Ok(stream::StreamDecoder::open(container)?.header().clone())
}

/// Decompresses a `.tb` file made by [`compress`] (or [`compress_stream`])
/// with the same model.
///
/// Returns the original bytes exactly, or an error: a different model, a
/// corrupted file, or a decoder that drifted (caught by the checksum). A
/// file of blocks reports progress in bytes of the file.
pub fn decompress<M: LanguageModel>(
    model: &mut M,
    container: &[u8],
    progress: &mut dyn FnMut(Progress),
) -> Result<Vec<u8>, LosslessError> {
    if !tenbits_coding::is_blocks(container) {
        return decompress_container(model, container, progress);
    }
    let mut out = Vec::new();
    let total = container.len() as u64;
    stream::StreamDecoder::open(container)?.run(model, &mut out, Some(total), &mut |p| {
        progress(Progress {
            done_tokens: p.done_bytes,
            total_tokens: total,
        })
    })?;
    Ok(out)
}

/// [`decompress`] of one container.
pub(crate) fn decompress_container<M: LanguageModel>(
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
    check_schedule(&header.schedule, model.config().context_length).map_err(|e| {
        LosslessError::Corrupted(format!(
            "header asks for {e}, outside what this model allows"
        ))
    })?;
    // Every coded token carries at least one byte, and costs at least
    // -log2(1 - (V-1)/2^24) bits (the frequency floor caps any probability
    // below 1; a mixer's hit flag costs at least -log2(4095/4096)), so
    // these bounds hold for every honest file and stop a forged header from
    // making us allocate without limit.
    let symbols = model.vocab_size().max(model.tokenizer().symbol_count()) as f64;
    let min_bits_per_token = (-(1.0 - (symbols - 1.0) / tenbits_coding::TOTAL as f64).log2())
        .min(-(4095.0f64 / 4096.0).log2());
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
    let spans = stream_spans(&header.schedule, token_count);
    let mut tokens = vec![0u32; token_count];
    let decoder = Decoder::new(payload).map_err(LosslessError::CorruptPayload)?;
    let mut coder = DecodeCoder {
        tokens: &mut tokens,
        spans: &spans,
        symbols: SymbolModel::new(
            model.tokenizer().symbol_count(),
            spans.len(),
            mixing_of(&header.schedule),
        ),
        decoder,
    };
    run_schedule(model, &header.schedule, token_count, &mut coder, progress)?;
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
    if let Some(stored) = header.files.short_bytes() {
        if !loaded.files_id().starts_with(stored) {
            return Err(LosslessError::WrongModel {
                file_model: model_name(&header.model),
                file_fp: Fingerprint::short_hex(stored),
                loaded_model: loaded_name.to_string(),
                loaded_fp: Fingerprint::short_hex(&loaded.files_id()),
            });
        }
    } else if let FilesId::Full { model, tokenizer } = header.files {
        if model != loaded.model_id() {
            return Err(LosslessError::WrongModel {
                file_model: model_name(&header.model),
                file_fp: Fingerprint::short_hex(&model),
                loaded_model: loaded_name.to_string(),
                loaded_fp: Fingerprint::short_hex(&loaded.model),
            });
        }
        if tokenizer != loaded.tokenizer_id() {
            return Err(LosslessError::WrongTokenizer {
                file: Fingerprint::short_hex(&tokenizer),
                loaded: Fingerprint::short_hex(&loaded.tokenizer),
            });
        }
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

    proptest! {
        #[test]
        fn plan_covers_every_token_once_within_limits(tokens in 0usize..50_000, streams in 1u32..40, min in 1u32..3000) {
            let schedule = Windowed { window: 64, keep: 8, max_streams: streams, min_segment: min, mixing: 0 };
            let plan = Plan::new(tokens, &schedule);
            prop_assert!(plan.segments.len() <= streams as usize);
            let mut next = 0;
            for &(start, len) in &plan.segments {
                prop_assert_eq!(start, next);
                prop_assert!(len >= 1);
                prop_assert!(plan.segments.len() == 1 || len >= min as usize);
                next += len;
            }
            prop_assert_eq!(next, tokens);
        }
    }

    #[test]
    fn levels_are_valid_schedules_and_six_is_the_default() {
        for n in 1..=9 {
            let l = level(n);
            assert!(
                check_schedule(&Schedule::Windowed(l.schedule), 8192).is_ok(),
                "level {n}"
            );
        }
        assert_eq!(level(DEFAULT_LEVEL).schedule, Windowed::DEFAULT);
        assert_eq!(level(0), level(1));
        assert_eq!(level(12), level(9));
    }

    #[test]
    fn chunks_are_balanced() {
        let layout = Layout::new(1025, 512, 32);
        assert_eq!(layout.chunks, vec![(0, 342), (342, 342), (684, 341)]);
    }
}
