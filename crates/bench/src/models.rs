//! `tenbits bench models`: model speed and memory against what this
//! machine allows.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use tenbits_inference::{LanguageModel, OnnxModel, Registry, SessionSettings};

use crate::memory::{current_rss, peak_rss, reset_peak};
use crate::{Report, Sink};

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
pub fn weights_per_token(config: &serde_json::Value) -> Option<f64> {
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

/// What `tenbits bench models` measures.
#[derive(Debug, Clone)]
pub struct ModelsOptions<'a> {
    /// Registered models to measure; empty: every model that is set up.
    pub names: &'a [String],
    /// ONNX Runtime session settings (threads).
    pub settings: SessionSettings,
    /// Length of the one-pass prefill.
    pub prefill_tokens: usize,
    /// One-token steps per stream in the decode runs.
    pub decode_steps: usize,
    /// Text whose tokens make the prompts.
    pub sample: &'a [u8],
}

/// `tenbits bench models`: for each model, load time, resident memory, a
/// prefill, decode steps at batch 1, 8 and 32 and a chat generation, beside
/// this machine's memory read bandwidth and fp32 matmul rate.
pub fn models(options: &ModelsOptions, sink: &mut dyn Sink) -> Result<Report> {
    let ModelsOptions {
        names,
        settings,
        prefill_tokens,
        decode_steps,
        sample,
    } = options.clone();
    let registry = Registry::embedded();
    let names: Vec<String> = if names.is_empty() {
        registry.set_up_models().map(|m| m.name.clone()).collect()
    } else {
        names.to_vec()
    };
    if names.is_empty() {
        bail!("no model is set up; run `python3 scripts/setup.py`");
    }
    let prefill_tokens = prefill_tokens.max(1);
    let decode_steps = decode_steps.max(1);

    let mut report = Report::default();
    let mut rows = Vec::new();

    for name in &names {
        let dir = registry.set_up_dir(name)?;
        let config: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("config.json"))?)?;
        let weight_bytes: u64 = std::fs::read_dir(&dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("model.onnx"))
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        reset_peak();
        sink.note(&format!("{name}: loading"));
        let start = Instant::now();
        let mut model =
            OnnxModel::load(&dir, settings).with_context(|| format!("cannot load `{name}`"))?;
        let load_s = start.elapsed().as_secs_f64();
        let rss = current_rss();
        let vocab_ids = model.tokenizer().vocab_size() as u32;
        let text: Vec<u32> = model
            .tokenizer()
            .encode_bytes(sample)?
            .into_iter()
            .filter(|&t| t < vocab_ids)
            .collect();
        let prompt: Vec<u32> = text.iter().copied().cycle().take(prefill_tokens).collect();

        // Prefill: the whole prompt in one pass, after one untimed warm-up pass.
        let mut logits = Vec::new();
        let mut warm = model.new_cache(1, 16);
        model.forward(&mut warm, &prompt[..16.min(prompt.len())], &mut logits)?;
        sink.note(&format!("{name}: prefill of {prefill_tokens} tokens"));
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
            sink.note(&format!("{name}: decode at batch {batch}"));
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
        sink.note(&format!("{name}: chat generation"));
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
    sink.note(&format!(
        "measuring memory bandwidth and matmul rate ({} threads)...",
        settings.threads
    ));
    let hw = measure_hardware(settings.threads);
    report.line(sink, format!(
        "{} ONNX Runtime threads; this machine: memory read {:.1} GB/s, fp32 matmul {:.1} GFLOP/s ({} threads)",
        settings.threads,
        hw.read_bandwidth / 1e9,
        hw.matmul_flops / 1e9,
        settings.threads
    ));
    report.line(sink, String::new());
    report.line(sink, "| model | weights MB | load s | RSS MB | prefill tok/s | of matmul limit | decode tok/s b=1 | of bandwidth limit | b=8 | b=32 | chat tok/s | peak MB b=1 | peak MB b=8/32 |".into());
    report.line(
        sink,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".into(),
    );
    for (name, weight_bytes, load_s, rss, prefill_rate, decode, generate_rate, peak, weights) in
        rows
    {
        let flop_limit = hw.matmul_flops / (2.0 * weights);
        let bandwidth_limit = hw.read_bandwidth / weight_bytes as f64;
        report.line(sink, format!(
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
    report.line(sink, String::new());
    report.line(sink, format!("- prefill: one pass over a {prefill_tokens}-token prompt at batch 1; its limit is the matmul rate over 2 × the weights each token multiplies (projections and LM head, from config.json)."));
    report.line(sink, format!("- decode: {decode_steps} one-token steps per stream after a 64-token prompt; tok/s counts every stream. Its batch-1 limit is the read bandwidth over the bytes of the weight files (each step reads every weight once)."));
    report.line(sink, format!("- chat tok/s: `Generator::generate`, greedy, up to {decode_steps} tokens of one chat reply (it pads a lone request to two streams so its tokens match a batch's)."));
    report.line(sink, "- load s includes hashing the weight files for the fingerprint. RSS: resident memory after loading. Peak b=1: the process's peak through loading, the prefill and batch-1 decoding; peak b=8/32: through the batched runs and the chat run (a 64-token prefill at batch 32 returns 32 × 64 rows of logits).".into());
    Ok(report)
}
