//! The batch's contract, on every executor, with jobs that need no audio. Nothing here
//! sleeps or reads a clock: out-of-order completion is scripted (the mock) or forced by
//! jobs that wait on each other over channels, and deadlines are zero-length.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::*;
use crate::{Error, ErrorKind, Stage};

fn names(n: usize) -> Vec<PathBuf> {
    (0..n).map(|i| PathBuf::from(format!("file-{i}"))).collect()
}

fn index_of(path: &Path) -> usize {
    path.to_str().unwrap()["file-".len()..].parse().unwrap()
}

/// File 3 panics, file 5 fails, the others give ten times their index.
fn scripted(path: &Path, _stop: &StopSignal) -> Result<usize, Error> {
    match index_of(path) {
        3 => panic!("boom on 3"),
        5 => Err(Error::new(
            ErrorKind::CorruptStream,
            Stage::Decode,
            "bad bytes",
        )),
        i => Ok(i * 10),
    }
}

/// Everything of a result but its timing.
type Comparable = (usize, PathBuf, Status, Option<usize>, Option<String>);

fn comparable(summary: &BatchSummary<usize>) -> Vec<Comparable> {
    summary
        .results
        .iter()
        .map(|r| (r.index, r.path.clone(), r.status, r.value, r.error.clone()))
        .collect()
}

/// Records what an observer is told, in order.
#[derive(Default)]
struct Recorder {
    start: Option<BatchStart>,
    finished: Vec<usize>,
    end: Option<BatchEnd>,
}

impl<T> Observer<T> for Recorder {
    fn started(&mut self, start: &BatchStart) {
        assert!(self.start.is_none() && self.finished.is_empty());
        self.start = Some(*start);
    }

    fn file_finished(&mut self, result: &FileResult<T>) {
        assert!(self.start.is_some() && self.end.is_none());
        self.finished.push(result.index);
    }

    fn finished(&mut self, end: &BatchEnd) {
        assert!(self.end.is_none());
        self.end = Some(*end);
    }
}

fn run_recorded<J: Job>(
    batch: &Batch<'_, J>,
    files: &[PathBuf],
    executor: &dyn Executor,
) -> (BatchSummary<J::Output>, Recorder) {
    let mut recorder = Recorder::default();
    let summary = batch.run_observed(files, executor, &mut [&mut recorder]);
    (summary, recorder)
}

#[test]
fn results_come_in_input_order_whatever_order_files_finish_in() {
    let files = names(8);
    let reversed = MockExecutor::new(4).finishing_in((0..8).rev());
    let (summary, seen) = run_recorded(&Batch::new(&scripted), &files, &reversed);
    assert_eq!(seen.finished, (0..8).rev().collect::<Vec<_>>());
    assert_eq!(seen.start.unwrap().workers, 4);
    let end = seen.end.unwrap();
    assert_eq!((end.ok, end.failed, end.cancelled), (6, 2, false));
    let indices: Vec<usize> = summary.results.iter().map(|r| r.index).collect();
    assert_eq!(indices, (0..8).collect::<Vec<_>>());

    // Every executor gives the reference's results.
    let reference = comparable(&Batch::new(&scripted).run(&files, &Sequential));
    assert_eq!(comparable(&summary), reference);
    for threads in [2, 4] {
        let pool = Parallel::new(threads).unwrap();
        let parallel = Batch::new(&scripted).run(&files, &pool);
        assert_eq!(comparable(&parallel), reference);
        assert_eq!(parallel.workers, threads);
    }
}

