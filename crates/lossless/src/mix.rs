//! Mixing the model with what the text itself repeats: a token match model.
//!
//! A 135M-parameter model forgets exact repeats a cheap model sees: an
//! identifier used ten times in a file, a phrase a long answer says again.
//! [`MatchMixer`] keeps every stream's coded tokens, finds the longest
//! recent occurrence of the last [`MIN_MATCH`] tokens (over all streams:
//! both directions know every stream's tokens up to the current step), and
//! predicts that the token that followed it comes next.
//!
//! The prediction is coded as a binary split, as context-mixing
//! compressors do: first a flag "the token is the predicted one", with a
//! probability from a small logistic mixer of the model's own probability
//! for that token and the match model's hit rate at this match length;
//! then, on a miss, the token under the model's table with the predicted
//! token removed. When the mixer's probability equals the model's, this
//! costs exactly what the model alone would; the mixer learns online how
//! far to trust the match.
//!
//! Everything here is integer arithmetic (12-bit probabilities, the
//! stretch/squash tables of PAQ-style mixers, computed with integers
//! only), so the encoder and the decoder agree bit for bit on every CPU.

/// Tokens that must repeat before a match is looked up.
pub const MIN_MATCH: usize = 3;

/// Longest match length told apart (longer ones share the last bucket).
const MAX_LEN: usize = 64;

/// Hash table slots (a power of two).
const TABLE_BITS: u32 = 18;

/// Inputs of the mixer: stretch(model), stretch(match hit rate), bias.
const INPUTS: usize = 3;

/// Match-length buckets, each with its own hit counts and mixer weights.
const BUCKETS: usize = 12;

/// 12-bit probability scale.
const ONE: i32 = 4096;

/// The bucket of a match length: fine for short matches, coarse for long.
fn bucket(len: usize) -> usize {
    match len {
        0..=3 => 0,
        4 => 1,
        5 => 2,
        6..=7 => 3,
        8..=9 => 4,
        10..=12 => 5,
        13..=16 => 6,
        17..=20 => 7,
        21..=28 => 8,
        29..=40 => 9,
        41..=63 => 10,
        _ => 11,
    }
}

/// `squash(x) = 4096 / (1 + e^-x/256)`, for `x` in -2047..=2047, by
/// interpolating 33 knots (PAQ's table), so no float is ever used.
fn squash(x: i32) -> i32 {
    const KNOTS: [i32; 33] = [
        1, 2, 3, 6, 10, 16, 27, 45, 73, 120, 194, 310, 488, 747, 1101, 1546, 2047, 2549, 2994,
        3348, 3607, 3785, 3901, 3975, 4024, 4050, 4068, 4079, 4085, 4089, 4092, 4093, 4094,
    ];
    if x > 2047 {
        return 4095;
    }
    if x < -2047 {
        return 1;
    }
    let w = x & 127;
    let i = ((x >> 7) + 16) as usize;
    (KNOTS[i] * (128 - w) + KNOTS[i + 1] * w + 64) >> 7
}

/// The inverse of [`squash`] over 12-bit probabilities, tabulated once.
struct Stretch([i16; 4096]);

impl Stretch {
    fn new() -> Stretch {
        let mut table = [0i16; 4096];
        let mut pi = 0usize;
        for x in -2047..=2047 {
            let v = squash(x) as usize;
            for slot in table.iter_mut().take(v + 1).skip(pi) {
                *slot = x as i16;
            }
            pi = v + 1;
        }
        for slot in table.iter_mut().skip(pi) {
            *slot = 2047;
        }
        Stretch(table)
    }

    fn get(&self, p: i32) -> i32 {
        i32::from(self.0[p.clamp(0, 4095) as usize])
    }
}

/// Where a match points: the stream and the index of the predicted token.
#[derive(Debug, Clone, Copy)]
struct Pointer {
    stream: usize,
    pos: usize,
    len: usize,
}

