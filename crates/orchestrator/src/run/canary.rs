//! The canary stage: each metrics window, the controller is fed both arms and its decision is
//! journalled and carried out; and the judges a deployment config asks for.

use std::time::Duration;

use serin_canary::controller::{Action, CanaryController, Decision};
use serin_signals::{Metric, Track};

use crate::config::ROBUST_BATCH_SPAN;
use crate::error::{Error, Result};
use crate::event::EventKind;
use crate::state::{AnyJudge, CanaryRun, DeploymentState, Effect};

use super::{Runner, split_percent};

impl Runner {
    /// One metrics window of the canary stage: triggers first (they may roll back or hold),
    /// then the controller, fed both arms of every metric a judge reads.
    ///
    /// A promotion journalled as under way (the scale to full size is) is finished first:
    /// the controller has promoted, and is not asked again.
    pub(super) async fn canary_tick(&mut self) -> Result<()> {
        if self.state.promoting {
            return self.finish_promotion(Vec::new()).await;
        }
        let window = self.state.config.canary_config.metrics_window;
        // Never past the deadline: a window longer than what is left of the deployment ends
        // early, and the rollback below is not late.
        let target = self
            .state
            .observed_until
            .saturating_add(window)
            .min(self.state.deadline);
        if !self.wait_until(target).await? {
            return Ok(());
        }
        let now = self.now();
        if self.past_deadline(now) {
            return self.roll_back(self.deadline_reason(), Vec::new()).await;
        }
        let observations = self.observe(now).await?;
        let (mut kinds, rollback, _) = self.feed_triggers(&observations, now).await;
        if let Some(reason) = rollback {
            return self.roll_back(reason, kinds).await;
        }
        let hold = self.triggers_hold(now);
        let Some(run) = self.state.canary.clone() else {
            return Err(Error::conflict(
                "analyse",
                &self.state.id,
                "no canary analysis state",
            ));
        };
        let mut controller = controller_of(run.clone())?;
        // Every metric first, then one decision for the window: each decision's action must be
        // carried out, so a weight set while feeding one metric must not hide behind the next.
        for (metric, b, c) in &observations {
            if reads(&controller, metric)
                && let Err(e) = controller.feed(b, c, now)
            {
                kinds.push(EventKind::Anomaly {
                    source: "canary".into(),
                    severity: "info".into(),
                    summary: format!("observation of {metric} not usable: {e}"),
                });
            }
        }
        if self.state.paused || hold {
            // Held where it is, the canary keeps its traffic and its analysis: the judges see
            // the window, and a failure that rolls back does so now. Nothing else moves.
            let decision = controller.tick_held(now);
            if decision.action == Action::Rollback {
                return self
                    .carry_out(controller, decision, &run.last_reason, kinds)
                    .await;
            }
            self.state.canary = Some(store(controller, run.last_reason));
            return self.commit(Vec::new(), kinds).await;
        }
        let decision = controller.tick(now);
        self.carry_out(controller, decision, &run.last_reason, kinds)
            .await
    }

    /// Journals and carries out a canary controller's decision.
    pub(super) async fn carry_out(
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
                let previous_weight = self.state.weight;
                let now = self.now();
                self.set_weight(f64::from(w), now);
                kinds.push(EventKind::AnalysisResult { decision });
                kinds.push(self.weight_changed(f64::from(w)));
                let split = split_percent(&old, &new, w)?;
                let mut effects = vec![Effect::Apply { split }];
                if self.state.canary_scale_follows_weight {
                    // Scale up before the weight rises, so the new share lands on enough
                    // instances (ready ones only: the platform gates readiness); scale down
                    // after it falls, so the instances that stay never carry the old share.
                    let scale = Effect::Scale {
                        track: new,
                        instances: self.share_of_full(w),
                    };
                    if f64::from(w) >= previous_weight {
                        effects.insert(0, scale);
                    } else {
                        effects.push(scale);
                    }
                }
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
                self.promote(kinds, false).await
            }
            Action::Rollback => {
                // The judge's evidence only when a judge's failure decided it: a deadline's
                // rollback is not explained by whichever judge comes first.
                let mut reason = decision.reason.clone();
                if let Some(e) = decision.decisive_evidence() {
                    reason = format!("{reason}: {}", e.summary);
                }
                kinds.push(EventKind::AnalysisResult { decision });
                self.roll_back(reason, kinds).await
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
}

/// Whether the controller reads `metric`: a judge of it, pacing or the promotion gate.
fn reads(controller: &CanaryController<AnyJudge>, metric: &Metric) -> bool {
    let policy = controller.policy();
    controller
        .judges()
        .iter()
        .any(|j| serin_canary::judge::Judge::metric(j) == metric)
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
/// observations of `maxDuration` (see `CountTestConfig::restart_horizon`).
pub(crate) fn build_judges(config: &crate::config::DeploymentConfig) -> Result<Vec<AnyJudge>> {
    use serin_canary::sequential::{
        BatchCountConfig, CountMode, CountTestConfig, LatencyTestConfig, LatencyVariance,
        SequentialCountJudge, SequentialLatencyJudge,
    };
    use serin_canary::severity::SeverityBands;
    let c = &config.canary_config;
    let n = if c.judge_latency { 2.0 } else { 1.0 };
    let alpha = c.alpha / n;
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
