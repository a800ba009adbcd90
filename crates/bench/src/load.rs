//! `tenbits bench load`: one answerer under many concurrent sessions, for
//! a fixed time, on loopback.
//!
//! The answerer is the real server (`ServerHandle` with its limits, the
//! `AnswererActor` batching, the protocol's `answer_batch`) over
//! [`Multiplier`], an instant rule-based model that knows products, so
//! what is measured is the runtime: the sockets, frames, actors and
//! batching, not a model. Each session has a problem of its own ("What is
//! a x b?") and asks three questions whose true answers differ per problem
//! (yes, no, no); a reply that is not its own problem's bits counts as
//! mixed up. Optionally, idle clients flood
//! the server meanwhile: each sends half a frame and stalls, is cut off by
//! the frame timeout, and connects again at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tenbits_agents::config::TransportKind;
use tenbits_agents::remote::RemoteAnswerer;
use tenbits_agents::{BoxedModel, DeploymentConfig, ModelFactory};
use tenbits_qa::answerer::AnswerRequest;
use tenbits_qa::{ChatModel, Message, ModelError, Problem, Reply, Sampling, Task};
use tokio::io::AsyncWriteExt;

use crate::memory::current_rss;
use crate::{Report, Sink};

/// What `tenbits bench load` runs.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Sessions open at once.
    pub sessions: usize,
    /// How long to hold the load.
    pub seconds: u64,
    /// Requests per session before it says `Bye` and a new one opens.
    pub requests_per_session: usize,
    /// Clients that send half a frame and stall, again and again.
    pub idle_clients: usize,
}

#[derive(Default)]
struct Tally {
    sessions: AtomicU64,
    requests: AtomicU64,
    lost: AtomicU64,
    mixed_up: AtomicU64,
    idle_cut_off: AtomicU64,
    latencies: Mutex<Vec<Duration>>,
    /// Why sessions were lost, with counts.
    causes: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Open file descriptors of this process.
fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

/// The problem of session slot `i` and its gold answer.
fn problem(i: usize) -> (String, u64) {
    let (a, b) = (i as u64 % 97 + 3, i as u64 / 97 + 2);
    (format!("What is {a} x {b}? (load slot {i})"), a * b)
}

/// The benchmark's answerer model: it finds "What is A x B?" in a
/// conversation and knows the product; it solves with "Answer: {A*B}" and
/// gives P(yes) 0.9 to "Is the answer {A*B}?" and 0.1 to other claims.
/// Instant by default, so the load measures everything around a model;
/// [`Multiplier::taking`] makes each call take a fixed time instead (a
/// model on an accelerator of its own, for the cluster benchmark).
#[derive(Debug, Clone, Copy, Default)]
pub struct Multiplier {
    /// How long each `generate` and `p_yes` call takes.
    pub call_time: Duration,
}

impl Multiplier {
    /// A multiplier whose every call takes `call_time`.
    pub fn taking(call_time: Duration) -> Self {
        Self { call_time }
    }

    fn work(&self) {
        if !self.call_time.is_zero() {
            std::thread::sleep(self.call_time);
        }
    }

    fn product(conversation: &[Message]) -> Option<u64> {
        conversation.iter().find_map(|m| {
            let rest = &m.content[m.content.find("What is ")? + 8..];
            let (a, rest) = rest.split_once(" x ")?;
            let b: String = rest.chars().take_while(char::is_ascii_digit).collect();
            Some(a.trim().parse::<u64>().ok()? * b.parse::<u64>().ok()?)
        })
    }

