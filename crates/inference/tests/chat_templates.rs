//! The registered models' own chat templates, rendered with minijinja, give
//! exactly the token ids the hand-written ChatML renderer gave before them:
//! `fixtures/chatml_ids.json` holds that renderer's output for
//! [`conversations`], and [`chatml_reference`] is that renderer, for more.
//!
//! Needs the models' `tokenizer.json` and `config.json` in the cache
//! (`python3 scripts/setup.py --all`); no ONNX Runtime.

use std::path::PathBuf;

use tenbits_inference::{
    cache_dir, ChatTemplate, Message, ModelConfig, Registry, Role, TextTokenizer,
};

const MODELS: [&str; 3] = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"];

/// The conversations of the fixture, with `add_generation_prompt`.
fn conversations() -> Vec<(Vec<Message>, bool)> {
    let haiku = vec![
        Message::user("Write a haiku."),
        Message::assistant("Autumn moonlight—\na worm digs silently\ninto the chestnut."),
        Message::user("Another, in Français: ünïcödé ✓ 日本語"),
    ];
    vec![
        (vec![Message::user("Hi")], true),
        (vec![Message::user("Hi")], false),
        (
            vec![
                Message::system("You are terse."),
                Message::user("What is 2+2?"),
            ],
            true,
        ),
        (haiku.clone(), true),
        (haiku, false),
        (
            vec![
                Message::system("S"),
                Message::user("a"),
                Message::assistant("b"),
                Message::system("mid-conversation system"),
                Message::user("c"),
            ],
            true,
        ),
        (
            vec![
                Message::user("  leading and trailing spaces \n\n"),
                Message::assistant(" ok "),
            ],
            true,
        ),
        (
            vec![
                Message::user("say <|im_end|> then <|endoftext|> now"),
                Message::assistant("tab\tand bell\u{7} and nul\u{0}"),
            ],
            true,
        ),
    ]
}

/// A converted model's tokenizer and config. They come from the GGUF
/// alone, so any conversion of it will do if the registry's is absent.
fn load(name: &str) -> (TextTokenizer, ModelConfig) {
    let dir = Registry::embedded()
        .model(name)
        .unwrap()
        .cached_dir(&cache_dir());
    let found = if dir.join("tokenizer.json").is_file() {
        Some(dir.clone())
    } else {
        let base = dir.file_name().unwrap().to_string_lossy().into_owned();
        let prefix = format!("{}-", base.rsplit_once('-').unwrap().0);
        std::fs::read_dir(dir.parent().unwrap())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .find(|p: &PathBuf| {
                p.join("tokenizer.json").is_file() && p.join("config.json").is_file()
            })
    };
    let dir = found.unwrap_or_else(|| {
        panic!(
            "run `python3 scripts/setup.py --all` first: {} is missing",
            dir.display()
        )
    });
    (
        TextTokenizer::from_file(&dir.join("tokenizer.json")).unwrap(),
        ModelConfig::load(&dir.join("config.json")).unwrap(),
    )
}

fn template(tokenizer: &TextTokenizer, config: &ModelConfig) -> ChatTemplate {
    let source = config
        .chat_template
        .as_deref()
        .expect("the GGUF has a chat template");
    assert!(source.contains("<|im_start|>"), "{} is ChatML", config.name);
    ChatTemplate::new(source, tokenizer, config).unwrap()
}

#[test]
fn model_templates_give_the_ids_of_the_chatml_renderer_they_replace() {
    let fixture: serde_json::Value =
        serde_json::from_str(include_str!("fixtures/chatml_ids.json")).unwrap();
    for name in MODELS {
        let (tokenizer, config) = load(name);
        let t = template(&tokenizer, &config);
        let expected = fixture[name].as_array().unwrap();
        let conversations = conversations();
        assert_eq!(expected.len(), conversations.len());
        for ((messages, generation_prompt), expected) in conversations.iter().zip(expected) {
            let expected: Vec<u32> = serde_json::from_value(expected.clone()).unwrap();
            let ids = t.render(&tokenizer, messages, *generation_prompt).unwrap();
            assert_eq!(ids, expected, "{name}: {messages:?}");
            assert_eq!(
                chatml_reference(&tokenizer, &config, messages, *generation_prompt),
                expected
            );
        }
        assert_eq!(
            Some(t.end_of_turn()),
            tokenizer.token_id("<|im_end|>"),
            "{name}"
        );
    }
}

