//! The answerer actor: one large model serving many askers, their
//! questions batched into shared `p_yes` calls.

use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tenbits_qa::{
    answerer_conversations, own_solution_prompt, Answer, AnswerRequest, ChatModel, Known,
    ModelError, Problem, Sampling,
};

use crate::config::KnowledgeSetting;
use crate::model::BoxedModel;
use crate::AgentError;

/// Hosts the large model ([`AnswererArgs::model`]) and answers
/// [`AnswerRequest`]s from any number of sessions.
///
/// Requests wait in a queue until `max_batch` questions are pending or the
/// oldest has waited `max_wait`; then the questions of every pending request
/// go to the model in one [`ChatModel::p_yes`] call (and the own solutions
/// still missing, in one `generate` call first), and each request gets its
/// answers. Model calls run on a blocking thread, so while a batch runs,
/// new requests queue up for the next one.
///
/// What the answerer knows ([`KnowledgeSetting`]): with `Reference`, the
/// request's reference if it carries one, else the reference of the
/// deployment's task file (keyed by problem text), else its own solution;
/// with `OwnSolution`, always its own solution, generated once per problem
/// and cached.
pub struct AnswererActor;

/// What an [`AnswererActor`] starts with.
pub struct AnswererArgs {
    /// The large model.
    pub model: BoxedModel,
    /// What it knows.
    pub knowledge: KnowledgeSetting,
    /// Reference answers by problem text.
    pub references: HashMap<String, String>,
    /// Questions that trigger a batch at once.
    pub max_batch: usize,
    /// Longest wait of a pending request.
    pub max_wait: Duration,
    /// Sampling of own solutions.
    pub solution_sampling: Sampling,
}

/// Messages of an [`AnswererActor`].
pub enum AnswererMsg {
    /// Answer a request: one [`Answer`] per question (with `p_yes`), or the
    /// reason it failed.
    Answer(AnswerRequest, RpcReplyPort<Result<Vec<Answer>, String>>),
    /// Run the pending batch if it is still generation `0`'s (timer).
    Flush(u64),
    /// The counters so far.
    Stats(RpcReplyPort<AnswererStats>),
}

impl ractor::Message for AnswererMsg {}

/// An answerer's counters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AnswererStats {
    /// Requests answered (successfully or not).
    pub requests: u64,
    /// Questions answered.
    pub questions: u64,
    /// Batches, i.e. `p_yes` calls of the model.
    pub batches: u64,
    /// Largest batch, in questions.
    pub largest_batch: u64,
    /// Batches by size: `batch_sizes[k]` counts batches of `k` questions
    /// (the last entry also counts all larger ones).
    pub batch_sizes: Vec<u64>,
    /// Own solutions generated.
    pub solutions: u64,
    /// Requests that failed (model errors).
    pub failed_requests: u64,
    /// Time spent in model calls.
    pub model_time: Duration,
}

/// Batch sizes above this share the last histogram entry.
const HISTOGRAM_MAX: usize = 256;

impl AnswererStats {
    /// Mean questions per batch.
    pub fn mean_batch(&self) -> f64 {
        self.questions as f64 / self.batches.max(1) as f64
    }

    fn record_batch(&mut self, size: usize) {
        self.batches += 1;
        self.largest_batch = self.largest_batch.max(size as u64);
        let slot = size.min(HISTOGRAM_MAX);
        if self.batch_sizes.len() <= slot {
            self.batch_sizes.resize(slot + 1, 0);
        }
        self.batch_sizes[slot] += 1;
    }
}

impl fmt::Display for AnswererStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests, {} questions in {} batches (mean {:.1}, largest {}), {} own solutions, \
             {} failed requests, {:.2} s in the model",
            self.requests,
            self.questions,
            self.batches,
            self.mean_batch(),
            self.largest_batch,
            self.solutions,
            self.failed_requests,
            self.model_time.as_secs_f64()
        )
    }
}

struct Pending {
    request: AnswerRequest,
    reply: RpcReplyPort<Result<Vec<Answer>, String>>,
}

/// The actor's state.
pub struct AnswererState {
    model: Option<BoxedModel>,
    knowledge: KnowledgeSetting,
    references: HashMap<String, String>,
    solutions: HashMap<String, String>,
    max_batch: usize,
    max_wait: Duration,
    sampling: Sampling,
    pending: Vec<Pending>,
    pending_questions: usize,
    generation: u64,
    timer_armed: bool,
    stats: AnswererStats,
}

