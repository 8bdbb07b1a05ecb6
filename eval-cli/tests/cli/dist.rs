//! `eval-cli dist` against a real broker: each test starts its own `redis-server` on a free
//! loopback port (an append-only file in a temp dir) and stops it by its pid, also when the
//! test panics. Without `redis-server` installed the tests fail and say how to install it: CI
//! installs it, so these tests always run there.
//!
//! Nothing here reads a clock: the server's readiness is its own log line, the workers say
//! what they do as JSON lines (`--events`), and a file stays "mid-analysis" for as long as
//! the test wants because it is a named pipe the test writes into when it chooses.
//! One file over 500 lines: the tests share the workers, the held and watched children and
//! the clogged pipe below, which only the broker tests need.

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output, Stdio};
use std::sync::mpsc;
use std::thread;

use crate::util::broker::{RedisServer, dist, merged_bytes};
use crate::util::events::{EventfulWorker, WorkerProcess, stderr_channel};
use crate::util::service::{assert_lines, http_client, reply, scrape};
use crate::util::{assert_ok, click_wav, eval_cli, eval_cli_process, fifo, write_tracks};

/// `count` click tracks in `dir/lib` (one in a subfolder, one that is not audio at all),
/// each `seconds` long.
fn library(dir: &Path, count: usize, seconds: f64) -> PathBuf {
    let lib = dir.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    write_tracks(
        &lib,
        (0..count).map(|i| {
            let bpm = 90.0 + 7.0 * i as f64;
            let sub = if i % 3 == 0 { "sub/" } else { "" };
            (format!("{sub}t{i:02}_{bpm:.0}.wav"), bpm, seconds)
        }),
    );
    // Recognised by its extension, refused by content: an error row in both paths.
    fs::write(lib.join("broken.wav"), b"not audio").unwrap();
    lib
}

/// `dist work` for `job` with the flags `rest`, its stdout discarded.
fn worker_command(server: &RedisServer, job: &str, rest: &[&str]) -> Process {
    let mut command = eval_cli_process();
    command
        .args(["dist", "work", "--broker", &server.url(), "--job", job])
        .args(rest)
        .stdout(Stdio::null());
    command
}

fn spawn_worker(server: &RedisServer, job: &str, rest: &[&str]) -> WorkerProcess {
    let child = worker_command(server, job, rest)
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    WorkerProcess(child)
}

/// The bytes of `eval-cli analyze --out` of `lib`.
fn analyze_bytes(lib: &Path, dir: &Path) -> Vec<u8> {
    let out = dir.join("analyze.csv");
    let output = eval_cli()
        .arg("analyze")
        .arg(lib)
        .arg("--out")
        .arg(&out)
        .args(["--workers", "2", "--progress", "off"])
        .output()
        .unwrap();
    // 1: the broken file is a failed row.
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    fs::read(out).unwrap()
}

fn status(server: &RedisServer, job: &str) -> serde_json::Value {
    let output = dist(server, "status", job, &["--json"]);
    assert_ok(&output, "dist status");
    serde_json::from_slice(&output.stdout).unwrap()
}

/// The entries `consumer` holds, by input index.
fn held_by(status: &serde_json::Value, consumer: &str) -> Vec<u64> {
    status["consumers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"] == consumer)
        .flat_map(|c| c["files"].as_array().unwrap().iter())
        .map(|f| f["index"].as_u64().unwrap())
        .collect()
}

/// Hands the next `count` entries of job `j` to `consumer`, a worker that never
/// acknowledges them (as one killed with SIGKILL leaves them).
fn deliver(server: &RedisServer, consumer: &str, count: usize) {
    let stream = server.run_key("j", "stream");
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&["GROUP", "workers", consumer, "COUNT", &count.to_string()])
        .arg(&["STREAMS", &stream, ">"])
        .query(&mut server.connection())
        .unwrap();
}

/// `consumer` claims the entries `ids` of job `j`, with the `XCLAIM` options `options`
/// (`IDLE` to make a claim look stale without waiting, `JUSTID` to leave the delivery
/// count as it is).
fn claim(server: &RedisServer, consumer: &str, ids: &[&str], options: &[&str]) {
    let stream = server.run_key("j", "stream");
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[stream.as_str(), "workers", consumer, "0"])
        .arg(ids)
        .arg(options)
        .query(&mut server.connection())
        .unwrap();
}

fn submit(server: &RedisServer, job: &str, lib: &Path) -> Output {
    dist(server, "submit", job, &[lib.to_str().unwrap()])
}

/// A broker, a temp folder and its [`library`] of `count` three-second tracks, submitted as
/// job `j`.
fn submitted_library(count: usize) -> (RedisServer, tempfile::TempDir, PathBuf) {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), count, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");
    (server, dir, lib)
}

#[test]
fn two_workers_then_merge_give_the_bytes_of_analyze() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 8, 6.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");

    let mut a = spawn_worker(&server, "j", &["--workers", "1"]);
    let mut b = spawn_worker(&server, "j", &["--workers", "1"]);
    assert!(a.0.wait().unwrap().success());
    assert!(b.0.wait().unwrap().success());

    let s = status(&server, "j");
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(s["total"], 9, "{s}");
    assert_eq!(s["failed"], 1, "{s}");
    assert_eq!(s["in_flight"], 0, "{s}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
    // `--out` naming one of the job's own audio files is refused, and the file kept.
    let song = fs::read_dir(&lib)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "wav"))
        .unwrap();
    let before = fs::read(&song).unwrap();
    let refused = dist(&server, "merge", "j", &["--out", song.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("input"),
        "{refused:?}"
    );
    assert_eq!(fs::read(&song).unwrap(), before);
}

