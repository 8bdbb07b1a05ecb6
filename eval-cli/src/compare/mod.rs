//! `eval-cli compare`: run one dataset at several worker counts and report speedup,
//! efficiency, identity of results, latency and peak memory.
//!
//! Every measured run is a child process (this binary re-executed with the hidden
//! `--child-workers N` flag), so each run starts cold in memory terms and its peak RSS
//! (VmHWM) belongs to that worker count alone. The order of worker counts alternates
//! between repeats (1,2,4 then 4,2,1 ...) so that drift in machine load hits them all.
//! The child writes its `results.csv` and prints a [`ChildReport`] on stdout.
//!
//! Ctrl-C or SIGTERM stops the comparison: the child running is sent SIGTERM and waited
//! for (it stops as `evaluate` does), no report is written, and the exit status is 130.
//! Each run's folder is under `runs/` of the report folder, which a new comparison clears
//! of earlier runs first, so a report never sits beside runs it did not measure.
//!
//! The child processes and their folders: [`child`].

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};

use crate::estimator::{Estimate, Estimator};
use crate::evaluation::{self, Answer, DatasetArgs};
use crate::flags;
use crate::host::{LoadWindow, RunLoad};
use crate::manifest::Dataset;
use crate::metrics;
use crate::report::export;
use crate::report::folder::WARMUP_DIR;
use crate::report::model::{CompareReport, Outcome, Scaling, WorkerRun};
use crate::report::{self, EstimatorCost, Row, Summary, interference, pages, tables};
use crate::runner::{self, ProgressMode, RunOptions};
use crate::stdout;
use child::{ChildFile, ChildReport, clear_earlier_runs, run_child, schedule_name, spawn_child};

mod child;

/// The speedup range the project aims for on 8 cores.
pub const TARGET_SPEEDUP_8: (f64, f64) = (5.0, 8.0);

/// Flags of `eval-cli compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The dataset and how to analyse it.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Worker counts to measure, comma-separated, each once (1 is added when missing).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8", value_parser = flags::parse_workers)]
    pub workers: Vec<usize>,
    /// Measured runs per worker count, at least 1.
    #[arg(long, default_value_t = 3, value_parser = parse_repeat)]
    pub repeat: usize,
    /// Unmeasured warm-up runs (at the largest worker count) before measuring.
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Folder for compare.json, results.csv, summary.json, charts and report.html.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Internal: run once at this worker count as a child of `compare`, print a JSON report.
    #[arg(long, hide = true)]
    pub child_workers: Option<usize>,
}

/// The `--repeat` value parser: a whole number of at least 1 (0 repeats would measure
/// nothing; it was silently run as 1).
fn parse_repeat(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 repeats would measure nothing)".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The worker counts `compare` measures: `listed` with 1 added, ascending. A count listed
/// twice is refused (`--workers 1,1` was silently measured once), naming it.
fn worker_counts(listed: &[usize]) -> anyhow::Result<Vec<usize>> {
    let mut counts = listed.to_vec();
    counts.sort_unstable();
    if let Some(twice) = counts.windows(2).find(|w| w[0] == w[1]) {
        anyhow::bail!(
            "invalid value for --workers: {} is listed twice (each worker count is measured \
             once per repeat; use --repeat for more runs)",
            twice[0]
        );
    }
    if counts.first() != Some(&1) {
        counts.insert(0, 1);
    }
    // A count this machine would lower (memory, open files) would be measured at the lower
    // count and reported under the one named: refused instead, saying what fits.
    let limit = crate::host::open_file_limit();
    for &count in &counts {
        let (fits, _) = flags::check_workers(count, limit, 0);
        if fits < count {
            anyhow::bail!(
                "invalid value for --workers: {count} workers do not fit this machine's \
                 memory and open-file limit (ulimit -n): list at most {fits}"
            );
        }
    }
    Ok(counts)
}

