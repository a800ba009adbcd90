//! `tenbits bench lossless`: tenbits beside gzip -9, bzip2 -9, xz -9 and
//! zstd -19, all computed in this process on the same bytes.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use tenbits_inference::LanguageModel;
use tenbits_lossless::Options;

use crate::memory::{current_rss, peak_rss, reset_peak};
use crate::{baselines, kb_per_s, Report, Sink};

/// One method's result on one file.
struct Row {
    method: &'static str,
    size: usize,
    compress_s: f64,
    decompress_s: f64,
    /// Peak resident memory in bytes (see the report's last note).
    peak: u64,
}

/// `tenbits bench lossless`: compresses and decompresses each file with
/// `model` (named `options.model_name`, run on `threads` threads) and with
/// every [`baselines`] codec, checks every round trip, and reports sizes,
/// speeds and peak memory per file and in total.
pub fn lossless<M: LanguageModel>(
    model: &mut M,
    threads: usize,
    files: &[PathBuf],
    options: &Options,
    sink: &mut dyn Sink,
) -> Result<Report> {
    let mut report = Report::default();
    report.line(
        sink,
        format!(
            "model {} ({threads} threads), schedule {}; process RSS with model loaded: {:.0} MB",
            options.model_name,
            schedule_text(&options.schedule),
            current_rss() as f64 / 1e6
        ),
    );
    report.line(sink, String::new());
    report.line(sink, "| file | method | bytes | out bytes | bits/byte | ratio | compress KB/s | decompress KB/s | peak MB |".into());
    report.line(sink, "|---|---|---:|---:|---:|---:|---:|---:|---:|".into());

    let mut totals: Vec<(&'static str, usize, f64, f64, u64)> = Vec::new();
    let mut total_in = 0usize;
    let mut total_model_bits = 0.0;
    let mut total_payload = 0usize;
    let mut notes = Vec::new();
    let mut cold_work = Vec::new();
    for path in files {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut rows = Vec::new();

        reset_peak();
        let start = Instant::now();
        let mut update = |p| sink.progress("compressing", p);
        let (packed, stats) = tenbits_lossless::compress(model, &data, options, &mut update)?;
        let compress_s = start.elapsed().as_secs_f64();
        sink.progress_done();
        let start = Instant::now();
        let mut update = |p| sink.progress("decompressing", p);
        let restored = tenbits_lossless::decompress(model, &packed, &mut update)?;
        let decompress_s = start.elapsed().as_secs_f64();
        sink.progress_done();
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
            "- {name}: {} tokens in {} streams ({} window slides, {} forward passes); model cross-entropy {:.3} bits/byte; payload {} bytes = cross-entropy {:+.2}%; header {} bytes; match model {} predictions, {:.0}% right",
            stats.tokens,
            stats.chunks,
            stats.slides,
            stats.forwards,
            model_bpb,
            stats.payload_bytes,
            (stats.payload_bytes as f64 * 8.0 / stats.model_bits.max(1e-9) - 1.0) * 100.0,
            stats.container_bytes - stats.payload_bytes,
            stats.mix_predicted,
            100.0 * stats.mix_hits as f64 / stats.mix_predicted.max(1) as f64,
        ));
        // Cold starts are priced after every file is timed (below), so the
        // extra forward passes touch neither timings nor peak memory.
        cold_work.push((name.clone(), data.clone(), stats.clone()));

        for codec in baselines() {
            let method = codec.name;
            let before = current_rss();
            reset_peak();
            let start = Instant::now();
            let packed = codec.compress(&data)?;
            let compress_s = start.elapsed().as_secs_f64();
            let start = Instant::now();
            let restored = codec.decompress(&packed)?;
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
            report.line(
                sink,
                format!(
                    "| {name} | {} | {} | {} | {:.3} | {:.4} | {:.1} | {:.1} | {:.0} |",
                    row.method,
                    data.len(),
                    row.size,
                    row.size as f64 * 8.0 / data.len().max(1) as f64,
                    row.size as f64 / data.len().max(1) as f64,
                    kb_per_s(data.len(), row.compress_s),
                    kb_per_s(data.len(), row.decompress_s),
                    row.peak as f64 / 1e6
                ),
            );
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
        report.line(sink, format!(
            "| **total** | {method} | {total_in} | {size} | {:.3} | {:.4} | {:.1} | {:.1} | {:.0} |",
            size as f64 * 8.0 / total_in.max(1) as f64,
            size as f64 / total_in.max(1) as f64,
            kb_per_s(total_in, cs),
            kb_per_s(total_in, ds),
            peak as f64 / 1e6
        ));
    }
    // What the cold starts cost: their first tokens again, with the text
    // before them as context.
    let context = match options.schedule {
        tenbits_lossless::Schedule::Windowed(w) => w.keep as usize,
        tenbits_lossless::Schedule::Chunked { chunk_tokens, .. } => chunk_tokens as usize,
    };
    let mut breakdown = Vec::new();
    let mut sums = Breakdown::default();
    for (name, data, stats) in &cold_work {
        let warm = tenbits_lossless::warm_bits(model, data, &stats.cold_starts, context)?;
        let cold: f64 = stats.cold_starts.iter().map(|c| c.1).sum();
        let row = Breakdown {
            header: stats.container_bytes - stats.payload_bytes,
            payload: stats.payload_bytes,
            model_bits: stats.model_bits,
            table_bits: stats.table_bits,
            starts: stats.cold_starts.len(),
            cold_extra_bits: cold - warm.iter().sum::<f64>(),
        };
        breakdown.push(row.line(name));
        sums.add(&row);
    }
    report.line(sink, String::new());
    report.line(sink, "Where tenbits' bytes go (bytes; cross-entropy is the model's own, before mixing; tables is what the coder's tables charge, after mixing; cold-start extra is what the first 64 tokens of every stream after the first cost beyond the same tokens with context):".into());
    report.line(sink, String::new());
    report.line(sink, Breakdown::HEAD.into());
    report.line(sink, "|---|---:|---:|---:|---:|---:|---:|---:|---:|".into());
    for line in breakdown {
        report.line(sink, line);
    }
    report.line(sink, sums.line("**total**"));
    report.line(sink, String::new());
    for note in notes {
        report.line(sink, note);
    }
    let size_of = |m: &str| {
        totals
            .iter()
            .find(|t| t.0 == m)
            .map(|t| t.1 as f64)
            .unwrap_or(f64::NAN)
    };
    report.line(sink, format!(
        "- total: tenbits output is {:.3} of xz -9's and {:.3} of zstd -19's; model cross-entropy {:.3} bits/byte; payload = cross-entropy {:+.2}%",
        size_of("tenbits") / size_of("xz -9"),
        size_of("tenbits") / size_of("zstd -19"),
        total_model_bits / total_in.max(1) as f64,
        (total_payload as f64 * 8.0 / total_model_bits.max(1e-9) - 1.0) * 100.0
    ));
    report.line(sink, "- peak MB: tenbits is the whole process's peak resident memory (model and runtime included); the others are the extra memory their own run added.".into());
    Ok(report)
}