/// Inside the guard, [`file_in_guard`] names the job's file, also while a panic unwinds
/// (a panic hook runs before that); outside it, on the same thread, nothing.
#[test]
fn the_guard_names_its_file_while_the_job_runs_or_panics() {
    /// Records what `file_in_guard` says when it is dropped: by unwinding, for a panic.
    struct Witness<'a>(&'a Mutex<Vec<Option<PathBuf>>>);
    impl Drop for Witness<'_> {
        fn drop(&mut self) {
            self.0.lock().unwrap().push(file_in_guard());
        }
    }
    let seen = Mutex::new(Vec::new());
    let job = |path: &Path, stop: &StopSignal| {
        let _witness = Witness(&seen);
        scripted(path, stop)
    };
    assert_eq!(file_in_guard(), None);
    let files = names(5);
    let summary = Batch::new(&job).run(&files, &Sequential);
    assert_eq!(
        summary.results[3].error.as_deref(),
        Some("panic: boom on 3")
    );
    let seen = seen.into_inner().unwrap();
    assert_eq!(seen, files.into_iter().map(Some).collect::<Vec<_>>());
    assert_eq!(file_in_guard(), None, "not after the batch");
}

#[test]
fn a_panic_or_an_error_is_that_files_failed_result() {
    let summary = Batch::new(&scripted).run(&names(8), &Sequential);
    assert!(!summary.cancelled);
    let panicked = &summary.results[3];
    assert_eq!((panicked.status, panicked.value), (Status::Error, None));
    assert_eq!(panicked.error.as_deref(), Some("panic: boom on 3"));
    assert_eq!(
        summary.results[5].error.as_deref(),
        Some("decode: corrupt_stream: bad bytes")
    );
    for r in summary
        .results
        .iter()
        .filter(|r| ![3, 5].contains(&r.index))
    {
        assert_eq!(
            (r.status, r.value, &r.error),
            (Status::Ok, Some(r.index * 10), &None)
        );
    }
}

/// A receiver that jobs on several threads can share.
struct Waiter(Mutex<Receiver<()>>);

impl Waiter {
    /// Blocks until told. The limit only turns a bug into a failure instead of a hang; no
    /// result depends on how fast the machine is.
    fn wait(&self) {
        self.0
            .lock()
            .unwrap()
            .recv_timeout(Duration::from_secs(60))
            .expect("the other job never ran");
    }
}

fn waiter() -> (Sender<()>, Waiter) {
    let (tx, rx) = channel();
    (tx, Waiter(Mutex::new(rx)))
}

#[test]
fn on_a_pool_a_file_that_finishes_first_is_reported_first_and_kept_in_place() {
    // File 0 waits until file 1 has been reported, so file 1 finishes first on two threads.
    let (tx, file_1_reported) = waiter();
    let job = |path: &Path, _: &StopSignal| {
        if index_of(path) == 0 {
            file_1_reported.wait();
        }
        Ok(index_of(path))
    };
    let mut finished = Vec::new();
    let mut observer = |r: &FileResult<usize>| {
        finished.push(r.index);
        if r.index == 1 {
            tx.send(()).unwrap();
        }
    };
    let pool = Parallel::new(2).unwrap();
    let summary = Batch::new(&job).run_observed(&names(2), &pool, &mut [&mut observer]);
    assert_eq!(finished, [1, 0]);
    let values: Vec<_> = summary.results.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(0), Some(1)]);
}

#[test]
fn every_file_runs_once_on_any_worker_count() {
    for threads in [1, 2, 3, 16] {
        let calls = AtomicUsize::new(0);
        let job = |p: &Path, _: &StopSignal| {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(index_of(p))
        };
        let executor = executor_for(threads).unwrap();
        let summary = Batch::new(&job).run(&names(40), &*executor);
        assert_eq!(calls.load(Ordering::SeqCst), 40);
        let values: Vec<usize> = summary.results.iter().map(|r| r.value.unwrap()).collect();
        assert_eq!(values, (0..40).collect::<Vec<_>>());
    }
}

