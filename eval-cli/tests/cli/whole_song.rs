//! `ci/whole-song.sh`: the default sampled analysis beside `--full` on whole songs. A
//! stand-in `eval-cli` (a shell script that reads a song's tempo from its name and halves it
//! for `intro-` songs unless `--full` is given) pins the report's arithmetic: accuracy per
//! source and length band, the songs where the settings disagree, one CPU row per setting.
//! The real binary then runs the script end to end on a small synthetic set.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::util::{s, synth_set};

/// Stands in for `eval-cli`: logs its arguments, and answers `evaluate` with a
/// `results.csv` and `analyze` with a CSV, the tempo being the number at the end of the
/// file's name, halved for `intro-` songs without `--full`.
const STAND_IN: &str = r#"#!/bin/sh
echo "$*" >>"$(dirname "$0")/calls.log"
cmd=$1; shift
full=0; out=; dataset=; files=
while [ $# -gt 0 ]; do
  case $1 in
    --full) full=1 ;;
    --out-dir) out=$2; shift ;;
    --dataset) dataset=$2; shift ;;
    --workers|--progress) shift ;;
    *) files="$files $1" ;;
  esac
  shift
done
tempo='{ n = split($1, p, "/"); name = p[n]; t = name; sub(/\.wav$/, "", t); sub(/.*-/, "", t);
  est = (full == 0 && name ~ /^intro-/) ? t / 2 : t }'
if [ "$cmd" = evaluate ]; then
  mkdir -p "$out"
  awk -F, -v full=$full "NR == 1 { print \"file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class,status,error\"; next }
    $tempo { alt = est == \$2 ? \"\" : sprintf(\"%.2f\", t)
      printf \"%s,%s,%.2f,0.9,%s,%d,1,1,ok,ok,\n\", \$1, \$2, est, alt, est == \$2 }" "$dataset" >"$out/results.csv"
else
  echo path,bpm
  for f in $files; do echo "$f"; done | awk -v full=$full "$tempo { printf \"%s,%.3f\n\", \$1, est }"
fi
"#;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `bash ci/whole-song.sh ARGS` from the workspace root, with `eval_cli` as the binary and
/// two timed runs per band.
fn whole_song_command(eval_cli: &Path, args: &[&Path]) -> Command {
    let mut command = Command::new("bash");
    command
        .arg("ci/whole-song.sh")
        .args(args)
        .current_dir(workspace())
        .env("EVAL_CLI", eval_cli)
        .env("CPU_REPEAT", "2");
    command
}

fn whole_song(eval_cli: &Path, args: &[&Path]) -> Output {
    whole_song_command(eval_cli, args).output().unwrap()
}

/// A manifest in `dir` (created) listing `songs` as (name, bpm, seconds), each an empty file.
fn manifest(dir: &Path, songs: &[(&str, &str, &str)]) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let mut text = String::from("file,bpm,duration_s\n");
    for (name, bpm, seconds) in songs {
        fs::write(dir.join(name), b"").unwrap();
        text += &format!("{name},{bpm},{seconds}\n");
    }
    let path = dir.join("manifest.csv");
    fs::write(&path, text).unwrap();
    path
}

