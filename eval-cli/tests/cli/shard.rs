//! `analyze --shard K/N` and `merge` as a scheduler's job array runs them: the merged parts
//! are the bytes of the unsharded run for any N, every file is in exactly one part, merge
//! refuses a missing, foreign, duplicated or edited part, and `--resume` finishes one shard.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

#[cfg(target_os = "linux")]
use crate::util::RunningProgram;
use crate::util::{
    click_file, click_library, click_wav, eval_cli, identities_taken_an_hour_on, latin1_cells,
    latin1_pair, os, paths, write_tracks,
};

/// `eval-cli ARGS`, run to its end.
fn run(args: &[&std::ffi::OsStr]) -> Output {
    eval_cli().args(args).output().unwrap()
}

/// `count` click files of different lengths, a FLAC, a file that cannot be probed and,
/// on Unix, a link loop (a walk error, which is a row too).
fn library(dir: &Path, count: usize) -> PathBuf {
    let lib = dir.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    write_tracks(
        &lib,
        (0..count).map(|i| {
            let name = if i % 4 == 3 {
                format!("{i:02}.flac")
            } else if i % 3 == 0 {
                format!("sub/{i:02}.wav")
            } else {
                format!("{i:02}.wav")
            };
            (name, 90.0 + 7.0 * i as f64, 3.0 + (i % 4) as f64)
        }),
    );
    fs::write(lib.join("broken.wav"), b"RIFF, but nothing else").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&lib, lib.join("loop")).unwrap();
    lib
}

/// `analyze` of `inputs` into `out`, with `extra` flags.
fn analyze(inputs: &[&Path], out: &Path, extra: &[&str]) -> Output {
    let mut args = vec![os("analyze")];
    args.extend(inputs.iter().map(|p| p.as_os_str()));
    args.extend([os("--out"), out.as_os_str(), os("--workers"), os("1")]);
    args.extend(extra.iter().map(|s| os(s)));
    run(&args)
}

/// Runs every shard of `count` over `inputs` into `dir/part-K-of-N.csv`; the parts.
fn shards(inputs: &[&Path], dir: &Path, count: usize) -> Vec<PathBuf> {
    (1..=count)
        .map(|k| {
            let part = dir.join(format!("part-{k}-of-{count}.csv"));
            let result = analyze(inputs, &part, &["--shard", &format!("{k}/{count}")]);
            // 1 where the part holds broken.wav or the loop.
            assert!(matches!(result.status.code(), Some(0 | 1)), "{result:?}");
            part
        })
        .collect()
}

fn merge(parts: &[PathBuf], out: &Path) -> Output {
    let mut args = vec![os("merge")];
    args.extend(parts.iter().map(|p| p.as_os_str()));
    args.extend([os("--out"), out.as_os_str()]);
    run(&args)
}

#[test]
fn merged_shards_are_the_unsharded_bytes_and_each_file_is_in_one_shard() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 7);
    let whole = dir.path().join("whole.csv");
    let result = analyze(&[&lib], &whole, &[]);
    assert_eq!(result.status.code(), Some(1), "{result:?}");
    let whole = fs::read(&whole).unwrap();
    let mut all_paths = paths(&whole);
    assert!(all_paths.len() >= 8, "{all_paths:?}");

    // More shards than inputs: some parts are empty, which is fine.
    for count in [1, 2, 3, all_paths.len() + 2] {
        let parts = shards(&[&lib], dir.path(), count);
        let mut seen: Vec<String> = parts
            .iter()
            .flat_map(|p| paths(&fs::read(p).unwrap()))
            .collect();
        seen.sort();
        all_paths.sort();
        assert_eq!(
            seen, all_paths,
            "each input in exactly one of {count} shards"
        );
        if count > 1 {
            let sizes: Vec<usize> = parts
                .iter()
                .map(|p| paths(&fs::read(p).unwrap()).len())
                .collect();
            assert!(sizes.iter().all(|&n| n < all_paths.len()), "{sizes:?}");
        }

        let merged = dir.path().join(format!("merged-{count}.csv"));
        // In any order of the arguments.
        let mut reversed = parts.clone();
        reversed.reverse();
        let result = merge(&reversed, &merged);
        assert_eq!(result.status.code(), Some(0), "{result:?}");
        assert_eq!(
            String::from_utf8_lossy(&fs::read(&merged).unwrap()),
            String::from_utf8_lossy(&whole),
            "{count} shards"
        );
    }
}

