//! The answerer's server: connections in, answer requests to the
//! [`AnswererActor`](crate::AnswererActor), bits out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenbits_messaging::{
    channel_pair, handshake_as_server, Connection, ErrorCode, Frame, Hello, Listener, Role,
    Timeouts, TlsClient, TlsServer, Token, WireError, WireStats, MAX_FRAME_BYTES,
};
use tenbits_qa::PROMPT_VERSION;
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::answerer::{AnswererHandle, AnswererStats};
use crate::wire::decode_request;
use crate::AgentError;

/// Traffic and sessions of a server.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    /// Connections accepted (TCP and in-process).
    pub connections: u64,
    /// Connections refused in the handshake.
    pub handshake_failures: u64,
    /// Connections that ended with `Bye`.
    pub sessions_completed: u64,
    /// Connections that ended without `Bye` (peer gone, wire error).
    pub sessions_dropped: u64,
    /// Requests answered with bits.
    pub requests: u64,
    /// Requests refused with an `Error` frame.
    pub bad_requests: u64,
    /// Requests refused because they would not fit the model's context.
    pub too_long: u64,
    /// Connections closed for taking too long (handshake, frame, idle).
    pub timeouts: u64,
    /// Connections turned away at the connection cap.
    pub refused_busy: u64,
    /// Failed `accept` calls (each followed by a back-off).
    pub accept_errors: u64,
    /// Traffic of the connections that ended, summed.
    pub wire: WireStats,
    /// The answerer's counters.
    pub answerer: AnswererStats,
}

#[derive(Debug, Default)]
struct Counters {
    connections: AtomicU64,
    handshake_failures: AtomicU64,
    completed: AtomicU64,
    dropped: AtomicU64,
    requests: AtomicU64,
    bad_requests: AtomicU64,
    too_long: AtomicU64,
    timeouts: AtomicU64,
    refused_busy: AtomicU64,
    accept_errors: AtomicU64,
    wire: Mutex<WireStats>,
}

impl Counters {
    fn add_wire(&self, s: WireStats) {
        *self.wire.lock().unwrap_or_else(|e| e.into_inner()) += s;
    }
}

/// What one connection may cost a [`Service`], and who may connect
/// (`[limits]` and `[security]` in a deployment file).
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceLimits {
    /// Longest handshake (TLS, token and hellos); `None`: no limit.
    pub handshake: Option<Duration>,
    /// Idle and per-frame timeouts of every connection.
    pub timeouts: Timeouts,
    /// Longest frame accepted.
    pub max_frame_bytes: usize,
    /// Most tokens of problem, draft and one question together; `None`:
    /// the model's context less [`PROMPT_RESERVE_TOKENS`].
    pub max_prompt_tokens: Option<usize>,
    /// The token every client must present; `None`: no token needed.
    pub token: Option<Token>,
}

/// Tokens of a model's context kept for what a request does not carry:
/// the answerer's system prompt and template, and its own solution.
pub const PROMPT_RESERVE_TOKENS: usize = 1024;

impl Default for ServiceLimits {
    fn default() -> Self {
        Self {
            handshake: Some(Duration::from_secs(10)),
            timeouts: Timeouts {
                idle: Some(Duration::from_secs(600)),
                frame: Some(Duration::from_secs(30)),
            },
            max_frame_bytes: MAX_FRAME_BYTES,
            max_prompt_tokens: None,
            token: None,
        }
    }
}

/// The error frame a peer that took too long gets before the close.
fn timed_out(e: &WireError) -> Frame {
    Frame::Error {
        code: ErrorCode::TIMED_OUT,
        message: e.to_string(),
    }
}

/// Serves connections for one answerer: its hello, the actor, counters.
///
/// One peer's failure (a refused handshake, a timeout, a drop) is logged
/// at `info` and counted in [`ServerStats`]; `warn` is kept for what
/// concerns every peer (failing `accept`), so that a flood of bad peers
/// cannot flood the log.
#[derive(Clone)]
pub struct Service {
    answerer: AnswererHandle,
    hello: Hello,
    limits: ServiceLimits,
    counters: Arc<Counters>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    runtime: Handle,
}

