//! Lossy compression of model answers: ask a model for succinct rewrites,
//! code each losslessly, keep the shortest that still carries the answer.
//!
//! The published recipe (ask a model to rewrite a response as succinctly as
//! possible, then code the rewrite with the small model) reached about 0.03
//! of the original's size. The principal pieces:
//!
//! * [`rewrite_request`] — the rewriting prompt ([`REWRITE_PROMPT_VERSION`])
//!   as a chat request, sampled with a seed per rewrite;
//! * [`Survival`] — what must survive a rewrite: the final answer as the
//!   evaluation's extractor reads it ([`Survival::SameAnswer`]), a checker
//!   (gold answers, tests: [`Survival::Check`]), or nothing;
//! * [`compress_lossy`] — samples `n` rewrites from a [`ChatModel`], codes
//!   each (and the original, which always survives) with
//!   [`tenbits_lossless::compress`], and keeps the shortest survivor; the
//!   `.tb` header carries a lossy note ([`LossyNote`]) saying what it was
//!   rewritten from, so `tenbits info` can tell and `decompress` restores
//!   the rewrite exactly.
//!
//! ```no_run
//! # fn demo<R: tenbits_qa::ChatModel>(rewriter: &mut R) -> Result<(), tenbits_lossy::LossyError> {
//! use tenbits_inference::{OnnxModel, SessionSettings};
//! use tenbits_lossy::{compress_lossy, LossySettings, Survival};
//!
//! let mut coder = OnnxModel::load("tests/fixtures/tiny".as_ref(), SessionSettings { threads: 1 })?;
//! let answer = b"First, 15% of 260 is 0.15 * 260 = 39. Answer: 39";
//! let options = tenbits_lossless::Options { model_name: "tiny".into(), ..Default::default() };
//! let result = compress_lossy(rewriter, &mut coder, answer, &LossySettings::default(),
//!                             &Survival::SameAnswer, &options)?;
//! println!("kept rewrite {} of {} bytes", result.chosen, result.container.len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

use tenbits_chat::{Message, Role, Sampling};
use tenbits_inference::LanguageModel;
use tenbits_lossless::{LosslessError, Options};
use tenbits_qa::{ChatModel, ModelError};
use thiserror::Error;

/// Version of the rewriting prompt; recorded in every lossy file's note.
pub const REWRITE_PROMPT_VERSION: u32 = 1;

/// The rewriting instruction (the published recipe, except that the final
/// result is kept in the rewrite, so that a checker can read it).
pub const REWRITE_INSTRUCTION: &str = "Rewrite the response below as succinctly as possible. \
Keep only the reasoning someone needs to arrive at its result, drop everything else, \
and end with the result itself on its own line, exactly as the response states it. \
Reply with the rewrite only.";

