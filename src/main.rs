//! `tenbits`: a thin command line over the tenbits library crates.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use indicatif::{HumanDuration, ProgressBar, ProgressStyle};
use tenbits_inference::{OnnxModel, Registry, SessionSettings};
use tenbits_lossless::{AdapterChoice, Options, Progress};

mod agents;
mod bench;
mod chat;
mod eval;
mod twenty;

#[derive(Parser)]
#[command(
    name = "tenbits",
    version,
    about = "Compress what language models say, with language models"
)]
#[command(
    after_help = "Set up the runtime and the default model first: python3 scripts/setup.py\n\
Logs: set TENBITS_LOG=info (or debug) for details on stderr."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Losslessly compress a file (or stdin) into a .tb container.
    Compress {
        /// Input file; stdin when omitted or `-`.
        input: Option<PathBuf>,
        /// Output file; stdout when omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Input bytes per block: a longer input is coded block by block
        /// (each written as it is done), so memory stays near 8 bytes per
        /// block byte above the model, whatever the input's length.
        #[arg(long, value_name = "BYTES", default_value_t = tenbits_lossless::DEFAULT_BLOCK_BYTES)]
        block_size: usize,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        coding: CodingArgs,
    },
    /// Decompress a .tb container (file or stdin) back to the original bytes.
    Decompress {
        /// Input .tb file; stdin when omitted or `-`.
        input: Option<PathBuf>,
        /// Output file; stdout when omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Model to decode with [default: the one named in the file].
        #[arg(long)]
        model: Option<String>,
        /// Load the model from this directory instead of the cache.
        #[arg(long, value_name = "DIR")]
        model_dir: Option<PathBuf>,
        /// The adapter file the .tb file was compressed with [default: the
        /// installed adapter its header names, found by hash].
        #[arg(long, value_name = "FILE")]
        adapter: Option<PathBuf>,
        /// ONNX Runtime intra-op threads.
        #[arg(long)]
        threads: Option<usize>,
    },
    /// Lossy compression of a model's answer: sample succinct rewrites with
    /// a rewriter model, code each with the coder model, and keep the
    /// shortest that still states the same final answer (else the original,
    /// losslessly). `decompress` restores the rewrite.
    Lossy {
        /// Input file (an answer); stdin when omitted or `-`.
        input: Option<PathBuf>,
        /// Output file; stdout when omitted.
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// The model that rewrites.
        #[arg(long, default_value = "qwen2.5-coder-1.5b")]
        rewriter: String,
        /// Rewrites sampled (N).
        #[arg(long, default_value_t = tenbits_lossy::LossySettings::default().samples)]
        samples: usize,
        /// Seed of the first rewrite (rewrite i uses seed + i).
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// What a rewrite must keep: `answer` (the final answer as the
        /// evaluation's extractor reads it) or `nothing`.
        #[arg(long, default_value = "answer")]
        keep: String,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        coding: CodingArgs,
    },
    /// Print the header of a .tb container.
    Info {
        /// The .tb file.
        input: PathBuf,
    },
    /// List, fetch and describe the registered models.
    #[command(subcommand)]
    Models(chat::ModelsCommand),
    /// Generate a reply to one prompt, streamed to stdout.
    Generate {
        /// The prompt (a user message, or plain text with --raw).
        prompt: String,
        /// Continue the prompt as plain text instead of replying to it as a
        /// chat message (e.g. to complete code).
        #[arg(long)]
        raw: bool,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sampling: chat::SamplingArgs,
    },
    /// Chat with a model interactively (one message per line on stdin).
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        sampling: chat::SamplingArgs,
    },
    /// Serve a large model as a question answerer (TCP), as configured.
    Serve {
        /// Deployment file (e.g. config/answerer.toml); keys can be
        /// overridden with TENBITS_<SECTION>__<KEY>.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Serve the answerer's model over OpenAI's HTTP API instead
        /// (/v1/chat/completions with streaming and logprobs, /v1/models)
        /// on transport.listen; the [security] token is the API key.
        #[arg(long)]
        openai: bool,
    },
    /// Ask: a small model drafts, asks yes/no questions, gets one bit per
    /// question from the answerer, and revises. Prints every step and the
    /// bits sent.
    Ask {
        /// Deployment file (config/local.toml: one process; config/asker.toml:
        /// to a `tenbits serve` over TCP).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The problem.
        problem: String,
    },
    /// Run many askers against one answerer over the tasks of a file and
    /// report tasks done, bits, wire bytes, accuracy and latency.
    Simulate {
        /// Deployment file (e.g. config/swarm.toml).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Measure what the bits carry: each method (small, large, blc, qa,
    /// qa+, coded, select) on a benchmark, with accuracy and intervals, the
    /// share of the small-to-large gap recovered, bits and compute. Results
    /// are appended as they finish; a rerun resumes.
    Eval(Box<eval::EvalArgs>),
    /// Twenty questions on BIG-bench's concepts: the asker finds each
    /// concept of a category with at most N yes/no bits from an answerer
    /// that knows it; concepts found and bits needed, per category, with
    /// intervals. Games are appended as they finish; a rerun resumes.
    TwentyQuestions(Box<twenty::TwentyArgs>),
    /// Place every mode on the compression-compute plane over the large
    /// model's responses in `tenbits eval` results: classic compressors,
    /// lossless LLM coding and the question-asking methods at each bit
    /// budget; a Markdown table and a plot (SVG, PNG).
    Frontier(Box<eval::FrontierArgs>),
    /// Measure tenbits: compression against classic compressors, model speed.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// An answerer cluster: `tenbits serve` with [cluster] enabled = true
    /// starts an answerer node; `answerer.backend = "cluster"` routes to
    /// the nodes.
    #[command(subcommand)]
    Cluster(ClusterCommand),
}