/// The pending prediction of one coding step, between [`MatchMixer::predict`]
/// and [`MatchMixer::update`].
#[derive(Debug, Clone, Copy)]
pub struct Prediction {
    /// The predicted symbol.
    pub symbol: usize,
    /// Probability that it comes, out of 4096 (1..=4095).
    pub p_hit: u32,
    inputs: [i32; INPUTS],
    bucket: usize,
}

/// The match model and its mixer, shared by all streams of one run.
pub struct MatchMixer {
    history: Vec<Vec<u32>>,
    pointers: Vec<Option<Pointer>>,
    table: Vec<u64>,
    /// Per bucket: hits and trials, halved past 1024 trials (recent counts).
    hits: [[u32; 2]; BUCKETS],
    weights: [[i32; INPUTS]; BUCKETS],
    stretch: Stretch,
    /// Predictions made and hit, for reporting.
    pub predicted: u64,
    /// Predictions that came true.
    pub hit: u64,
}

impl MatchMixer {
    /// A mixer for `streams` streams with nothing seen yet.
    pub fn new(streams: usize) -> MatchMixer {
        MatchMixer {
            history: vec![Vec::new(); streams],
            pointers: vec![None; streams],
            table: vec![0; 1 << TABLE_BITS],
            hits: [[0; 2]; BUCKETS],
            // Start by trusting the model alone: weight 1.0 (65536) on its
            // stretched probability, none on the match.
            weights: [[65536, 0, 0]; BUCKETS],
            stretch: Stretch::new(),
            predicted: 0,
            hit: 0,
        }
    }

    /// The prediction for the next token of `stream`, if a match is
    /// running, given the step's frequency table (`freqs`, summing to
    /// `total`).
    pub fn predict(&self, stream: usize, freqs: &[u32], total: u64) -> Option<Prediction> {
        let ptr = self.pointers[stream]?;
        let symbol = *self.history[ptr.stream].get(ptr.pos)? as usize;
        let f = u64::from(*freqs.get(symbol)?);
        if f == 0 || f >= total {
            return None;
        }
        let b = bucket(ptr.len);
        let p_model = ((f * 4096) / total).clamp(1, 4095) as i32;
        let [h, n] = self.hits[b];
        let p_match = (((2 * h + 1) * 4096) / (2 * n + 2)) as i32;
        let inputs = [self.stretch.get(p_model), self.stretch.get(p_match), 256];
        let dot: i64 = inputs
            .iter()
            .zip(&self.weights[b])
            .map(|(&x, &w)| i64::from(x) * i64::from(w))
            .sum();
        let p_hit = squash((dot >> 16).clamp(-2047, 2047) as i32).clamp(1, ONE - 1) as u32;
        Some(Prediction {
            symbol,
            p_hit,
            inputs,
            bucket: b,
        })
    }

    /// Records that `stream` coded `symbol` (after `prediction`, if one was
    /// made): trains the mixer, extends or drops the match, and indexes the
    /// new context.
    pub fn update(&mut self, stream: usize, symbol: u32, prediction: Option<Prediction>) {
        if let Some(p) = prediction {
            let hit = p.symbol == symbol as usize;
            self.predicted += 1;
            self.hit += u64::from(hit);
            let err = (i32::from(hit) * ONE) - p.p_hit as i32;
            for (w, &x) in self.weights[p.bucket].iter_mut().zip(&p.inputs) {
                // A PAQ-like learning rate: weights are 16.16 fixed point.
                *w += (x * err) >> 7;
            }
            let counts = &mut self.hits[p.bucket];
            counts[0] += u32::from(hit);
            counts[1] += 1;
            if counts[1] > 1024 {
                counts[0] /= 2;
                counts[1] /= 2;
            }
        }
        let history = &mut self.history[stream];
        history.push(symbol);
        let n = history.len();
        // Follow the match if it predicted right, else look for a new one.
        self.pointers[stream] = match self.pointers[stream] {
            Some(ptr)
                if self.history[ptr.stream].get(ptr.pos) == Some(&symbol)
                    && !(ptr.stream == stream && ptr.pos + 1 >= n) =>
            {
                Some(Pointer {
                    pos: ptr.pos + 1,
                    len: (ptr.len + 1).min(MAX_LEN),
                    ..ptr
                })
            }
            _ => None,
        };
        if n < MIN_MATCH {
            return;
        }
        let key = hash(&self.history[stream][n - MIN_MATCH..]);
        let slot = (key >> (64 - TABLE_BITS)) as usize;
        if self.pointers[stream].is_none() {
            let entry = self.table[slot];
            if entry != 0 {
                let (s, pos) = ((entry >> 32) as usize - 1, (entry & 0xFFFF_FFFF) as usize);
                let len = self.match_len(stream, s, pos);
                if len >= MIN_MATCH {
                    self.pointers[stream] = Some(Pointer {
                        stream: s,
                        pos,
                        len,
                    });
                }
            }
        }
        // The position after this context, in this stream (stream + 1, so
        // that 0 means empty).
        self.table[slot] = ((stream as u64 + 1) << 32) | n as u64;
    }

