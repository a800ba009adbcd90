//! Next-token distributions from real language models, and text generation
//! over them.
//!
//! The principal types:
//!
//! * [`LanguageModel`] — the seam the rest of tenbits codes against: feed one
//!   or more tokens to each stream of a batch, get logits back, with the
//!   key/value cache kept in a [`LanguageModel::Cache`].
//! * [`BatchedModel`] — what generation needs on top: padded batches of
//!   streams of different lengths ([`BatchedModel::forward_padded`]) and
//!   caches that fork a shared prefix ([`BatchCache::fork`]).
//! * [`OnnxModel`] — the implementation of both on ONNX Runtime (`ort`,
//!   loaded dynamically from the library `scripts/setup.py` fetched), with
//!   its [`KvCache`].
//! * [`TextTokenizer`] — byte-exact tokenization over a `tokenizer.json`.
//! * [`ChatTemplate`] — the model's own Jinja chat template (from its GGUF),
//!   rendered with `minijinja` as Hugging Face renders it, then tokenized.
//! * [`Generator`] — text generation over a [`BatchedModel`] (an
//!   [`OnnxModel`] unless told otherwise): seeded [`Sampling`], stop strings,
//!   streaming, batches of [`Request`]s sharing a prompt prefix, yes/no
//!   scoring ([`Generator::p_yes`]) and candidate scoring.
//! * [`Registry`] — the models this build knows (the crate's `models.toml`) and
//!   where the cache keeps them; [`Fingerprint`] identifies a model's files.
//! * [`InferenceError`] — what can go wrong, by kind: set-up, ONNX Runtime
//!   (with `ort`'s error as source), caller mistakes, chat templates.
//!
//! This crate knows nothing of coding or actors.
//!
//! ```
//! use std::path::Path;
//! use tenbits_inference::{Generator, LanguageModel, Message, OnnxModel, Sampling, SessionSettings};
//!
//! # fn main() -> Result<(), tenbits_inference::InferenceError> {
//! // The repository's tiny random-weight model; a registered one is at
//! // `Registry::embedded().model("smollm2-135m")?.cached_dir(&cache_dir())`.
//! let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
//! let mut model = OnnxModel::load(&dir, SessionSettings { threads: 1 })?;
//!
//! // Next-token logits for every fed position, as the lossless coder uses them.
//! let prompt = model.tokenizer().encode_bytes(b"The capital of France is")?;
//! let mut cache = model.new_cache(1, prompt.len());
//! let mut logits = Vec::new();
//! model.forward(&mut cache, &prompt, &mut logits)?;
//! assert_eq!(logits.len(), prompt.len() * model.vocab_size());
//!
//! // A reply through the model's chat template, greedy, at most 8 tokens.
//! let mut generator = Generator::new(model)?;
//! let reply = generator.chat(&[Message::user("Hi")], &Sampling::greedy(8))?;
//! assert!(reply.tokens.len() <= 8);
//! println!("{:?}", reply.text);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

mod adapter;
#[cfg(test)]
mod fake;
mod generate;
mod onnx;
mod registry;
mod template;
mod tokenizer;

pub use adapter::{Adapter, AdapterId, ADAPTER_HASH_LEN};
pub use generate::{
    token_logprobs, Completion, FinishReason, GenerationStats, Generator, Message, Request, Role,
    Sampling,
};
pub use onnx::{runtime_library_path, KvCache, OnnxModel, SessionSettings};
pub use registry::{
    adapter_dir, cache_dir, find_adapter, installed_adapter_name, installed_adapters,
    load_installed_adapter, AdapterEntry, ConverterEntry, ModelEntry, ModelPart, Registry,
    RuntimeEntry, EMBEDDED_REGISTRY,
};
pub use template::{ChatTemplate, CHATML_TEMPLATE};
pub use tokenizer::TextTokenizer;

/// A model that gives next-token logits for a batch of independent streams.
///
/// Streams advance together: every call feeds the same number of tokens to
/// each stream. Calling [`LanguageModel::forward`] with the same cache state
/// and tokens gives bit-identical logits; the lossless coder relies on it.
pub trait LanguageModel {
    /// The key/value cache of one batch of streams.
    type Cache;

    /// What the model is (name, special tokens, context length).
    fn config(&self) -> &ModelConfig;

