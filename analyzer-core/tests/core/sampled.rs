//! Sampled analysis: a long file is read in a few segments reached by seeking. It must
//! give the tempo of the whole analysis on golden tracks, decode exactly the samples it
//! says it decodes, leave short files to the whole analysis bit for bit, and fall back to
//! the whole file (never past the end, never in a loop) where a seek cannot be trusted.

use std::fs;
use std::path::{Path, PathBuf};

use analyzer_core::decode::{Sampled, decode_mono, decode_mono_segments, segment_starts};
use analyzer_core::{Analysis, Analyzer, AnalyzerConfig, Sampling, StopSignal};
use synth_music::{TrackSpec, presets, render, write_flac, write_wav};

const THREE_BY_THIRTY: Sampling = Sampling {
    segments: 3,
    seconds: 30.0,
};

fn analyze(path: &Path, sampling: Option<Sampling>) -> Analysis {
    Analyzer::new(AnalyzerConfig::default().with_sampling(sampling))
        .unwrap()
        .analyze_file(path, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `spec` rendered to `seconds` of mono 22.05 kHz audio (light enough for a test) in `dir`.
pub(crate) fn long_file(dir: &Path, name: &str, spec: TrackSpec, seconds: f64) -> PathBuf {
    let spec = spec
        .with_seconds(seconds)
        .with_sample_rate(22_050)
        .with_channels(1);
    let samples = render(&spec);
    let path = dir.join(name);
    if name.ends_with(".flac") {
        write_flac(&path, &samples, spec.sample_rate, spec.channels).unwrap();
    } else {
        write_wav(&path, &samples, spec.sample_rate, spec.channels).unwrap();
    }
    path
}

#[test]
fn golden_tracks_keep_their_tempo_when_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("fourfloor.flac", presets::four_on_the_floor_128()),
        ("dnb.wav", presets::drum_and_bass_174()),
        ("hiphop.flac", presets::hiphop_90_swing()),
        ("waltz.wav", presets::waltz_3_4()),
    ];
    for (name, spec) in cases {
        let truth = spec.bpm;
        let path = long_file(dir.path(), name, spec, 150.0);
        let full = analyze(&path, None);
        for sampling in [
            Sampling::DEFAULT,
            THREE_BY_THIRTY,
            Sampling {
                segments: 1,
                seconds: 60.0,
            },
        ] {
            let sampled = analyze(&path, Some(sampling));
            assert!(
                sampled.warnings.is_empty(),
                "{name}: it was not sampled: {:?}",
                sampled.warnings
            );
            assert!(
                (sampled.tempo.as_ref().unwrap().bpm - truth).abs() < 0.5,
                "{name} {sampling:?}: truth {truth}, sampled {:.3}",
                sampled.tempo.as_ref().unwrap().bpm
            );
            assert!(
                (sampled.tempo.as_ref().unwrap().bpm - full.tempo.as_ref().unwrap().bpm).abs()
                    < 0.5,
                "{name}: full {:.3}, sampled {:.3}",
                full.tempo.as_ref().unwrap().bpm,
                sampled.tempo.as_ref().unwrap().bpm
            );
            // The row describes the file, not the part of it that was decoded.
            assert!((sampled.audio.duration_s - full.audio.duration_s).abs() < 0.1);
            assert_eq!(sampled.audio.codec, full.audio.codec);
        }
    }
}

