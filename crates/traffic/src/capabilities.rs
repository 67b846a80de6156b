//! What a router can do: [`Capabilities`], and the [`Capability`] named when it cannot.
//!
//! Routers differ (a Service-selector switch moves all traffic at once, NGINX canary weights
//! are whole percents, header routing or mirroring exist only on some meshes). Each router states
//! what it supports, and a split that needs more is refused up front — before anything changes —
//! instead of being half applied.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::plan::Plan;
use crate::routes::MatchOn;
use crate::split::TrafficSplit;
use crate::weight::Weight;

/// One thing a router may or may not support.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub enum Capability {
    /// Weights (or a mirror's share) finer than the router's granularity.
    WeightGranularity,
    /// Header match routes.
    HeaderRouting,
    /// Cookie match routes.
    CookieRouting,
    /// Mirroring a share of requests to a shadow backend.
    Mirroring,
    /// Sticky sessions.
    StickySessions,
}

impl Capability {
    /// Every capability, in a stable order.
    pub const ALL: [Capability; 5] = [
        Capability::WeightGranularity,
        Capability::HeaderRouting,
        Capability::CookieRouting,
        Capability::Mirroring,
        Capability::StickySessions,
    ];
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Capability::WeightGranularity => "weights this fine",
            Capability::HeaderRouting => "header routing",
            Capability::CookieRouting => "cookie routing",
            Capability::Mirroring => "mirroring",
            Capability::StickySessions => "sticky sessions",
        })
    }
}

/// What a router supports.
///
/// Start from [`Capabilities::full`], [`Capabilities::weights_only`] or
/// [`Capabilities::switch_only`] and adjust with the `with_*` methods.
///
/// ```
/// use serin_traffic::{Capabilities, Capability, Error, TrafficSplit, Weight};
///
/// // NGINX-like: whole-percent weights, no mirroring.
/// let caps = Capabilities::weights_only().with_weight_granularity(Weight::from_percent(1)?)?;
/// let fine = TrafficSplit::new([("stable", Weight::from_bps(9_950)?), ("canary", Weight::from_bps(50)?)])?;
/// let err = caps.check(&fine, "nginx").unwrap_err();
/// assert!(matches!(err, Error::Unsupported { capability: Capability::WeightGranularity, .. }));
/// caps.check(&TrafficSplit::from_percents([("stable", 99), ("canary", 1)])?, "nginx")?;
/// # Ok::<(), serin_traffic::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Capabilities {
    weight_granularity: Weight,
    header_routing: bool,
    cookie_routing: bool,
    mirroring: bool,
    sticky_sessions: bool,
}

impl Capabilities {
    /// Everything: weights to the basis point, header and cookie routes, mirroring, sticky
    /// sessions.
    pub const fn full() -> Self {
        Capabilities {
            weight_granularity: Weight::ONE_BPS,
            header_routing: true,
            cookie_routing: true,
            mirroring: true,
            sticky_sessions: true,
        }
    }

    /// Weights to the basis point and nothing else (a plain weighted load balancer).
    pub const fn weights_only() -> Self {
        Capabilities {
            weight_granularity: Weight::ONE_BPS,
            header_routing: false,
            cookie_routing: false,
            mirroring: false,
            sticky_sessions: false,
        }
    }

    /// All-or-nothing switching (granularity 100%), as a Kubernetes Service-selector switch does.
    pub const fn switch_only() -> Self {
        Capabilities {
            weight_granularity: Weight::FULL,
            ..Self::weights_only()
        }
    }

    /// The smallest step of weight the router can express; every weight of a split, and the
    /// share a mirror copies, must be a multiple of it. Must be more than zero and divide 100%
    /// evenly (1 bps, 1%, 5%, 100%, ...). [`Plan::shift_with_granularity`] builds plans whose
    /// every weight is a multiple of it.
    pub fn with_weight_granularity(mut self, granularity: Weight) -> Result<Self> {
        self.weight_granularity = granularity.as_granularity("weightGranularity")?;
        Ok(self)
    }

    /// Whether header match routes are supported.
    pub const fn with_header_routing(mut self, yes: bool) -> Self {
        self.header_routing = yes;
        self
    }

    /// Whether cookie match routes are supported.
    pub const fn with_cookie_routing(mut self, yes: bool) -> Self {
        self.cookie_routing = yes;
        self
    }

    /// Whether mirroring is supported.
    pub const fn with_mirroring(mut self, yes: bool) -> Self {
        self.mirroring = yes;
        self
    }

    /// Whether sticky sessions are supported.
    pub const fn with_sticky_sessions(mut self, yes: bool) -> Self {
        self.sticky_sessions = yes;
        self
    }

    /// The smallest step of weight.
    pub const fn weight_granularity(&self) -> Weight {
        self.weight_granularity
    }

