//! Sticky sessions across a backend's moment of unreadiness.

mod support;

use std::time::Duration;

use serin_local::{ProxyConfig, ProxyRouter};
use serin_traffic::{StickySession, TrafficRouter, TrafficSplit};
use support::{get_response, start_recorder};

#[tokio::test]
async fn a_pin_to_a_backend_briefly_without_ready_instances_is_kept() {
    let (stable, _seen) = start_recorder().await;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
        .await
        .unwrap();
    router.set_endpoints("stable", &[stable]);
    // The canary is restarting: none of its instances is ready.
    router.set_endpoints("canary", &[]);
    let split = TrafficSplit::from_percents([("stable", 50), ("canary", 50)])
        .unwrap()
        .with_sticky(StickySession::new("track", Duration::from_secs(3_600)).unwrap());
    router.apply(&split).await.unwrap();
    let addr = router.local_addr();
    let set_cookie = |res: &hyper::Response<hyper::body::Incoming>| {
        res.headers()
            .get("set-cookie")
            .map(|v| v.to_str().unwrap().to_owned())
    };

    // Pinned to the canary: served by stable meanwhile, and still pinned to the canary.
    let res = get_response(addr, "shop", "/", &[("cookie", "track=canary")]).await;
    assert_eq!(res.status(), 204);
    assert_eq!(
        set_cookie(&res),
        None,
        "re-pinned for a moment's unreadiness"
    );

    // Unpinned, or pinned to a backend the split no longer weights: pinned by weight.
    let split = TrafficSplit::from_percents([("stable", 100), ("canary", 0)])
        .unwrap()
        .with_sticky(StickySession::new("track", Duration::from_secs(3_600)).unwrap());
    router.apply(&split).await.unwrap();
    for cookie in [&[][..], &[("cookie", "track=canary")][..]] {
        let res = get_response(addr, "shop", "/", cookie).await;
        let pin = set_cookie(&res).unwrap_or_default();
        assert!(pin.starts_with("track=stable;"), "{cookie:?}: {pin:?}");
    }
    router.shutdown();
}
