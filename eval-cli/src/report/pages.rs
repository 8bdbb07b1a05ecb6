//! The report pages of `evaluate` and `compare`: their sections (charts written into the
//! run directory, tables) and the [`Page`]s themselves, built from the result structs; the
//! commands only hand the results over and write the page through [`super::export::Html`].
//!
//! One file over 500 lines: the pages are sequences of sections built from one model with the same
//! few HTML helpers; split, each page would import them all.

use std::path::Path;

use super::html::{self, Page};
use super::key_page::{key_estimators_table, key_headline, key_sections};
use super::model::{CompareReport, Outcome};
use super::{EstimatorCost, LengthAccuracy, Row, Summary, Timings, charts, interference};
use crate::metrics::{self, ErrorClass, Latency};

pub use super::html::pct;

/// The latency columns of the timing tables.
const LATENCY_HEADERS: [&str; 4] = ["p50 ms", "p90 ms", "p99 ms", "max ms"];

/// The cells under [`LATENCY_HEADERS`].
fn latency_cells(l: &Latency) -> [String; 4] {
    [l.p50, l.p90, l.p99, l.max].map(|ms| format!("{ms:.1}"))
}

/// What the report of an `evaluate` run shows.
pub struct EvaluateRun<'a> {
    /// The dataset's label.
    pub dataset: &'a str,
    /// The estimators' names, in command-line order.
    pub estimators: &'a [&'a str],
    /// The first estimator's summary (with every estimator's accuracy).
    pub summary: &'a Summary,
    /// Every estimator's cost.
    pub costs: &'a [EstimatorCost],
    /// The first estimator's batch.
    pub outcome: &'a Outcome,
    /// The first estimator's timings.
    pub timings: &'a Timings,
}

/// The page of an `evaluate` run; its charts are written into `dir`.
pub fn evaluate_page(dir: &Path, run: &EvaluateRun) -> anyhow::Result<Page> {
    let mut sections = Vec::new();
    if run.estimators.len() > 1 {
        sections.push(estimators_section(dir, run.costs)?);
    }
    sections.extend(accuracy_sections(
        dir,
        run.summary,
        &run.outcome.rows,
        html::FILE_ROWS,
    )?);
    let latency = charts::LatencyCdf {
        series: vec![(
            format!("{} workers", run.outcome.workers),
            run.outcome
                .rows
                .iter()
                .filter(|r| r.status != "cancelled")
                .map(|r| r.elapsed_s * 1000.0)
                .collect(),
        )],
    };
    let l = &run.timings.latency_ms;
    let headers: Vec<&str> = ["workers", "wall s", "files/s", "× realtime"]
        .into_iter()
        .chain(LATENCY_HEADERS)
        .chain(["peak RSS MiB"])
        .collect();
    let mut cells = vec![
        run.timings.workers.to_string(),
        format!("{:.2}", run.timings.wall_s),
        format!("{:.2}", run.timings.files_per_s),
        format!("{:.1}", run.timings.realtime_factor),
    ];
    cells.extend(latency_cells(l));
    cells.push(
        run.timings
            .peak_rss_mb
            .map_or("?".into(), |m| format!("{m:.0}")),
    );
    let timing_html = format!(
        "{}{}",
        html::figure(&charts::save(dir, &latency)?, "Per-file analysis time."),
        html::table(&headers, &[cells])
    );
    sections.push(("Timing (varies between runs)".into(), timing_html));
    let mut notes = Vec::new();
    if run.estimators.len() > 1 {
        notes.push(format!(
            "{} estimators were run one after the other on the same files; results.csv, the \
             headline and the accuracy sections are the first one's ({}), and each one's \
             results are in estimators/.",
            run.estimators.len(),
            run.estimators[0]
        ));
    }
    if run.outcome.cancelled {
        notes.push("The run was cancelled: unfinished files are failed rows.".to_string());
    }
    let page = html::Page {
        title: format!("Tempo evaluation: {}", run.dataset),
        headline: accuracy_headline(run.summary),
        notes,
        sections,
        host: run.timings.host.clone(),
        command: run.timings.command.clone(),
    };
    Ok(page)
}

