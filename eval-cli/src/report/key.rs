//! The key side of a run's files: the key columns of `results.csv` ([`KeyRecord`]) and the
//! `key` object of `summary.json` ([`KeySummary`]), over the files with a true key. The
//! scoring rules themselves are [`crate::key_metrics`]'s.

use std::collections::BTreeMap;

use analyzer_core::key::KeyRelation;
use serde::{Deserialize, Serialize};

use super::{EstimatorCost, Row, SECONDS_COLUMN, groupable, numeric_groups};
use crate::key_metrics::{self, KeyScore};

/// The key columns of a `results.csv` line, after the tempo ones.
#[derive(Debug, Default, Serialize)]
pub struct KeyRecord {
    /// The true key (`A minor`, sharps); empty when the file has none.
    pub key_truth: String,
    /// The estimated key; empty when there is none.
    pub key: String,
    /// How the estimate relates to the truth ([`KeyRelation::as_str`]: `same`,
    /// `fifth_above`, `fifth_below`, `relative`, `parallel`, `other`), `missing` when
    /// there is no estimate; empty when the file has no true key.
    pub key_relation: &'static str,
}

impl From<&Row> for KeyRecord {
    fn from(row: &Row) -> Self {
        let key_relation = match row.truth_key {
            None => "",
            Some(truth) => {
                key_metrics::relation(row.est_key, truth).map_or("missing", KeyRelation::as_str)
            }
        };
        KeyRecord {
            key_truth: row.truth_key.map_or(String::new(), |k| k.to_string()),
            key: row.est_key.map_or(String::new(), |k| k.to_string()),
            key_relation,
        }
    }
}

/// The key columns of an `estimators.csv` line, after the others; empty for an estimator
/// without key scores. Fixed precision, as the other columns.
#[derive(Debug, Default, Serialize)]
pub struct EstimatorKeyRecord {
    /// Files with a true key.
    pub key_n: String,
    /// MIREX weighted score, four decimals.
    pub key_weighted: String,
    /// mir_eval 0.8.2 weighted score, four decimals.
    pub key_weighted_mir_eval: String,
    /// Exact key accuracy, four decimals.
    pub key_accuracy: String,
    /// Files without a key estimate.
    pub key_missing: String,
}

impl From<&EstimatorCost> for EstimatorKeyRecord {
    fn from(cost: &EstimatorCost) -> Self {
        let Some(k) = &cost.key else {
            return EstimatorKeyRecord::default();
        };
        EstimatorKeyRecord {
            key_n: k.n.to_string(),
            key_weighted: format!("{:.4}", k.weighted),
            key_weighted_mir_eval: format!("{:.4}", k.weighted_mir_eval),
            key_accuracy: format!("{:.4}", k.accuracy),
            key_missing: k.missing.to_string(),
        }
    }
}

/// The key scores of the files of one length.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeyLengthScore {
    /// Seconds of audio per file, from the `seconds` column.
    pub seconds: f64,
    /// Their scores.
    #[serde(flatten)]
    pub score: KeyScore,
}

/// `summary.json`'s `key`: how the estimated keys fare against the true ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeySummary {
    /// `n`, `weighted`, `weighted_mir_eval`, `accuracy` and `missing` over every file with a
    /// true key.
    #[serde(flatten)]
    pub score: KeyScore,
    /// Files per relation of estimate to truth, every relation listed (zeros included);
    /// files with no estimate are `missing` instead.
    pub relations: BTreeMap<String, usize>,
    /// Scores by each metadata column worth grouping by (as the tempo `by`: `source`,
    /// `seconds`, ...), then by the column's value.
    pub by: BTreeMap<String, BTreeMap<String, KeyScore>>,
    /// `by.seconds` in numeric order, when the dataset has a numeric `seconds` column.
    #[serde(default)]
    pub by_seconds: Vec<KeyLengthScore>,
}

