//! [`SharedModel`]: one loaded model behind cheap handles, for many
//! sessions at once, their concurrent calls merged into batched calls.
//!
//! Sessions (a swarm's askers, an evaluation's problems) run on threads of
//! their own, each with a clone of the handle. A `complete` (or `p_yes`)
//! that arrives while the model is busy waits; when the model is free, the
//! first waiter runs every waiting session's requests as one batched call
//! (group commit) and hands each session its own results. A model whose
//! requests come out the same alone or in any batch (`Generator` pads a
//! lone request so they do) gives every session what it would get alone,
//! at the batched rate.
//!
//! Sampled calls (any request with a temperature above 0) are not merged:
//! they run as they came, one call at a time. A sampled token can turn on
//! a last-bit difference in the logits, and another batch (another shared
//! prefix, other block boundaries) can make one: in an evaluation of four
//! problems side by side with the real models, the one record of 28 that
//! changed was `select`'s sampled drafts; the 27 from greedy calls came
//! out as they had one problem at a time.
//!
//! Each handle keeps its own ledger: a merged call's [`Usage`] is split
//! among its requests by their tokens, so [`ChatModel::take_usage`] on a
//! handle reports that session's share, not everyone's.
//!
//! ```
//! use tenbits_qa::{ChatModel, Message, ModelError, Reply, Sampling, SharedModel};
//!
//! struct Echo;
//! impl ChatModel for Echo {
//!     fn model_id(&self) -> [u8; 16] { [1; 16] }
//!     fn name(&self) -> &str { "echo" }
//!     fn complete(&mut self, r: &[(Vec<Message>, Sampling)]) -> Result<Vec<Reply>, ModelError> {
//!         Ok(r.iter().map(|(m, _)| m[0].content.clone().into()).collect())
//!     }
//!     fn p_yes(&mut self, c: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> { Ok(vec![0.5; c.len()]) }
//!     fn score_candidates(&mut self, _: &[Message], c: &[String]) -> Result<Vec<f64>, ModelError> {
//!         Ok(vec![0.0; c.len()])
//!     }
//! }
//!
//! let shared = SharedModel::new(Echo);
//! let replies: Vec<String> = std::thread::scope(|s| {
//!     let sessions: Vec<_> = (0..4)
//!         .map(|i| {
//!             let mut model = shared.clone();
//!             s.spawn(move || model.generate(&[(vec![Message::user(format!("hi {i}"))], Sampling::default())]))
//!         })
//!         .collect();
//!     sessions.into_iter().map(|t| t.join().unwrap().unwrap().remove(0)).collect()
//! });
//! assert_eq!(replies, ["hi 0", "hi 1", "hi 2", "hi 3"]);
//! assert_eq!(shared.merged_calls().1, 4); // four requests, in at most four calls
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::{ChatModel, Message, ModelError, PromptBudget, Reply, Sampling, Usage};

/// One completion request: a conversation and how to sample its reply.
type Request = (Vec<Message>, Sampling);

/// A handle on one loaded model shared by several sessions (see the
/// module docs). Clones share the model and its queues; each clone counts
/// its own usage.
///
/// A panic inside a call does not poison the model for the other sessions:
/// the lock is recovered (a call leaves no state behind in the models this
/// project hosts) and the sessions of that call get an error.
/// `score_candidates` calls run one at a time, unmerged.
pub struct SharedModel<M> {
    inner: Arc<Mutex<M>>,
    complete: Arc<Merger<Request, (Reply, Usage)>>,
    p_yes: Arc<Merger<Vec<Message>, (f64, Usage)>>,
    id: [u8; 16],
    name: String,
    budget: Option<PromptBudget>,
    /// This handle's share of the work since its last `take_usage`.
    usage: Usage,
}

impl<M> Clone for SharedModel<M> {
    /// Another handle on the same model, with a ledger of its own.
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            complete: self.complete.clone(),
            p_yes: self.p_yes.clone(),
            id: self.id,
            name: self.name.clone(),
            budget: self.budget.clone(),
            usage: Usage::default(),
        }
    }
}

impl<M: ChatModel> SharedModel<M> {
    /// Shares `model`.
    pub fn new(model: M) -> Self {
        let (id, name, budget) = (
            model.model_id(),
            model.name().to_string(),
            model.prompt_budget(),
        );
        Self {
            inner: Arc::new(Mutex::new(model)),
            complete: Arc::new(Merger::default()),
            p_yes: Arc::new(Merger::default()),
            id,
            name,
            budget,
            usage: Usage::default(),
        }
    }

