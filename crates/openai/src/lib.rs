//! OpenAI-compatible chat completions, both ways.
//!
//! - [`OpenAiChatModel`] (module [`client`]): a `tenbits_qa::ChatModel`
//!   over any OpenAI-compatible endpoint, so an answerer (or an asker) can
//!   be a model behind vLLM, llama.cpp's server or a cloud service, run
//!   through the same protocol code as a local one. P(yes) comes from the
//!   first token's `top_logprobs` ([`p_yes_from_alternatives`]).
//! - [`server`] (feature `server`, default): tenbits' own models behind
//!   `/v1/chat/completions` (whole or streamed, with logprobs) and
//!   `/v1/models`, the bearer key being the TCP server's token.
//! - [`wire`]: the JSON both sides speak.
//!
//! ```
//! use tenbits_openai::p_yes_from_alternatives;
//!
//! // The first token's alternatives, as an endpoint reports them.
//! let p = p_yes_from_alternatives(&[("Yes", -0.1), ("No", -2.4), ("The", -4.0)]).unwrap();
//! assert!(p > 0.9);
//! // Other spellings count where the exact tokens are not both listed.
//! let p = p_yes_from_alternatives(&[(" no", -0.05), ("yes", -3.0)]).unwrap();
//! assert!(p < 0.1);
//! assert_eq!(p_yes_from_alternatives(&[("Maybe", -0.1)]), None);
//! ```

#![warn(missing_docs)]

pub mod client;
#[cfg(feature = "server")]
pub mod server;
pub mod wire;

pub use client::{p_yes_from_alternatives, OpenAiChatModel, OpenAiConfig, OpenAiError};
