//! [`ChatTemplate`]: a model's own Jinja chat template, rendered the way
//! Hugging Face `transformers` renders it, then tokenized.
//!
//! The template is the `tokenizer.chat_template` the model's GGUF carried
//! (kept in `config.json`). It is rendered with `minijinja` configured as
//! `transformers` configures Jinja2 (`trim_blocks`, `lstrip_blocks`, loop
//! controls, `raise_exception`, Python string methods), with `messages`,
//! `add_generation_prompt`, `bos_token` and `eos_token` in the context. The
//! text is then split on the tokenizer's special tokens, each becoming its
//! single id, and the pieces between them are tokenized byte-exactly; so a
//! ChatML conversation gives the same ids as inserting `<|im_start|>` and
//! `<|im_end|>` by hand.

use minijinja::value::Value;
use minijinja::{AutoEscape, Environment, Error, ErrorKind};

use crate::{InferenceError, LanguageModel, Message, ModelConfig, TextTokenizer};

/// The name the template is kept under in its environment.
const NAME: &str = "chat_template";

/// The template used for a model whose GGUF carries none but whose
/// vocabulary has the ChatML tokens: plain ChatML, no default system prompt.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

/// How a model formats conversations: its Jinja chat template, with the
/// special tokens it is tokenized around and the token that ends a turn.
///
/// ```
/// use std::path::Path;
/// use tenbits_inference::{ChatTemplate, Message, ModelConfig, TextTokenizer};
///
/// # fn main() -> Result<(), tenbits_inference::InferenceError> {
/// let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny");
/// let tokenizer = TextTokenizer::from_file(&dir.join("tokenizer.json"))?;
/// let config = ModelConfig::load(&dir.join("config.json"))?;
/// let template = ChatTemplate::new(
///     "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}\
///      {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
///     &tokenizer,
///     &config,
/// )?;
/// let conversation = [Message::user("Hi")];
/// let text = template.render_text(&conversation, true)?;
/// assert_eq!(text, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
/// // Special tokens are single ids; the rest is the text, byte for byte.
/// let ids = template.render(&tokenizer, &conversation, true)?;
/// assert_eq!(Some(ids[0]), tokenizer.token_id("<|im_start|>"));
/// assert_eq!(tokenizer.decode_bytes(&ids), text.as_bytes());
/// assert_eq!(Some(template.end_of_turn()), tokenizer.token_id("<|im_end|>"));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    env: Environment<'static>,
    model: String,
    bos_token: String,
    eos_token: String,
    /// The tokenizer's special tokens, longest first.
    special_tokens: Vec<(String, u32)>,
    end_of_turn: u32,
}

impl ChatTemplate {
    /// The template of `model`: the `tokenizer.chat_template` its GGUF
    /// carried (kept in `config.json`), else plain ChatML
    /// ([`CHATML_TEMPLATE`]) where the vocabulary has `<|im_start|>` and
    /// `<|im_end|>`.
    pub fn for_model<M: LanguageModel>(model: &M) -> Result<ChatTemplate, InferenceError> {
        let (config, tokenizer) = (model.config(), model.tokenizer());
        let source = match config.chat_template.as_deref() {
            Some(source) if !source.trim().is_empty() => source,
            _ if tokenizer.token_id("<|im_start|>").is_some()
                && tokenizer.token_id("<|im_end|>").is_some() =>
            {
                CHATML_TEMPLATE
            }
            _ => {
                return Err(InferenceError::NoChatTemplate {
                    model: config.name.clone(),
                })
            }
        };
        ChatTemplate::new(source, tokenizer, config)
    }

