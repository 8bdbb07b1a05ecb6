//! The whole pipeline in one object: decode → mono → resample → onset envelope → tempo.
//!
//! An [`Analyzer`] is planned once (FFT plans, window, tempo grid) and is `Sync`: a batch
//! runner shares one across all its workers, and each call keeps its own scratch buffers.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::decode::{StreamInfo, decode_mono, mix_to_mono};
use crate::error::{Error, ErrorKind, Result, Stage, panic_message};
use crate::onset::{OnsetDetector, OnsetEnvelope};
use crate::resample::MonoResampler;
use crate::stop::StopSignal;
use crate::tempo::{TempoEstimate, TempoEstimator};

/// Settings of an [`Analyzer`]. Each field's doc gives its default.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerConfig {
    /// Slowest tempo reported, in BPM. Default 50.
    pub min_bpm: f64,
    /// Fastest tempo reported, in BPM. Default 220.
    pub max_bpm: f64,
    /// Sample rate the onset stage runs at, in Hz. Default 11025: onsets need no more.
    pub analysis_rate: u32,
    /// STFT frame length in samples at the analysis rate. Default 1024 (93 ms).
    pub frame_size: usize,
    /// STFT hop in samples at the analysis rate. Default 128 (11.6 ms, 86 frames/s).
    pub hop: usize,
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            min_bpm: 50.0,
            max_bpm: 220.0,
            analysis_rate: 11_025,
            frame_size: 1024,
            hop: 128,
        }
    }
}

impl AnalyzerConfig {
    /// Sets the tempo range in BPM.
    pub fn with_bpm_range(mut self, min_bpm: f64, max_bpm: f64) -> Self {
        self.min_bpm = min_bpm;
        self.max_bpm = max_bpm;
        self
    }

    /// What makes an analyzer's rows what they are: the crate version, every setting and a
    /// hash of the metrical model's weights, as one line of text. Rows made with different
    /// fingerprints must not be mixed (a result cache, a distributed job, the parts of a
    /// sharded run); equal fingerprints give byte-identical rows on any machine.
    pub fn fingerprint(&self) -> String {
        format!(
            "analyzer-core {} {:?} model {:016x}",
            env!("CARGO_PKG_VERSION"),
            self,
            crate::metrical::weights_hash()
        )
    }
}

/// Facts about the decoded audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Seconds decoded.
    pub duration_s: f64,
    /// Source sample rate in Hz.
    pub sample_rate: u32,
    /// Source channel count.
    pub channels: u16,
    /// Codec short name (`mp3`, `flac`, `vorbis`, `aac`, `pcm_s16le`, ...).
    pub codec: String,
}

/// The analysis of one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    /// The tempo with its confidence and candidates.
    pub tempo: TempoEstimate,
    /// What was decoded.
    pub audio: AudioInfo,
    /// Damage that was survived (skipped packets, a truncated end); empty for a clean file.
    pub warnings: Vec<String>,
}

/// Wall time spent in each stage of one file's analysis. Decoding and onset detection
/// run interleaved in one streaming pass, so they are told apart by timing the work done
/// on each decoded packet.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageTimes {
    /// Opening, probing, decoding and mixing to mono.
    pub decode: Duration,
    /// Resampling to the analysis rate and computing the onset envelope.
    pub onset: Duration,
    /// Estimating the tempo from the envelope (the comb and the metrical model).
    pub tempo: Duration,
}

impl StageTimes {
    /// The times by [`Stage`]: `Decode`, `Onset`, `Tempo`.
    pub fn by_stage(&self) -> Vec<(Stage, Duration)> {
        vec![
            (Stage::Decode, self.decode),
            (Stage::Onset, self.onset),
            (Stage::Tempo, self.tempo),
        ]
    }
}

/// A planned analysis pipeline, shared read-only between threads.
#[derive(Debug, Clone)]
pub struct Analyzer {
    config: AnalyzerConfig,
    onset: OnsetDetector,
    tempo: TempoEstimator,
}

