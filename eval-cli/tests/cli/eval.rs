//! The CLI as a user runs it: `evaluate` and `compare` on a small synthetic set, `check` on
//! hand-made report folders, `dataset excerpts` and the breakdown by length it feeds, and
//! the exit code 2 with a clear message on bad input.
//! One file over 500 lines: the commands share the small synthetic set and the report
//! readers below, and a test often runs two of them.

use std::fs;
use std::path::Path;

use crate::util::{
    QUICK_COMPARE, all_runs_identical, click_wav, eval_cli, eval_cli_process, synth_folder,
    synth_set,
};

/// `eval-cli evaluate` of the [`SMALL`] synthetic set into `out_dir`, without progress;
/// a test adds its own flags.
fn evaluate_small(out_dir: &Path) -> assert_cmd::Command {
    let mut command = eval_cli();
    command
        .arg("evaluate")
        .args(SMALL)
        .args(["--progress", "off", "--out-dir"])
        .arg(out_dir);
    command
}

/// `eval-cli check --report REPORT --thresholds THRESHOLDS`.
fn check(report: &Path, thresholds: &Path) -> assert_cmd::Command {
    let mut command = eval_cli();
    command
        .args(["check", "--report"])
        .arg(report)
        .arg("--thresholds")
        .arg(thresholds);
    command
}

/// Exit 2 (a usage error), with a message that contains `needle`.
fn assert_usage_error(out: &std::process::Output, needle: &str) {
    assert_eq!(out.status.code(), Some(2), "{}", stderr_of(out));
    assert!(stderr_of(out).contains(needle), "{}", stderr_of(out));
}

fn stderr_of(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const SMALL: [&str; 6] = [
    "--dataset",
    "synth",
    "--synth-count",
    "4",
    "--synth-seconds",
    "8",
];

#[test]
fn evaluate_writes_results_summary_charts_and_report() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    for (dir, workers) in [(a.path(), "1"), (b.path(), "2")] {
        evaluate_small(dir)
            .args(["--workers", workers])
            .assert()
            .success();
    }
    let dir = a.path();
    for f in [
        "results.csv",
        "summary.json",
        "timings.json",
        "report.html",
        "est_vs_true.svg",
        "est_vs_true.png",
        "accuracy_by_class.svg",
        "accuracy_by_band.png",
        "latency.svg",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let csv = fs::read_to_string(dir.join("results.csv")).unwrap();
    // The synthetic set has key truth: the key columns follow the tempo ones.
    assert!(csv.starts_with(
        "file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class,status,\
         error,key_truth,key,key_relation\n"
    ));
    assert_eq!(csv.lines().count(), 5);
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["n"], 4);
    assert_eq!(summary["key"]["n"], 4);
    assert!(summary["by"]["tempo_band"].is_object());
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Accuracy1"));
    // Deterministic output: the same bytes at 1 and 2 workers.
    assert_eq!(
        fs::read(a.path().join("results.csv")).unwrap(),
        fs::read(b.path().join("results.csv")).unwrap(),
        "results.csv differs between 1 and 2 workers"
    );
    // The summary too: it holds nothing measured (CPU seconds are in timings.json).
    assert_eq!(
        fs::read(a.path().join("summary.json")).unwrap(),
        fs::read(b.path().join("summary.json")).unwrap(),
        "summary.json differs between 1 and 2 workers"
    );
    let timings = read_json(&a.path().join("timings.json"));
    assert!(
        timings["estimators"][0]["cpu_s"].as_f64().is_some(),
        "{timings}"
    );
}

/// `compare` of the [`SMALL`] set at 1 and 2 workers, one repeat, into `out_dir`.
fn quick_compare(out_dir: &Path) -> std::process::Output {
    eval_cli()
        .arg("compare")
        .args(SMALL)
        .args(QUICK_COMPARE)
        .arg("--out-dir")
        .arg(out_dir)
        .output()
        .unwrap()
}

#[test]
fn compare_writes_identical_runs_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let out = quick_compare(dir.path());
    assert!(out.status.success(), "{}", stderr_of(&out));
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.path().join("compare.json")).unwrap()).unwrap();
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["identical"] == true), "{json}");
    assert_eq!(json["files"], 4);
    for f in [
        "results.csv",
        "summary.json",
        "speedup.svg",
        "speedup.png",
        "report.html",
    ] {
        assert!(dir.path().join(f).is_file(), "{f} missing");
    }
    // The gate reads this run's numbers: it holds at the measured Accuracy2 and key score,
    // and falls just above the key score (the four files' tempi are all right: no share
    // lies above an Accuracy2 of 1, and such a threshold is refused).
    let summary = read_json(&dir.path().join("summary.json"));
    let acc2 = summary["acc2"].as_f64().unwrap();
    let weighted = summary["key"]["weighted"].as_f64().unwrap();
    assert!(weighted < 0.99, "{summary}");
    let thresholds = dir.path().join("t.toml");
    for (min_weighted, code) in [(weighted, 0), (weighted + 0.01, 1)] {
        fs::write(
            &thresholds,
            format!(
                "require_identical = true\nmin_acc2 = {acc2:?}\nmin_key_weighted = {min_weighted:?}\n"
            ),
        )
        .unwrap();
        check(dir.path(), &thresholds).assert().code(code);
    }
}

/// A process that spins on one core until dropped.
struct Spinner(std::process::Child);

impl Drop for Spinner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With a busy loop on every core for the whole comparison, every worker count measures
/// another process's load, the notes say what that does to the speedups (console,
/// compare.json, report), and `check` refuses the report on `max_interference`. The set is
/// large enough (16 x 30 s) that each run lasts many of the kernel's 10-ms CPU ticks.
#[cfg(target_os = "linux")]
#[test]
fn compare_says_when_another_process_took_the_cores() {
    let dir = tempfile::tempdir().unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let _spinners: Vec<Spinner> = (0..cores)
        .map(|_| {
            Spinner(
                std::process::Command::new("sh")
                    .args(["-c", "while :; do :; done"])
                    .spawn()
                    .unwrap(),
            )
        })
        .collect();
    let out = eval_cli()
        .arg("compare")
        .args([
            "--dataset",
            "synth",
            "--synth-count",
            "16",
            "--synth-seconds",
            "30",
        ])
        .args(QUICK_COMPARE)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    drop(_spinners);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let json = read_json(&dir.path().join("compare.json"));
    for run in json["runs"].as_array().unwrap() {
        // The loops want every core; beside 2 workers they still get half of them.
        let other = run["other_cores"].as_f64().unwrap();
        assert!(other >= 0.3, "{run}");
    }
    let notes: Vec<&str> = json["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap())
        .collect();
    let said = |needle: &str| notes.iter().any(|n| n.contains(needle));
    assert!(
        said("during the 1-worker run, ")
            && said("so the speedups may be overstated")
            && said("the speedup at 2 workers is unreliable"),
        "{notes:?}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("note: Another process used"), "{stdout}");
    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("other processes, cores") && html.contains("Another process used"));

    let thresholds = dir.path().join("t.toml");
    fs::write(&thresholds, "max_interference = 0.25\n").unwrap();
    let gate = check(dir.path(), &thresholds).output().unwrap();
    assert_eq!(gate.status.code(), Some(1), "{gate:?}");
    assert!(String::from_utf8_lossy(&gate.stdout).contains("max_interference"));
}

fn hand_made_report(dir: &Path, acc1: f64, efficiency: f64, identical: bool) {
    fs::write(
        dir.join("summary.json"),
        format!(r#"{{"n": 10, "ok": 10, "failed": 0, "acc1": {acc1}, "acc2": 0.9}}"#),
    )
    .unwrap();
    fs::write(
        dir.join("compare.json"),
        format!(
            r#"{{"cores": 2, "runs": [
                {{"workers": 1, "efficiency": 1.0, "identical": true}},
                {{"workers": 2, "efficiency": {efficiency}, "identical": {identical}}}
            ]}}"#
        ),
    )
    .unwrap();
}

const THRESHOLDS: &str =
    "min_acc1 = 0.5\nmin_acc2 = 0.8\nmin_efficiency = 0.6\nrequire_identical = true\n";

#[test]
fn check_passes_and_fails_on_hand_made_reports() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();

    hand_made_report(dir.path(), 0.7, 0.9, true);
    let out = check(dir.path(), &t).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    hand_made_report(dir.path(), 0.4, 0.5, false);
    let out = check(dir.path(), &t).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("min_acc1") && table.contains("FAIL"),
        "{table}"
    );
    assert!(table.contains("differs at workers 2"), "{table}");
    assert!(table.contains("3 of 4 thresholds fell short"), "{table}");
}

/// `command` run with a stdout whose reader is already gone: a write to it is a broken pipe.
fn with_closed_stdout(mut command: std::process::Command) -> std::process::Output {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    command.stdout(writer).output().unwrap()
}

#[test]
fn a_closed_stdout_silences_the_summary_but_not_the_work_or_the_verdict() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut evaluate = eval_cli_process();
    evaluate
        .arg("evaluate")
        .args(SMALL)
        .args(["--workers", "1", "--progress", "off", "--out-dir"])
        .arg(&run);
    let out = with_closed_stdout(evaluate);
    assert_eq!(out.status.code(), Some(0), "{}", stderr_of(&out));
    assert_eq!(stderr_of(&out), "", "nothing to say");
    for f in ["results.csv", "summary.json", "timings.json", "report.html"] {
        assert!(run.join(f).is_file(), "{f} written before the summary line");
    }

    // `check` says nothing either, and a gate that fell short still exits 1.
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    for (acc1, code) in [(0.7, 0), (0.4, 1)] {
        hand_made_report(dir.path(), acc1, 0.9, true);
        let mut check = eval_cli_process();
        check
            .args(["check", "--report"])
            .arg(dir.path())
            .arg("--thresholds")
            .arg(&t);
        let out = with_closed_stdout(check);
        assert_eq!(
            out.status.code(),
            Some(code),
            "acc1 {acc1}: {}",
            stderr_of(&out)
        );
        assert_eq!(stderr_of(&out), "", "acc1 {acc1}: nothing to say");
    }
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    let missing = dir.path().join("nope");
    let out = check(&missing, &t).output().unwrap();
    assert_usage_error(&out, "nope does not exist");
    // A file where the folder goes is named as what it is, not as missing.
    let out = check(&t, &t).output().unwrap();
    assert_usage_error(&out, "t.toml is not a folder");

    // A report folder without summary.json is unreadable too.
    let out = check(dir.path(), &t).output().unwrap();
    assert_usage_error(&out, "summary.json");

    let out = eval_cli()
        .args(["evaluate", "--dataset"])
        .arg(dir.path().join("missing.csv"))
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_usage_error(&out, "missing.csv");

    let no_bpm = dir.path().join("nobpm.csv");
    fs::write(&no_bpm, "file,tempo\na.wav,120\n").unwrap();
    let out = eval_cli()
        .args(["evaluate", "--dataset"])
        .arg(&no_bpm)
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = stderr_of(&out);
    assert!(err.contains("nobpm.csv") && err.contains("bpm"), "{err}");
}

