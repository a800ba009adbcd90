//! The answerer: how yes/no questions become bits, and the seam that lets
//! it live elsewhere (another actor, another process, across a wire).
//!
//! The asker's side sends an [`AnswerRequest`] (the problem, its current
//! answer, the questions, what the answerer is shown) and gets one
//! [`Answer`] per question from an [`Answerer`].
//!
//! Every answering path, the session loop of [`run`](crate::run), the
//! [`LocalAnswerer`] and the deployments' answerer actor, goes through one
//! function, [`answer_batch`]: the own solutions still missing in one
//! `generate` call, then every question of every request in one
//! [`ChatModel::p_yes`] call, then [`Answer::from_p_yes`]. What the
//! answerer knows (references, its own solutions so far) is an
//! [`AnswerBook`].

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::eval::grade;
use crate::prompts::{self, REFERENCE_LABEL, SOLUTION_LABEL};
use crate::types::{Answer, AnswererView, Basis, Knowledge, Problem, DEFAULT_YES_THRESHOLD};
use crate::{check_count, p_yes, ChatModel, Message, QaError, Sampling};

/// One batch of yes/no questions about the asker's current answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerRequest {
    /// The problem. Its reference is set only on the answerer's side (an
    /// asker does not know it, and a wire does not carry it).
    pub problem: Problem,
    /// The asker's current answer (draft or latest revision).
    pub current_answer: String,
    /// The questions, in order.
    pub questions: Vec<String>,
    /// Whether the answerer sees `current_answer`.
    pub sees_answer: bool,
    /// Whether this is the accept/reject question of the iterative variant
    /// ([`VERDICT_QUESTION`](crate::prompts::VERDICT_QUESTION)), which always
    /// shows the current answer.
    pub verdict: bool,
}

impl AnswerRequest {
    /// The current answer, if the answerer is shown it.
    pub fn shown_answer(&self) -> Option<&str> {
        (self.verdict || self.sees_answer).then_some(self.current_answer.as_str())
    }
}

