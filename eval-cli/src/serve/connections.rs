//! Accepting connections: at most `--max-connections` at once, each closed when it sends
//! no request headers within `--header-timeout` (an idle keep-alive connection included),
//! and request bodies that pause longer than `--body-timeout` refused with 408.
//!
//! `axum::serve` has no header timeout, so connections are served with hyper's HTTP/1
//! builder directly (its `header_read_timeout` on hyper-util's tokio timer); the body
//! timeout is tower-http's `RequestBodyTimeoutLayer` (see `api::router`). The cap is a
//! semaphore taken before `accept`: past it, new clients wait in the kernel's listen queue
//! and cost no descriptor, and every idle one is closed in bounded time, so a crowd of
//! idle clients delays `/v1/health` by at most a header timeout per round but never
//! starves it.
//!
//! A request hyper cannot parse (a garbage request line, a bad `Content-Length`, a URI or
//! headers past its buffer, over 100 headers) never reaches the router: hyper answers it
//! itself (`on_parse_error`: 400, 414 or 431, the head alone) and closes the connection.
//! Its builder offers no hook for that answer, so those are the service's only errors
//! without a JSON body (docs/service.md).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// How long the accept loop waits after a failed `accept` (out of descriptors, say)
/// before it tries again; the connections it holds close meanwhile.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long shutdown waits for open requests to end before it closes the rest.
const CLOSE_PATIENCE: Duration = Duration::from_secs(5);

/// The connection flags, as validated by `Plan`.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Connections served at once (`--max-connections`).
    pub max_connections: usize,
    /// Time to send a request's headers, and idle time of a kept-alive connection.
    pub header_timeout: Duration,
    /// Longest pause within a request body.
    pub body_timeout: Duration,
}

/// `requested` connections, lowered (with a warning) to what the open-file limit holds
/// beside `workers` workers and what the process keeps open ([`crate::open_files`]): a
/// connection is a descriptor (two while it uploads), and one that `accept` cannot get
/// would leave clients waiting with nothing to close.
pub fn fit_to_open_files(requested: usize, workers: usize) -> usize {
    fit(requested, workers, crate::host::open_file_limit())
}

fn fit(requested: usize, workers: usize, open_file_limit: Option<usize>) -> usize {
    match open_file_limit.map(|limit| crate::open_files::connections_that_fit(limit, workers)) {
        Some(fits) if fits < requested => {
            eprintln!(
                "eval-cli: warning: --max-connections {requested} does not fit the open-file \
                 limit (ulimit -n) beside {workers} workers; serving at most {fits} connections"
            );
            fits
        }
        _ => requested,
    }
}

/// The `--max-connections` slots, shared with `/metrics`.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    free: Arc<Semaphore>,
    max: usize,
}

impl ConnectionSlots {
    /// `max` slots, all free.
    pub fn new(max: usize) -> Self {
        ConnectionSlots {
            free: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.max - self.free.available_permits()
    }

    /// A slot for a connection that outlives its HTTP exchange (an upgraded WebSocket),
    /// when one is free.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        Arc::clone(&self.free).try_acquire_owned().ok()
    }
}

/// Serves `router` on `listener`, one connection per slot of `slots`, until `stop`
/// resolves; then lets open requests finish (at most [`CLOSE_PATIENCE`]).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    slots: ConnectionSlots,
    stop: impl Future<Output = ()>,
) {
    let service = TowerToHyperService::new(router);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    // Each connection holds a receiver; at shutdown they are told to close, and the sender
    // sees them all gone once they have.
    let (closing, _) = watch::channel(false);
    let mut stop = std::pin::pin!(stop);
    loop {
        let slot = tokio::select! {
            slot = Arc::clone(&slots.free).acquire_owned() => slot,
            () = &mut stop => break,
        };
        // The semaphore is never closed.
        let Ok(slot) = slot else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    eprintln!("eval-cli: warning: cannot accept a connection: {e}");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        // With upgrades, for WebSockets (ws.rs): the upgraded socket leaves this task.
        let connection = http
            .serve_connection(TokioIo::new(stream), service.clone())
            .with_upgrades();
        let mut told = closing.subscribe();
        tokio::spawn(async move {
            let mut connection = std::pin::pin!(connection);
            // A client that goes away or times out is not an error of the service.
            tokio::select! {
                _ = connection.as_mut() => {}
                // The only value ever sent is `true`.
                _ = told.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
            drop(told);
            drop(slot);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    if tokio::time::timeout(CLOSE_PATIENCE, closing.closed())
        .await
        .is_err()
    {
        eprintln!(
            "eval-cli: warning: connections still open after {} s; closing them",
            CLOSE_PATIENCE.as_secs()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_stay_within_the_open_file_limit_beside_the_workers() {
        // 12 held at rest, 2 per worker, 2 per connection.
        assert_eq!(fit(256, 8, Some(128)), 50);
        assert_eq!(fit(256, 8, Some(1024)), 256);
        assert_eq!(fit(256, 8, None), 256);
        assert_eq!(fit(256, 1, Some(16)), 1);
        assert_eq!(fit(256, 1, Some(1)), 1);
        assert!(crate::host::open_file_limit().is_none_or(|l| l > 0));
    }
}
