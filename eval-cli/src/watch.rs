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
//! when it is made, so it is read then, as the first pass reads links. So is a hard link
//! (`ln`: a regular file with more than one link) and a named pipe, socket or device, whose
//! row is the error `analyze` gives it (it is never opened for reading). Deleting a file prints
//! nothing (its cached row stays for a copy that comes back), even when the file goes
//! before its event is handled: an editor's temporary file renamed over the real one, a
//! file deleted right after it was written.
//!
//! An event that finds a file as its last row (or this command's tagging) left it is
//! nothing new and prints nothing: the tagged copy renamed over a file, a writer that
//! closes a file without writing, or another process closing its copy of a writer's handle
//! after the file was moved in (the kernel reports a close when the last copy goes). A file
//! whose metadata alone changed while it was read (a link made to it, a chmod) keeps its
//! row; one stopped by Ctrl-C gets none, as in `analyze`.
//!
//! A folder under the watched ones that cannot be read (no permission: a `lost+found`) is
//! left out ([`folders`]): the first pass gives it the error row `analyze` gives it, stderr
//! says that files added under it are not seen, and the rest of the library is watched.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::Duration;

use analyzer_core::batch::{self, Batch, FileResult, Status};
use analyzer_core::{Analyzer, StopSignal};
use anyhow::{Context, bail};
use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, RecursiveMode, Watcher};

use crate::cache::{Analyzed, CachedAnalyzer, FileIdentity, ResultCache};
use crate::flags;
use crate::record::{self, AnalyzeRecord};
use crate::report::export::{CsvLine, Exporter};
use crate::runner;
use crate::stdout::WriteContext;
use crate::tags::{self, KeyNotation, TagOptions, TagValues};
use crate::writers::Writers;

mod folders;

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
    let roots: Vec<Root> = args
        .dirs
        .iter()
        .map(|dir| Root {
            given: dir.clone(),
            resolved: std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone()),
            identity: folder_identity(dir),
        })
        .collect();
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
    let mut watcher = notify::recommended_watcher(move |event| {
        let _ = events.send(event);
    })
    .context("cannot watch folders")?;
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
    for error in &walk_errors {
        out.write_all(&record::line(
            &error.path,
            Status::Error,
            None,
            Some(&error.reason),
        ))
        .and_then(|()| out.flush())
        .stdout_context(STDOUT_FAILED)?;
    }
    if plan.options.progress == runner::ProgressMode::Jsonl {
        runner::emit_event(&serde_json::json!({"event": "watching", "folders": plan.dirs.len()}));
    }
    eprintln!(
        "eval-cli: watching {} folder{} for new and changed files (Ctrl-C stops)",
        plan.dirs.len(),
        if plan.dirs.len() == 1 { "" } else { "s" }
    );
    while !plan.options.cancel.load(Ordering::SeqCst) {
        let event = received.recv_timeout(STOP_POLL);
        // A folder moved away is still watched by its old name's watch descriptors (its
        // events would name files where they no longer are) and one deleted raises none:
        // either way nothing under it can be followed, so watch says so and stops.
        if let Some(root) = roots
            .iter()
            .find(|root| folder_identity(&root.given) != root.identity)
        {
            drop(watcher);
            bail!(
                "{} was moved or deleted while it was watched: nothing under it can be \
                 followed; run watch again where it is now",
                root.given.display()
            );
        }
        match event {
            Ok(Ok(event)) => {
                let mut files = complete_files(&event);
                // A folder moved in may hold a file still being copied into it.
                if event.paths.first().is_some_and(|path| path.is_dir()) {
                    files = not_being_written(files, &Writers::scan());
                }
                for path in files {
                    session.arrived(&as_given(&path, &roots), &mut out)?;
                }
            }
            Ok(Err(error)) => eprintln!("eval-cli: warning: watching: {error}"),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(watcher);
    eprintln!("eval-cli: watch stopped");
    Ok(ExitCode::from(runner::EXIT_CANCELLED))
}

/// The files an event says are complete and worth analysing: written and closed, or moved
/// in (a folder moved in: every audio file under it).
fn complete_files(event: &Event) -> Vec<PathBuf> {
    // A rename inside the folders is reported twice, `To` (the destination) and then
    // `Both` (source and destination): `To` alone stands for it, so it is read once.
    let Some(path) = event.paths.first() else {
        return Vec::new();
    };
    let complete = match event.kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write))
        | EventKind::Modify(ModifyKind::Name(RenameMode::To)) => true,
        EventKind::Create(_) => path.symlink_metadata().is_ok_and(|m| whole_when_made(&m)),
        _ => false,
    };
    if !complete {
        return Vec::new();
    }
    if path.is_dir() {
        batch::collect_audio_files(std::slice::from_ref(path)).0
    } else if batch::has_audio_extension(path) {
        vec![path.clone()]
    } else {
        Vec::new()
    }
}

