use super::*;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

const A: ModelId = [0xaa; 16];
const B: ModelId = [0xbb; 16];
const BLIND: View = View {
    sees_answer: false,
    verdict: false,
    task: TaskKind::ShortAnswer,
};

/// One answer bit (question 3, yes): `[2, 3, 1, 1, 1]` is the tag, the
/// first question id, the count, the byte count and the packed byte.
fn one_bit() -> Frame {
    Frame::packed_bits(3, &[true])
}

/// A small `Questions` frame.
fn one_question(text: &str) -> Frame {
    Frame::Questions {
        session: 1,
        first_question_id: 2,
        problem: text.into(),
        draft: None,
        questions: vec!["ok?".into()],
        view: BLIND,
    }
}

fn every_frame() -> Vec<Frame> {
    vec![
        Frame::Hello(Hello::new(Role::Asker, A, Some(B), 3, "asker-1")),
        Frame::Hello(Hello::new(Role::Answerer, B, None, 3, "")),
        Frame::Questions {
            session: 9,
            first_question_id: 10,
            problem: "2+2".into(),
            draft: Some("4".into()),
            questions: vec!["Is it 4?".into(), String::new(), "Even?".into()],
            view: View {
                sees_answer: true,
                verdict: false,
                task: TaskKind::Code,
            },
        },
        Frame::Questions {
            session: 0,
            first_question_id: 0,
            problem: String::new(),
            draft: None,
            questions: vec![],
            view: BLIND,
        },
        Frame::Questions {
            session: u64::MAX,
            first_question_id: u32::MAX,
            problem: "é?".into(),
            draft: Some("draft".into()),
            questions: vec!["Is the proposed answer correct?".into()],
            view: View {
                sees_answer: false,
                verdict: true,
                task: TaskKind::MultipleChoice,
            },
        },
        Frame::packed_bits(10, &[true, false, true]),
        Frame::packed_bits(0, &[]),
        Frame::packed_bits(0, &[true; 17]),
        Frame::Error {
            code: ErrorCode::BUSY,
            message: "later".into(),
        },
        Frame::Error {
            code: ErrorCode(999),
            message: String::new(),
        },
        Frame::Bye,
        Frame::Auth {
            token: crate::Token::new("a shared secret"),
        },
    ]
}

fn enc(f: &Frame) -> Vec<u8> {
    encode_frame(f, MAX_FRAME_BYTES).unwrap()
}

/// A frame with a valid prefix and header around `body`.
fn raw(body: &[u8]) -> Vec<u8> {
    let mut v = ((body.len() + 2) as u32).to_le_bytes().to_vec();
    v.extend([WIRE_MAGIC, WIRE_VERSION]);
    v.extend(body);
    v
}

#[test]
fn every_frame_round_trips_over_bytes() {
    for f in every_frame() {
        let bytes = enc(&f);
        assert_eq!(bytes[4..6], [WIRE_MAGIC, WIRE_VERSION]);
        assert_eq!(
            u32::from_le_bytes(bytes[..4].try_into().unwrap()) as usize,
            bytes.len() - 4
        );
        assert_eq!(decode_frame(&bytes, MAX_FRAME_BYTES).unwrap(), f);
    }
    assert_eq!(enc(&one_bit()), [7, 0, 0, 0, b't', 2, 2, 3, 1, 1, 1]);
}

#[test]
fn bits_pack_lsb_first() {
    let bits = [
        true, false, false, false, false, false, false, false, false, true,
    ];
    assert_eq!(pack_bits(&bits), [0x01, 0x02]);
    assert_eq!(unpack_bits(&[0x01, 0x02], 10).unwrap(), bits);
    assert_eq!(unpack_bits(&[0xff], 9), None);
    assert_eq!(Frame::packed_bits(0, &bits).unpacked_bits().unwrap(), bits);
    assert_eq!(Frame::Bye.unpacked_bits(), None);
}

fn err(bytes: &[u8]) -> WireError {
    decode_frame(bytes, MAX_FRAME_BYTES).unwrap_err()
}

