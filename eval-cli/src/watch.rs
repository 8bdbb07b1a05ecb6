//! `eval-cli watch DIR... --cache DIR [--write-tags]`: keeps a library analysed. A first
//! pass analyses what is there (files the cache knows are not even opened), then every
//! file added or changed is analysed as it arrives, its row printed, the cache kept
//! current and, with `--write-tags`, its tags too.
//!
//! When a file is complete: the kernel says when a writer closes it (inotify's
//! `IN_CLOSE_WRITE`, notify's `Access(Close(Write))`), and a file moved in (`IN_MOVED_TO`)
//! is complete at once. A file being copied in raises `Create` and `Modify` events first:
//! those are passed over, so a half-written file is never read. A folder moved in is
//! walked. A symbolic link made in a folder (`ln -s`) raises only `Create`: a link is whole
//! when it is made, so it is read then, as the first pass reads links (one to a folder that
//! holds it is the first pass's `walk: loop` error row). So is a hard link
//! (`ln`: a regular file with more than one link) and a named pipe, socket or device, whose
//! row is the error `analyze` gives it (it is never opened for reading). Deleting a file prints
//! nothing (its cached row stays for a copy that comes back), even when the file goes
//! before its event is handled: an editor's temporary file renamed over the real one, a
//! file deleted right after it was written.
//!
//! An event that finds a file as its last row (or this command's tagging) left it is
//! nothing new and prints nothing ([`Printed`], the first pass's rows included): the tagged
//! copy renamed over a file, a writer that closes a file without writing, or another
//! process closing its copy of a writer's handle after the file was moved in (the kernel
//! reports a close when the last copy goes). A file whose metadata alone changed while it
//! was read (a link made to it, a chmod) keeps its row; one stopped by Ctrl-C gets none, as
//! in `analyze`.
//!
//! The kernel drops events when its queue is full (inotify's `max_queued_events`: a copy
//! of thousands of files while watch is busy or stopped) and says so (notify's `Rescan`
//! flag): stderr warns and the folders are walked again, a row for each file new or
//! changed since its row. Those files got none before.
//!
//! What `analyze` says of its cache, `watch` says after the first pass and when it stops;
//! a store removed, found damaged or failing in between is warned about once, after the
//! file that met it. It said nothing, and the next run analysed those files again.
//!
//! A folder under the watched ones that cannot be read (no permission: a `lost+found`) is
//! left out ([`folders`]): the first pass gives it the error row `analyze` gives it, stderr
//! says that files added under it are not seen, and the rest of the library is watched.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use analyzer_core::batch::{self, Batch, FileResult, Status, WalkError};
use analyzer_core::{Analyzer, StopSignal};
use anyhow::{Context, bail};
use notify::event::{ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::cache::{Analyzed, CachedAnalyzer, FileIdentity, ResultCache};
use crate::flags;
use crate::record::{self, AnalyzeRecord};
use crate::report::export::{CsvLine, Exporter};
use crate::runner;
use crate::stdout::WriteContext;
use crate::tags::{self, KeyNotation, TagOptions, TagValues};
use crate::threads::{self, ThreadRefused};
use crate::writers::Writers;
use events::{complete_files, not_being_written};
use printed::Printed;

mod events;
mod folders;
mod printed;

/// What a failed write of the rows says (a full disk behind `> FILE`; a closed pipe ends
/// the watch quietly instead, [`crate::stdout`]).
const STDOUT_FAILED: &str = "cannot write results to stdout";

/// How often the event loop looks at the Ctrl-C flag while no event comes.
const STOP_POLL: Duration = Duration::from_millis(200);

/// Flags of `eval-cli watch`.
#[derive(Debug, clap::Args)]
pub struct WatchArgs {
    /// Folders to keep analysed (with their subfolders).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The result cache (as `analyze --cache`): rows by content and settings, and each
    /// file's identity, so that a restart reads nothing unchanged.
    #[arg(long, value_name = "DIR")]
    pub cache: PathBuf,
    /// Write each file's tempo, key (and ReplayGain with loudness) into its own tags, as
    /// `eval-cli tag` does: values the tags already hold are kept.
    #[arg(long)]
    pub write_tags: bool,
    /// How the key is written into the tags.
    #[arg(long, value_enum, default_value_t = KeyNotation::Standard, requires = "write_tags")]
    pub key_notation: KeyNotation,
    /// The analyzer's settings.
    #[command(flatten)]
    pub settings: flags::AnalyzerArgs,
    /// Workers of the first pass, the per-file time limit, the first pass's progress.
    #[command(flatten)]
    pub batch: flags::BatchArgs,
    /// Internal, for tests: a file that arrives whose name starts with `gate` holds the
    /// event loop until `NAME.open` appears beside it (gate.rs), so that a test can change
    /// the folder while watch is busy, without a clock.
    #[arg(long, hide = true)]
    pub test_gates: bool,
}

/// What a run of `watch` needs, built once from its flags.
struct Plan {
    dirs: Vec<PathBuf>,
    analyzer: Analyzer,
    cache: ResultCache,
    tagging: Option<TagOptions>,
    /// The first pass's run options; their cancel flag is Ctrl-C's for the whole watch.
    options: runner::RunOptions,
    /// `--test-gates`.
    test_gates: bool,
}

/// Runs `eval-cli watch` until Ctrl-C or SIGTERM (exit 130).
pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    for dir in &args.dirs {
        if !dir.is_dir() {
            bail!("{} is not a folder", dir.display());
        }
    }
    let roots: Vec<Root> = args.dirs.iter().map(|dir| Root::of(dir)).collect();
    let plan = Plan {
        analyzer: args.settings.analyzer()?,
        cache: ResultCache::open(&args.cache)?,
        tagging: args.write_tags.then_some(TagOptions {
            overwrite: false,
            dry_run: false,
            notation: args.key_notation,
        }),
        options: args.batch.options(runner::Schedule::CostliestFirst),
        dirs: args.dirs,
        test_gates: args.test_gates,
    };
    runner::install_signal_handler(Arc::clone(&plan.options.cancel));
    // Watching starts before the first pass, so that nothing written meanwhile is missed.
    let (events, received) = mpsc::channel();
    let mut watcher = start_watcher(events)?;
    for dir in &plan.dirs {
        let unwatched = folders::watch_tree(
            |folder| watcher.watch(folder, RecursiveMode::Recursive),
            dir,
        )
        .with_context(|| format!("cannot watch {}", dir.display()))?;
        for folder in unwatched {
            eprintln!(
                "eval-cli: warning: cannot watch {}: {}; files added under it are not seen",
                folder.path.display(),
                folder.reason
            );
        }
    }
    let mut out = std::io::stdout().lock();
    out.write_all(&record::header())
        .stdout_context(STDOUT_FAILED)?;
    let mut session = Session::new(&plan);
    let (files, walk_errors) = batch::collect_audio_files(&plan.dirs);
    let files = not_being_written(files, &Writers::scan());
    session.first_pass(&files, &mut out)?;
    // Folders that could not be walked are rows too, after the files', as in `analyze`.
    session.walk_error_rows(&walk_errors, &mut out)?;
    session.report_cache(CacheReport::Summary);
    if plan.options.progress == runner::ProgressMode::Jsonl {
        runner::emit_event(&serde_json::json!({"event": "watching", "folders": plan.dirs.len()}));
    }
    eprintln!(
        "eval-cli: watching {} folder{} for new and changed files (Ctrl-C stops)",
        plan.dirs.len(),
        if plan.dirs.len() == 1 { "" } else { "s" }
    );
    let followed = session.follow(&received, &roots, &mut out);
    drop(watcher);
    match &followed {
        // A reader that closed stdout ends the watch quietly ([`crate::stdout`]).
        Err(error) if crate::stdout::closed_by_reader(error) => {}
        Err(_) => session.report_cache(CacheReport::Summary),
        Ok(()) => {
            eprintln!("eval-cli: watch stopped");
            session.report_cache(CacheReport::Summary);
        }
    }
    followed.map(|()| ExitCode::from(runner::EXIT_CANCELLED))
}