/// Seeking, not decoding and discarding: each segment is exactly the stretch of the whole
/// decode that starts at its time, and only the segments are delivered.
#[test]
fn segments_are_the_samples_of_the_whole_decode_at_their_place() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["seek.wav", "seek.flac"] {
        let path = long_file(dir.path(), name, presets::four_on_the_floor_128(), 130.0);
        let mut whole = Vec::new();
        let info = decode_mono(&path, &StopSignal::never(), |mono, _| {
            whole.extend_from_slice(mono);
            Ok(())
        })
        .unwrap();
        let mut segments: Vec<Vec<f32>> = Vec::new();
        let outcome = decode_mono_segments(&path, &StopSignal::never(), 30.0, 3, |i, mono, _| {
            if segments.len() == i {
                segments.push(Vec::new());
            }
            segments[i].extend_from_slice(mono);
            Ok(())
        })
        .unwrap();
        let Sampled::Segments {
            info: sampled,
            duration_s,
        } = outcome
        else {
            panic!("{name}: not sampled: {outcome:?}");
        };
        assert!((duration_s - info.duration_s()).abs() < 0.1, "{name}");
        let rate = f64::from(info.sample_rate);
        let length = (30.0 * rate) as usize;
        assert_eq!(segments.len(), 3, "{name}");
        assert_eq!(sampled.frames, 3 * length as u64, "{name}");
        let starts = segment_starts(duration_s, 30.0, 3).unwrap();
        for (segment, start) in segments.iter().zip(starts) {
            assert_eq!(segment.len(), length, "{name}");
            let target = (start * rate).round() as usize;
            // The segment begins at its target, not at the start of the packet holding it
            // (a FLAC frame, a WAV packet): a WAV and a FLAC of the same audio give the
            // same segments, and so the same row.
            let found = (target.saturating_sub(16_384)..=target)
                .rev()
                .find(|&p| whole[p..p + length] == segment[..]);
            assert_eq!(found, Some(target), "{name}: segment at {start:.1} s");
        }
    }
}

/// The same audio as WAV and as FLAC gives the same sampled analysis: each segment starts
/// at its time, not at the start of the packet holding it (a FLAC frame of 4096 samples
/// against a WAV packet), which moved the tempo and key of real songs in their last digits.
#[test]
fn a_wav_and_a_flac_of_the_same_audio_give_the_same_sampled_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::hiphop_90_swing();
    // A whole number of the encoder's 4096-sample blocks: it pads the last one with
    // silence, and a longer file has its segments elsewhere.
    let seconds = (538 * 4096) as f64 / 22_050.0;
    let wav = analyze(
        &long_file(dir.path(), "same.wav", spec.clone(), seconds),
        Some(Sampling::DEFAULT),
    );
    let flac = analyze(
        &long_file(dir.path(), "same.flac", spec, seconds),
        Some(Sampling::DEFAULT),
    );
    assert_eq!(wav.audio.duration_s, flac.audio.duration_s);
    assert!(wav.warnings.is_empty(), "not sampled: {:?}", wav.warnings);
    assert_eq!((&wav.tempo, &wav.key), (&flac.tempo, &flac.key));
}

#[test]
fn the_default_samples_and_the_whole_analysis_is_one_setting_away() {
    assert_eq!(AnalyzerConfig::default().sampling, Some(Sampling::DEFAULT));
    let dir = tempfile::tempdir().unwrap();
    let path = long_file(
        dir.path(),
        "default.wav",
        presets::drum_and_bass_174(),
        90.0,
    );
    let sampled = analyze(&path, Some(Sampling::DEFAULT));
    let default = Analyzer::new(AnalyzerConfig::default())
        .unwrap()
        .analyze_file(&path, &StopSignal::never())
        .unwrap();
    assert_eq!(default, sampled);
    // 90 s is long enough for 4 x 15 s: the sampled estimate is its own.
    assert_ne!(default, analyze(&path, None));
}

#[test]
fn a_short_file_is_analysed_whole_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // 100 s is under (3 + 1) x 30 s: not worth sampling.
    let path = long_file(dir.path(), "short.flac", presets::hiphop_90_swing(), 100.0);
    assert_eq!(analyze(&path, Some(THREE_BY_THIRTY)), analyze(&path, None));
    assert_eq!(segment_starts(100.0, 30.0, 3), None);
    // Decoded whole, once, into segment 0: the samples of the plain decode.
    let mut whole = Vec::new();
    let info = decode_mono(&path, &StopSignal::never(), |mono, _| {
        whole.extend_from_slice(mono);
        Ok(())
    })
    .unwrap();
    let mut sampled = Vec::new();
    let outcome = decode_mono_segments(&path, &StopSignal::never(), 30.0, 3, |i, mono, _| {
        assert_eq!(i, 0);
        sampled.extend_from_slice(mono);
        Ok(())
    })
    .unwrap();
    assert_eq!(outcome, Sampled::Whole(info));
    assert!(sampled == whole);
    assert!(segment_starts(120.0, 30.0, 3).is_some());
}

