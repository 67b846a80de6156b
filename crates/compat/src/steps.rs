//! The ordered checklist for a validated upgrade.
//!
//! Order: backups, feature flags for breaking changes, risks to accept, APIs that change hands
//! (the new provider first), expand migrations, the deployments group by group (through
//! required stops, each later hop preceded by the expand migrations it brings), then, once the
//! old versions are gone, contract migrations, flag clean-up and the callers of APIs that
//! changed hands.

use std::collections::BTreeMap;
use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::migration::{MigrationReport, Phase, StatementReport};
use crate::path::UpgradePath;
use crate::validation::Move;

/// When a step happens relative to the deployments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepPhase {
    /// Before any new version receives traffic.
    Before,
    /// The deployments themselves.
    Deploy,
    /// After the old versions are retired.
    After,
}

/// What kind of action a step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepKind {
    /// Take and verify a backup.
    Backup,
    /// Guard a breaking change behind a flag.
    FeatureFlag,
    /// Read and accept a conditional edge's risk.
    AcceptRisk,
    /// Run migrations that are safe with the old version.
    ExpandMigration,
    /// Deploy a version (a canary runs old and new side by side).
    Deploy,
    /// Deploy a required stop and let it settle.
    RequiredStop,
    /// Run migrations that need the old version gone.
    ContractMigration,
    /// Remove flags and compatibility code.
    Cleanup,
    /// Move an API from one service to another: the new provider serves it before the old one
    /// stops, and callers that address the old one follow it afterwards.
    Handover,
}

/// An API that moves from one service to another in the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Handover {
    /// The API.
    pub api: String,
    /// The service that stops providing it.
    pub from: String,
    /// The service that takes it over.
    pub to: String,
}

/// One checklist item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Step {
    /// When.
    pub phase: StepPhase,
    /// What kind.
    pub kind: StepKind,
    /// The service it concerns.
    pub service: String,
    /// What to do.
    pub text: String,
    /// For a migration step, the release whose migration it applies: a version at or above
    /// it keeps what the step changed (a rollback to it undoes nothing of the step).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<Version>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let phase = match self.phase {
            StepPhase::Before => "before",
            StepPhase::Deploy => "deploy",
            StepPhase::After => "after",
        };
        write!(f, "[{phase}] {}: {}", self.service, self.text)
    }
}