#[test]
fn a_file_past_its_deadline_is_a_timeout_result() {
    // A zero-length deadline has passed at the job's first check, on any machine.
    let checks = |_: &Path, stop: &StopSignal| stop.check(Stage::Decode).map(|()| 1);
    let ignores = |_: &Path, _: &StopSignal| Ok(2);
    let batch = Batch::new(&checks).timeout(Some(Duration::ZERO));
    let summary = batch.run(&names(3), &MockExecutor::new(2));
    assert!(!summary.cancelled);
    for r in &summary.results {
        assert_eq!(r.status, Status::Timeout);
        assert_eq!(
            r.error.as_deref(),
            Some("decode: timed_out: the per-file time limit passed")
        );
    }
    // The deadline is cooperative: a job that never asks finishes.
    let summary = Batch::new(&ignores)
        .timeout(Some(Duration::ZERO))
        .run(&names(1), &Sequential);
    assert_eq!(summary.results[0].value, Some(2));
}

#[test]
fn a_timeout_too_long_for_a_deadline_is_no_limit() {
    // `Instant + Duration::MAX` overflows; the batch must run the file, not panic.
    let checks = |p: &Path, stop: &StopSignal| stop.check(Stage::Decode).map(|()| index_of(p));
    let summary = Batch::new(&checks)
        .timeout(Some(Duration::MAX))
        .run(&names(2), &MockExecutor::new(2));
    assert!(!summary.cancelled);
    for (i, r) in summary.results.iter().enumerate() {
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.value, Some(i));
        assert_eq!(r.error, None);
    }
}

#[test]
fn cancelling_stops_scheduling_and_drops_the_running_file() {
    // File 4 cancels the batch, then sees it at its next check: files 0-3 are kept,
    // file 4 is dropped, and nothing after it starts.
    let cancel = Arc::new(AtomicBool::new(false));
    let started = AtomicUsize::new(0);
    let job = |p: &Path, stop: &StopSignal| {
        started.fetch_add(1, Ordering::SeqCst);
        if index_of(p) == 4 {
            cancel.store(true, Ordering::SeqCst);
        }
        stop.check(Stage::Decode).map(|()| index_of(p))
    };
    let batch = Batch::new(&job).stop(StopSignal::never().with_cancel_flag(Arc::clone(&cancel)));
    let (summary, seen) = run_recorded(&batch, &names(50), &Sequential);
    assert!(summary.cancelled && seen.end.unwrap().cancelled);
    assert_eq!(started.load(Ordering::SeqCst), 5);
    assert_eq!(seen.finished, [0, 1, 2, 3]);
    let values: Vec<_> = summary.results.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(0), Some(1), Some(2), Some(3)]);
}

#[test]
fn on_a_pool_cancelling_keeps_finished_files_and_starts_no_more() {
    // File 0 runs until file 1, on the other thread, has cancelled the batch; file 0 then
    // stops at its check and no later file starts.
    let cancel = Arc::new(AtomicBool::new(false));
    let (tx, cancelled) = waiter();
    let tx = Mutex::new(tx);
    let started = AtomicUsize::new(0);
    let job = |p: &Path, stop: &StopSignal| {
        started.fetch_add(1, Ordering::SeqCst);
        match index_of(p) {
            0 => {
                cancelled.wait();
                stop.check(Stage::Decode)?;
            }
            1 => {
                cancel.store(true, Ordering::SeqCst);
                tx.lock().unwrap().send(()).unwrap();
            }
            _ => {}
        }
        Ok(index_of(p))
    };
    let batch = Batch::new(&job)
        .schedule(Schedule::InputOrder)
        .stop(StopSignal::never().with_cancel_flag(Arc::clone(&cancel)));
    let pool = Parallel::new(2).unwrap();
    let (summary, seen) = run_recorded(&batch, &names(20), &pool);
    assert!(summary.cancelled);
    assert_eq!(started.load(Ordering::SeqCst), 2);
    assert_eq!(seen.finished, [1]);
    assert_eq!(summary.results.len(), 1);
    assert_eq!(summary.results[0].value, Some(1));
}

/// A job whose cost hints come from a table; `None` past its end, a panic at NaN.
struct Costed(Vec<f64>);

impl Job for Costed {
    type Output = usize;