/// notify's watcher sending its events to `events`, its thread running. notify ignores a
/// refusal of that thread, and its watcher then panics at its first use and again when
/// dropped, which aborts: the thread is asked for first ([`threads::probe`]), and the
/// watcher is asked to answer a message before it is used.
fn start_watcher(
    events: mpsc::Sender<notify::Result<Event>>,
) -> anyhow::Result<notify::RecommendedWatcher> {
    threads::probe(1, false)?;
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    })
    .context("cannot watch folders")?;
    // The default configuration changes nothing; only its thread answers it, and its
    // absence is an `Err` here, not a panic.
    if watcher.configure(notify::Config::default()).is_err() {
        // Its `Drop` would panic.
        std::mem::forget(watcher);
        return Err(ThreadRefused::not_running("the file watcher's thread", false).into());
    }
    Ok(watcher)
}

/// What a `file` event shows of a row: the row's own cells, as `analyze`'s events do.
fn shown(analyzed: &Analyzed) -> runner::Shown {
    runner::Shown {
        bpm: analyzed.bpm(),
        key: analyzed.key(),
        loudness_lufs: analyzed.record.loudness_lufs.parse().ok(),
    }
}

/// Which report of the cache [`Session::report_cache`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CacheReport {
    /// `analyze`'s: the counts so far, and every warning not said yet (after the first
    /// pass, and when watch stops).
    Summary,
    /// Only what is new since the last report (after a later file): a watch runs for
    /// months, and a full disk must not be warned about at every file.
    News,
}

