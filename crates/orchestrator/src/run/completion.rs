//! After promotion: the monitoring watch, the deadline, and completion (retiring the old
//! version, post-upgrade steps).

use crate::config::OnDeadline;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::state::{Effect, Outcome, Stage};

use super::{Runner, is_journal_error, split_all};

impl Runner {
    /// One check of the rollback triggers (switch and monitoring stages), if one is due.
    pub(super) async fn watch_tick(&mut self) -> Result<()> {
        let now = self.now();
        let check = self.state.config.monitoring.check_interval;
        if now < self.read_at(self.state.observed_until.saturating_add(check)) {
            return Ok(());
        }
        self.check_triggers(now).await
    }

    /// Checks the rollback triggers on what both tracks did since the last check.
    async fn check_triggers(&mut self, now: serin_signals::Timestamp) -> Result<()> {
        let Some(observed) = self.observe(now).await else {
            return self.serve_waiting().await;
        };
        // Without rollback triggers nothing in the watch weighs data, so none is needed.
        self.watch_saw_data = Some(
            self.state.triggers.is_empty()
                || observed
                    .metrics
                    .iter()
                    .any(|(_, _, new)| !new.measurement.is_empty()),
        );
        let (kinds, rollback, _hold) = self.feed_triggers(&observed, now);
        if let Some(reason) = rollback {
            return self.roll_back(reason, kinds).await;
        }
        self.commit(Vec::new(), kinds).await
    }

