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
/// the beat profile (off-beat, alternation, on-beat) of the full, low and high bands, and
/// how the thirds of a two-beat cycle group (in pairs, as in 3/4, or in threes, as in 6/8)
/// in the full, low and high bands. A weight set reads the first features of the list,
/// as many as it was fitted on: the quarter-note model the first 32 (the grouping
/// features cost it accuracy), the dotted-quarter one all 38.
pub const FEATURES: usize = 38;

/// Which note of a compound meter (6/8, 12/8, a jig) is reported as its beat. The meters
/// group six eighths in threes: a listener taps the dotted quarter, the MIDI tempo counts
/// the quarter note, 3/2 of it. The two readings need two models, because the one that
/// learns the dotted quarter also reads some binary music in 3/4 as 6/8
/// (`datasets/metrical/README.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum CompoundBeat {
    /// The quarter note, as the MIDI tempo counts it. The default: the model that reads it
    /// keeps binary music at its best.
    #[default]
    Quarter,
    /// The dotted quarter, the beat a listener taps in a jig or a 6/8 groove (the model
    /// fitted on every development source with that convention).
    DottedQuarter,
}

impl CompoundBeat {
    /// Both, in the order the usage errors list them.
    pub const ALL: [CompoundBeat; 2] = [CompoundBeat::Quarter, CompoundBeat::DottedQuarter];

    /// The name flags, manifests and settings use: `quarter` or `dotted-quarter`.
    pub fn as_str(self) -> &'static str {
        match self {
            CompoundBeat::Quarter => "quarter",
            CompoundBeat::DottedQuarter => "dotted-quarter",
        }
    }

    /// The other convention, whose model is asked whether the meter may be compound: where
    /// the two read the beat in a 3:2 or 4:3 relation, the beat depends on the convention.
    pub fn other(self) -> Self {
        match self {
            CompoundBeat::Quarter => CompoundBeat::DottedQuarter,
            CompoundBeat::DottedQuarter => CompoundBeat::Quarter,
        }
    }

    /// How many of the [`FEATURES`] this beat's weight set reads (a prefix: the list grows
    /// at its end), so that the features no set reads need not be measured.
    pub fn features_read(self) -> usize {
        self.weights().mean.len()
    }

    fn weights(self) -> &'static Weights {
        match self {
            CompoundBeat::Quarter => &quarter::WEIGHTS,
            CompoundBeat::DottedQuarter => &dotted_quarter::WEIGHTS,
        }
    }
}

impl std::fmt::Display for CompoundBeat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for CompoundBeat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        CompoundBeat::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a compound beat (quarter or dotted-quarter)"))
    }
}

/// One weight set as `train.py` writes it, over the first `mean.len()` features.
struct Weights {
    hidden: usize,
    mean: &'static [f64],
    scale: &'static [f64],
    input: &'static [f64],
    bias: &'static [f64],
    output: &'static [f64],
    direct: &'static [f64],
}

/// A weight set written by `train.py` (its consts, private to the module) as [`Weights`].
macro_rules! weight_set {
    ($name:ident, $file:literal) => {
        mod $name {
            use super::Weights;
            include!($file);
            pub(super) static WEIGHTS: Weights = Weights {
                hidden: HIDDEN,
                mean: &MEAN,
                scale: &SCALE,
                input: &INPUT,
                bias: &BIAS,
                output: &OUTPUT,
                direct: &DIRECT,
            };
        }
    };
}

weight_set!(quarter, "metrical_weights.rs");
weight_set!(dotted_quarter, "metrical_weights_dotted.rs");

/// The score of one hypothesis by the model of `beat` (a log-probability up to a per-file
/// constant); the largest wins.
pub fn score(features: &[f64; FEATURES], beat: CompoundBeat) -> f64 {
    let w = beat.weights();
    let n = w.mean.len();
    let mut x = [0.0f64; FEATURES];
    for (i, v) in x[..n].iter_mut().enumerate() {
        *v = (features[i] - w.mean[i]) / w.scale[i];
    }
    let x = &x[..n];
    let direct: f64 = w.direct.iter().zip(x).map(|(d, v)| d * v).sum();
    let hidden: f64 = (0..w.hidden)
        .map(|h| {
            let row = &w.input[h * n..(h + 1) * n];
            let activation: f64 = row.iter().zip(x).map(|(a, v)| a * v).sum::<f64>() + w.bias[h];
            w.output[h] * activation.tanh()
        })
        .sum();
    direct + hidden
}

/// FNV-1a (64 bits) over the weights of `beat`'s model: part of the analyzer fingerprint,
/// so rows made by a retrained model never mix with older ones in a cache or a distributed
/// job.
pub fn weights_hash(beat: CompoundBeat) -> u64 {
    let w = beat.weights();
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let groups: [&[f64]; 6] = [w.mean, w.scale, w.input, w.bias, w.output, w.direct];
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
        for beat in CompoundBeat::ALL {
            let w = beat.weights();
            let n = w.mean.len();
            assert!(n <= FEATURES, "{beat}");
            assert_eq!((w.scale.len(), w.direct.len()), (n, n), "{beat}");
            assert_eq!(w.input.len(), w.hidden * n, "{beat}");
            assert_eq!(
                (w.bias.len(), w.output.len()),
                (w.hidden, w.hidden),
                "{beat}"
            );
            assert!(w.scale.iter().all(|s| *s > 0.0), "{beat}");
        }
    }

    /// The net by the textbook formula, written out once more.
    #[test]
    fn score_matches_a_naive_evaluation() {
        let features: [f64; FEATURES] = std::array::from_fn(|i| (i as f64 * 0.37).sin());
        for beat in CompoundBeat::ALL {
            let w = beat.weights();
            let n = w.mean.len();
            let x: Vec<f64> = (0..n)
                .map(|i| (features[i] - w.mean[i]) / w.scale[i])
                .collect();
            let mut expected = 0.0;
            for h in 0..w.hidden {
                let row = &w.input[h * n..(h + 1) * n];
                let mut a = w.bias[h];
                for (weight, value) in row.iter().zip(&x) {
                    a += weight * value;
                }
                expected += w.output[h] * a.tanh();
            }
            for (weight, value) in w.direct.iter().zip(&x) {
                expected += weight * value;
            }
            assert!((score(&features, beat) - expected).abs() < 1e-9, "{beat}");
        }
    }

    #[test]
    fn the_two_models_are_two_weight_sets() {
        assert_ne!(
            weights_hash(CompoundBeat::Quarter),
            weights_hash(CompoundBeat::DottedQuarter)
        );
    }

    #[test]
    fn compound_beats_read_back_their_names() {
        for beat in CompoundBeat::ALL {
            assert_eq!(beat.as_str().parse::<CompoundBeat>(), Ok(beat));
        }
        let err = "dotted".parse::<CompoundBeat>().unwrap_err();
        assert!(err.contains("quarter or dotted-quarter"), "{err}");
    }
}
