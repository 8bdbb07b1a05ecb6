//! `eval-cli consume` against a real RabbitMQ: each test starts its own node on free
//! loopback ports (util/rabbit.rs) and stops it, also when the test panics. Without
//! `rabbitmq-server` installed the tests fail and say how to install it.
//!
//! Nothing here reads a clock: the node's readiness is its own log line, the worker says
//! what it does as JSON lines (`--events`), results are awaited on their queue, and a file
//! stays "mid-analysis" for as long as the test wants because it is a gate
//! (`--test-gates`) opened when the test chooses.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command as Process;

use lapin::BasicProperties;
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};

use crate::util::events::EventfulWorker;
use crate::util::rabbit::RabbitServer;
use crate::util::service::{assert_lines, http_client, reply, scrape};
use crate::util::{analyze_bytes, click_wav, click_wav_bytes, csv_lines, eval_cli_process};

const QUEUE: &str = "analyse";
const REPLIES: &str = "replies";

/// Click tracks `names` in `dir/lib` (canonical), 4 s each at different tempi.
fn library(dir: &Path, names: &[&str]) -> PathBuf {
    let lib = dir.join("lib");
    fs::create_dir_all(&lib).unwrap();
    for (i, name) in names.iter().enumerate() {
        click_wav(&lib.join(name), 90.0 + 15.0 * i as f64, 4.0);
    }
    lib.canonicalize().unwrap()
}

/// `eval-cli consume --events` on `server`'s queue under `lib`, consuming once it says so.
fn consumer(server: &RabbitServer, lib: &Path, rest: &[&str]) -> EventfulWorker {
    let mut command = eval_cli_process();
    command
        .args([
            "consume",
            "--amqp",
            &server.url(),
            "--queue",
            QUEUE,
            "--events",
        ])
        .arg("--root")
        .arg(lib)
        .args(rest);
    let mut worker = EventfulWorker::spawn(command);
    worker.wait_for("consuming", |e| e["event"] == "consuming");
    worker
}

/// The line `analyze` writes for `file`.
fn analyze_line(file: &Path) -> String {
    let lines = csv_lines(&analyze_bytes(&[file]));
    assert_eq!(lines.len(), 1, "{lines:?}");
    format!("{}\n", lines[0])
}

/// Opens the gate `file` (`--test-gates`).
fn open_gate(file: &Path) {
    let mut open = file.as_os_str().to_owned();
    open.push(".open");
    fs::write(open, b"").unwrap();
}

fn header<'a>(properties: &'a BasicProperties, name: &str) -> Option<&'a AMQPValue> {
    properties.headers().as_ref()?.inner().get(name)
}

fn correlation_id(delivery: &Delivery) -> String {
    let id = delivery.properties.correlation_id().as_ref();
    id.expect("a message without a correlation id").to_string()
}

fn text(value: Option<&AMQPValue>) -> String {
    match value {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        Some(AMQPValue::ShortString(s)) => s.to_string(),
        other => panic!("not a string header: {other:?}"),
    }
}

#[test]
fn requests_are_answered_by_correlation_id_with_the_bytes_of_analyze() {
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["x.wav", "y.wav"]);
    let worker = consumer(&server, &lib, &["--workers", "2"]);
    let client = server.client();
    client.declare(REPLIES);
    client.request(QUEUE, "x.wav", Some(REPLIES), "cx");
    client.request(
        QUEUE,
        lib.join("y.wav").to_str().unwrap(),
        Some(REPLIES),
        "cy",
    );
    // The audio itself, named by its header.
    let mut headers = FieldTable::default();
    headers.insert("filename".into(), AMQPValue::LongString("song.wav".into()));
    let audio = click_wav_bytes(90.0, 4.0);
    client.publish(
        QUEUE,
        &audio,
        BasicProperties::default()
            .with_content_type("audio/wav".into())
            .with_reply_to(REPLIES.into())
            .with_correlation_id("bytes".into())
            .with_headers(headers),
    );
    let mut replies = client.consume(REPLIES);
    let mut answers = std::collections::BTreeMap::new();
    for _ in 0..3 {
        let delivery = client.next(&mut replies);
        let result: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        let id = correlation_id(&delivery);
        assert_eq!(result["correlation_id"], id.as_str());
        answers.insert(id, result);
    }
    for (id, file) in [("cx", "x.wav"), ("cy", "y.wav")] {
        let result = &answers[id];
        assert_eq!(
            result["csv"],
            analyze_line(&lib.join(file)).as_str(),
            "{id}"
        );
        assert_eq!(result["row"]["path"], lib.join(file).to_str().unwrap());
        assert_eq!(result["row"]["status"], "ok");
        assert!(!result["candidates"].as_array().unwrap().is_empty());
    }
    let bytes = &answers["bytes"];
    let x_line = analyze_line(&lib.join("x.wav"));
    let x_cells = x_line.split_once(',').unwrap().1;
    assert_eq!(bytes["csv"], format!("song.wav,{x_cells}").as_str());
    drop(worker);
}

