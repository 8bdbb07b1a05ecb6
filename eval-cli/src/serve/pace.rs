//! The least pace of a request body. `--body-timeout` bounds each pause, not the whole:
//! a client that sent one byte every few seconds kept its connection slot as long as it
//! liked, and 260 such clients held every slot (`/v1/health` went unanswered). After a
//! grace of `--body-timeout` seconds a body must keep coming at [`MIN_RATE`] bytes a
//! second, or it is cut (a 408, as a stalled body), as Apache's `mod_reqtimeout` does with
//! its `MinRate`. The pace is a leaky bucket: bytes sent ahead of it buy at most one grace
//! of slack, so a fast start followed by a trickle is cut a grace later (as a plain
//! average, 100 MB sent at once had bought a day of trickling).

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
    grace: Duration,
    /// When the body falls behind if nothing more comes.
    behind: Pin<Box<Sleep>>,
}

impl Paced {
    fn new(inner: Body, grace: Duration) -> Self {
        let behind = Box::pin(tokio::time::sleep_until(Instant::now() + grace));
        Paced {
            inner,
            grace,
            behind,
        }
    }
}

/// When a body that was to fall behind at `behind` falls behind after `bytes` more came
/// `now`: each byte buys `1 / MIN_RATE` s, and the slack ahead of `now` is capped at
/// `grace`.
fn behind_after(behind: Instant, bytes: usize, now: Instant, grace: Duration) -> Instant {
    let bought = Duration::from_secs_f64(bytes as f64 / MIN_RATE as f64);
    (behind + bought).min(now + grace)
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
                    let behind = this.behind.deadline();
                    let at = behind_after(behind, data.len(), Instant::now(), this.grace);
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

    /// The pace's arithmetic on a fixed clock: bytes buy time at `MIN_RATE`, but bytes
    /// sent ahead of the pace buy no more than one grace of slack, so a trickle after a
    /// burst is cut a grace later instead of a day later.
    #[test]
    fn slack_bought_ahead_of_the_pace_is_capped_at_one_grace() {
        let grace = Duration::from_secs(30);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        // 2 KiB at the start would buy two seconds beyond the grace; the cap takes them back.
        assert_eq!(behind_after(t0 + grace, 2048, t0, grace), t0 + grace);
        // Keeping up: 10 KiB ten seconds in move the deadline ten seconds on.
        let kept_up = behind_after(t0 + grace, 10 * 1024, t0 + s(10), grace);
        assert_eq!(kept_up, t0 + s(40));
        // A burst of 100 MB buys one grace, not 100 000 seconds.
        let after_burst = behind_after(t0 + grace, 100 << 20, t0 + s(1), grace);
        assert_eq!(after_burst, t0 + s(31));
        // A byte every 29 s then drains the slack: the second such byte comes after the
        // deadline (each pause is inside the grace, the pace is not).
        let mut behind = after_burst;
        let mut now = t0 + s(1);
        let mut trickled = 0;
        while behind > now {
            now += s(29);
            behind = behind_after(behind, 1, now, grace);
            trickled += 1;
        }
        assert_eq!(trickled, 2, "cut at {:?}", behind - t0);
    }
}
