//! A 64-bit range coder over integer frequency tables.
//!
//! Each symbol is coded under its own table, so one stream can interleave
//! symbols of many independent sources, as long as the decoder asks for them
//! in the same order with the same tables.
//!
//! The coder keeps a 64-bit `low` (plus one carry bit) and a 64-bit `range`
//! that is renormalised, one output byte at a time, to stay at or above
//! `2^56`. A table's total may be anything from 1 to [`MAX_TOTAL`]
//! (`u32::MAX`); with the `2^24` totals from
//! [`quantize_logits`](crate::quantize::quantize_logits) the truncation
//! `range / total` loses less than `2^-32` of the range per symbol, so the
//! output is within a couple of bytes of the information content. Carries are
//! propagated with the classic "cache plus run of `0xFF` bytes" scheme.
//!
//! [`Encoder::finish`] picks the value in the final interval with the most
//! trailing zero bytes and drops all trailing zero bytes; [`Decoder`] reads
//! zeros past the end of its input, so nothing is lost by that.
//!
//! Decoding input that is corrupt or truncated never panics and never loops:
//! each [`Decoder::decode`] call does a bounded amount of work and either
//! returns some symbol or [`CodingError::CorruptData`]. Wrong symbols are
//! possible; the container's checksums catch those.

use thiserror::Error;

/// The largest total a frequency table may have.
pub const MAX_TOTAL: u64 = u32::MAX as u64;

/// `range` is renormalised to stay at or above this.
const RANGE_BOTTOM: u64 = 1 << 56;

/// Bytes of coder state; the decoder reads this many bytes up front.
const STATE_BYTES: usize = 8;

/// Errors from [`Encoder`], [`Decoder`] and [`Cdf`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CodingError {
    /// The symbol to encode is not an index into the frequency table.
    #[error("symbol {symbol} is out of range for a frequency table of {len} entries")]
    SymbolOutOfRange {
        /// The symbol that was asked for.
        symbol: usize,
        /// The number of entries in the table.
        len: usize,
    },
    /// The symbol to encode has frequency 0, so it cannot be coded.
    #[error("symbol {symbol} has frequency 0 and cannot be coded; every codable symbol needs a frequency of at least 1")]
    ZeroFrequency {
        /// The symbol that was asked for.
        symbol: usize,
    },
    /// The frequency table sums to 0 or to more than [`MAX_TOTAL`].
    #[error("frequency table sums to {total}, which is outside 1..={MAX_TOTAL}")]
    InvalidTotal {
        /// The sum of the table.
        total: u64,
    },
    /// The compressed data cannot have come from [`Encoder`] with these
    /// tables: it is corrupt, or the tables differ from the encoder's.
    #[error("compressed data is corrupt or was made with different probabilities (wrong model or runtime?)")]
    CorruptData,
}

/// Cumulative frequencies of a table, for finding the symbol that covers a
/// point in `0..total` by binary search.
///
/// [`Decoder`] keeps one as scratch space; build your own and use
/// [`Encoder::encode_cdf`] / [`Decoder::decode_cdf`] if the same table is
/// used for several symbols.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cdf {
    /// `cum[i]` is the sum of `freqs[..i]`; `cum.len() == freqs.len() + 1`.
    cum: Vec<u32>,
}

impl Cdf {
    /// An empty table; fill it with [`Cdf::build`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Rebuilds the cumulative table from `freqs`, reusing the allocation.
    ///
    /// Fails with [`CodingError::InvalidTotal`] if the frequencies sum to 0 or
    /// to more than [`MAX_TOTAL`] (the table is then left empty).
    pub fn build(&mut self, freqs: &[u32]) -> Result<(), CodingError> {
        self.cum.clear();
        self.cum.resize(freqs.len() + 1, 0);
        let mut acc: u64 = 0;
        for (slot, &f) in self.cum[1..].iter_mut().zip(freqs) {
            acc += u64::from(f);
            *slot = acc as u32;
        }
        if acc == 0 || acc > MAX_TOTAL {
            self.cum.clear();
            return Err(CodingError::InvalidTotal { total: acc });
        }
        Ok(())
    }

    /// The number of symbols in the table (0 if it was never built).
    pub fn len(&self) -> usize {
        self.cum.len().saturating_sub(1)
    }

