//! [`Metered`]: a [`ChatModel`] that remembers every answer it gave and
//! charges every call, so work shared by an evaluation's methods is done
//! once and still counted for each method that uses it.
//!
//! The models are deterministic, so the same call gives the same answer:
//! the small model's draft serves `small`, `blc`, `qa` and `qa+`; the large
//! model's own solution serves `large` and the answerer's view of `qa`,
//! `qa+` and `select`. A method's cost ([`Metered::take_charged`]) is what
//! it would have cost alone: a remembered answer is charged what computing
//! it cost, and a batched call is split among its requests by their own
//! tokens.

use std::collections::HashMap;

use tenbits_qa::{ChatModel, Message, ModelError, Reply, Sampling, Usage};

/// A [`ChatModel`] with a memory of its answers and a ledger of their cost.
pub struct Metered<M> {
    inner: M,
    memory: Memory,
    charged: Usage,
    /// Forward tokens and seconds actually spent (not counting memory hits).
    spent: Usage,
}

/// What a [`Metered`] model remembers: its answers and what each cost.
/// It outlives the wrapper ([`Metered::into_memory`]), so a problem's
/// draft serves a later run with another bit budget.
#[derive(Default)]
pub struct Memory {
    replies: HashMap<String, (Reply, Usage)>,
    judged: HashMap<String, (f64, Usage)>,
    scored: HashMap<String, (Vec<f64>, Usage)>,
}

fn key<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("messages and sampling serialize")
}

/// The positions of `keys` not in `known`, each key once, in order.
fn unknown<V>(keys: &[String], known: &HashMap<String, V>) -> Vec<usize> {
    let mut missing: Vec<usize> = Vec::new();
    for (i, k) in keys.iter().enumerate() {
        if !known.contains_key(k) && !missing.iter().any(|&j| keys[j] == *k) {
            missing.push(i);
        }
    }
    missing
}

impl<M: ChatModel> Metered<M> {
    /// Wraps `inner` with an empty memory and ledger.
    pub fn new(inner: M) -> Self {
        Self::with_memory(inner, Memory::default())
    }

    /// Wraps `inner` with what an earlier wrapper remembered.
    pub fn with_memory(inner: M, memory: Memory) -> Self {
        Self {
            inner,
            memory,
            charged: Usage::default(),
            spent: Usage::default(),
        }
    }

    /// What it remembers, for a later wrapper.
    pub fn into_memory(self) -> Memory {
        self.memory
    }

    /// The cost charged since the last call: every answer given, remembered
    /// or not, at what computing it cost.
    pub fn take_charged(&mut self) -> Usage {
        std::mem::take(&mut self.charged)
    }

    /// What the model actually computed so far.
    pub fn spent(&self) -> Usage {
        self.spent
    }

    /// Whether `text` is a remembered completion that ended at the token
    /// limit.
    pub fn was_truncated(&self, text: &str) -> bool {
        self.memory
            .replies
            .values()
            .any(|(r, _)| r.truncated && r.text == text)
    }

    /// Tokens of a remembered completion `text`, if any.
    pub fn new_tokens_of(&self, text: &str) -> Option<u64> {
        self.memory
            .replies
            .values()
            .find(|(r, _)| r.text == text)
            .map(|(r, _)| r.new_tokens)
    }

    fn usage(&mut self) -> Usage {
        let u = self.inner.take_usage();
        self.spent += u;
        u
    }
}

impl<M: ChatModel> ChatModel for Metered<M> {
    fn model_id(&self) -> [u8; 16] {
        self.inner.model_id()
    }

