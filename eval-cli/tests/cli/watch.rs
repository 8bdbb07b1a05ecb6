//! `eval-cli watch` as a user runs it: a first pass, then files as they arrive. The tests
//! write the files themselves and read the rows as they come (blocking reads on the
//! process's stdout, never a clock): a file still being written is not read, one moved in
//! is read at once, the cache is left current and, with `--write-tags`, the tags written
//! once.

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Lines, Write};
use std::path::Path;
use std::process::{Child, ChildStdout, Command, Stdio};

use crate::util::{click_flac, click_wav, click_wav_bytes, eval_cli, eval_cli_process, fifo};

/// A running `eval-cli watch DIR --cache CACHE ARGS`, its rows read line by line; killed
/// on drop.
struct Watching {
    child: Child,
    rows: Lines<BufReader<ChildStdout>>,
    /// What it said on stderr up to `watching 1 folder`, that line included.
    said: Vec<String>,
    /// What it says on stderr after that, line by line.
    later: std::sync::mpsc::Receiver<String>,
}

impl Watching {
    /// Starts the watch and reads its header and the `first` rows of its first pass, then
    /// waits until it says it is watching.
    fn start(dir: &Path, cache: &Path, args: &[&str], first: usize) -> (Self, Vec<String>) {
        Self::start_in(None, dir, cache, args, first)
    }

    /// [`Watching::start`] run from the folder `cwd` (for a `dir` relative to it).
    fn start_in(
        cwd: Option<&Path>,
        dir: &Path,
        cache: &Path,
        args: &[&str],
        first: usize,
    ) -> (Self, Vec<String>) {
        let mut command = eval_cli_process();
        if let Some(cwd) = cwd {
            command.current_dir(cwd);
        }
        Self::start_command(command, dir, cache, args, first)
    }

