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

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use analyzer_core::batch::{self, Job};
use analyzer_core::{Analyzer, AnalyzerConfig, Error, ErrorKind, Stage, StopSignal};
use anyhow::{Context, bail};

use crate::flags;
use crate::manifest::Dataset;

/// Linux reports process times in clock ticks of 1/USER_HZ s; USER_HZ is 100 on every
/// Linux architecture in use (`getconf CLK_TCK`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Bytes of a failing program's stderr kept in its row's error.
const STDERR_KEPT: usize = 300;

/// An estimator as named on the command line: `[LABEL=]ours|cmd:TEMPLATE|csv:FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EstimatorSpec {
    /// The short name reports use (`aubio=cmd:aubio tempo {file}` is reported as `aubio`).
    pub label: Option<String>,
    /// What runs.
    pub source: Source,
}

/// Where an estimator's tempi come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// This workspace's analyzer, with these settings changed (none for plain `ours`).
    Ours(Vec<OursSetting>),
    /// An external program; the template as given (after `cmd:`).
    Cmd(String),
    /// A CSV of predictions (`file,bpm`).
    Csv(PathBuf),
}

/// A setting `ours:KEY=VALUE` may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OursKey {
    /// `min-bpm`: [`AnalyzerConfig::min_bpm`].
    MinBpm,
    /// `max-bpm`: [`AnalyzerConfig::max_bpm`].
    MaxBpm,
    /// `analysis-seconds`: seconds per segment, 0 for the whole file ([`flags::sampling`]).
    AnalysisSeconds,
    /// `segments`: how many segments ([`flags::sampling`]).
    Segments,
    /// `analysis-rate`: [`AnalyzerConfig::analysis_rate`].
    AnalysisRate,
    /// `frame-size`: [`AnalyzerConfig::frame_size`].
    FrameSize,
    /// `hop`: [`AnalyzerConfig::hop`].
    Hop,
}

impl OursKey {
    /// Every key, in the order the usage errors list them.
    pub const ALL: [OursKey; 7] = [
        OursKey::MinBpm,
        OursKey::MaxBpm,
        OursKey::AnalysisSeconds,
        OursKey::Segments,
        OursKey::AnalysisRate,
        OursKey::FrameSize,
        OursKey::Hop,
    ];

    /// The key as it is written.
    pub fn name(self) -> &'static str {
        match self {
            OursKey::MinBpm => "min-bpm",
            OursKey::MaxBpm => "max-bpm",
            OursKey::AnalysisSeconds => "analysis-seconds",
            OursKey::Segments => "segments",
            OursKey::AnalysisRate => "analysis-rate",
            OursKey::FrameSize => "frame-size",
            OursKey::Hop => "hop",
        }
    }

    /// Checks a value for this key on its own.
    fn check(self, value: &str) -> Result<(), String> {
        let positive_whole = || match value.parse::<usize>() {
            Ok(0) => Err("must be at least 1".to_string()),
            Ok(_) => Ok(()),
            Err(e) => Err(e.to_string()),
        };
        match self {
            OursKey::MinBpm | OursKey::MaxBpm => match value.parse::<f64>() {
                Ok(v) if v.is_finite() && v > 0.0 => Ok(()),
                Ok(_) => Err("must be a positive number".to_string()),
                Err(e) => Err(e.to_string()),
            },
            OursKey::AnalysisSeconds => flags::parse_analysis_seconds(value).map(drop),
            OursKey::Segments => flags::parse_segments(value).map(drop),
            OursKey::AnalysisRate => value.parse::<u32>().map(drop).map_err(|e| e.to_string()),
            OursKey::FrameSize | OursKey::Hop => positive_whole(),
        }
    }
}

/// One `KEY=VALUE` of `ours:...`, its value checked on its own; whether the settings
/// make an analyzer together (a tempo range that is not empty) is checked when the
/// estimator is made ([`Estimator::new`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OursSetting {
    /// What it sets.
    pub key: OursKey,
    /// The value as written (and checked).
    pub value: String,
}

