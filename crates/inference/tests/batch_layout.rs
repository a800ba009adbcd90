//! A stream computes the same logits whatever else shares its batch: a
//! request beside a much longer one (hundreds of padding slots for the
//! short stream) gets, bit for bit, what it gets alone (SmolLM2-135M, set
//! up by `python3 scripts/setup.py`: the tiny fixture's 16-wide heads take
//! another kernel path, where the difference does not show).

use tenbits_inference::{
    cache_dir, Generator, LanguageModel, OnnxModel, Registry, Request, Sampling, SessionSettings,
};

fn generator() -> Generator {
    let dir = Registry::embedded()
        .model("smollm2-135m")
        .unwrap()
        .cached_dir(&cache_dir());
    let model =
        OnnxModel::load_for_rows(&dir, SessionSettings { threads: 2 }).unwrap_or_else(|e| {
            panic!(
                "run `python3 scripts/setup.py` first: cannot load SmolLM2-135M from {}: {e}",
                dir.display()
            )
        });
    Generator::new(model).unwrap()
}

/// The logits request 0 picked each of its tokens from, run beside the rest.
fn first_request_logits(generator: &mut Generator, requests: &[Request]) -> Vec<Vec<f32>> {
    let mut seen = Vec::new();
    generator
        .generate_observed(
            requests,
            |_, _| {},
            |i, _, logits| {
                if i == 0 {
                    seen.push(logits.to_vec());
                }
            },
        )
        .unwrap();
    seen
}

#[test]
fn a_short_stream_beside_a_long_one_computes_what_it_computes_alone() {
    let mut generator = generator();
    let vocab = generator.model().vocab_size() as u32;
    let request = |len: u32, step: u32| Request {
        prompt: (0..len).map(|i| (7 + step * i) % vocab).collect(),
        sampling: Sampling::greedy(12),
    };
    let short = request(21, 13);
    // About 300 padding slots for the short stream: past 256 keys, where
    // a longer attention row is summed in other pieces.
    let long = request(330, 31);
    let alone = first_request_logits(&mut generator, std::slice::from_ref(&short));
    let beside_long = first_request_logits(&mut generator, &[short, long]);
    assert_eq!(alone.len(), beside_long.len());
    for (step, (a, b)) in alone.iter().zip(&beside_long).enumerate() {
        assert!(
            a == b,
            "step {step}: the short stream's logits changed beside a long one"
        );
    }
}
