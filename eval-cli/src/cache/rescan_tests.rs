//! Rescans through recorded identities: which files the cache opens (a counting
//! [`ContentHasher`]), which it analyses (a counting job), and that every run's rows are
//! those of a run without a cache. The moment of recording comes from a clock the test
//! sets, and file times are set explicitly, so no test waits for time to pass.

use std::fs::{File, FileTimes};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use analyzer_core::batch::{Batch, Sequential};
use analyzer_core::{Error, StopSignal};

use super::analyzer::tests::{Counting, click_wav, counting, rows};
use super::{
    CacheKey, CachedAnalyzer, ContentHasher, FileIdentity, ReadAndHash, Recorded, Rescan,
    ResultCache, Settings, path_key,
};
use crate::record::AnalyzeRecord;

/// [`ReadAndHash`], counting the files it opens.
#[derive(Default)]
struct CountingHasher(AtomicUsize);

impl ContentHasher for CountingHasher {
    fn hash(
        &self,
        path: &Path,
        settings: Settings,
        stop: &StopSignal,
    ) -> Result<(CacheKey, FileIdentity), Error> {
        self.0.fetch_add(1, Ordering::SeqCst);
        ReadAndHash.hash(path, settings, stop)
    }
}

/// A clock an hour ahead: whatever is recorded now is clean (its files' times are well
/// before the moment of recording).
fn an_hour_on() -> SystemTime {
    SystemTime::now() + Duration::from_secs(3600)
}

/// What one run did: its rows, how many files it opened to hash and how many it analysed.
#[derive(Debug)]
struct Run {
    rows: Vec<AnalyzeRecord>,
    opened: usize,
    analysed: usize,
}

fn run(cache: &ResultCache, files: &[PathBuf], rescan: Rescan, clock: fn() -> SystemTime) -> Run {
    let (job, hasher) = (counting(), CountingHasher::default());
    let cached = CachedAnalyzer::new(&job, Some(cache), job.analyzer.config())
        .rescan(rescan)
        .with_hasher(&hasher)
        .with_clock(clock);
    let summary = Batch::new(&cached).run(files, &Sequential);
    cache.flush();
    Run {
        rows: rows(&summary),
        opened: hasher.0.load(Ordering::SeqCst),
        analysed: job.calls.load(Ordering::SeqCst),
    }
}

/// The rows of a run without a cache.
fn fresh_rows(files: &[PathBuf]) -> Vec<AnalyzeRecord> {
    let job: Counting = counting();
    let plain = CachedAnalyzer::new(&job, None, job.analyzer.config());
    rows(&Batch::new(&plain).run(files, &Sequential))
}

/// Three click tracks of one length (so of one size), distinct tempi, and an empty cache.
fn library() -> (tempfile::TempDir, Vec<PathBuf>, ResultCache) {
    let dir = tempfile::tempdir().unwrap();
    let files: Vec<PathBuf> = [96.0, 120.0, 150.0]
        .iter()
        .enumerate()
        .map(|(i, &bpm)| {
            let path = dir.path().join(format!("{i}.wav"));
            click_wav(&path, bpm, 4.0);
            path
        })
        .collect();
    let cache = ResultCache::open(&dir.path().join("cache")).unwrap();
    (dir, files, cache)
}

fn set_mtime(path: &Path, mtime: SystemTime) {
    let file = File::options().write(true).open(path).unwrap();
    file.set_times(FileTimes::new().set_modified(mtime))
        .unwrap();
}

#[cfg(unix)]
#[test]
fn an_unchanged_file_is_served_without_being_opened() {
    let (_dir, files, cache) = library();
    let fresh = fresh_rows(&files);
    let first = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!((first.opened, first.analysed), (3, 3));
    assert_eq!(first.rows, fresh);

    let second = run(&cache, &files, Rescan::Trust, SystemTime::now);
    assert_eq!(
        (second.opened, second.analysed),
        (0, 0),
        "no file opened, by the cache or the analyzer"
    );
    assert_eq!(second.rows, fresh);
    assert_eq!(cache.stats().unread, 3);

    let recorded = |path: &PathBuf| cache.recorded(&path_key(path).unwrap()).unwrap();
    let before: Vec<Recorded> = files.iter().map(recorded).collect();
    let verified = run(&cache, &files, Rescan::Verify, SystemTime::now);
    assert_eq!((verified.opened, verified.analysed), (3, 0));
    assert_eq!(verified.rows, fresh);
    assert!(cache.take_mismatches().is_empty());
    let after: Vec<Recorded> = files.iter().map(recorded).collect();
    assert_eq!(after, before, "records that still hold are not rewritten");

    let forced = run(&cache, &files, Rescan::Force, SystemTime::now);
    assert_eq!((forced.opened, forced.analysed), (3, 3));
    assert_eq!(forced.rows, fresh);
}

