//! `canaryConfig` and `canaryThresholds`: the canary's steps and judges, and the metric bounds
//! that become rollback triggers.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_canary::controller::{CanaryPolicy, OnInconclusive, Pacing, Pause, PromotionGate, Step};
use serin_signals::{Metric, Track};
use serin_traffic::Weight;
use serin_triggers::{
    Action as TriggerAction, Operator, Resource, ResourceUsageConfig, TriggerConfig,
};

use crate::error::{Error, Result};

use super::{ParityJudges, ParityRole, human, humantime_like, positive, replicas};

/// Canary settings (`canaryConfig`). Percentages are written as percent (`5` = 5%).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CanaryConfig {
    /// The first canary weight, in percent (`INITIAL_PERCENTAGE`). Default 5.
    pub initial_percentage: u8,
    /// The weight at which the canary is promoted, in percent. Default 100.
    pub target_percentage: u8,
    /// Percent added per step (`INCREMENT`). Default 10.
    pub increment_percentage: u8,
    /// How long each weight holds while it is judged (`PHASE_DURATION`). Default `5m`. Like
    /// every timed pause, it lasts whole `metricsWindow`s: the pause is over at the first
    /// window read at or after its end (`2m` read every `90s` holds `3m`).
    #[serde(with = "serin_signals::duration")]
    pub increment_interval: Duration,
    /// The longest the canary may run before it is rolled back. Default `1h`. It must be longer
    /// than the timed pauses together (`incrementInterval` once per weight below
    /// `targetPercentage`, or the explicit steps' pauses), each lasting whole
    /// `metricsWindow`s. The default
    /// sequential judges also spread half of their prior on when a late regression began over
    /// this span, so that a regression beginning at any moment of the run finds the same weight.
    #[serde(with = "serin_signals::duration")]
    pub max_duration: Duration,
    /// The span of each observation fed to the judges and triggers. Default `30s`.
    #[serde(with = "serin_signals::duration")]
    pub metrics_window: Duration,
    /// Explicit steps (Argo Rollouts' `setWeight`, `pause`, `analysis`), replacing the ones
    /// derived from the percentages above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Instances of the canary track (of a canary strategy), 1 to `TrackSpec::MAX_INSTANCES`
    /// (64). Default 1.
    pub replicas: u32,
    /// The judges' false-rollback bound. Default `0.05`.
    pub alpha: f64,
    /// Fail only if the canary's error rate exceeds `(1 + margin)` times the baseline's. Default
    /// `0.10`. Below 7 unless `robustJudges`: the per-request test weighs error-rate ratios up
    /// to 8.
    pub error_rate_margin: f64,
    /// Also judge latency (needs latency sketches from the metrics source). Default `false`.
    pub judge_latency: bool,
    /// Fail only if the canary's median latency exceeds `(1 + margin)` times the baseline's. Default `0.10`.
    pub latency_margin: f64,
    /// Judge with the robust modes of the sequential tests, for services whose error rate or
    /// latency wanders on its own in each track (a flaky dependency, retry storms, a median
    /// that drifts by a few percent from second to second): they estimate that wander from the
    /// scatter between batches of at least half a minute, so their false rollbacks stay under
    /// `alpha` where the default per-request tests' do not (with ±5% of per-track latency
    /// wander and a 50% canary weight, the default latency judge rolls back up to a quarter
    /// of good canaries even with its 10% margin), at the price of several batches (minutes)
    /// before any verdict. With `pacing`, its errors' gate takes the same robust mode
    /// (`pacing.robustBatch`, half a minute unless set), which holds the first raise until ten
    /// batches, each with 8 errors expected of each track, have closed: minutes at hundreds of
    /// requests a second, hours at a few (its hold reason says when they will have closed at
    /// the pace so far, and whether past `maxDuration`). It refuses `pacing.exposureBudget`,
    /// whose model is the default judges'. Default `false`.
    pub robust_judges: bool,
    /// How long a retired track drains in-flight requests, in a canary strategy (the
    /// blue-green strategies, with canary or not, drain for `blueGreenConfig.drain`). Default
    /// `10s`.
    #[serde(with = "serin_signals::duration")]
    pub drain: Duration,
    /// The canary is promoted only once its own error rate is shown below this fraction, with
    /// confidence `1 - alpha` however often it is checked (at 5%, about 93 requests without an
    /// error); until then it holds, up to `maxDuration`. This keeps a canary whose judges never
    /// had the data to fail it (scarce traffic) from being promoted. `1` turns the gate off.
    /// Default `0.05`.
    pub promotion_max_error_rate: f64,
    /// Power-aware pacing: raise the weight, and promote, only once the errors at the current
    /// weight rule out a regression of `detectableRatio` times the baseline's error rate (a
    /// version with it passes each raise with probability at most `beta`) and, with `latency`,
    /// once the latencies rule out a slowdown of `detectableShift`; optionally size the first
    /// weight to an `exposureBudget`. Off by default. Its `alpha` and `judgeMargin` are the
    /// error-rate judge's (`alpha`, halved with `judgeLatency`, and `errorRateMargin`): left
    /// out, they are set from them, and written otherwise they are refused.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
    /// What the canary does when an analysis step of `steps` ends without enough samples for a
    /// judge, or a judge has seen no data when the canary would be promoted: `hold` keeps it
    /// at its weight until an operator decides or `maxDuration` rolls it back, `rollback` rolls
    /// back at once. Never a promotion: missing evidence is no pass. Default `hold`.
    pub on_inconclusive: OnInconclusive,
    /// Argo Rollouts, Flagger and Kayenta analyses as written for them, judging beside the
    /// sequential judges (see [`ParityJudges`]). None by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parity_judges: Option<ParityJudges>,
}

