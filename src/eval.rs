//! `tenbits eval`: methods on a benchmark with a small and a large model,
//! results appended as they finish, then the summary.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::ProgressBar;
use tenbits_agents::onnx::OnnxChatModel;
use tenbits_eval::{
    EvalSettings, Evaluator, Item, Method, ModelFacts, Record, Results, RunKey, Sandbox,
    SandboxConfig, Split,
};
use tenbits_inference::{Fingerprint, OnnxModel, Registry};
use tenbits_lossless::AdapterChoice;
use tenbits_qa::Knowledge;

/// `tenbits eval` options.
#[derive(Args)]
pub struct EvalArgs {
    /// The benchmark: `humaneval` (set up by scripts/setup.py), a BIG-bench
    /// task directory or task.json, a HumanEval .jsonl(.gz), or a task file.
    #[arg(long)]
    bench: String,
    /// The asker.
    #[arg(long, default_value = "qwen2.5-coder-0.5b")]
    small: String,
    /// The answerer.
    #[arg(long, default_value = "qwen2.5-coder-1.5b")]
    large: String,
    /// Load the asker from this converted-model directory instead of the
    /// cache (for example one converted with another `--accuracy-level`);
    /// `--small` then only names it.
    #[arg(long, value_name = "DIR")]
    small_dir: Option<PathBuf>,
    /// Load the answerer from this directory instead of the cache.
    #[arg(long, value_name = "DIR")]
    large_dir: Option<PathBuf>,
    /// Questions per session (and most bits `select` may use); a list runs
    /// each budget in turn, reusing the drafts and own solutions.
    #[arg(long, value_delimiter = ',', default_value = "10")]
    bits: Vec<usize>,
    /// Problems to run, from the start of the split [default: all].
    #[arg(long)]
    limit: Option<usize>,
    /// Which part: `report` (the reported half), `tune` or `all`.
    #[arg(long, default_value = "report")]
    split: Split,
    /// Methods, comma-separated: small, large, blc, qa, qa+, coded, select,
    /// tested (code: the small model's samples run on the prompt's visible
    /// examples, no bits: select's control), probe (the answerer alone on
    /// claims of known truth) [default: small,large,blc,qa,qa+,coded,select;
    /// with --report-only, every method the results file holds]. The
    /// report adds the small, large and blc rows the file holds.
    #[arg(long, value_delimiter = ',')]
    methods: Option<Vec<String>>,
    /// What the answerer knows: `own-solution` (honest) or `reference`
    /// (the gold answer: an oracle upper bound).
    #[arg(long, default_value = "own-solution")]
    view: String,
    /// Show the asker's draft to the answerer too.
    #[arg(long)]
    sees_answer: bool,
    /// Decide claims about the final answer ("Is the answer 39?") by
    /// comparing them with the answerer's own final answer, not by P(yes).
    #[arg(long)]
    check_claims: bool,
    /// The P(yes) at or above which the answerer's bit is yes. Calibrate it
    /// on the tuning split: `--split tune --methods large,probe`, then
    /// `scripts/probe_threshold.py` (keyed apart from 0.5's results).
    #[arg(long, default_value_t = tenbits_qa::DEFAULT_YES_THRESHOLD)]
    yes_threshold: f64,
    /// For code, `select` bisects only the candidates passing the most of
    /// the examples the prompt shows (run by the receiver; keyed apart
    /// from unfiltered results).
    #[arg(long)]
    visible_filter: bool,
    /// Seed of sampled generations (`select`).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Token limit of every generation.
    #[arg(long, default_value_t = 512)]
    max_tokens: usize,
    /// Sampled drafts or programs `select` chooses among.
    #[arg(long, default_value_t = 8)]
    select_samples: usize,
    /// Problems run side by side, their model calls merged into batched
    /// calls (the same greedy results, in less time).
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// ONNX Runtime intra-op threads per model [default: available cores, at most 4].
    #[arg(long)]
    threads: Option<usize>,
    /// Results file (JSON lines; a rerun skips what it holds)
    /// [default: results/<benchmark>-<small>-<large>.jsonl].
    #[arg(long, value_name = "FILE")]
    results: Option<PathBuf>,
    /// Also write the summary (Markdown) here.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// Only summarize what the results file holds; run nothing.
    #[arg(long)]
    report_only: bool,
    /// With --report-only: summarize results of another prompt version
    /// (recorded in every result) instead of the one the task's prompts
    /// have now (version 3 for BIG-bench-style tasks, 4 for code).
    #[arg(long, value_name = "N", requires = "report_only")]
    prompt_version: Option<u32>,
}

