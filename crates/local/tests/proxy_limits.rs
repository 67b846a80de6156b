//! The limits on message heads: an instance's answer with more header fields than the proxy
//! takes, or too large a head, is the instance's error, charged once and sent nowhere else; a
//! client's request with too many fields or too large a head is refused before it reaches any
//! instance. The head limit bounds hyper's HTTP/1.1 read buffer, which bodies and pipelined
//! requests go through too: neither is bounded by it.

use crate::support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Frame, Incoming};
use hyper::client::conn::{http1, http2};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serin_local::ProxyConfig;
use support::{
    eventually, get_response, h2_connect, measured, payload, proxy, read_to_close, send_raw,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// An instance that answers `GET /fields/{n}` with `n` header fields of its own (`x-field-0`
/// …), `GET /bytes/{n}` with one field `x-big` of `n` bytes, anything else with none, and
/// tells how many header fields each request it got had.
async fn start_instance() -> (SocketAddr, mpsc::UnboundedReceiver<usize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let _ = tx.send(req.headers().len());
                let fields = req
                    .uri()
                    .path()
                    .strip_prefix("/fields/")
                    .and_then(|n| n.parse().ok())
                    .unwrap_or(0);
                let mut res = Response::new(Empty::<Bytes>::new());
                for i in 0..fields {
                    let name = HeaderName::try_from(format!("x-field-{i}")).unwrap();
                    res.headers_mut()
                        .insert(name, HeaderValue::from_static("1"));
                }
                if let Some(bytes) = req
                    .uri()
                    .path()
                    .strip_prefix("/bytes/")
                    .and_then(|n| n.parse().ok())
                {
                    let big = HeaderValue::try_from("a".repeat(bytes)).unwrap();
                    res.headers_mut().insert("x-big", big);
                }
                async { Ok::<_, Infallible>(res) }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .max_headers(1_000)
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, rx)
}

