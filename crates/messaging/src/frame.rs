//! Frames, their byte layout, the codec, bit packing and the hello check.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Version of the protocol's meaning, carried in [`Hello`]; a peer speaking
/// another version is refused by [`check_hello`].
pub const PROTOCOL_VERSION: u16 = 1;
/// First byte after the length prefix of every frame (`b't'`).
pub const WIRE_MAGIC: u8 = b't';
/// Second byte after the length prefix: the version of the byte encoding.
/// Version 2 dropped the one-question `Question`, `Answer` and `Verdict`
/// frames (nothing sent them) and typed the [`View`] of `Questions`.
pub const WIRE_VERSION: u8 = 2;
/// Bytes of the little-endian `u32` length prefix.
pub const PREFIX_BYTES: usize = 4;
/// Bytes of the magic and wire version that open every frame after its prefix.
pub const HEADER_BYTES: usize = 2;
/// Default limit on a frame's length (the prefix's value: header plus body).
pub const MAX_FRAME_BYTES: usize = 1 << 20;

/// An opaque 16-byte model identity (a fingerprint computed elsewhere).
pub type ModelId = [u8; 16];

/// Which side of a session a peer plays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The small model's side: sends questions, receives bits.
    Asker,
    /// The large model's side: receives questions, sends bits.
    Answerer,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Asker => "asker",
            Role::Answerer => "answerer",
        })
    }
}

/// Numeric code of an [`Frame::Error`]; unknown codes decode fine, so new
/// codes can be added without a version bump.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ErrorCode(pub u16);

impl ErrorCode {
    /// The peers speak different protocol versions.
    pub const VERSION_MISMATCH: Self = Self(1);
    /// A peer runs another model than the other side expects.
    pub const MODEL_MISMATCH: Self = Self(2);
    /// The peers use different prompt versions.
    pub const PROMPT_MISMATCH: Self = Self(3);
    /// Both peers claim the same role.
    pub const ROLE_MISMATCH: Self = Self(4);
    /// A frame arrived that the protocol does not allow at this point.
    pub const UNEXPECTED_FRAME: Self = Self(5);
    /// The request was understood but is invalid.
    pub const BAD_REQUEST: Self = Self(6);
    /// The peer is overloaded; try later.
    pub const BUSY: Self = Self(7);
    /// The peer failed internally.
    pub const INTERNAL: Self = Self(8);
    /// The peer presented no token, or a wrong one.
    pub const UNAUTHORIZED: Self = Self(9);
    /// A problem or question is longer than the answerer's model can take.
    pub const TOO_LONG: Self = Self(10);
    /// The peer took too long to send a frame (or the rest of one).
    pub const TIMED_OUT: Self = Self(11);
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match *self {
            Self::VERSION_MISMATCH => "version mismatch",
            Self::MODEL_MISMATCH => "model mismatch",
            Self::PROMPT_MISMATCH => "prompt mismatch",
            Self::ROLE_MISMATCH => "role mismatch",
            Self::UNEXPECTED_FRAME => "unexpected frame",
            Self::BAD_REQUEST => "bad request",
            Self::BUSY => "busy",
            Self::INTERNAL => "internal error",
            Self::UNAUTHORIZED => "unauthorized",
            Self::TOO_LONG => "too long",
            Self::TIMED_OUT => "timed out",
            _ => "unknown",
        };
        write!(f, "{} ({name})", self.0)
    }
}

/// The kind of problem a [`Frame::Questions`] is about; it picks the
/// answerer's system prompt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TaskKind {
    /// Write a program.
    Code,
    /// Pick one lettered option.
    MultipleChoice,
    /// A number, word or short phrase.
    ShortAnswer,
}

/// What the answerer's model is shown besides the problem and questions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    /// The answerer sees the asker's current answer (then `draft` is set).
    pub sees_answer: bool,
    /// The request is the accept/reject verdict question (which always
    /// shows the current answer).
    pub verdict: bool,
    /// The kind of problem.
    pub task: TaskKind,
}

/// What a peer announces first: who it is, what it runs, what it expects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// [`PROTOCOL_VERSION`] of the sender.
    pub protocol_version: u16,
    /// The sender's role.
    pub role: Role,
    /// The model the sender runs.
    pub model: ModelId,
    /// The model the sender expects the peer to run; `None` accepts any.
    pub expects: Option<ModelId>,
    /// Version of the prompts that turn questions into model input; must match.
    pub prompt_version: u32,
    /// A session or agent name, for logs.
    #[serde(deserialize_with = "safe::string")]
    pub name: String,
}