/// A NaN threshold is a bad thresholds file (exit 2 naming the key), not a run that fell
/// short (it was exit 1, `>= NaN ... FAIL`).
#[test]
fn a_nan_threshold_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    hand_made_report(dir.path(), 0.7, 0.9, true);
    let t = dir.path().join("t.toml");
    fs::write(&t, "min_acc1 = nan\n").unwrap();
    let out = check(dir.path(), &t).output().unwrap();
    assert_usage_error(&out, "min_acc1 = NaN is not a finite number");
    assert!(stderr_of(&out).contains("t.toml"), "{}", stderr_of(&out));
}

/// A track count no plan can hold is refused naming it, before the folder is made (it
/// panicked with "capacity overflow"); so is 0, which wrote a header-only manifest that
/// every command then refused. The same holds for `--synth-count`.
#[test]
fn a_huge_or_zero_synth_count_is_refused_before_anything_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    for count in [usize::MAX.to_string(), "100001".into(), "0".into()] {
        let out = eval_cli()
            .args(["dataset", "synth", "--count", &count, "--out"])
            .arg(&set)
            .output()
            .unwrap();
        assert_usage_error(
            &out,
            &format!("must be from 1 to 100000 tracks (got {count})"),
        );
        assert!(!set.exists(), "{count}: the folder was made");
        let out = eval_cli()
            .args(["evaluate", "--dataset", "synth", "--synth-count", &count])
            .arg("--out-dir")
            .arg(&set)
            .output()
            .unwrap();
        assert_usage_error(&out, "--synth-count");
        assert!(!set.exists(), "{count}: the report folder was made");
    }
}

/// An excerpt count no plan can hold, or far past any use, is refused naming it before
/// the dataset is read or the folder made (`usize::MAX` panicked with "capacity
/// overflow"; a million cut for minutes).
#[test]
fn a_huge_excerpt_count_is_refused_before_anything_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("excerpts");
    for offsets in [usize::MAX.to_string(), "1000000".into()] {
        let out = eval_cli()
            .args([
                "dataset",
                "excerpts",
                "--from",
                "synth",
                "--synth-count",
                "1",
            ])
            .args(["--seconds", "1", "--offsets", &offsets, "--out"])
            .arg(&out_dir)
            .output()
            .unwrap();
        assert_usage_error(&out, &format!("--offsets {offsets} is more than"));
        assert!(!out_dir.exists(), "{offsets}: the folder was made");
    }
}

/// A missing file is a failed row, counted as wrong. When no file at all was analysed the
/// report is still written, but the exit code is 1 with a word on stderr: it measured
/// nothing (it was 0, so a script or CI job took an empty evaluation as a result).
#[test]
fn missing_audio_is_a_failed_row() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    fs::write(&manifest, "file,bpm,source\ngone.wav,120,x\n").unwrap();
    let out_dir = dir.path().join("out");
    let out = eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(&manifest)
        .arg("--out-dir")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_of(&out).contains("no file was analysed (1 of 1 failed)"),
        "{}",
        stderr_of(&out)
    );
    assert!(out_dir.join("report.html").is_file());
    let csv = fs::read_to_string(out_dir.join("results.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(
        row.starts_with("gone.wav,120,,,,0,0,0,failed,error,"),
        "{row}"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["acc1"], 0.0);
    // One file analysed beside the missing one: an evaluation with a failure, exit 0.
    let (_set_dir, set) = synth_folder(1);
    let song = fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|x| x == "wav"))
        .unwrap();
    fs::write(
        &manifest,
        format!(
            "file,bpm,source\ngone.wav,120,x\n{},120,x\n",
            song.display()
        ),
    )
    .unwrap();
    eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(&manifest)
        .arg("--out-dir")
        .arg(&out_dir)
        .assert()
        .success();
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

/// The files of the small synthetic set with their true tempo, from a results.csv.
fn truth_of(results_csv: &Path) -> Vec<(String, String)> {
    fs::read_to_string(results_csv)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let mut cells = l.split(',');
            let file = cells.next().unwrap().to_string();
            (file, cells.next().unwrap().to_string())
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn external_estimators_sit_beside_ours_and_fail_per_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let output = evaluate_small(&out)
        .args(["--workers", "2"])
        .args(["--estimator", "ours"])
        // {file} becomes $0 of the script: substituted, quoted, and ignored.
        .args([
            "--estimator",
            r#"echo-120=cmd:sh -c "echo tempo 120" {file}"#,
        ])
        .args(["--estimator", r#"cmd:sh -c "echo broken >&2; exit 3""#])
        .assert()
        .success()
        .get_output()
        .clone();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("echo-120"), "{stdout}");

    let summary = read_json(&out.join("summary.json"));
    let estimators = summary["estimators"].as_array().unwrap();
    let names: Vec<&str> = estimators
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ours", "echo-120", r#"cmd:sh -c "echo broken >&2; exit 3""#,]
    );
    for e in estimators {
        assert_eq!(e["n"], 4);
    }
    // Nothing measured in the summary: CPU seconds sit beside the timings.
    assert!(estimators.iter().all(|e| e.get("cpu_s").is_none()));
    assert_eq!(estimators[0]["acc1"], summary["acc1"]);
    assert_eq!(estimators[1]["failed"], 0);
    assert_eq!(
        (
            estimators[2]["failed"].as_u64(),
            estimators[2]["acc2"].as_f64()
        ),
        (Some(4), Some(0.0))
    );

    // Each estimator's rows, with the reason of every failure.
    let sub = out.join("estimators");
    let echo = fs::read_to_string(sub.join("2-echo-120/results.csv")).unwrap();
    assert!(
        echo.lines().skip(1).all(|l| l.contains(",120.00,,")),
        "{echo}"
    );
    let broken =
        fs::read_to_string(sub.join("3-cmd-sh-c-echo-broken-2-exit-3/results.csv")).unwrap();
    assert!(
        broken
            .lines()
            .skip(1)
            .all(|l| l.contains(",error,") && l.contains("broken")),
        "{broken}"
    );

    // Cost: CPU measured for ours and the commands, a table and a chart.
    let timings = read_json(&out.join("timings.json"));
    let costs = timings["estimators"].as_array().unwrap();
    assert_eq!(costs.len(), 3);
    // CPU is measured for ours (its thread) and for a command that answered (its process);
    // a run that failed on every file has none to report.
    for c in &costs[..2] {
        assert!(c["cpu_s"].as_f64().is_some(), "{c}");
    }
    assert!(costs[2]["cpu_s"].is_null());
    assert!(costs[0]["cpu_audio_s"].as_f64().unwrap() > 30.0);
    let table = fs::read_to_string(out.join("estimators.csv")).unwrap();
    assert_eq!(table.lines().count(), 4);
    assert!(out.join("accuracy_vs_cpu.svg").is_file());
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("Estimators side by side"));
}

/// A program past `--timeout` is killed and its files are `timeout` rows; the run itself
/// completes. The deadline (one nanosecond) has passed by the first check of every file,
/// and the program would never end on its own, so nothing here races the clock.
#[cfg(unix)]
#[test]
fn a_program_past_its_time_limit_is_killed_and_its_rows_say_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let run = evaluate_small(&out)
        .args(["--workers", "2", "--timeout", "0.000000001"])
        .args(["--estimator", "cmd:sleep 3600"])
        .output()
        .unwrap();
    // Every file timed out: the report is written, and it measured nothing.
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr_of(&run).contains("no file was analysed (4 of 4 failed)"));
    let rows = fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(rows.lines().count(), 5, "{rows}");
    assert!(
        rows.lines().skip(1).all(|l| l.contains(",timeout,")),
        "{rows}"
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["estimators"][0]["failed"], 4);
}

#[test]
fn csv_predictions_are_scored_and_missing_ones_fail() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    evaluate_small(&first).assert().success();
    let truth = truth_of(&first.join("results.csv"));
    assert_eq!(truth.len(), 4);
    // Perfect predictions for all but the last file.
    let mut predictions = String::from("file,bpm\n");
    for (file, bpm) in &truth[..3] {
        predictions.push_str(&format!("{file},{bpm}\n"));
    }
    let csv = dir.path().join("pred.csv");
    fs::write(&csv, predictions).unwrap();

    let out = dir.path().join("out");
    evaluate_small(&out)
        .arg("--estimator")
        .arg(format!("csv:{}", csv.display()))
        .assert()
        .success();
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(summary["acc1"], 0.75);
    assert_eq!(summary["failed"], 1);
    assert_eq!(
        summary["estimators"][0]["name"],
        format!("csv:{}", csv.display())
    );
    let rows = fs::read_to_string(out.join("results.csv")).unwrap();
    assert!(rows.contains("no prediction"), "{rows}");
    // Predictions made elsewhere have no CPU cost to report.
    let timings = read_json(&out.join("timings.json"));
    assert!(timings["estimators"][0]["cpu_s"].is_null(), "{timings}");
}