/// What `watch` has said of its cache, so that each thing is said once.
#[derive(Debug, Default)]
struct CacheSaid {
    /// That the store was removed or replaced.
    gone: bool,
    /// That lookups or writes failed.
    failures: bool,
    /// That stored rows were damaged or did not fit the settings.
    rejected: bool,
}

/// The state of one `watch`: the files whose rows it printed, as they were, how many
/// files have had a `file` event, and what it said of its cache.
struct Session<'a> {
    plan: &'a Plan,
    files_seen: usize,
    printed: Printed,
    /// The folders a walk could not enter whose rows were printed: a rescan meets them
    /// again, and their rows stand.
    walk_errors: HashSet<(PathBuf, String)>,
    said: CacheSaid,
}

impl<'a> Session<'a> {
    /// A watch about to make its first pass: nothing printed yet.
    fn new(plan: &'a Plan) -> Self {
        Session {
            plan,
            files_seen: 0,
            printed: Printed::new(),
            walk_errors: HashSet::new(),
            said: CacheSaid::default(),
        }
    }

    fn job(&self) -> CachedAnalyzer<'_, Analyzer> {
        CachedAnalyzer::new(
            &self.plan.analyzer,
            Some(&self.plan.cache),
            self.plan.analyzer.config(),
        )
    }

    fn cancelled(&self) -> bool {
        self.plan.options.cancel.load(Ordering::SeqCst)
    }

    /// Every file already there, on the batch runner, rows in input order.
    fn first_pass(&mut self, files: &[PathBuf], out: &mut impl Write) -> anyhow::Result<()> {
        let analysed: Vec<Option<FileIdentity>> = files
            .iter()
            .map(|f| FileIdentity::of_path(f).ok())
            .collect();
        let job = self.job();
        let summary = runner::run(files, &self.plan.options, &job, shown, |_| {});
        self.files_seen = files.len();
        for result in &summary.results {
            let before = analysed.get(result.index).copied().flatten();
            self.finish(result, before, out)?;
        }
        Ok(())
    }

    /// Handles events until Ctrl-C or SIGTERM, or until a watched folder is moved or
    /// deleted (an error).
    fn follow(
        &mut self,
        received: &mpsc::Receiver<notify::Result<Event>>,
        roots: &[Root],
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        while !self.cancelled() {
            let event = received.recv_timeout(STOP_POLL);
            // A folder moved away is still watched by its old name's watch descriptors
            // (its events would name files where they no longer are) and one deleted raises
            // none: either way nothing under it can be followed, so watch says so and stops.
            if let Some(root) = roots
                .iter()
                .find(|root| folder_identity(&root.given) != root.identity)
            {
                bail!(
                    "{} was moved or deleted while it was watched: nothing under it can be \
                     followed; run watch again where it is now",
                    root.given.display()
                );
            }
            match event {
                Ok(Ok(event)) => self.handle(&event, roots, out)?,
                Ok(Err(error)) => eprintln!("eval-cli: warning: watching: {error}"),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        Ok(())
    }

    /// One event: the rows of the files it completes, or, when the kernel dropped events
    /// (its queue overflowed: notify's `Rescan` flag), of every file new or changed since
    /// its row; then what is new about the cache.
    fn handle(
        &mut self,
        event: &Event,
        roots: &[Root],
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        if event.need_rescan() {
            eprintln!(
                "eval-cli: warning: the kernel's event queue overflowed; rescanning the folders"
            );
            let dirs: Vec<PathBuf> = roots.iter().map(|root| root.given.clone()).collect();
            self.rescan(&dirs, out)?;
            self.report_cache(CacheReport::News);
            return Ok(());
        }
        let mut event = event.clone();
        let paths: Vec<Option<PathBuf>> = event
            .paths
            .iter()
            .map(|p| without_loops(&as_given(p, roots), roots))
            .collect();
        // A path through a link to a folder above the watched one (`ln -s .. music/up`)
        // that leads out of the folders is no file of theirs.
        if paths.first().is_some_and(Option::is_none) {
            return Ok(());
        }
        event.paths = paths.into_iter().flatten().collect();
        // Deleted or renamed away: forgotten, so that what is kept follows the library.
        if matches!(
            event.kind,
            EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(RenameMode::From))
        ) {
            for path in &event.paths {
                self.printed.forget(path);
            }
        }
        let (mut files, walk_errors) = complete_files(&event);
        // A folder moved in may hold a file still being copied into it.
        if event.paths.first().is_some_and(|path| path.is_dir()) {
            files = not_being_written(files, &Writers::scan());
        }
        let handled = files.len() + walk_errors.len();
        for path in files {
            self.arrived(&path, out)?;
        }
        self.walk_error_rows(&walk_errors, out)?;
        if handled > 0 {
            self.report_cache(CacheReport::News);
        }
        Ok(())
    }

    /// Walks the folders again, as the first pass did, after the kernel dropped events: a
    /// file new or changed since its row gets one now, in the walk's order; one as its row
    /// left it prints nothing ([`Printed`]), at the cost of a `stat`. A file another process
    /// is writing waits for its writer's close, as in the first pass.
    fn rescan(&mut self, dirs: &[PathBuf], out: &mut impl Write) -> anyhow::Result<()> {
        let (found, walk_errors) = batch::collect_audio_files(dirs);
        self.printed.keep_only(&found);
        let new: Vec<PathBuf> = found
            .into_iter()
            .filter(|path| {
                let now = FileIdentity::of_path(path).ok();
                !self.printed.holds(path, now.as_ref())
            })
            .collect();
        for path in not_being_written(new, &Writers::scan()) {
            if self.cancelled() {
                break;
            }
            self.arrived(&path, out)?;
        }
        self.walk_error_rows(&walk_errors, out)
    }

    /// A file that arrived complete: analysed (or served by the cache), its row printed.
    fn arrived(&mut self, path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
        // As its row or this run's tagging left it (the tagged copy renamed over it).
        if self
            .printed
            .holds(path, FileIdentity::of_path(path).ok().as_ref())
        {
            return Ok(());
        }
        let stop = StopSignal::never().with_cancel_flag(Arc::clone(&self.plan.options.cancel));
        if self.plan.test_gates && !crate::gate::hold(path, &stop) {
            return Ok(());
        }
        let before = match FileIdentity::of_path(path) {
            Ok(identity) => Some(identity),
            // Gone before it could be read (deleted right after it was written, or an
            // editor's temporary file already renamed over the real one, whose own event
            // brings its row): a deleted file prints nothing.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                eprintln!(
                    "eval-cli: {}: went away before it was read (deleted or renamed); no row",
                    path.display()
                );
                return Ok(());
            }
            // Any other reason (no permission) is the file's error row.
            Err(_) => None,
        };
        let job = self.job();
        let result = Batch::new(&job)
            .timeout(self.plan.options.timeout)
            .stop(stop)
            .run_file(self.files_seen, path);
        if let Some(result) = result
            && self.finish(&result, before, out)?
        {
            // A later file's `file` event: it continues the first pass's count, and there
            // is no total to count towards.
            self.files_seen += 1;
            if self.plan.options.progress == runner::ProgressMode::Jsonl {
                let shown = result.value.as_ref().map(shown).unwrap_or_default();
                runner::emit_file_event(&result, &shown, self.files_seen, None);
            }
        }
        Ok(())
    }

    /// Prints a file's row and, with `--write-tags`, tags the file, and says whether it
    /// printed one; `before` is the file's identity before it was read. A file written to,
    /// replaced or deleted meanwhile gets no row: what was read may be half of each version
    /// (a copy truncates before it writes), and the write that changed it raises an event
    /// of its own, which brings its row once the writer is done.
    fn finish(
        &mut self,
        result: &FileResult<Analyzed>,
        before: Option<FileIdentity>,
        out: &mut impl Write,
    ) -> anyhow::Result<bool> {
        if result.status == Status::Cancelled {
            return Ok(false);
        }
        let mut read_as = None;
        if let Some(before) = before {
            match FileIdentity::of_path(&result.path) {
                // Its metadata alone may have changed (a link made to it, a chmod): what
                // was read is the file as it is.
                Ok(now) if now.same_content_as(&before) => read_as = Some(now),
                Ok(_) => {
                    eprintln!(
                        "eval-cli: {}: changed while it was being analysed; its row comes \
                         when the writing ends",
                        result.path.display()
                    );
                    return Ok(false);
                }
                Err(_) => {
                    eprintln!(
                        "eval-cli: {}: went away while it was being analysed (deleted or \
                         renamed); no row",
                        result.path.display()
                    );
                    return Ok(false);
                }
            }
        }
        let record = match &result.value {
            Some(analyzed) => analyzed.record_for(&result.path),
            None => AnalyzeRecord::new(&result.path, result.status, None, result.error.as_deref()),
        };
        let line = CsvLine.serialize(&record)?;
        out.write_all(&line)
            .and_then(|()| out.flush())
            .stdout_context(STDOUT_FAILED)?;
        self.printed.note(&result.path, read_as.as_ref());
        if let (Some(options), Some(values), Some(analysed), Some(value)) = (
            &self.plan.tagging,
            TagValues::of_record(&record),
            before,
            result.value.as_ref(),
        ) {
            self.tag(&result.path, &analysed, value, &values, options);
        }
        Ok(true)
    }

    /// Tags the file at `path`, read as `analysed` into `row`; the tagged file is noted as
    /// printed and its row kept in the cache under its new bytes (tags change no audio).
    fn tag(
        &mut self,
        path: &Path,
        analysed: &FileIdentity,
        row: &Analyzed,
        values: &TagValues,
        options: &TagOptions,
    ) {
        match tags::tag_analysed_file(path, analysed, values, options) {
            Ok(report) if report.written => {
                let note = report
                    .elsewhere_note()
                    .map_or(String::new(), |note| format!("; {note}"));
                eprintln!(
                    "eval-cli: tagged {}: {}{note}",
                    path.display(),
                    report.summary()
                );
                if let Ok(tagged) = FileIdentity::of_path(path) {
                    self.printed.note(path, Some(&tagged));
                }
                self.job().keep_row_for_retagged(path, row);
            }
            Ok(_) => {}
            Err(why) => eprintln!("eval-cli: not tagged: {}: {why}", path.display()),
        }
    }

    /// The rows of the folders a walk could not enter (no permission, a link back to an
    /// ancestor), each once a watch.
    fn walk_error_rows(
        &mut self,
        errors: &[WalkError],
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        for error in errors {
            if !self
                .walk_errors
                .insert((error.path.clone(), error.reason.clone()))
            {
                continue;
            }
            out.write_all(&record::line(
                &error.path,
                Status::Error,
                None,
                Some(&error.reason),
            ))
            .and_then(|()| out.flush())
            .stdout_context(STDOUT_FAILED)?;
        }
        Ok(())
    }

    /// Says on stderr what `analyze` says of its cache ([`CacheReport`]), each warning
    /// once: a store found damaged and moved aside, a store removed or replaced (a cache
    /// folder deleted: the rows stored since go with it), lookups or writes that failed
    /// (a full disk), rows that were damaged. Before, a watch whose cache failed said
    /// nothing, and the next run analysed everything again.
    fn report_cache(&mut self, report: CacheReport) {
        let cache = &self.plan.cache;
        cache.flush();
        let stats = cache.stats();
        let mut warnings = cache.take_warnings();
        if !self.said.gone && !cache.in_place() {
            self.said.gone = true;
            warnings.push(format!(
                "{} was removed or replaced while watch ran: the {} rows stored in it went \
                 with it, as do those of the files analysed from now on (the next run \
                 analyses those files again; restart watch to keep them)",
                cache.file().display(),
                stats.stored
            ));
        }
        let summary = report == CacheReport::Summary;
        let failures = stats.errors > 0 && (summary || !self.said.failures);
        let rejected = stats.rejected > 0 && (summary || !self.said.rejected);
        self.said.failures |= stats.errors > 0;
        self.said.rejected |= stats.rejected > 0;
        if self.plan.options.progress == runner::ProgressMode::Jsonl {
            for warning in &warnings {
                runner::emit_event(&serde_json::json!({
                    "event": "cache_damaged",
                    "warning": warning,
                }));
            }
            // Failures and damaged rows show in the counts, as in `analyze`.
            if summary || failures || rejected {
                runner::emit_event(&stats.event(cache.file()));
            }
            return;
        }
        for warning in &warnings {
            eprintln!("eval-cli: warning: {warning}");
        }
        if summary {
            for line in stats.summary_lines(cache.file()) {
                eprintln!("{line}");
            }
        }
        if rejected {
            eprintln!(
                "eval-cli: warning: {} cached rows were damaged or did not fit the settings; \
                 those files were analysed again and their rows rewritten",
                stats.rejected
            );
        }
        if failures && let Some(first) = cache.first_error() {
            eprintln!(
                "eval-cli: warning: {} cache lookups or writes failed (those files were \
                 analysed as without a cache); the first: {first}",
                stats.errors
            );
        }
    }
}

