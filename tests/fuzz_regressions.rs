//! Replays the fuzz targets' seed corpus (`fuzz/corpus/<target>`) and
//! every saved crash (`fuzz/regressions/<target>`) through the same checks
//! the targets run (`fuzz/checks.rs`), so a fixed crash stays fixed
//! without nightly or libFuzzer. Long fuzzing runs: `scripts/fuzz.sh`.

#[path = "../fuzz/checks.rs"]
#[allow(dead_code)]
mod checks;

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let mut found = Vec::new();
    for kind in ["corpus", "regressions"] {
        let dir = Path::new("fuzz").join(kind).join(target);
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name != "README" {
                found.push((
                    format!("{kind}/{target}/{name}"),
                    std::fs::read(e.path()).unwrap(),
                ));
            }
        }
    }
    found.sort();
    found
}

fn replay(target: &str, check: impl Fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (name, data) in inputs {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&data)));
        assert!(outcome.is_ok(), "{name} fails the {target} check");
    }
}

#[test]
fn container_inputs_replay_cleanly() {
    replay("container", checks::container);
}

#[test]
fn frame_inputs_replay_cleanly() {
    replay("frame", checks::frame);
}

#[test]
fn config_inputs_replay_cleanly() {
    replay("config", checks::config);
}

#[test]
fn task_inputs_replay_cleanly() {
    replay("tasks", checks::tasks);
}

#[test]
fn decoder_inputs_replay_cleanly() {
    let dir = Path::new("tests/fixtures/tiny");
    let model =
        tenbits_inference::OnnxModel::load(dir, tenbits_inference::SessionSettings { threads: 1 })
            .expect("the tiny fixture model loads (python3 scripts/setup.py)");
    let model = std::sync::Mutex::new(model);
    replay("decoder", |data| {
        checks::decoder(&mut model.lock().unwrap(), data)
    });
}
