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
//! that do not change; against another moving service it is treated, conservatively, as possibly
//! running any version of its route while it moves. Pairs that already run together in the
//! current fleet are reported once as warnings and never blamed on the change.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use petgraph::algo::tarjan_scc;
use petgraph::graph::{DiGraph, NodeIndex};
use semver::Version;

use crate::breaking::{Bump, bump_between, diff_provided};
use crate::error::{Error, Result};
use crate::explain::Explanation;
use crate::fleet::{Fleet, Proposal};
use crate::matrix::{ChangeKind, Effect, Matrix, Rule};
use crate::migration::{MigrationReport, analyze};
use crate::path::{PathOptions, Route, UpgradeGraph};
use crate::registry::Registry;
use crate::steps::{StepInputs, plan};
use crate::validation::{Finding, Move, Severity, UpgradeValidation};

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
    needs: Option<crate::selector::Selector>,
    /// Whether the right side is missing from the fleet (not deployed).
    missing: bool,
}

impl Violation {
    /// Whether both sides already run together in `current`.
    fn preexisting(&self, current: &[Vec<Version>]) -> bool {
        let has = |(i, v): &(usize, Version)| current.get(*i).is_some_and(|s| s.contains(v));
        has(&self.left)
            && (has(&self.right)
                || (self.missing && current.get(self.right.0).is_some_and(Vec::is_empty)))
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
}

impl Validator {
    /// Compiles the rules; the matrix is validated against the registry.
    pub fn new(registry: Registry, matrix: Matrix) -> Result<Self> {
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
        let mut orphan_apis = Vec::new();
        for (a, name) in names.iter().enumerate() {
            let apis: BTreeSet<&str> = registry
                .releases(name)
                .flat_map(|r| r.consumes.iter().map(|c| c.api.as_str()))
                .collect();
            for api in apis {
                let providers: Vec<usize> = registry
                    .providers_of(api)
                    .into_iter()
                    .filter_map(|p| index.get(p).copied())
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
        })
    }

