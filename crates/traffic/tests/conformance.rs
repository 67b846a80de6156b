//! The conformance suite as a router written outside this crate uses it (feature `testkit`):
//! an honest router passes, and routers that break the contract are caught.
#![cfg(feature = "testkit")]

use std::sync::Mutex;

use async_trait::async_trait;
use serin_traffic::{
    Capabilities, Error, InMemoryRouter, MatchOn, MatchRoute, Mirror, Result, StickySession,
    TrafficRouter, TrafficSplit, Weight, testkit,
};

/// How a test router misbehaves.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// Stores the split before checking capabilities, so a refusal leaves it changed.
    StoresBeforeChecking,
    /// Claims header routing but silently drops routes.
    DropsRoutes,
    /// Claims whole-percent weights but accepts anything.
    IgnoresGranularity,
    /// Claims whole-percent weights but checks them against tenths of a percent, finer than
    /// it claims: a split at 0.5% goes through, which its backend would round away.
    ChecksFinerThanClaimed,
    /// Adds the routes of a split but never removes them, so a plain split keeps the old ones.
    KeepsOldRoutes,
    /// Claims mirroring and whole-percent weights, but checks only the weights: a mirror
    /// share finer than a whole percent goes through.
    IgnoresMirrorShare,
    /// Moves the weights before it checks the routes, mirror and sticky sessions, so a split it
    /// refuses for one of those has already shifted traffic.
    MovesWeightsFirst,
    /// Creates routes rather than updating them: applying a split with routes that are already
    /// in force fails, as a create call would with "already exists".
    CreatesRoutes,
    /// Holds one match route at most, and silently keeps only the first of several.
    KeepsFirstRouteOnly,
    /// Installs routes, a mirror and sticky sessions when none are in force and removes them
    /// for a split without any, but never updates those in force: a split that changes them
    /// keeps the old ones.
    NeverUpdatesExtras,
    /// Keeps header routes before cookie routes whatever their order, as a router with one
    /// table per kind would: a split that tries a cookie first is matched in another order.
    HeaderRoutesFirst,
    /// Updates a mirror in force to its new backend but keeps its old share, as a router that
    /// patches only the mirror's host would.
    KeepsMirrorShare,
    /// Updates sticky sessions in force to their new lifetime but keeps their old cookie, as a
    /// router that patches only the cookie's `Max-Age` would: users stay pinned by a cookie the
    /// split no longer names.
    KeepsStickyCookie,
    /// Holds one route per header or cookie name, as a router whose rules are keyed by the
    /// name would: of several routes on one header, only the last is kept, in the first's
    /// place.
    OneRoutePerName,
}

struct Proxy {
    caps: Capabilities,
    flaw: Flaw,
    split: Mutex<Option<TrafficSplit>>,
}

impl Proxy {
    fn new(flaw: Flaw) -> Self {
        let whole_percent = Capabilities::weights_only()
            .with_weight_granularity(Weight::from_percent(1).unwrap())
            .unwrap()
            .with_header_routing(true);
        Proxy {
            caps: whole_percent,
            flaw,
            split: Mutex::new(None),
        }
    }

    /// The same proxy, mirroring too.
    fn mirroring(flaw: Flaw) -> Self {
        let mut proxy = Self::new(flaw);
        proxy.caps = proxy.caps.with_mirroring(true);
        proxy
    }

    /// The same proxy, claiming everything.
    fn full(flaw: Flaw) -> Self {
        let mut proxy = Self::new(flaw);
        proxy.caps = Capabilities::full();
        proxy
    }
}

/// `weights`' weights with `routes`, in that order, and `extras`' mirror and sticky sessions.
fn rebuilt(
    weights: &TrafficSplit,
    routes: impl IntoIterator<Item = MatchRoute>,
    extras: &TrafficSplit,
) -> Result<TrafficSplit> {
    let mut out = routes
        .into_iter()
        .try_fold(weights.plain(), |s, r| s.with_route(r))?;
    if let Some(m) = extras.mirror() {
        out = out.with_mirror(m.clone());
    }
    if let Some(s) = extras.sticky() {
        out = out.with_sticky(s.clone());
    }
    Ok(out)
}

