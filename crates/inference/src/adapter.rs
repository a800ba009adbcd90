//! LoRA adapters: ONNX Runtime `.onnx_adapter` files that switch a model's
//! domain per run, without reloading it.
//!
//! A model converted with `--lora-rank R` has, beside `model.onnx`, a
//! `model-lora.onnx`: the same graph with a float16 LoRA pair
//! (`lora.{layer}.{proj}.a` / `.b`) on every attention and MLP projection,
//! zero by default. [`OnnxModel::load_for_adapters`](crate::OnnxModel::load_for_adapters)
//! loads that graph; [`OnnxModel::set_adapter`](crate::OnnxModel::set_adapter)
//! makes an [`Adapter`] active for the following runs (ONNX Runtime binds
//! its tensors to those inputs) or, with `None`, goes back to the zeros,
//! which give the base model's logits bit for bit.
//!
//! An adapter is identified by its name and the first 6 bytes of its file's
//! sha256 ([`AdapterId`], shown as `name@hex12`). A `.tb` header records
//! only the hash, as 12 hex digits ([`AdapterId::header_text`]: 13 bytes of
//! header; with the name it was 32, more than an adapter saves on a short
//! answer): decoding finds the installed adapter with that hash and refuses
//! any other. An accidental match of two different adapters' 48-bit
//! prefixes has odds of about 2^-48 per pair, far below any chance of
//! installing that many adapters.

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::InferenceError;

/// Bytes of the adapter file's sha256 kept in its [`AdapterId`].
pub const ADAPTER_HASH_LEN: usize = 6;

/// Name and file hash of an adapter, as a `.tb` header records it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AdapterId {
    /// The adapter's name (its file stem, e.g. `python-code`).
    pub name: String,
    /// The first [`ADAPTER_HASH_LEN`] bytes of the file's sha256.
    pub hash: [u8; ADAPTER_HASH_LEN],
}

impl AdapterId {
    /// The hash as 12 lowercase hex digits.
    pub fn hash_hex(&self) -> String {
        hex(&self.hash)
    }

    /// What a `.tb` header records: the hash alone ([`Self::hash_hex`]).
    pub fn header_text(&self) -> String {
        self.hash_hex()
    }

    /// Parses a header's adapter field (12 lowercase hex digits).
    pub fn parse_header(text: &str) -> Option<[u8; ADAPTER_HASH_LEN]> {
        parse_hex(text)
    }
}

/// `N` bytes from exactly `2N` lowercase hex digits (what [`hex`] writes).
pub(crate) fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, byte) in out.iter_mut().enumerate() {
        let pair = text.get(2 * i..2 * i + 2)?;
        if pair.bytes().any(|b| b.is_ascii_uppercase()) {
            return None;
        }
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

impl fmt::Display for AdapterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.hash_hex())
    }
}

/// Bytes as lowercase hex digits.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loaded `.onnx_adapter` file.
pub struct Adapter {
    id: AdapterId,
    path: PathBuf,
    pub(crate) inner: ort::session::Adapter,
}

// SAFETY: an OrtLoraAdapter is immutable once created (ONNX Runtime only
// reads its tensors when a run binds them, and documents sharing one adapter
// across sessions and threads); `ort` wraps it in a bare pointer, which is
// why it is neither Send nor Sync by itself. Nothing here mutates it.
unsafe impl Send for Adapter {}
unsafe impl Sync for Adapter {}

/// An adapter made active: the run options that bind it to every run.
pub(crate) struct ActiveAdapter {
    pub(crate) adapter: std::sync::Arc<Adapter>,
    pub(crate) options: ort::session::RunOptions,
}

// SAFETY: the run options hold the adapter (see above) and are only read by
// runs, which take `&mut OnnxModel`, so no two threads use them at once.
unsafe impl Send for ActiveAdapter {}
unsafe impl Sync for ActiveAdapter {}

impl fmt::Debug for Adapter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Adapter")
            .field("id", &self.id)
            .field("path", &self.path)
            .finish()
    }
}

impl Adapter {
    /// Loads an adapter file; its name is the file stem unless `name` says
    /// otherwise.
    pub fn load(path: &Path, name: Option<&str>) -> Result<Adapter, InferenceError> {
        let bytes = std::fs::read(path).map_err(|source| InferenceError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let digest = Sha256::digest(&bytes);
        let mut hash = [0u8; ADAPTER_HASH_LEN];
        hash.copy_from_slice(&digest[..ADAPTER_HASH_LEN]);
        let name = name.map(str::to_string).unwrap_or_else(|| {
            path.file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or("adapter")
                .to_string()
        });
        crate::onnx::environment()?;
        let inner = ort::session::Adapter::from_memory(&bytes, None).map_err(|source| {
            InferenceError::BadAdapter {
                path: path.to_path_buf(),
                why: source.to_string(),
            }
        })?;
        Ok(Adapter {
            id: AdapterId { name, hash },
            path: path.to_path_buf(),
            inner,
        })
    }

    /// Name and hash.
    pub fn id(&self) -> &AdapterId {
        &self.id
    }

    /// Where it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_round_trips_and_malformed_text_is_refused() {
        let id = AdapterId {
            name: "python-code".into(),
            hash: [0xab, 0, 1, 2, 3, 0xff],
        };
        assert_eq!(id.to_string(), "python-code@ab00010203ff");
        assert_eq!(id.header_text(), "ab00010203ff");
        assert_eq!(AdapterId::parse_header(&id.header_text()), Some(id.hash));
        for bad in [
            "",
            "ab00",
            "zz00010203ff",
            "AB00010203FF",
            "ab00010203ff0",
            "é00010203ff",
        ] {
            assert_eq!(AdapterId::parse_header(bad), None, "{bad:?}");
        }
    }
}
