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

/// Why the file at `path` is refused, which must be for its format.
fn refusal_of(path: &Path) -> analyzer_core::Error {
    let err = Analyzer::new(AnalyzerConfig::default())
        .unwrap()
        .analyze_file(path, &StopSignal::never())
        .expect_err("the file must be refused");
    assert_eq!(
        err.kind(),
        analyzer_core::ErrorKind::UnsupportedFormat,
        "{err}"
    );
    err
}

fn assert_128(path: &Path, codec: &str) {
    let a = analyze(path);
    assert!(
        (a.tempo.as_ref().unwrap().bpm - 128.0).abs() < 0.5,
        "{}: {}",
        path.display(),
        a.tempo.as_ref().unwrap().bpm
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

/// An MP3 whose Xing/Info header counts fewer frames than the file holds is read to its end,
/// as players read it. symphonia trims packets to the header's count, so with 20 of the
/// fixture's 309 frames counted it decoded 0.9 s and the file was `too_short`.
#[test]
fn an_mp3_whose_xing_header_counts_too_few_frames_is_read_to_its_end() {
    let mut bytes = std::fs::read(fixture("fourfloor-128.mp3")).unwrap();
    let info = bytes.windows(4).position(|w| w == b"Info").unwrap();
    // The flags (frames, bytes, TOC, quality), then the frame count.
    assert_eq!(bytes[info + 4..info + 8], [0, 0, 0, 0x0f]);
    bytes[info + 8..info + 12].copy_from_slice(&20u32.to_be_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lying-xing.mp3");
    std::fs::write(&path, bytes).unwrap();
    assert_128(&path, "mp3");
    let a = analyze(&path);
    assert!(
        a.warnings
            .iter()
            .any(|w| w.contains("the headers announce less audio (0.")),
        "{:?}",
        a.warnings
    );
    // The honest header: gapless trimming stays exact, and nothing is said.
    let honest = analyze(&fixture("fourfloor-128.mp3"));
    assert_eq!(honest.audio.duration_s, 8.0);
    assert!(honest.warnings.is_empty(), "{:?}", honest.warnings);
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
            (a.tempo.as_ref().unwrap().bpm - 128.0).abs() < 0.5,
            "{bits}-bit float={float}: {}",
            a.tempo.as_ref().unwrap().bpm
        );
        assert_eq!(a.audio.codec, codec);
        assert_eq!(a.audio.channels, 2);
        assert_eq!(a.audio.sample_rate, 22_050);
    }
}

/// A WAV written to a pipe (`ffmpeg -f wav - > x.wav`) cannot go back to fill in its
/// sizes: its RIFF and data chunks say 0xFFFFFFFF bytes. The stream then ends where the
/// file does, which is no damage: the row was `ok` but said "the stream ends early
/// (truncated file)". A WAV cut short of the length its header announces still says so.
#[test]
fn a_wav_written_to_a_pipe_is_not_called_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("piped.wav");
    write_wav(&path, 16, false);
    let mut bytes = std::fs::read(&path).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap();
    bytes[4..8].copy_from_slice(&[0xff; 4]);
    bytes[data + 4..data + 8].copy_from_slice(&[0xff; 4]);
    std::fs::write(&path, &bytes).unwrap();
    assert_128(&path, "pcm_s16le");
    let piped = analyze(&path);
    assert!(piped.warnings.is_empty(), "{:?}", piped.warnings);

    let cut = dir.path().join("cut.wav");
    write_wav(&cut, 16, false);
    let whole = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &whole[..whole.len() * 3 / 4 + 1]).unwrap();
    let a = analyze(&cut);
    assert!(
        a.warnings.iter().any(|w| w.contains("truncated file")),
        "{:?}",
        a.warnings
    );
}

