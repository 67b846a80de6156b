//! Mirroring requests with a body: the body reaches both the chosen instance and the mirror
//! intact, a mirror that never reads does not delay the request, and bodies over the limit or
//! of unknown length go to their instance only and are counted.

use crate::support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use serin_local::ProxyConfig;
use support::{Chunked, get, payload, post, proxy, start_demo, start_recorder, start_silent};
use tokio::time::{Instant, timeout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_bodies_arrive_intact_at_the_instance_and_the_mirror() {
    let stable = start_demo("1.0.0", &[]).await;
    for config in [
        ProxyConfig::default().with_workers(0),
        ProxyConfig::default().with_workers(2),
    ] {
        let (shadow, mut seen) = start_recorder().await;
        let router = proxy(config, stable.addr, Some(shadow)).await;
        let proxy = router.local_addr();
        for len in [1, 4_096, 65_536] {
            let body = payload(len);
            let (status, echoed) = post(proxy, "/echo", Full::new(body.clone())).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(echoed, body, "the instance echoes {len} bytes");
            let (method, path, copy) = timeout(Duration::from_secs(5), seen.recv())
                .await
                .expect("the mirror gets its copy within 5s")
                .unwrap();
            assert_eq!((method.as_str(), path.as_str()), ("POST", "/echo"));
            assert_eq!(copy, body, "the mirror gets the same {len} bytes");
        }
        // Bodyless requests are mirrored as before.
        assert_eq!(get(proxy, "/", &[]).await.0, StatusCode::OK);
        let (method, _, copy) = timeout(Duration::from_secs(5), seen.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!((method.as_str(), copy.len()), ("GET", 0));
        let metrics = router.metrics();
        assert_eq!(
            (
                metrics.mirror_skipped("shadow"),
                metrics.mirror_dropped("shadow")
            ),
            (0, 0)
        );
        router.shutdown();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mirror_that_never_reads_does_not_delay_the_request() {
    let stable = start_demo("1.0.0", &[]).await;
    let (shadow, silent) = start_silent().await;
    // A limit high enough that the silent mirror cannot take the whole body in its socket
    // buffers: its copy falls behind while the request streams on.
    let config = ProxyConfig::default().with_mirror_body_limit(8 * 1024 * 1024);
    let router = proxy(config, stable.addr, Some(shadow)).await;
    let proxy = router.local_addr();
    for len in [60_000, 8 * 1024 * 1024] {
        let body = payload(len);
        let started = Instant::now();
        let (status, echoed) = timeout(
            Duration::from_secs(10),
            post(proxy, "/echo", Full::new(body.clone())),
        )
        .await
        .expect("the request does not wait for the mirror");
        assert_eq!(status, StatusCode::OK);
        assert_eq!(echoed, body);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{len} bytes took {:?} with a silent mirror",
            started.elapsed()
        );
    }
    // The mirror never answered, so nothing was measured against it as an answer.
    assert!(
        router
            .metrics()
            .prometheus_text()
            .contains("serin_proxy_requests_total{backend=\"stable\"} 2")
    );
    silent.abort();
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_or_of_unknown_length_are_not_mirrored_and_are_counted() {
    let stable = start_demo("1.0.0", &[]).await;
    let (shadow, mut seen) = start_recorder().await;
    let admin = SocketAddr::from(([127, 0, 0, 1], 0));
    let config = ProxyConfig::default()
        .with_admin(admin)
        .with_mirror_body_limit(1_000);
    let router = proxy(config, stable.addr, Some(shadow)).await;
    let proxy = router.local_addr();

    let over = payload(1_001);
    let (status, echoed) = post(proxy, "/echo", Full::new(over.clone())).await;
    assert_eq!((status, echoed), (StatusCode::OK, over));
    let chunks: VecDeque<Bytes> = [payload(10), payload(20)].into_iter().collect();
    let (status, echoed) = post(proxy, "/echo", Chunked(chunks)).await;
    assert_eq!((status, echoed.len()), (StatusCode::OK, 30));
    // At the limit it is mirrored.
    let at = payload(1_000);
    assert_eq!(post(proxy, "/echo", Full::new(at.clone())).await.1, at);
    let (_, _, copy) = timeout(Duration::from_secs(5), seen.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(copy, at);
    assert!(seen.try_recv().is_err(), "only the body within the limit");

    assert_eq!(router.metrics().mirror_skipped("shadow"), 2);
    let (status, _, text) = get(router.admin_addr().unwrap(), "/metrics", &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        text.contains("serin_proxy_mirror_skipped_total{backend=\"shadow\"} 2"),
        "{text}"
    );
    router.shutdown();
}
