//! Text generation on a [`BatchedModel`] (an [`OnnxModel`] by default):
//! chat templates, seeded sampling, stop strings, streaming, batching and a
//! shared-prefix cache.
//!
//! A [`Generator`] owns one model. [`Generator::generate`] takes a batch of
//! independent [`Request`]s (token prompts, each with its own [`Sampling`])
//! and runs them as one batch: the prompt tokens every request shares are
//! computed once and forked into each stream, the rest is right-padded, and
//! decoding advances all streams together until each stops. Yes/no scoring
//! ([`Generator::p_yes`]) and candidate scoring go through the same prefill.
//!
//! Reproducibility: a request's tokens depend only on its prompt and its
//! sampling settings (including the seed). Each request draws from its own
//! ChaCha stream, so batching never changes which random numbers a request
//! sees, and its prompt's blocks and cache slots are laid out as they are
//! alone (see [`BLOCK`]), so batching does not change its arithmetic either
//! (checked with the real models: `tests/batch_layout.rs`,
//! `examples/batch_invariance.rs`).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

pub use tenbits_chat::{Message, Role, Sampling};

use crate::{BatchCache, BatchedModel, ChatTemplate, InferenceError, OnnxModel};

/// One generation request: a rendered prompt and how to continue it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The prompt's token ids (from [`Generator::prompt`], or any ids).
    pub prompt: Vec<u32>,
    /// How to pick the new tokens, and when to stop.
    pub sampling: Sampling,
}

/// Why generation of a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model ended its turn (end-of-turn or end-of-text token).
    EndOfTurn,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    Length,
}

/// What one request produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The new text (lossy UTF-8), cut before a stop string.
    pub text: String,
    /// The new tokens, including a final end-of-turn token if any.
    pub tokens: Vec<u32>,
    /// Why generation ended.
    pub finish: FinishReason,
    /// Tokens in the request's prompt.
    pub prompt_tokens: usize,
}

/// Counts of the work a [`Generator`] did, for benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GenerationStats {
    /// Prompt tokens computed (shared prefixes once).
    pub prefill_tokens: usize,
    /// Prompt tokens whose computation a shared prefix saved.
    pub reused_tokens: usize,
    /// Time spent computing prompts.
    pub prefill_seconds: f64,
    /// Tokens generated, over all streams.
    pub decode_tokens: usize,
    /// Forward passes of one token per stream.
    pub decode_steps: usize,
    /// Time spent generating.
    pub decode_seconds: f64,
}

/// Prompts are computed in blocks of this many slots, aligned to slot 0 and
/// right-padded, and caches hold a multiple of it. Why: with 4-bit weights
/// at accuracy level 4 ONNX Runtime quantizes activations to int8, and a
/// rounding difference of one ulp (from a different split of the prompt, or
/// a key length of a different residue mod 4 taking another kernel path) can
/// move logits by more than 1 after 30 layers. Fixed blocks make a stream's
/// computation the same whether it runs alone, in a batch, or after a
/// shared prefix; with the cache keeping each stream's slots its own (see
/// `OnnxModel`'s `KvCache`), batching never changes its tokens.
const BLOCK: usize = 16;

/// Most prompts [`Generator::p_yes`] computes in one batch (each block of a
/// batch returns `batch × BLOCK × vocab` logits).
const MAX_GROUP: usize = 16;

/// Most rows one pass computes logits for when scoring candidates.
const MAX_ROWS_PER_PASS: usize = 256;

/// Generates text with one model: an [`OnnxModel`] unless another
/// [`BatchedModel`] is given. See the [module docs](self).
///
/// ```no_run
/// use tenbits_inference::{Generator, Message, OnnxModel, Registry, Sampling, SessionSettings};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = Registry::embedded().model("smollm2-135m")?.cached_dir(&tenbits_inference::cache_dir());
/// let mut generator = Generator::new(OnnxModel::load(&dir, SessionSettings::default())?)?;
/// let reply = generator.chat(&[Message::user("What is the capital of France?")], &Sampling::greedy(32))?;
/// println!("{}", reply.text);
/// # Ok(()) }
/// ```
pub struct Generator<M = OnnxModel> {
    model: M,
    template: ChatTemplate,
    stop_tokens: Vec<u32>,
    pad: u32,
    yes_no: Option<(u32, u32)>,
    stats: GenerationStats,
}

impl<M: BatchedModel> Generator<M> {
    /// Wraps a loaded model; fails if its chat template does not compile
    /// (see [`ChatTemplate::for_model`]).
    pub fn new(model: M) -> Result<Generator<M>, InferenceError> {
        let template = ChatTemplate::for_model(&model)?;
        let tokenizer = model.tokenizer();
        let mut stop_tokens = vec![template.end_of_turn()];
        stop_tokens.extend(model.config().eos_token_id);
        stop_tokens.extend(tokenizer.token_id("<|endoftext|>"));
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        let pad = model
            .config()
            .eos_token_id
            .unwrap_or(template.end_of_turn());
        // The first token of each answer word (the whole word in real vocabularies).
        let first = |word: &str| {
            tokenizer
                .encode_bytes(word.as_bytes())
                .ok()?
                .first()
                .copied()
        };
        let yes_no = first("Yes").zip(first("No")).filter(|(y, n)| y != n);
        Ok(Generator {
            model,
            template,
            stop_tokens,
            pad,
            yes_no,
            stats: GenerationStats::default(),
        })
    }

