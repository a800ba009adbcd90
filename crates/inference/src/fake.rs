//! A small deterministic [`BatchedModel`] for testing the generation logic
//! without ONNX: its logits at a position are a hash of (position, previous
//! token), plus a strong preference for scripted replies, and it records
//! every call so tests can check what the [`crate::Generator`] asked of it.

use std::cell::RefCell;
use std::rc::Rc;

use crate::{
    BatchCache, BatchedModel, Fingerprint, InferenceError, KvLayout, LanguageModel, ModelConfig,
    TextTokenizer,
};

/// The special tokens of [`tokenizer_json`], from id 0.
pub const SPECIALS: [&str; 7] = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<s>",
    "</s>",
    "<start_of_turn>",
    "<end_of_turn>",
];

/// SmolLM2's template: ChatML with a default system prompt.
pub const SMOL_TEMPLATE: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// A byte-level BPE `tokenizer.json` with [`SPECIALS`] (ids 0..7) then one
/// token per byte (ids 7..263) and no merges.
pub fn tokenizer_json() -> String {
    let byte_chars = byte_chars();
    let mut vocab = serde_json::Map::new();
    let mut added = Vec::new();
    for (id, s) in SPECIALS.iter().enumerate() {
        vocab.insert(s.to_string(), id.into());
        added.push(serde_json::json!({
            "id": id, "content": s, "single_word": false, "lstrip": false,
            "rstrip": false, "normalized": false, "special": true
        }));
    }
    for (b, c) in byte_chars.iter().enumerate() {
        vocab.insert(c.to_string(), (SPECIALS.len() + b).into());
    }
    serde_json::json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": null,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": vocab, "merges": []
        }
    })
    .to_string()
}

/// GPT-2's byte-to-character map.
fn byte_chars() -> Vec<char> {
    let mut next = 256u32;
    (0..=255u8)
        .map(|b| {
            if matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF) {
                b as char
            } else {
                next += 1;
                char::from_u32(next - 1).unwrap()
            }
        })
        .collect()
}

/// The tokenizer of [`tokenizer_json`].
pub fn tokenizer() -> TextTokenizer {
    TextTokenizer::from_bytes(tokenizer_json().as_bytes()).unwrap()
}

/// A config for the fake tokenizer: `<|endoftext|>` begins, `<|im_end|>`
/// ends, with `template`.
pub fn config(template: Option<&str>) -> ModelConfig {
    ModelConfig {
        name: "fake".into(),
        architecture: "fake".into(),
        vocab_size: SPECIALS.len() + 256,
        context_length: 4096,
        bos_token_id: Some(0),
        eos_token_id: Some(2),
        chat_template: template.map(str::to_string),
        kv_cache: KvLayout::Static,
    }
}

/// One [`BatchedModel::forward_padded`] call as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub batch: usize,
    pub past_len: usize,
    pub capacity: usize,
    pub tokens: Vec<u32>,
    pub real: Vec<bool>,
}

impl Call {
    pub fn seq(&self) -> usize {
        self.tokens.len() / self.batch
    }
}

/// What the fake was asked to do.
#[derive(Debug, Default)]
pub struct Log {
    pub calls: Vec<Call>,
    /// `(batch, capacity)` of every cache made or forked.
    pub caches: Vec<(usize, usize)>,
    /// `(row, batch, capacity)` of every fork.
    pub forks: Vec<(usize, usize, usize)>,
}

impl Log {
    /// Real tokens fed over all calls.
    pub fn real_tokens(&self) -> usize {
        self.calls
            .iter()
            .map(|c| c.real.iter().filter(|&&r| r).count())
            .sum()
    }
}

/// The fake model.
pub struct FakeModel {
    config: ModelConfig,
    tokenizer: TextTokenizer,
    fingerprint: Fingerprint,
    forkable: bool,
    /// `(prompt, reply)`: after a history starting with `prompt`, the model
    /// strongly prefers to continue with `reply`.
    replies: Vec<(Vec<u32>, Vec<u32>)>,
    pub log: Rc<RefCell<Log>>,
}

impl FakeModel {
    /// A forking (static-cache-like) fake with SmolLM2's template.
    pub fn new() -> FakeModel {
        FakeModel::with_template(Some(SMOL_TEMPLATE))
    }

    /// A fake with the given template.
    pub fn with_template(template: Option<&str>) -> FakeModel {
        FakeModel {
            config: config(template),
            tokenizer: tokenizer(),
            fingerprint: Fingerprint {
                model: [7; 32],
                tokenizer: [8; 32],
            },
            forkable: true,
            replies: Vec::new(),
            log: Rc::default(),
        }
    }

