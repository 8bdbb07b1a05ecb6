//! Tempo (BPM) analysis of audio files, built to run over whole libraries.
//!
//! The pipeline reads like the data flow:
//!
//! ```text
//! file ─decode─▶ mono samples ─resample─▶ analysis rate ─STFT + flux─▶ OnsetEnvelope ─comb─▶ TempoEstimate
//! ```
//!
//! An [`Analyzer`] is planned once and shared by every worker; analysis of one file is
//! single-threaded and deterministic, so the same file gives bit-identical output on any
//! thread of any run. Every failure is an [`Error`] naming the file, the [`Stage`] and the
//! [`ErrorKind`]; no input makes the library panic.
//!
//! [`batch`] (the default feature `batch`) runs an analysis over many files on a thread
//! pool, with cancellation, per-file deadlines, panic isolation and results in input order.
//!
//! ```
//! use analyzer_core::{Analyzer, AnalyzerConfig};
//!
//! // Four seconds of clicks at 120 BPM, mono, 22.05 kHz.
//! let rate = 22_050;
//! let mut samples = vec![0.0f32; rate * 8];
//! for beat in 0..16 {
//!     let start = beat * rate / 2;
//!     for (i, s) in samples[start..start + 200].iter_mut().enumerate() {
//!         *s = if i % 2 == 0 { 0.8 } else { -0.8 };
//!     }
//! }
//! let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
//! let estimate = analyzer.analyze_samples(&samples, rate as u32, 1).unwrap();
//! assert!((estimate.bpm - 120.0).abs() < 0.5, "{}", estimate.bpm);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod analyzer;
#[cfg(feature = "batch")]
pub mod batch;
pub mod decode;
mod error;
pub mod key;
pub mod level;
pub mod loudness;
mod metrical;
pub mod onset;
pub mod resample;
mod stop;
pub mod tempo;

pub use analyzer::{
    Analysis, Analyzer, AnalyzerConfig, AudioInfo, Sampling, StageTimes, calibration_reason,
    fft_path, is_tempo_verdict,
};
pub use error::{Error, ErrorKind, Result, Stage, shown_number};
pub use metrical::CompoundBeat;
pub use onset::OnsetEnvelope;
pub use stop::StopSignal;
pub use tempo::{TempoCandidate, TempoEstimate};
