//! How many workers the host allows: one per core, fewer when memory is short.

/// Memory budgeted per worker. Analysis streams (the envelope is about 1 kB per second of
/// audio), so a worker's share is mostly decoder buffers and FFT scratch; 64 MiB leaves a
/// wide margin for large packets and long files.
pub const MEMORY_PER_WORKER: u64 = 64 * 1024 * 1024;

/// How many workers the available memory can hold at [`MEMORY_PER_WORKER`] each (at least
/// one), when it can be measured.
pub fn memory_worker_cap() -> Option<usize> {
    let mut system = sysinfo::System::new().ok()?;
    system.refresh_memory();
    let available = system.available_memory();
    if available == 0 {
        return None;
    }
    Some(
        usize::try_from(available / MEMORY_PER_WORKER)
            .unwrap_or(usize::MAX)
            .max(1),
    )
}

/// One worker per core, fewer if available memory cannot hold [`MEMORY_PER_WORKER`] for
/// each: the worker count to use when the caller names none.
pub fn default_workers() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    memory_worker_cap()
        .map_or(cores, |cap| cores.min(cap))
        .max(1)
}
