//! `eval-cli evaluate`: score the analyzer against a dataset with known tempi.
//!
//! The data flow is dataset → batch run ([`analyzer_core::batch`]) → one [`Row`] per file
//! → the run directory: `results.csv` and `summary.json` (deterministic: byte-identical for
//! any worker count), `timings.json` (wall time, latency, host), charts in SVG and PNG, and
//! a self-contained `report.html`. `compare` reuses [`evaluate_dataset`] and
//! [`accuracy_sections`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use analyzer_core::batch::{self, Job};
use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use anyhow::Context;

use crate::estimator::{Estimator, EstimatorSpec};
use crate::manifest::{self, Dataset, SynthParams};
use crate::metrics::{self, ErrorClass};
use crate::report::{
    self, EstimatorAccuracy, EstimatorCost, LengthAccuracy, Row, Summary, charts, html,
};
use crate::runner::{self, ProgressMode, RunOptions, Schedule};

/// Where the dataset comes from and how to analyse it: flags shared by `evaluate` and
/// `compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatasetArgs {
    /// A manifest CSV (`file,bpm[,metadata...]`), a folder (its manifest.csv, or audio with
    /// GiantSteps-style `.bpm` or JAMS annotations), or `synth` for the built-in synthetic
    /// set, generated on first use into a cache folder.
    #[arg(long)]
    pub dataset: String,
    /// Slowest tempo the analyzer reports, BPM.
    #[arg(long, default_value_t = 50.0)]
    pub min_bpm: f64,
    /// Fastest tempo the analyzer reports, BPM.
    #[arg(long, default_value_t = 220.0)]
    pub max_bpm: f64,
    #[command(flatten)]
    pub synth: SynthArgs,
    /// Which files start first.
    #[arg(long, value_enum, default_value = "longest")]
    pub schedule: Schedule,
    /// Per-file time limit in seconds (none by default); a file past it is a failed row
    /// (an external program is killed).
    #[arg(long)]
    pub timeout: Option<f64>,
    /// Tempo estimator to score; repeat it to put several side by side (the first one's
    /// results are results.csv). `ours`, `cmd:TEMPLATE` (an external program per file,
    /// `{file}` replaced by its path, the BPM read as the last number on its stdout, e.g.
    /// `cmd:aubio tempo {file}`), or `csv:FILE` (predictions with columns `file,bpm`),
    /// optionally behind a label for the reports: `aubio=cmd:aubio tempo {file}`.
    #[arg(
        long = "estimator",
        value_name = "[LABEL=]SPEC",
        default_value = "ours"
    )]
    pub estimators: Vec<EstimatorSpec>,
}

/// The size of the built-in synthetic set, for every command that takes a dataset spec
/// (`--dataset synth`, `dataset excerpts --from synth`).
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct SynthArgs {
    /// Tracks in the synthetic set (with `synth` as the dataset).
    #[arg(long, default_value_t = 24)]
    pub synth_count: usize,
    /// Seconds per synthetic track.
    #[arg(long, default_value_t = 30.0)]
    pub synth_seconds: f64,
    /// Seed of the synthetic set.
    #[arg(long, default_value_t = 0)]
    pub synth_seed: u64,
}

impl SynthArgs {
    /// The generator parameters these flags name.
    pub fn params(self) -> SynthParams {
        SynthParams {
            count: self.synth_count,
            seconds: self.synth_seconds,
            seed: self.synth_seed,
        }
    }
}

impl DatasetArgs {
    /// Loads the dataset these flags name.
    pub fn load(&self) -> anyhow::Result<Dataset> {
        manifest::load(&self.dataset, self.synth.params())
    }

    /// Plans the analyzer these flags ask for.
    pub fn analyzer(&self) -> anyhow::Result<Analyzer> {
        Analyzer::new(AnalyzerConfig::default().with_bpm_range(self.min_bpm, self.max_bpm))
            .map_err(|e| anyhow::anyhow!("analyzer: {}", e.reason()))
    }

    /// Prepares every `--estimator` for `ds`, in command-line order.
    pub fn estimators(&self, ds: &Dataset) -> anyhow::Result<Vec<Estimator>> {
        let analyzer = self.analyzer()?;
        self.estimators
            .iter()
            .map(|spec| Estimator::new(spec, ds, &analyzer))
            .collect()
    }

