//! Connections over in-process channels or TCP, with byte and bit accounting.

use crate::frame::{
    check_hello, decode_frame, encode_frame, read_prefix, ErrorCode, Frame, Hello, WireError,
    MAX_FRAME_BYTES, PREFIX_BYTES,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, ToSocketAddrs};
use tokio::sync::mpsc;

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

enum Tx {
    Channel(mpsc::Sender<Vec<u8>>),
    Tcp(OwnedWriteHalf),
}

enum Rx {
    Channel(mpsc::Receiver<Vec<u8>>),
    /// `buf` holds bytes read but not yet returned as frames.
    Tcp {
        read: OwnedReadHalf,
        buf: Vec<u8>,
    },
}

/// The sending half of a [`Connection`]. Dropping it closes the direction:
/// the peer's `recv` then returns `Ok(None)`.
pub struct FrameSender {
    tx: Tx,
    max: usize,
    counters: Arc<Counters>,
}

/// The receiving half of a [`Connection`].
pub struct FrameReceiver {
    rx: Rx,
    max: usize,
    counters: Arc<Counters>,
}

impl FrameSender {
    /// Encodes and sends one frame. Frames over the limit or failing
    /// [`Frame::validate`] are refused and nothing is sent. Not cancel-safe
    /// on TCP (a cancelled send may leave half a frame on the wire).
    pub async fn send(&mut self, frame: &Frame) -> Result<(), WireError> {
        let bytes = encode_frame(frame, self.max)?;
        let n = bytes.len() as u64;
        match &mut self.tx {
            Tx::Channel(tx) => tx.send(bytes).await.map_err(|_| WireError::Closed)?,
            Tx::Tcp(w) => w.write_all(&bytes).await?,
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
    pub async fn recv(&mut self) -> Result<Option<Frame>, WireError> {
        match &mut self.rx {
            Rx::Channel(rx) => {
                let Some(bytes) = rx.recv().await else {
                    return Ok(None);
                };
                let frame = decode_frame(&bytes, self.max);
                self.counters.received(bytes.len(), &frame);
                frame.map(Some)
            }
            Rx::Tcp { read, buf } => loop {
                let mut want = PREFIX_BYTES;
                if let Some(len) = read_prefix(buf) {
                    if len > self.max {
                        return Err(WireError::Oversized {
                            len: len as u64,
                            max: self.max,
                        });
                    }
                    want += len;
                    if buf.len() >= want {
                        let frame = decode_frame(&buf[..want], self.max);
                        buf.drain(..want);
                        self.counters.received(want, &frame);
                        return frame.map(Some);
                    }
                }
                buf.reserve((want - buf.len()).max(4096));
                if read.read_buf(buf).await? == 0 {
                    return match buf.len() {
                        0 => Ok(None),
                        got => Err(WireError::Dropped {
                            got,
                            expected: want,
                        }),
                    };
                }
            },
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

impl Connection {
    fn new(tx: Tx, rx: Rx, peer: Option<SocketAddr>) -> Self {
        let counters = Arc::new(Counters::default());
        let max = MAX_FRAME_BYTES;
        Self {
            tx: FrameSender {
                tx,
                max,
                counters: counters.clone(),
            },
            rx: FrameReceiver { rx, max, counters },
            peer,
        }
    }

    /// Wraps a connected TCP stream, setting `TCP_NODELAY`.
    pub fn from_tcp(stream: TcpStream) -> Result<Self, WireError> {
        stream.set_nodelay(true)?;
        let peer = stream.peer_addr().ok();
        let (read, write) = stream.into_split();
        Ok(Self::new(
            Tx::Tcp(write),
            Rx::Tcp {
                read,
                buf: Vec::new(),
            },
            peer,
        ))
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
        Connection::from_tcp(self.0.accept().await?.0)
    }
}

/// Exchanges hellos: sends `mine`, reads the peer's, checks them with
/// [`check_hello`] and returns the peer's. On a mismatch it tells the peer
/// with a [`Frame::Error`] and returns [`WireError::Handshake`]; a peer's
/// `Error` becomes [`WireError::Remote`], a close [`WireError::Closed`].
pub async fn handshake(conn: &mut Connection, mine: &Hello) -> Result<Hello, WireError> {
    conn.send(&Frame::Hello(mine.clone())).await?;
    let theirs = match conn.recv().await? {
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
