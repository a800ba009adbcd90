//! [`OpenAiChatModel`]: a [`ChatModel`] over any OpenAI-compatible
//! chat-completions endpoint (vLLM, llama.cpp's server, a cloud service,
//! `tenbits serve --openai`).
//!
//! Replies are chat completions. P(yes) is read from the first generated
//! token's `top_logprobs`: the "Yes" and "No" tokens (exactly those where
//! both are listed, as the local answerer compares exactly those tokens;
//! otherwise every spelling, `yes`, ` Yes`, …, summed), normalized over
//! the two. An endpoint that returns no log-probabilities is an error that
//! says so; where neither word is among the listed tokens (llama.cpp's
//! SmolLM2 often starts with "The"), P(yes) is 0.5 and a warning says so.
//! Requests run `concurrency` at a time; failures of transport, 429 and
//! 5xx are retried with doubling pauses.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use tenbits_qa::{ChatModel, Message, ModelError, Reply, Sampling};

use crate::wire::{ChatRequest, ChatResponse, Content, ErrorBody, WireMessage};

/// Where the endpoint is and how to talk to it.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiConfig {
    /// Base URL, up to and including `/v1` (e.g. `http://127.0.0.1:8000/v1`).
    pub base_url: String,
    /// The model's name at the endpoint.
    pub model: String,
    /// The environment variable holding the API key, if one is needed.
    /// The key is sent as a bearer token and never logged.
    pub api_key_env: Option<String>,
    /// Longest wait for one response.
    pub timeout: Duration,
    /// Attempts after a failure of transport, 429 or 5xx.
    pub retries: u32,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Alternatives asked per token for P(yes) (OpenAI allows up to 20).
    pub top_logprobs: usize,
}

impl Default for OpenAiConfig {
    fn default() -> Self {
        Self {
            base_url: "http://127.0.0.1:8000/v1".into(),
            model: "default".into(),
            api_key_env: Some("OPENAI_API_KEY".into()),
            timeout: Duration::from_secs(120),
            retries: 3,
            concurrency: 8,
            top_logprobs: 20,
        }
    }
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// The endpoint could not be reached or did not answer in time.
    #[error("cannot reach {url}: {message}")]
    Transport {
        /// The URL.
        url: String,
        /// What happened.
        message: String,
    },
    /// The endpoint answered with an error status.
    #[error("{url} answered {status}: {message}")]
    Status {
        /// The URL.
        url: String,
        /// The HTTP status.
        status: u16,
        /// The error message of the body, or the body.
        message: String,
    },
    /// The response is not what the API specifies.
    #[error("unexpected response from {url}: {message}")]
    Response {
        /// The URL.
        url: String,
        /// What is wrong.
        message: String,
    },
    /// The endpoint returned no log-probabilities, which P(yes) needs.
    #[error("{url} returned no logprobs for model `{model}`; the answerer needs an endpoint that supports `logprobs` and `top_logprobs` (vLLM, llama.cpp's server and tenbits serve --openai do)")]
    NoLogprobs {
        /// The URL.
        url: String,
        /// The model.
        model: String,
    },
}

/// A [`ChatModel`] whose every call is a chat completion at an
/// OpenAI-compatible endpoint.
pub struct OpenAiChatModel {
    config: OpenAiConfig,
    agent: ureq::Agent,
    /// The bearer token, read once from the environment.
    api_key: Option<Arc<str>>,
    id: [u8; 16],
    name: String,
}

