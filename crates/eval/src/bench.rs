//! Benchmarks in their standard formats, read into one [`Item`] type.
//!
//! - HumanEval ([`load_humaneval`]): JSONL, optionally gzipped, one problem
//!   per line with `task_id`, `prompt`, `canonical_solution`, `test`,
//!   `entry_point`.
//! - BIG-bench JSON tasks ([`load_bigbench`]): a `task.json` with
//!   `examples`, each with `input` and `target` and/or `target_scores`.
//! - The project's own task files ([`load_task_file`]): JSONL lines
//!   `{"task": "short"|"mc"|"code", "problem": ..., "answer": ...}`.
//!
//! [`load`] recognises which of the three a path holds.
//!
//! Every item belongs to the tuning or the reporting part of its benchmark
//! ([`Split`]): HumanEval/0–81 tune and 82–163 report; in BIG-bench tasks and
//! task files, even 0-based indices tune and odd ones report.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use rand::RngCore;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tenbits_qa::{Problem, Task};

use crate::error::{EvalError, Result};

/// Which part of a benchmark to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// For tuning prompts, thresholds and other choices.
    Tune,
    /// For reported results.
    Report,
    /// Both (only as a selection; an item is always `Tune` or `Report`).
    All,
}

impl Split {
    /// Whether an item of part `part` (`Tune` or `Report`) is selected.
    pub fn selects(self, part: Split) -> bool {
        self == Split::All || self == part
    }

    /// The part of an item by index parity: even tune, odd report.
    pub fn by_parity(index: usize) -> Split {
        if index.is_multiple_of(2) {
            Split::Tune
        } else {
            Split::Report
        }
    }
}

impl std::str::FromStr for Split {
    type Err = EvalError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "tune" => Ok(Split::Tune),
            "report" => Ok(Split::Report),
            "all" => Ok(Split::All),
            _ => Err(EvalError::Invalid(format!(
                "unknown split {s:?}; expected tune, report or all"
            ))),
        }
    }
}

/// A HumanEval problem's program parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodeTest {
    /// The function's signature and docstring (with any imports and helper
    /// functions before it); what the model completes.
    pub prompt: String,
    /// The test code, defining `check(candidate)`.
    pub test: String,
    /// The name of the function the tests call.
    pub entry_point: String,
    /// The reference body that follows `prompt`.
    pub canonical: String,
}

/// What counts as a correct answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Gold {
    /// Free text: correct if it matches any of these after normalization.
    Text(Vec<String>),
    /// A number: correct if numerically equal (relative tolerance 1e-6).
    Number {
        /// The value.
        value: f64,
        /// As written in the benchmark.
        text: String,
    },
    /// A lettered option.
    Choice {
        /// The options, in lettered order: `options[0]` is A.
        options: Vec<String>,
        /// The correct option's letter.
        letter: char,
        /// Other letters that score as high as `letter` (usually none).
        also_correct: Vec<char>,
    },
    /// Yes or no (BIG-bench tasks whose only options are "Yes" and "No").
    YesNo {
        /// Whether the answer is yes.
        yes: bool,
        /// The benchmark's explanation, if it has one.
        explanation: Option<String>,
    },
    /// A program, checked by running tests ([`crate::sandbox`]).
    Code(CodeTest),
    /// No way to grade: a task-file problem without an answer, or a code
    /// problem without tests. Holds the reference answer if there is one.
    Ungradable(Option<String>),
}

impl Gold {
    /// The answer itself, as a short-answer reply states it: the number as
    /// written, the first text, the option letter, `Yes` or `No`; `None`
    /// for code and ungradable problems.
    pub fn short_answer(&self) -> Option<String> {
        match self {
            Gold::Number { text, .. } => Some(text.clone()),
            Gold::Text(t) => t.first().cloned(),
            Gold::Choice { letter, .. } => Some(letter.to_string()),
            Gold::YesNo { yes, .. } => Some((if *yes { "Yes" } else { "No" }).to_string()),
            Gold::Code(_) | Gold::Ungradable(_) => None,
        }
    }

