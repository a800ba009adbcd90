//! Running a deployment from a [`DeploymentConfig`]: [`serve`], [`ask`],
//! [`simulate`], and their reports.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenbits_messaging::{Listener, WireStats};
use tenbits_qa::{AnswerBook, Knowledge, Problem, QaError, Setting, Transcript};

use crate::answerer::{AnswererArgs, AnswererHandle};
use crate::cluster::ClusterNode;
use crate::config::{load_tasks, Backend, DeploymentConfig, TaskSpec, TransportKind};
use crate::model::{BoxedModel, ModelFactory, SharedModel};
use crate::server::{Endpoint, ListenOptions, ServerHandle, ServerStats, Service, TcpEndpoint};
use crate::swarm::{SessionOutcome, SessionReport, SessionSpec, SwarmContext, SwarmHandle};
use crate::AgentError;

/// Loads a model on a blocking thread.
pub(crate) async fn load(
    factory: &ModelFactory,
    name: &str,
    threads: usize,
) -> Result<BoxedModel, AgentError> {
    let (factory, name) = (factory.clone(), name.to_string());
    tokio::task::spawn_blocking(move || factory(&name, threads))
        .await
        .map_err(|e| AgentError::Actor(format!("model loading thread: {e}")))?
}

/// Starts the answerer actor for `cfg` with references from `tasks` (plus
/// `answerer.tasks`).
pub(crate) async fn start_answerer(
    cfg: &DeploymentConfig,
    factory: &ModelFactory,
    tasks: &[TaskSpec],
) -> Result<Service, AgentError> {
    let a = &cfg.answerer;
    let mut references: HashMap<String, String> = HashMap::new();
    let from_file = match &a.tasks {
        Some(path) => load_tasks(path)?,
        None => Vec::new(),
    };
    for t in from_file.iter().chain(tasks) {
        if let Some(gold) = &t.answer {
            references.insert(t.problem.clone(), gold.clone());
        }
    }
    let model: BoxedModel = match a.backend {
        Backend::Onnx => load(factory, &a.model, a.threads).await?,
        Backend::Openai => Box::new(tenbits_openai::OpenAiChatModel::new(
            cfg.openai.client_config(),
        )),
        Backend::Cluster => {
            // The replicas answer with their own books; this node routes.
            let node = ClusterNode::start(&cfg.cluster, &cfg.security).await?;
            let router = node.router(&a.model, a.expected_id()?).await?;
            return Ok(Service::new(router));
        }
    };
    // The book decides as the protocol's view of this deployment says.
    let qa = cfg.qa_config();
    let book =
        AnswerBook::for_view(&qa.view, qa.answer_sampling).with_references(Arc::new(references));
    let answerer = AnswererHandle::spawn(AnswererArgs {
        model,
        book,
        max_batch: a.max_batch,
        max_wait: Duration::from_millis(a.max_wait_ms),
    })
    .await?;
    Ok(Service::new(answerer))
}

/// Starts the answerer of `cfg`: loads `answerer.model` through `factory`,
/// spawns the [`AnswererActor`](crate::AnswererActor) and, for
/// `transport.kind = "tcp"`, listens on `transport.listen` (for
/// `"channel"`, connect with [`ServerHandle::connect_local`]). Call within
/// a multi-threaded tokio runtime.
pub async fn serve(
    cfg: &DeploymentConfig,
    factory: ModelFactory,
) -> Result<ServerHandle, AgentError> {
    let service = start_answerer(cfg, &factory, &[]).await?;
    let mut server = serve_with(cfg, service).await?;
    if cfg.cluster.enabled && cfg.answerer.backend != Backend::Cluster {
        let node = ClusterNode::start(&cfg.cluster, &cfg.security).await?;
        node.serve_answerer(server.service().clone()).await?;
        server.attach_cluster(node);
    }
    Ok(server)
}

pub(crate) async fn serve_with(
    cfg: &DeploymentConfig,
    service: Service,
) -> Result<ServerHandle, AgentError> {
    let listen = &cfg.transport.listen;
    let token = match cfg.transport.kind {
        TransportKind::Tcp => cfg.security.server_token(listen)?,
        TransportKind::Channel => cfg.security.token()?,
    };
    let service = service.with_limits(cfg.limits.service_limits(token));
    match cfg.transport.kind {
        TransportKind::Tcp => {
            let listener = Listener::bind(listen.as_str()).await?;
            let options = ListenOptions {
                max_connections: cfg.limits.max_connections,
                tls: cfg.security.tls_server()?,
            };
            let tls = options.tls.is_some();
            let server = ServerHandle::listen_with(service, listener, options)?;
            tracing::info!(
                "answerer {} listening on {:?} ({}, {})",
                server.service().answerer().model_name(),
                server.local_addr(),
                if tls { "TLS" } else { "plain TCP" },
                if server.service().limits().token.is_some() {
                    "token required"
                } else {
                    "no token"
                },
            );
            Ok(server)
        }
        TransportKind::Channel => Ok(ServerHandle::in_process(service)),
    }
}

