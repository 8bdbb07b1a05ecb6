//! `serve`'s WebSocket, `/v1/jobs/{id}/ws`, through a real client: the events of the SSE
//! stream as text frames, `cancel` from the client, the token as a header or a
//! subprotocol. Jobs are held by gates (`serve --test-gates`), so nothing depends on timing.

use serde_json::Value;

use crate::util::service::{Server, Socket, gate, get, library, release, root, submit};
use crate::util::{analyze_bytes, csv_lines};

#[test]
fn a_websocket_carries_every_event_and_closes_after_finished() {
    let (_dir, root) = root();
    let lib = library(&root.join("lib"), 4, 100.0);
    let gate = gate(&root.join("gate.wav"));
    let server = Server::start(&root, &["--workers", "1", "--test-gates"]);
    // The gate holds the only worker: the socket is open before any file of `lib` ends.
    let id = submit(&server, &["gate.wav", "lib"]);
    let mut socket = Socket::open(&server, id, &[]).unwrap();
    assert_eq!(socket.protocol, None, "no subprotocol asked, none given");
    let (name, first) = socket.next().unwrap();
    assert_eq!(name, "progress");
    assert_eq!(first["files"], 5, "{first}");
    release(&gate);
    let rest = socket.rest();
    assert_eq!(
        socket.close_code,
        Some(1000),
        "a normal close after finished"
    );
    let (last, end) = rest.last().unwrap();
    assert_eq!(
        (last.as_str(), &end["status"]),
        ("finished", &Value::from("done"))
    );
    assert_eq!(end["done"], 5);
    // One file event per file, each with the row results.json gives it.
    let files: Vec<&Value> = rest
        .iter()
        .filter(|(n, _)| n == "file")
        .map(|(_, v)| v)
        .collect();
    assert_eq!(files.len(), 5);
    let results = get(&server, &format!("/v1/jobs/{id}/results.json")).json();
    for file in &files {
        let index = file["index"].as_u64().unwrap() as usize;
        assert_eq!(file["row"], results[index], "{file}");
    }
    // And those rows are analyze's bytes.
    let csv = get(&server, &format!("/v1/jobs/{id}/results.csv")).body;
    assert_eq!(csv_lines(&csv)[1..], csv_lines(&analyze_bytes(&[&lib]))[..]);
}

#[test]
fn cancel_sent_on_the_socket_cancels_the_job_and_anything_else_is_answered() {
    let (_dir, root) = root();
    library(&root.join("more"), 6, 90.0);
    gate(&root.join("gate.wav"));
    let server = Server::start(&root, &["--workers", "1", "--test-gates"]);
    let id = submit(&server, &["gate.wav", "more"]);
    let mut socket = Socket::open(&server, id, &[]).unwrap();
    assert_eq!(socket.next().unwrap().0, "progress");
    socket.send(r#"{"type":"pause"}"#);
    // Progress frames may come first; the answer to the unknown message is an error frame.
    let refusal = std::iter::from_fn(|| socket.next())
        .find(|(n, _)| n != "progress")
        .unwrap();
    assert_eq!(refusal.0, "error");
    assert!(
        refusal.1["error"].as_str().unwrap().contains("cancel"),
        "{refusal:?}"
    );
    // The gate is never released: only the cancel frees the worker and ends the job.
    socket.send("cancel");
    let (last, end) = socket.rest().pop().unwrap();
    assert_eq!(
        (last.as_str(), &end["status"]),
        ("finished", &Value::from("cancelled"))
    );
    assert_eq!(
        get(&server, &format!("/v1/jobs/{id}")).json()["status"],
        "cancelled"
    );
}

#[test]
fn the_socket_needs_the_token_as_a_header_or_a_subprotocol_and_a_known_job() {
    let (dir, root) = root();
    library(&root.join("lib"), 1, 120.0);
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret\n").unwrap();
    let server = Server::start(&root, &["--token-file", token_file.to_str().unwrap()]);
    let id = {
        let reply = crate::util::service::http_client()
            .post(server.url("/v1/jobs"))
            .header("Authorization", "Bearer s3cret")
            .send(r#"{"paths": ["lib"]}"#)
            .unwrap();
        let body: Value = serde_json::from_reader(reply.into_body().into_reader()).unwrap();
        body["id"].as_u64().unwrap()
    };
    let (status, body) = Socket::open(&server, id, &[]).err().unwrap();
    assert_eq!(status, 401);
    assert!(body["error"].as_str().unwrap().contains("Bearer"), "{body}");
    let wrong = [(
        "Sec-WebSocket-Protocol",
        "tempo-scale, tempo-scale.bearer.nope",
    )];
    assert_eq!(Socket::open(&server, id, &wrong).err().unwrap().0, 401);

    let by_header = [("Authorization", "Bearer s3cret")];
    let ended = Socket::open(&server, id, &by_header).unwrap().rest();
    assert_eq!(ended.last().unwrap().0, "finished");
    let offered = [(
        "Sec-WebSocket-Protocol",
        "tempo-scale, tempo-scale.bearer.s3cret",
    )];
    let mut socket = Socket::open(&server, id, &offered).unwrap();
    assert_eq!(
        socket.protocol.as_deref(),
        Some("tempo-scale"),
        "the token is not echoed"
    );
    assert_eq!(socket.rest().last().unwrap().0, "finished");

    let (status, body) = Socket::open(&server, 999, &by_header).err().unwrap();
    assert_eq!(status, 404);
    assert!(body["error"].as_str().unwrap().contains("no job"), "{body}");
}

/// A request to the socket's path that is no WebSocket handshake (a plain GET, or an
/// upgrade without its key) is refused with the service's JSON error, as every other
/// bad request is, not the web framework's plain text.
#[test]
fn a_request_that_is_no_handshake_gets_a_json_refusal() {
    let (_dir, root) = root();
    library(&root.join("lib"), 1, 120.0);
    let server = Server::start(&root, &[]);
    let id = submit(&server, &["lib"]);
    let path = format!("/v1/jobs/{id}/ws");
    let plain = get(&server, &path).refusal(400);
    assert!(plain.contains("not a WebSocket handshake"), "{plain}");
    let keyless = crate::util::service::reply(
        crate::util::service::http_client()
            .get(server.url(&path))
            .header("Connection", "Upgrade")
            .header("Upgrade", "websocket")
            .header("Sec-WebSocket-Version", "13")
            .call(),
    )
    .refusal(400);
    assert!(keyless.contains("Sec-WebSocket-Key"), "{keyless}");
}