/// The slots of a worker wait for new entries a day long here: the worker must still exit
/// as soon as the job is complete (the slot that completes it wakes the others), not when
/// their waits run out. The guard only stops a broken build from hanging the suite.
#[test]
fn a_worker_exits_when_its_job_is_complete_not_when_its_slots_stop_waiting() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 5, 4.0);
    assert_ok(&submit(&server, "prompt", &lib), "dist submit");

    let a_day_ms = "86400000";
    let output = eval_cli()
        .args(["dist", "work", "--broker", &server.url(), "--job", "prompt"])
        .args(["--workers", "3", "--read-block-ms", a_day_ms])
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap();
    assert_ok(&output, "dist work");
    assert_eq!(
        merged_bytes(&server, "prompt", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

#[test]
fn submit_twice_is_idempotent_and_another_manifest_is_refused() {
    let (server, _dir, lib) = submitted_library(3);
    let stream = server.run_key("j", "stream");
    assert_ok(&submit(&server, "j", &lib), "second dist submit");
    // The same job keeps its run (and so its rows).
    assert_eq!(server.run_key("j", "stream"), stream);
    let mut con = server.connection();
    let len: usize = redis::cmd("XLEN").arg(&stream).query(&mut con).unwrap();
    assert_eq!(len, 4);

    let other = dist(
        &server,
        "submit",
        "j",
        &["--min-bpm", "60", lib.to_str().unwrap()],
    );
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("another manifest"),
        "{other:?}"
    );
    fs::write(lib.join("new.wav"), b"x").unwrap();
    let grown = submit(&server, "j", &lib);
    assert_eq!(grown.status.code(), Some(2), "{grown:?}");
}

#[test]
fn a_worker_with_other_settings_is_refused() {
    let (server, _dir, _lib) = submitted_library(2);
    let refused = dist(&server, "work", "j", &["--min-bpm", "60", "--workers", "1"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refusing to mix results"),
        "{refused:?}"
    );
    assert_eq!(status(&server, "j")["done"], 0);
}

/// A worker started without analyzer flags takes the job's settings from its manifest;
/// given the job's own flags it runs too; given others it refuses (above).
#[test]
fn a_worker_without_analyzer_flags_takes_the_jobs_settings() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 4, 3.0);
    let narrow = ["--max-bpm", "100", "--analysis-seconds", "0"];
    let mut args: Vec<&str> = narrow.to_vec();
    args.push(lib.to_str().unwrap());
    assert_ok(&dist(&server, "submit", "j", &args), "dist submit");
    let worker = dist(&server, "work", "j", &["--workers", "1"]);
    assert!(worker.status.success(), "{worker:?}");
    let out = dir.path().join("narrow.csv");
    let analyzed = eval_cli()
        .arg("analyze")
        .arg(&lib)
        .args(narrow)
        .arg("--out")
        .arg(&out)
        .args(["--progress", "off"])
        .output()
        .unwrap();
    assert_eq!(analyzed.status.code(), Some(1), "{analyzed:?}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        fs::read(&out).unwrap()
    );
    // The default range would have read some of these tracks above 100 BPM.
    assert_ne!(fs::read(&out).unwrap(), analyze_bytes(&lib, dir.path()));
    let mut same: Vec<&str> = narrow.to_vec();
    same.extend(["--workers", "1"]);
    assert!(dist(&server, "work", "j", &same).status.success());
}

