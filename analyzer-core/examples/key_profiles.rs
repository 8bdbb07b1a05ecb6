//! The measurement behind the key stage's choices (`DEFAULT_PROFILE` and
//! `MIN_KEY_CORRELATION` in `src/key/mod.rs`):
//!
//! 1. the MIREX weighted score (a fifth either way 0.5) of every key profile on key
//!    manifests (`file,key[,source][,length_s]`, e.g. `datasets/key-dev`; without `source`
//!    the manifest's folder names it, or `NAME=MANIFEST` does), by source and by
//!    excerpt length, and leave one source out: for each source, the profile that scores best
//!    on the other sources, and what it scores on the one left out;
//! 2. the best profile correlation, voiced share and pitch-class count of audio that has no
//!    key (`synth_music::presets::keyless`: noise, a sine, a sweep, a drum loop) beside the
//!    lowest ones of music, for the no-key thresholds.
//!
//! ```sh
//! cargo run -p analyzer-core --example key_profiles -- [NAME=]MANIFEST.csv...
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
        let (name, manifest) = match manifest.to_str().and_then(|m| m.split_once('=')) {
            Some((name, path)) => (Some(name.to_string()), PathBuf::from(path)),
            None => (None, manifest.clone()),
        };
        items.extend(read_manifest(&manifest, name));
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

/// `file,key,source[,length_s]` rows; files relative to the manifest's folder. Rows without
/// a source take `name`, else the folder's name.
fn read_manifest(manifest: &Path, name: Option<String>) -> Vec<(PathBuf, Key, String, String)> {
    let folder = manifest.parent().unwrap_or(Path::new("."));
    let folder_name = name.unwrap_or_else(|| {
        folder
            .file_name()
            .map_or(String::new(), |n| n.to_string_lossy().into_owned())
    });
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

/// The chroma exponents the leave-one-source-out choice weighs (`CHROMA_EXPONENT`).
const EXPONENTS: [f64; 3] = [1.0, 0.75, 0.5];

/// Mean weighted score of `profile` over `files` (a file without a key scores 0).
fn weighted(profile: KeyProfile, files: &[&Measured]) -> f64 {
    weighted_with(KeyEstimator::new(profile), files)
}

fn weighted_with(estimator: KeyEstimator, files: &[&Measured]) -> f64 {
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
            .entry(match m.length.as_str() {
                "" => "length: whole files".to_string(),
                seconds => format!("length {seconds:>2} s"),
            })
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
    let default = KeyEstimator::default().profile();
    println!("\n{} by chroma exponent:", default.as_str());
    for exponent in EXPONENTS {
        let estimator = KeyEstimator::new(default).with_chroma_exponent(exponent);
        print!("  ^{exponent:<5}");
        for (group, files) in groups.iter().filter(|(g, _)| g.starts_with("source ")) {
            print!(" {} {:.3}", &group[7..], weighted_with(estimator, files));
        }
        println!();
    }
    println!(
        "\nleave one source out: the profile and chroma exponent best on the others (each \
         source weighing the same), scored on the one left out"
    );
    let sources: Vec<&String> = groups.keys().filter(|g| g.starts_with("source ")).collect();
    let candidates: Vec<(KeyEstimator, String)> = EXPONENTS
        .iter()
        .flat_map(|&e| {
            KeyProfile::ALL.into_iter().map(move |p| {
                let name = format!("{} ^{e}", p.as_str());
                (KeyEstimator::new(p).with_chroma_exponent(e), name)
            })
        })
        .collect();
    for held in &sources {
        let others: Vec<&&String> = sources.iter().filter(|s| *s != held).collect();
        // Each candidate scored once on the others; the first of equals wins.
        let (fit, best) = candidates
            .iter()
            .map(|(estimator, name)| {
                let mean = others
                    .iter()
                    .map(|s| weighted_with(*estimator, &groups[**s]))
                    .sum::<f64>()
                    / others.len() as f64;
                (mean, (estimator, name))
            })
            .fold((f64::MIN, (&candidates[0].0, &candidates[0].1)), |a, b| {
                if b.0 > a.0 { b } else { a }
            });
        println!(
            "{held:<24} chosen {:<20} held-out {:.3} (fit on the others {fit:.3})",
            best.1,
            weighted_with(*best.0, &groups[*held]),
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
