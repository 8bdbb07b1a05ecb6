//! The promise of the product: every front end writes the same bytes for one library.
//! `analyze`, `analyze --shard K/N` then `merge`, `dist` through a real broker and the
//! HTTP service each run one scenario, and each result must be `analyze`'s CSV to the
//! byte, its failed rows and its exact path cells included.

use std::fs;
use std::path::Path;

use crate::util::broker::{RedisServer, dist, merged_bytes};
use crate::util::service::{Events, Server, get, root, run_request, submit_request};
use crate::util::{analyze, assert_ok, click_flac, click_wav, pulsed_sine_wav, rows, s};

/// Runs the library `root/LIB` through every front end and fails, naming the front end,
/// where one's bytes differ from those of `analyze`; those bytes. `root` is canonical (the
/// service's rows name files under it) and the library holds a file that fails (the
/// exit status of every front end is then 1).
fn assert_front_ends_agree(root: &Path, lib: &str) -> Vec<u8> {
    assert_front_ends_agree_on(root, lib, &[], serde_json::json!({}))
}

/// `flags` after `args`.
fn joined<'a>(flags: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
    [args, flags].concat()
}

/// [`assert_front_ends_agree`] with settings given to every front end: `flags` to analyze,
/// the shards and `dist submit`, the same settings as the fields of `fields` in the served
/// job's request (`--descriptors tempo,key` is `{"descriptors": ["tempo", "key"]}`).
fn assert_front_ends_agree_on(
    root: &Path,
    lib: &str,
    flags: &[&str],
    fields: serde_json::Value,
) -> Vec<u8> {
    let work = root.parent().unwrap().join("front-ends");
    fs::create_dir_all(&work).unwrap();
    let folder = root.join(lib);

    let reference = analyze(&joined(flags, &["--workers", "1"]), &[&folder]);
    assert_eq!(reference.status.code(), Some(1), "{reference:?}");
    let reference = reference.stdout;
    let mut results = Vec::new();

    let out = work.join("analyze.csv");
    let run = analyze(
        &joined(flags, &["--workers", "3", "--out", s(&out)]),
        &[&folder],
    );
    assert_eq!(run.status.code(), Some(1), "{run:?}");
    results.push((
        "analyze --workers 3 --out".to_string(),
        fs::read(&out).unwrap(),
    ));

    for count in [2, 3] {
        let parts: Vec<String> = (1..=count)
            .map(|k| {
                let part = work.join(format!("part-{k}-of-{count}.csv"));
                let shard = format!("{k}/{count}");
                let run = analyze(
                    &joined(flags, &["--shard", &shard, "--out", s(&part)]),
                    &[&folder],
                );
                assert!(matches!(run.status.code(), Some(0 | 1)), "{run:?}");
                s(&part).to_string()
            })
            .collect();
        let merged = work.join(format!("merged-{count}.csv"));
        let mut args = vec!["merge"];
        args.extend(parts.iter().map(String::as_str));
        args.extend(["--out", s(&merged)]);
        assert_ok(
            &crate::util::eval_cli().args(&args).output().unwrap(),
            "merge",
        );
        results.push((
            format!("{count} shards, merged"),
            fs::read(&merged).unwrap(),
        ));
    }

    let broker = RedisServer::start();
    assert_ok(
        &dist(&broker, "submit", "j", &joined(flags, &[s(&folder)])),
        "dist submit",
    );
    assert_ok(
        &dist(&broker, "work", "j", &["--workers", "2"]),
        "dist work",
    );
    results.push(("dist".to_string(), merged_bytes(&broker, "j", &work)));

    let server = Server::start(root, &["--workers", "2"]);
    let mut request = serde_json::json!({ "paths": [lib] });
    let fields = fields
        .as_object()
        .expect("request fields are an object")
        .clone();
    request.as_object_mut().unwrap().extend(fields);
    results.push(("serve".to_string(), run_request(&server, &request)));

    for (front_end, bytes) in results {
        assert_eq!(
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&reference),
            "{front_end} differs from analyze"
        );
        assert_eq!(bytes, reference, "{front_end} differs from analyze");
    }
    reference
}