#[test]
fn a_killed_worker_loses_nothing_and_the_merge_is_identical() {
    let (server, dir, lib) = submitted_library(6);

    // What a worker killed with SIGKILL leaves behind: entries it was delivered and never
    // acknowledged, idle since it died (set to a minute, so no clock is raced).
    deliver(&server, "dead", 3);
    claim(
        &server,
        "dead",
        &["0-1", "0-2", "0-3"],
        &["IDLE", "60000", "JUSTID"],
    );
    let before = status(&server, "j");
    assert_eq!(held_by(&before, "dead").len(), 3, "{before}");

    let mut rescuer = spawn_worker(&server, "j", &["--workers", "2", "--reclaim-after", "1"]);
    assert!(rescuer.0.wait().unwrap().success());
    let s = status(&server, "j");
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(s["in_flight"], 0, "{s}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

#[test]
fn an_entry_that_killed_three_workers_becomes_an_error_row() {
    let (server, dir, _lib) = submitted_library(2);

    // Three workers that died holding the first entry: one delivery, then two claims, the
    // last one leaving it idle for a minute.
    deliver(&server, "ghost-1", 1);
    claim(&server, "ghost-2", &["0-1"], &[]);
    claim(&server, "ghost-3", &["0-1"], &["IDLE", "60000"]);
    let s = status(&server, "j");
    assert_eq!(s["consumers"][0]["files"][0]["deliveries"], 3, "{s}");

    let worker = dist(
        &server,
        "work",
        "j",
        &["--workers", "1", "--reclaim-after", "1"],
    );
    assert_ok(&worker, "dist work");
    let merged = String::from_utf8(merged_bytes(&server, "j", dir.path())).unwrap();
    let lines: Vec<&str> = merged.lines().collect();
    assert_eq!(lines.len(), 4, "{merged}");
    assert!(
        lines[1].ends_with(
            ",error,dist: worker_died: delivered 3 times and its worker died each time,,,,,,,,,,,"
        ),
        "{merged}"
    );
    assert!(lines[2].contains(",ok,"), "{merged}");
}

/// A `dist work --events` child ([`EventfulWorker`]).
fn eventful_worker(server: &RedisServer, job: &str, rest: &[&str]) -> EventfulWorker {
    let mut command = worker_command(server, job, &["--events"]);
    command.args(rest);
    EventfulWorker::spawn(command)
}

/// A `dist status` or `dist merge` child whose stderr lines arrive on a channel, so that a
/// test can act when it says something (the broker is lost). Killed when dropped.
struct WatchedCommand {
    process: WorkerProcess,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl WatchedCommand {
    fn spawn(server: &RedisServer, command: &str, job: &str, rest: &[&str]) -> Self {
        let mut child = eval_cli_process()
            .args(["dist", command, "--broker", &server.url(), "--job", job])
            .args(rest)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = stderr_channel(&mut child, |line| Some(line.to_string()));
        WatchedCommand {
            process: WorkerProcess(child),
            lines,
            seen: Vec::new(),
        }
    }

    /// Blocks until a line of stderr contains `text`; panics when the command ends first.
    fn wait_for(&mut self, text: &str) {
        loop {
            match self.lines.recv() {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(_) => panic!("the command ended before saying {text:?}: {:?}", self.seen),
            }
        }
    }

    /// Waits for the command to exit: its status, stdout and every stderr line.
    fn finish(mut self) -> (std::process::ExitStatus, Vec<u8>, Vec<String>) {
        let mut stdout = Vec::new();
        let mut pipe = self.process.0.stdout.take().unwrap();
        std::io::Read::read_to_end(&mut pipe, &mut stdout).unwrap();
        let status = self.process.0.wait().unwrap();
        self.seen.extend(self.lines.iter());
        (status, stdout, self.seen)
    }
}

fn is_event(event: &serde_json::Value, name: &str, index: Option<u64>) -> bool {
    event["event"] == name && index.is_none_or(|i| event["index"] == i)
}

#[test]
fn a_worker_killed_holding_a_file_loses_nothing_and_its_file_is_delivered_again() {
    let (server, dir, lib) = submitted_library(6);

    // The first worker is handed entry 0 and killed before it made its row.
    drop(HeldWorker::spawn(&server, dir.path(), &["--workers", "1"]));

    // Two more take over: one of them reclaims entry 0.
    let rest = ["--workers", "1", "--reclaim-after", "1"];
    let b = eventful_worker(&server, "j", &rest);
    let c = eventful_worker(&server, "j", &rest);
    let (b_status, b_events) = b.finish();
    let (c_status, c_events) = c.finish();
    assert!(b_status.success() && c_status.success());
    let redelivered: Vec<_> = b_events
        .iter()
        .chain(&c_events)
        .filter(|e| is_event(e, "claimed", Some(0)))
        .collect();
    assert_eq!(redelivered.len(), 1, "{redelivered:?}");
    assert_eq!(redelivered[0]["deliveries"], 2, "{redelivered:?}");

    let s = status(&server, "j");
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(s["total"], 7, "{s}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

#[test]
fn a_slow_but_live_worker_keeps_its_file() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 6, 3.0);
    // Entry 0 is a gate (`dist work --test-gates`): its slot holds it until the test
    // opens it, however long that is.
    let gate = dir.path().join("gate-slow.wav");
    click_wav(&gate, 123.0, 4.0);
    let inputs = [gate.to_str().unwrap(), lib.to_str().unwrap()];
    assert_ok(&dist(&server, "submit", "j", &inputs), "dist submit");

    // A holds the gate for longer than --reclaim-after (2 s): its heartbeat comes every
    // 2/3 s, so after four beats the claim would have been stale without them.
    let flags = ["--workers", "1", "--reclaim-after", "2", "--test-gates"];
    let mut a = eventful_worker(&server, "j", &flags);
    a.wait_for("claiming the gate", |e| is_event(e, "claimed", Some(0)));
    for _ in 0..4 {
        a.wait_for("a heartbeat", |e| is_event(e, "heartbeat", Some(0)));
    }
    // B does everything else, and keeps scanning for stale claims while A beats on.
    let mut b = eventful_worker(&server, "j", &flags);
    for _ in 0..7 {
        let event = b.wait_for("a stored row", |e| {
            is_event(e, "stored", None) || is_event(e, "claimed", Some(0))
        });
        assert!(
            !is_event(&event, "claimed", Some(0)),
            "B stole the live worker's file: {event}"
        );
    }
    for _ in 0..3 {
        a.wait_for("a heartbeat", |e| is_event(e, "heartbeat", Some(0)));
    }
    let held = status(&server, "j");
    let consumer = held["consumers"][0].clone();
    assert_eq!(held["consumers"].as_array().unwrap().len(), 1, "{held}");
    assert_eq!(consumer["files"][0]["index"], 0, "{held}");
    assert_eq!(consumer["files"][0]["deliveries"], 1, "{held}");

    fs::write(dir.path().join("gate-slow.wav.open"), b"").unwrap();
    a.wait_for("the gate's row", |e| is_event(e, "stored", Some(0)));
    let (a_status, _) = a.finish();
    let (b_status, b_events) = b.finish();
    assert!(a_status.success() && b_status.success());
    assert!(
        !b_events.iter().any(|e| is_event(e, "claimed", Some(0))),
        "B stole the live worker's file: {b_events:?}"
    );
    assert_eq!(status(&server, "j")["complete"], true);
}

#[test]
fn a_broker_crash_mid_job_loses_nothing() {
    let (mut server, dir, lib) = submitted_library(12);

    // The worker holds entry 0, its row not made yet, when the broker dies; the broker is
    // back, from its append-only file, before the worker goes on.
    let held = HeldWorker::spawn(
        &server,
        dir.path(),
        &["--workers", "1", "--reclaim-after", "5"],
    );
    server.crash_and_restart();
    let (worker_status, lines, events) = held.release();
    assert!(worker_status.success(), "{lines:#?}");
    let position = |name: &str, index: Option<u64>| {
        events
            .iter()
            .position(|e| is_event(e, name, index))
            .unwrap_or_else(|| panic!("no {name} event: {lines:#?}"))
    };
    assert!(position("broker_lost", None) < position("reconnected", None));
    assert!(position("reconnected", None) < position("stored", Some(0)));

    let s = status(&server, "j");
    assert_eq!(s["complete"], true, "{s}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

#[test]
fn path_map_reads_elsewhere_and_keeps_the_submitted_path() {
    let (server, dir, lib) = submitted_library(3);
    // This "machine" sees the library under another name.
    let mounted = dir.path().join("mnt");
    fs::rename(&lib, &mounted).unwrap();
    let map = format!("{}={}", lib.display(), mounted.display());
    let worker = dist(
        &server,
        "work",
        "j",
        &["--workers", "1", "--path-map", &map],
    );
    assert_ok(&worker, "dist work");
    let merged = merged_bytes(&server, "j", dir.path());
    fs::rename(&mounted, &lib).unwrap();
    assert_eq!(merged, analyze_bytes(&lib, dir.path()));
}

#[test]
fn status_reports_a_rate_and_an_eta_while_running() {
    let (server, _dir, _lib) = submitted_library(6);

    // A dead consumer holds all 7 entries: the first 6 idle for two hours, the last one
    // fresh. The worker (--reclaim-after: an hour) takes over the first 6 only.
    deliver(&server, "dead", 7);
    let first_six = ["0-1", "0-2", "0-3", "0-4", "0-5", "0-6"];
    claim(&server, "dead", &first_six, &["IDLE", "7200000", "JUSTID"]);
    let mut worker = eventful_worker(&server, "j", &["--workers", "1", "--reclaim-after", "3600"]);
    for _ in 0..6 {
        worker.wait_for("a stored row", |e| is_event(e, "stored", None));
    }
    let s = status(&server, "j");
    assert_eq!(s["done"], 6, "{s}");
    assert_eq!(s["complete"], false, "{s}");
    assert!(s["rate_per_s"].as_f64().unwrap() > 0.0, "{s}");
    assert!(s["eta_s"].as_f64().unwrap() > 0.0, "{s}");
    let text = dist(&server, "status", "j", &[]);
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("files/s, ETA"),
        "{text:?}"
    );
}

/// A broker that lost a job (its stream and manifest deleted, its rows left behind) gets
/// it submitted again under the same name with other files: the new merge holds only the
/// new files' rows, none of the old run's.
#[test]
fn a_job_submitted_again_after_the_broker_lost_it_merges_only_its_own_rows() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let old_lib = library(&dir.path().join("old"), 6, 3.0);
    assert_ok(&submit(&server, "j", &old_lib), "dist submit");
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let old_rows = server.run_key("j", "rows");
    let mut con = server.connection();
    let _: () = redis::cmd("DEL")
        .arg("tempo-scale:job:j:manifest")
        .arg(server.run_key("j", "stream"))
        .query(&mut con)
        .unwrap();
    let left: usize = redis::cmd("HLEN").arg(&old_rows).query(&mut con).unwrap();
    assert_eq!(left, 7, "the old run's rows are still there");

    let new_lib = library(&dir.path().join("new"), 3, 3.0);
    assert_ok(
        &submit(&server, "j", &new_lib),
        "dist submit of the new job",
    );
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    assert_eq!(status(&server, "j")["total"], 4);
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&new_lib, dir.path())
    );
}

/// A named pipe filled to the brim: whoever writes into it next blocks until the test
/// drains it. The test holds a read-write end, so that no open of it blocks.
struct CloggedPipe {
    path: PathBuf,
    hold: fs::File,
}

impl CloggedPipe {
    fn new(path: &Path) -> Self {
        use std::os::unix::fs::OpenOptionsExt;
        let path = fifo(path);
        let mut hold = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .unwrap();
        // Newlines, so the filler reads back as empty lines. A write of up to PIPE_BUF
        // bytes is all or nothing: the last bytes go one at a time.
        for chunk in [&[b'\n'; 4096][..], b"\n"] {
            loop {
                match hold.write(chunk) {
                    Ok(_) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(err) => panic!("cannot fill {}: {err}", path.display()),
                }
            }
        }
        CloggedPipe { path, hold }
    }

    /// A write end, for a child's stderr: its first write blocks.
    fn writer(&self) -> Stdio {
        Stdio::from(fs::OpenOptions::new().write(true).open(&self.path).unwrap())
    }

    /// Lets the writers go on; their lines, read until every writer is gone.
    fn drain(self) -> Vec<String> {
        let reader = fs::File::open(&self.path).unwrap();
        drop(self.hold);
        BufReader::new(reader)
            .lines()
            .map(Result::unwrap)
            .filter(|line| !line.is_empty())
            .collect()
    }
}

/// The commands a broker runs, as `MONITOR` lists them (blocking reads, no clock).
struct Monitor(BufReader<TcpStream>);

impl Monitor {
    fn start(server: &RedisServer) -> Self {
        let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        stream.write_all(b"MONITOR\r\n").unwrap();
        let mut lines = BufReader::new(stream);
        let mut ok = String::new();
        lines.read_line(&mut ok).unwrap();
        assert_eq!(ok, "+OK\r\n");
        Monitor(lines)
    }

    /// Blocks until the broker has run the command `name`.
    fn wait_for(&mut self, name: &str) {
        let quoted = format!("\"{name}\"");
        for line in (&mut self.0).lines() {
            if line.unwrap().contains(&quoted) {
                return;
            }
        }
        panic!("the broker ended before running {name}");
    }
}

/// A `dist work --events` child for job `j`, held right after it is handed entry 0: its
/// stderr is a full pipe, so its "claimed" event blocks until [`HeldWorker::release`].
/// Killed when dropped.
struct HeldWorker {
    process: WorkerProcess,
    stderr: CloggedPipe,
}

impl HeldWorker {
    fn spawn(server: &RedisServer, dir: &Path, rest: &[&str]) -> Self {
        let mut monitor = Monitor::start(server);
        let stderr = CloggedPipe::new(&dir.join("held-worker.err"));
        let child = worker_command(server, "j", &["--events"])
            .args(rest)
            .stderr(stderr.writer())
            .spawn()
            .unwrap();
        // Its first read is handed entry 0 (nothing is pending yet). The broker answers a
        // later command only once it has sent the worker that entry.
        monitor.wait_for("XREADGROUP");
        let _: () = redis::cmd("PING").query(&mut server.connection()).unwrap();
        HeldWorker {
            process: WorkerProcess(child),
            stderr,
        }
    }

    /// Lets the worker go on and waits for it to exit: its status, stderr lines and events.
    fn release(
        mut self,
    ) -> (
        std::process::ExitStatus,
        Vec<String>,
        Vec<serde_json::Value>,
    ) {
        let lines = self.stderr.drain();
        let status = self.process.0.wait().unwrap();
        let events = lines
            .iter()
            .filter_map(|line| serde_json::from_str(line).ok())
            .collect();
        (status, lines, events)
    }
}

/// A worker has been handed the first file when the broker, without persistence, restarts
/// empty and the job is submitted again with other files. The worker is held (its stderr
/// is a full pipe) until then; it then analyses its file and tries to store the row: it
/// stores nothing, fails saying why, and the new job's merge has only its own rows.
#[test]
fn a_worker_holding_a_row_of_a_lost_run_stores_nothing_in_the_new_run() {
    let mut server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let old_lib = library(&dir.path().join("old"), 3, 3.0);
    assert_ok(&submit(&server, "j", &old_lib), "dist submit");

    let stale = HeldWorker::spawn(&server, dir.path(), &["--workers", "1"]);
    server.crash_and_forget();
    let new_lib = library(&dir.path().join("new"), 3, 3.0);
    assert_ok(
        &submit(&server, "j", &new_lib),
        "dist submit of the new job",
    );

    let (stale_status, lines, events) = stale.release();
    assert!(!stale_status.success(), "{lines:#?}");
    assert!(
        events.iter().any(|e| is_event(e, "claimed", Some(0))),
        "{lines:#?}"
    );
    assert!(
        !events.iter().any(|e| is_event(e, "stored", None)),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("was submitted again")),
        "{lines:#?}"
    );

    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&new_lib, dir.path())
    );
}

