//! `--cache DIR`: rows already computed are not computed again. A file whose bytes and
//! analyzer settings were seen before gets its row from `DIR/results.redb` without being
//! decoded, and a file whose identity (device, inode, size, mtime, ctime) is as recorded
//! when its row was made is not even opened, so a second run over an unchanged library
//! costs a `stat` and a lookup per file.
//!
//! ```text
//! path ─stat─ identity as recorded, and not racy then ─▶ the recorded content hash ─┐
//! file ─BLAKE3 of its bytes─ (otherwise) ───────────────────────────────────────────┤
//!                           ├─ CacheKey ─get─▶ hit: the stored row, if intact and in range
//! settings ─BLAKE3 of the ──┘             └──▶ miss: analyse, then put if deterministic
//!   cache schema, analyzer fingerprint,              and the file did not change meanwhile
//!   eval-cli version and CSV header
//! ```
//!
//! - **The key is the content**, not the path: a renamed or copied file hits, an edited
//!   one misses. The second half of the key is the cache [`SCHEMA`] with the analyzer's
//!   [fingerprint](analyzer_core::AnalyzerConfig::fingerprint) (version, every setting,
//!   the model weights' hash), this crate's version and the CSV columns, since eval-cli
//!   formats the row. Rows stored under another schema are never read. The per-file timeout is not in the key: it can
//!   only turn a row into a `timeout` row, and those are never stored.
//! - **Only outcomes that depend on the bytes and the key's settings alone are stored**:
//!   `ok` rows, and the tempo stage's `too_short` and `no_pulse` ([`is_deterministic`]).
//!   Not `unsupported_format` or `corrupt_stream`: they are the decoder's verdict on what
//!   it can read, which changes as the decoder learns formats, and the key does not name
//!   the decoder's reach. Never `timeout`, `cancelled`, `unreadable`, `invalid_config` or
//!   a panic (they depend on the run, the machine or a bug).
//! - **The hash is of the bytes that were analysed.** The file is opened with
//!   [`open_regular`](analyzer_core::decode::open_regular) (a pipe, socket or device is
//!   an `unreadable` row at once, never a read without end) and the stop signal is
//!   checked between 256 KiB chunks, so Ctrl-C, SIGTERM and the per-file deadline stop
//!   the hash of any file. Its [`FileIdentity`] (size, mtime; device, inode and ctime on
//!   Unix) is taken before hashing and again after the analysis: a file that changed in
//!   between gets its fresh row, which is not stored. (A rewrite that keeps the size and
//!   lands within the file system's timestamp granularity is not seen.)
//! - **A stored row is checked before use.** It is sealed with the BLAKE3 hash of its key
//!   and its bytes, and a row that fails the checksum, does not parse, or does not fit
//!   the run ([`RowLimits`]: tempo within `--min-bpm`..`--max-bpm`, numbers finite and as
//!   `analyze` writes them, status `ok` with no path, or a failure of a stored kind) is a
//!   miss: the file is analysed and its row written over the bad one.
//! - **A damaged store is replaced, never fatal.** Every redb call is guarded
//!   (see `cache/store.rs`): an error that says the file is damaged, or a panic inside
//!   redb, moves `results.redb` aside as `results.redb.damaged-N` with one warning naming
//!   both files and the reason ([`ResultCache::take_warnings`]), and a fresh store takes
//!   its place. Other redb errors are [`CacheError`]s, counted, and the file analysed as
//!   without a cache.
//! - **A cached row is byte-identical to a fresh one by construction**: the stored value
//!   is the [`AnalyzeRecord`](crate::record::AnalyzeRecord) itself (its strings, path left out), and for a failure
//!   also the stage, kind and detail of the [`Error`](analyzer_core::Error) (a row without a pulse keeps its key
//!   and loudness), which a hit gives back as the same failure with the same row, so the
//!   row, the progress events and the failure counts go down the same path as a fresh
//!   result.
//! - **Store: redb 4.6 in [`ConcurrencyMode::MultiWriter`](redb::ConcurrencyMode).** redb's default mode locks
//!   the whole file, so a second process gets `DatabaseAlreadyOpen`; since 4.5 the
//!   multi-writer mode lets any number of processes hold the file open, each reading
//!   concurrently, with one write transaction at a time across all of them (byte-range
//!   locks, which the kernel drops when a process dies). That is what `analyze` runs next
//!   to `serve` on one DIR need, without a retry loop of our own and without linking C
//!   (SQLite with WAL would also do; it costs a C build and the pure-Rust store passes the
//!   same tests).
//! - **Writes: a writer thread, small batches.** A worker hands its row to the cache's
//!   writer thread and goes on; the writer commits whatever rows are waiting in one
//!   fsynced transaction (`Durability::Immediate`, about 5 ms here). One transaction per
//!   row on the worker's thread made the workers wait on fsync and capped all processes
//!   sharing a DIR at about 180 rows per second (docs/cache.md). Rows waiting or
//!   in a commit are seen by this process's lookups at once. A SIGKILL at any moment loses
//!   at most the rows not yet committed (they are analysed again next time), and redb's
//!   commit protocol (two commit slots, checksummed) leaves the file openable; the next
//!   open repairs the allocator state if needed. The tests kill a writer mid-batch and run
//!   two writers at once.
//! - **Reads: one transaction for many lookups.** In multi-writer mode each `begin_read`
//!   takes and drops byte-range locks; `analyze` lets one read transaction serve lookups
//!   for up to 100 ms ([`ResultCache::reuse_reads_for`]), renewed at once by a commit of
//!   its own so it reads its writes. Rows other processes commit meanwhile may be missed
//!   for that long (the file is hashed), never misread. A long-lived service keeps one
//!   transaction per lookup: a snapshot an idle process held would keep other processes
//!   from reusing the store's pages.
//! - **Identities: a rescan reads nothing unchanged.** Beside the rows, a second table maps
//!   each file's absolute path to a [`Recorded`]: its [`FileIdentity`] (device, inode,
//!   size, mtime and ctime in nanoseconds) before it was hashed, the content hash, and the
//!   moment it was recorded. A file whose identity is the same and was not racy then (its
//!   mtime and ctime strictly older than that moment less the timestamps' granularity, as
//!   git guards its index: see `cache/identity.rs`) is served by its recorded hash without
//!   being opened, and not probed for its cost either. Every other file is hashed as
//!   before, and its identity recorded; a moved or copied file is a hit by content, read
//!   once. Rows are not touched by this, so [`SCHEMA`] stays: a cache written before the
//!   table existed serves its rows by hash and fills the table on its next run. What
//!   identity cannot see: a write that keeps size, mtime, ctime and inode (the same
//!   timestamp tick as the recording, which the racy guard covers, or a file system whose
//!   clock disagrees with this machine's). `--verify` hashes every file and names those
//!   ([`ResultCache::take_mismatches`]); `--force` re-analyses and re-records everything.
//!
//! One file over 500 lines: the handle, its writer thread, the queue both read, and the
//! counters are one piece of state under one lock.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use redb::ReadableDatabase;
use serde::Serialize;

