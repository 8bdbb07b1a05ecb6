//! The evaluation library: a dataset (a manifest or the built-in synthetic set), the batch
//! run of an estimator over it, each file scored against its true tempo and key ([`Row`]),
//! and the files of a run (`results.csv`, `summary.json`, the estimators' table).
//! `evaluate` and `compare` are its two commands; `dataset excerpts` reads datasets through
//! it.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use analyzer_core::batch::{self, FileResult, Job};
use analyzer_core::{Analyzer, StopSignal};
use anyhow::Context;

use crate::estimator::{Estimate, Estimator, EstimatorSpec};
use crate::flags;
use crate::manifest::{self, Dataset, Item, SynthParams};
use crate::metrics::{self, ErrorClass};
use crate::output::{self, Inputs};
use crate::report::model::Outcome;
use crate::report::{self, EstimatorAccuracy, EstimatorCost, Row, Summary};
use crate::runner::{self, ProgressMode, RowLog, RunOptions, Schedule, Shown};

/// Where the dataset comes from and how to analyse it: flags shared by `evaluate` and
/// `compare`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatasetArgs {
    /// A manifest CSV (`file` and a truth column or two, `bpm` and/or `key`, then any
    /// metadata; every figure of a kind counts only the files with that truth), a folder
    /// (its manifest.csv, or audio with GiantSteps-style `.bpm`, `.key` or JAMS tempo
    /// annotations), or `synth` for the built-in synthetic set (tempo and key), generated on
    /// first use into a cache folder.
    #[arg(long)]
    pub dataset: String,
    /// The analyzer's settings, the same flags as `analyze`'s.
    #[command(flatten)]
    pub analyzer: flags::AnalyzerArgs,
    /// The size of the synthetic set, for `--dataset synth`.
    #[command(flatten)]
    pub synth: SynthArgs,
    /// Which files start first.
    #[arg(long, value_enum, default_value = "longest")]
    pub schedule: Schedule,
    /// Per-file time limit in seconds (none by default); a file past it is a failed row
    /// (an external program is killed).
    #[arg(long, value_name = "SECS", value_parser = flags::parse_timeout)]
    pub timeout: Option<Duration>,
    /// Tempo and key estimator to score; repeat it to put several side by side (the first
    /// one's results are results.csv). `ours`, `cmd:TEMPLATE` (an external program per
    /// file, `{file}` replaced by its path; the key is the last line of its stdout that reads
    /// as one, e.g. `C# minor`, `Dbm`, `key: A minor`, `12A`, and the BPM the last number on
    /// its other lines, e.g. `cmd:aubio tempo {file}`), or `csv:FILE` (predictions with
    /// columns `file` and `bpm` and/or `key`), optionally behind a label for the reports:
    /// `aubio=cmd:aubio tempo {file}`.
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
    #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_COUNT,
          value_parser = flags::parse_track_count)]
    pub synth_count: usize,
    /// Seconds per synthetic track (1 to 3600).
    #[arg(long, default_value_t = manifest::DEFAULT_SYNTH_SECONDS,
          value_parser = flags::parse_audio_length)]
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
    /// Loads the dataset; no report of this run may replace one of its files
    /// ([`output::protect`]).
    pub fn load(&self) -> anyhow::Result<Dataset> {
        let ds = manifest::load(&self.dataset, self.synth.params())?;
        output::protect(&Inputs::of(ds.files()));
        Ok(ds)
    }

    /// Plans the analyzer these flags ask for.
    pub fn analyzer(&self) -> anyhow::Result<Analyzer> {
        self.analyzer.analyzer()
    }

    /// Prepares every `--estimator` for `ds`, in command-line order; no report of this run
    /// may replace or remove a `csv:` estimator's predictions ([`output::protect`]).
    pub fn estimators(&self, ds: &Dataset) -> anyhow::Result<Vec<Estimator>> {
        // Reports, folders and `check` tell estimators apart by name alone.
        let mut names = std::collections::BTreeSet::new();
        for spec in &self.estimators {
            let name = spec.name();
            if !names.insert(name.clone()) {
                anyhow::bail!(
                    "two estimators are named {name:?}: give each its own label \
                     (--estimator LABEL=SPEC)"
                );
            }
        }
        let analyzer = self.analyzer()?;
        output::protect(&Inputs::of(self.estimators.iter().filter_map(
            |spec| match &spec.source {
                crate::estimator::Source::Csv(path) => Some(path),
                _ => None,
            },
        )));
        self.estimators
            .iter()
            .map(|spec| Estimator::new(spec, ds, &analyzer))
            .collect()
    }
}