/// What the checklist is built from.
#[derive(Debug, Clone, Default)]
pub struct StepInputs<'a> {
    /// The order (groups of moves).
    pub order: &'a [Vec<Move>],
    /// Paths per service with an upgrade graph.
    pub paths: Option<&'a BTreeMap<String, UpgradePath>>,
    /// Migrations per service, with the release that ships them.
    pub migrations: Vec<(&'a str, &'a Version, &'a MigrationReport)>,
    /// Breaking changes per service (declared or detected).
    pub breaking: Vec<(&'a str, String)>,
    /// Services whose database schema changes.
    pub schema_changes: Vec<&'a str>,
    /// APIs that move from one service to another; the order moves each new provider first.
    pub handovers: Vec<Handover>,
}

fn step(phase: StepPhase, kind: StepKind, service: &str, text: String) -> Step {
    Step {
        phase,
        kind,
        service: service.to_owned(),
        text,
        release: None,
    }
}

/// A step that applies (part of) a migration `release` ships.
fn migration(
    phase: StepPhase,
    kind: StepKind,
    service: &str,
    release: &Version,
    text: String,
) -> Step {
    Step {
        release: Some(release.clone()),
        ..step(phase, kind, service, text)
    }
}

/// Builds the checklist.
pub fn plan(inputs: &StepInputs<'_>) -> Vec<Step> {
    use StepKind as K;
    use StepPhase as P;
    let mut steps = Vec::new();
    let mut backed_up: Vec<&str> = Vec::new();
    for (service, _, _) in &inputs.migrations {
        if !backed_up.contains(service) {
            backed_up.push(service);
        }
    }
    for service in &inputs.schema_changes {
        if !backed_up.contains(service) {
            backed_up.push(service);
        }
    }
    for service in &backed_up {
        steps.push(step(
            P::Before,
            K::Backup,
            service,
            "back up its database and verify the backup restores".into(),
        ));
    }
    for (service, change) in &inputs.breaking {
        steps.push(step(
            P::Before,
            K::FeatureFlag,
            service,
            format!("put behind a feature flag (off) until every consumer is ready: {change}"),
        ));
    }
    if let Some(paths) = inputs.paths {
        for (service, path) in paths {
            for r in &path.risks {
                for risk in &r.risks {
                    steps.push(step(
                        P::Before,
                        K::AcceptRisk,
                        service,
                        format!(
                            "confirm the risk {} on {} -> {} does not apply: {}",
                            risk.name, r.from, r.to, risk.message
                        ),
                    ));
                }
            }
        }
    }
    // Where each service's move ends, and in which group (looked up once per handover).
    let targets: BTreeMap<&str, (usize, &Version)> = if inputs.handovers.is_empty() {
        BTreeMap::new()
    } else {
        inputs
            .order
            .iter()
            .enumerate()
            .flat_map(|(g, group)| {
                group
                    .iter()
                    .filter_map(move |m| m.target().map(|t| (m.service.as_str(), (g + 1, t))))
            })
            .collect()
    };
    let target = |service: &str| targets.get(service).copied();
    for h in &inputs.handovers {
        let (api, from, to) = (&h.api, &h.from, &h.to);
        let text = match (target(to), target(from)) {
            (Some((gt, vt)), Some((gf, vf))) => format!(
                "upgrade {to} first: it takes over api {api} from {from}; {to} {vt} (group {gt}) \
                 must serve it before {from} {vf} (group {gf}), which no longer provides it, \
                 is deployed"
            ),
            _ => format!("upgrade {to} first: it takes over api {api} from {from}"),
        };
        steps.push(step(P::Before, K::Handover, to, text));
    }
    // The migrations of a release that a later hop brings (past a required stop, say) are
    // applied once the hop before it is deployed: the stop's own migrations and background
    // work come first, as GitLab's upgrade stops require.
    let mut later: BTreeMap<(&str, usize), Vec<(&Version, String)>> = BTreeMap::new();
    for (service, version, report) in &inputs.migrations {
        let Some(text) = expand_text(version, report) else {
            continue;
        };
        match later_hop(inputs.order, service, version) {
            Some(h) => later.entry((service, h)).or_default().push((version, text)),
            None => steps.push(migration(
                P::Before,
                K::ExpandMigration,
                service,
                version,
                text,
            )),
        }
    }
    for (g, group) in inputs.order.iter().enumerate() {
        for mv in group {
            let stops = inputs
                .paths
                .and_then(|p| p.get(&mv.service))
                .map(|p| p.stops.clone())
                .unwrap_or_default();
            for (h, hop) in mv.hops.iter().enumerate() {
                if let (Some(texts), Some(previous)) = (
                    later.remove(&(mv.service.as_str(), h)),
                    h.checked_sub(1).and_then(|p| mv.hops.get(p)),
                ) {
                    for (release, text) in texts {
                        steps.push(migration(
                            P::Deploy,
                            K::ExpandMigration,
                            &mv.service,
                            release,
                            format!("group {}: once {previous} is deployed, {text}", g + 1),
                        ));
                    }
                }
                if h == 0 && mv.from.is_empty() {
                    steps.push(step(
                        P::Deploy,
                        K::Deploy,
                        &mv.service,
                        format!(
                            "group {}: deploy {hop}, the first version to run, and move the \
                             traffic to it once it is ready",
                            g + 1
                        ),
                    ));
                } else if stops.contains(hop) {
                    steps.push(step(
                        P::Deploy,
                        K::RequiredStop,
                        &mv.service,
                        format!(
                            "group {}: deploy required stop {hop}, let background work finish, \
                             retire the previous version",
                            g + 1
                        ),
                    ));
                } else {
                    steps.push(step(
                        P::Deploy,
                        K::Deploy,
                        &mv.service,
                        format!(
                            "group {}: deploy {hop} beside the running version, move the \
                             traffic to it, retire the old version",
                            g + 1
                        ),
                    ));
                }
            }
        }
    }
    for (service, version, report) in &inputs.migrations {
        if let Some(text) = contract_text(version, report) {
            steps.push(migration(
                P::After,
                K::ContractMigration,
                service,
                version,
                text,
            ));
        }
    }
    for (service, change) in &inputs.breaking {
        steps.push(step(
            P::After,
            K::Cleanup,
            service,
            format!("turn the flag on, then remove it and the old code path: {change}"),
        ));
    }
    for h in &inputs.handovers {
        let (api, from, to) = (&h.api, &h.from, &h.to);
        steps.push(step(
            P::After,
            K::Handover,
            from,
            format!(
                "api {api} is served by {to} now: point any caller that still addresses {from} \
                 for it at {to}"
            ),
        ));
    }
    steps
}

/// A migration's statements as the checklist applies them, in the file's order: those before
/// its first contract statement while the old version runs, the rest once it is gone.
///
/// Nothing moves ahead of a statement it follows: a view dropped and made again (`DROP VIEW v;
/// CREATE VIEW v ...`) would otherwise be made while it still exists, and dropped after.
struct Split<'a> {
    /// Applied before deploying.
    expand: Vec<&'a StatementReport>,
    /// Applied once the old version is gone: the session settings the first contract
    /// statement ran under, then every statement from it on.
    contract: Vec<&'a StatementReport>,
    /// The first contract statement.
    first_contract: Option<&'a StatementReport>,
}

