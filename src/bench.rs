//! `tenbits bench lossless`: tenbits beside gzip -9, bzip2 -9, xz -9 and
//! zstd -19, all computed in this process on the same bytes.

use std::io::{Read, Write};
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tenbits_lossless::Options;

use crate::LoadedModel;

/// One method's result on one file.
struct Row {
    method: &'static str,
    size: usize,
    compress_s: f64,
    decompress_s: f64,
    /// Peak resident memory in bytes (see `peak_note`).
    peak: u64,
}

/// Peak resident set size of this process, in bytes (Linux `VmHWM`).
fn peak_rss() -> u64 {
    status_kb("VmHWM:") * 1024
}

/// Current resident set size, in bytes.
fn current_rss() -> u64 {
    status_kb("VmRSS:") * 1024
}

fn status_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// Resets the peak so the next reading covers only what follows (Linux
/// `clear_refs` mode 5); harmless where unsupported.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// A results table, printed as it is built and optionally saved as Markdown.
#[derive(Default)]
pub struct Report {
    text: String,
}

impl Report {
    pub fn line(&mut self, line: String) {
        println!("{line}");
        self.text.push_str(&line);
        self.text.push('\n');
    }

    /// Writes the table to `path`, if one is given.
    pub fn save(&self, path: Option<&Path>) -> Result<()> {
        if let Some(path) = path {
            std::fs::write(path, &self.text)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        Ok(())
    }
}

type Codec = (&'static str, fn(&[u8]) -> Vec<u8>, fn(&[u8]) -> Vec<u8>);

fn baselines() -> [Codec; 4] {
    [
        (
            "gzip -9",
            |d| {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
                e.write_all(d).expect("in-memory write");
                e.finish().expect("in-memory write")
            },
            |c| {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(c)
                    .read_to_end(&mut out)
                    .expect("own output decodes");
                out
            },
        ),
        (
            "bzip2 -9",
            |d| {
                let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
                e.write_all(d).expect("in-memory write");
                e.finish().expect("in-memory write")
            },
            |c| {
                let mut out = Vec::new();
                bzip2::read::BzDecoder::new(c)
                    .read_to_end(&mut out)
                    .expect("own output decodes");
                out
            },
        ),
        (
            "xz -9",
            |d| {
                let mut e = liblzma::write::XzEncoder::new(Vec::new(), 9);
                e.write_all(d).expect("in-memory write");
                e.finish().expect("in-memory write")
            },
            |c| {
                let mut out = Vec::new();
                liblzma::read::XzDecoder::new(c)
                    .read_to_end(&mut out)
                    .expect("own output decodes");
                out
            },
        ),
        (
            "zstd -19",
            |d| zstd::bulk::compress(d, 19).expect("in-memory compression"),
            |c| zstd::stream::decode_all(c).expect("own output decodes"),
        ),
    ]
}

fn kb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1000.0 / seconds.max(1e-9)
}

pub fn lossless(
    loaded: &mut LoadedModel,
    files: &[std::path::PathBuf],
    options: &Options,
    threads: Option<usize>,
    markdown: Option<&Path>,
) -> Result<()> {
    let mut report = Report::default();
    report.line(format!(
        "model {} ({} threads), {}-token chunks, batches of up to {}; process RSS with model loaded: {:.0} MB",
        loaded.name,
        threads.map_or_else(|| tenbits_inference::SessionSettings::default().threads.to_string(), |t| t.to_string()),
        options.chunk_tokens,
        options.max_batch,
        current_rss() as f64 / 1e6
    ));
    report.line(String::new());
    report.line("| file | method | bytes | out bytes | bits/byte | ratio | compress KB/s | decompress KB/s | peak MB |".into());
    report.line("|---|---|---:|---:|---:|---:|---:|---:|---:|".into());

    let mut totals: Vec<(&'static str, usize, f64, f64, u64)> = Vec::new();
    let mut total_in = 0usize;
    let mut total_model_bits = 0.0;
    let mut total_payload = 0usize;
    let mut notes = Vec::new();
    for path in files {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rows = Vec::new();

        reset_peak();
        let (bar, mut update) = crate::token_progress("compressing");
        let start = Instant::now();
        let (packed, stats) =
            tenbits_lossless::compress(&mut loaded.model, &data, options, &mut update)?;
        let compress_s = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (bar, mut update) = crate::token_progress("decompressing");
        let start = Instant::now();
        let restored = tenbits_lossless::decompress(&mut loaded.model, &packed, &mut update)?;
        let decompress_s = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if restored != data {
            bail!(
                "{}: tenbits round trip differs from the input",
                path.display()
            );
        }
        rows.push(Row {
            method: "tenbits",
            size: packed.len(),
            compress_s,
            decompress_s,
            peak: peak_rss(),
        });
        total_model_bits += stats.model_bits;
        total_payload += stats.payload_bytes;
        let model_bpb = stats.model_bits / data.len().max(1) as f64;
        notes.push(format!(
            "- {name}: {} tokens in {} chunks / {} batches; model cross-entropy {:.3} bits/byte; payload {} bytes = cross-entropy {:+.2}%; header {} bytes",
            stats.tokens,
            stats.chunks,
            stats.batches,
            model_bpb,
            stats.payload_bytes,
            (stats.payload_bytes as f64 * 8.0 / stats.model_bits.max(1e-9) - 1.0) * 100.0,
            stats.container_bytes - stats.payload_bytes
        ));

        for (method, compress, decompress) in baselines() {
            let before = current_rss();
            reset_peak();
            let start = Instant::now();
            let packed = compress(&data);
            let compress_s = start.elapsed().as_secs_f64();
            let start = Instant::now();
            let restored = decompress(&packed);
            let decompress_s = start.elapsed().as_secs_f64();
            if restored != data {
                bail!("{method} round trip differs on {}", path.display());
            }
            rows.push(Row {
                method,
                size: packed.len(),
                compress_s,
                decompress_s,
                peak: peak_rss().saturating_sub(before),
            });
        }

        for row in &rows {
            report.line(format!(
                "| {name} | {} | {} | {} | {:.3} | {:.4} | {:.1} | {:.1} | {:.0} |",
                row.method,
                data.len(),
                row.size,
                row.size as f64 * 8.0 / data.len().max(1) as f64,
                row.size as f64 / data.len().max(1) as f64,
                kb_per_s(data.len(), row.compress_s),
                kb_per_s(data.len(), row.decompress_s),
                row.peak as f64 / 1e6
            ));
            match totals.iter_mut().find(|t| t.0 == row.method) {
                Some(t) => {
                    t.1 += row.size;
                    t.2 += row.compress_s;
                    t.3 += row.decompress_s;
                    t.4 = t.4.max(row.peak);
                }
                None => totals.push((
                    row.method,
                    row.size,
                    row.compress_s,
                    row.decompress_s,
                    row.peak,
                )),
            }
        }
        total_in += data.len();
    }
    for &(method, size, cs, ds, peak) in &totals {
        report.line(format!(
            "| **total** | {method} | {total_in} | {size} | {:.3} | {:.4} | {:.1} | {:.1} | {:.0} |",
            size as f64 * 8.0 / total_in.max(1) as f64,
            size as f64 / total_in.max(1) as f64,
            kb_per_s(total_in, cs),
            kb_per_s(total_in, ds),
            peak as f64 / 1e6
        ));
    }
    report.line(String::new());
    for note in notes {
        report.line(note);
    }
    let size_of = |m: &str| {
        totals
            .iter()
            .find(|t| t.0 == m)
            .map(|t| t.1 as f64)
            .unwrap_or(f64::NAN)
    };
    report.line(format!(
        "- total: tenbits output is {:.3} of xz -9's and {:.3} of zstd -19's; model cross-entropy {:.3} bits/byte; payload = cross-entropy {:+.2}%",
        size_of("tenbits") / size_of("xz -9"),
        size_of("tenbits") / size_of("zstd -19"),
        total_model_bits / total_in.max(1) as f64,
        (total_payload as f64 * 8.0 / total_model_bits.max(1e-9) - 1.0) * 100.0
    ));
    report.line("- peak MB: tenbits is the whole process's peak resident memory (model and runtime included); the others are the extra memory their own run added.".into());
    report.save(markdown)
}

/// This machine's limits that model speed is compared with.
struct Hardware {
    /// Bytes per second read from memory by `threads` threads.
    read_bandwidth: f64,
    /// fp32 matrix-multiply rate (FLOP/s) of `threads` threads, each
    /// running `matrixmultiply`'s AVX2/FMA kernel on its own 1024³ product.
    matmul_flops: f64,
}

fn measure_hardware(threads: usize) -> Hardware {
    // Read bandwidth: 1 GiB summed by `threads` threads, best of three.
    let words: Vec<u64> = (0..(1u64 << 27)).collect();
    let mut best_read = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let parts: Vec<_> = words
                .chunks(words.len().div_ceil(threads))
                .map(|part| s.spawn(move || part.iter().fold(0u64, |a, &w| a.wrapping_add(w))))
                .collect();
            parts
                .into_iter()
                .map(|h| h.join().expect("sum thread"))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best_read = best_read.min(start.elapsed().as_secs_f64());
    }
    let read_bandwidth = (words.len() * 8) as f64 / best_read;
    drop(words);

    let n = 1024;
    let a = ndarray::Array2::<f32>::from_shape_fn((n, n), |(i, j)| {
        ((i * 7 + j * 3) % 17) as f32 / 17.0
    });
    let mut best_mm = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                let a = &a;
                s.spawn(move || std::hint::black_box(a.dot(a)));
            }
        });
        best_mm = best_mm.min(start.elapsed().as_secs_f64());
    }
    let matmul_flops = threads as f64 * 2.0 * (n * n * n) as f64 / best_mm;
    Hardware {
        read_bandwidth,
        matmul_flops,
    }
}

