//! `POST /v1/analyze`: one uploaded file, streamed to a temporary file, analysed ahead of
//! every job's queued files, answered with its row (200) or its error row (422).

use std::io::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use futures_util::StreamExt;
use tempfile::NamedTempFile;
use tokio::sync::oneshot;

use super::App;
use super::http::{Refusal, body_error, content_length, drain, error, json, refused};
use super::jobs::FileEvent;
use super::pool::Upload;
use super::settings::upload_settings;
use crate::analysis::FileOutcome;

/// `POST /v1/analyze`: the body is an audio file in any supported format (probed from
/// its bytes); the answer is its row with its tempo candidates, 200 when analysed, 422
/// (with the row saying why) when not.
pub(super) async fn upload(State(app): State<Arc<App>>, request: Request) -> Response {
    let limit = app.limits.max_upload_bytes;
    if let Some(refusal) = form_refusal(request.headers()) {
        app.telemetry.upload_rejected();
        // The body is read and dropped first (up to the upload limit): a reply sent while
        // the client still writes closes the connection under it, and the client saw a
        // broken pipe instead of the 415 and its reason.
        drain(request.into_body(), limit).await;
        return refusal;
    }
    // Read before the body (and the body drained after a refusal, as above).
    let analyzer =
        match upload_settings(request.uri().query()).and_then(|settings| settings.analyzer(&app)) {
            Ok(analyzer) => analyzer,
            Err(reason) => {
                app.telemetry.upload_rejected();
                drain(request.into_body(), limit).await;
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("invalid upload query: {reason}"),
                );
            }
        };
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
        analyzer,
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

/// The 415 of an upload sent as a form (`curl -F file=@x.flac`): its body is a multipart
/// envelope around the audio, which would be probed and analysed as if it were the audio
/// (a 200 with wrong numbers). `application/x-www-form-urlencoded` is let through: it is
/// what `curl --data-binary @FILE` says of a raw body.
fn form_refusal(headers: &HeaderMap) -> Option<Response> {
    let media_type = headers
        .get(header::CONTENT_TYPE)?
        .to_str()
        .ok()?
        .split(';')
        .next()?
        .trim();
    let is_multipart = media_type
        .get(.."multipart/".len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("multipart/"));
    is_multipart.then(|| {
        error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            // The type is not echoed: a header of kilobytes would come back whole.
            "a multipart upload (a form, as `curl -F` sends) is not read: send the audio \
             file itself as the request body (`curl --data-binary @FILE ...`)"
                .to_string(),
        )
    })
}

/// Writes the body to a temporary file as it arrives (memory stays flat whatever the
/// upload's size), refusing it with 413 past `limit` bytes; gives the file and its size.
pub(super) async fn store_upload(
    body: Body,
    limit: usize,
) -> Result<(NamedTempFile, usize), Response> {
    let prefix = format!("{UPLOAD_PREFIX}{}-", std::process::id());
    let mut file = tokio::task::block_in_place(|| {
        tempfile::Builder::new()
            .prefix(&prefix)
            .tempfile_in(crate::host::temp_folder())
    })
    .map_err(storage_refusal)?;
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
        tokio::task::block_in_place(|| file.write_all(&chunk)).map_err(storage_refusal)?;
    }
    tokio::task::block_in_place(|| file.flush()).map_err(storage_refusal)?;
    Ok((file, size))
}

/// The answer to an upload that could not be stored: the service's disk, not the request.
/// A full one is a 507 (as WebDAV names it), any other failure a 503 to try again; it was
/// a 500.
fn storage_refusal(e: std::io::Error) -> Response {
    let full = matches!(
        e.kind(),
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
    );
    let status = if full {
        StatusCode::INSUFFICIENT_STORAGE
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    refused(Refusal::new(
        status,
        format!(
            "cannot store the upload in {}: {e}",
            crate::host::temp_folder().display()
        ),
    ))
}

/// The start of an upload's temporary file's name, before the pid of the service that
/// stores it: `eval-cli-upload-PID-XXXXXX` in the temporary folder.
const UPLOAD_PREFIX: &str = "eval-cli-upload-";

/// Removes the uploads that services killed before they could (`kill -9`, a crash) left
/// in the temporary folder: each could hold up to `--max-upload-mb`, for good. A file
/// whose service still runs (its pid in `/proc`) is left, another process's as ours;
/// gives how many were removed.
pub(super) fn sweep_stale_uploads() -> usize {
    let Ok(entries) = std::fs::read_dir(crate::host::temp_folder()) else {
        return 0;
    };
    let stale = |name: &str| {
        let pid = name.strip_prefix(UPLOAD_PREFIX)?.split('-').next()?;
        let pid: u32 = pid.parse().ok()?;
        (!std::path::Path::new("/proc").join(pid.to_string()).exists()).then_some(())
    };
    entries
        .filter_map(Result::ok)
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| stale(n).is_some())
        })
        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_file()))
        .filter(|entry| std::fs::remove_file(entry.path()).is_ok())
        .count()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_the_disk_cannot_hold_is_a_507_and_no_500() {
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        assert_eq!(
            storage_refusal(full).status(),
            StatusCode::INSUFFICIENT_STORAGE
        );
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let refusal = storage_refusal(denied);
        assert_eq!(refusal.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(refusal.headers().contains_key(header::RETRY_AFTER));
    }

    fn with_type(content_type: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, content_type.parse().unwrap());
        headers
    }

    /// A form upload is a 415 whatever the case of its type; a raw body is read, whatever
    /// type the client gave it (curl's `--data-binary` says it is a urlencoded form).
    #[test]
    fn a_form_upload_is_refused_and_a_raw_body_is_not() {
        for form in [
            "multipart/form-data; boundary=------abc",
            "Multipart/Form-Data;boundary=x",
            "multipart/mixed",
        ] {
            let refusal = form_refusal(&with_type(form)).expect(form);
            assert_eq!(refusal.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        }
        let huge = format!("multipart/{}", "x".repeat(10_000));
        let refusal = form_refusal(&with_type(&huge)).expect("a huge type");
        let body = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(axum::body::to_bytes(refusal.into_body(), usize::MAX))
            .unwrap();
        assert!(body.len() < 1_000, "{} bytes", body.len());
        for raw in [
            "application/x-www-form-urlencoded",
            "audio/flac",
            "application/octet-stream",
            "multipart",
            "",
        ] {
            assert!(form_refusal(&with_type(raw)).is_none(), "{raw}");
        }
        assert!(form_refusal(&HeaderMap::new()).is_none());
    }
}
