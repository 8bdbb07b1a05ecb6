//! The flags of the `dist` commands, as clap reads them (checked here, used by the command
//! files).

use std::path::PathBuf;
use std::time::Duration;

use crate::flags;

/// How long a slot waits for a new entry before it looks again at the job (default of the
/// hidden `--read-block-ms`). A slot that sees the job complete wakes the others of its
/// process at once, so this is only the delay seen by other machines' idle slots.
pub(super) const READ_BLOCK_MS: u64 = 500;

/// The broker and job every `dist` command names.
#[derive(Debug, clap::Args)]
pub struct JobArgs {
    /// The Redis holding the job, `redis://HOST:PORT`.
    #[arg(long, value_name = "URL")]
    pub(super) broker: String,
    /// The job's name: letters, digits, `.`, `_` and `-`, at most 100 (it is part of the
    /// broker's key names).
    #[arg(long, value_name = "NAME", value_parser = parse_job_name)]
    pub(super) job: String,
}

/// The `--job` value parser: a name that cannot reach into another job's keys.
fn parse_job_name(s: &str) -> Result<String, String> {
    let fits = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if s.is_empty() || s.len() > 100 || !s.chars().all(fits) {
        return Err("must be 1 to 100 letters, digits, '.', '_' or '-'".to_string());
    }
    Ok(s.to_string())
}

/// Flags of `eval-cli dist submit`.
#[derive(Debug, clap::Args)]
pub struct SubmitArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    /// The analyzer settings; a job's workers must use the ones it was submitted with.
    #[command(flatten)]
    pub(super) settings: flags::AnalyzerArgs,
    /// Audio files and folders, walked and sorted as `analyze` does.
    #[arg(required = true, value_name = "PATH")]
    pub(super) paths: Vec<PathBuf>,
}

/// The analyzer flags of `dist work`: none given takes the job's settings from its
/// manifest; any given must describe the job's settings, or the worker refuses the job.
#[derive(Debug, clap::Args)]
pub struct WorkerAnalyzerArgs {
    /// Slowest tempo to report [default: the job's].
    #[arg(long, value_name = "BPM")]
    pub(super) min_bpm: Option<f64>,
    /// Fastest tempo to report [default: the job's].
    #[arg(long, value_name = "BPM")]
    pub(super) max_bpm: Option<f64>,
    /// Which part of a long file is decoded [default: the job's].
    #[command(flatten)]
    pub(super) sampling: flags::SamplingArgs,
}

impl WorkerAnalyzerArgs {
    /// Whether any analyzer flag was given.
    pub(super) fn given(&self) -> bool {
        let s = &self.sampling;
        self.min_bpm.is_some()
            || self.max_bpm.is_some()
            || s.analysis_seconds.is_some()
            || s.segments.is_some()
            || s.full
            || s.descriptors.is_some()
            || s.compound_beat.is_some()
    }

    /// The analyzer these flags describe, the defaults filling what is not given.
    pub(super) fn analyzer(&self) -> anyhow::Result<analyzer_core::Analyzer> {
        let defaults = analyzer_core::AnalyzerConfig::default();
        flags::analyzer(
            self.min_bpm.unwrap_or(defaults.min_bpm),
            self.max_bpm.unwrap_or(defaults.max_bpm),
            &self.sampling,
        )
    }
}