impl Hello {
    /// A hello at this build's [`PROTOCOL_VERSION`].
    pub fn new(
        role: Role,
        model: ModelId,
        expects: Option<ModelId>,
        prompt_version: u32,
        name: impl Into<String>,
    ) -> Self {
        let name = name.into();
        Self {
            protocol_version: PROTOCOL_VERSION,
            role,
            model,
            expects,
            prompt_version,
            name,
        }
    }
}

/// A shared secret that proves a client may use a server. Its `Debug`
/// and `Display` print `<redacted>`, so a frame in a log never shows it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Token(#[serde(deserialize_with = "safe::string")] String);

impl Token {
    /// Wraps a token's text (surrounding whitespace, such as a token
    /// file's newline, is not part of it).
    pub fn new(text: impl AsRef<str>) -> Self {
        Self(text.as_ref().trim().to_string())
    }

    /// Whether `self` equals `other`, in time that depends only on the
    /// lengths (and so leaks nothing about where they differ).
    pub fn matches(&self, other: &Token) -> bool {
        use subtle::ConstantTimeEq;
        bool::from(self.0.as_bytes().ct_eq(other.0.as_bytes()))
    }

    /// Whether the token is empty (which is never accepted).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// One message. The variant's position is its tag on the wire: append new
/// variants at the end only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Opens a session in both directions; see [`crate::handshake`].
    Hello(Hello),
    /// N questions at once, answered by one [`Frame::PackedBits`] of N bits
    /// in order; question `i` has id `first_question_id + i`.
    Questions {
        /// The asker's session.
        session: u64,
        /// Id of the first question.
        first_question_id: u32,
        /// The problem the questions are about.
        #[serde(deserialize_with = "safe::string")]
        problem: String,
        /// The asker's draft answer, if any.
        #[serde(deserialize_with = "safe::opt_string")]
        draft: Option<String>,
        /// The questions.
        #[serde(deserialize_with = "safe::strings")]
        questions: Vec<String>,
        /// What the answerer is shown and what kind of problem it is.
        view: View,
    },
    /// `count` answer bits packed LSB first (see [`pack_bits`]): the answers
    /// to a [`Frame::Questions`], or arithmetic-coded bits in one-way mode.
    PackedBits {
        /// Id of the question the first bit answers (0 when meaningless).
        first_question_id: u32,
        /// Number of bits; `bits.len() == count.div_ceil(8)`, padding zero.
        count: u32,
        /// The packed bits.
        #[serde(deserialize_with = "safe::bytes", serialize_with = "safe::ser_bytes")]
        bits: Vec<u8>,
    },
    /// A refusal or failure; the sender usually closes afterwards.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// Human-readable detail.
        #[serde(deserialize_with = "safe::string")]
        message: String,
    },
    /// The sender is done; it closes after this.
    Bye,
    /// A client's token, sent before its [`Hello`] to a server that
    /// requires one (see [`crate::handshake_as_client`]).
    Auth {
        /// The shared secret.
        token: Token,
    },
}

/// Names of the variants, indexed by wire tag.
const KINDS: [&str; 6] = ["Hello", "Questions", "PackedBits", "Error", "Bye", "Auth"];

impl Frame {
    /// A [`Frame::PackedBits`] holding `bits`.
    ///
    /// # Panics
    /// If `bits` has more than `u32::MAX` elements.
    pub fn packed_bits(first_question_id: u32, bits: &[bool]) -> Self {
        let count = u32::try_from(bits.len()).expect("at most u32::MAX bits per frame");
        Frame::PackedBits {
            first_question_id,
            count,
            bits: pack_bits(bits),
        }
    }

    /// The bits of a [`Frame::PackedBits`]; `None` for other frames or
    /// inconsistent ones.
    pub fn unpacked_bits(&self) -> Option<Vec<bool>> {
        match self {
            Frame::PackedBits { count, bits, .. } => unpack_bits(bits, *count as usize),
            _ => None,
        }
    }

