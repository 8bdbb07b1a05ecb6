//! Loudness: the EBU Tech 3341 cases synthesised here read what the standard says they
//! read, the channels are measured before the mono mix, an album is gated over all its
//! blocks, and asking for loudness leaves the tempo and key of a sampled analysis as they
//! were (bit for bit where the codec decodes each packet on its own).

use std::f64::consts::PI;
use std::path::Path;

use analyzer_core::loudness::{AlbumLoudness, Loudness, LoudnessMeter};
use analyzer_core::{Analysis, Analyzer, AnalyzerConfig, Sampling, StopSignal};
use synth_music::{presets, write_wav};

use crate::sampled::long_file;

const RATE: u32 = 48_000;

/// `seconds` of a sine of `hz` at `dbfs` (peak), with `phase` in radians, on both channels
/// of interleaved stereo at 48 kHz.
fn stereo_sine(hz: f64, dbfs: f64, seconds: f64, phase: f64) -> Vec<f32> {
    let amplitude = 10f64.powf(dbfs / 20.0);
    let frames = (seconds * f64::from(RATE)).round() as usize;
    (0..frames)
        .flat_map(|i| {
            let s = (amplitude * (2.0 * PI * hz * i as f64 / f64::from(RATE) + phase).sin()) as f32;
            [s, s]
        })
        .collect()
}

fn measure(interleaved: &[f32]) -> Loudness {
    let mut meter = LoudnessMeter::new(2, RATE).unwrap();
    // Packets of a decoder's size, so that the 100 ms steps straddle them.
    for packet in interleaved.chunks(2 * 1152) {
        meter.push(packet).unwrap();
    }
    meter.finish().unwrap()
}

fn assert_near(got: f64, want: f64, tolerance: f64, what: &str) {
    assert!(
        (got - want).abs() <= tolerance,
        "{what}: {got} is not within {tolerance} of {want}"
    );
}

/// EBU Tech 3341, cases 1 and 2: a 1 kHz stereo sine at -23 and -33 dBFS for 20 s.
#[test]
fn tech_3341_steady_sines_read_their_level() {
    for level in [-23.0, -33.0] {
        let loudness = measure(&stereo_sine(1000.0, level, 20.0, 0.0));
        assert_near(loudness.integrated_lufs.unwrap(), level, 0.1, "integrated");
        assert_near(
            loudness.track_gain_db().unwrap(),
            -18.0 - level,
            0.1,
            "gain",
        );
        assert_near(loudness.range_lu, 0.0, 0.1, "a steady tone has no range");
    }
}

/// EBU Tech 3341, cases 3 and 4: -36, -23 and -36 dBFS for 10, 60 and 10 s: the relative
/// gate leaves the quiet stretches out.
#[test]
fn tech_3341_the_relative_gate_leaves_quiet_stretches_out() {
    let mut audio = stereo_sine(1000.0, -36.0, 10.0, 0.0);
    audio.extend(stereo_sine(1000.0, -23.0, 60.0, 0.0));
    audio.extend(stereo_sine(1000.0, -36.0, 10.0, 0.0));
    let loudness = measure(&audio);
    assert_near(loudness.integrated_lufs.unwrap(), -23.0, 0.1, "integrated");
}

/// EBU Tech 3341, case 15: a sine at a quarter of the sample rate with a 45 degree phase
/// has samples at 0.707 of its peak; the true peak (within +0.2/-0.4 dB) is the peak.
#[test]
fn tech_3341_true_peak_finds_the_peak_between_samples() {
    let audio = stereo_sine(12_000.0, -6.0, 2.0, PI / 4.0);
    let sample_peak = audio.iter().fold(0.0f32, |m, s| m.max(s.abs()));
    assert_near(
        20.0 * f64::from(sample_peak).log10(),
        -9.01,
        0.05,
        "sample peak",
    );
    let true_peak = measure(&audio).true_peak_dbtp().unwrap();
    assert!((-6.4..=-5.8).contains(&true_peak), "{true_peak} dBTP");
}

