//! Service dependency validation: every constraint, at every state a rollout passes through.
//!
//! During a canary the old and the new version of a service run side by side, so every rule is
//! checked against *sets* of running versions. For two services that both change, the
//! validator decides which must move first by checking both orders (the mixed state of the
//! first against the old version of the second, then the new first against the mixed second).
//! The resulting "must move before" edges are ordered topologically into groups that can move
//! together; a cycle in them is named. Finally the chosen order is replayed state by state as a
//! check.
//!
//! A service that passes required stops (several hops) is checked hop by hop against services
//! that do not change and against itself (the replay too); against another moving service it is
//! treated, conservatively, as possibly running any version of its route while it moves. Pairs
//! that already run together in the current fleet are reported once as warnings and never blamed
//! on the change. A fleet half-way through a rollout moves from every version it runs: the first
//! hop must be one step from each of them, by the upgrade graph and by the move rules.
//!
//! A release that calls an API needs a deployed service (or one deployed in the same change) that
//! provides it, and every running release that provides it must provide a version it works with.
//! While a change is analysed, a provider that changes counts as providing the API only if it
//! does before its move and in every state it passes; the final replay checks the chosen order
//! the same way: a provider moving in the same group as the consumer counts only if every state
//! of its route provides the API, for it may not have started, or be half-way.
//!
//! An API may move from one service to another in one change: the old provider's release
//! without it is no breaking removal when the target state serves every consumer
//! (`breaking.api-moved`, a warning), and the new provider moves before the old one, so that the
//! consumers are served throughout (`order.handover` when other rules forbid that order).

mod handover;
mod moves;
mod order;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use semver::Version;

use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::fleet::{Fleet, Proposal};
use crate::matrix::{Matrix, Rule};
use crate::migration::MigrationReport;
use crate::path::UpgradeGraph;
use crate::registry::Registry;
use crate::steps::{Handover, StepInputs, plan};
use crate::validation::{Finding, Move, Severity, UpgradeValidation};

use handover::Handovers;

/// Options of a validation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValidatorOptions {
    /// Whether conditional upgrade edges may be used.
    pub accept_conditional: bool,
    /// Whether to report rules the current fleet already breaks between services that do not
    /// change (as warnings).
    pub report_existing: bool,
}