/// One file's (or the total's) breakdown of tenbits' output.
#[derive(Default)]
struct Breakdown {
    header: usize,
    payload: usize,
    model_bits: f64,
    table_bits: f64,
    starts: usize,
    cold_extra_bits: f64,
}

impl Breakdown {
    const HEAD: &'static str = "| file | header | payload | container | cross-entropy | tables (mixed) | mixing saves | cold starts | cold-start extra |";

    fn add(&mut self, other: &Breakdown) {
        self.header += other.header;
        self.payload += other.payload;
        self.model_bits += other.model_bits;
        self.table_bits += other.table_bits;
        self.starts += other.starts;
        self.cold_extra_bits += other.cold_extra_bits;
    }

    fn line(&self, name: &str) -> String {
        format!(
            "| {name} | {} | {} | {} | {:.0} | {:.0} | {:.1}% | {} | {:.0} |",
            self.header,
            self.payload,
            self.header + self.payload,
            self.model_bits / 8.0,
            self.table_bits / 8.0,
            (1.0 - self.table_bits / self.model_bits.max(1e-9)) * 100.0,
            self.starts,
            self.cold_extra_bits / 8.0
        )
    }
}

/// A schedule in words, for report headings.
pub fn schedule_text(schedule: &tenbits_lossless::Schedule) -> String {
    match schedule {
        tenbits_lossless::Schedule::Chunked {
            chunk_tokens,
            max_batch,
        } => format!("format 1: {chunk_tokens}-token chunks, batches of up to {max_batch}"),
        tenbits_lossless::Schedule::Windowed(w) => format!(
            "up to {} streams of at least {} tokens, {}-token window keeping {}, mixing {}",
            w.max_streams,
            w.min_segment,
            w.window,
            w.keep,
            if w.mixing == 1 { "on" } else { "off" }
        ),
    }
}
