//! The text a user hands eval-cli, under mutation: manifests, predictions (`csv:FILE`),
//! JAMS, `.bpm` and `.key` annotations, thresholds, estimator specs, path cells, and an
//! interrupted `--out` CSV that `--resume` reads back. A seeded, bounded fuzz run that CI
//! repeats on every change (the audio path has its own, analyzer-core's `fuzz::`).
//!
//! Each mutant must be read or refused with a reason: no panic, a short message that names
//! no more than the start of the text, and what is read holds to the readers' rules
//! (tempi positive and at most the truth limit, shares in 0..=1). A resumed run over a
//! mutated rows file either refuses it (exit 2, the file untouched) or ends with one row
//! per file, in input order, each the clean run's row or a row the mutation left exactly
//! as this program writes rows (a changed digit: the rows are the tool's, and trusted).
//!
//! `FUZZ_ITERATIONS=N` (default 600) and `FUZZ_SEED=S` (default 0) widen or move the run;
//! `FUZZ_SAVE=DIR` keeps each failing mutant.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use eval_cli::check::read_thresholds;
use eval_cli::estimator::{Estimator, EstimatorSpec};
use eval_cli::manifest::{read_bpm_file, read_jams, read_key_file, read_manifest};
use eval_cli::path_cell::{parse_path_cell, path_cell};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};

use crate::util::{click_wav, eval_cli};

/// Tokens that matter to CSV, JSON and TOML readers, and numbers at their edges.
const TOKENS: [&str; 30] = [
    ",",
    "\"",
    "\n",
    "\r\n",
    "\r",
    "\u{feff}",
    "\0",
    "NaN",
    "inf",
    "-inf",
    "-1",
    "0",
    "1e308",
    "-0",
    "{",
    "}",
    "[",
    "]",
    ":",
    "=",
    "#",
    "\\",
    "\u{fffd}",
    "é",
    "\x7f",
    "\t",
    " ",
    "99999999999999999999999",
    "true",
    "0.5e-320",
];

/// The seeds: each reader's input as the documentation shows it.
fn seeds() -> Vec<(&'static str, String)> {
    vec![
        (
            "manifest.csv",
            "file,bpm,key,style,seconds\na.wav,120,A minor,rock,30\nb.wav,97.5,,waltz,\n\
             \"c, d.wav\",,C# major,\"jazz \"\"swing\"\"\",12\n"
                .to_string(),
        ),
        (
            "predictions.csv",
            "file,bpm,alt_bpm,key\na.wav,120,60,Dbm\nb.wav,,,8A\n\"c, d.wav\",97.5,,\n".to_string(),
        ),
        (
            "truth.jams",
            r#"{"annotations": [{"namespace": "tempo", "data": [{"time": 0, "duration": 30,
               "value": 128.0, "confidence": 1.0}]}, {"namespace": "key_mode",
               "data": {"time": [0], "duration": [30], "value": ["E:minor"],
               "confidence": [null]}}]}"#
                .to_string(),
        ),
        ("truth.bpm", "128.5\n".to_string()),
        ("truth.key", "F# minor\n".to_string()),
        (
            "thresholds.toml",
            "# gate\nmin_acc1 = 0.82\nmin_acc2 = 0.92\nmin_acc1_either = 0.97\n\
             min_efficiency = 0.6\nrequire_identical = true\nmax_interference = 0.5\n"
                .to_string(),
        ),
    ]
}

/// Estimator specs as the command line takes them.
const SPECS: [&str; 5] = [
    "ours",
    "wide=ours:min-bpm=40,max-bpm=240",
    "ours:analysis-seconds=20,segments=2",
    "aubio=cmd:aubio tempo {file}",
    "csv:predictions.csv",
];

/// One mutation of `text`, as bytes: a token inserted or replacing a run, a run cut,
/// doubled or swapped with a line, a bit flipped, or the text cut short.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) {
    let len = bytes.len();
    let at = |rng: &mut ChaCha8Rng| (rng.next_u32() as usize) % (len + 1);
    let token = |rng: &mut ChaCha8Rng| TOKENS[(rng.next_u32() as usize) % TOKENS.len()].as_bytes();
    match rng.next_u32() % 6 {
        0 => {
            let i = at(rng);
            bytes.splice(i..i, token(rng).iter().copied());
        }
        1 => {
            let i = at(rng).min(len);
            let n = (1 + rng.next_u32() as usize % 8).min(len - i);
            let t = token(rng).to_vec();
            bytes.splice(i..i + n, t);
        }
        2 => {
            let i = at(rng).min(len);
            let n = (1 + rng.next_u32() as usize % 24).min(len - i);
            bytes.drain(i..i + n);
        }
        3 => {
            let i = at(rng).min(len);
            let n = (1 + rng.next_u32() as usize % 64).min(len - i);
            let copy = bytes[i..i + n].to_vec();
            bytes.splice(i..i, copy);
        }
        4 => {
            if let Some(b) = bytes.get_mut(at(rng).min(len.saturating_sub(1))) {
                *b ^= 1 << (rng.next_u32() % 8);
            }
        }
        _ => bytes.truncate(at(rng)),
    }
}