    /// Identifies the exact model and tokenizer files.
    fn fingerprint(&self) -> &Fingerprint;

    /// The tokenizer whose ids the model takes.
    fn tokenizer(&self) -> &TextTokenizer;

    /// Number of logits per position.
    fn vocab_size(&self) -> usize;

    /// The LoRA adapter the model runs with, if any (see [`Adapter`]).
    /// Coded files record it, so they decode only under the same one.
    fn adapter_id(&self) -> Option<&AdapterId> {
        None
    }

    /// An empty cache for `batch` streams of up to `capacity` tokens each.
    /// Models with a growing cache may take more; none take fewer.
    fn new_cache(&self, batch: usize, capacity: usize) -> Self::Cache;

    /// Feeds `tokens` (`batch × seq`, stream-major) and writes the logits of
    /// every fed position into `logits` (`batch × seq × vocab`).
    fn forward(
        &mut self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError>;
}

/// The cache of a [`BatchedModel`]: `batch` streams of `capacity` slots,
/// the first `past_len` of which are used (by real tokens or padding).
pub trait BatchCache: Sized {
    /// Number of streams.
    fn batch(&self) -> usize;

    /// Slots already used by the longest stream (real tokens and padding).
    fn past_len(&self) -> usize;

    /// Most slots each stream can hold.
    fn capacity(&self) -> usize;

    /// A new cache of `batch` streams and `capacity` slots whose every
    /// stream starts as a copy of stream `row` of this one: a prompt prefix
    /// computed once and shared by many requests. Fails with
    /// [`InferenceError::ForkUnsupported`] where the model cannot fork (see
    /// [`BatchedModel::can_fork`]).
    fn fork(&self, row: usize, batch: usize, capacity: usize) -> Result<Self, InferenceError>;
}

/// What [`Generator`] needs of a model beyond [`LanguageModel`]: streams of
/// different lengths side by side in one batch (padding), and caches that
/// fork so a shared prompt prefix is computed once.
///
/// [`OnnxModel`] is the implementation; the generation logic is tested
/// against a small deterministic fake through this trait.
pub trait BatchedModel: LanguageModel<Cache: BatchCache> {
    /// [`LanguageModel::forward`] where some fed tokens may be padding:
    /// `real[i]` says whether `tokens[i]` is a real token (all are when
    /// `real` is `None`). Padding takes a slot but no position, and no later
    /// token attends to it; its logits are meaningless. This is how requests
    /// of different lengths share a batch. A stream fed only padding in a
    /// call may keep its slots (the ONNX static cache does), so
    /// [`BatchCache::past_len`] counts the longest stream's.
    fn forward_padded(
        &mut self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        real: Option<&[bool]>,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError>;

    /// As [`Self::forward_padded`], but returns only the logits at `rows`:
    /// for each stream, the same number `k` of indices into this call's
    /// positions (`rows.len() = batch × k`), giving `batch × k × vocab`
    /// logits. The cache advances exactly as with `forward_padded`.
    ///
    /// Why: yes/no scoring and prefill need one row per stream, and a full
    /// LM head over every position is about a quarter of a small model's
    /// prefill. The default computes every row and keeps those asked for;
    /// [`OnnxModel`] loaded with [`OnnxModel::load_for_rows`] computes only
    /// them.
    fn forward_rows(
        &mut self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        real: Option<&[bool]>,
        rows: &[usize],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        let batch = cache.batch();
        let seq = check_rows(tokens.len(), batch, rows)?;
        let mut all = Vec::new();
        self.forward_padded(cache, tokens, real, &mut all)?;
        pick_rows(&all, batch, seq, self.vocab_size(), rows, logits);
        Ok(())
    }

    /// Whether this model's caches can [`BatchCache::fork`] (for
    /// [`OnnxModel`], those of [`KvLayout::Static`] models). Where they
    /// cannot, [`Generator`] computes every prompt in full, and runs a lone
    /// request as a batch of one.
    fn can_fork(&self) -> bool;
}

/// Checks the `rows` of [`BatchedModel::forward_rows`] against a call of
/// `tokens` tokens in `batch` streams; returns the positions per stream.
pub(crate) fn check_rows(
    tokens: usize,
    batch: usize,
    rows: &[usize],
) -> Result<usize, InferenceError> {
    if batch == 0 || tokens == 0 || !tokens.is_multiple_of(batch) {
        return Err(InferenceError::BatchMismatch { tokens, batch });
    }
    let seq = tokens / batch;
    if rows.is_empty() || !rows.len().is_multiple_of(batch) || rows.iter().any(|&r| r >= seq) {
        return Err(InferenceError::RowsMismatch {
            rows: rows.len(),
            batch,
            seq,
        });
    }
    Ok(seq)
}

/// Copies the logits at `rows` (checked by [`check_rows`]) out of every
/// position's (`batch × seq × vocab`).
pub(crate) fn pick_rows(
    all: &[f32],
    batch: usize,
    seq: usize,
    vocab: usize,
    rows: &[usize],
    logits: &mut Vec<f32>,
) {
    let k = rows.len() / batch;
    logits.clear();
    for (i, &row) in rows.iter().enumerate() {
        let at = (i / k) * seq + row;
        logits.extend_from_slice(&all[at * vocab..(at + 1) * vocab]);
    }
}

/// What `config.json` beside a converted model says about it.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelConfig {
    /// Name from the source file's metadata.
    pub name: String,
    /// The GGUF's `general.architecture` (`llama`, `qwen2`, …).
    pub architecture: String,
    /// Number of logits per position (may exceed the tokenizer's ids).
    pub vocab_size: usize,
    /// Most positions the model was trained on.
    pub context_length: usize,
    /// The beginning-of-text token, if the model has one.
    pub bos_token_id: Option<u32>,
    /// The end-of-text token, if the model has one.
    pub eos_token_id: Option<u32>,
    /// The Jinja chat template the GGUF carried
    /// (`tokenizer.chat_template`), rendered by [`ChatTemplate`].
    #[serde(default)]
    pub chat_template: Option<String>,
    /// How the model takes its key/value cache (see [`KvLayout`]).
    #[serde(default)]
    pub kv_cache: KvLayout,
}

/// The two key/value cache layouts a model file may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KvLayout {
    /// Hugging Face optimum's: `past_key_values.*` hold the `past` tokens so
    /// far and `present.*` return them with the new ones appended. Each step
    /// copies the whole cache, which dominates at long contexts.
    #[default]
    Concat,
    /// tenbits' own: `past_key_values.*` are fixed buffers of `capacity`
    /// slots (the caller marks used slots in `attention_mask`, whose length
    /// is `capacity + seq`), and `present.*` return only the new tokens'
    /// keys and values, which the caller writes into the next free slots.
    Static,
}

