//! `GET /`: one small page, plain HTML and a little JavaScript compiled into the binary
//! (no build step, no external assets): submit a folder, watch each job's progress from
//! its event stream, see the rows arrive, cancel, download the CSV.

use axum::response::Html;

/// The page.
const PAGE: &str = include_str!("page.html");

/// The handler.
pub async fn index() -> Html<&'static str> {
    Html(PAGE)
}
