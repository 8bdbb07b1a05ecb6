//! `eval-cli tag` and the tag writer under it: every container keeps its audio (decoded
//! before and after, by ffmpeg and by the analyzer's decoder, bit for bit) and every tag it
//! had, gains the values as an independent reader (Debian's mutagen) sees them, and a file
//! that cannot be tagged safely is skipped with its reason while the others are tagged.
//! The test files are made by ffmpeg from the suite's click tracks; without ffmpeg or
//! mutagen-inspect these tests fail and say what to install.
//! One file over 500 lines: every test shares the encoder, the two readers and the
//! before/after snapshot above them, which exist for this command alone.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use analyzer_core::StopSignal;
use analyzer_core::decode::decode_mono;
use eval_cli::tags::replace::PAUSE_FIFO_ENV;
use eval_cli::tags::{KeyNotation, ReplayGain, TagOptions, TagValues, tag_file};

use crate::util::{click_wav, eval_cli, eval_cli_process, fifo, s};

/// Runs a tool the tests need, failing with what to install when it is missing.
fn tool(name: &str, package: &str, args: &[&str]) -> Output {
    let output = Process::new(name).args(args).output().unwrap_or_else(|e| {
        panic!("{name} is needed by the tag tests ({e}): apt-get install -y {package}")
    });
    assert!(
        output.status.success(),
        "{name} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// A 12 s click track at 120 BPM encoded by ffmpeg as `dir/name` (the extension picks
/// the container), with `extra` ffmpeg arguments (inputs among them), then a title and
/// an artist.
fn encoded(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let wav = dir.join(format!("{name}.source.wav"));
    click_wav(&wav, 120.0, 12.0);
    let path = dir.join(name);
    let mut args = vec!["-v", "error", "-y", "-i", s(&wav)];
    args.extend(extra);
    args.extend(["-metadata", "title=Keep me"]);
    args.extend(["-metadata", "artist=The Tests"]);
    args.push(s(&path));
    tool("ffmpeg", "ffmpeg", &args);
    fs::remove_file(wav).unwrap();
    path
}

/// A 16x16 PNG at `dir/cover.png`, and the ffmpeg arguments that attach it as cover art.
fn cover_art(dir: &Path) -> Vec<String> {
    let png = dir.join("cover.png");
    let args = ["-v", "error", "-f", "lavfi", "-i", "color=c=red:s=16x16"];
    tool(
        "ffmpeg",
        "ffmpeg",
        &[&args[..], &["-frames:v", "1", s(&png)]].concat(),
    );
    let attach = [
        "-map",
        "0",
        "-map",
        "1",
        "-c:v",
        "copy",
        "-disposition:v",
        "attached_pic",
    ];
    let mut cover = vec!["-i".to_string(), s(&png).to_string()];
    cover.extend(attach.iter().map(|a| a.to_string()));
    cover
}

/// What ffmpeg decodes `path` to, as 32-bit floats.
fn ffmpeg_samples(path: &Path) -> Vec<u8> {
    let args = ["-v", "error", "-i", s(path), "-f", "f32le", "-"];
    tool("ffmpeg", "ffmpeg", &args).stdout
}

/// What the analyzer's decoder gives for `path` (mono), as bits; `None` for a codec it
/// does not decode (Opus, AIFF).
fn analyzer_samples(path: &Path) -> Option<Vec<u32>> {
    let mut samples = Vec::new();
    decode_mono(path, &StopSignal::never(), |chunk, _| {
        samples.extend(chunk.iter().map(|x| x.to_bits()));
        Ok(())
    })
    .ok()?;
    Some(samples)
}

/// The tags of `path` as mutagen prints them, one `KEY=value` per line.
fn mutagen_tags(path: &Path) -> BTreeSet<String> {
    let out = tool("mutagen-inspect", "python3-mutagen", &[s(path)]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("-- ") && !l.starts_with("- ") && !l.is_empty())
        .map(String::from)
        .collect()
}

/// The tags ffprobe sees in `path`'s container, `TAG:key=value` lines, and its stream
/// count (cover art is a stream).
fn ffprobe_tags(path: &Path) -> BTreeSet<String> {
    let out = tool(
        "ffprobe",
        "ffmpeg",
        &["-v", "error", "-show_format", s(path)],
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("TAG:") || l.starts_with("nb_streams="))
        .map(String::from)
        .collect()
}

/// Everything a test compares of a file before and after tagging.
struct Snapshot {
    decoded: Vec<u8>,
    analyzer: Option<Vec<u32>>,
    mutagen: BTreeSet<String>,
    ffprobe: BTreeSet<String>,
}

impl Snapshot {
    fn of(path: &Path) -> Self {
        Snapshot {
            decoded: ffmpeg_samples(path),
            analyzer: analyzer_samples(path),
            mutagen: mutagen_tags(path),
            ffprobe: ffprobe_tags(path),
        }
    }

    /// The audio of `after` is this one's, bit for bit, and it holds every tag this one
    /// held; returns the tags it gained.
    fn kept_by(&self, after: &Snapshot, what: &str) -> BTreeSet<String> {
        assert!(!self.decoded.is_empty(), "{what}: ffmpeg decoded nothing");
        assert!(
            self.decoded == after.decoded,
            "{what}: ffmpeg decodes other samples"
        );
        assert!(
            self.analyzer == after.analyzer,
            "{what}: the analyzer decodes other samples"
        );
        for line in &self.mutagen {
            assert!(after.mutagen.contains(line), "{what}: lost {line}");
        }
        for line in &self.ffprobe {
            assert!(after.ffprobe.contains(line), "{what}: ffprobe lost {line}");
        }
        after.mutagen.difference(&self.mutagen).cloned().collect()
    }
}

fn set(lines: &[&str]) -> BTreeSet<String> {
    lines.iter().map(|l| l.to_string()).collect()
}

const ID3_FIELDS: [&str; 6] = [
    "TBPM=128",
    "TKEY=Am",
    "TXXX=REPLAYGAIN_TRACK_GAIN=-6.52 dB",
    "TXXX=REPLAYGAIN_TRACK_PEAK=0.988553",
    "TXXX=REPLAYGAIN_ALBUM_GAIN=-7.10 dB",
    "TXXX=REPLAYGAIN_ALBUM_PEAK=1.000000",
];

const VORBIS_FIELDS: [&str; 6] = [
    "BPM=127.60",
    "INITIALKEY=Am",
    "REPLAYGAIN_TRACK_GAIN=-6.52 dB",
    "REPLAYGAIN_TRACK_PEAK=0.988553",
    "REPLAYGAIN_ALBUM_GAIN=-7.10 dB",
    "REPLAYGAIN_ALBUM_PEAK=1.000000",
];

/// mutagen prints a freeform atom with its data type.
const MP4_FIELDS: [&str; 6] = [
    "tmpo=128",
    "----:com.apple.iTunes:initialkey=MP4FreeForm(b'Am', <AtomDataType.UTF8: 1>)",
    "----:com.apple.iTunes:replaygain_track_gain=MP4FreeForm(b'-6.52 dB', <AtomDataType.UTF8: 1>)",
    "----:com.apple.iTunes:replaygain_track_peak=MP4FreeForm(b'0.988553', <AtomDataType.UTF8: 1>)",
    "----:com.apple.iTunes:replaygain_album_gain=MP4FreeForm(b'-7.10 dB', <AtomDataType.UTF8: 1>)",
    "----:com.apple.iTunes:replaygain_album_peak=MP4FreeForm(b'1.000000', <AtomDataType.UTF8: 1>)",
];

fn all_values() -> TagValues {
    TagValues {
        bpm: Some(127.6),
        key: Some("A minor".parse().unwrap()),
        replaygain: Some(ReplayGain {
            track_gain_db: -6.5249,
            track_peak: 0.988553,
            album_gain_db: Some(-7.1),
            album_peak: Some(1.0),
        }),
    }
}

/// Tempo, key and ReplayGain go into each container's own fields, as mutagen reads them;
/// the audio decodes to the same samples and every tag there before is still there. An
/// ID3v2.3 tag stays 2.3; cover art stays. Tagging again with the same values changes no
/// byte.
#[test]
fn every_container_gains_the_fields_and_keeps_its_audio_and_tags() {
    let dir = tempfile::tempdir().unwrap();
    let cover = cover_art(dir.path());
    let cover: Vec<&str> = cover.iter().map(String::as_str).collect();
    let cases: [(&str, &[&str], &[&str]); 13] = [
        ("a.mp3", &[], &ID3_FIELDS),
        ("cover.mp3", &cover, &ID3_FIELDS),
        ("cover.flac", &cover, &VORBIS_FIELDS),
        ("cover.m4a", &cover, &MP4_FIELDS),
        (
            "v23.mp3",
            &["-id3v2_version", "3", "-metadata", "date=2001"],
            &ID3_FIELDS,
        ),
        ("a.wav", &[], &ID3_FIELDS),
        ("a.aiff", &["-write_id3v2", "1"], &ID3_FIELDS),
        ("a.flac", &[], &VORBIS_FIELDS),
        ("a.ogg", &["-c:a", "libvorbis"], &VORBIS_FIELDS),
        ("a.opus", &["-c:a", "libopus"], &VORBIS_FIELDS),
        ("a.m4a", &[], &MP4_FIELDS),
        // The index before the audio: growing the tag moves the audio and its offsets.
        ("faststart.m4a", &["-movflags", "+faststart"], &MP4_FIELDS),
        // An ID3v1 tag at the end stays as it is.
        ("v1.mp3", &["-write_id3v1", "1"], &ID3_FIELDS),
    ];
    let options = TagOptions::default();
    for (name, ffmpeg_args, fields) in cases {
        let path = encoded(dir.path(), name, ffmpeg_args);
        let before = Snapshot::of(&path);
        let tail = |path: &Path| {
            let bytes = fs::read(path).unwrap();
            bytes[bytes.len() - 128..].to_vec()
        };
        let tail_before = tail(&path);
        let report =
            tag_file(&path, &all_values(), &options).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.written, "{name}: {report:?}");
        let after = Snapshot::of(&path);
        assert_eq!(before.kept_by(&after, name), set(fields), "{name}");
        if name.starts_with("cover") {
            assert!(
                before.ffprobe.contains("nb_streams=2"),
                "{name} has its cover"
            );
        }
        if name == "v1.mp3" {
            assert_eq!(&tail_before[..3], b"TAG");
            assert_eq!(tail(&path), tail_before, "the ID3v1 tag as it was");
        }
        if name == "v23.mp3" {
            assert_eq!(&fs::read(&path).unwrap()[..4], b"ID3\x03", "still ID3v2.3");
        }
        let bytes = fs::read(&path).unwrap();
        let again = tag_file(&path, &all_values(), &options).unwrap();
        assert!(!again.written && !again.changes_something(), "{again:?}");
        assert_eq!(fs::read(&path).unwrap(), bytes, "{name}: rewritten");
    }
    let left: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), cases.len() + 1, "no temporary file is left");
}

