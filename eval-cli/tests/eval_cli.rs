//! The CLI as a user runs it: `evaluate` and `compare` on a small synthetic set, `check` on
//! hand-made report folders, and the exit code 2 with a clear message on bad input.

use std::fs;
use std::path::Path;

use assert_cmd::Command;

fn eval_cli() -> Command {
    Command::cargo_bin("eval-cli").unwrap()
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
        eval_cli()
            .arg("evaluate")
            .args(SMALL)
            .args(["--workers", workers, "--progress", "off", "--out-dir"])
            .arg(dir)
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
    assert!(
        csv.starts_with("file,truth_bpm,est_bpm,confidence,acc1,acc2,error_class,status,error\n")
    );
    assert_eq!(csv.lines().count(), 5);
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["n"], 4);
    assert!(summary["by"]["tempo_band"].is_object());
    let html = fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(html.contains("<svg") && html.contains("Accuracy1"));
    // Deterministic output: the same bytes at 1 and 2 workers.
    for f in ["results.csv", "summary.json"] {
        assert_eq!(
            fs::read(a.path().join(f)).unwrap(),
            fs::read(b.path().join(f)).unwrap(),
            "{f} differs between 1 and 2 workers"
        );
    }
}

#[test]
fn compare_writes_identical_runs_and_gates() {
    let dir = tempfile::tempdir().unwrap();
    let out = eval_cli()
        .arg("compare")
        .args(SMALL)
        .args([
            "--workers",
            "1,2",
            "--repeat",
            "1",
            "--warmup",
            "0",
            "--out-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
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
    let thresholds = dir.path().join("t.toml");
    fs::write(&thresholds, "require_identical = true\nmin_acc2 = 0.0\n").unwrap();
    eval_cli()
        .args(["check", "--report"])
        .arg(dir.path())
        .arg("--thresholds")
        .arg(&thresholds)
        .assert()
        .code(0);
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
    let out = eval_cli()
        .args(["check", "--report"])
        .arg(dir.path())
        .arg("--thresholds")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    hand_made_report(dir.path(), 0.4, 0.5, false);
    let out = eval_cli()
        .args(["check", "--report"])
        .arg(dir.path())
        .arg("--thresholds")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("min_acc1") && table.contains("FAIL"),
        "{table}"
    );
    assert!(table.contains("differs at workers 2"), "{table}");
    assert!(table.contains("3 of 4 thresholds fell short"), "{table}");
}

#[test]
fn bad_input_exits_2_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.toml");
    fs::write(&t, THRESHOLDS).unwrap();
    let missing = dir.path().join("nope");
    let out = eval_cli()
        .args(["check", "--report"])
        .arg(&missing)
        .arg("--thresholds")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_of(&out).contains("nope"), "{}", stderr_of(&out));

    // A report folder without summary.json is unreadable too.
    let out = eval_cli()
        .args(["check", "--report"])
        .arg(dir.path())
        .arg("--thresholds")
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("summary.json"),
        "{}",
        stderr_of(&out)
    );

    let out = eval_cli()
        .args(["evaluate", "--dataset"])
        .arg(dir.path().join("missing.csv"))
        .arg("--out-dir")
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_of(&out).contains("missing.csv"),
        "{}",
        stderr_of(&out)
    );

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

#[test]
fn missing_audio_is_a_failed_row() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = dir.path().join("m.csv");
    fs::write(&manifest, "file,bpm,source\ngone.wav,120,x\n").unwrap();
    let out_dir = dir.path().join("out");
    eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(&manifest)
        .arg("--out-dir")
        .arg(&out_dir)
        .assert()
        .success();
    let csv = fs::read_to_string(out_dir.join("results.csv")).unwrap();
    let row = csv.lines().nth(1).unwrap();
    assert!(row.starts_with("gone.wav,120,,,0,0,failed,error,"), "{row}");
    let summary: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["failed"], 1);
    assert_eq!(summary["acc1"], 0.0);
}
