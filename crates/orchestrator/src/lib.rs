//! # serin-orchestrator
//!
//! The thin composition layer of Serin: it runs deployments from start to finish and decides
//! nothing itself. Compatibility comes from `serin-compat`, traffic plans from `serin-traffic`,
//! canary verdicts and steps from `serin-canary`, rollback triggers from `serin-triggers`; the
//! orchestrator sequences them, **journals** each state change, **then** carries it out
//! through the traits, **then** announces it.
//!
//! - [`DeploymentConfig`]: the product brief's configuration (YAML, TOML, JSON; validated on
//!   load, unknown fields rejected, errors naming the path), with the brief's environment
//!   overrides ([`DeploymentConfig::with_env`]).
//! - [`Orchestrator`]: [`plan`](Orchestrator::plan) (the dry run), [`run`](Orchestrator::run) /
//!   [`start`](Orchestrator::start), [`resume`](Orchestrator::resume) after a crash,
//!   [`rollback`](Orchestrator::rollback), [`rollback_to`](Orchestrator::rollback_to),
//!   [`report`](Orchestrator::report); one deployment per service at a time. Several target
//!   services are validated as a set and deployed group by group in the validator's rollout
//!   order, a group at the same time, each validated against the fleet as the groups before
//!   it left it. [`DeploymentHandle`]: promote, abort, pause, resume, status.
//! - Phases ([`Phase`]): validation, preparation (pre-checks, dependencies, backup, the
//!   pre-upgrade steps), deployment (blue-green, canary, blue-green-with-canary), monitoring
//!   (triggers after promotion), completion (the old version retired after its warm delay,
//!   then the post-upgrade steps).
//! - The validated upgrade's checklist (`serin_compat` steps: backups, feature flags, expand
//!   migrations before the deployment; contract migrations and clean-up once the old version
//!   is gone) is in the dry run, in the [`Report`] ([`UpgradeStep`]) and in
//!   [`EventKind::UpgradeStep`] events of the phase it belongs to. The orchestrator runs no SQL:
//!   a [`StepRunner`] carries out what it can ([`InMemoryStepRunner`] records), the backup
//!   provider's backup does the backup step, and anything else is recorded as due.
//! - `maxDeploymentDuration` bounds the deployment from its start: it is checked during the
//!   wait for readiness (which `blueGreenConfig.readinessTimeout` also bounds), the analysis,
//!   the switch, the watch and the warm delay, and it bounds every upgrade step a
//!   [`StepRunner`] carries out and every backup, restore or listing of the backup provider
//!   in preparation (an operator's abort also ends the wait for one). A notifier call is
//!   bounded by [`OrchestratorBuilder::notify_timeout`]. Before promotion it
//!   rolls back (never promote on missing evidence); after promotion `monitoring.onDeadline`
//!   ([`OnDeadline`]) either finishes at once (the default: the watch ends and the old version
//!   is retired without the rest of its warm delay) or rolls back to the still-warm old version.
//! - [`Journal`] ([`FileJournal`]: append-only JSON lines with fsync, compacted on demand or
//!   past a size; [`InMemoryJournal`]):
//!   every [`Record`] holds the new [`DeploymentState`] (including the canary controller, its
//!   judges and the trigger engine), the idempotent [`Effect`]s and the [`Event`]s.
//! - [`Event`]s to subscribers, `tracing` and [`Notifier`]s; the final [`Report`] (JSON or
//!   text) with the timeline and the evidence of every decision.
//! - [`Platform`] (what runs the instances of each track) with [`InMemoryPlatform`] and
//!   [`wait_ready`]; [`BackupProvider`] with [`InMemoryBackup`]; behind the `testkit`
//!   feature, the conformance suites of platforms (`testkit`), journals (`journal::testkit`),
//!   backup providers (`backup::testkit`), step runners (`step_testkit`) and, with `notify`
//!   too, notification channels (`notify::testkit`).
//!
//! ## Tracks
//!
//! Blue-green alternates `blue` and `green`. A canary runs the new version on whichever of
//! `stable` and `canary` is idle (after a promotion, the next canary starts on `stable`);
//! judges and triggers always see the old version as the baseline arm (`stable`) and the new one
//! as the canary arm (`canary`), whatever their tracks are called. Events therefore name the
//! version first and the track second ("weight: 10% to the new version 1.2.0 (canary arm, on
//! track stable)"); the new version is always the canary arm. A first install (nothing runs
//! yet) brings the version up and routes all traffic to it, with nothing to compare.
//!
//! ## Writing a backend
//!
//! A service's backends ([`ServiceBackends`]) and the [`Platform`] are traits; each comes with a
//! conformance suite behind a `testkit` feature that an implementation's tests run:
//!
//! - [`Platform`]: `serin_orchestrator::testkit::check_all(&platform, &template, ready_timeout)`,
//!   with a [`TrackSpec`] the platform can run and how long an instance may take to become
//!   ready; or `testkit::check_all_with(&platform, &fixture)`, whose `PlatformFixture` can kill
//!   an instance (the suite then checks it is reported dead and stays so), or says the platform
//!   keeps no deployment lock of its own (only for a platform one orchestrator alone uses) or
//!   records drains instead of waiting them (only for a bookkeeping platform such as
//!   [`InMemoryPlatform`]).
//! - `TrafficRouter`: `serin_traffic::testkit::check_all(&router)`, or `check_all_with(&router,
//!   &fixture)` for a router that must have its backends (`stable`, `canary`, `shadow`) set up
//!   before it accepts traffic for them. The orchestrator names backends by
//!   [`Track::as_str`](serin_signals::Track::as_str) of the platform's tracks.
//! - `MetricsSource` and `HealthSource`: `serin_signals::testkit::check_metrics_source_all(&source,
//!   &fixture)` and `check_health_source_all(&source, &fixture)`, whose fixtures arrange the known
//!   data the source must report. What the orchestrator asks of them (which metrics at each
//!   check, real track names rather than arm names, windows, errors read as no data, the
//!   orchestrator's [`Clock`]; health results kept fresh by the source itself) is documented on
//!   the traits in `serin-signals`.
//!
//! ```
//! # #[cfg(feature = "testkit")] {
//! use std::time::Duration;
//! use serin_orchestrator::{InMemoryPlatform, TrackSpec, testkit};
//! use serin_signals::Track;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let template = TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap();
//! // A platform that runs something: `check_all(&platform, &template, Duration::from_secs(5))`.
//! // The in-memory platform records its drains instead of waiting them, and says so.
//! let fixture = testkit::Template::new(template, Duration::from_secs(5)).recording_drains();
//! testkit::check_all_with(&InMemoryPlatform::new(), &fixture).await;
//! # });
//! # }
//! ```
//!
//! ## Time
//!
//! The executor waits with `tokio::time` and reads time from a [`Clock`]; tests run whole
//! canaries under paused time.
//!
//! ```
//! use std::time::Duration;
//! use serin_orchestrator::{InMemoryPlatform, Platform, TrackSpec, wait_ready};
//! use serin_signals::Track;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let platform = InMemoryPlatform::new().with_ready_after(2);
//! platform.bring_up(&TrackSpec::new("web", "2.0.0", Track::Green, 3)?).await?;
//! let green = wait_ready(&platform, "web", &Track::Green, Duration::from_millis(10), Duration::from_secs(1)).await?;
//! assert_eq!(green.ready_count(), 3);
//! platform.retire("web", &Track::Green, Duration::from_secs(30)).await?;
//! assert!(platform.list().await?.is_empty());
//! # Ok::<(), serin_orchestrator::Error>(())
//! # }).unwrap();
//! ```

