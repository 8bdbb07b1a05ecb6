//! The measurement behind the key stage's choices (`DEFAULT_PROFILE` and
//! `MIN_KEY_CORRELATION` in `src/key/mod.rs`):
//!
//! 1. the MIREX weighted score (a fifth either way 0.5) of every key profile on key
//!    manifests (`file,key[,source][,length_s]`, e.g. `datasets/key-dev`; without `source`
//!    the manifest's folder names it), by source and by
//!    excerpt length, and leave one source out: for each source, the profile that scores best
//!    on the other sources, and what it scores on the one left out;
//! 2. the best profile correlation, voiced share and pitch-class count of audio that has no
//!    key (`synth_music::presets::keyless`: noise, a sine, a sweep, a drum loop) beside the
//!    lowest ones of music, for the no-key thresholds.
//!
//! ```sh
//! cargo run -p analyzer-core --example key_profiles -- MANIFEST.csv...
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use analyzer_core::key::{FineProfile, Key, KeyEstimator, KeyProfile, pitch_class_count};
use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};
use rayon::prelude::*;

/// One file of a manifest, with its pitch-class votes.
struct Measured {
    truth: Key,
    source: String,
    length: String,
    fine: FineProfile,
}

fn main() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).expect("default settings");
    let manifests: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let mut items: Vec<(PathBuf, Key, String, String)> = Vec::new();
    for manifest in &manifests {
        items.extend(read_manifest(manifest));
    }
    let measured: Vec<Measured> = items
        .par_iter()
        .filter_map(|(path, truth, source, length)| {
            let fine = analyzer
                .chroma_of_file(path, &StopSignal::never())
                .map_err(|e| eprintln!("skipped: {e}"))
                .ok()??;
            Some(Measured {
                truth: *truth,
                source: source.clone(),
                length: length.clone(),
                fine,
            })
        })
        .collect();
    println!("{} files measured", measured.len());
    score_profiles(&measured);
    keyless_evidence(&analyzer, &measured);
}

/// `file,key,source[,length_s]` rows; files relative to the manifest's folder.
fn read_manifest(manifest: &Path) -> Vec<(PathBuf, Key, String, String)> {
    let folder = manifest.parent().unwrap_or(Path::new("."));
    let folder_name = folder
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    let mut reader = csv::Reader::from_path(manifest).expect("a readable manifest");
    let headers = reader.headers().expect("a header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name);
    let (file, key) = (column("file").expect("file"), column("key").expect("key"));
    let (source, length) = (column("source"), column("length_s"));
    reader
        .records()
        .filter_map(|row| {
            let row = row.ok()?;
            let truth: Key = row.get(key)?.parse().ok()?;
            let cell = |c: Option<usize>| c.and_then(|c| row.get(c)).unwrap_or("").to_string();
            // Without a source column the manifest's folder names the source.
            let source = Some(cell(source))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| folder_name.clone());
            Some((folder.join(row.get(file)?), truth, source, cell(length)))
        })
        .collect()
}

/// Mean weighted score of `profile` over `files` (a file without a key scores 0).
fn weighted(profile: KeyProfile, files: &[&Measured]) -> f64 {
    let estimator = KeyEstimator::new(profile);
    let total: f64 = files
        .iter()
        .map(|m| {
            estimator
                .estimate(&m.fine)
                .map_or(0.0, |e| e.key.relation_to(m.truth).weighted_score())
        })
        .sum();
    total / files.len().max(1) as f64
}

fn score_profiles(measured: &[Measured]) {
    let mut groups: BTreeMap<String, Vec<&Measured>> = BTreeMap::new();
    for m in measured {
        groups.entry("all".to_string()).or_default().push(m);
        groups
            .entry(format!("source {}", m.source))
            .or_default()
            .push(m);
        groups
            .entry(format!("length {:>2} s", m.length))
            .or_default()
            .push(m);
    }
    print!("\n{:<24} {:>5}", "weighted score", "n");
    for p in KeyProfile::ALL {
        print!(" {:>12}", p.as_str());
    }
    println!();
    for (group, files) in &groups {
        print!("{group:<24} {:>5}", files.len());
        for p in KeyProfile::ALL {
            print!(" {:>12.3}", weighted(p, files));
        }
        println!();
    }
    println!("\nleave one source out: the profile best on the others, scored on the one left out");
    let sources: Vec<&String> = groups.keys().filter(|g| g.starts_with("source ")).collect();
    for held in sources {
        let others: Vec<&Measured> = measured
            .iter()
            .filter(|m| format!("source {}", m.source) != *held)
            .collect();
        // Each profile scored once on the others; the first of equals wins.
        let (fit, best) = KeyProfile::ALL
            .into_iter()
            .map(|p| (weighted(p, &others), p))
            .fold((f64::MIN, KeyProfile::ALL[0]), |a, b| {
                if b.0 > a.0 { b } else { a }
            });
        println!(
            "{held:<24} chosen {:<12} held-out {:.3} (fit on the others {fit:.3})",
            best.as_str(),
            weighted(best, &groups[held]),
        );
    }
}

fn keyless_evidence(analyzer: &Analyzer, measured: &[Measured]) {
    println!(
        "\nno key (best correlation, voiced share, pitch classes) with {DEFAULT:?}:",
        DEFAULT = KeyEstimator::default().profile()
    );
    let estimator = KeyEstimator::default();
    let best = |fine: &FineProfile| {
        estimator
            .correlations(&fine.chroma())
            .iter()
            .map(|(_, r)| *r)
            .fold(f64::MIN, f64::max)
    };
    let voiced = |fine: &FineProfile| fine.voiced_frames as f64 / fine.frames.max(1) as f64;
    for (name, samples) in synth_music::presets::keyless(20.0, 22_050) {
        let fine = analyzer
            .chroma_of_samples(&samples, 22_050, 1)
            .expect("in-memory audio")
            .expect("key asked for");
        println!(
            "  {:>6.3} {:>5.2} {:>5.1}  {name}",
            best(&fine),
            voiced(&fine),
            pitch_class_count(&fine.chroma())
        );
    }
    let mut music: Vec<f64> = measured.iter().map(|m| best(&m.fine)).collect();
    music.sort_by(f64::total_cmp);
    let lowest: Vec<String> = music.iter().take(8).map(|r| format!("{r:.3}")).collect();
    println!("music, lowest best correlations: {}", lowest.join(" "));
    if let Some(median) = music.get(music.len() / 2) {
        println!("music, median: {median:.3}");
    }
    let lowest = |mut values: Vec<f64>| -> String {
        values.sort_by(f64::total_cmp);
        let few: Vec<String> = values.iter().take(8).map(|v| format!("{v:.2}")).collect();
        few.join(" ")
    };
    println!(
        "music, lowest voiced shares: {}",
        lowest(measured.iter().map(|m| voiced(&m.fine)).collect())
    );
    println!(
        "music, lowest pitch-class counts: {}",
        lowest(
            measured
                .iter()
                .map(|m| pitch_class_count(&m.fine.chroma()))
                .collect()
        )
    );
}
