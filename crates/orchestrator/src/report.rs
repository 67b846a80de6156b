//! The final [`Report`] of a deployment, rebuilt from its journal: the timeline of every event
//! and the evidence of every decision, as JSON or as text for humans.

use std::fmt;

use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::config::StrategyKind;
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::journal::Record;
use crate::sample::Sample;
use crate::state::{Outcome, Placement, StepStatus, UpgradeStep};

/// The version of the report's JSON form that this crate writes: `serin.report/v<major>`.
///
/// Tools that read reports check it before anything else. Fields may be added within a major
/// version (`serin.report/v1.<minor>` may mark additions); a field that is removed, renamed or
/// changes meaning takes a new major version. Other readers should ignore fields they do not
/// know; this crate's own reader, [`Report::from_json`], is strict and refuses them. The schema
/// is documented in `docs/report-schema.md` and published as JSON Schema in
/// `docs/report.schema.json`.
pub const REPORT_SCHEMA_VERSION: &str = "serin.report/v1";

/// The prefix of every report schema version.
const SCHEMA_PREFIX: &str = "serin.report/v";

/// Reports written before the version was recorded have the shape of version 1.
fn legacy_schema_version() -> String {
    REPORT_SCHEMA_VERSION.to_owned()
}

/// What a deployment did, and why.
///
/// Its JSON form (see [`Report::to_json`] and [`Report::from_json`]) is versioned by
/// [`schema_version`](Report::schema_version).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Report {
    /// The version of this JSON form ([`REPORT_SCHEMA_VERSION`] when written by this crate);
    /// absent in reports written before it was recorded, which read as version 1.
    #[serde(default = "legacy_schema_version")]
    pub schema_version: String,
    /// The deployment's id.
    pub deployment: String,
    /// The service.
    pub service: String,
    /// The environment deployed to, as the config names it (`environment`, `ENVIRONMENT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The namespace, as the config names it (`namespace`, `NAMESPACE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The strategy.
    pub strategy: StrategyKind,
    /// What ran before.
    pub from: Option<Placement>,
    /// What was deployed.
    pub to: Placement,
    /// How it ended (`None` if it has not).
    pub outcome: Option<Outcome>,
    /// When it started.
    pub started_at: Timestamp,
    /// When its last record was written.
    pub last_at: Timestamp,
    /// The backup taken in preparation.
    pub backup: Option<String>,
    /// The validated upgrade's checklist and where each step stands (pending steps were never
    /// reached, as after a rollback).
    #[serde(default)]
    pub checklist: Vec<UpgradeStep>,
    /// Every event, in order.
    pub timeline: Vec<Event>,
    /// What both arms looked like over each observation window, in order: the data the
    /// decisions were made on.
    #[serde(default)]
    pub samples: Vec<Sample>,
}

impl Report {
    /// Rebuilds the report of a deployment from its journal records.
    pub fn from_records(records: &[Record]) -> Result<Self> {
        let last = records
            .last()
            .ok_or_else(|| Error::not_found("deployment", "(no records)"))?;
        let s = &last.state;
        // Blank names none, as in notifications.
        let named = |v: &Option<String>| v.clone().filter(|v| !v.trim().is_empty());
        Ok(Report {
            schema_version: REPORT_SCHEMA_VERSION.to_owned(),
            deployment: s.id.clone(),
            service: s.service.clone(),
            environment: named(&s.config.environment),
            namespace: named(&s.config.namespace),
            strategy: s.strategy,
            from: s.from.clone(),
            to: s.to.clone(),
            outcome: s.outcome.clone(),
            started_at: s.started_at,
            last_at: last.at,
            backup: s.backup.clone(),
            checklist: s.checklist.clone(),
            timeline: records
                .iter()
                .flat_map(|r| r.events.iter().cloned())
                .collect(),
            samples: records.iter().filter_map(|r| r.sample.clone()).collect(),
        })
    }

    /// The events that decided something: analysis results, anomalies, fired triggers,
    /// rollbacks and the end.
    pub fn decisions(&self) -> impl Iterator<Item = &Event> {
        self.timeline.iter().filter(|e| {
            matches!(
                e.kind,
                EventKind::AnalysisResult { .. }
                    | EventKind::Anomaly { .. }
                    | EventKind::TriggerFired { .. }
                    | EventKind::RollbackStarted { .. }
                    | EventKind::Blocked { .. }
                    | EventKind::Completed { .. }
                    | EventKind::RolledBack { .. }
                    | EventKind::Failed { .. }
            )
        })
    }

