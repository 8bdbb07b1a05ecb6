//! Which tempo and key estimator a run scores: ours, any external program, or predictions
//! made elsewhere, so that the same harness (runner, metrics, reports) puts peers side by
//! side.
//!
//! `--estimator` takes one of
//! - `ours`: this workspace's analyzer, in process, with the command's analyzer flags (its
//!   key is `Analysis::key`: none with `--descriptors tempo`, none where the audio has no
//!   key);
//!   `ours:KEY=VALUE[,KEY=VALUE...]` changes settings of it ([`OursKey`]:
//!   `min-bpm`, `max-bpm`, `analysis-seconds` (0: the whole file), `segments`,
//!   `analysis-rate`, `frame-size`, `hop`, `compound-beat`), so that settings of our own analyzer sit side
//!   by side like other tools: `fast=ours:analysis-seconds=60`. An unknown key or a bad
//!   value is a usage error naming it;
//! - `cmd:TEMPLATE`: an external program run once per file. The template is split like a
//!   POSIX shell would (the `shlex` crate) and `{file}` is replaced in every word by the
//!   file's path (a relative path starting with `-` as `./-x.wav`, so that it is not read
//!   as an option); no shell is involved unless the template names one (`cmd:sh -c "..."`).
//!   The key is the last line of its stdout that reads as one (`C# minor`, `Dbm`, `12A`,
//!   `key: A minor`, or a key and a number, `C minor 0.83`); the tempo is the last number
//!   on the other lines. A non-zero exit, neither a number nor a key, or a run past
//!   `--timeout` (the child and its process group are killed) is a failed row with the
//!   reason;
//! - `csv:FILE`: predictions made elsewhere, a CSV with a `file` column and a `bpm` or
//!   `key` column (or both), matched to the dataset by the manifest's file name (the
//!   `file` cell exactly, spaces included, as in a manifest; other cells are trimmed) or,
//!   failing that, by the base name when it is unique. A file without a prediction is a
//!   failed row; an empty cell is no prediction of that kind; a `bpm` cell that is not a
//!   positive finite number, a `key` cell that is not a key, or a file listed twice is an
//!   error naming the predictions file and row, and so is a predictions path that cannot
//!   be read, that is not a regular file (a named pipe, a device, or a link to one: read
//!   only by [`crate::input::read_regular`]) or that holds over 1 GiB.
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

use analyzer_core::batch::{self, Job, spelled_alike};
use analyzer_core::key::Key;
use analyzer_core::{Analyzer, Error, ErrorKind, Stage, StopSignal};
use anyhow::{Context, bail};

use crate::host::thread_cpu_s;
use crate::input::{MAX_TABLE_BYTES, read_regular};
use crate::manifest::Dataset;
use command::run_command;
pub use spec::{EstimatorSpec, OursKey, OursSetting, Source, apply_settings};

/// What an estimator gives for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// Tempo, BPM; `None` from a tool that gives only a key.
    pub bpm: Option<f64>,
    /// Key; `None` from a tool that gives only a tempo, or when the audio has no key.
    pub key: Option<Key>,
    /// Why there is no key, when the estimator says (ours: the audio has none).
    pub no_key: Option<String>,
    /// Why there is no tempo although the file was analysed (ours: no pulse, too short):
    /// the file fails ([`Job::failure`]) with its key kept and scored.
    pub no_tempo: Option<Error>,
    /// The estimator's confidence, when it gives one.
    pub confidence: Option<f64>,
    /// Its second reading, BPM, when it gives one (ours: `alt_bpm`, the runner-up or the
    /// other convention's reading of compound meter; a `csv:` file's `alt_bpm` column).
    pub alt_bpm: Option<f64>,
    /// Seconds of audio, when the estimator decoded the file itself.
    pub audio_s: Option<f64>,
    /// CPU seconds (user + system) spent on this file, when known.
    pub cpu_s: Option<f64>,
    /// Integrated loudness, LUFS: ours with `loudness` among its descriptors, for audio
    /// that is not silence; only the `--progress jsonl` events show it.
    pub loudness_lufs: Option<f64>,
}

/// A ready-to-run estimator, shared read-only by the workers.
pub enum Estimator {
    /// This workspace's analyzer.
    Ours {
        /// The name reports use.
        name: String,
        /// The analyzer (boxed: its plans make it far larger than the other variants).
        analyzer: Box<Analyzer>,
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
        /// Predictions by the dataset item's path.
        predictions: BTreeMap<PathBuf, Prediction>,
    },
}

