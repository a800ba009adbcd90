//! Candidate bisection for short answers (beyond the paper).
//!
//! The asker scores a list of candidate answers (multiple-choice letters, a
//! number, a word) with its own model and sorts them by probability. Each
//! question is "is the answer among the first part of the remaining
//! candidates?", split so that part carries about half of the asker's
//! remaining mass: under the asker's own model every bit is worth about one
//! bit, so likely answers are reached in few bits. The answerer scores the
//! same candidates from its view and answers yes iff its best candidate is
//! in that part. After the bits (or when one candidate is left) the asker
//! takes the top remaining candidate.

use serde::{Deserialize, Serialize};

use crate::prompts::{self, parse_list};
use crate::types::{Knowledge, Problem};
use crate::{check_count, eval, generate_one, ChatModel, QaError, Sampling};

/// The outcome of [`bisect`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bisection {
    /// The candidates, most probable for the asker first.
    pub candidates: Vec<String>,
    /// The asker's probabilities of `candidates` (normalized over them).
    pub asker_probs: Vec<f64>,
    /// The answerer's bits: `true` = "in the first part".
    pub bits: Vec<bool>,
    /// The candidates left after the bits: `candidates[remaining]`.
    pub remaining: std::ops::Range<usize>,
    /// The chosen answer: the asker's top remaining candidate.
    pub answer: String,
}

/// Asks the asker for up to `k` distinct candidate answers (parsed from a
/// numbered list, duplicates under [`eval::normalize`] dropped).
pub fn list_candidates(
    asker: &mut dyn ChatModel,
    problem: &Problem,
    k: usize,
    sampling: &Sampling,
) -> Result<Vec<String>, QaError> {
    let reply = generate_one(asker, prompts::candidates(&problem.text, k), sampling)?;
    let mut seen = std::collections::HashSet::new();
    let mut out = parse_list(&reply);
    out.retain(|c| seen.insert(eval::normalize(c)));
    out.truncate(k);
    Ok(out)
}

/// Bisects `candidates` with at most `max_bits` answers. The answerer
/// scores them from the problem plus the reference ([`Knowledge::Reference`])
/// or from the problem alone ([`Knowledge::OwnSolution`]: its scores are its
/// own solution; [`Knowledge::ReferenceElseOwn`] takes the reference where
/// the problem has one).
pub fn bisect(
    asker: &mut dyn ChatModel,
    answerer: &mut dyn ChatModel,
    problem: &Problem,
    candidates: &[String],
    max_bits: usize,
    knowledge: Knowledge,
) -> Result<Bisection, QaError> {
    if candidates.is_empty() {
        return Err(QaError::Invalid("bisection needs at least one candidate"));
    }
    let reference = match knowledge {
        Knowledge::Reference => Some(
            problem
                .reference
                .as_deref()
                .ok_or(QaError::Invalid("no reference answer"))?,
        ),
        Knowledge::ReferenceElseOwn => problem.reference.as_deref(),
        Knowledge::OwnSolution => None,
    };
    let replies: Vec<String> = candidates
        .iter()
        .map(|c| prompts::candidate_reply(c))
        .collect();
    let score = |model: &mut dyn ChatModel, reference| {
        let conversation = prompts::solve(problem.task, &problem.text, reference);
        let out = model.score_candidates(&conversation, &replies)?;
        check_count(model, replies.len(), out)
    };
    let probs = softmax(&score(asker, None)?);
    let theirs = score(answerer, reference)?;
    let best = (0..theirs.len()).fold(0, |b, i| if theirs[i] > theirs[b] { i } else { b });
    Ok(split_toward(candidates, &probs, best, max_bits))
}

/// The asker's probabilities of `candidates` as its reply to the problem
/// (normalized over them): the order [`bisect_to`] asks in.
pub fn asker_probabilities(
    asker: &mut dyn ChatModel,
    problem: &Problem,
    candidates: &[String],
) -> Result<Vec<f64>, QaError> {
    let replies: Vec<String> = candidates
        .iter()
        .map(|c| prompts::candidate_reply(c))
        .collect();
    let conversation = prompts::solve(problem.task, &problem.text, None);
    let out = asker.score_candidates(&conversation, &replies)?;
    Ok(softmax(&check_count(asker, replies.len(), out)?))
}

/// Bisects `candidates` toward `best`, the answerer's own choice among
/// them (made elsewhere, e.g. by comparing them with its own solution),
/// asking in the order of the asker's `probs`: the bits the answerer would
/// send, at most `max_bits`.
pub fn bisect_to(
    candidates: &[String],
    probs: &[f64],
    best: usize,
    max_bits: usize,
) -> Result<Bisection, QaError> {
    if candidates.is_empty() || probs.len() != candidates.len() || best >= candidates.len() {
        return Err(QaError::Invalid(
            "bisection needs candidates, one probability each and a choice among them",
        ));
    }
    Ok(split_toward(candidates, probs, best, max_bits))
}

