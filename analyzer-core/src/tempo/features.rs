//! The features the metrical model scores each tempo hypothesis by: the comb and the
//! autocorrelation of the full, kick and snare bands at the hypothesis's multiples and
//! fractions, how sharply the envelope folds onto its beat, and where onsets fall within
//! two of its beats (see [`crate::metrical`] for the model).

use super::periodicity::{COMB_WEIGHTS, PRIOR_CENTER_BPM, comb, interpolate, refine};
use super::{Candidate, Evidence};

/// Phase bins of the fold test.
const FOLD_BINS: usize = 32;
/// Metrical relatives of the strongest comb peak that are always scored: the beat is often
/// not the strongest periodicity (half time, eighth notes, a 3/4 bar heard as two).
const RELATIVES: [f64; 6] = [0.5, 2.0, 1.0 / 3.0, 3.0, 2.0 / 3.0, 1.5];
/// Normalised autocorrelation a hypothesis needs at its own beat period to be scored.
const MIN_BEAT_RECURRENCE: f64 = 0.0;

/// Where the grouping features start in the list: a weight set that reads fewer features
/// (the default's 32) leaves them at zero, unmeasured.
const FIRST_GROUPING_FEATURE: usize = 32;

/// The tempo hypotheses worth scoring: the strongest comb peaks and the metrical
/// relatives (x1/3 .. x3) of the strongest, each refined and described by its features, of
/// which the first `read` are measured (the rest are zero).
pub(super) fn candidates(min_bpm: f64, max_bpm: f64, ev: &Evidence, read: usize) -> Vec<Candidate> {
    let fr = ev.frame_rate;
    let mut bpms: Vec<f64> = Vec::new();
    // A hypothesis counts where its refined tempo lies in the range, give or take 0.2 %
    // (a grid step or two); one further out is a reading the range excludes, and was
    // clamped to its edge (64 BPM became 64.5 under a minimum of 64.5, 221 became 220
    // under the default maximum, as the tempo).
    let within = |bpm: f64| bpm >= min_bpm * 0.998 && bpm <= max_bpm * 1.002;
    let mut push = |bpm: f64| {
        if bpm < min_bpm * 0.98 || bpm > max_bpm * 1.02 {
            return;
        }
        let bpm = refine(&ev.acf, fr, bpm);
        if !within(bpm) {
            return;
        }
        let bpm = bpm.clamp(min_bpm, max_bpm);
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
    // The peaks lie in the range; should every refined one fall out of it, the best
    // stays, at the edge, rather than no reading.
    if bpms.is_empty() {
        bpms.push(refine(&ev.acf, fr, top).clamp(min_bpm, max_bpm));
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
                per_segment(&ev.novelty, &ev.weights, |x| [fold_clarity(x, period)])[0]
                    .max(1e-6)
                    .ln()
            };
            let rbf = |centre: f64| (-(lt - centre).powi(2) / (2.0 * 0.3 * 0.3)).exp();
            let full = per_segment(&ev.novelty, &ev.weights, |x| beat_profile(x, p));
            let lowp = per_segment(&ev.low, &ev.weights, |x| beat_profile(x, p));
            let highp = per_segment(&ev.high, &ev.weights, |x| beat_profile(x, p));
            let grouped = |band: &[Vec<f32>]| {
                if read > FIRST_GROUPING_FEATURE {
                    per_segment(band, &ev.weights, |x| grouping(x, p))
                } else {
                    [0.0; 2]
                }
            };
            let (fullg, lowg, highg) = (grouped(&ev.novelty), grouped(&ev.low), grouped(&ev.high));
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
                fullg[0],
                fullg[1],
                lowg[0],
                lowg[1],
                highg[0],
                highg[1],
            ];
            Candidate { bpm, features }
        })
        .collect()
}

/// `measure` of each segment, averaged with the segments' lengths times their `weights`
/// (a quiet segment's say) as weights; for one segment, its value untouched (so a whole
/// file scores bit for bit as before).
fn per_segment<const N: usize>(
    segments: &[Vec<f32>],
    weights: &[f64],
    measure: impl Fn(&[f32]) -> [f64; N],
) -> [f64; N] {
    if let [only] = segments {
        return measure(only);
    }
    let mut sum = [0.0f64; N];
    let mut total = 0.0f64;
    for (x, w) in segments.iter().zip(weights).filter(|(x, _)| !x.is_empty()) {
        let weight = x.len() as f64 * w;
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

/// Bins per two beats of [`grouping`]: four per third of a beat.
const GROUPING_BINS: usize = 24;

/// How the six thirds of a two-beat cycle of `period` frames group, aligned on its strongest
/// beat: in pairs (weight on thirds 0, 2, 4 against 1, 3, 5: three binary beats, as a 3/4 bar
/// read as two dotted quarters) and in threes (weight on thirds 0 and 3 against the rest: two
/// compound beats). The beat profile's off-beat sits at half a beat and misses both.
fn grouping(novelty: &[f32], period: f64) -> [f64; 2] {
    let mut bins = [0.0f64; GROUPING_BINS];
    let cycle = 2.0 * period;
    for (n, &v) in novelty.iter().enumerate() {
        let phase = (n as f64 / cycle).fract();
        bins[((phase * GROUPING_BINS as f64) as usize).min(GROUPING_BINS - 1)] += f64::from(v);
    }
    let at = |k: usize| {
        let k = k % GROUPING_BINS;
        bins[k].max(bins[(k + 1) % GROUPING_BINS])
    };
    let half = GROUPING_BINS / 2;
    let start = (0..GROUPING_BINS)
        .max_by(|&a, &b| {
            (at(a) + at(a + half))
                .total_cmp(&(at(b) + at(b + half)))
                .then(b.cmp(&a))
        })
        .unwrap_or(0);
    let third = GROUPING_BINS / 6;
    let e: [f64; 6] = std::array::from_fn(|k| at(start + k * third));
    let total: f64 = e.iter().sum();
    if total <= 0.0 {
        return [0.0; 2];
    }
    let pairs = (e[0] + e[2] + e[4] - e[1] - e[3] - e[5]) / total;
    let threes = ((e[0] + e[3]) / 2.0 - (e[1] + e[2] + e[4] + e[5]) / 4.0) / (total / 6.0);
    [pairs, threes]
}