/// A cosine at the Nyquist frequency (samples +0.5, -0.5, ...) has a true peak of 0.5
/// (-6.02 dBTP) and the 4x interpolator reads that once the tone is under way; where it
/// starts from silence, the step into it rings in the interpolated phases (an
/// interpolator's response to a full-scale jump at the Nyquist frequency) and the reading
/// is -4.66 dBTP. Inherent to 4x FIR interpolation, not to our coefficients: BS.1770-4's own
/// Annex 2 filter reads -4.50 there (and -6.81 once under way). The 997 Hz sine at -3 dBFS
/// reads its peak. See docs/loudness.md, "True peak at the Nyquist frequency".
#[test]
fn true_peak_of_a_nyquist_cosine_and_a_sine() {
    let nyquist = |fade_in_frames: usize| -> Vec<f32> {
        (0..2 * RATE as usize)
            .flat_map(|i| {
                let gain = (i as f64 / fade_in_frames.max(1) as f64).min(1.0);
                let s = (0.5 * gain * if i % 2 == 0 { 1.0 } else { -1.0 }) as f32;
                [s, s]
            })
            .collect()
    };
    let true_peak = |audio: &[f32]| measure(audio).true_peak_dbtp().unwrap();
    assert_near(true_peak(&nyquist(4_800)), -6.02, 0.01, "faded in");
    assert_near(true_peak(&nyquist(0)), -4.66, 0.01, "from silence at once");
    assert_near(
        true_peak(&stereo_sine(997.0, -3.0, 2.0, 0.0)),
        -3.0,
        0.1,
        "997 Hz sine",
    );
}

/// A loud track and a quiet one: the album is gated over all blocks of both, so the quiet
/// one falls under the relative gate and the album reads the loud one's level, far from
/// the mean of the two tracks' values. Gating the blocks of both equals metering the two
/// played one after the other (but for the three blocks that straddle the join).
#[test]
fn album_gain_is_gated_over_all_blocks_not_the_mean_of_tracks() {
    let loud = stereo_sine(1000.0, -13.0, 20.0, 0.0);
    let quiet = stereo_sine(1000.0, -30.0, 20.0, 0.0);
    let tracks = [measure(&loud), measure(&quiet)];
    let album = AlbumLoudness::of_tracks(&tracks);
    let mean: f64 = tracks
        .iter()
        .map(|t| t.integrated_lufs.unwrap())
        .sum::<f64>()
        / 2.0;
    assert_near(mean, -21.5, 0.1, "mean of the tracks");
    assert_near(album.integrated_lufs.unwrap(), -13.0, 0.1, "album");
    assert_near(album.gain_db().unwrap(), -5.0, 0.1, "album gain");
    let played_together = measure(&[loud, quiet].concat());
    assert_near(
        album.integrated_lufs.unwrap(),
        played_together.integrated_lufs.unwrap(),
        0.05,
        "the two tracks as one programme",
    );
    assert_eq!(album.true_peak, tracks[0].true_peak);
}

fn analyzer(sampling: Option<Sampling>, loudness: bool) -> Analyzer {
    Analyzer::new(
        AnalyzerConfig::default()
            .with_sampling(sampling)
            .with_loudness(loudness),
    )
    .unwrap()
}

