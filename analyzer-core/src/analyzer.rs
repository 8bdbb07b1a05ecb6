//! The whole pipeline in one object: decode → mono → resample → onset envelope → tempo.
//!
//! An [`Analyzer`] is planned once (FFT plans, window, tempo grid) and is `Sync`: a batch
//! runner shares one across all its workers, and each call keeps its own scratch buffers.
//!
//! Over 500 lines with its tests: the settings, their fingerprint and the pipeline that runs them
//! change together.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::decode::{
    Sampled, StreamInfo, decode_channels, decode_mono, decode_mono_segments, mix_to_mono,
};
use crate::error::{Error, ErrorKind, Result, Stage, drop_payload, panic_message};
use crate::key::{ChromaPlan, ChromaTracker, FineProfile, KeyEstimator, KeyResult, NoKey};
use crate::level::{Level, LevelCount, LevelGate, inaudible_reason};
use crate::loudness::{Loudness, LoudnessMeter};
use crate::metrical::CompoundBeat;
use crate::onset::{OnsetDetector, OnsetEnvelope, OnsetTracker};
use crate::resample::MonoResampler;
use crate::stop::StopSignal;
use crate::tempo::{TempoEstimate, TempoEstimator};

/// Raised whenever a change makes some file's row differ without a setting changing (a
/// decoder that reads files it refused, a new error kind), so that rows kept by a result
/// cache, a resumed run or a distributed job are not mixed with the new ones. 2: large
/// ID3v2 tags read, header bounds, the sample budget, steady tones as `no_pulse`. 3: the
/// key. 4: the loudness (rows gain its columns, empty unless asked for). 5: noise as
/// `no_pulse` (the pulse significance), a beat under a held chord kept. 6: the key's profile
/// (edma-shaath) and its compressed chroma. 7: a 3:4 or 4:3 reading can be the alternative
/// (`alt_bpm`). 8: the loudness of files with channels past the sixth, or with side or rear
/// speakers in other places (each channel weighed by its speaker position). 9: a file
/// without a pulse (or too short for one) keeps its key and loudness. 10: an MP3 whose
/// Xing header counts too few frames is read to its end (it was `too_short`); Matroska,
/// WavPack, RF64, empty files and unsupported codecs are refused naming what they are. 11: a
/// WAV whose header sizes were never filled in (an unfinished recording) is read to the end
/// of the file with a warning (it was `corrupt_stream`). 12: a constant (DC) offset has no
/// key (the FFT's rounding noise under it read as F major). 13: audio shorter than one
/// 400 ms loudness block is said to be too short, not silent. 14: `analyze` without
/// `--album` no longer calls a silent file too short (it read the dropped gating blocks).
/// 15: silent and sparse FLAC and Ogg (up to two hours) are read (they were
/// `resource_limit`: the sample budget's free part, `decode::FREE_SAMPLES`). 16: the
/// loudness of a WAV of more than two channels without a channel mask (or with one that names
/// fewer channels than it holds): weighed by ffmpeg's default layout for the count, where
/// channel 4 was an LFE channel and channels 7 and 8 front ones.
/// 17: where the other compound-beat convention's model reads the beat 3:2 or 4:3 away,
/// that reading is `alt_bpm` and the confidence is the two models' mean share.
/// 18: channels in opposite polarity no longer cancel in the mono mix
/// (`decode::MonoMixer`); audio under the -70 LUFS floor is `no_pulse` without a key,
/// saying it is too quiet (`crate::level`); the share of pitched frames leaves out those
/// under it; a sampled file whose segments are all silent is analysed whole.
/// 19: audio shorter than 2 s whose every 400 ms block reaches the floor is heard (a loud
/// 1.5-s chord lost its key as too quiet); an extensible WAV whose channel mask has bits
/// past the standard positions is read (it was `unsupported_format`); a beat just outside
/// the tempo range is read at its multiple inside it, not at the range's edge, and no
/// `alt_bpm` is a reading the range excludes clamped to its edge.
/// 20: a row's loudness range is empty where its integrated loudness is (silence, audio
/// under 400 ms): it read `0.00`, as if measured; an Ogg file with a packet past the
/// reader's 16 MiB limit (big cover art) is `unsupported_format` saying so, not corrupt.
/// 21: the loudness range steps its 3 s blocks every 100 ms, as EBU Tech 3342 (2016) asks
/// (every 1 s, it read 13.0 LU for the spec's 15 LU test); an extensible WAV of 19 to 26
/// channels is read (it was `unsupported_format`); a WAV of a sample width the decoder
/// does not read is `unsupported_format`, not corrupt; Wave64 and WMA files are named; a
/// row whose every loudness block is gated out but whose true peak is loud says the sound
/// is in channels BS.1770 leaves out (an LFE-only file read "silence, or nearly").
/// 22: a FLAC file with an ID3v1 or APEv2 tag appended (behind an ID3v2 tag too) is read
/// to its last frame, the tags cut off only where a frame's CRC ends (it lost that frame
/// and said "truncated"); bare AC-3, DTS, AMR and Ogg Speex streams that fail to open are
/// named (DTS was "MPEG layer I/II", Speex "ends before its headers do"); a WAV of more
/// than 26 channels is refused for its count before the probe (symphonia read 33 as 1 and
/// 40 with an 8-bit mask as 8, `ok` rows); AAC the decoder does not take (5.1, HE-AAC)
/// says so (it was "aac too complex"); a chained Ogg is read link after link (it stopped
/// at the end of its first link), and a later link of Speex or Theora alone, or one whose
/// headers are damaged, says decoding stops there, and an Ogg of Theora video alone says so (it "ends before its headers
/// do"); a file of several audio tracks says which was read, and one whose default
/// track's codec is not decoded reads another that is; a WAV of 0xFFFFFFFF sizes (written
/// to a pipe) is sampled by the length its size, channels and sample width give (it was
/// decoded whole); a file long enough to sample whose headers give no length (a FLAC
/// written to a pipe, a chained Ogg) says it was analysed whole, loudness or not; a WAV
/// wrapping MP3, AC-3 or another codec names it (it was "unsupported wave format"), and
/// one of A-law or mu-law under an extensible header says so (it was "malformed").
/// 23: the onset envelope scales each tracker's band energies by their own mean before
/// the log compression, so the tempo no longer moves with the file's gain (a 178 BPM song
/// read 89 at 25 dB down; every confidence sank with the level): tempo, confidence and
/// `alt_bpm` cells move in their last digits on most files; a chained Ogg's link at another
/// rate, channel count or codec says which link of how many it is; a sampled segment starts
/// at its time, not at the start of the packet holding it (a WAV and a FLAC of the same
/// audio gave different rows).
/// 24: the level that sets the onset stage's scale is the power of the bins its bands
/// cover, so a DC offset no longer moves the tempo (music 20 dB down with an offset of 0.3
/// read at half tempo): tempo cells move in their last digits on some files; a block of
/// the onset stage far quieter than the file's loudest (hiss or room tone around the music)
/// has its say turned down (a minute of hiss after a song read six of 95 at an octave); a
/// sampled file with a segment of silence or of sound too quiet to hear, whose other
/// segments hold a pulse, is analysed whole, as `--full` reads it, and says so (a song with
/// a minute of silence after it read at half tempo); with loudness, a segment whose first packet is timed well after its start (a
/// FLAC trimmed by stream copy) sends the file to a whole analysis as its seek does; a
/// zero-size file that cannot be read is not called empty; RF64 is named for what it is;
/// an MP3 holding fewer bytes than its Xing header counts says it was cut short and is read
/// whole (sampled, it gave the announced length without a word); the pulse test cuts out
/// digital silence of 2 s or more (noise beside silence read a tempo).
/// 25: the pulse test also cuts where the onset stage's blocks step across the quiet line
/// (20 dB under the loudest): noise stepping down by 22-30 dB read a tempo of confidence
/// 0.08-0.24 with `--full`. No row of the development sets moved.
const RESULTS_REVISION: u32 = 25;

