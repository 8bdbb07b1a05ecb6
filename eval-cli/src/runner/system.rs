//! What the host allows: how many workers (the counts themselves are
//! [`analyzer_core::batch`]'s; the warnings are ours), how to stop on a signal, how much
//! memory the batch took.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use analyzer_core::batch::{MEMORY_PER_WORKER, default_workers, memory_worker_cap};

/// More workers than this many per core only add contention; warn past it.
const MAX_WORKERS_PER_CORE: usize = 4;

/// The worker count to use for a requested one, with a warning when it was changed or
/// looks unwise: 0 (which the CLI refuses before this) becomes [`default_workers`], more
/// than 4 per core is kept but warned about, and a count the available memory cannot hold
/// is lowered to what it can.
pub fn validate_workers(requested: usize) -> (usize, Option<String>) {
    if requested == 0 {
        let workers = default_workers();
        return (
            workers,
            Some(format!("0 workers makes no progress; using {workers}")),
        );
    }
    if let Some(cap) = memory_worker_cap()
        && requested > cap
    {
        return (
            cap,
            Some(format!(
                "{requested} workers need about {} MiB but only enough memory for {cap} is \
                     available; using {cap}",
                requested as u64 * (MEMORY_PER_WORKER >> 20)
            )),
        );
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if requested > MAX_WORKERS_PER_CORE * cores {
        return (
            requested,
            Some(format!(
                "{requested} workers on {cores} cores: past {MAX_WORKERS_PER_CORE} per core \
                 they only add contention"
            )),
        );
    }
    (requested, None)
}

/// Makes the first Ctrl-C or SIGTERM set `cancel`, so a batch stops cleanly and keeps
/// what finished; a second one exits at once with status 130, leaving no temporary or
/// lock file ([`crate::output::remove_unfinished`]).
pub fn install_signal_handler(cancel: Arc<AtomicBool>) {
    let installed = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            // No destructor runs after this: remove the temporaries and locks by hand.
            crate::output::remove_unfinished();
            std::process::exit(130);
        }
    });
    if let Err(err) = installed {
        eprintln!("eval-cli: warning: cannot catch Ctrl-C ({err}); it will kill the run");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_counts_are_validated() {
        let (w, warning) = validate_workers(0);
        assert_eq!(w, default_workers());
        assert!(warning.is_some_and(|w| w.contains("0 workers")));
        assert_eq!(validate_workers(1), (1, None));
        // Far too many: lowered to what memory holds, or kept with a contention warning.
        let (w, warning) = validate_workers(10_000);
        let warning = warning.expect("10000 workers are warned about");
        match memory_worker_cap() {
            Some(cap) if cap < 10_000 => {
                assert_eq!(w, cap);
                assert!(warning.contains("memory"), "{warning}");
            }
            _ => {
                assert_eq!(w, 10_000);
                assert!(warning.contains("contention"), "{warning}");
            }
        }
        #[cfg(target_os = "linux")]
        assert!(crate::host::peak_rss_mb().is_some_and(|m| m > 0.0));
    }
}