/// Errors of lossy compression.
#[derive(Debug, Error)]
pub enum LossyError {
    /// The rewriter failed.
    #[error("rewriter: {0}")]
    Rewriter(#[from] ModelError),
    /// Coding failed.
    #[error(transparent)]
    Lossless(#[from] LosslessError),
    /// The coder failed to load or run.
    #[error(transparent)]
    Inference(#[from] tenbits_inference::InferenceError),
}

/// How rewrites are sampled.
#[derive(Debug, Clone, PartialEq)]
pub struct LossySettings {
    /// Rewrites sampled (N); the original is always a candidate too.
    pub samples: usize,
    /// Seed of the first rewrite; rewrite `i` uses `seed + i`, so the first
    /// `k` rewrites of a run with N > k are the rewrites of a run with N = k.
    pub seed: u64,
    /// Sampling temperature.
    pub temperature: f32,
    /// Most tokens per rewrite.
    pub max_tokens: usize,
}

impl Default for LossySettings {
    fn default() -> Self {
        LossySettings {
            samples: 5,
            seed: 0,
            temperature: 0.7,
            max_tokens: 384,
        }
    }
}

/// The chat request for one rewrite of `response`.
pub fn rewrite_request(
    response: &str,
    settings: &LossySettings,
    index: usize,
) -> (Vec<Message>, Sampling) {
    let messages = vec![Message {
        role: Role::User,
        content: format!("{REWRITE_INSTRUCTION}\n\nResponse:\n{response}"),
    }];
    let sampling = Sampling {
        max_tokens: settings.max_tokens,
        temperature: settings.temperature,
        seed: settings.seed.wrapping_add(index as u64),
        ..Sampling::default()
    };
    (messages, sampling)
}

/// What a rewrite must keep to be chosen.
pub enum Survival<'a> {
    /// Nothing: the shortest rewrite wins.
    Anything,
    /// The final answer the evaluation's extractor reads in the original
    /// (its `Answer:` line, `\boxed{}`, "the answer is", else its last
    /// number) must be what it reads in the rewrite. An original without
    /// one is only kept as is.
    SameAnswer,
    /// A checker: `true` if the rewrite still carries the result (for
    /// example graded right against a benchmark's gold answer).
    Check(&'a dyn Fn(&str) -> bool),
}

impl Survival<'_> {
    fn keeps(&self, original: &str, rewrite: &str) -> bool {
        match self {
            Survival::Anything => true,
            Survival::SameAnswer => match final_answer(original) {
                Some(answer) => {
                    final_answer(rewrite).is_some_and(|r| tenbits_eval::text_matches(&r, &answer))
                }
                None => false,
            },
            Survival::Check(check) => check(rewrite),
        }
    }
}

/// The final answer of a reply as the evaluation reads it: the marker rules
/// of [`tenbits_eval::extract_answer`], else the last number.
pub fn final_answer(reply: &str) -> Option<String> {
    tenbits_eval::extract_answer(reply)
        .or_else(|| tenbits_eval::extract_number(reply))
        .map(|e| e.text)
}

/// What a lossy file's header says it was made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LossyNote {
    /// The rewriter's name.
    pub rewriter: String,
    /// [`REWRITE_PROMPT_VERSION`].
    pub prompt: u32,
    /// Rewrites sampled.
    pub samples: usize,
    /// The first rewrite's seed.
    pub seed: u64,
    /// Bytes of the original response.
    pub original_bytes: usize,
    /// Which candidate was kept: 0 the original itself, `i` rewrite `i`.
    pub kept: usize,
}

impl LossyNote {
    /// The text the header carries.
    pub fn to_header(&self) -> String {
        format!(
            "rewriter={} prompt={} n={} seed={} original={} kept={}",
            self.rewriter, self.prompt, self.samples, self.seed, self.original_bytes, self.kept
        )
    }

    /// Parses [`Self::to_header`]'s text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<LossyNote> {
        let mut fields = std::collections::HashMap::new();
        for part in text.split(' ') {
            let (k, v) = part.split_once('=')?;
            fields.insert(k, v);
        }
        Some(LossyNote {
            rewriter: fields.get("rewriter")?.to_string(),
            prompt: fields.get("prompt")?.parse().ok()?,
            samples: fields.get("n")?.parse().ok()?,
            seed: fields.get("seed")?.parse().ok()?,
            original_bytes: fields.get("original")?.parse().ok()?,
            kept: fields.get("kept")?.parse().ok()?,
        })
    }
}

/// One candidate of [`compress_lossy`].
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The text (candidate 0 is the original).
    pub text: String,
    /// Its `.tb` size in bytes.
    pub coded_bytes: usize,
    /// Of which payload (the rest is the header: 17 bytes for the default
    /// model in format 3, plus the lossy note's length and one byte for a
    /// rewrite).
    pub payload_bytes: usize,
    /// Whether it keeps what [`Survival`] asks.
    pub survives: bool,
    /// Whether the rewriter stopped at the token limit.
    pub truncated: bool,
}

/// What [`compress_lossy`] made.
#[derive(Debug, Clone)]
pub struct LossyResult {
    /// The `.tb` file of the kept candidate (lossy note set, unless the
    /// original was kept: then it is an ordinary lossless file).
    pub container: Vec<u8>,
    /// Index of the kept candidate (0: the original).
    pub chosen: usize,
    /// Every candidate, the original first.
    pub candidates: Vec<Candidate>,
}

