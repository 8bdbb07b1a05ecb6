//! `eval-cli serve` as a test starts it (a free loopback port, read from its first stdout
//! line; killed on drop) and a small blocking HTTP client for it: requests, JSON answers,
//! a job's server-sent events, and a job run to its end.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use super::{click_wav_bytes, eval_cli_process, write_tracks};

/// A temporary root, canonical so that the rows' paths are those `analyze` prints.
pub fn root() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap().join("root");
    fs::create_dir_all(&root).unwrap();
    (dir, root)
}

/// A folder of `count` short click tracks (and a file that is not audio).
pub fn library(dir: &Path, count: usize, first_bpm: f64) -> PathBuf {
    fs::create_dir_all(dir.join("sub")).unwrap();
    write_tracks(
        dir,
        (0..count).map(|i| {
            let bpm = first_bpm + 7.0 * i as f64;
            let sub = if i % 3 == 2 { "sub/" } else { "" };
            (format!("{sub}{i:02}-{bpm}.wav"), bpm, 3.0)
        }),
    );
    fs::write(dir.join("notes.txt"), "not audio").unwrap();
    dir.to_path_buf()
}

/// A gate for a server started with `--test-gates`: a short WAV named `gate*.wav` whose
/// worker holds it until [`release`], or until its job is cancelled.
pub fn gate(path: &Path) -> PathBuf {
    assert!(
        path.file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("gate")
    );
    fs::write(path, click_wav_bytes(120.0, 3.0)).unwrap();
    path.to_path_buf()
}

/// Lets the worker held on `gate` go on (or lets it through at once if none holds it yet).
pub fn release(gate: &Path) {
    let mut open = gate.as_os_str().to_owned();
    open.push(".open");
    fs::write(open, b"").unwrap();
}

/// A running `eval-cli serve`, killed on drop.
pub struct Server {
    /// The `eval-cli serve` process.
    pub child: Child,
    base: String,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    pub fn start(root: &Path, args: &[&str]) -> Self {
        Self::spawn(eval_cli_process(), root, args)
    }

    /// [`Server::start`] with its temporary files (uploads) in `tmp`.
    pub fn start_with_tmpdir(tmp: &Path, root: &Path, args: &[&str]) -> Self {
        let mut command = eval_cli_process();
        command.env("TMPDIR", tmp);
        Self::spawn(command, root, args)
    }

    /// [`Server::start`] with at most `limit` open files (`ulimit -n`).
    pub fn start_with_open_files(limit: u32, root: &Path, args: &[&str]) -> Self {
        let mut shell = Command::new("sh");
        shell
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_eval-cli"));
        Self::spawn(shell, root, args)
    }

    /// `command` (the binary, or what execs it) with the arguments of `serve`.
    fn spawn(mut command: Command, root: &Path, args: &[&str]) -> Self {
        let mut child = command
            .args(["serve", "--listen", "127.0.0.1:0", "--root"])
            .arg(root)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let base = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line {line:?}"))
            .to_string();
        Server {
            child,
            base,
            _stdout: stdout,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn addr(&self) -> String {
        self.base.trim_start_matches("http://").to_string()
    }

    pub fn port(&self) -> String {
        self.addr().rsplit(':').next().unwrap().to_string()
    }

    /// A raw connection; a server that never answers fails the test instead of hanging it.
    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
        stream
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn http_client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        // A server that stopped answering fails the test instead of hanging it.
        .timeout_global(Some(Duration::from_secs(300)))
        .build()
        .into()
}

/// An answer: status, `Content-Type`, `Retry-After`, body.
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub retry_after: Option<String>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        assert!(
            self.content_type.starts_with("application/json"),
            "{} {:?}: {}",
            self.status,
            self.content_type,
            String::from_utf8_lossy(&self.body)
        );
        serde_json::from_slice(&self.body).unwrap()
    }

    /// The `error` of a JSON refusal, checking its status.
    pub fn refusal(&self, status: u16) -> String {
        assert_eq!(
            self.status,
            status,
            "{}",
            String::from_utf8_lossy(&self.body)
        );
        self.json()["error"].as_str().unwrap().to_string()
    }
}

pub fn reply(result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = result.unwrap();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
    };
    let content_type = header("content-type").unwrap_or_default();
    let retry_after = header("retry-after");
    Reply {
        status: response.status().as_u16(),
        content_type,
        retry_after,
        body: response.body_mut().read_to_vec().unwrap(),
    }
}

/// The page of `GET http://ADDRESS/metrics` (a broker worker's `--metrics`), checked to be
/// the Prometheus text format.
pub fn scrape(address: &str) -> String {
    let page = reply(
        http_client()
            .get(format!("http://{address}/metrics"))
            .call(),
    );
    assert_eq!(page.status, 200);
    assert!(
        page.content_type.starts_with("text/plain"),
        "{}",
        page.content_type
    );
    String::from_utf8(page.body).unwrap()
}

/// Fails naming the first of `lines` that `page` does not hold as a whole line.
pub fn assert_lines(page: &str, lines: &[&str]) {
    for line in lines {
        assert!(
            page.lines().any(|l| l == *line),
            "{line} missing in\n{page}"
        );
    }
}

