//! The journalled state of one deployment: where it stands ([`Stage`]), the pure cores' own
//! state (canary controller, judges, trigger engine, plan cursor) and how it ended
//! ([`Outcome`]). Everything here serializes, so a journal record is enough to resume.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_canary::controller::{CanaryPolicy, ControllerState};
use serin_canary::judge::{Judge, Judgement, Sample};
use serin_canary::sequential::{SequentialCountJudge, SequentialLatencyJudge};
use serin_signals::{Metric, Timestamp, Track};
use serin_traffic::{Plan, PlanCursor, TrafficSplit};
use serin_triggers::Engine;

use crate::config::{DeploymentConfig, StrategyKind};
use crate::error::{Error, Result};
use crate::event::Phase;

/// The largest journal or event sequence number a deployment may resume from: 2⁵³, more than
/// any deployment writes (a record a millisecond for 285,000 years), and the largest integer
/// every JSON reader keeps exact. Above it, a record was edited or damaged.
pub(crate) const MAX_SEQ: u64 = 1 << 53;

/// A version running as a track.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// The track.
    pub track: Track,
    /// The version it runs.
    pub version: semver::Version,
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} on {}", self.version, self.track)
    }
}

/// Where a deployment stands. Each stage is entered through a journal record, so a resumed
/// deployment continues from the stage of its last record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Compatibility validation.
    Validation,
    /// Pre-checks and backup.
    Preparation,
    /// Starting the new track.
    BringUp,
    /// Waiting for the new track to be ready.
    WaitReady,
    /// The canary controller drives the weight.
    Canary,
    /// A traffic plan moves traffic (blue-green).
    Switch,
    /// The promoted version is watched.
    Monitoring,
    /// Waiting for the warm delay, then retiring the old track.
    Completion,
    /// Moving traffic back and retiring the new track.
    RollingBack,
    /// Over; see the outcome.
    Done,
}

impl fmt::Display for Stage {
    /// The stage's name as journal records spell it (`rollingBack`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Stage::Validation => "validation",
            Stage::Preparation => "preparation",
            Stage::BringUp => "bringUp",
            Stage::WaitReady => "waitReady",
            Stage::Canary => "canary",
            Stage::Switch => "switch",
            Stage::Monitoring => "monitoring",
            Stage::Completion => "completion",
            Stage::RollingBack => "rollingBack",
            Stage::Done => "done",
        })
    }
}

impl Stage {
    /// The brief's phase this stage belongs to.
    pub fn phase(self) -> Phase {
        match self {
            Stage::Validation => Phase::Validation,
            Stage::Preparation => Phase::Preparation,
            Stage::BringUp | Stage::WaitReady | Stage::Canary | Stage::Switch => Phase::Deployment,
            Stage::Monitoring => Phase::Monitoring,
            Stage::Completion => Phase::Completion,
            Stage::RollingBack => Phase::Rollback,
            Stage::Done => Phase::Finished,
        }
    }
}

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "result")]
pub enum Outcome {
    /// The new version serves all traffic.
    Succeeded,
    /// The previous version serves all traffic again.
    RolledBack {
        /// Why.
        reason: String,
    },
    /// Validation blocked the upgrade; nothing changed.
    Blocked {
        /// The validator's explanation.
        reason: String,
    },
    /// Something failed and was not (or could not be) rolled back.
    Failed {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// Whether the new version serves all traffic.
    pub fn is_success(&self) -> bool {
        matches!(self, Outcome::Succeeded)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Succeeded => f.write_str("succeeded"),
            Outcome::RolledBack { reason } => write!(f, "rolled back: {reason}"),
            Outcome::Blocked { reason } => write!(f, "blocked: {reason}"),
            Outcome::Failed { reason } => write!(f, "failed: {reason}"),
        }
    }
}

/// A side effect the executor carries out after journalling it. Every effect is idempotent, so
/// a resumed deployment simply carries out the effects of its last record again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "effect")]
pub enum Effect {
    /// Start the track (already running with the same version counts as done).
    #[serde(rename_all = "camelCase")]
    BringUp {
        /// The track.
        track: Track,
        /// The version.
        version: semver::Version,
        /// Instances.
        instances: u32,
    },
    /// Run this many instances of the track.
    #[serde(rename_all = "camelCase")]
    Scale {
        /// The track.
        track: Track,
        /// Instances.
        instances: u32,
    },
    /// Put the split in force.
    #[serde(rename_all = "camelCase")]
    Apply {
        /// The split.
        split: TrafficSplit,
    },
    /// Drain and stop the track (already gone counts as done).
    #[serde(rename_all = "camelCase")]
    Retire {
        /// The track.
        track: Track,
        /// The drain, in milliseconds.
        drain_ms: u64,
    },
}