/// `dist merge` is waiting for the job when the broker dies; it keeps reconnecting, the
/// broker comes back from its append-only file, a worker completes the job, and the merge
/// writes the bytes of `analyze`.
#[test]
fn merge_waits_across_a_broker_restart() {
    let (mut server, dir, lib) = submitted_library(4);
    let out = dir.path().join("j.csv");
    let mut merge = WatchedCommand::spawn(&server, "merge", "j", &["--out", out.to_str().unwrap()]);
    merge.wait_for("waiting for job");

    server.crash();
    merge.wait_for("broker lost");
    server.restart();
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let (merge_status, _, lines) = merge.finish();
    // 1: the broken file is a failed row.
    assert_eq!(merge_status.code(), Some(1), "{lines:?}");
    assert_eq!(fs::read(out).unwrap(), analyze_bytes(&lib, dir.path()));
}

/// `dist status` asked while the broker is down waits for it to come back.
#[test]
fn status_waits_for_a_broker_that_restarts() {
    let (mut server, _dir, _lib) = submitted_library(2);

    server.crash();
    let mut asked = WatchedCommand::spawn(&server, "status", "j", &["--json"]);
    asked.wait_for("broker lost");
    server.restart();
    let (asked_status, stdout, lines) = asked.finish();
    assert!(asked_status.success(), "{lines:?}");
    let s: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    assert_eq!(s["total"], 3, "{s}");
    assert_eq!(s["waiting"], 3, "{s}");
}

/// With the broker gone for good, `status` and `merge` fail once `--broker-retry` is spent,
/// and say so.
#[test]
fn status_and_merge_give_up_when_the_broker_stays_away() {
    let (mut server, dir, _lib) = submitted_library(1);
    server.crash();
    let out = dir.path().join("j.csv");
    for (command, rest) in [
        ("status", vec![]),
        ("merge", vec!["--out", out.to_str().unwrap()]),
    ] {
        let mut args = vec!["--broker-retry", "0.5"];
        args.extend(rest);
        let given_up = dist(&server, command, "j", &args);
        assert_eq!(given_up.status.code(), Some(2), "{given_up:?}");
        let err = String::from_utf8_lossy(&given_up.stderr);
        assert!(
            err.contains("stayed unreachable for 500ms (--broker-retry)"),
            "{command}: {err}"
        );
    }
    assert!(!out.exists());
}

/// A file whose name is not UTF-8 travels as its bytes and is analysed like any other: the
/// merge is the bytes of `analyze`, with an `ok` row for it.
#[test]
fn a_file_name_that_is_not_utf8_is_analysed_through_the_broker() {
    use std::os::unix::ffi::OsStrExt;
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 2, 3.0);
    let name = std::ffi::OsStr::from_bytes(b"caf\xe9.wav");
    click_wav(&lib.join(name), 128.0, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let merged = merged_bytes(&server, "j", dir.path());
    let text = String::from_utf8_lossy(&merged);
    let row = text.lines().find(|l| l.contains("caf")).unwrap();
    assert!(row.contains(",ok,"), "{text}");
    assert_eq!(merged, analyze_bytes(&lib, dir.path()));
}