pub fn get(server: &Server, path: &str) -> Reply {
    reply(http_client().get(server.url(path)).call())
}

pub fn post_json(server: &Server, path: &str, body: &str) -> Reply {
    reply(
        http_client()
            .post(server.url(path))
            .header("Content-Type", "application/json")
            .send(body),
    )
}

pub fn post_bytes(server: &Server, path: &str, body: &[u8]) -> Reply {
    reply(http_client().post(server.url(path)).send(body))
}

pub fn delete(server: &Server, path: &str) -> Reply {
    reply(http_client().delete(server.url(path)).call())
}

/// Submits a job of `paths`; returns its id.
pub fn submit(server: &Server, paths: &[&str]) -> u64 {
    submit_request(server, &serde_json::json!({ "paths": paths }))
}

/// Submits the job request `request` (a JSON object), checks the 201 and returns the id.
pub fn submit_request(server: &Server, request: &Value) -> u64 {
    let reply = post_json(server, "/v1/jobs", &request.to_string());
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["id"].as_u64().unwrap()
}

/// A job's server-sent events, one `(name, data)` at a time.
pub struct Events {
    lines: std::io::Lines<BufReader<Box<dyn Read + Send>>>,
}

impl Events {
    pub fn open(server: &Server, id: u64) -> Self {
        let response = http_client()
            .get(server.url(&format!("/v1/jobs/{id}/events")))
            .call()
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        let reader: Box<dyn Read + Send> = Box::new(response.into_body().into_reader());
        Events {
            lines: BufReader::new(reader).lines(),
        }
    }

    /// The next event; `None` when the stream ends.
    pub fn next(&mut self) -> Option<(String, Value)> {
        let (mut name, mut data) = (String::new(), String::new());
        loop {
            let line = match self.lines.next() {
                Some(Ok(line)) => line,
                _ => return None,
            };
            if line.is_empty() {
                if !data.is_empty() {
                    return Some((name, serde_json::from_str(&data).unwrap()));
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("event:") {
                name = v.trim().to_string();
            } else if let Some(v) = line.strip_prefix("data:") {
                data.push_str(v.trim_start());
            }
        }
    }

    /// Every event to the end of the stream.
    pub fn rest(&mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

/// A job's events over its WebSocket (`/v1/jobs/{id}/ws`), one `(name, data)` at a time.
pub struct Socket {
    ws: tungstenite::WebSocket<TcpStream>,
    /// The subprotocol the server chose, if any.
    pub protocol: Option<String>,
    /// The close code the server sent, once it has.
    pub close_code: Option<u16>,
}

impl Socket {
    /// Opens the socket of job `id` with `headers` added to the handshake; the refusal's
    /// status and JSON body when the server does not upgrade.
    pub fn open(server: &Server, id: u64, headers: &[(&str, &str)]) -> Result<Self, (u16, Value)> {
        use tungstenite::client::IntoClientRequest;
        let url = format!("ws://{}/v1/jobs/{id}/ws", server.addr());
        let mut request = url.into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        match tungstenite::client(request, server.connect()) {
            Ok((ws, response)) => Ok(Socket {
                ws,
                protocol: response
                    .headers()
                    .get("sec-websocket-protocol")
                    .map(|v| v.to_str().unwrap().to_string()),
                close_code: None,
            }),
            Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                let body = response.body().clone().unwrap_or_default();
                let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
                Err((response.status().as_u16(), json))
            }
            Err(e) => panic!("websocket handshake: {e}"),
        }
    }

    /// Sends a text frame.
    pub fn send(&mut self, text: &str) {
        self.ws.send(tungstenite::Message::text(text)).unwrap();
    }

    /// The next event; `None` once the server closed the socket.
    pub fn next(&mut self) -> Option<(String, Value)> {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Text(text)) => {
                    let mut frame: Value = serde_json::from_str(text.as_str()).unwrap();
                    let name = frame["event"].as_str().unwrap().to_string();
                    return Some((name, frame["data"].take()));
                }
                Ok(tungstenite::Message::Close(frame)) => {
                    self.close_code = frame.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }

    /// Every event to the server's close.
    pub fn rest(&mut self) -> Vec<(String, Value)> {
        std::iter::from_fn(|| self.next()).collect()
    }
}

/// Submits a job of `path` (relative to the root), follows its events to the end and
/// returns its `results.csv`, checking that the job finished as `done`.
pub fn run_job(server: &Server, path: &str) -> Vec<u8> {
    run_request(server, &serde_json::json!({ "paths": [path] }))
}

/// [`run_job`] of the job request `request` (a JSON object).
pub fn run_request(server: &Server, request: &Value) -> Vec<u8> {
    let id = submit_request(server, request);
    let (last, end) = Events::open(server, id).rest().pop().unwrap();
    assert_eq!(
        (last.as_str(), &end["status"]),
        ("finished", &Value::from("done"))
    );
    get(server, &format!("/v1/jobs/{id}/results.csv")).body
}