impl Service {
    /// A service for `answerer`; its hello announces the answerer's model id
    /// and name and [`PROMPT_VERSION`]. Call within a tokio runtime: its
    /// connections are served there.
    pub fn new(answerer: AnswererHandle) -> Self {
        let hello = Hello::new(
            Role::Answerer,
            answerer.model_id(),
            None,
            PROMPT_VERSION,
            answerer.model_name(),
        );
        Self {
            answerer,
            hello,
            limits: ServiceLimits::default(),
            counters: Arc::default(),
            tasks: Arc::default(),
            runtime: Handle::current(),
        }
    }

    /// Sets the limits, timeouts and token of every later connection.
    pub fn with_limits(mut self, limits: ServiceLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The limits in force.
    pub fn limits(&self) -> &ServiceLimits {
        &self.limits
    }

    /// The hello this service sends.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The answerer behind it.
    pub fn answerer(&self) -> &AnswererHandle {
        &self.answerer
    }

    /// Serves `conn` on a new task.
    pub fn spawn_connection(&self, conn: Connection) {
        let service = self.clone();
        self.track(
            self.runtime
                .spawn(async move { service.serve_connection(conn).await }),
        );
    }

    fn track(&self, task: JoinHandle<()>) {
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Serves an accepted TCP stream on a new task: its TLS handshake
    /// first where `tls` is set (within the handshake limit), then as
    /// [`Self::serve_connection`]. `permit` is held until the connection
    /// ends (the connection cap).
    fn spawn_stream(
        &self,
        stream: tokio::net::TcpStream,
        tls: Option<TlsServer>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let service = self.clone();
        self.track(self.runtime.spawn(async move {
            let _permit = permit;
            let conn = match tls {
                None => Connection::from_tcp(stream),
                Some(tls) => match service.limits.handshake {
                    Some(limit) => tokio::time::timeout(limit, tls.accept(stream))
                        .await
                        .unwrap_or(Err(WireError::TimedOut {
                            waiting: "a TLS handshake",
                            after: limit,
                        })),
                    None => tls.accept(stream).await,
                },
            };
            match conn {
                Ok(conn) => service.serve_connection(conn).await,
                Err(e) => {
                    let c = &service.counters;
                    c.connections.fetch_add(1, Relaxed);
                    c.handshake_failures.fetch_add(1, Relaxed);
                    if matches!(e, WireError::TimedOut { .. }) {
                        c.timeouts.fetch_add(1, Relaxed);
                    }
                    tracing::info!("TLS handshake failed: {e}");
                }
            }
        }));
    }

    /// An in-process connection to this service (the other end is served
    /// on a new task): the same frames and code path as TCP.
    pub fn connect_local(&self) -> Connection {
        let (client, server) = channel_pair();
        self.spawn_connection(server);
        client
    }

    /// Serves one connection to its end: handshake, then each `Questions`
    /// frame answered with `PackedBits` (or an `Error` frame for a bad
    /// request), until `Bye` or the peer leaves.
    pub async fn serve_connection(&self, conn: Connection) {
        let c = &self.counters;
        c.connections.fetch_add(1, Relaxed);
        let limits = &self.limits;
        let mut conn = conn
            .with_max_frame_bytes(limits.max_frame_bytes)
            .with_timeouts(limits.timeouts);
        let peer = conn
            .peer_addr()
            .map_or_else(|| "in-process peer".to_string(), |a| a.to_string());
        let shaking = handshake_as_server(&mut conn, &self.hello, limits.token.as_ref());
        let shaken = match limits.handshake {
            Some(limit) => {
                tokio::time::timeout(limit, shaking)
                    .await
                    .unwrap_or(Err(WireError::TimedOut {
                        waiting: "a handshake",
                        after: limit,
                    }))
            }
            None => shaking.await,
        };
        let asker = match shaken {
            Ok(h) => h,
            Err(e) => {
                tracing::info!("handshake with {peer} failed: {e}");
                c.handshake_failures.fetch_add(1, Relaxed);
                // Refusals the handshake made itself were told to the peer;
                // a peer that is gone hears nothing; the rest hear why.
                match e {
                    WireError::TimedOut { .. } => {
                        c.timeouts.fetch_add(1, Relaxed);
                        let _ = conn.send(&timed_out(&e)).await;
                    }
                    WireError::Handshake(_)
                    | WireError::Unexpected { .. }
                    | WireError::Unauthorized(_)
                    | WireError::Remote { .. }
                    | WireError::Closed
                    | WireError::Io(_)
                    | WireError::Dropped { .. } => {}
                    _ => {
                        let error = Frame::Error {
                            code: ErrorCode::BAD_REQUEST,
                            message: e.to_string(),
                        };
                        let _ = conn.send(&error).await;
                    }
                }
                c.add_wire(conn.stats());
                return;
            }
        };
        tracing::debug!("session with {} ({peer}) open", asker.name);
        let completed = loop {
            match conn.recv().await {
                Ok(Some(Frame::Bye)) => break true,
                Ok(None) => break false,
                Ok(Some(frame)) => {
                    if let Err(e) = self.respond(&mut conn, &frame).await {
                        tracing::info!("session with {peer} ended: {e}");
                        break false;
                    }
                }
                Err(e @ WireError::TimedOut { .. }) => {
                    tracing::info!("session with {peer} ended: {e}");
                    c.timeouts.fetch_add(1, Relaxed);
                    let _ = conn.send(&timed_out(&e)).await;
                    break false;
                }
                Err(e @ (WireError::Oversized { .. } | WireError::PeerSpeaksTls)) => {
                    // The stream cannot be resynchronised: say why, close.
                    tracing::info!("session with {peer} ended: {e}");
                    c.bad_requests.fetch_add(1, Relaxed);
                    let error = Frame::Error {
                        code: ErrorCode::BAD_REQUEST,
                        message: e.to_string(),
                    };
                    let _ = conn.send(&error).await;
                    break false;
                }
                Err(e @ (WireError::Io(_) | WireError::Dropped { .. })) => {
                    tracing::info!("session with {peer} ended: {e}");
                    break false;
                }
                Err(e) => {
                    c.bad_requests.fetch_add(1, Relaxed);
                    let error = Frame::Error {
                        code: ErrorCode::BAD_REQUEST,
                        message: e.to_string(),
                    };
                    if conn.send(&error).await.is_err() {
                        break false;
                    }
                }
            }
        };
        let counter = if completed { &c.completed } else { &c.dropped };
        counter.fetch_add(1, Relaxed);
        c.add_wire(conn.stats());
    }

    /// Answers one frame.
    async fn respond(&self, conn: &mut Connection, frame: &Frame) -> Result<(), WireError> {
        let c = &self.counters;
        let reply = match decode_request(frame) {
            None => {
                c.bad_requests.fetch_add(1, Relaxed);
                Frame::Error {
                    code: ErrorCode::UNEXPECTED_FRAME,
                    message: format!("expected Questions or Bye, got {}", frame.kind()),
                }
            }
            Some(Err(message)) => {
                c.bad_requests.fetch_add(1, Relaxed);
                Frame::Error {
                    code: ErrorCode::BAD_REQUEST,
                    message,
                }
            }
            Some(Ok((_session, first, request))) => match self.check_length(&request).await {
                Err(message) => {
                    c.too_long.fetch_add(1, Relaxed);
                    Frame::Error {
                        code: ErrorCode::TOO_LONG,
                        message,
                    }
                }
                Ok(()) => self.answer(first, request).await,
            },
        };
        conn.send(&reply).await
    }

    /// Refuses a request whose problem, draft and longest question would
    /// not fit the model's prompt (see [`ServiceLimits::max_prompt_tokens`]),
    /// counted with the model's own tokenizer on a blocking thread; text
    /// too long to hold that many tokens is refused uncounted.
    pub(crate) async fn check_length(
        &self,
        request: &tenbits_qa::AnswerRequest,
    ) -> Result<(), String> {
        let budget = self.answerer.prompt_budget();
        let limit = match (self.limits.max_prompt_tokens, budget) {
            (Some(max), Some(b)) => max.min(b.context_tokens.saturating_sub(PROMPT_RESERVE_TOKENS)),
            (Some(max), None) => max,
            (None, Some(b)) => b.context_tokens.saturating_sub(PROMPT_RESERVE_TOKENS),
            (None, None) => return Ok(()),
        };
        let texts: Vec<String> = std::iter::once(request.problem.text.clone())
            .chain((request.sees_answer || request.verdict).then(|| request.current_answer.clone()))
            .chain(request.questions.iter().max_by_key(|q| q.len()).cloned())
            .collect();
        let bytes: usize = texts.iter().map(String::len).sum();
        let too_long = |tokens: String| {
            format!(
                "the problem, draft and longest question take {tokens} tokens; this answerer takes at most {limit} \
                 (shorten the problem, or raise [limits] max_prompt_tokens within the model's context)"
            )
        };
        let Some(budget) = budget.cloned() else {
            // No tokenizer: a byte is at most a token.
            return match bytes > limit {
                true => Err(too_long(format!("up to {bytes}"))),
                false => Ok(()),
            };
        };
        if bytes / budget.max_token_bytes > limit {
            return Err(too_long(format!("more than {limit}")));
        }
        let count = budget.count.clone();
        let tokens = tokio::task::spawn_blocking(move || texts.iter().map(|t| count(t)).sum())
            .await
            .unwrap_or(usize::MAX);
        match tokens > limit {
            true => Err(too_long(tokens.to_string())),
            false => Ok(()),
        }
    }

    /// Answers a request that passed the checks.
    async fn answer(&self, first: u32, request: tenbits_qa::AnswerRequest) -> Frame {
        let c = &self.counters;
        match self.answerer.answer(request).await {
            Ok(answers) => {
                c.requests.fetch_add(1, Relaxed);
                let bits: Vec<bool> = answers.iter().map(|a| a.bit).collect();
                Frame::packed_bits(first, &bits)
            }
            Err(e) => Frame::Error {
                code: ErrorCode::INTERNAL,
                message: e.to_string(),
            },
        }
    }

    /// Counters so far (the answerer's included).
    pub async fn stats(&self) -> ServerStats {
        self.stats_within(None).await
    }

    /// [`Self::stats`], with the answerer's counters left at zero if it does
    /// not answer within `limit` (it answers between batches).
    pub async fn stats_within(&self, limit: Option<Duration>) -> ServerStats {
        let answerer = self.answerer.stats_within(limit).await.unwrap_or_default();
        let c = &self.counters;
        ServerStats {
            connections: c.connections.load(Relaxed),
            handshake_failures: c.handshake_failures.load(Relaxed),
            sessions_completed: c.completed.load(Relaxed),
            sessions_dropped: c.dropped.load(Relaxed),
            requests: c.requests.load(Relaxed),
            bad_requests: c.bad_requests.load(Relaxed),
            too_long: c.too_long.load(Relaxed),
            timeouts: c.timeouts.load(Relaxed),
            refused_busy: c.refused_busy.load(Relaxed),
            accept_errors: c.accept_errors.load(Relaxed),
            wire: *c.wire.lock().unwrap_or_else(|e| e.into_inner()),
            answerer,
        }
    }

    /// Lets the connection tasks finish for up to `grace`, then ends the
    /// rest.
    async fn end_connections(&self, grace: Duration) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        let deadline = tokio::time::Instant::now() + grace;
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                t.abort();
            }
        }
    }
}