    /// Whether header match routes are supported.
    pub const fn header_routing(&self) -> bool {
        self.header_routing
    }

    /// Whether cookie match routes are supported.
    pub const fn cookie_routing(&self) -> bool {
        self.cookie_routing
    }

    /// Whether mirroring is supported.
    pub const fn mirroring(&self) -> bool {
        self.mirroring
    }

    /// Whether sticky sessions are supported.
    pub const fn sticky_sessions(&self) -> bool {
        self.sticky_sessions
    }

    /// Whether `capability` is supported at all (weights always are, at some granularity).
    pub const fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::WeightGranularity => true,
            Capability::HeaderRouting => self.header_routing,
            Capability::CookieRouting => self.cookie_routing,
            Capability::Mirroring => self.mirroring,
            Capability::StickySessions => self.sticky_sessions,
        }
    }

    /// Checks that a router with these capabilities can apply `split` exactly; otherwise returns
    /// [`Error::Unsupported`] naming `router`, the missing capability and the part of the split
    /// that needs it. Routers call this before changing anything.
    pub fn check(&self, split: &TrafficSplit, router: &str) -> Result<()> {
        let unsupported = |capability, reason: String| Error::Unsupported {
            capability,
            router: router.to_owned(),
            reason,
        };
        let step = self.weight_granularity.bps().max(1);
        if let Some(b) = split
            .backends()
            .iter()
            .find(|b| b.weight().bps() % step != 0)
        {
            return Err(unsupported(
                Capability::WeightGranularity,
                format!(
                    "backend {}'s weight {} is not a multiple of {}",
                    b.name(),
                    b.weight(),
                    self.weight_granularity
                ),
            ));
        }
        for r in split.routes() {
            let (capability, ok) = match r.on() {
                MatchOn::Header => (Capability::HeaderRouting, self.header_routing),
                MatchOn::Cookie => (Capability::CookieRouting, self.cookie_routing),
            };
            if !ok {
                return Err(unsupported(capability, format!("the split routes {r}")));
            }
        }
        if let Some(m) = split.mirror() {
            if !self.mirroring {
                return Err(unsupported(
                    Capability::Mirroring,
                    format!("the split asks to {m}"),
                ));
            }
            // A router picks the requests it mirrors with the same sampler as the ones it
            // weights, so the share is held to the same granularity: rounding it would copy
            // more (or less) traffic than asked to a backend that may not take the load.
            if m.percent().bps() % step != 0 {
                return Err(unsupported(
                    Capability::WeightGranularity,
                    format!(
                        "the mirror's share {} to {} is not a multiple of {}",
                        m.percent(),
                        m.backend(),
                        self.weight_granularity
                    ),
                ));
            }
        }
        if let (Some(s), false) = (split.sticky(), self.sticky_sessions) {
            return Err(unsupported(
                Capability::StickySessions,
                format!("the split asks for a {s}"),
            ));
        }
        Ok(())
    }

    /// Checks every split `plan` may ask a router to apply — each step, and the split a
    /// rollback applies (the starting weights and sticky sessions, without match routes and
    /// mirror: see [`Plan::rollback`]) — so a plan the router cannot follow is refused before its
    /// first step rather than halfway. The error's reason names the step.
    pub fn check_plan(&self, plan: &Plan, router: &str) -> Result<()> {
        let at = |place: String, e: Error| match e {
            Error::Unsupported {
                capability,
                router,
                reason,
            } => Error::Unsupported {
                capability,
                router,
                reason: format!("{place}: {reason}"),
            },
            other => other,
        };
        self.check(plan.rollback().target(), router)
            .map_err(|e| at("the rollback target".to_owned(), e))?;
        for (i, step) in plan.steps().iter().enumerate() {
            self.check(step.split(), router)
                .map_err(|e| at(format!("step {i}"), e))?;
        }
        Ok(())
    }
}

impl Default for Capabilities {
    /// [`Capabilities::full`].
    fn default() -> Self {
        Self::full()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::routes::{MatchRoute, Mirror, StickySession, ValueMatch};

    fn capability_of(e: Error) -> Capability {
        match e {
            Error::Unsupported { capability, .. } => capability,
            other => panic!("expected Unsupported, got {other:?}"),
        }
    }

    #[test]
    fn plans_are_checked_step_by_step() {
        use crate::strategy::Strategy;
        let from = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let gradual =
            Strategy::gradual(Weight::from_percent(10).unwrap(), Duration::from_secs(1)).unwrap();
        let plan = Plan::shift(&from, "canary", &gradual).unwrap();
        Capabilities::weights_only()
            .check_plan(&plan, "lb")
            .unwrap();
        let e = Capabilities::switch_only()
            .check_plan(&plan, "svc")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("step 0: backend stable's weight 90%"),
            "{e}"
        );
        let immediate = Plan::shift(&from, "canary", &Strategy::immediate()).unwrap();
        Capabilities::switch_only()
            .check_plan(&immediate, "svc")
            .unwrap();
        let sticky_from = from
            .clone()
            .with_sticky(StickySession::new("s", Duration::from_secs(1)).unwrap());
        let plan = Plan::shift(&sticky_from, "canary", &Strategy::immediate()).unwrap();
        let e = Capabilities::weights_only()
            .check_plan(&plan, "lb")
            .unwrap_err();
        assert!(e.to_string().contains("rollback target"), "{e}");
    }

