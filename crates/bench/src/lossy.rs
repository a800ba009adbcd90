//! `tenbits bench lossy`: the lossy ratio at several N with the share of
//! answers that survive, on model-written answers to benchmark problems.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use tenbits_eval::{grade, Benchmark, Gold, Record, RunKey};
use tenbits_inference::LanguageModel;
use tenbits_lossless::Options;
use tenbits_lossy::{choose, compress_lossy, Candidate, LossySettings, Survival};
use tenbits_qa::ChatModel;

use crate::{baselines, Report, Sink};

/// One model-written answer with what it answered.
pub struct Response {
    /// `benchmark::problem`.
    pub id: String,
    /// The answer's text.
    pub text: String,
    /// The problem's gold answer.
    pub gold: Gold,
}

/// Whether `id` is held out of the answers adapter's training (the rule of
/// `scripts/adapter_data.py answers`: the first byte of its sha256 is 0
/// mod 5), so the coder's adapter never saw it.
pub fn held_out(id: &str) -> bool {
    Sha256::digest(id.as_bytes())[0] % 5 == 0
}

/// The large model's replies (`large` records) in `results` files, each
/// problem once, with gold answers from the benchmarks under `data`
/// (BIG-bench task directories, as the results name them); code problems
/// are left out (their check runs tests, which this benchmark does not).
pub fn responses(results: &[PathBuf], data: &Path, only_held_out: bool) -> Result<Vec<Response>> {
    let mut benches: HashMap<String, Benchmark> = HashMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for path in results {
        let file = tenbits_eval::read_results::<Record>(path)?;
        for (key, record) in file.records {
            let RunKey {
                benchmark,
                problem,
                method,
                ..
            } = &key;
            if method != "large" || record.reply.trim().is_empty() {
                continue;
            }
            let Some(task) = benchmark.strip_prefix("bigbench/") else {
                continue;
            };
            let id = format!("{benchmark}::{problem}");
            if (only_held_out && !held_out(&id)) || !seen.insert(id.clone()) {
                continue;
            }
            if !benches.contains_key(task) {
                let b = tenbits_eval::load(data.join(task))
                    .with_context(|| format!("loading {task} from {}", data.display()))?;
                benches.insert(task.to_string(), b);
            }
            let Some(item) = benches[task].items.iter().find(|i| &i.id == problem) else {
                continue;
            };
            if matches!(item.gold, Gold::Code(_) | Gold::Ungradable(_)) {
                continue;
            }
            out.push(Response {
                id,
                text: record.reply,
                gold: item.gold.clone(),
            });
        }
    }
    Ok(out)
}

