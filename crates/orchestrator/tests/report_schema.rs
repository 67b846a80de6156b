//! The JSON form of a report against its published schema (`docs/report.schema.json`): real
//! reports from simulated deployments validate and round-trip, reports written before the
//! schema was versioned still load, and reports of an unknown major version are refused.

use crate::sim_fleet;
use crate::support;

use std::time::Duration;

use serin_orchestrator::{
    Event, EventKind, Orchestrator, Outcome, Phase, REPORT_SCHEMA_VERSION, Report, Stage,
    StrategyKind,
};
use serin_sim::{Fault, SimWorld, Span};
use sim_fleet::deploy;

/// A simulated fleet running 1.0.0 (0.5% errors), with 1.1.0 healthy and 1.2.0 failing at 6%,
/// and the report of 1.0.0's install.
async fn fleet(seed: u64, strategy: StrategyKind) -> (SimWorld, Orchestrator, Report) {
    let (world, orchestrator) = sim_fleet::fleet(seed, 0.06);
    let install = deploy(&orchestrator, "1.0.0", strategy).await;
    assert_eq!(install.outcome, Some(Outcome::Succeeded));
    (world, orchestrator, install)
}

/// The published schema.
fn schema() -> serde_json::Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/report.schema.json");
    let text = std::fs::read_to_string(path).expect("docs/report.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

/// The schema with every object that lists its properties closed to others, so that a field a
/// report holds but the schema does not document fails validation. Objects the schema leaves
/// open on purpose (`additionalProperties: true`: evidence owned by the judge and trigger
/// crates) stay open.
fn closed(mut schema: serde_json::Value) -> serde_json::Value {
    fn close(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                if map.contains_key("properties") && !map.contains_key("additionalProperties") {
                    map.insert(
                        "additionalProperties".into(),
                        serde_json::Value::Bool(false),
                    );
                }
                map.values_mut().for_each(close);
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(close),
            _ => {}
        }
    }
    close(&mut schema);
    schema
}

fn assert_valid(schema: &serde_json::Value, report: &serde_json::Value, what: &str) {
    let validator = jsonschema::validator_for(schema).expect("a valid JSON Schema");
    let errors: Vec<String> = validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:#?}");
}

/// Real reports: a promoted canary with a metrics gap, a rolled-back canary, a blue-green
/// switch, and a first install.
async fn real_reports() -> Vec<Report> {
    let (world, o, install) = fleet(11, StrategyKind::Canary).await;
    world
        .inject(Fault::MetricsGap {
            span: Span::new(Duration::from_secs(150), Duration::from_secs(200)),
        })
        .expect("gap");
    let promoted = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    assert_eq!(promoted.outcome, Some(Outcome::Succeeded), "{promoted}");
    let rolled_back = deploy(&o, "1.2.0", StrategyKind::Canary).await;
    assert!(matches!(
        rolled_back.outcome,
        Some(Outcome::RolledBack { .. })
    ));
    let (_world, o, _) = fleet(12, StrategyKind::BlueGreen).await;
    let blue_green = deploy(&o, "1.1.0", StrategyKind::BlueGreen).await;
    let again = o.report(&blue_green.deployment).await.expect("report");
    assert_eq!(
        again, blue_green,
        "the orchestrator rebuilds the same report"
    );
    assert!(install.from.is_none());
    vec![promoted, rolled_back, blue_green, install]
}

#[tokio::test(start_paused = true)]
async fn real_reports_validate_against_the_published_schema_and_round_trip() {
    let schema = schema();
    let strict = closed(schema.clone());
    for report in real_reports().await {
        assert_eq!(report.schema_version, REPORT_SCHEMA_VERSION);
        let json = report.to_json().expect("json");
        let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_valid(&schema, &value, &report.deployment);
        // Every field the report holds is documented by the schema.
        assert_valid(&strict, &value, &report.deployment);
        assert_eq!(Report::from_json(&json).expect("read back"), report);
    }
}