mod analyzer;
mod args;
mod identity;
mod key;
#[cfg(test)]
mod rescan_tests;
mod row;
mod store;

pub use analyzer::{Analyzed, CachedAnalyzer, ContentHasher, ReadAndHash, Rescan};
pub use args::CacheArgs;

pub use identity::{BadIdentity, FileIdentity, Nanos, Recorded, nanos_of, path_key, time_of};
pub use key::{CacheKey, SCHEMA, Settings, hash_file, key_for};
pub use row::{RowLimits, Stored, is_deterministic};
pub use store::{CACHE_FILE, CacheError};

use store::{IDENTITIES, ROWS, Store, Table};

/// What a cache did, for `analyze`'s last line, reports and `/metrics`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    /// Lookups that found a row.
    pub hits: u64,
    /// Lookups that found none (and files analysed under `--force`).
    pub misses: u64,
    /// Rows committed by [`ResultCache::store`] (call [`ResultCache::flush`] first for the
    /// final count).
    pub stored: u64,
    /// Lookups or writes that failed (the file was analysed as without a cache).
    pub errors: u64,
    /// Rows found damaged or not fitting the run's settings: counted as misses too, the
    /// file analysed again and its row rewritten.
    pub rejected: u64,
    /// Hits served by the file's recorded identity, without opening the file (counted
    /// in `hits` too).
    pub unread: u64,
    /// Files `--verify` found changed while their identity was not (see
    /// [`ResultCache::take_mismatches`]).
    pub mismatched: u64,
}

