//! Loading models, and sharing one loaded model between sessions.

use std::sync::Arc;

use tenbits_qa::ChatModel;

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
/// their concurrent `generate` and `p_yes` calls are merged into batched
/// calls ([`tenbits_qa::SharedModel`]). For still more throughput load
/// more copies (`[asker] count`), which sessions use round-robin.
pub type SharedModel = tenbits_qa::SharedModel<BoxedModel>;
