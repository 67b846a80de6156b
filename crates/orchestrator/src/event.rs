//! The typed event stream of a deployment: what subscribers, `tracing`, notifiers and the
//! report see, in order, each stamped with its deployment, sequence number and time.

use std::fmt;

use serde::{Deserialize, Serialize};
use serin_canary::controller::{Action, Decision};
use serin_signals::Timestamp;

use crate::config::{NotifyOn, StrategyKind};
use crate::state::StepStatus;

/// The phases of a deployment, as the brief names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// The upgrade is checked for compatibility.
    Validation,
    /// Pre-checks, dependencies, backup.
    Preparation,
    /// The strategy runs: the new version comes up and receives traffic.
    Deployment,
    /// The promoted version is watched by the rollback triggers.
    Monitoring,
    /// The old version is retired after its warm delay.
    Completion,
    /// Traffic goes back to the previous version.
    Rollback,
    /// Nothing is left to do.
    Finished,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Validation => "validation",
            Phase::Preparation => "preparation",
            Phase::Deployment => "deployment",
            Phase::Monitoring => "monitoring",
            Phase::Completion => "completion",
            Phase::Rollback => "rollback",
            Phase::Finished => "finished",
        })
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum EventKind {
    /// The deployment started.
    #[serde(rename_all = "camelCase")]
    Started {
        /// The strategy.
        strategy: StrategyKind,
        /// The version running before, if any.
        from: Option<String>,
        /// The version deployed.
        to: String,
    },
    /// The deployment entered a phase.
    #[serde(rename_all = "camelCase")]
    PhaseChanged {
        /// The new phase.
        phase: Phase,
    },
    /// The upgrade validated, with the validator's verdict and findings in one line each.
    #[serde(rename_all = "camelCase")]
    Validated {
        /// The validator's verdict by its serialized name, `ok` or `okWithWarnings`, or
        /// `not checked` when no validator is configured.
        verdict: String,
        /// The findings, one sentence each.
        findings: Vec<String>,
    },
    /// A backup was taken before any change.
    #[serde(rename_all = "camelCase")]
    BackupTaken {
        /// The backup's id, for restores.
        id: String,
    },
    /// A backup was restored before the switch (a rollback across destructive migrations).
    #[serde(rename_all = "camelCase")]
    BackupRestored {
        /// The backup restored.
        id: String,
    },
    /// The new version's track was started.
    #[serde(rename_all = "camelCase")]
    TrackStarted {
        /// The version it runs.
        #[serde(default)]
        version: String,
        /// The track (`canary`, `green`, or `stable` when a canary runs on the idle one).
        track: String,
        /// Instances started.
        instances: u32,
    },
    /// Every instance of the new track is ready.
    #[serde(rename_all = "camelCase")]
    TrackReady {
        /// The version it runs.
        #[serde(default)]
        version: String,
        /// The track.
        track: String,
    },
    /// The split changed: the new version's share of traffic. The new version is always the
    /// canary arm, whichever track it runs on.
    #[serde(rename_all = "camelCase")]
    WeightChanged {
        /// The new version.
        #[serde(default)]
        version: String,
        /// The track it runs on.
        track: String,
        /// Its share, in percent.
        percent: f64,
    },
    /// The canary controller decided something other than holding, or held for a reason other
    /// than the last one (a hold is announced when its reason changes, not at every window),
    /// with its evidence. A promotion no controller decided (the blue-green switch's plan
    /// completing, an operator's promote of the switch or of the watch) is announced the same
    /// way, without evidence, its reason saying what decided.
    #[serde(rename_all = "camelCase")]
    AnalysisResult {
        /// The decision and its evidence.
        decision: Decision,
    },
    /// Something wrong that does not (yet) roll back: a trigger that fired to warn or hold, an
    /// observation the canary or the triggers could not use, a backup that cannot be confirmed
    /// after a restart, a rollback refused once the old version is retired, a deployment lock
    /// the platform would not free, a post-upgrade step that failed once the old version was
    /// retired.
    #[serde(rename_all = "camelCase")]
    Anomaly {
        /// Who saw it: ``trigger `id` ``, `canary`, `rollback triggers`, `backup`, `rollback`,
        /// `platform` or `upgrade step`.
        source: String,
        /// How bad: a trigger's action (`warn`, `hold`), else `info`, `warning` or `critical`
        /// (a post-upgrade step that failed once the old version was retired).
        severity: String,
        /// One sentence with the evidence.
        summary: String,
    },
    /// A rollback trigger fired asking for a rollback (one that warns or holds is an
    /// [`Anomaly`](EventKind::Anomaly)).
    #[serde(rename_all = "camelCase")]
    TriggerFired {
        /// The trigger's event, with its evidence.
        event: serin_triggers::Event,
    },
    /// A step of the validated upgrade's checklist reached its phase: carried out (with
    /// evidence), due for an operator, or failed.
    #[serde(rename_all = "camelCase")]
    UpgradeStep {
        /// The checklist item.
        step: serin_compat::Step,
        /// Where it stands now.
        status: StepStatus,
        /// What shows it was done, or why it failed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        evidence: Option<String>,
    },
    /// A deadline ran out: `maxDeploymentDuration` in preparation (the deployment fails, with
    /// nothing to roll back), before promotion (a rollback follows) or after it
    /// (`monitoring.onDeadline` says what follows), or the canary's `canaryConfig.maxDuration`
    /// (a rollback follows). `action` names the deadline and says what follows.
    #[serde(rename_all = "camelCase")]
    DeadlineReached {
        /// The phase it ran out in.
        phase: Phase,
        /// The deadline and what follows, in a sentence.
        action: String,
    },
    /// The deployment was paused by an operator.
    Paused,
    /// The deployment was resumed by an operator.
    Resumed,
    /// A rollback started.
    #[serde(rename_all = "camelCase")]
    RollbackStarted {
        /// Why.
        reason: String,
    },
    /// The deployment finished: the new version serves all traffic.
    #[serde(rename_all = "camelCase")]
    Completed {
        /// The version now running.
        version: String,
    },
    /// The deployment finished rolled back: the previous version serves all traffic.
    #[serde(rename_all = "camelCase")]
    RolledBack {
        /// Why.
        reason: String,
    },
    /// The upgrade was blocked by validation; nothing changed.
    #[serde(rename_all = "camelCase")]
    Blocked {
        /// The validator's explanation.
        reason: String,
    },
    /// The deployment failed and could not be rolled back (or was not asked to be).
    #[serde(rename_all = "camelCase")]
    Failed {
        /// Why.
        reason: String,
    },
}