#[derive(Subcommand)]
enum ClusterCommand {
    /// Join the cluster briefly (a node of its own, on a free port of
    /// [cluster] listen's address) and
    /// list the nodes, the models they answer for, and each replica's load.
    Status {
        /// Deployment file with the [cluster] section (seeds, cookie);
        /// keys can be overridden with TENBITS_<SECTION>__<KEY>.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Seconds to wait for the seeds to connect.
        #[arg(long, default_value_t = 3.0)]
        wait: f64,
    },
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Size, speed and memory of lossless compression, beside gzip -9,
    /// bzip2 -9, xz -9 and zstd -19 on the same bytes.
    Lossless {
        /// Files to compress.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        coding: CodingArgs,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Held-out text of each adapter's domain coded with the base model, the
    /// correct adapter, the wrong ones (average) and `auto`.
    Adapters {
        /// A domain: `ADAPTER=PATH[,PATH...]`, each path a file or a
        /// directory of files (repeatable).
        #[arg(long = "domain", required = true, value_name = "ADAPTER=PATHS")]
        domains: Vec<String>,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        coding: CodingArgs,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Lossy rewrite on model-written answers to benchmark problems (the
    /// large model's replies in `tenbits eval` results): ratio at each N and
    /// how many answers survive, beside choosing the shortest regardless.
    Lossy {
        /// `tenbits eval` results files holding `large` replies.
        #[arg(long, required = true, num_args = 1..)]
        results: Vec<PathBuf>,
        /// The BIG-bench task root the results' benchmarks are under.
        #[arg(long, default_value = "../shared/data/bigbench")]
        data: PathBuf,
        /// Numbers of rewrites to compare (one sampling run of the largest).
        #[arg(long, value_delimiter = ',', default_value = "1,3,5,10")]
        n: Vec<usize>,
        /// Most responses [default: all].
        #[arg(long)]
        limit: Option<usize>,
        /// Use every problem, not only those held out of the answers
        /// adapter's training.
        #[arg(long)]
        all_problems: bool,
        /// The model that rewrites.
        #[arg(long, default_value = "qwen2.5-coder-1.5b")]
        rewriter: String,
        /// Seed of the first rewrite.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        model: ModelArgs,
        #[command(flatten)]
        coding: CodingArgs,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// Questions answered per second by one answerer over TCP on loopback
    /// for many askers, batched against one question per forward pass;
    /// latency per request and wire bytes per answer bit.
    Swarm {
        /// The answerer's model.
        #[arg(long, default_value = "qwen2.5-coder-0.5b")]
        model: String,
        /// ONNX Runtime intra-op threads [default: available cores, at most 4].
        #[arg(long)]
        threads: Option<usize>,
        /// Numbers of askers to run, one after another.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
        askers: Vec<usize>,
        /// Requests (of ten questions) per asker.
        #[arg(long, default_value_t = 1)]
        requests: usize,
        /// Askers of the one-question-per-pass baseline run (0: none).
        #[arg(long, default_value_t = 32)]
        baseline_askers: usize,
        /// Problems and gold answers (JSON lines).
        #[arg(long, default_value = "config/tasks/arith.jsonl")]
        tasks: PathBuf,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// One answerer (real server and actor, fake model) under many
    /// concurrent sessions on loopback for a fixed time, then the same with
    /// idle clients flooding it: sessions/s, latency, lost and mixed-up
    /// sessions, memory and file descriptors.
    Load {
        /// Sessions open at once.
        #[arg(long, default_value_t = 1000)]
        sessions: usize,
        /// Seconds each run holds the load.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Requests (of 3 questions) per session before the next opens.
        #[arg(long, default_value_t = 5)]
        requests: usize,
        /// Clients sending half a frame and stalling, in the second run (0: no second run).
        #[arg(long, default_value_t = 10)]
        idle_clients: usize,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// The load of `bench load` through a cluster router to 1, 2, 3
    /// answerer nodes (one process each), with an instant model and with
    /// model calls of a fixed time; plus the same without a cluster.
    Cluster {
        /// Answerer node counts.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3")]
        replicas: Vec<usize>,
        /// Milliseconds per model call, one series each.
        #[arg(long, value_delimiter = ',', default_value = "0,20")]
        call_ms: Vec<u64>,
        /// Sessions open at once.
        #[arg(long, default_value_t = 200)]
        sessions: usize,
        /// Seconds each run holds the load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Requests (of 3 questions) per session before the next opens.
        #[arg(long, default_value_t = 5)]
        requests: usize,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// What an answer bit costs over the native frames against the
    /// OpenAI-compatible path (`serve --openai` asked by an answerer with
    /// `backend = "openai"`), same model and requests, in one run.
    AnswerPath {
        /// The answerer's model.
        #[arg(long, default_value = "smollm2-135m")]
        model: String,
        /// Requests of ten questions per path.
        #[arg(long, default_value_t = 20)]
        requests: usize,
        /// ONNX Runtime intra-op threads.
        #[arg(long, default_value_t = 2)]
        threads: usize,
        /// Task file with gold answers.
        #[arg(long, default_value = "config/tasks/arith.jsonl")]
        tasks: PathBuf,
        /// Ask this OpenAI-compatible endpoint (HOST:PORT of its
        /// http://HOST:PORT/v1) instead of `serve --openai` over --model.
        #[arg(long, value_name = "HOST:PORT")]
        endpoint: Option<String>,
        /// The endpoint's model name [default: --model].
        #[arg(long, requires = "endpoint")]
        endpoint_model: Option<String>,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
    /// One answerer node of `bench cluster` (started by it).
    #[command(hide = true)]
    ClusterNode {
        #[arg(long)]
        name: String,
        #[arg(long)]
        listen: String,
        #[arg(long = "seed")]
        seeds: Vec<String>,
        #[arg(long)]
        cookie_file: PathBuf,
        #[arg(long, default_value_t = 0)]
        call_ms: u64,
    },
    /// Load time, prefill and decode speed (batch 1, 8, 32) and memory of
    /// each model, beside this machine's measured memory bandwidth and
    /// matrix-multiply rate.
    Models {
        /// Models to measure [default: every model that is set up].
        #[arg(long = "model")]
        models: Vec<String>,
        /// ONNX Runtime intra-op threads [default: available cores, at most 4].
        #[arg(long)]
        threads: Option<usize>,
        /// Prompt tokens for the prefill measurement.
        #[arg(long, default_value_t = 256)]
        prefill_tokens: usize,
        /// Decode steps per batch size.
        #[arg(long, default_value_t = 32)]
        decode_steps: usize,
        /// Also write the results table (Markdown) to this file.
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },
}

#[derive(Args, Clone)]
struct ModelArgs {
    /// Model name from crates/inference/models.toml [default: the registry's default].
    #[arg(long)]
    model: Option<String>,
    /// Load the model from this directory (model.onnx, tokenizer.json,
    /// config.json) instead of the cache.
    #[arg(long, value_name = "DIR", conflicts_with = "model")]
    model_dir: Option<PathBuf>,
    /// ONNX Runtime intra-op threads [default: available cores, at most 4].
    #[arg(long)]
    threads: Option<usize>,
}

#[derive(Args, Clone)]
struct CodingArgs {
    /// Compression level, 1 (fastest) to 9 (codes each input with whichever
    /// of smollm2-135m and qwen2.5-coder-0.5b predicts its first KB best,
    /// unless --model says otherwise); also `-1` … `-9`,
    /// `--fast` (1) and `--best` (9). The file records what decoding needs,
    /// so decompress takes no level. README.md lists each level's measured
    /// size and speed [default: 6].
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=9))]
    level: Option<u8>,
    #[arg(short = '1', hide = true)]
    level1: bool,
    #[arg(short = '2', hide = true)]
    level2: bool,
    #[arg(short = '3', hide = true)]
    level3: bool,
    #[arg(short = '4', hide = true)]
    level4: bool,
    #[arg(short = '5', hide = true)]
    level5: bool,
    #[arg(short = '6', hide = true)]
    level6: bool,
    #[arg(short = '7', hide = true)]
    level7: bool,
    #[arg(short = '8', hide = true)]
    level8: bool,
    #[arg(short = '9', hide = true)]
    level9: bool,
    /// Level 1.
    #[arg(long)]
    fast: bool,
    /// Level 9.
    #[arg(long)]
    best: bool,
    /// Tokens of context each stream sees (overrides the level); when the
    /// window is full it slides, keeping its last half.
    #[arg(long, value_name = "TOKENS")]
    window: Option<u32>,
    /// Most streams coded side by side (overrides the level): more is
    /// faster, each costs a cold start.
    #[arg(long, value_name = "N")]
    streams: Option<u32>,
    /// Fewest tokens per stream (overrides the level): shorter inputs get
    /// fewer streams.
    #[arg(long, value_name = "TOKENS")]
    min_segment: Option<u32>,
    /// Code with the model alone, without the match model of the text's own
    /// repeats.
    #[arg(long)]
    no_mix: bool,
    /// LoRA adapter: `auto` (the installed adapter, or none, that codes the
    /// first 256 tokens best; the choice and its cost are printed), `none`,
    /// an installed adapter's name (`tenbits models list` shows them), or
    /// an `.onnx_adapter` file. The file records it; decompress finds it.
    #[arg(long, default_value = "auto")]
    adapter: AdapterChoice,
}

/// A model loaded for a command, with the name recorded in headers.
pub struct LoadedModel {
    pub name: String,
    pub model: OnnxModel,
}

pub fn settings(threads: Option<usize>) -> SessionSettings {
    match threads {
        Some(threads) => SessionSettings { threads },
        None => SessionSettings::default(),
    }
}

/// The name a model goes by: a directory's own name, else the registry
/// name asked for, else the registry's default.
fn model_name(name: Option<&str>, dir: Option<&Path>) -> String {
    match (dir, name) {
        (Some(dir), _) => dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "custom".into()),
        (None, Some(name)) => name.to_string(),
        (None, None) => Registry::embedded().defaults.model,
    }
}

/// Where the model's files are: `dir`, else the registered model `name`'s
/// cache directory (an error that says what to run if it is not set up).
fn model_dir(name: &str, dir: Option<&Path>) -> Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir.to_path_buf()),
        None => Ok(Registry::embedded().set_up_dir(name)?),
    }
}

/// Loads a model by registry name or from a directory; with `lora`, its
/// graph with LoRA inputs (an error if it has none).
fn load_model(
    name: Option<&str>,
    dir: Option<&Path>,
    threads: Option<usize>,
    lora: bool,
) -> Result<LoadedModel> {
    let name = model_name(name, dir);
    let dir = model_dir(&name, dir)?;
    tracing::info!(model = %name, dir = %dir.display(), lora, "loading model");
    let model = if lora {
        if !OnnxModel::has_lora_graph(&dir) {
            bail!(
                "model `{name}` in {} has no LoRA graph (model-lora.onnx); convert it with \
                 --lora-rank, or use --adapter none",
                dir.display()
            );
        }
        OnnxModel::load_for_adapters(&dir, settings(threads))
    } else {
        OnnxModel::load(&dir, settings(threads))
    }
    .with_context(|| format!("cannot load model `{name}`"))?;
    Ok(LoadedModel { name, model })
}

impl CodingArgs {
    /// The level asked for, by whichever flag.
    fn level(&self) -> tenbits_lossless::Level {
        let shortcuts = [
            self.level1 || self.fast,
            self.level2,
            self.level3,
            self.level4,
            self.level5,
            self.level6,
            self.level7,
            self.level8,
            self.level9 || self.best,
        ];
        let n = shortcuts
            .iter()
            .rposition(|&on| on)
            .map(|i| i as u8 + 1)
            .or(self.level)
            .unwrap_or(tenbits_lossless::DEFAULT_LEVEL);
        tenbits_lossless::level(n)
    }