    /// Whether the table has no symbols (it was never built successfully).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sum of all frequencies (0 if the table was never built).
    pub fn total(&self) -> u32 {
        self.cum.last().copied().unwrap_or(0)
    }

    /// The interval `(start, freq)` of `symbol`: it covers
    /// `start..start + freq`. `None` if `symbol` is out of range.
    pub fn interval(&self, symbol: usize) -> Option<(u32, u32)> {
        let start = *self.cum.get(symbol)?;
        let end = *self.cum.get(symbol + 1)?;
        Some((start, end - start))
    }

    /// The symbol whose interval contains `target`: the unique `s` with
    /// `cum[s] <= target < cum[s + 1]`, which always has a nonzero frequency.
    /// `None` if `target >= total()`.
    pub fn find(&self, target: u32) -> Option<usize> {
        if target >= self.total() {
            return None;
        }
        // cum[0] = 0 <= target, so the partition point is at least 1.
        Some(self.cum.partition_point(|&c| c <= target) - 1)
    }
}

/// Encodes symbols, each under its own frequency table, into bytes.
///
/// ```
/// use tenbits_coding::range::{Decoder, Encoder};
/// let freqs = [1, 6, 1];
/// let mut enc = Encoder::new();
/// for s in [1, 1, 0, 2, 1] {
///     enc.encode(s, &freqs).unwrap();
/// }
/// let bytes = enc.finish();
/// let mut dec = Decoder::new(&bytes).unwrap();
/// let back: Vec<usize> = (0..5).map(|_| dec.decode(&freqs).unwrap()).collect();
/// assert_eq!(back, [1, 1, 0, 2, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct Encoder {
    /// Lower end of the interval (below the bytes already shifted out).
    low: u64,
    /// Bit 64 of `low`: a carry not yet propagated into the cache.
    carry: bool,
    /// Width of the interval.
    range: u64,
    /// The last byte shifted out that a carry may still change; `None` before
    /// the first one.
    cache: Option<u8>,
    /// Number of `0xFF` bytes after `cache`, all still waiting for a carry.
    pending_ff: u64,
    /// Finished bytes.
    out: Vec<u8>,
    /// Symbols encoded so far.
    symbols: u64,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    /// A new encoder with an empty output.
    pub fn new() -> Self {
        Self {
            low: 0,
            carry: false,
            range: u64::MAX,
            cache: None,
            pending_ff: 0,
            out: Vec::new(),
            symbols: 0,
        }
    }

    /// Encodes `symbol` under the frequency table `freqs` (any total from 1
    /// to [`MAX_TOTAL`]; tables from
    /// [`quantize_logits`](crate::quantize::quantize_logits) sum to `2^24`).
    ///
    /// Costs O(V) for summing the table; it allocates nothing.
    ///
    /// Fails, leaving the encoder unchanged, if `symbol` is out of range, has
    /// frequency 0, or the table's total is invalid.
    pub fn encode(&mut self, symbol: usize, freqs: &[u32]) -> Result<(), CodingError> {
        let Some(&freq) = freqs.get(symbol) else {
            return Err(CodingError::SymbolOutOfRange {
                symbol,
                len: freqs.len(),
            });
        };
        let start = sum_u32(&freqs[..symbol]);
        let total = start + sum_u32(&freqs[symbol..]);
        if total == 0 || total > MAX_TOTAL {
            return Err(CodingError::InvalidTotal { total });
        }
        if freq == 0 {
            return Err(CodingError::ZeroFrequency { symbol });
        }
        self.encode_interval(start, u64::from(freq), total);
        Ok(())
    }

    /// Encodes `symbol` under a prebuilt cumulative table (O(1)).
    ///
    /// Fails, leaving the encoder unchanged, if `symbol` is out of range, has
    /// frequency 0, or the table was never built.
    pub fn encode_cdf(&mut self, symbol: usize, cdf: &Cdf) -> Result<(), CodingError> {
        if cdf.is_empty() {
            return Err(CodingError::InvalidTotal { total: 0 });
        }
        let Some((start, freq)) = cdf.interval(symbol) else {
            return Err(CodingError::SymbolOutOfRange {
                symbol,
                len: cdf.len(),
            });
        };
        if freq == 0 {
            return Err(CodingError::ZeroFrequency { symbol });
        }
        self.encode_interval(u64::from(start), u64::from(freq), u64::from(cdf.total()));
        Ok(())
    }

    /// Narrows the interval to `start..start + freq` out of `0..total`.
    /// Requires `0 < freq`, `start + freq <= total <= MAX_TOTAL`.
    #[inline]
    fn encode_interval(&mut self, start: u64, freq: u64, total: u64) {
        debug_assert!(freq > 0 && start + freq <= total && total <= MAX_TOTAL);
        // range >= 2^56 and total < 2^32, so r >= 2^24.
        let r = self.range / total;
        let (low, carry) = self.low.overflowing_add(r * start);
        self.low = low;
        // low + range never exceeds 2^65 (see shift_low), so at most one
        // carry is pending at a time.
        self.carry |= carry;
        self.range = r * freq;
        while self.range < RANGE_BOTTOM {
            self.shift_low();
            self.range <<= 8;
        }
        self.symbols += 1;
    }

    /// Moves the top byte of `low` out, into `cache` / the pending `0xFF` run.
    ///
    /// Invariant: `low + range < 2^65` counting the carry bit (the interval's
    /// upper end only shrinks while symbols are encoded, and shifting keeps
    /// the bound), and `low < 2^64` right after a shift. So once `low`
    /// overflows, `low + range < 2^64` and it cannot overflow again before the
    /// next shift: one carry bit is enough.
    fn shift_low(&mut self) {
        if self.low < 0xFF00_0000_0000_0000 || self.carry {
            let c = u8::from(self.carry);
            // With no cache yet, no carry can arrive: the interval started
            // inside [0, 2^64).
            if let Some(b) = self.cache {
                self.out.push(b.wrapping_add(c));
            }
            for _ in 0..self.pending_ff {
                self.out.push(0xFFu8.wrapping_add(c));
            }
            self.pending_ff = 0;
            self.cache = Some((self.low >> 56) as u8);
        } else {
            // Top byte 0xFF: a later carry could still turn it into 0x00.
            self.pending_ff += 1;
        }
        self.low <<= 8;
        self.carry = false;
    }

    /// The number of symbols encoded so far.
    pub fn symbols(&self) -> u64 {
        self.symbols
    }

    /// Bytes of output so far (final bytes plus those still held back for a
    /// possible carry); [`Encoder::finish`] adds at most a few more.
    pub fn bytes_so_far(&self) -> u64 {
        self.out.len() as u64 + u64::from(self.cache.is_some()) + self.pending_ff
    }

    /// Ends the stream and returns the coded bytes.
    ///
    /// Picks the value in the final interval with the most trailing zero
    /// bytes, writes it, and drops trailing zero bytes (the decoder reads
    /// zeros past the end). Encoding nothing gives an empty output.
    pub fn finish(mut self) -> Vec<u8> {
        let lo = (u128::from(self.carry) << 64) | u128::from(self.low);
        let hi = lo + u128::from(self.range); // exclusive
                                              // The shortest n (bytes of low to emit) such that a multiple of
                                              // 2^(64 - 8n) lies in [lo, hi). n = 8 always works (lo itself).
        let (n, value) = (0..=STATE_BYTES)
            .find_map(|n| {
                let mask = (1u128 << (64 - 8 * n)) - 1;
                let v = (lo + mask) & !mask;
                (v < hi).then_some((n, v))
            })
            .unwrap_or((STATE_BYTES, lo));
        self.carry = value >> 64 != 0;
        self.low = value as u64;
        for _ in 0..n {
            self.shift_low();
        }
        // low is now 0 (plus a carry if n == 0): flush cache and pending run.
        self.shift_low();
        while self.out.last() == Some(&0) {
            self.out.pop();
        }
        self.out
    }
}

