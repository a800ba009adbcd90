//! Accuracy with a Wilson interval, the gap recovered and the paired
//! difference from a baseline with bootstrap intervals, means.

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// The 0.975 quantile of the standard normal distribution.
pub const Z95: f64 = 1.959_963_984_540_054;

/// A closed interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Interval {
    /// Lower end.
    pub lo: f64,
    /// Upper end.
    pub hi: f64,
}

/// An accuracy with its 95% Wilson score interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Accuracy {
    /// Correct answers.
    pub correct: usize,
    /// Answers.
    pub total: usize,
    /// `correct / total`.
    pub rate: f64,
    /// 95% Wilson interval.
    pub ci95: Interval,
}

/// Accuracy of `correct` out of `total`; `None` when `total` is 0 or less
/// than `correct`.
pub fn accuracy(correct: usize, total: usize) -> Option<Accuracy> {
    (total > 0 && correct <= total).then(|| Accuracy {
        correct,
        total,
        rate: correct as f64 / total as f64,
        ci95: wilson(correct, total, Z95),
    })
}

/// The Wilson score interval for `k` successes in `n` trials at normal
/// quantile `z`: `(p + z²/2n ± z √(p(1−p)/n + z²/4n²)) / (1 + z²/n)`,
/// clamped to [0, 1]. `[0, 1]` for `n = 0`.
pub fn wilson(k: usize, n: usize, z: f64) -> Interval {
    if n == 0 {
        return Interval { lo: 0.0, hi: 1.0 };
    }
    let n = n as f64;
    let p = k as f64 / n;
    let z2 = z * z;
    let denom = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denom;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denom;
    Interval {
        lo: (center - half).max(0.0),
        hi: (center + half).min(1.0),
    }
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bootstrap {
    /// Resamples.
    pub resamples: usize,
    /// Seed of the ChaCha8 stream that draws them.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            resamples: 2000,
            seed: 0,
        }
    }
}

/// The gap recovered, `(method − small) / (large − small)` in number
/// correct, with its paired bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GapRecovered {
    /// On all problems.
    pub point: f64,
    /// 95% percentile interval over the resamples where it is defined;
    /// `None` if it is defined in none.
    pub ci95: Option<Interval>,
    /// Resamples where large == small (left out of the interval).
    pub undefined_resamples: usize,
}

/// The gap recovered from per-problem correctness of the small model alone,
/// the method, and the large model alone (same problems, same order).
/// Resamples problems with replacement ([`Bootstrap`]), keeping the three
/// results of a problem together. `Ok(None)` when large and small get the
/// same number right (including no problems); an error if the lengths
/// differ.
pub fn gap_recovered(
    small: &[bool],
    method: &[bool],
    large: &[bool],
    bootstrap: Bootstrap,
) -> Result<Option<GapRecovered>> {
    let n = small.len();
    if method.len() != n || large.len() != n {
        return Err(EvalError::Invalid(format!(
            "gap recovered needs one result per problem from each: small {n}, method {}, large {}",
            method.len(),
            large.len()
        )));
    }
    let count = |v: &[bool]| v.iter().filter(|&&b| b).count() as f64;
    let gap = |s: f64, m: f64, l: f64| (l != s).then(|| (m - s) / (l - s));
    let Some(point) = gap(count(small), count(method), count(large)) else {
        return Ok(None);
    };
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap.seed);
    let mut ratios = Vec::with_capacity(bootstrap.resamples);
    let mut undefined = 0;
    for _ in 0..bootstrap.resamples {
        let (mut s, mut m, mut l) = (0u32, 0u32, 0u32);
        for _ in 0..n {
            let i = pick(&mut rng, n);
            s += u32::from(small[i]);
            m += u32::from(method[i]);
            l += u32::from(large[i]);
        }
        match gap(f64::from(s), f64::from(m), f64::from(l)) {
            Some(r) => ratios.push(r),
            None => undefined += 1,
        }
    }
    ratios.sort_by(f64::total_cmp);
    let ci95 = (!ratios.is_empty()).then(|| Interval {
        lo: quantile(&ratios, 0.025),
        hi: quantile(&ratios, 0.975),
    });
    Ok(Some(GapRecovered {
        point,
        ci95,
        undefined_resamples: undefined,
    }))
}

