//! The benchmarks behind `tenbits bench`, as a library: the binary only
//! parses arguments and prints.
//!
//! - [`lossless()`]: tenbits beside gzip -9, bzip2 -9, xz -9 and zstd -19
//!   ([`Baseline`], [`baselines`]), all run in this process on the same
//!   bytes, with sizes, speeds and peak memory.
//! - [`models()`]: load time, prefill and decode rates of registered models,
//!   beside this machine's measured memory bandwidth and matmul rate.
//! - [`swarm()`]: one answerer over TCP on loopback and many askers,
//!   batched and one question at a time.
//! - [`load()`]: the answerer's runtime under a thousand concurrent
//!   sessions (and idle flooders) for a fixed time, over a fake model.
//! - [`frontier()`]: every mode (classic compressors, LLM coding, the
//!   question-asking methods at each bit budget) on the compression-compute
//!   plane over the large model's responses in `tenbits eval` results, and
//!   [`plot`] draws it (SVG, PNG).
//!
//! A benchmark reports through a [`Sink`]: the lines of its results table
//! (Markdown, also collected in the returned [`Report`]), status notes,
//! and progress of long passes. The binary's sink prints to stdout and
//! stderr and draws progress bars; tests use a sink that records.
//!
//! ```
//! use tenbits_bench::{baselines, Report, Sink};
//!
//! /// Keeps the table, drops the rest.
//! #[derive(Default)]
//! struct Table(Vec<String>);
//! impl Sink for Table {
//!     fn line(&mut self, line: &str) { self.0.push(line.to_string()) }
//!     fn note(&mut self, _: &str) {}
//!     fn progress(&mut self, _: &str, _: tenbits_lossless::Progress) {}
//!     fn progress_done(&mut self) {}
//! }
//!
//! let text = b"the quick brown fox jumps over the lazy dog; ".repeat(20);
//! let (mut sink, mut report) = (Table::default(), Report::default());
//! for codec in baselines() {
//!     let packed = codec.compress(&text)?;
//!     assert_eq!(codec.decompress(&packed)?, text);
//!     report.line(&mut sink, format!("| {} | {} |", codec.name, packed.len()));
//! }
//! assert_eq!(sink.0.len(), 4);
//! assert!(report.markdown().starts_with("| gzip -9 |"));
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

use std::path::Path;

use anyhow::{Context, Result};

mod adapters;
mod answer_path;
mod baselines;
mod cluster;
mod frontier;
mod load;
mod lossless;
mod lossy;
mod memory;
mod models;
mod swarm;

pub use adapters::{adapters, DomainFiles};
pub use answer_path::{answer_path, AnswerPathOptions};
pub use baselines::{baselines, Baseline};
pub use cluster::{cluster, cluster_node, ClusterOptions};
pub use frontier::{frontier, plot, Point};
pub use load::{load, LoadOptions};
pub use lossless::lossless;
pub use lossy::{held_out, lossy, responses, Response};
pub use models::{models, weights_per_token, ModelsOptions};
pub use swarm::{swarm, SwarmOptions};
pub use tenbits_lossless::Progress;

/// Where a benchmark reports while it runs.
pub trait Sink {
    /// One line of the results table (the CLI prints it to stdout).
    fn line(&mut self, line: &str);
    /// A status note: what runs now (the CLI prints it to stderr).
    fn note(&mut self, note: &str);
    /// Progress of a long pass named `label` ("compressing", ...).
    fn progress(&mut self, label: &str, progress: Progress);
    /// The pass that reported progress has ended.
    fn progress_done(&mut self);
}

/// A results table: every line sent to a [`Sink`] as it is made, and kept
/// to be saved as Markdown.
#[derive(Debug, Default, Clone)]
pub struct Report {
    text: String,
}

impl Report {
    /// Adds `line`, sending it to `sink` first.
    pub fn line(&mut self, sink: &mut dyn Sink, line: String) {
        sink.line(&line);
        self.text.push_str(&line);
        self.text.push('\n');
    }

    /// The table so far.
    pub fn markdown(&self) -> &str {
        &self.text
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

/// Throughput in KB/s (1 KB = 1000 bytes).
fn kb_per_s(bytes: usize, seconds: f64) -> f64 {
    bytes as f64 / 1000.0 / seconds.max(1e-9)
}
