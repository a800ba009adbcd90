//! `tenbits bench answer-path`: what an answer bit costs over tenbits'
//! native frames against the OpenAI-compatible path, with the same model
//! and the same requests in one run.
//!
//! - native: an asker's frames to `tenbits serve` (TCP), whose answerer
//!   scores a request's questions in one batched `p_yes` pass;
//! - openai: the same frames to a `tenbits serve` whose answerer has
//!   `backend = "openai"`, asking `tenbits serve --openai` (the same
//!   model) over HTTP, one chat completion with `logprobs` per question.
//!   A counting relay between the two measures the HTTP bytes.
//!
//! Both answerers know the reference answers (no own solutions), so the
//! time is the yes/no scoring and its transport.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tenbits_agents::config::{Backend, TransportKind};
use tenbits_agents::remote::RemoteAnswerer;
use tenbits_agents::{load_tasks, onnx_factory, DeploymentConfig};
use tenbits_qa::answerer::AnswerRequest;
use tenbits_qa::{Knowledge, Problem, Task};

use crate::swarm::QUESTIONS;
use crate::{Report, Sink};

/// What `tenbits bench answer-path` runs.
#[derive(Debug, Clone)]
pub struct AnswerPathOptions<'a> {
    /// The answerer's model (registry name).
    pub model: &'a str,
    /// Requests (of ten questions) per path.
    pub requests: usize,
    /// Intra-op threads of the model.
    pub threads: usize,
    /// Task file with gold answers (the problems and references).
    pub tasks: &'a Path,
    /// An OpenAI-compatible endpoint someone else runs (`host:port` of its
    /// `http://host:port/v1`) and its model name, instead of `tenbits
    /// serve --openai` over `model`.
    pub endpoint: Option<(&'a str, &'a str)>,
}

/// The OpenAI-compatible endpoint measured: one this run serves over the
/// model, or one at `host:port` that someone else runs.
enum Endpoint<'a> {
    Ours(std::sync::Arc<tenbits_openai::server::OpenAiServer>),
    Theirs(&'a str),
}

/// One path's results.
struct PathRun {
    bits: Vec<bool>,
    latencies: Vec<Duration>,
    elapsed: Duration,
    frame_bytes: u64,
    http_bytes: Option<u64>,
}

/// Relays TCP connections to `upstream`, counting the bytes both ways.
async fn counting_relay(
    upstream: std::net::SocketAddr,
) -> Result<(std::net::SocketAddr, Arc<AtomicU64>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let bytes = Arc::new(AtomicU64::new(0));
    let counter = bytes.clone();
    tokio::spawn(async move {
        while let Ok((mut client, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                if let Ok((a, b)) = tokio::io::copy_bidirectional(&mut client, &mut server).await {
                    counter.fetch_add(a + b, Relaxed);
                }
            });
        }
    });
    Ok((addr, bytes))
}

async fn run_path(
    cfg: &DeploymentConfig,
    requests: &[AnswerRequest],
    label: &str,
    sink: &mut dyn Sink,
) -> Result<PathRun> {
    let server = tenbits_agents::serve(cfg, onnx_factory()).await?;
    let addr = server.local_addr().context("the answerer has no address")?;
    let conn = tenbits_messaging::connect(addr).await?;
    let mut remote = RemoteAnswerer::connect(conn, [0; 16], 1, None, None).await?;
    let mut bits = Vec::new();
    let start = Instant::now();
    for (i, request) in requests.iter().enumerate() {
        bits.extend(remote.answer_async(request).await?);
        sink.note(&format!(
            "{label}: {} of {} requests",
            i + 1,
            requests.len()
        ));
    }
    let elapsed = start.elapsed();
    let latencies = remote.latencies().to_vec();
    let wire = remote.close_async().await?;
    server.shutdown().await;
    Ok(PathRun {
        bits,
        latencies,
        elapsed,
        frame_bytes: wire.bytes_sent + wire.bytes_received,
        http_bytes: None,
    })
}

