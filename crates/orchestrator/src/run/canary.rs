//! The canary stage: each metrics window, the controller is fed both arms and its decision is
//! journalled and carried out; and the judges a deployment config asks for.

use std::time::Duration;

use serin_canary::controller::{Action, CanaryController, Decision, Phase, Step};
use serin_signals::{Metric, Timestamp, Track};

use crate::config::{ParityRole, ROBUST_BATCH_SPAN, human};
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::state::{AnyJudge, CanaryRun, DeploymentState, Effect};

use super::observe::triggers_named;
use super::{Runner, split_percent};

impl Runner {
    /// One metrics window of the canary stage: triggers first (they may roll back or hold),
    /// then the controller, fed both arms of every metric a judge reads.
    ///
    /// A promotion journalled as under way (the scale to full size is) is finished first:
    /// the controller has promoted, and is not asked again. So is a weight the controller set
    /// whose track was still growing for it (see [`move_weight`](Self::move_weight)), unless a
    /// pause or a rollback trigger's hold keeps it where it is: then the window below watches,
    /// and the first window that nothing holds puts the weight in force before the controller
    /// is asked for the next step; once `maxDeploymentDuration` has run out (a deployment
    /// resumed past it), it rolls back instead. A promotion waits, held as under a trigger's
    /// hold, while a rollback trigger has judged nothing of the new version since its arm began
    /// taking traffic.
    pub(super) async fn canary_tick(&mut self) -> Result<()> {
        if self.state.promoting {
            return self.finish_promotion(Vec::new()).await;
        }
        if self.pending_weight().is_some() && !self.state.paused && !self.triggers_hold(self.now())
        {
            // A deployment resumed once `maxDeploymentDuration` has run out (the raise waiting
            // for its track when the process stopped) rolls back first: the track may be
            // ready by now, and the weight would go in force only to be taken back at once.
            if self.past_deadline(self.now()) {
                return self.roll_back_at_deadline().await;
            }
            return self.move_weight(Vec::new(), true).await;
        }
        let window = self.state.config.canary_config.metrics_window;
        // Never past the deadline: a window (or its read delay) longer than what is left of the
        // deployment ends early, and the rollback below is not late.
        let target = self
            .read_at(self.state.observed_until.saturating_add(window))
            .min(self.state.deadline);
        if !self.wait_until(target).await? {
            return Ok(());
        }
        let now = self.now();
        if self.past_deadline(now) {
            return self.roll_back_at_deadline().await;
        }
        let Some((mut controller, run, kinds)) = self.read_canary_window(now).await? else {
            return Ok(());
        };
        if self.state.paused || self.triggers_hold(now) {
            return self.judge_held(controller, run, kinds, now).await;
        }
        if self.pending_weight().is_some() {
            self.state.canary = Some(store(controller, run.last_reason));
            return self.move_weight(kinds, true).await;
        }
        let unfed = self.promotion_unfed();
        if !unfed.is_empty() && controller.clone().tick(now).action == Action::Promote {
            let mut kinds = kinds;
            kinds.extend(self.promotion_waits_said(unfed));
            return self.judge_held(controller, run, kinds, now).await;
        }
        let decision = controller.tick(now);
        self.act_on(controller, decision, &run.last_reason, kinds, true)
            .await
    }

