//! `analyze --cache DIR` as a user runs it: a second run takes every row from the cache
//! with the same bytes; the key is the content and the settings; `--force`; timeouts are
//! never stored; a writer killed with SIGKILL mid-batch leaves a cache that opens, holds
//! whole rows and finishes the batch; two processes write one cache at once.

use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use analyzer_core::AnalyzerConfig;
use eval_cli::cache::{self, ResultCache, Stored};
use eval_cli::record::AnalyzeRecord;

use crate::util::{
    analyze, click_file, click_wav, eval_cli_process, fifo, identities_taken_an_hour_on, s,
    write_tracks,
};

/// `count` files of distinct content (each its own tempo), plus one too short to measure
/// (a failure that is stored).
fn library(dir: &Path, count: usize, seconds: f64) -> PathBuf {
    let lib = dir.join("lib");
    let distinct = (0..count).map(|i| (format!("{i:02}.wav"), 80.0 + 3.0 * i as f64, seconds));
    write_tracks(&lib, distinct.chain([("zz-short.wav".into(), 120.0, 0.5)]));
    lib
}

/// Runs `analyze` and returns its stdout, checking the exit status (1: the short file).
fn csv_of(args: &[&str], paths: &[&Path]) -> (Vec<u8>, String) {
    let out = analyze(args, paths);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.stdout, String::from_utf8(out.stderr).unwrap())
}

/// `(rows from the cache, rows looked up, rows stored)` from analyze's last stderr line.
fn cache_counts(stderr: &str) -> (u64, u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.contains("rows from the cache"))
        .unwrap_or_else(|| panic!("no cache line in {stderr:?}"));
    let numbers: Vec<u64> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|w| w.parse().ok())
        .collect();
    let n = numbers.len();
    assert!(n >= 3, "{line}");
    (numbers[n - 3], numbers[n - 2], numbers[n - 1])
}

#[test]
fn a_second_run_takes_every_row_from_the_cache_with_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 6, 4.0);
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let (reference, _) = csv_of(&["--workers", "1"], &[&lib]);
    assert_eq!(reference.iter().filter(|&&b| b == b'\n').count(), 8);

    let (first, err) = csv_of(&["--workers", "2", "--cache", c], &[&lib]);
    assert_eq!(first, reference);
    assert_eq!(
        cache_counts(&err),
        (0, 7, 7),
        "the too_short error is stored too"
    );

    for workers in ["1", "2"] {
        let (again, err) = csv_of(&["--workers", workers, "--cache", c], &[&lib]);
        assert_eq!(again, reference, "workers {workers}");
        assert_eq!(cache_counts(&err), (7, 7, 0), "workers {workers}");
    }

    // Progress events of hits: the stored failure is an error again, not an ok.
    let out = analyze(&["--cache", c, "--progress", "jsonl"], &[&lib]);
    let events: Vec<serde_json::Value> = String::from_utf8(out.stderr)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let status_of = |name: &str| {
        events
            .iter()
            .find(|e| e["event"] == "file" && e["path"].as_str().unwrap().ends_with(name))
            .map(|e| e["status"].as_str().unwrap().to_string())
    };
    assert_eq!(status_of("zz-short.wav").as_deref(), Some("error"));
    assert_eq!(status_of("00.wav").as_deref(), Some("ok"));
    let cache_event = events.iter().find(|e| e["event"] == "cache").unwrap();
    assert_eq!(cache_event["hits"], 7);
    assert_eq!(cache_event["stored"], 0);
    // A hit's event says what a fresh run's says: the row's tempo and key.
    let shown = |events: &[serde_json::Value]| {
        let mut shown: Vec<String> = events
            .iter()
            .filter(|e| e["event"] == "file")
            .map(|e| format!("{} {} {}", e["path"], e["bpm"], e["key"]))
            .collect();
        shown.sort();
        shown
    };
    let fresh: Vec<serde_json::Value> =
        String::from_utf8(analyze(&["--progress", "jsonl"], &[&lib]).stderr)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(shown(&fresh), shown(&events));
    assert!(
        shown(&fresh).iter().any(|e| !e.contains(" null ")),
        "{:?}",
        shown(&fresh)
    );

    // --out, --shard and --resume go through the cache with the bytes they have without it.
    let out = dir.path().join("out.csv");
    csv_of(&["--out", s(&out), "--cache", c], &[&lib]);
    assert_eq!(fs::read(&out).unwrap(), reference);
    for shard in ["1/2", "2/2"] {
        let plain = dir.path().join(format!("plain-{}.csv", &shard[..1]));
        let cached = dir.path().join(format!("cached-{}.csv", &shard[..1]));
        csv_of(&["--shard", shard, "--out", s(&plain)], &[&lib]);
        let (_, err) = csv_of(
            &["--shard", shard, "--out", s(&cached), "--cache", c],
            &[&lib],
        );
        assert_eq!(
            fs::read(&cached).unwrap(),
            fs::read(&plain).unwrap(),
            "{shard}"
        );
        let (hits, looked_up, _) = cache_counts(&err);
        assert_eq!(hits, looked_up, "{shard}");
    }
    // A resumed file that lost its last rows gets them from the cache.
    let text = fs::read_to_string(&out).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    fs::write(&out, format!("{}\n", kept.join("\n"))).unwrap();
    identities_taken_an_hour_on(&out);
    let (_, err) = csv_of(&["--out", s(&out), "--resume", "--cache", c], &[&lib]);
    assert_eq!(fs::read(&out).unwrap(), reference);
    assert_eq!(cache_counts(&err), (4, 4, 0));
}

