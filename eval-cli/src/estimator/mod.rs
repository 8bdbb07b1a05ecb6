//! Which tempo estimator a run scores: ours, any external program, or predictions made
//! elsewhere, so that the same harness (runner, metrics, reports) puts peers side by side.
//!
//! `--estimator` takes one of
//! - `ours`: this workspace's analyzer, in process, with the command's analyzer flags;
//!   `ours:KEY=VALUE[,KEY=VALUE...]` changes settings of it ([`OursKey`]:
//!   `min-bpm`, `max-bpm`, `analysis-seconds` (0: the whole file), `segments`,
//!   `analysis-rate`, `frame-size`, `hop`), so that settings of our own analyzer sit side
//!   by side like other tools: `fast=ours:analysis-seconds=60`. An unknown key or a bad
//!   value is a usage error naming it;
//! - `cmd:TEMPLATE`: an external program run once per file. The template is split like a
//!   POSIX shell would (the `shlex` crate) and `{file}` is replaced in every word by the
//!   file's path; no shell is involved unless the template names one (`cmd:sh -c "..."`).
//!   The tempo is the last number the program prints on stdout; a non-zero exit, no
//!   number, or a run past `--timeout` (the child and its process group are killed) is a
//!   failed row with the reason;
//! - `csv:FILE`: predictions made elsewhere, a CSV with columns `file,bpm`, matched to the
//!   dataset by the manifest's file name (or, failing that, by the base name when it is
//!   unique). A file without a prediction is a failed row.
//!
//! Any of them may carry a label for the reports, `LABEL=SPEC` (a word of letters, digits,
//! `_`, `.` or `-`): `aubio=cmd:aubio tempo {file}` is reported as `aubio`.
//!
//! CPU time. On Linux each estimate carries the CPU seconds (user + system) it cost: for
//! `ours`, the worker thread's own times (`/proc/thread-self/stat`) before and after the
//! file; for `cmd:`, the child's times read from `/proc/PID/stat` once it has exited and
//! before it is reaped (a zombie keeps them), including the children it waited for
//! (`cutime`, `cstime`: the programs of a `sh -c "a | b"` pipeline). Both are per file,
//! so they stay right with any worker count. Resolution is one clock tick (10 ms, the
//! Linux USER_HZ of 100). Elsewhere, or when `/proc` cannot be read, CPU is unknown and
//! the report says so. `csv:` estimates have no CPU cost to report.

mod command;
mod spec;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use analyzer_core::batch::{self, Job};
use analyzer_core::{Analyzer, Error, ErrorKind, Stage, StopSignal};
use anyhow::{Context, bail};

use crate::host::thread_cpu_s;
use crate::manifest::Dataset;
use command::run_command;
pub use spec::{EstimatorSpec, OursKey, OursSetting, Source, apply_settings};

/// What an estimator gives for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Tempo, BPM.
    pub bpm: f64,
    /// The estimator's confidence, when it gives one.
    pub confidence: Option<f64>,
    /// Seconds of audio, when the estimator decoded the file itself.
    pub audio_s: Option<f64>,
    /// CPU seconds (user + system) spent on this file, when known.
    pub cpu_s: Option<f64>,
}

/// A ready-to-run estimator, shared read-only by the workers.
pub enum Estimator {
    /// This workspace's analyzer.
    Ours {
        /// The name reports use.
        name: String,
        /// The analyzer.
        analyzer: Analyzer,
    },
    /// An external program: the words of its template, `{file}` still in them.
    Cmd {
        /// The command-line name.
        name: String,
        /// The template split into words.
        words: Vec<String>,
    },
    /// Predictions by file.
    Csv {
        /// The command-line name.
        name: String,
        /// Predicted BPM by the dataset item's path.
        bpm: BTreeMap<PathBuf, f64>,
    },
}

impl Estimator {
    /// Prepares `spec` for `ds`; `ours` runs `analyzer`, with the spec's settings changed.
    pub fn new(spec: &EstimatorSpec, ds: &Dataset, analyzer: &Analyzer) -> anyhow::Result<Self> {
        let name = spec.name();
        Ok(match &spec.source {
            Source::Ours(settings) if settings.is_empty() => Estimator::Ours {
                name,
                analyzer: analyzer.clone(),
            },
            Source::Ours(settings) => {
                let config = apply_settings(analyzer.config().clone(), settings)
                    .map_err(|e| anyhow::anyhow!("estimator {spec}: {e}"))?;
                let analyzer = Analyzer::new(config).map_err(|e| {
                    anyhow::anyhow!("estimator {spec}: invalid settings: {}", e.reason())
                })?;
                Estimator::Ours { name, analyzer }
            }
            Source::Cmd(template) => Estimator::Cmd {
                name,
                words: shlex::split(template).unwrap_or_default(),
            },
            Source::Csv(path) => Estimator::Csv {
                name,
                bpm: read_predictions(path, ds)?,
            },
        })
    }

