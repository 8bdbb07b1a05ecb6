//! `eval-cli check`: the CI gate. Reads a run directory (`summary.json`, and `compare.json`
//! when a threshold needs it) and a thresholds TOML file; exits 0 when every threshold
//! holds, 1 with a table of what fell short, 2 when the input cannot be read or holds
//! figures no run writes.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::{input, stdout};

/// Flags of `eval-cli check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A run directory written by `evaluate` or `compare`.
    #[arg(long)]
    pub report: PathBuf,
    /// Thresholds file (TOML): `min_acc1`, `min_acc2`, `min_acc1_either`, `min_key_weighted`,
    /// `min_key_accuracy`, `min_efficiency`, `require_identical`, `max_interference`,
    /// `max_repeat_spread`.
    #[arg(long)]
    pub thresholds: PathBuf,
}

/// The gate. Every key is optional; a missing key is not checked.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// Lowest acceptable Accuracy1 (fraction of all files, from summary.json).
    pub min_acc1: Option<f64>,
    /// Lowest acceptable Accuracy2.
    pub min_acc2: Option<f64>,
    /// Lowest acceptable Accuracy1 of either reading (`acc1_either`: the estimate or its
    /// `alt_bpm`). A summary without it (written before it was scored) fails it.
    pub min_acc1_either: Option<f64>,
    /// Lowest acceptable MIREX weighted key score (`key.weighted` of summary.json). A
    /// summary without key scores fails it: the dataset had no key truth.
    pub min_key_weighted: Option<f64>,
    /// Lowest acceptable exact key accuracy (`key.accuracy`), failing the same way.
    pub min_key_accuracy: Option<f64>,
    /// Lowest acceptable parallel efficiency of the min(cores, 2)-worker entry of
    /// compare.json.
    pub min_efficiency: Option<f64>,
    /// Whether every worker count of compare.json must give results byte-identical to one
    /// worker.
    pub require_identical: Option<bool>,
    /// Most cores other processes may have used on average during any worker count's runs
    /// (`other_cores` of compare.json); a report that did not measure it fails.
    pub max_interference: Option<f64>,
    /// Largest allowed (slowest - fastest) / median of any worker count's repeats.
    pub max_repeat_spread: Option<f64>,
}

/// The parts of summary.json the gate reads, and the counts they are checked against.
/// Counts are read as numbers, not `usize`, so that `-1` or `2.5` is refused naming the
/// field rather than as a bare parse error; a count left out is not checked.
#[derive(Debug, Deserialize)]
struct SummaryView {
    #[serde(default)]
    n: Option<f64>,
    #[serde(default)]
    ok: Option<f64>,
    #[serde(default)]
    failed: Option<f64>,
    acc1: f64,
    acc2: f64,
    /// Absent from summaries written before it was scored.
    #[serde(default)]
    acc1_either: Option<f64>,
    /// Absent from runs without key truth.
    key: Option<KeyView>,
}

/// The parts of summary.json's `key` the gate reads.
#[derive(Debug, Deserialize)]
struct KeyView {
    #[serde(default)]
    n: Option<f64>,
    #[serde(default)]
    missing: Option<f64>,
    weighted: f64,
    accuracy: f64,
}

impl SummaryView {
    /// Refuses a summary no run writes: `acc1 = 5` held every `min_acc1`, and `n = 0`
    /// beside `ok = 4` passed too, where an edited or damaged report should be named.
    /// Every rule here holds by construction in `report::summarize`.
    fn refuse_impossible(&self) -> anyhow::Result<()> {
        // Each share in 0..=1 and each count a whole number of files, here and deeper in
        // the summary, is [`refuse_impossible_anywhere`]'s, which runs first.
        let key = self.key.as_ref();
        // A file right by Accuracy1 is right by Accuracy2, over the same files.
        if self.acc1 > self.acc2 {
            bail!("acc1 = {} is above acc2 = {}", self.acc1, self.acc2);
        }
        // A file right by its estimate is right by either reading.
        if let Some(either) = self.acc1_either.filter(|e| self.acc1 > *e) {
            bail!("acc1 = {} is above acc1_either = {either}", self.acc1);
        }
        if let Some(n) = self.n {
            for (field, value) in [("ok", self.ok), ("failed", self.failed)] {
                if let Some(v) = value.filter(|v| *v > n) {
                    bail!("{field} = {v} is more than n = {n}");
                }
            }
            if let (Some(ok), Some(failed)) = (self.ok, self.failed)
                && ok + failed != n
            {
                bail!("ok = {ok} and failed = {failed} do not add up to n = {n}");
            }
            // A failed file counts as wrong, and a share of no files is 0.
            let most = match self.ok {
                _ if n == 0.0 => 0.0,
                Some(ok) => ok / n,
                None => 1.0,
            };
            for (field, value) in [("acc2", Some(self.acc2)), ("acc1_either", self.acc1_either)] {
                if let Some(v) = value.filter(|v| *v > most) {
                    bail!(
                        "{field} = {v} is above the share of files analysed (ok = {}, n = {n})",
                        self.ok.map_or("?".into(), |ok| ok.to_string())
                    );
                }
            }
        }
        if let Some(k) = key
            && let Some(n) = k.n
        {
            if let Some(missing) = k.missing.filter(|m| *m > n) {
                bail!("key.missing = {missing} is more than key.n = {n}");
            }
            if n == 0.0 && (k.weighted > 0.0 || k.accuracy > 0.0) {
                bail!("key scores above 0 with key.n = 0");
            }
        }
        Ok(())
    }
}