    /// The gold answer as text, as a reference for the answering model: the
    /// first target; the number; `(B) option text`; `Yes. explanation`; the
    /// complete reference program.
    pub fn reference(&self) -> Option<String> {
        Some(match self {
            Gold::Text(t) => t.first()?.clone(),
            Gold::Number { text, .. } => text.clone(),
            Gold::Choice {
                options, letter, ..
            } => {
                let i = (*letter as u8).checked_sub(b'A')? as usize;
                match options.get(i) {
                    Some(o) => format!("({letter}) {o}"),
                    None => format!("({letter})"),
                }
            }
            Gold::YesNo { yes, explanation } => {
                let word = if *yes { "Yes" } else { "No" };
                match explanation {
                    Some(e) if !e.trim().is_empty() => {
                        if e.trim_start()
                            .to_ascii_lowercase()
                            .starts_with(&word.to_ascii_lowercase())
                        {
                            e.trim().to_string()
                        } else {
                            format!("{word}. {}", e.trim())
                        }
                    }
                    _ => word.to_string(),
                }
            }
            Gold::Code(c) => format!("{}{}", c.prompt, c.canonical),
            Gold::Ungradable(r) => r.clone()?,
        })
    }
}

/// One problem of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Unique within the benchmark: `HumanEval/7`, `date_understanding/7`,
    /// `arith/7`.
    pub id: String,
    /// 0-based position in the file.
    pub index: usize,
    /// The part it belongs to: `Tune` or `Report`.
    pub split: Split,
    /// The kind of problem (picks the solver's system prompt).
    pub task: Task,
    /// The problem as shown to a model (multiple-choice options included,
    /// lettered `(A) ...` one per line).
    pub prompt: String,
    /// What counts as correct.
    pub gold: Gold,
}

impl Item {
    /// The protocol's view of the item: its task, prompt and the gold as
    /// reference answer ([`Gold::reference`]).
    pub fn problem(&self) -> Problem {
        let p = Problem::new(self.task, self.prompt.clone());
        match self.gold.reference() {
            Some(r) => p.with_reference(r),
            None => p,
        }
    }
}

/// Which format a benchmark was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// HumanEval JSONL (optionally gzipped).
    HumanEval,
    /// A BIG-bench `task.json`.
    BigBench,
    /// The project's JSONL task file.
    TaskFile,
}

/// A loaded benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benchmark {
    /// Its name, as recorded in results: `humaneval`,
    /// `bigbench/date_understanding`, `bigbench/arithmetic/3_digit_addition`,
    /// `tasks/arith`.
    pub name: String,
    /// The format it was read from.
    pub format: Format,
    /// The file it was read from.
    pub source: PathBuf,
    /// Its problems, in file order.
    pub items: Vec<Item>,
}

impl Benchmark {
    /// The items of one part (or all of them).
    pub fn split(&self, split: Split) -> impl Iterator<Item = &Item> {
        self.items.iter().filter(move |i| split.selects(i.split))
    }
}

