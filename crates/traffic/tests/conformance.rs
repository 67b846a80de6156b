//! The conformance suite as a router written outside this crate uses it (feature `testkit`):
//! an honest router passes, and routers that break the contract are caught.
#![cfg(feature = "testkit")]

use std::sync::Mutex;

use async_trait::async_trait;
use serin_traffic::{
    Capabilities, Error, InMemoryRouter, Result, TrafficRouter, TrafficSplit, Weight, testkit,
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
    /// Adds the routes of a split but never removes them, so a plain split keeps the old ones.
    KeepsOldRoutes,
    /// Claims mirroring and whole-percent weights, but checks only the weights: a mirror
    /// share finer than a whole percent goes through.
    IgnoresMirrorShare,
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
        match self.flaw {
            Flaw::IgnoresGranularity => {}
            Flaw::IgnoresMirrorShare => self.caps.check(&split.plain(), self.name())?,
            _ => self.caps.check(split, self.name())?,
        }
        let kept = match (self.flaw, stored.as_ref()) {
            (Flaw::KeepsOldRoutes, Some(old)) if split.routes().is_empty() => {
                old.routes()
                    .iter()
                    .try_fold(split.clone(), |s, r| s.with_route(r.clone()))?
            }
            _ => split.clone(),
        };
        *stored = Some(if self.flaw == Flaw::DropsRoutes {
            split.plain()
        } else {
            kept
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
