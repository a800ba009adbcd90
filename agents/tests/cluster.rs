//! The answerer cluster across OS processes on loopback: answerer nodes
//! are `tenbits-fake-answerer` processes with `[cluster] enabled`, and
//! this process routes to them (`answerer.backend = "cluster"`).

mod common;
use common::{config, expected, root, runtime, tasks};

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tenbits_agents::config::{Backend, TaskSpec, TransportKind};
use tenbits_agents::testing::FakeWorld;
use tenbits_agents::{
    cluster_status, simulate_with, DeploymentConfig, SessionOutcome, SessionSpec,
};
use tenbits_qa::{Problem, Task};

const COOKIE: &str = "cluster-test-cookie";

/// ractor's process groups are one registry per process, so two tests'
/// nodes in this process would see each other's replicas: they take
/// turns, each starting once the last one's replicas have left.
fn one_cluster_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let guard = TURN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..600 {
        if ractor::pg::which_groups().is_empty() {
            return guard;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the last test's replicas are still known after 30 s");
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// An answerer node process; killed when dropped.
struct Node {
    child: Child,
    addr: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tenbits-fake-answerer` as node `name`, joined to `seeds`, each
/// question taking `delay_ms` to answer; returns once it has joined.
fn start_node(name: &str, seeds: &[&str], cookie: &str, delay_ms: u64) -> Node {
    start_node_with(name, seeds, cookie, delay_ms, &[])
}

/// [`start_node`] with more `TENBITS_*` settings.
fn start_node_with(
    name: &str,
    seeds: &[&str],
    cookie: &str,
    delay_ms: u64,
    env: &[(&str, String)],
) -> Node {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(env!("CARGO_BIN_EXE_tenbits-fake-answerer"))
        .arg("config/cluster-answerer.toml")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .current_dir(root())
        .env("TENBITS_CLUSTER__NODE_NAME", name)
        .env("TENBITS_CLUSTER__LISTEN", &addr)
        .env("TENBITS_CLUSTER__SEEDS", seeds.join(","))
        .env("TENBITS_CLUSTER_COOKIE", cookie)
        .env("TENBITS_FAKE_ANSWER_DELAY_MS", delay_ms.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("cluster node {name}"), "{line}");
    Node { child, addr }
}

/// A cookie file for this process's side.
fn cookie_file(cookie: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "tenbits-cluster-cookie-{}-{}",
        std::process::id(),
        cookie.len()
    ));
    std::fs::write(&path, cookie).unwrap();
    path
}

/// Askers in this process, routing to the cluster through `seeds`.
fn router_config(seeds: &[&str], cookie: &str) -> DeploymentConfig {
    let mut cfg = config("cluster-gateway.toml");
    assert_eq!(cfg.answerer.backend, Backend::Cluster);
    cfg.transport.kind = TransportKind::Channel;
    cfg.cluster.node_name = Some(format!("router-{}", free_port()));
    cfg.cluster.listen = format!("127.0.0.1:{}", free_port());
    cfg.cluster.seeds = seeds.iter().map(|s| s.to_string()).collect();
    cfg.cluster.cookie_file = Some(cookie_file(cookie));
    cfg.cluster.join_timeout_ms = 5_000;
    cfg.swarm.askers = 6;
    cfg
}

fn sessions(tasks: &[TaskSpec], repeat: usize) -> Vec<SessionSpec> {
    (0..repeat)
        .flat_map(|_| tasks)
        .map(|t| SessionSpec {
            problem: Problem::new(Task::ShortAnswer, t.problem.clone()),
            gold: t.answer.clone(),
        })
        .collect()
}

/// Every session finished, with the transcript an unbroken local run gives.
fn assert_all_correct(
    outcomes: &[SessionOutcome],
    world: &FakeWorld,
    cfg: &DeploymentConfig,
    tasks: &[TaskSpec],
) {
    for outcome in outcomes {
        let SessionOutcome::Done(s) = outcome else {
            panic!("a session failed: {outcome:?}");
        };
        let task = tasks
            .iter()
            .find(|t| t.problem == s.transcript.problem)
            .unwrap();
        assert_eq!(s.transcript, expected(world, cfg, task), "{}", task.problem);
    }
}

#[test]
fn three_nodes_share_sessions_and_a_killed_one_loses_none() {
    let _turn = one_cluster_at_a_time();
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let n1 = start_node("answerer-1", &[], COOKIE, 3);
    let n2 = start_node("answerer-2", &[&n1.addr], COOKIE, 3);
    let n3 = start_node("answerer-3", &[&n1.addr], COOKIE, 3);
    let cfg = router_config(&[&n1.addr, &n2.addr, &n3.addr], COOKIE);
    let rt = runtime();

    // Spread: 40 sessions, 6 at a time, over three replicas.
    let report = rt
        .block_on(simulate_with(
            &cfg,
            world.factory(),
            &tasks,
            sessions(&tasks, 2),
            |_| {},
        ))
        .unwrap();
    assert_eq!((report.done, report.failed.len()), (40, 0), "{report}");
    assert_all_correct(&report.outcomes, &world, &cfg, &tasks);
    // A status is a snapshot of a cluster that syncs as it goes: on a busy
    // machine a replica may not have been described yet, so look again.
    let mut status = Default::default();
    for _ in 0..3 {
        status = rt
            .block_on(cluster_status(
                &router_config(&[&n1.addr, &n2.addr, &n3.addr], COOKIE).cluster,
                &cfg.security,
                Duration::from_secs(3),
            ))
            .unwrap();
        if status.models.first().is_some_and(|m| m.1.len() == 3) {
            break;
        }
    }
    let status: tenbits_agents::ClusterStatus = status;
    assert_eq!(status.models.len(), 1, "{status}");
    let (model, replicas) = &status.models[0];
    assert_eq!(model, "qwen2.5-coder-1.5b");
    let names: Vec<&str> = replicas.iter().map(|r| r.node.as_str()).collect();
    assert_eq!(
        names,
        ["answerer-1", "answerer-2", "answerer-3"],
        "{status}"
    );
    let requests: Vec<u64> = replicas.iter().map(|r| r.requests).collect();
    assert_eq!(requests.iter().sum::<u64>(), 40, "{status}");
    assert!(requests.iter().all(|&r| r >= 5), "uneven spread: {status}");
    assert!(status.nodes.len() >= 3, "{status}");

    // Failover: kill node 2 while sessions run; its requests go elsewhere.
    let mut n2 = n2;
    let mut killer = None;
    let report = rt
        .block_on(simulate_with(
            &cfg,
            world.factory(),
            &tasks,
            sessions(&tasks, 3),
            |_| {
                // The sessions have started (and the router has joined).
                killer = Some(std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(150));
                    n2.child.kill().unwrap();
                    n2.child.wait().unwrap();
                }));
            },
        ))
        .unwrap();
    killer.unwrap().join().unwrap();
    assert_eq!((report.done, report.failed.len()), (60, 0), "{report}");
    assert_all_correct(&report.outcomes, &world, &cfg, &tasks);
    let router = report.server.unwrap().answerer;
    assert_eq!((router.requests, router.failed_requests), (60, 0));
    assert!(
        router.retried >= 1,
        "no request was in flight on the killed node: {router}"
    );
    drop(n3);
}

#[test]
fn a_node_with_the_wrong_cookie_is_refused() {
    let _turn = one_cluster_at_a_time();
    let n1 = start_node("answerer-1", &[], COOKIE, 0);
    // It tries to join node 1 and is turned away by the handshake.
    let intruder = start_node("intruder", &[&n1.addr], "not-the-cookie", 0);
    let rt = runtime();
    // A router with the wrong cookie finds no answerer (first: once this
    // process has met node 1 with the right cookie, its replica is known
    // here until that node session closes).
    let mut wrong = router_config(&[&n1.addr], "not-the-cookie");
    wrong.cluster.join_timeout_ms = 1_500;
    let err = rt
        .block_on(simulate_with(
            &wrong,
            FakeWorld::new(&tasks()).factory(),
            &tasks(),
            sessions(&tasks()[..1], 1),
            |_| {},
        ))
        .expect_err("a router with the wrong cookie got answers");
    assert!(
        err.to_string()
            .contains("no answerer of qwen2.5-coder-1.5b joined"),
        "{err}"
    );
    let cfg = router_config(&[&n1.addr, &intruder.addr], COOKIE);
    let status = rt
        .block_on(cluster_status(
            &cfg.cluster,
            &cfg.security,
            Duration::from_secs(2),
        ))
        .unwrap();
    let names: Vec<&str> = status.nodes.iter().map(|(n, _)| n.as_str()).collect();
    assert!(
        names.iter().any(|n| n.starts_with("answerer-1@")),
        "{status}"
    );
    assert!(!names.iter().any(|n| n.starts_with("intruder")), "{status}");
    assert_eq!(status.models.len(), 1, "{status}");
    assert_eq!(status.models[0].1.len(), 1, "{status}");

    drop(intruder);
}

#[test]
fn a_cluster_without_a_cookie_is_refused() {
    let mut cfg = config("cluster-answerer.toml");
    cfg.cluster.cookie_env = Some("TENBITS_TEST_NO_SUCH_COOKIE".into());
    let err = cfg.cluster.cookie().unwrap_err().to_string();
    assert!(err.contains("a cluster needs a shared cookie"), "{err}");
    cfg.cluster.listen = "127.0.0.1:0".into();
    cfg.cluster.cookie_file = Some(cookie_file("x"));
    let rt = runtime();
    let err = rt
        .block_on(tenbits_agents::ClusterNode::start(
            &cfg.cluster,
            &cfg.security,
        ))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("a port other than 0"), "{err}");
}

fn tls(name: &str) -> String {
    root()
        .join("tests/fixtures/tls")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

#[test]
fn nodes_link_over_tls_and_a_plain_router_is_refused() {
    let _turn = one_cluster_at_a_time();
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let env = [
        ("TENBITS_CLUSTER__TLS", "true".to_string()),
        ("TENBITS_SECURITY__TLS_CERT", tls("server.pem")),
        ("TENBITS_SECURITY__TLS_KEY", tls("server.key")),
    ];
    let n1 = start_node_with("answerer-1", &[], COOKIE, 0, &env);
    let n2 = start_node_with("answerer-2", &[], COOKIE, 0, &env);
    let rt = runtime();

    // A router speaking plain TCP to the TLS nodes finds no answerer
    // (first, before this process knows their replicas).
    let mut plain = router_config(&[&n1.addr, &n2.addr], COOKIE);
    plain.cluster.join_timeout_ms = 1_500;
    let err = rt
        .block_on(simulate_with(
            &plain,
            world.factory(),
            &tasks,
            sessions(&tasks[..1], 1),
            |_| {},
        ))
        .expect_err("a plain router got answers from TLS nodes");
    assert!(err.to_string().contains("no answerer"), "{err}");

    // TLS links to every seed (transitive links would be plain).
    let mut cfg = router_config(&[&n1.addr, &n2.addr], COOKIE);
    cfg.cluster.tls = true;
    cfg.security.tls_cert = Some(tls("server.pem").into());
    cfg.security.tls_key = Some(tls("server.key").into());
    cfg.security.tls_ca = Some(tls("ca.pem").into());
    let report = rt
        .block_on(simulate_with(
            &cfg,
            world.factory(),
            &tasks,
            sessions(&tasks, 1),
            |_| {},
        ))
        .unwrap();
    assert_eq!((report.done, report.failed.len()), (20, 0), "{report}");
    assert_all_correct(&report.outcomes, &world, &cfg, &tasks);
}
