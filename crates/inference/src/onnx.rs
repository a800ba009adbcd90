//! [`OnnxModel`]: a [`LanguageModel`] backed by ONNX Runtime through `ort`.
//!
//! The model file follows the layout of Hugging Face optimum's
//! decoder-with-past exports (`input_ids`, `attention_mask`, `position_ids`,
//! `past_key_values.{i}.key|value` → `logits`, `present.{i}.key|value`), so
//! a user's own export loads through the same code as ours.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use ort::session::builder::GraphOptimizationLevel;
use ort::session::{RunOptions, Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};

/// The graph with LoRA inputs, beside `model.onnx` (see [`crate::adapter`]).
const LORA_GRAPH: &str = "model-lora.onnx";

/// The graph that returns logits only at the rows asked for (input
/// `logit_rows`), derived from `model.onnx` by
/// `scripts/tenbits_convert/rows.py`; see [`OnnxModel::load_for_rows`].
const ROWS_GRAPH: &str = "model-rows.onnx";

/// Metadata key of [`ROWS_GRAPH`]: the sha256 of the `model.onnx` it was
/// derived from, in hex.
const ROWS_BASE_KEY: &str = "tenbits.base_sha256";

/// Which of a model directory's graphs a session runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Graph {
    /// `model.onnx`: logits at every position.
    Base,
    /// [`LORA_GRAPH`].
    Lora,
    /// [`ROWS_GRAPH`].
    Rows,
}

use crate::adapter::{ActiveAdapter, Adapter, AdapterId};
use crate::{
    BatchCache, BatchedModel, Fingerprint, InferenceError, KvLayout, LanguageModel, ModelConfig,
    TextTokenizer,
};

/// Why ONNX Runtime could not be started, kept for every later caller.
type StartError = (String, Option<Arc<dyn std::error::Error + Send + Sync>>);

/// ONNX Runtime allows one environment per process; every session shares it.
static ENVIRONMENT: OnceLock<Result<ort::environment::Environment, StartError>> = OnceLock::new();

/// Where the ONNX Runtime shared library is looked for: `ORT_DYLIB_PATH`,
/// else the copy `scripts/setup.py` put in the cache.
pub fn runtime_library_path() -> PathBuf {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let registry = crate::Registry::embedded();
    registry.runtime.cached_path(&crate::cache_dir())
}

/// Loads ONNX Runtime (once per process) and returns the shared environment.
pub(crate) fn environment() -> Result<&'static ort::environment::Environment, InferenceError> {
    let env = ENVIRONMENT.get_or_init(|| {
        let path = runtime_library_path();
        if !path.is_file() {
            return Err((format!(
                "ONNX Runtime library not found at {}; run `python3 scripts/setup.py` to fetch it, or set ORT_DYLIB_PATH",
                path.display()
            ), None));
        }
        let builder = ort::init_from(&path).map_err(|e| {
            (
                format!("cannot load ONNX Runtime from {}: {e}", path.display()),
                Some(Arc::new(e) as Arc<dyn std::error::Error + Send + Sync>),
            )
        })?;
        builder
            .with_name("tenbits")
            .build()
            .map_err(|e| {
                let what = format!("cannot start ONNX Runtime: {e}");
                (what, Some(Arc::new(e) as Arc<dyn std::error::Error + Send + Sync>))
            })
    });
    env.as_ref()
        .map_err(|(what, source)| InferenceError::RuntimeUnavailable {
            what: what.clone(),
            source: source.clone(),
        })
}

/// Settings that fix how the model computes, so results can be reproduced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// Intra-op threads. Results are checked to be equal for 1 and 2.
    pub threads: usize,
}

impl Default for SessionSettings {
    fn default() -> Self {
        SessionSettings {
            threads: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1)
                .min(4),
        }
    }
}

/// A decoder-only language model in an ONNX file, with its tokenizer.
pub struct OnnxModel {
    session: Session,
    config: ModelConfig,
    tokenizer: TextTokenizer,
    fingerprint: Fingerprint,
    /// Input names of the past key/value tensors, in layer order (key, value).
    past_names: Vec<String>,
    /// Output names of the present key/value tensors, matching `past_names`.
    present_names: Vec<String>,
    kv_heads: usize,
    head_dim: usize,
    vocab: usize,
    layout: KvLayout,
    /// Whether the session runs `model-lora.onnx` (adapters can be set).
    lora: bool,
    /// Whether the session runs `model-rows.onnx` (takes `logit_rows`).
    rows: bool,
    /// The active adapter and the run options that bind it.
    adapter: Option<ActiveAdapter>,
}