/// The bisection itself: halve the asker's remaining mass each question.
fn split_toward(candidates: &[String], probs: &[f64], best: usize, max_bits: usize) -> Bisection {
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]).then(a.cmp(&b)));
    let (mut lo, mut hi, mut bits) = (0, order.len(), Vec::new());
    while bits.len() < max_bits && hi - lo > 1 {
        let half = order[lo..hi].iter().map(|&i| probs[i]).sum::<f64>() / 2.0;
        let (mut acc, mut split, mut gap) = (0.0, lo + 1, f64::INFINITY);
        for j in lo..hi - 1 {
            acc += probs[order[j]];
            if (acc - half).abs() < gap {
                (gap, split) = ((acc - half).abs(), j + 1);
            }
        }
        let yes = order[lo..split].contains(&best);
        bits.push(yes);
        (lo, hi) = if yes { (lo, split) } else { (split, hi) };
    }
    Bisection {
        answer: candidates[order[lo]].clone(),
        candidates: order.iter().map(|&i| candidates[i].clone()).collect(),
        asker_probs: order.iter().map(|&i| probs[i]).collect(),
        bits,
        remaining: lo..hi,
    }
}

/// Probabilities from log-probabilities (uniform if none is finite).
fn softmax(logp: &[f64]) -> Vec<f64> {
    let max = logp.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return vec![1.0 / logp.len() as f64; logp.len()];
    }
    let e: Vec<f64> = logp.iter().map(|&l| (l - max).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|x| x / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Fake;
    use crate::Task;

    const OPTIONS: [&str; 8] = ["40", "41", "42", "43", "44", "45", "46", "47"];

    fn candidates() -> Vec<String> {
        OPTIONS.iter().map(|s| s.to_string()).collect()
    }
    fn problem(reference: &str) -> Problem {
        Problem::new(Task::ShortAnswer, "What is 6 x 7?").with_reference(reference)
    }

    #[test]
    fn bisection_finds_the_answerers_choice() {
        let (mut s, mut l) = (Fake::new("s", "41", &[]), Fake::new("l", "0", &[]));
        let b = bisect(
            &mut s,
            &mut l,
            &problem("42"),
            &candidates(),
            8,
            Knowledge::Reference,
        )
        .unwrap();
        assert_eq!(b.candidates[0], "41");
        assert!(b.asker_probs[0] > 0.5 && b.asker_probs.windows(2).all(|w| w[0] >= w[1]));
        assert!(
            !b.bits[0],
            "the first question isolates the asker's favourite"
        );
        assert_eq!(b.answer, "42");
        assert!(b.bits.len() <= 4 && b.remaining.len() == 1, "{b:?}");

        // The asker's favourite is right: one bit.
        let b = bisect(
            &mut s,
            &mut l,
            &problem("41"),
            &candidates(),
            8,
            Knowledge::Reference,
        )
        .unwrap();
        assert_eq!((b.answer.as_str(), b.bits.as_slice()), ("41", &[true][..]));

        // No bits: the asker's favourite; one bit: the top of the other part.
        let b = bisect(
            &mut s,
            &mut l,
            &problem("42"),
            &candidates(),
            0,
            Knowledge::Reference,
        )
        .unwrap();
        assert_eq!((b.answer.as_str(), b.remaining.len()), ("41", 8));
        let b = bisect(
            &mut s,
            &mut l,
            &problem("47"),
            &candidates(),
            1,
            Knowledge::Reference,
        )
        .unwrap();
        assert_eq!((b.answer.as_str(), b.bits.len()), ("40", 1));

        // From the answerer's own solution, without a reference.
        let mut l = Fake::new("l", "45", &[]);
        let p = Problem::new(Task::ShortAnswer, "?");
        let b = bisect(&mut s, &mut l, &p, &candidates(), 8, Knowledge::OwnSolution).unwrap();
        assert_eq!(b.answer, "45");
        assert!(bisect(&mut s, &mut l, &p, &candidates(), 8, Knowledge::Reference).is_err());
        assert!(bisect(&mut s, &mut l, &p, &[], 8, Knowledge::OwnSolution).is_err());
    }

    #[test]
    fn candidates_are_listed_without_duplicates() {
        let mut s = Fake::new("s", "41", &["40", "The 40!", "41", "42"]);
        let c = list_candidates(&mut s, &problem("42"), 3, &Sampling::default()).unwrap();
        assert_eq!(c, ["40", "41", "42"]);
    }
}
