//! Deterministic quantization of model logits into integer frequency tables.
//!
//! The encoder and the decoder each run the model and turn its logits into a
//! table of integer frequencies with [`quantize_logits`]. The two tables must
//! be identical bit for bit, or decoding goes wrong from that symbol on. This
//! module therefore avoids everything whose result may differ between
//! platforms or library builds:
//!
//! * `exp` is not taken from the C library (whose last bit may differ between
//!   libm versions and CPUs). It is a fixed polynomial for `2^f` evaluated with
//!   plain IEEE-754 additions and multiplications, which Rust never fuses or
//!   reorders, so the result is the same on every platform.
//! * Sums are accumulated in `f64` in a fixed order (eight interleaved lanes).
//! * Non-finite logits (NaN, ±inf) are treated as `-inf`.
//!
//! The logits themselves must of course be identical on both sides; that is
//! the model runtime's business, not this crate's.

/// Bits of probability precision: every frequency table made by
/// [`quantize_logits`] sums to exactly `2^PRECISION`.
pub const PRECISION: u32 = 24;

/// The total mass of a table made by [`quantize_logits`]: `2^PRECISION`.
pub const TOTAL: u32 = 1 << PRECISION;

/// The largest vocabulary [`quantize_logits`] accepts: `2^(PRECISION - 1)`.
///
/// Every token gets a frequency of at least 1, so the vocabulary must be well
/// below [`TOTAL`]; keeping it at most half of it leaves at least half of the
/// mass to follow the model's probabilities.
pub const MAX_VOCAB: usize = 1 << (PRECISION - 1);

/// Width of the interleaved accumulators; fixed so that results never depend
/// on how the compiler vectorizes the loops.
const LANES: usize = 8;

/// `log2(e)` as `f32`.
const LOG2_E: f32 = std::f32::consts::LOG2_E;

/// Exponents below this are clamped: `2^-64` is far below the smallest
/// probability that can still earn more than the floor frequency of 1.
const MIN_EXPONENT: f32 = -64.0;

/// Coefficients of the degree-5 polynomial `p(f) ~= 2^f` on `[0, 1]`
/// (relative minimax fit, max relative error about 8e-8, `p(0) = 1` exactly).
const C1: f32 = 0.693_151_3;
const C2: f32 = 0.240_164_45;
const C3: f32 = 0.055_799_917;
const C4: f32 = 0.009_017_026;
const C5: f32 = 0.001_867_131_7;

/// `1.5 * 2^23`: adding it to an `f32` of magnitude below `2^22` rounds that
/// value to an integer held in the low mantissa bits.
const ROUND_F32: f32 = 12_582_912.0;

/// `1.5 * 2^52`: the same for `f64` values of magnitude below `2^51`.
const ROUND_F64: f64 = 6_755_399_441_055_744.0;

/// Deterministic, monotone approximation of `2^t` for `t <= 0` (any `t`, in
/// fact, including `-inf`, which yields `2^-64`; callers never pass NaN).
///
/// `t` is split as `n + f` with the integer `n = round(t - 0.5)`, which is
/// `floor(t)` except within rounding distance of an integer, and
/// `f = clamp(t - n, 0, 1)`; the result is `p(f) * 2^n`.
///
/// Monotone: `t1 <= t2` implies `exp2_det(t1) <= exp2_det(t2)`. Every
/// operation used is monotone under IEEE rounding, so `n` is non-decreasing in
/// `t`, and for a fixed `n` so is `f`; the polynomial has positive
/// coefficients, so it is non-decreasing on `[0, 1]` with `p(0) = 1` exactly,
/// and its value is clamped to at most 2. So where `n` steps up, the value
/// goes from at most `2 * 2^n` to at least `2^(n+1)`: never down.
///
/// No float-to-integer conversion is used (they do not vectorise on plain
/// x86-64); the integer `n` is read from the bits of `t - 0.5 + 1.5 * 2^23`.
#[inline(always)]
fn exp2_det(t: f32) -> f32 {
    let t = if t < MIN_EXPONENT { MIN_EXPONENT } else { t };
    let t = if t > 0.0 { 0.0 } else { t };
    let y = (t - 0.5) + ROUND_F32; // integer n in the low mantissa bits
    let n_bits = y.to_bits().wrapping_sub(ROUND_F32.to_bits()); // n as i32 bits
    let n = y - ROUND_F32; // n as f32, exact
    let f = t - n;
    let f = if f < 0.0 { 0.0 } else { f };
    let f = if f > 1.0 { 1.0 } else { f };
    let p = 1.0 + f * (C1 + f * (C2 + f * (C3 + f * (C4 + f * C5))));
    let p = if p > 2.0 { 2.0 } else { p };
    // n in [-64, 0]: 2^n is a normal f32 and multiplying by it is exact.
    let scale = f32::from_bits(n_bits.wrapping_add(127) << 23);
    p * scale
}