/// A `GET /` head with `fields` fields `x-asked-{i}` besides `Host`.
fn many_fields(fields: usize) -> Vec<u8> {
    let mut head = b"GET / HTTP/1.1\r\nhost: shop\r\n".to_vec();
    for i in 0..fields {
        head.extend_from_slice(format!("x-asked-{i}: 1\r\n").as_bytes());
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// A `GET /` head of `bytes` bytes or a few more, most of them in one field.
fn large_head(bytes: usize) -> Vec<u8> {
    format!(
        "GET / HTTP/1.1\r\nhost: shop\r\nx-big: {}\r\n\r\n",
        "a".repeat(bytes)
    )
    .into_bytes()
}

#[tokio::test]
async fn an_answer_with_more_fields_than_the_limit_is_a_502_charged_to_its_instance() {
    let (instance, _seen) = start_instance().await;
    // Envoy's and hyper's limit of 100, which nginx's header buffer comes to as well: with
    // the instance's `Date` and `Content-Length`, 100 fields are taken and 101 are not.
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_, head) = send_raw(
        router.local_addr(),
        b"GET /fields/98 HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (_, head) = send_raw(
        router.local_addr(),
        b"GET /fields/99 HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    // Charged once: it came on the connection kept alive from the first answer, and is not
    // sent again on a fresh one, as it would be had the instance closed that connection.
    assert_eq!(measured(&router, "stable"), (2.0, 1.0));
    router.shutdown();

    // Raised, it lets the instance's fields through, every one.
    let config = ProxyConfig::default().with_workers(0).with_max_headers(200);
    let router = proxy(config, instance, None).await;
    let (_, head) = send_raw(
        router.local_addr(),
        b"GET /fields/150 HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(head.matches("\r\nx-field-").count(), 150, "{head}");
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    router.shutdown();
}

#[tokio::test]
async fn an_answer_head_over_the_limit_is_a_502_charged_to_its_instance() {
    let (instance, _seen) = start_instance().await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let addr = router.local_addr();
    // Under the default 64 KiB: passed on whole.
    let (_, head) = send_raw(addr, b"GET /bytes/32768 HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains(&"a".repeat(32 * 1024)), "cut");
    // Over it, though well within hyper's own buffer of about 400 KiB: every connection to an
    // instance would otherwise hold that much for one answer's head.
    let (_, head) = send_raw(addr, b"GET /bytes/204800 HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    // Charged once, on the connection kept alive from the first answer as on a fresh one.
    assert_eq!(measured(&router, "stable"), (2.0, 1.0));
    let (_, head) = send_raw(addr, b"GET /bytes/204800 HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(measured(&router, "stable"), (3.0, 2.0));
    router.shutdown();

    // Raised, it lets the larger head through.
    let config = ProxyConfig::default()
        .with_workers(0)
        .with_max_response_head_size(256 * 1024);
    let router = proxy(config, instance, None).await;
    let (_, head) = send_raw(
        router.local_addr(),
        b"GET /bytes/204800 HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    router.shutdown();
}

#[tokio::test]
async fn an_answer_over_the_limits_is_not_sent_again_to_another_instance() {
    let (one, mut seen_one) = start_instance().await;
    let (two, mut seen_two) = start_instance().await;
    let router = proxy(ProxyConfig::default().with_workers(0), one, None).await;
    router.set_endpoints("stable", &[one, two]);
    // A bodyless GET is sent again elsewhere after a crash, but an answer the proxy cannot
    // take is the version's doing, as it would be on the other instance: nginx, whose
    // `proxy_next_upstream` leaves out `invalid_header` by default, answers 502 at once too.
    for path in ["/bytes/204800", "/fields/99"] {
        let request = format!("GET {path} HTTP/1.1\r\nhost: shop\r\n\r\n");
        let (_, head) = send_raw(router.local_addr(), request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 502"), "{path}: {head}");
    }
    let mut asked = 0;
    while seen_one.try_recv().is_ok() || seen_two.try_recv().is_ok() {
        asked += 1;
    }
    assert_eq!(asked, 2, "sent again");
    assert_eq!(measured(&router, "stable"), (2.0, 2.0));
    router.shutdown();
}

#[tokio::test]
async fn a_request_with_more_fields_than_the_limit_is_a_431_that_reaches_no_instance() {
    let (instance, mut seen) = start_instance().await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_, head) = send_raw(router.local_addr(), &many_fields(150)).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(seen.try_recv().is_err(), "forwarded");
    assert_eq!(measured(&router, "stable"), (0.0, 0.0));
    router.shutdown();

    let config = ProxyConfig::default().with_workers(0).with_max_headers(200);
    let router = proxy(config, instance, None).await;
    let (_, head) = send_raw(router.local_addr(), &many_fields(150)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // With the proxy's own: `Via`, `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded`.
    assert_eq!(seen.recv().await, Some(1 + 150 + 4));
    router.shutdown();
}

#[tokio::test]
async fn a_request_head_over_the_limit_is_a_431_that_reaches_no_instance() {
    let (instance, mut seen) = start_instance().await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let addr = router.local_addr();
    // Under the default 64 KiB, over hyper's own limit for HTTP/2, 16 KiB.
    let (_, head) = send_raw(addr, &large_head(32 * 1024)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (mut h2, _conn) = h2_connect(addr).await;
    let big = |bytes: usize| {
        Request::get("http://shop/")
            .header("x-big", "a".repeat(bytes))
            .body(Empty::new())
            .unwrap()
    };
    let res = h2.send_request(big(32 * 1024)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    for _ in 0..2 {
        assert!(seen.recv().await.is_some());
    }
    assert_eq!(measured(&router, "stable"), (2.0, 0.0));

    // Over it, though well within hyper's own HTTP/1.1 buffer of about 400 KiB.
    let (_, head) = send_raw(addr, &large_head(96 * 1024)).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    let res = h2.send_request(big(96 * 1024)).await.unwrap();
    assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    assert!(seen.try_recv().is_err(), "forwarded");
    assert_eq!(measured(&router, "stable"), (2.0, 0.0));
    router.shutdown();

    // Lowered, the same holds of a smaller head.
    let config = ProxyConfig::default()
        .with_workers(0)
        .with_max_request_head_size(16 * 1024);
    let router = proxy(config, instance, None).await;
    let (_, head) = send_raw(router.local_addr(), &large_head(32 * 1024)).await;
    assert!(head.starts_with("HTTP/1.1 431"), "{head}");
    assert!(seen.try_recv().is_err(), "forwarded");
    router.shutdown();
}

/// 8 MiB, a body far larger than the head limit, and than hyper's own buffer.
const LARGE: usize = 8 * 1024 * 1024;

/// FNV-1a's offset basis: the checksum of no bytes.
const FNV_START: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a, carried on from `hash` over `bytes`: a checksum of a body read in pieces.
fn fnv(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// An instance that answers `GET /download/{n}` with `n` bytes of [`payload`], and any other
/// request with the length and checksum of the body it read (`{len} {fnv:016x}`); the bytes of
/// the body being read so far are counted in the returned counter as they come.
async fn start_summing() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(AtomicUsize::new(0));
    let counter = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let received = counter.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let received = received.clone();
                async move {
                    if let Some(n) = req.uri().path().strip_prefix("/download/") {
                        let body = payload(n.parse().unwrap());
                        return Ok::<_, hyper::Error>(Response::new(Full::new(body)));
                    }
                    received.store(0, Ordering::SeqCst);
                    let (mut body, mut len, mut hash) = (req.into_body(), 0, FNV_START);
                    while let Some(frame) = body.frame().await {
                        if let Ok(data) = frame?.into_data() {
                            len += data.len();
                            hash = fnv(hash, &data);
                            received.fetch_add(data.len(), Ordering::SeqCst);
                        }
                    }
                    Ok(Response::new(Full::new(Bytes::from(format!(
                        "{len} {hash:016x}"
                    )))))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, received)
}

/// A request body sent as it is fed, without a declared length of its own.
struct Fed(mpsc::Receiver<Bytes>);

impl Body for Fed {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }
}

/// Uploads [`LARGE`] bytes of [`payload`] through the proxy at `addr` in `version` (HTTP/2 by
/// prior knowledge), with a `Content-Length` if `length` (else chunked in HTTP/1.1), and sends
/// the second half only once the instance has read part of the first: a proxy that held the
/// body back until its end would never be answered. The status and body of the answer.
async fn upload(
    addr: SocketAddr,
    version: Version,
    length: bool,
    received: &AtomicUsize,
) -> (StatusCode, Bytes) {
    let (feed, body) = mpsc::channel(4);
    let mut req = Request::post("http://shop/upload").version(version);
    if length {
        req = req.header("content-length", LARGE);
    }
    let req = req.body(Fed(body)).unwrap();
    let stream = TcpStream::connect(addr).await.unwrap();
    let answer = if version == Version::HTTP_2 {
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move { sender.send_request(req).await })
    } else {
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
        tokio::spawn(conn);
        tokio::spawn(async move { sender.send_request(req).await })
    };
    let all = payload(LARGE);
    let chunks = (0..LARGE)
        .step_by(64 * 1024)
        .map(|at| all.slice(at..at + 64 * 1024));
    for (i, chunk) in chunks.enumerate() {
        if i == LARGE / (64 * 1024) / 2 {
            assert!(
                eventually(|| received.load(Ordering::SeqCst) >= 1024 * 1024).await,
                "the instance got {} bytes of the first half",
                received.load(Ordering::SeqCst)
            );
        }
        feed.send(chunk).await.unwrap();
    }
    drop(feed);
    let res = timeout(Duration::from_secs(30), answer)
        .await
        .expect("an answer within 30 s")
        .unwrap()
        .unwrap();
    let status = res.status();
    (status, res.into_body().collect().await.unwrap().to_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through_intact_with_the_default_head_limit() {
    let (instance, received) = start_summing().await;
    let router = proxy(ProxyConfig::default(), instance, None).await;
    let addr = router.local_addr();
    let expected = format!("{LARGE} {:016x}", fnv(FNV_START, &payload(LARGE)));
    for (version, length) in [
        (Version::HTTP_11, true),
        (Version::HTTP_11, false),
        (Version::HTTP_2, false),
    ] {
        let (status, body) = upload(addr, version, length, &received).await;
        assert_eq!(status, StatusCode::OK, "{version:?}, length {length}");
        assert_eq!(body, expected, "{version:?}, length {length}");
    }
    // And back: an 8 MiB answer, in either version.
    let path = format!("/download/{LARGE}");
    let res = get_response(addr, "shop", &path, &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(body == payload(LARGE), "{} bytes", body.len());
    let (mut h2, _conn) = h2_connect(addr).await;
    let req = Request::get(format!("http://shop{path}"))
        .body(Empty::new())
        .unwrap();
    let res = h2.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert!(body == payload(LARGE), "{} bytes", body.len());
    assert_eq!(measured(&router, "stable"), (5.0, 0.0));
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_whose_heads_together_pass_the_limit_are_all_served() {
    let (instance, mut seen) = start_instance().await;
    let router = proxy(ProxyConfig::default(), instance, None).await;
    // Four heads of 40 KiB each, in one write: 160 KiB waiting for a 64 KiB buffer, each
    // within it; the last asks to close, so that the answers end with the connection.
    let mut pipelined = Vec::new();
    for i in 0..4 {
        let close = if i == 3 { "connection: close\r\n" } else { "" };
        let head = format!(
            "GET /{i} HTTP/1.1\r\nhost: shop\r\n{close}x-big: {}\r\n\r\n",
            "a".repeat(40 * 1024)
        );
        pipelined.extend_from_slice(head.as_bytes());
    }
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client.write_all(&pipelined).await.unwrap();
    let answers = timeout(Duration::from_secs(10), read_to_close(&mut client))
        .await
        .expect("answered within 10 s");
    let answers = String::from_utf8_lossy(&answers);
    assert_eq!(
        answers.matches("HTTP/1.1 200 OK\r\n").count(),
        4,
        "{answers}"
    );
    for _ in 0..4 {
        assert!(seen.recv().await.is_some());
    }
    assert_eq!(measured(&router, "stable"), (4.0, 0.0));
    router.shutdown();
}
