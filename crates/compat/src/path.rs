//! Upgrade-path planning over a graph of releases.
//!
//! Modelled on OpenShift's update graph: a node is a release, an edge an upgrade that is
//! *allowed* or *conditional* (it carries risks to read first). *Blocked* edges are removed,
//! and the explanation of an unreachable target names the block. *Required stops* ("every route
//! into 8.x passes 7.17") remove every edge that enters the guarded set from outside it without
//! coming from a stop. The shortest route prefers allowed edges: a conditional edge costs as
//! much as [`CONDITIONAL_COST`] hops.
//!
//! Edges are decided from the rules as a search reaches them, never stored (see
//! [`UpgradeGraph`]: `* -> *` over a long release history is tens of millions of edges), so
//! the search is written here rather than taken from petgraph, whose algorithms walk stored
//! edges.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::fmt;

use fixedbitset::FixedBitSet;

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
///
/// Both sides read a pre-release as the release it leads to, so that a release candidate is
/// guarded as its release is: `into: ">=8.0.0"` covers `8.0.0-rc.1` (which semver's own rules
/// leave out of that range), and `stop: "7.17.*"` covers `7.17.1-rc.1`.
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
    /// Allowed edges. Each side of an edge, a block or a conditional edge must match a
    /// release; a rule that could never apply is refused.
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

/// Which releases, by their place in the graph's ascending order, a selector matches.
type Matches = FixedBitSet;

/// The rules of one kind, each with the releases its target side matches, found by source: a
/// release's list holds the rules whose source side matches it, in the spec's order, so that
/// deciding an edge reads only the rules that may cover it (a spec may block hundreds of single
/// upgrades).
#[derive(Debug, Clone)]
struct Rules<T> {
    rules: Vec<(Matches, T)>,
    by_source: Vec<Vec<usize>>,
}

impl<T> Rules<T> {
    fn new(releases: usize) -> Self {
        Rules {
            rules: Vec::new(),
            by_source: vec![Vec::new(); releases],
        }
    }

    fn push(&mut self, from: &Matches, to: Matches, what: T) {
        let k = self.rules.len();
        for a in from.ones() {
            self.by_source[a].push(k);
        }
        self.rules.push((to, what));
    }

    /// The targets of the rules whose source side matches `a`, added to `set`.
    fn add_targets(&self, a: usize, set: &mut FixedBitSet) {
        for (to, _) in self.by_source[a].iter().filter_map(|k| self.rules.get(*k)) {
            set.union_with(to);
        }
    }

    /// The same, taken from `set`.
    fn remove_targets(&self, a: usize, set: &mut FixedBitSet) {
        for (to, _) in self.by_source[a].iter().filter_map(|k| self.rules.get(*k)) {
            set.difference_with(to);
        }
    }

    /// The rules that cover the edge `a -> b`, in the spec's order.
    fn covering(&self, a: usize, b: usize) -> impl Iterator<Item = &T> {
        self.by_source[a]
            .iter()
            .filter_map(|k| self.rules.get(*k))
            .filter(move |(to, _)| to[b])
            .map(|(_, what)| what)
    }

    fn any_into(&self, b: usize) -> bool {
        self.rules.iter().any(|(to, _)| to[b])
    }
}

/// The usable edges from one release, as sets of targets.
#[derive(Debug, Clone)]
struct Targets {
    allowed: FixedBitSet,
    conditional: FixedBitSet,
}

impl Targets {
    fn new(releases: usize) -> Self {
        Targets {
            allowed: FixedBitSet::with_capacity(releases),
            conditional: FixedBitSet::with_capacity(releases),
        }
    }
}

/// A required stop, with the releases it guards and its stops.
#[derive(Debug, Clone)]
struct StopRule {
    spec: RequiredStop,
    stop: Matches,
    into: Matches,
}

impl StopRule {
    /// Whether the edge `a -> b` enters the guarded releases from outside without a stop.
    fn skipped_by(&self, a: usize, b: usize) -> bool {
        self.into[b] && !self.into[a] && !self.stop[a]
    }
}

