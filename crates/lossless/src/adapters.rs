//! Which adapter a file is coded under: `--adapter auto|none|NAME|PATH`.
//!
//! [`AdapterChoice`] is what the user asked for; [`candidates`] resolves it
//! against the adapters installed for a model (see
//! `tenbits_inference::installed_adapters`); [`apply`] makes the choice
//! active on a model loaded with its LoRA graph, routing among the
//! candidates for `auto` ([`crate::route`]); [`for_header`] finds the
//! adapter a `.tb` file names, for decoding.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use tenbits_inference::{
    find_adapter, installed_adapter_name, installed_adapters, load_installed_adapter, Adapter,
    AdapterId, OnnxModel,
};

use crate::{route, LosslessError, Routing, ROUTE_TOKENS};

/// The `--adapter` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterChoice {
    /// The installed adapter (or none) that codes the text's first tokens
    /// best; the base model when none is installed.
    Auto,
    /// The base model.
    Off,
    /// An installed adapter, by name.
    Named(String),
    /// An adapter file.
    File(PathBuf),
}

impl FromStr for AdapterChoice {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "auto" => AdapterChoice::Auto,
            "none" => AdapterChoice::Off,
            s if s.ends_with(".onnx_adapter") || s.contains('/') => {
                AdapterChoice::File(PathBuf::from(s))
            }
            s => AdapterChoice::Named(s.to_string()),
        })
    }
}

/// The adapters a choice may use for `model`, loaded: none for
/// [`AdapterChoice::Off`], every installed one for `Auto`, one otherwise.
pub fn candidates(model: &str, choice: &AdapterChoice) -> Result<Vec<Arc<Adapter>>, LosslessError> {
    let installed = || {
        installed_adapters(model)
            .into_iter()
            .map(|p| load_installed_adapter(&p).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()
    };
    Ok(match choice {
        AdapterChoice::Off => Vec::new(),
        AdapterChoice::Auto => installed()?,
        AdapterChoice::File(path) => vec![Arc::new(Adapter::load(path, None)?)],
        AdapterChoice::Named(name) => {
            // Only the named file is loaded: names come from file names.
            let paths = installed_adapters(model);
            match paths.iter().find(|p| &installed_adapter_name(p) == name) {
                Some(path) => vec![Arc::new(load_installed_adapter(path)?)],
                None => {
                    let names: Vec<String> =
                        paths.iter().map(|p| installed_adapter_name(p)).collect();
                    return Err(LosslessError::Options(format!(
                        "no adapter `{name}` is installed for `{model}` (installed: {}); \
                         run `python3 scripts/setup.py --model {model}`, or pass a file",
                        if names.is_empty() {
                            "none".to_string()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
            }
        }
    })
}

/// What [`apply`] chose.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The active adapter, if any.
    pub adapter: Option<AdapterId>,
    /// For `auto` with candidates: the routing, with the candidates' names
    /// in its order (`none` first).
    pub routing: Option<(Routing, Vec<String>)>,
}

/// Makes the choice active on `model` (loaded with
/// [`OnnxModel::load_for_adapters`] when `candidates` is not empty). For
/// `auto`, routes over the base model and every candidate on the first
/// [`ROUTE_TOKENS`] tokens of `data`.
pub fn apply(
    model: &mut OnnxModel,
    choice: &AdapterChoice,
    candidates: &[Arc<Adapter>],
    data: &[u8],
) -> Result<Applied, LosslessError> {
    if candidates.is_empty() {
        model.set_adapter(None)?;
        return Ok(Applied {
            adapter: None,
            routing: None,
        });
    }
    if *choice != AdapterChoice::Auto {
        model.set_adapter(Some(candidates[0].clone()))?;
        return Ok(Applied {
            adapter: Some(candidates[0].id().clone()),
            routing: None,
        });
    }
    let choose = |i: usize| (i > 0).then(|| candidates[i - 1].clone());
    let routing = route(model, data, candidates.len() + 1, ROUTE_TOKENS, |m, i| {
        m.set_adapter(choose(i)).map_err(LosslessError::from)
    })?;
    let chosen = choose(routing.best);
    model.set_adapter(chosen.clone())?;
    let names = std::iter::once("none".to_string())
        .chain(candidates.iter().map(|a| a.id().name.clone()))
        .collect();
    Ok(Applied {
        adapter: chosen.map(|a| a.id().clone()),
        routing: Some((routing, names)),
    })
}

/// The adapter a file's header names by hash, found among `model`'s
/// installed adapters, or in `file` when given (which must then be that
/// adapter). `Ok(None)` for a file coded without one.
pub fn for_header(
    model: &str,
    adapter_id: Option<&str>,
    file: Option<&std::path::Path>,
) -> Result<Option<Arc<Adapter>>, LosslessError> {
    let Some(text) = adapter_id else {
        return Ok(None);
    };
    let hash = AdapterId::parse_header(text).ok_or_else(|| {
        LosslessError::Corrupted(format!("the header's adapter hash {text:?} is malformed"))
    })?;
    if let Some(path) = file {
        let adapter = Adapter::load(path, None)?;
        if adapter.id().hash != hash {
            return Err(LosslessError::WrongAdapter {
                file: Some(text.to_string()),
                loaded: Some(adapter.id().to_string()),
            });
        }
        return Ok(Some(Arc::new(adapter)));
    }
    match find_adapter(model, &hash) {
        Some(adapter) => Ok(Some(Arc::new(adapter))),
        None => {
            // Set-up installs adapters only for registered models.
            let hint = if tenbits_inference::Registry::embedded().model(model).is_ok() {
                format!("run `python3 scripts/setup.py --model {model}` or pass --adapter FILE")
            } else {
                "pass --adapter FILE".to_string()
            };
            Err(LosslessError::Options(format!(
                "this file was compressed with the adapter of hash {text}, which is not \
                 installed for `{model}`; {hint}"
            )))
        }
    }
}
