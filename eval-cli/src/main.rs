//! The `eval-cli` binary: parses the command line and hands it to [`eval_cli::run`].

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    eval_cli::run(eval_cli::Cli::parse())
}
