//! The routes: requests checked (Host and Origin, auth, JSON, roots, limits) and turned
//! into jobs and uploads for the pool. Every refusal is a JSON `{"error": "..."}` with the
//! status that says why (400, 401, 403, 404, 408, 413, 429); bad input never gives a 500.

use std::convert::Infallible;
use std::io::Write;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use analyzer_core::Analyzer;
use analyzer_core::batch::{self, Status};
use axum::Router;
use axum::body::Body;
use axum::extract::{FromRequestParts, Path as UrlPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tempfile::NamedTempFile;
use tokio::sync::oneshot;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::{RequestBodyTimeoutLayer, TimeoutError};

use super::analysis::FileOutcome;
use super::jobs::{FileEvent, Job, JobId};
use super::pool::Upload;
use super::scheduler::Lane;
use super::table::Lookup;
use super::telemetry::Gauges;
use super::{App, events, page};
use crate::record::AnalyzeRecord;

/// Largest body of `POST /v1/jobs` (a list of paths).
const MAX_JOB_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// `Retry-After` seconds of a 429.
const RETRY_AFTER_S: &str = "5";

/// The service's routes, behind (outermost first) the body timeout, the Host and Origin
/// guard, CORS for `--allow-origin` (which answers preflights itself) and the token.
pub fn router(app: Arc<App>, body_timeout: Duration) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            app.guard
                .allowed_origins()
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok()),
        ))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .expose_headers([header::HeaderName::from_static("x-job-status")]);
    Router::new()
        .route("/", get(page::index))
        .route("/v1/health", get(health))
        .route("/metrics", get(metrics))
        .route("/v1/jobs", post(submit).get(list))
        .route("/v1/jobs/{id}", get(show).delete(cancel))
        .route("/v1/jobs/{id}/results.csv", get(results_csv))
        .route("/v1/jobs/{id}/results.json", get(results_json))
        .route("/v1/jobs/{id}/events", get(events::stream))
        .route("/v1/analyze", post(upload))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), auth))
        .layer(cors)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .with_state(app)
}

/// A JSON response.
pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write JSON: {e}"),
        ),
    }
}

/// A JSON error: `{"error": message}`.
pub fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct ErrorBody {
        error: String,
    }
    let body = serde_json::to_vec(&ErrorBody {
        error: message.into(),
    })
    .unwrap_or_else(|_| b"{\"error\":\"unprintable error\"}".to_vec());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A 429 with `Retry-After`.
fn too_many(message: String) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
    response
}

async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

async fn method_not_allowed(request: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// Refuses requests whose `Host` or `Origin` is not this service's own (guard.rs).
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match app.guard.refusal(request.headers()) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}

/// With `--token-file`, every request but the page at `/` (which holds no data and asks
/// for the token itself) needs `Authorization: Bearer TOKEN`.
async fn auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token
        && request.uri().path() != "/"
    {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            let mut response = error(
                StatusCode::UNAUTHORIZED,
                "this service needs `Authorization: Bearer TOKEN` (the token of --token-file)",
            );
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return response;
        }
    }
    next.run(request).await
}

/// Compares two secrets in time that depends only on their lengths.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn health(State(app): State<Arc<App>>) -> Response {
    #[derive(Serialize)]
    struct Health {
        status: &'static str,
        version: &'static str,
        workers: usize,
        queued: usize,
        running: usize,
        jobs: usize,
    }
    json(
        StatusCode::OK,
        &Health {
            status: if *app.shutdown.borrow() {
                "stopping"
            } else {
                "ok"
            },
            version: env!("CARGO_PKG_VERSION"),
            workers: app.pool.workers(),
            queued: app.pool.queued(),
            running: app.pool.running(),
            jobs: app.jobs().len(),
        },
    )
}

async fn metrics(State(app): State<Arc<App>>) -> Response {
    let (jobs, active_jobs) = {
        let table = app.jobs();
        (table.len(), table.active())
    };
    let page = app.telemetry.render(Gauges {
        queued: app.pool.queued(),
        running: app.pool.running(),
        workers: app.pool.workers(),
        active_jobs,
        jobs,
        connections: app.connections.open(),
    });
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        page,
    )
        .into_response()
}