    /// How many tokens before `pos` in stream `s` equal the last tokens of
    /// `stream` (at most [`MAX_LEN`]).
    fn match_len(&self, stream: usize, s: usize, pos: usize) -> usize {
        let (mine, theirs) = (&self.history[stream], &self.history[s]);
        if pos > theirs.len() || (s == stream && pos >= mine.len()) {
            return 0;
        }
        let mut len = 0;
        while len < MAX_LEN && len < pos && len < mine.len() {
            if theirs[pos - 1 - len] != mine[mine.len() - 1 - len] {
                break;
            }
            len += 1;
        }
        len
    }
}

/// FNV-1a over the tokens, then a final mix: only needs to spread keys.
fn hash(tokens: &[u32]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &t in tokens {
        for b in t.to_le_bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h ^= h >> 29;
    h.wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn squash_and_stretch_are_monotone_inverses() {
        let stretch = Stretch::new();
        assert_eq!(squash(0), 2047);
        assert!(squash(-2047) <= 2 && squash(2047) >= 4094);
        let mut last = 0;
        for x in -2047..=2047 {
            let p = squash(x);
            assert!(p >= last);
            last = p;
        }
        for p in [100, 1000, 2048, 3000, 4000] {
            let back = squash(stretch.get(p));
            assert!((back - p).abs() <= p / 40 + 2, "{p} -> {back}");
        }
    }

    #[test]
    fn a_repeated_sequence_is_predicted_and_learned() {
        let mut mixer = MatchMixer::new(1);
        let text: Vec<u32> = (0..40).map(|i| (i * 7 % 13) as u32).collect();
        // A flat table: the model alone gives every one of 16 symbols 1/16.
        let freqs = vec![256u32; 16];
        let mut hits = 0;
        let mut last_p = 0;
        for round in 0..6 {
            for &t in &text {
                let p = mixer.predict(0, &freqs, 4096);
                if let Some(p) = p {
                    if round > 0 && p.symbol == t as usize {
                        hits += 1;
                        last_p = p.p_hit;
                    }
                }
                mixer.update(0, t, p);
            }
        }
        assert!(hits > 150, "{hits} hits");
        // It learned to trust the match far above the model's 1/16.
        assert!(last_p > 3500, "{last_p}");
    }

    #[test]
    fn matches_cross_streams() {
        let mut mixer = MatchMixer::new(2);
        for t in [5u32, 6, 7, 8, 9] {
            mixer.update(0, t, None);
        }
        for t in [5u32, 6, 7] {
            mixer.update(1, t, None);
        }
        let freqs = vec![100u32; 16];
        let p = mixer
            .predict(1, &freqs, 1600)
            .expect("stream 1 matches stream 0");
        assert_eq!(p.symbol, 8);
    }

    #[test]
    fn no_prediction_without_a_repeat() {
        let mut mixer = MatchMixer::new(1);
        let freqs = vec![100u32; 64];
        for t in 0..50u32 {
            assert!(mixer.predict(0, &freqs, 6400).is_none());
            mixer.update(0, t, None);
        }
    }
}
