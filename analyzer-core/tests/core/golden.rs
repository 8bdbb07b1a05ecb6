//! Golden signals: synthetic music at known tempi must come out at that tempo, to a
//! fraction of a BPM and at the right metrical level (no octave or 2:3 errors).

use analyzer_core::{Analyzer, AnalyzerConfig};
use synth_music::{TrackSpec, presets, render};

/// Sub-BPM precision: a 128.0 track must not read 127 or 129.
const TOLERANCE_BPM: f64 = 0.5;

fn estimate(spec: &TrackSpec) -> f64 {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let samples = render(spec);
    analyzer
        .analyze_samples(&samples, spec.sample_rate, usize::from(spec.channels))
        .unwrap()
        .bpm
}

fn assert_tempo(name: &str, spec: TrackSpec) {
    let bpm = estimate(&spec);
    assert!(
        (bpm - spec.bpm).abs() <= TOLERANCE_BPM,
        "{name}: truth {} BPM, estimated {bpm:.3}",
        spec.bpm
    );
}

#[test]
fn four_on_the_floor_128() {
    assert_tempo("four on the floor", presets::four_on_the_floor_128());
}

#[test]
fn drum_and_bass_174() {
    assert_tempo("drum and bass", presets::drum_and_bass_174());
}

#[test]
fn hiphop_90_with_swing() {
    assert_tempo("hip-hop with swing", presets::hiphop_90_swing());
}

#[test]
fn waltz_in_three_four() {
    assert_tempo("waltz", presets::waltz_3_4());
}

#[test]
fn tempo_200() {
    assert_tempo("200 BPM", presets::tempo_200());
}

/// Known gap: the slow rock ballad reads at the eighth-note level (124), an octave error
/// that Accuracy2 forgives but Accuracy1 does not. The strict test below documents it.
#[test]
fn tempo_62_at_the_beat_or_an_octave_above() {
    let spec = presets::tempo_62();
    let bpm = estimate(&spec);
    let ratio = bpm / spec.bpm;
    assert!(
        (ratio - 1.0).abs() < 0.01 || (ratio - 2.0).abs() < 0.02,
        "62 BPM: estimated {bpm:.3}"
    );
}

#[test]
#[ignore = "known octave error: the 62 BPM ballad reads 124 (see docs/accuracy.md)"]
fn tempo_62() {
    assert_tempo("62 BPM", presets::tempo_62());
}

#[test]
fn same_input_gives_bit_identical_estimates_on_any_thread() {
    let spec = presets::hiphop_90_swing().with_seconds(12.0);
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let samples = render(&spec);
    let here = analyzer
        .analyze_samples(&samples, spec.sample_rate, 2)
        .unwrap();
    let there = std::thread::scope(|s| {
        s.spawn(|| {
            analyzer
                .analyze_samples(&samples, spec.sample_rate, 2)
                .unwrap()
        })
        .join()
        .unwrap()
    });
    assert_eq!(here.bpm.to_bits(), there.bpm.to_bits());
    assert_eq!(here.confidence.to_bits(), there.confidence.to_bits());
    assert_eq!(here.candidates, there.candidates);
}

/// Bare square-wave clicks (a metronome), a few seconds long: nothing falls between the
/// beats, so the backbeat octave check must not double them (it once read 96 as 192).
#[test]
fn bare_click_tracks_are_not_doubled() {
    const RATE: u32 = 22_050;
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    for (bpm, seconds) in [(90.0, 4.0), (96.0, 5.0), (100.0, 6.0), (150.0, 4.0)] {
        let samples = presets::clicks(bpm, seconds, RATE);
        let est = analyzer.analyze_samples(&samples, RATE, 1).unwrap();
        assert!(
            (est.bpm - bpm).abs() / bpm < 0.01,
            "clicks at {bpm} BPM: estimated {:.3}",
            est.bpm
        );
        assert!(est.confidence > 0.3, "clicks at {bpm}: {est:?}");
    }
}