    /// [`Watching::start`] of `command` (eval-cli, set up as the test needs).
    fn start_command(
        mut command: Command,
        dir: &Path,
        cache: &Path,
        args: &[&str],
        first: usize,
    ) -> (Self, Vec<String>) {
        let mut child = command
            .arg("watch")
            .arg(dir)
            .arg("--cache")
            .arg(cache)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut rows = BufReader::new(child.stdout.take().unwrap()).lines();
        let header = rows.next().unwrap().unwrap();
        assert!(header.starts_with("path,bpm,"), "{header}");
        let stderr = child.stderr.take().unwrap();
        let (tell, later) = std::sync::mpsc::channel();
        let mut watching = Watching {
            child,
            rows,
            said: Vec::new(),
            later,
        };
        let pass: Vec<String> = (0..first).map(|_| watching.next_row()).collect();
        // Read until it says it watches, then drained on a thread (into `later`) so that
        // it never blocks on a full pipe. No clock.
        let mut lines = BufReader::new(stderr).lines();
        let said = &mut watching.said;
        let watches = lines.by_ref().map_while(Result::ok).any(|line| {
            let found = line.contains("watching 1 folder");
            said.push(line);
            found
        });
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tell.send(line);
            }
        });
        assert!(watches, "never said it watches: {:?}", watching.said);
        (watching, pass)
    }

    /// The next JSON line it prints on stderr after it said it watches (other lines
    /// skipped).
    fn next_event(&self) -> serde_json::Value {
        self.later
            .iter()
            .find_map(|line| serde_json::from_str(&line).ok())
            .expect("watch ended without another event")
    }

    fn next_row(&mut self) -> String {
        self.rows.next().expect("watch ended").unwrap()
    }

    /// SIGINT, as Ctrl-C: the rows it printed after those read so far, and its exit code.
    fn interrupt(self) -> (Vec<String>, Option<i32>) {
        let (rest, code, _) = self.interrupt_saying();
        (rest, code)
    }

    /// [`Watching::interrupt`], and what it said on stderr after it said it watches (the
    /// lines not read by [`Watching::next_event`]).
    fn interrupt_saying(mut self) -> (Vec<String>, Option<i32>, Vec<String>) {
        self.signal("-INT");
        let rest: Vec<String> = self.rows.by_ref().map(Result::unwrap).collect();
        let code = self.child.wait().unwrap().code();
        (rest, code, self.later.iter().collect())
    }

    /// Sends the signal `flag` (`-INT`, `-CONT`) to the watch.
    fn signal(&self, flag: &str) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([flag, &pid])
                .status()
                .unwrap()
                .success()
        );
    }

    /// SIGSTOP, and returns once every thread of the watch is stopped (`T` in its
    /// `/proc` stat), notify's reader of the kernel's events included: a state looked at
    /// until it holds, not a clock.
    fn stop(&self) {
        self.signal("-STOP");
        let tasks = format!("/proc/{}/task", self.child.id());
        let stopped = |task: std::io::Result<fs::DirEntry>| {
            let stat = task
                .and_then(|task| fs::read_to_string(task.path().join("stat")))
                .unwrap_or_default();
            // The state follows the command's name, which is in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        };
        while !fs::read_dir(&tasks).unwrap().all(stopped) {
            std::thread::yield_now();
        }
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tempo cell of a row.
fn bpm(row: &str) -> f64 {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(row.as_bytes());
    reader.records().next().unwrap().unwrap()[1]
        .parse()
        .unwrap()
}

#[test]
fn a_file_is_read_once_written_whole_and_one_moved_in_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&lib.join("there-120.wav"), 120.0, 4.0);
    let (mut watch, pass) = Watching::start(&lib, &cache, &["--workers", "1"], 1);
    assert!(
        pass[0].contains("there-120.wav") && pass[0].contains(",ok,"),
        "{pass:?}"
    );

    // A copy under way: half of the bytes written, the file still open.
    let bytes = click_wav_bytes(100.0, 4.0);
    let mut copying = File::create(lib.join("copying-100.wav")).unwrap();
    copying.write_all(&bytes[..bytes.len() / 2]).unwrap();
    copying.flush().unwrap();
    // A file moved in whole: its row comes first, so the half file was passed over (the
    // events are handled in the order they happened).
    click_wav(&dir.path().join("moved-150.wav"), 150.0, 4.0);
    fs::rename(dir.path().join("moved-150.wav"), lib.join("moved-150.wav")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("moved-150.wav"), "{row}");
    assert!((bpm(&row) - 150.0).abs() < 3.0, "{row}");

    // The copy ends: now it is read, whole.
    copying.write_all(&bytes[bytes.len() / 2..]).unwrap();
    drop(copying);
    let row = watch.next_row();
    assert!(
        row.contains("copying-100.wav") && row.contains(",ok,"),
        "{row}"
    );
    assert!((bpm(&row) - 100.0).abs() < 2.0, "{row}");

    // A rename inside the folder is reported twice by the kernel's events (the
    // destination, then both ends): one row.
    fs::rename(lib.join("moved-150.wav"), lib.join("renamed-150.wav")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("renamed-150.wav"), "{row}");

    let (rest, code) = watch.interrupt();
    assert_eq!((rest.len(), code), (0, Some(130)), "{rest:?}");
    // The cache holds all three: a run over the folder takes every row from it.
    let said = cache_report_of_analyze(&lib, &cache);
    assert!(said.contains("3 of 3 rows from the cache"), "{said}");
}

/// What `analyze LIB --cache CACHE` says on stderr (its cache report).
fn cache_report_of_analyze(lib: &Path, cache: &Path) -> String {
    let out = eval_cli()
        .args(["analyze", "--progress", "off"])
        .arg(lib)
        .arg("--cache")
        .arg(cache)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn write_tags_tags_a_file_once_its_own_rename_is_not_read_again_and_the_cache_knows_it() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    let (mut watch, _) = Watching::start(&lib, &cache, &["--write-tags"], 0);
    click_flac(&dir.path().join("a-120.flac"), 120.0, 4.0);
    fs::rename(dir.path().join("a-120.flac"), lib.join("a-120.flac")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("a-120.flac") && row.contains(",ok,"), "{row}");
    let (rest, code) = watch.interrupt();
    // One row: the tagged copy renamed over the file was known as this run's own.
    assert_eq!((rest, code), (vec![], Some(130)));
    let tagged = fs::read(lib.join("a-120.flac")).unwrap();
    let has = |text: &str| tagged.windows(text.len()).any(|w| w == text.as_bytes());
    assert!(
        has("BPM=120.00") || has("BPM=119.") || has("BPM=120."),
        "no BPM comment"
    );
    // The row is kept under the tagged bytes too (tags change no audio): the next run
    // serves it from the cache (it analysed every tagged file again).
    let said = cache_report_of_analyze(&lib, &cache);
    assert!(said.contains("1 of 1 rows from the cache"), "{said}");
}