    /// `model` with the level's model filled in where none was asked for:
    /// the one of the level's models that codes the start of `data` best
    /// (the choice is printed), or without data the first.
    fn model_args(&self, model: &ModelArgs, data: Option<&[u8]>) -> Result<ModelArgs> {
        let mut model = model.clone();
        let candidates = self.level().models;
        if model.model.is_some() || model.model_dir.is_some() || candidates.is_empty() {
            return Ok(model);
        }
        let Some(data) = data.filter(|_| candidates.len() > 1) else {
            model.model = Some(candidates[0].to_string());
            return Ok(model);
        };
        let sample = &data[..data.len().min(tenbits_lossless::MODEL_ROUTE_BYTES)];
        let mut scores = Vec::new();
        for &name in candidates {
            let mut loaded = load_model(Some(name), None, model.threads, false)?;
            let routing =
                tenbits_lossless::route(&mut loaded.model, sample, 1, usize::MAX, |_, _| Ok(()))?;
            scores.push((name, routing.bits[0], routing.seconds));
        }
        let best = scores
            .iter()
            .fold(scores[0], |b, &s| if s.1 < b.1 { s } else { b });
        let listed: Vec<String> = scores
            .iter()
            .map(|(n, bits, _)| format!("{n} {bits:.0}"))
            .collect();
        eprintln!(
            "model: {} (level {} chooses on the first {} bytes; bits: {}; {:.1} s)",
            best.0,
            self.level().level,
            sample.len(),
            listed.join(", "),
            scores.iter().map(|s| s.2).sum::<f64>()
        );
        model.model = Some(best.0.to_string());
        Ok(model)
    }

