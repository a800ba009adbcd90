//! `tenbits models`, `tenbits generate` and `tenbits chat`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use tenbits_inference::{
    cache_dir, Completion, Generator, LanguageModel, Message, Registry, Request, Sampling,
};

use crate::ModelArgs;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// The registered models and whether each is set up.
    List,
    /// Download (from PyPI) and convert a model into the cache, by running
    /// `python3 scripts/setup.py --model NAME` from this source tree.
    Fetch {
        /// Model name (see `tenbits models list`), or `all`.
        name: String,
    },
    /// What a model is: source, architecture, sizes, cache location.
    Info {
        /// Model name (see `tenbits models list`).
        name: String,
    },
}

/// Sampling options shared by `generate` and `chat`.
#[derive(Args, Clone)]
pub struct SamplingArgs {
    /// Most new tokens.
    #[arg(long, default_value_t = 256)]
    max_tokens: usize,
    /// 0 is greedy (the default, reproducible); above 0 samples.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Nucleus sampling: keep the most likely tokens up to this mass.
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    /// Random seed; the same seed, prompt and settings give the same text.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop when this string appears (repeatable).
    #[arg(long)]
    stop: Vec<String>,
    /// System prompt [default: the model's own].
    #[arg(long)]
    system: Option<String>,
}

impl SamplingArgs {
    fn sampling(&self) -> Sampling {
        Sampling {
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: self.stop.clone(),
        }
    }
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

pub fn models_command(command: &ModelsCommand) -> Result<()> {
    let registry = Registry::embedded();
    let cache = cache_dir();
    match command {
        ModelsCommand::List => {
            println!(
                "{:<20} {:<7} {:<30} {:<22} status",
                "name", "role", "model", "source format"
            );
            for m in &registry.models {
                let dir = m.cached_dir(&cache);
                let status = if dir.join("model.onnx").is_file() {
                    format!("ready ({})", human_bytes(dir_size(&dir)))
                } else {
                    format!("not set up: tenbits models fetch {}", m.name)
                };
                let default = if m.name == registry.defaults.model {
                    " (default)"
                } else {
                    ""
                };
                println!(
                    "{:<20} {:<7} {:<30} {:<22} {status}{default}",
                    m.name, m.role, m.display_name, m.format
                );
            }
            // Adapters: the shipped ones (installed or not) and any other
            // file in a model's adapter directory.
            let mut rows = Vec::new();
            for a in &registry.adapters {
                let path = a.cached_path(&cache);
                let status = if path.is_file() {
                    format!("installed ({})", human_bytes(file_size(&path)))
                } else {
                    format!("not installed: tenbits models fetch {}", a.model)
                };
                rows.push((a.name.clone(), a.model.clone(), a.domain.clone(), status));
            }
            for m in &registry.models {
                for path in tenbits_inference::installed_adapters(&m.name) {
                    let shipped = registry
                        .adapters
                        .iter()
                        .any(|a| a.cached_path(&cache) == path);
                    if !shipped {
                        let name = tenbits_inference::installed_adapter_name(&path);
                        let status = format!("installed ({})", human_bytes(file_size(&path)));
                        rows.push((name, m.name.clone(), "(not shipped)".into(), status));
                    }
                }
            }
            if !rows.is_empty() {
                println!(
                    "\n{:<20} {:<20} {:<44} status",
                    "adapter", "model", "domain"
                );
                for (name, model, domain, status) in rows {
                    let domain: String = domain.chars().take(44).collect();
                    println!("{name:<20} {model:<20} {domain:<44} {status}");
                }
            }
            Ok(())
        }
        ModelsCommand::Fetch { name } => {
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup.py");
            if !script.is_file() {
                bail!(
                    "{} is not here; run scripts/setup.py from a tenbits source tree",
                    script.display()
                );
            }
            let mut cmd = std::process::Command::new("python3");
            cmd.arg(&script);
            if name == "all" {
                cmd.arg("--all");
            } else {
                registry.model(name)?;
                cmd.args(["--model", name]);
            }
            let status = cmd.status().context("cannot run python3")?;
            if !status.success() {
                bail!("set-up of `{name}` failed ({status}); see the messages above");
            }
            Ok(())
        }
        ModelsCommand::Info { name } => {
            let m = registry.model(name)?;
            let dir = m.cached_dir(&cache);
            println!("name           {}", m.name);
            println!(
                "model          {} ({}, {})",
                m.display_name, m.role, m.license
            );
            println!("architecture   {}", m.architecture);
            println!(
                "source         {} in {} PyPI package(s), GGUF sha256 {}",
                m.format,
                m.parts.len(),
                m.sha256
            );
            println!("convert args   {}", m.convert_args.join(" "));
            println!("cache dir      {}", dir.display());
            let config_path = dir.join("config.json");
            if !config_path.is_file() {
                println!("status         not set up: tenbits models fetch {}", m.name);
                return Ok(());
            }
            let config: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&config_path)?)
                    .with_context(|| format!("{} is not JSON", config_path.display()))?;
            let get = |k: &str| {
                config
                    .get(k)
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "?".into())
            };
            println!(
                "status         ready, {} on disk",
                human_bytes(dir_size(&dir))
            );
            println!(
                "shape          {} layers, hidden {}, {} heads ({} key/value), head dim {}, ffn {}",
                get("num_layers"),
                get("hidden_size"),
                get("num_heads"),
                get("num_kv_heads"),
                get("head_dim"),
                get("intermediate_size")
            );
            println!("vocabulary     {}", get("vocab_size"));
            println!("context        {}", get("context_length"));
            println!(
                "weights        {} (accuracy level {})",
                get("weights"),
                get("matmulnbits_accuracy_level")
            );
            println!("kv cache       {}", get("kv_cache"));
            println!("tensor types   {}", get("source_tensor_types"));
            Ok(())
        }
    }
}

