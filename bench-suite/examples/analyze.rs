//! Analyses each file given on the command line in turn and prints `file,bpm`: the
//! smallest release binary of the whole pipeline, for CPU comparisons with other tempo
//! tools (`/usr/bin/time cargo run --release -p bench-suite --example analyze -- FILE`
//! pays for cargo too; run `target/release/examples/analyze FILE` instead).

use std::path::Path;
use std::process::ExitCode;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() -> ExitCode {
    let analyzer = match Analyzer::new(AnalyzerConfig::default()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("analyze: {e}");
            return ExitCode::from(2);
        }
    };
    let mut code = ExitCode::SUCCESS;
    for file in std::env::args_os().skip(1) {
        let path = Path::new(&file);
        match analyzer.analyze_file(path, &StopSignal::never()) {
            Ok(a) => println!("{},{:.2}", path.display(), a.tempo.bpm),
            Err(e) => {
                eprintln!("analyze: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
