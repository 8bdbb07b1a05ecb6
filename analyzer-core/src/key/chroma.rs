//! The pitch-class profile of a stretch of audio: spectral peaks of long frames, each
//! peak voting for its own pitch and for the notes it may be an overtone of, gathered on a
//! 10-cent circle so the tuning can be read before folding onto 12 pitch classes.
//!
//! The onset stage's frame (1024 samples at 11 025 Hz, 10.8 Hz per bin) cannot tell low
//! notes apart (semitones near 100 Hz are 6 Hz apart), so key has its own frame: about
//! 0.74 s (8192 samples at 11 025 Hz, 1.35 Hz per bin), with the peak's frequency refined by
//! a parabola through its log magnitudes. Only peaks that stand out of their neighbourhood
//! vote: a drum hit or noise spreads its energy over many bins and raises no narrow peak.

use std::sync::Arc;

use realfft::num_complex::Complex32;
use realfft::{RealFftPlanner, RealToComplex};

use crate::error::{Error, ErrorKind, Result, Stage};

/// Bins of the fine pitch circle: 10 cents each.
pub const FINE_BINS: usize = 120;
/// Seconds per frame (rounded to a power of two of samples).
const FRAME_SECONDS: f64 = 0.74;
/// Frames overlap by half.
const HOP_FRACTION: usize = 2;
/// Lowest peak frequency that votes, Hz (about D2). Below it the window's main lobe spans
/// more than a semitone.
const MIN_HZ: f64 = 70.0;
/// Highest peak frequency that votes, Hz: above it partials of low notes crowd in.
const MAX_HZ: f64 = 3_500.0;
/// The loudest peaks kept per frame.
const MAX_PEAKS: usize = 40;
/// A peak must reach this fraction of the frame's strongest peak (-40 dB).
const MIN_PEAK_RATIO: f32 = 0.01;
/// ... and this many times the mean magnitude of the bins around it.
const MIN_PROMINENCE: f32 = 3.0;
/// Half-width of that neighbourhood, in bins.
const NEIGHBOURHOOD: usize = 16;
/// A frame votes only when its narrow peaks (each with the two bins either side, the
/// window's main lobe) hold this share of its energy between the bounds above: noise and
/// drums spread their energy and raise a few chance peaks only.
pub const MIN_TONAL_SHARE: f64 = 0.3;
/// A frame votes only when the bins between the bounds above hold at least this share of
/// its whole energy (-100 dB). A constant offset (DC) puts all of a frame's energy in the
/// lowest bins, and the FFT's rounding leaves a pattern about 150 dB under it in the
/// others: measured relative to itself, that pattern has narrow, prominent peaks, and a
/// pure DC offset read as F major with confidence 0.95. Music with a DC offset keeps its
/// votes: its notes stand far less than 100 dB under the offset.
const MIN_RANGE_SHARE: f64 = 1e-10;
/// A peak also votes for the notes it would be the 2nd..`HARMONICS`th partial of. Measured
/// with `examples/key_profiles.rs` on each development source (two folk collections and
/// the synthetic set): 8 partials decaying by 0.8 scored above 4 by 0.6 on all three, and
/// 1 (no overtone votes) below both on all three.
const HARMONICS: usize = 8;
/// Each further partial's vote is this fraction of the one before.
const HARMONIC_DECAY: f32 = 0.8;
/// Frequency of C0 with A4 = 440 Hz: pitch class 0 of the circle.
const C0_HZ: f64 = 16.351_597_831_287_414; // 440 / 2^(57/12)

/// The planned front end, shared read-only between threads.
#[derive(Clone)]
pub struct ChromaPlan {
    fft: Arc<dyn RealToComplex<f32>>,
    window: Vec<f32>,
    frame: usize,
    hop: usize,
    hz_per_bin: f64,
    min_bin: usize,
    max_bin: usize,
}

impl std::fmt::Debug for ChromaPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChromaPlan")
            .field("frame", &self.frame)
            .field("hop", &self.hop)
            .finish()
    }
}

impl ChromaPlan {
    /// The sample rates a plan is made for: the analyzer's analysis rates. Under about
    /// 150 Hz the pitch range falls past the spectrum, and the first frame panicked.
    pub const SAMPLE_RATES: std::ops::RangeInclusive<u32> = 4_000..=48_000;