/// Fields that are shares of files wherever a summary holds them (the overall figures,
/// each estimator's, each group's, each reliability bin's, the key's).
const SHARE_FIELDS: [&str; 5] = ["acc1", "acc2", "acc1_either", "weighted", "accuracy"];
/// Fields that are counts of files wherever a summary holds them.
const COUNT_FIELDS: [&str; 4] = ["n", "ok", "failed", "missing"];

/// Refuses a value no run writes anywhere in `value` (a summary.json): a share outside
/// 0..=1 or a count that is negative or fractional under the names above, in the
/// estimators' figures, the groups and the reliability bins too (`estimators[0].acc1 = 7`
/// passed, as only the top-level figures were read); and classes that are not counts.
fn refuse_impossible_anywhere(value: &serde_json::Value, path: &str) -> anyhow::Result<()> {
    match value {
        serde_json::Value::Object(fields) => {
            for (name, field) in fields {
                let at = format!("{path}.{name}");
                if let Some(v) = field.as_f64() {
                    if SHARE_FIELDS.contains(&name.as_str()) && !(0.0..=1.0).contains(&v) {
                        bail!("{at} = {v} is not a fraction in 0..=1");
                    }
                    let counted =
                        COUNT_FIELDS.contains(&name.as_str()) || path.ends_with(".classes");
                    if counted && (v < 0.0 || v.fract() != 0.0) {
                        bail!("{at} = {v} is not a count of files");
                    }
                }
                refuse_impossible_anywhere(field, &at)?;
            }
            // Every file scored is in one class: `classes.ok = 99` beside `n = 3` passed.
            if let (Some(classes), Some(n)) = (
                fields.get("classes").and_then(|c| c.as_object()),
                fields.get("n").and_then(serde_json::Value::as_f64),
            ) {
                let sum: f64 = classes.values().filter_map(serde_json::Value::as_f64).sum();
                if sum != n {
                    bail!("{path}.classes add up to {sum}, not n = {n}");
                }
            }
        }
        serde_json::Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                refuse_impossible_anywhere(item, &format!("{path}[{i}]"))?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The parts of compare.json the gate reads.
#[derive(Debug, Deserialize)]
struct CompareView {
    cores: usize,
    /// Files of the dataset; absent from comparisons written before it was recorded.
    #[serde(default)]
    files: Option<f64>,
    runs: Vec<RunView>,
}

impl CompareView {
    /// Refuses figures no comparison measures: an efficiency, spread or share of other
    /// cores' work that is negative or not finite, or a run of no workers. A negative
    /// spread or interference passed its ceiling, as a NaN fails every floor.
    fn refuse_impossible(&self, summary_n: Option<f64>) -> anyhow::Result<()> {
        if self.cores == 0 {
            bail!("cores = 0: no run is measured on no core");
        }
        // The comparison and the summary beside it are one run's: another report's
        // compare.json copied beside a summary passed.
        if let (Some(files), Some(n)) = (self.files, summary_n)
            && files < n
        {
            bail!("files = {files} is fewer than the summary's n = {n}: not one run's report");
        }
        for run in &self.runs {
            // Efficiency is the speedup over the cores a count can use: an edited speedup
            // or efficiency no longer agrees with the other.
            if let Some(speedup) = run.speedup {
                let usable = run.workers.min(self.cores).max(1) as f64;
                if (speedup / usable - run.efficiency).abs() > 0.01 {
                    bail!(
                        "efficiency = {} at {} workers is not speedup {speedup} over {usable} \
                         cores",
                        run.efficiency,
                        run.workers
                    );
                }
            }
            let figures = [
                ("efficiency", Some(run.efficiency)),
                ("spread", Some(run.spread)),
                ("other_cores", run.other_cores),
            ];
            for (name, value) in figures {
                if let Some(v) = value
                    && !(v.is_finite() && v >= 0.0)
                {
                    bail!(
                        "{name} = {v} at {} workers is not a measurement",
                        run.workers
                    );
                }
            }
            if run.workers == 0 {
                bail!("a run of 0 workers");
            }
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
struct RunView {
    workers: usize,
    #[serde(default)]
    speedup: Option<f64>,
    efficiency: f64,
    identical: bool,
    #[serde(default)]
    other_cores: Option<f64>,
    #[serde(default)]
    spread: f64,
}

/// One checked threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The threshold's key.
    pub key: String,
    /// What was required.
    pub required: String,
    /// What was measured.
    pub measured: String,
    /// Whether it held.
    pub pass: bool,
}

/// The most bytes `check` reads from one file. A summary, compare.json or thresholds file
/// is a few kilobytes; `--thresholds /dev/zero` grew to gigabytes before this.
const MAX_INPUT_BYTES: u64 = input::MAX_SMALL_BYTES;

/// The bytes of the file at `path` (`what` says which, in errors), read only as a regular
/// file and at most [`MAX_INPUT_BYTES`] ([`input::read_regular`]): a named pipe there,
/// without a writer, hung `check`, and a device (or a link to one) was read without end.
fn read_capped(path: &Path, what: &str) -> anyhow::Result<Vec<u8>> {
    input::read_regular(path, MAX_INPUT_BYTES, what)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = read_capped(path, "")?;
    serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))
}

/// Reads a thresholds file.
pub fn read_thresholds(path: &Path) -> anyhow::Result<Thresholds> {
    let text = String::from_utf8(read_capped(path, "thresholds ")?)
        .with_context(|| format!("cannot read thresholds {}", path.display()))?;
    let thresholds: Thresholds = toml::from_str(&text)
        .with_context(|| format!("cannot parse thresholds {}", path.display()))?;
    thresholds
        .refuse_unusable()
        .with_context(|| format!("bad thresholds {}", path.display()))?;
    Ok(thresholds)
}

impl Thresholds {
    /// Refuses a threshold no run can be gated by, naming it (exit 2): NaN or infinite
    /// (TOML spells them `nan` and `inf`, and no measure compares with NaN, so it failed
    /// the gate as if the run had fallen short), a share outside 0..=1, a negative limit,
    /// or no threshold at all.
    fn refuse_unusable(&self) -> anyhow::Result<()> {
        // Shares of files: below 0 every run passes, above 1 none does, so the gate
        // would check nothing, or always fail, in silence.
        let shares = [
            ("min_acc1", self.min_acc1),
            ("min_acc2", self.min_acc2),
            ("min_acc1_either", self.min_acc1_either),
            ("min_key_weighted", self.min_key_weighted),
            ("min_key_accuracy", self.min_key_accuracy),
        ];
        // Limits with no upper end (an efficiency above 1 is measured now and then).
        let limits = [
            ("min_efficiency", self.min_efficiency),
            ("max_interference", self.max_interference),
            ("max_repeat_spread", self.max_repeat_spread),
        ];
        for (key, value) in shares.iter().chain(&limits) {
            if let Some(v) = value.filter(|v| !v.is_finite()) {
                bail!("{key} = {v} is not a finite number (leave the key out to not check it)");
            }
        }
        for (key, value) in &shares {
            if let Some(v) = value.filter(|v| !(0.0..=1.0).contains(v)) {
                bail!("{key} = {v} is not a share in 0..=1");
            }
        }
        for (key, value) in &limits {
            if let Some(v) = value.filter(|v| *v < 0.0) {
                bail!("{key} = {v} is negative");
            }
        }
        // `require_identical = false` asks for nothing either (all 0 thresholds held).
        if shares.iter().chain(&limits).all(|(_, v)| v.is_none())
            && self.require_identical != Some(true)
        {
            bail!("it sets no threshold, so nothing would be checked");
        }
        Ok(())
    }
}

/// `v` with `decimals` decimals, or in exponent form past a billion (a threshold of
/// `1e308` filled its table column with 309 digits).
fn fixed(v: f64, decimals: usize) -> String {
    if v.abs() < 1e9 {
        format!("{v:.decimals$}")
    } else {
        analyzer_core::shown_number(v)
    }
}

/// Checks the run directory `dir` against `t`. Errors mean unreadable input.
pub fn check(dir: &Path, t: &Thresholds) -> anyhow::Result<Vec<Verdict>> {
    if !dir.is_dir() {
        let what = if dir.exists() {
            "is not a folder (give the --out-dir of evaluate or compare)"
        } else {
            "does not exist"
        };
        bail!("report directory {} {what}", dir.display());
    }
    let summary_path = dir.join("summary.json");
    if std::fs::symlink_metadata(&summary_path).is_err() && dir.join("results.csv").exists() {
        // What a stopped `evaluate` leaves: rows, no measurement of the dataset.
        bail!(
            "{} is not there, only results.csv: the run was stopped before it measured the \
             dataset (a cancelled evaluate writes no summary); run it again",
            summary_path.display()
        );
    }
    // Read once: the whole document for the rules that hold anywhere in it, the gated
    // figures from the same value.
    let whole: serde_json::Value = read_json(&summary_path)?;
    let summary = SummaryView::deserialize(&whole)
        .with_context(|| format!("cannot parse {}", summary_path.display()))?;
    refuse_impossible_anywhere(&whole, "summary")
        .and_then(|()| summary.refuse_impossible())
        .with_context(|| format!("impossible summary {}", summary_path.display()))?;
    let mut out = Vec::new();
    // `None` measured: the summary has no such figure (named by `absent`), which fails any
    // threshold on it.
    let mut min = |key: &str, required: Option<f64>, measured: Option<f64>, absent: &str| {
        if let Some(r) = required {
            out.push(Verdict {
                key: key.into(),
                required: format!(">= {}", fixed(r, 4)),
                measured: measured.map_or(absent.into(), |m| format!("{m:.4}")),
                pass: measured.is_some_and(|m| m >= r),
            });
        }
    };
    min("min_acc1", t.min_acc1, Some(summary.acc1), "");
    min("min_acc2", t.min_acc2, Some(summary.acc2), "");
    min(
        "min_acc1_either",
        t.min_acc1_either,
        summary.acc1_either,
        "no acc1_either (a summary written before it was scored)",
    );
    let key = summary.key.as_ref();
    let no_key = "no key scores (no key truth in the dataset)";
    min(
        "min_key_weighted",
        t.min_key_weighted,
        key.map(|k| k.weighted),
        no_key,
    );
    min(
        "min_key_accuracy",
        t.min_key_accuracy,
        key.map(|k| k.accuracy),
        no_key,
    );
    // The thresholds read from compare.json.
    let wanting: Vec<&str> = [
        ("min_efficiency", t.min_efficiency.is_some()),
        ("require_identical", t.require_identical == Some(true)),
        ("max_interference", t.max_interference.is_some()),
        ("max_repeat_spread", t.max_repeat_spread.is_some()),
    ]
    .into_iter()
    .filter_map(|(name, set)| set.then_some(name))
    .collect();
    if wanting.is_empty() {
        return Ok(out);
    }
    let compare_path = dir.join("compare.json");
    if std::fs::symlink_metadata(&compare_path).is_err() {
        // An `evaluate` report has no comparison: say which thresholds want one, not
        // only that a file is missing.
        anyhow::bail!(
            "{} is not there: {} need{} a `compare` report (`evaluate` writes none)",
            compare_path.display(),
            wanting.join(", "),
            if wanting.len() == 1 { "s" } else { "" }
        );
    }
    let compare: CompareView = read_json(&compare_path)?;
    compare
        .refuse_impossible(summary.n)
        .with_context(|| format!("impossible comparison {}", compare_path.display()))?;
    if let Some(r) = t.min_efficiency {
        let target = compare.cores.clamp(1, 2);
        let entry = compare.runs.iter().find(|e| e.workers == target);
        out.push(Verdict {
            key: format!("min_efficiency (workers = {target})"),
            required: format!(">= {}", fixed(r, 4)),
            measured: entry.map_or("no such run".into(), |e| format!("{:.4}", e.efficiency)),
            pass: entry.is_some_and(|e| e.efficiency >= r),
        });
    }
    if t.require_identical == Some(true) {
        let differing: Vec<String> = compare
            .runs
            .iter()
            .filter(|e| !e.identical)
            .map(|e| e.workers.to_string())
            .collect();
        out.push(Verdict {
            key: "require_identical".into(),
            required: "all worker counts".into(),
            measured: if differing.is_empty() {
                format!("identical ({} worker counts)", compare.runs.len())
            } else {
                format!("differs at workers {}", differing.join(","))
            },
            pass: differing.is_empty() && !compare.runs.is_empty(),
        });
    }
    if let Some(limit) = t.max_interference {
        // The worst worker count; an unmeasured one counts as failing.
        let measured: Option<Vec<(usize, f64)>> = compare
            .runs
            .iter()
            .map(|e| e.other_cores.map(|c| (e.workers, c)))
            .collect();
        let worst = measured
            .as_deref()
            .and_then(|m| m.iter().copied().max_by(|a, b| a.1.total_cmp(&b.1)));
        out.push(Verdict {
            key: "max_interference".into(),
            required: format!("<= {} cores", fixed(limit, 2)),
            measured: match (&measured, worst) {
                (None, _) => "not measured (compare.json has no other_cores)".into(),
                (Some(_), None) => "no runs".into(),
                (Some(_), Some((w, c))) => format!("{c:.2} cores at {w} workers"),
            },
            pass: worst.is_some_and(|(_, c)| c <= limit),
        });
    }
    if let Some(limit) = t.max_repeat_spread {
        let worst = compare
            .runs
            .iter()
            .max_by(|a, b| a.spread.total_cmp(&b.spread));
        out.push(Verdict {
            key: "max_repeat_spread".into(),
            required: format!("<= {}", fixed(limit, 2)),
            measured: worst.map_or("no runs".into(), |e| {
                format!("{:.2} at {} workers", e.spread, e.workers)
            }),
            pass: worst.is_some_and(|e| e.spread <= limit),
        });
    }
    Ok(out)
}

/// Formats verdicts as an aligned text table.
pub fn table(verdicts: &[Verdict]) -> String {
    let head = ["threshold", "required", "measured", "result"];
    let rows: Vec<[String; 4]> = verdicts
        .iter()
        .map(|v| {
            [
                v.key.clone(),
                v.required.clone(),
                v.measured.clone(),
                if v.pass { "ok" } else { "FAIL" }.into(),
            ]
        })
        .collect();
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([head[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..4).map(width).collect();
    let line = |cells: [&str; 4]| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            s.push_str(&format!("{c:<w$}  ", w = widths[i]));
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head);
    for r in &rows {
        out.push_str(&line([&r[0], &r[1], &r[2], &r[3]]));
    }
    out
}

/// Runs `eval-cli check`.
pub fn run(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let thresholds = read_thresholds(&args.thresholds)?;
    let verdicts = check(&args.report, &thresholds)?;
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    // A reader that closed stdout hears nothing, and a failed gate still exits 1.
    let printed = stdout::print("cannot write the verdicts to stdout", |out| {
        write!(out, "{}", table(&verdicts))?;
        if failed == 0 {
            writeln!(out, "check: all {} thresholds hold", verdicts.len())
        } else {
            writeln!(
                out,
                "check: {failed} of {} thresholds fell short",
                verdicts.len()
            )
        }
    });
    let code = if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    };
    stdout::keep_status(printed, code)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A run directory with `summary.json` and, when given, `compare.json`.
    fn report(summary: &str, compare: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("summary.json"), summary).unwrap();
        if let Some(compare) = compare {
            fs::write(dir.path().join("compare.json"), compare).unwrap();
        }
        dir
    }

    const SUMMARY: &str = r#"{"acc1": 0.75, "acc2": 0.9}"#;

    /// A folder a cancelled `evaluate` left (rows, no summary) is refused saying so.
    #[test]
    fn a_stopped_runs_folder_is_refused_saying_so() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("results.csv"), "file\n").unwrap();
        let err = format!(
            "{:#}",
            check(dir.path(), &thresholds("min_acc1 = 0.5")).unwrap_err()
        );
        assert!(
            err.contains("the run was stopped before it measured"),
            "{err}"
        );
    }

    /// CI's thresholds against an `evaluate` report: the refusal names the thresholds that
    /// want a comparison (it read "open: unreadable: No such file or directory").
    #[test]
    fn thresholds_of_a_comparison_on_a_report_without_one_say_so() {
        let dir = report(SUMMARY, None);
        let t = thresholds("min_acc1 = 0.5\nmin_efficiency = 0.5\nrequire_identical = true");
        let err = format!("{:#}", check(dir.path(), &t).unwrap_err());
        assert!(
            err.contains(
                "compare.json is not there: min_efficiency, require_identical need a \
                 `compare` report"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_nan_or_infinite_threshold_is_refused_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        for (text, key) in [
            ("min_acc1 = nan", "min_acc1 = NaN"),
            ("max_interference = -nan", "max_interference = NaN"),
            ("min_efficiency = -inf", "min_efficiency = -inf"),
            ("max_repeat_spread = inf", "max_repeat_spread = inf"),
        ] {
            fs::write(&path, text).unwrap();
            let err = format!("{:#}", read_thresholds(&path).unwrap_err());
            assert!(err.contains("t.toml") && err.contains(key), "{text}: {err}");
            assert!(err.contains("not a finite number"), "{text}: {err}");
        }
        fs::write(&path, "min_acc1 = 0.5\nmax_interference = 0.0").unwrap();
        assert_eq!(read_thresholds(&path).unwrap().min_acc1, Some(0.5));
        // Shares outside 0..=1, negative limits, and no threshold at all.
        for (text, said) in [
            (
                "min_acc1_either = -1",
                "min_acc1_either = -1 is not a share",
            ),
            (
                "min_key_weighted = 1.5",
                "min_key_weighted = 1.5 is not a share",
            ),
            (
                "max_repeat_spread = -0.1",
                "max_repeat_spread = -0.1 is negative",
            ),
            ("", "sets no threshold"),
            ("# only a comment", "sets no threshold"),
            ("require_identical = false", "sets no threshold"),
        ] {
            fs::write(&path, text).unwrap();
            let err = format!("{:#}", read_thresholds(&path).unwrap_err());
            assert!(
                err.contains("t.toml") && err.contains(said),
                "{text}: {err}"
            );
        }
        fs::write(&path, "require_identical = true").unwrap();
        assert!(read_thresholds(&path).is_ok());
    }

    fn thresholds(text: &str) -> Thresholds {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn accuracy_holds_at_the_threshold_and_falls_below_it() {
        let dir = report(SUMMARY, None);
        let v = check(dir.path(), &thresholds("min_acc1 = 0.75\nmin_acc2 = 0.91")).unwrap();
        assert_eq!(
            v,
            [
                Verdict {
                    key: "min_acc1".into(),
                    required: ">= 0.7500".into(),
                    measured: "0.7500".into(),
                    pass: true,
                },
                Verdict {
                    key: "min_acc2".into(),
                    required: ">= 0.9100".into(),
                    measured: "0.9000".into(),
                    pass: false,
                },
            ]
        );
        // Accuracy alone does not need compare.json, and no key checks nothing.
        assert!(
            check(dir.path(), &Thresholds::default())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn key_thresholds_gate_the_key_scores_and_fail_without_them() {
        let keyed = r#"{"acc1": 0.0, "acc2": 0.0,
            "key": {"n": 4, "weighted": 0.625, "weighted_mir_eval": 0.5, "accuracy": 0.5,
                    "missing": 1, "relations": {}, "by": {}, "by_seconds": []}}"#;
        let gate = thresholds("min_key_weighted = 0.6\nmin_key_accuracy = 0.75");
        let v = check(report(keyed, None).path(), &gate).unwrap();
        let got: Vec<(&str, &str, bool)> = v
            .iter()
            .map(|v| (v.key.as_str(), v.measured.as_str(), v.pass))
            .collect();
        assert_eq!(
            got,
            [
                ("min_key_weighted", "0.6250", true),
                ("min_key_accuracy", "0.5000", false)
            ]
        );
        // A tempo-only summary has no key scores: a key threshold fails, saying why.
        let v = check(report(SUMMARY, None).path(), &gate).unwrap();
        assert!(v.iter().all(|v| !v.pass), "{v:?}");
        assert!(v[0].measured.contains("no key truth"), "{v:?}");
        // Without key thresholds a tempo-only summary passes as before.
        assert!(
            check(report(SUMMARY, None).path(), &thresholds("min_acc1 = 0.5"))
                .unwrap()
                .iter()
                .all(|v| v.pass)
        );
    }

    #[test]
    fn efficiency_is_read_at_two_workers_or_the_cores() {
        let compare = r#"{"cores": 2, "runs": [
            {"workers": 1, "efficiency": 1.0, "identical": true},
            {"workers": 2, "efficiency": 0.55, "identical": true}]}"#;
        let dir = report(SUMMARY, Some(compare));
        let v = check(dir.path(), &thresholds("min_efficiency = 0.6")).unwrap();
        assert_eq!(v[0].key, "min_efficiency (workers = 2)");
        assert_eq!((v[0].measured.as_str(), v[0].pass), ("0.5500", false));

        // One core: the 1-worker entry is the one gated.
        let one_core = compare.replace(r#""cores": 2"#, r#""cores": 1"#);
        let dir = report(SUMMARY, Some(&one_core));
        let v = check(dir.path(), &thresholds("min_efficiency = 0.6")).unwrap();
        assert_eq!(v[0].key, "min_efficiency (workers = 1)");
        assert!(v[0].pass);

        // No entry at that worker count fails, saying so.
        let dir = report(SUMMARY, Some(r#"{"cores": 8, "runs": []}"#));
        let v = check(dir.path(), &thresholds("min_efficiency = 0.6")).unwrap();
        assert_eq!((v[0].measured.as_str(), v[0].pass), ("no such run", false));
    }

    #[test]
    fn identity_fails_on_any_differing_count_and_on_no_runs() {
        let compare = r#"{"cores": 4, "runs": [
            {"workers": 1, "efficiency": 1.0, "identical": true},
            {"workers": 2, "efficiency": 0.9, "identical": false},
            {"workers": 4, "efficiency": 0.8, "identical": false}]}"#;
        let gate = thresholds("require_identical = true");
        let dir = report(SUMMARY, Some(compare));
        let v = check(dir.path(), &gate).unwrap();
        assert_eq!(
            (v[0].measured.as_str(), v[0].pass),
            ("differs at workers 2,4", false)
        );
        let dir = report(SUMMARY, Some(r#"{"cores": 4, "runs": []}"#));
        assert!(!check(dir.path(), &gate).unwrap()[0].pass);
        // `false` asks for nothing, so compare.json is not even read.
        let dir = report(SUMMARY, None);
        assert!(
            check(dir.path(), &thresholds("require_identical = false"))
                .unwrap()
                .is_empty()
        );
    }

    /// A negative spread or share of other cores' work passed its ceiling.
    #[test]
    fn an_impossible_comparison_is_refused_naming_the_figure() {
        for (run, named) in [
            (r#""efficiency": 0.9, "spread": -0.5"#, "spread = -0.5"),
            (
                r#""efficiency": 0.9, "other_cores": -1.0"#,
                "other_cores = -1",
            ),
            (r#""efficiency": -0.2"#, "efficiency = -0.2"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            fs::write(
                dir.path().join("summary.json"),
                r#"{"acc1": 0.9, "acc2": 0.95}"#,
            )
            .unwrap();
            fs::write(
                dir.path().join("compare.json"),
                format!(r#"{{"cores": 2, "runs": [{{"workers": 2, "identical": true, {run}}}]}}"#),
            )
            .unwrap();
            let t =
                thresholds("max_interference = 0.5\nmax_repeat_spread = 0.1\nmin_efficiency = 0.1");
            let err = format!("{:#}", check(dir.path(), &t).unwrap_err());
            assert!(
                err.contains("impossible comparison") && err.contains(named),
                "{err}"
            );
        }
    }

    /// Figures of a comparison that disagree with each other or with the summary beside
    /// it are refused: no cores, a speedup its efficiency does not follow from, fewer
    /// files than the summary scored (another report's compare.json copied in).
    #[test]
    fn a_comparison_at_odds_with_itself_or_its_summary_is_refused() {
        let summary = r#"{"n": 3, "ok": 3, "failed": 0, "acc1": 0.9, "acc2": 0.95}"#;
        let run = |speedup: f64, efficiency: f64| {
            format!(
                r#"{{"workers": 2, "speedup": {speedup}, "efficiency": {efficiency}, "identical": true}}"#
            )
        };
        let gate = thresholds("min_efficiency = 0.1");
        let fine = format!(r#"{{"cores": 2, "files": 3, "runs": [{}]}}"#, run(1.8, 0.9));
        assert!(check(report(summary, Some(&fine)).path(), &gate).is_ok());
        for (compare, said) in [
            (
                format!(r#"{{"cores": 0, "files": 3, "runs": [{}]}}"#, run(1.8, 0.9)),
                "cores = 0",
            ),
            (
                format!(r#"{{"cores": 2, "files": 3, "runs": [{}]}}"#, run(0.1, 0.9)),
                "is not speedup 0.1 over 2 cores",
            ),
            (
                format!(r#"{{"cores": 2, "files": 2, "runs": [{}]}}"#, run(1.8, 0.9)),
                "files = 2 is fewer than the summary's n = 3",
            ),
        ] {
            let err = format!(
                "{:#}",
                check(report(summary, Some(&compare)).path(), &gate).unwrap_err()
            );
            assert!(err.contains(said), "{said}: {err}");
        }
    }

    /// Shares and counts are held to their rules wherever the summary holds them: an
    /// estimator's, a group's, a reliability bin's; and the classes add up to `n`.
    #[test]
    fn an_impossible_figure_deep_in_a_summary_is_refused() {
        let real = r#"{"n": 2, "ok": 2, "failed": 0, "acc1": 0.5, "acc2": 1.0,
            "classes": {"ok": 1, "double": 1},
            "by": {"style": {"rock": {"n": 2, "acc1": 0.5, "acc2": 1.0}}},
            "reliability": [{"lo": 0.0, "hi": 0.5, "n": 2, "acc1": 0.5, "acc2": 1.0}],
            "estimators": [{"name": "ours", "acc1": 0.5, "acc2": 1.0}]}"#;
        let gate = thresholds("min_acc1 = 0.5");
        assert!(check(report(real, None).path(), &gate).unwrap()[0].pass);
        for (from, to, said) in [
            (
                r#""name": "ours", "acc1": 0.5"#,
                r#""name": "ours", "acc1": 7"#,
                "summary.estimators[0].acc1 = 7",
            ),
            (
                r#""rock": {"n": 2, "acc1": 0.5"#,
                r#""rock": {"n": 2, "acc1": 5"#,
                "summary.by.style.rock.acc1 = 5",
            ),
            (
                r#""hi": 0.5, "n": 2"#,
                r#""hi": 0.5, "n": -5"#,
                "summary.reliability[0].n = -5",
            ),
            (
                r#""classes": {"ok": 1"#,
                r#""classes": {"ok": 99"#,
                "classes add up to 100, not n = 2",
            ),
        ] {
            let edited = real.replace(from, to);
            assert_ne!(edited, real, "{from}");
            let err = format!(
                "{:#}",
                check(report(&edited, None).path(), &gate).unwrap_err()
            );
            assert!(err.contains(said), "{said}: {err}");
        }
    }

    #[test]
    fn interference_and_spread_gate_the_worst_count_and_fail_unmeasured() {
        let compare = r#"{"cores": 2, "runs": [
            {"workers": 1, "efficiency": 1.0, "identical": true, "other_cores": 0.05, "spread": 0.02},
            {"workers": 2, "efficiency": 0.9, "identical": true, "other_cores": 0.8, "spread": 0.3}]}"#;
        let dir = report(SUMMARY, Some(compare));
        let v = check(
            dir.path(),
            &thresholds("max_interference = 0.5\nmax_repeat_spread = 0.1"),
        )
        .unwrap();
        assert_eq!(
            (v[0].measured.as_str(), v[0].pass),
            ("0.80 cores at 2 workers", false)
        );
        assert_eq!(
            (v[1].measured.as_str(), v[1].pass),
            ("0.30 at 2 workers", false)
        );
        let v = check(
            dir.path(),
            &thresholds("max_interference = 0.8\nmax_repeat_spread = 0.3"),
        )
        .unwrap();
        assert!(v.iter().all(|v| v.pass), "{v:?}");

        // A report written before interference was measured cannot pass the gate.
        let old = r#"{"cores": 2, "runs": [{"workers": 1, "efficiency": 1.0, "identical": true}]}"#;
        let dir = report(SUMMARY, Some(old));
        let v = check(dir.path(), &thresholds("max_interference = 0.5")).unwrap();
        assert!(
            !v[0].pass && v[0].measured.starts_with("not measured"),
            "{v:?}"
        );
    }

    #[test]
    fn unreadable_input_is_an_error() {
        let dir = report(SUMMARY, None);
        let err = check(dir.path(), &thresholds("min_efficiency = 0.5")).unwrap_err();
        assert!(format!("{err:#}").contains("compare.json"), "{err:#}");
        let dir = report("{", None);
        assert!(check(dir.path(), &Thresholds::default()).is_err());
        assert!(check(&dir.path().join("nope"), &Thresholds::default()).is_err());
        assert!(toml::from_str::<Thresholds>("min_acc3 = 1.0").is_err());
    }

    /// Runs `body` while a thread waits to open the FIFO at `path` for writing, so that
    /// a reader that opens it blocking (the bug) sees end-of-file instead of hanging the
    /// test; afterwards a non-blocking reader releases the writer, whichever came first.
    #[cfg(unix)]
    fn with_a_writer<T>(path: &Path, body: impl FnOnce() -> T) -> T {
        use std::os::unix::fs::OpenOptionsExt;
        let target = path.to_path_buf();
        let writer = std::thread::spawn(move || {
            drop(fs::OpenOptions::new().write(true).open(target));
        });
        let out = body();
        let release = fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .unwrap();
        writer.join().unwrap();
        drop(release);
        out
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_or_device_is_refused_naming_it_and_never_read() {
        let dir = report(SUMMARY, None);
        let summary = dir.path().join("summary.json");
        fs::remove_file(&summary).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&summary).status();
        assert!(made.unwrap().success());
        let err = with_a_writer(&summary, || {
            format!(
                "{:#}",
                check(dir.path(), &Thresholds::default()).unwrap_err()
            )
        });
        assert!(
            err.contains("summary.json") && err.contains("not a regular file"),
            "{err}"
        );

        // A link to a device, and a device given as the thresholds file.
        fs::remove_file(&summary).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &summary).unwrap();
        let err = format!(
            "{:#}",
            check(dir.path(), &Thresholds::default()).unwrap_err()
        );
        assert!(
            err.contains("summary.json") && err.contains("device"),
            "{err}"
        );
        let err = format!("{:#}", read_thresholds(Path::new("/dev/zero")).unwrap_err());
        assert!(err.contains("/dev/zero") && err.contains("device"), "{err}");
    }

    #[test]
    fn a_file_over_the_cap_is_refused_naming_it() {
        let dir = report(SUMMARY, None);
        let path = dir.path().join("t.toml");
        // Sparse: the size alone refuses it, nothing is read.
        let file = fs::File::create(&path).unwrap();
        file.set_len(MAX_INPUT_BYTES + 1).unwrap();
        let err = format!("{:#}", read_thresholds(&path).unwrap_err());
        assert!(err.contains("t.toml") && err.contains("64 MiB"), "{err}");
        fs::rename(&path, dir.path().join("compare.json")).unwrap();
        let err = check(dir.path(), &thresholds("min_efficiency = 0.5")).unwrap_err();
        assert!(
            format!("{err:#}").contains("compare.json is larger"),
            "{err:#}"
        );
        file.set_len(MAX_INPUT_BYTES).unwrap();
        let err = check(dir.path(), &thresholds("min_efficiency = 0.5")).unwrap_err();
        assert!(format!("{err:#}").contains("cannot parse"), "{err:#}");
    }

    /// Either reading is gated like Accuracy1; a summary written before it was scored
    /// fails its threshold saying so, and passes the others.
    #[test]
    fn either_reading_is_gated_and_its_absence_named() {
        let gate = thresholds("min_acc1 = 0.5\nmin_acc1_either = 0.8");
        let both = r#"{"acc1": 0.75, "acc2": 0.9, "acc1_either": 0.85}"#;
        let v = check(report(both, None).path(), &gate).unwrap();
        assert_eq!(v[1].key, "min_acc1_either");
        assert!(v.iter().all(|v| v.pass), "{v:?}");
        let short = r#"{"acc1": 0.75, "acc2": 0.9, "acc1_either": 0.79}"#;
        let v = check(report(short, None).path(), &gate).unwrap();
        assert!(v[0].pass && !v[1].pass, "{v:?}");
        let v = check(report(SUMMARY, None).path(), &gate).unwrap();
        assert!(v[0].pass && !v[1].pass, "{v:?}");
        assert!(v[1].measured.contains("no acc1_either"), "{v:?}");
    }

    #[test]
    fn an_impossible_summary_is_refused_naming_the_field() {
        let real = r#"{"n": 4, "ok": 3, "failed": 1, "acc1": 0.5, "acc2": 0.75,
            "acc1_either": 0.5,
            "key": {"n": 2, "weighted": 0.6, "accuracy": 0.5, "missing": 1}}"#;
        let gate = thresholds("min_acc1 = 0.5");
        assert!(check(report(real, None).path(), &gate).unwrap()[0].pass);
        for (edit, field) in [
            (
                ("\"acc1\": 0.5", "\"acc1\": 5.0"),
                "acc1 = 5 is not a fraction",
            ),
            (
                ("\"acc2\": 0.75", "\"acc2\": -0.1"),
                "acc2 = -0.1 is not a fraction",
            ),
            (
                ("\"weighted\": 0.6", "\"weighted\": 1.5"),
                "key.weighted = 1.5",
            ),
            (
                ("\"acc1\": 0.5", "\"acc1\": 0.8"),
                "acc1 = 0.8 is above acc2",
            ),
            (("\"n\": 4", "\"n\": 0"), "ok = 3 is more than n = 0"),
            (("\"n\": 4", "\"n\": 5"), "do not add up to n = 5"),
            (("\"ok\": 3", "\"ok\": -3"), "ok = -3 is not a count"),
            (
                ("\"failed\": 1", "\"failed\": 0.5"),
                "failed = 0.5 is not a count",
            ),
            (
                ("\"acc2\": 0.75", "\"acc2\": 1.0"),
                "acc2 = 1 is above the share",
            ),
            (("\"missing\": 1", "\"missing\": 3"), "key.missing = 3"),
            (
                ("\"acc1_either\": 0.5", "\"acc1_either\": 0.25"),
                "acc1 = 0.5 is above acc1_either = 0.25",
            ),
            (
                ("\"acc1_either\": 0.5", "\"acc1_either\": 1.0"),
                "acc1_either = 1 is above the share",
            ),
        ] {
            let summary = real.replacen(edit.0, edit.1, 1);
            assert_ne!(summary, real, "{edit:?}");
            let err = format!(
                "{:#}",
                check(report(&summary, None).path(), &gate).unwrap_err()
            );
            assert!(
                err.contains("impossible summary") && err.contains("summary.json"),
                "{err}"
            );
            assert!(err.contains(field), "{field}: {err}");
        }
        // No files: every share is 0, and counts that are not there are not checked.
        let empty = r#"{"n": 0, "ok": 0, "failed": 0, "acc1": 0.0, "acc2": 0.0}"#;
        assert!(check(report(empty, None).path(), &gate).is_ok());
        let err = check(
            report(r#"{"n": 0, "acc1": 0.0, "acc2": 0.5}"#, None).path(),
            &gate,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("acc2 = 0.5"), "{err:#}");
    }

    #[test]
    fn table_snapshot() {
        let v = [
            Verdict {
                key: "min_acc1".into(),
                required: ">= 0.8300".into(),
                measured: "0.8750".into(),
                pass: true,
            },
            Verdict {
                key: "require_identical".into(),
                required: "all worker counts".into(),
                measured: "differs at workers 2".into(),
                pass: false,
            },
        ];
        assert_eq!(
            table(&v),
            "threshold          required           measured              result\n\
             min_acc1           >= 0.8300          0.8750                ok\n\
             require_identical  all worker counts  differs at workers 2  FAIL\n"
        );
    }
}