impl OursSetting {
    fn parse(item: &str) -> Result<Self, String> {
        let keys = OursKey::ALL.map(OursKey::name).join(", ");
        let (key, value) = item
            .split_once('=')
            .ok_or_else(|| format!("ours: {item:?} is not KEY=VALUE (keys: {keys})"))?;
        let key = OursKey::ALL
            .into_iter()
            .find(|k| k.name() == key.trim())
            .ok_or_else(|| format!("ours: unknown setting {key:?} (keys: {keys})"))?;
        let value = value.trim().to_string();
        key.check(&value)
            .map_err(|e| format!("ours: {}={value:?}: {e}", key.name()))?;
        Ok(OursSetting { key, value })
    }
}

/// `config` with `settings` applied, sampling resolved by the rule of the command-line
/// flags ([`flags::sampling`]).
pub fn apply_settings(
    mut config: AnalyzerConfig,
    settings: &[OursSetting],
) -> Result<AnalyzerConfig, String> {
    let (mut seconds, mut segments) = (None, None);
    // The values were checked when they were parsed.
    let number = |s: &OursSetting| s.value.parse::<f64>().unwrap_or(f64::NAN);
    let whole = |s: &OursSetting| s.value.parse::<usize>().unwrap_or(0);
    for s in settings {
        match s.key {
            OursKey::MinBpm => config.min_bpm = number(s),
            OursKey::MaxBpm => config.max_bpm = number(s),
            OursKey::AnalysisSeconds => seconds = Some(number(s)),
            OursKey::Segments => segments = Some(whole(s)),
            OursKey::AnalysisRate => config.analysis_rate = s.value.parse().unwrap_or(0),
            OursKey::FrameSize => config.frame_size = whole(s),
            OursKey::Hop => config.hop = whole(s),
        }
    }
    config.sampling = flags::sampling(config.sampling, seconds, segments)
        .map_err(|e| format!("ours: segments: {e}"))?;
    Ok(config)
}

impl EstimatorSpec {
    /// The name reports use: the label when there is one, else the spec itself.
    pub fn name(&self) -> String {
        match &self.label {
            Some(label) => label.clone(),
            None => self.source.to_string(),
        }
    }
}

impl std::str::FromStr for EstimatorSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A label is a plain word before `=`; `cmd:` templates may hold `=` themselves.
        let (label, rest) = match s.split_once('=') {
            Some((label, rest))
                if !label.is_empty()
                    && label
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) =>
            {
                (Some(label.to_string()), rest)
            }
            _ => (None, s),
        };
        Ok(EstimatorSpec {
            label,
            source: rest.parse()?,
        })
    }
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "ours" {
            Ok(Source::Ours(Vec::new()))
        } else if let Some(settings) = s.strip_prefix("ours:") {
            let settings = settings
                .split(',')
                .map(OursSetting::parse)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Source::Ours(settings))
        } else if let Some(template) = s.strip_prefix("cmd:") {
            let words = shlex::split(template).ok_or_else(|| {
                format!("cannot split {template:?} into words (unbalanced quotes?)")
            })?;
            if words.is_empty() {
                return Err("cmd: needs a program, e.g. `cmd:aubio tempo {file}`".into());
            }
            Ok(Source::Cmd(template.to_string()))
        } else if let Some(file) = s.strip_prefix("csv:") {
            if file.is_empty() {
                return Err("csv: needs a file, e.g. `csv:predictions.csv`".into());
            }
            Ok(Source::Csv(PathBuf::from(file)))
        } else {
            Err(format!(
                "unknown estimator {s:?}: use `ours`, `ours:KEY=VALUE,...`, `cmd:TEMPLATE` or \
                 `csv:FILE`, optionally behind a label (`aubio=cmd:aubio tempo {{file}}`)"
            ))
        }
    }
}