/// Settings of an [`Analyzer`]. Each field's doc gives its default.
#[derive(Debug, Clone, PartialEq)]
pub struct AnalyzerConfig {
    /// Slowest tempo reported, in BPM. Default 50.
    pub min_bpm: f64,
    /// Fastest tempo reported, in BPM. Default 220.
    pub max_bpm: f64,
    /// Which note of a 6/8 or 12/8 bar is its beat: [`CompoundBeat::Quarter`] by default
    /// (the MIDI tempo's convention), or the dotted quarter a listener taps. Each has its
    /// own metrical model.
    pub compound_beat: CompoundBeat,
    /// Sample rate the onset stage runs at, in Hz. Default 11025: onsets need no more.
    pub analysis_rate: u32,
    /// STFT frame length in samples at the analysis rate. Default 1024 (93 ms); held to
    /// [`AnalyzerConfig::CALIBRATED_FRAME_SIZES`].
    pub frame_size: usize,
    /// STFT hop in samples at the analysis rate. Default 128 (11.6 ms, 86 frames/s); held
    /// to [`AnalyzerConfig::CALIBRATED_HOPS`].
    pub hop: usize,
    /// Decode only segments of a long file ([`Sampling`]), or the whole file (`None`).
    /// Default [`Sampling::DEFAULT`], 4 segments of 15 s: on full-length songs it gave the
    /// whole analysis's accuracy at a quarter of its CPU (docs/speed.md, "Sampled analysis").
    pub sampling: Option<Sampling>,
    /// Estimate the key too, from the same decoded audio ([`crate::key`]). Default true:
    /// it adds a few per cent to the CPU of a file (docs/key.md).
    pub key: bool,
    /// Measure the loudness too ([`crate::loudness`]). Default false: integrated loudness
    /// needs every sample, so the file is then decoded whole, once, and the tempo and key
    /// read the sampled segments cut from that decode.
    pub loudness: bool,
}

