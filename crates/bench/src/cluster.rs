//! `tenbits bench cluster`: the load of `tenbits bench load` through a
//! cluster router to 1, 2, 3 … answerer nodes, each its own OS process.
//!
//! The nodes answer with [`Multiplier`]: instant (what the router, the
//! node sessions and the extra hop cost), or with every model call taking
//! a fixed time, standing for a model on an accelerator of its own (what
//! replicas add when the model is the bottleneck). A real model on this
//! machine's shared cores would measure the cores, not the cluster. Each
//! setting also runs once without a cluster (the answerer's own TCP
//! service) for the hop's cost.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tenbits_agents::config::{Backend, TransportKind};
use tenbits_agents::{BoxedModel, DeploymentConfig, ModelFactory};

use crate::load::{drive, LoadOptions, Measured, Multiplier};
use crate::{Report, Sink};

/// What `tenbits bench cluster` runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Numbers of answerer nodes to measure.
    pub replicas: Vec<usize>,
    /// Milliseconds each model call takes, one series each (0: instant).
    pub call_ms: Vec<u64>,
    /// Sessions, duration and requests per session.
    pub load: LoadOptions,
    /// The program and leading arguments that start a node
    /// ([`cluster_node`] behind `tenbits bench cluster-node`).
    pub node_command: Vec<String>,
}

/// The deployment of a benchmark answerer (node or direct).
fn answerer_config() -> DeploymentConfig {
    let mut cfg = DeploymentConfig::default();
    cfg.answerer.model = "multiplier".into();
    cfg.answerer.knowledge = tenbits_qa::Knowledge::OwnSolution;
    cfg.answerer.max_batch = 256;
    cfg.answerer.max_wait_ms = 5;
    cfg.security.token_env = None;
    cfg
}

fn multiplier_factory(call_ms: u64) -> ModelFactory {
    let model = Multiplier::taking(Duration::from_millis(call_ms));
    Arc::new(move |_: &str, _: usize| Ok(Box::new(model) as BoxedModel))
}

/// `tenbits bench cluster-node`: an answerer node of the benchmark, until
/// stdin closes. Prints `cluster node <name>` once it serves.
pub fn cluster_node(
    name: &str,
    listen: &str,
    seeds: &[String],
    cookie_file: PathBuf,
    call_ms: u64,
) -> Result<()> {
    let mut cfg = answerer_config();
    cfg.transport.kind = TransportKind::Channel;
    cfg.cluster.enabled = true;
    cfg.cluster.node_name = Some(name.to_string());
    cfg.cluster.listen = listen.to_string();
    cfg.cluster.seeds = seeds.to_vec();
    cfg.cluster.cookie_file = Some(cookie_file);
    let rt = tokio::runtime::Runtime::new()?;
    let server = rt.block_on(tenbits_agents::serve(&cfg, multiplier_factory(call_ms)))?;
    println!("cluster node {name}");
    std::io::stdout().flush()?;
    for line in std::io::stdin().lock().lines() {
        line?;
    }
    rt.block_on(server.shutdown());
    Ok(())
}

/// A node process, stopped when dropped.
struct NodeProcess(Child);

impl Drop for NodeProcess {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_addr() -> Result<String> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .to_string())
}

fn start_nodes(
    options: &ClusterOptions,
    n: usize,
    call_ms: u64,
    cookie: &std::path::Path,
) -> Result<(Vec<NodeProcess>, Vec<String>)> {
    let (program, args) = options
        .node_command
        .split_first()
        .context("no command to start a node")?;
    let mut nodes = Vec::new();
    let mut addrs: Vec<String> = Vec::new();
    for i in 0..n {
        let addr = free_addr()?;
        let name = format!("bench-answerer-{}", i + 1);
        let mut child = Command::new(program)
            .args(args)
            .args(["--name", &name, "--listen", &addr])
            .args(["--call-ms", &call_ms.to_string()])
            .arg("--cookie-file")
            .arg(cookie)
            .args(
                addrs
                    .first()
                    .map(|a| vec!["--seed".to_string(), a.clone()])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start a node with {program}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().context("no stdout")?).read_line(&mut line)?;
        if line.trim() != format!("cluster node {name}") {
            bail!("node {name} did not start (it printed {line:?})");
        }
        nodes.push(NodeProcess(child));
        addrs.push(addr);
    }
    Ok((nodes, addrs))
}