/// The body of `POST /v1/jobs`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobRequest {
    /// Files and folders under the roots, absolute or relative to a root.
    paths: Vec<String>,
    /// Slowest tempo to report (default: the analyzer's).
    min_bpm: Option<f64>,
    /// Fastest tempo to report.
    max_bpm: Option<f64>,
    /// `high` jobs are served before `normal` ones (the default).
    priority: Option<Priority>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Priority {
    High,
    Normal,
}

/// A request refused before it became a job.
struct Refusal {
    status: StatusCode,
    message: String,
}

impl Refusal {
    fn new(status: StatusCode, message: String) -> Self {
        Refusal { status, message }
    }
}

/// The answer to a body that could not be read: 408 when it paused past
/// `--body-timeout`, 400 otherwise.
fn body_error(e: &axum::Error, what: &str) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<TimeoutError>() {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the {what} stopped arriving (--body-timeout)"),
            );
        }
        cause = c.source();
    }
    error(
        StatusCode::BAD_REQUEST,
        format!("cannot read the {what}: {e}"),
    )
}

/// The whole body, refused with 413 past `limit` bytes.
async fn read_body(body: Body, limit: usize, what: &str) -> Result<Vec<u8>, Response> {
    let mut data = Vec::new();
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, what))?;
        if data.len() + chunk.len() > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the {what} is larger than the limit of {limit} bytes"),
            ));
        }
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

/// The announced `Content-Length`, if any.
fn content_length(request_headers: &axum::http::HeaderMap) -> Option<u64> {
    request_headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

async fn submit(State(app): State<Arc<App>>, body: Body) -> Response {
    let bytes = match read_body(body, MAX_JOB_REQUEST_BYTES, "job request").await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    let request: JobRequest = match serde_json::from_slice(&bytes) {
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
    let analyzer = match job_analyzer(&app, request.min_bpm, request.max_bpm) {
        Ok(a) => a,
        Err(message) => return error(StatusCode::BAD_REQUEST, message),
    };
    let lane = match request.priority {
        Some(Priority::High) => Lane::High,
        Some(Priority::Normal) | None => Lane::Normal,
    };
    // Canonicalising and walking are file-system work: off the async threads.
    let roots = app.roots.clone();
    let workers = app.pool.workers();
    let walked = tokio::task::spawn_blocking(move || {
        walk(&roots, &request.paths).map(|(files, walk_rows)| {
            let order = start_order(&files, workers);
            (files, walk_rows, order)
        })
    })
    .await;
    let (files, walk_rows, order) = match walked {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return error(refusal.status, refusal.message),
        Err(e) => {
            return error(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("walking the paths failed: {e}"),
            );
        }
    };
    let limits = app.limits;
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
    let wanted = job.files.len();
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

/// The analyzer of a job's tempo range: the shared default one when the range is the
/// default.
fn job_analyzer(
    app: &App,
    min_bpm: Option<f64>,
    max_bpm: Option<f64>,
) -> Result<Arc<Analyzer>, String> {
    let default = app.default_analyzer.config();
    if min_bpm.is_none() && max_bpm.is_none() {
        return Ok(Arc::clone(&app.default_analyzer));
    }
    let min = min_bpm.unwrap_or(default.min_bpm);
    let max = max_bpm.unwrap_or(default.max_bpm);
    if !(min > 0.0 && min < max) {
        return Err(format!(
            "invalid tempo range: min_bpm ({min}) must be positive and below max_bpm ({max})"
        ));
    }
    Analyzer::new(default.clone().with_bpm_range(min, max))
        .map(Arc::new)
        .map_err(|e| format!("invalid tempo range: {}", e.reason()))
}

/// The files of a job's `paths` (walked and sorted as `analyze` does), and the rows of
/// inputs that could not be walked; refused when a path, or a link met in a walked folder,
/// leads outside the roots or to nothing. Whether the place a link leads to exists is
/// never told, nor where it is: the refusal names the link as found inside the root.
fn walk(
    roots: &[PathBuf],
    paths: &[String],
) -> Result<(Vec<PathBuf>, Vec<AnalyzeRecord>), Refusal> {
    let confined: Vec<PathBuf> = paths
        .iter()
        .map(|p| confine(roots, p))
        .collect::<Result<_, _>>()?;
    for input in &confined {
        if let Some(link) = link_astray(roots, input) {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is a link that leads outside the roots or to nothing",
                    link.display()
                ),
            ));
        }
    }
    let (files, walk_errors) = batch::collect_audio_files(&confined);
    let walk_rows = walk_errors
        .iter()
        .map(|e| AnalyzeRecord::new(&e.path, Status::Error, None, Some(&e.reason)))
        .collect();
    Ok((files, walk_rows))
}