    /// The per-file time limit.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
            .filter(|t| t.is_finite() && *t > 0.0)
            .map(Duration::from_secs_f64)
    }
}

/// Flags of `eval-cli evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Worker threads (default: the available cores).
    #[arg(long)]
    pub workers: Option<usize>,
    /// Folder for results.csv, summary.json, timings.json, charts and report.html.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// The outcome of one batch over a dataset.
pub struct Outcome {
    /// One row per dataset item, in dataset order.
    pub rows: Vec<Row>,
    /// Wall-clock seconds of the batch.
    pub wall_s: f64,
    /// Worker threads used.
    pub workers: usize,
    /// Whether the batch was cancelled.
    pub cancelled: bool,
}

/// Runs `estimator` over every item of `ds` and scores each one.
///
/// `audio_s` gives each item's seconds of audio when the estimator does not report them
/// (see [`audio_durations`]).
pub fn evaluate_dataset(
    ds: &Dataset,
    estimator: &Estimator,
    audio_s: Option<&[f64]>,
    opts: &RunOptions,
) -> Outcome {
    let paths: Vec<PathBuf> = ds.items.iter().map(|i| i.path.clone()).collect();
    let summary = runner::run(&paths, opts, estimator, |_| None, |_| {});
    let mut by_index: BTreeMap<usize, _> =
        summary.results.into_iter().map(|r| (r.index, r)).collect();
    let rows = ds
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let result = by_index.remove(&i);
            let known_audio = audio_s.and_then(|a| a.get(i).copied());
            let (status, est, confidence, error, elapsed_s, audio_s, cpu_s) = match result {
                Some(r) => {
                    let v = r.value.as_ref();
                    (
                        r.status.as_str(),
                        v.map(|e| e.bpm),
                        v.and_then(|e| e.confidence),
                        r.error.unwrap_or_default(),
                        r.elapsed_s,
                        v.and_then(|e| e.audio_s).or(known_audio).unwrap_or(0.0),
                        v.and_then(|e| e.cpu_s),
                    )
                }
                None => (
                    "cancelled",
                    None,
                    None,
                    "cancelled before it finished".into(),
                    0.0,
                    0.0,
                    None,
                ),
            };
            let class = if status == "ok" {
                metrics::classify(est, item.bpm)
            } else {
                ErrorClass::Failed
            };
            Row {
                file: item.file.clone(),
                truth_bpm: item.bpm,
                est_bpm: est,
                confidence,
                class,
                status,
                error: one_line(&error),
                meta: item.meta.clone(),
                elapsed_s,
                audio_s,
                cpu_s,
            }
        })
        .collect();
    Outcome {
        rows,
        wall_s: summary.wall_s,
        workers: summary.workers,
        cancelled: summary.cancelled,
    }
}

/// Seconds of audio in every item of `ds` (0 for a file that does not decode), measured
/// by decoding it: for estimators that do not report what they decoded.
pub fn audio_durations(ds: &Dataset, opts: &RunOptions) -> Vec<f64> {
    let paths: Vec<PathBuf> = ds.items.iter().map(|i| i.path.clone()).collect();
    let quiet = RunOptions {
        progress: ProgressMode::Off,
        ..opts.clone()
    };
    let summary = runner::run(&paths, &quiet, &DecodedLength, |_| None, |_| {});
    let mut out = vec![0.0; paths.len()];
    for r in summary.results {
        out[r.index] = r.value.unwrap_or(0.0);
    }
    out
}

/// The batch job of [`audio_durations`]: seconds of audio, by decoding.
struct DecodedLength;

impl Job for DecodedLength {
    type Output = f64;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<f64, analyzer_core::Error> {
        analyzer_core::decode::decode_mono(path, stop, |_, _| Ok(())).map(|i| i.duration_s())
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        Some(batch::audio_cost(path))
    }
}