/// Per worker count, its label and per-file latencies in ms: the latency chart's curves.
pub type LatencySeries = Vec<(String, Vec<f64>)>;

/// What the report of a `compare` run shows.
pub struct CompareRun<'a> {
    /// `compare.json`.
    pub compare: &'a CompareReport,
    /// Per worker count, its label and per-file latencies in ms, for the latency chart.
    pub latency_series: LatencySeries,
    /// The first estimator's summary, from its 1-worker run.
    pub summary: &'a Summary,
    /// Its rows.
    pub rows: &'a [Row],
    /// Every estimator's cost, when there are several.
    pub costs: &'a [EstimatorCost],
}

/// The page of a `compare` run; its charts are written into `dir`.
pub fn compare_page(dir: &Path, run: CompareRun) -> anyhow::Result<Page> {
    let compare = run.compare;
    let cores = compare.cores;
    let speedup_chart = charts::Speedup {
        points: compare
            .runs
            .iter()
            .map(|r| (r.workers, r.speedup))
            .collect(),
        cores,
        serial_fraction: compare.scaling.as_ref().map(|s| s.serial_fraction),
    };
    let latency_chart = charts::LatencyCdf {
        series: run.latency_series,
    };
    let run_rows: Vec<Vec<String>> = compare
        .runs
        .iter()
        .map(|r| {
            vec![
                r.workers.to_string(),
                format!("{:.3}", r.wall_s_median),
                format!("{:.2}", r.speedup),
                format!("{:.2}", r.efficiency),
                if r.identical { "yes" } else { "NO" }.into(),
                r.peak_rss_mb.map_or("?".into(), |m| format!("{m:.0}")),
                format!("{:.2}", r.files_per_s),
                format!("{:.1}", r.realtime_factor),
                r.other_cores.map_or("?".into(), |c| format!("{c:.2}")),
                format!("{:.0} %", r.spread * 100.0),
            ]
            .into_iter()
            .chain(latency_cells(&r.latency_ms))
            .collect()
        })
        .collect();
    let run_headers: Vec<&str> = [
        "workers",
        "median wall s",
        "speedup",
        "efficiency",
        "identical",
        "peak RSS MiB",
        "files/s",
        "× realtime",
        "other processes, cores",
        "repeat spread",
    ]
    .into_iter()
    .chain(LATENCY_HEADERS)
    .collect();
    let mut scaling_html = format!(
        "{}{}",
        html::figure(
            &charts::save(dir, &speedup_chart)?,
            "Median speedup over 1 worker; the green band is the 5-8x target for 8 cores.",
        ),
        html::table(&run_headers, &run_rows)
    );
    if let Some(s) = &compare.scaling {
        scaling_html.push_str(&html::table(
            &[
                "Karp-Flatt at p",
                "speedup",
                "serial fraction e",
                "projected S8",
                "target",
            ],
            &[vec![
                s.p.to_string(),
                format!("{:.2}", s.speedup),
                format!("{:.4}", s.serial_fraction),
                format!("{:.2}", s.projected_speedup_8),
                format!("{:.0}-{:.0}x", s.target_8[0], s.target_8[1]),
            ]],
        ));
    }
    scaling_html.push_str(&html::figure(
        &charts::save(dir, &latency_chart)?,
        "Per-file analysis time, all repeats, one curve per worker count.",
    ));
    let mut sections = vec![("Scaling".to_string(), scaling_html)];
    if run.costs.len() > 1 {
        sections.push(estimators_section(dir, run.costs)?);
    }
    sections.extend(accuracy_sections(
        dir,
        run.summary,
        run.rows,
        html::FILE_ROWS,
    )?);
    let mut headline = vec![
        ("cores".to_string(), cores.to_string()),
        ("files".to_string(), compare.files.to_string()),
        ("audio".to_string(), format!("{:.0} s", compare.audio_s)),
    ];
    if let Some(s) = &compare.scaling {
        // A disturbed run says so on the tile itself, not only in the notes.
        let caveat = compare
            .runs
            .iter()
            .find(|r| r.workers == s.p)
            .zip(compare.runs.iter().find(|r| r.workers == 1))
            .and_then(|(run, baseline)| interference::caveat(run, baseline, cores))
            .map_or(String::new(), |c| format!(" ({c})"));
        headline.push((
            format!("speedup at {}", s.p),
            format!("{:.2}x{caveat}", s.speedup),
        ));
        headline.push((
            "projected 8-core".into(),
            format!("{:.1}x", s.projected_speedup_8),
        ));
    }
    headline.extend(
        accuracy_headline(run.summary)
            .into_iter()
            .filter(|(name, _)| name != "files"),
    );
    Ok(html::Page {
        title: format!("Tempo compare: {}", compare.dataset),
        headline,
        notes: compare.notes.clone(),
        sections,
        host: compare.host.clone(),
        command: compare.command.clone(),
    })
}

