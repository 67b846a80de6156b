//! The conformance suite for [`TrafficRouter`] implementations (feature `testkit`).
//!
//! Every router's tests call [`check_all`] (or the `check_*` functions one by one) on a router
//! they built; each check panics with a message on failure, like an assertion. The suite routes
//! to the [`BACKENDS`] `stable` and `canary`, and mirrors to `shadow` (once to `canary`, to see
//! a mirror change its backend and share). A router that sends traffic to whatever it is told may take
//! them as they come. A stricter router refuses weight on a backend it does not know or that
//! has no ready instance (with [`Error::Backend`], changing nothing), as the zero-downtime
//! promise asks of a real one: its tests call [`check_all_with`] and a [`RouterFixture`] that
//! sets those backends up first (or call [`arrange`] before the single checks). Each check
//! starts by applying a plain split, so it does not depend on what the router held before; it
//! is tailored to the router's own [`capabilities`](TrafficRouter::capabilities): what the
//! router claims must be accepted — alone, all together, changed in place and applied again —
//! and read back exactly; what it does not claim must be refused with [`Error::Unsupported`]
//! leaving the applied split unchanged.
//!
//! A split the suite expects refused always moves weight too and carries everything the
//! router does claim beside the one thing it does not: a router that puts a split in force
//! piece by piece (weights first, then routes, ...) and stops at the first piece it cannot
//! do has changed traffic before refusing, and the suite sees it.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use serin_traffic::{Capabilities, InMemoryRouter};
//! # fn block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     let waker = std::task::Waker::noop();
//! #     let mut cx = std::task::Context::from_waker(waker);
//! #     let mut f = std::pin::pin!(f);
//! #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
//! # }
//! block_on(serin_traffic::testkit::check_all(&InMemoryRouter::new()));
//! block_on(serin_traffic::testkit::check_all(
//!     &InMemoryRouter::with_capabilities(Capabilities::switch_only()),
//! ));
//!
//! // A router that must be told its backends first: the fixture sets them up.
//! struct Backends;
//! #[async_trait::async_trait]
//! impl serin_traffic::testkit::RouterFixture for Backends {
//!     async fn arrange_backends(&self, backends: &[&str]) -> serin_traffic::Result<()> {
//!         assert_eq!(backends, serin_traffic::testkit::BACKENDS);
//!         Ok(()) // start an instance of each and wait until it is ready
//!     }
//! }
//! block_on(serin_traffic::testkit::check_all_with(&InMemoryRouter::new(), &Backends));
//! # }
//! ```

use std::time::Duration;

use async_trait::async_trait;

use crate::capabilities::Capability;
use crate::error::{Error, Result};
use crate::router::TrafficRouter;
use crate::routes::{MatchRoute, Mirror, StickySession, ValueMatch};
use crate::split::TrafficSplit;
use crate::weight::Weight;

/// Every backend the suite names: `stable` and `canary` receive weight and routes, `shadow`
/// mirrored requests (when the router mirrors; `canary` too, once).
pub const BACKENDS: [&str; 3] = ["stable", "canary", "shadow"];

/// Sets up what the router under test routes to, before the suite names it.
#[async_trait]
pub trait RouterFixture: Send + Sync {
    /// Makes each of `backends` ([`BACKENDS`]) something the router accepts traffic for: known
    /// to it, with at least one ready instance. The default does nothing, for a router that
    /// takes any backend name.
    async fn arrange_backends(&self, backends: &[&str]) -> Result<()> {
        let _ = backends;
        Ok(())
    }
}

/// The fixture of a router that takes any backend name: nothing to set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct AnyBackend;

impl RouterFixture for AnyBackend {}

/// Has `fixture` set up [`BACKENDS`]; panics if it cannot.
pub async fn arrange(fixture: &dyn RouterFixture) {
    if let Err(e) = fixture.arrange_backends(&BACKENDS).await {
        panic!("fixture: setting up the backends {BACKENDS:?} failed: {e}");
    }
}

/// Runs every check of the suite on `router`, which must accept traffic for [`BACKENDS`] as
/// they come (see [`check_all_with`] for a router that needs them set up).
pub async fn check_all(router: &dyn TrafficRouter) {
    check_all_with(router, &AnyBackend).await;
}

/// Runs every check of the suite on `router`, once `fixture` has set up [`BACKENDS`].
pub async fn check_all_with(router: &dyn TrafficRouter, fixture: &dyn RouterFixture) {
    arrange(fixture).await;
    check_round_trip(router).await;
    check_idempotent(router).await;
    check_invalid_splits_refused(router).await;
    check_finest_weights(router).await;
    check_capability_honesty(router).await;
}

