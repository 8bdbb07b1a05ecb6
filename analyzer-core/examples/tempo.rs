//! Prints the tempo estimate and candidates of each file given on the command line:
//! a quick look at what the analyzer sees, without the batch machinery of eval-cli.
//!
//! `cargo run -p analyzer-core --example tempo -- FILE...`

use std::path::Path;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).expect("default settings are valid");
    for arg in std::env::args().skip(1) {
        match analyzer.analyze_file(Path::new(&arg), &StopSignal::never()) {
            Ok(a) => {
                let candidates: Vec<String> = a
                    .tempo
                    .candidates
                    .iter()
                    .map(|c| format!("{:.2}@{:.2}", c.bpm, c.strength))
                    .collect();
                println!(
                    "{arg}\t{:.3}\t{:.3}\t{}",
                    a.tempo.bpm,
                    a.tempo.confidence,
                    candidates.join(" ")
                );
            }
            Err(e) => println!("{arg}\terror\t{e}"),
        }
    }
}