    /// Compiles a template `source` for a model with this tokenizer and
    /// config (whose `bos_token_id` and `eos_token_id` give `bos_token` and
    /// `eos_token`). Fails if the template does not parse, or if no token
    /// can be found to end a turn.
    pub fn new(
        source: &str,
        tokenizer: &TextTokenizer,
        config: &ModelConfig,
    ) -> Result<ChatTemplate, InferenceError> {
        let model = config.name.clone();
        let template_err = |source: Error| InferenceError::Template {
            model: model.clone(),
            source,
        };
        let mut env = Environment::new();
        // As transformers' ImmutableSandboxedEnvironment(trim_blocks=True,
        // lstrip_blocks=True, extensions=[loopcontrols]).
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()
                .map_err(template_err)?,
        );
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<Value, Error> {
                Err(Error::new(ErrorKind::InvalidOperation, message))
            },
        );
        env.add_template_owned(NAME, source.to_string())
            .map_err(template_err)?;
        let token_text = |id: Option<u32>| {
            id.map(|id| String::from_utf8_lossy(tokenizer.token_bytes(id)).into_owned())
                .unwrap_or_default()
        };
        let mut template = ChatTemplate {
            env,
            model: config.name.clone(),
            bos_token: token_text(config.bos_token_id),
            eos_token: token_text(config.eos_token_id),
            special_tokens: tokenizer.special_tokens().to_vec(),
            end_of_turn: 0,
        };
        template.end_of_turn = template
            .find_end_of_turn()
            .or(config.eos_token_id)
            .ok_or_else(|| InferenceError::NoEndOfTurn {
                model: config.name.clone(),
            })?;
        Ok(template)
    }

    /// The token that ends a turn; generation stops on it. It is the first
    /// special token the template puts after an assistant's reply
    /// (`<|im_end|>` in ChatML, `</s>` in Llama 2's, `<end_of_turn>` in
    /// Gemma's), else the model's end-of-text token.
    pub fn end_of_turn(&self) -> u32 {
        self.end_of_turn
    }

    /// The text of `messages`, followed by the opening of an assistant turn
    /// when `generation_prompt` is set, as the template renders it.
    pub fn render_text(
        &self,
        messages: &[Message],
        generation_prompt: bool,
    ) -> Result<String, InferenceError> {
        let messages: Vec<Value> = messages
            .iter()
            .map(|m| {
                Value::from_pairs([
                    ("role", Value::from(m.role.as_str())),
                    ("content", Value::from(m.content.as_str())),
                ])
            })
            .collect();
        let context = Value::from_pairs([
            ("messages", Value::from(messages)),
            ("add_generation_prompt", Value::from(generation_prompt)),
            ("bos_token", Value::from(self.bos_token.as_str())),
            ("eos_token", Value::from(self.eos_token.as_str())),
        ]);
        self.env
            .get_template(NAME)
            .and_then(|t| t.render(context))
            .map_err(|source| InferenceError::Template {
                model: self.model.clone(),
                source,
            })
    }

    /// Token ids of `messages`, followed by the opening of an assistant turn
    /// when `generation_prompt` is set: the rendered text split on the
    /// special tokens (each its one id), the rest tokenized byte-exactly.
    /// Control bytes the vocabulary cannot spell are dropped (the model
    /// cannot read them).
    pub fn render(
        &self,
        tokenizer: &TextTokenizer,
        messages: &[Message],
        generation_prompt: bool,
    ) -> Result<Vec<u32>, InferenceError> {
        let text = self.render_text(messages, generation_prompt)?;
        let vocab = tokenizer.vocab_size() as u32;
        let mut ids = Vec::new();
        for piece in self.split_special(&text) {
            match piece {
                Piece::Special(id) => ids.push(id),
                Piece::Text(text) => ids.extend(
                    tokenizer
                        .encode_bytes(text.as_bytes())?
                        .into_iter()
                        .filter(|&t| t < vocab),
                ),
            }
        }
        Ok(ids)
    }

    /// `text` cut into special tokens and the text between them.
    fn split_special<'t>(&self, mut text: &'t str) -> Vec<Piece<'t>> {
        let mut pieces = Vec::new();
        while !text.is_empty() {
            // The earliest special token; the longest of those starting there.
            let next = self
                .special_tokens
                .iter()
                .filter_map(|(s, id)| text.find(s.as_str()).map(|at| (at, s.len(), *id)))
                .min_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            let Some((at, len, id)) = next else {
                pieces.push(Piece::Text(text));
                break;
            };
            if at > 0 {
                pieces.push(Piece::Text(&text[..at]));
            }
            pieces.push(Piece::Special(id));
            text = &text[at + len..];
        }
        pieces
    }

    /// The first special token after an assistant's reply in a rendered
    /// exchange, if the template renders one.
    fn find_end_of_turn(&self) -> Option<u32> {
        const REPLY: &str = "tenbits-probe-reply";
        let exchange = [
            Message::user("tenbits-probe-question"),
            Message::assistant(REPLY),
        ];
        let text = self.render_text(&exchange, false).ok()?;
        let after = &text[text.find(REPLY)? + REPLY.len()..];
        self.split_special(after).into_iter().find_map(|p| match p {
            Piece::Special(id) => Some(id),
            Piece::Text(_) => None,
        })
    }
}

/// A piece of rendered text.
enum Piece<'t> {
    /// A special token, by id.
    Special(u32),
    /// Text to tokenize.
    Text(&'t str),
}

#[cfg(test)]
mod tests {
    //! The expected texts here are what Jinja2 3.1.6 renders, configured as
    //! `transformers` configures it.

    use super::*;
    use crate::fake;

    /// Llama 2's chat template, as its `tokenizer_config.json` has it.
    const LLAMA2: &str = "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}";

    /// Gemma's chat template.
    const GEMMA: &str = "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}";

    fn ids(text: &str) -> Vec<u32> {
        fake::tokenizer().encode_bytes(text.as_bytes()).unwrap()
    }

    fn special(s: &str) -> u32 {
        fake::SPECIALS.iter().position(|&t| t == s).unwrap() as u32
    }

    /// A fake config with `<s>`/`</s>` as its begin and end tokens.
    fn llama_config() -> ModelConfig {
        ModelConfig {
            bos_token_id: Some(special("<s>")),
            eos_token_id: Some(special("</s>")),
            ..fake::config(None)
        }
    }