#[tokio::test(start_paused = true)]
async fn reports_without_a_schema_version_read_as_version_one() {
    let (_world, o, _) = fleet(14, StrategyKind::Canary).await;
    let report = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let mut value: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("JSON");
    value
        .as_object_mut()
        .expect("an object")
        .remove("schemaVersion");
    assert_valid(&schema(), &value, "a report written before versioning");
    let old = Report::from_json(&value.to_string()).expect("an old report loads");
    assert_eq!(old, report);
    assert_eq!(old.schema_version, "serin.report/v1");
}

#[tokio::test(start_paused = true)]
async fn other_major_versions_and_unknown_fields_are_refused_with_the_path() {
    let (_world, o, _) = fleet(15, StrategyKind::Canary).await;
    let report = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let value: serde_json::Value =
        serde_json::from_str(&report.to_json().expect("json")).expect("JSON");
    let validator = jsonschema::validator_for(&schema()).expect("schema");
    let with = |key: &str, v: serde_json::Value| {
        let mut out = value.clone();
        out.as_object_mut().expect("object").insert(key.into(), v);
        out
    };

    let v2 = with("schemaVersion", "serin.report/v2".into());
    assert!(!validator.is_valid(&v2));
    let e = Report::from_json(&v2.to_string()).expect_err("v2");
    assert!(
        e.to_string()
            .contains("report.schemaVersion `serin.report/v2`"),
        "{e}"
    );
    let junk = with("schemaVersion", "report-1".into());
    let e = Report::from_json(&junk.to_string()).expect_err("junk");
    assert!(e.to_string().contains("not a report schema version"), "{e}");
    let minor = with("schemaVersion", "serin.report/v1.3".into());
    assert!(validator.is_valid(&minor));
    assert!(Report::from_json(&minor.to_string()).is_ok());

    // This crate's reader is strict about fields; the published schema leaves objects open
    // for other tools, and the closed schema shows the field is not documented.
    let extra = with("colour", "orange".into());
    assert!(validator.is_valid(&extra));
    assert!(
        !jsonschema::validator_for(&closed(schema()))
            .expect("schema")
            .is_valid(&extra)
    );
    let e = Report::from_json(&extra.to_string()).expect_err("unknown field");
    assert!(e.to_string().contains("colour"), "{e}");
    // Within an event's kind too.
    let mut in_kind = value.clone();
    in_kind["timeline"][0]["kind"]["colour"] = "orange".into();
    let e = Report::from_json(&in_kind.to_string()).expect_err("unknown field of a kind");
    assert!(e.to_string().contains("colour"), "{e}");

    for bad in ["", "[]", "{", "{\"schemaVersion\": 1}", "null"] {
        assert!(Report::from_json(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn the_committed_quickstart_report_validates_and_loads() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/quickstart-report.json"
    );
    let text = std::fs::read_to_string(path).expect("docs/quickstart-report.json");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_valid(&closed(schema()), &value, "docs/quickstart-report.json");
    let report = Report::from_json(&text).expect("loads");
    assert!(
        !report.samples.is_empty(),
        "the quickstart observed both arms"
    );
}

/// One event of every kind this crate writes. A kind added to `EventKind` fails to compile in
/// `listed` below until it is added here, and then fails the test until the schema has it.
fn one_event_of_each_kind() -> Vec<EventKind> {
    /// Exhaustive on purpose: no wildcard arm.
    fn listed(kind: &EventKind) {
        match kind {
            EventKind::Started { .. }
            | EventKind::PhaseChanged { .. }
            | EventKind::Validated { .. }
            | EventKind::BackupTaken { .. }
            | EventKind::BackupRestored { .. }
            | EventKind::TrackStarted { .. }
            | EventKind::TrackReady { .. }
            | EventKind::WeightChanged { .. }
            | EventKind::AnalysisResult { .. }
            | EventKind::Anomaly { .. }
            | EventKind::TriggerFired { .. }
            | EventKind::UpgradeStep { .. }
            | EventKind::DeadlineReached { .. }
            | EventKind::Paused
            | EventKind::Resumed
            | EventKind::RollbackStarted { .. }
            | EventKind::Completed { .. }
            | EventKind::RolledBack { .. }
            | EventKind::Blocked { .. }
            | EventKind::Failed { .. } => {}
        }
    }
    let from_json = |json: &str| serde_json::from_str(json).expect(json);
    let kinds = vec![
        EventKind::Started {
            strategy: StrategyKind::Canary,
            from: Some("1.0.0".into()),
            to: "1.1.0".into(),
        },
        EventKind::PhaseChanged {
            phase: Phase::Rollback,
        },
        EventKind::Validated {
            verdict: "ok".into(),
            findings: vec!["a finding".into()],
        },
        EventKind::BackupTaken { id: "b-1".into() },
        EventKind::BackupRestored { id: "b-1".into() },
        EventKind::TrackStarted {
            version: "1.1.0".into(),
            track: "canary".into(),
            instances: 1,
        },
        EventKind::TrackReady {
            version: "1.1.0".into(),
            track: "canary".into(),
        },
        EventKind::WeightChanged {
            version: "1.1.0".into(),
            track: "canary".into(),
            percent: 10.0,
        },
        from_json(
            r#"{"type":"analysisResult","decision":{"action":{"setWeight":10},"at":5,
                "step":0,"weight":10,"severity":null,"reason":"step 0","evidence":[]}}"#,
        ),
        EventKind::Anomaly {
            source: "canary".into(),
            severity: "info".into(),
            summary: "a summary".into(),
        },
        from_json(
            r#"{"type":"triggerFired","event":{"trigger":"t","at":5,"from":{"state":"ok"},
                "to":{"state":"firing","action":"rollback","since":5},"action":"rollback",
                "evidence":{"trigger":"t","kind":"metricThreshold","subject":"error_rate on canary",
                "observed":0.2,"threshold":0.1,"operator":"gt","at":5,"reason":"breached"}}}"#,
        ),
        from_json(
            r#"{"type":"upgradeStep","step":{"phase":"after","kind":"contractMigration","service":"web",
                "text":"drop the old column"},"status":"done","evidence":"ran"}"#,
        ),
        EventKind::DeadlineReached {
            phase: Phase::Monitoring,
            action: "rolling back".into(),
        },
        EventKind::Paused,
        EventKind::Resumed,
        EventKind::RollbackStarted { reason: "r".into() },
        EventKind::Completed {
            version: "1.1.0".into(),
        },
        EventKind::RolledBack { reason: "r".into() },
        EventKind::Blocked { reason: "r".into() },
        EventKind::Failed { reason: "r".into() },
    ];
    kinds.iter().for_each(listed);
    kinds
}