pub mod backup;
#[cfg(feature = "charts")]
mod chart;
mod config;
mod error;
mod event;
mod hooks;
pub mod journal;
#[cfg(feature = "notify")]
pub mod notify;
mod orchestrator;
mod platform;
mod report;
mod run;
mod sample;
mod state;

use std::sync::{Mutex, MutexGuard};

#[cfg(feature = "charts")]
pub use chart::ChartOptions;
pub use config::{
    BlueGreenConfig, Bounds, CanaryConfig, CanaryThresholds, ChannelKind, DeploymentConfig, Format,
    MonitoringConfig, NotificationChannel, NotifyOn, OnDeadline, OnResume, ParityJudges,
    ParityRole, StrategyKind, TrafficStrategyKind,
};
pub use error::{Error, Result};
pub use event::{Event, EventKind, Phase};
#[cfg(any(feature = "testkit", test))]
pub use hooks::step_testkit;
pub use hooks::{
    BackupCheck, BackupInfo, BackupProvider, InMemoryBackup, InMemoryNotifier, InMemoryStepRunner,
    Notifier, NotifyContext, StepRunner,
};
pub use journal::{Compacted, FileJournal, InMemoryJournal, Journal, Record};
pub use orchestrator::{
    Clock, DeploymentHandle, DeploymentPlan, Orchestrator, OrchestratorBuilder, ServiceBackends,
    SpecFn, Status,
};
#[cfg(any(feature = "testkit", test))]
pub use platform::testkit;
pub use platform::{
    InMemoryPlatform, InstanceStatus, Platform, RESERVED_ENV, TrackKey, TrackSpec, TrackStatus,
    check_scale_down, wait_ready,
};
pub use report::{REPORT_SCHEMA_VERSION, Report};
pub use run::Operation;
pub use sample::{ArmSample, Sample};
pub use state::{
    AnyJudge, CanaryRun, DeploymentState, Effect, InFlight, Outcome, Placement, PlanRun, Stage,
    StepStatus, UpgradeStep,
};

/// Locks `m`, taking over a lock that a panicking thread poisoned: every value guarded in this
/// crate is whole between statements, so one panic is no reason to fail every later call.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Cuts `s` to at most `max` characters, marking the cut with `…`: notification fields and
/// chart captions have limits, and a cut must never split a character.
#[cfg(any(feature = "charts", feature = "notify"))]
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

#[cfg(all(test, any(feature = "charts", feature = "notify")))]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate("héllo", 10), "héllo");
        assert_eq!(truncate("héllo wörld", 5), "héll…");
        assert_eq!(truncate("rolled back", 6), "rolle…");
        assert_eq!(truncate("→→→", 2), "→…");
        assert_eq!(truncate("", 0), "");
    }
}
