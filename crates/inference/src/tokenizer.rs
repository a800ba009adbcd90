//! Bytes to tokens and back, exactly.
//!
//! Compression needs a map from *any* byte string to token ids and an exact
//! inverse. A Hugging Face `tokenizer.json` only takes `&str`, and its
//! decoder is allowed to be lossy, so [`TextTokenizer`] wraps it:
//!
//! * valid UTF-8 runs go through the real tokenizer (good tokens mean good
//!   compression), and the result is checked against the input;
//! * invalid bytes, and any run whose tokens would not reproduce it, fall
//!   back to the 256 single-byte tokens every byte-level BPE vocabulary has;
//! * ids map back to bytes through a table built from the vocabulary, not
//!   through the tokenizer's decoder.

use std::path::Path;

use crate::InferenceError;

/// A byte-exact tokenizer over a byte-level BPE `tokenizer.json`.
pub struct TextTokenizer {
    inner: tokenizers::Tokenizer,
    /// Bytes of every token id (empty for ids absent from the vocabulary).
    token_bytes: Vec<Vec<u8>>,
    /// The single-byte token for each byte value.
    byte_tokens: [u32; 256],
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
            .map_err(|e| InferenceError::Tokenizer(format!("cannot parse tokenizer.json: {e}")))?;
        let char_to_byte: std::collections::HashMap<char, u8> =
            byte_to_char_table().iter().enumerate().map(|(b, &c)| (c, b as u8)).collect();

        let vocab = inner.get_vocab(true);
        let size = vocab.values().map(|&id| id as usize + 1).max().unwrap_or(0);
        let mut token_bytes = vec![Vec::new(); size];
        let special: std::collections::HashSet<u32> =
            inner.get_added_tokens_decoder().iter().filter(|(_, t)| t.special).map(|(&id, _)| id).collect();
        for (text, &id) in &vocab {
            let bytes = if special.contains(&id) {
                // Special tokens are matched verbatim in text, so their bytes
                // are their content.
                text.as_bytes().to_vec()
            } else {
                match text.chars().map(|c| char_to_byte.get(&c).copied()).collect::<Option<Vec<u8>>>() {
                    Some(bytes) => bytes,
                    None => continue, // not a byte-level token; never produced for our input
                }
            };
            token_bytes[id as usize] = bytes;
        }

        let mut byte_tokens = [0u32; 256];
        for (b, c) in byte_to_char_table().iter().enumerate() {
            byte_tokens[b] = inner.token_to_id(&c.to_string()).ok_or_else(|| {
                InferenceError::Tokenizer(format!(
                    "the vocabulary has no single-byte token for byte {b:#04x}; only byte-level BPE tokenizers are supported"
                ))
            })?;
        }
        Ok(TextTokenizer { inner, token_bytes, byte_tokens })
    }

    /// Number of token ids (the model's vocabulary may be larger).
    pub fn vocab_size(&self) -> usize {
        self.token_bytes.len()
    }

    /// The id of a token given its text, such as `"<|endoftext|>"`.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The bytes a token id stands for (empty for an unknown id).
    pub fn token_bytes(&self, id: u32) -> &[u8] {
        self.token_bytes.get(id as usize).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Tokenizes any bytes so that [`TextTokenizer::decode_bytes`] gives them back exactly.
    pub fn encode_bytes(&self, data: &[u8]) -> Result<Vec<u32>, InferenceError> {
        let mut ids = Vec::with_capacity(data.len() / 3 + 1);
        for chunk in data.utf8_chunks() {
            let mut text = chunk.valid();
            while !text.is_empty() {
                let cut = piece_end(text, PIECE_BYTES);
                self.encode_text(&text[..cut], &mut ids)?;
                text = &text[cut..];
            }
            ids.extend(chunk.invalid().iter().map(|&b| self.byte_tokens[b as usize]));
        }
        Ok(ids)
    }

    /// Tokenizes a piece of valid UTF-8, falling back to byte tokens when the
    /// tokenizer's ids would not give the piece back.
    fn encode_text(&self, text: &str, ids: &mut Vec<u32>) -> Result<(), InferenceError> {
        let encoding =
            self.inner.encode(text, false).map_err(|e| InferenceError::Tokenizer(format!("tokenization failed: {e}")))?;
        let piece = encoding.get_ids();
        let mut rebuilt = Vec::with_capacity(text.len());
        for &id in piece {
            rebuilt.extend_from_slice(self.token_bytes(id));
        }
        if rebuilt == text.as_bytes() {
            ids.extend_from_slice(piece);
        } else {
            ids.extend(text.bytes().map(|b| self.byte_tokens[b as usize]));
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

    /// Tokenizes text the ordinary way (special tokens in the text are
    /// recognised), for prompts.
    pub fn encode_text_plain(&self, text: &str) -> Result<Vec<u32>, InferenceError> {
        let encoding =
            self.inner.encode(text, false).map_err(|e| InferenceError::Tokenizer(format!("tokenization failed: {e}")))?;
        Ok(encoding.get_ids().to_vec())
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
