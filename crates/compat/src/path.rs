//! Upgrade-path planning over a graph of releases.
//!
//! Modelled on OpenShift's update graph: a node is a release, an edge an upgrade that is
//! *allowed* or *conditional* (it carries risks to read first). *Blocked* edges are removed and
//! remembered, so an unreachable target can be explained. *Required stops* ("every route into
//! 8.x passes 7.17") remove every edge that enters the guarded set from outside it without
//! coming from a stop. The shortest route prefers allowed edges: a conditional edge costs as
//! much as [`CONDITIONAL_COST`] hops.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use semver::Version;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::selector::{Selector, version_serde};

/// What a conditional edge costs, in hops, when searching for the shortest route.
pub const CONDITIONAL_COST: u64 = 1_000;

/// A known risk of a conditional edge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Risk {
    /// Short name (`CacheCorruption`).
    pub name: String,
    /// What can go wrong and who is affected.
    pub message: String,
    /// Where to read more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// Upgrade edges from every `from` release to every higher `to` release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EdgeSpec {
    /// Source releases.
    pub from: Selector,
    /// Target releases.
    pub to: Selector,
}

/// Edges removed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BlockedSpec {
    /// Source releases.
    pub from: Selector,
    /// Target releases.
    pub to: Selector,
    /// Why.
    pub reason: String,
}

/// Existing edges that become conditional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConditionalSpec {
    /// Source releases.
    pub from: Selector,
    /// Target releases.
    pub to: Selector,
    /// The risks (at least one).
    pub risks: Vec<Risk>,
}

/// Every route that enters `into` from outside it comes from a `stop` release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RequiredStop {
    /// A name for messages (`7.17 before 8.x`).
    pub name: String,
    /// The stop releases (`7.17.*`).
    pub stop: Selector,
    /// The releases guarded by the stop (`>=8.0.0`).
    pub into: Selector,
}

/// The serialized form of a graph.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GraphSpec {
    /// The releases; when the graph belongs to a registry service, its releases are added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<ReleaseName>,
    /// Allowed edges.
    #[serde(default)]
    pub edges: Vec<EdgeSpec>,
    /// Blocked edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocked: Vec<BlockedSpec>,
    /// Conditional edges.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditional: Vec<ConditionalSpec>,
    /// Required stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_stops: Vec<RequiredStop>,
}

/// A release version in a [`GraphSpec`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReleaseName(#[serde(with = "version_serde")] pub Version);

/// The state of an edge that survived filtering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum EdgeState {
    /// Recommended.
    Allowed,
    /// Possible, with risks.
    Conditional(Vec<Risk>),
}

/// The risks met on one hop of a path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HopRisk {
    /// From.
    pub from: Version,
    /// To.
    pub to: Version,
    /// The risks.
    pub risks: Vec<Risk>,
}

/// A route from a release to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradePath {
    /// Where it starts.
    pub from: Version,
    /// Each release deployed in turn; the last is the target. Empty when already there.
    pub hops: Vec<Version>,
    /// The hops that are required stops.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stops: Vec<Version>,
    /// Conditional hops and their risks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub risks: Vec<HopRisk>,
}

impl fmt::Display for UpgradePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.from)?;
        for hop in &self.hops {
            write!(f, " -> {hop}")?;
        }
        if !self.stops.is_empty() {
            let stops: Vec<String> = self.stops.iter().map(ToString::to_string).collect();
            write!(f, " (required stops: {})", stops.join(", "))?;
        }
        for r in &self.risks {
            let names: Vec<&str> = r.risks.iter().map(|x| x.name.as_str()).collect();
            write!(f, " (risk on {} -> {}: {})", r.from, r.to, names.join(", "))?;
        }
        Ok(())
    }
}

/// The answer to a path query.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Route {
    /// A route exists.
    Found(UpgradePath),
    /// None does, and why.
    NoRoute(Explanation),
}