/// Sum of a slice of `u32` as `u64`, in a shape the compiler vectorises.
#[inline]
fn sum_u32(xs: &[u32]) -> u64 {
    let mut acc = [0u64; 4];
    let mut chunks = xs.chunks_exact(4);
    for c in &mut chunks {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += u64::from(x);
        }
    }
    let rest: u64 = chunks.remainder().iter().map(|&x| u64::from(x)).sum();
    acc.iter().sum::<u64>() + rest
}

/// Decodes symbols written by [`Encoder`], given the same frequency tables
/// in the same order.
#[derive(Debug, Clone)]
pub struct Decoder<'a> {
    data: &'a [u8],
    /// Next byte of `data` to read; may run past the end (zeros are read).
    pos: usize,
    /// The coded value minus the interval's lower end; always `< range`.
    code: u64,
    range: u64,
    /// Scratch cumulative table for [`Decoder::decode`].
    cdf: Cdf,
}

impl<'a> Decoder<'a> {
    /// A decoder reading `data` (output of [`Encoder::finish`]).
    ///
    /// Any input is accepted, including an empty one; errors are reported by
    /// [`Decoder::decode`]. The `Result` leaves room for format checks.
    pub fn new(data: &'a [u8]) -> Result<Self, CodingError> {
        let mut dec = Self {
            data,
            pos: 0,
            code: 0,
            range: u64::MAX,
            cdf: Cdf::new(),
        };
        for _ in 0..STATE_BYTES {
            dec.code = (dec.code << 8) | u64::from(dec.next_byte());
        }
        Ok(dec)
    }

