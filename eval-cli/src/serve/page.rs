//! `GET /`: one small page, plain HTML and a little JavaScript compiled into the binary
//! (no build step, no external assets): submit a folder, watch each job's progress from
//! its event stream, see the rows arrive, cancel, download the CSV.

use axum::http::header;
use axum::response::{Html, IntoResponse};

/// The page.
const PAGE: &str = include_str!("page.html");

/// The handler. The page may not be framed by another site's (`X-Frame-Options`,
/// `frame-ancestors`): a framing page could make a user's clicks act on this service.
/// (Nothing in its address acts by itself: `/?submit=PATH` posted a job at once, so any
/// page that opened that address started one.)
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        ],
        Html(PAGE),
    )
}
