//! Resampling: the decoded mono signal, at whatever rate the file has, streamed to the
//! one analysis rate that the onset stage is planned for.
//!
//! rubato's synchronous FFT resampler does the work when the two rates share a large common
//! divisor (44.1, 48, 32, 22.05, 96 kHz ...). For odd rates, where that resampler would need
//! an enormous FFT, a polynomial asynchronous resampler takes over; tempo analysis only
//! needs the envelope below a few kHz, so its quality is plenty.

use rubato::audioadapter_buffers::direct::InterleavedSlice;
use rubato::{Async, Fft, FixedAsync, FixedSync, Indexing, PolynomialDegree, Resampler};

use crate::error::{Error, ErrorKind, Result, Stage};

/// Input frames the resampler takes per call.
const CHUNK: usize = 1024;
/// Above this minimum block (input rate / gcd), the FFT resampler is not used.
const MAX_FFT_BLOCK: usize = 4096;

/// Streams mono samples from one rate to another, keeping only one chunk of state.
pub struct MonoResampler {
    inner: Option<Box<dyn Resampler<f32>>>,
    pending: Vec<f32>,
    out_chunk: Vec<f32>,
    /// Output frames still to drop at the start: the resampler's delay.
    delay_left: usize,
    /// Output frames owed in total, so the tail can be trimmed to the exact length.
    input_frames: u64,
    output_frames: u64,
    ratio: f64,
}

impl MonoResampler {
    /// A resampler from `input_rate` to `output_rate` Hz (a pass-through when they are
    /// equal), each a rate a file may have ([`crate::decode::SAMPLE_RATES`]): from 1 Hz to
    /// 11,025 Hz, 10,000 samples became 110 million.
    pub fn new(input_rate: u32, output_rate: u32) -> Result<Self> {
        for rate in [input_rate, output_rate] {
            if !crate::decode::SAMPLE_RATES.contains(&rate) {
                return Err(Error::new(
                    ErrorKind::UnsupportedFormat,
                    Stage::Resample,
                    format!(
                        "a sample rate of {rate} Hz (rates of {} to {} Hz are resampled)",
                        crate::decode::SAMPLE_RATES.start(),
                        crate::decode::SAMPLE_RATES.end()
                    ),
                ));
            }
        }
        let ratio = f64::from(output_rate) / f64::from(input_rate);
        let inner: Option<Box<dyn Resampler<f32>>> = if input_rate == output_rate {
            None
        } else if (input_rate / gcd(input_rate, output_rate)) as usize <= MAX_FFT_BLOCK {
            let fft = Fft::<f32>::new(
                input_rate as usize,
                output_rate as usize,
                CHUNK,
                1,
                FixedSync::Input,
            )
            .map_err(|e| {
                Error::new(ErrorKind::UnsupportedFormat, Stage::Resample, e.to_string())
            })?;
            Some(Box::new(fft))
        } else {
            let poly = Async::<f32>::new_poly(
                ratio,
                1.0,
                PolynomialDegree::Cubic,
                CHUNK,
                1,
                FixedAsync::Input,
            )
            .map_err(|e| {
                Error::new(ErrorKind::UnsupportedFormat, Stage::Resample, e.to_string())
            })?;
            Some(Box::new(poly))
        };
        let (delay_left, out_max) = inner
            .as_ref()
            .map_or((0, 0), |r| (r.output_delay(), r.output_frames_max()));
        Ok(MonoResampler {
            inner,
            pending: Vec::with_capacity(CHUNK),
            out_chunk: vec![0.0; out_max],
            delay_left,
            input_frames: 0,
            output_frames: 0,
            ratio,
        })
    }

    /// Resamples `input`, appending what is ready to `output`. A sample that is not audio
    /// (NaN, infinite, beyond ±[`crate::decode::MAX_SAMPLE`]) is taken as silence, as the
    /// decoder takes it: a NaN made rubato's FFT resampler panic.
    pub fn push(&mut self, mut input: &[f32], output: &mut Vec<f32>) -> Result<()> {
        let audio = |&s: &f32| crate::decode::audio_or_silence(s);
        self.input_frames += input.len() as u64;
        if self.inner.is_none() {
            output.extend(input.iter().map(audio));
            self.output_frames += input.len() as u64;
            return Ok(());
        }
        while !input.is_empty() {
            let need = CHUNK - self.pending.len();
            let take = need.min(input.len());
            self.pending.extend(input[..take].iter().map(audio));
            input = &input[take..];
            if self.pending.len() == CHUNK {
                self.process_pending(None, output)?;
            }
        }
        Ok(())
    }

