//! The evaluation itself: every method on every problem, shared work done
//! once, one result line per (problem, method) as it finishes.
//!
//! Methods ([`Method`]):
//! - `small`, `large`: each model alone, greedy.
//! - `blc`: the small model asks N questions and answers them itself (the
//!   control for "more compute, no knowledge").
//! - `qa`, `qa+`: the published protocol with the answerer's view named by
//!   [`EvalSettings::view`]: `OwnSolution` (the large model solves first and
//!   answers from that: honest) or `Reference` (it sees the gold answer: an
//!   oracle). `qa+`: the large model also writes the questions.
//! - `coded`: the `qa` session with its answers range-coded under the
//!   asker's own predictions; its bits are what that code costs.
//! - `select`: the small model proposes candidates (option letters; the
//!   final answers of K sampled drafts and of its listed answers; K sampled
//!   programs) and the large model's bits bisect them toward its own choice
//!   (the candidate matching its own final answer, or for code the one it
//!   judges most likely correct given its own solution; never the hidden
//!   tests). With [`EvalSettings::visible_filter`], for code, only the
//!   programs passing the most of the examples the prompt shows
//!   ([`visible_examples`](crate::visible_examples)) are bisected.
//! - `tested`: the control for `select` on code, with no bits: the
//!   receiver runs the same candidates on the prompt's visible examples and
//!   keeps the first passing the most (on other tasks it has nothing to
//!   run and answers its draft).
//!
//! Problems run side by side ([`EvalSettings::batch`] at a time), on
//! handles of one [`SharedModel`] per model, so their calls merge into
//! batched calls. Each problem's handles are wrapped in [`Metered`], so the
//! small model's draft and the large model's own solution are computed
//! once per problem and charged to every method that uses them.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex, MutexGuard};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tenbits_qa::prompts::{self, FALLBACK_QUESTION, SOLUTION_LABEL, VERDICT_QUESTION};
use tenbits_qa::{
    asker_probabilities, bisect_to, list_candidates, run, AnswererView, ChatModel, Config,
    Knowledge, Problem, Sampling, Setting, SharedModel, Transcript, Usage,
};

use crate::bench::{Gold, Item};
use crate::error::{EvalError, Result};
use crate::extract::{extract_choice, extract_code, grade, numbers_equal, parse_number};
use crate::metered::{Memory, Metered};
use crate::results::{hex, read_results, ResultsWriter, RunKey};
use crate::sandbox::Sandbox;
use crate::visible::{example_program, visible_examples};