impl Estimator {
    /// Prepares `spec` for `ds`; `ours` runs `analyzer`, with the spec's settings changed.
    pub fn new(spec: &EstimatorSpec, ds: &Dataset, analyzer: &Analyzer) -> anyhow::Result<Self> {
        let name = spec.name();
        Ok(match &spec.source {
            Source::Ours(settings) if settings.is_empty() => Estimator::Ours {
                name,
                analyzer: Box::new(analyzer.clone()),
            },
            Source::Ours(settings) => {
                let config = apply_settings(analyzer.config().clone(), settings)
                    .map_err(|e| anyhow::anyhow!("estimator {spec}: {e}"))?;
                let analyzer = Analyzer::new(config).map_err(|e| {
                    anyhow::anyhow!("estimator {spec}: invalid settings: {}", e.reason())
                })?;
                Estimator::Ours {
                    name,
                    analyzer: Box::new(analyzer),
                }
            }
            Source::Cmd(template) => Estimator::Cmd {
                name,
                words: shlex::split(template).unwrap_or_default(),
            },
            Source::Csv(path) => Estimator::Csv {
                name,
                predictions: read_predictions(path, ds)?,
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
                // No key when it was not asked for (`--descriptors tempo`) or the audio has
                // none (then with the reason): a missing key estimate.
                let (key, no_key) = match a.key {
                    Some(Ok(estimate)) => (Some(estimate.key), None),
                    Some(Err(none)) => (None, Some(none.to_string())),
                    None => (None, None),
                };
                let (tempo, no_tempo) = match a.tempo {
                    Ok(tempo) => (Some(tempo), None),
                    Err(verdict) => (None, Some(verdict)),
                };
                Ok(Estimate {
                    bpm: tempo.as_ref().map(|t| t.bpm),
                    key,
                    no_key,
                    no_tempo,
                    confidence: tempo.as_ref().map(|t| t.confidence),
                    alt_bpm: tempo
                        .as_ref()
                        .and_then(|t| t.alternative.as_ref())
                        .map(|c| c.bpm),
                    audio_s: Some(a.audio.duration_s),
                    cpu_s,
                    loudness_lufs: a.loudness.as_ref().and_then(|l| l.integrated_lufs),
                })
            }
            Estimator::Cmd { words, .. } => run_command(words, path, stop),
            Estimator::Csv { predictions, .. } => match predictions.get(path) {
                Some(p) => Ok(Estimate {
                    bpm: p.bpm,
                    key: p.key,
                    no_key: None,
                    no_tempo: None,
                    confidence: None,
                    alt_bpm: p.alt_bpm,
                    audio_s: None,
                    cpu_s: None,
                    loudness_lufs: None,
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

    fn failure(&self, output: &Estimate) -> Option<Error> {
        output.no_tempo.clone()
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        Some(batch::audio_cost(path))
    }
}

/// One file's line of a `csv:` predictions file: at least one of the two is there.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prediction {
    /// Predicted tempo, BPM.
    pub bpm: Option<f64>,
    /// Predicted key.
    pub key: Option<Key>,
    /// A second tempo reading (the `alt_bpm` column), scored by Accuracy1 of either
    /// reading; only beside a `bpm`.
    pub alt_bpm: Option<f64>,
}

/// Reads `file,bpm`, `file,key` or `file,bpm,key` predictions (with an optional
/// `alt_bpm` column of second readings) and keys them by the dataset items they name.
///
/// A row names a dataset file by the manifest's name for it or its absolute path, and by
/// its base name only where no other file or row shares that base name. An empty cell is
/// no prediction of that kind; a `bpm` or `alt_bpm` cell that is not a positive finite
/// number, an `alt_bpm` without a `bpm`, a `key` cell that is not a key, a file listed
/// twice (under one name or two) or a column named twice is an error naming the
/// predictions file and the row (its line: the header is row 1).
fn read_predictions(path: &Path, ds: &Dataset) -> anyhow::Result<BTreeMap<PathBuf, Prediction>> {
    // Read whole first, so that any read error (a folder, no permission) names the file;
    // only as a regular file, so that a named pipe or a device is refused, not waited on
    // or read without end.
    let bytes = read_regular(path, MAX_TABLE_BYTES, "predictions ")?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_reader(bytes.as_slice());
    let headers = reader
        .headers()
        .with_context(|| format!("predictions {}: cannot read the header", path.display()))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.trim() == name);
    // A column named twice: which one holds the predictions must not be a guess.
    for name in ["file", "bpm", "alt_bpm", "key"] {
        if headers.iter().filter(|h| h.trim() == name).count() > 1 {
            bail!(
                "predictions {}: the header names column {name:?} twice",
                path.display()
            );
        }
    }
    let (file_col, bpm_col, key_col) = (column("file"), column("bpm"), column("key"));
    let alt_col = column("alt_bpm");
    let Some(file_col) = file_col.filter(|_| bpm_col.is_some() || key_col.is_some()) else {
        bail!(
            "predictions {} need a `file` column and a `bpm` or `key` column",
            path.display()
        );
    };
    // Each file's row and prediction, by its name compared by components (`./a.wav` is
    // `a.wav`).
    let mut by_name: BTreeMap<PathBuf, (usize, Prediction)> = BTreeMap::new();
    // Each file once: with two values, which one is scored must not be a guess. The row
    // each was first met on.
    let mut seen: BTreeMap<PathBuf, usize> = BTreeMap::new();
    for (i, record) in reader.records().enumerate() {
        let row = i + 2;
        let at = || format!("predictions {} row {row}", path.display());
        let record = record.with_context(at)?;
        let cell = |col: Option<usize>| col.and_then(|c| record.get(c)).unwrap_or("").trim();
        // The name exactly, as the manifest's (` a.wav` is not `a.wav`); other cells trimmed.
        let file = record.get(file_col).unwrap_or("").to_string();
        let same = spelled_alike(Path::new(&file));
        if let Some(first) = seen.insert(same.clone(), row) {
            bail!("{}: {file:?} is listed again (first on row {first})", at());
        }
        let bpm = predicted_bpm("bpm", cell(bpm_col)).with_context(at)?;
        let alt_bpm = predicted_bpm("alt_bpm", cell(alt_col)).with_context(at)?;
        if alt_bpm.is_some() && bpm.is_none() {
            bail!("{}: an `alt_bpm` without a `bpm`", at());
        }
        let key_text = cell(key_col);
        let key = if key_text.is_empty() {
            None
        } else {
            let key = key_text
                .parse::<Key>()
                .map_err(|e| anyhow::anyhow!("{}: `key`: {e}", at()))?;
            Some(key)
        };
        // Neither (both cells empty): no prediction, so that file becomes a failed row.
        if bpm.is_some() || key.is_some() {
            by_name.insert(same, (row, Prediction { bpm, key, alt_bpm }));
        }
    }
    // A row names an item by its manifest name, or by its absolute path; by its base name
    // alone only where no other item or row shares that base name (predictions written in
    // another folder), and never with a row another item took by name.
    let absolute = |p: &Path| std::path::absolute(p).map(|a| spelled_alike(&a)).ok();
    let mut taken: BTreeMap<&PathBuf, &str> = BTreeMap::new();
    let mut out = BTreeMap::new();
    let mut unmatched = Vec::new();
    for item in &ds.items {
        let names = [
            Some(spelled_alike(Path::new(&item.file))),
            absolute(&item.path),
        ];
        let mut found: Vec<&PathBuf> = Vec::new();
        for name in names.iter().flatten() {
            if let Some((key, _)) = by_name.get_key_value(name)
                && !found.contains(&key)
            {
                found.push(key);
            }
        }
        found.sort_by_key(|name| by_name[*name].0);
        match found[..] {
            [] => unmatched.push(item),
            [one] => {
                taken.insert(one, &item.file);
                out.insert(item.path.clone(), by_name[one].1);
            }
            [a, b, ..] => bail!(
                "predictions {}: rows {} and {} both name {:?} (as {} and {})",
                path.display(),
                by_name[a].0,
                by_name[b].0,
                item.file,
                a.display(),
                b.display()
            ),
        }
    }
    let base = |p: &Path| p.file_name().map(|n| n.to_os_string());
    let mut items_by_base: BTreeMap<std::ffi::OsString, usize> = BTreeMap::new();
    for item in &ds.items {
        if let Some(b) = base(Path::new(&item.file)) {
            *items_by_base.entry(b).or_default() += 1;
        }
    }
    let mut rows_by_base: BTreeMap<std::ffi::OsString, Vec<&PathBuf>> = BTreeMap::new();
    for name in by_name.keys().filter(|name| !taken.contains_key(name)) {
        if let Some(b) = base(name) {
            rows_by_base.entry(b).or_default().push(name);
        }
    }
    for item in unmatched {
        let Some(b) = base(Path::new(&item.file)) else {
            continue;
        };
        if items_by_base.get(&b) == Some(&1)
            && let Some([name]) = rows_by_base.get(&b).map(Vec::as_slice)
        {
            out.insert(item.path.clone(), by_name[*name].1);
        }
    }
    Ok(out)
}

/// A predictions file's `bpm` cell: empty is no tempo prediction, anything else must be a
/// positive finite number (`NaN`, `inf`, `1e400`, `0` or `-3` is an error, not a silent
/// miss).
fn predicted_bpm(column: &str, text: &str) -> anyhow::Result<Option<f64>> {
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .ok()
        .filter(|b: &f64| b.is_finite() && *b > 0.0)
        .map(Some)
        .with_context(|| format!("`{column}` is {text:?}, not a positive number"))
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;
    use crate::manifest::Item;

    fn dataset(files: &[&str]) -> Dataset {
        Dataset {
            label: "t".into(),
            location: PathBuf::from("t.csv"),
            items: files
                .iter()
                .map(|f| Item {
                    file: f.to_string(),
                    path: PathBuf::from("/data").join(f),
                    bpm: None,
                    key: Some("C major".parse().unwrap()),
                    meta: BTreeMap::new(),
                })
                .collect(),
            meta_columns: Vec::new(),
        }
    }

    #[test]
    fn csv_predictions_carry_keys_tempi_or_both() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav", "b.wav", "c.wav", "d.wav"]);
        let p = dir.path().join("p.csv");
        fs::write(
            &p,
            "file,bpm,key\na.wav,120,Dbm\nb.wav,,8A\nc.wav,97.5,\nd.wav,,\n",
        )
        .unwrap();
        let got = read_predictions(&p, &ds).unwrap();
        let cell = |f: &str| {
            got.get(&PathBuf::from("/data").join(f))
                .map(|p| (p.bpm, p.key.map(|k| k.to_string())))
        };
        assert_eq!(cell("a.wav"), Some((Some(120.0), Some("C# minor".into()))));
        assert_eq!(cell("b.wav"), Some((None, Some("A minor".into()))));
        assert_eq!(cell("c.wav"), Some((Some(97.5), None)));
        // Neither: no prediction, so a failed row.
        assert_eq!(cell("d.wav"), None);
        // A key column alone is enough.
        fs::write(&p, "file,key\nsub/a.wav,E major\n").unwrap();
        let got = read_predictions(&p, &ds).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn a_bad_key_prediction_names_the_file_and_row() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav"]);
        let p = dir.path().join("keys.csv");
        fs::write(&p, "file,key\na.wav,C major\nb.wav,C lydian\n").unwrap();
        let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
        assert!(
            err.contains("keys.csv") && err.contains("row 3") && err.contains("C lydian"),
            "{err}"
        );
        fs::write(&p, "file,tempo\na.wav,120\n").unwrap();
        let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
        assert!(err.contains("`key`") && err.contains("`bpm`"), "{err}");
    }

    /// A `bpm` cell that is there but is no tempo is an error naming the file, the row and
    /// the value: it was "no prediction for this file", scored as the tool's miss.
    #[test]
    fn a_bad_bpm_prediction_names_the_file_row_and_value() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav", "b.wav"]);
        let p = dir.path().join("p.csv");
        for bad in ["NaN", "-3", "1e400", "inf", "0", "fast"] {
            fs::write(&p, format!("file,bpm\na.wav,120\nb.wav,{bad}\n")).unwrap();
            let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
            assert!(
                err.contains("p.csv row 3") && err.contains(&format!("{bad:?}")),
                "{err}"
            );
        }
        // An empty cell stays no tempo prediction (documented): with a key, the key counts.
        fs::write(&p, "file,bpm,key\na.wav,,A minor\nb.wav, ,\n").unwrap();
        let got = read_predictions(&p, &ds).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[&PathBuf::from("/data/a.wav")].bpm, None);
    }

    /// A second reading is kept beside the first; a bad one, or one without a first, is an
    /// error naming the row.
    #[test]
    fn a_second_reading_is_kept_beside_the_bpm() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav", "b.wav"]);
        let p = dir.path().join("two.csv");
        fs::write(&p, "file,bpm,alt_bpm\na.wav,120,80\nb.wav,90,\n").unwrap();
        let got = read_predictions(&p, &ds).unwrap();
        let alt = |f: &str| got[&PathBuf::from("/data").join(f)].alt_bpm;
        assert_eq!((alt("a.wav"), alt("b.wav")), (Some(80.0), None));
        for (listing, says) in [
            (
                "file,bpm,alt_bpm\na.wav,120,80\nb.wav,90,-1\n",
                "`alt_bpm` is \"-1\"",
            ),
            (
                "file,bpm,alt_bpm,key\na.wav,,80,C major\n",
                "without a `bpm`",
            ),
        ] {
            fs::write(&p, listing).unwrap();
            let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
            assert!(err.contains("two.csv row") && err.contains(says), "{err}");
        }
    }

