//! Training data for the metrical model: one CSV row per tempo hypothesis of every file in
//! the manifests given, with its features and whether it is the true tempo (within 4 %).
//!
//! `cargo run -p analyzer-core --example metrical_features -- MANIFEST... > features.csv`
//! (`file` is the manifest's, so that predictions can be scored by `eval-cli evaluate
//! --estimator csv:FILE`).
//! A manifest is a CSV with `file,bpm` and optionally `source`, `seconds` and `feel`
//! (straight / swung / compound) columns. Without a `feel` column, a `meter` of 6/8, 9/8 or
//! 12/8 gives `compound` (extra-dev states its meters, not its feel), and anything else an
//! empty `feel`.

use std::path::Path;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

/// Meters whose beat is a dotted note, three eighths to it.
const COMPOUND_METERS: [&str; 3] = ["6/8", "9/8", "12/8"];

fn main() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).expect("default settings");
    println!("group,file,source,seconds,feel,truth,bpm,label,f");
    let mut group = 0usize;
    for manifest in std::env::args().skip(1) {
        let mut reader = csv_rows(&manifest);
        let header = reader.remove(0);
        let col = |name: &str| header.iter().position(|h| h == name);
        let (file, bpm) = (
            col("file").expect("file column"),
            col("bpm").expect("bpm column"),
        );
        let (source, seconds, feel) = (col("source"), col("seconds"), col("feel"));
        let meter = col("meter");
        let dir = Path::new(&manifest).parent().unwrap_or(Path::new("."));
        for row in &reader {
            let truth: f64 = row[bpm].parse().expect("numeric bpm");
            let path = dir.join(&row[file]);
            let hypotheses = analyzer
                .envelope_of_file(&path, &StopSignal::never())
                .and_then(|env| {
                    analyzer
                        .tempo_estimator()
                        .candidate_features(&env, &StopSignal::never())
                });
            let Ok(hypotheses) = hypotheses else {
                eprintln!("skipped {}", path.display());
                continue;
            };
            let src = source.map_or("synth", |c| row[c].as_str());
            let secs = seconds.map_or("", |c| row[c].as_str());
            let feel = match (feel, meter) {
                (Some(c), _) => row[c].as_str(),
                (None, Some(c)) if COMPOUND_METERS.contains(&row[c].as_str()) => "compound",
                _ => "",
            };
            let name = format!("\"{}\"", row[file].replace('"', "\"\""));
            for (bpm, features) in hypotheses {
                let label = u8::from((bpm - truth).abs() <= 0.04 * truth);
                let f: Vec<String> = features.iter().map(|v| format!("{v:.6}")).collect();
                println!(
                    "{group},{name},{src},{secs},{feel},{truth},{bpm:.4},{label},{}",
                    f.join(";")
                );
            }
            group += 1;
        }
    }
}

/// A small CSV reader for manifests without quoted commas.
fn csv_rows(path: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}
