//! Tempo estimation: from an onset envelope to a BPM, a confidence and ranked candidates.
//!
//! 1. **Detrend.** The envelope minus its moving average, half-wave rectified, so that
//!    loud passages do not outweigh quiet ones.
//! 2. **Autocorrelation.** Computed by FFT over fixed windows of the envelope (one plan,
//!    made once) and averaged with unbiased weights: memory stays bounded for any length.
//! 3. **Harmonic comb.** Each tempo on a fine log grid scores the autocorrelation at its
//!    beat period and the first multiples of it (bars repeat the beat), weighted by a broad
//!    log-normal prior; its strongest peaks are the hypotheses.
//! 4. **Hypotheses.** The strongest peaks plus the metrical relatives of the best one
//!    (x1/3 .. x3), each refined to a fraction of a frame by fitting the comb over many
//!    multiples of the beat (a peak at 8 beats is 8 times sharper), so the BPM is not
//!    quantised to frames. A reading whose own beat does not recur is dropped.
//! 5. **Metrical level.** Which hypothesis is the beat is decided by the learned model in
//!    [`crate::metrical`] from features of each one: autocorrelation of the full, kick and
//!    snare bands at its multiples and fractions, how sharply the envelope folds onto it,
//!    where the onsets fall within two of its beats, and its tempo. Its softmax gives the
//!    confidence and the runner-up reading.

use std::sync::Arc;

use realfft::num_complex::Complex64;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};

use crate::error::{Error, ErrorKind, Result, Stage};
use crate::onset::OnsetEnvelope;
use crate::stop::StopSignal;

/// Envelope frames per autocorrelation window (about 24 s at 86 frames/s).
const ACF_WINDOW: usize = 2048;
/// Grid points per octave of tempo.
const GRID_PER_OCTAVE: f64 = 600.0;
/// Weights of the beat period and its multiples in the coarse comb.
const COMB_WEIGHTS: [f64; 4] = [1.0, 0.75, 0.5, 0.5];
/// Centre (BPM) and width (octaves, one standard deviation) of the tempo prior.
const PRIOR_CENTER_BPM: f64 = 120.0;
const PRIOR_WIDTH_OCTAVES: f64 = 1.2;
/// Seconds of the moving average removed from the envelope.
const DETREND_SECONDS: f64 = 1.0;
/// Below this normalised autocorrelation anywhere in the tempo range, there is no pulse.
const MIN_PULSE_CLARITY: f64 = 0.02;
/// Below this [`OnsetEnvelope::relative_novelty`] the audio is a steady tone, whatever
/// periodicity its novelty shows. Pure tones and held chords (20 Hz-1 kHz, any level)
/// measure 0.0005-0.0035; the synthetic presets at any gain and every track of the
/// synthetic sets measure 0.016 and up. The ripple of a steady tone is periodic (the
/// frames slide over the waveform), so the periodicity test alone took a 1 kHz sine for
/// 142 BPM at 0.81 confidence.
const MIN_RELATIVE_NOVELTY: f64 = 0.006;
/// Comb peaks taken as hypotheses.
const RERANK: usize = 8;
/// Phase bins of the fold test.
const FOLD_BINS: usize = 32;
/// Metrical relatives of the strongest comb peak that are always scored: the beat is often
/// not the strongest periodicity (half time, eighth notes, a 3/4 bar heard as two).
const RELATIVES: [f64; 6] = [0.5, 2.0, 1.0 / 3.0, 3.0, 2.0 / 3.0, 1.5];
/// Normalised autocorrelation a hypothesis needs at its own beat period to be scored.
const MIN_BEAT_RECURRENCE: f64 = 0.0;
/// Candidates reported besides the winner.
const MAX_CANDIDATES: usize = 5;
/// The shortest envelope analysed, in seconds.
pub const MIN_SECONDS: f64 = 2.0;

/// One tempo hypothesis and how strongly the signal supports it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TempoCandidate {
    /// Beats per minute.
    pub bpm: f64,
    /// Score relative to the winner (the winner has 1.0).
    pub strength: f64,
}

