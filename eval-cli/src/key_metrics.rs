//! The scoring rules of key estimation, as small pure functions: the relation of one
//! estimate to the true key, its weighted score, and the score of a set of files.
//!
//! The weights are MIREX's audio key detection task ([`KeyRelation::weighted_score`]):
//! same key 1.0, perfect fifth 0.5, relative major/minor 0.3, parallel major/minor 0.2,
//! anything else 0. Two conventions for the fifth are in use and both are reported:
//! - [`Weighting::Mirex`], MIREX since 2017: a fifth above *or* below the truth earns 0.5;
//! - [`Weighting::MirEval`], `mir_eval.key.weighted_score` of mir_eval 0.8.2: only an
//!   estimate a fifth *above* the truth earns 0.5; a fifth below earns 0.
//!
//! A file with no key estimate (the estimator failed, or said the audio has no key) scores
//! 0 under both and is counted apart as `missing`, so a tool that abstains is not mistaken
//! for one that answers wrongly.

use std::collections::BTreeMap;

use analyzer_core::key::{Key, KeyRelation};
use serde::{Deserialize, Serialize};

/// How a fifth between estimate and truth is credited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// MIREX since 2017: either direction of the fifth earns 0.5.
    Mirex,
    /// mir_eval 0.8.2: only the fifth above the truth earns 0.5.
    MirEval,
}

impl Weighting {
    /// The score of one file whose estimate stands in `relation` to the truth (`None`: no
    /// estimate, 0).
    pub fn score(self, relation: Option<KeyRelation>) -> f64 {
        match (self, relation) {
            (_, None) => 0.0,
            (Weighting::Mirex, Some(r)) => r.weighted_score(),
            (Weighting::MirEval, Some(r)) => r.weighted_score_mir_eval(),
        }
    }
}

/// How `estimate` relates to `truth`; `None` when there is no estimate.
pub fn relation(estimate: Option<Key>, truth: Key) -> Option<KeyRelation> {
    estimate.map(|e| e.relation_to(truth))
}

/// The key scores of a set of files with key truth, in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyScore {
    /// Files with key truth.
    pub n: usize,
    /// Mean MIREX weighted score (fifth either way), missing estimates as 0; 0 when n = 0.
    pub weighted: f64,
    /// Mean mir_eval 0.8.2 weighted score (fifth above only), missing estimates as 0.
    pub weighted_mir_eval: f64,
    /// Fraction of the files whose estimate is the true key.
    pub accuracy: f64,
    /// Files without a key estimate (they count as 0 above).
    pub missing: usize,
}

impl KeyScore {
    /// The scores of files whose estimates stand in `relations` to their truths.
    pub fn of(relations: &[Option<KeyRelation>]) -> Self {
        let n = relations.len();
        let mean = |w: Weighting| {
            // A sum in file order: the same bytes whatever order the files finished in.
            let total: f64 = relations.iter().map(|&r| w.score(r)).sum();
            if n == 0 { 0.0 } else { total / n as f64 }
        };
        let same = relations
            .iter()
            .filter(|r| **r == Some(KeyRelation::Same))
            .count();
        KeyScore {
            n,
            weighted: mean(Weighting::Mirex),
            weighted_mir_eval: mean(Weighting::MirEval),
            accuracy: crate::metrics::fraction(same, n),
            missing: relations.iter().filter(|r| r.is_none()).count(),
        }
    }
}