/// The first link under the folder `input` (following links that stay inside) that
/// leads outside the roots or to nothing; nothing beyond such a link is read.
fn link_astray(roots: &[PathBuf], input: &Path) -> Option<PathBuf> {
    for entry in walkdir::WalkDir::new(input).follow_links(true) {
        match entry {
            Ok(entry) if entry.path_is_symlink() => {
                let leads_in = entry
                    .path()
                    .canonicalize()
                    .is_ok_and(|real| inside(roots, &real));
                if !leads_in {
                    return Some(entry.into_path());
                }
            }
            Ok(_) => {}
            // Other errors (an unreadable folder, a loop) become rows of the walk.
            Err(e) => {
                if let Some(path) = e.path().filter(|p| is_dangling_link(p)) {
                    return Some(path.to_path_buf());
                }
            }
        }
    }
    None
}

/// Whether `path` is a symbolic link to nothing.
fn is_dangling_link(path: &Path) -> bool {
    path.symlink_metadata().is_ok_and(|m| m.is_symlink()) && path.metadata().is_err()
}

/// Whether a symbolic link lies on the way from `base` (excluded) down to `path`
/// (included).
fn through_link(base: &Path, path: &Path) -> bool {
    path.ancestors()
        .take_while(|a| a.starts_with(base) && *a != base)
        .any(|a| a.symlink_metadata().is_ok_and(|m| m.is_symlink()))
}

/// Jobs of at most this many files start their costliest files first, as `analyze` does;
/// above it the headers are not read at submission (the wait would grow with the job)
/// and the last file's tail is negligible next to the whole anyway.
const COSTLIEST_FIRST_UP_TO: usize = 4096;

/// The order in which a job's files start: costliest first by the announced length and
/// codec ([`batch::audio_cost`], ties by input index) for a job of up to
/// [`COSTLIEST_FIRST_UP_TO`] files, so that no worker idles while one long file finishes
/// alone; input order above that, and with one worker (where it changes nothing), as in
/// `analyze`. The probe opens through `decode::open_regular`: a FIFO, socket or device
/// costs nothing and never blocks the submission.
fn start_order(files: &[PathBuf], workers: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..files.len()).collect();
    if workers > 1 && files.len() <= COSTLIEST_FIRST_UP_TO {
        let costs: Vec<f64> = files.iter().map(|f| batch::audio_cost(f)).collect();
        order.sort_by(|&a, &b| costs[b].total_cmp(&costs[a]).then(a.cmp(&b)));
    }
    order
}

fn inside(roots: &[PathBuf], path: &Path) -> bool {
    roots.iter().any(|root| path.starts_with(root))
}

/// The canonical form of `raw` if it lies inside a root: absolute, or relative to the
/// first root that has it. No answer tells what exists outside the roots: `..` is refused
/// outright, and a path that leads out through a link gets the same answer whether the
/// place it leads to exists or not (and that place is never named).
fn confine(roots: &[PathBuf], raw: &str) -> Result<PathBuf, Refusal> {
    let path = Path::new(raw);
    let outside = || {
        Refusal::new(
            StatusCode::FORBIDDEN,
            format!("path {raw:?} is outside the roots"),
        )
    };
    if raw.is_empty() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "invalid job request: an empty path".to_string(),
        ));
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(Refusal::new(
            StatusCode::FORBIDDEN,
            format!("path {raw:?} is outside the roots (`..` is not allowed)"),
        ));
    }
    let candidates: Vec<(&PathBuf, PathBuf)> = if path.is_absolute() {
        roots
            .iter()
            .filter(|root| path.starts_with(root))
            .map(|root| (root, path.to_path_buf()))
            .collect()
    } else {
        roots.iter().map(|root| (root, root.join(path))).collect()
    };
    if candidates.is_empty() {
        return Err(outside());
    }
    let mut astray = false;
    for (root, candidate) in &candidates {
        match candidate.canonicalize() {
            Ok(real) if inside(roots, &real) => return Ok(real),
            _ => astray |= through_link(root, candidate),
        }
    }
    if astray {
        return Err(outside());
    }
    Err(Refusal::new(
        StatusCode::NOT_FOUND,
        format!("path {raw:?}: no such file or folder under the roots"),
    ))
}

