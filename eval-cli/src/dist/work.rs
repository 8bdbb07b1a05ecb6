//! `eval-cli dist work`: checks the worker's settings against the job, opens one connection
//! per slot (and one for its heartbeat), runs the slots until the job is complete or
//! cancelled, and turns how they ended into an exit status.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use anyhow::Context;

use crate::analysis::{BatchAnalysis, FileAnalysis};
use crate::flags;
use crate::queue_worker::metrics::{self, QueueMetrics};
use crate::queue_worker::{Events, SlotLoop, run_on_threads};
use crate::runner;

use super::args::WorkArgs;
use super::broker::Broker;
use super::slot::Slot;
use super::worker::{IdleSlot, Worker};

/// Exit status after Ctrl-C or SIGTERM.
const EXIT_CANCELLED: u8 = 130;

pub(super) fn work(args: WorkArgs) -> anyhow::Result<ExitCode> {
    let mut broker = Broker::connect(&args.job)?;
    let (manifest, keys) = broker.current_run()?;
    // The job's own settings unless flags were given; either way they must be the job's
    // (the same build and FFT code path too).
    let analyzer = if args.settings.given() {
        args.settings.analyzer()?
    } else {
        manifest.analyzer.analyzer()?
    };
    manifest.check_worker(&broker.job, &analyzer)?;
    // A stream or group deleted by hand has no file to hand out: say so now, or that there
    // is nothing left to do.
    let progress = broker.progress(&keys, manifest.files)?;
    progress.ensure_queue(&broker.job, manifest.total())?;
    if let Some(gone) = progress.gone {
        eprintln!(
            "eval-cli: job {:?} is complete and its {gone} is gone: nothing to wait for",
            broker.job
        );
        return Ok(ExitCode::SUCCESS);
    }
    let slots = flags::resolve_workers(args.workers);
    let mut brokers = Vec::with_capacity(slots);
    let mut idle = Vec::with_capacity(slots);
    for _ in 0..slots {
        let mut con = broker.reconnect()?;
        idle.push(IdleSlot {
            client: AtomicU64::new(con.client_id()?),
            waiting: AtomicBool::new(false),
        });
        brokers.push((con, broker.reconnect()?));
    }
    let worker = Worker {
        analyzer,
        keys,
        files: manifest.files,
        total: manifest.total(),
        reclaim_after: args.reclaim_after,
        submitted_from: manifest.submitted_from,
        path_maps: args.path_map,
        follow: args.follow,
        events: Events {
            enabled: args.events,
        },
        read_block_ms: args.read_block_ms,
        cancel: Arc::new(AtomicBool::new(false)),
        idle,
        lost_told: AtomicBool::new(false),
    };
    refuse_a_missing_submit_folder(&broker.job, &worker)?;
    runner::install_signal_handler(Arc::clone(&worker.cancel));
    let mut analysis: Arc<dyn FileAnalysis> = Arc::new(BatchAnalysis);
    if args.test_gates {
        analysis = Arc::new(crate::gate::GatedAnalysis { inner: analysis });
    }
    let shared = SlotLoop {
        analysis,
        timeout: None,
        broker_retry: args.retry.broker_retry,
        stop: Arc::clone(&worker.cancel),
        events: worker.events,
        metrics: Arc::new(QueueMetrics::default()),
    };
    // Serves the page while the slots run; dropped (and stopped) when the worker returns.
    let _metrics_server = match args.metrics {
        Some(address) => {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .context("cannot start the async runtime of --metrics")?;
            metrics::listen(address, &shared.metrics, shared.events, runtime.handle())
                .with_context(|| format!("--metrics {address}: cannot listen"))?;
            Some(runtime)
        }
        None => None,
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".to_string());
    let slots = brokers
        .into_iter()
        .enumerate()
        .map(|(slot, (con, beat))| Slot {
            worker: &worker,
            index: slot,
            broker: con,
            beat,
            consumer: format!("{host}:{}:{slot}", std::process::id()),
            cursor: "0-0".to_string(),
        })
        .collect();
    run_on_threads(slots, |slot| {
        let mut waker = broker.reconnect();
        let result = slot.run(&shared);
        if result.is_err() {
            // One broken slot stops the others: the run is reported as failed.
            worker.cancel.store(true, Ordering::SeqCst);
        }
        // The job is complete (or cancelled): the other slots may be waiting for new
        // entries that will never come.
        worker.wake_idle_slots(&mut waker);
        result
    })?;
    if worker.cancel.load(Ordering::SeqCst) {
        eprintln!("eval-cli: cancelled; the current files were finished and stored");
        return Ok(ExitCode::from(EXIT_CANCELLED));
    }
    Ok(ExitCode::SUCCESS)
}

/// Refuses to work a job of relative paths whose submit folder (as this machine reads it,
/// through `--path-map`) is not a folder here: every file would become a permanent
/// `No such file` row that names neither the folder nor the cause (a folder deleted after
/// `submit`, a worker on a machine without it).
fn refuse_a_missing_submit_folder(job: &str, worker: &Worker) -> anyhow::Result<()> {
    let Some(folder) = &worker.submitted_from else {
        return Ok(());
    };
    let local = worker.local_path(std::path::Path::new("."));
    if local.is_dir() {
        return Ok(());
    }
    anyhow::bail!(
        "job {job:?}: its relative paths are read in the folder `submit` ran in, {}, which \
         is not a folder on this machine{}; give --path-map {}=LOCAL where it is mounted \
         here, or submit absolute paths",
        folder.display(),
        if local.as_path() == folder.join(".").as_path() {
            String::new()
        } else {
            format!(" (read as {})", local.display())
        },
        folder.display(),
    );
}