impl<'a> Split<'a> {
    fn of(report: &'a MigrationReport) -> Self {
        let statements = &report.statements;
        let first = statements
            .iter()
            .position(|s| s.phase == Some(Phase::Contract))
            .unwrap_or(statements.len());
        let (before, from) = statements.split_at(first);
        let runs = |s: &&StatementReport| s.phase.is_some();
        let mut expand: Vec<&StatementReport> = before.iter().filter(runs).collect();
        // A transaction opened before the first contract statement is ended with the expand
        // statements: applied without its `COMMIT`, they would hold their locks until the
        // session ends and then be undone, while the new version is deployed expecting them.
        let open = expand.iter().fold(false, |open, s| match bound(s) {
            Some(opens) => opens,
            None => open,
        });
        if open && let Some(end) = from.iter().filter(runs).find(|s| bound(s) == Some(false)) {
            expand.push(end);
        }
        Split {
            expand,
            contract: before
                .iter()
                .filter(|s| runs(s) && !changes(s))
                .chain(from.iter().filter(runs))
                .collect(),
            first_contract: from.first(),
        }
    }

    /// The statements that would be safe beside the old version but wait, as they follow the
    /// first contract statement (the settings before it change nothing).
    fn waiting(&self) -> Vec<&'a StatementReport> {
        self.contract
            .iter()
            .copied()
            .filter(|s| s.phase == Some(Phase::Expand) && changes(s))
            .collect()
    }
}