/// Flags of `eval-cli dist work`.
#[derive(Debug, clap::Args)]
pub struct WorkArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    /// The analyzer settings: the job's when none is given; a worker given others refuses
    /// the job.
    #[command(flatten)]
    pub(super) settings: WorkerAnalyzerArgs,
    /// Files analysed at once on this machine, one per slot [default: one per core, fewer
    /// if memory is short].
    #[arg(long, value_name = "N", value_parser = flags::parse_workers)]
    pub(super) workers: Option<usize>,
    /// Take over a file whose worker has not shown a sign of life for SECS seconds (at least
    /// 1: a live worker's heartbeat must land well within it).
    #[arg(long, value_name = "SECS", default_value = "30", value_parser = parse_reclaim_after)]
    pub(super) reclaim_after: Duration,
    /// Keep waiting for work when the job is complete, until Ctrl-C.
    #[arg(long)]
    pub(super) follow: bool,
    #[command(flatten)]
    pub(super) retry: RetryArgs,
    /// The submitter's folder FROM is TO on this machine (repeatable; the first match wins).
    /// Files are read from TO; rows keep the submitted path.
    #[arg(long, value_name = "FROM=TO", value_parser = parse_path_map)]
    pub(super) path_map: Vec<PathMap>,
    /// One JSON object per line on stderr as entries are claimed, kept alive, stored, and
    /// when the broker is lost and found again (for logs and tests).
    #[arg(long)]
    pub(super) events: bool,
    /// Serve `GET /metrics` (Prometheus text) on ADDR, e.g. `127.0.0.1:9464`; port 0 takes
    /// a free one, said on stderr (and in the `metrics` event).
    #[arg(long, value_name = "ADDR")]
    pub(super) metrics: Option<std::net::SocketAddr>,
    /// Milliseconds an idle slot waits for a new entry before it looks at the job again
    /// (for tests: a long wait shows that completion does not wait for it).
    #[arg(long, hide = true, value_name = "MS", default_value_t = READ_BLOCK_MS,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub(super) read_block_ms: u64,
    /// Internal, for tests: a file whose name starts with `gate` holds its slot until
    /// `NAME.open` appears beside it (gate.rs).
    #[arg(long, hide = true)]
    pub(super) test_gates: bool,
}

/// How long `work`, `status` and `merge` wait for a broker that went away.
#[derive(Debug, clap::Args)]
pub struct RetryArgs {
    /// When the broker goes away (a restart, the network), keep reconnecting for SECS
    /// seconds before giving up; a worker stores the file in hand once it is back.
    #[arg(long, value_name = "SECS", default_value = "60", value_parser = flags::parse_timeout)]
    pub(super) broker_retry: Duration,
}

/// Flags of `eval-cli dist status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    #[command(flatten)]
    pub(super) retry: RetryArgs,
    /// One JSON object on stdout, for scripts.
    #[arg(long)]
    pub(super) json: bool,
}

/// Flags of `eval-cli dist merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    #[command(flatten)]
    pub(super) job: JobArgs,
    #[command(flatten)]
    pub(super) retry: RetryArgs,
    /// The CSV to write (atomically, once the job is complete).
    #[arg(long, value_name = "FILE")]
    pub(super) out: PathBuf,
    /// Fail at once when the job is not complete, instead of waiting.
    #[arg(long)]
    pub(super) no_wait: bool,
}

/// `--path-map FROM=TO`: the submitter's folder FROM is TO on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    pub(super) from: PathBuf,
    pub(super) to: PathBuf,
}

pub(super) fn parse_path_map(s: &str) -> Result<PathMap, String> {
    match s.split_once('=') {
        Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok(PathMap {
            from: PathBuf::from(from),
            to: PathBuf::from(to),
        }),
        _ => Err(format!("expected FROM=TO, two non-empty paths (got {s:?})")),
    }
}

/// The shortest `--reclaim-after`: a slot's heartbeat comes every third of it (but not more
/// often than every 50 ms), and a busy broker or machine delays one by some tens of
/// milliseconds; below a second, live workers took each other's files and the fourth
/// claim wrote a "worker died" row for a healthy file.
const MIN_RECLAIM_AFTER: Duration = Duration::from_secs(1);

fn parse_reclaim_after(s: &str) -> Result<Duration, String> {
    let after = flags::parse_timeout(s)?;
    if after < MIN_RECLAIM_AFTER {
        return Err(format!(
            "must be at least {} s: a live worker's heartbeat could miss a shorter one",
            MIN_RECLAIM_AFTER.as_secs()
        ));
    }
    Ok(after)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reclaim_after_is_at_least_a_second() {
        assert_eq!(parse_reclaim_after("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_reclaim_after("30"), Ok(Duration::from_secs(30)));
        for short in ["0.001", "0.5", "0", "nan", "-1"] {
            assert!(parse_reclaim_after(short).is_err(), "{short}");
        }
    }

    #[test]
    fn job_names_stay_inside_their_keys() {
        for good in ["j", "lib1", "music-2026.12_a"] {
            assert_eq!(parse_job_name(good).as_deref(), Ok(good));
        }
        for bad in ["", "a:run:b", "a b", "a/b", "é", &"x".repeat(101)] {
            assert!(parse_job_name(bad).is_err(), "{bad:?}");
        }
    }
}
