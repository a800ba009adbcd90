//! The question-asking (QA) protocol of "Haiku to Opus in Just 10 bits",
//! independent of any model runtime.
//!
//! A small model, the *asker*, drafts an answer to a [`Problem`], asks N
//! yes/no questions about it, gets one bit per question from a large model,
//! the *answerer*, and answers again. Models are reached only through the
//! [`ChatModel`] trait defined here; this crate knows nothing of ONNX,
//! tokenizers or actors.
//!
//! - [`prompts`]: every template, versioned by [`PROMPT_VERSION`], with the
//!   per-[`Task`] system prompts and the numbered-list parser
//!   ([`parse_questions`]).
//! - [`protocol`]: [`run`] plays one [`Setting`] (BLC, QA, QA+) under a
//!   [`Config`] (questions per round, rounds, accept/reject verdicts, the
//!   [`AnswererView`], coded answers) and returns a [`Transcript`]. The
//!   one-way (compression) view is [`Sender`] (the answerer plus a replica
//!   of the asker; emits only the payload) and [`Receiver`] (the asker
//!   alone; rebuilds the same transcript from the payload). Both run the
//!   same code; only where the bits come from differs.
//! - [`types`]: the shared vocabulary: [`Problem`], [`Knowledge`] (with
//!   the explicit fallback [`Knowledge::ReferenceElseOwn`]), [`Answer`] and
//!   the [`Basis`] each answer came from.
//! - [`answerer`]: how questions become bits, in one batched function,
//!   [`answer_batch`] (an [`AnswerBook`] says what the answerer knows), and
//!   the seam for answerers elsewhere (another actor or process): an
//!   [`AnswerRequest`] in, one [`Answer`] per question out, from an
//!   [`Answerer`]; [`run_remote`] plays a session against one;
//!   [`LocalAnswerer`] answers with a model at hand (the same transcript as
//!   [`run`]).
//! - [`coded`]: answer bits range-coded (with `tenbits-coding`) under the
//!   asker's own predictions of them, so answers cost less than a bit each
//!   when the asker can guess them.
//! - [`mod@bisect`]: candidate bisection for short answers ([`bisect()`],
//!   [`list_candidates`], [`Bisection`]).
//! - [`eval`]: grading of short and multiple-choice answers, and [`Tally`].
//! - [`shared`]: [`SharedModel`], one loaded model behind handles for many
//!   concurrent sessions, their calls merged into batched calls.
//!
//! ```
//! use tenbits_qa::{run, ChatModel, Config, Message, ModelError, Problem, Reply, Sampling, Setting, Task};
//!
//! /// Asks "Is it 42?" and believes only that.
//! struct Parrot(&'static str);
//! impl ChatModel for Parrot {
//!     fn model_id(&self) -> [u8; 16] { [self.0.len() as u8; 16] }
//!     fn name(&self) -> &str { self.0 }
//!     fn complete(&mut self, requests: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
//!         Ok(requests.iter().map(|_| "1. Is it 42?\n2) Is it odd?".into()).collect())
//!     }
//!     fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
//!         let yes = |c: &Vec<Message>| c.last().is_some_and(|m| m.content.contains("Question: Is it 42?"));
//!         Ok(conversations.iter().map(|c| if yes(c) { 0.9 } else { 0.2 }).collect())
//!     }
//!     fn score_candidates(&mut self, _: &[Message], c: &[String]) -> Result<Vec<f64>, ModelError> {
//!         Ok(vec![0.0; c.len()])
//!     }
//! }
//!
//! let problem = Problem::new(Task::ShortAnswer, "What is 6 x 7?").with_reference("42");
//! let t = run(Setting::Qa, &Config::default(), &mut Parrot("small"), &mut Parrot("large!"), &problem)?;
//! assert_eq!(t.rounds[0].questions.len(), 10); // two parsed, eight padded
//! assert_eq!(t.rounds[0].bits()[..3], [true, false, false]);
//! assert_eq!((t.raw_bits, t.payload_bits()), (10, 8)); // one byte: 1000_0000
//! # Ok::<(), tenbits_qa::QaError>(())
//! ```

#![warn(missing_docs)]

pub use tenbits_chat::{Message, Role, Sampling};
use thiserror::Error;

pub mod answerer;
pub mod bisect;
pub mod coded;
pub mod eval;
pub mod prompts;
pub mod protocol;
pub mod shared;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod twenty;
pub mod types;

pub use answerer::{
    answer_batch, answerer_conversations, own_solution_prompt, AnswerBook, AnswerRequest, Answerer,
    Known, LocalAnswerer,
};
pub use bisect::{asker_probabilities, bisect, bisect_to, list_candidates, Bisection};
pub use eval::{grade, Tally};
pub use prompts::{parse_questions, task_prompt_version, Task, PROMPT_VERSION};
pub use protocol::{run, run_remote, Config, Receiver, Round, Sender, Setting, Transcript};
pub use shared::SharedModel;
pub use twenty::{play_twenty_questions, Game, Turn, TwentyConfig};
pub use types::{
    default_yes_threshold, valid_yes_threshold, Answer, AnswererView, Basis, Knowledge, Problem,
    DEFAULT_YES_THRESHOLD,
};