/// For each response: `max(ns)` rewrites sampled once (rewrite `i` has seed
/// `seed + i`, so the first `n` are what N = n samples), each coded with
/// `coder`; then, per N, the shortest candidate among the original and the
/// first N rewrites that still grades as the original does. Reports ratios
/// to the original's bytes, the share of rewrites that keep the answer, and
/// what choosing the shortest regardless (the published code) would lose.
#[allow(clippy::too_many_arguments)]
pub fn lossy<R: ChatModel, M: LanguageModel>(
    rewriter: &mut R,
    coder: &mut M,
    responses: &[Response],
    ns: &[usize],
    settings: &LossySettings,
    options: &Options,
    sink: &mut dyn Sink,
) -> Result<Report> {
    let mut report = Report::default();
    let most = ns.iter().copied().max().unwrap_or(0);
    report.line(
        sink,
        format!(
            "rewriter {}, coder {} ; {} responses, up to {most} rewrites each (temperature {}, seeds {}..); \
             an answer survives if the rewrite grades as the original does against the gold answer",
            rewriter.name(),
            options.model_name,
            responses.len(),
            settings.temperature,
            settings.seed
        ),
    );
    let xz = baselines()
        .into_iter()
        .find(|b| b.name == "xz -9")
        .expect("xz -9 is a baseline");
    let (mut original_bytes, mut lossless_bytes, mut xz_bytes) = (0usize, 0usize, 0usize);
    let mut lossless_payload = 0usize;
    let mut all: Vec<(Vec<Candidate>, bool)> = Vec::new();
    for (n, r) in responses.iter().enumerate() {
        sink.progress(
            "rewriting",
            tenbits_lossless::Progress {
                done_tokens: n as u64,
                total_tokens: responses.len() as u64,
            },
        );
        let original_right = grade(&r.gold, &r.text, false).is_some_and(|g| g.correct);
        let same =
            |text: &str| grade(&r.gold, text, false).is_some_and(|g| g.correct) == original_right;
        let s = LossySettings {
            samples: most,
            ..settings.clone()
        };
        let result = compress_lossy(
            rewriter,
            coder,
            r.text.as_bytes(),
            &s,
            &Survival::Check(&same),
            options,
        )?;
        original_bytes += r.text.len();
        lossless_bytes += result.candidates[0].coded_bytes;
        lossless_payload += result.candidates[0].payload_bytes;
        xz_bytes += xz.compress(r.text.as_bytes())?.len();
        all.push((result.candidates, original_right));
    }
    sink.progress_done();
    report.line(sink, String::new());
    report.line(
        sink,
        format!(
            "{} responses, {original_bytes} bytes; xz -9 {:.3} of them, lossless tenbits {:.3} ({:.3} payload only); {} graded right as written",
            responses.len(),
            xz_bytes as f64 / original_bytes.max(1) as f64,
            lossless_bytes as f64 / original_bytes.max(1) as f64,
            lossless_payload as f64 / original_bytes.max(1) as f64,
            all.iter().filter(|(_, right)| *right).count()
        ),
    );
    report.line(sink, String::new());
    report.line(sink, "| N | lossy ratio (total) | payload only | mean ratio per response | rewrite kept | rewrites keeping the answer | right answers surviving | shortest regardless: ratio | its right answers surviving |".into());
    report.line(
        sink,
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
    );
    for &n in ns {
        let (mut chosen_total, mut naive_total, mut mean, mut kept) = (0usize, 0usize, 0.0, 0);
        let mut payload_total = 0usize;
        let (mut keeping, mut sampled) = (0usize, 0usize);
        let (mut right, mut right_kept, mut right_naive) = (0usize, 0usize, 0usize);
        for ((cands, was_right), r) in all.iter().zip(responses) {
            let prefix = &cands[..(n + 1).min(cands.len())];
            let c = choose(prefix);
            chosen_total += prefix[c].coded_bytes;
            payload_total += prefix[c].payload_bytes;
            mean += prefix[c].coded_bytes as f64 / r.text.len().max(1) as f64;
            kept += usize::from(c > 0);
            keeping += prefix[1..].iter().filter(|x| x.survives).count();
            sampled += prefix.len() - 1;
            // The published choice: the shortest rewrite, answer or not.
            let naive = (1..prefix.len())
                .min_by_key(|&i| (prefix[i].coded_bytes, i))
                .unwrap_or(0);
            naive_total += prefix[naive].coded_bytes;
            if *was_right {
                right += 1;
                right_kept += usize::from(prefix[c].survives);
                right_naive += usize::from(prefix[naive].survives);
            }
        }
        let pct = |a: usize, b: usize| {
            if b == 0 {
                "–".to_string()
            } else {
                format!("{:.0}% ({a}/{b})", 100.0 * a as f64 / b as f64)
            }
        };
        report.line(
            sink,
            format!(
                "| {n} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {:.4} | {} |",
                chosen_total as f64 / original_bytes.max(1) as f64,
                payload_total as f64 / original_bytes.max(1) as f64,
                mean / responses.len().max(1) as f64,
                pct(kept, responses.len()),
                pct(keeping, sampled),
                pct(right_kept, right),
                naive_total as f64 / original_bytes.max(1) as f64,
                pct(right_naive, right),
            ),
        );
    }
    Ok(report)
}