    fn name(&self) -> &str {
        self.inner.name()
    }

    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        let keys: Vec<String> = requests.iter().map(key).collect();
        let missing = unknown(&keys, &self.memory.replies);
        if !missing.is_empty() {
            let asked: Vec<_> = missing.iter().map(|&i| requests[i].clone()).collect();
            let _ = self.usage();
            let replies = self.inner.complete(&asked)?;
            if replies.len() != asked.len() {
                return Err(ModelError(format!(
                    "{} returned {} completions for {} requests",
                    self.inner.name(),
                    replies.len(),
                    asked.len()
                )));
            }
            let usage = self.usage();
            let weights: Vec<(u64, u64)> = replies
                .iter()
                .map(|r| (r.prompt_tokens, r.new_tokens))
                .collect();
            for ((&i, reply), cost) in missing.iter().zip(replies).zip(usage.split(&weights)) {
                self.memory.replies.insert(keys[i].clone(), (reply, cost));
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            let (reply, cost) = &self.memory.replies[k];
            self.charged += *cost;
            out.push(reply.clone());
        }
        Ok(out)
    }

    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        let keys: Vec<String> = conversations.iter().map(key).collect();
        let missing = unknown(&keys, &self.memory.judged);
        if !missing.is_empty() {
            let asked: Vec<_> = missing.iter().map(|&i| conversations[i].clone()).collect();
            let _ = self.usage();
            let p = self.inner.p_yes(&asked)?;
            if p.len() != asked.len() {
                return Err(ModelError(format!(
                    "{} returned {} answers for {} questions",
                    self.inner.name(),
                    p.len(),
                    asked.len()
                )));
            }
            let usage = self.usage();
            let per = usage.prompt_tokens / asked.len() as u64;
            let weights = vec![(per, 0); asked.len()];
            for ((&i, p), cost) in missing.iter().zip(p).zip(usage.split(&weights)) {
                self.memory.judged.insert(keys[i].clone(), (p, cost));
            }
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in &keys {
            let (p, cost) = self.memory.judged[k];
            self.charged += cost;
            out.push(p);
        }
        Ok(out)
    }

    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        let k = key(&(conversation, candidates));
        if !self.memory.scored.contains_key(&k) {
            let _ = self.usage();
            let scores = self.inner.score_candidates(conversation, candidates)?;
            let usage = self.usage();
            self.memory.scored.insert(k.clone(), (scores, usage));
        }
        let (scores, cost) = &self.memory.scored[&k];
        self.charged += *cost;
        Ok(scores.clone())
    }

    fn take_usage(&mut self) -> Usage {
        self.take_charged()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Echoes the last message; counts calls; 10 prompt tokens a request.
    #[derive(Default)]
    struct Echo {
        calls: usize,
        pending: Usage,
    }

    impl ChatModel for Echo {
        fn model_id(&self) -> [u8; 16] {
            [7; 16]
        }
        fn name(&self) -> &str {
            "echo"
        }
        fn complete(&mut self, r: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
            self.calls += 1;
            let reply = |(m, s): &(Vec<Message>, Sampling)| {
                let text = m.last().unwrap().content.clone();
                let new_tokens = text.len().min(s.max_tokens) as u64;
                self.pending.prompt_tokens += 10;
                self.pending.generated_tokens += new_tokens;
                Reply {
                    truncated: text.len() > s.max_tokens,
                    text,
                    prompt_tokens: 10,
                    new_tokens,
                }
            };
            Ok(r.iter().map(reply).collect())
        }
        fn p_yes(&mut self, c: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
            self.calls += 1;
            self.pending.prompt_tokens += 5 * c.len() as u64;
            Ok(c.iter().map(|m| m.len() as f64 / 10.0).collect())
        }
        fn score_candidates(
            &mut self,
            _: &[Message],
            c: &[String],
        ) -> Result<Vec<f64>, ModelError> {
            self.calls += 1;
            Ok(vec![0.0; c.len()])
        }
        fn take_usage(&mut self) -> Usage {
            std::mem::take(&mut self.pending)
        }
    }

    fn ask(text: &str) -> (Vec<Message>, Sampling) {
        (vec![Message::user(text)], Sampling::greedy(4))
    }

    #[test]
    fn remembered_answers_are_computed_once_and_charged_each_time() {
        let mut m = Metered::new(Echo::default());
        m.complete(&[ask("abcdef"), ask("xy")]).unwrap();
        let first = m.take_charged();
        assert_eq!((first.prompt_tokens, first.generated_tokens), (20, 6));
        let out = m.complete(&[ask("xy"), ask("abcdef"), ask("xy")]).unwrap();
        assert_eq!(out[1].text, "abcdef");
        assert!(out[1].truncated && !out[0].truncated);
        assert!(m.was_truncated("abcdef") && !m.was_truncated("xy"));
        assert_eq!(m.inner.calls, 1, "all three were remembered");
        let charged = m.take_charged();
        assert_eq!((charged.prompt_tokens, charged.generated_tokens), (30, 8));
        assert_eq!(m.spent().tokens(), 20 + 6);

        let c = vec![Message::user("q")];
        assert_eq!(m.p_yes(&[c.clone(), c.clone()]).unwrap(), [0.1, 0.1]);
        assert_eq!(m.p_yes(&[c]).unwrap(), [0.1]);
        assert_eq!(m.inner.calls, 2);
        assert_eq!(m.take_charged().prompt_tokens, 15);
    }
}