/// A WAV whose recorder never filled in its sizes (it crashed, the stream was cut off)
/// leaves them at 0, at the header's own length, or at a guess past the file's end.
/// symphonia refused each as corrupt ("wav: invalid riff length", "riff: chunk length
/// exceeds parent (list) chunk length") or found no audio in it ("the stream holds no
/// audio"), while ffmpeg and players read it. Each is now read as far as its audio goes,
/// giving exactly the analysis of the same audio with a correct header (whole, sampled, and
/// with key and loudness), plus a warning that says what was wrong. A header with no audio
/// after it, or a RIFF header before garbage, is still an error.
#[test]
fn a_wav_whose_header_sizes_were_never_filled_in_is_read_to_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::four_on_the_floor_128()
        .with_seconds(32.0)
        .with_sample_rate(11_025);
    let good = dir.path().join("good.wav");
    synth_music::write_wav(&good, &render(&spec), spec.sample_rate, spec.channels).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let data = bytes.windows(4).position(|w| w == b"data").unwrap();
    assert_eq!(data, 36, "a plain 44-byte header");
    let sampled = analyzer_core::Sampling {
        segments: 2,
        seconds: 10.0,
    };
    let configs = [
        AnalyzerConfig::default(),
        AnalyzerConfig::default().with_sampling(Some(sampled)),
        AnalyzerConfig::default()
            .with_sampling(Some(sampled))
            .with_key(true)
            .with_loudness(true),
    ];
    let run = |config: &AnalyzerConfig, path: &Path| {
        Analyzer::new(config.clone())
            .unwrap()
            .analyze_file(path, &StopSignal::never())
    };
    let honest: Vec<_> = configs
        .iter()
        .map(|c| run(c, &good).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    for a in &honest {
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
    }

    for (riff, data_size) in [
        (0, None),
        (12, None),
        (36, Some(0)),
        (0, Some(0)),
        ((bytes.len() - 8) as u32, Some(0)),
        ((bytes.len() - 8) as u32, Some(0x7fff_fff0)),
    ] {
        let mut broken = bytes.clone();
        broken[4..8].copy_from_slice(&u32::to_le_bytes(riff));
        if let Some(size) = data_size {
            broken[data + 4..data + 8].copy_from_slice(&u32::to_le_bytes(size));
        }
        let path = dir.path().join("unfinished.wav");
        std::fs::write(&path, &broken).unwrap();
        for (config, honest) in configs.iter().zip(&honest) {
            let mut a = run(config, &path)
                .unwrap_or_else(|e| panic!("riff {riff}, data {data_size:?}: {e}"));
            let warning = a.warnings.remove(0);
            assert!(
                warning.starts_with("the WAV header's sizes are wrong (")
                    && warning.ends_with("an unfinished recording?): read to the end of the file"),
                "{warning}"
            );
            assert_eq!(&a, honest, "riff {riff}, data {data_size:?}");
        }
    }

    // Written to a pipe (`ffmpeg -f wav -`, and every WAV past 4 GiB): sizes of 0xFFFFFFFF
    // say "to the end of the file". Its length is worked out from the file's size, so it is
    // sampled as the same audio with a correct header is, without a warning (it was decoded
    // whole, a different row).
    let mut piped = bytes.clone();
    piped[4..8].copy_from_slice(&[0xff; 4]);
    piped[data + 4..data + 8].copy_from_slice(&[0xff; 4]);
    let path = dir.path().join("piped.wav");
    std::fs::write(&path, &piped).unwrap();
    for (config, honest) in configs.iter().zip(&honest) {
        assert_eq!(&run(config, &path).unwrap(), honest, "{config:?}");
    }
    // Its length comes from the channels and sample width, not the block size, which may
    // lie (65535 made it 0 s, and the file was read whole).
    piped[32..34].copy_from_slice(&[0xff; 2]);
    std::fs::write(&path, &piped).unwrap();
    for (config, honest) in configs.iter().zip(&honest) {
        assert_eq!(
            &run(config, &path).unwrap(),
            honest,
            "block 65535, {config:?}"
        );
    }

    // A header and nothing after it, and a RIFF header before garbage: still refused.
    let empty = dir.path().join("empty.wav");
    let mut header = bytes[..44].to_vec();
    header[4..8].copy_from_slice(&[0; 4]);
    header[40..44].copy_from_slice(&[0; 4]);
    std::fs::write(&empty, &header).unwrap();
    let err = run(&configs[0], &empty).unwrap_err();
    assert_eq!(err.kind(), analyzer_core::ErrorKind::CorruptStream, "{err}");
    let garbage = dir.path().join("garbage.wav");
    let mut junk = b"RIFF\0\0\0\0WAVE".to_vec();
    junk.extend((0..5000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    std::fs::write(&garbage, &junk).unwrap();
    assert!(run(&configs[0], &garbage).is_err());
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

/// Large embedded cover pictures, as real libraries hold them: the audio behind the tag
/// decodes as any player decodes it. Each file is a committed fixture with a tag of the
/// given size put in front (MP3), into the metadata blocks (FLAC) or into `moov` (M4A).
mod large_tags {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// A picture-sized run of bytes that is no audio sync pattern (a JPEG-like filler).
    fn picture(bytes: usize) -> Vec<u8> {
        let mut p = vec![0xFF, 0xD8, 0xFF, 0xE0];
        p.extend((0..bytes.saturating_sub(4)).map(|i| (i % 251) as u8 & 0x7F));
        p
    }

    /// An ID3v2 size field: 28 bits in four 7-bit bytes.
    fn syncsafe(n: usize) -> [u8; 4] {
        assert!(n < 1 << 28);
        [
            (n >> 21) as u8 & 0x7F,
            (n >> 14) as u8 & 0x7F,
            (n >> 7) as u8 & 0x7F,
            n as u8 & 0x7F,
        ]
    }

    /// An ID3v2 APIC frame (front cover, JPEG) of `bytes` picture bytes. Version 3 sizes
    /// frames in plain 32 bits, version 4 in syncsafe ones.
    fn apic(version: u8, bytes: usize) -> Vec<u8> {
        let mut body = vec![0u8]; // text encoding: Latin-1
        body.extend(b"image/jpeg\0");
        body.push(3); // front cover
        body.extend(b"cover\0");
        body.extend(picture(bytes));
        let size = if version == 4 {
            syncsafe(body.len())
        } else {
            (body.len() as u32).to_be_bytes()
        };
        let mut frame = b"APIC".to_vec();
        frame.extend(size);
        frame.extend([0, 0]);
        frame.extend(body);
        frame
    }

    /// `audio` behind an ID3v2 tag holding `pictures` covers; version 4 adds an extended
    /// header.
    fn with_id3v2(audio: &[u8], version: u8, pictures: &[usize]) -> Vec<u8> {
        let mut body = Vec::new();
        if version == 4 {
            body.extend(syncsafe(6));
            body.extend([1, 0]); // one flag byte, none set
        }
        for &bytes in pictures {
            body.extend(apic(version, bytes));
        }
        let flags = if version == 4 { 0x40 } else { 0 };
        let mut out = vec![b'I', b'D', b'3', version, 0, flags];
        out.extend(syncsafe(body.len()));
        out.extend(body);
        out.extend(audio);
        out
    }

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn mp3_behind_id3v2_covers_of_1_to_20_mib() {
        let dir = tempfile::tempdir().unwrap();
        let audio = std::fs::read(fixture("fourfloor-128.mp3")).unwrap();
        for (version, pictures) in [
            (3, vec![MIB - 16 * 1024]),
            (3, vec![MIB]),
            (3, vec![2 * MIB]),
            (3, vec![20 * MIB]),
            (4, vec![3 * MIB, MIB / 2]),
            (4, vec![12 * MIB]),
        ] {
            let name = format!("v{version}-{}.mp3", pictures.iter().sum::<usize>());
            let path = write(dir.path(), &name, &with_id3v2(&audio, version, &pictures));
            assert_128(&path, "mp3");
        }
    }

    #[test]
    fn flac_with_picture_blocks_of_2_and_16_mib() {
        let dir = tempfile::tempdir().unwrap();
        let flac = std::fs::read(fixture("fourfloor-128.flac")).unwrap();
        for bytes in [2 * MIB, (1 << 24) - 64] {
            let path = write(
                dir.path(),
                &format!("cover-{bytes}.flac"),
                &with_flac_picture(&flac, bytes),
            );
            assert_128(&path, "flac");
        }
    }

    /// `flac` with a PICTURE metadata block of `bytes` picture bytes after STREAMINFO.
    fn with_flac_picture(flac: &[u8], bytes: usize) -> Vec<u8> {
        assert_eq!(&flac[..4], b"fLaC");
        let mut block = Vec::new();
        block.extend(3u32.to_be_bytes()); // front cover
        block.extend((b"image/jpeg".len() as u32).to_be_bytes());
        block.extend(b"image/jpeg");
        block.extend(0u32.to_be_bytes()); // no description
        for dimension in [600u32, 600, 24, 0] {
            block.extend(dimension.to_be_bytes());
        }
        let data = picture(bytes - block.len() - 4);
        block.extend((data.len() as u32).to_be_bytes());
        block.extend(data);
        assert!(block.len() < 1 << 24, "a FLAC block holds under 16 MiB");
        // STREAMINFO is the first block (4-byte header + 34 bytes); it stays first and is
        // no longer the last, so the picture inherits its last-block flag.
        let streaminfo_last = flac[4] & 0x80;
        let mut out = flac[..4].to_vec();
        out.push(flac[4] & 0x7F);
        out.extend(&flac[5..42]);
        out.push(6 | streaminfo_last);
        out.extend(&(block.len() as u32).to_be_bytes()[1..]);
        out.extend(block);
        out.extend(&flac[42..]);
        out
    }

    #[test]
    fn m4a_with_a_4_mib_cover_in_moov() {
        let dir = tempfile::tempdir().unwrap();
        let m4a = std::fs::read(fixture("fourfloor-128.m4a")).unwrap();
        let path = write(dir.path(), "cover.m4a", &with_m4a_cover(&m4a, 4 * MIB));
        assert_128(&path, "aac");
    }

    /// An MP4 box: 32-bit size, type, payload.
    fn mp4_box(kind: &[u8; 4], payload: &[u8]) -> Vec<u8> {
        let mut b = ((payload.len() + 8) as u32).to_be_bytes().to_vec();
        b.extend(kind);
        b.extend(payload);
        b
    }

    /// `m4a` (whose `moov` is its last box, as in the fixture) with a `udta/meta/ilst/covr`
    /// cover of `bytes` bytes appended to `moov`; the sample offsets do not move.
    fn with_m4a_cover(m4a: &[u8], bytes: usize) -> Vec<u8> {
        let mut at = 0;
        let moov = loop {
            let size = u32::from_be_bytes(m4a[at..at + 4].try_into().unwrap()) as usize;
            if &m4a[at + 4..at + 8] == b"moov" {
                assert_eq!(at + size, m4a.len(), "moov must be the last box");
                break at;
            }
            at += size;
        };
        let mut data = vec![0, 0, 0, 13, 0, 0, 0, 0]; // type 13: JPEG
        data.extend(picture(bytes));
        let covr = mp4_box(b"covr", &mp4_box(b"data", &data));
        let mut hdlr = vec![0u8; 8];
        hdlr.extend(b"mdirappl");
        hdlr.extend([0u8; 9]);
        let mut meta = vec![0u8; 4]; // version and flags
        meta.extend(mp4_box(b"hdlr", &hdlr));
        meta.extend(mp4_box(b"ilst", &covr));
        let udta = mp4_box(b"udta", &mp4_box(b"meta", &meta));
        let mut out = m4a.to_vec();
        let size = u32::from_be_bytes(out[moov..moov + 4].try_into().unwrap()) as usize;
        out[moov..moov + 4].copy_from_slice(&((size + udta.len()) as u32).to_be_bytes());
        out.extend(udta);
        out
    }
}

/// A WAV_FORMAT_EXTENSIBLE header whose channel mask has bits past the 18 standard speaker
/// positions (SPEAKER_ALL, 0x80000000, or a reserved bit beside FL) was refused as
/// "too many channels in mask", where ffmpeg reads it: it is read as the positions it names
/// (none: the first two), with a warning, and analyses as the same audio with a plain mask.
#[test]
fn a_wav_channel_mask_past_the_standard_positions_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::four_on_the_floor_128()
        .with_seconds(12.0)
        .with_sample_rate(11_025)
        .with_channels(2);
    let plain = dir.path().join("plain.wav");
    synth_music::write_wav(&plain, &render(&spec), spec.sample_rate, 2).unwrap();
    let bytes = std::fs::read(&plain).unwrap();
    let audio = &bytes[44..];
    let extensible = |mask: u32| {
        let mut fmt = bytes[20..36].to_vec();
        fmt[0..2].copy_from_slice(&0xFFFEu16.to_le_bytes());
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(16u16.to_le_bytes());
        fmt.extend(mask.to_le_bytes());
        fmt.extend([
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71,
        ]);
        let out = riff_wave(&fmt, audio);
        let path = dir.path().join(format!("mask-{mask:x}.wav"));
        std::fs::write(&path, out).unwrap();
        path
    };
    let analyzer =
        Analyzer::new(AnalyzerConfig::default().with_key(true).with_loudness(true)).unwrap();
    let run = |path: &Path| {
        analyzer
            .analyze_file(path, &StopSignal::never())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let honest = run(&extensible(0x3));
    assert!(honest.warnings.is_empty(), "{:?}", honest.warnings);
    // With as many bits as channels: symphonia mends a mask with more by dropping its
    // highest bits.
    for mask in [0x8000_0000u32, 0x0010_0001] {
        let mut a = run(&extensible(mask));
        let warning = a.warnings.remove(0);
        assert!(warning.contains("no reader knows"), "{warning}");
        assert_eq!(a, honest, "{mask:#x}");
    }
}

/// A WAV_FORMAT_EXTENSIBLE header of 19 to 26 channels was refused as "too many channels
/// in mask" whatever its mask (symphonia fills the mask up to the channel count, past the
/// 18 positions it names), where a plain header of as many channels is read and ffmpeg
/// reads both: it reads as the same audio under a plain header, PCM and float alike,
/// without a warning.
#[test]
fn an_extensible_wav_of_more_than_18_channels_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let spec = presets::four_on_the_floor_128()
        .with_seconds(8.0)
        .with_sample_rate(11_025)
        .with_channels(1);
    let mono = render(&spec);
    let channels = 20u16;
    let wide: Vec<f32> = mono
        .iter()
        .flat_map(|&s| std::iter::repeat_n(s, usize::from(channels)))
        .collect();
    let pcm16: Vec<u8> = wide
        .iter()
        .flat_map(|&s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes())
        .collect();
    // A `fmt ` chunk: the plain 16 bytes, then for an extensible one its extension (no
    // mask) and the sub-format GUID led by `tag`.
    let wav = |name: &str, tag: u16, bits: u16, extensible: bool, audio: &[u8]| {
        let block = channels * bits / 8;
        let mut fmt = if extensible { 0xFFFEu16 } else { tag }
            .to_le_bytes()
            .to_vec();
        fmt.extend(channels.to_le_bytes());
        fmt.extend(spec.sample_rate.to_le_bytes());
        fmt.extend((spec.sample_rate * u32::from(block)).to_le_bytes());
        fmt.extend(block.to_le_bytes());
        fmt.extend(bits.to_le_bytes());
        if extensible {
            fmt.extend(22u16.to_le_bytes());
            fmt.extend(bits.to_le_bytes());
            fmt.extend(0u32.to_le_bytes());
            fmt.extend(tag.to_le_bytes());
            fmt.extend([0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71]);
        }
        let out = riff_wave(&fmt, audio);
        let path = dir.path().join(name);
        std::fs::write(&path, out).unwrap();
        path
    };
    let plain = wav("plain.wav", 1, 16, false, &pcm16);
    let pcm = wav("pcm.wav", 1, 16, true, &pcm16);
    let floats: Vec<u8> = pcm16
        .chunks_exact(2)
        .flat_map(|s| (f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0).to_le_bytes())
        .collect();
    let float = wav("float.wav", 3, 32, true, &floats);
    let analyzer =
        Analyzer::new(AnalyzerConfig::default().with_key(true).with_loudness(true)).unwrap();
    let run = |path: &Path| {
        analyzer
            .analyze_file(path, &StopSignal::never())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let honest = run(&plain);
    assert_eq!(honest.audio.channels, channels);
    for (path, codec) in [(&pcm, "pcm_s16le"), (&float, "pcm_f32le")] {
        let mut a = run(path);
        assert!(a.warnings.is_empty(), "{:?}", a.warnings);
        assert_eq!(a.audio.codec, codec);
        a.audio.codec = honest.audio.codec.clone();
        assert_eq!(a, honest, "{}", path.display());
    }
}

/// A FLAC file with an ID3v1 tag (128 bytes) appended, as old taggers write one, reads as
/// the file without it: its last frame was lost and the row said the file was truncated.
#[test]
fn a_flac_with_an_id3v1_tag_appended_reads_whole() {
    let dir = tempfile::tempdir().unwrap();
    let clean = fixture("fourfloor-128.flac");
    let mut bytes = std::fs::read(&clean).unwrap();
    bytes.extend(b"TAG");
    bytes.resize(bytes.len() + 125, b' ');
    let tagged = dir.path().join("tagged.flac");
    std::fs::write(&tagged, bytes).unwrap();
    let analyzer = Analyzer::new(AnalyzerConfig::default().with_loudness(true)).unwrap();
    let run = |path: &Path| {
        analyzer
            .analyze_file(path, &StopSignal::never())
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    let read = run(&tagged);
    assert!(read.warnings.is_empty(), "{:?}", read.warnings);
    assert_eq!(read, run(&clean));
}

/// A chained Ogg (one stream after another in the file) is read link after link: it was
/// read to the end of its first link, "the stream changes its parameters". A link at
/// another rate still ends the decode, saying where the rate changes.
#[test]
fn a_chained_ogg_is_read_link_after_link() {
    let dir = tempfile::tempdir().unwrap();
    let link = std::fs::read(fixture("fourfloor-128.ogg")).unwrap();
    let chain = dir.path().join("chain.ogg");
    std::fs::write(&chain, link.repeat(3)).unwrap();
    let one = analyze(&fixture("fourfloor-128.ogg"));
    let three = analyze(&chain);
    assert!(three.warnings.is_empty(), "{:?}", three.warnings);
    assert!(
        (three.audio.duration_s - 3.0 * one.audio.duration_s).abs() < 0.05,
        "{} against {}",
        three.audio.duration_s,
        one.audio.duration_s
    );
    assert!((three.tempo.as_ref().unwrap().bpm - 128.0).abs() < 0.5);
    // Long enough to sample (four links, 32 s), it is analysed whole, and says why.
    let four = dir.path().join("four.ogg");
    std::fs::write(&four, link.repeat(4)).unwrap();
    let sampling = analyzer_core::Sampling {
        segments: 2,
        seconds: 10.0,
    };
    let sampled = Analyzer::new(AnalyzerConfig::default().with_sampling(Some(sampling)))
        .unwrap()
        .analyze_file(&four, &StopSignal::never())
        .unwrap();
    assert_eq!(
        sampled.warnings,
        [
            "the headers do not give the file's length (a stream written to a pipe, a chained \
          Ogg): analysed whole, not sampled"
        ]
    );
    assert!((sampled.tempo.as_ref().unwrap().bpm - 128.0).abs() < 0.5);
    // With the loudness, read in the same whole decode, it says so too.
    let loud = Analyzer::new(
        AnalyzerConfig::default()
            .with_sampling(Some(sampling))
            .with_loudness(true),
    )
    .unwrap()
    .analyze_file(&four, &StopSignal::never())
    .unwrap();
    assert_eq!(loud.warnings, sampled.warnings);
    // A link whose Vorbis headers are damaged ends symphonia's stream without a word, the
    // links after it lost: the row says where decoding ended.
    let page = |flags: u8, sequence: u32, body: &[u8]| {
        let mut p = b"OggS\0".to_vec();
        p.push(flags);
        p.extend([0u8; 8]);
        p.extend(0u32.to_le_bytes());
        p.extend(sequence.to_le_bytes());
        p.extend([0u8; 4]);
        p.extend([1, body.len() as u8]);
        p.extend(body);
        with_serial(p, 777)
    };
    let damaged = [
        page(2, 0, &[&b"\x01vorbis"[..], &[0u8; 22]].concat()),
        page(0, 1, &[0u8; 50]),
        page(4, 2, &[0u8; 50]),
    ]
    .concat();
    let later: Vec<u8> = ogg_pages(&link)
        .into_iter()
        .flat_map(|p| with_serial(p, 4242))
        .collect();
    let lost = dir.path().join("lost.ogg");
    std::fs::write(&lost, [link.clone(), damaged, later].concat()).unwrap();
    let read = analyze(&lost);
    assert_eq!(read.audio.duration_s, one.audio.duration_s);
    assert!(
        read.warnings.iter().any(|w| w.starts_with(
            "decoding ended in link 1 of the 3 of this chained Ogg: the next link's headers"
        )),
        "{:?}",
        read.warnings
    );
    let mixed = dir.path().join("mixed.ogg");
    let other_rate = std::fs::read(fixture("clicks-60.ogg")).unwrap();
    std::fs::write(&mixed, [link, other_rate].concat()).unwrap();
    let cut = analyze(&mixed);
    assert_eq!(cut.audio.duration_s, one.audio.duration_s);
    assert!(
        cut.warnings.iter().any(|w| w.contains(
            "link 2 of the 2 of this chained Ogg: the stream changes from 22050 Hz, \
                 2 channel(s), to 44100 Hz"
        )),
        "{:?}",
        cut.warnings
    );
}

/// A file of several audio tracks says which one was read (one was taken silently). Two
/// Ogg streams side by side: their first pages, then the rest of each.
#[test]
fn a_file_of_two_audio_tracks_says_which_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let a = ogg_pages(&std::fs::read(fixture("fourfloor-128.ogg")).unwrap());
    // Both fixtures were written with serial 1234: the second stream takes another.
    let b: Vec<Vec<u8>> = ogg_pages(&std::fs::read(fixture("clicks-60.ogg")).unwrap())
        .into_iter()
        .map(|page| with_serial(page, 5678))
        .collect();
    let muxed = [&a[..1], &b[..1], &a[1..], &b[1..]].concat().concat();
    let path = dir.path().join("two.ogg");
    std::fs::write(&path, muxed).unwrap();
    let read = analyze(&path);
    assert!(
        read.warnings
            .iter()
            .any(|w| w.starts_with("the file holds 2 audio tracks: track ")),
        "{:?}",
        read.warnings
    );
}

/// An Ogg page moved to the stream `serial`, its checksum made again (CRC-32, polynomial
/// 0x04c11db7, unreflected, over the page with the checksum field zeroed).
fn with_serial(mut page: Vec<u8>, serial: u32) -> Vec<u8> {
    page[14..18].copy_from_slice(&serial.to_le_bytes());
    page[22..26].fill(0);
    let mut crc = 0u32;
    for &byte in &page {
        crc ^= u32::from(byte) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    page[22..26].copy_from_slice(&crc.to_le_bytes());
    page
}

/// The pages of an Ogg file, each with its header.
fn ogg_pages(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut pages = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        assert_eq!(&bytes[at..at + 4], b"OggS");
        let segments = usize::from(bytes[at + 26]);
        let body: usize = bytes[at + 27..at + 27 + segments]
            .iter()
            .map(|&l| usize::from(l))
            .sum();
        let end = at + 27 + segments + body;
        pages.push(bytes[at..end].to_vec());
        at = end;
    }
    pages
}

/// A WAV wrapping MP3 or AC-3 audio (format tags 0x55, 0x2000) names its codec: it was
/// "unsupported wave format".
#[test]
fn a_wav_wrapping_mp3_or_ac3_names_its_codec() {
    let dir = tempfile::tempdir().unwrap();
    for (tag, name) in [
        (0x0055u16, "MP3 audio in a WAV wrapper (format tag 0x0055)"),
        (0x2000, "AC-3"),
    ] {
        let mut fmt = tag.to_le_bytes().to_vec();
        fmt.extend(2u16.to_le_bytes());
        fmt.extend(44_100u32.to_le_bytes());
        fmt.extend(16_000u32.to_le_bytes());
        fmt.extend(1u16.to_le_bytes());
        fmt.extend(0u16.to_le_bytes());
        let path = dir.path().join(format!("{tag:x}.wav"));
        std::fs::write(&path, riff_wave(&fmt, &[0u8; 4000])).unwrap();
        let err = refusal_of(&path);
        assert!(err.to_string().contains(name), "{err}");
    }
}

/// A WAV of more channels than the decoder reads is refused for its count before the
/// probe: symphonia read an extensible header of 33 channels as 1 (the count modulo 32)
/// and one of 40 with an 8-bit mask as 8, an `ok` row of the wrong audio.
#[test]
fn a_wav_of_more_than_26_channels_is_refused_for_its_count() {
    let dir = tempfile::tempdir().unwrap();
    for (channels, mask) in [(33u16, 0u32), (40, 0xFF), (27, 0)] {
        let block = channels * 2;
        let mut fmt = 0xFFFEu16.to_le_bytes().to_vec();
        fmt.extend(channels.to_le_bytes());
        fmt.extend(8_000u32.to_le_bytes());
        fmt.extend((8_000 * u32::from(block)).to_le_bytes());
        fmt.extend(block.to_le_bytes());
        fmt.extend(16u16.to_le_bytes());
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(16u16.to_le_bytes());
        fmt.extend(mask.to_le_bytes());
        fmt.extend([
            1, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71,
        ]);
        let audio = vec![1u8; usize::from(block) * 8_000 * 3];
        let path = dir.path().join(format!("{channels}.wav"));
        std::fs::write(&path, riff_wave(&fmt, &audio)).unwrap();
        let err = refusal_of(&path);
        assert!(
            err.to_string().contains(&format!(
                "1 to 26 channels are read; the header says {channels}"
            )),
            "{err}"
        );
        // symphonia reads the last `fmt ` before `data`, after any number of chunks: 33
        // channels behind 70 empty `JUNK` chunks, or after a 2-channel `fmt `, passed.
        let chunk = |name: &[u8], body: &[u8]| {
            [name, &(body.len() as u32).to_le_bytes()[..], body].concat()
        };
        let mut two = fmt.clone();
        two[0..2].copy_from_slice(&1u16.to_le_bytes());
        two[2..4].copy_from_slice(&2u16.to_le_bytes());
        two.truncate(16);
        for (name, before) in [
            ("junk", chunk(b"JUNK", b"").repeat(70)),
            ("twice", chunk(b"fmt ", &two)),
        ] {
            let body = [
                &b"WAVE"[..],
                &before,
                &chunk(b"fmt ", &fmt),
                &chunk(b"data", &audio),
            ]
            .concat();
            let wav = [&b"RIFF"[..], &(body.len() as u32).to_le_bytes(), &body].concat();
            let path = dir.path().join(format!("{channels}-{name}.wav"));
            std::fs::write(&path, wav).unwrap();
            let err = refusal_of(&path);
            assert!(err.to_string().contains("the header says"), "{name}: {err}");
        }
    }
}

/// A-law or mu-law samples under an extensible header are refused saying so (they were a
/// "malformed stream"), where the same samples under a plain header are read.
#[test]
fn g711_under_an_extensible_header_is_named() {
    let dir = tempfile::tempdir().unwrap();
    for sub_format in [6u8, 7] {
        let mut fmt = 0xFFFEu16.to_le_bytes().to_vec();
        fmt.extend(1u16.to_le_bytes());
        fmt.extend(8_000u32.to_le_bytes());
        fmt.extend(8_000u32.to_le_bytes());
        fmt.extend(1u16.to_le_bytes());
        fmt.extend(8u16.to_le_bytes());
        fmt.extend(22u16.to_le_bytes());
        fmt.extend(8u16.to_le_bytes());
        fmt.extend(4u32.to_le_bytes());
        fmt.extend([
            sub_format, 0, 0, 0, 0, 0, 0x10, 0, 0x80, 0, 0, 0xaa, 0, 0x38, 0x9b, 0x71,
        ]);
        let path = dir.path().join(format!("{sub_format}.wav"));
        std::fs::write(&path, riff_wave(&fmt, &[0xD5u8; 24_000])).unwrap();
        let err = refusal_of(&path);
        assert!(
            err.to_string()
                .contains("A-law or mu-law audio under an extensible WAV header"),
            "{err}"
        );
    }
}

/// An MP3 behind a few bytes of junk that read as an AC-3 or DTS sync word is read: bare
/// streams are named only once the open has failed (both were refused as AC-3 and DTS).
#[test]
fn junk_like_a_sync_word_before_an_mp3_is_no_refusal() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 = std::fs::read(fixture("fourfloor-128.mp3")).unwrap();
    for (name, junk) in [
        ("ac3.mp3", &b"\x0b\x77"[..]),
        ("dts.mp3", b"\x7f\xfe\x80\x01"),
    ] {
        let path = dir.path().join(name);
        std::fs::write(&path, [junk, &mp3].concat()).unwrap();
        assert_128(&path, "mp3");
    }
}

/// A WAV file of one `fmt ` chunk whose body is `fmt`, then a `data` chunk of `audio`.
fn riff_wave(fmt: &[u8], audio: &[u8]) -> Vec<u8> {
    let mut out = b"RIFF".to_vec();
    out.extend((4 + 8 + fmt.len() as u32 + 8 + audio.len() as u32).to_le_bytes());
    out.extend(b"WAVEfmt ");
    out.extend((fmt.len() as u32).to_le_bytes());
    out.extend(fmt);
    out.extend(b"data");
    out.extend((audio.len() as u32).to_le_bytes());
    out.extend(audio);
    out
}
