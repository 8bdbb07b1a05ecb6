//! The decode-and-analyse path under mutated input: a seeded, bounded fuzz run that CI
//! repeats on every change. Seeds are the format fixtures and `fuzz-corpus/` (lying
//! headers found by hand); each mutant is analysed whole and sampled, and must end in a
//! row or a typed error: no panic escapes, no hang (a stop deadline bounds a slow file),
//! no result outside the settings' range, no decoded length beyond the sample budget.
//!
//! `FUZZ_ITERATIONS=N` (default 1000) and `FUZZ_SEED=S` (default 0) widen or move the run;
//! a failing mutant is written to `$FUZZ_SAVE/` when that is set, for the corpus.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use analyzer_core::decode::{MAX_SAMPLES_PER_BYTE, sample_budget};
use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use rand::rngs::ChaCha8Rng;
use rand::{Rng, SeedableRng};

fn seeds() -> Vec<(String, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
    let mut files: Vec<PathBuf> = ["fixtures", "fuzz-corpus"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(root.join(dir)).unwrap())
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e != "sh"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect()
}

/// One mutation of `bytes`, chosen and placed by `rng`; headers (the first 256 bytes)
/// are hit more often than the rest, since that is where a lie costs most.
fn mutate(rng: &mut ChaCha8Rng, bytes: &mut Vec<u8>) -> &'static str {
    let len = bytes.len().max(1);
    let at = |rng: &mut ChaCha8Rng| {
        if rng.next_u32().is_multiple_of(2) {
            (rng.next_u32() as usize) % len.min(256)
        } else {
            (rng.next_u32() as usize) % len
        }
    };
    match rng.next_u32() % 7 {
        0 => {
            let i = at(rng);
            if let Some(b) = bytes.get_mut(i) {
                *b ^= 1 << (rng.next_u32() % 8);
            }
            "bit flip"
        }
        1 => {
            let i = at(rng);
            let v = [0x00, 0xFF, 0x7F, 0x80, 0x01][(rng.next_u32() % 5) as usize];
            for b in bytes
                .iter_mut()
                .skip(i)
                .take(1 + (rng.next_u32() % 4) as usize)
            {
                *b = v;
            }
            "boundary bytes"
        }
        2 => {
            bytes.truncate(at(rng));
            "truncated"
        }
        3 => {
            let i = at(rng).min(bytes.len());
            let n = 1 + (rng.next_u32() % 64) as usize;
            let noise: Vec<u8> = (0..n).map(|_| rng.next_u32() as u8).collect();
            bytes.splice(i..i, noise);
            "inserted noise"
        }
        4 => {
            let i = at(rng).min(bytes.len());
            let n = (1 + (rng.next_u32() % 4096) as usize).min(bytes.len() - i);
            bytes.drain(i..i + n);
            "cut a run"
        }
        5 => {
            let i = at(rng).min(bytes.len().saturating_sub(4));
            let v = [u32::MAX, 0, 1, 0x7FFF_FFFF, 44_100][(rng.next_u32() % 5) as usize];
            let field = v.to_le_bytes();
            for (b, f) in bytes.iter_mut().skip(i).zip(field) {
                *b = f;
            }
            "32-bit field"
        }
        _ => {
            let i = at(rng).min(bytes.len());
            let n = (1 + (rng.next_u32() % 2048) as usize).min(bytes.len() - i);
            let copy = bytes[i..i + n].to_vec();
            bytes.splice(i..i, copy);
            "duplicated a run"
        }
    }
}

#[test]
fn mutated_files_end_in_a_row_or_a_typed_error() {
    let iterations: usize = std::env::var("FUZZ_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let seed: u64 = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let save = std::env::var_os("FUZZ_SAVE").map(PathBuf::from);
    let seeds = seeds();
    let whole = Analyzer::new(AnalyzerConfig::default().with_sampling(None)).unwrap();
    let sampled = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let (min_bpm, max_bpm) = (whole.config().min_bpm, whole.config().max_bpm);
    let dir = tempfile::tempdir().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut failures = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<String, usize>::new();
    for i in 0..iterations {
        let (name, original) = &seeds[i % seeds.len()];
        let mut bytes = original.clone();
        let steps: Vec<&str> = (0..1 + rng.next_u32() % 3)
            .map(|_| mutate(&mut rng, &mut bytes))
            .collect();
        let path = dir.path().join(format!("{i}-{name}"));
        std::fs::write(&path, &bytes).unwrap();
        for analyzer in [&whole, &sampled] {
            // A generous deadline: it stops a slow mutant, it is not what is tested.
            let stop = StopSignal::never().with_deadline(Instant::now() + Duration::from_secs(30));
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                analyzer.analyze_file(&path, &stop)
            }));
            let problem = match &outcome {
                Err(_) => Some("a panic escaped analyze_file".to_string()),
                Ok(Ok(a)) => {
                    // A tempo verdict (no pulse, too short) names the file as any error.
                    let in_range = match &a.tempo {
                        Ok(t) => {
                            t.bpm.is_finite()
                                && t.bpm >= min_bpm * 0.98
                                && t.bpm <= max_bpm * 1.02
                                && (0.0..=1.0).contains(&t.confidence)
                        }
                        Err(e) => e.path() == Some(path.as_path()),
                    };
                    let t = &a.tempo;
                    let decoded = a.audio.duration_s
                        * f64::from(a.audio.sample_rate)
                        * f64::from(a.audio.channels);
                    let budget = sample_budget(bytes.len() as u64) as f64;
                    if !in_range {
                        Some(format!("a result outside the settings: {t:?}"))
                    } else if analyzer.config().sampling.is_none() && decoded > budget * 1.01 {
                        Some(format!(
                            "decoded {decoded} samples, over the budget of {budget} \
                             ({MAX_SAMPLES_PER_BYTE} per byte)"
                        ))
                    } else {
                        None
                    }
                }
                Ok(Err(e)) if e.path() != Some(path.as_path()) => {
                    Some(format!("an error that does not name its file: {e}"))
                }
                Ok(Err(_)) => None,
            };
            let label = match &outcome {
                Ok(Ok(_)) => "ok".to_string(),
                Ok(Err(e)) => e.kind().as_str().to_string(),
                Err(_) => "panic".to_string(),
            };
            *outcomes.entry(label).or_default() += 1;
            if let Some(problem) = problem {
                failures.push(format!(
                    "{} ({}): {problem}",
                    path.display(),
                    steps.join(", ")
                ));
                if let Some(save) = &save {
                    std::fs::create_dir_all(save).unwrap();
                    std::fs::copy(&path, save.join(path.file_name().unwrap())).unwrap();
                }
            }
        }
        std::fs::remove_file(&path).unwrap();
    }
    eprintln!(
        "{iterations} mutants of {} seeds (seed {seed}): {outcomes:?}",
        seeds.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The run must have reached both sides: rows and errors.
    assert!(outcomes.get("ok").copied().unwrap_or(0) > 0, "{outcomes:?}");
    assert!(outcomes.len() > 2, "{outcomes:?}");
}
