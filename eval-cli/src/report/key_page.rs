//! The key sections of the `evaluate` and `compare` pages: the chart of relations between
//! estimated and true keys, the scores both ways, and the breakdowns (by `source`, by
//! length...), shown only when the dataset has key truth.

use std::path::Path;

use analyzer_core::key::KeyRelation;

use super::html::{self, pct};
use super::key::KeySummary;
use super::{EstimatorCost, Row, charts, ordered_keys};
use crate::key_metrics::{self, KeyScore, Weighting};

/// The cells of a key score in the tables: files, both weighted scores, accuracy, missing.
fn score_cells(s: &KeyScore) -> [String; 5] {
    [
        s.n.to_string(),
        format!("{:.3}", s.weighted),
        format!("{:.3}", s.weighted_mir_eval),
        pct(s.accuracy),
        s.missing.to_string(),
    ]
}

/// The headers over [`score_cells`].
const SCORE_HEADERS: [&str; 5] = [
    "files",
    "weighted (MIREX)",
    "weighted (mir_eval)",
    "accuracy",
    "no key",
];

/// The key sections of a page; their chart is written into `dir`. The table of files not
/// in their key lists the first `file_rows` of them and counts the rest.
pub fn key_sections(
    dir: &Path,
    key: &KeySummary,
    rows: &[Row],
    file_rows: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut counts: Vec<(&'static str, usize)> = KeyRelation::ALL
        .iter()
        .map(|r| {
            (
                r.as_str(),
                key.relations.get(r.as_str()).copied().unwrap_or(0),
            )
        })
        .collect();
    counts.push(("missing", key.score.missing));
    let chart = charts::KeyRelationCounts { counts };
    let wheel = charts::KeyWheelDistances {
        counts: wheel_counts(rows),
    };
    let relation_rows: Vec<Vec<String>> = KeyRelation::ALL
        .iter()
        .map(|&r| {
            let files = key.relations.get(r.as_str()).copied().unwrap_or(0);
            vec![
                r.as_str().to_string(),
                files.to_string(),
                pct(crate::metrics::fraction(files, key.score.n)),
                format!("{:.1}", Weighting::Mirex.score(Some(r))),
                format!("{:.1}", Weighting::MirEval.score(Some(r))),
            ]
        })
        .chain([vec![
            "no key".to_string(),
            key.score.missing.to_string(),
            pct(crate::metrics::fraction(key.score.missing, key.score.n)),
            "0.0".into(),
            "0.0".into(),
        ]])
        .collect();
    let mut scores = format!(
        "{}{}{}{}<p>The weighted score credits the same key 1, a fifth 0.5, the relative \
         0.3 and the parallel key 0.2. MIREX (since 2017) credits a fifth either way; \
         mir_eval 0.8.2 only the fifth above the true key. A file with no key estimate \
         scores 0 in both.</p>",
        html::figure(
            &charts::save(dir, &chart)?,
            "Files by how the estimated key relates to the true one (green: same; orange: \
             a fifth; purple: relative or parallel; red: other; grey: no estimate).",
        ),
        html::figure(
            &charts::save(dir, &wheel)?,
            "The same files by hours between the estimated and the true key on the Camelot \
             wheel, the circle of fifths (0: the same key or the relative one; 1: a fifth; \
             3: the parallel key; grey: no estimate).",
        ),
        html::table(&SCORE_HEADERS, &[score_cells(&key.score).to_vec()]),
        html::table(
            &[
                "relation",
                "files",
                "share",
                "weight (MIREX)",
                "weight (mir_eval)",
            ],
            &relation_rows,
        ),
    );
    for (column, groups) in &key.by {
        let table_rows: Vec<Vec<String>> = ordered_keys(column, groups)
            .into_iter()
            .map(|value| {
                std::iter::once(value.clone())
                    .chain(score_cells(&groups[value]))
                    .collect()
            })
            .collect();
        let headers: Vec<&str> = std::iter::once(column.as_str())
            .chain(SCORE_HEADERS)
            .collect();
        scores.push_str(&format!("<h3>Key by {}</h3>", html::escape(column)));
        scores.push_str(&html::table(&headers, &table_rows));
    }
    let mut sections = vec![("Key".to_string(), scores)];
    let mut wrong = rows
        .iter()
        .filter_map(|r| {
            let truth = r.truth_key?;
            let relation = key_metrics::relation(r.est_key, truth);
            (relation != Some(KeyRelation::Same)).then_some((r, truth, relation))
        })
        .peekable();
    if wrong.peek().is_some() {
        sections.push((
            "Files not in their true key".to_string(),
            html::capped_table(
                &[
                    "file",
                    "true key",
                    "estimated",
                    "relation",
                    "error or why no key",
                ],
                wrong,
                file_rows,
                |(r, truth, relation)| {
                    vec![
                        r.file.clone(),
                        truth.to_string(),
                        r.est_key.map_or(String::new(), |k| k.to_string()),
                        relation.map_or("missing", KeyRelation::as_str).to_string(),
                        // A failed file's error, else why the estimator found no key.
                        match (&r.error, &r.no_key) {
                            (error, Some(why)) if error.is_empty() => why.clone(),
                            (error, _) => error.clone(),
                        },
                    ]
                },
            ),
        ));
    }
    Ok(sections)
}

/// The estimators' key scores side by side with their CPU cost, as a table; empty when no
/// estimator has key scores (the dataset has no key truth).
pub fn key_estimators_table(costs: &[EstimatorCost]) -> String {
    let rows: Vec<Vec<String>> = costs
        .iter()
        .filter_map(|c| {
            let key = c.key.as_ref()?;
            let cpu = c
                .cpu_s_per_audio_min
                .map_or("n/a".into(), |x| format!("{x:.3}"));
            Some(
                std::iter::once(c.name.clone())
                    .chain(score_cells(key))
                    .chain([cpu])
                    .collect(),
            )
        })
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let headers: Vec<&str> = std::iter::once("estimator")
        .chain(SCORE_HEADERS)
        .chain(["CPU s / audio min"])
        .collect();
    format!("<h3>Key</h3>{}", html::table(&headers, &rows))
}

/// The key scores in words, for a command's summary line: `key weighted 0.588 (mir_eval
/// 0.550), accuracy 45.8 %, 1 without a key`.
pub fn key_line(score: &KeyScore) -> String {
    format!(
        "key weighted {:.3} (mir_eval {:.3}), accuracy {}, {} without a key",
        score.weighted,
        score.weighted_mir_eval,
        pct(score.accuracy),
        score.missing
    )
}

/// Files with a true key by hours between estimate and truth on the Camelot wheel (0..=6),
/// then those with no estimate.
fn wheel_counts(rows: &[Row]) -> [usize; 8] {
    let mut counts = [0; 8];
    for row in rows {
        if let Some(truth) = row.truth_key {
            let slot = row
                .est_key
                .map_or(7, |k| usize::from(k.wheel_distance(truth)));
            counts[slot] += 1;
        }
    }
    counts
}

/// Headline tiles for the key scores.
pub fn key_headline(key: &KeySummary) -> Vec<(String, String)> {
    vec![
        ("key files".into(), key.score.n.to_string()),
        ("key weighted".into(), format!("{:.3}", key.score.weighted)),
        ("key accuracy".into(), pct(key.score.accuracy)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(file: &str, truth: &str, est: Option<&str>) -> Row {
        crate::report::key::tests::row(file, Some(truth), est, "", "")
    }

    #[test]
    fn wheel_distances_are_counted_per_file_with_a_true_key() {
        let mut rows = vec![
            row("same.wav", "C major", Some("C major")),
            row("relative.wav", "C major", Some("A minor")),
            row("fifth.wav", "C major", Some("G major")),
            row("parallel.wav", "C major", Some("C minor")),
            row("tritone.wav", "C major", Some("F# major")),
            row("none.wav", "C major", None),
        ];
        rows.push(crate::report::key::tests::row(
            "untrue.wav",
            None,
            Some("C major"),
            "",
            "",
        ));
        assert_eq!(wheel_counts(&rows), [2, 1, 0, 1, 0, 0, 1, 1]);
    }

    #[test]
    fn files_not_in_their_key_say_why_there_is_none() {
        let dir = tempfile::tempdir().unwrap();
        let mut rows = vec![
            row("right.wav", "C major", Some("C major")),
            row("drums.wav", "C major", None),
            row("broken.wav", "A minor", None),
        ];
        rows[1].no_key = Some("no key: no pitched sound in 90 % of the audio".into());
        rows[2].status = "error";
        rows[2].error = "decode: io: gone".into();
        let key = crate::report::key::summarize(&rows, &[]).unwrap();
        let sections = key_sections(dir.path(), &key, &rows, html::FILE_ROWS).unwrap();
        let names: Vec<&str> = sections.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["Key", "Files not in their true key"]);
        let table = &sections[1].1;
        assert!(table.contains("no pitched sound in 90 %"), "{table}");
        assert!(table.contains("decode: io: gone"), "{table}");
        assert!(!table.contains("right.wav"), "{table}");
        assert!(dir.path().join("key_relations.svg").is_file());
        assert!(dir.path().join("key_wheel_distance.svg").is_file());
        assert!(
            sections[0].1.contains("<td>0.333</td>"),
            "{}",
            sections[0].1
        );
    }
}