    /// `complete` and `p_yes` calls run on the model so far, and the
    /// requests they carried (merging makes calls fewer than the sessions'
    /// calls).
    pub fn merged_calls(&self) -> (u64, u64) {
        let (g, p) = (relock(&self.complete.state), relock(&self.p_yes.state));
        (g.calls + p.calls, g.requests + p.requests)
    }
}

impl Usage {
    /// `self` (the work of one batched call) split over its requests:
    /// each gets its own `(prompt, generated)` tokens and a share of the
    /// time in proportion to them (evenly when they are all zero).
    pub fn split(self, tokens: &[(u64, u64)]) -> Vec<Usage> {
        let total: u64 = tokens.iter().map(|(p, g)| p + g).sum();
        let n = tokens.len().max(1) as f64;
        tokens
            .iter()
            .map(|&(prompt, generated)| {
                let share = if total == 0 {
                    1.0 / n
                } else {
                    (prompt + generated) as f64 / total as f64
                };
                Usage {
                    prompt_tokens: prompt,
                    generated_tokens: generated,
                    seconds: self.seconds * share,
                }
            })
            .collect()
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Merges concurrent calls of one kind into batched calls (group commit).
struct Merger<Req, Out> {
    state: Mutex<MergeState<Req, Out>>,
    finished: Condvar,
}

type Outcome<Out> = Result<Vec<Out>, ModelError>;

struct MergeState<Req, Out> {
    next_ticket: u64,
    waiting: Vec<(u64, Vec<Req>)>,
    done: HashMap<u64, Outcome<Out>>,
    busy: bool,
    calls: u64,
    requests: u64,
}

impl<Req, Out> Default for Merger<Req, Out> {
    fn default() -> Self {
        Merger {
            state: Mutex::new(MergeState {
                next_ticket: 0,
                waiting: Vec::new(),
                done: HashMap::new(),
                busy: false,
                calls: 0,
                requests: 0,
            }),
            finished: Condvar::new(),
        }
    }
}

impl<Req: Clone, Out> Merger<Req, Out> {
    /// `requests`' results, computed by `run` over them and whatever other
    /// sessions' requests wait at the same time. When the merged call
    /// fails, each session's requests run again alone, so a failure (or
    /// panic) reaches only the session that caused it.
    fn call(&self, requests: &[Req], mut run: impl FnMut(&[Req]) -> Outcome<Out>) -> Outcome<Out> {
        let mut state = relock(&self.state);
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.waiting.push((ticket, requests.to_vec()));
        let mut led = false;
        loop {
            if let Some(result) = state.done.remove(&ticket) {
                return result;
            }
            // Not done and nobody running: our requests are still waiting
            // (a leader files every result before it clears `busy`), so we
            // lead, once.
            if !state.busy {
                if led {
                    return Err(ModelError("merged call lost its result".into()));
                }
                led = true;
                state.busy = true;
                let jobs = std::mem::take(&mut state.waiting);
                drop(state);
                let all: Vec<Req> = jobs.iter().flat_map(|(_, r)| r.iter().cloned()).collect();
                let mut results = Vec::with_capacity(jobs.len());
                match guarded(&mut run, &all) {
                    Ok(outs) => {
                        let mut outs = outs.into_iter();
                        for (t, reqs) in &jobs {
                            results.push((*t, Ok(outs.by_ref().take(reqs.len()).collect())));
                        }
                    }
                    Err(e) if jobs.len() == 1 => results.push((jobs[0].0, Err(e))),
                    Err(_) => {
                        for (t, reqs) in &jobs {
                            results.push((*t, guarded(&mut run, reqs)));
                        }
                    }
                }
                state = relock(&self.state);
                state.calls += 1;
                state.requests += all.len() as u64;
                state.done.extend(results);
                state.busy = false;
                self.finished.notify_all();
            } else {
                state = self
                    .finished
                    .wait(state)
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
            }
        }
    }
}

/// `run(requests)`, with a panic turned into an error and a wrong number
/// of results refused.
fn guarded<Req, Out>(
    run: &mut impl FnMut(&[Req]) -> Outcome<Out>,
    requests: &[Req],
) -> Outcome<Out> {
    let outs = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(requests)))
        .unwrap_or_else(|_| Err(ModelError("the model panicked".into())))?;
    if outs.len() != requests.len() {
        return Err(ModelError(format!(
            "the model returned {} results for {} requests",
            outs.len(),
            requests.len()
        )));
    }
    Ok(outs)
}

