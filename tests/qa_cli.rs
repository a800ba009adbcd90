//! A full question-asking session between two processes over TCP on
//! loopback, through the binary: `tenbits serve` hosts the answerer,
//! `tenbits ask` connects, drafts, asks, receives one bit per question and
//! revises. Real models: the default SmolLM2 plays both parts here so the
//! test needs only the default set-up (the deployment files name
//! Qwen2.5-Coder as the answerer; environment overrides swap it).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn ask_talks_to_serve_over_tcp_between_two_processes() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["serve", "--config", "config/answerer.toml"])
        .env("TENBITS_ANSWERER__MODEL", "smollm2-135m")
        .env("TENBITS_ANSWERER__THREADS", "1")
        .env("TENBITS_TRANSPORT__LISTEN", &addr)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the server to say it listens.
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let start = Instant::now();
    loop {
        let line = lines
            .next()
            .expect("the server exited before listening")
            .unwrap();
        if line.contains("listening on") {
            assert!(line.contains(&addr), "{line}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the server did not start"
        );
    }
    std::thread::spawn(move || for _ in lines {});

    let out = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["ask", "--config", "config/asker.toml", "What is 17 + 25?"])
        .env("TENBITS_ANSWERER__MODEL", "smollm2-135m")
        .env("TENBITS_TRANSPORT__CONNECT", &addr)
        .env("TENBITS_PROTOCOL__MAX_TOKENS", "48")
        .output()
        .unwrap();
    server.kill().ok();
    server.wait().ok();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ask failed: {stderr}\n{stdout}");
    assert!(
        stdout.contains("round 1 questions (answered by smollm2-135m)"),
        "{stdout}"
    );
    assert!(stdout.contains("bits: 10 answer bits"), "{stdout}");
    // Ten answers crossed the wire as ten payload bits.
    assert!(stdout.contains("10 payload bits"), "{stdout}");
    let answered = stdout
        .lines()
        .filter(|l| l.starts_with("  yes ") || l.starts_with("  no  "))
        .count();
    assert_eq!(answered, 10, "{stdout}");
}

#[test]
fn ask_reports_a_server_that_is_not_there() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["ask", "--config", "config/asker.toml", "What is 1 + 1?"])
        .env("TENBITS_TRANSPORT__CONNECT", format!("127.0.0.1:{port}"))
        .env("TENBITS_PROTOCOL__MAX_TOKENS", "8")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tenbits: error:"), "{stderr}");
    assert!(
        stderr.lines().count() <= 3,
        "a short error, not a panic: {stderr}"
    );
}

#[test]
fn eval_report_only_without_a_results_file_says_what_to_pass_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.jsonl");
    std::fs::write(
        &tasks,
        "{\"task\":\"short\",\"problem\":\"What is 6 x 7?\",\"answer\":\"42\"}\n",
    )
    .unwrap();
    let results = dir.path().join("out").join("none.jsonl");
    let out = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["eval", "--bench"])
        .arg(&tasks)
        .args(["--split", "tune", "--report-only", "--results"])
        .arg(&results)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no results file at"), "{stderr}");
    assert!(stderr.contains("--results FILE"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing created");
}

#[test]
fn eval_in_the_background_logs_a_progress_line_per_result() {
    // Piped stderr is not a terminal, as under nohup: the bar cannot draw,
    // so the run must say how far it is in plain lines.
    let dir = tempfile::tempdir().unwrap();
    let tasks = dir.path().join("tasks.jsonl");
    std::fs::write(
        &tasks,
        "{\"task\":\"short\",\"problem\":\"What is 6 x 7?\",\"answer\":\"42\"}\n\
         {\"task\":\"short\",\"problem\":\"What is 2 + 3?\",\"answer\":\"5\"}\n",
    )
    .unwrap();
    let tiny = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tiny");
    let out = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["eval", "--bench"])
        .arg(&tasks)
        .args(["--split", "all", "--methods", "small,large"])
        .args([
            "--small-dir",
            tiny,
            "--large-dir",
            tiny,
            "--max-tokens",
            "4",
        ])
        .arg("--results")
        .arg(dir.path().join("results.jsonl"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("10 bits: 4/4 results ("), "{stderr}");
    assert!(stderr.contains("eta "), "{stderr}");
}