    /// The model.
    pub fn model(&self) -> &M {
        &self.model
    }

    /// The model's chat template.
    pub fn template(&self) -> &ChatTemplate {
        &self.template
    }

    /// The tokens whose logits [`Generator::p_yes`] compares: the first
    /// token of "Yes" and of "No".
    pub fn yes_no_tokens(&self) -> Option<(u32, u32)> {
        self.yes_no
    }

    /// Work done since the last [`Generator::take_stats`].
    pub fn take_stats(&mut self) -> GenerationStats {
        std::mem::take(&mut self.stats)
    }

    /// Renders a conversation with the assistant's turn opened.
    pub fn prompt(&self, messages: &[Message]) -> Result<Vec<u32>, InferenceError> {
        self.template.render(self.model.tokenizer(), messages, true)
    }

    /// Replies to one conversation.
    pub fn chat(
        &mut self,
        messages: &[Message],
        sampling: &Sampling,
    ) -> Result<Completion, InferenceError> {
        let prompt = self.prompt(messages)?;
        let mut out = self.generate(
            &[Request {
                prompt,
                sampling: sampling.clone(),
            }],
            |_, _| {},
        )?;
        Ok(out.remove(0))
    }

    /// Runs `requests` as one batch. `on_text(i, piece)` receives request
    /// `i`'s new text as it is produced (whole UTF-8 characters, stop
    /// strings held back until they are ruled out).
    pub fn generate(
        &mut self,
        requests: &[Request],
        on_text: impl FnMut(usize, &str),
    ) -> Result<Vec<Completion>, InferenceError> {
        self.generate_observed(requests, on_text, |_, _, _| {})
    }

    /// [`Self::generate`], also showing `on_step(i, token, logits)` the
    /// logits request `i`'s token was picked from (for log-probabilities,
    /// as an OpenAI-compatible server returns them).
    pub fn generate_observed(
        &mut self,
        requests: &[Request],
        mut on_text: impl FnMut(usize, &str),
        mut on_step: impl FnMut(usize, u32, &[f32]),
    ) -> Result<Vec<Completion>, InferenceError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        if let Some(index) = requests.iter().position(|r| r.prompt.is_empty()) {
            return Err(InferenceError::EmptyPrompt { index });
        }
        let longest_new = requests
            .iter()
            .map(|r| r.sampling.max_tokens)
            .max()
            .unwrap_or(0);
        let prompts: Vec<&[u32]> = requests.iter().map(|r| r.prompt.as_slice()).collect();
        let (mut cache, mut last_logits) = self.prefill(&prompts, longest_new)?;
        if cache.batch() == 1 && self.model.can_fork() {
            // A one-row pass takes another kernel path than a batch (see
            // BLOCK); a second, all-padding stream keeps a request's tokens
            // the same alone as in a batch.
            cache = cache.fork(0, 2, cache.capacity())?;
        }
        let streams = cache.batch();