impl EventKind {
    /// The notification category of this event: every event has one, so a channel taking all
    /// categories (`events` empty) hears of everything the timeline records.
    pub fn notify_on(&self) -> NotifyOn {
        match self {
            EventKind::Started { .. } => NotifyOn::Started,
            EventKind::Completed { .. } => NotifyOn::Completed,
            EventKind::Failed { .. } | EventKind::Blocked { .. } => NotifyOn::Failed,
            EventKind::Anomaly { .. } | EventKind::TriggerFired { .. } => NotifyOn::Anomaly,
            EventKind::RollbackStarted { .. } | EventKind::RolledBack { .. } => NotifyOn::Rollback,
            EventKind::PhaseChanged { .. } => NotifyOn::Phase,
            EventKind::Paused | EventKind::Resumed => NotifyOn::Paused,
            EventKind::DeadlineReached { .. } => NotifyOn::Deadline,
            EventKind::Validated { .. }
            | EventKind::BackupTaken { .. }
            | EventKind::BackupRestored { .. }
            | EventKind::TrackStarted { .. }
            | EventKind::TrackReady { .. }
            | EventKind::WeightChanged { .. }
            | EventKind::AnalysisResult { .. } => NotifyOn::Progress,
            EventKind::UpgradeStep { .. } => NotifyOn::Step,
        }
    }
}