impl Effect {
    pub(crate) fn retire(track: Track, drain: Duration) -> Self {
        Effect::Retire {
            track,
            drain_ms: u64::try_from(drain.as_millis()).unwrap_or(u64::MAX),
        }
    }
}

/// The judges the orchestrator builds from the config, in one serializable type so the
/// controller's judges can be journalled with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AnyJudge {
    /// The sequential count judge (error rate).
    Counts(Box<SequentialCountJudge>),
    /// The sequential latency judge.
    Latency(Box<SequentialLatencyJudge>),
}

impl Judge for AnyJudge {
    fn name(&self) -> &str {
        match self {
            AnyJudge::Counts(j) => j.name(),
            AnyJudge::Latency(j) => j.name(),
        }
    }
    fn metric(&self) -> &Metric {
        match self {
            AnyJudge::Counts(j) => j.metric(),
            AnyJudge::Latency(j) => j.metric(),
        }
    }
    fn observe(&mut self, sample: &Sample<'_>) -> serin_canary::Result<Judgement> {
        match self {
            AnyJudge::Counts(j) => j.observe(sample),
            AnyJudge::Latency(j) => j.observe(sample),
        }
    }
    fn judgement(&self, now: Timestamp) -> Judgement {
        match self {
            AnyJudge::Counts(j) => j.judgement(now),
            AnyJudge::Latency(j) => j.judgement(now),
        }
    }
    fn reset(&mut self) {
        match self {
            AnyJudge::Counts(j) => j.reset(),
            AnyJudge::Latency(j) => j.reset(),
        }
    }
}

/// The canary controller's journalled parts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CanaryRun {
    /// The policy.
    pub policy: CanaryPolicy,
    /// The judges, with everything they have seen.
    pub judges: Vec<AnyJudge>,
    /// The controller's state.
    pub controller: ControllerState,
    /// The last reason the controller gave, to report only changes.
    #[serde(default)]
    pub last_reason: String,
}

/// A traffic plan being executed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PlanRun {
    /// The plan.
    pub plan: Plan,
    /// Where its execution stands.
    pub cursor: PlanCursor,
}

/// Where an upgrade step of the compatibility checklist stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StepStatus {
    /// Listed; its phase has not been reached (after a rollback, it never will be).
    Pending,
    /// Its phase was reached and nobody carried it out: an operator must.
    Due,
    /// Carried out, with evidence.
    Done,
    /// Tried and failed, with the error as evidence.
    Failed,
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StepStatus::Pending => "pending",
            StepStatus::Due => "due",
            StepStatus::Done => "done",
            StepStatus::Failed => "failed",
        })
    }
}

/// One step of the validated upgrade's checklist (`serin_compat` steps: backups, flags, expand
/// migrations before the deployment, contract migrations and clean-up after it) and what
/// became of it. The orchestrator runs no SQL: it records each step as due when its phase
/// comes, or done when the backup provider or a [`StepRunner`](crate::StepRunner) carried it out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UpgradeStep {
    /// The checklist item.
    pub step: serin_compat::Step,
    /// Where it stands.
    pub status: StepStatus,
    /// What shows it was done (a backup id, the runner's answer) or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<String>,
}

impl UpgradeStep {
    /// A checklist item not yet done.
    pub fn pending(step: serin_compat::Step) -> Self {
        UpgradeStep {
            step,
            status: StepStatus::Pending,
            evidence: None,
        }
    }

    /// Whether the step comes before the new version receives traffic (done in preparation).
    /// Deploy-phase steps other than this deployment itself (required stops, other services)
    /// are reminders due before it too.
    pub(crate) fn is_pre(&self, service: &str) -> bool {
        match self.step.phase {
            serin_compat::steps::StepPhase::Before => true,
            serin_compat::steps::StepPhase::Deploy => !self.is_this_deploy(service),
            serin_compat::steps::StepPhase::After => false,
        }
    }

    /// Whether the step is the deployment of `service` itself.
    pub(crate) fn is_this_deploy(&self, service: &str) -> bool {
        self.step.kind == serin_compat::steps::StepKind::Deploy && self.step.service == service
    }
}