fn analyze(analyzer: &Analyzer, path: &Path) -> Analysis {
    analyzer
        .analyze_file(path, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A 1 kHz stereo sine at `dbfs`, on for 200 ms and off for 200 ms, for 20 s: a pulse at
/// 150 BPM for the tempo, and every 400 ms gating block holds one period, so the file reads
/// 3 dB under the steady sine's level.
fn pulsed_sine(dbfs: f64) -> Vec<f32> {
    let mut audio = stereo_sine(1000.0, dbfs, 20.0, 0.0);
    let period = (0.4 * f64::from(RATE)) as usize;
    for (frame, samples) in audio.chunks_mut(2).enumerate() {
        if frame % period >= period / 2 {
            samples.fill(0.0);
        }
    }
    audio
}

/// The file is measured channel by channel before the mono mix: a sine on the left channel
/// alone reads 3 dB under the same sine on both (BS.1770 sums the channels' energies),
/// where a mono mix would read 6 dB under.
#[test]
fn a_file_is_measured_before_the_mono_mix() {
    let dir = tempfile::tempdir().unwrap();
    let both = pulsed_sine(-23.0);
    let left: Vec<f32> = both.chunks(2).flat_map(|frame| [frame[0], 0.0]).collect();
    let measured = |name: &str, samples: &[f32]| {
        let path = dir.path().join(name);
        write_wav(&path, samples, RATE, 2).unwrap();
        let analysis = analyze(&analyzer(Some(Sampling::DEFAULT), true), &path);
        analysis.loudness.unwrap().integrated_lufs.unwrap()
    };
    assert_near(measured("both.wav", &both), -26.01, 0.1, "both channels");
    assert_near(measured("left.wav", &left), -29.02, 0.1, "the left channel");
    let plain = analyze(
        &analyzer(Some(Sampling::DEFAULT), false),
        &dir.path().join("both.wav"),
    );
    assert_eq!(plain.loudness, None, "loudness only when asked for");
}

/// Every channel of a file with more than six is counted, each with its BS.1770 weight
/// from the speaker positions the file gives (as ffmpeg's ebur128 filter weighs them): a
/// WAV of 11 channels (FL FR FC LFE BL BR FLC FRC BC SL SR) with one pulsed sine on one
/// channel reads the same on the front left and the front left-of-centre, 1.5 dB more on
/// the side left (weight 1.41), and nothing on the low-frequency effects.
#[test]
fn every_channel_of_a_surround_file_counts_with_its_weight() {
    const CHANNELS: usize = 11;
    let dir = tempfile::tempdir().unwrap();
    let sine = pulsed_sine(-23.0);
    let measured = |channel: usize| {
        let samples: Vec<f32> = sine
            .chunks(2)
            .flat_map(|frame| {
                let mut out = [0.0f32; CHANNELS];
                out[channel] = frame[0];
                out
            })
            .collect();
        let path = dir.path().join(format!("on-{channel}.wav"));
        write_wav(&path, &samples, RATE, CHANNELS as u16).unwrap();
        let analysis = analyze(&analyzer(None, true), &path);
        assert_eq!(analysis.audio.channels, CHANNELS as u16);
        analysis.loudness.unwrap().integrated_lufs
    };
    let front_left = measured(0).unwrap();
    assert_near(front_left, -29.02, 0.1, "front left");
    let left_of_centre = measured(6).expect("a seventh channel is heard");
    assert_near(left_of_centre, front_left, 0.01, "front left of centre");
    let side_left = measured(9).expect("a side channel is heard");
    assert_near(
        side_left - front_left,
        1.49,
        0.02,
        "side left over front left",
    );
    assert_eq!(measured(3), None, "the LFE channel is not counted");
}

/// `interleaved` 16-bit samples of `channels` channels as a plain PCM WAV (format tag 1, no
/// channel mask), as Python's `wave` module and many tools write files of any channel count.
fn write_plain_wav(path: &Path, interleaved: &[f32], channels: u16) {
    let data: Vec<u8> = interleaved
        .iter()
        .flat_map(|&s| {
            ((f64::from(s) * 32767.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes()
        })
        .collect();
    let block = 2 * u32::from(channels);
    let mut bytes = b"RIFF".to_vec();
    bytes.extend((36 + data.len() as u32).to_le_bytes());
    bytes.extend(b"WAVEfmt ");
    bytes.extend(16u32.to_le_bytes());
    bytes.extend(1u16.to_le_bytes());
    bytes.extend(channels.to_le_bytes());
    bytes.extend(RATE.to_le_bytes());
    bytes.extend((RATE * block).to_le_bytes());
    bytes.extend((block as u16).to_le_bytes());
    bytes.extend(16u16.to_le_bytes());
    bytes.extend(b"data");
    bytes.extend((data.len() as u32).to_le_bytes());
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// A plain WAV of more than two channels names no speaker positions; it is weighed as
/// ffmpeg lays such a file out (its default layout for the count: 2.1, 4.0, 5.0, 5.1, 6.1,
/// 7.1), not as the first positions of a WAV channel mask, which made channel 4 an LFE
/// channel (a 4-channel file with its music there read as silence) and channels 7 and 8
/// front ones (1.5 LU under ffmpeg). The pulsed sine of [`pulsed_sine`] on one channel;
/// the expected values are ffmpeg 5.1's, for the same files:
/// `ffmpeg -nostats -i F -af ebur128 -f null - 2>&1 | grep -A1 Integrated`.
#[test]
fn a_plain_wav_of_many_channels_is_weighed_as_ffmpeg_lays_it_out() {
    // (channels, the channel holding the sine, ffmpeg's integrated loudness).
    const FFMPEG: [(usize, usize, Option<f64>); 8] = [
        (3, 2, None),        // 2.1: the LFE
        (4, 3, Some(-27.5)), // 4.0: back centre
        (5, 3, Some(-27.5)), // 5.0: back left
        (6, 3, None),        // 5.1: the LFE
        (6, 5, Some(-27.5)), // 5.1: back right
        (7, 6, Some(-27.5)), // 6.1: side right
        (8, 7, Some(-27.5)), // 7.1: side right
        (8, 0, Some(-29.0)), // 7.1: front left
    ];
    let dir = tempfile::tempdir().unwrap();
    let sine = pulsed_sine(-23.0);
    for (channels, channel, ffmpeg) in FFMPEG {
        let samples: Vec<f32> = sine
            .chunks(2)
            .flat_map(|frame| {
                let mut out = vec![0.0f32; channels];
                out[channel] = frame[0];
                out
            })
            .collect();
        let path = dir.path().join(format!("{channels}-on-{channel}.wav"));
        write_plain_wav(&path, &samples, channels as u16);
        let analysis = analyze(&analyzer(None, true), &path);
        let ours = analysis.loudness.unwrap().integrated_lufs;
        let what = format!("{channels} channels, the sine on channel {}", channel + 1);
        match (ours, ffmpeg) {
            (Some(ours), Some(ffmpeg)) => assert_near(ours, ffmpeg, 0.1, &what),
            (None, None) => {}
            _ => panic!("{what}: ours {ours:?}, ffmpeg's {ffmpeg:?}"),
        }
    }
}

/// Analyses `path` with and without loudness under `sampling` and fails unless the two
/// analyses are the same but for the loudness, and the loudness was measured.
fn assert_loudness_changes_nothing_else(path: &Path, sampling: Option<Sampling>) {
    let plain = analyze(&analyzer(sampling, false), path);
    let measured = analyze(&analyzer(sampling, true), path);
    let loudness = measured.loudness.clone().unwrap();
    assert!(loudness.integrated_lufs.is_some(), "{}", path.display());
    assert_eq!(
        Analysis {
            loudness: None,
            ..measured
        },
        plain,
        "{} {sampling:?}",
        path.display()
    );
}

/// Loudness decodes a sampled file whole and cuts the segments from that decode: for PCM
/// and FLAC, whose packets decode on their own, the tempo, key and audio facts are those of
/// the seeking analysis bit for bit.
#[test]
fn loudness_leaves_a_sampled_analysis_bit_identical_for_wav_and_flac() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["long.wav", "long.flac"] {
        let path = long_file(dir.path(), name, presets::four_on_the_floor_128(), 100.0);
        for sampling in [
            Sampling::DEFAULT,
            Sampling {
                segments: 3,
                seconds: 20.0,
            },
        ] {
            assert_loudness_changes_nothing_else(&path, Some(sampling));
        }
    }
}

/// A file analysed whole (too short to sample, or sampling off) gives the same tempo and
/// key with loudness, in every format.
#[test]
fn loudness_leaves_a_whole_analysis_bit_identical_in_every_format() {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    for name in [
        "fourfloor-128.mp3",
        "fourfloor-128.flac",
        "fourfloor-128.ogg",
        "fourfloor-128.m4a",
    ] {
        for sampling in [None, Some(Sampling::DEFAULT)] {
            assert_loudness_changes_nothing_else(&fixtures.join(name), sampling);
        }
    }
}