/// What to do before deploying `version` for its migration's statements that run while the
/// old version still runs, if it has any, and for those that wait only because they follow one
/// that must.
fn expand_text(version: &Version, report: &MigrationReport) -> Option<String> {
    let split = Split::of(report);
    let name = &report.name;
    let expand = changed(&split.expand);
    let contract = changed(&split.contract);
    let apply = match report.runner {
        _ if expand.is_empty() => None,
        // A runner applies a file whole: what must wait for the old version to go has to
        // move to a migration of its own, and a file that holds only that waits whole.
        Some(runner) if !contract.is_empty() => Some(format!(
            "split migration {name}: {runner} applies a file whole, and statements {contract} \
             must wait until the old version is gone: move them to a {} of its own, and apply \
             the rest (statements {expand}) for {version} before deploying, with lock_timeout set",
            runner.file_kind()
        )),
        Some(_) => Some(format!(
            "apply migration {name} for {version} before deploying, with lock_timeout set"
        )),
        None => Some(format!(
            "apply migration {name} (statements {}) for {version} before deploying, with \
             lock_timeout set",
            list(&split.expand)
        )),
    };
    let waiting = split.waiting();
    let (Some(first), false) = (split.first_contract, waiting.is_empty()) else {
        return apply;
    };
    let warning = format!(
        "statements {} of migration {name} wait until the old version is gone, as they follow \
         statement #{}, which must: if {version} needs them, move them before it",
        list(&waiting),
        first.number
    );
    Some(match apply {
        Some(apply) => format!("{apply}; {warning}"),
        None => warning,
    })
}

/// What to do once no version older than `version` runs for its migration's statements that
/// must wait for that, if it has any.
fn contract_text(version: &Version, report: &MigrationReport) -> Option<String> {
    let split = Split::of(report);
    split.first_contract?;
    let name = &report.name;
    let contract = list(&split.contract);
    Some(match report.runner {
        Some(_) if !changed(&split.expand).is_empty() => format!(
            "once no version older than {version} runs, apply the migration split from {name} \
             (its statements {contract})"
        ),
        Some(_) => format!("once no version older than {version} runs, apply migration {name}"),
        None => format!(
            "once no version older than {version} runs, apply migration {name} statements \
             {contract}"
        ),
    })
}

/// The hop of `service`'s move that first runs `version`, when it is not the move's first:
/// the migrations `version` ships wait until the hops before it are deployed.
fn later_hop(order: &[Vec<Move>], service: &str, version: &Version) -> Option<usize> {
    order
        .iter()
        .flatten()
        .find(|mv| mv.service == service)?
        .hops
        .iter()
        .position(|hop| version <= hop)
        .filter(|&h| h > 0)
}

/// Whether a statement changes something: not a session's setting or its transaction's
/// bounds, which go with whichever statements they precede.
fn changes(statement: &StatementReport) -> bool {
    let first = statement.sql.split_whitespace().next().unwrap_or("");
    ![
        "SET", "RESET", "BEGIN", "START", "COMMIT", "ROLLBACK", "END",
    ]
    .iter()
    .any(|k| first.eq_ignore_ascii_case(k))
}

/// Whether a statement opens a transaction (`Some(true)`: `BEGIN`, `START TRANSACTION`) or
/// ends one (`Some(false)`: `COMMIT`, `END`, `ROLLBACK`, `ABORT`, but not `ROLLBACK TO` a
/// savepoint, which keeps it open).
fn bound(statement: &StatementReport) -> Option<bool> {
    let mut words = statement.sql.split_whitespace();
    let first = words.next().unwrap_or("").to_ascii_uppercase();
    match first.as_str() {
        "BEGIN" | "START" => Some(true),
        "ROLLBACK" if words.next().is_some_and(|w| w.eq_ignore_ascii_case("TO")) => None,
        "COMMIT" | "END" | "ROLLBACK" | "ABORT" => Some(false),
        _ => None,
    }
}

/// The numbers of `statements` that change something (`#2, #3`).
fn changed(statements: &[&StatementReport]) -> String {
    list(
        &statements
            .iter()
            .copied()
            .filter(|s| changes(s))
            .collect::<Vec<_>>(),
    )
}

