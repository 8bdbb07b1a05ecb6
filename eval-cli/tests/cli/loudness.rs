//! Loudness through `analyze`: a WAV written at a known level gives the expected cells,
//! cells stay empty unless asked for, and `--album` gates each folder's files together.

use std::fs;
use std::path::Path;

use crate::util::{RATE, analyze, pcm16_wav, pulsed_sine_wav, rows, s};

const LOUDNESS: [&str; 2] = ["--descriptors", "tempo,key,loudness"];

fn cell(row: &[String], column: usize) -> f64 {
    row[column]
        .parse()
        .unwrap_or_else(|_| panic!("column {column}: {row:?}"))
}

fn assert_near(got: f64, want: f64, tolerance: f64, row: &[String]) {
    assert!((got - want).abs() <= tolerance, "{got} vs {want}: {row:?}");
}

#[test]
fn a_wav_at_a_known_level_gives_the_expected_loudness_cells() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sine.wav");
    pulsed_sine_wav(&path, -20.0, 20.0);

    let run = analyze(
        &[&LOUDNESS[..], &["--progress", "jsonl"]].concat(),
        &[&path],
    );
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let table = rows(&run.stdout);
    let row = &table[0];
    assert_near(cell(row, 15), -23.01, 0.1, row);
    assert!((0.0..1.0).contains(&cell(row, 16)), "range: {row:?}");
    assert_near(cell(row, 17), -20.0, 0.1, row);
    assert_near(cell(row, 18), 5.01, 0.1, row);
    assert_near(cell(row, 19), 0.1, 0.002, row);
    assert_eq!(row[19].split('.').nth(1).unwrap().len(), 6, "{row:?}");
    assert_eq!(row[15].split('.').nth(1).unwrap().len(), 2, "{row:?}");
    assert!(row[20].is_empty() && row[21].is_empty(), "{row:?}");
    let event = String::from_utf8(run.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["event"] == "file")
        .unwrap();
    assert_eq!(event["loudness_lufs"].as_f64(), Some(cell(row, 15)));

    let plain = rows(&analyze(&[], &[&path]).stdout);
    assert_eq!(plain[0][..15], row[..15], "the tempo and key do not change");
    assert!(plain[0][15..].iter().all(String::is_empty), "{plain:?}");
}

/// Two folders: a loud and a quiet track, and one track alone. The first folder's album
/// reads the loud track (the quiet one falls under the relative gate), not the mean of the
/// two; a folder of one track is that track.
#[test]
fn album_cells_are_gated_over_each_folder() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir_all(lib.join("a")).unwrap();
    fs::create_dir_all(lib.join("b")).unwrap();
    pulsed_sine_wav(&lib.join("a/loud.wav"), -10.0, 20.0);
    pulsed_sine_wav(&lib.join("a/quiet.wav"), -27.0, 20.0);
    pulsed_sine_wav(&lib.join("b/alone.wav"), -20.0, 20.0);

    let album_flags = [&LOUDNESS[..], &["--album"]].concat();
    let run = analyze(&[&album_flags[..], &["--workers", "1"]].concat(), &[&lib]);
    assert_eq!(run.status.code(), Some(0), "{run:?}");
    let table = rows(&run.stdout);
    let row = |name: &str| table.iter().find(|r| r[0].ends_with(name)).unwrap();
    let (loud, quiet, alone) = (row("loud.wav"), row("quiet.wav"), row("alone.wav"));
    let mean_gain = (cell(loud, 18) + cell(quiet, 18)) / 2.0;
    assert_near(mean_gain, 3.5, 0.1, loud);
    for track in [loud, quiet] {
        assert_near(cell(track, 20), -18.0 + 13.01, 0.1, track);
        assert_eq!(track[21], loud[19], "the loudest peak: {track:?}");
    }
    assert_eq!(alone[20], alone[18], "{alone:?}");
    assert_eq!(alone[21], alone[19], "{alone:?}");

    let out = dir.path().join("album.csv");
    let parallel = analyze(
        &[&album_flags[..], &["--workers", "3", "--out", s(&out)]].concat(),
        &[&lib],
    );
    assert_eq!(parallel.status.code(), Some(0), "{parallel:?}");
    assert_eq!(fs::read(&out).unwrap(), run.stdout);

    // One folder however it is named: the quiet track named again through a link to its
    // folder is in the same album (not an album of itself, at its own gain), and counts
    // once in that album's gating.
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(lib.join("a"), &link).unwrap();
    let spelled = analyze(
        &[&album_flags[..], &["--workers", "1"]].concat(),
        &[&lib.join("a"), &link.join("quiet.wav")],
    );
    assert_eq!(spelled.status.code(), Some(0), "{spelled:?}");
    let table = rows(&spelled.stdout);
    assert_eq!(table.len(), 3, "{table:?}");
    for track in &table {
        assert_eq!(track[20..22], loud[20..22], "{track:?}");
    }
}

/// Ten seconds of digital silence is silent, not too short, with or without `--album`
/// (without it `analyze` drops the gating blocks, and once read their absence as "too
/// short"); only the album cells differ.
#[test]
fn a_silent_file_says_silence_with_and_without_album() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("silence.wav");
    fs::write(&path, pcm16_wav(std::iter::repeat_n(0, RATE as usize * 10))).unwrap();
    let row = |flags: &[&str]| {
        let run = analyze(&[&LOUDNESS[..], flags].concat(), &[&path]);
        assert_eq!(run.status.code(), Some(1), "{flags:?}: {run:?}");
        let mut table = rows(&run.stdout);
        assert_eq!(table.len(), 1, "{flags:?}: {table:?}");
        table.remove(0)
    };
    let (track, album) = (row(&[]), row(&["--album"]));
    assert_eq!(track[9], "error", "{track:?}");
    assert_eq!(
        track[10],
        "tempo: no_pulse: no onsets: silence or a constant signal; no key: no pitched sound \
         in 100 % of the audio; no loudness: every block is under the -70 LUFS gate \
         (silence, or nearly)"
    );
    assert_eq!(track[..20], album[..20]);
    assert_eq!(track[20..], ["", ""]);
    assert_eq!(album[20..], ["", "0.000000"]);
}

#[test]
fn album_needs_the_loudness_and_a_whole_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sine.wav");
    pulsed_sine_wav(&path, -20.0, 20.0);
    let refused = |flags: &[&str], reason: &str| {
        let run = analyze(flags, &[Path::new(&path)]);
        assert_eq!(run.status.code(), Some(2), "{flags:?}: {run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(stderr.contains(reason), "{flags:?}: {stderr}");
        assert!(run.stdout.is_empty(), "{flags:?}");
    };
    refused(&["--album"], "--album needs the loudness");
    let cache = dir.path().join("cache");
    refused(
        &[&LOUDNESS[..], &["--album", "--cache", s(&cache)]].concat(),
        "cannot be used with",
    );
}

/// Album mode is `analyze`'s alone: the other front ends refuse the flag rather than ignore
/// it (a served job's request refuses any unknown field, `"album"` included).
#[test]
fn album_is_refused_by_the_other_front_ends() {
    for command in [
        &["merge", "part.csv"][..],
        &["dist", "submit", "--job", "j", "lib"],
        &["serve"],
    ] {
        let run = crate::util::eval_cli()
            .args(command)
            .arg("--album")
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(2), "{command:?}: {run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains("unexpected argument '--album'"),
            "{command:?}: {stderr}"
        );
    }
}