    /// Plans frames for a stream at `sample_rate` Hz, one of [`Self::SAMPLE_RATES`].
    pub fn new(sample_rate: u32) -> Result<Self> {
        if !Self::SAMPLE_RATES.contains(&sample_rate) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                Stage::Config,
                format!(
                    "the key is measured at {} to {} Hz (got {sample_rate})",
                    Self::SAMPLE_RATES.start(),
                    Self::SAMPLE_RATES.end()
                ),
            ));
        }
        let frame = ((f64::from(sample_rate) * FRAME_SECONDS) as usize)
            .next_power_of_two()
            .max(1024);
        // next_power_of_two rounds up: take the power of two nearest the target instead.
        let frame = if (frame as f64) > f64::from(sample_rate) * FRAME_SECONDS * 1.5 {
            frame / 2
        } else {
            frame
        };
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(frame);
        let window = crate::onset::hann(frame);
        let hz_per_bin = f64::from(sample_rate) / frame as f64;
        let nyquist_bin = frame / 2;
        let max_hz = MAX_HZ.min(f64::from(sample_rate) * 0.45);
        Ok(ChromaPlan {
            fft,
            window,
            frame,
            hop: frame / HOP_FRACTION,
            hz_per_bin,
            min_bin: ((MIN_HZ / hz_per_bin).floor() as usize).max(2),
            max_bin: ((max_hz / hz_per_bin).ceil() as usize).min(nyquist_bin - 2),
        })
    }

    /// A tracker for one stretch of audio.
    pub fn tracker(&self) -> ChromaTracker<'_> {
        ChromaTracker {
            plan: self,
            pending: Vec::with_capacity(self.frame * 2),
            input: self.fft.make_input_vec(),
            spectrum: self.fft.make_output_vec(),
            scratch: self.fft.make_scratch_vec(),
            magnitudes: vec![0.0; self.frame / 2 + 1],
            frame_profile: [0.0; FINE_BINS],
            profile: FineProfile::default(),
        }
    }
}

/// Votes gathered on the 10-cent circle, and how many frames held any.
#[derive(Debug, Clone, PartialEq)]
pub struct FineProfile {
    /// Sum over frames of each frame's votes, each frame scaled to a maximum of 1.
    pub bins: [f64; FINE_BINS],
    /// Frames over the level a listener hears that held at least one voting peak.
    pub voiced_frames: usize,
    /// Frames analysed.
    pub frames: usize,
    /// Frames under the level a listener hears ([`crate::level`]), digital silence
    /// included: the share of voiced frames is taken without them, so that a song
    /// followed by minutes of silence keeps its key. Their votes count as before (each
    /// frame's votes are scaled to its own maximum), so the chroma of music is unchanged.
    pub quiet_frames: usize,
    /// Frames of digital silence (every sample zero), counted in `quiet_frames` too.
    pub silent_frames: usize,
}

impl Default for FineProfile {
    fn default() -> Self {
        FineProfile {
            bins: [0.0; FINE_BINS],
            voiced_frames: 0,
            frames: 0,
            quiet_frames: 0,
            silent_frames: 0,
        }
    }
}

impl FineProfile {
    /// Adds another stretch's votes (the segments of a sampled file).
    pub fn merge(&mut self, other: &FineProfile) {
        for (a, b) in self.bins.iter_mut().zip(other.bins.iter()) {
            *a += b;
        }
        // Saturating: counts set by hand near usize::MAX overflowed (a debug panic).
        self.voiced_frames = self.voiced_frames.saturating_add(other.voiced_frames);
        self.frames = self.frames.saturating_add(other.frames);
        self.quiet_frames = self.quiet_frames.saturating_add(other.quiet_frames);
        self.silent_frames = self.silent_frames.saturating_add(other.silent_frames);
    }

    /// Frames at or over the level a listener hears: those the share of voiced frames is
    /// taken over.
    pub fn audible_frames(&self) -> usize {
        self.frames.saturating_sub(self.quiet_frames)
    }

    /// The tuning: the offset, in 10-cent bins (-5..=4), of the semitone grid the votes
    /// gather on, read as the circular mean of where within its semitone each vote fell.
    pub fn tuning_bins(&self) -> i32 {
        let (mut x, mut y) = (0.0f64, 0.0f64);
        for (i, &v) in self.bins.iter().enumerate() {
            let angle = std::f64::consts::TAU * (i % 10) as f64 / 10.0;
            x += v * angle.cos();
            y += v * angle.sin();
        }
        if x == 0.0 && y == 0.0 {
            return 0;
        }
        let offset = (y.atan2(x) / std::f64::consts::TAU * 10.0).round() as i32;
        (offset + 15).rem_euclid(10) - 5
    }

