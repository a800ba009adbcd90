//! What a run's results say: accuracy per method with intervals, the share
//! of the small-to-large gap recovered, bits sent, compression ratios and
//! compute, on all problems and on the published filter; and how the askers
//! used their questions (padding, yes, predictions, revisions, flips).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::results::{Results, RunKey};
use crate::run::{Method, Record};
use crate::stats::{
    accuracy, gap_recovered, paired_difference, Accuracy, Bootstrap, Difference, GapRecovered,
};

/// Facts about the models that turn tokens into ratios and FLOPs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ModelFacts {
    /// log2 of the large model's vocabulary: the bits of one of its tokens
    /// sent plainly (the published ratio's denominator per token).
    pub large_vocab_bits: f64,
    /// Multiply-accumulates per token of the small model (2 × = FLOPs).
    pub small_macs_per_token: f64,
    /// Multiply-accumulates per token of the large model.
    pub large_macs_per_token: f64,
}

/// One method's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MethodSummary {
    /// The method.
    pub method: String,
    /// Problems with a result for it (and for `small` and `large`).
    pub problems: usize,
    /// Right answers.
    pub correct: usize,
    /// Accuracy with its 95% Wilson interval.
    pub accuracy: Option<Accuracy>,
    /// Final replies cut off by the token limit.
    pub truncated: usize,
    /// (method − small) / (large − small), with a paired bootstrap interval.
    pub gap: Option<GapRecovered>,
    /// Accuracy minus BLC's on the problems both ran, with a paired
    /// bootstrap interval: whether the bits beat spending the same
    /// questions on the small model alone. `None` for BLC itself or
    /// without BLC results.
    pub vs_blc: Option<Difference>,
    /// Accuracy minus `tested`'s, likewise: on code, whether the bits beat
    /// the receiver running its own samples on the prompt's examples for
    /// free. `None` for `tested` itself or without its results.
    pub vs_tested: Option<Difference>,
    /// Problems where one of the method's candidates is right, of those
    /// whose coverage is known: the most any answerer could pick from them.
    /// For short answers and options the oracle view reaches it, but for
    /// candidates right only once graded. `None` for methods without
    /// candidates.
    pub covered: Option<Accuracy>,
    /// Mean one-bit answers sent.
    pub bits: f64,
    /// Mean bits actually needed with coding (`coded`), else `bits`.
    pub sent_bits: f64,
    /// Bits over the large model's response in tokens × log2(vocabulary):
    /// the published compression ratio.
    pub ratio_tokens: Option<f64>,
    /// Bits over the large model's response in bits (8 × its bytes).
    pub ratio_bytes: Option<f64>,
    /// Mean tokens through the small model (its share of the work).
    pub small_tokens: f64,
    /// Mean tokens through the large model.
    pub large_tokens: f64,
    /// Mean estimated FLOPs, both models (2 × MACs per token × tokens).
    pub flops: f64,
    /// Mean wall seconds this method added.
    pub wall_seconds: f64,
    /// How the asker used its questions, for methods that ask (`blc`,
    /// `qa`, `qa+`, `coded`).
    pub asker: Option<AskerSummary>,
}

/// How an asker used its questions over a method's sessions: where the
/// bits were lost before the answerer was asked, and whether the revision
/// moved the small model's draft.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AskerSummary {
    /// Sessions with the asker's notes.
    pub sessions: usize,
    /// Questions put (one bit each).
    pub questions: usize,
    /// Questions the asker did not write (filled with the fallback).
    pub padded: usize,
    /// Answers that were "yes".
    pub yes: usize,
    /// Answers the asker's own P(yes) predicted right, of the answers it
    /// predicted (`coded` only).
    pub predicted: Option<(usize, usize)>,
    /// Sessions whose revision differs from the draft.
    pub revised: usize,
    /// Sessions right where the small model's draft was wrong.
    pub to_right: usize,
    /// Sessions wrong where the small model's draft was right.
    pub to_wrong: usize,
}

/// A run's figures, all problems and the published filter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// The benchmark.
    pub benchmark: String,
    /// Problems with any result.
    pub problems: usize,
    /// Every method on every problem that has `small` and `large`.
    pub all: Vec<MethodSummary>,
    /// The same on the problems not both models solve alone.
    pub filtered: Vec<MethodSummary>,
    /// Problems in the filtered set.
    pub filtered_problems: usize,
    /// The answerer alone on claims of known truth, on the problems the
    /// large model solves alone (if `probe` ran).
    pub probe: Option<ProbeSummary>,
}

