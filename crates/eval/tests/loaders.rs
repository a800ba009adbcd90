//! Loaders on the shared data (skipped, with a note, where it is absent),
//! the project's task file, and malformed files.

use std::io::Write;
use std::path::{Path, PathBuf};

use tenbits_eval::{load, load_bigbench, load_humaneval, Format, Gold, Split};
use tenbits_qa::Task;

fn shared() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data"));
    if p.join("bigbench").is_dir() {
        Some(p)
    } else {
        eprintln!("note: no shared data at {}; skipping", p.display());
        None
    }
}

fn letter_index(letter: char) -> usize {
    (letter as u8 - b'A') as usize
}

#[test]
fn bigbench_counts_kinds_and_names() {
    let Some(data) = shared() else { return };
    let bb = data.join("bigbench");
    let table: &[(&str, usize, Task, &str)] = &[
        (
            "arithmetic/2_digit_multiplication",
            1000,
            Task::ShortAnswer,
            "number",
        ),
        (
            "arithmetic/3_digit_addition",
            1000,
            Task::ShortAnswer,
            "number",
        ),
        (
            "arithmetic/3_digit_multiplication",
            1000,
            Task::ShortAnswer,
            "number",
        ),
        ("date_understanding", 369, Task::MultipleChoice, "choice"),
        (
            "logical_deduction/three_objects",
            300,
            Task::MultipleChoice,
            "choice",
        ),
        (
            "tracking_shuffled_objects/three_objects",
            750,
            Task::MultipleChoice,
            "choice",
        ),
        ("navigate", 1000, Task::MultipleChoice, "choice"),
        ("physics", 229, Task::MultipleChoice, "choice"),
        ("strategyqa", 2290, Task::ShortAnswer, "yesno"),
    ];
    for &(task, n, kind, gold) in table {
        let b = load(bb.join(task)).unwrap();
        assert_eq!(b.name, format!("bigbench/{task}"));
        assert_eq!(b.format, Format::BigBench);
        assert_eq!(b.items.len(), n, "{task}");
        for (i, item) in b.items.iter().enumerate() {
            assert_eq!(item.index, i);
            assert_eq!(item.id, format!("{task}/{i}"));
            assert_eq!(item.task, kind, "{task}");
            let ok = matches!(
                (&item.gold, gold),
                (Gold::Number { .. }, "number")
                    | (Gold::Choice { .. }, "choice")
                    | (
                        Gold::YesNo {
                            explanation: Some(_),
                            ..
                        },
                        "yesno"
                    )
            );
            assert!(ok, "{task} {i}: {:?}", item.gold);
        }
        // Splits: even tune, odd report.
        let tune: Vec<usize> = b.split(Split::Tune).map(|i| i.index).collect();
        let report: Vec<usize> = b.split(Split::Report).map(|i| i.index).collect();
        assert_eq!(tune.len(), n.div_ceil(2));
        assert_eq!(report.len(), n / 2);
        assert!(tune.iter().all(|i| i % 2 == 0) && report.iter().all(|i| i % 2 == 1));
        assert_eq!(b.split(Split::All).count(), n);
    }
    // The task.json itself loads the same.
    let a = load(bb.join("navigate")).unwrap();
    let b = load_bigbench(bb.join("navigate/task.json")).unwrap();
    assert_eq!(a.items, b.items);
    // Not a task.
    let e = load(bb.join("twenty_questions/concepts.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("concepts.json") && e.contains("examples"), "{e}");
}

#[test]
fn bigbench_prompts_and_golds() {
    let Some(data) = shared() else { return };
    let bb = data.join("bigbench");
    let arith = load(bb.join("arithmetic/2_digit_multiplication")).unwrap();
    assert_eq!(arith.items[0].prompt, "What is 50 times 20?");
    assert_eq!(
        arith.items[0].gold,
        Gold::Number {
            value: 1000.0,
            text: "1000".into()
        }
    );

    let nav = load(bb.join("navigate")).unwrap();
    let p = &nav.items[0].prompt;
    assert!(
        p.starts_with("If you follow these instructions, do you return to the starting point?\n\nTake 1 step."),
        "{p}"
    );
    assert!(
        p.ends_with("\n\nOptions:\n(A) False\n(B) True")
            || p.ends_with("\n\nOptions:\n(A) True\n(B) False"),
        "{p}"
    );

    let physics = load(bb.join("physics")).unwrap();
    assert!(physics.items[0].prompt.starts_with(
        "Identify the physics formula that would be most useful for finding the answer to each of the following word problems.\n\nIf a drop"
    ));

    let sqa = load(bb.join("strategyqa")).unwrap();
    let Gold::YesNo { yes, explanation } = &sqa.items[0].gold else {
        panic!()
    };
    assert!(*yes);
    assert!(explanation
        .as_deref()
        .unwrap()
        .starts_with("Yes. College commencement"));
    assert_eq!(
        sqa.items[0].prompt,
        "Is it common to see frost during some college commencements?"
    );
    let problem = sqa.items[0].problem();
    assert!(problem.reference.unwrap().starts_with("Yes. College"));
    assert_eq!(problem.task, Task::ShortAnswer);
}

/// The gold letter follows its option: checked against the raw file.
#[test]
fn choice_letters_follow_their_options() {
    let Some(data) = shared() else { return };
    let bb = data.join("bigbench");
    for task in [
        "date_understanding",
        "logical_deduction/three_objects",
        "tracking_shuffled_objects/three_objects",
        "navigate",
        "physics",
    ] {
        let raw: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(bb.join(task).join("task.json")).unwrap(),
        )
        .unwrap();
        let b = load(bb.join(task)).unwrap();
        let mut first_letters = std::collections::BTreeMap::<char, usize>::new();
        for (item, ex) in b.items.iter().zip(raw["examples"].as_array().unwrap()) {
            let Gold::Choice {
                options,
                letter,
                also_correct,
            } = &item.gold
            else {
                panic!()
            };
            assert!(also_correct.is_empty());
            let scores = ex["target_scores"].as_object().unwrap();
            assert_eq!(options.len(), scores.len());
            let gold_text = scores
                .iter()
                .find(|(_, v)| v.as_f64() == Some(1.0))
                .unwrap()
                .0;
            assert_eq!(
                &options[letter_index(*letter)],
                gold_text.trim(),
                "{task} {}",
                item.index
            );
            // Every option is listed, lettered in order, in the prompt.
            for (i, o) in options.iter().enumerate() {
                let l = char::from(b'A' + i as u8);
                assert!(
                    item.prompt.contains(&format!("\n({l}) {o}")),
                    "{task} {}",
                    item.index
                );
            }
            *first_letters.entry(*letter).or_default() += 1;
            // Grading by letter and by the option's text.
            let r = format!("Let me think.\nAnswer: ({letter})");
            assert!(tenbits_eval::grade(&item.gold, &r, false).unwrap().correct);
        }
        // Not always A: every letter position holds the gold sometimes.
        let max_options = b
            .items
            .iter()
            .map(|i| match &i.gold {
                Gold::Choice { options, .. } => options.len(),
                _ => 0,
            })
            .min()
            .unwrap();
        for i in 0..max_options {
            let l = char::from(b'A' + i as u8);
            let share = first_letters.get(&l).copied().unwrap_or(0) as f64 / b.items.len() as f64;
            assert!(
                share > 0.5 / max_options as f64,
                "{task}: gold {l} in {share:.2} of items"
            );
        }
    }
}

/// The order is reproducible, and pinned: a change here changes every
/// multiple-choice prompt and must be deliberate.
#[test]
fn choice_order_is_deterministic_and_pinned() {
    let Some(data) = shared() else { return };
    let bb = data.join("bigbench");
    let letters = |task: &str| -> String {
        load(bb.join(task))
            .unwrap()
            .items
            .iter()
            .take(16)
            .map(|i| match &i.gold {
                Gold::Choice { letter, .. } => *letter,
                _ => '?',
            })
            .collect()
    };
    let a = letters("date_understanding");
    assert_eq!(a, letters("date_understanding"));
    let t = letters("tracking_shuffled_objects/three_objects");
    let l = letters("logical_deduction/three_objects");
    eprintln!("date_understanding {a}, tracking {t}, logical {l}");
    assert_eq!(a, PINNED_DATE);
    assert_eq!(t, PINNED_TRACKING);
    assert_eq!(l, PINNED_LOGICAL);
}

const PINNED_DATE: &str = "CEDAFCFBDECFEBAB";
const PINNED_TRACKING: &str = "BCACCCAAACAACABC";
const PINNED_LOGICAL: &str = "BABBABCCACCCCBCC";

#[test]
fn project_task_file() {
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/tasks/arith.jsonl"
    ));
    let b = load(path).unwrap();
    assert_eq!(
        (b.name.as_str(), b.format),
        ("tasks/arith", Format::TaskFile)
    );
    assert_eq!(b.items.len(), 20);
    assert_eq!(b.items[0].prompt, "What is 17 + 25?");
    assert_eq!(
        b.items[0].gold,
        Gold::Number {
            value: 42.0,
            text: "42".into()
        }
    );
    assert_eq!(b.items[0].task, Task::ShortAnswer);
    assert_eq!(b.split(Split::Tune).count(), 10);
    assert!(
        tenbits_eval::grade(&b.items[0].gold, "17 + 25 = 42\nAnswer: 42", false)
            .unwrap()
            .correct
    );
}