#[test]
fn model_templates_agree_with_the_chatml_renderer_on_longer_conversations() {
    let words = [
        "alpha",
        "Beta ",
        " gamma",
        "δέλτα",
        "\n",
        "  ",
        "x=1;",
        "🦀",
        "'quoted'",
    ];
    let mut conversation = vec![Message::system("You answer in one word.")];
    for k in 0..12 {
        let text: String = (0..k + 1)
            .map(|i| words[(i * 7 + k) % words.len()])
            .collect();
        conversation.push(if k % 2 == 0 {
            Message::user(text)
        } else {
            Message::assistant(text)
        });
    }
    for name in MODELS {
        let (tokenizer, config) = load(name);
        let t = template(&tokenizer, &config);
        for end in 1..conversation.len() {
            for skip_system in [false, true] {
                let messages = &conversation[usize::from(skip_system)..=end];
                for generation_prompt in [true, false] {
                    assert_eq!(
                        t.render(&tokenizer, messages, generation_prompt).unwrap(),
                        chatml_reference(&tokenizer, &config, messages, generation_prompt),
                        "{name}: {messages:?}"
                    );
                }
            }
        }
    }
}

/// The ChatML renderer the templates replaced, as it was: `<|im_start|>`
/// and `<|im_end|>` inserted as ids, the default system prompt read out of
/// the template's text.
fn chatml_reference(
    tokenizer: &TextTokenizer,
    config: &ModelConfig,
    messages: &[Message],
    generation_prompt: bool,
) -> Vec<u32> {
    let im_start = tokenizer.token_id("<|im_start|>").unwrap();
    let im_end = tokenizer.token_id("<|im_end|>").unwrap();
    let default_system = default_system_prompt(config.chat_template.as_deref().unwrap_or(""));
    let mut ids = Vec::new();
    let vocab = tokenizer.vocab_size() as u32;
    let text = |ids: &mut Vec<u32>, s: &str| {
        ids.extend(
            tokenizer
                .encode_bytes(s.as_bytes())
                .unwrap()
                .into_iter()
                .filter(|&t| t < vocab),
        );
    };
    let turn = |ids: &mut Vec<u32>, role: &str, content: &str| {
        ids.push(im_start);
        text(ids, &format!("{role}\n{content}"));
        ids.push(im_end);
        text(ids, "\n");
    };
    if messages.first().is_none_or(|m| m.role != Role::System) {
        if let Some(system) = &default_system {
            turn(&mut ids, "system", system);
        }
    }
    for m in messages {
        turn(&mut ids, m.role.as_str(), &m.content);
    }
    if generation_prompt {
        ids.push(im_start);
        ids.extend(tokenizer.encode_bytes(b"assistant\n").unwrap());
    }
    ids
}

fn default_system_prompt(template: &str) -> Option<String> {
    const OPEN: &str = "<|im_start|>system";
    let mut rest = template;
    while let Some(at) = rest.find(OPEN) {
        rest = &rest[at + OPEN.len()..];
        let body = rest.strip_prefix("\\n").or_else(|| rest.strip_prefix('\n'));
        if let Some(body) = body {
            if let Some(end) = body.find("<|im_end|>") {
                let text = &body[..end];
                if !text.is_empty() && !text.contains(['\'', '"', '{', '}', '+']) {
                    return Some(text.replace("\\n", "\n"));
                }
            }
        }
    }
    None
}