/// The answerer on claims of known truth.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProbeSummary {
    /// Claims put (two per problem: the gold and a wrong answer).
    pub claims: usize,
    /// Share answered right, with its interval.
    pub accuracy: Option<Accuracy>,
    /// Share of "yes" answers (0.5 if unbiased).
    pub yes_rate: f64,
    /// Mean P(yes) on true claims.
    pub p_yes_true: f64,
    /// Mean P(yes) on false claims.
    pub p_yes_false: f64,
}

/// The figures of the results in `results` whose key matches `matches`
/// (same models, prompt version, settings and benchmark; the method and
/// problem vary). `covers` says, where it can, whether one of a result's
/// candidates is right ([`covers_gold`](crate::run::covers_gold) needs the
/// benchmark, which a summary does not).
pub fn summarize(
    results: &Results<Record>,
    matches: impl Fn(&RunKey) -> bool,
    covers: impl Fn(&RunKey) -> Option<bool>,
    facts: ModelFacts,
) -> Summary {
    let mut by: BTreeMap<String, BTreeMap<String, &Record>> = BTreeMap::new();
    let mut covered: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    let mut benchmark = String::new();
    for (key, record) in results.latest() {
        if matches(key) {
            benchmark = key.benchmark.clone();
            by.entry(key.method.clone())
                .or_default()
                .insert(key.problem.clone(), record);
            if let Some(c) = covers(key) {
                covered
                    .entry(key.method.clone())
                    .or_default()
                    .insert(key.problem.clone(), c);
            }
        }
    }
    let problems: BTreeSet<&String> = by.values().flat_map(|m| m.keys()).collect();
    let base: Vec<String> = match (by.get("small"), by.get("large")) {
        (Some(s), Some(l)) => s.keys().filter(|p| l.contains_key(*p)).cloned().collect(),
        _ => Vec::new(),
    };
    let solved_by_both = |p: &String| by["small"][p].correct && by["large"][p].correct;
    let filtered: Vec<String> = base
        .iter()
        .filter(|p| !solved_by_both(p))
        .cloned()
        .collect();
    let rows = |set: &[String]| {
        Method::ALL
            .iter()
            .filter(|m| **m != Method::Probe)
            .filter_map(|m| by.get(m.name()).map(|r| (m.name(), r)))
            .map(|(name, records)| {
                let mut row = method_summary(name, records, &by, set, facts);
                row.covered = covered.get(name).and_then(|c| {
                    let known: Vec<bool> = set.iter().filter_map(|p| c.get(p).copied()).collect();
                    accuracy(known.iter().filter(|c| **c).count(), known.len())
                });
                row
            })
            .collect()
    };
    let probe = by.get("probe").map(|records| {
        let claims: Vec<_> = base
            .iter()
            .filter(|p| by["large"][*p].correct)
            .filter_map(|p| records.get(p))
            .flat_map(|r| &r.probe)
            .collect();
        let right = claims.iter().filter(|c| c.bit == c.truth).count();
        let mean = |truth: bool| {
            let ps: Vec<f64> = claims
                .iter()
                .filter(|c| c.truth == truth)
                .map(|c| c.p_yes)
                .collect();
            ps.iter().sum::<f64>() / ps.len().max(1) as f64
        };
        ProbeSummary {
            claims: claims.len(),
            accuracy: accuracy(right, claims.len()),
            yes_rate: claims.iter().filter(|c| c.bit).count() as f64 / claims.len().max(1) as f64,
            p_yes_true: mean(true),
            p_yes_false: mean(false),
        }
    });
    Summary {
        benchmark,
        problems: problems.len(),
        all: rows(&base),
        filtered: rows(&filtered),
        filtered_problems: filtered.len(),
        probe,
    }
}

