//! Knowing when a request's body has been sent in full, so that the response timeout runs
//! from then: an upload as slow as its client is the client's time, not the instance's.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tokio::sync::oneshot;

use super::Body;

/// `req` with a body that reports its end, and the receiver of that report; `None` for a
/// request without a body, which is sent as soon as its headers are.
pub(super) fn signal_when_sent(
    req: Request<Body>,
) -> (Request<Body>, Option<oneshot::Receiver<()>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let (tx, rx) = oneshot::channel();
    let req = req.map(|inner| {
        Reporting {
            inner,
            sent: Some(tx),
        }
        .boxed()
    });
    (req, Some(rx))
}

/// A body that reports when its last frame was taken, when it fails, or when it is dropped
/// unfinished (the instance answered without reading it all).
struct Reporting {
    inner: Body,
    sent: Option<oneshot::Sender<()>>,
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
            Poll::Ready(Some(Ok(_))) if !self.inner.is_end_stream() => {}
            Poll::Ready(_) => self.report(),
            Poll::Pending => {}
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

    use http_body_util::{Empty, Full};

    use super::*;

    /// A body of the given chunks, taken one per poll.
    struct Chunks(VecDeque<Bytes>);

    impl HttpBody for Chunks {
        type Data = Bytes;
        type Error = hyper::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
            Poll::Ready(self.0.pop_front().map(|b| Ok(Frame::data(b))))
        }
    }

    fn request(body: Body) -> Request<Body> {
        Request::post("/upload").body(body).unwrap()
    }

    #[tokio::test]
    async fn the_end_of_a_body_is_reported_after_its_last_chunk() {
        let chunks = ["ab", "cd", "ef"].map(Bytes::from).into_iter().collect();
        let (req, sent) = signal_when_sent(request(Chunks(chunks).boxed()));
        let mut sent = sent.expect("a body to report");
        let mut body = req.into_body();
        for _ in 0..3 {
            assert!(sent.try_recv().is_err(), "reported before the end");
            assert!(body.frame().await.is_some());
        }
        assert!(body.frame().await.is_none());
        assert!(sent.try_recv().is_ok());
    }

    #[tokio::test]
    async fn a_known_length_body_is_reported_with_its_last_chunk() {
        let (req, sent) = signal_when_sent(request(
            Full::new(Bytes::from_static(b"all"))
                .map_err(|e| match e {})
                .boxed(),
        ));
        let mut sent = sent.expect("a body to report");
        let mut body = req.into_body();
        assert!(sent.try_recv().is_err());
        assert!(body.frame().await.is_some());
        assert!(
            sent.try_recv().is_ok(),
            "hyper polls no further after the end"
        );
    }

    #[test]
    fn no_body_has_nothing_to_wait_for_and_a_dropped_one_is_reported() {
        let (_, sent) = signal_when_sent(request(Empty::new().map_err(|e| match e {}).boxed()));
        assert!(sent.is_none());
        let chunks = ["ab"].map(Bytes::from).into_iter().collect();
        let (req, sent) = signal_when_sent(request(Chunks(chunks).boxed()));
        let mut sent = sent.expect("a body to report");
        drop(req);
        assert!(sent.try_recv().is_ok());
    }
}
