//! What an evaluation run leaves behind, and the writers for it.
//!
//! The `#[derive(Serialize)]` structs here *are* the export formats: [`Summary`] is
//! `summary.json` (accuracy only, deterministic), [`Timings`] is `timings.json` (wall time,
//! latency, host; varies between runs), [`ResultRecord`] is one line of `results.csv`.
//! Maps are `BTreeMap`s so that key order is stable. Charts live in [`charts`], the HTML page
//! in [`html`], and polars aggregations in [`tables`].
//!
//! Over 500 lines with ten tests: the report's shared row types, the summary computed from
//! them, and the writers of results.csv and estimators.csv (the key's own columns and
//! summary are in [`key`]).

pub mod charts;
pub mod export;
pub mod folder;
pub mod html;
pub mod interference;
pub mod key;
pub mod key_page;
pub mod model;
pub mod pages;
pub mod tables;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use serde::{Deserialize, Serialize};

use analyzer_core::key::Key;
use export::Exporter;

use crate::key_metrics::KeyScore;
use crate::metrics::{self, ErrorClass, Latency, ReliabilityBin};
pub use key::{KeyRecord, KeySummary};

/// One evaluated file, as the harness keeps it in memory.
#[derive(Debug, Clone)]
pub struct Row {
    /// The file as the dataset names it.
    pub file: String,
    /// Ground-truth tempo, BPM; `None` when the dataset gives none for this file (it is
    /// then left out of every tempo figure).
    pub truth_bpm: Option<f64>,
    /// Estimated tempo, BPM (`None` when the file failed, or the estimator gives no tempo).
    pub est_bpm: Option<f64>,
    /// Ground-truth key; `None` when the dataset gives none for this file (it is then left
    /// out of every key figure).
    pub truth_key: Option<Key>,
    /// Estimated key (`None` when the file failed, the estimator gives no key or the audio
    /// has none).
    pub est_key: Option<Key>,
    /// Why there is no estimated key, when the estimator said (shown in the report only:
    /// results.csv keeps its cells).
    pub no_key: Option<String>,
    /// The analyzer's confidence in the estimate.
    pub confidence: Option<f64>,
    /// The estimator's second reading, BPM, when it gives one (scored by
    /// [`Row::either_acc1`]).
    pub alt_bpm: Option<f64>,
    /// How the tempo estimate relates to the truth (`failed` when there is no tempo truth:
    /// such rows are never counted).
    pub class: ErrorClass,
    /// Runner status: `ok`, `error`, `timeout` or `cancelled`.
    pub status: &'static str,
    /// Why the file failed (empty when it did not).
    pub error: String,
    /// The dataset's metadata columns for this file.
    pub meta: BTreeMap<String, String>,
    /// Seconds spent on this file (not part of the deterministic output).
    pub elapsed_s: f64,
    /// Seconds of audio decoded (0 when the file failed).
    pub audio_s: f64,
    /// CPU seconds (user + system) the estimator spent on this file, when measured (not
    /// part of the deterministic output).
    pub cpu_s: Option<f64>,
}

impl Row {
    /// Accuracy1 of either reading, the estimate or its alternative
    /// ([`metrics::either_acc1`]).
    pub fn either_acc1(&self) -> bool {
        metrics::either_acc1(self.class, self.alt_bpm, self.truth_bpm)
    }
}

/// One line of `results.csv`: its fields are the file's columns. Numbers are printed with
/// fixed precision so that the file is byte-identical between runs and worker counts.
#[derive(Debug, Default, Serialize)]
pub struct ResultRecord<'a> {
    /// The file as the dataset names it.
    pub file: &'a str,
    /// Ground-truth tempo, BPM, as given; empty when there is none.
    pub truth_bpm: String,
    /// Estimated tempo, BPM, two decimals; empty when the file failed.
    pub est_bpm: String,
    /// Confidence, four decimals; empty when the file failed.
    pub confidence: String,
    /// The second reading, BPM, two decimals; empty when there is none.
    pub alt_bpm: String,
    /// 1 when the estimate is within 4 % of the truth; empty without tempo truth.
    pub acc1: &'static str,
    /// 1 when the estimate is within 4 % of the truth times 1, 2, 1/2, 3 or 1/3; empty
    /// without tempo truth.
    pub acc2: &'static str,
    /// 1 when the estimate or the second reading is within 4 % of the truth; empty without
    /// tempo truth.
    pub acc1_either: &'static str,
    /// The error class (see [`ErrorClass::as_str`]); empty without tempo truth.
    pub error_class: &'static str,
    /// Runner status.
    pub status: &'static str,
    /// Why the file failed.
    pub error: &'a str,
}