impl std::fmt::Display for EstimatorSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(label) = &self.label {
            write!(f, "{label}=")?;
        }
        self.source.fmt(f)
    }
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Ours(settings) if settings.is_empty() => f.write_str("ours"),
            Source::Ours(settings) => {
                f.write_str("ours:")?;
                for (i, s) in settings.iter().enumerate() {
                    let comma = if i == 0 { "" } else { "," };
                    write!(f, "{comma}{}={}", s.key.name(), s.value)?;
                }
                Ok(())
            }
            Source::Cmd(t) => write!(f, "cmd:{t}"),
            Source::Csv(p) => write!(f, "csv:{}", p.display()),
        }
    }
}

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

/// Runs the command for one file and reads its tempo.
fn run_command(words: &[String], path: &Path, stop: &StopSignal) -> Result<Estimate, Error> {
    let fail = |kind, detail: String| Error::new(kind, Stage::Tempo, detail);
    let file = path.to_string_lossy();
    let argv: Vec<String> = words.iter().map(|w| w.replace("{file}", &file)).collect();
    let Some((program, args)) = argv.split_first() else {
        return Err(fail(ErrorKind::InvalidConfig, "empty command".into()));
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    #[cfg(unix)]
    {
        // Its own process group, so that a timeout can kill a whole `sh -c "a | b"`.
        use std::os::unix::process::CommandExt;
        command.process_group(0);
    }
    let mut child = command
        .spawn()
        .map_err(|e| fail(ErrorKind::External, format!("cannot run `{program}`: {e}")))?;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());

    let mut poll = Duration::from_millis(1);
    let mut cpu_s = None;
    let status = loop {
        // Only this loop reaps the child, so once /proc shows it exited (a zombie), its
        // times can be read before `wait` reaps it. Without /proc, just poll.
        let exited = match proc_times(child.id()) {
            Some(times) if times.exited => {
                cpu_s = Some(times.cpu_s);
                child.wait().map(Some)
            }
            Some(_) => Ok(None),
            None => child.try_wait(),
        };
        match exited {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(e) => {
                kill(&mut child);
                return Err(fail(ErrorKind::External, format!("cannot wait: {e}")));
            }
        }
        if let Err(e) = stop.check(Stage::Tempo) {
            kill(&mut child);
            return Err(e);
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(20));
    };
    let out = collect(stdout);
    if !status.success() {
        let err = collect(stderr);
        let err = err.trim();
        let tail = &err[err.len().saturating_sub(STDERR_KEPT)..];
        let tail = tail.trim_start_matches(|c: char| !c.is_ascii() || c.is_whitespace());
        return Err(fail(
            ErrorKind::External,
            format!(
                "`{program}` failed ({status}){}{tail}",
                if tail.is_empty() { "" } else { ": " }
            ),
        ));
    }
    match last_number(&out) {
        Some(bpm) if bpm.is_finite() && bpm > 0.0 => Ok(Estimate {
            bpm,
            confidence: None,
            audio_s: None,
            cpu_s,
        }),
        _ => Err(fail(
            ErrorKind::External,
            format!("`{program}` printed no positive number on stdout"),
        )),
    }
}

/// Reads a pipe to its end on a thread of its own, so that a chatty child never blocks.
fn drain(pipe: Option<impl Read + Send + 'static>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    if let Some(mut pipe) = pipe {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            // A read error keeps what was read so far.
            let _ = pipe.read_to_end(&mut bytes);
            let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
        });
    }
    rx
}

/// What a drained pipe held; empty when a grandchild still holds it open after a second.
fn collect(rx: mpsc::Receiver<String>) -> String {
    rx.recv_timeout(Duration::from_secs(1)).unwrap_or_default()
}