/// Which part of a long file a sampled analysis decodes: `segments` stretches of
/// `seconds` each, spread evenly over the file and reached by seeking
/// ([`crate::decode::segment_starts`], [`crate::decode::decode_mono_segments`]). A file
/// shorter than (segments + 1) x seconds, or one that cannot be sampled, is analysed whole;
/// so is one whose segments are all silent or too quiet to hear ([`crate::level`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampling {
    /// How many segments, 1 to [`Sampling::MAX_SEGMENTS`].
    pub segments: usize,
    /// Seconds in each segment, at least [`Sampling::MIN_SECONDS`].
    pub seconds: f64,
}

impl Sampling {
    /// What [`AnalyzerConfig::default`] decodes: 4 segments of 15 s (files of 75 s or
    /// more are sampled).
    pub const DEFAULT: Sampling = Sampling {
        segments: 4,
        seconds: 15.0,
    };
    /// The most segments a file is cut into.
    pub const MAX_SEGMENTS: usize = crate::decode::MAX_SEGMENTS;
    /// The shortest segment: below it a segment holds too few beats to measure.
    pub const MIN_SECONDS: f64 = 10.0;

    /// Whether these settings can be used; why not otherwise.
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.segments == 0 || self.segments > Self::MAX_SEGMENTS {
            return Err(format!(
                "segments must be 1..={} (got {})",
                Self::MAX_SEGMENTS,
                self.segments
            ));
        }
        if !(self.seconds.is_finite() && self.seconds >= Self::MIN_SECONDS) {
            return Err(format!(
                "analysis seconds must be a finite number of at least {} (got {})",
                Self::MIN_SECONDS,
                self.seconds
            ));
        }
        Ok(())
    }
}

impl Default for AnalyzerConfig {
    fn default() -> Self {
        AnalyzerConfig {
            min_bpm: 50.0,
            max_bpm: 220.0,
            compound_beat: CompoundBeat::Quarter,
            analysis_rate: 11_025,
            frame_size: 1024,
            hop: 128,
            sampling: Some(Sampling::DEFAULT),
            key: true,
            loudness: false,
        }
    }
}

impl AnalyzerConfig {
    /// The frame sizes [`Analyzer::new`] accepts. The pulse test's thresholds
    /// (`tempo::MIN_RELATIVE_NOVELTY` and the peak one) are a change per frame, measured
    /// at frame 1024 and hop 128: they hold within a factor 2 of those, and past it every
    /// file read as a steady tone (hop 8, frame 65536: `no_pulse` on all of them).
    pub const CALIBRATED_FRAME_SIZES: std::ops::RangeInclusive<usize> = 512..=2048;
    /// The hops [`Analyzer::new`] accepts: see [`AnalyzerConfig::CALIBRATED_FRAME_SIZES`].
    pub const CALIBRATED_HOPS: std::ops::RangeInclusive<usize> = 64..=256;

    /// Sets the tempo range in BPM.
    pub fn with_bpm_range(mut self, min_bpm: f64, max_bpm: f64) -> Self {
        self.min_bpm = min_bpm;
        self.max_bpm = max_bpm;
        self
    }

    /// Sets which note of a compound meter is reported as the beat.
    pub fn with_compound_beat(mut self, beat: CompoundBeat) -> Self {
        self.compound_beat = beat;
        self
    }

    /// Sets what is decoded: segments of a long file, or (`None`) the whole file.
    pub fn with_sampling(mut self, sampling: Option<Sampling>) -> Self {
        self.sampling = sampling;
        self
    }

    /// Sets whether the key is estimated beside the tempo.
    pub fn with_key(mut self, key: bool) -> Self {
        self.key = key;
        self
    }

    /// Sets whether the loudness is measured beside the tempo.
    pub fn with_loudness(mut self, loudness: bool) -> Self {
        self.loudness = loudness;
        self
    }

    /// What makes an analyzer's rows what they are: the crate version, the results
    /// revision, every setting and a hash of the metrical model's weights, as one line of
    /// text. Rows made with different
    /// fingerprints must not be mixed (a result cache, a distributed job, the parts of a
    /// sharded run); equal fingerprints give byte-identical rows on any machine.
    ///
    /// It names the FFT code path too ([`fft_path`]): RustFFT picks AVX, SSE4.1 or scalar
    /// code at run time, and their results differ in the last bits, so equal rows are only
    /// promised on machines that take the same path.
    ///
    /// Every field is written by name (a new field does not compile until it is written
    /// here), so the text changes when a setting does and never with how a type happens
    /// to print itself; the results revision versions it.
    pub fn fingerprint(&self) -> String {
        let AnalyzerConfig {
            min_bpm,
            max_bpm,
            compound_beat,
            analysis_rate,
            frame_size,
            hop,
            sampling,
            key,
            loudness,
        } = self;
        let sampling = match sampling {
            Some(s) => format!("{}x{}s", s.segments, s.seconds),
            None => "whole".to_string(),
        };
        let key = if *key {
            crate::key::DEFAULT_PROFILE.as_str()
        } else {
            "off"
        };
        let loudness = if *loudness { "ebur128" } else { "off" };
        // The default's text is the one of the builds before the choice existed, so their
        // cached rows are still served.
        let model = match compound_beat {
            CompoundBeat::Quarter => String::new(),
            CompoundBeat::DottedQuarter => "dotted-quarter ".to_string(),
        };
        format!(
            "analyzer-core {} rev {RESULTS_REVISION}; bpm {min_bpm}-{max_bpm}; rate {analysis_rate}; \
             frame {frame_size}; hop {hop}; sampling {sampling}; key {key}; \
             loudness {loudness}; model {model}{:016x}+{:016x}; fft {}",
            env!("CARGO_PKG_VERSION"),
            // Both weight sets decide a row: the other one asks whether the meter is compound.
            crate::metrical::weights_hash(*compound_beat),
            crate::metrical::weights_hash(compound_beat.other()),
            fft_path()
        )
    }
}

