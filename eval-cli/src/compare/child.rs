//! The child side of `compare`: each measured run is this binary re-executed with the
//! hidden `--child-workers N` flag, which evaluates the dataset once and prints a
//! [`ChildReport`] on stdout; and the parent's handling of those processes and of their
//! folders under `runs/`. A child is stopped with SIGTERM when the comparison is
//! cancelled, and a new comparison clears the runs an earlier one left.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use super::CompareArgs;
use crate::evaluation;
use crate::flags;
use crate::report::folder::is_run_dir;
use crate::report::model::Outcome;
use crate::runner::{self, ProgressMode, RunOptions, Schedule};
use crate::stdout;

/// What a child run prints on stdout.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildReport {
    /// Worker threads used.
    pub workers: usize,
    /// Wall seconds of the batch.
    pub wall_s: f64,
    /// Peak RSS of the child process, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Whether it was cancelled.
    pub cancelled: bool,
    /// Per file, in dataset order.
    pub files: Vec<ChildFile>,
}

/// One file of a child run.
#[derive(Debug, Serialize, Deserialize)]
pub struct ChildFile {
    /// Estimated tempo.
    pub est_bpm: Option<f64>,
    /// Estimated key (`A minor`), when the estimator gave one.
    #[serde(default)]
    pub est_key: Option<String>,
    /// Why there is no key, when the estimator said.
    #[serde(default)]
    pub no_key: Option<String>,
    /// Confidence.
    pub confidence: Option<f64>,
    /// The second reading, when the estimator gave one.
    #[serde(default)]
    pub alt_bpm: Option<f64>,
    /// Runner status.
    pub status: String,
    /// Why it failed.
    pub error: String,
    /// Seconds spent.
    pub elapsed_s: f64,
    /// Audio seconds decoded.
    pub audio_s: f64,
    /// CPU seconds spent, when measured.
    #[serde(default)]
    pub cpu_s: Option<f64>,
}

pub(super) fn schedule_name(s: Schedule) -> &'static str {
    match s {
        Schedule::CostliestFirst => "longest",
        Schedule::InputOrder => "input",
    }
}

/// The child side: one run at `workers`, results.csv into `--out-dir`, JSON on stdout.
pub(super) fn run_child(args: &CompareArgs, workers: usize) -> anyhow::Result<ExitCode> {
    let ds = args.data.load()?;
    let estimators = args.data.estimators(&ds)?;
    let estimator = estimators.first().context("no estimator")?;
    evaluation::create_out_dir(&args.out_dir)?;
    let cancel = Arc::new(AtomicBool::new(false));
    runner::install_signal_handler(cancel.clone());
    let opts = RunOptions {
        // The parent resolved the counts; this prints the same warning in the child's log.
        workers: flags::resolve_workers(Some(workers)),
        timeout: args.data.timeout,
        schedule: args.data.schedule,
        progress: ProgressMode::Off,
        cancel,
    };
    // An estimator that does not report its audio leaves `audio_s` at 0 here; the parent
    // measures the lengths once, rather than every run decoding the whole dataset again.
    let results = args.out_dir.join("results.csv");
    let outcome: Outcome =
        evaluation::evaluate_dataset(&ds, estimator, None, &opts, Some(&results))?;
    let cancelled = outcome.cancelled;
    // The rows are moved into the report, which goes to stdout as it is serialized: no
    // copy of them, and no copy of the JSON.
    let child = ChildReport {
        workers: outcome.workers,
        wall_s: outcome.wall_s,
        peak_rss_mb: runner::peak_rss_mb(),
        cancelled,
        files: outcome
            .rows
            .into_iter()
            .map(|r| ChildFile {
                est_bpm: r.est_bpm,
                est_key: r.est_key.map(|k| k.to_string()),
                no_key: r.no_key,
                confidence: r.confidence,
                alt_bpm: r.alt_bpm,
                status: r.status.into(),
                error: r.error,
                elapsed_s: r.elapsed_s,
                audio_s: r.audio_s,
                cpu_s: r.cpu_s,
            })
            .collect(),
    };
    let printed = stdout::print("cannot write the child report to stdout", |out| {
        let mut out = io::BufWriter::new(out);
        serde_json::to_writer(&mut out, &child)?;
        writeln!(out)?;
        out.flush()
    });
    stdout::keep_status(printed, runner::finished(cancelled))
}

