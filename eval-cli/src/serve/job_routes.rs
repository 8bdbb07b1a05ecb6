//! The job routes: `POST /v1/jobs` (a request checked, its paths confined and walked, its
//! files ordered costliest first), the list, a job's status, cancel and results.

use std::path::PathBuf;
use std::sync::Arc;

use analyzer_core::batch::{self};
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use super::App;
use super::http::{JobParam, Refusal, error, find, json, read_body, refused, too_many};
use super::jobs::{Job, JobId};
use super::paths::walk;
use super::scheduler::Lane;
use super::settings::Requested;

/// The body of `POST /v1/jobs`. (Its settings are not a flattened [`Requested`]: serde
/// does not deny unknown fields through `flatten`.)
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct JobRequest {
    /// Files and folders under the roots, absolute or relative to a root.
    paths: Vec<String>,
    /// `high` jobs are served before `normal` ones (the default).
    priority: Option<Priority>,
    /// Slowest tempo to report (default: the service's).
    min_bpm: Option<f64>,
    /// Fastest tempo to report.
    max_bpm: Option<f64>,
    /// What is computed: `["tempo"]` plus any of `"key"` and `"loudness"` (default: the
    /// service's `--descriptors`).
    descriptors: Option<Vec<String>>,
    /// Which note of a 6/8 bar is the beat: `"quarter"` or `"dotted-quarter"` (default: the
    /// service's `--compound-beat`).
    compound_beat: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum Priority {
    High,
    Normal,
}

pub(super) async fn submit(State(app): State<Arc<App>>, body: Body) -> Response {
    let bytes = match read_body(body, crate::confine::MAX_REQUEST_BYTES, "job request").await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let mut request: JobRequest = match crate::confine::parse_request(&bytes) {
        Ok(r) => r,
        Err(e) => {
            return error(StatusCode::BAD_REQUEST, format!("invalid job request: {e}"));
        }
    };
    if request.paths.is_empty() {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid job request: `paths` is empty",
        );
    }
    let settings = Requested {
        min_bpm: request.min_bpm,
        max_bpm: request.max_bpm,
        descriptors: request.descriptors.take(),
        compound_beat: request.compound_beat.take(),
    };
    let analyzer = match settings.analyzer(&app) {
        Ok(a) => a,
        Err(reason) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid job request: {reason}"),
            );
        }
    };
    let lane = match request.priority {
        Some(Priority::High) => Lane::High,
        Some(Priority::Normal) | None => Lane::Normal,
    };
    // Canonicalising and walking are file-system work: off the async threads.
    let roots = app.roots.clone();
    let workers = app.pool.workers();
    let walking = move || {
        walk(&roots, &request.paths).map(|(files, walk_rows)| {
            let order = start_order(&files, workers);
            (files, walk_rows, order)
        })
    };
    // tokio panics when the system refuses it a new blocking thread (a process limit
    // reached after the start, by this user's other processes): a 503 to try again, not
    // a connection dropped without an answer.
    let spawned = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::spawn_blocking(walking)
    }));
    let Ok(handle) = spawned else {
        return refused(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the system refused a thread to walk the paths (a process limit: ulimit -u, a \
             container's pids.max); try again"
                .to_string(),
        ));
    };
    let walked = handle.await;
    let (files, walk_rows, order) = match walked {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return refused(refusal),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("walking the paths failed: {e}"),
            );
        }
    };
    let limits = app.limits;
    // A job larger than the whole queue can never be admitted: a 429 would have the
    // client retry it forever.
    if files.len() > limits.max_queued_files {
        app.telemetry.job_rejected();
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the job has {} files; at most {} may wait (--max-queued-files), so it can \
                 never be queued: split it into jobs of at most that many files",
                files.len(),
                limits.max_queued_files
            ),
        );
    }
    let mut table = app.jobs();
    let active = table.active();
    if active >= limits.max_jobs {
        drop(table);
        app.telemetry.job_rejected();
        return too_many(format!(
            "{active} jobs are queued or running, the limit (--max-jobs) is {}",
            limits.max_jobs
        ));
    }
    let id = table.next + 1;
    let job = Arc::new(Job::new(id, lane, analyzer, files, walk_rows, order));
    let wanted = job.file_count();
    let mut queued_now = 0;
    let admitted = app.pool.submit_job(&job, |queued| {
        queued_now = queued;
        queued + wanted <= limits.max_queued_files
    });
    if !admitted {
        drop(table);
        app.telemetry.job_rejected();
        if *app.shutdown.borrow() {
            return error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
        }
        return too_many(format!(
            "the job has {wanted} files and {queued_now} are queued already; at most {} may \
             wait (--max-queued-files)",
            limits.max_queued_files
        ));
    }
    table.insert(Arc::clone(&job));
    drop(table);
    app.telemetry.job_submitted();
    #[derive(Serialize)]
    struct Created {
        id: JobId,
        files: usize,
    }
    json(
        StatusCode::CREATED,
        &Created {
            id,
            files: job.total(),
        },
    )
}

