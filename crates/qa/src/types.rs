//! The protocol's shared vocabulary: the [`Problem`] a session is about,
//! what the answerer knows of it ([`Knowledge`], [`AnswererView`]), and the
//! [`Answer`] it gives, with the [`Basis`] each answer came from.
//!
//! They live apart from the session loop ([`crate::protocol`]) and the
//! answerer ([`crate::answerer`]) so that both depend on them and not on
//! each other.

use serde::{Deserialize, Serialize};

use crate::prompts::Task;

/// A problem to solve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// The kind of problem (picks the system prompt).
    pub task: Task,
    /// The problem statement.
    pub text: String,
    /// The reference (gold) answer, for answerer views that use it.
    pub reference: Option<String>,
}

impl Problem {
    /// A problem without a reference answer.
    pub fn new(task: Task, text: impl Into<String>) -> Self {
        Self {
            task,
            text: text.into(),
            reference: None,
        }
    }
    /// The same problem with a reference answer.
    pub fn with_reference(mut self, reference: impl Into<String>) -> Self {
        self.reference = Some(reference.into());
        self
    }
}

/// What the answerer knows about a problem. In configuration files:
/// `"reference"`, `"own-solution"`, `"reference-else-own"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Knowledge {
    /// The reference answer ([`Problem::reference`], or a deployment's task
    /// file); a problem without one is [`QaError::Invalid`](crate::QaError).
    Reference,
    /// Its own solution, generated once per problem.
    OwnSolution,
    /// The reference where there is one, else its own solution. Each
    /// [`Answer::basis`] says which it was.
    ReferenceElseOwn,
}

/// What one answer was based on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Basis {
    /// The reference (gold) answer: an oracle.
    Reference,
    /// The answerer's own solution.
    OwnSolution,
}

/// The P(yes) at or above which a bit from the model is yes, unless a
/// view sets another: the even split.
pub const DEFAULT_YES_THRESHOLD: f64 = 0.5;

/// [`DEFAULT_YES_THRESHOLD`], for `#[serde(default = ...)]` on settings
/// that carry a yes threshold.
pub fn default_yes_threshold() -> f64 {
    DEFAULT_YES_THRESHOLD
}

/// Whether `threshold` can turn P(yes) into bits: strictly between 0 and 1
/// (at 0 or 1 every bit from the model would be the same).
pub fn valid_yes_threshold(threshold: f64) -> bool {
    threshold > 0.0 && threshold < 1.0
}

/// What the answerer sees besides the problem and the question.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnswererView {
    /// Reference or own solution.
    pub knowledge: Knowledge,
    /// Whether it also sees the asker's current answer (the verdict question
    /// always shows it).
    pub sees_answer: bool,
    /// Whether a claim about the final answer ("Is the answer 39?", and the
    /// verdict on a shown answer) is decided by comparing it with the final
    /// answer of what the answerer knows, instead of by the model's P(yes).
    #[serde(default)]
    pub checks_claims: bool,
    /// The P(yes) at or above which a bit from the model is yes. A model
    /// that leans to yes is right on more claims of known truth at a
    /// threshold calibrated on a tuning split (`scripts/probe_threshold.py`).
    #[serde(default = "default_yes_threshold")]
    pub yes_threshold: f64,
}

impl Default for AnswererView {
    /// The reference, and the asker's answer (questions refer to it);
    /// every bit from the model.
    fn default() -> Self {
        Self {
            knowledge: Knowledge::Reference,
            sees_answer: true,
            checks_claims: false,
            yes_threshold: DEFAULT_YES_THRESHOLD,
        }
    }
}

/// One yes/no answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Answer {
    /// The bit: yes (or accept) is `true`.
    pub bit: bool,
    /// The answerer's P(yes); known only where the answerer ran (`None` at a
    /// [`Receiver`](crate::Receiver) or across a wire).
    pub p_yes: Option<f64>,
    /// The asker's prediction of P(yes), when answers are coded.
    pub predicted: Option<f64>,
    /// What the answerer based the bit on; known only where it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basis: Option<Basis>,
}

impl Answer {
    /// The answer a P(yes) gives at `yes_threshold`: the one rule that
    /// turns a probability into a bit, used by every answering path.
    pub fn from_p_yes(p_yes: f64, yes_threshold: f64, basis: Basis) -> Self {
        Self {
            bit: p_yes >= yes_threshold,
            p_yes: Some(p_yes),
            predicted: None,
            basis: Some(basis),
        }
    }

    /// An answer decided by comparing a claim with the known final answer
    /// (P(yes) recorded as 1 or 0).
    pub fn checked(bit: bool, basis: Basis) -> Self {
        Self::from_p_yes(if bit { 1.0 } else { 0.0 }, DEFAULT_YES_THRESHOLD, basis)
    }
}