#[test]
fn refused_requests_are_dead_lettered_with_their_reason_and_the_worker_goes_on() {
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["x.wav"]);
    fs::write(dir.path().join("secret.wav"), click_wav_bytes(100.0, 4.0)).unwrap();
    let mut worker = consumer(&server, &lib, &["--workers", "1", "--max-audio-mb", "1"]);
    let client = server.client();
    client.declare(REPLIES);
    client.request(QUEUE, "../secret.wav", Some(REPLIES), "outside");
    client.publish(
        QUEUE,
        b"{not json",
        BasicProperties::default()
            .with_content_type("application/json".into())
            .with_reply_to(REPLIES.into())
            .with_correlation_id("garbled".into()),
    );
    client.publish(
        QUEUE,
        &vec![0; 1024 * 1024 + 1],
        BasicProperties::default()
            .with_reply_to(REPLIES.into())
            .with_correlation_id("big".into()),
    );
    // No reply_to and no --result-exchange: nowhere for the result to go.
    client.request(QUEUE, "x.wav", None, "nowhere");
    client.request(QUEUE, "x.wav", Some(REPLIES), "fine");
    let mut dead = client.consume(&format!("{QUEUE}.dead"));
    let mut reasons = std::collections::BTreeMap::new();
    for _ in 0..4 {
        let delivery = client.next(&mut dead);
        let id = correlation_id(&delivery);
        let reason = text(header(&delivery.properties, "x-tempo-scale-reason"));
        if id == "outside" {
            // The request as it came, for whoever looks into the dead letters.
            assert_eq!(delivery.data, br#"{"path":"../secret.wav"}"#);
        }
        reasons.insert(id, reason);
    }
    assert!(
        reasons["outside"].contains("outside the roots"),
        "{reasons:?}"
    );
    assert!(!reasons["outside"].contains("secret.wav\" exists"));
    assert!(
        reasons["garbled"].starts_with("invalid request"),
        "{reasons:?}"
    );
    assert!(reasons["big"].contains("--max-audio-mb"), "{reasons:?}");
    assert!(reasons["nowhere"].contains("reply_to"), "{reasons:?}");
    let mut replies = client.consume(REPLIES);
    let answer = client.next_json(&mut replies);
    assert_eq!(answer["correlation_id"], "fine");
    let event = worker.wait_for("a dead letter", |e| e["event"] == "dead_lettered");
    assert!(event["reason"].as_str().is_some());
}

#[test]
fn a_result_that_cannot_be_published_is_dead_lettered_after_its_delivery_limit() {
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["x.wav"]);
    let mut worker = consumer(
        &server,
        &lib,
        &[
            "--workers",
            "1",
            "--delivery-limit",
            "2",
            "--result-exchange",
            "no-such-exchange",
            "--result-routing-key",
            "k",
        ],
    );
    let client = server.client();
    client.request(QUEUE, "x.wav", None, "poison");
    let mut dead = client.consume(&format!("{QUEUE}.dead"));
    let delivery = client.next(&mut dead);
    assert_eq!(delivery.data, br#"{"path":"x.wav"}"#);
    // Dead-lettered by the broker (not by the worker), for its delivery limit.
    assert!(header(&delivery.properties, "x-tempo-scale-reason").is_none());
    let Some(AMQPValue::FieldArray(deaths)) = header(&delivery.properties, "x-death") else {
        panic!("no x-death header: {:?}", delivery.properties);
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("an empty x-death header");
    };
    assert_eq!(text(death.inner().get("reason")), "delivery_limit");
    // Tried once more than its limit, never stored.
    let tries = worker.wait_for("the last try", |e| {
        e["event"] == "claimed" && e["deliveries"] == 3
    });
    assert_eq!(tries["correlation_id"], "poison");
}