    #[inline]
    fn next_byte(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos = self.pos.saturating_add(1);
        b
    }

    /// Decodes one symbol under the frequency table `freqs`, which must equal
    /// the table the encoder used for this symbol.
    ///
    /// Costs O(V) to build the cumulative table (into scratch space kept in
    /// the decoder, so nothing is allocated after the first call) plus
    /// O(log V) to search it.
    ///
    /// Fails with [`CodingError::InvalidTotal`] for an invalid table and with
    /// [`CodingError::CorruptData`] when the data cannot have been produced by
    /// the encoder with this table.
    pub fn decode(&mut self, freqs: &[u32]) -> Result<usize, CodingError> {
        let mut cdf = std::mem::take(&mut self.cdf);
        let result = cdf.build(freqs).and_then(|()| self.decode_cdf(&cdf));
        self.cdf = cdf;
        result
    }

    /// Decodes one symbol under a prebuilt cumulative table (O(log V)).
    pub fn decode_cdf(&mut self, cdf: &Cdf) -> Result<usize, CodingError> {
        let total = u64::from(cdf.total());
        if total == 0 {
            return Err(CodingError::InvalidTotal { total });
        }
        let r = self.range / total;
        let target = self.code / r;
        if target >= total {
            // The encoder only ever leaves code < r * total.
            return Err(CodingError::CorruptData);
        }
        let symbol = cdf.find(target as u32).ok_or(CodingError::CorruptData)?;
        let (start, freq) = cdf.interval(symbol).ok_or(CodingError::CorruptData)?;
        // start <= target < start + freq, so 0 <= code - r*start < r*freq.
        self.code -= r * u64::from(start);
        self.range = r * u64::from(freq);
        while self.range < RANGE_BOTTOM {
            // code < range < 2^56, so the shift loses nothing.
            self.code = (self.code << 8) | u64::from(self.next_byte());
            self.range <<= 8;
        }
        Ok(symbol)
    }