/// A watched folder moved away (or deleted) cannot be followed: its events would name
/// files where they no longer are. watch stops with exit 2 (its error names the folder)
/// before it reads a file from the new place under the old name.
#[test]
fn a_watched_folder_moved_away_stops_the_watch() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    fs::create_dir(&music).unwrap();
    click_wav(&music.join("a.wav"), 120.0, 6.0);
    let cache = dir.path().join("cache");
    let (mut watching, _) = Watching::start(&music, &cache, &[], 1);
    let moved = dir.path().join("moved");
    fs::rename(&music, &moved).unwrap();
    click_wav(&moved.join("b.wav"), 100.0, 6.0);
    let rest: Vec<String> = watching.rows.by_ref().map(Result::unwrap).collect();
    assert!(rest.is_empty(), "rows after the move: {rest:?}");
    assert_eq!(watching.child.wait().unwrap().code(), Some(2));
}

/// A process limit that refuses the thread of the kernel's events (met through the
/// `EVAL_CLI_THREAD_ROOM` seam: root, who runs the tests, meets no `ulimit -u`) stops
/// `watch` at once with exit 2, saying so, before its first pass. notify panicked twice
/// and the process aborted.
#[test]
fn a_refused_thread_stops_the_watch_with_exit_2_before_its_first_pass() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    fs::create_dir(&music).unwrap();
    click_wav(&music.join("a.wav"), 120.0, 6.0);
    let out = eval_cli()
        .arg("watch")
        .arg(&music)
        .arg("--cache")
        .arg(dir.path().join("cache"))
        .args(["--progress", "off"])
        .env("EVAL_CLI_THREAD_ROOM", "0")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "error: cannot start: the system refused a thread (Resource temporarily \
             unavailable); raise the process limit (ulimit -u)\n"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(out.stdout.is_empty(), "no header, no row");
}

/// A folder copied in with its files (`cp -r album music/`): the files written into it
/// before the kernel watched it bring no event, and they were never read (18 of 100 files
/// of ten albums had no row). A folder made is walked; each file has one row, none twice
/// (a file closed after the watch was added is found by both, and printed once).
#[test]
fn files_written_into_a_new_folder_each_get_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let music = dir.path().join("music");
    fs::create_dir(&music).unwrap();
    let source = click_wav_bytes(120.0, 4.0);
    let cache = dir.path().join("cache");
    let (mut watching, _) = Watching::start(&music, &cache, &[], 0);
    let mut expected = std::collections::BTreeSet::new();
    for album in 0..3 {
        let folder = music.join(format!("album{album}"));
        fs::create_dir(&folder).unwrap();
        for track in 0..8 {
            let path = folder.join(format!("{track}.wav"));
            fs::write(&path, &source).unwrap();
            expected.insert(format!("{},", path.display()));
        }
    }
    // A file moved in last: the kernel's events come in order, so every copied file's
    // row (and any second one) comes before its row; a missed file never comes.
    click_wav(&dir.path().join("last.tmp"), 100.0, 4.0);
    let last = format!("{},", music.join("last.wav").display());
    fs::rename(dir.path().join("last.tmp"), music.join("last.wav")).unwrap();
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let row = watching.next_row();
        if row.starts_with(&last) {
            break;
        }
        let file = expected.iter().find(|e| row.starts_with(e.as_str()));
        let file = file.unwrap_or_else(|| panic!("a row of no copied file: {row}"));
        assert!(seen.insert(file.clone()), "a second row: {row}");
    }
    let missed: Vec<&String> = expected.difference(&seen).collect();
    assert!(missed.is_empty(), "no row for {missed:?}");
}

