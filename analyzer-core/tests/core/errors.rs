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
        .and_then(|a| a.tempo)
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
    // An ID3 tag that claims 256 MB in a 600 KB file: not "empty", but a header that
    // claims more than the file holds, and the reason says so.
    let lying = dir.path().join("lying-tag.mp3");
    let mut tag = b"ID3\x04\x00\x00\x7f\x7f\x7f\x7f".to_vec();
    tag.resize(600_000, 0x55);
    fs::write(&lying, tag).unwrap();
    let e = error_of(&lying);
    assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
    assert!(
        e.to_string()
            .contains("claims more bytes than the file holds"),
        "{e}"
    );
}

#[test]
fn too_short_audio_is_reported_as_such() {
    let dir = tempfile::tempdir().unwrap();
    let e = error_of(&good_wav(dir.path(), 1.0));
    assert_eq!((e.kind(), e.stage()), (ErrorKind::TooShort, Stage::Tempo));
    // It names what was measured, the envelope, which is shorter than the file.
    assert!(e.to_string().contains("s of onset envelope"), "{e}");
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

/// Steady tones have no pulse: a sine at any pitch and level, a held chord with vibrato,
/// a mains hum. Before, a 1 kHz sine read 142 BPM at confidence 0.81, status ok.
#[test]
fn steady_tones_have_no_pulse() {
    let dir = tempfile::tempdir().unwrap();
    let rate = 44_100u32;
    let tau = std::f32::consts::TAU;
    let tone = |f: &dyn Fn(f32) -> f32| -> Vec<f32> {
        (0..rate as usize * 40)
            .map(|i| f(i as f32 / rate as f32))
            .collect()
    };
    let cases: Vec<(&str, Vec<f32>)> = vec![
        ("sine-1k.wav", tone(&|t| 0.5 * (tau * 1000.0 * t).sin())),
        (
            "sine-1k-quiet.wav",
            tone(&|t| 0.005 * (tau * 1000.0 * t).sin()),
        ),
        // 16 steps of 16 bits: the onset stage's scale must not lift the rounding
        // pattern into a pulse (lifted 60 dB, it read 90 BPM).
        (
            "sine-1k-faint.wav",
            tone(&|t| 0.0005 * (tau * 1000.0 * t).sin()),
        ),
        ("sine-440.wav", tone(&|t| 0.8 * (tau * 440.0 * t).sin())),
        ("hum-50.wav", tone(&|t| 0.5 * (tau * 50.0 * t).sin())),
        (
            "chord-vibrato.wav",
            tone(&|t| {
                let a = tau * (440.0 * t + 2.0 * (tau * 5.0 * t).sin() / tau);
                0.2 * (a.sin() + (tau * 554.4 * t).sin() + (tau * 659.3 * t).sin())
            }),
        ),
    ];
    for (name, samples) in cases {
        let path = dir.path().join(name);
        write_wav(&path, &samples, rate, 1).unwrap();
        let e = error_of(&path);
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::NoPulse, Stage::Tempo),
            "{name}: {e}"
        );
    }
    // A beat over the same loud tone is still found.
    let mut beat = tone(&|t| 0.3 * (tau * 1000.0 * t).sin());
    for (i, s) in beat.iter_mut().enumerate() {
        if i % (rate as usize / 2) < 400 {
            *s += if i % 2 == 0 { 0.5 } else { -0.5 };
        }
    }
    let path = dir.path().join("tone-and-clicks.wav");
    write_wav(&path, &beat, rate, 1).unwrap();
    let a = analyzer()
        .analyze_file(&path, &StopSignal::never())
        .unwrap();
    assert!(
        (a.tempo.as_ref().unwrap().bpm - 120.0).abs() < 1.0,
        "{}",
        a.tempo.as_ref().unwrap().bpm
    );
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
    assert!(
        (a.tempo.as_ref().unwrap().bpm - 128.0).abs() < 1.0,
        "{}",
        a.tempo.as_ref().unwrap().bpm
    );
    assert!(
        a.audio.duration_s > 5.0 && a.audio.duration_s < 7.0,
        "{}",
        a.audio.duration_s
    );

    let wav = good_wav(dir.path(), 10.0);
    let bytes = fs::read(&wav).unwrap();
    fs::write(&wav, &bytes[..bytes.len() / 2 + 3]).unwrap();
    let a = analyzer().analyze_file(&wav, &StopSignal::never()).unwrap();
    assert!((a.tempo.as_ref().unwrap().bpm - 128.0).abs() < 1.0);
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
        // A frame of 2^40 samples asked for 2 TB and aborted the process, which no caller
        // can catch; anything over 2^16 (3 s) can never give a tempo anyway.
        Config {
            frame_size: 1 << 40,
            ..Config::default()
        },
        Config {
            frame_size: (1 << 16) + 1,
            ..Config::default()
        },
        // Frame sizes and hops past a factor 2 of the pulse test's calibration (1024 and
        // 128): every file read as a steady tone.
        Config {
            frame_size: 4096,
            ..Config::default()
        },
        Config {
            frame_size: 256,
            ..Config::default()
        },
        Config {
            hop: 32,
            ..Config::default()
        },
        Config {
            hop: 512,
            ..Config::default()
        },
    ] {
        assert_eq!(
            Analyzer::new(config).unwrap_err().kind(),
            ErrorKind::InvalidConfig
        );
    }
    let hop = Analyzer::new(Config {
        hop: 32,
        ..Config::default()
    })
    .unwrap_err();
    assert!(
        hop.to_string().contains("hop of 32: must be 64..=256"),
        "{hop}"
    );
    for (frame_size, hop) in [(512, 64), (2048, 256), (512, 256)] {
        Analyzer::new(Config {
            frame_size,
            hop,
            ..Config::default()
        })
        .unwrap();
    }
}