/// ` FLAG DIR` when a model directory was given, for the printed command.
fn dir_flag(flag: &str, dir: Option<&Path>) -> String {
    dir.map_or(String::new(), |d| format!(" {flag} {}", d.display()))
}

/// A split as the command line spells it.
fn split_name(split: Split) -> &'static str {
    match split {
        Split::Tune => "tune",
        Split::Report => "report",
        Split::All => "all",
    }
}

fn view(name: &str) -> Result<Knowledge> {
    Ok(match name {
        "own-solution" => Knowledge::OwnSolution,
        "reference" => Knowledge::Reference,
        other => bail!("unknown view {other:?}; expected own-solution or reference"),
    })
}

/// Where a model's files are: `dir` if given, else the registry's set-up
/// copy of `name`.
fn model_dir(name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(Registry::embedded().set_up_dir(name)?),
    }
}

/// log2 of the vocabulary and multiply-accumulates per token, from the
/// config.json of a model's directory.
fn facts(dir: &Path) -> Result<(f64, f64)> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let config: serde_json::Value = serde_json::from_slice(&text)?;
    let vocab = config
        .get("vocab_size")
        .and_then(|v| v.as_f64())
        .context("config.json has no vocab_size")?;
    let macs = tenbits_bench::weights_per_token(&config).unwrap_or(f64::NAN);
    Ok((vocab.log2(), macs))
}

/// The methods named, else those a run does by default; a report of a
/// file without names shows every method it holds, so rows a run added
/// with `--methods` are not silently left out.
fn methods(named: Option<&[String]>, report_only: bool) -> Result<Vec<Method>> {
    match named {
        Some(names) => Ok(names
            .iter()
            .map(|m| Method::parse(m))
            .collect::<Result<Vec<_>, _>>()?),
        None if report_only => Ok(Method::ALL.to_vec()),
        // Every method but the code-only control `tested` and the
        // answerer's `probe`.
        None => Ok(Method::ALL
            .into_iter()
            .filter(|m| !matches!(m, Method::Tested | Method::Probe))
            .collect()),
    }
}

/// The methods a report shows: those run, with the references that gap
/// recovered, "vs blc" and the published filter are measured against
/// (`small`, `large`, `blc`), so a run of `--methods qa+` on a file that
/// holds them still reports its gap. A reference the file lacks adds no
/// row.
fn reported(methods: &[Method]) -> Vec<Method> {
    let mut shown = methods.to_vec();
    for reference in [Method::Small, Method::Large, Method::Blc] {
        if !shown.contains(&reference) {
            shown.push(reference);
        }
    }
    shown
}

