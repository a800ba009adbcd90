//! Many asker sessions under one supervisor: each session a child actor,
//! a failing or killed one ending alone.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tenbits_messaging::WireStats;
use tenbits_qa::{grade, run_remote, Config, Problem, Setting, Transcript};
use tokio::sync::{oneshot, watch};

use crate::model::SharedModel;
use crate::remote::{NoAnswerer, RemoteAnswerer};
use crate::server::Endpoint;
use crate::AgentError;

/// What every session of a swarm shares.
pub struct SwarmContext {
    /// Where the answerer is.
    pub endpoint: Endpoint,
    /// The setting (QA or BLC; QA+ cannot run remotely).
    pub setting: Setting,
    /// The protocol's parameters.
    pub config: Config,
    /// Loaded small models; session `i` uses `askers[i % len]`.
    pub askers: Vec<SharedModel>,
    /// The answerer's exact model id, if insisted on.
    pub expect_id: Option<[u8; 16]>,
    /// The answerer's model name, if insisted on.
    pub expect_name: Option<String>,
    /// Reconnection attempts after a dropped connection (0: none).
    pub reconnect: u32,
}

/// One session to play.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// The problem as the asker sees it (no reference).
    pub problem: Problem,
    /// The gold answer, for grading.
    pub gold: Option<String>,
}

/// A finished session.
#[derive(Debug, Clone)]
pub struct SessionReport {
    /// Its index in the swarm.
    pub index: usize,
    /// The transcript (bits, draft, revision).
    pub transcript: Transcript,
    /// Its connection's traffic.
    pub wire: WireStats,
    /// Round-trip time of each answer request.
    pub latencies: Vec<Duration>,
    /// Whether the draft was right (`None` without gold or for code).
    pub draft_correct: Option<bool>,
    /// Whether the final answer was right.
    pub correct: Option<bool>,
}

impl SessionReport {
    /// Answer bits conveyed, against bytes on the wire (both directions,
    /// handshake included).
    pub fn bits_vs_bytes(&self) -> (usize, u64) {
        (
            self.transcript.raw_bits,
            self.wire.bytes_sent + self.wire.bytes_received,
        )
    }
}

/// How a session ended.
#[derive(Debug, Clone)]
pub enum SessionOutcome {
    /// It finished.
    Done(Box<SessionReport>),
    /// It failed, crashed or was cancelled; the others went on.
    Failed {
        /// Its index.
        index: usize,
        /// Its problem.
        problem: String,
        /// Why.
        error: String,
    },
}

impl fmt::Display for SessionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SessionOutcome::Done(r) => {
                let (bits, bytes) = r.bits_vs_bytes();
                write!(
                    f,
                    "session {}: {:?} ({bits} answer bits, {bytes} wire bytes)",
                    r.index,
                    r.transcript.answer()
                )
            }
            SessionOutcome::Failed {
                index,
                problem,
                error,
            } => write!(f, "session {index} ({problem:?}) failed: {error}"),
        }
    }
}

/// Messages of the [`SwarmSupervisor`].
pub enum SwarmMsg {
    /// A child's result (acknowledged, so it arrives before the child's
    /// termination).
    Done(usize, Result<Box<SessionReport>, String>, RpcReplyPort<()>),
    /// Cancel session `i`: killed if running, never started if queued.
    Cancel(usize),
}

impl ractor::Message for SwarmMsg {}

/// Runs sessions as linked child actors ([`AskerSession`]), at most
/// `concurrency` at once, and collects one [`SessionOutcome`] per session.
/// A child that fails, panics or is killed is recorded as failed (and
/// logged); the supervisor itself goes on.
pub struct SwarmSupervisor;

/// What a [`SwarmSupervisor`] starts with.
pub struct SwarmArgs {
    /// Shared by the sessions.
    pub context: Arc<SwarmContext>,
    /// The sessions.
    pub specs: Vec<SessionSpec>,
    /// At most this many at once.
    pub concurrency: usize,
    /// Gets every outcome, by index, when all are in.
    pub done: oneshot::Sender<Vec<SessionOutcome>>,
    /// Told the number of sessions ended (done or failed) as each ends.
    pub ended: watch::Sender<usize>,
}

/// The supervisor's state.
pub struct SwarmState {
    context: Arc<SwarmContext>,
    specs: Vec<SessionSpec>,
    next: usize,
    concurrency: usize,
    running: HashMap<ActorId, (usize, ActorCell)>,
    cancels: HashMap<usize, Arc<AtomicBool>>,
    outcomes: Vec<Option<SessionOutcome>>,
    done: Option<oneshot::Sender<Vec<SessionOutcome>>>,
    ended: watch::Sender<usize>,
}

impl SwarmState {
    fn fail(&mut self, index: usize, error: String) {
        if self.outcomes[index].is_none() {
            tracing::error!("session {index} failed: {error}");
            self.end(
                index,
                SessionOutcome::Failed {
                    index,
                    problem: self.specs[index].problem.text.clone(),
                    error,
                },
            );
        }
    }