    /// The name reports use: its label, else `ours`, `cmd:TEMPLATE` or `csv:FILE`.
    pub fn name(&self) -> &str {
        match self {
            Estimator::Ours { name, .. }
            | Estimator::Cmd { name, .. }
            | Estimator::Csv { name, .. } => name,
        }
    }

    /// Whether it reports the seconds of audio it decoded (else the harness measures them).
    pub fn reports_audio(&self) -> bool {
        matches!(self, Estimator::Ours { .. })
    }

    /// How its CPU time is measured, for the report.
    pub fn cpu_method(&self) -> &'static str {
        match self {
            Estimator::Ours { .. } => {
                "worker thread user+sys time per file (/proc/thread-self/stat)"
            }
            Estimator::Cmd { .. } => {
                "child process user+sys time, including the children it waited for \
                 (/proc/PID/stat of the exited child)"
            }
            Estimator::Csv { .. } => "not measured (predictions made elsewhere)",
        }
    }

    /// Estimates the tempo of `path`, stopping when `stop` says so.
    pub fn estimate(&self, path: &Path, stop: &StopSignal) -> Result<Estimate, Error> {
        match self {
            Estimator::Ours { analyzer, .. } => {
                let before = thread_cpu_s();
                let a = analyzer.analyze_file(path, stop)?;
                let cpu_s = before.zip(thread_cpu_s()).map(|(b, a)| (a - b).max(0.0));
                Ok(Estimate {
                    bpm: a.tempo.bpm,
                    confidence: Some(a.tempo.confidence),
                    audio_s: Some(a.audio.duration_s),
                    cpu_s,
                })
            }
            Estimator::Cmd { words, .. } => run_command(words, path, stop),
            Estimator::Csv { bpm, .. } => match bpm.get(path) {
                Some(&bpm) => Ok(Estimate {
                    bpm,
                    confidence: None,
                    audio_s: None,
                    cpu_s: None,
                }),
                None => Err(Error::new(
                    ErrorKind::External,
                    Stage::Tempo,
                    "no prediction for this file in the CSV",
                )),
            },
        }
    }
}

/// An estimator is a batch job, scheduled by the files' announced length like ours (what
/// decodes long costs an external program long too).
impl Job for Estimator {
    type Output = Estimate;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Estimate, Error> {
        self.estimate(path, stop)
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        Some(batch::audio_cost(path))
    }
}

/// Reads `file,bpm` predictions and keys them by the dataset items they name.
fn read_predictions(path: &Path, ds: &Dataset) -> anyhow::Result<BTreeMap<PathBuf, f64>> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(path)
        .with_context(|| format!("cannot read predictions {}", path.display()))?;
    let headers = reader.headers()?.clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    let (Some(file_col), Some(bpm_col)) = (column("file"), column("bpm")) else {
        bail!(
            "predictions {} need the columns `file` and `bpm`",
            path.display()
        );
    };
    let mut by_name: BTreeMap<String, f64> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("{}: row {}", path.display(), i + 2))?;
        let file = record.get(file_col).unwrap_or("").trim().to_string();
        let bpm = record.get(bpm_col).unwrap_or("").trim();
        // An empty or unparsable prediction is no prediction: that file becomes a failed row.
        if let Ok(bpm) = bpm.parse::<f64>()
            && bpm.is_finite()
            && bpm > 0.0
        {
            by_name.insert(file, bpm);
        }
    }
    let base = |s: &str| {
        Path::new(s)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
    };
    let mut by_base: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for (file, bpm) in &by_name {
        if let Some(b) = base(file) {
            by_base.entry(b).or_default().push(*bpm);
        }
    }
    let mut out = BTreeMap::new();
    for item in &ds.items {
        let found = by_name.get(&item.file).copied().or_else(|| {
            base(&item.file)
                .and_then(|b| by_base.get(&b))
                .filter(|v| v.len() == 1)
                .map(|v| v[0])
        });
        if let Some(bpm) = found {
            out.insert(item.path.clone(), bpm);
        }
    }
    Ok(out)
}