    /// The 12 pitch classes (C first), each the votes within half a semitone of it on the
    /// tuned grid.
    pub fn chroma(&self) -> [f64; 12] {
        let tuning = self.tuning_bins();
        let mut chroma = [0.0; 12];
        for (pitch, value) in chroma.iter_mut().enumerate() {
            let centre = pitch as i32 * 10 + tuning;
            *value = (-5..5)
                .map(|d| self.bins[(centre + d).rem_euclid(FINE_BINS as i32) as usize])
                .sum();
        }
        chroma
    }
}

/// The front end over one stretch of audio: push samples, then `finish`.
pub struct ChromaTracker<'a> {
    plan: &'a ChromaPlan,
    pending: Vec<f32>,
    input: Vec<f32>,
    spectrum: Vec<Complex32>,
    scratch: Vec<Complex32>,
    magnitudes: Vec<f32>,
    frame_profile: [f64; FINE_BINS],
    profile: FineProfile,
}

impl ChromaTracker<'_> {
    /// Adds samples at the plan's rate.
    pub fn push(&mut self, samples: &[f32]) {
        self.pending.extend_from_slice(samples);
        let (frame, hop) = (self.plan.frame, self.plan.hop);
        let mut start = 0;
        while self.pending.len() - start >= frame {
            self.analyse_frame(start);
            start += hop;
        }
        self.pending.drain(..start);
    }

    /// The votes of every whole frame pushed (a last partial frame is dropped, as the
    /// onset stage drops it).
    pub fn finish(self) -> FineProfile {
        self.profile
    }

    fn analyse_frame(&mut self, start: usize) {
        let plan = self.plan;
        let samples = &self.pending[start..start + plan.frame];
        let sum_of_squares: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        let audible = crate::level::is_audible(sum_of_squares, samples.len());
        if !audible {
            self.profile.quiet_frames += 1;
            if sum_of_squares == 0.0 {
                self.profile.silent_frames += 1;
            }
        }
        for ((x, &s), &w) in self
            .input
            .iter_mut()
            .zip(&self.pending[start..start + plan.frame])
            .zip(&plan.window)
        {
            *x = s * w;
        }
        let frame_energy: f64 = self
            .input
            .iter()
            .map(|&x| f64::from(x) * f64::from(x))
            .sum();
        self.profile.frames += 1;
        if plan
            .fft
            .process_with_scratch(&mut self.input, &mut self.spectrum, &mut self.scratch)
            .is_err()
        {
            return;
        }
        // Only the bins that peak picking reads (the voting range and its neighbourhoods);
        // the ones above stay 0 and are never looked at.
        let read = (plan.max_bin + NEIGHBOURHOOD + 1).min(self.magnitudes.len());
        for (m, c) in self.magnitudes[..read].iter_mut().zip(&self.spectrum) {
            *m = c.norm();
        }
        if range_share(&self.magnitudes, plan, frame_energy) < MIN_RANGE_SHARE {
            return;
        }
        let peaks = peaks(&self.magnitudes, plan.min_bin, plan.max_bin);
        if peaks.is_empty() || tonal_share(&self.magnitudes, plan, &peaks) < MIN_TONAL_SHARE {
            return;
        }
        self.frame_profile = [0.0; FINE_BINS];
        for peak in &peaks {
            let hz = peak.bin * plan.hz_per_bin;
            let cents = 1200.0 * (hz / C0_HZ).log2();
            let mut weight = f64::from(peak.magnitude);
            for harmonic in 1..=HARMONICS {
                let fundamental = cents - 1200.0 * (harmonic as f64).log2();
                vote(&mut self.frame_profile, fundamental, weight);
                weight *= f64::from(HARMONIC_DECAY);
            }
        }
        let max = self.frame_profile.iter().cloned().fold(0.0, f64::max);
        if max > 0.0 {
            for (total, v) in self.profile.bins.iter_mut().zip(&self.frame_profile) {
                *total += v / max;
            }
            if audible {
                self.profile.voiced_frames += 1;
            }
        }
    }
}

