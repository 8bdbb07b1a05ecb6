//! Compound meter (6/8, 12/8): which note is the beat is a setting
//! ([`AnalyzerConfig::compound_beat`]), each with a model of its own. Jigs and shuffles
//! rendered with seeds no training set uses.

use analyzer_core::{Analyzer, AnalyzerConfig, CompoundBeat};
use synth_music::{Meter, Style, TrackSpec, render};

fn reading(analyzer: &Analyzer, spec: &TrackSpec) -> f64 {
    let samples = render(spec);
    analyzer
        .analyze_samples(&samples, spec.sample_rate, usize::from(spec.channels))
        .unwrap_or_else(|e| panic!("{} BPM {:?}: {e}", spec.bpm, spec.style))
        .bpm
}

/// 20 s of `style` in `meter` at `bpm` (dotted quarters in 6/8 and 12/8).
fn song(index: u64, style: Style, meter: Meter, bpm: f64) -> TrackSpec {
    TrackSpec::new(bpm, style)
        .with_meter(meter)
        .with_seconds(20.0)
        .with_seed(9100 + index)
}

fn near(bpm: f64, truth: f64) -> bool {
    (bpm / truth - 1.0).abs() <= 0.04
}

/// With `DottedQuarter` a jig or a 12/8 shuffle reads at the beat a dancer taps; the
/// default reads the quarter note (x1.5) or, where the music leaves no other reading, the
/// same; binary music reads alike with both.
#[test]
fn the_compound_beat_picks_the_note_compound_meter_is_read_in() {
    let quarter = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let dotted =
        Analyzer::new(AnalyzerConfig::default().with_compound_beat(CompoundBeat::DottedQuarter))
            .unwrap();
    let compound = [
        song(0, Style::Jig, Meter::SixEight, 96.0),
        song(1, Style::Jig, Meter::SixEight, 112.0),
        song(2, Style::Jig, Meter::SixEight, 128.0),
        song(3, Style::Jig, Meter::TwelveEight, 104.0),
        song(4, Style::Shuffle, Meter::TwelveEight, 66.0),
        song(5, Style::Shuffle, Meter::TwelveEight, 84.0),
        song(6, Style::Shuffle, Meter::SixEight, 60.0),
    ];
    let mut in_quarters = 0;
    for spec in &compound {
        let (q, d) = (reading(&quarter, spec), reading(&dotted, spec));
        let what = format!(
            "{:?} {:?} at {}: {q:.2} / {d:.2}",
            spec.style, spec.meter, spec.bpm
        );
        assert!(near(d, spec.bpm), "dotted-quarter model, {what}");
        assert!(
            near(q, spec.bpm) || near(q, spec.bpm * 1.5),
            "quarter model, {what}"
        );
        in_quarters += usize::from(near(q, spec.bpm * 1.5));
    }
    assert!(
        in_quarters >= 3,
        "the default read {in_quarters} of 5 in quarters"
    );
    for spec in [
        song(7, Style::Rock, Meter::Four, 120.0),
        song(8, Style::Waltz, Meter::Three, 150.0),
    ] {
        let (q, d) = (reading(&quarter, &spec), reading(&dotted, &spec));
        assert!(
            near(q, spec.bpm) && near(d, spec.bpm),
            "{:?}: {q:.2} / {d:.2}",
            spec.style
        );
    }
}
