//! A deterministic scripted [`ChatModel`] for tests, in a world where every
//! answer is one of a few numbers.
//!
//! It recognizes the prompts of [`crate::prompts`] by their wording:
//! solving gives "Answer: {belief}" (or the reference, when shown); question
//! lists are "Is the answer X?" for each of `options`, with varied markers;
//! a revision adopts the X of a "Is the answer X? Yes"; yes/no questions
//! are answered from the view's reference or own solution, else by `guess`.

use crate::eval::extract_answer;
use crate::prompts::{FALLBACK_QUESTION, REFERENCE_LABEL, SOLUTION_LABEL, VERDICT_QUESTION};
use crate::{ChatModel, Message, ModelError, Role, Sampling};

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

/// The text of a "{label}:\n..." section, up to the next blank line.
fn section<'a>(content: &'a str, label: &str) -> Option<&'a str> {
    let start = content.find(&format!("{label}:\n"))? + label.len() + 2;
    let rest = &content[start..];
    Some(rest.split("\n\n").next().unwrap_or(rest))
}

fn last_user(conversation: &[Message]) -> &str {
    let user = conversation.iter().rev().find(|m| m.role == Role::User);
    user.map_or("", |m| m.content.as_str())
}

impl Fake {
    fn reply(&mut self, conversation: &[Message]) -> String {
        let u = last_user(conversation);
        if u.contains("replied to your yes/no questions") {
            let fixed = u.lines().find_map(|l| {
                l.split("Is the answer ")
                    .nth(1)?
                    .strip_suffix("? Yes")
                    .filter(|x| *x != "correct")
            });
            let previous = conversation
                .iter()
                .rev()
                .find(|m| m.role == Role::Assistant);
            fixed.map_or_else(
                || previous.unwrap().content.clone(),
                |x| format!("Answer: {x}"),
            )
        } else if u.contains("yes/no questions") {
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
        } else if u.contains("plausible final answers") {
            self.options
                .iter()
                .enumerate()
                .map(|(i, o)| format!("{}. {o}\n", i + 1))
                .collect()
        } else {
            self.solves += 1;
            format!(
                "Answer: {}",
                section(u, REFERENCE_LABEL).unwrap_or(&self.belief)
            )
        }
    }

    fn yes(&self, conversation: &[Message]) -> f64 {
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
        let Some(about) = about else { return 0.5 };
        let known = section(u, REFERENCE_LABEL)
            .or(section(u, SOLUTION_LABEL))
            .map(extract_answer);
        match (known, &self.guess) {
            (Some(k), _) => {
                if about == k {
                    0.9
                } else {
                    0.1
                }
            }
            (None, Guess::Good(g)) => {
                if about == g {
                    0.9
                } else {
                    0.1
                }
            }
            (None, Guess::Adversarial(g)) => {
                if about == g {
                    0.01
                } else {
                    0.99
                }
            }
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
    fn generate(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<String>, ModelError> {
        Ok(requests.iter().map(|(c, _)| self.reply(c)).collect())
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
