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
use crate::state::{Outcome, Placement, UpgradeStep};

/// What a deployment did, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Report {
    /// The deployment's id.
    pub deployment: String,
    /// The service.
    pub service: String,
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
        Ok(Report {
            deployment: s.id.clone(),
            service: s.service.clone(),
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

    /// Pretty JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string_pretty(self)
            .map_err(|e| Error::backend("report", &self.deployment, e))
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "deployment {} ({})", self.deployment, self.strategy)?;
        match &self.from {
            Some(from) => writeln!(f, "  {}: {from} -> {}", self.service, self.to)?,
            None => writeln!(f, "  {}: install {}", self.service, self.to)?,
        }
        match &self.outcome {
            Some(o) => writeln!(f, "  outcome: {o}")?,
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
            sample: None,
        };
        let report = Report::from_records(&[first, second]).expect("report");
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
    }
}
