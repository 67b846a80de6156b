//! One client connection's life: closed when it has been idle too long, whatever its protocol,
//! and closed gracefully when the proxy stops.
//!
//! hyper closes an idle HTTP/1.1 keep-alive connection by itself (its header read timeout
//! runs while it waits for the next request), but has no idle limit for HTTP/2: it can only
//! ping, and a client that answers pings holds its connection, and a file descriptor, for
//! ever. So each connection counts its requests in progress ([`Activity`]), from the call of
//! the service to the end of the response body, and [`run`] closes it once none has been in
//! progress for the limit: HTTP/2 with a `GOAWAY`, so that the client opens a new connection
//! for its next request and loses none, HTTP/1.1 as hyper would have. A request in progress
//! (a long poll, a download, a slow upload) keeps its connection open however long it takes.

use std::fmt::Display;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::server::graceful::GracefulConnection;
use tokio::sync::watch;
use tokio::time::Instant;

use super::Body;

/// What a client connection's requests are doing.
#[derive(Debug)]
pub(super) struct Activity {
    /// When the connection was accepted.
    born: Instant,
    /// Requests in progress: the service was called and the response body is not done.
    active: AtomicUsize,
    /// When the last request ended, in nanoseconds after `born`, plus one; 0 before any did.
    ended: AtomicU64,
}

/// What the idle check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Idle {
    /// Not idle long enough: look again at this instant.
    Until(Instant),
    /// Idle for the limit; whether it ever served a request.
    Since { served: bool },
}

impl Activity {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Activity {
            born: Instant::now(),
            active: AtomicUsize::new(0),
            ended: AtomicU64::new(0),
        })
    }

    /// Counts a request in progress until the returned guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Busy {
        self.active.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Whether the connection has been without a request in progress for `limit` at `now`.
    fn idle(&self, limit: Duration, now: Instant) -> Idle {
        if self.active.load(Ordering::Acquire) > 0 {
            return Idle::Until(now + limit);
        }
        let ended = self.ended.load(Ordering::Acquire);
        let since = match ended.checked_sub(1) {
            Some(nanos) => self.born + Duration::from_nanos(nanos),
            None => self.born,
        };
        let due = since + limit;
        if due > now {
            Idle::Until(due)
        } else {
            Idle::Since { served: ended > 0 }
        }
    }
}

/// One request in progress on a connection.
#[derive(Debug)]
pub(super) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        let a = &self.0;
        let nanos = u64::try_from(a.born.elapsed().as_nanos()).unwrap_or(u64::MAX - 1);
        // The end is stamped before the count drops, so a check that sees no request in
        // progress sees when the last one ended.
        a.ended.fetch_max(nanos + 1, Ordering::AcqRel);
        a.active.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body that keeps its request counted in progress until it is done or dropped.
pub(super) struct Tracked {
    inner: Body,
    _busy: Busy,
}

impl Tracked {
    pub(super) fn new(inner: Body, busy: Busy) -> Self {
        Tracked { inner, _busy: busy }
    }
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Runs a client connection until it ends: it is closed once it has had no request in
/// progress for `limit` (from its accept, for the first request: a connection that sends
/// nothing, or only the HTTP/2 preface, is dropped then), and closed gracefully (requests in
/// progress finish) when `stopped` turns `true` or its sender goes. A connection asked to
/// close that is still open and idle `limit` later (a client that never acknowledges the
/// `GOAWAY`) is dropped. `_open` is held until the end, for the proxy's shutdown to wait on.
pub(super) async fn run<C>(
    conn: C,
    activity: Arc<Activity>,
    limit: Duration,
    mut stopped: watch::Receiver<bool>,
    _open: watch::Receiver<()>,
) where
    C: GracefulConnection,
    C::Error: Display,
{
    tokio::pin!(conn);
    let mut closing = false;
    let mut check = activity.born + limit;
    let ended = loop {
        tokio::select! {
            biased;
            ended = &mut conn => break ended,
            _ = stopped.wait_for(|s| *s), if !closing => {
                conn.as_mut().graceful_shutdown();
                closing = true;
            }
            () = tokio::time::sleep_until(check) => {
                match activity.idle(limit, Instant::now()) {
                    Idle::Until(at) => check = at,
                    Idle::Since { served } if served && !closing => {
                        tracing::debug!(?limit, "idle connection closed");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                        check = Instant::now() + limit;
                    }
                    Idle::Since { .. } => {
                        tracing::debug!(?limit, "no request in time: connection dropped");
                        return;
                    }
                }
            }
        }
    };
    if let Err(e) = ended {
        tracing::debug!(error = %e, "client connection ended");
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_is_idle_only_with_no_request_in_progress_for_the_limit() {
        let limit = Duration::from_secs(30);
        let a = Activity::new();
        let born = Instant::now();
        assert_eq!(a.idle(limit, born), Idle::Until(born + limit));
        assert_eq!(
            a.idle(limit, born + limit),
            Idle::Since { served: false },
            "nothing ever asked"
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        let busy = a.begin();
        let later = born + Duration::from_secs(100);
        // A request in progress, however long: not idle.
        assert_eq!(a.idle(limit, later), Idle::Until(later + limit));
        let body = Tracked::new(
            http_body_util::Empty::new().map_err(|e| match e {}).boxed(),
            busy,
        );
        tokio::time::advance(Duration::from_secs(10)).await;
        let ended = Instant::now();
        drop(body);
        assert_eq!(a.idle(limit, ended), Idle::Until(ended + limit));
        assert_eq!(a.idle(limit, ended + limit), Idle::Since { served: true });
        // Two at once: idle only when both are done.
        let (one, two) = (a.begin(), a.begin());
        drop(one);
        let now = ended + 2 * limit;
        assert_eq!(a.idle(limit, now), Idle::Until(now + limit));
        drop(two);
    }
}