/// `files` less those another process holds open for writing (`writers`): a copy still at
/// work, whose row comes when it closes the file (the kernel reports that close, and the
/// folder is watched by then). Read now, it gave a row of half the audio, and with
/// `--write-tags` its tagged copy replaced it, so the rest of the copy was lost.
fn not_being_written(files: Vec<PathBuf>, writers: &Writers) -> Vec<PathBuf> {
    files
        .into_iter()
        .filter(|path| {
            let held = std::fs::metadata(path).is_ok_and(|meta| writers.hold(&meta));
            if held {
                eprintln!(
                    "eval-cli: {}: another process has it open for writing; its row comes \
                     when that writer closes it",
                    path.display()
                );
            }
            !held
        })
        .collect()
}

/// Whether a file whose `Create` event is being handled is whole already, as no write
/// (no `Close(Write)`) follows its making: a symbolic link (`symlink(2)`), a second name
/// of a file (`link(2)`: a regular file with more than one link), and a named pipe, socket
/// or device (their error row, as `analyze` gives it; they are never opened for reading).
/// A folder is not: the files written into it bring their own events.
fn whole_when_made(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    let kind = meta.file_type();
    kind.is_symlink() || (kind.is_file() && meta.nlink() > 1) || !(kind.is_file() || kind.is_dir())
}

/// What a `file` event shows of a row: the row's own cells, as `analyze`'s events do.
fn shown(analyzed: &Analyzed) -> runner::Shown {
    runner::Shown {
        bpm: analyzed.bpm(),
        key: analyzed.key(),
        loudness_lufs: analyzed.record.loudness_lufs.parse().ok(),
    }
}

/// How many files [`Session::known`] holds at most: a watch runs for months, and an event
/// for a file forgotten this way only prints its row again.
const KNOWN_FILES: usize = 65_536;

/// Which files [`Session::finish`] notes in [`Session::known`]: a later file's row, or (in
/// the first pass, so that a large library is not held in memory) only a tagged file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remember {
    Row,
    TaggedOnly,
}

/// The state of one `watch`: the files it knows as they are, and how many files have had a
/// `file` event.
struct Session<'a> {
    plan: &'a Plan,
    files_seen: usize,
    /// Each file whose row a later event printed, or that this run tagged, with its
    /// identity then (after the tagging): an event that finds it so is nothing new (the
    /// tagged copy renamed over it; a writer that closes it without writing; a copy of a
    /// writer's handle that another process closed later). Cleared when it reaches
    /// [`KNOWN_FILES`].
    known: HashMap<PathBuf, FileIdentity>,
}

impl<'a> Session<'a> {
    /// A watch about to make its first pass: no file known yet.
    fn new(plan: &'a Plan) -> Self {
        Session {
            plan,
            files_seen: 0,
            known: HashMap::new(),
        }
    }