/// How long [`ServerHandle::shutdown`] waits for open connections.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(1);

/// A running server: the answerer, and a TCP listener unless in-process.
pub struct ServerHandle {
    service: Service,
    local_addr: Option<SocketAddr>,
    accept: Option<JoinHandle<()>>,
    cluster: Option<std::sync::Arc<crate::cluster::ClusterNode>>,
}

/// How a [`ServerHandle`] accepts TCP connections.
#[derive(Clone)]
pub struct ListenOptions {
    /// Most connections served at once; later ones get a `BUSY` error
    /// frame and are closed.
    pub max_connections: usize,
    /// TLS, or plain TCP.
    pub tls: Option<TlsServer>,
}

impl Default for ListenOptions {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            tls: None,
        }
    }
}

/// First and longest pause after a failed `accept` (out of file
/// descriptors, for one): the loop backs off instead of spinning.
const ACCEPT_BACKOFF: (Duration, Duration) = (Duration::from_millis(10), Duration::from_secs(1));

/// Most connections at once that are being told "busy" (each for at most
/// [`BUSY_REPLY_TIME`]); beyond that, they are closed unanswered.
const BUSY_REPLIES: usize = 64;
const BUSY_REPLY_TIME: Duration = Duration::from_secs(1);

impl ServerHandle {
    /// Starts accepting TCP connections on `listener` for `service`, with
    /// the default [`ListenOptions`].
    pub fn listen(service: Service, listener: Listener) -> Result<Self, AgentError> {
        Self::listen_with(service, listener, ListenOptions::default())
    }

