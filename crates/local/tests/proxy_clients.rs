//! Clients that go quiet or go away: an idle connection is closed after the header read
//! timeout whatever its protocol (HTTP/2 with a `GOAWAY`), a busy one is kept however long its
//! request takes, and a request whose client leaves before its answer is counted as closed by
//! the client (nginx's 499), neither as the instance's success nor as its error.
//!
//! These run on real sockets and so in real time, with limits far below the defaults.

use crate::support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::{Request, StatusCode};
use serin_local::ProxyConfig;
use support::{counter, eventually, h2_connect, measured, proxy, read_head, send_raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// An HTTP/1.1 instance that answers every request with a chunked body of `chunks` bytes,
/// one byte every `pause`: a download (or a stream) that takes its time.
async fn start_trickler(chunks: usize, pause: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                while !read_head(&mut stream).await.is_empty() {
                    let head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
                    if stream.write_all(head).await.is_err() {
                        return;
                    }
                    for _ in 0..chunks {
                        tokio::time::sleep(pause).await;
                        if stream.write_all(b"1\r\nx\r\n").await.is_err() {
                            return;
                        }
                    }
                    if stream.write_all(b"0\r\n\r\n").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_and_a_busy_one_is_kept() {
    let limit = Duration::from_millis(200);
    // The answer takes twice the limit to stream.
    let instance = start_trickler(4, limit / 2).await;
    let router = proxy(
        ProxyConfig::default().with_header_read_timeout(limit),
        instance,
        None,
    )
    .await;
    // The client answers the proxy's pings for as long as its connection lasts.
    let (mut sender, conn) = h2_connect(router.local_addr()).await;
    let res = sender
        .send_request(Request::get("http://shop/slow").body(Empty::new()).unwrap())
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let started = Instant::now();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(
        &body[..],
        b"xxxx",
        "the whole answer, though it took past the limit"
    );
    assert!(started.elapsed() >= limit, "{:?}", started.elapsed());
    // Now idle: closed by the proxy (a GOAWAY, which ends the client's connection), a while
    // after the answer ended; one closed while busy would end as soon as the answer did.
    let idle = Instant::now();
    timeout(Duration::from_secs(3), conn)
        .await
        .expect("an idle HTTP/2 connection is closed")
        .unwrap()
        .unwrap();
    assert!(
        idle.elapsed() >= limit / 2,
        "closed early: {:?}",
        idle.elapsed()
    );
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_goes_away_before_its_answer_is_counted_as_closed_by_it() {
    let (instance, held) = support::start_silent().await;
    let admin = SocketAddr::from(([127, 0, 0, 1], 0));
    let router = proxy(ProxyConfig::default().with_admin(admin), instance, None).await;
    // HTTP/1.1: the client closes its connection while the instance thinks.
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(b"GET /slow HTTP/1.1\r\nHost: shop\r\n\r\n")
        .await
        .unwrap();
    assert!(eventually(|| router.in_flight(instance) == 1).await);
    drop(client);
    assert!(
        eventually(|| router.client_closed("stable") == 1).await,
        "not counted"
    );
    assert!(eventually(|| router.in_flight(instance) == 0).await);
    // HTTP/2: the client resets its stream (drops the response it waits for); the connection
    // stays.
    let (mut sender, conn) = h2_connect(router.local_addr()).await;
    let waiting = sender.send_request(Request::get("http://shop/slow").body(Empty::new()).unwrap());
    let waiting = tokio::spawn(waiting);
    assert!(eventually(|| router.in_flight(instance) == 1).await);
    waiting.abort();
    assert!(
        eventually(|| router.client_closed("stable") == 2).await,
        "a reset stream is not counted"
    );
    assert!(eventually(|| router.in_flight(instance) == 0).await);
    assert!(!conn.is_finished());
    // Neither a request nor an error of the instance, and served with the other counters.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(measured(&router, "stable"), (0.0, 0.0));
    assert_eq!(router.client_closed("stable"), 2);
    let scraped = scrape(router.admin_addr().unwrap()).await;
    assert_eq!(
        counter(&scraped, "serin_proxy_client_closed_total", "stable"),
        2.0,
        "{scraped}"
    );
    assert!(scraped.contains("# TYPE serin_proxy_client_closed_total counter"));
    router.shutdown();
    held.abort();
}

/// The admin listener's `/metrics` text.
async fn scrape(admin: SocketAddr) -> String {
    let mut stream = TcpStream::connect(admin).await.unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut all = String::new();
    stream.read_to_string(&mut all).await.unwrap();
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_upload_is_a_bad_request_not_a_client_gone() {
    let (instance, _seen) = support::start_recorder().await;
    let router = proxy(ProxyConfig::default(), instance, None).await;
    // A chunk size that is not hexadecimal.
    let (_client, head) = send_raw(
        router.local_addr(),
        b"POST /upload HTTP/1.1\r\nHost: shop\r\nTransfer-Encoding: chunked\r\n\r\n\
          3\r\nabc\r\nzz\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    assert!(eventually(|| router.in_flight(instance) == 0).await);
    assert_eq!(router.client_closed("stable"), 0);
    assert_eq!(measured(&router, "stable"), (0.0, 0.0));
    router.shutdown();
}