/// A folder given as a relative path: the rows of files that arrive name them as the first
/// pass names the files already there (under the folder as given), so one file always has
/// one `path` cell.
#[test]
fn rows_name_files_under_the_folder_as_given() {
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("music")).unwrap();
    click_wav(&dir.path().join("music/a.wav"), 120.0, 4.0);
    let cache = dir.path().join("cache");
    let (mut watching, pass) =
        Watching::start_in(Some(dir.path()), Path::new("music"), &cache, &[], 1);
    assert!(pass[0].starts_with("music/a.wav,"), "{pass:?}");
    click_wav(&dir.path().join("b.tmp"), 100.0, 4.0);
    fs::rename(dir.path().join("b.tmp"), dir.path().join("music/b.wav")).unwrap();
    let row = watching.next_row();
    assert!(row.starts_with("music/b.wav,"), "{row}");
}

/// A file that is gone before watch handles its event (deleted right after it was
/// written, or an editor's temporary file renamed over the real one) prints no row: it
/// printed an error row, `open: unreadable: No such file or directory`. A gate (a file
/// named `gate*`, `--test-gates`) holds the event loop while the folder changes, so the
/// order is certain without a clock.
#[test]
fn a_file_gone_before_its_event_is_handled_prints_no_row() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    // A named pipe: the gate's write of it waits for this test's read.
    let held = fifo(&lib.join("gate.wav.held"));
    let (mut watch, _) = Watching::start(&lib, &cache, &["--test-gates"], 0);
    click_wav(&dir.path().join("gate.wav"), 120.0, 4.0);
    fs::rename(dir.path().join("gate.wav"), lib.join("gate.wav")).unwrap();
    // watch holds on the gate: the events below wait behind it.
    fs::read(&held).unwrap();
    click_wav(&lib.join("gone.wav"), 100.0, 4.0);
    fs::remove_file(lib.join("gone.wav")).unwrap();
    // An editor's save: a temporary file written, then renamed over the real one.
    click_wav(&lib.join(".song.wav.tmp.wav"), 100.0, 4.0);
    fs::rename(lib.join(".song.wav.tmp.wav"), lib.join("song.wav")).unwrap();
    File::create(lib.join("gate.wav.open")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("gate.wav"), "{row}");
    let row = watch.next_row();
    assert!(
        row.starts_with(&format!("{},", lib.join("song.wav").display())) && row.contains(",ok,"),
        "{row}"
    );
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
}

/// A link made in the folder (`ln -s`, here to a file outside it), a second name for a
/// file (`ln`) and a named pipe (`mkfifo`) raise only the kernel's `Create` event: they got
/// no row, although `analyze` gives each one. The pipe's row is the error `analyze` gives
/// it (it is never opened for reading).
#[test]
fn a_link_made_in_the_folder_gets_its_row() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&dir.path().join("outside-100.wav"), 100.0, 4.0);
    let (mut watch, _) = Watching::start(&lib, &cache, &[], 0);
    std::os::unix::fs::symlink(dir.path().join("outside-100.wav"), lib.join("link.wav")).unwrap();
    fs::hard_link(dir.path().join("outside-100.wav"), lib.join("linked.wav")).unwrap();
    fifo(&lib.join("pipe.wav"));
    // A file moved in after them: their rows must come first (events in order).
    click_wav(&dir.path().join("after.wav"), 120.0, 4.0);
    fs::rename(dir.path().join("after.wav"), lib.join("after.wav")).unwrap();
    for name in ["link.wav", "linked.wav"] {
        let row = watch.next_row();
        assert!(row.contains(name) && row.contains(",ok,"), "{row}");
        assert!((bpm(&row) - 100.0).abs() < 2.0, "{row}");
    }
    let row = watch.next_row();
    assert!(
        row.contains("pipe.wav") && row.contains(",error,") && row.contains("named pipe"),
        "{row}"
    );
    let row = watch.next_row();
    assert!(row.contains("after.wav"), "{row}");
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
}

