//! Compound meter (6/8, 12/8): which note is the beat is a setting
//! ([`AnalyzerConfig::compound_beat`]), each with a model of its own. Jigs and shuffles
//! rendered with seeds no training set uses.

use analyzer_core::{Analyzer, AnalyzerConfig, CompoundBeat, TempoEstimate};
use synth_music::{Meter, Style, TrackSpec, render};

fn estimate(analyzer: &Analyzer, spec: &TrackSpec) -> TempoEstimate {
    let samples = render(spec);
    analyzer
        .analyze_samples(&samples, spec.sample_rate, usize::from(spec.channels))
        .unwrap_or_else(|e| panic!("{} BPM {:?}: {e}", spec.bpm, spec.style))
}

fn reading(analyzer: &Analyzer, spec: &TrackSpec) -> f64 {
    estimate(analyzer, spec).bpm
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

/// 20-s jigs and shuffles (seeds no training set uses), and a rock song and a waltz.
fn compound_songs() -> [TrackSpec; 7] {
    [
        song(0, Style::Jig, Meter::SixEight, 96.0),
        song(1, Style::Jig, Meter::SixEight, 112.0),
        song(2, Style::Jig, Meter::SixEight, 128.0),
        song(3, Style::Jig, Meter::TwelveEight, 104.0),
        song(4, Style::Shuffle, Meter::TwelveEight, 66.0),
        song(5, Style::Shuffle, Meter::TwelveEight, 84.0),
        song(6, Style::Shuffle, Meter::SixEight, 60.0),
    ]
}

/// Where the default reads a jig or a shuffle in quarter notes, the dotted quarter a dancer
/// taps is its `alternative` and the confidence says the reading is a convention (the two
/// models share the belief); binary music keeps a confident reading and no 3:2 alternative.
#[test]
fn the_default_offers_the_dotted_quarter_of_compound_meter() {
    let quarter = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let mut offered = 0;
    for spec in &compound_songs() {
        let e = estimate(&quarter, spec);
        if !near(e.bpm, spec.bpm * 1.5) {
            continue;
        }
        let alt = e.alternative.as_ref().map_or(0.0, |a| a.bpm);
        let what = format!("{:?} {:?} at {}: {e:?}", spec.style, spec.meter, spec.bpm);
        assert!(near(alt, spec.bpm), "{what}");
        assert!(e.confidence < 0.6, "{what}");
        offered += 1;
    }
    assert!(offered >= 3, "the default read {offered} of 7 in quarters");
    for spec in [
        song(7, Style::Rock, Meter::Four, 120.0),
        song(8, Style::Waltz, Meter::Three, 150.0),
    ] {
        let e = estimate(&quarter, &spec);
        let alt = e.alternative.as_ref().map_or(spec.bpm, |a| a.bpm);
        let ternary = [1.5, 2.0 / 3.0, 0.75, 4.0 / 3.0]
            .iter()
            .any(|r| near(alt, spec.bpm * r));
        assert!(near(e.bpm, spec.bpm) && !ternary, "{:?}: {e:?}", spec.style);
        assert!(e.confidence > 0.6, "{:?}: {e:?}", spec.style);
    }
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
    let compound = compound_songs();
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