    /// Compression options for `loaded`: the level's schedule with the
    /// overrides (compress fits the window to the model's context).
    fn options(&self, loaded: &LoadedModel) -> Options {
        let mut schedule = self.level().schedule;
        if let Some(window) = self.window {
            schedule.window = window;
            schedule.keep = (window / 2).max(1);
        }
        if let Some(streams) = self.streams {
            schedule.max_streams = streams;
        }
        if let Some(min) = self.min_segment {
            schedule.min_segment = min;
        }
        if self.no_mix {
            schedule.mixing = 0;
        }
        Options {
            model_name: loaded.name.clone(),
            schedule: tenbits_lossless::Schedule::Windowed(schedule),
            lossy: None,
        }
    }
}

impl ModelArgs {
    /// The name the model goes by (registry name, or the directory's).
    fn name(&self) -> String {
        model_name(self.model.as_deref(), self.model_dir.as_deref())
    }

    fn load(&self, lora: bool) -> Result<LoadedModel> {
        load_model(
            self.model.as_deref(),
            self.model_dir.as_deref(),
            self.threads,
            lora,
        )
    }

    /// Loads the model for generating and scoring, not coding: its graph
    /// with logits only where asked, where it has one.
    fn load_for_generation(&self) -> Result<LoadedModel> {
        let name = self.name();
        let dir = model_dir(&name, self.model_dir.as_deref())?;
        tracing::info!(model = %name, dir = %dir.display(), "loading model for generation");
        let model = OnnxModel::load_for_rows(&dir, settings(self.threads))
            .with_context(|| format!("cannot load model `{name}`"))?;
        Ok(LoadedModel { name, model })
    }
}

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn token_progress(label: &str) -> (ProgressBar, impl FnMut(Progress)) {
    let bar = token_bar(label);
    let handle = bar.clone();
    let update = move |p: Progress| {
        handle.set_length(p.total_tokens);
        handle.set_position(p.done_tokens);
    };
    (bar, update)
}

/// The style of every progress bar: `template` in indicatif's syntax.
pub fn progress_style(template: &'static str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("static template is valid")
        .progress_chars("=> ")
}

/// Off a terminal a bar cannot draw, so a long run (under `nohup`, in CI)
/// logs where `bar` stands as a plain line instead: `{label}: {pos}/{len}
/// {unit} (… elapsed, eta …)`. Call it after each step of the bar.
pub fn log_progress_off_terminal(bar: &ProgressBar, label: &str, unit: &str) {
    if !std::io::stderr().is_terminal() {
        eprintln!(
            "{label}: {}/{} {unit} ({} elapsed, eta {})",
            bar.position(),
            bar.length().unwrap_or(0),
            HumanDuration(bar.elapsed()),
            HumanDuration(bar.eta())
        );
    }
}

/// An empty token progress bar labelled `label`.
pub fn token_bar(label: &str) -> ProgressBar {
    let bar = ProgressBar::new(0);
    bar.set_style(progress_style(
        "{msg:>12} [{bar:30}] {pos}/{len} tokens ({per_sec}, eta {eta})",
    ));
    bar.set_message(label.to_string());
    bar
}

fn read_input(input: Option<&Path>) -> Result<Vec<u8>> {
    match input {
        Some(path) if path != Path::new("-") => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
        }
        _ => {
            let mut data = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut data)
                .context("cannot read stdin")?;
            Ok(data)
        }
    }
}

/// Writes to `output` through a temporary file renamed into place, so a
/// failure never leaves a partial file; or to stdout. A file that
/// existed keeps its permissions; a new one gets 0666 less the umask, as
/// a plain write would. A stdout that is closed or full is an error.
fn write_output(output: Option<&Path>, data: &[u8], binary: bool) -> Result<()> {
    let mut out = Output::create(output, binary)?;
    out.write_all(data).context("cannot write the output")?;
    out.finish()
}

