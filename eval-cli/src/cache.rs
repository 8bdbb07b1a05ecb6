//! `--cache DIR`: rows already computed are not computed again. A file whose bytes and
//! analyzer settings were seen before gets its row from `DIR/results.redb` without being
//! decoded, so a second run over a library costs a read and a hash per file.
//!
//! ```text
//! file ─BLAKE3 of its bytes─┐
//!                           ├─ CacheKey ─get─▶ hit: the stored row (no decoding)
//! settings ─BLAKE3 of the ──┘             └──▶ miss: analyse, then put if deterministic
//!   analyzer fingerprint, eval-cli version and CSV header
//! ```
//!
//! - **The key is the content**, not the path: a renamed or copied file hits, an edited
//!   one misses. The second half of the key is the analyzer's
//!   [`AnalyzerConfig::fingerprint`](analyzer_core::AnalyzerConfig::fingerprint) (version,
//!   every setting, the model weights' hash) together with this crate's version and the CSV
//!   columns, since eval-cli formats the row. The per-file timeout is not in the key: it
//!   can only turn a row into a `timeout` row, and those are never stored.
//! - **Only deterministic outcomes are stored**: `ok` rows, and the failures that the same
//!   bytes always give ([`is_deterministic`]: unsupported format, corrupt stream, too short,
//!   no pulse). A timeout, a cancellation, a panic or an unreadable file is never stored.
//! - **A cached row is byte-identical to a fresh one by construction**: the stored value
//!   is the [`AnalyzeRecord`] itself (its strings, path left out), or for a failure the
//!   stage, kind and detail of the [`Error`], which a hit gives back as the same error, so
//!   the row, the progress events and the failure counts go down the same path as a fresh
//!   result.
//! - **Store: redb 4.6 in [`ConcurrencyMode::MultiWriter`].** redb's default mode locks
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
//! - **No pre-check by (path, size, mtime)**: with a warm page cache hashing runs at 4.5-6.8
//!   GB/s (docs/cache.md), so a table of stat results would save little there
//!   and add a way to be wrong (an edit within the timestamps' granularity that keeps the
//!   size). It would pay on a cold library on a slow disk, where a hit reads the whole file.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use analyzer_core::batch::{Job, Status};
use analyzer_core::{Analysis, Error, ErrorKind, Stage, StopSignal};
use anyhow::Context;
use redb::{ConcurrencyMode, Database, ReadableDatabase, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::record::{self, AnalyzeRecord};

/// The store's file inside the cache folder.
pub const CACHE_FILE: &str = "results.redb";

/// Rows by key: [`CacheKey::bytes`] to the JSON of a [`Stored`].
const ROWS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("rows");

/// Memory for redb's page cache. Its default is 1 GiB; lookups touch a few pages each,
/// and a service's memory must not grow with the size of its cache.
const PAGE_CACHE_BYTES: usize = 16 << 20;

/// Bytes read at a time while hashing: memory stays flat whatever the file's size.
const HASH_CHUNK: usize = 256 << 10;

/// Failures that the same bytes give every time, so their rows may be stored. Not
/// `Unreadable` (permissions and I/O errors come and go), not `TimedOut`/`Cancelled`
/// (they depend on the run), not `InvalidConfig` (not about the file).
pub fn is_deterministic(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::UnsupportedFormat
            | ErrorKind::CorruptStream
            | ErrorKind::TooShort
            | ErrorKind::NoPulse
    )
}

/// The settings half of a key: what, besides the file's bytes, decides its row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Settings([u8; 32]);

impl Settings {
    /// The settings of rows made by an analyzer with this `fingerprint`
    /// ([`analyzer_core::Analyzer::fingerprint`]) and formatted by this build of eval-cli.
    pub fn new(fingerprint: &str) -> Self {
        let mut hasher = blake3::Hasher::new();
        hasher.update(b"tempo-scale result cache 1\n");
        hasher.update(fingerprint.as_bytes());
        hasher.update(b"\neval-cli ");
        hasher.update(env!("CARGO_PKG_VERSION").as_bytes());
        hasher.update(b"\n");
        hasher.update(&record::header());
        Settings(*hasher.finalize().as_bytes())
    }
}