impl CacheStats {
    /// What `analyze` and `watch` say of the cache on stderr: rows served and stored, and
    /// how many files were not read at all.
    pub fn summary_lines(&self, store: &Path) -> Vec<String> {
        let mut lines = vec![format!(
            "eval-cli: cache {}: {} of {} rows from the cache, {} stored",
            store.display(),
            self.hits,
            self.hits + self.misses,
            self.stored
        )];
        if self.unread > 0 {
            lines.push(format!(
                "eval-cli: cache: {} of those files were not read (size, times and inode as \
                 recorded)",
                self.unread
            ));
        }
        lines
    }

    /// The `cache` event of `--progress jsonl` (the store's file and these counts), as
    /// `analyze` and `watch` give it.
    pub fn event(&self, store: &Path) -> serde_json::Value {
        serde_json::json!({
            "event": "cache",
            "file": crate::path_cell::path_cell(store),
            "hits": self.hits,
            "misses": self.misses,
            "stored": self.stored,
            "errors": self.errors,
            "rejected": self.rejected,
            "unread": self.unread,
            "mismatched": self.mismatched,
        })
    }
}

/// Sealed rows by key bytes, waiting for or in their commit.
type Rows = HashMap<[u8; 64], Vec<u8>>;

/// Sealed [`Recorded`] identities by [`path_key`], waiting for or in their commit.
type Identities = HashMap<Vec<u8>, Vec<u8>>;

/// What one commit writes: rows and the identities of the files they came from.
#[derive(Debug, Default)]
struct Writes {
    rows: Rows,
    identities: Identities,
}

impl Writes {
    fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.identities.is_empty()
    }
}