    fn run(&self, path: &Path, _: &StopSignal) -> Result<usize, Error> {
        Ok(index_of(path))
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        let cost = *self.0.get(index_of(path))?;
        assert!(!cost.is_nan(), "no cost for {}", path.display());
        Some(cost)
    }
}

#[test]
fn costliest_files_start_first_ties_by_index() {
    // File 5's hint panics and file 6 has none: both count as free.
    let job = Costed(vec![10.0, 30.0, 0.0, 30.0, 20.0, f64::NAN]);
    let files = names(7);
    let mock = MockExecutor::new(2);
    let summary = Batch::new(&job).run(&files, &mock);
    let started = mock.started();
    assert_eq!(started.len(), 2, "a cost probe, then the batch");
    assert_eq!(started[0], [0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(started[1], [1, 3, 4, 0, 2, 5, 6]);
    let values: Vec<_> = summary.results.iter().map(|r| r.value.unwrap()).collect();
    assert_eq!(values, (0..7).collect::<Vec<_>>());

    // One worker, or the input schedule, runs in input order without asking for costs.
    for (workers, schedule) in [(1, Schedule::CostliestFirst), (2, Schedule::InputOrder)] {
        let mock = MockExecutor::new(workers);
        Batch::new(&job).schedule(schedule).run(&files, &mock);
        assert_eq!(mock.started(), [vec![0, 1, 2, 3, 4, 5, 6]]);
    }
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
fn audio_cost_is_the_announced_length_weighted_by_codec() {
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("a.wav");
    tone_wav(&wav, 2.0);
    assert!(
        (audio_cost(&wav) - 2.0).abs() < 1e-9,
        "{}",
        audio_cost(&wav)
    );
    // A compressed file costs its announced length times the codec weight, whatever its size.
    let flac = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fourfloor-128.flac");
    let seconds = crate::decode::probe(&flac).unwrap().duration_s.unwrap();
    assert!((audio_cost(&flac) - seconds * job::COMPRESSED_COST).abs() < 1e-9);
    // What cannot be probed is about to fail fast.
    let junk = dir.path().join("junk.mp3");
    std::fs::write(&junk, b"not audio at all").unwrap();
    assert_eq!(audio_cost(&junk), 0.0);
    assert_eq!(audio_cost(&dir.path().join("missing.wav")), 0.0);
}

#[test]
fn default_workers_is_at_least_one() {
    assert!(default_workers() >= 1);
    assert!(memory_worker_cap().is_none_or(|cap| cap >= 1));
}

/// A job whose output stands for a failure ([`Job::failure`]): odd files fail with their
/// value kept.
struct HalfFailing;

impl Job for HalfFailing {
    type Output = usize;

    fn run(&self, path: &Path, _stop: &StopSignal) -> Result<usize, Error> {
        Ok(index_of(path))
    }

    fn failure(&self, output: &usize) -> Option<Error> {
        (output % 2 == 1).then(|| Error::new(ErrorKind::NoPulse, Stage::Tempo, "odd"))
    }
}

#[test]
fn an_output_that_stands_for_a_failure_fails_with_its_value_kept() {
    let summary = Batch::new(&HalfFailing).run(&names(3), &Sequential);
    let odd = Some("tempo: no_pulse: odd".to_string());
    assert_eq!(
        comparable(&summary),
        vec![
            (0, PathBuf::from("file-0"), Status::Ok, Some(0), None),
            (1, PathBuf::from("file-1"), Status::Error, Some(1), odd),
            (2, PathBuf::from("file-2"), Status::Ok, Some(2), None),
        ]
    );
}

/// A job that counts the cost hints asked of it.
struct CountedHints(AtomicUsize);

impl Job for CountedHints {
    type Output = usize;

    fn run(&self, path: &Path, _: &StopSignal) -> Result<usize, Error> {
        Ok(index_of(path))
    }

    fn cost_hint(&self, _: &Path) -> Option<f64> {
        self.0.fetch_add(1, Ordering::SeqCst);
        Some(1.0)
    }
}

/// A batch stopped before it starts reads no file's header: the cost probe read every
/// one first (minutes of ignored Ctrl-C over a large library on a slow disk).
#[test]
fn a_stopped_batch_reads_no_cost_hints() {
    let job = CountedHints(AtomicUsize::new(0));
    let stop = StopSignal::never().with_cancel_flag(Arc::new(AtomicBool::new(true)));
    let summary = Batch::new(&job)
        .stop(stop)
        .run(&names(50), &MockExecutor::new(2));
    assert!(summary.results.is_empty());
    assert_eq!(job.0.load(Ordering::SeqCst), 0);
    // Not stopped, every file's hint is read once.
    Batch::new(&job).run(&names(50), &MockExecutor::new(2));
    assert_eq!(job.0.load(Ordering::SeqCst), 50);
}

/// A panic payload that panics again when dropped (`panic_any` of such a value) is the
/// file's failed result, not the end of the batch: the other files' results stay.
#[test]
fn a_panic_payload_that_panics_when_dropped_fails_its_file_only() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("payload dropped");
        }
    }
    let job = |p: &Path, _: &StopSignal| -> Result<usize, Error> {
        if index_of(p) == 1 {
            std::panic::panic_any(Bomb);
        }
        Ok(index_of(p))
    };
    let summary = Batch::new(&job).run(&names(3), &Sequential);
    let statuses: Vec<Status> = summary.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Status::Ok, Status::Error, Status::Ok]);
    assert_eq!(summary.results[2].value, Some(2));
}

