//! The asker's end of a connection: a [`tenbits_qa::Answerer`] over a
//! [`Connection`].

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenbits_messaging::{handshake, Connection, Frame, Hello, Role, WireError, WireStats};
use tenbits_qa::{Answer, AnswerRequest, Answerer, QaError, PROMPT_VERSION};
use tokio::runtime::Handle;

use crate::wire::request_frame;
use crate::AgentError;

/// A remote answerer, reached over a [`Connection`] (TCP or in-process
/// channels: the same code).
///
/// The protocol code is synchronous, the connection async. The bridge: the
/// answerer keeps the [`Handle`] of the runtime it was connected on, and
/// [`Answerer::answer`] runs the exchange with [`Handle::block_on`]. So
/// call it from a thread outside the runtime's workers (a plain thread or
/// [`tokio::task::spawn_blocking`]), never from async code, and on a
/// multi-threaded runtime (whose workers drive the sockets meanwhile).
pub struct RemoteAnswerer {
    conn: Option<Connection>,
    runtime: Handle,
    session: u64,
    next_question: u32,
    peer: Hello,
    latencies: Vec<Duration>,
    cancel: Option<Arc<AtomicBool>>,
    stats: WireStats,
}

impl RemoteAnswerer {
    /// Handshakes on `conn` as the asker running `asker_model`, for session
    /// number `session`. `expect_id` insists on the answerer's exact model
    /// id (refused by the handshake otherwise); `expect_name` on the model
    /// name the server announces. Call from within a runtime.
    pub async fn connect(
        mut conn: Connection,
        asker_model: [u8; 16],
        session: u64,
        expect_id: Option<[u8; 16]>,
        expect_name: Option<&str>,
    ) -> Result<Self, AgentError> {
        let name = format!("asker-{session}");
        let mine = Hello::new(Role::Asker, asker_model, expect_id, PROMPT_VERSION, name);
        let peer = handshake(&mut conn, &mine).await?;
        if let Some(want) = expect_name.filter(|n| *n != peer.name) {
            let message = format!(
                "the answerer runs `{}`, this asker expects `{want}`",
                peer.name
            );
            let _ = conn
                .send(&Frame::Error {
                    code: tenbits_messaging::ErrorCode::MODEL_MISMATCH,
                    message: message.clone(),
                })
                .await;
            return Err(AgentError::Handshake(message));
        }
        Ok(Self {
            stats: conn.stats(),
            conn: Some(conn),
            runtime: Handle::current(),
            session,
            next_question: 0,
            peer,
            latencies: Vec::new(),
            cancel: None,
        })
    }

    /// Fails every later request once `flag` is set (a cancelled session).
    pub fn with_cancel(mut self, flag: Arc<AtomicBool>) -> Self {
        self.cancel = Some(flag);
        self
    }

    /// The answerer's hello.
    pub fn peer(&self) -> &Hello {
        &self.peer
    }

    /// Traffic so far (handshake included).
    pub fn wire_stats(&self) -> WireStats {
        self.conn.as_ref().map_or(self.stats, Connection::stats)
    }

    /// Round-trip time of each answered request.
    pub fn latencies(&self) -> &[Duration] {
        &self.latencies
    }

    /// Answers one request (async).
    pub async fn answer_async(&mut self, request: &AnswerRequest) -> Result<Vec<bool>, AgentError> {
        if self.cancel.as_ref().is_some_and(|c| c.load(Relaxed)) {
            return Err(AgentError::Actor("session cancelled".into()));
        }
        let conn = self.conn.as_mut().ok_or(WireError::Closed)?;
        let n = request.questions.len();
        let first = self.next_question;
        self.next_question = first
            .checked_add(n as u32)
            .ok_or_else(|| AgentError::Handshake("question ids exhausted".into()))?;
        let start = Instant::now();
        conn.send(&request_frame(self.session, first, request))
            .await?;
        let reply = conn.recv().await?.ok_or(WireError::Closed)?;
        let bits = match reply {
            Frame::PackedBits {
                first_question_id, ..
            } if first_question_id == first => reply.unpacked_bits(),
            Frame::Error { code, message } => {
                return Err(WireError::Remote { code, message }.into())
            }
            other => {
                return Err(WireError::Unexpected {
                    expected: "PackedBits",
                    got: other.kind(),
                }
                .into())
            }
        };
        let bits = bits
            .filter(|b| b.len() == n)
            .ok_or_else(|| WireError::Malformed(format!("expected {n} answer bits")))?;
        self.latencies.push(start.elapsed());
        Ok(bits)
    }

    /// Says `Bye` and closes; the final traffic.
    pub async fn close_async(&mut self) -> Result<WireStats, AgentError> {
        if let Some(mut conn) = self.conn.take() {
            let sent = conn.send(&Frame::Bye).await;
            self.stats = conn.stats();
            sent?;
        }
        Ok(self.stats)
    }

    /// [`Self::close_async`] from synchronous code (see the type's docs).
    pub fn close(&mut self) -> Result<WireStats, AgentError> {
        let runtime = self.runtime.clone();
        runtime.block_on(self.close_async())
    }
}

impl Answerer for RemoteAnswerer {
    fn id(&self) -> [u8; 16] {
        self.peer.model
    }

    fn answer(&mut self, request: &AnswerRequest) -> Result<Vec<Answer>, QaError> {
        let runtime = self.runtime.clone();
        let bits = runtime
            .block_on(self.answer_async(request))
            .map_err(|e| QaError::Answerer(Box::new(e)))?;
        let answer = |bit| Answer {
            bit,
            p_yes: None,
            predicted: None,
            basis: None,
        };
        Ok(bits.into_iter().map(answer).collect())
    }
}

/// The answerer of settings that consult none (BLC): every request fails.
pub(crate) struct NoAnswerer;

impl Answerer for NoAnswerer {
    fn id(&self) -> [u8; 16] {
        [0; 16]
    }
    fn answer(&mut self, _: &AnswerRequest) -> Result<Vec<Answer>, QaError> {
        Err(QaError::Invalid("no answerer in this setting"))
    }
}
