//! Connections over in-process channels or TCP, with byte and bit accounting.

use crate::frame::{
    check_hello, decode_frame, encode_frame, read_prefix, ErrorCode, Frame, Hello, Token,
    WireError, MAX_FRAME_BYTES, PREFIX_BYTES, WIRE_MAGIC,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How much of a frame's announced length is allocated before its bytes
/// arrive: a peer that announces 1 MiB and sends nothing costs this much.
const READ_CHUNK: usize = 64 * 1024;

/// How long a connection may wait; `None` waits for ever (the default).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Timeouts {
    /// Longest wait for the first byte of a frame (a silent peer).
    pub idle: Option<Duration>,
    /// Longest time from a frame's first byte to its last (a peer that
    /// sends half a frame and stalls), and longest time one send may take
    /// (a peer that stops reading).
    pub frame: Option<Duration>,
}

/// Frames an in-process channel buffers before `send` waits.
pub const CHANNEL_CAPACITY: usize = 64;

/// A snapshot of one connection's traffic (both halves together).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WireStats {
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames received and decoded.
    pub frames_received: u64,
    /// Bytes sent, length prefixes included.
    pub bytes_sent: u64,
    /// Bytes of every complete frame received (rejected ones too), prefixes
    /// included.
    pub bytes_received: u64,
    /// Answer bits sent ([`Frame::payload_bits`]).
    pub payload_bits_sent: u64,
    /// Answer bits received.
    pub payload_bits_received: u64,
}

impl std::ops::AddAssign for WireStats {
    /// Sums traffic (of several connections, or one session's successive
    /// connections).
    fn add_assign(&mut self, o: WireStats) {
        self.frames_sent += o.frames_sent;
        self.frames_received += o.frames_received;
        self.bytes_sent += o.bytes_sent;
        self.bytes_received += o.bytes_received;
        self.payload_bits_sent += o.payload_bits_sent;
        self.payload_bits_received += o.payload_bits_received;
    }
}

#[derive(Debug, Default)]
struct Counters {
    frames_sent: AtomicU64,
    frames_received: AtomicU64,
    bytes_sent: AtomicU64,
    bytes_received: AtomicU64,
    bits_sent: AtomicU64,
    bits_received: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> WireStats {
        WireStats {
            frames_sent: self.frames_sent.load(Relaxed),
            frames_received: self.frames_received.load(Relaxed),
            bytes_sent: self.bytes_sent.load(Relaxed),
            bytes_received: self.bytes_received.load(Relaxed),
            payload_bits_sent: self.bits_sent.load(Relaxed),
            payload_bits_received: self.bits_received.load(Relaxed),
        }
    }

    /// Accounts one complete received frame's bytes and, if it decoded, the
    /// frame.
    fn received(&self, bytes: usize, frame: &Result<Frame, WireError>) {
        self.bytes_received.fetch_add(bytes as u64, Relaxed);
        if let Ok(f) = frame {
            self.frames_received.fetch_add(1, Relaxed);
            self.bits_received.fetch_add(f.payload_bits(), Relaxed);
        }
    }
}

type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

enum Tx {
    Channel(mpsc::Sender<Vec<u8>>),
    /// TCP, or TLS over TCP.
    Stream(BoxWrite),
}

enum Rx {
    Channel(mpsc::Receiver<Vec<u8>>),
    /// `buf` holds bytes read but not yet returned as frames; `started`
    /// is when its first byte arrived.
    Stream {
        read: BoxRead,
        buf: Vec<u8>,
        started: Option<Instant>,
        first: bool,
    },
}

/// The sending half of a [`Connection`]. Dropping it closes the direction:
/// the peer's `recv` then returns `Ok(None)`.
pub struct FrameSender {
    tx: Tx,
    max: usize,
    timeout: Option<Duration>,
    counters: Arc<Counters>,
}

/// The receiving half of a [`Connection`].
pub struct FrameReceiver {
    rx: Rx,
    max: usize,
    timeouts: Timeouts,
    counters: Arc<Counters>,
}

/// Runs `work` within `limit` (if any), else [`WireError::TimedOut`].
async fn within<T>(
    limit: Option<Duration>,
    deadline: Option<Instant>,
    waiting: &'static str,
    work: impl std::future::Future<Output = Result<T, WireError>>,
) -> Result<T, WireError> {
    match (limit, deadline) {
        (Some(after), Some(at)) => tokio::time::timeout_at(at, work)
            .await
            .map_err(|_| WireError::TimedOut { waiting, after })?,
        _ => work.await,
    }
}