/// The error of an open that found no descriptor left.
#[cfg(unix)]
fn out_of_files() -> Error {
    let emfile = std::io::Error::from_raw_os_error(libc::EMFILE);
    Error::io(ErrorKind::Unreadable, Stage::Open, &emfile)
}

/// A file whose first open finds no descriptor left gets the row of a run that had one
/// (it is tried again, alone), on every executor; one that never opens is tried once
/// more and keeps its error, so a limit too low for one file cannot loop.
#[cfg(unix)]
#[test]
fn running_out_of_descriptors_is_tried_again_alone_not_kept() {
    assert!(out_of_files().is_out_of_files());
    assert!(!Error::new(ErrorKind::Unreadable, Stage::Open, "gone").is_out_of_files());
    for executor in [executor_for(1).unwrap(), executor_for(4).unwrap()] {
        let tries: Vec<AtomicUsize> = (0..6).map(|_| AtomicUsize::new(0)).collect();
        let job = |path: &Path, _stop: &StopSignal| {
            let i = index_of(path);
            let attempt = tries[i].fetch_add(1, Ordering::SeqCst);
            match i {
                1 | 4 if attempt == 0 => Err(out_of_files()),
                5 => Err(out_of_files()),
                _ => Ok(i * 10),
            }
        };
        let summary = Batch::new(&job).run(&names(6), &*executor);
        let values: Vec<Option<usize>> = summary.results.iter().map(|r| r.value).collect();
        assert_eq!(
            values,
            [Some(0), Some(10), Some(20), Some(30), Some(40), None]
        );
        let last = &summary.results[5];
        assert_eq!(last.status, Status::Error);
        assert_eq!(
            last.error.as_deref(),
            Some("open: unreadable: Too many open files (os error 24)")
        );
        let counts: Vec<usize> = tries.iter().map(|t| t.load(Ordering::SeqCst)).collect();
        assert_eq!(counts, [1, 2, 1, 1, 2, 2]);
    }
}