#[test]
fn humaneval_jsonl_and_gz() {
    let dir = tempfile::tempdir().unwrap();
    let rec = |i: usize| {
        serde_json::json!({"task_id": format!("HumanEval/{i}"), "prompt": "def f():\n", "canonical_solution": "    return 1\n",
            "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"})
        .to_string()
    };
    let text: String = (0..164).map(|i| rec(i) + "\n").collect();
    let plain = dir.path().join("HumanEval.jsonl");
    std::fs::write(&plain, &text).unwrap();
    let gz = dir.path().join("he.jsonl.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(text.as_bytes()).unwrap();
    enc.finish().unwrap();
    for b in [
        load(&plain).unwrap(),
        load(&gz).unwrap(),
        load(dir.path()).unwrap(),
    ] {
        assert_eq!(
            (b.name.as_str(), b.format, b.items.len()),
            ("humaneval", Format::HumanEval, 164)
        );
        assert_eq!(b.split(Split::Tune).count(), 82);
        assert_eq!(b.split(Split::Tune).last().unwrap().id, "HumanEval/81");
        assert_eq!(b.split(Split::Report).next().unwrap().id, "HumanEval/82");
        assert_eq!(b.items[5].task, Task::Code);
        assert_eq!(
            b.items[5].gold.reference().unwrap(),
            "def f():\n    return 1\n"
        );
    }
}

#[test]
fn malformed_files_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("h.jsonl");
    std::fs::write(
        &p,
        "{\"task_id\":\"HumanEval/0\",\"prompt\":\"\",\"canonical_solution\":\"\",\"test\":\"\",\"entry_point\":\"f\"}\n\
         {\"task_id\":\"HumanEval/1\",\"prompt\":\"\"}\n",
    )
    .unwrap();
    let e = load_humaneval(&p).unwrap_err().to_string();
    assert!(
        e.starts_with(&format!("{}:2: missing field", p.display())),
        "{e}"
    );

    let p = dir.path().join("bad.jsonl.gz");
    std::fs::write(&p, b"not gzip").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.contains("bad.jsonl.gz"), "{e}");

    let p = dir.path().join("t.jsonl");
    std::fs::write(&p, "{\"task\":\"short\",\"problem\":\"a\",\"answer\":\"1\"}\n{\"task\":\"short\",\"problem\":\"b\",\"answer\":[1]}\n").unwrap();
    let e = load(&p).unwrap_err().to_string();
    assert!(e.starts_with(&format!("{}:2: ", p.display())), "{e}");

    let p = dir.path().join("task.json");
    std::fs::write(&p, r#"{"examples": [{"input": "a", "target": 5}]}"#).unwrap();
    let e = load(dir.path()).unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "{}: examples[0].target: expected a string or a list of strings",
            p.display()
        )
    );

    let e = load(dir.path().join("missing.jsonl"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("missing.jsonl"), "{e}");
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "\n").unwrap();
    assert!(load(&empty).unwrap_err().to_string().contains("empty file"));
    let other = dir.path().join("o.jsonl");
    std::fs::write(&other, "{\"x\": 1}\n").unwrap();
    assert!(load(&other).unwrap_err().to_string().contains("neither"));
}

#[test]
fn cached_humaneval_when_fetched() {
    match tenbits_eval::humaneval_path() {
        Ok(p) => {
            let b = load(&p).unwrap();
            assert_eq!(b.items.len(), 164);
            assert_eq!(b.items[0].id, "HumanEval/0");
            assert_eq!(b.split(Split::Report).count(), 82);
        }
        Err(e) => eprintln!("note: {e}; skipping"),
    }
}
