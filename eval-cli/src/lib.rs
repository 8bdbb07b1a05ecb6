//! `eval-cli`: analyse audio libraries for tempo, evaluate against ground truth, and compare
//! sequential and parallel runs. The binary (`main.rs`) only parses the command line.
//!
//! The arrows point one way (`ci/arrows.sh` checks it on every change: no module imports a
//! command, no import cycle between modules nor between the files of one folder):
//!
//! ```text
//! analyzer-core ─▶ record (the row; path_cell) ─▶ cache, evaluation, report (and its model),
//!                                                 shard, runner, output, stdout, host, open_files, flags, tags,
//!                                                 analysis (one file per request), confine,
//!                                                 telemetry (Prometheus text),
//!                                                 threads (may the threads start),
//!                                                 queue_worker (the loop of a broker's slots)
//!               ─▶ commands: analyze, merge, dist, serve, consume, evaluate, compare, check,
//!                  dataset, tag, watch
//!               ─▶ lib.rs (dispatch) ─▶ main.rs
//! ```
//!
//! Each command reads its flags in two steps, as ripgrep does: the clap `*Args` struct
//! mirrors the command line, and a `Plan` built once from it (with [`flags`] deciding what
//! the commands share, the worker count among them) is what the command runs. The batch
//! work itself is [`analyzer_core::batch`]; a row is a [`record::AnalyzeRecord`]; the files
//! a run leaves are made by [`report::export`] and written by [`output`], whose rules say
//! what is never overwritten; [`path_cell`] is how a file's exact path goes into a row;
//! [`host`] is every question asked of the machine.

#![deny(missing_docs)]

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod analysis;
pub mod analyze;
pub mod cache;
pub mod check;
pub mod compare;
pub mod confine;
pub mod consume;
pub mod dataset;
pub mod dist;
pub mod estimator;
pub mod evaluate;
pub mod evaluation;
pub mod file_id;
pub mod flags;
pub mod gate;
pub mod host;
pub mod input;
pub mod key_metrics;
pub mod manifest;
pub mod merge;
pub mod metrics;
pub mod open_files;
pub mod output;
pub mod path_cell;
pub mod queue_worker;
pub mod record;
pub mod report;
pub mod runner;
pub mod serve;
pub mod shard;
pub mod stdout;
pub mod tag;
pub mod tags;
pub mod telemetry;
pub mod threads;
pub mod watch;
pub mod writers;

/// Tempo (BPM) analysis at library scale, and the harness that proves how fast and how
/// right it is.
#[derive(Debug, Parser)]
#[command(name = "eval-cli", version, about, long_about = None)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `eval-cli`.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Estimate the tempo of files and folders; one CSV row per file.
    Analyze(analyze::AnalyzeArgs),
    /// Score the analyzer against a dataset with known tempi.
    Evaluate(evaluate::EvaluateArgs),
    /// Run a dataset at several worker counts: speedup, identity, latency.
    Compare(compare::CompareArgs),
    /// Check a report directory against CI thresholds.
    Check(check::CheckArgs),
    /// Join the parts of `analyze --shard K/N` into the CSV of the unsharded run.
    Merge(merge::MergeArgs),
    /// Make or inspect datasets.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
    /// Analyse one job on many machines through a Redis Stream.
    #[command(subcommand)]
    Dist(dist::DistCommand),
    /// Serve analysis over HTTP: jobs, live progress, uploads, metrics and a web page.
    Serve(serve::ServeArgs),
    /// Take analysis requests from a RabbitMQ queue and publish their rows.
    Consume(consume::ConsumeArgs),
    /// Analyse files and write tempo and key into their own tags (ID3v2, Vorbis, MP4).
    Tag(tag::TagArgs),
    /// Keep folders analysed: a first pass, then every file added or changed, the cache
    /// (and with --write-tags the tags) kept current.
    Watch(watch::WatchArgs),
}

/// Runs a parsed command line; errors are printed on stderr and exit with status 2.
pub fn run(cli: Cli) -> ExitCode {
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Check(args) => check::run(args),
        Command::Merge(args) => merge::run(args),
        Command::Dataset(cmd) => dataset::run(cmd),
        Command::Dist(cmd) => dist::run(cmd),
        Command::Serve(args) => serve::run(args),
        Command::Consume(args) => consume::run(args),
        Command::Tag(args) => tag::run(args),
        Command::Watch(args) => watch::run(args),
    };
    match result {
        Ok(code) => code,
        // A reader that closed stdout (`| head`) has what it wanted: the run ends quietly
        // and successfully, as ripgrep's does (docs/analyze.md, "Errors and exit codes").
        Err(err) if stdout::closed_by_reader(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("eval-cli: error: {}", queue_worker::chain(err.as_ref()));
            ExitCode::from(2)
        }
    }
}
