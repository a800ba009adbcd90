//! Resumable results: a rerun skips finished keys, and a torn last line
//! from a crash is skipped and counted.

use std::io::Write;

use serde::{Deserialize, Serialize};
use tenbits_eval::{finished_keys, hex, read_results, ResultsWriter, RunKey};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    correct: bool,
    bits: f64,
    reply: String,
}

fn key(problem: usize, method: &str) -> RunKey {
    RunKey {
        models: vec![hex(&[0xab, 0x01]), hex(&[0xff; 4])],
        prompt_version: 2,
        settings: "questions=10 rounds=1 greedy".into(),
        benchmark: "bigbench/date_understanding".into(),
        problem: format!("date_understanding/{problem}"),
        method: method.into(),
    }
}

fn record(i: usize) -> Record {
    Record {
        correct: i.is_multiple_of(2),
        bits: i as f64 * 1.5,
        reply: format!("Answer: (B) — café {i}"),
    }
}

#[test]
fn rerun_skips_finished_keys_and_survives_a_torn_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("runs/results.jsonl");
    let jobs: Vec<RunKey> = (0..4)
        .flat_map(|p| ["small", "qa"].map(|m| key(p, m)))
        .collect();
    assert_eq!(key(0, "qa").models, ["ab01", "ffffffff"]);

    // First run: finishes three jobs, then crashes in the middle of the
    // fourth line.
    {
        let mut w = ResultsWriter::open(&path).unwrap();
        for (i, k) in jobs.iter().take(3).enumerate() {
            w.append(k, &record(i)).unwrap();
        }
    }
    let full =
        serde_json::to_string(&serde_json::json!({"key": jobs[3], "record": record(3)})).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&full.as_bytes()[..full.len() / 2]).unwrap();
    drop(f);

    let (done, torn) = finished_keys(&path).unwrap();
    assert_eq!((done.len(), torn), (3, 1));
    let r = read_results::<Record>(&path).unwrap();
    assert_eq!(r.records.len(), 3);
    assert_eq!(r.records[1], (jobs[1].clone(), record(1)));

    // Rerun: skips the finished keys, appends the rest.
    let todo: Vec<&RunKey> = jobs.iter().filter(|k| !done.contains(k)).collect();
    assert_eq!(todo.len(), 5);
    assert_eq!(todo[0], &jobs[3]);
    {
        let mut w = ResultsWriter::open(&path).unwrap();
        for k in &todo {
            let i = jobs.iter().position(|j| j == *k).unwrap();
            w.append(k, &record(i)).unwrap();
        }
        w.sync().unwrap();
    }
    let r = read_results::<Record>(&path).unwrap();
    assert_eq!((r.records.len(), r.torn_lines), (8, 1));
    assert_eq!(r.finished().len(), 8);
    for (k, rec) in &r.records {
        let i = jobs.iter().position(|j| j == k).unwrap();
        assert_eq!(rec, &record(i));
    }
    // The torn line stayed on a line of its own.
    let text = std::fs::read_to_string(&path).unwrap();
    assert_eq!(text.lines().count(), 9);
    assert!(text.ends_with('\n'));

    // A repeated key: the last result counts.
    {
        let mut w = ResultsWriter::open(&path).unwrap();
        w.append(&jobs[0], &record(99)).unwrap();
    }
    let r = read_results::<Record>(&path).unwrap();
    let latest = r.latest();
    assert_eq!(latest.len(), 8);
    assert_eq!(latest[0], (&jobs[0], &record(99)));
}

#[test]
fn every_prefix_of_a_line_is_torn_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let line =
        serde_json::to_string(&serde_json::json!({"key": key(7, "qa"), "record": record(7)}))
            .unwrap();
    assert!(line.contains('é'));
    for cut in 1..line.len() {
        let mut bytes = (line.clone() + "\n").into_bytes();
        bytes.extend_from_slice(&line.as_bytes()[..cut]);
        std::fs::write(&path, &bytes).unwrap();
        let r = read_results::<Record>(&path).unwrap_or_else(|e| panic!("cut {cut}: {e}"));
        assert_eq!((r.records.len(), r.torn_lines), (1, 1), "cut {cut}");
    }
    // A complete last line without its newline counts.
    std::fs::write(&path, &line).unwrap();
    assert_eq!(read_results::<Record>(&path).unwrap().records.len(), 1);
}

#[test]
fn malformed_lines_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.jsonl");
    let good =
        serde_json::to_string(&serde_json::json!({"key": key(1, "qa"), "record": record(1)}))
            .unwrap();
    std::fs::write(&path, format!("{good}\n{{\"key\": 5}} trailing\n{good}\n")).unwrap();
    let e = read_results::<Record>(&path).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", path.display())), "{e}");
    // A record of the wrong shape for R.
    std::fs::write(
        &path,
        format!("{good}\n{}\n", good.replace("\"bits\"", "\"bats\"")),
    )
    .unwrap();
    let e = read_results::<Record>(&path).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2: ", path.display())) && e.contains("bits"),
        "{e}"
    );
    // ...but any record type reads the keys.
    assert_eq!(finished_keys(&path).unwrap().0.len(), 1);
    // A missing file holds nothing.
    let (keys, torn) = finished_keys(dir.path().join("none.jsonl")).unwrap();
    assert!(keys.is_empty() && torn == 0);
}