/// What the answerer knows about a problem, as it appears in its view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known<'a> {
    /// The reference (gold) answer.
    Reference(&'a str),
    /// The answerer's own solution.
    OwnSolution(&'a str),
}

impl<'a> Known<'a> {
    /// What an answer from this view is based on.
    pub fn basis(self) -> Basis {
        match self {
            Known::Reference(_) => Basis::Reference,
            Known::OwnSolution(_) => Basis::OwnSolution,
        }
    }

    /// The section label and text of the view.
    pub fn section(self) -> (&'static str, &'a str) {
        match self {
            Known::Reference(r) => (REFERENCE_LABEL, r),
            Known::OwnSolution(s) => (SOLUTION_LABEL, s),
        }
    }
}

/// Answers yes/no questions, one bit each. Implemented by [`LocalAnswerer`]
/// and by clients of remote answerers.
pub trait Answerer {
    /// [`ChatModel::model_id`] of the answering model (recorded in
    /// transcripts as [`Transcript::answerer`](crate::Transcript::answerer)).
    fn id(&self) -> [u8; 16];
    /// One [`Answer`] per question of `request`, in order; `predicted` is
    /// left `None` (the asker fills it in), `p_yes` where known.
    fn answer(&mut self, request: &AnswerRequest) -> Result<Vec<Answer>, QaError>;
    /// The answerer's own solution of `problem`, if it generated one and can
    /// tell (recorded in the transcript); `None` by default.
    fn own_solution(&self, problem: &str) -> Option<String> {
        let _ = problem;
        None
    }
}

/// The answerer's yes/no conversations for a request, one per question.
pub fn answerer_conversations(request: &AnswerRequest, known: Known<'_>) -> Vec<Vec<Message>> {
    let (problem, shown) = (&request.problem.text, request.shown_answer());
    request
        .questions
        .iter()
        .map(|q| prompts::yes_no(problem, Some(known.section()), shown, q))
        .collect()
}

/// What an answerer knows, problem by problem: its [`Knowledge`] setting,
/// references (a request's own, else a deployment's, keyed by problem
/// text), and the own solutions it has written so far.
#[derive(Debug, Clone)]
pub struct AnswerBook {
    knowledge: Knowledge,
    checks_claims: bool,
    yes_threshold: f64,
    references: Arc<HashMap<String, String>>,
    solutions: HashMap<String, String>,
    sampling: Sampling,
}

impl AnswerBook {
    /// A book with no references but the requests' own; `sampling` is used
    /// for own solutions (a session's `answer_sampling`).
    pub fn new(knowledge: Knowledge, sampling: Sampling) -> Self {
        Self {
            knowledge,
            checks_claims: false,
            yes_threshold: DEFAULT_YES_THRESHOLD,
            references: Arc::default(),
            solutions: HashMap::new(),
            sampling,
        }
    }

    /// The same book, with references by problem text for requests that
    /// carry none (a deployment's task file).
    pub fn with_references(mut self, references: Arc<HashMap<String, String>>) -> Self {
        self.references = references;
        self
    }

    /// The same book, deciding claims about the final answer by comparison
    /// ([`AnswererView::checks_claims`](crate::AnswererView::checks_claims)).
    pub fn checking_claims(mut self, checks: bool) -> Self {
        self.checks_claims = checks;
        self
    }

    /// The same book, turning P(yes) into yes at `threshold`
    /// ([`AnswererView::yes_threshold`]).
    pub fn with_yes_threshold(mut self, threshold: f64) -> Self {
        self.yes_threshold = threshold;
        self
    }

    /// A book with what `view` says the answerer knows and how it decides.
    pub fn for_view(view: &AnswererView, sampling: Sampling) -> Self {
        Self::new(view.knowledge, sampling)
            .checking_claims(view.checks_claims)
            .with_yes_threshold(view.yes_threshold)
    }

    /// The same settings and references, without the own solutions.
    pub fn fresh(&self) -> Self {
        Self::new(self.knowledge, self.sampling.clone())
            .with_references(self.references.clone())
            .checking_claims(self.checks_claims)
            .with_yes_threshold(self.yes_threshold)
    }

    /// The knowledge setting.
    pub fn knowledge(&self) -> Knowledge {
        self.knowledge
    }

    /// The own solution written for a problem text, if any.
    pub fn own_solution(&self, problem: &str) -> Option<&str> {
        self.solutions.get(problem).map(String::as_str)
    }

    /// How many own solutions have been written.
    pub fn solutions_written(&self) -> usize {
        self.solutions.len()
    }

    /// The reference to answer `problem` from, if the knowledge setting
    /// uses one and there is one.
    fn reference<'a>(&'a self, problem: &'a Problem) -> Option<&'a str> {
        if self.knowledge == Knowledge::OwnSolution {
            return None;
        }
        let listed = || self.references.get(&problem.text).map(String::as_str);
        problem.reference.as_deref().or_else(listed)
    }

    /// Whether `problem` is answered from an own solution; `Invalid` where
    /// it needs a reference it lacks.
    fn needs_solution(&self, problem: &Problem) -> Result<bool, QaError> {
        match (self.knowledge, self.reference(problem)) {
            (_, Some(_)) => Ok(false),
            (Knowledge::Reference, None) => Err(QaError::Invalid(
                "the answerer's view needs a reference answer",
            )),
            (Knowledge::OwnSolution | Knowledge::ReferenceElseOwn, None) => Ok(true),
        }
    }

    /// The problems of `requests` whose own solution is still to be written,
    /// each once, in order of first appearance.
    fn missing<'r>(&self, requests: &[&'r AnswerRequest]) -> Result<Vec<&'r Problem>, QaError> {
        let mut missing: Vec<&Problem> = Vec::new();
        for problem in requests.iter().map(|r| &r.problem) {
            let new = !self.solutions.contains_key(&problem.text)
                && !missing.iter().any(|m| m.text == problem.text);
            if self.needs_solution(problem)? && new {
                missing.push(problem);
            }
        }
        Ok(missing)
    }

    /// What the answerer knows of `problem`, once its solution is written.
    fn known<'a>(&'a self, problem: &'a Problem) -> Result<Known<'a>, QaError> {
        if let Some(r) = self.reference(problem) {
            return Ok(Known::Reference(r));
        }
        self.needs_solution(problem)?;
        let solution = self.solutions.get(&problem.text);
        let unwritten = QaError::Invalid("the answerer's own solution was not written");
        Ok(Known::OwnSolution(solution.ok_or(unwritten)?))
    }
}