/// A second reading counts for Accuracy1 of either reading, and only there: in
/// results.csv, summary.json, the printed line, `check`'s gate, and `compare`'s rows.
#[test]
fn a_second_reading_is_scored_as_either_reading() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    evaluate_small(&first).assert().success();
    let truth = truth_of(&first.join("results.csv"));
    let bpm = |k: usize| truth[k].1.parse::<f64>().unwrap();
    // Right; 3:2 with the truth second; 3:2 and 4:3; the octave with no second reading.
    let predictions = format!(
        "file,bpm,alt_bpm\n{},{},{}\n{},{},{}\n{},{},{}\n{},{},\n",
        truth[0].0,
        bpm(0),
        bpm(0) * 1.5,
        truth[1].0,
        bpm(1) * 1.5,
        bpm(1),
        truth[2].0,
        bpm(2) * 1.5,
        bpm(2) * 4.0 / 3.0,
        truth[3].0,
        bpm(3) * 2.0,
    );
    let csv = dir.path().join("two.csv");
    fs::write(&csv, predictions).unwrap();
    let estimator = format!("csv:{}", csv.display());
    let out = dir.path().join("out");
    let run = evaluate_small(&out)
        .args(["--estimator", &estimator])
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr_of(&run));
    let printed = String::from_utf8_lossy(&run.stdout);
    assert!(
        printed.contains("Accuracy1 25.0 %, Accuracy2 50.0 %, bpm or alt_bpm 50.0 %"),
        "{printed}"
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(
        (&summary["acc1"], &summary["acc2"], &summary["acc1_either"]),
        (&0.25.into(), &0.5.into(), &0.5.into())
    );
    assert_eq!(summary["estimators"][0]["acc1_either"], 0.5);
    let rows = fs::read_to_string(out.join("results.csv")).unwrap();
    let second = rows.lines().nth(2).unwrap();
    let cells: Vec<&str> = second.split(',').collect();
    // file, truth_bpm, est_bpm, confidence, alt_bpm, acc1, acc2, acc1_either, error_class
    assert_eq!(
        (cells[4], cells[5], cells[6], cells[7], cells[8]),
        (
            format!("{:.2}", bpm(1)).as_str(),
            "0",
            "0",
            "1",
            "three_halves"
        ),
        "{rows}"
    );
    assert!(
        fs::read_to_string(out.join("report.html"))
            .unwrap()
            .contains("Accuracy1, bpm or alt_bpm")
    );
    // The gate, at and over the figure.
    for (floor, code) in [("0.5", 0), ("0.6", 1)] {
        let gate = dir.path().join("gate.toml");
        fs::write(&gate, format!("min_acc1_either = {floor}\n")).unwrap();
        let checked = eval_cli()
            .arg("check")
            .arg("--report")
            .arg(&out)
            .arg("--thresholds")
            .arg(&gate)
            .output()
            .unwrap();
        assert_eq!(checked.status.code(), Some(code), "{}", stderr_of(&checked));
    }
    // compare's runs are child processes: the second reading crosses to the parent.
    let compared = dir.path().join("compared");
    let run = eval_cli()
        .arg("compare")
        .args(SMALL)
        .args(QUICK_COMPARE)
        .args(["--estimator", &estimator])
        .arg("--out-dir")
        .arg(&compared)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr_of(&run));
    assert_eq!(
        read_json(&compared.join("summary.json"))["acc1_either"],
        0.5
    );
    assert_eq!(
        fs::read_to_string(compared.join("results.csv")).unwrap(),
        rows
    );
}

/// A hand-made dataset in `dir/ds`: `files` (4-s click tracks at 120 BPM) and a manifest
/// listing them.
fn click_dataset(dir: &Path, files: &[&str]) -> std::path::PathBuf {
    let ds = dir.join("ds");
    fs::create_dir_all(&ds).unwrap();
    let mut manifest = String::from("file,bpm\n");
    for file in files {
        click_wav(&ds.join(file), 120.0, 4.0);
        manifest.push_str(&format!("{file},120\n"));
    }
    fs::write(ds.join("manifest.csv"), manifest).unwrap();
    ds
}

/// A predictions file that cannot be scored as written is refused naming it, the row and
/// the value: a bad `bpm` (it was "no prediction for this file", the tool's miss), a file
/// listed twice (the last value was scored), or a folder (an OS error naming nothing).
#[test]
fn bad_predictions_are_refused_naming_the_file_and_row() {
    let dir = tempfile::tempdir().unwrap();
    let ds = click_dataset(dir.path(), &["a.wav", "b.wav"]);
    let evaluate = |predictions: &Path| {
        eval_cli()
            .args(["evaluate", "--progress", "off", "--dataset"])
            .arg(ds.join("manifest.csv"))
            .arg("--out-dir")
            .arg(dir.path().join("out"))
            .arg("--estimator")
            .arg(format!("csv:{}", predictions.display()))
            .output()
            .unwrap()
    };
    let p = dir.path().join("p.csv");
    for bad in ["NaN", "-3", "1e400", "inf", "0"] {
        fs::write(&p, format!("file,bpm\na.wav,120\nb.wav,{bad}\n")).unwrap();
        let out = evaluate(&p);
        assert_usage_error(&out, &format!("{} row 3: `bpm` is {bad:?}", p.display()));
    }
    fs::write(&p, "file,bpm\na.wav,120\na.wav,60\nb.wav,120\n").unwrap();
    let out = evaluate(&p);
    assert_usage_error(&out, "row 3: \"a.wav\" is listed again (first on row 2)");
    let pdir = dir.path().join("pdir");
    fs::create_dir(&pdir).unwrap();
    let out = evaluate(&pdir);
    assert_usage_error(
        &out,
        &format!("cannot read predictions {}: ", pdir.display()),
    );
    assert!(!dir.path().join("out").exists());
    // An empty cell is still no prediction (documented): that file is a failed row.
    fs::write(&p, "file,bpm\na.wav,120\nb.wav,\n").unwrap();
    let out = evaluate(&p);
    assert!(out.status.success(), "{}", stderr_of(&out));
    let rows = fs::read_to_string(dir.path().join("out/results.csv")).unwrap();
    assert!(rows.contains("b.wav,120,,,,0,0,0,failed,error,"), "{rows}");
}

/// A manifest file whose name starts with `-` is given to a `cmd:` tool as `./-dash.wav`:
/// as `-dash.wav` the tool read it as options (`wc: invalid option -- 'd'`).
#[cfg(unix)]
#[test]
fn a_file_named_like_an_option_reaches_the_tool_as_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let ds = click_dataset(dir.path(), &["-dash.wav"]);
    let out = eval_cli()
        .current_dir(&ds)
        .args(["evaluate", "--progress", "off", "--dataset", "manifest.csv"])
        .args(["--out-dir", "out", "--estimator", "cmd:wc -c {file}"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let rows = fs::read_to_string(ds.join("out/results.csv")).unwrap();
    let size = fs::metadata(ds.join("-dash.wav")).unwrap().len();
    assert!(
        rows.contains(&format!("-dash.wav,120,{size}.00,,,0,0,0,other,ok,")),
        "{rows}"
    );
}

/// A `file` cell is the name exactly, spaces and all, quoted or not, as a folder scan keeps
/// it; the header and the other cells are trimmed (`file, bpm`, ` 100`). ` lead.wav` was
/// read as `lead.wav`, another file, scored in its place (or, listed too, "listed again"),
/// and `trail.wav ` as `trail.wav`, no such file: in a manifest, in `csv:` predictions and
/// in `dataset excerpts --from`, whose own manifest then reads back its ` lead__8s_o0.wav`.
#[test]
fn a_file_cell_is_the_name_with_its_spaces() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    fs::create_dir(&ds).unwrap();
    click_wav(&ds.join(" lead.wav"), 100.0, 10.0);
    click_wav(&ds.join("trail.wav "), 100.0, 6.0);
    click_wav(&ds.join("lead.wav"), 140.0, 6.0);
    let manifest = ds.join("manifest.csv");
    fs::write(
        &manifest,
        "file, bpm\n\" lead.wav\", 100\ntrail.wav ,100\nlead.wav,140\n",
    )
    .unwrap();
    let names = [" lead.wav", "trail.wav ", "lead.wav"];
    let ours = evaluate_rows(&manifest, "ours", &dir.path().join("ours"));
    for (row, name) in ours.iter().zip(names) {
        let (truth, est): (f64, f64) = (row[1].parse().unwrap(), row[2].parse().unwrap());
        assert!(
            row[0] == name && row[3] == "ok" && (est - truth).abs() < 0.04 * truth,
            "{ours:?}"
        );
    }
    assert_eq!(ours.len(), 3);

    let predictions = dir.path().join("p.csv");
    fs::write(
        &predictions,
        "file,bpm\n\" lead.wav\",101\nlead.wav, 141\n\"trail.wav \",99\n",
    )
    .unwrap();
    let estimator = format!("csv:{}", predictions.display());
    let scored = evaluate_rows(&manifest, &estimator, &dir.path().join("csv"));
    let got: Vec<[&str; 2]> = scored.iter().map(|r| [&*r[0], &*r[2]]).collect();
    assert_eq!(
        got,
        [
            [" lead.wav", "101.00"],
            ["trail.wav ", "99.00"],
            ["lead.wav", "141.00"]
        ]
    );

    // Only ` lead.wav` is long enough for an 8-s excerpt (`lead.wav` is not).
    let ex = dir.path().join("ex");
    let cut = eval_cli()
        .args(["dataset", "excerpts", "--from"])
        .arg(&manifest)
        .args(["--seconds", "8", "--offsets", "1", "--out"])
        .arg(&ex)
        .output()
        .unwrap();
    assert!(cut.status.success(), "{}", stderr_of(&cut));
    let excerpts = result_rows(&ex.join("manifest.csv"));
    assert_eq!(excerpts.len(), 1, "{excerpts:?}");
    assert_eq!(excerpts[0][0], " lead__8s_o0.wav");
    assert_eq!(excerpts[0][4], " lead.wav");
    let rows = evaluate_rows(&ex.join("manifest.csv"), "ours", &dir.path().join("ex-out"));
    assert_eq!((&*rows[0][0], &*rows[0][3]), (" lead__8s_o0.wav", "ok"));
}

