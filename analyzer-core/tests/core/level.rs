//! Odd but valid levels and mixes: channels that cancel in the mono mix-down, content too
//! quiet to hear, and music surrounded by long silence. Each reads as the music it holds,
//! or says that there is nothing to hear, never a confident tempo of residue.

use std::path::{Path, PathBuf};

use analyzer_core::{Analysis, Analyzer, AnalyzerConfig, ErrorKind, Sampling, StopSignal};
use synth_music::{presets, render, write_wav};

use crate::pulse::assert_no_pulse;

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

/// Writes interleaved `samples` as 32-bit float WAV (no rounding to 16 bits).
fn write_float_wav(path: &Path, samples: &[f32], rate: u32, channels: u16) {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for &s in samples {
        writer.write_sample(s).unwrap();
    }
    writer.finalize().unwrap();
}

fn stereo(left: &[f32], right: &[f32]) -> Vec<f32> {
    left.iter().zip(right).flat_map(|(&l, &r)| [l, r]).collect()
}

fn wav(dir: &Path, name: &str, samples: &[f32], channels: u16) -> PathBuf {
    let path = dir.join(name);
    write_wav(&path, samples, RATE, channels).unwrap();
    path
}

/// Mono 32-bit float: levels far down are not rounding noise.
fn wav_float(dir: &Path, name: &str, samples: &[f32]) -> PathBuf {
    let path = dir.join(name);
    write_float_wav(&path, samples, RATE, 1);
    path
}

fn bpm(analysis: &Analysis) -> f64 {
    match &analysis.tempo {
        Ok(tempo) => tempo.bpm,
        Err(e) => panic!("no tempo: {e}"),
    }
}

fn no_pulse_reason(analysis: &Analysis) -> String {
    let e = analysis.tempo.as_ref().expect_err("no pulse");
    assert_eq!(e.kind(), ErrorKind::NoPulse, "{e}");
    e.to_string()
}

fn key_name(analysis: &Analysis) -> String {
    match analysis.key.as_ref().expect("asked for") {
        Ok(key) => key.key.to_string(),
        Err(e) => panic!("no key: {e}"),
    }
}

fn no_key_reason(analysis: &Analysis) -> String {
    analysis
        .key
        .as_ref()
        .expect("asked for")
        .as_ref()
        .expect_err("no key")
        .reason
        .clone()
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

/// A 21.95 kHz tone in a 44.1 kHz file leaves only the resampler's residue at the analysis
/// rate; it read as 93.75 BPM at confidence 0.88. Nothing there is heard: `no_pulse` and no
/// key, saying it is too quiet (it is not digital silence).
#[test]
fn an_ultrasonic_tone_is_too_quiet_to_analyse() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100;
    let tone: Vec<f32> = (0..rate as usize * 20)
        .map(|i| 0.5 * (std::f64::consts::TAU * 21_950.0 * i as f64 / f64::from(rate)).cos() as f32)
        .collect();
    let path = dir.path().join("ultrasonic.wav");
    write_float_wav(&path, &tone, rate, 1);
    let analysis = analyze(&path, None);
    let reason = no_pulse_reason(&analysis);
    assert!(reason.contains("too quiet to hear"), "{reason}");
    assert!(!reason.contains("silence"), "{reason}");
    assert!(no_key_reason(&analysis).contains("too quiet to hear"));
}

/// Music 80 dB down (in float, so not rounding noise) is too quiet to hear; 40 dB down (in
/// 16 bits) and 60 dB down (in float: under the loudness gate, where a floor at the gate
/// took it for inaudible, tempo and key both) it is quiet but heard, and keeps the tempo
/// and key it has at full level.
#[test]
fn music_under_the_floor_is_too_quiet_and_over_it_is_music() {
    let dir = tempfile::tempdir().unwrap();
    let m = music(20.0);
    let down = |db: f32| -> Vec<f32> { m.iter().map(|s| s * 10f32.powf(db / 20.0)).collect() };
    let full = analyze(&wav(dir.path(), "full.wav", &m, 1), None);
    let quiet = analyze(&wav(dir.path(), "quiet.wav", &down(-40.0), 1), None);
    assert!((bpm(&quiet) - bpm(&full)).abs() < 0.5, "{:?}", quiet.tempo);
    assert_eq!(key_name(&quiet), key_name(&full));
    let quieter = analyze(&wav_float(dir.path(), "quieter.wav", &down(-60.0)), None);
    assert!(
        (bpm(&quieter) - bpm(&full)).abs() < 0.5,
        "{:?}",
        quieter.tempo
    );
    assert_eq!(key_name(&quieter), key_name(&full));
    let inaudible = analyze(&wav_float(dir.path(), "inaudible.wav", &down(-80.0)), None);
    assert!(no_pulse_reason(&inaudible).contains("too quiet to hear"));
    assert!(no_key_reason(&inaudible).contains("too quiet to hear"));
}

