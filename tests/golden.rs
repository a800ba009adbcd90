//! A fixed input compresses to committed bytes with the default model, with
//! one and with two threads, and decompresses back. This pins the whole
//! chain: converter output, ONNX Runtime's arithmetic, quantization, coder
//! and container.
//!
//! ONNX Runtime picks its kernels by the CPU's instruction sets (AVX2,
//! AVX-512, VNNI, AMX), and their floats differ in the last bits, so a
//! golden file is kept per kernel family: `sample-smollm2-135m.<isa>.tb`.
//! On a machine of that family the output must equal it byte for byte; the
//! files of other families must decode to the exact input or be refused
//! (never wrong bytes). Bless this machine's file after an intended change
//! with `TENBITS_BLESS=1 cargo test --test golden`.

use std::path::{Path, PathBuf};

use tenbits_inference::{OnnxModel, Registry, SessionSettings};
use tenbits_lossless::{compress, decompress, Options};

const GOLDEN_DIR: &str = "tests/fixtures/golden";
const STEM: &str = "sample-smollm2-135m";

/// The kernel family ONNX Runtime's MLAS dispatches to on this CPU: the
/// most capable instruction set it uses for the int8 and fp32 kernels.
fn isa() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        let amx = std::fs::read_to_string("/proc/cpuinfo")
            .map(|c| c.contains(" amx_int8"))
            .unwrap_or(false);
        if amx {
            return "amx";
        }
        if std::arch::is_x86_feature_detected!("avx512vnni") {
            return "avx512vnni";
        }
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "avx512";
        }
        if std::arch::is_x86_feature_detected!("avxvnni") {
            return "avxvnni";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "avx2";
        }
    }
    std::env::consts::ARCH
}

fn golden_path(isa: &str) -> PathBuf {
    Path::new(GOLDEN_DIR).join(format!("{STEM}.{isa}.tb"))
}

fn input() -> Vec<u8> {
    let sample = std::fs::read("examples/data/sample.txt").unwrap();
    sample[..1200].to_vec()
}

fn default_model(threads: usize) -> (String, OnnxModel) {
    let registry = Registry::embedded();
    let name = registry.defaults.model.clone();
    let model = registry
        .load(&name, SessionSettings { threads })
        .unwrap_or_else(|e| panic!("the default model must be set up for this test: {e}"));
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
            ..Options::default()
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
    let golden = golden_path(isa());
    if std::env::var_os("TENBITS_BLESS").is_some() {
        std::fs::create_dir_all(GOLDEN_DIR).unwrap();
        std::fs::write(&golden, &outputs[0]).unwrap();
    }
    let committed = std::fs::read(&golden).unwrap_or_else(|e| {
        panic!(
            "no golden file for this CPU's kernels ({}: {e}); make one with \
             TENBITS_BLESS=1 cargo test --test golden and commit it",
            golden.display()
        )
    });
    let first_difference = outputs[0].iter().zip(&committed).position(|(a, b)| a != b);
    assert!(
        outputs[0] == committed,
        "output differs from {}: {} vs {} bytes, first difference at byte {first_difference:?}",
        golden.display(),
        outputs[0].len(),
        committed.len()
    );
}

#[test]
fn golden_files_of_other_cpus_decode_exactly_or_are_refused() {
    let data = input();
    let (_, mut model) = default_model(2);
    let mut checked = 0;
    for entry in std::fs::read_dir(GOLDEN_DIR).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with(STEM) || !name.ends_with(".tb") {
            continue;
        }
        let packed = std::fs::read(&path).unwrap();
        match decompress(&mut model, &packed, &mut |_| {}) {
            Ok(restored) => assert_eq!(restored, data, "{name} decoded to wrong bytes"),
            Err(e) => {
                assert_ne!(path, golden_path(isa()), "this CPU's own file: {e}");
                // Refused, with the reason: the floats of another CPU's
                // kernels make the decoder drift, and the checks catch it.
                let message = e.to_string();
                let says = ["did not reproduce the original", "corrupted"];
                assert!(
                    says.iter().any(|s| message.contains(s)),
                    "{name}: {message}"
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 2, "the AVX2 and this machine's golden files");
}
