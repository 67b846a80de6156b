//! `monitoring`: the checks during a rollout and the watch after promotion.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

use super::{human, humantime_like, positive};

/// The watch after promotion (and the checks during a rollout): `CHECK_INTERVAL`,
/// `MONITORING_DURATION`, `CONSECUTIVE_FAILURES`, `ERROR_RATE_THRESHOLD`, `LATENCY_THRESHOLD`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct MonitoringConfig {
    /// How often signals are read and triggers checked during a blue-green switch, while a
    /// promoted canary's track grows to full size, and after promotion (during a canary's
    /// analysis they are read once per `canaryConfig.metricsWindow`). Default `5s`.
    #[serde(with = "serin_signals::duration")]
    pub check_interval: Duration,
    /// How long the new version is watched after promotion. Default `5m`. The watch ends only
    /// on evidence: it goes on while a trigger holds, and while a rollback trigger has judged
    /// nothing of the new version since the promotion (a `latencyThreshold` over a source that
    /// records no latency, say), until the data comes or `maxDeploymentDuration` runs out. A
    /// canary, likewise, is promoted only once each of them has judged some data of the new
    /// version; until then it holds at its weight, and `canaryConfig.maxDuration` rolls back.
    #[serde(with = "serin_signals::duration")]
    pub monitoring_duration: Duration,
    /// How long after its end each metrics window is read. The windows stay the same
    /// (`[start, end)`, one after the other); only the read moves, to `end + readDelay`.
    /// Default `0s`: read the instant the window ends.
    ///
    /// A source that records a sample a little after the instant it belongs to (Prometheus
    /// scrapes every 15–60 s; a proxy counts a request when its response ends) answers a read
    /// made at the window's end without the samples not yet recorded, and no later window
    /// reads them: they are lost to the judges and triggers. A read delay of the source's lag
    /// gives them time to arrive; a Prometheus source wants about one scrape interval.
    ///
    /// Every decision comes that much later: a bad version serves `readDelay` longer before
    /// it is switched back, and the first `readDelay` of a window after a weight change still
    /// saw the previous weight. It must be shorter than `checkInterval`; for a canary, keep it
    /// shorter than `canaryConfig.metricsWindow` too, or every decision trails its window by
    /// more than a window. Deadlines keep their meaning: a read due after
    /// `maxDeploymentDuration` is not made, the deadline decides. So a canary's timed pauses
    /// plus `readDelay` must be shorter than `maxDeploymentDuration` and
    /// `canaryConfig.maxDuration`: the last pause is over only once its window is read.
    #[serde(with = "serin_signals::duration")]
    pub read_delay: Duration,
    /// How long a monitoring threshold (`errorRateThreshold`, `latencyThreshold`) must be
    /// breached before it rolls back, in checks: the breach must last `consecutiveFailures - 1`
    /// check intervals of data time, from the end of its first breaching check to the end of the
    /// latest (see [`hold_for`](Self::hold_for)). Default 3.
    ///
    /// It is a span of time, not a tally of checks. With data at every check, as during a
    /// blue-green switch and after promotion, it is `consecutiveFailures` breaching checks in a
    /// row, and a healthy check ends the breach. A check without data (no requests, a metrics
    /// outage) ends nothing and the span runs on across it: breaching checks on either side of
    /// it are one breach, since missing data is no evidence that the breach ended (the
    /// triggers hold meanwhile, and a gap longer than five minutes ends the breach). During a
    /// canary's analysis, whose checks come once per `metricsWindow`, a threshold rolls back at
    /// the first breaching window that ends at least that long after the breach began. A
    /// span keeps the bound the same whatever a stage's cadence and however the data comes:
    /// a bad version serves for about as long as configured before it is switched back, where
    /// a tally would grow with every window that brought no data.
    pub consecutive_failures: u32,
    /// Error rate (fraction: `0.10` = 10%) above which the new version is rolled back, once
    /// the breach has lasted `consecutiveFailures` checks (see there); `null` turns it off.
    /// Default `0.10`, as `ERROR_RATE_THRESHOLD` sets it.
    ///
    /// The product brief states two policies: its `.env` sets `ERROR_RATE_THRESHOLD=0.10` and
    /// its metric-trigger example rolls back at `error_rate` `gt` `0.10`, while its alert table
    /// says to warn above 10% and roll back above 20%. The default follows the `.env` and the
    /// trigger example. They are the brief's configuration, and this is the field
    /// `ERROR_RATE_THRESHOLD` sets, so the variable and the default must mean the same thing.
    /// Rolling back at 10% also keeps the blast radius small: a version failing one request in
    /// eight is not left serving because it stays under 20%. The alert table's tiers take one
    /// trigger: turn this field off and add a metric trigger that warns at `0.10` and rolls
    /// back at `0.20`.
    ///
    /// ```
    /// use serin_orchestrator::DeploymentConfig;
    ///
    /// let tiers = DeploymentConfig::from_yaml(r#"
    /// strategy: canary
    /// version: 1.1.0
    /// targetServices: [web]
    /// monitoring: { errorRateThreshold: null }
    /// triggers:
    ///   - { kind: metricThreshold, id: error-rate, metric: error_rate, operator: gt,
    ///       value: 0.20, warnValue: 0.10 }
    /// "#)?;
    /// assert_eq!(tiers.monitoring.error_rate_threshold, None);
    /// let ids: Vec<String> = tiers.trigger_config()?.triggers.iter().map(|t| t.id().to_owned()).collect();
    /// assert_eq!(ids, ["error-rate"]);
    ///
    /// let default = DeploymentConfig::from_yaml("strategy: canary\nversion: 1.1.0\ntargetServices: [web]")?;
    /// assert_eq!(default.monitoring.error_rate_threshold, Some(0.10));
    /// # Ok::<(), serin_orchestrator::Error>(())
    /// ```
    ///
    /// Written as `null` when off, so that it reads back off rather than as the default (a
    /// journal writes the config a deployment resumes with). TOML has no `null`: there, `1`
    /// leaves it on but never breached.
    pub error_rate_threshold: Option<f64>,
    /// p99 latency in milliseconds that rolls back when breached for `consecutiveFailures`
    /// checks (see there).
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
    /// delay is cut short) and the deployment succeeds. The upgrade steps after the deployment
    /// that a step runner would carry out are not started past the deadline, which bounds them
    /// too: they are recorded as due, for an operator (see `StepRunner`).
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
            read_delay: Duration::ZERO,
            consecutive_failures: 3,
            error_rate_threshold: Some(0.10),
            latency_threshold: None,
            on_deadline: OnDeadline::Complete,
        }
    }
}