#[test]
fn rejects_malformed_frames() {
    let good = enc(&one_bit());
    // Oversized: judged from the prefix alone.
    let e = err(&u32::MAX.to_le_bytes());
    assert!(
        matches!(
            e,
            WireError::Oversized {
                len: 0xffff_ffff,
                max: MAX_FRAME_BYTES
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("exceeds the limit"));
    assert!(matches!(
        decode_frame(&good, 4),
        Err(WireError::Oversized { len: 7, max: 4 })
    ));
    // Truncated buffer.
    assert!(matches!(
        err(&good[..2]),
        WireError::Truncated { needed: 4, got: 2 }
    ));
    assert!(matches!(
        err(&good[..7]),
        WireError::Truncated { needed: 11, got: 7 }
    ));
    assert!(matches!(err(&raw(&[])), WireError::Truncated { .. }));
    // Trailing garbage, after the frame or inside its declared length.
    let mut long = good.clone();
    long.push(0);
    assert!(matches!(err(&long), WireError::TrailingBytes { extra: 1 }));
    assert!(matches!(
        err(&raw(&[2, 3, 1, 1, 1, 0, 0])),
        WireError::TrailingBytes { extra: 2 }
    ));
    // Body shorter than its declared content.
    let e = err(&raw(&[2, 3]));
    assert_eq!(e.to_string(), "PackedBits frame body ends early");
    // Magic, version, unknown kind.
    let mut bad = good.clone();
    bad[4] = b'x';
    assert!(matches!(err(&bad), WireError::BadMagic { found: b'x' }));
    bad = good.clone();
    bad[5] = 1;
    let e = err(&bad);
    assert!(matches!(e, WireError::WrongVersion { found: 1 }));
    assert_eq!(
        e.to_string(),
        "frame has wire version 1, this build speaks version 2"
    );
    bad = good.clone();
    bad[6] = 6;
    assert!(matches!(err(&bad), WireError::UnknownKind { tag: 6 }));
    // Invalid bool, option tag, task, UTF-8, role.
    let questions = |view: &[u8]| raw(&[&[1, 0, 0, 0, 0, 0][..], view].concat());
    assert_eq!(
        decode_frame(&questions(&[0, 0, 2]), MAX_FRAME_BYTES).unwrap(),
        Frame::Questions {
            session: 0,
            first_question_id: 0,
            problem: String::new(),
            draft: None,
            questions: vec![],
            view: BLIND,
        }
    );
    assert!(matches!(
        err(&questions(&[2, 0, 2])),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err(&questions(&[0, 0, 3])),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err(&raw(&[1, 0, 0, 0, 7])),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err(&raw(&[3, 1, 1, 0xff])),
        WireError::Malformed(_)
    ));
    assert!(matches!(err(&raw(&[0, 1, 2])), WireError::Malformed(_)));
    // PackedBits: wrong byte count, dirty padding; refused on encode too.
    assert!(matches!(
        err(&raw(&[2, 0, 9, 1, 0xff])),
        WireError::Malformed(_)
    ));
    assert!(matches!(
        err(&raw(&[2, 0, 3, 1, 0xff])),
        WireError::Malformed(_)
    ));
    let dirty = Frame::PackedBits {
        first_question_id: 0,
        count: 3,
        bits: vec![0xff],
    };
    assert!(matches!(
        encode_frame(&dirty, MAX_FRAME_BYTES),
        Err(WireError::Malformed(_))
    ));
}

#[test]
fn huge_declared_lengths_fail_without_allocating() {
    // A Questions whose problem claims u64::MAX bytes; one claiming
    // u64::MAX questions; a PackedBits claiming u64::MAX bytes.
    let max = [253, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    for head in [&[1u8, 0, 0][..], &[1, 0, 0, 0, 0], &[2, 0, 0]] {
        let body: Vec<u8> = head.iter().chain(&max).copied().collect();
        let e = err(&raw(&body));
        assert!(matches!(e, WireError::ShortBody { .. }), "{e}");
    }
}

#[test]
fn oversized_frames_are_not_sent() {
    let f = one_question(&"x".repeat(100));
    assert!(matches!(
        encode_frame(&f, 50),
        Err(WireError::Oversized { max: 50, .. })
    ));
}

#[tokio::test]
async fn every_frame_round_trips_over_channels() {
    let (mut a, mut b) = channel_pair();
    for f in every_frame() {
        a.send(&f).await.unwrap();
        assert_eq!(b.recv().await.unwrap(), Some(f.clone()));
        b.send(&f).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), Some(f));
    }
    drop(a);
    assert_eq!(b.recv().await.unwrap(), None);
    assert!(matches!(b.send(&Frame::Bye).await, Err(WireError::Closed)));
}

async fn tcp_pair() -> (Connection, Connection) {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (client, server) = tokio::join!(connect(addr), listener.accept());
    (client.unwrap(), server.unwrap())
}

#[tokio::test]
async fn every_frame_round_trips_over_tcp() {
    let (mut a, mut b) = tcp_pair().await;
    assert!(a.peer_addr().is_some());
    // Send everything first so frames share reads, then receive.
    for f in every_frame() {
        a.send(&f).await.unwrap();
    }
    for f in every_frame() {
        assert_eq!(b.recv().await.unwrap(), Some(f.clone()));
        b.send(&f).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), Some(f));
    }
    drop(a);
    assert_eq!(b.recv().await.unwrap(), None);
}

