//! Following a request's body as it is sent to an instance: when it was sent in full, so that
//! the response timeout runs from then (an upload as slow as its client is the client's time,
//! not the instance's); who holds it up when it stops moving (the client not sending, or the
//! instance not taking it), so that a pause past the body timeout is charged to the right one;
//! and whether it failed on the proxy's side of the exchange (the client disconnected or sent a
//! malformed body, or a mirror's copy was cut short), which is no failure of the instance.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Body;

/// What a watched body reports while it is sent.
pub(super) struct Watch {
    /// Fires when the body's last frame was taken, when it failed, or when it was dropped
    /// unfinished (the instance answered without reading it all).
    pub(super) sent: oneshot::Receiver<()>,
    pub(super) progress: Arc<Progress>,
}

/// Who a body in transit is waiting for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Waiting {
    /// Nothing was asked of the body yet: the connection and the request's headers come first
    /// (timed by the connect timeout).
    Start,
    /// The instance's connection has the last frame and has not asked for the next one: the
    /// instance is not reading (its socket is full).
    Upstream,
    /// The connection asked for the next frame and the body's source has none yet: the client
    /// is not sending.
    Client,
}

/// The state of a body in transit, shared between the body and the attempt sending it.
#[derive(Debug)]
pub(super) struct Progress {
    /// Who the body waits for, and since when (the last change or frame).
    state: Mutex<(Waiting, Instant)>,
    /// The body's source failed or ended short of its declared length.
    failed: AtomicBool,
    /// The body's source failed because the client went away (closed its connection or reset
    /// its stream), not because it sent a malformed body.
    gone: AtomicBool,
}

impl Progress {
    fn new() -> Self {
        Progress {
            state: Mutex::new((Waiting::Start, Instant::now())),
            failed: AtomicBool::new(false),
            gone: AtomicBool::new(false),
        }
    }

    /// Who the body waits for, and since when.
    pub(super) fn waiting(&self) -> (Waiting, Instant) {
        *self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, who: Waiting, stamp_again: bool) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if stamp_again || state.0 != who {
            *state = (who, Instant::now());
        }
    }

    /// Whether the body failed on the proxy's side: its source returned an error (the client
    /// disconnected mid-body or sent a malformed one) or ended before its declared length (a
    /// mirror's copy that was cut short).
    pub(super) fn source_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// Whether the body failed because the client went away in the middle of it.
    pub(super) fn client_gone(&self) -> bool {
        self.gone.load(Ordering::Acquire)
    }
}

/// Whether a request body's error means that its client went away (an early end of its
/// connection, a reset, a reset HTTP/2 stream) rather than that it sent a malformed body,
/// which hyper reports as invalid input or data.
fn went_away(e: &hyper::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return !matches!(
                io.kind(),
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::InvalidInput
            );
        }
        cause = c.source();
    }
    true
}

/// `req` with a body that reports its progress, and the report; `None` for a request without
/// a body, which is sent as soon as its headers are.
pub(super) fn watch(req: Request<Body>) -> (Request<Body>, Option<Watch>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let (tx, rx) = oneshot::channel();
    let progress = Arc::new(Progress::new());
    let shared = progress.clone();
    let req = req.map(|inner| {
        Reporting {
            inner,
            sent: Some(tx),
            progress: shared,
        }
        .boxed()
    });
    (req, Some(Watch { sent: rx, progress }))
}

/// A body that reports its progress, and when its last frame was taken, when it fails, or when
/// it is dropped unfinished.
struct Reporting {
    inner: Body,
    sent: Option<oneshot::Sender<()>>,
    progress: Arc<Progress>,
}

impl Reporting {
    fn report(&mut self) {
        if let Some(sent) = self.sent.take() {
            let _ = sent.send(());
        }
    }
}

