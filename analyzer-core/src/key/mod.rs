//! Key estimation: from the audio's pitch-class profile to one of 24 keys, a confidence
//! and the runner-up, or a reason why the audio has no key.
//!
//! ```text
//! samples at the analysis rate ─long frames, spectral peaks, overtone votes─▶ FineProfile
//!   ─tuning, fold to 12─▶ chroma ─correlate with 24 rotated key profiles─▶ KeyEstimate
//! ```
//!
//! The chroma is gathered from the same decoded stretches as the tempo (the sampled
//! segments, or the whole file), so key costs one more FFT every 0.37 s of audio and no
//! second decode. The decision is the Krumhansl-Schmuckler method: Pearson correlation of
//! the chroma with a key profile rotated to each tonic, the best of 24 wins.

mod chroma;
mod name;
mod profiles;

pub use chroma::{ChromaPlan, ChromaTracker, FINE_BINS, FineProfile, MIN_TONAL_SHARE};
pub use name::{Key, KeyParseError, KeyRelation, Mode, PITCH_NAMES};
pub use profiles::KeyProfile;

/// The profile the analyzer uses: the one that scored best on the development sets, on each
/// source and chosen with each source left out (`examples/key_profiles.rs`, docs/key.md).
pub const DEFAULT_PROFILE: KeyProfile = KeyProfile::EdmaShaath;

/// The chroma is raised to this power before it is matched: a loud pitch class (a bass
/// line, a held pad) outvotes the others less. Measured with `examples/key_profiles.rs` on
/// every development source: 0.5 scored above 0.75 and 1 (no compression) with the chosen
/// profile on each (docs/key.md).
pub const CHROMA_EXPONENT: f64 = 0.5;

// The three thresholds below sit between what audio without a key and the development
// music measure (`cargo run -p analyzer-core --example key_profiles -- MANIFEST...` on
// datasets/key-dev): at the geometric middle where the two are apart, and at half the
// music's lowest where audio without a key measures zero.

/// A frame votes only if its narrow peaks hold [`MIN_TONAL_SHARE`] of its energy; below
/// this share of voiced frames the audio is mostly silence, noise or drums. White noise and
/// a drum loop measure 0, the development music 0.20 and up.
const MIN_VOICED_SHARE: f64 = 0.1;
/// Below this correlation with the best key profile the chroma fits no key. A sweep over
/// 50 Hz-5 kHz measures 0.54, the development music 0.62 and up.
const MIN_KEY_CORRELATION: f64 = 0.575;
/// Fewer pitch classes than this, counted as the exponential of the chroma's entropy, are a
/// drone or a single note, not a key: a 440 Hz sine with its overtone votes counts 2.8, the
/// development music 6.8 and up.
const MIN_PITCH_CLASSES: f64 = 4.4;
/// The softmax temperature that turns the 24 correlations into the confidence.
const CONFIDENCE_TEMPERATURE: f64 = 0.05;

/// The key of a piece of audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEstimate {
    /// The best key.
    pub key: Key,
    /// 0..1: the best key's share of a softmax over the 24 keys' profile correlations.
    pub confidence: f64,
    /// The runner-up key (often the relative, parallel or a fifth away).
    pub alternative: Key,
    /// The best key's correlation with its profile (-1..1): how well the audio fits a key.
    pub correlation: f64,
}

/// Why audio has no key: it gets an empty key, not a guess.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no key: {reason}")]
pub struct NoKey {
    /// What the audio lacked.
    pub reason: String,
}

/// What the key stage found in one file: a key, or why there is none.
pub type KeyResult = std::result::Result<KeyEstimate, NoKey>;

/// Reads a key from a pitch-class profile with one key profile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct KeyEstimator {
    profile: KeyProfile,
    exponent: f64,
}

impl Default for KeyEstimator {
    fn default() -> Self {
        KeyEstimator::new(DEFAULT_PROFILE)
    }
}

impl KeyEstimator {
    /// An estimator that matches chroma against `profile`.
    pub fn new(profile: KeyProfile) -> Self {
        KeyEstimator {
            profile,
            exponent: CHROMA_EXPONENT,
        }
    }

