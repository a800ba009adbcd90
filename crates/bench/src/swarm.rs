//! `tenbits bench swarm`: one answerer over TCP on loopback, many askers.
//!
//! The answerer is real (a registered model in an `AnswererActor` behind a
//! TCP `ServerHandle`, batching as in `tenbits serve`). The askers are
//! lightweight clients that send, for each problem of a task file, a draft
//! of about 70 tokens (half with the gold answer, half with a wrong one) and
//! ten fixed yes/no questions: the answerer's work per question is that of
//! a real session (same prompts, similar lengths), while the askers' own
//! generation, which runs on their devices, is left out of the timing.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tenbits_agents::config::TransportKind;
use tenbits_agents::remote::RemoteAnswerer;
use tenbits_agents::{load_tasks, onnx_factory, DeploymentConfig, ModelFactory};
use tenbits_qa::answerer::AnswerRequest;
use tenbits_qa::{Problem, Task};

use crate::{Report, Sink};

/// The askers' questions: the same ten for every problem.
pub(crate) const QUESTIONS: [&str; 10] = [
    "Is the proposed answer correct?",
    "Is the answer a whole number?",
    "Is the answer greater than 10?",
    "Is the answer an even number?",
    "Does finding the answer take more than one step?",
    "Is the answer less than 100?",
    "Is the proposed answer off by one?",
    "Is the answer a single word or number?",
    "Should the proposed answer be larger?",
    "Is the answer exactly what the draft says?",
];

/// One configuration's results.
struct Run {
    askers: usize,
    batched: bool,
    questions: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    wire_bytes: u64,
    bits: u64,
    batches: u64,
    largest_batch: u64,
}

impl Run {
    fn rate(&self) -> f64 {
        self.questions as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.latencies.clone();
        sorted.sort();
        tenbits_agents::quantile(&sorted, q)
    }
}

/// What `tenbits bench swarm` runs.
#[derive(Debug, Clone)]
pub struct SwarmOptions<'a> {
    /// The answerer's registered model.
    pub model: &'a str,
    /// Its intra-op threads.
    pub threads: usize,
    /// Asker counts of the batched runs.
    pub askers: &'a [usize],
    /// Requests (of ten questions) per asker.
    pub requests: usize,
    /// Askers of the one-question-per-pass baseline run; 0 skips it.
    pub baseline_askers: usize,
    /// Task file whose problems and gold answers the askers use.
    pub tasks: &'a Path,
}

/// `tenbits bench swarm`: one run per asker count (and the baseline), each
/// with a fresh answerer, reporting questions/s, latency quantiles, batch
/// sizes and wire bytes per answer bit.
pub fn swarm(options: &SwarmOptions, sink: &mut dyn Sink) -> Result<Report> {
    let tasks = load_tasks(options.tasks)
        .with_context(|| format!("cannot read {}", options.tasks.display()))?;
    let tasks: Vec<(String, String)> = tasks
        .into_iter()
        .filter_map(|t| Some((t.problem, t.answer?)))
        .collect();
    anyhow::ensure!(
        !tasks.is_empty(),
        "{} has no task with a gold answer",
        options.tasks.display()
    );
    let tasks = Arc::new(tasks);
    // The answerer as `tenbits serve` runs it, with the task file's gold
    // answers as references.
    let mut cfg = DeploymentConfig::default();
    cfg.answerer.model = options.model.to_string();
    cfg.answerer.threads = options.threads;
    cfg.answerer.knowledge = tenbits_qa::Knowledge::Reference;
    cfg.answerer.tasks = Some(options.tasks.to_path_buf());
    cfg.transport.kind = TransportKind::Tcp;
    cfg.transport.listen = "127.0.0.1:0".into();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let factory = onnx_factory();

    let mut runs = Vec::new();
    let mut plan: Vec<(usize, bool)> = options.askers.iter().map(|&n| (n, true)).collect();
    if options.baseline_askers > 0 {
        plan.push((options.baseline_askers, false));
    }
    for (askers, batched) in plan {
        sink.note(&format!(
            "{} askers, {}: loading {}",
            askers,
            if batched {
                "batched"
            } else {
                "one question per pass"
            },
            options.model
        ));
        let run = rt.block_on(run_swarm(
            &cfg,
            &factory,
            &tasks,
            askers,
            batched,
            options.requests,
        ))?;
        sink.note(&format!("  {:.1} questions/s", run.rate()));
        runs.push(run);
    }

    let mut report = Report::default();
    report.line(
        sink,
        format!(
        "answerer {} ({} threads), TCP on loopback; each asker sends {} request(s) of {} questions",
        options.model,
        options.threads,
        options.requests,
        QUESTIONS.len()
    ),
    );
    report.line(sink, String::new());
    report.line(sink, "| askers | answering | questions | questions/s | speed-up | p50 latency ms | p99 latency ms | passes | largest batch | wire bytes per answer bit |".into());
    report.line(
        sink,
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
    );
    let baseline = runs.iter().find(|r| !r.batched).map(Run::rate);
    for r in &runs {
        let speedup = baseline.map_or("".into(), |b| format!("{:.1}×", r.rate() / b));
        report.line(
            sink,
            format!(
                "| {} | {} | {} | {:.1} | {} | {:.0} | {:.0} | {} | {} | {:.1} |",
                r.askers,
                if r.batched {
                    "batched"
                } else {
                    "one at a time"
                },
                r.questions,
                r.rate(),
                speedup,
                r.quantile(0.5).as_secs_f64() * 1e3,
                r.quantile(0.99).as_secs_f64() * 1e3,
                r.batches,
                r.largest_batch,
                r.wire_bytes as f64 / r.bits.max(1) as f64
            ),
        );
    }
    report.line(sink, String::new());
    report.line(sink, "- latency: from sending a request (10 questions) to receiving its bits; every bit of a request arrives together.".into());
    report.line(sink, "- speed-up: questions/s over the one-at-a-time run (the answerer runs one forward pass per question, max_batch = 1).".into());
    report.line(sink, "- wire bytes: both directions of every connection (handshake, question text, answers, bye) over the answer bits received.".into());
    Ok(report)
}

