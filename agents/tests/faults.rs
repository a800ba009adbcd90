//! The answerer under hostile peers and faults (fake models, loopback):
//! each case is cut off by a limit or timeout while a well-behaved session
//! on the same server still gets its bits.

mod common;
use common::{config, root, runtime, tasks};

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{ask, serve, AgentError, DeploymentConfig, Endpoint, RemoteAnswerer};
use tenbits_messaging::{
    encode_frame, handshake, ErrorCode, Frame, Hello, Role, TaskKind, View, WireError,
    MAX_FRAME_BYTES,
};
use tenbits_qa::{AnswerRequest, Answerer, Problem, Task, PROMPT_VERSION};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The answerer on an ephemeral loopback port with short timeouts.
fn answerer_config() -> DeploymentConfig {
    let mut cfg = config("answerer.toml");
    cfg.transport.listen = "127.0.0.1:0".into();
    cfg.security.token_env = None;
    cfg.limits.handshake_timeout_ms = 500;
    cfg.limits.idle_timeout_ms = 800;
    cfg.limits.frame_timeout_ms = 400;
    cfg
}

fn asker_config(addr: std::net::SocketAddr) -> DeploymentConfig {
    let mut cfg = config("asker.toml");
    cfg.transport.connect = addr.to_string();
    cfg.security.token_env = None;
    cfg
}

fn hello() -> Hello {
    Hello::new(Role::Asker, [1; 16], None, PROMPT_VERSION, "raw")
}

fn questions(problem: &str) -> Frame {
    Frame::Questions {
        session: 1,
        first_question_id: 0,
        problem: problem.into(),
        draft: Some("Answer: 720".into()),
        questions: vec!["Is the answer 72?".into(), "Is the answer 720?".into()],
        view: View {
            sees_answer: true,
            verdict: false,
            task: TaskKind::ShortAnswer,
        },
    }
}

/// A session that must keep working beside the abuse.
async fn good_session(addr: std::net::SocketAddr) {
    let mut conn = tenbits_messaging::connect(addr).await.unwrap();
    handshake(&mut conn, &hello()).await.unwrap();
    conn.send(&questions("What is 9 x 8?")).await.unwrap();
    let reply = conn.recv().await.unwrap().unwrap();
    assert_eq!(reply, Frame::packed_bits(0, &[true, false]));
    conn.send(&Frame::Bye).await.unwrap();
}

/// Reads what the server sends until it closes; the first frame if any.
async fn until_closed(raw: &mut tokio::net::TcpStream, limit: Duration) -> (Vec<u8>, Duration) {
    let start = Instant::now();
    let mut got = Vec::new();
    let _ = tokio::time::timeout(limit, raw.read_to_end(&mut got)).await;
    (got, start.elapsed())
}

#[test]
fn stalled_silent_and_garbage_peers_are_cut_off_while_others_go_on() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        // Silent from the start: the handshake limit closes it.
        let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();
        // Half a hello, then nothing.
        let mut half = tokio::net::TcpStream::connect(addr).await.unwrap();
        let hello_bytes = encode_frame(&Frame::Hello(hello()), MAX_FRAME_BYTES).unwrap();
        half.write_all(&hello_bytes[..hello_bytes.len() / 2])
            .await
            .unwrap();
        // Garbage, an oversized length, a wrong wire version.
        let mut garbage = tokio::net::TcpStream::connect(addr).await.unwrap();
        garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        let mut oversized = tokio::net::TcpStream::connect(addr).await.unwrap();
        oversized
            .write_all(&(u32::MAX - 1).to_le_bytes())
            .await
            .unwrap();
        let mut versioned = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut wrong = hello_bytes.clone();
        wrong[5] = 99;
        versioned.write_all(&wrong).await.unwrap();

        good_session(addr).await;

        for (name, raw) in [
            ("silent", &mut silent),
            ("half", &mut half),
            ("garbage", &mut garbage),
            ("oversized", &mut oversized),
            ("versioned", &mut versioned),
        ] {
            let (got, took) = until_closed(raw, Duration::from_secs(10)).await;
            assert!(took < Duration::from_secs(5), "{name}: open for {took:?}");
            // Every one of them is told why before the close.
            assert!(got.len() > 6, "{name}: no error frame");
            let len = u32::from_le_bytes(got[..4].try_into().unwrap()) as usize;
            let frames = tenbits_messaging::decode_frame(&got[..4 + len], MAX_FRAME_BYTES);
            // The first frame the server sends is its Hello (hellos cross),
            // unless the handshake never started.
            match frames.unwrap() {
                Frame::Error { .. } | Frame::Hello(_) => {}
                other => panic!("{name}: {other:?}"),
            }
        }
        good_session(addr).await;
    });
    let stats = rt.block_on(server.shutdown());
    assert!(stats.timeouts >= 2, "{stats:?}");
    assert_eq!(stats.sessions_completed, 2, "{stats:?}");
}

