//! Deployments with fake models: sessions over TCP (one process and two),
//! batching, failing sessions, configuration, handshakes.

mod common;
use common::{config, expected, root, runtime, tasks};

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tenbits_agents::config::{SettingName, TaskSpec, TransportKind};
use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{
    ask, serve, simulate, simulate_with, AgentError, DeploymentConfig, RemoteAnswerer,
    SessionOutcome, SessionSpec,
};
use tenbits_messaging::{handshake, ErrorCode, Frame, Hello, Role, TaskKind, View};
use tenbits_qa::{grade, AnswerRequest, ChatModel, Knowledge, Problem, Task, PROMPT_VERSION};

/// The answerer config on an ephemeral loopback port.
fn answerer_config() -> DeploymentConfig {
    let mut cfg = config("answerer.toml");
    cfg.transport.listen = "127.0.0.1:0".into();
    cfg
}

#[test]
fn qa_session_over_tcp_in_one_process() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let rt = runtime();
    let server_cfg = answerer_config();
    let server = rt.block_on(serve(&server_cfg, world.factory())).unwrap();
    let addr = server.local_addr().unwrap();

    let mut cfg = config("asker.toml");
    cfg.transport.connect = addr.to_string();
    let report = ask(&cfg, world.factory(), &tasks[0].problem).unwrap();
    let t = &report.transcript;
    assert_eq!(*t, expected(&world, &cfg, &tasks[0]));
    assert_eq!(t.draft, "Answer: 420");
    assert_eq!(t.answer(), "Answer: 42");
    assert_eq!(grade(t.task, t.answer(), "42"), Some(true));
    assert_eq!(t.answerer, world.model(&cfg.answerer.model).model_id());
    // Ten questions, ten bits on the wire; bytes include handshake and Bye.
    assert_eq!(report.wire.payload_bits_received, 10);
    assert_eq!(report.latencies.len(), 1);
    assert!(report.wire.bytes_sent > 0 && report.wire.bytes_received > 0);
    let shown = report.to_string();
    assert!(shown.contains("yes Is the answer 42?"), "{shown}");

    let stats = rt.block_on(server.shutdown());
    assert_eq!((stats.connections, stats.sessions_completed), (1, 1));
    assert_eq!((stats.answerer.requests, stats.answerer.questions), (1, 10));
    assert_eq!(stats.wire.payload_bits_sent, 10);
}

#[test]
fn qa_session_over_tcp_between_two_processes() {
    let tasks = tasks();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenbits-fake-answerer"))
        .arg("config/answerer.toml")
        .current_dir(root())
        .env("TENBITS_TRANSPORT__LISTEN", "127.0.0.1:0")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .expect(&line)
        .to_string();

    let world = FakeWorld::new(&tasks);
    let mut cfg = config("asker.toml");
    cfg.transport.connect = addr;
    for task in &tasks[..3] {
        let report = ask(&cfg, world.factory(), &task.problem).unwrap();
        assert_eq!(report.transcript, expected(&world, &cfg, task));
        let gold = task.answer.as_deref().unwrap();
        assert_eq!(
            grade(Task::ShortAnswer, report.transcript.answer(), gold),
            Some(true)
        );
        assert_eq!(report.wire.payload_bits_received, 10);
    }

    drop(child.stdin.take()); // the helper shuts down on EOF
    let mut summary = String::new();
    stdout.read_line(&mut summary).unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        summary.contains("served 3 connections (3 completed)"),
        "{summary}"
    );
}

#[test]
fn ask_in_one_process_over_channels() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let mut cfg = config("local.toml");
    assert_eq!(cfg.transport.kind, TransportKind::Channel);
    cfg.protocol.iterative = true;
    cfg.protocol.rounds = 2;
    // Own solution: the large fake solves the problem right.
    let report = ask(&cfg, world.factory(), &tasks[1].problem).unwrap();
    let t = &report.transcript;
    let verdicts: Vec<bool> = t.verdicts.iter().map(|v| v.bit).collect();
    assert_eq!(verdicts, [false, true]);
    assert_eq!((t.rounds.len(), t.answer()), (1, "Answer: 72"));
    assert_eq!(report.wire.payload_bits_received, 12);
    assert_eq!(t.raw_bits, 12);

    // BLC needs no answerer; QA+ runs with both models in this process.
    cfg.protocol.setting = SettingName::Blc;
    let t = ask(&cfg, world.factory(), &tasks[1].problem)
        .unwrap()
        .transcript;
    assert_eq!(t.answer(), "Answer: 720");
    cfg.protocol.setting = SettingName::QaPlus;
    let t = ask(&cfg, world.factory(), &tasks[1].problem)
        .unwrap()
        .transcript;
    assert_eq!(t.questioner, world.model(&cfg.answerer.model).model_id());
}