/// `tenbits generate`: one reply, streamed to stdout.
pub fn generate_command(
    model: &ModelArgs,
    prompt: &str,
    raw: bool,
    args: &SamplingArgs,
) -> Result<()> {
    let loaded = model.load_for_generation()?;
    let mut generator = Generator::new(loaded.model)?;
    let prompt_ids = if raw {
        let vocab = generator.model().vocab_size() as u32;
        generator
            .model()
            .tokenizer()
            .encode_bytes(prompt.as_bytes())?
            .into_iter()
            .filter(|&t| t < vocab)
            .collect()
    } else {
        generator.prompt(&conversation(args.system.as_deref(), &[], prompt))?
    };
    let request = Request {
        prompt: prompt_ids,
        sampling: args.sampling(),
    };
    let completion = stream_one(&mut generator, request)?;
    let stats = generator.take_stats();
    tracing::info!(
        prompt_tokens = completion.prompt_tokens,
        new_tokens = completion.tokens.len(),
        finish = ?completion.finish,
        decode_tokens_per_s = stats.decode_tokens as f64 / stats.decode_seconds.max(1e-9),
        "generated"
    );
    Ok(())
}

/// `tenbits chat`: an interactive conversation on stdin/stdout.
pub fn chat_command(model: &ModelArgs, args: &SamplingArgs) -> Result<()> {
    let loaded = model.load_for_generation()?;
    let name = loaded.name.clone();
    let mut generator = Generator::new(loaded.model)?;
    let interactive = std::io::stdin().is_terminal();
    if interactive {
        eprintln!("chatting with {name}; /reset clears the conversation, /exit or Ctrl-D leaves");
    }
    let mut history: Vec<Message> = Vec::new();
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush().ok();
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("cannot read stdin")?;
        let line = line.trim();
        match line {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                history.clear();
                continue;
            }
            _ => {}
        }
        let messages = conversation(args.system.as_deref(), &history, line);
        let request = Request {
            prompt: generator.prompt(&messages)?,
            sampling: args.sampling(),
        };
        let completion = stream_one(&mut generator, request)?;
        history.push(Message::user(line));
        history.push(Message::assistant(completion.text));
    }
    Ok(())
}

fn conversation(system: Option<&str>, history: &[Message], user: &str) -> Vec<Message> {
    let mut messages: Vec<Message> = system.map(Message::system).into_iter().collect();
    messages.extend_from_slice(history);
    messages.push(Message::user(user));
    messages
}

/// Runs one request, printing its text as it arrives.
fn stream_one(generator: &mut Generator, request: Request) -> Result<Completion> {
    let mut stdout = std::io::stdout().lock();
    let mut write_error = None;
    let mut completions = generator.generate(&[request], |_, piece| {
        if write_error.is_none() {
            if let Err(e) = stdout
                .write_all(piece.as_bytes())
                .and_then(|_| stdout.flush())
            {
                write_error = Some(e);
            }
        }
    })?;
    if let Some(e) = write_error {
        return Err(e).context("cannot write to stdout");
    }
    writeln!(stdout).context("cannot write to stdout")?;
    Ok(completions.remove(0))
}

pub fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

pub fn human_bytes(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.2} GB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{:.0} MB", n as f64 / (1u64 << 20) as f64)
    }
}
