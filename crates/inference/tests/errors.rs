//! Caller mistakes on the real ONNX model come back as typed errors, not
//! runtime failures (the tiny fixture model; needs ONNX Runtime).

use std::path::Path;

use tenbits_inference::{
    BatchCache, BatchedModel, InferenceError, LanguageModel, OnnxModel, SessionSettings,
};

fn tiny() -> OnnxModel {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
    OnnxModel::load(&dir, SessionSettings { threads: 1 }).unwrap()
}

#[test]
fn bad_arguments_are_told_apart_from_runtime_failures() {
    let mut model = tiny();
    let mut logits = Vec::new();
    let mut cache = model.new_cache(2, 16);
    let err = model
        .forward(&mut cache, &[1, 2, 3], &mut logits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::BatchMismatch {
                tokens: 3,
                batch: 2
            }
        ),
        "{err}"
    );
    let err = model
        .forward_padded(&mut cache, &[1, 2], Some(&[true]), &mut logits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::PaddingMismatch {
                tokens: 2,
                flags: 1
            }
        ),
        "{err}"
    );
    let vocab = model.vocab_size();
    let err = model
        .forward(&mut cache, &[1, vocab as u32], &mut logits)
        .unwrap_err();
    assert!(
        matches!(err, InferenceError::TokenOutOfRange { .. }),
        "{err}"
    );
    let err = model
        .forward(&mut cache, &[1; 2 * 17], &mut logits)
        .unwrap_err();
    assert!(
        matches!(
            err,
            InferenceError::CacheFull {
                capacity: 16,
                past: 0,
                seq: 17
            }
        ),
        "{err}"
    );
    // Nothing was fed by the failed calls; a good one still works.
    model.forward(&mut cache, &[1, 2], &mut logits).unwrap();
    assert_eq!(cache.past_len(), 1);
    assert!(model.can_fork());
    let err = cache.fork(2, 3, 16).map(|_| ()).unwrap_err();
    assert!(
        matches!(err, InferenceError::ForkOutOfRange { row: 2, .. }),
        "{err}"
    );
    assert_eq!(cache.fork(1, 3, 32).unwrap().batch(), 3);
}

#[test]
fn missing_files_and_configs_say_which() {
    let err = OnnxModel::load(Path::new("/nonexistent"), SessionSettings { threads: 1 })
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(err, InferenceError::MissingModelFile { .. }),
        "{err}"
    );
    let dir = std::env::temp_dir().join(format!("tenbits-bad-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.json"), b"{ not json").unwrap();
    let err = tenbits_inference::ModelConfig::load(&dir.join("config.json")).unwrap_err();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(err, InferenceError::Config { .. }), "{err}");
    assert!(std::error::Error::source(&err).is_some());
}