/// A job whose `failure`, `stage_timings` or `cost_hint` panics (the last with a payload
/// that panics again when dropped) fails or keeps that one file: each escaped the batch
/// and lost every finished result.
#[test]
fn a_panic_in_a_jobs_other_methods_stays_with_its_file() {
    struct Bomb;
    impl Drop for Bomb {
        fn drop(&mut self) {
            panic!("payload dropped");
        }
    }
    struct Fragile;
    impl Job for Fragile {
        type Output = usize;
        fn run(&self, path: &Path, _: &StopSignal) -> Result<usize, Error> {
            Ok(index_of(path))
        }
        fn failure(&self, output: &usize) -> Option<Error> {
            assert_ne!(*output, 1, "failure of 1");
            None
        }
        fn stage_timings(&self, output: &usize) -> Vec<(Stage, Duration)> {
            assert_ne!(*output, 2, "timings of 2");
            vec![(Stage::Decode, Duration::ZERO)]
        }
        fn cost_hint(&self, path: &Path) -> Option<f64> {
            if index_of(path) == 0 {
                std::panic::panic_any(Bomb);
            }
            Some(1.0)
        }
    }
    for executor in [
        Box::new(Sequential) as Box<dyn Executor>,
        Box::new(MockExecutor::new(2)),
    ] {
        let summary = Batch::new(&Fragile).run(&names(4), &*executor);
        let statuses: Vec<Status> = summary.results.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [Status::Ok, Status::Error, Status::Ok, Status::Ok]
        );
        let failed = summary.results[1].error.as_deref().unwrap();
        assert!(
            failed.contains("panic: ") && failed.contains("failure of 1"),
            "{failed}"
        );
        assert!(summary.results[2].stages.is_empty());
        assert_eq!(summary.results[3].stages.len(), 1);
    }
}

/// A job that says `Cancelled` while nobody stopped the batch has its file kept as an
/// error: the file was dropped from the results, a row lost without a word.
#[test]
fn a_cancelled_error_of_the_jobs_own_is_an_error_row() {
    let job = |p: &Path, _: &StopSignal| -> Result<usize, Error> {
        if index_of(p) == 1 {
            return Err(Error::new(ErrorKind::Cancelled, Stage::Decode, "gave up"));
        }
        Ok(index_of(p))
    };
    let summary = Batch::new(&job).run(&names(3), &Sequential);
    assert!(!summary.cancelled);
    let statuses: Vec<Status> = summary.results.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Status::Ok, Status::Error, Status::Ok]);
}

/// A job that runs a batch on the pool it runs on finishes: the inner batch runs on the
/// calling worker. It waited for tasks queued behind it, on every thread, for ever.
#[test]
fn a_batch_inside_a_job_on_the_same_pool_finishes() {
    let pool = Parallel::new(2).unwrap();
    let inner = |p: &Path, _: &StopSignal| Ok::<usize, Error>(index_of(p));
    let outer = |p: &Path, _: &StopSignal| {
        let summary = Batch::new(&inner).run(&names(index_of(p) + 1), &pool);
        Ok::<usize, Error>(summary.results.iter().filter_map(|r| r.value).sum())
    };
    let summary = Batch::new(&outer).run(&names(4), &pool);
    let values: Vec<Option<usize>> = summary.results.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(0), Some(1), Some(3), Some(6)]);
    // Across two pools, A's job running a batch on B whose job runs one on A: it
    // deadlocked the same way.
    let other = Parallel::new(2).unwrap();
    let middle = |p: &Path, _: &StopSignal| {
        let summary = Batch::new(&inner).run(&names(index_of(p) + 1), &pool);
        Ok::<usize, Error>(summary.results.iter().filter_map(|r| r.value).sum())
    };
    let top = |p: &Path, _: &StopSignal| {
        let summary = Batch::new(&middle).run(&names(index_of(p) + 1), &other);
        Ok::<usize, Error>(summary.results.iter().filter_map(|r| r.value).sum())
    };
    let summary = Batch::new(&top).run(&names(3), &pool);
    let values: Vec<Option<usize>> = summary.results.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(0), Some(1), Some(4)]);
}

