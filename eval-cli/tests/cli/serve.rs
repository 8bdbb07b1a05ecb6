//! `eval-cli serve` end to end: a real server on a free loopback port, a real HTTP client.
//! The server's port comes from its first stdout line; every server is killed by a guard.
//! Jobs that must stay running (cancel, limits, periodic progress, shutdown) are held by a
//! gate (`serve --test-gates`): a file that its worker holds until the test releases it
//! or the job is cancelled, so nothing depends on timing.
//! One file over 500 lines: every test talks to the one service, through the gates, the
//! raw-connection helpers and the browser driver below.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::util::service::{
    Events, Server, delete, gate, get, http_client, library, post_bytes, post_json, release, reply,
    root, run_job, run_request, submit,
};
use crate::util::{analyze_bytes, click_wav_bytes, csv_lines, fifo, wait_for_line};

/// One HTTP/1.1 exchange over a raw connection, with exactly the `headers` given (no
/// `Host` unless given) and `Connection: close`: the status and the whole answer.
fn raw(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    let answer = exchange(server, &request);
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    (status, answer)
}

/// Sends `request` as it is over a new connection; the whole answer, to the server's close.
fn exchange(server: &Server, request: &str) -> String {
    let mut stream = server.connect();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The JSON body of a raw answer.
fn raw_json(answer: &str) -> Value {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{answer}"
    );
    serde_json::from_str(body).unwrap()
}

/// The server holds no job (the requests before were all refused).
fn assert_no_jobs(server: &Server) {
    assert_eq!(
        get(server, "/v1/jobs").json()["jobs"],
        serde_json::json!([])
    );
}

#[test]
fn a_job_streams_its_files_and_gives_the_bytes_of_analyze() {
    let (_dir, root) = root();
    let lib = library(&root.join("lib"), 6, 90.0);
    let server = Server::start(&root, &["--workers", "2"]);

    // Relative to the root: the rows name the files under the canonical root, as
    // `analyze ROOT/lib` does.
    let id = submit(&server, &["lib"]);
    let mut events = Events::open(&server, id);
    let all = events.rest();
    let (first, _) = &all[0];
    assert_eq!(first, "progress", "the current state comes first");
    let files: Vec<&Value> = all
        .iter()
        .filter(|(n, _)| n == "file")
        .map(|(_, v)| v)
        .collect();
    let mut indices: Vec<u64> = files.iter().map(|f| f["index"].as_u64().unwrap()).collect();
    indices.sort();
    // A client that connected after some files finished sees their rows in results.json,
    // not again as events; this one subscribed at once, but the job may have started.
    assert!(files.len() <= 6);
    assert_eq!(indices.len(), files.len());
    let (last, end) = all.last().unwrap();
    assert_eq!(last, "finished");
    assert_eq!(end["status"], "done");
    assert_eq!(end["done"], 6);
    assert_eq!(end["failed"], 0);
    for file in &files {
        assert_eq!(file["row"]["status"], "ok");
        assert!(file["elapsed_s"].as_f64().unwrap() >= 0.0);
        assert!(!file["candidates"].as_array().unwrap().is_empty());
        for stage in ["decode", "onset", "tempo"] {
            assert!(file["stages"][stage].as_f64().unwrap() >= 0.0, "{file}");
        }
    }

    let csv = get(&server, &format!("/v1/jobs/{id}/results.csv"));
    assert_eq!(csv.status, 200);
    assert!(csv.content_type.starts_with("text/csv"));
    assert_eq!(
        String::from_utf8(csv.body).unwrap(),
        String::from_utf8(analyze_bytes(&[&lib])).unwrap()
    );
    let json = get(&server, &format!("/v1/jobs/{id}/results.json")).json();
    assert_eq!(json.as_array().unwrap().len(), 6);
    assert_eq!(json[0]["status"], "ok");

    let state = get(&server, &format!("/v1/jobs/{id}")).json();
    assert_eq!(state["status"], "done");
    assert_eq!(state["queued"], 0);
    let list = get(&server, "/v1/jobs").json();
    assert_eq!(list["jobs"][0]["id"], id);

    // A late client gets the final state, then `finished`, then the end.
    let late = Events::open(&server, id).rest();
    let names: Vec<&str> = late.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["progress", "finished"]);
    assert_eq!(late[0].1["done"], 6);

    let health = get(&server, "/v1/health").json();
    assert_eq!(health["status"], "ok");
    let metrics = String::from_utf8(get(&server, "/metrics").body).unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l == "tempo_files_total{status=\"ok\",kind=\"none\"} 6"),
        "{metrics}"
    );
    assert!(metrics.contains("tempo_file_seconds_count{source=\"job\"} 6"));
    assert!(metrics.contains("tempo_stage_seconds_count{stage=\"tempo\"} 6"));
    assert!(metrics.lines().any(|l| l == "tempo_queue_depth 0"));
}

#[test]
fn a_subscriber_sees_a_file_event_for_every_file_of_a_held_job() {
    let (_dir, root) = root();
    let lib = library(&root.join("lib"), 4, 100.0);
    let gate = gate(&root.join("gate.wav"));
    let server = Server::start(&root, &["--workers", "1", "--test-gates"]);
    // The gate is first: one worker is held on it, so the client is subscribed before any
    // file of `lib` can finish.
    let id = submit(&server, &["gate.wav", "lib"]);
    let mut events = Events::open(&server, id);
    let mut running_progress = 0;
    while running_progress < 3 {
        let (name, data) = events.next().unwrap();
        assert_eq!(name, "progress");
        if data["status"] == "running" {
            assert_eq!(data["running"], 1);
            assert_eq!(data["queued"], 4);
            running_progress += 1;
        }
    }
    release(&gate);
    let rest = events.rest();
    let mut indices: Vec<u64> = rest
        .iter()
        .filter(|(n, _)| n == "file")
        .map(|(_, v)| v["index"].as_u64().unwrap())
        .collect();
    indices.sort();
    assert_eq!(
        indices,
        [0, 1, 2, 3, 4],
        "one file event per file, gate included"
    );
    assert_eq!(rest.last().unwrap().0, "finished");
    let expected = analyze_bytes(&[&lib]);
    let csv = get(&server, &format!("/v1/jobs/{id}/results.csv")).body;
    // The gate's row first, then the rows of analyze on lib.
    let rows = csv_lines(&csv);
    assert!(rows[0].contains("gate.wav"), "{rows:?}");
    assert_eq!(rows[1..], csv_lines(&expected)[..]);
}