/// Where `compress` and `decompress` write, as they go: a temporary file
/// beside `output` (renamed into place by [`Output::finish`], removed if
/// dropped before), or stdout.
enum Output {
    File {
        tmp: tempfile::NamedTempFile,
        path: PathBuf,
    },
    Stdout(std::io::StdoutLock<'static>),
}

impl Output {
    /// Checks what can be checked before any work: the directory, a
    /// terminal for binary data, a closed stdout.
    fn create(output: Option<&Path>, binary: bool) -> Result<Self> {
        match output {
            Some(path) => {
                let dir = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                let existing = std::fs::metadata(path).ok().map(|m| m.permissions());
                let tmp = tempfile::Builder::new()
                    .prefix(".tenbits-")
                    .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666))
                    .tempfile_in(dir)
                    .with_context(|| {
                        format!("cannot create a temporary file in {}", dir.display())
                    })?;
                if let Some(permissions) = existing {
                    tmp.as_file()
                        .set_permissions(permissions)
                        .with_context(|| {
                            format!("cannot keep the permissions of {}", path.display())
                        })?;
                }
                Ok(Output::File {
                    tmp,
                    path: path.to_path_buf(),
                })
            }
            None => {
                let stdout = std::io::stdout();
                if binary && stdout.is_terminal() {
                    bail!("refusing to write compressed data to a terminal; use -o FILE or redirect stdout");
                }
                if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
                    bail!("cannot write to stdout: it is closed (>&-); redirect it or use -o FILE");
                }
                Ok(Output::Stdout(stdout.lock()))
            }
        }
    }

    /// Flushes, and renames a file into place.
    fn finish(self) -> Result<()> {
        match self {
            Output::File { tmp, path } => {
                tmp.as_file()
                    .sync_all()
                    .context("cannot write the output")?;
                tmp.persist(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?;
                Ok(())
            }
            Output::Stdout(mut stdout) => stdout.flush().context("cannot write to stdout"),
        }
    }
}

impl Write for Output {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Output::File { tmp, .. } => tmp.write(buf),
            Output::Stdout(s) => s
                .write(buf)
                .map_err(|e| std::io::Error::new(e.kind(), format!("stdout: {e}"))),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Output::File { tmp, .. } => tmp.flush(),
            Output::Stdout(s) => s
                .flush()
                .map_err(|e| std::io::Error::new(e.kind(), format!("stdout: {e}"))),
        }
    }
}