#[test]
fn merge_refuses_missing_foreign_duplicated_and_unrecorded_parts() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3);
    let parts = shards(&[&lib], dir.path(), 2);
    let out = dir.path().join("all.csv");
    let refused = |parts: &[PathBuf], needle: &str| {
        let result = merge(parts, &out);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(2), "{result:?}");
        assert!(stderr.contains(needle), "{needle:?} not in {stderr}");
        assert!(!out.exists());
    };

    refused(&parts[..1], "shard 2/2 is missing");
    refused(
        &[parts[0].clone(), dir.path().join("nope.csv")],
        "nope.csv is not a file",
    );

    // Another input list: the same split over fewer files.
    let other_dir = dir.path().join("other");
    fs::create_dir(&other_dir).unwrap();
    let few = other_dir.join("few");
    fs::create_dir(&few).unwrap();
    click_wav(&few.join("a.wav"), 120.0, 3.0);
    let foreign = other_dir.join("foreign-2-of-2.csv");
    let result = analyze(&[&few], &foreign, &["--shard", "2/2"]);
    assert!(result.status.success(), "{result:?}");
    refused(&[parts[0].clone(), foreign.clone()], "foreign-2-of-2.csv");
    refused(&[parts[0].clone(), foreign], "another input list");

    // Other settings, same list.
    let tempo = dir.path().join("tempo-2-of-2.csv");
    analyze(&[&lib], &tempo, &["--shard", "2/2", "--max-bpm", "200"]);
    refused(&[parts[0].clone(), tempo], "tempo-2-of-2.csv");

    // The same part twice, under another name.
    let copy = dir.path().join("copy.csv");
    fs::copy(&parts[0], &copy).unwrap();
    fs::copy(
        dir.path().join("part-1-of-2.csv.shard.json"),
        dir.path().join("copy.csv.shard.json"),
    )
    .unwrap();
    refused(
        &[parts[0].clone(), copy, parts[1].clone()],
        "are both shard 1/2",
    );
    refused(
        &[parts[0].clone(), parts[0].clone(), parts[1].clone()],
        "are both shard 1/2",
    );

    // A CSV without its side file (an unsharded run, say).
    let whole = dir.path().join("whole.csv");
    analyze(&[&lib], &whole, &[]);
    refused(&[whole, parts[1].clone()], "whole.csv has no shard record");

    // Parts of different splits.
    let third = shards(&[&lib], dir.path(), 3).remove(0);
    refused(&[parts[0].clone(), third], "not parts of one split");

    // A part whose rows were sorted or swapped: each row's file is checked against the
    // record, so one file's values never land in another's row.
    let text = fs::read_to_string(&parts[0]).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 3, "part 1 needs two rows: {text}");
    lines.swap(1, 2);
    let swapped = dir.path().join("swapped.csv");
    fs::write(&swapped, lines.join("\n") + "\n").unwrap();
    fs::copy(
        dir.path().join("part-1-of-2.csv.shard.json"),
        dir.path().join("swapped.csv.shard.json"),
    )
    .unwrap();
    refused(&[swapped, parts[1].clone()], "edited or reordered");

    // Nor does --out replace a part's own side files, which its --resume reads.
    for suffix in [".settings.json", ".identities.csv", ".shard.json"] {
        let side = dir.path().join(format!("part-1-of-2.csv{suffix}"));
        let before = fs::read(&side).unwrap();
        let result = merge(&parts, &side);
        assert_eq!(result.status.code(), Some(2), "{suffix}: {result:?}");
        assert_eq!(fs::read(&side).unwrap(), before, "{suffix}");
    }

    // And the right parts merge.
    assert!(merge(&parts, &out).status.success());
}