/// `dist work --metrics` serves the page `consume --metrics` serves: the rows it stored and
/// the entries it took.
#[test]
fn a_worker_with_metrics_counts_the_entries_it_took_and_stored() {
    let (server, _dir, _lib) = submitted_library(2);
    let rest = ["--workers", "1", "--follow", "--metrics", "127.0.0.1:0"];
    let mut worker = eventful_worker(&server, "j", &rest);
    let address = worker.wait_for("the metrics address", |e| is_event(e, "metrics", None));
    let address = address["address"].as_str().unwrap().to_string();
    // Two tracks and a file that is not audio: three rows, counted before they are said.
    for _ in 0..3 {
        worker.wait_for("a stored row", |e| is_event(e, "stored", None));
    }
    assert_lines(
        &scrape(&address),
        &[
            "tempo_requests_taken_total 3",
            "tempo_files_total{status=\"ok\",kind=\"none\"} 2",
            "tempo_file_seconds_count{source=\"queue\"} 3",
            "tempo_files_running 0",
        ],
    );
    // Another method is refused with a reason, as `serve` refuses it, not an empty 405.
    let posted = reply(
        http_client()
            .post(format!("http://{address}/metrics"))
            .send("x"),
    );
    assert_eq!(posted.refusal(405), "POST is not allowed on /metrics");
}

/// Deletes the rows (and the statuses, when `states`) of the input indices `indices` of job
/// `j`, as a user's `HDEL` or an eviction under `maxmemory` would.
fn lose_rows(server: &RedisServer, indices: &[usize], states: bool) {
    let mut con = server.connection();
    let mut keys = vec![server.run_key("j", "rows")];
    if states {
        keys.push(server.run_key("j", "states"));
    }
    for key in keys {
        let deleted: usize = redis::cmd("HDEL")
            .arg(&key)
            .arg(indices)
            .query(&mut con)
            .unwrap();
        assert_eq!(deleted, indices.len(), "{key}");
    }
}

fn stream_len(server: &RedisServer) -> usize {
    redis::cmd("XLEN")
        .arg(server.run_key("j", "stream"))
        .query(&mut server.connection())
        .unwrap()
}

/// Rows deleted after a finished run: `status` says they are lost and how to get them
/// back, `merge` (waiting or not) fails saying the same instead of waiting forever, and
/// `submit` again queues exactly those files, so that a worker analyses them and only them
/// and the merge is the bytes of `analyze`.
#[test]
fn rows_lost_after_a_finished_run_are_queued_again_and_only_they_are_analysed() {
    let (server, dir, lib) = submitted_library(5);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    lose_rows(&server, &[1], false);
    lose_rows(&server, &[3], true);

    let s = status(&server, "j");
    assert_eq!(
        (&s["done"], &s["lost"], &s["waiting"], &s["in_flight"]),
        (&4.into(), &2.into(), &0.into(), &0.into()),
        "{s}"
    );
    assert_eq!(s["complete"], false, "{s}");
    assert_eq!(s["eta_s"], serde_json::Value::Null, "{s}");
    let text = dist(&server, "status", "j", &[]);
    assert_ok(&text, "dist status");
    let said = String::from_utf8_lossy(&text.stdout);
    assert!(said.contains("2 of 6 rows are missing"), "{said}");
    assert!(said.contains("run `dist submit` again"), "{said}");

    let out = dir.path().join("j.csv");
    for rest in [vec!["--no-wait"], vec![]] {
        let merged = eval_cli()
            .args(["dist", "merge", "--broker", &server.url(), "--job", "j"])
            .args(["--out", out.to_str().unwrap()])
            .args(rest)
            // Only stops a broken build from hanging the suite.
            .timeout(std::time::Duration::from_secs(600))
            .output()
            .unwrap();
        assert_eq!(merged.status.code(), Some(2), "{merged:?}");
        let err = String::from_utf8_lossy(&merged.stderr);
        assert!(
            err.contains("cannot complete: 2 of 6 rows are missing"),
            "{err}"
        );
        assert!(err.contains("run `dist submit` again"), "{err}");
    }
    assert!(!out.exists());

    let again = submit(&server, "j", &lib);
    assert_ok(&again, "dist submit again");
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("re-queued 2 files whose rows were missing"),
        "{err}"
    );
    let s = status(&server, "j");
    assert_eq!((&s["waiting"], &s["lost"]), (&2.into(), &0.into()), "{s}");

    let (worker_status, events) = eventful_worker(&server, "j", &["--workers", "1"]).finish();
    assert!(worker_status.success(), "{events:?}");
    let analysed: Vec<u64> = events
        .iter()
        .filter(|e| is_event(e, "claimed", None))
        .filter_map(|e| e["index"].as_u64())
        .collect();
    assert_eq!(analysed, [1, 3], "{events:?}");
    let s = status(&server, "j");
    assert_eq!(
        (&s["complete"], &s["failed"]),
        (&true.into(), &1.into()),
        "{s}"
    );
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );

    // Nothing is missing now: a third submit queues nothing.
    let third = submit(&server, "j", &lib);
    assert_ok(&third, "a third dist submit");
    assert!(
        !String::from_utf8_lossy(&third.stderr).contains("re-queued"),
        "{third:?}"
    );
    assert_eq!(stream_len(&server), 8);
}

/// A file whose row is missing but whose entry is still queued or in flight is on its way:
/// `submit` queues again only the files whose entry was acknowledged and whose row is gone.
#[test]
fn submit_queues_again_only_the_rows_that_nothing_will_bring() {
    let (server, dir, lib) = submitted_library(3);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    lose_rows(&server, &[0, 1, 2], true);
    let again = submit(&server, "j", &lib);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("re-queued 3 files"),
        "{again:?}"
    );
    // Entry 0 queued again is in flight (its worker died), 1 and 2 wait, and then row 3,
    // acknowledged long ago, is lost too.
    deliver(&server, "dead", 1);
    lose_rows(&server, &[3], false);
    let s = status(&server, "j");
    assert_eq!(
        (&s["in_flight"], &s["waiting"], &s["lost"]),
        (&1.into(), &3.into(), &0.into()),
        "{s}"
    );

    let third = submit(&server, "j", &lib);
    assert!(
        String::from_utf8_lossy(&third.stderr).contains("re-queued 1 files"),
        "{third:?}"
    );
    assert_eq!(stream_len(&server), 4 + 3 + 1);
    let stream = server.run_key("j", "stream");
    let ids: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("(0-4")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    let ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["1-1", "1-2", "1-3", "2-4"]);

    claim(&server, "dead", &["1-1"], &["IDLE", "60000", "JUSTID"]);
    let rescuer = dist(
        &server,
        "work",
        "j",
        &["--workers", "1", "--reclaim-after", "1"],
    );
    assert_ok(&rescuer, "dist work");
    assert_eq!(status(&server, "j")["complete"], true);
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

