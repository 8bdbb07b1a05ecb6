//! Key profiles: how strongly each pitch class belongs to a major or a minor key, tonic
//! first. Values as published; only their shape matters (the match is a correlation).

/// A published pair of major and minor key profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyProfile {
    /// Krumhansl and Kessler (1982): probe-tone ratings by listeners.
    Krumhansl,
    /// Temperley (1999), "What's key for key?": Krumhansl's revised for key finding.
    Temperley,
    /// Temperley (2007): pitch-class frequencies in the Kostka-Payne corpus of classical
    /// excerpts.
    KostkaPayne,
    /// Faraldo et al. (2016): profiles learned from electronic dance music ("edma").
    Edma,
    /// Sha'ath (2011): Krumhansl's tuned for popular and electronic music.
    Shaath,
    /// The mean of `edma` and `shaath`, each scaled to a peak of 1: it scored above both on
    /// every development source, and chosen leaving each source out (docs/key.md).
    EdmaShaath,
}

impl KeyProfile {
    /// Every profile.
    pub const ALL: [KeyProfile; 6] = [
        KeyProfile::Krumhansl,
        KeyProfile::Temperley,
        KeyProfile::KostkaPayne,
        KeyProfile::Edma,
        KeyProfile::Shaath,
        KeyProfile::EdmaShaath,
    ];

    /// Its short name: `krumhansl`, `temperley`, `kostka-payne`, `edma`, `shaath`,
    /// `edma-shaath`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyProfile::Krumhansl => "krumhansl",
            KeyProfile::Temperley => "temperley",
            KeyProfile::KostkaPayne => "kostka-payne",
            KeyProfile::Edma => "edma",
            KeyProfile::Shaath => "shaath",
            KeyProfile::EdmaShaath => "edma-shaath",
        }
    }

    /// The profile of `mode`, tonic first (index = semitones above the tonic).
    pub fn weights(self, mode: super::Mode) -> [f64; 12] {
        use super::Mode::{Major, Minor};
        match (self, mode) {
            (KeyProfile::EdmaShaath, mode) => {
                let (edma, shaath) = (
                    peak_one(KeyProfile::Edma.weights(mode)),
                    peak_one(KeyProfile::Shaath.weights(mode)),
                );
                std::array::from_fn(|i| 0.5 * (edma[i] + shaath[i]))
            }
            (KeyProfile::Krumhansl, Major) => [
                6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88,
            ],
            (KeyProfile::Krumhansl, Minor) => [
                6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17,
            ],
            (KeyProfile::Temperley, Major) => {
                [5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0]
            }
            (KeyProfile::Temperley, Minor) => {
                [5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0]
            }
            (KeyProfile::KostkaPayne, Major) => [
                0.748, 0.060, 0.488, 0.082, 0.670, 0.460, 0.096, 0.715, 0.104, 0.366, 0.057, 0.400,
            ],
            (KeyProfile::KostkaPayne, Minor) => [
                0.712, 0.084, 0.474, 0.618, 0.049, 0.460, 0.105, 0.747, 0.404, 0.067, 0.133, 0.330,
            ],
            (KeyProfile::Edma, Major) => [
                0.1652, 0.0475, 0.0829, 0.0669, 0.0999, 0.0927, 0.0529, 0.1316, 0.0522, 0.0744,
                0.0694, 0.0643,
            ],
            (KeyProfile::Edma, Minor) => [
                0.1724, 0.0534, 0.0761, 0.1004, 0.0562, 0.0853, 0.0498, 0.1345, 0.0746, 0.0500,
                0.0919, 0.0555,
            ],
            (KeyProfile::Shaath, Major) => {
                [6.6, 2.0, 3.5, 2.3, 4.6, 4.0, 2.5, 5.2, 2.4, 3.7, 2.3, 3.4]
            }
            (KeyProfile::Shaath, Minor) => {
                [6.5, 2.7, 3.5, 5.4, 2.6, 3.5, 2.5, 5.2, 4.0, 2.7, 4.3, 3.2]
            }
        }
    }
}

/// `weights` scaled so that the largest is 1.
fn peak_one(weights: [f64; 12]) -> [f64; 12] {
    let peak = weights.iter().cloned().fold(f64::MIN, f64::max);
    weights.map(|w| w / peak)
}

impl std::str::FromStr for KeyProfile {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        KeyProfile::ALL
            .into_iter()
            .find(|p| p.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = KeyProfile::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown key profile {text:?} (one of {})", names.join(", "))
            })
    }
}