impl Default for ValidatorOptions {
    fn default() -> Self {
        Self {
            accept_conditional: true,
            report_existing: true,
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    Rule(usize),
    SelfSkew(usize),
    Api(String),
}

#[derive(Debug, Clone)]
struct Constraint {
    kind: Kind,
    a: usize,
    b: usize,
}

/// Why a constraint fails in some state.
#[derive(Debug, Clone)]
struct Violation {
    /// The rule, as a sentence (`api 2.0.0 needs db >=1.4 (rule x)`).
    fact: String,
    /// The two offending (service, version) pairs.
    left: (usize, Version),
    right: (usize, Version),
    /// What the dependent side needs of the other, for suggestions.
    needs: Option<Needs>,
    /// Whether the right side is missing from the fleet (not deployed).
    missing: bool,
}

impl Violation {
    /// `fact` holds between `left` and `right` (nothing is needed of the other side).
    fn between(fact: String, left: (usize, Version), right: (usize, Version)) -> Self {
        Violation {
            fact,
            left,
            right,
            needs: None,
            missing: false,
        }
    }

    /// Whether both sides already run together in `current`.
    fn preexisting(&self, current: &[Vec<Version>]) -> bool {
        let has = |(i, v): &(usize, Version)| current.get(*i).is_some_and(|s| s.contains(v));
        has(&self.left)
            && (has(&self.right)
                || (self.missing && current.get(self.right.0).is_some_and(Vec::is_empty)))
    }
}

/// What the dependent side of a violation needs of the other.
#[derive(Debug, Clone)]
enum Needs {
    /// A release in this set.
    Release(crate::selector::Selector),
    /// A release that provides this API at a version in this range.
    Api(String, semver::VersionReq),
}

/// What the services other than a constraint's two run, for the one rule that looks further:
/// that some deployed provider offers an API a consumer calls.
#[derive(Clone, Copy)]
enum View<'a> {
    /// Exactly this state.
    State(&'a [Vec<Version>]),
    /// A replayed state of a group whose moves pass the states of `passes` (by service, its
    /// start first), while `stepping` is checked in one of them. `state` holds that one's
    /// versions, and every version each other move may run while the group rolls out, which
    /// is what a rule between two releases must allow; but another move surely offers an API
    /// only if it does in every state of its route, as while a change is analysed: it may not
    /// have started, or be half-way.
    Rolling {
        state: &'a [Vec<Version>],
        passes: &'a BTreeMap<usize, Vec<Vec<Version>>>,
        stepping: usize,
    },
    /// While a change is analysed pair by pair, before the order is known: a service that does
    /// not change runs `current`; one that changes surely offers an API only if it does before
    /// its move (`current`: it may not have started) and in every state it passes (`states`),
    /// and may offer it if it does in one of them. An API a moving service stops providing is
    /// offered by the new providers it is handed over to (`handovers`), which run their targets
    /// (`finals`) before the old provider moves.
    Analysis {
        current: &'a [Vec<Version>],
        states: &'a BTreeMap<usize, Vec<Vec<Version>>>,
        finals: &'a [Vec<Version>],
        handovers: &'a Handovers,
    },
}

impl View<'_> {
    /// Whether service `q` surely runs a version for which `pred` holds (`maybe == false`), or
    /// may run one (`maybe == true`).
    fn runs(&self, q: usize, maybe: bool, pred: &dyn Fn(&Version) -> bool) -> bool {
        let any = |set: &[Version]| set.iter().any(pred);
        match self {
            View::State(state) => state.get(q).is_some_and(|s| any(s)),
            View::Rolling {
                state,
                passes,
                stepping,
            } => match passes.get(&q) {
                Some(list) if maybe => list.iter().any(|s| any(s)),
                Some(list) if q != *stepping => list.iter().all(|s| any(s)),
                _ => state.get(q).is_some_and(|s| any(s)),
            },
            View::Analysis {
                current, states, ..
            } => {
                let now = current.get(q).is_some_and(|s| any(s));
                match states.get(&q) {
                    Some(list) if maybe => now || list.iter().any(|s| any(s)),
                    Some(list) => now && list.iter().all(|s| any(s)),
                    None => now,
                }
            }
        }
    }

    /// Whether `q`, whose versions the caller holds, surely runs one for which `pred` holds:
    /// only another move of the group replayed may run fewer of them at once.
    fn surely(&self, q: usize, pred: &dyn Fn(&Version) -> bool) -> bool {
        match self {
            View::Rolling {
                passes, stepping, ..
            } if q != *stepping && passes.contains_key(&q) => self.runs(q, false, pred),
            _ => true,
        }
    }

    /// Whether a new provider that `api` is handed over to from `old` runs, once it has moved,
    /// a version for which `serves` holds. Only while a change is analysed: a replayed state
    /// already shows where each new provider is.
    fn handed_over(&self, old: usize, api: &str, serves: &dyn Fn(usize, &Version) -> bool) -> bool {
        match self {
            View::State(_) | View::Rolling { .. } => false,
            View::Analysis {
                finals, handovers, ..
            } => handovers.takers(old, api).any(|t| {
                finals
                    .get(t)
                    .is_some_and(|set| set.iter().any(|v| serves(t, v)))
            }),
        }
    }
}

/// Whether each of two moving services may move first (`a` is the lower service index).
struct PairInfo {
    a_first: Option<Violation>,
    b_first: Option<Violation>,
    a_first_ok: bool,
    b_first_ok: bool,
}

/// Checks proposed changes of a fleet against a registry, a matrix and upgrade graphs.
#[derive(Debug, Clone)]
pub struct Validator {
    registry: Registry,
    matrix: Matrix,
    graphs: BTreeMap<String, UpgradeGraph>,
    options: ValidatorOptions,
    names: Vec<String>,
    index: HashMap<String, usize>,
    constraints: Vec<Constraint>,
    by_service: Vec<Vec<usize>>,
    allows: HashMap<(usize, usize), Vec<usize>>,
    move_rules: Vec<Vec<usize>>,
    orphan_apis: Vec<(usize, String)>,
    /// The services whose releases provide each API (in at least one release), in index order.
    api_providers: HashMap<String, Vec<usize>>,
    /// The services whose releases call each API (in at least one release).
    api_consumers: HashMap<String, Vec<usize>>,
}

impl Validator {
    /// Compiles the rules; the matrix is validated against the registry.
    pub fn new(registry: Registry, matrix: Matrix) -> Result<Self> {
        registry.check_migrations()?;
        matrix.validate(&registry)?;
        let names: Vec<String> = registry.services().map(str::to_owned).collect();
        let index: HashMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let id = |s: &str, path: String| {
            index.get(s).copied().ok_or_else(|| Error::UnknownService {
                path,
                service: s.to_owned(),
            })
        };
        let mut constraints = Vec::new();
        let mut allows: HashMap<(usize, usize), Vec<usize>> = HashMap::new();
        let mut move_rules = vec![Vec::new(); names.len()];
        for (i, rule) in matrix.rules().iter().enumerate() {
            let path = format!("rules[{i}]");
            match rule {
                Rule::Requires(r) => constraints.push(Constraint {
                    kind: Kind::Rule(i),
                    a: id(&r.service, path.clone())?,
                    b: id(&r.dependency, path)?,
                }),
                Rule::Deny(p) => constraints.push(Constraint {
                    kind: Kind::Rule(i),
                    a: id(&p.a.service, path.clone())?,
                    b: id(&p.b.service, path)?,
                }),
                Rule::Allow(p) => {
                    let (a, b) = (id(&p.a.service, path.clone())?, id(&p.b.service, path)?);
                    allows.entry((a.min(b), a.max(b))).or_default().push(i);
                }
                Rule::Skew(s) => {
                    let (a, b) = (id(&s.client, path.clone())?, id(&s.server, path)?);
                    let kind = if a == b {
                        Kind::SelfSkew(i)
                    } else {
                        Kind::Rule(i)
                    };
                    constraints.push(Constraint { kind, a, b });
                }
                Rule::OneMinorAtATime(r) => {
                    if let Some(list) = move_rules.get_mut(id(&r.service, path)?) {
                        list.push(i);
                    }
                }
                Rule::Transition(t) => {
                    if let Some(list) = move_rules.get_mut(id(&t.service, path)?) {
                        list.push(i);
                    }
                }
            }
        }
        // Who provides each API, from one pass over every release: looking the providers up
        // in the registry per consumer would cost a scan of every service per consumer.
        let mut api_providers: HashMap<String, Vec<usize>> = HashMap::new();
        for (p, name) in names.iter().enumerate() {
            let apis: BTreeSet<&str> = registry
                .releases(name)
                .flat_map(|r| r.provides.iter().map(|api| api.name.as_str()))
                .collect();
            for api in apis {
                api_providers.entry(api.to_owned()).or_default().push(p);
            }
        }
        let mut orphan_apis = Vec::new();
        let mut api_consumers: HashMap<String, Vec<usize>> = HashMap::new();
        for (a, name) in names.iter().enumerate() {
            let apis: BTreeSet<&str> = registry
                .releases(name)
                .flat_map(|r| r.consumes.iter().map(|c| c.api.as_str()))
                .collect();
            for api in apis {
                api_consumers.entry(api.to_owned()).or_default().push(a);
                let providers: Vec<usize> = api_providers
                    .get(api)
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .copied()
                    .filter(|p| *p != a)
                    .collect();
                if providers.is_empty() {
                    orphan_apis.push((a, api.to_owned()));
                }
                for b in providers {
                    constraints.push(Constraint {
                        kind: Kind::Api(api.to_owned()),
                        a,
                        b,
                    });
                }
            }
        }
        let mut by_service = vec![Vec::new(); names.len()];
        for (ci, c) in constraints.iter().enumerate() {
            if let Some(list) = by_service.get_mut(c.a) {
                list.push(ci);
            }
            if c.b != c.a
                && let Some(list) = by_service.get_mut(c.b)
            {
                list.push(ci);
            }
        }
        Ok(Self {
            registry,
            matrix,
            graphs: BTreeMap::new(),
            options: ValidatorOptions::default(),
            names,
            index,
            constraints,
            by_service,
            allows,
            move_rules,
            orphan_apis,
            api_providers,
            api_consumers,
        })
    }

