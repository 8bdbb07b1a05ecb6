//! Jobs and their state: which files, which rows are done, the counts a client sees, and
//! the events a job's subscribers hear.
//!
//! A job's files are fixed when it is submitted (walked and sorted as `analyze` does);
//! its rows fill in as workers finish files, in any order, and are read back in input
//! order. Everything a worker changes goes through [`Job::start_file`],
//! [`Job::finish_file`] and [`Job::drop_queued`], which keep the counts and end the job
//! (one `finished` event) when nothing is queued or running any more.
//!
//! A final job keeps only what its results need: its rows as the CSV lines they are
//! served as ([`KeptRows`], about the CSV's bytes a row), not the rows as structs (22
//! strings, about 700 bytes a row with their allocations), nor its files' paths and
//! start order (about 80 bytes a row more); a finished job of 100,000 files kept 80 MB,
//! docs/service.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use analyzer_core::Analyzer;
use serde::Serialize;
use tokio::sync::broadcast;

use super::scheduler::Lane;
use crate::analysis::{Candidate, FileOutcome};
use crate::record::{self, AnalyzeRecord};
use crate::report::export::{CsvLine, Exporter};

/// A job's number, from 1.
pub type JobId = u64;

/// Events a subscriber may miss, at most, before it is told it lagged (it then gets the
/// counts again, which are always current).
const EVENT_BUFFER: usize = 1024;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// No file has started yet.
    Queued,
    /// Files are being analysed.
    Running,
    /// Every file has its row.
    Done,
    /// Cancelled: the rows done before stay.
    Cancelled,
}

impl JobStatus {
    /// Whether the job will change no more.
    pub fn is_final(self) -> bool {
        matches!(self, JobStatus::Done | JobStatus::Cancelled)
    }
}

/// A job's counts, as `GET /v1/jobs/{id}` and the `progress` events give them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The job.
    pub id: JobId,
    /// Where it is.
    pub status: JobStatus,
    /// `"high"` or `"normal"`.
    pub priority: &'static str,
    /// Rows the job will have when done (its files, and inputs that could not be walked).
    pub files: usize,
    /// Rows finished, failed ones included.
    pub done: usize,
    /// Finished rows whose status is not `ok`.
    pub failed: usize,
    /// Files being analysed now.
    pub running: usize,
    /// Files waiting for a worker.
    pub queued: usize,
    /// Files finished per second since the first one started; `null` before that.
    pub rate: Option<f64>,
    /// Seconds until the last file is done at that rate; `null` when unknown.
    pub eta_s: Option<f64>,
    /// Seconds since the first file started (to the end, once the job is final).
    pub elapsed_s: f64,
}

/// A finished file, as the `file` event carries it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileEvent {
    /// Its position in the job's input.
    pub index: usize,
    /// Its row, the columns of the CSV.
    pub row: AnalyzeRecord,
    /// Its tempo hypotheses, best first.
    pub candidates: Vec<Candidate>,
    /// Wall time of the file, seconds.
    pub elapsed_s: f64,
    /// Seconds per stage (`decode`, `onset`, `tempo`); empty for a failed file.
    pub stages: BTreeMap<String, f64>,
}

/// What a job's subscribers hear.
#[derive(Debug, Clone)]
pub enum JobEvent {
    /// A file finished.
    File(Arc<FileEvent>),
    /// The job is final; its last counts.
    Finished(Progress),
}

/// A job's rows.
#[derive(Debug)]
enum Rows {
    /// Until the job is final: each file's row once it has one (boxed: a waiting file
    /// costs one pointer), in input order.
    Filling(Vec<Option<Box<AnalyzeRecord>>>),
    /// Once it is final.
    Kept(KeptRows),
}

/// A final job's rows, as the CSV lines of its results (no header), in input order: the
/// bytes `results.csv` serves, read back for `results.json`.
#[derive(Debug)]
pub struct KeptRows {
    lines: Box<[u8]>,
}

impl KeptRows {
    /// `rows`, written as CSV lines.
    pub fn of<'a>(rows: impl IntoIterator<Item = &'a AnalyzeRecord>) -> Self {
        let mut lines = Vec::new();
        for row in rows {
            lines.extend(csv_line(row));
        }
        KeptRows {
            lines: lines.into_boxed_slice(),
        }
    }

    /// The CSV lines, as they were written.
    pub fn lines(&self) -> &[u8] {
        &self.lines
    }

    /// The rows again. A CSV line holds a row's cells exactly (quoted where a cell
    /// holds a comma, a quote or a line break), so these are the rows written.
    pub fn rows(&self) -> Vec<AnalyzeRecord> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(&*self.lines)
            .deserialize()
            .map(|row| row.expect("rows written as CSV read back"))
            .collect()
    }
}