/// Where a row is stored: the BLAKE3 hash of the file's bytes and of the settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    content: [u8; 32],
    settings: Settings,
}

impl CacheKey {
    /// The key of the file at `path` under `settings`, read in fixed chunks (memory stays
    /// flat for any size).
    pub fn of_file(path: &Path, settings: Settings) -> io::Result<Self> {
        let mut file = File::open(path)?;
        let mut hasher = blake3::Hasher::new();
        let mut chunk = vec![0u8; HASH_CHUNK];
        loop {
            match file.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => {
                    hasher.update(&chunk[..n]);
                }
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Self::of_hash(*hasher.finalize().as_bytes(), settings))
    }

    /// The key of content whose BLAKE3 hash is `content` (an upload hashed as it arrived).
    pub fn of_hash(content: [u8; 32], settings: Settings) -> Self {
        CacheKey { content, settings }
    }

    /// The key as stored: content hash, then settings hash.
    pub fn bytes(&self) -> [u8; 64] {
        let mut key = [0u8; 64];
        key[..32].copy_from_slice(&self.content);
        key[32..].copy_from_slice(&self.settings.0);
        key
    }
}

/// The key of `path` for an analyzer with this `fingerprint`.
pub fn key_for(path: &Path, fingerprint: &str) -> io::Result<CacheKey> {
    CacheKey::of_file(path, Settings::new(fingerprint))
}

/// A stored outcome: the row of an analysed file, or the failure a file always gives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stored {
    /// An `ok` row, its path empty.
    Row(AnalyzeRecord),
    /// A deterministic failure, as the parts of its [`Error`].
    Failed {
        /// [`Stage::as_str`].
        stage: String,
        /// [`ErrorKind::as_str`].
        kind: String,
        /// The error's reason after `STAGE: KIND: `.
        detail: String,
    },
}

impl Stored {
    /// What to store for a failed analysis, if the failure is deterministic.
    pub fn failure(err: &Error) -> Option<Self> {
        if !is_deterministic(err.kind()) {
            return None;
        }
        let prefix = format!("{}: {}: ", err.stage(), err.kind());
        let reason = err.reason();
        let detail = reason.strip_prefix(&prefix)?.to_string();
        Some(Stored::Failed {
            stage: err.stage().as_str().to_string(),
            kind: err.kind().as_str().to_string(),
            detail,
        })
    }

    /// The outcome a hit stands for: the row (path empty), or the error the file gave;
    /// `None` for a stage or kind this build does not know.
    pub fn outcome(self) -> Option<Result<AnalyzeRecord, Error>> {
        match self {
            Stored::Row(record) => Some(Ok(record)),
            Stored::Failed {
                stage,
                kind,
                detail,
            } => {
                let stage = STAGES.into_iter().find(|s| s.as_str() == stage)?;
                let kind = DETERMINISTIC_KINDS
                    .into_iter()
                    .find(|k| k.as_str() == kind)?;
                Some(Err(Error::new(kind, stage, detail)))
            }
        }
    }
}

const STAGES: [Stage; 7] = [
    Stage::Config,
    Stage::Open,
    Stage::Probe,
    Stage::Decode,
    Stage::Resample,
    Stage::Onset,
    Stage::Tempo,
];

const DETERMINISTIC_KINDS: [ErrorKind; 4] = [
    ErrorKind::UnsupportedFormat,
    ErrorKind::CorruptStream,
    ErrorKind::TooShort,
    ErrorKind::NoPulse,
];

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
}

/// Rows by key bytes, waiting for or in their commit.
type Rows = HashMap<[u8; 64], Vec<u8>>;