/// A field spelled in lower case (foobar2000's `TXXX:replaygain_track_gain`, a Vorbis
/// `bpm`) is the same field: kept without `overwrite`, replaced by one value with it.
#[test]
fn a_field_in_lower_case_is_the_same_field() {
    let dir = tempfile::tempdir().unwrap();
    let lower = [
        "-metadata",
        "replaygain_track_gain=-3.00 dB",
        "-metadata",
        "bpm=99",
    ];
    let values = all_values();
    for (name, old_lines, new_lines) in [
        (
            "a.mp3",
            ["TXXX=replaygain_track_gain=-3.00 dB", "TXXX=bpm=99"],
            ["TXXX=REPLAYGAIN_TRACK_GAIN=-6.52 dB", "TBPM=128"],
        ),
        (
            "a.flac",
            ["replaygain_track_gain=-3.00 dB", "bpm=99"],
            ["REPLAYGAIN_TRACK_GAIN=-6.52 dB", "BPM=127.60"],
        ),
    ] {
        let path = encoded(dir.path(), name, &lower);
        assert!(mutagen_tags(&path).contains(old_lines[0]), "{name}");
        let kept = tag_file(&path, &values, &TagOptions::default()).unwrap();
        let gain = kept.changes.iter().find(|c| c.name.contains("TRACK_GAIN"));
        assert_eq!(gain.unwrap().old.as_deref(), Some("-3.00 dB"), "{name}");
        assert!(mutagen_tags(&path).contains(old_lines[0]), "{name}: kept");

        let overwrite = TagOptions {
            overwrite: true,
            ..TagOptions::default()
        };
        tag_file(&path, &values, &overwrite).unwrap();
        let tags = mutagen_tags(&path);
        assert!(
            tags.contains(new_lines[0]) && tags.contains(new_lines[1]),
            "{name}: {tags:?}"
        );
        assert!(
            !tags.contains(old_lines[0]),
            "{name}: one value left: {tags:?}"
        );
    }
}

/// The RVA2 frames' identifications in `path`'s ID3v2 tag, with their gain in dB.
fn rva2_frames(path: &Path) -> BTreeSet<String> {
    use lofty::file::AudioFile;
    let mut file = fs::File::open(path).unwrap();
    let mpeg =
        lofty::mpeg::MpegFile::read_from(&mut file, lofty::config::ParseOptions::new()).unwrap();
    let Some(tag) = mpeg.id3v2() else {
        return BTreeSet::new();
    };
    tag.into_iter()
        .filter_map(|frame| match frame {
            lofty::id3::v2::Frame::RelativeVolumeAdjustment(rva2) => {
                let gain = rva2.channels.values().next().unwrap().volume_adjustment;
                Some(format!(
                    "{}={:.2}",
                    rva2.identification,
                    f64::from(gain) / 512.0
                ))
            }
            _ => None,
        })
        .collect()
}