/// The report section that puts estimators side by side: accuracy against CPU cost.
pub fn estimators_section(dir: &Path, costs: &[EstimatorCost]) -> anyhow::Result<(String, String)> {
    let chart = charts::AccuracyVsCost {
        points: costs
            .iter()
            .filter_map(|c| {
                c.cpu_s_per_audio_min
                    .map(|x| (c.name.clone(), x, c.acc1, c.acc2))
            })
            .collect(),
    };
    let rows: Vec<Vec<String>> = costs
        .iter()
        .map(|c| {
            vec![
                c.name.clone(),
                c.n.to_string(),
                c.failed.to_string(),
                pct(c.acc1),
                pct(c.acc2),
                pct(c.acc1_either),
                c.cpu_s.map_or("n/a".into(), |x| format!("{x:.2}")),
                format!("{:.1}", c.cpu_audio_s / 60.0),
                c.cpu_s_per_audio_min
                    .map_or("n/a".into(), |x| format!("{x:.3}")),
                format!("{:.2}", c.wall_s),
            ]
        })
        .collect();
    // One sentence per way of measuring, naming the estimators measured that way.
    let mut by_method: Vec<(&str, Vec<&str>)> = Vec::new();
    for c in costs {
        match by_method.iter_mut().find(|(m, _)| *m == c.cpu_method) {
            Some((_, names)) => names.push(&c.name),
            None => by_method.push((&c.cpu_method, vec![&c.name])),
        }
    }
    let methods: Vec<String> = by_method
        .iter()
        .map(|(method, names)| format!("{}: {method}.", names.join(", ")))
        .collect();
    let html = format!(
        "{}{}{}<p>CPU is user + system time per file, summed over the files where it was \
         measured (10 ms resolution), so it does not depend on the worker count. {}</p>",
        html::figure(
            &charts::save(dir, &chart)?,
            "One point pair per estimator: Accuracy1 (filled) and Accuracy2 (hollow) against \
             CPU seconds per minute of audio (log axis). Up and to the left is better.",
        ),
        html::table(
            &[
                "estimator",
                "files",
                "failed",
                "Accuracy1",
                "Accuracy2",
                EITHER,
                "CPU s",
                "audio min",
                "CPU s / audio min",
                "wall s",
            ],
            &rows,
        ),
        key_estimators_table(costs),
        html::escape(&methods.join(" "))
    );
    Ok(("Estimators side by side".to_string(), html))
}