    /// Records the first outcome of session `index` and counts it ended.
    fn end(&mut self, index: usize, outcome: SessionOutcome) {
        if self.outcomes[index].is_none() {
            self.outcomes[index] = Some(outcome);
            self.ended.send_modify(|n| *n += 1);
        }
    }

    /// Starts sessions up to the concurrency; finishes when all are in.
    async fn fill(&mut self, myself: &ActorRef<SwarmMsg>) {
        while self.running.len() < self.concurrency && self.next < self.specs.len() {
            let index = self.next;
            self.next += 1;
            if self.outcomes[index].is_some() {
                continue; // cancelled before it started
            }
            let cancel = Arc::new(AtomicBool::new(false));
            let args = SessionArgs {
                index,
                spec: self.specs[index].clone(),
                context: self.context.clone(),
                supervisor: myself.clone(),
                cancel: cancel.clone(),
            };
            match Actor::spawn_linked(None, AskerSession, args, myself.get_cell()).await {
                Ok((child, _)) => {
                    self.running
                        .insert(child.get_id(), (index, child.get_cell()));
                    self.cancels.insert(index, cancel);
                }
                Err(e) => self.fail(index, format!("cannot start the session: {e}")),
            }
        }
        if self.running.is_empty() && self.next >= self.specs.len() {
            if let Some(done) = self.done.take() {
                let outcomes = self
                    .outcomes
                    .iter_mut()
                    .map(|o| o.take().unwrap())
                    .collect();
                let _ = done.send(outcomes);
                myself.stop(None);
            }
        }
    }
}

impl Actor for SwarmSupervisor {
    type Msg = SwarmMsg;
    type State = SwarmState;
    type Arguments = SwarmArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SwarmMsg>,
        args: SwarmArgs,
    ) -> Result<SwarmState, ActorProcessingErr> {
        Ok(SwarmState {
            outcomes: vec![None; args.specs.len()],
            context: args.context,
            specs: args.specs,
            next: 0,
            concurrency: args.concurrency.max(1),
            running: HashMap::new(),
            cancels: HashMap::new(),
            done: Some(args.done),
            ended: args.ended,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SwarmMsg>,
        state: &mut SwarmState,
    ) -> Result<(), ActorProcessingErr> {
        state.fill(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<SwarmMsg>,
        message: SwarmMsg,
        state: &mut SwarmState,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            SwarmMsg::Done(index, result, ack) => {
                match result {
                    Ok(report) => state.end(index, SessionOutcome::Done(report)),
                    Err(e) => state.fail(index, e),
                }
                let _ = ack.send(());
            }
            SwarmMsg::Cancel(index) if index < state.specs.len() => {
                state.fail(index, "cancelled".into());
                if let Some(flag) = state.cancels.get(&index) {
                    flag.store(true, Relaxed);
                }
                let running = state.running.values().find(|(i, _)| *i == index);
                if let Some((_, cell)) = running {
                    cell.kill();
                }
            }
            SwarmMsg::Cancel(_) => {}
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SwarmMsg>,
        event: SupervisionEvent,
        state: &mut SwarmState,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, error) = match event {
            SupervisionEvent::ActorFailed(cell, e) => (cell, format!("session crashed: {e}")),
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = reason.unwrap_or_else(|| "no reason given".into());
                (cell, format!("session ended without a result ({why})"))
            }
            _ => return Ok(()),
        };
        if let Some((index, _)) = state.running.remove(&cell.get_id()) {
            state.fail(index, error);
            if let Some(flag) = state.cancels.remove(&index) {
                flag.store(true, Relaxed);
            }
            state.fill(&myself).await;
        }
        Ok(())
    }
}

/// One asker session (a child of a [`SwarmSupervisor`]): connects to the
/// answerer, plays the protocol on a blocking thread with a
/// [`RemoteAnswerer`], reports to the supervisor and stops. A panic in the
/// session fails the actor (the supervisor records it); killing the actor
/// sets the session's cancel flag, so its thread stops at its next request.
pub struct AskerSession;

/// What an [`AskerSession`] starts with.
pub struct SessionArgs {
    /// Index in the swarm.
    pub index: usize,
    /// The session.
    pub spec: SessionSpec,
    /// Shared parts.
    pub context: Arc<SwarmContext>,
    /// Where to report.
    pub supervisor: ActorRef<SwarmMsg>,
    /// Set when the session is cancelled or killed.
    pub cancel: Arc<AtomicBool>,
}

/// Sets the cancel flag when the session's state goes (also when killed).
pub struct CancelOnDrop(Arc<AtomicBool>);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Relaxed);
    }
}

/// Messages of an [`AskerSession`].
pub enum SessionMsg {
    /// Play the session.
    Run,
}

