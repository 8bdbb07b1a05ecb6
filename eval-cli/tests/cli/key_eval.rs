//! Key scored like tempo, end to end: manifests with `key` (with or without `bpm`), key
//! estimates from `csv:` predictions and from a `cmd:` tool, the key columns of
//! results.csv, the `key` object of summary.json, the report's key section, `compare`
//! carrying keys through its child runs, and `check`'s key thresholds. The estimators
//! here give known answers, so nothing depends on how well the analyzer reads keys.

use std::fs;
use std::path::{Path, PathBuf};

use crate::util::{
    QUICK_COMPARE, all_runs_identical, assert_ok, click_wav, eval_cli, s, synth_folder,
};

/// Writes a 2-s click track for each name into `dir`.
fn tracks(dir: &Path, names: &[&str]) {
    for name in names {
        click_wav(&dir.join(name), 120.0, 2.0);
    }
}

/// Every line of a results.csv, the header first, as cells.
fn results(path: &Path) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect()
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn close(value: &serde_json::Value, want: f64) -> bool {
    value.as_f64().is_some_and(|v| (v - want).abs() < 1e-9)
}

/// `eval-cli evaluate` of `dataset` with `estimator` into `out`.
fn evaluate(dataset: &Path, estimator: &str, out: &Path) -> std::process::Output {
    eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(dataset)
        .args(["--estimator", estimator, "--out-dir"])
        .arg(out)
        .output()
        .unwrap()
}

/// `eval-cli check` of `report` against thresholds `toml`.
fn check(report: &Path, toml: &str) -> std::process::Output {
    let thresholds = report.join("thresholds.toml");
    fs::write(&thresholds, toml).unwrap();
    eval_cli()
        .args(["check", "--report"])
        .arg(report)
        .arg("--thresholds")
        .arg(&thresholds)
        .output()
        .unwrap()
}

/// A dataset of five tracks: two with a true tempo, four with a true key, from two
/// sources and two lengths; and predictions for them (one file has none).
fn mixed_set(dir: &Path) -> (PathBuf, PathBuf) {
    tracks(dir, &["a.wav", "b.wav", "c.wav", "d.wav", "e.wav"]);
    let manifest = dir.join("manifest.csv");
    fs::write(
        &manifest,
        "file,bpm,key,source,seconds\n\
         a.wav,120,C major,x,8\n\
         b.wav,,C major,x,30\n\
         c.wav,,A minor,y,8\n\
         d.wav,,A minor,y,30\n\
         e.wav,90,,y,8\n",
    )
    .unwrap();
    let predictions = dir.join("predictions.csv");
    fs::write(
        &predictions,
        "file,bpm,key\n\
         a.wav,120,C major\n\
         b.wav,,F major\n\
         c.wav,,\n\
         d.wav,,C major\n\
         e.wav,90,\n",
    )
    .unwrap();
    (manifest, predictions)
}