/// A worker started on a job whose rows were lost says so and waits; the `submit` that
/// queues them again is what it waits for, and it then completes the job.
#[test]
fn a_waiting_worker_says_rows_are_lost_and_takes_them_when_submitted_again() {
    let (server, dir, lib) = submitted_library(2);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    lose_rows(&server, &[0], false);
    let mut worker = WatchedCommand::spawn(&server, "work", "j", &["--workers", "2"]);
    worker.wait_for("1 of 3 rows are missing");
    assert_ok(&submit(&server, "j", &lib), "dist submit again");
    let (worker_status, _, lines) = worker.finish();
    assert!(worker_status.success(), "{lines:?}");
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

/// Entries added to the stream by hand, one without the fields of `submit`'s and one whose
/// index is outside the job, are acknowledged and skipped, each named on stderr; the
/// worker goes on and the merge is the bytes of `analyze`.
#[test]
fn a_junk_entry_is_skipped_and_named_and_the_worker_goes_on() {
    let (server, dir, lib) = submitted_library(2);
    let stream = server.run_key("j", "stream");
    let mut con = server.connection();
    let junk: Vec<String> = [
        vec!["note", "hello"],
        vec!["index", "99", "path", "/nowhere.wav"],
    ]
    .iter()
    .map(|fields| {
        redis::cmd("XADD")
            .arg(&stream)
            .arg("*")
            .arg(fields)
            .query(&mut con)
            .unwrap()
    })
    .collect();
    let worker = dist(&server, "work", "j", &["--workers", "1"]);
    assert_ok(&worker, "dist work");
    let err = String::from_utf8_lossy(&worker.stderr);
    for id in &junk {
        assert!(
            err.contains(&format!("skipped malformed stream entry {id}")),
            "{err}"
        );
    }
    let s = status(&server, "j");
    assert_eq!(
        (&s["complete"], &s["in_flight"]),
        (&true.into(), &0.into()),
        "{s}"
    );
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
    // A row lost after that is queued again in a round above the junk's ids.
    lose_rows(&server, &[1], false);
    let again = submit(&server, "j", &lib);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("re-queued 1 files"),
        "{again:?}"
    );
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    assert_eq!(
        merged_bytes(&server, "j", dir.path()),
        analyze_bytes(&lib, dir.path())
    );
}

/// A loopback proxy in front of `server` for one client: it passes the client's commands on
/// until one holds `marker`, then holds that one (and what follows) until
/// [`HoldingProxy::release`]. The client's view of the broker is as stale as the test wants
/// it, with no clock: a second client does its whole work meanwhile.
struct HoldingProxy {
    port: u16,
    held: mpsc::Receiver<()>,
    release: mpsc::Sender<()>,
}

impl HoldingProxy {
    fn start(server: &RedisServer, marker: &'static [u8]) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream_port = server.port;
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        // One connection: `dist submit` opens one. A client that ends before sending the
        // marker drops `held_tx`, which fails the test instead of hanging it.
        thread::spawn(move || {
            let (mut client, _) = listener.accept().unwrap();
            let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port)).unwrap();
            let mut replies = upstream.try_clone().unwrap();
            let mut to_client = client.try_clone().unwrap();
            thread::spawn(move || io::copy(&mut replies, &mut to_client));
            let mut held_tx = Some(held_tx);
            let mut buf = vec![0; 1 << 16];
            loop {
                let n = match client.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                let sent = &buf[..n];
                if held_tx.is_some() && sent.windows(marker.len()).any(|w| w == marker) {
                    let _ = held_tx.take().unwrap().send(());
                    let _ = release_rx.recv();
                }
                if upstream.write_all(sent).is_err() {
                    break;
                }
            }
            let _ = upstream.shutdown(Shutdown::Write);
        });
        HoldingProxy {
            port,
            held,
            release,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Waits until the client sent the marker, which the broker has not seen yet.
    fn wait_held(&self) {
        self.held
            .recv()
            .expect("the client ended before it sent the marker");
    }

    fn release(&self) {
        self.release.send(()).unwrap();
    }
}

/// `dist submit` of `lib` as job `j` through `proxy`, running until it ends.
fn spawn_submit(proxy: &HoldingProxy, lib: &Path) -> std::process::Child {
    eval_cli_process()
        .args(["dist", "submit", "--broker", &proxy.url(), "--job", "j"])
        .arg(lib)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The ids of job `j`'s stream, in order.
fn stream_ids(server: &RedisServer) -> Vec<String> {
    let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(server.run_key("j", "stream"))
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .unwrap();
    entries.into_iter().map(|(id, _)| id).collect()
}

/// Two identical `submit`s at once: the one that read the stream first adds its entries
/// after the other added them all (a proxy holds it there). It adds nothing and succeeds,
/// as a rerun does; before, `XADD` refused its ids ("equal or smaller than the target
/// stream top item") and it failed with exit 2.
#[test]
fn two_identical_submits_at_once_both_succeed_and_queue_each_file_once() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    let proxy = HoldingProxy::start(&server, b"XADD");
    let first = spawn_submit(&proxy, &lib);
    proxy.wait_held();
    let second = submit(&server, "j", &lib);
    assert_ok(&second, "the second dist submit");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("4 files queued (4 new)"),
        "{second:?}"
    );
    proxy.release();
    let first = first.wait_with_output().unwrap();
    assert_ok(&first, "the first dist submit");
    assert!(
        String::from_utf8_lossy(&first.stderr).contains("4 files queued (0 new)"),
        "{first:?}"
    );
    assert_eq!(stream_ids(&server), ["0-1", "0-2", "0-3", "0-4"]);
    let s = status(&server, "j");
    assert_eq!((&s["waiting"], &s["lost"]), (&4.into(), &0.into()), "{s}");
}

/// Two `submit`s at once that both find the same rows lost: one is held at each step of its
/// re-queue (a proxy holds the command) while the other queues them again. The held one
/// queues nothing (its finding is stale: it looks again and finds them on their way) and
/// succeeds; each file is queued again once. Before, held before its `XINFO STREAM` it
/// queued them again in the next round (each file twice), and held at its `XADD` it took
/// the same round and failed with exit 2.
#[test]
fn two_submits_at_once_queue_a_lost_row_again_once() {
    let steps: [&[u8]; 4] = [b"\r\nSTREAM\r\n", b"XPENDING", b"HEXISTS", b"XADD"];
    for step in steps {
        let step_name = String::from_utf8_lossy(step).trim().to_string();
        let (server, _dir, lib) = submitted_library(3);
        assert_ok(
            &dist(&server, "work", "j", &["--workers", "1"]),
            "dist work",
        );
        lose_rows(&server, &[0, 2], true);
        let proxy = HoldingProxy::start(&server, step);
        let first = spawn_submit(&proxy, &lib);
        proxy.wait_held();
        let second = submit(&server, "j", &lib);
        assert_ok(&second, "the second dist submit");
        assert!(
            String::from_utf8_lossy(&second.stderr).contains("re-queued 2 files"),
            "held at {step_name}: {second:?}"
        );
        proxy.release();
        let first = first.wait_with_output().unwrap();
        assert_ok(&first, &format!("the dist submit held at {step_name}"));
        assert!(
            !String::from_utf8_lossy(&first.stderr).contains("re-queued"),
            "held at {step_name}: {first:?}"
        );
        assert_eq!(
            stream_ids(&server),
            ["0-1", "0-2", "0-3", "0-4", "1-1", "1-3"],
            "held at {step_name}"
        );
        let s = status(&server, "j");
        assert_eq!((&s["waiting"], &s["lost"]), (&2.into(), &0.into()), "{s}");
    }
}

