//! `eval-cli evaluate`: score the analyzer against a dataset with known tempi.
//!
//! The data flow is dataset → batch run ([`analyzer_core::batch`]) → one [`crate::report::Row`] per file
//! → the run directory: `results.csv` and `summary.json` (deterministic: byte-identical for
//! any worker count), `timings.json` (wall time, latency, host), charts in SVG and PNG, and
//! a self-contained `report.html` (built in [`crate::report::pages`]). The work is
//! [`crate::evaluation`], which `compare` shares.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::estimator::Estimator;
use crate::evaluation::{
    self, DatasetArgs, audio_if_needed, run_estimators, timings, write_estimators,
};
use crate::flags;
use crate::key_metrics::KeyScore;
use crate::manifest::Dataset;
use crate::report::export;
use crate::report::key_page::key_line;
use crate::report::{self, EstimatorCost, Summary, pages};
use crate::runner::{self, ProgressMode, RunOptions};
use crate::stdout;

/// Flags of `eval-cli evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// The dataset and how to analyse it.
    #[command(flatten)]
    pub data: DatasetArgs,
    /// Worker threads [default: one per core, fewer if memory is short]. 1 runs the
    /// sequential reference path.
    #[arg(long, value_name = "N", value_parser = flags::parse_workers)]
    pub workers: Option<usize>,
    /// Folder for results.csv, summary.json, timings.json, charts and report.html.
    #[arg(long)]
    pub out_dir: PathBuf,
    /// Progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    pub progress: ProgressMode,
}

/// What a run of `evaluate` needs, built once from its flags.
pub struct Plan {
    /// The dataset.
    pub ds: Dataset,
    /// Every `--estimator`, in command-line order.
    pub estimators: Vec<Estimator>,
    /// The run directory (created).
    pub out_dir: PathBuf,
    /// How the batches run.
    pub opts: RunOptions,
    /// The run directory's lock, held to the end of the run.
    _lock: report::folder::ReportLock,
}

impl Plan {
    /// Checks the flags and prepares the dataset, the estimators and the run directory.
    pub fn new(args: EvaluateArgs) -> anyhow::Result<Self> {
        let ds = args.data.load()?;
        let estimators = args.data.estimators(&ds)?;
        let lock = report::folder::claim(&args.out_dir)?;
        let opts = RunOptions {
            workers: flags::resolve_workers(args.workers),
            timeout: args.data.timeout,
            schedule: args.data.schedule,
            progress: args.progress,
            cancel: Arc::new(AtomicBool::new(false)),
        };
        Ok(Plan {
            ds,
            estimators,
            out_dir: args.out_dir,
            opts,
            _lock: lock,
        })
    }
}

/// Runs `eval-cli evaluate`.
pub fn run(args: EvaluateArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(args)?;
    let (ds, estimators) = (&plan.ds, &plan.estimators);
    runner::install_signal_handler(plan.opts.cancel.clone());
    let audio = audio_if_needed(ds, estimators, &plan.opts);
    let outcomes = run_estimators(
        ds,
        estimators,
        audio.as_deref(),
        &plan.opts,
        Some(&plan.out_dir),
    )?;
    let Some(outcome) = outcomes.first() else {
        anyhow::bail!("no estimator to run");
    };
    // A partial run is no measurement of the dataset: its summary scored the files never
    // analysed as failures, and `check` passed it. The finished rows stay.
    if let Some(k) = outcomes.iter().position(|o| o.cancelled) {
        eprintln!(
            "eval-cli: {}",
            cancelled_message(&plan.out_dir, estimators, k, &outcomes[k])
        );
        return Ok(runner::finished(true));
    }
    let (summary, costs) = write_estimators(&plan.out_dir, ds, estimators, &outcomes)?;
    let mut timings = timings(outcome);
    timings.estimators = costs.clone();
    report::write_json(&plan.out_dir.join("timings.json"), &timings)?;
    let names: Vec<&str> = estimators.iter().map(Estimator::name).collect();
    let page = pages::evaluate_page(
        &plan.out_dir,
        &pages::EvaluateRun {
            dataset: &ds.label,
            estimators: &names,
            summary: &summary,
            costs: &costs,
            outcome,
            timings: &timings,
        },
    )?;
    export::write(&plan.out_dir.join("report.html"), &export::Html, &page)?;
    let printed = stdout::print("cannot write the summary to stdout", |out| {
        write_summary(out, &ds.label, &summary, &costs, &timings, &plan.out_dir)
    });
    let code = evaluation::exit_code(
        &outcome.rows,
        outcome.cancelled,
        &plan.out_dir.join("results.csv"),
    );
    stdout::keep_status(printed, code)
}

