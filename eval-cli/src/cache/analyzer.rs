//! [`CachedAnalyzer`]: an analysis job through the result cache, as `analyze --cache` and
//! `serve --cache` run it: a file whose recorded identity still holds is served unread;
//! else hash, look up, else analyse and store.
//!
//! Over 500 lines with its tests, which share the click-track and counting-job helpers
//! with `rescan_tests.rs` (the identity paths' tests, kept apart).

use std::path::Path;
use std::time::{Duration, SystemTime};

use analyzer_core::batch::{Job, Status};
use analyzer_core::{Analysis, AnalyzerConfig, Error, Stage, StopSignal};

use super::{
    CacheKey, FileIdentity, Recorded, ResultCache, RowLimits, Settings, Stored, hash_file, path_key,
};
use crate::record::AnalyzeRecord;

/// A file's outcome through [`CachedAnalyzer`]: its row, and the analysis when it was run
/// now rather than read from the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Analyzed {
    /// The row, path left empty ([`Analyzed::record_for`] fills it in).
    pub record: AnalyzeRecord,
    /// The analysis (with every candidate) when the file was analysed by this run;
    /// `None` for a row from the cache.
    pub analysis: Option<Analysis>,
    /// The failure the row stands for (a file without a pulse, its key and loudness
    /// kept), fresh or from the cache; `None` for an `ok` row.
    pub failure: Option<Error>,
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

    /// The tempo of the row, for progress events: the row's cell, so that an event says
    /// what the row says whether the row was made now or served by the cache (which keeps
    /// the row, not the unrounded tempo).
    pub fn bpm(&self) -> Option<f64> {
        self.record.bpm.parse().ok()
    }

    /// The key of the row (`A minor`), for progress events.
    pub fn key(&self) -> Option<String> {
        Some(self.record.key.clone()).filter(|k| !k.is_empty())
    }
}

/// How a run treats what the cache recorded of each file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Rescan {
    /// A file whose identity (device, inode, size, mtime, ctime) is as recorded, and was
    /// not racy then, is served without being opened; others are hashed and looked up.
    #[default]
    Trust,
    /// Hash every file, and report those whose bytes changed while their identity did
    /// not ([`ResultCache::take_mismatches`]); those are analysed anew.
    Verify,
    /// Look nothing up: hash and analyse every file, and overwrite its row and identity.
    Force,
}

impl Rescan {
    /// The mode the flags `--force` and `--verify` ask for (they exclude each other).
    pub fn of_flags(force: bool, verify: bool) -> Self {
        match (force, verify) {
            (true, _) => Rescan::Force,
            (false, true) => Rescan::Verify,
            (false, false) => Rescan::Trust,
        }
    }
}

/// How the cache reads a file's bytes to key it. The seam where tests count the files the
/// cache opens.
pub trait ContentHasher: Sync {
    /// The key of the file at `path` under `settings` and its identity before it was
    /// read, as [`hash_file`] gives them.
    fn hash(
        &self,
        path: &Path,
        settings: Settings,
        stop: &StopSignal,
    ) -> Result<(CacheKey, FileIdentity), Error>;
}

/// [`hash_file`]: reads the file.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadAndHash;

impl ContentHasher for ReadAndHash {
    fn hash(
        &self,
        path: &Path,
        settings: Settings,
        stop: &StopSignal,
    ) -> Result<(CacheKey, FileIdentity), Error> {
        hash_file(path, settings, stop)
    }
}

/// The row of a fresh analysis, path left empty: the one function that turns an
/// [`Analysis`] into stored fields, so a hit and a fresh row cannot differ. A file without
/// a tempo makes a failed row with the rest of its analysis ([`AnalyzeRecord::new`]).
fn fresh_record(analysis: &Analysis) -> AnalyzeRecord {
    AnalyzeRecord::new(Path::new(""), Status::Ok, Some(analysis), None)
}

