//! A test helper: an answerer server over the fake models of
//! `tenbits_agents::testing`, for sessions between two processes.
//!
//! ```text
//! tenbits-fake-answerer <config.toml>
//! ```
//!
//! Loads the configuration (with `TENBITS_*` overrides), serves with a fake
//! world that knows the gold answers of `answerer.tasks`, prints
//! `listening on <addr>` on stdout, and serves until its stdin closes; then
//! prints the server's counters and exits.

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
    let world = FakeWorld::new(&tasks);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let server = runtime.block_on(serve(&cfg, world.factory()))?;
    let addr = server
        .local_addr()
        .ok_or("transport.kind must be \"tcp\"")?;
    println!("listening on {addr}");
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