/// The cost and accuracy of one estimator's run.
pub fn estimator_cost(
    estimator: &Estimator,
    summary: &Summary,
    outcome: &Outcome,
) -> EstimatorCost {
    let cpu = report::MeasuredCpu::of(&outcome.rows);
    let (cpu_s, cpu_audio_s) = (cpu.cpu_s, cpu.audio_s);
    EstimatorCost {
        name: estimator.name().to_string(),
        n: summary.n,
        failed: summary.failed,
        acc1: summary.acc1,
        acc2: summary.acc2,
        cpu_s,
        cpu_audio_s,
        cpu_s_per_audio_min: cpu_s
            .filter(|_| cpu_audio_s > 0.0)
            .map(|c| c / (cpu_audio_s / 60.0)),
        cpu_files: cpu.files,
        wall_s: outcome.wall_s,
        cpu_method: estimator.cpu_method().to_string(),
    }
}

/// Error text on one line, so that CSV rows stay one line each.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Timings of an outcome on this machine.
pub fn timings(outcome: &Outcome) -> report::Timings {
    let audio_s: f64 = outcome.rows.iter().map(|r| r.audio_s).sum();
    let elapsed: Vec<f64> = outcome
        .rows
        .iter()
        .filter(|r| r.status != "cancelled")
        .map(|r| r.elapsed_s)
        .collect();
    report::Timings {
        workers: outcome.workers,
        wall_s: outcome.wall_s,
        files: outcome.rows.len(),
        audio_s,
        files_per_s: report::ratio(outcome.rows.len() as f64, outcome.wall_s),
        realtime_factor: report::ratio(audio_s, outcome.wall_s),
        latency_ms: metrics::latency_ms(&elapsed).into(),
        peak_rss_mb: runner::peak_rss_mb(),
        cancelled: outcome.cancelled,
        host: report::host(),
        command: report::command_line(),
        estimators: Vec::new(),
    }
}

/// Writes `results.csv` and `summary.json` of `rows`, the results of the estimator
/// `name`, into `dir`; returns the summary.
pub fn write_accuracy(
    dir: &Path,
    ds: &Dataset,
    rows: &[Row],
    name: &str,
) -> anyhow::Result<Summary> {
    report::write_file(&dir.join("results.csv"), &report::results_csv(rows)?)?;
    let mut summary = report::summarize(&ds.label, rows, &ds.meta_columns)?;
    summary.estimators = vec![EstimatorAccuracy::of(name, &summary, rows)];
    report::write_json(&dir.join("summary.json"), &summary)?;
    Ok(summary)
}

/// Seconds of audio per item, decoded once, when some of `estimators` do not report what
/// they decoded (external programs, predictions); `None` when all of them do.
pub fn audio_if_needed(
    ds: &Dataset,
    estimators: &[Estimator],
    opts: &RunOptions,
) -> Option<Vec<f64>> {
    estimators
        .iter()
        .any(|e| !e.reports_audio())
        .then(|| audio_durations(ds, opts))
}

/// Runs every estimator over `ds`, one after the other, each with `opts`; stops after a
/// cancelled run. `audio` is [`audio_if_needed`]'s answer, measured once by the caller.
pub fn run_estimators(
    ds: &Dataset,
    estimators: &[Estimator],
    audio: Option<&[f64]>,
    opts: &RunOptions,
) -> Vec<Outcome> {
    let mut outcomes = Vec::new();
    for (k, estimator) in estimators.iter().enumerate() {
        if estimators.len() > 1 {
            eprintln!(
                "eval-cli: estimator {}/{}: {}",
                k + 1,
                estimators.len(),
                estimator.name()
            );
        }
        let outcome = evaluate_dataset(ds, estimator, audio, opts);
        let cancelled = outcome.cancelled;
        outcomes.push(outcome);
        if cancelled {
            break;
        }
    }
    outcomes
}

/// A folder name for the `k`-th estimator: `1-cmd-aubio-tempo-file`.
pub fn estimator_slug(k: usize, name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_matches('-').chars().take(40).collect();
    format!("{}-{}", k + 1, slug.trim_end_matches('-'))
}

