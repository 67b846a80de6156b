//! The proxy's HTTP behaviour at its edges: bounded and measured mirroring, request bodies
//! that stall or break, connections that never send a request, forwarding headers, HTTP/2 to
//! HTTP/1.1 translation, and protocol upgrades.
//!
//! These run on real sockets and so in real time, with limits far below the defaults; the one
//! that needs the default 60 s response timeout pauses the clock once its sockets are settled.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::header::HeaderMap;
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serin_local::{ProxyConfig, ProxyRouter};
use support::{
    count, eventually, get, get_response, h2_connect, measured, proxy, read_head, read_to_close,
    send_raw,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// A server that accepts connections, counts them, and holds them without reading or
/// answering: a mirror that hangs. Runs until the task is aborted.
async fn start_counting_silent() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let seen = accepted.clone();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    (addr, accepted, task)
}

/// A request as an instance received it.
struct Seen {
    version: Version,
    path: String,
    headers: HeaderMap,
}

/// An HTTP/1.1 server that answers 200 to everything after reading the whole request, and
/// hands each request's version, path and headers to the returned receiver.
async fn start_header_recorder() -> (SocketAddr, mpsc::UnboundedReceiver<Seen>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let tx = tx.clone();
            let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                let tx = tx.clone();
                async move {
                    let seen = Seen {
                        version: req.version(),
                        path: req.uri().to_string(),
                        headers: req.headers().clone(),
                    };
                    let _ = req.into_body().collect().await?;
                    let _ = tx.send(seen);
                    Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    (addr, rx)
}

// 1. Mirroring is bounded.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_never_answers_holds_at_most_128_connections() {
    let (stable, _seen) = support::start_recorder().await;
    let (shadow, accepted, held) = start_counting_silent().await;
    let router = proxy(ProxyConfig::default(), stable, Some(shadow)).await;
    // Each request is answered at once; each copy waits on the silent mirror for the whole
    // response timeout, on a connection of its own.
    for _ in 0..200 {
        let (status, _, body) = get(router.local_addr(), "/", &[]).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert!(
        eventually(|| accepted.load(Ordering::SeqCst) >= 128).await,
        "the first 128 copies reach the mirror"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        128,
        "connections to the mirror"
    );
    assert_eq!(router.metrics().mirror_dropped("shadow"), 72);
    assert_eq!(
        count(&router, "serin_proxy_mirror_dropped_total", "shadow"),
        72.0
    );
    assert_eq!(measured(&router, "stable"), (200.0, 0.0));
    router.shutdown();
    held.abort();
}

// 2. A mirror's failures are measured.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_crashes_on_or_refuses_its_copies_is_charged_with_the_errors() {
    let (stable, _seen) = support::start_recorder().await;
    let (shadow, crashing) = support::start_crasher().await;
    let router = proxy(ProxyConfig::default(), stable, Some(shadow)).await;
    for _ in 0..3 {
        let (status, _, body) = get(router.local_addr(), "/", &[]).await;
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    }
    assert!(
        eventually(|| measured(&router, "shadow") == (3.0, 3.0)).await,
        "shadow measured {:?}",
        measured(&router, "shadow")
    );
    assert_eq!(measured(&router, "stable"), (3.0, 0.0));
    // A mirror instance that refuses its copy is charged too: nothing else is tried for it.
    let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = refusing.local_addr().unwrap();
    drop(refusing);
    router.set_endpoints("shadow", &[closed]);
    let (status, _, _) = get(router.local_addr(), "/", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        eventually(|| measured(&router, "shadow") == (4.0, 4.0)).await,
        "shadow measured {:?}",
        measured(&router, "shadow")
    );
    assert_eq!(
        count(&router, "serin_proxy_connect_errors_total", "shadow"),
        1.0
    );
    router.shutdown();
    crashing.abort();
}

