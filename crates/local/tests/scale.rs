//! Scaling down behind the proxy: the instances being removed leave the proxy first, their
//! in-flight requests finish, and only then are their processes stopped.

use crate::support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::StatusCode;
use serin_local::{ProcessConfig, ProcessPlatform, ProxiedPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{Platform, wait_ready};
use serin_signals::Track;
use serin_traffic::{TrafficRouter, TrafficSplit};
use support::{demo_spec, get, payload, post};
use tokio::time::{Instant, sleep};

const POLL: Duration = Duration::from_millis(20);

/// Polls `cond` every 10 ms for at most 5 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "{what} within 5s");
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_request_on_an_instance_being_removed_completes() {
    let dir = support::scratch("scale");
    // A grace period far shorter than the slow request: stopping the instance while the
    // request runs would kill it mid-answer.
    let platform = ProcessPlatform::new(
        ProcessConfig::new(dir.path())
            .with_grace(Duration::from_millis(200))
            .with_probe_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    let proxied = Arc::new(ProxiedPlatform::new(platform, router.clone()));
    let status = support::up(&*proxied, Track::Stable, 2).await;
    let addrs: Vec<SocketAddr> = status.instances.iter().filter_map(|i| i.address).collect();
    let [oldest, newest] = addrs[..] else {
        panic!("two instances: {addrs:?}")
    };
    assert_eq!(router.endpoints("stable").len(), 2);
    router
        .apply(&TrafficSplit::all_to("stable", &[]).unwrap())
        .await
        .unwrap();
    let proxy = router.local_addr();

    // Slow requests with a body (never sent twice) land on both instances in turn.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(post(proxy, "/delay/1500", Full::new(payload(100)))))
        .collect();
    eventually("a slow request on the newest instance", || {
        router.in_flight(newest) > 0
    })
    .await;

    let scaling = tokio::spawn({
        let proxied = proxied.clone();
        async move { proxied.scale("web", &Track::Stable, 1).await }
    });
    eventually("the newest instance out of the proxy", || {
        router.endpoints("stable") == vec![oldest]
    })
    .await;
    // While it drains, new requests go to the instance that stays, and a sync does not give
    // the leaving one back to the proxy.
    proxied.sync().await;
    assert_eq!(router.endpoints("stable"), vec![oldest]);
    for _ in 0..5 {
        let (status, _, body) = get(proxy, "/", &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("stable-0"), "{body}");
    }
    assert!(!scaling.is_finished(), "the scale waits for the drain");

    for request in slow {
        let (status, body) = request.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body:?}");
    }
    let status = scaling.await.unwrap().unwrap();
    assert_eq!(status.instances.len(), 1);
    assert_eq!(router.in_flight(newest), 0);
    proxied.sync().await;
    assert_eq!(router.endpoints("stable"), vec![oldest]);

    // Scaling up again brings a new instance into the proxy once it is ready.
    proxied.scale("web", &Track::Stable, 2).await.unwrap();
    let status = wait_ready(
        &*proxied,
        "web",
        &Track::Stable,
        POLL,
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(router.endpoints("stable"), status.ready_addresses());
    assert_eq!(router.endpoints("stable").len(), 2);

    // A count the platform refuses leaves the proxy as it was.
    assert!(proxied.scale("web", &Track::Stable, 0).await.is_err());
    assert_eq!(router.endpoints("stable").len(), 2);
    proxied
        .retire("web", &Track::Stable, Duration::ZERO)
        .await
        .unwrap();
    router.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scale_ups_to_one_count_end_at_it_with_ids_of_their_own() {
    let dir = support::scratch("scale-ids");
    let platform = Arc::new(
        ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(Duration::from_secs(2)))
            .unwrap(),
    );
    platform
        .bring_up(&demo_spec("web", "1.0.0", Track::Canary, 1))
        .await
        .unwrap();
    // Released together from threads of their own, they race: each must see what the other
    // left, not both add two to the one instance running.
    let start = Arc::new(std::sync::Barrier::new(2));
    let runtime = tokio::runtime::Handle::current();
    let scales: Vec<_> = (0..2)
        .map(|_| {
            let (platform, start, runtime) = (platform.clone(), start.clone(), runtime.clone());
            std::thread::spawn(move || {
                start.wait();
                runtime.block_on(platform.scale("web", &Track::Canary, 3))
            })
        })
        .collect();
    for s in scales {
        tokio::task::spawn_blocking(move || s.join())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
    }
    let status = platform.status("web", &Track::Canary).await.unwrap();
    let mut ids: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
    let all = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), all, "an id was started twice: {status:?}");
    assert_eq!(all, 3, "{status:?}");
    platform
        .retire("web", &Track::Canary, Duration::ZERO)
        .await
        .unwrap();
}