impl<M: ChatModel> ChatModel for SharedModel<M> {
    fn model_id(&self) -> [u8; 16] {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        let inner = &self.inner;
        let mut run = |all: &[Request]| {
            let mut model = relock(inner);
            let _ = model.take_usage();
            let replies = model.complete(all)?;
            let tokens: Vec<_> = replies
                .iter()
                .map(|r| (r.prompt_tokens, r.new_tokens))
                .collect();
            let shares = model.take_usage().split(&tokens);
            Ok(replies.into_iter().zip(shares).collect::<Vec<_>>())
        };
        let sampled = requests.iter().any(|(_, s)| s.temperature > 0.0);
        let outs = if sampled {
            guarded(&mut run, requests)?
        } else {
            self.complete.call(requests, run)?
        };
        Ok(outs
            .into_iter()
            .map(|(reply, usage)| {
                self.usage += usage;
                reply
            })
            .collect())
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        let inner = &self.inner;
        let outs = self.p_yes.call(conversations, |all| {
            let mut model = relock(inner);
            let _ = model.take_usage();
            let p = model.p_yes(all)?;
            let usage = model.take_usage();
            let per = usage.prompt_tokens / all.len().max(1) as u64;
            let shares = usage.split(&vec![(per, 0); p.len()]);
            Ok(p.into_iter().zip(shares).collect())
        })?;
        Ok(outs
            .into_iter()
            .map(|(p, usage)| {
                self.usage += usage;
                p
            })
            .collect())
    }
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        let mut model = relock(&self.inner);
        let _ = model.take_usage();
        let scores = model.score_candidates(conversation, candidates);
        self.usage += model.take_usage();
        scores
    }
    fn take_usage(&mut self) -> Usage {
        std::mem::take(&mut self.usage)
    }
    fn prompt_budget(&self) -> Option<PromptBudget> {
        self.budget.clone()
    }
}

