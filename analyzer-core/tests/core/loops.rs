//! Short audio: sample-pack loops of 2 and 4 bars, and one song cut at several lengths.
//! Store previews, loops and stems are short; the tempo must not depend on how much of
//! the music the analyzer hears.

use analyzer_core::{Analyzer, AnalyzerConfig};
use synth_music::{Meter, Style, TrackSpec, render};

/// Loops are too short for sub-BPM precision: within 1 % of the truth, and never at
/// another metrical level.
const TOLERANCE: f64 = 0.01;

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig::default()).unwrap()
}

fn estimate(analyzer: &Analyzer, spec: &TrackSpec) -> f64 {
    let samples = render(spec);
    analyzer
        .analyze_samples(&samples, spec.sample_rate, usize::from(spec.channels))
        .unwrap_or_else(|e| panic!("{} BPM {:?}: {e}", spec.bpm, spec.style))
        .bpm
}

/// `bars` bars of `spec` (4 beats a bar, or 3 in 3/4), as a loop file would hold them.
fn loop_of(spec: TrackSpec, bars: f64, beats_per_bar: f64) -> TrackSpec {
    let seconds = bars * beats_per_bar * 60.0 / spec.bpm;
    spec.with_seconds(seconds)
}

fn assert_loops(name: &str, specs: impl IntoIterator<Item = TrackSpec>, beats_per_bar: f64) {
    assert_loops_of(name, specs, beats_per_bar, &[2.0, 4.0]);
}

fn assert_loops_of(
    name: &str,
    specs: impl IntoIterator<Item = TrackSpec>,
    beats_per_bar: f64,
    bar_counts: &[f64],
) {
    let analyzer = analyzer();
    let mut misses = Vec::new();
    for spec in specs {
        for &bars in bar_counts {
            let spec = loop_of(spec.clone(), bars, beats_per_bar);
            let bpm = estimate(&analyzer, &spec);
            if (bpm / spec.bpm - 1.0).abs() > TOLERANCE {
                misses.push(format!("{} BPM, {bars} bars: {bpm:.2}", spec.bpm));
            }
        }
    }
    assert!(misses.is_empty(), "{name} loops: {}", misses.join("; "));
}

#[test]
fn house_loops_124_to_128() {
    assert_loops(
        "house",
        [124.0, 126.0, 128.0]
            .iter()
            .enumerate()
            .map(|(k, &bpm)| TrackSpec::new(bpm, Style::FourOnTheFloor).with_seed(10 + k as u64)),
        4.0,
    );
}

#[test]
fn drum_and_bass_loops_172_to_176() {
    assert_loops(
        "drum and bass",
        [172.0, 174.0, 176.0].iter().enumerate().map(|(k, &bpm)| {
            TrackSpec::new(bpm, Style::DrumAndBass)
                .with_seed(20 + k as u64)
                .with_humanize_ms(3.0)
        }),
        4.0,
    );
}

#[test]
fn swung_hiphop_loops_85_to_95() {
    assert_loops(
        "hip-hop",
        [85.0, 90.0, 95.0].iter().enumerate().map(|(k, &bpm)| {
            TrackSpec::new(bpm, Style::HipHop)
                .with_seed(30 + k as u64)
                .with_swing(0.25)
                .with_humanize_ms(5.0)
        }),
        4.0,
    );
}

fn waltz(k: u64, bpm: f64) -> TrackSpec {
    TrackSpec::new(bpm, Style::Waltz)
        .with_meter(Meter::Three)
        .with_seed(40 + k)
        .with_humanize_ms(4.0)
}

#[test]
fn waltz_loops_in_three_four() {
    assert_loops("waltz", [waltz(0, 96.0)], 3.0);
    assert_loops_of("waltz", [waltz(1, 120.0), waltz(2, 144.0)], 3.0, &[4.0]);
}

/// Known gap: two bars of a waltz at 120 BPM or more are six beats in 3 s or less, and
/// read at half tempo.
#[test]
#[ignore = "known gap: 2 bars of a 120-144 BPM waltz read at half tempo (see docs/accuracy.md)"]
fn two_bars_of_a_faster_waltz() {
    assert_loops_of("waltz", [waltz(1, 120.0), waltz(2, 144.0)], 3.0, &[2.0]);
}

/// One 60-s song heard whole, as a 15-s excerpt and as an 8-s excerpt from its middle
/// gives one tempo.
#[test]
fn excerpts_of_one_song_agree() {
    let analyzer = analyzer();
    for (k, (bpm, style)) in [
        (128.0, Style::FourOnTheFloor),
        (174.0, Style::DrumAndBass),
        (92.0, Style::HipHop),
        (140.0, Style::Rock),
    ]
    .into_iter()
    .enumerate()
    {
        let spec = TrackSpec::new(bpm, style)
            .with_seed(50 + k as u64)
            .with_seconds(60.0);
        let samples = render(&spec);
        let channels = usize::from(spec.channels);
        let frame = |s: f64| (s * f64::from(spec.sample_rate)) as usize * channels;
        let mut readings = Vec::new();
        for (start, seconds) in [(0.0, 60.0), (20.0, 15.0), (26.0, 8.0)] {
            let part = &samples[frame(start)..frame(start + seconds)];
            let est = analyzer
                .analyze_samples(part, spec.sample_rate, channels)
                .unwrap();
            readings.push((seconds, est.bpm));
        }
        for (seconds, est) in &readings {
            assert!(
                (est / bpm - 1.0).abs() <= TOLERANCE,
                "{bpm} BPM {style:?}: {readings:?} (the {seconds}-s reading is off)"
            );
        }
    }
}

/// A steady beat is never `no_pulse`, however it is dressed: very quiet, after a long
/// silence, or after one burst far louder than the music.
#[test]
fn a_steady_beat_always_has_a_pulse() {
    let analyzer = analyzer();
    let spec = TrackSpec::new(140.0, Style::FourOnTheFloor)
        .with_seed(60)
        .with_seconds(25.0);
    let rate = spec.sample_rate;
    let channels = usize::from(spec.channels);
    let music = render(&spec);
    let quiet: Vec<f32> = music.iter().map(|s| s * 0.001).collect();
    let mut late = vec![0.0f32; 15 * rate as usize * channels];
    late.extend_from_slice(&music[..10 * rate as usize * channels]);
    let mut burst: Vec<f32> = music.iter().map(|s| s * 0.01).collect();
    let start = rate as usize * channels;
    for (k, s) in burst[start..start + rate as usize / 2 * channels]
        .iter_mut()
        .enumerate()
    {
        *s = if (k / 7) % 2 == 0 { 0.99 } else { -0.99 };
    }
    for (name, samples) in [
        ("quiet", quiet),
        ("after silence", late),
        ("after a burst", burst),
    ] {
        let est = analyzer
            .analyze_samples(&samples, rate, channels)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            (est.bpm / 140.0 - 1.0).abs() <= TOLERANCE,
            "{name}: {:.2} BPM",
            est.bpm
        );
    }
}
