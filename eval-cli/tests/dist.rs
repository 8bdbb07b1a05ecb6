//! `eval-cli dist` against a real broker: each test starts its own `redis-server` on a free
//! loopback port (no disk persistence, a temp dir) and stops it by its pid, also when the test
//! panics. Without `redis-server` installed the tests fail and say how to install it: CI
//! installs it, so these tests always run there.
//!
//! Nothing here reads a clock: the server's readiness is its own log line, and a dead worker
//! is played by the test (pending entries it never acknowledged, set idle for a minute).

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Output, Stdio};
use std::thread;

use assert_cmd::Command;
use assert_cmd::cargo::CommandCargoExt;

const RATE: u32 = 22_050;

/// A `redis-server` of one test, killed by its pid when dropped.
struct RedisServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    fn start() -> Self {
        if Process::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            panic!(
                "redis-server is not installed; the dist tests need a real broker: \
                 apt-get install -y --no-install-recommends redis-server"
            );
        }
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let dir = tempfile::tempdir().unwrap();
            let child = Process::new("redis-server")
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .arg("--dir")
                .arg(dir.path())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("cannot start redis-server");
            let mut server = RedisServer {
                child,
                port,
                _dir: dir,
            };
            if server.wait_ready() {
                return server;
            }
            // Another process took the port between our probe and the server's bind.
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// Reads the server's log until it says it accepts connections (true) or ends because
    /// the server exited (false: the port was taken). No clock: the read blocks on the pipe.
    fn wait_ready(&mut self) -> bool {
        let Some(out) = self.child.stdout.take() else {
            return false;
        };
        let mut lines = BufReader::new(out).lines();
        let ready = lines
            .by_ref()
            .map_while(Result::ok)
            .any(|line| line.contains("Ready to accept connections"));
        // Keep draining the log so the server never blocks on a full pipe.
        thread::spawn(move || lines.for_each(drop));
        ready
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `dist work` child process, killed when dropped (a failed test leaves no worker behind).
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A mono 16-bit WAV of short square-wave clicks at `bpm`.
fn click_wav(path: &Path, bpm: f64, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut writer = hound::WavWriter::create(path, spec).unwrap();
    for s in synth_music::presets::clicks(bpm, seconds, RATE) {
        writer.write_sample((s * 32_500.0) as i16).unwrap();
    }
    writer.finalize().unwrap();
}

/// `count` click tracks in `dir/lib` (one in a subfolder, one that is not audio at all),
/// each `seconds` long.
fn library(dir: &Path, count: usize, seconds: f64) -> PathBuf {
    let lib = dir.join("lib");
    fs::create_dir_all(lib.join("sub")).unwrap();
    for i in 0..count {
        let bpm = 90.0 + 7.0 * i as f64;
        let folder = if i % 3 == 0 {
            lib.join("sub")
        } else {
            lib.clone()
        };
        click_wav(&folder.join(format!("t{i:02}_{bpm:.0}.wav")), bpm, seconds);
    }
    // Recognised by its extension, refused by content: an error row in both paths.
    fs::write(lib.join("broken.wav"), b"not audio").unwrap();
    lib
}

fn eval_cli() -> Command {
    Command::cargo_bin("eval-cli").unwrap()
}

fn dist(server: &RedisServer, command: &str, job: &str, rest: &[&str]) -> Output {
    eval_cli()
        .args(["dist", command, "--broker", &server.url(), "--job", job])
        .args(rest)
        .output()
        .unwrap()
}

fn spawn_worker(server: &RedisServer, job: &str, rest: &[&str]) -> WorkerProcess {
    let child = Process::cargo_bin("eval-cli")
        .unwrap()
        .args(["dist", "work", "--broker", &server.url(), "--job", job])
        .args(rest)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    WorkerProcess(child)
}

fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({:?}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
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

fn merged_bytes(server: &RedisServer, job: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{job}.csv"));
    let output = dist(server, "merge", job, &["--out", out.to_str().unwrap()]);
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

fn submit(server: &RedisServer, job: &str, lib: &Path) -> Output {
    dist(server, "submit", job, &[lib.to_str().unwrap()])
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
}

#[test]
fn submit_twice_is_idempotent_and_another_manifest_is_refused() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 3, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");
    assert_ok(&submit(&server, "j", &lib), "second dist submit");
    let mut con = server.connection();
    let len: usize = redis::cmd("XLEN")
        .arg("tempo-scale:job:j:stream")
        .query(&mut con)
        .unwrap();
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
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 2, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");
    let refused = dist(&server, "work", "j", &["--min-bpm", "60", "--workers", "1"]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("refusing to mix results"),
        "{refused:?}"
    );
    assert_eq!(status(&server, "j")["done"], 0);
}

#[test]
fn a_killed_worker_loses_nothing_and_the_merge_is_identical() {
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 6, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");

    // What a worker killed with SIGKILL leaves behind: entries it was delivered and never
    // acknowledged, idle since it died (set to a minute, so no clock is raced).
    let mut con = server.connection();
    let stream = "tempo-scale:job:j:stream";
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "workers", "dead", "COUNT", "3", "STREAMS", stream, ">",
        ])
        .query(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[stream, "workers", "dead", "0", "0-1", "0-2", "0-3"])
        .arg(&["IDLE", "60000", "JUSTID"])
        .query(&mut con)
        .unwrap();
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
    let server = RedisServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), 2, 3.0);
    assert_ok(&submit(&server, "j", &lib), "dist submit");

    // Three workers that died holding the first entry: one delivery, then two claims, the
    // last one leaving it idle for a minute.
    let mut con = server.connection();
    let stream = "tempo-scale:job:j:stream";
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg(&[
            "GROUP", "workers", "ghost-1", "COUNT", "1", "STREAMS", stream, ">",
        ])
        .query(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[stream, "workers", "ghost-2", "0", "0-1"])
        .query(&mut con)
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(&[stream, "workers", "ghost-3", "0", "0-1", "IDLE", "60000"])
        .query(&mut con)
        .unwrap();
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
        lines[1]
            .ends_with(",error,dist: worker_died: delivered 3 times and its worker died each time"),
        "{merged}"
    );
    assert!(lines[2].contains(",ok,"), "{merged}");
}
