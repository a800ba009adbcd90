//! The generation API on the tiny fixture model (every path) and on the real
//! default model (determinism and batching).

use std::path::Path;

use tenbits_inference::{
    FinishReason, Generator, LanguageModel, Message, OnnxModel, Registry, Request, Sampling,
    SessionSettings,
};

fn tiny() -> Generator {
    let model = OnnxModel::load(
        Path::new("tests/fixtures/tiny"),
        SessionSettings { threads: 1 },
    )
    .unwrap();
    Generator::new(model).unwrap()
}

fn smollm2() -> Generator {
    let model = Registry::embedded().load("smollm2-135m", SessionSettings { threads: 2 });
    Generator::new(model.unwrap_or_else(|e| panic!("{e}"))).unwrap()
}

/// A system turn long enough (over one 32-token block) to be shared.
const SYSTEM: &str = "You are a careful assistant. Answer the question briefly and exactly, \
    in one sentence, without repeating the question, and say so when you do not know.";

fn requests(g: &Generator, questions: &[&str], sampling: &Sampling) -> Vec<Request> {
    questions
        .iter()
        .enumerate()
        .map(|(i, q)| Request {
            prompt: g
                .prompt(&[Message::system(SYSTEM), Message::user(*q)])
                .unwrap(),
            sampling: Sampling {
                seed: i as u64,
                ..sampling.clone()
            },
        })
        .collect()
}

const QUESTIONS: [&str; 3] = [
    "the quick brown fox",
    "jumps over the lazy dog, then",
    "hello",
];

#[test]
fn greedy_generation_is_identical_across_runs_and_instances() {
    let mut a = tiny();
    let reqs = requests(&a, &QUESTIONS[..1], &Sampling::greedy(24));
    let first = a.generate(&reqs, |_, _| {}).unwrap();
    let again = a.generate(&reqs, |_, _| {}).unwrap();
    let other = tiny().generate(&reqs, |_, _| {}).unwrap();
    assert_eq!(first, again);
    assert_eq!(first, other);
    assert!(!first[0].tokens.is_empty());
}

#[test]
fn batched_requests_give_the_tokens_they_give_alone() {
    for sampling in [
        Sampling::greedy(20),
        Sampling {
            temperature: 0.8,
            top_p: 0.9,
            ..Sampling::greedy(20)
        },
    ] {
        let mut g = tiny();
        let reqs = requests(&g, &QUESTIONS, &sampling);
        // The system turn is a shared prefix, so the batch forks it.
        let batched = g.generate(&reqs, |_, _| {}).unwrap();
        let stats = g.take_stats();
        assert!(
            stats.reused_tokens > 0,
            "the shared prompt prefix was not reused"
        );
        for (i, req) in reqs.iter().enumerate() {
            let alone = g.generate(std::slice::from_ref(req), |_, _| {}).unwrap();
            assert_eq!(
                batched[i].tokens, alone[0].tokens,
                "request {i} with {sampling:?}"
            );
            assert_eq!(batched[i].text, alone[0].text);
        }
    }
}

#[test]
fn streamed_pieces_add_up_to_the_completion() {
    let mut g = tiny();
    let reqs = requests(&g, &QUESTIONS, &Sampling::greedy(16));
    let mut streamed = vec![String::new(); reqs.len()];
    let done = g
        .generate(&reqs, |i, piece| streamed[i].push_str(piece))
        .unwrap();
    for (s, c) in streamed.iter().zip(&done) {
        assert_eq!(s, &c.text);
    }
}

#[test]
fn max_tokens_and_stop_strings_end_generation() {
    let mut g = tiny();
    let reqs = requests(&g, &QUESTIONS[..1], &Sampling::greedy(12));
    let free = g.generate(&reqs, |_, _| {}).unwrap().remove(0);
    assert!(free.tokens.len() <= 12);
    if free.finish == FinishReason::Length {
        assert_eq!(free.tokens.len(), 12);
    }
    // Stop on a piece of what the model says anyway: the text is cut before it.
    let text = free.text.clone();
    let chars: Vec<char> = text.chars().collect();
    let at = (1..chars.len().saturating_sub(1))
        .find(|&i| {
            chars[i..i + 2]
                .iter()
                .all(|&c| c != char::REPLACEMENT_CHARACTER)
        })
        .unwrap_or_else(|| panic!("the tiny model said too little to test stop strings: {text:?}"));
    let stop: String = chars[at..at + 2].iter().collect();
    let cut = &text[..text.find(&stop).unwrap()];
    let reqs = requests(
        &g,
        &QUESTIONS[..1],
        &Sampling {
            stop: vec![stop.clone()],
            ..Sampling::greedy(12)
        },
    );
    let stopped = g.generate(&reqs, |_, _| {}).unwrap().remove(0);
    assert_eq!(stopped.finish, FinishReason::StopString);
    assert_eq!(stopped.text, cut);
}