    /// The variant's name, for messages.
    pub fn kind(&self) -> &'static str {
        KINDS[self.tag()]
    }

    fn tag(&self) -> usize {
        match self {
            Frame::Hello(_) => 0,
            Frame::Questions { .. } => 1,
            Frame::PackedBits { .. } => 2,
            Frame::Error { .. } => 3,
            Frame::Bye => 4,
            Frame::Auth { .. } => 5,
        }
    }

    /// Answer bits this frame conveys: `count` for `PackedBits`, 0
    /// otherwise.
    pub fn payload_bits(&self) -> u64 {
        match self {
            Frame::PackedBits { count, .. } => u64::from(*count),
            _ => 0,
        }
    }

    /// Checks invariants serde cannot: a `PackedBits` holds exactly
    /// `count.div_ceil(8)` bytes and its padding bits are zero.
    pub fn validate(&self) -> Result<(), WireError> {
        if let Frame::PackedBits { count, bits, .. } = self {
            let want = (*count as usize).div_ceil(8);
            if bits.len() != want {
                return Err(WireError::Malformed(format!(
                    "PackedBits of {count} bits carries {} bytes, not {want}",
                    bits.len()
                )));
            }
            let used = count % 8;
            if used != 0 && bits[want - 1] >> used != 0 {
                return Err(WireError::Malformed(
                    "PackedBits padding bits are not zero".into(),
                ));
            }
        }
        Ok(())
    }
}

/// Packs bits into bytes, 8 per byte, least significant bit first; the
/// last byte's unused high bits are zero.
pub fn pack_bits(bits: &[bool]) -> Vec<u8> {
    bits.chunks(8)
        .map(|c| {
            c.iter()
                .enumerate()
                .fold(0u8, |b, (i, &x)| b | (u8::from(x) << i))
        })
        .collect()
}

/// Unpacks the first `count` bits of `bytes` (LSB first); `None` if `bytes`
/// holds fewer than `count` bits.
pub fn unpack_bits(bytes: &[u8], count: usize) -> Option<Vec<bool>> {
    if bytes.len() < count.div_ceil(8) {
        return None;
    }
    Some(
        (0..count)
            .map(|i| bytes[i / 8] >> (i % 8) & 1 == 1)
            .collect(),
    )
}

/// Everything that can go wrong encoding, decoding or moving frames.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The length prefix exceeds the connection's limit (checked before
    /// anything is allocated), or an encoded frame would.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized {
        /// The frame's length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// The buffer ends before the frame its prefix announces.
    #[error("truncated frame: {got} of {needed} bytes present")]
    Truncated {
        /// Bytes the frame needs, prefix included.
        needed: usize,
        /// Bytes present.
        got: usize,
    },
    /// The frame's declared length ends inside its body.
    #[error("{kind} frame body ends early")]
    ShortBody {
        /// The frame's kind.
        kind: &'static str,
    },
    /// The first byte after the prefix is not [`WIRE_MAGIC`].
    #[error(
        "not a tenbits frame: magic byte {found:#04x}, expected {:#04x}",
        WIRE_MAGIC
    )]
    BadMagic {
        /// The byte found.
        found: u8,
    },
    /// The frame's wire version is not [`WIRE_VERSION`].
    #[error(
        "frame has wire version {found}, this build speaks version {}",
        WIRE_VERSION
    )]
    WrongVersion {
        /// The version found.
        found: u8,
    },
    /// The body's tag names no known frame.
    #[error("unknown frame kind (tag byte {tag})")]
    UnknownKind {
        /// The tag byte.
        tag: u8,
    },
    /// Bytes follow the end of the frame's body.
    #[error("{extra} bytes of trailing garbage after the frame")]
    TrailingBytes {
        /// How many.
        extra: usize,
    },
    /// The body does not decode (bad boolean, option tag, UTF-8, ...) or
    /// breaks an invariant.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A frame could not be encoded.
    #[error("cannot encode frame: {0}")]
    Encode(String),
    /// The peer closed the connection inside a frame.
    #[error("connection dropped mid-frame after {got} of {expected} bytes")]
    Dropped {
        /// Bytes of the frame received, prefix included.
        got: usize,
        /// Bytes it needed (4 while the prefix is incomplete).
        expected: usize,
    },
    /// The peer is gone (a send on a closed channel, or a close where a
    /// frame was required).
    #[error("peer closed the connection")]
    Closed,
    /// Socket error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// Nothing (or not the rest of a frame) arrived in time, or a send
    /// could not finish in time.
    #[error("timed out after {} ms waiting for {waiting}", after.as_millis())]
    TimedOut {
        /// What was awaited: "a frame", "the rest of a frame", "a send".
        waiting: &'static str,
        /// The limit that ran out.
        after: std::time::Duration,
    },
    /// The peer's first bytes are a TLS record: it speaks TLS and this end
    /// does not.
    #[error("the peer speaks TLS but this connection is plain TCP; enable TLS on this side (`tls` in the config) or connect to a plain port")]
    PeerSpeaksTls,
    /// The server refused this client's token (or its lack of one).
    #[error("not authorized: {0}")]
    Unauthorized(String),
    /// A TLS handshake failed (wrong certificate, or a peer without TLS).
    #[error("TLS: {0}")]
    Tls(String),
    /// The hellos do not match.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The peer sent a [`Frame::Error`] where another frame was expected.
    #[error("peer reported error {code}: {message}")]
    Remote {
        /// Its code.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// A frame of the wrong kind arrived.
    #[error("expected a {expected} frame, got {got}")]
    Unexpected {
        /// The kind expected.
        expected: &'static str,
        /// The kind received.
        got: &'static str,
    },
}