/// Why an edge that a rule makes cannot be used.
enum Removal<'a> {
    Blocked(&'a str),
    Stop(&'a RequiredStop),
}

impl fmt::Display for Removal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Removal::Blocked(reason) => write!(f, "blocked: {reason}"),
            Removal::Stop(s) => write!(
                f,
                "it would skip the required stop {:?} (routes into {} pass {})",
                s.name, s.into, s.stop
            ),
        }
    }
}

/// A release graph, ready for queries.
///
/// Its edges are not stored but decided from the rules when a search reaches them: `* -> *`
/// over `n` releases stands for `n(n − 1)/2` edges (50 million for 10,000 releases, which a
/// registry of a service shipped several times a day reaches in a few years), so a graph holds
/// its releases, the edges added one by one and, per rule, the set of releases each side
/// matches. A search takes the targets of a release as one set, from the sets of the rules
/// that start there less those of the blocks and required stops that apply (word-wide
/// operations on bitsets, `n/64` words a rule), and visits only the targets it may improve.
#[derive(Debug, Clone)]
pub struct UpgradeGraph {
    /// The releases in ascending order; a release is its place here.
    releases: Vec<Version>,
    /// The edges added one by one ([`GraphBuilder::edge`]), by source, sorted.
    exact: Vec<Vec<usize>>,
    /// The same, by target, for searches backwards.
    exact_into: Vec<Vec<usize>>,
    edges: Rules<()>,
    blocked: Rules<String>,
    conditional: Rules<Vec<Risk>>,
    stops: Vec<StopRule>,
    /// What it was built from, and its name in errors: to build it again with a running
    /// version it leaves out ([`route_from_running`](Self::route_from_running)).
    source: GraphBuilder,
    name: String,
}

/// Collects releases and edges, then filters and checks them in [`GraphBuilder::build`].
#[derive(Debug, Clone, Default)]
pub struct GraphBuilder {
    releases: BTreeSet<Version>,
    exact: Vec<(Version, Version)>,
    spec: GraphSpec,
    /// Releases that routes may start from but no edge leads to: a yanked release, or a version
    /// a service runs that the graph leaves out.
    start_only: BTreeSet<Version>,
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

