//! The journalled state of one deployment: where it stands ([`Stage`]), the pure cores' own
//! state (canary controller, judges, trigger engine, plan cursor) and how it ended
//! ([`Outcome`]). Everything here serializes, so a journal record is enough to resume.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_canary::controller::{CanaryPolicy, ControllerState};
use serin_canary::judge::{Judge, Judgement, Sample};
use serin_canary::kayenta::KayentaAnalysis;
use serin_canary::sequential::{SequentialCountJudge, SequentialLatencyJudge};
use serin_canary::threshold::{ArgoJudge, FlaggerAnalysis};
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
    /// An Argo Rollouts analysis metric (`canaryConfig.parityJudges.argo`).
    Argo(Box<ArgoJudge>),
    /// Flagger's analysis (`canaryConfig.parityJudges.flagger`).
    Flagger(Box<FlaggerAnalysis>),
    /// A Kayenta canary config's analysis (`canaryConfig.parityJudges.kayenta`).
    Kayenta(Box<KayentaAnalysis>),
    /// A judge run as a dry run (`canaryConfig.parityJudges.role`): fed and judged as it is,
    /// its verdict recorded and never acted on.
    DryRun(Box<AnyJudge>),
}

impl AnyJudge {
    /// `judge` as a dry run.
    pub(crate) fn dry_run(judge: AnyJudge) -> Self {
        AnyJudge::DryRun(Box::new(judge))
    }

    fn inner(&self) -> &dyn Judge {
        match self {
            AnyJudge::DryRun(j) => j.inner(),
            AnyJudge::Counts(j) => j.as_ref(),
            AnyJudge::Latency(j) => j.as_ref(),
            AnyJudge::Argo(j) => j.as_ref(),
            AnyJudge::Flagger(j) => j.as_ref(),
            AnyJudge::Kayenta(j) => j.as_ref(),
        }
    }

    fn inner_mut(&mut self) -> &mut dyn Judge {
        match self {
            AnyJudge::DryRun(j) => j.inner_mut(),
            AnyJudge::Counts(j) => j.as_mut(),
            AnyJudge::Latency(j) => j.as_mut(),
            AnyJudge::Argo(j) => j.as_mut(),
            AnyJudge::Flagger(j) => j.as_mut(),
            AnyJudge::Kayenta(j) => j.as_mut(),
        }
    }
}