/// A folder under the watched one that cannot be read (a `lost+found`, another user's
/// folder; here mode 000) stopped watch before it started (exit 2, `cannot watch LIB:
/// Permission denied`), with no row. Now it is the row `analyze` gives it, stderr says
/// files added under it are not seen, and the rest is watched: a file moved into a
/// subfolder gets its row. Root reads any folder, so as root the watch runs as `nobody`
/// (uid 65534), for whom the folder is locked; the test is skipped when `nobody` cannot
/// run the binary. In the first pass a link to nothing with an audio name is an error row
/// in its sorted place (it came after every file's), one without is passed over.
#[cfg(unix)]
#[test]
fn a_folder_that_cannot_be_read_is_a_row_and_the_rest_is_watched() {
    use std::os::unix::fs::{PermissionsExt, chown, symlink};
    use std::os::unix::process::CommandExt;
    const NOBODY: u32 = 65534;
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    let locked = lib.join("locked");
    fs::create_dir_all(&locked).unwrap();
    fs::create_dir_all(lib.join("sub")).unwrap();
    click_wav(&lib.join("b-120.wav"), 120.0, 4.0);
    click_wav(&locked.join("in.wav"), 120.0, 4.0);
    symlink(dir.path().join("gone"), lib.join("a-gone.wav")).unwrap();
    symlink(dir.path().join("gone.txt"), lib.join("notes.txt")).unwrap();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    let cache = dir.path().join("cache");
    let mut command = eval_cli_process();
    if fs::read_dir(&locked).is_ok() {
        let as_nobody = Command::new(env!("CARGO_BIN_EXE_eval-cli"))
            .arg("--version")
            .uid(NOBODY)
            .gid(NOBODY)
            .output();
        if !as_nobody.is_ok_and(|out| out.status.success()) {
            eprintln!("skipped: root reads any folder, and nobody cannot run eval-cli here");
            return;
        }
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir(&cache).unwrap();
        chown(&cache, Some(NOBODY), Some(NOBODY)).unwrap();
        command.uid(NOBODY).gid(NOBODY);
    }
    let (mut watch, pass) = Watching::start_command(command, &lib, &cache, &[], 3);
    let in_lib = |name: &str| format!("{},", lib.join(name).display());
    assert!(
        pass[0].starts_with(&in_lib("a-gone.wav")) && pass[0].contains(",error,open: unreadable"),
        "{pass:?}"
    );
    assert!(
        pass[1].starts_with(&in_lib("b-120.wav")) && pass[1].contains(",ok,"),
        "{pass:?}"
    );
    assert!(
        pass[2].starts_with(&in_lib("locked")) && pass[2].contains(",error,walk: unreadable"),
        "{pass:?}"
    );
    let warned = format!("cannot watch {}", locked.display());
    assert!(
        watch.said.iter().any(|l| l.contains(&warned)),
        "{:?}",
        watch.said
    );
    click_wav(&dir.path().join("new-100.wav"), 100.0, 4.0);
    fs::rename(dir.path().join("new-100.wav"), lib.join("sub/new-100.wav")).unwrap();
    let row = watch.next_row();
    assert!(
        row.starts_with(&in_lib("sub/new-100.wav")) && row.contains(",ok,"),
        "{row}"
    );
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();
}

/// `--progress jsonl`: each `file` event of the first pass shows the row's tempo and key,
/// as `analyze --progress jsonl` does (they were `null`).
#[test]
fn jsonl_file_events_carry_the_rows_tempo_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let spec = synth_music::presets::four_on_the_floor_128().with_seconds(8.0);
    let samples = synth_music::render(&spec);
    synth_music::write_flac(
        &lib.join("song.flac"),
        &samples,
        spec.sample_rate,
        spec.channels,
    )
    .unwrap();
    let cache = dir.path().join("cache");
    let (watch, pass) = Watching::start(&lib, &cache, &["--progress", "jsonl"], 1);
    let cells: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(pass[0].as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    let (bpm_cell, key_cell) = (&cells[1], &cells[11]);
    assert!(!bpm_cell.is_empty() && !key_cell.is_empty(), "{pass:?}");
    let event: serde_json::Value = watch
        .said
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .find(|event| event["event"] == "file")
        .unwrap_or_else(|| panic!("no file event: {:?}", watch.said));
    let shown = event["bpm"].as_f64().expect("bpm in the event");
    assert!(
        (shown - bpm_cell.parse::<f64>().unwrap()).abs() < 0.0005,
        "{event} vs {bpm_cell}"
    );
    assert_eq!(event["key"].as_str(), Some(key_cell.as_str()), "{event}");
}

