//! `eval-cli dist`: one job analysed by any number of machines through a Redis Stream, with
//! the rows of a single-machine `analyze`.
//!
//! Why a broker: a catalogue that outgrows one machine is shared out dynamically, and a
//! machine that dies loses nothing. The job's manifest lives at `tempo-scale:job:NAME:manifest`
//! and everything else under `tempo-scale:job:NAME:run:RUN:`, where RUN is the run id the
//! first `submit` drew (128 random bits). A broker that lost the job (a restart without
//! persistence) and got it submitted again gives it a new run id, so rows left by the old
//! run, or stored late by a worker of the old run, are never merged into the new one.
//!
//! - `manifest`: JSON of [`Manifest`] (run id, file count, a hash of the sorted list,
//!   analyzer version and settings, and the folder relative paths are in), written once; a
//!   second `submit` must match it.
//! - `stream`: one entry per file, with the explicit id `0-(index+1)` and the path as its
//!   raw OS bytes, so that a rerun of `submit` adds only what is missing and never a
//!   duplicate (a script adds them, so two `submit`s at once agree). Its consumer group `workers` hands each entry to one slot at a time
//!   (`XREADGROUP COUNT 1`, no prefetch). A row lost after it was stored (deleted, evicted)
//!   leaves its entry acknowledged: a rerun of `submit` queues such a file again in a new
//!   round, `G-(index+1)`, G above every earlier entry, and `status`, `merge` and idle
//!   workers say when rows are missing that nothing queued or in flight will bring
//!   ([`DistError::RowsLost`]), or that the stream or its group was deleted by hand
//!   ([`DistError::QueueGone`]; `submit` makes the group again at the stream's last id and
//!   re-queues the files without a row). An entry that is not `submit`'s is acknowledged
//!   and skipped; one that mimics a re-queue of another file is caught by `merge`, which
//!   checks the rows' paths against the manifest's list hash.
//! - `rows`: the analyze CSV line of each input index, and `states` its status. A slot
//!   stores both and acknowledges the entry in one script ([`keys::STORE_SCRIPT`]) that
//!   first checks that the manifest still names the slot's run; `HSETNX` writes a row once
//!   even when two workers raced on a file (at-least-once execution, exactly-once rows).
//!
//! A slot refreshes its claim while it analyses (`XCLAIM ... JUSTID`, which does not count
//! as a delivery), so a slow file is never stolen; an entry idle for `--reclaim-after` is
//! taken over with `XAUTOCLAIM`. An entry delivered more than [`MAX_DELIVERIES`] times has
//! killed that many workers and becomes an `error` row. `merge` reads `rows` in input order:
//! the bytes of `eval-cli analyze --out`. `work`, `status` and `merge` ride out a broker
//! restart for `--broker-retry` ([`broker::with_reconnects`]; `work`'s slots through the
//! loop of every broker worker, [`crate::queue_worker`], which also serves `work --metrics`).
//!
//! The data flow, and the file of each step:
//!
//! ```text
//! submit.rs   paths ─walk─▶ manifest + stream entries 0-1, 0-2, … (keys.rs)
//!                                  │ XREADGROUP, or XAUTOCLAIM when abandoned
//!                                  ▼
//! slot.rs     one slot per --workers (work.rs): claim ─▶ analyse ─▶ store
//!             (a heartbeat XCLAIM JUSTID keeps the claim while it analyses)
//!                                  │ STORE_SCRIPT: HSETNX rows, states; XACK
//!                                  ▼
//! merge.rs    rows in input order (HMGET) ─▶ the CSV of `analyze --out`
//! status.rs   counts, who holds what (XPENDING), rate and ETA (finished_at)
//! ```
//!
//! The files, lowest first: `error.rs` ([`DistError`]), `keys.rs` (the key layout, the
//! manifest, the store script), `args.rs` (the flags), `broker.rs` (a connection and the
//! reconnect loop), `worker.rs` (what the slots of a worker share), `slot.rs` (the broker
//! as a [`crate::queue_worker::Queue`], whose loop every slot runs, and the heartbeat), then one file per command: `submit.rs`, `work.rs`,
//! `status.rs`, `merge.rs`, which alone return `anyhow` errors. No file imports a command
//! file.

use std::process::ExitCode;

mod args;
mod broker;
mod error;
mod keys;
mod merge;
mod slot;
mod status;
mod submit;
mod work;
mod worker;

pub use args::{
    JobArgs, MergeArgs, PathMap, RetryArgs, StatusArgs, SubmitArgs, WorkArgs, WorkerAnalyzerArgs,
};
pub use error::{DistError, QueuePart, SubmitFolderError};
pub use keys::{JobAnalyzer, MAX_DELIVERIES, Manifest};
pub use status::{ConsumerStatus, HeldFile, JobStatus};

/// `eval-cli dist`: the commands of a distributed job.
#[derive(Debug, clap::Subcommand)]
pub enum DistCommand {
    /// Record a job and queue one entry per file (safe to rerun).
    Submit(SubmitArgs),
    /// Analyse a job's files on this machine until the job is complete.
    Work(WorkArgs),
    /// Files done, failed, in flight and waiting, and who holds what.
    Status(StatusArgs),
    /// Write a complete job's rows in input order: the CSV of `analyze --out`.
    Merge(MergeArgs),
}

/// Runs `eval-cli dist ...`.
pub fn run(command: DistCommand) -> anyhow::Result<ExitCode> {
    match command {
        DistCommand::Submit(args) => submit::submit(args),
        DistCommand::Work(args) => work::work(args),
        DistCommand::Status(args) => status::status(args),
        DistCommand::Merge(args) => merge::merge(args),
    }
}
