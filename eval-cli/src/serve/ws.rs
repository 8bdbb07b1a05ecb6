//! `GET /v1/jobs/{id}/ws`: the events of `/v1/jobs/{id}/events` over a WebSocket, for
//! front ends that speak WebSocket rather than server-sent events.
//!
//! - Each event is one text frame, `{"event":"progress"|"file"|"finished","data":{...}}`,
//!   the same values in the same order as the SSE stream; after `finished` the server
//!   closes the socket (close code 1000).
//! - The client may send `cancel` (or `{"type":"cancel"}`): the job is cancelled as by
//!   `DELETE /v1/jobs/{id}` and the events go on to its `finished`. Anything else gets an
//!   `error` frame and the socket stays open.
//! - A client that reads slowly never makes the service buffer without bound: while a
//!   frame waits to be sent, events pile up in the job's bounded broadcast channel, and
//!   one that falls behind it gets the counts again (a `progress` snapshot) instead of the
//!   rows it missed (they are in `results.json`), as with SSE.
//! - An open socket holds one of the `--max-connections` slots of its own: past them the
//!   upgrade is refused with 503.
//! - With `--token-file`, a browser (which cannot set `Authorization` on a WebSocket) may
//!   offer the subprotocols `tempo-scale` and `tempo-scale.bearer.TOKEN`; the server
//!   answers with `tempo-scale` (api.rs reads the token).

use std::sync::Arc;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::OwnedSemaphorePermit;

use super::App;
use super::events::{Feed, Update};
use super::http::{self, JobParam};
use super::job_routes::cancel_job;

/// The subprotocol the service speaks, and the prefix of the one that carries a token.
pub const PROTOCOL: &str = "tempo-scale";
/// `tempo-scale.bearer.TOKEN`: the token offered as a subprotocol.
pub const BEARER_PROTOCOL_PREFIX: &str = "tempo-scale.bearer.";

/// The handler: checks the job and a free connection slot, then upgrades. A request that
/// is no WebSocket handshake (no `Upgrade`, no key, another version) gets the service's
/// JSON error with the status axum gives it (400), not axum's plain text.
pub async fn socket(
    State(app): State<Arc<App>>,
    JobParam(id): JobParam,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let job = match http::find(&app, &id) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            return http::error(
                rejection.status(),
                format!("not a WebSocket handshake: {}", rejection.body_text()),
            );
        }
    };
    let Some(slot) = app.connections.try_take() else {
        return http::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "every connection slot is taken (--max-connections); try again",
        );
    };
    let feed = Feed::follow(&app, job);
    upgrade
        .protocols([PROTOCOL])
        .on_upgrade(move |socket| run(socket, feed, app, slot))
}

/// What the client asked for in a text frame.
fn is_cancel(text: &str) -> bool {
    let text = text.trim();
    text == "cancel"
        || serde_json::from_str::<serde_json::Value>(text)
            .is_ok_and(|v| v.get("type").and_then(|t| t.as_str()) == Some("cancel"))
}

/// One frame of an event: `{"event":NAME,"data":JSON}`.
fn frame(update: &Update) -> Message {
    Message::Text(format!(r#"{{"event":"{}","data":{}}}"#, update.name, update.data).into())
}

/// Sends the feed's events until the job's end or the service's shutdown, and answers
/// the client's frames meanwhile.
async fn run(socket: WebSocket, mut feed: Feed, app: Arc<App>, slot: OwnedSemaphorePermit) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        tokio::select! {
            update = feed.next() => {
                let Some(update) = update else {
                    let close = CloseFrame {
                        code: close_code::NORMAL,
                        reason: "".into(),
                    };
                    let _ = sink.send(Message::Close(Some(close))).await;
                    break;
                };
                if sink.send(frame(&update)).await.is_err() {
                    break;
                }
            }
            received = incoming.next() => match received {
                Some(Ok(Message::Text(text))) => {
                    if is_cancel(&text) {
                        cancel_job(&app, feed.job());
                    } else {
                        let refusal = Update {
                            name: "error",
                            data: serde_json::json!({
                                "error": "unknown message: send `cancel` or {\"type\":\"cancel\"}"
                            })
                            .to_string(),
                        };
                        if sink.send(frame(&refusal)).await.is_err() {
                            break;
                        }
                    }
                }
                // Pings are answered by the library; binary frames mean nothing here.
                Some(Ok(Message::Binary(_) | Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
        }
    }
    drop(slot);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_is_read_in_both_forms_and_nothing_else_is_cancel() {
        assert!(is_cancel("cancel"));
        assert!(is_cancel(" cancel\n"));
        assert!(is_cancel(r#"{"type":"cancel"}"#));
        assert!(!is_cancel(r#"{"type":"pause"}"#));
        assert!(!is_cancel("cancelled"));
        assert!(!is_cancel("{"));
    }

    #[test]
    fn a_frame_names_its_event_beside_its_json() {
        let update = Update {
            name: "progress",
            data: r#"{"done":1}"#.into(),
        };
        let Message::Text(text) = frame(&update) else {
            panic!("not text")
        };
        let value: serde_json::Value = serde_json::from_str(text.as_str()).unwrap();
        assert_eq!(value["event"], "progress");
        assert_eq!(value["data"]["done"], 1);
    }
}
