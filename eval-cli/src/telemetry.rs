//! The Prometheus text format (version 0.0.4) of what every front end that analyses files
//! counts the same way (`serve`'s `GET /metrics`, `consume --metrics`): rows by status and
//! failure kind, rows by descriptor, the seconds per file and per stage; and the writer of
//! one counter or gauge. Written by hand: a few counters and histograms need no crate.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// The kind of a failed row: the second part of `STAGE: KIND: why`.
pub fn kind_of(error: &str) -> String {
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

/// The rows a front end made: `tempo_files_total`, `tempo_descriptor_values_total`,
/// `tempo_file_seconds` (by source) and `tempo_stage_seconds`.
#[derive(Debug, Default)]
pub struct RowCounts {
    /// Rows by (status, kind): `ok` rows have the kind `none`.
    rows: BTreeMap<(String, String), u64>,
    /// Wall time per file, by source (`job`, `upload`, `queue`).
    file_seconds: BTreeMap<&'static str, Histogram>,
    /// Time per stage, when the analyzer reports stages.
    stage_seconds: BTreeMap<String, Histogram>,
    /// Rows that carry a value, by descriptor (`tempo`, `key`, `loudness`).
    descriptor_values: BTreeMap<&'static str, u64>,
}

impl RowCounts {
    /// A file of `source` finished with a row.
    pub fn count(&mut self, analysed: &FileOutcome, source: &'static str) {
        let record = &analysed.record;
        let kind = if analysed.failed() {
            kind_of(&record.error)
        } else {
            "none".to_string()
        };
        *self.rows.entry((record.status.clone(), kind)).or_default() += 1;
        for (descriptor, value) in [
            ("tempo", &record.bpm),
            ("key", &record.key),
            ("loudness", &record.replaygain_track_peak),
        ] {
            if !value.is_empty() {
                *self.descriptor_values.entry(descriptor).or_default() += 1;
            }
        }
        self.file_seconds
            .entry(source)
            .or_default()
            .observe(analysed.elapsed_s);
        for (stage, seconds) in &analysed.stages {
            self.stage_seconds
                .entry(stage.clone())
                .or_default()
                .observe(*seconds);
        }
    }

    /// The rows' counters.
    pub fn write_counts(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tempo_files_total Files analysed to a row, by status and failure kind.\n\
             # TYPE tempo_files_total counter"
        );
        for ((status, kind), n) in &self.rows {
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
        for (descriptor, n) in &self.descriptor_values {
            let _ = writeln!(
                out,
                "tempo_descriptor_values_total{{descriptor=\"{descriptor}\"}} {n}"
            );
        }
    }

    /// The rows' time histograms.
    pub fn write_seconds(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "# HELP tempo_file_seconds Wall time per analysed file, by source.\n\
             # TYPE tempo_file_seconds histogram"
        );
        for (source, histogram) in &self.file_seconds {
            histogram.write(out, "tempo_file_seconds", &format!("source=\"{source}\""));
        }
        if !self.stage_seconds.is_empty() {
            let _ = writeln!(
                out,
                "# HELP tempo_stage_seconds Time per pipeline stage.\n\
                 # TYPE tempo_stage_seconds histogram"
            );
            for (stage, histogram) in &self.stage_seconds {
                histogram.write(out, "tempo_stage_seconds", &format!("stage=\"{stage}\""));
            }
        }
    }
}

/// Whether a metric only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    /// Only grows.
    Counter,
    /// Goes up and down.
    Gauge,
}

/// One metric without labels, with its help line.
pub fn write_one(
    out: &mut String,
    kind: Type,
    name: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    let kind = match kind {
        Type::Counter => "counter",
        Type::Gauge => "gauge",
    };
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
    );
}

/// Counters without labels: (name, help, value).
pub fn write_counters(out: &mut String, counters: &[(&str, &str, &AtomicU64)]) {
    for (name, help, value) in counters {
        write_one(
            out,
            Type::Counter,
            name,
            help,
            value.load(Ordering::Relaxed),
        );
    }
}

/// One counter family by one label, with its help line.
pub fn write_by_label<'a>(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: impl IntoIterator<Item = (&'a str, u64)>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, n) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{value}\"}} {n}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_come_from_the_reason() {
        assert_eq!(kind_of("decode: corrupt_stream: bad"), "corrupt_stream");
        assert_eq!(kind_of("panic: index out of bounds"), "panic");
        assert_eq!(kind_of("something else"), "other");
    }
}
