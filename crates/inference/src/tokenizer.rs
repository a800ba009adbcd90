//! Bytes to tokens and back, exactly.
//!
//! Compression needs a map from *any* byte string to token ids and an exact
//! inverse. A Hugging Face `tokenizer.json` only takes `&str`, and its
//! decoder is allowed to be lossy, so [`TextTokenizer`] wraps it:
//!
//! * valid UTF-8 runs go through the real tokenizer (good tokens mean good
//!   compression), and the result is checked against the input;
//! * invalid bytes, and any run whose tokens would not reproduce it, fall
//!   back to single-byte tokens;
//! * a byte-level vocabulary need not hold all 256 single-byte tokens
//!   (SmolLM2's lacks most control bytes), so bytes without one become
//!   *escape symbols*: ids `escape_base() + byte`, just past the vocabulary.
//!   The coder gives them a small fixed probability; they are never fed to
//!   a model;
//! * ids map back to bytes through a table built from the vocabulary, not
//!   through the tokenizer's decoder.

use std::path::Path;

use crate::InferenceError;

/// A byte-exact tokenizer over a byte-level BPE `tokenizer.json`.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Bytes of every token id (empty for ids absent from the vocabulary).
    token_bytes: Vec<Vec<u8>>,
    /// The single-byte token for each byte value, where the vocabulary has one.
    byte_tokens: [Option<u32>; 256],
    /// Every byte value, so escape symbols can hand out one-byte slices.
    all_bytes: [u8; 256],
    /// The special added tokens (`<|im_start|>`, `</s>`, …) and their ids,
    /// longest first.
    special_tokens: Vec<(String, u32)>,
}

/// Largest piece of text handed to the tokenizer at once; pieces are cut at
/// line ends, so this bounds memory without hurting compression.
const PIECE_BYTES: usize = 16 * 1024;

/// GPT-2's reversible byte-to-character map used by byte-level BPE.
fn byte_to_char_table() -> [char; 256] {
    let mut table = ['\0'; 256];
    let mut next_extra = 256u32;
    for b in 0..=255u8 {
        let printable = matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
        table[b as usize] = if printable {
            b as char
        } else {
            let c = char::from_u32(next_extra).expect("code points 256..324 are valid chars");
            next_extra += 1;
            c
        };
    }
    table
}

