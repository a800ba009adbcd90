//! A stream computes the same logits whatever else shares its batch: a
//! request beside a much longer one (hundreds of padding slots for the
//! short stream) gets, bit for bit, what it gets beside a copy of itself
//! (SmolLM2-135M, set up by `python3 scripts/setup.py`: the tiny fixture's
//! 16-wide heads take another kernel path, where the difference does not
//! show).

use tenbits_inference::{
    cache_dir, BatchedModel, LanguageModel, OnnxModel, Registry, SessionSettings,
};

fn model() -> OnnxModel {
    let dir = Registry::embedded()
        .model("smollm2-135m")
        .unwrap()
        .cached_dir(&cache_dir());
    OnnxModel::load_for_rows(&dir, SessionSettings { threads: 2 }).unwrap_or_else(|e| {
        panic!(
            "run `python3 scripts/setup.py` first: cannot load SmolLM2-135M from {}: {e}",
            dir.display()
        )
    })
}

const BLOCK: usize = 16;

/// Stream 0's next-token logits after `prompt` and after each of `steps`
/// decoded tokens (its own argmax), with `other` in stream 1. Prompts go
/// in blocks of 16, right-padded, as `Generator` feeds them.
fn stream_zero(
    model: &mut OnnxModel,
    prompt: &[u32],
    other: &[u32],
    steps: usize,
) -> Vec<Vec<f32>> {
    let vocab = model.vocab_size();
    let longest = prompt.len().max(other.len());
    let mut cache = model.new_cache(2, longest.div_ceil(BLOCK) * BLOCK + steps + BLOCK);
    let (mut logits, mut seen) = (Vec::new(), Vec::new());
    let mut last = [vec![0.0f32; vocab], vec![0.0f32; vocab]];
    for start in (0..longest).step_by(BLOCK) {
        let (mut tokens, mut real) = (Vec::new(), Vec::new());
        for p in [prompt, other] {
            for at in start..start + BLOCK {
                tokens.push(p.get(at).copied().unwrap_or(2));
                real.push(at < p.len());
            }
        }
        model
            .forward_padded(&mut cache, &tokens, Some(&real), &mut logits)
            .unwrap();
        for (s, p) in [prompt, other].into_iter().enumerate() {
            if p.len() > start && p.len() <= start + BLOCK {
                let row = s * BLOCK + p.len() - 1 - start;
                last[s].copy_from_slice(&logits[row * vocab..(row + 1) * vocab]);
            }
        }
    }
    for _ in 0..steps {
        seen.push(last[0].clone());
        let next: Vec<u32> = last.iter().map(|l| argmax(l)).collect();
        model
            .forward_padded(&mut cache, &next, None, &mut logits)
            .unwrap();
        for (s, l) in last.iter_mut().enumerate() {
            l.copy_from_slice(&logits[s * vocab..(s + 1) * vocab]);
        }
    }
    seen.push(last[0].clone());
    seen
}

fn argmax(row: &[f32]) -> u32 {
    (0..row.len())
        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
        .unwrap() as u32
}

#[test]
fn a_short_stream_beside_a_long_one_computes_what_it_computes_beside_itself() {
    let mut model = model();
    let vocab = model.vocab_size() as u32;
    let short: Vec<u32> = (0..21).map(|i| (7 + 13 * i) % vocab).collect();
    // About 300 padding slots for the short stream: past 256 keys, where
    // a longer attention row is summed in other pieces.
    let long: Vec<u32> = (0..330).map(|i| (5 + 31 * i) % vocab).collect();
    let alone = stream_zero(&mut model, &short, &short, 12);
    let beside_long = stream_zero(&mut model, &short, &long, 12);
    for (step, (a, b)) in alone.iter().zip(&beside_long).enumerate() {
        assert!(
            a == b,
            "step {step}: the short stream's logits changed beside a long one"
        );
    }
}
