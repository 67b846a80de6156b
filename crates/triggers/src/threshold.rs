//! Level triggers: [`MetricThresholdTrigger`] (any metric against a threshold) and
//! [`ResourceUsageTrigger`] (CPU or memory as a percentage of capacity).

use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Measurement, Metric, Observation, Timestamp};

use crate::action::Action;
use crate::config::{MetricThresholdConfig, ResourceUsageConfig, TriggerConfig};
use crate::error::{Error, Result};
use crate::evidence::{Evidence, TriggerKind};
use crate::lifecycle::Verdict;
use crate::operator::Operator;
use crate::trigger::{Trigger, found, metric_heap, track_heap};

/// A metric compared with a threshold, with an optional warn level.
///
/// ```
/// use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
/// use serin_triggers::{Action, MetricThresholdTrigger, Trigger, TriggerConfig, Verdict};
///
/// let TriggerConfig::MetricThreshold(config) = serde_json::from_str(r#"{
///     "kind": "metricThreshold", "id": "errors", "metric": "error_rate",
///     "operator": "gt", "value": 0.20, "warnValue": 0.10
/// }"#)? else { unreachable!() };
/// let mut trigger = MetricThresholdTrigger::new(config)?;
/// let window = Window::ending_at(Timestamp::from_millis(60_000), std::time::Duration::from_secs(60));
/// let obs = Observation::new(Metric::ErrorRate, Track::Canary, window,
///     Measurement::Counts(Counts::new(100, 15)?));
/// assert_eq!(trigger.observe(&obs)?, Some(Verdict::Breach(Action::Warn)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricThresholdTrigger {
    config: MetricThresholdConfig,
    last: Option<f64>,
}

impl MetricThresholdTrigger {
    /// A trigger for a config (validated here).
    pub fn new(config: MetricThresholdConfig) -> Result<Self> {
        TriggerConfig::MetricThreshold(config.clone()).validate("metricThreshold")?;
        Ok(MetricThresholdTrigger { config, last: None })
    }

    /// The config.
    pub fn config(&self) -> &MetricThresholdConfig {
        &self.config
    }

    fn watches(&self, obs: &Observation) -> bool {
        obs.metric == self.config.metric && obs.track == self.config.track
    }

    /// The value an observation carries for this trigger, or `None` for no data.
    fn value(&self, obs: &Observation) -> Option<f64> {
        match &obs.measurement {
            // Zero requests over a real window is a reading (traffic stopped), not missing data.
            Measurement::Counts(_) if obs.metric == Metric::Throughput => obs.throughput(),
            Measurement::Counts(c) => c.error_rate(),
            Measurement::Latency(s) => s.quantile(self.config.effective_quantile()),
            Measurement::Gauge(g) => Some(g.value()),
            Measurement::NoData => None,
        }
    }
}