    /// Flushes what is buffered, so that `output` holds the whole resampled signal.
    pub fn finish(&mut self, output: &mut Vec<f32>) -> Result<()> {
        if self.inner.is_none() {
            return Ok(());
        }
        let owed = (self.input_frames as f64 * self.ratio).round() as u64;
        // Push the partial chunk, then silence, until the delayed tail is out.
        let partial = self.pending.len();
        self.pending.resize(CHUNK, 0.0);
        self.process_pending(Some(partial), output)?;
        let mut guard = 0;
        while self.output_frames < owed && guard < 64 {
            self.pending.resize(CHUNK, 0.0);
            self.process_pending(Some(0), output)?;
            guard += 1;
        }
        if self.output_frames > owed {
            let extra = (self.output_frames - owed) as usize;
            output.truncate(output.len().saturating_sub(extra));
            self.output_frames = owed;
        }
        Ok(())
    }

    fn process_pending(&mut self, partial: Option<usize>, output: &mut Vec<f32>) -> Result<()> {
        let resampler = self.inner.as_mut().expect("only called with a resampler");
        let input = InterleavedSlice::new(&self.pending[..], 1, CHUNK).map_err(|e| {
            Error::new(ErrorKind::UnsupportedFormat, Stage::Resample, e.to_string())
        })?;
        let out_len = self.out_chunk.len();
        let mut out =
            InterleavedSlice::new_mut(&mut self.out_chunk[..], 1, out_len).map_err(|e| {
                Error::new(ErrorKind::UnsupportedFormat, Stage::Resample, e.to_string())
            })?;
        let indexing = partial.map(|n| Indexing::new().partial_len(n));
        let (_, produced) = resampler
            .process_into_buffer(&input, &mut out, indexing.as_ref())
            .map_err(|e| {
                Error::new(ErrorKind::UnsupportedFormat, Stage::Resample, e.to_string())
            })?;
        self.pending.clear();
        let skip = self.delay_left.min(produced);
        self.delay_left -= skip;
        output.extend_from_slice(&self.out_chunk[skip..produced]);
        self.output_frames += (produced - skip) as u64;
        Ok(())
    }
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(rate: u32, freq: f32, seconds: f32) -> Vec<f32> {
        let n = (rate as f32 * seconds) as usize;
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    fn resample_all(input: &[f32], from: u32, to: u32, piece: usize) -> Vec<f32> {
        let mut r = MonoResampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(piece) {
            r.push(chunk, &mut out).unwrap();
        }
        r.finish(&mut out).unwrap();
        out
    }

    #[test]
    fn length_follows_the_ratio_for_common_and_odd_rates() {
        for (from, to) in [
            (44_100, 11_025),
            (48_000, 11_025),
            (8_000, 11_025),
            (44_101, 11_025),
        ] {
            let input = sine(from, 440.0, 2.0);
            let out = resample_all(&input, from, to, 777);
            let expected = (input.len() as f64 * f64::from(to) / f64::from(from)).round() as usize;
            assert_eq!(out.len(), expected, "{from} -> {to}");
        }
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_level() {
        let out = resample_all(&sine(44_100, 441.0, 2.0), 44_100, 11_025, 4096);
        // Compare with the same tone generated at the output rate, skipping the edges.
        let reference = sine(11_025, 441.0, 2.0);
        let mid = &out[2000..20_000];
        let err: f32 = mid
            .iter()
            .zip(&reference[2000..20_000])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
    }

    #[test]
    fn chunking_of_the_input_does_not_change_the_output() {
        let input = sine(48_000, 1000.0, 1.0);
        assert_eq!(
            resample_all(&input, 48_000, 11_025, 100),
            resample_all(&input, 48_000, 11_025, 5000)
        );
    }

    /// Samples that are not audio are silence, on the FFT path, the polynomial one and the
    /// pass-through alike (a NaN made the FFT resampler panic); rates no file may have are
    /// refused (1 Hz to 11,025 Hz multiplied the samples 11,025 times).
    #[test]
    fn samples_that_are_not_audio_are_silence_and_odd_rates_are_refused() {
        let mut damaged = sine(44_100, 440.0, 1.0);
        for (i, bad) in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::MAX]
            .iter()
            .enumerate()
        {
            damaged[100 + i * 1000] = *bad;
        }
        let mut silenced = damaged.clone();
        for s in &mut silenced {
            if !s.is_finite() || s.abs() > crate::decode::MAX_SAMPLE {
                *s = 0.0;
            }
        }
        for (from, to) in [(44_100, 11_025), (44_101, 11_025), (44_100, 44_100)] {
            let out = resample_all(&damaged[..from.min(44_100) as usize], from, to, 700);
            assert!(out.iter().all(|s| s.is_finite()), "{from} -> {to}");
            assert_eq!(
                out,
                resample_all(&silenced[..from.min(44_100) as usize], from, to, 700)
            );
        }
        for (from, to) in [(1, 11_025), (3_999, 11_025), (44_100, 768_001), (0, 8_000)] {
            let err = MonoResampler::new(from, to).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::UnsupportedFormat, "{from} -> {to}");
        }
    }

    #[test]
    fn equal_rates_pass_through() {
        let input = sine(11_025, 100.0, 0.5);
        assert_eq!(resample_all(&input, 11_025, 11_025, 300), input);
    }
}