/// What the cache keeps of an outcome: an `ok` row, or a failure that depends on the
/// content alone with its row ([`Stored::failure`]).
fn stored_of(analyzed: &Analyzed) -> Option<Stored> {
    match &analyzed.failure {
        None => Some(Stored::Row(analyzed.record.clone())),
        Some(err) => Stored::failure(err, analyzed.record.clone()),
    }
}

/// The row of a failure without an analysis, path left empty, as a run without a cache
/// writes it.
fn failed_record(err: &Error) -> AnalyzeRecord {
    let status = Status::of_error(err.kind());
    AnalyzeRecord::new(Path::new(""), status, None, Some(&err.reason()))
}

/// Wraps an analysis job (the [`Analyzer`](analyzer_core::Analyzer), or any job that gives
/// an [`Analysis`]) as "look up, else analyse and store". Without a cache it is the inner
/// job with its rows built; with [`Rescan::Force`] it never looks up but still stores, so
/// the cache is refreshed (what our sources call force_reextract).
///
/// Each file's identity is recorded beside its row ([`Recorded`]): by default a file whose
/// identity is unchanged since, and was not racy then, is served without being opened.
/// A failure the cache holds comes back as the same [`Error`], so the batch reports it as
/// an `error` result exactly as it reports a fresh one.
pub struct CachedAnalyzer<'a, J> {
    inner: &'a J,
    cache: Option<&'a ResultCache>,
    settings: Settings,
    limits: RowLimits,
    rescan: Rescan,
    hasher: &'a dyn ContentHasher,
    clock: fn() -> SystemTime,
}

impl<'a, J: Job<Output = Analysis>> CachedAnalyzer<'a, J> {
    /// `inner` through `cache` (none: no caching) for rows made with `config`.
    pub fn new(inner: &'a J, cache: Option<&'a ResultCache>, config: &AnalyzerConfig) -> Self {
        CachedAnalyzer {
            inner,
            cache,
            settings: Settings::new(&config.fingerprint()),
            limits: RowLimits::of(config),
            rescan: Rescan::Trust,
            hasher: &ReadAndHash,
            clock: SystemTime::now,
        }
    }

    /// How recorded identities are used (default [`Rescan::Trust`]).
    pub fn rescan(mut self, rescan: Rescan) -> Self {
        self.rescan = rescan;
        self
    }

    /// Reads files through `hasher` instead of [`ReadAndHash`].
    pub fn with_hasher(mut self, hasher: &'a dyn ContentHasher) -> Self {
        self.hasher = hasher;
        self
    }

    /// Takes the moment an identity is recorded from `clock` instead of the system clock,
    /// so tests place it relative to the files' times without waiting.
    pub fn with_clock(mut self, clock: fn() -> SystemTime) -> Self {
        self.clock = clock;
        self
    }

    /// The stored row of a file trusted by its recorded identity, if the cache holds one
    /// for these settings: the file is not opened.
    fn unread_hit(
        &self,
        cache: &ResultCache,
        path: &Path,
        recorded: Option<&Recorded>,
    ) -> Option<(AnalyzeRecord, Option<Error>)> {
        let recorded = recorded.filter(|_| self.rescan == Rescan::Trust)?;
        if !recorded.trusts(&FileIdentity::of_path(path).ok()?) {
            return None;
        }
        let key = CacheKey::of_hash(recorded.content, self.settings);
        cache
            .lookup_unread(&key, &self.limits)
            .and_then(Stored::outcome)
    }

    /// Stores `analyzed`, the row of `path` as it was read, under the file's bytes as they
    /// are now, and records its identity: for a file whose tags alone were rewritten since
    /// (`watch --write-tags`), so its audio and its row are the same. Without it the next
    /// run, or a restarted `watch`, hashed the tagged file, missed, and analysed it again.
    /// Nothing is kept when the file changes while it is hashed.
    pub fn keep_row_for_retagged(&self, path: &Path, analyzed: &Analyzed) {
        let Some(cache) = self.cache else {
            return;
        };
        let at = (self.clock)();
        let Ok((key, before)) = self.hasher.hash(path, self.settings, &StopSignal::never()) else {
            return;
        };
        if FileIdentity::of_path(path).ok() != Some(before) {
            return;
        }
        if let Some(path_key) = path_key(path) {
            let now = Recorded {
                identity: before,
                content: key.content(),
                at,
            };
            cache.record(path_key, &now);
        }
        if let Some(stored) = stored_of(analyzed) {
            cache.store(&key, &stored);
        }
    }

