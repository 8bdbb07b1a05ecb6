//! Progress on stderr, as an observer of the batch: an indicatif bar for people, JSON
//! lines for programs, or nothing. Stdout and result files never carry progress, so they
//! stay identical across runs.

use std::io::Write;

use analyzer_core::batch::{BatchEnd, BatchStart, FileResult, Observer, Status};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{ProgressMode, peak_rss_mb};

enum Sink {
    Off,
    Bar(ProgressBar),
    Jsonl,
}

/// What a `file` event of `--progress jsonl` shows of a finished file's value.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    /// The tempo, BPM.
    pub bpm: Option<f64>,
    /// The key (`A minor`), when there is one.
    pub key: Option<String>,
    /// The integrated loudness, LUFS, when it was measured and is not silence.
    pub loudness_lufs: Option<f64>,
}

/// Progress of one batch.
pub(crate) struct Progress<'a, T> {
    mode: ProgressMode,
    sink: Sink,
    workers: usize,
    shown: &'a dyn Fn(&T) -> Shown,
    total: usize,
    done: usize,
    failed: usize,
}

impl<'a, T> Progress<'a, T> {
    /// Reports a batch on `workers` workers (the count asked for, which the `started`
    /// event shows); `shown` gives the tempo and key a `file` event shows.
    pub(crate) fn new(mode: ProgressMode, workers: usize, shown: &'a dyn Fn(&T) -> Shown) -> Self {
        Progress {
            mode,
            sink: Sink::Off,
            workers,
            shown,
            total: 0,
            done: 0,
            failed: 0,
        }
    }
}

impl<T> Observer<T> for Progress<'_, T> {
    fn started(&mut self, start: &BatchStart) {
        self.total = start.files;
        self.sink = if self.mode == ProgressMode::Jsonl {
            emit(&json!({"event": "started", "files": start.files, "workers": self.workers}));
            Sink::Jsonl
        } else if self.mode.shows_bar() {
            let bar = ProgressBar::with_draw_target(
                Some(start.files as u64),
                ProgressDrawTarget::stderr(),
            );
            let style = ProgressStyle::with_template(
                "{bar:30} {pos}/{len} files  {per_sec}  ETA {eta}  {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar.reset_eta();
            Sink::Bar(bar)
        } else {
            Sink::Off
        };
    }

    fn file_finished(&mut self, result: &FileResult<T>) {
        self.done += 1;
        if result.status != Status::Ok {
            self.failed += 1;
        }
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => {
                bar.inc(1);
                if self.failed > 0 {
                    bar.set_message(format!("{} failed", self.failed));
                }
            }
            Sink::Jsonl => {
                let shown = result.value.as_ref().map(self.shown).unwrap_or_default();
                emit_file_event(result, &shown, self.done, Some(self.total));
            }
        }
    }

    fn finished(&mut self, end: &BatchEnd) {
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => bar.finish_and_clear(),
            Sink::Jsonl => emit(&json!({
                "event": "finished",
                "ok": end.ok,
                "failed": end.failed,
                "cancelled": end.cancelled,
                "wall_s": end.wall_s,
                "peak_rss_mb": peak_rss_mb(),
            })),
        }
    }
}

/// Emits the `file` event of a finished file: `done` files so far, of `total` when the
/// batch's size is known (a watched folder's later files have none: `null`).
pub(crate) fn emit_file_event<T>(
    result: &FileResult<T>,
    shown: &Shown,
    done: usize,
    total: Option<usize>,
) {
    emit(&json!({
        "event": "file",
        "index": result.index,
        "path": crate::path_cell::path_cell(&result.path),
        "status": result.status.as_str(),
        "bpm": shown.bpm.filter(|b| b.is_finite()),
        "key": shown.key,
        "loudness_lufs": shown.loudness_lufs,
        "error": result.error,
        "elapsed_s": result.elapsed_s,
        "done": done,
        "total": total,
    }))
}

/// Writes one JSON line to stderr in a single write, so lines never interleave.
pub(crate) fn emit(value: &serde_json::Value) {
    let mut line = value.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
