//! The flags that `analyze`, `evaluate` and `compare` share, checked in one place and by
//! one rule each, so that a value means the same thing in every command:
//!
//! - `--timeout SECS`: a positive, finite number of seconds ([`parse_timeout`]); `0`,
//!   negative numbers, `nan` and `inf` are usage errors (exit status 2). Leave the flag
//!   out for no limit.
//! - `--workers N`: a whole number of at least 1 ([`parse_workers`]; `compare` takes a
//!   comma-separated list of them); `0` is a usage error. A count that looks unwise is kept
//!   or lowered with a warning ([`resolve_workers`]); without the flag, the machine's
//!   [`batch::default_workers`].
//! - `--shard K/N` (`analyze`): the K-th of N parts, `1 <= K <= N` ([`parse_shard`]).
//! - `--min-bpm`/`--max-bpm`: the analyzer's tempo range ([`analyzer`]), refused when it
//!   is empty or not positive.

use std::time::Duration;

use analyzer_core::batch;
use analyzer_core::{Analyzer, AnalyzerConfig};

use crate::runner;
use crate::shard::Shard;

/// The `--workers` value parser: a whole number of at least 1.
pub fn parse_workers(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1 (0 workers would never finish)".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(format!("not a whole number ({e})")),
    }
}

/// The `--shard K/N` value parser: whole numbers with `1 <= K <= N`.
pub fn parse_shard(s: &str) -> Result<Shard, String> {
    let (k, n) = s
        .split_once('/')
        .ok_or_else(|| "not K/N (the K-th of N parts, e.g. 2/8)".to_string())?;
    let parse = |v: &str| {
        v.trim()
            .parse::<usize>()
            .map_err(|e| format!("{v:?} is not a whole number ({e})"))
    };
    let (index, count) = (parse(k)?, parse(n)?);
    if count == 0 || index == 0 || index > count {
        return Err(format!(
            "K must be from 1 to N, and N at least 1 (got {index}/{count})"
        ));
    }
    Ok(Shard { index, count })
}

/// The `--timeout` value parser: a positive, finite number of seconds.
pub fn parse_timeout(s: &str) -> Result<Duration, String> {
    let secs: f64 = s.parse().map_err(|e| format!("not a number ({e})"))?;
    if secs.is_nan() || secs <= 0.0 || secs.is_infinite() {
        return Err("must be a positive number of seconds".to_string());
    }
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}

/// The worker count a run uses: the one asked for, checked against the host (a warning on
/// stderr when it was lowered or looks unwise), or the default for this machine.
pub fn resolve_workers(requested: Option<usize>) -> usize {
    match requested {
        Some(requested) => {
            let (workers, warning) = runner::validate_workers(requested);
            if let Some(warning) = warning {
                eprintln!("eval-cli: warning: {warning}");
            }
            workers
        }
        None => batch::default_workers(),
    }
}

/// The analyzer for the tempo range `min_bpm..=max_bpm`.
pub fn analyzer(min_bpm: f64, max_bpm: f64) -> anyhow::Result<Analyzer> {
    Analyzer::new(AnalyzerConfig::default().with_bpm_range(min_bpm, max_bpm))
        .map_err(|e| anyhow::anyhow!("invalid tempo range: {}", e.reason()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_checked() {
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("-1").is_err());
        assert_eq!(parse_workers("3"), Ok(3));
        assert!(parse_timeout("0").is_err());
        assert!(parse_timeout("-1").is_err());
        assert!(parse_timeout("nan").is_err());
        assert!(parse_timeout("inf").is_err());
        assert_eq!(parse_timeout("0.5"), Ok(Duration::from_millis(500)));
        for bad in ["0/2", "3/2", "x", "1/0", "1/", "/2", "-1/2", "1/2/3"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_shard("2/3"), Ok(Shard { index: 2, count: 3 }));
    }

    #[test]
    fn an_empty_tempo_range_is_refused() {
        assert!(analyzer(50.0, 220.0).is_ok());
        let err = analyzer(200.0, 100.0).unwrap_err().to_string();
        assert!(err.starts_with("invalid tempo range: "), "{err}");
    }
}