/// `--progress jsonl` keeps going after the first pass: a `watching` event when the first
/// pass is done, then a `file` event for each later row, with its tempo and key, its
/// index and `done` counting on from the first pass's and no `total` (there is none).
/// Before, files that arrived later had rows but no events.
#[test]
fn jsonl_events_come_for_files_that_arrive_later() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    click_wav(&lib.join("first-120.wav"), 120.0, 8.0);
    let cache = dir.path().join("cache");
    let (mut watch, _pass) = Watching::start(&lib, &cache, &["--progress", "jsonl"], 1);
    let events: Vec<serde_json::Value> = watch
        .said
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        kinds,
        ["started", "file", "finished", "cache", "watching"],
        "{events:?}"
    );
    assert_eq!(events[4]["folders"], 1, "{events:?}");

    click_wav(&dir.path().join("later-150.wav"), 150.0, 8.0);
    fs::rename(dir.path().join("later-150.wav"), lib.join("later-150.wav")).unwrap();
    let row = watch.next_row();
    let event = watch.next_event();
    assert_eq!(event["event"], "file", "{event}");
    assert_eq!(
        event["path"].as_str(),
        Some(lib.join("later-150.wav").to_str().unwrap()),
        "{event}"
    );
    assert_eq!(event["status"], "ok", "{event}");
    assert!(
        (event["bpm"].as_f64().expect("bpm in the event") - bpm(&row)).abs() < 0.0005,
        "{event} vs {row}"
    );
    let key_cell = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(row.as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap()[11]
        .to_string();
    assert_eq!(
        event["key"].as_str().unwrap_or_default(),
        key_cell,
        "{event} vs {row}"
    );
    assert_eq!(
        (&event["index"], &event["done"], &event["total"]),
        (
            &serde_json::json!(1),
            &serde_json::json!(2),
            &serde_json::Value::Null
        ),
        "{event}"
    );
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
}

/// An event that finds a file as its row left it prints nothing: a writer that opens a
/// file and closes it without writing (the kernel reports a closed write all the same),
/// here after the file was moved in and read, and a file of the first pass. Before, the
/// file's row came twice.
#[test]
fn a_file_closed_unwritten_is_not_printed_again() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&lib.join("first-100.wav"), 100.0, 4.0);
    let (mut watch, _) = Watching::start(&lib, &cache, &[], 1);
    click_wav(&dir.path().join("a-120.wav"), 120.0, 4.0);
    fs::rename(dir.path().join("a-120.wav"), lib.join("a-120.wav")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("a-120.wav") && row.contains(",ok,"), "{row}");
    // A file of the first pass too: its row came again (only later rows were known).
    for name in ["a-120.wav", "first-100.wav"] {
        drop(File::options().write(true).open(lib.join(name)).unwrap());
    }
    click_wav(&dir.path().join("b-100.wav"), 100.0, 4.0);
    fs::rename(dir.path().join("b-100.wav"), lib.join("b-100.wav")).unwrap();
    let row = watch.next_row();
    assert!(row.contains("b-100.wav"), "{row}");
    // Written to for real, it is new: its row comes again.
    click_wav(&lib.join("a-120.wav"), 150.0, 4.0);
    let row = watch.next_row();
    assert!(
        row.contains("a-120.wav") && (bpm(&row) - 150.0).abs() < 2.0,
        "{row}"
    );
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
}