/// How to search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathOptions {
    /// Whether conditional edges may be used (they still cost more than allowed ones).
    pub accept_conditional: bool,
}

impl Default for PathOptions {
    fn default() -> Self {
        Self {
            accept_conditional: true,
        }
    }
}

/// A release graph, ready for queries.
#[derive(Debug, Clone)]
pub struct UpgradeGraph {
    graph: DiGraph<Version, EdgeState>,
    /// Outgoing edges per node as (target, conditional?), contiguous for fast queries.
    adjacency: Vec<Vec<(u32, bool)>>,
    index: HashMap<Version, NodeIndex>,
    removed: HashMap<Version, Vec<(Version, String)>>,
    stops: Vec<RequiredStop>,
}

/// Collects releases and edges, then filters and checks them in [`GraphBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct GraphBuilder {
    releases: BTreeSet<Version>,
    exact: Vec<(Version, Version)>,
    spec: GraphSpec,
}

impl GraphBuilder {
    /// Adds a release.
    #[must_use]
    pub fn release(mut self, version: Version) -> Self {
        self.releases.insert(version);
        self
    }

    /// Adds releases.
    #[must_use]
    pub fn releases(mut self, versions: impl IntoIterator<Item = Version>) -> Self {
        self.releases.extend(versions);
        self
    }

    /// Adds one allowed edge between two releases.
    #[must_use]
    pub fn edge(mut self, from: Version, to: Version) -> Self {
        self.exact.push((from, to));
        self
    }

    /// Adds allowed edges from every `from` release to every higher `to` release.
    #[must_use]
    pub fn edges(mut self, from: Selector, to: Selector) -> Self {
        self.spec.edges.push(EdgeSpec { from, to });
        self
    }

    /// Blocks edges.
    #[must_use]
    pub fn block(mut self, from: Selector, to: Selector, reason: impl Into<String>) -> Self {
        self.spec.blocked.push(BlockedSpec {
            from,
            to,
            reason: reason.into(),
        });
        self
    }

    /// Makes edges conditional.
    #[must_use]
    pub fn conditional(mut self, from: Selector, to: Selector, risks: Vec<Risk>) -> Self {
        self.spec
            .conditional
            .push(ConditionalSpec { from, to, risks });
        self
    }

    /// Adds a required stop.
    #[must_use]
    pub fn required_stop(mut self, stop: RequiredStop) -> Self {
        self.spec.required_stops.push(stop);
        self
    }

    /// Starts from a serialized spec.
    pub fn from_spec(spec: GraphSpec) -> Self {
        let releases = spec.releases.iter().map(|r| r.0.clone()).collect();
        Self {
            releases,
            exact: Vec::new(),
            spec,
        }
    }