    /// The same, raising the chroma to `exponent` instead of [`CHROMA_EXPONENT`] (for the
    /// measurement that chose it).
    pub fn with_chroma_exponent(self, exponent: f64) -> Self {
        KeyEstimator { exponent, ..self }
    }

    /// The key profile it matches against.
    pub fn profile(&self) -> KeyProfile {
        self.profile
    }

    /// The key of the votes in `fine`, or why there is none.
    pub fn estimate(&self, fine: &FineProfile) -> KeyResult {
        if fine.frames == 0 {
            return Err(NoKey {
                reason: "too little audio for a key".into(),
            });
        }
        // Whether the audio is too quiet to hear is decided once, for the tempo and the
        // key alike, by the analyzer's level gate; a per-frame verdict here dropped the
        // key of music whose tempo passed the gate.
        let audible = fine.audible_frames();
        // Digital silence keeps the reason it always had: nothing in it is pitched.
        let voiced = fine.voiced_frames as f64 / audible.max(1) as f64;
        if voiced < MIN_VOICED_SHARE {
            return Err(NoKey {
                reason: format!(
                    "no pitched sound in {:.0} % of the audio",
                    (1.0 - voiced) * 100.0
                ),
            });
        }
        let chroma = fine.chroma();
        let spread = pitch_class_count(&chroma);
        if spread < MIN_PITCH_CLASSES {
            return Err(NoKey {
                reason: format!("only about {spread:.0} pitch classes sound"),
            });
        }
        let scores = self.correlations(&chroma);
        let mut ranked: Vec<(Key, f64)> = scores.to_vec();
        // Best first; ties go to the key listed first, so the result never depends on the
        // sort's internals.
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (key, correlation) = ranked[0];
        if correlation.is_nan() || correlation < MIN_KEY_CORRELATION {
            return Err(NoKey {
                reason: format!("the pitch classes fit no key (best correlation {correlation:.2})"),
            });
        }
        let weights: f64 = ranked
            .iter()
            .map(|(_, r)| ((r - correlation) / CONFIDENCE_TEMPERATURE).exp())
            .sum();
        Ok(KeyEstimate {
            key,
            confidence: 1.0 / weights,
            alternative: ranked[1].0,
            correlation,
        })
    }

    /// Pearson correlation of `chroma`, raised to the estimator's exponent, with the profile
    /// rotated to each of the 24 keys, in [`Key::all`] order.
    pub fn correlations(&self, chroma: &[f64; 12]) -> [(Key, f64); 24] {
        let chroma = &chroma.map(|v| v.max(0.0).powf(self.exponent));
        let mut out = [(Key::new(0, Mode::Major), 0.0); 24];
        for (slot, key) in out.iter_mut().zip(Key::all()) {
            let template = self.profile.weights(key.mode());
            let rotated: [f64; 12] =
                std::array::from_fn(|i| template[(i + 12 - key.tonic() as usize) % 12]);
            *slot = (key, pearson(chroma, &rotated));
        }
        out
    }
}

/// How many pitch classes sound: the exponential of the entropy of the chroma's shares (12
/// for a flat chroma, 1 for a single pitch class, 0 for silence).
pub fn pitch_class_count(chroma: &[f64; 12]) -> f64 {
    let total: f64 = chroma.iter().sum();
    if total <= 0.0 {
        return 0.0;
    }
    let entropy: f64 = chroma
        .iter()
        .map(|v| v / total)
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.ln())
        .sum();
    entropy.exp()
}