impl Default for CanaryConfig {
    fn default() -> Self {
        CanaryConfig {
            initial_percentage: 5,
            target_percentage: 100,
            increment_percentage: 10,
            increment_interval: Duration::from_secs(300),
            max_duration: Duration::from_secs(3_600),
            metrics_window: Duration::from_secs(30),
            steps: None,
            replicas: 1,
            alpha: 0.05,
            error_rate_margin: 0.10,
            judge_latency: false,
            latency_margin: 0.10,
            robust_judges: false,
            drain: Duration::from_secs(10),
            promotion_max_error_rate: 0.05,
            pacing: None,
            on_inconclusive: OnInconclusive::default(),
            parity_judges: None,
        }
    }
}

/// The shortest span of a robust judge's batch: long enough for an error rate's or a latency's
/// own wander to average out within it (see `BatchCountConfig::min_samples` and
/// `LatencyTestConfig::min_samples`, whose defaults are this span of per-second samples), and
/// of the robust errors' gate's batches (`Pacing::robust_batch`).
pub(crate) const ROBUST_BATCH_SPAN: Duration = Duration::from_secs(30);

impl CanaryConfig {
    /// The canary controller's policy: the explicit steps, or `initial`, `initial + increment`,
    /// ... below `target`, each followed by a pause of `incrementInterval` during which the
    /// judges watch; promotion at `target`. With `robustJudges`, pacing's errors' gate is
    /// robust too.
    pub fn policy(&self) -> Result<CanaryPolicy> {
        let steps = match &self.steps {
            Some(steps) => steps.clone(),
            None => {
                let mut steps = Vec::new();
                let mut w = self.initial_percentage;
                while w < self.target_percentage {
                    steps.push(Step::SetWeight(w));
                    steps.push(Step::Pause(Pause {
                        duration: Some(self.increment_interval),
                    }));
                    w = w.saturating_add(self.increment_percentage.max(1));
                }
                steps
            }
        };
        let mut policy = CanaryPolicy::new(steps);
        policy.max_duration = Some(self.max_duration);
        policy.on_inconclusive = self.on_inconclusive;
        policy.pacing = match &self.pacing {
            Some(p) => Some(self.paced_by_the_judges(p.clone())?),
            None => None,
        };
        if self.promotion_max_error_rate < 1.0 {
            policy.promotion = Some(
                PromotionGate::new(self.promotion_max_error_rate, self.alpha).map_err(|e| {
                    Error::invalid(
                        "canaryConfig.promotionMaxErrorRate",
                        self.promotion_max_error_rate,
                        e.to_string(),
                    )
                })?,
            );
        }
        policy.validate().map_err(|e| match self.steps {
            // Written steps are named as the file writes them (`canaryConfig.steps[2]`).
            Some(_) => super::parity::relocate(e, "canaryConfig"),
            None => Error::invalid("canaryConfig.steps", "…", e.to_string()),
        })?;
        Ok(policy)
    }

