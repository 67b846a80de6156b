//! [`Evidence`]: why a trigger changed state, in values a human or an audit log can check.

use std::fmt;

use serde::{Deserialize, Serialize};
use serin_signals::Timestamp;

use crate::operator::Operator;

/// The kind of a trigger, as written in config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TriggerKind {
    /// A metric compared with a threshold for a duration.
    MetricThreshold,
    /// Consecutive failing readiness / liveness / startup probes.
    HealthCheck,
    /// Error rate above a baseline (ratio rule or CUSUM).
    ErrorSpike,
    /// An external dependency failing its checks.
    DependencyFailure,
    /// CPU or memory above a share of capacity.
    ResourceUsage,
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TriggerKind::MetricThreshold => "metricThreshold",
            TriggerKind::HealthCheck => "healthCheck",
            TriggerKind::ErrorSpike => "errorSpike",
            TriggerKind::DependencyFailure => "dependencyFailure",
            TriggerKind::ResourceUsage => "resourceUsage",
        })
    }
}

/// What a trigger saw when it changed state: the subject, the value, the bound it was compared
/// with, since when the condition held and a sentence saying why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Evidence {
    /// The trigger's id.
    pub trigger: String,
    /// The trigger's kind.
    pub kind: TriggerKind,
    /// What was watched (`error_rate on canary`, `readiness of app on canary`).
    pub subject: String,
    /// The last value the trigger read (rate, milliseconds, percent, failures, statistic), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed: Option<f64>,
    /// The bound it was compared with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// The comparison, if the trigger compares a value with a bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<Operator>,
    /// Since when the reported condition has held, if it is a breach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Timestamp>,
    /// When the state changed.
    pub at: Timestamp,
    /// Why, in one sentence.
    pub reason: String,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} `{}`: {}", self.kind, self.trigger, self.reason)?;
        // The comparison is stated only where it holds: evidence also reports triggers that
        // clear or go stale, whose last value is on the healthy side.
        if let (Some(v), Some(op), Some(t)) = (self.observed, self.operator, self.threshold) {
            let not = if op.breached(v, t) { "" } else { ", not" };
            write!(f, " ({} = {v}{not} {op} {t})", self.subject)?;
        }
        if let Some(since) = self.since {
            write!(f, " since {since}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn evidence(observed: f64) -> Evidence {
        Evidence {
            trigger: "errors".into(),
            kind: TriggerKind::MetricThreshold,
            subject: "error_rate on canary".into(),
            observed: Some(observed),
            threshold: Some(0.2),
            operator: Some(Operator::Gt),
            since: None,
            at: Timestamp::EPOCH,
            reason: "why".into(),
        }
    }

    #[test]
    fn the_comparison_rendered_is_the_one_that_holds() {
        assert_eq!(
            evidence(0.25).to_string(),
            "metricThreshold `errors`: why (error_rate on canary = 0.25 > 0.2)"
        );
        // A healthy last value (a trigger clearing, or gone stale after it) is not a breach.
        assert_eq!(
            evidence(0.01).to_string(),
            "metricThreshold `errors`: why (error_rate on canary = 0.01, not > 0.2)"
        );
    }
}