    fn job(&self) -> CachedAnalyzer<'_, Analyzer> {
        CachedAnalyzer::new(
            &self.plan.analyzer,
            Some(&self.plan.cache),
            self.plan.analyzer.config(),
        )
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
            self.finish(result, before, Remember::TaggedOnly, out)?;
        }
        Ok(())
    }

    /// A file that arrived complete: analysed (or served by the cache), its row printed.
    fn arrived(&mut self, path: &Path, out: &mut impl Write) -> anyhow::Result<()> {
        let stop = StopSignal::never().with_cancel_flag(Arc::clone(&self.plan.options.cancel));
        if self.plan.test_gates && !crate::gate::hold(path, &stop) {
            return Ok(());
        }
        let before = match FileIdentity::of_path(path) {
            // As its row or this run's tagging left it (the tagged copy renamed over it).
            Ok(identity) if self.known.get(path) == Some(&identity) => return Ok(()),
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
            && self.finish(&result, before, Remember::Row, out)?
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
    /// printed one; `before` is the file's identity before it was read. A file written to, replaced or deleted meanwhile gets
    /// no row: what was read may be half of each version (a copy truncates before it
    /// writes), and the write that changed it raises an event of its own, which brings
    /// its row once the writer is done.
    fn finish(
        &mut self,
        result: &FileResult<Analyzed>,
        before: Option<FileIdentity>,
        remember: Remember,
        out: &mut impl Write,
    ) -> anyhow::Result<bool> {
        if result.status == Status::Cancelled {
            return Ok(false);
        }
        if let Some(before) = before {
            match FileIdentity::of_path(&result.path) {
                // Its metadata alone may have changed (a link made to it, a chmod): what
                // was read is the file as it is.
                Ok(now) if now.same_content_as(&before) => {}
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
        if let (Remember::Row, Some(before)) = (remember, before) {
            self.remember(&result.path, before);
        }
        if let (Some(options), Some(values), Some(analysed)) =
            (&self.plan.tagging, TagValues::of_record(&record), before)
        {
            self.tag(&result.path, &analysed, &values, options);
        }
        Ok(true)
    }

    /// Notes `path` as it is now, `identity`.
    fn remember(&mut self, path: &Path, identity: FileIdentity) {
        if self.known.len() >= KNOWN_FILES && !self.known.contains_key(path) {
            self.known.clear();
        }
        self.known.insert(path.to_path_buf(), identity);
    }

    fn tag(
        &mut self,
        path: &Path,
        analysed: &FileIdentity,
        values: &TagValues,
        options: &TagOptions,
    ) {
        match tags::tag_analysed_file(path, analysed, values, options) {
            Ok(report) if report.written => {
                eprintln!("eval-cli: tagged {}: {}", path.display(), report.summary());
                if let Ok(tagged) = FileIdentity::of_path(path) {
                    self.remember(path, tagged);
                }
            }
            Ok(_) => {}
            Err(why) => eprintln!("eval-cli: not tagged: {}: {why}", path.display()),
        }
    }
}

/// A folder given to watch: as given, as the kernel names it (links resolved, absolute),
/// and its device and inode when the watch began.
struct Root {
    given: PathBuf,
    resolved: PathBuf,
    identity: Option<(u64, u64)>,
}

/// `path` from an event (named from the resolved folder) as the first pass names the same
/// file: under the folder as the user gave it, so one file always has one `path` cell.
fn as_given(path: &Path, roots: &[Root]) -> PathBuf {
    roots
        .iter()
        .find_map(|root| {
            let rest = path.strip_prefix(&root.resolved).ok()?;
            Some(root.given.join(rest))
        })
        .unwrap_or_else(|| path.to_path_buf())
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
    use notify::event::CreateKind;

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
        assert!(
            !session
                .finish(&cancelled, before, Remember::Row, &mut out)
                .unwrap()
        );
        assert!(out.is_empty(), "{}", String::from_utf8_lossy(&out));
        let failed = FileResult {
            status: Status::Error,
            ..cancelled
        };
        assert!(
            session
                .finish(&failed, before, Remember::Row, &mut out)
                .unwrap()
        );
        assert!(String::from_utf8_lossy(&out).contains(",error,"));
    }

    /// [`Session::remember`] holds at most [`KNOWN_FILES`] files, so a watch of a busy
    /// folder does not grow without end.
    #[test]
    fn known_files_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let plan = plan(dir.path());
        let mut session = Session::new(&plan);
        std::fs::write(dir.path().join("a.wav"), b"RIFF").unwrap();
        let identity = FileIdentity::of_path(&dir.path().join("a.wav")).unwrap();
        for i in 0..=KNOWN_FILES {
            session.remember(Path::new(&format!("f{i}.wav")), identity);
        }
        assert_eq!(session.known.len(), 1);
        session.remember(Path::new(&format!("f{KNOWN_FILES}.wav")), identity);
        assert_eq!(session.known.len(), 1);
    }

    fn event(kind: EventKind, paths: &[&Path]) -> Event {
        let mut event = Event::new(kind);
        for p in paths {
            event = event.add_path(p.to_path_buf());
        }
        event
    }

    #[test]
    fn only_closed_writes_and_arrivals_are_complete() {
        let dir = tempfile::tempdir().unwrap();
        let song = dir.path().join("a.wav");
        std::fs::write(&song, b"").unwrap();
        let closed = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(complete_files(&event(closed, &[&song])), vec![song.clone()]);
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(complete_files(&event(moved, &[&song])), vec![song.clone()]);
        // The second report of a rename inside the folders: `To` already stood for it.
        let both = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        let from = dir.path().join("old.wav");
        assert!(complete_files(&event(both, &[&from, &song])).is_empty());
        // Still being written: not yet.
        let created = EventKind::Create(CreateKind::File);
        assert!(complete_files(&event(created, &[&song])).is_empty());
        let data = EventKind::Modify(ModifyKind::Data(notify::event::DataChange::Any));
        assert!(complete_files(&event(data, &[&song])).is_empty());
        // Not audio, or this command's own tagging copy.
        let notes = dir.path().join(".a.wav.x1y2z3.tagging");
        assert!(complete_files(&event(closed, &[&notes])).is_empty());
    }

    /// `ln -s` raises only `Create`: a link is whole at once and is read then; a plain
    /// file's `Create` still waits for its writer to close it.
    #[test]
    fn a_link_made_in_the_folder_is_complete_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside.wav");
        std::fs::write(&outside, b"").unwrap();
        let link = dir.path().join("link.wav");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        let created = EventKind::Create(CreateKind::File);
        assert_eq!(
            complete_files(&event(created, &[&link])),
            vec![link.clone()]
        );
        assert!(complete_files(&event(created, &[&outside])).is_empty());
        // `ln` (a second name: two links) and `mkfifo` raise only `Create` too; a folder
        // made there brings its files' own events.
        let hard = dir.path().join("hard.wav");
        std::fs::hard_link(&outside, &hard).unwrap();
        assert_eq!(
            complete_files(&event(created, &[&hard])),
            vec![hard.clone()]
        );
        let pipe = dir.path().join("pipe.wav");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&pipe)
                .status()
                .unwrap()
                .success()
        );
        assert_eq!(
            complete_files(&event(created, &[&pipe])),
            vec![pipe.clone()]
        );
        let folder = dir.path().join("album.wav");
        std::fs::create_dir(&folder).unwrap();
        std::fs::write(folder.join("half.wav"), b"").unwrap();
        assert!(complete_files(&event(created, &[&folder])).is_empty());
    }

    #[test]
    fn a_folder_moved_in_gives_its_audio_files() {
        let dir = tempfile::tempdir().unwrap();
        let album = dir.path().join("album");
        std::fs::create_dir_all(album.join("cd2")).unwrap();
        for name in ["1.flac", "cd2/2.mp3", "cover.jpg"] {
            std::fs::write(album.join(name), b"").unwrap();
        }
        let moved = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(
            complete_files(&event(moved, &[&album])),
            [album.join("1.flac"), album.join("cd2/2.mp3")]
        );
    }
}