    /// Checks written `steps` when a config is loaded (not when one is read back from a
    /// journal: a deployment started before these rules resumes and ends as it would have).
    /// They must take the canary to a weight strictly between 0% and 100%, where both arms
    /// serve traffic for the judges to compare; and the fields from which steps are derived
    /// must be left as they are, since written steps replace them.
    pub(super) fn check_written_steps(&self) -> Result<()> {
        let Some(steps) = &self.steps else {
            return Ok(());
        };
        if !steps
            .iter()
            .any(|s| matches!(s, Step::SetWeight(w) if *w > 0 && *w < 100))
        {
            return Err(Error::invalid(
                "canaryConfig.steps",
                steps.len(),
                "needs a setWeight strictly between 0 and 100: the judges compare the canary \
                 with the baseline, and at 0% the canary serves nothing, at 100% the baseline \
                 nothing, so no evidence could ever promote it",
            ));
        }
        let default = CanaryConfig::default();
        for (field, written, unset) in [
            (
                "initialPercentage",
                self.initial_percentage.to_string(),
                default.initial_percentage.to_string(),
            ),
            (
                "incrementPercentage",
                self.increment_percentage.to_string(),
                default.increment_percentage.to_string(),
            ),
            (
                "targetPercentage",
                self.target_percentage.to_string(),
                default.target_percentage.to_string(),
            ),
            (
                "incrementInterval",
                human(self.increment_interval),
                human(default.increment_interval),
            ),
        ] {
            if written != unset {
                return Err(Error::invalid(
                    format!("canaryConfig.{field}"),
                    written,
                    "has no effect: canaryConfig.steps are written, and replace the steps \
                     derived from it; write the weights and pauses in steps, or remove steps",
                ));
            }
        }
        Ok(())
    }

    /// The timed pauses of the policy together, as they run: what every canary sits through,
    /// however good (an analysis step may end early, an indefinite pause waits for an
    /// operator). A pause is over at the first metrics window read at or after its end, and
    /// the windows run back to back from the canary's first step, so each pause lasts a whole
    /// number of `metricsWindow`s (a 2m pause read every 90s lasts 3m).
    pub(super) fn timed_pauses(&self) -> Result<Duration> {
        Ok(self
            .pauses()?
            .into_iter()
            .map(|d| whole_windows(d, self.metrics_window))
            .fold(Duration::ZERO, Duration::saturating_add))
    }

