//! Answer bits range-coded under the asker's predictions.
//!
//! The asker predicts P(yes) for each question with its own model (it sees
//! the problem and its answer, never the reference); both sides compute the
//! same predictions. Each bit is coded with `tenbits-coding`'s range coder
//! under the prediction quantized by [`binary_freqs`], which keeps both
//! outcomes at least [`FLOOR`]`/`[`TOTAL`] (1/256) likely, so a confidently
//! wrong prediction costs at most 8 bits.
//!
//! With predictions, the stream starts with one flag symbol (1 bit): the
//! sender codes the bits both under the predictions and at an even 1/2 each,
//! and keeps the shorter. Adversarial predictions therefore cost at most one
//! bit more than sending the bits plainly. Without predictions every bit is
//! coded at 1/2, which is plain bit packing.

use tenbits_coding::{CodingError, Decoder, Encoder};

use crate::QaError;

/// Total of the binary frequency tables.
pub const TOTAL: u32 = 1 << 16;
/// Least frequency of either outcome.
pub const FLOOR: u32 = TOTAL / 256;
/// The table of a fair bit (and of the mode flag).
const EVEN: [u32; 2] = [1, 1];

/// The frequency table `[no, yes]` for a predicted P(yes): rounded to
/// [`TOTAL`], each outcome at least [`FLOOR`]. NaN counts as 1/2.
pub fn binary_freqs(p_yes: f64) -> [u32; 2] {
    let p = if p_yes.is_nan() {
        0.5
    } else {
        p_yes.clamp(0.0, 1.0)
    };
    let yes = ((p * f64::from(TOTAL)).round() as u32).clamp(FLOOR, TOTAL - FLOOR);
    [TOTAL - yes, yes]
}

/// The ideal cost in bits of `bit` under the quantized prediction, −log2 q.
pub fn cost(bit: bool, p_yes: f64) -> f64 {
    let f = binary_freqs(p_yes);
    -(f64::from(f[usize::from(bit)]) / f64::from(TOTAL)).log2()
}

/// Codes `bits`; with `p_yes` (one prediction per bit) under the
/// predictions or plainly, whichever is shorter, behind a flag.
pub fn encode_bits(bits: &[bool], p_yes: Option<&[f64]>) -> Result<Vec<u8>, QaError> {
    let Some(p) = p_yes else {
        return Ok(encode(bits, None, None)?);
    };
    if p.len() != bits.len() {
        return Err(QaError::Invalid("encode_bits needs one prediction per bit"));
    }
    let predicted = encode(bits, Some(true), Some(p))?;
    let plain = encode(bits, Some(false), None)?;
    Ok(if predicted.len() < plain.len() {
        predicted
    } else {
        plain
    })
}

fn encode(bits: &[bool], flag: Option<bool>, p: Option<&[f64]>) -> Result<Vec<u8>, CodingError> {
    let mut enc = Encoder::new();
    if let Some(f) = flag {
        enc.encode(usize::from(f), &EVEN)?;
    }
    for (i, &b) in bits.iter().enumerate() {
        enc.encode(usize::from(b), &p.map_or(EVEN, |p| binary_freqs(p[i])))?;
    }
    Ok(enc.finish())
}

/// Reads bits written by [`encode_bits`] one at a time, so each prediction
/// can be computed after the bits before it are known.
#[derive(Debug, Clone)]
pub struct BitReader<'a> {
    decoder: Decoder<'a>,
    predicted: bool,
}

impl<'a> BitReader<'a> {
    /// A reader of `payload`; `with_predictions` must match the sender's
    /// (whether it passed predictions to [`encode_bits`]).
    pub fn new(payload: &'a [u8], with_predictions: bool) -> Result<Self, CodingError> {
        let mut decoder = Decoder::new(payload)?;
        let predicted = with_predictions && decoder.decode(&EVEN)? == 1;
        Ok(Self { decoder, predicted })
    }

    /// Whether the sender coded under the predictions (else plainly).
    pub fn uses_predictions(&self) -> bool {
        self.predicted
    }

    /// The next bit; `p_yes` is the same prediction the sender had for it
    /// (ignored when the payload is plain).
    pub fn read(&mut self, p_yes: f64) -> Result<bool, CodingError> {
        let freqs = if self.predicted {
            binary_freqs(p_yes)
        } else {
            EVEN
        };
        Ok(self.decoder.decode(&freqs)? == 1)
    }
}

/// Decodes `n` bits (all predictions known up front); the inverse of
/// [`encode_bits`].
pub fn decode_bits(payload: &[u8], n: usize, p_yes: Option<&[f64]>) -> Result<Vec<bool>, QaError> {
    if p_yes.is_some_and(|p| p.len() != n) {
        return Err(QaError::Invalid("decode_bits needs one prediction per bit"));
    }
    let mut r = BitReader::new(payload, p_yes.is_some())?;
    (0..n)
        .map(|i| Ok(r.read(p_yes.map_or(0.5, |p| p[i]))?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_keep_a_floor() {
        assert_eq!(binary_freqs(1.0), [FLOOR, TOTAL - FLOOR]);
        assert_eq!(binary_freqs(-3.0), [TOTAL - FLOOR, FLOOR]);
        assert_eq!(binary_freqs(f64::NAN), [TOTAL / 2, TOTAL / 2]);
        assert_eq!(binary_freqs(0.75), [TOTAL / 4, 3 * TOTAL / 4]);
        assert!((cost(true, 1.0) - 0.00565).abs() < 1e-4);
        assert!((cost(false, 1.0) - 8.0).abs() < 1e-12);
    }

    #[test]
    fn bits_round_trip_under_any_predictions() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n in [0usize, 1, 7, 10, 64, 301] {
            let bits: Vec<bool> = (0..n).map(|_| next() % 3 == 0).collect();
            let good: Vec<f64> = bits.iter().map(|&b| if b { 0.95 } else { 0.05 }).collect();
            let bad: Vec<f64> = good.iter().map(|p| 1.0 - p).collect();
            let wild: Vec<f64> = (0..n).map(|_| (next() % 1001) as f64 / 1000.0).collect();
            for p in [None, Some(&good[..]), Some(&bad[..]), Some(&wild[..])] {
                let payload = encode_bits(&bits, p).unwrap();
                assert_eq!(decode_bits(&payload, n, p).unwrap(), bits, "n={n} {p:?}");
                // Plain coding is bit packing; the flag and range coder's
                // end cost at most a few bits more.
                let extra = if p.is_some() { 1 } else { 0 };
                assert!(
                    payload.len() * 8 <= n + extra + 8,
                    "n={n}: {} bytes",
                    payload.len()
                );
            }
            let payload = encode_bits(&bits, Some(&good)).unwrap();
            let ideal: f64 = bits.iter().zip(&good).map(|(&b, &p)| cost(b, p)).sum();
            assert!((payload.len() * 8) as f64 <= ideal + 1.0 + 16.0, "n={n}");
            if n >= 64 {
                assert!(
                    payload.len() * 8 < n / 2,
                    "good predictions must save: n={n}"
                );
            }
        }
        assert!(encode_bits(&[true], Some(&[])).is_err());
    }
}