    /// Starts accepting TCP connections on `listener` for `service`.
    pub fn listen_with(
        service: Service,
        listener: Listener,
        options: ListenOptions,
    ) -> Result<Self, AgentError> {
        let local_addr = listener.local_addr()?;
        let s = service.clone();
        let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections.max(1)));
        let busy = Arc::new(tokio::sync::Semaphore::new(BUSY_REPLIES));
        let accept = tokio::spawn(async move {
            let mut backoff = ACCEPT_BACKOFF.0;
            loop {
                let stream = match listener.accept_stream().await {
                    Ok(stream) => {
                        backoff = ACCEPT_BACKOFF.0;
                        stream
                    }
                    Err(e) => {
                        // One line per pause, the pause doubling: a process
                        // out of descriptors neither spins nor floods the log.
                        s.counters.accept_errors.fetch_add(1, Relaxed);
                        tracing::warn!(
                            "accept failed: {e}; retrying in {} ms",
                            backoff.as_millis()
                        );
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(ACCEPT_BACKOFF.1);
                        continue;
                    }
                };
                match slots.clone().try_acquire_owned() {
                    Ok(permit) => s.spawn_stream(stream, options.tls.clone(), permit),
                    Err(_) => {
                        s.counters.refused_busy.fetch_add(1, Relaxed);
                        // Plain TCP peers hear why; TLS ones are just closed
                        // (an answer would need a TLS handshake first).
                        let Ok(permit) = busy.clone().try_acquire_owned() else {
                            continue;
                        };
                        if options.tls.is_some() {
                            continue;
                        }
                        tokio::spawn(async move {
                            let _permit = permit;
                            let Ok(mut conn) = Connection::from_tcp(stream) else {
                                return;
                            };
                            let frame = Frame::Error {
                                code: ErrorCode::BUSY,
                                message: "the answerer is at its connection limit ([limits] max_connections); try again later".into(),
                            };
                            let _ = tokio::time::timeout(BUSY_REPLY_TIME, conn.send(&frame)).await;
                        });
                    }
                }
            }
        });
        Ok(Self {
            service,
            local_addr: Some(local_addr),
            accept: Some(accept),
            cluster: None,
        })
    }

    /// A server without a listener: connect with [`Self::connect_local`].
    pub fn in_process(service: Service) -> Self {
        Self {
            service,
            local_addr: None,
            accept: None,
            cluster: None,
        }
    }

    /// The TCP address it listens on; `None` in-process.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// The service (hello, answerer).
    pub fn service(&self) -> &Service {
        &self.service
    }

    /// A new in-process connection (see [`Service::connect_local`]).
    pub fn connect_local(&self) -> Connection {
        self.service.connect_local()
    }

    /// Where askers reach it: TCP if it listens, else in-process.
    pub fn endpoint(&self) -> Endpoint {
        match self.local_addr {
            Some(addr) => Endpoint::tcp(addr.to_string()),
            None => Endpoint::Local(self.service.clone()),
        }
    }

    /// Counters so far.
    pub async fn stats(&self) -> ServerStats {
        self.service.stats().await
    }

    /// Stops accepting, gives open connections [`SHUTDOWN_GRACE`] to end,
    /// ends the rest and stops the answerer; the final counters.
    pub async fn shutdown(self) -> ServerStats {
        self.shutdown_within(SHUTDOWN_GRACE).await
    }

    /// [`Self::shutdown`] with another grace period.
    ///
    /// Bounded: connections still open after `grace` are ended, and the
    /// answerer's counters are waited for at most `grace` more (a batch in
    /// flight is abandoned, not awaited; its thread ends with the process).
    pub async fn shutdown_within(mut self, grace: Duration) -> ServerStats {
        self.stop_accepting();
        self.service.end_connections(grace).await;
        let stats = self.service.stats_within(Some(grace)).await;
        self.service.answerer.stop();
        stats
    }

    fn stop_accepting(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
        // Leave the cluster first, so its routers move on at once.
        if let Some(node) = self.cluster.take() {
            node.stop();
        }
    }

    /// Serves the answerer to a cluster too, through `node`; shutdown
    /// leaves the cluster first.
    pub fn attach_cluster(&mut self, node: std::sync::Arc<crate::cluster::ClusterNode>) {
        self.cluster = Some(node);
    }

    /// The cluster node serving this answerer, if any.
    pub fn cluster(&self) -> Option<&crate::cluster::ClusterNode> {
        self.cluster.as_deref()
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.stop_accepting();
    }
}

