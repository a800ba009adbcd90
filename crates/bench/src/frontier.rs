//! `tenbits frontier`: every mode on the compression-compute plane, over
//! the large model's responses to a benchmark (from `tenbits eval`
//! results).
//!
//! - Classic compressors ([`baselines`]) and lossless LLM coding code each
//!   response exactly; their ratio is output bytes over response bytes.
//! - The question-asking methods (`blc`, `qa`, `coded`, `select`, at each
//!   bit budget evaluated) send bits instead of the response: their ratio is
//!   bits sent over the response's bits, and they are lossy, so each point
//!   also says how much of the small-to-large gap it recovered.
//!
//! - LLM coding under each adapter and under `auto` routing, and lossy
//!   rewrite (the shortest of N rewrites that keeps the final answer, coded
//!   under `auto`), when given.
//!
//! Compute is measured time on this machine, per response: the coder's
//! compress plus decompress, or every model call a method needs (shared
//! work charged to each method that uses it). Estimated FLOPs are in the
//! table beside it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Instant;

use std::sync::Arc;

use anyhow::{bail, Context, Result};
use plotters::prelude::*;
use tenbits_eval::{summarize, ModelFacts, Record, Results};
use tenbits_inference::{Adapter, OnnxModel};
use tenbits_lossless::{AdapterChoice, Options};
use tenbits_lossy::LossySettings;
use tenbits_qa::ChatModel;

use crate::{baselines, Report, Sink};

/// One mode on the plane.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    /// What it is ("xz -9", "LLM coding (smollm2-135m)", "qa, 10 bits").
    pub label: String,
    /// The line it belongs to on the plot: the method, for the points of
    /// one method at several bit budgets; else the label.
    pub series: String,
    /// The bit budget (question-asking methods).
    pub bits: Option<usize>,
    /// The family, which picks the colour: `classic`, `lossless`, `lossy`,
    /// `qa`.
    pub family: &'static str,
    /// Output size over the response's size.
    pub ratio: f64,
    /// Seconds per response on this machine.
    pub seconds: f64,
    /// Estimated FLOPs per response (models only).
    pub flops: Option<f64>,
    /// Share of the small-to-large gap recovered (lossy modes).
    pub gap: Option<f64>,
    /// Accuracy (lossy modes).
    pub accuracy: Option<f64>,
}

/// The problems of one benchmark that every settings (bit budget) in the
/// results covers: every point of the plane is measured on these alone,
/// so a budget run on fewer problems does not set its points over
/// another set of problems than the rest.
fn common_problems<R>(results: &Results<R>, benchmark: &str) -> BTreeSet<String> {
    let mut by_settings: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (k, _) in results.latest() {
        if k.benchmark == benchmark {
            by_settings
                .entry(k.settings.as_str())
                .or_default()
                .insert(k.problem.clone());
        }
    }
    let mut sets = by_settings.into_values();
    let first = sets.next().unwrap_or_default();
    sets.fold(first, |common, set| &common & &set)
}

/// The large model's replies, by problem, from the `large` records of one
/// benchmark, on `problems`.
fn responses(
    results: &Results<Record>,
    benchmark: &str,
    problems: &BTreeSet<String>,
) -> BTreeMap<String, String> {
    results
        .latest()
        .into_iter()
        .filter(|(k, _)| {
            k.benchmark == benchmark && k.method == "large" && problems.contains(&k.problem)
        })
        .map(|(k, r)| (k.problem.clone(), r.reply.clone()))
        .collect()
}