    /// Pretty JSON, in the form of [`schema_version`](Report::schema_version).
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::backend("report", &self.deployment, e))
    }

    /// Reads a report from its JSON form, checking its schema version first: a report of
    /// another major version than [`REPORT_SCHEMA_VERSION`]'s is refused with an error naming
    /// `report.schemaVersion`, before its fields are read. A v1 report (`serin.report/v1` or
    /// `serin.report/v1.<minor>`) is then read strictly: an unknown field of the report, of an
    /// event, a sample or a checklist step, and an unknown event type, are refused with an
    /// error naming them, so a report with additions of a later minor version may not load.
    /// Tools that must read those read the JSON themselves, ignoring what they do not know.
    ///
    /// ```
    /// use serin_orchestrator::Report;
    ///
    /// let err = Report::from_json(r#"{"schemaVersion": "serin.report/v9"}"#).unwrap_err();
    /// assert!(err.to_string().contains("report.schemaVersion"), "{err}");
    /// ```
    pub fn from_json(json: &str) -> Result<Self> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Version {
            #[serde(default = "legacy_schema_version")]
            schema_version: String,
        }
        let version: Version = serde_json::from_str(json)
            .map_err(|e| Error::invalid("report", "(JSON)", e.to_string()))?;
        check_schema_version(&version.schema_version)?;
        serde_json::from_str(json).map_err(|e| Error::invalid("report", "(JSON)", e.to_string()))
    }
}