#[async_trait]
impl TrafficRouter for Proxy {
    fn name(&self) -> &str {
        "proxy"
    }

    fn capabilities(&self) -> Capabilities {
        self.caps
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        let mut stored = self.split.lock().unwrap();
        if self.flaw == Flaw::StoresBeforeChecking {
            *stored = Some(split.clone());
        }
        if self.flaw == Flaw::MovesWeightsFirst {
            self.caps.check(&split.plain(), self.name())?;
            let extras = stored
                .as_ref()
                .map(|old| (old.routes().to_vec(), old.mirror().cloned()));
            let mut moved = split.plain();
            if let Some((routes, mirror)) = extras {
                moved = routes.into_iter().try_fold(moved, |s, r| s.with_route(r))?;
                if let Some(m) = mirror {
                    moved = moved.with_mirror(m);
                }
            }
            *stored = Some(moved);
        }
        if self.flaw == Flaw::CreatesRoutes
            && !split.routes().is_empty()
            && stored.as_ref() == Some(split)
        {
            return Err(Error::Backend {
                router: self.name().to_owned(),
                message: "route already exists".to_owned(),
            });
        }
        match self.flaw {
            Flaw::IgnoresGranularity => {}
            Flaw::ChecksFinerThanClaimed => {
                let tenths = self
                    .caps
                    .with_weight_granularity(Weight::from_bps(10).unwrap())
                    .unwrap();
                tenths.check(split, self.name())?;
            }
            Flaw::IgnoresMirrorShare => self.caps.check(&split.plain(), self.name())?,
            _ => self.caps.check(split, self.name())?,
        }
        let kept = match (self.flaw, stored.as_ref()) {
            (Flaw::KeepsOldRoutes, Some(old)) if split.routes().is_empty() => {
                old.routes()
                    .iter()
                    .try_fold(split.clone(), |s, r| s.with_route(r.clone()))?
            }
            (Flaw::NeverUpdatesExtras, Some(old)) if !old.is_plain() && !split.is_plain() => {
                rebuilt(split, old.routes().to_vec(), old)?
            }
            (Flaw::KeepsMirrorShare, Some(old)) => match (old.mirror(), split.mirror()) {
                (Some(was), Some(now)) => split
                    .clone()
                    .with_mirror(Mirror::new(now.backend().as_str(), was.percent())?),
                _ => split.clone(),
            },
            (Flaw::KeepsStickyCookie, Some(old)) => match (old.sticky(), split.sticky()) {
                (Some(was), Some(now)) => split
                    .clone()
                    .with_sticky(StickySession::new(was.cookie(), now.ttl())?),
                _ => split.clone(),
            },
            (Flaw::OneRoutePerName, _) => {
                let mut routes: Vec<MatchRoute> = Vec::new();
                for r in split.routes() {
                    match routes
                        .iter_mut()
                        .find(|k| k.on() == r.on() && k.name() == r.name())
                    {
                        Some(kept) => *kept = r.clone(),
                        None => routes.push(r.clone()),
                    }
                }
                rebuilt(split, routes, split)?
            }
            (Flaw::HeaderRoutesFirst, _) => {
                let (headers, cookies): (Vec<_>, Vec<_>) = split
                    .routes()
                    .iter()
                    .cloned()
                    .partition(|r| r.on() == MatchOn::Header);
                rebuilt(split, headers.into_iter().chain(cookies), split)?
            }
            _ => split.clone(),
        };
        *stored = Some(match self.flaw {
            Flaw::DropsRoutes => split.plain(),
            Flaw::KeepsFirstRouteOnly => match (split.routes().first(), split.mirror()) {
                (Some(first), mirror) => {
                    let one = split.plain().with_route(first.clone())?;
                    match mirror {
                        Some(m) => one.with_mirror(m.clone()),
                        None => one,
                    }
                }
                (None, _) => kept,
            },
            _ => kept,
        });
        Ok(())
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        Ok(self.split.lock().unwrap().clone())
    }
}

