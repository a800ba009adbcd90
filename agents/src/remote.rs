//! The asker's end of a connection: a [`tenbits_qa::Answerer`] over a
//! [`Connection`].

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tenbits_messaging::{
    handshake_as_client, Connection, Frame, Hello, Role, Token, WireError, WireStats,
};
use tenbits_qa::{Answer, AnswerRequest, Answerer, QaError, PROMPT_VERSION};
use tokio::runtime::Handle;

use crate::server::Endpoint;
use crate::wire::request_frame;
use crate::AgentError;

/// First and longest pause between reconnection attempts.
const RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(5));

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
    /// How to connect again after a drop: the endpoint, the hello
    /// parameters, and attempts left per drop (0: never).
    redial: Option<Redial>,
    reconnect: u32,
    /// Reconnections made.
    reconnects: u32,
    /// Traffic of the connections before the current one.
    earlier: WireStats,
}

#[derive(Clone)]
struct Redial {
    endpoint: Endpoint,
    mine: Hello,
    expect_name: Option<String>,
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
        let mine = Self::hello(asker_model, session, expect_id);
        let peer = Self::shake(&mut conn, &mine, None, expect_name).await?;
        Ok(Self::opened(conn, session, peer, None))
    }

    /// Opens a connection to `endpoint` and handshakes as
    /// [`Self::connect`] does, presenting the endpoint's token. Keeps the
    /// endpoint, so that [`Self::with_reconnect`] can connect again.
    pub async fn open(
        endpoint: &Endpoint,
        asker_model: [u8; 16],
        session: u64,
        expect_id: Option<[u8; 16]>,
        expect_name: Option<&str>,
    ) -> Result<Self, AgentError> {
        let mine = Self::hello(asker_model, session, expect_id);
        let mut conn = endpoint.open().await?;
        let peer = Self::shake(&mut conn, &mine, endpoint.token(), expect_name).await?;
        let redial = Redial {
            endpoint: endpoint.clone(),
            mine,
            expect_name: expect_name.map(str::to_string),
        };
        Ok(Self::opened(conn, session, peer, Some(redial)))
    }

    /// A session on a handshaken connection.
    fn opened(conn: Connection, session: u64, peer: Hello, redial: Option<Redial>) -> Self {
        Self {
            stats: conn.stats(),
            conn: Some(conn),
            runtime: Handle::current(),
            session,
            next_question: 0,
            peer,
            latencies: Vec::new(),
            cancel: None,
            redial,
            reconnect: 0,
            reconnects: 0,
            earlier: WireStats::default(),
        }
    }

    /// After a dropped connection (the answerer restarted, a network
    /// fault), connects again up to `attempts` times with doubling pauses
    /// and resends the request in flight. Answers depend only on the
    /// request, so the session's transcript is the one an unbroken
    /// connection gives. Only answerers made by [`Self::open`] can.
    pub fn with_reconnect(mut self, attempts: u32) -> Self {
        self.reconnect = attempts;
        self
    }

    /// Times this session connected again.
    pub fn reconnects(&self) -> u32 {
        self.reconnects
    }

    fn hello(asker_model: [u8; 16], session: u64, expect_id: Option<[u8; 16]>) -> Hello {
        let name = format!("asker-{session}");
        Hello::new(Role::Asker, asker_model, expect_id, PROMPT_VERSION, name)
    }

    /// The handshake, and the check of the model name the server announces.
    async fn shake(
        conn: &mut Connection,
        mine: &Hello,
        token: Option<&Token>,
        expect_name: Option<&str>,
    ) -> Result<Hello, AgentError> {
        let peer = handshake_as_client(conn, mine, token).await?;
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
        Ok(peer)
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
        let mut total = self.earlier;
        total += self.conn.as_ref().map_or(self.stats, Connection::stats);
        total
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
        let n = request.questions.len();
        let first = self.next_question;
        self.next_question = first
            .checked_add(n as u32)
            .ok_or_else(|| AgentError::Handshake("question ids exhausted".into()))?;
        let start = Instant::now();
        let frame = request_frame(self.session, first, request);
        let mut attempt = 0;
        let reply = loop {
            let exchanged = match self.conn.as_mut() {
                Some(conn) => Self::exchange(conn, &frame).await,
                None => Err(WireError::Closed),
            };
            match exchanged {
                Ok(reply) => break reply,
                Err(e)
                    if Self::is_drop(&e) && attempt < self.reconnect && self.redial.is_some() =>
                {
                    attempt += 1;
                    self.redial(attempt, &e).await?;
                }
                Err(e) => return Err(e.into()),
            }
        };
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

    async fn exchange(conn: &mut Connection, frame: &Frame) -> Result<Frame, WireError> {
        conn.send(frame).await?;
        conn.recv().await?.ok_or(WireError::Closed)
    }

    /// Whether `e` means the connection is gone (worth a reconnect), not
    /// that the answerer refused the request.
    fn is_drop(e: &WireError) -> bool {
        matches!(
            e,
            WireError::Io(_)
                | WireError::Closed
                | WireError::Dropped { .. }
                | WireError::TimedOut { .. }
        )
    }

    /// Connects again after `cause`, pausing first (attempt `attempt`).
    async fn redial(&mut self, attempt: u32, cause: &WireError) -> Result<(), AgentError> {
        let Some(redial) = self.redial.clone() else {
            return Err(WireError::Closed.into());
        };
        if let Some(old) = self.conn.take() {
            self.earlier += old.stats();
        }
        self.stats = WireStats::default();
        let pause =
            (RECONNECT_BACKOFF.0 * 2u32.saturating_pow(attempt - 1)).min(RECONNECT_BACKOFF.1);
        tracing::warn!(
            "session {}: connection lost ({cause}); reconnecting in {} ms (attempt {attempt} of {})",
            self.session,
            pause.as_millis(),
            self.reconnect
        );
        tokio::time::sleep(pause).await;
        let mut conn = match redial.endpoint.open().await {
            Ok(conn) => conn,
            // Not up yet: the next attempt pauses longer.
            Err(e) => {
                tracing::warn!("session {}: reconnect failed: {e}", self.session);
                return Ok(());
            }
        };
        let token = redial.endpoint.token();
        let shaken = Self::shake(
            &mut conn,
            &redial.mine,
            token,
            redial.expect_name.as_deref(),
        )
        .await;
        let peer = match shaken {
            Ok(peer) => peer,
            // A restarted answerer at its connection cap: the next attempt
            // pauses longer. Any other refusal is final.
            Err(AgentError::Wire(WireError::Remote { code, .. }))
                if code == tenbits_messaging::ErrorCode::BUSY =>
            {
                tracing::warn!("session {}: the answerer is busy", self.session);
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        if peer.model != self.peer.model {
            return Err(AgentError::Handshake(format!(
                "after reconnecting, the answerer runs model {} instead of {}",
                tenbits_messaging::hex(&peer.model),
                tenbits_messaging::hex(&self.peer.model)
            )));
        }
        self.conn = Some(conn);
        self.reconnects += 1;
        Ok(())
    }

    /// Says `Bye` and closes; the final traffic.
    pub async fn close_async(&mut self) -> Result<WireStats, AgentError> {
        if let Some(mut conn) = self.conn.take() {
            let sent = conn.send(&Frame::Bye).await;
            self.stats = conn.stats();
            sent?;
        }
        Ok(self.wire_stats())
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