    /// The analysis steps' durations together, as written: how long they run at least while
    /// a judge has not passed (an analysis step ends early only once every judge passes).
    pub(super) fn analysis_steps(&self) -> Result<Duration> {
        Ok(self
            .policy()?
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Analysis(a) => Some(a.duration),
                _ => None,
            })
            .fold(Duration::ZERO, Duration::saturating_add))
    }

    /// The timed pauses of the policy, as written.
    fn pauses(&self) -> Result<Vec<Duration>> {
        Ok(self
            .policy()?
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::Pause(Pause { duration: Some(d) }) => Some(*d),
                _ => None,
            })
            .collect())
    }

    /// Where the timed pauses come from, for errors: the explicit steps, or
    /// `incrementInterval` once per derived weight (each field that sets how many named, so
    /// that an error names the one a user, or an environment variable, changed), and the
    /// window they last whole numbers of when one of them is not one.
    pub(super) fn pauses_field(&self) -> Result<String> {
        let mut from = if self.steps.is_some() {
            "canaryConfig.steps".to_owned()
        } else {
            "canaryConfig.incrementInterval, once for each weight from \
             canaryConfig.initialPercentage by canaryConfig.incrementPercentage to \
             canaryConfig.targetPercentage"
                .to_owned()
        };
        if self
            .pauses()?
            .into_iter()
            .any(|d| whole_windows(d, self.metrics_window) != d)
        {
            from.push_str(&format!(
                ", each pause lasting whole canaryConfig.metricsWindows of {}",
                human(self.metrics_window)
            ));
        }
        Ok(from)
    }

    /// The `α` of each judge: `alpha`, shared equally by the error-rate judge and, with
    /// `judgeLatency`, the latency judge.
    pub(crate) fn judge_alpha(&self) -> f64 {
        if self.judge_latency {
            self.alpha / 2.0
        } else {
            self.alpha
        }
    }

    /// `pacing` told what it must know of the error-rate judge to model how soon it catches a
    /// regression: its `α` and margin, which this config sets (`alpha`, `errorRateMargin`),
    /// so pacing's own `alpha` and `judgeMargin` are left out or equal them; robust judges
    /// batch half a minute of errors.
    fn paced_by_the_judges(&self, mut p: Pacing) -> Result<Pacing> {
        let default = Pacing::default();
        for (field, written, unset, judges, from) in [
            (
                "alpha",
                p.alpha,
                default.alpha,
                self.judge_alpha(),
                "canaryConfig.alpha",
            ),
            (
                "judgeMargin",
                p.judge_margin,
                default.judge_margin,
                self.error_rate_margin,
                "canaryConfig.errorRateMargin",
            ),
        ] {
            if written != unset && written != judges {
                return Err(Error::invalid(
                    format!("canaryConfig.pacing.{field}"),
                    written,
                    format!(
                        "is the error-rate judge's, {judges} from {from}{}: leave it out",
                        if field == "alpha" && self.judge_latency {
                            ", halved as the latency judge shares it"
                        } else {
                            ""
                        }
                    ),
                ));
            }
        }
        p.alpha = self.judge_alpha();
        p.judge_margin = self.error_rate_margin;
        if self.robust_judges && p.detectable_ratio.is_some() {
            p.robust_batch = p.robust_batch.or(Some(ROBUST_BATCH_SPAN));
        }
        Ok(p)
    }

    /// Pacing's refusal, named by the field the file writes: pacing's own settings by their
    /// path (`canaryConfig.pacing.detectableRatio`), and its `judgeMargin`, which is the
    /// error-rate judge's, by `canaryConfig.errorRateMargin`, which sets it.
    fn pacing_refused(&self, e: serin_canary::Error) -> Error {
        match super::parity::relocate(e, "canaryConfig") {
            Error::InvalidField { field, reason, .. }
                if field == "canaryConfig.pacing.judgeMargin" =>
            {
                Error::invalid(
                    "canaryConfig.errorRateMargin",
                    self.error_rate_margin,
                    format!("is pacing's judgeMargin too, and {reason}"),
                )
            }
            other => other,
        }
    }

    /// Checks that `router`, which takes weights only in multiples of `granularity`, can take
    /// every weight the canary sets from step `from` on (0 at the start, the current step on a
    /// resume): the router would refuse one off it only once the new track is up. The error
    /// names the field the weight comes from, the step and the weight. An exposure budget,
    /// which sizes in whole percents as the canary runs every raise from 0% (the first weight,
    /// and a first weight again after a step back to 0%), needs a router of whole percents
    /// while such a raise is still to come.
    pub(crate) fn check_granularity(
        &self,
        granularity: Weight,
        router: &str,
        from: usize,
    ) -> Result<()> {
        let fits =
            |percent: u8| (u32::from(percent) * 100).is_multiple_of(u32::from(granularity.bps()));
        let cannot = format!(
            "router `{router}` takes weights only in multiples of its granularity {granularity} \
             and would refuse it once the new track is up; choose weights on that granularity"
        );
        let policy = self.policy()?;
        let weights = || {
            (policy.steps.iter().enumerate()).filter_map(|(i, s)| match s {
                Step::SetWeight(w) => Some((i, *w)),
                _ => None,
            })
        };
        let off = weights()
            .skip_while(|(i, _)| *i < from)
            .find(|(_, w)| !fits(*w));
        if let Some((i, w)) = off {
            // Without explicit steps, the first weight is `initialPercentage` and each later
            // one adds `incrementPercentage`.
            let first = weights().next().map(|(first, _)| first);
            let (field, value) = match &self.steps {
                Some(_) => (format!("canaryConfig.steps[{i}].setWeight"), w),
                None if first == Some(i) => (
                    "canaryConfig.initialPercentage".to_owned(),
                    self.initial_percentage,
                ),
                None => (
                    "canaryConfig.incrementPercentage".to_owned(),
                    self.increment_percentage,
                ),
            };
            return Err(Error::invalid(
                field,
                value,
                format!("step {i} sets the canary's weight to {w}%, but {cannot}"),
            ));
        }
        // Pacing sizes every raise from 0% by the budget, not only the rollout's first: a step
        // back to 0% exposes users afresh, and the raise after it is paced as the first one is.
        let sized = weights().find(|(i, w)| *i >= from && *w > 0 && policy.weight_before(*i) == 0);
        match self.pacing.as_ref().and_then(|p| p.exposure_budget) {
            Some(budget)
                if !fits(1)
                    && let Some((i, w)) = sized =>
            {
                Err(Error::invalid(
                    "canaryConfig.pacing.exposureBudget",
                    budget,
                    format!(
                        "sizes the canary's weight in whole percents on its raise from 0% \
                         (step {i}, to {w}%), but {cannot}"
                    ),
                ))
            }
            _ => Ok(()),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let path = "canaryConfig";
        for (name, v) in [
            ("initialPercentage", self.initial_percentage),
            ("targetPercentage", self.target_percentage),
        ] {
            if v == 0 || v > 100 {
                return Err(Error::invalid(
                    format!("{path}.{name}"),
                    v,
                    "must be a percentage in 1..=100",
                ));
            }
        }
        if self.steps.is_none() && self.initial_percentage >= self.target_percentage {
            return Err(Error::invalid(
                format!("{path}.initialPercentage"),
                self.initial_percentage,
                format!(
                    "must be below targetPercentage ({}): the canary is promoted on reaching it",
                    self.target_percentage
                ),
            ));
        }
        if self.increment_percentage == 0 || self.increment_percentage > 100 {
            return Err(Error::invalid(
                format!("{path}.incrementPercentage"),
                self.increment_percentage,
                "must be a percentage in 1..=100",
            ));
        }
        positive(
            &format!("{path}.incrementInterval"),
            self.increment_interval,
        )?;
        positive(&format!("{path}.maxDuration"), self.max_duration)?;
        positive(&format!("{path}.metricsWindow"), self.metrics_window)?;
        if self.metrics_window < Duration::from_millis(100) {
            return Err(Error::invalid(
                format!("{path}.metricsWindow"),
                humantime_like(self.metrics_window),
                "must be at least 100ms",
            ));
        }
        replicas(&format!("{path}.replicas"), self.replicas)?;
        if !(self.alpha > 0.0 && self.alpha < 1.0) {
            return Err(Error::invalid(
                format!("{path}.alpha"),
                self.alpha,
                "must be a fraction strictly between 0 and 1",
            ));
        }
        if !(self.promotion_max_error_rate > 0.0 && self.promotion_max_error_rate <= 1.0) {
            return Err(Error::invalid(
                format!("{path}.promotionMaxErrorRate"),
                self.promotion_max_error_rate,
                "must be a fraction in (0, 1] (0.05 = 5%; 1 turns the gate off)",
            ));
        }
        if let Some(p) = &self.pacing {
            // Checked as it will run, told the judges' alpha and margin: a margin that pacing
            // cannot work with is refused here, where the field that sets it is known, rather
            // than by the policy later under a path the file does not write.
            self.paced_by_the_judges(p.clone())?
                .validate(&format!("{path}.pacing"))
                .map_err(|e| self.pacing_refused(e))?;
            if let Some(budget) = p.exposure_budget.filter(|_| self.robust_judges) {
                return Err(Error::invalid(
                    format!("{path}.pacing.exposureBudget"),
                    budget,
                    "cannot be kept with robustJudges: the budget models how soon the default \
                     judges catch a regression, and the robust judges first need four or more \
                     batches with 8 errors expected of each track, which at a 0.5% error rate \
                     take thousands of canary requests whatever the load",
                ));
            }
            let instead = self
                .parity_judges
                .as_ref()
                .is_some_and(|j| j.role == ParityRole::Instead);
            if let Some(budget) = p.exposure_budget.filter(|_| instead) {
                return Err(Error::invalid(
                    format!("{path}.pacing.exposureBudget"),
                    budget,
                    "cannot be kept with parityJudges.role `instead`: the budget models how \
                     soon the sequential judges catch a regression, and they are then a dry run",
                ));
            }
        }
        for (name, v) in [
            ("errorRateMargin", self.error_rate_margin),
            ("latencyMargin", self.latency_margin),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::invalid(
                    format!("{path}.{name}"),
                    v,
                    "must be a finite fraction of at least 0",
                ));
            }
        }
        // A derived phase is checked by the field it comes from, before the policy names it
        // by a step the file does not write.
        if self.steps.is_none() && self.increment_interval >= self.max_duration {
            return Err(Error::invalid(
                format!("{path}.incrementInterval"),
                human(self.increment_interval),
                format!(
                    "must be shorter than {path}.maxDuration ({}): the canary would be rolled \
                     back before its first phase ran its course; lower incrementInterval or \
                     raise maxDuration",
                    human(self.max_duration)
                ),
            ));
        }
        // The whole policy, as the deployment will run it: a step that cannot run its course
        // within `maxDuration`, say, is refused when the config is loaded, not when the plan
        // is made. The policy checks each step's wait against `maxDuration`; the timed pauses,
        // which every rollout sits through (an analysis step may end early, when its judges
        // pass), must fit together too, or every canary, however good, is rolled back before
        // its last step, after taking most of the traffic (5% steps of 5m need 95m).
        let paused = self.timed_pauses()?;
        if paused >= self.max_duration {
            return Err(Error::invalid(
                format!("{path}.maxDuration"),
                human(self.max_duration),
                format!(
                    "must be longer than the canary's timed pauses together ({}, from {}): the \
                     canary would be rolled back before its last step ran its course; raise \
                     maxDuration, or plan fewer or shorter pauses",
                    human(paused),
                    self.pauses_field()?
                ),
            ));
        }
        if let Some(steps) = &self.steps
            && !steps
                .iter()
                .any(|s| matches!(s, Step::Pause(_) | Step::Analysis(_)))
        {
            return Err(Error::invalid(
                format!("{path}.steps"),
                steps.len(),
                "needs at least one pause or analysis step: a canary that is never watched is \
                 never judged",
            ));
        }
        Ok(())
    }
}

