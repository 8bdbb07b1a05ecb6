//! A `redis-server` of one test on a free loopback port, its append-only file in a temp
//! dir, killed by its pid when dropped (also when the test panics). Without
//! `redis-server` installed a test that starts one fails and says how to install it: CI
//! installs it, so the broker tests always run there.

use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command as Process, Output, Stdio};

use super::eval_cli;

/// A `redis-server` of one test, killed by its pid when dropped.
pub struct RedisServer {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// A fresh server on a free port, ready for connections.
    pub fn start() -> Self {
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
            let mut server = RedisServer {
                child: Self::spawn(port, dir.path()),
                port,
                dir,
            };
            if server.wait_ready() {
                return server;
            }
            // Another process took the port between our probe and the server's bind.
        }
        panic!("redis-server did not start on a free port in 5 tries");
    }

    /// The server on `port`, with its append-only file in `dir` (replayed when it exists).
    fn spawn(port: u16, dir: &Path) -> Child {
        Process::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "yes", "--daemonize", "no"])
            // Every write is in the file before its reply: with the default (`everysec`) a
            // busy disk lets the server postpone its writes, and a crash right after a
            // submit could lose the job, which a test that crashes it cannot tell apart.
            .args(["--appendfsync", "always"])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start redis-server")
    }

    /// Kills the server with SIGKILL and starts it again on the same port from its
    /// append-only file, as after a crash.
    pub fn crash_and_restart(&mut self) {
        self.crash();
        self.restart();
    }

    /// Kills the server with SIGKILL and starts it again on the same port with nothing in
    /// it, as a broker without persistence comes back.
    pub fn crash_and_forget(&mut self) {
        self.crash();
        for entry in fs::read_dir(self.dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                fs::remove_dir_all(path).unwrap();
            } else {
                fs::remove_file(path).unwrap();
            }
        }
        self.restart();
    }

    /// Kills the server with SIGKILL: its port refuses connections until [`Self::restart`].
    pub fn crash(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// Starts the killed server again on its port, from its append-only file if any.
    pub fn restart(&mut self) {
        self.child = Self::spawn(self.port, self.dir.path());
        assert!(
            self.wait_ready(),
            "redis-server did not restart on its port"
        );
    }

    /// Reads the server's log until it says it accepts connections (true) or ends because
    /// the server exited (false: the port was taken). No clock: the read blocks on the pipe.
    fn wait_ready(&mut self) -> bool {
        self.child
            .stdout
            .take()
            .is_some_and(|log| super::wait_for_line(log, "Ready to accept connections"))
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn connection(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection()
            .unwrap()
    }

    /// The key of `job`'s `name` (`stream`, `rows`...): under the run its manifest names.
    pub fn run_key(&self, job: &str, name: &str) -> String {
        let manifest: String = redis::cmd("GET")
            .arg(format!("tempo-scale:job:{job}:manifest"))
            .query(&mut self.connection())
            .unwrap();
        let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
        let run = manifest["run"].as_str().unwrap();
        format!("tempo-scale:job:{job}:run:{run}:{name}")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `eval-cli dist COMMAND --broker (server) --job JOB REST`, run to its end.
pub fn dist(server: &RedisServer, command: &str, job: &str, rest: &[&str]) -> Output {
    eval_cli()
        .args(["dist", command, "--broker", &server.url(), "--job", job])
        .args(rest)
        .output()
        .unwrap()
}

/// The bytes `dist merge` writes for `job` into `dir/JOB.csv` (exit 1: the job holds a
/// failed row).
pub fn merged_bytes(server: &RedisServer, job: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{job}.csv"));
    let output = dist(server, "merge", job, &["--out", out.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    fs::read(out).unwrap()
}
