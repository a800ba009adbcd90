//! The runner over scripted fake models: every method's outcome, the bits
//! it spends, and resumption.

use tenbits_eval::{load_task_file, EvalSettings, Evaluator, Method, Record};
use tenbits_qa::testing::Fake;
use tenbits_qa::Knowledge;

const OPTIONS: [&str; 8] = ["40", "41", "42", "43", "44", "45", "46", "47"];

fn benchmark(dir: &std::path::Path) -> tenbits_eval::Benchmark {
    let path = dir.join("tasks.jsonl");
    std::fs::write(
        &path,
        "{\"task\":\"short\",\"problem\":\"What is 6 x 7?\",\"answer\":\"42\"}\n",
    )
    .unwrap();
    load_task_file(&path).unwrap()
}

fn evaluator(results: &std::path::Path, view: Knowledge) -> Evaluator<Fake, Fake> {
    let small = Fake::new("small", "41", &OPTIONS);
    let large = Fake::new("large", "42", &["42"]);
    let settings = EvalSettings {
        view,
        ..EvalSettings::default()
    };
    Evaluator::new(small, large, settings, "arith", None, results).unwrap()
}

fn records(path: &std::path::Path) -> Vec<(String, Record)> {
    let results = tenbits_eval::read_results::<Record>(path).unwrap();
    results
        .latest()
        .into_iter()
        .map(|(k, r)| (k.method.clone(), r.clone()))
        .collect()
}

/// Made-up model facts for summaries.
fn facts() -> tenbits_eval::ModelFacts {
    tenbits_eval::ModelFacts {
        large_vocab_bits: 17.0,
        small_macs_per_token: 1.0,
        large_macs_per_token: 10.0,
    }
}

/// Every result in `path`, summarized with made-up model facts.
fn summary(path: &std::path::Path) -> tenbits_eval::Summary {
    let all = tenbits_eval::read_results::<Record>(path).unwrap();
    tenbits_eval::summarize(&all, |_| true, |_| None, facts())
}

