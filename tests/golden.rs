//! A fixed input compresses to committed bytes with the default model, with
//! one and with two threads, and decompresses back. This pins the whole
//! chain: converter output, ONNX Runtime's arithmetic, quantization, coder
//! and container. Regenerate after an intended change with
//! `TENBITS_BLESS=1 cargo test --test golden`.

use std::path::Path;

use tenbits_inference::{OnnxModel, Registry, SessionSettings};
use tenbits_lossless::{compress, decompress, Options};

const GOLDEN: &str = "tests/fixtures/golden/sample-smollm2-135m.tb";

fn input() -> Vec<u8> {
    let sample = std::fs::read("examples/data/sample.txt").unwrap();
    sample[..1200].to_vec()
}

fn default_model(threads: usize) -> (String, OnnxModel) {
    let registry = Registry::embedded();
    let name = registry.defaults.model.clone();
    let dir = registry
        .model(&name)
        .unwrap()
        .cached_dir(&tenbits_inference::cache_dir());
    let model = OnnxModel::load(&dir, SessionSettings { threads }).unwrap_or_else(|e| {
        panic!("the default model must be set up for this test (python3 scripts/setup.py): {e}")
    });
    (name, model)
}

#[test]
fn fixed_input_compresses_to_committed_bytes_with_one_and_two_threads() {
    let data = input();
    let mut outputs = Vec::new();
    for threads in [1, 2] {
        let (name, mut model) = default_model(threads);
        let options = Options {
            model_name: name,
            chunk_tokens: 128,
            max_batch: 4,
        };
        let (packed, _) = compress(&mut model, &data, &options, &mut |_| {}).unwrap();
        assert_eq!(
            decompress(&mut model, &packed, &mut |_| {}).unwrap(),
            data,
            "{threads} threads"
        );
        outputs.push(packed);
    }
    assert_eq!(
        outputs[0], outputs[1],
        "1 and 2 threads must give the same bytes"
    );
    if std::env::var_os("TENBITS_BLESS").is_some() {
        std::fs::create_dir_all(Path::new(GOLDEN).parent().unwrap()).unwrap();
        std::fs::write(GOLDEN, &outputs[0]).unwrap();
    }
    let golden = std::fs::read(GOLDEN).expect("golden file is committed");
    let first_difference = outputs[0].iter().zip(&golden).position(|(a, b)| a != b);
    assert!(
        outputs[0] == golden,
        "output differs from {GOLDEN}: {} vs {} bytes, first difference at byte {first_difference:?}",
        outputs[0].len(),
        golden.len()
    );
}