/// `--progress jsonl`: each `file` event shows the estimate as `analyze`'s events show a
/// row (ours: its tempo, key and loudness, the same numbers; a `csv:` tool: what it gave,
/// no loudness), and null for a file that failed. All three were always null.
#[test]
fn jsonl_file_events_carry_the_estimate() {
    let (dir, set) = synth_folder(1);
    let manifest = set.join("manifest.csv");
    let listed = fs::read_to_string(&manifest).unwrap();
    let song = listed.lines().nth(1).unwrap().split(',').next().unwrap();
    // Every column but `bpm` empty: 8 in all.
    fs::write(&manifest, format!("{listed}gone.wav,120,,,,,,\n")).unwrap();
    let predictions = dir.path().join("p.csv");
    fs::write(
        &predictions,
        format!("file,bpm,key\n{song},123.4567,A minor\n"),
    )
    .unwrap();
    let run = eval_cli()
        .args([
            "evaluate",
            "--progress",
            "jsonl",
            "--workers",
            "1",
            "--dataset",
        ])
        .arg(&manifest)
        .args(["--descriptors", "tempo,key,loudness", "--out-dir"])
        .arg(dir.path().join("out"))
        .args(["--estimator", "ours", "--estimator"])
        .arg(format!("csv:{}", predictions.display()))
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr_of(&run));
    let file_events = |stderr: &[u8]| -> Vec<serde_json::Value> {
        String::from_utf8_lossy(stderr)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "file")
            .collect()
    };
    let events = file_events(&run.stderr);
    assert_eq!(events.len(), 4, "{}", stderr_of(&run));
    let shown = |e: &serde_json::Value| {
        [
            e["bpm"].clone(),
            e["key"].clone(),
            e["loudness_lufs"].clone(),
        ]
    };
    let (ours, theirs) = events.split_at(2);
    let of = |events: &[serde_json::Value], name: &str| {
        events
            .iter()
            .find(|e| e["path"].as_str().unwrap().ends_with(name))
            .map(shown)
            .unwrap()
    };

    let analyzed = crate::util::analyze(
        &["--descriptors", "tempo,key,loudness", "--progress", "jsonl"],
        &[&set.join(song)],
    );
    let want = shown(&file_events(&analyzed.stderr)[0]);
    assert!(
        want[0].is_f64() && want[1].is_string() && want[2].is_f64(),
        "{want:?}"
    );
    assert_eq!(of(ours, song), want);
    assert_eq!(
        of(theirs, song),
        [
            serde_json::json!(123.457),
            serde_json::json!("A minor"),
            serde_json::Value::Null
        ]
    );
    for failed in [of(ours, "gone.wav"), of(theirs, "gone.wav")] {
        assert!(failed.iter().all(serde_json::Value::is_null), "{failed:?}");
    }
}

/// Every line of a results.csv after its header, as cells.
fn result_rows(path: &Path) -> Vec<Vec<String>> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

/// `eval-cli evaluate` of `dataset` with `estimator` into `out`, which must succeed; the
/// rows of its results.csv, each as its file, true tempo, tempo estimate and status (and,
/// with key truth, the true key and the key estimate).
fn evaluate_rows(dataset: &Path, estimator: &str, out: &Path) -> Vec<Vec<String>> {
    let run = eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(dataset)
        .args(["--estimator", estimator, "--out-dir"])
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", stderr_of(&run));
    result_rows(&out.join("results.csv"))
        .into_iter()
        .map(|row| {
            let mut cells = vec![
                row[0].clone(),
                row[1].clone(),
                row[2].clone(),
                row[9].clone(),
            ];
            cells.extend(row.get(11..13).into_iter().flatten().cloned());
            cells
        })
        .collect()
}

/// A tool that answers with the annotations beside the file it is given (`X.bpm`, and
/// `X.key` where there is one), so that every estimate is its own file's truth.
const ANSWERS_BESIDE: &str =
    r#"cmd:sh -c 'cat "${0%.wav}.bpm"; cat "${0%.wav}.key" 2>/dev/null; true' {file}"#;

/// A folder dataset's annotation is the one beside the file: `B/01.wav` was scored against
/// `A/01.bpm` and `A/01.key`, the first `01` annotations of the tree.
#[cfg(unix)]
#[test]
fn a_folder_datasets_annotation_is_the_one_beside_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    for (folder, bpm, key) in [("A", 100.0, "C major"), ("B", 150.0, "A minor")] {
        fs::create_dir_all(ds.join(folder)).unwrap();
        click_wav(&ds.join(folder).join("01.wav"), bpm, 2.0);
        fs::write(ds.join(folder).join("01.bpm"), format!("{bpm}\n")).unwrap();
        fs::write(ds.join(folder).join("01.key"), format!("{key}\n")).unwrap();
    }
    let rows = evaluate_rows(&ds, ANSWERS_BESIDE, &dir.path().join("out"));
    assert_eq!(
        rows,
        [
            ["A/01.wav", "100", "100.00", "ok", "C major", "C major"],
            ["B/01.wav", "150", "150.00", "ok", "A minor", "A minor"],
        ]
    );
}

/// Names that are not UTF-8 keep their own truth, reach a `cmd:` tool as they are on disk,
/// and have cells of their own (`analyze`'s `\xFF`): both were `a\u{FFFD}.wav`, with one
/// truth for the two, and the tool was handed a file that does not exist.
#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_keep_their_truth_and_reach_the_tool() {
    use std::os::unix::ffi::OsStrExt;
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("ds");
    fs::create_dir(&ds).unwrap();
    let name = |bytes: &[u8]| ds.join(std::ffi::OsStr::from_bytes(bytes));
    for (stem, bpm) in [(b"a\xFF", 100.0), (b"a\xFE", 150.0)] {
        click_wav(&name(&[stem.as_slice(), b".wav"].concat()), bpm, 2.0);
        fs::write(
            name(&[stem.as_slice(), b".bpm"].concat()),
            format!("{bpm}\n"),
        )
        .unwrap();
    }
    let rows = evaluate_rows(&ds, ANSWERS_BESIDE, &dir.path().join("out"));
    assert_eq!(
        rows,
        [
            ["a\\xFE.wav", "150", "150.00", "ok"],
            ["a\\xFF.wav", "100", "100.00", "ok"],
        ]
    );
}

/// A tool that prints megabytes on stdout and stderr before its answer is scored on that
/// answer (only a tail of what it prints is held).
#[cfg(unix)]
#[test]
fn a_tool_that_prints_megabytes_before_its_answer_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let ds = click_dataset(dir.path(), &["a.wav"]);
    let tool = "cmd:sh -c 'seq 1000000; seq 1000000 >&2; echo tempo: 120'";
    let rows = evaluate_rows(&ds.join("manifest.csv"), tool, &dir.path().join("out"));
    assert_eq!(rows, [["a.wav", "120", "120.00", "ok"]]);
}

#[test]
fn unknown_estimator_is_refused() {
    let out = eval_cli()
        .args([
            "evaluate",
            "--dataset",
            "synth",
            "--estimator",
            "aubio",
            "--out-dir",
            "x",
        ])
        .output()
        .unwrap();
    assert_usage_error(&out, "cmd:TEMPLATE");
}

/// compare measures the first estimator at every worker count (here an external program,
/// whose rows must be identical too) and puts the others beside it once.
#[cfg(unix)]
#[test]
fn compare_measures_the_first_estimator_and_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    eval_cli()
        .arg("compare")
        .args(SMALL)
        .args(QUICK_COMPARE)
        .args(["--estimator", r#"echo=cmd:sh -c "echo 120" {file}"#])
        .args(["--estimator", "ours"])
        .arg("--out-dir")
        .arg(dir.path())
        .assert()
        .success();
    let compare = read_json(&dir.path().join("compare.json"));
    let runs = compare["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert!(runs.iter().all(|r| r["identical"] == true), "{compare}");
    // The program reports no audio; the parent measures it once (4 files of 8 s).
    let audio_s = compare["audio_s"].as_f64().unwrap();
    assert!((audio_s - 32.0).abs() < 0.5, "{audio_s}");
    let results = fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert!(
        results.lines().skip(1).all(|l| l.contains(",120.00,,")),
        "{results}"
    );
    let summary = read_json(&dir.path().join("summary.json"));
    let names: Vec<&str> = summary["estimators"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["echo", "ours"]);
    assert!(dir.path().join("estimators.csv").is_file());
    let html = fs::read_to_string(dir.path().join("report.html")).unwrap();
    assert!(html.contains("Estimators side by side"));
}

/// Every file under `dir` with its bytes, by relative path.
fn snapshot(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(name, fs::read(&path).unwrap());
    }
    out
}

/// Two synthetic tracks of 20 s, written into `dir`; returns the manifest's lines.
fn two_short_tracks(dir: &Path) -> Vec<String> {
    synth_set(dir, 2, 20.0);
    fs::read_to_string(dir.join("manifest.csv"))
        .unwrap()
        .lines()
        .map(String::from)
        .collect()
}

fn cut_excerpts(from: &Path, out: &Path) -> std::process::Output {
    eval_cli()
        .args(["dataset", "excerpts", "--from"])
        .arg(from)
        .args(["--seconds", "15,8,10,30", "--offsets", "2", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

/// `dataset excerpts --out` replaces only an earlier excerpt set: a user's file named like
/// an excerpt, a manifest of their own, or the source folder itself is refused before
/// anything is written, and left byte for byte.
#[test]
fn excerpts_never_replace_what_is_not_an_earlier_excerpt_set() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    two_short_tracks(&src);
    let mine = dir.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("notes__8s_o0.wav"), "my notes").unwrap();
    let theirs = dir.path().join("theirs");
    fs::create_dir(&theirs).unwrap();
    fs::write(theirs.join("manifest.csv"), "my manifest").unwrap();
    for out in [&mine, &theirs, &src] {
        let before = snapshot(out);
        let refused = cut_excerpts(&src, out);
        assert_eq!(refused.status.code(), Some(2), "{}", out.display());
        let stderr = stderr_of(&refused);
        assert!(
            stderr.contains("not part of an earlier excerpt set"),
            "{stderr}"
        );
        assert_eq!(snapshot(out), before, "{} changed", out.display());
    }
}

/// A set cut again with fewer lengths and offsets holds only what its manifest lists: the
/// earlier set's other excerpts stayed, unlisted, beside it.
#[test]
fn excerpts_cut_again_with_fewer_lengths_leave_none_unlisted() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    two_short_tracks(&src);
    let ex = dir.path().join("ex");
    assert!(cut_excerpts(&src, &ex).status.success());
    let again = eval_cli()
        .args(["dataset", "excerpts", "--from"])
        .arg(&src)
        .args(["--seconds", "8", "--offsets", "1", "--out"])
        .arg(&ex)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert!(
        stderr_of(&again).contains("removed 10 excerpts of an earlier set"),
        "{}",
        stderr_of(&again)
    );
    let manifest = fs::read_to_string(ex.join("manifest.csv")).unwrap();
    let mut listed: Vec<String> = manifest
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap().to_string())
        .collect();
    listed.extend(["manifest.csv".to_string(), ".eval-cli-excerpts".to_string()]);
    listed.sort();
    let held: Vec<String> = snapshot(&ex).into_keys().collect();
    assert_eq!(held, listed);
    assert_eq!(listed.len(), 2 + 2);
}

