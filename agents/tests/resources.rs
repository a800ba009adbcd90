//! Long `simulate` runs hold memory and file descriptors steady. Alone in
//! its binary, so no other test's sockets or allocations are counted.

mod common;
use common::{config, tasks};

use std::time::Duration;

use tenbits_agents::config::TransportKind;
use tenbits_agents::simulate;
use tenbits_agents::testing::FakeWorld;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Resident memory in bytes (`/proc/self/statm`, pages of 4 KiB).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm
        .split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 4096
}

/// Ten rounds of 400 sessions over TCP (a connection each, 32 at once):
/// after the first, descriptors come back to where they were and resident
/// memory grows by less than 16 MB over the other nine (4,000 sessions).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_simulate_runs_hold_memory_and_descriptors_steady() {
    let tasks = tasks();
    let world = FakeWorld::new(&tasks);
    let mut cfg = config("swarm.toml");
    assert_eq!(cfg.transport.kind, TransportKind::Tcp);
    cfg.swarm.askers = 32;
    cfg.swarm.repeat = 20;
    let round = || async {
        let report = simulate(&cfg, world.factory()).await.unwrap();
        assert_eq!((report.done, report.failed.len()), (400, 0), "{report}");
        // Closed sockets leave the table once their tasks end.
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    round().await;
    let (fds, rss) = (open_fds(), resident_bytes());
    for _ in 0..9 {
        round().await;
    }
    let (fds_after, rss_after) = (open_fds(), resident_bytes());
    assert!(fds_after <= fds, "descriptors grew: {fds} -> {fds_after}");
    assert!(
        rss_after < rss + 16_000_000,
        "resident memory grew: {} -> {} MB",
        rss / 1_000_000,
        rss_after / 1_000_000
    );
    eprintln!(
        "after 400 sessions: {fds} fds, {} MB; after 4,000: {fds_after} fds, {} MB",
        rss / 1_000_000,
        rss_after / 1_000_000
    );
}