/// Reads a benchmark, recognising its format: a directory holding
/// `task.json` (BIG-bench) or `HumanEval.jsonl[.gz]`; a `.json` file
/// (BIG-bench); a `.jsonl` or `.jsonl.gz` file whose first record has
/// `task_id` (HumanEval) or `task` and `problem` (a task file).
pub fn load(path: impl AsRef<Path>) -> Result<Benchmark> {
    let path = path.as_ref();
    if path.is_dir() {
        if path.join("task.json").is_file() {
            return load_bigbench(path);
        }
        for name in ["HumanEval.jsonl.gz", "HumanEval.jsonl"] {
            if path.join(name).is_file() {
                return load_humaneval(path.join(name));
            }
        }
        return Err(EvalError::Format {
            path: path.into(),
            message: "a directory without task.json or HumanEval.jsonl[.gz]".into(),
        });
    }
    let text = read_text(path)?;
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !(l.is_empty() || l.starts_with('#') || l.starts_with("//")));
    let Some(first) = first else {
        return Err(EvalError::Format {
            path: path.into(),
            message: "empty file".into(),
        });
    };
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    // One JSON document with `examples` is a BIG-bench task, whatever its name.
    let is_task =
        || serde_json::from_str::<Value>(&text).is_ok_and(|v| v.get("examples").is_some());
    if name.ends_with(".json") || is_task() {
        return parse_bigbench(path, &text, None);
    }
    let record: Value = serde_json::from_str(first).map_err(|e| EvalError::Format {
        path: path.into(),
        message: format!("neither a BIG-bench task.json nor JSONL: {e}"),
    })?;
    if record.get("task_id").is_some() {
        parse_humaneval(path, &text)
    } else if record.get("problem").is_some() {
        parse_task_file(path, &text)
    } else {
        Err(EvalError::Format {
            path: path.into(),
            message: "JSONL whose first record has neither `task_id` (HumanEval) nor `problem` \
                      (task file)"
                .into(),
        })
    }
}

/// Reads a file as UTF-8, gunzipping it if its name ends in `.gz`.
fn read_text(path: &Path) -> Result<String> {
    let mut file = File::open(path).map_err(|e| EvalError::io(path, e))?;
    let mut text = String::new();
    let gz = path.extension().is_some_and(|e| e == "gz");
    let r = if gz {
        flate2::read::GzDecoder::new(file).read_to_string(&mut text)
    } else {
        file.read_to_string(&mut text)
    };
    r.map_err(|e| EvalError::io(path, e))?;
    Ok(text)
}

/// JSONL lines that hold records: `(1-based line number, text)`; blank lines
/// and lines starting with `#` or `//` are skipped.
fn records(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(i, l)| {
        let t = l.trim();
        (!(t.is_empty() || t.starts_with('#') || t.starts_with("//"))).then_some((i + 1, t))
    })
}

// ---------------------------------------------------------------- HumanEval

#[derive(Deserialize)]
struct HumanEvalRecord {
    task_id: String,
    prompt: String,
    canonical_solution: String,
    test: String,
    entry_point: String,
}

/// Problems numbered below this are for tuning.
const HUMANEVAL_TUNE: usize = 82;

/// Reads HumanEval JSONL (`.jsonl` or `.jsonl.gz`). Items are
/// [`Task::Code`] with [`Gold::Code`]; the prompt is HumanEval's (the
/// signature and docstring). `HumanEval/0`–`81` tune, `82`–`163` report (by
/// the number in `task_id`; by position where it has none).
pub fn load_humaneval(path: impl AsRef<Path>) -> Result<Benchmark> {
    let path = path.as_ref();
    parse_humaneval(path, &read_text(path)?)
}

fn parse_humaneval(path: &Path, text: &str) -> Result<Benchmark> {
    let mut items = Vec::new();
    for (line, record) in records(text) {
        let r: HumanEvalRecord = serde_json::from_str(record).map_err(|e| EvalError::Line {
            path: path.into(),
            line,
            message: e.to_string(),
        })?;
        if r.entry_point.trim().is_empty() {
            return Err(EvalError::Line {
                path: path.into(),
                line,
                message: "empty entry_point".into(),
            });
        }
        let index = items.len();
        let number = r
            .task_id
            .rsplit('/')
            .next()
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(index);
        items.push(Item {
            id: r.task_id,
            index,
            split: if number < HUMANEVAL_TUNE {
                Split::Tune
            } else {
                Split::Report
            },
            task: Task::Code,
            prompt: r.prompt.clone(),
            gold: Gold::Code(CodeTest {
                prompt: r.prompt,
                test: r.test,
                entry_point: r.entry_point,
                canonical: r.canonical_solution,
            }),
        });
    }
    Ok(Benchmark {
        name: "humaneval".into(),
        format: Format::HumanEval,
        source: path.into(),
        items,
    })
}