/// The accuracy charts (written into `dir`) and tables of a run, as report sections: the
/// tempo ones over the files with a true tempo (none when no file has one but some have a
/// true key), then the key ones when some file has a true key. The per-file tables list
/// the first `file_rows` files of theirs ([`html::FILE_ROWS`] on the pages) and count the
/// rest.
pub fn accuracy_sections(
    dir: &Path,
    summary: &Summary,
    rows: &[Row],
    file_rows: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut sections = tempo_sections(dir, summary, rows, file_rows)?;
    if let Some(key) = &summary.key {
        sections.extend(key_sections(dir, key, rows, file_rows)?);
    }
    Ok(sections)
}

/// Whether a run has tempo figures to show: some file has a true tempo, or (as before key
/// existed) no file has any truth at all.
fn shows_tempo(summary: &Summary) -> bool {
    summary.n > 0 || summary.key.is_none()
}

/// The tempo charts and tables of [`accuracy_sections`].
fn tempo_sections(
    dir: &Path,
    summary: &Summary,
    all_rows: &[Row],
    file_rows: usize,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut sections = Vec::new();
    if !shows_tempo(summary) {
        return Ok(sections);
    }
    let tempo_rows: Vec<&Row> = all_rows.iter().filter(|r| r.truth_bpm.is_some()).collect();
    let rows = tempo_rows.as_slice();

    let scatter = charts::EstimateScatter {
        points: rows
            .iter()
            .filter_map(|r| Some((r.truth_bpm?, r.est_bpm?, r.class)))
            .collect(),
    };
    let classes = charts::ClassCounts {
        counts: ErrorClass::ALL
            .iter()
            .map(|c| (*c, summary.classes.get(c.as_str()).copied().unwrap_or(0)))
            .collect(),
    };
    let band_table = summary.by.get("tempo_band").cloned().unwrap_or_default();
    let bands = charts::BandAccuracy {
        bands: metrics::TEMPO_BAND_NAMES
            .iter()
            .filter_map(|b| {
                band_table
                    .get(*b)
                    .map(|g| (b.to_string(), g.n, g.acc1, g.acc2))
            })
            .collect(),
    };
    let mut figures = String::new();
    figures.push_str(&html::figure(
        &charts::save(dir, &scatter)?,
        "Each dot is a file (green: right; orange: right only at ×2, ×1/2, ×3 or ×1/3; \
         purple: ×2/3 or ×3/2; red: other). Lines mark the metrical relations.",
    ));
    figures.push_str(&html::figure(
        &charts::save(dir, &classes)?,
        "Files per error class.",
    ));
    figures.push_str(&html::figure(
        &charts::save(dir, &bands)?,
        "Accuracy1 and Accuracy2 per true-tempo band.",
    ));
    sections.push(("Accuracy charts".to_string(), figures));

    let mut tables = String::new();
    tables.push_str(&html::table(
        &["error class", "files", "share"],
        &ErrorClass::ALL
            .iter()
            .map(|c| {
                let count = summary.classes.get(c.as_str()).copied().unwrap_or(0);
                vec![
                    c.as_str().to_string(),
                    count.to_string(),
                    pct(metrics::fraction(count, summary.n)),
                ]
            })
            .collect::<Vec<_>>(),
    ));
    for (column, groups) in &summary.by {
        let rows: Vec<Vec<String>> = super::ordered_keys(column, groups)
            .into_iter()
            .map(|k| {
                let g = &groups[k];
                vec![
                    k.clone(),
                    g.n.to_string(),
                    pct(g.acc1),
                    pct(g.acc2),
                    pct(g.acc1_either),
                ]
            })
            .collect();
        tables.push_str(&format!("<h3>By {}</h3>", html::escape(column)));
        tables.push_str(&html::table(
            &[column, "files", "Accuracy1", "Accuracy2", EITHER],
            &rows,
        ));
    }
    sections.push(("Accuracy tables".to_string(), tables));
    sections.extend(length_section(dir, summary)?);
    sections.extend(reliability_section(dir, summary, rows)?);

    let mut failed = rows.iter().filter(|r| r.class != ErrorClass::Ok).peekable();
    if failed.peek().is_some() {
        sections.push((
            "Files not right by Accuracy1".to_string(),
            html::capped_table(
                &["file", "true BPM", "estimated", "class", "error"],
                failed,
                file_rows,
                |r| {
                    vec![
                        r.file.clone(),
                        r.truth_bpm.map_or(String::new(), |b| b.to_string()),
                        r.est_bpm.map_or(String::new(), |b| format!("{b:.2}")),
                        r.class.as_str().to_string(),
                        r.error.clone(),
                    ]
                },
            ),
        ));
    }
    Ok(sections)
}