#[test]
fn cancel_drops_queued_files_stops_the_running_one_and_keeps_done_rows() {
    let (_dir, root) = root();
    library(&root.join("lib"), 1, 120.0);
    library(&root.join("more"), 8, 90.0);
    gate(&root.join("gate.wav"));
    let server = Server::start(&root, &["--workers", "1", "--test-gates"]);
    // One file done first, then the gate holds the only worker, then 8 files wait.
    let id = submit(&server, &["lib", "gate.wav", "more"]);
    let mut events = Events::open(&server, id);
    loop {
        let (name, data) = events.next().unwrap();
        if name == "progress" && data["done"] == 1 && data["running"] == 1 {
            assert_eq!(data["queued"], 8);
            break;
        }
    }
    let cancelled = delete(&server, &format!("/v1/jobs/{id}")).json();
    assert_eq!(cancelled["queued"], 0, "queued files are dropped at once");
    // The gate is never released: only the cancel reaching the running file's stop
    // signal frees its worker.
    let rest = events.rest();
    let (last, end) = rest.last().unwrap();
    assert_eq!(last, "finished");
    assert_eq!(end["status"], "cancelled");
    let state = get(&server, &format!("/v1/jobs/{id}")).json();
    assert_eq!(state["status"], "cancelled");
    assert_eq!(
        (state["queued"].as_u64(), state["running"].as_u64()),
        (Some(0), Some(0))
    );
    // The first row stays; the gate, stopped, has none.
    assert_eq!(state["done"], 1, "{state}");
    let rows = csv_lines(&get(&server, &format!("/v1/jobs/{id}/results.csv")).body);
    assert_eq!(rows.len(), 1);
    assert!(rows[0].contains("/lib/00-120.wav"), "{rows:?}");
    // The worker is free: another job runs to the end.
    let next = submit(&server, &["lib"]);
    assert_eq!(
        Events::open(&server, next).rest().pop().unwrap().1["status"],
        "done"
    );
    // Cancelling again changes nothing.
    assert_eq!(
        delete(&server, &format!("/v1/jobs/{id}")).json()["status"],
        "cancelled"
    );
}

