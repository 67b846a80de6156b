//! The stages before traffic moves: validation, preparation (backup, pre-upgrade steps,
//! restore), bringing up the new version and waiting until it is ready.

use std::time::Duration;

use serin_canary::controller::{Action, CanaryController};
use serin_compat::{Fleet, Proposal};
use serin_signals::{ProbeStatus, Track};
use serin_traffic::PlanCursor;

use crate::config::StrategyKind;
use crate::config::human;
use crate::error::{Error, Result};
use crate::event::{EventKind, verdict_name};
use crate::hooks::{BackupProvider, StepRunner};
use crate::platform::{TrackKey, TrackStatus, died_while_starting, not_ready};
use crate::state::{Effect, InFlight, Outcome, Placement, PlanRun, Stage, StepStatus, UpgradeStep};

use super::canary::{build_judges, controller_of_state, store};
use super::{Operation, Reply, Runner, split_all, split_percent};

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
            .validate_on(&self.running_fleet(v.fleet()), &proposal)
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

    /// `fleet` with the service at the version the platform runs it (none on a first
    /// install), where the fleet says otherwise: a fleet given before the last restart, or
    /// before a change made by hand, would have the validator route the upgrade from a version
    /// that no longer runs, and run a migration a second time or skip one.
    fn running_fleet(&self, mut fleet: Fleet) -> Fleet {
        crate::orchestrator::set_running(&mut fleet, &self.state.service, self.state.from.as_ref());
        fleet
    }

    /// Pre-checks the running version and its dependencies (a health source that cannot be
    /// read fails the pre-check: missing evidence is no pass), unless this moves back to an
    /// older version (see [`to_pre_check`](Self::to_pre_check)), takes the backup, runs the
    /// pre-upgrade steps, then restores a backup if this is a rollback across a destructive
    /// migration. The restore comes last, just before the new version is brought up: a
    /// pre-upgrade step that fails then stops the deployment with the database untouched and
    /// nothing deployed, rather than leave the running version serving over a database
    /// restored for the version it was to make way for.
    ///
    /// The backup, the restore and each step a step runner carries out are not idempotent, so
    /// none is left to "carry out the last record again": each is journalled as started
    /// ([`InFlight`]) before it is carried out, and its result in a record of its own right
    /// after. A deployment resumed in preparation does again only what no record shows
    /// started, skips what a record shows ended, and never repeats blindly what a record shows
    /// started and none ended: see [`take_backup`](Self::take_backup),
    /// [`restore_backup`](Self::restore_backup) and [`run_steps`](Self::run_steps). The
    /// pre-checks, which change nothing, run only before the first of these.
    pub(super) async fn preparation(&mut self) -> Result<()> {
        if !self.preparation_begun()
            && let Some(from) = self.to_pre_check()
            && let Some(stop) = self.pre_check(&from).await?
        {
            return self.stop_preparation(stop, Vec::new()).await;
        }
        let mut kinds = Vec::new();
        if let Some(stop) = self.take_backup(&mut kinds).await? {
            return self.stop_preparation(stop, kinds).await;
        }
        if let Some(stop) = self.run_steps(true, &mut kinds).await? {
            return self.stop_preparation(stop, kinds).await;
        }
        if let Some(stop) = self.restore_backup(&mut kinds).await? {
            return self.stop_preparation(stop, kinds).await;
        }
        if let Some(stop) = self.bring_up_late() {
            return self.stop_preparation(stop, kinds).await;
        }
        self.enter(Stage::BringUp, Vec::new(), kinds).await
    }

    /// Why the new track is not brought up, if it is not: `maxDeploymentDuration` ran out
    /// before its turn (a deployment resumed past it, or preparation's last call answered at
    /// it). A track started then would only be retired by the rollback the deadline starts at
    /// once, so the deployment fails with nothing deployed, as when the deadline runs out
    /// during preparation.
    fn bring_up_late(&self) -> Option<Stop> {
        self.past_deadline(self.now()).then(|| {
            Stop::late(format!(
                "{} was not brought up: maxDeploymentDuration ({}) ran out before its turn; \
                 nothing was deployed",
                self.state.to,
                human(self.state.config.max_deployment_duration)
            ))
        })
    }

    /// Ends the deployment as failed in preparation, with nothing deployed, then answers the
    /// operator's abort that stopped it, if one did: once the failure is journalled.
    ///
    /// The restore comes last in preparation, so nothing stops it once it is done; but a
    /// deployment journalled by an earlier release restored before its pre-upgrade steps, and
    /// one of those may still fail when it resumes: its reason then says that the running
    /// version serves over the restored database, as a rollback after a restore says.
    async fn stop_preparation(&mut self, stop: Stop, mut kinds: Vec<EventKind>) -> Result<()> {
        let Stop {
            reason,
            reply,
            deadline,
        } = stop;
        let reason = self
            .over_restored(&reason, "still serves")
            .unwrap_or(reason);
        if deadline {
            kinds.push(self.deadline_in_preparation());
        }
        let ended = self
            .finish(Outcome::Failed { reason }, Vec::new(), kinds)
            .await;
        if let Some(reply) = reply {
            let _ = reply.send(ended.clone());
        }
        ended
    }

    /// The running version the pre-checks look at: none on a first install, and none when
    /// moving back to an older version (a rollback): the version it replaces is what it
    /// escapes, and requiring it and its dependencies to be healthy would refuse the rollback
    /// when it is needed most. The new track's readiness still gates the switch back.
    fn to_pre_check(&self) -> Option<Placement> {
        self.state
            .from
            .clone()
            .filter(|from| from.version <= self.state.to.version)
    }

    /// Pre-checks the running version `from` and its dependencies; answers why preparation
    /// stops, if it does, with nothing changed.
    ///
    /// Neither the platform's status nor the health source's signals outlive the deployment's
    /// deadline or keep an operator's abort waiting (see
    /// [`await_bounded`](Self::await_bounded)): both only read, so a call cut short is
    /// dropped, and the pre-check fails, as it does on a call that fails: missing evidence is
    /// no pass.
    async fn pre_check(&mut self, from: &Placement) -> Result<Option<Stop>> {
        let platform = self.inner.platform.clone();
        let service = self.state.service.clone();
        let st = match self
            .await_bounded(platform.status(&service, &from.track))
            .await?
        {
            Bounded::Answered(st) => st?,
            Bounded::Cancelled { after, reply, .. } => {
                let what = format!(
                    "the status of the running version {from} from platform `{}`",
                    platform.name()
                );
                return Ok(Some(self.pre_check_cancelled(&what, after, reply)));
            }
        };
        if !st.all_ready() {
            return Ok(Some(Stop::failed(format!(
                "pre-check: the running version {from} is not healthy ({} of {} instances \
                 ready); nothing was changed",
                st.ready_count(),
                st.instances.len()
            ))));
        }
        // A health source that cannot answer is no evidence that the dependencies are
        // healthy: the pre-check fails, as it does when the platform cannot say whether
        // the running version is, rather than pass on what it could not read.
        let health = self.backends.health.clone();
        let signals = match self.await_bounded(health.signals(&from.track)).await? {
            Bounded::Answered(Ok(signals)) => signals,
            Bounded::Answered(Err(e)) => {
                return Ok(Some(Stop::failed(format!(
                    "pre-check: the dependency checks of the running version {from} could \
                     not be read from the health source {} ({e}); nothing was changed",
                    health.name()
                ))));
            }
            Bounded::Cancelled { after, reply, .. } => {
                let what = format!(
                    "the dependency checks of the running version {from} from the health \
                     source {}",
                    health.name()
                );
                return Ok(Some(self.pre_check_cancelled(&what, after, reply)));
            }
        };
        // A dependency check that could not run (`Unknown`) is no evidence either: only a
        // pass lets the deployment change anything.
        Ok(signals.iter().find_map(|s| match &s.probe {
            serin_signals::Probe::Dependency(name) if s.status != ProbeStatus::Pass => {
                let why = match s.status {
                    ProbeStatus::Fail => "fails its check",
                    _ => "could not be checked (its check reports unknown)",
                };
                Some(Stop::failed(format!(
                    "pre-check: dependency `{name}` of the running version {from} {why}; \
                     nothing was changed"
                )))
            }
            _ => None,
        }))
    }

    /// Why preparation stops when reading `what` for a pre-check was cancelled `after` so
    /// long, with the reply owed to the operator's abort that cancelled it, if one did.
    fn pre_check_cancelled(&self, what: &str, after: Duration, reply: Option<Reply>) -> Stop {
        Stop::cancelled(
            format!(
                "pre-check: reading {what} was cancelled after {}: {}; nothing was changed",
                human(after),
                self.cancelled_why(reply.is_some())
            ),
            reply,
        )
    }

    /// Whether a record shows preparation past its pre-checks: a backup, a restore or a
    /// pre-upgrade step started or ended.
    fn preparation_begun(&self) -> bool {
        let s = &self.state;
        s.in_flight.is_some()
            || s.backup.is_some()
            || s.backup_unconfirmed.is_some()
            || s.restored
            || s.checklist
                .iter()
                .any(|i| i.is_pre(&s.service) && i.status != StepStatus::Pending)
    }

    /// Takes the preparation backup, once, when a backup provider is configured.
    ///
    /// Its start is journalled first, with its label and the ids of the service's backups that
    /// already bear that label; its id in a record of its own as soon as the provider answers.
    /// A deployment resumed with the backup started and not ended looks for it
    /// ([`BackupProvider::list`]): a backup with the label that was not there before is this
    /// one, and is adopted. A listing without one shows that none was left behind (a failed
    /// backup leaves none), so it is taken now. When the backups cannot be listed (the
    /// provider keeps no catalog, the listing fails), it is not taken again — a second backup
    /// would let the provider's retention expire an older one, such as the restore point of a
    /// rollback — and the deployment goes on without naming a backup, saying so in an
    /// anomaly event and in [`backup_unconfirmed`](crate::DeploymentState::backup_unconfirmed).
    ///
    /// The provider's backup is bounded as a step runner's call is (see
    /// [`await_bounded`](Self::await_bounded)): a dump that hangs on a lock must not hold the
    /// deployment past `maxDeploymentDuration`, nor keep an operator's abort waiting. At the
    /// deadline or on an abort the call is dropped, which a provider guarantees leaves no
    /// backup behind (as a failed backup leaves none), so nothing is in flight any more, and
    /// the deployment fails with nothing deployed: going on without the backup it asked for
    /// would leave a destructive migration with no restore point. A backup whose turn comes
    /// past the deadline is not started. Its listings are bounded in the same way: cut short,
    /// the backup is not started, or, looked for after a restart, not confirmed (and not
    /// taken again), and the deployment fails with nothing deployed. Answers why preparation
    /// stops, if it does.
    async fn take_backup(&mut self, kinds: &mut Vec<EventKind>) -> Result<Option<Stop>> {
        if self.state.backup.is_some() || self.state.backup_unconfirmed.is_some() {
            return Ok(None);
        }
        let service = self.state.service.clone();
        let started = match self.state.in_flight.clone() {
            Some(InFlight::Backup { label, existing }) => Some((label, existing)),
            _ => None,
        };
        let Some(provider) = self.inner.backup.clone() else {
            if let Some((label, _)) = started {
                let why = "no backup provider is configured to look it up".to_owned();
                self.backup_unconfirmed(&label, why, kinds);
            }
            return Ok(None);
        };
        if let Some((label, existing)) = started {
            match self
                .find_backup(provider.as_ref(), &label, existing)
                .await?
            {
                Lookup::Found(id) => {
                    self.state.in_flight = None;
                    kinds.push(EventKind::BackupTaken { id: id.clone() });
                    self.state.backup = Some(id);
                    return Ok(None);
                }
                Lookup::Unknown(why) => {
                    self.backup_unconfirmed(&label, why, kinds);
                    return Ok(None);
                }
                Lookup::Cancelled { why, reply } => {
                    self.backup_unconfirmed(&label, why.clone(), kinds);
                    return Ok(Some(Stop::cancelled(
                        format!(
                            "the backup `{label}` started before the process stopped cannot be \
                             confirmed: {why}; nothing was deployed"
                        ),
                        reply,
                    )));
                }
                Lookup::Absent => self.state.in_flight = None,
            }
        }
        let label = match &self.state.from {
            Some(from) => format!("before {} -> {}", from.version, self.state.to.version),
            None => format!("before installing {}", self.state.to.version),
        };
        if self.past_deadline(self.now()) {
            return Ok(Some(Stop::late(format!(
                "the backup `{label}` was not started: maxDeploymentDuration ({}) ran out \
                 before its turn; nothing was deployed",
                human(self.state.config.max_deployment_duration)
            ))));
        }
        let existing = match self.await_bounded(provider.list(&service)).await? {
            Bounded::Answered(listed) => listed.ok().map(|list| {
                list.into_iter()
                    .filter(|b| b.label == label)
                    .map(|b| b.id)
                    .collect()
            }),
            Bounded::Cancelled { after, reply, .. } => {
                return Ok(Some(Stop::cancelled(
                    format!(
                        "the backup `{label}` was not started: listing the backups of {service} \
                         before it was cancelled after {}: {}; nothing was deployed",
                        human(after),
                        self.cancelled_why(reply.is_some())
                    ),
                    reply,
                )));
            }
        };
        self.state.in_flight = Some(InFlight::Backup {
            label: label.clone(),
            existing,
        });
        self.commit(Vec::new(), std::mem::take(kinds)).await?;
        let taken = self.await_bounded(provider.backup(&service, &label)).await;
        // A failed or cancelled backup leaves none behind: nothing is in flight any more,
        // whatever the answer.
        self.state.in_flight = None;
        let taken = match taken? {
            Bounded::Answered(taken) => taken,
            Bounded::Cancelled { after, reply, .. } => {
                return Ok(Some(Stop::cancelled(
                    format!(
                        "the backup `{label}` was cancelled after {}: {}; a cancelled backup \
                         leaves none behind; nothing was deployed",
                        human(after),
                        self.cancelled_why(reply.is_some())
                    ),
                    reply,
                )));
            }
        };
        let id = taken?;
        kinds.push(EventKind::BackupTaken { id: id.clone() });
        self.state.backup = Some(id);
        self.commit(Vec::new(), std::mem::take(kinds)).await?;
        Ok(None)
    }

    /// Why a backup provider's call was cancelled in preparation: by an operator's abort
    /// (`aborted`), or else by the deadline.
    fn cancelled_why(&self, aborted: bool) -> String {
        if aborted {
            "it was aborted by an operator".to_owned()
        } else {
            format!(
                "it did not finish within maxDeploymentDuration ({})",
                human(self.state.config.max_deployment_duration)
            )
        }
    }

    /// Looks for the backup of the service labelled `label` started before a restart: one
    /// with the label that is not among `existing`, the ids that bore the label before it was
    /// started (the newest, should there be several). The listing is bounded as the backup
    /// is (see [`await_bounded`](Self::await_bounded)).
    async fn find_backup(
        &mut self,
        provider: &dyn BackupProvider,
        label: &str,
        existing: Option<Vec<String>>,
    ) -> Result<Lookup> {
        let Some(existing) = existing else {
            return Ok(Lookup::Unknown(
                "the provider's backups could not be listed when it was started".to_owned(),
            ));
        };
        let service = self.state.service.clone();
        Ok(match self.await_bounded(provider.list(&service)).await? {
            Bounded::Answered(Ok(list)) => list
                .into_iter()
                .filter(|b| b.label == label && !existing.contains(&b.id))
                .max_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)))
                .map_or(Lookup::Absent, |b| Lookup::Found(b.id)),
            Bounded::Answered(Err(e)) => {
                Lookup::Unknown(format!("listing the backups of {service} failed: {e}"))
            }
            Bounded::Cancelled { after, reply, .. } => Lookup::Cancelled {
                why: format!(
                    "listing the backups of {service} was cancelled after {}: {}",
                    human(after),
                    self.cancelled_why(reply.is_some())
                ),
                reply,
            },
        })
    }

    /// Records that the backup started before a restart cannot be confirmed, and why.
    pub(super) fn backup_unconfirmed(
        &mut self,
        label: &str,
        why: String,
        kinds: &mut Vec<EventKind>,
    ) {
        kinds.push(EventKind::Anomaly {
            source: "backup".into(),
            severity: "warning".into(),
            summary: format!(
                "backup `{label}` was started before the process stopped and cannot be \
                 confirmed ({why}); it is not taken again, so that retention expires no older \
                 backup: check the provider's backups of {}",
                self.state.service
            ),
        });
        self.state.in_flight = None;
        self.state.backup_unconfirmed = Some(why);
    }

    /// Restores the backup a rollback across destructive migrations needs, once; answers why
    /// preparation stops when it is not restored.
    ///
    /// Journalled as started before the provider is asked, and as restored right after. A
    /// deployment resumed with the restore started and not ended cannot tell whether it
    /// happened, and does not restore a second time (that would throw away what was written
    /// since the first): it fails, with traffic not switched, and leaves the database to an
    /// operator.
    ///
    /// The provider's call is bounded as a step runner's is (see
    /// [`await_bounded`](Self::await_bounded)): at `maxDeploymentDuration` or on an operator's
    /// abort it is dropped, which ends what the provider runs (a dump restore ends its
    /// database sessions) but does not undo what it restored until then. The deployment then
    /// fails with traffic not switched, saying that the database may hold part of the backup
    /// and must be restored again: switching traffic to the old version over a database half
    /// restored is what the restore is there to prevent. A restore whose turn comes past the
    /// deadline is not started, rather than started only to be cancelled at once.
    async fn restore_backup(&mut self, kinds: &mut Vec<EventKind>) -> Result<Option<Stop>> {
        let Some(id) = self.state.restore.clone() else {
            return Ok(None);
        };
        if self.state.restored {
            return Ok(None);
        }
        let serving = self
            .state
            .from
            .as_ref()
            .map_or_else(|| "nothing".to_owned(), ToString::to_string);
        if matches!(self.state.in_flight, Some(InFlight::Restore { .. })) {
            self.state.in_flight = None;
            return Ok(Some(Stop::failed(format!(
                "restoring backup {id} was started before the process stopped and its end was \
                 not journalled: the database may or may not be restored, and it is not restored \
                 a second time; traffic was not switched ({serving} still serves). Check the \
                 database, restore backup {id} by hand if it was not, then deploy {} again",
                self.state.to.version
            ))));
        }
        // Only a rollback across destructive migrations asks for this, and `rollback_to`
        // refuses one without a backup provider; the check stays for journals from elsewhere.
        let Some(provider) = self.inner.backup.clone() else {
            return Ok(Some(Stop::failed(format!(
                "restoring backup {id} before rolling back failed: no backup provider is \
                 configured; traffic was not switched"
            ))));
        };
        if self.past_deadline(self.now()) {
            return Ok(Some(Stop::late(format!(
                "restoring backup {id} was not started: maxDeploymentDuration ({}) ran out \
                 before its turn; the database was not touched and traffic was not switched \
                 ({serving} still serves)",
                human(self.state.config.max_deployment_duration)
            ))));
        }
        self.state.in_flight = Some(InFlight::Restore { id: id.clone() });
        self.commit(Vec::new(), std::mem::take(kinds)).await?;
        let restored = self.await_bounded(provider.restore(&id)).await;
        self.state.in_flight = None;
        let restored = match restored? {
            Bounded::Answered(restored) => restored,
            Bounded::Cancelled { why, after, reply } => {
                return Ok(Some(Stop::cancelled(
                    format!(
                        "restoring backup {id} was cancelled after {} ({why}): the database may \
                         hold part of it, so restore backup {id} again before deploying {} \
                         again; traffic was not switched ({serving} still serves)",
                        human(after),
                        self.state.to.version
                    ),
                    reply,
                )));
            }
        };
        if let Err(e) = restored {
            return Ok(Some(Stop::failed(format!(
                "restoring backup {id} before rolling back failed: {e}; traffic was not switched"
            ))));
        }
        self.state.restored = true;
        kinds.push(EventKind::BackupRestored { id });
        self.commit(Vec::new(), std::mem::take(kinds)).await?;
        Ok(None)
    }

    /// Hands an upgrade step journalled as started and not as ended (the process stopped while
    /// it ran) to an operator: it may or may not have been carried out, so it is never run
    /// again, but marked due with evidence saying so.
    pub(super) fn hand_over_step_in_flight(&mut self, kinds: &mut Vec<EventKind>) {
        let Some(InFlight::Step { index }) = self.state.in_flight else {
            return;
        };
        self.state.in_flight = None;
        let id = &self.state.id;
        if let Some(item) = self.state.checklist.get_mut(index) {
            item.status = StepStatus::Due;
            item.evidence = Some(format!(
                "started by {id} before the process stopped and not confirmed: it may or may \
                 not have been carried out, so it was not run again; check it and carry it \
                 out if it was not"
            ));
            kinds.push(step_event(item));
        }
    }

    /// Carries out (or records as due) the checklist steps of one side of the deployment:
    /// `pre` in preparation, the others in completion. Backups are done by the backup taken in
    /// preparation; one started before a restart and not confirmed since is left to an
    /// operator, not asked of the runner (see [`take_backup`](Self::take_backup)); the
    /// deployment's own step is done by this deployment; the rest go to the step runner, if
    /// any. Answers why preparation stops when a pre-upgrade step failed, was cancelled or
    /// could not start (an abort's reply is answered here, once the cancellation is
    /// journalled).
    ///
    /// A step the runner carries out is journalled as started before the runner is called and
    /// with its result right after, each in a record of its own. A step a resumed deployment
    /// finds started and not ended may or may not have been carried out, and a migration must
    /// not run twice: it is not run again but recorded as due, with that as evidence, for an
    /// operator to check (as steps no runner carries out are), and the deployment goes on.
    ///
    /// The runner's call is bounded as Helm bounds its hooks by `--timeout`: no step outlives
    /// the deployment's deadline (`maxDeploymentDuration`), and an operator's abort ends the
    /// wait at once (see [`await_step`](Self::await_step)). The call is then dropped, which
    /// cancels it at its next await point; what it did until then is not undone, so the step
    /// is marked failed with evidence saying why it was cancelled and that it may be partly
    /// carried out. Before the deployment that fails it, with nothing deployed. After it (the
    /// old version is retired, so nothing rolls back), the steps that follow a cancelled or
    /// failed one (which may be partly carried out too, and a later step may depend on it, as
    /// Helm stops its hooks at the first that fails) are not started but recorded as due, with
    /// the reason, for an operator, whom the failed step reaches as a critical anomaly (see
    /// [`step_failed_after_retire`](Self::step_failed_after_retire)); so are the steps whose
    /// turn comes past the deadline (as when `monitoring.onDeadline: complete` finishes the
    /// deployment at its deadline): an unbounded migration past the deadline is what the
    /// deadline forbids. A step journalled as failed before a restart stops its side in the
    /// same way on resume.
    pub(super) async fn run_steps(
        &mut self,
        pre: bool,
        kinds: &mut Vec<EventKind>,
    ) -> Result<Option<Stop>> {
        let service = self.state.service.clone();
        let id = self.state.id.clone();
        self.hand_over_step_in_flight(kinds);
        // A step of this side journalled as failed (or cancelled) before a restart stops it as
        // it did then: the resumed run carries out nothing that follows it.
        let failed = self
            .state
            .checklist
            .iter()
            .find(|i| i.status == StepStatus::Failed && i.is_pre(&service) == pre)
            .map(|i| (i.step.clone(), i.evidence.clone().unwrap_or_default()));
        if pre && let Some((step, evidence)) = &failed {
            return Ok(Some(Stop::failed(format!(
                "pre-upgrade step failed ({step}): {evidence}; nothing was deployed"
            ))));
        }
        // Why the runner is called for no further step of this side (a failed or cancelled
        // step, an operator's abort).
        let mut stopped = failed
            .map(|(step, evidence)| format!("the step before it ({step}) failed: {evidence}"));
        for index in 0..self.state.checklist.len() {
            let item = &self.state.checklist[index];
            if item.status != StepStatus::Pending || item.is_pre(&service) != pre {
                continue;
            }
            let step = item.step.clone();
            let (ran, journalled) = if item.is_this_deploy(&service) {
                (Ran::Answered(Ok(Some(format!("deployed by {id}")))), false)
            } else if step.kind == serin_compat::steps::StepKind::Backup
                && step.service == service
                && let Some(b) = &self.state.backup
            {
                (Ran::Answered(Ok(Some(format!("backup {b}")))), false)
            } else if step.kind == serin_compat::steps::StepKind::Backup
                && step.service == service
                && let Some(why) = &self.state.backup_unconfirmed
            {
                // The preparation backup may exist: the runner taking another could let the
                // provider's retention expire an older one, as taking it again would.
                (Ran::Left(unconfirmed_backup_step(why, &service)), false)
            } else if let Some(runner) = self.inner.steps.clone() {
                let late = self.past_deadline(self.now()).then(|| {
                    format!(
                        "maxDeploymentDuration ({}) ran out before its turn",
                        human(self.state.config.max_deployment_duration)
                    )
                });
                match late.or_else(|| stopped.clone()) {
                    Some(why) => (Ran::NotStarted(why), false),
                    None => {
                        self.state.in_flight = Some(InFlight::Step { index });
                        self.commit(Vec::new(), std::mem::take(kinds)).await?;
                        let ran = self.await_step(runner.as_ref(), &id, &step).await;
                        self.state.in_flight = None;
                        (ran?, true)
                    }
                }
            } else {
                (Ran::Answered(Ok(None)), false)
            };
            let mut failure = None;
            // How a step after the old version's retire failed, for an operator to hear of.
            let mut failure_after = None;
            let mut abort = None;
            let mut refused = None;
            match ran {
                Ran::Answered(Ok(Some(evidence))) => {
                    let item = &mut self.state.checklist[index];
                    item.status = StepStatus::Done;
                    item.evidence = Some(evidence);
                }
                Ran::Answered(Ok(None)) => self.state.checklist[index].status = StepStatus::Due,
                Ran::Left(why) => {
                    let item = &mut self.state.checklist[index];
                    item.status = StepStatus::Due;
                    item.evidence = Some(why);
                }
                Ran::Answered(Err(e)) => {
                    let item = &mut self.state.checklist[index];
                    item.status = StepStatus::Failed;
                    item.evidence = Some(e.to_string());
                    if pre {
                        failure = Some(Stop::failed(format!(
                            "pre-upgrade step failed ({}): {e}; nothing was deployed",
                            item.step
                        )));
                    } else {
                        // A failed step may be partly carried out, as a cancelled one may: the
                        // steps after it (dropping what it migrated, say) wait for an operator.
                        stopped = Some(format!("the step before it ({}) failed: {e}", item.step));
                        failure_after = Some(format!("failed: {e}"));
                    }
                }
                Ran::NotStarted(why) if pre => {
                    // The deployment fails before it: the step stays pending, as the steps
                    // after a failed one do. Before the deployment only the deadline keeps a
                    // step from starting.
                    return Ok(Some(Stop::late(format!(
                        "pre-upgrade step ({step}) was not started: {why}; nothing was deployed"
                    ))));
                }
                Ran::NotStarted(why) => {
                    let item = &mut self.state.checklist[index];
                    item.status = StepStatus::Due;
                    item.evidence = Some(format!("not started: {why}; carry it out by hand"));
                }
                Ran::Cancelled { why, after, reply } => {
                    let item = &mut self.state.checklist[index];
                    item.status = StepStatus::Failed;
                    item.evidence = Some(format!(
                        "cancelled after {} ({why}): the step runner's call was dropped before \
                         it answered, so the step may be partly carried out; check it before \
                         carrying it out again",
                        human(after)
                    ));
                    if pre {
                        // The abort's reply is answered here, not by the stop.
                        let reason = format!(
                            "pre-upgrade step ({}) was cancelled: {why}; nothing was deployed, \
                             but the step may be partly carried out",
                            item.step
                        );
                        failure = Some(Stop {
                            deadline: reply.is_none(),
                            ..Stop::failed(reason)
                        });
                    } else {
                        stopped = Some(why.clone());
                        failure_after = Some(format!(
                            "was cancelled ({why}) and may be partly carried out"
                        ));
                    }
                    if let Some(reply) = reply {
                        if !pre {
                            // No rollback after the old version's retire: the abort stops the
                            // steps, and the deployment finishes forward.
                            refused = Some(self.rollback_refused(&why));
                        }
                        abort = Some(reply);
                    }
                }
            }
            kinds.push(step_event(&self.state.checklist[index]));
            if let Some(how) = failure_after {
                kinds.push(self.step_failed_after_retire(&step, &how));
            }
            kinds.extend(refused);
            let committed = if journalled {
                self.commit(Vec::new(), std::mem::take(kinds)).await
            } else {
                Ok(())
            };
            if let Some(reply) = abort {
                // Answered once the cancellation is journalled; in preparation the deployment
                // then ends as failed, with nothing deployed.
                let _ = reply.send(committed.clone());
            }
            committed?;
            if failure.is_some() {
                return Ok(failure);
            }
        }
        Ok(None)
    }

    /// The anomaly announcing that post-upgrade step `step` `how` (failed, or was cancelled).
    ///
    /// The deployment still succeeds (the new version serves all traffic and the old one is
    /// retired, so nothing rolls back), and a step event is notified under no category: the
    /// anomaly is what reaches the channels of an operator, who must look at a database that
    /// may be partly migrated and carry out the steps left after it.
    fn step_failed_after_retire(&self, step: &serin_compat::Step, how: &str) -> EventKind {
        let old = self.old_name();
        EventKind::Anomaly {
            source: "upgrade step".into(),
            severity: "critical".into(),
            summary: format!(
                "post-upgrade step ({step}) {how}; {old} was already retired, so nothing rolls \
                 back: the database may be partly migrated, and the steps after it are left to \
                 an operator"
            ),
        }
    }

    /// Awaits the step runner's answer for `step` (see [`await_bounded`](Self::await_bounded)):
    /// a step cancelled by an abort or the deadline is answered [`Ran::Cancelled`], with the
    /// abort's reply, to be answered once the cancellation is journalled.
    async fn await_step(
        &mut self,
        runner: &dyn StepRunner,
        id: &str,
        step: &serin_compat::Step,
    ) -> Result<Ran> {
        Ok(match self.await_bounded(runner.run(id, step)).await? {
            Bounded::Answered(done) => Ran::Answered(done),
            Bounded::Cancelled { why, after, reply } => Ran::Cancelled { why, after, reply },
        })
    }

    /// Awaits `call`, a call into the user's code that a deployment carries out on its data
    /// (a backup, a restore, an upgrade step), serving operator commands meanwhile, until the
    /// deployment's deadline at the latest, as Helm bounds its hooks by `--timeout`. An abort
    /// or the deadline ends the wait: the call is dropped (cancelled at its next await point)
    /// and answered [`Bounded::Cancelled`], with the abort's reply, for the caller to answer
    /// once it has journalled what the cancellation leaves. The call's answer wins a tie with
    /// either. Other commands are served as in any wait (a pause is journalled and holds what
    /// comes after; a promote is served as the stage serves one: in preparation there is
    /// nothing to promote yet, or any more).
    pub(super) async fn await_bounded<T>(
        &mut self,
        call: impl Future<Output = T>,
    ) -> Result<Bounded<T>> {
        let started = self.now();
        tokio::pin!(call);
        loop {
            let left = self.state.deadline.saturating_duration_since(self.now());
            tokio::select! {
                biased;
                done = &mut call => return Ok(Bounded::Answered(done)),
                cmd = self.commands.recv() => match cmd {
                    Some((Operation::Abort, reply)) => {
                        return Ok(Bounded::Cancelled {
                            why: "aborted by an operator".into(),
                            after: self.now().saturating_duration_since(started),
                            reply: Some(reply),
                        });
                    }
                    Some((op, reply)) => {
                        let seq = self.seq;
                        let r = self.handle(op).await;
                        self.answer(r, seq, reply)?;
                    }
                    None => {}
                },
                () = tokio::time::sleep(left) => {
                    return Ok(Bounded::Cancelled {
                        why: format!(
                            "maxDeploymentDuration ({}) ran out while it ran",
                            human(self.state.config.max_deployment_duration)
                        ),
                        after: self.now().saturating_duration_since(started),
                        reply: None,
                    });
                }
            }
        }
    }

    /// Starts the new version on its track, unless `maxDeploymentDuration` has run out (see
    /// [`bring_up_late`](Self::bring_up_late)).
    pub(super) async fn bring_up(&mut self) -> Result<()> {
        if let Some(stop) = self.bring_up_late() {
            return self.stop_preparation(stop, Vec::new()).await;
        }
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
        // `readinessTimeout` counts from this record, across restarts.
        self.state.readiness_since = Some(self.now());
        self.enter(Stage::WaitReady, effects, kinds).await
    }

    /// Waits until the platform reports the new track ready, serving operator commands
    /// meanwhile: an abort rolls back at once, before any traffic moves to the new track.
    /// Fails when an instance dies, or when the track is not ready `readinessTimeout` after the
    /// wait began as journalled ([`readiness_since`](crate::DeploymentState::readiness_since)),
    /// so a restart does not extend the wait. Rolls back when `maxDeploymentDuration` runs out
    /// first, a track ready only at or past it included: no weight moves past the deadline,
    /// to be taken back at once. A platform that has not answered for the track's status by
    /// then fails the deployment (see [`ready_status`](Self::ready_status)). `false` when a
    /// command, the deadline or a trigger moved the deployment to another stage.
    ///
    /// While the new version already serves a share — during a promotion, and while a raised
    /// canary weight waits for its grown track (see `move_weight`) — the rollback triggers are
    /// checked every `monitoring.checkInterval` until the track is ready, and roll back as in
    /// the watch: a breach does not wait out the growth (up to `readinessTimeout`) to roll
    /// back, nor does the raised weight go in force over it. Each check observes the window
    /// since the last, as the watch does, so the canary's next metrics window begins after
    /// the wait's last check. A trigger asking to hold during a raised weight's wait keeps
    /// the weight where it is once the track is ready (`move_weight`). During a promotion, a
    /// trigger asking to hold (a metrics outage, a hold-level breach) keeps the canary at its
    /// share past the moment its track is ready: the promotion completes
    /// once the hold clears, or `maxDeploymentDuration` rolls back, as a hold stops the canary,
    /// the switch and the watch; no version takes all traffic on missing evidence. An
    /// operator's promotion goes through the hold (the promotion was the operator's, or a
    /// promote came during the wait), as it does in every other stage; it is journalled
    /// ([`operator_promoted`](crate::DeploymentState::operator_promoted)), so a deployment
    /// resumed during the wait goes through the hold too. A pause holds the canary at its share
    /// in the same way, until the resume (or an operator's promote, which lifts it): a paused
    /// rollout does not progress, here as in the canary and the switch.
    pub(super) async fn await_ready(&mut self) -> Result<bool> {
        let cfg = &self.state.config.blue_green_config;
        let poll = cfg.health_check_interval.max(Duration::from_millis(1));
        let timeout = cfg.readiness_timeout;
        let check = self.state.config.monitoring.check_interval;
        let now = self.now();
        // A start journalled by a clock ahead of this one counts from now.
        let since = self.state.readiness_since.map_or(now, |t| t.min(now));
        let ready_by = since.saturating_add(timeout);
        let stage = self.state.stage;
        let service = self.state.service.clone();
        let track = self.new_track();
        // The canary stage's waits (a raised weight, a promotion) and a switch's promotion
        // come with the new version serving a share; the first wait, with none, is not watched.
        let watched = self.state.promoting || stage == Stage::Canary;
        // A raised canary weight waiting for its track: its windows go to the judges too, at
        // their own cadence, as a held canary's do.
        let judged = stage == Stage::Canary && !self.state.promoting;
        let every = if judged {
            self.state.config.canary_config.metrics_window
        } else {
            check
        };
        loop {
            let Some(status) = self.ready_status(&service, &track, stage).await? else {
                return Ok(false);
            };
            if let Some(e) = died_while_starting(self.inner.platform.name(), &status) {
                return Err(e);
            }
            let ready = status.all_ready();
            if ready {
                // A command that came while the platform answered is served before anything
                // moves: an abort now still moves no traffic to the new track.
                while let Ok((op, reply)) = self.commands.try_recv() {
                    self.serve_while_waiting_ready(op, reply).await?;
                    if self.state.stage != stage {
                        return Ok(false);
                    }
                }
                let held = self.state.promoting && self.promotion_held();
                if !held && !self.past_deadline(self.now()) {
                    return Ok(true);
                }
            }
            let now = self.now();
            if !ready && now >= ready_by {
                return Err(not_ready(&status, timeout));
            }
            if self.past_deadline(now) {
                // `maxDeploymentDuration` ran out first: no traffic moves to a track still
                // starting (or held), nor to one ready only now, and the wait is not the
                // deadline's exception.
                self.roll_back_at_deadline().await?;
                return Ok(false);
            }
            // A ready track held by the triggers waits for them (or the deadline), no longer
            // for readiness.
            let until = if ready {
                self.state.deadline
            } else {
                ready_by.min(self.state.deadline)
            };
            let mut d = poll.min(until.saturating_duration_since(now));
            if watched {
                // The new version serves its canary share until the grown track is ready:
                // the rollback triggers watch it meanwhile, every check interval.
                let due = self.read_at(self.state.observed_until.saturating_add(every));
                if now >= due {
                    if judged {
                        self.canary_window_while_growing().await?;
                    } else {
                        self.watch_tick().await?;
                    }
                    if self.state.stage != stage {
                        return Ok(false);
                    }
                } else {
                    d = d.min(due.saturating_duration_since(now));
                }
            }
            tokio::select! {
                // Commands first: one that came during the sleep is served before the next check.
                biased;
                cmd = self.commands.recv() => {
                    if let Some((op, reply)) = cmd {
                        self.serve_while_waiting_ready(op, reply).await?;
                        if self.state.stage != stage {
                            return Ok(false);
                        }
                    }
                }
                () = tokio::time::sleep(d) => {}
            }
        }
    }

    /// The platform's status of the new track during a readiness wait, bounded as the wait
    /// is: a platform that has not answered at the deadline (`maxDeploymentDuration`) fails
    /// the deployment with an error naming the track and the wait, and a command that comes
    /// meanwhile is served at once (an abort rolls back). The call only reads, so it is
    /// dropped for the command and asked again after it. `None` when a command moved the
    /// deployment to another stage than `stage`.
    async fn ready_status(
        &mut self,
        service: &str,
        track: &Track,
        stage: Stage,
    ) -> Result<Option<TrackStatus>> {
        let started = self.now();
        loop {
            let left = self.state.deadline.saturating_duration_since(self.now());
            let platform = self.inner.platform.clone();
            tokio::select! {
                biased;
                status = platform.status(service, track) => return status.map(Some),
                cmd = self.commands.recv() => {
                    if let Some((op, reply)) = cmd {
                        self.serve_while_waiting_ready(op, reply).await?;
                        if self.state.stage != stage {
                            return Ok(None);
                        }
                    }
                }
                () = tokio::time::sleep(left) => {
                    return Err(Error::Timeout {
                        what: format!(
                            "an answer of platform `{}` to the status of {} while waiting for \
                             its readiness",
                            platform.name(),
                            TrackKey::new(service, track)
                        ),
                        after: self.now().saturating_duration_since(started),
                        reason: format!(
                            "maxDeploymentDuration ({}) ran out",
                            human(self.state.config.max_deployment_duration)
                        ),
                    });
                }
            }
        }
    }

    /// Whether the promotion under way keeps the new version at its canary share once its
    /// grown track is ready: a pause holds it, and so does a rollback trigger asking to hold,
    /// unless an operator promoted.
    fn promotion_held(&self) -> bool {
        self.state.paused || (!self.state.operator_promoted && self.triggers_hold(self.now()))
    }

    /// Serves an operator command during a readiness wait. During a promotion, a promote lets
    /// it through a hold (see [`await_ready`](Self::await_ready)) and a resume only lifts the
    /// pause (the canary controller, which has promoted, is not asked again).
    pub(super) async fn serve_while_waiting_ready(
        &mut self,
        op: Operation,
        reply: Reply,
    ) -> Result<()> {
        let seq = self.seq;
        let r = match op {
            Operation::Resume if self.state.promoting && !self.state.paused => Ok(()),
            Operation::Resume if self.state.promoting => {
                self.state.paused = false;
                self.commit(Vec::new(), vec![EventKind::Resumed]).await
            }
            // Boxed: `handle` may promote, and a promotion waits for readiness through this.
            _ => Box::pin(self.handle(op)).await,
        };
        self.answer(r, seq, reply)
    }

    /// Once the new track is ready: a first install finishes, a canary starts its analysis, a
    /// blue-green deployment starts its switch plan. A deployment paused meanwhile starts
    /// with no traffic on the new track, as a pause holds every weight.
    pub(super) async fn wait_ready(&mut self) -> Result<()> {
        if self.state.from.is_none() && self.state.promoted_at.is_some() {
            // A first install resumed after the record that gave its ready track all traffic:
            // that record announced the track ready and the resume carried its split out
            // again, so only the end is left, as in an uninterrupted run. Waiting again would
            // announce the track ready a second time.
            return self
                .finish(Outcome::Succeeded, Vec::new(), Vec::new())
                .await;
        }
        if !self.await_ready().await? {
            return Ok(());
        }
        self.state.readiness_since = None;
        let new = self.new_track();
        let now = self.now();
        self.state.observed_until = now;
        let mut kinds = vec![EventKind::TrackReady {
            version: self.state.to.version.to_string(),
            track: new.to_string(),
        }];
        let Some(old) = self.old_track() else {
            // A first install: nothing to compare with, nothing to switch from.
            self.set_weight(100.0, now);
            self.state.promoted_at = Some(now);
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
                if self.state.paused {
                    // Paused while the track started: no weight moves before the resume. The
                    // canary stage starts at 0% with its controller not yet asked, and its
                    // first window after the resume takes the first step.
                    self.state.canary = Some(store(controller, String::new()));
                    self.set_weight(0.0, now);
                    let split = split_percent(&old, &new, 0)?;
                    return self
                        .enter(Stage::Canary, vec![Effect::Apply { split }], kinds)
                        .await;
                }
                let decision = controller.tick(now);
                let Action::SetWeight(weight) = decision.action else {
                    // The first step is not a weight (a scale step, say): the canary stage
                    // starts at 0%, and the decision is carried out like any later one.
                    self.state.canary = Some(store(controller, String::new()));
                    self.set_weight(0.0, now);
                    kinds.push(self.weight_changed(0.0));
                    let split = split_percent(&old, &new, 0)?;
                    self.enter(Stage::Canary, vec![Effect::Apply { split }], kinds)
                        .await?;
                    return self
                        .carry_out(controller_of_state(&self.state)?, decision, "", Vec::new())
                        .await;
                };
                self.state.canary = Some(store(controller, decision.reason.clone()));
                self.set_weight(f64::from(weight), now);
                kinds.push(EventKind::AnalysisResult { decision });
                kinds.push(self.weight_changed(f64::from(weight)));
                let split = split_percent(&old, &new, weight)?;
                self.enter(Stage::Canary, vec![Effect::Apply { split }], kinds)
                    .await
            }
            StrategyKind::BlueGreen => {
                let from = split_all(&old, Some(&new))?;
                // Every step on the router's weights, or the plan is refused before it starts
                // rather than by the router halfway.
                let router = &self.backends.router;
                let plan = self.state.config.blue_green_config.plan_on(
                    &from,
                    new.as_str(),
                    router.capabilities().weight_granularity(),
                    router.name(),
                )?;
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

/// The event announcing where a checklist step stands.
fn step_event(item: &UpgradeStep) -> EventKind {
    EventKind::UpgradeStep {
        step: item.step.clone(),
        status: item.status,
        evidence: item.evidence.clone(),
    }
}

/// How a checklist step given to the step runner ended.
enum Ran {
    /// The runner answered (or the step needed no runner).
    Answered(Result<Option<String>>),
    /// The runner was not called: why.
    NotStarted(String),
    /// The runner was not called, and the step is left to an operator: what to check.
    Left(String),
    /// The runner's call was dropped before it answered: why, after how long, and the reply
    /// owed to the operator's abort that cancelled it, if one did.
    Cancelled {
        why: String,
        after: Duration,
        reply: Option<Reply>,
    },
}

/// The evidence of `service`'s checklist backup step when the preparation backup, started
/// before a restart, cannot be confirmed (`why`): left to an operator, not taken again.
fn unconfirmed_backup_step(why: &str, service: &str) -> String {
    format!(
        "the preparation backup was started before the process stopped and cannot be \
         confirmed ({why}); it was not taken again, so that retention expires no older \
         backup: check the backups of {service}, and take one by hand if there is none"
    )
}

/// How a call [`Runner::await_bounded`] awaited ended.
pub(super) enum Bounded<T> {
    /// It answered.
    Answered(T),
    /// It was dropped before it answered: why, after how long, and the reply owed to the
    /// operator's abort that cancelled it (`None` when the deadline did).
    Cancelled {
        why: String,
        after: Duration,
        reply: Option<Reply>,
    },
}

/// Why preparation stops short, the reply owed to the operator's abort that stopped it, if
/// one did, and whether `maxDeploymentDuration` stopped it.
pub(super) struct Stop {
    reason: String,
    reply: Option<Reply>,
    deadline: bool,
}

impl Stop {
    /// A stop no command asked for, and not the deadline's.
    fn failed(reason: String) -> Self {
        Stop {
            reason,
            reply: None,
            deadline: false,
        }
    }

    /// A stop for `maxDeploymentDuration`, which ran out before the turn of what comes next.
    fn late(reason: String) -> Self {
        Stop {
            deadline: true,
            ..Stop::failed(reason)
        }
    }

    /// A call cancelled by the operator's abort whose `reply` is owed, or else by the
    /// deadline.
    fn cancelled(reason: String, reply: Option<Reply>) -> Self {
        Stop {
            reason,
            deadline: reply.is_none(),
            reply,
        }
    }
}

/// What looking for a backup started before a restart found.
enum Lookup {
    /// It exists: its id.
    Found(String),
    /// The listing shows it does not exist: it was never taken.
    Absent,
    /// Whether it exists cannot be told: why.
    Unknown(String),
    /// The listing was cancelled before it answered: why, and the reply owed to the
    /// operator's abort that cancelled it (`None` when the deadline did).
    Cancelled { why: String, reply: Option<Reply> },
}