/// Samples in memory at a rate no file may have are refused as a file's are: at 1 Hz,
/// 80 KB of samples were resampled to 1.8 GB, and a constant signal read as a tempo at
/// confidence 1.
#[test]
fn samples_at_a_rate_outside_the_files_range_are_refused() {
    for rate in [1, 3_999, 768_001] {
        let e = analyzer()
            .analyze_samples(&[0.5f32; 10], rate, 1)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{rate}: {e}");
        assert!(e.to_string().contains(&format!("{rate} Hz")), "{e}");
    }
}

/// An onset envelope built by hand with a frame rate of 0 (or too low to show the
/// fastest beat) is an error: it gave a NaN tempo as a result.
#[test]
fn an_envelope_without_a_usable_frame_rate_is_refused() {
    use analyzer_core::onset::OnsetEnvelope;
    use analyzer_core::tempo::TempoEstimator;
    let values: Vec<f32> = (0..3000)
        .map(|i| if i % 43 == 0 { 1.0 } else { 0.0 })
        .collect();
    let estimator = TempoEstimator::new(50.0, 220.0).unwrap();
    // Too slow to show the beat, or (1e300 and infinity, which overflowed the pulse
    // test) faster than any analysis makes: refused, and no pulse to the pulse test (0
    // read as 143).
    for rate in [0.0, -86.0, f64::NAN, 1e-3, 7.0, 1e300, f64::INFINITY] {
        let envelope = OnsetEnvelope {
            values: values.clone(),
            high: values.clone(),
            low: values.clone(),
            frame_rate: rate,
            level: 1.0,
            blocks: Vec::new(),
        };
        let e = estimator
            .estimate(&envelope, &StopSignal::never())
            .unwrap_err();
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::InvalidConfig, Stage::Tempo),
            "{rate}"
        );
        assert_eq!(estimator.pulse_significance(&[envelope]), 0.0, "{rate}");
    }
    // No segments at all are too short, by 0 s (the empty sum read "-0.00 s").
    let none = estimator
        .estimate_segments(&[], &StopSignal::never())
        .unwrap_err();
    assert_eq!(none.kind(), ErrorKind::TooShort);
    assert!(none.reason().contains("too_short: 0.00 s of"), "{none}");
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
    assert!(
        (a.tempo.as_ref().unwrap().bpm - 128.0).abs() < 1.0,
        "{}",
        a.tempo.as_ref().unwrap().bpm
    );
}

/// Files that are not files: each is an `unreadable` error at open, at once. A named pipe
/// with no writer would block a plain `open()` for ever, so a regression hangs this test.
#[cfg(unix)]
#[test]
fn pipes_sockets_and_devices_are_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("pipe.wav");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let socket = dir.path().join("socket.mp3");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let link_to_zero = dir.path().join("zero.flac");
    std::os::unix::fs::symlink("/dev/zero", &link_to_zero).unwrap();
    for (path, what) in [
        (fifo.as_path(), "named pipe"),
        (socket.as_path(), "socket"),
        (Path::new("/dev/zero"), "device"),
        (Path::new("/dev/null"), "device"),
        (link_to_zero.as_path(), "device"),
    ] {
        let e = error_of(path);
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::Unreadable, Stage::Open),
            "{e}"
        );
        assert!(e.to_string().contains(what), "{e}");
        let probed = analyzer_core::decode::probe(path).unwrap_err();
        assert_eq!(probed.kind(), ErrorKind::Unreadable, "{probed}");
    }
}

