//! [`TrafficSplit`]: weights over named backends, plus optional match routes, a mirror and
//! sticky sessions.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::name::BackendName;
use crate::routes::{MatchRoute, Mirror, RawMirror, RawRoute, RawSticky, StickySession};
use crate::weight::{Percent, Weight};

/// One backend of a split and its share of traffic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BackendWeight {
    name: BackendName,
    weight: Weight,
}

impl BackendWeight {
    /// The backend.
    pub fn name(&self) -> &BackendName {
        &self.name
    }

    /// Its share of traffic.
    pub fn weight(&self) -> Weight {
        self.weight
    }
}

/// Where traffic goes: weights over named backends that always add up to exactly 100%
/// ([`Weight::FULL`], 10 000 basis points), optional [`MatchRoute`]s tried before the weights,
/// an optional [`Mirror`] and optional [`StickySession`]s.
///
/// A `TrafficSplit` is valid by construction — every constructor and the deserializer check it —
/// so a router never has to wonder whether the weights add up. Backends keep the order they were
/// given in (it is the order tables print them in); a backend may carry 0%, which keeps it known
/// to the router (e.g. draining) without traffic.
///
/// Serialized form (weights in percent):
///
/// ```
/// use serin_traffic::TrafficSplit;
///
/// let split: TrafficSplit = serde_json::from_str(r#"{
///     "backends": [{"name": "stable", "weight": 90}, {"name": "canary", "weight": 10}],
///     "routes": [{"header": "x-canary", "exact": "always", "backend": "canary"}],
///     "sticky": {"cookie": "serin-backend", "ttl": "1h"}
/// }"#)?;
/// assert_eq!(split, TrafficSplit::from_percents([("stable", 90), ("canary", 10)])?
///     .with_route(serin_traffic::MatchRoute::header(
///         "x-canary", serin_traffic::ValueMatch::Exact("always".into()), "canary")?)?
///     .with_sticky(serin_traffic::StickySession::new(
///         "serin-backend", std::time::Duration::from_secs(3600))?));
/// assert_eq!(split.to_string(),
///     "stable 90%, canary 10%; header x-canary=always -> canary; sticky cookie serin-backend for 1h");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "RawSplit", into = "RawSplit")]
pub struct TrafficSplit {
    backends: Vec<BackendWeight>,
    routes: Vec<MatchRoute>,
    mirror: Option<Mirror>,
    sticky: Option<StickySession>,
}

impl TrafficSplit {
    /// The most backends a split may name. Routers cap this too (Gateway API allows 16 backend
    /// references per rule); the cap also bounds the size of plans.
    pub const MAX_BACKENDS: usize = 64;
    /// The most match routes a split may hold.
    pub const MAX_ROUTES: usize = 64;

    /// A split over `backends`, each with its weight; names must be valid and unique and the
    /// weights must add up to exactly 100%.
    pub fn new<N: AsRef<str>>(backends: impl IntoIterator<Item = (N, Weight)>) -> Result<Self> {
        let mut out = Vec::new();
        for (i, (name, weight)) in backends.into_iter().enumerate() {
            let name = BackendName::named(&format!("backends[{i}].name"), name.as_ref())?;
            out.push(BackendWeight { name, weight });
        }
        Self::from_backends(out)
    }

    /// The same as [`TrafficSplit::new`] with whole percentages (`[("stable", 90), ("canary",
    /// 10)]`), as the brief writes them.
    pub fn from_percents<N: AsRef<str>>(
        backends: impl IntoIterator<Item = (N, u8)>,
    ) -> Result<Self> {
        let mut out = Vec::new();
        for (i, (name, percent)) in backends.into_iter().enumerate() {
            let name = BackendName::named(&format!("backends[{i}].name"), name.as_ref())?;
            let weight = Weight::from_percent_f64_named(
                &format!("backends[{i}].weight"),
                f64::from(percent),
            )?;
            out.push(BackendWeight { name, weight });
        }
        Self::from_backends(out)
    }

    /// All traffic to `backend`, the others listed at 0% (so a router keeps them known).
    pub fn all_to(backend: &str, others: &[&str]) -> Result<Self> {
        Self::new(
            std::iter::once((backend, Weight::FULL))
                .chain(others.iter().map(|o| (*o, Weight::ZERO))),
        )
    }