#[test]
fn every_method_runs_and_the_bits_carry_the_large_models_answer() {
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let results = dir.path().join("results.jsonl");
    let mut e = evaluator(&results, Knowledge::OwnSolution);
    let mut last = None;
    e.run(&bench.items, &Method::ALL, &mut |p| last = Some(p))
        .unwrap();
    assert_eq!(last.map(|p| (p.done, p.total)), Some((9, 9)));
    let got = records(&results);
    let of = |m: &str| &got.iter().find(|(k, _)| k == m).unwrap().1;
    assert!(!of("small").correct && of("large").correct);
    assert_eq!(of("small").bits, 0);
    assert!(of("large").response_tokens.is_some());
    // BLC answers from the small model's own (wrong) belief: no help.
    assert!(!of("blc").correct);
    assert_eq!(of("blc").bits, 10);
    for m in ["qa", "qa+", "coded", "select"] {
        assert!(of(m).correct, "{m}: {}", of(m).reply);
        assert!(of(m).graded);
    }
    assert_eq!(of("qa").bits, 10);
    // Not code: the receiver has nothing to run, so `tested` is its draft.
    assert!(!of("tested").correct);
    assert_eq!((of("tested").bits, of("tested").visible.clone()), (0, None));
    let coded = of("coded").coded_bits.unwrap();
    assert!(coded <= 11.0, "{coded}");
    // `select` bisects the small model's candidates toward the large
    // model's own answer, in at most log2(candidates) bits.
    let select = of("select");
    let candidates = select.candidates.as_ref().unwrap();
    assert!(candidates.contains(&"42".to_string()), "{candidates:?}");
    assert!(select.bits >= 1 && select.bits <= 4, "{}", select.bits);
    // The draft and the own solution were computed once and charged to
    // every method that used them (the fakes count no tokens).
    assert_eq!(e.spent().1.tokens(), 0);
    // The answerer alone: yes to the gold, no to the small model's answer.
    let probe = &of("probe").probe;
    assert_eq!(probe.len(), 2);
    assert!(probe[0].truth && probe[0].bit && !probe[1].truth && !probe[1].bit);
    assert_eq!(probe[1].question, "Is the answer 41?");
    let notes = of("qa").asker.as_ref().unwrap();
    assert_eq!(notes.padded, 2);
    assert!(notes.revised);

    let summary = summary(&results);
    assert_eq!((summary.problems, summary.filtered_problems), (1, 1));
    let row = |m: &str| summary.all.iter().find(|r| r.method == m).unwrap();
    assert_eq!((row("small").correct, row("large").correct), (0, 1));
    assert_eq!(row("qa").gap.unwrap().point, 1.0);
    assert_eq!(row("blc").gap.unwrap().point, 0.0);
    // qa right where blc was wrong: +100 points over it; none for blc.
    assert_eq!(row("qa").vs_blc.unwrap().point, 1.0);
    assert_eq!(row("blc").vs_blc, None);
    // Likewise against the receiver testing its own draft for free.
    assert_eq!(row("qa").vs_tested.unwrap().point, 1.0);
    assert_eq!(row("tested").vs_tested, None);
    assert_eq!(row("qa").bits, 10.0);
    let table = tenbits_eval::markdown(&summary, false);
    assert!(table.contains("| qa | 1 | 100.0%"), "{table}");
    assert!(
        table.contains("| +100 (+100 to +100) | +100 (+100 to +100) |"),
        "{table}"
    );
    assert!(table.contains("| vs blc, points (95% CI) | vs tested, points (95% CI) |"));
    assert!(table.contains("own solution (honest)"));
    // qa's asker wrote 8 of its 10 questions and its revision moved the
    // wrong draft to the right answer; blc's moved nothing.
    let asker = row("qa").asker.unwrap();
    assert_eq!((asker.sessions, asker.questions, asker.padded), (1, 10, 2));
    assert_eq!((asker.to_right, asker.to_wrong), (1, 0));
    assert_eq!(row("blc").asker.unwrap().to_right, 0);
    assert_eq!(row("small").asker, None);
    assert!(table.contains("| qa | 1 | 20% |"), "{table}");
    let probe = summary.probe.unwrap();
    assert_eq!((probe.claims, probe.yes_rate), (2, 0.5));
    assert!(table.contains("2 claims, right on 100.0%"), "{table}");
}

#[test]
fn a_report_without_the_models_alone_says_what_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let results = dir.path().join("results.jsonl");
    let mut e = evaluator(&results, Knowledge::OwnSolution);
    e.run(&bench.items, &[Method::Qa], &mut |_| {}).unwrap();
    let summary = summary(&results);
    assert_eq!(summary.problems, 1);
    let table = tenbits_eval::markdown(&summary, false);
    assert!(table.contains("--methods small,large"), "{table}");
}

#[test]
fn a_rerun_skips_finished_results() {
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let results = dir.path().join("results.jsonl");
    let mut e = evaluator(&results, Knowledge::OwnSolution);
    e.run(&bench.items, &[Method::Small, Method::Qa], &mut |_| {})
        .unwrap();
    drop(e);
    let mut e = evaluator(&results, Knowledge::OwnSolution);
    let mut seen = Vec::new();
    e.run(
        &bench.items,
        &[Method::Small, Method::Qa, Method::Large],
        &mut |p| seen.push(p),
    )
    .unwrap();
    assert_eq!(seen[0].skipped, 2, "small and qa were done");
    assert_eq!(seen.last().unwrap().done, 3);
    assert_eq!(records(&results).len(), 3);
    // Another view is another computation: nothing is skipped.
    let mut e = evaluator(&results, Knowledge::Reference);
    let mut first = None;
    e.run(&bench.items, &[Method::Qa], &mut |p| {
        first.get_or_insert(p);
    })
    .unwrap();
    assert_eq!(first.unwrap().skipped, 0);
}

