//! Loading models, and sharing one loaded model between sessions.

use std::sync::{Arc, Mutex, MutexGuard};

use tenbits_qa::{ChatModel, Message, ModelError, Sampling};

use crate::AgentError;

/// A model loaded for the deployment.
pub type BoxedModel = Box<dyn ChatModel + Send>;

/// Loads a model by registry name (`crates/inference/models.toml`) with a
/// number of intra-op threads. Deployments take one, so tests run on fakes
/// ([`crate::testing::FakeWorld::factory`]) and binaries on ONNX models
/// (`onnx_factory`, with the `onnx` feature).
pub type ModelFactory = Arc<dyn Fn(&str, usize) -> Result<BoxedModel, AgentError> + Send + Sync>;

/// The factory of the real models: [`crate::onnx::OnnxChatModel::load`].
#[cfg(feature = "onnx")]
pub fn onnx_factory() -> ModelFactory {
    Arc::new(|name: &str, threads: usize| {
        let model = crate::onnx::OnnxChatModel::load(name, threads)?;
        Ok(Box::new(model) as BoxedModel)
    })
}

/// One loaded model shared by several sessions (the asker side's choice):
/// each [`ChatModel`] call locks the model for its duration, so calls of
/// different sessions run one after another, never interleaved, and every
/// session sees exactly the results it would see alone (the models are
/// deterministic per call). Calls are not merged across sessions; for more
/// throughput load more copies (`[asker] count`), which sessions use
/// round-robin.
///
/// A panic inside a call does not poison the model for the other sessions:
/// the lock is recovered (a call leaves no state behind in the models this
/// crate hosts).
#[derive(Clone)]
pub struct SharedModel {
    inner: Arc<Mutex<BoxedModel>>,
    id: [u8; 16],
    name: String,
}

impl SharedModel {
    /// Shares `model`.
    pub fn new(model: BoxedModel) -> Self {
        let (id, name) = (model.model_id(), model.name().to_string());
        Self {
            inner: Arc::new(Mutex::new(model)),
            id,
            name,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BoxedModel> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ChatModel for SharedModel {
    fn model_id(&self) -> [u8; 16] {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn generate(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<String>, ModelError> {
        self.lock().generate(requests)
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        self.lock().p_yes(conversations)
    }
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        self.lock().score_candidates(conversation, candidates)
    }
}