/// The result of tempo estimation.
#[derive(Debug, Clone, PartialEq)]
pub struct TempoEstimate {
    /// The estimated tempo in beats (quarter notes) per minute.
    pub bpm: f64,
    /// 0..1: pulse clarity (autocorrelation at the beat) times the margin over the best
    /// unrelated rival. Near 0 for weak or ambiguous pulses.
    pub confidence: f64,
    /// The strongest hypotheses, best first; the first is `bpm`. Strengths are each
    /// hypothesis's probability relative to the winner's.
    pub candidates: Vec<TempoCandidate>,
    /// The runner-up metrical reading (usually x2 or x1/2 of `bpm`, sometimes x3/2 or x2/3),
    /// with its share of the probability in `strength` (0..1): the other reading a DJ tool
    /// can offer. `None` when no related hypothesis was scored.
    pub alternative: Option<TempoCandidate>,
}

/// What the candidates are scored from. The detrended envelopes are kept one per segment
/// (one in all for a whole file): the phase of the beat jumps from one segment of a sampled
/// file to the next, so what folds the envelope onto a beat looks at each one on its own.
struct Evidence {
    frame_rate: f64,
    novelty: Vec<Vec<f32>>,
    acf: Vec<f64>,
    acf_high: Vec<f64>,
    acf_low: Vec<f64>,
    low: Vec<Vec<f32>>,
    high: Vec<Vec<f32>>,
    /// The strongest comb peaks (with the prior), best first; never empty.
    peak_bpms: Vec<f64>,
    /// The strongest normalised autocorrelation in the tempo range.
    clarity: f64,
}

/// One hypothesis with the features the metrical model scores.
struct Candidate {
    bpm: f64,
    features: [f64; crate::metrical::FEATURES],
}

/// The winner by model score, its probability as the confidence, the other hypotheses
/// ranked, and the runner-up metrical reading.
fn choose(candidates: &[Candidate], scores: &[f64], clarity: f64) -> Result<TempoEstimate> {
    let top = scores.iter().copied().fold(f64::MIN, f64::max);
    let weights: Vec<f64> = scores.iter().map(|s| (s - top).exp()).collect();
    let total: f64 = weights.iter().sum();
    let mut order: Vec<usize> = (0..candidates.len()).collect();
    order.sort_by(|&a, &b| {
        scores[b]
            .total_cmp(&scores[a])
            .then(candidates[a].bpm.total_cmp(&candidates[b].bpm))
    });
    let Some(&win) = order.first() else {
        return Err(Error::new(
            ErrorKind::NoPulse,
            Stage::Tempo,
            "no periodicity in the tempo range",
        ));
    };
    let bpm = candidates[win].bpm;
    let share = |i: usize| weights[i] / total;
    let candidates_out: Vec<TempoCandidate> = order
        .iter()
        .take(MAX_CANDIDATES + 1)
        .map(|&i| TempoCandidate {
            bpm: candidates[i].bpm,
            strength: weights[i] / weights[win],
        })
        .collect();
    let alternative = order
        .iter()
        .skip(1)
        .find(|&&i| is_related(candidates[i].bpm, bpm))
        .map(|&i| TempoCandidate {
            bpm: candidates[i].bpm,
            strength: share(i),
        });
    // A clear winner on a weak pulse is still a guess: scale by how periodic the signal is.
    let confidence = (share(win) * (clarity / 0.2).min(1.0).sqrt()).clamp(0.0, 1.0);
    Ok(TempoEstimate {
        bpm,
        confidence,
        candidates: candidates_out,
        alternative,
    })
}

/// `acf` divided by its value at lag 0; `None` for a silent or constant input.
fn normalised(acf: Vec<f64>) -> Option<Vec<f64>> {
    let zero = acf[0];
    if zero.is_nan() || zero <= 1e-12 {
        return None;
    }
    Some(acf.into_iter().map(|v| v / zero).collect())
}

/// The planned estimator: tempo range, grid and autocorrelation FFTs, shared read-only.
#[derive(Clone)]
pub struct TempoEstimator {
    min_bpm: f64,
    max_bpm: f64,
    forward: Arc<dyn RealToComplex<f64>>,
    inverse: Arc<dyn ComplexToReal<f64>>,
}

