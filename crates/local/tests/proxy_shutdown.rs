//! Waiting for the proxy to stop.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use serin_local::ProxyConfig;
use support::{answering_after, proxy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;

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