    /// A row names one item: by its name, its absolute path, or its base name where that is
    /// unambiguous. A prediction for `elsewhere/01.wav` was scored for both `A/01.wav`
    /// and `B/01.wav`, and `A/01.wav`'s for `B/01.wav` too.
    #[test]
    fn a_base_name_names_a_file_only_where_no_other_shares_it() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["A/01.wav", "B/01.wav", "C/02.wav"]);
        let p = dir.path().join("p.csv");
        let got = |listing: &str| {
            fs::write(&p, listing).unwrap();
            let got = read_predictions(&p, &ds).unwrap();
            let mut files: Vec<String> = got
                .iter()
                .map(|(path, p)| format!("{}={}", path.display(), p.bpm.unwrap()))
                .collect();
            files.sort();
            files
        };
        assert!(got("file,bpm\nelsewhere/01.wav,120\n").is_empty());
        assert_eq!(got("file,bpm\nA/01.wav,120\n"), ["/data/A/01.wav=120"]);
        // A base name no other item has still finds its file.
        assert_eq!(got("file,bpm\nx/02.wav,90\n"), ["/data/C/02.wav=90"]);
        // An absolute path names its item; with its manifest name too, it is listed twice.
        assert_eq!(
            got("file,bpm\n/data/B/01.wav,100\n"),
            ["/data/B/01.wav=100"]
        );
        fs::write(&p, "file,bpm\n/data/A/01.wav,120\nA/01.wav,240\n").unwrap();
        let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
        assert!(err.contains("rows 2 and 3 both name \"A/01.wav\""), "{err}");
    }

    /// A column named twice: `bpm,bpm` scored the first in silence.
    #[test]
    fn a_column_named_twice_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav"]);
        let p = dir.path().join("p.csv");
        for (header, name) in [
            ("file,bpm,bpm", "bpm"),
            ("file,file,bpm", "file"),
            ("file,bpm,alt_bpm, alt_bpm", "alt_bpm"),
        ] {
            fs::write(&p, format!("{header}\na.wav,120,60,60\n")).unwrap();
            let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
            assert!(
                err.contains(&format!("names column {name:?} twice")),
                "{err}"
            );
        }
    }

    /// A file listed twice would have the last value scored, silently.
    #[test]
    fn a_file_listed_twice_is_an_error_naming_both_rows() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav", "b.wav"]);
        let p = dir.path().join("p3.csv");
        for listing in [
            "file,bpm\na.wav,120\nb.wav,120\na.wav,60\n",
            "file,bpm\na.wav,120\nb.wav,120\n./a.wav,60\n",
            "file,bpm,key\na.wav,120,\nb.wav,120,\na.wav,,C major\n",
        ] {
            fs::write(&p, listing).unwrap();
            let err = format!("{:#}", read_predictions(&p, &ds).unwrap_err());
            assert!(
                err.contains("p3.csv row 4") && err.contains("a.wav") && err.contains("row 2"),
                "{err}"
            );
        }
    }

    /// A folder (or anything else that cannot be read) is named like a missing file.
    #[test]
    fn a_folder_for_predictions_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let ds = dataset(&["a.wav"]);
        let pdir = dir.path().join("pdir");
        fs::create_dir(&pdir).unwrap();
        let err = format!("{:#}", read_predictions(&pdir, &ds).unwrap_err());
        assert!(
            err.starts_with(&format!("cannot read predictions {}: ", pdir.display())),
            "{err}"
        );
    }
}