    /// Builds the graph; `path` names it in errors (`graphs.elasticsearch`).
    pub fn build(self, path: &str) -> Result<UpgradeGraph> {
        let mut edges: BTreeMap<(Version, Version), EdgeState> = BTreeMap::new();
        for (i, (from, to)) in self.exact.into_iter().enumerate() {
            for v in [&from, &to] {
                if !self.releases.contains(v) {
                    return Err(Error::InvalidValue {
                        path: format!("{path}.edges[{i}]"),
                        value: v.to_string(),
                        reason: "the edge names a release the graph does not have".into(),
                    });
                }
            }
            if from == to {
                return Err(Error::InvalidValue {
                    path: format!("{path}.edges[{i}]"),
                    value: from.to_string(),
                    reason: "an edge must lead to another release".into(),
                });
            }
            edges.insert((from, to), EdgeState::Allowed);
        }
        let releases: Vec<&Version> = self.releases.iter().collect();
        let matching = |sel: &Selector| -> Vec<&Version> {
            match sel {
                Selector::Exact(v) => releases.iter().copied().filter(|r| *r == v).collect(),
                other => releases
                    .iter()
                    .copied()
                    .filter(|r| other.matches(r))
                    .collect(),
            }
        };
        for (i, spec) in self.spec.edges.iter().enumerate() {
            let (froms, tos) = (matching(&spec.from), matching(&spec.to));
            if froms.is_empty() || tos.is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.edges[{i}]"),
                    value: format!("{} -> {}", spec.from, spec.to),
                    reason: "matches no release on one side".into(),
                });
            }
            for f in &froms {
                for t in tos.iter().filter(|t| **t > *f) {
                    edges.insert(((*f).clone(), (*t).clone()), EdgeState::Allowed);
                }
            }
        }
        for (i, spec) in self.spec.conditional.iter().enumerate() {
            if spec.risks.is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.conditional[{i}].risks"),
                    value: "[]".into(),
                    reason: "a conditional edge names at least one risk".into(),
                });
            }
            for ((f, t), state) in edges.iter_mut() {
                if spec.from.matches(f) && spec.to.matches(t) {
                    match state {
                        EdgeState::Allowed => *state = EdgeState::Conditional(spec.risks.clone()),
                        EdgeState::Conditional(r) => r.extend(spec.risks.iter().cloned()),
                    }
                }
            }
        }
        let mut removed: HashMap<Version, Vec<(Version, String)>> = HashMap::new();
        edges.retain(|(f, t), _| {
            for b in &self.spec.blocked {
                if b.from.matches(f) && b.to.matches(t) {
                    removed
                        .entry(t.clone())
                        .or_default()
                        .push((f.clone(), format!("blocked: {}", b.reason)));
                    return false;
                }
            }
            for s in &self.spec.required_stops {
                if s.into.matches(t) && !s.into.matches(f) && !s.stop.matches(f) {
                    removed.entry(t.clone()).or_default().push((
                        f.clone(),
                        format!(
                            "it would skip the required stop {:?} (routes into {} pass {})",
                            s.name, s.into, s.stop
                        ),
                    ));
                    return false;
                }
            }
            true
        });
        let mut graph = DiGraph::with_capacity(self.releases.len(), edges.len());
        let mut index = HashMap::with_capacity(self.releases.len());
        for v in &self.releases {
            index.insert(v.clone(), graph.add_node(v.clone()));
        }
        for ((f, t), state) in edges {
            if let (Some(&a), Some(&b)) = (index.get(&f), index.get(&t)) {
                graph.add_edge(a, b, state);
            }
        }
        if let Some(cycle) = tarjan_scc(&graph).into_iter().find(|c| c.len() > 1) {
            let mut names: Vec<String> = cycle.iter().map(|n| graph[*n].to_string()).collect();
            names.sort();
            if let Some(first) = names.first().cloned() {
                names.push(first);
            }
            return Err(Error::Cycle {
                path: path.to_owned(),
                cycle: names.join(" -> "),
            });
        }
        let mut adjacency = vec![Vec::new(); graph.node_count()];
        for e in graph.edge_references() {
            let conditional = matches!(e.weight(), EdgeState::Conditional(_));
            if let (Some(list), Ok(target)) = (
                adjacency.get_mut(e.source().index()),
                u32::try_from(e.target().index()),
            ) {
                list.push((target, conditional));
            }
        }
        Ok(UpgradeGraph {
            graph,
            adjacency,
            index,
            removed,
            stops: self.spec.required_stops,
        })
    }
}

impl UpgradeGraph {
    /// A builder.
    ///
    /// ```
    /// use serin_compat::path::{UpgradeGraph, PathOptions, Route, RequiredStop};
    /// let v = |s: &str| s.parse::<semver::Version>().unwrap();
    /// let graph = UpgradeGraph::builder()
    ///     .releases([v("7.10.0"), v("7.17.0"), v("8.0.0")])
    ///     .edges("*".parse().unwrap(), "*".parse().unwrap())
    ///     .required_stop(RequiredStop { name: "7.17".into(),
    ///         stop: "7.17.*".parse().unwrap(), into: ">=8.0.0".parse().unwrap() })
    ///     .build("graphs.es").unwrap();
    /// let Route::Found(path) = graph.route(&v("7.10.0"), &v("8.0.0"), PathOptions::default()).unwrap()
    ///     else { panic!() };
    /// assert_eq!(path.hops, vec![v("7.17.0"), v("8.0.0")]);
    /// ```
    pub fn builder() -> GraphBuilder {
        GraphBuilder::default()
    }