/// A listener and a raw client stream that writes `bytes` then closes.
async fn raw_peer(bytes: Vec<u8>, max: usize) -> Connection {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let conn = listener.accept().await.unwrap().with_max_frame_bytes(max);
    raw.write_all(&bytes).await.unwrap();
    drop(raw);
    conn
}

#[tokio::test]
async fn tcp_drops_and_bad_frames_are_errors() {
    let good = enc(&one_question("p"));
    // Dropped inside the body, inside the prefix.
    let mut c = raw_peer(good[..8].to_vec(), MAX_FRAME_BYTES).await;
    let e = c.recv().await.unwrap_err();
    assert!(
        matches!(e, WireError::Dropped { got: 8, expected } if expected == good.len()),
        "{e}"
    );
    let mut c = raw_peer(good[..2].to_vec(), MAX_FRAME_BYTES).await;
    assert!(matches!(
        c.recv().await,
        Err(WireError::Dropped {
            got: 2,
            expected: 4
        })
    ));
    // A bad frame is consumed; the next one still arrives.
    let mut bytes = good.clone();
    bytes[5] = 9;
    bytes.extend(&good);
    let mut c = raw_peer(bytes, MAX_FRAME_BYTES).await;
    assert!(matches!(
        c.recv().await,
        Err(WireError::WrongVersion { found: 9 })
    ));
    assert!(matches!(c.recv().await, Ok(Some(Frame::Questions { .. }))));
    assert!(matches!(c.recv().await, Ok(None)));
    // Oversized by the receiver's own limit.
    let mut c = raw_peer(good.clone(), 8).await;
    assert!(matches!(
        c.recv().await,
        Err(WireError::Oversized { max: 8, .. })
    ));
    let mut c = raw_peer(u32::MAX.to_le_bytes().to_vec(), MAX_FRAME_BYTES).await;
    assert!(matches!(c.recv().await, Err(WireError::Oversized { .. })));
}

