//! Reading an instance's response body for the client. Its connection's reads are timed
//! while it is read (see [`BodyDue`](super::upstream::BodyDue)): an instance that pauses it
//! for longer than the response body timeout fails it, so the client's answer is cut off
//! rather than held for ever, and the request counts as an error of the instance's backend.
//! The request is counted when its body ends (see [`Answered`]), so a late failure is counted
//! in the same bucket as the request itself.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};

use super::upstream::{DueToken, InFlight};
use crate::metrics::Answered;

/// The instance paused its response body for longer than the limit.
#[derive(Debug)]
pub(super) struct Stalled(pub(super) Duration);

impl fmt::Display for Stalled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the instance sent nothing of its response body for {:?} (the response body timeout)",
            self.0
        )
    }
}

impl std::error::Error for Stalled {}

/// An instance's response body; it holds its request in flight on the instance, and its
/// connection's reads timed, until it is done or dropped.
pub(super) struct Reading {
    inner: Incoming,
    due: DueToken,
    answered: Answered,
    _in_flight: InFlight,
}

impl Reading {
    pub(super) fn new(
        inner: Incoming,
        due: DueToken,
        answered: Answered,
        in_flight: InFlight,
    ) -> Self {
        Reading {
            inner,
            due,
            answered,
            _in_flight: in_flight,
        }
    }
}

impl HttpBody for Reading {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                // The instance broke its answer off, or paused it past the limit: the request
                // failed after all.
                this.answered.fail();
                this.due.done();
                Poll::Ready(Some(Err(e)))
            }
            Poll::Ready(None) => {
                this.answered.end();
                this.due.done();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