/// The key summary of `rows`, over those with a true key; `None` when none has one.
pub fn summarize(rows: &[Row], meta_columns: &[String]) -> Option<KeySummary> {
    let keyed: Vec<&Row> = rows.iter().filter(|r| r.truth_key.is_some()).collect();
    if keyed.is_empty() {
        return None;
    }
    let relation = |r: &Row| {
        r.truth_key
            .and_then(|t| key_metrics::relation(r.est_key, t))
    };
    let relations: Vec<_> = keyed.iter().map(|r| relation(r)).collect();
    let mut by = BTreeMap::new();
    for column in meta_columns {
        if !groupable(&keyed, column) {
            continue;
        }
        let mut groups: BTreeMap<String, Vec<Option<KeyRelation>>> = BTreeMap::new();
        for r in &keyed {
            let value = r.meta.get(column).cloned().unwrap_or_default();
            groups.entry(value).or_default().push(relation(r));
        }
        let scores = groups
            .into_iter()
            .map(|(value, rs)| (value, KeyScore::of(&rs)))
            .collect();
        by.insert(column.clone(), scores);
    }
    let by_seconds = by
        .get(SECONDS_COLUMN)
        .and_then(|groups| {
            let keyed = numeric_groups(groups)?;
            Some(
                keyed
                    .into_iter()
                    .map(|(seconds, value)| KeyLengthScore {
                        seconds,
                        score: groups[value].clone(),
                    })
                    .collect(),
            )
        })
        .unwrap_or_default();
    Some(KeySummary {
        score: KeyScore::of(&relations),
        relations: key_metrics::relation_counts(&relations),
        by,
        by_seconds,
    })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::metrics::ErrorClass;

    /// A row with only key figures: its true and estimated keys, its source and seconds.
    pub(in crate::report) fn row(
        file: &str,
        truth: Option<&str>,
        est: Option<&str>,
        source: &str,
        secs: &str,
    ) -> Row {
        Row {
            file: file.into(),
            truth_bpm: None,
            est_bpm: None,
            truth_key: truth.map(|t| t.parse().unwrap()),
            est_key: est.map(|e| e.parse().unwrap()),
            no_key: None,
            confidence: None,
            alt_bpm: None,
            class: ErrorClass::Failed,
            status: "ok",
            error: String::new(),
            meta: BTreeMap::from([
                ("source".into(), source.into()),
                (SECONDS_COLUMN.into(), secs.into()),
            ]),
            elapsed_s: 0.0,
            audio_s: 0.0,
            cpu_s: None,
        }
    }

    #[test]
    fn summary_scores_keyed_files_by_source_and_length() {
        let rows = [
            row("a", Some("C major"), Some("C major"), "x", "30"),
            row("b", Some("C major"), Some("F major"), "x", "8"),
            row("c", Some("A minor"), None, "y", "30"),
            row("d", Some("A minor"), Some("C major"), "y", "8"),
            // No true key: in no key figure.
            row("e", None, Some("C major"), "y", "8"),
        ];
        let columns = ["source".to_string(), SECONDS_COLUMN.to_string()];
        let s = summarize(&rows, &columns).unwrap();
        assert_eq!((s.score.n, s.score.missing), (4, 1));
        // 1 + 0.5 + 0 + 0.3 over 4; mir_eval gives the fifth below nothing.
        assert!((s.score.weighted - 1.8 / 4.0).abs() < 1e-12);
        assert!((s.score.weighted_mir_eval - 1.3 / 4.0).abs() < 1e-12);
        assert_eq!(s.relations["same"], 1);
        assert_eq!(s.relations["fifth_below"], 1);
        assert_eq!(s.relations["relative"], 1);
        assert_eq!(s.by["source"]["x"].weighted, 0.75);
        assert_eq!((s.by["source"]["y"].n, s.by["source"]["y"].missing), (2, 1));
        let lengths: Vec<(f64, usize)> = s
            .by_seconds
            .iter()
            .map(|l| (l.seconds, l.score.n))
            .collect();
        assert_eq!(lengths, [(8.0, 2), (30.0, 2)]);
        assert!(summarize(&rows[4..], &columns).is_none());
    }

    #[test]
    fn key_columns_say_missing_and_stay_empty_without_truth() {
        let cells = |r: &Row| {
            let k = KeyRecord::from(r);
            (k.key_truth, k.key, k.key_relation)
        };
        assert_eq!(
            cells(&row("a", Some("C major"), Some("G major"), "x", "8")),
            ("C major".into(), "G major".into(), "fifth_above")
        );
        assert_eq!(
            cells(&row("b", Some("Dbm"), None, "x", "8")),
            ("C# minor".into(), String::new(), "missing")
        );
        assert_eq!(
            cells(&row("c", None, Some("A minor"), "x", "8")),
            (String::new(), "A minor".into(), "")
        );
    }
}