impl ractor::Message for SessionMsg {}

/// An [`AskerSession`]'s state.
pub struct SessionState {
    args: Option<SessionArgs>,
    _guard: CancelOnDrop,
}

impl Actor for AskerSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<SessionMsg>,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        myself.send_message(SessionMsg::Run)?;
        Ok(SessionState {
            _guard: CancelOnDrop(args.cancel.clone()),
            args: Some(args),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<SessionMsg>,
        SessionMsg::Run: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        let Some(args) = state.args.take() else {
            return Ok(());
        };
        let (index, supervisor) = (args.index, args.supervisor.clone());
        let result = play(args).await?;
        let _ = supervisor
            .call(|ack| SwarmMsg::Done(index, result, ack), None)
            .await;
        myself.stop(None);
        Ok(())
    }
}

/// Plays one session; `Err` only when its thread panicked (or was lost).
/// BLC sessions consult no answerer and open no connection.
async fn play(args: SessionArgs) -> Result<Result<Box<SessionReport>, String>, ActorProcessingErr> {
    let ctx = args.context.clone();
    let mut asker = ctx.askers[args.index % ctx.askers.len()].clone();
    let remote = if ctx.setting == Setting::Blc {
        None
    } else {
        let connected = async {
            let asker_id = tenbits_qa::ChatModel::model_id(&asker);
            let session = args.index as u64;
            let (id, name) = (ctx.expect_id, ctx.expect_name.as_deref());
            RemoteAnswerer::open(&ctx.endpoint, asker_id, session, id, name)
                .await
                .map(|r| r.with_reconnect(ctx.reconnect))
        }
        .await;
        match connected {
            Ok(r) => Some(r.with_cancel(args.cancel.clone())),
            Err(e) => return Ok(Err(e.to_string())),
        }
    };
    let (spec, index) = (args.spec, args.index);
    let joined = tokio::task::spawn_blocking(move || {
        let (t, wire, latencies) = match remote {
            Some(mut remote) => {
                let (setting, config) = (ctx.setting, &ctx.config);
                let t = run_remote(setting, config, &mut asker, &mut remote, &spec.problem);
                let wire = remote.close().unwrap_or_else(|_| remote.wire_stats());
                (t, wire, remote.latencies().to_vec())
            }
            None => {
                let (setting, config) = (ctx.setting, &ctx.config);
                let t = run_remote(setting, config, &mut asker, &mut NoAnswerer, &spec.problem);
                (t, WireStats::default(), Vec::new())
            }
        };
        let t = t.map_err(|e| e.to_string())?;
        let grade_of = |answer: &str| {
            let gold = spec.gold.as_deref()?;
            grade(t.task, answer, gold)
        };
        Ok(Box::new(SessionReport {
            index,
            draft_correct: grade_of(&t.draft),
            correct: grade_of(t.answer()),
            latencies,
            wire,
            transcript: t,
        }))
    })
    .await;
    match joined {
        Ok(r) => Ok(r),
        Err(e) => Err(Box::new(AgentError::Actor(format!("session thread: {e}")))),
    }
}

/// A running swarm.
pub struct SwarmHandle {
    supervisor: ActorRef<SwarmMsg>,
    done: oneshot::Receiver<Vec<SessionOutcome>>,
    ended: watch::Receiver<usize>,
}

impl SwarmHandle {
    /// Starts the sessions of `specs`, at most `concurrency` at once.
    pub async fn start(
        context: Arc<SwarmContext>,
        specs: Vec<SessionSpec>,
        concurrency: usize,
    ) -> Result<Self, AgentError> {
        if context.askers.is_empty() {
            return Err(AgentError::Config("no asker model loaded".into()));
        }
        let (tx, done) = oneshot::channel();
        let (ended_tx, ended) = watch::channel(0);
        let args = SwarmArgs {
            context,
            specs,
            concurrency,
            done: tx,
            ended: ended_tx,
        };
        let (supervisor, _) = Actor::spawn(None, SwarmSupervisor, args)
            .await
            .map_err(|e| AgentError::Actor(format!("cannot start the swarm: {e}")))?;
        Ok(Self {
            supervisor,
            done,
            ended,
        })
    }

    /// Sessions ended so far (done or failed), updated as each ends: what
    /// a progress bar watches.
    pub fn ended(&self) -> watch::Receiver<usize> {
        self.ended.clone()
    }

    /// Cancels session `index` (see [`SwarmMsg::Cancel`]).
    pub fn cancel(&self, index: usize) {
        let _ = self.supervisor.send_message(SwarmMsg::Cancel(index));
    }

    /// Waits for every session; outcomes by index.
    pub async fn finish(self) -> Result<Vec<SessionOutcome>, AgentError> {
        self.done
            .await
            .map_err(|_| AgentError::Actor("the swarm supervisor died".into()))
    }
}
