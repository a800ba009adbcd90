//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in this crate. Errors about a file name the
/// file, and where known the line (1-based) or the field in it.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file or directory could not be read, written or created.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A line of a JSONL file is malformed or lacks a field.
    #[error("{}:{line}: {message}", path.display())]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A field of a JSON file is missing or has the wrong shape.
    #[error("{}: {field}: {message}", path.display())]
    Field {
        /// The file.
        path: PathBuf,
        /// Where in the file, e.g. `examples[3].target_scores`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A path whose benchmark format could not be recognised.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file or directory.
        path: PathBuf,
        /// Why it was not recognised.
        message: String,
    },
    /// A registered dataset is not in the cache, or its file there is not
    /// the registered one.
    #[error("dataset {name}: {message}; run `python3 scripts/setup.py --dataset {name}`")]
    Dataset {
        /// The dataset's name in `datasets.toml`.
        name: String,
        /// What is missing or wrong.
        message: String,
    },
    /// The sandbox could not start or watch a checker process.
    #[error("sandbox: {0}")]
    Sandbox(String),
    /// A model failed during an evaluation.
    #[error("model: {0}")]
    Model(#[from] tenbits_qa::ModelError),
    /// The protocol failed on a problem.
    #[error("{problem}: {source}")]
    Protocol {
        /// The problem's id.
        problem: String,
        /// What failed.
        source: tenbits_qa::QaError,
    },
    /// Arguments that do not fit together (e.g. score lists of different
    /// lengths).
    #[error("invalid input: {0}")]
    Invalid(String),
}

impl EvalError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// `Result` with [`EvalError`].
pub type Result<T, E = EvalError> = std::result::Result<T, E>;