/// Each estimator's accuracy by length, in command-line order (the summary's own when it
/// lists no estimators).
fn length_series(summary: &Summary) -> Vec<(&str, &[LengthAccuracy])> {
    if summary.estimators.is_empty() {
        return vec![("", summary.by_seconds.as_slice())];
    }
    summary
        .estimators
        .iter()
        .map(|e| (e.name.as_str(), e.by_seconds.as_slice()))
        .collect()
}

/// The report section of accuracy against seconds of audio (excerpts from `dataset
/// excerpts`): a chart with a line pair per estimator, and its table. `None` unless the
/// dataset has at least two lengths, since one point makes no curve.
fn length_section(dir: &Path, summary: &Summary) -> anyhow::Result<Option<(String, String)>> {
    if summary.by_seconds.len() < 2 {
        return Ok(None);
    }
    let series = length_series(summary);
    let chart = charts::AccuracyCurve::by_seconds(
        series
            .iter()
            .map(|(name, lengths)| {
                let points = lengths
                    .iter()
                    .map(|l| (l.seconds, l.accuracy.acc1, l.accuracy.acc2))
                    .collect();
                (name.to_string(), points)
            })
            .collect(),
    );
    let mut headers = vec!["seconds".to_string(), "files".to_string()];
    for (name, _) in &series {
        let prefix = if series.len() > 1 {
            format!("{name} ")
        } else {
            String::new()
        };
        headers.push(format!("{prefix}Accuracy1"));
        headers.push(format!("{prefix}Accuracy2"));
    }
    let rows: Vec<Vec<String>> = summary
        .by_seconds
        .iter()
        .map(|l| {
            let mut row = vec![l.seconds.to_string(), l.accuracy.n.to_string()];
            for (_, lengths) in &series {
                let mine = lengths.iter().find(|m| m.seconds == l.seconds);
                row.push(mine.map_or("n/a".into(), |m| pct(m.accuracy.acc1)));
                row.push(mine.map_or("n/a".into(), |m| pct(m.accuracy.acc2)));
            }
            row
        })
        .collect();
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let html = format!(
        "{}{}",
        html::figure(
            &charts::save(dir, &chart)?,
            "Accuracy1 (solid) and Accuracy2 (dashed) of the files of each length, from the              dataset's seconds column.",
        ),
        html::table(&headers, &rows)
    );
    Ok(Some(("Accuracy by length".to_string(), html)))
}

/// The reliability section: Accuracy1 and Accuracy2 by confidence bin, as a chart and a
/// table with the files per bin. `None` when no file has a confidence (the estimator gives
/// none, or every file failed).
fn reliability_section(
    dir: &Path,
    summary: &Summary,
    rows: &[&Row],
) -> anyhow::Result<Option<(String, String)>> {
    let answered: usize = summary.reliability.iter().map(|b| b.n).sum();
    if answered == 0 {
        return Ok(None);
    }
    let name = summary.estimators.first().map_or("", |e| e.name.as_str());
    let chart = charts::AccuracyCurve::reliability((
        name.to_string(),
        summary
            .reliability
            .iter()
            .filter(|b| b.n > 0)
            .map(|b| ((b.lo + b.hi) / 2.0, b.acc1, b.acc2))
            .collect(),
    ));
    let table_rows: Vec<Vec<String>> = summary
        .reliability
        .iter()
        .map(|b| {
            let acc = |x: f64| if b.n == 0 { "n/a".into() } else { pct(x) };
            vec![
                format!("{:.1}-{:.1}", b.lo, b.hi),
                b.n.to_string(),
                acc(b.acc1),
                acc(b.acc2),
            ]
        })
        .collect();
    let html = format!(
        "{}{}<p>{} of {} files have a confidence; failed files, and estimators that give          none, are left out. Empty bins are not drawn.</p>",
        html::figure(
            &charts::save(dir, &chart)?,
            "Accuracy1 (solid) and Accuracy2 (dashed) of the files in each confidence bin,              at the bin's centre; the diagonal is where accuracy equals confidence.",
        ),
        html::table(
            &["confidence", "files", "Accuracy1", "Accuracy2"],
            &table_rows
        ),
        answered,
        rows.len()
    );
    Ok(Some((
        "Reliability: accuracy by confidence".to_string(),
        html,
    )))
}

