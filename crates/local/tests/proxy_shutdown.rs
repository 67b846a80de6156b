//! Waiting for the proxy to stop.

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use serin_local::ProxyConfig;
use support::proxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

/// An instance that answers each request `after` reading its head.
async fn answering_after(after: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 1024];
                while !seen.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                tokio::time::sleep(after).await;
                let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                let _ = stream.write_all(ok).await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn stopped_resolves_once_the_requests_in_flight_at_shutdown_are_answered() {
    let instance = answering_after(Duration::from_millis(300)).await;
    // On worker threads of its own, the default, and with an admin listener.
    let admin = SocketAddr::from(([127, 0, 0, 1], 0));
    let router = proxy(ProxyConfig::default().with_admin(admin), instance, None).await;
    let mut client = TcpStream::connect(router.local_addr()).await.unwrap();
    client
        .write_all(b"GET / HTTP/1.1\r\nhost: shop\r\n\r\n")
        .await
        .unwrap();
    while router.in_flight(instance) == 0 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    router.shutdown();
    assert!(
        timeout(Duration::from_millis(100), router.stopped())
            .await
            .is_err(),
        "stopped with a request in flight"
    );
    timeout(Duration::from_secs(5), router.stopped())
        .await
        .expect("stopped once the request was answered");
    assert_eq!(router.in_flight(instance), 0);
    let mut answer = Vec::new();
    client.read_to_end(&mut answer).await.unwrap();
    assert!(answer.starts_with(b"HTTP/1.1 200"), "{answer:?}");
    assert!(answer.ends_with(b"ok"), "{answer:?}");
}