fn config() -> bincode::config::Configuration {
    bincode::config::standard()
}

/// Encodes `frame` as `[u32 LE length][WIRE_MAGIC][WIRE_VERSION][bincode body]`,
/// where the length counts everything after the prefix. Refuses frames
/// longer than `max_frame_bytes` and frames failing [`Frame::validate`].
pub fn encode_frame(frame: &Frame, max_frame_bytes: usize) -> Result<Vec<u8>, WireError> {
    frame.validate()?;
    let mut out = vec![0, 0, 0, 0, WIRE_MAGIC, WIRE_VERSION];
    bincode::serde::encode_into_std_write(frame, &mut out, config())
        .map_err(|e| WireError::Encode(e.to_string()))?;
    let len = out.len() - PREFIX_BYTES;
    let len32 = u32::try_from(len)
        .ok()
        .filter(|&l| l as usize <= max_frame_bytes);
    let Some(len32) = len32 else {
        return Err(WireError::Oversized {
            len: len as u64,
            max: max_frame_bytes,
        });
    };
    out[..PREFIX_BYTES].copy_from_slice(&len32.to_le_bytes());
    Ok(out)
}

/// Reads a length prefix; `None` if fewer than 4 bytes.
pub(crate) fn read_prefix(bytes: &[u8]) -> Option<usize> {
    let p: [u8; PREFIX_BYTES] = bytes.get(..PREFIX_BYTES)?.try_into().ok()?;
    Some(u32::from_le_bytes(p) as usize)
}

/// Decodes exactly one frame from `bytes` (prefix included), rejecting a
/// length over `max_frame_bytes` before looking further, a short buffer,
/// bytes after the frame, and anything [`decode_payload`] rejects. Never
/// panics.
pub fn decode_frame(bytes: &[u8], max_frame_bytes: usize) -> Result<Frame, WireError> {
    let Some(len) = read_prefix(bytes) else {
        return Err(WireError::Truncated {
            needed: PREFIX_BYTES,
            got: bytes.len(),
        });
    };
    if len > max_frame_bytes {
        return Err(WireError::Oversized {
            len: len as u64,
            max: max_frame_bytes,
        });
    }
    let needed = PREFIX_BYTES + len;
    match bytes.len() {
        got if got < needed => Err(WireError::Truncated { needed, got }),
        got if got > needed => Err(WireError::TrailingBytes {
            extra: got - needed,
        }),
        _ => decode_payload(&bytes[PREFIX_BYTES..]),
    }
}

/// Decodes what follows a length prefix: magic, version, tag, body, with
/// nothing left over.
pub fn decode_payload(payload: &[u8]) -> Result<Frame, WireError> {
    let (magic, version, tag) = match *payload {
        [m, v, t, ..] => (m, v, t),
        _ => {
            return Err(WireError::Truncated {
                needed: PREFIX_BYTES + 3,
                got: PREFIX_BYTES + payload.len(),
            })
        }
    };
    if magic != WIRE_MAGIC {
        return Err(WireError::BadMagic { found: magic });
    }
    if version != WIRE_VERSION {
        return Err(WireError::WrongVersion { found: version });
    }
    // Tags below 251 are one varint byte; anything else is unknown.
    let Some(&kind) = KINDS.get(tag as usize) else {
        return Err(WireError::UnknownKind { tag });
    };
    let body = &payload[HEADER_BYTES..];
    let (frame, used): (Frame, usize) =
        bincode::serde::decode_from_slice(body, config()).map_err(|e| match e {
            bincode::error::DecodeError::UnexpectedEnd { .. } => WireError::ShortBody { kind },
            e => WireError::Malformed(e.to_string()),
        })?;
    if used < body.len() {
        return Err(WireError::TrailingBytes {
            extra: body.len() - used,
        });
    }
    frame.validate()?;
    Ok(frame)
}