/// Writes the results of several estimators: the first one's `results.csv` and
/// `summary.json` (with every estimator's accuracy in `estimators`) into `dir`; when
/// there are several, each one's into `dir/estimators/K-NAME/` and a table of all of them
/// into `dir/estimators.csv`. Returns the first one's summary and every one's cost.
pub fn write_estimators(
    dir: &Path,
    ds: &Dataset,
    estimators: &[Estimator],
    outcomes: &[Outcome],
) -> anyhow::Result<(Summary, Vec<EstimatorCost>)> {
    let mut summaries = Vec::new();
    let mut costs = Vec::new();
    for (k, (estimator, outcome)) in estimators.iter().zip(outcomes).enumerate() {
        let summary = if estimators.len() > 1 {
            let sub = dir
                .join("estimators")
                .join(estimator_slug(k, estimator.name()));
            create_out_dir(&sub)?;
            write_accuracy(&sub, ds, &outcome.rows, estimator.name())?
        } else {
            report::summarize(&ds.label, &outcome.rows, &ds.meta_columns)?
        };
        costs.push(estimator_cost(estimator, &summary, outcome));
        summaries.push(summary);
    }
    let (Some(first), Some(outcome)) = (summaries.first(), outcomes.first()) else {
        anyhow::bail!("no estimator was run");
    };
    let mut summary = first.clone();
    summary.estimators = estimators
        .iter()
        .zip(&summaries)
        .zip(outcomes)
        .map(|((e, s), o)| EstimatorAccuracy::of(e.name(), s, &o.rows))
        .collect();
    report::write_file(
        &dir.join("results.csv"),
        &report::results_csv(&outcome.rows)?,
    )?;
    report::write_json(&dir.join("summary.json"), &summary)?;
    if estimators.len() > 1 {
        report::write_file(
            &dir.join("estimators.csv"),
            &report::estimators_csv(&costs)?,
        )?;
    }
    Ok((summary, costs))
}

/// The report section that puts estimators side by side: accuracy against CPU cost.
pub fn estimators_section(dir: &Path, costs: &[EstimatorCost]) -> anyhow::Result<(String, String)> {
    let chart = charts::AccuracyVsCost {
        points: costs
            .iter()
            .filter_map(|c| {
                c.cpu_s_per_audio_min
                    .map(|x| (c.name.clone(), x, c.acc1, c.acc2))
            })
            .collect(),
    };
    let rows: Vec<Vec<String>> = costs
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.n.to_string(),
                c.failed.to_string(),
                pct(c.acc1),
                pct(c.acc2),
                c.cpu_s.map_or("n/a".into(), |x| format!("{x:.2}")),
                format!("{:.1}", c.cpu_audio_s / 60.0),
                c.cpu_s_per_audio_min
                    .map_or("n/a".into(), |x| format!("{x:.3}")),
                format!("{:.2}", c.wall_s),
            ]
        })
        .collect();
    // One sentence per way of measuring, naming the estimators measured that way.
    let mut by_method: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in costs {
        match by_method.iter_mut().find(|(m, _)| *m == c.cpu_method) {
            Some((_, names)) => names.push(&c.name),
            None => by_method.push((&c.cpu_method, vec![&c.name])),
        }
    }
    let methods: Vec<String> = by_method
        .iter()
        .map(|(method, names)| format!("{}: {method}.", names.join(", ")))
        .collect();
    let html = format!(
        "{}{}<p>CPU is user + system time per file, summed over the files where it was \
         measured (10 ms resolution), so it does not depend on the worker count. {}</p>",
        html::figure(
            &charts::save(dir, &chart)?,
            "One point pair per estimator: Accuracy1 (filled) and Accuracy2 (hollow) against \
             CPU seconds per minute of audio (log axis). Up and to the left is better.",
        ),
        html::table(
            &[
                "estimator",
                "files",
                "failed",
                "Accuracy1",
                "Accuracy2",
                "CPU s",
                "audio min",
                "CPU s / audio min",
                "wall s",
            ],
            &rows,
        ),
        html::escape(&methods.join(" "))
    );
    Ok(("Estimators side by side".to_string(), html))
}

fn pct(x: f64) -> String {
    format!("{:.1} %", 100.0 * x)
}