/// Custom metric bounds (`canaryThresholds.customMetricThresholds.<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bounds {
    /// Roll back above this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Roll back below this value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
}

/// Absolute limits on the canary arm (`canaryThresholds`), each watched by a rollback trigger.
///
/// Each acts on one breaching check: a limit is a bound the canary must never cross, so,
/// unlike the monitoring thresholds (held for `monitoring.consecutiveFailures` checks), it does
/// not wait for the breach to last.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CanaryThresholds {
    /// Highest error rate, as a fraction (`0.05` = 5%; `MAX_ERROR_RATE`, `CANARY_ERROR_RATE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Highest p99 latency in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_latency: Option<f64>,
    /// Lowest throughput in requests per second (warns only: low traffic is not a regression).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_throughput: Option<f64>,
    /// Highest CPU usage, in percent of `cpuCapacity` (`95` = 95%), as the brief writes CPU
    /// utilization. Needs `cpuCapacity`: the `cpu` gauge reports cores.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_usage: Option<f64>,
    /// The canary track's CPU that `maxCpuUsage` is a percentage of, in cores (its limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_capacity: Option<f64>,
    /// Highest memory usage, in percent of `memoryCapacity` (`85` = 85%), as the brief writes
    /// memory utilization. Needs `memoryCapacity`: the `memory` gauge reports bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_usage: Option<f64>,
    /// The canary track's memory that `maxMemoryUsage` is a percentage of, in bytes (its limit).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_capacity: Option<f64>,
    /// Bounds on custom metrics, by metric name.
    pub custom_metric_thresholds: BTreeMap<String, Bounds>,
}

