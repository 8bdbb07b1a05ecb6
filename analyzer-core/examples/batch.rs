//! The tempo and key of every audio file under some folders, on all cores, in input order:
//!
//! ```sh
//! cargo run -p analyzer-core --example batch -- ~/Music [--workers N]
//! ```
//!
//! Ctrl-C stops scheduling, lets running files stop at their next packet and prints what
//! finished.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use analyzer_core::batch::{self, Batch};
use analyzer_core::{Analyzer, AnalyzerConfig, StopSignal};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (mut folders, mut workers) = (Vec::new(), batch::default_workers());
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--workers" => workers = args.next().ok_or("--workers needs a number")?.parse()?,
            _ => folders.push(PathBuf::from(arg)),
        }
    }
    let (files, unreadable) = batch::collect_audio_files(&folders);
    for e in &unreadable {
        eprintln!("{}: {}", e.path.display(), e.reason);
    }

    let cancel = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&cancel);
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;

    let analyzer = Analyzer::new(AnalyzerConfig::default())?;
    let executor = batch::executor_for(workers)?;
    let summary = Batch::new(&analyzer)
        .stop(StopSignal::never().with_cancel_flag(cancel))
        .run(&files, &*executor);
    for r in &summary.results {
        // A file without a pulse fails with its key kept: its value is there, its tempo not.
        let bpm = r.value.as_ref().and_then(|a| a.tempo.as_ref().ok());
        let bpm = bpm.map(|t| format!("{:.1}", t.bpm));
        // The key with its Camelot code, or why the audio has none.
        let key = match r.value.as_ref().and_then(|a| a.key.as_ref()) {
            Some(Ok(k)) => format!("{} {}", k.key, k.key.camelot()),
            Some(Err(no_key)) => no_key.to_string(),
            None => "-".to_string(),
        };
        let why = r.error.as_deref().unwrap_or("");
        let path = r.path.display();
        println!(
            "{path}\t{}\t{key}\t{}\t{why}",
            bpm.as_deref().unwrap_or("-"),
            r.status.as_str()
        );
    }
    if summary.cancelled {
        eprintln!(
            "cancelled: {} of {} files finished",
            summary.results.len(),
            files.len()
        );
        std::process::exit(130);
    }
    Ok(())
}