    /// Reads the canary's window due at `now`, feeds it to the rollback triggers and then to
    /// the judges (told the split the window came from: a raised weight waiting for its track
    /// is not in force yet), and gives back the controller fed, its run as journalled and the
    /// events so far; `None` once a trigger's rollback or a read that found nothing has been
    /// answered.
    async fn read_canary_window(
        &mut self,
        now: Timestamp,
    ) -> Result<Option<(CanaryController<AnyJudge>, CanaryRun, Vec<EventKind>)>> {
        let Some(observed) = self.observe(now).await else {
            self.serve_waiting().await?;
            return Ok(None);
        };
        let (mut kinds, rollback, _) = self.feed_triggers(&observed, now);
        if let Some(reason) = rollback {
            self.roll_back(reason, kinds).await?;
            return Ok(None);
        }
        let Some(run) = self.state.canary.clone() else {
            return Err(Error::conflict(
                "analyse",
                &self.state.id,
                "no canary analysis state",
            ));
        };
        let mut controller = controller_of(run.clone())?;
        let in_force = self.state.weight.round().clamp(0.0, 100.0) as u8;
        // Every metric first, then one decision for the window: each decision's action must be
        // carried out, so a weight set while feeding one metric must not hide behind the next.
        for (metric, b, c) in &observed.metrics {
            if reads(&controller, metric)
                && let Err(e) = controller.feed_in_force(b, c, in_force, now)
            {
                kinds.push(EventKind::Anomaly {
                    source: "canary".into(),
                    severity: "info".into(),
                    summary: format!("observation of {metric} not usable: {e}"),
                });
            }
        }
        Ok(Some((controller, run, kinds)))
    }

    /// Decides on a window read while the canary is held where it is (an operator's pause, a
    /// rollback trigger's hold, a raised weight waiting for its track): it keeps its traffic
    /// and its analysis, the judges see the window, and a failure that rolls back does so now.
    /// Nothing else moves.
    async fn judge_held(
        &mut self,
        mut controller: CanaryController<AnyJudge>,
        run: CanaryRun,
        kinds: Vec<EventKind>,
        now: Timestamp,
    ) -> Result<()> {
        let decision = controller.tick_held(now);
        if decision.action == Action::Rollback {
            // Boxed: a rollback waits for nothing, but `act_on` may wait for a track to grow,
            // and that wait judges its windows here.
            return Box::pin(self.act_on(controller, decision, &run.last_reason, kinds, true))
                .await;
        }
        self.state.canary = Some(store(controller, run.last_reason));
        self.commit(Vec::new(), kinds).await
    }

    /// One canary window read while a raised weight waits for its track to grow (see
    /// [`move_weight`](Self::move_weight)): judged as a held window, so a canary that fails
    /// meanwhile is rolled back rather than raised once the track is ready.
    pub(super) async fn canary_window_while_growing(&mut self) -> Result<()> {
        let now = self.now();
        let Some((controller, run, kinds)) = self.read_canary_window(now).await? else {
            return Ok(());
        };
        self.judge_held(controller, run, kinds, now).await
    }

    /// Journals and carries out a canary controller's decision taken outside a metrics window:
    /// an operator's resume that ends an indefinite pause step, or the stage's first step.
    ///
    /// A resume ends the operator's pause; it does not override what else keeps the rollout
    /// where it is. While a rollback trigger holds (a safety signal: a breach at the hold
    /// level, or no usable data), or while the weight the controller set last is not in force
    /// yet (its track is still growing for it), the decision is not carried out: the pause step
    /// is journalled as ended, the weight stays where it is, and an analysis result says why.
    /// The first window that nothing holds takes the next step, as Argo Rollouts' resume
    /// clears a pause condition without letting a step through an abort or an inconclusive
    /// analysis. Only what moves traffic waits (a weight, the promotion): a rollback, a hold
    /// and a `setCanaryScale` step are carried out whatever holds.
    pub(super) async fn carry_out(
        &mut self,
        controller: CanaryController<AnyJudge>,
        decision: Decision,
        previous_reason: &str,
        kinds: Vec<EventKind>,
    ) -> Result<()> {
        if matches!(decision.action, Action::SetWeight(_) | Action::Promote)
            && let Some(why) = self.kept_in_place(self.now())
        {
            return self.hold_after_resume(why, kinds).await;
        }
        let unfed = self.promotion_unfed();
        if decision.action == Action::Promote && !unfed.is_empty() {
            let why = format!(
                "{} judged nothing of {} yet",
                triggers_named(&unfed),
                self.state.to.version
            );
            let mut kinds = kinds;
            kinds.extend(self.promotion_waits_said(unfed));
            return self.hold_after_resume(why, kinds).await;
        }
        self.act_on(controller, decision, previous_reason, kinds, false)
            .await
    }