// ----------------------------------------------------------------- BIG-bench

/// Reads a BIG-bench JSON task: `path` is a `task.json` or a directory
/// holding one. The benchmark is named `bigbench/<task>`, where `<task>` is
/// the path below the nearest directory called `benchmark_tasks` (BIG-bench's
/// own layout) or `bigbench` (the shared data's), e.g.
/// `bigbench/tracking_shuffled_objects/three_objects`; elsewhere, the
/// file's `name` field. Use [`load_bigbench_named`] to set it.
///
/// How examples become items:
/// - If `preferred_score` is `multiple_choice_grade` and the example has
///   `target_scores`, or it has `target_scores` but no `target`: multiple
///   choice ([`Task::MultipleChoice`], [`Gold::Choice`]). The options (the
///   keys of `target_scores`, sorted by code point, then shuffled by a
///   ChaCha8 stream seeded from the benchmark name and the example's index,
///   so the order is reproducible and the gold is not always first) are
///   lettered A, B, C, … and listed after the input as `(A) text` lines. The
///   option with the highest score is the gold. Exception: options exactly
///   "Yes" and "No" (any case) make a [`Task::ShortAnswer`] with
///   [`Gold::YesNo`], `target` as its explanation.
/// - Otherwise, free-form ([`Task::ShortAnswer`]): `target` (a string or a
///   list of strings) is the gold; [`Gold::Number`] if it is a single number
///   (all targets the same number), else [`Gold::Text`].
///
/// The prompt is `task_prefix` (if any, then a blank line), then
/// `example_input_prefix` (if the file gives one) and the `input`. Fields
/// for BIG-bench's own few-shot, log-likelihood formatting
/// (`example_output_prefix`, `choice_prefix`, `few_shot_example_separator`,
/// `append_choices_to_input`) do not apply to a chat prompt and are ignored:
/// options are always listed.
pub fn load_bigbench(path: impl AsRef<Path>) -> Result<Benchmark> {
    let file = bigbench_file(path.as_ref());
    parse_bigbench(&file, &read_text(&file)?, None)
}

/// [`load_bigbench`] with the task name given (`<task>` in
/// `bigbench/<task>`; it also seeds the option order).
pub fn load_bigbench_named(path: impl AsRef<Path>, task: &str) -> Result<Benchmark> {
    let file = bigbench_file(path.as_ref());
    parse_bigbench(&file, &read_text(&file)?, Some(task))
}

fn bigbench_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        path.join("task.json")
    } else {
        path.into()
    }
}

/// The task's name from its path (see [`load_bigbench`]).
fn bigbench_task_name(file: &Path, json_name: Option<&str>) -> String {
    let dir = file.parent().unwrap_or(Path::new(""));
    let mut parts = Vec::new();
    for a in dir.ancestors() {
        let Some(n) = a.file_name().and_then(|n| n.to_str()) else {
            break;
        };
        if n == "benchmark_tasks" || n == "bigbench" {
            if parts.is_empty() {
                break;
            }
            parts.reverse();
            return parts.join("/");
        }
        parts.push(n);
    }
    json_name
        .map(str::to_string)
        .or_else(|| dir.file_name().and_then(|n| n.to_str()).map(str::to_string))
        .unwrap_or_else(|| "task".into())
}