/// A folder given to watch: as given, as the kernel's events may name it, and its device
/// and inode when the watch began.
#[derive(Debug, Clone)]
struct Root {
    given: PathBuf,
    /// `given` made absolute with links and `..` kept, as notify names the files under it
    /// (it joins a relative folder to the current one).
    absolute: PathBuf,
    /// `given` with links and `..` resolved.
    canonical: PathBuf,
    identity: Option<(u64, u64)>,
}

impl Root {
    fn of(dir: &Path) -> Self {
        Root {
            given: dir.to_path_buf(),
            absolute: std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf()),
            canonical: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf()),
            identity: folder_identity(dir),
        }
    }
}

/// `path` from an event as the first pass names the same file: under the folder as the
/// user gave it, so one file always has one `path` cell. The absolute form is tried first:
/// the canonical one also prefixes the paths of a folder given as `lib/sub/..` (its
/// absolute form is `/…/lib/sub/..`), which then came out as `lib/sub/../sub/../a.wav`, and
/// never those of a folder given through a link, which came out absolute.
fn as_given(path: &Path, roots: &[Root]) -> PathBuf {
    // Every root's own spelling before any canonical one: one folder given twice (`link`
    // and `lib/sub/..`) has one watch, whose events carry the later root's spelling, which
    // the first root's canonical form also matches, giving `link/sub/../sub/b.wav`.
    let under = |prefix: fn(&Root) -> &Path| {
        roots.iter().find_map(|root| {
            let rest = path.strip_prefix(prefix(root)).ok()?;
            Some(root.given.join(rest))
        })
    };
    under(|root| &root.absolute)
        .or_else(|| under(|root| &root.canonical))
        .unwrap_or_else(|| path.to_path_buf())
}