impl FrameSender {
    /// Encodes and sends one frame. Frames over the limit or failing
    /// [`Frame::validate`] are refused and nothing is sent. Not cancel-safe
    /// on TCP (a cancelled send may leave half a frame on the wire).
    pub async fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        let bytes = encode_frame(frame, self.max)?;
        let n = bytes.len() as u64;
        let deadline = self.timeout.map(|t| Instant::now() + t);
        let timeout = self.timeout;
        match &mut self.tx {
            Tx::Channel(tx) => {
                within(timeout, deadline, "a send", async {
                    tx.send(bytes).await.map_err(|_| WireError::Closed)
                })
                .await?
            }
            Tx::Stream(w) => {
                within(timeout, deadline, "a send", async {
                    w.write_all(&bytes).await?;
                    w.flush().await?;
                    Ok(())
                })
                .await?
            }
        }
        let c = &self.counters;
        c.frames_sent.fetch_add(1, Relaxed);
        c.bytes_sent.fetch_add(n, Relaxed);
        c.bits_sent.fetch_add(frame.payload_bits(), Relaxed);
        Ok(())
    }

    /// The whole connection's traffic so far.
    pub fn stats(&self) -> WireStats {
        self.counters.snapshot()
    }
}

impl FrameReceiver {
    /// The next frame; `Ok(None)` when the peer closed cleanly between
    /// frames, [`WireError::Dropped`] when it closed inside one. A rejected
    /// frame (malformed, wrong version, ...) is consumed, so the next call
    /// reads the next frame, except after [`WireError::Oversized`] or an
    /// i/o error, after which the connection should be dropped. Cancel-safe.
    ///
    /// With [`Timeouts`] set, a peer that sends nothing for `idle`, or
    /// takes longer than `frame` from a frame's first byte to its last,
    /// gets [`WireError::TimedOut`]. Memory grows with the bytes that
    /// arrive, not with the length a prefix announces. A first frame that
    /// is a TLS record gets [`WireError::PeerSpeaksTls`].
    pub async fn recv(&mut self) -> Result<Option<Frame>, WireError> {
        let Timeouts { idle, frame } = self.timeouts;
        match &mut self.rx {
            Rx::Channel(rx) => {
                let deadline = idle.map(|t| Instant::now() + t);
                let got = within(idle, deadline, "a frame", async { Ok(rx.recv().await) }).await?;
                let Some(bytes) = got else {
                    return Ok(None);
                };
                let frame = decode_frame(&bytes, self.max);
                self.counters.received(bytes.len(), &frame);
                frame.map(Some)
            }
            Rx::Stream {
                read,
                buf,
                started,
                first,
            } => {
                let idle_deadline = idle.map(|t| Instant::now() + t);
                loop {
                    if *first && buf.len() >= PREFIX_BYTES {
                        // TLS records open with a content type (20..=23) and
                        // major version 3, and their fifth byte is no magic;
                        // only such a start waits for its fifth byte.
                        let tls_like = (20..=23).contains(&buf[0]) && buf[1] == 3;
                        if !tls_like {
                            *first = false;
                        } else if buf.len() > PREFIX_BYTES {
                            if buf[PREFIX_BYTES] != WIRE_MAGIC {
                                return Err(WireError::PeerSpeaksTls);
                            }
                            *first = false;
                        }
                    }
                    let mut want = PREFIX_BYTES;
                    if let Some(len) = read_prefix(buf).filter(|_| !*first) {
                        if len > self.max {
                            return Err(WireError::Oversized {
                                len: len as u64,
                                max: self.max,
                            });
                        }
                        want += len;
                        if buf.len() >= want {
                            let decoded = decode_frame(&buf[..want], self.max);
                            buf.drain(..want);
                            // The next frame's bytes, if any, started now.
                            *started = (!buf.is_empty()).then(Instant::now);
                            self.counters.received(want, &decoded);
                            return decoded.map(Some);
                        }
                    } else if *first && buf.len() >= PREFIX_BYTES {
                        want = PREFIX_BYTES + 1;
                    }
                    buf.reserve((want - buf.len()).clamp(4096, READ_CHUNK));
                    let (limit, deadline, waiting) = match *started {
                        None => (idle, idle_deadline, "a frame"),
                        Some(at) => (frame, frame.map(|t| at + t), "the rest of a frame"),
                    };
                    let n = within(limit, deadline, waiting, async {
                        Ok(read.read_buf(buf).await?)
                    })
                    .await?;
                    if n == 0 {
                        return match buf.len() {
                            0 => Ok(None),
                            got => Err(WireError::Dropped {
                                got,
                                expected: want,
                            }),
                        };
                    }
                    if started.is_none() {
                        *started = Some(Instant::now());
                    }
                }
            }
        }
    }