/// A fixed exchange; returns the asker's and answerer's stats.
async fn exchange(mut asker: Connection, mut answerer: Connection) -> (WireStats, WireStats) {
    let sent_by_asker = [
        one_question("p"),
        Frame::Questions {
            session: 1,
            first_question_id: 1,
            problem: "p".into(),
            draft: None,
            questions: vec!["a?".into(), "b?".into(), "c?".into()],
            view: BLIND,
        },
        Frame::Bye,
    ];
    let sent_by_answerer = [
        one_bit(),
        Frame::packed_bits(1, &[true, false, true]),
        Frame::packed_bits(4, &[false]),
    ];
    for (q, a) in sent_by_asker.iter().zip(&sent_by_answerer) {
        asker.send(q).await.unwrap();
        assert_eq!(answerer.recv().await.unwrap().as_ref(), Some(q));
        answerer.send(a).await.unwrap();
        assert_eq!(asker.recv().await.unwrap().as_ref(), Some(a));
    }
    let bytes = |fs: &[Frame]| fs.iter().map(|f| enc(f).len() as u64).sum::<u64>();
    let (q, a) = (bytes(&sent_by_asker), bytes(&sent_by_answerer));
    let expect = WireStats {
        frames_sent: 3,
        frames_received: 3,
        bytes_sent: q,
        bytes_received: a,
        payload_bits_sent: 0,
        payload_bits_received: 5,
    };
    assert_eq!(asker.stats(), expect);
    let (tx, rx) = answerer.split();
    assert_eq!(tx.stats(), rx.stats());
    (asker.stats(), tx.stats())
}

#[tokio::test]
async fn accounting_is_exact_and_identical_on_both_transports() {
    let (a, b) = channel_pair();
    let over_channels = exchange(a, b).await;
    let (a, b) = tcp_pair().await;
    let over_tcp = exchange(a, b).await;
    assert_eq!(over_channels, over_tcp);
    let (asker, answerer) = over_tcp;
    assert_eq!(answerer.payload_bits_sent, 5);
    assert_eq!(
        (answerer.bytes_sent, answerer.bytes_received),
        (asker.bytes_received, asker.bytes_sent)
    );
    // 11 + 11 + 11: PackedBits of 1, 3 and 1 bits
    assert_eq!(asker.bytes_received, 33);
}

#[tokio::test]
async fn handshake_checks_versions_and_models() {
    let asker = Hello::new(Role::Asker, A, Some(B), 1, "small");
    let answerer = Hello::new(Role::Answerer, B, None, 1, "large");
    let (mut x, mut y) = channel_pair();
    let (rx, ry) = tokio::join!(handshake(&mut x, &asker), handshake(&mut y, &answerer));
    assert_eq!(
        (rx.unwrap(), ry.unwrap()),
        (answerer.clone(), asker.clone())
    );

    let wrong = Hello {
        model: [0xcc; 16],
        ..answerer.clone()
    };
    let (mut x, mut y) = tcp_pair().await;
    let (rx, ry) = tokio::join!(handshake(&mut x, &asker), handshake(&mut y, &wrong));
    let msg = format!(
        "answerer runs model {}, asker expects {}",
        "cc".repeat(16),
        "bb".repeat(16)
    );
    for r in [rx, ry] {
        let e = r.unwrap_err();
        assert_eq!(e.to_string(), format!("handshake failed: {msg}"));
    }
    // The peer is told too.
    assert!(matches!(
        x.recv().await,
        Ok(Some(Frame::Error {
            code: ErrorCode::MODEL_MISMATCH,
            ..
        }))
    ));

    let old = Hello {
        protocol_version: 0,
        ..answerer.clone()
    };
    assert_eq!(
        check_hello(&asker, &old),
        Err(HandshakeError::Version { ours: 1, theirs: 0 })
    );
    assert_eq!(
        check_hello(&asker, &asker),
        Err(HandshakeError::SameRole(Role::Asker))
    );
    let other_prompt = Hello {
        prompt_version: 2,
        ..answerer.clone()
    };
    let e = check_hello(&other_prompt, &asker).unwrap_err();
    assert_eq!(
        e.to_string(),
        "asker uses prompt version 1, answerer uses 2"
    );

    // A peer that answers with something else, or hangs up.
    let (mut x, mut y) = channel_pair();
    y.send(&Frame::Bye).await.unwrap();
    let e = handshake(&mut x, &asker).await.unwrap_err();
    assert_eq!(e.to_string(), "expected a Hello frame, got Bye");
    drop(y);
    let (mut x, y) = channel_pair();
    drop(y);
    assert!(matches!(
        handshake(&mut x, &asker).await,
        Err(WireError::Closed)
    ));
}