/// The answerer at `transport.connect`, with the asker's TLS, token and
/// timeouts from `cfg`.
pub fn tcp_endpoint(cfg: &DeploymentConfig) -> Result<Endpoint, AgentError> {
    let connect = &cfg.transport.connect;
    Ok(Endpoint::Tcp(TcpEndpoint {
        addr: connect.clone(),
        tls: cfg.security.tls_client(connect)?,
        token: cfg.security.token()?,
        timeouts: cfg.limits.timeouts(),
    }))
}

/// One problem asked: the transcript, and its cost on the wire.
#[derive(Debug, Clone)]
pub struct AskReport {
    /// The session's transcript (draft, questions, bits, revision).
    pub transcript: Transcript,
    /// The answerer's model name (as it announced itself).
    pub answerer: String,
    /// The connection's traffic, handshake and `Bye` included (zero when no
    /// wire was used: BLC, or QA+ in one process).
    pub wire: WireStats,
    /// Round-trip time of each answer request.
    pub latencies: Vec<Duration>,
}

/// Plays one problem as configured: over TCP to `transport.connect`, or
/// (`"channel"`) with the answerer in this process over in-process channels
/// (the same frames). BLC consults no answerer; QA+ runs only in one
/// process (both models at hand, no wire). Blocking: call it outside any
/// async runtime; it runs its own. A [`Runtime`](crate::Runtime) for one
/// problem: to ask many, keep one and call [`Runtime::ask`](crate::Runtime::ask).
pub fn ask(
    cfg: &DeploymentConfig,
    factory: ModelFactory,
    problem: &str,
) -> Result<AskReport, AgentError> {
    let mut runtime = crate::Runtime::builder()
        .config(cfg.clone())
        .factory(factory)
        .build()?;
    let report = runtime.ask(problem);
    runtime.shutdown();
    report
}

/// Reconnection attempts of an asker: `transport.reconnect_attempts` with
/// `transport.reconnect`, else none.
pub(crate) fn reconnect_attempts(cfg: &DeploymentConfig) -> u32 {
    if cfg.transport.reconnect {
        cfg.transport.reconnect_attempts
    } else {
        0
    }
}

/// The reference of `problem` in `answerer.tasks`, if known and used.
pub(crate) fn reference_for(
    cfg: &DeploymentConfig,
    problem: &str,
) -> Result<Option<String>, AgentError> {
    if cfg.answerer.knowledge == Knowledge::OwnSolution {
        return Ok(None);
    }
    let Some(path) = &cfg.answerer.tasks else {
        return Ok(None);
    };
    let tasks = load_tasks(path)?;
    Ok(tasks
        .into_iter()
        .find(|t| t.problem == problem)
        .and_then(|t| t.answer))
}

