//! The report model: what `evaluate` and `compare` measured, as the pages, tables and
//! JSON files read it. Commands fill it; nothing here knows a command.

use serde::{Deserialize, Serialize};

use super::{Host, Row};
use crate::metrics::Latency;

/// The outcome of one batch over a dataset.
pub struct Outcome {
    /// One row per dataset item, in dataset order.
    pub rows: Vec<Row>,
    /// Wall-clock seconds of the batch.
    pub wall_s: f64,
    /// Worker threads used.
    pub workers: usize,
    /// Whether the batch was cancelled.
    pub cancelled: bool,
}

/// One worker count in `compare.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkerRun {
    /// Worker threads.
    pub workers: usize,
    /// Wall seconds of every measured repeat, in the order run.
    pub wall_s: Vec<f64>,
    /// Median of `wall_s`.
    pub wall_s_median: f64,
    /// Median wall time at 1 worker divided by this median.
    pub speedup: f64,
    /// `speedup / min(workers, cores)`: 1 is perfect use of the cores it could use.
    pub efficiency: f64,
    /// Whether every repeat's results.csv is byte-identical to the first 1-worker run.
    pub identical: bool,
    /// Highest peak RSS (VmHWM) of this worker count's child processes, MiB.
    pub peak_rss_mb: Option<f64>,
    /// Files per second at the median wall time.
    pub files_per_s: f64,
    /// Audio seconds per wall second at the median wall time.
    pub realtime_factor: f64,
    /// Per-file latency over all repeats (HDR histogram), ms.
    pub latency_ms: Latency,
    /// Cores other processes used on average during this count's runs (on the cores this
    /// process may use); absent where `/proc` cannot tell, and in reports written before it
    /// was measured.
    #[serde(default)]
    pub other_cores: Option<f64>,
    /// Cores the hypervisor withheld on average (steal time) during them.
    #[serde(default)]
    pub steal_cores: Option<f64>,
    /// 1-minute load average before this count's first run.
    #[serde(default)]
    pub load_before: Option<f64>,
    /// 1-minute load average after its last run.
    #[serde(default)]
    pub load_after: Option<f64>,
    /// (slowest - fastest) / median of the repeats' wall times.
    #[serde(default)]
    pub spread: f64,
}

#[cfg(test)]
impl WorkerRun {
    /// A run at `workers` with `speedup`, three repeats of 1 s, nothing else measured.
    pub fn at(workers: usize, speedup: f64) -> WorkerRun {
        WorkerRun {
            workers,
            wall_s: vec![1.0; 3],
            wall_s_median: 1.0,
            speedup,
            efficiency: 1.0,
            identical: true,
            peak_rss_mb: None,
            files_per_s: 1.0,
            realtime_factor: 1.0,
            latency_ms: crate::metrics::latency_ms(&[]),
            other_cores: None,
            steal_cores: None,
            load_before: None,
            load_after: None,
            spread: 0.0,
        }
    }
}

/// Scaling model fitted to the measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scaling {
    /// The worker count used: the largest measured `p <= cores` with `p > 1`.
    pub p: usize,
    /// Its measured median speedup.
    pub speedup: f64,
    /// Karp-Flatt serial fraction `e = (1/S - 1/p) / (1 - 1/p)`.
    pub serial_fraction: f64,
    /// Amdahl projection for 8 cores, `1 / (e + (1 - e) / 8)`.
    pub projected_speedup_8: f64,
    /// The target range for 8 cores, `[low, high]`.
    pub target_8: [f64; 2],
    /// Whether the projection reaches the low end of the target.
    pub meets_target: bool,
}

/// `compare.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CompareReport {
    /// The dataset, as named on the command line.
    pub dataset: String,
    /// Available parallelism of this machine.
    pub cores: usize,
    /// Files in the dataset.
    pub files: usize,
    /// Seconds of audio in the dataset (as decoded at 1 worker).
    pub audio_s: f64,
    /// Measured repeats per worker count.
    pub repeat: usize,
    /// Unmeasured warm-up runs.
    pub warmup: usize,
    /// The schedule used (`longest` or `input`).
    pub schedule: String,
    /// One entry per worker count, ascending.
    pub runs: Vec<WorkerRun>,
    /// Karp-Flatt fit and 8-core projection; absent when no `1 < p <= cores` was measured.
    pub scaling: Option<Scaling>,
    /// Plain-language caveats and conclusions.
    pub notes: Vec<String>,
    /// How peak RSS was measured.
    pub peak_rss_method: String,
    /// The machine.
    pub host: Host,
    /// The exact command line.
    pub command: String,
}
