//! The converter's unit tests (`scripts/test_convert_gguf.py`): GGML block
//! decoding against hand-computed values and `gguf.quants.dequantize`, and
//! the bit-exact read-back of every quantized weight of a converted graph.
//! They run with the converter's own venv, which `python3 scripts/setup.py`
//! creates in the cache. Also: `scripts/setup.py` and the Rust registry put
//! every converted model in the same cache directory.

use std::path::Path;
use std::process::Command;

use tenbits_inference::Registry;

/// setup.py converts each model into the directory the binary looks in:
/// both derive it from the registry's converter version and the model's
/// `convert_args` (plain `python3`; setup.py needs only the standard library).
#[test]
fn setup_and_the_registry_agree_on_every_cache_dir() {
    let cache = Path::new("/nonexistent/tenbits-cache");
    let run = Command::new("python3")
        .args(["scripts/setup.py", "--print-cache-dirs"])
        .env("TENBITS_CACHE", cache)
        .output()
        .expect("python3 must be installed to run scripts/setup.py");
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let printed = String::from_utf8(run.stdout).expect("UTF-8 output");
    let python: Vec<(&str, &str)> = printed
        .lines()
        .map(|line| line.split_once('\t').expect("NAME<TAB>DIR"))
        .collect();
    let registry = Registry::embedded();
    let rust: Vec<(&str, String)> = registry
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.cached_dir(cache).display().to_string()))
        .collect();
    assert_eq!(python.len(), rust.len(), "{printed}");
    for ((py_name, py_dir), (name, dir)) in python.iter().zip(&rust) {
        assert_eq!(py_name, name);
        assert_eq!(py_dir, dir, "{name}: setup.py and Rust disagree");
    }
}

#[test]
fn converter_unit_tests_pass_in_the_converter_venv() {
    let found = Command::new("python3")
        .args(["scripts/setup.py", "--print-venv"])
        .output()
        .expect("python3 must be installed to run scripts/setup.py");
    let python = String::from_utf8(found.stdout)
        .expect("a UTF-8 path")
        .trim()
        .to_string();
    assert!(
        found.status.success() && std::path::Path::new(&python).is_file(),
        "the converter's Python environment ({python}) is not set up: run `python3 scripts/setup.py` first\n{}",
        String::from_utf8_lossy(&found.stderr)
    );
    let run = Command::new(&python)
        .args(["scripts/test_convert_gguf.py", "-v"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    let report = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success(),
        "scripts/test_convert_gguf.py failed:\n{}\n{report}",
        String::from_utf8_lossy(&run.stdout)
    );
    // unittest reports on stderr: "Ran N tests" and "OK"; nothing may be skipped.
    assert!(
        report.contains("\nOK") && !report.contains("skipped"),
        "{report}"
    );
}
