//! What `GET /metrics` reports, counted as it happens and written in the Prometheus text
//! format: the rows as every front end counts them ([`crate::telemetry::RowCounts`]), and
//! the service's own uploads, jobs, queue and connections.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::analysis::FileOutcome;
use crate::telemetry::{RowCounts, Type, write_counters, write_one};

/// The service's counters.
#[derive(Debug, Default)]
pub struct Telemetry {
    rows: Mutex<RowCounts>,
    uploads: AtomicU64,
    uploads_rejected: AtomicU64,
    jobs_submitted: AtomicU64,
    jobs_rejected: AtomicU64,
    files_cancelled: AtomicU64,
    cache_hits: AtomicU64,
}

/// Gauges read when the page is written.
#[derive(Debug, Clone, Copy, Default)]
pub struct Gauges {
    /// Files waiting in the scheduler, all lanes.
    pub queued: usize,
    /// Files being analysed.
    pub running: usize,
    /// Worker threads of the pool.
    pub workers: usize,
    /// Jobs queued or running.
    pub active_jobs: usize,
    /// Jobs known (final ones included).
    pub jobs: usize,
    /// HTTP connections open.
    pub connections: usize,
}

impl Telemetry {
    fn rows(&self) -> std::sync::MutexGuard<'_, RowCounts> {
        self.rows.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A file of a job (`upload == false`) or an upload finished with a row.
    pub fn file_finished(&self, analysed: &FileOutcome, upload: bool) {
        if analysed.from_cache {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        let source = if upload { "upload" } else { "job" };
        self.rows().count(analysed, source);
    }

    /// A running file stopped without a row (cancel or shutdown).
    pub fn file_cancelled(&self) {
        self.files_cancelled.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload was accepted.
    pub fn upload(&self) {
        self.uploads.fetch_add(1, Ordering::Relaxed);
    }

    /// An upload was refused (too big, shutting down).
    pub fn upload_rejected(&self) {
        self.uploads_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// A job was accepted.
    pub fn job_submitted(&self) {
        self.jobs_submitted.fetch_add(1, Ordering::Relaxed);
    }

    /// A job was refused for the limits (429).
    pub fn job_rejected(&self) {
        self.jobs_rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// The page of `GET /metrics`.
    pub fn render(&self, gauges: Gauges) -> String {
        let mut out = String::new();
        let rows = self.rows();
        rows.write_counts(&mut out);
        let counters = [
            (
                "tempo_files_cancelled_total",
                "Running files stopped without a row (cancel, shutdown).",
                &self.files_cancelled,
            ),
            (
                "tempo_cache_hits_total",
                "Rows served from the result cache (--cache) without decoding.",
                &self.cache_hits,
            ),
            (
                "tempo_uploads_total",
                "Uploads accepted by POST /v1/analyze.",
                &self.uploads,
            ),
            (
                "tempo_uploads_rejected_total",
                "Uploads refused (too big, shutting down).",
                &self.uploads_rejected,
            ),
            (
                "tempo_jobs_submitted_total",
                "Jobs accepted by POST /v1/jobs.",
                &self.jobs_submitted,
            ),
            (
                "tempo_jobs_rejected_total",
                "Jobs refused with 429 for the limits.",
                &self.jobs_rejected,
            ),
        ];
        write_counters(&mut out, &counters);
        let gauges = [
            (
                "tempo_queue_depth",
                "Files waiting for a worker.",
                gauges.queued,
            ),
            (
                "tempo_files_running",
                "Files being analysed.",
                gauges.running,
            ),
            (
                "tempo_workers",
                "Worker threads of the shared pool.",
                gauges.workers,
            ),
            (
                "tempo_jobs_active",
                "Jobs queued or running.",
                gauges.active_jobs,
            ),
            (
                "tempo_jobs",
                "Jobs known, final ones included.",
                gauges.jobs,
            ),
            (
                "tempo_http_connections",
                "HTTP connections open (at most --max-connections).",
                gauges.connections,
            ),
        ];
        for (name, help, value) in gauges {
            write_one(&mut out, Type::Gauge, name, help, value);
        }
        rows.write_seconds(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AnalyzeRecord;

    fn analysed(status: &str, error: &str, elapsed_s: f64) -> FileOutcome {
        FileOutcome {
            record: AnalyzeRecord {
                status: status.into(),
                error: error.into(),
                ..AnalyzeRecord::default()
            },
            candidates: Vec::new(),
            elapsed_s,
            stages: Vec::new(),
            from_cache: false,
        }
    }

    #[test]
    fn failures_are_counted_by_kind_and_times_in_cumulative_buckets() {
        let t = Telemetry::default();
        t.file_finished(&analysed("ok", "", 0.2), false);
        t.file_finished(
            &analysed("error", "probe: unsupported_format: no track", 0.02),
            true,
        );
        t.file_finished(
            &analysed(
                "timeout",
                "decode: timed_out: the per-file time limit passed",
                70.0,
            ),
            false,
        );
        let page = t.render(Gauges {
            queued: 3,
            ..Gauges::default()
        });
        for line in [
            "tempo_files_total{status=\"ok\",kind=\"none\"} 1",
            "tempo_files_total{status=\"error\",kind=\"unsupported_format\"} 1",
            "tempo_files_total{status=\"timeout\",kind=\"timed_out\"} 1",
            "tempo_queue_depth 3",
            "tempo_file_seconds_bucket{source=\"job\",le=\"0.1\"} 0",
            "tempo_file_seconds_bucket{source=\"job\",le=\"0.25\"} 1",
            "tempo_file_seconds_bucket{source=\"job\",le=\"60\"} 1",
            "tempo_file_seconds_bucket{source=\"job\",le=\"+Inf\"} 2",
            "tempo_file_seconds_count{source=\"job\"} 2",
            "tempo_file_seconds_bucket{source=\"upload\",le=\"0.025\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
        }
    }

    #[test]
    fn rows_are_counted_by_the_descriptors_they_carry() {
        let t = Telemetry::default();
        let row = |bpm: &str, key: &str, peak: &str| {
            let mut outcome = analysed("ok", "", 0.1);
            (outcome.record.bpm, outcome.record.key) = (bpm.into(), key.into());
            outcome.record.replaygain_track_peak = peak.into();
            outcome
        };
        t.file_finished(&row("120.000", "A minor", "0.501187"), false);
        t.file_finished(&row("98.000", "", ""), false);
        t.file_finished(&analysed("error", "tempo: no_pulse: flat", 0.1), false);
        let page = t.render(Gauges::default());
        for line in [
            "tempo_descriptor_values_total{descriptor=\"key\"} 1",
            "tempo_descriptor_values_total{descriptor=\"loudness\"} 1",
            "tempo_descriptor_values_total{descriptor=\"tempo\"} 2",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
        }
    }
}