#[tokio::test]
async fn a_mirror_that_never_answers_is_charged_when_the_response_timeout_ends() {
    // The default response timeout, 60 s: a copy must be waited for as long as a request.
    let (stable, _seen) = support::start_recorder().await;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let shadow = listener.local_addr().unwrap();
    let (got, mut received) = mpsc::unbounded_channel();
    let mirror = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = [0u8; 1024];
        let n = stream.read(&mut buf).await.unwrap();
        let _ = got.send(n);
        // Holds the connection, never answering.
        std::future::pending::<()>().await;
    });
    let router = proxy(ProxyConfig::default().with_workers(0), stable, Some(shadow)).await;
    let (status, _, _) = get(router.local_addr(), "/", &[]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let n = timeout(Duration::from_secs(5), received.recv())
        .await
        .expect("the mirror gets its copy")
        .unwrap();
    assert!(n > 0);
    // The sockets are settled: from here the clock only moves when everything waits on it.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(45)).await;
    assert_eq!(measured(&router, "shadow"), (0.0, 0.0), "not yet due");
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(
        measured(&router, "shadow"),
        (1.0, 1.0),
        "a copy that got no answer within the response timeout is the mirror's error"
    );
    router.shutdown();
    mirror.abort();
}

// 3. A client that breaks its own upload.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_abandons_its_upload_costs_its_instance_nothing() {
    let (stable, _seen) = support::start_recorder().await;
    let router = proxy(ProxyConfig::default(), stable, None).await;
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 100000\r\n\r\n")
        .await
        .unwrap();
    client.write_all(&[b'x'; 1_000]).await.unwrap();
    assert!(
        eventually(|| router.in_flight(stable) == 1).await,
        "the upload is being forwarded"
    );
    drop(client);
    assert!(eventually(|| router.in_flight(stable) == 0).await);
    // Counted as closed by its client (nginx's 499), once.
    assert!(eventually(|| router.client_closed("stable") == 1).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(router.client_closed("stable"), 1);
    assert_eq!(
        measured(&router, "stable"),
        (0.0, 0.0),
        "{}",
        router.metrics().prometheus_text()
    );
    router.shutdown();
}

// 4. Request bodies that stop moving.