/// A WAV file of `data` with any header values: format tag 1 (PCM) or 3 (float).
fn wav_file(path: &Path, format: u16, rate: u32, channels: u16, bits: u16, data: &[u8]) {
    let align = channels * bits / 8;
    let mut fmt = Vec::new();
    fmt.extend(format.to_le_bytes());
    fmt.extend(channels.to_le_bytes());
    fmt.extend(rate.to_le_bytes());
    fmt.extend((rate.saturating_mul(u32::from(align))).to_le_bytes());
    fmt.extend(align.to_le_bytes());
    fmt.extend(bits.to_le_bytes());
    let mut body = b"WAVEfmt ".to_vec();
    body.extend((fmt.len() as u32).to_le_bytes());
    body.extend(fmt);
    body.extend(b"data");
    body.extend((data.len() as u32).to_le_bytes());
    body.extend(data);
    let mut file = b"RIFF".to_vec();
    file.extend((body.len() as u32).to_le_bytes());
    file.extend(body);
    fs::write(path, file).unwrap();
}

/// A PCM WAV of `frames` frames with any header values, a click every 2205 frames.
fn raw_wav(path: &Path, rate: u32, channels: u16, frames: usize) {
    let mut data = Vec::with_capacity(frames * usize::from(channels) * 2);
    for i in 0..frames {
        let v: i16 = if i % 2205 < 20 { 12_000 } else { 0 };
        for _ in 0..channels {
            data.extend(v.to_le_bytes());
        }
    }
    wav_file(path, 1, rate, channels, 16, &data);
}

/// A header claiming 1 Hz made a 2 KB file cost 300 MB in the resampler; rates outside
/// the range read are refused from the header, before any decoding.
#[test]
fn sample_rates_outside_4_to_768_khz_are_refused_from_the_header() {
    let dir = tempfile::tempdir().unwrap();
    for rate in [1, 100, 3_999, 768_001, u32::MAX] {
        let path = dir.path().join(format!("rate-{rate}.wav"));
        raw_wav(&path, rate, 1, 1_000);
        let e = error_of(&path);
        assert_eq!(
            (e.kind(), e.stage()),
            (ErrorKind::UnsupportedFormat, Stage::Probe),
            "{e}"
        );
        assert!(e.to_string().contains(&format!("{rate} Hz")), "{e}");
    }
    for rate in [4_000, 768_000] {
        let path = dir.path().join(format!("edge-{rate}.wav"));
        raw_wav(&path, rate, 1, rate as usize * 6);
        let a = analyzer()
            .analyze_file(&path, &StopSignal::never())
            .unwrap();
        assert_eq!(a.audio.sample_rate, rate);
    }
}

/// More channels than the decoder maps is an unsupported format with its reason, not a
/// corrupt stream; the most it maps decode and mix down.
#[test]
fn channel_counts_past_the_decoder_are_an_unsupported_format() {
    let dir = tempfile::tempdir().unwrap();
    let most = analyzer_core::decode::MAX_DECODER_CHANNELS as u16;
    let ok = dir.path().join("most.wav");
    raw_wav(&ok, 22_050, most, 22_050 * 6);
    let a = analyzer().analyze_file(&ok, &StopSignal::never()).unwrap();
    assert_eq!(a.audio.channels, most);
    for channels in [most + 1, 32, 64] {
        let path = dir.path().join(format!("ch-{channels}.wav"));
        raw_wav(&path, 22_050, channels, 22_050);
        let e = error_of(&path);
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
        assert!(e.to_string().contains("channel count"), "{e}");
    }
}

