//! What `GET /metrics` reports, counted as it happens and written in the Prometheus text
//! format (version 0.0.4) by hand: a few counters, gauges and one histogram do not need a
//! crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};

use crate::analysis::FileOutcome;

/// Upper bounds (seconds) of the per-file time histogram's buckets.
const SECONDS_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// A cumulative histogram of seconds.
#[derive(Debug, Default)]
struct Histogram {
    /// Observations per bucket of [`SECONDS_BUCKETS`], then the overflow (+Inf) bucket.
    counts: [u64; SECONDS_BUCKETS.len() + 1],
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let bucket = SECONDS_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(SECONDS_BUCKETS.len());
        self.counts[bucket] += 1;
        self.sum += seconds;
    }

    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count;
            let le = SECONDS_BUCKETS
                .get(i)
                .map_or("+Inf".to_string(), |b| b.to_string());
            let sep = if labels.is_empty() { "" } else { "," };
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {cumulative}"
            );
        }
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{braces} {}", self.sum);
        let _ = writeln!(out, "{name}_count{braces} {cumulative}");
    }
}

#[derive(Debug, Default)]
struct Tables {
    /// Rows by (status, kind): `ok` rows have the kind `none`.
    rows: BTreeMap<(String, String), u64>,
    /// Wall time per file, by source (`job` or `upload`).
    file_seconds: BTreeMap<&'static str, Histogram>,
    /// Time per stage, when the analyzer reports stages.
    stage_seconds: BTreeMap<String, Histogram>,
    /// Rows that carry a value, by descriptor (`tempo`, `key`, `loudness`).
    descriptor_values: BTreeMap<&'static str, u64>,
}

/// The service's counters.
#[derive(Debug, Default)]
pub struct Telemetry {
    tables: Mutex<Tables>,
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

/// The kind of a failed row: the second part of `STAGE: KIND: why`.
fn kind_of(error: &str) -> String {
    if error.starts_with("panic:") {
        return "panic".to_string();
    }
    let mut parts = error.splitn(3, ": ");
    match (parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(kind), Some(_))
            if !kind.is_empty() && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') =>
        {
            kind.to_string()
        }
        _ => "other".to_string(),
    }
}

impl Telemetry {
    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A file of a job (`upload == false`) or an upload finished with a row.
    pub fn file_finished(&self, analysed: &FileOutcome, upload: bool) {
        let record = &analysed.record;
        let kind = if analysed.failed() {
            kind_of(&record.error)
        } else {
            "none".to_string()
        };
        if analysed.from_cache {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
        }
        let mut tables = self.tables();
        *tables
            .rows
            .entry((record.status.clone(), kind))
            .or_default() += 1;
        for (descriptor, value) in [
            ("tempo", &record.bpm),
            ("key", &record.key),
            ("loudness", &record.replaygain_track_peak),
        ] {
            if !value.is_empty() {
                *tables.descriptor_values.entry(descriptor).or_default() += 1;
            }
        }
        tables
            .file_seconds
            .entry(if upload { "upload" } else { "job" })
            .or_default()
            .observe(analysed.elapsed_s);
        for (stage, seconds) in &analysed.stages {
            tables
                .stage_seconds
                .entry(stage.clone())
                .or_default()
                .observe(*seconds);
        }
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
        let tables = self.tables();
        let _ = writeln!(
            out,
            "# HELP tempo_files_total Files analysed to a row, by status and failure kind.\n\
             # TYPE tempo_files_total counter"
        );
        for ((status, kind), n) in &tables.rows {
            let _ = writeln!(
                out,
                "tempo_files_total{{status=\"{status}\",kind=\"{kind}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tempo_descriptor_values_total Rows that carry a value, by descriptor \
             (a key-less or key-free row carries a tempo only).\n\
             # TYPE tempo_descriptor_values_total counter"
        );
        for (descriptor, n) in &tables.descriptor_values {
            let _ = writeln!(
                out,
                "tempo_descriptor_values_total{{descriptor=\"{descriptor}\"}} {n}"
            );
        }
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
        for (name, help, value) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                value.load(Ordering::Relaxed)
            );
        }
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
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP tempo_file_seconds Wall time per analysed file, by source.\n\
             # TYPE tempo_file_seconds histogram"
        );
        for (source, histogram) in &tables.file_seconds {
            histogram.write(
                &mut out,
                "tempo_file_seconds",
                &format!("source=\"{source}\""),
            );
        }
        if !tables.stage_seconds.is_empty() {
            let _ = writeln!(
                out,
                "# HELP tempo_stage_seconds Time per pipeline stage.\n\
                 # TYPE tempo_stage_seconds histogram"
            );
            for (stage, histogram) in &tables.stage_seconds {
                histogram.write(
                    &mut out,
                    "tempo_stage_seconds",
                    &format!("stage=\"{stage}\""),
                );
            }
        }
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

    #[test]
    fn kinds_come_from_the_reason() {
        assert_eq!(kind_of("decode: corrupt_stream: bad"), "corrupt_stream");
        assert_eq!(kind_of("panic: index out of bounds"), "panic");
        assert_eq!(kind_of("something else"), "other");
    }
}