/// Kills the child's process group (and the child), then reaps it.
fn kill(child: &mut Child) {
    #[cfg(unix)]
    {
        // std has no killpg; kill(1) does it without unsafe code. Best effort: the child
        // itself is killed below in any case.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", child.id())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Times of a process from `/proc/PID/stat`.
struct ProcTimes {
    /// Whether it has exited (a zombie, not yet reaped).
    exited: bool,
    /// utime + stime + cutime + cstime, seconds.
    cpu_s: f64,
}

fn proc_times(pid: u32) -> Option<ProcTimes> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat, true)
}

/// Parses a `/proc/.../stat` line: the state, and utime + stime (+ cutime + cstime when
/// `children`). The command name, in parentheses, may itself hold spaces and parentheses.
fn parse_stat(stat: &str, children: bool) -> Option<ProcTimes> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state(0) ... utime(11) stime(12) cutime(13) cstime(14).
    let tick = |i: usize| fields.get(i)?.parse::<f64>().ok();
    let mut ticks = tick(11)? + tick(12)?;
    if children {
        ticks += tick(13)? + tick(14)?;
    }
    Some(ProcTimes {
        exited: fields.first() == Some(&"Z"),
        cpu_s: ticks / TICKS_PER_SECOND,
    })
}

/// CPU seconds of the calling thread so far, on Linux.
fn thread_cpu_s() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    parse_stat(&stat, false).map(|t| t.cpu_s)
}