/// A gain in another spelling is the same field, and is never left beside the new one to
/// give players a stale value: an ID3 `RVA2` frame for the track or the album (mp3gain,
/// the ID3v2.4 proposal) and an MP4 freeform atom in upper case (foobar2000, Mp3tag). Each
/// is kept without `overwrite` (no second gain written beside it) and replaced with it; an
/// `RVA2` frame of another purpose stays. Before, the `RVA2` frames and the upper-case atom
/// were not seen: a second, different gain was written beside them, and left there.
#[test]
fn a_gain_in_another_spelling_is_kept_or_replaced_never_doubled() {
    use lofty::config::WriteOptions;
    use lofty::id3::v2::{
        ChannelInformation, ChannelType, Frame, Id3v2Tag, RelativeVolumeAdjustmentFrame,
    };
    use lofty::mp4::{Atom, AtomData, AtomIdent, Ilst};
    use lofty::prelude::TagExt;
    use std::borrow::Cow;
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let overwrite = TagOptions {
        overwrite: true,
        ..TagOptions::default()
    };
    let writable = |path: &Path| {
        fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap()
    };

    let mp3 = encoded(dir.path(), "rva2.mp3", &[]);
    let mut id3 = Id3v2Tag::new();
    for (identification, db) in [("track", -3.0), ("album", -4.0), ("normalize", 1.0)] {
        let channel = ChannelInformation {
            channel_type: ChannelType::MasterVolume,
            volume_adjustment: (db * 512.0) as i16,
            bits_representing_peak: 0,
            peak_volume: None,
        };
        let channels = HashMap::from([(ChannelType::MasterVolume, channel)]);
        id3.insert(Frame::RelativeVolumeAdjustment(
            RelativeVolumeAdjustmentFrame::new(identification, Cow::Owned(channels)),
        ));
    }
    id3.save_to(&mut writable(&mp3), WriteOptions::default())
        .unwrap();
    let rva2 = set(&["track=-3.00", "album=-4.00", "normalize=1.00"]);
    assert_eq!(rva2_frames(&mp3), rva2);
    let kept = tag_file(&mp3, &all_values(), &TagOptions::default()).unwrap();
    let gain = kept.changes.iter().find(|c| c.name.contains("TRACK_GAIN"));
    assert_eq!(gain.unwrap().old.as_deref(), Some("-3.00 dB"), "{kept:?}");
    let tags = mutagen_tags(&mp3);
    assert!(
        !tags.iter().any(|t| t.contains("REPLAYGAIN_TRACK_GAIN")),
        "a second gain beside RVA2: {tags:?}"
    );
    assert_eq!(rva2_frames(&mp3), rva2);
    tag_file(&mp3, &all_values(), &overwrite).unwrap();
    let tags = mutagen_tags(&mp3);
    assert!(
        tags.contains("TXXX=REPLAYGAIN_TRACK_GAIN=-6.52 dB")
            && tags.contains("TXXX=REPLAYGAIN_ALBUM_GAIN=-7.10 dB"),
        "{tags:?}"
    );
    assert_eq!(rva2_frames(&mp3), set(&["normalize=1.00"]));

    let m4a = encoded(dir.path(), "upper.m4a", &[]);
    let mut ilst = Ilst::default();
    for (name, value) in [
        ("REPLAYGAIN_TRACK_GAIN", "-3.00 dB"),
        ("REPLAYGAIN_TRACK_PEAK", "0.5"),
    ] {
        ilst.insert(Atom::new(
            AtomIdent::Freeform {
                mean: Cow::Borrowed("com.apple.iTunes"),
                name: Cow::Borrowed(name),
            },
            AtomData::UTF8(value.into()),
        ));
    }
    ilst.save_to(&mut writable(&m4a), WriteOptions::default())
        .unwrap();
    let upper = "----:com.apple.iTunes:REPLAYGAIN_TRACK_GAIN=MP4FreeForm(b'-3.00 dB', <AtomDataType.UTF8: 1>)";
    assert!(mutagen_tags(&m4a).contains(upper));
    tag_file(&m4a, &all_values(), &TagOptions::default()).unwrap();
    let tags = mutagen_tags(&m4a);
    assert!(tags.contains(upper), "kept: {tags:?}");
    assert!(
        !tags.contains(MP4_FIELDS[2]),
        "a second gain beside it: {tags:?}"
    );
    tag_file(&m4a, &all_values(), &overwrite).unwrap();
    let tags = mutagen_tags(&m4a);
    assert!(
        tags.contains(MP4_FIELDS[2]) && tags.contains(MP4_FIELDS[3]),
        "{tags:?}"
    );
    assert!(
        !tags.iter().any(|t| t.contains(":REPLAYGAIN_")),
        "an old value left beside the new one: {tags:?}"
    );
}

/// The key notation picks what `TKEY`/`INITIALKEY` hold.
#[test]
fn the_key_is_written_in_the_notation_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let values = TagValues {
        key: Some("A minor".parse().unwrap()),
        ..TagValues::default()
    };
    for (notation, text) in [(KeyNotation::Camelot, "8A"), (KeyNotation::OpenKey, "1m")] {
        let path = encoded(dir.path(), &format!("{text}.flac"), &[]);
        let options = TagOptions {
            notation,
            ..TagOptions::default()
        };
        tag_file(&path, &values, &options).unwrap();
        assert!(mutagen_tags(&path).contains(&format!("INITIALKEY={text}")));
    }
}

/// `eval-cli tag` as a user runs it, in `dir`, with `args` after the paths.
fn tag(paths: &[&Path], args: &[&str]) -> Output {
    eval_cli()
        .arg("tag")
        .args(paths)
        .args(args)
        .output()
        .unwrap()
}

/// The rows of `tag`'s CSV by file name: (status, bpm, key, fields, reason).
fn tag_rows(output: &Output) -> Vec<[String; 6]> {
    let mut reader = csv::Reader::from_reader(&output.stdout[..]);
    let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(header.join(","), "path,status,bpm,key,fields,reason");
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            std::array::from_fn(|i| r[i].to_string())
        })
        .collect()
}

/// An ID3v2.2 tag with a year (`TYE`, as most iTunes-era files have) is tagged: lofty
/// reads the year as 2.4's `TDRC` and, saving the tag as 2.3, writes it as `TYER`, which
/// was taken for a lost frame (`the tagged copy lost TDRC`: such files were never tagged).
/// The title and the year read back as they were. A 2.2 date no later tag can carry is
/// refused saying how to convert it.
#[test]
fn an_id3v22_tag_with_a_year_is_tagged_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../analyzer-core/tests/fixtures");
    let audio = fs::read(fixtures.join("fourfloor-128.mp3")).unwrap();
    assert_ne!(&audio[..3], b"ID3", "the fixture has no tag of its own");
    let frame = |id: &[u8], text: &[u8]| {
        let mut frame = id.to_vec();
        frame.extend_from_slice(&u32::try_from(text.len() + 1).unwrap().to_be_bytes()[1..]);
        frame.push(0); // ISO-8859-1
        frame.extend_from_slice(text);
        frame
    };
    let v22 = |name: &str, frames: &[Vec<u8>]| {
        let mut frames = frames.concat();
        frames.extend_from_slice(&[0; 64]);
        let size = u32::try_from(frames.len()).unwrap();
        let synchsafe = [21, 14, 7, 0].map(|shift| ((size >> shift) & 0x7f) as u8);
        let mut file = b"ID3\x02\x00\x00".to_vec();
        file.extend_from_slice(&synchsafe);
        file.extend_from_slice(&frames);
        file.extend_from_slice(&audio);
        let song = dir.path().join(name);
        fs::write(&song, &file).unwrap();
        song
    };
    // A 2.2 date (`TDA`) has no later form lofty writes: skipped, saying how to convert
    // it; converted, it is tagged.
    let dated = v22(
        "dated.mp3",
        &[frame(b"TYE", b"1999"), frame(b"TDA", b"0102")],
    );
    let rows = tag_rows(&tag(&[&dated], &["--progress", "off"]));
    assert_eq!(rows[0][1], "skipped", "{rows:?}");
    assert!(
        rows[0][5].contains("TDA is an ID3v2.2 frame") && rows[0][5].contains("mid3v2 --convert")
    );
    // A dry run foresees the skip: it had promised `BPM: - -> ...`.
    let dry = tag_rows(&tag(&[&dated], &["--progress", "off", "--dry-run"]));
    assert_eq!(dry[0][1], "skipped", "{dry:?}");
    assert!(dry[0][5].contains("would lose TDA") && dry[0][5].contains("mid3v2 --convert"));
    tool("mid3v2", "python3-mutagen", &["--convert", s(&dated)]);
    assert_eq!(
        tag_rows(&tag(&[&dated], &["--progress", "off"]))[0][1],
        "tagged"
    );

    let song = v22(
        "v22.mp3",
        &[frame(b"TT2", b"Title"), frame(b"TYE", b"2001")],
    );
    let out = tag(&[&song], &["--progress", "off"]);
    let rows = tag_rows(&out);
    assert_eq!(rows[0][1], "tagged", "{rows:?}");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let tags = ffprobe_tags(&song);
    for kept in ["TAG:title=Title", "TAG:date=2001"] {
        assert!(tags.contains(kept), "{kept} not in {tags:?}");
    }
    assert!(tags.iter().any(|t| t.starts_with("TAG:TBPM=")), "{tags:?}");
}

/// An M4A whose cover art holds two 9 MB pictures (one `covr` item of 18 MB, past lofty's
/// default 16 MiB limit) is tagged, its covers kept byte for byte: it was skipped as
/// "damaged tags or container".
#[test]
fn an_m4a_with_18_mb_of_cover_art_is_tagged_and_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let song = encoded(dir.path(), "covers.m4a", &["-c:a", "aac", "-b:a", "64k"]);
    let script = r#"
import sys, hashlib
from mutagen.mp4 import MP4, MP4Cover
song = sys.argv[1]
if sys.argv[2] == "add":
    data = bytes((i * 7919) % 251 for i in range(9_000_000))
    m = MP4(song)
    m["covr"] = [MP4Cover(b"\xff\xd8\xff\xe0" + data), MP4Cover(b"\xff\xd8\xff\xe1" + data)]
    m.save()