/// The conversation in which an answerer writes its own solution.
pub fn own_solution_prompt(problem: &Problem) -> Vec<Message> {
    prompts::solve(problem.task, &problem.text, None)
}

/// Answers a batch of requests with `model`: the own solutions `book`
/// still lacks in one `generate` call (recorded in the book), then every
/// question of every request in one `p_yes` call. One list of answers per
/// request, in order, each answer with its [`Basis`].
pub fn answer_batch(
    book: &mut AnswerBook,
    model: &mut dyn ChatModel,
    requests: &[&AnswerRequest],
) -> Result<Vec<Vec<Answer>>, QaError> {
    let missing = book.missing(requests)?;
    if !missing.is_empty() {
        let prompts: Vec<_> = missing
            .iter()
            .map(|p| (own_solution_prompt(p), book.sampling.clone()))
            .collect();
        let solutions = model.generate(&prompts)?;
        let solutions = check_count(model, prompts.len(), solutions)?;
        let texts = missing.iter().map(|p| p.text.clone());
        book.solutions.extend(texts.zip(solutions));
    }
    // Per question: decided by comparing a claim, or asked of the model.
    let mut conversations = Vec::new();
    let mut plans: Vec<(Basis, Vec<Option<bool>>)> = Vec::with_capacity(requests.len());
    for request in requests {
        let known = book.known(&request.problem)?;
        let checked: Vec<Option<bool>> = request
            .questions
            .iter()
            .map(|q| {
                let decidable = book.checks_claims && states_final_answer(known);
                let claim = decidable.then(|| claim_of(q, request)).flatten()?;
                grade(request.problem.task, &claim, known.section().1)
            })
            .collect();
        let asked = answerer_conversations(request, known);
        let unresolved = asked.into_iter().zip(&checked).filter(|(_, c)| c.is_none());
        conversations.extend(unresolved.map(|(conversation, _)| conversation));
        plans.push((known.basis(), checked));
    }
    let p = if conversations.is_empty() {
        Vec::new()
    } else {
        p_yes(model, &conversations)?
    };
    let mut from_model = p.into_iter();
    let threshold = book.yes_threshold;
    let answers = plans.into_iter().map(|(basis, checked)| {
        let answer = |c: Option<bool>| match c {
            Some(bit) => Some(Answer::checked(bit, basis)),
            None => from_model
                .next()
                .map(|p| Answer::from_p_yes(p, threshold, basis)),
        };
        checked.into_iter().map(answer).collect::<Option<Vec<_>>>()
    });
    let answers: Option<Vec<Vec<Answer>>> = answers.collect();
    answers.ok_or(QaError::Invalid(
        "the answerer's model returned too few answers",
    ))
}

/// Whether what the answerer knows states a final answer to compare
/// claims with: a reference always; an own solution with an "Answer:" line.
fn states_final_answer(known: Known<'_>) -> bool {
    match known {
        Known::Reference(_) => true,
        Known::OwnSolution(s) => s.to_ascii_lowercase().contains("answer:"),
    }
}