/// The key/value cache of a batch of independent streams.
///
/// A slot may hold a padding token that no later token attends to (see
/// [`BatchedModel::forward_padded`]), so streams of different lengths share
/// one batch. Each stream keeps its own position counter and, in a static
/// cache, its own slots: a call that feeds a stream only padding leaves it
/// as it was. Why: a stream's tokens then sit in the slots they fill when
/// it runs alone, and the attention sums over them in the same pieces. A
/// short prompt beside one 300 tokens longer otherwise had its generated
/// tokens' keys past slot 256, which ONNX Runtime's matmul adds up as a
/// separate piece: another rounding, and with the real models another
/// greedy continuation now and then (see `tests/batch_layout.rs`).
pub struct KvCache {
    batch: usize,
    past_len: usize,
    capacity: usize,
    kv_heads: usize,
    head_dim: usize,
    /// Per stream, whether each of its slots holds a real token: its length
    /// is the slots the stream has used (all `past_len` with a concat cache).
    valid: Vec<Vec<bool>>,
    /// Per stream, the position the next real token gets.
    next_pos: Vec<usize>,
    storage: KvStorage,
}

enum KvStorage {
    /// [`KvLayout::Concat`]: the previous step's `present.*` outputs,
    /// `[batch, kv_heads, past_len, head_dim]`; empty before the first step.
    Concat(Vec<DynValue>),
    /// [`KvLayout::Static`]: one zeroed buffer per past input,
    /// `[batch, kv_heads, capacity, head_dim]`, filled slot by slot.
    Static(Vec<Vec<f32>>),
}

impl BatchCache for KvCache {
    /// Number of streams.
    fn batch(&self) -> usize {
        self.batch
    }

    /// Slots already used by the longest stream (real tokens and padding).
    fn past_len(&self) -> usize {
        self.past_len
    }

    /// Most tokens each stream can hold.
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Only caches of [`KvLayout::Static`] models fork.
    fn fork(&self, row: usize, batch: usize, capacity: usize) -> Result<KvCache, InferenceError> {
        let KvStorage::Static(buffers) = &self.storage else {
            return Err(InferenceError::ForkUnsupported);
        };
        let len = self.valid.get(row).map_or(self.past_len, Vec::len);
        if row >= self.batch || capacity < len {
            return Err(InferenceError::ForkOutOfRange {
                row,
                batch: self.batch,
                past_len: len,
                capacity,
            });
        }
        let (heads, dim, old_cap) = (self.kv_heads, self.head_dim, self.capacity);
        let forked = buffers
            .iter()
            .map(|src| {
                let mut dst = vec![0.0f32; batch * heads * capacity * dim];
                for b in 0..batch {
                    for h in 0..heads {
                        let from = ((row * heads + h) * old_cap) * dim;
                        let to = ((b * heads + h) * capacity) * dim;
                        dst[to..to + len * dim].copy_from_slice(&src[from..from + len * dim]);
                    }
                }
                dst
            })
            .collect();
        Ok(KvCache {
            batch,
            past_len: len,
            capacity,
            kv_heads: heads,
            head_dim: dim,
            valid: vec![self.valid[row].clone(); batch],
            next_pos: vec![self.next_pos[row]; batch],
            storage: KvStorage::Static(forked),
        })
    }
}

impl OnnxModel {
    /// Loads `model.onnx`, `tokenizer.json` and `config.json` from `dir`.
    pub fn load(dir: &Path, settings: SessionSettings) -> Result<OnnxModel, InferenceError> {
        Self::load_graph(dir, settings, Graph::Base)
    }

    /// As [`Self::load`], but runs `model-rows.onnx` where the directory
    /// has one derived from this `model.onnx`, so that
    /// [`BatchedModel::forward_rows`] computes the LM head only at the rows
    /// asked for: what generation, yes/no scoring and prefill need. The
    /// layers and the cache are the base graph's; the fingerprint is the
    /// base model's. Without a matching rows graph this is [`Self::load`].
    ///
    /// The lossless coder, which needs every position's logits, loads the
    /// base graph: the head's rows are the same computation, but one
    /// process must not code with one graph what another decodes with the
    /// other.
    pub fn load_for_rows(
        dir: &Path,
        settings: SessionSettings,
    ) -> Result<OnnxModel, InferenceError> {
        // `TENBITS_NO_ROWS_GRAPH=1` runs the base graph instead: the "before"
        // of `bench swarm`'s comparison, a developer's switch.
        let disabled = std::env::var_os("TENBITS_NO_ROWS_GRAPH").is_some_and(|v| v == "1");
        if dir.join(ROWS_GRAPH).is_file() && !disabled {
            Self::load_graph(dir, settings, Graph::Rows)
        } else {
            Self::load(dir, settings)
        }
    }