/// Accepts `serin.report/v1` and any `serin.report/v1.<minor>` (a number, as the published
/// schema's pattern says); refuses everything else.
fn check_schema_version(version: &str) -> Result<()> {
    let supported = REPORT_SCHEMA_VERSION
        .strip_prefix(SCHEMA_PREFIX)
        .unwrap_or_default();
    let parts = version.strip_prefix(SCHEMA_PREFIX).map(|rest| {
        rest.split_once('.')
            .map_or((rest, None), |(m, n)| (m, Some(n)))
    });
    let numeric = |n: &str| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
    match parts {
        Some((m, minor)) if m == supported && minor.is_none_or(numeric) => Ok(()),
        Some((m, Some(_))) if m == supported => Err(Error::invalid(
            "report.schemaVersion",
            version,
            format!("a minor version is a number (`{REPORT_SCHEMA_VERSION}.2`)"),
        )),
        Some(_) => Err(Error::invalid(
            "report.schemaVersion",
            version,
            format!("this reader understands {REPORT_SCHEMA_VERSION} only"),
        )),
        None => Err(Error::invalid(
            "report.schemaVersion",
            version,
            format!("not a report schema version (expected `{SCHEMA_PREFIX}<major>`)"),
        )),
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "deployment {} ({})", self.deployment, self.strategy)?;
        match (&self.environment, &self.namespace) {
            // Each label is written `name: value`, beside the other as alone.
            (Some(env), Some(ns)) => writeln!(f, "  environment: {env}, namespace: {ns}")?,
            (Some(env), None) => writeln!(f, "  environment: {env}")?,
            (None, Some(ns)) => writeln!(f, "  namespace: {ns}")?,
            (None, None) => {}
        }
        match &self.from {
            Some(from) => writeln!(f, "  {}: {from} -> {}", self.service, self.to)?,
            None => writeln!(f, "  {}: install {}", self.service, self.to)?,
        }
        match &self.outcome {
            Some(o) => {
                write!(f, "  outcome: {o}")?;
                // A success whose post-upgrade step failed is still one (nothing rolls back once
                // the old version is retired), but not one to read as "all done".
                let failed = self
                    .checklist
                    .iter()
                    .filter(|s| s.status == StepStatus::Failed)
                    .count();
                if o.is_success() && failed > 0 {
                    let steps = if failed == 1 { "step" } else { "steps" };
                    write!(
                        f,
                        ", but {failed} upgrade {steps} failed once the old version was retired: \
                         see the upgrade steps"
                    )?;
                }
                writeln!(f)?;
            }
            None => writeln!(f, "  outcome: still running")?,
        }
        let secs = self
            .last_at
            .saturating_duration_since(self.started_at)
            .as_secs_f64();
        writeln!(f, "  duration: {secs:.1}s")?;
        if let Some(b) = &self.backup {
            writeln!(f, "  backup: {b}")?;
        }
        if !self.checklist.is_empty() {
            writeln!(f, "  upgrade steps:")?;
            for s in &self.checklist {
                writeln!(f, "    - {s}")?;
            }
        }
        writeln!(f, "  timeline:")?;
        for e in &self.timeline {
            let t =
                e.at.saturating_duration_since(self.started_at)
                    .as_secs_f64();
            writeln!(f, "    +{t:>8.1}s  {}", e.kind)?;
            if let EventKind::AnalysisResult { decision } = &e.kind {
                for ev in &decision.evidence {
                    writeln!(
                        f,
                        "                 evidence: {} on {}: {}",
                        ev.judge, ev.metric, ev.summary
                    )?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Stage;
    use crate::state::tests::sample_state;

    #[test]
    fn schema_versions_are_read_as_the_published_schema_writes_them() {
        for ok in ["serin.report/v1", "serin.report/v1.0", "serin.report/v1.12"] {
            assert!(check_schema_version(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("serin.report/v1.x", "a minor version is a number"),
            ("serin.report/v1.", "a minor version is a number"),
            ("serin.report/v1.2.3", "a minor version is a number"),
            ("serin.report/v2", "understands serin.report/v1 only"),
            ("serin.report/v10.1", "understands serin.report/v1 only"),
            ("report/v1", "not a report schema version"),
        ] {
            let err = check_schema_version(bad).unwrap_err().to_string();
            assert!(
                err.contains("report.schemaVersion") && err.contains(why),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn a_report_is_rebuilt_from_records_and_round_trips_as_json() {
        let mut state = sample_state();
        let ev = |seq, kind| Event {
            deployment: state.id.clone(),
            service: state.service.clone(),
            seq,
            at: Timestamp::from_millis(1_000 + seq * 1_000),
            kind,
        };
        let first = Record {
            deployment: state.id.clone(),
            seq: 0,
            at: Timestamp::from_millis(1_000),
            events: vec![ev(
                0,
                EventKind::RollbackStarted {
                    reason: "trigger `x` fired".into(),
                },
            )],
            state: state.clone(),
            effects: Vec::new(),
            weight: None,
            sample: None,
        };
        state.stage = Stage::Done;
        state.outcome = Some(Outcome::RolledBack {
            reason: "trigger `x` fired".into(),
        });
        let second = Record {
            deployment: state.id.clone(),
            seq: 1,
            at: Timestamp::from_millis(3_000),
            events: vec![ev(
                1,
                EventKind::RolledBack {
                    reason: "trigger `x` fired".into(),
                },
            )],
            state,
            effects: Vec::new(),
            weight: None,
            sample: None,
        };
        let report = Report::from_records(&[first.clone(), second.clone()]).expect("report");
        assert_eq!(report.timeline.len(), 2);
        assert_eq!(report.decisions().count(), 2);
        let json = report.to_json().expect("json");
        assert_eq!(serde_json::from_str::<Report>(&json).expect("back"), report);
        let text = report.to_string();
        assert!(
            text.contains("outcome: rolled back: trigger `x` fired"),
            "{text}"
        );
        assert!(text.contains("duration: 2.0s"), "{text}");
        assert!(Report::from_records(&[]).is_err());
        // Written only when the config names them.
        assert_eq!((report.environment, report.namespace), (None, None));
        assert!(!json.contains("environment") && !json.contains("namespace"));

        // The environment and namespace of the config are the report's.
        let mut named = second;
        named.state.config.environment = Some("prod".into());
        named.state.config.namespace = Some("payments".into());
        let report = Report::from_records(&[first.clone(), named.clone()]).expect("report");
        assert_eq!(report.environment.as_deref(), Some("prod"));
        assert_eq!(report.namespace.as_deref(), Some("payments"));
        let json = report.to_json().expect("json");
        assert!(json.contains(r#""environment": "prod""#), "{json}");
        assert_eq!(Report::from_json(&json).expect("back"), report);
        let text = report.to_string();
        assert!(
            text.contains("  environment: prod, namespace: payments\n"),
            "{text}"
        );
        // Each label reads the same alone as beside the other.
        let mut alone = named.clone();
        alone.state.config.environment = None;
        let text = Report::from_records(&[first.clone(), alone])
            .expect("report")
            .to_string();
        assert!(text.contains("  namespace: payments\n"), "{text}");
        let mut alone = named.clone();
        alone.state.config.namespace = None;
        let text = Report::from_records(&[first.clone(), alone])
            .expect("report")
            .to_string();
        assert!(text.contains("  environment: prod\n"), "{text}");
        // A blank one (`ENVIRONMENT=` in CI) names none, as in notifications.
        named.state.config.environment = Some("  ".into());
        named.state.config.namespace = Some(String::new());
        let report = Report::from_records(&[first, named]).expect("report");
        assert_eq!((report.environment, report.namespace), (None, None));
    }
}