/// All traffic on `stable` (`canary` at 0%): a split every router can apply.
fn base() -> TrafficSplit {
    must(
        TrafficSplit::all_to("stable", &["canary"]),
        "the base split",
    )
}

/// `x-canary: always` → `canary`.
fn header_route() -> MatchRoute {
    must(
        MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary"),
        "a header route",
    )
}

/// `x-track: stable…` → `stable`: a second header route, so a router that keeps only one
/// route is seen.
fn second_header_route() -> MatchRoute {
    must(
        MatchRoute::header("x-track", ValueMatch::Prefix("stable".into()), "stable"),
        "a second header route",
    )
}

/// `x-canary: never` → `stable`: a route on the header [`header_route`] matches too, so a
/// router that keeps one route per header (rules keyed by its name) is seen. A split may hold
/// several, and the first that matches wins.
fn same_header_route() -> MatchRoute {
    must(
        MatchRoute::header("x-canary", ValueMatch::Exact("never".into()), "stable"),
        "a route on the same header",
    )
}

/// Cookie `canary=yes…` → `canary`.
fn cookie_route() -> MatchRoute {
    must(
        MatchRoute::cookie("canary", ValueMatch::Prefix("yes".into()), "canary"),
        "a cookie route",
    )
}

/// `split` with what `capability` stands for added: a header route, a cookie route, a mirror
/// of every request to `shadow` (a share any granularity allows) or sticky sessions.
fn with_capability(split: TrafficSplit, capability: Capability) -> TrafficSplit {
    match capability {
        Capability::HeaderRouting => must(split.with_route(header_route()), "a header route"),
        Capability::CookieRouting => must(split.with_route(cookie_route()), "a cookie route"),
        Capability::Mirroring => {
            split.with_mirror(must(Mirror::new("shadow", Weight::FULL), "a mirror"))
        }
        Capability::StickySessions => split.with_sticky(must(
            StickySession::new("serin-backend", Duration::from_secs(3600)),
            "sticky sessions",
        )),
        _ => split,
    }
}

/// `split` with another instance of what `capability` stands for than [`with_capability`]
/// adds, under the same name where there is one: `x-canary` matched by prefix and sent to
/// `stable`, cookie `canary` matched exactly and sent to `stable`, a mirror to `canary` of one
/// `granularity` step of requests (of every request at a granularity of 100%, where no other
/// share is possible), or sticky sessions through another cookie with another lifetime — so a
/// router that installs these but never updates them, updates a mirror's backend but not its
/// share, or sticky sessions' lifetime but not their cookie, is seen. (Sticky sessions have
/// no name beside their cookie: a router that kept the old one would pin users by a cookie
/// the split no longer names.)
fn with_changed(split: TrafficSplit, capability: Capability, granularity: Weight) -> TrafficSplit {
    let route =
        |r: Result<MatchRoute>| must(split.clone().with_route(must(r, "a route")), "a route");
    match capability {
        Capability::HeaderRouting => route(MatchRoute::header(
            "x-canary",
            ValueMatch::Prefix("beta".into()),
            "stable",
        )),
        Capability::CookieRouting => route(MatchRoute::cookie(
            "canary",
            ValueMatch::Exact("no".into()),
            "stable",
        )),
        Capability::Mirroring => {
            split.with_mirror(must(Mirror::new("canary", granularity), "a mirror"))
        }
        Capability::StickySessions => split.with_sticky(must(
            StickySession::new("serin-track", Duration::from_secs(60)),
            "sticky sessions",
        )),
        _ => split,
    }
}

/// `split` with its routes tried in the reverse order, its mirror and sticky sessions kept.
fn with_routes_reversed(split: &TrafficSplit) -> TrafficSplit {
    let mut out = split.routes().iter().rev().fold(split.plain(), |s, r| {
        must(s.with_route(r.clone()), "the routes reversed")
    });
    if let Some(m) = split.mirror() {
        out = out.with_mirror(m.clone());
    }
    if let Some(s) = split.sticky() {
        out = out.with_sticky(s.clone());
    }
    out
}

/// The capabilities beside weights that the suite exercises, in the order it adds them.
const EXTRAS: [Capability; 4] = [
    Capability::HeaderRouting,
    Capability::CookieRouting,
    Capability::Mirroring,
    Capability::StickySessions,
];