/// The accuracy charts (written into `dir`) and tables of a run, as report sections.
pub fn accuracy_sections(
    dir: &Path,
    summary: &Summary,
    rows: &[Row],
) -> anyhow::Result<Vec<(String, String)>> {
    let mut sections = Vec::new();

    let scatter = charts::EstimateScatter {
        points: rows
            .iter()
            .filter_map(|r| r.est_bpm.map(|e| (r.truth_bpm, e, r.class)))
            .collect(),
    };
    let classes = charts::ClassCounts {
        counts: ErrorClass::ALL
            .iter()
            .map(|c| (*c, summary.classes.get(c.as_str()).copied().unwrap_or(0)))
            .collect(),
    };
    let band_table = summary.by.get("tempo_band").cloned().unwrap_or_default();
    let bands = charts::BandAccuracy {
        bands: metrics::TEMPO_BAND_NAMES
            .iter()
            .filter_map(|b| {
                band_table
                    .get(*b)
                    .map(|g| (b.to_string(), g.n, g.acc1, g.acc2))
            })
            .collect(),
    };
    let mut figures = String::new();
    figures.push_str(&html::figure(
        &charts::save(dir, &scatter)?,
        "Each dot is a file (green: right; orange: right only at ×2, ×1/2, ×3 or ×1/3; \
         purple: ×2/3 or ×3/2; red: other). Lines mark the metrical relations.",
    ));
    figures.push_str(&html::figure(
        &charts::save(dir, &classes)?,
        "Files per error class.",
    ));
    figures.push_str(&html::figure(
        &charts::save(dir, &bands)?,
        "Accuracy1 and Accuracy2 per true-tempo band.",
    ));
    sections.push(("Accuracy charts".to_string(), figures));

    let mut tables = String::new();
    tables.push_str(&html::table(
        &["error class", "files", "share"],
        &ErrorClass::ALL
            .iter()
            .map(|c| {
                let count = summary.classes.get(c.as_str()).copied().unwrap_or(0);
                vec![
                    c.as_str().to_string(),
                    count.to_string(),
                    pct(metrics::fraction(count, summary.n)),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    for (column, groups) in &summary.by {
        let rows: Vec<Vec<String>> = report::ordered_keys(column, groups)
            .into_iter()
            .map(|k| {
                let g = &groups[k];
                vec![k.clone(), g.n.to_string(), pct(g.acc1), pct(g.acc2)]
            })
            .collect();
        tables.push_str(&format!("<h3>By {}</h3>", html::escape(column)));
        tables.push_str(&html::table(
            &[column, "files", "Accuracy1", "Accuracy2"],
            &rows,
        ));
    }
    sections.push(("Accuracy tables".to_string(), tables));
    sections.extend(length_section(dir, summary)?);
    sections.extend(reliability_section(dir, summary, rows)?);

    let failed: Vec<Vec<String>> = rows
        .iter()
        .filter(|r| r.class != ErrorClass::Ok)
        .map(|r| {
            vec![
                r.file.clone(),
                r.truth_bpm.to_string(),
                r.est_bpm.map_or(String::new(), |b| format!("{b:.2}")),
                r.class.as_str().to_string(),
                r.error.clone(),
            ]
        })
        .collect();
    if !failed.is_empty() {
        sections.push((
            "Files not right by Accuracy1".to_string(),
            html::table(
                &["file", "true BPM", "estimated", "class", "error"],
                &failed,
            ),
        ));
    }
    Ok(sections)
}

/// Each estimator's accuracy by length, in command-line order (the summary's own when it
/// lists no estimators).
fn length_series(summary: &Summary) -> Vec<(&str, &[LengthAccuracy])> {
    if summary.estimators.is_empty() {
        return vec![("", summary.by_seconds.as_slice())];
    }
    summary
        .estimators
        .iter()
        .map(|e| (e.name.as_str(), e.by_seconds.as_slice()))
        .collect()
}

/// The report section of accuracy against seconds of audio (excerpts from `dataset
/// excerpts`): a chart with a line pair per estimator, and its table. `None` unless the
/// dataset has at least two lengths, since one point makes no curve.
fn length_section(dir: &Path, summary: &Summary) -> anyhow::Result<Option<(String, String)>> {
    if summary.by_seconds.len() < 2 {
        return Ok(None);
    }
    let series = length_series(summary);
    let chart = charts::AccuracyCurve::by_seconds(
        series
            .iter()
            .map(|(name, lengths)| {
                let points = lengths
                    .iter()
                    .map(|l| (l.seconds, l.accuracy.acc1, l.accuracy.acc2))
                    .collect();
                (name.to_string(), points)
            })
            .collect(),
    );
    let mut headers = vec!["seconds".to_string(), "files".to_string()];
    for (name, _) in &series {
        let prefix = if series.len() > 1 {
            format!("{name} ")
        } else {
            String::new()
        };
        headers.push(format!("{prefix}Accuracy1"));
        headers.push(format!("{prefix}Accuracy2"));
    }
    let rows: Vec<Vec<String>> = summary
        .by_seconds
        .iter()
        .map(|l| {
            let mut row = vec![l.seconds.to_string(), l.accuracy.n.to_string()];
            for (_, lengths) in &series {
                let mine = lengths.iter().find(|m| m.seconds == l.seconds);
                row.push(mine.map_or("n/a".into(), |m| pct(m.accuracy.acc1)));
                row.push(mine.map_or("n/a".into(), |m| pct(m.accuracy.acc2)));
            }
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let html = format!(
        "{}{}",
        html::figure(
            &charts::save(dir, &chart)?,
            "Accuracy1 (solid) and Accuracy2 (dashed) of the files of each length, from the              dataset's seconds column.",
        ),
        html::table(&headers, &rows)
    );
    Ok(Some(("Accuracy by length".to_string(), html)))
}

/// The reliability section: Accuracy1 and Accuracy2 by confidence bin, as a chart and a
/// table with the files per bin. `None` when no file has a confidence (the estimator gives
/// none, or every file failed).
fn reliability_section(
    dir: &Path,
    summary: &Summary,
    rows: &[Row],
) -> anyhow::Result<Option<(String, String)>> {
    let answered: usize = summary.reliability.iter().map(|b| b.n).sum();
    if answered == 0 {
        return Ok(None);
    }
    let name = summary.estimators.first().map_or("", |e| e.name.as_str());
    let chart = charts::AccuracyCurve::reliability((
        name.to_string(),
        summary
            .reliability
            .iter()
            .filter(|b| b.n > 0)
            .map(|b| ((b.lo + b.hi) / 2.0, b.acc1, b.acc2))
            .collect(),
    ));
    let table_rows: Vec<Vec<String>> = summary
        .reliability
        .iter()
        .map(|b| {
            let acc = |x: f64| if b.n == 0 { "n/a".into() } else { pct(x) };
            vec![
                format!("{:.1}-{:.1}", b.lo, b.hi),
                b.n.to_string(),
                acc(b.acc1),
                acc(b.acc2),
            ]
        })
        .collect();
    let html = format!(
        "{}{}<p>{} of {} files have a confidence; failed files, and estimators that give          none, are left out. Empty bins are not drawn.</p>",
        html::figure(
            &charts::save(dir, &chart)?,
            "Accuracy1 (solid) and Accuracy2 (dashed) of the files in each confidence bin,              at the bin's centre; the diagonal is where accuracy equals confidence.",
        ),
        html::table(
            &["confidence", "files", "Accuracy1", "Accuracy2"],
            &table_rows
        ),
        answered,
        rows.len()
    );
    Ok(Some((
        "Reliability: accuracy by confidence".to_string(),
        html,
    )))
}

/// Headline tiles for a summary.
pub fn accuracy_headline(summary: &Summary) -> Vec<(String, String)> {
    vec![
        ("files".into(), summary.n.to_string()),
        ("Accuracy1".into(), pct(summary.acc1)),
        ("Accuracy2".into(), pct(summary.acc2)),
        ("failed".into(), summary.failed.to_string()),
    ]
}

/// Creates the output folder, naming it on failure.
pub fn create_out_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir)
        .with_context(|| format!("cannot create output folder {}", dir.display()))
}

/// Runs `eval-cli evaluate`.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let ds = args.data.load()?;
    let estimators = args.data.estimators(&ds)?;
    create_out_dir(&args.out_dir)?;
    let (workers, warning) =
        runner::validate_workers(args.workers.unwrap_or_else(batch::default_workers));
    if let Some(w) = warning {
        eprintln!("eval-cli: warning: {w}");
    }
    let cancel = Arc::new(AtomicBool::new(false));
    runner::install_signal_handler(cancel.clone());
    let opts = RunOptions {
        workers,
        timeout: args.data.timeout(),
        schedule: args.data.schedule,
        progress: args.progress,
        cancel,
    };
    let audio = audio_if_needed(&ds, &estimators, &opts);
    let outcomes = run_estimators(&ds, &estimators, audio.as_deref(), &opts);
    let Some(outcome) = outcomes.first() else {
        anyhow::bail!("no estimator to run");
    };
    let (summary, costs) = write_estimators(&args.out_dir, &ds, &estimators, &outcomes)?;
    let mut timings = timings(outcome);
    timings.estimators = costs.clone();
    report::write_json(&args.out_dir.join("timings.json"), &timings)?;

    let mut sections = Vec::new();
    if estimators.len() > 1 {
        sections.push(estimators_section(&args.out_dir, &costs)?);
    }
    sections.extend(accuracy_sections(&args.out_dir, &summary, &outcome.rows)?);
    let latency = charts::LatencyCdf {
        series: vec![(
            format!("{} workers", outcome.workers),
            outcome
                .rows
                .iter()
                .filter(|r| r.status != "cancelled")
                .map(|r| r.elapsed_s * 1000.0)
                .collect(),
        )],
    };
    let l = &timings.latency_ms;
    let timing_html = format!(
        "{}{}",
        html::figure(
            &charts::save(&args.out_dir, &latency)?,
            "Per-file analysis time."
        ),
        html::table(
            &[
                "workers",
                "wall s",
                "files/s",
                "× realtime",
                "p50 ms",
                "p90 ms",
                "p99 ms",
                "max ms",
                "peak RSS MiB"
            ],
            &[vec![
                timings.workers.to_string(),
                format!("{:.2}", timings.wall_s),
                format!("{:.2}", timings.files_per_s),
                format!("{:.1}", timings.realtime_factor),
                format!("{:.1}", l.p50),
                format!("{:.1}", l.p90),
                format!("{:.1}", l.p99),
                format!("{:.1}", l.max),
                timings
                    .peak_rss_mb
                    .map_or("?".into(), |m| format!("{m:.0}")),
            ]],
        )
    );
    sections.push(("Timing (varies between runs)".into(), timing_html));
    let mut notes = Vec::new();
    if estimators.len() > 1 {
        notes.push(format!(
            "{} estimators were run one after the other on the same files; results.csv, the \
             headline and the accuracy sections are the first one's ({}), and each one's \
             results are in estimators/.",
            estimators.len(),
            estimators[0].name()
        ));
    }
    if outcome.cancelled {
        notes.push("The run was cancelled: unfinished files are failed rows.".to_string());
    }
    let page = html::Page {
        title: format!("Tempo evaluation: {}", ds.label),
        headline: accuracy_headline(&summary),
        notes,
        sections,
        host: timings.host.clone(),
        command: timings.command.clone(),
    };
    report::write_file(&args.out_dir.join("report.html"), page.render().as_bytes())?;

    // With several estimators, one line each (ours included) to read side by side.
    for c in costs.iter().filter(|_| costs.len() > 1) {
        println!(
            "{}: Accuracy1 {}, Accuracy2 {}, {} failed, {} CPU s per audio minute",
            c.name,
            pct(c.acc1),
            pct(c.acc2),
            c.failed,
            c.cpu_s_per_audio_min
                .map_or("unknown".into(), |x| format!("{x:.3}"))
        );
    }
    println!(
        "{}: {} files, Accuracy1 {}, Accuracy2 {}, {} failed; {:.2} s wall on {} workers; report: {}",
        ds.label,
        summary.n,
        pct(summary.acc1),
        pct(summary.acc2),
        summary.failed,
        timings.wall_s,
        timings.workers,
        args.out_dir.join("report.html").display()
    );
    Ok(if outcome.cancelled {
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
    })
}
