//! The measurements behind the tempo stage's `no_pulse` tests (`MIN_RELATIVE_NOVELTY`,
//! `MIN_PEAK_NOVELTY` and `MIN_PULSE_SIGNIFICANCE` in `src/tempo/mod.rs`): the mean and
//! peak relative novelty ([`analyzer_core::onset::relative_novelty`],
//! [`analyzer_core::onset::peak_relative_novelty`]) and the pulse significance
//! ([`analyzer_core::tempo::TempoEstimator::pulse_significance`]) of steady tones, of white,
//! pink and brown noise (`SEEDS` seeds, default 12, of 4-120 s) and of the disguised beats
//! of `synth_music::pulse_cases`, made here, then of every audio file in the folders given,
//! as the default analysis reads it (sampled; whole with `FULL=1`, as `--full` does), each
//! line with the analyzer's verdict.
//!
//! ```sh
//! cargo run -p analyzer-core --example pulse_test -- DIR...
//! ```

use std::f32::consts::TAU;
use std::path::PathBuf;

use analyzer_core::onset::{peak_relative_novelty, relative_novelty};
use analyzer_core::{Analyzer, AnalyzerConfig, OnsetEnvelope, StopSignal};
use synth_music::pulse_cases::{NoiseColour, disguised_beats, noise};

/// One line: the three measures, the verdict (a tempo or the error kind) and the name.
fn report(analyzer: &Analyzer, envelopes: &[OnsetEnvelope], name: &str) {
    let estimator = analyzer.tempo_estimator();
    let verdict = match estimator.estimate_segments(envelopes, &StopSignal::never()) {
        Ok(estimate) => format!("{:.1}", estimate.bpm),
        Err(e) => e.kind().to_string(),
    };
    println!(
        "{:.4}\t{:.4}\t{:.2}\t{verdict}\t{name}",
        relative_novelty(envelopes).unwrap_or(0.0),
        peak_relative_novelty(envelopes).unwrap_or(0.0),
        estimator.pulse_significance(envelopes)
    );
}

fn main() {
    let full = std::env::var_os("FULL").is_some_and(|v| v == "1");
    let config = AnalyzerConfig {
        sampling: if full {
            None
        } else {
            AnalyzerConfig::default().sampling
        },
        ..AnalyzerConfig::default()
    };
    let analyzer = Analyzer::new(config).unwrap();
    let rate = 22_050u32;
    let of =
        |samples: &[f32], rate: u32| vec![analyzer.envelope_of_samples(samples, rate, 1).unwrap()];
    println!("mean_novelty\tpeak_novelty\tsignificance\tverdict\tname");
    // The tones of `tests/core/errors.rs`: 40 s at 44.1 kHz, time in f32 as there.
    let tone_rate = 44_100u32;
    let tone = |f: &dyn Fn(f32) -> f32| -> Vec<f32> {
        (0..tone_rate as usize * 40)
            .map(|i| f(i as f32 / tone_rate as f32))
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
        report(&analyzer, &of(samples, tone_rate), name);
    }
    let seeds: u64 = std::env::var("SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    for colour in NoiseColour::ALL {
        for seed in 0..seeds {
            for seconds in [4.0, 6.0, 8.0, 10.0, 15.0, 30.0, 60.0, 120.0] {
                let samples = noise(colour, seed, seconds, rate);
                let name = format!("{} noise, seed {seed}, {seconds} s", colour.name());
                report(&analyzer, &of(&samples, rate), &name);
            }
        }
    }
    for bpm in [100.0, 140.0, 174.0] {
        for seconds in [12.0, 25.0] {
            for (case, samples) in disguised_beats(bpm, seconds, rate) {
                let name = format!("{case}, {bpm} BPM, {seconds} s");
                report(&analyzer, &of(&samples, rate), &name);
            }
        }
    }
    let folders: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (files, _) = analyzer_core::batch::collect_audio_files(&folders);
    for path in files {
        match analyzer.tempo_envelopes_of_file(&path, &StopSignal::never()) {
            Ok(envelopes) => report(&analyzer, &envelopes, &path.display().to_string()),
            Err(e) => println!("-\t-\t-\t{}\t{e}", e.kind()),
        }
    }
}
