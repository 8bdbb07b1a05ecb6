//! HTTP plumbing shared by the routes: JSON answers and errors, reading a body under its
//! limit and the body timeout, and the `{id}` of a job's URLs.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Path as UrlPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Serialize;
use tower_http::timeout::TimeoutError;

use super::App;
use super::jobs::{Job, JobId};
use super::table::Lookup;

/// `Retry-After` seconds of a 429.
const RETRY_AFTER_S: &str = "5";

/// `Retry-After` seconds of a 503 for want of descriptors: they come back as soon as the
/// files being analysed are closed, within a second or so.
const RETRY_AFTER_SHORT_S: &str = "1";

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
        error: bounded(message.into()),
    })
    .unwrap_or_else(|_| b"{\"error\":\"unprintable error\"}".to_vec());
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// Characters of a refusal's reason an answer carries: a reason quotes the request (a
/// field's name, a value, a query), which was echoed whole (a 500 KB field name came back
/// twice, a megabyte).
const MAX_REASON_CHARS: usize = 1000;

/// `message`, cut to [`MAX_REASON_CHARS`] characters with its size said.
fn bounded(message: String) -> String {
    if message.chars().count() <= MAX_REASON_CHARS {
        return message;
    }
    let cut: String = message.chars().take(MAX_REASON_CHARS).collect();
    format!("{cut}... (cut; the reason ran to {} bytes)", message.len())
}

/// A 429 with `Retry-After`.
pub(super) fn too_many(message: String) -> Response {
    let mut response = error(StatusCode::TOO_MANY_REQUESTS, message);
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_S));
    response
}

/// A refusal as its answer; a 503 (the process was out of descriptors) says when to try
/// again.
pub(super) fn refused(refusal: Refusal) -> Response {
    let busy = refusal.status == StatusCode::SERVICE_UNAVAILABLE;
    let mut response = error(refusal.status, refusal.message);
    if busy {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SHORT_S),
        );
    }
    response
}

pub(super) async fn not_found(request: Request) -> Response {
    error(
        StatusCode::NOT_FOUND,
        format!("no route {} {}", request.method(), request.uri().path()),
    )
}

pub(super) async fn method_not_allowed(request: Request) -> Response {
    error(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// A request refused before it became a job.
pub(super) struct Refusal {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl Refusal {
    pub(super) fn new(status: StatusCode, message: String) -> Self {
        Refusal { status, message }
    }
}

/// The answer to a body that could not be read: 408 when it paused past
/// `--body-timeout` or fell behind the least pace ([`super::pace`]), 400 otherwise.
pub(super) fn body_error(e: &axum::Error, what: &str) -> Response {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if c.is::<TimeoutError>() {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!("the {what} stopped arriving (--body-timeout)"),
            );
        }
        if c.is::<super::pace::TooSlow>() {
            return error(
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "the {what} came slower than {} bytes a second after its first \
                     --body-timeout seconds",
                    super::pace::MIN_RATE
                ),
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
pub(super) async fn read_body(body: Body, limit: usize, what: &str) -> Result<Vec<u8>, Response> {
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
pub(super) fn content_length(request_headers: &axum::http::HeaderMap) -> Option<u64> {
    request_headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
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
                "job {id} has expired: only the {} most recent finished jobs are kept \
                 (--keep-jobs), and only while they hold {} rows together (--keep-rows)",
                keep.jobs, keep.rows
            ),
        ))),
        Lookup::Unknown => Err(Box::new(error(
            StatusCode::NOT_FOUND,
            format!("no job {id:?}"),
        ))),
    }
}

/// Reads `body` to its end and drops it, stopping after `limit` bytes or at an error.
pub(super) async fn drain(body: Body, limit: usize) {
    let mut read = 0;
    let mut stream = body.into_data_stream();
    while let Some(Ok(chunk)) = stream.next().await {
        read += chunk.len();
        if read > limit {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reason that quotes a huge request is cut, its size said; a short one is whole.
    #[test]
    fn a_reason_is_cut_to_a_bounded_length() {
        let long = format!("unknown field `{}`", "x".repeat(500_000));
        let cut = bounded(long.clone());
        assert!(cut.len() < 1100, "{}", cut.len());
        assert!(cut.ends_with(&format!("(cut; the reason ran to {} bytes)", long.len())));
        assert_eq!(bounded("short".to_string()), "short");
        let body = futures_util::FutureExt::now_or_never(axum::body::to_bytes(
            error(StatusCode::BAD_REQUEST, long).into_body(),
            1 << 20,
        ))
        .unwrap()
        .unwrap();
        assert!(body.len() < 1200, "{}", body.len());
    }
}