/// What a cancelled `evaluate` says: where the rows of the estimator that was stopped
/// (the `k`-th) are, how many it finished, and which estimators never ran. The earlier
/// estimators' rows are each in their own `results.csv`, complete.
fn cancelled_message(
    out_dir: &Path,
    estimators: &[Estimator],
    k: usize,
    stopped: &report::model::Outcome,
) -> String {
    let finished = stopped
        .rows
        .iter()
        .filter(|row| row.status != "cancelled")
        .count();
    let rows = evaluation::rows_path(out_dir, k, &estimators[k]);
    let whose = if estimators.len() > 1 {
        format!(
            " during estimator {}/{} ({})",
            k + 1,
            estimators.len(),
            estimators[k].name()
        )
    } else {
        String::new()
    };
    let unrun = estimators.len() - k - 1;
    let never = match unrun {
        0 => String::new(),
        1 => "; the last estimator did not run".to_string(),
        n => format!("; the last {n} estimators did not run"),
    };
    format!(
        "evaluate was cancelled{whose}: {} holds a row per file, {finished} finished and the \
         rest `cancelled`{never}; no summary or report was written",
        rows.display()
    )
}

/// The lines `evaluate` prints on stdout: one per estimator when there are several, then
/// the headline.
fn write_summary(
    out: &mut dyn Write,
    label: &str,
    summary: &Summary,
    costs: &[EstimatorCost],
    timings: &report::Timings,
    out_dir: &Path,
) -> io::Result<()> {
    // With several estimators, one line each (ours included) to read side by side.
    // With key truth, the key scores follow the tempo ones on each line.
    let key =
        |score: Option<&KeyScore>| score.map_or(String::new(), |k| format!("; {}", key_line(k)));
    // A dataset with key truth alone has no tempo score to print ("0 files, Accuracy1
    // 0.0 %" read as a failed run).
    let tempo_truth = summary.n > 0;
    for c in costs.iter().filter(|_| costs.len() > 1) {
        let tempo = if tempo_truth {
            format!(
                "Accuracy1 {}, Accuracy2 {}, bpm or alt_bpm {}, {} failed",
                pages::pct(c.acc1),
                pages::pct(c.acc2),
                pages::pct(c.acc1_either),
                c.failed
            )
        } else {
            "no tempo truth".to_string()
        };
        writeln!(
            out,
            "{}: {tempo}, {} CPU s per audio minute{}",
            c.name,
            c.cpu_s_per_audio_min
                .map_or("unknown".into(), |x| format!("{x:.3}")),
            key(c.key.as_ref())
        )?;
    }
    let tempo = if tempo_truth {
        format!(
            "{} files, Accuracy1 {}, Accuracy2 {}, bpm or alt_bpm {}, {} failed",
            summary.n,
            pages::pct(summary.acc1),
            pages::pct(summary.acc2),
            pages::pct(summary.acc1_either),
            summary.failed
        )
    } else {
        let keyed = summary.key.as_ref().map_or(0, |k| k.score.n);
        format!("{keyed} files with key truth, no tempo truth")
    };
    writeln!(
        out,
        "{}: {tempo}{}; {:.2} s wall on {} workers; report: {}",
        label,
        key(summary.key.as_ref().map(|k| &k.score)),
        timings.wall_s,
        timings.workers,
        out_dir.join("report.html").display()
    )
}