#[test]
fn a_renamed_or_copied_file_hits_an_edited_one_misses_other_settings_miss() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let (_, err) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(cache_counts(&err), (0, 4, 4));

    fs::rename(lib.join("00.wav"), lib.join("renamed.wav")).unwrap();
    fs::copy(lib.join("01.wav"), lib.join("01 copy.wav")).unwrap();
    click_wav(&lib.join("02.wav"), 171.0, 3.0);
    let (reference, _) = csv_of(&[], &[&lib]);
    let (cached, err) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(cached, reference);
    // renamed.wav, 01.wav, "01 copy.wav" and the short file hit; the edited 02.wav misses.
    assert_eq!(cache_counts(&err), (4, 5, 1));

    let other = ["--min-bpm", "60", "--max-bpm", "180", "--workers", "1"];
    let (reference, _) = csv_of(&other, &[&lib]);
    let (cached, err) = csv_of(&[&other[..], &["--cache", c]].concat(), &[&lib]);
    assert_eq!(cached, reference);
    // Other settings, other rows: none of the default range's is used. Only 01.wav hits,
    // on the row its twin "01 copy.wav" (before it in input order) stored in this run.
    assert_eq!(cache_counts(&err), (1, 5, 4), "other settings, other rows");
    let (_, err) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(
        cache_counts(&err).0,
        5,
        "the default settings' rows are still there"
    );
}

#[test]
fn force_analyses_again_and_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 2, 3.0);
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let (reference, _) = csv_of(&["--cache", c], &[&lib]);
    let (forced, err) = csv_of(&["--cache", c, "--force"], &[&lib]);
    assert_eq!(forced, reference);
    assert_eq!(cache_counts(&err), (0, 3, 3));
    let (_, err) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(cache_counts(&err), (3, 3, 0));
    assert_eq!(ResultCache::open(&cache_dir).unwrap().len().unwrap(), 3);

    let out = analyze(&["--force"], &[&lib]);
    assert_eq!(out.status.code(), Some(2), "--force needs --cache");
}

/// Re-records every identity the cache holds for `files` as taken an hour from now, as a
/// run an hour after the files were written would have: trusted by the next run without
/// waiting for their times to age. `content_of` gives the content to record per file.
fn record_as_an_hour_on(cache_dir: &Path, files: &[(PathBuf, PathBuf)]) {
    let cache = ResultCache::open(cache_dir).unwrap();
    let an_hour_on = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for (path, content_of) in files {
        let of = |p: &Path| cache.recorded(&cache::path_key(p).unwrap()).unwrap();
        let recorded = cache::Recorded {
            content: of(content_of).content,
            at: an_hour_on,
            ..of(path)
        };
        cache.record(cache::path_key(path).unwrap(), &recorded);
    }
}

/// The `{"event":"cache",...}` line and the `cache_mismatch` paths of a jsonl stderr.
fn cache_events(stderr: &str) -> (serde_json::Value, Vec<String>) {
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let summary = events
        .iter()
        .find(|e| e["event"] == "cache")
        .unwrap_or_else(|| panic!("no cache event in {stderr}"))
        .clone();
    let mismatches = events
        .iter()
        .filter(|e| e["event"] == "cache_mismatch")
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect();
    (summary, mismatches)
}

