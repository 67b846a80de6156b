//! Moving traffic: the blue-green switch plan, promotion, and rollback.

use serin_canary::controller::{Action, Decision};
use serin_signals::Timestamp;
use serin_traffic::Next;

use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::state::{Effect, Outcome, PlanRun, Stage};

use super::prepare::Bounded;
use super::{Operation, Runner, is_journal_error, split_all};

impl Runner {
    /// One step of the blue-green switch: apply the plan's next split when it is due, or
    /// watch the triggers until it is. While paused, while a trigger holds (a metrics
    /// outage, say), while the evidence for the new track's next share is missing (see
    /// [`step_unfed`](Self::step_unfed)), or while an instance of the new track is not
    /// ready, no step is applied and the switch does not finish: the triggers are watched
    /// until that ends, or the deadline rolls back. An instance of the new track that died is
    /// an error, which rolls back (a platform never restarts one).
    pub(super) async fn switch_tick(&mut self) -> Result<()> {
        if self.state.promoting {
            return self.finish_promotion(Vec::new()).await;
        }
        let Some(mut run) = self.state.plan.clone() else {
            return Err(Error::conflict("switch", &self.state.id, "no traffic plan"));
        };
        let now = self.now();
        if self.past_deadline(now) {
            return self.roll_back_at_deadline().await;
        }
        let next = if self.state.paused || self.triggers_hold(now) {
            Next::AwaitApproval { step: 0 }
        } else {
            run.cursor
                .next(&run.plan, now.as_millis())
                .map_err(|e| Error::conflict("switch", &self.state.id, e.to_string()))?
        };
        let next = match next {
            Next::Apply { step } => match self.step_unfed(&run, step) {
                Some(said) => {
                    if !said.is_empty() {
                        self.commit(Vec::new(), said).await?;
                    }
                    Next::AwaitApproval { step: 0 }
                }
                None => next,
            },
            other => other,
        };
        let next = match next {
            Next::Apply { .. } | Next::Done => match self.new_track_ready().await? {
                Some(true) => next,
                Some(false) => Next::AwaitApproval { step: 0 },
                // The deployment moved on, or a command changed it: the next turn decides.
                None => return Ok(()),
            },
            other => other,
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
                self.set_weight(percent, now);
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
            Next::Done => {
                let track = self.new_track();
                let kinds = vec![self.promotion_decided(format!(
                    "the switch plan applied its last step with every instance of track {track} \
                     ready and no rollback trigger firing or holding: the new version takes all \
                     traffic"
                ))];
                self.promote(kinds, false).await
            }
            Next::Wait { until_millis } => {
                let check = self.state.config.monitoring.check_interval;
                let target = Timestamp::from_millis(until_millis)
                    .min(self.read_at(self.state.observed_until.saturating_add(check)))
                    .min(self.state.deadline);
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
            Next::AwaitApproval { .. } => {
                let check = self.state.config.monitoring.check_interval;
                let target = self
                    .read_at(self.state.observed_until.saturating_add(check))
                    .min(self.state.deadline);
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
        }
    }

    /// What keeps step `step` of the switch from giving the new track more traffic for want
    /// of evidence, if anything: `Some` with what says so (once for each wait, so often
    /// nothing), `None` when the step may go.
    ///
    /// No data is no pass, yet the triggers hold for it only once stale, `staleAfter` (five
    /// minutes by default) after the new track began taking traffic: a switch at its own pace
    /// would be over long before. So a step that raises a share the new track already has
    /// waits while the switch's last check of the triggers read no data of it, and one that
    /// gives it all traffic also waits while a rollback trigger has judged nothing of it since
    /// it began taking traffic, as a canary's promotion waits (a latency threshold over a
    /// source without latency). A switch that gives the new track all traffic in one step
    /// (an immediate one) cannot have data of it before, and is not held: the watch after
    /// promotion judges it, and does not end, retiring the old version, without data.
    fn step_unfed(&mut self, run: &PlanRun, step: usize) -> Option<Vec<EventKind>> {
        let before = self.state.weight;
        let percent = run
            .plan
            .step(step)
            .and_then(|s| s.split().weight_of(self.new_track().as_str()))
            .map_or(0.0, |w| w.as_percent());
        let unfed = if before > 0.0 && percent >= 100.0 {
            let since = self.state.canary_traffic_since.unwrap_or(Timestamp::EPOCH);
            self.triggers_without_data(since)
        } else {
            Vec::new()
        };
        let said = if !unfed.is_empty() {
            self.unfed_said(
                unfed,
                "the switch's last step waits",
                "it gets all traffic once data comes, or the switch rolls back when \
                 maxDeploymentDuration runs out",
            )
        } else if before > 0.0 && percent > before && self.watch_saw_data != Some(true) {
            // A resumed switch waits for its first check without a word: it has read nothing
            // yet, so it cannot say that its last check read no data.
            match self.watch_saw_data {
                Some(false) => self.no_data_said(before),
                _ => None,
            }
        } else {
            self.unfed_told = Default::default();
            return None;
        };
        Some(said.into_iter().collect())
    }

    /// What says, once for each wait, that the switch holds the new version at `percent`
    /// because its last check read no data of it.
    fn no_data_said(&mut self, percent: f64) -> Option<EventKind> {
        let version = &self.state.to.version;
        let what = format!("the switch holds {version} at {percent}%");
        if self.unfed_told == (what.clone(), Vec::new()) {
            return None;
        }
        let summary = format!(
            "{what}: its last check of the rollback triggers read no data of it; it gets more \
             traffic once data comes, or the switch rolls back when maxDeploymentDuration runs \
             out"
        );
        self.unfed_told = (what, Vec::new());
        Some(EventKind::Anomaly {
            source: "rollback triggers".into(),
            severity: "hold".into(),
            summary,
        })
    }

    /// Whether every instance of the new track is alive and ready, so that it may take more
    /// traffic. An instance that died is an error: a platform never restarts it, and the
    /// track cannot serve its share.
    ///
    /// The platform's answer is awaited serving commands, until the deadline at the latest
    /// (see [`await_bounded`](Self::await_bounded)): the call only reads, so one cut short is
    /// dropped. An abort rolls back at once, the deadline rolls back as it does at any turn of
    /// the switch, and a command that journalled a change (a pause, a promotion) leaves the
    /// answer to the stage's next turn, which decides on the changed state. `None` then.
    async fn new_track_ready(&mut self) -> Result<Option<bool>> {
        let platform = self.inner.platform.clone();
        let (service, track) = (self.state.service.clone(), self.new_track());
        let seq = self.seq;
        let status = match self
            .await_bounded(platform.status(&service, &track))
            .await?
        {
            Bounded::Answered(_) if self.seq != seq => return Ok(None),
            Bounded::Answered(status) => status?,
            Bounded::Cancelled {
                reply: Some(reply), ..
            } => {
                let seq = self.seq;
                let r = self.handle(Operation::Abort).await;
                self.answer(r, seq, reply)?;
                return Ok(None);
            }
            Bounded::Cancelled { reply: None, .. } => {
                self.roll_back_at_deadline().await?;
                return Ok(None);
            }
        };
        if let Some(dead) = status.dead_instance() {
            return Err(Error::platform(
                platform.name(),
                format!(
                    "instance {} of {} died: {}",
                    dead.id,
                    status.key(),
                    dead.detail.as_deref().unwrap_or("no detail")
                ),
            ));
        }
        Ok(Some(status.all_ready()))
    }

    /// Gives the new version all traffic (scaling a canary track to full size first);
    /// `forced` when an operator asked for it.
    ///
    /// All traffic goes only to a track whose every instance is alive and ready, as Argo
    /// Rollouts switches only to a fully available ReplicaSet: a track that needs no growth but
    /// has an instance not ready (or dead) since it came up goes through the readiness wait as
    /// a grown one does, and an instance that died rolls back.
    ///
    /// The scale is journalled with [`promoting`](crate::DeploymentState::promoting) and the
    /// start of the readiness wait: a deployment resumed from that record finishes the
    /// promotion ([`finish_promotion`](Self::finish_promotion)) without asking the canary
    /// controller again, within what is left of `readinessTimeout`.
    ///
    /// An operator's promotion is journalled as such
    /// ([`operator_promoted`](crate::DeploymentState::operator_promoted)), with the scale: it
    /// goes through a rollback trigger's hold, before and after a restart. It also lifts a
    /// pause, as Argo Rollouts' `promote` does: the operator's latest word is to go on. When
    /// the grown track is ready at once, it is carried out at once, and the operator hears how
    /// the switch went; otherwise it is answered once journalled and the scale carried out,
    /// not when the track is ready (which can take up to `readinessTimeout`, while the operator
    /// waits and can send nothing else): the stage's next turn finishes it, and the events and
    /// the status tell how that goes; an abort still rolls it back meanwhile.
    pub(super) async fn promote(&mut self, mut kinds: Vec<EventKind>, forced: bool) -> Result<()> {
        if self.old_track().is_none() {
            return Err(Error::conflict(
                "promote",
                &self.state.id,
                "nothing runs before",
            ));
        }
        if forced && std::mem::replace(&mut self.state.paused, false) {
            kinds.push(EventKind::Resumed);
        }
        let scale = self.promotion_scale().map(|full| Effect::Scale {
            track: self.new_track(),
            instances: full,
        });
        if scale.is_none() && self.all_ready_now().await {
            return self.give_all_traffic(kinds).await;
        }
        // The track grows first, or one of its instances is not ready (or died) since it came
        // up: all traffic waits for the readiness wait, which fails on a dead instance.
        self.state.promoting = true;
        self.state.operator_promoted = forced;
        self.state.readiness_since = Some(self.now());
        let scaled = self
            .commit(scale.into_iter().collect(), std::mem::take(&mut kinds))
            .await;
        if let Err(e) = scaled {
            self.end_promotion();
            return Err(e);
        }
        if forced && !self.all_ready_now().await {
            // Acknowledged: the stage's next turn finishes the promotion.
            return Ok(());
        }
        self.finish_promotion(kinds).await
    }

    /// The announcement of a promotion that no canary controller decided (the blue-green
    /// switch's plan, an operator's promote of the switch or of the watch): no metric
    /// decided it, so it carries no evidence, and `reason` says what did; its time is now.
    pub(super) fn promotion_decided(&self, reason: String) -> EventKind {
        EventKind::AnalysisResult {
            decision: Decision {
                action: Action::Promote,
                at: self.now(),
                step: 0,
                weight: 100,
                severity: None,
                reason,
                evidence: Vec::new(),
            },
        }
    }

    /// Whether every instance of the new track is alive and ready now, so that it may take a
    /// larger share at once (a platform that cannot tell, or does not answer before the
    /// deadline, is taken as not ready: the readiness wait finds out, fails on an instance
    /// that died, and rolls back at the deadline).
    pub(super) async fn all_ready_now(&self) -> bool {
        let track = self.new_track();
        let status = self.inner.platform.status(&self.state.service, &track);
        self.by_deadline(status)
            .await
            .is_some_and(|s| s.is_ok_and(|s| s.all_ready()))
    }

    /// The size the new track grows to before it takes all traffic, if it must grow (see
    /// [`DeploymentConfig::promotion_scale`](crate::DeploymentConfig)).
    fn promotion_scale(&self) -> Option<u32> {
        let steps = self
            .state
            .canary
            .as_ref()
            .map_or(&[][..], |run| &run.policy.steps);
        self.state.config.promotion_scale(steps)
    }

    /// The rest of a promotion journalled as under way: waits until the scaled track is
    /// ready, no rollback trigger holds (unless an operator promoted) and no pause holds
    /// (serving commands: an abort still rolls back), then gives it all traffic.
    pub(super) async fn finish_promotion(&mut self, kinds: Vec<EventKind>) -> Result<()> {
        match self.await_ready().await {
            Ok(true) => self.give_all_traffic(kinds).await,
            // An abort moved the deployment on (its rollback ended the promotion).
            Ok(false) => Ok(()),
            Err(e) => {
                self.end_promotion();
                Err(e)
            }
        }
    }

    /// An operator's promote while the promotion is under way: it goes through a rollback
    /// trigger's hold and lifts a pause (see [`promote`](Self::promote)), journalled so that
    /// a deployment resumed during the wait honours it. A second one changes nothing.
    pub(super) async fn promote_under_way(&mut self) -> Result<()> {
        let was_paused = std::mem::replace(&mut self.state.paused, false);
        if self.state.operator_promoted && !was_paused {
            return Ok(());
        }
        self.state.operator_promoted = true;
        let kinds = if was_paused {
            vec![EventKind::Resumed]
        } else {
            Vec::new()
        };
        self.commit(Vec::new(), kinds).await
    }

    /// The promotion is over (done, or failed and about to roll back or end): the record
    /// that follows says so.
    pub(super) fn end_promotion(&mut self) {
        self.state.promoting = false;
        self.state.operator_promoted = false;
        self.state.readiness_since = None;
    }

    /// Gives the new version all traffic and starts watching it.
    async fn give_all_traffic(&mut self, kinds: Vec<EventKind>) -> Result<()> {
        let new = self.new_track();
        let Some(old) = self.old_track() else {
            return Err(Error::conflict(
                "promote",
                &self.state.id,
                "nothing runs before",
            ));
        };
        let now = self.now();
        self.end_promotion();
        self.set_weight(100.0, now);
        // The watch goes on from the last observation: what the new version did since (while
        // the scaled track became ready, say) is in its first check.
        self.state.promoted_at = Some(now);
        let split = split_all(&new, Some(&old))?;
        self.enter(Stage::Monitoring, vec![Effect::Apply { split }], kinds)
            .await
    }

    /// Gives the old version all traffic now and records why; the new track is retired by
    /// the rolling-back stage that follows.
    ///
    /// Once the old version's retire is journalled ([`old_retired`]), no rollback starts: it
    /// would route all traffic to a retired track and retire the new one. The refusal is
    /// journalled and announced (an anomaly event naming the reason given) and the deployment
    /// stays where it is, so it finishes forward: completion carries out the retire again and
    /// the steps after it, and ends as succeeded, or as failed if the retire fails. This holds
    /// for every caller: an operator's abort, `rollbackOnError`, `onResume: rollback`.
    ///
    /// [`old_retired`]: crate::DeploymentState::old_retired
    pub(super) async fn start_rollback(
        &mut self,
        reason: String,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        if self.state.old_retired {
            kinds.push(self.rollback_refused(&reason));
            return self.commit(Vec::new(), kinds).await;
        }
        self.end_promotion();
        self.state.rollback_reason = Some(reason.clone());
        let now = self.now();
        self.set_weight(0.0, now);
        kinds.push(EventKind::RollbackStarted { reason });
        let effects = match self.old_track() {
            Some(old) => vec![Effect::Apply {
                split: split_all(&old, Some(&self.new_track()))?,
            }],
            None => Vec::new(),
        };
        self.enter(Stage::RollingBack, effects, kinds).await
    }

    /// [`start_rollback`](Self::start_rollback) for a rollback a stage decides (a judge, a
    /// trigger, the deadline). A rollback journalled whose first switch back failed is not
    /// the end: the rolling-back stage that follows switches back again and retires the new
    /// track, and ends as failed only if that fails too, as for a rollback started on an
    /// error.
    pub(super) async fn roll_back(&mut self, reason: String, kinds: Vec<EventKind>) -> Result<()> {
        match self.start_rollback(reason, kinds).await {
            Err(e) if !is_journal_error(&e) && self.state.stage == Stage::RollingBack => {
                tracing::warn!(deployment = %self.state.id, "starting the rollback failed: {e}");
                Ok(())
            }
            r => r,
        }
    }

    /// Retires the new track after its drain and ends the deployment as rolled back.
    ///
    /// A state that has retired the old version never reaches this stage through
    /// [`start_rollback`](Self::start_rollback) (and the restore check refuses a record that
    /// says so); should it get here anyway, it goes back to completion and finishes forward
    /// rather than route traffic to a retired track.
    pub(super) async fn rolling_back(&mut self) -> Result<()> {
        if self.state.old_retired {
            let reason = self.state.rollback_reason.take().unwrap_or_default();
            let kinds = vec![self.rollback_refused(&reason)];
            self.state.stage = Stage::Completion;
            return self.commit(Vec::new(), kinds).await;
        }
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
        // A rollback to an earlier version restored its backup before moving traffic: the
        // version that serves again runs over a database restored for the earlier one, which
        // is no clean rollback, and an operator must choose which database to keep.
        let outcome = match self.over_restored(&reason, "serves again") {
            Some(reason) => Outcome::Failed { reason },
            None => Outcome::RolledBack { reason },
        };
        self.finish(outcome, effects, Vec::new()).await
    }

    /// `reason`, followed by what an operator must choose, when this deployment (a rollback to
    /// an earlier version) restored its backup and the version it replaces `serves` (again, or
    /// still) over the restored database: none when nothing was restored.
    pub(super) fn over_restored(&self, reason: &str, serves: &str) -> Option<String> {
        let (Some(id), true) = (&self.state.restore, self.state.restored) else {
            return None;
        };
        Some(format!(
            "{reason}; backup {id} had been restored for {to}, so {from} {serves} over a \
             database restored for an earlier version: restore {fresh} to put back the database \
             {from} ran on, or deploy {to} again",
            to = self.state.to.version,
            from = self.state.from.as_ref().map_or_else(
                || "the previous version".to_owned(),
                |f| f.version.to_string()
            ),
            fresh = self.state.backup.as_deref().map_or_else(
                || "the backup taken before it".to_owned(),
                |b| format!("backup {b}, taken before it,")
            ),
        ))
    }

    /// The anomaly announcing that a rollback asked for `reason` does not start because the
    /// old version is retired.
    pub(super) fn rollback_refused(&self, reason: &str) -> EventKind {
        let old = self.old_name();
        EventKind::Anomaly {
            source: "rollback".into(),
            severity: "warning".into(),
            summary: format!(
                "no rollback ({reason}): {old} was retired when the deployment completed, and \
                 a rollback would route all traffic to it; finishing the deployment instead"
            ),
        }
    }
}