    /// Whether the session computes logits only at the rows asked for.
    pub fn computes_rows_only(&self) -> bool {
        self.rows
    }

    /// As [`Self::load`], but runs `model-lora.onnx`, the graph with LoRA
    /// inputs, so that [`Self::set_adapter`] can switch adapters per run.
    /// Without an adapter it computes the base model's logits bit for bit
    /// (checked by tests), a little slower. The fingerprint stays the base
    /// model's: the adapter is identified apart ([`Self::adapter_id`]).
    pub fn load_for_adapters(
        dir: &Path,
        settings: SessionSettings,
    ) -> Result<OnnxModel, InferenceError> {
        Self::load_graph(dir, settings, Graph::Lora)
    }

    /// Whether `dir` holds a graph with LoRA inputs.
    pub fn has_lora_graph(dir: &Path) -> bool {
        dir.join(LORA_GRAPH).is_file()
    }

    /// Makes `adapter` active for the following runs, or with `None` goes
    /// back to the base model. Fails on a model loaded without its LoRA
    /// graph ([`Self::load_for_adapters`]).
    pub fn set_adapter(&mut self, adapter: Option<Arc<Adapter>>) -> Result<(), InferenceError> {
        if !self.lora && adapter.is_some() {
            return Err(InferenceError::NoLoraGraph {
                model: self.config.name.clone(),
            });
        }
        self.adapter = match adapter {
            None => None,
            Some(adapter) => {
                let mut options = RunOptions::new()?;
                options.add_adapter(&adapter.inner)?;
                Some(ActiveAdapter { adapter, options })
            }
        };
        Ok(())
    }