/// The run's size and seed, from the environment.
fn budget(default: usize) -> (usize, u64) {
    let iterations = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    let seed = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (iterations, seed)
}

/// The longest refusal a reader may give: it names the file and the reason, and quotes at
/// most a short piece of the text (an error once quoted a whole 100-KB cell).
const MAX_MESSAGE: usize = 1200;

/// What is wrong with the outcome of reading mutant `path` of seed `seed`, if anything.
fn judge(seed: &str, path: &Path, dir: &Path) -> Option<String> {
    let message_fault = |e: &anyhow::Error| {
        let text = format!("{e:#}");
        if text.trim().is_empty() {
            Some("an empty error message".to_string())
        } else if text.len() > MAX_MESSAGE + path.as_os_str().len() {
            Some(format!("an error message of {} bytes", text.len()))
        } else {
            None
        }
    };
    let tempo_fault = |bpm: f64| {
        (!(bpm.is_finite() && bpm > 0.0 && bpm <= 1000.0)).then(|| format!("tempo {bpm} read"))
    };
    match seed {
        "manifest.csv" => match read_manifest(path) {
            Err(e) => message_fault(&e),
            Ok(ds) => ds
                .items
                .iter()
                .find_map(|item| item.bpm.and_then(tempo_fault)),
        },
        "predictions.csv" => {
            let manifest = dir.join("manifest.csv");
            fs::write(&manifest, &seeds()[0].1).unwrap();
            let ds = read_manifest(&manifest).unwrap();
            let spec: EstimatorSpec = format!("csv:{}", path.display()).parse().unwrap();
            let analyzer = analyzer_core::Analyzer::new(Default::default()).unwrap();
            match Estimator::new(&spec, &ds, &analyzer) {
                Err(e) => message_fault(&e),
                Ok(_) => None,
            }
        }
        "truth.jams" => match read_jams(path) {
            Err(e) => message_fault(&e),
            Ok((bpm, _)) => bpm.and_then(tempo_fault),
        },
        "truth.bpm" => match read_bpm_file(path) {
            Err(e) => message_fault(&e),
            Ok(bpm) => tempo_fault(bpm),
        },
        "truth.key" => read_key_file(path).err().and_then(|e| message_fault(&e)),
        "thresholds.toml" => match read_thresholds(path) {
            Err(e) => message_fault(&e),
            Ok(t) => [
                t.min_acc1,
                t.min_acc2,
                t.min_acc1_either,
                t.min_key_weighted,
            ]
            .into_iter()
            .flatten()
            .find(|v| !(0.0..=1.0).contains(v))
            .map(|v| format!("share {v} accepted")),
        },
        other => unreachable!("{other}"),
    }
}

