//! Writes the benchmark track into a folder in every format whose encoder is on the PATH:
//! `make_inputs DIR [SECONDS] [SEED]` gives `DIR/track-SECONDSs.{wav,flac,mp3,ogg,m4a}`
//! (defaults: 240 s, seed 42), for CPU comparisons with other tempo tools.

use std::path::PathBuf;
use std::process::ExitCode;

use bench_suite::{Format, Inputs};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(dir) = args.next().map(PathBuf::from) else {
        eprintln!("usage: make_inputs DIR [SECONDS] [SEED]");
        return ExitCode::from(2);
    };
    let seconds: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(240.0);
    let seed: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(42);
    let name = format!("track-{seconds}s");
    match Inputs::create_in(&dir, &name, seconds, seed) {
        Ok(inputs) => {
            for format in Format::ALL {
                if let Some(path) = inputs.file(format) {
                    println!("{}", path.display());
                }
            }
            for (format, why) in &inputs.skipped {
                eprintln!("make_inputs: no {format}: {why}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_inputs: {e}");
            ExitCode::FAILURE
        }
    }
}
