//! One service's move: its hops along the upgrade graph, and what a validation reports about
//! it alone (a yanked or deprecated release, a risky or missing route, the states a rule blocks,
//! required stops, and the breaking and migration changes the release brings).

use std::collections::{BTreeMap, BTreeSet};

use semver::Version;

use crate::breaking::{Bump, Change, bump_between, diff_provided_with};
use crate::explain::Explanation;
use crate::matrix::{ChangeKind, Effect, Rule};
use crate::migration::{MigrationReport, Schema, analyze_after, analyze_as};
use crate::path::{PathOptions, Route, UpgradePath};
use crate::registry::Release;
use crate::validation::{Finding, Move, Severity};

use super::{Validator, Violation};

/// The most minors a one-minor-at-a-time recipe lists one by one.
const MAX_LISTED_STOPS: u64 = 12;

impl Validator {
    /// The hops of one service's move to `release`, from the versions it runs `now`: along its
    /// upgrade graph when it has one (recording the route in `paths`), else straight to the
    /// target. The route starts from the latest version running even when the graph leaves it
    /// out: a yanked one is the version most in need of a way off. Yanked and deprecated
    /// targets, risky edges and missing routes are reported.
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
        if let (Some(graph), Some(from)) = (self.graphs.get(service), now.iter().max()) {
            let opts = PathOptions {
                accept_conditional: self.options.accept_conditional,
            };
            match graph.route_from_running(from, target, opts) {
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
        hops
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

    pub(super) fn check_move_rules(
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
                            || (hop.major == prev.major
                                && hop.minor <= prev.minor.saturating_add(1));
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

    /// "Go through 1.29.14, then 1.30.10": the latest release of each minor in between, a
    /// pre-release only when its minor has nothing else (a stop is run in production). A way
    /// through more than [`MAX_LISTED_STOPS`] minors (date-numbered minors, say) is summarised
    /// with its first stop, so the recipe stays readable and its cost does not grow with the gap.
    fn stepwise_recipe(&self, service: &str, from: &Version, to: &Version) -> String {
        let latest_of = |minor: u64| {
            let of_minor: Vec<&Version> = self
                .registry
                .releases(service)
                .filter(|r| !r.yanked && r.version.major == from.major && r.version.minor == minor)
                .map(|r| &r.version)
                .collect();
            of_minor
                .iter()
                .rev()
                .find(|v| v.pre.is_empty())
                .or(of_minor.last())
                .map_or_else(
                    || format!("{}.{minor}.x (not released)", from.major),
                    ToString::to_string,
                )
        };
        let between = if from.major == to.major {
            to.minor.saturating_sub(from.minor).saturating_sub(1)
        } else {
            0
        };
        if between == 0 {
            return format!("move {service} one minor at a time from {from} towards {to}");
        }
        // `to.minor >= from.minor + 2` here, so `from.minor + 1` does not overflow.
        let first = from.minor + 1;
        if between > MAX_LISTED_STOPS {
            let released: BTreeSet<u64> = self
                .registry
                .releases(service)
                .filter(|r| !r.yanked && r.version.major == from.major)
                .map(|r| r.version.minor)
                .filter(|m| (first..to.minor).contains(m))
                .collect();
            return format!(
                "move {service} one minor at a time from {from} to {to}, each as its own \
                 upgrade, starting with {}: {between} minors lie in between, {} of them released",
                latest_of(first),
                released.len()
            );
        }
        let stops: Vec<String> = (first..to.minor).map(latest_of).collect();
        format!(
            "move {service} one minor at a time: {from} -> {} -> {to}, each as its own upgrade",
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

    pub(super) fn check_release_changes(
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
        let from = old_version.cloned();
        let passed: Vec<&Release> = self
            .registry
            .releases(service)
            .filter(|r| {
                from.as_ref().is_none_or(|f| &r.version > f) && &r.version <= target && !r.yanked
            })
            .collect();
        let reported = Self::reported_changes(service, &passed, findings, breaking);
        if let Some(old) = old {
            let (mut f, changes) =
                diff_provided_with(service, &old.provides, &new.provides, &reported);
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
        for release in passed {
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
                let analysed = match m.run_by() {
                    Some(run) => analyze_as(&m.name, &m.sql, &schema, run),
                    None => analyze_after(&m.name, &m.sql, &schema),
                };
                schema.learn(&m.sql);
                match analysed {
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
                                    if sf.ignored {
                                        format!(
                                            "{} [{}; ignored by a serin:ignore comment]",
                                            sf.message, sf.safety
                                        )
                                    } else {
                                        format!("{} [{}]", sf.message, sf.safety)
                                    },
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