impl fmt::Display for AskReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.transcript;
        let yes_no = |b: bool| if b { "yes" } else { "no" };
        writeln!(f, "problem: {}", t.problem)?;
        writeln!(f, "draft:\n{}", indent(&t.draft))?;
        let mut verdicts = t.verdicts.iter();
        for (i, round) in t.rounds.iter().enumerate() {
            if let Some(v) = verdicts.next() {
                let word = if v.bit { "accept" } else { "reject" };
                writeln!(f, "verdict: {word}")?;
            }
            writeln!(
                f,
                "round {} questions (answered by {}):",
                i + 1,
                self.answerer
            )?;
            for (q, a) in round.questions.iter().zip(&round.answers) {
                writeln!(f, "  {:<3} {q}", yes_no(a.bit))?;
            }
            writeln!(f, "revision:\n{}", indent(&round.revision))?;
        }
        if let Some(v) = verdicts.next() {
            writeln!(f, "verdict: {}", if v.bit { "accept" } else { "reject" })?;
        }
        writeln!(
            f,
            "answer: {}",
            tenbits_qa::eval::extract_answer(t.answer())
        )?;
        writeln!(
            f,
            "bits: {} answer bits ({:.1} bits coded, payload {} bytes)",
            t.raw_bits,
            t.ideal_bits,
            t.payload.len()
        )?;
        let w = &self.wire;
        write!(
            f,
            "wire: {} bytes sent, {} bytes received, {} frames, {} payload bits",
            w.bytes_sent,
            w.bytes_received,
            w.frames_sent + w.frames_received,
            w.payload_bits_received
        )?;
        if !self.latencies.is_empty() {
            let ms: Vec<String> = self
                .latencies
                .iter()
                .map(|d| format!("{:.1}", d.as_secs_f64() * 1e3))
                .collect();
            write!(f, "\nlatency per request (ms): {}", ms.join(", "))?;
        }
        Ok(())
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A simulation's results.
#[derive(Debug, Clone, Default)]
pub struct SimReport {
    /// Sessions run (tasks × repeat).
    pub sessions: usize,
    /// Sessions that finished.
    pub done: usize,
    /// Sessions that failed: index, problem, error.
    pub failed: Vec<(usize, String, String)>,
    /// Finished sessions with a gold answer (gradable).
    pub graded: usize,
    /// Correct drafts among them.
    pub draft_correct: usize,
    /// Correct final answers among them.
    pub correct: usize,
    /// Answer bits conveyed (verdicts included).
    pub answer_bits: usize,
    /// Bits of the transcripts' payloads (range-coded when `coded`).
    pub payload_bits: usize,
    /// Bytes on the askers' connections, both directions, summed.
    pub wire_bytes: u64,
    /// Answer bits the wire carried.
    pub wire_payload_bits: u64,
    /// Answer requests.
    pub requests: usize,
    /// Median latency per request.
    pub latency_p50: Duration,
    /// 99th percentile latency per request.
    pub latency_p99: Duration,
    /// Wall time of the sessions.
    pub elapsed: Duration,
    /// Questions answered per second of wall time.
    pub questions_per_second: f64,
    /// The server's counters (answerer's batches included), when it ran in
    /// this process.
    pub server: Option<ServerStats>,
    /// The shared asker models' `generate`/`p_yes` calls, and the sessions'
    /// calls merged into them ([`SharedModel::merged_calls`]).
    pub asker_calls: (u64, u64),
    /// Every session's outcome, by index.
    pub outcomes: Vec<SessionOutcome>,
}

/// The `q`-quantile (nearest rank) of sorted values (zero for none).
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl SimReport {
    /// Summarizes outcomes.
    pub fn from_outcomes(
        outcomes: Vec<SessionOutcome>,
        elapsed: Duration,
        server: Option<ServerStats>,
    ) -> Self {
        let mut r = SimReport {
            sessions: outcomes.len(),
            elapsed,
            server,
            ..SimReport::default()
        };
        let mut latencies = Vec::new();
        let mut questions = 0usize;
        for o in &outcomes {
            match o {
                SessionOutcome::Done(s) => {
                    r.done += 1;
                    r.add_session(s);
                    questions += s.transcript.raw_bits;
                    latencies.extend_from_slice(&s.latencies);
                }
                SessionOutcome::Failed {
                    index,
                    problem,
                    error,
                } => r.failed.push((*index, problem.clone(), error.clone())),
            }
        }
        latencies.sort();
        r.requests = latencies.len();
        r.latency_p50 = quantile(&latencies, 0.5);
        r.latency_p99 = quantile(&latencies, 0.99);
        r.questions_per_second = questions as f64 / elapsed.as_secs_f64().max(1e-9);
        r.outcomes = outcomes;
        r
    }

    fn add_session(&mut self, s: &SessionReport) {
        if let (Some(d), Some(c)) = (s.draft_correct, s.correct) {
            self.graded += 1;
            self.draft_correct += usize::from(d);
            self.correct += usize::from(c);
        }
        self.answer_bits += s.transcript.raw_bits;
        self.payload_bits += s.transcript.payload_bits();
        self.wire_bytes += s.wire.bytes_sent + s.wire.bytes_received;
        self.wire_payload_bits += s.wire.payload_bits_received;
    }
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        writeln!(
            f,
            "sessions: {} done, {} failed, of {} in {:.2} s",
            self.done,
            self.failed.len(),
            self.sessions,
            self.elapsed.as_secs_f64()
        )?;
        if self.graded > 0 {
            let pct = |n: usize| 100.0 * n as f64 / self.graded as f64;
            writeln!(
                f,
                "accuracy: draft {:.1}%, final {:.1}% ({} graded)",
                pct(self.draft_correct),
                pct(self.correct),
                self.graded
            )?;
        }
        let per = |x: f64| x / self.done.max(1) as f64;
        writeln!(
            f,
            "bits: {} answer bits ({:.1} per session), payload {} bits; wire {} bytes ({:.0} per \
             session) carrying {} answer bits",
            self.answer_bits,
            per(self.answer_bits as f64),
            self.payload_bits,
            self.wire_bytes,
            per(self.wire_bytes as f64),
            self.wire_payload_bits
        )?;
        write!(
            f,
            "latency per request: p50 {:.1} ms, p99 {:.1} ms over {} requests; {:.1} questions/s",
            ms(self.latency_p50),
            ms(self.latency_p99),
            self.requests,
            self.questions_per_second
        )?;
        if self.asker_calls.0 > 0 {
            write!(
                f,
                "\nasker models: {} batched calls carried {} requests ({:.1} per call)",
                self.asker_calls.0,
                self.asker_calls.1,
                self.asker_calls.1 as f64 / self.asker_calls.0 as f64
            )?;
        }
        if let Some(s) = &self.server {
            write!(f, "\nanswerer: {}", s.answerer)?;
        }
        for (i, problem, error) in &self.failed {
            write!(f, "\nfailed session {i} ({problem:?}): {error}")?;
        }
        Ok(())
    }
}