fn method_summary(
    name: &str,
    records: &BTreeMap<String, &Record>,
    by: &BTreeMap<String, BTreeMap<String, &Record>>,
    set: &[String],
    facts: ModelFacts,
) -> MethodSummary {
    let problems: Vec<&String> = set.iter().filter(|p| records.contains_key(*p)).collect();
    let n = problems.len();
    let rec = |p: &String| records[p];
    let correct = problems.iter().filter(|p| rec(p).correct).count();
    let outcome = |m: &str| -> Vec<bool> { problems.iter().map(|p| by[m][*p].correct).collect() };
    let mine: Vec<bool> = problems.iter().map(|p| rec(p).correct).collect();
    let gap = gap_recovered(
        &outcome("small"),
        &mine,
        &outcome("large"),
        Bootstrap::default(),
    )
    .ok()
    .flatten();
    // Paired against a control that spends no knowledge of the large
    // model, on the problems both ran.
    let versus = |control: &str| {
        let theirs = by.get(control).filter(|_| name != control)?;
        let (mine, theirs): (Vec<bool>, Vec<bool>) = problems
            .iter()
            .filter_map(|p| theirs.get(*p).map(|t| (rec(p).correct, t.correct)))
            .unzip();
        paired_difference(&mine, &theirs, Bootstrap::default())
            .ok()
            .flatten()
    };
    let mean = |f: &dyn Fn(&Record) -> f64| {
        if n == 0 {
            0.0
        } else {
            problems.iter().map(|p| f(rec(p))).sum::<f64>() / n as f64
        }
    };
    let sent = |r: &Record| r.coded_bits.unwrap_or(r.bits as f64);
    let response = |p: &String| by["large"][p].response_tokens.unwrap_or(0) as f64;
    let response_bytes = |p: &String| by["large"][p].reply.len() as f64;
    let total_sent: f64 = problems.iter().map(|p| sent(rec(p))).sum();
    let total_tokens: f64 = problems.iter().map(|p| response(p)).sum();
    let total_bytes: f64 = problems.iter().map(|p| response_bytes(p)).sum();
    let ratio = |denominator: f64| (denominator > 0.0).then(|| total_sent / denominator);
    MethodSummary {
        method: name.to_string(),
        problems: n,
        correct,
        accuracy: accuracy(correct, n),
        truncated: problems.iter().filter(|p| rec(p).truncated).count(),
        gap,
        vs_blc: versus("blc"),
        vs_tested: versus("tested"),
        covered: None,
        bits: mean(&|r| r.bits as f64),
        sent_bits: mean(&sent),
        ratio_tokens: ratio(total_tokens * facts.large_vocab_bits),
        ratio_bytes: ratio(total_bytes * 8.0),
        small_tokens: mean(&|r| r.small.tokens() as f64),
        large_tokens: mean(&|r| r.large.tokens() as f64),
        flops: mean(&|r| {
            2.0 * (facts.small_macs_per_token * r.small.tokens() as f64
                + facts.large_macs_per_token * r.large.tokens() as f64)
        }),
        wall_seconds: mean(&|r| r.wall_seconds),
        asker: asker_summary(&problems, records, by.get("small")),
    }
}

fn asker_summary(
    problems: &[&String],
    records: &BTreeMap<String, &Record>,
    small: Option<&BTreeMap<String, &Record>>,
) -> Option<AskerSummary> {
    let mut a = AskerSummary::default();
    for p in problems {
        let record = records[*p];
        let Some(notes) = &record.asker else { continue };
        a.sessions += 1;
        a.questions += record.bits;
        a.padded += notes.padded;
        a.yes += notes.yes;
        a.revised += usize::from(notes.revised);
        if let Some(right) = notes.predicted_right {
            let (r, t) = a.predicted.unwrap_or((0, 0));
            a.predicted = Some((r + right, t + record.bits));
        }
        if let Some(draft) = small.and_then(|s| s.get(*p)) {
            a.to_right += usize::from(!draft.correct && record.correct);
            a.to_wrong += usize::from(draft.correct && !record.correct);
        }
    }
    (a.sessions > 0).then_some(a)
}

/// The summary as Markdown tables.
pub fn markdown(summary: &Summary, oracle: bool) -> String {
    let mut out = String::new();
    let view = if oracle {
        "answerer sees the gold answer (oracle upper bound)"
    } else {
        "answerer answers from its own solution (honest)"
    };
    out += &format!(
        "**{}**: {} problems; {view}\n\n",
        summary.benchmark, summary.problems
    );
    if summary.problems > 0 && summary.all.iter().all(|m| m.problems == 0) {
        // Every row is read against the two models alone; without them a
        // table of zeros would look like a result.
        out += "No problem has both `small` and `large` results, which every method is compared against: run them too (`--methods small,large,...`; finished results are skipped).\n\n";
    }
    out += &table(&summary.all);
    if summary.all.iter().any(|r| r.covered.is_some()) {
        out += "\nCandidates cover the gold: problems where one of the method's candidates is right, graded against the gold. With bits enough to reach each candidate (10 bits reach 1,024), no answerer can pick better from them. For short answers and options the oracle view picks the candidate equal to the gold, so it reaches this share less the candidates right only once graded (\"11 * 85 = 935\").\n";
    }
    out += &format!(
        "\nPublished filter (problems not both models solve alone): {} problems\n\n",
        summary.filtered_problems
    );
    out += &table(&summary.filtered);
    if let Some(p) = summary.probe {
        let acc = percent(p.accuracy);
        out += &format!(
            "\nThe answerer alone on claims of known truth (\"Is the answer X?\" with the gold X and a wrong X, on the problems it solves alone): {} claims, right on {acc}; yes on {:.0}%; mean P(yes) {:.2} on true claims, {:.2} on false ones.\n",
            p.claims,
            100.0 * p.yes_rate,
            p.p_yes_true,
            p.p_yes_false
        );
    }
    out += &asker_table(&summary.all);
    out
}

