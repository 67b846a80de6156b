//! [`DeploymentConfig`]: what to deploy, how, and when to roll back — in the product brief's
//! shape (`strategy`, `version`, `targetServices`, `blueGreenConfig`, `canaryConfig`,
//! `canaryThresholds`, `triggers`, `notificationChannels`, `rollbackOnError`,
//! `maxDeploymentDuration`), loaded from YAML, TOML or JSON, overridden by the brief's
//! environment variables, and validated on load with errors that name the path.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_canary::controller::{CanaryPolicy, Pacing, Pause, PromotionGate, Step};
use serin_signals::{Metric, Track};
use serin_traffic::{Strategy, Weight, WeightedStep};
use serin_triggers::{Action as TriggerAction, EngineConfig, Operator, TriggerConfig};

use crate::error::{Error, Result};

/// How the new version replaces the old one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Bring the new version up fully on the idle colour, health-gate it, switch traffic by
    /// the chosen traffic strategy, watch, switch back on failure.
    BlueGreen,
    /// Raise the new version's share of traffic step by step, judged at every step.
    Canary,
    /// Bring the new version up fully, give it canary-judged partial traffic, then switch.
    BlueGreenWithCanary,
}

impl StrategyKind {
    /// The name as written in config (`blue-green`).
    pub fn as_str(self) -> &'static str {
        match self {
            StrategyKind::BlueGreen => "blue-green",
            StrategyKind::Canary => "canary",
            StrategyKind::BlueGreenWithCanary => "blue-green-with-canary",
        }
    }

    fn parse(field: &str, value: &str) -> Result<Self> {
        match value.trim() {
            "blue-green" => Ok(StrategyKind::BlueGreen),
            "canary" => Ok(StrategyKind::Canary),
            "blue-green-with-canary" => Ok(StrategyKind::BlueGreenWithCanary),
            other => Err(Error::invalid(
                field,
                other,
                "must be `blue-green`, `canary` or `blue-green-with-canary`",
            )),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How blue-green moves traffic from the old colour to the new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TrafficStrategyKind {
    /// 100% at once.
    #[default]
    Immediate,
    /// `trafficIncrement` percent every `trafficInterval`.
    Gradual,
    /// The listed `weights`, each held for `trafficInterval`.
    Weighted,
}

/// Blue-green settings (`blueGreenConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BlueGreenConfig {
    /// Instances per colour (`REPLICAS`). Default 3.
    pub replicas_per_env: u32,
    /// How often readiness is polled while the new colour starts. Default `5s`.
    #[serde(with = "serin_signals::duration")]
    pub health_check_interval: Duration,
    /// How long the new colour may take to become ready. Default `5m`.
    #[serde(with = "serin_signals::duration")]
    pub readiness_timeout: Duration,
    /// How traffic moves (`TRAFFIC_STRATEGY`). Default `immediate`.
    pub traffic_strategy: TrafficStrategyKind,
    /// Percent added per step of a gradual switch (`TRAFFIC_INCREMENT`). Default 10.
    pub traffic_increment: f64,
    /// How long each step of a gradual or weighted switch holds (`TRAFFIC_INTERVAL`). Default `30s`.
    #[serde(with = "serin_signals::duration")]
    pub traffic_interval: Duration,
    /// The percentages of a weighted switch, rising (100 is added at the end if missing).
    pub weights: Vec<f64>,
    /// How long the old colour stays up after the switch, ready to take traffic back. Default `5m`.
    #[serde(with = "serin_signals::duration")]
    pub keep_old_warm_for: Duration,
    /// How long a retired colour drains in-flight requests. Default `10s`.
    #[serde(with = "serin_signals::duration")]
    pub drain: Duration,
}

impl Default for BlueGreenConfig {
    fn default() -> Self {
        BlueGreenConfig {
            replicas_per_env: 3,
            health_check_interval: Duration::from_secs(5),
            readiness_timeout: Duration::from_secs(300),
            traffic_strategy: TrafficStrategyKind::Immediate,
            traffic_increment: 10.0,
            traffic_interval: Duration::from_secs(30),
            weights: Vec::new(),
            keep_old_warm_for: Duration::from_secs(300),
            drain: Duration::from_secs(10),
        }
    }
}

impl BlueGreenConfig {
    /// The traffic strategy as a `serin-traffic` value.
    pub fn traffic(&self) -> Result<Strategy> {
        let path = "blueGreenConfig";
        match self.traffic_strategy {
            TrafficStrategyKind::Immediate => Ok(Strategy::immediate()),
            TrafficStrategyKind::Gradual => {
                let inc = Weight::from_percent_f64(self.traffic_increment).map_err(|e| {
                    Error::invalid(
                        format!("{path}.trafficIncrement"),
                        self.traffic_increment,
                        e.to_string(),
                    )
                })?;
                Strategy::gradual(inc, self.traffic_interval).map_err(|e| {
                    Error::invalid(
                        format!("{path}.trafficIncrement"),
                        self.traffic_increment,
                        e.to_string(),
                    )
                })
            }
            TrafficStrategyKind::Weighted => {
                let mut steps = Vec::with_capacity(self.weights.len() + 1);
                for (i, w) in self.weights.iter().enumerate() {
                    let weight = Weight::from_percent_f64(*w).map_err(|e| {
                        Error::invalid(format!("{path}.weights[{i}]"), w, e.to_string())
                    })?;
                    steps.push(WeightedStep::new(weight, self.traffic_interval));
                }
                if self.weights.last().is_none_or(|w| *w < 100.0) {
                    steps.push(WeightedStep::new(Weight::FULL, Duration::ZERO));
                }
                Strategy::weighted(steps).map_err(|e| {
                    Error::invalid(
                        format!("{path}.weights"),
                        format!("{:?}", self.weights),
                        e.to_string(),
                    )
                })
            }
        }
    }

    fn validate(&self) -> Result<()> {
        let path = "blueGreenConfig";
        if self.replicas_per_env == 0 || self.replicas_per_env > 1_000 {
            return Err(Error::invalid(
                format!("{path}.replicasPerEnv"),
                self.replicas_per_env,
                "must be between 1 and 1000",
            ));
        }
        positive(
            &format!("{path}.healthCheckInterval"),
            self.health_check_interval,
        )?;
        positive(&format!("{path}.readinessTimeout"), self.readiness_timeout)?;
        if self.traffic_strategy == TrafficStrategyKind::Gradual {
            percent(
                &format!("{path}.trafficIncrement"),
                self.traffic_increment,
                false,
            )?;
            positive(&format!("{path}.trafficInterval"), self.traffic_interval)?;
        }
        if self.traffic_strategy == TrafficStrategyKind::Weighted && self.weights.is_empty() {
            return Err(Error::invalid(
                format!("{path}.weights"),
                "[]",
                "a weighted switch needs at least one weight",
            ));
        }
        self.traffic().map(|_| ())
    }
}

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
    /// How long each weight holds while it is judged (`PHASE_DURATION`). Default `5m`.
    #[serde(with = "serin_signals::duration")]
    pub increment_interval: Duration,
    /// The longest the canary may run before it is rolled back. Default `1h`.
    #[serde(with = "serin_signals::duration")]
    pub max_duration: Duration,
    /// The span of each observation fed to the judges and triggers. Default `30s`.
    #[serde(with = "serin_signals::duration")]
    pub metrics_window: Duration,
    /// Explicit steps (Argo Rollouts' `setWeight`, `pause`, `analysis`), replacing the ones
    /// derived from the percentages above.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<Vec<Step>>,
    /// Instances of the canary track (of a canary strategy). Default 1.
    pub replicas: u32,
    /// The judges' false-rollback bound. Default `0.05`.
    pub alpha: f64,
    /// Fail only if the canary's error rate exceeds `(1 + margin)` times the baseline's. Default `0.10`.
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
    /// before any verdict. Default `false`.
    pub robust_judges: bool,
    /// How long a retired track drains in-flight requests. Default `10s`.
    #[serde(with = "serin_signals::duration")]
    pub drain: Duration,
    /// The canary is promoted only once its own error rate is shown below this fraction, with
    /// confidence `1 - alpha` however often it is checked (at 5%, about 93 requests without an
    /// error); until then it holds, up to `maxDuration`. This keeps a canary whose judges never
    /// had the data to fail it (scarce traffic) from being promoted. `1` turns the gate off.
    /// Default `0.05`.
    pub promotion_max_error_rate: f64,
    /// Power-aware pacing: raise the weight only once the current step could have caught a
    /// regression of `detectableRatio` times the baseline's error rate. Off by default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pacing: Option<Pacing>,
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
        }
    }
}