/// The input as a reader, with its length where known (a file).
fn open_input(input: Option<&Path>) -> Result<(Box<dyn Read>, Option<u64>)> {
    match input {
        Some(path) if path != Path::new("-") => {
            let file = std::fs::File::open(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let len = file.metadata().ok().map(|m| m.len());
            Ok((Box::new(std::io::BufReader::new(file)), len))
        }
        _ => Ok((Box::new(std::io::stdin().lock()), None)),
    }
}

/// A progress bar over input bytes (a spinner when the total is unknown)
/// and its update.
fn byte_progress(
    label: &str,
    total: Option<u64>,
) -> (ProgressBar, impl FnMut(tenbits_lossless::StreamProgress)) {
    let bar = match total {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::new_spinner(),
    };
    let template = match total {
        Some(_) => "{msg:>12} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, eta {eta})",
        None => "{msg:>12} {spinner} {bytes} ({bytes_per_sec})",
    };
    bar.set_style(progress_style(template));
    bar.set_message(label.to_string());
    let handle = bar.clone();
    let update = move |p: tenbits_lossless::StreamProgress| {
        handle.set_position(p.done_bytes);
        if p.blocks > 1 {
            handle.set_message(format!("block {}", p.blocks));
        }
    };
    (bar, update)
}

/// Whether the model `model` names has a graph with LoRA inputs.
fn model_has_lora_graph(model: &ModelArgs) -> bool {
    model_dir(&model.name(), model.model_dir.as_deref())
        .is_ok_and(|d| OnnxModel::has_lora_graph(&d))
}

/// Loads the coder for `data` with the adapter `coding` asks for (routing
/// for `auto`), and says which it chose.
fn load_coder(model: &ModelArgs, coding: &CodingArgs, data: &[u8]) -> Result<LoadedModel> {
    let model = &coding.model_args(model, Some(data))?;
    let candidates = tenbits_lossless::adapters::candidates(&model.name(), &coding.adapter)?;
    // `auto` without adapters installed (or a model without LoRA inputs,
    // where every adapter would be refused) is the base model, at its speed.
    let lora = !candidates.is_empty()
        && (coding.adapter != AdapterChoice::Auto || model_has_lora_graph(model));
    let candidates = if lora { candidates } else { Vec::new() };
    let mut loaded = model.load(lora)?;
    let applied =
        tenbits_lossless::adapters::apply(&mut loaded.model, &coding.adapter, &candidates, data)?;
    if let Some((routing, names)) = &applied.routing {
        let scores: Vec<String> = names
            .iter()
            .zip(&routing.bits)
            .map(|(n, b)| format!("{n} {:.0}", b))
            .collect();
        eprintln!(
            "adapter: {} (routed on {} tokens in {:.2} s; bits: {})",
            names[routing.best],
            routing.tokens,
            routing.seconds,
            scores.join(", ")
        );
    } else if let Some(id) = &applied.adapter {
        eprintln!("adapter: {id}");
    }
    Ok(loaded)
}

fn compress_command(
    input: Option<&Path>,
    output: Option<&Path>,
    block_bytes: usize,
    model: &ModelArgs,
    coding: &CodingArgs,
) -> Result<()> {
    if block_bytes == 0 {
        bail!("--block-size must be at least 1 byte");
    }
    let (mut reader, total) = open_input(input)?;
    // The first block picks the model and adapter; an input longer than a
    // block is coded block by block, in bounded memory.
    let mut first = Vec::new();
    (&mut reader)
        .take(block_bytes as u64)
        .read_to_end(&mut first)
        .context("cannot read the input")?;
    let mut loaded = load_coder(model, coding, &first)?;
    let options = coding.options(&loaded);
    let mut out = Output::create(output, true)?;
    let (bar, mut update) = byte_progress("compressing", total);
    let stats = tenbits_lossless::compress_stream(
        &mut loaded.model,
        std::io::Cursor::new(first).chain(reader),
        &mut out,
        &options,
        block_bytes,
        total,
        &mut update,
    )?;
    bar.finish_and_clear();
    out.finish()?;
    let bpb = |bits: f64| {
        if stats.input_bytes == 0 {
            0.0
        } else {
            bits / stats.input_bytes as f64
        }
    };
    eprintln!(
        "{} -> {} bytes ({:.3} bits/byte; model cross-entropy {:.3}), {} tokens{}",
        stats.input_bytes,
        stats.output_bytes,
        bpb(stats.output_bytes as f64 * 8.0),
        bpb(stats.model_bits),
        stats.tokens,
        if stats.blocks > 1 {
            format!(" in {} blocks", stats.blocks)
        } else {
            String::new()
        }
    );
    Ok(())
}

fn decompress_command(
    input: Option<&Path>,
    output: Option<&Path>,
    model: Option<&str>,
    model_dir: Option<&Path>,
    adapter: Option<&Path>,
    threads: Option<usize>,
) -> Result<()> {
    let (reader, total) = open_input(input)?;
    let decoder = tenbits_lossless::StreamDecoder::open(reader)?;
    let header = decoder.header().clone();
    let name = model
        .map(str::to_string)
        .unwrap_or_else(|| tenbits_lossless::model_name(&header.model));
    let adapter =
        tenbits_lossless::adapters::for_header(&name, header.adapter_id.as_deref(), adapter)?;
    let lora = adapter.is_some();
    let mut loaded = if model_dir.is_some() {
        load_model(None, model_dir, threads, lora)?
    } else {
        load_model(Some(&name), None, threads, lora)?
    };
    loaded.model.set_adapter(adapter)?;
    if let Some(note) = &header.lossy {
        eprintln!("note: this file holds a lossy rewrite ({note}); it decodes to the rewrite");
    }
    let mut out = Output::create(output, false)?;
    let (bar, mut update) = byte_progress("decompressing", total);
    decoder.run(&mut loaded.model, &mut out, total, &mut update)?;
    bar.finish_and_clear();
    out.finish()
}

#[allow(clippy::too_many_arguments)]
fn lossy_command(
    input: Option<&Path>,
    output: Option<&Path>,
    rewriter: &str,
    samples: usize,
    seed: u64,
    keep: &str,
    model: &ModelArgs,
    coding: &CodingArgs,
) -> Result<()> {
    use tenbits_lossy::{compress_lossy, LossySettings, Survival};
    let survival = match keep {
        "answer" => Survival::SameAnswer,
        "nothing" => Survival::Anything,
        other => bail!("unknown --keep {other:?}; expected answer or nothing"),
    };
    let data = read_input(input)?;
    let threads = settings(model.threads).threads;
    eprintln!("loading the rewriter {rewriter}");
    let mut rewriter = tenbits_agents::onnx::OnnxChatModel::load(rewriter, threads)?;
    let mut loaded = load_coder(model, coding, &data)?;
    let options = coding.options(&loaded);
    let lossy_settings = LossySettings {
        samples,
        seed,
        ..LossySettings::default()
    };
    let bar = ProgressBar::new_spinner();
    bar.set_message(format!("sampling {samples} rewrites and coding each"));
    bar.enable_steady_tick(std::time::Duration::from_millis(200));
    let result = compress_lossy(
        &mut rewriter,
        &mut loaded.model,
        &data,
        &lossy_settings,
        &survival,
        &options,
    )?;
    bar.finish_and_clear();
    for (i, c) in result.candidates.iter().enumerate() {
        let what = if i == 0 {
            "original".to_string()
        } else {
            format!("rewrite {i}")
        };
        eprintln!(
            "{} {what:<11} {:>6} bytes coded ({} bytes of text){}{}",
            if i == result.chosen { "*" } else { " " },
            c.coded_bytes,
            c.text.len(),
            if c.survives { "" } else { ", answer lost" },
            if c.truncated { ", cut off" } else { "" },
        );
    }
    write_output(output, &result.container, true)?;
    eprintln!(
        "{} -> {} bytes ({:.4} of the original)",
        data.len(),
        result.container.len(),
        result.container.len() as f64 / data.len().max(1) as f64
    );
    Ok(())
}

fn info_command(input: &Path) -> Result<()> {
    let packed = read_input(Some(input))?;
    if !tenbits_coding::is_blocks(&packed) {
        return container_info(&packed);
    }
    // A file of blocks: its totals (every block's frame and header read,
    // the end checked), then the first block's header.
    let mut reader = tenbits_coding::BlockReader::new(&packed[..])?;
    let (mut blocks, mut original, mut tokens, mut first) = (0u64, 0u64, 0u64, None);
    while let Some(block) = reader.next_block()? {
        let (h, _) = tenbits_coding::read_container(&block)?;
        blocks += 1;
        original += h.original_len;
        tokens += h.token_count;
        reader.decoded(h.original_len);
        first.get_or_insert(block);
    }
    println!(
        "file of blocks   of at most {} input bytes each",
        reader.block_bytes()
    );
    println!("blocks           {blocks}");
    println!("tokens           {tokens}");
    println!("original bytes   {original}");
    println!("file bytes       {}", packed.len());
    if original > 0 {
        println!(
            "bits/byte        {:.3}",
            packed.len() as f64 * 8.0 / original as f64
        );
    }
    println!("-- first block --");
    container_info(&first.context("a file of blocks without a block")?)
}

/// `info` of one container.
fn container_info(packed: &[u8]) -> Result<()> {
    use tenbits_lossless::{FilesId, ModelRef, Schedule};
    let h = tenbits_lossless::inspect(packed)?;
    let header_bytes = tenbits_lossless::header_bytes(packed)?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    // Names come from the file: model_name escapes them.
    let name = tenbits_lossless::model_name(&h.model);
    println!("format version   {}", h.format_version);
    match &h.model {
        ModelRef::Registered(id) => println!("model            {name} (registry id {id})"),
        ModelRef::Named(_) => println!("model            {name}"),
    }
    match h.files {
        FilesId::Full { model, tokenizer } => {
            println!("model sha256     {}… (first 128 bits)", hex(&model));
            println!("tokenizer sha256 {}… (first 128 bits)", hex(&tokenizer));
        }
        FilesId::Short(files) => println!(
            "files id         {} (32 bits of sha256 over the model's and tokenizer's sha256)",
            hex(&files)
        ),
        FilesId::Tiny(files) => println!(
            "files id         {} (16 bits of sha256 over the model's and tokenizer's sha256)",
            hex(&files)
        ),
    }
    println!(
        "adapter          {}",
        h.adapter_id
            .as_deref()
            .map_or("none".to_string(), |a| a.escape_debug().to_string())
    );
    match &h.lossy {
        Some(note) => println!("lossy            yes: a rewrite ({})", note.escape_debug()),
        None => println!("lossy            no"),
    }
    match h.schedule {
        Schedule::Chunked {
            chunk_tokens,
            max_batch,
        } => {
            println!("chunk tokens     {chunk_tokens}");
            println!("max batch        {max_batch}");
        }
        Schedule::Windowed(w) => {
            let plan = tenbits_lossless::Plan::new(h.token_count as usize, &w);
            println!(
                "schedule         {} streams (at most {}, segments of at least {} tokens), window {} keeping {}",
                plan.segments.len(),
                w.max_streams,
                w.min_segment,
                w.window,
                w.keep
            );
            println!(
                "mixing           {}",
                if w.mixing == 1 { "match model" } else { "none" }
            );
        }
    }
    println!("tokens           {}", h.token_count);
    println!("original bytes   {}", h.original_len);
    println!(
        "container bytes  {} (header {header_bytes}, payload {})",
        packed.len(),
        packed.len() - header_bytes
    );
    if h.original_len > 0 {
        println!(
            "bits/byte        {:.3} (payload alone {:.3})",
            packed.len() as f64 * 8.0 / h.original_len as f64,
            (packed.len() - header_bytes) as f64 * 8.0 / h.original_len as f64
        );
    }
    println!("checksum         {}", hex(&h.checksum));
    Ok(())
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compress {
            input,
            output,
            block_size,
            model,
            coding,
        } => compress_command(
            input.as_deref(),
            output.as_deref(),
            block_size,
            &model,
            &coding,
        ),
        Command::Decompress {
            input,
            output,
            model,
            model_dir,
            adapter,
            threads,
        } => decompress_command(
            input.as_deref(),
            output.as_deref(),
            model.as_deref(),
            model_dir.as_deref(),
            adapter.as_deref(),
            threads,
        ),
        Command::Info { input } => info_command(&input),
        Command::Lossy {
            input,
            output,
            rewriter,
            samples,
            seed,
            keep,
            model,
            coding,
        } => lossy_command(
            input.as_deref(),
            output.as_deref(),
            &rewriter,
            samples,
            seed,
            &keep,
            &model,
            &coding,
        ),
        Command::Models(command) => chat::models_command(&command),
        Command::Serve {
            config,
            openai: false,
        } => agents::serve_command(&config),
        Command::Serve {
            config,
            openai: true,
        } => agents::serve_openai_command(&config),
        Command::Ask { config, problem } => agents::ask_command(&config, &problem),
        Command::Simulate { config } => agents::simulate_command(&config),
        Command::Cluster(ClusterCommand::Status { config, wait }) => {
            agents::cluster_status_command(&config, wait)
        }
        Command::Generate {
            prompt,
            raw,
            model,
            sampling,
        } => chat::generate_command(&model, &prompt, raw, &sampling),
        Command::Chat { model, sampling } => chat::chat_command(&model, &sampling),
        Command::Eval(args) => eval::eval_command(&args),
        Command::Frontier(args) => eval::frontier_command(&args),
        Command::TwentyQuestions(args) => twenty::twenty_command(&args),
        Command::Bench(BenchCommand::Swarm {
            model,
            threads,
            askers,
            requests,
            baseline_askers,
            tasks,
            markdown,
        }) => {
            let options = tenbits_bench::SwarmOptions {
                model: &model,
                threads: settings(threads).threads,
                askers: &askers,
                requests,
                baseline_askers,
                tasks: &tasks,
            };
            let report = tenbits_bench::swarm(&options, &mut bench::TerminalSink::default())?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::Load {
            sessions,
            seconds,
            requests,
            idle_clients,
            markdown,
        }) => {
            let options = tenbits_bench::LoadOptions {
                sessions,
                seconds,
                requests_per_session: requests,
                idle_clients,
            };
            let report = tenbits_bench::load(&options, &mut bench::TerminalSink::default())?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::Cluster {
            replicas,
            call_ms,
            sessions,
            seconds,
            requests,
            markdown,
        }) => {
            let exe = std::env::current_exe().context("cannot find this program to start nodes")?;
            let options = tenbits_bench::ClusterOptions {
                replicas,
                call_ms,
                load: tenbits_bench::LoadOptions {
                    sessions,
                    seconds,
                    requests_per_session: requests,
                    idle_clients: 0,
                },
                node_command: vec![
                    exe.to_string_lossy().into_owned(),
                    "bench".into(),
                    "cluster-node".into(),
                ],
            };
            let report = tenbits_bench::cluster(&options, &mut bench::TerminalSink::default())?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::AnswerPath {
            model,
            requests,
            threads,
            tasks,
            endpoint,
            endpoint_model,
            markdown,
        }) => {
            let options = tenbits_bench::AnswerPathOptions {
                model: &model,
                requests,
                threads,
                tasks: &tasks,
                endpoint: endpoint
                    .as_deref()
                    .map(|e| (e, endpoint_model.as_deref().unwrap_or(&model))),
            };
            let report = tenbits_bench::answer_path(&options, &mut bench::TerminalSink::default())?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::ClusterNode {
            name,
            listen,
            seeds,
            cookie_file,
            call_ms,
        }) => tenbits_bench::cluster_node(&name, &listen, &seeds, cookie_file, call_ms),
        Command::Bench(BenchCommand::Models {
            models,
            threads,
            prefill_tokens,
            decode_steps,
            markdown,
        }) => {
            let options = tenbits_bench::ModelsOptions {
                names: &models,
                settings: settings(threads),
                prefill_tokens,
                decode_steps,
                sample: include_bytes!("../examples/data/sample.txt"),
            };
            let report = tenbits_bench::models(&options, &mut bench::TerminalSink::default())?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::Adapters {
            domains,
            model,
            coding,
            markdown,
        }) => {
            let domains = domains
                .iter()
                .map(|d| parse_domain(d))
                .collect::<Result<Vec<_>>>()?;
            let adapters =
                tenbits_lossless::adapters::candidates(&model.name(), &AdapterChoice::Auto)?;
            if adapters.is_empty() {
                bail!(
                    "no adapters are installed for `{}`; run `python3 scripts/setup.py --model {}`",
                    model.name(),
                    model.name()
                );
            }
            let mut loaded = model.load(true)?;
            let options = coding.options(&loaded);
            let mut sink = bench::TerminalSink::default();
            let report = tenbits_bench::adapters(
                &mut loaded.model,
                &adapters,
                &domains,
                &options,
                &mut sink,
            )?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::Lossy {
            results,
            data,
            n,
            limit,
            all_problems,
            rewriter,
            seed,
            model,
            coding,
            markdown,
        }) => {
            let mut responses = tenbits_bench::responses(&results, &data, !all_problems)?;
            if let Some(limit) = limit {
                responses.truncate(limit);
            }
            if responses.is_empty() {
                bail!("no gradable `large` replies in the results files");
            }
            let threads = settings(model.threads).threads;
            eprintln!("loading the rewriter {rewriter}");
            let mut rewriter = tenbits_agents::onnx::OnnxChatModel::load(&rewriter, threads)?;
            // `auto` routes once, on the first response.
            let mut loaded = load_coder(&model, &coding, responses[0].text.as_bytes())?;
            let options = coding.options(&loaded);
            let lossy_settings = tenbits_lossy::LossySettings {
                seed,
                ..Default::default()
            };
            let mut sink = bench::TerminalSink::default();
            let report = tenbits_bench::lossy(
                &mut rewriter,
                &mut loaded.model,
                &responses,
                &n,
                &lossy_settings,
                &options,
                &mut sink,
            )?;
            report.save(markdown.as_deref())
        }
        Command::Bench(BenchCommand::Lossless {
            files,
            model,
            coding,
            markdown,
        }) => {
            // One model for every file: a level that chooses per input
            // takes its first model here (name one with --model).
            let mut loaded = coding.model_args(&model, None)?.load(false)?;
            let options = coding.options(&loaded);
            let threads = settings(model.threads).threads;
            let mut sink = bench::TerminalSink::default();
            let report =
                tenbits_bench::lossless(&mut loaded.model, threads, &files, &options, &mut sink)?;
            report.save(markdown.as_deref())
        }
    }
}