/// The share of a frame's energy (`frame_energy`, the sum of its windowed samples'
/// squares) that lies between the plan's bounds: by Parseval, a real FFT's bin `k` between
/// 0 and N/2 holds `2 |X_k|^2 / N` of it.
fn range_share(magnitudes: &[f32], plan: &ChromaPlan, frame_energy: f64) -> f64 {
    if frame_energy <= 0.0 {
        return 0.0;
    }
    let in_range: f64 = magnitudes[plan.min_bin..=plan.max_bin]
        .iter()
        .map(|&m| f64::from(m) * f64::from(m))
        .sum();
    2.0 * in_range / plan.frame as f64 / frame_energy
}

/// The share of the energy between the plan's bounds that lies in `peaks`' main lobes.
fn tonal_share(magnitudes: &[f32], plan: &ChromaPlan, peaks: &[Peak]) -> f64 {
    let energy = |range: std::ops::RangeInclusive<usize>| -> f64 {
        magnitudes[range]
            .iter()
            .map(|&m| f64::from(m) * f64::from(m))
            .sum()
    };
    let total = energy(plan.min_bin..=plan.max_bin);
    if total <= 0.0 {
        return 0.0;
    }
    // Lobes of neighbouring peaks may overlap: count each bin once.
    let mut last_end = 0;
    let mut in_peaks = 0.0;
    for peak in peaks_by_bin(peaks) {
        let centre = peak.bin.round() as usize;
        let start = centre.saturating_sub(2).max(plan.min_bin).max(last_end);
        let end = (centre + 2).min(plan.max_bin);
        if start <= end {
            in_peaks += energy(start..=end);
            last_end = end + 1;
        }
    }
    in_peaks / total
}

/// The peaks in frequency order.
fn peaks_by_bin(peaks: &[Peak]) -> Vec<&Peak> {
    let mut sorted: Vec<&Peak> = peaks.iter().collect();
    sorted.sort_by(|a, b| a.bin.total_cmp(&b.bin));
    sorted
}

/// A spectral peak: fractional bin and magnitude.
struct Peak {
    bin: f64,
    magnitude: f32,
}

/// The loudest narrow peaks between `min_bin` and `max_bin`: local maxima that reach
/// [`MIN_PEAK_RATIO`] of the loudest and [`MIN_PROMINENCE`] times their neighbourhood's
/// mean, refined by a parabola through the log magnitudes.
fn peaks(magnitudes: &[f32], min_bin: usize, max_bin: usize) -> Vec<Peak> {
    let mut found: Vec<Peak> = Vec::new();
    let loudest = magnitudes[min_bin..=max_bin]
        .iter()
        .cloned()
        .fold(0.0f32, f32::max);
    if loudest <= 0.0 {
        return found;
    }
    for k in min_bin..=max_bin {
        let m = magnitudes[k];
        if m < loudest * MIN_PEAK_RATIO || m <= magnitudes[k - 1] || m < magnitudes[k + 1] {
            continue;
        }
        let lo = k.saturating_sub(NEIGHBOURHOOD);
        let hi = (k + NEIGHBOURHOOD).min(magnitudes.len() - 1);
        let mean = magnitudes[lo..=hi].iter().sum::<f32>() / (hi - lo + 1) as f32;
        if m < mean * MIN_PROMINENCE {
            continue;
        }
        let (a, b, c) = (
            f64::from(magnitudes[k - 1].max(1e-12)).ln(),
            f64::from(m).ln(),
            f64::from(magnitudes[k + 1].max(1e-12)).ln(),
        );
        let denominator = a - 2.0 * b + c;
        let shift = if denominator < 0.0 {
            (0.5 * (a - c) / denominator).clamp(-0.5, 0.5)
        } else {
            0.0
        };
        found.push(Peak {
            bin: k as f64 + shift,
            magnitude: m,
        });
    }
    if found.len() > MAX_PEAKS {
        // Loudest first; ties by bin so the choice never depends on the sort's whims.
        found.sort_by(|x, y| {
            y.magnitude
                .total_cmp(&x.magnitude)
                .then(x.bin.total_cmp(&y.bin))
        });
        found.truncate(MAX_PEAKS);
    }
    found
}

