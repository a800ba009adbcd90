//! The vocabulary a chat model and its callers share: a conversation is a
//! list of [`Message`]s, each spoken by a [`Role`], and a completion is
//! drawn under a [`Sampling`].
//!
//! These types live apart so that the inference runtime
//! (`tenbits-inference`) and the model-agnostic protocol (`tenbits-qa`)
//! speak the same language without depending on each other.
//!
//! ```
//! use tenbits_chat::{Message, Role, Sampling};
//!
//! let conversation = [Message::system("Be brief."), Message::user("What is 6 x 7?")];
//! assert_eq!(conversation[1].role, Role::User);
//! assert_eq!(Role::Assistant.as_str(), "assistant");
//!
//! let sampling = Sampling { stop: vec!["\n".into()], ..Sampling::greedy(32) };
//! assert_eq!((sampling.max_tokens, sampling.temperature), (32, 0.0));
//! assert_eq!(Sampling::default().max_tokens, 512);
//! ```

#![warn(missing_docs)]

use serde::{Deserialize, Serialize};

/// Who speaks a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// Instructions.
    System,
    /// The person (or the other model) asking.
    User,
    /// The model's own turns.
    Assistant,
}

impl Role {
    /// The role's name as chat templates spell it (`system`, `user`,
    /// `assistant`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Message {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Self {
            role: Role::System,
            content: content.into(),
        }
    }
    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Self {
            role: Role::User,
            content: content.into(),
        }
    }
    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// How to pick each next token of a completion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sampling {
    /// Stop after this many new tokens.
    pub max_tokens: usize,
    /// 0 picks the most likely token (greedy); above 0 samples from the
    /// softmax of logits / temperature.
    pub temperature: f32,
    /// Sample only from the smallest set of tokens whose probability reaches
    /// `top_p` (nucleus sampling); 1 keeps all.
    pub top_p: f32,
    /// Seeds this request's random stream, so sampling is reproducible.
    pub seed: u64,
    /// Generation stops when the text contains one of these; the text is cut
    /// before it.
    pub stop: Vec<String>,
}

/// The token limit of [`Sampling::default`]: long enough for a worked
/// answer to a benchmark problem.
pub const DEFAULT_MAX_TOKENS: usize = 512;

impl Default for Sampling {
    /// Greedy, up to [`DEFAULT_MAX_TOKENS`] tokens, no stop strings.
    fn default() -> Self {
        Self::greedy(DEFAULT_MAX_TOKENS)
    }
}

impl Sampling {
    /// Greedy decoding of at most `max_tokens` tokens.
    pub fn greedy(max_tokens: usize) -> Sampling {
        Sampling {
            max_tokens,
            temperature: 0.0,
            top_p: 1.0,
            seed: 0,
            stop: Vec::new(),
        }
    }
}