/// The last number in `text` (`"tempo: 120.5 bpm"` gives 120.5).
fn last_number(text: &str) -> Option<f64> {
    text.split(|c: char| {
        !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e' || c == 'E')
    })
    .filter_map(|w| {
        let w = w.trim_matches(|c: char| !c.is_ascii_digit());
        if w.is_empty() {
            None
        } else {
            w.parse::<f64>().ok()
        }
    })
    .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for s in [
            "ours",
            "ours:analysis-seconds=60",
            "fast=ours:analysis-seconds=30,segments=3,min-bpm=60",
            "cmd:aubio tempo {file}",
            "csv:p.csv",
            "aubio=cmd:aubio tempo {file}",
            "cmd:env A=1 prog {file}",
        ] {
            assert_eq!(s.parse::<EstimatorSpec>().unwrap().to_string(), s);
        }
        let labelled: EstimatorSpec = "aubio-0.4=cmd:aubio tempo {file}".parse().unwrap();
        assert_eq!(labelled.name(), "aubio-0.4");
        assert_eq!(labelled.source, Source::Cmd("aubio tempo {file}".into()));
        let unlabelled: EstimatorSpec = "cmd:env A=1 prog {file}".parse().unwrap();
        assert_eq!(unlabelled.label, None);
        assert_eq!(unlabelled.name(), "cmd:env A=1 prog {file}");
        assert!("x=aubio".parse::<EstimatorSpec>().is_err());
        assert!("cmd:".parse::<EstimatorSpec>().is_err());
        assert!("cmd:sh -c \"unclosed".parse::<EstimatorSpec>().is_err());
        assert!("csv:".parse::<EstimatorSpec>().is_err());
        assert!("aubio".parse::<EstimatorSpec>().is_err());
    }

    #[test]
    fn ours_takes_settings_and_names_a_bad_one() {
        let spec: EstimatorSpec = "fast=ours:analysis-seconds=60".parse().unwrap();
        assert_eq!(spec.name(), "fast");
        let Source::Ours(settings) = &spec.source else {
            panic!("{spec:?}");
        };
        let config = apply_settings(AnalyzerConfig::default(), settings).unwrap();
        assert_eq!(
            config.sampling,
            Some(analyzer_core::Sampling {
                segments: 1,
                seconds: 60.0
            })
        );
        let parse = |s: &str| match s.parse::<EstimatorSpec>().unwrap().source {
            Source::Ours(settings) => apply_settings(AnalyzerConfig::default(), &settings),
            other => panic!("{other:?}"),
        };
        // A count alone changes the default's count (4 x 15 s).
        assert_eq!(
            parse("ours:segments=2")
                .unwrap()
                .sampling
                .map(|s| (s.segments, s.seconds)),
            Some((2, 15.0))
        );
        let c =
            parse("ours:segments=3,analysis-seconds=30,min-bpm=70,max-bpm=180,hop=256").unwrap();
        assert_eq!(c.sampling.map(|s| (s.segments, s.seconds)), Some((3, 30.0)));
        assert_eq!((c.min_bpm, c.max_bpm, c.hop), (70.0, 180.0, 256));
        assert_eq!(parse("ours:analysis-seconds=0").unwrap().sampling, None);
        assert!(
            parse("ours:analysis-seconds=0,segments=3")
                .unwrap_err()
                .contains("segments")
        );
        for (bad, named) in [
            ("ours:speed=9", "\"speed\""),
            ("ours:analysis-seconds=5", "analysis-seconds=\"5\""),
            ("ours:analysis-seconds=x", "analysis-seconds"),
            ("ours:segments=0", "segments=\"0\""),
            ("ours:min-bpm=-3", "min-bpm"),
            ("ours:hop=0", "hop"),
            ("ours:analysis-seconds", "KEY=VALUE"),
            ("ours:", "KEY=VALUE"),
        ] {
            let err = bad.parse::<EstimatorSpec>().unwrap_err();
            assert!(err.contains(named), "{bad}: {err}");
            if bad.contains("speed") {
                assert!(err.contains("analysis-seconds, segments"), "{err}");
            }
        }
    }

    #[test]
    fn last_number_takes_the_last() {
        assert_eq!(last_number("122.46 bpm\n"), Some(122.46));
        assert_eq!(last_number("123.032\n"), Some(123.032));
        assert_eq!(last_number("file 3.wav: tempo=97.5"), Some(97.5));
        assert_eq!(last_number("a-b e"), None);
        assert_eq!(last_number(""), None);
    }

    #[test]
    fn stat_lines_with_odd_names_parse() {
        let line = "42 (a b) c)) Z 1 42 42 0 -1 4194560 100 0 0 0 150 25 7 3 20 0 1 0";
        let t = parse_stat(line, true).unwrap();
        assert!(t.exited);
        assert!((t.cpu_s - 1.85).abs() < 1e-9);
        assert!((parse_stat(line, false).unwrap().cpu_s - 1.75).abs() < 1e-9);
        assert!(parse_stat("garbage", true).is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn commands_give_tempo_errors_and_cpu() {
        let words = |s: &str| shlex::split(s).unwrap();
        let never = StopSignal::never();
        let e = run_command(
            &words("sh -c 'echo x; echo \"$0 at 121.5\"' {file}"),
            Path::new("a b.wav"),
            &never,
        )
        .unwrap();
        assert_eq!(e.bpm, 121.5);
        assert!(e.cpu_s.is_some());
        let err = run_command(
            &words("sh -c 'echo oops >&2; exit 3'"),
            Path::new("x"),
            &never,
        )
        .unwrap_err();
        assert!(err.reason().contains("oops"), "{}", err.reason());
        assert_eq!(err.kind(), ErrorKind::External);
        let err = run_command(&words("true"), Path::new("x"), &never).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::External);
        assert!(err.reason().contains("printed no positive number"));
        let err = run_command(&words("no-such-program-here"), Path::new("x"), &never).unwrap_err();
        assert!(err.reason().contains("cannot run"));
        assert_eq!(err.kind(), ErrorKind::External);
        // A deadline that has already passed: the first check after the start kills the
        // pipeline, which would otherwise run for an hour and then print nothing (a
        // `no_pulse` error), so `timed_out` alone proves the deadline stopped it.
        let stop = StopSignal::never().with_deadline(std::time::Instant::now());
        let err =
            run_command(&words("sh -c 'sleep 3600 | cat'"), Path::new("x"), &stop).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::TimedOut);
    }
}