impl Trigger for MetricThresholdTrigger {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::MetricThreshold
    }

    /// Counts (read as a ratio or a rate) and a sketch (read as milliseconds) mean something
    /// only for their own metrics: a latency sketch on an `error_rate` trigger would be its p99
    /// against a fraction, a breach every time, and counts on a `latency` trigger would never
    /// breach. A gauge is the value itself (a source's query may compute any metric), and a
    /// custom metric may come as any of them.
    fn check(&self, obs: &Observation) -> Result<()> {
        if !self.watches(obs) {
            return Ok(());
        }
        let expected = match (&obs.metric, &obs.measurement) {
            (_, Measurement::Gauge(_) | Measurement::NoData)
            | (Metric::Custom(_), _)
            | (Metric::ErrorRate | Metric::Throughput, Measurement::Counts(_))
            | (Metric::Latency, Measurement::Latency(_)) => return Ok(()),
            (Metric::ErrorRate | Metric::Throughput, _) => "counts or a gauge",
            (Metric::Latency, _) => "a latency sketch or a gauge",
            (Metric::Cpu | Metric::Memory, _) => "a gauge",
        };
        Err(Error::MeasurementMismatch {
            trigger: self.config.id.clone(),
            metric: obs.metric.to_string(),
            track: obs.track.to_string(),
            expected,
            found: found(&obs.measurement),
        })
    }

    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>> {
        if !self.watches(obs) {
            return Ok(None);
        }
        self.check(obs)?;
        let Some(v) = self.value(obs) else {
            return Ok(Some(Verdict::NoData));
        };
        self.last = Some(v);
        let c = &self.config;
        Ok(Some(if c.operator.breached(v, c.value) {
            Verdict::Breach(c.action)
        } else if c.warn_value.is_some_and(|w| c.operator.breached(v, w)) {
            Verdict::Breach(Action::Warn)
        } else {
            Verdict::Ok
        }))
    }

    fn observe_health(&mut self, _signal: &HealthSignal) -> Option<Verdict> {
        None
    }

    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        let c = &self.config;
        let warn = self
            .last
            .zip(c.warn_value)
            .filter(|&(v, w)| !c.operator.breached(v, c.value) && c.operator.breached(v, w));
        let (threshold, reason) = match (self.last, warn) {
            (None, _) => (c.value, "no value read yet".to_owned()),
            (Some(v), Some((_, w))) => (
                w,
                format!("{} = {v} {} warn level {w}", c.metric, c.operator),
            ),
            (Some(v), None) if c.operator.breached(v, c.value) => (
                c.value,
                format!(
                    "{} = {v} {} {} level {}",
                    c.metric, c.operator, c.action, c.value
                ),
            ),
            (Some(v), None) => (
                c.value,
                format!("{} = {v} is within {} {}", c.metric, c.operator, c.value),
            ),
        };
        Evidence {
            trigger: c.id.clone(),
            kind: TriggerKind::MetricThreshold,
            subject: format!("{} on {}", c.metric, c.track),
            observed: self.last,
            threshold: Some(threshold),
            operator: Some(c.operator),
            since,
            at,
            reason,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.config.id.capacity()
            + metric_heap(&self.config.metric)
            + track_heap(&self.config.track)
    }
}

/// CPU or memory above a percentage of capacity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceUsageTrigger {
    config: ResourceUsageConfig,
    last_percent: Option<f64>,
}

impl ResourceUsageTrigger {
    /// A trigger for a config (validated here).
    pub fn new(config: ResourceUsageConfig) -> Result<Self> {
        TriggerConfig::ResourceUsage(config.clone()).validate("resourceUsage")?;
        Ok(ResourceUsageTrigger {
            config,
            last_percent: None,
        })
    }

    /// The config.
    pub fn config(&self) -> &ResourceUsageConfig {
        &self.config
    }

    fn watches(&self, obs: &Observation) -> bool {
        obs.metric == self.config.resource.metric() && obs.track == self.config.track
    }
}

impl Trigger for ResourceUsageTrigger {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn kind(&self) -> TriggerKind {
        TriggerKind::ResourceUsage
    }

    fn check(&self, obs: &Observation) -> Result<()> {
        if !self.watches(obs) {
            return Ok(());
        }
        match &obs.measurement {
            Measurement::Gauge(_) | Measurement::NoData => Ok(()),
            other => Err(Error::MeasurementMismatch {
                trigger: self.config.id.clone(),
                metric: obs.metric.to_string(),
                track: obs.track.to_string(),
                expected: "a gauge",
                found: found(other),
            }),
        }
    }

    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>> {
        if !self.watches(obs) {
            return Ok(None);
        }
        self.check(obs)?;
        let Measurement::Gauge(g) = obs.measurement else {
            return Ok(Some(Verdict::NoData));
        };
        // Kept finite: JSON has no infinity, and a saved state must read back as it was.
        let percent = (g.value() / self.config.capacity * 100.0).clamp(-f64::MAX, f64::MAX);
        self.last_percent = Some(percent);
        let c = &self.config;
        Ok(Some(if c.rollback_percent.is_some_and(|r| percent > r) {
            Verdict::Breach(Action::Rollback)
        } else if c.warn_percent.is_some_and(|w| percent > w) {
            Verdict::Breach(Action::Warn)
        } else {
            Verdict::Ok
        }))
    }

