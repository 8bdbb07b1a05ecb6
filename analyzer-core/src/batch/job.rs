//! What a batch runs on each file: the tempo [`Analyzer`], a closure, or any other
//! per-file analysis, behind one small trait.

use std::path::Path;
use std::time::Duration;

use crate::analyzer::{Analysis, Analyzer, StageTimes};
use crate::error::{Error, Stage};
use crate::stop::StopSignal;

/// One analysis of one file, shared read-only by every worker of a batch.
///
/// A failure is an [`Error`]: its kind gives the file's status (`TimedOut` a timeout,
/// `Cancelled` a file the batch's stop signal stopped, which is dropped, but an error when
/// the batch was not stopped; anything else an error) and
/// [`Error::reason`] its error text.
///
/// For implementations:
/// - ask `stop` between units of work (packets, stages) and return its error at once, so
///   that cancellation and deadlines take effect within one unit;
/// - give the same output for the same file on any thread of any run: the batch's
///   byte-identity across worker counts rests on it;
/// - a panic is caught and becomes a failed result (`panic: message`), but it is a bug:
///   return an error instead;
/// - [`Job::cost_hint`] must be cheap next to [`Job::run`] (read headers, not audio) and
///   may be called on any worker before the batch starts.
pub trait Job: Sync {
    /// What a successful run gives.
    type Output: Send;

    /// Analyses the file at `path`.
    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Self::Output, Error>;

    /// The estimated cost of `path` in any unit that is the same for every file of a
    /// batch, for the costliest-first schedule; `None` (the default) when unknown, which
    /// schedules the file last.
    fn cost_hint(&self, path: &Path) -> Option<f64> {
        let _ = path;
        None
    }

    /// The failure an output stands for although the run gave it: a file whose main
    /// reading is missing while others stand (no pulse, but a key and a loudness). The
    /// batch reports the file with that error's status and reason, and keeps the output
    /// as the file's value. `None` (the default): every output is a success.
    fn failure(&self, output: &Self::Output) -> Option<Error> {
        let _ = output;
        None
    }

    /// Time spent in each stage of a run that gave `output`, for observers; empty (the
    /// default) when the job does not measure it.
    fn stage_timings(&self, output: &Self::Output) -> Vec<(Stage, Duration)> {
        let _ = output;
        Vec::new()
    }
}

/// The tempo analysis of a file, scheduled by its announced length ([`audio_cost`]).
impl Job for Analyzer {
    type Output = Analysis;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analysis, Error> {
        self.analyze_file(path, stop)
    }

    /// A file without a tempo fails, with its key and loudness kept.
    fn failure(&self, output: &Analysis) -> Option<Error> {
        output.tempo.as_ref().err().cloned()
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        Some(audio_cost(path))
    }
}

/// The tempo analysis that also reports its stage times ([`Job::stage_timings`]): the
/// same value as the [`Analyzer`] job, with [`StageTimes`] beside it.
#[derive(Debug, Clone, Copy)]
pub struct TimedAnalyzer<'a>(pub &'a Analyzer);

impl Job for TimedAnalyzer<'_> {
    type Output = (Analysis, StageTimes);

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Self::Output, Error> {
        self.0.analyze_file_timed(path, stop)
    }

    fn failure(&self, output: &Self::Output) -> Option<Error> {
        self.0.failure(&output.0)
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        Some(audio_cost(path))
    }

    fn stage_timings(&self, output: &Self::Output) -> Vec<(Stage, Duration)> {
        output.1.by_stage()
    }
}

/// Any `Fn(&Path, &StopSignal) -> Result<T, Error>` is a job, without a cost hint.
impl<T, F> Job for F
where
    T: Send,
    F: Fn(&Path, &StopSignal) -> Result<T, Error> + Sync,
{
    type Output = T;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<T, Error> {
        self(path, stop)
    }
}

/// CPU cost of a second of compressed audio (MP3, FLAC, Vorbis, AAC) relative to a second
/// of PCM, decode and analysis together. `bash ci/cpu-vs-aubio.sh` on one 4-minute 44.1 kHz
/// stereo track in each format: WAV 0.163 s, every compressed format 0.31-0.32 s.
pub(crate) const COMPRESSED_COST: f64 = 1.9;
/// Bytes per second assumed when the headers give no length: 128 kbit/s for a compressed
/// stream (an MP3 without a Xing header, say), CD audio for anything else.
const FALLBACK_COMPRESSED_BYTES_PER_S: f64 = 16_000.0;
const FALLBACK_PCM_BYTES_PER_S: f64 = 176_400.0;

/// The estimated cost of decoding and analysing `path`, in PCM-audio-seconds: the length
/// its headers announce, weighted by how dear its codec is to decode. File size would
/// mislead (a FLAC is smaller than its WAV but slower). A file that cannot be probed is
/// about to fail fast and costs nothing.
pub fn audio_cost(path: &Path) -> f64 {
    let Ok(info) = crate::decode::probe(path) else {
        return 0.0;
    };
    let pcm = info.codec.starts_with("pcm");
    let duration_s = info.duration_s.unwrap_or_else(|| {
        let bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) as f64;
        bytes
            / if pcm {
                FALLBACK_PCM_BYTES_PER_S
            } else {
                FALLBACK_COMPRESSED_BYTES_PER_S
            }
    });
    duration_s * if pcm { 1.0 } else { COMPRESSED_COST }
}
