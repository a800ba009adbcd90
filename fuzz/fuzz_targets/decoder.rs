//! Fuzz target: see `checks::decoder`. Needs the ONNX Runtime library
//! (`python3 scripts/setup.py`).
#![no_main]
#[path = "../checks.rs"]
mod checks;

use std::sync::{Mutex, OnceLock};
use tenbits_inference::{OnnxModel, SessionSettings};

fn model() -> &'static Mutex<OnnxModel> {
    static MODEL: OnceLock<Mutex<OnnxModel>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/tiny");
        Mutex::new(OnnxModel::load(&dir, SessionSettings { threads: 1 }).expect("tiny model"))
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decoder(&mut model().lock().unwrap(), data));