impl Judge for AnyJudge {
    fn name(&self) -> &str {
        self.inner().name()
    }
    fn metric(&self) -> &Metric {
        self.inner().metric()
    }
    fn analyses(&self, metric: &Metric) -> bool {
        self.inner().analyses(metric)
    }
    fn analysed_metrics(&self) -> Vec<Metric> {
        self.inner().analysed_metrics()
    }
    fn observe(&mut self, sample: &Sample<'_>) -> serin_canary::Result<Judgement> {
        self.inner_mut().observe(sample)
    }
    fn accepts(&self, sample: &Sample<'_>) -> serin_canary::Result<()> {
        self.inner().accepts(sample)
    }
    fn judgement(&self, now: Timestamp) -> Judgement {
        self.inner().judgement(now)
    }
    fn reset(&mut self) {
        self.inner_mut().reset();
    }
    fn concluded(&self) -> bool {
        self.inner().concluded()
    }
    fn advisory(&self) -> bool {
        matches!(self, AnyJudge::DryRun(_)) || self.inner().advisory()
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

/// A non-idempotent action journalled as started before it is carried out, and cleared by
/// the record that journals its result.
///
/// Effects ([`Effect`]) are idempotent and simply carried out again after a crash. A backup, a
/// restore and an upgrade step are not: taking a backup twice lets the provider's retention
/// expire an older one (the restore point of a later rollback), restoring twice throws away
/// what was written in between, and a migration may not run twice. So each is journalled as
/// started first, and a deployment resumed with one still started does not carry it out again
/// blindly: it looks for the backup, and hands the restore or the step to an operator (see
/// where each is carried out: preparation and completion).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum InFlight {
    /// The preparation backup is being taken.
    #[serde(rename_all = "camelCase")]
    Backup {
        /// The label it is taken with.
        label: String,
        /// The ids of the service's backups that bore the same label before it was started
        /// (none is this one), or `None` when the provider could not list them then: a resumed
        /// deployment takes a backup with the label that is not among them as this one.
        existing: Option<Vec<String>>,
    },
    /// The backup `restore` is being restored.
    #[serde(rename_all = "camelCase")]
    Restore {
        /// The backup.
        id: String,
    },
    /// The step runner carries out the checklist item at `index`.
    #[serde(rename_all = "camelCase")]
    Step {
        /// Its index in the checklist.
        index: usize,
    },
}

impl fmt::Display for InFlight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InFlight::Backup { label, .. } => write!(f, "backup `{label}`"),
            InFlight::Restore { id } => write!(f, "restore of backup {id}"),
            InFlight::Step { index } => write!(f, "checklist step {index}"),
        }
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
    /// Paused by an operator; never in a finished deployment.
    pub paused: bool,
    /// The new version's share of traffic, in percent, once this record's effects are carried
    /// out. It is announced ([`EventKind::WeightChanged`](crate::EventKind::WeightChanged)) in
    /// the record after, once the router took it.
    pub weight: f64,
    /// The end of the last window observed.
    pub observed_until: Timestamp,
    /// When the new version's arm last began taking traffic (its share rose from 0%). Its
    /// metrics need a scrape or two to appear, so a rollback trigger on it that has no data
    /// yet gets its `staleAfter` counted from here before its missing data holds or rolls
    /// back. Journalled, so a restart neither extends nor cuts short that grace. `None` before
    /// the first weight, and in records written before it was journalled (no grace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_traffic_since: Option<Timestamp>,
    /// When the old version's arm last began taking traffic again (its share rose from 0%
    /// after the new version had all of it), for the same grace; `None` while it has served
    /// traffic since the deployment began.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_traffic_since: Option<Timestamp>,
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
    /// A backup, restore or upgrade step journalled as started and whose result is not
    /// journalled yet (see [`InFlight`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_flight: Option<InFlight>,
    /// The preparation backup was started before a restart and could not be found again
    /// afterwards (why): it is not taken again, so that the provider's retention does not
    /// expire an older backup, and the deployment goes on without naming one. The checklist's
    /// backup step of the service is then left to an operator, with this reason, rather than
    /// asked of the step runner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_unconfirmed: Option<String>,
    /// The backup [`restore`](Self::restore) was restored (journalled once it was).
    #[serde(default)]
    pub restored: bool,
    /// When the current wait for the new track's readiness began (bringing it up, scaling it
    /// for promotion, growing the canary for a raised weight when its size follows the weight,
    /// or waiting before a raise or a promotion for an instance not ready): `readinessTimeout`
    /// counts from here, across restarts. `None` in
    /// records written before it was journalled, whose wait counts from the resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_since: Option<Timestamp>,
    /// The promotion is under way: the new track is scaled to full size (if it must grow) and,
    /// once every instance is ready, gets all traffic. Journalled with the scale, so a resumed deployment finishes the promotion
    /// instead of asking the canary controller again (a journalled pause holds it at its
    /// canary share until the resume, as in an uninterrupted run).
    #[serde(default)]
    pub promoting: bool,
    /// An operator promoted (during the canary or switch, or while the promotion under way
    /// waited): the promotion goes through a rollback trigger's hold. Journalled with the
    /// promotion, so a deployment resumed during its scale-up goes through the hold too
    /// instead of waiting for a second promote. Only with [`promoting`](Self::promoting).
    #[serde(default)]
    pub operator_promoted: bool,
    /// The old version's retire is journalled (completion): from then on the deployment can
    /// only finish forward, since no rollback can route traffic to a retired track.
    #[serde(default)]
    pub old_retired: bool,
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
            canary_traffic_since: None,
            baseline_traffic_since: None,
            promoted_at: None,
            canary: None,
            plan: None,
            triggers,
            backup: None,
            restore: None,
            canary_scale_follows_weight: false,
            checklist: Vec::new(),
            deadline_action: false,
            in_flight: None,
            backup_unconfirmed: None,
            restored: false,
            readiness_since: None,
            promoting: false,
            operator_promoted: false,
            old_retired: false,
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

    /// Whether a rollback may still start: not once the deployment is over, nor once the old
    /// version's retire is journalled ([`old_retired`](Self::old_retired)) — a rollback would
    /// route all traffic to a retired track and retire the new one. Such a deployment only
    /// finishes forward; the rollback paths (an operator's abort, `rollbackOnError`,
    /// `onResume: rollback`) ask this first.
    pub fn may_roll_back(&self) -> bool {
        !self.is_done() && !self.old_retired
    }

    /// Checks a state read back from a journal before a deployment resumes from it: the
    /// configuration validates, the numbers are in range, and the fields agree with the stage
    /// as the executor leaves them (a canary stage holds its controller and the version it is
    /// compared with, a finished deployment its outcome). A record edited by hand or damaged
    /// is refused with the field and the reason, before anything moves.
    pub fn check_restored(&self) -> Result<()> {
        self.config.check_fields()?;
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
            && let Err(e) = run.cursor.next(&run.plan, 0)
        {
            // A cursor past its plan, or started on another: resumed, the switch would be
            // taken as made without moving any traffic, or go on with steps it never took.
            return Err(match e {
                serin_traffic::Error::InvalidField {
                    field,
                    value,
                    reason,
                } => Error::invalid(format!("state.plan.cursor.{field}"), value, reason),
                other => Error::invalid("state.plan.cursor", "", other.to_string()),
            });
        }
        self.check_progress()?;
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
                self.outcome
                    .as_ref()
                    .map_or(String::new(), ToString::to_string),
                format!("only a finished deployment has an outcome, not one in the {stage} stage"),
            )),
            _ => Ok(()),
        }
    }
}

