//! Evaluation for tenbits: benchmarks in their standard formats, answer
//! extraction and grading as the standard harnesses do it, a sandboxed
//! HumanEval checker, statistics, and resumable results.
//!
//! - [`mod@bench`]: every benchmark becomes a [`Benchmark`] of [`Item`]s (an
//!   id, its [`Task`](tenbits_qa::Task), the prompt shown to a model, and
//!   its [`Gold`]), each in the tuning or reporting part ([`Split`]).
//!   [`load`] recognises HumanEval JSONL(.gz), BIG-bench `task.json`s and
//!   the project's task files (`config/tasks/*.jsonl`). Multiple-choice
//!   options are lettered in a reproducible, seeded order.
//! - [`extract`]: the final answer of a reply (`Answer:` line, `\boxed{}`,
//!   `####`, "the answer is"; then a number, an option letter, yes/no or
//!   text) as an [`Extracted`] that names its [`Rule`]; [`grade`] gives a
//!   [`Grade`] that keeps replies cut off by the token limit apart
//!   ([`Outcome::Truncated`]).
//! - [`sandbox`]: [`Sandbox`] runs HumanEval completions with their tests in
//!   a limited `python3` process (time, memory, files, no network, no
//!   writes outside its temporary directory) and returns a [`CheckResult`];
//!   [`Sandbox::check_many`] runs several at once.
//! - [`datasets`]: where `scripts/setup.py --dataset humaneval` put
//!   HumanEval in the cache ([`humaneval_path`]).
//! - [`stats`]: [`accuracy`] with a Wilson interval, [`gap_recovered`] and
//!   [`paired_difference`] (a method against a baseline such as BLC) with
//!   paired bootstrap intervals, [`mean`].
//! - [`results`]: [`ResultsWriter`] appends one JSON line per finished
//!   ([`RunKey`], record); [`read_results`] and [`finished_keys`] read them
//!   back, surviving a torn last line, so a rerun skips what is done.
//!
//! ```
//! use tenbits_eval::{accuracy, grade, load, Gold, Split};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(
//!     dir.path().join("task.json"),
//!     r#"{"name": "colours", "preferred_score": "multiple_choice_grade", "examples": [
//!         {"input": "The sky is", "target_scores": {"blue": 1, "green": 0, "red": 0}},
//!         {"input": "What is 6 times 7?", "target": "42"}]}"#,
//! )?;
//! let bench = load(dir.path())?;
//! assert_eq!(bench.name, "bigbench/colours");
//!
//! // The options are shuffled reproducibly; the gold letter follows "blue".
//! let sky = &bench.items[0];
//! let Gold::Choice { options, letter, .. } = &sky.gold else { unreachable!() };
//! assert_eq!(options[(*letter as u8 - b'A') as usize], "blue");
//! assert!(sky.prompt.contains(&format!("({letter}) blue")));
//! let reply = format!("The sky scatters blue light.\nAnswer: {letter}");
//! assert!(grade(&sky.gold, &reply, false).unwrap().correct);
//!
//! // Free-form numbers, GSM8K style; item 1 is in the reporting half.
//! let six = &bench.items[1];
//! assert_eq!(six.split, Split::Report);
//! let g = grade(&six.gold, "6 x 7 = 42, so the answer is $42.", false).unwrap();
//! assert!(g.correct);
//!
//! let acc = accuracy(2, 2).unwrap();
//! assert!(acc.ci95.lo > 0.3 && acc.ci95.hi > 0.999);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

pub mod bench;
pub mod datasets;
pub mod error;
pub mod extract;
pub mod metered;
pub mod results;
pub mod run;
pub mod sandbox;
pub mod stats;
pub mod summary;
pub mod visible;

pub use bench::{
    load, load_bigbench, load_bigbench_named, load_humaneval, load_task_file, parse_text,
    Benchmark, CodeTest, Format, Gold, Item, Split, TextFormat,
};
pub use datasets::{dataset, humaneval_path, load_cached_humaneval, DatasetEntry};
pub use error::{EvalError, Result};
pub use extract::{
    extract_answer, extract_choice, extract_code, extract_number, extract_text, extract_yes_no,
    grade, normalize, numbers_equal, parse_number, text_matches, Extracted, Grade, Outcome, Rule,
    Tally,
};
pub use metered::Metered;
pub use results::{finished_keys, hex, read_results, Results, ResultsWriter, RunKey};
pub use run::{
    covers_gold, run_key, AskerNotes, EvalSettings, Evaluator, Method, Record, RunProgress,
};
pub use sandbox::{humaneval_program, CheckResult, Isolation, Sandbox, SandboxConfig, Verdict};
pub use stats::{
    accuracy, gap_recovered, mean, paired_difference, wilson, Accuracy, Bootstrap, Difference,
    GapRecovered, Interval,
};
pub use summary::{markdown, summarize, AskerSummary, MethodSummary, ModelFacts, Summary};
pub use visible::{example_program, visible_examples, Example};