#[tokio::test(start_paused = true)]
async fn every_event_kind_is_documented_by_the_schema() {
    let (_world, o, _) = fleet(16, StrategyKind::Canary).await;
    let mut report = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let at = report.last_at;
    let first = report.timeline.len() as u64;
    report.timeline.extend(
        one_event_of_each_kind()
            .into_iter()
            .zip(first..)
            .map(|(kind, seq)| Event {
                deployment: report.deployment.clone(),
                service: report.service.clone(),
                seq,
                at,
                kind,
            }),
    );
    let json = report.to_json().expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_valid(&closed(schema()), &value, "one event of each kind");
    assert_eq!(Report::from_json(&json).expect("read back"), report);
}

#[tokio::test(start_paused = true)]
async fn the_environment_and_namespace_of_the_config_are_reported_and_documented() {
    let (_world, o, _) = fleet(17, StrategyKind::Canary).await;
    let mut c = sim_fleet::config("1.1.0", StrategyKind::Canary);
    c.environment = Some("prod".into());
    c.namespace = Some("payments".into());
    let report = o.run(&c).await.expect("run").remove(0);
    assert_eq!(report.environment.as_deref(), Some("prod"));
    assert_eq!(report.namespace.as_deref(), Some("payments"));
    let json = report.to_json().expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_eq!(value["environment"], "prod");
    assert_eq!(value["namespace"], "payments");
    assert_valid(&closed(schema()), &value, "a report naming its environment");
    assert_eq!(Report::from_json(&json).expect("read back"), report);
}