/// Rows [`ResultCache::store`] (and identities [`ResultCache::record`]) has handed to the
/// writer thread. Lookups see them at once, so a process reads its own writes before they
/// are committed.
#[derive(Debug, Default)]
struct Queue {
    /// Writes not yet taken by the writer.
    pending: Writes,
    /// The writes of the commit under way.
    committing: Arc<Writes>,
    /// The cache is being dropped: commit what is left and stop.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    store: Store,
    queue: Mutex<Queue>,
    /// Rows were queued (for the writer), or a commit ended (for `flush`).
    changed: Condvar,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    errors: AtomicU64,
    rejected: AtomicU64,
    unread: AtomicU64,
    mismatched: AtomicU64,
    /// Files `--verify` found changed under an unchanged identity, in the order found.
    mismatches: Mutex<Vec<PathBuf>>,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn mismatches(&self) -> MutexGuard<'_, Vec<PathBuf>> {
        self.mismatches
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts a failed lookup or write. A damaged store is not counted: it was moved
    /// aside and its warning says so.
    fn note_error(&self, err: &CacheError, rows: u64) {
        match err {
            CacheError::Damaged { .. } => {}
            CacheError::Row { .. } => {
                self.rejected.fetch_add(rows, Ordering::Relaxed);
            }
            _ => {
                self.errors.fetch_add(rows, Ordering::Relaxed);
                let mut first = self
                    .first_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner);
                first.get_or_insert_with(|| err.to_string());
            }
        }
    }

    fn commit_once(&self, writes: &Writes) -> Result<(), CacheError> {
        self.store.with_db(|db| {
            let write = db.begin_write()?;
            if !writes.rows.is_empty() {
                let mut table = write.open_table(ROWS)?;
                for (key, value) in &writes.rows {
                    table.insert(key.as_slice(), value.as_slice())?;
                }
            }
            if !writes.identities.is_empty() {
                let mut table = write.open_table(IDENTITIES)?;
                for (path, value) in &writes.identities {
                    table.insert(path.as_slice(), value.as_slice())?;
                }
            }
            write.commit()?;
            // Before the writes leave the queue: a lookup that no longer finds them there
            // takes a fresh snapshot.
            self.store.committed();
            Ok(())
        })
    }

    /// Commits `writes`; if the store was found damaged (and so replaced), once more into
    /// the fresh one.
    fn commit(&self, writes: &Writes) -> Result<(), CacheError> {
        match self.commit_once(writes) {
            Err(CacheError::Damaged { .. }) => self.commit_once(writes),
            done => done,
        }
    }

    /// The writer thread: commits whatever rows are queued, all in one transaction, until
    /// the cache closes. Workers never wait for a commit (an fsync, about 5 ms), and rows
    /// that finish while one is under way share the next.
    fn write_rows(&self) {
        loop {
            let rows = {
                let mut queue = self.queue();
                while queue.pending.is_empty() && !queue.closing {
                    queue = self
                        .changed
                        .wait(queue)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                if queue.pending.is_empty() {
                    return;
                }
                let rows = Arc::new(std::mem::take(&mut queue.pending));
                queue.committing = Arc::clone(&rows);
                rows
            };
            let count = rows.rows.len() as u64;
            match self.commit(&rows) {
                Ok(()) => {
                    self.stored.fetch_add(count, Ordering::Relaxed);
                }
                // A batch of identities alone failed too: it counts, or the warning would
                // say "0 writes failed" and then name the first.
                Err(err) => self.note_error(&err, count.max(1)),
            }
            self.queue().committing = Arc::default();
            self.changed.notify_all();
        }
    }

    /// The sealed row under `key`: queued by this handle, else committed.
    fn read(&self, key: &[u8; 64]) -> Result<Option<Vec<u8>>, CacheError> {
        let queued = |writes: &Writes| writes.rows.get(key).cloned();
        self.read_in(Table::Rows, key, queued)
    }

    /// The sealed identity under `path_key`: queued by this handle, else committed.
    fn read_identity(&self, path_key: &[u8]) -> Result<Option<Vec<u8>>, CacheError> {
        let queued = |writes: &Writes| writes.identities.get(path_key).cloned();
        self.read_in(Table::Identities, path_key, queued)
    }

    /// The bytes under `key` in `table`: queued by this handle (`queued` finds them in a
    /// [`Writes`]), else committed.
    fn read_in(
        &self,
        table: Table,
        key: &[u8],
        queued: impl Fn(&Writes) -> Option<Vec<u8>>,
    ) -> Result<Option<Vec<u8>>, CacheError> {
        let found = {
            let queue = self.queue();
            queued(&queue.pending).or_else(|| queued(&queue.committing))
        };
        match found {
            Some(bytes) => Ok(Some(bytes)),
            None => self.store.get(table, key),
        }
    }
}