/// One way of answering a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Method {
    /// The small model alone.
    Small,
    /// The large model alone.
    Large,
    /// The small model asks and answers itself.
    Blc,
    /// The small model asks, the large one answers.
    Qa,
    /// The large model writes the questions and answers them.
    QaPlus,
    /// `qa` with answers range-coded under the asker's predictions.
    Coded,
    /// The small model's candidates tested on the prompt's visible
    /// examples, no bits: `select`'s control on code.
    Tested,
    /// The large model's bits choose among the small model's candidates.
    Select,
    /// Not a method but a check of the answerer alone: "Is the answer X?"
    /// with the gold X and with a wrong X (the small model's, else a
    /// changed gold), answered from its view; graded on the answers.
    Probe,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 9] = [
        Method::Small,
        Method::Large,
        Method::Blc,
        Method::Qa,
        Method::QaPlus,
        Method::Coded,
        Method::Tested,
        Method::Select,
        Method::Probe,
    ];

    /// Its name on the command line and in results.
    pub fn name(self) -> &'static str {
        match self {
            Method::Small => "small",
            Method::Large => "large",
            Method::Blc => "blc",
            Method::Qa => "qa",
            Method::QaPlus => "qa+",
            Method::Coded => "coded",
            Method::Tested => "tested",
            Method::Select => "select",
            Method::Probe => "probe",
        }
    }

    /// The method named `name`.
    pub fn parse(name: &str) -> Result<Method> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .ok_or_else(|| {
                let known: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                EvalError::Invalid(format!(
                    "unknown method {name:?}; expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

/// What every method of one run shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalSettings {
    /// Questions per session, and the most bits `select` may use.
    pub bits: usize,
    /// What the answerer knows: `OwnSolution` (honest) or `Reference`
    /// (the gold answer: an oracle upper bound).
    pub view: Knowledge,
    /// Whether the answerer also sees the asker's draft (the published
    /// protocol keeps it hidden).
    pub sees_answer: bool,
    /// Whether claims about the final answer are decided by comparison with
    /// the answerer's known final answer
    /// ([`AnswererView::checks_claims`]).
    pub checks_claims: bool,
    /// Token limit of every generation.
    pub max_tokens: usize,
    /// Sampled drafts (or programs) `select` draws candidates from.
    pub select_samples: usize,
    /// Temperature of those samples.
    pub select_temperature: f32,
    /// Seed of every sampled generation.
    pub seed: u64,
    /// Problems run side by side, their model calls merged into batches
    /// (changes no result, only the time).
    pub batch: usize,
    /// For code, `select` bisects only the candidates passing the most of
    /// the prompt's visible examples (the receiver runs them; the sender,
    /// with the same small model, can too).
    #[serde(default)]
    pub visible_filter: bool,
    /// The P(yes) at or above which the answerer's bit is yes
    /// ([`AnswererView::yes_threshold`]).
    #[serde(default = "tenbits_qa::default_yes_threshold")]
    pub yes_threshold: f64,
}

impl Default for EvalSettings {
    fn default() -> Self {
        Self {
            bits: 10,
            view: Knowledge::OwnSolution,
            sees_answer: false,
            checks_claims: false,
            max_tokens: 512,
            select_samples: 8,
            select_temperature: 0.8,
            seed: 0,
            batch: 8,
            visible_filter: false,
            yes_threshold: tenbits_qa::DEFAULT_YES_THRESHOLD,
        }
    }
}

impl EvalSettings {
    /// The canonical string results are keyed by (everything but `batch`,
    /// which changes no result). Settings added later appear only when not
    /// at their default, so earlier results keep their keys.
    pub fn key(&self) -> String {
        let mut later = String::new();
        if self.visible_filter {
            later += " visible_filter=true";
        }
        if self.yes_threshold != tenbits_qa::DEFAULT_YES_THRESHOLD {
            later += &format!(" yes_threshold={}", self.yes_threshold);
        }
        format!(
            "bits={} view={:?} sees_answer={} checks_claims={} max_tokens={} select={}@{} seed={}{later}",
            self.bits,
            self.view,
            self.sees_answer,
            self.checks_claims,
            self.max_tokens,
            self.select_samples,
            self.select_temperature,
            self.seed
        )
    }

    /// Greedy sampling at the token limit.
    fn greedy(&self) -> Sampling {
        Sampling::greedy(self.max_tokens)
    }

    /// The protocol's configuration for a session.
    fn config(&self, code_answers: bool) -> Config {
        Config {
            questions: self.bits,
            rounds: 1,
            iterative: false,
            view: AnswererView {
                knowledge: self.view,
                sees_answer: self.sees_answer,
                checks_claims: self.checks_claims,
                yes_threshold: self.yes_threshold,
            },
            code_answers,
            answer_sampling: self.greedy(),
            question_sampling: self.greedy(),
        }
    }
}

/// The result of one method on one problem.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The final reply.
    pub reply: String,
    /// What was graded in it, if anything was found.
    pub extracted: Option<String>,
    /// Whether it is right (false when ungradable or truncated and wrong).
    pub correct: bool,
    /// Whether the problem could be graded at all.
    pub graded: bool,
    /// Whether the final reply ended at the token limit.
    pub truncated: bool,
    /// One-bit answers the large model sent.
    pub bits: usize,
    /// For `coded`: bits actually needed, the mode flag plus the shorter of
    /// plain bits and the range code under the asker's predictions.
    pub coded_bits: Option<f64>,
    /// Bytes of the one-way payload (whole bytes).
    pub payload_bytes: usize,
    /// Work charged to the small model.
    pub small: Usage,
    /// Work charged to the large model.
    pub large: Usage,
    /// Wall time this method added (shared work done earlier is free here;
    /// with problems side by side, its time in its problem's thread, which
    /// overlaps other problems' and includes waiting for merged calls).
    pub wall_seconds: f64,
    /// For `large`: tokens of its reply (the size of what QA stands in for).
    pub response_tokens: Option<u64>,
    /// For sessions: the asker's diagnostics.
    pub asker: Option<AskerNotes>,
    /// For `select`: the candidates, the asker's order, and which was chosen.
    pub candidates: Option<Vec<String>>,
    /// For `tested` (and `select` with the visible filter): how many of the
    /// prompt's visible examples each of the small model's candidates
    /// passed, in its order (before any filter).
    #[serde(default)]
    pub visible: Option<Vec<usize>>,
    /// For sessions: the transcript, without the answerer's private view.
    pub transcript: Option<Transcript>,
    /// For `probe`: each claim, whether it is true, and the answer.
    #[serde(default)]
    pub probe: Vec<ProbeClaim>,
}

/// One claim of known truth put to the answerer (`probe`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeClaim {
    /// The question.
    pub question: String,
    /// Whether its claim is true.
    pub truth: bool,
    /// The answerer's P(yes) (1 or 0 when decided by comparison).
    pub p_yes: f64,
    /// Its bit.
    pub bit: bool,
}

/// How the asker used its questions (for `blc`, `qa`, `qa+`, `coded`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AskerNotes {
    /// Questions the asker did not write (padding).
    pub padded: usize,
    /// Answers whose bit the asker predicted right (P ≥ 0.5 = yes), when
    /// predictions were made (`coded`).
    pub predicted_right: Option<usize>,
    /// Whether the revision differs from the draft.
    pub revised: bool,
    /// Answers that were "yes".
    pub yes: usize,
}