/// Digital silence keeps the reasons it always had.
#[test]
fn digital_silence_is_still_silence() {
    let dir = tempfile::tempdir().unwrap();
    let analysis = analyze(
        &wav(dir.path(), "zeros.wav", &vec![0.0; RATE as usize * 10], 1),
        None,
    );
    let reason = no_pulse_reason(&analysis);
    assert!(reason.contains("no onsets: silence"), "{reason}");
    assert!(no_key_reason(&analysis).contains("no pitched sound in 100 %"));
}

/// 20 s of music followed by 200 s of digital silence: the share of pitched frames was
/// taken over all of it (9 %), under the 10 % a key needs, and the music lost its key.
#[test]
fn trailing_silence_keeps_the_key_of_the_music() {
    let dir = tempfile::tempdir().unwrap();
    let m = music(20.0);
    let alone = analyze(&wav(dir.path(), "alone.wav", &m, 1), None);
    let mut padded = m.clone();
    padded.resize(m.len() + RATE as usize * 200, 0.0);
    let analysis = analyze(&wav(dir.path(), "padded.wav", &padded, 1), None);
    assert_eq!(key_name(&analysis), key_name(&alone));
}

/// 90 s of silence, 20 s of music, 90 s of silence: every sampled segment fell in the
/// silence and the file read as `no_pulse: no onsets`, while a whole analysis finds the
/// music's tempo. The whole file is now read before it is said to have no pulse.
#[test]
fn music_between_the_sampled_segments_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let silence = vec![0.0f32; RATE as usize * 90];
    let samples = [&silence[..], &music(20.0), &silence[..]].concat();
    let path = wav(dir.path(), "hidden.wav", &samples, 1);
    let sampled = analyze(&path, Some(Sampling::DEFAULT));
    let whole = analyze(&path, None);
    assert!((bpm(&sampled) - 128.0).abs() < 1.0, "{:?}", sampled.tempo);
    assert_eq!(sampled.tempo, whole.tempo);
    assert_eq!(sampled.key, whole.key);
    assert!(
        sampled
            .warnings
            .iter()
            .any(|w| w.contains("every sampled segment is silent")),
        "{:?}",
        sampled.warnings
    );
    // Music in a sampled segment is read from the segments alone, as before.
    let loud = [&music(200.0)[..]].concat();
    let loud_path = wav(dir.path(), "loud.wav", &loud, 1);
    assert!(
        analyze(&loud_path, Some(Sampling::DEFAULT))
            .warnings
            .is_empty()
    );
}

/// Five hours of digital silence (a sparse file: no disk is used) keeps the sampled
/// verdict: past the decode's free two hours a whole read is not the fallback (a FLAC of
/// hours of silence read whole ran into the decompression-bomb limit and lost its row).
#[test]
fn a_silent_file_past_the_free_allowance_keeps_the_sampled_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("five-hours.wav");
    let (rate, seconds) = (8_000u32, 5 * 3_600u32);
    let data = rate * seconds * 2;
    let mut header = Vec::new();
    header.extend(b"RIFF");
    header.extend((36 + data).to_le_bytes());
    header.extend(b"WAVEfmt ");
    header.extend(16u32.to_le_bytes());
    header.extend(1u16.to_le_bytes()); // PCM
    header.extend(1u16.to_le_bytes()); // mono
    header.extend(rate.to_le_bytes());
    header.extend((rate * 2).to_le_bytes());
    header.extend(2u16.to_le_bytes());
    header.extend(16u16.to_le_bytes());
    header.extend(b"data");
    header.extend(data.to_le_bytes());
    std::fs::write(&path, &header).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(u64::from(36 + data + 8))
        .unwrap();
    let sampled = analyze(&path, Some(Sampling::DEFAULT));
    assert!(
        no_pulse_reason(&sampled).contains("no onsets: silence"),
        "{:?}",
        sampled.tempo
    );
    assert!(sampled.warnings.is_empty(), "{:?}", sampled.warnings);
}

