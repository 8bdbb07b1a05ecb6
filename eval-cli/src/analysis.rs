//! The work done on one file, behind one small trait so that it can be wrapped (a result
//! cache, a mock) without the pool or the jobs knowing; shared by the front ends that analyse
//! one file per request (`serve`, `consume`).
//!
//! [`BatchAnalysis`] is exactly what `eval-cli analyze` does to a file: the batch runner on a
//! one-file batch, which gives the same panic isolation, deadline and cancellation, and the
//! same [`AnalyzeRecord`], so a job's CSV has the bytes of `analyze`; it also reports the
//! time of each stage ([`TimedAnalyzer`]).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use analyzer_core::batch::{Batch, FileGate, FileResult, Job, Status, TimedAnalyzer};
use analyzer_core::{Analysis, Analyzer, CompoundBeat, StopSignal};
use serde::Serialize;

use crate::cache::{Analyzed, CachedAnalyzer, Rescan, ResultCache};
use crate::flags::Descriptors;
use crate::record::AnalyzeRecord;

/// One tempo hypothesis of an analysed file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Candidate {
    /// Beats per minute.
    pub bpm: f64,
    /// Probability relative to the winner's (the winner has 1.0).
    pub strength: f64,
}

/// What one file gave.
#[derive(Debug, Clone, PartialEq)]
pub struct FileOutcome {
    /// Its row, as `analyze` writes it.
    pub record: AnalyzeRecord,
    /// The tempo hypotheses, best first; empty when the file failed (or when a wrapper,
    /// such as a cache, does not keep them).
    pub candidates: Vec<Candidate>,
    /// Wall time of the file, seconds (for progress and metrics, never in a row).
    pub elapsed_s: f64,
    /// Seconds per stage (`decode`, `onset`, `tempo`: see
    /// [`analyzer_core::StageTimes`]) when the file was analysed; empty for a failed file.
    pub stages: Vec<(String, f64)>,
    /// Whether the row came from the result cache (`--cache`) instead of an analysis.
    pub from_cache: bool,
}

impl FileOutcome {
    /// Whether the row is a failure (`error` or `timeout`).
    pub fn failed(&self) -> bool {
        self.record.status != Status::Ok.as_str()
    }
}

/// The analysis of one file.
///
/// A result cache is a wrapper: it keys on the file's content and
/// [`Analyzer::fingerprint`], and on a miss calls the [`BatchAnalysis`] it holds.
///
/// For implementations: give the row `analyze` would write for the task's file with its
/// analyzer and timeout; return `None` only when the task's stop signal's cancel flag ended
/// the file (a cancelled file has no row). Never panic.
pub trait FileAnalysis: Send + Sync {
    /// Analyses the task's file, giving up after its timeout or when it is cancelled.
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome>;
}

/// One file for a worker to analyse, and how.
pub struct FileTask<'a> {
    /// The job's analyzer (its tempo range and sampling).
    pub analyzer: &'a Analyzer,
    /// The file.
    pub path: &'a Path,
    /// Cancels the file (its job's flag, or the service's at shutdown).
    pub stop: &'a StopSignal,
    /// The per-file time limit (`--timeout`).
    pub timeout: Option<Duration>,
    /// The gate of the pool the file runs on, so that a file tried again for want of a
    /// descriptor waits for every worker's file ([`FileGate`]); `None`: a gate of its own.
    pub gate: Option<&'a Arc<FileGate>>,
}

/// `job` on the task's file under the runner's per-file guard ([`Batch::run_file`]: panic
/// isolation, deadline, stop signal), as `analyze` runs each file; `None` when cancelled.
fn guarded<J: Job>(job: &J, task: &FileTask<'_>) -> Option<FileResult<J::Output>> {
    let batch = Batch::new(job)
        .timeout(task.timeout)
        .stop(task.stop.clone());
    match task.gate {
        Some(gate) => batch.gate(Arc::clone(gate)),
        None => batch,
    }
    .run_file(0, task.path)
}

/// The batch runner's per-file guard: `eval-cli analyze`'s path.
#[derive(Debug, Clone, Copy, Default)]
pub struct BatchAnalysis;

impl FileAnalysis for BatchAnalysis {
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome> {
        let (analyzer, path) = (task.analyzer, task.path);
        let result = guarded(&TimedAnalyzer(analyzer), task)?;
        let analysis = result.value.as_ref().map(|(analysis, _)| analysis);
        let candidates = analysis.map_or_else(Vec::new, candidates_of);
        Some(FileOutcome {
            record: AnalyzeRecord::new(path, result.status, analysis, result.error.as_deref()),
            candidates,
            elapsed_s: result.elapsed_s,
            stages: result
                .stages
                .iter()
                .map(|(stage, d)| (stage.as_str().to_string(), d.as_secs_f64()))
                .collect(),
            from_cache: false,
        })
    }
}

/// `serve --cache DIR`: the row of a file already analysed with the same bytes and
/// analyzer fingerprint comes from the cache without decoding; others go through the batch
/// runner as in `analyze --cache` (the same [`CachedAnalyzer`] job), so a served row, a
/// cached row and an `analyze` row have the same bytes. Rows analysed through it carry
/// their candidates; stage times are not kept (the cached job reports none).
pub struct CachedAnalysis {
    /// The cache, shared by every worker (it is safe across threads and processes).
    pub cache: Arc<ResultCache>,
    /// How recorded identities are used (`--force`, `--verify`).
    pub rescan: Rescan,
}