impl fmt::Display for UpgradeStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.step, self.status)?;
        if let Some(e) = &self.evidence {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// Everything about one deployment that a journal record holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentState {
    /// The deployment's id (`web-1.1.0-1700000000000`).
    pub id: String,
    /// The service.
    pub service: String,
    /// The configuration it runs with (after environment overrides).
    pub config: DeploymentConfig,
    /// The strategy.
    pub strategy: StrategyKind,
    /// What ran before (none for a first install).
    pub from: Option<Placement>,
    /// What is deployed.
    pub to: Placement,
    /// Where the deployment stands.
    pub stage: Stage,
    /// When it started.
    pub started_at: Timestamp,
    /// When it is rolled back if not finished.
    pub deadline: Timestamp,
    /// Paused by an operator.
    pub paused: bool,
    /// The new version's share of traffic, in percent.
    pub weight: f64,
    /// The end of the last window observed.
    pub observed_until: Timestamp,
    /// When the new version took all traffic.
    pub promoted_at: Option<Timestamp>,
    /// The canary controller, in canary stages.
    pub canary: Option<CanaryRun>,
    /// The traffic plan, in blue-green switches.
    pub plan: Option<PlanRun>,
    /// The rollback trigger engine.
    pub triggers: Engine,
    /// The backup taken in preparation.
    pub backup: Option<String>,
    /// A backup to restore in preparation, before anything switches: set when this deployment
    /// rolls back across destructive (contract) migrations of the deployments it undoes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore: Option<String>,
    /// A `setCanaryScale` step with `matchTrafficWeight` made the canary's size follow its
    /// traffic weight (until the next scale step).
    #[serde(default)]
    pub canary_scale_follows_weight: bool,
    /// The validated upgrade's checklist and where each step stands.
    #[serde(default)]
    pub checklist: Vec<UpgradeStep>,
    /// `maxDeploymentDuration` ran out after promotion and `onDeadline: complete` is finishing
    /// the deployment (the warm delay and a pause no longer hold it).
    #[serde(default)]
    pub deadline_action: bool,
    /// Why a rollback was started.
    pub rollback_reason: Option<String>,
    /// How it ended, once [`Stage::Done`].
    pub outcome: Option<Outcome>,
    /// The next event's sequence number.
    pub next_event: u64,
}