    fn load_graph(
        dir: &Path,
        settings: SessionSettings,
        graph: Graph,
    ) -> Result<OnnxModel, InferenceError> {
        let base_path = dir.join("model.onnx");
        let (lora, rows) = (graph == Graph::Lora, graph == Graph::Rows);
        let model_path = match graph {
            Graph::Base => base_path.clone(),
            Graph::Lora => dir.join(LORA_GRAPH),
            Graph::Rows => dir.join(ROWS_GRAPH),
        };
        let tokenizer_path = dir.join("tokenizer.json");
        for path in [&model_path, &tokenizer_path] {
            if !path.is_file() {
                return Err(InferenceError::MissingModelFile { path: path.clone() });
            }
        }
        let config = ModelConfig::load(&dir.join("config.json"))?;
        let tokenizer = TextTokenizer::from_file(&tokenizer_path)?;
        let fingerprint = Fingerprint::of_dir(dir)?;

        let env = environment()?;
        let ort_err = |source: ort::Error| InferenceError::Session {
            path: model_path.clone(),
            source,
        };
        let builder = Session::builder(env)
            .map_err(ort_err)?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(|e| ort_err(e.into()))?
            .with_intra_threads(settings.threads.max(1))
            .map_err(|e| ort_err(e.into()))?
            .with_inter_threads(1)
            .map_err(|e| ort_err(e.into()))?
            .with_parallel_execution(false)
            .map_err(|e| ort_err(e.into()))?
            .with_deterministic_compute(true)
            .map_err(|e| ort_err(e.into()))?
            // The LoRA graph's inputs have default initializers, which ONNX
            // Runtime warns about once per input; that is the design.
            .with_log_level(if lora {
                ort::logging::LogLevel::Error
            } else {
                ort::logging::LogLevel::Warning
            })
            .map_err(|e| ort_err(e.into()))?;
        // `TENBITS_ORT_PROFILE=PREFIX` writes ONNX Runtime's per-operator
        // trace (PREFIX_<date>.json) for profiling, a developer's tool.
        let mut builder = match std::env::var_os("TENBITS_ORT_PROFILE") {
            Some(prefix) => builder
                .with_profiling(std::path::PathBuf::from(prefix))
                .map_err(|e| ort_err(e.into()))?,
            None => builder,
        };
        let session = builder.commit_from_file(&model_path).map_err(ort_err)?;
        if rows {
            // A rows graph left from an older model.onnx would compute
            // another model: use the base graph instead.
            let derived_from = session
                .metadata()
                .ok()
                .and_then(|m| m.custom(ROWS_BASE_KEY));
            let base_sha = crate::adapter::hex(&crate::sha256_remembered(&base_path)?);
            if derived_from.as_deref() != Some(base_sha.as_str()) {
                tracing::warn!(
                    path = %model_path.display(),
                    "ignoring {ROWS_GRAPH}: it was not derived from this model.onnx; run `python3 scripts/setup.py` to derive it again"
                );
                drop(session);
                return Self::load_graph(dir, settings, Graph::Base);
            }
        }

        let layout_err = |what: &str| InferenceError::ModelLayout {
            path: model_path.clone(),
            what: what.to_string(),
        };
        let input_names: Vec<&str> = session.inputs().iter().map(|o| o.name()).collect();
        let required_inputs: &[&str] = if rows {
            &["input_ids", "attention_mask", "position_ids", "logit_rows"]
        } else {
            &["input_ids", "attention_mask", "position_ids"]
        };
        for &required in required_inputs {
            if !input_names.contains(&required) {
                return Err(layout_err(&format!("missing input `{required}`")));
            }
        }
        let mut past_names = Vec::new();
        let mut present_names = Vec::new();
        let mut kv_shape = None;
        for layer in 0.. {
            let key = format!("past_key_values.{layer}.key");
            let Some(outlet) = session.inputs().iter().find(|o| o.name() == key) else {
                break;
            };
            if kv_shape.is_none() {
                let shape = outlet
                    .dtype()
                    .tensor_shape()
                    .ok_or_else(|| layout_err("past key is not a tensor"))?;
                if shape.len() != 4 || shape[1] <= 0 || shape[3] <= 0 {
                    return Err(layout_err("past keys must be [batch, kv_heads, past, head_dim] with fixed heads and dims"));
                }
                kv_shape = Some((shape[1] as usize, shape[3] as usize));
            }
            for kind in ["key", "value"] {
                past_names.push(format!("past_key_values.{layer}.{kind}"));
                present_names.push(format!("present.{layer}.{kind}"));
            }
        }
        let (kv_heads, head_dim) =
            kv_shape.ok_or_else(|| layout_err("no `past_key_values.0.key` input"))?;
        let output_names: Vec<&str> = session.outputs().iter().map(|o| o.name()).collect();
        for name in present_names.iter().map(String::as_str).chain(["logits"]) {
            if !output_names.contains(&name) {
                return Err(layout_err(&format!("missing output `{name}`")));
            }
        }
        for name in &past_names {
            if !input_names.contains(&name.as_str()) {
                return Err(layout_err(&format!("missing input `{name}`")));
            }
        }
        let vocab = config.vocab_size;
        let layout = config.kv_cache;
        Ok(OnnxModel {
            session,
            config,
            tokenizer,
            fingerprint,
            past_names,
            present_names,
            kv_heads,
            head_dim,
            vocab,
            layout,
            lora,
            rows,
            adapter: None,
        })
    }

    /// Number of transformer layers.
    pub fn num_layers(&self) -> usize {
        self.past_names.len() / 2
    }
}

impl LanguageModel for OnnxModel {
    type Cache = KvCache;

    fn config(&self) -> &ModelConfig {
        &self.config
    }

    fn fingerprint(&self) -> &Fingerprint {
        &self.fingerprint
    }

    fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    fn vocab_size(&self) -> usize {
        self.vocab
    }

    fn adapter_id(&self) -> Option<&AdapterId> {
        self.adapter.as_ref().map(|a| a.adapter.id())
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> KvCache {
        let storage = match self.layout {
            KvLayout::Concat => KvStorage::Concat(Vec::new()),
            KvLayout::Static => {
                let len = batch * self.kv_heads * capacity * self.head_dim;
                KvStorage::Static(self.past_names.iter().map(|_| vec![0.0f32; len]).collect())
            }
        };
        let (kv_heads, head_dim) = (self.kv_heads, self.head_dim);
        KvCache {
            batch,
            past_len: 0,
            capacity,
            kv_heads,
            head_dim,
            valid: vec![Vec::new(); batch],
            next_pos: vec![0; batch],
            storage,
        }
    }

    fn forward(
        &mut self,
        cache: &mut KvCache,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        self.forward_padded(cache, tokens, None, logits)
    }
}

impl BatchedModel for OnnxModel {
    fn can_fork(&self) -> bool {
        self.layout == KvLayout::Static
    }