/// A row cut short or padded by hand is refused by `merge` as `--resume` refuses it (one
/// check), naming the part and the row, and nothing is written; so is a row that does not
/// read back to the bytes this program writes (a byte that is not UTF-8). A value edited
/// by hand merges as it is (docs/analyze.md).
#[test]
fn merge_refuses_a_row_with_the_wrong_number_of_cells() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3);
    let parts = shards(&[&lib], dir.path(), 2);
    let clean = fs::read_to_string(&parts[1]).unwrap();
    let first = paths(clean.as_bytes()).remove(0);
    let out = dir.path().join("all.csv");
    let edit_first_row = |edit: &dyn Fn(&str) -> String| {
        let mut lines: Vec<String> = clean.split_inclusive('\n').map(String::from).collect();
        lines[1] = edit(lines[1].trim_end_matches('\n')) + "\n";
        fs::write(&parts[1], lines.concat()).unwrap();
    };

    let cut = |row: &str| row.split(',').take(3).collect::<Vec<_>>().join(",");
    let padded = |row: &str| format!("{row},extra");
    let width_error = |cells: usize| format!("row 1 ({first:?}) has {cells} cells, not 22");
    for (edit, cells) in [(&cut as &dyn Fn(&str) -> String, 3), (&padded, 23)] {
        edit_first_row(edit);
        let result = merge(&parts, &out);
        assert_eq!(result.status.code(), Some(2), "{result:?}");
        let stderr = String::from_utf8_lossy(&result.stderr);
        let named = format!(
            "{}: {}: the part was edited",
            parts[1].display(),
            width_error(cells)
        );
        assert!(stderr.contains(&named), "{named:?} not in {stderr}");
        assert!(!out.exists());
    }

    // A byte that is not UTF-8 (flipped on disk) is no row this program writes: refused.
    let mut flipped = clean.clone().into_bytes();
    let codec = flipped.windows(9).position(|w| w == b"pcm_s16le").unwrap();
    flipped[codec + 3] = 0xFF;
    fs::write(&parts[1], &flipped).unwrap();
    let result = merge(&parts, &out);
    assert_eq!(result.status.code(), Some(2), "{result:?}");
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert!(
        stderr.contains("row 1 is not as this program writes rows"),
        "{stderr}"
    );
    assert!(!out.exists());
    // A bpm cell changed by hand keeps the row's width and file: merged as it is.
    edit_first_row(&|row: &str| {
        let mut cells: Vec<&str> = row.split(',').collect();
        cells[1] = "999.00";
        cells.join(",")
    });
    let result = merge(&parts, &out);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let merged = fs::read_to_string(&out).unwrap();
    assert!(merged.contains(&format!("{first},999.00,")), "{merged}");
    // `--resume` refuses the cut row in the same words.
    edit_first_row(&cut);
    let result = analyze(&[&lib], &parts[1], &["--shard", "2/2", "--resume"]);
    assert_eq!(result.status.code(), Some(2), "{result:?}");
    let stderr = String::from_utf8_lossy(&result.stderr);
    let resume = format!(
        "cannot resume {}: {}; run without --resume to start afresh",
        parts[1].display(),
        width_error(3)
    );
    assert!(stderr.contains(&resume), "{resume:?} not in {stderr}");
    // Which is the way on: the part made afresh merges (exit 1 where the part holds
    // broken.wav or the loop).
    let result = analyze(&[&lib], &parts[1], &["--shard", "2/2"]);
    assert!(matches!(result.status.code(), Some(0 | 1)), "{result:?}");
    let result = merge(&parts, &out);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
}

#[test]
fn bad_shard_values_are_usage_errors() {
    let (dir, wav) = click_file("a.wav", 120.0, 3.0);
    let out = dir.path().join("out.csv");
    for bad in ["0/2", "3/2", "x", "1/0", "2"] {
        let result = analyze(&[&wav], &out, &["--shard", bad]);
        assert_eq!(result.status.code(), Some(2), "{bad}: {result:?}");
        assert!(
            String::from_utf8_lossy(&result.stderr).contains("--shard"),
            "{bad}: {result:?}"
        );
    }
    // A shard needs --out, for its side file.
    let result = run(&[os("analyze"), wav.as_os_str(), os("--shard"), os("1/2")]);
    assert_eq!(result.status.code(), Some(2), "{result:?}");
}