    fn from_backends(backends: Vec<BackendWeight>) -> Result<Self> {
        if backends.is_empty() {
            return Err(Error::invalid(
                "backends",
                "[]",
                "a split needs at least one backend",
            ));
        }
        if backends.len() > Self::MAX_BACKENDS {
            return Err(Error::invalid(
                "backends",
                format!("{} backends", backends.len()),
                format!("a split names at most {} backends", Self::MAX_BACKENDS),
            ));
        }
        for (i, b) in backends.iter().enumerate() {
            if let Some(j) = backends[..i].iter().position(|o| o.name == b.name) {
                return Err(Error::invalid(
                    format!("backends[{i}].name"),
                    &b.name,
                    format!("appears twice (also backends[{j}])"),
                ));
            }
        }
        let sum: u32 = backends.iter().map(|b| u32::from(b.weight.bps())).sum();
        if sum != u32::from(Weight::TOTAL_BPS) {
            let listed = backends
                .iter()
                .map(|b| format!("{} {}", b.name, b.weight))
                .collect::<Vec<_>>()
                .join(" + ");
            return Err(Error::InvalidSplit {
                field: String::new(),
                split: listed,
                reason: format!(
                    "weights add up to {sum} bps; they must add up to exactly 10000 bps (100%)"
                ),
            });
        }
        Ok(TrafficSplit {
            backends,
            routes: Vec::new(),
            mirror: None,
            sticky: None,
        })
    }

    /// This split with `route` appended (tried after the routes already present). The route's
    /// backend must be one of the split's backends.
    ///
    /// Takes the split by reference: a refused route leaves it with the caller, unchanged, to
    /// correct the route and try again.
    pub fn with_route(&self, route: MatchRoute) -> Result<Self> {
        let mut split = self.clone();
        split.push_route(route)?;
        Ok(split)
    }

    /// Appends `route`, or refuses it, naming the field, and changes nothing.
    fn push_route(&mut self, route: MatchRoute) -> Result<()> {
        let i = self.routes.len();
        if i >= Self::MAX_ROUTES {
            return Err(Error::invalid(
                format!("routes[{i}]"),
                &route,
                format!("a split holds at most {} routes", Self::MAX_ROUTES),
            ));
        }
        if !self.contains(route.backend().as_str()) {
            return Err(Error::invalid(
                format!("routes[{i}].backend"),
                route.backend(),
                format!("is not a backend of this split ({})", self.names()),
            ));
        }
        self.routes.push(route);
        Ok(())
    }

    /// This split with requests mirrored as `mirror` says (replacing any mirror).
    pub fn with_mirror(mut self, mirror: Mirror) -> Self {
        self.mirror = Some(mirror);
        self
    }

    /// This split with sticky sessions (replacing any).
    pub fn with_sticky(mut self, sticky: StickySession) -> Self {
        self.sticky = Some(sticky);
        self
    }

    /// The same weights without routes, mirror or sticky sessions.
    pub fn plain(&self) -> TrafficSplit {
        TrafficSplit {
            backends: self.backends.clone(),
            routes: Vec::new(),
            mirror: None,
            sticky: None,
        }
    }

    /// The same weights and sticky sessions without routes or mirror: what a plan leaves in
    /// force once it ends or is rolled back (see [`Plan::rollback`](crate::Plan::rollback)).
    pub(crate) fn without_routes_or_mirror(&self) -> TrafficSplit {
        TrafficSplit {
            sticky: self.sticky.clone(),
            ..self.plain()
        }
    }

    /// The backends with their weights, in order.
    pub fn backends(&self) -> &[BackendWeight] {
        &self.backends
    }

    /// The weight of `backend`, or `None` if the split does not name it.
    pub fn weight_of(&self, backend: &str) -> Option<Weight> {
        self.backends
            .iter()
            .find(|b| b.name.as_str() == backend)
            .map(|b| b.weight)
    }

    /// Whether the split names `backend` (with any weight, 0% included).
    pub fn contains(&self, backend: &str) -> bool {
        self.weight_of(backend).is_some()
    }

    /// The match routes, in the order they are tried.
    pub fn routes(&self) -> &[MatchRoute] {
        &self.routes
    }