/// Validates a report against the closed schema and reads it back.
pub(crate) fn assert_documented(report: &Report, what: &str) {
    let json = report.to_json().expect("json");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_valid(&closed(schema()), &value, what);
    assert_eq!(
        Report::from_json(&json).expect("read back"),
        *report,
        "{what}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_of_an_interrupted_and_resumed_deployment_is_documented() {
    let (world, _traffic) = support::World::serving(0.005, 0.005).await;
    let before = world.journal.len();
    let config = support::short_canary_config("1.1.0");
    let last = support::crash_at(&world, world.orchestrator(), config, before + 4).await;
    assert!(!last.state.is_done(), "interrupted mid-way");
    let report = world.resumed(&last.deployment).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_documented(&report, "an interrupted and resumed deployment");
}

#[tokio::test(start_paused = true)]
async fn the_report_of_a_deployment_whose_rollback_failed_is_documented() {
    let (world, _traffic) = support::World::serving(0.005, 0.3).await;
    let h = world.start(&support::short_canary_config("1.1.0")).await;
    // Past the bring-up, the next platform change is the rollback's.
    support::until_stage(&h, Stage::Canary).await;
    world.platform.fail_next("the router is unreachable");
    let report = h.wait().await.expect("report");
    assert!(
        matches!(&report.outcome, Some(Outcome::Failed { reason }) if reason.contains("unreachable")),
        "{report}"
    );
    assert_documented(&report, "a deployment whose rollback failed");
}

/// Judges write non-finite numbers of their evidence (an unbounded interval, a ratio over zero
/// errors) as the strings `inf`, `-inf` and `NaN`; the schema admits those and nothing else.
#[tokio::test(start_paused = true)]
async fn non_finite_numbers_of_judge_evidence_are_documented() {
    let (_world, o, _) = fleet(18, StrategyKind::Canary).await;
    let mut report = deploy(&o, "1.1.0", StrategyKind::Canary).await;
    let evidence = report
        .timeline
        .iter_mut()
        .find_map(|e| match &mut e.kind {
            EventKind::AnalysisResult { decision } => decision.evidence.first_mut(),
            _ => None,
        })
        .expect("evidence");
    evidence.threshold = Some(f64::INFINITY);
    evidence.statistic = Some(serin_canary::judge::Statistic::EValue(f64::NAN));
    evidence.effects = vec![serin_canary::judge::Effect {
        name: "errorRateRatio".into(),
        estimate: f64::INFINITY,
        interval: Some(serin_canary::judge::Interval {
            lower: 0.5,
            upper: f64::INFINITY,
            level: 0.95,
        }),
    }];
    let json = report.to_json().expect("json");
    assert!(json.contains(r#""threshold": "inf""#), "{json}");
    let value: serde_json::Value = serde_json::from_str(&json).expect("JSON");
    assert_valid(&closed(schema()), &value, "non-finite evidence");

    let validator = jsonschema::validator_for(&schema()).expect("schema");
    let bad = json.replace(r#""estimate": "inf""#, r#""estimate": "lots""#);
    assert_ne!(bad, json);
    let bad: serde_json::Value = serde_json::from_str(&bad).expect("JSON");
    assert!(
        !validator.is_valid(&bad),
        "an estimate is a number or inf, -inf, NaN"
    );
}

#[tokio::test(start_paused = true)]
async fn the_report_of_a_blocked_upgrade_is_documented() {
    use serin_compat::{Fleet, Matrix, Registry, Release};
    let world = support::World::installed().await;
    let mut registry = Registry::new();
    for release in [
        Release::new(support::v("1.0.0")),
        Release::new(support::v("1.1.0")).yanked(),
    ] {
        registry
            .add_release(support::SERVICE, release)
            .expect("release");
    }
    let matrix = Matrix::new(Vec::new(), &registry).expect("matrix");
    let validator = serin_compat::Validator::new(registry, matrix).expect("validator");
    let fleet = Fleet::new().with(support::SERVICE, support::v("1.0.0"));
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .build();
    let report = support::run_to_end(&o, &support::short_canary_config("1.1.0")).await;
    assert!(
        matches!(&report.outcome, Some(Outcome::Blocked { .. })),
        "{report}"
    );
    assert_documented(&report, "a blocked upgrade");
}