fn parse_bigbench(path: &Path, text: &str, name: Option<&str>) -> Result<Benchmark> {
    let field = |field: &str, message: &str| EvalError::Field {
        path: path.into(),
        field: field.into(),
        message: message.into(),
    };
    let doc: Value = serde_json::from_str(text).map_err(|e| EvalError::Format {
        path: path.into(),
        message: format!("not JSON: {e}"),
    })?;
    let obj = doc
        .as_object()
        .ok_or_else(|| field("(top level)", "expected an object"))?;
    let opt_str = |key: &str| -> Result<Option<&str>> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(field(key, "expected a string")),
        }
    };
    let task = match name {
        Some(n) => n.to_string(),
        None => bigbench_task_name(path, opt_str("name")?),
    };
    let prefix = opt_str("task_prefix")?.unwrap_or("");
    let input_prefix = opt_str("example_input_prefix")?.unwrap_or("");
    let prefers_mc = opt_str("preferred_score")? == Some("multiple_choice_grade");
    let examples = obj
        .get("examples")
        .ok_or_else(|| field("examples", "missing"))?
        .as_array()
        .ok_or_else(|| field("examples", "expected an array"))?;

    let mut head = String::new();
    if !prefix.trim().is_empty() {
        head = format!("{}\n\n", prefix.trim_end());
    }
    head += input_prefix.trim_start();

    let mut items = Vec::with_capacity(examples.len());
    for (index, ex) in examples.iter().enumerate() {
        let at = |f: &str| format!("examples[{index}]{f}");
        let ex = ex
            .as_object()
            .ok_or_else(|| field(&at(""), "expected an object"))?;
        let input = ex
            .get("input")
            .ok_or_else(|| field(&at(".input"), "missing"))?
            .as_str()
            .ok_or_else(|| field(&at(".input"), "expected a string"))?;
        let targets: Option<Vec<String>> = match ex.get("target") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(vec![s.clone()]),
            Some(Value::Array(a)) => Some(
                a.iter()
                    .map(|t| t.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| field(&at(".target"), "expected strings"))?,
            ),
            Some(_) => {
                return Err(field(
                    &at(".target"),
                    "expected a string or a list of strings",
                ))
            }
        };
        let scores: Option<Vec<(String, f64)>> = match ex.get("target_scores") {
            None | Some(Value::Null) => None,
            Some(Value::Object(m)) => {
                let mut v = Vec::with_capacity(m.len());
                for (k, s) in m {
                    let s = s
                        .as_f64()
                        .or_else(|| s.as_bool().map(f64::from))
                        .ok_or_else(|| {
                            field(&at(&format!(".target_scores[{k:?}]")), "expected a number")
                        })?;
                    v.push((k.clone(), s));
                }
                Some(v)
            }
            Some(_) => return Err(field(&at(".target_scores"), "expected an object")),
        };
        let question = format!("{head}{}", input.trim_end());
        let (task_kind, prompt, gold) = match (scores, targets) {
            (Some(scores), targets) if prefers_mc || targets.is_none() => {
                multiple_choice(&task, index, question, scores, targets)
                    .map_err(|m| field(&at(".target_scores"), &m))?
            }
            (_, Some(targets)) if !targets.is_empty() => {
                (Task::ShortAnswer, question, free_form(targets))
            }
            (_, Some(_)) => return Err(field(&at(".target"), "empty list")),
            (_, None) => {
                return Err(field(&at(""), "neither `target` nor `target_scores`"));
            }
        };
        items.push(Item {
            id: format!("{task}/{index}"),
            index,
            split: Split::by_parity(index),
            task: task_kind,
            prompt,
            gold,
        });
    }
    Ok(Benchmark {
        name: format!("bigbench/{task}"),
        format: Format::BigBench,
        source: path.into(),
        items,
    })
}

/// A free-form gold: a number if every target is the same number.
fn free_form(targets: Vec<String>) -> Gold {
    let values: Vec<Option<f64>> = targets
        .iter()
        .map(|t| crate::extract::parse_number(t))
        .collect();
    if let Some(Some(first)) = values.first() {
        if values.iter().all(|v| *v == Some(*first)) {
            return Gold::Number {
                value: *first,
                text: targets[0].trim().to_string(),
            };
        }
    }
    Gold::Text(targets)
}

type Built = (Task, String, Gold);

