//! # serin-triggers
//!
//! Rollback triggers that watch a deployment — during a rollout and after promotion — and ask
//! for a rollback (or a warning, or a hold) when its health degrades. Pure and synchronous: the
//! [`Engine`] is fed [`Observation`](serin_signals::Observation)s,
//! [`HealthSignal`](serin_signals::HealthSignal)s and `now`, and answers [`Event`]s with
//! [`Evidence`]; it never reads a clock, sleeps or does I/O.
//!
//! Trigger kinds, each configured from serde ([`TriggerConfig`], camelCase, durations as `30s`
//! or milliseconds):
//!
//! - **metricThreshold** — any metric against a value with an operator (`gt`, `ge`, `lt`, `le`,
//!   `eq`, `ne`), held for `duration` (Prometheus `for:`), with an optional warn level.
//! - **healthCheck** — `failureThreshold` consecutive failing readiness / liveness / startup
//!   probes per instance, or a share of instances failing.
//! - **errorSpike** — error rate above a fixed or learned baseline, by a Bernoulli
//!   [`Cusum`] whose false-alarm rate is stated as an average run length, or by the simple ratio
//!   rule.
//! - **dependencyFailure** — a dependency failing its checks; a failure the baseline track sees
//!   too is a shared outage and answers *hold* instead of rolling back every deployment (or
//!   only warns, for a dependency whose own `action` is `warn`).
//! - **resourceUsage** — CPU or memory above a percentage of capacity for a duration.
//!
//! [`defaults::alert_table`] builds the product's alert table (error rate, latency p99,
//! throughput, CPU, memory with warn and rollback levels).
//!
//! ## States and timing
//!
//! Each trigger moves `Ok → Pending → Firing → Cooldown → Ok` ([`TriggerState`]):
//!
//! - a breach is *pending* until it has held for the trigger's `duration`, measured in data time
//!   (the window end of observations, the completion time of probes) from the first breaching
//!   input to the latest one. An input on the healthy side ends it. Inputs without data (a
//!   window without requests, an `unknown` probe) neither end it nor count as breaching: a fire
//!   still needs a breaching input at the end of the duration. A gap in the data longer than
//!   `staleAfter` ends it, whether a tick finds the trigger stale inside it (below) or the next
//!   input comes first. Prometheus' `for:` drops a pending alert as soon as its expression
//!   returns nothing; Serin does not, because at low traffic windows without requests are
//!   common, and resetting on each of them would keep a real breach pending for ever, while the
//!   staleness rule still bounds how long data may be missing;
//! - *firing* asks for the action once and stays firing while the condition holds, at the most
//!   severe level that still holds for its `duration` (one Prometheus alert rule per severity):
//!   a hold eased to a warning steps down to the warning and no longer holds the rollout,
//!   asking for nothing new. A rollback never steps down: it is acted on once;
//! - after firing, a fire of the same or a lower action is suppressed until `cooldown` has passed
//!   since the fire (*cooldown*); a more severe action (a rollback after a warning) is never
//!   suppressed, and cooldowns are per trigger, so they never hide another trigger's condition.
//!   A cooldown suppresses the repeated request, not the condition: a breach that holds for its
//!   `duration` inside the cooldown still counts in [`Engine::current_action`], so a hold
//!   breached again goes on holding;
//! - no usable data for longer than `staleAfter` is *stale*, which asks once for the trigger's
//!   `onMissingData` action (`hold` by default, `warn`, or `fire` = rollback); that action counts
//!   as a fire for the cooldown: it is not asked for inside the cooldown of a fire of the same or
//!   a higher level, whose cooldown goes on (the trigger is stale all the same).
//!   Missing data is never taken as healthy.
//!
//! Inputs are judged by their data time, never re-stamped with the `now` of a tick. An input
//! older than the last data a trigger took (a late window, or old data sent again) changes
//! nothing, so it can neither clear a breach that began after it nor keep the trigger from going
//! stale; nor does one already older than `staleAfter` when it arrives. A probe result counts
//! once: health and dependency checks ignore a result that is not newer than the last one of its
//! instance, since a source answers the latest result it holds each time it is asked;
//! as sources list results by instance rather than by time, their verdict stands for the newest
//! result they hold. An input dated further past the engine's clock (the latest `now` given to
//! [`Engine::tick`] or [`Engine::advance_clock`]) than a trigger's `staleAfter` is refused with
//! an error: it comes from a source whose clock runs ahead, and would make every real input
//! until then look late.
//!
//! ```
//! use std::time::Duration;
//! use serin_signals::{HealthSignal, Probe, ProbeStatus, Timestamp, Track};
//! use serin_triggers::{Action, Engine, EngineConfig, TriggerState};
//!
//! let config: EngineConfig = serde_json::from_str(r#"{"triggers": [{
//!     "kind": "healthCheck", "id": "ready", "serviceName": "app",
//!     "checkType": "readiness", "failureThreshold": 3, "checkInterval": 5000
//! }]}"#)?;
//! let mut engine = Engine::new(config, Timestamp::EPOCH)?;
//! for s in [5, 10, 15] {
//!     let at = Timestamp::from_millis(s * 1_000);
//!     engine.observe_health(&HealthSignal::new(Track::Canary, Probe::Readiness, ProbeStatus::Fail, at))?;
//! }
//! assert!(matches!(engine.state("ready"), Some(TriggerState::Firing { action: Action::Rollback, .. })));
//! let fired = engine.drain_events().find(|e| e.action.is_some()).expect("fired");
//! println!("{}", fired.evidence);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod action;
mod buckets;
mod config;
pub mod defaults;
mod dependency;
mod engine;
mod error;
mod evidence;
mod health;
mod lifecycle;
mod operator;
mod spike;
mod threshold;
mod trigger;

pub use action::{Action, MissingData};
pub use config::{
    CheckType, DependencyFailureConfig, Detector, ErrorSpikeConfig, HealthCheckConfig,
    MetricThresholdConfig, Resource, ResourceUsageConfig, SharedOutage, TriggerConfig,
};
pub use dependency::DependencyFailureTrigger;
pub use engine::{Engine, EngineConfig, Event};
pub use error::{Error, Result};
pub use evidence::{Evidence, TriggerKind};
pub use health::HealthCheckTrigger;
pub use lifecycle::{TriggerState, Verdict};
pub use operator::Operator;
pub use spike::{Cusum, ErrorSpikeTrigger};
pub use threshold::{MetricThresholdTrigger, ResourceUsageTrigger};
pub use trigger::Trigger;
