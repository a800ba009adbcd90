//! The crate's error type.

use tenbits_messaging::WireError;
use tenbits_qa::{ModelError, QaError};

/// Everything that can go wrong deploying, serving or asking.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// A configuration or task file is missing or invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A model could not be loaded or failed.
    #[error("model: {0}")]
    Model(#[from] ModelError),
    /// The answerer actor could not answer a request.
    #[error("answerer: {0}")]
    Answer(#[from] crate::answerer::AnswerFailure),
    /// The protocol failed (a model, the answerer, coding).
    #[error(transparent)]
    Qa(#[from] QaError),
    /// The connection failed, or the peer refused the handshake.
    #[error("wire: {0}")]
    Wire(#[from] WireError),
    /// The peers do not fit together (the answerer runs another model than
    /// configured, ...).
    #[error("handshake: {0}")]
    Handshake(String),
    /// An actor could not be started, or died.
    #[error("actor: {0}")]
    Actor(String),
    /// Socket or runtime setup.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}