fn multiple_choice(
    task: &str,
    index: usize,
    question: String,
    mut scores: Vec<(String, f64)>,
    targets: Option<Vec<String>>,
) -> std::result::Result<Built, String> {
    if scores.len() < 2 {
        return Err("fewer than two options".into());
    }
    if scores.len() > 26 {
        return Err(format!(
            "{} options; at most 26 can be lettered",
            scores.len()
        ));
    }
    let best = scores.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
    if best.is_nan() || best <= 0.0 {
        return Err("no option scores above 0".into());
    }
    let yes_no = scores.len() == 2 && {
        let mut k: Vec<String> = scores
            .iter()
            .map(|s| s.0.trim().to_ascii_lowercase())
            .collect();
        k.sort();
        k == ["no", "yes"]
    };
    if yes_no {
        let yes = scores
            .iter()
            .find(|s| s.0.trim().eq_ignore_ascii_case("yes"))
            .is_some_and(|s| s.1 == best);
        let no = scores
            .iter()
            .find(|s| s.0.trim().eq_ignore_ascii_case("no"))
            .is_some_and(|s| s.1 == best);
        if yes == no {
            return Err("\"Yes\" and \"No\" score the same".into());
        }
        let explanation = targets.and_then(|t| t.into_iter().next());
        return Ok((
            Task::ShortAnswer,
            question,
            Gold::YesNo { yes, explanation },
        ));
    }
    // File order is not a stable basis (JSON object order depends on the
    // parser), so sort, then shuffle reproducibly.
    scores.sort_by(|a, b| a.0.cmp(&b.0));
    shuffle(&mut scores, option_seed(task, index));
    let letters: Vec<char> = (b'A'..=b'Z').map(char::from).take(scores.len()).collect();
    let correct: Vec<char> = scores
        .iter()
        .zip(&letters)
        .filter(|(s, _)| s.1 == best)
        .map(|(_, &l)| l)
        .collect();
    let options: Vec<String> = scores.into_iter().map(|s| s.0.trim().to_string()).collect();
    let mut prompt = question;
    prompt += "\n\nOptions:";
    for (l, o) in letters.iter().zip(&options) {
        prompt += &format!("\n({l}) {o}");
    }
    Ok((
        Task::MultipleChoice,
        prompt,
        Gold::Choice {
            options,
            letter: correct[0],
            also_correct: correct[1..].to_vec(),
        },
    ))
}

/// FNV-1a of `task`, a NUL byte and the decimal index: the seed of an
/// example's option order.
pub fn option_seed(task: &str, index: usize) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for b in task.bytes().chain([0]).chain(index.to_string().bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Fisher–Yates with a ChaCha8 stream from `seed`; `j` drawn as the high
/// half of `next_u64 × (i + 1)`. Written out (not `SliceRandom::shuffle`)
/// so the order cannot change with the `rand` version.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..v.len()).rev() {
        let j = ((u128::from(rng.next_u64()) * (i as u128 + 1)) >> 64) as usize;
        v.swap(i, j);
    }
}

// ----------------------------------------------------------------- task files

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
enum TaskName {
    #[serde(alias = "short-answer")]
    Short,
    #[serde(alias = "multiple-choice")]
    Mc,
    Code,
}

#[derive(Deserialize)]
struct TaskRecord {
    task: TaskName,
    problem: String,
    #[serde(default)]
    answer: Option<Value>,
}

/// The text formats [`parse_text`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextFormat {
    /// HumanEval JSON lines.
    HumanEval,
    /// A BIG-bench `task.json`.
    BigBench,
    /// The project's task file (JSON lines).
    TaskFile,
}

/// Parses benchmark text already in memory (what the loaders do after
/// reading a file; the fuzz targets call it). `name` stands for the path
/// in messages.
pub fn parse_text(format: TextFormat, name: &str, text: &str) -> Result<Benchmark> {
    let path = Path::new(name);
    match format {
        TextFormat::HumanEval => parse_humaneval(path, text),
        TextFormat::BigBench => parse_bigbench(path, text, None),
        TextFormat::TaskFile => parse_task_file(path, text),
    }
}