    /// The rollback triggers of the new version that have judged nothing of it since its arm
    /// began taking traffic: a promotion on their silence (a latency threshold over a source
    /// without latency) would be one on missing evidence, so it waits, held where it is while
    /// the judges go on, until they have data or `maxDuration` rolls back. Once there are none,
    /// the next wait is said afresh.
    fn promotion_unfed(&mut self) -> Vec<String> {
        let since = self.state.canary_traffic_since.unwrap_or(Timestamp::EPOCH);
        let unfed = self.triggers_without_data(since);
        if unfed.is_empty() {
            self.unfed_told = Default::default();
        }
        unfed
    }

    /// What says, once, that the promotion waits for `unfed` triggers.
    fn promotion_waits_said(&mut self, unfed: Vec<String>) -> Option<EventKind> {
        self.unfed_said(
            unfed,
            "the promotion waits",
            "the canary is promoted once data comes, or rolled back at canaryConfig.maxDuration",
        )
    }

    /// What keeps the canary from taking its next step at `now`, if anything: a pause, a
    /// weight set but not yet in force, a rollback trigger's hold.
    pub(super) fn kept_in_place(&self, now: serin_signals::Timestamp) -> Option<String> {
        if self.state.paused {
            return Some("the deployment is paused".into());
        }
        if let Some(w) = self.pending_weight() {
            return Some(format!(
                "the weight the controller set last, {w}%, is not in force yet (every \
                 instance of the canary track must be ready for it first)"
            ));
        }
        if self.triggers_hold(now) {
            let ids = self.holding_triggers(now);
            return Some(if ids.is_empty() {
                "a rollback trigger holds".into()
            } else {
                let ids: Vec<String> = ids.iter().map(|id| format!("`{id}`")).collect();
                format!("rollback trigger {} holds", ids.join(", "))
            });
        }
        None
    }

    /// Keeps the canary where it is after a resume (see [`carry_out`](Self::carry_out)): the
    /// controller as journalled before the resume, its indefinite pause step marked as ended if
    /// it is at one, held at `now`. A judge's failure that rolls back still does.
    ///
    /// A pause step whose weight before it is not in force yet has not begun, so a resume
    /// then (one that lifts an operator's pause while the track grew) does not end it: it
    /// waits for its own resume once the weight is in force, as Argo Rollouts adds a pause
    /// step's condition only once the rollout reaches it.
    pub(super) async fn hold_after_resume(
        &mut self,
        why: String,
        mut kinds: Vec<EventKind>,
    ) -> Result<()> {
        let now = self.now();
        let Some(run) = self.state.canary.clone() else {
            return Err(Error::conflict(
                "resume",
                &self.state.id,
                "no canary analysis state",
            ));
        };
        let last_reason = run.last_reason.clone();
        let at_pause = self.pending_weight().is_none()
            && matches!(
                run.policy.steps.get(run.controller.step()),
                Some(Step::Pause(p)) if p.duration.is_none()
            );
        let mut c = controller_of(run)?;
        if at_pause {
            c.end_pause();
        }
        let mut decision = c.tick_held(now);
        if decision.action == Action::Rollback {
            return self.act_on(c, decision, &last_reason, kinds, false).await;
        }
        let what = if at_pause {
            "the pause step is over"
        } else {
            "nothing moves yet"
        };
        decision.reason = format!(
            "{what}, but {why}: the next step waits, and the new version keeps {}% of traffic, \
             until that ends",
            self.state.weight
        );
        let reason = decision.reason.clone();
        kinds.push(EventKind::AnalysisResult { decision });
        self.state.canary = Some(store(c, reason));
        self.commit(Vec::new(), kinds).await
    }

    /// The weight the canary controller set that is not in force yet: its track is growing
    /// (or getting ready) for it (see [`move_weight`](Self::move_weight)), or a pause came
    /// while it did.
    pub(super) fn pending_weight(&self) -> Option<u8> {
        let c = &self.state.canary.as_ref()?.controller;
        (c.phase() == Phase::Progressing && f64::from(c.weight()) != self.state.weight)
            .then_some(c.weight())
    }

