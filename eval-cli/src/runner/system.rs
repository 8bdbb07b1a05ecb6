//! How a run stops on a signal.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status after Ctrl-C or SIGTERM, as shells report death by SIGINT.
pub const EXIT_CANCELLED: u8 = 130;

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
/// lock file ([`crate::output::remove_unfinished`]).
pub fn install_signal_handler(cancel: Arc<AtomicBool>) {
    let installed = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            // No destructor runs after this: remove the temporaries and locks by hand.
            crate::output::remove_unfinished();
            std::process::exit(i32::from(EXIT_CANCELLED));
        }
    });
    if let Err(err) = installed {
        eprintln!("eval-cli: warning: cannot catch Ctrl-C ({err}); it will kill the run");
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = interrupt => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = interrupt.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
