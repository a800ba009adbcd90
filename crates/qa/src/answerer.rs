//! The seam between the session loop and the answerer, so the answerer can
//! live elsewhere (another actor, another process, across a wire).
//!
//! The asker's side sends an [`AnswerRequest`] (the problem, its current
//! answer, the questions, what the answerer is shown) and gets one
//! [`Answer`] per question from an [`Answerer`]. [`LocalAnswerer`] answers
//! with a [`ChatModel`] at hand, exactly as [`run`](crate::run) would;
//! [`answerer_conversations`] is the pure part of it (a request and what the
//! answerer knows in, the yes/no conversations out), so a server can gather
//! the conversations of many requests into one [`ChatModel::p_yes`] call.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::prompts::{self, REFERENCE_LABEL, SOLUTION_LABEL};
use crate::protocol::{Answer, Knowledge, Problem};
use crate::{generate_one, p_yes, ChatModel, Message, QaError, Sampling};

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

/// The answerer's yes/no conversations for a request, one per question:
/// the same views [`run`](crate::run) builds.
pub fn answerer_conversations(request: &AnswerRequest, known: Known<'_>) -> Vec<Vec<Message>> {
    views(
        &request.problem.text,
        known,
        request.shown_answer(),
        &request.questions,
    )
}

/// The answerer's view of each question.
pub(crate) fn views(
    problem: &str,
    known: Known<'_>,
    shown: Option<&str>,
    questions: &[String],
) -> Vec<Vec<Message>> {
    questions
        .iter()
        .map(|q| prompts::yes_no(problem, Some(known.section()), shown, q))
        .collect()
}

/// The conversation in which an answerer writes its own solution.
pub fn own_solution_prompt(problem: &Problem) -> Vec<Message> {
    prompts::solve(problem.task, &problem.text, None)
}

/// An [`Answerer`] over a [`ChatModel`] at hand: it knows the request's
/// reference ([`Knowledge::Reference`]; a request without one is
/// [`QaError::Invalid`]) or its own solution ([`Knowledge::OwnSolution`],
/// generated once per problem text and cached).
pub struct LocalAnswerer<'m> {
    model: &'m mut dyn ChatModel,
    knowledge: Knowledge,
    sampling: Sampling,
    solutions: HashMap<String, String>,
}

impl<'m> LocalAnswerer<'m> {
    /// An answerer; `sampling` is used for its own solutions (use the
    /// session's `answer_sampling` to match [`run`](crate::run)).
    pub fn new(model: &'m mut dyn ChatModel, knowledge: Knowledge, sampling: Sampling) -> Self {
        Self {
            model,
            knowledge,
            sampling,
            solutions: HashMap::new(),
        }
    }
}

impl Answerer for LocalAnswerer<'_> {
    fn id(&self) -> [u8; 16] {
        self.model.model_id()
    }

    fn answer(&mut self, request: &AnswerRequest) -> Result<Vec<Answer>, QaError> {
        let problem = &request.problem;
        let solution;
        let known = match self.knowledge {
            Knowledge::Reference => {
                let missing = QaError::Invalid("the answerer's view needs a reference answer");
                Known::Reference(problem.reference.as_deref().ok_or(missing)?)
            }
            Knowledge::OwnSolution => {
                solution = match self.solutions.get(&problem.text) {
                    Some(s) => s.clone(),
                    None => {
                        let prompt = own_solution_prompt(problem);
                        let s = generate_one(&mut *self.model, prompt, &self.sampling)?;
                        self.solutions.insert(problem.text.clone(), s.clone());
                        s
                    }
                };
                Known::OwnSolution(&solution)
            }
        };
        let conversations = answerer_conversations(request, known);
        let p = p_yes(&mut *self.model, &conversations)?;
        let answer = |p: f64| Answer {
            bit: p >= 0.5,
            p_yes: Some(p),
            predicted: None,
        };
        Ok(p.into_iter().map(answer).collect())
    }

    fn own_solution(&self, problem: &str) -> Option<String> {
        self.solutions.get(problem).cloned()
    }
}