/// Runs `f` on the model on a blocking thread; the model comes back unless
/// the thread was lost. A panic in the model becomes an error.
async fn on_model<T: Send + 'static>(
    model: BoxedModel,
    f: impl FnOnce(&mut dyn ChatModel) -> Result<T, ModelError> + Send + 'static,
) -> (Option<BoxedModel>, Result<T, String>) {
    let joined = tokio::task::spawn_blocking(move || {
        let mut model = model;
        let out = std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut *model)));
        (model, out)
    })
    .await;
    match joined {
        Ok((model, Ok(out))) => (Some(model), out.map_err(|e| e.to_string())),
        Ok((model, Err(_))) => (Some(model), Err("the answerer's model panicked".into())),
        Err(e) => (
            None,
            Err(format!("the answerer's model thread was lost: {e}")),
        ),
    }
}

impl AnswererState {
    /// The reference to use for a problem, if any.
    fn reference<'a>(&'a self, problem: &'a Problem) -> Option<&'a str> {
        if self.knowledge == KnowledgeSetting::OwnSolution {
            return None;
        }
        problem
            .reference
            .as_deref()
            .or_else(|| self.references.get(&problem.text).map(String::as_str))
    }

    /// Answers every pending request.
    async fn flush(&mut self) {
        let batch = std::mem::take(&mut self.pending);
        self.pending_questions = 0;
        self.generation += 1;
        self.timer_armed = false;
        if batch.is_empty() {
            return;
        }
        let result = self.answer_batch(&batch).await;
        self.stats.requests += batch.len() as u64;
        match result {
            Ok(mut answers) => {
                for (p, answers) in batch.into_iter().zip(answers.drain(..)) {
                    let _ = p.reply.send(Ok(answers));
                }
            }
            Err(e) => {
                tracing::error!("answerer batch of {} requests failed: {e}", batch.len());
                self.stats.failed_requests += batch.len() as u64;
                for p in batch {
                    let _ = p.reply.send(Err(e.clone()));
                }
            }
        }
    }

    /// One list of answers per pending request, in order.
    async fn answer_batch(&mut self, batch: &[Pending]) -> Result<Vec<Vec<Answer>>, String> {
        // Own solutions still missing, in one generate call.
        let mut missing: Vec<&Problem> = Vec::new();
        for p in batch {
            let problem = &p.request.problem;
            let needs = self.reference(problem).is_none()
                && !self.solutions.contains_key(&problem.text)
                && !missing.iter().any(|m| m.text == problem.text);
            if needs {
                missing.push(problem);
            }
        }
        if !missing.is_empty() {
            let texts: Vec<String> = missing.iter().map(|p| p.text.clone()).collect();
            let sampling = self.sampling.clone();
            let prompts: Vec<_> = missing
                .iter()
                .map(|p| (own_solution_prompt(p), sampling.clone()))
                .collect();
            let n = prompts.len();
            let solutions = self
                .call(move |m| m.generate(&prompts))
                .await
                .and_then(|s| count(s, n))?;
            self.stats.solutions += n as u64;
            self.solutions.extend(texts.into_iter().zip(solutions));
        }
        // Every question of every request, in one p_yes call.
        let mut conversations = Vec::new();
        let mut sizes = Vec::with_capacity(batch.len());
        for p in batch {
            let problem = &p.request.problem;
            let known = match self.reference(problem) {
                Some(r) => Known::Reference(r),
                None => Known::OwnSolution(&self.solutions[&problem.text]),
            };
            let c = answerer_conversations(&p.request, known);
            sizes.push(c.len());
            conversations.extend(c);
        }
        let n = conversations.len();
        self.stats.record_batch(n);
        self.stats.questions += n as u64;
        let p_yes = self
            .call(move |m| m.p_yes(&conversations))
            .await
            .and_then(|p| count(p, n))?;
        let mut rest = p_yes.as_slice();
        let answers = sizes
            .iter()
            .map(|&k| {
                let (mine, tail) = rest.split_at(k);
                rest = tail;
                mine.iter()
                    .map(|&p| Answer {
                        bit: p >= 0.5,
                        p_yes: Some(p),
                        predicted: None,
                    })
                    .collect()
            })
            .collect();
        Ok(answers)
    }