/// When no track yields an excerpt of any length asked, no manifest is written (a
/// header-only one, exit 0, was refused by every command that read it): exit 1 saying
/// why, and an earlier set in `--out` stays as it was.
#[test]
fn excerpts_too_long_for_every_track_write_no_manifest_and_keep_the_earlier_set() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    two_short_tracks(&src);
    let ex = dir.path().join("ex");
    assert!(cut_excerpts(&src, &ex).status.success());
    let before = snapshot(&ex);
    let out = eval_cli()
        .args(["dataset", "excerpts", "--from"])
        .arg(&src)
        .args(["--seconds", "30,45", "--out"])
        .arg(&ex)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("every track is too short") && stderr_of(&out).contains("31 s"),
        "{}",
        stderr_of(&out)
    );
    let after = snapshot(&ex);
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    assert!(after == before, "the earlier set's bytes changed");
}

#[test]
fn excerpts_are_cut_deterministically_and_evaluated_by_length() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let source_lines = two_short_tracks(&src);
    let ex = dir.path().join("ex");
    let out = cut_excerpts(&src, &ex);
    assert!(out.status.success(), "{}", stderr_of(&out));
    // No 20-s track holds a 30-s excerpt (it needs 31 s): the summary says so.
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("30 s: 0 excerpts; 2 tracks shorter than 31 s"),
        "{stdout}"
    );

    let manifest = fs::read_to_string(ex.join("manifest.csv")).unwrap();
    let lines: Vec<&str> = manifest.lines().collect();
    // The synthetic set's own `seconds` (the track length) survives as `source_seconds`;
    // its key truth is the excerpts' key truth.
    assert_eq!(
        lines[0],
        "file,bpm,seconds,offset_s,source_file,key,style,meter,format,source_seconds,seed"
    );
    // 2 tracks x 3 lengths x 2 offsets, lengths ascending, in dataset order.
    assert_eq!(lines.len(), 1 + 12);
    let first_source = source_lines[1].split(',').collect::<Vec<_>>();
    let stem = first_source[0].rsplit_once('.').unwrap().0;
    let row: Vec<&str> = lines[1].split(',').collect();
    // 20 s with a 2-s intro and outro: 8-s excerpts start at 2 + 8 x 1/4 and 2 + 8 x 3/4.
    assert_eq!(
        row[..5],
        [
            format!("{stem}__8s_o0.wav").as_str(),
            first_source[1],
            "8",
            "4.000",
            first_source[0]
        ]
    );
    assert_eq!(lines[2].split(',').nth(3), Some("8.000"));
    assert_eq!(row[5], first_source[7], "key kept");
    assert_eq!(row[6..], first_source[2..7], "source metadata kept");
    let seconds: Vec<&str> = lines[1..7]
        .iter()
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(seconds, ["8", "8", "10", "10", "15", "15"]);
    for line in &lines[1..] {
        let cells: Vec<&str> = line.split(',').collect();
        let reader = hound::WavReader::open(ex.join(cells[0])).unwrap();
        let spec = reader.spec();
        assert_eq!((spec.channels, spec.bits_per_sample), (1, 16));
        let want: f64 = cells[2].parse().unwrap();
        assert_eq!(
            f64::from(reader.duration()),
            want * f64::from(spec.sample_rate)
        );
    }

    // Rerunning overwrites with the same bytes.
    let before = snapshot(&ex);
    // 12 excerpts, the manifest and the marker (`.eval-cli-excerpts`).
    assert_eq!(before.len(), 14);
    let again = cut_excerpts(&src, &ex);
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert_eq!(snapshot(&ex), before, "a rerun changed the excerpts");

    // evaluate breaks accuracy down by length, in numeric order.
    let report = dir.path().join("report");
    eval_cli()
        .args([
            "evaluate",
            "--progress",
            "off",
            "--workers",
            "2",
            "--dataset",
        ])
        .arg(&ex)
        .arg("--out-dir")
        .arg(&report)
        .assert()
        .success();
    let summary = read_json(&report.join("summary.json"));
    let lengths: Vec<f64> = summary["by_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["seconds"].as_f64().unwrap())
        .collect();
    assert_eq!(lengths, [8.0, 10.0, 15.0]);
    assert_eq!(summary["by_seconds"][0]["n"], 4);
    assert_eq!(summary["by"]["seconds"]["10"]["n"], 4);
    assert_eq!(
        summary["estimators"][0]["by_seconds"],
        summary["by_seconds"]
    );
    // The key is broken down by length too.
    let key_lengths: Vec<(f64, u64)> = summary["key"]["by_seconds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["seconds"].as_f64().unwrap(), l["n"].as_u64().unwrap()))
        .collect();
    assert_eq!(key_lengths, [(8.0, 4), (10.0, 4), (15.0, 4)]);
    let bins = summary["reliability"].as_array().unwrap();
    assert_eq!(bins.len(), 5);
    let answered: u64 = bins.iter().map(|b| b["n"].as_u64().unwrap()).sum();
    assert_eq!(answered + summary["failed"].as_u64().unwrap(), 12);
    for f in [
        "accuracy_by_seconds.svg",
        "accuracy_by_seconds.png",
        "reliability.svg",
    ] {
        assert!(report.join(f).is_file(), "{f} missing");
    }
    let html = fs::read_to_string(report.join("report.html")).unwrap();
    assert!(html.contains("Accuracy by length"), "no length section");
    assert!(html.contains("Reliability"), "no reliability section");
    // Both tables by length list 8 before 10 before 15 (a text sort puts 10 first).
    for heading in ["<h2>Accuracy by length</h2>", "<h3>By seconds</h3>"] {
        let table = &html[html.find(heading).expect(heading)..];
        let at = |s: &str| table.find(&format!("<tr><td>{s}</td>")).expect(s);
        assert!(at("8") < at("10") && at("10") < at("15"), "{heading}");
    }
}

#[test]
fn excerpts_skip_a_source_that_does_not_decode() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let mut lines = two_short_tracks(&src);
    fs::write(src.join("broken.wav"), b"not audio at all").unwrap();
    let mut broken: Vec<String> = lines[1].split(',').map(String::from).collect();
    broken[0] = "broken.wav".into();
    lines.insert(1, broken.join(","));
    let manifest = src.join("with-broken.csv");
    fs::write(&manifest, lines.join("\n") + "\n").unwrap();
    let ex = dir.path().join("ex");
    let out = cut_excerpts(&manifest, &ex);
    assert_eq!(out.status.code(), Some(1), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("broken.wav"),
        "{}",
        stderr_of(&out)
    );
    let rows = fs::read_to_string(ex.join("manifest.csv")).unwrap();
    assert_eq!(rows.lines().count(), 1 + 12, "{rows}");
    assert!(!rows.contains("broken"), "{rows}");
}

/// `--timeout`, `--workers` and the tempo range follow one rule in `analyze`, `evaluate`
/// and `compare` (docs/analyze.md, "Flags shared by the commands"): `--timeout 0` and `--workers 0`
/// are usage errors, as is an empty tempo range; each exits 2 naming the flag.
#[test]
fn shared_flags_follow_one_rule_in_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    let wav = dir.path().join("a.wav");
    fs::write(&wav, b"not audio").unwrap();
    let commands: [Vec<std::ffi::OsString>; 3] = [
        vec!["analyze".into(), wav.clone().into()],
        ["evaluate", "--out-dir"]
            .iter()
            .map(Into::into)
            .chain([out_dir.clone().into()])
            .chain(SMALL.iter().map(Into::into))
            .collect(),
        ["compare", "--repeat", "1", "--warmup", "0", "--out-dir"]
            .iter()
            .map(Into::into)
            .chain([out_dir.clone().into()])
            .chain(SMALL.iter().map(Into::into))
            .collect(),
    ];
    for command in &commands {
        for (bad, names) in [
            (&["--timeout", "0"][..], "--timeout"),
            (&["--timeout=-1"], "--timeout"),
            (&["--timeout", "nan"], "--timeout"),
            (&["--workers", "0"], "--workers"),
            (&["--min-bpm", "200", "--max-bpm", "100"], "tempo range"),
        ] {
            let out = eval_cli().args(command).args(bad).output().unwrap();
            let err = stderr_of(&out);
            assert_eq!(out.status.code(), Some(2), "{command:?} {bad:?}: {err}");
            assert!(err.contains(names), "{command:?} {bad:?}: {err}");
        }
    }
    assert!(!out_dir.join("runs").exists(), "compare started a child");
}

/// `compare --repeat 0` was silently run as 1 and `--workers 1,1` silently measured once:
/// both are usage errors now (exit 2) that say what is wrong, before any child starts.
#[test]
fn compare_refuses_zero_repeats_and_a_worker_count_listed_twice() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("out");
    for (bad, said) in [
        (&["--repeat", "0", "--workers", "1"][..], "--repeat"),
        (&["--repeat", "0", "--workers", "1"], "must be at least 1"),
        (&["--repeat", "1", "--workers", "1,1"], "1 is listed twice"),
        (
            &["--repeat", "1", "--workers", "2,1,2"],
            "2 is listed twice",
        ),
        // A count the machine would lower was measured lower and reported as named; one
        // whose memory overflowed the warning's arithmetic panicked.
        (
            &["--repeat", "1", "--workers", "1,100000000"],
            "list at most",
        ),
        (
            &["--repeat", "1", "--workers", "18446744073709551615"],
            "list at most",
        ),
        // Two estimators of one name: nothing after could tell their rows apart.
        (
            &[
                "--workers",
                "1",
                "--estimator",
                "x=ours",
                "--estimator",
                "x=ours",
            ],
            "two estimators are named \"x\"",
        ),
    ] {
        let out = eval_cli()
            .args(["compare", "--warmup", "0", "--out-dir"])
            .arg(&out_dir)
            .args(SMALL)
            .args(bad)
            .output()
            .unwrap();
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {err}");
        assert!(err.contains(said), "{bad:?}: {err}");
    }
    assert!(!out_dir.exists(), "compare started");
}