fn stand_in(dir: &Path) -> PathBuf {
    let path = dir.join("eval-cli");
    fs::write(&path, STAND_IN).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn the_report_scores_both_settings_per_source_and_band_and_lists_the_disagreements() {
    let dir = tempfile::tempdir().unwrap();
    let alpha = manifest(
        &dir.path().join("alpha"),
        &[
            ("intro-120.wav", "120", "150"),
            ("steady-90.wav", "90", "200"),
        ],
    );
    let beta = manifest(
        &dir.path().join("beta"),
        &[
            ("steady-100.wav", "100", "30"),
            ("steady-140.wav", "140", "300"),
        ],
    );
    let out = dir.path().join("out");
    let run = whole_song(&stand_in(dir.path()), &[&alpha, &beta, &out]);
    assert!(run.status.success(), "{run:?}");
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    for row in [
        // The intro song read at half its tempo by the sampled run has the truth second.
        "| all | 4 | 0.750 (3) | 1.000 (4) | 1.000 (4) | 1.000 (4) | 1.000 (4) | 1.000 (4) |",
        "| 2-6 min | 3 | 0.667 (2) | 1.000 (3) | 1.000 (3) | 1.000 (3) | 1.000 (3) | 1.000 (3) |",
        "| source alpha | 2 | 0.500 (1) | 1.000 (2) | 1.000 (2) | 1.000 (2) | 1.000 (2) | 1.000 (2) |",
        "| source beta | 2 | 1.000 (2) | 1.000 (2) | 1.000 (2) | 1.000 (2) | 1.000 (2) | 1.000 (2) |",
        "| length 2-3 min | 1 | 0.000 (0) | 1.000 (1) | 1.000 (1) | 1.000 (1) | 1.000 (1) | 1.000 (1) |",
        "| length 3-4 min | 1 |",
        "| length 4-6 min | 1 |",
        "| length other | 1 |",
        "gave the tempo `evaluate` scored on 8 of 8 song-settings",
    ] {
        assert!(report.contains(row), "no {row:?} in\n{report}");
    }
    let intro = dir.path().join("alpha/intro-120.wav");
    let disagreement = format!("| {} | 150 s | 120 | 60.00 | 120.00 | --full |", s(&intro));
    assert!(report.contains(&disagreement), "{report}");
    assert_eq!(report.matches("| 120.00 |").count(), 1, "{report}");
    for band in ["2-3 min", "3-4 min", "4-6 min", "other"] {
        for setting in ["default (sampled)", "--full"] {
            let row = format!("| {setting} | {band} | 1 | 2 |");
            assert!(report.contains(&row), "no {row:?} in\n{report}");
        }
    }
    assert!(report.contains("| --full | all | 4 | - |"), "{report}");
    // Two evaluate runs, then two timed analyze runs per band (one song each) and setting.
    let calls = fs::read_to_string(dir.path().join("calls.log")).unwrap();
    let full_calls: Vec<&str> = calls.lines().filter(|l| l.contains("--full")).collect();
    assert_eq!(calls.lines().count(), 2 + 2 * 4 * 2, "{calls}");
    assert_eq!(full_calls.len(), 1 + 4 * 2, "{calls}");
}

#[test]
fn a_manifest_without_durations_is_named_and_nothing_is_run() {
    let dir = tempfile::tempdir().unwrap();
    let songs = dir.path().join("songs");
    fs::create_dir(&songs).unwrap();
    fs::write(songs.join("a.wav"), b"").unwrap();
    let bad = songs.join("manifest.csv");
    fs::write(&bad, "file,bpm\na.wav,120\n").unwrap();
    let missing = manifest(&dir.path().join("other"), &[("b.wav", "90", "200")]);
    fs::remove_file(dir.path().join("other/b.wav")).unwrap();
    let eval_cli = stand_in(dir.path());

    for (manifest, reason) in [
        (&bad, "no duration_s column"),
        (&missing, "b.wav not found"),
    ] {
        let out = dir.path().join("out");
        let run = whole_song(&eval_cli, &[manifest, &out]);
        assert_eq!(run.status.code(), Some(2), "{run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(s(manifest)) && stderr.contains(reason),
            "{stderr}"
        );
        assert!(!out.join("songs.csv").exists() && !out.join("report.md").exists());
    }
    assert!(!dir.path().join("calls.log").exists(), "eval-cli ran");
}

#[test]
fn a_repeat_count_below_one_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let songs = manifest(&dir.path().join("songs"), &[("a-120.wav", "120", "150")]);
    let out = dir.path().join("out");
    let run = whole_song_command(&stand_in(dir.path()), &[&songs, &out])
        .env("CPU_REPEAT", "0")
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(2), "{run:?}");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.contains("CPU_REPEAT must be 1 or more"), "{stderr}");
    assert!(!out.exists(), "the output folder was made");
    assert!(!dir.path().join("calls.log").exists(), "eval-cli ran");
}

#[test]
fn the_real_binary_gives_a_report_whose_timed_runs_match_the_scored_ones() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("synth");
    synth_set(&set, 2, 80.0);
    let out = dir.path().join("out");
    let run = whole_song(
        Path::new(env!("CARGO_BIN_EXE_eval-cli")),
        &[&set.join("manifest.csv"), &out],
    );
    assert!(run.status.success(), "{run:?}");
    let report = fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("| source synth | 2 |"), "{report}");
    assert!(report.contains("| length other | 2 |"), "{report}");
    assert!(
        report.contains("gave the tempo `evaluate` scored on 4 of 4 song-settings"),
        "{report}"
    );
    let full = fs::read_to_string(out.join("full/timings.json")).unwrap();
    assert!(full.contains("--full"), "{full}");
}
