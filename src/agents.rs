//! `tenbits serve`, `tenbits ask` and `tenbits simulate`: deployments of
//! the question-asking protocol from a configuration file.

use std::path::Path;

use anyhow::{Context, Result};
use indicatif::ProgressBar;
use tenbits_agents::{onnx_factory, DeploymentConfig};

/// Loads a deployment file with `TENBITS_<SECTION>__<KEY>` overrides.
pub fn load_config(path: &Path) -> Result<DeploymentConfig> {
    DeploymentConfig::load(path)
        .with_context(|| format!("cannot load the deployment {}", path.display()))
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// `tenbits cluster status`.
pub fn cluster_status_command(path: &Path, wait: f64) -> Result<()> {
    let mut cfg = load_config(path)?;
    // Its own node: a fresh name, and a free port on the configured
    // interface (the file's port may be a running node's).
    cfg.cluster.node_name = Some(format!("status-{}", std::process::id()));
    let ip = cfg
        .cluster
        .listen
        .parse::<std::net::SocketAddr>()
        .map(|a| a.ip())
        .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let free = std::net::TcpListener::bind((ip, 0))
        .and_then(|l| l.local_addr())
        .context("cannot find a free port for the status node")?;
    cfg.cluster.listen = free.to_string();
    let rt = runtime()?;
    let status = rt.block_on(tenbits_agents::cluster_status(
        &cfg.cluster,
        &cfg.security,
        std::time::Duration::from_secs_f64(wait.max(0.1)),
    ))?;
    println!("{status}");
    Ok(())
}

pub fn serve_command(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    let rt = runtime()?;
    let grace = cfg.limits.shutdown_timeout();
    let served = rt.block_on(async {
        eprintln!("loading {} ...", cfg.answerer.model);
        let server = tenbits_agents::serve(&cfg, onnx_factory()).await?;
        match (server.local_addr(), server.cluster()) {
            (Some(addr), _) => eprintln!("answerer {} listening on {addr}; Ctrl-C stops", cfg.answerer_name()),
            (None, Some(node)) => eprintln!(
                "answerer {} serving the cluster as node {} on {}; Ctrl-C stops",
                cfg.answerer_name(), node.name(), cfg.cluster.listen
            ),
            (None, None) => eprintln!("answerer {} serving in-process channels only (transport.kind = \"channel\")", cfg.answerer_name()),
        }
        tokio::signal::ctrl_c().await.context("cannot wait for Ctrl-C")?;
        eprintln!(
            "stopping (at most {} ms; Ctrl-C again stops at once)",
            grace.as_millis() * 2
        );
        tokio::spawn(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("stopped");
                std::process::exit(130);
            }
        });
        let stats = server.shutdown_within(grace).await;
        println!(
            "connections {} (refused {}, completed {}, dropped {}, busy {}, timed out {}), requests {} (bad {}, too long {}), wire {} bytes for {} answer bits",
            stats.connections,
            stats.handshake_failures,
            stats.sessions_completed,
            stats.sessions_dropped,
            stats.refused_busy,
            stats.timeouts,
            stats.requests,
            stats.bad_requests,
            stats.too_long,
            stats.wire.bytes_sent + stats.wire.bytes_received,
            stats.wire.payload_bits_sent
        );
        println!("{}", stats.answerer);
        Ok::<_, anyhow::Error>(())
    });
    // A batch still running on a blocking thread is abandoned, not awaited.
    rt.shutdown_timeout(grace);
    served
}

/// `tenbits serve --openai`: the answerer's model behind OpenAI's
/// chat-completions API on `transport.listen`.
pub fn serve_openai_command(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    let listen = cfg.transport.listen.clone();
    let token = cfg.security.server_token(&listen)?;
    let name = cfg.answerer.model.clone();
    let dir = tenbits_inference::Registry::embedded().set_up_dir(&name)?;
    eprintln!("loading {name} ...");
    let settings = tenbits_inference::SessionSettings {
        threads: cfg.answerer.threads.max(1),
    };
    let model = tenbits_inference::OnnxModel::load_for_rows(&dir, settings)
        .with_context(|| format!("cannot load `{name}`"))?;
    let generator = tenbits_inference::Generator::new(model)?;
    let tokenizer = tenbits_inference::TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
    let has_token = token.is_some();
    let server = tenbits_openai::server::OpenAiServer::new(generator, tokenizer, &name, token);
    let rt = runtime()?;
    rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        eprintln!(
            "{name} on http://{}/v1 (OpenAI chat completions; {}); Ctrl-C stops",
            listener.local_addr()?,
            if has_token {
                "API key required"
            } else {
                "no API key"
            }
        );
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
            eprintln!("stopping");
        };
        tenbits_openai::server::serve(server, listener, stop)
            .await
            .context("the HTTP server failed")
    })?;
    rt.shutdown_timeout(cfg.limits.shutdown_timeout());
    Ok(())
}

pub fn ask_command(path: &Path, problem: &str) -> Result<()> {
    let cfg = load_config(path)?;
    eprintln!(
        "asker {} → answerer {} ({:?}, {:?})",
        cfg.asker.model, cfg.answerer.model, cfg.protocol.setting, cfg.transport.kind
    );
    let report = tenbits_agents::ask(&cfg, onnx_factory(), problem)?;
    println!("{report}");
    Ok(())
}

pub fn simulate_command(path: &Path) -> Result<()> {
    let cfg = load_config(path)?;
    let (tasks, sessions) = tenbits_agents::swarm_sessions(&cfg)?;
    let rt = runtime()?;
    let bar = ProgressBar::new(sessions.len() as u64);
    bar.set_style(crate::progress_style(
        "simulate [{bar:30}] {pos}/{len} sessions ({elapsed} elapsed, eta {eta})",
    ));
    let watcher = bar.clone();
    let report = rt.block_on(tenbits_agents::simulate_with(
        &cfg,
        onnx_factory(),
        &tasks,
        sessions,
        |swarm| {
            let mut ended = swarm.ended();
            // Ends when the swarm drops its sender.
            tokio::spawn(async move {
                while ended.changed().await.is_ok() {
                    let n = *ended.borrow_and_update();
                    watcher.set_position(n as u64);
                    crate::log_progress_off_terminal(&watcher, "simulate", "sessions");
                }
            });
        },
    ))?;
    bar.finish_and_clear();
    println!("{report}");
    Ok(())
}