/// The sequential reference path (1 worker) and the parallel one give the same bytes on
/// the synthetic set: the analyze CSV (stdout and `--out`) and evaluate's results.csv and
/// summary.json.
#[test]
fn synthetic_set_gives_the_same_bytes_sequential_and_parallel() {
    let (dir, set) = synth_folder(4);
    let analyze = |workers: &str| {
        let out = dir.path().join(format!("analyze-{workers}.csv"));
        let stdout = eval_cli()
            .args(["analyze", "--progress", "off", "--workers", workers])
            .arg(&set)
            .output()
            .unwrap();
        assert_eq!(stdout.status.code(), Some(0), "{}", stderr_of(&stdout));
        eval_cli()
            .args([
                "analyze",
                "--progress",
                "off",
                "--workers",
                workers,
                "--out",
            ])
            .arg(&out)
            .arg(&set)
            .assert()
            .code(0);
        let file = fs::read(&out).unwrap();
        assert_eq!(stdout.stdout, file, "stdout and --out differ at {workers}");
        file
    };
    let sequential = analyze("1");
    assert_eq!(String::from_utf8_lossy(&sequential).lines().count(), 5);
    assert_eq!(sequential, analyze("2"), "analyze CSV differs at 2 workers");

    let evaluate = |workers: &str| {
        let out = dir.path().join(format!("evaluate-{workers}"));
        eval_cli()
            .args([
                "evaluate",
                "--progress",
                "off",
                "--workers",
                workers,
                "--dataset",
            ])
            .arg(&set)
            .arg("--out-dir")
            .arg(&out)
            .assert()
            .success();
        ["results.csv", "summary.json"].map(|f| fs::read(out.join(f)).unwrap())
    };
    assert_eq!(
        evaluate("1"),
        evaluate("2"),
        "evaluate differs at 2 workers"
    );
}

/// Settings of our own analyzer are estimators like any other: two of them sit side by
/// side in compare's report (the first one, sampled, is what every worker count runs, so
/// its spec must reach the child runs intact) and in evaluate's.
#[test]
fn two_settings_of_ours_are_two_estimators() {
    let dir = tempfile::tempdir().unwrap();
    // 40 s tracks: long enough for 2 segments of 10 s to be sampled.
    let long = [
        "--dataset",
        "synth",
        "--synth-count",
        "2",
        "--synth-seconds",
        "40",
    ];
    // `COMMAND --dataset synth (2 x 40 s) FLAGS --out-dir DIR/COMMAND`, which must succeed.
    let run = |command: &str, flags: &[&str]| {
        let out = dir.path().join(command);
        eval_cli()
            .arg(command)
            .args(long)
            .args(flags)
            .arg("--out-dir")
            .arg(&out)
            .assert()
            .success();
        out
    };
    let out = run(
        "compare",
        &[
            QUICK_COMPARE.as_slice(),
            &[
                "--estimator",
                "sampled=ours:analysis-seconds=10,segments=2",
                "--estimator",
                "ours",
            ],
        ]
        .concat(),
    );
    let compare = read_json(&out.join("compare.json"));
    assert!(all_runs_identical(&compare), "{compare}");
    let names = |summary: &serde_json::Value| -> Vec<String> {
        summary["estimators"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        names(&read_json(&out.join("summary.json"))),
        ["sampled", "ours"]
    );
    let table = fs::read_to_string(out.join("estimators.csv")).unwrap();
    assert!(
        table.contains("\nsampled,") && table.contains("\nours,"),
        "{table}"
    );

    // evaluate: the command's flags set the base, `ours:` changes it per estimator.
    let out = run(
        "evaluate",
        &[
            "--analysis-seconds",
            "10",
            "--segments",
            "2",
            "--progress",
            "off",
            "--estimator",
            "ours",
            "--estimator",
            "ours:analysis-seconds=0",
        ],
    );
    let summary = read_json(&out.join("summary.json"));
    assert_eq!(names(&summary), ["ours", "ours:analysis-seconds=0"]);
    for e in summary["estimators"].as_array().unwrap() {
        assert_eq!(e["n"], 2, "{e}");
        assert_eq!(e["failed"], 0, "{e}");
    }
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("ours:analysis-seconds=0"));
    assert!(out.join("accuracy_vs_cpu.svg").is_file());
}

#[test]
fn bad_analyzer_settings_are_usage_errors_naming_them() {
    let run = |args: &[&str]| {
        let out = eval_cli()
            .args(["evaluate", "--dataset", "synth", "--out-dir", "x"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        stderr_of(&out)
    };
    let err = run(&["--estimator", "fast=ours:speed=9"]);
    assert!(
        err.contains("\"speed\"") && err.contains("analysis-seconds"),
        "{err}"
    );
    let err = run(&["--estimator", "ours:segments=0"]);
    assert!(err.contains("segments=\"0\""), "{err}");
    let err = run(&["--analysis-seconds", "5"]);
    assert!(err.contains("--analysis-seconds"), "{err}");
    let err = run(&["--analysis-seconds", "0", "--segments", "3"]);
    assert!(err.contains("--segments"), "{err}");
    let err = run(&["--full", "--analysis-seconds", "30"]);
    assert!(err.contains("--full"), "{err}");
    let err = run(&["--estimator", "ours:min-bpm=200,max-bpm=100"]);
    assert!(err.contains("ours:min-bpm=200,max-bpm=100"), "{err}");
}

/// A report never replaces a file of the dataset it evaluates: a manifest named
/// `results.csv` in the `--out-dir` is refused (exit 2, named) and left as it was, even
/// where the folder is an earlier report's.
#[test]
fn a_report_never_replaces_the_datasets_manifest() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join(".eval-cli-report"), "").unwrap();
    let manifest = dir.path().join("results.csv");
    fs::write(&manifest, "file,bpm\ngone.wav,120\n").unwrap();
    let out = eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(&manifest)
        .arg("--out-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    let err = stderr_of(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("results.csv") && err.contains("one of this run's input files"),
        "{err}"
    );
    assert_eq!(
        fs::read_to_string(&manifest).unwrap(),
        "file,bpm\ngone.wav,120\n"
    );
}

/// A report folder is one run's at a time: its marker is locked for the run, so a second
/// `evaluate` or `compare` on it is refused at once (exit 2) with the first one's files as
/// they were (two runs removed each other's files, and both said they wrote the report).
#[test]
fn a_second_run_on_one_report_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    evaluate_small(&report).assert().success();
    let summary = fs::read(report.join("summary.json")).unwrap();
    let holder = fs::File::open(report.join(".eval-cli-report")).unwrap();
    holder.try_lock().unwrap();
    let evaluate = evaluate_small(&report).output().unwrap();
    for (command, out) in [("evaluate", evaluate), ("compare", quick_compare(&report))] {
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains("is being written by another run"),
            "{command}: {err}"
        );
        assert_eq!(fs::read(report.join("summary.json")).unwrap(), summary);
    }
    drop(holder);
    evaluate_small(&report).assert().success();
}

/// `evaluate` and `compare` replace their files by name (results.csv, report.html, the
/// charts), so an `--out-dir` that holds files of the user's is refused (exit 2, naming
/// the folder and a file) with every file as it was; a new folder, an empty one and an
/// earlier report (even one a run left before its summary) are written.
#[test]
fn a_report_is_written_only_into_a_new_empty_or_report_folder() {
    let dir = tempfile::tempdir().unwrap();
    let mine = dir.path().join("mine");
    fs::create_dir(&mine).unwrap();
    fs::write(mine.join("report.html"), "my page").unwrap();
    fs::write(mine.join("results.csv"), "my rows").unwrap();
    let evaluate = evaluate_small(&mine).output().unwrap();
    for (command, out) in [("evaluate", evaluate), ("compare", quick_compare(&mine))] {
        let err = stderr_of(&out);
        assert_eq!(out.status.code(), Some(2), "{command}: {err}");
        assert!(
            err.contains(&*mine.to_string_lossy()) && err.contains("holds report.html"),
            "{command}: {err}"
        );
        assert_eq!(
            fs::read_to_string(mine.join("report.html")).unwrap(),
            "my page"
        );
        assert_eq!(
            fs::read_to_string(mine.join("results.csv")).unwrap(),
            "my rows"
        );
        assert_eq!(
            fs::read_dir(&mine).unwrap().count(),
            2,
            "{command} wrote nothing"
        );
    }

    let report = dir.path().join("report");
    evaluate_small(&report).assert().success();
    let first = fs::read(report.join("summary.json")).unwrap();
    // As a run stopped before its summary leaves it: still the report's folder.
    fs::remove_file(report.join("summary.json")).unwrap();
    evaluate_small(&report).assert().success();
    assert_eq!(fs::read(report.join("summary.json")).unwrap(), first);
}

/// Starts `eval-cli ARGS` with stderr piped, waits for a stderr line holding `started`
/// (the command has begun its work), then sends it SIGTERM and returns its exit code.
fn sigterm_once_started(args: &[&std::ffi::OsStr], started: &str) -> Option<i32> {
    let mut child = eval_cli_process()
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let began = crate::util::wait_for_line(child.stderr.take().unwrap(), started);
    assert!(began, "no {started:?} on stderr");
    let sent = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    child.wait().unwrap().code()
}

/// The names of the hidden temporaries (`.NAME.TAG.tmp`) under `dir`, at any depth.
fn temporaries_in(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        if entry.file_type().unwrap().is_dir() {
            found.extend(temporaries_in(&entry.path()));
        } else if name.starts_with('.') && name.ends_with(".tmp") {
            found.push(name);
        }
    }
    found
}

/// `dataset synth` stopped by SIGTERM exits 130 with no temporary and no manifest (it
/// ignored the signal and left a 300-MB `.synth-....wav.PID.tmp`), and the next run into
/// the folder is not refused for what a killed run of its own leaves.
#[test]
fn synth_stops_on_sigterm_and_a_rerun_takes_its_folder_back() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    let code = sigterm_once_started(
        &[
            "dataset".as_ref(),
            "synth".as_ref(),
            "--count".as_ref(),
            "100".as_ref(),
            "--out".as_ref(),
            set.as_os_str(),
        ],
        "synth: track 1/100",
    );
    assert_eq!(code, Some(130));
    assert_eq!(temporaries_in(&set), Vec::<String>::new());
    assert!(
        !set.join("manifest.csv").exists(),
        "a stopped set has a manifest"
    );
    // What SIGKILL in the middle of a track leaves.
    let killed = set.join(".synth-000-fourfloor-95.0.wav.4242.tmp");
    fs::write(&killed, "half a track").unwrap();
    synth_set(&set, 1, 4.0);
    assert!(
        !killed.exists(),
        "the killed run's temporary is still there"
    );
    assert!(set.join("manifest.csv").is_file());
}