#[cfg(unix)]
#[test]
fn a_racy_identity_is_hashed_until_its_times_are_older_than_its_recording() {
    let (_dir, files, cache) = library();
    let file = &files[..1];
    // Stamped later than any moment of recording: racy, whatever the clock says.
    set_mtime(&file[0], SystemTime::now() + Duration::from_secs(86_400));
    assert_eq!(run(&cache, file, Rescan::Trust, an_hour_on).analysed, 1);
    for _ in 0..2 {
        let again = run(&cache, file, Rescan::Trust, an_hour_on);
        assert_eq!(
            (again.opened, again.analysed),
            (1, 0),
            "hashed, a hit by content"
        );
    }
    // Stamped in the past, recorded an hour on: clean, so the next run trusts it.
    set_mtime(&file[0], SystemTime::now() - Duration::from_secs(86_400));
    let touched = run(&cache, file, Rescan::Trust, an_hour_on);
    assert_eq!((touched.opened, touched.analysed), (1, 0));
    let trusted = run(&cache, file, Rescan::Trust, an_hour_on);
    assert_eq!((trusted.opened, trusted.analysed), (0, 0));
    assert_eq!(trusted.rows, fresh_rows(file));

    // Recorded by a clock behind the file's times (mtime and ctime of now): racy, so
    // hashed once more, then recorded clean.
    let (_dir, files, cache) = library();
    let file = &files[..1];
    fn long_ago() -> SystemTime {
        SystemTime::UNIX_EPOCH
    }
    assert_eq!(run(&cache, file, Rescan::Trust, long_ago).opened, 1);
    assert_eq!(run(&cache, file, Rescan::Trust, an_hour_on).opened, 1);
    assert_eq!(run(&cache, file, Rescan::Trust, an_hour_on).opened, 0);
}

#[cfg(unix)]
#[test]
fn an_edited_file_is_analysed_and_a_touched_one_only_hashed() {
    let (_dir, files, cache) = library();
    run(&cache, &files, Rescan::Trust, an_hour_on);
    // Same bytes, new mtime (and ctime): hashed, then its row by content.
    set_mtime(&files[0], SystemTime::now() - Duration::from_secs(60));
    // New bytes of another size.
    click_wav(&files[1], 100.0, 5.0);
    // New bytes of the same size.
    let other_tempo = files[2].with_extension("tmp");
    click_wav(&other_tempo, 133.0, 4.0);
    std::fs::rename(&other_tempo, &files[2]).unwrap();
    let fresh = fresh_rows(&files);
    let rescan = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!((rescan.opened, rescan.analysed), (3, 2));
    assert_eq!(rescan.rows, fresh);
    let again = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!((again.opened, again.analysed, again.rows), (0, 0, fresh));
}

#[cfg(unix)]
#[test]
fn a_moved_or_copied_file_is_read_once_then_trusted_under_its_new_path() {
    let (dir, files, cache) = library();
    run(&cache, &files, Rescan::Trust, an_hour_on);
    let moved = dir.path().join("moved.wav");
    std::fs::rename(&files[0], &moved).unwrap();
    let copied = dir.path().join("copied.wav");
    std::fs::copy(&files[1], &copied).unwrap();
    let new_paths = vec![moved, copied];
    let fresh = fresh_rows(&new_paths);
    let once = run(&cache, &new_paths, Rescan::Trust, an_hour_on);
    assert_eq!((once.opened, once.analysed), (2, 0), "hits by content");
    assert_eq!(once.rows, fresh);
    let then = run(&cache, &new_paths, Rescan::Trust, an_hour_on);
    assert_eq!((then.opened, then.analysed, then.rows), (0, 0, fresh));
}

