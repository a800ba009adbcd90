//! The answerer actor: one large model serving many askers, their
//! questions batched into shared `p_yes` calls.

use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tenbits_qa::{answer_batch, Answer, AnswerBook, AnswerRequest, QaError};

use crate::model::BoxedModel;
use crate::AgentError;

/// Hosts the large model ([`AnswererArgs::model`]) and answers
/// [`AnswerRequest`]s from any number of sessions.
///
/// Requests wait in a queue until `max_batch` questions are pending or the
/// oldest has waited `max_wait`; then every pending request goes to
/// [`tenbits_qa::answer_batch`] at once (the own solutions still missing in
/// one `generate` call, every question in one `p_yes` call), and each
/// request gets its answers. Model calls run on a blocking thread, so while
/// a batch runs, new requests queue up for the next one.
///
/// What the answerer knows is its [`AnswerBook`]: the knowledge setting,
/// the deployment's references by problem text, and the own solutions
/// written so far (once per problem).
pub struct AnswererActor;

/// What an [`AnswererActor`] starts with.
pub struct AnswererArgs {
    /// The large model.
    pub model: BoxedModel,
    /// What it knows: knowledge setting, references, sampling of own
    /// solutions.
    pub book: AnswerBook,
    /// Questions that trigger a batch at once.
    pub max_batch: usize,
    /// Longest wait of a pending request.
    pub max_wait: Duration,
}

/// Why an [`AnswererActor`] could not answer a request. Cloned to every
/// request of a failed batch.
#[derive(Debug, Clone, thiserror::Error)]
pub enum AnswerFailure {
    /// The protocol or the model failed (a model error, a missing
    /// reference, a wrong count of results).
    #[error(transparent)]
    Qa(Arc<QaError>),
    /// The model panicked; the actor goes on with the model.
    #[error("the answerer's model panicked")]
    Panicked,
    /// The blocking thread running the model was lost, and the model with
    /// it; later requests fail with [`AnswerFailure::ModelGone`].
    #[error("the answerer's model thread was lost: {0}")]
    ThreadLost(String),
    /// The model was lost by an earlier failure.
    #[error("the answerer's model was lost")]
    ModelGone,
    /// A cluster replica refused the request, or none answered it.
    #[error("cluster: {0}")]
    Cluster(String),
}

/// Messages of an [`AnswererActor`].
pub enum AnswererMsg {
    /// Answer a request: one [`Answer`] per question (with `p_yes`), or the
    /// reason it failed.
    Answer(
        AnswerRequest,
        RpcReplyPort<Result<Vec<Answer>, AnswerFailure>>,
    ),
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
    /// Requests a cluster router sent to another replica after one failed.
    pub retried: u64,
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
        )?;
        if self.retried > 0 {
            write!(f, ", {} requests moved to another replica", self.retried)?;
        }
        Ok(())
    }
}

struct Pending {
    request: AnswerRequest,
    reply: RpcReplyPort<Result<Vec<Answer>, AnswerFailure>>,
}

/// The actor's state.
pub struct AnswererState {
    /// The model and its book travel together to the blocking thread.
    engine: Option<(BoxedModel, AnswerBook)>,
    /// The settings and references, to start over if the book is lost with
    /// a panicking model call.
    blank_book: AnswerBook,
    max_batch: usize,
    max_wait: Duration,
    pending: Vec<Pending>,
    pending_questions: usize,
    generation: u64,
    timer_armed: bool,
    stats: AnswererStats,
}

impl AnswererState {
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
            Ok(answers) => {
                for (p, answers) in batch.into_iter().zip(answers) {
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

    /// One list of answers per pending request, in order, from
    /// [`answer_batch`] on a blocking thread. A panic in the model becomes
    /// an error.
    async fn answer_batch(&mut self, batch: &[Pending]) -> Result<Vec<Vec<Answer>>, AnswerFailure> {
        let (model, mut book) = self.engine.take().ok_or(AnswerFailure::ModelGone)?;
        let requests: Vec<AnswerRequest> = batch.iter().map(|p| p.request.clone()).collect();
        let questions: usize = requests.iter().map(|r| r.questions.len()).sum();
        let solutions_before = book.solutions_written();
        let start = Instant::now();
        let joined = tokio::task::spawn_blocking(move || {
            let mut model = model;
            let refs: Vec<&AnswerRequest> = requests.iter().collect();
            let out = std::panic::catch_unwind(AssertUnwindSafe(|| {
                answer_batch(&mut book, &mut *model, &refs)
            }));
            (model, book, out)
        })
        .await;
        self.stats.model_time += start.elapsed();
        let (model, book, out) = joined.map_err(|e| AnswerFailure::ThreadLost(e.to_string()))?;
        let (book, out) = match out {
            Ok(out) => (book, out.map_err(|e| AnswerFailure::Qa(Arc::new(e)))),
            Err(_) => (self.blank_book.fresh(), Err(AnswerFailure::Panicked)),
        };
        self.stats.solutions += book.solutions_written().saturating_sub(solutions_before) as u64;
        self.engine = Some((model, book));
        let answers = out?;
        self.stats.record_batch(questions);
        self.stats.questions += questions as u64;
        Ok(answers)
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
            blank_book: args.book.fresh(),
            engine: Some((args.model, args.book)),
            max_batch: args.max_batch.max(1),
            max_wait: args.max_wait,
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
    budget: Option<tenbits_qa::PromptBudget>,
}

impl AnswererHandle {
    /// Starts an answerer actor.
    pub async fn spawn(args: AnswererArgs) -> Result<Self, AgentError> {
        let (model_id, model_name) = (args.model.model_id(), args.model.name().to_string());
        let budget = args.model.prompt_budget();
        let (actor, _join) = Actor::spawn(None, AnswererActor, args)
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the answerer: {e}")))?;
        Ok(Self {
            actor,
            model_id,
            model_name,
            budget,
        })
    }

    /// A handle on another actor that answers [`AnswererMsg`]s (a
    /// [`ClusterRouter`](crate::cluster::ClusterRouter)).
    pub fn from_actor(
        actor: ActorRef<AnswererMsg>,
        model_id: [u8; 16],
        model_name: String,
        budget: Option<tenbits_qa::PromptBudget>,
    ) -> Self {
        Self {
            actor,
            model_id,
            model_name,
            budget,
        }
    }

    /// The model's context and token counter, where it has them.
    pub fn prompt_budget(&self) -> Option<&tenbits_qa::PromptBudget> {
        self.budget.as_ref()
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
            ractor::rpc::CallResult::Success(Err(e)) => Err(AgentError::Answer(e)),
            _ => Err(AgentError::Actor("the answerer dropped a request".into())),
        }
    }

    /// The counters so far.
    pub async fn stats(&self) -> Result<AnswererStats, AgentError> {
        self.stats_within(None).await
    }

    /// [`Self::stats`], giving up after `limit` (the actor answers between
    /// batches, so a long batch would hold a plain call).
    pub async fn stats_within(&self, limit: Option<Duration>) -> Result<AnswererStats, AgentError> {
        match self.actor.call(AnswererMsg::Stats, limit).await {
            Ok(ractor::rpc::CallResult::Success(s)) => Ok(s),
            _ => Err(AgentError::Actor("the answerer is gone".into())),
        }
    }

    /// Stops the actor (pending requests are dropped).
    pub fn stop(&self) {
        self.actor.stop(None);
    }
}
