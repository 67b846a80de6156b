//! One service's move: its hops along the upgrade graph, and what a validation reports about
//! it alone (a yanked or deprecated release, a risky or missing route, the states a rule blocks,
//! required stops, and the breaking and migration changes the release brings).

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use crate::breaking::{Bump, Change, bump_between, diff_provided_with};
use crate::explain::Explanation;
use crate::matrix::{ChangeKind, Effect, Rule};
use crate::migration::{FAILS_WHATEVER_RUNS, MigrationReport, Schema, analyze_with};
use crate::path::{EdgeState, HopRisk, PathOptions, Route, UpgradeGraph, UpgradePath};
use crate::registry::{ProvidedApi, Release};
use crate::validation::{Finding, Move, Severity};

use super::{Needs, Validator, Violation};

/// The most minors a one-minor-at-a-time recipe lists one by one.
const MAX_LISTED_STOPS: u64 = 12;

impl Validator {
    /// The hops of one service's move to `release`, from the versions it runs `now`: along its
    /// upgrade graph when it has one (recording the route in `paths`), else straight to the
    /// target. Every instance deploys each hop in turn, so the first hop must be one step away
    /// from every version running: the route is the cheapest from the latest version running
    /// whose first hop every other running version reaches by an edge (or runs already), so
    /// that a fleet half-way through a rollout finishes it before it moves on. A running version
    /// the graph leaves out is still a start: a yanked one is the version most in need of a way
    /// off. Yanked and deprecated targets, deprecated hops, risky edges and missing routes are
    /// reported.
    pub(super) fn hops(
        &self,
        service: &str,
        release: &Release,
        now: &[Version],
        paths: &mut BTreeMap<String, UpgradePath>,
        findings: &mut Vec<Finding>,
    ) -> Vec<Version> {
        let target = &release.version;
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
        if let (Some(graph), Some(latest)) = (self.graphs.get(service), now.iter().max()) {
            let opts = PathOptions {
                accept_conditional: self.options.accept_conditional,
            };
            // The first answer, from the latest version running, explains a failure.
            let mut first: Option<Result<Route, String>> = None;
            let mut stray: Option<(Version, UpgradePath)> = None;
            let mut chosen = None;
            for from in now.iter().rev() {
                let route = graph
                    .route_from_running(from, target, opts)
                    .map_err(|e| e.to_string());
                if let Ok(Route::Found(p)) = &route {
                    match self.strays(graph, now, p, opts) {
                        Ok(risks) => {
                            chosen = Some((p.clone(), risks));
                            break;
                        }
                        Err(r) => {
                            stray.get_or_insert((r, p.clone()));
                        }
                    }
                }
                first.get_or_insert(route);
            }
            match (chosen, first) {
                (Some((mut p, joining)), _) => {
                    // The edges other running versions take into the first hop count as hops.
                    p.risks.splice(0..0, joining);
                    hops = p.hops.clone();
                    // Every hop is deployed, so a deprecated one warns as a deprecated target
                    // does.
                    let deprecated = hops.iter().filter(|hop| {
                        *hop != target
                            && self
                                .registry
                                .release(service, hop)
                                .is_some_and(|r| r.deprecated)
                    });
                    for hop in deprecated {
                        findings.push(Finding::new(
                            Severity::Warn,
                            "registry.deprecated",
                            format!("{service} {hop}"),
                            format!(
                                "{service} {hop} is deprecated, and the route to {target} \
                                 deploys it"
                            ),
                        ));
                    }
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
                (None, Some(Ok(Route::NoRoute(why)))) => {
                    findings.push(
                        Finding::new(
                            Severity::Error,
                            "path.no-route",
                            subject.clone(),
                            format!("no upgrade path leads from {service} {latest} to {target}"),
                        )
                        .with_explanation(why),
                    );
                }
                (None, Some(Err(e))) => findings.push(Finding::new(
                    Severity::Error,
                    "path.unknown-release",
                    subject.clone(),
                    e,
                )),
                (None, _) => {
                    if let Some((r, p)) = stray {
                        findings.push(self.mixed_fleet_finding(service, graph, now, &r, &p));
                    }
                }
            }
        }
        if hops.is_empty() {
            hops.push(target.clone());
        }
        hops
    }

    /// Whether every version in `now` reaches the first hop of `path` in one step (or runs it):
    /// the risks of the conditional edges taken, or the first version that does not.
    fn strays(
        &self,
        graph: &UpgradeGraph,
        now: &[Version],
        path: &UpgradePath,
        opts: PathOptions,
    ) -> Result<Vec<HopRisk>, Version> {
        let Some(hop) = path.hops.first() else {
            return Ok(Vec::new());
        };
        let mut risks = Vec::new();
        for r in now.iter().filter(|r| *r != &path.from && *r != hop) {
            match graph.edge_from_running(r, hop) {
                Ok(Some(EdgeState::Allowed)) => {}
                Ok(Some(EdgeState::Conditional(list))) if opts.accept_conditional => {
                    risks.push(HopRisk {
                        from: r.clone(),
                        to: hop.clone(),
                        risks: list,
                    });
                }
                _ => return Err(r.clone()),
            }
        }
        Ok(risks)
    }

    /// A fleet half-way through a rollout that no single route serves: `stray` cannot reach
    /// the first hop of `path`, the route from another running version.
    fn mixed_fleet_finding(
        &self,
        service: &str,
        graph: &UpgradeGraph,
        now: &[Version],
        stray: &Version,
        path: &UpgradePath,
    ) -> Finding {
        let running: Vec<String> = now.iter().map(ToString::to_string).collect();
        let running = running.join(", ");
        let target = path.hops.last().unwrap_or(&path.from);
        let hop = path.hops.first().unwrap_or(target);
        let conclusion =
            format!("{service} runs {running}, and no route to {target} suits every instance");
        let why = graph
            .edge_not_taken(stray, hop)
            .ok()
            .flatten()
            .unwrap_or_else(|| format!("{stray} -> {hop} is not an upgrade edge"));
        let e = Explanation::new(conclusion.clone())
            .fact(format!("the route from {} is {path}", path.from))
            .fact(format!(
                "the instances at {stray} cannot go straight to {hop}: {why}"
            ));
        let latest = now.iter().max().unwrap_or(&path.from);
        let joins = now
            .iter()
            .all(|r| r == latest || matches!(graph.edge_from_running(r, latest), Ok(Some(_))));
        let recipe = if joins {
            format!("finish the rollout of {service} to {latest} first, then upgrade to {target}")
        } else {
            format!(
                "bring every instance of {service} to one version first, then upgrade to {target}"
            )
        };
        Finding::new(
            Severity::Error,
            "path.mixed-fleet",
            format!("{service} {target}"),
            conclusion,
        )
        .with_explanation(e)
        .with_recipe(recipe)
    }

    pub(super) fn state_fact(&self, v: &Violation) -> String {
        format!(
            "{} while {} {} and {} {} run side by side",
            v.fact,
            self.name(v.left.0),
            v.left.1,
            self.name(v.right.0),
            v.right.1
        )
    }

    pub(super) fn blocked_finding(
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
            let from = current.get(other.0).and_then(|s| s.iter().max().cloned());
            let candidate = match needs {
                // The nearest release that matches: the first after the one running, else the
                // last before it (the move then goes back); with none running, the newest.
                Needs::Release(sel) => {
                    let matching: Vec<&Version> = self
                        .registry
                        .releases(os)
                        .filter(|r| !r.yanked && sel.matches(&r.version))
                        .map(|r| &r.version)
                        .collect();
                    let nearest = match &from {
                        Some(f) => matching
                            .iter()
                            .find(|r| **r > f)
                            .or_else(|| matching.last()),
                        None => matching.last(),
                    };
                    nearest
                        .map(|r| (*r).clone())
                        .ok_or_else(|| format!("no release of {os} matches {sel}"))
                }
                // The first release that offers the API, after the one running.
                Needs::Api(api, req) => self
                    .registry
                    .releases(os)
                    .filter(|r| from.as_ref().is_none_or(|f| &r.version > f))
                    .find(|r| !r.yanked && r.provided(api).is_some_and(|p| req.matches(&p.version)))
                    .map(|r| r.version.clone())
                    .ok_or_else(|| match &from {
                        Some(f) => format!("no release of {os} after {f} provides api {api} {req}"),
                        None => format!("no release of {os} provides api {api} {req}"),
                    }),
            };
            match candidate {
                Err(why) => e = e.fact(why),
                Ok(target) => match (self.graphs.get(os), from) {
                    (Some(g), Some(from)) => match g.route_from_running(
                        &from,
                        &target,
                        PathOptions {
                            accept_conditional: self.options.accept_conditional,
                        },
                    ) {
                        Ok(Route::NoRoute(why)) => e = e.derived(why),
                        Ok(Route::Found(p)) => {
                            recipe = Some(format!(
                                "{} in the same change (path {p})",
                                move_to(os, &from, &target)
                            ));
                        }
                        Err(_) => {}
                    },
                    (_, Some(from)) => {
                        recipe = Some(format!(
                            "{} in the same change",
                            move_to(os, &from, &target)
                        ));
                    }
                    (_, None) => {
                        recipe = Some(format!("deploy {os} {target} in the same change"));
                    }
                },
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

    /// Checks the rules on how one service moves (one minor at a time, transitions) on every
    /// step of its move: from each version running to the first hop (a fleet half-way through
    /// a rollout moves from all of them), then from hop to hop. A rule is reported once per
    /// hop, for the lowest running version that breaks it.
    pub(super) fn check_move_rules(
        &self,
        i: usize,
        now: &[Version],
        hops: &[Version],
        findings: &mut Vec<Finding>,
    ) {
        let service = self.name(i).to_owned();
        let rules = self.move_rules.get(i).map(Vec::as_slice).unwrap_or(&[]);
        if now.is_empty() || rules.is_empty() {
            return;
        }
        let mut from: Vec<&Version> = now.iter().collect();
        for hop in hops {
            for &ri in rules {
                let label = self.matrix.label(ri);
                match self.matrix.rules().get(ri) {
                    Some(Rule::OneMinorAtATime(_)) => {
                        let Some(prev) = from
                            .iter()
                            .find(|prev| !self.one_minor_step(&service, prev, hop))
                        else {
                            continue;
                        };
                        let e = Explanation::new(format!(
                            "{service} cannot go from {prev} to {hop} in one step"
                        ))
                        .fact(format!(
                            "{service} moves one minor at a time and never skips a major \
                             ({label})"
                        ))
                        .fact(format!("{prev} -> {hop} skips at least one minor"));
                        findings.push(
                            Finding::new(
                                Severity::Error,
                                "matrix.oneMinorAtATime",
                                format!("{service} {hop}"),
                                format!("{service} {prev} -> {hop} skips a minor"),
                            )
                            .with_explanation(e)
                            .with_recipe(self.stepwise_recipe(&service, prev, hop)),
                        );
                    }
                    Some(Rule::Transition(t)) => {
                        let Some(prev) = from.iter().find(|prev| t.change.matches(prev, hop))
                        else {
                            continue;
                        };
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
            from = vec![hop];
        }
    }

    /// The latest minor of each major among the releases of `service` that are not yanked. A
    /// minor with only pre-releases is not counted: nobody must run a release candidate
    /// before moving to the next major.
    fn last_minors(&self, service: &str) -> BTreeMap<u64, u64> {
        let mut last = BTreeMap::new();
        for r in self
            .registry
            .releases(service)
            .filter(|r| !r.yanked && r.version.pre.is_empty())
        {
            let minor = last.entry(r.version.major).or_insert(r.version.minor);
            *minor = (*minor).max(r.version.minor);
        }
        last
    }

    /// Whether one-minor-at-a-time allows `from -> to` in one step, either way (a rollback is
    /// bound as an upgrade is): within a minor, to the next or the previous minor, and from the
    /// latest minor of a major that has a release to the next major's `.0` (or back).
    fn one_minor_step(&self, service: &str, from: &Version, to: &Version) -> bool {
        let (lo, hi) = if (from.major, from.minor) <= (to.major, to.minor) {
            (from, to)
        } else {
            (to, from)
        };
        if lo.major == hi.major {
            return hi.minor - lo.minor <= 1;
        }
        lo.major.checked_add(1) == Some(hi.major)
            && hi.minor == 0
            && self
                .last_minors(service)
                .get(&lo.major)
                .is_none_or(|last| *last <= lo.minor)
    }

    /// "Go through 1.29.14, then 1.30.10": upwards, the latest patch of the current minor, then
    /// the latest release of each minor in between, in the order the move passes them
    /// (downwards for a rollback, through the latest minor of each major and the `.0` of the
    /// next), a pre-release only when its minor has nothing else (a stop is run in production).
    /// Each step of the recipe is one `one_minor_step` allows. A way through more than
    /// [`MAX_LISTED_STOPS`] minors (date-numbered minors, say) is summarised with its first
    /// stop, so the recipe stays readable and its cost does not grow with the gap.
    fn stepwise_recipe(&self, service: &str, from: &Version, to: &Version) -> String {
        let latest_of = |(major, minor): (u64, u64)| {
            let of_minor: Vec<&Version> = self
                .registry
                .releases(service)
                .filter(|r| !r.yanked && r.version.major == major && r.version.minor == minor)
                .map(|r| &r.version)
                .collect();
            of_minor
                .iter()
                .rev()
                .find(|v| v.pre.is_empty())
                .or(of_minor.last())
                .map_or_else(
                    || format!("{major}.{minor}.x (not released)"),
                    ToString::to_string,
                )
        };
        // Upwards, the latest patch of the current minor comes first (as Kubernetes asks):
        // the way on is tested from there.
        let patch_first = (from < to)
            .then(|| {
                self.registry
                    .releases(service)
                    .filter(|r| !r.yanked && r.version.pre.is_empty())
                    .map(|r| &r.version)
                    .filter(|v| (v.major, v.minor) == (from.major, from.minor) && *v > from)
                    .max()
            })
            .flatten()
            .map(|v| format!("{v} -> "))
            .unwrap_or_default();
        let last = self.last_minors(service);
        let listed: Vec<(u64, u64)> = minors_between(from, to, &last)
            .take(
                usize::try_from(MAX_LISTED_STOPS)
                    .unwrap_or(usize::MAX)
                    .saturating_add(1),
            )
            .collect();
        let Some(&first) = listed.first() else {
            return format!("move {service} one minor at a time from {from} towards {to}");
        };
        if listed.len() as u64 > MAX_LISTED_STOPS {
            if from.major == to.major && from.minor < to.minor {
                // `to.minor >= from.minor + 2` here.
                let between = to.minor - from.minor - 1;
                let released: BTreeSet<u64> = self
                    .registry
                    .releases(service)
                    .filter(|r| !r.yanked && r.version.major == from.major)
                    .map(|r| r.version.minor)
                    .filter(|m| (first.1..to.minor).contains(m))
                    .collect();
                return format!(
                    "move {service} one minor at a time from {from} to {to}, each as its own \
                     upgrade, starting with {patch_first}{}: {between} minors lie in between, {} \
                     of them released",
                    latest_of(first),
                    released.len()
                );
            }
            return format!(
                "move {service} one minor at a time from {from} to {to}, each as its own \
                 upgrade, starting with {patch_first}{}: more than {MAX_LISTED_STOPS} minors lie \
                 in between",
                latest_of(first)
            );
        }
        let stops: Vec<String> = listed.into_iter().map(latest_of).collect();
        format!(
            "move {service} one minor at a time: {from} -> {patch_first}{} -> {to}, each as its \
             own upgrade",
            stops.join(" -> ")
        )
    }

    /// Reports the changes another tool found in the APIs of the releases a move passes
    /// (`passed`), and returns them by API, for the check of each API's version over the move.
    fn reported_changes<'a>(
        service: &str,
        passed: &[&'a Release],
        findings: &mut Vec<Finding>,
        breaking: &mut Vec<(String, String)>,
    ) -> BTreeMap<&'a str, Vec<Change>> {
        let mut by_api: BTreeMap<&str, Vec<Change>> = BTreeMap::new();
        for release in passed {
            for api in release.provides.iter().filter(|a| !a.reported.is_empty()) {
                let subject = format!("{service} {} api {}", release.version, api.name);
                for c in &api.reported {
                    let what = format!("{} ({})", c.message, c.location);
                    if c.severity >= Severity::Warn {
                        breaking.push((service.to_owned(), what.clone()));
                    }
                    findings.push(Finding::new(
                        c.severity,
                        format!("breaking.{}", c.id),
                        subject.clone(),
                        what,
                    ));
                }
                by_api
                    .entry(api.name.as_str())
                    .or_default()
                    .extend(api.reported.iter().cloned());
            }
        }
        by_api
    }

    /// The API changes of a rollback from `newest` to `target`, made warnings: going back takes
    /// away only what the versions being undone introduced, from the clients that began to use
    /// it since. The consumers the registry knows are checked apart (`api.requires`) and still
    /// block a rollback that leaves them without the API version they need; a client unknown
    /// to the registry is no reason to keep serving a version that is being rolled back.
    fn going_back(findings: &mut [Finding], newest: &Version, target: &Version) {
        for f in findings
            .iter_mut()
            .filter(|f| f.severity == Severity::Error && f.code.starts_with("breaking."))
        {
            f.severity = Severity::Warn;
            f.message = format!(
                "{}: a rollback from {newest} to {target} takes it from the clients that began \
                 to use it since",
                f.message
            );
        }
    }

    /// What a move's releases change: the APIs it provides (an API the target state serves
    /// elsewhere, `fin`, is handed over rather than removed), declared breaking changes and
    /// migrations.
    pub(super) fn check_release_changes(
        &self,
        mv: &Move,
        fin: &[Vec<Version>],
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
        // In a mixed fleet, the API changes count from the oldest running version, whose clients
        // lose what it served when its instances move; the schema is the newest version's, whose
        // migrations have run, so migrations count from it.
        let oldest = mv.from.iter().min();
        let old_version = mv.from.iter().max();
        let old = old_version.and_then(|v| self.registry.release(service, v));
        let from = old_version.cloned();
        let after = |start: Option<&Version>| -> Vec<&Release> {
            self.registry
                .releases(service)
                .filter(|r| {
                    start.is_none_or(|f| &r.version > f) && &r.version <= target && !r.yanked
                })
                .collect()
        };
        let passed = after(old_version);
        // The API changes of the releases passed break the clients of what runs; on a first
        // install nothing runs, so no client was served what they change (as Serin's own diff
        // of the surfaces finds nothing then).
        let passed_by_oldest = if oldest.is_some() {
            after(oldest)
        } else {
            Vec::new()
        };
        let reported = Self::reported_changes(service, &passed_by_oldest, findings, breaking);
        if let Some(oldest) = oldest.and_then(|v| self.registry.release(service, v)) {
            let me = self.index.get(service).copied();
            let elsewhere = |api: &ProvidedApi| me.and_then(|i| self.taken_over(i, api, fin));
            let (mut f, changes) = diff_provided_with(
                service,
                &oldest.provides,
                &new.provides,
                &reported,
                &elsewhere,
            );
            for c in changes.iter().filter(|c| c.severity >= Severity::Warn) {
                breaking.push((
                    service.to_owned(),
                    format!("{} ({})", c.message, c.location),
                ));
            }
            if let Some(newest) = old_version.filter(|running| target < *running) {
                Self::going_back(&mut f, newest, target);
            }
            findings.append(&mut f);
        }
        if let Some(old) = old
            && old.schema_version != new.schema_version
            && new.schema_version.is_some()
        {
            schema_changes.push(service.to_owned());
            let needed = new.schema_version.unwrap_or_default();
            let shipped = || {
                self.registry.releases(service).any(|r| {
                    &r.version > old_version.unwrap_or(&r.version)
                        && &r.version <= target
                        && !r.migrations.is_empty()
                })
            };
            // Going back, the database keeps the schema the newer release migrated it to.
            match (
                old_version.is_some_and(|running| target < running),
                old.schema_version,
            ) {
                (true, Some(at)) => findings.push(Finding::new(
                    Severity::Warn,
                    "registry.schema-rollback",
                    format!("{service} {target}"),
                    format!(
                        "{service} {target} needs schema version {needed}, but the database is \
                         at {at}: a rollback does not undo migrations, so {target} must work on \
                         schema {at}, or the database be restored from a backup taken before it \
                         moved to {at}"
                    ),
                )),
                (true, None) => {}
                (false, at) if !shipped() => findings.push(Finding::new(
                    Severity::Warn,
                    "registry.schema-without-migration",
                    format!("{service} {target}"),
                    format!(
                        "{service} needs schema version {needed} instead of {} but no release up \
                         to {target} ships a migration",
                        at.map_or_else(|| "none".to_owned(), |v| v.to_string())
                    ),
                )),
                (false, _) => {}
            }
        }
        // What the running version's schema holds, from the migrations of the releases up to
        // it, so that a retype is judged against the column's type.
        let mut schema = Schema::default();
        let history = self
            .registry
            .releases(service)
            .filter(|r| from.as_ref().is_some_and(|f| &r.version <= f) && !r.yanked);
        for m in history.flat_map(|r| &r.migrations) {
            schema.learn(&m.sql);
        }
        for release in passed_by_oldest {
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
                && let Some(f) = oldest
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
        }
        for release in passed {
            for m in &release.migrations {
                let analysed = analyze_with(&m.name, &m.sql, &schema, m.run_by(), &m.options());
                schema.learn(&m.sql);
                match analysed {
                    Ok(report) => {
                        for (s, sf) in report.findings() {
                            // A first install: no old version reads the tables and no traffic
                            // waits on their locks, so only what fails whatever runs stands.
                            let moot = mv.from.is_empty()
                                && sf.severity > Severity::Info
                                && !FAILS_WHATEVER_RUNS.contains(&sf.rule.as_str());
                            let mut message = if sf.ignored {
                                format!(
                                    "{} [{}; ignored by a serin:ignore comment]",
                                    sf.message, sf.safety
                                )
                            } else {
                                format!("{} [{}]", sf.message, sf.safety)
                            };
                            if moot {
                                message.push_str(&format!(
                                    " (nothing of {service} runs yet: no running version or \
                                     traffic is affected)"
                                ));
                            }
                            findings.push(
                                Finding::new(
                                    if moot { Severity::Info } else { sf.severity },
                                    format!("sql.{}", sf.rule),
                                    format!(
                                        "{service} {} migration {} statement {} (line {}, column {})",
                                        release.version, m.name, s.number, s.line, s.column
                                    ),
                                    message,
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

/// The minors (`(major, minor)`) a one-minor-at-a-time move from `from` to `to` passes, in
/// order, without either end: every minor of the same major in between; across majors, the
/// minors of `from`'s major up to its latest (`last`, per major), each minor of every major in
/// between up to its latest (its `.0` when it has no release), and those of `to`'s major below
/// `to`'s. Lazy, so that a gap of many minors costs nothing until read.
fn minors_between<'a>(
    from: &Version,
    to: &Version,
    last: &'a BTreeMap<u64, u64>,
) -> Box<dyn Iterator<Item = (u64, u64)> + 'a> {
    let down = (from.major, from.minor) > (to.major, to.minor);
    let (lo, hi) = if down { (to, from) } else { (from, to) };
    let (lo_major, hi_major, lo_minor, hi_minor) = (lo.major, hi.major, lo.minor, hi.minor);
    let same = lo_major == hi_major;
    let range = |start: Option<u64>, end: Option<u64>| match (start, end) {
        (Some(s), Some(e)) => s..=e,
        #[allow(clippy::reversed_empty_ranges)]
        _ => 1..=0,
    };
    let latest = move |major: u64| last.get(&major).copied();
    let first = range(
        lo_minor.checked_add(1),
        if same {
            hi_minor.checked_sub(1)
        } else {
            latest(lo_major)
        },
    )
    .map(move |m| (lo_major, m));
    let majors = if same {
        range(None, None)
    } else {
        range(lo_major.checked_add(1), hi_major.checked_sub(1))
    };
    let middle = majors.flat_map(move |major| {
        range(Some(0), Some(latest(major).unwrap_or(0))).map(move |m| (major, m))
    });
    let end = range(Some(0), if same { None } else { hi_minor.checked_sub(1) })
        .map(move |m| (hi_major, m));
    let all = first.chain(middle).chain(end);
    if down {
        Box::new(all.rev())
    } else {
        Box::new(all)
    }
}

/// "upgrade `os` to `target`", or "move `os` back to `target`" when it is older than `from`,
/// what runs: a recipe that calls going back an upgrade misleads the operator who reads it.
fn move_to(os: &str, from: &Version, target: &Version) -> String {
    if target < from {
        format!("move {os} back to {target}")
    } else {
        format!("upgrade {os} to {target}")
    }
}
