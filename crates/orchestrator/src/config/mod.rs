//! [`DeploymentConfig`]: what to deploy, how, and when to roll back — in the product brief's
//! shape (`strategy`, `version`, `targetServices`, `blueGreenConfig`, `canaryConfig`,
//! `canaryThresholds`, `triggers`, `notificationChannels`, `rollbackOnError`,
//! `maxDeploymentDuration`), loaded from YAML, TOML or JSON, overridden by the brief's
//! environment variables, and validated on load with errors that name the path.

mod blue_green;
mod canary;
mod monitoring;
mod notify;
mod parity;

pub use blue_green::{BlueGreenConfig, TrafficStrategyKind};
use canary::threshold_trigger;
pub use canary::{Bounds, CanaryConfig, CanaryThresholds};
pub(crate) use canary::{ROBUST_BATCH_SPAN, whole_windows};
pub use monitoring::{MonitoringConfig, OnDeadline};
#[cfg(feature = "notify")]
pub(crate) use notify::redact_url;
pub use notify::{ChannelKind, NotificationChannel, NotifyOn};
pub use parity::{ParityJudges, ParityRole};

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Track};
use serin_triggers::{Action as TriggerAction, EngineConfig, Operator, TriggerConfig};

use crate::error::{Error, Result};
use crate::platform::{TrackSpec, validate_service};

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
/// Its fields are the file's top-level keys, so the errors of [`validate`](Self::validate)
/// name each field by the path the file writes (`targetServices[1]`, `maxDeploymentDuration`,
/// `canaryConfig.incrementPercentage`, `triggers[0].value`), with no prefix of their own; only
/// an error parsing the whole text names the document (`deploymentConfig`).
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
    /// The services to deploy, each a DNS label (platforms name tracks after it): one after
    /// the other in this order, or, with a compatibility validator, group by group in its
    /// rollout order for the set (see `Orchestrator::run`).
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
    /// Extra rollback triggers (see `serin-triggers`). They run beside the triggers derived
    /// from `canaryThresholds` and `monitoring`, whose ids they may not take:
    /// `canary-max-error-rate`, `canary-max-latency`, `canary-min-throughput`,
    /// `canary-max-cpu`, `canary-max-memory`, `canary-<metric>-max` and `canary-<metric>-min`
    /// (one per custom metric bound), `error-rate-threshold` and `latency-threshold`, each
    /// while the threshold it stands for is set.
    #[serde(default)]
    pub triggers: Vec<TriggerConfig>,
    /// Where notifications go.
    #[serde(default)]
    pub notification_channels: Vec<NotificationChannel>,
    /// Roll back when an action fails (a router or platform error). Default `true`.
    #[serde(default = "yes")]
    pub rollback_on_error: bool,
    /// How long the deployment may take from its start. Default `2h`. It is checked while the
    /// new version starts, while traffic moves and after promotion. An upgrade step the step
    /// runner carries out (a migration, before or after the deployment) does not outlive it:
    /// the step is cancelled at the deadline and marked failed, and a step whose turn comes
    /// past it is not started (see `StepRunner`); so is a backup, a restore or a listing of the
    /// backup provider in preparation (see `BackupProvider`). Before
    /// promotion it rolls back (in preparation, before anything is deployed, it fails);
    /// after promotion `monitoring.onDeadline` decides, by default completing the deployment
    /// at once. It must be longer than
    /// `blueGreenConfig.readinessTimeout`, than a canary's timed pauses together and than a
    /// blue-green switch's holds together (`trafficInterval` per step), which would otherwise
    /// never run their course.
    #[serde(default = "two_hours", with = "serin_signals::duration")]
    pub max_deployment_duration: Duration,
    /// What `resume` does after a crash. Default `continue`.
    #[serde(default)]
    pub on_resume: OnResume,
    /// The namespace (`NAMESPACE`), recorded in the report: a DNS label, as the brief's
    /// Kubernetes namespaces are (blank names none). It is a label only: the `Platform` trait
    /// takes no namespace, so a platform that has namespaces is given its own when it is built.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The environment name (`ENVIRONMENT`), recorded in the report and shown in
    /// notifications: any text without control characters (blank names none).
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
        let (as_compat, label) = match format {
            Format::Yaml => (serin_compat::Format::Yaml, "(yaml)"),
            Format::Toml => (serin_compat::Format::Toml, "(toml)"),
            Format::Json => (serin_compat::Format::Json, "(json)"),
        };
        let config: DeploymentConfig = serin_compat::catalog::from_str(text, as_compat)
            .map_err(|e| Error::invalid("deploymentConfig", label, parse_reason(e)))?;
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
    /// (`PHASE_DURATION=300`); human strings (`5m`) work too. A variable whose field nothing
    /// reads under the deployment's strategy is refused rather than ignored: in a blue-green
    /// deployment, `TRAFFIC_INCREMENT` needs a gradual switch (`TRAFFIC_STRATEGY=gradual`) and
    /// `TRAFFIC_INTERVAL` a gradual or weighted one; in a canary, `INITIAL_PERCENTAGE`,
    /// `INCREMENT` and `PHASE_DURATION` need derived steps (no `canaryConfig.steps`). The
    /// other strategy's variables are left alone, as one `.env` serves every make target.
    pub fn with_overrides(self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let mut c = self;
        let get = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(v) = get("VERSION") {
            c.version = semver::Version::parse(&v).map_err(|e| {
                Error::invalid(
                    label("VERSION"),
                    &v,
                    format!("must be a semantic version such as `1.1.0` ({e})"),
                )
            })?;
        }
        if let Some(v) = get("DEPLOYMENT_STRATEGY") {
            c.strategy = StrategyKind::parse(&label("DEPLOYMENT_STRATEGY"), &v)?;
        }
        if let Some(v) = get("REPLICAS") {
            c.blue_green_config.replicas_per_env = num(&label("REPLICAS"), &v, INSTANCES)?;
        }
        if let Some(v) = get("TRAFFIC_STRATEGY") {
            c.blue_green_config.traffic_strategy = match v.as_str() {
                "immediate" => TrafficStrategyKind::Immediate,
                "gradual" => TrafficStrategyKind::Gradual,
                "weighted" => TrafficStrategyKind::Weighted,
                other => {
                    return Err(Error::invalid(
                        label("TRAFFIC_STRATEGY"),
                        other,
                        "must be `immediate`, `gradual` or `weighted`",
                    ));
                }
            };
        }
        if let Some(v) = get("TRAFFIC_INCREMENT") {
            c.blue_green_config.traffic_increment = num(&label("TRAFFIC_INCREMENT"), &v, PERCENT)?;
        }
        if let Some(v) = get("TRAFFIC_INTERVAL") {
            c.blue_green_config.traffic_interval = secs(&label("TRAFFIC_INTERVAL"), &v)?;
        }
        if let Some(v) = get("INITIAL_PERCENTAGE") {
            c.canary_config.initial_percentage =
                num(&label("INITIAL_PERCENTAGE"), &v, WHOLE_PERCENT)?;
        }
        if let Some(v) = get("INCREMENT") {
            c.canary_config.increment_percentage = num(&label("INCREMENT"), &v, WHOLE_PERCENT)?;
        }
        if let Some(v) = get("PHASE_DURATION") {
            c.canary_config.increment_interval = secs(&label("PHASE_DURATION"), &v)?;
        }
        if let Some(v) = get("MAX_ERROR_RATE") {
            c.canary_thresholds.max_error_rate = Some(num(&label("MAX_ERROR_RATE"), &v, FRACTION)?);
        }
        if let Some(v) = get("CANARY_ERROR_RATE") {
            c.canary_thresholds.max_error_rate =
                Some(num(&label("CANARY_ERROR_RATE"), &v, FRACTION)?);
        }
        if let Some(v) = get("ERROR_RATE_THRESHOLD") {
            c.monitoring.error_rate_threshold =
                Some(num(&label("ERROR_RATE_THRESHOLD"), &v, FRACTION)?);
        }
        if let Some(v) = get("LATENCY_THRESHOLD") {
            c.monitoring.latency_threshold =
                Some(num(&label("LATENCY_THRESHOLD"), &v, MILLISECONDS)?);
        }
        if let Some(v) = get("CHECK_INTERVAL") {
            c.monitoring.check_interval = secs(&label("CHECK_INTERVAL"), &v)?;
        }
        if let Some(v) = get("MONITORING_DURATION") {
            c.monitoring.monitoring_duration = secs(&label("MONITORING_DURATION"), &v)?;
        }
        if let Some(v) = get("CONSECUTIVE_FAILURES") {
            c.monitoring.consecutive_failures = num(&label("CONSECUTIVE_FAILURES"), &v, CHECKS)?;
        }
        if let Some(v) = get("NAMESPACE") {
            namespace("NAMESPACE (namespace)", &v)?;
            c.namespace = Some(v);
        }
        if let Some(v) = get("ENVIRONMENT") {
            environment("ENVIRONMENT (environment)", &v)?;
            c.environment = Some(v);
        }
        c.check_overrides_read(get)?;
        // A value that parses but is out of range is caught here: name its variable too. A
        // check across two fields names one of them; when a variable set the other, the
        // reason says so.
        c.validate().map_err(|e| match e {
            Error::InvalidField {
                field,
                value,
                mut reason,
            } => {
                let set = |path: &&(&str, &str)| get(path.0).is_some();
                let var = OVERRIDES
                    .iter()
                    .filter(set)
                    .find(|(_, path)| field.ends_with(path));
                if var.is_none() {
                    let others: Vec<String> = OVERRIDES
                        .iter()
                        .filter(set)
                        .filter(|(_, path)| reason.contains(path))
                        .map(|(other, path)| format!("{path} is set by {other}"))
                        .collect();
                    if !others.is_empty() {
                        reason = format!("{reason} ({})", others.join("; "));
                    }
                }
                Error::InvalidField {
                    field: var.map_or(field.clone(), |(var, _)| format!("{var} ({field})")),
                    value,
                    reason,
                }
            }
            other => other,
        })?;
        Ok(c)
    }

    /// Refuses a variable that sets a field nothing reads, as
    /// [`check_no_dead_fields`](Self::check_no_dead_fields) refuses such a field: the brief's
    /// `TRAFFIC_INCREMENT=20` over an immediate switch, or `PHASE_DURATION` over explicit
    /// canary steps, would otherwise be ignored without a word.
    fn check_overrides_read(&self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let traffic = self.blue_green_config.traffic_strategy;
        let switch = format!(
            "blueGreenConfig.trafficStrategy is `{}`; set TRAFFIC_STRATEGY=gradual",
            traffic.as_str()
        );
        let mut unread = Vec::new();
        // Only the deployment's own strategy counts: a `.env` shared by every make target may
        // set the blue-green variables for a canary, and the canary ones for a blue-green.
        let switches = self.strategy == StrategyKind::BlueGreen;
        let canary = self.strategy != StrategyKind::BlueGreen;
        if switches && traffic != TrafficStrategyKind::Gradual {
            unread.push((
                "TRAFFIC_INCREMENT",
                format!("only a `gradual` switch reads it, and {switch}"),
            ));
        }
        if switches && traffic == TrafficStrategyKind::Immediate {
            unread.push((
                "TRAFFIC_INTERVAL",
                format!("only a `gradual` or `weighted` switch reads it, and {switch}"),
            ));
        }
        if canary && self.canary_config.steps.is_some() {
            for var in ["INITIAL_PERCENTAGE", "INCREMENT", "PHASE_DURATION"] {
                unread.push((
                    var,
                    "canaryConfig.steps are explicit and replace the steps derived from it; \
                     remove steps from the config to derive them"
                        .to_owned(),
                ));
            }
        }
        match unread
            .into_iter()
            .find_map(|(var, why)| Some((var, get(var)?, why)))
        {
            Some((var, value, why)) => Err(Error::invalid(
                label(var),
                value,
                format!("has no effect: {why}, or unset {var}"),
            )),
            None => Ok(()),
        }
    }

    /// Checks every field, and that the config's own waits fit within its deadline; the error
    /// names the path, the value and the reason.
    pub fn validate(&self) -> Result<()> {
        self.check_fields()?;
        self.check_no_dead_fields()?;
        self.check_labels()?;
        self.check_channel_events()?;
        self.check_triggers_fresh()?;
        self.check_waits_fit()
    }

    /// Refuses a trigger on metrics whose `staleAfter` is not longer than
    /// `monitoring.readDelay`, when a config is loaded (not when one is read back from a
    /// journal, as [`check_no_dead_fields`](Self::check_no_dead_fields)). Each metrics window
    /// is read `readDelay` after its end, the instant its data is dated: the data is that old
    /// when it comes, and older still once the read has taken any time, so the trigger would
    /// find every window stale on arrival and ask for its `onMissingData` at every check,
    /// whatever the version does. Probes are read as they are answered: a health-check
    /// trigger's results are fresh, and so are a dependency-failure trigger's probes; its
    /// `callMetric` is read from metrics windows like any metric, and its call windows would
    /// all be passed over as stale, the calls never judged.
    fn check_triggers_fresh(&self) -> Result<()> {
        let read_delay = self.monitoring.read_delay;
        for (i, t) in self.triggers.iter().enumerate() {
            let stale_after = match t {
                TriggerConfig::MetricThreshold(c) => c.stale_after,
                TriggerConfig::ErrorSpike(c) => c.stale_after,
                TriggerConfig::ResourceUsage(c) => c.stale_after,
                TriggerConfig::DependencyFailure(c) if c.call_metric.is_some() => c.stale_after,
                TriggerConfig::HealthCheck(_) | TriggerConfig::DependencyFailure(_) => continue,
            };
            if stale_after <= read_delay {
                return Err(Error::invalid(
                    format!("triggers[{i}].staleAfter"),
                    human(stale_after),
                    format!(
                        "must be longer than monitoring.readDelay ({}): each metrics window is \
                         read that long after its end, so its data would already be stale when \
                         it came and the trigger `{}` stale at every check; raise staleAfter \
                         or lower readDelay",
                        human(read_delay),
                        t.id()
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks that each notification channel resolves the alerts it opens, when a config is
    /// loaded (not when one is read back from a journal, as
    /// [`check_no_dead_fields`](Self::check_no_dead_fields)): see
    /// `NotificationChannel::check_resolves_what_it_opens`.
    ///
    /// It also refuses a channel listed twice (the same type, destination and `secretEnv`)
    /// where both entries take an event of the same category: each such event would be
    /// delivered to the receiver twice.
    fn check_channel_events(&self) -> Result<()> {
        let channels = &self.notification_channels;
        for (i, ch) in channels.iter().enumerate() {
            let path = format!("notificationChannels[{i}]");
            ch.check_resolves_what_it_opens(&path)?;
            if let Some((j, shared)) = channels[..i]
                .iter()
                .enumerate()
                .find_map(|(j, earlier)| ch.shared_events(earlier).map(|s| (j, s)))
            {
                return Err(Error::invalid(
                    path,
                    ch.redacted_destination(),
                    format!(
                        "is the same channel as notificationChannels[{j}] (type, destination \
                         and secretEnv), and both take {shared}: each such event would be \
                         delivered twice; merge their events into one entry, or remove one"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Checks the report's labels, when a config is loaded (not when one is read back from a
    /// journal, as [`check_no_dead_fields`](Self::check_no_dead_fields)).
    fn check_labels(&self) -> Result<()> {
        if let Some(v) = &self.namespace {
            namespace("namespace", v)?;
        }
        if let Some(v) = &self.environment {
            environment("environment", v)?;
        }
        Ok(())
    }

    /// Refuses a field that is set but that nothing reads: a user who wrote it expects it to
    /// act, and a switch that silently ignores it moves traffic in a way the file does not say.
    /// `blueGreenConfig.weights` is read by a `weighted` switch only; with `immediate` or
    /// `gradual` (in the file, or from `TRAFFIC_STRATEGY`), its weights would never be used.
    /// An unread `blueGreenConfig.trafficIncrement` must still be a percentage. Written canary
    /// steps replace the fields they are derived from, which are then refused, and must reach
    /// a weight the judges can compare at (see `CanaryConfig::check_written_steps`).
    ///
    /// Checked when a config is loaded, not when one is read back from a journal (see
    /// [`check_fields`](Self::check_fields)): a deployment started before this rule resumes.
    fn check_no_dead_fields(&self) -> Result<()> {
        let bg = &self.blue_green_config;
        // Unread by an immediate or weighted switch, the increment is still journalled with
        // the config: a value that is no percentage (NaN, which JSON cannot write) would not
        // read back when the deployment resumes.
        percent("blueGreenConfig.trafficIncrement", bg.traffic_increment)?;
        if self.strategy != StrategyKind::BlueGreen {
            self.canary_config.check_written_steps()?;
        }
        if !bg.weights.is_empty() && bg.traffic_strategy != TrafficStrategyKind::Weighted {
            let strategy = bg.traffic_strategy.as_str();
            return Err(Error::invalid(
                "blueGreenConfig.weights",
                format!("{:?}", bg.weights),
                format!(
                    "has no effect: only a `weighted` switch reads weights, and \
                     blueGreenConfig.trafficStrategy is `{strategy}`; set trafficStrategy to \
                     `weighted`, or remove weights"
                ),
            ));
        }
        Ok(())
    }

    /// Checks every field, not the fit of its waits: what a config read back from a journal
    /// must pass before its deployment resumes. A deployment started under rules an earlier
    /// version had is finished, or rolled back, under them; refusing it on resume would leave
    /// its traffic split where the crash left it, with nothing to move it.
    pub(crate) fn check_fields(&self) -> Result<()> {
        if self.target_services.is_empty() {
            return Err(Error::invalid(
                "targetServices",
                "[]",
                "name at least one service",
            ));
        }
        for (i, s) in self.target_services.iter().enumerate() {
            // Platforms and backup providers name tracks after the service: a name they would
            // refuse is refused here, before any pre-upgrade step has run.
            validate_service(&format!("targetServices[{i}]"), s)?;
            if self.target_services[..i].contains(s) {
                return Err(Error::invalid(
                    format!("targetServices[{i}]"),
                    s,
                    "is listed twice",
                ));
            }
        }
        self.blue_green_config.validate()?;
        self.canary_config.validate()?;
        if matches!(
            self.strategy,
            StrategyKind::Canary | StrategyKind::BlueGreenWithCanary
        ) {
            // The judges check what only they know (how large a margin their tests can take).
            crate::run::build_judges(self)?;
        }
        self.canary_thresholds.validate()?;
        self.monitoring.validate()?;
        if matches!(
            self.strategy,
            StrategyKind::Canary | StrategyKind::BlueGreenWithCanary
        ) {
            // A canary reads a window each `metricsWindow`, not each `checkInterval`.
            self.monitoring.check_read_delay(
                "canaryConfig.metricsWindow",
                self.canary_config.metrics_window,
            )?;
        }
        // A canary track is grown to `replicasPerEnv` before it takes all traffic, never
        // shrunk: a larger canary would be promoted at its own size.
        if self.canary_config.replicas > self.blue_green_config.replicas_per_env {
            return Err(Error::invalid(
                "canaryConfig.replicas",
                self.canary_config.replicas,
                format!(
                    "must not exceed blueGreenConfig.replicasPerEnv ({}): the promoted canary \
                     track keeps its size, so it would serve all traffic with more instances \
                     than replicasPerEnv",
                    self.blue_green_config.replicas_per_env
                ),
            ));
        }
        EngineConfig {
            triggers: self.triggers.clone(),
        }
        .validate()
        .map_err(|e| match e {
            // The trigger engine names its fields as the file does (`triggers[1].value`).
            serin_triggers::Error::InvalidConfig {
                field,
                value,
                reason,
            } => Error::InvalidField {
                field,
                value,
                reason,
            },
            serin_triggers::Error::DuplicateTrigger { id, index } => Error::invalid(
                format!("triggers[{index}].id"),
                id,
                "is the id of an earlier trigger: ids must be unique",
            ),
            other => Error::invalid("triggers", self.triggers.len(), other.to_string()),
        })?;
        positive("maxDeploymentDuration", self.max_deployment_duration)?;
        for (i, ch) in self.notification_channels.iter().enumerate() {
            if ch.destination.trim().is_empty() {
                return Err(Error::invalid(
                    format!("notificationChannels[{i}].destination"),
                    "",
                    "must not be empty",
                ));
            }
            // The crate's own channels' rules: without them, the destination is for whatever
            // delivers notifications to read.
            #[cfg(feature = "notify")]
            crate::notify::check_destination(
                ch.kind,
                &format!("notificationChannels[{i}]"),
                &ch.destination,
            )?;
            if let Some(name) = &ch.secret_env
                && (name.is_empty()
                    || name.starts_with(|c: char| c.is_ascii_digit())
                    || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
            {
                return Err(Error::invalid(
                    format!("notificationChannels[{i}].secretEnv"),
                    name,
                    "must be an environment variable name: ASCII letters, digits and `_`, not starting with a digit",
                ));
            }
        }
        self.trigger_config().map(|_| ())
    }

    /// How many instances the new version starts with: a canary over a running version starts
    /// small (`canaryConfig.replicas`); anything else, a first install included, at full size
    /// (`replicasPerEnv`). The executor and the dry run both ask here, so they cannot differ.
    pub(crate) fn bring_up_instances(&self, over_running: bool) -> u32 {
        match self.strategy {
            StrategyKind::Canary if over_running => self.canary_config.replicas,
            _ => self.blue_green_config.replicas_per_env,
        }
    }

    /// The waits the config itself imposes must fit within `maxDeploymentDuration`, which
    /// counts from the deployment's start: a config whose own waits outlast its deadline is
    /// refused when loaded, not found out at the deadline of every rollout.
    ///
    /// - `blueGreenConfig.readinessTimeout` must be shorter: otherwise it never applies (the
    ///   deadline always comes first, counting preparation too), and a slow track is rolled
    ///   back for the deadline instead of being reported as not ready. Kubernetes refuses a
    ///   Deployment whose `progressDeadlineSeconds` is not above `minReadySeconds` alike.
    /// - A canary's timed pauses together, and the read of the window that ends the last one
    ///   (`monitoring.readDelay` later), must be shorter, and shorter than
    ///   `canaryConfig.maxDuration` too: every canary sits through them, so every canary,
    ///   however good, would be rolled back before its last step, after taking most of the
    ///   traffic.
    /// - A blue-green switch's holds together (`trafficInterval` for each step of a gradual or
    ///   weighted switch before the new version takes all traffic) must be shorter: the switch
    ///   starts after the new colour is ready and every deployment sits through its holds, so
    ///   every one would be rolled back after moving most of the traffic.
    fn check_waits_fit(&self) -> Result<()> {
        let max = self.max_deployment_duration;
        let readiness = self.blue_green_config.readiness_timeout;
        if readiness >= max {
            return Err(Error::invalid(
                "blueGreenConfig.readinessTimeout",
                human(readiness),
                format!(
                    "must be shorter than maxDeploymentDuration ({}), which \
                     counts from the deployment's start: the timeout would never apply; lower \
                     readinessTimeout or raise maxDeploymentDuration",
                    human(max)
                ),
            ));
        }
        if self.strategy == StrategyKind::BlueGreen {
            let (held, from) = self.blue_green_config.switch_holds()?;
            if held >= max {
                return Err(Error::invalid(
                    "maxDeploymentDuration",
                    human(max),
                    format!(
                        "must be longer than the blue-green switch's holds together ({}, from \
                         {from}): every deployment would be rolled back before its switch \
                         ended, after moving most of the traffic; raise maxDeploymentDuration, \
                         or switch in fewer or shorter steps",
                        human(held)
                    ),
                ));
            }
        }
        if matches!(
            self.strategy,
            StrategyKind::Canary | StrategyKind::BlueGreenWithCanary
        ) {
            self.check_pauses_fit("maxDeploymentDuration", max)?;
            self.check_pauses_fit("canaryConfig.maxDuration", self.canary_config.max_duration)?;
            self.check_first_read_fits("maxDeploymentDuration", max)?;
            self.check_first_read_fits(
                "canaryConfig.maxDuration",
                self.canary_config.max_duration,
            )?;
        }
        Ok(())
    }

    /// Refuses a `bound` (at `field`) that comes before the canary's first read: the end of
    /// its first `canaryConfig.metricsWindow`, `monitoring.readDelay` later. A timed pause
    /// lasts whole windows, so [`check_pauses_fit`](Self::check_pauses_fit) already keeps one
    /// window within the bound; steps with only indefinite pauses and analysis steps have no
    /// timed pause, and nothing else would: the deadline would come before any window was
    /// read, and every canary, unjudged, would be rolled back.
    fn check_first_read_fits(&self, field: &str, bound: Duration) -> Result<()> {
        let window = self.canary_config.metrics_window;
        let read_delay = self.monitoring.read_delay;
        if window.saturating_add(read_delay) < bound {
            return Ok(());
        }
        let delay = if read_delay.is_zero() {
            String::new()
        } else {
            format!(
                ", read monitoring.readDelay {} after it ends",
                human(read_delay)
            )
        };
        Err(Error::invalid(
            "canaryConfig.metricsWindow",
            human(window),
            format!(
                "must be shorter than {field} ({}): the canary's first window{delay} would be \
                 read only at or after that deadline, so every canary would be rolled back \
                 before any of its data was judged; shorten metricsWindow or raise {field}",
                human(bound)
            ),
        ))
    }

    /// Refuses a `bound` (at `field`) not longer than the canary's timed pauses together plus
    /// `monitoring.readDelay`. A pause is over at the first read at or after its end, and each
    /// window is read `readDelay` after its end: the canary's windows start with its first
    /// step, so pauses of whole windows are over `readDelay` after they add up, not before.
    fn check_pauses_fit(&self, field: &str, bound: Duration) -> Result<()> {
        let paused = self.canary_config.timed_pauses()?;
        let read_delay = self.monitoring.read_delay;
        if paused.saturating_add(read_delay) < bound {
            return Ok(());
        }
        let mut together = format!(
            "{}, from {}",
            human(paused),
            self.canary_config.pauses_field()?
        );
        if !read_delay.is_zero() {
            together.push_str(&format!(
                ", plus monitoring.readDelay {}: the last pause is over once its window is read",
                human(read_delay)
            ));
        }
        Err(Error::invalid(
            field,
            human(bound),
            format!(
                "must be longer than the canary's timed pauses together ({together}): every \
                 canary would be rolled back before its last step ran its course; raise {field}, \
                 or plan fewer or shorter pauses"
            ),
        ))
    }

    /// The size the new track grows to before it takes all traffic, if it must grow, under a
    /// canary policy of `steps`: a canary strategy started it at `canaryConfig.replicas`, or a
    /// `setCanaryScale` step may have resized it, and the promoted version serves alone at
    /// `replicasPerEnv` (Argo Rollouts' semantics: full size, whatever the steps made of the
    /// canary).
    pub(crate) fn promotion_scale(&self, steps: &[serin_canary::controller::Step]) -> Option<u32> {
        let full = self.blue_green_config.replicas_per_env;
        let resized = steps
            .iter()
            .any(|s| matches!(s, serin_canary::controller::Step::SetCanaryScale(_)));
        ((self.strategy == StrategyKind::Canary && full > self.canary_config.replicas) || resized)
            .then_some(full)
    }

    /// Every rollback trigger of the deployment, watching the canary arm (relabelled
    /// `canary`): the `canaryThresholds`, the monitoring thresholds and the extra `triggers`.
    pub fn trigger_config(&self) -> Result<EngineConfig> {
        let track = Track::Canary;
        let mut triggers = self.canary_thresholds.triggers(&track);
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
        // Checked here, where the derived ids are known, so that the error names the user's
        // trigger rather than a position in the combined list.
        for (i, t) in self.triggers.iter().enumerate() {
            if triggers.iter().any(|d| d.id() == t.id()) {
                return Err(Error::invalid(
                    format!("triggers[{i}].id"),
                    t.id(),
                    "is the id of a trigger derived from canaryThresholds or monitoring: \
                     choose another",
                ));
            }
        }
        triggers.extend(self.triggers.iter().cloned());
        let config = EngineConfig { triggers };
        config
            .validate()
            .map_err(|e| Error::invalid("triggers", "…", e.to_string()))?;
        Ok(config)
    }
}

/// The environment variables [`DeploymentConfig::with_overrides`] reads and the fields they
/// set; when both set a field, the one listed first wins (`CANARY_ERROR_RATE`).
const OVERRIDES: [(&str, &str); 16] = [
    ("CANARY_ERROR_RATE", "canaryThresholds.maxErrorRate"),
    ("VERSION", "version"),
    ("DEPLOYMENT_STRATEGY", "strategy"),
    ("REPLICAS", "blueGreenConfig.replicasPerEnv"),
    ("TRAFFIC_STRATEGY", "blueGreenConfig.trafficStrategy"),
    ("TRAFFIC_INCREMENT", "blueGreenConfig.trafficIncrement"),
    ("TRAFFIC_INTERVAL", "blueGreenConfig.trafficInterval"),
    ("INITIAL_PERCENTAGE", "canaryConfig.initialPercentage"),
    ("INCREMENT", "canaryConfig.incrementPercentage"),
    ("PHASE_DURATION", "canaryConfig.incrementInterval"),
    ("MAX_ERROR_RATE", "canaryThresholds.maxErrorRate"),
    ("ERROR_RATE_THRESHOLD", "monitoring.errorRateThreshold"),
    ("LATENCY_THRESHOLD", "monitoring.latencyThreshold"),
    ("CHECK_INTERVAL", "monitoring.checkInterval"),
    ("MONITORING_DURATION", "monitoring.monitoringDuration"),
    ("CONSECUTIVE_FAILURES", "monitoring.consecutiveFailures"),
];

/// `VAR (field)`, how an override's errors name what was given.
fn label(var: &str) -> String {
    let path = OVERRIDES
        .iter()
        .find(|(v, _)| *v == var)
        .map_or("", |(_, p)| p);
    format!("{var} ({path})")
}

/// A namespace is a Kubernetes namespace in the brief (`kubectl -n production`): a DNS label.
/// A blank one names none, as reports and notifications read it.
fn namespace(field: &str, v: &str) -> Result<()> {
    if v.trim().is_empty() {
        return Ok(());
    }
    validate_service(field, v)
}

/// An environment is a name shown in reports and notifications: a control character (a line
/// break) would break the lines it is shown in. A blank one names none.
fn environment(field: &str, v: &str) -> Result<()> {
    if v.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("{v:?}"),
            "must be a name without control characters (line breaks, tabs)",
        ));
    }
    Ok(())
}

fn positive(path: &str, d: Duration) -> Result<()> {
    if d.is_zero() {
        return Err(Error::invalid(path, "0s", "must be longer than zero"));
    }
    Ok(())
}

/// Checks an instance count against what every platform runs per track, so that a config
/// that validates is not refused at bring-up, after the pre-upgrade steps have run.
fn replicas(path: &str, v: u32) -> Result<()> {
    if v == 0 || v > TrackSpec::MAX_INSTANCES {
        return Err(Error::invalid(
            path,
            v,
            format!(
                "must be between 1 and {} (the most instances a platform runs per track)",
                TrackSpec::MAX_INSTANCES
            ),
        ));
    }
    Ok(())
}

fn percent(path: &str, v: f64) -> Result<()> {
    if !(v.is_finite() && v > 0.0 && v <= 100.0) {
        return Err(Error::invalid(path, v, "must be a percentage in (0, 100]"));
    }
    Ok(())
}

/// What a parser said of a config, with its position and, for YAML and JSON, the field's path
/// (serin-compat's reader is shared by every config file of the project).
pub(crate) fn parse_reason(e: serin_compat::Error) -> String {
    match e {
        serin_compat::Error::Parse { reason, .. } => reason,
        other => other.to_string(),
    }
}

/// A duration as config files write it (`1h 35m`).
pub(crate) fn human(d: Duration) -> String {
    #[derive(Serialize)]
    #[serde(transparent)]
    struct Human(#[serde(with = "serin_signals::duration")] Duration);
    match serde_json::to_value(Human(d)) {
        Ok(serde_json::Value::String(s)) => s,
        _ => format!("{d:?}"),
    }
}

fn humantime_like(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// What an environment variable's number is, for the error when it does not parse.
const INSTANCES: &str = "a whole number of instances";
const PERCENT: &str = "a percentage (`10` = 10%)";
const WHOLE_PERCENT: &str = "a whole percentage (`10` = 10%)";
const FRACTION: &str = "a fraction (`0.10` = 10%)";
const MILLISECONDS: &str = "a number of milliseconds (`5000` = 5s)";
const CHECKS: &str = "a whole number of checks";

/// Parses an environment variable's number; the error says what to write (`what`).
fn num<T: std::str::FromStr>(field: &str, v: &str, what: &str) -> Result<T>
where
    T::Err: fmt::Display,
{
    v.parse::<T>()
        .map_err(|e| Error::invalid(field, v, format!("must be {what} ({e})")))
}

/// A duration from an environment variable: a bare number is seconds, as in the brief's
/// `.env` (`CHECK_INTERVAL=5`), and a number with its unit (`500ms`, `5m`) is read as written.
/// The error says so, rather than the file's rule that a bare number is milliseconds.
fn secs(field: &str, v: &str) -> Result<Duration> {
    let seconds = v.bytes().all(|b| b.is_ascii_digit());
    let parsed = if seconds {
        v.parse::<u64>().ok().map(Duration::from_secs)
    } else {
        serin_signals::duration::parse(v).ok()
    };
    parsed.ok_or_else(|| {
        Error::invalid(
            field,
            v,
            "not a duration: write whole seconds (`5`), or a number with its unit \
             (`500ms`, `30s`, `5m`, `1h30m`)",
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

    use std::collections::BTreeMap;

    use serin_canary::controller::Step;

    use super::*;

    fn base() -> DeploymentConfig {
        DeploymentConfig::new(
            StrategyKind::Canary,
            semver::Version::new(1, 1, 0),
            &["web"],
        )
        .expect("defaults are valid")
    }

    /// Explicit canary steps written as Argo Rollouts users write them, one single-key map
    /// per step, read alike from YAML, JSON and TOML; a misspelt step names its place.
    #[test]
    fn explicit_canary_steps_load_as_argo_writes_them() {
        let yaml = r#"
strategy: canary
version: 1.1.0
targetServices: [web]
canaryConfig:
  steps:
    - setWeight: 10
    - pause: {}
    - setCanaryScale:
        matchTrafficWeight: true
    - setWeight: 50
    - analysis:
        duration: 5m
        minSamples: 30
    - pause:
        duration: 1m
"#;
        let c = DeploymentConfig::from_yaml(yaml).expect("valid");
        let steps = c.canary_config.steps.clone().expect("steps");
        assert_eq!(steps.len(), 6);
        assert_eq!(steps[0], Step::SetWeight(10));
        assert_eq!(
            steps[5],
            Step::Pause(serin_canary::controller::Pause {
                duration: Some(Duration::from_secs(60))
            })
        );
        let json = serde_json::to_string(&c).expect("json");
        assert_eq!(DeploymentConfig::from_json(&json).expect("json"), c);
        let toml_text = toml::to_string(&c).expect("toml");
        assert_eq!(DeploymentConfig::from_toml(&toml_text).expect("toml"), c);
        let e = DeploymentConfig::from_yaml(&yaml.replace("setWeight: 50", "setWeigth: 50"))
            .expect_err("misspelt");
        assert!(e.to_string().contains("canaryConfig.steps[3]"), "{e}");
        assert!(e.to_string().contains("setWeigth"), "{e}");
    }

    #[test]
    fn the_brief_shape_loads_from_yaml_json_and_toml() {
        let yaml = r##"
strategy: blue-green-with-canary
version: 1.1.0
targetServices: [web, api]
blueGreenConfig: { replicasPerEnv: 4, healthCheckInterval: 5000, trafficStrategy: gradual, trafficIncrement: 25, trafficInterval: 30s }
canaryConfig: { initialPercentage: 5, targetPercentage: 50, incrementPercentage: 15, incrementInterval: 2m, maxDuration: 1h, metricsWindow: 30000 }
canaryThresholds: { maxErrorRate: 0.05, maxLatency: 800, minThroughput: 10, maxCpuUsage: 90, cpuCapacity: 2, maxMemoryUsage: 85, memoryCapacity: 1073741824, customMetricThresholds: { queue_depth: { max: 100 } } }
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
    fn yaml_nested_past_the_parsers_limit_is_refused_before_it_is_parsed() {
        let n = 20_000;
        let deep = format!(
            "strategy: canary\nversion: 1.0.0\ntargetServices: [web]\nx: {}1{}\n",
            "{a: ".repeat(n),
            "}".repeat(n)
        );
        let e = DeploymentConfig::from_yaml(&deep).unwrap_err().to_string();
        assert!(
            e.contains("deploymentConfig") && e.contains("line 4: flow collections"),
            "{e}"
        );
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
                "targetServices",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a b"]}"#,
                "targetServices[0]",
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
                // The count test weighs error-rate ratios up to 8: a margin of 10 leaves it
                // nothing to detect.
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"canaryConfig":{"errorRateMargin":10}}"#,
                "canaryConfig.errorRateMargin",
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
                "maxDeploymentDuration",
            ),
            (
                r#"{"strategy":"canary","version":"1.0.0","targetServices":["a"],"triggers":[{"kind":"metricThreshold","id":"x","metric":"error_rate","operator":"gt","value":0.1},{"kind":"metricThreshold","id":"x","metric":"error_rate","operator":"gt","value":0.2}]}"#,
                "triggers",
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
    fn every_rejection_names_the_path_as_the_file_writes_it() {
        let head = r#""strategy":"canary","version":"1.0.0""#;
        let trigger = |id: &str, value: f64| {
            format!(
                r#"{{"kind":"metricThreshold","id":"{id}","metric":"error_rate","operator":"gt","value":{value}}}"#
            )
        };
        let cases = [
            (r#""targetServices":[]"#.to_owned(), "targetServices"),
            (r#""targetServices":["a b"]"#.to_owned(), "targetServices[0]"),
            (r#""targetServices":["a","a"]"#.to_owned(), "targetServices[1]"),
            (
                r#""targetServices":["a"],"maxDeploymentDuration":0"#.to_owned(),
                "maxDeploymentDuration",
            ),
            (
                r#""targetServices":["a"],"maxDeploymentDuration":"6m""#.to_owned(),
                "maxDeploymentDuration",
            ),
            (
                format!(
                    r#""targetServices":["a"],"triggers":[{},{}]"#,
                    trigger("x", 0.1),
                    trigger("x", 0.2)
                ),
                "triggers[1].id",
            ),
            (
                format!(
                    r#""targetServices":["a"],"triggers":[{},{}]"#,
                    trigger("x", 0.1),
                    trigger("y", 10.0)
                ),
                "triggers[1].value",
            ),
            (
                format!(r#""targetServices":["a"],"triggers":[{}]"#, trigger("error-rate-threshold", 0.1)),
                "triggers[0].id",
            ),
            (
                r#""targetServices":["a"],"notificationChannels":[{"type":"slack","destination":" "}]"#
                    .to_owned(),
                "notificationChannels[0].destination",
            ),
            (
                r##""targetServices":["a"],"notificationChannels":[{"type":"slack","destination":"#d","secretEnv":"a b"}]"##
                    .to_owned(),
                "notificationChannels[0].secretEnv",
            ),
            (
                r#""targetServices":["a"],"monitoring":{"checkInterval":0}"#.to_owned(),
                "monitoring.checkInterval",
            ),
            (
                r#""targetServices":["a"],"canaryThresholds":{"maxErrorRate":5}"#.to_owned(),
                "canaryThresholds.maxErrorRate",
            ),
        ];
        // The file's own keys: every path starts with one of them.
        let keys: Vec<String> = match serde_json::to_value(base()).expect("json") {
            serde_json::Value::Object(map) => map.keys().cloned().collect(),
            other => panic!("{other}"),
        };
        for (body, path) in cases {
            let json = format!("{{{head},{body}}}");
            match DeploymentConfig::from_json(&json) {
                Err(Error::InvalidField { field, .. }) => {
                    assert_eq!(field, path, "{json}");
                    let top = field.split(['.', '[']).next().unwrap_or_default();
                    assert!(keys.iter().any(|k| k == top), "{field} in {keys:?}");
                }
                other => panic!("{json}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_canary_step_that_cannot_run_its_course_is_refused_at_load() {
        let load = |canary: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["web"],
                    "canaryConfig":{canary}}}"#
            ))
        };
        let err =
            load(r#"{"maxDuration":"1h","steps":[{"setWeight":10},{"pause":{"duration":"2h"}}]}"#)
                .expect_err("a pause past maxDuration")
                .to_string();
        assert!(
            err.contains("canaryConfig.steps") && err.contains("maxDuration"),
            "{err}"
        );
        load(r#"{"maxDuration":"90m","steps":[{"setWeight":10},{"pause":{"duration":"1h"}}]}"#)
            .expect("within maxDuration");
    }

    #[test]
    fn waits_that_outlast_max_deployment_duration_are_refused_at_load() {
        let load = |strategy: &str, extra: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"{strategy}","version":"1.0.0","targetServices":["web"]{extra}}}"#
            ))
        };
        let err = load(
            "blue-green",
            r#","maxDeploymentDuration":"10m","blueGreenConfig":{"readinessTimeout":"10m"}"#,
        )
        .expect_err("a readiness timeout as long as the deadline")
        .to_string();
        assert!(
            err.contains("blueGreenConfig.readinessTimeout `10m`")
                && err.contains("maxDeploymentDuration (10m)"),
            "{err}"
        );
        load(
            "blue-green",
            r#","maxDeploymentDuration":"10m","blueGreenConfig":{"readinessTimeout":"9m"}"#,
        )
        .expect("the readiness timeout fits");
        // 5%, 15%, ... 95%: ten pauses of 5m, within the canary's hour, past a 45m deadline.
        for strategy in ["canary", "blue-green-with-canary"] {
            let err = load(strategy, r#","maxDeploymentDuration":"45m""#)
                .expect_err("50 minutes of pauses in 45")
                .to_string();
            assert!(
                err.contains("maxDeploymentDuration `45m`")
                    && err.contains(
                        "(50m, from canaryConfig.incrementInterval, once for each weight"
                    ),
                "{strategy}: {err}"
            );
        }
        load("canary", r#","maxDeploymentDuration":"55m""#).expect("the pauses fit");
        load("blue-green", r#","maxDeploymentDuration":"45m""#).expect("no canary pauses");
        let err = load(
            "canary",
            r#","maxDeploymentDuration":"30m","canaryConfig":{"steps":[{"setWeight":10},
                {"pause":{"duration":"20m"}},{"setWeight":50},{"pause":{"duration":"10m"}}]}"#,
        )
        .expect_err("30 minutes of pauses in 30")
        .to_string();
        assert!(err.contains("(30m, from canaryConfig.steps)"), "{err}");
    }

    #[test]
    fn json_type_errors_name_the_field_they_are_in() {
        let err = DeploymentConfig::from_json(
            r#"{"strategy":"canary","version":"1.0.0","targetServices":["web"],"canaryConfig":{"initialPercentage":300}}"#,
        )
        .expect_err("not a u8")
        .to_string();
        assert!(
            err.contains("canaryConfig.initialPercentage: invalid value: integer `300`")
                && err.contains("expected u8"),
            "{err}"
        );
        let err = DeploymentConfig::from_json(
            "{\n  \"strategy\": \"canary\",\n  \"version\": \"1.0.0\",\n  \"targetServices\": [\"web\"],\n  \"monitoring\": {\"consecutiveFailures\": -1}\n}",
        )
        .expect_err("not a u32")
        .to_string();
        assert!(
            err.contains("monitoring.consecutiveFailures: invalid value") && err.contains("line 5"),
            "{err}"
        );
        let err = DeploymentConfig::from_json(
            r#"{"strategy":"canary","version":"1.0.0","targetServices":["web"]} x"#,
        )
        .expect_err("trailing characters")
        .to_string();
        assert!(err.contains("trailing characters"), "{err}");
        for text in [
            "",
            "{",
            "é",
            "{\"é\":",
            "\n\n}",
            "[1,2",
            "{\"strategy\":\"ü\"}",
        ] {
            assert!(DeploymentConfig::from_json(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn canary_steps_that_together_outlast_max_duration_are_refused_at_load() {
        let load = |canary: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["web"],
                    "canaryConfig":{canary}}}"#
            ))
        };
        // 5%, 10%, ... 95%: nineteen pauses of 5m, each within the default hour, together not.
        let err = load(r#"{"initialPercentage":5,"incrementPercentage":5}"#)
            .expect_err("95 minutes of pauses in an hour")
            .to_string();
        assert!(
            err.contains("canaryConfig.maxDuration `1h`")
                && err
                    .contains("(1h 35m, from canaryConfig.incrementInterval, once for each weight")
                && err.contains("canaryConfig.incrementPercentage"),
            "{err}"
        );
        load(r#"{"initialPercentage":5,"incrementPercentage":5,"maxDuration":"2h"}"#)
            .expect("the pauses fit in two hours");
        let err = load(
            r#"{"maxDuration":"1h","steps":[{"setWeight":10},{"pause":{"duration":"40m"}},
                {"setWeight":50},{"pause":{"duration":"20m"}}]}"#,
        )
        .expect_err("an hour of pauses in an hour")
        .to_string();
        assert!(err.contains("canaryConfig.maxDuration"), "{err}");
        // An analysis step ends when its judges pass: its duration is a bound, not a wait.
        load(
            r#"{"maxDuration":"1h","steps":[{"setWeight":10},{"pause":{"duration":"40m"}},
                {"setWeight":50},{"analysis":{"duration":"30m"}}]}"#,
        )
        .expect("forty minutes of pauses in an hour");
        // The environment's steps are checked the same way.
        let err = base()
            .with_overrides(|k| match k {
                "INCREMENT" => Some("5".into()),
                "PHASE_DURATION" => Some("300".into()),
                _ => None,
            })
            .expect_err("95 minutes of pauses")
            .to_string();
        assert!(err.contains("canaryConfig.maxDuration"), "{err}");
    }

    #[test]
    fn a_metrics_window_not_shorter_than_max_duration_is_refused_without_timed_pauses() {
        let load = |canary: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["web"],
                    "canaryConfig":{canary}}}"#
            ))
        };
        // Without a timed pause, nothing else bounds the window: its first read would come at
        // or after the deadline, so every canary would be rolled back unjudged.
        for steps in [
            r#"[{"setWeight":10},{"pause":{}}]"#,
            r#"[{"setWeight":10},{"analysis":{"duration":"5m"}}]"#,
        ] {
            let err = load(&format!(
                r#"{{"maxDuration":"10m","metricsWindow":"10m","steps":{steps}}}"#
            ))
            .expect_err(steps)
            .to_string();
            assert!(
                err.contains("canaryConfig.metricsWindow `10m`")
                    && err.contains("canaryConfig.maxDuration (10m)"),
                "{err}"
            );
        }
        load(
            r#"{"maxDuration":"10m","metricsWindow":"5m","steps":[{"setWeight":10},{"pause":{}}]}"#,
        )
        .expect("a window read before the deadline");
    }

    #[test]
    fn a_metric_trigger_stale_before_its_window_is_read_is_refused() {
        let load = |stale_after: &str| {
            DeploymentConfig::from_yaml(&format!(
                r#"
strategy: canary
version: 1.0.0
targetServices: [web]
monitoring: {{ checkInterval: 30s, readDelay: 10s }}
triggers:
  - {{ kind: healthCheck, id: probes, checkType: readiness, checkInterval: 5s, staleAfter: 5s }}
  - {{ kind: metricThreshold, id: errors, metric: error_rate, operator: gt, value: 0.2,
      staleAfter: {stale_after} }}
"#
            ))
        };
        // Probes are read as they are answered; each metrics window ten seconds after it ends,
        // so its data is older than five seconds when it comes, and the trigger would be
        // stale at every check.
        let err = load("5s").expect_err("stale at every read").to_string();
        assert!(
            err.contains("triggers[1].staleAfter `5s`") && err.contains("monitoring.readDelay"),
            "{err}"
        );
        load("10s").expect_err("stale once a read takes any time");
        load("1m").expect("fresh at every read");
    }

    #[test]
    fn a_dependency_call_metric_stale_before_its_window_is_read_is_refused() {
        let load = |stale_after: &str, calls: &str| {
            DeploymentConfig::from_yaml(&format!(
                r#"
strategy: canary
version: 1.0.0
targetServices: [web]
monitoring: {{ checkInterval: 30s, readDelay: 10s }}
triggers:
  - {{ kind: dependencyFailure, id: db, dependency: postgres, {calls}staleAfter: {stale_after} }}
"#
            ))
        };
        let calls = "callMetric: db_calls, maxCallErrorRate: 0.5, ";
        // The call counts come from metrics windows read ten seconds after they end: older
        // than five seconds when they come, so every one would be passed over as stale.
        let err = load("5s", calls)
            .expect_err("calls stale at every read")
            .to_string();
        assert!(
            err.contains("triggers[0].staleAfter `5s`")
                && err.contains("monitoring.readDelay")
                && err.contains("`db`"),
            "{err}"
        );
        load("1m", calls).expect("calls fresh at every read");
        // Probes alone are read as they are answered.
        load("5s", "").expect("probes are fresh");
    }

    #[test]
    fn services_and_replicas_are_checked_as_the_platform_checks_them() {
        let load = |services: &str, extra: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":{services}{extra}}}"#
            ))
        };
        for bad in ["Web", "web_api", "web.api", "-web", "web-"] {
            let err = load(&format!(r#"["ok", "{bad}"]"#), "")
                .expect_err(bad)
                .to_string();
            assert!(err.contains(&format!("targetServices[1] `{bad}`")), "{err}");
        }
        for (field, extra) in [
            (
                "blueGreenConfig.replicasPerEnv",
                r#","blueGreenConfig":{"replicasPerEnv":65}"#,
            ),
            (
                "canaryConfig.replicas",
                r#","canaryConfig":{"replicas":65}"#,
            ),
        ] {
            let err = load(r#"["web"]"#, extra).expect_err(field).to_string();
            assert!(err.contains(&format!("{field} `65`")), "{err}");
            assert!(err.contains("between 1 and 64"), "{err}");
        }
        // What validates, the platform takes.
        let c = load(
            r#"["web-2"]"#,
            r#","blueGreenConfig":{"replicasPerEnv":64},"canaryConfig":{"replicas":64}"#,
        )
        .expect("valid");
        for n in [
            c.blue_green_config.replicas_per_env,
            c.canary_config.replicas,
        ] {
            TrackSpec::new(&c.target_services[0], "1.0.0", Track::Green, n).expect("a spec");
        }
    }

    #[test]
    fn a_trigger_may_not_take_the_id_of_a_derived_one() {
        let trigger = |id: &str| {
            format!(
                r#""triggers":[{{"kind":"metricThreshold","id":"p99","metric":"latency","operator":"gt","value":900}},{{"kind":"metricThreshold","id":"{id}","metric":"error_rate","operator":"gt","value":0.2}}]"#
            )
        };
        for (id, extra) in [
            (
                "canary-max-error-rate",
                r#""canaryThresholds":{"maxErrorRate":0.05},"#,
            ),
            (
                "canary-queue_depth-max",
                r#""canaryThresholds":{"customMetricThresholds":{"queue_depth":{"max":100}}},"#,
            ),
            ("error-rate-threshold", ""),
            (
                "latency-threshold",
                r#""monitoring":{"latencyThreshold":500},"#,
            ),
        ] {
            let json = format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["a"],{extra}{}}}"#,
                trigger(id)
            );
            let err = DeploymentConfig::from_json(&json)
                .expect_err(id)
                .to_string();
            assert!(err.contains(&format!("triggers[1].id `{id}`")), "{err}");
        }
        // An id is free while the threshold it would stand for is not set.
        let json = format!(
            r#"{{"strategy":"canary","version":"1.0.0","targetServices":["a"],{}}}"#,
            trigger("latency-threshold")
        );
        assert!(DeploymentConfig::from_json(&json).is_ok());
    }

    #[test]
    fn weights_without_a_weighted_switch_are_refused_naming_the_strategy() {
        for (strategy, name) in [
            (TrafficStrategyKind::Immediate, "immediate"),
            (TrafficStrategyKind::Gradual, "gradual"),
        ] {
            let mut c = base();
            c.blue_green_config.traffic_strategy = strategy;
            c.blue_green_config.weights = vec![10.0, 50.0];
            let before = c.clone();
            let err = c.validate().expect_err("weights nothing reads").to_string();
            assert!(
                err.contains("blueGreenConfig.weights `[10.0, 50.0]`"),
                "{err}"
            );
            assert!(
                err.contains(&format!("trafficStrategy is `{name}`")),
                "{err}"
            );
            assert_eq!(c, before, "validation changes nothing");
        }
        let json = r#"{"strategy":"blue-green","version":"1.0.0","targetServices":["a"],
            "blueGreenConfig":{"trafficStrategy":"gradual","weights":[25,50]}}"#;
        let err = DeploymentConfig::from_json(json)
            .expect_err("refused on load")
            .to_string();
        assert!(err.contains("blueGreenConfig.weights"), "{err}");
        // An environment override that turns a weighted file into another switch leaves
        // its weights unread too.
        let mut c = base();
        c.blue_green_config.traffic_strategy = TrafficStrategyKind::Weighted;
        c.blue_green_config.weights = vec![10.0, 50.0];
        c.validate().expect("weighted reads its weights");
        let err = c
            .with_overrides(|v| (v == "TRAFFIC_STRATEGY").then(|| "immediate".to_owned()))
            .expect_err("weights left unread")
            .to_string();
        assert!(err.contains("trafficStrategy is `immediate`"), "{err}");
    }

    #[test]
    fn a_weighted_switch_needs_a_positive_interval() {
        let mut c = base();
        c.blue_green_config.traffic_strategy = TrafficStrategyKind::Weighted;
        c.blue_green_config.weights = vec![10.0, 50.0];
        assert!(c.validate().is_ok());
        c.blue_green_config.traffic_interval = Duration::ZERO;
        let err = c.validate().expect_err("zero interval").to_string();
        assert!(
            err.contains("blueGreenConfig.trafficInterval `0s`"),
            "{err}"
        );
    }

    #[test]
    fn the_instance_counts_follow_the_strategy() {
        let mut c = base();
        c.canary_config.replicas = 1;
        c.blue_green_config.replicas_per_env = 4;
        assert_eq!(c.bring_up_instances(true), 1);
        assert_eq!(
            c.bring_up_instances(false),
            4,
            "a first install runs full size"
        );
        assert_eq!(c.promotion_scale(&[]), Some(4));
        c.strategy = StrategyKind::BlueGreenWithCanary;
        assert_eq!(c.bring_up_instances(true), 4);
        assert_eq!(c.promotion_scale(&[]), None);
        let resize = serin_canary::controller::Step::SetCanaryScale(Default::default());
        assert_eq!(
            c.promotion_scale(&[resize]),
            Some(4),
            "a step may have resized it"
        );
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
            // In range only once checked with the rest: named by the variable too.
            (
                "INCREMENT",
                "0",
                "INCREMENT (canaryConfig.incrementPercentage)",
            ),
            (
                "REPLICAS",
                "65",
                "REPLICAS (blueGreenConfig.replicasPerEnv)",
            ),
            ("VERSION", "v2", "VERSION"),
            (
                "CANARY_ERROR_RATE",
                "2",
                "CANARY_ERROR_RATE (canaryThresholds.maxErrorRate)",
            ),
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
    fn a_canary_larger_than_a_colour_is_refused_naming_both_fields() {
        let load = |extra: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["web"],{extra}}}"#
            ))
        };
        let err = load(r#""blueGreenConfig":{"replicasPerEnv":2},"canaryConfig":{"replicas":3}"#)
            .expect_err("a canary of 3 over colours of 2")
            .to_string();
        assert!(
            err.contains("canaryConfig.replicas `3`")
                && err.contains("blueGreenConfig.replicasPerEnv (2)"),
            "{err}"
        );
        load(r#""blueGreenConfig":{"replicasPerEnv":3},"canaryConfig":{"replicas":3}"#)
            .expect("a canary as large as a colour");
        // Set by the environment, the other side is named with its variable.
        let mut c = base();
        c.canary_config.replicas = 2;
        let err = c
            .with_overrides(|k| (k == "REPLICAS").then(|| "1".to_owned()))
            .expect_err("REPLICAS below the canary's")
            .to_string();
        assert!(
            err.contains("canaryConfig.replicas `2`")
                && err.contains("blueGreenConfig.replicasPerEnv (1)")
                && err.contains("set by REPLICAS"),
            "{err}"
        );
    }

    #[test]
    fn a_check_interval_longer_than_the_watch_is_refused_naming_both_fields() {
        let load = |monitoring: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"blue-green","version":"1.0.0","targetServices":["web"],
                    "monitoring":{monitoring}}}"#
            ))
        };
        let err = load(r#"{"checkInterval":"10m","monitoringDuration":"5m"}"#)
            .expect_err("no check in the watch")
            .to_string();
        assert!(
            err.contains("monitoring.checkInterval `10m`")
                && err.contains("monitoring.monitoringDuration (5m)"),
            "{err}"
        );
        load(r#"{"checkInterval":"5m","monitoringDuration":"5m"}"#)
            .expect("one check, at the end of the watch");
        let err = base()
            .with_overrides(|k| (k == "MONITORING_DURATION").then(|| "2".to_owned()))
            .expect_err("a 2 s watch checked every 5 s")
            .to_string();
        assert!(
            err.contains("monitoring.checkInterval `5s`")
                && err.contains("set by MONITORING_DURATION"),
            "{err}"
        );
        let err = base()
            .with_overrides(|k| (k == "CHECK_INTERVAL").then(|| "600".to_owned()))
            .expect_err("a 10 min interval in a 5 min watch")
            .to_string();
        assert!(
            err.contains("CHECK_INTERVAL (monitoring.checkInterval) `10m`"),
            "{err}"
        );
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

    /// Pacing models how soon the error-rate judge catches a regression, so it is told that
    /// judge's alpha (shared with the latency judge) and margin; a pacing alpha or margin that
    /// contradicts them is refused, naming the field and where the judge's comes from.
    #[test]
    fn pacing_models_the_error_rate_judge_s_alpha_and_margin() {
        use serin_canary::controller::Pacing;
        let mut c = base().canary_config;
        c.judge_latency = true;
        c.error_rate_margin = 0.1;
        c.pacing = Some(Pacing::default());
        let p = c.policy().expect("valid").pacing.expect("pacing");
        assert_eq!((p.alpha, p.judge_margin), (c.alpha / 2.0, 0.1));
        c.judge_latency = false;
        let p = c.policy().expect("valid").pacing.expect("pacing");
        assert_eq!(p.alpha, c.alpha);
        c.pacing = Some(Pacing {
            judge_margin: 0.3,
            ..Pacing::default()
        });
        let err = c
            .policy()
            .expect_err("a margin the judge has not")
            .to_string();
        assert!(
            err.contains("canaryConfig.pacing.judgeMargin")
                && err.contains("canaryConfig.errorRateMargin"),
            "{err}"
        );
        // Shared with the latency judge, an alpha of 0.1 gives each judge 0.05.
        c.judge_latency = true;
        c.alpha = 0.1;
        c.pacing = Some(Pacing {
            alpha: 0.1,
            ..Pacing::default()
        });
        let err = c
            .policy()
            .expect_err("the alpha the judge does not have")
            .to_string();
        assert!(
            err.contains("canaryConfig.pacing.alpha") && err.contains("halved"),
            "{err}"
        );
    }

    /// A pacing setting that cannot work is refused naming the field the file writes, with
    /// its value: pacing's own field by its path, and the margin pacing takes from the
    /// error-rate judge by `canaryConfig.errorRateMargin`, where it is written.
    #[test]
    fn a_pacing_error_names_the_field_at_fault() {
        let load = |canary: &str| {
            DeploymentConfig::from_json(&format!(
                r#"{{"strategy":"canary","version":"1.0.0","targetServices":["a"],
                    "canaryConfig":{canary}}}"#
            ))
        };
        for (canary, path, value) in [
            (
                r#"{"pacing":{"detectableRatio":0.5}}"#,
                "canaryConfig.pacing.detectableRatio",
                "0.5",
            ),
            (
                r#"{"pacing":{"exposureBudget":-3}}"#,
                "canaryConfig.pacing.exposureBudget",
                "-3",
            ),
            // A judge whose margin is 1.5 never catches twice the baseline's error rate, so no
            // weight keeps the exposure within the budget.
            (
                r#"{"errorRateMargin":1.5,"pacing":{"exposureBudget":3000}}"#,
                "canaryConfig.errorRateMargin",
                "1.5",
            ),
        ] {
            match load(canary) {
                Err(Error::InvalidField {
                    field,
                    value: v,
                    reason,
                }) => {
                    assert_eq!((field.as_str(), v.as_str()), (path, value), "{reason}");
                }
                other => panic!("{canary}: {other:?}"),
            }
        }
        load(r#"{"errorRateMargin":0.5,"pacing":{"exposureBudget":3000}}"#)
            .expect("a margin below the detectable ratio");
    }

    #[test]
    fn robust_judges_make_pacing_s_errors_gate_robust_too() {
        use serin_canary::controller::{LatencyPacing, Pacing};
        let mut c = base().canary_config;
        c.pacing = Some(Pacing::default());
        let batch = |c: &CanaryConfig| c.policy().expect("valid").pacing.unwrap().robust_batch;
        assert_eq!(batch(&c), None);
        c.robust_judges = true;
        assert_eq!(batch(&c), Some(ROBUST_BATCH_SPAN));
        // A span the user set is kept.
        c.pacing = Some(Pacing {
            robust_batch: Some(Duration::from_secs(120)),
            ..Pacing::default()
        });
        assert_eq!(batch(&c), Some(Duration::from_secs(120)));
        // Pacing on latency alone has no errors' gate to make robust.
        c.pacing = Some(Pacing {
            detectable_ratio: None,
            latency: Some(LatencyPacing::default()),
            ..Pacing::default()
        });
        assert_eq!(batch(&c), None);
        assert!(c.validate().is_ok());
        // An exposure budget models the default judges, so robust judges refuse it.
        c.pacing = Some(Pacing {
            exposure_budget: Some(3_000.0),
            ..Pacing::default()
        });
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("canaryConfig.pacing.exposureBudget"), "{err}");
        assert!(err.contains("robustJudges"), "{err}");
        c.robust_judges = false;
        assert!(c.validate().is_ok());
    }
}
