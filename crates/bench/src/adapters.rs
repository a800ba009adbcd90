//! `tenbits bench adapters`: held-out text of each adapter's domain coded
//! with the base model, the correct adapter, the wrong ones and `auto`.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use tenbits_inference::{Adapter, OnnxModel};
use tenbits_lossless::{AdapterChoice, Options};

use crate::{baselines, Report, Sink};

/// Files of one domain, named by the adapter trained for it.
#[derive(Debug, Clone)]
pub struct DomainFiles {
    /// The adapter's name (the "correct" one for these files).
    pub adapter: String,
    /// Held-out files of that domain.
    pub files: Vec<PathBuf>,
}

/// `data` coded under `adapter` (none: the base model).
fn coded(
    model: &mut OnnxModel,
    adapter: Option<Arc<Adapter>>,
    data: &[u8],
    options: &Options,
) -> Result<Vec<u8>> {
    model.set_adapter(adapter)?;
    Ok(tenbits_lossless::compress(model, data, options, &mut |_| {})?.0)
}

/// Codes every file of every domain under the base model (`none`), each
/// adapter and `auto` (routing per file, then decoding it back to check the
/// round trip), and reports totals per domain beside xz -9. `model` must be
/// loaded with [`OnnxModel::load_for_adapters`].
pub fn adapters(
    model: &mut OnnxModel,
    adapters: &[Arc<Adapter>],
    domains: &[DomainFiles],
    options: &Options,
    sink: &mut dyn Sink,
) -> Result<Report> {
    let mut report = Report::default();
    let names: Vec<&str> = adapters.iter().map(|a| a.id().name.as_str()).collect();
    report.line(
        sink,
        format!(
            "model {}, adapters: {}; schedule {}. Sizes are whole .tb files (header included); \
             `wrong` averages the other adapters; `auto` routes each file on its first {} tokens.",
            options.model_name,
            names.join(", "),
            crate::lossless::schedule_text(&options.schedule),
            tenbits_lossless::ROUTE_TOKENS
        ),
    );
    report.line(sink, String::new());
    report.line(sink, "| domain (adapter) | files | bytes | xz -9 | base | correct | correct / base | wrong (avg) | wrong / base | auto | auto / correct | auto picked | routing s |".into());
    report.line(
        sink,
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|".into(),
    );
    let xz = baselines()
        .into_iter()
        .find(|b| b.name == "xz -9")
        .expect("xz -9 is a baseline");
    for domain in domains {
        let Some(correct) = names.iter().position(|n| *n == domain.adapter) else {
            bail!(
                "no adapter `{}` among those loaded ({})",
                domain.adapter,
                names.join(", ")
            );
        };
        let (mut bytes, mut xz_bytes, mut base, mut auto, mut routing_s) = (0, 0, 0, 0, 0.0);
        let mut per_adapter = vec![0usize; adapters.len()];
        let mut picks = std::collections::BTreeMap::<String, usize>::new();
        for (n, path) in domain.files.iter().enumerate() {
            sink.progress(
                &format!("{} {}/{}", domain.adapter, n + 1, domain.files.len()),
                tenbits_lossless::Progress {
                    done_tokens: n as u64,
                    total_tokens: domain.files.len() as u64,
                },
            );
            let data =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            bytes += data.len();
            xz_bytes += xz.compress(&data)?.len();
            // Candidate 0 is the base model, i the adapter i - 1: the
            // router's order, so `auto`'s file is the one it picked.
            let mut files = vec![coded(model, None, &data, options)?];
            for adapter in adapters {
                files.push(coded(model, Some(adapter.clone()), &data, options)?);
            }
            base += files[0].len();
            for (i, file) in files[1..].iter().enumerate() {
                per_adapter[i] += file.len();
            }
            let applied =
                tenbits_lossless::adapters::apply(model, &AdapterChoice::Auto, adapters, &data)?;
            let Some((routing, names)) = &applied.routing else {
                bail!("`auto` did not route over {} adapters", adapters.len());
            };
            routing_s += routing.seconds;
            *picks.entry(names[routing.best].clone()).or_default() += 1;
            // `apply` left the picked adapter active, as decoding needs it.
            let packed = &files[routing.best];
            if tenbits_lossless::decompress(model, packed, &mut |_| {})? != data {
                bail!("{}: the round trip under `auto` differs", path.display());
            }
            auto += packed.len();
        }
        sink.progress_done();
        let correct_bytes = per_adapter[correct];
        let wrong: Vec<usize> = per_adapter
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != correct)
            .map(|(_, &b)| b)
            .collect();
        let wrong_avg = if wrong.is_empty() {
            f64::NAN
        } else {
            wrong.iter().sum::<usize>() as f64 / wrong.len() as f64
        };
        let picked: Vec<String> = picks.iter().map(|(k, v)| format!("{k} {v}")).collect();
        report.line(
            sink,
            format!(
                "| {} | {} | {bytes} | {xz_bytes} | {base} | {correct_bytes} | {:.3} | {wrong_avg:.0} | {:.3} | {auto} | {:.3} | {} | {routing_s:.1} |",
                domain.adapter,
                domain.files.len(),
                correct_bytes as f64 / base as f64,
                wrong_avg / base as f64,
                auto as f64 / correct_bytes as f64,
                picked.join(", "),
            ),
        );
    }
    Ok(report)
}