/// The broker's password is never printed: a wrong one refused at connect, a right one on a
/// job that is not there, with or without a user name.
#[test]
fn the_brokers_password_is_redacted_in_every_message() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 1, 3.0);
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "requirepass", "r1ght-pw"])
        .query(&mut server.connection())
        .unwrap();
    let at = format!("127.0.0.1:{}", server.port);
    let lib = lib.to_str().unwrap();
    let cases = [
        (
            ["submit", &format!("redis://:wr0ng-pw@{at}"), lib],
            format!("cannot connect to the broker at redis://:***@{at}: "),
        ),
        (
            ["submit", &format!("redis://default:wr0ng-pw@{at}"), lib],
            format!("cannot connect to the broker at redis://default:***@{at}: "),
        ),
        (
            [
                "status",
                &format!("redis://default:r1ght-pw@{at}"),
                "--json",
            ],
            format!("no job \"j\" at redis://default:***@{at} "),
        ),
    ];
    for ([command, url, rest], says) in cases {
        let output = eval_cli()
            .args(["dist", command, "--broker", url, "--job", "j", rest])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&says), "{stderr}");
        assert!(!stderr.contains("-pw"), "{stderr}");
    }
}

/// `dist COMMAND` for job `j` with the flags `rest`, stopped after ten minutes only so that
/// a build that waits forever fails instead of hanging the suite.
fn dist_bounded(server: &RedisServer, command: &str, rest: &[&str]) -> Output {
    eval_cli()
        .args(["dist", command, "--broker", &server.url(), "--job", "j"])
        .args(rest)
        .timeout(std::time::Duration::from_secs(600))
        .output()
        .unwrap()
}

/// Asserts that `output` exited 2 saying that job `j` cannot complete because `gone` (the
/// words that name the deleted stream or group) is gone, with `done` of `total` rows, and
/// what to do.
fn assert_queue_gone(output: &Output, what: &str, gone: &str, done: usize, total: usize) {
    assert_eq!(output.status.code(), Some(2), "{what}: {output:?}");
    let err = String::from_utf8_lossy(&output.stderr);
    let said = format!(
        "job \"j\" cannot complete: {done} of {total} rows are stored and its {gone} is gone"
    );
    assert!(err.contains(&said), "{what}: {err}");
    assert!(err.contains("run `dist submit` again"), "{what}: {err}");
    assert!(
        !err.contains("NOGROUP") && !err.contains("no such key"),
        "{what}: {err}"
    );
}

/// The job's consumer group destroyed (`XGROUP DESTROY`), or its stream deleted (`DEL`),
/// by hand: `merge` (waiting or not), `status` and `work` each exit 2 naming what is gone
/// and what to do, instead of waiting forever or printing the broker's `NOGROUP`; `submit`
/// again makes it again and queues only the files without a row, and the merge is the bytes
/// of `analyze`. A job already complete merges as ever without its group.
#[test]
fn a_deleted_stream_or_consumer_group_is_named_and_submit_again_mends_it() {
    let (server, dir, lib) = submitted_library(4);
    let stream = server.run_key("j", "stream");
    let out = dir.path().join("j.csv");
    let out = out.to_str().unwrap();

    // The group destroyed with one file in flight, before any row was stored.
    let mut con = server.connection();
    deliver(&server, "gone:1:0", 1);
    let (done, total) = (0, 5);
    let _: usize = redis::cmd("XGROUP")
        .arg(&["DESTROY", stream.as_str(), "workers"])
        .query(&mut con)
        .unwrap();
    let group = format!("consumer group 'workers' of stream {stream}");
    for rest in [vec!["--out", out, "--no-wait"], vec!["--out", out]] {
        let merged = dist_bounded(&server, "merge", &rest);
        assert_queue_gone(&merged, "dist merge", &group, done, total);
    }
    for rest in [vec![], vec!["--json"]] {
        let status = dist_bounded(&server, "status", &rest);
        assert_queue_gone(&status, "dist status", &group, done, total);
    }
    let worker = dist_bounded(&server, "work", &["--workers", "1"]);
    assert_queue_gone(&worker, "dist work", &group, done, total);
    assert!(!Path::new(out).exists());
    assert_ok(&submit(&server, "j", &lib), "dist submit again");
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let analysed = analyze_bytes(&lib, dir.path());
    assert_eq!(merged_bytes(&server, "j", dir.path()), analysed);

    // Complete: the group is not needed any more.
    let _: usize = redis::cmd("XGROUP")
        .arg(&["DESTROY", stream.as_str(), "workers"])
        .query(&mut con)
        .unwrap();
    assert_eq!(merged_bytes(&server, "j", dir.path()), analysed);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work on a complete job",
    );
    assert_eq!(status(&server, "j")["complete"], true);

    // The stream deleted, and two rows with it (as a `DEL` of the job's keys would).
    let _: usize = redis::cmd("DEL").arg(&stream).query(&mut con).unwrap();
    lose_rows(&server, &[1, 2], true);
    let gone = format!("stream {stream}");
    for rest in [vec!["--out", out, "--no-wait"], vec!["--out", out]] {
        let merged = dist_bounded(&server, "merge", &rest);
        assert_queue_gone(&merged, "dist merge", &gone, 3, total);
    }
    let status_said = dist_bounded(&server, "status", &[]);
    assert_queue_gone(&status_said, "dist status", &gone, 3, total);
    let worker = dist_bounded(&server, "work", &["--workers", "1"]);
    assert_queue_gone(&worker, "dist work", &gone, 3, total);
    assert_ok(&submit(&server, "j", &lib), "dist submit again");
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    assert_eq!(merged_bytes(&server, "j", dir.path()), analysed);
}