/// Runs `estimator` over every item of `ds` and scores each one.
///
/// `audio_s` gives each item's seconds of audio when the estimator does not report them
/// (see [`audio_durations`]). With `rows_to`, each file's `results.csv` row is appended to
/// that file as it finishes (so a crash loses nothing), and the file is rewritten in
/// dataset order when the batch ends.
pub fn evaluate_dataset(
    ds: &Dataset,
    estimator: &Estimator,
    audio_s: Option<&[f64]>,
    opts: &RunOptions,
    rows_to: Option<&Path>,
) -> anyhow::Result<Outcome> {
    let paths: Vec<PathBuf> = ds.items.iter().map(|i| i.path.clone()).collect();
    let known_audio = |i: usize| audio_s.and_then(|a| a.get(i).copied());
    let with_key = ds.has_key_truth();
    let header = report::results_header(with_key)?;
    let mut log = rows_to.map(|p| RowLog::create(p, &header)).transpose()?;
    let mut write_error: Option<anyhow::Error> = None;
    let summary = runner::run(&paths, opts, estimator, shown, |result| {
        let Some(log) = log.as_mut().filter(|_| write_error.is_none()) else {
            return;
        };
        let row = score(
            &ds.items[result.index],
            Some(result),
            known_audio(result.index),
        );
        let written = report::results_line(&row, with_key).and_then(|line| Ok(log.append(&line)?));
        if let Err(err) = written {
            write_error = Some(err);
            opts.cancel.store(true, Ordering::SeqCst);
        }
    });
    if let Some(err) = write_error {
        return Err(err).context("cannot write results.csv");
    }
    let mut by_index: Vec<Option<FileResult<Estimate>>> = std::iter::repeat_with(|| None)
        .take(ds.items.len())
        .collect();
    for result in summary.results {
        let index = result.index;
        by_index[index] = Some(result);
    }
    let rows: Vec<Row> = ds
        .items
        .iter()
        .zip(by_index)
        .enumerate()
        .map(|(i, (item, result))| score(item, result.as_ref(), known_audio(i)))
        .collect();
    if let Some(log) = log {
        // Line by line: the whole file is never held beside the rows.
        log.finish_with(|out| report::write_results(out, &rows).map_err(io::Error::other))?;
    }
    Ok(Outcome {
        rows,
        wall_s: summary.wall_s,
        workers: summary.workers,
        cancelled: summary.cancelled,
    })
}

/// What a `file` event of `--progress jsonl` shows of an estimate (ours, or whatever an
/// external tool gave): rounded as `analyze`'s row cells are, which its events show, so
/// that the same file reads the same in both commands' events.
fn shown(estimate: &Estimate) -> Shown {
    let rounded = |value: f64, places: usize| format!("{value:.places$}").parse().ok();
    Shown {
        bpm: estimate.bpm.and_then(|bpm| rounded(bpm, 3)),
        key: estimate.key.map(|key| key.to_string()),
        loudness_lufs: estimate.loudness_lufs.and_then(|lufs| rounded(lufs, 2)),
    }
}

/// The row of one dataset item: its result scored against the truth, or a `cancelled` row
/// when it has none. `known_audio` is its seconds of audio when the estimator gives none.
fn score(item: &Item, result: Option<&FileResult<Estimate>>, known_audio: Option<f64>) -> Row {
    match result {
        Some(r) => {
            let estimate = r.value.as_ref();
            let audio_s = estimate.and_then(|e| e.audio_s).or(known_audio);
            let answer = Answer {
                status: r.status.as_str(),
                estimate,
                error: r.error.as_deref().unwrap_or_default(),
                elapsed_s: r.elapsed_s,
                audio_s: audio_s.unwrap_or(0.0),
            };
            scored_row(item, &answer)
        }
        None => scored_row(
            item,
            &Answer {
                status: "cancelled",
                estimate: None,
                error: "cancelled before it finished",
                elapsed_s: 0.0,
                audio_s: 0.0,
            },
        ),
    }
}

/// How one file of a batch ended, as a row is made from it (in process, or as a child run
/// of `compare` reported it).
pub struct Answer<'a> {
    /// Runner status: `ok`, `error`, `timeout` or `cancelled`.
    pub status: &'static str,
    /// What the estimator gave, when it gave anything.
    pub estimate: Option<&'a Estimate>,
    /// Why the file failed (empty when it did not).
    pub error: &'a str,
    /// Seconds spent on the file.
    pub elapsed_s: f64,
    /// Seconds of audio in it (0 when unknown).
    pub audio_s: f64,
}