/// A paired difference in accuracy, `method − baseline` in points of
/// share correct, with its paired bootstrap interval: the test of "beats
/// the baseline" on the same problems, which two overlapping Wilson
/// intervals understate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    /// Problems both have a result on.
    pub problems: usize,
    /// `(method correct − baseline correct) / problems`.
    pub point: f64,
    /// 95% percentile interval over the resamples.
    pub ci95: Interval,
}

/// The paired difference of `method` over `baseline` (per-problem
/// correctness, same problems, same order), resampling problems with
/// replacement ([`Bootstrap`]). `Ok(None)` for no problems; an error if
/// the lengths differ.
pub fn paired_difference(
    method: &[bool],
    baseline: &[bool],
    bootstrap: Bootstrap,
) -> Result<Option<Difference>> {
    let n = method.len();
    if baseline.len() != n {
        return Err(EvalError::Invalid(format!(
            "a paired difference needs one result per problem from each: method {n}, baseline {}",
            baseline.len()
        )));
    }
    if n == 0 {
        return Ok(None);
    }
    let delta: Vec<i32> = method
        .iter()
        .zip(baseline)
        .map(|(&m, &b)| i32::from(m) - i32::from(b))
        .collect();
    let share = |sum: i32| f64::from(sum) / n as f64;
    let mut rng = ChaCha8Rng::seed_from_u64(bootstrap.seed);
    let mut shares: Vec<f64> = (0..bootstrap.resamples)
        .map(|_| share((0..n).map(|_| delta[pick(&mut rng, n)]).sum()))
        .collect();
    shares.sort_by(f64::total_cmp);
    Ok(Some(Difference {
        problems: n,
        point: share(delta.iter().sum()),
        ci95: Interval {
            lo: quantile(&shares, 0.025),
            hi: quantile(&shares, 0.975),
        },
    }))
}

/// A uniform index below `n` (multiply-shift: no division, no modulo).
fn pick(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// The `q` quantile of sorted values, interpolating linearly between order
/// statistics (the "type 7" rule of R and NumPy's default). `NaN` for no
/// values.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    match sorted.len() {
        0 => f64::NAN,
        1 => sorted[0],
        n => {
            let h = (n - 1) as f64 * q.clamp(0.0, 1.0);
            let lo = h.floor() as usize;
            let hi = (lo + 1).min(n - 1);
            sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
        }
    }
}

