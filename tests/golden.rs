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
//!
//! Files of format 1 (tenbits 0.1, `tests/fixtures/golden/format1/` and the
//! tiny model's `tests/fixtures/format1/`, made by that release) and of
//! format 2 (tenbits 0.2, `tests/fixtures/golden/format2/` and
//! `tests/fixtures/format2/`) must still decode, under the same rule.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tenbits_inference::{Adapter, OnnxModel, Registry, SessionSettings};
use tenbits_lossless::{compress, decompress, Options};

const GOLDEN_DIR: &str = "tests/fixtures/golden";
const FORMAT1_GOLDEN_DIR: &str = "tests/fixtures/golden/format1";
const FORMAT1_TINY_DIR: &str = "tests/fixtures/format1";
const FORMAT2_GOLDEN_DIR: &str = "tests/fixtures/golden/format2";
const FORMAT2_TINY_DIR: &str = "tests/fixtures/format2";
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
    let header = tenbits_lossless::header_bytes(&outputs[0]).unwrap();
    assert!(
        header <= 24,
        "a default-model file's header is {header} bytes"
    );
    let golden = golden_path(isa());
    if std::env::var_os("TENBITS_BLESS").is_some() {
        std::fs::create_dir_all(GOLDEN_DIR).unwrap();
        // Written aside and renamed: the test reading every golden file
        // runs at the same time and must not see half of this one.
        let aside = golden.with_extension("tb.part");
        std::fs::write(&aside, &outputs[0]).unwrap();
        std::fs::rename(&aside, &golden).unwrap();
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

/// Decodes `packed` with `model`: the exact `original`, or (only for a file
/// made on another CPU's kernels) a refusal that says why.
fn decodes_exactly_or_is_refused(
    model: &mut OnnxModel,
    packed: &[u8],
    original: &[u8],
    own_cpu: bool,
    name: &str,
) {
    match decompress(model, packed, &mut |_| {}) {
        Ok(restored) => assert!(restored == original, "{name} decoded to wrong bytes"),
        Err(e) => {
            assert!(!own_cpu, "{name}, made on this CPU's kernels: {e}");
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
}

/// The `(path, isa)` of every `.tb` file in `dir` named `STEM.<isa>.tb`.
fn files_by_isa(dir: &str, stem: &str) -> Vec<(PathBuf, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(isa) = name
            .strip_prefix(&format!("{stem}."))
            .and_then(|rest| rest.strip_suffix(".tb"))
        else {
            continue;
        };
        if !isa.contains('.') {
            found.push((path, isa.to_string()));
        }
    }
    found.sort();
    found
}

#[test]
fn golden_files_of_other_cpus_decode_exactly_or_are_refused() {
    let data = input();
    let (_, mut model) = default_model(2);
    let mut checked = 0;
    for dir in [GOLDEN_DIR, FORMAT1_GOLDEN_DIR, FORMAT2_GOLDEN_DIR] {
        for (path, file_isa) in files_by_isa(dir, STEM) {
            let packed = std::fs::read(&path).unwrap();
            let name = path.display().to_string();
            decodes_exactly_or_is_refused(&mut model, &packed, &data, file_isa == isa(), &name);
            checked += 1;
        }
    }
    assert!(
        checked >= 4,
        "this machine's golden file, the two of format 1 and one of format 2"
    );
}

/// Every `dir/stem.<isa>.tb` is of format `version` and decodes to
/// `original` (or, made on other kernels, is refused); how many there were.
fn check_old_files(
    model: &mut OnnxModel,
    dir: &str,
    stem: &str,
    original: &[u8],
    version: u16,
) -> usize {
    let files = files_by_isa(dir, stem);
    for (path, file_isa) in &files {
        let packed = std::fs::read(path).unwrap();
        let header = tenbits_lossless::inspect(&packed).unwrap();
        assert_eq!(header.format_version, version, "{}", path.display());
        let name = path.display().to_string();
        decodes_exactly_or_is_refused(model, &packed, original, *file_isa == isa(), &name);
    }
    files.len()
}

#[test]
fn format_2_files_of_tenbits_0_2_still_decode() {
    // (The real model's format-2 file decodes in the test above.)
    for (path, _) in files_by_isa(FORMAT2_GOLDEN_DIR, STEM) {
        let header = tenbits_lossless::inspect(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(header.format_version, 2, "{}", path.display());
    }
    let tiny = Path::new("tests/fixtures/tiny");
    let mut model = OnnxModel::load(tiny, SessionSettings { threads: 1 }).unwrap();
    let mut checked = 0;
    for stem in ["tiny-f2.txt", "tiny-f2.bin"] {
        let original = std::fs::read(Path::new(FORMAT2_TINY_DIR).join(stem)).unwrap();
        checked += check_old_files(&mut model, FORMAT2_TINY_DIR, stem, &original, 2);
    }
    assert!(checked >= 2, "{checked} tiny format-2 files");
}

#[test]
fn format_1_files_of_tenbits_0_1_still_decode() {
    // (The real model's format-1 files decode in the test above.)
    let format1 = files_by_isa(FORMAT1_GOLDEN_DIR, STEM);
    assert_eq!(format1.len(), 2, "the AVX2 and AMX files of tenbits 0.1");
    for (path, _) in &format1 {
        let header = tenbits_lossless::inspect(&std::fs::read(path).unwrap()).unwrap();
        assert_eq!(header.format_version, 1, "{}", path.display());
    }

    // The tiny model's, with and without an adapter.
    let tiny = Path::new("tests/fixtures/tiny");
    let mut base = OnnxModel::load(tiny, SessionSettings { threads: 1 }).unwrap();
    let mut lora = OnnxModel::load_for_adapters(tiny, SessionSettings { threads: 1 }).unwrap();
    let adapter = Adapter::load(
        Path::new("tests/fixtures/adapters/tiny-1.onnx_adapter"),
        None,
    )
    .expect("fixture adapter loads");
    lora.set_adapter(Some(Arc::new(adapter))).unwrap();
    let mut checked = 0;
    for (stem, original, with_adapter) in [
        ("tiny-f1.txt", "tiny-f1.txt", false),
        ("tiny-f1.bin", "tiny-f1.bin", false),
        ("tiny-adapter-f1.txt", "tiny-f1.txt", true),
    ] {
        let model = if with_adapter { &mut lora } else { &mut base };
        let original = std::fs::read(Path::new(FORMAT1_TINY_DIR).join(original)).unwrap();
        checked += check_old_files(model, FORMAT1_TINY_DIR, stem, &original, 1);
    }
    assert!(checked >= 3, "{checked} tiny format-1 files");
}
