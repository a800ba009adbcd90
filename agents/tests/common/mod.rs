//! Helpers the agents' integration tests share: the repository's
//! deployment files and task file, and a small runtime.

#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use tenbits_agents::config::{load_tasks, TaskSpec};
use tenbits_agents::DeploymentConfig;

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
