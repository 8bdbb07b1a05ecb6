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
    /// no rows there is nothing to mix, whatever the settings file says.
    pub fn check_resume(&self, csv: &Path, shown: &Path, has_rows: bool) -> anyhow::Result<()> {
        if !has_rows {
            return Ok(());
        }
        match Self::read(csv)? {
            Some(old) if old != *self => anyhow::bail!(
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
            Some(_) => Ok(()),
        }
    }
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
        let timed = RunSettings::new(&config, Some(Duration::from_secs(5)));
        let err = timed
            .check_resume(&csv, &csv, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("timeout none") && err.contains("timeout 5s"),
            "{err}"
        );
    }
}