/// Progress of a run: `done` of `total` (problem, method) results.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunProgress {
    /// Results finished, this run or before.
    pub done: usize,
    /// Results asked for.
    pub total: usize,
    /// Of `done`, those found finished in the results file.
    pub skipped: usize,
}

/// Runs methods over problems with two models, writing results as it goes.
///
/// [`EvalSettings::batch`] problems run side by side, each on a thread of
/// its own with handles on the two shared models ([`SharedModel`]), so
/// their calls (drafts, own solutions, questions, answers, revisions)
/// merge into batched calls as they coincide. Every problem's results are
/// what it gets alone (the key leaves `batch` out); only the wall time
/// changes.
pub struct Evaluator<S, L> {
    small: SharedModel<S>,
    large: SharedModel<L>,
    settings: EvalSettings,
    benchmark: String,
    sandbox: Option<Sandbox>,
    writer: ResultsWriter,
    done: HashSet<RunKey>,
    /// What each problem's models remember (by item id), kept across runs
    /// with other settings.
    memories: HashMap<String, (Memory, Memory)>,
    /// Work actually computed by the small and large model so far.
    spent: (Usage, Usage),
}

/// A message from a problem's thread to the writer.
enum Outcome {
    Finished(RunKey, Box<Record>),
    Failed(EvalError),
    /// The problem is done: its models' memories and the work they did.
    Done(String, Box<(Memory, Memory)>, Usage, Usage),
}

impl<S: ChatModel + Send, L: ChatModel + Send> Evaluator<S, L> {
    /// An evaluator appending to `results` (finished keys found there are
    /// skipped). `sandbox` grades code problems; without it they fail to
    /// grade with an error.
    pub fn new(
        small: S,
        large: L,
        settings: EvalSettings,
        benchmark: &str,
        sandbox: Option<Sandbox>,
        results: &Path,
    ) -> Result<Self> {
        let done = if results.exists() {
            read_results::<Record>(results)?.finished()
        } else {
            HashSet::new()
        };
        Ok(Self {
            small: SharedModel::new(small),
            large: SharedModel::new(large),
            settings,
            benchmark: benchmark.to_string(),
            sandbox,
            writer: ResultsWriter::open(results)?,
            done,
            memories: HashMap::new(),
            spent: (Usage::default(), Usage::default()),
        })
    }

    /// The settings.
    pub fn settings(&self) -> &EvalSettings {
        &self.settings
    }

    /// Goes on with other settings (another bit budget, say), keeping what
    /// the models remember: the drafts and own solutions are not redone.
    pub fn set_settings(&mut self, settings: EvalSettings) {
        self.settings = settings;
    }

    /// What the small and the large model actually computed so far (a
    /// remembered answer counts once, however many methods used it).
    pub fn spent(&self) -> (Usage, Usage) {
        self.spent
    }

    /// The models' ids, small then large, as keys name them.
    pub fn model_ids(&self) -> [[u8; 16]; 2] {
        [self.small.model_id(), self.large.model_id()]
    }

    /// The key of `method` on `item`.
    pub fn key(&self, item: &Item, method: Method) -> RunKey {
        run_key(
            self.model_ids(),
            &self.settings,
            &self.benchmark,
            item,
            method,
        )
    }