async fn gateway_run(
    options: &ClusterOptions,
    seeds: Option<Vec<String>>,
    call_ms: u64,
    cookie: &std::path::Path,
    label: &str,
    sink: &mut dyn Sink,
) -> Result<Measured> {
    let mut cfg = answerer_config();
    cfg.transport.kind = TransportKind::Tcp;
    cfg.transport.listen = "127.0.0.1:0".into();
    cfg.limits.max_connections = 2 * options.load.sessions + 64;
    cfg.limits.frame_timeout_ms = 1_000;
    if let Some(seeds) = seeds {
        cfg.answerer.backend = Backend::Cluster;
        cfg.cluster.node_name = Some("bench-gateway".into());
        cfg.cluster.listen = free_addr()?;
        cfg.cluster.seeds = seeds;
        cfg.cluster.cookie_file = Some(cookie.to_path_buf());
    }
    let server = tenbits_agents::serve(&cfg, multiplier_factory(call_ms)).await?;
    let addr = server.local_addr().context("the gateway has no address")?;
    let measured = drive(addr, &options.load, 0, label, sink).await;
    server.shutdown().await;
    Ok(measured)
}

/// `tenbits bench cluster`: one row per model call time and replica
/// count, plus the same load without a cluster.
pub fn cluster(options: &ClusterOptions, sink: &mut dyn Sink) -> Result<Report> {
    let rt = tokio::runtime::Runtime::new()?;
    let cookie = std::env::temp_dir().join(format!("tenbits-bench-cookie-{}", std::process::id()));
    let mut secret = [0u8; 16];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut secret)?;
    let secret: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    std::fs::write(&cookie, secret)?;
    let mut report = Report::default();
    let l = &options.load;
    report.line(sink, format!(
        "a router node (TCP gateway, in this process) and answerer nodes (one OS process each) on loopback; {} sessions at once for {} s, {} requests of 3 questions per session; answers checked per session",
        l.sessions, l.seconds, l.requests_per_session
    ));
    report.line(sink, String::new());
    report.line(sink, "| model call ms | answerers | sessions | sessions/s | requests | p50 latency ms | p99 latency ms | lost | mixed up |".into());
    report.line(sink, "|---:|---|---:|---:|---:|---:|---:|---:|---:|".into());
    let result = (|| {
        for &call_ms in &options.call_ms {
            let row = |what: String, m: &Measured| {
                format!(
                    "| {call_ms} | {what} | {} | {:.0} | {} | {:.1} | {:.1} | {} | {} |",
                    m.sessions,
                    m.sessions_per_second(),
                    m.requests,
                    m.latency_ms(0.5),
                    m.latency_ms(0.99),
                    m.lost,
                    m.mixed_up
                )
            };
            let label = format!("{call_ms} ms calls, no cluster");
            let m = rt.block_on(gateway_run(options, None, call_ms, &cookie, &label, sink))?;
            report.line(sink, row("1, no cluster (its own TCP)".into(), &m));
            for &n in &options.replicas {
                sink.note(&format!("starting {n} answerer nodes"));
                let (nodes, addrs) = start_nodes(options, n, call_ms, &cookie)?;
                let label = format!("{call_ms} ms calls, {n} answerer nodes");
                let m = rt.block_on(gateway_run(
                    options,
                    Some(addrs),
                    call_ms,
                    &cookie,
                    &label,
                    sink,
                ))?;
                drop(nodes);
                report.line(sink, row(format!("{n} nodes"), &m));
            }
        }
        Ok::<_, anyhow::Error>(())
    })();
    let _ = std::fs::remove_file(&cookie);
    result?;
    report.line(sink, String::new());
    report.line(sink, "- model call ms: how long each `p_yes` (and own-solution) call of an answerer takes: 0 is an instant model (the cost of routing), more stands for a model on an accelerator of its own.".into());
    report.line(sink, "- latency: one request (3 questions) from the asker's send to its bits, through the gateway; lost: sessions that ended in an error; mixed up: replies that are not the session's own problem's bits.".into());
    Ok(report)
}