/// The points of one benchmark's results, with `coder` (named
/// `coder_name`, `coder_macs` multiply-accumulates per token) as the
/// lossless LLM coder, also under each of `adapters` and `auto` (when
/// `coder` was loaded with its LoRA graph), and, with a `rewriter`, lossy
/// rewrite. Reports progress and the table through `sink`.
#[allow(clippy::too_many_arguments)]
pub fn frontier(
    results: &Results<Record>,
    benchmark: &str,
    coder: &mut OnnxModel,
    coder_name: &str,
    coder_macs: f64,
    adapters: &[Arc<Adapter>],
    rewriter: Option<(&mut dyn ChatModel, &LossySettings)>,
    facts: ModelFacts,
    sink: &mut dyn Sink,
) -> Result<(Report, Vec<Point>)> {
    let problems = common_problems(results, benchmark);
    let texts = responses(results, benchmark, &problems);
    if texts.is_empty() {
        bail!("the results hold no `large` replies for {benchmark}; run `tenbits eval` first");
    }
    let total_bytes: usize = texts.values().map(String::len).sum();
    let n = texts.len() as f64;
    let mut points = Vec::new();
    for codec in baselines() {
        let start = Instant::now();
        let mut size = 0;
        for t in texts.values() {
            let packed = codec.compress(t.as_bytes())?;
            size += packed.len();
            codec.decompress(&packed)?;
        }
        points.push(Point {
            label: codec.name.to_string(),
            series: codec.name.to_string(),
            bits: None,
            family: "classic",
            ratio: size as f64 / total_bytes as f64,
            seconds: start.elapsed().as_secs_f64() / n,
            flops: None,
            gap: None,
            accuracy: None,
        });
    }
    let options = Options {
        model_name: coder_name.to_string(),
        ..Options::default()
    };
    // LLM coding: the base model, each adapter, and `auto` routing over
    // all of them; each with the candidates its choice resolves to.
    let mut coders: Vec<(String, AdapterChoice, Vec<Arc<Adapter>>)> = vec![(
        format!("LLM coding ({coder_name})"),
        AdapterChoice::Off,
        Vec::new(),
    )];
    for a in adapters {
        coders.push((
            format!("LLM coding + adapter {}", a.id().name),
            AdapterChoice::Named(a.id().name.clone()),
            vec![a.clone()],
        ));
    }
    if !adapters.is_empty() {
        coders.push((
            "LLM coding + adapter auto".into(),
            AdapterChoice::Auto,
            adapters.to_vec(),
        ));
    }
    for (label, choice, candidates) in &coders {
        sink.note(&format!("{label}: {} responses", texts.len()));
        let (start, mut size, mut tokens) = (Instant::now(), 0usize, 0u64);
        for (i, t) in texts.values().enumerate() {
            tenbits_lossless::adapters::apply(coder, choice, candidates, t.as_bytes())?;
            let (packed, stats) =
                tenbits_lossless::compress(coder, t.as_bytes(), &options, &mut |_| {})?;
            let restored = tenbits_lossless::decompress(coder, &packed, &mut |_| {})?;
            if restored != t.as_bytes() {
                bail!("{label} did not round-trip response {i}");
            }
            size += packed.len();
            tokens += stats.tokens;
            sink.progress(
                "coding",
                tenbits_lossless::Progress {
                    done_tokens: i as u64 + 1,
                    total_tokens: texts.len() as u64,
                },
            );
        }
        sink.progress_done();
        points.push(Point {
            label: label.clone(),
            series: label.clone(),
            bits: None,
            family: "lossless",
            ratio: size as f64 / total_bytes as f64,
            seconds: start.elapsed().as_secs_f64() / n,
            // Both directions run the model over every token.
            flops: Some(2.0 * 2.0 * coder_macs * tokens as f64 / n),
            gap: None,
            accuracy: None,
        });
    }
    coder.set_adapter(None)?;

    // Lossy rewrite: the rewriter's samples, each coded (with `auto`), the
    // shortest that keeps the final answer kept.
    if let Some((rewriter, settings)) = rewriter {
        sink.note(&format!(
            "lossy rewrite: {} rewrites of each of {} responses by {}",
            settings.samples,
            texts.len(),
            rewriter.name()
        ));
        let (start, mut size) = (Instant::now(), 0usize);
        // Start the rewriter's count here: only rewriting is charged.
        rewriter.take_usage();
        for (i, t) in texts.values().enumerate() {
            tenbits_lossless::adapters::apply(coder, &AdapterChoice::Auto, adapters, t.as_bytes())?;
            let result = tenbits_lossy::compress_lossy(
                rewriter,
                coder,
                t.as_bytes(),
                settings,
                &tenbits_lossy::Survival::SameAnswer,
                &options,
            )?;
            size += result.container.len();
            sink.progress(
                "rewriting",
                tenbits_lossless::Progress {
                    done_tokens: i as u64 + 1,
                    total_tokens: texts.len() as u64,
                },
            );
        }
        sink.progress_done();
        let usage = rewriter.take_usage();
        points.push(Point {
            label: format!("lossy rewrite, N = {}", settings.samples),
            series: format!("lossy rewrite, N = {}", settings.samples),
            bits: None,
            family: "lossy",
            ratio: size as f64 / total_bytes as f64,
            seconds: start.elapsed().as_secs_f64() / n,
            flops: Some(2.0 * facts.large_macs_per_token * usage.tokens() as f64 / n),
            gap: None,
            accuracy: None,
        });
        coder.set_adapter(None)?;
    }

    // The question-asking methods, one point per (method, bit budget).
    let budgets: std::collections::BTreeSet<(String, usize)> = results
        .latest()
        .into_iter()
        .filter(|(k, _)| k.benchmark == benchmark)
        .map(|(k, _)| {
            let bits = k
                .settings
                .split_whitespace()
                .find_map(|w| w.strip_prefix("bits="))
                .and_then(|b| b.parse().ok())
                .unwrap_or(0);
            (k.settings.clone(), bits)
        })
        .collect();
    for (settings, bits) in budgets {
        let summary = summarize(
            results,
            |k| k.benchmark == benchmark && k.settings == settings && problems.contains(&k.problem),
            |_| None,
            facts,
        );
        for row in &summary.all {
            if !["blc", "qa", "qa+", "coded", "select"].contains(&row.method.as_str()) {
                continue;
            }
            let Some(ratio) = row.ratio_bytes else {
                continue;
            };
            let seconds = seconds_of(results, benchmark, &settings, &row.method, &problems);
            points.push(Point {
                label: format!("{}, {bits} bits", row.method),
                series: row.method.clone(),
                bits: Some(bits),
                family: "qa",
                ratio,
                seconds,
                flops: Some(row.flops),
                gap: row.gap.map(|g| g.point),
                accuracy: row.accuracy.map(|a| a.rate),
            });
        }
    }

    let mut report = Report::default();
    report.line(
        sink,
        format!(
            "{benchmark}: {} responses of the large model, {total_bytes} bytes in all (the problems every bit budget covers)",
            texts.len()
        ),
    );
    report.line(sink, String::new());
    report.line(
        sink,
        "| mode | ratio | s per response | GFLOP per response | accuracy | gap recovered |".into(),
    );
    report.line(sink, "|---|---:|---:|---:|---:|---:|".into());
    for p in &points {
        let opt = |v: Option<f64>, scale: f64, digits: usize| {
            v.map_or("–".to_string(), |v| format!("{:.*}", digits, v * scale))
        };
        report.line(
            sink,
            format!(
                "| {} | {:.5} | {:.3} | {} | {} | {} |",
                p.label,
                p.ratio,
                p.seconds,
                opt(p.flops, 1e-9, 1),
                opt(p.accuracy, 100.0, 1),
                opt(p.gap, 100.0, 0)
            ),
        );
    }
    report.line(sink, String::new());
    report.line(sink, "- ratio: output over the response: bytes for the exact coders, bits sent over 8 × bytes for the question-asking methods (which are lossy: accuracy and gap recovered say what they keep).".into());
    report.line(sink, "- s per response: measured on this machine; for the question-asking methods every model call the method needs, work shared with other methods included.".into());
    Ok((report, points))
}

