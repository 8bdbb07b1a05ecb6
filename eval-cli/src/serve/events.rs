//! `GET /v1/jobs/{id}/events`: a job's life as server-sent events. The same [`Feed`]
//! serves the WebSocket at `/v1/jobs/{id}/ws` (ws.rs).
//!
//! - `progress` first (the counts now, so a late client starts from the present), then
//!   at least once a second while the job runs ([`PROGRESS_EVERY`]);
//! - `file` as each file finishes: its row, candidates, wall time and stages;
//! - `finished` once, with the final counts; then the stream ends.
//!
//! Each connection holds a broadcast receiver and a timer, nothing else: a client that
//! disconnects drops them and costs nothing, and a slow one that falls more than the
//! channel's buffer behind gets the counts again instead of the rows it missed (they are
//! in `results.json`).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tokio::sync::{broadcast, watch};
use tokio::time::{Interval, MissedTickBehavior};

use super::App;
use super::http::{self, JobParam};
use super::jobs::{Job, JobEvent, Progress};

/// How often a running job's counts are sent.
const PROGRESS_EVERY: Duration = Duration::from_millis(500);

/// One event: its name and its JSON.
pub struct Update {
    /// `progress`, `file` or `finished`.
    pub name: &'static str,
    /// The event's value as JSON.
    pub data: String,
}

/// One connection's state.
pub struct Feed {
    job: Arc<Job>,
    events: broadcast::Receiver<JobEvent>,
    shutdown: watch::Receiver<bool>,
    ticks: Interval,
    /// The counts to send first.
    first: Option<Progress>,
    /// The job was already final when the client connected: `finished` follows `first`.
    final_on_connect: Option<Progress>,
    ended: bool,
}

fn event<T: Serialize>(name: &'static str, value: &T) -> Update {
    Update {
        name,
        data: serde_json::to_string(value).unwrap_or_else(|_| "{}".to_string()),
    }
}

impl Feed {
    /// Follows `job` from now: its counts first, then its events.
    pub fn follow(app: &App, job: Arc<Job>) -> Feed {
        // Subscribe before reading the counts, so nothing falls between them.
        let events = job.subscribe();
        let first = job.progress();
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + PROGRESS_EVERY, PROGRESS_EVERY);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Feed {
            job,
            events,
            shutdown: app.shutdown.subscribe(),
            ticks,
            first: Some(first),
            final_on_connect: None,
            ended: false,
        }
    }

    /// The job this feed follows.
    pub fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// The next event; `None` once the job's end was sent or the service shuts down.
    /// Cancel-safe: every await in it is (a `select!` may drop it and call it again).
    pub async fn next(&mut self) -> Option<Update> {
        if self.ended {
            return None;
        }
        if let Some(progress) = self.first.take() {
            if progress.status.is_final() {
                self.final_on_connect = Some(progress.clone());
            }
            return Some(event("progress", &progress));
        }
        if let Some(progress) = self.final_on_connect.take() {
            self.ended = true;
            return Some(event("finished", &progress));
        }
        if *self.shutdown.borrow() {
            return None;
        }
        tokio::select! {
            // Events before ticks: the rows of a job that just ended come before its end.
            biased;
            _ = self.shutdown.changed() => None,
            received = self.events.recv() => match received {
                Ok(JobEvent::File(file)) => Some(event("file", &*file)),
                Ok(JobEvent::Finished(progress)) => {
                    self.ended = true;
                    Some(event("finished", &progress))
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Some(event("progress", &self.job.progress()))
                }
                Err(broadcast::error::RecvError::Closed) => None,
            },
            _ = self.ticks.tick() => {
                let progress = self.job.progress();
                if progress.status.is_final() {
                    self.ended = true;
                    return Some(event("finished", &progress));
                }
                Some(event("progress", &progress))
            }
        }
    }
}

/// The handler.
pub async fn stream(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    let job = match http::find(&app, &id) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    let feed = Feed::follow(&app, job);
    let stream = futures_util::stream::unfold(feed, |mut feed| async move {
        let update = feed.next().await?;
        let event = Event::default().event(update.name).data(update.data);
        Some((Ok::<Event, Infallible>(event), feed))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}