/// `floor(x)` for `0 <= x < 2^51`, or one less when `x` is an integer, as
/// an integer, without a float-to-integer conversion (which does not
/// vectorise on plain x86-64). Monotone in `x`.
#[inline(always)]
fn floor_f64(x: f64) -> u64 {
    // x - 0.5 is exact for x >= 0.5 and rounds to an integer >= 0 below.
    let y = (x - 0.5) + ROUND_F64;
    y.to_bits().wrapping_sub(ROUND_F64.to_bits())
}

/// Turns one row of logits into integer frequencies that sum to exactly
/// [`TOTAL`] (`2^24`), with every token at least 1 so every token stays
/// codable.
///
/// `freqs` is cleared and refilled with `logits.len()` entries; reuse the same
/// `Vec` across calls so that nothing is allocated after the first call.
///
/// The result is a pure function of the bits of `logits`: the same input gives
/// the same output on every platform. The steps are
///
/// 1. the maximum finite logit `m` (NaN and ±inf count as `-inf`; if no logit
///    is finite the table is uniform),
/// 2. `e_i = 2^((l_i - m) * log2 e)` with a deterministic polynomial, summed in
///    `f64`,
/// 3. `freq_i = 1 + floor(e_i * (TOTAL - V) / sum)`, which sums to at most
///    `TOTAL`,
/// 4. the few units left over go to the most probable token (the first one
///    with the maximal logit).
///
/// The table is monotone in the logits: `l_i > l_j` implies
/// `freq_i >= freq_j`.
///
/// # Panics
///
/// If `logits` is empty or longer than [`MAX_VOCAB`] (`2^23`); both are fixed
/// properties of the model, so this is a programming error, not bad input.
pub fn quantize_logits(logits: &[f32], freqs: &mut Vec<u32>) {
    let n = logits.len();
    assert!(
        n > 0 && n <= MAX_VOCAB,
        "quantize_logits: vocabulary size {n} is outside 1..={MAX_VOCAB}"
    );

    // Pass 1: maximum finite logit, in fixed lanes.
    let max = max_finite(logits);
    if max == f32::NEG_INFINITY {
        freqs.clear();
        uniform(n, freqs);
        return;
    }
    let argmax = first_equal(logits, max);

    // Pass 2: unnormalised probabilities, stored as f32 bits in `freqs` (so no
    // second buffer is needed), and their sum in f64. Every entry is
    // overwritten, so a `freqs` of the right length is not cleared first.
    freqs.resize(n, 0);
    let sum = exp_and_sum(logits, max, freqs);

    // Pass 3: integer frequencies. `sum >= 1` because the maximum contributes
    // exactly 2^0 = 1.
    let scale = f64::from(TOTAL - n as u32) / sum;
    let mut assigned: u64 = 0;
    for slot in freqs.iter_mut() {
        let e = f64::from(f32::from_bits(*slot));
        // 0 <= e * scale <= ~TOTAL, so this is floor (or one less, which
        // only leaves more for the remainder).
        let q = 1 + floor_f64(e * scale) as u32;
        *slot = q;
        assigned += u64::from(q);
    }

    // Pass 4: hand the remainder to the most probable token. In exact
    // arithmetic the floors never overshoot; the f64 rounding is far too small
    // to overshoot by a whole unit, but a negative remainder is still handled.
    let total = u64::from(TOTAL);
    if assigned <= total {
        freqs[argmax] += (total - assigned) as u32;
    } else {
        let excess = assigned - total;
        if u64::from(freqs[argmax]) > excess {
            freqs[argmax] -= excess as u32;
        } else {
            // Unreachable in practice; stay correct rather than panic.
            freqs.clear();
            uniform(n, freqs);
        }
    }
}

