//! Moving traffic: the blue-green switch plan, promotion, and rollback.

use serin_signals::Timestamp;
use serin_traffic::Next;

use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::state::{Effect, Outcome, Stage};

use super::{Runner, split_all};

impl Runner {
    /// One step of the blue-green switch: apply the plan's next split when it is due, or
    /// watch the triggers until it is.
    pub(super) async fn switch_tick(&mut self) -> Result<()> {
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
                    .min(self.state.observed_until.saturating_add(check))
                    .min(self.state.deadline);
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
            Next::AwaitApproval { .. } => {
                let check = self.state.config.monitoring.check_interval;
                let target = self
                    .state
                    .observed_until
                    .saturating_add(check)
                    .min(self.state.deadline);
                if !self.wait_until(target).await? {
                    return Ok(());
                }
                self.watch_tick().await
            }
        }
    }

    /// Gives the new version all traffic (scaling a canary track to full size first).
    pub(super) async fn promote(&mut self, mut kinds: Vec<EventKind>) -> Result<()> {
        let new = self.new_track();
        let Some(old) = self.old_track() else {
            return Err(Error::conflict(
                "promote",
                &self.state.id,
                "nothing runs before",
            ));
        };
        if let Some(full) = self.state.config.promotion_scale() {
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

    /// Gives the old version all traffic now and records why; the new track is retired by
    /// the rolling-back stage that follows.
    pub(super) async fn start_rollback(
        &mut self,
        reason: String,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
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

    /// Retires the new track after its drain and ends the deployment as rolled back.
    pub(super) async fn rolling_back(&mut self) -> Result<()> {
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
}
