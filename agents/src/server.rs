//! The answerer's server: connections in, answer requests to the
//! [`AnswererActor`](crate::AnswererActor), bits out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tenbits_messaging::{
    channel_pair, handshake, Connection, ErrorCode, Frame, Hello, Listener, Role, WireError,
    WireStats,
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
    wire: Mutex<WireStats>,
}

impl Counters {
    fn add_wire(&self, s: WireStats) {
        let mut w = self.wire.lock().unwrap_or_else(|e| e.into_inner());
        w.frames_sent += s.frames_sent;
        w.frames_received += s.frames_received;
        w.bytes_sent += s.bytes_sent;
        w.bytes_received += s.bytes_received;
        w.payload_bits_sent += s.payload_bits_sent;
        w.payload_bits_received += s.payload_bits_received;
    }
}

/// Serves connections for one answerer: its hello, the actor, counters.
#[derive(Clone)]
pub struct Service {
    answerer: AnswererHandle,
    hello: Hello,
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
            counters: Arc::default(),
            tasks: Arc::default(),
            runtime: Handle::current(),
        }
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
        let task = self
            .runtime
            .spawn(async move { service.serve_connection(conn).await });
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
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
    pub async fn serve_connection(&self, mut conn: Connection) {
        let c = &self.counters;
        c.connections.fetch_add(1, Relaxed);
        let peer = conn
            .peer_addr()
            .map_or_else(|| "in-process peer".to_string(), |a| a.to_string());
        let asker = match handshake(&mut conn, &self.hello).await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!("handshake with {peer} failed: {e}");
                c.handshake_failures.fetch_add(1, Relaxed);
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
                        tracing::warn!("session with {peer} ended: {e}");
                        break false;
                    }
                }
                Err(
                    e
                    @ (WireError::Oversized { .. } | WireError::Io(_) | WireError::Dropped { .. }),
                ) => {
                    tracing::warn!("session with {peer} ended: {e}");
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
            Some(Ok((_session, first, request))) => match self.answerer.answer(request).await {
                Ok(answers) => {
                    c.requests.fetch_add(1, Relaxed);
                    let bits: Vec<bool> = answers.iter().map(|a| a.bit).collect();
                    Frame::packed_bits(first, &bits)
                }
                Err(e) => Frame::Error {
                    code: ErrorCode::INTERNAL,
                    message: e.to_string(),
                },
            },
        };
        conn.send(&reply).await
    }

    /// Counters so far (the answerer's included).
    pub async fn stats(&self) -> ServerStats {
        let answerer = self.answerer.stats().await.unwrap_or_default();
        let c = &self.counters;
        ServerStats {
            connections: c.connections.load(Relaxed),
            handshake_failures: c.handshake_failures.load(Relaxed),
            sessions_completed: c.completed.load(Relaxed),
            sessions_dropped: c.dropped.load(Relaxed),
            requests: c.requests.load(Relaxed),
            bad_requests: c.bad_requests.load(Relaxed),
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
}

impl ServerHandle {
    /// Starts accepting TCP connections on `listener` for `service`.
    pub fn listen(service: Service, listener: Listener) -> Result<Self, AgentError> {
        let local_addr = listener.local_addr()?;
        let s = service.clone();
        let accept = tokio::spawn(async move {
            loop {
                match listener.accept().await {
                    Ok(conn) => s.spawn_connection(conn),
                    Err(e) => tracing::warn!("accept failed: {e}"),
                }
            }
        });
        Ok(Self {
            service,
            local_addr: Some(local_addr),
            accept: Some(accept),
        })
    }

    /// A server without a listener: connect with [`Self::connect_local`].
    pub fn in_process(service: Service) -> Self {
        Self {
            service,
            local_addr: None,
            accept: None,
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
            Some(addr) => Endpoint::Tcp(addr.to_string()),
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
    pub async fn shutdown_within(mut self, grace: Duration) -> ServerStats {
        self.stop_accepting();
        self.service.end_connections(grace).await;
        let stats = self.service.stats().await;
        self.service.answerer.stop();
        stats
    }

    fn stop_accepting(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
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
    Tcp(String),
    /// A service in this process (in-process channels).
    Local(Service),
}

impl Endpoint {
    /// Opens a connection (not yet handshaken).
    pub async fn open(&self) -> Result<Connection, AgentError> {
        match self {
            Endpoint::Tcp(addr) => Ok(tenbits_messaging::connect(addr.as_str()).await?),
            Endpoint::Local(service) => Ok(service.connect_local()),
        }
    }
}