fn arb_string() -> impl Strategy<Value = String> {
    any::<String>().prop_map(|s| s.chars().take(20).collect())
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    let id = any::<[u8; 16]>();
    let role = prop_oneof![Just(Role::Asker), Just(Role::Answerer)];
    let task = prop_oneof![
        Just(TaskKind::Code),
        Just(TaskKind::MultipleChoice),
        Just(TaskKind::ShortAnswer)
    ];
    prop_oneof![
        (
            any::<u16>(),
            role,
            id,
            proptest::option::of(id),
            any::<u32>(),
            arb_string()
        )
            .prop_map(
                |(protocol_version, role, model, expects, prompt_version, name)| {
                    Frame::Hello(Hello {
                        protocol_version,
                        role,
                        model,
                        expects,
                        prompt_version,
                        name,
                    })
                }
            ),
        (
            any::<(u64, u32, bool, bool)>(),
            task,
            arb_string(),
            proptest::option::of(arb_string()),
            proptest::collection::vec(arb_string(), 0..5)
        )
            .prop_map(
                |(
                    (session, first_question_id, sees_answer, verdict),
                    task,
                    problem,
                    draft,
                    questions,
                )| {
                    Frame::Questions {
                        session,
                        first_question_id,
                        problem,
                        draft,
                        questions,
                        view: View {
                            sees_answer,
                            verdict,
                            task,
                        },
                    }
                }
            ),
        (
            any::<u32>(),
            proptest::collection::vec(any::<bool>(), 0..70)
        )
            .prop_map(|(id, bits)| Frame::packed_bits(id, &bits)),
        (any::<u16>(), arb_string()).prop_map(|(c, message)| Frame::Error {
            code: ErrorCode(c),
            message
        }),
        Just(Frame::Bye),
    ]
}

proptest! {
    #[test]
    fn valid_frames_round_trip(f in arb_frame()) {
        let bytes = enc(&f);
        prop_assert_eq!(decode_frame(&bytes, MAX_FRAME_BYTES).unwrap(), f);
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
        let _ = decode_frame(&bytes, MAX_FRAME_BYTES);
        let _ = decode_frame(&raw(&bytes), MAX_FRAME_BYTES);
    }

    #[test]
    fn corrupted_frames_never_panic(f in arb_frame(), at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
        let mut bytes = enc(&f);
        let i = at % bytes.len();
        bytes[i] = byte;
        let _ = decode_frame(&bytes, MAX_FRAME_BYTES);
        // Cut the body and fix the prefix so the decoder sees a short body.
        let body = &bytes[6..bytes.len() - cut % (bytes.len() - 6)];
        let _ = decode_frame(&raw(body), MAX_FRAME_BYTES);
    }
}

// ---- Timeouts, memory, TLS and tokens (issue 12) ----

use crate::{handshake_as_client, handshake_as_server, Timeouts, TlsClient, TlsServer, Token};
use std::time::Duration;

fn short_timeouts() -> Timeouts {
    Timeouts {
        idle: Some(Duration::from_millis(300)),
        frame: Some(Duration::from_millis(200)),
    }
}