/// The CSV line of `row`.
fn csv_line(row: &AnalyzeRecord) -> Vec<u8> {
    CsvLine
        .serialize(row)
        .expect("writing CSV to memory cannot fail")
}

#[derive(Debug)]
struct State {
    /// The files to analyse, in input order; dropped once the job is final.
    files: Vec<PathBuf>,
    /// Indices into `files` in the order they are to start, until the pool takes them.
    start_order: Vec<usize>,
    rows: Rows,
    done: usize,
    failed: usize,
    running: usize,
    queued: usize,
    status: JobStatus,
    started: Option<Instant>,
    ended: Option<Instant>,
    /// The job's event channel, dropped once it is final (its buffer is the one sizeable
    /// thing a finished job would otherwise keep).
    events: Option<broadcast::Sender<JobEvent>>,
}

/// One job.
#[derive(Debug)]
pub struct Job {
    /// Its number.
    pub id: JobId,
    /// Its lane in the scheduler (`High` or `Normal`).
    pub lane: Lane,
    /// The analyzer built for its settings.
    pub analyzer: Arc<Analyzer>,
    /// How many files it has.
    file_count: usize,
    /// Rows of inputs that could not be walked, after the files' (as `analyze` puts them).
    walk_rows: Vec<AnalyzeRecord>,
    /// Set to cancel: queued files are not started, running ones stop at their next check.
    pub cancel: Arc<AtomicBool>,
    state: Mutex<State>,
}

