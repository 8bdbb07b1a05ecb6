//! Analyses each file given on the command line in turn and prints `file,bpm,key`: the
//! smallest release binary of the whole pipeline, for CPU comparisons with other tempo
//! tools (`--tempo-only` first leaves the key out, to measure what the key costs) (`/usr/bin/time cargo run --release -p bench-suite --example analyze -- FILE`
//! pays for cargo too; run `target/release/examples/analyze FILE` instead).

use std::path::Path;
use std::process::ExitCode;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() -> ExitCode {
    let mut files: Vec<_> = std::env::args_os().skip(1).collect();
    let tempo_only = files.first().is_some_and(|a| a == "--tempo-only");
    if tempo_only {
        files.remove(0);
    }
    let analyzer = match Analyzer::new(AnalyzerConfig::default().with_key(!tempo_only)) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("analyze: {e}");
            return ExitCode::from(2);
        }
    };
    let mut code = ExitCode::SUCCESS;
    for file in files {
        let path = Path::new(&file);
        match analyzer.analyze_file(path, &StopSignal::never()) {
            Ok(a) => {
                let key = match a.key {
                    Some(Ok(k)) => k.key.to_string(),
                    _ => String::new(),
                };
                match a.tempo {
                    Ok(tempo) => println!("{},{:.2},{key}", path.display(), tempo.bpm),
                    Err(e) => {
                        println!("{},,{key}", path.display());
                        eprintln!("analyze: {e}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
            Err(e) => {
                eprintln!("analyze: {e}");
                code = ExitCode::FAILURE;
            }
        }
    }
    code
}