    /// Runs `methods` on `items`, skipping finished results; `progress` is
    /// called after each result. On the first failure the problems under
    /// way finish their current method and the error is returned; what
    /// finished is written.
    pub fn run(
        &mut self,
        items: &[Item],
        methods: &[Method],
        progress: &mut dyn FnMut(RunProgress),
    ) -> Result<()> {
        let total = items.len() * methods.len();
        let pending: Vec<(&Item, Vec<(Method, RunKey)>)> = items
            .iter()
            .map(|item| {
                let todo = methods
                    .iter()
                    .map(|&m| (m, self.key(item, m)))
                    .filter(|(_, key)| !self.done.contains(key))
                    .collect();
                (item, todo)
            })
            .filter(|(_, todo): &(_, Vec<_>)| !todo.is_empty())
            .collect();
        let skipped = total - pending.iter().map(|(_, m)| m.len()).sum::<usize>();
        let mut state = RunProgress {
            done: skipped,
            total,
            skipped,
        };
        progress(state);
        let workers = self.settings.batch.clamp(1, pending.len().max(1));
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let memories = Mutex::new(std::mem::take(&mut self.memories));
        let (tx, rx) = mpsc::channel::<Outcome>();
        let (settings, sandbox) = (&self.settings, self.sandbox.as_ref());
        let (small, large) = (&self.small, &self.large);
        let (writer, done, spent) = (&mut self.writer, &mut self.done, &mut self.spent);
        let mut failure = None;
        std::thread::scope(|scope| {
            for _ in 0..workers {
                let tx = tx.clone();
                let (pending, next, stop, memories) = (&pending, &next, &stop, &memories);
                scope.spawn(move || loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= pending.len() || stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let (item, todo) = &pending[i];
                    let (small_memory, large_memory) =
                        relock(memories).remove(&item.id).unwrap_or_default();
                    let mut problem = ProblemRun {
                        small: Metered::with_memory(small.clone(), small_memory),
                        large: Metered::with_memory(large.clone(), large_memory),
                        settings,
                        sandbox,
                        visible: None,
                    };
                    for (method, key) in todo {
                        let outcome = match problem.run_one(item, *method) {
                            Ok(record) => Outcome::Finished(key.clone(), Box::new(record)),
                            Err(e) => Outcome::Failed(e),
                        };
                        let failed = matches!(outcome, Outcome::Failed(_));
                        if tx.send(outcome).is_err() || failed {
                            stop.store(true, Ordering::SeqCst);
                            break;
                        }
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                    }
                    let (small_spent, large_spent) = (problem.small.spent(), problem.large.spent());
                    let memory = (problem.small.into_memory(), problem.large.into_memory());
                    let _ = tx.send(Outcome::Done(
                        item.id.clone(),
                        Box::new(memory),
                        small_spent,
                        large_spent,
                    ));
                });
            }
            drop(tx);
            for outcome in rx {
                match outcome {
                    Outcome::Finished(key, record) => {
                        if let Err(e) = writer.append(&key, &record) {
                            stop.store(true, Ordering::SeqCst);
                            failure.get_or_insert(e);
                            continue;
                        }
                        done.insert(key);
                        state.done += 1;
                        progress(state);
                    }
                    Outcome::Failed(e) => {
                        failure.get_or_insert(e);
                    }
                    Outcome::Done(id, memory, s, l) => {
                        relock(&memories).insert(id, *memory);
                        spent.0 += s;
                        spent.1 += l;
                    }
                }
            }
        });
        self.memories = memories
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        failure.map_or(Ok(()), Err)
    }
}