impl CanaryThresholds {
    pub(super) fn validate(&self) -> Result<()> {
        let path = "canaryThresholds";
        // The trigger fires above it, and no error rate is above 1.
        if let Some(v) = self.max_error_rate
            && !(v > 0.0 && v < 1.0)
        {
            return Err(Error::invalid(
                format!("{path}.maxErrorRate"),
                v,
                "must be a fraction in (0, 1) (0.05 = 5%): no error rate exceeds 1",
            ));
        }
        for (name, v) in [
            ("maxLatency", self.max_latency),
            ("minThroughput", self.min_throughput),
        ] {
            if let Some(v) = v
                && !(v.is_finite() && v > 0.0)
            {
                return Err(Error::invalid(
                    format!("{path}.{name}"),
                    v,
                    "must be a finite number above 0",
                ));
            }
        }
        for (usage, max, capacity, unit) in [
            ("Cpu", self.max_cpu_usage, self.cpu_capacity, "cores"),
            (
                "Memory",
                self.max_memory_usage,
                self.memory_capacity,
                "bytes",
            ),
        ] {
            resource_limit(usage, max, capacity, unit)?;
        }
        for (name, b) in &self.custom_metric_thresholds {
            let p = format!("{path}.customMetricThresholds.{name}");
            Metric::named(name).map_err(|e| Error::invalid(&p, name, e.to_string()))?;
            if b.max.is_none() && b.min.is_none() {
                return Err(Error::invalid(&p, "{}", "set max, min or both"));
            }
            for v in [b.max, b.min].into_iter().flatten() {
                if !v.is_finite() {
                    return Err(Error::invalid(&p, v, "bounds must be finite"));
                }
            }
            if let (Some(max), Some(min)) = (b.max, b.min)
                && min > max
            {
                return Err(Error::invalid(
                    format!("{p}.min"),
                    min,
                    format!("must not exceed max ({max})"),
                ));
            }
        }
        Ok(())
    }

