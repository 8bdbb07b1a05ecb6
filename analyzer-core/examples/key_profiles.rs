//! The measurement behind the key stage's choices (`DEFAULT_PROFILE` and
//! `MIN_KEY_CORRELATION` in `src/key/mod.rs`):
//!
//! 1. the MIREX weighted score (a fifth either way 0.5) of every key profile on key
//!    manifests (`file,key,source[,length_s]`, e.g. `datasets/key-dev`), by source and by
//!    excerpt length, and leave one source out: for each source, the profile that scores best
//!    on the other sources, and what it scores on the one left out;
//! 2. the best profile correlation of audio that has no key (noise, a sine, a sweep, a drum
//!    loop, made here) beside the lowest ones of music, for the no-key threshold.
//!
//! ```sh
//! cargo run -p analyzer-core --example key_profiles -- MANIFEST.csv...
//! ```

use std::collections::BTreeMap;
use std::f32::consts::TAU;
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
            Some((
                folder.join(row.get(file)?),
                truth,
                cell(source),
                cell(length),
            ))
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
        let best = KeyProfile::ALL
            .into_iter()
            .max_by(|a, b| weighted(*a, &others).total_cmp(&weighted(*b, &others)))
            .expect("profiles");
        println!(
            "{held:<24} chosen {:<12} held-out {:.3} (fit on the others {:.3})",
            best.as_str(),
            weighted(best, &groups[held]),
            weighted(best, &others)
        );
    }
}

/// Audio that has no key, made here, mono at 22.05 kHz, 20 s each.
fn keyless() -> Vec<(&'static str, Vec<f32>)> {
    let rate = 22_050.0f32;
    let n = 22_050 * 20;
    let mut noise_state = 0x2545_f491u32;
    let mut noise = move || {
        noise_state ^= noise_state << 13;
        noise_state ^= noise_state >> 17;
        noise_state ^= noise_state << 5;
        noise_state as f32 / u32::MAX as f32 * 2.0 - 1.0
    };
    let white: Vec<f32> = (0..n).map(|_| 0.3 * noise()).collect();
    let sine: Vec<f32> = (0..n)
        .map(|i| 0.5 * (TAU * 440.0 * i as f32 / rate).sin())
        .collect();
    // 50 Hz to 5 kHz, exponentially, over the 20 s.
    let sweep: Vec<f32> = {
        let mut phase = 0.0f32;
        (0..n)
            .map(|i| {
                let hz = 50.0 * 100f32.powf(i as f32 / n as f32);
                phase = (phase + TAU * hz / rate) % TAU;
                0.5 * phase.sin()
            })
            .collect()
    };
    // Kick (a pitch falling from 150 to 50 Hz) on beats, a noise snare on 2 and 4, hats
    // on eighths, 120 BPM.
    let drums: Vec<f32> = {
        let mut out = vec![0.0f32; n];
        let eighth = (rate * 0.25) as usize;
        for (step, start) in (0..n).step_by(eighth).enumerate() {
            for i in 0..(rate * 0.2) as usize {
                let Some(s) = out.get_mut(start + i) else {
                    break;
                };
                let t = i as f32 / rate;
                if step % 2 == 0 {
                    let hz = 50.0 + 100.0 * (-t * 30.0).exp();
                    *s += 0.6 * (-t * 15.0).exp() * (TAU * hz * t).sin();
                }
                if step % 4 == 2 {
                    *s += 0.4 * (-t * 25.0).exp() * noise();
                }
                *s += 0.1 * (-t * 80.0).exp() * noise();
            }
        }
        out
    };
    vec![
        ("white noise", white),
        ("sine 440 Hz", sine),
        ("sweep 50 Hz-5 kHz", sweep),
        ("drum loop", drums),
    ]
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
    for (name, samples) in keyless() {
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
