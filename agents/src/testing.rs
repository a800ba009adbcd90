//! Deterministic scripted models for tests, demos and the
//! `tenbits-fake-answerer` helper binary: no ONNX needed.
//!
//! A [`FakeWorld`] knows the gold answers of some problems. Its *large*
//! model solves them ("Answer: {gold}"); its *small* model drafts a wrong
//! answer ("Answer: {gold}0"), asks "Is the answer X?" for a few candidates
//! (the wrong one, the right one, a distractor), and adopts any X answered
//! "Yes". Yes/no questions are answered from the reference or own solution
//! in the view, else from the model's own belief. So a QA session fixes the
//! draft exactly when the answerer answers truthfully.
//!
//! The prompts are read by `tenbits_qa::testing`; these fakes only decide
//! what they believe and how they misbehave. Built with the `testing`
//! feature only.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use tenbits_qa::testing::{problem_of, read_prompt, read_yes_no, Prompt};
use tenbits_qa::{ChatModel, Message, ModelError, Reply, Sampling};

use crate::config::TaskSpec;
use crate::model::{BoxedModel, ModelFactory};

/// Problems and their gold answers, and the fakes that live in it.
#[derive(Debug, Clone, Default)]
pub struct FakeWorld {
    /// Gold answer per problem text.
    pub gold: HashMap<String, String>,
    /// Model names that get the small (asker) behavior.
    pub small_names: Vec<String>,
    /// Problems (substrings) on which the small model returns an error.
    pub fail_on: Vec<String>,
    /// Problems (substrings) on which the small model panics.
    pub panic_on: Vec<String>,
    /// Problems (substrings) on which the small model sleeps first.
    pub slow_on: Vec<(String, Duration)>,
    /// Problems (substrings) on which the large model sleeps first (a
    /// batch in flight at shutdown, for one).
    pub large_slow_on: Vec<(String, Duration)>,
    /// Calls and conversations counted across every model of the world.
    pub counters: Arc<FakeCounters>,
}

/// Calls made by a world's models.
#[derive(Debug, Default)]
pub struct FakeCounters {
    /// `p_yes` calls of large models.
    pub large_p_yes_calls: AtomicUsize,
    /// Conversations in those calls.
    pub large_p_yes_conversations: AtomicUsize,
    /// `generate` calls of large models.
    pub large_generate_calls: AtomicUsize,
    /// `generate` calls of small models.
    pub small_generate_calls: AtomicUsize,
}

impl FakeWorld {
    /// A world where the tasks with gold answers are known; `smollm2-135m`
    /// is the small model's name.
    pub fn new(tasks: &[TaskSpec]) -> Self {
        let gold = tasks
            .iter()
            .filter_map(|t| Some((t.problem.clone(), t.answer.clone()?)))
            .collect();
        Self {
            gold,
            small_names: vec!["smollm2-135m".into()],
            ..Self::default()
        }
    }

    /// A model of this world: small if `name` is in
    /// [`small_names`](Self::small_names), else large.
    pub fn model(&self, name: &str) -> FakeModel {
        FakeModel {
            name: name.to_string(),
            small: self.small_names.iter().any(|n| n == name),
            world: self.clone(),
        }
    }

    /// A [`ModelFactory`] of this world's models (threads are ignored).
    pub fn factory(&self) -> ModelFactory {
        let world = self.clone();
        Arc::new(move |name: &str, _threads: usize| Ok(Box::new(world.model(name)) as BoxedModel))
    }
}

/// A model of a [`FakeWorld`].
#[derive(Debug, Clone)]
pub struct FakeModel {
    name: String,
    small: bool,
    world: FakeWorld,
}

impl FakeModel {
    fn belief(&self, problem: &str) -> String {
        match self.world.gold.get(problem) {
            Some(g) if self.small => format!("{g}0"),
            Some(g) => g.clone(),
            None => "unknown".into(),
        }
    }

    fn candidates(&self, problem: &str) -> Vec<String> {
        match self.world.gold.get(problem) {
            Some(g) => vec![format!("{g}0"), g.clone(), format!("{g}1")],
            None => vec!["unknown".into()],
        }
    }

    fn misbehave(&self, problem: &str) -> Result<(), ModelError> {
        if !self.small {
            for (p, pause) in &self.world.large_slow_on {
                if problem.contains(p.as_str()) {
                    std::thread::sleep(*pause);
                }
            }
            return Ok(());
        }
        for (p, pause) in &self.world.slow_on {
            if problem.contains(p.as_str()) {
                std::thread::sleep(*pause);
            }
        }
        if self
            .world
            .panic_on
            .iter()
            .any(|p| problem.contains(p.as_str()))
        {
            panic!("fake model crashed on {problem:?}");
        }
        if self
            .world
            .fail_on
            .iter()
            .any(|p| problem.contains(p.as_str()))
        {
            return Err(ModelError(format!("fake model failed on {problem:?}")));
        }
        Ok(())
    }

    fn reply(&self, conversation: &[Message]) -> Result<String, ModelError> {
        let problem = problem_of(conversation);
        self.misbehave(problem)?;
        Ok(match read_prompt(conversation) {
            Prompt::Revise { adopted, previous } => match adopted {
                Some(x) => format!("Answer: {x}"),
                None => previous.unwrap_or_default().to_string(),
            },
            Prompt::Questions => {
                let mut s = String::from("Questions:\n");
                for (i, c) in self.candidates(problem).iter().enumerate() {
                    s += &format!("{}. Is the answer {c}?\n", i + 1);
                }
                s
            }
            Prompt::Candidates => format!("Answer: {}", self.belief(problem)),
            Prompt::Solve { reference } => {
                let known = reference.map(String::from);
                format!("Answer: {}", known.unwrap_or_else(|| self.belief(problem)))
            }
        })
    }

    fn yes(&self, conversation: &[Message]) -> f64 {
        let question = read_yes_no(conversation);
        let Some(about) = question.about else {
            return 0.5;
        };
        let known = question.known.map(String::from);
        let known = known.unwrap_or_else(|| self.belief(problem_of(conversation)));
        if about == known {
            0.9
        } else {
            0.1
        }
    }
}

impl ChatModel for FakeModel {
    fn model_id(&self) -> [u8; 16] {
        let mut id = [0u8; 16];
        for (i, b) in self.name.bytes().enumerate() {
            id[i % 16] ^= b;
        }
        id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        let c = &self.world.counters;
        let calls = if self.small {
            &c.small_generate_calls
        } else {
            &c.large_generate_calls
        };
        calls.fetch_add(1, Relaxed);
        requests
            .iter()
            .map(|(m, _)| self.reply(m).map(Reply::from))
            .collect()
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        if !self.small {
            for conversation in conversations {
                self.misbehave(problem_of(conversation))?;
            }
            let c = &self.world.counters;
            c.large_p_yes_calls.fetch_add(1, Relaxed);
            c.large_p_yes_conversations
                .fetch_add(conversations.len(), Relaxed);
        }
        Ok(conversations.iter().map(|c| self.yes(c)).collect())
    }
    fn score_candidates(
        &mut self,
        _conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        Ok(vec![-1.0; candidates.len()])
    }
}