#[tokio::test]
async fn a_silent_peer_and_a_stalled_frame_time_out() {
    // Silent: nothing at all.
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = listener
        .accept()
        .await
        .unwrap()
        .with_timeouts(short_timeouts());
    let e = c.recv().await.unwrap_err();
    assert!(
        matches!(
            e,
            WireError::TimedOut {
                waiting: "a frame",
                ..
            }
        ),
        "{e}"
    );

    // Half a frame, then nothing: the frame timeout, not the idle one.
    let good = enc(&one_question("p"));
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = listener.accept().await.unwrap().with_timeouts(Timeouts {
        idle: Some(Duration::from_secs(60)),
        frame: Some(Duration::from_millis(200)),
    });
    raw.write_all(&good[..good.len() / 2]).await.unwrap();
    let started = std::time::Instant::now();
    let e = c.recv().await.unwrap_err();
    assert!(
        matches!(
            e,
            WireError::TimedOut {
                waiting: "the rest of a frame",
                ..
            }
        ),
        "{e}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));

    // A frame that arrives in time still does, byte by byte.
    let mut raw = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut c = listener
        .accept()
        .await
        .unwrap()
        .with_timeouts(short_timeouts());
    let sender = tokio::spawn(async move {
        for b in good {
            raw.write_all(&[b]).await.unwrap();
        }
        raw
    });
    assert!(matches!(c.recv().await, Ok(Some(Frame::Questions { .. }))));
    drop(sender.await.unwrap());
}

#[tokio::test]
async fn channels_time_out_when_idle() {
    let (_a, b) = channel_pair();
    let mut b = b.with_timeouts(short_timeouts());
    assert!(matches!(b.recv().await, Err(WireError::TimedOut { .. })));
}

#[tokio::test]
async fn a_tls_client_on_a_plain_port_is_told_apart() {
    // The first bytes of a TLS 1.2/1.3 ClientHello record.
    let hello = vec![
        0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
    ];
    let mut c = raw_peer(hello, MAX_FRAME_BYTES).await;
    let e = c.recv().await.unwrap_err();
    assert!(matches!(e, WireError::PeerSpeaksTls), "{e}");
    assert!(e.to_string().contains("TLS"));
    // A real frame whose prefix happens to start like a TLS record is not
    // mistaken for one (its fifth byte is the magic).
    let f = one_question(&"x".repeat(0x0316 - 40));
    let bytes = enc(&f);
    let mut c = raw_peer(bytes, MAX_FRAME_BYTES).await;
    let got = c.recv().await;
    assert!(got.is_ok(), "{got:?}");
}

#[test]
fn tokens_never_print() {
    let t = Token::new("sekrit-value\n");
    assert!(!format!("{t:?}").contains("sekrit"));
    assert!(!format!("{t}").contains("sekrit"));
    let f = Frame::Auth { token: t.clone() };
    assert!(!format!("{f:?}").contains("sekrit"));
    assert!(t.matches(&Token::new("sekrit-value")));
    assert!(!t.matches(&Token::new("sekrit-valuf")));
    assert!(!t.matches(&Token::new("sekrit")));
    // And it survives the wire.
    assert_eq!(decode_frame(&enc(&f), MAX_FRAME_BYTES).unwrap(), f);
}

async fn auth_case(
    server_token: Option<&str>,
    client_token: Option<&str>,
) -> (Result<Hello, WireError>, Result<Hello, WireError>) {
    let (mut a, mut b) = channel_pair();
    let asker = Hello::new(Role::Asker, A, None, 3, "asker");
    let answerer = Hello::new(Role::Answerer, B, None, 3, "answerer");
    let (st, ct) = (server_token.map(Token::new), client_token.map(Token::new));
    tokio::join!(
        handshake_as_server(&mut b, &answerer, st.as_ref()),
        handshake_as_client(&mut a, &asker, ct.as_ref()),
    )
}

#[tokio::test]
async fn a_server_with_a_token_accepts_only_that_token() {
    let (server, client) = auth_case(Some("t0k"), Some("t0k")).await;
    assert_eq!(server.unwrap().name, "asker");
    assert_eq!(client.unwrap().name, "answerer");
    for client_token in [None, Some("t0K"), Some("")] {
        let (server, client) = auth_case(Some("t0k"), client_token).await;
        assert!(
            matches!(server, Err(WireError::Unauthorized(_))),
            "{server:?}"
        );
        match client {
            Err(WireError::Remote { code, .. }) => assert_eq!(code, ErrorCode::UNAUTHORIZED),
            other => panic!("{client_token:?}: {other:?}"),
        }
    }
    // No token required: with or without one, the session opens.
    for client_token in [None, Some("anything")] {
        let (server, client) = auth_case(None, client_token).await;
        assert!(server.is_ok() && client.is_ok());
    }
}

fn tls_fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/tls")
        .join(name)
}