        let vocab = self.model.vocab_size();
        let batch = requests.len();
        let mut states: Vec<StreamState> = requests
            .iter()
            .map(|r| StreamState::new(&r.sampling, r.prompt.len()))
            .collect();
        for (i, state) in states.iter_mut().enumerate() {
            if requests[i].sampling.max_tokens == 0 {
                state.end(FinishReason::Length);
            }
        }
        let started = std::time::Instant::now();
        let mut logits = Vec::new();
        let one_row = vec![0; streams];
        loop {
            let mut next = vec![self.pad; streams];
            let mut real = vec![false; streams];
            for (i, state) in states.iter_mut().enumerate() {
                if state.finish.is_some() {
                    continue;
                }
                let sampling = &requests[i].sampling;
                let row = &last_logits[i * vocab..(i + 1) * vocab];
                let token = state.pick(row, sampling);
                on_step(i, token, row);
                state.tokens.push(token);
                let piece = if self.stop_tokens.contains(&token) {
                    state.end(FinishReason::EndOfTurn)
                } else {
                    let mut piece =
                        state.push_bytes(self.model.tokenizer().token_bytes(token), &sampling.stop);
                    if state.finish.is_none() && state.tokens.len() >= sampling.max_tokens {
                        piece += &state.end(FinishReason::Length);
                    }
                    piece
                };
                if !piece.is_empty() {
                    on_text(i, &piece);
                }
                if state.finish.is_none() {
                    next[i] = token;
                    real[i] = true;
                }
            }
            if !real.contains(&true) {
                break;
            }
            self.model
                .forward_rows(&mut cache, &next, Some(&real), &one_row, &mut logits)?;
            self.stats.decode_steps += 1;
            self.stats.decode_tokens += real.iter().filter(|&&r| r).count();
            logits.truncate(batch * vocab);
            std::mem::swap(&mut logits, &mut last_logits);
        }
        self.stats.decode_seconds += started.elapsed().as_secs_f64();
        Ok(states
            .into_iter()
            .map(|s| Completion {
                text: String::from_utf8_lossy(&s.text).into_owned(),
                tokens: s.tokens,
                finish: s.finish.unwrap_or(FinishReason::Length),
                prompt_tokens: s.prompt_tokens,
            })
            .collect())
    }

    /// P(yes) for each conversation whose last turn asks a yes/no question:
    /// one forward pass over the rendered prompts (with the assistant turn
    /// opened), comparing the logits of the "Yes" and "No" tokens (their
    /// first tokens, where a vocabulary splits them):
    /// P(yes) = e^yes / (e^yes + e^no). The answer bit is `P(yes) >= 0.5`.
    pub fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, InferenceError> {
        let (yes, no) = self.yes_no.ok_or(InferenceError::YesNoIndistinct)?;
        let prompts: Vec<Vec<u32>> = conversations
            .iter()
            .map(|c| self.prompt(c))
            .collect::<Result<_, _>>()?;
        // Questions about the same problem share a long prefix: sort, then
        // batch neighbours that share most of their tokens (not just the
        // system prompt), so each shared prefix is computed once. Results do
        // not depend on the grouping.
        let mut order: Vec<usize> = (0..prompts.len()).collect();
        order.sort_by(|&a, &b| prompts[a].cmp(&prompts[b]));
        let mut groups: Vec<Vec<usize>> = Vec::new();
        for i in order {
            match groups.last_mut() {
                Some(g) if g.len() < MAX_GROUP && shares_most(&prompts[g[0]], &prompts[i]) => {
                    g.push(i)
                }
                _ => groups.push(vec![i]),
            }
        }
        let vocab = self.model.vocab_size();
        let mut p = vec![0.0; prompts.len()];
        for group in groups {
            let refs: Vec<&[u32]> = group.iter().map(|&i| prompts[i].as_slice()).collect();
            let (_, logits) = self.prefill(&refs, 0)?;
            for (&i, row) in group.iter().zip(logits.chunks_exact(vocab)) {
                let (y, n) = (f64::from(row[yes as usize]), f64::from(row[no as usize]));
                p[i] = 1.0 / (1.0 + (n - y).exp());
            }
        }
        Ok(p)
    }

    /// Log-probability (natural log) of each candidate reply to a
    /// conversation, end-of-turn token included, from one batched pass.
    pub fn score_candidates(
        &mut self,
        messages: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, InferenceError> {
        let prompt = self.prompt(messages)?;
        let tokenizer = self.model.tokenizer();
        let vocab_ids = tokenizer.vocab_size() as u32;
        let mut sequences = Vec::with_capacity(candidates.len());
        for c in candidates {
            let mut reply: Vec<u32> = tokenizer
                .encode_bytes(c.as_bytes())?
                .into_iter()
                .filter(|&t| t < vocab_ids)
                .collect();
            reply.push(self.template.end_of_turn());
            let mut full = prompt.clone();
            full.extend(&reply);
            sequences.push((full, reply.len()));
        }
        let mut scores = Vec::with_capacity(candidates.len());
        for (full, reply_len) in &sequences {
            // Feed the prompt plus all but the last reply token; the logits of
            // the last `reply_len` positions score the reply.
            let fed = &full[..full.len() - 1];
            let row_logits = self.all_logits(fed)?;
            let vocab = self.model.vocab_size();
            let first = fed.len() - reply_len;
            let mut total = 0.0;
            for k in 0..*reply_len {
                let row = &row_logits[(first + k) * vocab..(first + k + 1) * vocab];
                total += log_softmax_at(row, full[first + k + 1] as usize);
            }
            scores.push(total);
        }
        Ok(scores)
    }

    /// Logits of every position of one sequence.
    fn all_logits(&mut self, tokens: &[u32]) -> Result<Vec<f32>, InferenceError> {
        let mut cache = self.model.new_cache(1, tokens.len());
        let mut all = Vec::with_capacity(tokens.len() * self.model.vocab_size());
        let mut logits = Vec::new();
        for piece in tokens.chunks(MAX_ROWS_PER_PASS) {
            self.model.forward(&mut cache, piece, &mut logits)?;
            all.extend_from_slice(&logits);
        }
        Ok(all)
    }

    /// Computes the prompts into a cache with room for `extra` more tokens
    /// per stream and returns it with each stream's next-token logits
    /// (`batch × vocab`). The tokens all prompts share (but the last of the
    /// shortest) are computed once, in a one-stream cache that is then forked.
    fn prefill(
        &mut self,
        prompts: &[&[u32]],
        extra: usize,
    ) -> Result<(M::Cache, Vec<f32>), InferenceError> {
        let started = std::time::Instant::now();
        let batch = prompts.len();
        let shortest = prompts.iter().map(|p| p.len()).min().unwrap_or(0);
        let mut shared = prompts[0].len().min(shortest.saturating_sub(1));
        for p in &prompts[1..] {
            shared = shared.min(common_prefix(p, prompts[0]));
        }
        // Forks happen on block boundaries, so a stream's blocks are the
        // same whether or not its prefix was shared.
        shared -= shared % BLOCK;
        if batch == 1 || shared == 0 || !self.model.can_fork() {
            shared = 0;
        }
        let longest = prompts.iter().map(|p| p.len()).max().unwrap_or(0);
        let capacity = (longest.div_ceil(BLOCK) * BLOCK + extra).next_multiple_of(BLOCK);
        let vocab = self.model.vocab_size();
        let mut logits = Vec::new();
        let mut cache = if shared > 0 {
            let mut one = self.model.new_cache(1, shared);
            // The shared prefix's logits are never read: ask for one row.
            for block in prompts[0][..shared].chunks(BLOCK) {
                self.model
                    .forward_rows(&mut one, block, None, &[0], &mut logits)?;
            }
            self.stats.reused_tokens += shared * (batch - 1);
            one.fork(0, batch, capacity)?
        } else {
            self.model.new_cache(batch, capacity)
        };
        self.stats.prefill_tokens += shared;
        // The rest of each prompt in blocks of BLOCK slots, right-padded;
        // each stream's logits are kept from the block holding its last
        // token, the only row asked for (row 0 of the others is ignored).
        let mut last = vec![0.0f32; batch * vocab];
        let mut start = shared;
        while start < longest {
            let mut tokens = Vec::with_capacity(batch * BLOCK);
            let mut real = Vec::with_capacity(batch * BLOCK);
            for p in prompts {
                for at in start..start + BLOCK {
                    tokens.push(p.get(at).copied().unwrap_or(self.pad));
                    real.push(at < p.len());
                }
            }
            let ends_here = |p: &[u32]| p.len() > start && p.len() <= start + BLOCK;
            let rows: Vec<usize> = prompts
                .iter()
                .map(|p| if ends_here(p) { p.len() - 1 - start } else { 0 })
                .collect();
            self.model
                .forward_rows(&mut cache, &tokens, Some(&real), &rows, &mut logits)?;
            for (b, p) in prompts.iter().enumerate() {
                if ends_here(p) {
                    last[b * vocab..(b + 1) * vocab]
                        .copy_from_slice(&logits[b * vocab..(b + 1) * vocab]);
                }
            }
            self.stats.prefill_tokens += real.iter().filter(|&&r| r).count();
            start += BLOCK;
        }
        self.stats.prefill_seconds += started.elapsed().as_secs_f64();
        Ok((cache, last))
    }
}

