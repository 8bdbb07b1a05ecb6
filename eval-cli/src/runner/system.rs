//! How a run stops on a signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Exit status after Ctrl-C or SIGTERM, as shells report death by SIGINT.
pub const EXIT_CANCELLED: u8 = 130;

/// Signals this soon after the first are the same request to stop, not a second one: a
/// wrapper relays one kill more than once (GNU `timeout` sends it to its child, then to
/// the child's process group; a shell's Ctrl-C reaches a process and the wrapper that
/// forwards it), and the copies arrive microseconds apart. A person's second Ctrl-C,
/// pressed because the first did not stop the run soon enough, comes later.
const SAME_REQUEST: Duration = Duration::from_secs(1);

/// The exit status of a run that ended: [`EXIT_CANCELLED`] when a signal stopped it, else
/// success.
pub fn finished(cancelled: bool) -> std::process::ExitCode {
    if cancelled {
        std::process::ExitCode::from(EXIT_CANCELLED)
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// Makes the first Ctrl-C or SIGTERM set `cancel`, so a batch stops cleanly and keeps
/// what finished; a second one exits at once with status 130, leaving no temporary or
/// lock file ([`crate::output::remove_unfinished`]). Signals within `SAME_REQUEST` (1 s) of
/// the first are that first one relayed again: before, `timeout` relaying one SIGTERM
/// twice made the run exit at once, without the rows of the files it had finished.
pub fn install_signal_handler(cancel: Arc<AtomicBool>) {
    let mut first: Option<Instant> = None;
    let installed = ctrlc::set_handler(move || {
        let stopping = cancel.swap(true, Ordering::SeqCst);
        if exits_at_once(stopping, &mut first, Instant::now()) {
            // No destructor runs after this: remove the temporaries and locks by hand.
            crate::output::remove_unfinished();
            std::process::exit(i32::from(EXIT_CANCELLED));
        }
    });
    if let Err(err) = installed {
        eprintln!("eval-cli: warning: cannot catch Ctrl-C ({err}); it will kill the run");
    }
}

/// Whether a signal at `now` ends the process at once: the run was `stopping` already (an
/// earlier signal, or a failed write of its rows), and this is no copy of the `first`
/// signal (which it records when there was none) relayed within [`SAME_REQUEST`].
fn exits_at_once(stopping: bool, first: &mut Option<Instant>, now: Instant) -> bool {
    let relayed = first.is_some_and(|at| now.saturating_duration_since(at) < SAME_REQUEST);
    first.get_or_insert(now);
    stopping && !relayed
}

/// Sends `signal` (`TERM`, `KILL`) to `target`: a process id, or `-PGID` for a whole
/// process group. std sends only SIGKILL to a child and has no killpg; kill(1) does both
/// without unsafe code. Whether it was sent; always `false` where there is no kill(1).
pub fn send_signal(target: &str, signal: &str) -> bool {
    #[cfg(unix)]
    {
        std::process::Command::new("kill")
            .args([&format!("-{signal}"), "--", target])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
    #[cfg(not(unix))]
    {
        let _ = (target, signal);
        false
    }
}

/// Resolves on SIGINT, SIGTERM or SIGHUP.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        // SIGHUP too (a closed terminal), as the batch commands take it: it killed the
        // service without its shutdown (exit 129).
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) {
            (Ok(mut term), Ok(mut hangup)) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                    _ = hangup.recv() => {}
                }
            }
            _ => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The moments are given, not waited for.
    #[test]
    fn a_copy_of_the_first_signal_is_the_same_request_and_a_later_one_exits() {
        let start = Instant::now();
        let mut first = None;
        assert!(!exits_at_once(false, &mut first, start), "the first stops");
        assert_eq!(first, Some(start));
        let copy = start + Duration::from_micros(50);
        assert!(!exits_at_once(true, &mut first, copy), "relayed by timeout");
        let again = start + SAME_REQUEST + Duration::from_millis(1);
        assert!(exits_at_once(true, &mut first, again), "a second Ctrl-C");
        assert_eq!(first, Some(start), "the window runs from the first");
        // Stopping already for another reason (its rows could not be written): the first
        // signal exits at once, as before.
        assert!(exits_at_once(true, &mut None, start));
    }
}