/// The FFT code RustFFT runs on this CPU, by the rule of `rustfft::FftPlanner::new`:
/// `avx` (AVX and FMA), `sse4.1`, `neon` or `scalar`. The bits of an FFT differ between
/// them, so this is part of [`AnalyzerConfig::fingerprint`].
pub fn fft_path() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx") && std::arch::is_x86_feature_detected!("fma")
        {
            return "avx";
        }
        if std::arch::is_x86_feature_detected!("sse4.1") {
            return "sse4.1";
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if std::arch::is_aarch64_feature_detected!("neon") {
            return "neon";
        }
    }
    "scalar"
}

/// Facts about the decoded audio.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioInfo {
    /// Seconds of audio in the file: those decoded, or for a sampled file (which decodes
    /// only segments of it) the length its headers announce.
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
    /// The tempo with its confidence and candidates, or the tempo stage's verdict that the
    /// audio has none ([`is_tempo_verdict`]: no pulse, too short): the file's other
    /// descriptors stand all the same, as the tempo stands for a file without a key. The
    /// batch runner reports such a file as failed, keeping this value
    /// ([`crate::batch::Job::failure`]).
    pub tempo: Result<TempoEstimate>,
    /// The key, or why the audio has none; `None` when the key was not asked for
    /// ([`AnalyzerConfig::key`]). A file without a key keeps its tempo.
    pub key: Option<KeyResult>,
    /// The loudness; `None` when it was not asked for ([`AnalyzerConfig::loudness`]).
    pub loudness: Option<Loudness>,
    /// What was decoded.
    pub audio: AudioInfo,
    /// Damage that was survived (skipped packets, a truncated end); empty for a clean file.
    pub warnings: Vec<String>,
}

/// Whether an error of the tempo stage is its verdict on decoded audio (`no_pulse`,
/// `too_short`), which leaves the key and the loudness of the same audio standing; any
/// other failure (a deadline, a cancellation) ends the file.
pub fn is_tempo_verdict(kind: ErrorKind) -> bool {
    matches!(kind, ErrorKind::NoPulse | ErrorKind::TooShort)
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
    /// Gathering pitch classes from the resampled audio and matching key profiles (zero
    /// when the key is not asked for).
    pub key: Duration,
    /// Measuring the loudness of every channel (zero when it is not asked for).
    pub loudness: Duration,
}

impl StageTimes {
    /// The time of the stages that run inside the decode loop, which is not decoding.
    fn busy(&self) -> Duration {
        self.onset + self.key + self.loudness
    }

    /// The times by [`Stage`]: `Decode`, `Onset`, `Tempo`, `Key`, `Loudness`.
    pub fn by_stage(&self) -> Vec<(Stage, Duration)> {
        vec![
            (Stage::Decode, self.decode),
            (Stage::Onset, self.onset),
            (Stage::Tempo, self.tempo),
            (Stage::Key, self.key),
            (Stage::Loudness, self.loudness),
        ]
    }
}

/// A planned analysis pipeline, shared read-only between threads.
#[derive(Debug, Clone)]
pub struct Analyzer {
    config: AnalyzerConfig,
    onset: OnsetDetector,
    tempo: TempoEstimator,
    /// The key's front end, when the key is asked for.
    chroma: Option<ChromaPlan>,
    key: KeyEstimator,
}