    /// Adds the upgrade graph of a service; its releases must exist in the registry. A yanked
    /// release stays in it only as a start: a route may leave it (the service may run it), never
    /// pass through it or end there.
    pub fn with_graph(mut self, service: &str, graph: UpgradeGraph) -> Result<Self> {
        let path = format!("graphs.{service}");
        if !self.registry.has_service(service) {
            return Err(Error::UnknownService {
                path,
                service: service.to_owned(),
            });
        }
        let mut yanked = Vec::new();
        for version in graph.releases() {
            match self.registry.release(service, version) {
                None => {
                    return Err(Error::UnknownVersion {
                        path: format!("{path}.releases"),
                        service: service.to_owned(),
                        version: version.to_string(),
                    });
                }
                Some(r) if r.yanked => yanked.push(version.clone()),
                Some(_) => {}
            }
        }
        let graph = graph.withdrawing(&yanked)?;
        self.graphs.insert(service.to_owned(), graph);
        Ok(self)
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: ValidatorOptions) -> Self {
        self.options = options;
        self
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The matrix.
    pub fn matrix(&self) -> &Matrix {
        &self.matrix
    }

    /// The upgrade graph of a service, if it has one.
    pub fn graph(&self, service: &str) -> Option<&UpgradeGraph> {
        self.graphs.get(service)
    }

    fn name(&self, i: usize) -> &str {
        self.names.get(i).map(String::as_str).unwrap_or("?")
    }

    fn allowed(&self, a: usize, va: &Version, b: usize, vb: &Version) -> bool {
        let Some(list) = self.allows.get(&(a.min(b), a.max(b))) else {
            return false;
        };
        list.iter().any(|&ri| match self.matrix.rules().get(ri) {
            Some(Rule::Allow(p)) => {
                let fwd = p.a.service == self.name(a)
                    && p.a.versions.matches(va)
                    && p.b.service == self.name(b)
                    && p.b.versions.matches(vb);
                let back = p.a.service == self.name(b)
                    && p.a.versions.matches(vb)
                    && p.b.service == self.name(a)
                    && p.b.versions.matches(va);
                fwd || back
            }
            _ => false,
        })
    }

    /// The first violation of constraint `ci` in `state`.
    fn check(&self, ci: usize, state: &[Vec<Version>]) -> Option<Violation> {
        let c = self.constraints.get(ci)?;
        let set = |i: usize| state.get(i).map_or(&[][..], Vec::as_slice);
        self.check_skipping(ci, set(c.a), set(c.b), View::State(state), &|_| false)
    }

    /// The first violation of constraint `ci` with `a_set` running for its first service and
    /// `b_set` for its second, and the other services as `view` says, ignoring violations for
    /// which `skip` is true (pairs that already run together in the current fleet, which no
    /// order of this change can fix).
    fn check_skipping(
        &self,
        ci: usize,
        a_set: &[Version],
        b_set: &[Version],
        view: View<'_>,
        skip: &dyn Fn(&Violation) -> bool,
    ) -> Option<Violation> {
        let c = self.constraints.get(ci)?;
        let (a, b) = (c.a, c.b);
        match &c.kind {
            Kind::Rule(ri) => {
                let label = self.matrix.label(*ri);
                match self.matrix.rules().get(*ri)? {
                    Rule::Requires(r) => {
                        for va in a_set.iter().filter(|v| r.versions.matches(v)) {
                            if b_set.is_empty() {
                                let v = Violation {
                                    fact: format!(
                                        "{} {va} needs {} {} ({label}) and {} is not deployed",
                                        r.service, r.dependency, r.req, r.dependency
                                    ),
                                    left: (a, va.clone()),
                                    right: (b, Version::new(0, 0, 0)),
                                    needs: Some(Needs::Release(r.req.clone())),
                                    missing: true,
                                };
                                if !skip(&v) {
                                    return Some(v);
                                }
                            }
                            for vb in b_set {
                                if !r.req.matches(vb) && !self.allowed(a, va, b, vb) {
                                    let v = Violation {
                                        fact: format!(
                                            "{} {va} needs {} {} ({label})",
                                            r.service, r.dependency, r.req
                                        ),
                                        left: (a, va.clone()),
                                        right: (b, vb.clone()),
                                        needs: Some(Needs::Release(r.req.clone())),
                                        missing: false,
                                    };
                                    if !skip(&v) {
                                        return Some(v);
                                    }
                                }
                            }
                        }
                        None
                    }
                    Rule::Deny(p) => {
                        for va in a_set.iter().filter(|v| p.a.versions.matches(v)) {
                            // Within one service, a version never conflicts with itself.
                            for vb in b_set
                                .iter()
                                .filter(|v| p.b.versions.matches(v) && !(a == b && *v == va))
                            {
                                let mut fact = format!(
                                    "{} {va} is denied with {} {vb} ({label}{})",
                                    p.a.service,
                                    p.b.service,
                                    p.reason
                                        .as_deref()
                                        .map(|r| format!(": {r}"))
                                        .unwrap_or_default()
                                );
                                if self.allowed(a, va, b, vb) {
                                    fact.push_str(
                                        ", although an allow rule also covers this pair \
                                         (contradictory rules: the deny wins)",
                                    );
                                }
                                let v = Violation::between(fact, (a, va.clone()), (b, vb.clone()));
                                if !skip(&v) {
                                    return Some(v);
                                }
                            }
                        }
                        None
                    }
                    Rule::Skew(s) => {
                        for vc in a_set {
                            for vs in b_set {
                                if let Some(why) = s.violation(vc, vs)
                                    && !self.allowed(a, vc, b, vs)
                                {
                                    let fact = format!("{why} ({label})");
                                    let v =
                                        Violation::between(fact, (a, vc.clone()), (b, vs.clone()));
                                    if !skip(&v) {
                                        return Some(v);
                                    }
                                }
                            }
                        }
                        None
                    }
                    _ => None,
                }
            }
            Kind::SelfSkew(ri) => {
                let Some(Rule::Skew(s)) = self.matrix.rules().get(*ri) else {
                    return None;
                };
                let label = self.matrix.label(*ri);
                for (i, x) in a_set.iter().enumerate() {
                    for y in a_set.iter().skip(i + 1) {
                        if let Some(why) = s.violation(x, y) {
                            let fact = format!("{why} ({label})");
                            let v = Violation::between(fact, (a, x.clone()), (a, y.clone()));
                            if !skip(&v) {
                                return Some(v);
                            }
                        }
                    }
                }
                None
            }
            Kind::Api(api) => self.check_api(api, (a, a_set), (b, b_set), view, skip),
        }
    }

    /// The API constraint between consumer `a` and provider `b` of `api`: every release of `b`
    /// running that provides the API provides a version the consumer works with, and some
    /// deployed provider (`b` or another, as `view` says) provides one at all. While a change
    /// is analysed, a pair whose provider cannot help leaves that to the providers that can.
    fn check_api(
        &self,
        api: &str,
        (a, a_set): (usize, &[Version]),
        (b, b_set): (usize, &[Version]),
        view: View<'_>,
        skip: &dyn Fn(&Violation) -> bool,
    ) -> Option<Violation> {
        let provided = |q: usize, v: &Version| {
            self.registry
                .release(self.name(q), v)
                .and_then(|r| r.provided(api))
        };
        let others: Vec<usize> = self
            .api_providers
            .get(api)
            .map(|list| {
                list.iter()
                    .copied()
                    .filter(|q| *q != a && *q != b)
                    .collect()
            })
            .unwrap_or_default();
        for va in a_set {
            let Some(release) = self.registry.release(self.name(a), va) else {
                continue;
            };
            for need in release.consumes.iter().filter(|c| c.api == api) {
                let mut offered = false;
                for vb in b_set {
                    let Some(provided) = provided(b, vb) else {
                        continue;
                    };
                    offered = true;
                    if !need.version.matches(&provided.version) && !self.allowed(a, va, b, vb) {
                        let fact = format!(
                            "{} {va} calls api {api} {} but {} {vb} provides {api} {}",
                            self.name(a),
                            need.version,
                            self.name(b),
                            provided.version
                        );
                        let v = Violation::between(fact, (a, va.clone()), (b, vb.clone()));
                        if !skip(&v) {
                            return Some(v);
                        }
                    }
                }
                // Served by `b` only if it surely runs a release that provides the API (the
                // versions it may run were checked above).
                if offered && view.surely(b, &|v| provided(b, v).is_some()) {
                    continue;
                }
                let matching = |q: usize| {
                    move |v: &Version| {
                        provided(q, v).is_some_and(|p| need.version.matches(&p.version))
                    }
                };
                if others.iter().any(|&q| view.runs(q, false, &matching(q)))
                    || view.handed_over(b, api, &|q, v| matching(q)(v))
                {
                    continue;
                }
                let b_may = view.runs(b, true, &|v| provided(b, v).is_some());
                if !b_may && others.iter().any(|&q| view.runs(q, true, &matching(q))) {
                    continue;
                }
                if !b_set.is_empty() && b_set.iter().all(|vb| self.allowed(a, va, b, vb)) {
                    continue;
                }
                let names: Vec<&str> = std::iter::once(b)
                    .chain(others.iter().copied())
                    .map(|q| self.name(q))
                    .collect();
                let v = Violation {
                    fact: format!(
                        "{} {va} calls api {api} {} and no deployed release provides it \
                         (releases of {} do)",
                        self.name(a),
                        need.version,
                        names.join(" or ")
                    ),
                    left: (a, va.clone()),
                    right: (
                        b,
                        b_set.iter().max().cloned().unwrap_or(Version::new(0, 0, 0)),
                    ),
                    needs: Some(Needs::Api(api.to_owned(), need.version.clone())),
                    missing: b_set.is_empty(),
                };
                if !skip(&v) {
                    return Some(v);
                }
            }
        }
        None
    }

    fn idx(&self, service: &str, path: String) -> Result<usize> {
        self.index
            .get(service)
            .copied()
            .ok_or_else(|| Error::UnknownService {
                path,
                service: service.to_owned(),
            })
    }

    /// Every rule the given fleet breaks, as error findings (no change involved).
    ///
    /// Unknown services are errors.
    pub fn check_fleet(&self, fleet: &Fleet) -> Result<Vec<Finding>> {
        let mut state = vec![Vec::new(); self.names.len()];
        for (service, versions) in fleet.iter() {
            let i = self.idx(service, format!("fleet.{service}"))?;
            if let Some(slot) = state.get_mut(i) {
                *slot = versions.to_vec();
            }
        }
        let mut findings = Vec::new();
        for (ci, c) in self.constraints.iter().enumerate() {
            let (Some(a_set), Some(b_set)) = (state.get(c.a), state.get(c.b)) else {
                continue;
            };
            if a_set.is_empty() && b_set.is_empty() {
                continue;
            }
            if let Some(v) = self.check(ci, &state) {
                findings.push(Finding::new(
                    Severity::Error,
                    self.code(ci),
                    format!("{} {}", self.name(v.left.0), v.left.1),
                    v.fact,
                ));
            }
        }
        Ok(findings)
    }

    fn code(&self, ci: usize) -> String {
        match self.constraints.get(ci).map(|c| &c.kind) {
            Some(Kind::Rule(ri)) | Some(Kind::SelfSkew(ri)) => format!(
                "matrix.{}",
                self.matrix
                    .rules()
                    .get(*ri)
                    .map(Rule::kind)
                    .unwrap_or("rule")
            ),
            Some(Kind::Api(_)) => "api.requires".into(),
            None => "matrix".into(),
        }
    }

    /// Validates `proposal` against `fleet`.
    ///
    /// Unknown services and unreleased target versions are errors; everything else becomes a
    /// finding in the answer.
    pub fn validate(&self, fleet: &Fleet, proposal: &Proposal) -> Result<UpgradeValidation> {
        let n = self.names.len();
        let mut current: Vec<Vec<Version>> = vec![Vec::new(); n];
        for (service, versions) in fleet.iter() {
            let i = self.idx(service, format!("fleet.{service}"))?;
            if let Some(slot) = current.get_mut(i) {
                // A binary may report build metadata the registry does not list (`1.0.0+b` for
                // `1.0.0`): it is the same release (SemVer §10), routed and checked as such.
                *slot = Vec::with_capacity(versions.len());
                for v in versions {
                    let v = self
                        .registry
                        .release(service, v)
                        .map_or_else(|| v.clone(), |r| r.version.clone());
                    if !slot.contains(&v) {
                        slot.push(v);
                    }
                }
            }
        }
        let mut findings = Vec::new();
        for (service, versions) in fleet.iter() {
            for v in versions {
                if self.registry.release(service, v).is_none() {
                    findings.push(Finding::new(
                        Severity::Warn,
                        "registry.unknown-running-version",
                        format!("{service} {v}"),
                        format!(
                            "{service} {v} runs but is not in the registry; its metadata is unknown"
                        ),
                    ));
                }
            }
        }
        // Resolve each change into hops.
        let mut changing: Vec<Option<Vec<Version>>> = vec![None; n];
        let mut paths = BTreeMap::new();
        let mut moves: BTreeMap<usize, Move> = BTreeMap::new();
        for (service, target) in proposal.iter() {
            let path = format!("proposal.{service}");
            let i = self.idx(service, path.clone())?;
            let release = self.registry.require(service, target, &path)?;
            let now = current.get(i).cloned().unwrap_or_default();
            // The target is compared as the registry holds it, as the fleet is: `1.0.0+b` is
            // the release `1.0.0` (SemVer §10).
            if now.as_slice() == std::slice::from_ref(&release.version) {
                findings.push(Finding::new(
                    Severity::Info,
                    "proposal.no-op",
                    format!("{service} {target}"),
                    format!("{service} already runs {target}"),
                ));
                continue;
            }
            let hops = self.hops(service, release, &now, &mut paths, &mut findings);
            self.check_move_rules(i, &now, &hops, &mut findings);
            moves.insert(
                i,
                Move {
                    service: service.to_owned(),
                    from: now.clone(),
                    hops: hops.clone(),
                },
            );
            if let Some(slot) = changing.get_mut(i) {
                *slot = Some(hops);
            }
        }
        // Sets: mixed (everything a service may run during its move) and final.
        // Computed once per service: the analysis below runs per constraint.
        let mixed_sets: Vec<Vec<Version>> = (0..n)
            .map(|i| {
                let mut set = current.get(i).cloned().unwrap_or_default();
                if let Some(Some(h)) = changing.get(i) {
                    set.extend(h.iter().cloned());
                }
                set.sort();
                set.dedup();
                set
            })
            .collect();
        let final_sets: Vec<Vec<Version>> = (0..n)
            .map(|i| match changing.get(i) {
                Some(Some(h)) => h.last().cloned().into_iter().collect(),
                _ => current.get(i).cloned().unwrap_or_default(),
            })
            .collect();
        let mixed = |i: usize| -> &[Version] { mixed_sets.get(i).map_or(&[], Vec::as_slice) };
        let fin = |i: usize| -> &[Version] { final_sets.get(i).map_or(&[], Vec::as_slice) };
        for (a, api) in &self.orphan_apis {
            if changing.get(*a).is_some_and(Option::is_some) {
                for v in fin(*a) {
                    let consumes = self
                        .registry
                        .release(self.name(*a), v)
                        .is_some_and(|r| r.consumes.iter().any(|c| &c.api == api));
                    if consumes {
                        findings.push(Finding::new(
                            Severity::Warn,
                            "api.no-provider",
                            format!("{} {v}", self.name(*a)),
                            format!("{} {v} calls api {api}, which no service in the registry provides; it is not checked", self.name(*a)),
                        ));
                    }
                }
            }
        }
        // Constraint analysis.
        let mut pairs: BTreeMap<(usize, usize), PairInfo> = BTreeMap::new();
        let is_changing = |i: usize| changing.get(i).is_some_and(Option::is_some);
        let touched: BTreeSet<usize> = (0..n)
            .filter(|i| is_changing(*i))
            .filter_map(|i| self.by_service.get(i))
            .flatten()
            .copied()
            .collect();
        if self.options.report_existing {
            for (ci, c) in self.constraints.iter().enumerate() {
                if current.get(c.a).is_none_or(Vec::is_empty) {
                    continue;
                }
                if let Some(v) = self.check(ci, &current) {
                    findings.push(Finding::new(
                        Severity::Warn,
                        format!("{}.existing", self.code(ci)),
                        format!("{} {}", self.name(v.left.0), v.left.1),
                        format!("the current fleet already breaks this rule: {}", v.fact),
                    ));
                }
            }
        }
        let skip = |v: &Violation| v.preexisting(&current);
        let states: BTreeMap<usize, Vec<Vec<Version>>> = moves
            .keys()
            .map(|&i| (i, self.states_of(i, &current, &changing)))
            .collect();
        let states_of = |i: usize| states.get(&i).map_or(&[][..], Vec::as_slice);
        let handovers = self.handovers(&moves, &current, &mixed_sets, &final_sets);
        let view = View::Analysis {
            current: &current,
            states: &states,
            finals: &final_sets,
            handovers: &handovers,
        };
        for &ci in &touched {
            let Some(c) = self.constraints.get(ci) else {
                continue;
            };
            let (a, b) = (c.a, c.b);
            if a == b {
                for state in states_of(a) {
                    if let Some(v) = self.check_skipping(ci, state, state, view, &skip) {
                        findings.push(self.blocked_finding(ci, &v, a, &current));
                        break;
                    }
                }
                continue;
            }
            match (is_changing(a), is_changing(b)) {
                (true, true) => {
                    let key = (a.min(b), a.max(b));
                    // "x first" in terms of the key's order.
                    let (x, y) = key;
                    let run = |xs: &[Version], ys: &[Version]| {
                        if c.a == x {
                            self.check_skipping(ci, xs, ys, view, &skip)
                        } else {
                            self.check_skipping(ci, ys, xs, view, &skip)
                        }
                    };
                    let cur = |i: usize| current.get(i).map_or(&[][..], Vec::as_slice);
                    if let Some(v) = run(fin(x), fin(y)) {
                        let (sx, sy) = (self.name(x), self.name(y));
                        let (tx, ty) = (fin(x), fin(y));
                        let list = |t: &[Version]| {
                            t.iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join("+")
                        };
                        let conclusion = format!(
                            "the targets {sx} {} and {sy} {} cannot run together at all",
                            list(tx),
                            list(ty)
                        );
                        findings.push(
                            Finding::new(
                                Severity::Error,
                                self.code(ci),
                                format!("{sx}, {sy}"),
                                conclusion.clone(),
                            )
                            .with_evidence(v.fact.clone())
                            .with_explanation(Explanation::new(conclusion).fact(v.fact)),
                        );
                        continue;
                    }
                    let x_first = run(mixed(x), cur(y)).or_else(|| run(fin(x), mixed(y)));
                    let y_first = run(cur(x), mixed(y)).or_else(|| run(mixed(x), fin(y)));
                    let entry = pairs.entry(key).or_insert(PairInfo {
                        a_first: None,
                        b_first: None,
                        a_first_ok: true,
                        b_first_ok: true,
                    });
                    if let Some(v) = x_first {
                        entry.a_first_ok = false;
                        entry.a_first.get_or_insert(v);
                    }
                    if let Some(v) = y_first {
                        entry.b_first_ok = false;
                        entry.b_first.get_or_insert(v);
                    }
                }
                (true, false) | (false, true) => {
                    let (moving, fixed) = if is_changing(a) { (a, b) } else { (b, a) };
                    let fixed_set = current.get(fixed).map_or(&[][..], Vec::as_slice);
                    for state in states_of(moving) {
                        let v = if moving == a {
                            self.check_skipping(ci, state, fixed_set, view, &skip)
                        } else {
                            self.check_skipping(ci, fixed_set, state, view, &skip)
                        };
                        if let Some(v) = v {
                            findings.push(self.blocked_finding(ci, &v, moving, &current));
                            break;
                        }
                    }
                }
                (false, false) => {}
            }
        }
        let edges = self.handover_edges(&handovers, &pairs, &final_sets);
        let order = self.order(&moves, &pairs, &edges, &mut findings);
        let blocked = findings.iter().any(|f| f.severity == Severity::Error);
        if !blocked {
            findings.extend(self.replay(&order, &current));
        }
        // Breaking changes and migrations.
        let mut reports: Vec<(String, Version, MigrationReport)> = Vec::new();
        let mut breaking: Vec<(String, String)> = Vec::new();
        let mut schema_changes: Vec<String> = Vec::new();
        for mv in moves.values() {
            self.check_release_changes(
                mv,
                &final_sets,
                &mut findings,
                &mut reports,
                &mut breaking,
                &mut schema_changes,
            );
        }
        let steps = if findings.iter().any(|f| f.severity == Severity::Error) {
            Vec::new()
        } else {
            plan(&StepInputs {
                order: &order,
                paths: Some(&paths),
                migrations: reports.iter().map(|(s, v, r)| (s.as_str(), v, r)).collect(),
                breaking: breaking
                    .iter()
                    .map(|(s, c)| (s.as_str(), c.clone()))
                    .collect(),
                schema_changes: schema_changes.iter().map(String::as_str).collect(),
                handovers: edges
                    .iter()
                    .map(|e| Handover {
                        api: e.api.clone(),
                        from: self.name(e.old).to_owned(),
                        to: self.name(e.new).to_owned(),
                    })
                    .collect(),
            })
        };
        Ok(UpgradeValidation::new(findings, order, paths, steps))
    }
}