/// A compatibility verdict by its serialized name (`ok`, `okWithWarnings`, `blocked`), as
/// events and the dry run write it: the Rust names (`OkWithWarnings`) are no part of the
/// report's schema.
pub(crate) fn verdict_name(verdict: serin_compat::Verdict) -> &'static str {
    match verdict {
        serin_compat::Verdict::Ok => "ok",
        serin_compat::Verdict::OkWithWarnings => "okWithWarnings",
        serin_compat::Verdict::Blocked => "blocked",
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::Started { strategy, from, to } => match from {
                Some(from) => write!(f, "started: {from} -> {to} by {strategy}"),
                None => write!(f, "started: install {to} by {strategy}"),
            },
            EventKind::PhaseChanged { phase } => write!(f, "phase: {phase}"),
            EventKind::Validated { verdict, findings } => {
                write!(f, "validated: {verdict}")?;
                for x in findings {
                    write!(f, "; {x}")?;
                }
                Ok(())
            }
            EventKind::BackupTaken { id } => write!(f, "backup taken: {id}"),
            EventKind::BackupRestored { id } => write!(f, "backup restored: {id}"),
            EventKind::TrackStarted {
                version,
                track,
                instances,
            } => write!(
                f,
                "{version} started on track {track} with {instances} instance(s)"
            ),
            EventKind::TrackReady { version, track } => {
                write!(f, "{version} ready on track {track}")
            }
            EventKind::WeightChanged {
                version,
                track,
                percent,
            } => write!(
                f,
                "weight: {percent}% to the new version {version} (canary arm, on track {track})"
            ),
            EventKind::UpgradeStep {
                step,
                status,
                evidence,
            } => {
                write!(f, "upgrade step {status}: {step}")?;
                if let Some(e) = evidence {
                    write!(f, " — {e}")?;
                }
                Ok(())
            }
            EventKind::DeadlineReached { phase, action } => {
                write!(f, "deadline reached in {phase}: {action}")
            }
            EventKind::AnalysisResult { decision } => {
                write!(f, "analysis: {:?} — {}", decision.action, decision.reason)?;
                // A rollback names only the failing judge that decided it: one for a deadline,
                // missing data or a command names none (its first evidence is merely a judge's
                // standing, a pass perhaps). Any other decision names the first, which it rests
                // on (a promotion's gate or judges, a raise's judges) or waits on (a hold's): a
                // canary that waits on missing data says so.
                let decisive = match decision.action {
                    Action::Rollback => decision.decisive_evidence(),
                    _ => decision.evidence.first(),
                };
                if let Some(e) = decisive {
                    write!(f, " [{}]", e.summary)?;
                }
                Ok(())
            }
            EventKind::Anomaly {
                source,
                severity,
                summary,
            } => write!(f, "anomaly ({severity}) from {source}: {summary}"),
            EventKind::TriggerFired { event } => write!(f, "trigger fired: {}", event.evidence),
            EventKind::Paused => f.write_str("paused"),
            EventKind::Resumed => f.write_str("resumed"),
            EventKind::RollbackStarted { reason } => write!(f, "rollback started: {reason}"),
            EventKind::Completed { version } => {
                write!(f, "completed: {version} serves all traffic")
            }
            EventKind::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            EventKind::Blocked { reason } => write!(f, "blocked: {reason}"),
            EventKind::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// One event of one deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// The deployment's id.
    pub deployment: String,
    /// The service deployed.
    pub service: String,
    /// Position in the deployment's stream, from 0, without gaps.
    pub seq: u64,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "[{} #{} {}] {}",
            self.deployment,
            self.seq,
            self.at.as_millis(),
            self.kind
        )
    }
}

#[cfg(test)]
mod tests {
    use serin_canary::judge::{Evidence, Severity};
    use serin_compat::Verdict;
    use serin_signals::{Metric, Timestamp};

    use super::{Action, Decision, EventKind, verdict_name};

    #[test]
    fn verdict_names_are_the_serialized_ones() {
        for v in [Verdict::Ok, Verdict::OkWithWarnings, Verdict::Blocked] {
            assert_eq!(
                serde_json::to_value(v).expect("serializes"),
                verdict_name(v),
                "{v:?}"
            );
        }
    }

    /// A decision to `action` for `reason`, with one judge's evidence summed up as `summary`.
    fn decision(
        action: Action,
        severity: Option<Severity>,
        reason: &str,
        summary: &str,
    ) -> EventKind {
        let at = Timestamp::from_millis(1_700_000_000_000);
        let mut evidence = Evidence::empty("sequential-counts", Metric::ErrorRate, at);
        evidence.summary = summary.into();
        EventKind::AnalysisResult {
            decision: Decision {
                action,
                at,
                step: 1,
                weight: 10,
                severity,
                reason: reason.into(),
                evidence: vec![evidence],
            },
        }
    }

    #[test]
    fn a_rollback_no_judge_decided_names_no_judges_evidence() {
        let deadline = "the rollout exceeded its maximum duration 600s";
        let pass = "The canary's error rate is no higher: pass.";
        let shown = decision(Action::Rollback, None, deadline, pass).to_string();
        assert_eq!(shown, format!("analysis: Rollback — {deadline}"));
    }

    #[test]
    fn a_rollback_a_judge_decided_names_its_evidence() {
        let fail = "The canary's error rate is 3x the baseline's: fail.";
        let regression = "critical regression in `error_rate`";
        let shown = decision(Action::Rollback, Some(Severity::Critical), regression, fail);
        assert_eq!(
            shown.to_string(),
            format!("analysis: Rollback — {regression} [{fail}]")
        );
    }

    #[test]
    fn a_decision_to_go_on_names_the_evidence_it_rests_on_or_waits_on() {
        let waiting = "No data for the canary: inconclusive, never a pass.";
        for action in [Action::Promote, Action::Hold, Action::SetWeight(10)] {
            let shown = decision(action, None, "step", waiting).to_string();
            assert!(shown.ends_with(&format!("— step [{waiting}]")), "{shown}");
        }
    }
}