/// The key of `method` on `item` with these models (small, then large) and
/// settings: what [`Evaluator::key`] gives, without loading the models
/// (their ids are their [`Fingerprint`](tenbits_inference::Fingerprint)s'
/// `model_id`), so a report can be made from results alone.
pub fn run_key(
    models: [[u8; 16]; 2],
    settings: &EvalSettings,
    benchmark: &str,
    item: &Item,
    method: Method,
) -> RunKey {
    RunKey {
        models: models.iter().map(|id| hex(id)).collect(),
        prompt_version: tenbits_qa::task_prompt_version(item.task),
        settings: settings.key(),
        benchmark: benchmark.to_string(),
        problem: item.id.clone(),
        method: method.name().to_string(),
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One problem's methods, on its own handles of the two models.
struct ProblemRun<'a, S, L> {
    small: Metered<SharedModel<S>>,
    large: Metered<SharedModel<L>>,
    settings: &'a EvalSettings,
    sandbox: Option<&'a Sandbox>,
    /// The last candidates run on the visible examples, with what
    /// [`ProblemRun::visible_tests`] found, so `tested` and a filtered
    /// `select` on one problem run them once.
    visible: Option<(Vec<String>, VisibleTests)>,
}

/// How many visible examples each candidate passes, and the positions of
/// those passing the most.
type VisibleTests = (Vec<usize>, Vec<usize>);

impl<S: ChatModel, L: ChatModel> ProblemRun<'_, S, L> {
    fn run_one(&mut self, item: &Item, method: Method) -> Result<Record> {
        let start = Instant::now();
        self.small.take_charged();
        self.large.take_charged();
        let problem = self.problem(item);
        let mut record = match method {
            Method::Small | Method::Large => {
                let sampling = self.settings.greedy();
                let conversation = solve_prompt(item);
                let model: &mut dyn ChatModel = match method {
                    Method::Small => &mut self.small,
                    _ => &mut self.large,
                };
                let reply = model.complete(&[(conversation, sampling)])?.remove(0);
                let mut r = empty_record(reply.text);
                r.truncated = reply.truncated;
                if method == Method::Large {
                    r.response_tokens = Some(reply.new_tokens);
                }
                r
            }
            Method::Blc | Method::Qa | Method::QaPlus | Method::Coded => {
                let setting = match method {
                    Method::Blc => Setting::Blc,
                    Method::QaPlus => Setting::QaPlus,
                    _ => Setting::Qa,
                };
                let config = self.settings.config(method == Method::Coded);
                let t = run(setting, &config, &mut self.small, &mut self.large, &problem).map_err(
                    |source| EvalError::Protocol {
                        problem: item.id.clone(),
                        source,
                    },
                )?;
                let mut r = empty_record(t.answer().to_string());
                r.truncated = self.small.was_truncated(t.answer());
                r.bits = t.raw_bits;
                r.payload_bytes = t.payload.len();
                if method == Method::Coded {
                    r.coded_bits = Some(1.0 + t.ideal_bits.min(t.raw_bits as f64));
                }
                r.asker = Some(asker_notes(&t));
                r.transcript = Some(t.public());
                r
            }
            Method::Select => self.select(item, &problem)?,
            Method::Tested => self.tested(item, &problem)?,
            Method::Probe => self.probe(item, &problem)?,
        };
        if method == Method::Probe {
            record.graded = !record.probe.is_empty();
            record.correct = record.graded && record.probe.iter().all(|c| c.bit == c.truth);
        } else {
            self.grade(item, &mut record)?;
        }
        record.small = self.small.take_charged();
        record.large = self.large.take_charged();
        record.wall_seconds = start.elapsed().as_secs_f64();
        Ok(record)
    }

    /// The protocol's problem: the gold answer as reference only for the
    /// oracle view.
    fn problem(&self, item: &Item) -> Problem {
        let problem = item.problem();
        match self.settings.view {
            Knowledge::Reference | Knowledge::ReferenceElseOwn => problem,
            Knowledge::OwnSolution => Problem {
                reference: None,
                ..problem
            },
        }
    }

    fn grade(&self, item: &Item, record: &mut Record) -> Result<()> {
        if let Gold::Code(code) = &item.gold {
            let sandbox = needed(self.sandbox, "be graded")?;
            let (g, _) = sandbox.grade(code, &record.reply, record.truncated)?;
            record.correct = g.correct;
            record.graded = true;
            record.extracted = g.extracted.map(|e| e.text);
            return Ok(());
        }
        if let Some(g) = grade(&item.gold, &record.reply, record.truncated) {
            record.correct = g.correct;
            record.graded = true;
            record.extracted = g.extracted.map(|e| e.text);
        }
        Ok(())
    }

    /// `probe`: the gold claim and a wrong claim, answered from the view.
    fn probe(&mut self, item: &Item, problem: &Problem) -> Result<Record> {
        let Some(gold) = item.gold.short_answer() else {
            return Ok(empty_record(String::new()));
        };
        let draft = self
            .small
            .generate(&[(solve_prompt(item), self.settings.greedy())])?
            .remove(0);
        let theirs = match &item.gold {
            Gold::Choice { options, .. } => extract_choice(&draft, options).map(|e| e.text),
            _ => crate::extract::extract_answer(&draft).map(|e| e.text),
        };
        let wrong = theirs
            .filter(|t| !same_answer(t, &gold))
            .unwrap_or_else(|| changed(&item.gold, &gold));
        let claims = [(gold, true), (wrong, false)];
        let questions: Vec<String> = claims
            .iter()
            .map(|(c, _)| format!("Is the answer {c}?"))
            .collect();
        let request = tenbits_qa::AnswerRequest {
            problem: problem.clone(),
            current_answer: String::new(),
            questions: questions.clone(),
            sees_answer: false,
            verdict: false,
        };
        let config = self.settings.config(false);
        let mut book = tenbits_qa::AnswerBook::for_view(&config.view, config.answer_sampling);
        let answers = tenbits_qa::answer_batch(&mut book, &mut self.large, &[&request])
            .map_err(qa_err)?
            .remove(0);
        let mut r = empty_record(String::new());
        r.probe = questions
            .into_iter()
            .zip(claims)
            .zip(answers)
            .map(|((question, (_, truth)), a)| ProbeClaim {
                question,
                truth,
                p_yes: a.p_yes.unwrap_or(f64::NAN),
                bit: a.bit,
            })
            .collect();
        r.bits = r.probe.len();
        Ok(r)
    }

    /// The small model's candidates (`select`, `tested`): the greedy draft
    /// and K samples, each as its final answer (the option letters for
    /// multiple choice, plus its listed answers for short answers) or its
    /// program, each once, in the asker's order; with the reply each came
    /// from, and the greedy draft.
    fn candidates(
        &mut self,
        item: &Item,
        problem: &Problem,
    ) -> Result<(Vec<String>, Vec<String>, String)> {
        let s = self.settings;
        let sampled = |seed: u64| Sampling {
            temperature: s.select_temperature,
            seed: s.seed.wrapping_mul(1_000_003).wrapping_add(seed),
            ..s.greedy()
        };
        let solve = solve_prompt(item);
        // The greedy draft first, then K samples, in one batch.
        let mut asks = vec![(solve.clone(), s.greedy())];
        asks.extend((1..=s.select_samples as u64).map(|k| (solve.clone(), sampled(k))));
        let drafts = self.small.generate(&asks)?;
        let mut candidates: Vec<String> = Vec::new();
        let mut replies: Vec<String> = Vec::new();
        let mut push = |c: String, reply: String, out: &mut Vec<String>| {
            let c = c.trim().to_string();
            if !c.is_empty() && !out.iter().any(|o| same_answer(o, &c)) {
                out.push(c);
                replies.push(reply);
            }
        };
        match &item.gold {
            Gold::Choice { options, .. } => {
                for i in 0..options.len() {
                    let letter = ((b'A' + i as u8) as char).to_string();
                    push(letter.clone(), answer_reply(&letter), &mut candidates);
                }
            }
            Gold::Code(_) => {
                for d in &drafts {
                    push(extract_code(d).text, d.clone(), &mut candidates);
                }
            }
            _ => {
                for d in &drafts {
                    if let Some(e) = crate::extract::extract_answer(d) {
                        push(e.text.clone(), answer_reply(&e.text), &mut candidates);
                    }
                }
                let k = s.select_samples.max(1);
                let listed =
                    list_candidates(&mut self.small, problem, k, &s.greedy()).map_err(qa_err)?;
                for c in listed {
                    push(c.clone(), answer_reply(&c), &mut candidates);
                }
            }
        }
        let draft = drafts.into_iter().next().unwrap_or_default();
        Ok((candidates, replies, draft))
    }

    /// For code: how many of the prompt's visible examples each candidate
    /// passes, and the positions of those passing the most (all of them
    /// when none passes any, or the prompt shows none). `None` for other
    /// tasks, where there is nothing to run.
    fn visible_tests(
        &mut self,
        item: &Item,
        candidates: &[String],
    ) -> Result<Option<VisibleTests>> {
        let Gold::Code(code) = &item.gold else {
            return Ok(None);
        };
        if let Some((seen, found)) = &self.visible {
            if seen == candidates {
                return Ok(Some(found.clone()));
            }
        }
        let sandbox = needed(self.sandbox, "run their examples")?;
        let examples = visible_examples(&code.prompt, &code.entry_point);
        let programs: Vec<String> = candidates
            .iter()
            .flat_map(|c| {
                let program = format!("{}{c}\n", code.prompt);
                examples.iter().map(move |e| example_program(&program, e))
            })
            .collect();
        let outcomes = sandbox.run_many(&programs);
        let mut passed = vec![0usize; candidates.len()];
        for (i, outcome) in outcomes.into_iter().enumerate() {
            if outcome?.passed() {
                passed[i / examples.len()] += 1;
            }
        }
        let best = passed.iter().copied().max().unwrap_or(0);
        let kept: Vec<usize> = (0..candidates.len())
            .filter(|&i| best == 0 || passed[i] == best)
            .collect();
        self.visible = Some((candidates.to_vec(), (passed.clone(), kept.clone())));
        Ok(Some((passed, kept)))
    }

    /// `tested`: the first candidate passing the most visible examples; no
    /// bits, no large model.
    fn tested(&mut self, item: &Item, problem: &Problem) -> Result<Record> {
        let (candidates, replies, draft) = self.candidates(item, problem)?;
        let Some((passed, kept)) = self.visible_tests(item, &candidates)? else {
            return Ok(empty_record(draft));
        };
        let Some(&first) = kept.first() else {
            return Ok(empty_record(draft));
        };
        let mut r = empty_record(replies[first].clone());
        r.truncated = self.small.was_truncated(&replies[first]);
        r.candidates = Some(candidates);
        r.visible = Some(passed);
        Ok(r)
    }

    /// `select`: candidates from the small model, bits from the large one.
    fn select(&mut self, item: &Item, problem: &Problem) -> Result<Record> {
        let s = self.settings;
        let max_candidates = 1usize << s.bits.min(20);
        let (mut candidates, mut replies, draft) = self.candidates(item, problem)?;
        let mut visible = None;
        if s.visible_filter {
            if let Some((passed, kept)) = self.visible_tests(item, &candidates)? {
                candidates = kept.iter().map(|&i| candidates[i].clone()).collect();
                replies = kept.iter().map(|&i| replies[i].clone()).collect();
                visible = Some(passed);
            }
        }
        candidates.truncate(max_candidates);
        replies.truncate(max_candidates);
        if candidates.is_empty() {
            let mut r = empty_record(draft);
            r.candidates = Some(Vec::new());
            return Ok(r);
        }
        let probs = match &item.gold {
            // Programs are long: the asker keeps its own order (greedy
            // draft first) rather than scoring every program.
            Gold::Code(_) => {
                let n = candidates.len() as f64;
                (0..candidates.len())
                    .map(|i| (n - i as f64) / (n * (n + 1.0) / 2.0))
                    .collect()
            }
            _ => asker_probabilities(&mut self.small, problem, &candidates).map_err(qa_err)?,
        };
        let best = self.answerer_choice(item, problem, &candidates)?;
        let b = bisect_to(&candidates, &probs, best, self.settings.bits).map_err(qa_err)?;
        let chosen = candidates.iter().position(|c| *c == b.answer).unwrap_or(0);
        let mut r = empty_record(replies[chosen].clone());
        r.truncated = self.small.was_truncated(&replies[chosen]);
        r.bits = b.bits.len();
        r.payload_bytes = b.bits.len().div_ceil(8);
        r.candidates = Some(b.candidates);
        r.visible = visible;
        Ok(r)
    }

    /// The candidate the large model stands behind: for code, the program
    /// it most believes correct given its own solution (P(yes)); otherwise
    /// the candidate matching its own final answer (or the gold, for the
    /// oracle view), else the one it scores highest.
    fn answerer_choice(
        &mut self,
        item: &Item,
        problem: &Problem,
        candidates: &[String],
    ) -> Result<usize> {
        // `problem` holds the gold only under the oracle views
        // ([`ProblemRun::problem`] drops it otherwise).
        let reference = problem.reference.as_deref();
        let known = match reference {
            Some(r) => r.to_string(),
            None => {
                let solve = (solve_prompt(item), self.settings.greedy());
                self.large.generate(&[solve])?.remove(0)
            }
        };
        if let Gold::Code(_) = item.gold {
            let label = if reference.is_some() {
                prompts::REFERENCE_LABEL
            } else {
                SOLUTION_LABEL
            };
            let views: Vec<_> = candidates
                .iter()
                .map(|c| {
                    prompts::yes_no(
                        &problem.text,
                        Some((label, &known)),
                        Some(c),
                        VERDICT_QUESTION,
                    )
                })
                .collect();
            let p = self.large.p_yes(&views)?;
            return Ok(argmax(&p));
        }
        // The oracle knows the answer itself, not a reply to extract it
        // from: a bare reference ("1554") has no answer line.
        let own = match (reference, &item.gold) {
            (Some(_), gold) => gold.short_answer(),
            (None, Gold::Choice { options, .. }) => extract_choice(&known, options).map(|e| e.text),
            (None, _) => crate::extract::extract_answer(&known).map(|e| e.text),
        };
        if let Some(own) = own {
            if let Some(i) = candidates.iter().position(|c| same_answer(c, &own)) {
                return Ok(i);
            }
        }
        let replies: Vec<String> = candidates.iter().map(|c| answer_reply(c)).collect();
        let conversation = prompts::solve(problem.task, &problem.text, None);
        let scores = self.large.score_candidates(&conversation, &replies)?;
        Ok(argmax(&scores))
    }
}