/// What a run of `compare` needs, built once from its flags.
struct Plan {
    args: CompareArgs,
    ds: Dataset,
    /// Worker counts to measure, ascending, 1 among them.
    counts: Vec<usize>,
    /// Measured runs per worker count.
    repeat: usize,
    /// Available parallelism of this machine.
    cores: usize,
    /// Every `--estimator`; the first is the one measured at every worker count.
    estimators: Vec<Estimator>,
    /// How the other estimators run: in process, at 1 worker.
    opts: RunOptions,
    /// The report folder's lock, held to the end of the run.
    _lock: report::folder::ReportLock,
}

impl Plan {
    fn new(args: CompareArgs) -> anyhow::Result<Self> {
        // The worker counts and the tempo range are checked here, before any child is
        // started.
        let counts = worker_counts(&args.workers)?;
        args.data.analyzer()?;
        let ds = args.data.load()?;
        let estimators = args.data.estimators(&ds)?;
        let lock = report::folder::claim(&args.out_dir)?;
        let opts = RunOptions {
            workers: 1,
            timeout: args.data.timeout,
            schedule: args.data.schedule,
            progress: ProgressMode::Off,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        Ok(Plan {
            repeat: args.repeat,
            cores: report::available_cores(),
            args,
            ds,
            counts,
            estimators,
            opts,
            _lock: lock,
        })
    }
}

/// One measured child run: what the report needs of it, so that a comparison of many
/// runs of a large dataset holds its per-file latencies and no more.
struct Measured {
    workers: usize,
    /// Wall seconds of its batch.
    wall_s: f64,
    /// Its peak RSS, MiB.
    peak_rss_mb: Option<f64>,
    /// Seconds spent on each file, in dataset order.
    elapsed_s: Vec<f64>,
    /// What the rest of the machine did during it.
    load: RunLoad,
    /// Its `results.csv`, compared with the baseline's on disk.
    csv: PathBuf,
}

/// The measured runs of a comparison, and the whole report of its baseline: the first
/// 1-worker run, whose rows are scored.
struct Measurements {
    runs: Vec<Measured>,
    baseline: Option<(ChildReport, PathBuf)>,
}

/// Runs `eval-cli compare`.
pub fn run(args: CompareArgs) -> anyhow::Result<ExitCode> {
    if let Some(workers) = args.child_workers {
        return run_child(&args, workers);
    }
    let plan = Plan::new(args)?;
    runner::install_signal_handler(Arc::clone(&plan.opts.cancel));
    let Measurements { runs, baseline } = measure(&plan)?;
    if plan.opts.cancel.load(Ordering::SeqCst) {
        eprintln!(
            "eval-cli: cancelled: {} of {} measured runs finished, and no report was written",
            runs.len(),
            plan.repeat * plan.counts.len()
        );
        return Ok(ExitCode::from(runner::EXIT_CANCELLED));
    }
    let (w1, w1_csv) = baseline.context("no 1-worker run")?;
    if w1.files.len() != plan.ds.items.len() {
        bail!(
            "child run reported {} files, dataset has {}",
            w1.files.len(),
            plan.ds.items.len()
        );
    }
    let out_dir = &plan.args.out_dir;
    copy_file(&w1_csv, &out_dir.join("results.csv"))?;
    let accuracy = score_estimators(&plan, w1)?;
    let audio_s: f64 = accuracy.rows.iter().map(|r| r.audio_s).sum();
    let (runs, latency_series) = worker_runs(&plan, &runs, &w1_csv, audio_s)?;
    let scaling = scaling(&runs, plan.cores);
    let compare = CompareReport {
        dataset: plan.ds.label.clone(),
        cores: plan.cores,
        files: plan.ds.items.len(),
        audio_s,
        repeat: plan.repeat,
        warmup: plan.args.warmup,
        schedule: schedule_name(plan.args.data.schedule).into(),
        notes: [
            notes(plan.cores, &runs, scaling.as_ref()),
            interference::notes(plan.cores, &runs),
        ]
        .concat(),
        runs,
        scaling,
        peak_rss_method: "VmHWM of a separate child process per run; the maximum over a \
                          worker count's repeats"
            .into(),
        host: report::host(),
        command: report::command_line(),
    };
    report::write_json(&out_dir.join("compare.json"), &compare)?;
    let page = pages::compare_page(
        out_dir,
        pages::CompareRun {
            compare: &compare,
            latency_series,
            summary: &accuracy.summary,
            rows: &accuracy.rows,
            costs: &accuracy.costs,
        },
    )?;
    export::write(&out_dir.join("report.html"), &export::Html, &page)?;
    let printed = stdout::print("cannot write the summary to stdout", |out| {
        write_runs(out, &compare, out_dir)
    });
    // A signal while the other estimators ran in process: their rows say `cancelled`.
    let code = evaluation::exit_code(
        &accuracy.rows,
        plan.opts.cancel.load(Ordering::SeqCst),
        &out_dir.join("results.csv"),
    );
    stdout::keep_status(printed, code)
}

/// The warm-up runs, then `repeat` rounds of every worker count, each a child process; the
/// order of worker counts alternates between rounds (1,2,4 then 4,2,1 ...) so that drift
/// in machine load hits them all. Stops at Ctrl-C or SIGTERM (`plan.opts.cancel`) with the
/// runs measured so far.
fn measure(plan: &Plan) -> anyhow::Result<Measurements> {
    let runs_dir = plan.args.out_dir.join("runs");
    clear_earlier_runs(&runs_dir)?;
    evaluation::create_out_dir(&runs_dir)?;
    let cancel = &plan.opts.cancel;
    let max_w = *plan.counts.last().unwrap_or(&1);
    let warmup = plan.args.warmup;
    let mut measured = Measurements {
        runs: Vec::new(),
        baseline: None,
    };
    for k in 0..warmup {
        eprintln!("compare: warm-up {}/{warmup} at {max_w} workers", k + 1);
        let dir = runs_dir.join(WARMUP_DIR);
        if spawn_child(&plan.args, &plan.ds.location, max_w, &dir, cancel)?.is_none() {
            return Ok(measured);
        }
    }
    let repeat = plan.repeat;
    for r in 0..repeat {
        let mut order = plan.counts.clone();
        if r % 2 == 1 {
            order.reverse();
        }
        for &w in &order {
            eprintln!("compare: repeat {}/{repeat}, {w} workers", r + 1);
            let dir = runs_dir.join(format!("w{w}-r{r}"));
            let window = LoadWindow::open();
            let Some(report) = spawn_child(&plan.args, &plan.ds.location, w, &dir, cancel)? else {
                return Ok(measured);
            };
            let load = window.close();
            let csv = dir.join("results.csv");
            if !csv.is_file() {
                bail!("child run left no {}", csv.display());
            }
            measured.runs.push(Measured {
                workers: w,
                wall_s: report.wall_s,
                peak_rss_mb: report.peak_rss_mb,
                elapsed_s: report.files.iter().map(|f| f.elapsed_s).collect(),
                load,
                csv: csv.clone(),
            });
            if w == 1 && measured.baseline.is_none() {
                measured.baseline = Some((report, csv));
            }
        }
    }
    Ok(measured)
}

/// The accuracy side of a comparison.
struct Accuracy {
    /// The first estimator's rows, from its 1-worker run.
    rows: Vec<Row>,
    /// Its summary (with every estimator's accuracy).
    summary: Summary,
    /// Every estimator's cost, when there are several.
    costs: Vec<EstimatorCost>,
}

/// Scores the 1-worker run of the first estimator and runs any others once each, in
/// process at 1 worker, to be put side by side with it; writes `summary.json` (and, with
/// several estimators, theirs).
fn score_estimators(plan: &Plan, w1: ChildReport) -> anyhow::Result<Accuracy> {
    let (ds, estimators, out_dir) = (&plan.ds, &plan.estimators, &plan.args.out_dir);
    // Lengths of audio, decoded once here when an estimator does not report them.
    let audio = evaluation::audio_if_needed(ds, estimators, &plan.opts);
    let (wall_s, cancelled) = (w1.wall_s, w1.cancelled);
    let mut rows = rows_of(ds, w1.files);
    if let (Some(audio), Some(first)) = (&audio, estimators.first())
        && !first.reports_audio()
    {
        for (row, &seconds) in rows.iter_mut().zip(audio) {
            row.audio_s = seconds;
        }
    }
    let (summary, costs) = if estimators.len() > 1 {
        let mut outcomes = vec![Outcome {
            rows: rows.clone(),
            wall_s,
            workers: 1,
            cancelled,
        }];
        outcomes.extend(evaluation::run_estimators(
            ds,
            &estimators[1..],
            audio.as_deref(),
            &plan.opts,
            None,
        )?);
        evaluation::write_estimators(out_dir, ds, estimators, &outcomes)?
    } else {
        let name = estimators.first().map_or("ours", |e| e.name());
        (
            evaluation::write_accuracy(out_dir, ds, &rows, name)?,
            Vec::new(),
        )
    };
    Ok(Accuracy {
        rows,
        summary,
        costs,
    })
}

/// One entry per worker count, ascending, and each count's per-file latencies (ms) for
/// the latency chart.
fn worker_runs(
    plan: &Plan,
    measured: &[Measured],
    w1_csv: &Path,
    audio_s: f64,
) -> anyhow::Result<(Vec<WorkerRun>, pages::LatencySeries)> {
    let workers: Vec<u32> = measured.iter().map(|m| m.workers as u32).collect();
    let wall_s: Vec<f64> = measured.iter().map(|m| m.wall_s).collect();
    let medians = tables::median_wall_by_workers(&workers, &wall_s)?;
    let base = medians.iter().find(|m| m.0 == 1).map_or(0.0, |m| m.2);
    let files = plan.ds.items.len();
    let mut runs = Vec::new();
    let mut latency_series = Vec::new();
    for &(w, _, median) in &medians {
        let w = w as usize;
        let mine: Vec<&Measured> = measured.iter().filter(|m| m.workers == w).collect();
        let elapsed: Vec<f64> = mine
            .iter()
            .flat_map(|m| m.elapsed_s.iter().copied())
            .collect();
        latency_series.push((
            format!("{w} worker{}", if w == 1 { "" } else { "s" }),
            elapsed.iter().map(|s| s * 1000.0).collect(),
        ));
        let speedup = report::ratio(base, median);
        let wall_s: Vec<f64> = mine.iter().map(|m| m.wall_s).collect();
        let loads: Vec<RunLoad> = mine.iter().map(|m| m.load).collect();
        let (other_cores, steal_cores) = interference::average_cores(&loads);
        let mut identical = true;
        for m in &mine {
            identical = identical && same_bytes(&m.csv, w1_csv)?;
        }
        runs.push(WorkerRun {
            workers: w,
            spread: interference::spread(&wall_s, median),
            wall_s,
            wall_s_median: median,
            speedup,
            efficiency: speedup / w.min(plan.cores).max(1) as f64,
            identical,
            peak_rss_mb: mine
                .iter()
                .filter_map(|m| m.peak_rss_mb)
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.max(b)))),
            files_per_s: report::ratio(files as f64, median),
            realtime_factor: report::ratio(audio_s, median),
            latency_ms: metrics::latency_ms(&elapsed),
            other_cores,
            steal_cores,
            // `mine` is in the order run.
            load_before: loads.first().and_then(|l| l.load_before),
            load_after: loads.last().and_then(|l| l.load_after),
        });
    }
    Ok((runs, latency_series))
}

