//! The proxy at the edges of HTTP/1.1 framing and of an instance's misbehaviour: bodies of
//! unknown length, a response framed two ways, `Host` and absolute-form targets as RFC 9112
//! wants them, protocol switches nobody asked for, a response body that stalls, the latency of
//! a replayed request, trailers, the fields that stop at the proxy, and the requests the proxy
//! answers itself (`TRACE`, `OPTIONS` that may go no further).
//!
//! These run on real sockets and so in real time, with limits far below the defaults.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use serin_local::{ProxyConfig, ProxyRouter};
use serin_traffic::{MatchRoute, TrafficRouter, TrafficSplit, ValueMatch};
use support::{count, measured, proxy, read_to_close, send_raw};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::timeout;

/// An instance that, on each connection, reads one request (its head and whatever follows
/// within 100 ms), hands it over as text, writes `reply` and then holds the connection open.
async fn scripted(reply: &'static [u8]) -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                while let Ok(Ok(n)) =
                    timeout(Duration::from_millis(100), stream.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                let _ = tx.send(String::from_utf8_lossy(&seen).into_owned());
                let _ = stream.write_all(reply).await;
                // Held open: the instance neither ends the body nor closes.
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    (addr, rx)
}

/// Reads what the proxy sends on `stream` until it closes it, within 5 s.
async fn rest(stream: &mut TcpStream) -> String {
    let all = timeout(Duration::from_secs(5), read_to_close(stream))
        .await
        .expect("the proxy ends the answer within 5 s");
    String::from_utf8_lossy(&all).into_owned()
}

#[tokio::test]
async fn a_response_framed_by_both_chunks_and_length_is_passed_on_whole() {
    let (instance, _seen) = scripted(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n\
          6\r\nabcdef\r\n0\r\n\r\n",
    )
    .await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (mut stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("content-length"),
        "{head}"
    );
    let body = rest(&mut stream).await;
    assert!(body.contains("abcdef"), "cut short: {body:?}");
    router.shutdown();
}

#[tokio::test]
async fn a_response_in_a_transfer_coding_the_proxy_cannot_name_is_a_502() {
    let (instance, _seen) = scripted(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    )
    .await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(measured(&router, "stable"), (1.0, 1.0));
    router.shutdown();
}

#[tokio::test]
async fn a_get_body_of_unknown_length_reaches_the_instance() {
    let (instance, mut seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"GET /_search HTTP/1.1\r\nhost: shop\r\ntransfer-encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request = seen.recv().await.unwrap();
    assert!(
        request
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{request}"
    );
    assert!(request.contains("5\r\nhello\r\n0\r\n\r\n"), "{request}");
    router.shutdown();
}

#[tokio::test]
async fn a_request_with_two_hosts_an_invalid_one_or_an_http_1_1_one_without_is_a_400() {
    // Each answer closes its connection: the instance reads one request per connection.
    let (instance, mut seen) =
        scripted(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    for request in [
        &b"GET / HTTP/1.1\r\nhost: shop\r\nhost: evil\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\n\r\n",
    ] {
        let (_stream, head) = send_raw(router.local_addr(), request).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    }
    // Nor one whose `Host` is no host (RFC 9112, 3.2): with a path, a user, a space, or empty.
    for host in ["shop/admin?x", "evil@shop", "sh op", "", "shop:80:80"] {
        let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
        let (_stream, head) = send_raw(router.local_addr(), request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 400"), "{host:?}: {head}");
    }
    assert!(seen.try_recv().is_err(), "forwarded anyway");
    // A name, an IPv4 or IPv6 address, with or without a port, is a host.
    for host in [
        "shop.example",
        "10.0.0.1:8080",
        "[::1]:8080",
        "xn--bcher-kva.example:443",
    ] {
        let request = format!("GET / HTTP/1.1\r\nhost: {host}\r\n\r\n");
        let (_stream, head) = send_raw(router.local_addr(), request.as_bytes()).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{host:?}: {head}");
        let request = seen.recv().await.unwrap();
        assert!(request.contains(&format!("host: {host}\r\n")), "{request}");
    }
    // HTTP/1.0 has no such rule: the proxy names itself as the host.
    let (_stream, head) = send_raw(router.local_addr(), b"GET / HTTP/1.0\r\n\r\n").await;
    assert!(head.contains(" 200 "), "{head}");
    let request = seen.recv().await.unwrap();
    let host = format!("host: {}", router.local_addr());
    assert!(request.to_ascii_lowercase().contains(&host), "{request}");
    router.shutdown();
}

#[tokio::test]
async fn a_switch_of_protocols_nobody_asked_for_is_a_502_charged_to_the_instance() {
    let (instance, _seen) =
        scripted(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\r\n").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    assert_eq!(measured(&router, "stable"), (1.0, 1.0));
    router.shutdown();
}

#[tokio::test]
async fn a_response_body_that_stalls_is_cut_off_and_counted_as_an_error() {
    let (instance, _seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc").await;
    let router = proxy(
        ProxyConfig::default()
            .with_workers(0)
            .with_response_body_timeout(Duration::from_millis(200)),
        instance,
        None,
    )
    .await;
    let (mut stream, head) =
        send_raw(router.local_addr(), b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let body = rest(&mut stream).await;
    assert!(body.len() < 10, "{body:?}");
    assert_eq!(measured(&router, "stable"), (1.0, 1.0));
    assert!(
        support::eventually(|| router.in_flight(instance) == 0).await,
        "still in flight"
    );
    router.shutdown();
}

#[test]
fn the_response_body_timeout_is_checked_on_load() {
    let e = serde_json::from_str::<ProxyConfig>(r#"{"responseBodyTimeout": 0}"#).unwrap_err();
    assert!(
        e.to_string().contains("proxyConfig.responseBodyTimeout"),
        "{e}"
    );
    let c: ProxyConfig = serde_json::from_str(r#"{"responseBodyTimeout": "5s"}"#).unwrap();
    assert_eq!(c.response_body_timeout, Duration::from_secs(5));
}

#[tokio::test]
async fn a_replayed_request_is_timed_from_its_own_attempt() {
    // The canary accepts and never answers; stable answers at once.
    let (canary, _held) = support::start_silent().await;
    let (stable, _seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let limit = Duration::from_millis(300);
    let router = ProxyRouter::bind(
        ProxyConfig::default()
            .with_workers(0)
            .with_response_timeout(limit),
    )
    .await
    .unwrap();
    router.set_endpoints("stable", &[stable]);
    router.set_endpoints("canary", &[canary]);
    let to_canary = MatchRoute::header("x-track", ValueMatch::Exact("canary".into()), "canary");
    let split = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])
        .unwrap()
        .with_route(to_canary.unwrap())
        .unwrap();
    router.apply(&split).await.unwrap();
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nx-track: canary\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(measured(&router, "canary"), (1.0, 1.0));
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    let text = router.metrics().prometheus_text();
    let sum = support::counter(&text, "serin_proxy_request_duration_seconds_sum", "stable");
    assert!(
        sum < limit.as_secs_f64() / 2.0,
        "stable charged with the canary's wait: {sum} s"
    );
    assert_eq!(count(&router, "serin_proxy_retries_total", "canary"), 1.0);
    router.shutdown();
}

#[tokio::test]
async fn a_slow_head_and_a_body_that_keeps_coming_are_not_cut_off() {
    // Head after 300 ms, then a body in three pieces 100 ms apart: every pause within the
    // 200 ms body timeout but the whole longer, and the head's wait longer than it.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let instance = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if support::read_head(&mut stream).await.is_empty() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let head = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\n";
                let _ = stream.write_all(head).await;
                for piece in [b"ab", b"cd", b"ef"] {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let _ = stream.write_all(piece).await;
                }
                let _ = stream.read(&mut [0u8; 1024]).await;
            });
        }
    });
    let router = proxy(
        ProxyConfig::default()
            .with_workers(0)
            .with_response_body_timeout(Duration::from_millis(200)),
        instance,
        None,
    )
    .await;
    let (mut stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(rest(&mut stream).await, "abcdef");
    assert_eq!(measured(&router, "stable"), (1.0, 0.0));
    router.shutdown();
}

#[tokio::test]
async fn an_absolute_form_target_with_a_query_and_no_path_keeps_its_query() {
    let (instance, mut seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"GET http://shop?page=2 HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request = seen.recv().await.unwrap();
    assert!(
        request.starts_with("GET /?page=2 HTTP/1.1\r\n"),
        "{request}"
    );
    router.shutdown();
}

#[tokio::test]
async fn trailers_reach_a_client_that_asks_for_them() {
    let (instance, mut seen) = scripted(
        b"HTTP/1.1 200 OK\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\
          trailer: x-checksum\r\n\r\n\
          3\r\nabc\r\n0\r\nx-checksum: 42\r\n\r\n",
    )
    .await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (mut stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nte: trailers, deflate\r\nconnection: te\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The instance learns that its trailers are wanted (an instance that honours `TE` sends
    // none otherwise), and only that: the client's other codings are its own connection's.
    let request = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(request.contains("\r\nte: trailers\r\n"), "{request}");
    assert!(request.contains("\r\nconnection: te\r\n"), "{request}");
    let mut body = Vec::new();
    while !body.ends_with(b"\r\n\r\n") {
        let mut buf = [0u8; 256];
        let n = timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("the answer ends within 5 s")
            .unwrap();
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&body));
        body.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&body);
    assert!(body.ends_with("0\r\nx-checksum: 42\r\n\r\n"), "{body:?}");
    // A client that does not ask is not said to.
    let (_stream, _head) =
        send_raw(router.local_addr(), b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    let request = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(!request.contains("\r\nte:"), "{request}");
    router.shutdown();
}

#[tokio::test]
async fn proxy_credentials_and_challenges_are_not_passed_on() {
    let (instance, mut seen) = scripted(
        b"HTTP/1.1 407 Proxy Authentication Required\r\nproxy-authenticate: Basic\r\n\
          content-length: 0\r\n\r\n",
    )
    .await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nproxy-authorization: Basic dTpw\r\n\r\n",
    )
    .await;
    // Meant for a proxy that asked, and this one asks nothing: the instance gets no
    // credentials, and the client no challenge the proxy never made.
    let request = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(!request.contains("proxy-authorization"), "{request}");
    assert!(head.starts_with("HTTP/1.1 407"), "{head}");
    assert!(
        !head.to_ascii_lowercase().contains("proxy-authenticate"),
        "{head}"
    );
    router.shutdown();
}

#[tokio::test]
async fn forwarding_claims_spelled_with_underscores_are_dropped_too() {
    let (instance, mut seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    // CGI-style servers (WSGI, Rack, PHP) read `X_Forwarded_For` as `X-Forwarded-For`.
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"GET / HTTP/1.1\r\nhost: shop\r\nx_forwarded_for: 203.0.113.9\r\n\
          X-Forwarded_Proto: https\r\nx_real_ip: 10.0.0.1\r\nx_request_id: 7\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request = seen.recv().await.unwrap().to_ascii_lowercase();
    for claim in ["203.0.113.9", "https", "10.0.0.1"] {
        assert!(!request.contains(claim), "{claim} passed on: {request}");
    }
    assert!(request.contains("x_request_id: 7\r\n"), "{request}");
    router.shutdown();
}

#[tokio::test]
async fn a_get_on_a_kept_alive_connection_the_instance_just_closed_is_sent_again() {
    // The instance takes one request per connection and then closes it, without a word, on
    // the next one: as an instance does that closes a connection idle for its own limit just
    // as the proxy sends on it again.
    let (instance, _seen) = scripted(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    for _ in 0..3 {
        let (_stream, head) =
            send_raw(router.local_addr(), b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    // A POST's body may have been acted on: it is not sent again.
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"POST / HTTP/1.1\r\nhost: shop\r\ncontent-length: 2\r\n\r\nhi",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 502"), "{head}");
    router.shutdown();
}

#[tokio::test]
async fn an_upgrade_required_answer_keeps_its_upgrade_header() {
    let (instance, _seen) = scripted(
        b"HTTP/1.1 426 Upgrade Required\r\nupgrade: TLS/1.2, HTTP/1.1\r\n\
          connection: upgrade\r\ncontent-length: 0\r\n\r\n",
    )
    .await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (_stream, head) =
        send_raw(router.local_addr(), b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 426"), "{head}");
    // It names the protocols the client must switch to (RFC 9110, 15.5.22), as a hop-by-hop
    // field named in `Connection` (7.8).
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("\r\nupgrade: tls/1.2, http/1.1\r\n"),
        "{head}"
    );
    assert!(head.contains("\r\nconnection: upgrade\r\n"), "{head}");
    router.shutdown();
}

/// An instance that answers every request `200 ok` and closes the connection: one request a
/// connection, handed over as text.
async fn closing() -> (SocketAddr, mpsc::UnboundedReceiver<String>) {
    scripted(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok").await
}

#[tokio::test]
async fn trace_is_refused_by_the_proxy_and_charged_to_no_one() {
    let (instance, mut seen) = closing().await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    // An instance would echo the request, cookies and credentials included, to any script
    // that can read the answer (Cross-Site Tracing).
    let (_stream, head) = send_raw(
        router.local_addr(),
        b"TRACE / HTTP/1.1\r\nhost: shop\r\ncookie: session=secret\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 405"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nallow: get, head, "), "{head}");
    assert!(!head.contains("trace"), "{head}");
    assert!(seen.try_recv().is_err(), "forwarded anyway");
    assert_eq!(measured(&router, "stable"), (0.0, 0.0));
    router.shutdown();
}

#[tokio::test]
async fn options_that_may_go_no_further_is_answered_by_the_proxy_else_counted_down() {
    let (instance, mut seen) = closing().await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let at = router.local_addr();
    // The proxy is the last hop it may take (RFC 9110, 7.6.2): it answers for itself.
    let (_stream, head) = send_raw(
        at,
        b"OPTIONS /cart HTTP/1.1\r\nhost: shop\r\nmax-forwards: 0\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(head.contains("\r\nallow: get, head, "), "{head}");
    assert!(head.contains("\r\ncontent-length: 0\r\n"), "{head}");
    assert!(seen.try_recv().is_err(), "forwarded anyway");
    assert_eq!(measured(&router, "stable"), (0.0, 0.0));
    // It may go further: one hop fewer.
    let (_stream, head) = send_raw(
        at,
        b"OPTIONS /cart HTTP/1.1\r\nhost: shop\r\nmax-forwards: 5\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let request = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(request.contains("\r\nmax-forwards: 4\r\n"), "{request}");
    // A value that is no count is passed on as it came, and so is another method's: the
    // field governs `TRACE` and `OPTIONS` alone.
    for request in [
        &b"OPTIONS / HTTP/1.1\r\nhost: shop\r\nmax-forwards: two\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nhost: shop\r\nmax-forwards: 0\r\n\r\n",
    ] {
        let (_stream, head) = send_raw(at, request).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let sent = String::from_utf8_lossy(request).to_ascii_lowercase();
        let field = sent
            .lines()
            .find(|l| l.starts_with("max-forwards"))
            .unwrap();
        let seen = seen.recv().await.unwrap().to_ascii_lowercase();
        assert!(seen.contains(&format!("\r\n{field}\r\n")), "{seen}");
    }
    router.shutdown();
}

/// A route on `host` sees the host the instance is sent: the target's authority when it has
/// one (absolute form, HTTP/2's `:authority`, which comes with no `host` field at all), not a
/// `Host` the request is not sent with.
#[tokio::test]
async fn a_route_on_host_matches_the_host_the_request_is_forwarded_with() {
    let (stable, mut at_stable) = support::start_recorder().await;
    let (canary, mut at_canary) = support::start_recorder().await;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
        .await
        .unwrap();
    router.set_endpoints("stable", &[stable]);
    router.set_endpoints("canary", &[canary]);
    let beta = MatchRoute::header("host", ValueMatch::Exact("beta.shop".into()), "canary");
    let split = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])
        .unwrap()
        .with_route(beta.unwrap())
        .unwrap();
    router.apply(&split).await.unwrap();
    let proxy = router.local_addr();
    let (_absolute, head) = send_raw(
        proxy,
        b"GET http://beta.shop/absolute HTTP/1.1\r\nhost: shop\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let (mut h2, _conn) = support::h2_connect(proxy).await;
    let req = hyper::Request::get("http://beta.shop/h2")
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 204);
    let (_plain, head) = send_raw(proxy, b"GET /plain HTTP/1.1\r\nhost: beta.shop\r\n\r\n").await;
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    for path in ["/absolute", "/h2", "/plain"] {
        let seen = timeout(Duration::from_secs(5), at_canary.recv()).await;
        assert_eq!(seen.unwrap().unwrap().1, path);
    }
    assert!(at_stable.try_recv().is_err(), "routed by a host not sent");
    router.shutdown();
}

/// The proxy meets a client's `Expect: 100-continue` itself, as Envoy does: its `100 Continue`
/// goes out once the request is on its way to an instance, and the instance is not asked
/// again (its `100` would stop at the proxy). An HTTP/1.0 client's expectation is ignored
/// (RFC 9110, 10.1.1), and so not made an HTTP/1.1 one on the way.
#[tokio::test]
async fn an_expectation_of_100_continue_is_met_by_the_proxy_and_not_passed_on() {
    let (instance, mut seen) =
        scripted(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (mut stream, head) = send_raw(
        router.local_addr(),
        b"POST /up HTTP/1.1\r\nhost: shop\r\nconnection: close\r\ncontent-length: 5\r\n\
          expect: 100-continue\r\n\r\n",
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 100 Continue"), "{head}");
    stream.write_all(b"hello").await.unwrap();
    assert!(rest(&mut stream).await.contains("HTTP/1.1 200"));
    let (_old, head) = send_raw(
        router.local_addr(),
        b"POST /old HTTP/1.0\r\nhost: shop\r\ncontent-length: 5\r\n\
          expect: 100-continue\r\n\r\nhello",
    )
    .await;
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    for _ in 0..2 {
        let request = timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap();
        assert!(request.ends_with("\r\n\r\nhello"), "{request}");
        assert!(
            !request.to_ascii_lowercase().contains("expect"),
            "{request}"
        );
    }
    router.shutdown();
}

/// An expectation the proxy does not meet itself goes on to the instance, to meet or to
/// answer `417 Expectation Failed` (RFC 9110, 10.1.1): listed beside `100-continue`, only
/// that one is taken off, never the whole field.
#[tokio::test]
async fn an_expectation_other_than_100_continue_reaches_the_instance() {
    let (instance, mut seen) =
        scripted(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    for (expect, forwarded) in [
        ("x-audit", "expect: x-audit\r\n"),
        ("100-continue, x-audit", "expect: x-audit\r\n"),
        (
            "x-audit, 100-Continue, x-trace",
            "expect: x-audit, x-trace\r\n",
        ),
    ] {
        let request = format!(
            "POST /up HTTP/1.1\r\nhost: shop\r\nconnection: close\r\ncontent-length: 5\r\n\
             expect: {expect}\r\n\r\nhello"
        );
        let (mut stream, head) = send_raw(router.local_addr(), request.as_bytes()).await;
        let all = format!("{head}{}", rest(&mut stream).await);
        assert!(all.contains("HTTP/1.1 200"), "{expect}: {all}");
        let sent = timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap()
            .to_ascii_lowercase();
        assert!(sent.contains(forwarded), "{expect}: {sent}");
        assert!(!sent.contains("100-continue"), "{expect}: {sent}");
    }
    router.shutdown();
}

/// `OPTIONS *` asks about the server, not a resource: from an HTTP/2 client (`:path: *`) it
/// reaches the instance as `*` (RFC 9112, 3.2.4), never as a request for `/*`; absolute-form
/// targets go on in origin form as before.
#[tokio::test]
async fn options_for_the_whole_server_reaches_the_instance_as_an_asterisk() {
    let (instance, mut seen) =
        scripted(b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 2\r\n\r\nok").await;
    let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
    let (mut h2, _conn) = support::h2_connect(router.local_addr()).await;
    let whole = hyper::Uri::builder()
        .scheme("http")
        .authority("shop")
        .path_and_query("*")
        .build()
        .unwrap();
    let req = hyper::Request::options(whole)
        .body(http_body_util::Empty::new())
        .unwrap();
    assert_eq!(h2.send_request(req).await.unwrap().status(), 200);
    let sent = timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(sent.starts_with("OPTIONS * HTTP/1.1\r\n"), "{sent}");
    for (request, target) in [
        (
            &b"OPTIONS http://shop?x HTTP/1.1\r\nhost: shop\r\n\r\n"[..],
            "/?x",
        ),
        (b"GET http://shop HTTP/1.1\r\nhost: shop\r\n\r\n", "/"),
    ] {
        let (_stream, head) = send_raw(router.local_addr(), request).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let sent = timeout(Duration::from_secs(5), seen.recv()).await.unwrap();
        let line = format!(" {target} HTTP/1.1\r\n");
        let sent = sent.unwrap();
        assert!(sent.contains(&line), "{target}: {sent}");
    }
    router.shutdown();
}

#[tokio::test]
async fn a_bodyless_answer_naming_the_coding_a_get_would_have_had_is_passed_on() {
    // RFC 9112, 6.1: an answer to a HEAD, or a 304, may name the transfer coding the body
    // would have had; it has no body, so nothing would pass on applied but unnamed.
    for (request, reply, status) in [
        (
            &b"HEAD / HTTP/1.1\r\nhost: shop\r\nconnection: close\r\n\r\n"[..],
            &b"HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n"[..],
            "HTTP/1.1 200",
        ),
        (
            b"GET / HTTP/1.1\r\nhost: shop\r\nif-none-match: \"v1\"\r\nconnection: close\r\n\r\n",
            b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ntransfer-encoding: gzip, chunked\r\n\r\n",
            "HTTP/1.1 304",
        ),
    ] {
        let (instance, _seen) = scripted(reply).await;
        let router = proxy(ProxyConfig::default().with_workers(0), instance, None).await;
        let (_stream, head) = send_raw(router.local_addr(), request).await;
        assert!(head.starts_with(status), "{head}");
        assert!(
            !head.to_ascii_lowercase().contains("transfer-encoding"),
            "{head}"
        );
        assert_eq!(measured(&router, "stable"), (1.0, 0.0), "{head}");
        router.shutdown();
    }
}
