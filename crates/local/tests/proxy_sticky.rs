//! Sticky sessions across a backend's moment of unreadiness.

use crate::support;

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

/// A cookie whose name has the `__Secure-` or `__Host-` prefix is dropped by browsers unless
/// it is `Secure` (and, for `__Host-`, has `Path=/` and no `Domain`): the proxy's pin says so,
/// whatever the prefix's case; any other name's pin is left as it was.
#[tokio::test]
async fn a_prefixed_sticky_cookie_gets_the_attributes_its_prefix_requires() {
    let (stable, _seen) = start_recorder().await;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
        .await
        .unwrap();
    router.set_endpoints("stable", &[stable]);
    let addr = router.local_addr();
    for (name, attributes) in [
        ("track", "Path=/; Max-Age=60; HttpOnly"),
        ("__Secure-track", "Path=/; Max-Age=60; HttpOnly; Secure"),
        ("__Host-track", "Path=/; Max-Age=60; HttpOnly; Secure"),
        ("__host-track", "Path=/; Max-Age=60; HttpOnly; Secure"),
        ("__Hosted", "Path=/; Max-Age=60; HttpOnly"),
    ] {
        let split = TrafficSplit::all_to("stable", &[])
            .unwrap()
            .with_sticky(StickySession::new(name, Duration::from_secs(60)).unwrap());
        router.apply(&split).await.unwrap();
        let res = get_response(addr, "shop", "/", &[]).await;
        let pins: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
        assert_eq!(pins, [&format!("{name}=stable; {attributes}")], "{name}");
    }
    router.shutdown();
}
