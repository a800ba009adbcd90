//! LoRA adapters on the tiny fixture model (`tests/fixtures/tiny`, converted
//! with `--lora-rank 4`) and two random adapters
//! (`tests/fixtures/adapters/tiny-{1,2}.onnx_adapter`, from
//! `scripts/random_adapter.py`).

use std::path::Path;
use std::sync::Arc;

use tenbits_inference::{Adapter, LanguageModel, OnnxModel, SessionSettings};
use tenbits_lossless::{compress, decompress, LosslessError, Options};

const TINY: &str = "tests/fixtures/tiny";

fn settings() -> SessionSettings {
    SessionSettings { threads: 1 }
}

fn adapter(n: u32) -> Arc<Adapter> {
    let path = format!("tests/fixtures/adapters/tiny-{n}.onnx_adapter");
    Arc::new(Adapter::load(Path::new(&path), None).expect("fixture adapter loads"))
}

fn logits(model: &mut OnnxModel, tokens: &[u32]) -> Vec<f32> {
    let mut cache = model.new_cache(1, 64);
    let mut out = Vec::new();
    model.forward(&mut cache, tokens, &mut out).unwrap();
    out
}

const TOKENS: &[u32] = &[5, 17, 42, 99, 3, 250, 7];

#[test]
fn an_adapter_changes_logits_and_none_restores_the_base_bit_for_bit() {
    let mut base = OnnxModel::load(Path::new(TINY), settings()).unwrap();
    let mut lora = OnnxModel::load_for_adapters(Path::new(TINY), settings()).unwrap();
    let reference = logits(&mut base, TOKENS);
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    // The LoRA graph without an adapter is the base model, bit for bit.
    assert_eq!(bits(&logits(&mut lora, TOKENS)), bits(&reference));
    // Same fingerprint: files coded without an adapter decode on either.
    assert_eq!(base.fingerprint(), lora.fingerprint());

    lora.set_adapter(Some(adapter(1))).unwrap();
    let one = logits(&mut lora, TOKENS);
    let moved = one
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(moved > 1e-3, "the adapter moved logits by only {moved}");
    lora.set_adapter(Some(adapter(2))).unwrap();
    assert_ne!(bits(&logits(&mut lora, TOKENS)), bits(&one));
    // Switching back, per run, without reloading.
    lora.set_adapter(Some(adapter(1))).unwrap();
    assert_eq!(bits(&logits(&mut lora, TOKENS)), bits(&one));
    lora.set_adapter(None).unwrap();
    assert_eq!(bits(&logits(&mut lora, TOKENS)), bits(&reference));
}

#[test]
fn the_base_graph_refuses_an_adapter() {
    let mut base = OnnxModel::load(Path::new(TINY), settings()).unwrap();
    let err = base.set_adapter(Some(adapter(1))).unwrap_err().to_string();
    assert!(err.contains("--lora-rank"), "{err}");
}

#[test]
fn a_file_records_its_adapter_and_refuses_a_wrong_or_missing_one() {
    let mut model = OnnxModel::load_for_adapters(Path::new(TINY), settings()).unwrap();
    let data = b"the adapter is part of the model: the same text, other bits".repeat(3);
    let options = Options {
        model_name: "tiny".into(),
        ..Options::default()
    };
    model.set_adapter(Some(adapter(1))).unwrap();
    let (with_one, _) = compress(&mut model, &data, &options, &mut |_| {}).unwrap();
    let header = tenbits_lossless::inspect(&with_one).unwrap();
    // The header keeps the hash only (12 hex digits), not the name.
    let hash = adapter(1).id().hash_hex();
    assert_eq!(header.adapter_id.as_deref(), Some(hash.as_str()));
    assert_eq!(hash.len(), 12);
    assert_eq!(
        decompress(&mut model, &with_one, &mut |_| {}).unwrap(),
        data
    );

    model.set_adapter(Some(adapter(2))).unwrap();
    let err = decompress(&mut model, &with_one, &mut |_| {}).unwrap_err();
    assert!(matches!(err, LosslessError::WrongAdapter { .. }), "{err}");
    assert!(err.to_string().contains(&hash), "{err}");
    assert!(err.to_string().contains("tiny-2@"), "{err}");

    model.set_adapter(None).unwrap();
    let err = decompress(&mut model, &with_one, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("installed"), "{err}");

    // And a file coded without an adapter refuses one.
    let (plain, _) = compress(&mut model, &data, &options, &mut |_| {}).unwrap();
    model.set_adapter(Some(adapter(1))).unwrap();
    let err = decompress(&mut model, &plain, &mut |_| {}).unwrap_err();
    assert!(err.to_string().contains("--adapter none"), "{err}");
    // The plain file is the base model's file: it decodes there too.
    let mut base = OnnxModel::load(Path::new(TINY), settings()).unwrap();
    assert_eq!(decompress(&mut base, &plain, &mut |_| {}).unwrap(), data);
    let (from_base, _) = compress(&mut base, &data, &options, &mut |_| {}).unwrap();
    assert_eq!(from_base, plain);
}

#[test]
fn a_damaged_adapter_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.onnx_adapter");
    std::fs::write(&path, b"not an adapter").unwrap();
    let err = Adapter::load(&path, None).unwrap_err().to_string();
    assert!(err.contains("not a usable LoRA adapter"), "{err}");
}