/// The sessions of the swarm's task file, `repeat` times, and the tasks.
pub fn swarm_sessions(
    cfg: &DeploymentConfig,
) -> Result<(Vec<TaskSpec>, Vec<SessionSpec>), AgentError> {
    let tasks = load_tasks(&cfg.swarm.tasks)?;
    let specs = (0..cfg.swarm.repeat.max(1))
        .flat_map(|_| &tasks)
        .map(|t| SessionSpec {
            problem: Problem::new(t.task.into(), t.problem.clone()),
            gold: t.answer.clone(),
        })
        .collect();
    Ok((tasks, specs))
}

/// Runs the swarm of `cfg`: the tasks of `swarm.tasks` (`repeat` times) as
/// sessions, `swarm.askers` at once, against one answerer: started here
/// (its references from the task file; TCP on `transport.listen`, or
/// in-process channels) unless `swarm.spawn_answerer = false`, which
/// connects to `transport.connect`. Askers share `asker.count` loaded
/// small models. Call within a multi-threaded tokio runtime.
pub async fn simulate(
    cfg: &DeploymentConfig,
    factory: ModelFactory,
) -> Result<SimReport, AgentError> {
    let (tasks, specs) = swarm_sessions(cfg)?;
    simulate_with(cfg, factory, &tasks, specs, |_| {}).await
}

/// [`simulate`] with the sessions given, and a hook that sees the running
/// swarm (e.g. to cancel a session).
pub async fn simulate_with(
    cfg: &DeploymentConfig,
    factory: ModelFactory,
    tasks: &[TaskSpec],
    specs: Vec<SessionSpec>,
    hook: impl FnOnce(&SwarmHandle),
) -> Result<SimReport, AgentError> {
    let setting: Setting = cfg.protocol.setting.into();
    if setting == Setting::QaPlus {
        return Err(QaError::Invalid("QA+ cannot run against a remote answerer").into());
    }
    let server = if cfg.swarm.spawn_answerer && setting == Setting::Qa {
        let service = start_answerer(cfg, &factory, tasks).await?;
        Some(serve_with(cfg, service).await?)
    } else {
        None
    };
    let endpoint = match &server {
        Some(s) => s.endpoint(),
        None => tcp_endpoint(cfg)?,
    };
    let mut askers = Vec::new();
    for _ in 0..cfg.asker.count.max(1) {
        askers.push(SharedModel::new(
            load(&factory, &cfg.asker.model, cfg.asker.threads).await?,
        ));
    }
    let context = Arc::new(SwarmContext {
        endpoint,
        setting,
        config: cfg.qa_config(),
        askers,
        expect_id: cfg.answerer.expected_id()?,
        expect_name: Some(cfg.answerer_name().to_string()),
        reconnect: reconnect_attempts(cfg),
    });
    let start = Instant::now();
    let askers = context.askers.clone();
    let swarm = SwarmHandle::start(context, specs, cfg.swarm.askers).await?;
    hook(&swarm);
    let outcomes = swarm.finish().await?;
    let elapsed = start.elapsed();
    let stats = match server {
        Some(s) => Some(s.shutdown().await),
        None => None,
    };
    let mut report = SimReport::from_outcomes(outcomes, elapsed, stats);
    report.asker_calls = askers.iter().fold((0, 0), |(c, r), a| {
        let (calls, requests) = a.merged_calls();
        (c + calls, r + requests)
    });
    Ok(report)
}