/// The mean; `None` for no values.
pub fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 5e-5
    }

    #[test]
    fn wilson_against_hand_values() {
        // 8/10: p = .8, z²/n = .38415; center = (.8 + .19207)/1.38415 =
        // .71674; half = 1.96·√(.016 + .0096037)/1.38415 = .22658.
        let w = wilson(8, 10, Z95);
        assert!(close(w.lo, 0.49016) && close(w.hi, 0.94331), "{w:?}");
        // 0/10: [0, z²/n / (1 + z²/n)] = [0, .38415/1.38415].
        let w = wilson(0, 10, Z95);
        assert!(close(w.lo, 0.0) && close(w.hi, 0.27753), "{w:?}");
        let w = wilson(10, 10, Z95);
        assert!(close(w.lo, 0.72247) && close(w.hi, 1.0), "{w:?}");
        // 50/100: .5 ± 1.96·√(.0025 + .000096)/1.038415.
        let w = wilson(50, 100, Z95);
        assert!(close(w.lo, 0.40383) && close(w.hi, 0.59617), "{w:?}");
        assert_eq!(wilson(0, 0, Z95), Interval { lo: 0.0, hi: 1.0 });
        let a = accuracy(8, 10).unwrap();
        assert_eq!((a.correct, a.total, a.rate), (8, 10, 0.8));
        assert_eq!(accuracy(0, 0), None);
        assert_eq!(accuracy(3, 2), None);
    }

    #[test]
    fn gap_against_hand_values() {
        let b = Bootstrap::default();
        let t = true;
        let f = false;
        // small 1/4, method 2/4, large 3/4: (2 − 1)/(3 − 1).
        let g = gap_recovered(&[t, f, f, f], &[t, t, f, f], &[t, t, t, f], b)
            .unwrap()
            .unwrap();
        assert_eq!(g.point, 0.5);
        let ci = g.ci95.unwrap();
        assert!(ci.lo <= 0.5 && 0.5 <= ci.hi, "{ci:?}");
        assert!(g.undefined_resamples > 0 && g.undefined_resamples < b.resamples);
        // Same seed, same interval; another seed, (almost surely) another.
        let again = gap_recovered(&[t, f, f, f], &[t, t, f, f], &[t, t, t, f], b).unwrap();
        assert_eq!(again, Some(g));
        // The method does exactly what the large model does: 1 in every
        // resample; exactly what the small one does: 0.
        let small = [t, f, f, f, t, f];
        let large = [t, t, t, f, t, t];
        let g = gap_recovered(&small, &large, &large, b).unwrap().unwrap();
        assert_eq!(
            (g.point, g.ci95),
            (1.0, Some(Interval { lo: 1.0, hi: 1.0 }))
        );
        let g = gap_recovered(&small, &small, &large, b).unwrap().unwrap();
        assert_eq!(
            (g.point, g.ci95),
            (0.0, Some(Interval { lo: 0.0, hi: 0.0 }))
        );
        // Undefined when large == small.
        assert_eq!(gap_recovered(&[t, f], &[t, t], &[f, t], b).unwrap(), None);
        assert_eq!(gap_recovered(&[], &[], &[], b).unwrap(), None);
        assert!(gap_recovered(&[t], &[t, f], &[t], b).is_err());
    }

    #[test]
    fn paired_difference_by_hand() {
        let b = Bootstrap::default();
        let (t, f) = (true, false);
        // method 3/4, baseline 1/4 on the same problems: +2/4.
        let d = paired_difference(&[t, t, t, f], &[t, f, f, f], b)
            .unwrap()
            .unwrap();
        assert_eq!((d.problems, d.point), (4, 0.5));
        assert!(d.ci95.lo <= 0.5 && 0.5 <= d.ci95.hi, "{d:?}");
        // Per-problem deltas 0, +1, +1, 0: every resample lies in [0, 1].
        assert!(d.ci95.lo >= 0.0 && d.ci95.hi <= 1.0, "{d:?}");
        // Identical results: no difference in any resample.
        let same = [t, f, t, f, f];
        let d = paired_difference(&same, &same, b).unwrap().unwrap();
        assert_eq!((d.point, d.ci95), (0.0, Interval { lo: 0.0, hi: 0.0 }));
        // Always right where the baseline is always wrong: +1 everywhere.
        let d = paired_difference(&[t; 6], &[f; 6], b).unwrap().unwrap();
        assert_eq!((d.point, d.ci95), (1.0, Interval { lo: 1.0, hi: 1.0 }));
        // Worse than the baseline gives a negative difference.
        let d = paired_difference(&[f, f, t], &[t, t, t], b)
            .unwrap()
            .unwrap();
        assert!(
            (d.point + 2.0 / 3.0).abs() < 1e-12 && d.ci95.hi <= 0.0,
            "{d:?}"
        );
        assert_eq!(paired_difference(&[], &[], b).unwrap(), None);
        assert!(paired_difference(&[t], &[t, f], b).is_err());
    }

    #[test]
    fn quantile_and_mean_by_hand() {
        let v = [1.0, 2.0, 3.0, 4.0, 5.0];
        assert_eq!(quantile(&v, 0.5), 3.0);
        assert_eq!(quantile(&v, 0.25), 2.0);
        // h = 4 · .975 = 3.9: 4 + .9 · (5 − 4).
        assert!((quantile(&v, 0.975) - 4.9).abs() < 1e-12);
        assert!((quantile(&v, 0.025) - 1.1).abs() < 1e-12);
        assert!(quantile(&[], 0.5).is_nan());
        assert_eq!(mean(&[10.0, 4.0, 6.0, 10.0]), Some(7.5));
        assert_eq!(mean(&[]), None);
    }
}