/// The solving conversation of an item (the draft's, the own solution's).
fn solve_prompt(item: &Item) -> Vec<tenbits_qa::Message> {
    prompts::solve(item.task, &item.prompt, None)
}

/// A wrong answer near the gold: the next option, the number plus one, or
/// the other of yes and no.
fn changed(gold: &Gold, text: &str) -> String {
    match gold {
        Gold::Choice {
            options, letter, ..
        } => {
            let i = (*letter as u8 - b'A') as usize;
            ((b'A' + ((i + 1) % options.len().max(2)) as u8) as char).to_string()
        }
        Gold::Number { value, .. } => format!("{}", value + 1.0),
        Gold::YesNo { yes, .. } => (if *yes { "No" } else { "Yes" }).to_string(),
        _ => format!("not {text}"),
    }
}

fn empty_record(reply: String) -> Record {
    Record {
        reply,
        extracted: None,
        correct: false,
        graded: false,
        truncated: false,
        bits: 0,
        coded_bits: None,
        payload_bytes: 0,
        small: Usage::default(),
        large: Usage::default(),
        wall_seconds: 0.0,
        response_tokens: None,
        asker: None,
        candidates: None,
        visible: None,
        transcript: None,
        probe: Vec::new(),
    }
}

fn asker_notes(t: &Transcript) -> AskerNotes {
    let answers = t.rounds.iter().flat_map(|r| &r.answers);
    let predicted: Vec<_> = answers
        .clone()
        .filter_map(|a| a.predicted.map(|p| (p >= 0.5) == a.bit))
        .collect();
    AskerNotes {
        padded: t
            .rounds
            .iter()
            .flat_map(|r| &r.questions)
            .filter(|q| q.as_str() == FALLBACK_QUESTION)
            .count(),
        predicted_right: (!predicted.is_empty()).then(|| predicted.iter().filter(|&&x| x).count()),
        revised: t.answer().trim() != t.draft.trim(),
        yes: answers.filter(|a| a.bit).count(),
    }
}

