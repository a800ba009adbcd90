//! Does a request's greedy output depend on the batch it runs in? Twelve
//! chat requests (six short, six of 100–620 tokens), each generated alone,
//! then in batches of several make-ups; prints, per request and batch,
//! whether its tokens are the ones it got alone and where they first part.
//! Before the static cache kept each stream's slots its own, a short
//! request beside the long ones parted at its 16th token (Qwen2.5-Coder-0.5B).
//!
//! `cargo run --release -p tenbits-inference --example batch_invariance [model]`
//! (about 4 minutes on two cores; the model must be set up).
use tenbits_inference::{
    cache_dir, Generator, Message, OnnxModel, Registry, Request, Sampling, SessionSettings,
};

const SYSTEM: &str = "You are a careful assistant. Solve the problem step by step, checking each intermediate result, and finish with a line of the form Answer: followed by the final answer only. Do not use LaTeX.";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let name = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "qwen2.5-coder-0.5b".into());
    let dir = Registry::embedded().model(&name)?.cached_dir(&cache_dir());
    let mut g = Generator::new(OnnxModel::load_for_rows(
        &dir,
        SessionSettings { threads: 2 },
    )?)?;
    let qs = [
        "What is 78 times 67?",
        "What is 41 times 16? Show your work.",
        "Compute 93 * 58, step by step, and end with a line 'Answer: N'.",
        "Today is 3/5/1999. What was the date 10 days ago in MM/DD/YYYY? Options: (A) 02/23/1999 (B) 02/24/1999",
        "What is 12 times 34?",
        "Please multiply 27 by 81 and explain each step carefully so that a child could follow it.",
    ];
    let long: Vec<String> = (1..=6)
        .map(|k| {
            format!(
                "{} Given all that, what is {k}7 times 3{k}?",
                "Here is some context about the problem, which is long on purpose. ".repeat(k * 8)
            )
        })
        .collect();
    let qs: Vec<&str> = qs
        .iter()
        .copied()
        .chain(long.iter().map(|s| s.as_str()))
        .collect();
    let reqs: Vec<Request> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            Ok(Request {
                prompt: g.prompt(&[Message::system(SYSTEM), Message::user(*q)])?,
                sampling: Sampling::greedy(if i == 5 { 160 } else { 120 }),
            })
        })
        .collect::<Result<_, tenbits_inference::InferenceError>>()?;
    let alone: Vec<Vec<u32>> = reqs
        .iter()
        .map(|r| {
            Ok(g.generate(std::slice::from_ref(r), |_, _| {})?
                .remove(0)
                .tokens)
        })
        .collect::<Result<_, tenbits_inference::InferenceError>>()?;
    for (label, subset) in [
        ("all twelve", (0..12).collect::<Vec<usize>>()),
        ("0 with the long ones", vec![0, 6, 7, 8, 9, 10, 11]),
        ("all six", vec![0, 1, 2, 3, 4, 5]),
        ("0,4 (same length)", vec![0, 4]),
        ("0,1", vec![0, 1]),
        ("0,3", vec![0, 3]),
        ("0,5", vec![0, 5]),
        ("2,0,0", vec![2, 0, 0]),
    ] {
        let batch: Vec<Request> = subset.iter().map(|&i| reqs[i].clone()).collect();
        let out = g.generate(&batch, |_, _| {})?;
        for (&i, c) in subset.iter().zip(&out) {
            let same = c.tokens == alone[i];
            let at = c.tokens.iter().zip(&alone[i]).position(|(a, b)| a != b);
            println!(
                "{label}: request {i} (prompt {}) same as alone: {same} {at:?}",
                reqs[i].prompt.len()
            );
        }
    }
    Ok(())
}