#[test]
fn evaluate_scores_keys_of_predictions_both_ways_and_check_gates_them() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, predictions) = mixed_set(dir.path());
    let out = dir.path().join("report");
    let run = evaluate(&manifest, &format!("csv:{}", s(&predictions)), &out);
    assert_ok(&run, "the run");

    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains("key weighted 0.450 (mir_eval 0.325), accuracy 25.0 %, 1 without a key"),
        "{stdout}"
    );
    let table = results(&out.join("results.csv"));
    assert_eq!(
        table[0][11..],
        ["key_truth", "key", "key_relation"].map(String::from)
    );
    let keys: Vec<[&str; 3]> = table[1..]
        .iter()
        .map(|r| [r[11].as_str(), r[12].as_str(), r[13].as_str()])
        .collect();
    assert_eq!(
        keys,
        [
            ["C major", "C major", "same"],
            ["C major", "F major", "fifth_below"],
            ["A minor", "", "missing"],
            ["A minor", "C major", "relative"],
            ["", "", ""],
        ]
    );
    // A file without tempo truth has empty tempo cells; one with it is scored as before.
    assert_eq!(
        table[2][1..9],
        ["", "", "", "", "", "", "", ""].map(String::from)
    );
    assert_eq!(
        table[5][..9],
        ["e.wav", "90", "90.00", "", "", "1", "1", "1", "ok"].map(String::from)
    );

    let summary = read_json(&out.join("summary.json"));
    // Tempo over the two files with a true tempo.
    assert_eq!(
        (summary["n"].as_u64(), summary["acc1"].as_f64()),
        (Some(2), Some(1.0))
    );
    let key = &summary["key"];
    assert_eq!(
        (key["n"].as_u64(), key["missing"].as_u64()),
        (Some(4), Some(1))
    );
    // (1 + 0.5 + 0 + 0.3) / 4 with MIREX; mir_eval gives the fifth below nothing.
    assert!(close(&key["weighted"], 0.45), "{key}");
    assert!(close(&key["weighted_mir_eval"], 0.325), "{key}");
    assert!(close(&key["accuracy"], 0.25), "{key}");
    assert_eq!(key["relations"]["fifth_below"], 1);
    assert_eq!(key["relations"]["fifth_above"], 0);
    assert!(close(&key["by"]["source"]["x"]["weighted"], 0.75), "{key}");
    assert_eq!(key["by"]["source"]["y"]["missing"], 1);
    assert_eq!(key["by_seconds"][0]["seconds"], 8.0);
    assert_eq!(key["by_seconds"][1]["n"], 2);
    assert!(close(&summary["estimators"][0]["key"]["weighted"], 0.45));

    let html = fs::read_to_string(out.join("report.html")).unwrap();
    for needle in [
        "<h2>Key</h2>",
        "<h3>Key by source</h3>",
        "Files not in their true key",
    ] {
        assert!(html.contains(needle), "no {needle:?} in the report");
    }
    assert!(out.join("key_relations.svg").is_file());
    assert!(out.join("key_relations.png").is_file());

    let pass = check(&out, "min_key_weighted = 0.45\nmin_acc1 = 1.0\n");
    assert_eq!(
        pass.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&pass.stdout)
    );
    let fail = check(&out, "min_key_weighted = 0.4\nmin_key_accuracy = 0.5\n");
    assert_eq!(fail.status.code(), Some(1));
    let table = String::from_utf8_lossy(&fail.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("min_key_accuracy") && l.ends_with("FAIL")),
        "{table}"
    );
}

#[test]
fn a_key_tool_run_per_file_is_scored_and_compare_carries_its_keys() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["a.wav", "b.wav", "c.wav"];
    tracks(dir.path(), &names);
    // What the tool prints for each file: a labelled key, a Camelot code, a tool's
    // "key scale strength" line.
    for (name, printed) in names.iter().zip(["key: Dbm", "8B", "G major 0.71"]) {
        fs::write(
            dir.path().join(format!("{name}.key")),
            format!("{printed}\n"),
        )
        .unwrap();
    }
    let manifest = dir.path().join("keys.csv");
    fs::write(
        &manifest,
        "file,key\na.wav,C# minor\nb.wav,A minor\nc.wav,C major\n",
    )
    .unwrap();
    let tool = r#"keytool=cmd:sh -c 'cat "$0.key"' {file}"#;
    let out = dir.path().join("eval");
    let run = evaluate(&manifest, tool, &out);
    assert_ok(&run, "the run");
    let table = results(&out.join("results.csv"));
    let got: Vec<(&str, &str)> = table[1..]
        .iter()
        .map(|r| (r[12].as_str(), r[13].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("C# minor", "same"),
            ("C major", "relative"),
            ("G major", "fifth_above")
        ]
    );
    let summary = read_json(&out.join("summary.json"));
    // No tempo truth: no file in the tempo figures; the key ones over all three.
    assert_eq!(summary["n"], 0);
    assert!(close(&summary["key"]["weighted"], 1.8 / 3.0));
    assert!(close(&summary["key"]["weighted_mir_eval"], 1.8 / 3.0));
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<h2>Key</h2>"));
    assert!(
        !html.contains("Accuracy tables"),
        "tempo tables with no tempo truth"
    );

    let cmp = dir.path().join("compare");
    let run = eval_cli()
        .args(["compare", "--dataset"])
        .arg(&manifest)
        .args(["--estimator", tool])
        .args(QUICK_COMPARE)
        .arg("--out-dir")
        .arg(&cmp)
        .output()
        .unwrap();
    assert_ok(&run, "the run");
    assert_eq!(
        fs::read(cmp.join("results.csv")).unwrap(),
        fs::read(out.join("results.csv")).unwrap(),
        "compare's rows differ from evaluate's"
    );
    assert_eq!(read_json(&cmp.join("summary.json"))["key"], summary["key"]);
    let compare = read_json(&cmp.join("compare.json"));
    assert!(all_runs_identical(&compare), "{compare}");
}