    fn claim(question: &str) -> Option<u64> {
        let rest = &question[question.rfind("Is the answer ")? + 14..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    }
}

impl ChatModel for Multiplier {
    fn model_id(&self) -> [u8; 16] {
        *b"bench-multiplier"
    }
    fn name(&self) -> &str {
        "multiplier"
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        self.work();
        Ok(requests
            .iter()
            .map(|(c, _)| match Self::product(c) {
                Some(p) => format!("Answer: {p}").into(),
                None => "Answer: unknown".into(),
            })
            .collect())
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        self.work();
        Ok(conversations
            .iter()
            .map(|c| {
                let last = c.last().map_or("", |m| m.content.as_str());
                match (Self::product(c), Self::claim(last)) {
                    (Some(p), Some(n)) if p == n => 0.9,
                    _ => 0.1,
                }
            })
            .collect())
    }
    fn score_candidates(
        &mut self,
        _: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        Ok(vec![0.0; candidates.len()])
    }
}

/// `tenbits bench load`: runs the load (and then, if asked, the same load
/// with idle flooders) and reports sessions/s, request latency, lost and
/// mixed-up sessions, memory and descriptors.
pub fn load(options: &LoadOptions, sink: &mut dyn Sink) -> Result<Report> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = Report::default();
    report.line(sink, format!(
        "one answerer (real server and actor, an instant rule-based model) on loopback; {} sessions at once for {} s, {} requests of 3 questions per session",
        options.sessions, options.seconds, options.requests_per_session
    ));
    report.line(sink, String::new());
    report.line(sink, "| idle flooders | sessions | sessions/s | requests | p50 latency ms | p99 latency ms | lost | mixed up | flooders cut off | RSS start → peak → end MB | fds start → peak → end |".into());
    report.line(
        sink,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|".into(),
    );
    let mut runs = vec![0];
    if options.idle_clients > 0 {
        runs.push(options.idle_clients);
    }
    for idle in runs {
        let row = rt.block_on(run_load(options, idle, sink))?;
        report.line(sink, row);
    }
    report.line(sink, String::new());
    report.line(sink, "- lost: sessions that ended in an error; mixed up: replies whose bits are not those of the session's own problem. Both must be 0.".into());
    report.line(sink, "- latency: one request (3 questions) from send to bits; RSS and fds: this process (server and clients), sampled each second.".into());
    Ok(report)
}

async fn run_load(options: &LoadOptions, idle: usize, sink: &mut dyn Sink) -> Result<String> {
    let factory: ModelFactory =
        Arc::new(|_: &str, _: usize| Ok(Box::new(Multiplier::default()) as BoxedModel));
    let mut cfg = DeploymentConfig::default();
    cfg.answerer.model = "multiplier".into();
    // It solves each problem once (remembered), then answers from that.
    cfg.answerer.knowledge = tenbits_qa::Knowledge::OwnSolution;
    cfg.answerer.max_batch = 256;
    cfg.answerer.max_wait_ms = 5;
    cfg.transport.kind = TransportKind::Tcp;
    cfg.transport.listen = "127.0.0.1:0".into();
    // A slot's next session may connect before the server has finished
    // with its last one (a permit is held until the connection's task
    // ends), so the cap leaves room for one closing connection per slot.
    cfg.limits.max_connections = 2 * options.sessions + idle + 64;
    cfg.limits.frame_timeout_ms = 1_000;
    cfg.security.token_env = None;
    let server = tenbits_agents::serve(&cfg, factory).await?;
    let addr = server.local_addr().context("the server has no address")?;
    let label = if idle > 0 {
        format!("load with {idle} idle flooders")
    } else {
        "load".to_string()
    };
    let mut m = drive(addr, options, idle, &label, sink).await;
    server.shutdown().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    (m.rss.2, m.fds.2) = (current_rss(), open_fds());
    let (rss0, rss_peak, rss1) = m.rss;
    let (fds0, fds_peak, fds1) = m.fds;
    let q = |p: f64| m.latency_ms(p);
    let mb = |b: u64| b as f64 / 1e6;
    Ok(format!(
        "| {idle} | {} | {:.0} | {} | {:.1} | {:.1} | {} | {} | {} | {:.0} → {:.0} → {:.0} | {fds0} → {fds_peak} → {fds1} |",
        m.sessions,
        m.sessions_per_second(),
        m.requests,
        q(0.5),
        q(0.99),
        m.lost,
        m.mixed_up,
        m.idle_cut_off,
        mb(rss0),
        mb(rss_peak),
        mb(rss1),
    ))
}

/// What one [`drive`] measured.
pub(crate) struct Measured {
    pub sessions: u64,
    pub requests: u64,
    pub lost: u64,
    pub mixed_up: u64,
    pub idle_cut_off: u64,
    /// Sorted.
    pub latencies: Vec<Duration>,
    pub elapsed: Duration,
    /// Start, peak, end (the end set by the caller, after shutdown).
    pub rss: (u64, u64, u64),
    pub fds: (usize, usize, usize),
}

impl Measured {
    pub fn latency_ms(&self, q: f64) -> f64 {
        tenbits_agents::quantile(&self.latencies, q).as_secs_f64() * 1e3
    }