impl DeploymentState {
    /// A deployment of `to` over `from` at `now`, before validation: nothing observed, no
    /// traffic moved, the deadline `maxDeploymentDuration` away.
    pub(crate) fn new(
        id: String,
        service: String,
        config: DeploymentConfig,
        from: Option<Placement>,
        to: Placement,
        triggers: Engine,
        now: Timestamp,
    ) -> Self {
        DeploymentState {
            id,
            service,
            strategy: config.strategy,
            deadline: now.saturating_add(config.max_deployment_duration),
            config,
            from,
            to,
            stage: Stage::Validation,
            started_at: now,
            paused: false,
            weight: 0.0,
            observed_until: now,
            promoted_at: None,
            canary: None,
            plan: None,
            triggers,
            backup: None,
            restore: None,
            canary_scale_follows_weight: false,
            checklist: Vec::new(),
            deadline_action: false,
            rollback_reason: None,
            outcome: None,
            next_event: 0,
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.stage.phase()
    }

    /// Whether the deployment is over.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Checks a state read back from a journal before a deployment resumes from it: the
    /// configuration validates, the numbers are in range, and the fields agree with the stage
    /// as the executor leaves them (a canary stage holds its controller and the version it is
    /// compared with, a finished deployment its outcome). A record edited by hand or damaged
    /// is refused with the field and the reason, before anything moves.
    pub fn check_restored(&self) -> Result<()> {
        self.config.validate()?;
        if !(self.weight.is_finite() && (0.0..=100.0).contains(&self.weight)) {
            return Err(Error::invalid(
                "state.weight",
                format!("{:?}", self.weight),
                "must be a percentage in [0, 100]",
            ));
        }
        if self.next_event > MAX_SEQ {
            return Err(Error::invalid(
                "state.nextEvent",
                self.next_event,
                "is past 2^53, more events than any deployment announces",
            ));
        }
        if let Some(run) = &self.plan
            && let Some(step) = run.cursor.last_applied()
            && step >= run.plan.len()
        {
            // The cursor would answer that the plan is done, and the switch would be taken as
            // made without moving any traffic.
            return Err(Error::invalid(
                "state.plan.cursor.applied.step",
                step,
                format!(
                    "is not a step of the plan, which has {} steps",
                    run.plan.len()
                ),
            ));
        }
        let missing = |field: &str, reason: &str| {
            Err(Error::invalid(
                field,
                "null",
                format!("the {} stage needs it: {reason}", self.stage),
            ))
        };
        match self.stage {
            Stage::Canary | Stage::Switch if self.from.is_none() => missing(
                "state.from",
                "traffic moves from the version that ran before",
            ),
            Stage::Canary if self.canary.is_none() => {
                missing("state.canary", "the canary controller decides the weight")
            }
            Stage::Switch if self.plan.is_none() => {
                missing("state.plan", "the traffic plan moves the weight")
            }
            Stage::Monitoring | Stage::Completion if self.promoted_at.is_none() => missing(
                "state.promotedAt",
                "the new version was promoted before it is watched",
            ),
            Stage::Done if self.outcome.is_none() => {
                missing("state.outcome", "a finished deployment has an outcome")
            }
            stage if stage != Stage::Done && self.outcome.is_some() => Err(Error::invalid(
                "state.outcome",
                "…",
                format!("only a finished deployment has an outcome, not one in the {stage} stage"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A state at the start of a canary of `web` 1.0.0 -> 1.1.0.
    pub(crate) fn sample_state() -> DeploymentState {
        crate::journal::testkit::sample_record("web-1.1.0-1000", 0).state
    }

    #[test]
    fn stages_map_to_the_brief_phases() {
        assert_eq!(Stage::Canary.phase(), Phase::Deployment);
        assert_eq!(Stage::Switch.phase(), Phase::Deployment);
        assert_eq!(Stage::Monitoring.phase(), Phase::Monitoring);
        assert_eq!(Stage::RollingBack.phase(), Phase::Rollback);
        assert!(!sample_state().is_done());
    }

    #[test]
    fn stages_display_as_journal_records_spell_them() {
        for stage in [
            Stage::Validation,
            Stage::Preparation,
            Stage::BringUp,
            Stage::WaitReady,
            Stage::Canary,
            Stage::Switch,
            Stage::Monitoring,
            Stage::Completion,
            Stage::RollingBack,
            Stage::Done,
        ] {
            let json = serde_json::to_string(&stage).expect("serialize");
            assert_eq!(json, format!("\"{stage}\""));
        }
    }

    #[test]
    fn a_fresh_state_passes_the_restore_check_and_an_inconsistent_one_does_not() {
        let mut state = sample_state();
        state.check_restored().expect("a fresh state");
        state.stage = Stage::Canary;
        let e = state
            .check_restored()
            .expect_err("a canary stage without a controller");
        assert!(e.to_string().contains("state.canary"), "{e}");
    }

    #[test]
    fn a_plan_cursor_past_its_plan_is_refused_on_restore() {
        let mut state = sample_state();
        let from = TrafficSplit::all_to("blue", &["green"]).expect("split");
        let plan =
            Plan::shift(&from, "green", &serin_traffic::Strategy::immediate()).expect("plan");
        let cursor = |step: usize| -> PlanCursor {
            serde_json::from_value(serde_json::json!({
                "applied": { "step": step, "atMillis": 0, "approved": false }
            }))
            .expect("cursor")
        };
        let last = plan.len() - 1;
        state.plan = Some(PlanRun {
            plan,
            cursor: cursor(last),
        });
        state.check_restored().expect("the last step applied");
        if let Some(run) = state.plan.as_mut() {
            run.cursor = cursor(last + 1);
        }
        let e = state.check_restored().expect_err("a step past the plan");
        assert!(
            e.to_string().contains("state.plan.cursor.applied.step"),
            "{e}"
        );
    }

    #[test]
    fn effects_and_outcomes_serialize_tagged() {
        let e = Effect::retire(Track::Green, Duration::from_secs(2));
        let json = serde_json::to_string(&e).expect("json");
        assert_eq!(
            json,
            r#"{"effect":"retire","track":"green","drainMs":2000}"#
        );
        let o = Outcome::RolledBack {
            reason: "judge".into(),
        };
        let json = serde_json::to_string(&o).expect("json");
        assert_eq!(json, r#"{"result":"rolledBack","reason":"judge"}"#);
        assert_eq!(serde_json::from_str::<Outcome>(&json).expect("back"), o);
        assert_eq!(o.to_string(), "rolled back: judge");
    }
}