/// Rows [`ResultCache::store`] has handed to the writer thread. Lookups see them at once,
/// so a process reads its own writes before they are committed.
#[derive(Debug, Default)]
struct Queue {
    /// Rows not yet taken by the writer.
    pending: Rows,
    /// The rows of the commit under way.
    committing: Arc<Rows>,
    /// The cache is being dropped: commit what is left and stop.
    closing: bool,
}

#[derive(Debug)]
struct Shared {
    db: Database,
    file: PathBuf,
    queue: Mutex<Queue>,
    /// Rows were queued (for the writer), or a commit ended (for `flush`).
    changed: Condvar,
    hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl Shared {
    fn queue(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn note_error(&self, err: &anyhow::Error, rows: u64) {
        self.errors.fetch_add(rows, Ordering::Relaxed);
        let mut first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        first.get_or_insert_with(|| format!("{err:#}"));
    }

    fn commit(&self, rows: &Rows) -> anyhow::Result<()> {
        let write = self.db.begin_write()?;
        {
            let mut table = write.open_table(ROWS)?;
            for (key, value) in rows {
                table.insert(key.as_slice(), value.as_slice())?;
            }
        }
        write.commit()?;
        Ok(())
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
            let count = rows.len() as u64;
            match self.commit(&rows) {
                Ok(()) => {
                    self.stored.fetch_add(count, Ordering::Relaxed);
                }
                Err(err) => self.note_error(&err, count),
            }
            self.queue().committing = Arc::default();
            self.changed.notify_all();
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
    /// processes may have it open at the same time.
    pub fn open(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the cache folder {}", dir.display()))?;
        let file = dir.join(CACHE_FILE);
        let db = Database::builder()
            .set_concurrency_mode(ConcurrencyMode::MultiWriter)
            .set_cache_size(PAGE_CACHE_BYTES)
            .create(&file)
            .with_context(|| format!("cannot open the result cache {}", file.display()))?;
        let shared = Arc::new(Shared {
            db,
            file,
            queue: Mutex::default(),
            changed: Condvar::new(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            first_error: Mutex::new(None),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("result-cache-writer".into())
                .spawn(move || shared.write_rows())
                .context("cannot start the result cache's writer thread")?
        };
        Ok(ResultCache {
            shared,
            writer: Some(writer),
        })
    }

    /// The store's file.
    pub fn file(&self) -> &Path {
        &self.shared.file
    }

    /// The stored outcome of `key`, if any (rows queued by this handle included). Counts
    /// nothing (see [`ResultCache::lookup`]).
    pub fn get(&self, key: &CacheKey) -> anyhow::Result<Option<Stored>> {
        let key = key.bytes();
        let queued = {
            let queue = self.shared.queue();
            queue
                .pending
                .get(&key)
                .or_else(|| queue.committing.get(&key))
                .cloned()
        };
        let parse = |bytes: &[u8]| {
            serde_json::from_slice(bytes)
                .with_context(|| format!("a row of {} does not parse", self.file().display()))
        };
        if let Some(bytes) = queued {
            return parse(&bytes).map(Some);
        }
        let read = self.shared.db.begin_read()?;
        let table = match read.open_table(ROWS) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(None),
            Err(err) => return Err(err.into()),
        };
        match redb::ReadableTable::get(&table, key.as_slice())? {
            Some(value) => parse(value.value()).map(Some),
            None => Ok(None),
        }
    }

    /// Stores `value` under `key` (replacing any row there) in its own committed
    /// transaction, durable when this returns. Counts nothing.
    pub fn put(&self, key: &CacheKey, value: &Stored) -> anyhow::Result<()> {
        let rows = Rows::from([(key.bytes(), serde_json::to_vec(value)?)]);
        self.shared.commit(&rows)
    }

    /// How many rows the store holds (all settings together; queued rows not counted).
    pub fn len(&self) -> anyhow::Result<u64> {
        let read = self.shared.db.begin_read()?;
        match read.open_table(ROWS) {
            Ok(table) => Ok(redb::ReadableTableMetadata::len(&table)?),
            Err(redb::TableError::TableDoesNotExist(_)) => Ok(0),
            Err(err) => Err(err.into()),
        }
    }

    /// Whether the store holds no row.
    pub fn is_empty(&self) -> anyhow::Result<bool> {
        Ok(self.len()? == 0)
    }

    /// [`ResultCache::get`], counted as a hit or a miss; a failed lookup is counted as an
    /// error and a miss, so the file is analysed as without a cache.
    pub fn lookup(&self, key: &CacheKey) -> Option<Stored> {
        let counter = match self.get(key) {
            Ok(Some(stored)) => {
                self.shared.hits.fetch_add(1, Ordering::Relaxed);
                return Some(stored);
            }
            Ok(None) => &self.shared.misses,
            Err(err) => {
                self.shared.note_error(&err, 1);
                &self.shared.misses
            }
        };
        counter.fetch_add(1, Ordering::Relaxed);
        None
    }

    /// Queues `value` under `key` for the writer thread and returns at once; lookups of
    /// this handle see it from now on. A commit that fails is counted as an error (the
    /// row itself is not lost: it is the caller's to write).
    pub fn store(&self, key: &CacheKey, value: &Stored) {
        match serde_json::to_vec(value) {
            Ok(bytes) => {
                self.shared.queue().pending.insert(key.bytes(), bytes);
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

    /// Counts a file analysed without a lookup (`--force`).
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
}

/// Commits the rows still queued, then stops the writer.
impl Drop for ResultCache {
    fn drop(&mut self) {
        self.shared.queue().closing = true;
        self.shared.changed.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

/// A file's outcome through [`CachedAnalyzer`]: its row, and the analysis when it was run
/// now rather than read from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    /// The row, path left empty ([`Analyzed::record_for`] fills it in).
    pub record: AnalyzeRecord,
    /// The analysis (with every candidate) when the file was analysed by this run;
    /// `None` for a row from the cache.
    pub analysis: Option<Analysis>,
}

impl Analyzed {
    /// Whether the row came from the cache.
    pub fn from_cache(&self) -> bool {
        self.analysis.is_none()
    }

    /// The row of the file at `path`.
    pub fn record_for(&self, path: &Path) -> AnalyzeRecord {
        AnalyzeRecord {
            path: crate::path_cell::path_cell(path),
            ..self.record.clone()
        }
    }

    /// The tempo of the row, for progress events.
    pub fn bpm(&self) -> Option<f64> {
        match &self.analysis {
            Some(a) => Some(a.tempo.bpm),
            None => self.record.bpm.parse().ok(),
        }
    }
}

/// The row of a fresh analysis, path left empty: the one function that turns an
/// [`Analysis`] into stored fields, so a hit and a fresh row cannot differ.
fn fresh_record(analysis: &Analysis) -> AnalyzeRecord {
    AnalyzeRecord::new(Path::new(""), Status::Ok, Some(analysis), None)
}

/// Wraps an analysis job (the [`Analyzer`](analyzer_core::Analyzer), or any job that gives
/// an [`Analysis`]) as "look up, else analyse and store". Without a cache it is the inner
/// job with its rows built; with `force` it never looks up but still stores, so the cache
/// is refreshed (what our sources call force_reextract).
///
/// A failure the cache holds comes back as the same [`Error`], so the batch reports it as
/// an `error` result exactly as it reports a fresh one.
pub struct CachedAnalyzer<'a, J> {
    inner: &'a J,
    cache: Option<&'a ResultCache>,
    settings: Settings,
    force: bool,
}

impl<'a, J: Job<Output = Analysis>> CachedAnalyzer<'a, J> {
    /// `inner` through `cache` (none: no caching) for rows with this analyzer
    /// `fingerprint`.
    pub fn new(inner: &'a J, cache: Option<&'a ResultCache>, fingerprint: &str) -> Self {
        CachedAnalyzer {
            inner,
            cache,
            settings: Settings::new(fingerprint),
            force: false,
        }
    }

    /// Analyse every file again and overwrite what the cache holds for it.
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    fn analyze(&self, path: &Path, stop: &StopSignal) -> Result<Analyzed, Error> {
        let analysis = self.inner.run(path, stop)?;
        Ok(Analyzed {
            record: fresh_record(&analysis),
            analysis: Some(analysis),
        })
    }
}

impl<J: Job<Output = Analysis>> Job for CachedAnalyzer<'_, J> {
    type Output = Analyzed;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analyzed, Error> {
        let Some(cache) = self.cache else {
            return self.analyze(path, stop);
        };
        // A file that cannot be read is analysed as without a cache: the analyzer gives
        // the error row it always gives.
        let Ok(key) = CacheKey::of_file(path, self.settings) else {
            return self.analyze(path, stop);
        };
        if !self.force
            && let Some(outcome) = cache.lookup(&key).and_then(Stored::outcome)
        {
            // Past the deadline or cancelled while hashing: the inner job stops at its
            // first check and reports it exactly as a run without a cache does.
            if stop.check(Stage::Open).is_err() {
                return self.analyze(path, stop);
            }
            return outcome.map(|record| Analyzed {
                record,
                analysis: None,
            });
        }
        if self.force {
            cache.count_miss();
        }
        match self.analyze(path, stop) {
            Ok(analyzed) => {
                cache.store(&key, &Stored::Row(analyzed.record.clone()));
                Ok(analyzed)
            }
            Err(err) => {
                if let Some(stored) = Stored::failure(&err) {
                    cache.store(&key, &stored);
                }
                Err(err)
            }
        }
    }

    fn cost_hint(&self, path: &Path) -> Option<f64> {
        self.inner.cost_hint(path)
    }

    fn stage_timings(&self, output: &Analyzed) -> Vec<(Stage, Duration)> {
        output
            .analysis
            .as_ref()
            .map_or_else(Vec::new, |a| self.inner.stage_timings(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::AtomicUsize;

    use analyzer_core::batch::{Batch, Sequential};
    use analyzer_core::{Analyzer, AnalyzerConfig};

    fn click_wav(path: &Path, bpm: f64, seconds: f64) {
        let rate = 22_050;
        let clicks = synth_music::presets::clicks(bpm, seconds, rate);
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(path, spec).unwrap();
        for s in clicks {
            writer.write_sample((s * 32_500.0) as i16).unwrap();
        }
        writer.finalize().unwrap();
    }

    /// The analyzer, counting the files it is asked to analyse.
    struct Counting {
        analyzer: Analyzer,
        calls: AtomicUsize,
    }

    impl Job for Counting {
        type Output = Analysis;
        fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analysis, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.analyzer.analyze_file(path, stop)
        }
    }

    fn rows(summary: &analyzer_core::batch::BatchSummary<Analyzed>) -> Vec<AnalyzeRecord> {
        summary
            .results
            .iter()
            .map(|r| match &r.value {
                Some(v) => v.record_for(&r.path),
                None => AnalyzeRecord::new(&r.path, r.status, None, r.error.as_deref()),
            })
            .collect()
    }

    #[test]
    fn a_hit_is_not_analysed_and_gives_the_fresh_row() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.wav");
        click_wav(&good, 120.0, 4.0);
        let junk = dir.path().join("b.wav");
        std::fs::write(&junk, b"RIFF, but not really").unwrap();
        let files = vec![good.clone(), junk.clone()];
        let job = Counting {
            analyzer: Analyzer::new(AnalyzerConfig::default()).unwrap(),
            calls: AtomicUsize::new(0),
        };
        let fingerprint = job.analyzer.fingerprint();

        let reference =
            Batch::new(&CachedAnalyzer::new(&job, None, &fingerprint)).run(&files, &Sequential);
        assert_eq!(job.calls.swap(0, Ordering::SeqCst), 2);
        assert_eq!(reference.results[1].status, Status::Error);

        let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
        let cached = CachedAnalyzer::new(&job, Some(&cache), &fingerprint);
        let first = Batch::new(&cached).run(&files, &Sequential);
        assert_eq!(job.calls.swap(0, Ordering::SeqCst), 2);
        cache.flush();
        assert_eq!(cache.stats().stored, 2, "the ok row and the decode error");
        let second = Batch::new(&cached).run(&files, &Sequential);
        assert_eq!(job.calls.load(Ordering::SeqCst), 0, "hits are not analysed");
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 2,
                stored: 2,
                errors: 0
            }
        );
        assert_eq!(rows(&first), rows(&reference));
        assert_eq!(rows(&second), rows(&reference));
        assert!(
            second
                .results
                .iter()
                .all(|r| r.value.as_ref().is_none_or(Analyzed::from_cache))
        );
        // The stored failure comes back as the same error, status and all.
        assert_eq!(second.results[1].status, Status::Error);
        assert_eq!(second.results[1].error, reference.results[1].error);

        // --force analyses again and rewrites.
        let forced = CachedAnalyzer::new(&job, Some(&cache), &fingerprint).force(true);
        let third = Batch::new(&forced).run(&files, &Sequential);
        assert_eq!(job.calls.load(Ordering::SeqCst), 2);
        assert_eq!(rows(&third), rows(&reference));
        cache.flush();
        assert_eq!(cache.len().unwrap(), 2);
        assert_eq!(cache.stats().stored, 4);
    }

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
    fn the_key_is_the_content_and_the_settings() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.wav");
        click_wav(&a, 120.0, 2.0);
        let copy = dir.path().join("renamed copy.wav");
        std::fs::copy(&a, &copy).unwrap();
        let fp = AnalyzerConfig::default().fingerprint();
        let other_fp = AnalyzerConfig::default()
            .with_bpm_range(60.0, 180.0)
            .fingerprint();
        assert_eq!(key_for(&a, &fp).unwrap(), key_for(&copy, &fp).unwrap());
        assert_ne!(key_for(&a, &fp).unwrap(), key_for(&a, &other_fp).unwrap());
        let mut bytes = std::fs::read(&a).unwrap();
        *bytes.last_mut().unwrap() ^= 1;
        std::fs::write(&copy, bytes).unwrap();
        assert_ne!(key_for(&a, &fp).unwrap(), key_for(&copy, &fp).unwrap());
    }

    #[test]
    fn the_streaming_hash_is_the_hash_of_the_bytes() {
        // Longer than one chunk and not a multiple of it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let bytes: Vec<u8> = (0..HASH_CHUNK * 2 + 12_345)
            .map(|i| (i * 31 % 251) as u8)
            .collect();
        std::fs::write(&path, &bytes).unwrap();
        let settings = Settings::new("x");
        assert_eq!(
            CacheKey::of_file(&path, settings).unwrap(),
            CacheKey::of_hash(*blake3::hash(&bytes).as_bytes(), settings)
        );
    }

    #[test]
    fn only_deterministic_failures_are_stored_and_they_round_trip() {
        for kind in [
            ErrorKind::TimedOut,
            ErrorKind::Cancelled,
            ErrorKind::Unreadable,
        ] {
            assert_eq!(Stored::failure(&Error::new(kind, Stage::Decode, "x")), None);
        }
        for (kind, stage) in DETERMINISTIC_KINDS
            .into_iter()
            .zip(STAGES.into_iter().skip(2))
        {
            let err = Error::new(kind, stage, "why: with a colon");
            let stored = Stored::failure(&err.clone().with_path(Path::new("f.mp3"))).unwrap();
            let back = stored.outcome().unwrap().unwrap_err();
            assert_eq!(back.reason(), err.reason());
            assert_eq!((back.kind(), back.stage()), (kind, stage));
        }
        let unknown = Stored::Failed {
            stage: "mystery".into(),
            kind: "no_pulse".into(),
            detail: String::new(),
        };
        assert_eq!(unknown.outcome(), None, "unknown names are a miss");
    }
}