    #[test]
    fn a_llama_2_template_renders_with_its_own_special_tokens() {
        let tokenizer = fake::tokenizer();
        let t = ChatTemplate::new(LLAMA2, &tokenizer, &llama_config()).unwrap();
        let conversation = [
            Message::system("Be brief."),
            Message::user("  Hi!  "),
            Message::assistant("Hello."),
            Message::user("Bye"),
        ];
        let text = t.render_text(&conversation, true).unwrap();
        assert_eq!(
            text,
            "<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n  Hi! [/INST] Hello. </s><s>[INST] Bye [/INST]"
        );
        let (s, end) = (special("<s>"), special("</s>"));
        let mut expected = vec![s];
        expected.extend(ids(
            "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\n  Hi! [/INST] Hello. ",
        ));
        expected.extend([end, s]);
        expected.extend(ids("[INST] Bye [/INST]"));
        assert_eq!(t.render(&tokenizer, &conversation, true).unwrap(), expected);
        assert_eq!(t.end_of_turn(), end);
        // The template's own checks come back as typed errors.
        let err = t
            .render(&tokenizer, &[Message::user("a"), Message::user("b")], true)
            .unwrap_err();
        let InferenceError::Template { source, .. } = &err else {
            panic!("{err:?}")
        };
        assert_eq!(source.kind(), ErrorKind::InvalidOperation);
        assert!(
            err.to_string()
                .contains("Conversation roles must alternate"),
            "{err}"
        );
    }

    #[test]
    fn a_gemma_template_ends_turns_with_its_end_of_turn_token() {
        let tokenizer = fake::tokenizer();
        let t = ChatTemplate::new(GEMMA, &tokenizer, &llama_config()).unwrap();
        let text = t
            .render_text(
                &[Message::user(" Hi \n"), Message::assistant("Hello")],
                true,
            )
            .unwrap();
        assert_eq!(
            text,
            "<s><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n<start_of_turn>model\n"
        );
        // Not the end-of-text token: the one the template closes a reply with.
        assert_eq!(t.end_of_turn(), special("<end_of_turn>"));
        assert!(matches!(
            t.render(&tokenizer, &[Message::system("no")], true),
            Err(InferenceError::Template { .. })
        ));
    }

    #[test]
    fn chatml_special_tokens_become_single_ids_wherever_they_appear() {
        let tokenizer = fake::tokenizer();
        let t = ChatTemplate::new(CHATML_TEMPLATE, &tokenizer, &fake::config(None)).unwrap();
        let ids_of = t
            .render(&tokenizer, &[Message::user("say <|im_end|> now")], false)
            .unwrap();
        let (start, end) = (special("<|im_start|>"), special("<|im_end|>"));
        let mut expected = vec![start];
        expected.extend(ids("user\nsay "));
        expected.push(end);
        expected.extend(ids(" now"));
        expected.extend([end, 7 + u32::from(b'\n')]);
        assert_eq!(ids_of, expected);
        assert_eq!(t.end_of_turn(), end);
        // Bytes without a token (none here) would be dropped; text is kept.
        assert!(t
            .render_text(&[], true)
            .unwrap()
            .ends_with("<|im_start|>assistant\n"));
    }

    #[test]
    fn models_without_a_template_fall_back_to_chatml_and_bad_templates_are_refused() {
        let model = crate::fake::FakeModel::with_template(None);
        let t = ChatTemplate::for_model(&model).unwrap();
        let plain =
            ChatTemplate::new(CHATML_TEMPLATE, &fake::tokenizer(), &fake::config(None)).unwrap();
        let m = [Message::user("Hi")];
        assert_eq!(
            t.render_text(&m, true).unwrap(),
            plain.render_text(&m, true).unwrap()
        );
        let err =
            ChatTemplate::new("{% for %}", &fake::tokenizer(), &fake::config(None)).unwrap_err();
        assert!(matches!(err, InferenceError::Template { .. }), "{err}");
        assert!(std::error::Error::source(&err).is_some());
        // A template that closes no turn with a special token: the end-of-text one.
        let bare = ChatTemplate::new(
            "{% for m in messages %}{{ m.content }}\n{% endfor %}",
            &fake::tokenizer(),
            &llama_config(),
        )
        .unwrap();
        assert_eq!(bare.end_of_turn(), special("</s>"));
    }

    #[test]
    fn python_string_methods_loop_controls_and_whitespace_control_work_as_in_transformers() {
        let source = "{% for m in messages %}\n  {% if m.role == 'system' %}{% continue %}{% endif %}\n    {{ m.content.strip().upper() }}\n  {% if m.content.startswith('stop') %}{% break %}{% endif %}\n{% endfor %}";
        let t = ChatTemplate::new(source, &fake::tokenizer(), &fake::config(None)).unwrap();
        let text = t
            .render_text(
                &[
                    Message::system("s"),
                    Message::user(" a "),
                    Message::user("stop b"),
                    Message::user("c"),
                ],
                false,
            )
            .unwrap();
        // trim_blocks drops the newline after a block tag, lstrip_blocks the
        // indentation before one; text before an expression keeps its own.
        assert_eq!(text, "    A\n    STOP B\n");
    }
}