#[test]
fn p_yes_compares_the_yes_and_no_logits_of_one_pass() {
    let mut g = tiny();
    let conversations: Vec<Vec<Message>> = ["is it red?", "is the sky blue?", "is it"]
        .iter()
        .map(|q| vec![Message::system("Answer Yes or No."), Message::user(*q)])
        .collect();
    let together = g.p_yes(&conversations).unwrap();
    assert_eq!(together.len(), 3);
    let tokenizer = g.model().tokenizer();
    let (yes, no) = g.yes_no_tokens().unwrap();
    assert_eq!(
        tokenizer.token_bytes(yes),
        b"Y",
        "the tiny vocabulary spells Yes with several tokens"
    );
    assert_eq!(tokenizer.token_bytes(no), b"N");
    for (c, &p) in conversations.iter().zip(&together) {
        assert!(p > 0.0 && p < 1.0);
        // The same probability from a plain forward pass over the prompt.
        let prompt = g.prompt(c).unwrap();
        let mut model = OnnxModel::load(
            Path::new("tests/fixtures/tiny"),
            SessionSettings { threads: 1 },
        )
        .unwrap();
        let mut cache = model.new_cache(1, prompt.len());
        let mut logits = Vec::new();
        model.forward(&mut cache, &prompt, &mut logits).unwrap();
        let last = &logits[logits.len() - model.vocab_size()..];
        let expected =
            1.0 / (1.0 + (f64::from(last[no as usize]) - f64::from(last[yes as usize])).exp());
        assert!((p - expected).abs() < 1e-3, "{p} vs {expected}");
    }
}

#[test]
fn candidate_scores_are_log_probabilities_that_rank_consistently() {
    let mut g = tiny();
    let messages = [Message::user("pick one")];
    let candidates: Vec<String> = ["a", "the", "fox"].iter().map(|s| s.to_string()).collect();
    let scores = g.score_candidates(&messages, &candidates).unwrap();
    assert_eq!(scores.len(), 3);
    assert!(scores.iter().all(|&s| s < 0.0 && s.is_finite()));
    // Scoring one candidate alone gives the same number.
    let alone = g.score_candidates(&messages, &candidates[1..2]).unwrap();
    assert!((alone[0] - scores[1]).abs() < 1e-9);
}

#[test]
fn chat_template_renders_chatml_with_the_default_system_prompt() {
    let g = smollm2();
    let ids = g.prompt(&[Message::user("Hi")]).unwrap();
    let text = String::from_utf8(g.model().tokenizer().decode_bytes(&ids)).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    let im_start = g.model().tokenizer().token_id("<|im_start|>").unwrap();
    assert_eq!(
        ids[0], im_start,
        "special tokens are single ids, not spelled out"
    );
}

#[test]
fn real_model_greedy_is_reproducible_and_batching_does_not_change_it() {
    let mut g = smollm2();
    let questions = [
        "What is the capital of France?",
        "Name a prime number larger than 10.",
        "What colour is grass?",
    ];
    let reqs = requests(&g, &questions, &Sampling::greedy(24));
    let batched = g.generate(&reqs, |_, _| {}).unwrap();
    let again = g.generate(&reqs, |_, _| {}).unwrap();
    assert_eq!(batched, again);
    assert!(batched[0].text.contains("Paris"), "{:?}", batched[0].text);
    assert!(g.take_stats().reused_tokens > 0);
    for (i, req) in reqs.iter().enumerate() {
        let alone = g.generate(std::slice::from_ref(req), |_, _| {}).unwrap();
        assert_eq!(batched[i].text, alone[0].text, "request {i}");
    }
    // Yes/no scoring: the same probabilities in a batch and alone.
    let questions: Vec<Vec<Message>> = [
        "Is Paris the capital of France?",
        "Is 7 an even number?",
        "Is water wet?",
    ]
    .iter()
    .map(|q| vec![Message::system(SYSTEM), Message::user(*q)])
    .collect();
    let together = g.p_yes(&questions).unwrap();
    for (q, p) in questions.iter().zip(&together) {
        assert_eq!(g.p_yes(std::slice::from_ref(q)).unwrap()[0], *p);
    }
}

#[test]
fn the_large_model_says_yes_to_true_and_no_to_false_statements() {
    let model = Registry::embedded().load("qwen2.5-coder-1.5b", SessionSettings { threads: 2 });
    let mut g = Generator::new(model.unwrap_or_else(|e| panic!("{e}"))).unwrap();
    let ask = |q: &str| {
        vec![
            Message::system("You answer questions truthfully, with a single word: Yes or No."),
            Message::user(format!("{q} Answer Yes or No.")),
        ]
    };
    let p = g
        .p_yes(&[
            ask("Is Paris the capital of France?"),
            ask("Is Berlin the capital of France?"),
            ask("Is Python a programming language?"),
            ask("Is HTML a database?"),
        ])
        .unwrap();
    assert!(
        p[0] > 0.5 && p[1] < 0.5 && p[2] > 0.5 && p[3] < 0.5,
        "P(yes) {p:?}"
    );
}