async fn run_swarm(
    cfg: &DeploymentConfig,
    factory: &ModelFactory,
    tasks: &Arc<Vec<(String, String)>>,
    askers: usize,
    batched: bool,
    requests: usize,
) -> Result<Run> {
    let mut cfg = cfg.clone();
    (cfg.answerer.max_batch, cfg.answerer.max_wait_ms) = if batched { (1024, 20) } else { (1, 0) };
    let server = tenbits_agents::serve(&cfg, factory.clone()).await?;
    let addr = server.local_addr().context("the server has no address")?;

    let start = Instant::now();
    let mut clients = Vec::new();
    for i in 0..askers {
        let tasks = Arc::clone(tasks);
        clients.push(tokio::spawn(async move {
            let conn = tenbits_messaging::connect(addr).await?;
            let mut remote = RemoteAnswerer::connect(conn, [7; 16], i as u64, None, None).await?;
            let mut bits = 0u64;
            for r in 0..requests {
                let (problem, gold) = &tasks[(i * requests + r) % tasks.len()];
                // A draft of the length small models write (about 70 tokens).
                let claim = if (i + r) % 2 == 0 { gold.clone() } else { format!("{gold}1") };
                let draft = format!(
                    "Let me work through this step by step. First I restate the problem: {problem} \
                     Then I split it into smaller parts, work out each part, and put the parts \
                     together. Checking the arithmetic once more, the result holds.\nAnswer: {claim}"
                );
                let questions: Vec<String> = QUESTIONS.iter().map(|q| q.to_string()).collect();
                // One at a time: a request per question.
                let groups: Vec<Vec<String>> =
                    if batched { vec![questions] } else { questions.into_iter().map(|q| vec![q]).collect() };
                for group in groups {
                    let request = AnswerRequest {
                        problem: Problem::new(Task::ShortAnswer, problem.clone()),
                        current_answer: draft.clone(),
                        questions: group,
                        sees_answer: true,
                        verdict: false,
                    };
                    bits += remote.answer_async(&request).await?.len() as u64;
                }
            }
            let latencies = remote.latencies().to_vec();
            let wire = remote.close_async().await?;
            Ok::<_, tenbits_agents::AgentError>((bits, latencies, wire.bytes_sent + wire.bytes_received))
        }));
    }
    let mut run = Run {
        askers,
        batched,
        questions: 0,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
        wire_bytes: 0,
        bits: 0,
        batches: 0,
        largest_batch: 0,
    };
    for client in clients {
        let (bits, latencies, bytes) = client.await.context("an asker task failed")??;
        run.bits += bits;
        run.latencies.extend(latencies);
        run.wire_bytes += bytes;
    }
    run.elapsed = start.elapsed();
    run.questions = run.bits as usize;
    let stats = server.shutdown().await;
    run.batches = stats.answerer.batches;
    run.largest_batch = stats.answerer.largest_batch;
    Ok(run)
}