/// The Karp-Flatt fit at the largest measured `1 < p <= cores`, and its 8-core projection.
fn scaling(runs: &[WorkerRun], cores: usize) -> Option<Scaling> {
    runs.iter()
        .filter(|r| r.workers > 1 && r.workers <= cores)
        .max_by_key(|r| r.workers)
        .and_then(|r| {
            let e = metrics::karp_flatt(r.speedup, r.workers)?;
            let s8 = metrics::amdahl_speedup(e, 8);
            Some(Scaling {
                p: r.workers,
                speedup: r.speedup,
                serial_fraction: e,
                projected_speedup_8: s8,
                target_8: [TARGET_SPEEDUP_8.0, TARGET_SPEEDUP_8.1],
                meets_target: s8 >= TARGET_SPEEDUP_8.0,
            })
        })
}

/// The lines `compare` prints on stdout.
fn write_runs(out: &mut dyn Write, compare: &CompareReport, out_dir: &Path) -> io::Result<()> {
    for r in &compare.runs {
        writeln!(
            out,
            "workers {:>2}: median {:.3} s, speedup {:.2}, efficiency {:.2}, identical {}, peak RSS {}, other processes {}, spread {:.0} %",
            r.workers,
            r.wall_s_median,
            r.speedup,
            r.efficiency,
            r.identical,
            r.peak_rss_mb.map_or("?".into(), |m| format!("{m:.0} MiB")),
            r.other_cores
                .map_or("?".into(), |c| format!("{c:.2} cores")),
            r.spread * 100.0,
        )?;
    }
    for note in &compare.notes {
        writeln!(out, "note: {note}")?;
    }
    writeln!(out, "report: {}", out_dir.join("report.html").display())
}

