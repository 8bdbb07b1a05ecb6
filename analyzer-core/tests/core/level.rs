//! Odd but valid levels and mixes: channels that cancel in the mono mix-down, content too
//! quiet to hear, and music surrounded by long silence. Each reads as the music it holds,
//! or says that there is nothing to hear, never a confident tempo of residue.

use std::path::{Path, PathBuf};

use analyzer_core::{Analysis, Analyzer, AnalyzerConfig, Sampling, StopSignal};
use synth_music::{presets, render, write_wav};

const RATE: u32 = 22_050;

fn analyze(path: &Path, sampling: Option<Sampling>) -> Analysis {
    Analyzer::new(AnalyzerConfig::default().with_sampling(sampling))
        .unwrap()
        .analyze_file(path, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// 128 BPM house, `seconds` long, mono at [`RATE`].
fn music(seconds: f64) -> Vec<f32> {
    render(
        &presets::four_on_the_floor_128()
            .with_seconds(seconds)
            .with_sample_rate(RATE)
            .with_channels(1),
    )
}

fn stereo(left: &[f32], right: &[f32]) -> Vec<f32> {
    left.iter().zip(right).flat_map(|(&l, &r)| [l, r]).collect()
}

fn wav(dir: &Path, name: &str, samples: &[f32], channels: u16) -> PathBuf {
    let path = dir.join(name);
    write_wav(&path, samples, RATE, channels).unwrap();
    path
}

fn bpm(analysis: &Analysis) -> f64 {
    match &analysis.tempo {
        Ok(tempo) => tempo.bpm,
        Err(e) => panic!("no tempo: {e}"),
    }
}

fn key_name(analysis: &Analysis) -> String {
    match analysis.key.as_ref().expect("asked for") {
        Ok(key) => key.key.to_string(),
        Err(e) => panic!("no key: {e}"),
    }
}

/// Stereo with one channel's polarity inverted (left = m, right = -m) cancelled in the mono
/// mix-down: it read as silence, `no onsets`, without a key, while a listener hears m.
#[test]
fn a_channel_in_inverted_polarity_does_not_cancel_the_music() {
    let dir = tempfile::tempdir().unwrap();
    let m = music(20.0);
    let inverted: Vec<f32> = m.iter().map(|&s| -s).collect();
    let in_phase = analyze(&wav(dir.path(), "in.wav", &stereo(&m, &m), 2), None);
    let antiphase = analyze(
        &wav(dir.path(), "anti.wav", &stereo(&m, &inverted), 2),
        None,
    );
    assert!((bpm(&in_phase) - 128.0).abs() < 1.0, "{}", bpm(&in_phase));
    assert!(
        (bpm(&antiphase) - bpm(&in_phase)).abs() < 0.1,
        "{:?}",
        antiphase.tempo
    );
    assert_eq!(key_name(&antiphase), key_name(&in_phase));
}

/// Drums in antiphase under a faint pad in phase (40 dB under them): the mix-down kept the
/// pad alone and read `no_pulse: a steady tone`.
#[test]
fn drums_in_antiphase_under_a_faint_pad_keep_their_beat() {
    let dir = tempfile::tempdir().unwrap();
    let drums = presets::clicks(120.0, 20.0, RATE);
    let pad: Vec<f32> = (0..drums.len())
        .map(|i| {
            let t = i as f32 / RATE as f32;
            [220.0f32, 277.18, 329.63]
                .iter()
                .map(|hz| 0.002 * (std::f32::consts::TAU * hz * t).sin())
                .sum()
        })
        .collect();
    let left: Vec<f32> = drums.iter().zip(&pad).map(|(d, p)| d + p).collect();
    let right: Vec<f32> = drums.iter().zip(&pad).map(|(d, p)| p - d).collect();
    let analysis = analyze(
        &wav(dir.path(), "drums.wav", &stereo(&left, &right), 2),
        None,
    );
    assert!((bpm(&analysis) - 120.0).abs() < 1.0, "{:?}", analysis.tempo);
}