#[tokio::test]
async fn an_external_router_passes_the_suite() {
    testkit::check_all(&Proxy::new(Flaw::None)).await;
}

#[tokio::test]
async fn an_external_mirroring_router_passes_the_suite() {
    testkit::check_all(&Proxy::mirroring(Flaw::None)).await;
}

#[tokio::test]
#[should_panic(expected = "although it does not claim weights this fine")]
async fn a_router_that_mirrors_finer_shares_than_it_claims_is_caught() {
    testkit::check_invalid_splits_refused(&Proxy::mirroring(Flaw::IgnoresMirrorShare)).await;
}

#[tokio::test]
async fn in_memory_router_passes_the_suite_from_outside() {
    testkit::check_all(&InMemoryRouter::new()).await;
    let boxed: Box<dyn TrafficRouter> = Box::new(InMemoryRouter::with_capabilities(
        Capabilities::switch_only(),
    ));
    testkit::check_all(&boxed).await;
}

#[tokio::test]
#[should_panic(expected = "changed its split although it refused")]
async fn a_router_that_is_not_atomic_is_caught() {
    testkit::check_capability_honesty(&Proxy::new(Flaw::StoresBeforeChecking)).await;
}

#[tokio::test]
#[should_panic(
    expected = "reads back a different split after applying a split with header routing"
)]
async fn a_router_that_drops_what_it_claims_is_caught() {
    testkit::check_capability_honesty(&Proxy::new(Flaw::DropsRoutes)).await;
}

#[tokio::test]
#[should_panic(
    expected = "reads back a different split after going back to a plain split from one with header routing"
)]
async fn a_router_that_cannot_take_a_route_away_is_caught() {
    testkit::check_capability_honesty(&Proxy::new(Flaw::KeepsOldRoutes)).await;
}

#[tokio::test]
#[should_panic(expected = "although it does not claim weights this fine")]
async fn a_router_that_accepts_finer_weights_than_it_claims_is_caught() {
    testkit::check_invalid_splits_refused(&Proxy::new(Flaw::IgnoresGranularity)).await;
}

#[tokio::test]
#[should_panic(expected = "although it does not claim weights this fine")]
async fn a_router_that_checks_finer_weights_than_it_claims_is_caught() {
    testkit::check_invalid_splits_refused(&Proxy::new(Flaw::ChecksFinerThanClaimed)).await;
}

#[tokio::test]
async fn the_flawed_routers_pass_what_they_do_not_break() {
    // Each flaw below hides from splits that carry one thing at a time, applied once, over
    // the weights already in force; the suite must still catch it.
    for flaw in [
        Flaw::MovesWeightsFirst,
        Flaw::CreatesRoutes,
        Flaw::KeepsFirstRouteOnly,
        Flaw::NeverUpdatesExtras,
        Flaw::HeaderRoutesFirst,
    ] {
        testkit::check_round_trip(&Proxy::mirroring(flaw)).await;
        testkit::check_finest_weights(&Proxy::mirroring(flaw)).await;
    }
    // These two keep a split right while its extras are installed over none, header routes
    // before cookie routes, as every check but the honesty one applies them.
    for flaw in [Flaw::NeverUpdatesExtras, Flaw::HeaderRoutesFirst] {
        testkit::check_idempotent(&Proxy::full(flaw)).await;
    }
}

#[tokio::test]
#[should_panic(expected = "changed its split although it refused")]
async fn a_router_that_moves_weights_before_refusing_a_route_is_caught() {
    testkit::check_capability_honesty(&Proxy::new(Flaw::MovesWeightsFirst)).await;
}

#[tokio::test]
#[should_panic(expected = "changed its split although it refused")]
async fn a_router_that_moves_weights_before_refusing_a_mirror_share_is_caught() {
    testkit::check_invalid_splits_refused(&Proxy::mirroring(Flaw::MovesWeightsFirst)).await;
}

#[tokio::test]
#[should_panic(expected = "route already exists")]
async fn a_router_that_cannot_reapply_its_routes_is_caught() {
    testkit::check_idempotent(&Proxy::new(Flaw::CreatesRoutes)).await;
}