#[test]
fn an_unchanged_library_is_served_unread_and_verify_names_a_file_changed_unseen() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let (reference, _) = csv_of(&["--workers", "1"], &[&lib]);
    let (first, _) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(first, reference);
    let names = ["00.wav", "01.wav", "02.wav", "zz-short.wav"];
    let files: Vec<PathBuf> = names.iter().map(|n| lib.join(n)).collect();
    record_as_an_hour_on(
        &cache_dir,
        &files
            .iter()
            .map(|f| (f.clone(), f.clone()))
            .collect::<Vec<_>>(),
    );

    let jsonl = ["--cache", c, "--progress", "jsonl"];
    let (unread, err) = csv_of(&jsonl, &[&lib]);
    assert_eq!(unread, reference, "rows of the unread rerun");
    let (summary, mismatches) = cache_events(&err);
    assert_eq!(
        (summary["hits"].as_u64(), summary["unread"].as_u64()),
        (Some(4), Some(4))
    );
    assert!(mismatches.is_empty());
    let (verified, err) = csv_of(&["--cache", c, "--verify"], &[&lib]);
    assert_eq!(verified, reference, "rows of the --verify run");
    assert_eq!(cache_counts(&err), (4, 4, 0));
    assert!(!err.contains("--verify:"), "{err}");

    // 00.wav's record now holds 01.wav's content under 00.wav's own identity: what a
    // write that left its size, times and inode unchanged would leave.
    record_as_an_hour_on(&cache_dir, &[(files[0].clone(), files[1].clone())]);
    let (stale, _) = csv_of(&jsonl, &[&lib]);
    let rows = rows_by_path(&stale);
    assert_eq!(
        rows[&s(&files[0]).to_string()].bpm,
        rows[&s(&files[1]).to_string()].bpm,
        "trusted by its identity alone, 00.wav was not read"
    );
    let (verified, err) = csv_of(&["--cache", c, "--verify"], &[&lib]);
    assert_eq!(verified, reference, "--verify analyses it anew");
    assert!(
        err.contains("--verify: 1 files changed") && err.contains(s(&files[0])),
        "{err}"
    );

    record_as_an_hour_on(&cache_dir, &[(files[0].clone(), files[1].clone())]);
    let verify_jsonl: Vec<&str> = jsonl.iter().copied().chain(["--verify"]).collect();
    let (verified, err) = csv_of(&verify_jsonl, &[&lib]);
    assert_eq!(verified, reference);
    let (summary, mismatches) = cache_events(&err);
    assert_eq!(mismatches, vec![s(&files[0]).to_string()]);
    assert_eq!(summary["mismatched"].as_u64(), Some(1));
    let out = analyze(&["--cache", c, "--verify"], &[&lib]);
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("--verify:"), "the record was repaired: {err}");

    let out = analyze(&["--cache", c, "--verify", "--force"], &[&lib]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "--verify and --force exclude each other"
    );
    for command in ["analyze", "serve"] {
        let out = crate::util::eval_cli()
            .args([command, "--verify"])
            .args((command == "analyze").then_some(s(&lib)))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("--cache"),
            "{command} --verify needs --cache: {err}"
        );
    }
}

#[test]
fn a_timeout_row_is_never_stored() {
    let (dir, long) = click_file("long.wav", 120.0, 20.0);
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    // A one-nanosecond deadline has passed by the first check.
    let (plain_timeout, _) = csv_of(&["--timeout", "0.000000001"], &[&long]);
    assert!(String::from_utf8_lossy(&plain_timeout).contains(",timeout,"));
    let (timeout, err) = csv_of(&["--timeout", "0.000000001", "--cache", c], &[&long]);
    assert_eq!(timeout, plain_timeout);
    assert_eq!(cache_counts(&err), (0, 1, 0));
    assert_eq!(ResultCache::open(&cache_dir).unwrap().len().unwrap(), 0);

    let (ok, err) = csv_of(&["--cache", c], &[&long]);
    assert!(String::from_utf8_lossy(&ok).contains(",ok,"));
    assert_eq!(cache_counts(&err), (0, 1, 1));
    // A hit found after the deadline is reported as the run without a cache reports it.
    let (late, _) = csv_of(&["--timeout", "0.000000001", "--cache", c], &[&long]);
    assert_eq!(late, plain_timeout);
}

/// The rows of a CSV by path.
fn rows_by_path(csv_bytes: &[u8]) -> HashMap<String, AnalyzeRecord> {
    csv::Reader::from_reader(csv_bytes)
        .deserialize::<AnalyzeRecord>()
        .map(|r| {
            let r = r.unwrap();
            (r.path.clone(), r)
        })
        .collect()
}