/// `path` (under a root as given) without the links back up in it: the kernel's watch of a
/// folder is one per folder, and one reached again through a link to a folder above it
/// (`music/album/up -> ..`, which the walks give a loop row) named its files through the
/// link (`music/album/up/album/new.wav`, and files beside the watched folder too). Such a
/// path is spelled from its root the plain way; `None` where it leads out of the root.
fn without_loops(path: &Path, roots: &[Root]) -> Option<PathBuf> {
    let Some(root) = roots.iter().find(|root| path.starts_with(&root.given)) else {
        return Some(path.to_path_buf());
    };
    let rest = path.strip_prefix(&root.given).ok()?;
    let mut prefix = root.given.clone();
    let looped = rest.components().any(|part| {
        prefix.push(part);
        prefix.symlink_metadata().is_ok_and(|m| m.is_symlink())
            && prefix.is_dir()
            && batch::levels_above(Some(&root.canonical), &prefix).is_some()
    });
    if !looped {
        return Some(path.to_path_buf());
    }
    // Its folder is resolved and its name kept: the file may be gone (a removal), or be a
    // link itself (one made back up is the walk's loop row, by its own name).
    let real = path.parent()?.canonicalize().ok()?.join(path.file_name()?);
    let inside = real.strip_prefix(&root.canonical).ok()?;
    Some(root.given.join(inside))
}