impl std::fmt::Debug for TempoEstimator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TempoEstimator")
            .field("min_bpm", &self.min_bpm)
            .field("max_bpm", &self.max_bpm)
            .finish()
    }
}

impl TempoEstimator {
    /// An estimator that reports tempi in `min_bpm..=max_bpm`.
    pub fn new(min_bpm: f64, max_bpm: f64) -> Result<Self> {
        if !(min_bpm.is_finite()
            && max_bpm.is_finite()
            && min_bpm >= 10.0
            && max_bpm <= 1000.0
            && min_bpm * 1.1 < max_bpm)
        {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                Stage::Config,
                format!(
                    "BPM range must satisfy 10 <= min, min * 1.1 < max <= 1000 (got {min_bpm}..{max_bpm})"
                ),
            ));
        }
        let mut planner = RealFftPlanner::<f64>::new();
        Ok(TempoEstimator {
            min_bpm,
            max_bpm,
            forward: planner.plan_fft_forward(2 * ACF_WINDOW),
            inverse: planner.plan_fft_inverse(2 * ACF_WINDOW),
        })
    }

    /// The tempo range searched.
    pub fn range(&self) -> (f64, f64) {
        (self.min_bpm, self.max_bpm)
    }

    /// Estimates the tempo of `envelope`.
    pub fn estimate(&self, envelope: &OnsetEnvelope, stop: &StopSignal) -> Result<TempoEstimate> {
        self.estimate_segments(std::slice::from_ref(envelope), stop)
    }

    /// Estimates one tempo from the envelopes of several segments of one file (a sampled
    /// analysis), without pretending they are continuous: the autocorrelation pools the
    /// windows of every segment, no window spanning two, and the phase features (fold,
    /// beat profile) are measured per segment and averaged, weighted by length. With one
    /// envelope this is exactly [`TempoEstimator::estimate`].
    pub fn estimate_segments(
        &self,
        segments: &[OnsetEnvelope],
        stop: &StopSignal,
    ) -> Result<TempoEstimate> {
        let evidence = self.evidence(segments, stop)?;
        let candidates = self.metrical_candidates(&evidence);
        let scores: Vec<f64> = candidates
            .iter()
            .map(|c| crate::metrical::score(&c.features))
            .collect();
        choose(&candidates, &scores, evidence.clarity)
    }

    /// The candidates and their features, for training the metrical model
    /// (`analyzer-core/examples/metrical_features.rs`).
    pub fn candidate_features(
        &self,
        envelope: &OnsetEnvelope,
        stop: &StopSignal,
    ) -> Result<Vec<(f64, [f64; crate::metrical::FEATURES])>> {
        let evidence = self.evidence(std::slice::from_ref(envelope), stop)?;
        Ok(self
            .metrical_candidates(&evidence)
            .into_iter()
            .map(|c| (c.bpm, c.features))
            .collect())
    }

    /// Everything the candidates are scored from: the detrended envelopes, their
    /// autocorrelations, the comb and its peaks. Fails when there is no pulse to measure.
    fn evidence(&self, segments: &[OnsetEnvelope], stop: &StopSignal) -> Result<Evidence> {
        let fr = segments.first().map_or(1.0, |e| e.frame_rate);
        let seconds: f64 = segments.iter().map(OnsetEnvelope::duration_s).sum();
        if seconds < MIN_SECONDS {
            return Err(Error::new(
                ErrorKind::TooShort,
                Stage::Tempo,
                format!("{seconds:.2} s of audio; at least {MIN_SECONDS} s are needed"),
            ));
        }
        let width = (DETREND_SECONDS * fr).round() as usize;
        let detrended = |band: fn(&OnsetEnvelope) -> &[f32]| -> Vec<Vec<f32>> {
            segments.iter().map(|e| detrend(band(e), width)).collect()
        };
        let novelty = detrended(|e| &e.values);
        let silent = || {
            Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                "no onsets: silence or a constant signal",
            )
        };
        if novelty.iter().flatten().all(|&v| v == 0.0) {
            return Err(silent());
        }
        let level: f64 = segments.iter().map(|e| e.level).sum();
        let change: f64 = segments
            .iter()
            .flat_map(|e| &e.values)
            .map(|&v| f64::from(v))
            .sum();
        if level > 0.0 && change / level < MIN_RELATIVE_NOVELTY {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                format!(
                    "a steady tone: the spectrum changes by {:.4} of its level per frame, \
                     under the {MIN_RELATIVE_NOVELTY} that music with a pulse shows",
                    change / level
                ),
            ));
        }
        stop.check(Stage::Tempo)?;
        let acf = normalised(self.autocorrelation(&novelty)).ok_or_else(silent)?;
        let high = detrended(|e| &e.high);
        let acf_high =
            normalised(self.autocorrelation(&high)).unwrap_or_else(|| vec![0.0; acf.len()]);
        let low = detrended(|e| &e.low);
        let acf_low =
            normalised(self.autocorrelation(&low)).unwrap_or_else(|| vec![0.0; acf.len()]);

        let grid = self.grid();
        let comb_scores: Vec<f64> = grid
            .iter()
            .map(|&bpm| comb(&acf, 60.0 * fr / bpm, &COMB_WEIGHTS))
            .collect();
        let prior_scores: Vec<f64> = comb_scores
            .iter()
            .zip(&grid)
            .map(|(s, &bpm)| s * prior(bpm))
            .collect();
        let peaks = local_maxima(&prior_scores);
        // Whether there is a pulse at all: the strongest periodicity in the tempo range.
        let clarity = grid
            .iter()
            .map(|&t| interpolate(&acf, 60.0 * fr / t))
            .fold(0.0, f64::max)
            .min(1.0);
        if peaks.is_empty() || clarity < MIN_PULSE_CLARITY {
            return Err(Error::new(
                ErrorKind::NoPulse,
                Stage::Tempo,
                format!("no periodic pulse (clarity {clarity:.3})"),
            ));
        }
        let peak_bpms: Vec<f64> = peaks.iter().take(RERANK).map(|&i| grid[i]).collect();
        Ok(Evidence {
            frame_rate: fr,
            novelty,
            acf,
            acf_high,
            acf_low,
            low,
            high,
            peak_bpms,
            clarity,
        })
    }

    /// The tempo hypotheses worth scoring: the strongest comb peaks and the metrical
    /// relatives (x1/3 .. x3) of the strongest, each refined and described by its features.
    fn metrical_candidates(&self, ev: &Evidence) -> Vec<Candidate> {
        let fr = ev.frame_rate;
        let mut bpms: Vec<f64> = Vec::new();
        let mut push = |bpm: f64| {
            if bpm < self.min_bpm * 0.98 || bpm > self.max_bpm * 1.02 {
                return;
            }
            let bpm = refine(&ev.acf, fr, bpm).clamp(self.min_bpm, self.max_bpm);
            if !bpms.iter().any(|b| (bpm / b - 1.0).abs() < 0.03) {
                bpms.push(bpm);
            }
        };
        let top = ev.peak_bpms[0];
        push(top);
        for r in RELATIVES {
            push(top * r);
        }
        for &b in &ev.peak_bpms[1..] {
            push(b);
        }
        // A beat level must recur at its own period: with nothing between the true beats
        // (a metronome, a bare pulse), the double tempo's autocorrelation at its beat is
        // negative, and that reading has nothing to count.
        let recurs = |b: &f64| interpolate(&ev.acf, 60.0 * fr / b) > MIN_BEAT_RECURRENCE;
        if bpms.iter().any(recurs) {
            bpms.retain(recurs);
        }
        let combs: Vec<f64> = bpms
            .iter()
            .map(|&b| comb(&ev.acf, 60.0 * fr / b, &COMB_WEIGHTS).max(1e-6))
            .collect();
        let best_comb = combs.iter().copied().fold(1e-6, f64::max);
        bpms.iter()
            .zip(&combs)
            .map(|(&bpm, &c)| {
                let p = 60.0 * fr / bpm;
                let lt = (bpm / PRIOR_CENTER_BPM).log2();
                let at = |lag: f64| interpolate(&ev.acf, lag);
                let high = |lag: f64| interpolate(&ev.acf_high, lag);
                let low = |lag: f64| interpolate(&ev.acf_low, lag);
                let fold = |period: f64| {
                    per_segment(&ev.novelty, |x| [fold_clarity(x, period)])[0]
                        .max(1e-6)
                        .ln()
                };
                let rbf = |centre: f64| (-(lt - centre).powi(2) / (2.0 * 0.3 * 0.3)).exp();
                let full = per_segment(&ev.novelty, |x| beat_profile(x, p));
                let lowp = per_segment(&ev.low, |x| beat_profile(x, p));
                let highp = per_segment(&ev.high, |x| beat_profile(x, p));
                let features = [
                    (c / best_comb).ln(),
                    lt,
                    lt * lt,
                    at(p),
                    at(p / 2.0),
                    at(2.0 * p),
                    at(3.0 * p),
                    at(p / 3.0),
                    fold(p),
                    high(2.0 * p) - high(p),
                    high(p),
                    high(p / 2.0),
                    at(4.0 * p),
                    at(p / 4.0),
                    low(p),
                    low(2.0 * p),
                    low(p / 2.0),
                    fold(2.0 * p),
                    rbf(-1.0),
                    rbf(-0.5),
                    rbf(0.0),
                    rbf(0.5),
                    rbf(1.0),
                    full[0],
                    full[1],
                    full[2],
                    lowp[0],
                    lowp[1],
                    lowp[2],
                    highp[0],
                    highp[1],
                    highp[2],
                ];
                Candidate { bpm, features }
            })
            .collect()
    }

    /// The tempo grid, log-spaced from `min_bpm` to `max_bpm`.
    fn grid(&self) -> Vec<f64> {
        let octaves = (self.max_bpm / self.min_bpm).log2();
        let n = (octaves * GRID_PER_OCTAVE).ceil() as usize + 1;
        (0..n)
            .map(|i| self.min_bpm * 2f64.powf(octaves * i as f64 / (n - 1) as f64))
            .collect()
    }

    /// Unbiased autocorrelation up to `ACF_WINDOW` lags, averaged over half-overlapping
    /// windows of every segment (no window spans two: the phase jumps at a seam).
    fn autocorrelation(&self, segments: &[Vec<f32>]) -> Vec<f64> {
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

/// `measure` of each segment, averaged with the segments' lengths as weights; for one
/// segment, its value untouched (so a whole file scores bit for bit as before).
fn per_segment<const N: usize>(
    segments: &[Vec<f32>],
    measure: impl Fn(&[f32]) -> [f64; N],
) -> [f64; N] {
    if let [only] = segments {
        return measure(only);
    }
    let mut sum = [0.0f64; N];
    let mut total = 0.0f64;
    for x in segments.iter().filter(|x| !x.is_empty()) {
        let weight = x.len() as f64;
        for (s, v) in sum.iter_mut().zip(measure(x)) {
            *s += weight * v;
        }
        total += weight;
    }
    if total > 0.0 {
        sum.iter_mut().for_each(|s| *s /= total);
    }
    sum
}

/// The envelope minus its centred moving average over `width` frames, clamped at zero.
fn detrend(values: &[f32], width: usize) -> Vec<f32> {
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
fn interpolate(acf: &[f64], lag: f64) -> f64 {
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
fn comb(acf: &[f64], period: f64, weights: &[f64]) -> f64 {
    weights
        .iter()
        .enumerate()
        .map(|(m, w)| w * interpolate(acf, period * (m + 1) as f64))
        .sum()
}

/// How sharply the envelope, folded at `period` frames, piles up at one phase: the peak of
/// the phase histogram over its mean. The true beat piles up at the downbeat phase; half
/// time splits it over two phases and a 2:3 reading over three.
fn fold_clarity(novelty: &[f32], period: f64) -> f64 {
    let mut bins = [0.0f64; FOLD_BINS];
    for (n, &v) in novelty.iter().enumerate() {
        let phase = (n as f64 / period).fract();
        bins[((phase * FOLD_BINS as f64) as usize).min(FOLD_BINS - 1)] += f64::from(v);
    }
    let smoothed: Vec<f64> = (0..FOLD_BINS)
        .map(|b| {
            let prev = bins[(b + FOLD_BINS - 1) % FOLD_BINS];
            let next = bins[(b + 1) % FOLD_BINS];
            0.25 * prev + 0.5 * bins[b] + 0.25 * next
        })
        .collect();
    let mean = smoothed.iter().sum::<f64>() / FOLD_BINS as f64;
    let peak = smoothed.iter().copied().fold(0.0, f64::max);
    if mean > 0.0 { peak / mean } else { 0.0 }
}

/// Bins per two beats of [`beat_profile`].
const PROFILE_BINS: usize = 16;

/// How onsets fall on a two-beat cycle of `period` frames, aligned on its strongest beat:
/// ln(off-beat / on-beat) (eighth notes between the beats against the beats themselves),
/// the alternation of the two beats |b1 - b2| / (b1 + b2) (a tempo read an octave too fast
/// alternates strong and weak "beats"), and ln of the on-beat level over the cycle's mean.
/// Autocorrelation sees periodicity; this sees which phase carries the weight.
fn beat_profile(novelty: &[f32], period: f64) -> [f64; 3] {
    let mut bins = [0.0f64; PROFILE_BINS];
    let cycle = 2.0 * period;
    for (n, &v) in novelty.iter().enumerate() {
        let phase = (n as f64 / cycle).fract();
        bins[((phase * PROFILE_BINS as f64) as usize).min(PROFILE_BINS - 1)] += f64::from(v);
    }
    let mean = bins.iter().sum::<f64>() / PROFILE_BINS as f64;
    if mean <= 0.0 {
        return [0.0; 3];
    }
    let at = |k: usize| {
        let k = k % PROFILE_BINS;
        bins[k].max(bins[(k + 1) % PROFILE_BINS])
    };
    let half = PROFILE_BINS / 2;
    let quarter = PROFILE_BINS / 4;
    let start = (0..PROFILE_BINS)
        .max_by(|&a, &b| {
            (at(a) + at(a + half))
                .total_cmp(&(at(b) + at(b + half)))
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let (b1, b2) = (at(start), at(start + half));
    let off = 0.5 * (at(start + quarter) + at(start + half + quarter));
    let on = 0.5 * (b1 + b2);
    let eps = 1e-3 * mean;
    [
        ((off + eps) / (on + eps)).ln(),
        (b1 - b2).abs() / (b1 + b2 + eps),
        ((on + eps) / mean).ln(),
    ]
}

/// Log-normal preference for tempi near the centre, 1 at the centre.
fn prior(bpm: f64) -> f64 {
    let octaves = (bpm / PRIOR_CENTER_BPM).log2() / PRIOR_WIDTH_OCTAVES;
    (-0.5 * octaves * octaves).exp()
}

/// Indices of the strict local maxima of `scores`, best first (ties keep the lower index).
fn local_maxima(scores: &[f64]) -> Vec<usize> {
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
fn refine(acf: &[f64], frame_rate: f64, bpm: f64) -> f64 {
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

/// Whether two tempi are within 4 % of a 2, 3, 1/2, 1/3, 2/3 or 3/2 relation.
fn is_related(a: f64, b: f64) -> bool {
    [2.0, 3.0, 0.5, 1.0 / 3.0, 2.0 / 3.0, 1.5]
        .iter()
        .any(|r| (a / (b * r) - 1.0).abs() < 0.04)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pulses(bpm: f64, seconds: f64, frame_rate: f64) -> OnsetEnvelope {
        let n = (seconds * frame_rate) as usize;
        let mut values = vec![0.0f32; n];
        let period = 60.0 * frame_rate / bpm;
        let mut t = 0.0f64;
        while (t as usize) < n {
            let i = t.round() as usize;
            if i < n {
                values[i] = 1.0;
            }
            t += period;
        }
        OnsetEnvelope {
            high: values.clone(),
            low: values.clone(),
            values,
            frame_rate,
            level: 0.0,
        }
    }

    #[test]
    fn a_pulse_train_gives_its_tempo_to_a_fraction_of_a_bpm() {
        let est = TempoEstimator::new(60.0, 200.0).unwrap();
        for bpm in [62.0, 90.0, 117.3, 128.0, 174.0, 199.0] {
            let e = est
                .estimate(&pulses(bpm, 60.0, 86.1328125), &StopSignal::never())
                .unwrap();
            assert!((e.bpm - bpm).abs() < 0.2, "{bpm}: got {}", e.bpm);
            assert_eq!(e.candidates[0].bpm, e.bpm);
        }
    }

    #[test]
    fn silence_has_no_pulse_and_a_short_envelope_is_too_short() {
        let est = TempoEstimator::new(60.0, 200.0).unwrap();
        let silent = OnsetEnvelope {
            values: vec![0.0; 2000],
            high: vec![0.0; 2000],
            low: vec![0.0; 2000],
            frame_rate: 86.0,
            level: 0.0,
        };
        assert_eq!(
            est.estimate(&silent, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::NoPulse
        );
        let short = pulses(120.0, 1.5, 86.0);
        assert_eq!(
            est.estimate(&short, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::TooShort
        );
    }

    #[test]
    fn invalid_ranges_are_refused() {
        assert!(TempoEstimator::new(120.0, 100.0).is_err());
        assert!(TempoEstimator::new(f64::NAN, 100.0).is_err());
        assert!(TempoEstimator::new(0.0, 100.0).is_err());
    }

    #[test]
    fn relations_are_symmetric_within_tolerance() {
        assert!(is_related(120.0, 60.0));
        assert!(is_related(60.0, 120.0));
        assert!(is_related(90.0, 60.0));
        assert!(!is_related(100.0, 120.0));
    }

    /// The windowed, unbiased autocorrelation by the textbook sum, in f64: what the FFT
    /// path must reproduce (RustFFT's habit: every fast path against a naive one).
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
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for len in [700, 2048, 3500] {
            let x: Vec<f32> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    (state >> 40) as f32 / (1u64 << 24) as f32
                })
                .collect();
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

    /// A pulse train cut into segments whose beats do not line up across the seams (the
    /// phase of a sampled file jumps from one segment to the next) keeps its tempo.
    #[test]
    fn segments_with_phase_jumps_give_the_tempo_of_the_whole() {
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let fr = 86.1328125;
        for bpm in [71.0, 97.5, 123.0, 140.0, 174.0] {
            let period = 60.0 * fr / bpm;
            let whole = est
                .estimate(&pulses(bpm, 90.0, fr), &StopSignal::never())
                .unwrap();
            let segments: Vec<OnsetEnvelope> = [0.0, 0.37, 0.71]
                .iter()
                .map(|&shift| {
                    let mut e = pulses(bpm, 30.0 + shift * period / fr, fr);
                    let skip = (shift * period).round() as usize;
                    for band in [&mut e.values, &mut e.high, &mut e.low] {
                        band.drain(..skip);
                    }
                    e
                })
                .collect();
            let sampled = est
                .estimate_segments(&segments, &StopSignal::never())
                .unwrap();
            assert!(
                (sampled.bpm - bpm).abs() < 0.2,
                "{bpm}: got {}",
                sampled.bpm
            );
            assert!(
                (sampled.bpm - whole.bpm).abs() < 0.2,
                "{bpm}: {} vs {}",
                sampled.bpm,
                whole.bpm
            );
        }
    }

    #[test]
    fn one_segment_is_the_whole_estimate() {
        let est = TempoEstimator::new(50.0, 220.0).unwrap();
        let e = pulses(113.0, 40.0, 86.1328125);
        assert_eq!(
            est.estimate_segments(std::slice::from_ref(&e), &StopSignal::never())
                .unwrap(),
            est.estimate(&e, &StopSignal::never()).unwrap()
        );
        let none: [OnsetEnvelope; 0] = [];
        assert_eq!(
            est.estimate_segments(&none, &StopSignal::never())
                .unwrap_err()
                .kind(),
            ErrorKind::TooShort
        );
    }

    #[test]
    fn detrend_removes_a_constant() {
        assert!(detrend(&[3.0; 100], 10).iter().all(|&v| v == 0.0));
    }
}