/// `split` with everything the router claims beside weights: three header routes (two on one
/// header), a cookie route, a mirror and sticky sessions, as far as each is claimed.
fn with_all_claimed(router: &dyn TrafficRouter, split: TrafficSplit) -> TrafficSplit {
    let caps = router.capabilities();
    let mut out = split;
    for capability in EXTRAS {
        if caps.supports(capability) {
            out = with_capability(out, capability);
            if capability == Capability::HeaderRouting {
                out = must(
                    out.with_route(second_header_route()),
                    "a second header route",
                );
                out = must(
                    out.with_route(same_header_route()),
                    "a route on the same header",
                );
            }
        }
    }
    out
}

/// One granularity step on `canary`, the rest on `stable`.
fn one_step(router: &dyn TrafficRouter) -> TrafficSplit {
    let g = router.capabilities().weight_granularity();
    must(
        TrafficSplit::new([("stable", g.complement()), ("canary", g)]),
        "a split at the router's granularity",
    )
}

fn must<T>(r: Result<T>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("testkit could not build {what}: {e}"),
    }
}

async fn apply_ok(router: &dyn TrafficRouter, split: &TrafficSplit) {
    if let Err(e) = router.apply(split).await {
        panic!(
            "router `{}` refused [{split}], which it should accept: {e}",
            router.name()
        );
    }
}

async fn current(router: &dyn TrafficRouter) -> Option<TrafficSplit> {
    match router.current().await {
        Ok(c) => c,
        Err(e) => panic!("router `{}` failed to read its split: {e}", router.name()),
    }
}

async fn assert_current(router: &dyn TrafficRouter, want: &TrafficSplit, after: &str) {
    let got = current(router).await;
    assert_eq!(
        got.as_ref(),
        Some(want),
        "router `{}` reads back a different split after {after}",
        router.name()
    );
}

/// Applies `split`, which needs `capability` the router does not claim, and checks that it is
/// refused with [`Error::Unsupported`] naming the capability and the router, and that the split
/// in force is unchanged.
async fn assert_refused(router: &dyn TrafficRouter, split: &TrafficSplit, capability: Capability) {
    let before = current(router).await;
    match router.apply(split).await {
        Ok(()) => panic!(
            "router `{}` accepted [{split}] although it does not claim {capability}",
            router.name()
        ),
        Err(Error::Unsupported {
            capability: got,
            router: name,
            ..
        }) => {
            assert_eq!(
                got,
                capability,
                "router `{}` refused [{split}] for the wrong capability",
                router.name()
            );
            assert_eq!(
                name,
                router.name(),
                "the refusal should name the router that refused"
            );
        }
        Err(other) => panic!(
            "router `{}` refused [{split}] with {other:?}; expected Unsupported({capability:?})",
            router.name()
        ),
    }
    assert_eq!(
        current(router).await,
        before,
        "router `{}` changed its split although it refused [{split}]",
        router.name()
    );
}

/// Apply, then read back exactly; a second split replaces the first; going back works.
pub async fn check_round_trip(router: &dyn TrafficRouter) {
    let a = base();
    let b = one_step(router);
    apply_ok(router, &a).await;
    assert_current(router, &a, "applying the base split").await;
    apply_ok(router, &b).await;
    assert_current(router, &b, "applying a second split").await;
    apply_ok(router, &a).await;
    assert_current(router, &a, "going back to the base split").await;
}

/// Applying the split in force again succeeds and changes nothing — a plain split, and one with
/// everything the router claims (routes, mirror, sticky sessions), which a router that creates
/// its routes instead of updating them would fail to apply twice.
pub async fn check_idempotent(router: &dyn TrafficRouter) {
    let a = base();
    let b = one_step(router);
    apply_ok(router, &a).await;
    apply_ok(router, &b).await;
    apply_ok(router, &b).await;
    assert_current(router, &b, "applying the same split twice").await;
    let rich = with_all_claimed(router, one_step(router));
    apply_ok(router, &rich).await;
    apply_ok(router, &rich).await;
    assert_current(
        router,
        &rich,
        "applying a split with everything the router claims twice",
    )
    .await;
    apply_ok(router, &a).await;
    apply_ok(router, &a).await;
    assert_current(router, &a, "applying the base split twice").await;
}