/// Mean seconds of model calls charged to `method` per problem of
/// `problems`.
fn seconds_of(
    results: &Results<Record>,
    benchmark: &str,
    settings: &str,
    method: &str,
    problems: &BTreeSet<String>,
) -> f64 {
    let times: Vec<f64> = results
        .latest()
        .into_iter()
        .filter(|(k, _)| {
            k.benchmark == benchmark
                && k.settings == settings
                && k.method == method
                && problems.contains(&k.problem)
        })
        .map(|(_, r)| r.small.seconds + r.large.seconds)
        .collect();
    times.iter().sum::<f64>() / times.len().max(1) as f64
}

/// The font the PNG's text is drawn with: the first of the usual system
/// sans-serif fonts that exists.
fn load_font() -> Option<&'static [u8]> {
    let candidates = [
        "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/TTF/DejaVuSans.ttf",
        "/usr/share/fonts/dejavu/DejaVuSans.ttf",
        "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    ];
    let bytes = candidates.iter().find_map(|p| std::fs::read(p).ok())?;
    Some(Box::leak(bytes.into_boxed_slice()))
}

/// Draws the points, ratio against seconds on log scales, into an SVG and
/// a PNG. Text is laid out with a system font (DejaVu Sans or Liberation
/// Sans); without one this is an error that says what to install.
pub fn plot(points: &[Point], title: &str, svg: &Path, png: &Path) -> Result<()> {
    let font = load_font().context(
        "no system font for the plot's text; install one (Debian: apt-get install fonts-dejavu-core)",
    )?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, font)
        .map_err(|_| anyhow::anyhow!("the system font could not be read"))?;
    draw(
        SVGBackend::new(svg, (1000, 800)).into_drawing_area(),
        points,
        title,
    )
    .with_context(|| format!("cannot draw {}", svg.display()))?;
    draw(
        BitMapBackend::new(png, (1000, 800)).into_drawing_area(),
        points,
        title,
    )
    .with_context(|| format!("cannot draw {}", png.display()))?;
    Ok(())
}