#[test]
fn a_result_is_keyed_by_its_task_s_prompt_version() {
    // Version 4 changed only a program's revision: a short-answer result
    // made under version 3 is what this build computes, and resumes.
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let e = evaluator(&dir.path().join("results.jsonl"), Knowledge::OwnSolution);
    let key = e.key(&bench.items[0], Method::Qa);
    assert_eq!(key.prompt_version, 3);
    assert!(key.prompt_version < tenbits_qa::PROMPT_VERSION);
}

#[test]
fn the_yes_threshold_decides_the_answerer_s_bits_and_keys_its_results() {
    // The fake answerer gives a true claim P(yes) 0.9 and a false one 0.1.
    let probe = |yes_threshold: f64| {
        let dir = tempfile::tempdir().unwrap();
        let bench = benchmark(dir.path());
        let results = dir.path().join("results.jsonl");
        let settings = EvalSettings {
            yes_threshold,
            ..EvalSettings::default()
        };
        let small = Fake::new("small", "41", &OPTIONS);
        let large = Fake::new("large", "42", &["42"]);
        let mut e =
            Evaluator::new(small, large, settings.clone(), "arith", None, &results).unwrap();
        e.run(&bench.items, &[Method::Probe], &mut |_| {}).unwrap();
        let (_, record) = records(&results).remove(0);
        let bits: Vec<(bool, bool)> = record.probe.iter().map(|c| (c.truth, c.bit)).collect();
        (settings.key(), bits)
    };
    let (key, bits) = probe(0.5);
    assert_eq!(bits, [(true, true), (false, false)]);
    assert!(
        !key.contains("yes_threshold"),
        "earlier results keep their keys: {key}"
    );
    let (key, bits) = probe(0.95);
    assert_eq!(bits, [(true, false), (false, false)], "0.9 is below 0.95");
    assert!(key.ends_with(" yes_threshold=0.95"), "{key}");
}

/// Six problems whose gold answers differ, for the oracle view: each
/// problem's sessions adopt its own gold, so a mixed-up result shows.
fn six_problems(dir: &std::path::Path) -> tenbits_eval::Benchmark {
    let path = dir.join("six.jsonl");
    let lines: String = (0..6)
        .map(|i| {
            format!(
                "{{\"task\":\"short\",\"problem\":\"What is {i} + 40?\",\"answer\":\"{}\"}}\n",
                40 + i
            )
        })
        .collect();
    std::fs::write(&path, lines).unwrap();
    load_task_file(&path).unwrap()
}