fn spawn_analyze(lib: &Path, args: &[&str]) -> Child {
    eval_cli_process()
        .arg("analyze")
        .arg(lib)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// SIGKILL a writer once some rows are stored; the cache opens, every row it holds is
/// the fresh row of its file, and the rerun (`--resume`) completes with the bytes of a
/// run that was never killed. The batch starts with files that fail at once, each a
/// stored row: the writer thread spends nearly all its time in commits, so the kill most
/// likely lands inside one.
#[cfg(unix)]
#[test]
fn a_writer_killed_mid_batch_leaves_whole_rows_and_the_rerun_finishes() {
    use std::os::unix::process::ExitStatusExt;

    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 20, 4.0);
    let junk = 100;
    for i in 0..junk {
        // Before "00.wav" in input order; each too short and of its own length, so each
        // its own stored row.
        let seconds = 0.05 + 0.001 * i as f64;
        click_wav(&lib.join(format!("0-junk-{i:03}.wav")), 120.0, seconds);
    }
    let files = 20 + junk + 1;
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let clean = dir.path().join("clean.csv");
    csv_of(&["--out", s(&clean), "--workers", "2"], &[&lib]);
    let clean = fs::read(&clean).unwrap();

    let out = dir.path().join("out.csv");
    // The store exists before the writer starts, so that the watcher below can open it.
    drop(ResultCache::open(&cache_dir).unwrap());
    let mut child = spawn_analyze(
        &lib,
        &[
            "--cache",
            c,
            "--out",
            s(&out),
            "--workers",
            "2",
            "--schedule",
            "input",
            "--progress",
            "jsonl",
        ],
    );
    // Kill once this process, watching the same store, sees some committed rows: asked
    // after each finished file, with no clock involved.
    let watcher = ResultCache::open(&cache_dir).unwrap();
    let mut committed = 0;
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        if line.unwrap().contains("\"event\":\"file\"") {
            committed = watcher.len().unwrap();
            if committed >= 20 {
                break;
            }
        }
    }
    assert!(
        committed >= 20,
        "the writer ended with {committed} rows committed"
    );
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "killed, not finished: {status:?}");

    let reference = rows_by_path(&clean);
    let fingerprint = AnalyzerConfig::default().fingerprint();
    let stored = {
        let cache = ResultCache::open(&cache_dir).unwrap();
        let mut stored = 0;
        for entry in fs::read_dir(&lib).unwrap() {
            let path = entry.unwrap().path();
            let key = cache::key_for(&path, &fingerprint).unwrap();
            match cache.get(&key).unwrap() {
                Some(Stored::Row(record)) => {
                    let fresh = &reference[path.to_str().unwrap()];
                    assert_eq!(
                        AnalyzeRecord {
                            path: fresh.path.clone(),
                            ..record
                        },
                        *fresh
                    );
                    stored += 1;
                }
                Some(failed @ Stored::Failed { .. }) => {
                    assert_eq!(
                        reference[path.to_str().unwrap()].status,
                        "error",
                        "{failed:?}"
                    );
                    stored += 1;
                }
                None => {}
            }
        }
        assert_eq!(cache.len().unwrap(), stored, "no row under a foreign key");
        stored
    };
    assert!(stored >= committed, "{stored} rows survived of {committed}");
    assert_eq!(
        watcher.len().unwrap(),
        stored,
        "the live reader sees the same rows"
    );
    drop(watcher);
    assert!(stored < files as u64, "the batch had finished");

    let (_, err) = csv_of(
        &["--cache", c, "--out", s(&out), "--resume", "--workers", "2"],
        &[&lib],
    );
    assert_eq!(fs::read(&out).unwrap(), clean);
    // The files the killed run left out: those it had stored are hits (perhaps none, if
    // its row log had caught up), the rest are analysed and stored.
    let (hits, looked_up, written) = cache_counts(&err);
    assert_eq!(hits + written, looked_up, "{err}");
    // Rows the killed run had logged but not yet committed were resumed from its log,
    // not analysed: the next run stores them, and the one after hits every file.
    let (again, err) = csv_of(&["--cache", c, "--workers", "2"], &[&lib]);
    assert_eq!(again, clean);
    let (hits, looked_up, written) = cache_counts(&err);
    assert_eq!((hits + written, looked_up), (files as u64, files as u64));
    let (again, err) = csv_of(&["--cache", c, "--workers", "2"], &[&lib]);
    assert_eq!(again, clean);
    assert_eq!(cache_counts(&err), (files as u64, files as u64, 0));
}

