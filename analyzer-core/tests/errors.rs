//! Every kind of bad input gives a typed error naming the file and the stage, never a
//! panic; a stream damaged half way keeps what decoded and says so.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use analyzer_core::{
    Analyzer, AnalyzerConfig, AnalyzerConfig as Config, ErrorKind, Stage, StopSignal,
};
use synth_music::{presets, render, write_wav};

fn analyzer() -> Analyzer {
    Analyzer::new(AnalyzerConfig::default()).unwrap()
}

fn error_of(path: &Path) -> analyzer_core::Error {
    analyzer()
        .analyze_file(path, &StopSignal::never())
        .expect_err("bad input must fail")
}

fn good_wav(dir: &Path, seconds: f64) -> std::path::PathBuf {
    let spec = presets::four_on_the_floor_128()
        .with_seconds(seconds)
        .with_sample_rate(22_050);
    let path = dir.join("good.wav");
    write_wav(&path, &render(&spec), spec.sample_rate, spec.channels).unwrap();
    path
}

#[test]
fn missing_file_is_unreadable_at_open() {
    let e = error_of(Path::new("/no/such/file.wav"));
    assert_eq!((e.kind(), e.stage()), (ErrorKind::Unreadable, Stage::Open));
    assert!(
        e.to_string()
            .starts_with("/no/such/file.wav: open: unreadable"),
        "{e}"
    );
}

#[test]
fn a_directory_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(dir.path());
    assert_eq!(e.kind(), ErrorKind::Unreadable);
}

#[test]
fn empty_and_random_files_are_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.mp3");
    fs::write(&empty, b"").unwrap();
    assert_eq!(error_of(&empty).kind(), ErrorKind::UnsupportedFormat);
    let random = dir.path().join("random.flac");
    let bytes: Vec<u8> = (0..50_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(&random, bytes).unwrap();
    let e = error_of(&random);
    assert!(
        matches!(
            e.kind(),
            ErrorKind::UnsupportedFormat | ErrorKind::CorruptStream
        ),
        "{e}"
    );
    assert_eq!(e.path(), Some(random.as_path()));
}

#[test]
fn too_short_audio_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(&good_wav(dir.path(), 1.0));
    assert_eq!((e.kind(), e.stage()), (ErrorKind::TooShort, Stage::Tempo));
}

#[test]
fn silence_and_dc_have_no_pulse() {
    let dir = tempfile::tempdir().unwrap();
    for (name, value) in [("silence.wav", 0.0f32), ("dc.wav", 0.5)] {
        let path = dir.path().join(name);
        write_wav(&path, &vec![value; 22_050 * 10], 22_050, 1).unwrap();
        let e = error_of(&path);
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::NoPulse, Stage::Tempo),
            "{name}"
        );
    }
}

#[test]
fn a_stream_cut_half_way_decodes_what_it_can_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fourfloor-128.mp3"))
            .unwrap();
    let cut = dir.path().join("cut.mp3");
    // Cut in the middle of a frame, so the last packet is damaged too.
    fs::write(&cut, &mp3[..mp3.len() * 3 / 4 + 77]).unwrap();
    let a = analyzer().analyze_file(&cut, &StopSignal::never()).unwrap();
    assert!((a.tempo.bpm - 128.0).abs() < 1.0, "{}", a.tempo.bpm);
    assert!(
        a.audio.duration_s > 5.0 && a.audio.duration_s < 7.0,
        "{}",
        a.audio.duration_s
    );

    let wav = good_wav(dir.path(), 10.0);
    let bytes = fs::read(&wav).unwrap();
    fs::write(&wav, &bytes[..bytes.len() / 2 + 3]).unwrap();
    let a = analyzer().analyze_file(&wav, &StopSignal::never()).unwrap();
    assert!((a.tempo.bpm - 128.0).abs() < 1.0);
    assert!(!a.warnings.is_empty(), "a cut WAV must say so");
    assert!(a.audio.duration_s < 5.5, "{}", a.audio.duration_s);
}

#[test]
fn cancellation_and_deadline_stop_with_their_own_kinds() {
    let dir = tempfile::tempdir().unwrap();
    let wav = good_wav(dir.path(), 10.0);
    let cancelled = StopSignal::never().with_cancel_flag(Arc::new(AtomicBool::new(true)));
    let e = analyzer().analyze_file(&wav, &cancelled).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    let late = StopSignal::never().with_deadline(Instant::now());
    let e = analyzer().analyze_file(&wav, &late).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TimedOut);
}

#[test]
fn invalid_settings_are_refused() {
    for config in [
        Config::default().with_bpm_range(200.0, 100.0),
        Config {
            analysis_rate: 100,
            ..Config::default()
        },
        Config {
            hop: 0,
            ..Config::default()
        },
    ] {
        assert_eq!(
            Analyzer::new(config).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }
}

#[test]
fn a_ten_minute_file_streams_through() {
    // Streaming: the envelope of an hour is ~1.2 MB; decoding and resampling keep one packet.
    // Here the check is functional (it finishes and finds the tempo); eval-cli's compare
    // reports peak RSS.
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::four_on_the_floor_128()
        .with_seconds(20.0)
        .with_sample_rate(11_025)
        .with_channels(1);
    let bar = render(&spec);
    let path = dir.path().join("long.wav");
    let mut w = hound::WavWriter::create(
        &path,
        hound::WavSpec {
            channels: 1,
            sample_rate: 11_025,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        },
    )
    .unwrap();
    for _ in 0..30 {
        for &s in &bar {
            w.write_sample((s * 32_000.0) as i16).unwrap();
        }
    }
    w.finalize().unwrap();
    let a = analyzer()
        .analyze_file(&path, &StopSignal::never())
        .unwrap();
    assert!((a.audio.duration_s - 600.0).abs() < 0.1);
    assert!((a.tempo.bpm - 128.0).abs() < 1.0, "{}", a.tempo.bpm);
}
