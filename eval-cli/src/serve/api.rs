//! The service's router: the routes, and the layers every request passes (the body
//! timeout, the Host and Origin guard, CORS for `--allow-origin`, the token), with the
//! two routes that are about the service itself (`/v1/health`, `/metrics`). Every refusal
//! of a request that parses is a JSON `{"error": "..."}` with the status that says why
//! (400, 401, 403, 404, 408, 413, 415, 429); bad input never gives a 500. A request that
//! does not parse as HTTP gets hyper's bare 400, 414 or 431 (connections.rs): hyper writes
//! that answer itself, with no hook for a body. Jobs are [`super::job_routes`], uploads
//! [`super::upload`], paths [`super::paths`], the JSON plumbing [`super::http`].

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

use super::http::{drain, error, json, method_not_allowed, not_found};
use super::job_routes::{cancel, list, results_csv, results_json, show, submit};
use super::telemetry::Gauges;
use super::upload::upload;
use super::{App, events, pace, page, ws};

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
        .route("/v1/jobs/{id}/ws", get(ws::socket))
        .route("/v1/analyze", post(upload))
        // Only on the routes: a path none serves is its 404, query or not.
        .route_layer(middleware::from_fn(no_query))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn(plain_body))
        .layer(middleware::from_fn_with_state(Arc::clone(&app), auth))
        .layer(cors)
        .layer(middleware::from_fn_with_state(Arc::clone(&app), guard))
        .layer(RequestBodyTimeoutLayer::new(body_timeout))
        .layer(middleware::from_fn(move |request, next| {
            pace::paced(body_timeout, request, next)
        }))
        .with_state(app)
}

/// Refuses requests whose `Host` or `Origin` is not this service's own (guard.rs).
async fn guard(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    match app.guard.refusal(request.uri(), request.headers()) {
        None => next.run(request).await,
        Some(refusal) => refusal,
    }
}

/// Paths that read a query string: the page (which ignores one) and an upload's settings.
const QUERY_PATHS: [&str; 2] = ["/", "/v1/analyze"];

/// Refuses a query string where none is read: `/v1/jobs?descriptors=tempo` was served
/// as if the parameter were not there (a job's settings are fields of its JSON body).
async fn no_query(request: Request, next: Next) -> Response {
    let path = request.uri().path().to_string();
    match request.uri().query().map(str::to_string) {
        Some(query) if !QUERY_PATHS.contains(&path.as_str()) => {
            let shown: String = query.chars().take(100).collect();
            let more = if shown.len() < query.len() { "..." } else { "" };
            // Read first, as a refused body is (plain_body).
            drain(request.into_body(), crate::confine::MAX_REQUEST_BYTES).await;
            error(
                StatusCode::BAD_REQUEST,
                format!(
                    "{path} takes no query parameters (got ?{shown}{more}); a job's settings \
                     are fields of its JSON body, an upload's are query parameters of \
                     /v1/analyze"
                ),
            )
        }
        _ => next.run(request).await,
    }
}

/// Refuses a body sent compressed (`Content-Encoding: gzip`): nothing here decodes one,
/// and a job's JSON or an upload's audio was read as the compressed bytes.
/// (The body is read first, up to a job request's limit, so that a client still writing
/// gets the answer rather than a broken pipe.)
async fn plain_body(request: Request, next: Next) -> Response {
    match request.headers().get(header::CONTENT_ENCODING) {
        Some(coding) if !coding.as_bytes().eq_ignore_ascii_case(b"identity") => {
            drain(request.into_body(), crate::confine::MAX_REQUEST_BYTES).await;
            error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "a body with a Content-Encoding is not decoded here: send it as it is",
            )
        }
        _ => next.run(request).await,
    }
}

/// With `--token-file`, every request but the page at `/` (which holds no data and asks
/// for the token itself) needs `Authorization: Bearer TOKEN`.
async fn auth(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if let Some(token) = &app.token
        && request.uri().path() != "/"
    {
        let headers = request.headers();
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token)
            .or_else(|| subprotocol_token(headers));
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

/// The token of an `Authorization: Bearer TOKEN` value; the scheme's case does not
/// matter (RFC 9110, 11.1), so `bearer TOKEN` is the same credential.
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("Bearer").then_some(token)
}

/// The token a WebSocket client offered as the subprotocol `tempo-scale.bearer.TOKEN`
/// (a browser cannot set `Authorization` on a WebSocket; see ws.rs).
fn subprotocol_token(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(ws::BEARER_PROTOCOL_PREFIX))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_in_any_case() {
        assert_eq!(bearer_token("Bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("bearer s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("BEARER s3cret"), Some("s3cret"));
        assert_eq!(bearer_token("Basic czNjcmV0"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearers3cret"), None);
    }

    #[test]
    fn secrets_compare_by_content_and_length() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}