/// Sends a POST declaring a body of 1 GiB and writes it in 64 KiB chunks until the
/// connection fails or 64 MiB are written; returns the read half's first response head.
async fn endless_upload(proxy: SocketAddr) -> String {
    let stream = TcpStream::connect(proxy).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        let head = b"POST /upload HTTP/1.1\r\nHost: shop\r\nContent-Length: 1073741824\r\n\r\n";
        if write.write_all(head).await.is_err() {
            return;
        }
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..1_024 {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
    });
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match read.read(&mut byte).await {
            Ok(0) | Err(_) => break,
            Ok(_) => head.push(byte[0]),
        }
    }
    writer.abort();
    String::from_utf8_lossy(&head).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_stops_reading_an_upload_gets_a_504_charged_to_it() {
    let (stable, accepted, held) = start_counting_silent().await;
    let idle = Duration::from_millis(300);
    let router = proxy(
        ProxyConfig::default().with_request_body_timeout(idle),
        stable,
        None,
    )
    .await;
    let head = timeout(Duration::from_secs(10), endless_upload(router.local_addr()))
        .await
        .expect("an answer within 10 s");
    assert!(head.starts_with("HTTP/1.1 504"), "{head}");
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    assert_eq!(measured(&router, "stable"), (1.0, 1.0));
    assert!(
        eventually(|| router.in_flight(stable) == 0).await,
        "the request is over"
    );
    router.shutdown();
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_pauses_its_upload_too_long_gets_a_408_charged_to_no_one() {
    let (stable, mut seen) = support::start_recorder().await;
    let idle = Duration::from_millis(500);
    let router = proxy(
        ProxyConfig::default().with_request_body_timeout(idle),
        stable,
        None,
    )
    .await;
    // Pauses shorter than the limit, over a longer upload, are fine.
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(b"POST /slow HTTP/1.1\r\nHost: shop\r\nContent-Length: 5\r\n\r\n")
        .await
        .unwrap();
    for b in b"12345" {
        tokio::time::sleep(idle / 5).await;
        client.write_all(&[*b]).await.unwrap();
    }
    let head = timeout(Duration::from_secs(10), read_head(&mut client))
        .await
        .unwrap();
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let (_, path, body) = seen.recv().await.unwrap();
    assert_eq!((path.as_str(), &body[..]), ("/slow", &b"12345"[..]));
    // A pause longer than the limit ends the request.
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(
            b"POST /stalled HTTP/1.1\r\nHost: shop\r\nContent-Length: 1000\r\n\r\nabcdefghij",
        )
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let head = timeout(Duration::from_secs(10), read_head(&mut client))
        .await
        .expect("an answer within 10 s");
    assert!(head.starts_with("HTTP/1.1 408"), "{head}");
    assert!(started.elapsed() >= idle, "{:?}", started.elapsed());
    assert!(eventually(|| router.in_flight(stable) == 0).await);
    assert_eq!(
        measured(&router, "stable"),
        (1.0, 0.0),
        "only the slow upload"
    );
    router.shutdown();
}

// 5. Connections that send no request.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_sends_nothing_or_only_the_http2_preface_is_closed() {
    let limit = Duration::from_millis(200);
    let router = ProxyRouter::bind(ProxyConfig::default().with_header_read_timeout(limit))
        .await
        .unwrap();
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let settings: &[u8] = &[0, 0, 0, 4, 0, 0, 0, 0, 0];
    for sent in [Vec::new(), preface.to_vec(), [preface, settings].concat()] {
        let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
        client.write_all(&sent).await.unwrap();
        let started = std::time::Instant::now();
        timeout(Duration::from_secs(5), read_to_close(&mut client))
            .await
            .unwrap_or_else(|_| panic!("held open after sending {} bytes", sent.len()));
        assert!(started.elapsed() >= limit / 2, "{:?}", started.elapsed());
    }
    // An HTTP/1.1 keep-alive connection left idle after its request is closed too.
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    let answer = timeout(Duration::from_secs(5), read_to_close(&mut client))
        .await
        .expect("an idle keep-alive connection is closed");
    assert!(answer.starts_with(b"HTTP/1.1 503"), "{answer:?}");
    router.shutdown();
}

/// The frames of an HTTP/2 server read until it closes: (type, stream id) of each.
fn h2_frames(bytes: &[u8]) -> Vec<(u8, u32)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 9 <= bytes.len() {
        let len = usize::from(bytes[at]) << 16
            | usize::from(bytes[at + 1]) << 8
            | usize::from(bytes[at + 2]);
        let id = u32::from_be_bytes([bytes[at + 5], bytes[at + 6], bytes[at + 7], bytes[at + 8]])
            & 0x7fff_ffff;
        frames.push((bytes[at + 3], id));
        at += 9 + len;
    }
    frames
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http2_client_that_stops_answering_pings_is_disconnected() {
    let limit = Duration::from_millis(200);
    let router = ProxyRouter::bind(ProxyConfig::default().with_header_read_timeout(limit))
        .await
        .unwrap();
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    // Preface, empty SETTINGS, and one GET on stream 1 (HPACK: :method GET, :scheme http,
    // :path /, :authority shop); then nothing, not even the acknowledgements.
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    let block = [0x82, 0x86, 0x84, 0x41, 0x04, b's', b'h', b'o', b'p'];
    hello.extend_from_slice(&[
        0,
        0,
        u8::try_from(block.len()).unwrap(),
        1,
        0x05,
        0,
        0,
        0,
        1,
    ]);
    hello.extend_from_slice(&block);
    client.write_all(&hello).await.unwrap();
    let read = timeout(Duration::from_secs(5), read_to_close(&mut client))
        .await
        .expect("an unresponsive HTTP/2 client is disconnected");
    let frames = h2_frames(&read);
    assert!(frames.contains(&(1, 1)), "the GET was answered: {frames:?}");
    assert!(frames.contains(&(6, 0)), "the proxy pinged: {frames:?}");
    router.shutdown();
}