/// A dataset with key truth alone, scored against a key-only tool: its headline says so
/// (it printed "0 files, Accuracy1 0.0 %", read as a failed run), and the run, which
/// analysed every file, exits 0.
#[test]
fn a_key_only_dataset_says_it_has_no_tempo_truth() {
    let dir = tempfile::tempdir().unwrap();
    tracks(dir.path(), &["a.wav", "b.wav"]);
    let manifest = dir.path().join("manifest.csv");
    fs::write(&manifest, "file,key\na.wav,C major\nb.wav,A minor\n").unwrap();
    let predictions = dir.path().join("predictions.csv");
    fs::write(&predictions, "file,key\na.wav,C major\nb.wav,C major\n").unwrap();
    let out = dir.path().join("report");
    let run = evaluate(&manifest, &format!("csv:{}", s(&predictions)), &out);
    assert_ok(&run, "the run");
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        stdout.contains(": 2 files with key truth, no tempo truth; key weighted 0.650"),
        "{stdout}"
    );
    assert!(!stdout.contains("Accuracy1"), "{stdout}");
}

#[test]
fn a_tempo_only_dataset_keeps_its_files_and_fails_a_key_threshold() {
    let dir = tempfile::tempdir().unwrap();
    tracks(dir.path(), &["a.wav", "b.wav"]);
    let manifest = dir.path().join("tempo.csv");
    fs::write(&manifest, "file,bpm\na.wav,120\nb.wav,100\n").unwrap();
    // A tool that gives a key as well: with no key truth it is not scored for key.
    let predictions = dir.path().join("p.csv");
    fs::write(
        &predictions,
        "file,bpm,key\na.wav,120,C major\nb.wav,150,A minor\n",
    )
    .unwrap();
    let out = dir.path().join("report");
    let run = evaluate(&manifest, &format!("csv:{}", s(&predictions)), &out);
    assert_ok(&run, "the run");
    assert!(!String::from_utf8_lossy(&run.stdout).contains("key weighted"));
    let csv = fs::read_to_string(out.join("results.csv")).unwrap();
    assert_eq!(
        csv.lines().next(),
        Some(
            "file,truth_bpm,est_bpm,confidence,alt_bpm,acc1,acc2,acc1_either,error_class,\
             status,error"
        )
    );
    let summary = fs::read_to_string(out.join("summary.json")).unwrap();
    assert!(!summary.contains("key"), "{summary}");
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    assert!(!html.contains("<h2>Key</h2>") && html.contains("Accuracy tables"));
    assert!(!out.join("key_relations.svg").exists());

    let gate = check(&out, "min_acc1 = 0.5\nmin_key_weighted = 0.1\n");
    assert_eq!(
        gate.status.code(),
        Some(1),
        "a key threshold passed without key scores"
    );
    let table = String::from_utf8_lossy(&gate.stdout);
    assert!(
        table.lines().any(|l| l.starts_with("min_key_weighted")
            && l.contains("no key truth")
            && l.ends_with("FAIL")),
        "{table}"
    );
}

#[test]
fn a_manifest_key_that_is_not_a_key_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    tracks(dir.path(), &["a.wav"]);
    let manifest = dir.path().join("modes.csv");
    fs::write(&manifest, "file,key\na.wav,D dorian\n").unwrap();
    let out = dir.path().join("report");
    let run = evaluate(&manifest, "ours", &out);
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("modes.csv") && stderr.contains("line 2") && stderr.contains("D dorian"),
        "{stderr}"
    );
    assert!(!out.join("results.csv").exists(), "half-written output");
}