/// Why two hellos do not make a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// Protocol versions differ.
    #[error("peer speaks protocol version {theirs}, we speak {ours}")]
    Version {
        /// Ours.
        ours: u16,
        /// The peer's.
        theirs: u16,
    },
    /// Both sides claim one role.
    #[error("both peers are {0}s")]
    SameRole(Role),
    /// One side runs another model than the other expects.
    #[error(
        "{runner} runs model {}, {expecter} expects {}",
        hex(runs),
        hex(expects)
    )]
    Model {
        /// The side whose model is wrong.
        runner: Role,
        /// What it runs.
        runs: ModelId,
        /// The side that expected another.
        expecter: Role,
        /// What it expects.
        expects: ModelId,
    },
    /// Prompt versions differ.
    #[error("asker uses prompt version {asker}, answerer uses {answerer}")]
    Prompt {
        /// The asker's.
        asker: u32,
        /// The answerer's.
        answerer: u32,
    },
}

impl HandshakeError {
    /// The [`ErrorCode`] to tell the peer.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Version { .. } => ErrorCode::VERSION_MISMATCH,
            Self::SameRole(_) => ErrorCode::ROLE_MISMATCH,
            Self::Model { .. } => ErrorCode::MODEL_MISMATCH,
            Self::Prompt { .. } => ErrorCode::PROMPT_MISMATCH,
        }
    }
}

/// Lowercase hex of a model id.
pub fn hex(id: &ModelId) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// Checks a peer's hello against ours: same protocol version, opposite
/// roles, each side's expected model (asker's expectation checked first, so
/// both sides report the same mismatch), same prompt version.
pub fn check_hello(mine: &Hello, theirs: &Hello) -> Result<(), HandshakeError> {
    if mine.protocol_version != theirs.protocol_version {
        return Err(HandshakeError::Version {
            ours: mine.protocol_version,
            theirs: theirs.protocol_version,
        });
    }
    if mine.role == theirs.role {
        return Err(HandshakeError::SameRole(mine.role));
    }
    let (asker, answerer) = if mine.role == Role::Asker {
        (mine, theirs)
    } else {
        (theirs, mine)
    };
    for (expecter, runner) in [(asker, answerer), (answerer, asker)] {
        if let Some(expects) = expecter.expects.filter(|e| *e != runner.model) {
            return Err(HandshakeError::Model {
                runner: runner.role,
                runs: runner.model,
                expecter: expecter.role,
                expects,
            });
        }
    }
    if asker.prompt_version != answerer.prompt_version {
        return Err(HandshakeError::Prompt {
            asker: asker.prompt_version,
            answerer: answerer.prompt_version,
        });
    }
    Ok(())
}

/// Deserializers that borrow strings and bytes from the frame instead of
/// letting bincode allocate a declared length before checking it (a 10-byte
/// frame could otherwise claim an exabyte string).
mod safe {
    use serde::de::{DeserializeSeed, Deserializer, SeqAccess, Visitor};
    use std::fmt;

    struct Str;
    impl Visitor<'_> for Str {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a string")
        }
        fn visit_str<E>(self, v: &str) -> Result<String, E> {
            Ok(v.to_owned())
        }
    }
    impl<'de> DeserializeSeed<'de> for Str {
        type Value = String;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
            d.deserialize_str(Str)
        }
    }

    pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        d.deserialize_str(Str)
    }

    struct OptStr;
    impl<'de> Visitor<'de> for OptStr {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an optional string")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            string(d).map(Some)
        }
    }

    pub fn opt_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(OptStr)
    }

    struct Strs;
    impl<'de> Visitor<'de> for Strs {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a sequence of strings")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut out = Vec::new(); // no capacity from the declared length
            while let Some(s) = seq.next_element_seed(Str)? {
                out.push(s);
            }
            Ok(out)
        }
    }

    pub fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        d.deserialize_seq(Strs)
    }

    struct Bytes;
    impl Visitor<'_> for Bytes {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("bytes")
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
    }

    pub fn bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        d.deserialize_bytes(Bytes)
    }

    #[allow(clippy::ptr_arg)] // serde's serialize_with passes &Vec<u8>
    pub fn ser_bytes<S: serde::Serializer>(b: &Vec<u8>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(b)
    }
}