/// A loud chord of 1.5 s, shorter than the 2 s the level rule counts: it lost its key as
/// "too quiet to hear" while its loudness read -10 LUFS. Heard now, it has a key, and its
/// tempo is still too short to tell.
#[test]
fn a_short_loud_chord_is_heard() {
    let dir = tempfile::tempdir().unwrap();
    let chord: Vec<f32> = (0..(f64::from(RATE) * 1.5) as usize)
        .map(|i| {
            let t = i as f64 / f64::from(RATE);
            [261.63, 329.63, 392.0]
                .iter()
                .map(|f| 0.25 * (std::f64::consts::TAU * f * t).sin())
                .sum::<f64>() as f32
        })
        .collect();
    let analysis = analyze(&wav(dir.path(), "chord.wav", &chord, 1), None);
    let key = key_name(&analysis);
    assert!(key.starts_with('C') || key.starts_with('A'), "{key}");
    let e = analysis.tempo.as_ref().expect_err("too short");
    assert_eq!(e.kind(), ErrorKind::TooShort, "{e}");
}

/// The tempo does not move with the gain: the same music 25 and 40 dB down reads the same
/// tempo with the same confidence. With a fixed log compression a quiet file fell into its
/// linear part: the confidence sank with the level, and a real song read at half tempo
/// 25 dB down (178 BPM as 89).
#[test]
fn the_tempo_does_not_move_with_the_gain() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let loud = music(30.0);
    let at = |db: f32| {
        let gain = 10f32.powf(db / 20.0);
        let quiet: Vec<f32> = loud.iter().map(|s| s * gain).collect();
        analyzer.analyze_samples(&quiet, RATE, 1).unwrap()
    };
    let reference = at(0.0);
    for db in [-25.0, -40.0] {
        assert_same_tempo(&at(db), &reference, 0.005, &format!("{db} dB"));
    }
}

/// Asserts that `read` is the tempo of `reference`: within 0.01 BPM, and its confidence
/// within `confidence`.
fn assert_same_tempo(
    read: &analyzer_core::TempoEstimate,
    reference: &analyzer_core::TempoEstimate,
    confidence: f64,
    what: &str,
) {
    assert!(
        (read.bpm - reference.bpm).abs() < 0.01
            && (read.confidence - reference.confidence).abs() < confidence,
        "{what}: {} BPM ({}) against {} BPM ({})",
        read.bpm,
        read.confidence,
        reference.bpm,
        reference.confidence
    );
}

/// A DC offset is no sound: music 20 dB down with an offset of 0.3 reads the tempo of the
/// same music without it. The offset lies in no band of the onset stage, yet its power
/// counted in the level that sets each block's scale, and scaled the music down into the
/// log compression's linear part (a 178 BPM song read 89).
#[test]
fn a_dc_offset_does_not_move_the_tempo() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let quiet: Vec<f32> = music(30.0).iter().map(|s| 0.1 * s).collect();
    let offset: Vec<f32> = quiet.iter().map(|s| s + 0.3).collect();
    let plain = analyzer.analyze_samples(&quiet, RATE, 1).unwrap();
    let shifted = analyzer.analyze_samples(&offset, RATE, 1).unwrap();
    assert_same_tempo(&shifted, &plain, 0.002, "with the offset of 0.3");
}

/// A song with a minute of silence after it: the sampled segments that fall in the
/// silence stood for a quarter or more of the song, and a flat envelope pulled real songs
/// to half tempo (178 BPM read 89, 220 read 110 at confidence 0.98). A sampled file with a
/// silent segment is read whole, as `--full` reads it, and says why.
#[test]
fn a_silent_sampled_segment_sends_the_file_to_a_whole_analysis() {
    let dir = tempfile::tempdir().unwrap();
    let silence = vec![0.0f32; RATE as usize * 60];
    let samples = [&music(45.0)[..], &silence[..]].concat();
    let path = wav(dir.path(), "then-silence.wav", &samples, 1);
    let sampled = analyze(&path, Some(Sampling::DEFAULT));
    let whole = analyze(&path, None);
    assert_eq!(sampled.tempo, whole.tempo);
    assert_eq!(sampled.key, whole.key);
    assert!(
        sampled.warnings.iter().any(|w| w
            == "2 sampled segments of 4 are silent or too quiet to hear; the whole file was \
                analysed"),
        "{:?}",
        sampled.warnings
    );
}