    /// The whole connection's traffic so far.
    pub fn stats(&self) -> WireStats {
        self.counters.snapshot()
    }
}

/// A two-way frame connection: in-process ([`channel_pair`]) or TCP
/// ([`connect`], [`Listener::accept`]). Both transports encode every frame
/// to the same bytes, so limits and [`WireStats`] are identical.
pub struct Connection {
    tx: FrameSender,
    rx: FrameReceiver,
    peer: Option<SocketAddr>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("peer", &self.peer)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl Connection {
    fn new(tx: Tx, rx: Rx, peer: Option<SocketAddr>) -> Self {
        let counters = Arc::new(Counters::default());
        let max = MAX_FRAME_BYTES;
        Self {
            tx: FrameSender {
                tx,
                max,
                timeout: None,
                counters: counters.clone(),
            },
            rx: FrameReceiver {
                rx,
                max,
                timeouts: Timeouts::default(),
                counters,
            },
            peer,
        }
    }

    /// Wraps a connected TCP stream, setting `TCP_NODELAY`.
    pub fn from_tcp(stream: TcpStream) -> Result<Self, WireError> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        let (read, write) = stream.into_split();
        Ok(Self::from_halves(Box::new(read), Box::new(write), peer))
    }

    /// Wraps any byte stream (TLS over TCP, for one) that `peer` is at.
    pub fn from_stream(
        stream: impl AsyncRead + AsyncWrite + Send + Unpin + 'static,
        peer: Option<SocketAddr>,
    ) -> Self {
        let (read, write) = tokio::io::split(stream);
        Self::from_halves(Box::new(read), Box::new(write), peer)
    }

    fn from_halves(read: BoxRead, write: BoxWrite, peer: Option<SocketAddr>) -> Self {
        Self::new(
            Tx::Stream(write),
            Rx::Stream {
                read,
                buf: Vec::new(),
                started: None,
                first: true,
            },
            peer,
        )
    }

    /// Sets the [`Timeouts`] of both directions (sends take `frame`).
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.rx.timeouts = timeouts;
        self.tx.timeout = timeouts.frame;
        self
    }

    /// Sets the limit on frame length for both directions (default
    /// [`MAX_FRAME_BYTES`]; values above `u32::MAX` act as `u32::MAX`).
    pub fn with_max_frame_bytes(mut self, max: usize) -> Self {
        self.tx.max = max;
        self.rx.max = max;
        self
    }

    /// The current frame length limit.
    pub fn max_frame_bytes(&self) -> usize {
        self.rx.max
    }

    /// See [`FrameSender::send`].
    pub async fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        self.tx.send(frame).await
    }

    /// See [`FrameReceiver::recv`].
    pub async fn recv(&mut self) -> Result<Option<Frame>, WireError> {
        self.rx.recv().await
    }

    /// Traffic so far.
    pub fn stats(&self) -> WireStats {
        self.tx.stats()
    }

    /// The TCP peer's address; `None` for channels.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.peer
    }

    /// Splits into halves that can live in different tasks; both report the
    /// same [`WireStats`].
    pub fn split(self) -> (FrameSender, FrameReceiver) {
        (self.tx, self.rx)
    }
}

/// Two connected in-process connections (each direction a bounded channel
/// of [`CHANNEL_CAPACITY`] encoded frames).
pub fn channel_pair() -> (Connection, Connection) {
    let (a_tx, b_rx) = mpsc::channel(CHANNEL_CAPACITY);
    let (b_tx, a_rx) = mpsc::channel(CHANNEL_CAPACITY);
    (
        Connection::new(Tx::Channel(a_tx), Rx::Channel(a_rx), None),
        Connection::new(Tx::Channel(b_tx), Rx::Channel(b_rx), None),
    )
}

/// Connects over TCP.
pub async fn connect(addr: impl ToSocketAddrs) -> Result<Connection, WireError> {
    Connection::from_tcp(TcpStream::connect(addr).await?)
}

/// A TCP listener that yields [`Connection`]s.
pub struct Listener(TcpListener);