impl ModelConfig {
    /// Reads a `config.json`.
    pub fn load(path: &Path) -> Result<ModelConfig, InferenceError> {
        let bytes = std::fs::read(path).map_err(|e| InferenceError::io(path, e))?;
        serde_json::from_slice(&bytes).map_err(|source| InferenceError::Config {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// sha256 of a model file and of its tokenizer: two files give the same
/// fingerprint only if they compute the same distributions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint {
    /// sha256 over the sha256 of `model.onnx` and of each external weight file.
    pub model: [u8; 32],
    /// sha256 of `tokenizer.json`.
    pub tokenizer: [u8; 32],
}

impl Fingerprint {
    /// Hashes the model file, its external weight files if any (files beside
    /// it named after it, such as `model.onnx.data`, in name order), and the
    /// tokenizer. Large models keep their weights outside `model.onnx`, so
    /// hashing the graph alone would not tell two models apart.
    ///
    /// Each file's sha256 is remembered in the cache directory
    /// (`fingerprints/`), keyed by its path, length and modification time,
    /// so loading a model does not read its weights twice; a file that
    /// changes is hashed again.
    pub fn of_files(model: &Path, tokenizer: &Path) -> Result<Fingerprint, InferenceError> {
        let mut hasher = Sha256::new();
        hasher.update(sha256_remembered(model)?);
        for data in external_data_files(model)? {
            hasher.update(sha256_remembered(&data)?);
        }
        Ok(Fingerprint {
            model: hasher.finalize().into(),
            tokenizer: sha256_remembered(tokenizer)?,
        })
    }

    /// The fingerprint of the model a directory holds (`model.onnx`, its
    /// weight files and `tokenizer.json`): what loading it would give,
    /// without starting a session.
    pub fn of_dir(dir: &Path) -> Result<Fingerprint, InferenceError> {
        let (model, tokenizer) = (dir.join("model.onnx"), dir.join("tokenizer.json"));
        for path in [&model, &tokenizer] {
            if !path.is_file() {
                return Err(InferenceError::MissingModelFile { path: path.clone() });
            }
        }
        Self::of_files(&model, &tokenizer)
    }

    /// The first 16 bytes of the model hash, as `.tb` headers record it.
    pub fn model_id(&self) -> [u8; 16] {
        self.model[..16].try_into().expect("32 >= 16")
    }

    /// The first 16 bytes of the tokenizer hash, as `.tb` headers record it.
    pub fn tokenizer_id(&self) -> [u8; 16] {
        self.tokenizer[..16].try_into().expect("32 >= 16")
    }

    /// The 4-byte identity format-2 `.tb` headers keep (format 3 keeps
    /// its first 2): the first bytes of SHA-256(model hash ‖ tokenizer
    /// hash), so one field refuses a wrong model and a wrong tokenizer
    /// alike.
    pub fn files_id(&self) -> [u8; 4] {
        let digest = Sha256::new()
            .chain_update(self.model)
            .chain_update(self.tokenizer)
            .finalize();
        digest[..4].try_into().expect("32 >= 4")
    }

    /// Hex form of the first (at most 6) bytes of a hash, for messages.
    pub fn short_hex(hash: &[u8]) -> String {
        adapter::hex(&hash[..hash.len().min(6)])
    }
}

/// Files beside `model` whose names extend its name (`model.onnx.data`,
/// `model.onnx_data`), sorted.
fn external_data_files(model: &Path) -> Result<Vec<PathBuf>, InferenceError> {
    let (Some(dir), Some(name)) = (model.parent(), model.file_name()) else {
        return Ok(Vec::new());
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let name = name.to_string_lossy();
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| InferenceError::io(dir, e))? {
        let entry = entry.map_err(|e| InferenceError::io(dir, e))?;
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if file_name.len() > name.len()
            && file_name.starts_with(name.as_ref())
            && entry.path().is_file()
        {
            found.push(entry.path());
        }
    }
    found.sort();
    Ok(found)
}

/// [`sha256_file`], remembered in `<cache>/fingerprints/` by the file's
/// canonical path, length, modification time (nanoseconds) and inode. The
/// record is only a shortcut: when it cannot be read or written, or the
/// file is younger than a few seconds, the file is hashed.
fn sha256_remembered(path: &Path) -> Result<[u8; 32], InferenceError> {
    let stamp = std::fs::canonicalize(path).ok().and_then(|full| {
        let meta = std::fs::metadata(&full).ok()?;
        let modified = meta.modified().ok()?;
        // A file changed in the last seconds may change again within the
        // clock's resolution without its stamp changing (git's "racily
        // clean" case): hash it afresh and remember nothing.
        if modified.elapsed().map_or(true, |age| age.as_secs() < 3) {
            return None;
        }
        let mtime = modified
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_nanos();
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&meta);
        #[cfg(not(unix))]
        let inode = 0u64;
        Some((full, format!("{} {mtime} {inode}", meta.len())))
    });
    let Some((full, stamp)) = stamp else {
        return sha256_file(path);
    };
    let key = adapter::hex(&Sha256::digest(full.to_string_lossy().as_bytes())[..8]);
    let record = registry::cache_dir().join("fingerprints").join(&key);
    if let Ok(text) = std::fs::read_to_string(&record) {
        let mut lines = text.lines();
        if let (Some(s), Some(hex), Some(p)) = (lines.next(), lines.next(), lines.next()) {
            if s == stamp && p == full.to_string_lossy() {
                if let Some(sum) = adapter::parse_hex::<32>(hex) {
                    return Ok(sum);
                }
            }
        }
    }
    let sum = sha256_file(path)?;
    let text = format!(
        "{stamp}\n{}\n{}\n",
        adapter::hex(&sum),
        full.to_string_lossy()
    );
    // Best effort, written whole (temp file, then rename).
    if let Some(dir) = record.parent() {
        let tmp = dir.join(format!(".{key}.{}.tmp", std::process::id()));
        let _ = std::fs::create_dir_all(dir)
            .and_then(|_| std::fs::write(&tmp, text))
            .and_then(|_| std::fs::rename(&tmp, &record));
        let _ = std::fs::remove_file(&tmp);
    }
    Ok(sum)
}

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<[u8; 32], InferenceError> {
    let mut file = std::fs::File::open(path).map_err(|e| InferenceError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| InferenceError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_covers_external_weight_files() {
        let dir = std::env::temp_dir().join(format!("tenbits-fp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (model, tokenizer) = (dir.join("model.onnx"), dir.join("tokenizer.json"));
        std::fs::write(&model, b"graph").unwrap();
        std::fs::write(&tokenizer, b"{}").unwrap();
        let graph_only = Fingerprint::of_files(&model, &tokenizer).unwrap();
        std::fs::write(dir.join("model.onnx.data"), b"weights A").unwrap();
        let with_a = Fingerprint::of_files(&model, &tokenizer).unwrap();
        std::fs::write(dir.join("model.onnx.data"), b"weights B").unwrap();
        let with_b = Fingerprint::of_files(&model, &tokenizer).unwrap();
        std::fs::write(dir.join("unrelated.bin"), b"x").unwrap();
        let with_b_again = Fingerprint::of_files(&model, &tokenizer).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_ne!(graph_only.model, with_a.model);
        assert_ne!(with_a.model, with_b.model);
        assert_eq!(with_b, with_b_again);
        assert_eq!(graph_only.tokenizer, with_b.tokenizer);
    }
}

/// Everything that can go wrong loading or running a model.
///
/// Setting up ([`InferenceError::MissingModelFile`],
/// [`InferenceError::RuntimeUnavailable`], …), ONNX Runtime failures
/// ([`InferenceError::Session`], [`InferenceError::Runtime`], with the
/// `ort` error as source), caller mistakes ([`InferenceError::BatchMismatch`],
/// [`InferenceError::CacheFull`], [`InferenceError::EmptyPrompt`], …) and
/// chat templates ([`InferenceError::Template`], with the `minijinja` error
/// as source) are told apart, so callers can match on what went wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InferenceError {
    /// The registry has no model of this name.
    #[error("unknown model `{name}` (known: {known})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The registered names, comma-separated.
        known: String,
    },
    /// A registered model has not been fetched and converted into the cache.
    #[error(
        "model `{name}` is not set up in {dir}; run `python3 scripts/setup.py --model {name}`"
    )]
    NotSetUp {
        /// The model's registry name.
        name: String,
        /// Where it would be.
        dir: PathBuf,
    },
    /// A model file is not in the cache (or the directory given).
    #[error("model file {path} is missing; run `python3 scripts/setup.py --model NAME` to fetch and convert the model")]
    MissingModelFile {
        /// The file looked for.
        path: PathBuf,
    },
    /// The ONNX graph lacks an input or output a decoder-with-past needs.
    #[error("{path}: not a decoder-with-past model in the expected layout: {what}")]
    ModelLayout {
        /// The model file.
        path: PathBuf,
        /// What is missing or malformed.
        what: String,
    },
    /// An adapter file does not load as an ONNX Runtime `.onnx_adapter`.
    #[error("{path} is not a usable LoRA adapter: {why}")]
    BadAdapter {
        /// The file.
        path: PathBuf,
        /// ONNX Runtime's reason.
        why: String,
    },
    /// An adapter was asked of a model loaded without its LoRA graph.
    #[error(
        "`{model}` was loaded without LoRA inputs; it needs a conversion with --lora-rank \
         (scripts/setup.py does this for models with adapters in crates/inference/models.toml)"
    )]
    NoLoraGraph {
        /// The model's name.
        model: String,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `config.json` does not parse as a [`ModelConfig`].
    #[error("{path} is not a valid model config: {source}")]
    Config {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// A `tokenizer.json` does not load.
    #[error("cannot parse tokenizer.json: {source}")]
    TokenizerFile {
        /// The `tokenizers` crate's error.
        source: tokenizers::Error,
    },
    /// A tokenizer loads but is not one [`TextTokenizer`] supports.
    #[error("tokenizer: {what}")]
    UnsupportedTokenizer {
        /// What is missing.
        what: String,
    },
    /// The tokenizer failed on some text.
    #[error("tokenization failed: {source}")]
    Tokenization {
        /// The `tokenizers` crate's error.
        source: tokenizers::Error,
    },
    /// The ONNX Runtime library could not be found, loaded or started.
    #[error("{what}")]
    RuntimeUnavailable {
        /// What failed, with the library's path.
        what: String,
        /// ONNX Runtime's error, where it gave one.
        source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync>>,
    },
    /// ONNX Runtime refused a model file or a session setting.
    #[error("{path}: {source}")]
    Session {
        /// The model file.
        path: PathBuf,
        /// ONNX Runtime's error.
        source: ort::Error,
    },
    /// ONNX Runtime failed while running the model.
    #[error("ONNX Runtime: forward pass failed: {0}")]
    Runtime(#[from] ort::Error),
    /// The model returned outputs of another shape than its config says.
    #[error("the model's output does not match its config: {what}")]
    UnexpectedOutput {
        /// What differs.
        what: String,
    },
    /// The tokens fed do not split evenly into the cache's streams.
    #[error("{tokens} tokens do not split into {batch} streams")]
    BatchMismatch {
        /// Tokens fed.
        tokens: usize,
        /// Streams in the cache.
        batch: usize,
    },
    /// [`BatchedModel::forward_rows`] got rows that are not the same
    /// number per stream, or that point past the call's positions.
    #[error("{rows} logit rows do not split evenly into {batch} streams of positions 0..{seq}")]
    RowsMismatch {
        /// Rows asked for.
        rows: usize,
        /// Streams in the call.
        batch: usize,
        /// Positions per stream in the call.
        seq: usize,
    },

    /// [`BatchedModel::forward_padded`] got other than one flag per token.
    #[error("{flags} padding flags for {tokens} tokens; one per token is needed")]
    PaddingMismatch {
        /// Tokens fed.
        tokens: usize,
        /// Flags given.
        flags: usize,
    },
    /// A fed token id is not one of the model's.
    #[error("token id {token} is outside the model's {vocab} ids")]
    TokenOutOfRange {
        /// The id.
        token: u32,
        /// The model's vocabulary size.
        vocab: usize,
    },
    /// The fed tokens do not fit in the cache.
    #[error("the cache holds {capacity} tokens per stream; {past} + {seq} do not fit")]
    CacheFull {
        /// Slots per stream.
        capacity: usize,
        /// Slots already used.
        past: usize,
        /// Slots asked for.
        seq: usize,
    },
    /// The model's caches cannot fork (see [`BatchedModel::can_fork`]).
    #[error("sharing a prompt prefix needs a static-cache model (convert with --kv-cache static)")]
    ForkUnsupported,
    /// [`BatchCache::fork`] was asked for a stream or size the cache lacks.
    #[error("cannot fork stream {row} of {batch} ({past_len} slots) into {capacity} slots")]
    ForkOutOfRange {
        /// The stream asked for.
        row: usize,
        /// Streams in the cache.
        batch: usize,
        /// Slots used in the cache.
        past_len: usize,
        /// Slots asked for.
        capacity: usize,
    },
    /// A generation request has no prompt tokens.
    #[error("request {index} has an empty prompt")]
    EmptyPrompt {
        /// Its index among the requests.
        index: usize,
    },
    /// The chat template does not parse, or failed rendering a
    /// conversation (including a template's own `raise_exception`).
    #[error("the chat template of {model}: {source}")]
    Template {
        /// The model's name.
        model: String,
        /// `minijinja`'s error.
        source: minijinja::Error,
    },
    /// The model carries no chat template, and has no ChatML tokens to
    /// fall back on.
    #[error("{model} has no chat template (and no <|im_start|>/<|im_end|> tokens)")]
    NoChatTemplate {
        /// The model's name.
        model: String,
    },
    /// Neither the chat template nor the config tells which token ends a
    /// turn.
    #[error("cannot tell which token ends a turn in {model}: its chat template puts no special token after a reply, and it has no end-of-text token")]
    NoEndOfTurn {
        /// The model's name.
        model: String,
    },
    /// [`Generator::p_yes`] cannot compare "Yes" and "No".
    #[error("\"Yes\" and \"No\" start with the same token in this vocabulary")]
    YesNoIndistinct,
}

impl InferenceError {
    fn io(path: &Path, source: std::io::Error) -> InferenceError {
        InferenceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
