//! # serin-orchestrator
//!
//! The thin composition layer of Serin. So far it holds the [`Platform`] trait — what runs the
//! instances of each track — with [`InMemoryPlatform`], the [`wait_ready`] helper, the crate's
//! [`Error`] and, behind the `testkit` feature, the platform conformance suite
//! (`testkit`). The deployment configuration, plan, strategies, journal, events,
//! notifications, backups and report come later; every decision they execute will come from the
//! pure crates (`serin-compat`, `serin-traffic`, `serin-canary`, `serin-triggers`).
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

mod config;
mod error;
mod event;
mod hooks;
mod journal;
mod orchestrator;
mod platform;
mod report;
mod run;
mod state;

pub use config::{
    BlueGreenConfig, Bounds, CanaryConfig, CanaryThresholds, ChannelKind, DeploymentConfig, Format,
    MonitoringConfig, NotificationChannel, NotifyOn, OnResume, StrategyKind, TrafficStrategyKind,
};
pub use error::{Error, Result};
pub use event::{Event, EventKind, Phase};
pub use hooks::{BackupProvider, InMemoryBackup, InMemoryNotifier, Notifier};
pub use journal::{FileJournal, InMemoryJournal, Journal, Record};
pub use orchestrator::{
    Clock, DeploymentHandle, DeploymentPlan, Orchestrator, OrchestratorBuilder, ServiceBackends,
    SpecFn, Status,
};
#[cfg(any(feature = "testkit", test))]
pub use platform::testkit;
pub use platform::{
    InMemoryPlatform, InstanceStatus, Platform, RESERVED_ENV, TrackKey, TrackSpec, TrackStatus,
    wait_ready,
};
pub use report::Report;
pub use run::Operation;
pub use state::{AnyJudge, CanaryRun, DeploymentState, Effect, Outcome, Placement, PlanRun, Stage};
