//! `eval-cli`: analyse audio libraries for tempo, evaluate against ground truth, and compare
//! sequential and parallel runs. The binary only parses flags and picks a mode; the work
//! lives in the modules below and in `analyzer-core`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod analyze;
mod check;
mod compare;
mod dataset;
mod estimator;
mod evaluate;
mod excerpts;
mod manifest;
mod metrics;
mod report;
mod runner;

/// Tempo (BPM) analysis at library scale, and the harness that proves how fast and how
/// right it is.
#[derive(Debug, Parser)]
#[command(name = "eval-cli", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Estimate the tempo of files and folders; one CSV row per file.
    Analyze(analyze::AnalyzeArgs),
    /// Score the analyzer against a dataset with known tempi.
    Evaluate(evaluate::EvaluateArgs),
    /// Run a dataset at several worker counts: speedup, identity, latency.
    Compare(compare::CompareArgs),
    /// Check a report directory against CI thresholds.
    Check(check::CheckArgs),
    /// Make or inspect datasets.
    #[command(subcommand)]
    Dataset(dataset::DatasetCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Analyze(args) => analyze::run(args),
        Command::Evaluate(args) => evaluate::run(args),
        Command::Compare(args) => compare::run(args),
        Command::Check(args) => check::run(args),
        Command::Dataset(cmd) => dataset::run(cmd),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("eval-cli: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