    fn observe_health(&mut self, _signal: &HealthSignal) -> Option<Verdict> {
        None
    }

    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        let c = &self.config;
        let level = match self.last_percent {
            Some(p) if c.rollback_percent.is_some_and(|r| p > r) => c.rollback_percent,
            Some(p) if c.warn_percent.is_some_and(|w| p > w) => c.warn_percent,
            _ => c.rollback_percent.or(c.warn_percent),
        };
        let reason = match (self.last_percent, level) {
            (Some(p), Some(l)) => format!(
                "{} at {p:.1}% of capacity {} against {l}%",
                c.resource.metric(),
                c.capacity
            ),
            _ => "no reading yet".to_owned(),
        };
        Evidence {
            trigger: c.id.clone(),
            kind: TriggerKind::ResourceUsage,
            subject: format!("{} on {}", c.resource.metric(), c.track),
            observed: self.last_percent,
            threshold: level,
            operator: Some(Operator::Gt),
            since,
            at,
            reason,
        }
    }

    fn heap_bytes(&self) -> usize {
        self.config.id.capacity() + track_heap(&self.config.track)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::{Counts, Gauge, LatencySketch, Track, Window};
    use std::time::Duration;

    fn window() -> Window {
        Window::ending_at(Timestamp::from_millis(10_000), Duration::from_secs(10))
    }

    fn threshold(json: &str) -> MetricThresholdTrigger {
        let TriggerConfig::MetricThreshold(c) = serde_json::from_str(json).unwrap() else {
            panic!("kind")
        };
        MetricThresholdTrigger::new(c).unwrap()
    }

    #[test]
    fn latency_reads_the_configured_quantile() {
        let mut t = threshold(
            r#"{"kind":"metricThreshold","id":"p99","metric":"latency","operator":"gt",
                "value":10000,"warnValue":5000}"#,
        );
        let mut sketch = LatencySketch::new();
        sketch.add_n(100.0, 980).unwrap();
        sketch.add_n(7_000.0, 20).unwrap();
        let o = Observation::new(
            Metric::Latency,
            Track::Canary,
            window(),
            Measurement::Latency(sketch),
        );
        assert_eq!(t.observe(&o).unwrap(), Some(Verdict::Breach(Action::Warn)));
        let e = t.evidence(Timestamp::from_millis(10_000), None);
        assert_eq!(e.threshold, Some(5000.0));
        assert!(e.reason.contains("warn"), "{}", e.reason);
    }

    #[test]
    fn throughput_below_its_floor_warns_and_no_data_is_not_zero() {
        let mut t = threshold(
            r#"{"kind":"metricThreshold","id":"tput","metric":"throughput","operator":"lt",
                "value":500,"action":"warn"}"#,
        );
        let counts = |r| Measurement::Counts(Counts::new(r, 0).unwrap());
        let o = |m| Observation::new(Metric::Throughput, Track::Canary, window(), m);
        assert_eq!(
            t.observe(&o(counts(4_000))).unwrap(),
            Some(Verdict::Breach(Action::Warn))
        );
        assert_eq!(t.observe(&o(counts(6_000))).unwrap(), Some(Verdict::Ok));
        assert_eq!(
            t.observe(&o(Measurement::NoData)).unwrap(),
            Some(Verdict::NoData)
        );
        // Another track or metric is not this trigger's business.
        let other = Observation::new(Metric::Throughput, Track::Stable, window(), counts(1));
        assert_eq!(t.observe(&other).unwrap(), None);
    }

    #[test]
    fn a_measurement_that_does_not_fit_the_metric_is_rejected() {
        let mut errors = threshold(
            r#"{"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
                "value":0.10}"#,
        );
        let mut sketch = LatencySketch::new();
        sketch.add_n(250.0, 100).unwrap();
        let o = |metric, m| Observation::new(metric, Track::Canary, window(), m);
        let before = errors.clone();
        let err = errors
            .observe(&o(Metric::ErrorRate, Measurement::Latency(sketch.clone())))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`errors`") && err.contains("a latency sketch") && err.contains("counts"),
            "{err}"
        );
        assert_eq!(errors, before);
        // Counts, a gauge holding the rate, and no data fit.
        let counts = Measurement::Counts(Counts::new(100, 5).unwrap());
        let rate = Measurement::Gauge(Gauge::new(0.05).unwrap());
        for fits in [counts.clone(), rate.clone(), Measurement::NoData] {
            assert!(errors.observe(&o(Metric::ErrorRate, fits)).is_ok());
        }
        let mut latency = threshold(
            r#"{"kind":"metricThreshold","id":"p99","metric":"latency","operator":"gt",
                "value":500}"#,
        );
        assert!(
            latency
                .observe(&o(Metric::Latency, counts.clone()))
                .unwrap_err()
                .to_string()
                .contains("a latency sketch or a gauge")
        );
        assert!(latency.observe(&o(Metric::Latency, rate.clone())).is_ok());
        let cpu = threshold(
            r#"{"kind":"metricThreshold","id":"cpu","metric":"cpu","operator":"gt","value":2}"#,
        );
        assert!(cpu.check(&o(Metric::Cpu, counts.clone())).is_err());
        // A custom metric may come as anything.
        let mut custom = threshold(
            r#"{"kind":"metricThreshold","id":"q","metric":"queue_wait","operator":"gt",
                "value":500}"#,
        );
        let queue_wait = Metric::named("queue_wait").unwrap();
        for m in [counts, rate, Measurement::Latency(sketch)] {
            assert!(custom.observe(&o(queue_wait.clone(), m)).is_ok());
        }
    }

    #[test]
    fn a_reading_past_every_percentage_resumes_exactly() {
        let TriggerConfig::ResourceUsage(c) = serde_json::from_str(
            r#"{"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":0.5,
                "rollbackPercent":95}"#,
        )
        .unwrap() else {
            panic!("kind")
        };
        let mut t = ResourceUsageTrigger::new(c).unwrap();
        let huge = Measurement::Gauge(Gauge::new(f64::MAX).unwrap());
        let o = Observation::new(Metric::Cpu, Track::Canary, window(), huge);
        assert_eq!(
            t.observe(&o).unwrap(),
            Some(Verdict::Breach(Action::Rollback))
        );
        // JSON has no infinity: a percentage that overflowed would be read back as no reading.
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(
            serde_json::from_str::<ResourceUsageTrigger>(&json).unwrap(),
            t
        );
    }

    #[test]
    fn resource_usage_is_a_percentage_of_capacity() {
        let TriggerConfig::ResourceUsage(c) = serde_json::from_str(
            r#"{"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":2,
                "warnPercent":80,"rollbackPercent":95}"#,
        )
        .unwrap() else {
            panic!("kind")
        };
        let mut t = ResourceUsageTrigger::new(c).unwrap();
        let g = |v| {
            Observation::new(
                Metric::Cpu,
                Track::Canary,
                window(),
                Measurement::Gauge(Gauge::new(v).unwrap()),
            )
        };
        assert_eq!(t.observe(&g(1.0)).unwrap(), Some(Verdict::Ok));
        assert_eq!(
            t.observe(&g(1.7)).unwrap(),
            Some(Verdict::Breach(Action::Warn))
        );
        assert_eq!(
            t.observe(&g(1.95)).unwrap(),
            Some(Verdict::Breach(Action::Rollback))
        );
        assert_eq!(t.evidence(Timestamp::EPOCH, None).threshold, Some(95.0));
        let bad = Observation::new(
            Metric::Cpu,
            Track::Canary,
            window(),
            Measurement::Counts(Counts::default()),
        );
        let before = t.clone();
        assert!(t.observe(&bad).unwrap_err().to_string().contains("a gauge"));
        assert_eq!(t, before);
    }
}