#[test]
fn a_killed_worker_loses_nothing_and_a_stopped_one_finishes_its_request() {
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["gate-a.wav", "b.wav", "gate-c.wav"]);
    let gated = ["--workers", "1", "--test-gates"];
    let client = server.client();
    client.declare(REPLIES);
    let mut replies = client.consume(REPLIES);

    // The first worker takes the request and is killed before its result.
    let mut first = consumer(&server, &lib, &gated);
    client.request(QUEUE, "gate-a.wav", Some(REPLIES), "a");
    first.wait_for("the claim", |e| e["event"] == "claimed");
    drop(first);
    open_gate(&lib.join("gate-a.wav"));
    let mut second = consumer(&server, &lib, &gated);
    let redelivered = second.wait_for("the claim", |e| e["event"] == "claimed");
    assert_eq!(redelivered["deliveries"], 2);
    assert_eq!(client.next_json(&mut replies)["correlation_id"], "a");
    // One result: the next one is the next request's.
    client.request(QUEUE, "b.wav", Some(REPLIES), "b");
    assert_eq!(client.next_json(&mut replies)["correlation_id"], "b");

    // SIGTERM with a request in hand: it is finished, published and acknowledged.
    client.request(QUEUE, "gate-c.wav", Some(REPLIES), "c");
    second.wait_for("the claim", |e| {
        e["event"] == "claimed" && e["correlation_id"] == "c"
    });
    let pid = second.process.0.id().to_string();
    assert!(
        Process::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    open_gate(&lib.join("gate-c.wav"));
    let (status, events) = second.finish();
    assert_eq!(status.code(), Some(130), "{events:?}");
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "stored" && e["correlation_id"] == "c")
    );
    assert_eq!(client.next_json(&mut replies)["correlation_id"], "c");
}

#[test]
fn a_broker_restart_mid_stream_loses_nothing() {
    let mut server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["gate-a.wav", "b.wav", "c.wav"]);
    let mut worker = consumer(&server, &lib, &["--workers", "1", "--test-gates"]);
    {
        let client = server.client();
        client.declare(REPLIES);
        for (file, id) in [("gate-a.wav", "a"), ("b.wav", "b"), ("c.wav", "c")] {
            client.request(QUEUE, file, Some(REPLIES), id);
        }
    }
    worker.wait_for("the claim", |e| e["event"] == "claimed");
    server.stop();
    server.restart();
    open_gate(&lib.join("gate-a.wav"));
    worker.wait_for("the reconnection", |e| e["event"] == "reconnected");
    let client = server.client();
    let mut replies = client.consume(REPLIES);
    let mut ids: Vec<String> = (0..3)
        .map(|_| {
            client.next_json(&mut replies)["correlation_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    ids.sort();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn a_malformed_url_is_refused_at_once_not_retried() {
    let dir = tempfile::tempdir().unwrap();
    let output = eval_cli_process()
        .args(["consume", "--amqp", "not a url", "--queue", QUEUE, "--root"])
        .arg(dir.path())
        .args(["--broker-retry", "3600"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--amqp not a url"), "{stderr}");
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

/// The broker's password is never printed: not in the refusal of a malformed URL (whose
/// parser quotes it) nor when the broker stays away (port 1 refuses at once).
#[test]
fn the_brokers_password_is_redacted_in_every_message() {
    let dir = tempfile::tempdir().unwrap();
    for (url, retry, says) in [
        ("amqp:guest:s3cret@host", "3600", "--amqp amqp:***@host: "),
        (
            "amqp://guest:s3cret@127.0.0.1:1/%2f",
            "0.01",
            "the broker at amqp://guest:***@127.0.0.1:1/%2f stayed unreachable",
        ),
    ] {
        let output = eval_cli_process()
            .args(["consume", "--amqp", url, "--queue", QUEUE, "--root"])
            .arg(dir.path())
            .args(["--workers", "1", "--broker-retry", retry])
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(says), "{stderr}");
        assert!(!stderr.contains("s3cret"), "{stderr}");
    }
}

#[test]
fn metrics_count_the_requests_answered_and_dead_lettered() {
    let flags = ["--workers", "1", "--metrics", "127.0.0.1:0"];
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["x.wav"]);
    let mut worker = consumer(&server, &lib, &flags);
    let address = worker
        .seen()
        .iter()
        .find(|e| e["event"] == "metrics")
        .map(|e| e["address"].as_str().unwrap().to_string())
        .expect("no metrics event before consuming");
    let client = server.client();
    client.declare(REPLIES);
    client.request(QUEUE, "x.wav", Some(REPLIES), "fine");
    client.request(QUEUE, "../outside.wav", Some(REPLIES), "outside");
    let mut replies = client.consume(REPLIES);
    assert_eq!(client.next_json(&mut replies)["correlation_id"], "fine");
    // Counted once acknowledged: before the events that say so.
    worker.wait_for("the stored row", |e| e["event"] == "stored");
    worker.wait_for("the dead letter", |e| e["event"] == "dead_lettered");
    assert_lines(
        &scrape(&address),
        &[
            "tempo_requests_taken_total 2",
            "tempo_files_total{status=\"ok\",kind=\"none\"} 1",
            "tempo_descriptor_values_total{descriptor=\"tempo\"} 1",
            "tempo_dead_letters_total{class=\"path\"} 1",
            "tempo_broker_reconnects_total 0",
            "tempo_files_running 0",
            "tempo_file_seconds_count{source=\"queue\"} 1",
        ],
    );
    let elsewhere = reply(http_client().get(format!("http://{address}/jobs")).call());
    assert_eq!(
        elsewhere.refusal(404),
        "not found: this address serves GET /metrics only"
    );
    let deleted = reply(
        http_client()
            .delete(format!("http://{address}/metrics"))
            .call(),
    );
    assert_eq!(deleted.refusal(405), "DELETE is not allowed on /metrics");
}

#[test]
fn a_metrics_address_in_use_is_refused_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = eval_cli_process()
        .args([
            "consume",
            "--amqp",
            "amqp://127.0.0.1:1/%2f",
            "--queue",
            QUEUE,
        ])
        .arg("--root")
        .arg(dir.path())
        .args(["--metrics", &address])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("--metrics {address}: cannot listen")),
        "{stderr}"
    );
}