    fn analyze(&self, path: &Path, stop: &StopSignal) -> Result<Analyzed, Error> {
        let analysis = self.inner.run(path, stop)?;
        Ok(Analyzed {
            record: fresh_record(&analysis),
            failure: self.inner.failure(&analysis),
            analysis: Some(analysis),
        })
    }
}

impl<J: Job<Output = Analysis>> CachedAnalyzer<'_, J> {
    /// A row from the cache as this run's answer for `path`.
    fn serve(
        &self,
        (record, failure): (AnalyzeRecord, Option<Error>),
        path: &Path,
        stop: &StopSignal,
    ) -> Result<Analyzed, Error> {
        // Past the deadline or cancelled meanwhile: the inner job stops at its first check
        // and reports it exactly as a run without a cache does.
        if stop.check(Stage::Open).is_err() {
            return self.analyze(path, stop);
        }
        Ok(Analyzed {
            record,
            analysis: None,
            failure,
        })
    }
}

impl<J: Job<Output = Analysis>> Job for CachedAnalyzer<'_, J> {
    type Output = Analyzed;

    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analyzed, Error> {
        let Some(cache) = self.cache else {
            return self.analyze(path, stop);
        };
        let path_key = path_key(path);
        let recorded = match (&path_key, self.rescan) {
            (Some(path_key), Rescan::Trust | Rescan::Verify) => cache.recorded(path_key),
            _ => None,
        };
        if let Some(outcome) = self.unread_hit(cache, path, recorded.as_ref()) {
            return self.serve(outcome, path, stop);
        }
        // Read before the identity is taken: a write after it is stamped no earlier than
        // this, less the clock's tick (see `Recorded::is_clean`).
        let at = (self.clock)();
        // A file that cannot be hashed (not a regular file, unreadable, or stopped while
        // hashing) is analysed as without a cache: the analyzer opens it the same way and
        // checks the same stop signal first, so it gives at once the row it always gives.
        let Ok((key, before)) = self.hasher.hash(path, self.settings, stop) else {
            cache.count_miss();
            return self.analyze(path, stop);
        };
        let now = Recorded {
            identity: before,
            content: key.content(),
            at,
        };
        // Bytes changed under an identity that would have been trusted: say so, and
        // analyse them anew rather than trust any row.
        let changed_unseen = self.rescan == Rescan::Verify
            && recorded.is_some_and(|r| r.trusts(&before) && r.content != now.content);
        if changed_unseen {
            cache.note_mismatch(path);
        }
        // Recorded unless the record holds already, as clean as it can be.
        let remember = || {
            if let Some(path_key) = path_key.clone()
                && !recorded.is_some_and(|r| r.trusts(&before) && r.content == now.content)
            {
                cache.record(path_key, &now);
            }
        };
        if self.rescan != Rescan::Force
            && !changed_unseen
            && let Some(outcome) = cache.lookup(&key, &self.limits).and_then(Stored::outcome)
        {
            remember();
            return self.serve(outcome, path, stop);
        }
        if self.rescan == Rescan::Force || changed_unseen {
            cache.count_miss();
        }
        let result = self.analyze(path, stop);
        // The key is the hash of the bytes read before the analysis: store the row only
        // if the file is still the one that was hashed. Otherwise it was written to or
        // replaced in between; its row is still this run's answer, but not the answer
        // for the hashed bytes.
        if FileIdentity::of_path(path).ok() != Some(before) {
            return result;
        }
        remember();
        let stored = match &result {
            Ok(analyzed) => stored_of(analyzed),
            Err(err) => Stored::failure(err, failed_record(err)),
        };
        if let Some(stored) = stored {
            cache.store(&key, &stored);
        }
        result
    }

    /// Nothing for a file its recorded identity will serve unread: its headers are not
    /// probed either, so a rescan of an unchanged library opens no file at all.
    fn cost_hint(&self, path: &Path) -> Option<f64> {
        if let Some(cache) = self.cache
            && self.rescan == Rescan::Trust
            && let Some(recorded) = path_key(path).and_then(|key| cache.recorded(&key))
            && FileIdentity::of_path(path).is_ok_and(|now| recorded.trusts(&now))
        {
            return Some(0.0);
        }
        self.inner.cost_hint(path)
    }

    /// A row that stands for a failure, fresh or from the cache, fails the same way.
    fn failure(&self, output: &Analyzed) -> Option<Error> {
        output.failure.clone()
    }

    fn stage_timings(&self, output: &Analyzed) -> Vec<(Stage, Duration)> {
        output
            .analysis
            .as_ref()
            .map_or_else(Vec::new, |a| self.inner.stage_timings(a))
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    use std::sync::atomic::{AtomicUsize, Ordering};

    use analyzer_core::Analyzer;
    use analyzer_core::batch::{Batch, Sequential};

    use crate::cache::{CacheKey, CacheStats, ROWS, ResultCache, key_for};

    pub(in crate::cache) fn click_wav(path: &Path, bpm: f64, seconds: f64) {
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
    pub(in crate::cache) struct Counting {
        pub(in crate::cache) analyzer: Analyzer,
        pub(in crate::cache) calls: AtomicUsize,
    }

    impl Job for Counting {
        type Output = Analysis;
        fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analysis, Error> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.analyzer.analyze_file(path, stop)
        }
        fn failure(&self, output: &Analysis) -> Option<Error> {
            self.analyzer.failure(output)
        }
    }

    pub(in crate::cache) fn rows(
        summary: &analyzer_core::batch::BatchSummary<Analyzed>,
    ) -> Vec<AnalyzeRecord> {
        summary
            .results
            .iter()
            .map(|r| match &r.value {
                Some(v) => v.record_for(&r.path),
                None => AnalyzeRecord::new(&r.path, r.status, None, r.error.as_deref()),
            })
            .collect()
    }

    pub(in crate::cache) fn counting() -> Counting {
        Counting {
            analyzer: Analyzer::new(AnalyzerConfig::default()).unwrap(),
            calls: AtomicUsize::new(0),
        }
    }

    #[test]
    fn a_hit_is_not_analysed_and_gives_the_fresh_row() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("a.wav");
        click_wav(&good, 120.0, 4.0);
        let short = dir.path().join("b.wav");
        click_wav(&short, 120.0, 0.5);
        let junk = dir.path().join("c.wav");
        std::fs::write(&junk, b"RIFF, but not really").unwrap();
        let files = vec![good.clone(), short.clone(), junk.clone()];
        let job = counting();
        let config = job.analyzer.config();

        let reference =
            Batch::new(&CachedAnalyzer::new(&job, None, config)).run(&files, &Sequential);
        assert_eq!(job.calls.swap(0, Ordering::SeqCst), 3);
        assert!(
            reference.results[1]
                .error
                .as_ref()
                .unwrap()
                .contains("too_short")
        );
        assert_eq!(reference.results[2].status, Status::Error);

        let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
        // Every hit is looked up by its hash: whether an identity may be trusted unread
        // depends on how long ago the files were written (the racy window), which a loaded
        // machine decides; `rescan_tests` covers that path with set times.
        let cached = CachedAnalyzer::new(&job, Some(&cache), config).rescan(Rescan::Verify);
        let first = Batch::new(&cached).run(&files, &Sequential);
        assert_eq!(job.calls.swap(0, Ordering::SeqCst), 3);
        cache.flush();
        assert_eq!(
            cache.stats().stored,
            2,
            "the ok row and the too_short error; not the decoder's verdict"
        );
        let second = Batch::new(&cached).run(&files, &Sequential);
        assert_eq!(
            job.calls.load(Ordering::SeqCst),
            1,
            "hits are not analysed; the file that does not decode is"
        );
        assert_eq!(
            cache.stats(),
            CacheStats {
                hits: 2,
                misses: 4,
                stored: 2,
                ..CacheStats::default()
            }
        );
        assert_eq!(rows(&first), rows(&reference));
        assert_eq!(rows(&second), rows(&reference));
        assert!(
            second.results[..2]
                .iter()
                .all(|r| r.value.as_ref().is_none_or(Analyzed::from_cache))
        );
        // The stored failure comes back as the same error, status and all.
        assert_eq!(second.results[1].status, Status::Error);
        assert_eq!(second.results[1].error, reference.results[1].error);

        // --force analyses again and rewrites.
        job.calls.store(0, Ordering::SeqCst);
        let forced = CachedAnalyzer::new(&job, Some(&cache), config).rescan(Rescan::Force);
        let third = Batch::new(&forced).run(&files, &Sequential);
        assert_eq!(job.calls.load(Ordering::SeqCst), 3);
        assert_eq!(rows(&third), rows(&reference));
        cache.flush();
        assert_eq!(cache.len().unwrap(), 2);
        assert_eq!(cache.stats().stored, 4);
    }

    /// Writes `bytes` under `key` through redb itself, as damage on disk would leave them.
    fn write_raw(cache: &ResultCache, key: &[u8; 64], bytes: &[u8]) {
        cache
            .shared
            .store
            .with_db(|db| {
                let write = db.begin_write()?;
                write.open_table(ROWS)?.insert(key.as_slice(), bytes)?;
                write.commit()?;
                Ok(())
            })
            .unwrap();
    }

    /// One file analysed through `cache` by a counting analyzer: its row and whether it
    /// was analysed.
    fn analyze_once(cache: &ResultCache, path: &Path) -> (AnalyzeRecord, bool) {
        let job = counting();
        let cached = CachedAnalyzer::new(&job, Some(cache), job.analyzer.config());
        let summary = Batch::new(&cached).run(&[path.to_path_buf()], &Sequential);
        cache.flush();
        let row = rows(&summary).remove(0);
        (row, job.calls.load(Ordering::SeqCst) == 1)
    }

    /// A cache holding the row of one file: the folder, the file, the cache, the row
    /// and its key.
    struct OneRow {
        _dir: tempfile::TempDir,
        wav: std::path::PathBuf,
        cache: ResultCache,
        fresh: AnalyzeRecord,
        key: CacheKey,
    }

    fn one_row() -> OneRow {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        click_wav(&wav, 120.0, 4.0);
        let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
        let (fresh, analysed) = analyze_once(&cache, &wav);
        assert!(analysed);
        let key = key_for(&wav, &AnalyzerConfig::default().fingerprint()).unwrap();
        OneRow {
            _dir: dir,
            wav,
            cache,
            fresh,
            key,
        }
    }

    #[test]
    fn a_stored_row_with_a_changed_digit_is_analysed_again_and_rewritten() {
        // Kept whole: its folder is removed when it is dropped.
        let one = one_row();
        let (wav, cache, fresh, key) = (&one.wav, &one.cache, &one.fresh, &one.key);
        let sealed = cache.shared.read(&key.bytes()).unwrap().unwrap();
        // The last digit of the tempo changed on disk: still a row that parses and fits
        // the settings, so only the checksum tells.
        let bpm = fresh.bpm.as_bytes();
        let at = 32
            + sealed[32..]
                .windows(bpm.len())
                .position(|w| w == bpm)
                .unwrap();
        let mut damaged = sealed.clone();
        let digit = &mut damaged[at + bpm.len() - 1];
        *digit = if *digit == b'1' { b'2' } else { b'1' };
        let limits = RowLimits::of(&AnalyzerConfig::default());
        let parsed: Stored = serde_json::from_slice(&damaged[32..]).unwrap();
        assert_eq!(parsed.check(&limits), Ok(()));
        assert_ne!(
            parsed,
            Stored::Row(AnalyzeRecord {
                path: String::new(),
                ..fresh.clone()
            })
        );
        write_raw(cache, &key.bytes(), &damaged);

        let (row, analysed) = analyze_once(cache, wav);
        assert!(analysed, "the damaged row is a miss");
        assert_eq!(&row, fresh);
        assert_eq!(cache.stats().rejected, 1);
        assert_eq!(
            cache.get(key).unwrap(),
            Some(Stored::Row(AnalyzeRecord {
                path: String::new(),
                ..fresh.clone()
            })),
            "and rewritten"
        );
        assert!(!analyze_once(cache, wav).1, "a hit again");
    }

    #[test]
    fn a_row_outside_the_runs_tempo_range_is_not_served() {
        // Kept whole: its folder is removed when it is dropped.
        let one = one_row();
        let (wav, cache, fresh, key) = (&one.wav, &one.cache, &one.fresh, &one.key);
        // Sealed as this build seals, so only the check against the settings catches it.
        let slow = AnalyzeRecord {
            path: String::new(),
            bpm: "12.000".into(),
            ..fresh.clone()
        };
        cache.put(key, &Stored::Row(slow)).unwrap();
        let (row, analysed) = analyze_once(cache, wav);
        assert!(analysed, "a tempo below --min-bpm is a miss");
        assert_eq!(&row, fresh);
    }

    /// The analyzer on a file that another program rewrites just before it is decoded:
    /// the hash was taken of the old bytes, the row is of the new ones.
    struct RewrittenWhileRead {
        analyzer: Analyzer,
        new_bytes: Vec<u8>,
    }

    impl Job for RewrittenWhileRead {
        type Output = Analysis;
        fn run(&self, path: &Path, stop: &StopSignal) -> Result<Analysis, Error> {
            std::fs::write(path, &self.new_bytes).unwrap();
            self.analyzer.analyze_file(path, stop)
        }
    }

    #[test]
    fn a_file_changed_between_hash_and_analysis_is_not_stored() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        let other = dir.path().join("b.wav");
        click_wav(&other, 90.0, 3.0);
        click_wav(&wav, 140.0, 4.0);
        let intact = std::fs::read(&wav).unwrap();
        let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
        let job = RewrittenWhileRead {
            analyzer: Analyzer::new(AnalyzerConfig::default()).unwrap(),
            new_bytes: std::fs::read(&other).unwrap(),
        };
        let cached = CachedAnalyzer::new(&job, Some(&cache), job.analyzer.config());
        let summary = Batch::new(&cached).run(std::slice::from_ref(&wav), &Sequential);
        cache.flush();
        assert_eq!(summary.results[0].status, Status::Ok, "the row is returned");
        assert_eq!(cache.len().unwrap(), 0, "but not stored");

        std::fs::write(&wav, &intact).unwrap();
        let (row, analysed) = analyze_once(&cache, &wav);
        assert!(
            analysed,
            "the intact file is not given the other bytes' row"
        );
        let reference = Batch::new(&CachedAnalyzer::new(
            &counting(),
            None,
            job.analyzer.config(),
        ))
        .run(std::slice::from_ref(&wav), &Sequential);
        assert_eq!(row, rows(&reference)[0]);
    }

    #[test]
    fn rows_of_the_previous_schema_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("a.wav");
        click_wav(&wav, 120.0, 4.0);
        let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
        let fingerprint = AnalyzerConfig::default().fingerprint();
        // What a build before the schema version stored for a file its decoder could not
        // read: the failure, as plain JSON, under the old settings hash.
        let old_key = CacheKey::of_file(&wav, Settings::with_schema(1, &fingerprint)).unwrap();
        let old_row = Stored::Failed {
            stage: "probe".into(),
            kind: "unsupported_format".into(),
            detail: "no suitable format reader found".into(),
            record: AnalyzeRecord::default(),
        };
        write_raw(
            &cache,
            &old_key.bytes(),
            &serde_json::to_vec(&old_row).unwrap(),
        );
        let (row, analysed) = analyze_once(&cache, &wav);
        assert!(analysed);
        assert_eq!(row.status, "ok");
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
}
