//! The measurement behind the steady-tone threshold of the tempo stage
//! (`MIN_RELATIVE_NOVELTY` in `src/tempo/mod.rs`): the relative novelty
//! ([`analyzer_core::OnsetEnvelope::relative_novelty`]) of steady tones made here, then of
//! every audio file in the folders given, lowest first, each file analysed whole.
//!
//! ```sh
//! cargo run -p analyzer-core --example relative_novelty -- DIR...
//! ```

use std::f32::consts::TAU;
use std::path::PathBuf;

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() {
    let analyzer = Analyzer::new(AnalyzerConfig::default().with_sampling(None)).unwrap();
    let rate = 22_050u32;
    let tone = |f: &dyn Fn(f32) -> f32| -> Vec<f32> {
        (0..rate as usize * 30)
            .map(|i| f(i as f32 / rate as f32))
            .collect()
    };
    let tones: Vec<(&str, Vec<f32>)> = vec![
        (
            "sine 1 kHz, half scale",
            tone(&|t| 0.5 * (TAU * 1000.0 * t).sin()),
        ),
        (
            "sine 1 kHz, -46 dB",
            tone(&|t| 0.005 * (TAU * 1000.0 * t).sin()),
        ),
        (
            "sine 440 Hz, half scale",
            tone(&|t| 0.5 * (TAU * 440.0 * t).sin()),
        ),
        (
            "hum 60 Hz, half scale",
            tone(&|t| 0.5 * (TAU * 60.0 * t).sin()),
        ),
        (
            "chord with vibrato",
            tone(&|t| {
                let a = TAU * (440.0 * t + 2.0 * (TAU * 5.0 * t).sin() / TAU);
                0.2 * (a.sin() + (TAU * 554.4 * t).sin() + (TAU * 659.3 * t).sin())
            }),
        ),
    ];
    for (name, samples) in &tones {
        let envelope = analyzer.envelope_of_samples(samples, rate, 1).unwrap();
        println!("{:.5}  {name}", envelope.relative_novelty().unwrap_or(0.0));
    }
    let folders: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (files, _) = analyzer_core::batch::collect_audio_files(&folders);
    let mut measured: Vec<(f64, PathBuf)> = files
        .into_iter()
        .filter_map(|path| {
            let envelope = analyzer
                .envelope_of_file(&path, &StopSignal::never())
                .ok()?;
            Some((envelope.relative_novelty()?, path))
        })
        .collect();
    measured.sort_by(|a, b| a.0.total_cmp(&b.0));
    for (novelty, path) in &measured {
        println!("{novelty:.5}  {}", path.display());
    }
}