/// The notes of a comparison: core-count caveats and the verdict against the target.
pub fn notes(cores: usize, runs: &[WorkerRun], scaling: Option<&Scaling>) -> Vec<String> {
    let mut notes = Vec::new();
    let over: Vec<String> = runs
        .iter()
        .filter(|r| r.workers > cores)
        .map(|r| r.workers.to_string())
        .collect();
    if !over.is_empty() {
        notes.push(format!(
            "This machine has {cores} core{}: {} workers cannot beat {cores} core{}. Their \
             speedup is bounded by {cores}x (anything above is measurement noise), and their \
             efficiency is measured against {cores} core{}, not against the worker count.",
            if cores == 1 { "" } else { "s" },
            over.join(" and "),
            if cores == 1 { "" } else { "s" },
            if cores == 1 { "" } else { "s" },
        ));
    }
    match scaling {
        Some(s) => notes.push(format!(
            "Karp-Flatt serial fraction at {} workers: e = {:.4} (speedup {:.2}). Amdahl \
             projects {:.2}x on 8 cores, {} the {:.0}-{:.0}x target{}.",
            s.p,
            s.serial_fraction,
            s.speedup,
            s.projected_speedup_8,
            if s.meets_target { "within" } else { "short of" },
            s.target_8[0],
            s.target_8[1],
            if cores < 8 {
                format!(" (a projection from {cores} cores, not a measurement on 8)")
            } else {
                String::new()
            },
        )),
        None => match runs
            .iter()
            .filter(|r| r.workers > 1 && r.workers <= cores)
            .max_by_key(|r| r.workers)
        {
            Some(r) if r.speedup < 1.0 => notes.push(format!(
                "The speedup at {} workers ({:.2}) is under 1: the parallel runs were slower \
                 than one worker (other processes' load: see `other processes`). A slowdown \
                 has no serial fraction, so no 8-core projection is made.",
                r.workers, r.speedup
            )),
            Some(r) => notes.push(format!(
                "The speedup at {} workers ({:.2}) is above {}: measurement noise or cache \
                 effects (run more --repeat on a bigger dataset). A superlinear speedup has \
                 no serial fraction, so no 8-core projection is made.",
                r.workers, r.speedup, r.workers
            )),
            None => notes.push(
                "No worker count between 2 and the available cores was measured, so the \
                 serial fraction and the 8-core projection are not defined."
                    .into(),
            ),
        },
    }
    if runs.iter().any(|r| !r.identical) {
        notes.push("Results differ between worker counts: see `identical`.".into());
    }
    notes
}

