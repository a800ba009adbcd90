//! A test helper: an answerer server over the fake models of
//! `tenbits_agents::testing`, for sessions between two processes.
//!
//! ```text
//! tenbits-fake-answerer <config.toml>
//! ```
//!
//! Loads the configuration (with `TENBITS_*` overrides), serves with a fake
//! world that knows the gold answers of `answerer.tasks`, prints
//! `listening on <addr>` (TCP) and `cluster node <name>` (with `[cluster]
//! enabled`) on stdout, and serves until its stdin closes; then prints the
//! server's counters and exits. `TENBITS_FAKE_ANSWER_DELAY_MS` makes every
//! question take that long to answer (a batch in flight when a test kills
//! it).

use std::io::{BufRead, Write};

use tenbits_agents::config::load_tasks;
use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{serve, DeploymentConfig};

fn main() {
    if let Err(e) = run() {
        eprintln!("tenbits-fake-answerer: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: tenbits-fake-answerer <config.toml>")?;
    let cfg = DeploymentConfig::load(&path)?;
    let tasks = match &cfg.answerer.tasks {
        Some(t) => load_tasks(t)?,
        None => Vec::new(),
    };
    let mut world = FakeWorld::new(&tasks);
    if let Ok(ms) = std::env::var("TENBITS_FAKE_ANSWER_DELAY_MS") {
        let ms: u64 = ms.parse()?;
        world.large_slow_on = vec![(String::new(), std::time::Duration::from_millis(ms))];
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = runtime.block_on(serve(&cfg, world.factory()))?;
    if let Some(addr) = server.local_addr() {
        println!("listening on {addr}");
    }
    match server.cluster() {
        Some(node) => println!("cluster node {}", node.name()),
        None if server.local_addr().is_none() => {
            return Err("transport.kind must be \"tcp\", or [cluster] enabled = true".into())
        }
        None => {}
    }
    std::io::stdout().flush()?;
    // Serve until stdin closes (the parent went away or is done).
    for line in std::io::stdin().lock().lines() {
        if line?.trim() == "quit" {
            break;
        }
    }
    let stats = runtime.block_on(server.shutdown());
    println!(
        "served {} connections ({} completed), {}",
        stats.connections, stats.sessions_completed, stats.answerer
    );
    Ok(())
}
