//! Helpers the agents' integration tests share: the repository's
//! deployment files and task file, a small runtime, and the transcript a
//! session should give.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tenbits_agents::config::{load_tasks, TaskSpec};
use tenbits_agents::testing::FakeWorld;
use tenbits_agents::DeploymentConfig;
use tenbits_qa::{run, Problem, Task};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `config/<name>` without environment overrides, paths from the root.
pub fn config(name: &str) -> DeploymentConfig {
    let mut cfg =
        DeploymentConfig::load_with_env(root().join("config").join(name), Some(HashMap::new()))
            .unwrap();
    cfg.resolve_paths(&root());
    cfg
}

/// `config/tasks/arith.jsonl`.
pub fn tasks() -> Vec<TaskSpec> {
    load_tasks(&root().join("config/tasks/arith.jsonl")).unwrap()
}

/// A two-worker multi-threaded runtime.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// What `run` gives with both fakes at hand and the reference known.
pub fn expected(
    world: &FakeWorld,
    cfg: &DeploymentConfig,
    task: &TaskSpec,
) -> tenbits_qa::Transcript {
    let (mut small, mut large) = (
        world.model(&cfg.asker.model),
        world.model(&cfg.answerer.model),
    );
    let problem =
        Problem::new(Task::ShortAnswer, &task.problem).with_reference(task.answer.clone().unwrap());
    let mut config = cfg.qa_config();
    config.view.knowledge = tenbits_qa::Knowledge::Reference;
    run(
        tenbits_qa::Setting::Qa,
        &config,
        &mut small,
        &mut large,
        &problem,
    )
    .unwrap()
    .public()
}
