//! `tenbits serve --openai`: a local model behind OpenAI's
//! `/v1/chat/completions` (whole or streamed, with `logprobs` and
//! `top_logprobs`) and `/v1/models`, with the TCP server's token as the
//! bearer key.
//!
//! The model runs on a blocking thread, one request at a time (its
//! [`Generator`] is behind a mutex); P(yes) read from this endpoint's
//! logprobs is the local answerer's P(yes): the same template, the same
//! first-token logits.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tenbits_inference::{
    token_logprobs, Generator, Message, OnnxModel, Request, Role, Sampling, TextTokenizer,
};
use tenbits_messaging::Token;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::StreamExt;

use crate::wire::{
    ChatChunk, ChatRequest, ChatResponse, Choice, ChoiceLogprobs, ChunkChoice, Content, Delta,
    ErrorBody, ErrorDetail, ModelCard, ModelList, ReplyMessage, TokenLogprob, TopLogprob,
    UsageCounts,
};

/// Most alternatives per token a request may ask for (OpenAI's limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// What the endpoint serves.
pub struct OpenAiServer {
    generator: Mutex<Generator<OnnxModel>>,
    /// The model's tokenizer again, to spell tokens while the generator
    /// is busy.
    tokenizer: Arc<TextTokenizer>,
    model: String,
    token: Option<Token>,
    created: u64,
}

impl OpenAiServer {
    /// Serves `generator` as model `model`; with `token`, every request
    /// must carry `Authorization: Bearer <token>` (else 401).
    /// `tokenizer` is a second copy of the model's (`tokenizer.json`).
    pub fn new(
        generator: Generator<OnnxModel>,
        tokenizer: TextTokenizer,
        model: &str,
        token: Option<Token>,
    ) -> Arc<Self> {
        Arc::new(Self {
            generator: Mutex::new(generator),
            tokenizer: Arc::new(tokenizer),
            model: model.to_string(),
            token,
            created: now(),
        })
    }

    /// The routes.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/models", get(models))
            .route("/v1/chat/completions", post(chat))
            .with_state(self.clone())
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn error(status: StatusCode, kind: &str, message: impl Into<String>) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            message: message.into(),
            kind: kind.into(),
            code: None,
        },
    };
    (status, Json(body)).into_response()
}