/// A header that announces more than the file holds (a WAV cut short, a FLAC whose
/// STREAMINFO counts samples that are gone): the segment past the real end meets the end
/// of the stream, and the whole file is analysed instead, with a warning saying so.
#[test]
fn a_file_shorter_than_its_header_falls_back_to_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["cut.wav", "cut.flac"] {
        let path = long_file(dir.path(), name, presets::four_on_the_floor_128(), 160.0);
        let bytes = fs::read(&path).unwrap();
        // Header kept, audio cut at 55 %: the second segment (65..95 s) crosses the end.
        fs::write(&path, &bytes[..bytes.len() * 55 / 100]).unwrap();
        let outcome =
            decode_mono_segments(&path, &StopSignal::never(), 30.0, 3, |_, _, _| Ok(())).unwrap();
        let Sampled::Failed { reason } = &outcome else {
            panic!("{name}: {outcome:?}");
        };
        assert!(!reason.is_empty());
        let full = analyze(&path, None);
        let sampled = analyze(&path, Some(THREE_BY_THIRTY));
        assert_eq!(sampled.tempo, full.tempo, "{name}");
        assert_eq!(sampled.audio, full.audio, "{name}");
        assert!(sampled.audio.duration_s < 100.0, "{name}");
        let note = sampled.warnings.last().unwrap();
        assert!(
            note.starts_with("sampling was not possible (") && note.contains("whole file"),
            "{name}: {note}"
        );
        assert_eq!(
            sampled.warnings[..sampled.warnings.len() - 1],
            full.warnings[..]
        );
    }
}

/// A WAV whose data chunk claims far more than the file holds (a header that lies
/// outright): the first seek already lands past the end; the whole (real) file is used.
#[test]
fn a_wav_with_a_lying_length_still_gives_a_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = long_file(dir.path(), "lying.wav", presets::drum_and_bass_174(), 40.0);
    let mut bytes = fs::read(&path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap();
    let claimed = 22_050u32 * 2 * 600; // ten minutes of 16-bit mono
    bytes[data + 4..data + 8].copy_from_slice(&claimed.to_le_bytes());
    let riff = claimed + data as u32; // what the RIFF chunk would hold after its 8-byte header
    bytes[4..8].copy_from_slice(&riff.to_le_bytes());
    fs::write(&path, &bytes).unwrap();
    let sampled = analyze(&path, Some(THREE_BY_THIRTY));
    assert!(
        (sampled.tempo.as_ref().unwrap().bpm - 174.0).abs() < 0.5,
        "{}",
        sampled.tempo.as_ref().unwrap().bpm
    );
    assert!(
        sampled.audio.duration_s < 41.0,
        "{}",
        sampled.audio.duration_s
    );
    assert!(
        sampled
            .warnings
            .iter()
            .any(|w| w.starts_with("sampling was not possible")),
        "{:?}",
        sampled.warnings
    );
}

#[test]
fn the_same_file_gives_the_same_sampled_result() {
    let dir = tempfile::tempdir().unwrap();
    let path = long_file(dir.path(), "again.flac", presets::waltz_3_4(), 130.0);
    let first = analyze(&path, Some(THREE_BY_THIRTY));
    assert_eq!(first, analyze(&path, Some(THREE_BY_THIRTY)));
}

