//! Choosing an adapter for a text: the cheap router.
//!
//! [`route`] scores the first tokens of the text (the first
//! [`ROUTE_TOKENS`] by default) under each candidate, one forward pass each,
//! and keeps the one that predicts them best (fewest bits). The choice is
//! recorded in the `.tb` header, so decoding never routes; and because the
//! score is the candidates' own cross-entropy on the very text to code, the
//! router is exact about what it measures: only the rest of the text can
//! turn out otherwise.

use std::time::Instant;

use tenbits_inference::LanguageModel;

use crate::{start_token, LosslessError};

/// Tokens scored per candidate by default: a few hundred predict the whole
/// text's domain well and cost about as much as coding them.
pub const ROUTE_TOKENS: usize = 256;

/// What [`route`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    /// The index of the best candidate.
    pub best: usize,
    /// Bits each candidate spent on the scored tokens, in candidate order.
    pub bits: Vec<f64>,
    /// Tokens scored per candidate.
    pub tokens: usize,
    /// Seconds the routing took (tokenizing and every forward pass).
    pub seconds: f64,
}

/// Scores the first `tokens` tokens of `data` under each of `candidates`
/// (`select(model, i)` makes candidate `i` active) and returns the best.
/// Ties go to the earlier candidate, so put the base model first.
pub fn route<M: LanguageModel>(
    model: &mut M,
    data: &[u8],
    candidates: usize,
    tokens: usize,
    mut select: impl FnMut(&mut M, usize) -> Result<(), LosslessError>,
) -> Result<Routing, LosslessError> {
    let start = Instant::now();
    let mut ids = model.tokenizer().encode_bytes(data)?;
    ids.truncate(tokens.min(model.config().context_length.saturating_sub(1)));
    // Predicted from the same start token the coder uses.
    let mut fed = Vec::with_capacity(ids.len() + 1);
    fed.push(start_token(model));
    fed.extend_from_slice(&ids[..ids.len().saturating_sub(1)]);
    let vocab = model.vocab_size();
    let mut bits = Vec::with_capacity(candidates);
    let mut logits = Vec::new();
    for i in 0..candidates {
        select(model, i)?;
        let mut total = 0.0;
        if !ids.is_empty() {
            let mut cache = model.new_cache(1, fed.len());
            model.forward(&mut cache, &fed, &mut logits)?;
            for (row, &next) in logits.chunks_exact(vocab).zip(&ids) {
                total += neg_log2_softmax(row, next as usize);
            }
        }
        bits.push(total);
    }
    let best = bits
        .iter()
        .enumerate()
        .fold(0, |b, (i, &x)| if x < bits[b] { i } else { b });
    Ok(Routing {
        best,
        bits,
        tokens: ids.len(),
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// -log2 softmax(row)[index], computed stably.
fn neg_log2_softmax(row: &[f32], index: usize) -> f64 {
    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = row.iter().map(|&x| (x as f64 - max).exp()).sum();
    let logp = row
        .get(index)
        .map_or(f64::NEG_INFINITY, |&x| x as f64 - max)
        - sum.ln();
    -logp / std::f64::consts::LN_2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_cost_matches_hand_values() {
        // Two equal logits: one bit each.
        assert!((neg_log2_softmax(&[0.0, 0.0], 1) - 1.0).abs() < 1e-12);
        // Four equal: two bits, whatever the offset.
        assert!((neg_log2_softmax(&[7.0; 4], 3) - 2.0).abs() < 1e-12);
        // e^2 : 1 -> p = e^2 / (e^2 + 1).
        let p = (2f64).exp() / ((2f64).exp() + 1.0);
        assert!((neg_log2_softmax(&[2.0, 0.0], 0) + p.log2()).abs() < 1e-9);
    }
}