impl Job {
    /// A job of `files` (all queued, to start in `start_order`, a permutation of their
    /// indices) and `walk_rows` (already final).
    pub fn new(
        id: JobId,
        lane: Lane,
        analyzer: Arc<Analyzer>,
        files: Vec<PathBuf>,
        walk_rows: Vec<AnalyzeRecord>,
        start_order: Vec<usize>,
    ) -> Self {
        debug_assert_eq!(start_order.len(), files.len());
        let failed = walk_rows.len();
        let queued = files.len();
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let file_count = files.len();
        let mut state = State {
            files,
            start_order,
            rows: Rows::Filling(vec![None; file_count]),
            done: failed,
            failed,
            running: 0,
            queued,
            status: JobStatus::Queued,
            started: None,
            ended: None,
            events: Some(events),
        };
        if queued == 0 {
            state.status = JobStatus::Done;
            state.ended = Some(Instant::now());
            state.events = None;
            state.rows = Rows::Kept(KeptRows::of(&walk_rows));
        }
        Job {
            id,
            lane,
            analyzer,
            file_count,
            walk_rows,
            cancel: Arc::new(AtomicBool::new(false)),
            state: Mutex::new(state),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // No code panics while holding it, so poison carries no meaning.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Rows the job will have.
    pub fn total(&self) -> usize {
        self.file_count + self.walk_rows.len()
    }

    /// Files it has (its rows but those of inputs that could not be walked).
    pub fn file_count(&self) -> usize {
        self.file_count
    }

    /// Indices of its files in the order they are to start; empty after the first call
    /// (the pool's, which queues them).
    pub fn take_start_order(&self) -> Vec<usize> {
        std::mem::take(&mut self.state().start_order)
    }

    /// The path of file `index`, while the job is not final (a started file keeps it so).
    pub fn path(&self, index: usize) -> PathBuf {
        self.state().files[index].clone()
    }

    /// Rows it holds now (finished files, and inputs that could not be walked).
    pub fn rows_held(&self) -> usize {
        self.state().done
    }

    /// Whether it was cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.load(Ordering::SeqCst)
    }

    /// Hears the job's events from now on; a final job's receiver is closed at once
    /// (its counts say all there is).
    pub fn subscribe(&self) -> broadcast::Receiver<JobEvent> {
        match &self.state().events {
            Some(events) => events.subscribe(),
            None => broadcast::channel(1).1,
        }
    }

    /// The counts now.
    pub fn progress(&self) -> Progress {
        self.progress_of(&self.state())
    }

    fn progress_of(&self, state: &State) -> Progress {
        let elapsed_s = match (state.started, state.ended) {
            (Some(s), Some(e)) => e.duration_since(s).as_secs_f64(),
            (Some(s), None) => s.elapsed().as_secs_f64(),
            _ => 0.0,
        };
        let finished_files = state.done - self.walk_rows.len();
        let rate =
            (state.started.is_some() && elapsed_s > 0.0).then(|| finished_files as f64 / elapsed_s);
        let left = state.running + state.queued;
        let eta_s = match rate {
            _ if state.status.is_final() => Some(0.0),
            Some(r) if r > 0.0 => Some(left as f64 / r),
            _ => None,
        };
        Progress {
            id: self.id,
            status: state.status,
            priority: match self.lane {
                Lane::Normal => "normal",
                Lane::High | Lane::Upload => "high",
            },
            files: self.total(),
            done: state.done,
            failed: state.failed,
            running: state.running,
            queued: state.queued,
            rate,
            eta_s,
            elapsed_s,
        }
    }

    /// Whether it is final.
    pub fn status(&self) -> JobStatus {
        self.state().status
    }

    /// When it became final; `None` while it is not.
    pub fn ended(&self) -> Option<Instant> {
        self.state().ended
    }

    /// A worker took one of its queued files.
    pub fn start_file(&self) {
        let mut state = self.state();
        state.queued = state.queued.saturating_sub(1);
        state.running += 1;
        state.started.get_or_insert_with(Instant::now);
        if state.status == JobStatus::Queued {
            state.status = JobStatus::Running;
        }
    }

    /// `n` queued files will never start (a cancel, a shutdown, or a worker that found
    /// the job cancelled).
    pub fn drop_queued(&self, n: usize) {
        let mut state = self.state();
        state.queued = state.queued.saturating_sub(n);
        self.end_if_idle(&mut state);
    }

    /// The file at `index` ended: with its row, or (`None`) cancelled without one.
    pub fn finish_file(&self, index: usize, analysed: Option<FileOutcome>) {
        let mut state = self.state();
        state.running = state.running.saturating_sub(1);
        if let Some(analysed) = analysed {
            state.done += 1;
            if analysed.failed() {
                state.failed += 1;
            }
            let event = FileEvent {
                index,
                row: analysed.record.clone(),
                candidates: analysed.candidates,
                elapsed_s: analysed.elapsed_s,
                stages: analysed.stages.into_iter().collect(),
            };
            if let Rows::Filling(rows) = &mut state.rows {
                rows[index] = Some(Box::new(analysed.record));
            }
            // No subscriber is not an error: nobody is watching.
            if let Some(events) = &state.events {
                let _ = events.send(JobEvent::File(Arc::new(event)));
            }
        }
        self.end_if_idle(&mut state);
    }

    fn end_if_idle(&self, state: &mut State) {
        if state.status.is_final() || state.queued > 0 || state.running > 0 {
            return;
        }
        state.status = if self.is_cancelled() {
            JobStatus::Cancelled
        } else {
            JobStatus::Done
        };
        state.ended = Some(Instant::now());
        // What a final job keeps: its rows as CSV lines, not its paths.
        if let Rows::Filling(rows) = &state.rows {
            let kept = KeptRows::of(
                rows.iter()
                    .flatten()
                    .map(|row| &**row)
                    .chain(&self.walk_rows),
            );
            state.rows = Rows::Kept(kept);
        }
        state.files = Vec::new();
        state.start_order = Vec::new();
        let last = JobEvent::Finished(self.progress_of(state));
        // Receivers still read what is buffered; the buffer goes with the last of them.
        if let Some(events) = state.events.take() {
            let _ = events.send(last);
        }
    }

    /// The rows finished so far, in input order (files, then inputs that could not be
    /// walked): once the job is done, the rows of `analyze`.
    pub fn rows(&self) -> Vec<AnalyzeRecord> {
        let state = self.state();
        match &state.rows {
            Rows::Filling(rows) => rows
                .iter()
                .flatten()
                .map(|row| AnalyzeRecord::clone(row))
                .chain(self.walk_rows.iter().cloned())
                .collect(),
            Rows::Kept(kept) => kept.rows(),
        }
    }

    /// The CSV of [`Job::rows`], header first: the bytes of `eval-cli analyze`.
    pub fn csv(&self) -> Vec<u8> {
        let mut out = record::header();
        let state = self.state();
        match &state.rows {
            Rows::Filling(rows) => {
                for row in rows
                    .iter()
                    .flatten()
                    .map(|row| &**row)
                    .chain(&self.walk_rows)
                {
                    out.extend(csv_line(row));
                }
            }
            Rows::Kept(kept) => out.extend_from_slice(kept.lines()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use analyzer_core::AnalyzerConfig;

    fn row(path: &str, status: &str) -> FileOutcome {
        FileOutcome {
            record: AnalyzeRecord {
                path: path.to_string(),
                status: status.to_string(),
                ..AnalyzeRecord::default()
            },
            candidates: Vec::new(),
            elapsed_s: 0.0,
            stages: Vec::new(),
            from_cache: false,
        }
    }

    fn job(files: &[&str], walk: usize) -> Job {
        let analyzer = Arc::new(Analyzer::new(AnalyzerConfig::default()).unwrap());
        let walk_rows = (0..walk)
            .map(|i| AnalyzeRecord {
                path: format!("w{i}"),
                status: "error".into(),
                ..AnalyzeRecord::default()
            })
            .collect();
        Job::new(
            1,
            Lane::Normal,
            analyzer,
            files.iter().map(PathBuf::from).collect(),
            walk_rows,
            (0..files.len()).collect(),
        )
    }

    #[test]
    fn rows_come_back_in_input_order_whatever_order_files_finish_in() {
        let job = job(&["a", "b", "c"], 1);
        let mut events = job.subscribe();
        for _ in 0..3 {
            job.start_file();
        }
        job.finish_file(2, Some(row("c", "ok")));
        job.finish_file(0, Some(row("a", "error")));
        assert_eq!(job.status(), JobStatus::Running);
        job.finish_file(1, Some(row("b", "ok")));
        let paths: Vec<String> = job.rows().into_iter().map(|r| r.path).collect();
        assert_eq!(paths, ["a", "b", "c", "w0"]);
        let p = job.progress();
        assert_eq!(
            (p.status, p.done, p.failed, p.files),
            (JobStatus::Done, 4, 2, 4)
        );
        let mut files = 0;
        while let Ok(event) = events.try_recv() {
            match event {
                JobEvent::File(_) => files += 1,
                JobEvent::Finished(p) => assert_eq!(p.status, JobStatus::Done),
            }
        }
        assert_eq!(files, 3);
    }

    #[test]
    fn a_final_job_serves_the_rows_and_the_bytes_it_served_while_running() {
        let cells = [
            "plain",
            "a,comma",
            "a \"quote\"",
            "line\nbreak",
            "cr\r",
            "",
            " spaced ",
            "é🎵",
            "#hash",
            "\\x80",
        ];
        let names: Vec<String> = (0..cells.len()).map(|i| format!("f{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let job = job(&names, 1);
        let outcomes: Vec<FileOutcome> = cells
            .iter()
            .map(|cell| {
                let mut outcome = row(cell, "error");
                outcome.record.error = format!("{cell}{cell}");
                outcome.record.bpm = cell.to_string();
                outcome
            })
            .collect();
        let last = cells.len() - 1;
        for (index, outcome) in outcomes.iter().enumerate().rev().skip(1) {
            job.start_file();
            job.finish_file(index, Some(outcome.clone()));
        }
        let rows_running = job.rows();
        let csv_running = job.csv();
        job.start_file();
        job.finish_file(last, Some(outcomes[last].clone()));
        assert_eq!(job.status(), JobStatus::Done);
        let expected: Vec<AnalyzeRecord> = outcomes
            .iter()
            .map(|o| o.record.clone())
            .chain(job.walk_rows.iter().cloned())
            .collect();
        assert_eq!(job.rows(), expected);
        let mut without_last = expected.clone();
        without_last.remove(last);
        assert_eq!(rows_running, without_last);
        let csv = job.csv();
        let last_line = csv_line(&expected[last]);
        let mut csv_of_running = csv.clone();
        let at = csv.len() - last_line.len() - csv_line(&expected[last + 1]).len();
        csv_of_running.drain(at..at + last_line.len());
        assert_eq!(
            csv_of_running, csv_running,
            "the same bytes, the last row aside"
        );
    }

    #[test]
    fn a_cancelled_job_ends_when_its_running_files_stop_and_keeps_its_rows() {
        let job = job(&["a", "b", "c", "d"], 0);
        job.start_file();
        job.start_file();
        job.finish_file(0, Some(row("a", "ok")));
        job.cancel.store(true, Ordering::SeqCst);
        job.drop_queued(2);
        assert_eq!(job.status(), JobStatus::Running, "file 1 still runs");
        job.finish_file(1, None);
        let p = job.progress();
        assert_eq!(
            (p.status, p.done, p.queued, p.running),
            (JobStatus::Cancelled, 1, 0, 0)
        );
        assert_eq!(job.rows().len(), 1);
    }

    #[test]
    fn a_job_with_no_files_is_done_at_once() {
        let job = job(&[], 2);
        assert_eq!(job.status(), JobStatus::Done);
        assert_eq!(job.rows().len(), 2);
    }
}