/// The `{id}` of a job's URL as text. Never refused here, so that an id that is not even
/// valid percent-encoded UTF-8 gets the same JSON 404 as an unknown one.
pub struct JobParam(pub String);

impl<S: Send + Sync> FromRequestParts<S> for JobParam {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Infallible> {
        Ok(JobParam(
            match UrlPath::<String>::from_request_parts(parts, state).await {
                Ok(UrlPath(id)) => id,
                Err(_) => String::from("(not UTF-8)"),
            },
        ))
    }
}

/// The job named in the URL, or the 404 that says it does not exist or expired.
pub fn find(app: &App, id: &str) -> Result<Arc<Job>, Box<Response>> {
    let lookup = match id.parse::<JobId>() {
        Ok(number) => app.jobs().lookup(number),
        Err(_) => Lookup::Unknown,
    };
    match lookup {
        Lookup::Found(job) => Ok(job),
        Lookup::Expired { keep } => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!(
                "job {id} has expired: only the {keep} most recent finished jobs are kept \
                 (--keep-jobs)"
            ),
        ))),
        Lookup::Unknown => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no job {id:?}"),
        ))),
    }
}

async fn list(State(app): State<Arc<App>>) -> Response {
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

async fn show(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    match find(&app, &id) {
        Ok(job) => json(StatusCode::OK, &job.progress()),
        Err(response) => *response,
    }
}

/// Cancels a job: its queued files are dropped, its running ones stop at their next
/// check; its rows stay readable. Cancelling a final job changes nothing.
async fn cancel(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
    let job = match find(&app, &id) {
        Ok(job) => job,
        Err(response) => return *response,
    };
    if !job.status().is_final() {
        job.cancel.store(true, std::sync::atomic::Ordering::SeqCst);
        let dropped = app.pool.remove_job(job.id);
        job.drop_queued(dropped);
    }
    json(StatusCode::OK, &job.progress())
}

fn status_header(job: &Job) -> (header::HeaderName, HeaderValue) {
    let status = serde_json::to_string(&job.status()).unwrap_or_default();
    (
        header::HeaderName::from_static("x-job-status"),
        HeaderValue::from_str(status.trim_matches('"')).unwrap_or(HeaderValue::from_static("")),
    )
}

/// The rows so far in input order, as `analyze` writes them (all of them once done).
async fn results_csv(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
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
async fn results_json(State(app): State<Arc<App>>, JobParam(id): JobParam) -> Response {
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

/// `POST /v1/analyze`: the body is an audio file in any supported format (probed from
/// its bytes); the answer is its row with its tempo candidates, 200 when analysed, 422
/// (with the row saying why) when not.
async fn upload(State(app): State<Arc<App>>, request: Request) -> Response {
    let limit = app.limits.max_upload_bytes;
    if content_length(request.headers()).is_some_and(|n| n > limit as u64) {
        app.telemetry.upload_rejected();
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the upload is larger than the limit of {limit} bytes (--max-upload-mb)"),
        );
    }
    let (file, size) = match store_upload(request.into_body(), limit).await {
        Ok(stored) => stored,
        Err(response) => {
            app.telemetry.upload_rejected();
            return response;
        }
    };
    if size == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            "the upload is empty: send the audio file as the request body",
        );
    }
    let (reply, answer) = oneshot::channel();
    let queued = app.pool.upload(Upload {
        path: file.path().to_path_buf(),
        analyzer: Arc::clone(&app.default_analyzer),
        reply,
    });
    if queued.is_err() {
        return error(StatusCode::SERVICE_UNAVAILABLE, "the service is stopping");
    }
    app.telemetry.upload();
    let analysed = answer.await.ok().flatten();
    // The temporary file is removed only now that its analysis is over.
    drop(file);
    match analysed {
        Some(analysed) => upload_response(analysed),
        None => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service stopped before the upload was analysed",
        ),
    }
}

