//! The [`Trigger`] trait every kind implements, and the engine's closed set of kinds.

use serde::{Deserialize, Serialize};
use serin_signals::{HealthSignal, Measurement, Metric, Observation, Probe, Timestamp, Track};

use crate::config::TriggerConfig;
use crate::dependency::DependencyFailureTrigger;
use crate::error::Result;
use crate::evidence::{Evidence, TriggerKind};
use crate::health::HealthCheckTrigger;
use crate::lifecycle::Verdict;
use crate::spike::ErrorSpikeTrigger;
use crate::threshold::{MetricThresholdTrigger, ResourceUsageTrigger};

/// A rollback trigger: fed signals, it answers a [`Verdict`] and, on request, its [`Evidence`].
///
/// A trigger only judges each input; the [`Engine`](crate::Engine) adds the `for` duration, the
/// cooldown, staleness and the state. A trigger ignores inputs that are not about what it watches
/// (answering `None`).
pub trait Trigger {
    /// The trigger's id.
    fn id(&self) -> &str;

    /// The trigger's kind.
    fn kind(&self) -> TriggerKind;

    /// Whether [`observe`](Trigger::observe) would accept `obs`, without changing anything.
    fn check(&self, obs: &Observation) -> Result<()>;

    /// Reads an observation. `Ok(None)` when it is not about this trigger's subject, only
    /// updates a reference (a baseline), or repeats a check already taken (a dependency's call
    /// window not newer than the last one of its track); an error (a measurement the trigger
    /// cannot read) leaves the trigger unchanged.
    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>>;

    /// Reads a probe result; `None` when it is not about this trigger's subject, when it is
    /// not newer than the last result taken for its instance (of its track, for dependency
    /// checks): the same result read again, or an older one, changes nothing; or
    /// when it comes from an instance a health check has no room to remember.
    fn observe_health(&mut self, signal: &HealthSignal) -> Option<Verdict>;

    /// What the trigger last saw, stamped `at`, with the breach start `since` if any.
    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence;

    /// Heap memory the trigger owns, in bytes (for memory budgets; excludes `size_of::<Self>()`).
    fn heap_bytes(&self) -> usize;
}

/// The name of a measurement's variant, for errors.
pub(crate) fn found(m: &Measurement) -> &'static str {
    match m {
        Measurement::Counts(_) => "counts",
        Measurement::Latency(_) => "a latency sketch",
        Measurement::Gauge(_) => "a gauge",
        Measurement::NoData => "no data",
    }
}

/// Heap bytes a track's name owns.
pub(crate) fn track_heap(t: &Track) -> usize {
    match t {
        Track::Named(n) => n.capacity(),
        _ => 0,
    }
}

/// Heap bytes a metric's name owns.
pub(crate) fn metric_heap(m: &Metric) -> usize {
    match m {
        Metric::Custom(n) => n.capacity(),
        _ => 0,
    }
}

/// What a trigger listens to, for routing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Subscription {
    Metric(Metric, Track),
    Probe(Probe, Track),
}

/// Every kind the engine runs, with config and state (serializable as one value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) enum AnyTrigger {
    MetricThreshold(MetricThresholdTrigger),
    HealthCheck(HealthCheckTrigger),
    ErrorSpike(ErrorSpikeTrigger),
    DependencyFailure(DependencyFailureTrigger),
    ResourceUsage(ResourceUsageTrigger),
}

macro_rules! each {
    ($self:expr, $t:ident => $e:expr) => {
        match $self {
            AnyTrigger::MetricThreshold($t) => $e,
            AnyTrigger::HealthCheck($t) => $e,
            AnyTrigger::ErrorSpike($t) => $e,
            AnyTrigger::DependencyFailure($t) => $e,
            AnyTrigger::ResourceUsage($t) => $e,
        }
    };
}

impl AnyTrigger {
    pub fn new(config: TriggerConfig) -> Result<Self> {
        Ok(match config {
            TriggerConfig::MetricThreshold(c) => {
                AnyTrigger::MetricThreshold(MetricThresholdTrigger::new(c)?)
            }
            TriggerConfig::HealthCheck(c) => AnyTrigger::HealthCheck(HealthCheckTrigger::new(c)?),
            TriggerConfig::ErrorSpike(c) => AnyTrigger::ErrorSpike(ErrorSpikeTrigger::new(c)?),
            TriggerConfig::DependencyFailure(c) => {
                AnyTrigger::DependencyFailure(DependencyFailureTrigger::new(c)?)
            }
            TriggerConfig::ResourceUsage(c) => {
                AnyTrigger::ResourceUsage(ResourceUsageTrigger::new(c)?)
            }
        })
    }