#[test]
fn ours_scores_the_key_analyze_writes_and_none_with_descriptors_tempo() {
    let (dir, set) = synth_folder(3);
    // A click track beside the music: a file that may well have no key.
    click_wav(&set.join("clicks.wav"), 120.0, 8.0);
    let manifest = set.join("manifest.csv");
    let mut lines = fs::read_to_string(&manifest).unwrap();
    lines.push_str("clicks.wav,120,x,4/4,wav,8,0,C major\n");
    fs::write(&manifest, lines).unwrap();
    let out = dir.path().join("eval");
    let run = evaluate(&manifest, "ours", &out);
    assert_ok(&run, "the run");
    let scored: Vec<(String, String)> = results(&out.join("results.csv"))[1..]
        .iter()
        .map(|r| (r[0].clone(), r[12].clone()))
        .collect();
    // The same key as `analyze` writes for each file, whatever that key is.
    let analyzed = eval_cli()
        .args(["analyze", "--progress", "off"])
        .arg(&set)
        .output()
        .unwrap();
    assert_ok(&analyzed, "analyze");
    let mut reader = csv::Reader::from_reader(analyzed.stdout.as_slice());
    let headers = reader.headers().unwrap().clone();
    let column = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let (path, key, error) = (column("path"), column("key"), column("error"));
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    let mut by_file: Vec<(String, String)> = reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            let name = Path::new(&r[path])
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            // Where there is no key, the report says why, as analyze does.
            if r[key].is_empty() {
                let why = &r[error];
                assert!(html.contains(why), "{name}: no {why:?} in the report");
            }
            (name, r[key].to_string())
        })
        .collect();
    by_file.sort();
    let mut scored_sorted = scored.clone();
    scored_sorted.sort();
    assert_eq!(scored_sorted, by_file);
    assert!(
        scored.iter().any(|(_, k)| !k.is_empty()),
        "no key at all: {scored:?}"
    );

    // Tempo alone: every key estimate is missing, and counted so.
    let tempo_only = dir.path().join("tempo-only");
    let run = eval_cli()
        .args([
            "evaluate",
            "--progress",
            "off",
            "--descriptors",
            "tempo",
            "--dataset",
        ])
        .arg(set.join("manifest.csv"))
        .arg("--out-dir")
        .arg(&tempo_only)
        .output()
        .unwrap();
    assert_ok(&run, "the run");
    let summary = read_json(&tempo_only.join("summary.json"));
    assert_eq!(summary["key"]["missing"], 4, "{summary}");
    assert_eq!(summary["key"]["weighted"], 0.0);
}

#[test]
fn key_estimators_sit_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, predictions) = mixed_set(dir.path());
    let out = dir.path().join("report");
    let run = eval_cli()
        .args(["evaluate", "--progress", "off", "--dataset"])
        .arg(&manifest)
        .arg("--estimator")
        .arg(format!("predicted=csv:{}", s(&predictions)))
        .args(["--estimator", "always-c=cmd:echo C major", "--out-dir"])
        .arg(&out)
        .output()
        .unwrap();
    assert_ok(&run, "evaluate with two estimators");
    let table = results(&out.join("estimators.csv"));
    assert_eq!(
        table[0][11..],
        [
            "key_n",
            "key_weighted",
            "key_weighted_mir_eval",
            "key_accuracy",
            "key_missing"
        ]
        .map(String::from)
    );
    assert_eq!(table[1][0], "predicted");
    assert_eq!(
        table[1][11..],
        ["4", "0.4500", "0.3250", "0.2500", "1"].map(String::from)
    );
    // C major for every file: same twice, relative twice.
    assert_eq!(table[2][0], "always-c");
    assert_eq!(
        table[2][11..],
        ["4", "0.6500", "0.6500", "0.5000", "0"].map(String::from)
    );
    let summary = read_json(&out.join("summary.json"));
    assert!(close(&summary["estimators"][1]["key"]["weighted"], 0.65));
    let timings = read_json(&out.join("timings.json"));
    assert_eq!(timings["estimators"][1]["key"]["n"], 4);
    let html = fs::read_to_string(out.join("report.html")).unwrap();
    let side_by_side = &html[html.find("Estimators side by side").unwrap()..];
    assert!(
        side_by_side.contains("<h3>Key</h3>"),
        "no key table beside the estimators"
    );
}