impl MonitoringConfig {
    pub(super) fn validate(&self) -> Result<()> {
        let path = "monitoring";
        positive(&format!("{path}.checkInterval"), self.check_interval)?;
        if self.check_interval < Duration::from_millis(10) {
            return Err(Error::invalid(
                format!("{path}.checkInterval"),
                humantime_like(self.check_interval),
                "must be at least 10ms",
            ));
        }
        // The first check after promotion comes one interval after it: a longer interval
        // than the watch would end the watch before anything was checked.
        if self.check_interval > self.monitoring_duration {
            return Err(Error::invalid(
                format!("{path}.checkInterval"),
                human(self.check_interval),
                format!(
                    "must not be longer than {path}.monitoringDuration ({}): the watch after \
                     promotion would end before its first check",
                    human(self.monitoring_duration)
                ),
            ));
        }
        self.check_read_delay(&format!("{path}.checkInterval"), self.check_interval)?;
        if self.consecutive_failures == 0 {
            return Err(Error::invalid(
                format!("{path}.consecutiveFailures"),
                0,
                "must be at least 1",
            ));
        }
        // The trigger fires above it, and no error rate is above 1.
        if let Some(v) = self.error_rate_threshold
            && !(v > 0.0 && v < 1.0)
        {
            return Err(Error::invalid(
                format!("{path}.errorRateThreshold"),
                v,
                "must be a fraction in (0, 1) (0.10 = 10%): no error rate exceeds 1",
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

    /// Refuses a `readDelay` not shorter than `interval` (at `interval_path`), the time
    /// between two reads: each read would come a whole interval or more after its window
    /// ended, after the next window had ended too, so every decision would trail the data by
    /// more than the interval it is meant to be made in.
    pub(super) fn check_read_delay(&self, interval_path: &str, interval: Duration) -> Result<()> {
        if self.read_delay >= interval {
            return Err(Error::invalid(
                "monitoring.readDelay",
                human(self.read_delay),
                format!(
                    "must be shorter than {interval_path} ({}): each window would be read only \
                     after the next one had ended, so reads would pile up behind the data and \
                     every decision trail it by more than one interval",
                    human(interval)
                ),
            ));
        }
        Ok(())
    }

    /// How long a monitoring threshold's breach must hold before it rolls back:
    /// `consecutiveFailures - 1` check intervals (the end of the first breaching check starts
    /// the clock, so a breach seen at `consecutiveFailures` checks in a row rolls back at the
    /// last of them).
    pub fn hold_for(&self) -> Duration {
        self.check_interval
            .saturating_mul(self.consecutive_failures.saturating_sub(1))
    }
}
