//! One fixture per format decodes and gives the right tempo; the content, not the
//! extension, decides the format. WAV variants are written at test time with hound;
//! the compressed fixtures are committed (see `fixtures/make.sh` for how they were made).

use std::path::{Path, PathBuf};

use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use synth_music::{presets, render};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn analyze(path: &Path) -> analyzer_core::Analysis {
    Analyzer::new(AnalyzerConfig::default())
        .unwrap()
        .analyze_file(path, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn assert_128(path: &Path, codec: &str) {
    let a = analyze(path);
    assert!(
        (a.tempo.bpm - 128.0).abs() < 0.5,
        "{}: {}",
        path.display(),
        a.tempo.bpm
    );
    assert_eq!(a.audio.codec, codec, "{}", path.display());
    assert!(
        a.audio.duration_s > 7.5 && a.audio.duration_s < 8.5,
        "{}",
        a.audio.duration_s
    );
}

#[test]
fn mp3() {
    assert_128(&fixture("fourfloor-128.mp3"), "mp3");
}

#[test]
fn flac() {
    assert_128(&fixture("fourfloor-128.flac"), "flac");
}

#[test]
fn ogg_vorbis() {
    assert_128(&fixture("fourfloor-128.ogg"), "vorbis");
}

#[test]
fn aac_in_m4a() {
    assert_128(&fixture("fourfloor-128.m4a"), "aac");
}

#[test]
fn a_flac_file_named_mp3_is_decoded_as_flac() {
    assert_128(&fixture("flac-named-as.mp3"), "flac");
}

/// Writes the 128 BPM preset as WAV with the given sample format.
fn write_wav(path: &Path, bits: u16, float: bool) {
    let spec = presets::four_on_the_floor_128()
        .with_seconds(8.0)
        .with_sample_rate(22_050);
    let samples = render(&spec);
    let wav = hound::WavSpec {
        channels: spec.channels,
        sample_rate: spec.sample_rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut w = hound::WavWriter::create(path, wav).unwrap();
    for &s in &samples {
        if float {
            w.write_sample(s).unwrap();
        } else {
            let full = (1i64 << (bits - 1)) - 1;
            let v = (f64::from(s) * full as f64).round() as i64;
            match bits {
                8 => w.write_sample(v as i8).unwrap(),
                16 => w.write_sample(v as i16).unwrap(),
                _ => w.write_sample(v as i32).unwrap(),
            }
        }
    }
    w.finalize().unwrap();
}

#[test]
fn wav_in_every_pcm_width_and_float() {
    let dir = tempfile::tempdir().unwrap();
    for (bits, float, codec) in [
        (8, false, "pcm_u8"),
        (16, false, "pcm_s16le"),
        (24, false, "pcm_s24le"),
        (32, false, "pcm_s32le"),
        (32, true, "pcm_f32le"),
    ] {
        let path = dir.path().join(format!("t-{bits}-{float}.wav"));
        write_wav(&path, bits, float);
        let a = analyze(&path);
        assert!(
            (a.tempo.bpm - 128.0).abs() < 0.5,
            "{bits}-bit float={float}: {}",
            a.tempo.bpm
        );
        assert_eq!(a.audio.codec, codec);
        assert_eq!(a.audio.channels, 2);
        assert_eq!(a.audio.sample_rate, 22_050);
    }
}

/// The headers alone give the codec and about the length that decoding finds; the batch
/// runner schedules by it.
#[test]
fn probe_reads_codec_and_length_without_decoding() {
    for (name, codec) in [
        ("fourfloor-128.mp3", "mp3"),
        ("fourfloor-128.flac", "flac"),
        ("fourfloor-128.ogg", "vorbis"),
        ("fourfloor-128.m4a", "aac"),
        ("flac-named-as.mp3", "flac"),
    ] {
        let path = fixture(name);
        let probed = analyzer_core::decode::probe(&path).unwrap();
        assert_eq!(probed.codec, codec, "{name}");
        let decoded = analyze(&path).audio.duration_s;
        if let Some(seconds) = probed.duration_s {
            assert!(
                (seconds - decoded).abs() < 0.1,
                "{name}: {seconds} vs {decoded}"
            );
        } else {
            // Only an MP3 without a Xing/Info header may leave its length unsaid.
            assert_eq!(codec, "mp3", "{name}: no length in the headers");
        }
    }
    let err = analyzer_core::decode::probe(&fixture("no-such-file.wav")).unwrap_err();
    assert_eq!(err.kind(), analyzer_core::ErrorKind::Unreadable);
}