    /// Number of releases.
    pub fn release_count(&self) -> usize {
        self.graph.node_count()
    }

    /// Number of usable edges.
    pub fn edge_count(&self) -> usize {
        self.graph.edge_count()
    }

    /// Whether the graph holds the release.
    pub fn contains(&self, version: &Version) -> bool {
        self.index.contains_key(version)
    }

    /// The state of the edge `from -> to`, if it is usable.
    pub fn edge(&self, from: &Version, to: &Version) -> Option<&EdgeState> {
        let (a, b) = (self.index.get(from)?, self.index.get(to)?);
        let e = self.graph.find_edge(*a, *b)?;
        self.graph.edge_weight(e)
    }

    fn node(&self, v: &Version, what: &str) -> Result<NodeIndex> {
        self.index
            .get(v)
            .copied()
            .ok_or_else(|| Error::UnknownVersion {
                path: format!("route.{what}"),
                service: "(graph)".into(),
                version: v.to_string(),
            })
    }

    fn usable(state: &EdgeState, opts: PathOptions) -> Option<u64> {
        match state {
            EdgeState::Allowed => Some(1),
            EdgeState::Conditional(_) if opts.accept_conditional => Some(CONDITIONAL_COST),
            EdgeState::Conditional(_) => None,
        }
    }