/// The decoding state of one stream.
struct StreamState {
    rng: ChaCha8Rng,
    tokens: Vec<u32>,
    /// Text released so far plus bytes held back.
    text: Vec<u8>,
    /// How much of `text` the caller has seen.
    released: usize,
    finish: Option<FinishReason>,
    prompt_tokens: usize,
}

impl StreamState {
    fn new(sampling: &Sampling, prompt_tokens: usize) -> StreamState {
        StreamState {
            rng: ChaCha8Rng::seed_from_u64(sampling.seed),
            tokens: Vec::new(),
            text: Vec::new(),
            released: 0,
            finish: None,
            prompt_tokens,
        }
    }

    /// The next token from one row of logits.
    fn pick(&mut self, logits: &[f32], sampling: &Sampling) -> u32 {
        if sampling.temperature <= 0.0 {
            return argmax(logits) as u32;
        }
        let t = f64::from(sampling.temperature);
        let max = f64::from(logits[argmax(logits)]);
        let mut probs: Vec<(u32, f64)> = logits
            .iter()
            .enumerate()
            .map(|(i, &l)| (i as u32, ((f64::from(l) - max) / t).exp()))
            .collect();
        // Ties broken by id so the order, and so the draw, is reproducible.
        probs.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let total: f64 = probs.iter().map(|p| p.1).sum();
        let top_p = f64::from(sampling.top_p.clamp(0.0, 1.0));
        let mut kept = 0;
        let mut mass = 0.0;
        for p in &probs {
            kept += 1;
            mass += p.1 / total;
            if mass >= top_p {
                break;
            }
        }
        let kept = &probs[..kept.max(1)];
        let kept_total: f64 = kept.iter().map(|p| p.1).sum();
        let mut draw = self.rng.random::<f64>() * kept_total;
        for p in kept {
            draw -= p.1;
            if draw <= 0.0 {
                return p.0;
            }
        }
        kept[kept.len() - 1].0
    }

    /// Appends a token's bytes; returns newly releasable text and sets
    /// `finish` if a stop string appeared.
    fn push_bytes(&mut self, bytes: &[u8], stop: &[String]) -> String {
        self.text.extend_from_slice(bytes);
        for s in stop.iter().filter(|s| !s.is_empty()) {
            if let Some(at) = find(
                &self.text[self.released.saturating_sub(s.len())..],
                s.as_bytes(),
            ) {
                let cut = self.released.saturating_sub(s.len()) + at;
                self.text.truncate(cut);
                return self.end(FinishReason::StopString);
            }
        }
        // Hold back a tail that could still become a stop string, and an
        // incomplete UTF-8 character.
        let mut safe = self.text.len();
        for s in stop.iter().filter(|s| !s.is_empty()) {
            for k in (1..s.len()).rev() {
                if self.text.len() >= k && self.text.ends_with(&s.as_bytes()[..k]) {
                    safe = safe.min(self.text.len() - k);
                    break;
                }
            }
        }
        // Release whole characters; an invalid sequence becomes U+FFFD as
        // from_utf8_lossy would make it, unless it ends the text and may
        // still be completed by the next token.
        let pending = &self.text[self.released..safe];
        let mut piece = String::new();
        let mut used = 0;
        for chunk in pending.utf8_chunks() {
            piece.push_str(chunk.valid());
            used += chunk.valid().len();
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let at_end = used + invalid.len() == pending.len();
            if at_end
                && std::str::from_utf8(invalid)
                    .err()
                    .is_some_and(|e| e.error_len().is_none())
            {
                break;
            }
            piece.push(char::REPLACEMENT_CHARACTER);
            used += invalid.len();
        }
        self.released += used;
        piece
    }

