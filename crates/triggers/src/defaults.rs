//! The product's alert table as ready-made triggers: every level is a default to override.
//!
//! | Metric | Warn | Rollback |
//! |---|---|---|
//! | error rate | > 10% | > 20% |
//! | latency p99 | > 5000 ms | > 10 s |
//! | throughput | < 500 req/s | — |
//! | CPU | > 80% | > 95% |
//! | memory | > 85% | — |
//!
//! Each level must hold for 30 s and each trigger cools down for 1 min, as in the brief's
//! metric-trigger example.

use std::time::Duration;

use serin_signals::{Metric, Track};

use crate::action::{Action, MissingData};
use crate::config::{MetricThresholdConfig, Resource, ResourceUsageConfig, TriggerConfig};
use crate::error::Result;
use crate::operator::Operator;

/// How long a level must hold in the alert table.
pub const ALERT_DURATION: Duration = Duration::from_secs(30);
/// The alert table's cooldown.
pub const ALERT_COOLDOWN: Duration = Duration::from_secs(60);

fn threshold(
    id: &str,
    track: &Track,
    metric: Metric,
    operator: Operator,
    value: f64,
    action: Action,
    warn_value: Option<f64>,
) -> TriggerConfig {
    TriggerConfig::MetricThreshold(MetricThresholdConfig {
        id: id.to_owned(),
        track: track.clone(),
        metric,
        operator,
        value,
        action,
        warn_value,
        quantile: None,
        duration: ALERT_DURATION,
        cooldown: ALERT_COOLDOWN,
        on_missing_data: MissingData::Hold,
        stale_after: Duration::from_secs(60),
    })
}

fn resource(
    id: &str,
    track: &Track,
    resource: Resource,
    capacity: f64,
    warn_percent: f64,
    rollback_percent: Option<f64>,
) -> TriggerConfig {
    TriggerConfig::ResourceUsage(ResourceUsageConfig {
        id: id.to_owned(),
        track: track.clone(),
        resource,
        capacity,
        warn_percent: Some(warn_percent),
        rollback_percent,
        duration: ALERT_DURATION,
        cooldown: ALERT_COOLDOWN,
        on_missing_data: MissingData::Hold,
        stale_after: Duration::from_secs(60),
    })
}

/// The alert table's five triggers for `track`, with ids `error-rate`, `latency-p99`,
/// `throughput`, `cpu` and `memory`. CPU and memory percentages refer to `cpu_cores` and
/// `memory_bytes` of capacity (the track's limits); non-positive capacities are an error.
///
/// ```
/// use serin_signals::{Timestamp, Track};
/// use serin_triggers::{defaults, Engine, EngineConfig};
///
/// let triggers = defaults::alert_table(&Track::Canary, 2.0, 4.0 * 1024.0 * 1024.0 * 1024.0)?;
/// let engine = Engine::new(EngineConfig { triggers }, Timestamp::EPOCH)?;
/// assert_eq!(engine.len(), 5);
/// # Ok::<(), serin_triggers::Error>(())
/// ```
pub fn alert_table(track: &Track, cpu_cores: f64, memory_bytes: f64) -> Result<Vec<TriggerConfig>> {
    let table = vec![
        threshold(
            "error-rate",
            track,
            Metric::ErrorRate,
            Operator::Gt,
            0.20,
            Action::Rollback,
            Some(0.10),
        ),
        threshold(
            "latency-p99",
            track,
            Metric::Latency,
            Operator::Gt,
            10_000.0,
            Action::Rollback,
            Some(5_000.0),
        ),
        threshold(
            "throughput",
            track,
            Metric::Throughput,
            Operator::Lt,
            500.0,
            Action::Warn,
            None,
        ),
        resource("cpu", track, Resource::Cpu, cpu_cores, 80.0, Some(95.0)),
        resource("memory", track, Resource::Memory, memory_bytes, 85.0, None),
    ];
    for (i, t) in table.iter().enumerate() {
        t.validate(&format!("alertTable[{i}]"))?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_validates_and_rejects_bad_capacities() {
        let t = alert_table(&Track::Canary, 2.0, 1e9).unwrap();
        assert_eq!(t.len(), 5);
        let msg = alert_table(&Track::Canary, 0.0, 1e9)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("alertTable[3].capacity"), "{msg}");
    }
}
