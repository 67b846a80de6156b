//! Mirroring a request that has a body, without ever holding up the request itself.
//!
//! The primary request keeps streaming its body to its instance; a [`Tee`] around that body
//! hands each chunk, as it passes, to a bounded channel that the mirror's copy of the request
//! reads ([`MirrorBody`]). The primary never waits for the mirror: a chunk that does not fit
//! because the mirror fell behind drops the mirror's copy instead (counted per mirror backend).
//!
//! Only bodies of a declared length (`Content-Length`) up to
//! [`ProxyConfig::mirror_body_limit`](crate::ProxyConfig::mirror_body_limit) are teed, so a
//! mirrored request costs at most that much memory, and a copy that was dropped part-way is
//! seen by the mirror as a request cut short (fewer bytes than declared: its connection is
//! aborted), never as a complete request with a truncated body. Longer bodies and bodies of
//! unknown length (chunked) are not mirrored, and are counted.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes};
use http_body_util::BodyExt;
use hyper::Request;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use hyper::header::{self, HeaderMap};
use tokio::sync::mpsc::{self, error::TrySendError};

use super::Body;
use crate::metrics::Store;

/// How many chunks of the body the mirror may lag behind the primary before its copy is
/// dropped. The bytes held are bounded by the body limit as well.
const LAG_CHUNKS: usize = 64;

/// The declared length of `req`'s body if it may be teed to a mirror: known from
/// `Content-Length` (and agreed by the body itself) and at most `limit` bytes.
pub(super) fn teeable_len(req: &Request<Body>, limit: u64) -> Option<u64> {
    let declared = content_length(req.headers())?;
    (req.body().size_hint().exact() == Some(declared) && declared <= limit).then_some(declared)
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    let mut values = headers.get_all(header::CONTENT_LENGTH).iter();
    let first = values.next()?.to_str().ok()?.trim().parse().ok()?;
    // Several Content-Length headers must agree (RFC 9110, 8.6); hyper refuses others already.
    values
        .all(|v| v.to_str().ok().and_then(|v| v.trim().parse().ok()) == Some(first))
        .then_some(first)
}

/// Splits `req` into the primary request, whose body now feeds the mirror as it streams, and
/// the mirror's copy (same method, URI and headers) reading `len` bytes from that feed.
pub(super) fn tee(
    req: Request<Body>,
    len: u64,
    store: Arc<Store>,
    mirror_backend: &str,
) -> (Request<Body>, Request<Body>) {
    let (tx, rx) = mpsc::channel(LAG_CHUNKS);
    let (parts, body) = req.into_parts();
    let mut copy = Request::new(
        MirrorBody { rx, remaining: len }
            .map_err(|e| match e {})
            .boxed(),
    );
    *copy.method_mut() = parts.method.clone();
    *copy.uri_mut() = parts.uri.clone();
    *copy.headers_mut() = parts.headers.clone();
    let primary = Tee {
        inner: body,
        mirror: Some(tx),
        store,
        mirror_backend: mirror_backend.into(),
    };
    (Request::from_parts(parts, primary.boxed()), copy)
}

/// The primary's body, handing each chunk to the mirror as it passes.
pub(super) struct Tee {
    inner: Body,
    /// Gone once the body ended, failed, or the mirror fell behind or gave up.
    mirror: Option<mpsc::Sender<Bytes>>,
    store: Arc<Store>,
    mirror_backend: Arc<str>,
}

impl HttpBody for Tee {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(tx)) = (frame.data_ref(), &this.mirror)
                    && !data.is_empty()
                    && let Err(e) = tx.try_send(data.clone())
                {
                    this.mirror = None;
                    if matches!(e, TrySendError::Full(_)) {
                        this.store.record_mirror_dropped(&this.mirror_backend);
                    }
                }
                if this.inner.is_end_stream() {
                    this.mirror = None;
                }
            }
            Poll::Ready(Some(Err(_)) | None) => this.mirror = None,
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

/// The mirror's copy of the body: what the [`Tee`] handed over, ending after the declared
/// length, or short of it if the copy was dropped.
pub(super) struct MirrorBody {
    rx: mpsc::Receiver<Bytes>,
    remaining: u64,
}