    /// A rollback drops the starting split's match routes and mirror, so a router without
    /// them can follow a plan whose steps never carry them (an immediate switch).
    #[test]
    fn the_rollback_target_is_checked_as_a_rollback_applies_it() {
        use crate::strategy::Strategy;
        let from = TrafficSplit::all_to("stable", &["canary"])
            .unwrap()
            .with_route(
                MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary")
                    .unwrap(),
            )
            .unwrap()
            .with_mirror(Mirror::new("canary", Weight::from_percent(10).unwrap()).unwrap());
        let plan = Plan::shift(&from, "canary", &Strategy::immediate()).unwrap();
        Capabilities::weights_only()
            .check_plan(&plan, "lb")
            .unwrap();
        let gradual =
            Strategy::gradual(Weight::from_percent(50).unwrap(), Duration::from_secs(1)).unwrap();
        let plan = Plan::shift(&from, "canary", &gradual).unwrap();
        let e = Capabilities::weights_only()
            .check_plan(&plan, "lb")
            .unwrap_err();
        assert!(e.to_string().contains("step 0: the split routes"), "{e}");
    }

    #[test]
    fn a_mirror_share_finer_than_the_granularity_is_refused() {
        let whole_percent = Capabilities::full()
            .with_weight_granularity(Weight::from_percent(1).unwrap())
            .unwrap();
        let base = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        let fine = base
            .clone()
            .with_mirror(Mirror::new("shadow", Weight::from_bps(1_250).unwrap()).unwrap());
        let e = whole_percent.check(&fine, "nginx").unwrap_err();
        assert!(
            e.to_string()
                .contains("the mirror's share 12.5% to shadow is not a multiple of 1%"),
            "{e}"
        );
        assert_eq!(capability_of(e), Capability::WeightGranularity);
        Capabilities::full().check(&fine, "mesh").unwrap();
        let whole =
            base.with_mirror(Mirror::new("shadow", Weight::from_percent(12).unwrap()).unwrap());
        whole_percent.check(&whole, "nginx").unwrap();
        // A router without mirroring names mirroring, whatever the share.
        let e = Capabilities::weights_only()
            .with_weight_granularity(Weight::from_percent(1).unwrap())
            .unwrap()
            .check(&fine, "lb")
            .unwrap_err();
        assert_eq!(capability_of(e), Capability::Mirroring);
    }

    #[test]
    fn granularity_must_divide_full() {
        assert!(
            Capabilities::full()
                .with_weight_granularity(Weight::ZERO)
                .is_err()
        );
        assert!(
            Capabilities::full()
                .with_weight_granularity(Weight::from_percent(3).unwrap())
                .is_err()
        );
        assert!(
            Capabilities::full()
                .with_weight_granularity(Weight::from_percent(5).unwrap())
                .is_ok()
        );
    }

    #[test]
    fn each_missing_capability_is_named() {
        let base = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        let header = base
            .clone()
            .with_route(MatchRoute::header("x-c", ValueMatch::Exact("1".into()), "canary").unwrap())
            .unwrap();
        let cookie = base
            .clone()
            .with_route(MatchRoute::cookie("c", ValueMatch::Exact("1".into()), "canary").unwrap())
            .unwrap();
        let mirror = base
            .clone()
            .with_mirror(Mirror::new("shadow", Weight::from_percent(5).unwrap()).unwrap());
        let sticky = base
            .clone()
            .with_sticky(StickySession::new("s", Duration::from_secs(1)).unwrap());
        let none = Capabilities::weights_only();
        for (split, cap) in [
            (&header, Capability::HeaderRouting),
            (&cookie, Capability::CookieRouting),
            (&mirror, Capability::Mirroring),
            (&sticky, Capability::StickySessions),
        ] {
            let e = none.check(split, "lb").unwrap_err();
            assert!(e.to_string().contains("router `lb`"), "{e}");
            assert_eq!(capability_of(e), cap);
            Capabilities::full().check(split, "mesh").unwrap();
        }
        let e = Capabilities::switch_only().check(&base, "svc").unwrap_err();
        assert_eq!(capability_of(e), Capability::WeightGranularity);
        Capabilities::switch_only()
            .check(&TrafficSplit::all_to("canary", &["stable"]).unwrap(), "svc")
            .unwrap();
    }
}