    /// How many bytes of input have been consumed, counting the zeros read
    /// past the end (so it may exceed the input's length).
    pub fn position(&self) -> usize {
        self.pos
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(symbols: &[(usize, Vec<u32>)]) -> Vec<u8> {
        let mut enc = Encoder::new();
        for (s, f) in symbols {
            enc.encode(*s, f).unwrap();
        }
        let bytes = enc.finish();
        let mut dec = Decoder::new(&bytes).unwrap();
        for (i, (s, f)) in symbols.iter().enumerate() {
            assert_eq!(dec.decode(f).unwrap(), *s, "symbol #{i}");
        }
        bytes
    }

    #[test]
    fn empty_stream() {
        assert!(Encoder::new().finish().is_empty());
    }

    #[test]
    fn certain_symbols_cost_nothing() {
        // A symbol with all the mass carries no information.
        let freqs = [0, 1 << 24, 0];
        let bytes = roundtrip(&vec![(1, freqs.to_vec()); 1000]);
        assert!(bytes.is_empty(), "{bytes:?}");
    }

    #[test]
    fn carries_propagate() {
        // Always choosing the top symbol pushes low up against 0xFF... runs.
        let freqs = vec![(1u32 << 24) - 1, 1];
        let mut syms = vec![(0usize, freqs.clone()); 50];
        syms.extend(vec![(1usize, freqs.clone()); 20]);
        syms.extend(vec![(0usize, freqs.clone()); 50]);
        roundtrip(&syms);
        let mut syms = Vec::new();
        for i in 0..5000 {
            syms.push((usize::from(i % 7 != 0), vec![1, u32::MAX - 1]));
        }
        roundtrip(&syms);
    }

    #[test]
    fn extreme_totals() {
        roundtrip(&[
            (0, vec![1]),
            (0, vec![u32::MAX]),
            (1, vec![1, u32::MAX - 1]),
            (0, vec![1, u32::MAX - 1]),
        ]);
    }

    #[test]
    fn errors_leave_encoder_usable() {
        let mut enc = Encoder::new();
        assert_eq!(
            enc.encode(3, &[1, 2, 3]),
            Err(CodingError::SymbolOutOfRange { symbol: 3, len: 3 })
        );
        assert_eq!(
            enc.encode(1, &[1, 0, 3]),
            Err(CodingError::ZeroFrequency { symbol: 1 })
        );
        assert_eq!(
            enc.encode(0, &[0, 0]),
            Err(CodingError::InvalidTotal { total: 0 })
        );
        assert_eq!(
            enc.encode(0, &[u32::MAX, 1]),
            Err(CodingError::InvalidTotal { total: 1 << 32 })
        );
        assert_eq!(
            enc.encode_cdf(0, &Cdf::new()),
            Err(CodingError::InvalidTotal { total: 0 })
        );
        enc.encode(2, &[1, 2, 3]).unwrap();
        assert_eq!(enc.symbols(), 1);
        let bytes = enc.finish();
        let mut dec = Decoder::new(&bytes).unwrap();
        assert_eq!(
            dec.decode(&[0, 0]),
            Err(CodingError::InvalidTotal { total: 0 })
        );
        assert_eq!(dec.decode(&[1, 2, 3]), Ok(2));
    }

    #[test]
    fn cdf_lookup() {
        let mut cdf = Cdf::new();
        assert!(cdf.is_empty());
        assert_eq!(cdf.find(0), None);
        cdf.build(&[0, 3, 0, 0, 2, 0]).unwrap();
        assert_eq!(cdf.len(), 6);
        assert_eq!(cdf.total(), 5);
        let found: Vec<_> = (0..6).map(|t| cdf.find(t)).collect();
        assert_eq!(found, [Some(1), Some(1), Some(1), Some(4), Some(4), None]);
        assert_eq!(cdf.interval(4), Some((3, 2)));
        assert_eq!(cdf.interval(6), None);
        assert!(cdf.build(&[]).is_err());
        assert!(cdf.is_empty());
    }

    #[test]
    fn cdf_variants_match_slice_variants() {
        let freqs = [5u32, 1, 9, 1, 1];
        let mut cdf = Cdf::new();
        cdf.build(&freqs).unwrap();
        let syms = [2usize, 0, 4, 2, 2, 1, 3];
        let mut a = Encoder::new();
        let mut b = Encoder::new();
        for &s in &syms {
            a.encode(s, &freqs).unwrap();
            b.encode_cdf(s, &cdf).unwrap();
        }
        let bytes = a.finish();
        assert_eq!(bytes, b.finish());
        let mut dec = Decoder::new(&bytes).unwrap();
        for &s in &syms {
            assert_eq!(dec.decode_cdf(&cdf), Ok(s));
        }
    }

    /// A deterministic xorshift generator, so the overhead test is
    /// reproducible without extra dependencies.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn overhead_is_a_few_bytes() {
        use crate::quantize::{freq_bits, quantize_logits};
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut enc = Encoder::new();
        let mut tables = Vec::new();
        let mut ideal_bits = 0.0;
        let mut freqs = Vec::new();
        for i in 0..10_000 {
            let v = 2 + (rng.next() % 500) as usize;
            // Skewed: a random temperature between 0.2 and 5.
            let temp = 0.2 + 4.8 * rng.unit();
            let logits: Vec<f32> = (0..v).map(|_| (rng.unit() * 10.0 / temp) as f32).collect();
            quantize_logits(&logits, &mut freqs);
            // Sample the symbol from the table itself.
            let mut x = rng.next() % u64::from(crate::quantize::TOTAL);
            let mut s = 0;
            while x >= u64::from(freqs[s]) {
                x -= u64::from(freqs[s]);
                s += 1;
            }
            // Throw in some pathological symbols.
            if i % 1000 == 0 {
                s = freqs.iter().enumerate().min_by_key(|&(_, f)| *f).unwrap().0;
            }
            ideal_bits += freq_bits(&freqs, s);
            enc.encode(s, &freqs).unwrap();
            tables.push((s, freqs.clone()));
        }
        let bytes = enc.finish();
        let ideal = ideal_bits / 8.0;
        let size = bytes.len() as f64;
        eprintln!("10,000 symbols: {size} bytes, information content {ideal:.2} bytes");
        assert!(size <= ideal * 1.001 + 8.0, "size {size} ideal {ideal}");
        // And much tighter in fact: within 2 bytes.
        assert!(size <= ideal + 2.0, "size {size} ideal {ideal}");
        assert!(
            size >= ideal - 1.0,
            "size {size} below entropy bound {ideal}?"
        );
        let mut dec = Decoder::new(&bytes).unwrap();
        for (s, f) in &tables {
            assert_eq!(dec.decode(f).unwrap(), *s);
        }
    }

