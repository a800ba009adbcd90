//! `auto` picks the in-domain adapter on held-out text of each domain, with
//! the real SmolLM2-135M and the shipped adapters (set up by
//! `scripts/setup.py`; skipped with a note where they are not).

use std::path::Path;

use tenbits_inference::{OnnxModel, Registry, SessionSettings};
use tenbits_lossless::adapters::{apply, candidates};
use tenbits_lossless::AdapterChoice;

#[test]
fn auto_routes_each_domain_to_its_adapter() {
    let registry = Registry::embedded();
    let Ok(dir) = registry.set_up_dir("smollm2-135m") else {
        eprintln!("note: smollm2-135m is not set up; skipping");
        return;
    };
    let adapters = candidates("smollm2-135m", &AdapterChoice::Auto).unwrap();
    if adapters.len() < registry.adapters.len() {
        eprintln!("note: the shipped adapters are not all installed; skipping");
        return;
    }
    let mut model = OnnxModel::load_for_adapters(&dir, SessionSettings { threads: 2 }).unwrap();
    let shared = Path::new("../shared/data/corpus");
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    if shared.is_dir() {
        cases.push((
            "python-code",
            std::fs::read(shared.join("python-fractions.py.txt")).unwrap(),
        ));
        cases.push((
            "english-prose",
            std::fs::read(shared.join("jargon-file.txt")).unwrap(),
        ));
        cases.push((
            "english-prose",
            std::fs::read(shared.join("fortunes.txt")).unwrap(),
        ));
    }
    // Held-out model-written answers (never trained on), a few joined.
    let held = Path::new("adapters/data/model-answers/heldout");
    let mut answers = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(held)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    for f in files.iter().take(4) {
        answers.extend(std::fs::read(f).unwrap());
        answers.extend(b"\n\n");
    }
    cases.push(("model-answers", answers));
    for (want, text) in &cases {
        let applied = apply(&mut model, &AdapterChoice::Auto, &adapters, text).unwrap();
        let (routing, names) = applied.routing.expect("auto routes");
        assert_eq!(
            names[routing.best], *want,
            "bits per candidate {:?} over {:?}",
            routing.bits, names
        );
    }
}