/// The index of the first entry equal to `x`, which must occur in `xs`.
fn first_equal(xs: &[f32], x: f32) -> usize {
    const BLOCK: usize = 64;
    let mut base = 0;
    for block in xs.chunks(BLOCK) {
        // Branch-free test of a whole block first (vectorises), then the
        // exact position in the block that has it.
        if block.iter().fold(false, |hit, &v| hit | (v == x)) {
            return base + block.iter().position(|&v| v == x).unwrap_or(0);
        }
        base += block.len();
    }
    0
}

/// Maximum over the finite entries of `logits`, `-inf` if there are none.
fn max_finite(logits: &[f32]) -> f32 {
    // Many independent lanes, so the compare-and-select chains overlap.
    const MAX_LANES: usize = 32;
    let mut acc = [f32::NEG_INFINITY; MAX_LANES];
    let mut chunks = logits.chunks_exact(MAX_LANES);
    for chunk in &mut chunks {
        for (a, &l) in acc.iter_mut().zip(chunk) {
            let v = if l.is_finite() { l } else { f32::NEG_INFINITY };
            *a = if v > *a { v } else { *a };
        }
    }
    for (a, &l) in acc.iter_mut().zip(chunks.remainder()) {
        let v = if l.is_finite() { l } else { f32::NEG_INFINITY };
        *a = if v > *a { v } else { *a };
    }
    acc.iter()
        .fold(f32::NEG_INFINITY, |m, &a| if a > m { a } else { m })
}

/// Writes `2^((l - max) * log2 e)` for every logit into `out` (as f32 bits) and
/// returns their sum, accumulated in f64 in a fixed order.
fn exp_and_sum(logits: &[f32], max: f32, out: &mut [u32]) -> f64 {
    // Two simple loops rather than one: the f32 loop vectorises at full
    // width, the f64 sum at its own.
    for (o, &l) in out.iter_mut().zip(logits) {
        let l = if l.is_finite() { l } else { f32::NEG_INFINITY };
        *o = exp2_det((l - max) * LOG2_E).to_bits();
    }
    let mut acc = [0.0f64; LANES];
    let mut chunks = out.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, &e) in acc.iter_mut().zip(c) {
            *a += f64::from(f32::from_bits(e));
        }
    }
    for (a, &e) in acc.iter_mut().zip(chunks.remainder()) {
        *a += f64::from(f32::from_bits(e));
    }
    // Fixed pairwise order.
    ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
}

/// Fills `freqs` with a uniform table of `n` entries summing to [`TOTAL`]
/// (the first `TOTAL % n` tokens get one unit more).
fn uniform(n: usize, freqs: &mut Vec<u32>) {
    let n32 = n as u32;
    let base = TOTAL / n32;
    let extra = (TOTAL % n32) as usize;
    freqs.extend((0..n).map(|i| base + u32::from(i < extra)));
}

/// The model's own information content `-log2 p(symbol)` in bits, from an
/// exact `f64` softmax of `logits` (not from the quantized table).
///
/// Use it to report the model's cross-entropy next to the coded size; the
/// difference is the cost of quantization and coding. It uses the platform's
/// `exp`, so it is meant for reporting only, never for coding.
///
/// Non-finite logits count as `-inf`, as in [`quantize_logits`]; if no logit is
/// finite the distribution is uniform. Returns `f64::INFINITY` if `symbol` is
/// out of range or its logit is not finite (while others are).
pub fn log2_prob(logits: &[f32], symbol: usize) -> f64 {
    let Some(&ls) = logits.get(symbol) else {
        return f64::INFINITY;
    };
    let max = max_finite(logits);
    if max == f32::NEG_INFINITY {
        return (logits.len() as f64).log2();
    }
    if !ls.is_finite() {
        return f64::INFINITY;
    }
    let max = f64::from(max);
    let sum: f64 = logits
        .iter()
        .filter(|l| l.is_finite())
        .map(|&l| (f64::from(l) - max).exp())
        .sum();
    // -log2(exp(ls - max) / sum)
    (sum.ln() - (f64::from(ls) - max)) / std::f64::consts::LN_2
}