/// The column and tile of Accuracy1 of either reading: the estimate or `alt_bpm`.
const EITHER: &str = "Accuracy1, bpm or alt_bpm";

/// Headline tiles for a summary: tempo, then key when the dataset has key truth.
pub fn accuracy_headline(summary: &Summary) -> Vec<(String, String)> {
    let mut tiles = Vec::new();
    if shows_tempo(summary) {
        tiles.extend([
            ("files".into(), summary.n.to_string()),
            ("Accuracy1".into(), pct(summary.acc1)),
            ("Accuracy2".into(), pct(summary.acc2)),
            (EITHER.into(), pct(summary.acc1_either)),
            ("failed".into(), summary.failed.to_string()),
        ]);
    }
    if let Some(key) = &summary.key {
        tiles.extend(key_headline(key));
    }
    tiles
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Five files that all failed, with a true tempo and key: each is in both per-file
    /// tables.
    fn failed_rows() -> Vec<Row> {
        (0..5)
            .map(|i| {
                let mut row = super::super::key::tests::row(
                    &format!("missing/{i}.wav"),
                    Some("C major"),
                    None,
                    "",
                    "",
                );
                row.truth_bpm = Some(120.0);
                row.status = "error";
                row.error = "decode: io: gone".into();
                row
            })
            .collect()
    }

    /// The section named `heading` of `sections`.
    fn section<'a>(sections: &'a [(String, String)], heading: &str) -> &'a str {
        let found = sections.iter().find(|(h, _)| h == heading);
        &found.unwrap_or_else(|| panic!("no section {heading}")).1
    }

    #[test]
    fn a_dataset_above_the_cap_lists_the_first_files_and_counts_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let rows = failed_rows();
        let summary = super::super::summarize("t", &rows, &[]).unwrap();
        let headings = [
            "Files not right by Accuracy1",
            "Files not in their true key",
        ];

        // At the cap or under it, every file and no word of a cut.
        let whole = accuracy_sections(dir.path(), &summary, &rows, 5).unwrap();
        for heading in headings {
            let table = section(&whole, heading);
            assert!(table.contains("missing/4.wav"), "{table}");
            assert!(!table.contains("left out"), "{table}");
        }

        // Above it: the first two files, then how many more there are and where.
        let capped = accuracy_sections(dir.path(), &summary, &rows, 2).unwrap();
        for heading in headings {
            let table = section(&capped, heading);
            assert_eq!(table.matches("<tr><td>").count(), 2, "{table}");
            assert!(table.contains("missing/1.wav"), "{table}");
            assert!(!table.contains("missing/2.wav"), "{table}");
            assert!(
                table.contains(
                    "The first 2 of 5 files are listed; 3 more are left out of this page. \
                     results.csv lists every file."
                ),
                "{table}"
            );
        }
        // The figures above the tables still count every file.
        let classes = section(&capped, "Accuracy tables");
        assert!(classes.contains("<td>failed</td><td>5</td>"), "{classes}");
    }
}
