//! Loading models, and sharing one loaded model between sessions.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use tenbits_qa::{ChatModel, Message, ModelError, Sampling};

use crate::AgentError;

/// A model loaded for the deployment.
pub type BoxedModel = Box<dyn ChatModel + Send>;

/// Loads a model by registry name (`crates/inference/models.toml`) with a
/// number of intra-op threads. Deployments take one, so tests run on fakes
/// ([`crate::testing::FakeWorld::factory`]) and binaries on ONNX models
/// (`onnx_factory`, with the `onnx` feature).
pub type ModelFactory = Arc<dyn Fn(&str, usize) -> Result<BoxedModel, AgentError> + Send + Sync>;

/// The factory of the real models: [`crate::onnx::OnnxChatModel::load`].
#[cfg(feature = "onnx")]
pub fn onnx_factory() -> ModelFactory {
    Arc::new(|name: &str, threads: usize| {
        let model = crate::onnx::OnnxChatModel::load(name, threads)?;
        Ok(Box::new(model) as BoxedModel)
    })
}

/// One loaded model shared by several sessions (the asker side's choice).
///
/// Calls of different sessions are merged: a `generate` (or `p_yes`) that
/// arrives while the model is busy waits, and when the model is free the
/// first waiter runs every waiting session's requests as one batched call
/// and hands each session its own results. `Generator` gives a request the
/// same tokens alone or in any batch, so every session sees exactly what it
/// would see alone, at the batched rate. `score_candidates` calls run one
/// at a time. For still more throughput load more copies (`[asker]
/// count`), which sessions use round-robin.
///
/// A panic inside a call does not poison the model for the other sessions:
/// the lock is recovered (a call leaves no state behind in the models this
/// crate hosts) and the sessions of that call get an error.
#[derive(Clone)]
pub struct SharedModel {
    inner: Arc<Mutex<BoxedModel>>,
    generate: Arc<Merger<(Vec<Message>, Sampling), String>>,
    p_yes: Arc<Merger<Vec<Message>, f64>>,
    id: [u8; 16],
    name: String,
}

impl SharedModel {
    /// Shares `model`.
    pub fn new(model: BoxedModel) -> Self {
        let (id, name) = (model.model_id(), model.name().to_string());
        Self {
            inner: Arc::new(Mutex::new(model)),
            generate: Arc::new(Merger::default()),
            p_yes: Arc::new(Merger::default()),
            id,
            name,
        }
    }

    fn lock(&self) -> MutexGuard<'_, BoxedModel> {
        relock(&self.inner)
    }

    /// `generate` and `p_yes` calls run on the model so far, and the
    /// requests they carried (merging makes calls fewer than the sessions'
    /// calls).
    pub fn merged_calls(&self) -> (u64, u64) {
        let (g, p) = (relock(&self.generate.state), relock(&self.p_yes.state));
        (g.calls + p.calls, g.requests + p.requests)
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

impl ChatModel for SharedModel {
    fn model_id(&self) -> [u8; 16] {
        self.id
    }
    fn name(&self) -> &str {
        &self.name
    }
    fn generate(
        &mut self,
        requests: &[(Vec<Message>, Sampling)],
    ) -> Result<Vec<String>, ModelError> {
        let inner = &self.inner;
        self.generate
            .call(requests, |all| relock(inner).generate(all))
    }
    fn p_yes(&mut self, conversations: &[Vec<Message>]) -> Result<Vec<f64>, ModelError> {
        let inner = &self.inner;
        self.p_yes
            .call(conversations, |all| relock(inner).p_yes(all))
    }
    fn score_candidates(
        &mut self,
        conversation: &[Message],
        candidates: &[String],
    ) -> Result<Vec<f64>, ModelError> {
        self.lock().score_candidates(conversation, candidates)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Echoes each request's last message, slowly, counting its calls.
    struct Echo {
        calls: Arc<AtomicUsize>,
    }

    impl ChatModel for Echo {
        fn model_id(&self) -> [u8; 16] {
            [7; 16]
        }
        fn name(&self) -> &str {
            "echo"
        }
        fn generate(
            &mut self,
            requests: &[(Vec<Message>, Sampling)],
        ) -> Result<Vec<String>, ModelError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(30));
            Ok(requests
                .iter()
                .map(|(m, _)| m.last().map(|m| m.content.clone()).unwrap_or_default())
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
    }

    #[test]
    fn concurrent_sessions_share_batched_calls_and_get_their_own_results() {
        let calls = Arc::new(AtomicUsize::new(0));
        let shared = SharedModel::new(Box::new(Echo {
            calls: calls.clone(),
        }));
        let threads: Vec<_> = (0..16)
            .map(|i| {
                let mut model = shared.clone();
                std::thread::spawn(move || {
                    let mut got = Vec::new();
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
                        got.push(replies.len());
                    }
                    got
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap().len(), 3);
        }
        let model_calls = calls.load(Ordering::SeqCst);
        // 48 session calls; merged, far fewer model calls.
        assert!(model_calls < 48 / 2, "{model_calls} model calls");
        let (merged, requests) = shared.merged_calls();
        assert_eq!(merged as usize, model_calls);
        assert_eq!(requests, (0..16).map(|i| 3 * (1 + i % 3)).sum::<u64>());
    }

    #[test]
    fn an_error_reaches_only_the_session_that_caused_it() {
        let shared = SharedModel::new(Box::new(Echo {
            calls: Arc::new(AtomicUsize::new(0)),
        }));
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
}
