//! Whether the system lets this process start the threads a command needs, asked before a
//! dependency starts them. Under a process limit (`ulimit -u`, a container's `pids.max`)
//! the kernel refuses a new thread with `EAGAIN`, and two dependencies cannot take that
//! as an answer: tokio's multi-thread runtime panics while it is built and then waits
//! forever for the worker it did start (`serve` hung), and notify's watcher panics at its
//! first use, twice, which aborts (`watch`). A command that cannot run then stops with
//! [`ThreadRefused`], exit 2, before either of them is asked; `analyze` needs no such
//! check, as its batch runner goes on sequentially.
//!
//! The check is [`probe`]: it starts the threads, parked, and ends them before it returns.
//! Another process of the same user may take the room in between; what a dependency then
//! does is its own (the same panic), but nothing of this process competes for it.

use std::sync::{Arc, RwLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::host;

/// Names the number of threads [`probe`] may start before it is refused, as a process
/// limit would refuse it: the seam where a test meets a limit, which root (who runs the
/// tests) never does. Unset in normal use.
pub const ROOM_ENV: &str = "EVAL_CLI_THREAD_ROOM";

/// Linux's `EAGAIN`, the error of a thread over the limit.
const EAGAIN: i32 = 11;

/// How long [`probe`] waits for the kernel to count its ended threads as gone.
const RELEASE_PATIENCE: Duration = Duration::from_secs(1);

/// The system refused to start a thread this command needs.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot start: the system refused a thread ({reason}); raise the process limit (ulimit -u){}",
    if *.workers { " or lower --workers" } else { "" }
)]
pub struct ThreadRefused {
    /// Why, as the system says it (`Resource temporarily unavailable`), without the
    /// error number.
    reason: String,
    /// Whether fewer `--workers` would need fewer threads (the advice then says so).
    workers: bool,
}

impl ThreadRefused {
    /// The refusal of a thread spawn that failed with `error`; `workers` as in
    /// [`probe`].
    pub fn of_spawn(error: &std::io::Error, workers: bool) -> Self {
        let text = error.to_string();
        // std writes an OS error as `TEXT (os error N)`: the number says nothing more.
        let reason = match (text.rfind(" (os error "), text.ends_with(')')) {
            (Some(at), true) => text[..at].to_string(),
            _ => text,
        };
        ThreadRefused { reason, workers }
    }

    /// A refusal seen only through its effect: a dependency's thread that is not
    /// running (`what` names it).
    pub fn not_running(what: &str, workers: bool) -> Self {
        ThreadRefused {
            reason: format!("{what} did not start"),
            workers,
        }
    }
}

/// Starts `count` threads, parked, then ends them: `Ok` when the system let every one
/// start, else the refusal. `workers` says whether `--workers` is part of `count`, for
/// the advice.
///
/// The kernel counts an ended thread against the limit a moment after `join` returns
/// (it is released after it wakes its joiner): the probe waits, up to a second, until
/// the process is back to the threads it had, so that the threads started next find
/// the room it found.
pub fn probe(count: usize, workers: bool) -> Result<(), ThreadRefused> {
    let room = std::env::var(ROOM_ENV)
        .ok()
        .and_then(|n| n.parse::<usize>().ok());
    let before = host::thread_count();
    let gate = Arc::new(RwLock::new(()));
    let closed = gate.write().unwrap_or_else(|e| e.into_inner());
    let mut parked = Vec::with_capacity(count);
    let mut refused = None;
    for _ in 0..count {
        let gate = Arc::clone(&gate);
        let spawned = if room == Some(parked.len()) {
            Err(std::io::Error::from_raw_os_error(EAGAIN))
        } else {
            thread::Builder::new()
                .name("thread-probe".into())
                .spawn(move || drop(gate.read()))
        };
        match spawned {
            Ok(handle) => parked.push(handle),
            Err(error) => {
                refused = Some(ThreadRefused::of_spawn(&error, workers));
                break;
            }
        }
    }
    drop(closed);
    for handle in parked {
        let _ = handle.join();
    }
    if let Some(before) = before {
        let deadline = Instant::now() + RELEASE_PATIENCE;
        while host::thread_count().is_some_and(|now| now > before) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
    }
    refused.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_spawn_says_why_without_the_error_number_and_what_to_do() {
        let eagain = std::io::Error::from_raw_os_error(EAGAIN);
        let refused = ThreadRefused::of_spawn(&eagain, true).to_string();
        assert_eq!(
            refused,
            "cannot start: the system refused a thread (Resource temporarily unavailable); \
             raise the process limit (ulimit -u) or lower --workers"
        );
        let other = std::io::Error::other("no threads here");
        assert_eq!(
            ThreadRefused::of_spawn(&other, false).to_string(),
            "cannot start: the system refused a thread (no threads here); raise the process \
             limit (ulimit -u)"
        );
        assert!(
            ThreadRefused::not_running("the file watcher's thread", false)
                .to_string()
                .contains("(the file watcher's thread did not start)")
        );
    }

    #[test]
    fn a_probe_the_system_allows_is_ok() {
        probe(4, true).unwrap();
        probe(0, false).unwrap();
    }
}