    /// Puts in force the weight the canary controller set ([`pending_weight`]).
    ///
    /// When the canary's size follows its weight (`setCanaryScale: matchTrafficWeight`) and the
    /// weight rises, the track grows first and takes the new share only once every instance
    /// is ready, as Argo Rollouts sets a step's weight only once the canary ReplicaSet is
    /// available at its size for that weight: traffic never reaches instances still starting.
    /// The scale is journalled with the split in force and the start of the wait
    /// ([`readiness_since`](crate::DeploymentState::readiness_since)), so a restart during
    /// the wait finishes it within what is left of `readinessTimeout`. The wait serves
    /// commands (an abort rolls back, a promote promotes); an instance that dies or a track
    /// not ready by `readinessTimeout` fails the stage (a rollback), and the deadline rolls
    /// back. A pause or a rollback trigger's hold that comes during the wait keeps the weight
    /// where it is until it ends. A raise still waiting when the canary's `maxDuration` runs
    /// out is not put in force: the controller rolls back for it instead. A falling weight is
    /// applied first, and the track shrinks after, so the instances that stay never carry the
    /// old share. A raise whose track keeps its size waits in the same way when an instance of
    /// it is not ready (or died) since it came up, as Argo Rollouts keeps the previous weight
    /// while the canary ReplicaSet is not fully available.
    ///
    /// Without `wait` (an operator's resume, answered once the scale is journalled and carried
    /// out, not up to `readinessTimeout` later), the wait and the weight are left to the
    /// stage's next window, as if a restart came after the scale.
    ///
    /// [`pending_weight`]: Self::pending_weight
    async fn move_weight(&mut self, mut kinds: Vec<EventKind>, wait: bool) -> Result<()> {
        let Some(w) = self.pending_weight() else {
            return self.commit(Vec::new(), kinds).await;
        };
        let new = self.new_track();
        let old = self.old_track().unwrap_or(Track::Stable);
        let scale = self
            .state
            .canary_scale_follows_weight
            .then(|| Effect::Scale {
                track: new.clone(),
                instances: self.share_of_full(w),
            });
        let rising = f64::from(w) > self.state.weight;
        if rising && (scale.is_some() || !self.all_ready_now().await) {
            if self.state.readiness_since.is_none() {
                // With the split in force restated (idempotent): a resume from this record
                // waits under a known split.
                let current = self.state.weight.round().clamp(0.0, 100.0) as u8;
                let split = split_percent(&old, &new, current)?;
                self.state.readiness_since = Some(self.now());
                let effects = scale.iter().cloned().chain([Effect::Apply { split }]);
                self.commit(effects.collect(), std::mem::take(&mut kinds))
                    .await?;
            } else if !kinds.is_empty() {
                self.commit(Vec::new(), std::mem::take(&mut kinds)).await?;
            }
            if !wait {
                return Ok(());
            }
            let stage = self.state.stage;
            if !self.await_ready().await? || self.state.stage != stage || self.state.promoting {
                // An abort, a promotion or the deadline moved the deployment on.
                return Ok(());
            }
            self.state.readiness_since = None;
            if self.state.paused || self.triggers_hold(self.now()) {
                // The next window watches; the first that nothing holds applies the weight.
                return Ok(());
            }
        }
        // A wait left under way (by a restart, or a resume answered at once) is over.
        self.state.readiness_since = None;
        let now = self.now();
        if rising && self.past_max_duration(now) {
            // The canary's `maxDuration` ran out while the raise waited (for its track, a
            // pause, a hold): no weight moves to be taken back at once. The controller, asked
            // now, rolls back for it, as it would have at this window.
            let mut c = controller_of_state(&self.state)?;
            let last_reason = self
                .state
                .canary
                .as_ref()
                .map_or_else(String::new, |r| r.last_reason.clone());
            let decision = c.tick_held(now);
            return Box::pin(self.act_on(c, decision, &last_reason, kinds, false)).await;
        }
        self.set_weight(f64::from(w), now);
        kinds.push(self.weight_changed(f64::from(w)));
        let split = split_percent(&old, &new, w)?;
        let mut effects = vec![Effect::Apply { split }];
        if let Some(scale) = scale
            && !rising
        {
            effects.push(scale);
        }
        self.commit(effects, kinds).await
    }

