//! `tenbits twenty-questions`: BIG-bench's twenty-questions concepts,
//! found with at most N yes/no bits, for a model pair. Each game is
//! appended to a JSON-lines file as it finishes; a rerun skips what is
//! there.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::ProgressBar;
use tenbits_agents::onnx::OnnxChatModel;
use tenbits_qa::{play_twenty_questions, TwentyConfig};

/// `tenbits twenty-questions` arguments.
#[derive(clap::Args, Debug)]
pub struct TwentyArgs {
    /// BIG-bench's concepts file (`{"concepts": {"category": [...]}}`),
    /// e.g. bigbench/twenty_questions/concepts.json of the shared data.
    #[arg(long, value_name = "FILE")]
    pub concepts: PathBuf,
    /// The model that asks.
    #[arg(long, default_value = "qwen2.5-coder-0.5b")]
    pub asker: String,
    /// The model that knows the concept and answers with one bit each.
    #[arg(long, default_value = "qwen2.5-coder-1.5b")]
    pub answerer: String,
    /// Categories to play [default: every one in the file].
    #[arg(long = "category")]
    pub categories: Vec<String>,
    /// Concepts per category, first ones first [default: all].
    #[arg(long)]
    pub limit: Option<usize>,
    /// Most bits per game (questions and guesses).
    #[arg(long, default_value_t = 20)]
    pub max_bits: usize,
    /// The asker considers a guess every this many bits (and at the last).
    #[arg(long, default_value_t = 4)]
    pub guess_every: usize,
    /// Intra-op threads per model.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Results, one JSON line per game (appended; a rerun resumes).
    #[arg(long, default_value = "results/twenty-questions.jsonl")]
    pub results: PathBuf,
    /// Also write the summary table (Markdown) to this file.
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,
}

#[derive(serde::Deserialize)]
struct ConceptsFile {
    concepts: BTreeMap<String, Vec<String>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct GameRecord {
    asker: String,
    answerer: String,
    category: String,
    concept: String,
    max_bits: usize,
    found: bool,
    bits: usize,
    confirmed: Option<String>,
    turns: Vec<(String, bool, f64)>,
}

fn read_records(path: &Path) -> Result<Vec<GameRecord>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Ok(Vec::new());
    };
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l).with_context(|| format!("{} line {}", path.display(), i + 1))
        })
        .collect()
}

pub fn twenty_command(args: &TwentyArgs) -> Result<()> {
    let text = std::fs::read_to_string(&args.concepts)
        .with_context(|| format!("cannot read the concepts file {}", args.concepts.display()))?;
    let file: ConceptsFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a BIG-bench concepts file ({{\"concepts\": {{category: [concept, ...]}}}})",
            args.concepts.display()
        )
    })?;
    let categories: Vec<&String> = if args.categories.is_empty() {
        file.concepts.keys().collect()
    } else {
        let mut chosen = Vec::new();
        for c in &args.categories {
            match file.concepts.get_key_value(c) {
                Some((k, _)) => chosen.push(k),
                None => bail!(
                    "no category `{c}` in {}; it has: {}",
                    args.concepts.display(),
                    file.concepts.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            }
        }
        chosen
    };
    let config = TwentyConfig {
        max_bits: args.max_bits,
        guess_every: args.guess_every,
        ..TwentyConfig::default()
    };
    let key = |category: &str, concept: &str| format!("{category}\u{0}{concept}");
    let done: HashSet<String> = read_records(&args.results)?
        .iter()
        .filter(|r| {
            r.asker == args.asker && r.answerer == args.answerer && r.max_bits == args.max_bits
        })
        .map(|r| key(&r.category, &r.concept))
        .collect();
    let mut plan = Vec::new();
    for c in &categories {
        let list = &file.concepts[*c];
        for concept in list.iter().take(args.limit.unwrap_or(usize::MAX)) {
            if !done.contains(&key(c, concept)) {
                plan.push((c.to_string(), concept.clone(), list.clone()));
            }
        }
    }
    if !plan.is_empty() {
        eprintln!("loading {} and {} ...", args.asker, args.answerer);
        let mut asker = OnnxChatModel::load(&args.asker, args.threads)?;
        let mut answerer = OnnxChatModel::load(&args.answerer, args.threads)?;
        if let Some(dir) = args.results.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&args.results)
            .with_context(|| format!("cannot open {}", args.results.display()))?;
        let bar = ProgressBar::new(plan.len() as u64);
        bar.set_style(crate::progress_style(
            "{msg:>24} [{bar:30}] {pos}/{len} games ({elapsed} elapsed, eta {eta})",
        ));
        for (category, concept, list) in plan {
            bar.set_message(concept.clone());
            let game = play_twenty_questions(&mut asker, &mut answerer, &concept, &list, &config)?;
            let record = GameRecord {
                asker: args.asker.clone(),
                answerer: args.answerer.clone(),
                category,
                found: game.found(),
                bits: game.bits(),
                confirmed: game.confirmed.clone(),
                concept,
                max_bits: args.max_bits,
                turns: game
                    .turns
                    .iter()
                    .map(|t| (t.question.clone(), t.bit, t.p_yes))
                    .collect(),
            };
            writeln!(out, "{}", serde_json::to_string(&record)?)?;
            out.flush()?;
            bar.inc(1);
        }
        bar.finish_and_clear();
    }
    let records: Vec<GameRecord> = read_records(&args.results)?
        .into_iter()
        .filter(|r| {
            r.asker == args.asker
                && r.answerer == args.answerer
                && r.max_bits == args.max_bits
                && categories.iter().any(|c| **c == r.category)
        })
        .collect();
    let table = summary(args, &file.concepts, &records);
    print!("{table}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn summary(
    args: &TwentyArgs,
    concepts: &BTreeMap<String, Vec<String>>,
    records: &[GameRecord],
) -> String {
    let mut by: BTreeMap<&str, Vec<&GameRecord>> = BTreeMap::new();
    for r in records {
        by.entry(&r.category).or_default().push(r);
    }
    let mut s = format!(
        "{} asks, {} answers (knows the concept), at most {} bits; the asker sees the category's list\n\n",
        args.asker, args.answerer, args.max_bits
    );
    s += "| category | possibilities | games | found | found rate (95% CI) | mean bits when found | wrong guesses confirmed |\n";
    s += "|---|---:|---:|---:|---|---:|---:|\n";
    for (category, games) in &by {
        let found: Vec<_> = games.iter().filter(|g| g.found).collect();
        let ci = tenbits_eval::stats::wilson(found.len(), games.len(), 1.96);
        let bits = if found.is_empty() {
            "–".to_string()
        } else {
            format!(
                "{:.1}",
                found.iter().map(|g| g.bits as f64).sum::<f64>() / found.len() as f64
            )
        };
        let wrong = games
            .iter()
            .filter(|g| g.confirmed.is_some() && !g.found)
            .count();
        s += &format!(
            "| {category} | {} | {} | {} | {:.0}% ({:.0}–{:.0}%) | {bits} | {wrong} |\n",
            concepts.get(*category).map_or(0, Vec::len),
            games.len(),
            found.len(),
            100.0 * found.len() as f64 / games.len().max(1) as f64,
            100.0 * ci.lo,
            100.0 * ci.hi
        );
    }
    s
}