impl HttpBody for Reporting {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(_))) => {
                // Every frame taken is progress, even one after another without a pause.
                self.progress.set(Waiting::Upstream, true);
                if self.inner.is_end_stream() {
                    self.report();
                }
            }
            Poll::Ready(Some(Err(e))) => {
                if went_away(e) {
                    self.progress.gone.store(true, Ordering::Release);
                }
                self.progress.failed.store(true, Ordering::Release);
                self.report();
            }
            Poll::Ready(None) => {
                if self.inner.size_hint().lower() > 0 {
                    self.progress.failed.store(true, Ordering::Release);
                }
                self.report();
            }
            Poll::Pending => self.progress.set(Waiting::Client, false),
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Reporting {
    fn drop(&mut self) {
        self.report();
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use http_body_util::{Empty, Full};

    use super::*;

    /// A body of the given chunks, taken one per poll; `short` declares one byte more than
    /// it has, as a copy cut short does.
    struct Chunks {
        chunks: VecDeque<Bytes>,
        short: bool,
    }

    fn chunks(of: &[&'static str], short: bool) -> Body {
        Chunks {
            chunks: of
                .iter()
                .map(|c| Bytes::from_static(c.as_bytes()))
                .collect(),
            short,
        }
        .boxed()
    }

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            Poll::Ready(self.chunks.pop_front().map(|b| Ok(Frame::data(b))))
        }
        fn size_hint(&self) -> SizeHint {
            if self.short {
                SizeHint::with_exact(self.chunks.iter().map(|c| c.len() as u64).sum::<u64>() + 1)
            } else {
                SizeHint::default()
            }
        }
    }

    /// A body whose chunks come from a channel, as slowly as they are sent.
    struct Channel(tokio::sync::mpsc::Receiver<Bytes>);

    impl HttpBody for Channel {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
        }
    }

    fn request(body: Body) -> Request<Body> {
        Request::post("/upload").body(body).unwrap()
    }

    #[tokio::test]
    async fn the_end_of_a_body_is_reported_after_its_last_chunk() {
        let (req, watch) = watch(request(chunks(&["ab", "cd", "ef"], false)));
        let mut w = watch.expect("a body to report");
        let mut body = req.into_body();
        for _ in 0..3 {
            assert!(w.sent.try_recv().is_err(), "reported before the end");
            assert!(body.frame().await.is_some());
        }
        assert!(body.frame().await.is_none());
        assert!(w.sent.try_recv().is_ok());
        assert!(!w.progress.source_failed());
    }

    #[tokio::test]
    async fn a_known_length_body_is_reported_with_its_last_chunk() {
        let (req, watch) = watch(request(
            Full::new(Bytes::from_static(b"all"))
                .map_err(|e| match e {})
                .boxed(),
        ));
        let mut w = watch.expect("a body to report");
        let mut body = req.into_body();
        assert!(w.sent.try_recv().is_err());
        assert!(body.frame().await.is_some());
        assert!(
            w.sent.try_recv().is_ok(),
            "hyper polls no further after the end"
        );
    }

    #[test]
    fn no_body_has_nothing_to_wait_for_and_a_dropped_one_is_reported() {
        let (_, none) = watch(request(Empty::new().map_err(|e| match e {}).boxed()));
        assert!(none.is_none());
        let (req, watch) = watch(request(chunks(&["ab"], false)));
        let mut w = watch.expect("a body to report");
        drop(req);
        assert!(w.sent.try_recv().is_ok());
        assert!(!w.progress.source_failed(), "dropped is not failed");
    }

    #[tokio::test]
    async fn a_body_ending_short_of_its_declared_length_failed_at_its_source() {
        let (req, watch) = watch(request(chunks(&["ab"], true)));
        let mut w = watch.expect("a body to report");
        let mut body = req.into_body();
        assert!(body.frame().await.is_some());
        assert!(!w.progress.source_failed());
        assert!(body.frame().await.is_none());
        assert!(w.progress.source_failed());
        assert!(w.sent.try_recv().is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn a_pause_is_put_on_whoever_the_body_waits_for() {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (req, watch) = watch(request(Channel(rx).boxed()));
        let w = watch.expect("a body to report");
        let started = Instant::now();
        assert_eq!(w.progress.waiting(), (Waiting::Start, started));
        let mut body = req.into_body();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        tokio::time::advance(Duration::from_secs(1)).await;
        // Asked for a frame the client has not sent: waiting for the client, from now.
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        let asked = Instant::now();
        assert_eq!(w.progress.waiting(), (Waiting::Client, asked));
        // Asked again later without anything new: still waiting since the first ask.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(Pin::new(&mut body).poll_frame(&mut cx).is_pending());
        assert_eq!(w.progress.waiting(), (Waiting::Client, asked));
        // A frame taken: now the instance's connection has to take it on, from now.
        tx.send(Bytes::from_static(b"x")).await.unwrap();
        assert!(matches!(
            Pin::new(&mut body).poll_frame(&mut cx),
            Poll::Ready(Some(Ok(_)))
        ));
        assert_eq!(w.progress.waiting(), (Waiting::Upstream, Instant::now()));
        assert!(Instant::now() > asked);
    }
}