    /// Journals and carries out a canary controller's decision; `wait`: a weight whose track
    /// must grow first is waited for here (see [`move_weight`](Self::move_weight)).
    async fn act_on(
        &mut self,
        controller: CanaryController<AnyJudge>,
        decision: Decision,
        previous_reason: &str,
        mut kinds: Vec<EventKind>,
        wait: bool,
    ) -> Result<()> {
        let changed = decision.reason != previous_reason || decision.action != Action::Hold;
        self.state.canary = Some(store(controller, decision.reason.clone()));
        let new = self.new_track();
        match decision.action {
            Action::Hold => {
                if changed {
                    kinds.push(EventKind::AnalysisResult { decision });
                }
                self.commit(Vec::new(), kinds).await
            }
            Action::SetWeight(_) => {
                kinds.push(EventKind::AnalysisResult { decision });
                self.move_weight(kinds, wait).await
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
                self.promote(kinds, false).await
            }
            Action::Rollback => {
                // The judge's evidence only when a judge's failure decided it: a deadline's
                // rollback is not explained by whichever judge comes first.
                let mut reason = decision.reason.clone();
                if let Some(e) = decision.decisive_evidence() {
                    reason = format!("{reason}: {}", e.summary);
                }
                let deadline = decision.severity.is_none() && self.past_max_duration(decision.at);
                kinds.push(EventKind::AnalysisResult { decision });
                if deadline {
                    let field = format!(
                        "canaryConfig.maxDuration ({})",
                        human(self.state.config.canary_config.max_duration)
                    );
                    kinds.push(self.deadline_reached(&field));
                }
                self.roll_back(reason, kinds).await
            }
        }
    }

    /// Whether the canary's `maxDuration` has run out at `now`, counted from the controller's
    /// first decision, as the controller counts it. A rollback no judge's failure decided is
    /// then the deadline's: the controller checks it before anything but a failure.
    fn past_max_duration(&self, now: Timestamp) -> bool {
        let Some(run) = &self.state.canary else {
            return false;
        };
        let Some(max) = run.policy.max_duration else {
            return false;
        };
        run.controller
            .started_at()
            .is_some_and(|s| now.saturating_duration_since(s) > max)
    }

    /// `percent` of the stable size (`blueGreenConfig.replicasPerEnv`), rounded up, at least 1.
    fn share_of_full(&self, percent: u8) -> u32 {
        let full = self.state.config.blue_green_config.replicas_per_env;
        (full
            .saturating_mul(u32::from(percent.min(100)))
            .div_ceil(100))
        .max(1)
    }
}

/// Whether the controller reads `metric`: a judge of it, pacing or the promotion gate.
fn reads(controller: &CanaryController<AnyJudge>, metric: &Metric) -> bool {
    let policy = controller.policy();
    controller
        .judges()
        .iter()
        .any(|j| serin_canary::judge::Judge::analyses(j, metric))
        || policy
            .pacing
            .as_ref()
            .is_some_and(|p| p.metrics().any(|m| m == metric))
        || policy
            .promotion
            .as_ref()
            .is_some_and(|g| &g.metric == metric)
}

pub(super) fn controller_of(run: CanaryRun) -> Result<CanaryController<AnyJudge>> {
    CanaryController::from_parts(run.policy, run.judges, run.controller)
        .map_err(|e| Error::invalid("journal.state.canary", "…", e.to_string()))
}

/// The canary controller journalled in `state`.
pub(super) fn controller_of_state(state: &DeploymentState) -> Result<CanaryController<AnyJudge>> {
    let run = state
        .canary
        .clone()
        .ok_or_else(|| Error::conflict("analyse", &state.id, "no canary analysis state"))?;
    controller_of(run)
}

pub(super) fn store(c: CanaryController<AnyJudge>, last_reason: String) -> CanaryRun {
    let (policy, judges, controller) = c.into_parts();
    CanaryRun {
        policy,
        judges,
        controller,
        last_reason,
    }
}

