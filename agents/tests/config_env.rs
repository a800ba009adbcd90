//! Overrides from the process environment (its own test binary, so no
//! other test sees the variables).

use std::path::Path;

use tenbits_agents::DeploymentConfig;

#[test]
fn process_environment_overrides_the_file() {
    std::env::set_var("TENBITS_ANSWERER__MODEL", "qwen2.5-coder-1.5b");
    std::env::set_var("TENBITS_ANSWERER__MAX_WAIT_MS", "7");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/swarm.toml");
    let cfg = DeploymentConfig::load(path).unwrap();
    assert_eq!(cfg.answerer.model, "qwen2.5-coder-1.5b");
    assert_eq!(cfg.answerer.max_wait_ms, 7);
    assert_eq!(cfg.asker.model, "smollm2-135m");
}