impl HttpBody for MirrorBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(chunk)) => {
                let n = u64::try_from(chunk.len()).unwrap_or(u64::MAX);
                self.remaining = self.remaining.saturating_sub(n);
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// Reads a mirror's answer to its end and drops it chunk by chunk: the connection stays
/// reusable, and an answer of any size holds one chunk in memory at a time (collecting it would
/// hold all of it, for every mirrored request, until the mirror's timeout). Returns the bytes
/// read.
pub(super) async fn drain<B: HttpBody + Unpin>(mut body: B) -> u64 {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.remaining() as u64);
        }
    }
    read
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::*;

    fn store() -> Arc<Store> {
        Arc::new(Store::new(Duration::from_secs(1), Duration::from_secs(60)).unwrap())
    }

    /// A body of fixed chunks that knows its exact length, as a `Content-Length` body does.
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
        fn is_end_stream(&self) -> bool {
            self.0.is_empty()
        }
        fn size_hint(&self) -> SizeHint {
            SizeHint::with_exact(self.0.iter().map(|b| b.len() as u64).sum())
        }
    }

    fn request(chunks: &[String], declared: Option<u64>) -> Request<Body> {
        let body = Chunks(chunks.iter().map(|c| Bytes::from(c.clone())).collect()).boxed();
        let mut req = Request::post("/orders").body(body).unwrap();
        if let Some(n) = declared {
            req.headers_mut()
                .insert(header::CONTENT_LENGTH, n.to_string().parse().unwrap());
        }
        req
    }

    async fn collect(body: Body) -> Vec<u8> {
        body.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_mirror_answer_is_drained_to_its_end() {
        let chunks = (0..1_000)
            .map(|i| Bytes::from(vec![b'x'; i % 97]))
            .collect();
        let total = (0..1_000).map(|i| (i % 97) as u64).sum::<u64>();
        assert_eq!(drain(Chunks(chunks)).await, total);
    }

    #[test]
    fn only_declared_bodies_within_the_limit_are_teed() {
        let chunks = ["abc".to_owned(), "de".to_owned()];
        assert_eq!(teeable_len(&request(&chunks, Some(5)), 5), Some(5));
        assert_eq!(teeable_len(&request(&chunks, Some(5)), 4), None);
        assert_eq!(teeable_len(&request(&chunks, None), 1_024), None);
        // A declared length the body does not agree with is not trusted.
        assert_eq!(teeable_len(&request(&chunks, Some(6)), 1_024), None);
        let mut twice = request(&chunks, Some(5));
        twice
            .headers_mut()
            .append(header::CONTENT_LENGTH, "7".parse().unwrap());
        assert_eq!(teeable_len(&twice, 1_024), None);
    }

    #[tokio::test]
    async fn both_copies_carry_the_whole_body() {
        let chunks: Vec<String> = (0..10).map(|i| format!("chunk-{i};")).collect();
        let whole: String = chunks.concat();
        let len = whole.len() as u64;
        let store = store();
        let (primary, copy) = tee(request(&chunks, Some(len)), len, store.clone(), "shadow");
        assert_eq!(copy.method(), hyper::Method::POST);
        assert_eq!(copy.uri(), "/orders");
        assert_eq!(copy.headers()[header::CONTENT_LENGTH], len.to_string());
        assert_eq!(collect(primary.into_body()).await, whole.as_bytes());
        let copy = copy.into_body();
        assert_eq!(copy.size_hint().exact(), Some(len));
        assert_eq!(collect(copy).await, whole.as_bytes());
        assert_eq!(store.mirror_counts("shadow"), (0, 0));
    }

    #[tokio::test]
    async fn a_mirror_that_falls_behind_loses_its_copy_and_the_primary_nothing() {
        let chunks: Vec<String> = (0..LAG_CHUNKS + 8).map(|i| format!("{i:04}")).collect();
        let whole: String = chunks.concat();
        let len = whole.len() as u64;
        let store = store();
        let (primary, copy) = tee(request(&chunks, Some(len)), len, store.clone(), "shadow");
        // The mirror reads nothing while the primary streams everything through.
        assert_eq!(collect(primary.into_body()).await, whole.as_bytes());
        assert_eq!(store.mirror_counts("shadow"), (0, 1));
        let mut copy = copy.into_body();
        let mut got = Vec::new();
        while let Some(frame) = copy.frame().await {
            got.extend_from_slice(&frame.unwrap().into_data().unwrap());
        }
        // It ends short of the declared length, so the mirror sees an aborted request.
        assert_eq!(got, whole.as_bytes()[..LAG_CHUNKS * 4]);
        assert!(!copy.is_end_stream());
    }

    #[tokio::test]
    async fn a_primary_body_dropped_part_way_cuts_the_copy_short() {
        let chunks = ["abc".to_owned(), "def".to_owned()];
        let (primary, copy) = tee(request(&chunks, Some(6)), 6, store(), "shadow");
        let mut primary = primary.into_body();
        let first = primary.frame().await.unwrap().unwrap();
        assert_eq!(first.into_data().unwrap(), "abc");
        drop(primary);
        let mut copy = copy.into_body();
        assert_eq!(
            copy.frame().await.unwrap().unwrap().into_data().unwrap(),
            "abc"
        );
        assert!(copy.frame().await.is_none());
        assert_eq!(copy.size_hint().exact(), Some(3));
    }
}