#[cfg(unix)]
#[test]
fn verify_names_a_file_whose_bytes_changed_under_an_unchanged_identity() {
    let (_dir, files, cache) = library();
    let fresh = fresh_rows(&files);
    run(&cache, &files, Rescan::Trust, an_hour_on);
    // What a write that left size, mtime, ctime and inode as they were would leave: the
    // record of file 0 holds the identity it has now and the content of file 1.
    let other = cache.recorded(&path_key(&files[1]).unwrap()).unwrap();
    let mut stale = cache.recorded(&path_key(&files[0]).unwrap()).unwrap();
    stale.content = other.content;
    cache.record(path_key(&files[0]).unwrap(), &stale);

    let trusted = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!(trusted.opened, 0, "stat-only trust: nothing read");
    assert_eq!(
        trusted.rows[0].bpm, fresh[1].bpm,
        "so file 0 got file 1's row"
    );

    let verified = run(&cache, &files, Rescan::Verify, an_hour_on);
    assert_eq!((verified.opened, verified.analysed), (3, 1));
    assert_eq!(verified.rows, fresh, "analysed anew");
    assert_eq!(cache.take_mismatches(), vec![files[0].clone()]);
    assert_eq!(cache.stats().mismatched, 1);
    assert!(cache.take_mismatches().is_empty(), "taken once");

    let repaired = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!((repaired.opened, repaired.rows), (0, fresh));
}

#[cfg(unix)]
#[test]
fn a_cache_without_identities_is_filled_by_the_next_run() {
    // What a build before identities left: rows by content, no identity table.
    let (_dir, files, cache) = library();
    let fresh = fresh_rows(&files);
    let job = counting();
    let settings = Settings::new(&job.analyzer.config().fingerprint());
    for (path, row) in files.iter().zip(&fresh) {
        let key = CacheKey::of_file(path, settings).unwrap();
        let stored = super::Stored::Row(AnalyzeRecord {
            path: String::new(),
            ..row.clone()
        });
        cache.put(&key, &stored).unwrap();
    }
    assert!(cache.recorded(&path_key(&files[0]).unwrap()).is_none());
    let first = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!(
        (first.opened, first.analysed, first.rows),
        (3, 0, fresh.clone())
    );
    let second = run(&cache, &files, Rescan::Trust, an_hour_on);
    assert_eq!((second.opened, second.analysed, second.rows), (0, 0, fresh));
}

#[test]
fn a_damaged_identity_is_read_as_none() {
    let (_dir, files, cache) = library();
    let key = path_key(&files[0]).unwrap();
    let record = Recorded {
        identity: FileIdentity::of_path(&files[0]).unwrap(),
        content: [1; 32],
        at: an_hour_on(),
    };
    let mut sealed = record.seal(&key);
    cache.record(key.clone(), &record);
    cache.flush();
    assert_eq!(cache.recorded(&key), Some(record));
    sealed[5] ^= 0x10;
    cache
        .shared
        .store
        .with_db(|db| {
            let write = db.begin_write()?;
            write
                .open_table(super::IDENTITIES)?
                .insert(key.as_slice(), sealed.as_slice())?;
            write.commit()?;
            Ok(())
        })
        .unwrap();
    assert_eq!(cache.recorded(&key), None);
}

/// A job whose cost hint counts the files it probes (the scheduler asks every file's cost
/// before a parallel batch, and the analyzer's hint reads the file's headers).
struct Probed {
    analyzer: analyzer_core::Analyzer,
    probes: AtomicUsize,
}

impl analyzer_core::batch::Job for Probed {
    type Output = analyzer_core::Analysis;
    fn run(&self, path: &Path, stop: &StopSignal) -> Result<Self::Output, Error> {
        self.analyzer.analyze_file(path, stop)
    }
    fn cost_hint(&self, _: &Path) -> Option<f64> {
        self.probes.fetch_add(1, Ordering::SeqCst);
        Some(1.0)
    }
}

#[cfg(unix)]
#[test]
fn a_file_served_unread_is_not_probed_for_its_cost() {
    use analyzer_core::batch::Job;
    let (_dir, files, cache) = library();
    run(&cache, &files[..2], Rescan::Trust, an_hour_on);
    let job = Probed {
        analyzer: counting().analyzer,
        probes: AtomicUsize::new(0),
    };
    let cached = CachedAnalyzer::new(&job, Some(&cache), job.analyzer.config());
    assert_eq!(cached.cost_hint(&files[0]), Some(0.0));
    assert_eq!(cached.cost_hint(&files[1]), Some(0.0));
    assert_eq!(job.probes.load(Ordering::SeqCst), 0, "recorded: not probed");
    assert_eq!(cached.cost_hint(&files[2]), Some(1.0), "never seen: probed");
    let verifying =
        CachedAnalyzer::new(&job, Some(&cache), job.analyzer.config()).rescan(Rescan::Verify);
    assert_eq!(
        verifying.cost_hint(&files[0]),
        Some(1.0),
        "--verify reads it anyway"
    );
    assert_eq!(job.probes.load(Ordering::SeqCst), 2);
}