/// Where an asker finds the answerer.
#[derive(Clone)]
pub enum Endpoint {
    /// A TCP address.
    Tcp(TcpEndpoint),
    /// A service in this process (in-process channels).
    Local(Service),
}

/// An answerer over TCP: its address, and how to get in.
#[derive(Clone)]
pub struct TcpEndpoint {
    /// `host:port`.
    pub addr: String,
    /// TLS, or plain TCP.
    pub tls: Option<TlsClient>,
    /// The token the server requires, if any.
    pub token: Option<Token>,
    /// Timeouts of the connection (a server that stops answering).
    pub timeouts: Timeouts,
}

impl Endpoint {
    /// Plain TCP to `addr`, no token, no timeouts.
    pub fn tcp(addr: impl Into<String>) -> Self {
        Endpoint::Tcp(TcpEndpoint {
            addr: addr.into(),
            tls: None,
            token: None,
            timeouts: Timeouts::default(),
        })
    }

    /// Opens a connection (TLS handshaken where set; hellos not yet).
    pub async fn open(&self) -> Result<Connection, AgentError> {
        match self {
            Endpoint::Tcp(t) => {
                let conn = match &t.tls {
                    Some(tls) => tls.connect(t.addr.as_str()).await?,
                    None => tenbits_messaging::connect(t.addr.as_str()).await?,
                };
                Ok(conn.with_timeouts(t.timeouts))
            }
            Endpoint::Local(service) => Ok(service.connect_local()),
        }
    }

    /// The token to present: the TCP endpoint's, or the in-process
    /// service's own.
    pub fn token(&self) -> Option<&Token> {
        match self {
            Endpoint::Tcp(t) => t.token.as_ref(),
            Endpoint::Local(service) => service.limits.token.as_ref(),
        }
    }
}