/// The result cache of one folder, opened once per process and shared by its workers.
///
/// [`ResultCache::store`] hands rows to a writer thread that commits them in small
/// batches; [`ResultCache::flush`] waits for it, and dropping the cache commits what is
/// left. [`ResultCache::get`] and [`ResultCache::put`] are the plain, uncounted,
/// synchronous operations.
#[derive(Debug)]
pub struct ResultCache {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl ResultCache {
    /// Opens (creating the folder and the store if missing) the cache in `dir`. Other
    /// processes may have it open at the same time. A file there that is not a sound
    /// store is moved aside (see [`ResultCache::take_warnings`]) and a fresh one made.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let shared = Arc::new(Shared {
            store: Store::open(dir)?,
            queue: Mutex::default(),
            changed: Condvar::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            unread: AtomicU64::new(0),
            mismatched: AtomicU64::new(0),
            mismatches: Mutex::default(),
            first_error: Mutex::new(None),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("result-cache-writer".into())
                .spawn(move || shared.write_rows())
                .map_err(CacheError::Writer)?
        };
        Ok(ResultCache {
            shared,
            writer: Some(writer),
        })
    }

    /// Opens the cache of a run that can go on without one (`analyze`, `serve`): where
    /// `dir` or its store cannot be created or opened for writing (a read-only file
    /// system, no permission, a parent that is a file), `warn` is given one line naming
    /// the folder and the reason, and the answer is `None`: the run's rows are those of a
    /// run without `--cache`, as when a write fails later. A path that cannot be a cache
    /// folder ([`CacheError::is_refusal`]) is the error.
    pub fn open_or_go_without(
        dir: &Path,
        warn: impl FnOnce(String),
    ) -> Result<Option<Self>, CacheError> {
        match Self::open(dir) {
            Ok(cache) => Ok(Some(cache)),
            Err(error) if error.is_refusal() => Err(error),
            Err(error) => {
                warn(format!(
                    "{error}; going on without the cache (no row of {} is read or stored)",
                    dir.display()
                ));
                Ok(None)
            }
        }
    }

    /// Lets one read transaction serve this handle's lookups for up to `age` (and none
    /// past a commit of this handle), for a batch of lookups: each transaction costs
    /// byte-range locks. A row another process committed within `age` may be missed
    /// (the file is then hashed), never a wrong one served. `Duration::ZERO` (the
    /// default) reads afresh each time; a long-lived, mostly idle process keeps it so, as
    /// a snapshot it held would keep other processes from reusing the store's pages.
    pub fn reuse_reads_for(&self, age: Duration) {
        self.shared.store.reuse_reads_for(age);
    }

    /// The store's file.
    pub fn file(&self) -> &Path {
        self.shared.store.file()
    }

    /// The stored outcome of `key`, if any (rows queued by this handle included). Counts
    /// nothing (see [`ResultCache::lookup`]). A row that fails its checksum is
    /// [`CacheError::Row`].
    pub fn get(&self, key: &CacheKey) -> Result<Option<Stored>, CacheError> {
        let Some(bytes) = self.shared.read(&key.bytes())? else {
            return Ok(None);
        };
        row::unseal(key, &bytes)
            .map(Some)
            .map_err(|reason| CacheError::Row {
                file: self.file().to_path_buf(),
                reason,
            })
    }

    /// Stores `value` under `key` (replacing any row there) in its own committed
    /// transaction, durable when this returns. Counts nothing.
    pub fn put(&self, key: &CacheKey, value: &Stored) -> Result<(), CacheError> {
        let writes = Writes {
            rows: Rows::from([(key.bytes(), row::seal(key, value)?)]),
            ..Writes::default()
        };
        self.shared.commit(&writes)
    }

    /// How many rows the store holds (all settings together; queued rows not counted).
    pub fn len(&self) -> Result<u64, CacheError> {
        self.shared.store.with_db(|db| {
            let read = db.begin_read()?;
            match read.open_table(ROWS) {
                Ok(table) => Ok(redb::ReadableTableMetadata::len(&table)?),
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
                Err(err) => Err(err.into()),
            }
        })
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> Result<bool, CacheError> {
        Ok(self.len()? == 0)
    }

    /// [`ResultCache::get`], checked against `limits` and counted as a hit or a miss. A
    /// damaged row, or one that does not fit `limits`, is a miss (counted as rejected);
    /// a failed lookup is counted as an error and a miss. Either way the file is analysed
    /// as without a cache, and its fresh row stored over the one found.
    pub fn lookup(&self, key: &CacheKey, limits: &RowLimits) -> Option<Stored> {
        match self.find(key, limits) {
            Ok(Some(stored)) => {
                self.shared.hits.fetch_add(1, Ordering::Relaxed);
                return Some(stored);
            }
            Ok(None) => {}
            Err(err) => self.shared.note_error(&err, 1),
        }
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// [`ResultCache::lookup`] for a file trusted by its recorded identity, not read:
    /// a row found is counted as a hit without reading; none (or one not fit to serve)
    /// counts nothing, since the caller then hashes the file and looks up again.
    pub fn lookup_unread(&self, key: &CacheKey, limits: &RowLimits) -> Option<Stored> {
        let stored = self.find(key, limits).ok().flatten()?;
        self.shared.hits.fetch_add(1, Ordering::Relaxed);
        self.shared.unread.fetch_add(1, Ordering::Relaxed);
        Some(stored)
    }

    /// [`ResultCache::get`], checked against `limits`; uncounted.
    fn find(&self, key: &CacheKey, limits: &RowLimits) -> Result<Option<Stored>, CacheError> {
        self.get(key).and_then(|stored| match stored {
            Some(stored) => stored
                .check(limits)
                .map(|()| Some(stored))
                .map_err(|reason| CacheError::Row {
                    file: self.file().to_path_buf(),
                    reason,
                }),
            None => Ok(None),
        })
    }

    /// What was last recorded of the file whose [`path_key`] is `path_key`: `None` if
    /// nothing, or a record that is damaged, of another layout, or not readable (the file
    /// is then hashed, as a cache without identities would).
    pub fn recorded(&self, path_key: &[u8]) -> Option<Recorded> {
        let bytes = self.shared.read_identity(path_key).ok().flatten()?;
        Recorded::unseal(path_key, &bytes)
    }

    /// Queues `recorded` as what the file whose [`path_key`] is `path_key` now is, for the
    /// writer thread (committed with the rows; lookups of this handle see it at once).
    pub fn record(&self, path_key: Vec<u8>, recorded: &Recorded) {
        let sealed = recorded.seal(&path_key);
        self.shared
            .queue()
            .pending
            .identities
            .insert(path_key, sealed);
        self.shared.changed.notify_all();
    }

    /// Notes a file whose bytes changed while its recorded identity did not (found by
    /// `--verify`): a row served by that identity would have been another content's.
    pub fn note_mismatch(&self, path: &Path) {
        self.shared.mismatched.fetch_add(1, Ordering::Relaxed);
        self.shared.mismatches().push(path.to_path_buf());
    }

    /// The files noted by [`ResultCache::note_mismatch`] since the last call.
    pub fn take_mismatches(&self) -> Vec<PathBuf> {
        std::mem::take(&mut *self.shared.mismatches())
    }

    /// Queues `value` under `key` for the writer thread and returns at once; lookups of
    /// this handle see it from now on. A commit that fails is counted as an error (the
    /// row itself is not lost: it is the caller's to write).
    pub fn store(&self, key: &CacheKey, value: &Stored) {
        match row::seal(key, value) {
            Ok(bytes) => {
                self.shared.queue().pending.rows.insert(key.bytes(), bytes);
                self.shared.changed.notify_all();
            }
            Err(err) => self.shared.note_error(&err.into(), 1),
        }
    }

    /// Waits until every row stored so far is committed (or failed).
    pub fn flush(&self) {
        let mut queue = self.shared.queue();
        while !queue.pending.is_empty() || !queue.committing.is_empty() {
            queue = self
                .shared
                .changed
                .wait(queue)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Counts a file analysed without a lookup (`--force`, or a file that could not be
    /// hashed).
    fn count_miss(&self) {
        self.shared.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// What this handle did so far.
    pub fn stats(&self) -> CacheStats {
        let s = &self.shared;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            stored: s.stored.load(Ordering::Relaxed),
            errors: s.errors.load(Ordering::Relaxed),
            rejected: s.rejected.load(Ordering::Relaxed),
            unread: s.unread.load(Ordering::Relaxed),
            mismatched: s.mismatched.load(Ordering::Relaxed),
        }
    }

    /// The first lookup or write that failed, if one did.
    pub fn first_error(&self) -> Option<String> {
        self.shared
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// What was found damaged since the last call, and where it was moved: one line
    /// each, for the front end to print as a warning.
    pub fn take_warnings(&self) -> Vec<String> {
        self.shared.store.take_warnings()
    }

    /// Whether the store is still at its path ([`ResultCache::file`]); `false` when the
    /// folder or the file was removed or replaced since it was opened, which takes the
    /// rows stored since with it.
    pub fn in_place(&self) -> bool {
        self.shared.store.in_place()
    }
}

/// Commits the rows still queued, then stops the writer and closes the store.
impl Drop for ResultCache {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        self.shared.store.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::record::AnalyzeRecord;

    #[test]
    fn stored_rows_are_seen_at_once_and_committed_by_flush_or_drop() {
        let dir = tempfile::tempdir().unwrap();
        let settings = Settings::new("test");
        let key = |i: u8| CacheKey::of_hash([i; 32], settings);
        let row = |i: u8| {
            Stored::Row(AnalyzeRecord {
                bpm: format!("{i}.000"),
                ..AnalyzeRecord::default()
            })
        };
        {
            let cache = ResultCache::open(dir.path()).unwrap();
            for i in 0..50 {
                cache.store(&key(i), &row(i));
                assert_eq!(
                    cache.get(&key(i)).unwrap(),
                    Some(row(i)),
                    "read your writes"
                );
            }
            cache.flush();
            assert_eq!(cache.len().unwrap(), 50);
            assert_eq!(cache.stats().stored, 50);
            for i in 50..100 {
                cache.store(&key(i), &row(i));
            }
        }
        let reopened = ResultCache::open(dir.path()).unwrap();
        assert_eq!(
            reopened.len().unwrap(),
            100,
            "dropping commits what is queued"
        );
        for i in 0..100 {
            assert_eq!(reopened.get(&key(i)).unwrap(), Some(row(i)));
        }
        assert_eq!(reopened.get(&key(200)).unwrap(), None);
    }

    #[test]
    fn a_reused_read_still_sees_this_handles_writes() {
        let dir = tempfile::tempdir().unwrap();
        let cache = ResultCache::open(dir.path()).unwrap();
        // A snapshot that would never age: only this handle's commits renew it.
        cache.reuse_reads_for(Duration::from_secs(3600));
        let settings = Settings::new("test");
        let key = |i: u8| CacheKey::of_hash([i; 32], settings);
        let row = Stored::Row(AnalyzeRecord::default());
        assert_eq!(cache.get(&key(1)).unwrap(), None, "the snapshot is taken");
        cache.put(&key(1), &row).unwrap();
        assert_eq!(
            cache.get(&key(1)).unwrap(),
            Some(row.clone()),
            "put commits"
        );
        let path = b"/lib/a.wav".to_vec();
        assert_eq!(cache.recorded(&path), None);
        let recorded = Recorded {
            identity: FileIdentity::of_path(dir.path()).unwrap(),
            content: [2; 32],
            at: std::time::SystemTime::now(),
        };
        for i in 2..40 {
            cache.store(&key(i), &row);
        }
        cache.record(path.clone(), &recorded);
        cache.flush();
        for i in 2..40 {
            assert_eq!(cache.get(&key(i)).unwrap(), Some(row.clone()), "row {i}");
        }
        assert_eq!(cache.recorded(&path), Some(recorded));
    }

    #[test]
    fn a_store_that_is_not_one_is_moved_aside_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(CACHE_FILE);
        std::fs::write(&file, vec![0x5a; 3 * 4096]).unwrap();
        let cache = ResultCache::open(dir.path()).unwrap();
        let warnings = cache.take_warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].contains(&*file.to_string_lossy()),
            "{warnings:?}"
        );
        let aside = dir.path().join(format!("{CACHE_FILE}.damaged-1"));
        assert!(
            warnings[0].contains(&*aside.to_string_lossy()),
            "{warnings:?}"
        );
        assert_eq!(std::fs::read(&aside).unwrap(), vec![0x5a; 3 * 4096]);
        let key = CacheKey::of_hash([3; 32], Settings::new("x"));
        cache
            .put(&key, &Stored::Row(AnalyzeRecord::default()))
            .unwrap();
        assert_eq!(cache.len().unwrap(), 1);
    }
}
