//! An edge fleet: 32 small agents (SmolLM2-135M, sharing one loaded copy)
//! solve the problems of a task file, each asking one large agent
//! (Qwen2.5-Coder-0.5B) ten yes/no questions over TCP on loopback and
//! getting one bit per question.
//!
//! ```sh
//! python3 scripts/setup.py --model smollm2-135m --model qwen2.5-coder-0.5b
//! cargo run --release --example edge_fleet -- [AGENTS] [TASKS]
//! ```

use tenbits_agents::{onnx_factory, simulate, DeploymentConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let agents: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(32);
    let tasks: usize = std::env::args()
        .nth(2)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(32);
    let mut cfg = DeploymentConfig::load("config/swarm.toml")?;
    cfg.swarm.askers = agents;
    // Enough repeats of the task file for `tasks` sessions; cut to `tasks`.
    let file = tenbits_agents::load_tasks(&cfg.swarm.tasks)?;
    cfg.swarm.repeat = tasks.div_ceil(file.len().max(1));
    let (all, mut sessions) = tenbits_agents::swarm_sessions(&cfg)?;
    sessions.truncate(tasks);
    println!(
        "{agents} agents ({}) share one answerer ({}) over TCP; {} sessions",
        cfg.asker.model,
        cfg.answerer.model,
        sessions.len()
    );
    let rt = tokio::runtime::Runtime::new()?;
    let report = rt.block_on(async {
        tenbits_agents::simulate_with(&cfg, onnx_factory(), &all, sessions, |_| {}).await
    })?;
    println!("{report}");
    let _ = simulate; // `simulate(&cfg, factory)` runs the whole file as is.
    Ok(())
}
