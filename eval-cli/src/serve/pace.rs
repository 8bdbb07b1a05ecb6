//! The least pace of a request body. `--body-timeout` bounds each pause, not the whole:
//! a client that sent one byte every few seconds kept its connection slot as long as it
//! liked, and 260 such clients held every slot (`/v1/health` went unanswered). After a
//! grace of `--body-timeout` seconds a body must have come at [`MIN_RATE`] bytes a second
//! on average, or it is cut (a 408, as a stalled body), as Apache's `mod_reqtimeout`
//! does with its `MinRate`.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::time::{Instant, Sleep};

/// Bytes a second a body must average once its grace is over: a client on the slowest
/// link still sends an upload hundreds of times faster.
pub const MIN_RATE: u64 = 1024;

/// The error of a body cut for its pace (read as a 408 by `http::body_error`).
#[derive(Debug, thiserror::Error)]
#[error("the body came slower than {MIN_RATE} bytes a second")]
pub struct TooSlow;

/// Wraps every request's body in [`Paced`], with `grace` before the pace counts.
pub async fn paced(grace: Duration, request: Request, next: Next) -> Response {
    let request = request.map(|body| Body::new(Paced::new(body, grace)));
    next.run(request).await
}

/// A body that ends in [`TooSlow`] once it falls behind the pace.
struct Paced {
    inner: Body,
    start: Instant,
    grace: Duration,
    received: u64,
    /// When the body falls behind if nothing more comes.
    behind: Pin<Box<Sleep>>,
}

impl Paced {
    fn new(inner: Body, grace: Duration) -> Self {
        let start = Instant::now();
        Paced {
            inner,
            start,
            grace,
            received: 0,
            behind: Box::pin(tokio::time::sleep_until(start + grace)),
        }
    }

    /// The moment `received` bytes fall behind the pace.
    fn behind_at(&self) -> Instant {
        self.start + self.grace + Duration::from_secs_f64(self.received as f64 / MIN_RATE as f64)
    }
}

impl HttpBody for Paced {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.received += data.len() as u64;
                    let at = this.behind_at();
                    this.behind.as_mut().reset(at);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Pending => match this.behind.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(TooSlow)))),
                Poll::Pending => Poll::Pending,
            },
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// What a paced body gives: its bytes, or the bytes before it was cut and why.
    async fn read(body: Body, grace: Duration) -> Result<usize, (usize, String)> {
        let mut stream = Body::new(Paced::new(body, grace)).into_data_stream();
        let mut got = 0;
        while let Some(chunk) = stream.next().await {
            match chunk {
                Ok(bytes) => got += bytes.len(),
                Err(e) => return Err((got, e.to_string())),
            }
        }
        Ok(got)
    }

    /// A body that stops coming falls behind the pace and is cut, however long the wait
    /// (no grace here, so that the test waits a millisecond, not a configured grace); a
    /// body that comes at once is read whole, however large. No clock is asserted.
    #[tokio::test]
    async fn a_body_that_falls_behind_is_cut_and_one_that_keeps_up_is_read() {
        let one_byte_then_nothing =
            futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))])
                .chain(futures_util::stream::pending());
        let (got, why) = read(Body::from_stream(one_byte_then_nothing), Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(got, 1);
        assert!(why.contains("slower than 1024 bytes a second"), "{why}");
        let chunks = (0..64).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b'x'; 65536])));
        let whole = read(
            Body::from_stream(futures_util::stream::iter(chunks)),
            Duration::ZERO,
        );
        assert_eq!(whole.await.unwrap(), 64 * 65536);
    }
}
