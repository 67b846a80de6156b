//! `blueGreenConfig`: replicas, readiness, and how traffic moves to the new colour.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_traffic::{Plan, Strategy, TrafficSplit, Weight, WeightedStep};

use crate::error::{Error, Result};

use super::{human, percent, positive, replicas};

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

impl TrafficStrategyKind {
    /// The name as written in config (`gradual`).
    pub fn as_str(self) -> &'static str {
        match self {
            TrafficStrategyKind::Immediate => "immediate",
            TrafficStrategyKind::Gradual => "gradual",
            TrafficStrategyKind::Weighted => "weighted",
        }
    }
}

/// Blue-green settings (`blueGreenConfig`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct BlueGreenConfig {
    /// Instances per colour (`REPLICAS`), 1 to `TrackSpec::MAX_INSTANCES` (64). Default 3.
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
    /// How long the old version stays up after promotion, ready to take traffic back (in every
    /// strategy): it is retired once this has passed and the watch
    /// (`monitoring.monitoringDuration`) has ended, whichever is later. Default `5m`.
    ///
    /// Only the watch is monitored. When this delay outlasts it, no rollback trigger checks the
    /// new version for the rest of it: like Argo Rollouts' `scaleDownDelaySeconds`, it keeps the
    /// old version for a quick switch back, it does not watch for one. Until the old version is
    /// retired, an operator's abort (or `monitoring.onDeadline: rollback` at the deadline) still
    /// gives it all traffic at once, without starting it again. To have the new version watched
    /// longer, raise `monitoring.monitoringDuration`.
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

    /// The switch's plan from `start` (all on the old colour) to `new`, on router `router`,
    /// which takes weights only in multiples of `granularity`. A step off it is refused
    /// naming the field that asked for it (`trafficIncrement`, `weights[i]`), or
    /// `trafficStrategy` on a router that takes all or nothing, where no other weight helps.
    pub(crate) fn plan_on(
        &self,
        start: &TrafficSplit,
        new: &str,
        granularity: Weight,
        router: &str,
    ) -> Result<Plan> {
        let path = "blueGreenConfig";
        let strategy = self.traffic()?;
        Plan::shift_with_granularity(start, new, &strategy, granularity).map_err(|e| {
            let (field, reason) = match &e {
                serin_traffic::Error::InvalidField { field, reason, .. } => {
                    (field.as_str(), reason.clone())
                }
                other => ("", other.to_string()),
            };
            let step = field
                .strip_prefix("strategy.steps[")
                .and_then(|rest| rest.strip_suffix("].weight"))
                .and_then(|i| i.parse::<usize>().ok())
                .and_then(|i| Some((i, self.weights.get(i)?)));
            let reason = format!("{reason}, which router `{router}` takes");
            match (field, step) {
                _ if granularity == Weight::FULL => Error::invalid(
                    format!("{path}.trafficStrategy"),
                    self.traffic_strategy.as_str(),
                    reason,
                ),
                ("strategy.increment", _) => Error::invalid(
                    format!("{path}.trafficIncrement"),
                    self.traffic_increment,
                    reason,
                ),
                (_, Some((i, w))) => Error::invalid(format!("{path}.weights[{i}]"), w, reason),
                _ => Error::invalid(
                    format!("{path}.trafficStrategy"),
                    self.traffic_strategy.as_str(),
                    e.to_string(),
                ),
            }
        })
    }

    /// How long a switch from the old colour to the new one holds its steps together before
    /// the new version takes all traffic and is promoted (zero for an immediate switch), and
    /// the fields that set it, for errors. Every deployment that switches sits through these
    /// holds, however healthy the new version is.
    pub(super) fn switch_holds(&self) -> Result<(Duration, String)> {
        let path = "blueGreenConfig";
        let strategy = self.traffic()?;
        let plan = TrafficSplit::all_to("blue", &["green"])
            .and_then(|from| Plan::shift(&from, "green", &strategy))
            .map_err(|e| {
                Error::invalid(
                    format!("{path}.trafficStrategy"),
                    self.traffic_strategy.as_str(),
                    e.to_string(),
                )
            })?;
        let held = plan.steps().iter().filter(|s| !s.hold().is_zero()).count();
        let interval = human(self.traffic_interval);
        let from = match self.traffic_strategy {
            TrafficStrategyKind::Immediate => format!("{path}.trafficStrategy `immediate`"),
            TrafficStrategyKind::Gradual => format!(
                "{path}.trafficInterval ({interval}) for each of {held} steps of \
                 {path}.trafficIncrement ({}%)",
                self.traffic_increment
            ),
            TrafficStrategyKind::Weighted => format!(
                "{path}.trafficInterval ({interval}) for each of {path}.weights {:?}",
                self.weights
            ),
        };
        Ok((plan.total_hold(), from))
    }

    /// The switch as the config writes it, for the dry run: the strategy's name and the
    /// settings it reads (`gradual: trafficIncrement 25% every trafficInterval 30s`), so that
    /// a reader finds in the plan the words of the file.
    pub(crate) fn switch_as_written(&self) -> String {
        let interval = human(self.traffic_interval);
        match self.traffic_strategy {
            TrafficStrategyKind::Immediate => "immediate".to_owned(),
            TrafficStrategyKind::Gradual => format!(
                "gradual: trafficIncrement {}% every trafficInterval {interval}",
                self.traffic_increment
            ),
            TrafficStrategyKind::Weighted => format!(
                "weighted: weights [{}] each held trafficInterval {interval}",
                self.weights
                    .iter()
                    .map(f64::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    pub(super) fn validate(&self) -> Result<()> {
        let path = "blueGreenConfig";
        replicas(&format!("{path}.replicasPerEnv"), self.replicas_per_env)?;
        positive(
            &format!("{path}.healthCheckInterval"),
            self.health_check_interval,
        )?;
        positive(&format!("{path}.readinessTimeout"), self.readiness_timeout)?;
        if self.traffic_strategy == TrafficStrategyKind::Gradual {
            percent(&format!("{path}.trafficIncrement"), self.traffic_increment)?;
            positive(&format!("{path}.trafficInterval"), self.traffic_interval)?;
        }
        if self.traffic_strategy == TrafficStrategyKind::Weighted {
            if self.weights.is_empty() {
                return Err(Error::invalid(
                    format!("{path}.weights"),
                    "[]",
                    format!(
                        "{path}.trafficStrategy is `weighted`, and a weighted switch needs at \
                         least one weight"
                    ),
                ));
            }
            // Each weight holds for the interval: a zero one would pass every weight at once,
            // before any check could see it.
            positive(&format!("{path}.trafficInterval"), self.traffic_interval)?;
        }
        self.traffic().map(|_| ())
    }
}