/// Jobs of at most this many files start their costliest files first, as `analyze` does;
/// above it the headers are not read at submission (the wait would grow with the job)
/// and the last file's tail is negligible next to the whole anyway.
pub(super) const COSTLIEST_FIRST_UP_TO: usize = 4096;

/// The order in which a job's files start: costliest first by the announced length and
/// codec ([`batch::audio_cost`], ties by input index) for a job of up to
/// [`COSTLIEST_FIRST_UP_TO`] files, so that no worker idles while one long file finishes
/// alone; input order above that, and with one worker (where it changes nothing), as in
/// `analyze`. The probe opens through `decode::open_regular`: a FIFO, socket or device
/// costs nothing and never blocks the submission.
pub(super) fn start_order(files: &[PathBuf], workers: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    if workers > 1 && files.len() <= COSTLIEST_FIRST_UP_TO {
        let costs: Vec<f64> = files.iter().map(|f| batch::audio_cost(f)).collect();
        batch::costliest_first(&mut order, &costs);
    }
    order
}

pub(super) async fn list(State(app): State<Arc<App>>) -> Response {
    #[derive(Serialize)]
    struct Jobs {
        jobs: Vec<super::jobs::Progress>,
    }
    let jobs: Vec<Arc<Job>> = app.jobs().all();
    json(
        StatusCode::OK,
        &Jobs {
            jobs: jobs.iter().map(|j| j.progress()).collect(),
        },
    )
}

pub(super) async fn show(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    match find(&app, &id) {
        Ok(job) => json(StatusCode::OK, &job.progress()),
        Err(response) => *response,
    }
}

/// Cancels a job: its queued files are dropped, its running ones stop at their next
/// check; its rows stay readable. Cancelling a final job changes nothing.
pub(super) async fn cancel(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    let job = match find(&app, &id) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    cancel_job(&app, &job);
    json(StatusCode::OK, &job.progress())
}

/// Cancels `job` (`DELETE`, or a WebSocket's `cancel`): its queued files are dropped,
/// its running ones stop at their next check. A final job is left as it is.
pub(super) fn cancel_job(app: &App, job: &Job) {
    if !job.status().is_final() {
        job.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        let dropped = app.pool.remove_job(job.id);
        job.drop_queued(dropped);
    }
}

pub(super) fn status_header(job: &Job) -> (header::HeaderName, HeaderValue) {
    let status = serde_json::to_string(&job.status()).unwrap_or_default();
    (
        header::HeaderName::from_static("x-job-status"),
        HeaderValue::from_str(status.trim_matches('"')).unwrap_or(HeaderValue::from_static("")),
    )
}

/// The rows so far in input order, as `analyze` writes them (all of them once done).
pub(super) async fn results_csv(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    match find(&app, &id) {
        Ok(job) => (
            StatusCode::OK,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/csv; charset=utf-8"),
                ),
                status_header(&job),
            ],
            job.csv(),
        )
            .into_response(),
        Err(response) => *response,
    }
}

/// [`results_csv`] as a JSON array of rows.
pub(super) async fn results_json(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    match find(&app, &id) {
        Ok(job) => {
            let mut response = json(StatusCode::OK, &job.rows());
            let (name, value) = status_header(&job);
            response.headers_mut().insert(name, value);
            response
        }
        Err(response) => *response,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_workers_start_the_longest_file_first_and_one_keeps_input_order() {
        let dir = tempfile::tempdir().unwrap();
        let wav = |name: &str, seconds: u32| {
            let path = dir.path().join(name);
            let spec = hound::WavSpec {
                channels: 1,
                sample_rate: 8000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            };
            let mut w = hound::WavWriter::create(&path, spec).unwrap();
            for _ in 0..seconds * 8000 {
                w.write_sample(0i16).unwrap();
            }
            w.finalize().unwrap();
            path
        };
        let fifo = dir.path().join("pipe.wav");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        assert!(made.unwrap().success());
        let files = vec![
            wav("a.wav", 1),
            wav("b.wav", 3),
            dir.path().join("missing.wav"),
            wav("c.wav", 2),
            fifo,
        ];
        // The pipe (no writer: opening it for reading would block) costs nothing.
        assert_eq!(start_order(&files, 2), [1, 3, 0, 2, 4]);
        assert_eq!(start_order(&files, 1), [0, 1, 2, 3, 4]);
    }
}
