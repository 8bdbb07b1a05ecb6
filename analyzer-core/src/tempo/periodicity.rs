//! Periodicity of an onset envelope: detrending, the windowed FFT autocorrelation, the
//! harmonic comb over it with its tempo prior, and the sub-frame refinement of a peak.
//! Everything here is measured on one envelope's numbers; which level is the beat is
//! decided in [`super::features`] and [`crate::metrical`].

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

/// Envelope frames per autocorrelation window (about 24 s at 86 frames/s).
pub(super) const ACF_WINDOW: usize = 2048;
/// Weights of the beat period and its multiples in the coarse comb.
pub(super) const COMB_WEIGHTS: [f64; 4] = [1.0, 0.75, 0.5, 0.5];
/// Centre (BPM) and width (octaves, one standard deviation) of the tempo prior.
pub(super) const PRIOR_CENTER_BPM: f64 = 120.0;
const PRIOR_WIDTH_OCTAVES: f64 = 1.2;

/// The autocorrelation's FFT plans, made once and shared read-only.
#[derive(Clone)]
pub(super) struct Autocorrelator {
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl Autocorrelator {
    pub(super) fn new() -> Self {
        let mut planner = RealFftPlanner::<f64>::new();
        Autocorrelator {
            forward: planner.plan_fft_forward(2 * ACF_WINDOW),
            inverse: planner.plan_fft_inverse(2 * ACF_WINDOW),
        }
    }

    /// Unbiased autocorrelation up to `ACF_WINDOW` lags, averaged over half-overlapping
    /// windows of every segment (no window spans two: the phase jumps at a seam).
    pub(super) fn autocorrelation(&self, segments: &[Vec<f32>]) -> Vec<f64> {
        let mut sums = vec![0.0f64; ACF_WINDOW];
        let mut counts = vec![0.0f64; ACF_WINDOW];
        for x in segments.iter().filter(|x| !x.is_empty()) {
            self.accumulate_autocorrelation(x, &mut sums, &mut counts);
        }
        sums.iter()
            .zip(&counts)
            .map(|(s, &c)| if c > 0.0 { s / c } else { 0.0 })
            .collect()
    }

    /// Adds the lag products of `x`'s windows to `sums` and their pair counts to `counts`.
    fn accumulate_autocorrelation(&self, x: &[f32], sums: &mut [f64], counts: &mut [f64]) {
        let mut input = self.forward.make_input_vec();
        let mut spectrum = self.forward.make_output_vec();
        let mut output = self.inverse.make_output_vec();
        let mut scratch_f = self.forward.make_scratch_vec();
        let mut scratch_i = self.inverse.make_scratch_vec();
        let hop = ACF_WINDOW / 2;
        let mut start = 0;
        loop {
            let end = (start + ACF_WINDOW).min(x.len());
            let window = &x[start..end];
            let mean = window.iter().map(|&v| f64::from(v)).sum::<f64>() / window.len() as f64;
            input.iter_mut().for_each(|v| *v = 0.0);
            for (dst, &v) in input.iter_mut().zip(window) {
                *dst = f64::from(v) - mean;
            }
            self.forward
                .process_with_scratch(&mut input, &mut spectrum, &mut scratch_f)
                .expect("buffers made by the plan");
            for c in spectrum.iter_mut() {
                *c = Complex64::new(c.norm_sqr(), 0.0);
            }
            self.inverse
                .process_with_scratch(&mut spectrum, &mut output, &mut scratch_i)
                .expect("buffers made by the plan");
            let scale = 1.0 / (2 * ACF_WINDOW) as f64;
            for lag in 0..window.len().min(ACF_WINDOW) {
                sums[lag] += output[lag] * scale;
                counts[lag] += (window.len() - lag) as f64;
            }
            if end == x.len() {
                break;
            }
            start += hop;
        }
    }
}

/// `acf` divided by its value at lag 0; `None` for a silent or constant input.
pub(super) fn normalised(acf: Vec<f64>) -> Option<Vec<f64>> {
    let zero = acf[0];
    if zero.is_nan() || zero <= 1e-12 {
        return None;
    }
    Some(acf.into_iter().map(|v| v / zero).collect())
}

/// The envelope minus its centred moving average over `width` frames, clamped at zero.
pub(super) fn detrend(values: &[f32], width: usize) -> Vec<f32> {
    let half = (width / 2).max(1);
    let mut prefix = Vec::with_capacity(values.len() + 1);
    prefix.push(0.0f64);
    for &v in values {
        prefix.push(prefix.last().copied().unwrap_or(0.0) + f64::from(v));
    }
    (0..values.len())
        .map(|i| {
            let lo = i.saturating_sub(half);
            let hi = (i + half + 1).min(values.len());
            let mean = (prefix[hi] - prefix[lo]) / (hi - lo) as f64;
            (f64::from(values[i]) - mean).max(0.0) as f32
        })
        .collect()
}

/// Linear interpolation of `acf` at a fractional lag; 0 beyond its end.
pub(super) fn interpolate(acf: &[f64], lag: f64) -> f64 {
    if lag < 0.0 {
        return 0.0;
    }
    let i = lag.floor() as usize;
    if i + 1 >= acf.len() {
        return 0.0;
    }
    let frac = lag - i as f64;
    acf[i] * (1.0 - frac) + acf[i + 1] * frac
}

/// Weighted sum of the autocorrelation at multiples of `period` frames.
pub(super) fn comb(acf: &[f64], period: f64, weights: &[f64]) -> f64 {
    weights
        .iter()
        .enumerate()
        .map(|(m, w)| w * interpolate(acf, period * (m + 1) as f64))
        .sum()
}

/// Beat multiples summed by [`comb_significance`].
const SIGNIFICANCE_MULTIPLES: usize = 8;

/// For each beat period in `periods` (frames), how many standard deviations the normalised
/// autocorrelation summed over the first multiples of the period stands above what an
/// envelope without a pulse gives. Without a pulse the autocorrelation at a lag is about
/// normal with mean 0 and variance `s2 / pairs` (Bartlett's formula: `s2` is 1 plus twice
/// the squared autocorrelation at the lags shorter than `shortest_period`, the short memory
/// that the STFT's overlapping frames give any envelope; `pairs` the frame pairs at that
/// lag in the `lengths` of the segments), and lags a beat apart are independent. Multiples
/// go up to half the longest segment, where there are still half its frames to pair.
pub(super) fn comb_significance(
    acf: &[f64],
    lengths: &[usize],
    periods: &[f64],
    shortest_period: usize,
) -> Vec<f64> {
    let short = &acf[1..shortest_period.clamp(1, acf.len())];
    let s2 = 1.0 + 2.0 * short.iter().map(|r| r * r).sum::<f64>();
    let pairs = |lag: f64| -> f64 {
        lengths
            .iter()
            .map(|&len| (len as f64 - lag).max(0.0))
            .sum::<f64>()
            .max(1.0)
    };
    let longest = lengths.iter().copied().max().unwrap_or(0) as f64;
    let max_lag = (longest * 0.5).min(acf.len() as f64 - 2.0);
    periods
        .iter()
        .map(|&period| {
            let (mut sum, mut variance) = (0.0, 0.0);
            for k in 1..=SIGNIFICANCE_MULTIPLES {
                let lag = period * k as f64;
                if k > 1 && lag > max_lag {
                    break;
                }
                sum += interpolate(acf, lag);
                variance += s2 / pairs(lag);
            }
            sum / variance.sqrt()
        })
        .collect()
}

/// Log-normal preference for tempi near the centre, 1 at the centre.
pub(super) fn prior(bpm: f64) -> f64 {
    let octaves = (bpm / PRIOR_CENTER_BPM).log2() / PRIOR_WIDTH_OCTAVES;
    (-0.5 * octaves * octaves).exp()
}

/// Indices of the strict local maxima of `scores`, best first (ties keep the lower index).
pub(super) fn local_maxima(scores: &[f64]) -> Vec<usize> {
    let n = scores.len();
    let mut peaks: Vec<usize> = (0..n)
        .filter(|&i| {
            let left = i == 0 || scores[i] > scores[i - 1];
            let right = i + 1 == n || scores[i] >= scores[i + 1];
            left && right && scores[i] > 0.0
        })
        .collect();
    peaks.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    peaks
}

/// Refines `bpm` to sub-frame precision: the period that maximises the comb over every
/// multiple of the beat that fits in the autocorrelation, searched within ±2 %.
pub(super) fn refine(acf: &[f64], frame_rate: f64, bpm: f64) -> f64 {
    let period = 60.0 * frame_rate / bpm;
    let multiples = ((acf.len() as f64 * 0.6) / period).floor().clamp(1.0, 32.0) as usize;
    let weights = vec![1.0; multiples];
    const STEPS: usize = 400;
    let lo = period * 0.98;
    let step = period * 0.04 / STEPS as f64;
    let score = |k: usize| comb(acf, lo + step * k as f64, &weights);
    let mut best = 0;
    let mut best_score = f64::MIN;
    for k in 0..=STEPS {
        let s = score(k);
        if s > best_score {
            best = k;
            best_score = s;
        }
    }
    // Parabolic interpolation between the neighbouring grid steps.
    let mut offset = 0.0;
    if best > 0 && best < STEPS {
        let (a, b, c) = (score(best - 1), best_score, score(best + 1));
        let denom = a - 2.0 * b + c;
        if denom < 0.0 {
            offset = (0.5 * (a - c) / denom).clamp(-0.5, 0.5);
        }
    }
    60.0 * frame_rate / (lo + step * (best as f64 + offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `len` xorshift values in 0..1, continuing from `state`.
    fn uniform(len: usize, state: &mut u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                *state ^= *state << 13;
                *state ^= *state >> 7;
                *state ^= *state << 17;
                (*state >> 40) as f32 / (1u64 << 24) as f32
            })
            .collect()
    }

    fn naive_autocorrelation(segments: &[&[f32]]) -> Vec<f64> {
        let mut sums = vec![0.0f64; ACF_WINDOW];
        let mut counts = vec![0.0f64; ACF_WINDOW];
        for x in segments {
            naive_windows(x, &mut sums, &mut counts);
        }
        sums.iter()
            .zip(&counts)
            .map(|(s, &c)| if c > 0.0 { s / c } else { 0.0 })
            .collect()
    }

    fn naive_windows(x: &[f32], sums: &mut [f64], counts: &mut [f64]) {
        let mut start = 0;
        loop {
            let end = (start + ACF_WINDOW).min(x.len());
            let w: Vec<f64> = x[start..end].iter().map(|&v| f64::from(v)).collect();
            let mean = w.iter().sum::<f64>() / w.len() as f64;
            for lag in 0..w.len() {
                sums[lag] += (lag..w.len())
                    .map(|i| (w[i] - mean) * (w[i - lag] - mean))
                    .sum::<f64>();
                counts[lag] += (w.len() - lag) as f64;
            }
            if end == x.len() {
                break;
            }
            start += ACF_WINDOW / 2;
        }
    }

    #[test]
    fn fft_autocorrelation_matches_the_naive_sum() {
        let est = Autocorrelator::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [700, 2048, 3500] {
            let x = uniform(len, &mut state);
            let fast = est.autocorrelation(std::slice::from_ref(&x));
            let slow = naive_autocorrelation(&[&x]);
            assert_close(&fast, &slow, &format!("len {len}"));
            // Segments pool their windows; no window spans two of them.
            let (a, b) = x.split_at(len / 3);
            let parts = [a.to_vec(), b.to_vec()];
            let fast = est.autocorrelation(&parts);
            let slow = naive_autocorrelation(&[a, b]);
            assert_close(&fast, &slow, &format!("len {len} in two"));
            assert_ne!(fast, est.autocorrelation(std::slice::from_ref(&x)));
        }
    }

    fn assert_close(fast: &[f64], slow: &[f64], what: &str) {
        let scale = slow[0].abs().max(1e-12);
        for (lag, (a, b)) in fast.iter().zip(slow).enumerate() {
            assert!(
                (a - b).abs() <= 1e-9 * scale,
                "{what} lag {lag}: {a} vs {b}"
            );
        }
    }

    /// Under the null (an envelope without a pulse) the significance of every period is
    /// about a standard normal; a pulse train's period stands far above it.
    #[test]
    fn comb_significance_is_standard_normal_for_noise_and_large_for_a_pulse() {
        let noise = uniform(6000, &mut 0x9e37_79b9_7f4a_7c15u64);
        let est = Autocorrelator::new();
        let periods: Vec<f64> = (0..400).map(|i| 25.0 + 0.2 * i as f64).collect();
        let acf = normalised(est.autocorrelation(std::slice::from_ref(&noise))).unwrap();
        let z = comb_significance(&acf, &[noise.len()], &periods, 20);
        let mean = z.iter().sum::<f64>() / z.len() as f64;
        let sd = (z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64).sqrt();
        assert!(mean.abs() < 0.5 && (0.6..1.5).contains(&sd), "{mean} {sd}");
        assert!(z.iter().all(|v| v.abs() < 5.0), "{z:?}");
        let pulse: Vec<f32> = (0..6000).map(|i| f32::from(i % 43 == 0)).collect();
        let acf = normalised(est.autocorrelation(std::slice::from_ref(&pulse))).unwrap();
        let z = comb_significance(&acf, &[pulse.len()], &[43.0], 20);
        assert!(z[0] > 50.0, "{z:?}");
    }

    #[test]
    fn detrend_removes_a_constant() {
        assert!(detrend(&[3.0; 100], 10).iter().all(|&v| v == 0.0));
    }
}