/// A file still being copied when watch starts (its writer has it open, paused halfway)
/// is left out of the first pass: its row, and with `--write-tags` its tags, come when the
/// writer closes it. Before, the first pass read half the audio, and the tagged copy
/// renamed over the file took the place of the one being written: the rest of the copy
/// went to a file no name held, and the library kept the half.
#[test]
fn a_file_still_being_written_waits_for_its_writer() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_flac(&dir.path().join("whole.flac"), 120.0, 6.0);
    let whole = fs::read(dir.path().join("whole.flac")).unwrap();
    let copying = lib.join("copying.flac");
    let mut writer = File::create(&copying).unwrap();
    writer.write_all(&whole[..whole.len() / 2]).unwrap();
    writer.flush().unwrap();
    let (mut watch, _) = Watching::start(&lib, &cache, &["--write-tags"], 0);
    let waits = format!(
        "{}: another process has it open for writing",
        copying.display()
    );
    assert!(
        watch.said.iter().any(|line| line.contains(&waits)),
        "{:?}",
        watch.said
    );
    writer.write_all(&whole[whole.len() / 2..]).unwrap();
    drop(writer);
    let row = watch.next_row();
    let cells: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(row.as_bytes())
        .records()
        .next()
        .unwrap()
        .unwrap()
        .iter()
        .map(String::from)
        .collect();
    assert!(row.contains("copying.flac") && cells[9] == "ok", "{row}");
    // All of it: half would be about 3 s.
    assert!(
        (cells[5].parse::<f64>().unwrap() - 6.0).abs() < 0.2,
        "{row}"
    );
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
    let tagged = fs::read(&copying).unwrap();
    assert!(tagged.len() > whole.len(), "{} bytes", tagged.len());
    assert!(tagged.windows(4).any(|w| w == b"BPM="), "no BPM comment");
}

/// A folder given through a link (`watch link`, `link` leading to `lib`) or as
/// `lib/sub/..`: the first pass named its files `link/a.wav` and `lib/sub/../a.wav`, a
/// later file's row `/tmp/…/link/new.wav` (absolute) and `lib/sub/../sub/../new.wav`.
/// Every row names its file under the folder as given.
#[test]
fn rows_name_files_under_a_folder_given_through_a_link_or_as_sub_dotdot() {
    for given in ["link", "lib/sub/.."] {
        let dir = tempfile::tempdir().unwrap();
        let lib = dir.path().join("lib");
        fs::create_dir_all(lib.join("sub")).unwrap();
        std::os::unix::fs::symlink("lib", dir.path().join("link")).unwrap();
        click_wav(&lib.join("a.wav"), 120.0, 4.0);
        let cache = dir.path().join("cache");
        let (mut watch, pass) =
            Watching::start_in(Some(dir.path()), Path::new(given), &cache, &[], 1);
        assert!(pass[0].starts_with(&format!("{given}/a.wav,")), "{pass:?}");
        click_wav(&dir.path().join("new.tmp"), 100.0, 4.0);
        fs::rename(dir.path().join("new.tmp"), lib.join("new.wav")).unwrap();
        let row = watch.next_row();
        assert!(row.starts_with(&format!("{given}/new.wav,")), "{row}");
        let (rest, code) = watch.interrupt();
        assert_eq!((rest, code), (vec![], Some(130)));
    }
}