    pub fn config(&self) -> TriggerConfig {
        match self {
            AnyTrigger::MetricThreshold(t) => TriggerConfig::MetricThreshold(t.config().clone()),
            AnyTrigger::HealthCheck(t) => TriggerConfig::HealthCheck(t.config().clone()),
            AnyTrigger::ErrorSpike(t) => TriggerConfig::ErrorSpike(t.config().clone()),
            AnyTrigger::DependencyFailure(t) => {
                TriggerConfig::DependencyFailure(t.config().clone())
            }
            AnyTrigger::ResourceUsage(t) => TriggerConfig::ResourceUsage(t.config().clone()),
        }
    }

    /// Checks a deserialized state against its config and the `clock` of its lifecycle (the
    /// latest input or tick), which no time of its own inputs it holds may pass.
    pub fn check_state(&self, clock: Timestamp) -> std::result::Result<(), String> {
        match self {
            AnyTrigger::ErrorSpike(t) => t.check_state(clock),
            AnyTrigger::HealthCheck(t) => t.check_state(clock),
            AnyTrigger::DependencyFailure(t) => t.check_state(clock),
            _ => Ok(()),
        }
    }

    /// Whether the trigger merges several streams into one verdict (a health check its
    /// instances; a dependency check its two tracks, probes and call windows). Sources list such
    /// results by instance or track, not by time, so these triggers drop a result that is not
    /// newer than the last one of its own stream themselves, and their verdict stands for the
    /// newest data they hold ([`verdict_time`](AnyTrigger::verdict_time)).
    pub fn merges_streams(&self) -> bool {
        matches!(
            self,
            AnyTrigger::HealthCheck(_) | AnyTrigger::DependencyFailure(_)
        )
    }

    /// The data time of the verdict answered for an input of data time `at`: `at` itself, or
    /// for a trigger that merges streams the newest pass or fail it holds of what it watches,
    /// whatever the input was (one instance's late but new result changes the verdict as of the
    /// other instances' newer ones). So an input that carries no pass or fail of its own (an
    /// `unknown` probe result, or the baseline's view of a dependency, which only tells a
    /// shared outage apart) changes the verdict without making the watched data look newer
    /// than it is: a canary whose results stopped still goes stale.
    pub fn verdict_time(&self, at: Timestamp) -> Timestamp {
        let newest = match self {
            AnyTrigger::HealthCheck(t) => t.data_time(),
            AnyTrigger::DependencyFailure(t) => t.data_time(),
            _ => return at,
        };
        newest.unwrap_or(at)
    }

    pub fn subscriptions(&self) -> Vec<Subscription> {
        match self {
            AnyTrigger::MetricThreshold(t) => {
                let c = t.config();
                vec![Subscription::Metric(c.metric.clone(), c.track.clone())]
            }
            AnyTrigger::ResourceUsage(t) => {
                let c = t.config();
                vec![Subscription::Metric(c.resource.metric(), c.track.clone())]
            }
            AnyTrigger::ErrorSpike(t) => {
                let c = t.config();
                let mut subs = vec![Subscription::Metric(Metric::ErrorRate, c.track.clone())];
                if let Some(b) = &c.baseline_track {
                    subs.push(Subscription::Metric(Metric::ErrorRate, b.clone()));
                }
                subs
            }
            AnyTrigger::HealthCheck(t) => {
                let c = t.config();
                vec![Subscription::Probe(c.check_type.probe(), c.track.clone())]
            }
            AnyTrigger::DependencyFailure(t) => {
                let c = t.config();
                let probe = Probe::Dependency(c.dependency.clone());
                let mut subs = vec![
                    Subscription::Probe(probe.clone(), c.track.clone()),
                    Subscription::Probe(probe, c.baseline_track.clone()),
                ];
                if let Some(m) = &c.call_metric {
                    subs.push(Subscription::Metric(m.clone(), c.track.clone()));
                    subs.push(Subscription::Metric(m.clone(), c.baseline_track.clone()));
                }
                subs
            }
        }
    }
}

impl Trigger for AnyTrigger {
    fn id(&self) -> &str {
        each!(self, t => t.id())
    }
    fn kind(&self) -> TriggerKind {
        each!(self, t => t.kind())
    }
    fn check(&self, obs: &Observation) -> Result<()> {
        each!(self, t => t.check(obs))
    }
    fn observe(&mut self, obs: &Observation) -> Result<Option<Verdict>> {
        each!(self, t => t.observe(obs))
    }
    fn observe_health(&mut self, signal: &HealthSignal) -> Option<Verdict> {
        each!(self, t => t.observe_health(signal))
    }
    fn evidence(&self, at: Timestamp, since: Option<Timestamp>) -> Evidence {
        each!(self, t => t.evidence(at, since))
    }
    fn heap_bytes(&self) -> usize {
        each!(self, t => t.heap_bytes())
    }
}