/// Writes the body to a temporary file as it arrives (memory stays flat whatever the
/// upload's size), refusing it with 413 past `limit` bytes; gives the file and its size.
async fn store_upload(body: Body, limit: usize) -> Result<(NamedTempFile, usize), Response> {
    let cannot_store = |e: std::io::Error| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot store the upload: {e}"),
        )
    };
    // File-system calls block: `block_in_place` lets the runtime move other tasks away.
    let mut file =
        tokio::task::block_in_place(|| tempfile::Builder::new().prefix("upload-").tempfile())
            .map_err(cannot_store)?;
    let mut size = 0;
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| body_error(&e, "upload"))?;
        size += chunk.len();
        if size > limit {
            return Err(error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the upload is larger than the limit of {limit} bytes (--max-upload-mb)"),
            ));
        }
        tokio::task::block_in_place(|| file.write_all(&chunk)).map_err(cannot_store)?;
    }
    tokio::task::block_in_place(|| file.flush()).map_err(cannot_store)?;
    Ok((file, size))
}

fn upload_response(analysed: FileOutcome) -> Response {
    let status = if analysed.failed() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let mut row = analysed.record;
    row.path = "upload".to_string();
    let answer = FileEvent {
        index: 0,
        row,
        candidates: analysed.candidates,
        elapsed_s: analysed.elapsed_s,
        stages: analysed.stages.into_iter().collect(),
    };
    json(status, &answer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }

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

    #[test]
    fn paths_are_confined_to_the_roots() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap().join("root");
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.wav"), b"").unwrap();
        std::fs::write(dir.path().join("secret.wav"), b"").unwrap();
        let roots = [root.clone()];
        assert_eq!(confine(&roots, "a").ok(), Some(root.join("a")));
        assert_eq!(
            confine(&roots, root.join("a/x.wav").to_str().unwrap()).ok(),
            Some(root.join("a/x.wav"))
        );
        let status = |raw: &str| confine(&roots, raw).err().map(|r| r.status);
        assert_eq!(status("../secret.wav"), Some(StatusCode::FORBIDDEN));
        assert_eq!(status("a/../../secret.wav"), Some(StatusCode::FORBIDDEN));
        assert_eq!(
            status(dir.path().join("secret.wav").to_str().unwrap()),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(
            status("/nonexistent/elsewhere"),
            Some(StatusCode::FORBIDDEN)
        );
        assert_eq!(status("missing"), Some(StatusCode::NOT_FOUND));
        assert_eq!(status(""), Some(StatusCode::BAD_REQUEST));

        // A link out answers the same whether its target exists, and never names it.
        let message = |raw: &str| confine(&roots, raw).err().map(|r| (r.status, r.message));
        std::os::unix::fs::symlink(dir.path().join("secret.wav"), root.join("l1")).unwrap();
        std::os::unix::fs::symlink(dir.path().join("none.wav"), root.join("l2")).unwrap();
        let (to_file, to_nothing) = (message("l1").unwrap(), message("l2").unwrap());
        assert_eq!(to_file.0, StatusCode::FORBIDDEN);
        assert_eq!(to_file.1.replace("l1", "l2"), to_nothing.1);
        assert!(!to_file.1.contains("secret"), "{}", to_file.1);
    }

    #[test]
    fn a_walked_link_out_is_named_as_found_whether_its_target_exists() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().canonicalize().unwrap();
        let root = base.join("root");
        std::fs::create_dir_all(root.join("lib/inner")).unwrap();
        std::fs::create_dir_all(base.join("outside")).unwrap();
        std::fs::write(base.join("outside/secret.wav"), b"").unwrap();
        let roots = [root.clone()];
        let link = root.join("lib/inner/x");
        let refusal = |target: &Path| {
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
            let r = walk(&roots, &["lib".to_string()]).err().unwrap();
            (r.status, r.message)
        };
        let to_folder = refusal(&base.join("outside"));
        let to_file = refusal(&base.join("outside/secret.wav"));
        let to_nothing = refusal(&base.join("outside/none"));
        assert_eq!(to_folder.0, StatusCode::FORBIDDEN);
        assert_eq!(to_folder, to_nothing);
        assert_eq!(to_file, to_nothing);
        assert!(to_folder.1.contains(link.to_str().unwrap()));
        let outside = base.join("outside");
        assert!(
            !to_folder.1.contains(outside.to_str().unwrap()),
            "{}",
            to_folder.1
        );
        // A link that stays inside is followed.
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(root.join("lib"), root.join("lib2")).unwrap();
        assert!(walk(&roots, &["lib2".to_string()]).is_ok());
    }
}