/// The askers' use of their questions on all problems, or nothing when no
/// method asked.
fn asker_table(rows: &[MethodSummary]) -> String {
    let askers: Vec<(&str, AskerSummary)> = rows
        .iter()
        .filter_map(|r| r.asker.map(|a| (r.method.as_str(), a)))
        .collect();
    if askers.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nHow the askers used their questions (all problems): questions padded with the fallback because the asker wrote too few, answers that were yes, answers the asker's own P(yes) predicted, revisions that differ from the draft, and answers moved against the small model's draft.\n\n\
         | method | sessions | padded | yes | asker predicted | revised | wrong → right | right → wrong |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let share = |k: usize, n: usize| format!("{:.0}%", 100.0 * k as f64 / n.max(1) as f64);
    for (method, a) in askers {
        let predicted = a.predicted.map_or("–".into(), |(r, t)| share(r, t));
        out += &format!(
            "| {method} | {} | {} | {} | {predicted} | {} | {} | {} |\n",
            a.sessions,
            share(a.padded, a.questions),
            share(a.yes, a.questions),
            share(a.revised, a.sessions),
            a.to_right,
            a.to_wrong
        );
    }
    out
}

/// "61.5% (35.5–82.3)", or "–".
fn percent(a: Option<Accuracy>) -> String {
    a.map_or("–".into(), |a| {
        format!(
            "{:.1}% ({:.1}–{:.1})",
            100.0 * a.rate,
            100.0 * a.ci95.lo,
            100.0 * a.ci95.hi
        )
    })
}

fn table(rows: &[MethodSummary]) -> String {
    // The `tested` control has a column only in runs that have it, so
    // reports of runs without it read as they always did.
    let with_tested = rows.iter().any(|r| r.vs_tested.is_some());
    let (tested_head, tested_rule) = if with_tested {
        (" vs tested, points (95% CI) |", "---|")
    } else {
        ("", "")
    };
    // Likewise the candidates' coverage, only where it was checked.
    let with_covered = rows.iter().any(|r| r.covered.is_some());
    let (covered_head, covered_rule) = if with_covered {
        (" candidates cover the gold (95% CI) |", "---|")
    } else {
        ("", "")
    };
    let mut out = format!(
        "| method | n | accuracy (95% CI) | gap recovered (95% CI) | vs blc, points (95% CI) |{tested_head}{covered_head} bits | sent bits | ratio (tokens) | ratio (bytes) | small tok | large tok | GFLOP | s | cut off |\n\
         |---|---:|---|---|---|{tested_rule}{covered_rule}---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let acc = percent(r.accuracy);
        let gap = r.gap.map_or("–".into(), |g| match g.ci95 {
            Some(ci) => format!(
                "{:.0}% ({:.0}–{:.0})",
                100.0 * g.point,
                100.0 * ci.lo,
                100.0 * ci.hi
            ),
            None => format!("{:.0}%", 100.0 * g.point),
        });
        let vs_blc = points(r.vs_blc, r.problems);
        let vs_tested = if with_tested {
            format!(" {} |", points(r.vs_tested, r.problems))
        } else {
            String::new()
        };
        let covered = if with_covered {
            let c = r.covered.map_or("–".into(), |c| {
                let on = if c.total == r.problems {
                    String::new()
                } else {
                    format!("; n {}", c.total)
                };
                format!("{}{on}", percent(Some(c)))
            });
            format!(" {c} |")
        } else {
            String::new()
        };
        let ratio = |r: Option<f64>| r.map_or("–".into(), |r| format!("{r:.4}"));
        out += &format!(
            "| {} | {} | {acc} | {gap} | {vs_blc} |{vs_tested}{covered} {:.1} | {:.1} | {} | {} | {:.0} | {:.0} | {:.1} | {:.1} | {} |\n",
            r.method,
            r.problems,
            r.bits,
            r.sent_bits,
            ratio(r.ratio_tokens),
            ratio(r.ratio_bytes),
            r.small_tokens,
            r.large_tokens,
            r.flops / 1e9,
            r.wall_seconds,
            r.truncated
        );
    }
    out
}

/// "+24 (+14 to +34)" in points, with the control's n when it ran on fewer
/// of the row's `problems`; or "–".
fn points(d: Option<Difference>, problems: usize) -> String {
    d.map_or("–".into(), |d| {
        let pts = |x: f64| format!("{:+.0}", 100.0 * x);
        let on = if d.problems == problems {
            String::new()
        } else {
            format!("; n {}", d.problems)
        };
        format!(
            "{} ({} to {}{on})",
            pts(d.point),
            pts(d.ci95.lo),
            pts(d.ci95.hi)
        )
    })
}
