//! The pulse test: noise of any colour and length is `no_pulse`, and a clear beat is never
//! `no_pulse`, however electronic music dresses it (`synth_music::pulse_cases`).

use analyzer_core::{Analyzer, AnalyzerConfig, ErrorKind, Stage, StopSignal};
use synth_music::pulse_cases::{NoiseColour, disguised_beats, noise};
use synth_music::write_wav;

/// A disguised beat must keep its tempo, not only avoid `no_pulse`: within 4 %.
const TOLERANCE: f64 = 0.04;

const RATE: u32 = 22_050;

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig::default()).unwrap()
}

/// Checks that `outcome` is `no_pulse` from the tempo stage, and returns the error.
pub(crate) fn assert_no_pulse(
    outcome: analyzer_core::Result<f64>,
    what: &str,
) -> analyzer_core::Error {
    let e = outcome.expect_err(&format!("{what} must have no pulse"));
    assert_eq!(
        (e.kind(), e.stage()),
        (ErrorKind::NoPulse, Stage::Tempo),
        "{what}: {e}"
    );
    e
}

/// White, pink and brown noise, three seeds, 4-90 s, analysed from memory (whole): each
/// `no_pulse` at the tempo stage. Before, all of them got a tempo at confidence 0.1-0.4.
#[test]
fn noise_of_any_colour_and_length_has_no_pulse() {
    let analyzer = analyzer();
    for colour in NoiseColour::ALL {
        for seed in 0..3 {
            for seconds in [4.0, 10.0, 30.0, 90.0] {
                let samples = noise(colour, seed, seconds, RATE);
                let outcome = analyzer.analyze_samples(&samples, RATE, 1);
                let name = format!("{} noise, seed {seed}, {seconds} s", colour.name());
                assert_no_pulse(outcome.map(|t| t.bpm), &name);
            }
        }
    }
}

/// The noise that stood highest in the 960-signal sweep behind `MIN_PULSE_SIGNIFICANCE`
/// (brown, seed 38, 120 s, 5.18 standard deviations) stays under the line.
#[test]
fn the_most_pulse_like_noise_measured_has_no_pulse() {
    let samples = noise(NoiseColour::Brown, 38, 120.0, RATE);
    let outcome = analyzer().analyze_samples(&samples, RATE, 1);
    assert_no_pulse(outcome.map(|t| t.bpm), "brown noise, seed 38, 120 s");
}

/// A 90-s noise file is sampled by the default analysis (4 segments of 15 s): the pooled
/// segments have no pulse either, and the reason says how far from one they are.
#[test]
fn sampled_noise_files_have_no_pulse() {
    let dir = tempfile::tempdir().unwrap();
    for colour in NoiseColour::ALL {
        let path = dir.path().join(format!("{}.wav", colour.name()));
        write_wav(&path, &noise(colour, 7, 90.0, RATE), RATE, 1).unwrap();
        let outcome = analyzer().analyze_file(&path, &StopSignal::never());
        let e = assert_no_pulse(outcome.and_then(|a| a.tempo).map(|t| t.bpm), colour.name());
        assert!(
            e.to_string().contains("standard deviations above noise"),
            "{e}"
        );
    }
}

/// A 140 BPM beat behind a quiet low-passed intro, as a pad pumping at the beat with no
/// transients, starting late, behind a loud pad or a held organ chord, or syncopated, in
/// excerpts of 12 and 25 s: each gets its tempo. Before, the beat 30 dB under a held organ
/// chord was `no_pulse` at 25 s (its mean novelty fell under the steady-tone line).
#[test]
fn disguised_beats_get_their_tempo() {
    let analyzer = analyzer();
    for seconds in [12.0, 25.0] {
        for (name, samples) in disguised_beats(140.0, seconds, RATE) {
            let estimate = analyzer
                .analyze_samples(&samples, RATE, 1)
                .unwrap_or_else(|e| panic!("{name}, {seconds} s: {e}"));
            assert!(
                (estimate.bpm / 140.0 - 1.0).abs() <= TOLERANCE,
                "{name}, {seconds} s: {:.2} BPM",
                estimate.bpm
            );
        }
    }
}

/// The pulse significance the test reads separates the two sides by a margin: every
/// disguised beat stands at least twice as far above noise as the line.
#[test]
fn disguised_beats_stand_far_above_noise() {
    let analyzer = analyzer();
    let estimator = analyzer.tempo_estimator();
    for (name, samples) in disguised_beats(140.0, 12.0, RATE) {
        let envelope = analyzer.envelope_of_samples(&samples, RATE, 1).unwrap();
        let significance = estimator.pulse_significance(std::slice::from_ref(&envelope));
        assert!(significance > 10.0, "{name}: {significance:.2}");
    }
}