/// Removes the runs an earlier comparison left under `runs_dir` (a killed one's, a longer
/// `--repeat`'s, other worker counts'), so that the folder holds this comparison's runs
/// only. Only folders named as runs are removed ([`is_run_dir`]), and only in a real
/// folder (not a link to one); the report folder itself was claimed first
/// ([`report::folder::claim`]), so it is new, empty or an earlier report.
pub(super) fn clear_earlier_runs(runs_dir: &Path) -> anyhow::Result<()> {
    let is_folder = fs::symlink_metadata(runs_dir).is_ok_and(|m| m.file_type().is_dir());
    if !is_folder {
        return Ok(());
    }
    let cannot = || format!("cannot clear the earlier runs in {}", runs_dir.display());
    for entry in fs::read_dir(runs_dir).with_context(cannot)? {
        let entry = entry.with_context(cannot)?;
        let ours = entry.file_name().to_str().is_some_and(is_run_dir);
        if ours && entry.file_type().with_context(cannot)?.is_dir() {
            fs::remove_dir_all(entry.path())
                .with_context(|| format!("cannot remove {}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Runs one child: this binary, `compare --child-workers W`, on the same dataset. `None`
/// when `cancel` was set before it ended: the child was then stopped.
pub(super) fn spawn_child(
    args: &CompareArgs,
    dataset: &Path,
    workers: usize,
    dir: &Path,
    cancel: &AtomicBool,
) -> anyhow::Result<Option<ChildReport>> {
    if cancel.load(Ordering::SeqCst) {
        return Ok(None);
    }
    let exe = std::env::current_exe().context("cannot find this program to re-run it")?;
    let d = &args.data;
    let mut cmd = Command::new(exe);
    cmd.arg("compare")
        .arg("--dataset")
        .arg(dataset)
        .arg("--child-workers")
        .arg(workers.to_string())
        .arg("--out-dir")
        .arg(dir)
        .arg("--min-bpm")
        .arg(d.analyzer.min_bpm.to_string())
        .arg("--max-bpm")
        .arg(d.analyzer.max_bpm.to_string())
        .arg("--schedule")
        .arg(schedule_name(d.schedule))
        .args(d.analyzer.sampling.to_args());
    if let Some(t) = d.timeout {
        cmd.arg("--timeout").arg(t.as_secs_f64().to_string());
    }
    if let Some(first) = d.estimators.first() {
        cmd.arg("--estimator").arg(first.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().context("cannot start a child run")?;
    let stdout = child.stdout.take();
    let report = std::thread::spawn(move || read_report(stdout));
    let stderr = drain(child.stderr.take());
    let status = wait_or_stop(&mut child, cancel).context("cannot wait for a child run")?;
    let report = report
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("reader panicked")));
    let stderr = stderr.join().unwrap_or_default();
    // A child that exits 130 was stopped by a signal of its own (Ctrl-C reaches the whole
    // process group, maybe before this process's handler has run): its run measured
    // nothing, and the comparison stops as if this process had been signalled.
    if status.code() == Some(i32::from(runner::EXIT_CANCELLED)) {
        cancel.store(true, Ordering::SeqCst);
    }
    if cancel.load(Ordering::SeqCst) {
        return Ok(None);
    }
    if !status.success() {
        bail!(
            "child run at {workers} workers failed ({status}): {}",
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    report
        .map(Some)
        .context("child run printed no valid report")
}

/// Reads a child's report from its stdout as it comes, on a thread of its own (a large
/// dataset's report is never held as text beside the parsed one); whatever is left after
/// it, or after text that is no report, is read to the end, so the child never blocks on
/// a full pipe.
fn read_report(pipe: Option<impl Read>) -> io::Result<ChildReport> {
    let Some(pipe) = pipe else {
        return Err(io::Error::other("no stdout"));
    };
    let mut reader = io::BufReader::new(pipe);
    let report = serde_json::from_reader(&mut reader);
    // A read error keeps what was read so far.
    let _ = io::copy(&mut reader, &mut io::sink());
    Ok(report?)
}

/// Reads a child's pipe to its end on a thread of its own, so that neither pipe fills up
/// while the other is read.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error keeps what was read so far.
            let _ = pipe.read_to_end(&mut bytes);
        }
        bytes
    })
}

/// Waits for `child` to exit. Once `cancel` is set (Ctrl-C or SIGTERM reached this
/// process, maybe not the child), the child is sent SIGTERM, once, and still waited for:
/// it stops as `evaluate` does, and no child outlives the comparison.
fn wait_or_stop(child: &mut Child, cancel: &AtomicBool) -> io::Result<ExitStatus> {
    let mut poll = Duration::from_millis(1);
    let mut stopped = false;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if !stopped && cancel.load(Ordering::SeqCst) {
            stopped = true;
            terminate(child);
        }
        std::thread::sleep(poll);
        poll = (poll * 2).min(Duration::from_millis(20));
    }
}

/// Asks a child that has not been reaped to stop: SIGTERM (SIGKILL would leave its
/// temporaries), a kill where SIGTERM cannot be sent.
fn terminate(child: &mut Child) {
    if !runner::send_signal(&child.id().to_string(), "TERM") {
        let _ = child.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_are_known_by_name() {
        for ours in ["warmup", "w1-r0", "w16-r999"] {
            assert!(is_run_dir(ours), "{ours}");
        }
        for theirs in ["w-r0", "w1-r", "w1r0", "x1-r0", "w1-r0x", "notes", "w 1-r0"] {
            assert!(!is_run_dir(theirs), "{theirs}");
        }
    }

    /// A killed `--repeat 1000` left dozens of `runs/wW-rR` folders, and the next
    /// comparison's report folder held them all beside its own two.
    #[test]
    fn earlier_runs_are_cleared_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        for run in ["warmup", "w1-r0", "w2-r37"] {
            fs::create_dir_all(runs.join(run)).unwrap();
            fs::write(runs.join(run).join("results.csv"), "rows").unwrap();
        }
        fs::create_dir(runs.join("mine")).unwrap();
        fs::write(runs.join("w3-r0"), "a file, not a run's folder").unwrap();
        clear_earlier_runs(&runs).unwrap();
        let mut left: Vec<String> = fs::read_dir(&runs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["mine", "w3-r0"]);
        // No runs folder yet, or a link in its place: nothing to clear, nothing followed.
        clear_earlier_runs(&dir.path().join("none")).unwrap();
        #[cfg(unix)]
        {
            let link = dir.path().join("link");
            std::os::unix::fs::symlink(&runs, &link).unwrap();
            fs::create_dir(runs.join("w1-r0")).unwrap();
            clear_earlier_runs(&link).unwrap();
            assert!(runs.join("w1-r0").is_dir());
        }
    }
}