/// Clicks in WAV and FLAC, one in a subfolder, a name that is not UTF-8, a broken file and
/// a file that is not audio: one row each (but the last), the same bytes everywhere.
#[cfg(unix)]
#[test]
fn every_front_end_gives_the_same_bytes() {
    use std::os::unix::ffi::OsStrExt;

    let (_dir, root) = root();
    let lib = root.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    click_wav(&lib.join("a-120.wav"), 120.0, 3.0);
    click_wav(&lib.join("sub/b-96.wav"), 96.0, 3.0);
    click_flac(&lib.join("c-140.flac"), 140.0, 3.0);
    click_wav(
        &lib.join(std::ffi::OsStr::from_bytes(b"caf\xe9.wav")),
        108.0,
        3.0,
    );
    fs::write(
        lib.join("broken.wav"),
        b"RIFF, and nothing a decoder can use",
    )
    .unwrap();
    fs::write(lib.join("notes.txt"), "not audio").unwrap();

    let table = rows(&assert_front_ends_agree(&root, "lib"));
    let lib_cell = s(&lib);
    let summary: Vec<(String, &str)> = table
        .iter()
        .map(|r| (r[0].replace(lib_cell, "LIB"), r[9].as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("LIB/a-120.wav".to_string(), "ok"),
            ("LIB/broken.wav".to_string(), "error"),
            ("LIB/c-140.flac".to_string(), "ok"),
            ("LIB/caf\\xE9.wav".to_string(), "ok"),
            ("LIB/sub/b-96.wav".to_string(), "ok"),
        ]
    );
}

/// A library of two songs with a key (8 s of synthetic music in FLAC), clicks, and a broken
/// file, under `root/keys`.
fn keyed_library(root: &Path) {
    let lib = root.join("keys");
    fs::create_dir_all(&lib).unwrap();
    for (i, spec) in [
        synth_music::presets::four_on_the_floor_128(),
        synth_music::presets::waltz_3_4(),
    ]
    .into_iter()
    .enumerate()
    {
        let spec = spec.with_seconds(8.0);
        let samples = synth_music::render(&spec);
        let path = lib.join(format!("song-{i}.flac"));
        synth_music::write_flac(&path, &samples, spec.sample_rate, spec.channels).unwrap();
    }
    click_wav(&lib.join("clicks.wav"), 120.0, 3.0);
    fs::write(lib.join("broken.wav"), b"RIFF, and no audio").unwrap();
}

/// Music with a key, clicks without one and a broken file: the key cells, and the reason
/// where there is no key, are the same bytes through every front end.
#[test]
fn every_front_end_gives_the_same_keys() {
    let (_dir, root) = root();
    keyed_library(&root);
    let table = rows(&assert_front_ends_agree(&root, "keys"));
    let keyed: Vec<&Vec<String>> = table.iter().filter(|r| !r[11].is_empty()).collect();
    assert_eq!(keyed.len(), 2, "{table:?}");
    for row in keyed {
        assert!(
            row[11].ends_with(" major") || row[11].ends_with(" minor"),
            "{row:?}"
        );
        assert!(row[14].ends_with('A') || row[14].ends_with('B'), "{row:?}");
    }
    let clicks = table.iter().find(|r| r[0].ends_with("clicks.wav")).unwrap();
    assert!(clicks[10].starts_with("no key: "), "{clicks:?}");

    // `--progress jsonl` shows each file's key as its row has it (null without one).
    let run = analyze(&["--progress", "jsonl"], &[&root.join("keys")]);
    let shown: Vec<(String, serde_json::Value)> = String::from_utf8(run.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"] == "file")
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["key"].clone()))
        .collect();
    assert_eq!(shown.len(), table.len());
    for (path, key) in shown {
        let row = table.iter().find(|r| r[0] == path).unwrap();
        let expected = match row[11].as_str() {
            "" => serde_json::Value::Null,
            k => serde_json::Value::from(k),
        };
        assert_eq!(key, expected, "{path}");
    }
}

/// `--descriptors tempo` and a served job asking for `["tempo"]` give the same rows: the
/// tempo of the default run, the key cells empty and no word about a key.
#[test]
fn tempo_alone_is_the_same_everywhere_and_leaves_the_key_cells_empty() {
    let (_dir, root) = root();
    keyed_library(&root);
    let folder = root.join("keys");
    let both = rows(&analyze(&[], &[&folder]).stdout);
    let alone = analyze(&["--descriptors", "tempo"], &[&folder]).stdout;
    let alone_rows = rows(&alone);
    assert_eq!(both.len(), alone_rows.len());
    for (with_key, without) in both.iter().zip(&alone_rows) {
        assert_eq!(with_key[..10], without[..10], "{without:?}");
        if without[9] == "ok" {
            assert!(without[10..].iter().all(String::is_empty), "{without:?}");
        }
    }
    assert!(both.iter().any(|r| !r[11].is_empty()), "{both:?}");
    let server = Server::start(&root, &["--workers", "2"]);
    let request = serde_json::json!({ "paths": ["keys"], "descriptors": ["tempo"] });
    let id = submit_request(&server, &request);
    Events::open(&server, id).rest();
    assert_eq!(
        get(&server, &format!("/v1/jobs/{id}/results.csv")).body,
        alone
    );
}