impl<'a> From<&'a Row> for ResultRecord<'a> {
    fn from(row: &'a Row) -> Self {
        let tempo = row.truth_bpm.is_some();
        let flag = |hit: bool| match (tempo, hit) {
            (false, _) => "",
            (true, true) => "1",
            (true, false) => "0",
        };
        ResultRecord {
            file: &row.file,
            truth_bpm: row.truth_bpm.map_or(String::new(), |b| b.to_string()),
            est_bpm: row.est_bpm.map_or(String::new(), |b| format!("{b:.2}")),
            confidence: row.confidence.map_or(String::new(), |c| format!("{c:.4}")),
            alt_bpm: row.alt_bpm.map_or(String::new(), |b| format!("{b:.2}")),
            acc1: flag(row.class.acc1()),
            acc2: flag(row.class.acc2()),
            acc1_either: flag(row.either_acc1()),
            error_class: if tempo { row.class.as_str() } else { "" },
            status: row.status,
            error: &row.error,
        }
    }
}

/// Whether `rows` are scored for key: some file has a true key. Then results.csv has the
/// key columns and summary.json its `key` object; otherwise both are as before key
/// existed, byte for byte.
pub fn has_key_truth(rows: &[Row]) -> bool {
    rows.iter().any(|r| r.truth_key.is_some())
}

/// The header line of `results.csv`, with the key columns when `with_key`.
pub fn results_header(with_key: bool) -> anyhow::Result<Vec<u8>> {
    if with_key {
        export::csv_header::<(ResultRecord, KeyRecord)>()
    } else {
        export::csv_header::<ResultRecord>()
    }
}

/// One line of `results.csv`, with the key columns when `with_key`.
pub fn results_line(row: &Row, with_key: bool) -> anyhow::Result<Vec<u8>> {
    if with_key {
        export::CsvLine.serialize(&(ResultRecord::from(row), KeyRecord::from(row)))
    } else {
        export::CsvLine.serialize(&ResultRecord::from(row))
    }
}

/// Renders `results.csv` in input order: the tempo columns, then `key_truth,key,
/// key_relation` when some file has a true key.
pub fn results_csv(rows: &[Row]) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    write_results(&mut out, rows)?;
    Ok(out)
}

/// Writes [`results_csv`] of `rows` to `out` a line at a time, so that a large dataset's
/// file is never held whole in memory beside its rows.
pub fn write_results(out: &mut dyn Write, rows: &[Row]) -> anyhow::Result<()> {
    let with_key = has_key_truth(rows);
    out.write_all(&results_header(with_key)?)?;
    for row in rows {
        out.write_all(&results_line(row, with_key)?)?;
    }
    Ok(())
}

/// Writes `results.csv` of `rows` at `path` by the output rules, as [`write_file`] does,
/// streamed ([`write_results`]).
pub fn write_results_file(path: &Path, rows: &[Row]) -> anyhow::Result<()> {
    let dest = crate::output::Destination::check_protected(path)?;
    dest.replace(|out| write_results(out, rows).map_err(std::io::Error::other))?;
    Ok(())
}

/// One line of `estimators.csv`: one estimator, fixed precision.
#[derive(Debug, Default, Serialize)]
pub struct EstimatorRecord {
    /// The estimator as named on the command line.
    pub name: String,
    /// Files evaluated.
    pub n: usize,
    /// Files it failed on.
    pub failed: usize,
    /// Accuracy1, four decimals.
    pub acc1: String,
    /// Accuracy2, four decimals.
    pub acc2: String,
    /// Accuracy1 of either reading, four decimals.
    pub acc1_either: String,
    /// CPU seconds, two decimals; empty when not measured.
    pub cpu_s: String,
    /// Seconds of audio in the measured files, one decimal.
    pub cpu_audio_s: String,
    /// CPU seconds per minute of audio, four decimals; empty when not measured.
    pub cpu_s_per_audio_min: String,
    /// Files whose CPU was measured.
    pub cpu_files: usize,
    /// Wall seconds of the estimator's batch, two decimals.
    pub wall_s: String,
}

impl From<&EstimatorCost> for EstimatorRecord {
    fn from(c: &EstimatorCost) -> Self {
        let opt = |x: Option<f64>, p: usize| x.map_or(String::new(), |x| format!("{x:.p$}"));
        EstimatorRecord {
            name: c.name.clone(),
            n: c.n,
            failed: c.failed,
            acc1: format!("{:.4}", c.acc1),
            acc2: format!("{:.4}", c.acc2),
            acc1_either: format!("{:.4}", c.acc1_either),
            cpu_s: opt(c.cpu_s, 2),
            cpu_audio_s: format!("{:.1}", c.cpu_audio_s),
            cpu_s_per_audio_min: opt(c.cpu_s_per_audio_min, 4),
            cpu_files: c.cpu_files,
            wall_s: format!("{:.2}", c.wall_s),
        }
    }
}