/// Why a frame size or hop outside its calibrated `range` is refused.
pub fn calibration_reason(range: &std::ops::RangeInclusive<usize>) -> String {
    format!(
        "must be {}..={}: the pulse test is calibrated at frame size 1024 and hop 128 and \
         holds within a factor 2 of them (outside, files read as a steady tone)",
        range.start(),
        range.end()
    )
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
        for (name, value, range) in [
            (
                "frame size",
                config.frame_size,
                AnalyzerConfig::CALIBRATED_FRAME_SIZES,
            ),
            ("hop", config.hop, AnalyzerConfig::CALIBRATED_HOPS),
        ] {
            if !range.contains(&value) {
                return Err(Error::new(
                    ErrorKind::InvalidConfig,
                    Stage::Config,
                    format!("{name} of {value}: {}", calibration_reason(&range)),
                ));
            }
        }
        if let Some(sampling) = &config.sampling {
            sampling
                .check()
                .map_err(|reason| Error::new(ErrorKind::InvalidConfig, Stage::Config, reason))?;
        }
        let onset = OnsetDetector::new(config.analysis_rate, config.frame_size, config.hop)?;
        let tempo = TempoEstimator::new(config.min_bpm, config.max_bpm)?
            .with_compound_beat(config.compound_beat);
        tempo.check_frame_rate(
            f64::from(config.analysis_rate) / config.hop as f64,
            Stage::Config,
        )?;
        let chroma = config
            .key
            .then(|| ChromaPlan::new(config.analysis_rate))
            .transpose()?;
        Ok(Analyzer {
            config,
            onset,
            tempo,
            chroma,
            key: KeyEstimator::default(),
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

    /// The key's front end (`None` when the key is not asked for), for callers that run the
    /// stages one by one (benchmarks).
    pub fn chroma_plan(&self) -> Option<&ChromaPlan> {
        self.chroma.as_ref()
    }

    /// The key's decision, for callers that run the stages one by one (benchmarks).
    pub fn key_estimator(&self) -> &KeyEstimator {
        &self.key
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
            Err(panic) => {
                let why = format!(
                    "panic: {} (a dependency failed on this file's data)",
                    panic_message(&*panic).unwrap_or("unknown panic")
                );
                drop_payload(panic);
                Err(Error::new(ErrorKind::CorruptStream, Stage::Decode, why))
            }
        };
        result.map_err(|e| e.with_path(path))
    }

    fn analyze_file_inner(&self, path: &Path, stop: &StopSignal) -> Result<(Analysis, StageTimes)> {
        let mut times = StageTimes::default();
        let decoded = self.envelopes_of_stream(path, stop, &mut times)?;
        let started = Instant::now();
        let tempo = match self.tempo_of(&decoded, stop) {
            Err(verdict) if is_tempo_verdict(verdict.kind()) => Err(verdict.with_path(path)),
            Err(other) => return Err(other),
            Ok(tempo) => Ok(tempo),
        };
        times.tempo = started.elapsed();
        let started = Instant::now();
        let key = decoded.chroma.map(|fine| match decoded.level {
            Level::Inaudible => Err(NoKey {
                reason: inaudible_reason(),
            }),
            Level::Silent | Level::Audible => self.key.estimate(&fine),
        });
        times.key += started.elapsed();
        let info = decoded.info;
        let analysis = Analysis {
            tempo,
            key,
            loudness: decoded.loudness,
            audio: AudioInfo {
                duration_s: decoded.duration_s,
                sample_rate: info.sample_rate,
                channels: info.channels,
                codec: info.codec,
            },
            warnings: info.warnings,
        };
        Ok((analysis, times))
    }

    /// The tempo of what was decoded: `no_pulse` without looking for one when the analysed
    /// signal is not silent but stays under the level a listener hears ([`crate::level`]),
    /// where the onset stage, which measures change relative to the signal's own level,
    /// finds a confident pulse in resampling residue or rounding noise. Audio too short
    /// for a tempo is still said to be too short.
    fn tempo_of(&self, decoded: &Decoded, stop: &StopSignal) -> Result<TempoEstimate> {
        let seconds: f64 = decoded
            .envelopes
            .iter()
            .map(OnsetEnvelope::duration_s)
            .sum();
        if decoded.level == Level::Inaudible && seconds >= crate::tempo::MIN_SECONDS {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                inaudible_reason(),
            ));
        }
        self.tempo.estimate_segments(&decoded.envelopes, stop)
    }

    /// The onset envelope of a whole file (decode, mix, resample, onsets) whatever the
    /// sampling setting, for callers that study the envelope itself (the metrical model's
    /// training data).
    pub fn envelope_of_file(&self, path: &Path, stop: &StopSignal) -> Result<OnsetEnvelope> {
        self.whole_stream(path, stop, &mut StageTimes::default())
            .map(|(stretch, _)| stretch.envelope)
            .map_err(|e| e.with_path(path))
    }

    /// The onset envelopes the tempo stage reads for a file under this analyzer's sampling
    /// setting: one per segment of a sampled file, one for a file analysed whole. For callers
    /// that study what the tempo stage decides from (`examples/pulse_test.rs`).
    pub fn tempo_envelopes_of_file(
        &self,
        path: &Path,
        stop: &StopSignal,
    ) -> Result<Vec<OnsetEnvelope>> {
        self.envelopes_of_stream(path, stop, &mut StageTimes::default())
            .map(|decoded| decoded.envelopes)
            .map_err(|e| e.with_path(path))
    }

    /// The pitch-class votes of a whole file whatever the sampling setting (or `None` when
    /// the key is not asked for), for callers that study the key's evidence itself (the
    /// choice of key profile, `examples/key_profiles.rs`).
    pub fn chroma_of_file(&self, path: &Path, stop: &StopSignal) -> Result<Option<FineProfile>> {
        self.whole_stream(path, stop, &mut StageTimes::default())
            .map(|(stretch, _)| stretch.chroma)
            .map_err(|e| e.with_path(path))
    }

    /// What the tempo and key stages read: one envelope (and pitch-class tally) per segment
    /// when the file is sampled, one for the whole file otherwise (with a warning saying why
    /// when sampling was asked for but was not possible).
    /// `times` gets the decode, onset and the key's share of the key stage.
    fn envelopes_of_stream(
        &self,
        path: &Path,
        stop: &StopSignal,
        times: &mut StageTimes,
    ) -> Result<Decoded> {
        let mut notes = Vec::new();
        let started = Instant::now();
        let mut loudness = None;
        if self.config.sampling.is_some() || self.config.loudness {
            let mut segments: Vec<SegmentOnsets<'_>> = Vec::new();
            let push = |index, mono: &[f32], rate| {
                while segments.len() <= index {
                    segments.push(SegmentOnsets::new(self));
                }
                segments[index].push(mono, rate)
            };
            let outcome = match self.config.sampling {
                Some(sampling) if !self.config.loudness => {
                    decode_mono_segments(path, stop, sampling.seconds, sampling.segments, push)?
                }
                sampling => {
                    let (outcome, measured) = self.decode_measuring(path, stop, sampling, push)?;
                    times.loudness = measured.1;
                    loudness = Some(measured.0);
                    outcome
                }
            };
            let sampled = matches!(outcome, Sampled::Segments { .. });
            let decoded = match outcome {
                Sampled::Segments { info, duration_s } => Some((info, duration_s)),
                // Decoded whole, by the same steps as below, from the track already open.
                Sampled::Whole(info) => Some((info.clone(), info.duration_s())),
                Sampled::Failed { reason } => {
                    notes.push(format!(
                        "sampling was not possible ({reason}); the whole file was analysed"
                    ));
                    None
                }
            };
            if let Some((info, duration_s)) = decoded {
                let mut envelopes = Vec::with_capacity(segments.len());
                let mut chroma = self.chroma.as_ref().map(|_| FineProfile::default());
                let mut count = LevelCount::default();
                let mut heard = Vec::with_capacity(segments.len());
                for segment in segments {
                    let stretch = segment.finish(times)?;
                    envelopes.push(stretch.envelope);
                    count = count.merged(stretch.level);
                    heard.push(stretch.level.level() == Level::Audible);
                    if let (Some(all), Some(part)) = (&mut chroma, &stretch.chroma) {
                        all.merge(part);
                    }
                }
                stop.check(Stage::Onset)?;
                let level = count.level();
                // A file past the decode's free allowance keeps the sampled verdict: read
                // whole, hours of digital silence ran into the decompression-bomb limit.
                let within_allowance = duration_s <= crate::decode::FREE_SECONDS as f64;
                let quiet_segments = heard.iter().filter(|&&h| !h).count();
                // Where some segments are heard, the file is read whole only when they hold
                // a pulse: noise before or after silence (or sound too quiet to hear) kept
                // its `no_pulse` from the segments, where a whole analysis read a tempo of
                // confidence 0.07-0.16 in the noise.
                let music_heard = || {
                    let audible: Vec<OnsetEnvelope> = envelopes
                        .iter()
                        .zip(&heard)
                        .filter(|(_, h)| **h)
                        .map(|(e, _)| e.clone())
                        .collect();
                    self.tempo.estimate_segments(&audible, stop).is_ok()
                };
                let read_whole = sampled
                    && quiet_segments > 0
                    && within_allowance
                    && (level != Level::Audible || music_heard());
                if !read_whole {
                    times.decode = started.elapsed().saturating_sub(times.busy());
                    return Ok(Decoded {
                        envelopes,
                        chroma,
                        loudness,
                        info,
                        duration_s,
                        level,
                    });
                }
                // A sampled segment is silent or inaudible: the music of a long file lies
                // elsewhere, or in part of the segments only (a hidden track, a song with a
                // minute of silence after it, a recording with room tone around it). Where
                // every segment is, the whole file is read before it is said to have none;
                // where some are and the others hold a pulse, those were too few to stand
                // for the music (a 178 BPM song with 30 s of silence after it read 89, a 220
                // BPM one with 60 s read 110 at confidence 0.98). This costs what a whole
                // analysis costs, and only such files pay it.
                notes.push(if level == Level::Audible {
                    let (segments, are) = match quiet_segments {
                        1 => ("segment", "is"),
                        _ => ("segments", "are"),
                    };
                    format!(
                        "{quiet_segments} sampled {segments} of {} {are} silent or too quiet \
                         to hear; the whole file was analysed",
                        envelopes.len()
                    )
                } else {
                    "every sampled segment is silent or too quiet to hear; the whole file was \
                     analysed"
                        .to_string()
                });
            }
        }
        // A failed sampling attempt's decoding counts as decode time too. When it measured
        // the loudness, that measurement of the whole stream stands.
        *times = StageTimes {
            loudness: times.loudness,
            ..StageTimes::default()
        };
        let (stretch, mut info) = self.whole_stream(path, stop, times)?;
        times.decode = started.elapsed().saturating_sub(times.busy());
        info.warnings.extend(notes);
        Ok(Decoded {
            envelopes: vec![stretch.envelope],
            chroma: stretch.chroma,
            loudness,
            duration_s: info.duration_s(),
            level: stretch.level.level(),
            info,
        })
    }

    /// The envelope (and pitch-class tally) of the whole file and what was decoded; `times`
    /// gets the decode and onset stages and the key's share.
    fn whole_stream(
        &self,
        path: &Path,
        stop: &StopSignal,
        times: &mut StageTimes,
    ) -> Result<(Stretch, StreamInfo)> {
        let started = Instant::now();
        let mut onsets = SegmentOnsets::new(self);
        let info: StreamInfo = decode_mono(path, stop, |mono, rate| onsets.push(mono, rate))?;
        let stretch = onsets.finish(times)?;
        stop.check(Stage::Onset)?;
        times.decode = started.elapsed().saturating_sub(times.busy());
        Ok((stretch, info))
    }

    /// Decodes the whole file once ([`decode_channels`]), measuring the loudness of every
    /// channel and handing `segment_sink` the mono stretches the tempo and key read under
    /// `sampling`. Returns how the segments went, the loudness and the time spent metering.
    fn decode_measuring(
        &self,
        path: &Path,
        stop: &StopSignal,
        sampling: Option<Sampling>,
        segment_sink: impl FnMut(usize, &[f32], u32) -> Result<()>,
    ) -> Result<(Sampled, (Loudness, Duration))> {
        let mut meter: Option<LoudnessMeter> = None;
        let mut busy = Duration::ZERO;
        let outcome = decode_channels(
            path,
            stop,
            sampling.map(|s| (s.seconds, s.segments)),
            |interleaved, channels, layout, rate| {
                let started = Instant::now();
                let meter = match &mut meter {
                    Some(meter) => meter,
                    None => meter.insert(LoudnessMeter::for_layout(layout, channels, rate)?),
                };
                meter.push(interleaved)?;
                busy += started.elapsed();
                Ok(())
            },
            segment_sink,
        )?;
        let started = Instant::now();
        // A stream that decodes yields samples, so the meter exists; the error is for the
        // impossible case only.
        let loudness = meter
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::CorruptStream,
                    Stage::Loudness,
                    "the stream holds no audio",
                )
            })?
            .finish()?;
        busy += started.elapsed();
        Ok((outcome, (loudness, busy)))
    }

    /// The onset envelope of interleaved samples held in memory.
    pub fn envelope_of_samples(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<OnsetEnvelope> {
        let resampled = self.resampled_mono(interleaved, sample_rate, channels)?;
        Ok(self.onset.envelope(&resampled))
    }

    /// Interleaved samples mixed to mono and resampled to the analysis rate.
    fn resampled_mono(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<Vec<f32>> {
        // As for a file: a rate of 1 Hz was resampled 11,025 times over (80 KB of samples
        // took 1.8 GB), and the constant signal it made read as a confident tempo.
        crate::decode::check_sample_rate(sample_rate)?;
        // A count no file can state (AudioInfo holds it as u16), or samples that are not
        // whole frames: 2^32 channels aborted the process on the mix's allocation, and a
        // trailing partial frame was dropped without a word.
        if channels == 0 || channels > usize::from(u16::MAX) {
            return Err(Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                format!("{channels} channels: samples in memory have 1 to 65535"),
            ));
        }
        if !interleaved.len().is_multiple_of(channels) {
            return Err(Error::new(
                ErrorKind::UnsupportedFormat,
                Stage::Probe,
                format!(
                    "{} samples are not whole frames of {channels} channels",
                    interleaved.len()
                ),
            ));
        }
        let mut mono = Vec::new();
        mix_to_mono(interleaved, channels, &mut mono);
        let mut resampler = MonoResampler::new(sample_rate, self.config.analysis_rate)?;
        let mut resampled = Vec::new();
        resampler.push(&mono, &mut resampled)?;
        resampler.finish(&mut resampled)?;
        Ok(resampled)
    }

    /// The pitch-class votes of interleaved samples held in memory (`None` when the key is
    /// not asked for).
    pub fn chroma_of_samples(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<Option<FineProfile>> {
        let Some(plan) = &self.chroma else {
            return Ok(None);
        };
        let resampled = self.resampled_mono(interleaved, sample_rate, channels)?;
        let mut tracker = plan.tracker();
        tracker.push(&resampled);
        Ok(Some(tracker.finish()))
    }

    /// The key of interleaved samples held in memory (tests, benchmarks); `None` when the
    /// key is not asked for.
    pub fn key_of_samples(
        &self,
        interleaved: &[f32],
        sample_rate: u32,
        channels: usize,
    ) -> Result<Option<KeyResult>> {
        Ok(self
            .chroma_of_samples(interleaved, sample_rate, channels)?
            .map(|fine| self.key.estimate(&fine)))
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

/// What the decoding of one file hands the tempo and key stages.
struct Decoded {
    /// One envelope per decoded stretch, in file order.
    envelopes: Vec<OnsetEnvelope>,
    /// The pitch-class votes of every stretch, when the key is asked for.
    chroma: Option<FineProfile>,
    /// The loudness of the whole file, when it is asked for.
    loudness: Option<Loudness>,
    info: StreamInfo,
    /// Seconds in the file (all of them, not only the decoded ones).
    duration_s: f64,
    /// The level of the analysed signal, over every stretch.
    level: Level,
}

/// What one stretch of audio gave: its onset envelope and its pitch-class votes.
struct Stretch {
    envelope: OnsetEnvelope,
    chroma: Option<FineProfile>,
    level: LevelCount,
}

/// One stretch of audio on its way from mono samples at the source rate to an onset
/// envelope (and the key's pitch-class votes, from the same resampled samples): its own
/// resampler and trackers, so that no filter state or frame spans two segments of a
/// sampled file.
struct SegmentOnsets<'a> {
    analyzer: &'a Analyzer,
    resampler: Option<MonoResampler>,
    resampled: Vec<f32>,
    tracker: OnsetTracker<'a>,
    chroma: Option<ChromaTracker<'a>>,
    /// Whether the resampled signal reaches the level a listener hears.
    gate: LevelGate,
    /// Time spent resampling and in the onset tracker (the rest of a decode loop is decoding).
    busy: Duration,
    /// Time spent in the chroma tracker.
    key_busy: Duration,
}

impl<'a> SegmentOnsets<'a> {
    fn new(analyzer: &'a Analyzer) -> Self {
        SegmentOnsets {
            analyzer,
            resampler: None,
            resampled: Vec::new(),
            tracker: analyzer.onset.tracker(),
            chroma: analyzer.chroma.as_ref().map(ChromaPlan::tracker),
            gate: LevelGate::new(analyzer.config.analysis_rate),
            busy: Duration::ZERO,
            key_busy: Duration::ZERO,
        }
    }

    /// Adds mono samples at `rate` (the resampler is made on the first call).
    fn push(&mut self, mono: &[f32], rate: u32) -> Result<()> {
        let started = Instant::now();
        let analysis_rate = self.analyzer.config.analysis_rate;
        let r = match &mut self.resampler {
            Some(r) => r,
            None => self
                .resampler
                .insert(MonoResampler::new(rate, analysis_rate)?),
        };
        self.resampled.clear();
        r.push(mono, &mut self.resampled)?;
        self.tracker.push(&self.resampled);
        self.gate.push(&self.resampled);
        self.busy += started.elapsed();
        self.push_chroma();
        Ok(())
    }

    /// Hands the resampled samples to the key's tracker, timed apart from the onsets.
    fn push_chroma(&mut self) {
        if let Some(chroma) = &mut self.chroma {
            let started = Instant::now();
            chroma.push(&self.resampled);
            self.key_busy += started.elapsed();
        }
    }

    /// The envelope and votes of everything pushed, the resampler's tail included; adds
    /// the time spent on them to `times`.
    fn finish(mut self, times: &mut StageTimes) -> Result<Stretch> {
        let started = Instant::now();
        if let Some(r) = &mut self.resampler {
            self.resampled.clear();
            r.finish(&mut self.resampled)?;
            self.tracker.push(&self.resampled);
            self.gate.push(&self.resampled);
        }
        self.busy += started.elapsed();
        self.push_chroma();
        let started = Instant::now();
        let envelope = self.tracker.finish();
        self.busy += started.elapsed();
        times.onset += self.busy;
        times.key += self.key_busy;
        Ok(Stretch {
            envelope,
            chroma: self.chroma.map(ChromaTracker::finish),
            level: self.gate.finish(),
        })
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
        assert!(
            fingerprint.ends_with(&format!(" fft {}", fft_path())),
            "{fingerprint}"
        );
        // The default's text predates the choice of compound beat (cached rows stay valid).
        assert!(!fingerprint.contains("quarter"), "{fingerprint}");
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
            base.clone().with_sampling(None),
            base.clone().with_loudness(true),
            base.clone().with_compound_beat(CompoundBeat::DottedQuarter),
            base.clone().with_sampling(Some(Sampling {
                segments: 3,
                seconds: 30.0,
            })),
            base.clone().with_sampling(Some(Sampling {
                segments: 2,
                seconds: 30.0,
            })),
            base.clone().with_sampling(Some(Sampling {
                segments: 3,
                seconds: 20.0,
            })),
        ];
        for (i, other) in others.iter().enumerate() {
            assert_ne!(other.fingerprint(), fingerprint, "{other:?}");
            for later in &others[i + 1..] {
                assert_ne!(other.fingerprint(), later.fingerprint(), "{other:?}");
            }
        }
    }

    #[test]
    fn sampling_settings_are_checked() {
        let with = |segments, seconds| {
            Analyzer::new(
                AnalyzerConfig::default().with_sampling(Some(Sampling { segments, seconds })),
            )
        };
        assert!(with(3, 30.0).is_ok());
        for (segments, seconds) in [
            (0, 30.0),
            (33, 30.0),
            (3, 9.9),
            (3, f64::NAN),
            (1, f64::INFINITY),
        ] {
            let err = with(segments, seconds).unwrap_err();
            assert_eq!(
                err.kind(),
                ErrorKind::InvalidConfig,
                "{segments} x {seconds}"
            );
        }
    }
}
