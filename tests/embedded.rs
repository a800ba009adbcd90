//! The embedded runtime (`tenbits_agents::Runtime`): models loaded once
//! for many sessions, and an answerer behind an OpenAI-compatible endpoint
//! answering exactly as the same model loaded here.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tenbits_agents::config::{load_tasks, Backend, TransportKind};
use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{ask, DeploymentConfig, ModelFactory, Runtime};
use tenbits_inference::{Generator, OnnxModel, Registry, SessionSettings, TextTokenizer};
use tenbits_qa::Knowledge;

fn tasks() -> Vec<tenbits_agents::TaskSpec> {
    load_tasks(Path::new("config/tasks/arith.jsonl")).unwrap()
}

#[test]
fn one_runtime_runs_many_sessions_with_each_model_loaded_once() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let loads = Arc::new(AtomicUsize::new(0));
    let counted: ModelFactory = {
        let (inner, loads) = (world.factory(), loads.clone());
        Arc::new(move |name: &str, threads: usize| {
            loads.fetch_add(1, Relaxed);
            inner(name, threads)
        })
    };
    let mut cfg = DeploymentConfig::default();
    cfg.answerer.model = "fake-large".into();
    cfg.answerer.tasks = Some("config/tasks/arith.jsonl".into());
    cfg.transport.kind = TransportKind::Channel;
    let mut runtime = Runtime::builder()
        .config(cfg.clone())
        .factory(counted)
        .build()
        .unwrap();
    let mut reports = Vec::new();
    for t in &tasks[..3] {
        reports.push(runtime.ask(&t.problem).unwrap());
    }
    let stats = runtime.shutdown().expect("an in-process answerer");
    assert_eq!(
        loads.load(Relaxed),
        2,
        "the small and the large model, once each"
    );
    assert_eq!(stats.sessions_completed, 3);
    for (t, r) in tasks.iter().zip(&reports) {
        // The same as the one-shot `ask`, session for session.
        let once = ask(&cfg, world.factory(), &t.problem).unwrap();
        assert_eq!(r.transcript, once.transcript);
        assert_eq!(r.wire.payload_bits_received, 10);
        assert!(r.transcript.answer().contains(t.answer.as_deref().unwrap()));
    }
}

#[test]
fn an_openai_backend_gives_the_bits_of_the_same_model_loaded_here() {
    let tasks = tasks();
    let mut world = FakeWorld::new(&tasks);
    world.small_names = vec!["fake-small".into()];
    let (fake, onnx) = (world.factory(), tenbits_agents::onnx_factory());
    let factory: ModelFactory = Arc::new(move |name: &str, threads: usize| {
        if name == "fake-small" {
            fake(name, threads)
        } else {
            onnx(name, threads)
        }
    });
    // SmolLM2 behind `tenbits serve --openai`'s endpoint, in this process.
    let dir = Registry::embedded().set_up_dir("smollm2-135m").unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let generator =
        Generator::new(OnnxModel::load_for_rows(&dir, SessionSettings { threads: 2 }).unwrap())
            .unwrap();
    let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let server =
        tenbits_openai::server::OpenAiServer::new(generator, tokenizer, "smollm2-135m", None);
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(tenbits_openai::server::serve(
        server,
        listener,
        std::future::pending(),
    ));

    let mut cfg = DeploymentConfig::default();
    cfg.asker.model = "fake-small".into();
    cfg.answerer.model = "smollm2-135m".into();
    cfg.answerer.knowledge = Knowledge::Reference;
    cfg.answerer.tasks = Some("config/tasks/arith.jsonl".into());
    cfg.transport.kind = TransportKind::Channel;
    let mut remote_cfg = cfg.clone();
    remote_cfg.answerer.backend = Backend::Openai;
    remote_cfg.openai.base_url = format!("http://{addr}/v1");
    remote_cfg.openai.model = "smollm2-135m".into();
    remote_cfg.openai.api_key_env = None;
    remote_cfg.openai.timeout_ms = Duration::from_secs(60).as_millis() as u64;

    let mut here = Runtime::builder()
        .config(cfg)
        .factory(factory.clone())
        .build()
        .unwrap();
    let mut there = Runtime::builder()
        .config(remote_cfg)
        .factory(factory)
        .build()
        .unwrap();
    for t in &tasks[..2] {
        let (a, b) = (
            here.ask(&t.problem).unwrap(),
            there.ask(&t.problem).unwrap(),
        );
        let bits = |r: &tenbits_agents::AskReport| -> Vec<bool> {
            r.transcript
                .rounds
                .iter()
                .flat_map(|round| round.answers.iter().map(|x| x.bit))
                .collect()
        };
        assert_eq!(
            a.transcript.rounds[0].questions,
            b.transcript.rounds[0].questions
        );
        assert_eq!(bits(&a), bits(&b), "{}", t.problem);
        assert_eq!(b.answerer, "smollm2-135m");
    }
    here.shutdown();
    there.shutdown();
}