    fn forward_padded(
        &mut self,
        cache: &mut KvCache,
        tokens: &[u32],
        real: Option<&[bool]>,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        self.run(cache, tokens, real, None, logits)
    }

    fn forward_rows(
        &mut self,
        cache: &mut KvCache,
        tokens: &[u32],
        real: Option<&[bool]>,
        rows: &[usize],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        crate::check_rows(tokens.len(), cache.batch, rows)?;
        if self.rows {
            return self.run(cache, tokens, real, Some(rows), logits);
        }
        let (batch, seq) = (cache.batch, tokens.len() / cache.batch);
        let mut all = Vec::new();
        self.run(cache, tokens, real, None, &mut all)?;
        crate::pick_rows(&all, batch, seq, self.vocab, rows, logits);
        Ok(())
    }
}

impl OnnxModel {
    /// One pass: logits at every position (`rows` = `None`) or, with the
    /// rows graph, at the given rows (checked by the caller).
    fn run(
        &mut self,
        cache: &mut KvCache,
        tokens: &[u32],
        real: Option<&[bool]>,
        rows: Option<&[usize]>,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        let batch = cache.batch;
        if batch == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(batch) {
            return Err(InferenceError::BatchMismatch {
                tokens: tokens.len(),
                batch,
            });
        }
        if let Some(r) = real.filter(|r| r.len() != tokens.len()) {
            return Err(InferenceError::PaddingMismatch {
                tokens: tokens.len(),
                flags: r.len(),
            });
        }
        let is_real = |i: usize| real.is_none_or(|r| r[i]);
        let seq = tokens.len() / batch;
        let past = cache.past_len;
        let (kv_heads, head_dim, capacity) = (self.kv_heads, self.head_dim, cache.capacity);
        let run_err = InferenceError::Runtime;
        if let Some(&token) = tokens.iter().find(|&&t| t as usize >= self.vocab) {
            return Err(InferenceError::TokenOutOfRange {
                token,
                vocab: self.vocab,
            });
        }
        let is_static = matches!(cache.storage, KvStorage::Static(_));
        // The streams this call adds slots to: in a static cache, not one
        // fed only padding (see `KvCache`).
        let writes: Vec<bool> = (0..batch)
            .map(|b| !is_static || (0..seq).any(|s| is_real(b * seq + s)))
            .collect();
        if is_static {
            if let Some(used) = (0..batch)
                .filter(|&b| writes[b])
                .map(|b| cache.valid[b].len())
                .find(|&used| used + seq > capacity)
            {
                return Err(InferenceError::CacheFull {
                    capacity,
                    past: used,
                    seq,
                });
            }
        }

        let ids: Vec<i64> = tokens.iter().map(|&t| t as i64).collect();
        // A padding token repeats the position of the stream's next real one.
        let mut positions = Vec::with_capacity(tokens.len());
        let mut next_pos = cache.next_pos.clone();
        for (b, pos) in next_pos.iter_mut().enumerate() {
            for s in 0..seq {
                positions.push(*pos as i64);
                if is_real(b * seq + s) {
                    *pos += 1;
                }
            }
        }
        // Per stream: its used slots, the free slots, then the new tokens.
        let slots = if is_static { capacity } else { past };
        let mask_len = slots + seq;
        let mut mask: Vec<i64> = Vec::with_capacity(batch * mask_len);
        for b in 0..batch {
            mask.extend(cache.valid[b].iter().map(|&v| i64::from(v)));
            mask.extend(std::iter::repeat_n(0, slots - cache.valid[b].len()));
            mask.extend((0..seq).map(|s| i64::from(is_real(b * seq + s))));
        }

        let mut inputs: Vec<(String, SessionInputValue<'_>)> =
            Vec::with_capacity(4 + self.past_names.len());
        inputs.push((
            "input_ids".into(),
            Tensor::from_array(([batch, seq], ids))
                .map_err(run_err)?
                .into(),
        ));
        inputs.push((
            "attention_mask".into(),
            Tensor::from_array(([batch, mask_len], mask))
                .map_err(run_err)?
                .into(),
        ));
        inputs.push((
            "position_ids".into(),
            Tensor::from_array(([batch, seq], positions))
                .map_err(run_err)?
                .into(),
        ));
        // The rows graph returns `out_rows` rows per stream: those asked
        // for, or every position.
        let out_rows = rows.map_or(seq, |r| r.len() / batch);
        if self.rows {
            let index: Vec<i64> = match rows {
                Some(r) => r.iter().map(|&r| r as i64).collect(),
                None => (0..batch).flat_map(|_| 0..seq as i64).collect(),
            };
            inputs.push((
                "logit_rows".into(),
                Tensor::from_array(([batch, out_rows], index))
                    .map_err(run_err)?
                    .into(),
            ));
        }
        match &mut cache.storage {
            KvStorage::Concat(values) if values.is_empty() => {
                for name in &self.past_names {
                    let empty =
                        Tensor::from_array(([batch, kv_heads, 0, head_dim], Vec::<f32>::new()))
                            .map_err(run_err)?;
                    inputs.push((name.clone(), empty.into()));
                }
            }
            KvStorage::Concat(values) => {
                for (name, value) in self.past_names.iter().zip(std::mem::take(values)) {
                    inputs.push((name.clone(), value.into()));
                }
            }
            KvStorage::Static(buffers) => {
                // Borrowed, not copied: the point of this layout.
                for (name, buffer) in self.past_names.iter().zip(buffers.iter()) {
                    let view = TensorRef::from_array_view((
                        [batch, kv_heads, capacity, head_dim],
                        buffer.as_slice(),
                    ))
                    .map_err(run_err)?;
                    inputs.push((name.clone(), view.into()));
                }
            }
        }

        let mut outputs = match &self.adapter {
            Some(active) => self.session.run_with_options(inputs, &active.options),
            None => self.session.run(inputs),
        }
        .map_err(run_err)?;
        {
            let (shape, data) = outputs["logits"]
                .try_extract_tensor::<f32>()
                .map_err(run_err)?;
            if shape.len() != 3 || shape[0] as usize != batch || shape[1] as usize != out_rows {
                return Err(InferenceError::UnexpectedOutput {
                    what: format!(
                        "logits have shape {shape:?}, expected [{batch}, {out_rows}, vocab]"
                    ),
                });
            }
            let vocab = shape[2] as usize;
            if vocab != self.vocab {
                return Err(InferenceError::UnexpectedOutput {
                    what: format!(
                        "logits have {vocab} entries per token but config.json says vocab_size = {}",
                        self.vocab
                    ),
                });
            }
            logits.clear();
            logits.extend_from_slice(data);
        }
        match &mut cache.storage {
            KvStorage::Concat(values) => {
                for name in &self.present_names {
                    let value = outputs.remove(name.as_str()).ok_or_else(|| {
                        InferenceError::UnexpectedOutput {
                            what: format!("no output `{name}`"),
                        }
                    })?;
                    values.push(value);
                }
            }
            KvStorage::Static(buffers) => {
                for (name, buffer) in self.present_names.iter().zip(buffers.iter_mut()) {
                    let (shape, new) = outputs[name.as_str()]
                        .try_extract_tensor::<f32>()
                        .map_err(run_err)?;
                    if **shape != [batch as i64, kv_heads as i64, seq as i64, head_dim as i64] {
                        return Err(InferenceError::UnexpectedOutput {
                            what: format!("`{name}` has shape {shape:?}; a static-cache model returns only the new tokens"),
                        });
                    }
                    // Rows of `seq × head_dim` go to each (stream, head)'s
                    // next free slots.
                    let row = seq * head_dim;
                    for (bh, src) in new.chunks_exact(row).enumerate() {
                        let b = bh / kv_heads;
                        if writes[b] {
                            let at = (bh * capacity + cache.valid[b].len()) * head_dim;
                            buffer[at..at + row].copy_from_slice(src);
                        }
                    }
                }
            }
        }
        cache.next_pos = next_pos;
        for (b, valid) in cache.valid.iter_mut().enumerate() {
            if writes[b] {
                valid.extend((0..seq).map(|s| is_real(b * seq + s)));
            }
        }
        cache.past_len = cache.valid.iter().map(Vec::len).max().unwrap_or(0);
        Ok(())
    }
}
