//! The answer extractor against a person's reading of real replies.
//!
//! `fixtures/extraction-sample.jsonl` holds replies of the evaluated models
//! taken from `results/` (each problem and model once), each with `hand`:
//! the final answer a person reads in the reply (a number as digits, an
//! option letter), or `null` where the reply states none (it loops until
//! the token limit, or boxes something that is not an option). The test
//! reports the disagreement rate and holds it to what was measured: the
//! extractor agrees on every complete reply; the only disagreements are
//! truncated replies, where it reads the last number of a line cut off
//! mid-way (those are counted as truncated, never as right, in reports).

use std::collections::HashMap;
use std::path::PathBuf;

use tenbits_eval::{grade, load_bigbench};

#[derive(serde::Deserialize)]
struct Sample {
    benchmark: String,
    problem: String,
    model: String,
    truncated: bool,
    reply: String,
    hand: Option<String>,
}

#[test]
fn extractor_agrees_with_hand_reading() {
    let shared = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if !shared.join("bigbench").is_dir() {
        eprintln!("note: no shared data at {}; skipping", shared.display());
        return;
    }
    let text = include_str!("fixtures/extraction-sample.jsonl");
    let samples: Vec<Sample> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut benches = HashMap::new();
    let (mut complete, mut complete_wrong, mut cut, mut cut_wrong) = (0, 0, 0, 0);
    let mut per_model: HashMap<&str, (usize, usize)> = HashMap::new();
    for s in &samples {
        let task = s.benchmark.trim_start_matches("bigbench/");
        let bench = benches
            .entry(task.to_string())
            .or_insert_with(|| load_bigbench(shared.join("bigbench").join(task)).unwrap());
        let item = bench
            .items
            .iter()
            .find(|i| i.id == s.problem)
            .unwrap_or_else(|| panic!("{} not in {task}", s.problem));
        let g = grade(&item.gold, &s.reply, s.truncated).expect("gradable");
        let read = g.extracted.map(|e| e.text);
        let agrees = read == s.hand;
        let m = per_model.entry(&s.model).or_default();
        m.0 += 1;
        m.1 += usize::from(!agrees);
        if s.truncated {
            cut += 1;
            cut_wrong += usize::from(!agrees);
        } else {
            complete += 1;
            complete_wrong += usize::from(!agrees);
            assert!(
                agrees,
                "{} ({}): extractor read {read:?}, a person reads {:?}",
                s.problem, s.model, s.hand
            );
        }
        // A reply a person reads no answer in is never graded right.
        if s.hand.is_none() {
            assert!(!g.correct, "{}: graded right without an answer", s.problem);
        }
    }
    eprintln!(
        "extraction vs hand: {} replies; complete {complete} ({complete_wrong} disagree), \
         truncated {cut} ({cut_wrong} disagree); per model {per_model:?}",
        samples.len()
    );
    assert!(
        complete >= 40,
        "the sample must stay large enough to mean something"
    );
}