impl FileAnalysis for CachedAnalysis {
    fn analyze(&self, task: &FileTask<'_>) -> Option<FileOutcome> {
        let (analyzer, path) = (task.analyzer, task.path);
        let job = CachedAnalyzer::new(analyzer, Some(&*self.cache), analyzer.config())
            .rescan(self.rescan);
        let result = guarded(&job, task);
        // A damaged store was moved aside and replaced while analysing: say so once.
        for warning in self.cache.take_warnings() {
            eprintln!("eval-cli: warning: {warning}");
        }
        for changed in self.cache.take_mismatches() {
            eprintln!(
                "eval-cli: warning: --verify: {} changed while its size, times and inode did \
                 not; analysed anew",
                changed.display()
            );
        }
        let result = result?;
        let record = match &result.value {
            Some(analyzed) => analyzed.record_for(path),
            None => AnalyzeRecord::new(path, result.status, None, result.error.as_deref()),
        };
        let analysis = result.value.as_ref().and_then(|a| a.analysis.as_ref());
        Some(FileOutcome {
            record,
            candidates: analysis.map_or_else(Vec::new, candidates_of),
            elapsed_s: result.elapsed_s,
            stages: Vec::new(),
            from_cache: result.value.as_ref().is_some_and(Analyzed::from_cache),
        })
    }
}

fn candidates_of(analysis: &Analysis) -> Vec<Candidate> {
    let Ok(tempo) = &analysis.tempo else {
        return Vec::new();
    };
    tempo
        .candidates
        .iter()
        .map(|c| Candidate {
            bpm: c.bpm,
            strength: c.strength,
        })
        .collect()
}

/// What one request (a served job, a queued message) may change of its service's
/// analyzer; `None` keeps the service's setting.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestSettings {
    /// Slowest tempo to report.
    pub min_bpm: Option<f64>,
    /// Fastest tempo to report.
    pub max_bpm: Option<f64>,
    /// What is computed.
    pub descriptors: Option<Descriptors>,
    /// Which note of a compound meter is the beat.
    pub compound_beat: Option<CompoundBeat>,
}

impl RequestSettings {
    /// Reads a request's `compound_beat` name, if it gives one.
    pub fn compound_beat_named(name: Option<&str>) -> Result<Option<CompoundBeat>, String> {
        name.map(str::parse).transpose()
    }

    /// The settings as a request spells them (`serve`'s job and upload, `consume`'s
    /// request): the descriptors as a list of names, the compound beat by name. A bad one
    /// is the reason, naming the field; an empty name in the list is named as one (it got
    /// the comma rule's advice). The tempo range is checked by [`analyzer_for`].
    pub fn from_request(
        min_bpm: Option<f64>,
        max_bpm: Option<f64>,
        descriptors: Option<&[String]>,
        compound_beat: Option<&str>,
    ) -> Result<Self, String> {
        let descriptors = match descriptors {
            None => None,
            Some(names) if names.iter().any(|n| n.trim().is_empty()) => {
                return Err(format!(
                    "descriptors: an empty name among {names:?}; name each of tempo, key, \
                     loudness"
                ));
            }
            Some(names) => Some(
                names
                    .join(",")
                    .parse::<Descriptors>()
                    .map_err(|e| format!("descriptors: {e}"))?,
            ),
        };
        let compound_beat =
            Self::compound_beat_named(compound_beat).map_err(|e| format!("compound_beat: {e}"))?;
        Ok(RequestSettings {
            min_bpm,
            max_bpm,
            descriptors,
            compound_beat,
        })
    }
}

/// The analyzer of a request's settings: `default` itself when they are its own (no new
/// analyzer per request), else one built from its settings; a bad range is an error
/// saying why.
pub fn analyzer_for(
    default: &Arc<Analyzer>,
    request: RequestSettings,
) -> Result<Arc<Analyzer>, String> {
    let config = default.config();
    let key = request.descriptors.map_or(config.key, |d| d.key);
    let loudness = request.descriptors.map_or(config.loudness, |d| d.loudness);
    let compound_beat = request.compound_beat.unwrap_or(config.compound_beat);
    if request.min_bpm.is_none()
        && request.max_bpm.is_none()
        && key == config.key
        && loudness == config.loudness
        && compound_beat == config.compound_beat
    {
        return Ok(Arc::clone(default));
    }
    let min = request.min_bpm.unwrap_or(config.min_bpm);
    let max = request.max_bpm.unwrap_or(config.max_bpm);
    if !(min > 0.0 && min < max) {
        // A request's 1e300 came back as 301 digits.
        return Err(format!(
            "invalid tempo range: min_bpm ({}) must be positive and below max_bpm ({})",
            analyzer_core::shown_number(min),
            analyzer_core::shown_number(max)
        ));
    }
    Analyzer::new(
        config
            .clone()
            .with_bpm_range(min, max)
            .with_key(key)
            .with_loudness(loudness)
            .with_compound_beat(compound_beat),
    )
    .map(Arc::new)
    .map_err(|e| format!("invalid tempo range: {}", e.reason()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bad range is named with its numbers, a huge one in exponent form (1e300 came
    /// back as 301 digits).
    #[test]
    fn a_bad_requested_range_is_named_briefly() {
        let default = Arc::new(Analyzer::new(analyzer_core::AnalyzerConfig::default()).unwrap());
        let err = analyzer_for(
            &default,
            RequestSettings {
                min_bpm: Some(1e300),
                ..RequestSettings::default()
            },
        )
        .unwrap_err();
        assert!(err.contains("min_bpm (1e300)"), "{err}");
        assert!(err.len() < 120, "{err}");
    }
}