/// Splits that are invalid never reach a router (their constructors and the deserializer refuse
/// them), and a split whose weights or mirror share are finer than the router's granularity is
/// refused with the split in force unchanged. The too-fine mirror share comes with a move of
/// weight, so a router that moves the weights before it checks the mirror is seen.
pub async fn check_invalid_splits_refused(router: &dyn TrafficRouter) {
    assert!(TrafficSplit::from_percents([("stable", 90), ("canary", 20)]).is_err());
    assert!(TrafficSplit::from_percents([("stable", 50), ("stable", 50)]).is_err());
    assert!(TrafficSplit::from_percents([("Stable", 100)]).is_err());
    assert!(TrafficSplit::new(Vec::<(&str, Weight)>::new()).is_err());

    apply_ok(router, &base()).await;
    let g = router.capabilities().weight_granularity().bps();
    // A share of `d` for every divisor `d` of 100% finer than the granularity: each is off the
    // granularity but on every finer one that divides 100%, so a router that checks a finer
    // granularity than it claims (1% for a claimed 5%) accepts one of them and is seen.
    for d in (1..g).filter(|d| Weight::TOTAL_BPS.is_multiple_of(*d)) {
        let finer = must(
            Weight::from_bps(d).and_then(|share| {
                TrafficSplit::new([("stable", share.complement()), ("canary", share)])
            }),
            "a split finer than the granularity",
        );
        assert_refused(router, &finer, Capability::WeightGranularity).await;
        if router.capabilities().mirroring() {
            let share = must(Weight::from_bps(d), "a mirror share");
            let mirror = must(
                Mirror::new("shadow", share),
                "a mirror finer than the granularity",
            );
            let finer_mirror = one_step(router).with_mirror(mirror);
            assert_refused(router, &finer_mirror, Capability::WeightGranularity).await;
        }
    }
}

/// Weights exactly at the router's granularity are accepted and read back exactly, at both ends,
/// and so is a mirror of one granularity step when the router mirrors.
pub async fn check_finest_weights(router: &dyn TrafficRouter) {
    let g = router.capabilities().weight_granularity();
    let low = one_step(router);
    let high = must(
        TrafficSplit::new([("stable", g), ("canary", g.complement())]),
        "a split one step short of full",
    );
    let mut splits = vec![low, high];
    if router.capabilities().mirroring() {
        let mirror = must(
            Mirror::new("shadow", g),
            "a mirror at the router's granularity",
        );
        splits.push(one_step(router).with_mirror(mirror));
    }
    splits.push(base());
    for split in splits {
        apply_ok(router, &split).await;
        assert_current(
            router,
            &split,
            "applying weights at the router's granularity",
        )
        .await;
    }
}

/// What the router claims is accepted, read back exactly, changed in place and taken away again
/// by a plain split, alone and all together (three header routes among them, two on one
/// header, so none is dropped, and then the routes in the reverse order, so their order is kept as given: the first that
/// matches wins); what it does not claim is refused with the split in force unchanged, even
/// when it comes with a move of weight and everything the router does claim.
pub async fn check_capability_honesty(router: &dyn TrafficRouter) {
    let caps = router.capabilities();
    for capability in EXTRAS {
        apply_ok(router, &base()).await;
        if caps.supports(capability) {
            let split = with_capability(base(), capability);
            apply_ok(router, &split).await;
            assert_current(
                router,
                &split,
                &format!("applying a split with {capability}"),
            )
            .await;
            // A route, mirror or sticky session in force is updated, not kept as installed.
            let changed = with_changed(base(), capability, caps.weight_granularity());
            apply_ok(router, &changed).await;
            assert_current(router, &changed, &format!("changing its {capability}")).await;
            // A plan's last step and a rollback drop the deployment's routes and mirror, and a
            // service may turn its sticky sessions off: the router must take each away again,
            // not only add it.
            apply_ok(router, &base()).await;
            assert_current(
                router,
                &base(),
                &format!("going back to a plain split from one with {capability}"),
            )
            .await;
        } else {
            let split = with_capability(with_all_claimed(router, one_step(router)), capability);
            assert_refused(router, &split, capability).await;
        }
    }
    let all = with_all_claimed(router, one_step(router));
    apply_ok(router, &all).await;
    assert_current(
        router,
        &all,
        "applying a split with everything the router claims",
    )
    .await;
    if all.routes().len() > 1 {
        let reordered = with_routes_reversed(&all);
        apply_ok(router, &reordered).await;
        assert_current(router, &reordered, "reordering its routes").await;
    }
    apply_ok(router, &base()).await;
    assert_current(
        router,
        &base(),
        "going back to a plain split from one with everything the router claims",
    )
    .await;
}