/// Renders `estimators.csv`: one line per estimator, fixed precision; with key scores, the
/// key columns ([`key::EstimatorKeyRecord`]) follow the others.
pub fn estimators_csv(costs: &[EstimatorCost]) -> anyhow::Result<Vec<u8>> {
    if costs.iter().any(|c| c.key.is_some()) {
        let records: Vec<(EstimatorRecord, key::EstimatorKeyRecord)> = costs
            .iter()
            .map(|c| (EstimatorRecord::from(c), key::EstimatorKeyRecord::from(c)))
            .collect();
        return export::Csv.serialize(&records[..]);
    }
    let records: Vec<EstimatorRecord> = costs.iter().map(EstimatorRecord::from).collect();
    export::Csv.serialize(&records[..])
}

/// Accuracy of one group of files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupAccuracy {
    /// Files in the group.
    pub n: usize,
    /// Fraction of the group right by Accuracy1.
    pub acc1: f64,
    /// Fraction of the group right by Accuracy2.
    pub acc2: f64,
    /// Fraction of the group right by Accuracy1 of either reading.
    #[serde(default)]
    pub acc1_either: f64,
}

/// The metadata column that gives each file's seconds of audio (what `dataset excerpts`
/// writes): its groups become [`Summary::by_seconds`], in numeric order.
pub const SECONDS_COLUMN: &str = "seconds";

/// Accuracy of the files of one length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LengthAccuracy {
    /// Seconds of audio per file, from the `seconds` column.
    pub seconds: f64,
    /// Files, and how many of them were right.
    #[serde(flatten)]
    pub accuracy: GroupAccuracy,
}

/// The groups of `groups` by number, smallest first (`8` before `10`, which a string sort
/// puts the other way round), when every key is a finite number; `None` otherwise.
pub fn numeric_groups<V>(groups: &BTreeMap<String, V>) -> Option<Vec<(f64, &String)>> {
    let mut keyed = groups
        .keys()
        .map(|k| {
            k.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .map(|v| (v, k))
        })
        .collect::<Option<Vec<_>>>()?;
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
    Some(keyed)
}

/// The keys of one breakdown in reading order: tempo bands slowest first, numbers by value,
/// anything else as sorted text.
pub fn ordered_keys<'a, V>(column: &str, groups: &'a BTreeMap<String, V>) -> Vec<&'a String> {
    if column == "tempo_band" {
        let mut keys: Vec<&String> = groups.keys().collect();
        keys.sort_by_key(|k| metrics::TEMPO_BAND_NAMES.iter().position(|b| b == k));
        return keys;
    }
    match numeric_groups(groups) {
        Some(keyed) => keyed.into_iter().map(|(_, k)| k).collect(),
        None => groups.keys().collect(),
    }
}

/// [`Summary::by_seconds`] from the breakdowns: empty unless there is a `seconds` one whose
/// every value is a number.
fn by_seconds(by: &BTreeMap<String, BTreeMap<String, GroupAccuracy>>) -> Vec<LengthAccuracy> {
    let Some(groups) = by.get(SECONDS_COLUMN) else {
        return Vec::new();
    };
    numeric_groups(groups)
        .unwrap_or_default()
        .into_iter()
        .map(|(seconds, key)| LengthAccuracy {
            seconds,
            accuracy: groups[key].clone(),
        })
        .collect()
}

/// `summary.json`: the accuracy of one evaluation, computed only, never measured. Deterministic: the same dataset gives the
/// same bytes whatever the worker count. Timings live in [`Timings`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// The dataset, as named on the command line.
    pub dataset: String,
    /// Files evaluated.
    pub n: usize,
    /// Files analysed without error.
    pub ok: usize,
    /// Files that failed (error, timeout, cancelled); they count as wrong.
    pub failed: usize,
    /// Fraction of all files right by Accuracy1 (0 when n = 0).
    pub acc1: f64,
    /// Fraction of all files right by Accuracy2 (0 when n = 0).
    pub acc2: f64,
    /// Fraction of all files whose estimate or second reading (`alt_bpm`) is right by
    /// Accuracy1 (0 when n = 0): what a user shown both readings gets. The same as `acc1`
    /// for an estimator that gives one reading.
    #[serde(default)]
    pub acc1_either: f64,
    /// Files per error class (every class listed, zeros included).
    pub classes: BTreeMap<String, usize>,
    /// Accuracy by grouping: `tempo_band` and each metadata column with repeated values,
    /// then by the column's value.
    pub by: BTreeMap<String, BTreeMap<String, GroupAccuracy>>,
    /// `by.seconds` in numeric order (shortest first), when the dataset has a numeric
    /// `seconds` column (excerpts from `dataset excerpts`); empty otherwise.
    #[serde(default)]
    pub by_seconds: Vec<LengthAccuracy>,
    /// Accuracy by the estimator's confidence, in [`metrics::RELIABILITY_BINS`] bins over
    /// 0..1, of the files that have a confidence (every bin listed, empty ones too).
    #[serde(default)]
    pub reliability: Vec<ReliabilityBin>,
    /// Every estimator of the run (`--estimator`), in command-line order; the fields above
    /// are the first one's. What they cost (CPU seconds, measured, so varying between runs)
    /// is beside the timings, in `timings.json`.
    #[serde(default)]
    pub estimators: Vec<EstimatorAccuracy>,
    /// Key scores over the files with a true key; absent (not even `null`) when the
    /// dataset has no key truth, so that a tempo-only summary keeps its bytes. The tempo
    /// fields above count only the files with a true tempo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeySummary>,
}

