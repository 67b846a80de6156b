//! # serin-sim
//!
//! A deterministic simulated fleet in virtual time, for testing deployments end to end in
//! milliseconds: one [`SimWorld`] implements `Platform` ([`SimPlatform`]), `TrafficRouter`
//! ([`SimRouter`]), `MetricsSource` ([`SimMetrics`]) and `HealthSource` ([`SimHealth`]) over
//! one shared state, so the split the router applies and the tracks the platform runs are
//! what the metrics and probes show.
//!
//! - **Virtual time.** The world's clock is tokio's: under a paused clock, a canary of hours
//!   runs as fast as the code that drives it. Nothing reads the wall clock or sleeps for real.
//! - **Seeded and reproducible.** Each second of each track draws its requests (Poisson around
//!   the [`Load`] times the track's share), errors (binomial at the version's error rate) and
//!   latencies (log-normal) from a random stream keyed by the seed, the track and the second
//!   (counted from the world's start, so the start timestamp changes no draw).
//!   The same query always gets the same answer; sub-windows add up to the whole exactly.
//! - **Versions behave as their [`VersionProfile`] says:** an error rate over time
//!   ([`Schedule`]: constant, step, ramp), optionally wandering on its own from second to
//!   second ([`ErrorWander`]: clumped, overdispersed errors), a latency distribution and a latency factor over
//!   time, a startup time, a [`Readiness`] behaviour (ready, never, flapping), a crash time,
//!   and CPU and memory use (a rising memory schedule is a leak).
//! - **Scripted [`Fault`]s:** crashes, slow starts, metrics outages and gaps, router and
//!   platform errors, probe failures, health outages, and latency and error incidents on one
//!   track or all (a slow or failing shared dependency) — at given times from the start.
//! - **A [`timeline`](SimWorld::timeline)** of every split applied or refused, every track
//!   brought up, scaled or retired, every failed platform call, every deployment lock taken,
//!   refused or freed, and every injected fault, with its virtual time, and
//!   [`unroutable`](SimWorld::unroutable) requests (sent to a track with no ready instance),
//!   so tests can check *when* things happened and that no request was lost.
//!
//! - **Configurable in code or in files:** [`SimConfig`] has `with_*` setters, reads from
//!   YAML, JSON or TOML (camelCase, unknown fields rejected, checked on load with the path of
//!   the offending field), and writes back the same form, which loads as the same world.
//!
//! Every conformance suite of the traits it implements runs against it in this crate's tests.
//! Traffic is routed by weight, and a split's [mirror](serin_traffic::Mirror) copies its share
//! of all requests to the mirror's track, which serves them and measures them (dropped, never
//! lost, while it has no ready instance). Match routes and sticky sessions are accepted and read
//! back, but no simulated request carries a header or cookie, so they change no share.
//!
//! ## A canary, simulated
//!
//! Version 2.0.0 starts failing: its errors rise from 0.5% to 5% over ten minutes. Ten minutes
//! at 10% are enough to see it, and take no real time:
//!
//! ```
//! use std::time::Duration;
//! use serin_orchestrator::{Platform, TrackSpec, wait_ready};
//! use serin_signals::{Metric, MetricQuery, MetricsSource, Track, Window};
//! use serin_sim::{Load, Schedule, SimConfig, SimWorld, VersionProfile};
//! use serin_traffic::{TrafficRouter, TrafficSplit};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
//! let v2 = semver::Version::new(2, 0, 0);
//! let failing = VersionProfile::default()
//!     .with_error_rate(Schedule::ramp(0.005, 0.05, Duration::ZERO, Duration::from_secs(600)));
//! let world = SimWorld::new(
//!     SimConfig::new(7).with_load(Load::constant(500.0)).with_profile(v2, failing),
//! )?;
//! let (platform, router, metrics) = (world.platform(), world.router(), world.metrics());
//!
//! platform.bring_up(&TrackSpec::new("web", "1.0.0", Track::Stable, 3)?).await?;
//! wait_ready(&platform, "web", &Track::Stable, Duration::from_secs(1), Duration::from_secs(60)).await?;
//! router.apply(&TrafficSplit::from_percents([("stable", 100), ("canary", 0)])?).await?;
//!
//! platform.bring_up(&TrackSpec::new("web", "2.0.0", Track::Canary, 1)?).await?;
//! wait_ready(&platform, "web", &Track::Canary, Duration::from_secs(1), Duration::from_secs(60)).await?;
//! let started = world.now();
//! router.apply(&TrafficSplit::from_percents([("stable", 90), ("canary", 10)])?).await?;
//! tokio::time::sleep(Duration::from_secs(600)).await;
//!
//! let window = Window::new(started, world.now())?;
//! let rate = |track| {
//!     let metrics = metrics.clone();
//!     async move {
//!         let q = MetricQuery::new(Metric::ErrorRate, track, window);
//!         metrics.query(&q).await.map(|o| o.error_rate().unwrap_or(0.0))
//!     }
//! };
//! let (stable, canary) = (rate(Track::Stable).await?, rate(Track::Canary).await?);
//! assert!(stable < 0.005 && canary > 0.02, "stable {stable}, canary {canary}");
//! assert!(world.applied_splits().len() == 2);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! # }).unwrap();
//! ```

mod config;
mod error;
mod fault;
mod health;
mod load;
mod metrics;
mod platform;
mod profile;
mod router;
mod sample;
mod schedule;
mod timeline;
mod world;

pub use config::{SimConfig, Unready};
pub use error::{Error, Result};
pub use fault::{Fault, Span};
pub use health::SimHealth;
pub use load::{Load, MAX_RPS};
pub use metrics::SimMetrics;
pub use platform::SimPlatform;
pub use profile::{ErrorWander, LatencyProfile, Readiness, VersionProfile};
pub use router::SimRouter;
pub use schedule::{Point, Schedule};
pub use timeline::{EventKind, TimelineEvent};
pub use world::SimWorld;