    /// `maxDeploymentDuration` ran out after promotion: finish now or roll back, per
    /// `monitoring.onDeadline`.
    async fn deadline_after_promotion(&mut self) -> Result<()> {
        let phase = self.state.stage.phase();
        match self.state.config.monitoring.on_deadline {
            OnDeadline::Rollback => {
                let kinds = vec![EventKind::DeadlineReached {
                    phase,
                    action: "maxDeploymentDuration ran out after promotion: rolling back \
                             (onDeadline: rollback)"
                        .into(),
                }];
                let reason = self.deadline_reason();
                self.roll_back(reason, kinds).await
            }
            OnDeadline::Complete => {
                let kinds = vec![EventKind::DeadlineReached {
                    phase,
                    action: "maxDeploymentDuration ran out after promotion: watch ended; \
                             retiring the old version now (onDeadline: complete)"
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

    /// One check of the watch after promotion; at its end, once the triggers have seen all of
    /// it (its last stretch included, however short), completion. A watch whose triggers hold
    /// (no usable data, say), whose last check read no data of the new version, or one of
    /// whose triggers has had no data of it since the promotion, does not end: it goes on
    /// checking until they clear and data comes, or the deadline decides
    /// (`monitoring.onDeadline`), so the old version is not retired on missing evidence.
    pub(super) async fn monitoring_tick(&mut self) -> Result<()> {
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
        if next > until && self.watch_saw_data == Some(true) && !self.triggers_hold(now) {
            let since = self.state.promoted_at.unwrap_or(self.state.observed_until);
            let unfed = self.triggers_without_data(since);
            if unfed.is_empty() {
                let last_read = self.read_at(until);
                let target = last_read.min(deadline);
                if !self.wait_until(target).await? || target < last_read {
                    // Moved by a command, or the deadline came first (the next tick handles it).
                    return Ok(());
                }
                if self.state.observed_until < until {
                    // The watch's last stretch, shorter than a check interval, is checked too:
                    // the next tick ends the watch, unless this check rolls back or holds.
                    return self.check_triggers(self.now()).await;
                }
                return self.enter(Stage::Completion, Vec::new(), Vec::new()).await;
            }
            self.watch_goes_on_for(unfed).await?;
        }
        let next_read = self.read_at(next);
        let target = next_read.min(deadline);
        if !self.wait_until(target).await? || target < next_read {
            return Ok(());
        }
        self.watch_tick().await
    }

    /// The watch is over but `unfed` triggers have judged nothing of the new version: it goes
    /// on checking until each has data, or the deadline decides (`monitoring.onDeadline`).
    async fn watch_goes_on_for(&mut self, unfed: Vec<String>) -> Result<()> {
        let said = self.unfed_said(
            unfed,
            "the watch goes on past monitoringDuration",
            "the old version is retired once data comes, or when maxDeploymentDuration runs out \
             (monitoring.onDeadline)",
        );
        self.commit(Vec::new(), said.into_iter().collect()).await
    }

    /// Keeps the old version warm for `keepOldWarmFor` (or until the deadline), then
    /// completes.
    ///
    /// Once the old version's retire is journalled ([`old_retired`]), a resumed deployment
    /// only finishes forward: it carries out the retire again (idempotent) and the steps after
    /// it, whatever the warm delay, a pause or the deadline say.
    ///
    /// [`old_retired`]: crate::DeploymentState::old_retired
    pub(super) async fn completion(&mut self) -> Result<()> {
        if self.state.old_retired {
            let effects = self.retire_effects()?;
            if let Err(e) = self.execute(&effects).await {
                return self.retire_failed(e).await;
            }
            return self.after_retire(Vec::new()).await;
        }
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

    /// An operator's promote in completion: the new version has all traffic, and the old one
    /// is kept warm for `keepOldWarmFor` so that an abort can still switch back at once. A
    /// promote does not cut that short (nor does Argo Rollouts' `promote --full` cut
    /// `scaleDownDelaySeconds` short; an operator who wants the old version gone sooner sets a
    /// shorter delay). It lifts a pause, as it does in every stage, so the old version is
    /// retired when its delay is over instead of being kept warm until the resume; without a
    /// pause it is refused, saying when the old version goes.
    pub(super) async fn promote_in_completion(&mut self) -> Result<()> {
        if self.state.paused && !self.state.old_retired {
            self.state.paused = false;
            return self.commit(Vec::new(), vec![EventKind::Resumed]).await;
        }
        let old = self.old_name();
        let reason = if self.state.old_retired || self.state.deadline_action {
            format!(
                "{} already serves all traffic and {old} is being retired: nothing is left to \
                 promote",
                self.state.to
            )
        } else {
            let warm = self.state.config.blue_green_config.keep_old_warm_for;
            let until = self
                .state
                .promoted_at
                .unwrap_or(self.state.observed_until)
                .saturating_add(warm)
                .min(self.state.deadline);
            format!(
                "{} already serves all traffic: nothing is left to promote. {old} is kept warm \
                 until {until} (blueGreenConfig.keepOldWarmFor {warm:?}) so that an abort can \
                 still switch back at once, and a promote does not cut that short",
                self.state.to
            )
        };
        Err(Error::conflict("promote", &self.state.id, reason))
    }

    /// Gives the new version all traffic for good, retires the old one, then carries out the
    /// post-upgrade steps (the old version is gone, so contract migrations are safe).
    ///
    /// The retire's record also journals [`old_retired`]: from it on, no rollback starts (it
    /// would route traffic to a retired track), and a resumed deployment finishes forward.
    /// When the retire fails, the deployment ends as failed, with the new version serving all
    /// traffic.
    ///
    /// [`old_retired`]: crate::DeploymentState::old_retired
    async fn complete(&mut self, mut kinds: Vec<EventKind>) -> Result<()> {
        let effects = self.retire_effects()?;
        self.state.old_retired = self.state.from.is_some();
        // The old version is retired by its own record first; the steps after it are
        // journalled each in its own records, and the end in the last.
        if let Err(e) = self.commit(effects, std::mem::take(&mut kinds)).await {
            return self.retire_failed(e).await;
        }
        self.after_retire(kinds).await
    }

    /// All traffic to the new version, and the old one retired.
    fn retire_effects(&self) -> Result<Vec<Effect>> {
        let mut effects = vec![Effect::Apply {
            split: split_all(&self.new_track(), None)?,
        }];
        if let Some(old) = self.old_track() {
            effects.push(Effect::retire(old, self.drain()));
        }
        Ok(effects)
    }

    /// The post-upgrade steps, then the end.
    async fn after_retire(&mut self, mut kinds: Vec<EventKind>) -> Result<()> {
        self.run_steps(false, &mut kinds).await?;
        self.finish(Outcome::Succeeded, Vec::new(), kinds).await
    }

    /// Carrying out the retire's record failed. A journal failure stops the deployment as
    /// always; anything else ends it as failed: the retire is journalled, so it is not rolled
    /// back to the old version.
    async fn retire_failed(&mut self, e: Error) -> Result<()> {
        if is_journal_error(&e) || !self.state.old_retired {
            return Err(e);
        }
        let old = self.old_name();
        let reason = format!(
            "giving {} all traffic and retiring {old} at completion failed: {e}; no rollback \
             starts once the old version's retire is journalled: check the split, and retire \
             {old} by hand",
            self.state.to
        );
        self.finish(Outcome::Failed { reason }, Vec::new(), Vec::new())
            .await
    }
}