#[test]
fn resume_finishes_only_what_is_left_of_a_shard() {
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 7);
    let parts = shards(&[&lib], dir.path(), 2);
    let clean = fs::read(&parts[0]).unwrap();
    let record = dir.path().join("part-1-of-2.csv.shard.json");
    let clean_record = fs::read(&record).unwrap();

    // As if the array task was killed after two rows: the CSV holds header and two rows
    // and the side file says it is not complete.
    let text = String::from_utf8(clean.clone()).unwrap();
    let kept: String = text.split_inclusive('\n').take(3).collect();
    let rows_total = text.lines().count() - 1;
    let walk_rows = paths(&clean).iter().filter(|p| p.ends_with("loop")).count();
    assert!(rows_total - walk_rows > 2, "{text}");
    fs::write(&parts[0], &kept).unwrap();
    let incomplete = String::from_utf8(clean_record.clone())
        .unwrap()
        .replace("\"complete\": true", "\"complete\": false");
    fs::write(&record, incomplete).unwrap();
    identities_taken_an_hour_on(&parts[0]);
    let result = merge(&parts, &dir.path().join("all.csv"));
    assert_eq!(result.status.code(), Some(2), "{result:?}");
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("incomplete"),
        "{result:?}"
    );

    let result = analyze(
        &[&lib],
        &parts[0],
        &["--shard", "1/2", "--resume", "--progress", "jsonl"],
    );
    assert_eq!(result.status.code(), Some(1), "{result:?}");
    let analysed = String::from_utf8_lossy(&result.stderr)
        .lines()
        .filter(|l| l.contains("\"event\":\"file\""))
        .count();
    assert_eq!(
        analysed,
        rows_total - walk_rows - 2,
        "only the files left are analysed"
    );
    assert_eq!(
        String::from_utf8_lossy(&fs::read(&parts[0]).unwrap()),
        String::from_utf8_lossy(&clean)
    );
    assert_eq!(fs::read(&record).unwrap(), clean_record);

    // Resuming one shard's file as another shard is refused.
    let result = analyze(&[&lib], &parts[0], &["--shard", "2/2", "--resume"]);
    assert_eq!(result.status.code(), Some(2), "{result:?}");
    assert!(
        String::from_utf8_lossy(&result.stderr).contains("holds shard 1/2"),
        "{result:?}"
    );
}

/// Two Latin-1 names that differ in one byte keep distinct, exact cells through the shards
/// and `merge`, whose result is the unsharded run's bytes; `merge --out` naming one of its
/// parts is refused and the part is left whole.
#[cfg(unix)]
#[test]
fn latin1_names_survive_shards_and_merge_and_merge_never_overwrites_a_part() {
    let (dir, lib, whole) = click_library(&latin1_pair());
    let result = analyze(&[&lib], &whole, &[]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let whole = fs::read(&whole).unwrap();
    assert_eq!(paths(&whole), latin1_cells(&lib));

    let parts = shards(&[&lib], dir.path(), 2);
    let merged = dir.path().join("merged.csv");
    let result = merge(&parts, &merged);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    assert_eq!(fs::read(&merged).unwrap(), whole);

    let part = fs::read(&parts[0]).unwrap();
    let result = merge(&parts, &parts[0]);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("part-1-of-2.csv") && stderr.contains("input"),
        "{stderr}"
    );
    assert_eq!(fs::read(&parts[0]).unwrap(), part);
}

/// `merge --out FILE` never takes (and then removes) a part named `FILE.lock` as its lock:
/// refused with exit 2 before anything is written, the part whole.
#[test]
fn merge_refuses_a_part_named_like_its_lock() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let part = dir.path().join("m.csv.lock");
    let result = analyze(&[&song], &part, &["--shard", "1/1"]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let bytes = fs::read(&part).unwrap();
    let merged = dir.path().join("m.csv");
    let result = merge(std::slice::from_ref(&part), &merged);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    let says = format!(
        "refusing to write {}: it is one of this run's input files",
        part.display()
    );
    assert!(stderr.contains(&says), "{stderr}");
    assert_eq!(fs::read(&part).unwrap(), bytes);
    assert!(!merged.exists());
}

/// `merge --out FILE` where FILE exists and cannot be opened for writing (here a running
/// program, which not even root may open so) is refused before anything is written,
/// naming FILE: its bytes stay and no lock or temporary is left beside it. The merged rows
/// were renamed over it, since a rename needs only the folder to be writable.
#[cfg(target_os = "linux")]
#[test]
fn merge_refuses_an_existing_file_it_cannot_write() {
    let (dir, song) = click_file("song.wav", 120.0, 4.0);
    let part = dir.path().join("part.csv");
    let result = analyze(&[&song], &part, &["--shard", "1/1"]);
    assert_eq!(result.status.code(), Some(0), "{result:?}");
    let merged = dir.path().join("m.csv");
    let running = RunningProgram::at(&merged);
    let names = || {
        let mut names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        names.sort();
        names
    };
    let before = names();
    let result = merge(std::slice::from_ref(&part), &merged);
    drop(running);
    let stderr = String::from_utf8_lossy(&result.stderr);
    assert_eq!(result.status.code(), Some(2), "{stderr}");
    let says = format!("cannot write {}: ", merged.display());
    assert!(stderr.contains(&says), "{stderr}");
    assert_eq!(fs::read(&merged).unwrap(), fs::read("/bin/sleep").unwrap());
    assert_eq!(names(), before);
}