/// Two processes with one cache at once: both finish with the right rows and the cache
/// then holds every file once.
#[test]
fn two_processes_write_one_cache_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let files = 24;
    let lib = library(dir.path(), files, 4.0);
    let rows = files as u64 + 1; // and the short file
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    let (clean, _) = csv_of(&["--workers", "2"], &[&lib]);

    let a = dir.path().join("a.csv");
    let b = dir.path().join("b.csv");
    // The same order in both: they miss and write the same keys at about the same time.
    let first = spawn_analyze(&lib, &["--cache", c, "--out", s(&a), "--workers", "2"]);
    let second = spawn_analyze(&lib, &["--cache", c, "--out", s(&b), "--workers", "2"]);
    let mut stored = 0;
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(1), "the short file fails: {err}");
        let (hits, looked_up, written) = cache_counts(&err);
        assert_eq!(looked_up, rows);
        assert_eq!(hits + written, looked_up, "every miss is stored: {err}");
        stored += written;
    }
    assert!(stored >= rows, "each row stored by one process or both");
    assert_eq!(fs::read(&a).unwrap(), clean);
    assert_eq!(fs::read(&b).unwrap(), clean);
    assert_eq!(ResultCache::open(&cache_dir).unwrap().len().unwrap(), rows);
    let (again, err) = csv_of(&["--cache", c], &[&lib]);
    assert_eq!(again, clean);
    assert_eq!(cache_counts(&err), (rows, rows, 0));
}

/// Overwrites the 4 KiB page `page` of `file` with `fill` (a byte per offset in the page).
fn damage_page(file: &Path, page: usize, fill: impl Fn(usize) -> u8) {
    let mut bytes = fs::read(file).unwrap();
    let start = page * PAGE;
    let end = (start + PAGE).min(bytes.len());
    for (i, b) in bytes[start..end].iter_mut().enumerate() {
        *b = fill(i);
    }
    fs::write(file, bytes).unwrap();
}

const PAGE: usize = 4096;

/// Every 4 KiB page of a small store, in turn, overwritten with noise and then with zeros:
/// each run exits with the CSV of a run without a cache (no panic, no row turned into an
/// error), and the run after it finds a sound store again (a damaged one was moved aside
/// and rebuilt, a damaged row rewritten).
#[test]
fn every_damaged_page_of_the_store_is_survived() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    let files = 4;
    let (reference, _) = csv_of(&["--workers", "1"], &[&lib]);
    let pristine_dir = dir.path().join("pristine");
    let (_, err) = csv_of(&["--cache", s(&pristine_dir)], &[&lib]);
    assert_eq!(cache_counts(&err), (0, files, files));
    let pristine = fs::read(pristine_dir.join(cache::CACHE_FILE)).unwrap();
    let pages = pristine.len().div_ceil(PAGE);
    assert!(pages >= 4, "{pages} pages");

    let noise = |seed: usize| move |i: usize| ((i * 131 + seed * 7 + 17) % 251) as u8;
    for page in 0..pages {
        for (name, fill) in [
            ("noise", Box::new(noise(page)) as Box<dyn Fn(usize) -> u8>),
            ("zeros", Box::new(|_| 0)),
        ] {
            let cache_dir = dir.path().join(format!("cache-{page}-{name}"));
            fs::create_dir_all(&cache_dir).unwrap();
            let file = cache_dir.join(cache::CACHE_FILE);
            fs::write(&file, &pristine).unwrap();
            damage_page(&file, page, fill);
            let c = s(&cache_dir);
            for run in ["damaged", "after"] {
                let out = analyze(&["--workers", "2", "--cache", c], &[&lib]);
                let err = String::from_utf8_lossy(&out.stderr);
                let case = format!("page {page} {name}, {run} run: {err}");
                assert_eq!(out.status.code(), Some(1), "{case}");
                assert_eq!(out.stdout, reference, "{case}");
                assert!(
                    !err.contains("thread '"),
                    "no panic reaches the hook: {case}"
                );
                let warnings = err.matches("warning: the result cache").count();
                assert!(warnings <= 1, "{case}");
                if warnings == 1 {
                    assert!(err.contains(s(&file)), "the warning names the file: {case}");
                    assert!(cache_dir.join("results.redb.damaged-1").exists(), "{case}");
                }
                if run == "after" {
                    assert_eq!(warnings, 0, "{case}");
                    assert_eq!(cache_counts(&err), (files, files, 0), "{case}");
                }
            }
            fs::remove_dir_all(&cache_dir).unwrap();
        }
    }
}