fn tls_server(client_ca: bool) -> TlsServer {
    let ca = tls_fixture("ca.pem");
    TlsServer::from_pem_files(
        &tls_fixture("server.pem"),
        &tls_fixture("server.key"),
        client_ca.then_some(ca.as_path()),
    )
    .unwrap()
}

fn tls_client(ca: &str, identity: bool) -> TlsClient {
    let (cert, key) = (tls_fixture("client.pem"), tls_fixture("client.key"));
    TlsClient::from_pem_files(
        &tls_fixture(ca),
        "localhost",
        identity.then_some((cert.as_path(), key.as_path())),
    )
    .unwrap()
}

/// A TLS server answering one connection with the frame it receives.
async fn tls_echo(
    server: TlsServer,
) -> (
    std::net::SocketAddr,
    tokio::task::JoinHandle<Result<(), WireError>>,
) {
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let stream = listener.accept_stream().await?;
        let mut conn = server.accept(stream).await?;
        if let Some(f) = conn.recv().await? {
            conn.send(&f).await?;
        }
        Ok(())
    });
    (addr, task)
}

#[tokio::test]
async fn frames_round_trip_over_tls() {
    let (addr, server) = tls_echo(tls_server(false)).await;
    let mut c = tls_client("ca.pem", false).connect(addr).await.unwrap();
    let f = one_question("over TLS");
    c.send(&f).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Some(f));
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn tls_refuses_strangers_and_plain_peers_with_a_reason() {
    // A server certificate from a CA the client does not trust.
    let (addr, _server) = tls_echo(tls_server(false)).await;
    let e = tls_client("other-ca.pem", false)
        .connect(addr)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");

    // A server that wants client certificates, a client without one.
    let (addr, server) = tls_echo(tls_server(true)).await;
    let outcome = async {
        let mut c = tls_client("ca.pem", false).connect(addr).await?;
        c.send(&Frame::Bye).await?;
        c.recv().await
    }
    .await;
    assert!(outcome.is_err(), "{outcome:?}");
    assert!(server.await.unwrap().is_err());
    // ... and with one.
    let (addr, server) = tls_echo(tls_server(true)).await;
    let mut c = tls_client("ca.pem", true).connect(addr).await.unwrap();
    c.send(&Frame::Bye).await.unwrap();
    assert_eq!(c.recv().await.unwrap(), Some(Frame::Bye));
    server.await.unwrap().unwrap();

    // A TLS client against a plain server.
    let listener = Listener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = tokio::spawn(async move {
        let mut conn = listener.accept().await.unwrap();
        let got = conn.recv().await;
        let _ = conn
            .send(&Frame::Error {
                code: ErrorCode::BAD_REQUEST,
                message: "plain".into(),
            })
            .await;
        got
    });
    let e = tls_client("ca.pem", false).connect(addr).await.unwrap_err();
    assert!(e.to_string().contains("did not speak TLS"), "{e}");
    assert!(matches!(
        plain.await.unwrap(),
        Err(WireError::PeerSpeaksTls)
    ));

    // A plain client against a TLS server.
    let (addr, server) = tls_echo(tls_server(false)).await;
    let mut c = connect(addr).await.unwrap();
    let _ = c.send(&Frame::Bye).await;
    let e = c.recv().await;
    assert!(
        matches!(
            e,
            Err(WireError::PeerSpeaksTls) | Ok(None) | Err(WireError::Io(_))
        ),
        "{e:?}"
    );
    let e = server.await.unwrap().unwrap_err();
    assert!(e.to_string().contains("TLS"), "{e}");
}

/// Writes the frame fuzz target's seed corpus (`fuzz/corpus/frame`):
/// `cargo test -p tenbits-messaging -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/frame");
    std::fs::create_dir_all(&dir).unwrap();
    for (i, f) in every_frame().iter().enumerate() {
        std::fs::write(dir.join(format!("seed-{i:02}-{}", f.kind())), enc(f)).unwrap();
    }
}