/// The numbers of `statements` (`#1, #2`).
fn list(statements: &[&StatementReport]) -> String {
    statements
        .iter()
        .map(|s| format!("#{}", s.number))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::analyze;

    #[test]
    fn expand_before_deploy_and_contract_after() {
        let report = analyze(
            "0003",
            "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a text; ALTER TABLE t DROP COLUMN b",
        )
        .unwrap();
        let v = Version::new(2, 0, 0);
        let order = vec![vec![Move {
            service: "api".into(),
            from: vec![Version::new(1, 0, 0)],
            hops: vec![v.clone()],
        }]];
        let inputs = StepInputs {
            order: &order,
            paths: None,
            migrations: vec![("api", &v, &report)],
            breaking: vec![("api", "orders.total is now a string".into())],
            schema_changes: vec![],
            handovers: vec![],
        };
        let steps = plan(&inputs);
        let kinds: Vec<StepKind> = steps.iter().map(|s| s.kind).collect();
        assert_eq!(
            kinds,
            vec![
                StepKind::Backup,
                StepKind::FeatureFlag,
                StepKind::ExpandMigration,
                StepKind::Deploy,
                StepKind::ContractMigration,
                StepKind::Cleanup
            ]
        );
        assert!(steps[2].text.contains("#1, #2"));
        assert!(steps[4].text.contains("#3"));
    }

    /// The texts of `sql`'s migration steps, shipped by 2.0.0 (no runner).
    fn migration_texts(sql: &str) -> Vec<(StepPhase, String)> {
        let report = analyze("0004", sql).unwrap();
        let v = Version::new(2, 0, 0);
        plan(&StepInputs {
            migrations: vec![("api", &v, &report)],
            ..StepInputs::default()
        })
        .into_iter()
        .filter(|s| s.kind != StepKind::Backup)
        .map(|s| (s.phase, s.text))
        .collect()
    }

    #[test]
    fn the_contract_step_runs_under_the_settings_before_it() {
        assert_eq!(
            migration_texts(
                "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a text; \
                 ALTER TABLE t DROP COLUMN b"
            )[1],
            (
                StepPhase::After,
                "once no version older than 2.0.0 runs, apply migration 0004 statements #1, #3"
                    .to_owned()
            )
        );
    }

    #[test]
    fn no_statement_is_applied_before_one_it_follows() {
        // A view's columns change: dropped and made again.
        let texts = migration_texts(
            "SET lock_timeout = '1s'; ALTER TABLE t ADD COLUMN a text; DROP VIEW v; \
             CREATE VIEW v AS SELECT id FROM t",
        );
        assert_eq!(
            texts,
            [
                (
                    StepPhase::Before,
                    "apply migration 0004 (statements #1, #2) for 2.0.0 before deploying, with \
                     lock_timeout set; statements #4 of migration 0004 wait until the old \
                     version is gone, as they follow statement #3, which must: if 2.0.0 needs \
                     them, move them before it"
                        .to_owned()
                ),
                (
                    StepPhase::After,
                    "once no version older than 2.0.0 runs, apply migration 0004 statements #1, \
                     #3, #4"
                        .to_owned()
                ),
            ]
        );
        // With nothing to apply before, the warning stands alone.
        let texts =
            migration_texts("SET lock_timeout = '1s'; DROP VIEW v; CREATE VIEW v AS SELECT 1");
        assert_eq!(texts[0].0, StepPhase::Before);
        assert!(
            texts[0]
                .1
                .starts_with("statements #3 of migration 0004 wait"),
            "{texts:?}"
        );
        // A file of settings and contract statements has no step before.
        let texts = migration_texts("SET lock_timeout = '1s'; ALTER TABLE t DROP COLUMN b");
        assert_eq!(texts.len(), 1, "{texts:?}");
    }

    #[test]
    fn a_step_is_read_strictly() {
        let written = r#"{"phase":"before","kind":"backup","service":"a","text":"t"}"#;
        assert_eq!(
            serde_json::from_str::<Step>(written).expect("read").release,
            None
        );
        let more = r#"{"phase":"before","kind":"backup","service":"a","text":"t","colour":"x"}"#;
        assert!(serde_json::from_str::<Step>(more).is_err());
    }

    #[test]
    fn a_new_service_has_no_old_version_to_run_beside_or_retire() {
        let order = vec![vec![Move {
            service: "ledger".into(),
            from: vec![],
            hops: vec![Version::new(1, 0, 0)],
        }]];
        let steps = plan(&StepInputs {
            order: &order,
            ..StepInputs::default()
        });
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].kind, StepKind::Deploy);
        assert_eq!(
            steps[0].text,
            "group 1: deploy 1.0.0, the first version to run, and move the traffic to it once \
             it is ready"
        );
    }

    #[test]
    fn a_handover_upgrades_the_new_provider_first_and_points_callers_after() {
        let mv = |service: &str, from: &str, to: &str| Move {
            service: service.into(),
            from: vec![Version::parse(from).unwrap()],
            hops: vec![Version::parse(to).unwrap()],
        };
        let order = vec![
            vec![mv("idx2", "1.0.0", "1.1.0")],
            vec![mv("idx", "1.0.0", "2.0.0")],
        ];
        let inputs = StepInputs {
            order: &order,
            handovers: vec![Handover {
                api: "search".into(),
                from: "idx".into(),
                to: "idx2".into(),
            }],
            ..StepInputs::default()
        };
        let steps = plan(&inputs);
        let got: Vec<(StepPhase, StepKind, &str)> = steps
            .iter()
            .map(|s| (s.phase, s.kind, s.service.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (StepPhase::Before, StepKind::Handover, "idx2"),
                (StepPhase::Deploy, StepKind::Deploy, "idx2"),
                (StepPhase::Deploy, StepKind::Deploy, "idx"),
                (StepPhase::After, StepKind::Handover, "idx"),
            ]
        );
        assert_eq!(
            steps[0].text,
            "upgrade idx2 first: it takes over api search from idx; idx2 1.1.0 (group 1) must \
             serve it before idx 2.0.0 (group 2), which no longer provides it, is deployed"
        );
    }

    #[test]
    fn a_runners_file_is_applied_whole_or_split() {
        let v = Version::new(2, 0, 0);
        let texts = |sql: &str| -> Vec<String> {
            let report = analyze("0003", sql).unwrap();
            let inputs = StepInputs {
                order: &[],
                paths: None,
                migrations: vec![("api", &v, &report)],
                breaking: vec![],
                schema_changes: vec![],
                handovers: vec![],
            };
            plan(&inputs)
                .into_iter()
                .filter(|s| {
                    matches!(
                        s.kind,
                        StepKind::ExpandMigration | StepKind::ContractMigration
                    )
                })
                .map(|s| s.text)
                .collect()
        };
        let goose = "-- +goose Up\nSET lock_timeout = '1s';\nALTER TABLE t ADD COLUMN a text;\n";
        assert_eq!(
            texts(goose),
            ["apply migration 0003 for 2.0.0 before deploying, with lock_timeout set"]
        );
        let both = format!("{goose}ALTER TABLE t DROP COLUMN b;\n");
        assert_eq!(
            texts(&both),
            [
                "split migration 0003: goose applies a file whole, and statements #3 must wait \
                 until the old version is gone: move them to a migration of its own, and apply \
                 the rest (statements #2) for 2.0.0 before deploying, with lock_timeout set",
                // The split-off file keeps the lock timeout it ran under.
                "once no version older than 2.0.0 runs, apply the migration split from 0003 (its \
                 statements #1, #3)"
            ]
        );
        // Liquibase's file is a changelog.
        let changelog = "--liquibase formatted sql\n--changeset a:1\nSET lock_timeout = '1s';\n\
                         ALTER TABLE t ADD COLUMN a text;\n--changeset a:2\n\
                         ALTER TABLE t DROP COLUMN b;\n";
        assert!(texts(changelog)[0].contains(
            "Liquibase applies a file whole, and statements #3 must wait until the old version \
             is gone: move them to a changelog of its own"
        ));
        let contract = "-- +goose Up\nSET lock_timeout = '1s';\nALTER TABLE t DROP COLUMN b;\n";
        assert_eq!(
            texts(contract),
            ["once no version older than 2.0.0 runs, apply migration 0003"]
        );
    }
}
