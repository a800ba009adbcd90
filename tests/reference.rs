//! The converter's fp32 graph against an independent float64 numpy forward
//! pass over the same GGUF (`scripts/reference_forward.py`), through the
//! Rust inference path, step by step with the key/value cache.

use std::path::Path;

use tenbits_inference::{LanguageModel, OnnxModel, SessionSettings};

#[test]
fn tiny_model_logits_match_the_numpy_reference() {
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/tiny_reference_logits.json").unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string("tests/fixtures/tiny-optimum/config.json").unwrap(),
    )
    .unwrap();
    assert_eq!(
        reference["gguf_sha256"], config["source_gguf_sha256"],
        "reference made from the fixture's GGUF"
    );

    let mut model = OnnxModel::load(
        Path::new("tests/fixtures/tiny-optimum"),
        SessionSettings { threads: 1 },
    )
    .unwrap();
    let ids: Vec<u32> = reference["input_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let mut cache = model.new_cache(1, ids.len());
    let mut logits = Vec::new();
    for &id in &ids {
        model.forward(&mut cache, &[id], &mut logits).unwrap();
    }
    let mut checked = 0;
    for entry in reference["top10"].as_array().unwrap() {
        let id = entry["id"].as_u64().unwrap() as usize;
        let expected = entry["logit"].as_f64().unwrap();
        assert!(
            (f64::from(logits[id]) - expected).abs() < 1e-2,
            "token {id}: {} vs reference {expected}",
            logits[id]
        );
        checked += 1;
    }
    for (id, expected) in reference["fixed_logits"].as_object().unwrap() {
        let id: usize = id.parse().unwrap();
        let expected = expected.as_f64().unwrap();
        assert!(
            (f64::from(logits[id]) - expected).abs() < 1e-2,
            "token {id}: {} vs reference {expected}",
            logits[id]
        );
        checked += 1;
    }
    assert_eq!(checked, 16);
    let best = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    assert_eq!(best as u64, reference["top10"][0]["id"].as_u64().unwrap());
}