/// Files per relation class, every class listed (zeros included) by its
/// [`KeyRelation::as_str`] name; files without an estimate are not in any class.
pub fn relation_counts(relations: &[Option<KeyRelation>]) -> BTreeMap<String, usize> {
    KeyRelation::ALL
        .iter()
        .map(|class| {
            let count = relations.iter().filter(|r| **r == Some(*class)).count();
            (class.as_str().to_string(), count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> Key {
        text.parse().unwrap()
    }

    /// A hand-worked pair: estimate, truth, relation, MIREX score, mir_eval score.
    type Pair = (
        Option<&'static str>,
        &'static str,
        Option<KeyRelation>,
        f64,
        f64,
    );

    const PAIRS: [Pair; 14] = [
        (
            Some("C major"),
            "C major",
            Some(KeyRelation::Same),
            1.0,
            1.0,
        ),
        (
            Some("A minor"),
            "A minor",
            Some(KeyRelation::Same),
            1.0,
            1.0,
        ),
        // G is a fifth above C; F a fifth below.
        (
            Some("G major"),
            "C major",
            Some(KeyRelation::FifthAbove),
            0.5,
            0.5,
        ),
        (
            Some("F major"),
            "C major",
            Some(KeyRelation::FifthBelow),
            0.5,
            0.0,
        ),
        // E is a fifth above A; D a fifth below (minor keys).
        (
            Some("E minor"),
            "A minor",
            Some(KeyRelation::FifthAbove),
            0.5,
            0.5,
        ),
        (
            Some("D minor"),
            "A minor",
            Some(KeyRelation::FifthBelow),
            0.5,
            0.0,
        ),
        // Relative, both ways.
        (
            Some("A minor"),
            "C major",
            Some(KeyRelation::Relative),
            0.3,
            0.3,
        ),
        (
            Some("C major"),
            "A minor",
            Some(KeyRelation::Relative),
            0.3,
            0.3,
        ),
        // Parallel, both ways.
        (
            Some("C minor"),
            "C major",
            Some(KeyRelation::Parallel),
            0.2,
            0.2,
        ),
        (
            Some("F# major"),
            "F# minor",
            Some(KeyRelation::Parallel),
            0.2,
            0.2,
        ),
        // A fifth in the other mode, and a tritone: no credit.
        (
            Some("G minor"),
            "C major",
            Some(KeyRelation::Other),
            0.0,
            0.0,
        ),
        (
            Some("F# major"),
            "C major",
            Some(KeyRelation::Other),
            0.0,
            0.0,
        ),
        // The relative of the fifth is not the relative.
        (
            Some("E minor"),
            "C major",
            Some(KeyRelation::Other),
            0.0,
            0.0,
        ),
        // No estimate.
        (None, "D major", None, 0.0, 0.0),
    ];

    #[test]
    fn hand_worked_pairs_score_both_ways() {
        let mut relations = Vec::new();
        for (estimate, truth, want, mirex, mir_eval) in PAIRS {
            let got = relation(estimate.map(key), key(truth));
            assert_eq!(got, want, "{estimate:?} for {truth}");
            assert_eq!(
                Weighting::Mirex.score(got),
                mirex,
                "{estimate:?} for {truth}"
            );
            assert_eq!(
                Weighting::MirEval.score(got),
                mir_eval,
                "{estimate:?} for {truth}"
            );
            relations.push(got);
        }
        let score = KeyScore::of(&relations);
        // MIREX: 1 + 1 + 0.5 x 4 + 0.3 x 2 + 0.2 x 2 = 5.0 over 14 files;
        // mir_eval: the two fifths below earn nothing, 4.0 over 14.
        assert_eq!(score.n, 14);
        assert!((score.weighted - 5.0 / 14.0).abs() < 1e-12, "{score:?}");
        assert!(
            (score.weighted_mir_eval - 4.0 / 14.0).abs() < 1e-12,
            "{score:?}"
        );
        assert_eq!(score.accuracy, 2.0 / 14.0);
        assert_eq!(score.missing, 1);
        let counts = relation_counts(&relations);
        assert_eq!(counts.len(), KeyRelation::ALL.len());
        assert_eq!(
            [
                counts["same"],
                counts["fifth_above"],
                counts["fifth_below"],
                counts["relative"],
                counts["parallel"],
                counts["other"]
            ],
            [2, 2, 2, 2, 2, 3]
        );
    }

    #[test]
    fn no_files_score_zero_not_nan() {
        let score = KeyScore::of(&[]);
        assert_eq!(
            (
                score.n,
                score.weighted,
                score.weighted_mir_eval,
                score.accuracy
            ),
            (0, 0.0, 0.0, 0.0)
        );
        assert!(relation_counts(&[]).values().all(|&c| c == 0));
        // Every file missing: zero, and all of them counted as missing.
        let score = KeyScore::of(&[None, None]);
        assert_eq!((score.weighted, score.missing), (0.0, 2));
    }
}