/// `eval-cli analyze lib` run in `dir` (a relative path), as `--out` bytes.
fn analyze_relative(dir: &Path) -> Vec<u8> {
    let out = dir.join("analyze-relative.csv");
    let output = eval_cli()
        .current_dir(dir)
        .args(["analyze", "lib", "--out"])
        .arg(&out)
        .args(["--workers", "2", "--progress", "off"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    fs::read(out).unwrap()
}

/// A job submitted as a relative path (`dist submit lib` in the folder above it) is read
/// in that folder by a worker whose own working folder is another one, also through a
/// `--path-map` of that folder, and its rows keep the path as given: the merge is the
/// bytes of `analyze lib` run where `submit` ran. The same relative path submitted from
/// another folder is another job.
#[test]
fn a_relative_path_is_read_where_it_was_submitted_and_kept_as_given() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    let elsewhere = tempfile::tempdir().unwrap();
    let submit_here = |job: &str, folder: &Path| {
        eval_cli()
            .current_dir(folder)
            .args([
                "dist",
                "submit",
                "--broker",
                &server.url(),
                "--job",
                job,
                "lib",
            ])
            .output()
            .unwrap()
    };
    assert_ok(&submit_here("j", dir.path()), "dist submit lib");
    let worker = eval_cli()
        .current_dir(elsewhere.path())
        .args(["dist", "work", "--broker", &server.url(), "--job", "j"])
        .args(["--workers", "1"])
        .output()
        .unwrap();
    assert_ok(&worker, "dist work in another folder");
    let analysed = analyze_relative(dir.path());
    assert!(analysed.starts_with(b"path,") && analysed.windows(5).any(|w| w == b"\nlib/"));
    assert_eq!(merged_bytes(&server, "j", dir.path()), analysed);

    // Read through a map of the submit folder, on a "machine" that mounts it elsewhere.
    assert_ok(&submit_here("k", dir.path()), "dist submit lib");
    let mounted = elsewhere.path().join("mnt");
    fs::create_dir(&mounted).unwrap();
    fs::rename(&lib, mounted.join("lib")).unwrap();
    let map = format!("{}={}", dir.path().display(), mounted.display());
    let worker = eval_cli()
        .current_dir(elsewhere.path())
        .args(["dist", "work", "--broker", &server.url(), "--job", "k"])
        .args(["--workers", "1", "--path-map", &map])
        .output()
        .unwrap();
    assert_ok(&worker, "dist work through --path-map");
    fs::rename(mounted.join("lib"), &lib).unwrap();
    assert_eq!(merged_bytes(&server, "k", dir.path()), analysed);

    // `lib` in another folder is other files: not the job `j`.
    library(elsewhere.path(), 3, 3.0);
    let other = submit_here("j", elsewhere.path());
    assert_eq!(other.status.code(), Some(2), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("already exists with another manifest"),
        "{other:?}"
    );
}

/// A job of relative paths whose submit folder is gone (deleted after `submit`, or a
/// machine without it): `work` refuses to start, naming the folder and the way out, instead
/// of storing a permanent `No such file` row for every file.
#[test]
fn work_refuses_a_job_whose_submit_folder_is_gone() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let submit_from = dir.path().join("here");
    fs::create_dir(&submit_from).unwrap();
    library(dir.path(), 2, 3.0);
    let submitted = eval_cli()
        .current_dir(&submit_from)
        .args([
            "dist",
            "submit",
            "--broker",
            &server.url(),
            "--job",
            "j",
            "../lib",
        ])
        .output()
        .unwrap();
    assert_ok(&submitted, "dist submit ../lib");
    fs::remove_dir(&submit_from).unwrap();
    let worker = eval_cli()
        .current_dir(dir.path())
        .args(["dist", "work", "--broker", &server.url(), "--job", "j"])
        .args(["--workers", "1"])
        .output()
        .unwrap();
    assert_eq!(worker.status.code(), Some(2), "{worker:?}");
    let err = String::from_utf8_lossy(&worker.stderr);
    assert!(
        err.contains("not a folder on this machine") && err.contains("here"),
        "{err}"
    );
    let status = dist(&server, "merge", "j", &["--no-wait", "--out", "x.csv"]);
    assert!(
        String::from_utf8_lossy(&status.stderr).contains("is not complete: 0 of"),
        "no row was stored: {status:?}"
    );
}

/// `merge --out` naming an existing file that takes no writes (a running program) is
/// refused before any wait, the file left as it was: a replacement by rename asks only the
/// folder, and replaced it.
#[cfg(target_os = "linux")]
#[test]
fn merge_refuses_an_existing_file_it_cannot_write() {
    let (server, dir, _lib) = submitted_library(2);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let out = dir.path().join("busy");
    let _running = crate::util::RunningProgram::at(&out);
    let before = fs::read(&out).unwrap();
    let merged = dist(&server, "merge", "j", &["--out", out.to_str().unwrap()]);
    assert_eq!(merged.status.code(), Some(2), "{merged:?}");
    let err = String::from_utf8_lossy(&merged.stderr);
    assert!(
        err.contains("cannot write") && err.contains("busy"),
        "{err}"
    );
    assert_eq!(fs::read(&out).unwrap(), before);
}

/// `merge --out FILE` takes `FILE.lock`, as `analyze --out` and `merge` do: while another
/// run holds it, merge is refused at once and FILE left as it was (it replaced the file
/// of an `analyze --out FILE` under way); once the lock is free it writes.
#[test]
fn merge_refuses_a_file_another_run_is_writing() {
    let (server, dir, _lib) = submitted_library(2);
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let out = dir.path().join("out.csv");
    fs::write(&out, "earlier rows").unwrap();
    let holder = fs::File::create(dir.path().join("out.csv.lock")).unwrap();
    holder.try_lock().unwrap();
    let merged = dist(&server, "merge", "j", &["--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&merged.stderr);
    assert_eq!(merged.status.code(), Some(2), "{err}");
    assert!(
        err.contains("out.csv is being written by another run"),
        "{err}"
    );
    assert_eq!(fs::read(&out).unwrap(), b"earlier rows");
    drop(holder);
    // Exit 1: the library holds a file that fails.
    let merged = dist(&server, "merge", "j", &["--out", out.to_str().unwrap()]);
    assert_eq!(merged.status.code(), Some(1), "{merged:?}");
    assert!(fs::read(&out).unwrap().starts_with(b"path,bpm,"));
    assert!(!dir.path().join("out.csv.lock").exists());
}

/// An entry added by hand in the form of a re-queue (`G-(index+1)`, the index's field
/// right) but naming a file that is not the job's gets its row stored; `merge` checks the
/// rows' paths against the manifest's list hash and refuses to write them, saying why.
#[test]
fn a_row_of_a_file_the_job_never_had_is_refused_by_merge() {
    let (server, dir, _lib) = submitted_library(2);
    let foreign = dir.path().join("foreign.wav");
    write_tracks(dir.path(), [("foreign.wav".to_string(), 120.0, 3.0)]);
    let stream = server.run_key("j", "stream");
    let mut con = server.connection();
    // Without its own entry, index 0 is analysed only from the impostor.
    let _: usize = redis::cmd("XDEL")
        .arg(&stream)
        .arg("0-1")
        .query(&mut con)
        .unwrap();
    let _: String = redis::cmd("XADD")
        .arg(&stream)
        .arg("5-1")
        .arg("index")
        .arg(0)
        .arg("path")
        .arg(foreign.to_str().unwrap())
        .query(&mut con)
        .unwrap();
    assert_ok(
        &dist(&server, "work", "j", &["--workers", "1"]),
        "dist work",
    );
    let out = dir.path().join("j.csv");
    let merged = dist(&server, "merge", "j", &["--out", out.to_str().unwrap()]);
    assert_eq!(merged.status.code(), Some(2), "{merged:?}");
    let err = String::from_utf8_lossy(&merged.stderr);
    assert!(
        err.contains("the paths of its rows are not the files it was submitted with"),
        "{err}"
    );
    assert!(!out.exists());
}
