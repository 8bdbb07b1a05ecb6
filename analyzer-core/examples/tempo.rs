//! Prints the tempo estimate and candidates of each file given on the command line:
//! a quick look at what the analyzer sees, without the batch machinery of eval-cli.
//!
//! `cargo run -p analyzer-core --example tempo -- FILE...`

use std::path::Path;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).expect("default settings are valid");
    for arg in std::env::args().skip(1) {
        // A file without a pulse still has a key and a loudness; this example shows tempi.
        match analyzer
            .analyze_file(Path::new(&arg), &StopSignal::never())
            .and_then(|a| a.tempo)
        {
            Ok(tempo) => {
                let candidates: Vec<String> = tempo
                    .candidates
                    .iter()
                    .map(|c| format!("{:.2}@{:.2}", c.bpm, c.strength))
                    .collect();
                println!(
                    "{arg}\t{:.3}\t{:.3}\t{}",
                    tempo.bpm,
                    tempo.confidence,
                    candidates.join(" ")
                );
            }
            Err(e) => println!("{arg}\terror\t{e}"),
        }
    }
}