/// The kernel's event queue overflowed (here the watch is stopped with SIGSTOP while more
/// events come than inotify's `max_queued_events` holds, as a copy of thousands of files
/// does to a busy watch): the dropped events' files got no row, and nothing said so. Now
/// stderr warns and the folders are walked again: a row for each file new or changed
/// since its row (one moved in, one rewritten), none for one as its row left it. A file
/// moved in after the overflow marks the end of those rows: its row comes last, from the
/// walk (it is last in its order; its own event then finds it printed) or from its event.
#[test]
fn an_overflowed_event_queue_rescans_the_folders() {
    let queue: usize = fs::read_to_string("/proc/sys/fs/inotify/max_queued_events")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(usize::MAX);
    if queue > 100_000 {
        eprintln!("skipped: inotify's queue holds {queue} events, too many to overflow here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&lib.join("a-120.wav"), 120.0, 4.0);
    click_wav(&lib.join("b-120.wav"), 120.0, 4.0);
    click_wav(&dir.path().join("c-100.wav"), 100.0, 4.0);
    click_wav(&dir.path().join("z-after.wav"), 120.0, 4.0);
    let (mut watch, _) = Watching::start(&lib, &cache, &[], 2);
    watch.stop();
    // One event at least each (a file made; its open and close too): more than fit.
    for i in 0..=queue {
        File::create(lib.join(format!("note-{i}.txt"))).unwrap();
    }
    fs::rename(dir.path().join("c-100.wav"), lib.join("c-100.wav")).unwrap();
    click_wav(&lib.join("b-120.wav"), 150.0, 4.0);
    watch.signal("-CONT");
    fs::rename(dir.path().join("z-after.wav"), lib.join("z-after.wav")).unwrap();
    // Up to the last file's row, so that rows missing fail the test rather than hang it.
    let mut rows = vec![watch.next_row()];
    while !rows.last().unwrap().contains("z-after.wav") {
        rows.push(watch.next_row());
    }
    let names: Vec<&str> = rows
        .iter()
        .map(|row| row.split(',').next().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["b-120.wav", "c-100.wav", "z-after.wav"], "{rows:?}");
    assert!((bpm(&rows[0]) - 150.0).abs() < 2.0, "{rows:?}");
    let (rest, code, said) = watch.interrupt_saying();
    assert_eq!((rest, code), (vec![], Some(130)));
    let warned = "warning: the kernel's event queue overflowed; rescanning the folders";
    assert!(said.iter().any(|line| line.contains(warned)), "{said:?}");
}

/// The cache folder deleted while watch runs: the rows stored from then on go with the
/// deleted store. watch said nothing (`analyze` warns); now it warns once, after the next
/// file, not at every file, and Ctrl-C still stops it with exit status 130.
#[test]
fn a_cache_removed_while_watching_is_warned_about_once() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir(&lib).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&lib.join("a.wav"), 120.0, 4.0);
    let (mut watch, _) = Watching::start(&lib, &cache, &[], 1);
    let arrives = |watch: &mut Watching, name: &str, bpm: f64| {
        click_wav(&dir.path().join(name), bpm, 4.0);
        fs::rename(dir.path().join(name), lib.join(name)).unwrap();
        let row = watch.next_row();
        assert!(row.contains(name) && row.contains(",ok,"), "{row}");
    };
    arrives(&mut watch, "b.wav", 100.0);
    fs::remove_dir_all(&cache).unwrap();
    arrives(&mut watch, "c.wav", 110.0);
    arrives(&mut watch, "d.wav", 130.0);
    let (rest, code, said) = watch.interrupt_saying();
    assert_eq!((rest, code), (vec![], Some(130)));
    let warnings: Vec<usize> = (0..said.len())
        .filter(|&i| said[i].contains("was removed or replaced while watch ran"))
        .collect();
    let stopped = said.iter().position(|line| line.contains("watch stopped"));
    assert!(
        warnings.len() == 1 && stopped.is_some_and(|stopped| warnings[0] < stopped),
        "{said:?}"
    );
}

/// A link made in the library to a folder that holds it (`ln -s .. lib/sub/up`): its
/// event named every file of the library again under the link (`lib/sub/up/a.wav`), a
/// second row each. The first pass's walk gives such a link one error row (`walk: loop`),
/// and so does its event now.
#[test]
fn a_link_back_up_made_while_watching_is_one_error_row() {
    let dir = tempfile::tempdir().unwrap();
    let lib = dir.path().join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    let cache = dir.path().join("cache");
    click_wav(&lib.join("a.wav"), 120.0, 4.0);
    let (mut watch, _) = Watching::start(&lib, &cache, &[], 1);
    std::os::unix::fs::symlink("..", lib.join("sub/up")).unwrap();
    // Moved in after the link: its row comes after the link's.
    click_wav(&dir.path().join("z-after.wav"), 100.0, 4.0);
    fs::rename(dir.path().join("z-after.wav"), lib.join("z-after.wav")).unwrap();
    let row = watch.next_row();
    let looped = format!("{},", lib.join("sub/up").display());
    assert!(
        row.starts_with(&looped) && row.contains(",error,walk: loop: link points back"),
        "{row}"
    );
    let row = watch.next_row();
    assert!(row.contains("z-after.wav"), "{row}");
    let (rest, code) = watch.interrupt();
    assert_eq!((rest, code), (vec![], Some(130)));
}
