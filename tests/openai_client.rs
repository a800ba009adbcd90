//! `tenbits serve --openai` as a process, with the official `openai` Python
//! package as the client (`scripts/test_openai_client.py`, in the venv
//! `python3 scripts/setup.py --all` makes): models, chat with logprobs,
//! streaming, and 401 without the key. SmolLM2-135M serves.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};

/// The venv setup.py keys by the requirements' sha256 (16 hex digits).
fn client_python() -> Option<PathBuf> {
    let reqs = std::fs::read("scripts/requirements-openai-client.txt").unwrap();
    let key: String = Sha256::digest(&reqs)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let venv = tenbits_inference::cache_dir().join(format!("venv-openai-client-{key}"));
    venv.join(".complete")
        .is_file()
        .then(|| venv.join("bin/python"))
}

#[test]
fn the_official_openai_client_works_against_serve_openai() {
    let Some(python) = client_python() else {
        panic!("the openai client venv is not set up; run `python3 scripts/setup.py --all`");
    };
    let dir = std::env::temp_dir().join(format!("tenbits-openai-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "test-key-123\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        dir.join("serve.toml"),
        format!(
            "[answerer]\nmodel = \"smollm2-135m\"\nthreads = 2\n\n[transport]\nkind = \"tcp\"\nlisten = \"127.0.0.1:{port}\"\n\n[security]\ntoken_file = \"{}\"\n",
            dir.join("token").display()
        ),
    )
    .unwrap();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tenbits"))
        .args(["serve", "--openai", "--config"])
        .arg(dir.join("serve.toml"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the "listening" line.
    let mut lines = BufReader::new(server.stderr.take().unwrap()).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("http://"));
    assert!(ready, "the server did not start");
    let out = Command::new(python)
        .arg("scripts/test_openai_client.py")
        .arg(format!("http://127.0.0.1:{port}/v1"))
        .arg("smollm2-135m")
        .arg("test-key-123")
        .output()
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