/// 401 unless the request carries the token (compared in constant time).
fn authorize(server: &OpenAiServer, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let Some(want) = &server.token else {
        return Ok(());
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(Token::new);
    let refuse = |message: &str| {
        Err(Box::new(error(
            StatusCode::UNAUTHORIZED,
            "authentication_error",
            message,
        )))
    };
    match given {
        Some(t) if !want.is_empty() && want.matches(&t) => Ok(()),
        Some(_) => refuse("wrong API key"),
        None => refuse("this endpoint requires an API key (Authorization: Bearer <token>)"),
    }
}

async fn models(State(server): State<Arc<OpenAiServer>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorize(&server, &headers) {
        return *r;
    }
    Json(ModelList {
        object: "list".into(),
        data: vec![ModelCard {
            id: server.model.clone(),
            object: "model".into(),
            created: server.created,
            owned_by: "tenbits".into(),
        }],
    })
    .into_response()
}

/// The conversation and sampling a request asks for, or why not.
fn parse(
    server: &OpenAiServer,
    req: &ChatRequest,
) -> Result<(Vec<Message>, Sampling, usize), String> {
    if req.model != server.model {
        return Err(format!(
            "this endpoint serves `{}`, not `{}`",
            server.model, req.model
        ));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for m in &req.messages {
        let role = match m.role.as_str() {
            "system" | "developer" => Role::System,
            "user" => Role::User,
            "assistant" => Role::Assistant,
            other => return Err(format!("unsupported role `{other}`")),
        };
        let content = match &m.content {
            Content::Text(t) => t.clone(),
            Content::Parts(parts) => {
                let mut text = String::new();
                for p in parts {
                    match (&*p.kind, &p.text) {
                        ("text", Some(t)) => text += t,
                        (kind, _) => return Err(format!("unsupported content part `{kind}`")),
                    }
                }
                text
            }
        };
        messages.push(Message { role, content });
    }
    if messages.is_empty() {
        return Err("`messages` is empty".into());
    }
    let top = req.top_logprobs.unwrap_or(0);
    if top > MAX_TOP_LOGPROBS {
        return Err(format!("top_logprobs is at most {MAX_TOP_LOGPROBS}"));
    }
    let mut sampling = Sampling::greedy(
        req.max_completion_tokens
            .or(req.max_tokens)
            .unwrap_or(tenbits_chat::DEFAULT_MAX_TOKENS),
    );
    // OpenAI's default temperature is 1.
    sampling.temperature = req.temperature.unwrap_or(1.0).max(0.0);
    sampling.top_p = req.top_p.unwrap_or(1.0);
    sampling.seed = req.seed.unwrap_or(0);
    sampling.stop = req.stop.clone().map(|s| s.into_vec()).unwrap_or_default();
    Ok((
        messages,
        sampling,
        if req.logprobs { top } else { usize::MAX },
    ))
}

/// One generated token's log-probabilities, as the API spells them.
fn entry(tokenizer: &TextTokenizer, token: u32, row: &[f32], top: usize) -> TokenLogprob {
    let text = |t: u32| String::from_utf8_lossy(tokenizer.token_bytes(t)).into_owned();
    let bytes = |t: u32| Some(tokenizer.token_bytes(t).to_vec());
    let (own, alternatives) = token_logprobs(row, &[token], top);
    TokenLogprob {
        token: text(token),
        logprob: own[0],
        bytes: bytes(token),
        top_logprobs: alternatives
            .into_iter()
            .map(|(t, logprob)| TopLogprob {
                token: text(t),
                logprob,
                bytes: bytes(t),
            })
            .collect(),
    }
}

/// Events of a streamed generation, from the model's thread.
enum Piece {
    Text(String, Vec<TokenLogprob>),
    Done(String),
    Failed(String),
}

async fn chat(
    State(server): State<Arc<OpenAiServer>>,
    headers: HeaderMap,
    body: Result<Json<ChatRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    if let Err(r) = authorize(&server, &headers) {
        return *r;
    }
    let Json(req) = match body {
        Ok(b) => b,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                e.body_text(),
            )
        }
    };
    let (messages, sampling, top) = match parse(&server, &req) {
        Ok(p) => p,
        Err(m) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", m),
    };
    let id = format!("chatcmpl-{:x}", now() ^ (req.messages.len() as u64) << 32);
    let (model, created) = (server.model.clone(), now());
    if req.stream {
        return stream(server, messages, sampling, top, id, model, created);
    }
    let worker = server.clone();
    let done = tokio::task::spawn_blocking(move || {
        let mut generator = worker.generator.lock().unwrap_or_else(|e| e.into_inner());
        let prompt = generator.prompt(&messages).map_err(|e| e.to_string())?;
        let request = Request { prompt, sampling };
        let tokenizer = worker.tokenizer.clone();
        let mut logprobs = Vec::new();
        let mut out = generator
            .generate_observed(
                std::slice::from_ref(&request),
                |_, _| {},
                |_, t, row| {
                    if top != usize::MAX {
                        logprobs.push(entry(&tokenizer, t, row, top));
                    }
                },
            )
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((out.remove(0), logprobs))
    })
    .await;
    let (completion, logprobs) = match done {
        Ok(Ok(c)) => c,
        Ok(Err(m)) => return error(StatusCode::BAD_REQUEST, "invalid_request_error", m),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                e.to_string(),
            )
        }
    };
    let finish = finish_reason(&completion);
    // The end-of-turn token ends the reply and is not part of its text or
    // its logprobs, as the API reports them.
    let mut logprobs = logprobs;
    if finish == "stop" && completion.tokens.len() == logprobs.len() {
        logprobs.pop();
    }
    let usage = UsageCounts {
        prompt_tokens: completion.prompt_tokens,
        completion_tokens: completion.tokens.len(),
        total_tokens: completion.prompt_tokens + completion.tokens.len(),
    };
    Json(ChatResponse {
        id,
        object: "chat.completion".into(),
        created,
        model,
        choices: vec![Choice {
            index: 0,
            message: ReplyMessage {
                role: "assistant".into(),
                content: Some(completion.text),
            },
            logprobs: (top != usize::MAX).then_some(ChoiceLogprobs {
                content: Some(logprobs),
            }),
            finish_reason: Some(finish.into()),
        }],
        usage: Some(usage),
    })
    .into_response()
}