pub fn eval_command(args: &EvalArgs) -> Result<()> {
    let path = if args.bench == "humaneval" {
        tenbits_eval::humaneval_path()?
    } else {
        PathBuf::from(&args.bench)
    };
    let bench = tenbits_eval::load(&path)?;
    let mut items: Vec<_> = bench.split(args.split).cloned().collect();
    if let Some(limit) = args.limit {
        items.truncate(limit);
    }
    if items.is_empty() {
        bail!(
            "{} has no problems in the {} split",
            path.display(),
            split_name(args.split)
        );
    }
    let methods = methods(args.methods.as_deref(), args.report_only)?;
    let settings = EvalSettings {
        bits: args.bits[0],
        view: view(&args.view)?,
        sees_answer: args.sees_answer,
        checks_claims: args.check_claims,
        max_tokens: args.max_tokens,
        select_samples: args.select_samples,
        seed: args.seed,
        batch: args.batch,
        visible_filter: args.visible_filter,
        yes_threshold: args.yes_threshold,
        ..EvalSettings::default()
    };
    if !tenbits_qa::valid_yes_threshold(settings.yes_threshold) {
        bail!(
            "--yes-threshold {} is not between 0 and 1: pass a P(yes) such as 0.5 (the default)",
            settings.yes_threshold
        );
    }
    let results = args.results.clone().unwrap_or_else(|| {
        let name = bench.name.replace('/', "_");
        Path::new("results").join(format!("{name}-{}-{}.jsonl", args.small, args.large))
    });
    if args.report_only && !results.exists() {
        bail!(
            "no results file at {}: pass the file a run wrote with --results FILE, or run \
             without --report-only first",
            results.display()
        );
    }
    if let Some(dir) = results.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let small_dir = model_dir(&args.small, args.small_dir.as_deref())?;
    let large_dir = model_dir(&args.large, args.large_dir.as_deref())?;
    // A report needs only the models' fingerprints (the keys name them),
    // not the models.
    let mut evaluator = if args.report_only {
        None
    } else {
        let threads = crate::settings(args.threads).threads;
        eprintln!("loading {} and {}", args.small, args.large);
        let small = OnnxChatModel::load_dir(&args.small, &small_dir, threads)?;
        let large = OnnxChatModel::load_dir(&args.large, &large_dir, threads)?;
        let needs_sandbox = items
            .iter()
            .any(|i| matches!(i.gold, tenbits_eval::Gold::Code(_)));
        let sandbox = if needs_sandbox {
            Some(Sandbox::new(SandboxConfig::default())?)
        } else {
            None
        };
        Some(Evaluator::new(
            small,
            large,
            settings.clone(),
            &bench.name,
            sandbox,
            &results,
        )?)
    };
    let model_ids = match &evaluator {
        Some(e) => e.model_ids(),
        None => [
            Fingerprint::of_dir(&small_dir)?.model_id(),
            Fingerprint::of_dir(&large_dir)?.model_id(),
        ],
    };
    let shown = reported(&methods);
    let mut budgets = Vec::new();
    for &bits in &args.bits {
        let budget = EvalSettings {
            bits,
            ..settings.clone()
        };
        let keys: Vec<_> = items
            .iter()
            .flat_map(|i| {
                shown
                    .iter()
                    .map(|&m| tenbits_eval::run_key(model_ids, &budget, &bench.name, i, m))
            })
            .map(|mut key| {
                key.prompt_version = args.prompt_version.unwrap_or(key.prompt_version);
                key
            })
            .collect();
        if let Some(evaluator) = evaluator.as_mut() {
            evaluator.set_settings(budget.clone());
            run_with_progress(evaluator, &items, &methods, bits, &results)?;
        }
        let mut versions: Vec<u32> = keys.iter().map(|k| k.prompt_version).collect();
        versions.sort_unstable();
        versions.dedup();
        let versions = versions.iter().map(u32::to_string).collect::<Vec<_>>();
        budgets.push((bits, budget.key(), keys, versions.join(", ")));
    }
    let (vocab_bits, large_macs) = facts(&large_dir)?;
    let (_, small_macs) = facts(&small_dir)?;
    let facts = ModelFacts {
        large_vocab_bits: vocab_bits,
        small_macs_per_token: small_macs,
        large_macs_per_token: large_macs,
    };
    let all = tenbits_eval::read_results::<Record>(&results)?;
    let mut text = String::new();
    for (bits, key, keys, versions) in budgets {
        let wanted: HashSet<_> = keys.into_iter().collect();
        let covered = coverage(&all, &wanted, &items)?;
        let summary = tenbits_eval::summarize(
            &all,
            |k| wanted.contains(k),
            |k| covered.get(k).copied(),
            facts,
        );
        text += &format!(
            "`tenbits eval --bench {} --small {}{} --large {}{} --bits {bits} --split {}{}{}` ({}; prompt version {}; settings: {key})\n\n",
            args.bench,
            args.small,
            dir_flag("--small-dir", args.small_dir.as_deref()),
            args.large,
            dir_flag("--large-dir", args.large_dir.as_deref()),
            split_name(args.split),
            args.limit.map_or(String::new(), |l| format!(" --limit {l}")),
            setting_flags(&settings),
            results.display(),
            versions,
        );
        text += &tenbits_eval::markdown(&summary, settings.view == Knowledge::Reference);
        text += "\n";
    }
    print!("{text}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// The flags that set `settings` apart from the defaults in a report's
/// command line (those of the answerer and of `select`'s filter), so the
/// line reruns the run it reports.
fn setting_flags(settings: &EvalSettings) -> String {
    let mut flags = String::new();
    if settings.view == Knowledge::Reference {
        flags += " --view reference";
    }
    if settings.sees_answer {
        flags += " --sees-answer";
    }
    if settings.checks_claims {
        flags += " --check-claims";
    }
    if settings.yes_threshold != tenbits_qa::DEFAULT_YES_THRESHOLD {
        flags += &format!(" --yes-threshold {}", settings.yes_threshold);
    }
    if settings.visible_filter {
        flags += " --visible-filter";
    }
    flags
}

/// Whether the candidates of each result in `wanted` that lists them
/// cover the gold ([`tenbits_eval::covers_gold`]). Code runs in the
/// sandbox, with a progress bar: a few seconds a problem.
fn coverage(
    all: &Results<Record>,
    wanted: &HashSet<RunKey>,
    items: &[Item],
) -> Result<HashMap<RunKey, bool>> {
    let by_id: HashMap<&str, &Item> = items.iter().map(|i| (i.id.as_str(), i)).collect();
    let listed: Vec<(&RunKey, &Item, &Vec<String>)> = all
        .latest()
        .into_iter()
        .filter(|(k, _)| wanted.contains(*k))
        .filter_map(|(k, r)| Some((k, *by_id.get(k.problem.as_str())?, r.candidates.as_ref()?)))
        .collect();
    let code = listed
        .iter()
        .any(|(_, i, _)| matches!(i.gold, tenbits_eval::Gold::Code(_)));
    let (sandbox, bar) = if code {
        let bar = ProgressBar::new(listed.len() as u64);
        bar.set_style(crate::progress_style(
            "checking candidates against the gold [{bar:30}] {pos}/{len} ({elapsed} elapsed, eta {eta})",
        ));
        (Some(Sandbox::new(SandboxConfig::default())?), bar)
    } else {
        (None, ProgressBar::hidden())
    };
    let mut covered = HashMap::new();
    for (key, item, candidates) in listed {
        let c = tenbits_eval::covers_gold(item, candidates, sandbox.as_ref())
            .with_context(|| format!("cannot check the candidates of {}", item.id))?;
        covered.insert(key.clone(), c);
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(covered)
}

/// One bit budget's run, with a progress bar and an ETA.
fn run_with_progress(
    evaluator: &mut Evaluator<OnnxChatModel, OnnxChatModel>,
    items: &[tenbits_eval::Item],
    methods: &[Method],
    bits: usize,
    results: &Path,
) -> Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(crate::progress_style(
        "{msg:>10} [{bar:30}] {pos}/{len} results ({elapsed} elapsed, eta {eta})",
    ));
    bar.set_message(format!("{bits} bits"));
    let mut skipped = None;
    evaluator.run(items, methods, &mut |p| {
        if skipped.is_none() {
            skipped = Some(p.skipped);
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            // The ETA counts only this run's pace.
            bar.reset_eta();
        }
        bar.set_position(p.done as u64);
        crate::log_progress_off_terminal(&bar, &format!("{bits} bits"), "results");
    })?;
    bar.finish_and_clear();
    if let Some(s) = skipped.filter(|&s| s > 0) {
        eprintln!(
            "{bits} bits: {s} results were already in {} and were skipped",
            results.display()
        );
    }
    Ok(())
}

/// `tenbits frontier` options.
#[derive(Args)]
pub struct FrontierArgs {
    /// Results of `tenbits eval` (any bit budgets).
    #[arg(long, value_name = "FILE")]
    results: PathBuf,
    /// Which benchmark in them [default: the only one].
    #[arg(long)]
    benchmark: Option<String>,
    /// The model that codes the responses losslessly.
    #[arg(long, default_value = "smollm2-135m")]
    coder: String,
    /// The small model of the results (for FLOPs).
    #[arg(long, default_value = "qwen2.5-coder-0.5b")]
    small: String,
    /// The large model of the results (for ratios and FLOPs).
    #[arg(long, default_value = "qwen2.5-coder-1.5b")]
    large: String,
    /// ONNX Runtime intra-op threads [default: available cores, at most 4].
    #[arg(long)]
    threads: Option<usize>,
    /// Lossy rewrite point: rewrites sampled per response by the large
    /// model (0: leave the point out; it is the slow one).
    #[arg(long, default_value_t = 5)]
    lossy_samples: usize,
    /// Write the table (Markdown) here too.
    #[arg(long, value_name = "FILE")]
    markdown: Option<PathBuf>,
    /// The plot as SVG.
    #[arg(long, value_name = "FILE", default_value = "results/frontier.svg")]
    svg: PathBuf,
    /// The plot as PNG (both need a system font such as DejaVu Sans).
    #[arg(long, value_name = "FILE", default_value = "results/frontier.png")]
    png: PathBuf,
}

pub fn frontier_command(args: &FrontierArgs) -> Result<()> {
    let results = tenbits_eval::read_results::<Record>(&args.results)?;
    let names: std::collections::BTreeSet<String> = results
        .latest()
        .into_iter()
        .map(|(k, _)| k.benchmark.clone())
        .collect();
    let benchmark = match &args.benchmark {
        Some(b) => b.clone(),
        None if names.len() == 1 => names.into_iter().next().unwrap_or_default(),
        None => bail!(
            "{} holds several benchmarks ({}); pick one with --benchmark",
            args.results.display(),
            names.into_iter().collect::<Vec<_>>().join(", ")
        ),
    };
    let (vocab_bits, large_macs) = facts(&model_dir(&args.large, None)?)?;
    let (_, small_macs) = facts(&model_dir(&args.small, None)?)?;
    let (_, coder_macs) = facts(&model_dir(&args.coder, None)?)?;
    let model_facts = ModelFacts {
        large_vocab_bits: vocab_bits,
        small_macs_per_token: small_macs,
        large_macs_per_token: large_macs,
    };
    // Adapter points when the coder has adapters installed.
    let adapters = tenbits_lossless::adapters::candidates(&args.coder, &AdapterChoice::Auto)?;
    let dir = Registry::embedded().set_up_dir(&args.coder)?;
    let settings = crate::settings(args.threads);
    let (mut coder, adapters) = if !adapters.is_empty() && OnnxModel::has_lora_graph(&dir) {
        (OnnxModel::load_for_adapters(&dir, settings)?, adapters)
    } else {
        (OnnxModel::load(&dir, settings)?, Vec::new())
    };
    let mut rewriter = if args.lossy_samples > 0 {
        eprintln!("loading the rewriter {}", args.large);
        Some(OnnxChatModel::load(&args.large, settings.threads)?)
    } else {
        None
    };
    let lossy_settings = tenbits_lossy::LossySettings {
        samples: args.lossy_samples,
        ..Default::default()
    };
    let mut sink = crate::bench::TerminalSink::default();
    let (report, points) = tenbits_bench::frontier(
        &results,
        &benchmark,
        &mut coder,
        &args.coder,
        coder_macs,
        &adapters,
        rewriter
            .as_mut()
            .map(|r| (r as &mut dyn tenbits_qa::ChatModel, &lossy_settings)),
        model_facts,
        &mut sink,
    )?;
    report.save(args.markdown.as_deref())?;
    for path in [&args.svg, &args.png] {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
    }
    let title = format!("{benchmark}: {} asks, {} answers", args.small, args.large);
    tenbits_bench::plot(&points, &title, &args.svg, &args.png)?;
    eprintln!("plot: {} and {}", args.svg.display(), args.png.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(ms: Vec<Method>) -> String {
        ms.iter().map(|m| m.name()).collect::<Vec<_>>().join(",")
    }

    #[test]
    fn a_report_without_named_methods_shows_every_method() {
        assert_eq!(
            names(methods(None, true).unwrap()),
            names(Method::ALL.to_vec())
        );
        assert_eq!(
            names(methods(None, false).unwrap()),
            "small,large,blc,qa,qa+,coded,select"
        );
        let named = ["tested".to_string(), "select".to_string()];
        assert_eq!(names(methods(Some(&named), true).unwrap()), "tested,select");
        assert!(methods(Some(&["nope".to_string()]), false).is_err());
    }

    #[test]
    fn a_report_of_named_methods_keeps_the_references_its_gap_needs() {
        assert_eq!(names(reported(&[Method::QaPlus])), "qa+,small,large,blc");
        assert_eq!(
            names(reported(&[Method::Large, Method::Small, Method::Select])),
            "large,small,select,blc"
        );
    }
}