/// A small file that decodes to far more audio than real music of its size holds (here
/// 110 KB of FLAC frames of constant silence, 8 channels at 192 kHz in blocks of 65535:
/// about 19,000 samples per byte, as many as six hours of 48 kHz stereo) stops with
/// `resource_limit` once past what any file may decode, instead of costing what it
/// claims. (A sampled analysis, the default, decodes only its segments and is bounded
/// anyway.)
#[test]
fn a_decompression_bomb_stops_at_its_sample_budget() {
    use analyzer_core::decode::{FREE_SAMPLES, MAX_SAMPLES_PER_BYTE};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.flac");
    let frames = 4_000;
    fs::write(&path, constant_flac(frames)).unwrap();
    let bytes = fs::metadata(&path).unwrap().len();
    let samples = frames as u64 * 65_535 * 8;
    assert!(
        samples > FREE_SAMPLES && samples / bytes > MAX_SAMPLES_PER_BYTE * 50,
        "the file must be a bomb ({} samples per byte)",
        samples / bytes
    );
    let whole = Analyzer::new(AnalyzerConfig::default().with_sampling(None)).unwrap();
    let e = whole.analyze_file(&path, &StopSignal::never()).unwrap_err();
    assert_eq!(
        (e.kind(), e.stage()),
        (ErrorKind::ResourceLimit, Stage::Decode),
        "{e}"
    );
    // Twenty frames of the same are 7 s of silence, well within the budget.
    let short = dir.path().join("short.flac");
    fs::write(&short, constant_flac(20)).unwrap();
    let a = whole.analyze_file(&short, &StopSignal::never()).unwrap();
    assert_eq!(a.tempo.unwrap_err().kind(), ErrorKind::NoPulse);
}

/// Silence and a sparse click track are real files a tempo tool must read, though FLAC
/// and Ogg Vorbis pack them past [`MAX_SAMPLES_PER_BYTE`] (they were refused as bombs):
/// within the free budget, a file of any size decodes.
///
/// [`MAX_SAMPLES_PER_BYTE`]: analyzer_core::decode::MAX_SAMPLES_PER_BYTE
#[test]
fn silent_and_sparse_flac_and_ogg_are_not_bombs() {
    use analyzer_core::decode::MAX_SAMPLES_PER_BYTE;
    let dir = tempfile::tempdir().unwrap();
    let whole = Analyzer::new(AnalyzerConfig::default().with_sampling(None)).unwrap();
    let silent_flac = dir.path().join("silence.flac");
    let silence = vec![0.0f32; 44_100 * 2 * 60];
    synth_music::write_flac(&silent_flac, &silence, 44_100, 2).unwrap();
    // 60 s of 44.1 kHz stereo, a 2 ms blip once a second (fixtures/make.sh).
    let clicks = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/clicks-60.ogg");
    for path in [&silent_flac, &clicks] {
        let per_byte = silence.len() as u64 / fs::metadata(path).unwrap().len();
        assert!(
            per_byte > MAX_SAMPLES_PER_BYTE,
            "{}: {per_byte} samples per byte must be past the ratio",
            path.display()
        );
    }
    let a = whole
        .analyze_file(&silent_flac, &StopSignal::never())
        .unwrap();
    let e = a.tempo.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NoPulse, "{e}");
    let a = whole
        .analyze_file(&clicks, &StopSignal::never())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.audio.codec, "vorbis");
    let bpm = a.tempo.unwrap().bpm;
    assert!((bpm - 60.0).abs() < 0.5, "{bpm}");
}

/// A FLAC stream of `frames` frames of digital silence, each 65535 samples of 8 channels
/// at 192 kHz coded as constant subframes (27-29 bytes a frame).
fn constant_flac(frames: u32) -> Vec<u8> {
    let block: u32 = 65_535;
    let mut flac = b"fLaC".to_vec();
    // A last STREAMINFO block: block sizes, frame sizes unknown, 192 kHz, 8 channels,
    // 8 bits, the total sample count, no MD5.
    flac.extend([0x80, 0, 0, 34]);
    flac.extend((block as u16).to_be_bytes());
    flac.extend((block as u16).to_be_bytes());
    flac.extend([0; 6]);
    let total = u64::from(frames) * u64::from(block);
    let packed = (192_000u64 << 44) | (7 << 41) | (7 << 36) | total;
    flac.extend(packed.to_be_bytes());
    flac.extend([0; 16]);
    for n in 0..frames {
        // Fixed block size; its size in 16 bits after the number, 192 kHz; 8 independent
        // channels of 8 bits; the frame number UTF-8 coded (below 0xD800, plain UTF-8);
        // the block size minus one.
        let mut frame = vec![0xFF, 0xF8, 0x73, 0x72];
        let mut utf8 = [0; 4];
        frame.extend(char::from_u32(n).unwrap().encode_utf8(&mut utf8).as_bytes());
        frame.extend(((block - 1) as u16).to_be_bytes());
        frame.push(crc(&frame, 8, 0x07) as u8);
        // Each channel: a constant subframe (type 0) of value 0.
        frame.extend([0; 16]);
        frame.extend((crc(&frame, 16, 0x8005) as u16).to_be_bytes());
        flac.extend(frame);
    }
    flac
}