/// A chat model, as the protocol sees it. Implementations must be
/// deterministic: the same inputs (and seed) give the same outputs, which
/// the one-way mode relies on.
pub trait ChatModel {
    /// Stable id of the exact model (16 bytes, e.g. a truncated sha256), used
    /// in transcripts and handshakes.
    fn model_id(&self) -> [u8; 16];
    /// A human-readable name.
    fn name(&self) -> &str;
    /// Completions of independent conversations, one per request, in order,
    /// with how each ended. The one way to generate a model implements:
    /// fakes that know nothing of tokens return `text.into()`.
    fn complete(&mut self, requests: &[(Vec<Message>, Sampling)])
        -> Result<Vec<Reply>, ModelError>;
    /// As [`ChatModel::complete`], the texts alone.
    fn generate(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<String>, ModelError> {
        Ok(self
            .complete(requests)?
            .into_iter()
            .map(|r| r.text)
            .collect())
    }
    /// For each conversation (whose last message is a user's yes/no
    /// question), P(yes) from one forward pass comparing the "Yes" and "No"
    /// answer tokens, normalized over the two.
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError>;
    /// Natural-log probabilities of each candidate as the assistant's reply
    /// to `conversation`, one per candidate.
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError>;
    /// The work done since the last call (tokens through the model), for
    /// compute accounting; models that do not count return zeros.
    fn take_usage(&mut self) -> Usage {
        Usage::default()
    }
    /// How many tokens of text this model can take in one prompt, and how
    /// to count them, so a server refuses an oversized problem before it
    /// reaches the model; `None` where the model cannot say (fakes).
    fn prompt_budget(&self) -> Option<PromptBudget> {
        None
    }
}

/// A model's context, and a counter of tokens as the model reads text
/// (see [`ChatModel::prompt_budget`]). Cheap to clone and safe to use from
/// any thread, apart from the model.
#[derive(Clone)]
pub struct PromptBudget {
    /// Most positions the model takes (prompt and reply together).
    pub context_tokens: usize,
    /// Bytes of the longest token: text of `n` bytes has at least
    /// `n / max_token_bytes` tokens, so longer text is refused uncounted.
    pub max_token_bytes: usize,
    /// Tokens in a text.
    pub count: std::sync::Arc<dyn Fn(&str) -> usize + Send + Sync>,
}

impl std::fmt::Debug for PromptBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptBudget")
            .field("context_tokens", &self.context_tokens)
            .field("max_token_bytes", &self.max_token_bytes)
            .finish_non_exhaustive()
    }
}

/// One completion and how it ended.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reply {
    /// The completion.
    pub text: String,
    /// Whether it ended at the token limit rather than on its own.
    pub truncated: bool,
    /// Tokens of its prompt (0 where the model does not count).
    pub prompt_tokens: u64,
    /// Tokens generated (0 where the model does not count).
    pub new_tokens: u64,
}

/// A whole completion of uncounted tokens, as fakes reply.
impl From<String> for Reply {
    fn from(text: String) -> Reply {
        Reply {
            text,
            ..Reply::default()
        }
    }
}

impl From<&str> for Reply {
    fn from(text: &str) -> Reply {
        text.to_string().into()
    }
}

/// Tokens a model computed: what [`ChatModel::take_usage`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Usage {
    /// Prompt tokens run through the model (a shared prefix once).
    pub prompt_tokens: u64,
    /// Tokens generated, one forward step each.
    pub generated_tokens: u64,
    /// Time in the model.
    pub seconds: f64,
}

impl Usage {
    /// Every token that went through the model.
    pub fn tokens(&self) -> u64 {
        self.prompt_tokens + self.generated_tokens
    }
}

impl std::ops::AddAssign for Usage {
    fn add_assign(&mut self, other: Usage) {
        self.prompt_tokens += other.prompt_tokens;
        self.generated_tokens += other.generated_tokens;
        self.seconds += other.seconds;
    }
}

/// A failure inside a [`ChatModel`] implementation.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{0}")]
pub struct ModelError(pub String);

/// Errors of the protocol.
#[derive(Debug, Error)]
pub enum QaError {
    /// A model failed.
    #[error("model failed: {0}")]
    Model(#[from] ModelError),
    /// A model returned the wrong number of results.
    #[error("{model} returned {got} results for {expected} inputs")]
    Count {
        /// The model's name.
        model: String,
        /// Inputs given.
        expected: usize,
        /// Results returned.
        got: usize,
    },
    /// The payload could not be coded or decoded.
    #[error("answer coding: {0}")]
    Coding(#[from] tenbits_coding::CodingError),
    /// The configuration or inputs cannot work (e.g. no reference answer for
    /// a view that needs one).
    #[error("{0}")]
    Invalid(&'static str),
    /// An answerer elsewhere failed or could not be reached (the transport's
    /// or the remote side's error).
    #[error("answerer: {0}")]
    Answerer(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Checks that a model returned one result per input.
fn check_count<T>(model: &dyn ChatModel, expected: usize, out: Vec<T>) -> Result<Vec<T>, QaError> {
    if out.len() == expected {
        Ok(out)
    } else {
        Err(QaError::Count {
            model: model.name().to_string(),
            expected,
            got: out.len(),
        })
    }
}

/// One completion.
fn generate_one(
    model: &mut dyn ChatModel,
    messages: Vec<Message>,
    sampling: &Sampling,
) -> Result<String, QaError> {
    let out = model.generate(&[(messages, sampling.clone())])?;
    Ok(check_count(model, 1, out)?.remove(0))
}

/// P(yes) for each conversation, checked for count.
fn p_yes(model: &mut dyn ChatModel, conversations: &[Vec<Message>]) -> Result<Vec<f64>, QaError> {
    let out = model.p_yes(conversations)?;
    check_count(model, conversations.len(), out)
}