/// Hiss after a song (a minute of room tone or tape noise, 45 dB under the music): each
/// block of the onset stage is scaled by its own level, so the hiss was lifted like music,
/// and with `--full` as with the default it pulled real songs to half or double tempo (6 of
/// 95). A block far quieter than the file's loudest has its say turned down in proportion.
#[test]
fn hiss_after_a_song_keeps_its_tempo() {
    use synth_music::pulse_cases::{NoiseColour, noise};
    let dir = tempfile::tempdir().unwrap();
    for (name, spec) in [
        ("tempo_200", presets::tempo_200()),
        ("waltz", presets::waltz_3_4()),
        ("hiphop", presets::hiphop_90_swing()),
        ("dnb", presets::drum_and_bass_174()),
    ] {
        let truth = spec.bpm;
        let song = render(
            &spec
                .with_seconds(45.0)
                .with_sample_rate(RATE)
                .with_channels(1),
        );
        let rms = |x: &[f32]| (x.iter().map(|s| s * s).sum::<f32>() / x.len() as f32).sqrt();
        let mut hiss = noise(NoiseColour::White, 3, 60.0, RATE);
        let gain = rms(&song) * 10f32.powf(-45.0 / 20.0) / rms(&hiss);
        hiss.iter_mut().for_each(|s| *s *= gain);
        let path = wav(
            dir.path(),
            &format!("{name}.wav"),
            &[&song[..], &hiss[..]].concat(),
            1,
        );
        // 200 BPM read 100 both ways before.
        for sampling in [Some(Sampling::DEFAULT), None] {
            let read = bpm(&analyze(&path, sampling));
            assert!(
                (read / truth - 1.0).abs() < 0.04,
                "{name} ({truth} BPM), {sampling:?}: {read:.2}"
            );
        }
    }
}

/// Noise then silence (or silence then noise) has no pulse, sampled or whole. A file with
/// a silent segment is read whole only when the segments heard hold a pulse, and the pulse
/// test's noise model counts no pairs of frames in digital silence: counted, they let such
/// noise read a tempo of confidence 0.07-0.16.
#[test]
fn noise_beside_silence_has_no_pulse() {
    use synth_music::pulse_cases::{NoiseColour, noise};
    let dir = tempfile::tempdir().unwrap();
    let silence = vec![0.0f32; RATE as usize * 60];
    for colour in [NoiseColour::White, NoiseColour::Pink, NoiseColour::Brown] {
        let hiss: Vec<f32> = noise(colour, 5, 60.0, RATE)
            .iter()
            .map(|s| s * 0.01)
            .collect();
        for (order, samples) in [
            ("then silence", [&hiss[..], &silence[..]].concat()),
            ("after silence", [&silence[..], &hiss[..]].concat()),
        ] {
            let path = wav(dir.path(), "noise.wav", &samples, 1);
            for sampling in [Some(Sampling::DEFAULT), None] {
                let tempo = analyze(&path, sampling).tempo.map(|t| t.bpm);
                let what = format!("{} noise {order}, {sampling:?}", colour.name());
                assert_no_pulse(tempo, &what);
            }
        }
    }
}

/// Noise whose level steps down by 22-30 dB has no pulse, whole or sampled. The pulse
/// test reads the envelope before the quiet blocks are turned down for the tempo (turned
/// down first, white and pink noise stepping from -40 to -65 dBFS read 84.9 and 89.4 BPM
/// with `--full`), and cuts it where the blocks' level crosses the quiet line: a window of
/// its autocorrelation straddling the step read noise as a pulse of confidence 0.08-0.19
/// (21 of 27 such files, with `--full`).
#[test]
fn noise_that_steps_down_has_no_pulse() {
    use synth_music::pulse_cases::{NoiseColour, noise};
    let dir = tempfile::tempdir().unwrap();
    for colour in [NoiseColour::White, NoiseColour::Pink, NoiseColour::Brown] {
        for step_db in [22.0f32, 25.0, 30.0] {
            let loud = noise(colour, 7, 60.0, RATE);
            let quiet = noise(colour, 8, 120.0, RATE);
            let gain = 10f32.powf(-step_db / 20.0);
            let samples: Vec<f32> = loud
                .iter()
                .map(|s| s * 0.02)
                .chain(quiet.iter().map(|s| s * 0.02 * gain))
                .collect();
            let path = wav(dir.path(), "step.wav", &samples, 1);
            for sampling in [Some(Sampling::DEFAULT), None] {
                let tempo = analyze(&path, sampling).tempo.map(|t| t.bpm);
                let what = format!(
                    "{} noise stepping down {step_db} dB, {sampling:?}",
                    colour.name()
                );
                assert_no_pulse(tempo, &what);
            }
        }
    }
}