#[tokio::test]
#[should_panic(expected = "reads back a different split")]
async fn a_router_that_keeps_only_its_first_route_is_caught() {
    testkit::check_capability_honesty(&Proxy::new(Flaw::KeepsFirstRouteOnly)).await;
}

#[tokio::test]
#[should_panic(expected = "reads back a different split after changing its header routing")]
async fn a_router_that_never_updates_what_it_installed_is_caught() {
    testkit::check_capability_honesty(&Proxy::full(Flaw::NeverUpdatesExtras)).await;
}

#[tokio::test]
#[should_panic(expected = "reads back a different split after changing its mirroring")]
async fn a_router_that_keeps_the_share_of_the_mirror_in_force_is_caught() {
    testkit::check_all(&Proxy::full(Flaw::KeepsMirrorShare)).await;
}

#[tokio::test]
#[should_panic(expected = "reads back a different split after changing its sticky sessions")]
async fn a_router_that_keeps_the_cookie_of_the_sticky_sessions_in_force_is_caught() {
    testkit::check_all(&Proxy::full(Flaw::KeepsStickyCookie)).await;
}

#[tokio::test]
#[should_panic(
    expected = "reads back a different split after applying a split with everything the router claims"
)]
async fn a_router_that_keeps_one_route_per_header_is_caught() {
    testkit::check_all(&Proxy::new(Flaw::OneRoutePerName)).await;
}

#[tokio::test]
#[should_panic(expected = "reads back a different split after reordering its routes")]
async fn a_router_that_reorders_routes_by_kind_is_caught() {
    testkit::check_capability_honesty(&Proxy::full(Flaw::HeaderRoutesFirst)).await;
}

#[tokio::test]
async fn refusals_are_unsupported_errors() {
    let proxy = Proxy::new(Flaw::None);
    let fine = TrafficSplit::new([
        ("stable", Weight::from_bps(9_950).unwrap()),
        ("canary", Weight::from_bps(50).unwrap()),
    ])
    .unwrap();
    assert!(matches!(
        proxy.apply(&fine).await,
        Err(Error::Unsupported { .. })
    ));
}

/// Refuses traffic (weight, a route or a mirror) to a backend it was not told about, as a
/// router must that sends only to backends with ready instances.
struct Strict {
    inner: InMemoryRouter,
    known: Mutex<Vec<String>>,
}

impl Strict {
    fn new() -> Self {
        Strict {
            inner: InMemoryRouter::with_capabilities(Capabilities::full()),
            known: Mutex::new(Vec::new()),
        }
    }
}

#[async_trait]
impl TrafficRouter for Strict {
    fn name(&self) -> &str {
        "strict"
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> Result<()> {
        let named = split
            .backends()
            .iter()
            .filter(|b| !b.weight().is_zero())
            .map(|b| b.name().as_str())
            .chain(split.routes().iter().map(|r| r.backend().as_str()))
            .chain(split.mirror().map(|m| m.backend().as_str()));
        let known = self.known.lock().unwrap().clone();
        for backend in named {
            if !known.iter().any(|k| k == backend) {
                return Err(Error::Backend {
                    router: self.name().to_owned(),
                    message: format!("backend `{backend}` has no ready instance"),
                });
            }
        }
        self.inner.apply(split).await
    }

    async fn current(&self) -> Result<Option<TrafficSplit>> {
        self.inner.current().await
    }
}

#[async_trait]
impl testkit::RouterFixture for Strict {
    async fn arrange_backends(&self, backends: &[&str]) -> Result<()> {
        let mut known = self.known.lock().unwrap();
        known.extend(backends.iter().map(|b| (*b).to_owned()));
        Ok(())
    }
}

#[tokio::test]
async fn a_router_that_needs_its_backends_set_up_passes_with_a_fixture() {
    let strict = Strict::new();
    testkit::check_all_with(&strict, &strict).await;
}

#[tokio::test]
#[should_panic(expected = "has no ready instance")]
async fn a_router_that_needs_its_backends_set_up_refuses_them_unannounced() {
    testkit::check_all(&Strict::new()).await;
}