/// Records by (problem, method), with the timings (which differ run to
/// run) cleared.
fn untimed(path: &std::path::Path) -> Vec<((String, String), Record)> {
    let results = tenbits_eval::read_results::<Record>(path).unwrap();
    let mut out: Vec<_> = results
        .latest()
        .into_iter()
        .map(|(k, r)| {
            let mut r = r.clone();
            r.wall_seconds = 0.0;
            r.small.seconds = 0.0;
            r.large.seconds = 0.0;
            ((k.problem.clone(), k.method.clone()), r)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn problems_side_by_side_get_the_results_they_get_one_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let bench = six_problems(dir.path());
    let methods = [Method::Small, Method::Qa, Method::Coded, Method::Select];
    let run = |batch: usize, name: &str| {
        let path = dir.path().join(name);
        let small = Fake::new("small", "41", &OPTIONS);
        let large = Fake::new("large", "42", &["42"]);
        let settings = EvalSettings {
            view: Knowledge::Reference,
            batch,
            ..EvalSettings::default()
        };
        let mut e = Evaluator::new(small, large, settings, "arith", None, &path).unwrap();
        let mut last = None;
        e.run(&bench.items, &methods, &mut |p| last = Some(p))
            .unwrap();
        assert_eq!(last.map(|p| p.done), Some(24));
        untimed(&path)
    };
    let alone = run(1, "alone.jsonl");
    let together = run(4, "together.jsonl");
    assert_eq!(alone.len(), 24);
    assert_eq!(alone, together);
    // Each problem's `qa` session adopted its own gold.
    for i in 0..6 {
        let qa = alone
            .iter()
            .find(|((p, m), _)| p.ends_with(&format!("/{i}")) && m == "qa")
            .map(|(_, r)| r)
            .unwrap();
        assert_eq!(
            qa.extracted.as_deref(),
            Some(format!("{}", 40 + i).as_str())
        );
        assert!(qa.correct);
    }
}

/// A coder that writes `2 * x` (right) only when sampled with a seed
/// divisible by 3, `x + 1` greedily (passes one of three examples) and
/// `x * x` otherwise (passes one); as answerer it believes in `x * x`.
struct Coder;

impl tenbits_qa::ChatModel for Coder {
    fn model_id(&self) -> [u8; 16] {
        [7; 16]
    }
    fn name(&self) -> &str {
        "coder"
    }
    fn complete(
        &mut self,
        requests: &[(Vec<tenbits_qa::Message>, tenbits_qa::Sampling)],
    ) -> Result<Vec<tenbits_qa::Reply>, tenbits_qa::ModelError> {
        let body = |s: &tenbits_qa::Sampling| {
            if s.temperature == 0.0 {
                "x + 1"
            } else if s.seed.is_multiple_of(3) {
                "2 * x"
            } else {
                "x * x"
            }
        };
        Ok(requests
            .iter()
            .map(|(_, s)| format!("```python\ndef double(x):\n    return {}\n```", body(s)).into())
            .collect())
    }
    fn p_yes(
        &mut self,
        conversations: &[Vec<tenbits_qa::Message>],
    ) -> Result<Vec<f64>, tenbits_qa::ModelError> {
        let last =
            |c: &Vec<tenbits_qa::Message>| c.last().map_or(String::new(), |m| m.content.clone());
        Ok(conversations
            .iter()
            .map(|c| if last(c).contains("x * x") { 0.9 } else { 0.2 })
            .collect())
    }
    fn score_candidates(
        &mut self,
        _: &[tenbits_qa::Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, tenbits_qa::ModelError> {
        Ok(vec![0.0; candidates.len()])
    }
}

#[test]
fn the_receiver_tests_its_programs_on_the_prompts_examples() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("code.jsonl");
    let problem = serde_json::json!({
        "task_id": "T/0",
        "prompt": "def double(x):\n    \"\"\"Doubles x.\n    >>> double(1)\n    2\n    double(3) == 6\n    double(2) ➞ 4\n    \"\"\"\n",
        "canonical_solution": "    return 2 * x\n",
        "test": "def check(f):\n    assert f(5) == 10\n",
        "entry_point": "double",
    });
    std::fs::write(&path, format!("{problem}\n")).unwrap();
    let bench = tenbits_eval::load(&path).unwrap();
    let sandbox = tenbits_eval::Sandbox::new(tenbits_eval::SandboxConfig::default()).unwrap();
    let run = |filter: bool| {
        let results = dir.path().join(format!("results-{filter}.jsonl"));
        let settings = EvalSettings {
            visible_filter: filter,
            ..EvalSettings::default()
        };
        let mut e = Evaluator::new(
            Coder,
            Coder,
            settings,
            "code",
            Some(sandbox.clone()),
            &results,
        )
        .unwrap();
        e.run(
            &bench.items,
            &[Method::Small, Method::Tested, Method::Select],
            &mut |_| {},
        )
        .unwrap();
        records(&results)
    };
    let plain = run(false);
    let of =
        |got: &[(String, Record)], m: &str| got.iter().find(|(k, _)| k == m).unwrap().1.clone();
    assert!(!of(&plain, "small").correct);
    // The answerer, believing in `x * x`, steers plain select to it.
    let select = of(&plain, "select");
    assert!(!select.correct, "{}", select.reply);
    assert!(select.reply.contains("x * x"));
    assert_eq!(select.visible, None);
    // Its candidates held the right program all the same: the hidden tests
    // say so, and without `2 * x` they do not.
    let item = &bench.items[0];
    let candidates = select.candidates.clone().unwrap();
    assert!(tenbits_eval::covers_gold(item, &candidates, Some(&sandbox)).unwrap());
    let wrong: Vec<String> = candidates
        .into_iter()
        .filter(|c| !c.contains("2 * x"))
        .collect();
    assert_eq!(wrong.len(), 2);
    assert!(!tenbits_eval::covers_gold(item, &wrong, Some(&sandbox)).unwrap());
    // With no bits, the first program passing the most examples (all
    // three) is `2 * x`: the draft and `x * x` pass one each.
    let tested = of(&plain, "tested");
    assert!(tested.correct, "{}", tested.reply);
    assert_eq!(tested.bits, 0);
    assert_eq!(tested.visible, Some(vec![1, 1, 3]));
    // Filtered, select bisects only `2 * x`: right, in no bits.
    let filtered = run(true);
    let select = of(&filtered, "select");
    assert!(select.correct, "{}", select.reply);
    assert_eq!(select.candidates.as_ref().map(Vec::len), Some(1));
    assert_eq!(select.visible, Some(vec![1, 1, 3]));
}

/// The oracle's bits name the gold itself, even where the large model
/// alone believes otherwise: a bare reference ("42") is the answer.
#[test]
fn the_oracle_select_picks_the_gold_it_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let results = dir.path().join("results.jsonl");
    let small = Fake::new("small", "41", &OPTIONS);
    let large = Fake::new("large", "41", &["41"]);
    let settings = EvalSettings {
        view: Knowledge::Reference,
        ..EvalSettings::default()
    };
    let mut e = Evaluator::new(small, large, settings, "arith", None, &results).unwrap();
    e.run(&bench.items, &[Method::Select], &mut |_| {}).unwrap();
    let got = records(&results);
    let select = &got[0].1;
    assert!(
        select.correct,
        "{} from {:?}",
        select.reply, select.candidates
    );
}

/// The report's ceiling for `select`: the honest answerer, believing 41,
/// picks it, though the gold 42 was among the candidates.
#[test]
fn a_report_counts_the_problems_whose_candidates_hold_the_gold() {
    let dir = tempfile::tempdir().unwrap();
    let bench = benchmark(dir.path());
    let results = dir.path().join("results.jsonl");
    let small = Fake::new("small", "41", &OPTIONS);
    let large = Fake::new("large", "41", &["41"]);
    let mut e = Evaluator::new(
        small,
        large,
        EvalSettings::default(),
        "arith",
        None,
        &results,
    )
    .unwrap();
    let methods = [Method::Small, Method::Large, Method::Select];
    e.run(&bench.items, &methods, &mut |_| {}).unwrap();
    let all = tenbits_eval::read_results::<Record>(&results).unwrap();
    let candidates: std::collections::HashMap<_, _> = all
        .latest()
        .into_iter()
        .filter_map(|(k, r)| Some((k.clone(), r.candidates.clone()?)))
        .collect();
    let covers = |k: &tenbits_eval::RunKey| {
        let c = candidates.get(k)?;
        Some(tenbits_eval::covers_gold(&bench.items[0], c, None).unwrap())
    };
    let summary = tenbits_eval::summarize(&all, |_| true, covers, facts());
    let row = |m: &str| summary.all.iter().find(|r| r.method == m).unwrap().clone();
    let select = row("select");
    assert_eq!(select.correct, 0);
    assert_eq!(select.covered.map(|c| (c.correct, c.total)), Some((1, 1)));
    assert_eq!(row("small").covered, None);
    let text = tenbits_eval::markdown(&summary, false);
    assert!(text.contains("candidates cover the gold"), "{text}");
    assert!(text.contains("| 100.0% (20.7–100.0) |"), "{text}");
}
