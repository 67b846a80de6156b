//! The executor of one deployment: a small async shell that asks the pure cores (canary
//! controller, trigger engine, traffic plan cursor) what to do, journals the answer, carries it
//! out through the traits, then announces it. It decides nothing itself.

use std::sync::Arc;
use std::time::Duration;

use serin_canary::controller::{
    Action, CanaryController, Command as CanaryCommand, Decision, Step,
};
use serin_compat::Proposal;
use serin_signals::{Arm, Measurement, Metric, MetricQuery, Observation, Timestamp, Track, Window};
use serin_traffic::{Next, Plan, PlanCursor, TrafficSplit};
use serin_triggers::{Action as TriggerAction, TriggerConfig};
use tokio::sync::{mpsc, oneshot, watch};

use crate::config::{OnDeadline, StrategyKind};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind, Phase};
use crate::journal::Record;
use crate::orchestrator::{Inner, ServiceBackends, Status};
use crate::platform::{TrackSpec, wait_ready};
use crate::report::Report;
use crate::sample::{ArmSample, Sample};
use crate::state::{
    AnyJudge, CanaryRun, DeploymentState, Effect, Outcome, PlanRun, Stage, StepStatus, UpgradeStep,
};

/// An operator's command to a running deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Skip the remaining analysis or switch steps and give the new version all traffic.
    Promote,
    /// Roll back now.
    Abort,
    /// Hold: no weight changes until resumed (triggers keep watching).
    Pause,
    /// Carry on after a pause (also ends an indefinite canary pause step).
    Resume,
}

pub(crate) type Reply = oneshot::Sender<Result<()>>;

pub(crate) struct Runner {
    pub(crate) inner: Arc<Inner>,
    pub(crate) backends: ServiceBackends,
    pub(crate) state: DeploymentState,
    pub(crate) seq: u64,
    pub(crate) commands: mpsc::UnboundedReceiver<(Operation, Reply)>,
    /// Keeps the channel open so `recv` never returns `None` when every handle is gone.
    pub(crate) _keep: mpsc::UnboundedSender<(Operation, Reply)>,
    pub(crate) status: watch::Sender<Status>,
    /// The last observation window's summary, journalled with the next record.
    pub(crate) sample: Option<Sample>,
}

fn is_journal_error(e: &Error) -> bool {
    matches!(e, Error::Backend { backend, .. } if backend == "journal")
}

fn no_data(metric: &Metric, track: &Track, window: Window) -> Observation {
    Observation::new(metric.clone(), track.clone(), window, Measurement::NoData)
}

fn relabel(mut obs: Observation, track: Track) -> Observation {
    obs.track = track;
    obs
}

impl Runner {
    fn now(&self) -> Timestamp {
        self.inner.clock.now()
    }

    fn old_track(&self) -> Option<Track> {
        self.state.from.as_ref().map(|p| p.track.clone())
    }

    fn new_track(&self) -> Track {
        self.state.to.track.clone()
    }

    /// The new version's share changed: named by version and track, since a canary may run
    /// the new version on the track called `stable`.
    fn weight_changed(&self, percent: f64) -> EventKind {
        EventKind::WeightChanged {
            version: self.state.to.version.to_string(),
            track: self.state.to.track.to_string(),
            percent,
        }
    }

    /// Journals the current state with `effects` and `kinds`, carries the effects out, then
    /// announces the events.
    pub(crate) async fn commit(
        &mut self,
        effects: Vec<Effect>,
        kinds: Vec<EventKind>,
    ) -> Result<()> {
        let now = self.now();
        let mut events = Vec::with_capacity(kinds.len());
        for kind in kinds {
            events.push(Event {
                deployment: self.state.id.clone(),
                service: self.state.service.clone(),
                seq: self.state.next_event,
                at: now,
                kind,
            });
            self.state.next_event += 1;
        }
        let record = Record {
            deployment: self.state.id.clone(),
            seq: self.seq,
            at: now,
            state: self.state.clone(),
            effects,
            events,
            sample: self.sample.take(),
        };
        self.inner
            .journal
            .append(&record)
            .await
            .map_err(|e| match e {
                Error::Backend { .. } => e,
                other => Error::backend("journal", self.inner.journal.name(), other),
            })?;
        self.seq += 1;
        self.execute(&record.effects).await?;
        self.emit(&record.events).await;
        self.publish();
        Ok(())
    }

