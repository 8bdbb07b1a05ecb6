//! What made the rows of a result file: `OUT.settings.json` beside it, written before the
//! first row, so that `--resume` (with or without `--shard`) never mixes rows of other
//! settings into a file. It holds the same identity a shard's fingerprint hashes, less the
//! input list (rows are matched by exact path, so another list is safe): the program's
//! version, the analyzer's settings ([`analyzer_core::AnalyzerConfig::fingerprint`]: tempo
//! range, sampling, model, FFT code) and `--timeout`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use analyzer_core::AnalyzerConfig;
use serde::{Deserialize, Serialize};

use crate::output;
use crate::report::export::{self, Json};

/// The settings of a run that writes rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSettings {
    /// `eval-cli` and its version.
    pub program: String,
    /// The analyzer's fingerprint.
    pub analyzer: String,
    /// The per-file time limit, `none` without one.
    pub timeout: String,
}

impl fmt::Display for RunSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, {}, timeout {}",
            self.program, self.analyzer, self.timeout
        )
    }
}

impl RunSettings {
    /// The settings of a run with `config` and `timeout`.
    pub fn new(config: &AnalyzerConfig, timeout: Option<Duration>) -> Self {
        RunSettings {
            program: concat!("eval-cli ", env!("CARGO_PKG_VERSION")).to_string(),
            analyzer: config.fingerprint(),
            timeout: timeout.map_or("none".to_string(), |t| format!("{t:?}")),
        }
    }

    /// The suffix of the settings file beside a result file.
    pub const SUFFIX: &str = ".settings.json";

    /// Where the settings of the result file `csv` live: `CSV.settings.json`.
    pub fn path_of(csv: &Path) -> PathBuf {
        output::side_path(csv, Self::SUFFIX)
    }

    /// Writes these settings beside `csv`.
    pub fn write(&self, csv: &Path) -> anyhow::Result<()> {
        export::write(&Self::path_of(csv), &Json, self)
    }

    /// The settings beside `csv`, `None` when there are none.
    pub fn read(csv: &Path) -> anyhow::Result<Option<Self>> {
        export::read_json(&Self::path_of(csv), "a settings record")
    }

    /// Checks that the rows already in `csv` (`has_rows`) were made with these settings:
    /// refused when its settings differ, or when it has rows but no settings at all. With
    /// no rows there is nothing to mix, whatever the settings file says. A longer
    /// `--timeout` (or none) is no other settings: the only rows a limit shapes are those
    /// it cut, and a resume analyses those files again; a shorter one would keep rows it
    /// would have cut.
    pub fn check_resume(&self, csv: &Path, shown: &Path, has_rows: bool) -> anyhow::Result<()> {
        if !has_rows {
            return Ok(());
        }
        match Self::read(csv)? {
            Some(old)
                if old.program == self.program
                    && old.analyzer == self.analyzer
                    && old.timeout != self.timeout =>
            {
                match (limit_of(&old.timeout), limit_of(&self.timeout)) {
                    (Some(old_limit), Some(new_limit)) if new_limit >= old_limit => Ok(()),
                    (Some(old_limit), Some(_)) => {
                        let made = if old_limit.is_finite() {
                            format!("a time limit of {}", old.timeout)
                        } else {
                            "no time limit".to_string()
                        };
                        let enough = if old_limit.is_finite() {
                            format!("give --timeout {old_limit} or more, or leave it out")
                        } else {
                            "leave --timeout out".to_string()
                        };
                        anyhow::bail!(
                            "cannot resume {}: its rows were made with {made}, and this run's \
                             is {}, so kept rows could be of files this limit cuts; {enough}, \
                             or run without --resume to start afresh",
                            shown.display(),
                            self.timeout,
                        )
                    }
                    _ => anyhow::bail!(
                        "cannot resume {}: its settings ({}) name the time limit {:?}, which \
                         is not one this program writes; run without --resume to start afresh",
                        shown.display(),
                        Self::path_of(csv).display(),
                        old.timeout,
                    ),
                }
            }
            Some(old) if old == *self => Ok(()),
            Some(old) => anyhow::bail!(
                "cannot resume {}: its rows were made with other settings\n  \
                 its settings ({}): {old}\n  this run's settings: {self}\n\
                 run with the settings of its rows, or without --resume to start afresh",
                shown.display(),
                Self::path_of(csv).display(),
            ),
            None => anyhow::bail!(
                "cannot resume {}: it has rows but no {} to say which settings made them; \
                 run without --resume to start afresh",
                shown.display(),
                Self::path_of(csv).display()
            ),
        }
    }
}

/// The limit a settings record's `timeout` names, in seconds: infinite for `none`, `None`
/// for text that is not `Duration`'s `Debug` form (`5s`, `1.5s`, `250ms`, `10µs`, `7ns`).
fn limit_of(timeout: &str) -> Option<f64> {
    if timeout == "none" {
        return Some(f64::INFINITY);
    }
    let units = [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)];
    units.iter().find_map(|(suffix, scale)| {
        let number = timeout.strip_suffix(suffix)?.parse::<f64>().ok()?;
        Some(number * scale)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_is_refused_for_other_settings_or_none_with_rows() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("out.csv");
        let config = AnalyzerConfig::default();
        let settings = RunSettings::new(&config, None);
        // Nothing there yet: a fresh start.
        settings.check_resume(&csv, &csv, false).unwrap();
        let err = settings.check_resume(&csv, &csv, true).unwrap_err();
        assert!(err.to_string().contains("no "), "{err}");
        settings.write(&csv).unwrap();
        assert_eq!(RunSettings::read(&csv).unwrap(), Some(settings.clone()));
        settings.check_resume(&csv, &csv, true).unwrap();
        let narrow = RunSettings::new(&config.clone().with_bpm_range(60.0, 100.0), None);
        let err = narrow
            .check_resume(&csv, &csv, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&settings.analyzer) && err.contains(&narrow.analyzer),
            "{err}"
        );
        narrow.check_resume(&csv, &csv, false).unwrap();
        // A longer limit, or none, is the same settings; a shorter one is refused.
        let timed = |secs: f64| RunSettings::new(&config, Some(Duration::from_secs_f64(secs)));
        timed(5.0).write(&csv).unwrap();
        for longer in [timed(5.0), timed(7.5), timed(3600.0), settings.clone()] {
            longer.check_resume(&csv, &csv, true).unwrap();
        }
        let err = timed(0.25)
            .check_resume(&csv, &csv, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limit of 5s, and this run's is 250ms") && err.contains("--timeout 5 or"),
            "{err}"
        );
        settings.write(&csv).unwrap();
        let err = timed(5.0)
            .check_resume(&csv, &csv, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no time limit") && err.contains("leave --timeout out"),
            "{err}"
        );
    }

    #[test]
    fn a_settings_timeout_is_read_in_every_unit_duration_writes() {
        for (secs, text) in [(5.0, "5s"), (1.5, "1.5s"), (0.25, "250ms"), (1e-5, "10µs")] {
            let written = format!("{:?}", Duration::from_secs_f64(secs));
            assert_eq!(written, text);
            let read = limit_of(&written).unwrap();
            assert!((read - secs).abs() < 1e-12, "{text}: {read}");
        }
        assert_eq!(limit_of("none"), Some(f64::INFINITY));
        assert_eq!(limit_of("soon"), None);
    }
}