/// FLAC's CRC of `bytes`: `width` bits, polynomial `poly`, initial value 0, MSB first.
pub(crate) fn crc(bytes: &[u8], width: u32, poly: u32) -> u32 {
    let top = 1 << (width - 1);
    let mask = (1u32 << width) - 1;
    let mut crc = 0u32;
    for &byte in bytes {
        crc ^= u32::from(byte) << (width - 8);
        for _ in 0..8 {
            let carry = crc & top != 0;
            crc = (crc << 1) & mask;
            if carry {
                crc ^= poly;
            }
        }
    }
    crc
}

/// A mono 32-bit float WAV (format tag 3) of `samples` at 44.1 kHz.
fn float_wav(path: &Path, samples: &[f32]) {
    let data: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    wav_file(path, 3, 44_100, 1, 32, &data);
}

/// Float audio is scaled to ±1, but a float file may hold anything: integer PCM stored
/// unscaled (±32768) is still music and keeps its tempo; samples near 3e38 (which made the
/// resampler's FFT panic) or 1e18 (read as silence by overflowing spectra) are not audio:
/// they are replaced by silence, the warning says why, and the verdict is the silence's.
#[test]
fn float_samples_far_beyond_full_scale_are_damage_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let clicks = presets::clicks(120.0, 12.0, 44_100);
    let path = dir.path().join("float.wav");
    float_wav(
        &path,
        &clicks.iter().map(|s| s * 32_768.0).collect::<Vec<_>>(),
    );
    let unscaled = analyzer()
        .analyze_file(&path, &StopSignal::never())
        .unwrap();
    let bpm = unscaled.tempo.as_ref().unwrap().bpm;
    assert!((bpm - 120.0).abs() < 0.5, "{bpm}");
    assert!(unscaled.warnings.is_empty(), "{:?}", unscaled.warnings);
    for scale in [1.0e18f32, 3.0e38] {
        float_wav(&path, &clicks.iter().map(|s| s * scale).collect::<Vec<_>>());
        let damaged = analyzer()
            .analyze_file(&path, &StopSignal::never())
            .unwrap_or_else(|e| panic!("x{scale:e}: {e}"));
        let verdict = damaged.tempo.as_ref().unwrap_err();
        assert_eq!(verdict.kind(), ErrorKind::NoPulse, "x{scale:e}: {verdict}");
        assert!(
            damaged.warnings.iter().any(|w| w.contains("beyond ±1e6")),
            "x{scale:e}: {:?}",
            damaged.warnings
        );
    }
}

/// AIFF and CAF are containers the analyzer does not read: a well-formed file of either is
/// refused as such, not as "the file ends before its headers do" (what the probe reports
/// after reading past headers it does not know).
#[test]
fn aiff_and_caf_are_named_as_unsupported_containers() {
    let dir = tempfile::tempdir().unwrap();
    let frames = 44_100u32;
    let mut comm = Vec::new();
    comm.extend(1u16.to_be_bytes());
    comm.extend(frames.to_be_bytes());
    comm.extend(16u16.to_be_bytes());
    comm.extend([0x40, 0x0e, 0xac, 0x44, 0, 0, 0, 0, 0, 0]); // 44100 as an 80-bit float
    let mut body = b"AIFFCOMM".to_vec();
    body.extend((comm.len() as u32).to_be_bytes());
    body.extend(comm);
    body.extend(b"SSND");
    body.extend((8 + 2 * frames).to_be_bytes());
    body.extend([0u8; 8]);
    body.extend((0..frames).flat_map(|i| (((i % 441) as i16) * 50).to_be_bytes()));
    let mut aiff = b"FORM".to_vec();
    aiff.extend((body.len() as u32).to_be_bytes());
    aiff.extend(body);
    let path = dir.path().join("a.aiff");
    fs::write(&path, aiff).unwrap();
    let e = error_of(&path);
    assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
    assert!(e.to_string().contains("AIFF files are not decoded"), "{e}");

    let mut caf = b"caff\x00\x01\x00\x00desc".to_vec();
    caf.resize(10_000, 0);
    let path = dir.path().join("a.caf");
    fs::write(&path, caf).unwrap();
    let e = error_of(&path);
    assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
    assert!(e.to_string().contains("(CAF) files are not decoded"), "{e}");
}