print(*[hashlib.sha256(bytes(c)).hexdigest() for c in MP4(song)["covr"]])
"#;
    let covers = |what: &str| {
        let out = tool(
            // Debian's interpreter, which python3-mutagen installs into (as
            // mutagen-inspect's first line names it).
            "/usr/bin/python3",
            "python3-mutagen",
            &["-c", script, s(&song), what],
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let before = covers("add");
    assert_eq!(before.split_whitespace().count(), 2, "{before}");
    let out = tag(&[&song], &["--progress", "off"]);
    let rows = tag_rows(&out);
    assert_eq!(rows[0][1], "tagged", "{rows:?}");
    assert_eq!(covers("read"), before);
    assert!(mutagen_tags(&song).iter().any(|t| t.starts_with("tmpo=")));
}

/// An MP3 whose APEv2 tag holds a ReplayGain (mp3gain writes one there) keeps it, as
/// this tool writes ID3 only, but the row says so: a player that reads APE first applies
/// the old gain (the row named only the ID3 gain it wrote). A key asked for and not found
/// is said too.
#[test]
fn a_replaygain_left_in_an_ape_tag_is_named_in_the_row() {
    let dir = tempfile::tempdir().unwrap();
    let song = encoded(dir.path(), "ape.mp3", &[]);
    let script = "import sys\nfrom mutagen.apev2 import APEv2\na = APEv2()\n\
                  a['REPLAYGAIN_TRACK_GAIN'] = '-3.00 dB'\na['BPM'] = '999'\n\
                  a.save(sys.argv[1])";
    tool(
        "/usr/bin/python3",
        "python3-mutagen",
        &["-c", script, s(&song)],
    );
    let out = tag(
        &[&song],
        &["--descriptors", "tempo,key,loudness", "--progress", "off"],
    );
    let rows = tag_rows(&out);
    assert_eq!(rows[0][1], "tagged", "{rows:?}");
    assert!(
        rows[0][4].contains("TXXX:REPLAYGAIN_TRACK_GAIN"),
        "{rows:?}"
    );
    assert!(
        rows[0][5]
            .contains("an APEv2 tag beside the ID3 tag holds APE:REPLAYGAIN_TRACK_GAIN, APE:BPM")
            || rows[0][5].contains(
                "an APEv2 tag beside the ID3 tag holds APE:BPM, APE:REPLAYGAIN_TRACK_GAIN"
            ),
        "{rows:?}"
    );
    // Without ReplayGain asked for, the APE tempo alone is said (it was not); a click
    // track's missing key is said (the row listed no key field and gave no reason).
    let song = encoded(dir.path(), "plain.mp3", &[]);
    tool(
        "/usr/bin/python3",
        "python3-mutagen",
        &["-c", script, s(&song)],
    );
    let rows = tag_rows(&tag(&[&song], &["--progress", "off"]));
    assert_eq!(
        rows[0][5],
        "no key: no pitched sound in 100 % of the audio; an APEv2 tag beside the ID3 tag \
         holds APE:BPM, which players that read APE first use instead (this tool writes ID3 \
         only; remove the APE tag to leave one value)",
        "{rows:?}"
    );
}

/// An ID3v2.3 tag holding a frame only 2.4 has (an `RVA2` that is no ReplayGain, as
/// mutagen leaves in a 2.3 tag) cannot be rewritten as 2.3 without losing it: the file is
/// skipped, and the reason now says why and what to do; done, the file is tagged.
#[test]
fn a_2_4_frame_in_a_2_3_tag_is_refused_saying_how_to_convert_it() {
    let dir = tempfile::tempdir().unwrap();
    // An MP3 whose ID3v2.3 tag holds `frame` (a mutagen constructor call).
    let with_frame_in_2_3 = |name: &str, frame: &str, made: &str| {
        let song = encoded(dir.path(), name, &[]);
        let script = format!(
            "import sys\nfrom mutagen.id3 import ID3, {frame}\nt = ID3(sys.argv[1])\n\
             t.add({made})\nt.save(sys.argv[1], v2_version=3)"
        );
        tool(
            "/usr/bin/python3",
            "python3-mutagen",
            &["-c", &script, s(&song)],
        );
        song
    };
    let song = with_frame_in_2_3(
        "rva.mp3",
        "RVA2",
        "RVA2(desc='normalize', channel=1, gain=-2.0, peak=0.5)",
    );
    let dry = tag_rows(&tag(&[&song], &["--progress", "off", "--dry-run"]));
    assert_eq!(dry[0][1], "skipped", "{dry:?}");
    assert!(dry[0][5].contains("would lose RVA2"), "{dry:?}");
    let rows = tag_rows(&tag(&[&song], &["--progress", "off"]));
    assert_eq!(rows[0][1], "skipped", "{rows:?}");
    assert!(
        rows[0][5].contains("RVA2 is an ID3v2.4 frame") && rows[0][5].contains("mid3v2 --convert"),
        "{rows:?}"
    );
    tool("mid3v2", "python3-mutagen", &["--convert", s(&song)]);
    let rows = tag_rows(&tag(&[&song], &["--progress", "off"]));
    assert_eq!(rows[0][1], "tagged", "{rows:?}");
    // A sort order (2.4's TSOA) that taggers write into 2.3 tags: foreseen by the dry
    // run, which had promised a change, and skipped with the advice.
    let sorted = with_frame_in_2_3("sorted.mp3", "TSOA", "TSOA(encoding=0, text='Album, The')");
    let dry = tag_rows(&tag(&[&sorted], &["--progress", "off", "--dry-run"]));
    assert_eq!(dry[0][1], "skipped", "{dry:?}");
    assert!(dry[0][5].contains("would lose TSOA"), "{dry:?}");
    let rows = tag_rows(&tag(&[&sorted], &["--progress", "off"]));
    assert_eq!(rows[0][1], "skipped", "{rows:?}");
    assert!(rows[0][5].contains("mid3v2 --convert"), "{rows:?}");
}

/// One folder of three containers and two files that cannot be tagged: the three are
/// tagged with the tempo the analyzer measures, as mutagen and ffprobe read it; the Opus
/// file (which the analyzer does not decode) and a read-only MP3 are skipped with their
/// reasons and left byte for byte; the exit status says something was skipped. A second
/// run finds nothing to change.
#[test]
fn tag_tags_a_folder_and_skips_what_it_cannot_tag_safely() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path();
    for name in ["a.flac", "b.m4a", "c.mp3", "e.opus"] {
        encoded(lib, name, &[]);
    }
    let locked = encoded(lib, "d.mp3", &[]);
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o444)).unwrap();
    let opus = lib.join("e.opus");
    let untouched = [fs::read(&locked).unwrap(), fs::read(&opus).unwrap()];

    let out = tag(&[lib], &["--workers", "2", "--descriptors", "tempo"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows = tag_rows(&out);
    let statuses: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (&r[0][lib.to_str().unwrap().len() + 1..], r[1].as_str()))
        .collect();
    assert_eq!(
        statuses,
        [
            ("a.flac", "tagged"),
            ("b.m4a", "tagged"),
            ("c.mp3", "tagged"),
            ("d.mp3", "skipped"),
            ("e.opus", "skipped"),
        ]
    );
    // Vorbis comments get two decimals, ID3 a whole number.
    let flac_bpm: f64 = rows[0][2].parse().unwrap();
    assert!((flac_bpm - 120.0).abs() < 0.1, "{:?}", rows[0]);
    let flac_field = format!("BPM={flac_bpm:.2}");
    assert_eq!(rows[0][4], format!("BPM: - -> {flac_bpm:.2}"));
    assert_eq!(rows[2][4], "TBPM: - -> 120");
    assert_eq!(rows[3][5], "cannot tag safely: read-only file");
    assert!(rows[4][5].starts_with("analysis failed: "), "{:?}", rows[4]);
    assert_eq!(
        [fs::read(&locked).unwrap(), fs::read(&opus).unwrap()],
        untouched
    );

    assert!(mutagen_tags(&lib.join("a.flac")).contains(&flac_field));
    assert!(mutagen_tags(&lib.join("b.m4a")).contains("tmpo=120"));
    assert!(ffprobe_tags(&lib.join("c.mp3")).contains("TAG:TBPM=120"));
    assert!(ffprobe_tags(&lib.join("a.flac")).contains(&format!("TAG:{flac_field}")));

    fs::set_permissions(&locked, fs::Permissions::from_mode(0o644)).unwrap();
    let again = tag(&[&lib.join("a.flac"), &lib.join("c.mp3")], &[]);
    assert!(again.status.success(), "{again:?}");
    for row in tag_rows(&again) {
        assert_eq!(row[1], "unchanged", "{row:?}");
    }
}