/// Multiply-accumulate weights of one token's pass, from `config.json`:
/// attention and MLP projections of every layer plus the LM head.
fn weights_per_token(config: &serde_json::Value) -> Option<f64> {
    let get = |k: &str| config.get(k)?.as_f64();
    let (layers, hidden, ffn, heads, kv_heads, head_dim, vocab) = (
        get("num_layers")?,
        get("hidden_size")?,
        get("intermediate_size")?,
        get("num_heads")?,
        get("num_kv_heads")?,
        get("head_dim")?,
        get("vocab_size")?,
    );
    let attention = hidden * heads * head_dim * 2.0 + hidden * kv_heads * head_dim * 2.0;
    let mlp = 3.0 * hidden * ffn;
    Some(layers * (attention + mlp) + hidden * vocab)
}

/// `tenbits bench models`.
pub fn models(
    names: &[String],
    threads: Option<usize>,
    prefill_tokens: usize,
    decode_steps: usize,
    markdown: Option<&Path>,
) -> Result<()> {
    use tenbits_inference::{cache_dir, LanguageModel, OnnxModel, Registry};

    let registry = Registry::embedded();
    let cache = cache_dir();
    let names: Vec<String> = if names.is_empty() {
        registry
            .models
            .iter()
            .filter(|m| m.cached_dir(&cache).join("model.onnx").is_file())
            .map(|m| m.name.clone())
            .collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        bail!("no model is set up; run `python3 scripts/setup.py`");
    }
    let settings = crate::settings(threads);
    let prefill_tokens = prefill_tokens.max(1);
    let decode_steps = decode_steps.max(1);

    let mut report = Report::default();
    let mut rows = Vec::new();
    let sample: Vec<u8> = include_str!("../examples/data/sample.txt")
        .bytes()
        .collect();

    for name in &names {
        let entry = registry.model(name)?;
        let dir = entry.cached_dir(&cache);
        if !dir.join("model.onnx").is_file() {
            bail!("model `{name}` is not set up; run `python3 scripts/setup.py --model {name}`");
        }
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
        let weight_bytes: u64 = std::fs::read_dir(&dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("model.onnx"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        reset_peak();
        eprintln!("{name}: loading");
        let start = Instant::now();
        let mut model =
            OnnxModel::load(&dir, settings).with_context(|| format!("cannot load `{name}`"))?;
        let load_s = start.elapsed().as_secs_f64();
        let rss = current_rss();
        let vocab_ids = model.tokenizer().vocab_size() as u32;
        let text: Vec<u32> = model
            .tokenizer()
            .encode_bytes(&sample)?
            .into_iter()
            .filter(|&t| t < vocab_ids)
            .collect();
        let prompt: Vec<u32> = text.iter().copied().cycle().take(prefill_tokens).collect();

        // Prefill: the whole prompt in one pass, after one untimed warm-up pass.
        let mut logits = Vec::new();
        let mut warm = model.new_cache(1, 16);
        model.forward(&mut warm, &prompt[..16.min(prompt.len())], &mut logits)?;
        eprintln!("{name}: prefill of {prefill_tokens} tokens");
        let mut cache = model.new_cache(1, prefill_tokens);
        let start = Instant::now();
        model.forward(&mut cache, &prompt, &mut logits)?;
        let prefill_rate = prefill_tokens as f64 / start.elapsed().as_secs_f64();
        drop(cache);

        // Decode: `decode_steps` single-token steps per stream after a
        // 64-token prompt, at batch 1, 8 and 32.
        let context = 64.min(prompt.len());
        let mut decode = Vec::new();
        let mut peak_single = 0;
        for batch in [1usize, 8, 32] {
            if batch == 8 {
                // The peak of one stream's work (load, prefill, batch-1
                // decode) before batches add their caches and logits.
                peak_single = peak_rss();
                reset_peak();
            }
            eprintln!("{name}: decode at batch {batch}");
            let mut cache = model.new_cache(batch, context + decode_steps + 1);
            let fed: Vec<u32> = (0..batch)
                .flat_map(|_| prompt[..context].iter().copied())
                .collect();
            model.forward(&mut cache, &fed, &mut logits)?;
            let start = Instant::now();
            for step in 0..decode_steps {
                let next: Vec<u32> = (0..batch).map(|b| text[(step + b) % text.len()]).collect();
                model.forward(&mut cache, &next, &mut logits)?;
            }
            decode.push((batch * decode_steps) as f64 / start.elapsed().as_secs_f64());
        }
        // Generation through the Generator (chat template, sampling, a second
        // padding stream at batch 1; see tenbits_inference::Generator).
        eprintln!("{name}: chat generation");
        let mut generator = tenbits_inference::Generator::new(model)?;
        let request = tenbits_inference::Request {
            prompt: generator.prompt(&[tenbits_inference::Message::user(
                "Write a long, detailed story about a lighthouse keeper and a storm.",
            )])?,
            sampling: tenbits_inference::Sampling::greedy(decode_steps),
        };
        generator.generate(&[request], |_, _| {})?;
        let stats = generator.take_stats();
        let generate_rate = stats.decode_tokens as f64 / stats.decode_seconds.max(1e-9);
        drop(generator);
        let peak = (peak_single, peak_rss());
        let weights = weights_per_token(&config).unwrap_or(f64::NAN);
        rows.push((
            name.clone(),
            weight_bytes,
            load_s,
            rss,
            prefill_rate,
            decode,
            generate_rate,
            peak,
            weights,
        ));
    }
    // Measured after the models so its 1 GiB buffer is not in their peaks.
    eprintln!(
        "measuring memory bandwidth and matmul rate ({} threads)...",
        settings.threads
    );
    let hw = measure_hardware(settings.threads);
    report.line(format!(
        "{} ONNX Runtime threads; this machine: memory read {:.1} GB/s, fp32 matmul {:.1} GFLOP/s ({} threads)",
        settings.threads,
        hw.read_bandwidth / 1e9,
        hw.matmul_flops / 1e9,
        settings.threads
    ));
    report.line(String::new());
    report.line("| model | weights MB | load s | RSS MB | prefill tok/s | of matmul limit | decode tok/s b=1 | of bandwidth limit | b=8 | b=32 | chat tok/s | peak MB b=1 | peak MB b=8/32 |".into());
    report.line("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for (name, weight_bytes, load_s, rss, prefill_rate, decode, generate_rate, peak, weights) in
        rows
    {
        let flop_limit = hw.matmul_flops / (2.0 * weights);
        let bandwidth_limit = hw.read_bandwidth / weight_bytes as f64;
        report.line(format!(
            "| {name} | {:.0} | {load_s:.1} | {:.0} | {prefill_rate:.0} | {:.0}% | {:.1} | {:.0}% | {:.1} | {:.1} | {generate_rate:.1} | {:.0} | {:.0} |",
            weight_bytes as f64 / 1e6,
            rss as f64 / 1e6,
            100.0 * prefill_rate / flop_limit,
            decode[0],
            100.0 * decode[0] / bandwidth_limit,
            decode[1],
            decode[2],
            peak.0 as f64 / 1e6,
            peak.1 as f64 / 1e6,
        ));
    }
    report.line(String::new());
    report.line(format!("- prefill: one pass over a {prefill_tokens}-token prompt at batch 1; its limit is the matmul rate over 2 × the weights each token multiplies (projections and LM head, from config.json)."));
    report.line(format!("- decode: {decode_steps} one-token steps per stream after a 64-token prompt; tok/s counts every stream. Its batch-1 limit is the read bandwidth over the bytes of the weight files (each step reads every weight once)."));
    report.line(format!("- chat tok/s: `Generator::generate`, greedy, up to {decode_steps} tokens of one chat reply (it pads a lone request to two streams so its tokens match a batch's)."));
    report.line("- load s includes hashing the weight files for the fingerprint. RSS: resident memory after loading. Peak b=1: the process's peak through loading, the prefill and batch-1 decoding; peak b=8/32: through the batched runs and the chat run (a 64-token prefill at batch 32 returns 32 × 64 rows of logits).".into());
    report.save(markdown)
}
