//! Which backend a request goes to: a pure function of the split in force, which backends have
//! ready endpoints, the request's headers and a random roll.
//!
//! **Readiness gating.** A backend with no ready endpoint receives no traffic: its weight is
//! redistributed over the other backends of the split that have ready endpoints, in proportion
//! to their weights (a weighted choice among the ready ones). A match route or a sticky cookie
//! that names a backend without ready endpoints falls back to the weights. A backend at 0% never
//! receives traffic by weight, even when nothing else is ready: the request is answered 503.
//! This keeps `apply` atomic and instantaneous (it never waits for readiness) while no request
//! ever goes to an instance that is not ready.

use hyper::HeaderMap;
use hyper::header::COOKIE;
use serin_traffic::{MatchOn, TrafficSplit};

/// Why a backend was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// A match route.
    Route,
    /// The request's sticky cookie.
    Sticky,
    /// The weights.
    Weight,
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub(crate) fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Picks the backend for a request, or `None` when no backend of the split with weight (or a
/// matching route) has a ready endpoint. `roll` is uniform in `0 .. 10_000`; `ready` says
/// whether a backend has a ready endpoint; `exclude` is a backend that must not be chosen (the
/// one a retry is leaving).
pub(crate) fn choose<'s>(
    split: &'s TrafficSplit,
    headers: &HeaderMap,
    roll: u32,
    ready: &dyn Fn(&str) -> bool,
    exclude: Option<&str>,
) -> Option<(&'s str, Reason)> {
    let usable = |name: &str| exclude != Some(name) && ready(name);
    for route in split.routes() {
        let value = match route.on() {
            MatchOn::Header => headers.get(route.name()).and_then(|v| v.to_str().ok()),
            MatchOn::Cookie => cookie(headers, route.name()),
        };
        let backend = route.backend().as_str();
        if value.is_some_and(|v| route.matches_value(v)) && usable(backend) {
            return Some((backend, Reason::Route));
        }
    }
    if let Some(sticky) = split.sticky()
        && let Some(wanted) = cookie(headers, sticky.cookie())
        && let Some(b) = split
            .backends()
            .iter()
            .find(|b| b.name().as_str() == wanted && !b.weight().is_zero())
        && usable(b.name().as_str())
    {
        return Some((b.name().as_str(), Reason::Sticky));
    }
    let total: u32 = split
        .backends()
        .iter()
        .filter(|b| !b.weight().is_zero() && usable(b.name().as_str()))
        .map(|b| u32::from(b.weight().bps()))
        .sum();
    if total == 0 {
        return None;
    }
    // Scale the roll onto the ready backends' total, so their shares keep their proportions.
    let mut point = u64::from(roll.min(9_999)) * u64::from(total) / 10_000;
    for b in split.backends() {
        if b.weight().is_zero() || !usable(b.name().as_str()) {
            continue;
        }
        let w = u64::from(b.weight().bps());
        if point < w {
            return Some((b.name().as_str(), Reason::Weight));
        }
        point -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use hyper::header::HeaderValue;
    use serin_traffic::{MatchRoute, StickySession, ValueMatch};

    use super::*;

    fn split(stable: u8, canary: u8) -> TrafficSplit {
        TrafficSplit::from_percents([("stable", stable), ("canary", canary)]).unwrap()
    }

    fn all_ready(_: &str) -> bool {
        true
    }

    fn shares(split: &TrafficSplit, ready: &dyn Fn(&str) -> bool) -> (u32, u32, u32) {
        let headers = HeaderMap::new();
        let (mut s, mut c, mut none) = (0, 0, 0);
        for roll in 0..10_000 {
            match choose(split, &headers, roll, ready, None) {
                Some(("stable", _)) => s += 1,
                Some(("canary", _)) => c += 1,
                Some(other) => panic!("{other:?}"),
                None => none += 1,
            }
        }
        (s, c, none)
    }

    #[test]
    fn weights_are_exact_over_every_roll() {
        assert_eq!(shares(&split(90, 10), &all_ready), (9_000, 1_000, 0));
        let fine = TrafficSplit::new([
            ("stable", serin_traffic::Weight::from_bps(9_999).unwrap()),
            ("canary", serin_traffic::Weight::ONE_BPS),
        ])
        .unwrap();
        assert_eq!(shares(&fine, &all_ready), (9_999, 1, 0));
    }

    #[test]
    fn a_backend_that_is_not_ready_gets_nothing_and_its_share_moves() {
        let only_stable = |b: &str| b == "stable";
        assert_eq!(shares(&split(50, 50), &only_stable), (10_000, 0, 0));
        assert_eq!(shares(&split(0, 100), &only_stable), (0, 0, 10_000));
        assert_eq!(shares(&split(50, 50), &|_: &str| false), (0, 0, 10_000));
    }

    #[test]
    fn routes_then_sticky_then_weights() {
        let s = split(100, 0)
            .with_route(
                MatchRoute::header("x-canary", ValueMatch::Exact("yes".into()), "canary").unwrap(),
            )
            .unwrap()
            .with_sticky(StickySession::new("srn", Duration::from_secs(60)).unwrap());
        let mut h = HeaderMap::new();
        h.insert("x-canary", HeaderValue::from_static("yes"));
        assert_eq!(
            choose(&s, &h, 0, &all_ready, None),
            Some(("canary", Reason::Route))
        );
        let not_canary = |b: &str| b != "canary";
        assert_eq!(
            choose(&s, &h, 0, &not_canary, None),
            Some(("stable", Reason::Weight))
        );
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("a=1; srn=stable"));
        assert_eq!(
            choose(&s, &h, 0, &all_ready, None),
            Some(("stable", Reason::Sticky))
        );
        // A sticky cookie never sends traffic to a backend at 0%.
        let mut h = HeaderMap::new();
        h.insert(COOKIE, HeaderValue::from_static("srn=canary"));
        assert_eq!(
            choose(&s, &h, 0, &all_ready, None),
            Some(("stable", Reason::Weight))
        );
    }

    #[test]
    fn a_retry_leaves_the_failed_backend_out() {
        let s = split(50, 50);
        for roll in [0, 4_999, 5_000, 9_999] {
            assert_eq!(
                choose(&s, &HeaderMap::new(), roll, &all_ready, Some("stable")).map(|c| c.0),
                Some("canary")
            );
        }
    }

    #[test]
    fn cookies_are_parsed_from_every_header() {
        let mut h = HeaderMap::new();
        h.append(COOKIE, HeaderValue::from_static("a=1"));
        h.append(COOKIE, HeaderValue::from_static("b=2; c=3"));
        assert_eq!(cookie(&h, "c"), Some("3"));
        assert_eq!(cookie(&h, "d"), None);
    }
}