/// With the key among the descriptors (the default), `tag` writes the key it measures in
/// the notation asked for: an A minor triad over clicks reads as hour 8 of the Camelot
/// wheel (A minor or its relative, C major), and `TKEY` holds what the row says.
#[test]
fn tag_writes_the_key_it_measures_in_the_notation_asked_for() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chord.mp3");
    let triad = "aevalsrc='0.2*sin(2*PI*220*t)+0.2*sin(2*PI*261.63*t)+0.2*sin(2*PI*329.63*t)\
                 +if(lt(mod(t,0.5),0.01),0.3*sin(2*PI*2000*t),0)':s=22050:d=12";
    let args = [
        "-v",
        "error",
        "-f",
        "lavfi",
        "-i",
        triad,
        "-ac",
        "1",
        s(&path),
    ];
    tool("ffmpeg", "ffmpeg", &args);
    let out = tag(&[&path], &["--key-notation", "camelot"]);
    assert!(out.status.success(), "{out:?}");
    let row = &tag_rows(&out)[0];
    assert!(["8A", "8B"].contains(&row[3].as_str()), "{row:?}");
    assert_eq!(row[4], format!("TBPM: - -> 120; TKEY: - -> {}", row[3]));
    assert!(mutagen_tags(&path).contains(&format!("TKEY={}", row[3])));
}

/// With the loudness among the descriptors, the track's ReplayGain gain and peak go into
/// the tags with the values `analyze` writes in its row for the same file.
#[test]
fn tag_writes_the_replaygain_analyze_measures() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "a.flac", &[]);
    let descriptors = ["--descriptors", "tempo,key,loudness"];
    let analyzed = eval_cli()
        .arg("analyze")
        .arg(&path)
        .args(descriptors)
        .output()
        .unwrap();
    assert!(analyzed.status.success(), "{analyzed:?}");
    let mut reader = csv::Reader::from_reader(&analyzed.stdout[..]);
    let headers = reader.headers().unwrap().clone();
    let row = reader.records().next().unwrap().unwrap();
    let cell = |name: &str| row[headers.iter().position(|h| h == name).unwrap()].to_string();
    let (gain, peak) = (
        cell("replaygain_track_gain_db"),
        cell("replaygain_track_peak"),
    );
    assert!(!gain.is_empty() && !peak.is_empty(), "{row:?}");

    let out = tag(&[&path], &descriptors);
    assert!(out.status.success(), "{out:?}");
    let tags = mutagen_tags(&path);
    assert!(
        tags.contains(&format!("REPLAYGAIN_TRACK_GAIN={gain} dB"))
            && tags.contains(&format!("REPLAYGAIN_TRACK_PEAK={peak}")),
        "{tags:?}"
    );
    assert!(
        !tags.iter().any(|t| t.starts_with("REPLAYGAIN_ALBUM")),
        "{tags:?}"
    );
}

/// A held chord has no pulse: `tag` writes its key and ReplayGain, no BPM, and says why.
/// Before, the tempo stage's verdict lost the whole file and nothing was written.
#[test]
fn a_file_without_a_pulse_gets_its_key_and_replaygain_but_no_bpm() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("held-chord.flac");
    let chord = synth_music::presets::held_chord(20.0, 22_050);
    synth_music::write_flac(&path, &chord, 22_050, 1).unwrap();
    let out = tag(&[&path], &["--descriptors", "tempo,key,loudness"]);
    assert!(out.status.success(), "{out:?}");
    let row = &tag_rows(&out)[0];
    assert_eq!(row[1..4], ["tagged", "", "Am"], "{row:?}");
    assert!(row[5].starts_with("no BPM: tempo: no_pulse: "), "{row:?}");
    let tags = mutagen_tags(&path);
    assert!(tags.contains("INITIALKEY=Am"), "{tags:?}");
    assert!(
        tags.iter().any(|t| t.starts_with("REPLAYGAIN_TRACK_GAIN=")),
        "{tags:?}"
    );
    assert!(!tags.iter().any(|t| t.starts_with("BPM=")), "{tags:?}");
}

/// A value already in the tags is kept and said so, and the file is not rewritten; with
/// `--overwrite` it is replaced. `--dry-run` says what would change and writes nothing.
#[test]
fn existing_values_are_kept_unless_overwrite_and_dry_run_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "a.mp3", &["-metadata", "TBPM=99"]);
    assert!(mutagen_tags(&path).contains("TBPM=99"));
    let bytes = fs::read(&path).unwrap();
    let tempo = ["--descriptors", "tempo"];

    let kept = tag(&[&path], &tempo);
    assert!(kept.status.success(), "{kept:?}");
    let row = &tag_rows(&kept)[0];
    assert_eq!(
        row[1..5],
        ["unchanged", &row[2], "", "TBPM: 99 kept (new 120)"]
    );
    assert!(row[2].starts_with("120.0"), "{row:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes);

    let dry = tag(
        &[&path],
        &["--descriptors", "tempo", "--overwrite", "--dry-run"],
    );
    assert_eq!(
        tag_rows(&dry)[0][1..5],
        ["dry_run", &row[2], "", "TBPM: 99 -> 120"]
    );
    assert_eq!(fs::read(&path).unwrap(), bytes, "a dry run writes nothing");

    let before = Snapshot::of(&path);
    let replaced = tag(&[&path], &["--descriptors", "tempo", "--overwrite"]);
    assert_eq!(tag_rows(&replaced)[0][1], "tagged");
    let after = Snapshot::of(&path);
    assert!(after.mutagen.contains("TBPM=120"));
    assert_eq!(before.decoded, after.decoded);
}

/// A file that cannot be tagged safely is an error naming why, and is left as it was: a
/// read-only folder, a file with two names, tags that do not parse, a bare stream.
#[test]
fn files_that_cannot_be_tagged_safely_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let values = all_values();
    let options = TagOptions::default();
    let reason = |path: &Path| {
        let before = fs::read(path).unwrap();
        let err = tag_file(path, &values, &options).unwrap_err().to_string();
        assert_eq!(fs::read(path).unwrap(), before, "{err}");
        err
    };

    let folder = dir.path().join("locked");
    fs::create_dir(&folder).unwrap();
    let in_locked = encoded(&folder, "a.flac", &[]);
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o555)).unwrap();
    let locked_reason = reason(&in_locked);
    fs::set_permissions(&folder, fs::Permissions::from_mode(0o755)).unwrap();
    assert!(
        locked_reason.starts_with("cannot tag safely: read-only folder"),
        "{locked_reason}"
    );

    let linked = encoded(dir.path(), "b.flac", &[]);
    fs::hard_link(&linked, dir.path().join("b2.flac")).unwrap();
    assert_eq!(
        reason(&linked),
        "cannot tag safely: the file has 2 hard links; replacing it would split them"
    );

    // An ID3v2 frame whose ID is not one.
    let damaged = encoded(dir.path(), "c.mp3", &[]);
    let mut bytes = fs::read(&damaged).unwrap();
    assert_eq!(&bytes[10..14], b"TIT2");
    bytes[11] = 1;
    fs::write(&damaged, &bytes).unwrap();
    let damaged_reason = reason(&damaged);
    assert!(
        damaged_reason.ends_with("failed to parse a frame ID: 0x[54, 1, 54, 32]"),
        "{damaged_reason}"
    );

    let raw = encoded(dir.path(), "d.aac", &["-c:a", "aac", "-f", "adts"]);
    let raw_reason = reason(&raw);
    assert!(raw_reason.starts_with("no tags written: "), "{raw_reason}");

    // A fragmented MP4: lofty grew `moov` without moving the fragments' offsets, and the
    // audio no longer decoded.
    let fragmented = encoded(
        dir.path(),
        "f.m4a",
        &["-c:a", "aac", "-movflags", "frag_keyframe+empty_moov"],
    );
    let fragmented_reason = reason(&fragmented);
    assert!(
        fragmented_reason.starts_with("no tags written: a fragmented MP4"),
        "{fragmented_reason}"
    );
    // An Ogg FLAC (`.oga`, which a folder walk takes): lofty took it for MPEG audio and
    // wrote an ID3v2 tag in front of its first page.
    let ogg_flac = encoded(dir.path(), "g.oga", &["-c:a", "flac", "-f", "ogg"]);
    let ogg_reason = reason(&ogg_flac);
    assert!(
        ogg_reason.starts_with("no tags written: an Ogg stream of FLAC"),
        "{ogg_reason}"
    );

    // A copy still at work holds the file open for writing: replaced now, the rest of the
    // copy would go to the old file, which no name holds any more.
    let copying = encoded(dir.path(), "e.flac", &[]);
    let writer = fs::File::options().append(true).open(&copying).unwrap();
    assert_eq!(
        reason(&copying),
        "cannot tag safely: another process has the file open for writing (a copy or \
         download in progress?); left as it is"
    );
    drop(writer);
    assert!(tag_file(&copying, &values, &options).unwrap().written);
}