    /// Adds withdrawn releases (yanked ones): routes may start there (a service may run one),
    /// no edge leads to them, so no route passes through them or ends there. The rules that
    /// name them still load: an edge out of one is the way off it.
    #[must_use]
    pub(crate) fn withdrawn(mut self, versions: impl IntoIterator<Item = Version>) -> Self {
        for version in versions {
            self.releases.insert(version.clone());
            self.start_only.insert(version);
        }
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
            spec,
            ..Self::default()
        }
    }

    /// Builds the graph; `path` names it in errors (`graphs.elasticsearch`).
    pub fn build(self, path: &str) -> Result<UpgradeGraph> {
        let source = self.clone();
        let releases: Vec<Version> = self.releases.into_iter().collect();
        let n = releases.len();
        let start_only: Vec<usize> = self
            .start_only
            .iter()
            .filter_map(|v| releases.binary_search(v).ok())
            .collect();
        let mut exact = vec![Vec::new(); n];
        let mut exact_into = vec![Vec::new(); n];
        for (i, (from, to)) in self.exact.iter().enumerate() {
            let place = |v: &Version| {
                releases.binary_search(v).map_err(|_| Error::InvalidValue {
                    path: format!("{path}.edges[{i}]"),
                    value: v.to_string(),
                    reason: "the edge names a release the graph does not have".into(),
                })
            };
            let (a, b) = (place(from)?, place(to)?);
            if start_only.contains(&b) {
                continue;
            }
            if a == b {
                return Err(Error::InvalidValue {
                    path: format!("{path}.edges[{i}]"),
                    value: from.to_string(),
                    reason: "an edge must lead to another release".into(),
                });
            }
            exact[a].push(b);
            exact_into[b].push(a);
        }
        for list in exact.iter_mut().chain(exact_into.iter_mut()) {
            list.sort_unstable();
            list.dedup();
        }
        let matches = |sel: &Selector| -> Matches {
            let mut set = FixedBitSet::with_capacity(n);
            for (i, _) in releases.iter().enumerate().filter(|(_, r)| sel.matches(r)) {
                set.insert(i);
            }
            set
        };
        // A required stop reads a pre-release as the release it leads to: `8.0.0-rc.1` is
        // guarded by `>=8.0.0` (which, by semver's rules, does not match it), and `7.17.0-rc.1`
        // is a `7.17.*` stop. A selector that names a pre-release still matches it as written.
        let matches_release = |sel: &Selector| -> Matches {
            let mut set = FixedBitSet::with_capacity(n);
            for (i, r) in releases.iter().enumerate() {
                if sel.matches(r) || sel.matches(&Version::new(r.major, r.minor, r.patch)) {
                    set.insert(i);
                }
            }
            set
        };
        // A rule one of whose sides matches no release could never apply, and is most likely
        // a typo: a block of `7.71.0` for `7.17.0` would leave the edge it meant open.
        let sides = |rule: String, from: &Selector, to: &Selector| -> Result<(Matches, Matches)> {
            let (f, t) = (matches(from), matches(to));
            if f.is_clear() || t.is_clear() {
                return Err(Error::InvalidValue {
                    path: rule,
                    value: format!("{from} -> {to}"),
                    reason: "matches no release on one side".into(),
                });
            }
            Ok((f, t))
        };
        let mut edges = Rules::new(n);
        for (i, spec) in self.spec.edges.iter().enumerate() {
            let (from, mut to) = sides(format!("{path}.edges[{i}]"), &spec.from, &spec.to)?;
            for &start in &start_only {
                to.remove(start);
            }
            edges.push(&from, to, ());
        }
        let mut conditional = Rules::new(n);
        for (i, spec) in self.spec.conditional.iter().enumerate() {
            if spec.risks.is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.conditional[{i}].risks"),
                    value: "[]".into(),
                    reason: "a conditional edge names at least one risk".into(),
                });
            }
            // The risks are what an operator reads before taking the edge.
            for (j, risk) in spec.risks.iter().enumerate() {
                for (field, text) in [("name", &risk.name), ("message", &risk.message)] {
                    if text.trim().is_empty() {
                        return Err(Error::InvalidValue {
                            path: format!("{path}.conditional[{i}].risks[{j}].{field}"),
                            value: text.clone(),
                            reason: "a risk needs a name and says what can go wrong, as the \
                                     operator reads it before taking the edge"
                                .into(),
                        });
                    }
                }
            }
            let (from, to) = sides(format!("{path}.conditional[{i}]"), &spec.from, &spec.to)?;
            conditional.push(&from, to, spec.risks.clone());
        }
        let mut blocked = Rules::new(n);
        for (i, b) in self.spec.blocked.iter().enumerate() {
            if b.reason.trim().is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.blocked[{i}].reason"),
                    value: b.reason.clone(),
                    reason: "say why the edge is blocked; the explanation of a missing route \
                             quotes it"
                        .into(),
                });
            }
            let (from, to) = sides(format!("{path}.blocked[{i}]"), &b.from, &b.to)?;
            blocked.push(&from, to, b.reason.clone());
        }
        let mut stops = Vec::new();
        for (i, spec) in self.spec.required_stops.into_iter().enumerate() {
            if spec.name.trim().is_empty() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.requiredStops[{i}].name"),
                    value: spec.name,
                    reason: "name the stop (`7.17 before 8`); a route refused for skipping it \
                             names it"
                        .into(),
                });
            }
            let (stop, into) = (matches_release(&spec.stop), matches_release(&spec.into));
            // A stop that guards no release could never apply, and is most likely a typo, as
            // a rule's side that matches none is: `>=9.0.0` for `>=8.0.0` would let every
            // route into 8.x skip the stop.
            if into.is_clear() {
                return Err(Error::InvalidValue {
                    path: format!("{path}.requiredStops[{i}].into"),
                    value: spec.into.to_string(),
                    reason: "matches no release, so the stop guards nothing".into(),
                });
            }
            // Routes enter the guarded releases only from a stop outside them.
            if !stop.is_clear() && stop.is_subset(&into) {
                return Err(Error::InvalidValue {
                    path: format!("{path}.requiredStops[{i}]"),
                    value: format!("stop {}, into {}", spec.stop, spec.into),
                    reason: "every release of the stop is one it guards, so no route can \
                             enter them"
                        .into(),
                });
            }
            stops.push(StopRule { spec, stop, into });
        }
        let graph = UpgradeGraph {
            releases,
            exact,
            exact_into,
            edges,
            blocked,
            conditional,
            stops,
            source,
            name: path.to_owned(),
        };
        if let Some(cycle) = graph.cycle() {
            let names: Vec<String> = cycle
                .iter()
                .map(|i| graph.releases[*i].to_string())
                .collect();
            return Err(Error::Cycle {
                path: path.to_owned(),
                cycle: names.join(" -> "),
            });
        }
        Ok(graph)
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
        self.releases.len()
    }

    /// Number of usable edges (conditional ones included). It checks every pair of releases.
    pub fn edge_count(&self) -> usize {
        let mut out = Targets::new(self.releases.len());
        (0..self.releases.len())
            .map(|a| {
                self.targets(a, true, &mut out);
                out.allowed.count_ones(..) + out.conditional.count_ones(..)
            })
            .sum()
    }

    /// Whether the graph holds the release.
    pub fn contains(&self, version: &Version) -> bool {
        self.releases.binary_search(version).is_ok()
    }

    /// The releases, in ascending order.
    pub fn releases(&self) -> impl Iterator<Item = &Version> {
        self.releases.iter()
    }

    /// The same graph with `withdrawn` releases (yanked ones) kept only as starts: routes may
    /// leave them, no edge leads to them, so no route passes through them. Unchanged when none
    /// of them is a release of the graph, or all already are starts only.
    pub(crate) fn withdrawing(&self, withdrawn: &[Version]) -> Result<UpgradeGraph> {
        let new: Vec<Version> = withdrawn
            .iter()
            .filter(|v| self.contains(v) && !self.source.start_only.contains(*v))
            .cloned()
            .collect();
        if new.is_empty() {
            return Ok(self.clone());
        }
        self.source.clone().withdrawn(new).build(&self.name)
    }

    /// The state of the edge `from -> to`, if it is usable.
    pub fn edge(&self, from: &Version, to: &Version) -> Option<EdgeState> {
        let place = |v| self.releases.binary_search(v).ok();
        let (a, b) = (place(from)?, place(to)?);
        self.cost(a, b, true)?;
        Some(self.state(a, b))
    }

    fn node(&self, v: &Version, what: &str) -> Result<usize> {
        self.releases
            .binary_search(v)
            .map_err(|_| Error::InvalidValue {
                path: format!("route.{what}"),
                value: v.to_string(),
                reason: format!("not a release of {}", self.name),
            })
    }

    /// Whether `edge` or a rule makes the edge `a -> b` (before blocks and stops).
    fn exists(&self, a: usize, b: usize) -> bool {
        a != b
            && ((b > a && self.edges.covering(a, b).next().is_some())
                || self.exact[a].binary_search(&b).is_ok())
    }

    /// Why the edge `a -> b` is removed, if it is: the first block that covers it, else the
    /// first required stop it would skip.
    fn removal(&self, a: usize, b: usize) -> Option<Removal<'_>> {
        if let Some(reason) = self.blocked.covering(a, b).next() {
            return Some(Removal::Blocked(reason));
        }
        self.stops
            .iter()
            .find(|s| s.skipped_by(a, b))
            .map(|s| Removal::Stop(&s.spec))
    }

    fn is_conditional(&self, a: usize, b: usize) -> bool {
        self.conditional.covering(a, b).next().is_some()
    }

    /// What the edge `a -> b` costs in a search, `None` if it cannot be taken.
    fn cost(&self, a: usize, b: usize, accept_conditional: bool) -> Option<u64> {
        if !self.exists(a, b) || self.removal(a, b).is_some() {
            return None;
        }
        match (self.is_conditional(a, b), accept_conditional) {
            (false, _) => Some(1),
            (true, true) => Some(CONDITIONAL_COST),
            (true, false) => None,
        }
    }

    /// The state of an existing edge: conditional with the risks of every rule that covers it,
    /// in the spec's order, or allowed.
    fn state(&self, a: usize, b: usize) -> EdgeState {
        let risks: Vec<Risk> = self
            .conditional
            .covering(a, b)
            .flat_map(|risks| risks.iter().cloned())
            .collect();
        if risks.is_empty() {
            EdgeState::Allowed
        } else {
            EdgeState::Conditional(risks)
        }
    }

    /// The usable edges from `a`, into `out`: the targets of the edge rules that start at `a`
    /// (above it) and of the edges added one by one, less those a block covers and the releases
    /// a required stop guards that `a` is neither in nor a stop of; the targets a conditional
    /// rule covers are set apart, and left out unless `accept_conditional`. The same edges as
    /// [`cost`](Self::cost) decides one by one.
    fn targets(&self, a: usize, accept_conditional: bool, out: &mut Targets) {
        let Targets {
            allowed,
            conditional,
        } = out;
        allowed.clear();
        self.edges.add_targets(a, allowed);
        allowed.remove_range(..a + 1);
        for &b in &self.exact[a] {
            allowed.insert(b);
        }
        self.blocked.remove_targets(a, allowed);
        for s in self.stops.iter().filter(|s| !s.into[a] && !s.stop[a]) {
            allowed.difference_with(&s.into);
        }
        conditional.clear();
        if accept_conditional {
            self.conditional.add_targets(a, conditional);
            conditional.intersect_with(allowed);
        }
        self.conditional.remove_targets(a, allowed);
    }

    /// The releases an edge into `b` may come from: every lower one when an edge rule ends at
    /// `b`, and the edges added one by one. A source may still not be an edge.
    fn sources(&self, b: usize) -> Box<dyn Iterator<Item = usize> + '_> {
        let exact = self.exact_into[b].iter().copied();
        if self.edges.any_into(b) {
            Box::new((0..b).chain(exact.filter(move |&a| a > b)))
        } else {
            Box::new(exact)
        }
    }

    /// The cheapest route from `from` to `to`, or why there is none. Unknown releases are
    /// errors.
    pub fn route(&self, from: &Version, to: &Version, opts: PathOptions) -> Result<Route> {
        let (start, goal) = (self.node(from, "from")?, self.node(to, "to")?);
        let n = self.releases.len();
        let mut dist = vec![u64::MAX; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        let mut heap = BinaryHeap::new();
        let mut settled = FixedBitSet::with_capacity(n);
        let mut out = Targets::new(n);
        dist[start] = 0;
        // Among releases as near, the goal is settled first, then releases before pre-releases
        // (a hop is run in production), then later releases before earlier ones: with `* -> *`
        // a direct edge ends the search after one pass over the releases, and of routes of
        // equal cost the one through later releases is found (the latest patch of a required
        // stop, say) and found soonest, as later releases are usually nearer the goal (and,
        // settled, are left out of the targets of the releases below them). Once the goal is
        // reached, a release no nearer than one edge short of it cannot lead to it more cheaply,
        // and is not expanded.
        heap.push(Reverse((0u64, start != goal, false, Reverse(start))));
        while let Some(Reverse((d, _, _, Reverse(u)))) = heap.pop() {
            if u == goal {
                break;
            }
            if d > dist[u] || settled[u] {
                continue;
            }
            settled.insert(u);
            if d.saturating_add(1) >= dist[goal] {
                continue;
            }
            self.targets(u, opts.accept_conditional, &mut out);
            for (set, w) in [
                (&mut out.allowed, 1),
                (&mut out.conditional, CONDITIONAL_COST),
            ] {
                set.difference_with(&settled);
                let nd = d.saturating_add(w);
                for v in set.ones() {
                    if nd < dist[v] {
                        dist[v] = nd;
                        prev[v] = Some(u);
                        let pre = !self.releases[v].pre.is_empty();
                        heap.push(Reverse((nd, v != goal, pre, Reverse(v))));
                    }
                }
            }
        }
        if dist[goal] == u64::MAX {
            return Ok(Route::NoRoute(self.explain(start, goal, opts)));
        }
        let mut nodes = vec![goal];
        let mut cur = goal;
        while let Some(p) = prev[cur] {
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
            let (va, vb) = (&self.releases[a], &self.releases[b]);
            if let EdgeState::Conditional(risks) = self.state(a, b) {
                path.risks.push(HopRisk {
                    from: va.clone(),
                    to: vb.clone(),
                    risks,
                });
            }
            if b != goal && self.stops.iter().any(|s| s.stop[b]) {
                path.stops.push(vb.clone());
            }
            path.hops.push(vb.clone());
        }
        Ok(Route::Found(path))
    }

    /// The cheapest route from a version the service runs now, which, unlike for
    /// [`route`](Self::route), need not be a release of the graph: a yanked release, which a
    /// service most needs to move off, or one the registry never listed. Such a version is
    /// only a start: the graph's rules decide the edges from it as for any release (a required
    /// stop it matches counts as passed), and no edge leads to it, so it is never a hop. The
    /// target must be a release of the graph.
    pub fn route_from_running(
        &self,
        from: &Version,
        to: &Version,
        opts: PathOptions,
    ) -> Result<Route> {
        if self.contains(from) {
            return self.route(from, to, opts);
        }
        self.node(to, "to")?;
        self.starting_at(from)?.route(from, to, opts)
    }

    /// The state of the edge from a version the service runs to a release of the graph, if it
    /// is usable; the running version need not be a release of the graph, as for
    /// [`route_from_running`](Self::route_from_running).
    pub fn edge_from_running(&self, from: &Version, to: &Version) -> Result<Option<EdgeState>> {
        if self.contains(from) {
            return Ok(self.edge(from, to));
        }
        self.node(to, "to")?;
        Ok(self.starting_at(from)?.edge(from, to))
    }

    /// The graph with `from` added as a release routes may start from but never lead to.
    fn starting_at(&self, from: &Version) -> Result<UpgradeGraph> {
        let mut builder = self.source.clone().release(from.clone());
        builder.start_only.insert(from.clone());
        builder.build(&self.name)
    }

    /// The releases reachable from `start` (forwards) or that reach it (backwards).
    fn reachable(&self, start: usize, accept_conditional: bool) -> FixedBitSet {
        let mut seen = FixedBitSet::with_capacity(self.releases.len());
        let mut out = Targets::new(self.releases.len());
        let mut stack = vec![start];
        seen.insert(start);
        while let Some(u) = stack.pop() {
            self.targets(u, accept_conditional, &mut out);
            out.allowed.union_with(&out.conditional);
            out.allowed.difference_with(&seen);
            seen.union_with(&out.allowed);
            stack.extend(out.allowed.ones());
        }
        seen
    }

    /// A cycle of the graph, if it has one, as the releases along it, the first repeated at
    /// the end. Rules only lead to higher releases, so a cycle takes an edge added one by one
    /// to a lower release; the cycle is that edge and the shortest way back from its target to
    /// its source.
    fn cycle(&self) -> Option<Vec<usize>> {
        let n = self.releases.len();
        let mut out = Targets::new(n);
        for (a, targets) in self.exact.iter().enumerate() {
            for &b in targets.iter().filter(|&&b| b < a) {
                if self.cost(a, b, true).is_none() {
                    continue;
                }
                // Breadth first from `b`, conditional edges included, until `a`.
                let mut prev: Vec<Option<usize>> = vec![None; n];
                let mut seen = FixedBitSet::with_capacity(n);
                seen.insert(b);
                let mut queue = std::collections::VecDeque::from([b]);
                while let Some(u) = queue.pop_front() {
                    if u == a {
                        let mut cycle = vec![a];
                        let mut cur = a;
                        while let Some(p) = prev[cur] {
                            cycle.push(p);
                            cur = p;
                        }
                        cycle.reverse();
                        cycle.push(b);
                        return Some(cycle);
                    }
                    self.targets(u, true, &mut out);
                    out.allowed.union_with(&out.conditional);
                    out.allowed.difference_with(&seen);
                    for v in out.allowed.ones() {
                        prev[v] = Some(u);
                        queue.push_back(v);
                    }
                    seen.union_with(&out.allowed);
                }
            }
        }
        None
    }

    /// "The edge a -> b is unusable because ...", if a block or a required stop removes it.
    fn removed_fact(&self, a: usize, b: usize) -> Option<String> {
        let why = self.removal(a, b)?;
        Some(format!(
            "the edge {} -> {} is unusable because {why}",
            self.releases[a], self.releases[b]
        ))
    }

    /// "The edge a -> b is conditional (risks) ...", if it is.
    fn conditional_fact(&self, a: usize, b: usize) -> Option<String> {
        let EdgeState::Conditional(risks) = self.state(a, b) else {
            return None;
        };
        let names: Vec<&str> = risks.iter().map(|r| r.name.as_str()).collect();
        Some(format!(
            "the edge {} -> {} is conditional ({}) and conditional edges were not accepted",
            self.releases[a],
            self.releases[b],
            names.join(", ")
        ))
    }

    /// Why the edge from a version the service runs (a release of the graph or not, as for
    /// [`edge_from_running`](Self::edge_from_running)) to `to` is not taken, when a rule makes
    /// it: a block or a required stop removes it, or it is conditional and such edges were not
    /// accepted. `None` when no rule makes it, or it is allowed.
    pub(crate) fn edge_not_taken(&self, from: &Version, to: &Version) -> Result<Option<String>> {
        if !self.contains(from) {
            self.node(to, "to")?;
            return self.starting_at(from)?.edge_not_taken(from, to);
        }
        let (a, b) = (self.node(from, "from")?, self.node(to, "to")?);
        if !self.exists(a, b) {
            return Ok(None);
        }
        Ok(self
            .removed_fact(a, b)
            .or_else(|| self.conditional_fact(a, b)))
    }

    /// Why each edge into `b` from a release in `seen` that a rule makes is not taken: those a
    /// block or a required stop removes, and those left out as conditional when such edges
    /// were not accepted.
    fn edges_not_taken(
        &self,
        seen: &FixedBitSet,
        b: usize,
        opts: PathOptions,
    ) -> (Vec<String>, Vec<String>) {
        let (mut removed, mut conditional) = (Vec::new(), Vec::new());
        for a in self.sources(b).filter(|&a| seen[a] && self.exists(a, b)) {
            if let Some(why) = self.removed_fact(a, b) {
                removed.push(why);
            } else if !opts.accept_conditional
                && let Some(why) = self.conditional_fact(a, b)
            {
                conditional.push(why);
            }
        }
        (removed, conditional)
    }

    fn explain(&self, start: usize, goal: usize, opts: PathOptions) -> Explanation {
        let (from, to) = (&self.releases[start], &self.releases[goal]);
        let seen = self.reachable(start, opts.accept_conditional);
        let mut e = Explanation::new(format!("{to} cannot be reached from {from}"));
        if self.source.start_only.contains(to) {
            e = e.fact(format!(
                "{to} is withdrawn (yanked): a route may start there, never lead to it"
            ));
        }
        if goal < start {
            e = e.fact(format!(
                "{to} is older than {from} and the graph only holds upgrades"
            ));
        }
        // Removed edges first; conditional ones after what the required stops say.
        let (removed, conditional) = self.edges_not_taken(&seen, goal, opts);
        for why in removed {
            e = e.fact(why);
        }
        for s in self.stops.iter().filter(|s| s.into[goal]) {
            let stop_reached = s.stop.ones().any(|i| seen[i]);
            if !stop_reached && !s.into[start] {
                let unreached = Explanation::new(format!(
                    "no release of the required stop {:?} ({}) is reachable from {from}",
                    s.spec.name, s.spec.stop
                ));
                // What keeps routes from the stop's latest release (a block, say), as a route
                // would take it.
                let latest = s
                    .stop
                    .ones()
                    .rfind(|&i| !self.source.start_only.contains(&self.releases[i]));
                let why: Vec<String> = latest
                    .map(|b| {
                        let (removed, conditional) = self.edges_not_taken(&seen, b, opts);
                        [removed, conditional].concat()
                    })
                    .unwrap_or_default();
                e = if why.is_empty() {
                    e.fact(unreached.conclusion)
                } else {
                    e.derived(why.into_iter().fold(unreached, Explanation::fact))
                };
            }
        }
        for why in conditional {
            e = e.fact(why);
        }
        if e.because.is_empty() {
            let count = seen.count_ones(..);
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
        // Of the two stops, equally near, the later patch.
        assert_eq!(p.hops, vec![v("7.17.25"), v("8.15.0")]);
        assert_eq!(p.stops, vec![v("7.17.25")]);
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
        let err = g
            .route(&v("6.0.0"), &v("8.0.0"), PathOptions::default())
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "route.from: invalid value \"6.0.0\": not a release of graphs.elasticsearch"
        );
        let err = UpgradeGraph::builder()
            .release(v("1.0.0"))
            .edge(v("1.0.0"), v("3.0.0"))
            .build("g")
            .unwrap_err();
        assert!(err.to_string().contains("g.edges[0]"));
    }

    #[test]
    fn a_running_version_the_graph_leaves_out_is_a_start_only() {
        let g = es();
        let found = |from: &str, to: &str| match g
            .route_from_running(&v(from), &v(to), PathOptions::default())
            .unwrap()
        {
            Route::Found(p) => p.hops,
            Route::NoRoute(e) => panic!("{e}"),
        };
        // The rules decide its edges: from before 7.17 through the stop, from a 7.17 (a
        // required stop itself) straight on.
        assert_eq!(found("7.12.0", "8.15.0"), vec![v("7.17.25"), v("8.15.0")]);
        assert_eq!(found("7.17.3", "8.15.0"), vec![v("8.15.0")]);
        // A release of the graph is routed as `route` does.
        assert_eq!(found("7.10.2", "7.16.3"), vec![v("7.16.3")]);
        // It is never a target, and the graph itself does not change.
        assert!(
            g.route_from_running(&v("7.10.2"), &v("7.12.0"), PathOptions::default())
                .is_err()
        );
        assert!(!g.contains(&v("7.12.0")));
        assert!(
            g.route(&v("7.12.0"), &v("8.15.0"), PathOptions::default())
                .is_err()
        );
        // No edge leads to it, so it cannot close a cycle: were 1.0.0 -> 1.5.0 an edge,
        // 1.0.0 -> 1.5.0 -> 2.0.0 -> 1.0.0 would be one, round the block.
        let g = UpgradeGraph::builder()
            .releases(["1.0.0", "2.0.0"].map(v))
            .edges(sel("1.0.0"), sel("<1.9.0"))
            .edges(sel("*"), sel("2.0.0"))
            .block(sel("1.0.0"), sel("2.0.0"), "no")
            .edge(v("2.0.0"), v("1.0.0"))
            .build("g")
            .unwrap();
        let Route::Found(p) = g
            .route_from_running(&v("1.5.0"), &v("2.0.0"), PathOptions::default())
            .unwrap()
        else {
            panic!()
        };
        assert_eq!((p.from, p.hops), (v("1.5.0"), vec![v("2.0.0")]));
    }

    #[test]
    fn a_stop_inside_the_releases_it_guards_is_refused() {
        let build = |stop: &str, into: &str| {
            UpgradeGraph::builder()
                .releases(["1.0.0", "1.1.0", "1.2.0"].map(v))
                .edges(sel("*"), sel("*"))
                .required_stop(RequiredStop {
                    name: "1.1 first".into(),
                    stop: sel(stop),
                    into: sel(into),
                })
                .build("graphs.api")
        };
        let err = build("1.1.0", ">=1.1.0").unwrap_err().to_string();
        assert_eq!(
            err,
            "graphs.api.requiredStops[0]: invalid value \"stop =1.1.0, into >=1.1.0\": every \
             release of the stop is one it guards, so no route can enter them"
        );
        // A stop with a release outside them still lets routes in.
        assert!(build("1.*", ">=1.1.0").is_ok());
        assert!(build("1.1.0", ">1.1.0").is_ok());
    }

    #[test]
    fn a_stop_that_guards_no_release_is_refused() {
        // `>=9.0.0` for `>=8.0.0` would leave every route into 8.x free to skip 7.17.
        let err = UpgradeGraph::builder()
            .releases(["7.16.0", "7.17.0", "8.0.0"].map(v))
            .edges(sel("*"), sel("*"))
            .required_stop(RequiredStop {
                name: "7.17 before 8".into(),
                stop: sel("7.17.*"),
                into: sel(">=9.0.0"),
            })
            .build("graphs.es")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("graphs.es.requiredStops[0].into"), "{err}");
        assert!(err.contains(">=9.0.0"), "{err}");
        assert!(err.contains("matches no release"), "{err}");
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