/// The accuracy of one estimator, in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorAccuracy {
    /// The estimator as named on the command line (`ours`, `cmd:...`, `csv:...`).
    pub name: String,
    /// Files evaluated.
    pub n: usize,
    /// Files it failed on (error, timeout, no prediction); they count as wrong.
    pub failed: usize,
    /// Fraction of all files right by Accuracy1.
    pub acc1: f64,
    /// Fraction of all files right by Accuracy2.
    pub acc2: f64,
    /// Fraction of all files right by Accuracy1 of either reading.
    #[serde(default)]
    pub acc1_either: f64,
    /// Its accuracy by seconds of audio (as [`Summary::by_seconds`]), for the by-length
    /// chart that puts estimators side by side.
    #[serde(default)]
    pub by_seconds: Vec<LengthAccuracy>,
    /// Its key scores (as [`Summary::key`]); absent without key truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyScore>,
}

impl EstimatorAccuracy {
    /// The accuracy entry of an estimator from its run's summary.
    pub fn of(name: &str, summary: &Summary) -> Self {
        EstimatorAccuracy {
            name: name.to_string(),
            n: summary.n,
            failed: summary.failed,
            acc1: summary.acc1,
            acc2: summary.acc2,
            acc1_either: summary.acc1_either,
            by_seconds: summary.by_seconds.clone(),
            key: summary.key.as_ref().map(|k| k.score.clone()),
        }
    }
}

/// The CPU an estimator spent over the rows where it was measured, and the audio in them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MeasuredCpu {
    /// CPU seconds; `None` when no row was measured.
    pub cpu_s: Option<f64>,
    /// Seconds of audio in the measured rows.
    pub audio_s: f64,
    /// Rows measured.
    pub files: usize,
}

impl MeasuredCpu {
    /// Sums `rows` that carry a CPU time.
    pub fn of(rows: &[Row]) -> Self {
        let measured: Vec<&Row> = rows.iter().filter(|r| r.cpu_s.is_some()).collect();
        MeasuredCpu {
            cpu_s: (!measured.is_empty()).then(|| measured.iter().filter_map(|r| r.cpu_s).sum()),
            // `+ 0.0`: the sum of no rows is -0.0, which read `-0.0` in every table.
            audio_s: measured.iter().map(|r| r.audio_s).sum::<f64>() + 0.0,
            files: measured.len(),
        }
    }
}

/// The cost of one estimator, in `timings.json` and `estimators.csv`. Varies between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EstimatorCost {
    /// The estimator as named on the command line.
    pub name: String,
    /// Files evaluated.
    pub n: usize,
    /// Files it failed on.
    pub failed: usize,
    /// Fraction of all files right by Accuracy1 (as in `summary.json`).
    pub acc1: f64,
    /// Fraction of all files right by Accuracy2 (as in `summary.json`).
    pub acc2: f64,
    /// Fraction of all files right by Accuracy1 of either reading (as in `summary.json`).
    #[serde(default)]
    pub acc1_either: f64,
    /// CPU seconds (user + system) over the files whose CPU was measured; `None` when none
    /// was (predictions from a CSV, or no `/proc`).
    pub cpu_s: Option<f64>,
    /// Seconds of audio in those files.
    pub cpu_audio_s: f64,
    /// `cpu_s` per minute of that audio: the x axis of the accuracy-vs-cost chart.
    pub cpu_s_per_audio_min: Option<f64>,
    /// Files whose CPU was measured.
    pub cpu_files: usize,
    /// Wall seconds of the estimator's whole batch.
    pub wall_s: f64,
    /// How `cpu_s` was measured.
    pub cpu_method: String,
    /// Its key scores (as in `summary.json`); absent without key truth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<KeyScore>,
}