    /// Carries out effects; each is idempotent, so a resumed run repeats its last record's.
    pub(crate) async fn execute(&self, effects: &[Effect]) -> Result<()> {
        let platform = &self.inner.platform;
        let service = &self.state.service;
        for effect in effects {
            match effect {
                Effect::BringUp {
                    track,
                    version,
                    instances,
                } => {
                    let spec =
                        TrackSpec::new(service, &version.to_string(), track.clone(), *instances)?;
                    let spec = match self.backends.command.as_ref() {
                        Some(f) => f(spec)?,
                        None => spec,
                    };
                    match platform.bring_up(&spec).await {
                        Ok(_) => {}
                        Err(Error::AlreadyExists { .. }) => {
                            let st = platform.status(service, track).await?;
                            if &st.version != version {
                                return Err(Error::conflict(
                                    "bring up",
                                    format!("{service}/{track}"),
                                    format!("the track already runs {}", st.version),
                                ));
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Effect::Scale { track, instances } => {
                    platform.scale(service, track, *instances).await?;
                }
                Effect::Apply { split } => {
                    self.backends
                        .router
                        .apply(split)
                        .await
                        .map_err(|e| Error::backend("router", self.backends.router.name(), e))?;
                }
                Effect::Retire { track, drain_ms } => {
                    match platform
                        .retire(service, track, Duration::from_millis(*drain_ms))
                        .await
                    {
                        Ok(()) | Err(Error::NotFound { .. }) => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) async fn emit(&self, events: &[Event]) {
        for e in events {
            tracing::info!(deployment = %e.deployment, seq = e.seq, "{}", e.kind);
            let _ = self.inner.events.send(e.clone());
            if let (Some(notifier), Some(category)) = (&self.inner.notifier, e.kind.notify_on()) {
                for ch in &self.state.config.notification_channels {
                    if (ch.events.is_empty() || ch.events.contains(&category))
                        && let Err(err) = notifier.notify(ch, e).await
                    {
                        tracing::warn!(deployment = %e.deployment, "notification to {} failed: {err}", ch.redacted_destination());
                    }
                }
            }
        }
    }

    fn publish(&self) {
        let _ = self.status.send(Status::of(&self.state));
    }

    /// Runs stages until the deployment is over, then returns its report.
    pub(crate) async fn drive(mut self) -> Result<Report> {
        self.publish();
        while self.state.stage != Stage::Done {
            let r = match self.state.stage {
                Stage::Validation => self.validation().await,
                Stage::Preparation => self.preparation().await,
                Stage::BringUp => self.bring_up().await,
                Stage::WaitReady => self.wait_ready().await,
                Stage::Canary => self.canary_tick().await,
                Stage::Switch => self.switch_tick().await,
                Stage::Monitoring => self.monitoring_tick().await,
                Stage::Completion => self.completion().await,
                Stage::RollingBack => self.rolling_back().await,
                Stage::Done => Ok(()),
            };
            if let Err(e) = r {
                self.on_error(e).await?;
            }
        }
        let records = self.inner.journal.records(&self.state.id).await?;
        Report::from_records(&records)
    }

    async fn on_error(&mut self, e: Error) -> Result<()> {
        if is_journal_error(&e) {
            return Err(e);
        }
        tracing::warn!(deployment = %self.state.id, "stage {:?} failed: {e}", self.state.stage);
        let changed_nothing = matches!(self.state.stage, Stage::Validation | Stage::Preparation);
        if !changed_nothing
            && self.state.stage != Stage::RollingBack
            && self.state.config.rollback_on_error
        {
            return self.start_rollback(format!("error: {e}"), Vec::new()).await;
        }
        self.finish(
            Outcome::Failed {
                reason: e.to_string(),
            },
            Vec::new(),
            Vec::new(),
        )
        .await
    }

    async fn finish(
        &mut self,
        outcome: Outcome,
        effects: Vec<Effect>,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let kind = match &outcome {
            Outcome::Succeeded => EventKind::Completed {
                version: self.state.to.version.to_string(),
            },
            Outcome::RolledBack { reason } => EventKind::RolledBack {
                reason: reason.clone(),
            },
            Outcome::Blocked { reason } => EventKind::Blocked {
                reason: reason.clone(),
            },
            Outcome::Failed { reason } => EventKind::Failed {
                reason: reason.clone(),
            },
        };
        if !effects.is_empty() {
            // The effects get a record of their own, in the current stage: a crash before they
            // are carried out resumes this stage, which carries them out again.
            self.commit(effects, std::mem::take(&mut kinds)).await?;
        }
        kinds.push(kind);
        kinds.push(EventKind::PhaseChanged {
            phase: Phase::Finished,
        });
        self.state.stage = Stage::Done;
        self.state.outcome = Some(outcome);
        self.commit(Vec::new(), kinds).await
    }

    async fn enter(
        &mut self,
        stage: Stage,
        effects: Vec<Effect>,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let before = self.state.stage.phase();
        self.state.stage = stage;
        if stage.phase() != before {
            kinds.push(EventKind::PhaseChanged {
                phase: stage.phase(),
            });
        }
        self.commit(effects, kinds).await
    }

    // ---- stages -------------------------------------------------------------------------

    async fn validation(&mut self) -> Result<()> {
        let Some(v) = &self.inner.validator else {
            let kinds = vec![EventKind::Validated {
                verdict: "not checked".into(),
                findings: vec!["no compatibility validator is configured".into()],
            }];
            return self.enter(Stage::Preparation, Vec::new(), kinds).await;
        };
        let proposal =
            Proposal::new().with(self.state.service.clone(), self.state.to.version.clone());
        let validation = v
            .validator
            .validate(&v.fleet, &proposal)
            .map_err(|e| Error::invalid("validation", &self.state.to.version, e.to_string()));
        let validation = match validation {
            Ok(v) => v,
            Err(e) => {
                return self
                    .finish(
                        Outcome::Blocked {
                            reason: e.to_string(),
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                    .await;
            }
        };
        let findings: Vec<String> = validation
            .findings
            .iter()
            .map(|f| format!("{:?} {}: {}", f.severity, f.code, f.message))
            .collect();
        if !validation.is_allowed() {
            let reason = findings.join("; ");
            return self
                .finish(Outcome::Blocked { reason }, Vec::new(), Vec::new())
                .await;
        }
        let kinds = vec![EventKind::Validated {
            verdict: format!("{:?}", validation.verdict),
            findings,
        }];
        self.state.checklist = validation
            .steps
            .iter()
            .map(|step| UpgradeStep {
                step: step.clone(),
                status: StepStatus::Pending,
                evidence: None,
            })
            .collect();
        self.enter(Stage::Preparation, Vec::new(), kinds).await
    }

    async fn preparation(&mut self) -> Result<()> {
        if let Some(from) = self.state.from.clone() {
            let st = self
                .inner
                .platform
                .status(&self.state.service, &from.track)
                .await?;
            if !st.all_ready() {
                return self
                    .finish(
                        Outcome::Failed {
                            reason: format!(
                                "pre-check: the running version {from} is not healthy ({} of {} instances ready); nothing was changed",
                                st.ready_count(),
                                st.instances.len()
                            ),
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                    .await;
            }
            let signals = self
                .backends
                .health
                .signals(&from.track)
                .await
                .unwrap_or_default();
            if let Some(bad) = signals.iter().find(|s| {
                matches!(s.probe, serin_signals::Probe::Dependency(_))
                    && s.status == serin_signals::ProbeStatus::Fail
            }) {
                return self
                    .finish(
                        Outcome::Failed {
                            reason: format!(
                                "pre-check: dependency {:?} fails its check; nothing was changed",
                                bad.probe
                            ),
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                    .await;
            }
        }
        let mut kinds = Vec::new();
        if let Some(b) = &self.inner.backup {
            let label = match &self.state.from {
                Some(from) => format!("before {} -> {}", from.version, self.state.to.version),
                None => format!("before installing {}", self.state.to.version),
            };
            let id = b.backup(&self.state.service, &label).await?;
            kinds.push(EventKind::BackupTaken { id: id.clone() });
            self.state.backup = Some(id);
        }
        if let Some(id) = self.state.restore.clone() {
            // Only a rollback across destructive migrations asks for this, and `rollback_to`
            // refuses one without a backup provider; the check stays for journals from elsewhere.
            let restored = match &self.inner.backup {
                Some(b) => b.restore(&id).await.map_err(|e| e.to_string()),
                None => Err("no backup provider is configured".to_owned()),
            };
            if let Err(e) = restored {
                let reason = format!(
                    "restoring backup {id} before rolling back failed: {e}; traffic was not \
                     switched"
                );
                return self
                    .finish(Outcome::Failed { reason }, Vec::new(), kinds)
                    .await;
            }
            kinds.push(EventKind::BackupRestored { id });
        }
        if let Some(reason) = self.run_steps(true, &mut kinds).await {
            return self
                .finish(Outcome::Failed { reason }, Vec::new(), kinds)
                .await;
        }
        self.enter(Stage::BringUp, Vec::new(), kinds).await
    }

    /// Carries out (or records as due) the checklist steps of one side of the deployment:
    /// `pre` in preparation, the others in completion. Backups are done by the backup taken in
    /// preparation; the deployment's own step is done by this deployment; the rest go to the
    /// step runner, if any. Answers the reason to fail when a pre-upgrade step failed.
    async fn run_steps(&mut self, pre: bool, kinds: &mut Vec<EventKind>) -> Option<String> {
        let service = self.state.service.clone();
        let id = self.state.id.clone();
        let mut checklist = std::mem::take(&mut self.state.checklist);
        let mut failure = None;
        for item in checklist
            .iter_mut()
            .filter(|i| i.status == StepStatus::Pending && i.is_pre(&service) == pre)
        {
            if failure.is_some() {
                break;
            }
            let done = if item.is_this_deploy(&service) {
                Ok(Some(format!("deployed by {id}")))
            } else if item.step.kind == serin_compat::steps::StepKind::Backup
                && item.step.service == service
                && let Some(b) = &self.state.backup
            {
                Ok(Some(format!("backup {b}")))
            } else {
                match &self.inner.steps {
                    Some(runner) => runner.run(&id, &item.step).await,
                    None => Ok(None),
                }
            };
            match done {
                Ok(Some(evidence)) => {
                    item.status = StepStatus::Done;
                    item.evidence = Some(evidence);
                }
                Ok(None) => item.status = StepStatus::Due,
                Err(e) => {
                    item.status = StepStatus::Failed;
                    item.evidence = Some(e.to_string());
                    if pre {
                        failure = Some(format!(
                            "pre-upgrade step failed ({}): {e}; nothing was deployed",
                            item.step
                        ));
                    }
                }
            }
            kinds.push(EventKind::UpgradeStep {
                step: item.step.clone(),
                status: item.status,
                evidence: item.evidence.clone(),
            });
        }
        self.state.checklist = checklist;
        failure
    }

    async fn bring_up(&mut self) -> Result<()> {
        let cfg = &self.state.config;
        let instances = match (self.state.strategy, &self.state.from) {
            (StrategyKind::Canary, Some(_)) => cfg.canary_config.replicas,
            _ => cfg.blue_green_config.replicas_per_env,
        };
        let track = self.new_track();
        let effects = vec![Effect::BringUp {
            track: track.clone(),
            version: self.state.to.version.clone(),
            instances,
        }];
        let kinds = vec![EventKind::TrackStarted {
            version: self.state.to.version.to_string(),
            track: track.to_string(),
            instances,
        }];
        self.enter(Stage::WaitReady, effects, kinds).await
    }

    async fn wait_for_ready(&self) -> Result<()> {
        let cfg = &self.state.config.blue_green_config;
        wait_ready(
            self.inner.platform.as_ref(),
            &self.state.service,
            &self.state.to.track,
            cfg.health_check_interval,
            cfg.readiness_timeout,
        )
        .await
        .map(|_| ())
    }

    async fn wait_ready(&mut self) -> Result<()> {
        self.wait_for_ready().await?;
        let new = self.new_track();
        let now = self.now();
        self.state.observed_until = now;
        let mut kinds = vec![EventKind::TrackReady {
            version: self.state.to.version.to_string(),
            track: new.to_string(),
        }];
        let Some(old) = self.old_track() else {
            // A first install: nothing to compare with, nothing to switch from.
            self.state.weight = 100.0;
            self.state.promoted_at = Some(now);
            kinds.push(self.weight_changed(100.0));
            let split = split_all(&new, None)?;
            return self
                .finish(Outcome::Succeeded, vec![Effect::Apply { split }], kinds)
                .await;
        };
        match self.state.strategy {
            StrategyKind::Canary | StrategyKind::BlueGreenWithCanary => {
                let cfg = &self.state.config.canary_config;
                let policy = cfg.policy()?;
                let judges = build_judges(&self.state.config)?;
                let mut controller = CanaryController::new(policy, judges)
                    .map_err(|e| Error::invalid("canaryConfig", "…", e.to_string()))?;
                let decision = controller.tick(now);
                let Action::SetWeight(weight) = decision.action else {
                    // The first step is not a weight (a scale step, say): the canary stage
                    // starts at 0%, and the decision is carried out like any later one.
                    self.state.canary = Some(store(controller, String::new()));
                    self.state.weight = 0.0;
                    kinds.push(self.weight_changed(0.0));
                    let split = split_percent(&old, &new, 0)?;
                    self.enter(Stage::Canary, vec![Effect::Apply { split }], kinds)
                        .await?;
                    return self
                        .carry_out(controller_of_state(&self.state)?, decision, "", Vec::new())
                        .await;
                };
                self.state.canary = Some(store(controller, decision.reason.clone()));
                self.state.weight = f64::from(weight);
                kinds.push(EventKind::AnalysisResult { decision });
                kinds.push(self.weight_changed(f64::from(weight)));
                let split = split_percent(&old, &new, weight)?;
                self.enter(Stage::Canary, vec![Effect::Apply { split }], kinds)
                    .await
            }
            StrategyKind::BlueGreen => {
                let strategy = self.state.config.blue_green_config.traffic()?;
                let from = split_all(&old, Some(&new))?;
                let plan = Plan::shift(&from, new.as_str(), &strategy).map_err(|e| {
                    Error::invalid("blueGreenConfig.trafficStrategy", "…", e.to_string())
                })?;
                self.state.plan = Some(PlanRun {
                    plan,
                    cursor: PlanCursor::new(),
                });
                self.enter(Stage::Switch, vec![Effect::Apply { split: from }], kinds)
                    .await
            }
        }
    }

    /// Waits until `target`, serving operator commands meanwhile. `false` if a command moved
    /// the deployment to another stage.
    async fn wait_until(&mut self, target: Timestamp) -> Result<bool> {
        let stage = self.state.stage;
        loop {
            let now = self.now();
            if now >= target {
                return Ok(true);
            }
            let d = target.saturating_duration_since(now);
            tokio::select! {
                cmd = self.commands.recv() => {
                    if let Some((op, reply)) = cmd {
                        let r = self.handle(op).await;
                        let journal_failed = r.as_ref().err().is_some_and(is_journal_error);
                        let shared = r.as_ref().map(|_| ()).map_err(Clone::clone);
                        let _ = reply.send(shared);
                        if journal_failed {
                            r?;
                        }
                        if self.state.stage != stage {
                            return Ok(false);
                        }
                    }
                }
                () = tokio::time::sleep(d) => return Ok(true),
            }
        }
    }

    async fn handle(&mut self, op: Operation) -> Result<()> {
        let id = self.state.id.clone();
        match op {
            Operation::Pause => {
                if self.state.paused {
                    return Ok(());
                }
                self.state.paused = true;
                self.commit(Vec::new(), vec![EventKind::Paused]).await
            }
            Operation::Resume => {
                let now = self.now();
                self.state.paused = false;
                // An indefinite pause step of the policy waits for this resume too; a timed
                // one keeps its own clock.
                if self.state.stage == Stage::Canary
                    && let Some(run) = self.state.canary.clone()
                    && matches!(
                        run.policy.steps.get(run.controller.step()),
                        Some(Step::Pause(p)) if p.duration.is_none()
                    )
                {
                    let mut c = controller_of(run.clone())?;
                    let decision = c
                        .command(CanaryCommand::Resume, now)
                        .map_err(|e| Error::conflict("resume", &id, e.to_string()))?;
                    return self
                        .carry_out(c, decision, &run.last_reason, vec![EventKind::Resumed])
                        .await;
                }
                self.commit(Vec::new(), vec![EventKind::Resumed]).await
            }
            Operation::Abort => match self.state.stage {
                Stage::Done | Stage::RollingBack => Err(Error::conflict(
                    "abort",
                    &id,
                    "the deployment is already over or rolling back",
                )),
                Stage::Validation | Stage::Preparation => {
                    self.finish(
                        Outcome::Failed {
                            reason: "aborted by an operator before any change".into(),
                        },
                        Vec::new(),
                        Vec::new(),
                    )
                    .await
                }
                _ => {
                    self.start_rollback("aborted by an operator".into(), Vec::new())
                        .await
                }
            },
            Operation::Promote => match self.state.stage {
                Stage::Canary => {
                    let now = self.now();
                    let Some(run) = self.state.canary.clone() else {
                        return Err(Error::conflict("promote", &id, "no canary analysis runs"));
                    };
                    let mut c = controller_of(run.clone())?;
                    let decision = c
                        .command(CanaryCommand::Promote, now)
                        .map_err(|e| Error::conflict("promote", &id, e.to_string()))?;
                    self.state.canary = Some(store(c, run.last_reason));
                    self.promote(vec![EventKind::AnalysisResult { decision }])
                        .await
                }
                Stage::Switch => self.promote(Vec::new()).await,
                Stage::Monitoring => self.enter(Stage::Completion, Vec::new(), Vec::new()).await,
                _ => Err(Error::conflict(
                    "promote",
                    &id,
                    format!("nothing to promote in stage {:?}", self.state.stage),
                )),
            },
        }
    }

    /// Gives the new version all traffic (scaling a canary track to full size first).
    async fn promote(&mut self, mut kinds: Vec<EventKind>) -> Result<()> {
        let new = self.new_track();
        let Some(old) = self.old_track() else {
            return Err(Error::conflict(
                "promote",
                &self.state.id,
                "nothing runs before",
            ));
        };
        if self.state.strategy == StrategyKind::Canary {
            let full = self.state.config.blue_green_config.replicas_per_env;
            if full > self.state.config.canary_config.replicas {
                self.commit(
                    vec![Effect::Scale {
                        track: new.clone(),
                        instances: full,
                    }],
                    std::mem::take(&mut kinds),
                )
                .await?;
                self.wait_for_ready().await?;
            }
        }
        let now = self.now();
        if self.state.weight < 100.0 {
            kinds.push(self.weight_changed(100.0));
        }
        self.state.weight = 100.0;
        self.state.promoted_at = Some(now);
        self.state.observed_until = now;
        let split = split_all(&new, Some(&old))?;
        self.enter(Stage::Monitoring, vec![Effect::Apply { split }], kinds)
            .await
    }

    async fn start_rollback(&mut self, reason: String, mut kinds: Vec<EventKind>) -> Result<()> {
        self.state.rollback_reason = Some(reason.clone());
        self.state.weight = 0.0;
        kinds.push(EventKind::RollbackStarted { reason });
        let effects = match self.old_track() {
            Some(old) => vec![Effect::Apply {
                split: split_all(&old, Some(&self.new_track()))?,
            }],
            None => Vec::new(),
        };
        self.enter(Stage::RollingBack, effects, kinds).await
    }

    async fn rolling_back(&mut self) -> Result<()> {
        let reason = self
            .state
            .rollback_reason
            .clone()
            .unwrap_or_else(|| "rolled back".into());
        let mut effects = Vec::new();
        if let Some(old) = self.old_track() {
            effects.push(Effect::Apply {
                split: split_all(&old, None)?,
            });
        }
        effects.push(Effect::retire(self.new_track(), self.drain()));
        self.finish(Outcome::RolledBack { reason }, effects, Vec::new())
            .await
    }

    fn drain(&self) -> Duration {
        match self.state.strategy {
            StrategyKind::Canary => self.state.config.canary_config.drain,
            _ => self.state.config.blue_green_config.drain,
        }
    }

    fn past_deadline(&self, now: Timestamp) -> bool {
        now >= self.state.deadline
    }

    async fn canary_tick(&mut self) -> Result<()> {
        let window = self.state.config.canary_config.metrics_window;
        let target = self.state.observed_until.saturating_add(window);
        if !self.wait_until(target).await? {
            return Ok(());
        }
        let now = self.now();
        if self.past_deadline(now) {
            return self
                .start_rollback(self.deadline_reason(), Vec::new())
                .await;
        }
        let observations = self.observe(now).await?;
        let (mut kinds, rollback, hold) = self.feed_triggers(&observations, now).await;
        if let Some(reason) = rollback {
            return self.start_rollback(reason, kinds).await;
        }
        if self.state.paused || hold {
            return self.commit(Vec::new(), kinds).await;
        }
        let Some(run) = self.state.canary.clone() else {
            return Err(Error::conflict(
                "analyse",
                &self.state.id,
                "no canary analysis state",
            ));
        };
        let mut controller = controller_of(run.clone())?;
        let mut decision: Option<Decision> = None;
        for (metric, b, c) in &observations {
            if controller
                .judges()
                .iter()
                .any(|j| serin_canary::judge::Judge::metric(j) == metric)
            {
                match controller.observe(b, c, now) {
                    Ok(d) => decision = Some(d),
                    Err(e) => kinds.push(EventKind::Anomaly {
                        source: "canary".into(),
                        severity: "info".into(),
                        summary: format!("observation of {metric} not usable: {e}"),
                    }),
                }
            }
        }
        let decision = decision.unwrap_or_else(|| controller.tick(now));
        self.carry_out(controller, decision, &run.last_reason, kinds)
            .await
    }

    /// Journals and carries out a canary controller's decision.
    async fn carry_out(
        &mut self,
        controller: CanaryController<AnyJudge>,
        decision: Decision,
        previous_reason: &str,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let changed = decision.reason != previous_reason || decision.action != Action::Hold;
        self.state.canary = Some(store(controller, decision.reason.clone()));
        let new = self.new_track();
        let old = self.old_track().unwrap_or(Track::Stable);
        match decision.action {
            Action::Hold => {
                if changed {
                    kinds.push(EventKind::AnalysisResult { decision });
                }
                self.commit(Vec::new(), kinds).await
            }
            Action::SetWeight(w) => {
                self.state.weight = f64::from(w);
                kinds.push(EventKind::AnalysisResult { decision });
                kinds.push(self.weight_changed(f64::from(w)));
                let split = split_percent(&old, &new, w)?;
                let mut effects = Vec::new();
                if self.state.canary_scale_follows_weight {
                    // Scale up before the weight rises, so the new share lands on enough
                    // instances (ready ones only: the platform gates readiness).
                    effects.push(Effect::Scale {
                        track: new,
                        instances: self.share_of_full(w),
                    });
                }
                effects.push(Effect::Apply { split });
                self.commit(effects, kinds).await
            }
            Action::SetCanaryScale(scale) => {
                kinds.push(EventKind::AnalysisResult { decision });
                // Argo Rollouts' semantics: `replicas` and `weight` fix the canary's size until
                // the next scale step; `matchTrafficWeight` makes it follow the traffic weight.
                // `weight` is a percentage of the stable size (`replicasPerEnv`).
                let weight = self.state.weight.round().clamp(0.0, 100.0) as u8;
                let instances = match (scale.replicas, scale.weight) {
                    (Some(n), _) => Some(n.max(1)),
                    (None, Some(p)) => Some(self.share_of_full(p)),
                    (None, None) if scale.match_traffic_weight => Some(self.share_of_full(weight)),
                    (None, None) => None,
                };
                self.state.canary_scale_follows_weight = scale.match_traffic_weight
                    && scale.replicas.is_none()
                    && scale.weight.is_none();
                let effects = instances
                    .map(|instances| Effect::Scale {
                        track: new,
                        instances,
                    })
                    .into_iter()
                    .collect();
                self.commit(effects, kinds).await
            }
            Action::Promote => {
                kinds.push(EventKind::AnalysisResult { decision });
                self.promote(kinds).await
            }
            Action::Rollback => {
                let mut reason = decision.reason.clone();
                if let Some(e) = decision.evidence.first() {
                    reason = format!("{reason}: {}", e.summary);
                }
                kinds.push(EventKind::AnalysisResult { decision });
                self.start_rollback(reason, kinds).await
            }
        }
    }

    /// `percent` of the stable size (`blueGreenConfig.replicasPerEnv`), rounded up, at least 1.
    fn share_of_full(&self, percent: u8) -> u32 {
        let full = self.state.config.blue_green_config.replicas_per_env;
        (full
            .saturating_mul(u32::from(percent.min(100)))
            .div_ceil(100))
        .max(1)
    }

    async fn switch_tick(&mut self) -> Result<()> {
        let Some(mut run) = self.state.plan.clone() else {
            return Err(Error::conflict("switch", &self.state.id, "no traffic plan"));
        };
        let now = self.now();
        if self.past_deadline(now) {
            return self
                .start_rollback(self.deadline_reason(), Vec::new())
                .await;
        }
        let next = if self.state.paused {
            Next::AwaitApproval { step: 0 }
        } else {
            run.cursor.next(&run.plan, now.as_millis())
        };
        match next {
            Next::Apply { step } => {
                let Some(s) = run.plan.step(step).cloned() else {
                    return Err(Error::conflict(
                        "switch",
                        &self.state.id,
                        "plan step missing",
                    ));
                };
                run.cursor
                    .applied(&run.plan, step, now.as_millis())
                    .map_err(|e| Error::conflict("switch", &self.state.id, e.to_string()))?;
                let new = self.new_track();
                let percent = s
                    .split()
                    .weight_of(new.as_str())
                    .map_or(0.0, |w| w.as_percent());
                self.state.weight = percent;
                self.state.plan = Some(run);
                let kinds = vec![self.weight_changed(percent)];
                self.commit(
                    vec![Effect::Apply {
                        split: s.split().clone(),
                    }],
                    kinds,
                )
                .await
            }
            Next::Done => self.promote(Vec::new()).await,
            Next::Wait { until_millis } => {
                let check = self.state.config.monitoring.check_interval;
                let target = Timestamp::from_millis(until_millis)
                    .min(self.state.observed_until.saturating_add(check));
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
            Next::AwaitApproval { .. } => {
                let check = self.state.config.monitoring.check_interval;
                let target = self.state.observed_until.saturating_add(check);
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
        }
    }

    /// One check of the rollback triggers (switch and monitoring stages), if one is due.
    async fn watch_tick(&mut self) -> Result<()> {
        let now = self.now();
        let check = self.state.config.monitoring.check_interval;
        if now < self.state.observed_until.saturating_add(check) {
            return Ok(());
        }
        let observations = self.observe(now).await?;
        let (kinds, rollback, _hold) = self.feed_triggers(&observations, now).await;
        if let Some(reason) = rollback {
            return self.start_rollback(reason, kinds).await;
        }
        self.commit(Vec::new(), kinds).await
    }

    fn deadline_reason(&self) -> String {
        format!(
            "the deployment did not finish within maxDeploymentDuration {:?}",
            self.state.config.max_deployment_duration
        )
    }

    /// `maxDeploymentDuration` ran out after promotion: finish now or roll back, per
    /// `monitoring.onDeadline`.
    async fn deadline_after_promotion(&mut self) -> Result<()> {
        let phase = self.state.stage.phase();
        match self.state.config.monitoring.on_deadline {
            OnDeadline::Rollback => {
                let kinds = vec![EventKind::DeadlineReached {
                    phase,
                    action: "rolling back (onDeadline: rollback)".into(),
                }];
                let reason = self.deadline_reason();
                self.start_rollback(reason, kinds).await
            }
            OnDeadline::Complete => {
                let kinds = vec![EventKind::DeadlineReached {
                    phase,
                    action: "watch ended; retiring the old version now (onDeadline: complete)"
                        .into(),
                }];
                self.state.deadline_action = true;
                if self.state.stage == Stage::Completion {
                    self.complete(kinds).await
                } else {
                    self.enter(Stage::Completion, Vec::new(), kinds).await
                }
            }
        }
    }

    async fn monitoring_tick(&mut self) -> Result<()> {
        let now = self.now();
        if self.past_deadline(now) {
            return self.deadline_after_promotion().await;
        }
        let deadline = self.state.deadline;
        let cfg = &self.state.config.monitoring;
        let until = self
            .state
            .promoted_at
            .unwrap_or(self.state.observed_until)
            .saturating_add(cfg.monitoring_duration);
        let next = self.state.observed_until.saturating_add(cfg.check_interval);
        if next > until {
            let target = until.min(deadline);
            if !self.wait_until(target).await? || target < until {
                // Moved by a command, or the deadline came first (the next tick handles it).
                return Ok(());
            }
            return self.enter(Stage::Completion, Vec::new(), Vec::new()).await;
        }
        let target = next.min(deadline);
        if !self.wait_until(target).await? || target < next {
            return Ok(());
        }
        self.watch_tick().await
    }

    async fn completion(&mut self) -> Result<()> {
        let warm = self.state.config.blue_green_config.keep_old_warm_for;
        let at = self
            .state
            .promoted_at
            .unwrap_or(self.state.observed_until)
            .saturating_add(warm);
        let deadline_first = at > self.state.deadline && !self.state.deadline_action;
        let target = if self.state.deadline_action {
            // Finishing at the deadline: the rest of the warm delay is cut short.
            self.now()
        } else if deadline_first {
            self.state.deadline
        } else {
            at
        };
        if !self.wait_until(target).await? {
            return Ok(());
        }
        if deadline_first {
            return self.deadline_after_promotion().await;
        }
        if self.state.paused && !self.state.deadline_action {
            // A pause holds the old version warm, but never past the deadline.
            let now = self.now();
            if self.past_deadline(now) {
                return self.deadline_after_promotion().await;
            }
            let check = self.state.config.monitoring.check_interval;
            self.wait_until(now.saturating_add(check).min(self.state.deadline))
                .await?;
            return Ok(());
        }
        self.complete(Vec::new()).await
    }

    /// Gives the new version all traffic for good, retires the old one, then carries out the
    /// post-upgrade steps (the old version is gone, so contract migrations are safe).
    async fn complete(&mut self, mut kinds: Vec<EventKind>) -> Result<()> {
        let new = self.new_track();
        let mut effects = vec![Effect::Apply {
            split: split_all(&new, None)?,
        }];
        if let Some(old) = self.old_track() {
            effects.push(Effect::retire(old, self.drain()));
        }
        // The old version is retired by its own record first; the steps after it are
        // journalled with the end.
        self.commit(effects, std::mem::take(&mut kinds)).await?;
        self.run_steps(false, &mut kinds).await;
        self.finish(Outcome::Succeeded, Vec::new(), kinds).await
    }

    // ---- observation ----------------------------------------------------------------------

    /// The metrics the judges and triggers read.
    fn metrics(&self) -> Vec<Metric> {
        // Error rate and latency are always read: the report charts them for both arms.
        let mut out = vec![Metric::ErrorRate, Metric::Latency];
        let mut add = |m: Metric| {
            if !out.contains(&m) {
                out.push(m);
            }
        };
        if let Some(run) = &self.state.canary {
            for j in &run.judges {
                add(serin_canary::judge::Judge::metric(j).clone());
            }
        }
        for t in &self.state.triggers.config().triggers {
            match t {
                TriggerConfig::MetricThreshold(c) => add(c.metric.clone()),
                TriggerConfig::ResourceUsage(c) => add(c.resource.metric()),
                TriggerConfig::ErrorSpike(_) => add(Metric::ErrorRate),
                _ => {}
            }
        }
        out
    }

    /// Each metric of both arms over `[observed_until, now)`. A source error is no data for
    /// that arm: never a pass.
    async fn observe(&mut self, now: Timestamp) -> Result<Vec<(Metric, Observation, Observation)>> {
        let start = self.state.observed_until.min(now);
        let window = match Window::new(start, now) {
            Ok(w) => w,
            Err(_) => Window::ending_at(now, Duration::from_millis(1)),
        };
        self.state.observed_until = now;
        let new = self.new_track();
        let old = self.old_track().unwrap_or(Track::Stable);
        let mut out = Vec::new();
        for metric in self.metrics() {
            let b = match self
                .backends
                .metrics
                .query(&MetricQuery::new(metric.clone(), old.clone(), window))
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(deployment = %self.state.id, "metrics of {old} unavailable: {e}");
                    no_data(&metric, &old, window)
                }
            };
            let c = match self
                .backends
                .metrics
                .query(&MetricQuery::new(metric.clone(), new.clone(), window))
                .await
            {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(deployment = %self.state.id, "metrics of {new} unavailable: {e}");
                    no_data(&metric, &new, window)
                }
            };
            out.push((metric, b, c));
        }
        self.sample = Some(self.summarise(window, &out));
        Ok(out)
    }

    /// The compact summary of one observation, journalled with the next record for the report.
    fn summarise(
        &self,
        window: Window,
        observations: &[(Metric, Observation, Observation)],
    ) -> Sample {
        let mut canary = ArmSample::new(
            Arm::Canary,
            self.state.to.version.to_string(),
            self.state.to.track.to_string(),
        );
        let mut baseline = self
            .state
            .from
            .as_ref()
            .map(|p| ArmSample::new(Arm::Baseline, p.version.to_string(), p.track.to_string()));
        for (_, b, c) in observations {
            if let Some(base) = baseline.as_mut() {
                base.absorb(b);
            }
            canary.absorb(c);
        }
        Sample {
            window,
            weight_percent: self.state.weight,
            arms: baseline.into_iter().chain([canary]).collect(),
        }
    }

    /// Feeds the trigger engine (the old track as `stable`, the new one as `canary`) and
    /// answers the events to record, the rollback reason if one fired, and whether one holds.
    async fn feed_triggers(
        &mut self,
        observations: &[(Metric, Observation, Observation)],
        now: Timestamp,
    ) -> (Vec<EventKind>, Option<String>, bool) {
        let engine = &mut self.state.triggers;
        for (_, b, c) in observations {
            let _ = engine.observe(&relabel(b.clone(), Track::Stable));
            let _ = engine.observe(&relabel(c.clone(), Track::Canary));
        }
        let new = self.state.to.track.clone();
        if let Ok(signals) = self.backends.health.signals(&new).await {
            for mut s in signals {
                s.track = Track::Canary;
                engine.observe_health(&s);
            }
        }
        if let Some(old) = self.state.from.as_ref().map(|p| p.track.clone())
            && let Ok(signals) = self.backends.health.signals(&old).await
        {
            for mut s in signals {
                s.track = Track::Stable;
                engine.observe_health(&s);
            }
        }
        engine.tick(now);
        let mut kinds = Vec::new();
        let mut rollback = None;
        for e in engine.drain_events() {
            match e.action {
                Some(TriggerAction::Rollback) => {
                    if rollback.is_none() {
                        rollback = Some(format!(
                            "trigger `{}` fired: {}",
                            e.trigger, e.evidence.reason
                        ));
                    }
                    kinds.push(EventKind::TriggerFired { event: e });
                }
                Some(a) => kinds.push(EventKind::Anomaly {
                    source: format!("trigger `{}`", e.trigger),
                    severity: a.to_string(),
                    summary: e.evidence.to_string(),
                }),
                None => {}
            }
        }
        let hold = engine.current_action() == Some(TriggerAction::Hold);
        (kinds, rollback, hold)
    }
}

fn controller_of(run: CanaryRun) -> Result<CanaryController<AnyJudge>> {
    CanaryController::from_parts(run.policy, run.judges, run.controller)
        .map_err(|e| Error::invalid("journal.state.canary", "…", e.to_string()))
}

/// The canary controller journalled in `state`.
fn controller_of_state(state: &DeploymentState) -> Result<CanaryController<AnyJudge>> {
    let run = state
        .canary
        .clone()
        .ok_or_else(|| Error::conflict("analyse", &state.id, "no canary analysis state"))?;
    controller_of(run)
}

fn store(c: CanaryController<AnyJudge>, last_reason: String) -> CanaryRun {
    let (policy, judges, controller) = c.into_parts();
    CanaryRun {
        policy,
        judges,
        controller,
        last_reason,
    }
}

/// The shortest span of a robust judge's batch: long enough for an error rate's or a latency's
/// own wander to average out within it (see `BatchCountConfig::min_samples` and
/// `LatencyTestConfig::min_samples`, whose defaults are this span of per-second samples).
const ROBUST_BATCH_SPAN: Duration = Duration::from_secs(30);

pub(crate) fn build_judges(config: &crate::config::DeploymentConfig) -> Result<Vec<AnyJudge>> {
    use serin_canary::sequential::{
        BatchCountConfig, CountMode, LatencyTestConfig, LatencyVariance, SequentialCountJudge,
        SequentialLatencyJudge,
    };
    use serin_canary::severity::SeverityBands;
    let c = &config.canary_config;
    let n = if c.judge_latency { 2.0 } else { 1.0 };
    let alpha = c.alpha / n;
    // Observations span `metricsWindow` (validated to at least 100 ms), so a robust batch of
    // half a minute is this many of them.
    let window = c.metrics_window.as_secs_f64();
    let min_samples = (ROBUST_BATCH_SPAN.as_secs_f64() / window).ceil().max(1.0) as u64;
    let counts = if c.robust_judges {
        let mode = CountMode::Batched(BatchCountConfig {
            min_samples,
            ..BatchCountConfig::new(alpha).with_margin(c.error_rate_margin)
        });
        SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default())
    } else {
        SequentialCountJudge::new(Metric::ErrorRate, alpha, c.error_rate_margin)
    };
    let mut judges =
        vec![AnyJudge::Counts(Box::new(counts.map_err(|e| {
            Error::invalid("canaryConfig.alpha", c.alpha, e.to_string())
        })?))];
    if c.judge_latency {
        let latency = if c.robust_judges {
            let test = LatencyTestConfig {
                variance: LatencyVariance::BetweenBatches,
                min_samples,
                ..LatencyTestConfig::new(alpha).with_margin(c.latency_margin)
            };
            SequentialLatencyJudge::with_config(Metric::Latency, test, SeverityBands::latency())
        } else {
            SequentialLatencyJudge::new(Metric::Latency, alpha, c.latency_margin)
        };
        judges.push(AnyJudge::Latency(Box::new(latency.map_err(|e| {
            Error::invalid(
                "canaryConfig.latencyMargin",
                c.latency_margin,
                e.to_string(),
            )
        })?)));
    }
    Ok(judges)
}

/// All traffic to `to`, with `other` kept in the split at 0%.
pub(crate) fn split_all(to: &Track, other: Option<&Track>) -> Result<TrafficSplit> {
    let others: Vec<&str> = other.map(|t| t.as_str()).into_iter().collect();
    TrafficSplit::all_to(to.as_str(), &others)
        .map_err(|e| Error::invalid("split", to, e.to_string()))
}

/// `percent` to `new`, the rest to `old`.
pub(crate) fn split_percent(old: &Track, new: &Track, percent: u8) -> Result<TrafficSplit> {
    let p = percent.min(100);
    TrafficSplit::from_percents([(old.as_str(), 100 - p), (new.as_str(), p)])
        .map_err(|e| Error::invalid("split", p, e.to_string()))
}

#[cfg(test)]
mod tests {
    use serin_canary::sequential::{CountMode, LatencyTestConfig, LatencyVariance};

    use super::*;
    use crate::config::DeploymentConfig;

    fn config(robust: bool, window_secs: u64) -> DeploymentConfig {
        let mut c = DeploymentConfig::new(
            StrategyKind::Canary,
            semver::Version::new(1, 1, 0),
            &["web"],
        )
        .expect("defaults are valid");
        c.canary_config.judge_latency = true;
        c.canary_config.robust_judges = robust;
        c.canary_config.metrics_window = Duration::from_secs(window_secs);
        c
    }

    fn modes(c: &DeploymentConfig) -> (CountMode, LatencyTestConfig) {
        let judges = build_judges(c).expect("valid config");
        let (AnyJudge::Counts(counts), AnyJudge::Latency(latency)) = (&judges[0], &judges[1])
        else {
            panic!("a count judge then a latency judge");
        };
        (counts.mode(), *latency.config())
    }

    #[test]
    fn the_default_judges_are_the_per_request_tests() {
        let (counts, latency) = modes(&config(false, 30));
        assert!(matches!(counts, CountMode::PerRequest(_)), "{counts:?}");
        assert_eq!(latency.variance, LatencyVariance::WithinBatch);
    }

    /// Robust judges' batches span half a minute whatever the observation window.
    #[test]
    fn robust_judges_batch_half_a_minute_of_observations() {
        for (window, samples) in [(1, 30), (10, 3), (30, 1), (60, 1)] {
            let (counts, latency) = modes(&config(true, window));
            let CountMode::Batched(b) = counts else {
                panic!("window {window}s: {counts:?}");
            };
            assert_eq!(b.min_samples, samples, "window {window}s");
            assert_eq!(b.alpha, 0.025, "alpha is split between the two judges");
            assert_eq!(latency.variance, LatencyVariance::BetweenBatches);
            assert_eq!(latency.min_samples, samples, "window {window}s");
            assert_eq!(latency.alpha, 0.025);
        }
    }
}
