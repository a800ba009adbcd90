//! Wire protocol and transports for question-asking sessions.
//!
//! This crate moves frames and bits between an asker (a small model's side)
//! and an answerer (a large model's side); it knows nothing of models.
//!
//! - [`Frame`]: every message: [`Hello`], a batch of `Questions` (with the
//!   answerer's [`View`]) answered by `PackedBits` (see [`pack_bits`]),
//!   `Error` (with an [`ErrorCode`]) and `Bye`.
//! - [`encode_frame`] / [`decode_frame`]: the byte layout below. Decoding
//!   never panics and rejects every malformed input with a [`WireError`].
//! - [`Connection`]: `send(&Frame)` and `recv() -> Option<Frame>` over
//!   in-process channels ([`channel_pair`]) or TCP ([`connect`],
//!   [`Listener`]); [`Connection::split`] gives a [`FrameSender`] and a
//!   [`FrameReceiver`] for separate tasks. Every connection keeps
//!   [`WireStats`]: answer bits conveyed, apart from bytes on the wire.
//! - [`handshake`]: exchanges [`Hello`]s and checks them ([`check_hello`]):
//!   protocol version, roles, model ids, prompt version;
//!   [`handshake_as_server`] / [`handshake_as_client`] add the shared
//!   [`Token`] (`Auth` frame first, compared in constant time, never
//!   printed).
//! - [`Timeouts`] bound every wait of a connection (idle, per frame, per
//!   send); [`TlsServer`] and [`TlsClient`] put connections on TLS.
//!
//! # Frame layout
//!
//! ```text
//! [len: u32 LE][WIRE_MAGIC = b't'][WIRE_VERSION = 2][body: bincode 2]
//! ```
//!
//! `len` counts the magic, version and body (not itself) and is at most the
//! connection's limit ([`MAX_FRAME_BYTES`], 1 MiB, by default). The body is
//! the [`Frame`] under `bincode::config::standard()` (little-endian
//! varints), so its first byte is the variant's tag. The `PackedBits` of
//! one answer takes 11 bytes on the wire.
//!
//! # Example
//!
//! ```
//! use tenbits_messaging::{channel_pair, Frame, TaskKind, View, WireStats};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Builder::new_current_thread().build()?;
//! rt.block_on(async {
//!     let (mut asker, mut answerer) = channel_pair();
//!     let questions = Frame::Questions {
//!         session: 7,
//!         first_question_id: 0,
//!         problem: "What is 6 * 7?".into(),
//!         draft: None,
//!         questions: vec!["Is the answer even?".into()],
//!         view: View { sees_answer: false, verdict: false, task: TaskKind::ShortAnswer },
//!     };
//!     asker.send(&questions).await?;
//!
//!     let Some(Frame::Questions { first_question_id, questions, .. }) = answerer.recv().await? else {
//!         panic!("expected questions");
//!     };
//!     let bits = vec![true; questions.len()];
//!     answerer.send(&Frame::packed_bits(first_question_id, &bits)).await?;
//!     let reply = asker.recv().await?.expect("a reply");
//!     assert_eq!(reply.unpacked_bits(), Some(vec![true]));
//!
//!     let stats = asker.stats();
//!     assert_eq!(stats.payload_bits_received, 1);
//!     assert_eq!(stats.bytes_received, 11);
//!     assert_eq!(stats, WireStats {
//!         frames_sent: 1,
//!         frames_received: 1,
//!         bytes_sent: stats.bytes_sent,
//!         bytes_received: 11,
//!         payload_bits_sent: 0,
//!         payload_bits_received: 1,
//!     });
//!     Ok::<_, tenbits_messaging::WireError>(())
//! })?;
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

mod frame;
mod tls;
mod transport;

pub use frame::{
    check_hello, decode_frame, decode_payload, encode_frame, hex, pack_bits, unpack_bits,
    ErrorCode, Frame, HandshakeError, Hello, ModelId, Role, TaskKind, Token, View, WireError,
    HEADER_BYTES, MAX_FRAME_BYTES, PREFIX_BYTES, PROTOCOL_VERSION, WIRE_MAGIC, WIRE_VERSION,
};
pub use transport::{
    channel_pair, connect, handshake, handshake_as_client, handshake_as_server, Connection,
    FrameReceiver, FrameSender, Listener, Timeouts, WireStats, CHANNEL_CAPACITY,
};

pub use tls::{TlsClient, TlsServer};

#[cfg(test)]
mod tests;