/// Reads a project task file (`config/tasks/*.jsonl`): one JSON object per
/// line, `{"task": "short"|"mc"|"code", "problem": ..., "answer": ...}`;
/// blank lines and lines starting with `#` or `//` are skipped, as
/// `tenbits_agents::load_tasks` does. The benchmark is `tasks/<file stem>`.
/// Gold: short answers a [`Gold::Number`] when the answer is a number, else
/// [`Gold::Text`]; multiple choice a [`Gold::Choice`] whose letter is the
/// answer (`B` or `(B)`; the options are in the problem text, so
/// `options` is empty); code, and any problem without an answer,
/// [`Gold::Ungradable`]. Split by record index: even tune, odd report.
pub fn load_task_file(path: impl AsRef<Path>) -> Result<Benchmark> {
    let path = path.as_ref();
    parse_task_file(path, &read_text(path)?)
}

fn parse_task_file(path: &Path, text: &str) -> Result<Benchmark> {
    let stem = path
        .file_name()
        .and_then(|n| n.to_str())
        .map(|n| {
            n.trim_end_matches(".gz")
                .trim_end_matches(".jsonl")
                .to_string()
        })
        .unwrap_or_else(|| "tasks".into());
    let mut items = Vec::new();
    for (line, record) in records(text) {
        let bad = |message: String| EvalError::Line {
            path: path.into(),
            line,
            message,
        };
        let r: TaskRecord = serde_json::from_str(record).map_err(|e| bad(e.to_string()))?;
        let answer = match r.answer {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s),
            Some(Value::Number(n)) => Some(n.to_string()),
            Some(_) => return Err(bad("`answer` must be a string or a number".into())),
        };
        let (task, gold) = match (r.task, answer) {
            (TaskName::Short, Some(a)) => (Task::ShortAnswer, free_form(vec![a])),
            (TaskName::Mc, Some(a)) => {
                let l = a
                    .trim()
                    .trim_start_matches('(')
                    .trim_end_matches([')', '.'])
                    .trim();
                let mut cs = l.chars();
                let letter = match (cs.next(), cs.next()) {
                    (Some(c), None) if c.is_ascii_alphabetic() => c.to_ascii_uppercase(),
                    _ => {
                        return Err(bad(format!(
                            "a multiple-choice answer must be an option letter, not {a:?}"
                        )))
                    }
                };
                (
                    Task::MultipleChoice,
                    Gold::Choice {
                        options: Vec::new(),
                        letter,
                        also_correct: Vec::new(),
                    },
                )
            }
            (TaskName::Code, a) => (Task::Code, Gold::Ungradable(a)),
            (TaskName::Short, None) => (Task::ShortAnswer, Gold::Ungradable(None)),
            (TaskName::Mc, None) => (Task::MultipleChoice, Gold::Ungradable(None)),
        };
        let index = items.len();
        items.push(Item {
            id: format!("{stem}/{index}"),
            index,
            split: Split::by_parity(index),
            task,
            prompt: r.problem,
            gold,
        });
    }
    Ok(Benchmark {
        name: format!("tasks/{stem}"),
        format: Format::TaskFile,
        source: path.into(),
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn task_names_from_paths() {
        let n = |p: &str| bigbench_task_name(Path::new(p), Some("json"));
        assert_eq!(
            n("/d/bigbench/date_understanding/task.json"),
            "date_understanding"
        );
        assert_eq!(
            n("/x/bigbench/benchmark_tasks/tracking_shuffled_objects/three_objects/task.json"),
            "tracking_shuffled_objects/three_objects"
        );
        assert_eq!(n("/x/tasks/three_objects/task.json"), "json");
        assert_eq!(bigbench_task_name(Path::new("task.json"), None), "task");
    }

    #[test]
    fn shuffle_is_a_permutation_and_stable() {
        let mut v: Vec<u32> = (0..7).collect();
        shuffle(&mut v, 42);
        let mut s = v.clone();
        s.sort();
        assert_eq!(s, (0..7).collect::<Vec<_>>());
        let mut w: Vec<u32> = (0..7).collect();
        shuffle(&mut w, 42);
        assert_eq!(v, w);
        // Every position gets the first element for some seed.
        let firsts: std::collections::HashSet<usize> = (0..200)
            .map(|seed| {
                let mut v: Vec<u32> = (0..4).collect();
                shuffle(&mut v, seed);
                v.iter().position(|&x| x == 0).unwrap()
            })
            .collect();
        assert_eq!(firsts.len(), 4);
    }

    #[test]
    fn bad_task_files_name_the_line() {
        let p = Path::new("t.jsonl");
        let e = parse_task_file(
            p,
            "{\"task\":\"short\",\"problem\":\"x\"}\n\n{\"task\":\"long\"}",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("t.jsonl:3: "), "{e}");
        let e = parse_task_file(p, "{\"task\":\"mc\",\"problem\":\"x\",\"answer\":\"blue\"}")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("t.jsonl:1: ") && e.contains("letter"), "{e}");
        let b = parse_task_file(
            p,
            "# c\n{\"task\":\"mc\",\"problem\":\"x\",\"answer\":\"(c)\"}",
        )
        .unwrap();
        assert!(matches!(b.items[0].gold, Gold::Choice { letter: 'C', .. }));
    }

    #[test]
    fn bad_bigbench_names_the_field() {
        let p = Path::new("task.json");
        let e = |t: &str| parse_bigbench(p, t, Some("t")).unwrap_err().to_string();
        assert_eq!(e("[]"), "task.json: (top level): expected an object");
        assert_eq!(e("{}"), "task.json: examples: missing");
        assert_eq!(
            e(r#"{"examples":[{"input":"a","target":"b"},{"input":3}]}"#),
            "task.json: examples[1].input: expected a string"
        );
        assert_eq!(
            e(r#"{"examples":[{"input":"a","target_scores":{"x":0,"y":"1"}}]}"#),
            "task.json: examples[0].target_scores[\"y\"]: expected a number"
        );
        assert_eq!(
            e(r#"{"examples":[{"input":"a","target_scores":{"x":0,"y":0}}]}"#),
            "task.json: examples[0].target_scores: no option scores above 0"
        );
        assert_eq!(
            e(r#"{"examples":[{"input":"a"}]}"#),
            "task.json: examples[0]: neither `target` nor `target_scores`"
        );
        assert!(e("{").starts_with("task.json: not JSON"));
    }

    #[test]
    fn bigbench_shapes() {
        let t = r#"{"name":"t","task_prefix":"Solve.","preferred_score":"multiple_choice_grade",
          "examples":[
            {"input":"Q1","target_scores":{"red":0,"blue":1,"green":0}},
            {"input":"Is it?","target_scores":{"Yes":0,"No":1},"target":"No. Because."},
            {"input":"2+2","target":["4","4.0"]},
            {"input":"Who?","target":["Ann","Anna"]}]}"#;
        let b = parse_bigbench(Path::new("task.json"), t, None).unwrap();
        assert_eq!(b.name, "bigbench/t");
        let Gold::Choice {
            options, letter, ..
        } = &b.items[0].gold
        else {
            panic!()
        };
        let i = (*letter as u8 - b'A') as usize;
        assert_eq!(options[i], "blue");
        assert!(b.items[0]
            .prompt
            .starts_with("Solve.\n\nQ1\n\nOptions:\n(A) "));
        assert_eq!(
            b.items[1].gold,
            Gold::YesNo {
                yes: false,
                explanation: Some("No. Because.".into())
            }
        );
        assert_eq!(b.items[1].task, Task::ShortAnswer);
        assert_eq!(b.items[1].gold.reference().unwrap(), "No. Because.");
        assert_eq!(
            b.items[2].gold,
            Gold::Number {
                value: 4.0,
                text: "4".into()
            }
        );
        assert_eq!(
            b.items[3].gold,
            Gold::Text(vec!["Ann".into(), "Anna".into()])
        );
        assert_eq!(
            b.split(Split::Report).map(|i| i.index).collect::<Vec<_>>(),
            [1, 3]
        );
    }
}