impl TextTokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<TextTokenizer, InferenceError> {
        let bytes = std::fs::read(path).map_err(|e| InferenceError::io(path, e))?;
        TextTokenizer::from_bytes(&bytes)
    }

    /// Builds from the bytes of a `tokenizer.json`.
    pub fn from_bytes(json: &[u8]) -> Result<TextTokenizer, InferenceError> {
        let inner = tokenizers::Tokenizer::from_bytes(json)
            .map_err(|source| InferenceError::TokenizerFile { source })?;
        let char_to_byte: std::collections::HashMap<char, u8> = byte_to_char_table()
            .iter()
            .enumerate()
            .map(|(b, &c)| (c, b as u8))
            .collect();

        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut token_bytes = vec![Vec::new(); size];
        let mut special_tokens: Vec<(String, u32)> = inner
            .get_added_tokens_decoder()
            .iter()
            .filter(|(_, t)| t.special && !t.content.is_empty())
            .map(|(&id, t)| (t.content.clone(), id))
            .collect();
        special_tokens.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        let special: std::collections::HashSet<u32> =
            special_tokens.iter().map(|&(_, id)| id).collect();
        for (text, &id) in &vocab {
            let bytes = if special.contains(&id) {
                // Special tokens are matched verbatim in text, so their bytes
                // are their content.
                text.as_bytes().to_vec()
            } else {
                match text
                    .chars()
                    .map(|c| char_to_byte.get(&c).copied())
                    .collect::<Option<Vec<u8>>>()
                {
                    Some(bytes) => bytes,
                    None => continue, // not a byte-level token; never produced for our input
                }
            };
            token_bytes[id as usize] = bytes;
        }

        let mut byte_tokens = [None; 256];
        for (b, c) in byte_to_char_table().iter().enumerate() {
            byte_tokens[b] = inner.token_to_id(&c.to_string());
        }
        if byte_tokens.iter().all(Option::is_none) {
            return Err(InferenceError::UnsupportedTokenizer {
                what: "the vocabulary has no single-byte tokens; only byte-level BPE tokenizers are supported".into(),
            });
        }
        let all_bytes = std::array::from_fn(|b| b as u8);
        Ok(TextTokenizer {
            inner,
            token_bytes,
            byte_tokens,
            all_bytes,
            special_tokens,
        })
    }

    /// Number of token ids (the model's vocabulary may be larger).
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The first escape symbol: byte `b` without a token of its own is
    /// symbol `escape_base() + b`.
    pub fn escape_base(&self) -> u32 {
        self.token_bytes.len() as u32
    }

    /// Number of symbols [`TextTokenizer::encode_bytes`] can produce: the
    /// token ids and the 256 escapes.
    pub fn symbol_count(&self) -> usize {
        self.token_bytes.len() + 256
    }

    /// The id of a token given its text, such as `"<|endoftext|>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The special tokens (`<|im_start|>`, `</s>`, …) with their ids, longest
    /// text first: what a chat template's text is split on before the rest
    /// is tokenized.
    pub fn special_tokens(&self) -> &[(String, u32)] {
        &self.special_tokens
    }

    /// The bytes a token id or escape symbol stands for (empty for an
    /// unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        if let Some(bytes) = self.token_bytes.get(id as usize) {
            return bytes;
        }
        match id as usize - self.token_bytes.len() {
            b if b < 256 => &self.all_bytes[b..b + 1],
            _ => &[],
        }
    }

    /// The symbol for one byte: its token, else its escape.
    fn byte_symbol(&self, b: u8) -> u32 {
        self.byte_tokens[b as usize].unwrap_or(self.escape_base() + b as u32)
    }

    /// Tokenizes any bytes so that [`TextTokenizer::decode_bytes`] gives them
    /// back exactly. Ids at or past [`TextTokenizer::escape_base`] are escapes.
    pub fn encode_bytes(&self, data: &[u8]) -> Result<Vec<u32>, InferenceError> {
        let mut ids = Vec::with_capacity(data.len() / 3 + 1);
        for chunk in data.utf8_chunks() {
            let mut text = chunk.valid();
            while !text.is_empty() {
                let cut = piece_end(text, PIECE_BYTES);
                self.encode_text(&text[..cut], &mut ids)?;
                text = &text[cut..];
            }
            ids.extend(chunk.invalid().iter().map(|&b| self.byte_symbol(b)));
        }
        Ok(ids)
    }

    /// Tokenizes a piece of valid UTF-8: runs of characters whose bytes all
    /// have tokens go through the tokenizer; characters with a byte the
    /// vocabulary lacks are spelled byte by byte.
    fn encode_text(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), InferenceError> {
        let covered = |c: char| {
            let mut buf = [0u8; 4];
            c.encode_utf8(&mut buf)
                .bytes()
                .all(|b| self.byte_tokens[b as usize].is_some())
        };
        let mut rest = text;
        while !rest.is_empty() {
            let run = rest.find(|c: char| !covered(c)).unwrap_or(rest.len());
            if run > 0 {
                self.encode_run(&rest[..run], ids)?;
                rest = &rest[run..];
            } else {
                let c = rest.chars().next().expect("rest is not empty");
                ids.extend(rest[..c.len_utf8()].bytes().map(|b| self.byte_symbol(b)));
                rest = &rest[c.len_utf8()..];
            }
        }
        Ok(())
    }

    /// Tokenizes a run the tokenizer can represent, falling back to
    /// byte symbols when its ids would not give the run back.
    fn encode_run(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), InferenceError> {
        let encoding = self
            .inner
            .encode(text, false)
            .map_err(|source| InferenceError::Tokenization { source })?;
        let piece = encoding.get_ids();
        let mut rebuilt = Vec::with_capacity(text.len());
        for &id in piece {
            rebuilt.extend_from_slice(self.token_bytes(id));
        }
        if rebuilt == text.as_bytes() {
            ids.extend_from_slice(piece);
        } else {
            ids.extend(text.bytes().map(|b| self.byte_symbol(b)));
        }
        Ok(())
    }

    /// The bytes of a token sequence.
    pub fn decode_bytes(&self, ids: &[u32]) -> Vec<u8> {
        let mut out = Vec::with_capacity(ids.len() * 4);
        for &id in ids {
            out.extend_from_slice(self.token_bytes(id));
        }
        out
    }
}

/// Where to cut `text` so the piece is at most about `limit` bytes: after the
/// last newline before the limit, else at a char boundary.
fn piece_end(text: &str, limit: usize) -> usize {
    if text.len() <= limit {
        return text.len();
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    match text[..cut].rfind('\n') {
        Some(nl) if nl > 0 => nl + 1,
        _ => cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_table_is_a_bijection_onto_distinct_chars() {
        let table = byte_to_char_table();
        let distinct: std::collections::HashSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(table[b'A' as usize], 'A');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
    }

    #[test]
    fn pieces_end_after_newlines_and_on_char_boundaries() {
        assert_eq!(piece_end("abc", 10), 3);
        assert_eq!(piece_end("ab\ncdef", 5), 3);
        let s = "ééééé"; // 2 bytes each
        let cut = piece_end(s, 5);
        assert!(s.is_char_boundary(cut) && cut <= 5 && cut > 0);
    }
}