/// A job whose own helper thread runs a batch on the pool the job runs on finishes: the
/// inner batch runs on the helper thread. With as many outer files as threads, every
/// thread waited for its helper, whose tasks were queued behind them, for ever.
#[test]
fn a_batch_from_a_job_s_helper_thread_finishes() {
    let pool = Parallel::new(2).unwrap();
    let inner = |p: &Path, _: &StopSignal| Ok::<usize, Error>(index_of(p));
    let outer = |p: &Path, _: &StopSignal| {
        let files = names(index_of(p) + 1);
        let summary = std::thread::scope(|s| {
            s.spawn(|| Batch::new(&inner).run(&files, &pool))
                .join()
                .unwrap()
        });
        // It says where it ran.
        assert_eq!(summary.workers, 1);
        Ok::<usize, Error>(summary.results.iter().filter_map(|r| r.value).sum())
    };
    let summary = Batch::new(&outer).run(&names(4), &pool);
    assert_eq!(summary.workers, 2);
    let values: Vec<Option<usize>> = summary.results.iter().map(|r| r.value).collect();
    assert_eq!(values, [Some(0), Some(1), Some(3), Some(6)]);
}

/// A batch started on a worker of another rayon pool runs there, and says it used one
/// worker (it said the pool's count while it ran on one thread).
#[test]
fn a_batch_inside_another_pool_says_it_ran_on_one_thread() {
    let pool = Parallel::new(3).unwrap();
    let job = |p: &Path, _: &StopSignal| Ok::<usize, Error>(index_of(p));
    let outside = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let summary = outside.install(|| Batch::new(&job).run(&names(3), &pool));
    assert_eq!(summary.workers, 1);
    assert_eq!(Batch::new(&job).run(&names(3), &pool).workers, 3);
}

/// A pool of more threads than any machine needs is refused, not started for minutes.
#[test]
fn a_pool_past_its_limit_is_refused() {
    let err = Parallel::new(Parallel::MAX_THREADS + 1).err().unwrap();
    assert!(matches!(err, PoolError::TooMany(n) if n == Parallel::MAX_THREADS + 1));
    assert!(err.to_string().contains("at most 1024"), "{err}");
}

/// Costs shorter than the order leave the rest at no cost instead of panicking.
#[test]
fn indices_past_the_costs_cost_nothing() {
    let mut order = vec![0, 1, 2, 3];
    costliest_first(&mut order, &[1.0, 5.0]);
    assert_eq!(order, [1, 0, 2, 3]);
}

/// A streamed run hands every result over as it finishes, in completion order, after the
/// observers heard of it, and keeps only the counts; what it hands over is what
/// `run_observed` keeps.
#[test]
fn a_streamed_run_hands_each_result_over_and_keeps_counts() {
    let batch = Batch::new(&scripted);
    let files = names(8);
    let finishing = [6, 0, 3, 7, 5, 1, 2, 4];
    let executor = MockExecutor::new(4).finishing_in(finishing);
    let mut recorder = Recorder::default();
    let mut taken = Vec::new();
    let totals = batch.run_streamed(&files, &executor, &mut [&mut recorder], |result| {
        taken.push(result)
    });
    let order: Vec<usize> = taken.iter().map(|r| r.index).collect();
    assert_eq!(order, finishing);
    assert_eq!(recorder.finished, finishing);
    assert_eq!(
        (totals.finished, totals.ok, totals.cancelled),
        (8, 6, false)
    );
    taken.sort_by_key(|r| r.index);
    let streamed = BatchSummary {
        results: taken,
        cancelled: totals.cancelled,
        wall_s: 0.0,
        workers: totals.workers,
    };
    let executor = MockExecutor::new(4).finishing_in(finishing);
    let observed = batch.run(&files, &executor);
    assert_eq!(comparable(&streamed), comparable(&observed));

    // Cancelled before it starts: nothing handed over, and said so.
    let stop = StopSignal::never().with_cancel_flag(Arc::new(AtomicBool::new(true)));
    let mut handed = 0;
    let totals =
        Batch::new(&scripted)
            .stop(stop)
            .run_streamed(&files, &Sequential, &mut [], |_| handed += 1);
    assert_eq!((handed, totals.finished, totals.cancelled), (0, 0, true));
}
