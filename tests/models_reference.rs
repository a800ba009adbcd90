//! Every registered model, as `scripts/setup.py` converted it into the cache,
//! against an independent float64 numpy forward pass over the same GGUF
//! (`scripts/reference_forward.py`; fixtures in `tests/fixtures/reference`,
//! made with the command in that script's docstring): the tokenizer must
//! give the reference's ids for the prompt, and after feeding the prompt one
//! token per step (as the coder does) the last position's logits must be
//! close to the reference's (its top 10 and a few fixed ids) with the same
//! argmax.
//!
//! Tolerances: the weights are the GGUF's own, exactly (a fp32-compute
//! conversion of each model matches the reference within 5e-5), but the
//! `--weights q4` graphs run MatMulNBits at accuracy level 4, which rounds
//! the activations to int8 per block, so logits move by much more than the
//! fp32 tolerance of 1e-2. The largest deviations measured here were 0.87
//! (SmolLM2-135M: Q4_1 weights with zero point 0, all of one sign),
//! 0.14 (Qwen2.5-Coder-0.5B: mostly 8-bit) and 0.061 (Qwen2.5-Coder-1.5B:
//! centred 4-bit K-quants, 8-bit Q6_K); each tolerance is about 2.5 times
//! that.

use tenbits_inference::{LanguageModel, OnnxModel, Registry, SessionSettings};

fn check_against_reference(name: &str, tolerance: f64) {
    let registry = Registry::embedded();
    let entry = registry.model(name).unwrap();
    let dir = registry.set_up_dir(name).unwrap_or_else(|e| panic!("{e}"));
    let path = format!("tests/fixtures/reference/{name}.json");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}")),
    )
    .unwrap();
    assert_eq!(
        reference["gguf_sha256"].as_str(),
        Some(entry.sha256.as_str()),
        "{path} was made from {name}'s GGUF"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["source_gguf_sha256"].as_str(),
        Some(entry.sha256.as_str())
    );

    let mut model = OnnxModel::load(&dir, SessionSettings { threads: 2 }).unwrap_or_else(|e| {
        panic!(
            "cannot load {name} from {} (run `python3 scripts/setup.py --all`): {e}",
            dir.display()
        )
    });
    let prompt = reference["prompt"]
        .as_str()
        .expect("the fixture records its prompt");
    let expected_ids: Vec<u32> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let ids = model.tokenizer().encode_bytes(prompt.as_bytes()).unwrap();
    assert_eq!(
        ids, expected_ids,
        "{name}: the tokenizer disagrees with the reference on {prompt:?}"
    );

    let mut cache = model.new_cache(1, ids.len());
    let mut logits = Vec::new();
    for &id in &ids {
        model.forward(&mut cache, &[id], &mut logits).unwrap();
    }
    assert_eq!(logits.len(), model.vocab_size());

    let mut compared = Vec::new();
    for entry in reference["top10"].as_array().unwrap() {
        compared.push((
            entry["id"].as_u64().unwrap() as usize,
            entry["logit"].as_f64().unwrap(),
        ));
    }
    for (id, logit) in reference["fixed_logits"].as_object().unwrap() {
        compared.push((id.parse().unwrap(), logit.as_f64().unwrap()));
    }
    let (worst_id, worst) = compared
        .iter()
        .map(|&(id, expected)| (id, (f64::from(logits[id]) - expected).abs()))
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap();
    eprintln!(
        "{name}: max |logit - reference| = {worst:.4} (token {worst_id}) over {} logits",
        compared.len()
    );
    assert!(
        worst <= tolerance,
        "{name}: token {worst_id} is off by {worst:.4}, more than {tolerance}"
    );

    let best = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    assert_eq!(
        best as u64,
        reference["top10"][0]["id"].as_u64().unwrap(),
        "{name}: argmax differs from the reference"
    );
}

/// Each registered model's tolerance (see the top of this file).
const TOLERANCES: &[(&str, f64)] = &[
    ("smollm2-135m", 2.0),
    ("qwen2.5-coder-0.5b", 0.35),
    ("qwen2.5-coder-1.5b", 0.15),
];

fn tolerance(name: &str) -> f64 {
    TOLERANCES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, t)| t)
        .unwrap()
}

#[test]
fn smollm2_135m_matches_the_numpy_reference() {
    check_against_reference("smollm2-135m", tolerance("smollm2-135m"));
}

#[test]
fn qwen2_5_coder_0_5b_matches_the_numpy_reference() {
    check_against_reference("qwen2.5-coder-0.5b", tolerance("qwen2.5-coder-0.5b"));
}

#[test]
fn qwen2_5_coder_1_5b_matches_the_numpy_reference() {
    check_against_reference("qwen2.5-coder-1.5b", tolerance("qwen2.5-coder-1.5b"));
}

#[test]
fn every_registered_model_is_checked() {
    for model in &Registry::embedded().models {
        assert!(
            TOLERANCES.iter().any(|(n, _)| *n == model.name),
            "{} has no test here: add it, with a reference made by scripts/reference_forward.py",
            model.name
        );
        let path = format!("tests/fixtures/reference/{}.json", model.name);
        assert!(
            std::path::Path::new(&path).is_file(),
            "{path} is missing: see scripts/reference_forward.py"
        );
    }
}