    pub fn sessions_per_second(&self) -> f64 {
        self.sessions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Holds `options.sessions` sessions (and `idle` flooders) against the
/// answerer at `addr` for `options.seconds`, checking every reply.
pub(crate) async fn drive(
    addr: std::net::SocketAddr,
    options: &LoadOptions,
    idle: usize,
    label: &str,
    sink: &mut dyn Sink,
) -> Measured {
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let (rss0, fds0) = (current_rss(), open_fds());
    let mut workers = Vec::new();
    for slot in 0..options.sessions {
        let (tally, stop) = (tally.clone(), stop.clone());
        let per_session = options.requests_per_session.max(1);
        workers.push(tokio::spawn(async move {
            let (text, gold) = problem(slot);
            let questions = vec![
                format!("Is the answer {gold}?"),
                format!("Is the answer {}?", gold + 1),
                format!("Is the answer {gold}0?"),
            ];
            let request = AnswerRequest {
                problem: Problem::new(Task::ShortAnswer, text),
                current_answer: format!("Answer: {}", gold + 1),
                questions,
                sees_answer: false,
                verdict: false,
            };
            let mut session = 0u64;
            while !stop.load(Relaxed) {
                let id = (slot as u64) << 20 | session;
                session += 1;
                let outcome = async {
                    let conn = tenbits_messaging::connect(addr).await?;
                    let mut remote = RemoteAnswerer::connect(conn, [7; 16], id, None, None).await?;
                    for _ in 0..per_session {
                        let bits = remote.answer_async(&request).await?;
                        if bits != [true, false, false] {
                            tally.mixed_up.fetch_add(1, Relaxed);
                        }
                        tally.requests.fetch_add(1, Relaxed);
                    }
                    let latencies = remote.latencies().to_vec();
                    remote.close_async().await?;
                    Ok::<_, tenbits_agents::AgentError>(latencies)
                }
                .await;
                match outcome {
                    Ok(latencies) => {
                        tally.sessions.fetch_add(1, Relaxed);
                        tally.latencies.lock().unwrap().extend(latencies);
                    }
                    Err(e) => {
                        tally.lost.fetch_add(1, Relaxed);
                        *tally
                            .causes
                            .lock()
                            .unwrap()
                            .entry(e.to_string())
                            .or_default() += 1;
                    }
                }
            }
        }));
    }
    for _ in 0..idle {
        let (tally, stop) = (tally.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            // The first bytes of a frame announcing 1 MiB, then nothing.
            let half = [0u8, 0, 16, 0, b't', 2];
            while !stop.load(Relaxed) {
                let Ok(mut raw) = tokio::net::TcpStream::connect(addr).await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = raw.write_all(&half).await;
                let mut sink = Vec::new();
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut sink),
                )
                .await;
                tally.idle_cut_off.fetch_add(1, Relaxed);
            }
        }));
    }
    let (mut rss_peak, mut fds_peak) = (rss0, fds0);
    let start = Instant::now();
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(current_rss());
        fds_peak = fds_peak.max(open_fds());
        let elapsed = start.elapsed().as_secs();
        if elapsed.is_multiple_of(10) {
            sink.note(&format!(
                "{label}: {elapsed} of {} s, {} sessions, {} lost, ETA {} s",
                options.seconds,
                tally.sessions.load(Relaxed),
                tally.lost.load(Relaxed),
                options.seconds.saturating_sub(elapsed)
            ));
        }
    }
    stop.store(true, Relaxed);
    let elapsed = start.elapsed();
    for w in workers {
        // Idle flooders may sit in a read the server ends within its frame
        // timeout; sessions finish their current one.
        let _ = tokio::time::timeout(Duration::from_secs(30), w).await;
    }
    let mut latencies = std::mem::take(&mut *tally.latencies.lock().unwrap());
    latencies.sort();
    for (cause, n) in tally.causes.lock().unwrap().iter() {
        sink.note(&format!("lost {n}: {cause}"));
    }
    Measured {
        sessions: tally.sessions.load(Relaxed),
        requests: tally.requests.load(Relaxed),
        lost: tally.lost.load(Relaxed),
        mixed_up: tally.mixed_up.load(Relaxed),
        idle_cut_off: tally.idle_cut_off.load(Relaxed),
        latencies,
        elapsed,
        rss: (rss0, rss_peak, 0),
        fds: (fds0, fds_peak, 0),
    }
}
