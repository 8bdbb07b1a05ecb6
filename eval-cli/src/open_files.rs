//! How many workers (and, for `serve`, connections) the open-file limit (`ulimit -n`)
//! can hold. A worker short of a descriptor does not fail its file (the batch runner tries
//! it again alone), but it then waits for the others: fitting the count to the limit keeps
//! that rare. The figures are counted with `strace -f` on `analyze`, `watch` and `serve`
//! over WAV and FLAC files, and with `ls /proc/PID/fd` on an idle `watch` and `serve`.

/// Descriptors a worker holds at once while it analyses a file: the file, and a second
/// handle on it while a WAV is probed (to probe again a WAV whose header sizes lie). The
/// cache's content hash reads the file through its own handle, closed before decoding.
pub const DESCRIPTORS_PER_WORKER: usize = 2;

/// Descriptors a command holds besides its workers' (counted: `analyze --cache --out` 7,
/// and 2 more while it puts the CSV in order; an idle `watch --cache` 9; an idle `serve
/// --cache` 12): stdin, stdout and stderr; the cache's store; `--out`'s CSV, its lock, its
/// identity log and the rewrite's temporary file and folder; tokio's epoll and eventfd and
/// the signal pipe (`watch`, `serve`); inotify (`watch`); the listener (`serve`).
pub const DESCRIPTORS_AT_REST: usize = 12;

/// Descriptors a `serve` connection may hold: its socket, and an upload's temporary file.
pub const DESCRIPTORS_PER_CONNECTION: usize = 2;

/// How many workers fit in `limit` descriptors besides [`DESCRIPTORS_AT_REST`] and
/// `reserved` more (at least 1: a limit below one worker's needs is left to the retry).
pub fn workers_that_fit(limit: usize, reserved: usize) -> usize {
    (limit.saturating_sub(DESCRIPTORS_AT_REST + reserved) / DESCRIPTORS_PER_WORKER).max(1)
}

/// How many `serve` connections fit in `limit` beside `workers` workers (at least 1).
pub fn connections_that_fit(limit: usize, workers: usize) -> usize {
    let workers = workers.saturating_mul(DESCRIPTORS_PER_WORKER);
    (limit.saturating_sub(DESCRIPTORS_AT_REST + workers) / DESCRIPTORS_PER_CONNECTION).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_and_connections_share_the_limit() {
        // `ulimit -n 16`: 12 at rest, 2 workers; 1 with room kept for one connection.
        assert_eq!(workers_that_fit(16, 0), 2);
        assert_eq!(workers_that_fit(16, DESCRIPTORS_PER_CONNECTION), 1);
        assert_eq!(connections_that_fit(16, 1), 1);
        // The usual 1024: 506 workers, far above any core count.
        assert_eq!(workers_that_fit(1024, 0), 506);
        assert_eq!(connections_that_fit(1024, 8), 498);
        // Below what is held at rest: still one worker and one connection.
        assert_eq!(workers_that_fit(8, 0), 1);
        assert_eq!(connections_that_fit(8, 1), 1);
    }
}
