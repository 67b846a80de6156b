//! The stages before traffic moves: validation, preparation (backup, restore, pre-upgrade
//! steps), bringing up the new version and waiting until it is ready.

use serin_canary::controller::{Action, CanaryController};
use serin_compat::Proposal;
use serin_traffic::{Plan, PlanCursor};

use crate::config::StrategyKind;
use crate::error::{Error, Result};
use crate::event::{EventKind, verdict_name};
use crate::platform::wait_ready;
use crate::state::{Effect, Outcome, PlanRun, Stage, StepStatus, UpgradeStep};

use super::canary::{build_judges, controller_of_state, store};
use super::{Runner, split_all, split_percent};

impl Runner {
    /// Checks the new version against the compatibility rules before anything changes.
    pub(super) async fn validation(&mut self) -> Result<()> {
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
            .validate(&proposal)
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
            .map(serin_compat::Finding::one_line)
            .collect();
        if !validation.is_allowed() {
            let reason = findings.join("; ");
            return self
                .finish(Outcome::Blocked { reason }, Vec::new(), Vec::new())
                .await;
        }
        let kinds = vec![EventKind::Validated {
            verdict: verdict_name(validation.verdict).to_owned(),
            findings,
        }];
        self.state.checklist = validation
            .steps
            .iter()
            .cloned()
            .map(UpgradeStep::pending)
            .collect();
        self.enter(Stage::Preparation, Vec::new(), kinds).await
    }

    /// Pre-checks dependencies, takes the backup, restores one if this is a rollback across a
    /// destructive migration, and runs the pre-upgrade steps.
    pub(super) async fn preparation(&mut self) -> Result<()> {
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
    pub(super) async fn run_steps(
        &mut self,
        pre: bool,
        kinds: &mut Vec<EventKind>,
    ) -> Option<String> {
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

    /// Starts the new version on its track.
    pub(super) async fn bring_up(&mut self) -> Result<()> {
        let instances = self
            .state
            .config
            .bring_up_instances(self.state.from.is_some());
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

    /// Waits until the platform reports the new track ready, or fails after the readiness
    /// timeout.
    pub(super) async fn wait_for_ready(&self) -> Result<()> {
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

    /// Once the new track is ready: a first install finishes, a canary starts its analysis, a
    /// blue-green deployment starts its switch plan.
    pub(super) async fn wait_ready(&mut self) -> Result<()> {
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
}
