//! Twenty questions between two real models: the large model thinks of a
//! secret (it is given one), the small model asks yes/no questions and the
//! large one answers each with one bit; then the small model guesses, by
//! scoring the candidates given the questions and answers.
//!
//! ```sh
//! python3 scripts/setup.py --all
//! cargo run --release --example twenty_questions -- [SECRET] [QUESTIONS]
//! ASKER=smollm2-135m ANSWERER=qwen2.5-coder-0.5b cargo run --release --example twenty_questions
//! ```

use tenbits_agents::onnx::OnnxChatModel;
use tenbits_qa::{ChatModel, Message, Sampling};

const CANDIDATES: [&str; 16] = [
    "cat", "dog", "elephant", "eagle", "shark", "frog", "horse", "spider", "penguin", "snake",
    "whale", "bee", "owl", "tiger", "turtle", "rabbit",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let secret = std::env::args().nth(1).unwrap_or_else(|| "penguin".into());
    let rounds: usize = std::env::args()
        .nth(2)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20);
    // The 0.5B asks better questions than SmolLM2-135M, and the 1.5B is the
    // only model of the ladder whose yes/no answers track the facts.
    let asker_name = std::env::var("ASKER").unwrap_or_else(|_| "qwen2.5-coder-0.5b".into());
    let answerer_name = std::env::var("ANSWERER").unwrap_or_else(|_| "qwen2.5-coder-1.5b".into());
    let (asker_name, answerer_name) = (asker_name.as_str(), answerer_name.as_str());
    let mut asker = OnnxChatModel::load(asker_name, 2)?;
    let mut answerer = OnnxChatModel::load(answerer_name, 2)?;
    let list = CANDIDATES.join(", ");
    println!(
        "{answerer_name} thinks of \"{secret}\"; {asker_name} asks {rounds} yes/no questions.\n"
    );

    let mut transcript: Vec<(String, bool)> = Vec::new();
    for round in 1..=rounds {
        // The asker writes the next question from what it knows so far.
        let so_far: String = transcript
            .iter()
            .map(|(q, a)| format!("Q: {q}\nA: {}\n", if *a { "yes" } else { "no" }))
            .collect();
        let ask = format!(
            "We play twenty questions. The secret is one of these animals: {list}.\n{so_far}\
             Ask one new yes/no question about the secret animal, such as \"Does it live in water?\" or \
             \"Is it a mammal?\". Do not repeat a question. Reply with the question only."
        );
        // Greedy first; a repeated question is drawn again, sampled (seeded).
        let mut question = String::new();
        for attempt in 0..4u64 {
            let temperature = if attempt == 0 { 0.0 } else { 0.8 };
            let sampling = Sampling {
                max_tokens: 32,
                temperature,
                seed: round as u64 * 10 + attempt,
                stop: vec!["\n".into()],
                ..Sampling::default()
            };
            question = asker
                .generate(&[(vec![Message::user(ask.clone())], sampling)])?
                .remove(0);
            if !transcript
                .iter()
                .any(|(q, _)| q.trim_end_matches('?') == question.trim_end_matches('?'))
            {
                break;
            }
        }
        let question = if question.ends_with('?') {
            question
        } else {
            format!("{question}?")
        };
        // The answerer replies with one bit from one forward pass.
        let judge = format!(
            "The secret animal is: {secret}.\nAnswer the question about the secret animal with Yes or No.\nQuestion: {question}"
        );
        let p = answerer.p_yes(&[vec![Message::user(judge)]])?[0];
        let bit = p >= 0.5;
        println!(
            "{round:>2}. {question:<70} {} (P(yes) = {p:.2})",
            if bit { "yes" } else { "no " }
        );
        transcript.push((question, bit));
    }

    // The guess: the asker's most likely candidate given the transcript.
    let so_far: String = transcript
        .iter()
        .map(|(q, a)| format!("Q: {q}\nA: {}\n", if *a { "yes" } else { "no" }))
        .collect();
    let guess_prompt = vec![Message::user(format!(
        "We played twenty questions about one of these animals: {list}.\n{so_far}Which animal is it? Answer with one word."
    ))];
    let candidates: Vec<String> = CANDIDATES.iter().map(|c| c.to_string()).collect();
    let before = asker.score_candidates(
        &[Message::user(format!(
            "Which of these animals is it: {list}? Answer with one word."
        ))],
        &candidates,
    )?;
    let after = asker.score_candidates(&guess_prompt, &candidates)?;
    let best = |scores: &[f64]| {
        (0..scores.len())
            .max_by(|&a, &b| scores[a].total_cmp(&scores[b]))
            .unwrap_or(0)
    };
    let rank = |scores: &[f64]| {
        let s = scores[CANDIDATES.iter().position(|c| *c == secret).unwrap_or(0)];
        1 + scores.iter().filter(|&&x| x > s).count()
    };
    println!(
        "\n{} bits sent. Guess: {} ({}); the secret ranked {} of {} among the asker's candidates before the questions, {} after.",
        transcript.len(),
        candidates[best(&after)],
        if candidates[best(&after)] == secret { "right" } else { "wrong" },
        rank(&before),
        CANDIDATES.len(),
        rank(&after)
    );
    Ok(())
}