/// `dataset excerpts` stopped by SIGTERM exits 130 with no temporary and no manifest, and
/// the next run takes the folder back (it was refused for the stopped run's excerpts, which
/// no manifest listed), removing what a killed run of its own left.
#[test]
fn excerpts_stop_on_sigterm_and_a_rerun_takes_their_folder_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    two_short_tracks(&src);
    let ex = dir.path().join("ex");
    // 2000 excerpts: far more than can be cut between the first line and the signal.
    let code = sigterm_once_started(
        &[
            "dataset".as_ref(),
            "excerpts".as_ref(),
            "--from".as_ref(),
            src.as_os_str(),
            "--seconds".as_ref(),
            "1".as_ref(),
            "--offsets".as_ref(),
            "1000".as_ref(),
            "--out".as_ref(),
            ex.as_os_str(),
        ],
        "excerpts: track 1/2",
    );
    assert_eq!(code, Some(130));
    assert_eq!(temporaries_in(&ex), Vec::<String>::new());
    assert!(
        !ex.join("manifest.csv").exists(),
        "a stopped set has a manifest"
    );
    // What SIGKILL in the middle of an excerpt leaves.
    let killed = ex.join(".synth-000-x__1s_o7.wav.Ab12Cd.tmp");
    fs::write(&killed, "half an excerpt").unwrap();
    let again = cut_excerpts(&src, &ex);
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert_eq!(temporaries_in(&ex), Vec::<String>::new());
    let manifest = fs::read_to_string(ex.join("manifest.csv")).unwrap();
    assert_eq!(manifest.lines().count(), 1 + 12, "{manifest}");
}

/// The command lines of the running processes that name `needle`.
#[cfg(target_os = "linux")]
fn processes_naming(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        // A process may end while it is read: it is then not running.
        if let Ok(cmdline) = fs::read(entry.path().join("cmdline")) {
            let line = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if line.contains(needle) {
                found.push(line);
            }
        }
    }
    found
}

/// `compare` stopped by SIGTERM exits 130 and stops its child run too (it died silently
/// and left the child running); the next comparison into the folder clears the earlier
/// runs, so `runs/` holds its own two (it held the 79 folders of the killed one beside them).
#[cfg(target_os = "linux")]
#[test]
fn compare_stops_its_child_on_sigterm_and_a_rerun_holds_only_its_runs() {
    let dir = tempfile::tempdir().unwrap();
    let set = dir.path().join("set");
    synth_set(&set, 1, 8.0);
    let out = dir.path().join("report");
    let code = sigterm_once_started(
        &[
            "compare".as_ref(),
            "--dataset".as_ref(),
            set.as_os_str(),
            "--workers".as_ref(),
            "1,2".as_ref(),
            "--repeat".as_ref(),
            "1000".as_ref(),
            "--warmup".as_ref(),
            "0".as_ref(),
            "--out-dir".as_ref(),
            out.as_os_str(),
        ],
        "compare: repeat 1/1000",
    );
    assert_eq!(code, Some(130));
    let runs = out.join("runs");
    let children = processes_naming(&runs.to_string_lossy());
    assert!(
        children.is_empty(),
        "children outlived compare: {children:?}"
    );
    assert!(
        !out.join("compare.json").exists(),
        "a stopped comparison wrote a report"
    );
    // However many runs the stopped comparison got through, and one of a longer --repeat.
    fs::create_dir_all(runs.join("w2-r999")).unwrap();
    let again = eval_cli()
        .arg("compare")
        .arg("--dataset")
        .arg(&set)
        .args(QUICK_COMPARE)
        .arg("--out-dir")
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success(), "{}", stderr_of(&again));
    let mut left: Vec<String> = fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["w1-r0", "w2-r0"]);
}

/// A report folder holds only the files of the run that wrote it: `evaluate` into an
/// earlier `compare`'s folder leaves no `compare.json` for `check` to gate on, nor the
/// other files (`runs/`) of the comparison.
#[test]
fn a_reused_report_folder_keeps_nothing_of_the_earlier_run() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let compared = quick_compare(&report);
    assert!(compared.status.success(), "{}", stderr_of(&compared));
    assert!(report.join("compare.json").is_file() && report.join("runs").is_dir());
    evaluate_small(&report).assert().success();
    assert!(!report.join("compare.json").exists());
    assert!(!report.join("runs").exists());
    assert!(report.join("summary.json").is_file() && report.join("report.html").is_file());
    let thresholds = dir.path().join("t.toml");
    fs::write(
        &thresholds,
        "min_efficiency = 0.5\nrequire_identical = true\n",
    )
    .unwrap();
    let out = check(&report, &thresholds).output().unwrap();
    assert_usage_error(&out, "compare.json");
}

/// A file the run reads under a name an earlier report wrote (here a `csv:` estimator's
/// predictions named `estimators.csv`) is refused before anything in the folder is
/// removed; under another name it is none of the report's and stays, as a user's notes do.
#[test]
fn a_reused_report_folder_holding_an_input_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    evaluate_small(&report).assert().success();
    let predictions = report.join("estimators.csv");
    fs::write(&predictions, "file,bpm\n").unwrap();
    let before = snapshot(&report);
    let out = evaluate_small(&report)
        .arg("--estimator")
        .arg(format!("mine=csv:{}", predictions.display()))
        .output()
        .unwrap();
    assert_usage_error(&out, "estimators.csv: it is one of this run's input files");
    assert_eq!(snapshot(&report), before);

    let predictions = report.join("pred.csv");
    fs::rename(report.join("estimators.csv"), &predictions).unwrap();
    fs::write(report.join("notes.txt"), "mine").unwrap();
    let out = evaluate_small(&report)
        .arg("--estimator")
        .arg(format!("mine=csv:{}", predictions.display()))
        .output()
        .unwrap();
    assert!(
        out.status.code().is_some_and(|c| c <= 1),
        "{}",
        stderr_of(&out)
    );
    assert_eq!(fs::read(&predictions).unwrap(), b"file,bpm\n");
    assert_eq!(fs::read(report.join("notes.txt")).unwrap(), b"mine");
}

/// An excerpt set cut from an earlier set into that same folder is refused before its
/// manifest, which the run reads, is removed or replaced.
#[test]
fn excerpts_into_the_set_they_are_cut_from_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    two_short_tracks(&src);
    let exs = dir.path().join("exs");
    assert!(cut_excerpts(&src, &exs).status.success());
    let before = snapshot(&exs);
    let out = cut_excerpts(&exs.join("manifest.csv"), &exs);
    assert_usage_error(&out, "one of this run's input files");
    assert_eq!(snapshot(&exs), before);
}

/// A named pipe as summary.json is refused naming it, never opened for reading: with no
/// writer that open blocked `check` forever. A thread waits to write, so that a reader
/// that opens it anyway sees end-of-file (and the test fails) instead of hanging it; a
/// non-blocking reader of our own releases that thread afterwards.
#[cfg(unix)]
#[test]
fn a_pipe_as_summary_json_exits_2_naming_it() {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = tempfile::tempdir().unwrap();
    hand_made_report(dir.path(), 0.7, 0.9, true);
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    let summary = dir.path().join("summary.json");
    fs::remove_file(&summary).unwrap();
    crate::util::fifo(&summary);
    let target = summary.clone();
    let writer = std::thread::spawn(move || {
        drop(fs::OpenOptions::new().write(true).open(target));
    });
    let out = check(dir.path(), &t).output().unwrap();
    let release = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&summary)
        .unwrap();
    writer.join().unwrap();
    drop(release);
    assert_usage_error(&out, "summary.json");
    assert!(
        stderr_of(&out).contains("not a regular file"),
        "{}",
        stderr_of(&out)
    );
}

/// A device as the thresholds file, or summary.json linked to one, is refused at once:
/// `/dev/zero` was read into memory without end.
#[cfg(unix)]
#[test]
fn a_device_as_input_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    hand_made_report(dir.path(), 0.7, 0.9, true);
    let out = check(dir.path(), Path::new("/dev/zero")).output().unwrap();
    assert_usage_error(&out, "/dev/zero");
    assert!(stderr_of(&out).contains("device"), "{}", stderr_of(&out));

    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    let summary = dir.path().join("summary.json");
    fs::remove_file(&summary).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &summary).unwrap();
    let out = check(dir.path(), &t).output().unwrap();
    assert_usage_error(&out, "summary.json");
    assert!(stderr_of(&out).contains("device"), "{}", stderr_of(&out));
}

/// A summary no run writes (an accuracy of 5, no files but 4 analysed) is refused naming
/// the field; it passed every threshold before.
#[test]
fn an_impossible_summary_exits_2_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    for (summary, field) in [
        (
            r#"{"n": 10, "ok": 10, "failed": 0, "acc1": 5.0, "acc2": 5.0}"#,
            "acc1 = 5 is not a fraction in 0..=1",
        ),
        (
            r#"{"n": 0, "ok": 4, "failed": 0, "acc1": 0.7, "acc2": 0.9}"#,
            "ok = 4 is more than n = 0",
        ),
    ] {
        hand_made_report(dir.path(), 0.7, 0.9, true);
        fs::write(dir.path().join("summary.json"), summary).unwrap();
        let out = check(dir.path(), &t).output().unwrap();
        assert_usage_error(&out, field);
        assert!(
            stderr_of(&out).contains("summary.json"),
            "{}",
            stderr_of(&out)
        );
    }
}

/// Runs `command` while a thread waits to open the FIFO at `fifo` for writing, so that a
/// reader that opens it blocking (the bug) sees end-of-file and the test fails instead of
/// hanging; a non-blocking reader of our own then releases that thread, whichever came
/// first.
#[cfg(unix)]
fn output_beside_a_writer(fifo: &Path, command: &mut assert_cmd::Command) -> std::process::Output {
    use std::os::unix::fs::OpenOptionsExt;
    let target = fifo.to_path_buf();
    let writer = std::thread::spawn(move || {
        drop(fs::OpenOptions::new().write(true).open(target));
    });
    let out = command.output().unwrap();
    let release = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(fifo)
        .unwrap();
    writer.join().unwrap();
    drop(release);
    out
}

/// Exit 2 naming `file` as a named pipe: nothing waited on it.
#[cfg(unix)]
fn assert_refused_pipe(out: &std::process::Output, file: &Path) {
    assert_usage_error(out, &file.display().to_string());
    assert!(
        stderr_of(out).contains("is a named pipe (FIFO), not a regular file"),
        "{}",
        stderr_of(out)
    );
}