impl DeploymentState {
    /// The restore check of the fields that journal progress through non-idempotent actions
    /// ([`in_flight`](Self::in_flight), [`backup_unconfirmed`](Self::backup_unconfirmed),
    /// [`restored`](Self::restored)), the promotion and the old version's retire: each agrees
    /// with the stage and the fields the executor sets with it.
    fn check_progress(&self) -> Result<()> {
        let stage = self.stage;
        let refuse =
            |field: &str, value: String, reason: String| Err(Error::invalid(field, value, reason));
        match &self.in_flight {
            Some(InFlight::Backup { .. } | InFlight::Restore { .. })
                if stage != Stage::Preparation =>
            {
                return refuse(
                    "state.inFlight",
                    self.in_flight
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default(),
                    format!(
                        "backups and restores are made in preparation, not in the {stage} stage"
                    ),
                );
            }
            Some(InFlight::Backup { .. })
                if self.backup.is_some() || self.backup_unconfirmed.is_some() =>
            {
                return refuse(
                    "state.inFlight",
                    "backup".into(),
                    "the preparation backup is already settled".into(),
                );
            }
            Some(InFlight::Restore { id })
                if self.restored || self.restore.as_deref() != Some(id.as_str()) =>
            {
                return refuse(
                    "state.inFlight.id",
                    id.clone(),
                    "is not the backup this deployment has still to restore".into(),
                );
            }
            Some(InFlight::Step { index }) => {
                let post = stage == Stage::Completion && self.old_retired;
                if stage != Stage::Preparation && !post {
                    return refuse(
                        "state.inFlight",
                        format!("step {index}"),
                        format!(
                            "upgrade steps are carried out in preparation or after the old \
                             version is retired, not in the {stage} stage"
                        ),
                    );
                }
                match self.checklist.get(*index) {
                    Some(item) if item.status == StepStatus::Pending => {}
                    Some(item) => {
                        return refuse(
                            "state.inFlight.index",
                            index.to_string(),
                            format!("names a step that is {} already", item.status),
                        );
                    }
                    None => {
                        return refuse(
                            "state.inFlight.index",
                            index.to_string(),
                            format!(
                                "is not a step of the checklist, which has {} steps",
                                self.checklist.len()
                            ),
                        );
                    }
                }
            }
            _ => {}
        }
        if let (Some(unconfirmed), Some(_)) = (&self.backup_unconfirmed, &self.backup) {
            return refuse(
                "state.backupUnconfirmed",
                unconfirmed.clone(),
                "the backup is named by state.backup, so it is not unconfirmed".into(),
            );
        }
        if self.restored && self.restore.is_none() {
            return refuse(
                "state.restored",
                "true".into(),
                "no backup was to be restored (state.restore is null)".into(),
            );
        }
        if self.promoting {
            if !matches!(stage, Stage::Canary | Stage::Switch) {
                return refuse(
                    "state.promoting",
                    "true".into(),
                    format!(
                        "a promotion is under way in the canary or switch stage, not in the {stage} stage"
                    ),
                );
            }
            if self.readiness_since.is_none() {
                return refuse(
                    "state.readinessSince",
                    "null".into(),
                    "a promotion under way waits for the new track's readiness since it scaled it"
                        .into(),
                );
            }
        }
        if self.operator_promoted && !self.promoting {
            return refuse(
                "state.operatorPromoted",
                "true".into(),
                "an operator's promote is journalled with the promotion under way, and \
                 state.promoting is false"
                    .into(),
            );
        }
        if self.old_retired {
            if !matches!(stage, Stage::Completion | Stage::Done) {
                return refuse(
                    "state.oldRetired",
                    "true".into(),
                    format!("the old version is retired at completion, not in the {stage} stage"),
                );
            }
            if self.from.is_none() || self.promoted_at.is_none() {
                return refuse(
                    "state.oldRetired",
                    "true".into(),
                    "only a promoted deployment over a running version retires an old version"
                        .into(),
                );
            }
            if matches!(self.outcome, Some(Outcome::RolledBack { .. })) {
                return refuse(
                    "state.oldRetired",
                    "true".into(),
                    "a deployment whose old version was retired cannot have rolled back".into(),
                );
            }
        }
        Ok(())
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
    fn any_judge_passes_its_judges_check_of_a_sample_on() {
        use serin_signals::{Counts, Measurement, Observation, Window};
        let w = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(1_000)).unwrap();
        let counts = |track| {
            let c = Counts::new(100, 1).unwrap();
            Observation::new(Metric::ErrorRate, track, w, Measurement::Counts(c))
        };
        let (b, c) = (counts(Track::Stable), counts(Track::Canary));
        let sample = Sample::new(&b, &c, Some(0.5), w.end()).unwrap();
        let counting = AnyJudge::Counts(Box::new(
            SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap(),
        ));
        counting
            .accepts(&sample)
            .expect("counts are a count judge's");
        // A latency judge set on the error-rate metric: the metric matches, the kind does not.
        let timing = SequentialLatencyJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
        let e = AnyJudge::Latency(Box::new(timing))
            .accepts(&sample)
            .expect_err("counts are no latency sketches");
        assert!(e.to_string().contains("sequential-latency"), "{e}");
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
    fn a_deployment_whose_waits_an_earlier_version_let_outlast_its_deadline_resumes() {
        let mut state = sample_state();
        // Refused for a new deployment (the readiness timeout, 5m by default, never applies),
        // but a deployment already under way with it is not stranded on resume.
        state.config.max_deployment_duration = std::time::Duration::from_secs(240);
        assert!(state.config.validate().is_err());
        state
            .check_restored()
            .expect("resumes under the rules it started with");
        // Its fields are still checked.
        state.config.max_deployment_duration = std::time::Duration::ZERO;
        assert!(state.check_restored().is_err());
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

        // A cursor started on another plan of the same length (the journal's plan edited).
        let other_from = TrafficSplit::all_to("blue", &["green", "grey"]).expect("split");
        let other =
            Plan::shift(&other_from, "green", &serin_traffic::Strategy::immediate()).expect("plan");
        let mut elsewhere = PlanCursor::new();
        elsewhere.applied(&other, 0, 0).expect("applied");
        if let Some(run) = state.plan.as_mut() {
            assert_eq!(run.plan.len(), other.len());
            run.cursor = elsewhere;
        }
        let e = state
            .check_restored()
            .expect_err("a cursor of another plan");
        assert!(e.to_string().contains("state.plan.cursor.plan"), "{e}");
    }

    #[test]
    fn a_state_journalled_before_the_progress_fields_reads_back_with_their_defaults() {
        let mut json = serde_json::to_value(sample_state()).expect("json");
        let fields = json.as_object_mut().expect("an object");
        for key in [
            "inFlight",
            "backupUnconfirmed",
            "restored",
            "readinessSince",
            "promoting",
            "operatorPromoted",
            "oldRetired",
            "canaryTrafficSince",
            "baselineTrafficSince",
        ] {
            fields.remove(key);
        }
        let state: DeploymentState = serde_json::from_value(json).expect("an older state");
        assert_eq!(state.in_flight, None);
        assert_eq!(state.backup_unconfirmed, None);
        assert_eq!(state.readiness_since, None);
        assert!(!state.restored && !state.promoting && !state.old_retired);
        assert!(!state.operator_promoted);
        assert_eq!(state.canary_traffic_since, None);
        assert_eq!(state.baseline_traffic_since, None);
        assert!(state.may_roll_back());
        state.check_restored().expect("consistent");
    }

    /// A state in completion after promotion.
    fn completing() -> DeploymentState {
        let mut state = sample_state();
        state.stage = Stage::Completion;
        state.weight = 100.0;
        state.promoted_at = Some(state.started_at);
        state
    }

    #[test]
    fn once_the_old_version_is_retired_no_rollback_may_start() {
        let mut state = completing();
        assert!(state.may_roll_back());
        state.old_retired = true;
        state.check_restored().expect("retired at completion");
        assert!(!state.may_roll_back());
        state.stage = Stage::RollingBack;
        let e = state
            .check_restored()
            .expect_err("rolling back to a retired track");
        assert!(e.to_string().contains("state.oldRetired"), "{e}");
        state.stage = Stage::Done;
        state.outcome = Some(Outcome::RolledBack {
            reason: "judge".into(),
        });
        let e = state
            .check_restored()
            .expect_err("rolled back to a retired track");
        assert!(e.to_string().contains("state.oldRetired"), "{e}");
        state.outcome = Some(Outcome::Succeeded);
        state.check_restored().expect("finished forward");
    }

    #[test]
    fn progress_fields_that_disagree_with_the_stage_are_refused_on_restore() {
        type Edit = fn(&mut DeploymentState);
        let cases: [(&str, Edit, &str); 9] = [
            (
                "a backup in flight after preparation",
                |s| {
                    s.stage = Stage::WaitReady;
                    s.in_flight = Some(InFlight::Backup {
                        label: "before 1.0.0 -> 1.1.0".into(),
                        existing: Some(Vec::new()),
                    });
                },
                "state.inFlight ",
            ),
            (
                "a backup in flight that is already named",
                |s| {
                    s.stage = Stage::Preparation;
                    s.backup = Some("b-1".into());
                    s.in_flight = Some(InFlight::Backup {
                        label: "before 1.0.0 -> 1.1.0".into(),
                        existing: None,
                    });
                },
                "state.inFlight ",
            ),
            (
                "a restore in flight of a backup not to restore",
                |s| {
                    s.stage = Stage::Preparation;
                    s.in_flight = Some(InFlight::Restore { id: "b-1".into() });
                },
                "state.inFlight.id ",
            ),
            (
                "a step in flight past the checklist",
                |s| {
                    s.stage = Stage::Preparation;
                    s.in_flight = Some(InFlight::Step { index: 3 });
                },
                "state.inFlight.index ",
            ),
            (
                "a step in flight in the canary stage",
                |s| {
                    s.stage = Stage::WaitReady;
                    s.in_flight = Some(InFlight::Step { index: 0 });
                },
                "state.inFlight ",
            ),
            (
                "a restored backup that was not to be restored",
                |s| s.restored = true,
                "state.restored ",
            ),
            (
                "a promotion under way in monitoring",
                |s| {
                    s.stage = Stage::Monitoring;
                    s.promoted_at = Some(s.started_at);
                    s.promoting = true;
                    s.readiness_since = Some(s.started_at);
                },
                "state.promoting ",
            ),
            (
                "the old version retired before promotion",
                |s| s.old_retired = true,
                "state.oldRetired ",
            ),
            (
                "an operator's promote without a promotion under way",
                |s| {
                    s.stage = Stage::Canary;
                    s.operator_promoted = true;
                },
                "state.operatorPromoted ",
            ),
        ];
        for (what, edit, field) in cases {
            let mut state = sample_state();
            edit(&mut state);
            let e = state.check_restored().expect_err(what);
            assert!(e.to_string().contains(field), "{what}: {e}");
        }
        let mut state = sample_state();
        state.stage = Stage::Preparation;
        state.checklist = vec![UpgradeStep::pending(serin_compat::Step {
            phase: serin_compat::steps::StepPhase::Before,
            kind: serin_compat::steps::StepKind::ExpandMigration,
            service: "web".into(),
            text: "apply migration 0002".into(),
            release: None,
        })];
        state.in_flight = Some(InFlight::Step { index: 0 });
        state.check_restored().expect("a pending step in flight");
        state.checklist[0].status = StepStatus::Done;
        let e = state.check_restored().expect_err("a done step in flight");
        assert!(e.to_string().contains("state.inFlight.index"), "{e}");
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