/// Series in order of first appearance, each with its points (ordered by
/// bit budget) and the text its legend entry shows.
fn series_of(points: &[Point]) -> Vec<(String, Vec<&Point>)> {
    let mut out: Vec<(String, Vec<&Point>)> = Vec::new();
    for p in points {
        match out.iter_mut().find(|(name, _)| *name == p.series) {
            Some((_, members)) => members.push(p),
            None => out.push((p.series.clone(), vec![p])),
        }
    }
    for (_, members) in &mut out {
        members.sort_by_key(|p| p.bits);
    }
    out.into_iter()
        .map(|(name, members)| (legend_text(&name, &members), members))
        .collect()
}

/// A legend entry: the mode, and for lossy modes the gap recovered at each
/// bit budget ("select: 25 / 50 / 100% of the gap at 1 / 2 / 5 bits").
fn legend_text(name: &str, members: &[&Point]) -> String {
    let gaps: Vec<String> = members
        .iter()
        .map(|p| p.gap.map_or("–".into(), |g| format!("{:.0}", 100.0 * g)))
        .collect();
    let budgets: Vec<String> = members
        .iter()
        .filter_map(|p| p.bits.map(|b| b.to_string()))
        .collect();
    if members.iter().all(|p| p.gap.is_none()) {
        return match members {
            [one] => one.label.clone(),
            _ => name.to_string(),
        };
    }
    if budgets.len() == members.len() {
        format!(
            "{name}: {}% of the gap at {} bits",
            gaps.join(" / "),
            budgets.join(" / ")
        )
    } else {
        format!("{name}: {}% of the gap", gaps.join(" / "))
    }
}