/// A link is followed: the file it names is tagged and the link stays a link.
#[test]
fn a_link_tags_the_file_it_names() {
    let dir = tempfile::tempdir().unwrap();
    let target = encoded(dir.path(), "a.flac", &[]);
    let link = dir.path().join("link.flac");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    tag_file(&link, &all_values(), &TagOptions::default()).unwrap();
    assert!(
        fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(mutagen_tags(&target).contains("BPM=127.60"));
}

/// `eval-cli tag FILE` held between flushing its tagged copy and renaming it (the pause
/// pipe, opened by this test), then SIGKILLed: the file is the old one, byte for byte.
/// Released instead, the rename makes it the new one, tagged, its audio the same.
#[test]
fn sigkill_before_the_rename_leaves_the_old_file_and_after_it_the_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "a.flac", &[]);
    let pause = fifo(&dir.path().join("pause"));
    let before = Snapshot::of(&path);
    let bytes = fs::read(&path).unwrap();

    let held = Held::start(&path, &pause);
    let copies = temporary_copies(dir.path());
    assert_eq!(
        copies.len(),
        1,
        "the tagged copy is flushed before the pause"
    );
    let tagged = bpm_lines(&mutagen_tags(&copies[0]));
    assert_eq!(tagged.len(), 1, "{tagged:?}");
    let status = held.kill();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert_eq!(fs::read(&path).unwrap(), bytes, "the old file, whole");
    fs::remove_file(&copies[0]).unwrap();

    let held = Held::start(&path, &pause);
    let status = held.release();
    assert!(status.success(), "{status:?}");
    let after = Snapshot::of(&path);
    assert_eq!(before.kept_by(&after, "a.flac"), tagged);
    assert!(temporary_copies(dir.path()).is_empty());
}

/// The `BPM=120.0x` lines among `tags`: the click track's tempo as Vorbis comments hold it.
fn bpm_lines(tags: &BTreeSet<String>) -> BTreeSet<String> {
    tags.iter()
        .filter(|l| l.starts_with("BPM=120.0") || l.starts_with("BPM=119.9"))
        .cloned()
        .collect()
}

/// The hidden copies `tag` makes beside a file (`.NAME.XXXXXX.tagging`).
fn temporary_copies(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_str().unwrap().ends_with(".tagging"))
        .collect()
}

/// A `tag` process stopped at its pause pipe: this test holds the pipe's write end, so
/// the process waits until it is closed. A thread waits for the process; should it end
/// on its own before the pause, that thread opens the pipe itself (without blocking) so
/// that this test's open of the write end returns and the test fails instead of hanging.
/// An end the test causes (a kill, a release) is announced first, so that no stray open
/// of the pipe can pair with the next process's.
struct Held {
    pid: u32,
    writer: fs::File,
    expected_end: Arc<AtomicBool>,
    exited: std::sync::mpsc::Receiver<std::process::ExitStatus>,
}

impl Held {
    fn start(path: &Path, pause: &Path) -> Self {
        let mut child = eval_cli_process()
            .args(["tag", s(path), "--descriptors", "tempo", "--workers", "1"])
            .env(PAUSE_FIFO_ENV, pause)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let (tx, exited) = std::sync::mpsc::channel();
        let expected_end = Arc::new(AtomicBool::new(false));
        let expected = Arc::clone(&expected_end);
        let pipe = pause.to_path_buf();
        std::thread::spawn(move || {
            let status = child.wait().unwrap();
            tx.send(status).unwrap();
            if !expected.load(Ordering::SeqCst) {
                use std::os::unix::fs::OpenOptionsExt;
                let _ = fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NONBLOCK)
                    .open(pipe);
            }
        });
        // Opening the write end returns once the process opened the read end: it is
        // then between its flushed copy and the rename.
        let writer = fs::OpenOptions::new().write(true).open(pause).unwrap();
        if let Ok(status) = exited.try_recv() {
            panic!("tag ended before its pause: {status:?}");
        }
        Held {
            pid,
            writer,
            expected_end,
            exited,
        }
    }

    fn kill(self) -> std::process::ExitStatus {
        self.expected_end.store(true, Ordering::SeqCst);
        let killed = Process::new("kill")
            .args(["-KILL", &self.pid.to_string()])
            .status()
            .unwrap();
        assert!(killed.success());
        self.exited.recv().unwrap()
    }

    fn release(self) -> std::process::ExitStatus {
        self.expected_end.store(true, Ordering::SeqCst);
        drop(self.writer);
        self.exited.recv().unwrap()
    }
}

/// Rows come out as files finish, in input order: the first file's row is on stdout while
/// the second is still held by a test gate, not after the whole batch. The gate opens only
/// once the first row is read, so nothing here depends on time: output held back for the
/// batch would leave the test waiting for a row that never comes.
#[test]
fn each_row_is_printed_as_soon_as_the_rows_before_it_are() {
    use std::io::{BufRead, BufReader};

    let dir = tempfile::tempdir().unwrap();
    click_wav(&dir.path().join("a.wav"), 120.0, 12.0);
    let gate = dir.path().join("gate-b.wav");
    click_wav(&gate, 120.0, 12.0);
    let open = dir.path().join("gate-b.wav.open");
    let mut child = eval_cli_process()
        .args(["tag", "--dry-run", "--test-gates", "--workers", "2"])
        .args(["--progress", "off"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let header = lines.next().unwrap().unwrap();
    assert!(header.starts_with("path,"), "{header}");
    let first = lines.next().unwrap().unwrap();
    assert!(
        first.contains("a.wav") && first.contains("dry_run"),
        "{first}"
    );
    assert!(
        child.try_wait().unwrap().is_none(),
        "gate-b.wav is still held"
    );
    fs::write(&open, "").unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains("gate-b.wav"), "{second}");
    assert!(lines.next().is_none());
    assert!(child.wait().unwrap().success());
}

/// A file renamed over, or rewritten in place, after `tag` took its identity and before
/// the tags are written holds other audio than the values measured: it is skipped with
/// that reason and left as the user left it. Both files are held at test gates until they
/// have been changed, and the gates announce their arrival through named pipes, so the
/// order is the test's, not the machine's (a regression that never reaches a gate hangs
/// this test rather than failing it).
#[test]
fn a_file_replaced_while_it_is_analysed_is_not_tagged() {
    let dir = tempfile::tempdir().unwrap();
    let renamed = dir.path().join("gate-renamed.wav");
    let rewritten = dir.path().join("gate-rewritten.wav");
    click_wav(&renamed, 120.0, 12.0);
    click_wav(&rewritten, 120.0, 12.0);
    let held = |path: &Path| {
        let mut name = path.as_os_str().to_owned();
        name.push(".held");
        PathBuf::from(name)
    };
    // Named pipes: each gate's write of its `.held` waits for the read below.
    for path in [&renamed, &rewritten] {
        fifo(&held(path));
    }
    let child = eval_cli_process()
        .args(["tag", "--test-gates", "--workers", "2", "--progress", "off"])
        .args(["--descriptors", "tempo"])
        .args([&renamed, &rewritten])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    // Both workers are at their gates, their files' identities taken, once both reads end.
    for path in [&renamed, &rewritten] {
        fs::read(held(path)).unwrap();
    }
    // Another recording renamed over the first; the second rewritten where it stands.
    let other = dir.path().join("other.tmp");
    click_wav(&other, 90.0, 12.0);
    fs::rename(&other, &renamed).unwrap();
    click_wav(&rewritten, 90.0, 14.0);
    let replaced = [fs::read(&renamed).unwrap(), fs::read(&rewritten).unwrap()];
    for path in [&renamed, &rewritten] {
        let mut open = path.as_os_str().to_owned();
        open.push(".open");
        fs::write(PathBuf::from(open), b"").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows = tag_rows(&out);
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row[1], "skipped", "{row:?}");
        assert_eq!(
            row[5],
            "cannot tag safely: the file changed while it was being analysed; left as it is",
            "{row:?}"
        );
    }
    assert_eq!(
        [fs::read(&renamed).unwrap(), fs::read(&rewritten).unwrap()],
        replaced
    );
    assert!(temporary_copies(dir.path()).is_empty());
}

