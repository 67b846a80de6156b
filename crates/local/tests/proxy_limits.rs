//! The limits on message heads: an instance's answer with more header fields than the proxy
//! takes is the instance's error, a client's request with too many fields or too large a head
//! is refused before it reaches any instance.

use crate::support;

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serin_local::ProxyConfig;
use support::{h2_connect, measured, proxy, send_raw};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// An instance that answers `GET /fields/{n}` with `n` header fields of its own (`x-field-0`
/// …), anything else with none, and tells how many header fields each request it got had.
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