    /// The mirror, if any.
    pub fn mirror(&self) -> Option<&Mirror> {
        self.mirror.as_ref()
    }

    /// The sticky sessions, if any.
    pub fn sticky(&self) -> Option<&StickySession> {
        self.sticky.as_ref()
    }

    /// Whether the split has nothing beside weights.
    pub fn is_plain(&self) -> bool {
        self.routes.is_empty() && self.mirror.is_none() && self.sticky.is_none()
    }

    /// The same split with new weights, in backend order; the caller guarantees they add up.
    pub(crate) fn reweighted(&self, weights: &[Weight]) -> Result<TrafficSplit> {
        let backends = self
            .backends
            .iter()
            .zip(weights)
            .map(|(b, w)| BackendWeight {
                name: b.name.clone(),
                weight: *w,
            })
            .collect();
        let mut out = Self::from_backends(backends)?;
        out.routes = self.routes.clone();
        out.mirror = self.mirror.clone();
        out.sticky = self.sticky.clone();
        Ok(out)
    }

    fn names(&self) -> String {
        self.backends
            .iter()
            .map(|b| b.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for TrafficSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.backends.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{} {}", b.name, b.weight)?;
        }
        for r in &self.routes {
            write!(f, "; {r}")?;
        }
        if let Some(m) = &self.mirror {
            write!(f, "; {m}")?;
        }
        if let Some(s) = &self.sticky {
            write!(f, "; {s}")?;
        }
        Ok(())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawBackend {
    name: String,
    weight: Percent,
}

/// A split as read from config, before it is checked; lets a containing type (a plan's steps)
/// name where it stands in its errors.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawSplit {
    backends: Vec<RawBackend>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<RawRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    mirror: Option<RawMirror>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sticky: Option<RawSticky>,
}

impl TryFrom<RawSplit> for TrafficSplit {
    type Error = Error;
    fn try_from(raw: RawSplit) -> Result<Self> {
        let mut backends = Vec::with_capacity(raw.backends.len().min(64));
        for (i, b) in raw.backends.into_iter().enumerate() {
            let name = BackendName::named(&format!("backends[{i}].name"), &b.name)?;
            let weight = b.weight.weight(&format!("backends[{i}].weight"))?;
            backends.push(BackendWeight { name, weight });
        }
        let mut split = Self::from_backends(backends)?;
        for (i, r) in raw.routes.into_iter().enumerate() {
            let route = MatchRoute::try_from(r).map_err(|e| e.within(&format!("routes[{i}]")))?;
            split.push_route(route)?;
        }
        if let Some(m) = raw.mirror {
            split.mirror = Some(Mirror::try_from(m).map_err(|e| e.within("mirror"))?);
        }
        if let Some(s) = raw.sticky {
            split.sticky = Some(StickySession::try_from(s).map_err(|e| e.within("sticky"))?);
        }
        Ok(split)
    }
}

impl From<TrafficSplit> for RawSplit {
    fn from(s: TrafficSplit) -> Self {
        RawSplit {
            backends: s
                .backends
                .into_iter()
                .map(|b| RawBackend {
                    name: b.name.into(),
                    weight: b.weight.into(),
                })
                .collect(),
            routes: s.routes.into_iter().map(Into::into).collect(),
            mirror: s.mirror.map(Into::into),
            sticky: s.sticky.map(Into::into),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::routes::ValueMatch;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidField { field, .. } => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn weights_must_add_up_exactly() {
        let ok = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
        assert_eq!(
            ok.weight_of("canary"),
            Some(Weight::from_percent(10).unwrap())
        );
        assert_eq!(ok.weight_of("green"), None);
        let err = TrafficSplit::from_percents([("stable", 90), ("canary", 20)]).unwrap_err();
        assert!(matches!(err, Error::InvalidSplit { .. }), "{err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains("stable 90% + canary 20%") && msg.contains("11000"),
            "{msg}"
        );
        assert!(TrafficSplit::from_percents([("stable", 50)]).is_err());
        let odd = TrafficSplit::new([
            ("a", Weight::from_bps(3333).unwrap()),
            ("b", Weight::from_bps(3333).unwrap()),
            ("c", Weight::from_bps(3334).unwrap()),
        ]);
        assert!(odd.is_ok());
    }

    #[test]
    fn names_are_checked_and_unique() {
        let e = TrafficSplit::from_percents([("stable", 50), ("Canary", 50)]).unwrap_err();
        assert_eq!(field_of(e), "backends[1].name");
        let e = TrafficSplit::from_percents([("stable", 50), ("stable", 50)]).unwrap_err();
        assert!(e.to_string().contains("appears twice"), "{e}");
        assert_eq!(field_of(e), "backends[1].name");
        let e = TrafficSplit::new(Vec::<(&str, Weight)>::new()).unwrap_err();
        assert_eq!(field_of(e), "backends");
        let names: Vec<String> = (0..=TrafficSplit::MAX_BACKENDS)
            .map(|i| format!("b{i}"))
            .collect();
        let many = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), if i == 0 { Weight::FULL } else { Weight::ZERO }));
        let e = TrafficSplit::new(many).unwrap_err();
        assert!(e.to_string().contains("at most 64 backends"), "{e}");
        assert_eq!(field_of(e), "backends");
    }