/// `ADAPTER=PATH[,PATH...]`: directories stand for their files, sorted.
fn parse_domain(text: &str) -> Result<tenbits_bench::DomainFiles> {
    let (adapter, paths) = text
        .split_once('=')
        .with_context(|| format!("--domain {text:?}: expected ADAPTER=PATH[,PATH...]"))?;
    let mut files = Vec::new();
    for p in paths.split(',').filter(|p| !p.is_empty()) {
        let path = PathBuf::from(p);
        if path.is_dir() {
            let mut inner: Vec<PathBuf> = std::fs::read_dir(&path)
                .with_context(|| format!("cannot list {}", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            inner.sort();
            files.extend(inner);
        } else if path.is_file() {
            files.push(path);
        } else {
            bail!(
                "--domain {adapter}: {} is not a file or directory",
                path.display()
            );
        }
    }
    if files.is_empty() {
        bail!("--domain {adapter}: no files");
    }
    Ok(tenbits_bench::DomainFiles {
        adapter: adapter.to_string(),
        files,
    })
}

/// Set when the process started with stdout closed (see
/// [`stdout_was_closed`]).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether stdout was closed when the process started. Rust's runtime
/// opens /dev/null read-write in place of a closed standard descriptor
/// (so that no file lands on fd 1), and writes there succeed unseen; a
/// shell's `> /dev/null` opens it write-only, so the two are told apart.
fn stdout_was_closed() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(null) = std::fs::metadata("/dev/null") else {
        return false;
    };
    // SAFETY: fstat and fcntl(F_GETFL) only read the descriptor's state
    // into a zeroed struct we own.
    let (stat, flags) = unsafe {
        let mut stat: libc::stat = std::mem::zeroed();
        if libc::fstat(1, &mut stat) != 0 {
            return true;
        }
        (stat, libc::fcntl(1, libc::F_GETFL))
    };
    stat.st_mode & libc::S_IFMT == libc::S_IFCHR
        && stat.st_rdev == null.rdev()
        && flags >= 0
        && flags & libc::O_ACCMODE == libc::O_RDWR
}

fn main() {
    STDOUT_CLOSED.store(stdout_was_closed(), std::sync::atomic::Ordering::Relaxed);
    // A closed pipe (`tenbits info f.tb | head -1`) ends the process as it
    // does every Unix tool, instead of a panic in println!.
    // SAFETY: restoring the default disposition of one signal, before any
    // thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TENBITS_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .init();
    if let Err(err) = run(Cli::parse()) {
        // One line: the error and its causes.
        let causes: Vec<String> = err.chain().map(|c| c.to_string()).collect();
        eprintln!("tenbits: error: {}", causes.join(": "));
        std::process::exit(1);
    }
}