/// The final answer a yes/no question claims, if it is such a claim: "Is
/// the (final) answer X?" (also "... equal to X?", "... X or not?"), or the
/// verdict and padding questions about a shown answer. `None` for other
/// questions (steps, properties), which the model answers.
fn claim_of(question: &str, request: &AnswerRequest) -> Option<String> {
    let q = question.trim();
    if q == prompts::VERDICT_QUESTION || q == prompts::FALLBACK_QUESTION {
        return request.shown_answer().map(String::from);
    }
    let lower = q.to_ascii_lowercase();
    let prefixes = [
        "is the final answer ",
        "is the correct answer ",
        "is the answer to the problem ",
        "is the answer ",
    ];
    let rest = prefixes.iter().find_map(|p| lower.strip_prefix(p))?;
    let rest = rest.strip_suffix('?')?.trim();
    let rest = ["equal to ", "exactly ", "option ", "indeed "]
        .iter()
        .fold(rest, |r, p| r.strip_prefix(p).unwrap_or(r));
    let rest = rest.strip_suffix(" or not").unwrap_or(rest).trim();
    // A value, not a description ("Is the answer a whole number?").
    const DESCRIBING: [&str; 24] = [
        "a",
        "an",
        "the",
        "not",
        "greater",
        "less",
        "more",
        "smaller",
        "larger",
        "bigger",
        "positive",
        "negative",
        "even",
        "odd",
        "prime",
        "divisible",
        "correct",
        "right",
        "wrong",
        "in",
        "between",
        "within",
        "above",
        "below",
    ];
    let first = rest.split_whitespace().next()?;
    let numeric = rest.starts_with(|c: char| c.is_ascii_digit() || "-$(".contains(c));
    let value = numeric || (rest.split_whitespace().count() <= 3 && !DESCRIBING.contains(&first));
    let start = lower.rfind(rest)?;
    value.then(|| q[start..start + rest.len()].to_string())
}

/// An [`Answerer`] over a [`ChatModel`] at hand and an [`AnswerBook`]:
/// [`answer_batch`] one request at a time.
pub struct LocalAnswerer<'m> {
    model: &'m mut dyn ChatModel,
    book: AnswerBook,
}

impl<'m> LocalAnswerer<'m> {
    /// An answerer; `sampling` is used for its own solutions (use the
    /// session's `answer_sampling` to match [`run`](crate::run)).
    pub fn new(model: &'m mut dyn ChatModel, knowledge: Knowledge, sampling: Sampling) -> Self {
        Self::with_book(model, AnswerBook::new(knowledge, sampling))
    }

    /// An answerer with a prepared book (references, for example).
    pub fn with_book(model: &'m mut dyn ChatModel, book: AnswerBook) -> Self {
        Self { model, book }
    }
}