/// Two reproduced losses, each skipped now as damaged tags and left byte for byte, the
/// exit status 1. An MP3 opening with two ID3v2 tags (players read the first): lofty
/// merged the second into the first, so the title players show went from `first` to the
/// second tag's. An M4A whose `©nam` says it runs past its `ilst`: lofty stopped reading
/// the list there without an error, so the title was dropped and the `tmpo` after it
/// replaced as if there were none (`tmpo: - -> 120`).
#[test]
fn tags_lofty_would_misread_are_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mp3 = encoded(dir.path(), "two-tags.mp3", &[]);
    let frame = [&b"TIT2\0\0\0\x06\0\0\0first"[..]].concat();
    let first = [&b"ID3\x03\0\0\0\0\0"[..], &[frame.len() as u8], &frame].concat();
    let second_at = first.len();
    fs::write(&mp3, [first, fs::read(&mp3).unwrap()].concat()).unwrap();
    assert!(ffprobe_tags(&mp3).contains("TAG:title=first"));

    let m4a = encoded(dir.path(), "long-title.m4a", &[]);
    let tempo = TagValues {
        bpm: Some(99.0),
        ..TagValues::default()
    };
    tag_file(&m4a, &tempo, &TagOptions::default()).unwrap();
    let mut bytes = fs::read(&m4a).unwrap();
    let title = bytes.windows(4).position(|w| w == b"\xa9nam").unwrap();
    bytes[title - 4..title].copy_from_slice(&0x00ff_ffffu32.to_be_bytes());
    fs::write(&m4a, &bytes).unwrap();

    let before = [fs::read(&mp3).unwrap(), fs::read(&m4a).unwrap()];
    let out = tag(
        &[&mp3, &m4a],
        &["--descriptors", "tempo", "--progress", "off"],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows = tag_rows(&out);
    let reasons: Vec<(&str, &str)> = rows.iter().map(|r| (&*r[1], &*r[5])).collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        reasons[0].0 == "skipped"
            && reasons[0].1.starts_with(&format!(
                "damaged tags or container: two ID3v2 tags one after the other \
                 (the second at byte {second_at})"
            )),
        "{reasons:?}"
    );
    assert!(
        reasons[1].0 == "skipped"
            && reasons[1]
                .1
                .starts_with("damaged tags or container: the MP4 atom `©nam` at byte ")
            && reasons[1].1.contains("is 16777215 bytes long, but only "),
        "{reasons:?}"
    );
    assert!(
        [fs::read(&mp3).unwrap(), fs::read(&m4a).unwrap()] == before,
        "a file was rewritten"
    );
    assert!(ffprobe_tags(&mp3).contains("TAG:title=first"));
    assert!(temporary_copies(dir.path()).is_empty());
}