/// A process platform for the test `name`, with a grace period of 2 s and probes bounded to
/// 300 ms, and its directory (keep it while the platform runs).
fn platform(name: &str) -> (ProcessPlatform, tempfile::TempDir) {
    let dir = support::scratch(&format!("scale-{name}"));
    let platform = ProcessPlatform::new(
        ProcessConfig::new(dir.path())
            .with_grace(Duration::from_secs(2))
            .with_probe_timeout(Duration::from_millis(300)),
    )
    .unwrap();
    (platform, dir)
}

/// A scale-down of named instances stops those, though a scale to the same count would keep
/// them (the oldest, ready): what a proxied platform that drained them relies on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_down_of_named_instances_stops_those_alone() {
    let (platform, _dir) = platform("named");
    support::up(&platform, Track::Stable, 2).await;
    let status = platform
        .scale_down("web", &Track::Stable, &["stable-0".to_owned()])
        .await
        .unwrap();
    let ids: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["stable-1"], "{status:?}");
    assert!(status.all_ready(), "{status:?}");
    platform
        .retire("web", &Track::Stable, Duration::ZERO)
        .await
        .unwrap();
}

/// Scaling down stops a dead instance before any live one, as a Kubernetes ReplicaSet picks
/// the pods to delete: a crashed instance is never kept in place of a healthy one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_stops_a_dead_instance_before_the_newest_live_one() {
    let (platform, _dir) = platform("dead");
    let status = support::up(&platform, Track::Stable, 3).await;
    let oldest = status.instances[0].address.unwrap();
    // The crash ends the connection without an answer: the helper panics in its own task.
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        tokio::spawn(get(oldest, "/crash", &[])),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while platform
        .status("web", &Track::Stable)
        .await
        .unwrap()
        .dead_instance()
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "stable-0 reported dead within 5s"
        );
        sleep(POLL).await;
    }

    let status = platform.scale("web", &Track::Stable, 2).await.unwrap();
    let ids: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
    assert_eq!(ids, ["stable-1", "stable-2"], "{status:?}");
    assert!(status.all_ready(), "{status:?}");
    platform
        .retire("web", &Track::Stable, Duration::ZERO)
        .await
        .unwrap();
}

/// An instance that sends its answer's head at once and its body `after` later.
async fn body_after(after: Duration) -> SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                if support::read_head(&mut stream).await.is_empty() {
                    return;
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab")
                    .await;
                sleep(after).await;
                let _ = stream.write_all(b"cde").await;
                let _ = stream.read(&mut [0u8; 1024]).await;
            });
        }
    });
    addr
}

/// An answer whose body is still streaming when its instance leaves the proxy is in flight
/// until its body ends, and completes: a drain waits for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streaming_answer_completes_after_its_instance_leaves_the_proxy() {
    use http_body_util::BodyExt;
    let instance = body_after(Duration::from_millis(300)).await;
    let router = support::proxy(ProxyConfig::default(), instance, None).await;
    let res = support::get_response(router.local_addr(), "shop", "/", &[]).await;
    assert_eq!(res.status(), StatusCode::OK);
    router.set_endpoints("stable", &[]);
    assert_eq!(router.in_flight(instance), 1);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"abcde");
    assert!(
        router
            .wait_drained(&[instance], Duration::from_secs(1))
            .await
    );
    router.shutdown();
}
