//! Scripted [`ChatModel`]s for tests (this crate's, and through the
//! `testing` feature, other crates'): no model runtime needed.
//!
//! [`read_prompt`] and [`read_yes_no`] recognize the prompts of
//! [`crate::prompts`] by their wording, so a fake model only decides what
//! it believes. [`Fake`] is such a model in a world where every answer is
//! one of a few numbers: solving gives "Answer: {belief}" (or the
//! reference, when shown); question lists are "Is the answer X?" for each
//! of `options`, with varied markers; a revision adopts the X of a "Is the
//! answer X? Yes"; yes/no questions are answered from the view's reference
//! or own solution, else by `guess`.

#![allow(missing_docs)]

use crate::eval::extract_answer;
use crate::prompts::{FALLBACK_QUESTION, REFERENCE_LABEL, SOLUTION_LABEL, VERDICT_QUESTION};
use crate::{ChatModel, Message, ModelError, Reply, Role, Sampling};

/// What a conversation asks a model to write, read from its last user turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt<'a> {
    /// A revision after answers: the X of the first "Is the answer X? Yes"
    /// (other than "correct"), and the model's previous answer.
    Revise {
        adopted: Option<&'a str>,
        previous: Option<&'a str>,
    },
    /// A list of yes/no questions.
    Questions,
    /// A list of plausible final answers.
    Candidates,
    /// A solution, with the reference if the prompt shows one.
    Solve { reference: Option<&'a str> },
}

/// A yes/no question as the answerer's prompt poses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YesNo<'a> {
    /// The answer the question is about: the X of "Is the answer X?", or
    /// the proposed answer for the verdict and padding questions.
    pub about: Option<&'a str>,
    /// The final answer of the reference or own solution shown, if any.
    pub known: Option<&'a str>,
}

/// The text of a "{label}:\n..." section, up to the next blank line.
pub fn section<'a>(content: &'a str, label: &str) -> Option<&'a str> {
    let start = content.find(&format!("{label}:\n"))? + label.len() + 2;
    let rest = &content[start..];
    Some(rest.split("\n\n").next().unwrap_or(rest))
}

fn first_user(conversation: &[Message]) -> &str {
    let user = conversation.iter().find(|m| m.role == Role::User);
    user.map_or("", |m| m.content.as_str())
}

fn last_user(conversation: &[Message]) -> &str {
    let user = conversation.iter().rev().find(|m| m.role == Role::User);
    user.map_or("", |m| m.content.as_str())
}

/// The problem a conversation is about: its "Problem" section, else the
/// first paragraph of the first user turn.
pub fn problem_of(conversation: &[Message]) -> &str {
    let u = first_user(conversation);
    section(u, "Problem").unwrap_or_else(|| u.split("\n\n").next().unwrap_or(u))
}

/// What `conversation` asks for.
pub fn read_prompt(conversation: &[Message]) -> Prompt<'_> {
    let u = last_user(conversation);
    if u.contains("replied to your yes/no questions") {
        let adopted = u.lines().find_map(|l| {
            l.split("Is the answer ")
                .nth(1)?
                .strip_suffix("? Yes")
                .filter(|x| *x != "correct")
        });
        let previous = conversation
            .iter()
            .rev()
            .find(|m| m.role == Role::Assistant);
        let previous = previous.map(|m| m.content.as_str());
        Prompt::Revise { adopted, previous }
    } else if u.contains("yes/no questions") {
        Prompt::Questions
    } else if u.contains("plausible final answers") {
        Prompt::Candidates
    } else {
        let reference = section(u, REFERENCE_LABEL);
        Prompt::Solve { reference }
    }
}

/// The yes/no question `conversation` poses.
pub fn read_yes_no(conversation: &[Message]) -> YesNo<'_> {
    let u = last_user(conversation);
    let question = u
        .lines()
        .find_map(|l| l.strip_prefix("Question: "))
        .unwrap_or("");
    let about = if question == VERDICT_QUESTION || question == FALLBACK_QUESTION {
        section(u, "Proposed answer").map(extract_answer)
    } else {
        question
            .strip_prefix("Is the answer ")
            .and_then(|q| q.strip_suffix('?'))
    };
    let known = section(u, REFERENCE_LABEL)
        .or(section(u, SOLUTION_LABEL))
        .map(extract_answer);
    YesNo { about, known }
}

/// How the fake predicts a yes/no answer when its view has no knowledge.
#[derive(Debug, Clone)]
pub enum Guess {
    /// As if it knew this answer: 0.9 on the right side.
    Good(String),
    /// Confidently wrong about the truth given by this answer: 0.99 on the
    /// wrong side.
    Adversarial(String),
}

#[derive(Debug, Clone)]
pub struct Fake {
    pub name: &'static str,
    pub belief: String,
    pub options: Vec<String>,
    pub guess: Guess,
    /// Solving calls (drafts and own solutions).
    pub solves: usize,
}

impl Fake {
    pub fn new(name: &'static str, belief: &str, options: &[&str]) -> Self {
        Self {
            name,
            belief: belief.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            guess: Guess::Good(belief.into()),
            solves: 0,
        }
    }
}

impl Fake {
    fn reply(&mut self, conversation: &[Message]) -> String {
        match read_prompt(conversation) {
            Prompt::Revise { adopted, previous } => {
                adopted.map_or_else(|| previous.unwrap().to_string(), |x| format!("Answer: {x}"))
            }
            Prompt::Questions => {
                let mut s = String::from("Here are my questions:\n");
                for (i, o) in self.options.iter().enumerate() {
                    let marker = [
                        format!("{}. ", i + 1),
                        format!("{})", i + 1),
                        format!("Q{}: ", i + 1),
                        "- ".into(),
                    ];
                    s += &format!("{}Is the answer {o}?\n", marker[i % 4]);
                }
                s
            }
            Prompt::Candidates => self
                .options
                .iter()
                .enumerate()
                .map(|(i, o)| format!("{}. {o}\n", i + 1))
                .collect(),
            Prompt::Solve { reference } => {
                self.solves += 1;
                format!("Answer: {}", reference.unwrap_or(&self.belief))
            }
        }
    }

    fn yes(&self, conversation: &[Message]) -> f64 {
        let YesNo { about, known } = read_yes_no(conversation);
        let Some(about) = about else { return 0.5 };
        let pick = |same: bool, (yes, no): (f64, f64)| if same { yes } else { no };
        match (known, &self.guess) {
            (Some(k), _) => pick(about == k, (0.9, 0.1)),
            (None, Guess::Good(g)) => pick(about == g, (0.9, 0.1)),
            (None, Guess::Adversarial(g)) => pick(about == g, (0.01, 0.99)),
        }
    }
}

impl ChatModel for Fake {
    fn model_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        id[..self.name.len()].copy_from_slice(self.name.as_bytes());
        id
    }
    fn name(&self) -> &str {
        self.name
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        Ok(requests.iter().map(|(c, _)| self.reply(c).into()).collect())
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        Ok(conversations.iter().map(|c| self.yes(c)).collect())
    }
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        let u = last_user(conversation);
        let best = section(u, REFERENCE_LABEL)
            .unwrap_or(&self.belief)
            .to_string();
        let score = |(i, c): (usize, &String)| {
            if extract_answer(c) == best {
                -0.1
            } else {
                -3.0 - 0.1 * i as f64
            }
        };
        Ok(candidates.iter().enumerate().map(score).collect())
    }
}