/// The reply `select` gives when it picks a short answer or an option.
fn answer_reply(candidate: &str) -> String {
    format!("Answer: {candidate}")
}

/// Whether one of `candidates` (a `select` or `tested` record's) is right,
/// graded as the reply would be had the method picked it: for code, the
/// program run on the hidden tests in `sandbox`. A report's ceiling for
/// `select`, which no answerer can pass; for short answers and options the
/// oracle view reaches it but for candidates right only once graded ("11 *
/// 85 = 935" is not the gold "935" to `same_answer`). It reads the gold,
/// so it is never part of a method.
pub fn covers_gold(item: &Item, candidates: &[String], sandbox: Option<&Sandbox>) -> Result<bool> {
    if let Gold::Code(code) = &item.gold {
        let sandbox = needed(sandbox, "be graded")?;
        let jobs: Vec<_> = candidates.iter().map(|c| (code, c.as_str())).collect();
        for checked in sandbox.check_many(&jobs) {
            if checked?.passed() {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    Ok(candidates
        .iter()
        .any(|c| grade(&item.gold, &answer_reply(c), false).is_some_and(|g| g.correct)))
}

/// The sandbox code problems need `to` do something, or an error saying so.
fn needed<'a>(sandbox: Option<&'a Sandbox>, to: &str) -> Result<&'a Sandbox> {
    sandbox.ok_or_else(|| EvalError::Invalid(format!("code problems need a sandbox to {to}")))
}

/// Whether two short answers say the same: numerically, else as text.
fn same_answer(a: &str, b: &str) -> bool {
    match (parse_number(a), parse_number(b)) {
        (Some(x), Some(y)) => numbers_equal(x, y),
        _ => crate::extract::normalize(a) == crate::extract::normalize(b),
    }
}

fn argmax(v: &[f64]) -> usize {
    (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b })
}

fn qa_err(e: tenbits_qa::QaError) -> EvalError {
    match e {
        tenbits_qa::QaError::Model(e) => EvalError::Model(e),
        other => EvalError::Invalid(other.to_string()),
    }
}