fn finish_reason(c: &tenbits_inference::Completion) -> &'static str {
    match c.finish {
        tenbits_inference::FinishReason::Length => "length",
        _ => "stop",
    }
}

/// A streamed response: the model thread sends pieces of text (each with
/// the logprobs of the tokens it came from) as they are released.
fn stream(
    server: Arc<OpenAiServer>,
    messages: Vec<Message>,
    sampling: Sampling,
    top: usize,
    id: String,
    model: String,
    created: u64,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Piece>(64);
    tokio::task::spawn_blocking(move || {
        let mut generator = server.generator.lock().unwrap_or_else(|e| e.into_inner());
        let prompt = match generator.prompt(&messages) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.blocking_send(Piece::Failed(e.to_string()));
                return;
            }
        };
        let request = Request { prompt, sampling };
        let tokenizer = server.tokenizer.clone();
        // on_step sees each token before on_text releases the text it
        // completes: a piece carries the logprobs of the tokens behind it.
        let pending: std::cell::RefCell<Vec<TokenLogprob>> = Default::default();
        let result = generator.generate_observed(
            std::slice::from_ref(&request),
            |_, piece| {
                let lp = std::mem::take(&mut *pending.borrow_mut());
                let _ = tx.blocking_send(Piece::Text(piece.to_string(), lp));
            },
            |_, t, row| {
                if top != usize::MAX {
                    pending.borrow_mut().push(entry(&tokenizer, t, row, top));
                }
            },
        );
        match result {
            Ok(mut out) => {
                let c = out.remove(0);
                let mut rest = pending.take();
                if finish_reason(&c) == "stop" {
                    rest.pop();
                }
                if !rest.is_empty() {
                    let _ = tx.blocking_send(Piece::Text(String::new(), rest));
                }
                let _ = tx.blocking_send(Piece::Done(finish_reason(&c).into()));
            }
            Err(e) => {
                let _ = tx.blocking_send(Piece::Failed(e.to_string()));
            }
        }
    });
    let chunk =
        move |delta: Delta, logprobs: Option<ChoiceLogprobs>, finish: Option<String>| ChatChunk {
            id: id.clone(),
            object: "chat.completion.chunk".into(),
            created,
            model: model.clone(),
            choices: vec![ChunkChoice {
                index: 0,
                delta,
                logprobs,
                finish_reason: finish,
            }],
        };
    let first = chunk(
        Delta {
            role: Some("assistant".into()),
            content: Some(String::new()),
        },
        None,
        None,
    );
    let head = tokio_stream::once(first.clone());
    let chunk2 = chunk.clone();
    let body = ReceiverStream::new(rx).map(move |piece| match piece {
        Piece::Text(text, lp) => chunk2(
            Delta {
                role: None,
                content: Some(text),
            },
            (top != usize::MAX).then_some(ChoiceLogprobs { content: Some(lp) }),
            None,
        ),
        Piece::Done(finish) => chunk2(Delta::default(), None, Some(finish)),
        Piece::Failed(message) => chunk2(
            Delta {
                role: None,
                content: Some(format!("[error: {message}]")),
            },
            None,
            Some("error".into()),
        ),
    });
    let events = head
        .chain(body)
        .map(|c| {
            Ok::<_, Infallible>(
                Event::default().data(serde_json::to_string(&c).unwrap_or_default()),
            )
        })
        .chain(tokio_stream::once(Ok(Event::default().data("[DONE]"))));
    Sse::new(events).into_response()
}

/// Serves `server` on `listener` until `shutdown` resolves.
pub async fn serve(
    server: Arc<OpenAiServer>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, server.router())
        .with_graceful_shutdown(shutdown)
        .await
}