/// The row of `item` for `answer`: the tempo scored against the true tempo, the key kept
/// beside the true key (scored by the summary), the item's metadata.
pub fn scored_row(item: &Item, answer: &Answer) -> Row {
    let estimate = answer.estimate;
    let est_bpm = estimate.and_then(|e| e.bpm);
    let class = match item.bpm {
        Some(truth) if answer.status == "ok" => metrics::classify(est_bpm, truth),
        _ => ErrorClass::Failed,
    };
    Row {
        file: item.file.clone(),
        truth_bpm: item.bpm,
        est_bpm,
        truth_key: item.key,
        // A file without a pulse fails with its key kept: the key is scored all the same.
        est_key: estimate.and_then(|e| e.key),
        no_key: estimate.and_then(|e| e.no_key.clone()),
        confidence: estimate.and_then(|e| e.confidence),
        alt_bpm: estimate.and_then(|e| e.alt_bpm),
        class,
        status: answer.status,
        error: one_line(answer.error),
        meta: item.meta.clone(),
        elapsed_s: answer.elapsed_s,
        audio_s: answer.audio_s,
        cpu_s: estimate.and_then(|e| e.cpu_s),
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
    let summary = runner::run(&paths, &quiet, &DecodedLength, |_| Shown::default(), |_| {});
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
        acc1_either: summary.acc1_either,
        cpu_s,
        cpu_audio_s,
        cpu_s_per_audio_min: cpu_s
            .filter(|_| cpu_audio_s > 0.0)
            .map(|c| c / (cpu_audio_s / 60.0)),
        cpu_files: cpu.files,
        wall_s: outcome.wall_s,
        cpu_method: estimator.cpu_method().to_string(),
        key: summary.key.as_ref().map(|k| k.score.clone()),
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
        latency_ms: metrics::latency_ms(&elapsed),
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
    report::write_results_file(&dir.join("results.csv"), rows)?;
    let mut summary = report::summarize(&ds.label, rows, &ds.meta_columns)?;
    summary.estimators = vec![EstimatorAccuracy::of(name, &summary)];
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
/// With `dir`, each estimator's rows are appended as files finish to where
/// [`write_estimators`] puts its `results.csv` (see [`evaluate_dataset`]).
pub fn run_estimators(
    ds: &Dataset,
    estimators: &[Estimator],
    audio: Option<&[f64]>,
    opts: &RunOptions,
    dir: Option<&Path>,
) -> anyhow::Result<Vec<Outcome>> {
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
        let rows_to = match dir {
            Some(dir) => {
                let rows = rows_path(dir, k, estimator);
                if k > 0
                    && let Some(sub) = rows.parent()
                {
                    create_out_dir(sub)?;
                }
                Some(rows)
            }
            None => None,
        };
        let outcome = evaluate_dataset(ds, estimator, audio, opts, rows_to.as_deref())?;
        let cancelled = outcome.cancelled;
        outcomes.push(outcome);
        if cancelled {
            break;
        }
    }
    Ok(outcomes)
}

/// Where the `k`-th estimator's rows go in the run folder `dir`: the first one's in
/// `results.csv`, the others' in `estimators/K-NAME/results.csv`.
pub fn rows_path(dir: &Path, k: usize, estimator: &Estimator) -> PathBuf {
    if k == 0 {
        return dir.join("results.csv");
    }
    dir.join("estimators")
        .join(estimator_slug(k, estimator.name()))
        .join("results.csv")
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
        .map(|(e, s)| EstimatorAccuracy::of(e.name(), s))
        .collect();
    report::write_results_file(&dir.join("results.csv"), &outcome.rows)?;
    report::write_json(&dir.join("summary.json"), &summary)?;
    if estimators.len() > 1 {
        report::write_file(
            &dir.join("estimators.csv"),
            &report::estimators_csv(&costs)?,
        )?;
    }
    Ok((summary, costs))
}

/// The exit code of an evaluation that ran to its end: 130 when it was stopped; 1, with a
/// word on stderr, when not one file of the dataset was analysed (every row an error, a
/// timeout), because its accuracy and speed then measure nothing (a manifest pointing at
/// the wrong folder, a format no decoder reads); 0 otherwise. Some failed files are part
/// of an evaluation: they count as wrong in the report, which is written either way. A
/// file analysed that gave no tempo (`no_pulse`, a key-only tool) was analysed.
pub fn exit_code(rows: &[Row], cancelled: bool, results: &Path) -> std::process::ExitCode {
    if cancelled {
        return runner::finished(true);
    }
    if !rows.is_empty() && rows.iter().all(|row| row.status != "ok") {
        eprintln!(
            "eval-cli: no file was analysed ({} of {} failed), so the report measures \
             nothing; each file's reason is in {}",
            rows.len(),
            rows.len(),
            results.display()
        );
        return std::process::ExitCode::from(1);
    }
    runner::finished(false)
}

pub use crate::output::create_out_dir;

#[cfg(test)]
mod tests {
    /// What [`super::estimator_slug`] names, a report folder taken again knows as an
    /// estimator's own (and removes); anything else in `estimators/` stays.
    #[test]
    fn estimator_folders_are_named_as_a_report_folder_knows_them() {
        for (k, name) in [
            (1, "dbl"),
            (2, "My Tool 2.0!"),
            (3, "cmd:aubio tempo -i {file}"),
            (4, "ééé"),
            (5, ""),
        ] {
            let slug = super::estimator_slug(k, name);
            assert!(crate::report::folder::is_estimator_dir(&slug), "{slug}");
        }
    }
}