/// With loudness on, the segments are cut from the one whole decode instead of reached by
/// seeking. A FLAC whose frames are numbered from 500 (a stream cut out of a longer one
/// keeps its numbers) had its segments cut from its first frames, all four from the same
/// place and without a word, while the seeking decode saw its seek land elsewhere and
/// analysed the file whole with a note: the tempo and key differed with the loudness.
/// Both paths now analyse it whole and say why; numbered from 0 it is sampled.
#[test]
fn a_flac_timed_from_past_zero_reads_the_same_with_or_without_loudness() {
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::four_on_the_floor_128()
        .with_seconds(120.0)
        .with_sample_rate(22_050)
        .with_channels(1);
    let samples = render(&spec);
    let run = |path: &Path, loudness: bool, sampling: Option<Sampling>| {
        Analyzer::new(
            AnalyzerConfig::default()
                .with_loudness(loudness)
                .with_sampling(sampling),
        )
        .unwrap()
        .analyze_file(path, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"))
    };
    for first_frame in [0, 500] {
        let path = dir.path().join(format!("from-{first_frame}.flac"));
        fs::write(&path, flac_numbered_from(&samples, 22_050, first_frame)).unwrap();
        let seeking = run(&path, false, Some(Sampling::DEFAULT));
        let cutting = run(&path, true, Some(Sampling::DEFAULT));
        let whole = run(&path, false, None);
        let tempo = |a: &Analysis| {
            let t = a.tempo.as_ref().unwrap();
            (t.bpm, t.confidence)
        };
        assert_eq!(tempo(&seeking), tempo(&cutting), "from frame {first_frame}");
        assert_eq!(seeking.key, cutting.key, "from frame {first_frame}");
        assert!(
            (tempo(&cutting).0 - 128.0).abs() < 0.5,
            "{:?}",
            tempo(&cutting)
        );
        let noted = |a: &Analysis| {
            a.warnings
                .iter()
                .any(|w| w.starts_with("sampling was not possible ("))
        };
        if first_frame == 0 {
            assert!(
                !noted(&seeking) && !noted(&cutting),
                "{:?}",
                cutting.warnings
            );
        } else {
            assert!(noted(&seeking), "{:?}", seeking.warnings);
            assert!(
                cutting
                    .warnings
                    .iter()
                    .any(|w| w
                        .contains("segment 1 (from 16.5 s) begins in a packet timed at 92.9 s")),
                "{:?}",
                cutting.warnings
            );
            assert_eq!(tempo(&cutting), tempo(&whole));
            assert_eq!(cutting.key, whole.key);
        }
    }
}

/// Mono `samples` as a 16-bit FLAC of verbatim frames of 4096 samples at `rate` (22.05
/// kHz), the frames numbered from `first_frame` (below 0xD800: plain UTF-8).
fn flac_numbered_from(samples: &[f32], rate: u32, first_frame: u32) -> Vec<u8> {
    use crate::errors::crc;
    assert_eq!(rate, 22_050, "the frame header codes 22.05 kHz");
    let block = 4096;
    let frames = samples.len().div_ceil(block);
    let mut flac = b"fLaC".to_vec();
    // A last STREAMINFO block: block sizes, frame sizes unknown, the rate, 1 channel,
    // 16 bits, the total sample count, no MD5.
    flac.extend([0x80, 0, 0, 34]);
    flac.extend((block as u16).to_be_bytes());
    flac.extend((block as u16).to_be_bytes());
    flac.extend([0; 6]);
    let total = (frames * block) as u64;
    let packed = (u64::from(rate) << 44) | (15 << 36) | total;
    flac.extend(packed.to_be_bytes());
    flac.extend([0; 16]);
    for n in 0..frames {
        // Fixed block size, its size in 16 bits after the number, 22.05 kHz; mono, 16
        // bits; the number; the block size minus one.
        let mut frame = vec![0xFF, 0xF8, 0x76, 0x08];
        let mut utf8 = [0; 4];
        let number = char::from_u32(first_frame + n as u32).unwrap();
        frame.extend(number.encode_utf8(&mut utf8).as_bytes());
        frame.extend(((block - 1) as u16).to_be_bytes());
        frame.push(crc(&frame, 8, 0x07) as u8);
        // A verbatim subframe (type 1), no wasted bits.
        frame.push(0x02);
        for i in n * block..(n + 1) * block {
            let x = samples.get(i).copied().unwrap_or(0.0);
            let pcm = (x.clamp(-1.0, 1.0) * 32_767.0).round() as i16;
            frame.extend(pcm.to_be_bytes());
        }
        frame.extend((crc(&frame, 16, 0x8005) as u16).to_be_bytes());
        flac.extend(frame);
    }
    flac
}