/// The information content `-log2(freqs[symbol] / sum(freqs))` in bits of a
/// symbol under an integer frequency table: what the range coder spends on it
/// (up to a negligible rounding loss).
///
/// Returns `f64::INFINITY` if `symbol` is out of range or has frequency 0.
pub fn freq_bits(freqs: &[u32], symbol: usize) -> f64 {
    match freqs.get(symbol) {
        Some(&f) if f > 0 => {
            let total: u64 = freqs.iter().map(|&f| u64::from(f)).sum();
            (total as f64).log2() - f64::from(f).log2()
        }
        _ => f64::INFINITY,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sum(freqs: &[u32]) -> u64 {
        freqs.iter().map(|&f| u64::from(f)).sum()
    }

    #[test]
    fn exp2_det_is_accurate_and_monotone() {
        let mut prev = 0.0f32;
        let mut t = -70.0f32;
        while t <= 0.0 {
            let e = exp2_det(t);
            assert!(e >= prev, "not monotone at {t}: {e} < {prev}");
            if t >= -60.0 {
                let exact = 2f64.powf(f64::from(t));
                let rel = (f64::from(e) / exact - 1.0).abs();
                assert!(rel < 5e-7, "relative error {rel} at {t}");
            }
            prev = e;
            t += 0.000_37;
        }
        // Around integer boundaries, step by single ulps (t increases as the
        // bit pattern of a negative float decreases).
        for k in -64..=-1 {
            let mut t = (k as f32) - 1e-4;
            let mut prev = 0.0f32;
            while t <= k as f32 + 1e-4 {
                let e = exp2_det(t);
                assert!(e >= prev, "not monotone at {t}");
                prev = e;
                t = f32::from_bits(t.to_bits() - 1);
            }
        }
        assert_eq!(exp2_det(0.0), 1.0);
        assert!((exp2_det(-1.0) - 0.5).abs() < 1e-7);
        assert!((exp2_det(-2.5) / 2f32.powf(-2.5) - 1.0).abs() < 3e-7);
        assert_eq!(exp2_det(f32::NEG_INFINITY), 2f32.powi(-64));
    }

    #[test]
    fn peaked_distribution_gives_most_mass_to_top() {
        let mut logits = vec![0.0f32; 1000];
        logits[17] = 30.0;
        let mut freqs = Vec::new();
        quantize_logits(&logits, &mut freqs);
        assert_eq!(sum(&freqs), u64::from(TOTAL));
        assert_eq!(freqs[17], TOTAL - 999);
        assert!(freqs.iter().enumerate().all(|(i, &f)| i == 17 || f == 1));
    }

    #[test]
    fn matches_float_softmax_closely() {
        let logits: Vec<f32> = (0..5000)
            .map(|i| ((i * 7919) % 1000) as f32 / 100.0)
            .collect();
        let mut freqs = Vec::new();
        quantize_logits(&logits, &mut freqs);
        // Expected cost under the model vs. under the table: KL must be tiny.
        let mut kl = 0.0;
        for (i, _) in logits.iter().enumerate() {
            let p = (-log2_prob(&logits, i)).exp2();
            kl += p * (freq_bits(&freqs, i) - log2_prob(&logits, i));
        }
        assert!(kl >= -1e-9, "KL {kl}");
        // 5000 tokens reserve 5000/2^24 of the mass: ~0.00043 bits.
        assert!(kl < 0.001, "KL {kl} bits");
    }

    #[test]
    fn non_finite_logits() {
        let mut freqs = Vec::new();
        quantize_logits(&[f32::NAN, f32::INFINITY, f32::NEG_INFINITY], &mut freqs);
        assert_eq!(sum(&freqs), u64::from(TOTAL));
        let max = *freqs.iter().max().unwrap();
        let min = *freqs.iter().min().unwrap();
        assert!(max - min <= 1, "all non-finite must be uniform: {freqs:?}");

        quantize_logits(&[f32::NAN, 1.0, f32::INFINITY, 0.0], &mut freqs);
        assert_eq!(sum(&freqs), u64::from(TOTAL));
        assert_eq!(freqs[0], 1);
        assert_eq!(freqs[2], 1);
        assert!(freqs[1] > freqs[3] && freqs[3] > 1);

        // Extreme finite values must not overflow into NaN.
        quantize_logits(&[f32::MAX, f32::MIN, 0.0, -f32::MIN_POSITIVE], &mut freqs);
        assert_eq!(freqs, vec![TOTAL - 3, 1, 1, 1]);

        assert_eq!(log2_prob(&[f32::NAN, f32::NAN], 0), 1.0);
        assert_eq!(log2_prob(&[f32::NAN, 0.0], 0), f64::INFINITY);
        assert_eq!(log2_prob(&[0.0, 0.0], 2), f64::INFINITY);
        assert!((log2_prob(&[0.0, 0.0, 0.0, 0.0], 3) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn uniform_and_single() {
        let mut freqs = Vec::new();
        quantize_logits(&[3.5], &mut freqs);
        assert_eq!(freqs, vec![TOTAL]);
        quantize_logits(&[0.0; 3], &mut freqs);
        assert_eq!(sum(&freqs), u64::from(TOTAL));
        assert!(freqs.iter().max().unwrap() - freqs.iter().min().unwrap() <= 3);
    }

    #[test]
    fn large_vocab() {
        let logits: Vec<f32> = (0..200_000)
            .map(|i| ((i as f32) * 0.618).sin() * 12.0)
            .collect();
        let mut freqs = Vec::new();
        quantize_logits(&logits, &mut freqs);
        assert_eq!(freqs.len(), 200_000);
        assert_eq!(sum(&freqs), u64::from(TOTAL));
        assert!(freqs.iter().all(|&f| f >= 1));
    }

    #[test]
    #[should_panic(expected = "vocabulary size")]
    fn empty_panics() {
        quantize_logits(&[], &mut Vec::new());
    }

    #[test]
    #[should_panic(expected = "vocabulary size")]
    fn too_large_vocab_panics() {
        quantize_logits(&vec![0.0; MAX_VOCAB + 1], &mut Vec::new());
    }

    #[test]
    fn freq_bits_values() {
        assert_eq!(freq_bits(&[1, 1, 2], 2), 1.0);
        assert_eq!(freq_bits(&[1, 0, 2], 1), f64::INFINITY);
        assert_eq!(freq_bits(&[1, 0, 2], 3), f64::INFINITY);
    }

    fn logit_strategy() -> impl Strategy<Value = f32> {
        prop_oneof![
            20 => -40.0f32..40.0,
            1 => Just(f32::NAN),
            1 => Just(f32::INFINITY),
            1 => Just(f32::NEG_INFINITY),
            1 => any::<f32>(),
        ]
    }

    proptest! {
        #[test]
        fn invariants(logits in prop::collection::vec(logit_strategy(), 1..2000)) {
            let mut freqs = vec![7u32; 3]; // stale content must be replaced
            quantize_logits(&logits, &mut freqs);
            prop_assert_eq!(freqs.len(), logits.len());
            prop_assert_eq!(sum(&freqs), u64::from(TOTAL));
            prop_assert!(freqs.iter().all(|&f| f >= 1));

            // Deterministic.
            let mut again = Vec::new();
            quantize_logits(&logits, &mut again);
            prop_assert_eq!(&freqs, &again);

            // Monotone in the logits (non-finite counts as -inf).
            let key = |l: f32| if l.is_finite() { l } else { f32::NEG_INFINITY };
            let mut order: Vec<usize> = (0..logits.len()).collect();
            order.sort_by(|&a, &b| key(logits[a]).total_cmp(&key(logits[b])));
            for w in order.windows(2) {
                let (a, b) = (w[0], w[1]);
                if key(logits[a]) < key(logits[b]) {
                    prop_assert!(freqs[a] <= freqs[b],
                        "logit {} < {} but freq {} > {}", logits[a], logits[b], freqs[a], freqs[b]);
                }
            }
        }

        #[test]
        fn close_to_model(logits in prop::collection::vec(-20.0f32..20.0, 2..300)) {
            let mut freqs = Vec::new();
            quantize_logits(&logits, &mut freqs);
            for (i, _) in logits.iter().enumerate() {
                let model = log2_prob(&logits, i);
                let coded = freq_bits(&freqs, i);
                // Tokens with real probability cost almost the same.
                if model < 10.0 {
                    prop_assert!((coded - model).abs() < 0.01, "token {}: model {} coded {}", i, model, coded);
                }
                // No token ever costs more than 24 bits.
                prop_assert!(coded <= 24.0);
            }
        }
    }
}
