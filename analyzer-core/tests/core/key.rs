//! The key beside the tempo: audio without a key gets a reason and keeps its tempo, and the
//! key read from a file is the one read from its samples.

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use synth_music::{presets, write_wav};

#[test]
fn audio_without_a_key_gets_a_reason_not_a_guess() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    for (name, samples) in presets::keyless(20.0, 22_050) {
        let key = analyzer
            .key_of_samples(&samples, 22_050, 1)
            .unwrap()
            .expect("the key is asked for by default");
        let no_key = key.expect_err(name);
        assert!(
            no_key.to_string().starts_with("no key: "),
            "{name}: {no_key}"
        );
    }
}

#[test]
fn a_drum_loop_keeps_its_tempo_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let (_, drums) = presets::keyless(20.0, 22_050)
        .into_iter()
        .find(|(name, _)| name.starts_with("drum loop"))
        .unwrap();
    let path = dir.path().join("drums.wav");
    write_wav(&path, &drums, 22_050, 1).unwrap();
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let analysis = analyzer.analyze_file(&path, &StopSignal::never()).unwrap();
    assert!(
        (analysis.tempo.as_ref().unwrap().bpm - 120.0).abs() < 1.0,
        "{}",
        analysis.tempo.as_ref().unwrap().bpm
    );
    let no_key = analysis
        .key
        .expect("asked for")
        .expect_err("drums have no key");
    assert!(no_key.reason.contains("pitched"), "{no_key}");
}

#[test]
fn the_key_is_left_out_when_not_asked_for() {
    let spec = presets::four_on_the_floor_128().with_seconds(12.0);
    let samples = synth_music::render(&spec);
    let channels = usize::from(spec.channels);
    let without = Analyzer::new(AnalyzerConfig::default().with_key(false)).unwrap();
    assert_eq!(
        without
            .key_of_samples(&samples, spec.sample_rate, channels)
            .unwrap(),
        None
    );
    let with = Analyzer::new(AnalyzerConfig::default()).unwrap();
    assert!(
        with.key_of_samples(&samples, spec.sample_rate, channels)
            .unwrap()
            .is_some()
    );
    assert_ne!(
        with.fingerprint(),
        without.fingerprint(),
        "the descriptor set is part of the fingerprint"
    );
}

/// A held A minor chord has no pulse, and its key and loudness stand all the same: the
/// batch reports the file as failed (`no_pulse`) and keeps them. Before, the tempo
/// stage's verdict ended the file and both were lost.
#[test]
fn a_file_without_a_pulse_keeps_its_key_and_loudness() {
    use analyzer_core::batch::{Batch, Sequential, Status};
    use analyzer_core::{ErrorKind, Stage};

    let rate = 22_050u32;
    let chord = presets::held_chord(30.0, rate);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held-chord.wav");
    write_wav(&path, &chord, rate, 1).unwrap();
    let analyzer = Analyzer::new(AnalyzerConfig::default().with_loudness(true)).unwrap();

    let analysis = analyzer.analyze_file(&path, &StopSignal::never()).unwrap();
    let verdict = analysis
        .tempo
        .as_ref()
        .expect_err("a held chord has no pulse");
    assert_eq!(
        (verdict.kind(), verdict.stage(), verdict.path()),
        (ErrorKind::NoPulse, Stage::Tempo, Some(path.as_path()))
    );
    let key = analysis.key.as_ref().unwrap().as_ref().unwrap();
    assert_eq!(key.key.to_string(), "A minor");
    let lufs = analysis.loudness.as_ref().unwrap().integrated_lufs.unwrap();
    assert!((-30.0..-5.0).contains(&lufs), "{lufs}");

    let summary = Batch::new(&analyzer).run(std::slice::from_ref(&path), &Sequential);
    let result = &summary.results[0];
    assert_eq!(result.status, Status::Error);
    assert_eq!(result.error.as_deref(), Some(verdict.reason().as_str()));
    assert_eq!(result.value.as_ref(), Some(&analysis));
}