    /// Runs `f` on the model, timing it.
    async fn call<T: Send + 'static>(
        &mut self,
        f: impl FnOnce(&mut dyn ChatModel) -> Result<T, ModelError> + Send + 'static,
    ) -> Result<T, String> {
        let model = self
            .model
            .take()
            .ok_or_else(|| "the answerer's model was lost".to_string())?;
        let start = Instant::now();
        let (model, out) = on_model(model, f).await;
        self.stats.model_time += start.elapsed();
        self.model = model;
        out
    }
}

fn count<T>(v: Vec<T>, expected: usize) -> Result<Vec<T>, String> {
    if v.len() == expected {
        Ok(v)
    } else {
        Err(format!(
            "the answerer's model returned {} results for {expected} inputs",
            v.len()
        ))
    }
}

impl Actor for AnswererActor {
    type Msg = AnswererMsg;
    type State = AnswererState;
    type Arguments = AnswererArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: AnswererArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(AnswererState {
            model: Some(args.model),
            knowledge: args.knowledge,
            references: args.references,
            solutions: HashMap::new(),
            max_batch: args.max_batch.max(1),
            max_wait: args.max_wait,
            sampling: args.solution_sampling,
            pending: Vec::new(),
            pending_questions: 0,
            generation: 0,
            timer_armed: false,
            stats: AnswererStats::default(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            AnswererMsg::Answer(request, reply) => {
                if request.questions.is_empty() {
                    let _ = reply.send(Ok(Vec::new()));
                    return Ok(());
                }
                state.pending_questions += request.questions.len();
                state.pending.push(Pending { request, reply });
                if state.pending_questions >= state.max_batch {
                    state.flush().await;
                } else if !state.timer_armed {
                    state.timer_armed = true;
                    let generation = state.generation;
                    myself.send_after(state.max_wait, move || AnswererMsg::Flush(generation));
                }
            }
            AnswererMsg::Flush(generation) => {
                if generation == state.generation {
                    state.flush().await;
                }
            }
            AnswererMsg::Stats(reply) => {
                let _ = reply.send(state.stats.clone());
            }
        }
        Ok(())
    }
}

/// A running [`AnswererActor`] and what its peers need to know of it.
#[derive(Clone)]
pub struct AnswererHandle {
    actor: ActorRef<AnswererMsg>,
    model_id: [u8; 16],
    model_name: String,
}

impl AnswererHandle {
    /// Starts an answerer actor.
    pub async fn spawn(args: AnswererArgs) -> Result<Self, AgentError> {
        let (model_id, model_name) = (args.model.model_id(), args.model.name().to_string());
        let (actor, _join) = Actor::spawn(None, AnswererActor, args)
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the answerer: {e}")))?;
        Ok(Self {
            actor,
            model_id,
            model_name,
        })
    }

    /// The model's id.
    pub fn model_id(&self) -> [u8; 16] {
        self.model_id
    }

    /// The model's name.
    pub fn model_name(&self) -> &str {
        &self.model_name
    }

    /// The actor.
    pub fn actor(&self) -> &ActorRef<AnswererMsg> {
        &self.actor
    }

    /// Answers one request (waiting for its batch).
    pub async fn answer(&self, request: AnswerRequest) -> Result<Vec<Answer>, AgentError> {
        let reply = self
            .actor
            .call(|port| AnswererMsg::Answer(request, port), None)
            .await
            .map_err(|e| AgentError::Actor(format!("answerer unreachable: {e}")))?;
        match reply {
            ractor::rpc::CallResult::Success(Ok(answers)) => Ok(answers),
            ractor::rpc::CallResult::Success(Err(e)) => {
                Err(AgentError::Qa(tenbits_qa::QaError::Answerer(e)))
            }
            _ => Err(AgentError::Actor("the answerer dropped a request".into())),
        }
    }

    /// The counters so far.
    pub async fn stats(&self) -> Result<AnswererStats, AgentError> {
        match self.actor.call(AnswererMsg::Stats, None).await {
            Ok(ractor::rpc::CallResult::Success(s)) => Ok(s),
            _ => Err(AgentError::Actor("the answerer is gone".into())),
        }
    }

    /// Stops the actor (pending requests are dropped).
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}