    /// A fake whose caches do not fork (like a concat-cache model).
    pub fn without_fork() -> FakeModel {
        FakeModel {
            forkable: false,
            ..FakeModel::new()
        }
    }

    /// Makes the model say `reply` after `prompt`.
    pub fn script(&mut self, prompt: &[u32], reply: &[u32]) {
        self.replies.push((prompt.to_vec(), reply.to_vec()));
    }

    /// The logits after a stream's real tokens `history` (not empty).
    pub fn logits_after(&self, history: &[u32]) -> Vec<f32> {
        let pos = history.len() as u64 - 1;
        let prev = u64::from(history[history.len() - 1]);
        let mut row: Vec<f32> = (0..self.config.vocab_size as u64)
            .map(|j| (mix(pos << 40 ^ prev << 20 ^ j) >> 40) as f32 / (1u64 << 24) as f32)
            .collect();
        let favourite = self
            .replies
            .iter()
            .filter(|(p, _)| history.starts_with(p))
            .max_by_key(|(p, _)| p.len())
            .and_then(|(p, reply)| reply.get(history.len() - p.len()));
        if let Some(&f) = favourite {
            row[f as usize] += 4.0;
        }
        row
    }
}

/// splitmix64's finalizer.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The fake's cache: each stream's real tokens so far.
pub struct FakeCache {
    batch: usize,
    capacity: usize,
    past_len: usize,
    histories: Vec<Vec<u32>>,
    forkable: bool,
    log: Rc<RefCell<Log>>,
}

impl BatchCache for FakeCache {
    fn batch(&self) -> usize {
        self.batch
    }

    fn past_len(&self) -> usize {
        self.past_len
    }

    fn capacity(&self) -> usize {
        self.capacity
    }

    fn fork(&self, row: usize, batch: usize, capacity: usize) -> Result<FakeCache, InferenceError> {
        if !self.forkable {
            return Err(InferenceError::ForkUnsupported);
        }
        if row >= self.batch || capacity < self.past_len {
            return Err(InferenceError::ForkOutOfRange {
                row,
                batch: self.batch,
                past_len: self.past_len,
                capacity,
            });
        }
        let mut log = self.log.borrow_mut();
        log.forks.push((row, batch, capacity));
        log.caches.push((batch, capacity));
        Ok(FakeCache {
            batch,
            capacity,
            past_len: self.past_len,
            histories: vec![self.histories[row].clone(); batch],
            forkable: true,
            log: self.log.clone(),
        })
    }
}

impl LanguageModel for FakeModel {
    type Cache = FakeCache;

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
        self.config.vocab_size
    }

    fn new_cache(&self, batch: usize, capacity: usize) -> FakeCache {
        self.log.borrow_mut().caches.push((batch, capacity));
        FakeCache {
            batch,
            capacity,
            past_len: 0,
            histories: vec![Vec::new(); batch],
            forkable: self.forkable,
            log: self.log.clone(),
        }
    }

    fn forward(
        &mut self,
        cache: &mut FakeCache,
        tokens: &[u32],
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        self.forward_padded(cache, tokens, None, logits)
    }
}

impl BatchedModel for FakeModel {
    fn forward_padded(
        &mut self,
        cache: &mut FakeCache,
        tokens: &[u32],
        real: Option<&[bool]>,
        logits: &mut Vec<f32>,
    ) -> Result<(), InferenceError> {
        let batch = cache.batch;
        if batch == 0 || tokens.is_empty() || !tokens.len().is_multiple_of(batch) {
            return Err(InferenceError::BatchMismatch {
                tokens: tokens.len(),
                batch,
            });
        }
        let real: Vec<bool> = real.map_or_else(|| vec![true; tokens.len()], <[bool]>::to_vec);
        let seq = tokens.len() / batch;
        if self.forkable && cache.past_len + seq > cache.capacity {
            return Err(InferenceError::CacheFull {
                capacity: cache.capacity,
                past: cache.past_len,
                seq,
            });
        }
        self.log.borrow_mut().calls.push(Call {
            batch,
            past_len: cache.past_len,
            capacity: cache.capacity,
            tokens: tokens.to_vec(),
            real: real.clone(),
        });
        let vocab = self.config.vocab_size;
        logits.clear();
        for (b, history) in cache.histories.iter_mut().enumerate() {
            for s in 0..seq {
                let i = b * seq + s;
                if real[i] {
                    history.push(tokens[i]);
                    logits.extend(self.logits_after(history));
                } else {
                    // Meaningless, and loudly so if used.
                    logits.extend(std::iter::repeat_n(f32::NAN, vocab));
                }
            }
        }
        cache.past_len += seq;
        Ok(())
    }

    fn can_fork(&self) -> bool {
        self.forkable
    }
}
