//! The runner's contract, checked on both executors with jobs that need no audio.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use analyzer_core::{Error, ErrorKind, Stage, StopSignal};

use super::*;

fn options(workers: usize) -> RunOptions {
    RunOptions {
        workers,
        timeout: None,
        schedule: Schedule::InputOrder,
        progress: ProgressMode::Off,
        cancel: Arc::new(AtomicBool::new(false)),
    }
}

fn names(n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| PathBuf::from(format!("file-{i}"))).collect()
}

fn index_of(path: &Path) -> usize {
    path.to_str().unwrap()["file-".len()..].parse().unwrap()
}

/// Later files finish first; file 3 panics, file 5 fails.
fn job(path: &Path, _stop: &StopSignal) -> Result<usize, Error> {
    let i = index_of(path);
    std::thread::sleep(Duration::from_millis(5 * (8 - i as u64)));
    match i {
        3 => panic!("boom on {i}"),
        5 => Err(Error::new(
            ErrorKind::CorruptStream,
            Stage::Decode,
            "bad bytes",
        )),
        _ => Ok(i * 10),
    }
}

/// Everything of a result but its timing.
type Comparable = (usize, PathBuf, Status, Option<usize>, Option<String>);

fn comparable(summary: &RunSummary<usize>) -> Vec<Comparable> {
    summary
        .results
        .iter()
        .map(|r| (r.index, r.path.clone(), r.status, r.value, r.error.clone()))
        .collect()
}

#[test]
fn panics_and_errors_are_isolated_and_results_come_in_input_order() {
    let files = names(8);
    let mut sequential = None;
    for workers in [1, 4] {
        let mut completion = Vec::new();
        let summary = run(&files, &options(workers), job, |r| completion.push(r.index));
        assert!(!summary.cancelled);
        assert_eq!(summary.workers, workers);
        assert_eq!(summary.results.len(), 8);
        assert_eq!(completion.len(), 8);
        let indices: Vec<usize> = summary.results.iter().map(|r| r.index).collect();
        assert_eq!(indices, (0..8).collect::<Vec<_>>());
        let panicked = &summary.results[3];
        assert_eq!(panicked.status, Status::Error);
        assert!(
            panicked
                .error
                .as_deref()
                .unwrap()
                .starts_with("panic: boom on 3")
        );
        assert_eq!(
            summary.results[5].error.as_deref(),
            Some("decode: corrupt_stream: bad bytes")
        );
        for r in summary
            .results
            .iter()
            .filter(|r| ![3, 5].contains(&r.index))
        {
            assert_eq!((r.status, r.value), (Status::Ok, Some(r.index * 10)));
        }
        if workers > 1 {
            // The sleeps make later files finish first.
            assert_ne!(completion, (0..8).collect::<Vec<_>>());
        }
        match &sequential {
            None => sequential = Some(comparable(&summary)),
            Some(reference) => assert_eq!(&comparable(&summary), reference),
        }
    }
}

#[test]
fn every_file_runs_once_on_any_worker_count() {
    for workers in [1, 2, 3, 16] {
        let calls = AtomicUsize::new(0);
        let files = names(40);
        let summary = run(
            &files,
            &options(workers),
            |p, _| {
                calls.fetch_add(1, Ordering::SeqCst);
                Ok(index_of(p))
            },
            |_| {},
        );
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        let values: Vec<usize> = summary.results.iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values, (0..40).collect::<Vec<_>>());
    }
}

#[test]
fn timeouts_become_timeout_results() {
    let mut opts = options(2);
    opts.timeout = Some(Duration::from_millis(1));
    let files = names(3);
    let summary = run(
        &files,
        &opts,
        |_, stop| {
            for _ in 0..1000 {
                stop.check(Stage::Decode)?;
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        },
        |_| {},
    );
    assert_eq!(summary.results.len(), 3);
    for r in &summary.results {
        assert_eq!(r.status, Status::Timeout);
        assert!(r.error.as_deref().unwrap().contains("timed_out"));
    }
}

#[test]
fn cancelling_stops_scheduling_and_drops_running_files() {
    for workers in [1, 3] {
        let opts = options(workers);
        let cancel = Arc::clone(&opts.cancel);
        let started = AtomicUsize::new(0);
        let files = names(50);
        let mut seen = 0;
        let summary = run(
            &files,
            &opts,
            |p, stop| {
                started.fetch_add(1, Ordering::SeqCst);
                if index_of(p) == 4 {
                    cancel.store(true, Ordering::SeqCst);
                }
                for _ in 0..50 {
                    stop.check(Stage::Decode)?;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(())
            },
            |r| {
                assert_eq!(r.status, Status::Ok);
                seen += 1;
            },
        );
        assert!(summary.cancelled);
        assert_eq!(summary.results.len(), seen);
        assert!(seen < 4 + workers, "{seen} finished");
        assert!(started.load(Ordering::SeqCst) <= 5 + workers);
        assert!(summary.results.iter().all(|r| r.status == Status::Ok));
    }
}

#[test]
fn costliest_first_orders_by_cost_then_index() {
    assert_eq!(
        schedule_order(Some(&[10.0, 30.0, 0.0, 30.0, 20.0, 0.0]), 6),
        [1, 3, 4, 0, 2, 5]
    );
    assert_eq!(schedule_order(None, 6), [0, 1, 2, 3, 4, 5]);
}

/// A mono 16-bit WAV of `seconds` of a quiet tone at 22.05 kHz.
fn tone_wav(path: &Path, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 22_050,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for i in 0..(seconds * 22_050.0) as usize {
        writer
            .write_sample(((i as f64 * 0.05).sin() * 1000.0) as i16)
            .unwrap();
    }
    writer.finalize().unwrap();
}

#[test]
fn cost_is_the_announced_length_weighted_by_codec() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    tone_wav(&wav, 2.0);
    assert!(
        (estimated_cost(&wav) - 2.0).abs() < 1e-9,
        "{}",
        estimated_cost(&wav)
    );
    // A compressed file costs its announced length times the codec weight, whatever its size.
    let flac = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../analyzer-core/tests/fixtures/fourfloor-128.flac");
    let info = analyzer_core::decode::probe(&flac).unwrap();
    let seconds = info.duration_s.unwrap();
    assert!((estimated_cost(&flac) - seconds * COMPRESSED_COST).abs() < 1e-9);
    // What cannot be probed is about to fail fast.
    let junk = dir.path().join("junk.mp3");
    std::fs::write(&junk, b"not audio at all").unwrap();
    assert_eq!(estimated_cost(&junk), 0.0);
    assert_eq!(estimated_cost(&dir.path().join("missing.wav")), 0.0);
}
