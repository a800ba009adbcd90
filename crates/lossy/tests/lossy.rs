//! Lossy compression with a scripted rewriter and the tiny fixture coder.

use std::path::Path;

use tenbits_chat::{Message, Sampling};
use tenbits_inference::{OnnxModel, SessionSettings};
use tenbits_lossless::{decompress, inspect, Options};
use tenbits_lossy::{compress_lossy, LossyNote, LossySettings, Survival};
use tenbits_qa::{ChatModel, ModelError, Reply};

/// Returns its scripted rewrites in order, one per request; records seeds.
struct Scripted {
    rewrites: Vec<&'static str>,
    seeds: Vec<u64>,
}

impl ChatModel for Scripted {
    fn model_id(&self) -> [u8; 16] {
        [7; 16]
    }
    fn name(&self) -> &str {
        "scripted"
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        self.seeds.extend(requests.iter().map(|(_, s)| s.seed));
        Ok(self
            .rewrites
            .iter()
            .take(requests.len())
            .map(|s| s.to_string().into())
            .collect())
    }
    fn p_yes(&mut self, _: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        unreachable!()
    }
    fn score_candidates(&mut self, _: &[Message], _: &[String]) -> Result<Vec<f64>, ModelError> {
        unreachable!()
    }
}

fn coder() -> OnnxModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
    OnnxModel::load(&dir, SessionSettings { threads: 1 }).unwrap()
}

fn options() -> Options {
    Options {
        model_name: "tiny".into(),
        ..Options::default()
    }
}

const ORIGINAL: &[u8] = b"Let me work this out carefully, one step at a time, so nothing is missed.\n\
First, fifteen percent of 260 is 0.15 times 260.\nThat product is 39, which I double-check: 39 / 260 = 0.15.\nAnswer: 39";

#[test]
fn the_shortest_rewrite_that_keeps_the_answer_is_kept_and_decodes_exactly() {
    let mut rewriter = Scripted {
        // The shortest loses the answer; the next keeps it; the last is long.
        rewrites: vec!["About 40.", "0.15 * 260 = 39\nAnswer: 39", ORIGINAL_AS_STR],
        seeds: Vec::new(),
    };
    let settings = LossySettings {
        samples: 3,
        seed: 10,
        ..LossySettings::default()
    };
    let mut coder = coder();
    let result = compress_lossy(
        &mut rewriter,
        &mut coder,
        ORIGINAL,
        &settings,
        &Survival::SameAnswer,
        &options(),
    )
    .unwrap();
    assert_eq!(rewriter.seeds, vec![10, 11, 12]);
    assert!(!result.candidates[1].survives, "the answer is gone");
    assert!(result.candidates[1].coded_bytes < result.candidates[2].coded_bytes);
    assert_eq!(result.chosen, 2);
    assert_eq!(
        decompress(&mut coder, &result.container, &mut |_| {}).unwrap(),
        b"0.15 * 260 = 39\nAnswer: 39"
    );
    let note = LossyNote::parse(
        inspect(&result.container)
            .unwrap()
            .lossy
            .as_deref()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (note.rewriter.as_str(), note.samples, note.seed, note.kept),
        ("scripted", 3, 10, 2)
    );
    assert_eq!(note.original_bytes, ORIGINAL.len());
}

const ORIGINAL_AS_STR: &str = "Let me work this out carefully, one step at a time, so nothing is missed.\n\
First, fifteen percent of 260 is 0.15 times 260.\nThat product is 39, which I double-check: 39 / 260 = 0.15.\nAnswer: 39";

#[test]
fn when_no_rewrite_keeps_the_answer_the_original_is_kept_losslessly() {
    let mut rewriter = Scripted {
        rewrites: vec!["About 40.", "Answer: 390"],
        seeds: Vec::new(),
    };
    let settings = LossySettings {
        samples: 2,
        ..LossySettings::default()
    };
    let mut coder = coder();
    let result = compress_lossy(
        &mut rewriter,
        &mut coder,
        ORIGINAL,
        &settings,
        &Survival::SameAnswer,
        &options(),
    )
    .unwrap();
    assert_eq!(result.chosen, 0);
    assert_eq!(inspect(&result.container).unwrap().lossy, None);
    assert_eq!(
        decompress(&mut coder, &result.container, &mut |_| {}).unwrap(),
        ORIGINAL
    );
}

#[test]
fn a_checker_decides_survival() {
    let mut rewriter = Scripted {
        rewrites: vec!["B", "The answer is (C)."],
        seeds: Vec::new(),
    };
    let settings = LossySettings {
        samples: 2,
        ..LossySettings::default()
    };
    let gold_is_c = |text: &str| text.contains("(C)");
    let mut coder = coder();
    let result = compress_lossy(
        &mut rewriter,
        &mut coder,
        ORIGINAL,
        &settings,
        &Survival::Check(&gold_is_c),
        &options(),
    )
    .unwrap();
    assert_eq!(result.chosen, 2);
}
