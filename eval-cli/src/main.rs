//! The `eval-cli` binary: parses the command line and hands it to [`eval_cli::run`], with
//! the panics the batch catches reported as one line naming their file.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    eval_cli::runner::report_caught_panics();
    eval_cli::run(eval_cli::Cli::parse())
}
