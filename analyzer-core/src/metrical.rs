//! The metrical-level model: which of the tempo hypotheses is the beat.
//!
//! The comb and the fold find the periodicities; which of them (the beat, half or double
//! it, a 2:3 reading) the music is written in is decided here by a small learned score
//! over features of each hypothesis. One file's hypotheses compete in a softmax, trained
//! as a conditional logit by `datasets/metrical/train.py` (an ensemble of small tanh nets
//! merged into one, with a direct linear term) and validated leave-one-source-out. The
//! weights are data, written by that script into `metrical_weights.rs`; the features are
//! computed in `tempo.rs`, in the order listed below.

/// Features per hypothesis, in this order (the period P in envelope frames):
/// comb score relative to the best hypothesis (ln), log2(BPM/120), its square,
/// autocorrelation at P, P/2, 2P, 3P and P/3, ln fold clarity at P, high-band backbeat
/// (autocorrelation at 2P minus P), high-band autocorrelation at P and at P/2,
/// autocorrelation at 4P and P/4, low-band autocorrelation at P, 2P and P/2, ln fold
/// clarity at 2P, five radial bumps over log2(BPM/120) centred at -1, -0.5, 0, 0.5, 1,
/// and the beat profile (off-beat, alternation, on-beat) of the full, low and high bands.
pub const FEATURES: usize = 32;

include!("metrical_weights.rs");

/// The model's score of one hypothesis (a log-probability up to a per-file constant);
/// the largest wins.
pub fn score(features: &[f64; FEATURES]) -> f64 {
    let mut x = [0.0f64; FEATURES];
    for (i, v) in x.iter_mut().enumerate() {
        *v = (features[i] - MEAN[i]) / SCALE[i];
    }
    let direct: f64 = DIRECT.iter().zip(&x).map(|(w, v)| w * v).sum();
    let hidden: f64 = (0..HIDDEN)
        .map(|h| {
            let row = &INPUT[h * FEATURES..(h + 1) * FEATURES];
            let activation: f64 = row.iter().zip(&x).map(|(w, v)| w * v).sum::<f64>() + BIAS[h];
            OUTPUT[h] * activation.tanh()
        })
        .sum();
    direct + hidden
}

/// FNV-1a (64 bits) over the model's weights: part of the analyzer fingerprint, so rows
/// made by a retrained model never mix with older ones in a cache or a distributed job.
pub fn weights_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let groups: [&[f64]; 6] = [&MEAN, &SCALE, &INPUT, &BIAS, &OUTPUT, &DIRECT];
    for value in groups.iter().flat_map(|g| g.iter()) {
        for b in value.to_bits().to_le_bytes() {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_have_the_shapes_the_net_reads() {
        assert_eq!(INPUT.len(), HIDDEN * FEATURES);
        assert_eq!((BIAS.len(), OUTPUT.len()), (HIDDEN, HIDDEN));
        assert!(SCALE.iter().all(|s| *s > 0.0));
    }

    /// The net by the textbook formula, written out once more.
    #[test]
    fn score_matches_a_naive_evaluation() {
        let features: [f64; FEATURES] = std::array::from_fn(|i| (i as f64 * 0.37).sin());
        let x: Vec<f64> = (0..FEATURES)
            .map(|i| (features[i] - MEAN[i]) / SCALE[i])
            .collect();
        let mut expected = 0.0;
        for h in 0..HIDDEN {
            let mut a = BIAS[h];
            for i in 0..FEATURES {
                a += INPUT[h * FEATURES + i] * x[i];
            }
            expected += OUTPUT[h] * a.tanh();
        }
        for i in 0..FEATURES {
            expected += DIRECT[i] * x[i];
        }
        assert!((score(&features) - expected).abs() < 1e-9);
    }
}
