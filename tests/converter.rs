//! The converter's unit tests (`scripts/test_convert_gguf.py`): GGML block
//! decoding against hand-computed values and `gguf.quants.dequantize`, and
//! the bit-exact read-back of every quantized weight of a converted graph.
//! They run with the converter's own venv, which `python3 scripts/setup.py`
//! creates in the cache.

use std::process::Command;

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