impl<M: ChatModel + ?Sized> ChatModel for Box<M> {
    fn model_id(&self) -> [u8; 16] {
        (**self).model_id()
    }
    fn name(&self) -> &str {
        (**self).name()
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        (**self).p_yes(conversations)
    }
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        (**self).score_candidates(conversation, candidates)
    }
    fn complete(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<Reply>, ModelError> {
        (**self).complete(requests)
    }
    fn take_usage(&mut self) -> Usage {
        (**self).take_usage()
    }
    fn prompt_budget(&self) -> Option<PromptBudget> {
        (**self).prompt_budget()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Echoes each request's last message, slowly, counting its calls and
    /// 10 prompt tokens and one generated token per request.
    struct Echo {
        calls: Arc<AtomicUsize>,
        pending: Usage,
    }

    fn echo(calls: &Arc<AtomicUsize>) -> Echo {
        Echo {
            calls: calls.clone(),
            pending: Usage::default(),
        }
    }

    impl ChatModel for Echo {
        fn model_id(&self) -> [u8; 16] {
            [7; 16]
        }
        fn name(&self) -> &str {
            "echo"
        }
        fn complete(
            &mut self,
            requests: &[(Vec<Message>, Sampling)],
        ) -> Result<Vec<Reply>, ModelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            self.pending.prompt_tokens += 10 * requests.len() as u64;
            self.pending.generated_tokens += requests.len() as u64;
            self.pending.seconds += 1.0;
            Ok(requests
                .iter()
                .map(|(m, _)| Reply {
                    text: m.last().map(|m| m.content.clone()).unwrap_or_default(),
                    truncated: false,
                    prompt_tokens: 10,
                    new_tokens: 1,
                })
                .collect())
        }
        fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
            std::thread::sleep(std::time::Duration::from_millis(30));
            if conversations.iter().any(|c| c.is_empty()) {
                return Err(ModelError("empty conversation".into()));
            }
            Ok(conversations.iter().map(|c| c.len() as f64).collect())
        }
        fn score_candidates(
            &mut self,
            _: &[Message],
            candidates: &[String],
        ) -> Result<Vec<f64>, ModelError> {
            Ok(vec![0.0; candidates.len()])
        }
        fn take_usage(&mut self) -> Usage {
            std::mem::take(&mut self.pending)
        }
    }

    #[test]
    fn concurrent_sessions_share_batched_calls_and_get_their_own_results_and_usage() {
        let calls = Arc::new(AtomicUsize::new(0));
        let shared = SharedModel::new(echo(&calls));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let mut model = shared.clone();
                std::thread::spawn(move || {
                    let mut got = 0;
                    for round in 0..3 {
                        let requests: Vec<_> = (0..1 + i % 3)
                            .map(|k| {
                                let text = format!("session {i} round {round} request {k}");
                                (vec![Message::user(text)], Sampling::default())
                            })
                            .collect();
                        let replies = model.generate(&requests).unwrap();
                        let expected: Vec<String> =
                            requests.iter().map(|(m, _)| m[0].content.clone()).collect();
                        assert_eq!(replies, expected);
                        got += replies.len() as u64;
                    }
                    (got, model.take_usage())
                })
            })
            .collect();
        let mut seconds = 0.0;
        for t in threads {
            let (requests, usage) = t.join().unwrap();
            // Each session is charged its own tokens, not the batch's.
            assert_eq!(usage.prompt_tokens, 10 * requests);
            assert_eq!(usage.generated_tokens, requests);
            seconds += usage.seconds;
        }
        let model_calls = calls.load(Ordering::SeqCst);
        // 48 session calls; merged, far fewer model calls.
        assert!(model_calls < 48 / 2, "{model_calls} model calls");
        // The model's time (one second a call) is shared out, not copied.
        assert!((seconds - model_calls as f64).abs() < 1e-9, "{seconds}");
        let (merged, requests) = shared.merged_calls();
        assert_eq!(merged as usize, model_calls);
        assert_eq!(requests, (0..16).map(|i| 3 * (1 + i % 3)).sum::<u64>());
    }

    #[test]
    fn an_error_reaches_only_the_session_that_caused_it() {
        let shared = SharedModel::new(echo(&Arc::new(AtomicUsize::new(0))));
        let ok = || vec![Message::user("q".to_string())];
        let spawn = |conversation: Vec<Message>| {
            let mut model = shared.clone();
            std::thread::spawn(move || model.p_yes(&[conversation]))
        };
        // The first call keeps the model busy; the next two wait and are
        // merged into one call, which fails on the empty conversation and
        // is run again session by session.
        let first = spawn(ok());
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (bad, good) = (spawn(vec![]), spawn(ok()));
        assert_eq!(first.join().unwrap().unwrap(), vec![1.0]);
        assert!(bad.join().unwrap().is_err());
        assert_eq!(good.join().unwrap().unwrap(), vec![1.0]);
        assert_eq!(shared.merged_calls(), (2, 3), "one call of one, one of two");
    }

    #[test]
    fn sampled_calls_run_as_they_came() {
        let calls = Arc::new(AtomicUsize::new(0));
        let shared = SharedModel::new(echo(&calls));
        let sampled = Sampling {
            temperature: 0.8,
            ..Sampling::default()
        };
        let threads: Vec<_> = (0..6)
            .map(|i| {
                let mut model = shared.clone();
                let sampling = sampled.clone();
                std::thread::spawn(move || {
                    let asks = vec![(vec![Message::user(format!("s{i}"))], sampling); 2];
                    model.generate(&asks).unwrap()
                })
            })
            .collect();
        for (i, t) in threads.into_iter().enumerate() {
            assert_eq!(t.join().unwrap(), vec![format!("s{i}"); 2]);
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            6,
            "one model call per session call"
        );
        assert_eq!(shared.merged_calls(), (0, 0));
    }

    #[test]
    fn a_split_keeps_each_requests_tokens_and_shares_the_time() {
        let u = Usage {
            prompt_tokens: 40,
            generated_tokens: 4,
            seconds: 2.0,
        };
        let parts = u.split(&[(10, 1), (30, 3)]);
        assert_eq!((parts[0].prompt_tokens, parts[1].generated_tokens), (10, 3));
        assert!((parts[0].seconds - 0.5).abs() < 1e-12 && (parts[1].seconds - 1.5).abs() < 1e-12);
        let even = u.split(&[(0, 0), (0, 0)]);
        assert_eq!(even[0].seconds, 1.0);
    }
}