/// The judges `canaryConfig` asks for: the error-rate count test, and the latency test if
/// `judgeLatency`, sharing `alpha` equally; robust modes batch half a minute of observations,
/// and the default modes spread half of their prior on when a late regression began over the
/// observations of `maxDuration` (see `CountTestConfig::restart_horizon`). Then the
/// `parityJudges`, if any; with their role `instead`, the sequential judges are a dry run.
pub(crate) fn build_judges(config: &crate::config::DeploymentConfig) -> Result<Vec<AnyJudge>> {
    use serin_canary::sequential::{
        BatchCountConfig, CountMode, CountTestConfig, LatencyTestConfig, LatencyVariance,
        SequentialCountJudge, SequentialLatencyJudge,
    };
    use serin_canary::severity::SeverityBands;
    let c = &config.canary_config;
    let alpha = c.judge_alpha();
    // Observations span `metricsWindow` (validated to at least 100 ms), so a span of time is
    // this many of them.
    let window = c.metrics_window.as_secs_f64();
    let samples = |span: Duration| (span.as_secs_f64() / window).ceil().max(1.0) as u64;
    let min_samples = samples(ROBUST_BATCH_SPAN);
    let restart_horizon = samples(c.max_duration);
    let counts = if c.robust_judges {
        let mode = CountMode::Batched(BatchCountConfig {
            min_samples,
            ..BatchCountConfig::new(alpha).with_margin(c.error_rate_margin)
        });
        SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default())
    } else {
        let mode = CountMode::PerRequest(CountTestConfig {
            restart_horizon,
            ..CountTestConfig::new(alpha).with_margin(c.error_rate_margin)
        });
        SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default())
    };
    // `alpha` is validated before; what the test can still refuse is the margin.
    let mut judges = vec![AnyJudge::Counts(Box::new(counts.map_err(|e| {
        Error::invalid(
            "canaryConfig.errorRateMargin",
            c.error_rate_margin,
            e.to_string(),
        )
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
            let test = LatencyTestConfig {
                restart_horizon,
                ..LatencyTestConfig::new(alpha).with_margin(c.latency_margin)
            };
            SequentialLatencyJudge::with_config(Metric::Latency, test, SeverityBands::latency())
        };
        judges.push(AnyJudge::Latency(Box::new(latency.map_err(|e| {
            Error::invalid(
                "canaryConfig.latencyMargin",
                c.latency_margin,
                e.to_string(),
            )
        })?)));
    }
    if let Some(parity) = &c.parity_judges {
        if parity.role == ParityRole::Instead {
            judges = judges.into_iter().map(AnyJudge::dry_run).collect();
        }
        judges.extend(parity.judges("canaryConfig.parityJudges", c)?);
    }
    Ok(judges)
}

#[cfg(test)]
mod tests {
    use serin_canary::sequential::{CountMode, LatencyTestConfig, LatencyVariance};

    use super::*;
    use crate::config::{DeploymentConfig, StrategyKind};

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

    /// The default judges spread their late-regression prior over the canary's longest run,
    /// whatever the observation window.
    #[test]
    fn default_judges_look_for_late_regressions_over_the_longest_run() {
        for (window, samples) in [(1, 3_600), (7, 515), (30, 120), (3_600, 1), (7_200, 1)] {
            let (counts, latency) = modes(&config(false, window));
            let CountMode::PerRequest(t) = counts else {
                panic!("window {window}s: {counts:?}");
            };
            assert_eq!(t.restart_horizon, samples, "window {window}s");
            assert_eq!(latency.restart_horizon, samples, "window {window}s");
            assert_eq!((t.alpha, latency.alpha), (0.025, 0.025));
        }
        let mut c = config(false, 30);
        c.canary_config.max_duration = Duration::from_secs(4 * 3_600);
        let (CountMode::PerRequest(t), latency) = modes(&c) else {
            panic!("a per-request count judge");
        };
        assert_eq!((t.restart_horizon, latency.restart_horizon), (480, 480));
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