#[test]
fn mutated_text_inputs_are_read_or_refused_with_a_reason() {
    let (iterations, seed) = budget(600);
    let save = std::env::var_os("FUZZ_SAVE").map(PathBuf::from);
    let seeds = seeds();
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = Vec::new();
    for i in 0..iterations {
        let (name, text) = &seeds[i % seeds.len()];
        let mut bytes = text.clone().into_bytes();
        for _ in 0..1 + rng.next_u32() % 3 {
            mutate(&mut rng, &mut bytes);
        }
        let case = dir.path().join(format!("case-{i}"));
        fs::create_dir(&case).unwrap();
        let path = case.join(name);
        fs::write(&path, &bytes).unwrap();
        let outcome = std::panic::catch_unwind(|| judge(name, &path, &case));
        let fault = match outcome {
            Err(_) => Some("a panic".to_string()),
            Ok(fault) => fault,
        };
        if let Some(fault) = fault {
            if let Some(save) = &save {
                fs::create_dir_all(save).unwrap();
                fs::write(save.join(format!("{i}-{name}")), &bytes).unwrap();
            }
            failures.push(format!(
                "mutant {i} of {name}: {fault}: {:?}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        fs::remove_dir_all(&case).unwrap();
    }
    assert!(
        failures.is_empty(),
        "{} of {iterations}:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Estimator specs and the flags' own grammars under mutation: parsed or refused, never a
/// panic; a spec that parses prints as text that parses again to the same spec.
#[test]
fn mutated_estimator_specs_parse_or_are_refused() {
    let (iterations, seed) = budget(600);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5bec);
    for i in 0..iterations {
        let mut bytes = SPECS[i % SPECS.len()].as_bytes().to_vec();
        for _ in 0..1 + rng.next_u32() % 3 {
            mutate(&mut rng, &mut bytes);
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        match text.parse::<EstimatorSpec>() {
            Err(reason) => assert!(!reason.trim().is_empty(), "{text:?}"),
            Ok(spec) => {
                let again: EstimatorSpec = spec
                    .to_string()
                    .parse()
                    .unwrap_or_else(|e| panic!("{text:?} printed as {spec}, refused: {e}"));
                assert_eq!(again.to_string(), spec.to_string(), "{text:?}");
            }
        }
    }
}

/// A path cell reads back to the exact path it was made from, whatever its bytes.
#[cfg(unix)]
#[test]
fn every_path_reads_back_from_its_cell() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let (iterations, seed) = budget(600);
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0xce11);
    for _ in 0..iterations * 4 {
        let mut bytes = b"music/a\\x41 b.wav".to_vec();
        for _ in 0..1 + rng.next_u32() % 4 {
            mutate(&mut rng, &mut bytes);
        }
        bytes.retain(|b| *b != 0);
        let path = PathBuf::from(OsStr::from_bytes(&bytes));
        let cell = path_cell(&path);
        assert_eq!(parse_path_cell(&cell), path, "{bytes:?} -> {cell:?}");
    }
}

/// An interrupted `--out` CSV, mutated, then `--resume`d: refused with exit 2 and the file
/// left as it was (a cut last row was trimmed before a malformed one refused the resume),
/// or finished with one row per file in input order, each the clean run's or one the
/// mutation left as this program writes rows (a row with a flipped byte was kept).
#[test]
fn a_mutated_rows_file_is_resumed_whole_or_refused_untouched() {
    let (iterations, seed) = budget(600);
    // Each case runs the binary: a tenth of the readers' count.
    let iterations = (iterations / 10).max(6);
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    for (name, bpm) in [
        ("a-120.wav", 120.0),
        ("b-95.wav", 95.0),
        ("c, d-140.wav", 140.0),
    ] {
        click_wav(&lib.join(name), bpm, 3.0);
    }
    let out = dir.path().join("out.csv");
    let run = |resume: bool| {
        let mut command = eval_cli();
        command.arg("analyze").arg(&lib).arg("--out").arg(&out);
        if resume {
            command.arg("--resume");
        }
        command.output().unwrap()
    };
    let clean = run(false);
    assert_eq!(clean.status.code(), Some(0), "{clean:?}");
    let complete = fs::read(&out).unwrap();
    let clean_rows: BTreeMap<String, String> = rows_by_path(&complete)
        .expect("the clean run's rows")
        .into_iter()
        .collect();
    let order: Vec<String> = rows_by_path(&complete)
        .unwrap()
        .into_iter()
        .map(|(path, _)| path)
        .collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x0e5e);
    let (mut refused, mut finished) = (0, 0);
    for i in 0..iterations {
        let mut bytes = complete.clone();
        for _ in 0..1 + rng.next_u32() % 2 {
            mutate(&mut rng, &mut bytes);
        }
        fs::write(&out, &bytes).unwrap();
        let resumed = run(true);
        let after = fs::read(&out).unwrap();
        let stderr = String::from_utf8_lossy(&resumed.stderr);
        let case = format!(
            "mutant {i}: {:?}\nstderr: {stderr}",
            String::from_utf8_lossy(&bytes)
        );
        match resumed.status.code() {
            Some(2) => {
                refused += 1;
                assert_eq!(after, bytes, "refused but changed: {case}");
                assert!(stderr.contains("out.csv"), "{case}");
            }
            // 1: a mutated row kept says `error`.
            Some(0 | 1) => {
                finished += 1;
                let rows =
                    rows_by_path(&after).unwrap_or_else(|| panic!("unreadable result: {case}"));
                let paths: Vec<&String> = rows.iter().map(|(path, _)| path).collect();
                assert_eq!(paths, order.iter().collect::<Vec<_>>(), "{case}");
                // A row is the clean run's, or one the mutation left as this program
                // writes rows (a digit changed), kept as it stands.
                for (path, row) in &rows {
                    let kept = bytes
                        .split(|b| *b == b'\n')
                        .any(|line| line == row.as_bytes());
                    assert!(row == &clean_rows[path] || kept, "{path}: {row}\n{case}");
                }
            }
            other => panic!("exit {other:?}: {case}"),
        }
    }
    // Both ways out were taken: the mutations reach the resumed path, not only refusals.
    assert!(
        refused > 0 && finished > 0,
        "{refused} refused, {finished} finished"
    );
}

/// The rows of an analyze CSV by their path cell, in file order; `None` when it does not
/// read as one (a doubled path included).
fn rows_by_path(bytes: &[u8]) -> Option<Vec<(String, String)>> {
    let text = std::str::from_utf8(bytes).ok()?;
    let mut reader = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines().skip(1);
    for record in reader.records() {
        let record = record.ok()?;
        let (path, line) = (record.get(0)?.to_string(), lines.next()?.to_string());
        if rows.iter().any(|(p, _)| *p == path) {
            return None;
        }
        rows.push((path, line));
    }
    Some(rows)
}