    fn table_and_symbol() -> impl Strategy<Value = (usize, Vec<u32>)> {
        prop_oneof![
            // Small tables with arbitrary frequencies (some zero).
            prop::collection::vec(prop_oneof![Just(0u32), 1u32..10, 1u32..1 << 24], 1..20),
            // Very skewed tables.
            prop::collection::vec(
                prop_oneof![3 => Just(1u32), 1 => (1u32 << 20)..(1 << 24)],
                1..40
            ),
        ]
        .prop_filter("needs a nonzero entry", |f| f.iter().any(|&x| x > 0))
        .prop_flat_map(|f| {
            let nonzero: Vec<usize> = (0..f.len()).filter(|&i| f[i] > 0).collect();
            (prop::sample::select(nonzero), Just(f))
        })
    }

    proptest! {
        #[test]
        fn prop_roundtrip(symbols in prop::collection::vec(table_and_symbol(), 0..300)) {
            let mut enc = Encoder::new();
            for (s, f) in &symbols {
                enc.encode(*s, f).unwrap();
            }
            prop_assert_eq!(enc.symbols(), symbols.len() as u64);
            let estimate = enc.bytes_so_far();
            let bytes = enc.finish();
            prop_assert!(bytes.len() as u64 <= estimate + 9);
            prop_assert!(bytes.last() != Some(&0), "trailing zeros must be trimmed");
            let mut dec = Decoder::new(&bytes).unwrap();
            for (i, (s, f)) in symbols.iter().enumerate() {
                prop_assert_eq!(dec.decode(f).unwrap(), *s, "symbol #{}", i);
            }
        }

        #[test]
        fn prop_garbage_never_panics(
            data in prop::collection::vec(any::<u8>(), 0..64),
            tables in prop::collection::vec(table_and_symbol(), 1..50),
        ) {
            let mut dec = Decoder::new(&data).unwrap();
            for _ in 0..10 {
                for (_, f) in &tables {
                    match dec.decode(f) {
                        Ok(s) => prop_assert!(s < f.len() && f[s] > 0),
                        Err(e) => prop_assert_eq!(e, CodingError::CorruptData),
                    }
                }
            }
        }

        #[test]
        fn prop_corrupted_stream_never_panics(
            symbols in prop::collection::vec(table_and_symbol(), 1..100),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            cut in any::<prop::sample::Index>(),
        ) {
            let mut enc = Encoder::new();
            for (s, f) in &symbols {
                enc.encode(*s, f).unwrap();
            }
            let bytes = enc.finish();
            let mut flipped = bytes.clone();
            if !flipped.is_empty() {
                let i = flip.index(flipped.len());
                flipped[i] ^= 1 << bit;
            }
            let truncated = &bytes[..cut.index(bytes.len() + 1)];
            for data in [&flipped[..], truncated] {
                let mut dec = Decoder::new(data).unwrap();
                for (_, f) in &symbols {
                    match dec.decode(f) {
                        Ok(s) => prop_assert!(s < f.len() && f[s] > 0),
                        Err(e) => prop_assert_eq!(e, CodingError::CorruptData),
                    }
                }
            }
        }
    }
}