/// A named pipe and a device given as input with `--cache`: each is an `unreadable` row at
/// once and the run exits 1. (Hashing used to read them first: a pipe without a writer
/// blocked the open, `/dev/zero` never ended; on a regression this test hangs.)
#[cfg(unix)]
#[test]
fn a_pipe_or_a_device_with_cache_is_an_error_row_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = fifo(&dir.path().join("pipe.wav"));
    let cache_dir = dir.path().join("cache");
    let out = analyze(
        &["--cache", s(&cache_dir)],
        &[Path::new("/dev/zero"), &fifo],
    );
    assert_eq!(out.status.code(), Some(1));
    let rows = rows_by_path(&out.stdout);
    assert!(rows["/dev/zero"].error.contains("unreadable: is a device"));
    assert!(rows[s(&fifo)].error.contains("unreadable: is a named pipe"));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        cache_counts(&err),
        (0, 2, 0),
        "looked up as misses, never stored"
    );
}

/// A file the decoder cannot read is analysed again on every run: the next decoder may
/// read it, and the key would not tell.
#[test]
fn a_file_that_does_not_decode_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.mp3");
    fs::write(&junk, b"ID3 and then nothing an MP3 decoder can use").unwrap();
    let cache_dir = dir.path().join("cache");
    let c = s(&cache_dir);
    for _ in 0..2 {
        let (csv, err) = csv_of(&["--cache", c], &[&junk]);
        assert!(String::from_utf8_lossy(&csv).contains(",error,"));
        assert_eq!(cache_counts(&err), (0, 1, 0));
    }
}

/// A cache folder that cannot be created or opened for writing (here its parent is a
/// file, or its store's name is a folder: what a read-only volume or a folder without
/// write permission does to a run as root too) costs the cache only: one warning naming
/// the folder and the reason, then every row of a run without `--cache`, with its exit
/// status. A path naming a file that is not a folder is refused, the file left as it was.
#[test]
fn an_unopenable_cache_warns_and_the_run_goes_on_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 2, 3.0);
    let plain = analyze(&[], &[&lib]);
    assert_eq!(plain.status.code(), Some(1), "the short file");
    let notes = dir.path().join("notes.txt");
    fs::write(&notes, "mine").unwrap();
    let under_a_file = notes.join("cache");
    let store_is_a_folder = dir.path().join("cache");
    fs::create_dir_all(store_is_a_folder.join(cache::CACHE_FILE)).unwrap();
    for cache_dir in [&under_a_file, &store_is_a_folder] {
        let out = dir.path().join("out.csv");
        let run = analyze(&["--cache", s(cache_dir), "--out", s(&out)], &[&lib]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), plain.status.code(), "{err}");
        assert_eq!(
            fs::read(&out).unwrap(),
            plain.stdout,
            "every row, as without a cache"
        );
        let warning = err
            .lines()
            .find(|l| l.starts_with("eval-cli: warning:"))
            .unwrap_or_else(|| panic!("no warning: {err}"));
        assert!(
            warning.contains(s(cache_dir)) && warning.contains("going on without the cache"),
            "{warning}"
        );
        assert!(
            warning.contains("Not a directory") || warning.contains("Is a directory"),
            "the reason: {warning}"
        );
        assert!(!err.contains("rows from the cache"), "{err}");
    }

    let refused = analyze(&["--cache", s(&notes)], &[&lib]);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert!(
        err.contains(s(&notes)) && err.contains("not a folder"),
        "{err}"
    );
    assert!(refused.stdout.is_empty());
    assert_eq!(fs::read_to_string(&notes).unwrap(), "mine");
}

/// `--out` inside the `--cache` folder is refused before the cache is opened, naming the
/// folder: the store was made first, and the refusal said the file was an input.
#[test]
fn out_inside_the_cache_folder_is_refused_before_the_store_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 1, 3.0);
    let cache_dir = dir.path().join("cache");
    fs::create_dir(&cache_dir).unwrap();
    for out in [
        cache_dir.join(cache::CACHE_FILE),
        cache_dir.join("rows.csv"),
    ] {
        let run = analyze(&["--cache", s(&cache_dir), "--out", s(&out)], &[&lib]);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{err}");
        assert!(err.contains("inside the --cache folder"), "{err}");
        assert_eq!(
            fs::read_dir(&cache_dir).unwrap().count(),
            0,
            "the folder is untouched"
        );
    }
}