/// Containers the probe does not know are refused by their first bytes, before it scans
/// past their headers: a Matroska file holding FLAC carries the codec's `fLaC` header in
/// its track entry, and the probe took ffmpeg's for a FLAC stream that "holds no audio"
/// (`corrupt_stream`), or, as here, blamed the file's length. WavPack and RF64 are named
/// too, and an empty file says it is empty.
#[test]
fn matroska_wavpack_rf64_and_empty_files_are_named() {
    let dir = tempfile::tempdir().unwrap();
    // An EBML header, then a FLAC codec header (fLaC, a last STREAMINFO block) as a
    // Matroska track entry holds it, then block data the probe cannot read as FLAC frames.
    let flac =
        fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fourfloor-128.flac"))
            .unwrap();
    let mut mka = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81\x01".to_vec();
    mka.extend(b"\x42\x82\x88matroska");
    mka.resize(64, 0xec);
    let mut streaminfo = flac[..42].to_vec();
    streaminfo[4] |= 0x80; // the last metadata block
    mka.extend(streaminfo);
    mka.extend(std::iter::repeat_n(0u8, 20_000));
    let path = dir.path().join("a.mka");
    fs::write(&path, &mka).unwrap();
    let e = error_of(&path);
    assert_eq!(
        (e.kind(), e.stage()),
        (ErrorKind::UnsupportedFormat, Stage::Probe),
        "{e}"
    );
    assert!(
        e.to_string()
            .contains("Matroska/WebM files are not decoded"),
        "{e}"
    );

    for (magic, name) in [
        (&b"wvpk"[..], "WavPack"),
        (b"RF64", "RF64 (the WAV variant for files over 4 GiB)"),
    ] {
        let mut bytes = magic.to_vec();
        bytes.resize(10_000, 0);
        let path = dir.path().join("a.wav");
        fs::write(&path, bytes).unwrap();
        let e = error_of(&path);
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }

    let empty = dir.path().join("empty.mp3");
    fs::write(&empty, b"").unwrap();
    let e = error_of(&empty);
    assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
    assert!(e.to_string().contains("the file is empty (0 bytes)"), "{e}");
    // A file of /proc gives its size as 0 and holds text: it was called empty.
    if cfg!(target_os = "linux") {
        let e = error_of(Path::new("/proc/self/status"));
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
        assert!(e.to_string().contains("yet holds bytes"), "{e}");
        // Nor is a file of /proc whose first byte cannot be read.
        let e = error_of(Path::new("/proc/self/mem"));
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{e}");
        assert!(
            e.to_string()
                .contains("gives its size as 0 bytes and cannot be read ("),
            "{e}"
        );
    }
}

/// Samples in memory of a channel count no file states, or not whole frames, are refused:
/// 2^32 channels aborted the process on the mix's allocation, and a partial frame was
/// dropped without a word. A sampled decode of impossible segments is refused before the
/// file is opened: 2^64 - 1 segments overflowed and 2^40 aborted.
#[test]
fn impossible_channel_and_segment_counts_are_refused() {
    for (len, channels) in [
        (1000, 1usize << 32),
        (1000, usize::MAX),
        (1000, 0),
        (1001, 2),
    ] {
        let e = analyzer()
            .analyze_samples(&vec![0.1f32; len], 22_050, channels)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnsupportedFormat, "{channels}: {e}");
    }
    use analyzer_core::decode::{decode_mono_segments, segment_starts};
    assert_eq!(segment_starts(1e300, 1e-300, 1 << 40), None);
    assert_eq!(segment_starts(1e6, 10.0, usize::MAX), None);
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("x.wav");
    std::fs::write(&wav, b"not read").unwrap();
    for (seconds, count) in [
        (10.0, usize::MAX),
        (10.0, 1 << 40),
        (1e-9, 3),
        (f64::NAN, 3),
    ] {
        let e = decode_mono_segments(&wav, &StopSignal::never(), seconds, count, |_, _, _| Ok(()))
            .unwrap_err();
        assert_eq!(
            e.kind(),
            ErrorKind::InvalidConfig,
            "{count} x {seconds}: {e}"
        );
    }
}
