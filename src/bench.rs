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
        .and_then(|s| s.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// Resets the peak so the next reading covers only what follows (Linux
/// `clear_refs` mode 5); harmless where unsupported.
fn reset_peak() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
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
                flate2::read::GzDecoder::new(c).read_to_end(&mut out).expect("own output decodes");
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
                bzip2::read::BzDecoder::new(c).read_to_end(&mut out).expect("own output decodes");
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
                liblzma::read::XzDecoder::new(c).read_to_end(&mut out).expect("own output decodes");
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
    let mut table = String::new();
    let mut line = |s: String| {
        println!("{s}");
        table.push_str(&s);
        table.push('\n');
    };
    line(format!(
        "model {} ({} threads), {}-token chunks, batches of up to {}; process RSS with model loaded: {:.0} MB",
        loaded.name,
        threads.map_or_else(|| tenbits_inference::SessionSettings::default().threads.to_string(), |t| t.to_string()),
        options.chunk_tokens,
        options.max_batch,
        current_rss() as f64 / 1e6
    ));
    line(String::new());
    line("| file | method | bytes | out bytes | bits/byte | ratio | compress KB/s | decompress KB/s | peak MB |".into());
    line("|---|---|---:|---:|---:|---:|---:|---:|---:|".into());

    let mut totals: Vec<(&'static str, usize, f64, f64, u64)> = Vec::new();
    let mut total_in = 0usize;
    let mut total_model_bits = 0.0;
    let mut total_payload = 0usize;
    let mut notes = Vec::new();
    for path in files {
        let data = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut rows = Vec::new();

        reset_peak();
        let (bar, mut update) = crate::token_progress("compressing");
        let start = Instant::now();
        let (packed, stats) = tenbits_lossless::compress(&mut loaded.model, &data, options, &mut update)?;
        let compress_s = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let (bar, mut update) = crate::token_progress("decompressing");
        let start = Instant::now();
        let restored = tenbits_lossless::decompress(&mut loaded.model, &packed, &mut update)?;
        let decompress_s = start.elapsed().as_secs_f64();
        bar.finish_and_clear();
        if restored != data {
            bail!("{}: tenbits round trip differs from the input", path.display());
        }
        rows.push(Row { method: "tenbits", size: packed.len(), compress_s, decompress_s, peak: peak_rss() });
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
            rows.push(Row { method, size: packed.len(), compress_s, decompress_s, peak: peak_rss().saturating_sub(before) });
        }

        for row in &rows {
            line(format!(
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
                None => totals.push((row.method, row.size, row.compress_s, row.decompress_s, row.peak)),
            }
        }
        total_in += data.len();
    }
    for &(method, size, cs, ds, peak) in &totals {
        line(format!(
            "| **total** | {method} | {total_in} | {size} | {:.3} | {:.4} | {:.1} | {:.1} | {:.0} |",
            size as f64 * 8.0 / total_in.max(1) as f64,
            size as f64 / total_in.max(1) as f64,
            kb_per_s(total_in, cs),
            kb_per_s(total_in, ds),
            peak as f64 / 1e6
        ));
    }
    line(String::new());
    for note in notes {
        line(note);
    }
    let size_of = |m: &str| totals.iter().find(|t| t.0 == m).map(|t| t.1 as f64).unwrap_or(f64::NAN);
    line(format!(
        "- total: tenbits output is {:.3} of xz -9's and {:.3} of zstd -19's; model cross-entropy {:.3} bits/byte; payload = cross-entropy {:+.2}%",
        size_of("tenbits") / size_of("xz -9"),
        size_of("tenbits") / size_of("zstd -19"),
        total_model_bits / total_in.max(1) as f64,
        (total_payload as f64 * 8.0 / total_model_bits.max(1e-9) - 1.0) * 100.0
    ));
    line("- peak MB: tenbits is the whole process's peak resident memory (model and runtime included); the others are the extra memory their own run added.".into());
    if let Some(path) = markdown {
        std::fs::write(path, &table).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