// 6. Forwarding headers.

/// Sends `GET path` with `headers` on a fresh HTTP/1.1 connection and checks it was answered
/// 200 with the proxy's `Via`.
async fn get_with(proxy: SocketAddr, path: &str, headers: &[(&str, &str)]) {
    let res = get_response(proxy, "shop", path, headers).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["via"], "1.1 serin", "responses say it too");
}

/// A client that claims to have come through other proxies.
const CLAIMS: [(&str, &str); 8] = [
    ("x-forwarded-for", "203.0.113.9"),
    ("x-forwarded-for", "198.51.100.7"),
    ("x-forwarded-proto", "https"),
    ("forwarded", "for=203.0.113.9;proto=https"),
    ("x-forwarded-host", "admin.internal"),
    ("x-forwarded-port", "443"),
    ("x-real-ip", "10.0.0.1"),
    ("via", "1.0 edge"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_s_forwarding_claims_are_replaced_by_what_the_proxy_saw() {
    let (stable, mut seen) = start_header_recorder().await;
    let router = proxy(ProxyConfig::default(), stable, None).await;
    let at = router.local_addr();
    // Not a trusted proxy: none of its claims reach the instance, only the address the proxy
    // saw and the scheme it was reached by.
    get_with(at, "/claims", &CLAIMS).await;
    let s = seen.recv().await.unwrap();
    assert_eq!(s.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers.get_all("forwarded").iter().count(), 1);
    assert_eq!(s.headers["forwarded"], "for=127.0.0.1;proto=http");
    for gone in ["x-forwarded-host", "x-forwarded-port", "x-real-ip"] {
        assert!(!s.headers.contains_key(gone), "{gone} passed on");
    }
    assert_eq!(s.headers["via"], "1.0 edge, 1.1 serin");
    // A client cannot drop the proxy's own headers, or its `Host`, by naming them in
    // `Connection`.
    get_with(
        at,
        "/plain",
        &[
            ("x-forwarded-for", "10.9.9.9"),
            ("connection", "x-forwarded-for, forwarded, via, host"),
        ],
    )
    .await;
    let s = seen.recv().await.unwrap();
    assert_eq!(s.headers["host"], "shop");
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["forwarded"], "for=127.0.0.1;proto=http");
    assert_eq!(s.headers["via"], "1.1 serin");
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_s_forwarding_chain_is_kept_and_extended() {
    let (stable, mut seen) = start_header_recorder().await;
    let config = ProxyConfig::default().with_trusted_proxies(["10.0.0.0/8", "127.0.0.0/8"]);
    let router = proxy(config, stable, None).await;
    let at = router.local_addr();
    get_with(at, "/claims", &CLAIMS).await;
    let s = seen.recv().await.unwrap();
    assert_eq!(
        s.headers["x-forwarded-for"],
        "203.0.113.9, 198.51.100.7, 127.0.0.1"
    );
    assert_eq!(s.headers.get_all("x-forwarded-for").iter().count(), 1);
    // The scheme the first proxy was reached by (TLS ended there) is kept.
    assert_eq!(s.headers["x-forwarded-proto"], "https");
    assert_eq!(
        s.headers["forwarded"],
        "for=203.0.113.9;proto=https, for=127.0.0.1;proto=http"
    );
    assert_eq!(s.headers["x-forwarded-host"], "admin.internal");
    assert_eq!(s.headers["x-forwarded-port"], "443");
    assert_eq!(s.headers["x-real-ip"], "10.0.0.1");
    // A trusted proxy that says nothing of its client gets the proxy's entries alone.
    get_with(at, "/bare", &[]).await;
    let s = seen.recv().await.unwrap();
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    assert_eq!(s.headers["forwarded"], "for=127.0.0.1;proto=http");
    router.shutdown();
    // Trusting another network only is not trusting this client.
    let (stable, mut seen) = start_header_recorder().await;
    let config = ProxyConfig::default().with_trusted_proxies(["10.0.0.0/8"]);
    let router = proxy(config, stable, None).await;
    get_with(router.local_addr(), "/claims", &CLAIMS).await;
    let s = seen.recv().await.unwrap();
    assert_eq!(s.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(s.headers["x-forwarded-proto"], "http");
    router.shutdown();
}

// 7. HTTP/2 and HTTP/1.0 requests forwarded as HTTP/1.1.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_cookies_are_joined_and_every_forwarded_request_has_a_host() {
    let (stable, mut seen) = start_header_recorder().await;
    let router = proxy(ProxyConfig::default(), stable, None).await;
    let proxy = router.local_addr();
    // HTTP/2 (prior knowledge), with its cookies in two fields as browsers send them.
    let (mut sender, _conn) = h2_connect(proxy).await;
    let req = Request::get("http://shop.test:8443/cart?x=1")
        .header("cookie", "session=abc")
        .header("cookie", "theme=dark")
        .body(Empty::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let s = seen.recv().await.unwrap();
    assert_eq!(
        (s.version, s.path.as_str()),
        (Version::HTTP_11, "/cart?x=1")
    );
    assert_eq!(s.headers.get_all("cookie").iter().count(), 1);
    assert_eq!(s.headers["cookie"], "session=abc; theme=dark");
    assert_eq!(s.headers["host"], "shop.test:8443");
    assert_eq!(s.headers["via"], "2 serin");
    // HTTP/1.0 needs no Host; the instance gets HTTP/1.1, which does: the proxy's address.
    let (_old, head) = send_raw(proxy, b"GET /old HTTP/1.0\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    let s = seen.recv().await.unwrap();
    assert_eq!(s.headers["host"], proxy.to_string());
    assert_eq!(s.headers["via"], "1.0 serin");
    // An absolute-form target's authority wins over the client's Host (RFC 9112, 3.2.2).
    let (_absolute, head) = send_raw(
        proxy,
        b"GET http://user@shop.test:8081/abs HTTP/1.1\r\nHost: elsewhere\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let s = seen.recv().await.unwrap();
    assert_eq!(s.path, "/abs");
    assert_eq!(s.headers["host"], "shop.test:8081");
    router.shutdown();
}

// 8. Upgrades.

/// An HTTP/1.1 server that switches every request carrying `Upgrade: echo` to a protocol that
/// echoes what it reads, and answers others 400.
async fn start_echo_upgrader() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|mut req: Request<Incoming>| async move {
                let mut res = Response::new(Empty::<Bytes>::new());
                if req.headers().get("upgrade").is_some_and(|v| v == "echo") {
                    let upgrade = hyper::upgrade::on(&mut req);
                    tokio::spawn(async move {
                        let Ok(upgraded) = upgrade.await else { return };
                        let mut io = TokioIo::new(upgraded);
                        let mut buf = [0u8; 1024];
                        while let Ok(n) = io.read(&mut buf).await {
                            if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                    });
                    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
                    res.headers_mut().insert("upgrade", "echo".parse().unwrap());
                    res.headers_mut()
                        .insert("connection", "upgrade".parse().unwrap());
                } else {
                    *res.status_mut() = StatusCode::BAD_REQUEST;
                }
                Ok::<_, hyper::Error>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .with_upgrades(),
            );
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_is_tunnelled_and_drains_wait_for_the_tunnel() {
    let instance = start_echo_upgrader().await;
    let router = proxy(ProxyConfig::default(), instance, None).await;
    let (mut client, head) = send_raw(
        router.local_addr(),
        b"GET /chat HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("\r\nupgrade: echo\r\n"), "{head}");
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    for word in [&b"ping"[..], b"pong, and more"] {
        client.write_all(word).await.unwrap();
        let mut back = vec![0u8; word.len()];
        timeout(Duration::from_secs(5), client.read_exact(&mut back))
            .await
            .expect("echoed through the tunnel")
            .unwrap();
        assert_eq!(back, word);
    }
    // The tunnel is in flight on its instance: a drain waits for it, up to its timeout.
    assert_eq!(router.in_flight(instance), 1);
    router.set_endpoints("stable", &[]);
    assert!(
        !router
            .wait_drained(&[instance], Duration::from_millis(100))
            .await
    );
    drop(client);
    assert!(
        router
            .wait_drained(&[instance], Duration::from_secs(5))
            .await
    );
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tunnel_ends_when_the_proxy_shuts_down() {
    let instance = start_echo_upgrader().await;
    // On the caller's runtime, which outlives the proxy: the tunnel must end by itself.
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (mut client, head) = send_raw(
        router.local_addr(),
        b"GET /chat HTTP/1.1\r\nHost: shop\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(eventually(|| router.in_flight(instance) == 1).await);
    router.shutdown();
    timeout(Duration::from_secs(5), read_to_close(&mut client))
        .await
        .expect("the tunnel is closed at shutdown");
    assert!(eventually(|| router.in_flight(instance) == 0).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_as_not_implemented() {
    let (stable, mut seen) = start_header_recorder().await;
    let router = proxy(ProxyConfig::default(), stable, None).await;
    let (_client, head) = send_raw(
        router.local_addr(),
        b"CONNECT shop.test:443 HTTP/1.1\r\nHost: shop.test:443\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 501"), "{head}");
    assert!(seen.try_recv().is_err(), "nothing reached the instance");
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_is_not_passed_on_and_the_request_is_served_in_http_1_1() {
    let (stable, mut seen) = start_header_recorder().await;
    let router = proxy(ProxyConfig::default(), stable, None).await;
    let (_client, head) = send_raw(
        router.local_addr(),
        b"GET /h2c HTTP/1.1\r\nHost: shop\r\nConnection: Upgrade, HTTP2-Settings\r\n\
              Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let s = seen.recv().await.unwrap();
    // Were `Upgrade: h2c` passed on, an instance that speaks h2c would switch, and the
    // connection would become an HTTP/2 tunnel to it that no split or drain governs.
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(!s.headers.contains_key(gone), "{gone}: {:?}", s.headers);
    }
    // A WebSocket upgrade that also offers h2c is not one either: the instance is asked in
    // HTTP/1.1 alone.
    let (_client, head) = send_raw(
        router.local_addr(),
        b"GET /both HTTP/1.1\r\nHost: shop\r\nConnection: upgrade\r\n\
              Upgrade: websocket, h2c\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let s = seen.recv().await.unwrap();
    assert!(!s.headers.contains_key("upgrade"), "{:?}", s.headers);
    router.shutdown();
}

// 9. Connections to instances.

/// An HTTP/1.1 server that answers 200 to everything and tells of each connection it accepts
/// (`true`) and each one its client closes (`false`).
async fn start_connection_reporter() -> (SocketAddr, mpsc::UnboundedReceiver<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = tx.send(true);
            let tx = tx.clone();
            let svc = hyper::service::service_fn(|_: Request<Incoming>| async {
                Ok::<_, hyper::Error>(Response::new(Empty::<Bytes>::new()))
            });
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
                let _ = tx.send(false);
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn a_connection_to_an_instance_left_unused_for_a_minute_is_closed_by_the_proxy() {
    let (stable, mut events) = start_connection_reporter().await;
    let router = proxy(ProxyConfig::default().with_workers(0), stable, None).await;
    let (status, _, _) = get(router.local_addr(), "/", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(events.recv().await, Some(true));
    // The sockets are settled: from here the clock only moves when everything waits on it.
    tokio::time::pause();
    tokio::time::sleep(Duration::from_secs(59)).await;
    assert!(events.try_recv().is_err(), "closed before its minute");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = timeout(Duration::from_secs(1), events.recv()).await;
    assert_eq!(closed, Ok(Some(false)), "still open past nginx's 60 s");
    router.shutdown();
}