    /// The rollback triggers these limits stand for, watching `track`; each acts on the first
    /// breaching check.
    pub(super) fn triggers(&self, track: &Track) -> Vec<TriggerConfig> {
        let mut out = Vec::new();
        let mut push = |id: String, metric: Metric, op: Operator, value: f64, action| {
            out.push(threshold_trigger(
                id,
                track,
                metric,
                op,
                value,
                action,
                Duration::ZERO,
            ));
        };
        if let Some(v) = self.max_error_rate {
            push(
                "canary-max-error-rate".into(),
                Metric::ErrorRate,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
            );
        }
        if let Some(v) = self.max_latency {
            push(
                "canary-max-latency".into(),
                Metric::Latency,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
            );
        }
        if let Some(v) = self.min_throughput {
            push(
                "canary-min-throughput".into(),
                Metric::Throughput,
                Operator::Lt,
                v,
                TriggerAction::Warn,
            );
        }
        for (name, b) in &self.custom_metric_thresholds {
            let Ok(metric) = Metric::named(name) else {
                continue;
            };
            if let Some(max) = b.max {
                push(
                    format!("canary-{name}-max"),
                    metric.clone(),
                    Operator::Gt,
                    max,
                    TriggerAction::Rollback,
                );
            }
            if let Some(min) = b.min {
                push(
                    format!("canary-{name}-min"),
                    metric,
                    Operator::Lt,
                    min,
                    TriggerAction::Rollback,
                );
            }
        }
        for (id, resource, max, capacity) in [
            (
                "canary-max-cpu",
                Resource::Cpu,
                self.max_cpu_usage,
                self.cpu_capacity,
            ),
            (
                "canary-max-memory",
                Resource::Memory,
                self.max_memory_usage,
                self.memory_capacity,
            ),
        ] {
            if let (Some(percent), Some(capacity)) = (max, capacity) {
                out.push(TriggerConfig::ResourceUsage(ResourceUsageConfig {
                    id: id.into(),
                    track: track.clone(),
                    resource,
                    capacity,
                    warn_percent: None,
                    rollback_percent: Some(percent),
                    duration: Duration::ZERO,
                    cooldown: COOLDOWN,
                    on_missing_data: serin_triggers::MissingData::Hold,
                    stale_after: STALE_AFTER,
                }));
            }
        }
        out
    }
}

