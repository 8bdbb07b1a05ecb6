//! `eval-cli check`: the CI gate. Reads a run directory (`summary.json`, and `compare.json`
//! when a threshold needs it) and a thresholds TOML file; exits 0 when every threshold
//! holds, 1 with a table of what fell short, 2 when the input cannot be read.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Deserialize;

/// Flags of `eval-cli check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A run directory written by `evaluate` or `compare`.
    #[arg(long)]
    pub report: PathBuf,
    /// Thresholds file (TOML): `min_acc1`, `min_acc2`, `min_efficiency`, `require_identical`.
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
    /// Lowest acceptable parallel efficiency of the min(cores, 2)-worker entry of
    /// compare.json.
    pub min_efficiency: Option<f64>,
    /// Whether every worker count of compare.json must give results byte-identical to one
    /// worker.
    pub require_identical: Option<bool>,
}

/// The parts of summary.json the gate reads.
#[derive(Debug, Deserialize)]
struct SummaryView {
    acc1: f64,
    acc2: f64,
}

/// The parts of compare.json the gate reads.
#[derive(Debug, Deserialize)]
struct CompareView {
    cores: usize,
    runs: Vec<RunView>,
}

#[derive(Debug, Deserialize)]
struct RunView {
    workers: usize,
    efficiency: f64,
    identical: bool,
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

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<T> {
    let bytes = fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("cannot parse {}", path.display()))
}

/// Reads a thresholds file.
pub fn read_thresholds(path: &Path) -> anyhow::Result<Thresholds> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("cannot read thresholds {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("cannot parse thresholds {}", path.display()))
}

/// Checks the run directory `dir` against `t`. Errors mean unreadable input.
pub fn check(dir: &Path, t: &Thresholds) -> anyhow::Result<Vec<Verdict>> {
    if !dir.is_dir() {
        bail!("report directory {} does not exist", dir.display());
    }
    let summary: SummaryView = read_json(&dir.join("summary.json"))?;
    let mut out = Vec::new();
    let mut min = |key: &str, required: Option<f64>, measured: f64| {
        if let Some(r) = required {
            out.push(Verdict {
                key: key.into(),
                required: format!(">= {r:.4}"),
                measured: format!("{measured:.4}"),
                pass: measured >= r,
            });
        }
    };
    min("min_acc1", t.min_acc1, summary.acc1);
    min("min_acc2", t.min_acc2, summary.acc2);
    if t.min_efficiency.is_none() && t.require_identical != Some(true) {
        return Ok(out);
    }
    let compare: CompareView = read_json(&dir.join("compare.json"))?;
    if let Some(r) = t.min_efficiency {
        let target = compare.cores.clamp(1, 2);
        let entry = compare.runs.iter().find(|e| e.workers == target);
        out.push(Verdict {
            key: format!("min_efficiency (workers = {target})"),
            required: format!(">= {r:.4}"),
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
    print!("{}", table(&verdicts));
    let failed = verdicts.iter().filter(|v| !v.pass).count();
    if failed == 0 {
        println!("check: all {} thresholds hold", verdicts.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!(
            "check: {failed} of {} thresholds fell short",
            verdicts.len()
        );
        Ok(ExitCode::from(1))
    }
}