impl OpenAiChatModel {
    /// A client for `config`; reads the API key from its variable now.
    pub fn new(config: OpenAiConfig) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(config.timeout))
            .http_status_as_error(false)
            .build()
            .into();
        let api_key = config
            .api_key_env
            .as_deref()
            .and_then(|v| std::env::var(v).ok())
            .filter(|k| !k.is_empty())
            .map(Arc::from);
        // The identity a transcript records: the endpoint and the model.
        let digest = Sha256::new()
            .chain_update(config.base_url.as_bytes())
            .chain_update([0])
            .chain_update(config.model.as_bytes())
            .finalize();
        let id = digest[..16].try_into().expect("32 >= 16");
        let name = config.model.clone();
        Self {
            config,
            agent,
            api_key,
            id,
            name,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &OpenAiConfig {
        &self.config
    }

    fn url(&self) -> String {
        format!(
            "{}/chat/completions",
            self.config.base_url.trim_end_matches('/')
        )
    }

    /// One chat completion, retried on transport failures, 429 and 5xx.
    pub fn complete_one(&self, request: &ChatRequest) -> Result<ChatResponse, OpenAiError> {
        let url = self.url();
        let mut pause = Duration::from_millis(500);
        let mut attempt = 0;
        loop {
            let mut call = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json");
            if let Some(key) = &self.api_key {
                call = call.header("Authorization", &format!("Bearer {key}"));
            }
            let retryable = match call.send_json(request) {
                Ok(mut response) => {
                    let status = response.status().as_u16();
                    let body = response.body_mut().read_to_string().unwrap_or_default();
                    if status == 200 {
                        return serde_json::from_str(&body).map_err(|e| OpenAiError::Response {
                            url: url.clone(),
                            message: format!("{e}"),
                        });
                    }
                    let message = serde_json::from_str::<ErrorBody>(&body)
                        .map(|b| b.error.message)
                        .unwrap_or_else(|_| body.chars().take(300).collect());
                    let err = OpenAiError::Status {
                        url: url.clone(),
                        status,
                        message,
                    };
                    if status != 429 && status < 500 {
                        return Err(err);
                    }
                    err
                }
                Err(e) => OpenAiError::Transport {
                    url: url.clone(),
                    message: e.to_string(),
                },
            };
            if attempt >= self.config.retries {
                return Err(retryable);
            }
            attempt += 1;
            tracing::warn!("{retryable}; retrying in {} ms", pause.as_millis());
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_secs(30));
        }
    }

    fn request(&self, conversation: &[Message], sampling: &Sampling) -> ChatRequest {
        ChatRequest {
            model: self.config.model.clone(),
            messages: conversation
                .iter()
                .map(|m| WireMessage {
                    role: m.role.as_str().to_string(),
                    content: Content::Text(m.content.clone()),
                })
                .collect(),
            max_tokens: Some(sampling.max_tokens),
            temperature: Some(sampling.temperature),
            top_p: (sampling.top_p < 1.0).then_some(sampling.top_p),
            seed: Some(sampling.seed),
            stop: (!sampling.stop.is_empty())
                .then(|| crate::wire::Stop::Many(sampling.stop.clone())),
            ..ChatRequest::default()
        }
    }

    /// Runs `requests` at most `concurrency` at a time, results in order.
    fn run_all<T: Send>(
        &self,
        requests: Vec<ChatRequest>,
        read: impl Fn(ChatResponse) -> Result<T, OpenAiError> + Sync,
    ) -> Result<Vec<T>, ModelError> {
        let lanes = self.config.concurrency.max(1);
        let mut out: Vec<Option<Result<T, OpenAiError>>> =
            (0..requests.len()).map(|_| None).collect();
        for (chunk_requests, chunk_out) in requests.chunks(lanes).zip(out.chunks_mut(lanes)) {
            std::thread::scope(|scope| {
                let handles: Vec<_> = chunk_requests
                    .iter()
                    .map(|r| scope.spawn(|| self.complete_one(r).and_then(&read)))
                    .collect();
                for (slot, h) in chunk_out.iter_mut().zip(handles) {
                    *slot = Some(h.join().unwrap_or_else(|_| {
                        Err(OpenAiError::Response {
                            url: self.url(),
                            message: "a request thread panicked".into(),
                        })
                    }));
                }
            });
        }
        out.into_iter()
            .map(|r| {
                r.expect("every slot filled")
                    .map_err(|e| ModelError(e.to_string()))
            })
            .collect()
    }

    /// P(yes) from one response's first-token alternatives.
    fn p_yes_of(&self, response: ChatResponse) -> Result<f64, OpenAiError> {
        let no_logprobs = || OpenAiError::NoLogprobs {
            url: self.url(),
            model: self.config.model.clone(),
        };
        let first = response
            .choices
            .into_iter()
            .next()
            .and_then(|c| c.logprobs)
            .and_then(|l| l.content)
            .and_then(|c| c.into_iter().next())
            .ok_or_else(no_logprobs)?;
        let mut top = first.top_logprobs;
        if top.is_empty() {
            return Err(no_logprobs());
        }
        if !top.iter().any(|t| t.token == first.token) {
            top.push(crate::wire::TopLogprob {
                token: first.token,
                logprob: first.logprob,
                bytes: None,
            });
        }
        let alternatives: Vec<(&str, f64)> =
            top.iter().map(|t| (t.token.as_str(), t.logprob)).collect();
        Ok(p_yes_from_alternatives(&alternatives).unwrap_or_else(|| {
            // Both words are below every listed token, so neither is known
            // to be likelier: the answer carries nothing, which 0.5 says.
            // Failing instead would end every session in the batch over
            // one question the endpoint's model would not answer in words.
            let listed: Vec<&str> = alternatives.iter().take(5).map(|(t, _)| *t).collect();
            tracing::warn!(
                "{}: neither Yes nor No among the {} most likely first tokens (most likely {:?}); P(yes) taken as 0.5",
                self.url(),
                alternatives.len(),
                listed
            );
            0.5
        }))
    }
}