/// The colour of the `i`th series: a family's series share a hue family
/// (grey classic coders, blue LLM coding, green lossy rewrite, warm
/// question-asking methods), told apart by shade and marker.
fn colour_of(family: &str, i: usize) -> RGBColor {
    const GREYS: [RGBColor; 4] = [
        RGBColor(90, 90, 90),
        RGBColor(140, 140, 140),
        RGBColor(60, 60, 60),
        RGBColor(170, 170, 170),
    ];
    const BLUES: [RGBColor; 5] = [
        RGBColor(31, 119, 180),
        RGBColor(23, 190, 207),
        RGBColor(70, 70, 200),
        RGBColor(120, 160, 220),
        RGBColor(20, 60, 120),
    ];
    const WARM: [RGBColor; 6] = [
        RGBColor(214, 39, 40),
        RGBColor(255, 127, 14),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(188, 189, 34),
    ];
    match family {
        "classic" => GREYS[i % GREYS.len()],
        "lossless" => BLUES[i % BLUES.len()],
        "lossy" => RGBColor(44, 160, 44),
        _ => WARM[i % WARM.len()],
    }
}

/// The marker of the `series`th series centred at `centre`: circles,
/// triangles and squares in turn, so series of one colour family stay
/// apart (on the plane and in the legend alike).
fn marker<DB: DrawingBackend>(
    series: usize,
    centre: (i32, i32),
    style: ShapeStyle,
) -> DynElement<'static, DB, (i32, i32)> {
    let (x, y) = centre;
    match series % 3 {
        0 => Circle::new(centre, 5, style).into_dyn(),
        1 => TriangleMarker::new(centre, 6, style).into_dyn(),
        _ => Rectangle::new([(x - 4, y - 4), (x + 4, y + 4)], style).into_dyn(),
    }
}