    #[test]
    fn routes_must_name_a_backend_of_the_split() {
        let split = TrafficSplit::all_to("stable", &["canary"]).unwrap();
        let route =
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "green").unwrap();
        let e = split.clone().with_route(route).unwrap_err();
        assert!(e.to_string().contains("stable, canary"), "{e}");
        assert_eq!(field_of(e), "routes[0].backend");

        let route =
            MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), "canary").unwrap();
        let mut full = split;
        for _ in 0..TrafficSplit::MAX_ROUTES {
            full = full.with_route(route.clone()).unwrap();
        }
        let e = full.with_route(route).unwrap_err();
        assert_eq!(field_of(e), "routes[64]");
    }

    #[test]
    fn a_refused_route_leaves_the_split_with_the_caller() {
        let split = TrafficSplit::all_to("stable", &["canary"])
            .unwrap()
            .with_route(MatchRoute::header("x-a", ValueMatch::Exact("1".into()), "canary").unwrap())
            .unwrap();
        let stray = MatchRoute::header("x-b", ValueMatch::Exact("1".into()), "green").unwrap();
        let e = split.with_route(stray).unwrap_err();
        assert_eq!(field_of(e), "routes[1].backend");
        // The split is unchanged and still the caller's, to fix the route and go on.
        assert_eq!(split.routes().len(), 1);
        let fixed = MatchRoute::header("x-b", ValueMatch::Exact("1".into()), "canary").unwrap();
        assert_eq!(split.with_route(fixed).unwrap().routes().len(), 2);
    }

    #[test]
    fn serde_round_trips_and_names_paths() {
        let split = TrafficSplit::from_percents([("stable", 95), ("canary", 5)])
            .unwrap()
            .with_route(
                MatchRoute::cookie("beta", ValueMatch::Prefix("y".into()), "canary").unwrap(),
            )
            .unwrap()
            .with_mirror(Mirror::new("shadow", Weight::from_percent(20).unwrap()).unwrap())
            .with_sticky(StickySession::new("s", Duration::from_secs(60)).unwrap());
        let json = serde_json::to_string(&split).unwrap();
        assert_eq!(serde_json::from_str::<TrafficSplit>(&json).unwrap(), split);
        assert!(json.contains(r#""weight":95"#), "{json}");

        for (json, needle) in [
            (
                r#"{"backends":[{"name":"a","weight":50},{"name":"b","weight":40}]}"#,
                "10000",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100.001}]}"#,
                "backends[0].weight",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100}],"routes":[{"header":"h h","exact":"x","backend":"a"}]}"#,
                "routes[0].header",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100}],"routes":[{"header":"h","exact":"x","backend":"b"}]}"#,
                "routes[0].backend",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100}],"mirror":{"backend":"s","percent":0}}"#,
                "mirror.percent",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100}],"sticky":{"cookie":"c","ttl":"0s"}}"#,
                "sticky.ttl",
            ),
            (
                r#"{"backends":[{"name":"a","weight":100}],"extra":1}"#,
                "extra",
            ),
            (r#"{"backends":[]}"#, "at least one backend"),
        ] {
            let msg = serde_json::from_str::<TrafficSplit>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(needle), "{json}: {msg}");
        }
    }
}