/// `tenbits bench answer-path`.
pub fn answer_path(options: &AnswerPathOptions, sink: &mut dyn Sink) -> Result<Report> {
    let tasks = load_tasks(options.tasks)
        .with_context(|| format!("cannot read {}", options.tasks.display()))?;
    let with_gold: Vec<_> = tasks.iter().filter(|t| t.answer.is_some()).collect();
    anyhow::ensure!(
        !with_gold.is_empty(),
        "{} has no gold answers",
        options.tasks.display()
    );
    let requests: Vec<AnswerRequest> = (0..options.requests.max(1))
        .map(|i| {
            let t = with_gold[i % with_gold.len()];
            AnswerRequest {
                problem: Problem::new(Task::ShortAnswer, t.problem.clone()),
                current_answer: format!("Answer: {}0", t.answer.as_deref().unwrap_or("")),
                questions: QUESTIONS.iter().map(|q| q.to_string()).collect(),
                sees_answer: true,
                verdict: false,
            }
        })
        .collect();

    let mut cfg = DeploymentConfig::default();
    cfg.answerer.model = options.model.to_string();
    cfg.answerer.threads = options.threads;
    cfg.answerer.knowledge = Knowledge::Reference;
    cfg.answerer.tasks = Some(options.tasks.to_path_buf());
    cfg.transport.kind = TransportKind::Tcp;
    cfg.transport.listen = "127.0.0.1:0".into();
    cfg.security.token_env = None;

    let rt = tokio::runtime::Runtime::new()?;
    sink.note(&format!("native frames: {} requests", requests.len()));
    let native = rt.block_on(run_path(&cfg, &requests, "native", sink))?;

    // The OpenAI-compatible endpoint (ours over the same model, or the
    // one given), behind a relay that counts bytes.
    let name = options.model;
    let endpoint = match options.endpoint {
        Some((addr, _)) => Endpoint::Theirs(addr),
        None => {
            let dir = tenbits_inference::Registry::embedded().set_up_dir(name)?;
            let settings = tenbits_inference::SessionSettings {
                threads: options.threads.max(1),
            };
            let model = tenbits_inference::OnnxModel::load_for_rows(&dir, settings)
                .with_context(|| format!("cannot load `{name}`"))?;
            let generator = tenbits_inference::Generator::new(model)?;
            let tokenizer =
                tenbits_inference::TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
            Endpoint::Ours(tenbits_openai::server::OpenAiServer::new(
                generator, tokenizer, name, None,
            ))
        }
    };
    let remote_model = options.endpoint.map_or(name, |(_, m)| m);
    let openai = rt.block_on(async {
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (http, served) = match endpoint {
            Endpoint::Ours(endpoint) => {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
                let http = listener.local_addr()?;
                let served =
                    tokio::spawn(tenbits_openai::server::serve(endpoint, listener, async {
                        let _ = stop_rx.await;
                    }));
                (http, Some(served))
            }
            Endpoint::Theirs(addr) => {
                let http = tokio::net::lookup_host(addr)
                    .await?
                    .next()
                    .with_context(|| format!("cannot resolve {addr}"))?;
                (http, None)
            }
        };
        let (relay, http_bytes) = counting_relay(http).await?;
        let mut cfg = cfg.clone();
        cfg.answerer.backend = Backend::Openai;
        cfg.openai.base_url = format!("http://{relay}/v1");
        cfg.openai.model = remote_model.to_string();
        cfg.openai.api_key_env = None;
        sink.note(&format!("OpenAI path: {} requests", requests.len()));
        let mut run = run_path(&cfg, &requests, "openai", sink).await?;
        // Connections close as the client is dropped; let the relay count.
        tokio::time::sleep(Duration::from_millis(300)).await;
        run.http_bytes = Some(http_bytes.load(Relaxed));
        let _ = stop_tx.send(());
        if let Some(served) = served {
            let _ = served.await;
        }
        Ok::<_, anyhow::Error>(run)
    })?;

    let differing = native
        .bits
        .iter()
        .zip(&openai.bits)
        .filter(|(a, b)| a != b)
        .count();
    let mut report = Report::default();
    let over = match options.endpoint {
        Some((addr, m)) => format!("`{m}` at http://{addr}/v1 (an endpoint tenbits did not write)"),
        None => format!("`tenbits serve --openai` over {name}"),
    };
    report.line(sink, format!(
        "{name} here against {over}: {} requests of {} questions each way (references known; threads {}); the asker sends native frames to a `tenbits serve` either way",
        requests.len(),
        QUESTIONS.len(),
        options.threads
    ));
    report.line(sink, String::new());
    report.line(sink, "| answerer's model reached over | answer bits | p50 ms per request | ms per answer bit | frame bytes per answer bit | HTTP bytes per answer bit |".into());
    report.line(sink, "|---|---:|---:|---:|---:|---:|".into());
    for (label, run) in [
        ("native (in the answerer's process)", &native),
        ("OpenAI-compatible HTTP", &openai),
    ] {
        let mut sorted = run.latencies.clone();
        sorted.sort();
        let n = run.bits.len().max(1) as f64;
        report.line(
            sink,
            format!(
                "| {label} | {} | {:.0} | {:.1} | {:.1} | {} |",
                run.bits.len(),
                tenbits_agents::quantile(&sorted, 0.5).as_secs_f64() * 1e3,
                run.elapsed.as_secs_f64() * 1e3 / n,
                run.frame_bytes as f64 / n,
                run.http_bytes
                    .map_or("–".to_string(), |b| format!("{:.0}", b as f64 / n)),
            ),
        );
    }
    report.line(sink, String::new());
    report.line(
        sink,
        format!(
            "- bits that differ between the paths: {differing} of {}.",
            native.bits.len()
        ),
    );
    report.line(sink, "- native: one batched p_yes pass per request; OpenAI: one chat completion (max_tokens 1, top_logprobs) per question, in parallel up to `[openai] concurrency`.".into());
    report.line(sink, "- frame bytes: asker ↔ tenbits serve, handshake and Bye included; HTTP bytes: tenbits ↔ the endpoint, headers included.".into());
    Ok(report)
}