/// Adds `weight` at `cents` above C (any octave) to the 10-cent circle, shared between the
/// two nearest bins.
fn vote(profile: &mut [f64; FINE_BINS], cents: f64, weight: f64) {
    let position = (cents / 10.0).rem_euclid(FINE_BINS as f64);
    let lower = position.floor();
    let fraction = position - lower;
    let lower = lower as usize % FINE_BINS;
    profile[lower] += weight * (1.0 - fraction);
    profile[(lower + 1) % FINE_BINS] += weight * fraction;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rate under the pitch range is refused when the plan is made; it planned, and
    /// the first full frame panicked out of the spectrum's bounds.
    #[test]
    fn a_plan_is_made_only_for_analysis_rates() {
        for rate in [0, 1, 100, 3_999, 48_001] {
            let err = ChromaPlan::new(rate).err().unwrap();
            assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{rate}");
        }
        let plan = ChromaPlan::new(4_000).unwrap();
        let mut tracker = plan.tracker();
        tracker.push(&vec![0.25f32; 20_000]);
        tracker.finish();
    }

    fn tone(rate: u32, seconds: f64, partials: &[(f64, f32)]) -> Vec<f32> {
        (0..(f64::from(rate) * seconds) as usize)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                partials
                    .iter()
                    .map(|&(hz, amp)| amp * (std::f64::consts::TAU * hz * t).sin() as f32)
                    .sum()
            })
            .collect()
    }

    fn profile_of(samples: &[f32]) -> FineProfile {
        let plan = ChromaPlan::new(11_025).unwrap();
        let mut tracker = plan.tracker();
        for chunk in samples.chunks(1000) {
            tracker.push(chunk);
        }
        tracker.finish()
    }

    fn loudest(chroma: &[f64; 12]) -> usize {
        (0..12)
            .max_by(|&a, &b| chroma[a].total_cmp(&chroma[b]))
            .unwrap()
    }

    #[test]
    fn the_frame_resolves_low_semitones() {
        let plan = ChromaPlan::new(11_025).unwrap();
        assert_eq!(plan.frame, 8192);
        assert!(plan.hz_per_bin < 1.4);
    }

    #[test]
    fn a_low_note_lands_on_its_pitch_class() {
        // A2 = 110 Hz and its partials; then the semitone above, A#2.
        for (hz, pitch) in [(110.0, 9), (116.54, 10), (73.42, 2), (1046.5, 0)] {
            let samples = tone(11_025, 4.0, &[(hz, 0.5), (2.0 * hz, 0.25), (3.0 * hz, 0.1)]);
            let chroma = profile_of(&samples).chroma();
            assert_eq!(loudest(&chroma), pitch, "{hz} Hz: {chroma:?}");
        }
    }

    #[test]
    fn a_detuned_instrument_is_folded_on_its_own_grid() {
        // An A tuned to 432 Hz is 32 cents flat: three bins below the 440 grid.
        let samples = tone(11_025, 4.0, &[(432.0, 0.5), (648.0, 0.3)]);
        let profile = profile_of(&samples);
        assert_eq!(profile.tuning_bins(), -3);
        let chroma = profile.chroma();
        assert_eq!(loudest(&chroma), 9, "{chroma:?}");
    }

    #[test]
    fn chunking_does_not_change_the_votes() {
        let samples = tone(11_025, 5.0, &[(261.63, 0.4), (329.63, 0.3), (392.0, 0.3)]);
        let plan = ChromaPlan::new(11_025).unwrap();
        let mut whole = plan.tracker();
        whole.push(&samples);
        let mut pieces = plan.tracker();
        for chunk in samples.chunks(777) {
            pieces.push(chunk);
        }
        assert_eq!(whole.finish(), pieces.finish());
    }

    /// A constant offset is no pitch: the FFT's rounding noise under it must not vote (it
    /// read as F major, confidence 0.95). A quiet note on top of the offset still votes.
    #[test]
    fn a_dc_offset_votes_for_nothing_and_a_note_over_it_still_does() {
        for level in [0.5f32, -0.001, 0.99] {
            let profile = profile_of(&vec![level; 11_025 * 3]);
            assert_eq!(profile.voiced_frames, 0, "offset {level}");
            assert!(profile.frames > 0);
        }
        let note = tone(11_025, 3.0, &[(440.0, 0.001)]);
        let over_offset: Vec<f32> = note.iter().map(|s| s + 0.5).collect();
        let profile = profile_of(&over_offset);
        assert_eq!(profile.voiced_frames, profile.frames);
        assert_eq!(loudest(&profile.chroma()), 9, "A");
    }

    #[test]
    fn silence_votes_for_nothing() {
        let profile = profile_of(&vec![0.0; 11_025 * 3]);
        assert_eq!(profile.voiced_frames, 0);
        assert!(profile.frames > 0);
        assert_eq!(profile.chroma(), [0.0; 12]);
    }
}