impl Analyzer {
    /// Plans the pipeline; fails only on invalid settings.
    pub fn new(config: AnalyzerConfig) -> Result<Self> {
        if config.analysis_rate < 4_000 || config.analysis_rate > 48_000 {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                Stage::Config,
                format!(
                    "analysis rate must be 4000..=48000 Hz (got {})",
                    config.analysis_rate
                ),
            ));
        }
        let onset = OnsetDetector::new(config.analysis_rate, config.frame_size, config.hop)?;
        let tempo = TempoEstimator::new(config.min_bpm, config.max_bpm)?;
        Ok(Analyzer {
            config,
            onset,
            tempo,
        })
    }

    /// The settings this analyzer was planned with.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The fingerprint of its settings: see [`AnalyzerConfig::fingerprint`].
    pub fn fingerprint(&self) -> String {
        self.config.fingerprint()
    }

    /// The onset stage, for callers that run the stages one by one (benchmarks).
    pub fn onset_detector(&self) -> &OnsetDetector {
        &self.onset
    }

    /// The tempo stage, for callers that run the stages one by one (benchmarks).
    pub fn tempo_estimator(&self) -> &TempoEstimator {
        &self.tempo
    }

    /// Analyses one file, streaming: memory does not grow with its length beyond the
    /// envelope (three f32 per frame at 86 frames/s: about 1 kB per second of audio).
    ///
    /// A panic inside a decoder is caught and reported as a corrupt stream.
    pub fn analyze_file(&self, path: &Path, stop: &StopSignal) -> Result<Analysis> {
        self.analyze_file_timed(path, stop)
            .map(|(analysis, _)| analysis)
    }

    /// [`Analyzer::analyze_file`], with the time each stage took.
    pub fn analyze_file_timed(
        &self,
        path: &Path,
        stop: &StopSignal,
    ) -> Result<(Analysis, StageTimes)> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.analyze_file_inner(path, stop)));
        let result = match outcome {
            Ok(result) => result,
            Err(panic) => Err(Error::new(
                ErrorKind::CorruptStream,
                Stage::Decode,
                format!(
                    "the decoder crashed: {}",
                    panic_message(&*panic).unwrap_or("unknown panic")
                ),
            )),
        };
        result.map_err(|e| e.with_path(path))
    }

    fn analyze_file_inner(&self, path: &Path, stop: &StopSignal) -> Result<(Analysis, StageTimes)> {
        let mut times = StageTimes::default();
        let (envelope, info) = self.envelope_of_stream(path, stop, &mut times)?;
        let started = Instant::now();
        let tempo = self.tempo.estimate(&envelope, stop)?;
        times.tempo = started.elapsed();
        let analysis = Analysis {
            tempo,
            audio: AudioInfo {
                duration_s: info.duration_s(),
                sample_rate: info.sample_rate,
                channels: info.channels,
                codec: info.codec,
            },
            warnings: info.warnings,
        };
        Ok((analysis, times))
    }

    /// The onset envelope of a file (decode, mix, resample, onsets), for callers that study
    /// the envelope itself (the metrical model's training data).
    pub fn envelope_of_file(&self, path: &Path, stop: &StopSignal) -> Result<OnsetEnvelope> {
        self.envelope_of_stream(path, stop, &mut StageTimes::default())
            .map(|(envelope, _)| envelope)
            .map_err(|e| e.with_path(path))
    }

    /// The envelope and what was decoded; `times` gets the decode and onset stages.
    fn envelope_of_stream(
        &self,
        path: &Path,
        stop: &StopSignal,
        times: &mut StageTimes,
    ) -> Result<(OnsetEnvelope, StreamInfo)> {
        let started = Instant::now();
        let mut onset = Duration::ZERO;
        let mut resampler: Option<MonoResampler> = None;
        let mut resampled = Vec::new();
        let mut tracker = self.onset.tracker();
        let info: StreamInfo = decode_mono(path, stop, |mono, rate| {
            let packet = Instant::now();
            let r = match &mut resampler {
                Some(r) => r,
                None => resampler.insert(MonoResampler::new(rate, self.config.analysis_rate)?),
            };
            resampled.clear();
            r.push(mono, &mut resampled)?;
            tracker.push(&resampled);
            onset += packet.elapsed();
            Ok(())
        })?;
        let decoded = started.elapsed();
        let tail = Instant::now();
        if let Some(r) = &mut resampler {
            resampled.clear();
            r.finish(&mut resampled)?;
            tracker.push(&resampled);
        }
        stop.check(Stage::Onset)?;
        let envelope = tracker.finish();
        times.onset = onset + tail.elapsed();
        times.decode = decoded.saturating_sub(onset);
        Ok((envelope, info))
    }

    /// The onset envelope of interleaved samples held in memory.
    pub fn envelope_of_samples(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<OnsetEnvelope> {
        let mut mono = Vec::new();
        mix_to_mono(interleaved, channels, &mut mono);
        let mut resampler = MonoResampler::new(sample_rate, self.config.analysis_rate)?;
        let mut resampled = Vec::new();
        resampler.push(&mono, &mut resampled)?;
        resampler.finish(&mut resampled)?;
        Ok(self.onset.envelope(&resampled))
    }

    /// Estimates the tempo of interleaved samples held in memory (tests, benchmarks).
    pub fn analyze_samples(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<TempoEstimate> {
        let envelope = self.envelope_of_samples(interleaved, sample_rate, channels)?;
        self.tempo.estimate(&envelope, &StopSignal::never())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_names_the_version_and_changes_with_every_setting() {
        let base = AnalyzerConfig::default();
        let fingerprint = base.fingerprint();
        assert!(fingerprint.starts_with(concat!("analyzer-core ", env!("CARGO_PKG_VERSION"))));
        assert_eq!(fingerprint, AnalyzerConfig::default().fingerprint());
        let others = [
            base.clone().with_bpm_range(60.0, 220.0),
            base.clone().with_bpm_range(50.0, 200.0),
            AnalyzerConfig {
                analysis_rate: 22_050,
                ..base.clone()
            },
            AnalyzerConfig {
                frame_size: 2048,
                ..base.clone()
            },
            AnalyzerConfig {
                hop: 256,
                ..base.clone()
            },
        ];
        for other in others {
            assert_ne!(other.fingerprint(), fingerprint, "{other:?}");
        }
    }
}