/// `eval-cli evaluate --dataset DATASET --out-dir OUT --workers 1`, without progress.
fn evaluate_dataset(dataset: &Path, out: &Path) -> assert_cmd::Command {
    let mut command = eval_cli();
    command
        .args([
            "evaluate",
            "--progress",
            "off",
            "--workers",
            "1",
            "--dataset",
        ])
        .arg(dataset)
        .arg("--out-dir")
        .arg(out);
    command
}

/// A named pipe as a folder dataset's annotation (`.bpm`, `.key`, JAMS) is refused naming
/// it: without a writer, `evaluate` waited on it forever.
#[cfg(unix)]
#[test]
fn a_pipe_as_an_annotation_exits_2_naming_it() {
    for ext in ["bpm", "key", "jams"] {
        let dir = tempfile::tempdir().unwrap();
        let ds = dir.path().join("d8");
        fs::create_dir(&ds).unwrap();
        click_wav(&ds.join("01.wav"), 120.0, 4.0);
        let annotation = crate::util::fifo(&ds.join(format!("01.{ext}")));
        let out_dir = dir.path().join("out");
        let out = output_beside_a_writer(&annotation, &mut evaluate_dataset(&ds, &out_dir));
        assert_refused_pipe(&out, &annotation);
        let named = format!("cannot read annotation {}: ", annotation.display());
        assert!(stderr_of(&out).contains(&named), "{}", stderr_of(&out));
        assert!(!out_dir.exists());
    }
}

/// A named pipe as the manifest, given itself or as a folder's manifest.csv, is refused
/// naming it by `evaluate` and by `compare` (which read datasets alike); both waited on it
/// forever.
#[cfg(unix)]
#[test]
fn a_pipe_as_the_manifest_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = crate::util::fifo(&dir.path().join("mf.csv"));
    let out_dir = dir.path().join("out");
    let out = output_beside_a_writer(&manifest, &mut evaluate_dataset(&manifest, &out_dir));
    assert_refused_pipe(&out, &manifest);
    let mut compare = eval_cli();
    compare
        .args(["compare", "--dataset"])
        .arg(&manifest)
        .args(QUICK_COMPARE)
        .arg("--out-dir")
        .arg(&out_dir);
    let out = output_beside_a_writer(&manifest, &mut compare);
    assert_refused_pipe(&out, &manifest);
    assert!(!out_dir.exists());

    // In a folder it is the folder's manifest still, not a folder without one.
    let folder = dir.path().join("set");
    fs::create_dir(&folder).unwrap();
    click_wav(&folder.join("01.wav"), 120.0, 4.0);
    fs::write(folder.join("01.bpm"), "120\n").unwrap();
    let manifest = crate::util::fifo(&folder.join("manifest.csv"));
    let out = output_beside_a_writer(&manifest, &mut evaluate_dataset(&folder, &out_dir));
    assert_refused_pipe(&out, &manifest);
    assert!(!out_dir.exists());
}

/// A named pipe as a `csv:` predictions file is refused naming it: `evaluate` waited on it
/// forever.
#[cfg(unix)]
#[test]
fn a_pipe_as_csv_predictions_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ds = click_dataset(dir.path(), &["k1.wav"]);
    let predictions = crate::util::fifo(&dir.path().join("mf.csv"));
    let out_dir = dir.path().join("out");
    let mut command = evaluate_dataset(&ds.join("manifest.csv"), &out_dir);
    command
        .arg("--estimator")
        .arg(format!("p=csv:{}", predictions.display()));
    let out = output_beside_a_writer(&predictions, &mut command);
    assert_refused_pipe(&out, &predictions);
    assert!(
        stderr_of(&out).contains("cannot read predictions"),
        "{}",
        stderr_of(&out)
    );
    assert!(!out_dir.exists());
}

/// An annotation linked to `/dev/zero` is refused naming it, before anything is read: it
/// was read until memory ran out.
#[cfg(unix)]
#[test]
fn an_annotation_linked_to_a_device_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let ds = dir.path().join("d8b");
    fs::create_dir(&ds).unwrap();
    click_wav(&ds.join("01.wav"), 120.0, 4.0);
    let annotation = ds.join("01.bpm");
    std::os::unix::fs::symlink("/dev/zero", &annotation).unwrap();
    let out_dir = dir.path().join("out");
    let out = evaluate_dataset(&ds, &out_dir).output().unwrap();
    assert_usage_error(&out, &annotation.display().to_string());
    assert!(
        stderr_of(&out).contains("is a device, not a regular file"),
        "{}",
        stderr_of(&out)
    );
    assert!(!out_dir.exists());
}

/// An empty `TMPDIR` means the default temporary folder, as for the shell's tools: the
/// synthetic set's cache was made in the folder the command was run from.
#[test]
fn an_empty_tmpdir_keeps_the_synthetic_cache_out_of_the_working_folder() {
    let cwd = tempfile::tempdir().unwrap();
    let out = eval_cli()
        .current_dir(cwd.path())
        .env("TMPDIR", "")
        .args(["evaluate", "--dataset", "synth", "--synth-count", "2"])
        .args([
            "--synth-seconds",
            "4",
            "--progress",
            "off",
            "--out-dir",
            "out",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr_of(&out));
    let made: Vec<String> = fs::read_dir(cwd.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(made, ["out"]);
}

/// The built-in set is cached per user and checked before each use: a file a temp cleaner
/// removed and a truth edited in the cache are generated again (they were scored: a failed
/// row, a wrong truth), and a cache folder others may write is refused, not read.
#[cfg(unix)]
#[test]
fn the_cached_synthetic_set_is_checked_and_kept_private() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let run = |name: &str| {
        eval_cli()
            .env("TMPDIR", tmp.path())
            .args(["evaluate", "--dataset", "synth", "--synth-count", "2"])
            .args(["--synth-seconds", "4", "--progress", "off", "--out-dir"])
            .arg(out.path().join(name))
            .output()
            .unwrap()
    };
    let first = run("first");
    assert!(first.status.success(), "{}", stderr_of(&first));
    let root = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().contains("tempo-scale-synth-cache-"))
        .expect("a cache folder of this user's");
    let mode = fs::metadata(&root).unwrap().permissions().mode();
    assert_eq!(mode & 0o077, 0, "{mode:o}");
    let set = fs::read_dir(&root).unwrap().next().unwrap().unwrap().path();
    let summary = |name: &str| fs::read_to_string(out.path().join(name).join("summary.json"));
    let wav = fs::read_dir(&set)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .unwrap();
    fs::remove_file(&wav).unwrap();
    let again = run("again");
    assert!(again.status.success(), "{}", stderr_of(&again));
    assert!(
        stderr_of(&again).contains("was altered"),
        "{}",
        stderr_of(&again)
    );
    assert_eq!(summary("again").unwrap(), summary("first").unwrap());
    let manifest = set.join("manifest.csv");
    let text = fs::read_to_string(&manifest).unwrap();
    fs::write(&manifest, text.replacen(",4,", ",5,", 1)).unwrap();
    let edited = run("edited");
    assert!(
        stderr_of(&edited).contains("manifest.csv differs"),
        "{}",
        stderr_of(&edited)
    );
    assert_eq!(summary("edited").unwrap(), summary("first").unwrap());
    fs::set_permissions(&root, fs::Permissions::from_mode(0o777)).unwrap();
    let shared = run("shared");
    assert_eq!(shared.status.code(), Some(2), "{}", stderr_of(&shared));
    assert!(
        stderr_of(&shared).contains("may be written by others"),
        "{}",
        stderr_of(&shared)
    );
}

/// An estimator that sends its evaluate Ctrl-C and then waits to be killed, so that no
/// timing decides the order.
#[cfg(unix)]
const INTERRUPTS: &str = "cmd:sh -c 'kill -INT $PPID; exec sleep 600' {file}";

/// `evaluate` of three 4-s synthetic files on one worker with `estimators`, into `out_dir`.
#[cfg(unix)]
fn evaluate_three_synth_files(estimators: &[&str], out_dir: &Path) -> std::process::Output {
    let mut command = eval_cli();
    command.args(["evaluate", "--dataset", "synth", "--synth-count", "3"]);
    command.args([
        "--synth-seconds",
        "4",
        "--workers",
        "1",
        "--progress",
        "off",
    ]);
    for estimator in estimators {
        command.args(["--estimator", estimator]);
    }
    command.arg("--out-dir").arg(out_dir).output().unwrap()
}

/// An evaluate stopped by Ctrl-C writes no summary or report (a partial run scored the
/// files never analysed as failures, and `check` passed it): `results.csv` keeps a row per
/// file, the unfinished ones `cancelled`, and the exit is 130. The estimator sends the
/// signal itself and then waits to be killed, so no timing decides the order.
#[cfg(unix)]
#[test]
fn a_cancelled_evaluate_writes_no_summary_or_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = evaluate_three_synth_files(&[INTERRUPTS], dir.path());
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    assert!(
        stderr_of(&out).contains("no summary or report was written"),
        "{}",
        stderr_of(&out)
    );
    for never in ["summary.json", "report.html", "timings.json"] {
        assert!(!dir.path().join(never).exists(), "{never}");
    }
    let results = fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(results.lines().count(), 4, "{results}");
    assert!(results.contains("cancelled"), "{results}");
}

/// With several estimators, a cancel names the one that was stopped and where its rows are
/// (it counted the first estimator's finished rows, which were all there), and says which
/// never ran; the rows of the estimators before it stay complete.
#[cfg(unix)]
#[test]
fn a_cancelled_evaluate_names_the_estimator_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let out = evaluate_three_synth_files(
        &[
            "cmd:sh -c 'echo 120' {file}",
            INTERRUPTS,
            "cmd:sh -c 'echo 90' {file}",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr_of(&out));
    let stderr = stderr_of(&out);
    let stopped = dir
        .path()
        .join("estimators/2-cmd-sh-c-kill-int-ppid-exec-sleep-600-fi/results.csv");
    for said in [
        "during estimator 2/3".to_string(),
        format!("{} holds a row per file, 0 finished", stopped.display()),
        "the last estimator did not run".to_string(),
    ] {
        assert!(stderr.contains(&said), "{said}: {stderr}");
    }
    let first = fs::read_to_string(dir.path().join("results.csv")).unwrap();
    assert_eq!(first.lines().count(), 4, "{first}");
    assert!(!first.contains("cancelled"), "{first}");
    let second = fs::read_to_string(&stopped).unwrap();
    assert_eq!(second.lines().count(), 4, "{second}");
    assert!(
        !dir.path()
            .join("estimators/3-cmd-sh-c-echo-90-file")
            .exists()
    );
}
