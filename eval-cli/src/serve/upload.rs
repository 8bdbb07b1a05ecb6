//! `POST /v1/analyze`: one uploaded file, streamed to a temporary file, analysed ahead of
//! every job's queued files, answered with its row (200) or its error row (422).

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use futures_util::StreamExt;
use tempfile::NamedTempFile;
use tokio::sync::oneshot;

use super::App;
use super::http::{body_error, content_length, error, json};
use super::jobs::FileEvent;
use super::pool::Upload;
use crate::analysis::FileOutcome;

/// `POST /v1/analyze`: the body is an audio file in any supported format (probed from
/// its bytes); the answer is its row with its tempo candidates, 200 when analysed, 422
/// (with the row saying why) when not.
pub(super) async fn upload(State(app): State<Arc<App>>, request: Request) -> Response {
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
pub(super) async fn store_upload(
    body: Body,
    limit: usize,
) -> Result<(NamedTempFile, usize), Response> {
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

pub(super) fn upload_response(analysed: FileOutcome) -> Response {
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