/// P(yes) from a first token's alternatives (text, natural-log
/// probability): the exact tokens "Yes" and "No" where both are present,
/// else every spelling of each summed; a side that is missing gets at most
/// the least likely alternative's probability. `None` if neither is there.
pub fn p_yes_from_alternatives(top: &[(&str, f64)]) -> Option<f64> {
    let exact = |w: &str| top.iter().find(|(t, _)| *t == w).map(|&(_, l)| l);
    if let (Some(y), Some(n)) = (exact("Yes"), exact("No")) {
        return Some(1.0 / (1.0 + (n - y).exp()));
    }
    let sum = |w: &str| {
        let ls: Vec<f64> = top
            .iter()
            .filter(|(t, _)| t.trim().eq_ignore_ascii_case(w))
            .map(|&(_, l)| l)
            .collect();
        (!ls.is_empty()).then(|| ls.iter().map(|l| l.exp()).sum::<f64>().ln())
    };
    let floor = top.iter().map(|&(_, l)| l).fold(f64::INFINITY, f64::min);
    match (sum("yes"), sum("no")) {
        (None, None) => None,
        (y, n) => {
            let (y, n) = (y.unwrap_or(floor), n.unwrap_or(floor));
            Some(1.0 / (1.0 + (n - y).exp()))
        }
    }
}

impl ChatModel for OpenAiChatModel {
    fn model_id(&self) -> [u8; 16] {
        self.id
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        let wire: Vec<ChatRequest> = requests.iter().map(|(c, s)| self.request(c, s)).collect();
        self.run_all(wire, |response| {
            let usage = response.usage.unwrap_or_default();
            let choice = response.choices.into_iter().next();
            Ok(Reply {
                truncated: choice.as_ref().and_then(|c| c.finish_reason.as_deref())
                    == Some("length"),
                text: choice
                    .and_then(|c| c.message.content)
                    .unwrap_or_default()
                    .trim()
                    .to_string(),
                prompt_tokens: usage.prompt_tokens as u64,
                new_tokens: usage.completion_tokens as u64,
            })
        })
    }

    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        let wire: Vec<ChatRequest> = conversations
            .iter()
            .map(|c| ChatRequest {
                logprobs: true,
                top_logprobs: Some(self.config.top_logprobs),
                ..self.request(c, &Sampling::greedy(1))
            })
            .collect();
        self.run_all(wire, |response| self.p_yes_of(response))
    }

    fn score_candidates(
        &mut self,
        _conversation: &[Message],
        _candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        Err(ModelError(
            "scoring candidate replies needs prompt log-probabilities, which chat completions do not return; use a local model for bisection".into(),
        ))
    }
}
