//! Sticky sessions across a backend's moment of unreadiness, the pin's attributes, and the
//! shared caches a pinned answer is kept from.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serin_local::{ProxyConfig, ProxyRouter};
use serin_traffic::{StickySession, TrafficRouter, TrafficSplit};
use support::{get_response, start_recorder};
use tokio::net::TcpListener;

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

/// An instance that answers each request 200 with one `Cache-Control` field for each
/// `x-cache-control` field of the request.
async fn start_cacheable() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                let mut res = Response::new(Empty::<Bytes>::new());
                for v in req.headers().get_all("x-cache-control") {
                    res.headers_mut().append("cache-control", v.clone());
                }
                Ok::<_, hyper::Error>(res)
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc),
            );
        }
    });
    addr
}

/// A shared cache (a CDN in front of the proxy) that stored an answer with the pin would give
/// that pin to every client it serves the answer to, all stuck to one backend: an answer the
/// proxy pins is made `private` (RFC 9111, 5.2.2.7), without `public`, which contradicts it,
/// unless it is private or unstorable already. An answer without a pin is left as it was.
#[tokio::test]
async fn an_answer_with_a_pin_is_kept_from_shared_caches_and_one_without_is_untouched() {
    let instance = start_cacheable().await;
    let router = ProxyRouter::bind(ProxyConfig::default().with_workers(0))
        .await
        .unwrap();
    router.set_endpoints("stable", &[instance]);
    let split = TrafficSplit::all_to("stable", &[])
        .unwrap()
        .with_sticky(StickySession::new("track", Duration::from_secs(60)).unwrap());
    router.apply(&split).await.unwrap();
    let addr = router.local_addr();
    let cache_control = |res: &Response<Incoming>| -> Vec<String> {
        res.headers()
            .get_all("cache-control")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    };
    let quoted = r#"no-cache="Set-Cookie, Vary", max-age=5"#;
    let quoted_private = format!("{quoted}, private");
    for (sent, pinned) in [
        // Storable for its heuristic freshness, or for its `Expires`.
        (&[][..], &["private"][..]),
        (&["public, max-age=600"], &["max-age=600, private"]),
        (&["Public", "s-maxage=60"], &["s-maxage=60, private"]),
        (&["max-age=60, private"], &["max-age=60, private"]),
        (&["no-store"], &["no-store"]),
        (&["public, no-store"], &["no-store"]),
        (&[quoted], &[quoted_private.as_str()]),
        // Private for one field only: the rest, the pin included, could be stored.
        (&[r#"private="x-user", max-age=5"#], &["max-age=5, private"]),
    ] {
        let asked: Vec<_> = sent.iter().map(|v| ("x-cache-control", *v)).collect();
        let res = get_response(addr, "shop", "/", &asked).await;
        assert!(res.headers().contains_key("set-cookie"), "{sent:?}");
        assert_eq!(cache_control(&res), pinned, "{sent:?}");
        // A client pinned already gets no new pin, and the answer as the instance gave it.
        let pinned_already = [&asked[..], &[("cookie", "track=stable")]].concat();
        let res = get_response(addr, "shop", "/", &pinned_already).await;
        assert!(!res.headers().contains_key("set-cookie"), "{sent:?}");
        assert_eq!(cache_control(&res), sent, "{sent:?}");
    }
    router.shutdown();
}
