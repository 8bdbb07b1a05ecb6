//! What a broker worker counts as its slots take and settle items, and its page of
//! `--metrics` in the Prometheus text format: the rows as `serve` counts them (the same
//! names, `source="queue"`), and the queue's own counters.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::State;
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use tokio::runtime::Handle;

use crate::analysis::FileOutcome;
use crate::queue_worker::Events;
use crate::telemetry::{RowCounts, Type, write_by_label, write_counters, write_one};

/// The counters of one worker process, shared by its slots.
#[derive(Debug, Default)]
pub struct QueueMetrics {
    rows: Mutex<RowCounts>,
    /// Dead letters by the class of their reason.
    dead_letters: Mutex<BTreeMap<&'static str, u64>>,
    taken: AtomicU64,
    in_flight: AtomicU64,
    reconnects: AtomicU64,
    requeued: AtomicU64,
}

fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl QueueMetrics {
    /// An item was claimed.
    pub fn taken(&self) {
        self.taken.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// The item in hand was settled, or went back with a lost connection.
    pub fn in_flight_done(&self) {
        let _ = self
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// A new connection replaced a lost one.
    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }

    /// A row was stored and its item acknowledged.
    pub fn stored(&self, outcome: &FileOutcome) {
        locked(&self.rows).count(outcome, "queue");
    }

    /// A poison item of `class` was dead-lettered and acknowledged.
    pub fn dead_lettered(&self, class: &'static str) {
        *locked(&self.dead_letters).entry(class).or_default() += 1;
    }

    /// An item went back to the queue.
    pub fn requeued(&self) {
        self.requeued.fetch_add(1, Ordering::Relaxed);
    }

    /// The page of `GET /metrics`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let rows = locked(&self.rows);
        rows.write_counts(&mut out);
        write_by_label(
            &mut out,
            "tempo_dead_letters_total",
            "Requests refused for good (dead-lettered, or an error row), by reason class.",
            "class",
            locked(&self.dead_letters).iter().map(|(c, n)| (*c, *n)),
        );
        let counters = [
            (
                "tempo_requests_taken_total",
                "Requests (stream entries, deliveries) taken from the broker.",
                &self.taken,
            ),
            (
                "tempo_requests_requeued_total",
                "Requests given back to the broker to be tried again.",
                &self.requeued,
            ),
            (
                "tempo_broker_reconnects_total",
                "New connections after the broker was lost.",
                &self.reconnects,
            ),
        ];
        write_counters(&mut out, &counters);
        write_one(
            &mut out,
            Type::Gauge,
            "tempo_files_running",
            "Files being analysed or stored (requests in hand).",
            self.in_flight.load(Ordering::Relaxed),
        );
        rows.write_seconds(&mut out);
        out
    }
}

/// `--metrics ADDR`: listens on `address` and serves the page there from `runtime` until
/// the process ends; says where on stderr and in the `metrics` event (port 0 takes a free
/// one).
pub fn listen(
    address: SocketAddr,
    metrics: &Arc<QueueMetrics>,
    events: Events,
    runtime: &Handle,
) -> std::io::Result<SocketAddr> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind(address))?;
    let bound = listener.local_addr()?;
    eprintln!("eval-cli: metrics on http://{bound}/metrics");
    let mut fields = serde_json::Map::new();
    fields.insert("address".into(), bound.to_string().into());
    events.emit("metrics", fields);
    runtime.spawn(serve(listener, Arc::clone(metrics)));
    Ok(bound)
}

/// Serves `GET /metrics` on `listener`; any other path is a 404, any other method a 405,
/// each with a JSON reason as `serve` gives them.
async fn serve(listener: tokio::net::TcpListener, metrics: Arc<QueueMetrics>) {
    let app = axum::Router::new()
        .route("/metrics", axum::routing::get(page))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(metrics);
    if let Err(err) = axum::serve(listener, app).await {
        eprintln!("eval-cli: warning: --metrics stopped answering: {err}");
    }
}

async fn page(State(metrics): State<Arc<QueueMetrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

async fn not_found() -> Response {
    refusal(
        StatusCode::NOT_FOUND,
        "not found: this address serves GET /metrics only".to_string(),
    )
}

async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    refusal(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("{method} is not allowed on {}", uri.path()),
    )
}

/// `{"error": reason}` with `status`, the body of `serve`'s refusals.
fn refusal(status: StatusCode, reason: String) -> Response {
    let body = serde_json::json!({ "error": reason });
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::AnalyzeRecord;

    #[test]
    fn the_page_counts_rows_dead_letters_reconnects_and_the_requests_in_hand() {
        let metrics = QueueMetrics::default();
        for _ in 0..3 {
            metrics.taken();
        }
        let row = FileOutcome {
            record: AnalyzeRecord {
                status: "ok".into(),
                bpm: "120.000".into(),
                ..AnalyzeRecord::default()
            },
            candidates: Vec::new(),
            elapsed_s: 0.2,
            stages: vec![("decode".into(), 0.04)],
            from_cache: false,
        };
        metrics.stored(&row);
        metrics.in_flight_done();
        metrics.dead_lettered("path");
        metrics.in_flight_done();
        metrics.reconnected();
        let page = metrics.render();
        for line in [
            "tempo_files_total{status=\"ok\",kind=\"none\"} 1",
            "tempo_descriptor_values_total{descriptor=\"tempo\"} 1",
            "tempo_dead_letters_total{class=\"path\"} 1",
            "tempo_requests_taken_total 3",
            "tempo_requests_requeued_total 0",
            "tempo_broker_reconnects_total 1",
            "tempo_files_running 1",
            "tempo_file_seconds_bucket{source=\"queue\",le=\"0.25\"} 1",
            "tempo_file_seconds_count{source=\"queue\"} 1",
            "tempo_stage_seconds_bucket{stage=\"decode\",le=\"0.05\"} 1",
        ] {
            assert!(page.lines().any(|l| l == line), "{line} missing in\n{page}");
        }
    }
}