impl CanaryConfig {
    /// The canary controller's policy: the explicit steps, or `initial`, `initial + increment`,
    /// ... below `target`, each followed by a pause of `incrementInterval` during which the
    /// judges watch; promotion at `target`.
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
        policy.pacing = self.pacing.clone();
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
        policy
            .validate()
            .map_err(|e| Error::invalid("canaryConfig.steps", "…", e.to_string()))?;
        Ok(policy)
    }

    fn validate(&self) -> Result<()> {
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
        if self.replicas == 0 || self.replicas > 1_000 {
            return Err(Error::invalid(
                format!("{path}.replicas"),
                self.replicas,
                "must be between 1 and 1000",
            ));
        }
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
            p.validate(&format!("{path}.pacing"))
                .map_err(|e| Error::invalid(format!("{path}.pacing"), "…", e.to_string()))?;
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
        if let Some(steps) = &self.steps {
            let policy = CanaryPolicy::new(steps.clone());
            policy
                .validate()
                .map_err(|e| Error::invalid(format!("{path}.steps"), steps.len(), e.to_string()))?;
            if !steps
                .iter()
                .any(|s| matches!(s, Step::Pause(_) | Step::Analysis(_)))
            {
                return Err(Error::invalid(
                    format!("{path}.steps"),
                    steps.len(),
                    "needs at least one pause or analysis step: a canary that is never watched \
                     is never judged",
                ));
            }
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
    /// Highest CPU usage, as the source reports it (percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_cpu_usage: Option<f64>,
    /// Highest memory usage, as the source reports it (percent).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_memory_usage: Option<f64>,
    /// Bounds on custom metrics, by metric name.
    pub custom_metric_thresholds: BTreeMap<String, Bounds>,
}

impl CanaryThresholds {
    fn validate(&self) -> Result<()> {
        let path = "canaryThresholds";
        if let Some(v) = self.max_error_rate
            && !(v > 0.0 && v <= 1.0)
        {
            return Err(Error::invalid(
                format!("{path}.maxErrorRate"),
                v,
                "must be a fraction in (0, 1] (0.05 = 5%)",
            ));
        }
        for (name, v) in [
            ("maxLatency", self.max_latency),
            ("minThroughput", self.min_throughput),
            ("maxCpuUsage", self.max_cpu_usage),
            ("maxMemoryUsage", self.max_memory_usage),
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

    /// The rollback triggers these limits stand for, watching `track`.
    fn triggers(&self, track: &Track, hold_for: Duration) -> Vec<TriggerConfig> {
        let mut out = Vec::new();
        let mut push = |id: String, metric: Metric, op: Operator, value: f64, action| {
            out.push(threshold_trigger(
                id, track, metric, op, value, action, hold_for,
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
        if let Some(v) = self.max_cpu_usage {
            push(
                "canary-max-cpu".into(),
                Metric::Cpu,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
            );
        }
        if let Some(v) = self.max_memory_usage {
            push(
                "canary-max-memory".into(),
                Metric::Memory,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
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
        out
    }
}

fn threshold_trigger(
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
        cooldown: Duration::from_secs(60),
        on_missing_data: serin_triggers::MissingData::Hold,
        stale_after: Duration::from_secs(300),
    })
}

/// The watch after promotion (and the checks during a rollout): `CHECK_INTERVAL`,
/// `MONITORING_DURATION`, `CONSECUTIVE_FAILURES`, `ERROR_RATE_THRESHOLD`, `LATENCY_THRESHOLD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// How often signals are read and triggers checked. Default `5s`.
    #[serde(with = "serin_signals::duration")]
    pub check_interval: Duration,
    /// How long the new version is watched after promotion. Default `5m`.
    #[serde(with = "serin_signals::duration")]
    pub monitoring_duration: Duration,
    /// Consecutive breaching checks before a threshold rolls back. Default 3.
    pub consecutive_failures: u32,
    /// Error rate (fraction) that rolls back when held for the consecutive checks. Default `0.10`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_rate_threshold: Option<f64>,
    /// p99 latency in milliseconds that rolls back when held for the consecutive checks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_threshold: Option<f64>,
    /// What happens when `maxDeploymentDuration` runs out after promotion, while the promoted
    /// version is watched or the old one is kept warm. Default `complete`.
    pub on_deadline: OnDeadline,
}

/// What a deployment does when `maxDeploymentDuration` runs out after promotion.
///
/// Before promotion the deadline always rolls back: the analysis did not conclude, and a
/// version is never promoted on missing evidence. After promotion the new version has passed
/// its analysis and serves all traffic; the deadline then only ends the watch early, one way
/// or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnDeadline {
    /// Stop watching and finish now: the old version is retired at once (its remaining warm
    /// delay is cut short) and the deployment succeeds.
    #[default]
    Complete,
    /// Roll back to the old version, which is still warm.
    Rollback,
}

impl Default for MonitoringConfig {
    fn default() -> Self {
        MonitoringConfig {
            check_interval: Duration::from_secs(5),
            monitoring_duration: Duration::from_secs(300),
            consecutive_failures: 3,
            error_rate_threshold: Some(0.10),
            latency_threshold: None,
            on_deadline: OnDeadline::Complete,
        }
    }
}

impl MonitoringConfig {
    fn validate(&self) -> Result<()> {
        let path = "monitoring";
        positive(&format!("{path}.checkInterval"), self.check_interval)?;
        if self.check_interval < Duration::from_millis(10) {
            return Err(Error::invalid(
                format!("{path}.checkInterval"),
                humantime_like(self.check_interval),
                "must be at least 10ms",
            ));
        }
        if self.consecutive_failures == 0 {
            return Err(Error::invalid(
                format!("{path}.consecutiveFailures"),
                0,
                "must be at least 1",
            ));
        }
        if let Some(v) = self.error_rate_threshold
            && !(v > 0.0 && v <= 1.0)
        {
            return Err(Error::invalid(
                format!("{path}.errorRateThreshold"),
                v,
                "must be a fraction in (0, 1] (0.10 = 10%)",
            ));
        }
        if let Some(v) = self.latency_threshold
            && !(v.is_finite() && v > 0.0)
        {
            return Err(Error::invalid(
                format!("{path}.latencyThreshold"),
                v,
                "must be a number of milliseconds above 0",
            ));
        }
        Ok(())
    }

    /// How long a breach must hold: `consecutiveFailures - 1` check intervals (the first
    /// breaching check starts the clock).
    pub fn hold_for(&self) -> Duration {
        self.check_interval
            .saturating_mul(self.consecutive_failures.saturating_sub(1))
    }
}

/// Where notifications go (`notificationChannels[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotificationChannel {
    /// The kind of channel.
    #[serde(rename = "type")]
    pub kind: ChannelKind,
    /// Address, URL or channel name.
    pub destination: String,
    /// Which events go there (all when empty).
    #[serde(default)]
    pub events: Vec<NotifyOn>,
    /// The name of an environment variable holding the channel's secret (the webhook's
    /// signing secret, the Slack incoming-webhook URL, the PagerDuty routing key, the SMTP
    /// password). Only the name is configured, so the secret never lands in a config file,
    /// the journal or a report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_env: Option<String>,
}

impl NotificationChannel {
    /// The destination as logs and errors may show it: a URL cut to its scheme and host (the
    /// paths and queries of webhook URLs often carry tokens), anything else as written.
    pub fn redacted_destination(&self) -> String {
        redact_url(self.destination.trim())
    }
}

/// `scheme://host/***` for a URL (user info dropped), the value itself otherwise.
pub(crate) fn redact_url(value: &str) -> String {
    let Some((scheme, rest)) = value.split_once("://") else {
        return value.to_owned();
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}/***")
}

/// The kinds of notification channel the brief names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// E-mail.
    Email,
    /// Slack.
    Slack,
    /// PagerDuty.
    Pagerduty,
    /// An HTTP webhook.
    Webhook,
}

/// The events a channel can subscribe to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotifyOn {
    /// The deployment started.
    Started,
    /// The deployment completed.
    Completed,
    /// The deployment failed.
    Failed,
    /// A judge or trigger saw an anomaly.
    Anomaly,
    /// The deployment rolled back.
    Rollback,
    /// The deployment entered a phase (validation, preparation, deployment, ...).
    Phase,
}

/// What `resume` does with a deployment found unfinished in the journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OnResume {
    /// Carry on from the last journalled state.
    #[default]
    Continue,
    /// Roll back to the previous version.
    Rollback,
}

/// One deployment's configuration, in the product brief's shape.
///
/// ```
/// use serin_orchestrator::{DeploymentConfig, StrategyKind};
///
/// let config = DeploymentConfig::from_yaml(r#"
/// strategy: canary
/// version: 1.1.0
/// targetServices: [web]
/// canaryConfig: { initialPercentage: 5, incrementPercentage: 20, incrementInterval: 2m }
/// canaryThresholds: { maxErrorRate: 0.05 }
/// "#)?;
/// assert_eq!(config.strategy, StrategyKind::Canary);
/// assert!(DeploymentConfig::from_json(r#"{"strategy":"canary","version":"1.1.0","targetServices":[],"oops":1}"#).is_err());
/// # Ok::<(), serin_orchestrator::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentConfig {
    /// `blue-green`, `canary` or `blue-green-with-canary` (`DEPLOYMENT_STRATEGY`).
    pub strategy: StrategyKind,
    /// The version to deploy (`VERSION`).
    pub version: semver::Version,
    /// The services to deploy, one after the other.
    pub target_services: Vec<String>,
    /// Blue-green settings (also the instance count of the stable track).
    #[serde(default)]
    pub blue_green_config: BlueGreenConfig,
    /// Canary settings.
    #[serde(default)]
    pub canary_config: CanaryConfig,
    /// Absolute limits on the canary arm.
    #[serde(default)]
    pub canary_thresholds: CanaryThresholds,
    /// Monitoring during and after the rollout.
    #[serde(default)]
    pub monitoring: MonitoringConfig,
    /// Extra rollback triggers (see `serin-triggers`).
    #[serde(default)]
    pub triggers: Vec<TriggerConfig>,
    /// Where notifications go.
    #[serde(default)]
    pub notification_channels: Vec<NotificationChannel>,
    /// Roll back when an action fails (a router or platform error). Default `true`.
    #[serde(default = "yes")]
    pub rollback_on_error: bool,
    /// The deployment is rolled back if it has not finished by then. Default `2h`.
    #[serde(default = "two_hours", with = "serin_signals::duration")]
    pub max_deployment_duration: Duration,
    /// What `resume` does after a crash. Default `continue`.
    #[serde(default)]
    pub on_resume: OnResume,
    /// The namespace (`NAMESPACE`), passed to platforms that have one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The environment name (`ENVIRONMENT`), for reports and notifications.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

fn yes() -> bool {
    true
}

fn two_hours() -> Duration {
    Duration::from_secs(7_200)
}

/// The serialized formats a [`DeploymentConfig`] loads from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// YAML.
    Yaml,
    /// TOML.
    Toml,
    /// JSON.
    Json,
}

impl DeploymentConfig {
    /// A config with every default: `strategy` for `version` of `services`.
    pub fn new(
        strategy: StrategyKind,
        version: semver::Version,
        services: &[&str],
    ) -> Result<Self> {
        let c = DeploymentConfig {
            strategy,
            version,
            target_services: services.iter().map(|s| (*s).to_owned()).collect(),
            blue_green_config: BlueGreenConfig::default(),
            canary_config: CanaryConfig::default(),
            canary_thresholds: CanaryThresholds::default(),
            monitoring: MonitoringConfig::default(),
            triggers: Vec::new(),
            notification_channels: Vec::new(),
            rollback_on_error: true,
            max_deployment_duration: two_hours(),
            on_resume: OnResume::Continue,
            namespace: None,
            environment: None,
        };
        c.validate()?;
        Ok(c)
    }

    /// Parses and validates `text` in `format`.
    pub fn parse(text: &str, format: Format) -> Result<Self> {
        let config: DeploymentConfig = match format {
            Format::Yaml => serde_yaml_ng::from_str(text)
                .map_err(|e| Error::invalid("deploymentConfig", "(yaml)", e.to_string()))?,
            Format::Toml => toml::from_str(text)
                .map_err(|e| Error::invalid("deploymentConfig", "(toml)", e.to_string()))?,
            Format::Json => serde_json::from_str(text)
                .map_err(|e| Error::invalid("deploymentConfig", "(json)", e.to_string()))?,
        };
        config.validate()?;
        Ok(config)
    }

    /// [`parse`](Self::parse) as YAML.
    pub fn from_yaml(text: &str) -> Result<Self> {
        Self::parse(text, Format::Yaml)
    }

    /// [`parse`](Self::parse) as JSON.
    pub fn from_json(text: &str) -> Result<Self> {
        Self::parse(text, Format::Json)
    }

    /// [`parse`](Self::parse) as TOML.
    pub fn from_toml(text: &str) -> Result<Self> {
        Self::parse(text, Format::Toml)
    }

    /// Applies the brief's environment variables from the process environment; see
    /// [`with_overrides`](Self::with_overrides).
    pub fn with_env(self) -> Result<Self> {
        self.with_overrides(|name| std::env::var(name).ok())
    }

    /// Applies the brief's environment variables, read through `lookup`, and validates the
    /// result. Unset variables change nothing; a bad value is an error naming the variable and
    /// the config path, and the config is left as it was.
    ///
    /// | variable | field |
    /// |---|---|
    /// | `VERSION` | `version` |
    /// | `DEPLOYMENT_STRATEGY` | `strategy` |
    /// | `REPLICAS` | `blueGreenConfig.replicasPerEnv` |
    /// | `TRAFFIC_STRATEGY`, `TRAFFIC_INCREMENT` (percent), `TRAFFIC_INTERVAL` | `blueGreenConfig.traffic*` |
    /// | `INITIAL_PERCENTAGE`, `INCREMENT` (percent), `PHASE_DURATION` | `canaryConfig.initialPercentage`, `.incrementPercentage`, `.incrementInterval` |
    /// | `MAX_ERROR_RATE`, then `CANARY_ERROR_RATE` (fractions; the latter wins) | `canaryThresholds.maxErrorRate` |
    /// | `ERROR_RATE_THRESHOLD` (fraction), `LATENCY_THRESHOLD` (ms) | `monitoring.errorRateThreshold`, `.latencyThreshold` |
    /// | `CHECK_INTERVAL`, `MONITORING_DURATION`, `CONSECUTIVE_FAILURES` | `monitoring.*` |
    /// | `NAMESPACE`, `ENVIRONMENT` | `namespace`, `environment` |
    ///
    /// Durations given as bare numbers are **seconds**, as in the brief's `.env`
    /// (`PHASE_DURATION=300`); human strings (`5m`) work too.
    pub fn with_overrides(self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = self;
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("VERSION") {
            c.version = semver::Version::parse(&v)
                .map_err(|e| Error::invalid("VERSION (version)", &v, e.to_string()))?;
        }
        if let Some(v) = get("DEPLOYMENT_STRATEGY") {
            c.strategy = StrategyKind::parse("DEPLOYMENT_STRATEGY (strategy)", &v)?;
        }
        if let Some(v) = get("REPLICAS") {
            c.blue_green_config.replicas_per_env =
                num("REPLICAS (blueGreenConfig.replicasPerEnv)", &v)?;
        }
        if let Some(v) = get("TRAFFIC_STRATEGY") {
            c.blue_green_config.traffic_strategy = match v.as_str() {
                "immediate" => TrafficStrategyKind::Immediate,
                "gradual" => TrafficStrategyKind::Gradual,
                "weighted" => TrafficStrategyKind::Weighted,
                other => {
                    return Err(Error::invalid(
                        "TRAFFIC_STRATEGY (blueGreenConfig.trafficStrategy)",
                        other,
                        "must be `immediate`, `gradual` or `weighted`",
                    ));
                }
            };
        }
        if let Some(v) = get("TRAFFIC_INCREMENT") {
            c.blue_green_config.traffic_increment =
                num("TRAFFIC_INCREMENT (blueGreenConfig.trafficIncrement)", &v)?;
        }
        if let Some(v) = get("TRAFFIC_INTERVAL") {
            c.blue_green_config.traffic_interval =
                secs("TRAFFIC_INTERVAL (blueGreenConfig.trafficInterval)", &v)?;
        }
        if let Some(v) = get("INITIAL_PERCENTAGE") {
            c.canary_config.initial_percentage =
                num("INITIAL_PERCENTAGE (canaryConfig.initialPercentage)", &v)?;
        }
        if let Some(v) = get("INCREMENT") {
            c.canary_config.increment_percentage =
                num("INCREMENT (canaryConfig.incrementPercentage)", &v)?;
        }
        if let Some(v) = get("PHASE_DURATION") {
            c.canary_config.increment_interval =
                secs("PHASE_DURATION (canaryConfig.incrementInterval)", &v)?;
        }
        if let Some(v) = get("MAX_ERROR_RATE") {
            c.canary_thresholds.max_error_rate =
                Some(num("MAX_ERROR_RATE (canaryThresholds.maxErrorRate)", &v)?);
        }
        if let Some(v) = get("CANARY_ERROR_RATE") {
            c.canary_thresholds.max_error_rate = Some(num(
                "CANARY_ERROR_RATE (canaryThresholds.maxErrorRate)",
                &v,
            )?);
        }
        if let Some(v) = get("ERROR_RATE_THRESHOLD") {
            c.monitoring.error_rate_threshold = Some(num(
                "ERROR_RATE_THRESHOLD (monitoring.errorRateThreshold)",
                &v,
            )?);
        }
        if let Some(v) = get("LATENCY_THRESHOLD") {
            c.monitoring.latency_threshold =
                Some(num("LATENCY_THRESHOLD (monitoring.latencyThreshold)", &v)?);
        }
        if let Some(v) = get("CHECK_INTERVAL") {
            c.monitoring.check_interval = secs("CHECK_INTERVAL (monitoring.checkInterval)", &v)?;
        }
        if let Some(v) = get("MONITORING_DURATION") {
            c.monitoring.monitoring_duration =
                secs("MONITORING_DURATION (monitoring.monitoringDuration)", &v)?;
        }
        if let Some(v) = get("CONSECUTIVE_FAILURES") {
            c.monitoring.consecutive_failures =
                num("CONSECUTIVE_FAILURES (monitoring.consecutiveFailures)", &v)?;
        }
        if let Some(v) = get("NAMESPACE") {
            c.namespace = Some(v);
        }
        if let Some(v) = get("ENVIRONMENT") {
            c.environment = Some(v);
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks every field; the error names the path, the value and the reason.
    pub fn validate(&self) -> Result<()> {
        if self.target_services.is_empty() {
            return Err(Error::invalid(
                "deploymentConfig.targetServices",
                "[]",
                "name at least one service",
            ));
        }
        for (i, s) in self.target_services.iter().enumerate() {
            if s.is_empty()
                || s.len() > 63
                || !s
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
            {
                return Err(Error::invalid(
                    format!("deploymentConfig.targetServices[{i}]"),
                    s,
                    "must be 1 to 63 ASCII letters, digits, `-`, `_` or `.`",
                ));
            }
            if self.target_services[..i].contains(s) {
                return Err(Error::invalid(
                    format!("deploymentConfig.targetServices[{i}]"),
                    s,
                    "is listed twice",
                ));
            }
        }
        self.blue_green_config.validate()?;
        self.canary_config.validate()?;
        self.canary_thresholds.validate()?;
        self.monitoring.validate()?;
        EngineConfig {
            triggers: self.triggers.clone(),
        }
        .validate()
        .map_err(|e| {
            Error::invalid(
                "deploymentConfig.triggers",
                self.triggers.len(),
                e.to_string(),
            )
        })?;
        positive(
            "deploymentConfig.maxDeploymentDuration",
            self.max_deployment_duration,
        )?;
        for (i, ch) in self.notification_channels.iter().enumerate() {
            if ch.destination.trim().is_empty() {
                return Err(Error::invalid(
                    format!("deploymentConfig.notificationChannels[{i}].destination"),
                    "",
                    "must not be empty",
                ));
            }
            if let Some(name) = &ch.secret_env
                && (name.is_empty()
                    || name.starts_with(|c: char| c.is_ascii_digit())
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(Error::invalid(
                    format!("deploymentConfig.notificationChannels[{i}].secretEnv"),
                    name,
                    "must be an environment variable name: ASCII letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        self.trigger_config().map(|_| ())
    }

    /// Every rollback trigger of the deployment, watching the canary arm (relabelled
    /// `canary`): the `canaryThresholds`, the monitoring thresholds and the extra `triggers`.
    pub fn trigger_config(&self) -> Result<EngineConfig> {
        let track = Track::Canary;
        let mut triggers = self.canary_thresholds.triggers(&track, Duration::ZERO);
        let hold = self.monitoring.hold_for();
        if let Some(v) = self.monitoring.error_rate_threshold {
            triggers.push(threshold_trigger(
                "error-rate-threshold".into(),
                &track,
                Metric::ErrorRate,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
                hold,
            ));
        }
        if let Some(v) = self.monitoring.latency_threshold {
            triggers.push(threshold_trigger(
                "latency-threshold".into(),
                &track,
                Metric::Latency,
                Operator::Gt,
                v,
                TriggerAction::Rollback,
                hold,
            ));
        }
        triggers.extend(self.triggers.iter().cloned());
        let config = EngineConfig { triggers };
        config
            .validate()
            .map_err(|e| Error::invalid("deploymentConfig.triggers", "…", e.to_string()))?;
        Ok(config)
    }
}

fn positive(path: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(Error::invalid(path, "0s", "must be longer than zero"));
    }
    Ok(())
}

fn percent(path: &str, v: f64, zero_ok: bool) -> Result<()> {
    if !(v.is_finite() && v <= 100.0 && (v > 0.0 || (zero_ok && v == 0.0))) {
        return Err(Error::invalid(path, v, "must be a percentage in (0, 100]"));
    }
    Ok(())
}

fn humantime_like(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn num<T: std::str::FromStr>(field: &str, v: &str) -> Result<T>
where
    T::Err: fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| Error::invalid(field, v, format!("not a number: {e}")))
}

fn secs(field: &str, v: &str) -> Result<Duration> {
    if let Ok(n) = v.parse::<u64>() {
        return Ok(Duration::from_secs(n));
    }
    #[derive(Deserialize)]
    #[serde(transparent)]
    struct D(#[serde(with = "serin_signals::duration")] Duration);
    serde_json::from_value::<D>(serde_json::Value::String(v.to_owned()))
        .map(|D(d)| d)
        .map_err(|e| {
            Error::invalid(
                field,
                v,
                format!("not a duration (seconds or `30s`, `5m`): {e}"),
            )
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_url_destination_is_shown_by_scheme_and_host_only() {
        let ch = |d: &str| NotificationChannel {
            kind: ChannelKind::Webhook,
            destination: d.into(),
            events: Vec::new(),
            secret_env: None,
        };
        assert_eq!(
            ch("https://hooks.slack.com/services/T0/B0/SECRET").redacted_destination(),
            "https://hooks.slack.com/***"
        );
        assert_eq!(
            ch("http://user:pw@hooks.local:8080?token=x").redacted_destination(),
            "http://hooks.local:8080/***"
        );
        assert_eq!(
            ch("ops@example.com").redacted_destination(),
            "ops@example.com"
        );
    }

    use super::*;

    fn base() -> DeploymentConfig {
        DeploymentConfig::new(
            StrategyKind::Canary,
            semver::Version::new(1, 1, 0),
            &["web"],
        )
        .expect("defaults are valid")
    }

    #[test]
    fn the_brief_shape_loads_from_yaml_json_and_toml() {
        let yaml = r##"
strategy: blue-green-with-canary
version: 1.1.0
targetServices: [web, api]
blueGreenConfig: { replicasPerEnv: 4, healthCheckInterval: 5000, trafficStrategy: gradual, trafficIncrement: 25, trafficInterval: 30s }
canaryConfig: { initialPercentage: 5, targetPercentage: 50, incrementPercentage: 15, incrementInterval: 2m, maxDuration: 1h, metricsWindow: 30000 }
canaryThresholds: { maxErrorRate: 0.05, maxLatency: 800, minThroughput: 10, maxCpuUsage: 90, maxMemoryUsage: 85, customMetricThresholds: { queue_depth: { max: 100 } } }
triggers:
  - { kind: metricThreshold, id: p99, metric: latency, operator: gt, value: 5000, duration: 30000, cooldown: 60000 }
notificationChannels: [ { type: slack, destination: "#deploys", events: [started, rollback] } ]
rollbackOnError: true
maxDeploymentDuration: 2h
"##;
        let c = DeploymentConfig::from_yaml(yaml).expect("valid");
        assert_eq!(c.strategy, StrategyKind::BlueGreenWithCanary);
        assert_eq!(c.blue_green_config.replicas_per_env, 4);
        assert_eq!(c.canary_config.metrics_window, Duration::from_secs(30));
        let json = serde_json::to_string(&c).expect("serializes");
        assert_eq!(DeploymentConfig::from_json(&json).expect("round trip"), c);
        let toml_text = toml::to_string(&c).expect("toml");
        assert_eq!(
            DeploymentConfig::from_toml(&toml_text).expect("toml round trip"),
            c
        );
        // the thresholds, the monitoring default and the extra trigger
        assert_eq!(c.trigger_config().expect("valid").triggers.len(), 8);
    }

    #[test]
    fn on_deadline_defaults_to_complete_and_reads_rollback() {
        assert_eq!(base().monitoring.on_deadline, OnDeadline::Complete);
        let c = DeploymentConfig::from_yaml(
            "strategy: canary\nversion: 1.0.0\ntargetServices: [a]\nmonitoring: { onDeadline: rollback }\n",
        )
        .expect("valid");
        assert_eq!(c.monitoring.on_deadline, OnDeadline::Rollback);
        let err = DeploymentConfig::from_yaml(
            "strategy: canary\nversion: 1.0.0\ntargetServices: [a]\nmonitoring: { onDeadline: wait }\n",
        )
        .expect_err("unknown action")
        .to_string();
        assert!(err.contains("wait"), "{err}");
    }

    #[test]
    fn rejections_name_the_path_value_and_reason() {
        let cases = [
            (
                r#"{"strategy":"rolling","version":"1.0.0","targetServices":["a"]}"#,
                "unknown variant",
            ),
            (
                r#"{"strategy":"canary","version":"1.0","targetServices":["a"]}"#,
                "version",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"color":"x"}"#,
                "unknown field `color`",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":[]}"#,
                "deploymentConfig.targetServices",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a b"]}"#,
                "deploymentConfig.targetServices[0]",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryConfig":{"incrementPercentage":0}}"#,
                "canaryConfig.incrementPercentage",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryConfig":{"initialPercentage":60,"targetPercentage":50}}"#,
                "canaryConfig.initialPercentage",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryConfig":{"incrementInterval":0}}"#,
                "canaryConfig.incrementInterval",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryConfig":{"steps":[{"setWeight":50}]}}"#,
                "canaryConfig.steps",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryThresholds":{"maxErrorRate":5}}"#,
                "canaryThresholds.maxErrorRate",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryThresholds":{"customMetricThresholds":{"q":{}}}}"#,
                "canaryThresholds.customMetricThresholds.q",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"blueGreenConfig":{"replicasPerEnv":0}}"#,
                "blueGreenConfig.replicasPerEnv",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"blueGreenConfig":{"trafficStrategy":"weighted"}}"#,
                "blueGreenConfig.weights",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"blueGreenConfig":{"trafficStrategy":"weighted","weights":[50,20]}}"#,
                "blueGreenConfig.weights",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"monitoring":{"consecutiveFailures":0}}"#,
                "monitoring.consecutiveFailures",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"maxDeploymentDuration":0}"#,
                "deploymentConfig.maxDeploymentDuration",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"triggers":[{"kind":"metricThreshold","id":"x","metric":"error_rate","operator":"gt","value":0.1},{"kind":"metricThreshold","id":"x","metric":"error_rate","operator":"gt","value":0.2}]}"#,
                "deploymentConfig.triggers",
            ),
        ];
        for (json, needle) in cases {
            let err = DeploymentConfig::from_json(json)
                .expect_err(json)
                .to_string();
            assert!(
                err.contains(needle),
                "{json}: `{err}` does not mention `{needle}`"
            );
        }
    }

    #[test]
    fn environment_overrides_use_the_brief_names() {
        let env: BTreeMap<&str, &str> = [
            ("VERSION", "2.0.0"),
            ("DEPLOYMENT_STRATEGY", "blue-green"),
            ("REPLICAS", "5"),
            ("TRAFFIC_STRATEGY", "gradual"),
            ("TRAFFIC_INCREMENT", "20"),
            ("TRAFFIC_INTERVAL", "30"),
            ("INITIAL_PERCENTAGE", "2"),
            ("INCREMENT", "8"),
            ("PHASE_DURATION", "2m"),
            ("MAX_ERROR_RATE", "0.05"),
            ("CANARY_ERROR_RATE", "0.02"),
            ("ERROR_RATE_THRESHOLD", "0.10"),
            ("LATENCY_THRESHOLD", "5000"),
            ("CHECK_INTERVAL", "5"),
            ("MONITORING_DURATION", "300"),
            ("CONSECUTIVE_FAILURES", "2"),
            ("NAMESPACE", "production"),
            ("ENVIRONMENT", "prod"),
        ]
        .into_iter()
        .collect();
        let c = base()
            .with_overrides(|k| env.get(k).map(|v| (*v).to_owned()))
            .expect("valid overrides");
        assert_eq!(c.version, semver::Version::new(2, 0, 0));
        assert_eq!(c.strategy, StrategyKind::BlueGreen);
        assert_eq!(c.blue_green_config.replicas_per_env, 5);
        assert_eq!(
            c.blue_green_config.traffic_strategy,
            TrafficStrategyKind::Gradual
        );
        assert_eq!(
            c.blue_green_config.traffic_interval,
            Duration::from_secs(30)
        );
        assert_eq!(c.canary_config.initial_percentage, 2);
        assert_eq!(c.canary_config.increment_percentage, 8);
        assert_eq!(c.canary_config.increment_interval, Duration::from_secs(120));
        assert_eq!(c.canary_thresholds.max_error_rate, Some(0.02));
        assert_eq!(c.monitoring.error_rate_threshold, Some(0.10));
        assert_eq!(c.monitoring.latency_threshold, Some(5000.0));
        assert_eq!(c.monitoring.monitoring_duration, Duration::from_secs(300));
        assert_eq!(c.monitoring.hold_for(), Duration::from_secs(5));
        assert_eq!(c.namespace.as_deref(), Some("production"));
        assert_eq!(c.environment.as_deref(), Some("prod"));
    }

    #[test]
    fn bad_environment_values_name_the_variable_and_change_nothing() {
        let before = base();
        for (k, v, needle) in [
            (
                "REPLICAS",
                "three",
                "REPLICAS (blueGreenConfig.replicasPerEnv)",
            ),
            ("DEPLOYMENT_STRATEGY", "rolling", "DEPLOYMENT_STRATEGY"),
            ("PHASE_DURATION", "soon", "PHASE_DURATION"),
            ("INCREMENT", "0", "canaryConfig.incrementPercentage"),
            ("VERSION", "v2", "VERSION"),
            ("CANARY_ERROR_RATE", "2", "canaryThresholds.maxErrorRate"),
        ] {
            let err = before
                .clone()
                .with_overrides(|name| (name == k).then(|| v.to_owned()))
                .expect_err(k)
                .to_string();
            assert!(err.contains(needle), "{k}={v}: `{err}`");
        }
        assert_eq!(before, base());
    }

    #[test]
    fn the_derived_policy_steps_from_initial_to_target() {
        let mut c = base().canary_config;
        c.initial_percentage = 10;
        c.increment_percentage = 30;
        c.increment_interval = Duration::from_secs(60);
        let p = c.policy().expect("valid");
        let weights: Vec<u8> = p
            .steps
            .iter()
            .filter_map(|s| match s {
                Step::SetWeight(w) => Some(*w),
                _ => None,
            })
            .collect();
        assert_eq!(weights, vec![10, 40, 70]);
        assert_eq!(p.steps.len(), 6);
        assert_eq!(p.max_duration, Some(Duration::from_secs(3_600)));
    }
}
