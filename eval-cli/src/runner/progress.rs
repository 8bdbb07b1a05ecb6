//! Progress on stderr: an indicatif bar for people, JSON lines for programs, or nothing.
//! Stdout and result files never carry progress, so they stay identical across runs.

use std::io::Write;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::{FileResult, ProgressMode, Status, peak_rss_mb};

enum Sink {
    Off,
    Bar(ProgressBar),
    Jsonl,
}

/// Progress of one batch, fed on the calling thread as files finish.
pub(crate) struct Progress {
    sink: Sink,
    total: usize,
    done: usize,
    ok: usize,
    failed: usize,
}

impl Progress {
    /// Starts reporting a batch of `total` files on `workers` workers.
    pub(crate) fn start(mode: ProgressMode, total: usize, workers: usize) -> Self {
        let sink = if mode == ProgressMode::Jsonl {
            emit(&json!({"event": "started", "files": total, "workers": workers}));
            Sink::Jsonl
        } else if mode.shows_bar() {
            let bar =
                ProgressBar::with_draw_target(Some(total as u64), ProgressDrawTarget::stderr());
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
        Progress {
            sink,
            total,
            done: 0,
            ok: 0,
            failed: 0,
        }
    }

    /// Records one finished file.
    pub(crate) fn file<T>(&mut self, result: &FileResult<T>, bpm: Option<f64>) {
        self.done += 1;
        if result.status == Status::Ok {
            self.ok += 1;
        } else {
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
            Sink::Jsonl => emit(&json!({
                "event": "file",
                "index": result.index,
                "path": result.path.to_string_lossy(),
                "status": result.status.as_str(),
                "bpm": bpm.filter(|b| b.is_finite()),
                "error": result.error,
                "elapsed_s": result.elapsed_s,
                "done": self.done,
                "total": self.total,
            })),
        }
    }

    /// Ends the report.
    pub(crate) fn finish(&mut self, cancelled: bool, wall_s: f64) {
        match &self.sink {
            Sink::Off => {}
            Sink::Bar(bar) => bar.finish_and_clear(),
            Sink::Jsonl => emit(&json!({
                "event": "finished",
                "ok": self.ok,
                "failed": self.failed,
                "cancelled": cancelled,
                "wall_s": wall_s,
                "peak_rss_mb": peak_rss_mb(),
            })),
        }
    }
}

/// Writes one JSON line to stderr in a single write, so lines never interleave.
fn emit(value: &serde_json::Value) {
    let mut line = value.to_string();
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}