/// Whether a SIGTERM sent to the process `pid` is still pending (not yet delivered), by
/// its `/proc` status; false once it is gone.
fn sigterm_pending(pid: u32) -> bool {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    let bit = 1u64 << (libc::SIGTERM - 1);
    status
        .lines()
        .filter(|l| l.starts_with("ShdPnd:") || l.starts_with("SigPnd:"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|mask| u64::from_str_radix(mask, 16).is_ok_and(|m| m & bit != 0))
}

/// `kill ARGS` (a process that has ended meanwhile is no failure here: what it printed is
/// what the test reads).
fn send(args: &[&str]) {
    Process::new("kill").args(args).status().unwrap();
}

/// One SIGTERM relayed twice, as GNU `timeout` relays it (to its child, then to the
/// child's process group), is one request to stop: the run ends as after one, with the
/// row of the file it had tagged (held back behind the file before it, which a gate
/// holds), the `cancelled` line and status 130. Before, the copy counted as a second
/// Ctrl-C and the run exited at once: a rewritten file without a row, no `cancelled` line.
/// The signals go once the tagged file's progress line is out, and the copy once the
/// first is delivered (no longer pending), so the kernel cannot merge the two into one.
#[test]
fn one_sigterm_relayed_twice_stops_once_with_the_rows_of_the_files_finished() {
    use std::io::{BufRead, BufReader, Read};
    use std::os::unix::process::CommandExt;

    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("gate-a.wav");
    let done = dir.path().join("z.wav");
    click_wav(&held, 120.0, 12.0);
    click_wav(&done, 120.0, 12.0);
    let before = [fs::read(&held).unwrap(), fs::read(&done).unwrap()];
    let mut child = eval_cli_process()
        .args([
            "tag",
            "--test-gates",
            "--workers",
            "2",
            "--progress",
            "jsonl",
        ])
        .args(["--descriptors", "tempo"])
        .arg(dir.path())
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id().to_string();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut events = String::new();
    loop {
        let start = events.len();
        let read = stderr.read_line(&mut events).unwrap();
        assert!(read > 0, "tag ended before z.wav was tagged: {events}");
        let line = &events[start..];
        if line.contains(r#""event":"file""#) && line.contains("z.wav") {
            break;
        }
    }
    assert_ne!(fs::read(&done).unwrap(), before[1], "z.wav is tagged");
    send(&["-TERM", &pid]);
    while sigterm_pending(child.id()) {
        std::thread::yield_now();
    }
    send(&["-TERM", "--", &format!("-{pid}")]);
    stderr.read_to_string(&mut events).unwrap();
    let mut rows = Vec::new();
    stdout.read_to_end(&mut rows).unwrap();
    let status = child.wait().unwrap();
    let out = Output {
        status,
        stdout: rows,
        stderr: events.into_bytes(),
    };
    assert_eq!(out.status.code(), Some(130), "{out:?}");
    let rows = tag_rows(&out);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert!(
        rows[0][0].ends_with("z.wav") && rows[0][1] == "tagged",
        "{rows:?}"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("eval-cli: cancelled: 1 of 2 files finished"),
        "{stderr}"
    );
    assert_eq!(
        fs::read(&held).unwrap(),
        before[0],
        "the held file is untouched"
    );
}

/// One file named three ways (its path, the same path spelled `./`, a symbolic link to it)
/// is analysed and tagged once, under its first name: the `./` spelling is the same path
/// (one name, one row), and the link's row says which file it is, `unchanged`, no failure. The same rows for one worker and for four:
/// before, four workers raced their rewrites of the one file (a false "the file changed
/// while it was being analysed", exit 1, or two `tagged` rows), one worker did not.
#[test]
fn a_file_named_twice_is_tagged_once_whatever_the_worker_count() {
    let mut outputs = Vec::new();
    for workers in ["4", "1"] {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("m");
        fs::create_dir(&lib).unwrap();
        let file = lib.join("a.wav");
        click_wav(&file, 120.0, 12.0);
        let link = lib.join("link.wav");
        std::os::unix::fs::symlink("a.wav", &link).unwrap();
        let out = eval_cli()
            .current_dir(dir.path())
            .args(["tag", "--descriptors", "tempo", "--workers", workers])
            .args(["m/a.wav", "./m/a.wav", "m/link.wav"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "--workers {workers}: {out:?}");
        let rows = tag_rows(&out);
        let cells: Vec<[&str; 3]> = rows
            .iter()
            .map(|r| [r[0].as_str(), r[1].as_str(), r[5].as_str()])
            .collect();
        assert_eq!(
            cells,
            [
                ["m/a.wav", "tagged", ""],
                ["m/link.wav", "unchanged", "the same file as m/a.wav"],
            ],
            "--workers {workers}"
        );
        assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
        outputs.push(out.stdout);
    }
    assert_eq!(outputs[0], outputs[1], "the same rows for 4 workers and 1");
}

/// What `tag` says of a file another tagger holds.
const CLAIMED: &str = "cannot tag safely: another eval-cli is tagging it; left as it is";

/// A file whose lock another tagger holds (taken here as every tagger takes it) is
/// skipped with that reason and left byte for byte, exit 1; a dry run beside it claims
/// nothing and says what would change; let go, the file is tagged. Before, it was tagged
/// under the other tagger: two runs at once both said `tagged`, and the later rename
/// replaced the earlier's values unseen, `--overwrite` or not.
#[test]
fn a_file_another_tagger_holds_is_skipped_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "a.mp3", &[]);
    let bytes = fs::read(&path).unwrap();
    let held = fs::File::open(&path).unwrap();
    held.try_lock().unwrap();
    let args = ["--descriptors", "tempo", "--progress", "off"];
    let out = tag(&[&path], &args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let rows = tag_rows(&out);
    assert_eq!(
        (&*rows[0][1], &*rows[0][5]),
        ("skipped", CLAIMED),
        "{rows:?}"
    );
    assert!(
        fs::read(&path).unwrap() == bytes,
        "rewritten under its lock"
    );
    assert!(temporary_copies(dir.path()).is_empty());

    let dry = tag(&[&path], &[&args[..], &["--dry-run"]].concat());
    assert!(dry.status.success(), "{dry:?}");
    assert_eq!(tag_rows(&dry)[0][1], "dry_run");

    drop(held);
    let out = tag(&[&path], &args);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(tag_rows(&out)[0][1], "tagged");
}

/// Two `tag` processes on one file: the first is held between flushing its tagged copy
/// and renaming it (the pause pipe); the second, run meanwhile, skips the file as the
/// first's, and the first's values land. Before, the second tagged the file too, and a
/// rename of either could replace the other's values without `--overwrite`.
#[test]
fn a_second_tag_run_skips_the_file_the_first_is_tagging() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "a.flac", &[]);
    let pause = fifo(&dir.path().join("pause"));
    let first = Held::start(&path, &pause);
    let copy = bpm_lines(&mutagen_tags(&temporary_copies(dir.path())[0]));
    let second = tag(&[&path], &["--descriptors", "tempo", "--max-bpm", "80"]);
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    let rows = tag_rows(&second);
    assert_eq!(
        (&*rows[0][1], &*rows[0][5]),
        ("skipped", CLAIMED),
        "{rows:?}"
    );
    assert!(first.release().success());
    assert_eq!(
        bpm_lines(&mutagen_tags(&path)),
        copy,
        "the first run's values"
    );
    assert!(temporary_copies(dir.path()).is_empty());
}

/// A minimal ID3v2.4 tag holding `TBPM` = 99, as `mid3v2 --TBPM 99` prepends it.
fn id3v24_tbpm_99() -> Vec<u8> {
    let frame = [&b"TBPM\0\0\0\x03\0\0\x0399"[..]].concat();
    [&b"ID3\x04\0\0\0\0\0"[..], &[frame.len() as u8], &frame].concat()
}

/// A FLAC file that opens with an ID3v2 tag: lofty reads it but cannot write it. The dry
/// run said `BPM: - -> ...` (a change the real run could not make, the tag's `TBPM` 99
/// unseen), and the real run skipped it with "attempted to write a tag to a format that
/// does not support it". Now both skip it with the same row, saying what to do.
#[test]
fn a_flac_behind_an_id3v2_tag_is_skipped_by_the_dry_run_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = encoded(dir.path(), "id3.flac", &[]);
    fs::write(&path, [id3v24_tbpm_99(), fs::read(&path).unwrap()].concat()).unwrap();
    let bytes = fs::read(&path).unwrap();
    let args = ["--descriptors", "tempo", "--progress", "off"];
    let dry = tag(&[&path], &[&args[..], &["--dry-run"]].concat());
    let real = tag(&[&path], &args);
    for out in [&dry, &real] {
        assert_eq!(out.status.code(), Some(1), "{out:?}");
    }
    let rows = tag_rows(&real);
    assert_eq!(tag_rows(&dry), rows, "the dry run's row is the real run's");
    assert_eq!(rows[0][1], "skipped");
    assert_eq!(
        rows[0][5],
        "no tags written: an ID3v2 tag sits in front of the FLAC stream; FLAC keeps its \
         tags as Vorbis comments, and this tool does not rewrite a file with both: remove \
         the ID3 tag (`mid3v2 --delete-all FILE`, from python3-mutagen) and tag again"
    );
    assert!(fs::read(&path).unwrap() == bytes, "rewritten");
    assert!(temporary_copies(dir.path()).is_empty());
}

/// The chunks of the RIFF file `bytes` (ID, size), each checked to fit, and to be followed
/// by its pad byte when its size is odd; the RIFF size must be the file's length less 8.
fn riff_chunks(bytes: &[u8]) -> Vec<(String, u32)> {
    let le32 = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert_eq!(&bytes[..4], b"RIFF");
    assert_eq!(le32(4) as usize, bytes.len() - 8, "the RIFF size");
    let mut chunks = Vec::new();
    let mut at = 12;
    while at < bytes.len() {
        let id = String::from_utf8_lossy(&bytes[at..at + 4]).into_owned();
        let size = le32(at + 4);
        let end = at + 8 + size as usize + size as usize % 2;
        assert!(
            end <= bytes.len(),
            "{id} of {size} bytes at {at} runs past the file"
        );
        chunks.push((id, size));
        at = end;
    }
    chunks
}

/// A tagged WAV's `ID3 ` chunk of odd length is followed by its pad byte (RIFF chunks
/// start at even offsets), when it is added and when it is rewritten longer or shorter:
/// the tempo's digits (`99`, `120`) make the tag one byte shorter or longer. A guard on
/// lofty's chunk writer, which pads them (0.25): no reader found a chunk out of step.
#[test]
fn a_tagged_wav_keeps_every_chunk_padded_to_an_even_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.wav");
    let mut sizes = BTreeSet::new();
    for (bpm, overwrite) in [(99.0, false), (120.0, true), (99.0, true)] {
        if !overwrite {
            click_wav(&path, 120.0, 3.0);
        }
        let values = TagValues {
            bpm: Some(bpm),
            ..TagValues::default()
        };
        let options = TagOptions {
            overwrite,
            ..TagOptions::default()
        };
        assert!(tag_file(&path, &values, &options).unwrap().written);
        let chunks = riff_chunks(&fs::read(&path).unwrap());
        let id3: Vec<u32> = chunks
            .iter()
            .filter(|(id, _)| id == "ID3 " || id == "id3 ")
            .map(|&(_, size)| size)
            .collect();
        assert_eq!(id3.len(), 1, "{chunks:?}");
        sizes.insert(id3[0] % 2);
    }
    assert_eq!(sizes.len(), 2, "an odd tag and an even one");
}