/// Loudness through every front end: a pulsed sine at a known level, two songs, clicks and a
/// broken file give the same loudness cells everywhere; the sine reads its level.
#[test]
fn every_front_end_gives_the_same_loudness() {
    let (_dir, root) = root();
    keyed_library(&root);
    pulsed_sine_wav(&root.join("keys/sine.wav"), -20.0, 20.0);
    let chord = synth_music::presets::held_chord(20.0, 22_050);
    synth_music::write_wav(&root.join("keys/held-chord.wav"), &chord, 22_050, 1).unwrap();
    let flags = ["--descriptors", "tempo,key,loudness"];
    let reference = assert_front_ends_agree_on(
        &root,
        "keys",
        &flags,
        serde_json::json!({ "descriptors": ["tempo", "key", "loudness"] }),
    );
    let table = rows(&reference);
    let ok: Vec<&Vec<String>> = table.iter().filter(|r| r[9] == "ok").collect();
    assert_eq!(ok.len(), 4, "{table:?}");
    for row in &ok {
        assert!(row[15..20].iter().all(|c| !c.is_empty()), "{row:?}");
        assert!(row[20..].iter().all(String::is_empty), "no album: {row:?}");
    }
    let sine = table.iter().find(|r| r[0].ends_with("sine.wav")).unwrap();
    let lufs: f64 = sine[15].parse().unwrap();
    assert!((lufs + 23.01).abs() < 0.1, "{sine:?}");

    // A held chord has no pulse: a failed row without a tempo, with its audio, key and
    // loudness, the same everywhere; the cache serves the same bytes on a second run.
    let chord = table
        .iter()
        .find(|r| r[0].ends_with("held-chord.wav"))
        .unwrap();
    assert_eq!(chord[9], "error", "{chord:?}");
    assert!(chord[10].starts_with("tempo: no_pulse: "), "{chord:?}");
    assert!(chord[1..5].iter().all(String::is_empty), "{chord:?}");
    assert_eq!(
        (chord[5].as_str(), chord[8].as_str()),
        ("20.000", "pcm_s16le")
    );
    assert_eq!((chord[11].as_str(), chord[14].as_str()), ("A minor", "8A"));
    assert!(chord[15..20].iter().all(|c| !c.is_empty()), "{chord:?}");
    let cache = root.parent().unwrap().join("cache");
    let cached = [
        flags[0],
        flags[1],
        "--cache",
        s(&cache),
        "--progress",
        "jsonl",
    ];
    // Every file but the broken one is stored, then served.
    for (stored, hits) in [(5, 0), (0, 5)] {
        let run = analyze(&cached, &[&root.join("keys")]);
        assert_eq!(run.status.code(), Some(1), "{run:?}");
        assert_eq!(
            String::from_utf8_lossy(&run.stdout),
            String::from_utf8_lossy(&reference)
        );
        let cache_event = String::from_utf8(run.stderr)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|e| e["event"] == "cache")
            .unwrap();
        assert_eq!(
            (cache_event["stored"].clone(), cache_event["hits"].clone()),
            (stored.into(), hits.into())
        );
    }
}

/// Two jigs and a 12/8 shuffle (synthetic, 20 s; tempo in dotted quarters) and a broken
/// file: `--compound-beat dotted-quarter`, a served job's `"compound_beat"`, gives the same
/// rows through every front end, the tempo a dancer taps; the default reads other rows.
#[test]
fn every_front_end_reads_compound_meter_alike() {
    use synth_music::{Meter, Style, TrackSpec};

    let (_dir, root) = root();
    let lib = root.join("jigs");
    fs::create_dir_all(&lib).unwrap();
    let songs = [
        (Style::Jig, Meter::SixEight, 96.0),
        (Style::Jig, Meter::TwelveEight, 104.0),
        (Style::Shuffle, Meter::TwelveEight, 66.0),
    ];
    for (i, (style, meter, bpm)) in songs.into_iter().enumerate() {
        let spec = TrackSpec::new(bpm, style)
            .with_meter(meter)
            .with_seconds(20.0)
            .with_seed(9200 + i as u64);
        let path = lib.join(format!("{i}-{bpm}.flac"));
        let samples = synth_music::render(&spec);
        synth_music::write_flac(&path, &samples, spec.sample_rate, spec.channels).unwrap();
    }
    fs::write(lib.join("broken.wav"), b"RIFF, and no audio").unwrap();
    let flags = ["--compound-beat", "dotted-quarter"];
    let fields = serde_json::json!({ "compound_beat": "dotted-quarter" });
    let reference = assert_front_ends_agree_on(&root, "jigs", &flags, fields);
    let table = rows(&reference);
    for (i, (_, _, bpm)) in songs.into_iter().enumerate() {
        let row = table
            .iter()
            .find(|r| r[0].ends_with(&format!("{i}-{bpm}.flac")))
            .unwrap();
        let read: f64 = row[1].parse().unwrap();
        assert!((read / bpm - 1.0).abs() <= 0.04, "{row:?}");
    }
    let default = analyze(&[], &[&lib]).stdout;
    assert_ne!(default, reference, "the default counts quarter notes");
}