/// `pause` rounded up to a whole number of `window`s: how long a pause read at window ends
/// lasts.
pub(crate) fn whole_windows(pause: Duration, window: Duration) -> Duration {
    if window.is_zero() {
        return pause;
    }
    let windows = pause.as_nanos().div_ceil(window.as_nanos());
    u32::try_from(windows)
        .ok()
        .and_then(|n| window.checked_mul(n))
        .unwrap_or(Duration::MAX)
}

pub(super) fn threshold_trigger(
    id: String,
    track: &Track,
    metric: Metric,
    operator: Operator,
    value: f64,
    action: TriggerAction,
    duration: Duration,
) -> TriggerConfig {
    TriggerConfig::MetricThreshold(serin_triggers::MetricThresholdConfig {
        id,
        track: track.clone(),
        metric,
        operator,
        value,
        action,
        warn_value: None,
        quantile: None,
        duration,
        cooldown: COOLDOWN,
        on_missing_data: serin_triggers::MissingData::Hold,
        stale_after: STALE_AFTER,
    })
}

/// How long a derived trigger stays quiet after firing.
const COOLDOWN: Duration = Duration::from_secs(60);

/// How long a derived trigger goes without data before its signal is stale.
const STALE_AFTER: Duration = Duration::from_secs(300);

/// Checks `max{usage}Usage`, a percentage of `{usage}Capacity` (in `unit`): each needs the
/// other, since the gauge reports `unit` and the brief's limits are percentages.
fn resource_limit(usage: &str, max: Option<f64>, capacity: Option<f64>, unit: &str) -> Result<()> {
    let lower = usage.to_lowercase();
    let max_field = format!("canaryThresholds.max{usage}Usage");
    let capacity_field = format!("canaryThresholds.{lower}Capacity");
    match (max, capacity) {
        (Some(v), _) if !(v.is_finite() && v > 0.0 && v <= 100.0) => Err(Error::invalid(
            max_field,
            v,
            format!("must be a percentage of {lower}Capacity in (0, 100] (`95` = 95%)"),
        )),
        (Some(v), None) => Err(Error::invalid(
            max_field,
            v,
            format!(
                "is a percentage of {lower}Capacity, which is not set: the `{lower}` gauge \
                 reports {unit}; set {lower}Capacity to the canary track's limit in {unit}"
            ),
        )),
        (_, Some(c)) if !(c.is_finite() && c > 0.0) => Err(Error::invalid(
            capacity_field,
            c,
            format!("must be a positive number of {unit}"),
        )),
        (None, Some(c)) => Err(Error::invalid(
            capacity_field,
            c,
            format!(
                "has no effect without max{usage}Usage, the percentage of it to roll back above"
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A resume past the first weight still meets a raise from 0% after a step back to it,
    /// which the budget sizes in whole percents as the first one.
    #[test]
    fn a_budget_raise_from_0_after_the_first_weight_needs_whole_percents_too() {
        let config = CanaryConfig {
            steps: Some(
                serde_json::from_str(
                    r#"[{"setWeight": 10}, {"pause": {"duration": "1m"}}, {"setWeight": 0},
                        {"pause": {"duration": "1m"}}, {"setWeight": 20},
                        {"pause": {"duration": "1m"}}, {"setWeight": 30}]"#,
                )
                .expect("steps"),
            ),
            pacing: Some(
                serde_json::from_str(r#"{"detectableRatio": 2.0, "exposureBudget": 3000}"#)
                    .expect("pacing"),
            ),
            ..CanaryConfig::default()
        };
        let five = Weight::from_percent(5).expect("5%");
        for from in [0, 1, 4] {
            let err = config
                .check_granularity(five, "coarse", from)
                .expect_err("a raise from 0% is to come")
                .to_string();
            assert!(
                err.contains("canaryConfig.pacing.exposureBudget")
                    && err.contains("granularity 5%"),
                "from step {from}: {err}"
            );
        }
        // Past the last raise from 0%, only the weights themselves are checked.
        assert!(config.check_granularity(five, "coarse", 5).is_ok());
        assert!(
            config
                .check_granularity(Weight::from_percent(1).expect("1%"), "fine", 1)
                .is_ok()
        );
    }
}
