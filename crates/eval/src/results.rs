//! Resumable results: one JSON line per (problem, method), appended as each
//! finishes, so that a rerun skips what is done.
//!
//! Each line is `{"key": RunKey, "record": R}` for any serde record type
//! `R`. [`ResultsWriter::append`] writes a whole line with one `write` and
//! flushes it. A crash can leave the last line torn (a prefix of a line);
//! [`read_results`] skips such lines and counts them
//! ([`Results::torn_lines`]), and [`ResultsWriter::open`] ends a torn file
//! with a newline before appending, so the next line stays whole. A line
//! that is complete but malformed is an error naming the file and line.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};

use crate::error::{EvalError, Result};

/// What identifies one result: the same key means the same computation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RunKey {
    /// Fingerprints of the models involved, as hex ([`hex`]), in a fixed
    /// order (e.g. small, then large).
    pub models: Vec<String>,
    /// The version of the task's prompts (`tenbits_qa::task_prompt_version`).
    pub prompt_version: u32,
    /// Everything else that changes the result (sampling, question count,
    /// token limits), as one canonical string.
    pub settings: String,
    /// The benchmark ([`Benchmark::name`](crate::bench::Benchmark::name)).
    pub benchmark: String,
    /// The problem ([`Item::id`](crate::bench::Item::id)).
    pub problem: String,
    /// The method (`small`, `large`, `qa`, …).
    pub method: String,
}

/// Lowercase hex of bytes (for [`RunKey::models`]).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Serialize)]
struct LineRef<'a, R> {
    key: &'a RunKey,
    record: &'a R,
}

#[derive(Deserialize)]
struct Line<R> {
    key: RunKey,
    record: R,
}

/// Appends results to a file, one line each.
#[derive(Debug)]
pub struct ResultsWriter {
    file: File,
    path: PathBuf,
}

impl ResultsWriter {
    /// Opens `path` for appending, creating it (and its directory) if
    /// needed; if it ends in a torn line, a newline closes it off.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let err = |e| EvalError::io(&path, e);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(err)?;
        let len = file.metadata().map_err(err)?.len();
        if len > 0 {
            let mut last = [0u8];
            file.seek(SeekFrom::Start(len - 1)).map_err(err)?;
            file.read_exact(&mut last).map_err(err)?;
            if last[0] != b'\n' {
                file.write_all(b"\n").map_err(err)?;
                file.flush().map_err(err)?;
            }
        }
        Ok(Self { file, path })
    }

    /// Appends one result and flushes it to the file.
    pub fn append<R: Serialize>(&mut self, key: &RunKey, record: &R) -> Result<()> {
        let mut line = serde_json::to_vec(&LineRef { key, record })
            .map_err(|e| EvalError::Invalid(format!("cannot serialize a result: {e}")))?;
        line.push(b'\n');
        let err = |e| EvalError::io(&self.path, e);
        self.file.write_all(&line).map_err(err)?;
        self.file.flush().map_err(err)
    }

    /// Also asks the system to put written lines on disk (survives a power
    /// loss, not only a crash).
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| EvalError::io(&self.path, e))
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// What a results file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Results<R> {
    /// The results, in file order (a key may repeat if a run was repeated;
    /// the last counts in [`Results::latest`]).
    pub records: Vec<(RunKey, R)>,
    /// Torn lines (an interrupted write) that were skipped.
    pub torn_lines: usize,
}

impl<R> Results<R> {
    /// The keys that have a result: what a rerun skips.
    pub fn finished(&self) -> HashSet<RunKey> {
        self.records.iter().map(|(k, _)| k.clone()).collect()
    }

    /// The last result of each key, in order of first appearance.
    pub fn latest(&self) -> Vec<(&RunKey, &R)> {
        let mut index: std::collections::HashMap<&RunKey, usize> = Default::default();
        let mut out: Vec<(&RunKey, &R)> = Vec::new();
        for (k, r) in &self.records {
            match index.get(k) {
                Some(&i) => out[i].1 = r,
                None => {
                    index.insert(k, out.len());
                    out.push((k, r));
                }
            }
        }
        out
    }
}

/// Reads a results file; a missing file holds no results. Torn lines are
/// skipped and counted; any other malformed line is an error naming the
/// file and line.
pub fn read_results<R: DeserializeOwned>(path: impl AsRef<Path>) -> Result<Results<R>> {
    let path = path.as_ref();
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(EvalError::io(path, e)),
    };
    let mut records = Vec::new();
    let mut torn = 0;
    for (i, line) in bytes.split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Line<R>>(line) {
            Ok(l) => records.push((l.key, l.record)),
            // Cut short: a prefix of a line that was being written.
            Err(e) if e.is_eof() => torn += 1,
            Err(e) => {
                return Err(EvalError::Line {
                    path: path.into(),
                    line: i + 1,
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(Results {
        records,
        torn_lines: torn,
    })
}

/// The keys with a result in `path` (records not decoded), and the number
/// of torn lines skipped.
pub fn finished_keys(path: impl AsRef<Path>) -> Result<(HashSet<RunKey>, usize)> {
    let r = read_results::<IgnoredAny>(path)?;
    Ok((r.finished(), r.torn_lines))
}