impl Answerer for LocalAnswerer<'_> {
    fn id(&self) -> [u8; 16] {
        self.model.model_id()
    }

    fn answer(&mut self, request: &AnswerRequest) -> Result<Vec<Answer>, QaError> {
        let mut answers = answer_batch(&mut self.book, &mut *self.model, &[request])?;
        Ok(answers.remove(0))
    }

    fn own_solution(&self, problem: &str) -> Option<String> {
        self.book.own_solution(problem).map(String::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Message, ModelError, Reply, Task};

    /// Writes "... Answer: 39" and says yes to everything it is asked.
    struct YesMan {
        asked: Vec<String>,
    }

    impl ChatModel for YesMan {
        fn model_id(&self) -> [u8; 16] {
            [1; 16]
        }
        fn name(&self) -> &str {
            "yes-man"
        }
        fn complete(&mut self, r: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
            Ok(vec!["15% of 260 is 39.\nAnswer: 39".into(); r.len()])
        }
        fn p_yes(&mut self, c: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
            let last = |m: &Vec<Message>| m.last().unwrap().content.clone();
            self.asked.extend(c.iter().map(last));
            Ok(vec![0.99; c.len()])
        }
        fn score_candidates(
            &mut self,
            _: &[Message],
            c: &[String],
        ) -> Result<Vec<f64>, ModelError> {
            Ok(vec![0.0; c.len()])
        }
    }

    fn request(questions: &[&str], shown: Option<&str>) -> AnswerRequest {
        AnswerRequest {
            problem: Problem::new(Task::ShortAnswer, "What is 15% of 260?"),
            current_answer: shown.unwrap_or_default().to_string(),
            questions: questions.iter().map(|q| q.to_string()).collect(),
            sees_answer: shown.is_some(),
            verdict: false,
        }
    }

    #[test]
    fn claims_about_the_final_answer_are_checked_against_the_own_solution() {
        let questions = [
            "Is the answer 390?",
            "Is the answer 39?",
            "Is the final answer equal to 39.0?",
            "Is the answer a whole number?",
            "Is the proposed answer correct?",
        ];
        let mut model = YesMan { asked: Vec::new() };
        let mut book =
            AnswerBook::new(Knowledge::OwnSolution, Sampling::default()).checking_claims(true);
        let r = request(&questions, Some("Answer: 390"));
        let answers = answer_batch(&mut book, &mut model, &[&r])
            .unwrap()
            .remove(0);
        let bits: Vec<bool> = answers.iter().map(|a| a.bit).collect();
        assert_eq!(bits, [false, true, true, true, false]);
        assert_eq!(model.asked.len(), 1, "only the property goes to the model");
        assert!(model.asked[0].contains("Is the answer a whole number?"));
        assert!(answers.iter().all(|a| a.basis == Some(Basis::OwnSolution)));

        // Without claim checks the model's yes stands for every question.
        let mut book = AnswerBook::new(Knowledge::OwnSolution, Sampling::default());
        let answers = answer_batch(&mut book, &mut model, &[&r])
            .unwrap()
            .remove(0);
        assert!(answers.iter().all(|a| a.bit));
    }

    #[test]
    fn a_yes_threshold_above_the_model_s_p_yes_makes_its_bit_no() {
        // YesMan's P(yes) is 0.99; claims checked by comparison ignore it.
        let questions = ["Is the answer a whole number?", "Is the answer 39?"];
        let r = request(&questions, None);
        let bits = |threshold: f64| {
            let mut model = YesMan { asked: Vec::new() };
            let view = AnswererView {
                knowledge: Knowledge::OwnSolution,
                checks_claims: true,
                yes_threshold: threshold,
                ..AnswererView::default()
            };
            let mut book = AnswerBook::for_view(&view, Sampling::default()).fresh();
            let answers = answer_batch(&mut book, &mut model, &[&r]).unwrap();
            answers[0].iter().map(|a| a.bit).collect::<Vec<_>>()
        };
        assert_eq!(bits(0.5), [true, true]);
        assert_eq!(bits(0.995), [false, true]);
    }

    #[test]
    fn a_bare_reference_decides_claims_about_the_final_answer() {
        // Oracle views pass the gold as it is in the task file ("39"), with
        // no "Answer:" line; it must still be the answer claims are held to.
        let mut model = YesMan { asked: Vec::new() };
        let mut book =
            AnswerBook::new(Knowledge::Reference, Sampling::default()).checking_claims(true);
        let mut r = request(&["Is the answer 390?", "Is the answer 39?"], None);
        r.problem.reference = Some("39".into());
        let answers = answer_batch(&mut book, &mut model, &[&r])
            .unwrap()
            .remove(0);
        let bits: Vec<bool> = answers.iter().map(|a| a.bit).collect();
        assert_eq!(bits, [false, true]);
        assert!(model.asked.is_empty(), "{:?}", model.asked);
        assert!(answers.iter().all(|a| a.basis == Some(Basis::Reference)));
    }

    #[test]
    fn only_value_claims_are_claims() {
        let r = request(&[], None);
        let claim = |q: &str| claim_of(q, &r);
        assert_eq!(claim("Is the answer 1,250?").as_deref(), Some("1,250"));
        assert_eq!(claim("Is the answer (B)?").as_deref(), Some("(B)"));
        assert_eq!(
            claim("is the correct answer Paris?").as_deref(),
            Some("Paris")
        );
        assert_eq!(claim("Is the answer greater than 10?"), None);
        assert_eq!(claim("Is the answer an even number?"), None);
        assert_eq!(claim("Does the draft add the tax?"), None);
        assert_eq!(
            claim("Is the proposed answer correct?"),
            None,
            "nothing shown"
        );
    }
}