/// The device and inode of the folder `dir` names, `None` when it names none.
fn folder_identity(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(dir).ok().filter(|m| m.is_dir())?;
    Some((meta.dev(), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use events::event;
    use notify::event::{AccessKind, AccessMode};

    /// A folder `lib` in `dir`, and a plan that watches it.
    fn watched_lib(dir: &Path) -> (PathBuf, Plan) {
        let lib = dir.join("lib");
        std::fs::create_dir(&lib).unwrap();
        let plan = Plan {
            dirs: vec![lib.clone()],
            ..plan(dir)
        };
        (lib, plan)
    }

    /// A plan over a cache in `dir`, for [`Session`]'s own rules.
    fn plan(dir: &Path) -> Plan {
        Plan {
            dirs: vec![dir.to_path_buf()],
            analyzer: Analyzer::new(analyzer_core::AnalyzerConfig::default()).unwrap(),
            cache: ResultCache::open(&dir.join("cache")).unwrap(),
            tagging: None,
            options: runner::RunOptions {
                workers: 1,
                timeout: None,
                schedule: runner::Schedule::CostliestFirst,
                progress: runner::ProgressMode::Off,
                cancel: Arc::new(std::sync::atomic::AtomicBool::new(false)),
            },
            test_gates: false,
        }
    }

    /// A file stopped by Ctrl-C while it was read gets no row, as in `analyze` (a
    /// `cancelled` row was printed just before watch stopped).
    #[test]
    fn a_file_stopped_by_ctrl_c_gets_no_row() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let mut session = Session::new(&plan);
        let path = dir.path().join("a.wav");
        std::fs::write(&path, b"RIFF").unwrap();
        let cancelled = FileResult {
            index: 0,
            path: path.clone(),
            status: Status::Cancelled,
            value: None,
            error: Some("decode: cancelled: stopped on request".into()),
            elapsed_s: 0.0,
            stages: Vec::new(),
        };
        let before = FileIdentity::of_path(&path).ok();
        let mut out = Vec::new();
        assert!(!session.finish(&cancelled, before, &mut out).unwrap());
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        let failed = FileResult {
            status: Status::Error,
            ..cancelled
        };
        assert!(session.finish(&failed, before, &mut out).unwrap());
        assert!(String::from_utf8_lossy(&out).contains(",error,"));
    }

    /// The `path` cells of `out`'s rows.
    fn row_paths(out: &[u8]) -> Vec<PathBuf> {
        String::from_utf8_lossy(out)
            .lines()
            .map(|line| PathBuf::from(line.split(',').next().unwrap()))
            .collect()
    }

    /// The kernel's queue overflowed (notify's `Rescan`): the events it dropped gave no
    /// rows. The folders are walked again and a row comes for each file new or changed
    /// since its row, the first pass's included; none for a file as its row left it.
    #[test]
    fn a_rescan_rows_the_files_new_or_changed_since_their_rows() {
        let dir = tempfile::tempdir().unwrap();
        let (lib, plan) = watched_lib(dir.path());
        let roots = [Root::of(&lib)];
        let (a, b, c) = (lib.join("a.wav"), lib.join("b.wav"), lib.join("c.wav"));
        std::fs::write(&a, b"RIFF a").unwrap();
        std::fs::write(&b, b"RIFF b").unwrap();
        let mut session = Session::new(&plan);
        let mut out = Vec::new();
        session
            .first_pass(&[a.clone(), b.clone()], &mut out)
            .unwrap();
        assert_eq!(row_paths(&out), [a.clone(), b.clone()]);
        // What the dropped events were about: b rewritten, c new.
        std::fs::write(&b, b"RIFF b, longer").unwrap();
        std::fs::write(&c, b"RIFF c").unwrap();
        let overflowed = Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan);
        let mut out = Vec::new();
        session.handle(&overflowed, &roots, &mut out).unwrap();
        assert_eq!(row_paths(&out), [b, c]);
        let mut out = Vec::new();
        session.handle(&overflowed, &roots, &mut out).unwrap();
        assert_eq!(row_paths(&out), Vec::<PathBuf>::new());
        // The events that come after the overflow find the files as their rows left them.
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        session
            .handle(&event(closed, &[&lib.join("c.wav")]), &roots, &mut out)
            .unwrap();
        assert_eq!(row_paths(&out), Vec::<PathBuf>::new());
    }

    /// A first-pass file opened for writing and closed unwritten: the kernel reports a
    /// closed write, and its row came a second time (only later rows were remembered).
    #[test]
    fn a_first_pass_file_closed_unwritten_prints_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let (lib, plan) = watched_lib(dir.path());
        let roots = [Root::of(&lib)];
        let a = lib.join("a.wav");
        std::fs::write(&a, b"RIFF a").unwrap();
        let mut session = Session::new(&plan);
        let mut out = Vec::new();
        session
            .first_pass(std::slice::from_ref(&a), &mut out)
            .unwrap();
        drop(std::fs::File::options().write(true).open(&a).unwrap());
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        let mut out = Vec::new();
        session
            .handle(&event(closed, &[&a]), &roots, &mut out)
            .unwrap();
        assert_eq!(row_paths(&out), Vec::<PathBuf>::new());
        std::fs::write(&a, b"RIFF a, written").unwrap();
        session
            .handle(&event(closed, &[&a]), &roots, &mut out)
            .unwrap();
        assert_eq!(row_paths(&out), [a]);
    }

    /// notify names a file under a watched folder as the folder made absolute, links and
    /// `..` kept: a later file's row names it under the folder as given, as the first pass
    /// does, whether the folder was given through a link or as `lib/sub/..`.
    #[test]
    fn a_path_through_a_link_back_up_is_named_the_plain_way_or_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("album/disc")).unwrap();
        std::fs::create_dir_all(lib.join("other")).unwrap();
        std::os::unix::fs::symlink("..", lib.join("album/up")).unwrap();
        std::os::unix::fs::symlink("../..", lib.join("album/disc/newup")).unwrap();
        let album = lib.join("album");
        let roots = [Root::of(&album)];
        let plain = album.join("disc/new.wav");
        assert_eq!(without_loops(&plain, &roots), Some(plain.clone()));
        let through = album.join("up/album/disc/new.wav");
        assert_eq!(without_loops(&through, &roots), Some(plain));
        // A link made back up keeps its own name, for its loop row.
        let link = album.join("up/album/disc/newup");
        assert_eq!(without_loops(&link, &roots), Some(album.join("disc/newup")));
        // Out of the watched folder through the link: no file of its.
        assert_eq!(without_loops(&album.join("up/other/x.wav"), &roots), None);
    }

    #[test]
    fn an_events_path_is_named_under_the_folder_as_given() {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        std::fs::create_dir_all(lib.join("sub")).unwrap();
        let up = lib.join("sub/..");
        assert_eq!(
            as_given(&up.join("new.wav"), &[Root::of(&up)]),
            up.join("new.wav"),
            "not lib/sub/../sub/../new.wav"
        );
        // `watch link` run in `dir`, where `link` leads to `lib`.
        std::os::unix::fs::symlink("lib", dir.path().join("link")).unwrap();
        let through_link = Root {
            given: PathBuf::from("link"),
            absolute: dir.path().join("link"),
            canonical: std::fs::canonicalize(&lib).unwrap(),
            identity: folder_identity(&lib),
        };
        let roots = [through_link];
        let name = |path: &Path| as_given(path, &roots);
        assert_eq!(
            name(&dir.path().join("link/new.wav")),
            Path::new("link/new.wav")
        );
        let canonical = std::fs::canonicalize(&lib).unwrap().join("new.wav");
        assert_eq!(name(&canonical), Path::new("link/new.wav"));
        // The same folder given twice, through the link and as `lib/sub/..`: its events
        // carry one root's own spelling, and keep it (not `link/sub/../sub/b.wav`).
        let roots = [roots[0].clone(), Root::of(&up)];
        assert_eq!(
            as_given(&up.join("sub/b.wav"), &roots),
            up.join("sub/b.wav")
        );
    }
}
