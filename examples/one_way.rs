//! A one-way 10-bit transfer across a socket: the sender holds the large
//! model and a replica of the receiver's small model; it plays the
//! question-asking session itself and sends only the answer bits (range
//! coded under the small model's own predictions). The receiver, with its
//! own copy of the small model, regenerates the same draft and questions,
//! reads the bits, and revises. Both transcripts are checked identical.
//!
//! ```sh
//! python3 scripts/setup.py --model smollm2-135m --model qwen2.5-coder-0.5b
//! cargo run --release --example one_way -- ["problem"]
//! ```

use tenbits_agents::onnx::OnnxChatModel;
use tenbits_messaging::{connect, Frame, Listener};
use tenbits_qa::{ChatModel, Config, Knowledge, Problem, Receiver, Sender, Task};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let text = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "What is 23 + 19?".into());
    let problem = Problem::new(Task::ShortAnswer, text.clone());
    // The sender knows no gold answer: its large model's own solution is
    // what the answers are judged against.
    let mut config = Config {
        questions: 10,
        ..Config::default()
    };
    config.view.knowledge = Knowledge::OwnSolution;
    let rt = tokio::runtime::Runtime::new()?;
    let listener = rt.block_on(Listener::bind("127.0.0.1:0"))?;
    let addr = listener.local_addr()?;

    // The receiver: its own small model, on its own thread, over TCP.
    let receiver_config = config.clone();
    let receiver_problem = problem.clone();
    let handle = rt.handle().clone();
    let receiver = std::thread::spawn(move || -> Result<_, String> {
        let mut asker = OnnxChatModel::load("smollm2-135m", 1).map_err(|e| e.to_string())?;
        let (frame, stats) = handle.block_on(async {
            let mut conn = listener.accept().await.map_err(|e| e.to_string())?;
            let frame = conn.recv().await.map_err(|e| e.to_string())?;
            Ok::<_, String>((frame, conn.stats()))
        })?;
        let Some(Frame::PackedBits { bits, .. }) = frame else {
            return Err(format!("expected bits, got {frame:?}"));
        };
        let answerer_id: [u8; 16] = bits[..16]
            .try_into()
            .map_err(|_| "short frame".to_string())?;
        let payload = &bits[16..];
        let transcript = Receiver::new(&mut asker, receiver_config, answerer_id)
            .receive(&receiver_problem, payload)
            .map_err(|e| e.to_string())?;
        Ok((transcript, stats))
    });

    // The sender: the large model and a replica of the small one.
    let mut replica = OnnxChatModel::load("smollm2-135m", 1)?;
    let mut large = OnnxChatModel::load("qwen2.5-coder-0.5b", 2)?;
    let sent = Sender::new(&mut replica, &mut large, config).send(&problem)?;
    let mut body = large.model_id().to_vec(); // which answerer (a handshake would carry it)
    body.extend_from_slice(&sent.payload);
    let bits_count = (body.len() * 8) as u32;
    rt.block_on(async {
        let mut conn = connect(addr).await?;
        conn.send(&Frame::PackedBits {
            first_question_id: 0,
            count: bits_count,
            bits: body,
        })
        .await?;
        Ok::<_, tenbits_messaging::WireError>(())
    })?;
    let (received, wire) = receiver.join().expect("receiver thread")?;

    println!("problem: {text}\ndraft: {}\n", sent.draft);
    for round in &sent.rounds {
        for (q, a) in round.questions.iter().zip(round.bits()) {
            println!("  {} {q}", if a { "yes" } else { "no " });
        }
        println!("\nrevision: {}", round.revision);
    }
    println!(
        "\n{} answer bits; payload {} bits ({} bytes, ideal {:.1} bits under the asker's predictions); {} bytes on the wire with the answerer id and framing",
        sent.raw_bits,
        sent.payload_bits(),
        sent.payload.len(),
        sent.ideal_bits,
        wire.bytes_received
    );
    assert_eq!(
        received,
        sent.public(),
        "the receiver's transcript differs from the sender's"
    );
    println!("the receiver rebuilt the sender's transcript exactly");
    Ok(())
}
