//! The command line on good and bad input: every failure is one clear line,
//! a non-zero exit, no panic, and no output file touched.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const TINY: &str = "tests/fixtures/tiny";

fn tenbits(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(args)
        .output()
        .expect("the binary runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Asserts a clean failure: exit 1, one `tenbits: error:` line naming `what`, no panic.
fn assert_clean_failure(out: &Output, what: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.starts_with("tenbits: error:"), "stderr: {err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one line expected: {err}"
    );
    assert!(
        err.to_lowercase().contains(&what.to_lowercase()),
        "expected {what:?} in: {err}"
    );
}

struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("tenbits-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn s(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Compresses `data` with the tiny model into `dir/in.tb`.
fn make_tb(dir: &Scratch, data: &[u8]) -> Vec<u8> {
    std::fs::write(dir.path("in.txt"), data).unwrap();
    let out = tenbits(&[
        "compress",
        &dir.s("in.txt"),
        "-o",
        &dir.s("in.tb"),
        "--model-dir",
        TINY,
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::read(dir.path("in.tb")).unwrap()
}

#[test]
fn files_round_trip_through_the_binary() {
    let dir = Scratch::new("roundtrip");
    let data = b"Round trip through the binary, with bytes \xff\x00 too.\n".repeat(20);
    make_tb(&dir, &data);
    let out = tenbits(&[
        "decompress",
        &dir.s("in.tb"),
        "-o",
        &dir.s("out.txt"),
        "--model-dir",
        TINY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path("out.txt")).unwrap(), data);
    let info = tenbits(&["info", &dir.s("in.tb")]);
    assert!(
        String::from_utf8_lossy(&info.stdout).contains(&format!("original bytes   {}", data.len()))
    );
}

#[test]
fn stdin_to_stdout_round_trips() {
    use std::io::Write;
    use std::process::Stdio;
    let run = |args: &[&str], input: &[u8]| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tenbits"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        out.stdout
    };
    let packed = run(
        &["compress", "--model-dir", TINY],
        b"piped text, piped text",
    );
    assert_eq!(&packed[..2], &[0x74, 0xB4], "format 3");
    assert_eq!(
        run(&["decompress", "--model-dir", TINY], &packed),
        b"piped text, piped text"
    );
}

#[test]
fn truncated_file_is_refused_and_output_untouched() {
    let dir = Scratch::new("truncated");
    let tb = make_tb(
        &dir,
        &b"some text to compress and then cut short. ".repeat(30),
    );
    std::fs::write(dir.path("out.txt"), b"precious").unwrap();
    for cut in [3, 10, tb.len() / 2, tb.len() - 1] {
        std::fs::write(dir.path("cut.tb"), &tb[..cut]).unwrap();
        let out = tenbits(&[
            "decompress",
            &dir.s("cut.tb"),
            "-o",
            &dir.s("out.txt"),
            "--model-dir",
            TINY,
        ]);
        // Inside the header: "is truncated"; in the payload, the CRC says
        // "is corrupted or truncated".
        assert_clean_failure(&out, "truncated");
        assert_eq!(std::fs::read(dir.path("out.txt")).unwrap(), b"precious");
        assert_eq!(
            std::fs::read(dir.path("cut.tb")).unwrap(),
            &tb[..cut],
            "input must not change"
        );
    }
}

#[test]
fn corrupted_files_are_refused() {
    let dir = Scratch::new("corrupt");
    let tb = make_tb(
        &dir,
        &b"the payload of this file will be damaged. ".repeat(30),
    );
    // A flipped bit anywhere: in the header (caught by its checksum) or in
    // the payload (caught by the checksum of the decoded bytes).
    // (Byte 1 turned from 74 b4 into 74 b5 is the magic of a later format.)
    let damage = [
        (0, 0x10, "not a tenbits"),
        (1, 0x01, "unsupported .tb format version 4"),
        (2, 0x10, "is corrupted"),
        (tb.len() / 2, 0x10, "is corrupted"),
    ];
    for (pos, flip, message) in damage {
        let mut bad = tb.clone();
        bad[pos] ^= flip;
        std::fs::write(dir.path("bad.tb"), &bad).unwrap();
        let out = tenbits(&[
            "decompress",
            &dir.s("bad.tb"),
            "-o",
            &dir.s("out.txt"),
            "--model-dir",
            TINY,
        ]);
        assert_clean_failure(&out, message);
        assert!(
            !dir.path("out.txt").exists(),
            "no output may be left behind"
        );
    }
    // The coder's last flushed bits may not matter to any symbol: then the
    // exact original is a correct answer; anything else must be refused.
    let mut bad = tb.clone();
    let last = tb.len() - 1;
    bad[last] ^= 0x01;
    std::fs::write(dir.path("bad.tb"), &bad).unwrap();
    let out = tenbits(&[
        "decompress",
        &dir.s("bad.tb"),
        "-o",
        &dir.s("out.txt"),
        "--model-dir",
        TINY,
    ]);
    if out.status.success() {
        assert_eq!(
            std::fs::read(dir.path("out.txt")).unwrap(),
            b"the payload of this file will be damaged. ".repeat(30)
        );
    } else {
        assert_clean_failure(&out, "is corrupted");
    }
    std::fs::write(dir.path("junk.tb"), b"this is not a tenbits file at all").unwrap();
    assert_clean_failure(
        &tenbits(&["decompress", &dir.s("junk.tb"), "--model-dir", TINY]),
        "not a tenbits",
    );
    // No leftover temporary files either.
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tenbits-"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn file_from_another_model_is_refused() {
    let dir = Scratch::new("othermodel");
    make_tb(&dir, b"compressed with the tiny model");
    // The same model with one changed weight byte is another model.
    let other = dir.path("other");
    std::fs::create_dir_all(&other).unwrap();
    for f in ["tokenizer.json", "config.json"] {
        std::fs::copy(Path::new(TINY).join(f), other.join(f)).unwrap();
    }
    let mut onnx = std::fs::read(Path::new(TINY).join("model.onnx")).unwrap();
    let n = onnx.len();
    onnx[n / 2] ^= 1; // inside a weight tensor: weights are nearly all of the file
    std::fs::write(other.join("model.onnx"), onnx).unwrap();
    let out = tenbits(&[
        "decompress",
        &dir.s("in.tb"),
        "-o",
        &dir.s("out.txt"),
        "--model-dir",
        &other.to_string_lossy(),
    ]);
    assert_clean_failure(&out, "compressed with model");
    assert!(!dir.path("out.txt").exists());
}

#[test]
fn missing_model_and_unreadable_input_say_what_to_do() {
    let dir = Scratch::new("missing");
    std::fs::write(dir.path("in.txt"), b"x").unwrap();
    let out = tenbits(&[
        "compress",
        &dir.s("in.txt"),
        "-o",
        &dir.s("o.tb"),
        "--model-dir",
        &dir.s("nowhere"),
    ]);
    assert_clean_failure(&out, "setup.py");
    let out = tenbits(&[
        "compress",
        &dir.s("in.txt"),
        "-o",
        &dir.s("o.tb"),
        "--model",
        "no-such-model",
    ]);
    assert_clean_failure(&out, "unknown model");
    let out = tenbits(&[
        "compress",
        &dir.s("does-not-exist.txt"),
        "-o",
        &dir.s("o.tb"),
        "--model-dir",
        TINY,
    ]);
    assert_clean_failure(&out, "cannot read");
    let out = tenbits(&["decompress", &dir.0.to_string_lossy(), "--model-dir", TINY]);
    assert_clean_failure(&out, "cannot read");
    assert!(!dir.path("o.tb").exists());
}

#[test]
fn an_adapter_file_travels_in_the_header_and_decoding_needs_it() {
    let s = Scratch::new("adapter");
    std::fs::write(
        s.path("in.txt"),
        b"adapted text, adapted text, adapted text",
    )
    .unwrap();
    let adapter = "tests/fixtures/adapters/tiny-1.onnx_adapter";
    let out = tenbits(&[
        "compress",
        &s.s("in.txt"),
        "-o",
        &s.s("in.tb"),
        "--model-dir",
        TINY,
        "--adapter",
        adapter,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("adapter: tiny-1@"),
        "{}",
        stderr(&out)
    );
    let hash = stderr(&out)
        .split("tiny-1@")
        .nth(1)
        .map(|rest| rest.chars().take(12).collect::<String>())
        .unwrap();
    let info = tenbits(&["info", &s.s("in.tb")]);
    assert!(String::from_utf8_lossy(&info.stdout).contains(&hash));

    // Not installed anywhere: the error names the adapter and the way out.
    let out = tenbits(&[
        "decompress",
        &s.s("in.tb"),
        "-o",
        &s.s("out.txt"),
        "--model-dir",
        TINY,
    ]);
    assert_clean_failure(&out, &hash);
    assert!(!s.path("out.txt").exists());
    // Another adapter's file is refused.
    let out = tenbits(&[
        "decompress",
        &s.s("in.tb"),
        "-o",
        &s.s("out.txt"),
        "--model-dir",
        TINY,
        "--adapter",
        "tests/fixtures/adapters/tiny-2.onnx_adapter",
    ]);
    assert_clean_failure(&out, &hash);
    assert!(!s.path("out.txt").exists());
    // The right one restores the input.
    let out = tenbits(&[
        "decompress",
        &s.s("in.tb"),
        "-o",
        &s.s("out.txt"),
        "--model-dir",
        TINY,
        "--adapter",
        adapter,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(s.path("out.txt")).unwrap(),
        std::fs::read(s.path("in.txt")).unwrap()
    );
}

/// Runs `script` under `sh -c` with `$TB` set to the binary.
fn sh(script: &str) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("TB", env!("CARGO_BIN_EXE_tenbits"))
        .output()
        .expect("sh runs")
}

#[test]
fn a_closed_or_full_stdout_is_an_error() {
    let dir = Scratch::new("stdout");
    make_tb(&dir, b"output that must not vanish quietly");
    let tb = dir.s("in.tb");
    let closed = sh(&format!("\"$TB\" decompress '{tb}' --model-dir {TINY} >&-"));
    assert_clean_failure(&closed, "stdout");
    let full = sh(&format!(
        "\"$TB\" decompress '{tb}' --model-dir {TINY} > /dev/full"
    ));
    assert_clean_failure(&full, "stdout");
    let fine = sh(&format!(
        "\"$TB\" decompress '{tb}' --model-dir {TINY} > /dev/null"
    ));
    assert!(fine.status.success(), "{}", stderr(&fine));
}

#[test]
fn an_existing_output_file_keeps_its_mode_and_a_new_one_follows_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("mode");
    make_tb(&dir, b"the mode of the file it replaces");
    let out = dir.path("out.txt");
    std::fs::write(&out, b"old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o640)).unwrap();
    let args = [
        "decompress",
        &dir.s("in.tb"),
        "-o",
        &dir.s("out.txt"),
        "--model-dir",
        TINY,
    ];
    assert!(tenbits(&args).status.success());
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let fresh = sh(&format!(
        "umask 022; \"$TB\" decompress '{}' -o '{}' --model-dir {TINY}",
        dir.s("in.tb"),
        dir.s("new.txt")
    ));
    assert!(fresh.status.success(), "{}", stderr(&fresh));
    let mode = std::fs::metadata(dir.path("new.txt"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644, "a new file gets 0666 less the umask");
}

#[test]
fn names_from_a_file_reach_the_terminal_escaped() {
    let dir = Scratch::new("escape");
    // A model directory whose name carries an escape sequence: the header
    // records that name, as a forged file would.
    let evil = dir.path("evil\u{1b}[31mred");
    std::fs::create_dir_all(&evil).unwrap();
    for f in ["model.onnx", "tokenizer.json", "config.json"] {
        std::fs::copy(Path::new(TINY).join(f), evil.join(f)).unwrap();
    }
    std::fs::write(dir.path("in.txt"), b"named by a hostile directory").unwrap();
    let out = tenbits(&[
        "compress",
        &dir.s("in.txt"),
        "-o",
        &dir.s("in.tb"),
        "--model-dir",
        &evil.to_string_lossy(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let info = tenbits(&["info", &dir.s("in.tb")]);
    assert!(info.status.success());
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(!text.contains('\u{1b}'), "raw escape in: {text}");
    assert!(text.contains("\\u{1b}"), "escaped name expected in: {text}");
    // Decompressing looks the name up and fails: the message is escaped too.
    let out = tenbits(&["decompress", &dir.s("in.tb")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !stderr(&out).contains('\u{1b}'),
        "raw escape in: {}",
        stderr(&out)
    );
}

/// An input longer than `--block-size` streams block by block: it decodes
/// exactly, and a cut file fails cleanly without touching the output (the
/// blocks before the cut were written to the temporary file only).
#[test]
fn a_long_input_streams_in_blocks_and_a_cut_one_is_refused() {
    let dir = Scratch::new("blocks");
    let data: Vec<u8> = (0..300)
        .flat_map(|i| format!("line {i} of a file that is cut into blocks\n").into_bytes())
        .collect();
    std::fs::write(dir.path("in.txt"), &data).unwrap();
    let out = tenbits(&[
        "compress",
        &dir.s("in.txt"),
        "-o",
        &dir.s("in.tb"),
        "--block-size",
        "3000",
        "--model-dir",
        TINY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("in 5 blocks"), "{}", stderr(&out));
    let tb = std::fs::read(dir.path("in.tb")).unwrap();
    let out = tenbits(&[
        "decompress",
        &dir.s("in.tb"),
        "-o",
        &dir.s("out.txt"),
        "--model-dir",
        TINY,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dir.path("out.txt")).unwrap(), data);
    let info = tenbits(&["info", &dir.s("in.tb")]);
    assert!(info.status.success(), "{}", stderr(&info));
    let shown = String::from_utf8_lossy(&info.stdout);
    assert!(shown.contains("blocks           5"), "{shown}");
    assert!(
        shown.contains(&format!("original bytes   {}", data.len())),
        "{shown}"
    );

    std::fs::write(dir.path("out.txt"), b"precious").unwrap();
    for cut in [tb.len() / 2, tb.len() - 5, tb.len() - 1] {
        std::fs::write(dir.path("cut.tb"), &tb[..cut]).unwrap();
        let out = tenbits(&[
            "decompress",
            &dir.s("cut.tb"),
            "-o",
            &dir.s("out.txt"),
            "--model-dir",
            TINY,
        ]);
        assert_clean_failure(&out, "truncated");
        assert_eq!(std::fs::read(dir.path("out.txt")).unwrap(), b"precious");
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tenbits-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}