/// Samples `settings.samples` rewrites of `response` from `rewriter`, codes
/// the original and each rewrite with `coder` under `options`, and keeps the
/// shortest candidate that `survival` accepts (the original is always
/// accepted, so something is always kept; a truncated rewrite never is).
pub fn compress_lossy<R: ChatModel + ?Sized, M: LanguageModel>(
    rewriter: &mut R,
    coder: &mut M,
    response: &[u8],
    settings: &LossySettings,
    survival: &Survival<'_>,
    options: &Options,
) -> Result<LossyResult, LossyError> {
    let original = String::from_utf8_lossy(response).into_owned();
    let requests: Vec<_> = (0..settings.samples)
        .map(|i| rewrite_request(&original, settings, i))
        .collect();
    let replies = if requests.is_empty() {
        Vec::new()
    } else {
        rewriter.complete(&requests)?
    };
    let (plain, _) = tenbits_lossless::compress(coder, response, options, &mut |_| {})?;
    let mut candidates = vec![Candidate {
        text: original.clone(),
        coded_bytes: plain.len(),
        payload_bytes: tenbits_lossless::payload_bytes(&plain)?,
        survives: true,
        truncated: false,
    }];
    let mut files = vec![plain];
    for (i, reply) in replies.into_iter().enumerate() {
        let text = reply.text.trim().to_string();
        let note = LossyNote {
            rewriter: rewriter.name().to_string(),
            prompt: REWRITE_PROMPT_VERSION,
            samples: settings.samples,
            seed: settings.seed,
            original_bytes: response.len(),
            kept: i + 1,
        };
        let opts = Options {
            lossy: Some(note.to_header()),
            ..options.clone()
        };
        let (file, _) = tenbits_lossless::compress(coder, text.as_bytes(), &opts, &mut |_| {})?;
        let survives = !reply.truncated && !text.is_empty() && survival.keeps(&original, &text);
        candidates.push(Candidate {
            text,
            coded_bytes: file.len(),
            payload_bytes: tenbits_lossless::payload_bytes(&file)?,
            survives,
            truncated: reply.truncated,
        });
        files.push(file);
    }
    let chosen = choose(&candidates);
    Ok(LossyResult {
        container: files.swap_remove(chosen),
        chosen,
        candidates,
    })
}

/// The shortest surviving candidate; ties go to the earlier one.
pub fn choose(candidates: &[Candidate]) -> usize {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.survives)
        .min_by_key(|(i, c)| (c.coded_bytes, *i))
        .map_or(0, |(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(bytes: usize, survives: bool) -> Candidate {
        Candidate {
            text: String::new(),
            coded_bytes: bytes,
            payload_bytes: bytes,
            survives,
            truncated: false,
        }
    }

    #[test]
    fn the_shortest_survivor_is_chosen_never_a_lost_answer() {
        let c = [
            cand(100, true),
            cand(20, false),
            cand(40, true),
            cand(40, true),
        ];
        assert_eq!(choose(&c), 2);
        assert_eq!(choose(&[cand(100, true), cand(5, false)]), 0);
    }

    #[test]
    fn same_answer_reads_the_final_answer_of_both() {
        let s = Survival::SameAnswer;
        let original = "15% of 260 is 0.15 * 260 = 39.\nAnswer: 39";
        assert!(s.keeps(original, "0.15 * 260 = 39\n39"));
        assert!(!s.keeps(original, "0.15 * 260 = 390\n390"));
        assert!(!s.keeps(original, "It is fifteen percent of 260."));
        // An original with no answer at all is never rewritten.
        assert!(!s.keeps("Hello there.", "Hi."));
    }

    #[test]
    fn notes_round_trip() {
        let note = LossyNote {
            rewriter: "qwen2.5-coder-1.5b".into(),
            prompt: 1,
            samples: 5,
            seed: 7,
            original_bytes: 2048,
            kept: 3,
        };
        assert_eq!(LossyNote::parse(&note.to_header()), Some(note));
        assert_eq!(LossyNote::parse("garbage"), None);
    }
}