    /// Ends the stream for `reason` and releases whatever is held back.
    fn end(&mut self, reason: FinishReason) -> String {
        self.finish = Some(reason);
        let piece = String::from_utf8_lossy(&self.text[self.released..]).into_owned();
        self.released = self.text.len();
        piece
    }
}

/// Whether `b` shares at least two blocks and half of `a`'s tokens with `a`.
fn shares_most(a: &[u32], b: &[u32]) -> bool {
    let shared = common_prefix(a, b);
    shared >= 2 * BLOCK && 2 * shared >= a.len()
}

fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn argmax(row: &[f32]) -> usize {
    // First maximum, so ties resolve the same way everywhere.
    let mut best = 0;
    for (i, &v) in row.iter().enumerate() {
        if v > row[best] {
            best = i;
        }
    }
    best
}

fn log_softmax_at(row: &[f32], index: usize) -> f64 {
    f64::from(row[index]) - log_sum_exp(row)
}

/// ln Σ e^l over a row of logits.
fn log_sum_exp(row: &[f32]) -> f64 {
    let max = f64::from(row[argmax(row)]);
    let sum: f64 = row.iter().map(|&l| (f64::from(l) - max).exp()).sum();
    max + sum.ln()
}

/// The log-probabilities (natural log) of `tokens` and of the `k` most
/// likely tokens under one row of logits, most likely first: what an
/// OpenAI-compatible `logprobs` field reports for a generated token.
pub fn token_logprobs(row: &[f32], tokens: &[u32], k: usize) -> (Vec<f64>, Vec<(u32, f64)>) {
    let norm = log_sum_exp(row);
    let of = |t: u32| f64::from(row[t as usize]) - norm;
    let mut order: Vec<u32> = (0..row.len() as u32).collect();
    let k = k.min(order.len());
    if k > 0 {
        order.select_nth_unstable_by(k - 1, |&a, &b| row[b as usize].total_cmp(&row[a as usize]));
    }
    let mut top: Vec<(u32, f64)> = order[..k].iter().map(|&t| (t, of(t))).collect();
    top.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    (tokens.iter().map(|&t| of(t)).collect(), top)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_strings_are_cut_and_held_back_until_ruled_out() {
        let sampling = Sampling {
            stop: vec!["\n\n".into()],
            ..Sampling::default()
        };
        let mut s = StreamState::new(&sampling, 0);
        assert_eq!(s.push_bytes(b"def f():\n", &sampling.stop), "def f():");
        assert_eq!(s.push_bytes(b"  return 1", &sampling.stop), "\n  return 1");
        assert_eq!(s.push_bytes(b"\n\nprint", &sampling.stop), "");
        assert_eq!(s.finish, Some(FinishReason::StopString));
        assert_eq!(s.text, b"def f():\n  return 1");
    }

    #[test]
    fn split_utf8_characters_are_released_whole() {
        let mut s = StreamState::new(&Sampling::default(), 0);
        let e = "é".as_bytes();
        assert_eq!(s.push_bytes(&e[..1], &[]), "");
        assert_eq!(s.push_bytes(&e[1..], &[]), "é");
    }

    #[test]
    fn sampling_is_reproducible_and_respects_top_p() {
        let logits = [2.0f32, 1.0, 0.5, -1.0, 3.0];
        let sampling = Sampling {
            temperature: 1.0,
            top_p: 1.0,
            seed: 7,
            ..Sampling::default()
        };
        let draw = |seed| {
            let mut s = StreamState::new(
                &Sampling {
                    seed,
                    ..sampling.clone()
                },
                0,
            );
            (0..50)
                .map(|_| s.pick(&logits, &sampling))
                .collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7));
        assert_ne!(draw(7), draw(8));
        let tight = Sampling {
            top_p: 0.5,
            ..sampling.clone()
        };
        let mut s = StreamState::new(&tight, 0);
        // Token 4 alone holds more than half the mass.
        assert!((0..50).all(|_| s.pick(&logits, &tight) == 4));
        let mut g = StreamState::new(&Sampling::default(), 0);
        assert_eq!(g.pick(&logits, &Sampling::default()), 4);
    }

    // The generation logic through the model seam, on the fake model.

    use crate::fake::{self, FakeModel};
    use crate::LanguageModel;

    const ENDOFTEXT: u32 = 0;
    const IM_END: u32 = 2;

    fn ids(text: &str) -> Vec<u32> {
        fake::tokenizer().encode_bytes(text.as_bytes()).unwrap()
    }

    fn request(prompt: &[u32], sampling: Sampling) -> Request {
        Request {
            prompt: prompt.to_vec(),
            sampling,
        }
    }

    /// Prompts of several lengths (none shares a block with another), and
    /// samplings of several kinds.
    fn mixed_requests() -> Vec<Request> {
        let sampled = |seed| Sampling {
            temperature: 0.9,
            top_p: 0.95,
            seed,
            ..Sampling::greedy(12)
        };
        vec![
            request(&ids("a"), Sampling::greedy(9)),
            request(&ids("bravo, a prompt of more than one block"), sampled(1)),
            request(&ids("charlie"), sampled(2)),
            request(
                &ids("delta delta delta delta delta delta delta"),
                Sampling::greedy(3),
            ),
            request(&ids("echo"), Sampling::greedy(0)),
        ]
    }

    fn alone(model: FakeModel, requests: &[Request]) -> Vec<Completion> {
        let mut g = Generator::new(model).unwrap();
        requests
            .iter()
            .map(|r| {
                g.generate(std::slice::from_ref(r), |_, _| {})
                    .unwrap()
                    .remove(0)
            })
            .collect()
    }

    #[test]
    fn batched_requests_give_the_tokens_they_give_alone() {
        let requests = mixed_requests();
        let mut g = Generator::new(FakeModel::new()).unwrap();
        let batched = g.generate(&requests, |_, _| {}).unwrap();
        assert_eq!(batched, alone(FakeModel::new(), &requests));
        // A model that cannot fork computes the same (it is exact).
        let mut plain = Generator::new(FakeModel::without_fork()).unwrap();
        assert_eq!(plain.generate(&requests, |_, _| {}).unwrap(), batched);
        assert_eq!(batched, alone(FakeModel::without_fork(), &requests));
        // Reproducible, and the seeds matter.
        assert_eq!(g.generate(&requests, |_, _| {}).unwrap(), batched);
        let mut reseeded = requests.clone();
        reseeded[1].sampling.seed = 99;
        let other = g.generate(&reseeded, |_, _| {}).unwrap();
        assert_ne!(other[1].tokens, batched[1].tokens);
        assert_eq!(other[0], batched[0]);
    }

    #[test]
    fn prompts_run_in_aligned_blocks_into_caches_of_whole_blocks() {
        let requests = mixed_requests();
        let mut g = Generator::new(FakeModel::new()).unwrap();
        g.generate(&requests, |_, _| {}).unwrap();
        let longest = requests.iter().map(|r| r.prompt.len()).max().unwrap();
        let log = g.model().log.borrow();
        assert!(
            log.caches.iter().all(|&(_, cap)| cap % BLOCK == 0),
            "{:?}",
            log.caches
        );
        // Room for the longest prompt in whole blocks, then the most new tokens.
        assert_eq!(
            log.caches[0],
            (
                requests.len(),
                (longest.div_ceil(BLOCK) * BLOCK + 12).next_multiple_of(BLOCK)
            )
        );
        let (prefill, decode): (Vec<_>, Vec<_>) = log.calls.iter().partition(|c| c.seq() > 1);
        assert_eq!(prefill.len(), longest.div_ceil(BLOCK));
        for (k, call) in prefill.iter().enumerate() {
            assert_eq!((call.seq(), call.past_len), (BLOCK, k * BLOCK));
            // Right-padded: each stream's real tokens come first.
            for row in call.real.chunks(BLOCK) {
                assert!(row.windows(2).all(|w| w[0] >= w[1]));
            }
        }
        assert!(decode.iter().all(|c| c.batch == requests.len()));
    }

    #[test]
    fn a_shared_prompt_prefix_is_computed_once_and_forked() {
        let system = ids("A system prompt that every one of these requests shares.");
        assert!(system.len() > 2 * BLOCK + 8);
        let requests: Vec<Request> = ["one", "two, longer", "three, the longest of them"]
            .iter()
            .map(|q| {
                let mut prompt = system.clone();
                prompt.extend(ids(q));
                request(&prompt, Sampling::greedy(5))
            })
            .collect();
        let mut g = Generator::new(FakeModel::new()).unwrap();
        let batched = g.generate(&requests, |_, _| {}).unwrap();
        let stats = g.take_stats();
        let shared = system.len() / BLOCK * BLOCK;
        {
            let log = g.model().log.borrow();
            // The prefix's blocks once, in one stream, then forked into three.
            assert!(log.calls[..shared / BLOCK]
                .iter()
                .all(|c| c.batch == 1 && c.seq() == BLOCK));
            assert_eq!(
                log.calls[..shared / BLOCK]
                    .iter()
                    .flat_map(|c| c.tokens.clone())
                    .collect::<Vec<_>>(),
                system[..shared]
            );
            assert_eq!(log.forks.len(), 1);
            assert_eq!(log.forks[0].1, 3);
            assert!(log.calls[shared / BLOCK..].iter().all(|c| c.batch == 3));
            let prompt_tokens: usize = requests.iter().map(|r| r.prompt.len()).sum();
            assert_eq!(stats.prefill_tokens, prompt_tokens - 2 * shared);
            assert_eq!(stats.reused_tokens, 2 * shared);
            assert_eq!(
                log.real_tokens(),
                stats.prefill_tokens + stats.decode_tokens
            );
        }
        assert_eq!(batched, alone(FakeModel::new(), &requests));
        // Without forking, every prompt is computed in full.
        let mut plain = Generator::new(FakeModel::without_fork()).unwrap();
        assert_eq!(plain.generate(&requests, |_, _| {}).unwrap(), batched);
        assert_eq!(plain.take_stats().reused_tokens, 0);
        assert!(plain.model().log.borrow().forks.is_empty());
    }

    #[test]
    fn a_lone_request_runs_beside_a_padding_stream() {
        let requests = [request(&ids("a lone request"), Sampling::greedy(6))];
        let mut g = Generator::new(FakeModel::new()).unwrap();
        g.generate(&requests, |_, _| {}).unwrap();
        let log = g.model().log.borrow();
        assert_eq!(log.forks.len(), 1);
        assert_eq!(log.forks[0].1, 2);
        let decode: Vec<_> = log.calls.iter().filter(|c| c.seq() == 1).collect();
        assert_eq!(decode.len(), 5);
        for call in decode {
            assert_eq!((call.batch, call.real.as_slice()), (2, &[true, false][..]));
        }
        // A model that cannot fork runs it alone.
        let mut plain = Generator::new(FakeModel::without_fork()).unwrap();
        plain.generate(&requests, |_, _| {}).unwrap();
        assert!(plain
            .model()
            .log
            .borrow()
            .calls
            .iter()
            .all(|c| c.batch == 1));
    }

    /// A fake that answers every prompt of `prompts` with `reply`.
    fn scripted(prompts: &[Vec<u32>], reply: &[u32]) -> Generator<FakeModel> {
        let mut model = FakeModel::new();
        for p in prompts {
            model.script(p, reply);
        }
        Generator::new(model).unwrap()
    }

    #[test]
    fn max_tokens_ends_each_stream_where_it_reaches_it() {
        let prompts: Vec<Vec<u32>> = ["p", "q", "r", "s"].iter().map(|p| ids(p)).collect();
        let mut g = scripted(&prompts, &ids("abcdefghijklmnopqrstuvwxyz"));
        let requests: Vec<Request> = prompts
            .iter()
            .zip([0, 1, 5, 9])
            .map(|(p, max)| request(p, Sampling::greedy(max)))
            .collect();
        let done = g.generate(&requests, |_, _| {}).unwrap();
        for (c, (max, text)) in done
            .iter()
            .zip([(0, ""), (1, "a"), (5, "abcde"), (9, "abcdefghi")])
        {
            assert_eq!(
                (c.tokens.len(), c.text.as_str(), c.finish),
                (max, text, FinishReason::Length)
            );
            assert_eq!(c.prompt_tokens, 1);
        }
        // A stream stops being fed where it ends: 4 + 8 tokens in 8 steps.
        let stats = g.take_stats();
        assert_eq!((stats.decode_tokens, stats.decode_steps), (12, 8));
    }

    #[test]
    fn the_end_of_turn_token_ends_a_reply_and_is_not_text() {
        let prompts = [ids("hello"), ids("bye")];
        let mut reply = ids("Hi there");
        reply.push(IM_END);
        let mut model = FakeModel::new();
        model.script(&prompts[0], &reply);
        model.script(&prompts[1], &[ids("ok")[0], ids("ok")[1], ENDOFTEXT]);
        let mut g = Generator::new(model).unwrap();
        let done = g
            .generate(
                &[
                    request(&prompts[0], Sampling::greedy(50)),
                    request(&prompts[1], Sampling::greedy(50)),
                ],
                |_, _| {},
            )
            .unwrap();
        assert_eq!(
            (done[0].text.as_str(), done[0].finish),
            ("Hi there", FinishReason::EndOfTurn)
        );
        assert_eq!(done[0].tokens, reply);
        assert_eq!(
            (done[1].text.as_str(), done[1].finish),
            ("ok", FinishReason::EndOfTurn)
        );
        assert_eq!(g.template().end_of_turn(), IM_END);
    }

    #[test]
    fn stop_strings_cut_the_text_and_are_held_back_until_ruled_out() {
        let prompt = ids("count");
        let mut g = scripted(std::slice::from_ref(&prompt), &ids("one\ntwo\n\nthree"));
        let sampling = Sampling {
            stop: vec!["\n\n".into(), "wrong".into()],
            ..Sampling::greedy(40)
        };
        let mut pieces = Vec::new();
        let done = g
            .generate(&[request(&prompt, sampling)], |i, piece| {
                assert_eq!(i, 0);
                pieces.push(piece.to_string());
            })
            .unwrap()
            .remove(0);
        assert_eq!(
            (done.text.as_str(), done.finish),
            ("one\ntwo", FinishReason::StopString)
        );
        // "\n" waits until "t" rules out "\n\n", "w" until "o" rules out
        // "wrong"; the "\n\n" itself never shows.
        assert_eq!(pieces, ["o", "n", "e", "\nt", "wo"]);
        assert_eq!(done.tokens, ids("one\ntwo\n\n"));
    }

    #[test]
    fn streamed_pieces_are_whole_characters_that_add_up_to_the_completion() {
        // One token per byte, so every non-ASCII character spans tokens.
        let prompt = ids("say");
        let text = "héllo wörld ✓ 日本 🦀";
        let mut reply = ids(text);
        reply.push(IM_END);
        let mut g = scripted(std::slice::from_ref(&prompt), &reply);
        let mut requests = mixed_requests();
        requests.push(request(&prompt, Sampling::greedy(100)));
        let mut streamed = vec![String::new(); requests.len()];
        let done = g
            .generate(&requests, |i, piece| {
                if i == requests.len() - 1 {
                    assert!(!piece.contains(char::REPLACEMENT_CHARACTER), "{piece:?}");
                }
                streamed[i].push_str(piece);
            })
            .unwrap();
        assert_eq!(done.last().unwrap().text, text);
        // The unscripted ones say random bytes, invalid UTF-8 included.
        for (s, c) in streamed.iter().zip(&done) {
            assert_eq!(s, &c.text);
            let bytes = g.model().tokenizer().decode_bytes(&c.tokens);
            let ended = c.finish == FinishReason::EndOfTurn;
            let bytes = if ended {
                &bytes[..bytes.len()
                    - g.model()
                        .tokenizer()
                        .token_bytes(*c.tokens.last().unwrap())
                        .len()]
            } else {
                &bytes[..]
            };
            assert_eq!(c.text, String::from_utf8_lossy(bytes));
        }
    }

    #[test]
    fn p_yes_compares_the_yes_and_no_logits_after_each_prompt() {
        let (yes, no) = (ids("Y")[0], ids("N")[0]);
        let mut g = Generator::new(FakeModel::new()).unwrap();
        assert_eq!(g.yes_no_tokens(), Some((yes, no)));
        let system = "Answer Yes or No to every question about the problem below, which is long enough to share.";
        let conversations: Vec<Vec<Message>> = [
            "Is it red?",
            "Is it blue?",
            "Is it?",
            "Is the sky green today?",
        ]
        .iter()
        .map(|q| vec![Message::system(system), Message::user(*q)])
        .chain([vec![Message::user("Unrelated?")]])
        .collect();
        let together = g.p_yes(&conversations).unwrap();
        assert!(
            !g.model().log.borrow().forks.is_empty(),
            "neighbours share their prefix"
        );
        for (c, &p) in conversations.iter().zip(&together) {
            let row = g.model().logits_after(&g.prompt(c).unwrap());
            let expected =
                1.0 / (1.0 + (f64::from(row[no as usize]) - f64::from(row[yes as usize])).exp());
            assert_eq!(p, expected);
            assert_eq!(g.p_yes(std::slice::from_ref(c)).unwrap(), [p]);
        }
    }

    #[test]
    fn candidate_scores_are_the_log_probabilities_of_each_reply() {
        let mut g = Generator::new(FakeModel::new()).unwrap();
        let messages = [Message::user("pick one")];
        let candidates: Vec<String> = ["a", "the", "fox"].iter().map(|s| s.to_string()).collect();
        let scores = g.score_candidates(&messages, &candidates).unwrap();
        let prompt = g.prompt(&messages).unwrap();
        for (c, &score) in candidates.iter().zip(&scores) {
            let mut full = prompt.clone();
            full.extend(ids(c));
            full.push(IM_END);
            let expected: f64 = (prompt.len()..full.len())
                .map(|k| log_softmax_at(&g.model().logits_after(&full[..k]), full[k] as usize))
                .sum();
            assert!((score - expected).abs() < 1e-9, "{score} vs {expected}");
        }
        assert_eq!(
            g.score_candidates(&messages, &candidates[1..2]).unwrap(),
            [scores[1]]
        );
    }

    #[test]
    fn chat_renders_the_models_template_and_replies() {
        let mut g = Generator::new(FakeModel::new()).unwrap();
        let prompt = g.prompt(&[Message::user("Hi")]).unwrap();
        let mut expected = vec![1];
        expected.extend(ids(
            "system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face",
        ));
        expected.extend([2, 7 + b'\n' as u32, 1]);
        expected.extend(ids("user\nHi"));
        expected.extend([2, 7 + b'\n' as u32, 1]);
        expected.extend(ids("assistant\n"));
        assert_eq!(prompt, expected);
        let reply = g
            .chat(&[Message::user("Hi")], &Sampling::greedy(4))
            .unwrap();
        assert_eq!(
            reply,
            g.generate(&[request(&prompt, Sampling::greedy(4))], |_, _| {})
                .unwrap()[0]
        );
        assert_eq!(reply.prompt_tokens, prompt.len());
    }

    #[test]
    fn caller_mistakes_are_typed_errors() {
        let mut g = Generator::new(FakeModel::new()).unwrap();
        let err = g
            .generate(
                &[
                    request(&ids("x"), Sampling::greedy(1)),
                    request(&[], Sampling::greedy(1)),
                ],
                |_, _| {},
            )
            .unwrap_err();
        assert!(
            matches!(err, InferenceError::EmptyPrompt { index: 1 }),
            "{err}"
        );
        assert!(g.generate(&[], |_, _| {}).unwrap().is_empty());
    }
}
