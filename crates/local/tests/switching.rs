//! Zero downtime under load, at a small scale: keep-alive clients hammer the proxy while it
//! performs a blue-green switch, a gradual canary 0→100%, a rollback, and scaling, with real
//! processes started and stopped underneath. Every response is counted; none may fail. (The
//! bench `proxy` runs the same at full scale: ≥ 2,000 req/s for 30 s.)

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_local::{ProcessConfig, ProcessPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{Platform, TrackStatus, wait_ready};
use serin_signals::Track;
use serin_traffic::{TrafficRouter, TrafficSplit, Weight};
use support::{Tally, demo_spec, start_load};

const POLL: Duration = Duration::from_millis(20);
const READY: Duration = Duration::from_secs(10);

async fn up(
    platform: &ProcessPlatform,
    router: &ProxyRouter,
    version: &str,
    track: Track,
    n: u32,
) -> TrackStatus {
    platform
        .bring_up(&demo_spec("web", version, track.clone(), n))
        .await
        .unwrap();
    let status = wait_ready(platform, "web", &track, POLL, READY)
        .await
        .unwrap();
    router.sync_track(&status);
    status
}

/// Takes a track out of the proxy, waits for its in-flight requests, then retires it.
async fn retire(platform: &ProcessPlatform, router: &ProxyRouter, track: Track) {
    let addrs: Vec<SocketAddr> = router.endpoints(track.as_str());
    router.set_endpoints(track.as_str(), &[]);
    assert!(
        router.wait_drained(&addrs, Duration::from_secs(5)).await,
        "{track} did not drain"
    );
    platform
        .retire("web", &track, Duration::ZERO)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_canary_and_rollback_under_load_fail_no_request() {
    switch_under_load(ProxyConfig::default().with_workers(0), "caller").await;
}

/// The same with the proxy on worker threads of its own: each worker's pools see the
/// endpoints change, drain and close like the single pool does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_worker_threads_switches_fail_no_request_either() {
    switch_under_load(ProxyConfig::default().with_workers(2), "workers").await;
}

async fn switch_under_load(config: ProxyConfig, name: &str) {
    let dir = support::scratch(&format!("switching-{name}"));
    let platform =
        ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(Duration::from_secs(3)))
            .unwrap();
    let router = ProxyRouter::bind(config).await.unwrap();
    let pause = Duration::from_millis(150);

    up(&platform, &router, "1.0.0", Track::Blue, 2).await;
    router
        .apply(&TrafficSplit::all_to("blue", &["green"]).unwrap())
        .await
        .unwrap();

    let tally = Arc::new(Tally::default());
    let load = start_load(router.local_addr(), 8, tally.clone());
    tokio::time::sleep(pause).await;

    // Blue-green: green comes up beside blue, takes all traffic at once, blue drains and stops.
    up(&platform, &router, "2.0.0", Track::Green, 2).await;
    router
        .apply(&TrafficSplit::all_to("green", &["blue"]).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    retire(&platform, &router, Track::Blue).await;

    // Scaling underneath: one more green instance, then back to two (the newest drains first).
    let three = platform.scale("web", &Track::Green, 3).await.unwrap();
    assert_eq!(three.instances.len(), 3);
    let three = wait_ready(&platform, "web", &Track::Green, POLL, READY)
        .await
        .unwrap();
    router.sync_track(&three);
    tokio::time::sleep(pause).await;
    let newest = three.instances.last().and_then(|i| i.address).unwrap();
    let keep: Vec<SocketAddr> = router
        .endpoints("green")
        .into_iter()
        .filter(|a| *a != newest)
        .collect();
    router.set_endpoints("green", &keep);
    assert!(router.wait_drained(&[newest], Duration::from_secs(5)).await);
    platform.scale("web", &Track::Green, 2).await.unwrap();

    // Gradual canary 0 → 100% in 20% steps, then a rollback to green.
    up(&platform, &router, "3.0.0", Track::Canary, 1).await;
    for pct in (0..=100).step_by(20) {
        let canary = Weight::from_percent(pct).unwrap();
        let split =
            TrafficSplit::new([("green", canary.complement()), ("canary", canary)]).unwrap();
        router.apply(&split).await.unwrap();
        tokio::time::sleep(pause).await;
    }
    router
        .apply(&TrafficSplit::all_to("green", &["canary"]).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    retire(&platform, &router, Track::Canary).await;
    tokio::time::sleep(pause).await;

    tally.stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.unwrap();
    }
    let versions = tally.versions.lock().unwrap().clone();
    let failures = tally.failures.lock().unwrap().clone();
    assert_eq!(
        tally.failed(),
        0,
        "failed requests: {failures:?}; served {versions:?}"
    );
    assert!(tally.ok() > 500, "only {} requests served", tally.ok());
    for v in ["1.0.0", "2.0.0", "3.0.0"] {
        assert!(
            versions.get(v).is_some_and(|n| *n > 0),
            "{v} never served: {versions:?}"
        );
    }
    // The proxy's own measurements saw every request and no error.
    let text = router.metrics().prometheus_text();
    assert!(
        text.contains("serin_proxy_errors_total{backend=\"green\"} 0"),
        "{text}"
    );
    platform
        .retire("web", &Track::Green, Duration::ZERO)
        .await
        .unwrap();
    router.shutdown();
}
