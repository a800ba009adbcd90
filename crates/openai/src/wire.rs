//! The JSON of OpenAI's chat-completions API, as much of it as tenbits
//! sends and serves. Unknown fields are ignored both ways, as clients and
//! servers of that API do.

use serde::{Deserialize, Serialize};

/// `POST /v1/chat/completions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The model's name.
    pub model: String,
    /// The conversation.
    pub messages: Vec<WireMessage>,
    /// Most tokens to generate (the older name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<usize>,
    /// Most tokens to generate (the newer name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<usize>,
    /// 0 is greedy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus sampling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Seed of the sampler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Server-sent events instead of one response.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stream: bool,
    /// Return the log-probability of each generated token.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub logprobs: bool,
    /// How many alternatives per token (0–20) with `logprobs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_logprobs: Option<usize>,
    /// Stop strings: one or a list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Stop>,
}

/// `stop`: a string or a list of them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    /// One stop string.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Stop {
    /// The stop strings.
    pub fn into_vec(self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s],
            Stop::Many(v) => v,
        }
    }
}

/// One message: `content` as a string, or as a list of text parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: Content,
}

/// A message's content.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Parts; only `{"type": "text", "text": ...}` ones carry text here.
    Parts(Vec<Part>),
}

/// A content part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Part {
    /// `text` (others are refused).
    #[serde(rename = "type")]
    pub kind: String,
    /// The text of a `text` part.
    #[serde(default)]
    pub text: Option<String>,
}

/// A whole response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Response id.
    pub id: String,
    /// `chat.completion`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model.
    pub model: String,
    /// One choice (tenbits serves `n = 1`).
    pub choices: Vec<Choice>,
    /// Token counts.
    #[serde(default)]
    pub usage: Option<UsageCounts>,
}

/// A choice of a whole response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Choice {
    /// Its index.
    pub index: usize,
    /// The reply.
    pub message: ReplyMessage,
    /// Per-token log-probabilities, when asked.
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
    /// `stop` or `length`.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// The assistant's reply.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReplyMessage {
    /// `assistant`.
    pub role: String,
    /// Its text.
    #[serde(default)]
    pub content: Option<String>,
}

/// `logprobs` of a choice.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ChoiceLogprobs {
    /// One entry per generated token.
    #[serde(default)]
    pub content: Option<Vec<TokenLogprob>>,
}

/// One generated token and its alternatives.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenLogprob {
    /// The token's text.
    pub token: String,
    /// Its natural-log probability.
    pub logprob: f64,
    /// Its bytes (a token may end inside a character).
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
    /// The most likely tokens at this position.
    #[serde(default)]
    pub top_logprobs: Vec<TopLogprob>,
}

/// One alternative.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TopLogprob {
    /// Its text.
    pub token: String,
    /// Its natural-log probability.
    pub logprob: f64,
    /// Its bytes.
    #[serde(default)]
    pub bytes: Option<Vec<u8>>,
}

/// Token counts of a response.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct UsageCounts {
    /// Prompt tokens.
    pub prompt_tokens: usize,
    /// Generated tokens.
    pub completion_tokens: usize,
    /// Both.
    pub total_tokens: usize,
}

/// One event of a streamed response.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatChunk {
    /// Response id (the same in every chunk).
    pub id: String,
    /// `chat.completion.chunk`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// The model.
    pub model: String,
    /// One choice's delta.
    pub choices: Vec<ChunkChoice>,
}

/// A chunk's choice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChunkChoice {
    /// Its index.
    pub index: usize,
    /// New text (and the role, in the first chunk).
    pub delta: Delta,
    /// The log-probabilities of the tokens this chunk's text came from.
    #[serde(default)]
    pub logprobs: Option<ChoiceLogprobs>,
    /// Set in the last chunk.
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// New text.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Delta {
    /// `assistant`, first chunk only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
}

/// An error body: `{"error": {"message": ..., "type": ..., "code": ...}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// One line.
    pub message: String,
    /// `invalid_request_error`, `authentication_error`, `server_error`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short code, if any.
    #[serde(default)]
    pub code: Option<String>,
}

/// `GET /v1/models`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelList {
    /// `list`.
    pub object: String,
    /// The models.
    pub data: Vec<ModelCard>,
}

/// One model.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelCard {
    /// Its name.
    pub id: String,
    /// `model`.
    pub object: String,
    /// Unix seconds.
    pub created: u64,
    /// `tenbits`.
    pub owned_by: String,
}