/// Pearson correlation of two 12-vectors; 0 when either is constant.
fn pearson(a: &[f64; 12], b: &[f64; 12]) -> f64 {
    let mean_a = a.iter().sum::<f64>() / 12.0;
    let mean_b = b.iter().sum::<f64>() / 12.0;
    let (mut cov, mut var_a, mut var_b) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        cov += (x - mean_a) * (y - mean_b);
        var_a += (x - mean_a) * (x - mean_a);
        var_b += (y - mean_b) * (y - mean_b);
    }
    if var_a <= 0.0 || var_b <= 0.0 {
        return 0.0;
    }
    cov / (var_a * var_b).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fine_from_chroma(chroma: [f64; 12]) -> FineProfile {
        let mut fine = FineProfile {
            frames: 10,
            voiced_frames: 10,
            ..FineProfile::default()
        };
        for (pitch, value) in chroma.iter().enumerate() {
            fine.bins[pitch * 10] = *value;
        }
        fine
    }

    #[test]
    fn a_scale_reads_as_its_key_in_every_transposition() {
        // Tonic, fifth and third strongest, the rest of the scale weaker: a melody's notes.
        let c_major = [5.0, 0.0, 2.0, 0.0, 3.0, 2.0, 0.0, 4.0, 0.0, 2.0, 0.0, 1.5];
        let a_minor = [2.0, 0.0, 1.5, 0.0, 4.0, 2.0, 0.0, 1.0, 0.5, 5.0, 0.0, 2.0];
        for profile in KeyProfile::ALL {
            let estimator = KeyEstimator::new(profile);
            for shift in 0..12 {
                for (chroma, tonic, mode) in [(c_major, 0, Mode::Major), (a_minor, 9, Mode::Minor)]
                {
                    let rotated = std::array::from_fn(|i| chroma[(i + 12 - shift) % 12]);
                    let estimate = estimator.estimate(&fine_from_chroma(rotated)).unwrap();
                    let want = Key::new(tonic + shift as u8, mode);
                    assert_eq!(estimate.key, want, "{profile:?} shift {shift}");
                    assert!(estimate.confidence > 0.0 && estimate.confidence <= 1.0);
                    assert_ne!(estimate.alternative, want);
                }
            }
        }
    }

    #[test]
    fn flat_or_single_pitch_chroma_has_no_key() {
        let estimator = KeyEstimator::default();
        let flat = estimator
            .estimate(&fine_from_chroma([1.0; 12]))
            .unwrap_err();
        assert!(flat.reason.contains("fit no key"), "{flat}");
        let mut drone = [0.0; 12];
        drone[4] = 1.0;
        let drone = estimator.estimate(&fine_from_chroma(drone)).unwrap_err();
        assert!(
            drone.reason.contains("only about 1 pitch classes"),
            "{drone}"
        );
        let mut fifth = [0.0; 12];
        (fifth[0], fifth[7]) = (1.0, 0.8);
        let fifth = estimator.estimate(&fine_from_chroma(fifth)).unwrap_err();
        assert!(
            fifth.reason.contains("only about 2 pitch classes"),
            "{fifth}"
        );
    }

    #[test]
    fn unvoiced_audio_has_no_key() {
        let mut fine =
            fine_from_chroma([5.0, 0.0, 2.0, 0.0, 3.0, 2.0, 0.0, 4.0, 0.0, 2.0, 0.0, 1.0]);
        fine.frames = 20;
        fine.voiced_frames = 1;
        let err = KeyEstimator::default().estimate(&fine).unwrap_err();
        assert!(err.reason.contains("no pitched sound"), "{err}");
        let empty = KeyEstimator::default()
            .estimate(&FineProfile::default())
            .unwrap_err();
        assert!(empty.reason.contains("too little audio"), "{empty}");
        // Frames under the level a listener hears count for nothing: 2 of 4 audible
        // frames are voiced, however much silence follows; all quiet, the estimator does not call it too quiet (the analyzer's level gate decides
        // that, once for the tempo and the key); all digital silence, it has no pitched
        // sound, as it always had.
        fine.frames = 200;
        fine.voiced_frames = 2;
        fine.quiet_frames = 196;
        fine.silent_frames = 196;
        assert!(KeyEstimator::default().estimate(&fine).is_ok());
        fine.voiced_frames = 0;
        fine.quiet_frames = 200;
        let quiet = KeyEstimator::default().estimate(&fine).unwrap_err();
        assert!(!quiet.reason.contains("too quiet to hear"), "{quiet}");
        fine.silent_frames = 200;
        let silent = KeyEstimator::default().estimate(&fine).unwrap_err();
        assert!(
            silent.reason.contains("no pitched sound in 100 %"),
            "{silent}"
        );
    }
}