/// Metadata columns worth grouping by: at most 24 distinct values, each a label of at
/// most [`MAX_GROUP_LABEL`] characters, and not mostly per-file values (identifiers, seeds,
/// durations: more distinct values than half the files).
/// Metadata columns that say where a file came from rather than what kind it is (an
/// excerpt's offset and source track, a generator seed, a project path): no breakdown.
const NOT_GROUPS: [&str; 5] = ["offset_s", "source_file", "seed", "project", "duration_s"];

/// The longest value a grouping column may hold: a longer one is free text (a comment, a
/// description), which every table and summary.json would repeat (a manifest of two rows
/// with one 50 MB cell copied the cell into summary.json and report.html).
const MAX_GROUP_LABEL: usize = 120;

fn groupable(rows: &[&Row], column: &str) -> bool {
    if NOT_GROUPS.contains(&column) {
        return false;
    }
    let distinct: BTreeSet<&str> = rows
        .iter()
        .map(|r| r.meta.get(column).map_or("", String::as_str))
        .collect();
    distinct.len() <= 24
        && distinct
            .iter()
            .all(|v| v.chars().count() <= MAX_GROUP_LABEL)
        && (rows.len() <= 2 || 2 * distinct.len() <= rows.len())
}

/// Builds the summary of `rows`: tempo over the rows with a true tempo, key over those
/// with a true key.
pub fn summarize(
    dataset: &str,
    all_rows: &[Row],
    meta_columns: &[String],
) -> anyhow::Result<Summary> {
    let rows: Vec<&Row> = all_rows.iter().filter(|r| r.truth_bpm.is_some()).collect();
    let rows = rows.as_slice();
    let acc1: Vec<bool> = rows.iter().map(|r| r.class.acc1()).collect();
    let acc2: Vec<bool> = rows.iter().map(|r| r.class.acc2()).collect();
    let either: Vec<bool> = rows.iter().map(|r| r.either_acc1()).collect();
    let hits = tables::Hits {
        acc1: &acc1,
        acc2: &acc2,
        either: &either,
    };
    let n = rows.len();
    let failed = rows
        .iter()
        .filter(|r| r.class == ErrorClass::Failed)
        .count();

    let class_keys: Vec<String> = rows.iter().map(|r| r.class.as_str().to_string()).collect();
    let mut classes: BTreeMap<String, usize> = ErrorClass::ALL
        .iter()
        .map(|c| (c.as_str().to_string(), 0))
        .collect();
    for group in tables::accuracy_by(&class_keys, hits)? {
        classes.insert(group.key, group.n);
    }

    let mut by = BTreeMap::new();
    let mut group = |name: &str, keys: Vec<String>| -> anyhow::Result<()> {
        let table = tables::accuracy_by(&keys, hits)?
            .into_iter()
            .map(|g| {
                let acc = GroupAccuracy {
                    n: g.n,
                    acc1: metrics::fraction(g.acc1, g.n),
                    acc2: metrics::fraction(g.acc2, g.n),
                    acc1_either: metrics::fraction(g.either, g.n),
                };
                (g.key, acc)
            })
            .collect();
        by.insert(name.to_string(), table);
        Ok(())
    };
    group(
        "tempo_band",
        rows.iter()
            .filter_map(|r| r.truth_bpm)
            .map(|bpm| metrics::tempo_band(bpm).to_string())
            .collect(),
    )?;
    for column in meta_columns {
        if column == "tempo_band" || !groupable(rows, column) {
            continue;
        }
        let keys = rows
            .iter()
            .map(|r| r.meta.get(column).cloned().unwrap_or_default())
            .collect();
        group(column, keys)?;
    }

    let confidences: Vec<(f64, ErrorClass)> = rows
        .iter()
        .filter_map(|r| r.confidence.map(|c| (c, r.class)))
        .collect();
    Ok(Summary {
        dataset: dataset.to_string(),
        n,
        ok: n - failed,
        failed,
        acc1: metrics::fraction(acc1.iter().filter(|&&b| b).count(), n),
        acc2: metrics::fraction(acc2.iter().filter(|&&b| b).count(), n),
        acc1_either: metrics::fraction(either.iter().filter(|&&b| b).count(), n),
        classes,
        by_seconds: by_seconds(&by),
        by,
        reliability: metrics::reliability(&confidences, metrics::RELIABILITY_BINS),
        estimators: Vec::new(),
        key: key::summarize(all_rows, meta_columns),
    })
}

pub use crate::host::{Host, available_cores, host};