    /// Adds the upgrade graph of a service; its releases must exist in the registry.
    pub fn with_graph(mut self, service: &str, graph: UpgradeGraph) -> Result<Self> {
        if !self.registry.has_service(service) {
            return Err(Error::UnknownService {
                path: format!("graphs.{service}"),
                service: service.to_owned(),
            });
        }
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

    /// The first violation of constraint `ci` with `a_set` running for its first service and
    /// `b_set` for its second.
    fn check(&self, ci: usize, a_set: &[Version], b_set: &[Version]) -> Option<Violation> {
        self.check_skipping(ci, a_set, b_set, &|_| false)
    }

    /// Like `check`, ignoring violations for which `skip` is true (pairs that already run
    /// together in the current fleet, which no order of this change can fix).
    fn check_skipping(
        &self,
        ci: usize,
        a_set: &[Version],
        b_set: &[Version],
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
                                    needs: Some(r.req.clone()),
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
                                        needs: Some(r.req.clone()),
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
                                let v = Violation {
                                    fact,
                                    left: (a, va.clone()),
                                    right: (b, vb.clone()),
                                    needs: None,
                                    missing: false,
                                };
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
                                    let v = Violation {
                                        fact: format!("{why} ({label})"),
                                        left: (a, vc.clone()),
                                        right: (b, vs.clone()),
                                        needs: None,
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
                            let v = Violation {
                                fact: format!("{why} ({label})"),
                                left: (a, x.clone()),
                                right: (a, y.clone()),
                                needs: None,
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
            Kind::Api(api) => {
                for va in a_set {
                    let Some(release) = self.registry.release(self.name(a), va) else {
                        continue;
                    };
                    for need in release.consumes.iter().filter(|c| &c.api == api) {
                        for vb in b_set {
                            let Some(provided) = self
                                .registry
                                .release(self.name(b), vb)
                                .and_then(|r| r.provided(api))
                            else {
                                continue;
                            };
                            if !need.version.matches(&provided.version)
                                && !self.allowed(a, va, b, vb)
                            {
                                let v = Violation {
                                    fact: format!(
                                        "{} {va} calls api {api} {} but {} {vb} provides {api} {}",
                                        self.name(a),
                                        need.version,
                                        self.name(b),
                                        provided.version
                                    ),
                                    left: (a, va.clone()),
                                    right: (b, vb.clone()),
                                    needs: None,
                                    missing: false,
                                };
                                if !skip(&v) {
                                    return Some(v);
                                }
                            }
                        }
                    }
                }
                None
            }
        }
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
            if let Some(v) = self.check(ci, a_set, b_set) {
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
                *slot = versions.to_vec();
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
            if now.as_slice() == std::slice::from_ref(target) {
                findings.push(Finding::new(
                    Severity::Info,
                    "proposal.no-op",
                    format!("{service} {target}"),
                    format!("{service} already runs {target}"),
                ));
                continue;
            }
            let subject = format!("{service} {target}");
            if release.yanked {
                findings.push(
                    Finding::new(
                        Severity::Error,
                        "registry.yanked",
                        subject.clone(),
                        format!("{service} {target} was yanked and may not be deployed"),
                    )
                    .with_recipe("choose the next release that is not yanked"),
                );
            } else if release.deprecated {
                findings.push(Finding::new(
                    Severity::Warn,
                    "registry.deprecated",
                    subject.clone(),
                    format!("{service} {target} is deprecated"),
                ));
            }
            let mut hops = vec![target.clone()];
            if let (Some(graph), Some(from)) = (self.graphs.get(service), now.iter().max()) {
                let opts = PathOptions {
                    accept_conditional: self.options.accept_conditional,
                };
                match graph.route(from, target, opts) {
                    Ok(Route::Found(p)) => {
                        hops = p.hops.clone();
                        for r in &p.risks {
                            for risk in &r.risks {
                                findings.push(Finding::new(
                                    Severity::Warn,
                                    "path.conditional-edge",
                                    subject.clone(),
                                    format!(
                                        "the edge {} -> {} carries risk {}: {}",
                                        r.from, r.to, risk.name, risk.message
                                    ),
                                ));
                            }
                        }
                        paths.insert(service.to_owned(), p);
                    }
                    Ok(Route::NoRoute(why)) => {
                        findings.push(
                            Finding::new(
                                Severity::Error,
                                "path.no-route",
                                subject.clone(),
                                format!("no upgrade path leads from {service} {from} to {target}"),
                            )
                            .with_explanation(why),
                        );
                    }
                    Err(e) => findings.push(Finding::new(
                        Severity::Error,
                        "path.unknown-release",
                        subject.clone(),
                        e.to_string(),
                    )),
                }
            }
            if hops.is_empty() {
                hops.push(target.clone());
            }
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
                let (Some(sa), Some(sb)) = (current.get(c.a), current.get(c.b)) else {
                    continue;
                };
                if sa.is_empty() {
                    continue;
                }
                if let Some(v) = self.check(ci, sa, sb) {
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
        for &ci in &touched {
            let Some(c) = self.constraints.get(ci) else {
                continue;
            };
            let (a, b) = (c.a, c.b);
            if a == b {
                for state in states_of(a) {
                    if let Some(v) = self.check_skipping(ci, state, state, &skip) {
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
                            self.check_skipping(ci, xs, ys, &skip)
                        } else {
                            self.check_skipping(ci, ys, xs, &skip)
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
                            self.check_skipping(ci, state, fixed_set, &skip)
                        } else {
                            self.check_skipping(ci, fixed_set, state, &skip)
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
        let order = self.order(&moves, &pairs, &mut findings);
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
            })
        };
        Ok(UpgradeValidation::new(findings, order, paths, steps))
    }

    /// Turns the pairwise verdicts into "moves before" edges, reports conflicts and cycles, and
    /// layers the moves into groups (longest path from the sources).
    fn order(
        &self,
        moves: &BTreeMap<usize, Move>,
        pairs: &BTreeMap<(usize, usize), PairInfo>,
        findings: &mut Vec<Finding>,
    ) -> Vec<Vec<Move>> {
        let mut graph: DiGraph<usize, String> = DiGraph::new();
        let mut node: BTreeMap<usize, NodeIndex> = BTreeMap::new();
        for i in moves.keys() {
            node.insert(*i, graph.add_node(*i));
        }
        for ((x, y), info) in pairs {
            let (Some(&nx), Some(&ny)) = (node.get(x), node.get(y)) else {
                continue;
            };
            match (info.a_first_ok, info.b_first_ok) {
                (true, false) => {
                    let why = info
                        .b_first
                        .as_ref()
                        .map(|v| v.fact.clone())
                        .unwrap_or_default();
                    graph.add_edge(nx, ny, why);
                }
                (false, true) => {
                    let why = info
                        .a_first
                        .as_ref()
                        .map(|v| v.fact.clone())
                        .unwrap_or_default();
                    graph.add_edge(ny, nx, why);
                }
                (false, false) => {
                    let (sx, sy) = (self.name(*x), self.name(*y));
                    let mut e = Explanation::new(format!(
                        "{sx} and {sy} cannot be upgraded in either order, nor together"
                    ));
                    if let Some(v) = &info.a_first {
                        e = e.derived(
                            Explanation::new(format!("{sx} cannot move before {sy}"))
                                .fact(self.state_fact(v)),
                        );
                    }
                    if let Some(v) = &info.b_first {
                        e = e.derived(
                            Explanation::new(format!("{sy} cannot move before {sx}"))
                                .fact(self.state_fact(v)),
                        );
                    }
                    findings.push(
                        Finding::new(
                            Severity::Error,
                            "order.conflict",
                            format!("{sx}, {sy}"),
                            format!("no order lets {sx} and {sy} both reach their targets"),
                        )
                        .with_explanation(e)
                        .with_recipe(
                            "add an intermediate release compatible with both sides, or change \
                             one service in a separate upgrade first",
                        ),
                    );
                }
                (true, true) => {}
            }
        }
        let mut order = Vec::new();
        let cycles: Vec<Vec<NodeIndex>> = tarjan_scc(&graph)
            .into_iter()
            .filter(|c| c.len() > 1)
            .collect();
        for scc in &cycles {
            findings.push(self.cycle_finding(&graph, scc));
        }
        if cycles.is_empty() {
            let mut level: BTreeMap<NodeIndex, usize> = BTreeMap::new();
            if let Ok(sorted) = petgraph::algo::toposort(&graph, None) {
                for nx in sorted {
                    let l = graph
                        .neighbors_directed(nx, petgraph::Direction::Incoming)
                        .filter_map(|p| level.get(&p).map(|l| l + 1))
                        .max()
                        .unwrap_or(0);
                    level.insert(nx, l);
                }
            }
            let depth = level.values().max().map_or(0, |m| m + 1);
            let mut groups: Vec<Vec<Move>> = vec![Vec::new(); depth];
            for (nx, l) in &level {
                if let (Some(i), Some(g)) = (graph.node_weight(*nx), groups.get_mut(*l))
                    && let Some(mv) = moves.get(i)
                {
                    g.push(mv.clone());
                }
            }
            for g in &mut groups {
                g.sort_by(|p, q| p.service.cmp(&q.service));
            }
            order = groups;
        }
        order
    }

    /// The states a moving service passes through: for each hop, the mixed set then the new one.
    fn states_of(
        &self,
        i: usize,
        current: &[Vec<Version>],
        changing: &[Option<Vec<Version>>],
    ) -> Vec<Vec<Version>> {
        let mut states = Vec::new();
        let mut running = current.get(i).cloned().unwrap_or_default();
        if let Some(Some(hops)) = changing.get(i) {
            for hop in hops {
                let mut mixed = running.clone();
                if !mixed.contains(hop) {
                    mixed.push(hop.clone());
                }
                mixed.sort();
                states.push(mixed);
                running = vec![hop.clone()];
                states.push(running.clone());
            }
        }
        states
    }

    fn state_fact(&self, v: &Violation) -> String {
        format!(
            "{} while {} {} and {} {} run side by side",
            v.fact,
            self.name(v.left.0),
            v.left.1,
            self.name(v.right.0),
            v.right.1
        )
    }

    fn blocked_finding(
        &self,
        ci: usize,
        v: &Violation,
        moving: usize,
        current: &[Vec<Version>],
    ) -> Finding {
        let (mine, other) = if v.left.0 == moving {
            (&v.left, &v.right)
        } else {
            (&v.right, &v.left)
        };
        let (ms, os) = (self.name(mine.0), self.name(other.0));
        let other_running = current.get(other.0).is_some_and(|s| !s.is_empty());
        let conclusion = if mine.0 == other.0 {
            format!(
                "{ms} cannot run {} and {} side by side during the rollout",
                v.left.1, v.right.1
            )
        } else if other_running {
            format!(
                "{ms} {} cannot be deployed while {os} is at {}",
                mine.1, other.1
            )
        } else {
            format!(
                "{ms} {} cannot be deployed while {os} is not deployed",
                mine.1
            )
        };
        let mut e = Explanation::new(conclusion.clone()).fact(v.fact.clone());
        if mine.0 != other.0 && other_running {
            e = e.fact(format!("{os} {} is running and does not change", other.1));
        }
        let mut recipe = None;
        if let Some(needs) = &v.needs
            && v.left.0 == moving
            && mine.0 != other.0
        {
            let candidate = self
                .registry
                .releases(os)
                .filter(|r| !r.yanked && needs.matches(&r.version))
                .map(|r| r.version.clone())
                .next();
            match candidate {
                None => e = e.fact(format!("no release of {os} matches {needs}")),
                Some(target) => {
                    let from = current.get(other.0).and_then(|s| s.iter().max().cloned());
                    match (self.graphs.get(os), from) {
                        (Some(g), Some(from)) => match g.route(
                            &from,
                            &target,
                            PathOptions {
                                accept_conditional: self.options.accept_conditional,
                            },
                        ) {
                            Ok(Route::NoRoute(why)) => e = e.derived(why),
                            Ok(Route::Found(p)) => {
                                recipe = Some(format!(
                                    "upgrade {os} to {target} in the same change (path {p})"
                                ));
                            }
                            Err(_) => {}
                        },
                        _ => {
                            recipe = Some(format!("upgrade {os} to {target} in the same change"));
                        }
                    }
                }
            }
        }
        let mut f = Finding::new(
            Severity::Error,
            self.code(ci),
            format!("{ms} {}", mine.1),
            conclusion,
        )
        .with_evidence(v.fact.clone())
        .with_explanation(e);
        if let Some(r) = recipe {
            f = f.with_recipe(r);
        }
        f
    }

    fn cycle_finding(&self, graph: &DiGraph<usize, String>, scc: &[NodeIndex]) -> Finding {
        let members: BTreeSet<NodeIndex> = scc.iter().copied().collect();
        let start = scc.iter().copied().min().unwrap_or_default();
        // Breadth-first search inside the component for a way back to `start`.
        let mut prev: BTreeMap<NodeIndex, (NodeIndex, String)> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        let mut end = None;
        while let Some(u) = queue.pop_front() {
            for e in graph.edges(u) {
                use petgraph::visit::EdgeRef;
                let t = e.target();
                if !members.contains(&t) {
                    continue;
                }
                if t == start {
                    end = Some((u, e.weight().clone()));
                    break;
                }
                if let std::collections::btree_map::Entry::Vacant(slot) = prev.entry(t) {
                    slot.insert((u, e.weight().clone()));
                    queue.push_back(t);
                }
            }
            if end.is_some() {
                break;
            }
        }
        let mut chain = Vec::new();
        if let Some((last, why)) = end {
            chain.push((last, start, why));
            let mut cur = last;
            while cur != start {
                let Some((p, why)) = prev.get(&cur).cloned() else {
                    break;
                };
                chain.push((p, cur, why));
                cur = p;
            }
            chain.reverse();
        }
        let name = |nx: NodeIndex| {
            graph
                .node_weight(nx)
                .map_or("?", |i| self.name(*i))
                .to_owned()
        };
        let mut names: Vec<String> = chain.iter().map(|(f, _, _)| name(*f)).collect();
        names.push(name(start));
        let cycle = names.join(" -> ");
        let mut e = Explanation::new(format!("no order exists for the cycle {cycle}"));
        for (f, t, why) in &chain {
            e = e.fact(format!(
                "{} must move before {} because otherwise {why}",
                name(*f),
                name(*t)
            ));
        }
        Finding::new(
            Severity::Error,
            "order.cycle",
            cycle.clone(),
            format!("the services {cycle} must each move before the next: a cycle"),
        )
        .with_explanation(e)
        .with_recipe("split the upgrade: add a release of one service that works with both sides")
    }

    fn check_move_rules(
        &self,
        i: usize,
        now: &[Version],
        hops: &[Version],
        findings: &mut Vec<Finding>,
    ) {
        let service = self.name(i).to_owned();
        let Some(start) = now.iter().max() else {
            return;
        };
        let mut prev = start.clone();
        for hop in hops {
            for &ri in self.move_rules.get(i).map(Vec::as_slice).unwrap_or(&[]) {
                let label = self.matrix.label(ri);
                match self.matrix.rules().get(ri) {
                    Some(Rule::OneMinorAtATime(_)) => {
                        let ok = hop <= &prev
                            || (hop.major == prev.major && hop.minor <= prev.minor + 1);
                        if !ok {
                            let e = Explanation::new(format!(
                                "{service} cannot go from {prev} to {hop} in one step"
                            ))
                            .fact(format!("{service} moves one minor at a time ({label})"))
                            .fact(format!("{prev} -> {hop} skips at least one minor"));
                            findings.push(
                                Finding::new(
                                    Severity::Error,
                                    "matrix.oneMinorAtATime",
                                    format!("{service} {hop}"),
                                    format!("{service} {prev} -> {hop} skips a minor"),
                                )
                                .with_explanation(e)
                                .with_recipe(self.stepwise_recipe(&service, &prev, hop)),
                            );
                        }
                    }
                    Some(Rule::Transition(t)) if t.change.matches(&prev, hop) => {
                        let severity = match t.effect {
                            Effect::Block => Severity::Error,
                            Effect::Warn => Severity::Warn,
                        };
                        let kind = match t.change {
                            ChangeKind::Major => "major",
                            ChangeKind::Minor => "minor",
                            ChangeKind::Patch => "patch",
                            ChangeKind::Downgrade => "downgrade",
                        };
                        findings.push(
                            Finding::new(
                                severity,
                                "matrix.transition",
                                format!("{service} {hop}"),
                                format!(
                                    "{service} {prev} -> {hop} is a {kind} change: {}",
                                    t.reason
                                ),
                            )
                            .with_evidence(label),
                        );
                    }
                    _ => {}
                }
            }
            prev = hop.clone();
        }
    }

    /// "Go through 1.29.14, then 1.30.10": the latest release of each minor in between.
    fn stepwise_recipe(&self, service: &str, from: &Version, to: &Version) -> String {
        let mut stops = Vec::new();
        if from.major == to.major {
            for minor in (from.minor + 1)..to.minor {
                let latest = self
                    .registry
                    .releases(service)
                    .filter(|r| {
                        !r.yanked && r.version.major == from.major && r.version.minor == minor
                    })
                    .map(|r| r.version.to_string())
                    .last();
                stops.push(
                    latest.unwrap_or_else(|| format!("{}.{minor}.x (not released)", from.major)),
                );
            }
        }
        if stops.is_empty() {
            format!("move {service} one minor at a time from {from} towards {to}")
        } else {
            format!(
                "move {service} one minor at a time: {from} -> {} -> {to}, each as its own upgrade",
                stops.join(" -> ")
            )
        }
    }

    fn replay(&self, order: &[Vec<Move>], current: &[Vec<Version>]) -> Vec<Finding> {
        let mut state: Vec<Vec<Version>> = current.to_vec();
        let mut findings = Vec::new();
        for (g, group) in order.iter().enumerate() {
            let mut ids = Vec::new();
            for mv in group {
                let Some(&i) = self.index.get(&mv.service) else {
                    continue;
                };
                if let Some(slot) = state.get_mut(i) {
                    slot.extend(mv.hops.iter().cloned());
                    slot.sort();
                    slot.dedup();
                }
                ids.push(i);
            }
            findings.extend(self.check_touching(&ids, &state, current, g, "while it rolls out"));
            for mv in group {
                if let (Some(&i), Some(t)) = (self.index.get(&mv.service), mv.target())
                    && let Some(slot) = state.get_mut(i)
                {
                    *slot = vec![t.clone()];
                }
            }
            findings.extend(self.check_touching(&ids, &state, current, g, "after it completes"));
        }
        findings
    }

    fn check_touching(
        &self,
        ids: &[usize],
        state: &[Vec<Version>],
        current: &[Vec<Version>],
        group: usize,
        when: &str,
    ) -> Vec<Finding> {
        let cis: BTreeSet<usize> = ids
            .iter()
            .filter_map(|i| self.by_service.get(*i))
            .flatten()
            .copied()
            .collect();
        let mut out = Vec::new();
        for ci in cis {
            let Some(c) = self.constraints.get(ci) else {
                continue;
            };
            let (Some(sa), Some(sb)) = (state.get(c.a), state.get(c.b)) else {
                continue;
            };
            if let Some(v) = self.check_skipping(ci, sa, sb, &|v| v.preexisting(current)) {
                out.push(Finding::new(
                    Severity::Error,
                    self.code(ci),
                    format!("group {}", group + 1),
                    format!("the fleet breaks a rule {when}: {}", v.fact),
                ));
            }
        }
        out
    }

    fn check_release_changes(
        &self,
        mv: &Move,
        findings: &mut Vec<Finding>,
        reports: &mut Vec<(String, Version, MigrationReport)>,
        breaking: &mut Vec<(String, String)>,
        schema_changes: &mut Vec<String>,
    ) {
        let service = mv.service.as_str();
        let Some(target) = mv.target() else { return };
        let Some(new) = self.registry.release(service, target) else {
            return;
        };
        let old_version = mv.from.iter().max();
        let old = old_version.and_then(|v| self.registry.release(service, v));
        if let Some(old) = old {
            let (mut f, changes) = diff_provided(service, &old.provides, &new.provides);
            for c in changes.iter().filter(|c| c.severity >= Severity::Warn) {
                breaking.push((
                    service.to_owned(),
                    format!("{} ({})", c.message, c.location),
                ));
            }
            findings.append(&mut f);
            if old.schema_version != new.schema_version && new.schema_version.is_some() {
                schema_changes.push(service.to_owned());
                let shipped = self.registry.releases(service).any(|r| {
                    &r.version > old_version.unwrap_or(&r.version)
                        && &r.version <= target
                        && !r.migrations.is_empty()
                });
                if !shipped {
                    findings.push(Finding::new(
                        Severity::Warn,
                        "registry.schema-without-migration",
                        format!("{service} {target}"),
                        format!(
                            "{service} needs schema version {} instead of {} but no release up to \
                             {target} ships a migration",
                            new.schema_version.unwrap_or_default(),
                            old.schema_version
                                .map_or_else(|| "none".to_owned(), |v| v.to_string())
                        ),
                    ));
                }
            }
        }
        let from = old_version.cloned();
        for release in self.registry.releases(service) {
            let in_range = from.as_ref().is_none_or(|f| &release.version > f)
                && &release.version <= target
                && !release.yanked;
            if !in_range {
                continue;
            }
            for change in &release.breaking {
                breaking.push((service.to_owned(), change.clone()));
                findings.push(Finding::new(
                    Severity::Info,
                    "breaking.declared",
                    format!("{service} {}", release.version),
                    format!("declared breaking change: {change}"),
                ));
            }
            if !release.breaking.is_empty()
                && let Some(f) = &from
                && bump_between(f, &release.version) < Bump::Major
            {
                findings.push(Finding::new(
                    Severity::Warn,
                    "breaking.semver-violation",
                    format!("{service} {}", release.version),
                    format!(
                        "{service} {} declares breaking changes without a major bump from {f}",
                        release.version
                    ),
                ));
            }
            for m in &release.migrations {
                match analyze(&m.name, &m.sql) {
                    Ok(report) => {
                        for (s, sf) in report.findings() {
                            findings.push(
                                Finding::new(
                                    sf.severity,
                                    format!("sql.{}", sf.rule),
                                    format!(
                                        "{service} {} migration {} statement {} (line {}, column {})",
                                        release.version, m.name, s.number, s.line, s.column
                                    ),
                                    format!("{} [{}]", sf.message, sf.safety),
                                )
                                .with_evidence(s.sql.clone())
                                .with_recipe(sf.recipe.clone()),
                            );
                        }
                        reports.push((service.to_owned(), release.version.clone(), report));
                    }
                    Err(e) => findings.push(Finding::new(
                        Severity::Error,
                        "sql.parse",
                        format!("{service} {} migration {}", release.version, m.name),
                        e.to_string(),
                    )),
                }
            }
        }
    }
}
