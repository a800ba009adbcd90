//! The real models as [`ChatModel`]s: [`OnnxChatModel`] adapts a
//! [`Generator`] (an ONNX model with its chat template) to the protocol's
//! trait, so asker and answerer actors host real models through the same
//! seam their tests use with fakes.

use std::path::Path;
use std::sync::Arc;

use tenbits_inference::{
    FinishReason, Generator, LanguageModel, OnnxModel, Registry, Request, SessionSettings,
    TextTokenizer,
};
use tenbits_qa::{ChatModel, Message, ModelError, PromptBudget, Reply, Sampling, Usage};

/// An ONNX model from the registry (or a directory) behind [`ChatModel`].
///
/// Deterministic: the same calls in the same order give bit-identical
/// results (prompts are computed in fixed blocks, see
/// `tenbits_inference::Generator`), which the one-way mode relies on.
pub struct OnnxChatModel {
    name: String,
    generator: Generator,
    budget: PromptBudget,
}

impl OnnxChatModel {
    /// Loads a registered model from the cache; the error says how to set it up.
    pub fn load(name: &str, threads: usize) -> Result<OnnxChatModel, ModelError> {
        let dir = Registry::embedded()
            .set_up_dir(name)
            .map_err(|e| ModelError(e.to_string()))?;
        Self::load_dir(name, &dir, threads)
    }

    /// Loads a converted model from `dir`.
    pub fn load_dir(name: &str, dir: &Path, threads: usize) -> Result<OnnxChatModel, ModelError> {
        let settings = SessionSettings {
            threads: threads.max(1),
        };
        let model = OnnxModel::load_for_rows(dir, settings)
            .map_err(|e| ModelError(format!("cannot load `{name}`: {e}")))?;
        let generator = Generator::new(model).map_err(|e| ModelError(e.to_string()))?;
        // A second copy of the tokenizer counts tokens off the model's
        // thread (the server checks requests while the model computes).
        let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))
            .map_err(|e| ModelError(format!("cannot load `{name}`'s tokenizer: {e}")))?;
        let max_token_bytes = (0..tokenizer.vocab_size() as u32)
            .map(|id| tokenizer.token_bytes(id).len())
            .max()
            .unwrap_or(1)
            .max(1);
        let tokenizer = Arc::new(tokenizer);
        let budget = PromptBudget {
            context_tokens: generator.model().config().context_length,
            max_token_bytes,
            count: Arc::new(move |text: &str| {
                tokenizer
                    .encode_bytes(text.as_bytes())
                    .map_or(usize::MAX, |ids| ids.len())
            }),
        };
        Ok(OnnxChatModel {
            name: name.to_string(),
            generator,
            budget,
        })
    }

    /// The generator underneath.
    pub fn generator(&mut self) -> &mut Generator {
        &mut self.generator
    }
}

fn model_error(e: tenbits_inference::InferenceError) -> ModelError {
    ModelError(e.to_string())
}

impl ChatModel for OnnxChatModel {
    fn model_id(&self) -> [u8; 16] {
        self.generator.model().fingerprint().model_id()
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        let requests: Vec<Request> = requests
            .iter()
            .map(|(conversation, s)| {
                Ok(Request {
                    prompt: self.generator.prompt(conversation).map_err(model_error)?,
                    sampling: s.clone(),
                })
            })
            .collect::<Result<_, ModelError>>()?;
        let completions = self
            .generator
            .generate(&requests, |_, _| {})
            .map_err(model_error)?;
        let reply = |c: tenbits_inference::Completion| Reply {
            text: c.text.trim().to_string(),
            truncated: c.finish == FinishReason::Length,
            prompt_tokens: c.prompt_tokens as u64,
            new_tokens: c.tokens.len() as u64,
        };
        Ok(completions.into_iter().map(reply).collect())
    }

    fn take_usage(&mut self) -> Usage {
        let stats = self.generator.take_stats();
        Usage {
            prompt_tokens: stats.prefill_tokens as u64,
            generated_tokens: stats.decode_tokens as u64,
            seconds: stats.prefill_seconds + stats.decode_seconds,
        }
    }

    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        self.generator.p_yes(conversations).map_err(model_error)
    }

    fn prompt_budget(&self) -> Option<PromptBudget> {
        Some(self.budget.clone())
    }

    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        self.generator
            .score_candidates(conversation, candidates)
            .map_err(model_error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prompt_budget_counts_with_the_models_own_tokenizer() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny");
        let model = OnnxChatModel::load_dir("tiny", &dir, 1).expect("the tiny model loads");
        let budget = model.prompt_budget().expect("a real model has a budget");
        assert_eq!(
            budget.context_tokens,
            model.generator.model().config().context_length
        );
        let short = (budget.count)("hello");
        let long = (budget.count)(&"hello ".repeat(100));
        assert!(short >= 1 && long > 50 * short, "{short} {long}");
        assert!(budget.max_token_bytes >= 1);
        // The bound it gives for refusing uncounted text holds.
        let text = "abc ".repeat(500);
        assert!((budget.count)(&text) >= text.len() / budget.max_token_bytes);
    }
}