/// Whether the files at `a` and `b` hold the same bytes, read a block at a time (a run's
/// `results.csv` against the baseline's, without either whole in memory).
fn same_bytes(a: &Path, b: &Path) -> anyhow::Result<bool> {
    let open = |path: &Path| {
        fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let (mut a_file, mut b_file) = (open(a)?, open(b)?);
    let (mut a_block, mut b_block) = (vec![0; 1 << 16], vec![0; 1 << 16]);
    loop {
        let n = fill(&mut a_file, &mut a_block)
            .with_context(|| format!("cannot read {}", a.display()))?;
        let m = fill(&mut b_file, &mut b_block)
            .with_context(|| format!("cannot read {}", b.display()))?;
        if a_block[..n] != b_block[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Reads into `block` until it is full or the file ends; the bytes read.
fn fill(file: &mut impl io::Read, block: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < block.len() {
        match file.read(&mut block[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(n)
}

/// Writes a copy of the file `from` at `to` by the output rules (as
/// [`report::write_file`]), streamed.
fn copy_file(from: &Path, to: &Path) -> anyhow::Result<()> {
    let mut source =
        fs::File::open(from).with_context(|| format!("cannot read {}", from.display()))?;
    crate::output::Destination::check_protected(to)?
        .replace(|out| io::copy(&mut source, out).map(|_| ()))?;
    Ok(())
}

/// Rows of a child report's files, joined with the dataset's truth and metadata.
fn rows_of(ds: &Dataset, files: Vec<ChildFile>) -> Vec<Row> {
    ds.items
        .iter()
        .zip(files)
        .map(|(item, f)| {
            let status = match f.status.as_str() {
                "ok" => "ok",
                "error" => "error",
                "timeout" => "timeout",
                _ => "cancelled",
            };
            // The child printed the key it parsed, so it reads back.
            let estimate = Estimate {
                bpm: f.est_bpm,
                key: f.est_key.as_deref().and_then(|k| k.parse().ok()),
                no_key: f.no_key,
                // The child's status says whether the file failed.
                no_tempo: None,
                confidence: f.confidence,
                alt_bpm: f.alt_bpm,
                audio_s: None,
                cpu_s: f.cpu_s,
                loudness_lufs: None,
            };
            let answer = Answer {
                status,
                estimate: Some(&estimate),
                error: &f.error,
                elapsed_s: f.elapsed_s,
                audio_s: f.audio_s,
            };
            evaluation::scored_row(item, &answer)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_gain_1_and_refuse_a_count_listed_twice() {
        assert_eq!(worker_counts(&[4, 2]).unwrap(), [1, 2, 4]);
        assert_eq!(worker_counts(&[2, 1]).unwrap(), [1, 2]);
        let err = worker_counts(&[1, 4, 1]).unwrap_err().to_string();
        assert!(err.contains("1 is listed twice"), "{err}");
        assert_eq!(parse_repeat("2"), Ok(2));
        assert!(parse_repeat("0").unwrap_err().contains("at least 1"));
    }

    fn run_at(workers: usize, speedup: f64) -> WorkerRun {
        WorkerRun::at(workers, speedup)
    }

    #[test]
    fn two_cores_say_plainly_that_more_workers_cannot_help() {
        let runs = [
            run_at(1, 1.0),
            run_at(2, 1.8),
            run_at(4, 1.8),
            run_at(8, 1.7),
        ];
        let notes = notes(2, &runs, None);
        assert!(
            notes[0].contains("4 and 8 workers cannot beat 2 cores"),
            "{notes:?}"
        );
    }

    /// A slowdown (speedup under 1, the parallel runs met other load) has no serial
    /// fraction: no `e = 1.1` and no projection of 0.92x, but a note saying so.
    #[test]
    fn a_slowdown_gets_no_serial_fraction_and_says_why() {
        let runs = [run_at(1, 1.0), run_at(2, 0.95)];
        assert!(scaling(&runs, 2).is_none());
        let notes = notes(2, &runs, None);
        assert!(notes.iter().any(|n| n.contains("is under 1")), "{notes:?}");
        assert!(!notes.iter().any(|n| n.contains("Karp-Flatt")), "{notes:?}");
    }
}