    /// The cheapest route from `from` to `to`, or why there is none. Unknown releases are
    /// errors.
    pub fn route(&self, from: &Version, to: &Version, opts: PathOptions) -> Result<Route> {
        let (start, goal) = (self.node(from, "from")?, self.node(to, "to")?);
        if start == goal {
            return Ok(Route::Found(UpgradePath {
                from: from.clone(),
                hops: Vec::new(),
                stops: Vec::new(),
                risks: Vec::new(),
            }));
        }
        let n = self.graph.node_count();
        let mut dist = vec![u64::MAX; n];
        let mut prev: Vec<Option<NodeIndex>> = vec![None; n];
        let mut heap = BinaryHeap::new();
        dist[start.index()] = 0;
        heap.push(Reverse((0u64, start.index())));
        while let Some(Reverse((d, u))) = heap.pop() {
            if u == goal.index() {
                break;
            }
            if d > dist[u] {
                continue;
            }
            let Some(out) = self.adjacency.get(u) else {
                continue;
            };
            for &(target, conditional) in out {
                let w = match (conditional, opts.accept_conditional) {
                    (false, _) => 1,
                    (true, true) => CONDITIONAL_COST,
                    (true, false) => continue,
                };
                let v = target as usize;
                let nd = d.saturating_add(w);
                if nd < dist[v] {
                    dist[v] = nd;
                    prev[v] = Some(NodeIndex::new(u));
                    heap.push(Reverse((nd, v)));
                }
            }
        }
        if dist[goal.index()] == u64::MAX {
            return Ok(Route::NoRoute(self.explain(from, to, start, opts)));
        }
        let mut nodes = vec![goal];
        let mut cur = goal;
        while let Some(p) = prev[cur.index()] {
            nodes.push(p);
            cur = p;
        }
        nodes.reverse();
        let mut path = UpgradePath {
            from: from.clone(),
            hops: Vec::new(),
            stops: Vec::new(),
            risks: Vec::new(),
        };
        for pair in nodes.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            let (va, vb) = (&self.graph[a], &self.graph[b]);
            if let Some(EdgeState::Conditional(risks)) = self
                .graph
                .find_edge(a, b)
                .and_then(|e| self.graph.edge_weight(e))
            {
                path.risks.push(HopRisk {
                    from: va.clone(),
                    to: vb.clone(),
                    risks: risks.clone(),
                });
            }
            if vb != to && self.stops.iter().any(|s| s.stop.matches(vb)) {
                path.stops.push(vb.clone());
            }
            path.hops.push(vb.clone());
        }
        Ok(Route::Found(path))
    }

    fn reachable(&self, start: NodeIndex, opts: PathOptions) -> Vec<bool> {
        let mut seen = vec![false; self.graph.node_count()];
        let mut stack = vec![start];
        seen[start.index()] = true;
        while let Some(u) = stack.pop() {
            for e in self.graph.edges(u) {
                if Self::usable(e.weight(), opts).is_some() && !seen[e.target().index()] {
                    seen[e.target().index()] = true;
                    stack.push(e.target());
                }
            }
        }
        seen
    }

    fn explain(
        &self,
        from: &Version,
        to: &Version,
        start: NodeIndex,
        opts: PathOptions,
    ) -> Explanation {
        let seen = self.reachable(start, opts);
        let is_reached = |v: &Version| self.index.get(v).is_some_and(|n| seen[n.index()]);
        let mut e = Explanation::new(format!("{to} cannot be reached from {from}"));
        if to < from {
            e = e.fact(format!(
                "{to} is older than {from} and the graph only holds upgrades"
            ));
        }
        if let Some(list) = self.removed.get(to) {
            for (src, why) in list.iter().filter(|(src, _)| is_reached(src)) {
                e = e.fact(format!("the edge {src} -> {to} is unusable because {why}"));
            }
        }
        for s in self.stops.iter().filter(|s| s.into.matches(to)) {
            let stop_reached = self
                .index
                .iter()
                .any(|(v, n)| s.stop.matches(v) && seen[n.index()]);
            if !stop_reached && !s.into.matches(from) {
                e = e.fact(format!(
                    "no release of the required stop {:?} ({}) is reachable from {from}",
                    s.name, s.stop
                ));
            }
        }
        if !opts.accept_conditional
            && let Some(goal) = self.index.get(to)
        {
            for edge in self
                .graph
                .edges_directed(*goal, petgraph::Direction::Incoming)
            {
                if let EdgeState::Conditional(risks) = edge.weight() {
                    let src = &self.graph[edge.source()];
                    if seen[edge.source().index()] {
                        let names: Vec<&str> = risks.iter().map(|r| r.name.as_str()).collect();
                        e = e.fact(format!(
                            "the edge {src} -> {to} is conditional ({}) and conditional edges \
                             were not accepted",
                            names.join(", ")
                        ));
                    }
                }
            }
        }
        if e.because.is_empty() {
            let count = seen.iter().filter(|s| **s).count();
            e = e.fact(format!(
                "none of the {count} release(s) reachable from {from} has an upgrade edge to {to}"
            ));
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }
    fn sel(s: &str) -> Selector {
        Selector::parse(s, "test").unwrap()
    }

    fn es() -> UpgradeGraph {
        UpgradeGraph::builder()
            .releases(["7.10.2", "7.16.3", "7.17.0", "7.17.25", "8.0.0", "8.15.0"].map(v))
            .edges(sel("*"), sel("*"))
            .required_stop(RequiredStop {
                name: "7.17 before 8".into(),
                stop: sel("7.17.*"),
                into: sel(">=8.0.0"),
            })
            .build("graphs.elasticsearch")
            .unwrap()
    }

    #[test]
    fn routes_through_required_stop() {
        let g = es();
        let Route::Found(p) = g
            .route(&v("7.10.2"), &v("8.15.0"), PathOptions::default())
            .unwrap()
        else {
            panic!("no route")
        };
        assert_eq!(p.hops.len(), 2);
        assert!(p.hops[0].major == 7 && p.hops[0].minor == 17);
        assert_eq!(p.stops, vec![p.hops[0].clone()]);
        assert!(g.edge(&v("7.16.3"), &v("8.0.0")).is_none());
        assert!(g.edge(&v("7.17.0"), &v("8.0.0")).is_some());
    }

    #[test]
    fn blocked_edge_explained() {
        let g = UpgradeGraph::builder()
            .releases(["1.2.0", "1.3.0", "1.4.0"].map(v))
            .edge(v("1.2.0"), v("1.4.0"))
            .edge(v("1.3.0"), v("1.4.0"))
            .block(
                sel("1.2.0"),
                sel("1.4.0"),
                "data loss in the cache migration",
            )
            .build("g")
            .unwrap();
        let Route::NoRoute(e) = g
            .route(&v("1.2.0"), &v("1.4.0"), PathOptions::default())
            .unwrap()
        else {
            panic!("expected no route")
        };
        let text = e.to_string();
        assert!(
            text.contains("1.2.0 -> 1.4.0 is unusable because blocked: data loss"),
            "{text}"
        );
        assert!(text.contains("1.4.0 cannot be reached from 1.2.0"));
    }

    #[test]
    fn conditional_is_used_last_and_can_be_refused() {
        let risk = Risk {
            name: "CacheCorruption".into(),
            message: "caches may corrupt".into(),
            url: None,
        };
        let g = UpgradeGraph::builder()
            .releases(["1.0.0", "1.1.0", "1.2.0"].map(v))
            .edges(sel("*"), sel("*"))
            .conditional(sel("1.0.0"), sel("1.2.0"), vec![risk])
            .build("g")
            .unwrap();
        let Route::Found(p) = g
            .route(&v("1.0.0"), &v("1.2.0"), PathOptions::default())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(p.hops, vec![v("1.1.0"), v("1.2.0")]);
        assert!(p.risks.is_empty());
        let g2 = UpgradeGraph::builder()
            .releases(["1.0.0", "1.2.0"].map(v))
            .edges(sel("*"), sel("*"))
            .conditional(
                sel("*"),
                sel("*"),
                vec![Risk {
                    name: "R".into(),
                    message: "m".into(),
                    url: None,
                }],
            )
            .build("g")
            .unwrap();
        let Route::Found(p) = g2
            .route(&v("1.0.0"), &v("1.2.0"), PathOptions::default())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(p.risks.len(), 1);
        let strict = PathOptions {
            accept_conditional: false,
        };
        let Route::NoRoute(e) = g2.route(&v("1.0.0"), &v("1.2.0"), strict).unwrap() else {
            panic!()
        };
        assert!(e.to_string().contains("conditional"));
    }

    #[test]
    fn cycles_and_unknown_versions_are_errors() {
        let err = UpgradeGraph::builder()
            .releases(["1.0.0", "2.0.0"].map(v))
            .edge(v("1.0.0"), v("2.0.0"))
            .edge(v("2.0.0"), v("1.0.0"))
            .build("graphs.x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("graphs.x") && err.contains("1.0.0 -> 2.0.0 -> 1.0.0"),
            "{err}"
        );
        let g = es();
        assert!(
            g.route(&v("6.0.0"), &v("8.0.0"), PathOptions::default())
                .is_err()
        );
        let err = UpgradeGraph::builder()
            .release(v("1.0.0"))
            .edge(v("1.0.0"), v("3.0.0"))
            .build("g")
            .unwrap_err();
        assert!(err.to_string().contains("g.edges[0]"));
    }

    #[test]
    fn downgrade_has_no_route() {
        let g = es();
        let Route::NoRoute(e) = g
            .route(&v("8.0.0"), &v("7.17.0"), PathOptions::default())
            .unwrap()
        else {
            panic!()
        };
        assert!(e.to_string().contains("older"));
    }
}