impl Listener {
    /// Binds, e.g. to `"127.0.0.1:0"` for an ephemeral port.
    pub async fn bind(addr: impl ToSocketAddrs) -> Result<Self, WireError> {
        Ok(Self(TcpListener::bind(addr).await?))
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, WireError> {
        Ok(self.0.local_addr()?)
    }

    /// Waits for the next peer.
    pub async fn accept(&self) -> Result<Connection, WireError> {
        Connection::from_tcp(self.accept_stream().await?)
    }

    /// Waits for the next peer, before any handshake (TLS, for one).
    pub async fn accept_stream(&self) -> Result<TcpStream, WireError> {
        Ok(self.0.accept().await?.0)
    }
}

/// The client's side of a handshake with a server that may require a
/// token: sends [`Frame::Auth`] first when `token` is given, then runs
/// [`handshake`]. A server that refuses the token answers with an
/// [`ErrorCode::UNAUTHORIZED`] error, returned as [`WireError::Remote`].
pub async fn handshake_as_client(
    conn: &mut Connection,
    mine: &Hello,
    token: Option<&Token>,
) -> Result<Hello, WireError> {
    if let Some(token) = token {
        conn.send(&Frame::Auth {
            token: token.clone(),
        })
        .await?;
    }
    handshake(conn, mine).await
}

/// The server's side of a handshake: reads the client's first frame, and
/// where `required` is set accepts only a [`Frame::Auth`] whose token
/// matches (compared in constant time); a client without it, or with
/// another, gets an [`ErrorCode::UNAUTHORIZED`] error and
/// [`WireError::Unauthorized`]. Nothing about the server (not even its
/// hello) is sent before the token checks. Then as [`handshake`].
pub async fn handshake_as_server(
    conn: &mut Connection,
    mine: &Hello,
    required: Option<&Token>,
) -> Result<Hello, WireError> {
    let first = conn.recv().await?;
    let refuse = |why: &str| {
        (
            Frame::Error {
                code: ErrorCode::UNAUTHORIZED,
                message: why.to_string(),
            },
            WireError::Unauthorized(why.to_string()),
        )
    };
    let early = match (first, required) {
        (None, _) => return Err(WireError::Closed),
        (Some(Frame::Auth { token }), Some(want)) => {
            if want.is_empty() || !want.matches(&token) {
                let (frame, err) = refuse("wrong token");
                let _ = conn.send(&frame).await;
                return Err(err);
            }
            None
        }
        // A token nobody asked for is harmless.
        (Some(Frame::Auth { .. }), None) => None,
        (Some(_), Some(_)) => {
            let (frame, err) = refuse(
                "this answerer requires a token; give the client one (token_file or token_env in [security])",
            );
            let _ = conn.send(&frame).await;
            return Err(err);
        }
        (Some(frame), None) => Some(frame),
    };
    exchange_hellos(conn, mine, early).await
}

/// Exchanges hellos: sends `mine`, reads the peer's, checks them with
/// [`check_hello`] and returns the peer's. On a mismatch it tells the peer
/// with a [`Frame::Error`] and returns [`WireError::Handshake`]; a peer's
/// `Error` becomes [`WireError::Remote`], a close [`WireError::Closed`].
pub async fn handshake(conn: &mut Connection, mine: &Hello) -> Result<Hello, WireError> {
    exchange_hellos(conn, mine, None).await
}

/// [`handshake`], where the peer's first frame may have been read already.
async fn exchange_hellos(
    conn: &mut Connection,
    mine: &Hello,
    first: Option<Frame>,
) -> Result<Hello, WireError> {
    conn.send(&Frame::Hello(mine.clone())).await?;
    let first = match first {
        Some(frame) => Some(frame),
        None => conn.recv().await?,
    };
    let theirs = match first {
        Some(Frame::Hello(h)) => h,
        Some(Frame::Error { code, message }) => return Err(WireError::Remote { code, message }),
        Some(other) => {
            let err = WireError::Unexpected {
                expected: "Hello",
                got: other.kind(),
            };
            let message = err.to_string();
            let _ = conn
                .send(&Frame::Error {
                    code: ErrorCode::UNEXPECTED_FRAME,
                    message,
                })
                .await;
            return Err(err);
        }
        None => return Err(WireError::Closed),
    };
    if let Err(e) = check_hello(mine, &theirs) {
        let _ = conn
            .send(&Frame::Error {
                code: e.code(),
                message: e.to_string(),
            })
            .await;
        return Err(e.into());
    }
    Ok(theirs)
}