/// The command line of this process, shell-quoted where needed.
pub fn command_line() -> String {
    std::env::args()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=,:+@%".contains(c))
            {
                a
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `timings.json`: how long one evaluation took, and where. Varies between runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timings {
    /// Worker threads used.
    pub workers: usize,
    /// Wall-clock seconds of the batch (analysis only, not report writing).
    pub wall_s: f64,
    /// Files in the batch.
    pub files: usize,
    /// Seconds of audio decoded.
    pub audio_s: f64,
    /// Files per wall second.
    pub files_per_s: f64,
    /// Audio seconds per wall second.
    pub realtime_factor: f64,
    /// Per-file latency percentiles, ms.
    pub latency_ms: Latency,
    /// Peak resident set size of the process, MiB (VmHWM), when known.
    pub peak_rss_mb: Option<f64>,
    /// Whether the batch was cancelled (Ctrl-C).
    pub cancelled: bool,
    /// The machine.
    pub host: Host,
    /// The exact command line.
    pub command: String,
    /// CPU cost and accuracy of every estimator of the run, in command-line order.
    #[serde(default)]
    pub estimators: Vec<EstimatorCost>,
}

/// `a / b`, or 0 when `b` is not positive.
pub fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// Writes `value` as pretty JSON with a trailing newline.
pub fn write_json(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    export::write(path, &export::Json, value)
}

/// Writes bytes to `path` by the output rules ([`crate::output::write_file`]: never over a
/// folder, device or pipe; atomically), naming the path on failure.
pub fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    Ok(crate::output::write_file(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    fn row(file: &str, truth: f64, est: Option<f64>, style: &str) -> Row {
        Row {
            file: file.into(),
            truth_bpm: Some(truth),
            est_bpm: est,
            truth_key: None,
            est_key: None,
            no_key: None,
            confidence: est.map(|_| 0.5),
            alt_bpm: None,
            class: metrics::classify(est, truth),
            status: if est.is_some() { "ok" } else { "error" },
            error: if est.is_some() {
                String::new()
            } else {
                "decode: io: gone".into()
            },
            meta: BTreeMap::from([("style".into(), style.into())]),
            elapsed_s: 0.1,
            audio_s: 10.0,
            cpu_s: None,
        }
    }

    /// A column of long values is free text, not groups: a 50 MB cell was copied into
    /// summary.json and the report as a group's name.
    #[test]
    fn a_column_of_long_values_is_no_grouping() {
        let long = "x".repeat(MAX_GROUP_LABEL + 1);
        let rows = [
            row("a.wav", 120.0, Some(120.0), &long),
            row("b.wav", 100.0, Some(100.0), "rock"),
        ];
        let s = summarize("t", &rows, &["style".into()]).unwrap();
        assert!(!s.by.contains_key("style"), "{:?}", s.by.keys());
        let labels = [
            row("a.wav", 120.0, Some(120.0), &long[1..]),
            row("b.wav", 100.0, Some(100.0), "rock"),
        ];
        let s = summarize("t", &labels, &["style".into()]).unwrap();
        assert_eq!(s.by["style"].len(), 2);
    }

    /// No measured row is 0 seconds of audio, not the `-0.0` an empty sum gives.
    #[test]
    fn no_measured_rows_are_zero_audio() {
        let cpu = MeasuredCpu::of(&[row("a.wav", 120.0, Some(120.0), "x")]);
        assert_eq!(
            (cpu.cpu_s, format!("{:.1}", cpu.audio_s)),
            (None, "0.0".into())
        );
    }

    #[test]
    fn summary_counts_failures_as_wrong() {
        let mut rows = [
            row("a.wav", 120.0, Some(121.0), "rock"),
            row("b.wav", 100.0, Some(200.0), "rock"),
            row("c.wav", 80.0, None, "waltz"),
            row("d.wav", 170.0, Some(113.3), "waltz"),
        ];
        // d.wav's second reading is the truth; a failed file's is never counted.
        rows[3].alt_bpm = Some(170.5);
        rows[2].alt_bpm = Some(80.0);
        let s = summarize("t", &rows, &["style".into()]).unwrap();
        assert_eq!((s.n, s.ok, s.failed), (4, 3, 1));
        assert_eq!((s.acc1, s.acc2, s.acc1_either), (0.25, 0.5, 0.5));
        assert_eq!(s.by["style"]["waltz"].acc1_either, 0.5);
        assert_eq!(s.classes["ok"], 1);
        assert_eq!(s.classes["double"], 1);
        assert_eq!(s.classes["failed"], 1);
        assert_eq!(s.classes["two_thirds"], 1);
        assert_eq!(s.classes["half"], 0);
        assert_eq!(
            s.by["style"]["rock"],
            GroupAccuracy {
                n: 2,
                acc1: 0.5,
                acc2: 1.0,
                acc1_either: 0.5,
            }
        );
        assert_eq!(s.by["tempo_band"]["60-90"].n, 1);
    }

    #[test]
    fn lengths_sort_as_numbers() {
        // Eight files, two of each length; the 8-s ones are wrong by Accuracy1.
        let rows: Vec<Row> = ["30", "8", "10", "15", "30", "8", "10", "15"]
            .iter()
            .enumerate()
            .map(|(i, &seconds)| {
                let est = if seconds == "8" { 240.0 } else { 120.0 };
                let mut r = row(&format!("{i}.wav"), 120.0, Some(est), "x");
                r.meta.insert(SECONDS_COLUMN.into(), seconds.into());
                r
            })
            .collect();
        let s = summarize("t", &rows, &[SECONDS_COLUMN.into(), "style".into()]).unwrap();
        let lengths: Vec<(f64, usize, f64)> = s
            .by_seconds
            .iter()
            .map(|l| (l.seconds, l.accuracy.n, l.accuracy.acc1))
            .collect();
        assert_eq!(
            lengths,
            [
                (8.0, 2, 0.0),
                (10.0, 2, 1.0),
                (15.0, 2, 1.0),
                (30.0, 2, 1.0)
            ]
        );
        assert_eq!(
            ordered_keys(SECONDS_COLUMN, &s.by[SECONDS_COLUMN]),
            ["8", "10", "15", "30"]
        );
        // Text keys keep their text order; a column with any non-number has no by_seconds.
        assert_eq!(ordered_keys("style", &s.by["style"]), ["x"]);
        let mut mixed = s.by[SECONDS_COLUMN].clone();
        mixed.insert("long".into(), mixed["8"].clone());
        assert!(numeric_groups(&mixed).is_none());
        assert_eq!(
            ordered_keys(SECONDS_COLUMN, &mixed),
            ["10", "15", "30", "8", "long"]
        );
        let by = BTreeMap::from([(SECONDS_COLUMN.to_string(), mixed)]);
        assert!(by_seconds(&by).is_empty());
    }

    #[test]
    fn summary_bins_confidence_of_answered_files() {
        let rows = [
            row("a.wav", 120.0, Some(121.0), "rock"),
            row("b.wav", 100.0, Some(200.0), "rock"),
            row("c.wav", 80.0, None, "waltz"),
        ];
        let s = summarize("t", &rows, &[]).unwrap();
        assert_eq!(s.reliability.len(), metrics::RELIABILITY_BINS);
        // Both answers have confidence 0.5 (the middle bin); the failed file has none.
        let middle = &s.reliability[2];
        assert_eq!((middle.n, middle.acc1, middle.acc2), (2, 0.5, 1.0));
        assert_eq!(s.reliability.iter().map(|b| b.n).sum::<usize>(), 2);
    }

    #[test]
    fn empty_summary() {
        let s = summarize("empty", &[], &[]).unwrap();
        assert_eq!((s.n, s.acc1, s.acc2), (0, 0.0, 0.0));
        assert_eq!(s.classes.len(), ErrorClass::ALL.len());
        let csv = String::from_utf8(results_csv(&[]).unwrap()).unwrap();
        assert!(csv.starts_with(
            "file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class"
        ));
    }

    /// Writes `bytes` over the snapshot when `UPDATE_SNAPSHOTS` is set; else compares.
    fn assert_snapshot(name: &str, bytes: &[u8]) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("src/report/snapshots")
            .join(name);
        if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
            fs::write(&path, bytes).unwrap();
        }
        let want = fs::read(&path).unwrap_or_default();
        assert!(
            want == bytes,
            "{name} differs from its snapshot:\n{}",
            String::from_utf8_lossy(bytes)
        );
    }

    fn fixed_rows() -> Vec<Row> {
        let mut rows = vec![
            row("a.wav", 120.0, Some(121.0), "rock"),
            row("b, \"c\".wav", 100.0, Some(200.0), "rock"),
            row("c.wav", 80.0, None, "waltz"),
            row("d.wav", 170.0, Some(113.3), "waltz"),
        ];
        rows[3].confidence = Some(0.91);
        rows[3].alt_bpm = Some(170.04);
        rows
    }

    #[test]
    fn results_csv_snapshot() {
        assert_snapshot("results.csv", &results_csv(&fixed_rows()).unwrap());
    }

    #[test]
    fn summary_json_snapshot() {
        let rows = fixed_rows();
        let mut summary = summarize("fixed", &rows, &["style".into()]).unwrap();
        summary.estimators = vec![EstimatorAccuracy::of("ours", &summary)];
        assert_snapshot("summary.json", &export::Json.serialize(&summary).unwrap());
    }

    #[test]
    fn estimators_csv_snapshot() {
        let cost = |name: &str, cpu_s: Option<f64>| EstimatorCost {
            name: name.into(),
            n: 4,
            failed: 1,
            acc1: 0.25,
            acc2: 2.0 / 3.0,
            acc1_either: 0.5,
            cpu_s,
            cpu_audio_s: 40.0,
            cpu_s_per_audio_min: cpu_s.map(|c| c / (40.0 / 60.0)),
            cpu_files: 3,
            wall_s: 1.23456,
            cpu_method: "test".into(),
            key: None,
        };
        let csv = estimators_csv(&[cost("ours", Some(0.5)), cost("csv:p.csv", None)]).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "name,n,failed,acc1,acc2,acc1_either,cpu_s,cpu_audio_s,cpu_s_per_audio_min,\
             cpu_files,wall_s\n\
             ours,4,1,0.2500,0.6667,0.5000,0.50,40.0,0.7500,3,1.23\n\
             csv:p.csv,4,1,0.2500,0.6667,0.5000,,40.0,,3,1.23\n"
        );
        // With key scores, their columns follow.
        let mut keyed = cost("ours", Some(0.5));
        keyed.key = Some(KeyScore {
            n: 4,
            weighted: 0.45,
            weighted_mir_eval: 0.325,
            accuracy: 0.25,
            missing: 1,
        });
        let csv = estimators_csv(&[keyed, cost("tempo-tool", None)]).unwrap();
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "name,n,failed,acc1,acc2,acc1_either,cpu_s,cpu_audio_s,cpu_s_per_audio_min,\
             cpu_files,wall_s,key_n,key_weighted,key_weighted_mir_eval,key_accuracy,key_missing\n\
             ours,4,1,0.2500,0.6667,0.5000,0.50,40.0,0.7500,3,1.23,4,0.4500,0.3250,0.2500,1\n\
             tempo-tool,4,1,0.2500,0.6667,0.5000,,40.0,,3,1.23,,,,,\n"
        );
    }

    #[test]
    fn html_page_snapshot() {
        let page = html::Page {
            title: "Tempo <test>".into(),
            headline: vec![("files".into(), "4".into())],
            notes: vec!["a & b".into()],
            sections: vec![("Section".into(), "<p>inner</p>".into())],
            host: Host {
                cores: 2,
                physical_cores: None,
                cpu_model: "CPU".into(),
                memory_gib: 1.5,
                os: "OS".into(),
            },
            command: "eval-cli 'a b'".into(),
        };
        assert_snapshot("report.html", &export::Html.serialize(&page).unwrap());
    }

    #[test]
    fn key_columns_follow_the_tempo_ones_only_with_key_truth() {
        let mut rows = vec![
            row("a.wav", 120.0, Some(121.0), "rock"),
            row("b.wav", 100.0, Some(200.0), "rock"),
        ];
        rows[0].truth_key = Some("C major".parse().unwrap());
        rows[0].est_key = Some("F major".parse().unwrap());
        // A file with a true key and no tempo truth: its tempo cells are empty.
        rows[1].truth_bpm = None;
        rows[1].truth_key = Some("A minor".parse().unwrap());
        let text = String::from_utf8(results_csv(&rows).unwrap()).unwrap();
        assert_eq!(
            text,
            "file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class,\
             status,error,key_truth,key,key_relation\n\
             a.wav,120,121.00,0.5000,,1,1,1,ok,ok,,C major,F major,fifth_below\n\
             b.wav,,200.00,0.5000,,,,,,ok,,A minor,,missing\n"
        );
        let s = summarize("t", &rows, &[]).unwrap();
        // Tempo over the one file with a true tempo, key over both.
        assert_eq!((s.n, s.acc1), (1, 1.0));
        let key = s.key.as_ref().unwrap();
        assert_eq!(
            (key.score.n, key.score.missing, key.score.weighted),
            (2, 1, 0.25)
        );
        let json = String::from_utf8(export::Json.serialize(&s).unwrap()).unwrap();
        assert!(json.contains("\"weighted_mir_eval\": 0.0"), "{json}");
        // Without key truth, neither the columns nor the `key` object.
        let tempo_only = fixed_rows();
        assert!(
            !String::from_utf8(results_csv(&tempo_only).unwrap())
                .unwrap()
                .contains("key")
        );
        let s = summarize("t", &tempo_only, &[]).unwrap();
        assert!(s.key.is_none());
        assert!(
            !String::from_utf8(export::Json.serialize(&s).unwrap())
                .unwrap()
                .contains("key")
        );
    }

    #[test]
    fn csv_is_fixed_precision() {
        let csv = results_csv(&[row("a b.wav", 97.5, Some(97.123456), "x")]).unwrap();
        let text = String::from_utf8(csv).unwrap();
        assert_eq!(
            text,
            "file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class,\
             status,error\n\
             a b.wav,97.5,97.12,0.5000,,1,1,1,ok,ok,\n"
        );
    }
}