#[test]
fn eight_concurrent_jobs_all_complete_with_their_rows() {
    let (_dir, root) = root();
    let libs: Vec<PathBuf> = (0..8)
        .map(|j| library(&root.join(format!("lib{j}")), 24, 70.0 + 2.0 * j as f64))
        .collect();
    let server = Server::start(&root, &["--workers", "2"]);
    let results: Vec<(PathBuf, Vec<u8>)> = std::thread::scope(|s| {
        let handles: Vec<_> = libs
            .iter()
            .map(|lib| {
                let server = &server;
                s.spawn(move || {
                    let id = submit(server, &[lib.to_str().unwrap()]);
                    let end = Events::open(server, id).rest().pop().unwrap();
                    assert_eq!(end.0, "finished");
                    assert_eq!(end.1["status"], "done");
                    let csv = get(server, &format!("/v1/jobs/{id}/results.csv")).body;
                    (lib.clone(), csv)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // One `analyze` over every folder: each job's rows are its folder's rows.
    let lib_refs: Vec<&Path> = libs.iter().map(PathBuf::as_path).collect();
    let all = csv_lines(&analyze_bytes(&lib_refs));
    for (lib, csv) in results {
        let prefix = format!("{}/", lib.display());
        let expected: Vec<String> = all
            .iter()
            .filter(|r| r.starts_with(&prefix))
            .cloned()
            .collect();
        assert_eq!(expected.len(), 24);
        assert_eq!(csv_lines(&csv), expected, "{}", lib.display());
    }
}

#[test]
fn paths_outside_the_roots_are_403_and_bad_requests_are_400_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = base.join("outside");
    library(&root.join("lib"), 1, 120.0);
    library(&outside, 1, 120.0);
    std::os::unix::fs::symlink(&outside, root.join("link")).unwrap();
    fs::create_dir_all(root.join("mixed")).unwrap();
    fs::write(root.join("mixed/in.wav"), click_wav_bytes(100.0, 3.0)).unwrap();
    std::os::unix::fs::symlink(outside.join("00-120.wav"), root.join("mixed/out.wav")).unwrap();
    let server = Server::start(&root, &["--max-upload-mb", "1"]);

    let forbidden = |path: &str| {
        let body = serde_json::json!({ "paths": [path] }).to_string();
        post_json(&server, "/v1/jobs", &body).refusal(403)
    };
    assert!(forbidden("../outside").contains("../outside"));
    assert!(forbidden("lib/../../outside").contains("lib/../../outside"));
    let abs = outside.join("00-120.wav");
    assert!(forbidden(abs.to_str().unwrap()).contains(abs.to_str().unwrap()));
    assert!(forbidden("/etc").contains("/etc"));
    assert!(forbidden("link").contains("link"));
    assert!(
        forbidden("mixed").contains("out.wav"),
        "a link inside a folder"
    );
    let missing = post_json(&server, "/v1/jobs", r#"{"paths": ["nope"]}"#).refusal(404);
    assert!(missing.contains("nope"));

    let bad = |body: &str| post_json(&server, "/v1/jobs", body).refusal(400);
    assert!(bad(r#"{"paths": ["lib""#).contains("invalid job request"));
    assert!(bad("").contains("invalid job request"));
    assert!(bad(r#"{"paths": ["lib"], "speed": 2}"#).contains("speed"));
    // A field of the wrong type is named.
    assert!(bad(r#"{"paths": "lib"}"#).contains("invalid job request: paths: invalid type"));
    assert!(bad(r#"{"paths": ["lib"], "min_bpm": "fast"}"#).contains("min_bpm: invalid type"));
    assert!(bad(r#"{"paths": []}"#).contains("empty"));
    assert!(bad(r#"{"paths": ["lib"], "priority": "urgent"}"#).contains("urgent"));
    assert!(bad(r#"{"paths": ["lib"], "min_bpm": 150, "max_bpm": 150}"#).contains("tempo range"));
    assert!(bad(r#"{"paths": ["lib"], "min_bpm": 200, "max_bpm": 100}"#).contains("tempo range"));
    assert!(bad(r#"{"paths": ["lib"], "min_bpm": -5}"#).contains("tempo range"));
    assert!(bad(r#"{"paths": ["lib"], "descriptors": ["tempo", "mood"]}"#).contains("mood"));
    assert!(
        bad(r#"{"paths": ["lib"], "descriptors": ["tempo", ""]}"#).contains("an empty name among")
    );
    assert!(bad(r#"{"paths": ["lib"], "descriptors": ["key"]}"#).contains("tempo must be"));
    assert!(
        bad(r#"{"paths": ["lib"], "descriptors": "tempo"}"#)
            .contains("invalid job request: descriptors: invalid type")
    );
    assert!(
        bad(r#"{"paths": ["lib"], "compound_beat": "eighth"}"#)
            .contains("compound_beat: \"eighth\" is not a compound beat")
    );

    assert!(get(&server, "/v1/jobs/999").refusal(404).contains("999"));
    assert!(
        get(&server, "/v1/jobs/x/results.csv")
            .refusal(404)
            .contains("x")
    );
    assert!(
        get(&server, "/v2/nothing")
            .refusal(404)
            .contains("/v2/nothing")
    );
    assert_eq!(delete(&server, "/v1/health").status, 405);

    // Over --max-upload-mb: 413 from the announced length, before any byte is read.
    let answer = exchange(
        &server,
        &format!(
            "POST /v1/analyze HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            server.addr(),
            2 * 1024 * 1024
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/json") && answer.contains("\"error\""));

    // Nothing above became a job, and a good request still works.
    assert_no_jobs(&server);
    submit(&server, &["lib", "mixed/in.wav"]);
}

#[test]
fn limits_give_429_with_retry_after_and_413_for_a_job_that_never_fits() {
    let (_dir, root) = root();
    library(&root.join("lib"), 3, 120.0);
    gate(&root.join("gate.wav"));
    {
        let server = Server::start(
            &root,
            &["--workers", "1", "--max-jobs", "1", "--test-gates"],
        );
        let held = submit(&server, &["gate.wav"]);
        let refused = post_json(&server, "/v1/jobs", r#"{"paths": ["lib"]}"#);
        assert!(refused.refusal(429).contains("--max-jobs"));
        assert_eq!(refused.retry_after.as_deref(), Some("5"));
        delete(&server, &format!("/v1/jobs/{held}"));
        assert_eq!(
            Events::open(&server, held).rest().pop().unwrap().0,
            "finished"
        );
        // The slot is free again.
        submit(&server, &["lib"]);
    }
    library(&root.join("big"), 5, 120.0);
    {
        let server = Server::start(
            &root,
            &["--workers", "1", "--max-queued-files", "4", "--test-gates"],
        );
        // The gate holds the one worker, so the library's three files stay queued
        // (1 + 3 fit in 4 whether the gate's file has started or not).
        let held = submit(&server, &["gate.wav"]);
        submit(&server, &["lib"]);
        let refused = post_json(&server, "/v1/jobs", r#"{"paths": ["lib"]}"#);
        assert!(refused.refusal(429).contains("--max-queued-files"));
        assert_eq!(refused.retry_after.as_deref(), Some("5"));
        // A job larger than the whole queue could never be admitted: 413, not a 429
        // that would have the client retry it forever.
        let never = post_json(&server, "/v1/jobs", r#"{"paths": ["big"]}"#);
        assert!(never.refusal(413).contains("split it"));
        assert_eq!(never.retry_after, None);
        let metrics = String::from_utf8(get(&server, "/metrics").body).unwrap();
        assert!(metrics.lines().any(|l| l == "tempo_jobs_rejected_total 2"));
        delete(&server, &format!("/v1/jobs/{held}"));
    }
}

#[test]
fn a_token_file_makes_every_request_need_the_bearer_token() {
    let (dir, root) = root();
    let token_file = dir.path().join("token");
    fs::write(&token_file, "s3cret\n").unwrap();
    let server = Server::start(&root, &["--token-file", token_file.to_str().unwrap()]);
    let health = |auth: Option<&str>| {
        let mut request = http_client().get(server.url("/v1/health"));
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        reply(request.call())
    };
    assert!(health(None).refusal(401).contains("Bearer"));
    health(Some("Bearer wrong")).refusal(401);
    health(Some("s3cret")).refusal(401);
    assert_eq!(health(Some("Bearer s3cret")).status, 200);
    // The scheme is case-insensitive (RFC 9110); `bearer` was refused with 401.
    assert_eq!(health(Some("bearer s3cret")).status, 200);
    get(&server, "/v1/jobs").refusal(401);
    post_json(&server, "/v1/jobs", r#"{"paths": ["x"]}"#).refusal(401);
    post_bytes(&server, "/v1/analyze", b"RIFF").refusal(401);
    // With a token any Host is served (a rebinding page cannot know the token); a
    // foreign Origin is still refused.
    let port = server.port();
    let by_name = format!("tempo.lan:{port}");
    let bearer = ("Authorization", "Bearer s3cret");
    let named = [("Host", by_name.as_str()), bearer];
    assert_eq!(raw(&server, "GET", "/v1/health", &named, "").0, 200);
    let addr = server.addr();
    let cross = [
        ("Host", addr.as_str()),
        ("Origin", "http://evil.example"),
        bearer,
    ];
    assert_eq!(raw(&server, "GET", "/v1/health", &cross, "").0, 403);
    // The page holds no data; it asks for the token itself. No other site may frame it,
    // and nothing in its address acts by itself (`/?submit=PATH` posted a job at once).
    let page = get(&server, "/");
    assert_eq!(page.status, 200);
    let source = String::from_utf8(page.body).unwrap();
    assert!(source.contains("/v1/jobs") && !source.contains("location.search"));
    let (status, answer) = raw(
        &server,
        "GET",
        "/?submit=lib",
        &[("Host", addr.as_str())],
        "",
    );
    assert_eq!(status, 200);
    let head = answer
        .split_once("\r\n\r\n")
        .unwrap()
        .0
        .to_ascii_lowercase();
    assert!(head.contains("x-frame-options: deny"), "{head}");
    assert!(head.contains("frame-ancestors 'none'"), "{head}");
}

#[test]
fn uploads_of_every_format_give_a_row_and_bad_bytes_an_error_row() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--workers", "2"]);
    let wav = post_bytes(&server, "/v1/analyze", &click_wav_bytes(120.0, 4.0));
    assert_eq!(wav.status, 200, "{}", String::from_utf8_lossy(&wav.body));
    let wav = wav.json();
    assert_eq!(wav["row"]["status"], "ok");
    assert_eq!(wav["row"]["path"], "upload");
    assert_eq!(wav["row"]["codec"], "pcm_s16le");
    let bpm: f64 = wav["row"]["bpm"].as_str().unwrap().parse().unwrap();
    assert!((bpm - 120.0).abs() < 2.0, "{wav}");
    assert!(!wav["candidates"].as_array().unwrap().is_empty());
    assert!(wav["row"].get("alt_bpm").is_some());

    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../analyzer-core/tests/fixtures");
    let mut codecs = BTreeMap::new();
    for ext in ["flac", "mp3", "ogg", "m4a"] {
        let bytes = fs::read(fixtures.join(format!("fourfloor-128.{ext}"))).unwrap();
        let answer = post_bytes(&server, "/v1/analyze", &bytes);
        assert_eq!(
            answer.status,
            200,
            "{ext}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let answer = answer.json();
        assert_eq!(answer["row"]["status"], "ok", "{ext}");
        let bpm: f64 = answer["row"]["bpm"].as_str().unwrap().parse().unwrap();
        assert!((bpm - 128.0).abs() < 2.0, "{ext}: {answer}");
        codecs.insert(ext, answer["row"]["codec"].as_str().unwrap().to_string());
    }
    assert_eq!(codecs.len(), 4);

    let mp3 = fs::read(fixtures.join("fourfloor-128.mp3")).unwrap();
    let truncated = post_bytes(&server, "/v1/analyze", &mp3[..2048]);
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let random: Vec<u8> = (0..50_000)
        .map(|_| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        })
        .collect();
    let noise = post_bytes(&server, "/v1/analyze", &random);
    for (what, answer) in [("truncated", truncated), ("random", noise)] {
        assert_eq!(
            answer.status,
            422,
            "{what}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        let answer = answer.json();
        assert_eq!(answer["row"]["status"], "error", "{what}");
        assert!(
            !answer["row"]["error"].as_str().unwrap().is_empty(),
            "{what}"
        );
    }
    assert!(
        post_bytes(&server, "/v1/analyze", b"")
            .refusal(400)
            .contains("empty")
    );

    let metrics = String::from_utf8(get(&server, "/metrics").body).unwrap();
    assert!(
        metrics.lines().any(|l| l == "tempo_uploads_total 7"),
        "{metrics}"
    );
    assert!(metrics.contains("tempo_file_seconds_count{source=\"upload\"} 7"));
}

/// `curl -F file=@x.flac` sends a multipart form: its envelope was probed and analysed as
/// if it were the audio (200, wrong numbers). It is a 415 saying to send the file as the
/// body; a raw body is read whatever type the client names (curl's `--data-binary` says
/// `application/x-www-form-urlencoded`).
#[test]
fn a_form_upload_is_refused_with_415_and_a_raw_body_of_any_type_is_read() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--workers", "1"]);
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../analyzer-core/tests/fixtures");
    let flac = fs::read(fixtures.join("fourfloor-128.flac")).unwrap();
    let boundary = "------------------------d74496d66958873e";
    let mut form = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
         filename=\"x.flac\"\r\nContent-Type: audio/flac\r\n\r\n"
    )
    .into_bytes();
    form.extend_from_slice(&flac);
    form.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let post_as = |content_type: &str, body: &[u8]| {
        reply(
            http_client()
                .post(server.url("/v1/analyze"))
                .header("Content-Type", content_type)
                .send(body),
        )
    };
    let refusal = post_as(&format!("multipart/form-data; boundary={boundary}"), &form).refusal(415);
    assert!(refusal.contains("curl --data-binary @FILE"), "{refusal}");

    let raw = post_as("application/x-www-form-urlencoded", &flac);
    assert_eq!(raw.status, 200, "{}", String::from_utf8_lossy(&raw.body));
    let bpm: f64 = raw.json()["row"]["bpm"].as_str().unwrap().parse().unwrap();
    assert!((bpm - 128.0).abs() < 2.0, "{bpm}");
}

/// Requests a proxy or a check could read two ways are refused with a JSON reason: two
/// `Host` headers (the first won) or two `Origin` headers are a 400, an absolute-form
/// target names the request's host whatever `Host` says (a 403 for another host; it was a
/// 200), and a compressed body is a 415 (it was read as its compressed bytes).
#[test]
fn ambiguous_hosts_and_compressed_bodies_are_refused() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--workers", "1"]);
    let own = server.addr().to_string();
    let (status, answer) = raw(
        &server,
        "GET",
        "/v1/health",
        &[("Host", &own), ("Host", "evil.example")],
        "",
    );
    assert_eq!(status, 400, "{answer}");
    assert!(
        raw_json(&answer)["error"]
            .as_str()
            .unwrap()
            .contains("more than one host")
    );
    let (status, answer) = raw(
        &server,
        "GET",
        "/v1/health",
        &[
            ("Host", &own),
            ("Origin", &format!("http://{own}")),
            ("Origin", "http://evil.example"),
        ],
        "",
    );
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = raw(
        &server,
        "GET",
        "http://evil.example/v1/health",
        &[("Host", &own)],
        "",
    );
    assert_eq!(status, 403, "{answer}");
    let (status, answer) = raw(
        &server,
        "GET",
        &format!("http://{own}/v1/health"),
        &[("Host", &own)],
        "",
    );
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = raw(
        &server,
        "POST",
        "/v1/jobs",
        &[("Host", &own), ("Content-Encoding", "gzip")],
        r#"{"paths": ["."]}"#,
    );
    assert_eq!(status, 415, "{answer}");
    assert!(
        raw_json(&answer)["error"]
            .as_str()
            .unwrap()
            .contains("Content-Encoding")
    );
}

/// An upload's settings are query parameters (its body is the audio), read by the rule of
/// a job's fields; an unknown or malformed one is a 400 naming it. A query string on a
/// route that reads none is a 400 too: `/v1/jobs?descriptors=tempo` was served as if the
/// parameter were not there.
#[test]
fn an_upload_takes_its_settings_from_the_query_and_other_routes_refuse_one() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--workers", "1"]);
    let wav = click_wav_bytes(120.0, 4.0);
    let row = |query: &str| {
        let answer = post_bytes(&server, &format!("/v1/analyze{query}"), &wav);
        assert_eq!(
            answer.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&answer.body)
        );
        answer.json()["row"].clone()
    };
    let bpm = |row: &Value| row["bpm"].as_str().unwrap().parse::<f64>().unwrap();
    let plain = row("");
    assert!((bpm(&plain) - 120.0).abs() < 2.0, "{plain}");
    assert_eq!(plain["loudness_lufs"], "");
    let fast = row("?min_bpm=150&max_bpm=300");
    assert!((bpm(&fast) - 240.0).abs() < 4.0, "{fast}");
    let loud = row("?descriptors=tempo,loudness");
    assert_ne!(loud["loudness_lufs"], "", "{loud}");
    assert_eq!(loud["key"], "");
    for (query, names) in [
        ("?tempo=120", "unknown field `tempo`"),
        ("?min_bpm=fast", "min_bpm=\"fast\" is not a number"),
        ("?descriptors=key", "tempo must be among the descriptors"),
        ("?min_bpm=300", "min_bpm (300)"),
    ] {
        let refusal = post_bytes(&server, &format!("/v1/analyze{query}"), &wav).refusal(400);
        assert!(refusal.contains(names), "{query}: {refusal}");
    }
    let refusal = get(&server, "/v1/jobs?descriptors=tempo").refusal(400);
    assert!(
        refusal.contains("/v1/jobs takes no query parameters"),
        "{refusal}"
    );
    // A path no route serves is its 404, query or not.
    assert!(
        get(&server, "/v1/nosuch?x=1")
            .refusal(404)
            .contains("no route")
    );
    let refusal = post_json(&server, "/v1/jobs?priority=high", r#"{"paths": ["."]}"#).refusal(400);
    assert!(refusal.contains("fields of its JSON body"), "{refusal}");
}

/// SIGTERM, and SIGHUP (a closed terminal) alike, shut a busy server down with status 0:
/// SIGHUP killed it without its shutdown (exit 129).
#[test]
fn sigterm_and_sighup_stop_a_busy_server_with_status_0() {
    for signal in ["-TERM", "-HUP"] {
        let (_dir, root) = root();
        library(&root.join("lib"), 2, 120.0);
        gate(&root.join("gate.wav"));
        let mut server = Server::start(&root, &["--workers", "1", "--test-gates"]);
        let id = submit(&server, &["gate.wav", "lib"]);
        let mut events = Events::open(&server, id);
        loop {
            let (name, data) = events.next().unwrap();
            if name == "progress" && data["running"] == 1 {
                break;
            }
        }
        let pid = server.child.id().to_string();
        assert!(
            Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap()
                .success()
        );
        // The gate is never released: the shutdown stops the held file. The open event
        // stream ends instead of holding the shutdown back.
        let _ = events.rest();
        let status = server.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{signal}");
    }
}

#[test]
fn an_upload_overtakes_the_queued_files_of_a_job() {
    let (_dir, root) = root();
    let first = gate(&root.join("gate1.wav"));
    let second = gate(&root.join("gate2.wav"));
    let server = Server::start(&root, &["--workers", "1", "--test-gates"]);
    // The only worker is held on gate1; gate2 waits in the queue.
    let id = submit(&server, &["gate1.wav", "gate2.wav"]);
    let mut events = Events::open(&server, id);
    while events.next().unwrap().1["running"] != 1 {}
    std::thread::scope(|s| {
        let upload = s.spawn(|| post_bytes(&server, "/v1/analyze", &click_wav_bytes(120.0, 4.0)));
        // Wait until the upload is queued beside gate2.
        while get(&server, "/v1/health").json()["queued"] != 2 {
            std::thread::yield_now();
        }
        release(&first);
        // Had the worker taken gate2 next, it would be held there and this never return.
        let answer = upload.join().unwrap();
        assert_eq!(answer.status, 200);
        assert_eq!(answer.json()["row"]["status"], "ok");
    });
    let state = get(&server, &format!("/v1/jobs/{id}")).json();
    assert_eq!(state["done"], 1, "gate2 has not finished: {state}");
    assert_eq!(state["status"], "running");
    release(&second);
    assert_eq!(events.rest().pop().unwrap().1["status"], "done");
}

/// A client that goes away before its upload's turn takes the upload with it: the
/// upload is counted cancelled, not as a file that failed (its temporary file was gone
/// when the worker came to it: `tempo_files_total{status="error",kind="unreadable"}`).
#[test]
fn an_upload_whose_client_went_away_is_cancelled_not_failed() {
    let (dir, root) = root();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    let held = gate(&root.join("gate1.wav"));
    let server = Server::start_with_tmpdir(&tmp, &root, &["--workers", "1", "--test-gates"]);
    let id = submit(&server, &["gate1.wav"]);
    let mut events = Events::open(&server, id);
    while events.next().unwrap().1["running"] != 1 {}
    let body = click_wav_bytes(120.0, 4.0);
    let mut client = server.connect();
    let head = format!(
        "POST /v1/analyze HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\n\r\n",
        server.addr(),
        body.len()
    );
    client.write_all(head.as_bytes()).unwrap();
    client.write_all(&body).unwrap();
    // Queued behind gate1, then the client goes: its temporary file goes with it.
    while get(&server, "/v1/health").json()["queued"] != 1 {
        std::thread::yield_now();
    }
    drop(client);
    while fs::read_dir(&tmp).unwrap().next().is_some() {
        std::thread::yield_now();
    }
    release(&held);
    assert_eq!(events.rest().pop().unwrap().1["status"], "done");
    let metric = |name: &str| -> u64 {
        let metrics = String::from_utf8(get(&server, "/metrics").body).unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or(0)
    };
    let unreadable = "tempo_files_total{status=\"error\",kind=\"unreadable\"}";
    // Until the worker has counted the upload, one way or the other.
    while metric("tempo_files_cancelled_total") + metric(unreadable) == 0 {
        std::thread::yield_now();
    }
    assert_eq!(
        (metric("tempo_files_cancelled_total"), metric(unreadable)),
        (1, 0)
    );
}

/// A temporary folder that cannot take a file (`TMPDIR` naming none) is said at the start:
/// every upload would be a 503, and nothing said so.
#[test]
fn a_temporary_folder_that_takes_no_file_is_said_at_the_start() {
    let (dir, root) = root();
    let mut child = crate::util::eval_cli_process()
        .args(["serve", "--listen", "127.0.0.1:0", "--root"])
        .arg(&root)
        .env("TMPDIR", dir.path().join("none"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut first,
    )
    .unwrap();
    assert!(first.starts_with("listening on "), "{first}");
    child.kill().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    child.wait().unwrap();
    assert!(stderr.contains("uploads cannot be stored in"), "{stderr}");
}

/// An upload's temporary file names its service's pid: a service that starts removes those
/// a stopped one left (`kill -9` mid-upload left up to `--max-upload-mb` for good), and
/// leaves a running service's and every other file.
#[test]
fn a_service_removes_the_uploads_a_killed_one_left() {
    let (dir, root) = root();
    let tmp = dir.path().join("tmp");
    fs::create_dir(&tmp).unwrap();
    // No pid is that large (pid_max is at most 2^22).
    let stale = tmp.join("eval-cli-upload-999999999-a1b2c3");
    let running = tmp.join(format!("eval-cli-upload-{}-d4e5f6", std::process::id()));
    let other = tmp.join("upload-999999999-x");
    for file in [&stale, &running, &other] {
        fs::write(file, b"half an upload").unwrap();
    }
    let server = Server::start_with_tmpdir(&tmp, &root, &["--workers", "1"]);
    assert_eq!(get(&server, "/v1/health").status, 200);
    assert!(!stale.exists());
    assert!(running.exists() && other.exists());
}

#[test]
fn a_second_identical_job_comes_from_the_cache_with_the_same_bytes() {
    let (dir, root) = root();
    let lib = library(&root.join("lib"), 4, 100.0);
    let cache = dir.path().join("cache");
    let cache_flag = cache.to_str().unwrap();
    let expected = analyze_bytes(&[&lib]);
    let metric = |server: &Server| -> u64 {
        let metrics = String::from_utf8(get(server, "/metrics").body).unwrap();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("tempo_cache_hits_total "))
            .unwrap_or_else(|| panic!("no cache metric in {metrics}"))
            .parse()
            .unwrap()
    };
    let server = Server::start(&root, &["--workers", "2", "--cache", cache_flag]);
    assert_eq!(run_job(&server, "lib"), expected);
    assert_eq!(metric(&server), 0, "an empty cache has nothing to give");
    assert_eq!(run_job(&server, "lib"), expected);
    assert_eq!(metric(&server), 4, "every file of the second job is a hit");
    // Stopped as a service is stopped (SIGTERM): the cache's queued rows are committed
    // before it exits. (A SIGKILL may lose the rows not yet committed; they would be
    // analysed again.)
    let mut server = server;
    let stopped = Command::new("kill")
        .args(["-TERM", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    assert!(server.child.wait().unwrap().success());
    drop(server);

    // Another process on the same cache, and a copy of the library under another name:
    // hits by content, rows under the copy's paths, as `analyze` of the copy writes them.
    let copy = root.join("copy");
    let copied = std::process::Command::new("cp")
        .arg("-r")
        .arg(&lib)
        .arg(&copy)
        .status()
        .unwrap();
    assert!(copied.success());
    let server = Server::start(&root, &["--workers", "2", "--cache", cache_flag]);
    assert_eq!(run_job(&server, "copy"), analyze_bytes(&[&copy]));
    assert_eq!(metric(&server), 4);
}

#[test]
fn idle_connections_past_the_cap_are_closed_and_never_starve_health() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--max-connections", "2", "--header-timeout", "1"]);
    // Six clients that connect and send nothing: two take the slots, four wait.
    let idle: Vec<TcpStream> = (0..6).map(|_| server.connect()).collect();
    // Answered once idle ones are closed, and never beside more connections than the cap.
    let metrics = String::from_utf8(get(&server, "/metrics").body).unwrap();
    let open: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("tempo_http_connections "))
        .unwrap_or_else(|| panic!("{metrics}"))
        .parse()
        .unwrap();
    assert!((1..=2).contains(&open), "{metrics}");
    assert_eq!(get(&server, "/v1/health").json()["status"], "ok");
    // Each idle client is closed by the server, without an answer.
    for mut client in idle {
        let mut answer = Vec::new();
        client.read_to_end(&mut answer).unwrap();
        assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));
    }
    // A kept-alive connection that goes quiet after its answer is closed too.
    let request = format!("GET /v1/health HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr());
    let answer = exchange(&server, &request);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn more_idle_clients_than_open_files_never_starve_health() {
    let (_dir, root) = root();
    // The default --max-connections (256) is lowered to fit 64 open files.
    let server = Server::start_with_open_files(64, &root, &["--header-timeout", "1"]);
    let idle: Vec<TcpStream> = (0..100).map(|_| server.connect()).collect();
    assert_eq!(get(&server, "/v1/health").json()["status"], "ok");
    drop(idle);
}

#[test]
fn a_body_that_stops_arriving_is_refused_with_408_in_json() {
    let (_dir, root) = root();
    let server = Server::start(&root, &["--body-timeout", "1"]);
    for path in ["/v1/jobs", "/v1/analyze"] {
        // 4 of the 1000 bytes announced, then nothing.
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 1000\r\n\r\nRIFF",
            server.addr()
        );
        let answer = exchange(&server, &request);
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        let error = raw_json(&answer)["error"].as_str().unwrap().to_string();
        assert!(error.contains("--body-timeout"), "{error}");
    }
    assert_no_jobs(&server);
}

#[test]
fn a_foreign_host_or_origin_is_refused_and_allow_origin_lets_one_in() {
    let (_dir, root) = root();
    library(&root.join("lib"), 1, 120.0);
    let server = Server::start(&root, &["--allow-origin", "https://tool.example"]);
    let addr = server.addr();
    let port = server.port();
    let job = r#"{"paths": ["lib"]}"#;

    // DNS rebinding: a page's own name in Host, with the service's port.
    let rebound = format!("evil.example:{port}");
    for (method, path, body) in [
        ("GET", "/v1/health", ""),
        ("GET", "/v1/jobs", ""),
        ("POST", "/v1/jobs", job),
        ("GET", "/", ""),
    ] {
        let (status, answer) = raw(&server, method, path, &[("Host", &rebound)], body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
        let error = raw_json(&answer)["error"].as_str().unwrap().to_string();
        assert!(error.contains("evil.example"), "{error}");
    }
    assert_eq!(raw(&server, "GET", "/v1/health", &[], "").0, 403, "no Host");
    let other_port = [("Host", "127.0.0.1:1")];
    assert_eq!(raw(&server, "GET", "/v1/health", &other_port, "").0, 403);
    let localhost = format!("localhost:{port}");
    assert_eq!(
        raw(&server, "GET", "/v1/health", &[("Host", &localhost)], "").0,
        200
    );

    // A cross-site page may neither create a job nor read one.
    let id = submit(&server, &["lib"]);
    let evil = [("Host", addr.as_str()), ("Origin", "http://evil.example")];
    let (status, answer) = raw(&server, "POST", "/v1/jobs", &evil, job);
    assert_eq!(status, 403, "{answer}");
    let error = raw_json(&answer)["error"].as_str().unwrap().to_string();
    assert!(error.contains("--allow-origin"), "{error}");
    for path in [
        "/v1/jobs".to_string(),
        format!("/v1/jobs/{id}"),
        format!("/v1/jobs/{id}/results.csv"),
        format!("/v1/jobs/{id}/events"),
    ] {
        let (status, answer) = raw(&server, "GET", &path, &evil, "");
        assert_eq!(status, 403, "{path}: {answer}");
        raw_json(&answer);
    }
    let jobs = get(&server, "/v1/jobs").json()["jobs"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(jobs, 1, "the refused request made no job");

    // The service's own page, and an origin let in by --allow-origin (with CORS).
    let own = format!("http://{addr}");
    let (status, answer) = raw(
        &server,
        "POST",
        "/v1/jobs",
        &[("Host", &addr), ("Origin", &own)],
        job,
    );
    assert_eq!(status, 201, "{answer}");
    let tool = [("Host", addr.as_str()), ("Origin", "https://tool.example")];
    let (status, answer) = raw(&server, "POST", "/v1/jobs", &tool, job);
    assert_eq!(status, 201, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-origin: https://tool.example"),
        "{answer}"
    );
    let preflight = [
        ("Host", addr.as_str()),
        ("Origin", "https://tool.example"),
        ("Access-Control-Request-Method", "POST"),
        ("Access-Control-Request-Headers", "content-type"),
    ];
    let (status, answer) = raw(&server, "OPTIONS", "/v1/jobs", &preflight, "");
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("access-control-allow-methods"),
        "{answer}"
    );
}

#[test]
fn a_link_out_of_the_root_answers_the_same_whether_its_target_exists() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().canonicalize().unwrap();
    let root = base.join("root");
    let outside = library(&base.join("outside"), 1, 120.0);
    fs::create_dir_all(root.join("lib/inner")).unwrap();
    fs::write(root.join("lib/in.wav"), click_wav_bytes(100.0, 3.0)).unwrap();
    let server = Server::start(&root, &[]);
    // The link `name` (under the root) made to point at `target`; the answer to a job of `job`.
    let answer = |name: &str, target: &Path, job: &str| {
        let link = root.join(name);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(target, &link).unwrap();
        let body = serde_json::json!({ "paths": [job] }).to_string();
        let reply = post_json(&server, "/v1/jobs", &body);
        (reply.status, String::from_utf8(reply.body).unwrap())
    };
    let targets = [
        outside.join("00-120.wav"),
        outside.clone(),
        outside.join("missing.wav"),
        base.join("missing-folder"),
    ];
    for (name, job) in [("link", "link"), ("lib/inner/link", "lib")] {
        let answers: Vec<(u16, String)> = targets.iter().map(|t| answer(name, t, job)).collect();
        assert_eq!(answers[0].0, 403, "{answers:?}");
        for other in &answers[1..] {
            assert_eq!(other, &answers[0], "{job}");
        }
        assert!(
            !answers[0].1.contains(outside.to_str().unwrap()),
            "{answers:?}"
        );
        let _ = fs::remove_file(root.join(name));
    }
    assert_no_jobs(&server);
}

/// A link inside the root is confined by where it leads but named as the job names it:
/// the rows are those `analyze` writes for the same paths, byte for byte. They named the
/// link's target (`real/a.wav` for `alias`), and a file beside its link was one row.
#[test]
fn paths_through_links_inside_the_root_give_the_rows_of_analyze() {
    let (_dir, root) = root();
    fs::create_dir_all(root.join("real")).unwrap();
    fs::write(root.join("real/a.wav"), click_wav_bytes(100.0, 3.0)).unwrap();
    std::os::unix::fs::symlink("real", root.join("alias")).unwrap();
    std::os::unix::fs::symlink("real/a.wav", root.join("a_link.wav")).unwrap();
    let server = Server::start(&root, &["--workers", "1"]);
    let served = |paths: &[&Path]| {
        let paths: Vec<&str> = paths.iter().map(|p| p.to_str().unwrap()).collect();
        String::from_utf8(run_request(&server, &serde_json::json!({ "paths": paths }))).unwrap()
    };
    let analysed = |paths: &[&Path]| String::from_utf8(analyze_bytes(paths)).unwrap();
    let alias = root.join("alias");
    let (file, file_link) = (root.join("real/a.wav"), root.join("a_link.wav"));
    for paths in [
        vec![alias.as_path()],
        vec![file.as_path(), file_link.as_path()],
        vec![
            alias.join("a.wav").as_path(),
            file_link.as_path(),
            alias.as_path(),
        ],
    ] {
        assert_eq!(served(&paths), analysed(&paths), "{paths:?}");
    }
    // Relative to the root: the rows of `analyze ROOT/PATH`.
    let relative = String::from_utf8(run_job(&server, "alias")).unwrap();
    assert_eq!(relative, analysed(&[&alias]));
    let rows = csv_lines(relative.as_bytes());
    assert_eq!(rows.len(), 1, "{relative}");
    assert!(
        rows[0].starts_with(&format!("{},", alias.join("a.wav").display())),
        "{relative}"
    );
}

#[test]
fn a_job_naming_fifos_finishes_with_error_rows_and_frees_its_workers() {
    let (_dir, root) = root();
    let lib = library(&root.join("lib"), 2, 120.0);
    let held = fifo(&root.join("held.wav"));
    fifo(&root.join("idle.wav"));
    fifo(&lib.join("in-folder.wav"));
    // One pipe has a writer the whole time, so that even a read would block for ever.
    let _writer = fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&held)
        .unwrap();
    let server = Server::start(&root, &["--workers", "2"]);
    for _ in 0..2 {
        let id = submit(&server, &["held.wav", "idle.wav", "lib"]);
        let (last, end) = Events::open(&server, id).rest().pop().unwrap();
        assert_eq!(
            (last.as_str(), &end["status"]),
            ("finished", &Value::from("done"))
        );
        // The two pipes named and the one met in the folder are error rows, as in analyze.
        assert_eq!(
            (end["done"].as_u64(), end["failed"].as_u64()),
            (Some(5), Some(3))
        );
        let rows = get(&server, &format!("/v1/jobs/{id}/results.json")).json();
        let rows = rows.as_array().unwrap();
        let piped: Vec<&Value> = rows.iter().filter(|r| r["status"] == "error").collect();
        assert_eq!(piped.len(), 3, "{rows:?}");
        for row in piped {
            assert_eq!(row["status"], "error");
            assert!(
                row["error"].as_str().unwrap().contains("named pipe"),
                "{row}"
            );
        }
    }
    assert_eq!(get(&server, "/v1/health").json()["running"], 0);
}

/// A process limit that refuses a thread the service needs (met through the
/// `EVAL_CLI_THREAD_ROOM` seam: root, who runs the tests, meets no `ulimit -u`) stops it
/// at once with exit 2, saying so. tokio panicked while starting its workers, and the
/// process then hung, listening on nothing, until killed.
#[test]
fn a_refused_thread_stops_the_service_at_once_with_exit_2() {
    let (_dir, root) = root();
    // 2 workers need 5 threads: 2 of them, 2 of the async side, 1 for its blocking work.
    for room in ["0", "4"] {
        let out = crate::util::eval_cli()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--workers",
                "2",
                "--root",
            ])
            .arg(&root)
            .env("EVAL_CLI_THREAD_ROOM", room)
            .timeout(std::time::Duration::from_secs(60))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "room {room}: {stderr}");
        assert_eq!(
            stderr,
            "eval-cli: error: cannot start: the system refused a thread (Resource temporarily \
             unavailable); raise the process limit (ulimit -u) or lower --workers\n"
        );
        assert!(out.stdout.is_empty(), "listening on nothing");
    }
    let one_worker = crate::util::eval_cli()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
            "--root",
        ])
        .arg(&root)
        .env("EVAL_CLI_THREAD_ROOM", "3")
        .timeout(std::time::Duration::from_secs(60))
        .output()
        .unwrap();
    assert_eq!(
        one_worker.status.code(),
        Some(2),
        "4 threads needed, 3 allowed"
    );
}

/// Submits a job of `path` three times, each after the one before has finished.
fn three_finished_jobs(server: &Server, path: &str) -> Vec<u64> {
    (0..3)
        .map(|_| {
            let id = submit(server, &[path]);
            assert_eq!(Events::open(server, id).rest().pop().unwrap().0, "finished");
            id
        })
        .collect()
}

#[test]
fn finished_jobs_beyond_keep_rows_expire_oldest_first_with_a_reason() {
    let (_dir, root) = root();
    library(&root.join("lib"), 2, 120.0);
    let server = Server::start(&root, &["--keep-rows", "4"]);
    let ids = three_finished_jobs(&server, "lib");
    // Two jobs of two rows hold the 4 rows kept: the first went.
    let expired = get(&server, &format!("/v1/jobs/{}/results.csv", ids[0])).refusal(404);
    assert!(
        expired.contains("expired") && expired.contains("4 rows together (--keep-rows)"),
        "{expired}"
    );
    for id in &ids[1..] {
        let job = get(&server, &format!("/v1/jobs/{id}")).json();
        assert_eq!((&job["status"], &job["files"]), (&"done".into(), &2.into()));
    }
}

#[test]
fn finished_jobs_beyond_keep_jobs_answer_404_with_a_reason() {
    let (_dir, root) = root();
    library(&root.join("lib"), 1, 120.0);
    let server = Server::start(&root, &["--keep-jobs", "2"]);
    let ids = three_finished_jobs(&server, "lib");
    for path in ["", "/results.csv", "/results.json", "/events"] {
        let expired = get(&server, &format!("/v1/jobs/{}{path}", ids[0])).refusal(404);
        assert!(
            expired.contains("expired") && expired.contains("--keep-jobs"),
            "{expired}"
        );
    }
    assert!(
        delete(&server, &format!("/v1/jobs/{}", ids[0]))
            .refusal(404)
            .contains("expired")
    );
    for id in &ids[1..] {
        assert_eq!(
            get(&server, &format!("/v1/jobs/{id}")).json()["status"],
            "done"
        );
    }
    let listed: Vec<u64> = get(&server, "/v1/jobs").json()["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, ids[1..]);
    assert!(get(&server, "/v1/jobs/99").refusal(404).contains("no job"));
}

/// `chromedriver` on a free port, killed by its pid on drop; `None` when Chromium or its
/// driver is not installed and the run does not require them (`.ci/run` sets
/// `TEMPO_SCALE_REQUIRE_BROWSER=1`, so CI never skips).
struct ChromeDriver {
    child: Child,
    base: String,
}

impl ChromeDriver {
    fn start() -> Option<Self> {
        let installed = ["chromium", "chromedriver"].iter().all(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if !installed {
            let required = std::env::var("TEMPO_SCALE_REQUIRE_BROWSER").is_ok_and(|v| v == "1");
            assert!(
                !required,
                "chromium and chromedriver are required (apt-get install -y --no-install-recommends \
                 chromium chromium-driver)"
            );
            eprintln!("skipped: chromium or chromedriver is not installed");
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Ready when it says so on stdout (no clock); the rest of its log is drained.
        let ready = wait_for_line(child.stdout.take().unwrap(), "started successfully");
        assert!(ready, "chromedriver did not start");
        Some(ChromeDriver {
            child,
            base: format!("http://127.0.0.1:{port}"),
        })
    }

    /// One W3C WebDriver command; its `value`.
    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "POST" => http_client()
                .post(&url)
                .header("Content-Type", "application/json")
                .send(body.to_string()),
            _ => http_client().delete(&url).call(),
        };
        let reply = reply(response);
        let value: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(reply.status, 200, "{method} {path}: {value}");
        value["value"].clone()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session, deleted on drop.
struct SessionGuard<'a> {
    driver: &'a ChromeDriver,
    id: String,
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        let url = format!("{}/session/{}", self.driver.base, self.id);
        let _ = http_client().delete(&url).call();
    }
}

#[test]
fn the_page_in_a_real_browser_submits_a_folder_and_shows_its_progress_and_rows() {
    let Some(driver) = ChromeDriver::start() else {
        return;
    };
    let (_dir, root) = root();
    let lib = library(&root.join("lib"), 4, 100.0);
    let server = Server::start(&root, &["--workers", "2"]);
    let session = driver.command(
        "POST",
        "/session",
        serde_json::json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
            },
            "timeouts": {"script": 120_000},
        }}}),
    );
    let id = session["sessionId"].as_str().unwrap().to_string();
    // Closes the browser also when an assertion fails (chromedriver's death would not).
    let _session = SessionGuard {
        driver: &driver,
        id: id.clone(),
    };
    let s = |path: &str| format!("/session/{id}{path}");
    driver.command(
        "POST",
        &s("/url"),
        serde_json::json!({"url": server.url("/")}),
    );

    // As a user does it: type the folder, press the button.
    let element = |css: &str| -> String {
        let found = driver.command(
            "POST",
            &s("/element"),
            serde_json::json!({"using": "css selector", "value": css}),
        );
        found
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .unwrap()
            .to_string()
    };
    let path_box = element("#path");
    driver.command(
        "POST",
        &s(&format!("/element/{path_box}/value")),
        serde_json::json!({"text": "lib"}),
    );
    let button = element("#submit");
    driver.command(
        "POST",
        &s(&format!("/element/{button}/click")),
        serde_json::json!({}),
    );

    // The page's own state, read when the job's element says done (a MutationObserver
    // wakes the script: no polling, no clock).
    let state = driver.command(
        "POST",
        &s("/execute/async"),
        serde_json::json!({"args": [], "script": r##"
            const done = arguments[arguments.length - 1];
            const seen = [];
            const check = () => {
                const job = document.querySelector("#jobs .job");
                if (!job) return false;
                const counts = job.querySelector(".counts").textContent;
                if (counts && !seen.includes(counts)) seen.push(counts);
                if (job.dataset.status !== "done" || job.dataset.rows !== "4") return false;
                const rows = [...job.querySelectorAll("tbody tr")].map(tr =>
                    [...tr.children].map(td => td.textContent));
                done({status: job.dataset.status, counts, seen, rows,
                      transport: job.dataset.transport,
                      error: document.querySelector("#message").textContent});
                return true;
            };
            // A hang guard, not a pass condition: after a minute the state so far is
            // returned and the assertions below say what is missing.
            setTimeout(() => done({status: "timed out", seen, rows: [],
                error: document.querySelector("#message").textContent}), 60000);
            if (!check()) {
                const observer = new MutationObserver(() => { if (check()) observer.disconnect(); });
                observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
            }
        "##}),
    );

    assert_eq!(state["error"], "", "{state}");
    assert_eq!(state["status"], "done", "{state}");
    assert_eq!(
        state["transport"], "websocket",
        "the page follows the job over its socket"
    );
    assert!(
        state["counts"]
            .as_str()
            .unwrap()
            .starts_with("4/4 done, 0 failed"),
        "{state}"
    );
    // The table shows the rows `analyze` writes: path, bpm and status, in input order
    // once sorted by index.
    let mut shown: Vec<(u64, String, String, String)> = state["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cell = |i: usize| r[i].as_str().unwrap().to_string();
            (cell(0).parse().unwrap(), cell(1), cell(2), cell(7))
        })
        .collect();
    shown.sort();
    let expected: Vec<(u64, String, String, String)> = csv_lines(&analyze_bytes(&[&lib]))
        .iter()
        .enumerate()
        .map(|(i, line)| {
            let cells: Vec<&str> = line.split(',').collect();
            (
                i as u64,
                cells[0].to_string(),
                cells[1].to_string(),
                cells[9].to_string(),
            )
        })
        .collect();
    assert_eq!(shown, expected);
}