#[test]
fn idle_sessions_end_after_the_idle_timeout() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut conn = tenbits_messaging::connect(addr).await.unwrap();
        handshake(&mut conn, &hello()).await.unwrap();
        let start = Instant::now();
        // Say nothing: the server says why and closes.
        match conn.recv().await {
            Ok(Some(Frame::Error { code, .. })) => assert_eq!(code, ErrorCode::TIMED_OUT),
            other => panic!("{other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(700));
        assert!(matches!(conn.recv().await, Ok(None) | Err(_)));
    });
    rt.block_on(server.shutdown());
}

#[test]
fn a_flood_of_connections_meets_the_cap_and_the_server_recovers() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let mut cfg = answerer_config();
    cfg.limits.max_connections = 8;
    cfg.limits.handshake_timeout_ms = 60_000;
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut idle = Vec::new();
        for _ in 0..8 {
            idle.push(tokio::net::TcpStream::connect(addr).await.unwrap());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // The ninth is told the server is busy.
        let mut conn = tenbits_messaging::connect(addr).await.unwrap();
        match conn.recv().await {
            Ok(Some(Frame::Error { code, message })) => {
                assert_eq!(code, ErrorCode::BUSY);
                assert!(message.contains("max_connections"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        drop(idle);
        tokio::time::sleep(Duration::from_millis(200)).await;
        good_session(addr).await;
    });
    let stats = rt.block_on(server.shutdown());
    assert!(stats.refused_busy >= 1, "{stats:?}");
}

#[test]
fn a_problem_too_long_for_the_context_is_refused_before_the_model() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let mut cfg = answerer_config();
    cfg.limits.max_prompt_tokens = 2_000;
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();
    let calls_before = world.counters.large_p_yes_calls.load(Relaxed);
    rt.block_on(async {
        let mut conn = tenbits_messaging::connect(addr).await.unwrap();
        handshake(&mut conn, &hello()).await.unwrap();
        conn.send(&questions(&"What is 9 x 8? ".repeat(60_000)))
            .await
            .unwrap();
        match conn.recv().await.unwrap() {
            Some(Frame::Error { code, message }) => {
                assert_eq!(code, ErrorCode::TOO_LONG);
                assert!(message.contains("2000"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        // The session goes on.
        conn.send(&questions("What is 9 x 8?")).await.unwrap();
        let reply = conn.recv().await.unwrap().unwrap();
        assert_eq!(reply, Frame::packed_bits(0, &[true, false]));
    });
    assert_eq!(
        world.counters.large_p_yes_calls.load(Relaxed),
        calls_before + 1,
        "only the short request reached the model"
    );
    let stats = rt.block_on(server.shutdown());
    assert_eq!(stats.too_long, 1);
}

#[test]
fn an_asker_that_leaves_mid_batch_costs_no_one_else() {
    let tasks = tasks();
    let mut world = FakeWorld::new(&tasks);
    world
        .large_slow_on
        .push(("What is 9 x 8?".into(), Duration::from_millis(300)));
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut leaver = tenbits_messaging::connect(addr).await.unwrap();
        handshake(&mut leaver, &hello()).await.unwrap();
        leaver.send(&questions("What is 9 x 8?")).await.unwrap();
        drop(leaver);
        good_session(addr).await;
    });
    let stats = rt.block_on(server.shutdown());
    assert_eq!((stats.sessions_completed, stats.sessions_dropped), (1, 1));
}

#[test]
fn shutdown_is_bounded_with_a_batch_in_flight() {
    let tasks = tasks();
    let mut world = FakeWorld::new(&tasks);
    world
        .large_slow_on
        .push(("What is 9 x 8?".into(), Duration::from_secs(20)));
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    let start = rt.block_on(async {
        let mut conn = tenbits_messaging::connect(addr).await.unwrap();
        handshake(&mut conn, &hello()).await.unwrap();
        conn.send(&questions("What is 9 x 8?")).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let start = Instant::now();
        server.shutdown_within(Duration::from_millis(300)).await;
        start
    });
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    rt.shutdown_timeout(Duration::from_millis(100));
}

#[test]
fn a_token_is_required_when_configured() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let rt = runtime();
    let dir = std::env::temp_dir().join(format!("tenbits-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("token");
    std::fs::write(&token_file, "correct horse battery staple\n").unwrap();
    let mut cfg = answerer_config();
    cfg.security.token_file = Some(token_file.clone());
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();

    let mut asker = asker_config(addr);
    let err = ask(&asker, world.factory(), &tasks[0].problem).unwrap_err();
    assert!(err.to_string().contains("requires a token"), "{err}");
    std::fs::write(dir.join("wrong"), "correct horse battery stable").unwrap();
    asker.security.token_file = Some(dir.join("wrong"));
    let err = ask(&asker, world.factory(), &tasks[0].problem).unwrap_err();
    assert!(err.to_string().contains("wrong token"), "{err}");
    assert!(
        !err.to_string().contains("stable"),
        "the token never prints"
    );
    asker.security.token_file = Some(token_file);
    let report = ask(&asker, world.factory(), &tasks[0].problem).unwrap();
    assert_eq!(report.transcript.answer(), "Answer: 42");
    let stats = rt.block_on(server.shutdown());
    assert_eq!(stats.handshake_failures, 2);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn listening_beyond_loopback_without_a_token_is_refused() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let mut cfg = answerer_config();
    cfg.transport.listen = "0.0.0.0:0".into();
    let err = match rt.block_on(serve(&cfg, world.factory())) {
        Err(e) => e,
        Ok(_) => panic!("served beyond loopback without a token"),
    };
    assert!(matches!(err, AgentError::Config(_)), "{err}");
    assert!(
        err.to_string().contains("allow_remote_without_token"),
        "{err}"
    );
    cfg.security.allow_remote_without_token = true;
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    rt.block_on(server.shutdown());
}

fn tls(name: &str) -> PathBuf {
    root().join("tests/fixtures/tls").join(name)
}

#[test]
fn sessions_run_over_tls_and_plain_meets_tls_with_a_reason() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let rt = runtime();
    let mut cfg = answerer_config();
    cfg.security.tls_cert = Some(tls("server.pem"));
    cfg.security.tls_key = Some(tls("server.key"));
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();

    let mut asker = asker_config(addr);
    asker.security.tls_ca = Some(tls("ca.pem"));
    asker.security.tls_server_name = Some("localhost".into());
    let report = ask(&asker, world.factory(), &tasks[0].problem).unwrap();
    assert_eq!(report.transcript.answer(), "Answer: 42");

    // A plain asker at the TLS port.
    asker.security.tls_ca = None;
    let err = ask(&asker, world.factory(), &tasks[0].problem).unwrap_err();
    assert!(err.to_string().contains("TLS"), "{err}");
    rt.block_on(server.shutdown());

    // A TLS asker at a plain port.
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let mut asker = asker_config(server.local_addr().unwrap());
    asker.security.tls_ca = Some(tls("ca.pem"));
    let err = ask(&asker, world.factory(), &tasks[0].problem).unwrap_err();
    assert!(err.to_string().contains("did not speak TLS"), "{err}");
    rt.block_on(server.shutdown());
}

fn request(problem: &str, question: &str) -> AnswerRequest {
    AnswerRequest {
        problem: Problem::new(Task::ShortAnswer, problem),
        current_answer: "Answer: 420".into(),
        questions: vec![question.into()],
        sees_answer: false,
        verdict: false,
    }
}

#[test]
fn an_answerer_restarted_mid_session_is_reconnected_with_the_same_answers() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let rt = runtime();
    let cfg = answerer_config();
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();
    let mut fixed = cfg.clone();
    fixed.transport.listen = addr.to_string();
    let problem = &tasks[0].problem;
    let questions = [
        "Is the answer 42?",
        "Is the answer 420?",
        "Is the answer 421?",
    ];

    let uninterrupted: Vec<bool> = {
        let mut remote = rt
            .block_on(RemoteAnswerer::open(
                &Endpoint::tcp(addr.to_string()),
                [1; 16],
                1,
                None,
                None,
            ))
            .unwrap();
        questions
            .iter()
            .map(|q| remote.answer(&request(problem, q)).unwrap()[0].bit)
            .collect()
    };

    let endpoint = Endpoint::tcp(addr.to_string());
    let mut remote = rt
        .block_on(RemoteAnswerer::open(&endpoint, [1; 16], 2, None, None))
        .unwrap()
        .with_reconnect(8);
    let mut without = rt
        .block_on(RemoteAnswerer::open(&endpoint, [1; 16], 3, None, None))
        .unwrap();
    let mut bits = vec![remote.answer(&request(problem, questions[0])).unwrap()[0].bit];
    assert!(without.answer(&request(problem, questions[0])).is_ok());
    // Kill the answerer; a new one comes up on the same port a little later.
    rt.block_on(server.shutdown_within(Duration::from_millis(50)));
    let restarted = {
        let factory = world.factory();
        let fixed = fixed.clone();
        rt.spawn(async move {
            tokio::time::sleep(Duration::from_millis(300)).await;
            serve(&fixed, factory).await.unwrap()
        })
    };
    for q in &questions[1..] {
        bits.push(remote.answer(&request(problem, q)).unwrap()[0].bit);
    }
    assert_eq!(bits, uninterrupted);
    assert_eq!(remote.reconnects(), 1);
    // Without reconnect, the session fails with the connection's error.
    let err = without.answer(&request(problem, questions[1])).unwrap_err();
    assert!(!err.to_string().is_empty());
    let server = rt.block_on(restarted).unwrap();
    rt.block_on(server.shutdown());
    let _ = WireError::Closed;
}

/// CPU seconds (user + system) a process has used, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

#[test]
fn out_of_file_descriptors_the_server_backs_off_and_recovers() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let tasks = tasks();
    // The fake answerer with 40 descriptors: a flood of connections makes
    // accept fail with EMFILE.
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("ulimit -n 40 && exec \"$0\" \"$1\"")
        .arg(env!("CARGO_BIN_EXE_tenbits-fake-answerer"))
        .arg(root().join("config/answerer.toml"))
        .env("TENBITS_TRANSPORT__LISTEN", "127.0.0.1:0")
        .env(
            "TENBITS_ANSWERER__TASKS",
            root().join("config/tasks/arith.jsonl"),
        )
        .env("TENBITS_LOG", "error")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr: std::net::SocketAddr = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .parse()
        .unwrap();
    let flood: Vec<_> = (0..100)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let before = cpu_seconds(child.id());
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_seconds(child.id()) - before;
    // A busy accept loop would take a whole core: about 2 s of the 2 s.
    assert!(spent < 0.5, "{spent} CPU seconds while out of descriptors");
    drop(flood);
    std::thread::sleep(Duration::from_millis(1500));
    let world = FakeWorld::new(&tasks);
    let mut cfg = config("asker.toml");
    cfg.transport.connect = addr.to_string();
    cfg.security.token_env = None;
    let report = ask(&cfg, world.factory(), &tasks[0].problem).unwrap();
    assert_eq!(report.transcript.answer(), "Answer: 42");
    drop(child.stdin.take());
    let mut summary = String::new();
    stdout.read_line(&mut summary).unwrap();
    assert!(child.wait().unwrap().success());
}