/// Draws the plane: every series with its own colour and marker, the
/// points of one method joined across bit budgets and tagged with their
/// budget, and a legend that names each series (with the gap it recovers),
/// so the plot reads without the table.
fn draw<DB: DrawingBackend>(
    area: DrawingArea<DB, plotters::coord::Shift>,
    points: &[Point],
    title: &str,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: plotters::drawing::DrawingAreaErrorKind<DB::ErrorType>| anyhow::anyhow!("{e:?}");
    area.fill(&WHITE).map_err(err)?;
    let (xs, ys): (Vec<f64>, Vec<f64>) = points
        .iter()
        .map(|p| (p.seconds.max(1e-6), p.ratio.max(1e-6)))
        .unzip();
    let span = |v: &[f64], below: f64, above: f64| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(0.0, f64::max);
        (lo / below)..(hi * above)
    };
    let mut chart = ChartBuilder::on(&area)
        .caption(title, ("sans-serif", 22))
        .margin(20)
        .x_label_area_size(50)
        .y_label_area_size(70)
        // Room below the points for the legend, in the lower left corner.
        .build_cartesian_2d(
            span(&xs, 3.0, 3.0).log_scale(),
            span(&ys, 30.0, 3.0).log_scale(),
        )
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("seconds per response on this machine (log)")
        .y_desc("size sent / size of the response (log)")
        .label_style(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    let mut in_family: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (legend, members)) in series_of(points).into_iter().enumerate() {
        let family = members[0].family;
        let nth = in_family.entry(family).or_default();
        let colour = colour_of(family, *nth);
        *nth += 1;
        let at = |p: &Point| (p.seconds.max(1e-6), p.ratio.max(1e-6));
        if members.len() > 1 {
            chart
                .draw_series(LineSeries::new(
                    members.iter().map(|p| at(p)),
                    colour.stroke_width(1),
                ))
                .map_err(err)?;
        }
        let tag = |p: &Point| p.bits.map_or(String::new(), |b| b.to_string());
        let font = ("sans-serif", 12).into_font().color(&colour);
        let style = colour.filled();
        chart
            .draw_series(members.iter().map(|p| {
                EmptyElement::at(at(p))
                    + marker::<DB>(i, (0, 0), style)
                    + Text::new(tag(p), (6, 2), font.clone())
            }))
            .map_err(err)?
            .label(legend)
            .legend(move |(x, y)| marker::<DB>(i, (x + 8, y), style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(err)?;
    area.present().map_err(err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tenbits_eval::RunKey;

    #[test]
    fn every_point_is_measured_on_the_problems_every_budget_covers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("results.jsonl");
        let mut writer = tenbits_eval::ResultsWriter::open(&path).unwrap();
        let key = |bits: u32, problem: &str, method: &str, benchmark: &str| RunKey {
            models: vec!["s".into(), "l".into()],
            prompt_version: 3,
            settings: format!("bits={bits} view=OwnSolution"),
            benchmark: benchmark.into(),
            problem: problem.into(),
            method: method.into(),
        };
        for p in ["p1", "p2", "p3", "p4"] {
            writer.append(&key(10, p, "large", "b"), &()).unwrap();
        }
        for p in ["p2", "p3"] {
            writer.append(&key(5, p, "qa", "b"), &()).unwrap();
        }
        writer.append(&key(20, "p3", "qa", "b"), &()).unwrap();
        writer.append(&key(20, "p2", "select", "b"), &()).unwrap();
        // Another benchmark's budgets do not narrow this one's.
        writer.append(&key(1, "p9", "qa", "other"), &()).unwrap();
        drop(writer);
        let results = tenbits_eval::read_results::<()>(&path).unwrap();
        let common = common_problems(&results, "b");
        assert_eq!(common, BTreeSet::from(["p2".into(), "p3".into()]));
        let one_budget = common_problems(&results, "other");
        assert_eq!(one_budget, BTreeSet::from(["p9".into()]));
    }

    #[test]
    fn the_plot_is_drawn_with_every_label() {
        if load_font().is_none() {
            eprintln!("no system font here; the plot is not drawn");
            return;
        }
        let point = |label: &str, series: &str, bits, family, ratio, seconds, gap| Point {
            label: label.into(),
            series: series.into(),
            bits,
            family,
            ratio,
            seconds,
            flops: None,
            gap,
            accuracy: None,
        };
        let points = [
            point("xz -9", "xz -9", None, "classic", 0.8, 0.001, None),
            point(
                "LLM coding (smollm2-135m)",
                "LLM coding (smollm2-135m)",
                None,
                "lossless",
                0.3,
                2.0,
                None,
            ),
            point(
                "qa, 10 bits",
                "qa",
                Some(10),
                "qa",
                0.0012,
                40.0,
                Some(0.25),
            ),
            point(
                "select, 5 bits",
                "select",
                Some(5),
                "qa",
                0.0006,
                35.0,
                Some(1.0),
            ),
            point(
                "select, 1 bits",
                "select",
                Some(1),
                "qa",
                0.0004,
                30.0,
                Some(0.25),
            ),
            point("qa+, 10 bits", "qa+", Some(10), "qa", 0.0012, 140.0, None),
        ];
        let dir = tempfile::tempdir().unwrap();
        let (svg, png) = (dir.path().join("f.svg"), dir.path().join("f.png"));
        plot(&points, "test", &svg, &png).unwrap();
        let text = std::fs::read_to_string(&svg).unwrap();
        // Every series is named once in the legend; a method's budgets are
        // in budget order, whatever order the points came in.
        for label in [
            "xz -9",
            "LLM coding (smollm2-135m)",
            "qa: 25% of the gap at 10 bits",
            "select: 25 / 100% of the gap at 1 / 5 bits",
            "qa+, 10 bits",
        ] {
            assert_eq!(
                text.matches(label).count(),
                1,
                "{label} not once in the SVG"
            );
        }
        let bytes = std::fs::read(&png).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        std::fs::copy(&png, std::env::temp_dir().join("tenbits-frontier-test.png")).unwrap();
    }
}