/// A request with a path of megabytes is dead-lettered with the path quoted by its head
/// and its size, and the worker goes on; one over the JSON limit (4 MiB) is refused
/// unread. The whole path in the header made the broker close the worker's connection
/// (`FRAME_ERROR`) at each delivery; cut to 2 KiB there, it still went whole into the
/// `dead-lettered` line and event on stderr.
#[test]
fn a_request_with_a_huge_path_is_dead_lettered_with_its_path_cut() {
    let server = RabbitServer::start();
    let dir = tempfile::tempdir().unwrap();
    let lib = library(dir.path(), &["x.wav"]);
    let mut worker = consumer(&server, &lib, &["--workers", "1"]);
    let client = server.client();
    client.declare(REPLIES);
    client.request(QUEUE, &"a".repeat(3 << 20), Some(REPLIES), "huge");
    client.request(QUEUE, &"a".repeat(5 << 20), Some(REPLIES), "over");
    client.request(QUEUE, "x.wav", Some(REPLIES), "fine");
    let mut dead = client.consume(&format!("{QUEUE}.dead"));
    let mut reasons = Vec::new();
    for expected in ["huge", "over"] {
        let delivery = client.next(&mut dead);
        assert_eq!(correlation_id(&delivery), expected);
        let reason = text(header(&delivery.properties, "x-tempo-scale-reason"));
        assert!(reason.len() < 1000, "{expected}: {} bytes", reason.len());
        reasons.push(reason);
    }
    assert!(reasons[0].starts_with("path \"aaaa"), "{}", reasons[0]);
    assert!(
        reasons[0].contains(&format!("… ({} bytes)", 3 << 20)),
        "{}",
        reasons[0]
    );
    assert!(
        reasons[1].contains("more than the limit of 4194304"),
        "{}",
        reasons[1]
    );
    let mut replies = client.consume(REPLIES);
    assert_eq!(client.next_json(&mut replies)["correlation_id"], "fine");
    for class in ["path", "too_large"] {
        let event = worker.wait_for("a dead letter", |e| e["event"] == "dead_lettered");
        assert_eq!(event["class"], class);
        let logged = event["reason"].as_str().unwrap();
        assert!(logged.len() < 1000, "{class}: {} bytes", logged.len());
    }
}