fn swarm_config(askers: usize) -> DeploymentConfig {
    let mut cfg = config("swarm.toml");
    cfg.swarm.askers = askers;
    cfg
}

fn sessions(tasks: &[TaskSpec]) -> Vec<SessionSpec> {
    tasks
        .iter()
        .map(|t| SessionSpec {
            problem: Problem::new(Task::ShortAnswer, &t.problem),
            gold: t.answer.clone(),
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_askers_share_batches() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let mut cfg = swarm_config(8);
    cfg.answerer.max_batch = 80; // all eight requests
    cfg.answerer.max_wait_ms = 2000;
    cfg.protocol.coded = false;
    let tasks = &tasks[..8];
    let report = simulate_with(&cfg, world.factory(), tasks, sessions(tasks), |_| {})
        .await
        .unwrap();
    assert_eq!((report.done, report.failed.len()), (8, 0), "{report}");
    assert_eq!(
        (report.graded, report.draft_correct, report.correct),
        (8, 0, 8)
    );
    let server = report.server.as_ref().unwrap();
    let a = &server.answerer;
    assert_eq!((a.requests, a.questions), (8, 80));
    let calls = world.counters.large_p_yes_calls.load(Relaxed) as u64;
    assert_eq!(calls, a.batches);
    assert!(a.batches < a.requests, "{a}");
    assert!(a.largest_batch > 10, "{a}");
    assert_eq!(world.counters.large_p_yes_conversations.load(Relaxed), 80);
    for o in &report.outcomes {
        let SessionOutcome::Done(s) = o else {
            panic!("{o}")
        };
        let (bits, bytes) = s.bits_vs_bytes();
        assert_eq!(bits, 10);
        assert!(bytes > 10, "{bytes}");
        assert_eq!(s.wire.payload_bits_received, 10);
    }
    assert_eq!(report.requests, 8);
    assert!(report.latency_p50 <= report.latency_p99);
    assert!(report.to_string().contains("final 100.0%"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_sessions_end_alone() {
    let tasks = tasks();
    let mut world = FakeWorld::new(&tasks);
    world.fail_on.push(tasks[2].problem.clone());
    world.panic_on.push(tasks[4].problem.clone());
    world
        .slow_on
        .push((tasks[6].problem.clone(), Duration::from_millis(300)));
    let cfg = swarm_config(8); // one shared small model for all eight
    let tasks = &tasks[..8];
    let mut watched = None;
    let report = simulate_with(&cfg, world.factory(), tasks, sessions(tasks), |swarm| {
        watched = Some(swarm.ended());
        swarm.cancel(6)
    })
    .await
    .unwrap();
    assert_eq!((report.done, report.failed.len()), (5, 3), "{report}");
    // What a progress bar watches: every session, failed ones too, once.
    assert_eq!(*watched.unwrap().borrow(), 8);
    let error = |i: usize| match &report.outcomes[i] {
        SessionOutcome::Failed { error, .. } => error.clone(),
        o => panic!("{o}"),
    };
    assert!(error(2).contains("fake model failed"), "{}", error(2));
    assert!(error(4).contains("panicked"), "{}", error(4));
    assert!(error(6).contains("cancelled"), "{}", error(6));
    for i in [0, 1, 3, 5, 7] {
        let SessionOutcome::Done(s) = &report.outcomes[i] else {
            panic!()
        };
        assert_eq!(s.transcript, expected(&world, &cfg, &tasks[i]));
        assert_eq!(s.correct, Some(true));
    }
    assert!(report.to_string().contains("failed session 4"), "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulate_runs_the_task_file_over_channels() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let mut cfg = swarm_config(4);
    cfg.transport.kind = TransportKind::Channel;
    cfg.swarm.repeat = 2;
    let report = simulate(&cfg, world.factory()).await.unwrap();
    assert_eq!(
        (report.sessions, report.done, report.correct),
        (40, 40, 40),
        "{report}"
    );
    assert!(report.payload_bits <= report.answer_bits + 8 * 40);
    assert!(report.questions_per_second > 0.0);

    // BLC: no answerer, no wire; the small model confirms its own mistakes.
    cfg.protocol.setting = SettingName::Blc;
    cfg.swarm.repeat = 1;
    let report = simulate(&cfg, world.factory()).await.unwrap();
    assert_eq!(
        (report.done, report.correct, report.wire_bytes),
        (20, 0, 0),
        "{report}"
    );
    assert!(report.server.is_none());
}

#[test]
fn configs_load_with_environment_overrides() {
    let env: HashMap<String, String> = [
        ("TENBITS_ANSWERER__MODEL", "smollm2-135m"),
        ("TENBITS_SWARM__ASKERS", "8"),
        ("TENBITS_PROTOCOL__CODED", "false"),
        ("TENBITS_CACHE", "ignored: not a section key"),
        ("OTHER_ANSWERER__MODEL", "ignored: other prefix"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    for name in ["local.toml", "answerer.toml", "asker.toml", "swarm.toml"] {
        let path = root().join("config").join(name);
        let cfg = DeploymentConfig::load_with_env(&path, Some(HashMap::new())).unwrap();
        // The swarm benchmark's answerer is the 0.5B; the others use the 1.5B.
        let large = if name == "swarm.toml" {
            "qwen2.5-coder-0.5b"
        } else {
            "qwen2.5-coder-1.5b"
        };
        assert_eq!(cfg.answerer.model, large, "{name}");
        assert_eq!(cfg.asker.model, "smollm2-135m", "{name}");
        let cfg = DeploymentConfig::load_with_env(&path, Some(env.clone())).unwrap();
        assert_eq!(cfg.answerer.model, "smollm2-135m", "{name}");
        assert_eq!((cfg.swarm.askers, cfg.protocol.coded), (8, false), "{name}");
    }
    let local = config("local.toml");
    assert_eq!(local.answerer.knowledge, Knowledge::OwnSolution);
    let swarm = config("swarm.toml");
    assert_eq!(
        (swarm.transport.kind, swarm.protocol.setting),
        (TransportKind::Tcp, SettingName::Qa)
    );
    assert_eq!(
        (swarm.answerer.max_batch, swarm.protocol.questions),
        (64, 10)
    );
    let asker = config("asker.toml");
    assert_eq!(asker.transport.connect, "127.0.0.1:7410");
    assert_eq!(config("answerer.toml").transport.listen, "127.0.0.1:7410");
    let tasks = tasks();
    assert_eq!(tasks.len(), 20);
    assert!(tasks.iter().all(|t| t.answer.is_some()));

    let bad = DeploymentConfig::from_toml("[answerer]\nmax_batch = 0\n");
    assert!(matches!(bad, Err(AgentError::Config(_))));
    for threshold in ["0.0", "1.0", "1.5"] {
        let toml = format!("[answerer]\nyes_threshold = {threshold}\n");
        let bad = DeploymentConfig::from_toml(&toml);
        assert!(matches!(bad, Err(AgentError::Config(_))), "{threshold}");
    }
    let calibrated = DeploymentConfig::from_toml("[answerer]\nyes_threshold = 0.7\n").unwrap();
    assert_eq!(calibrated.qa_config().view.yes_threshold, 0.7);
    let typo = DeploymentConfig::from_toml("[asker]\nmodle = \"x\"\n");
    assert!(matches!(typo, Err(AgentError::Config(_))), "{typo:?}");
    let bad = DeploymentConfig::from_toml("[protocol]\nsetting = \"qa++\"\n");
    assert!(bad.is_err());
}

#[test]
fn handshake_rejects_a_wrong_model() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let mut cfg = config("asker.toml");
    cfg.transport.connect = server.local_addr().unwrap().to_string();

    cfg.answerer.id = Some("00112233445566778899aabbccddeeff".into());
    let err = ask(&cfg, world.factory(), "What is 9 x 8?").unwrap_err();
    assert!(err.to_string().contains("model"), "{err}");
    assert!(matches!(err, AgentError::Wire(_)), "{err:?}");

    let right = world.model(&cfg.answerer.model).model_id();
    let hex: String = right.iter().map(|b| format!("{b:02x}")).collect();
    cfg.answerer.id = Some(hex);
    assert!(ask(&cfg, world.factory(), "What is 9 x 8?").is_ok());

    cfg.answerer.id = None;
    cfg.answerer.model = "some-other-model".into();
    let err = ask(&cfg, world.factory(), "What is 9 x 8?").unwrap_err();
    assert!(matches!(err, AgentError::Handshake(_)), "{err:?}");

    let stats = rt.block_on(server.shutdown());
    assert_eq!((stats.connections, stats.handshake_failures), (3, 1));
}

#[test]
fn bad_requests_get_error_frames() {
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let server = rt
        .block_on(serve(&answerer_config(), world.factory()))
        .unwrap();
    let addr = server.local_addr().unwrap();
    rt.block_on(async {
        let mut conn = tenbits_messaging::connect(addr).await.unwrap();
        let hello = Hello::new(Role::Asker, [1; 16], None, PROMPT_VERSION, "raw");
        let theirs = handshake(&mut conn, &hello).await.unwrap();
        assert_eq!(theirs.name, answerer_config().answerer.model);
        let view = |sees_answer, verdict| View {
            sees_answer,
            verdict,
            task: TaskKind::ShortAnswer,
        };
        let questions = |view: View, draft: Option<&str>| Frame::Questions {
            session: 1,
            first_question_id: 5,
            problem: "What is 9 x 8?".into(),
            draft: draft.map(String::from),
            questions: vec!["Is the answer 72?".into(), "Is the answer 720?".into()],
            view,
        };
        for bad in [
            questions(view(false, true), Some("Answer: 720")),
            questions(view(true, false), None),
            questions(view(false, false), Some("Answer: 720")),
            Frame::packed_bits(0, &[true]),
        ] {
            conn.send(&bad).await.unwrap();
            let Some(Frame::Error { code, .. }) = conn.recv().await.unwrap() else {
                panic!()
            };
            assert!(code == ErrorCode::BAD_REQUEST || code == ErrorCode::UNEXPECTED_FRAME);
        }
        conn.send(&questions(view(true, false), Some("Answer: 720")))
            .await
            .unwrap();
        let reply = conn.recv().await.unwrap().unwrap();
        assert_eq!(reply, Frame::packed_bits(5, &[true, false]));
        conn.send(&Frame::Bye).await.unwrap();
    });
    let stats = rt.block_on(server.shutdown());
    assert_eq!(
        (stats.bad_requests, stats.requests, stats.sessions_completed),
        (4, 1, 1)
    );
}

/// A remote answerer over an in-process channel to `server`.
fn connect_local(
    rt: &tokio::runtime::Runtime,
    server: &tenbits_agents::ServerHandle,
) -> RemoteAnswerer {
    let connection = server.connect_local();
    rt.block_on(RemoteAnswerer::connect(connection, [1; 16], 9, None, None))
        .unwrap()
}

#[test]
fn remote_answerer_is_an_answerer() {
    // The seam used directly, over an in-process channel.
    let world = FakeWorld::new(&tasks());
    let rt = runtime();
    let mut cfg = config("local.toml");
    cfg.answerer.knowledge = Knowledge::ReferenceElseOwn;
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let mut remote = connect_local(&rt, &server);
    let request = AnswerRequest {
        problem: Problem::new(Task::ShortAnswer, "What is 3 cubed?"),
        current_answer: "Answer: 270".into(),
        questions: vec!["Is the answer 27?".into()],
        sees_answer: false,
        verdict: false,
    };
    // No reference for this problem here (no task file): own solution.
    let answers = tenbits_qa::Answerer::answer(&mut remote, &request).unwrap();
    assert!(answers[0].bit);
    assert_eq!(remote.close().unwrap().payload_bits_received, 1);
    let stats = rt.block_on(server.shutdown());
    assert_eq!(stats.answerer.solutions, 1);

    // A strict reference view refuses the problem instead of guessing.
    cfg.answerer.knowledge = Knowledge::Reference;
    let server = rt.block_on(serve(&cfg, world.factory())).unwrap();
    let mut remote = connect_local(&rt, &server);
    let err = tenbits_qa::Answerer::answer(&mut remote, &request).unwrap_err();
    assert!(
        err.to_string().contains("needs a reference answer"),
        "{err}"
    );
    rt.block_on(server.shutdown());
}
