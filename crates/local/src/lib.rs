//! # serin-local
//!
//! The embedded default backend for one machine — what a user gets without Kubernetes, in the
//! spirit of kamal-proxy for a single host, but driven by Serin's analysis:
//!
//! - [`ProxyRouter`]: an HTTP/1.1 + HTTP/2 (cleartext) reverse proxy on hyper, a
//!   [`TrafficRouter`](serin_traffic::TrafficRouter) that routes by the applied split (weights,
//!   header/cookie routes, sticky sessions, mirroring), applies splits atomically, gives traffic
//!   only to ready instances, drains instances before they stop, and retries once elsewhere a
//!   request that never reached an instance. It adds `Via`, and sets `X-Forwarded-For`,
//!   `X-Forwarded-Proto` and `Forwarded` from what it saw (a client's own forwarding headers are
//!   kept and extended only from `trustedProxies`), relays HTTP/1.1 protocol upgrades (WebSocket) through a
//!   tunnel that drains wait for, answers `CONNECT` with 501, and times out clients and
//!   instances that stop sending or reading.
//! - [`ProxyMetrics`]: what the proxy measured per backend (requests, 5xx, failures, timeouts
//!   and connection errors, latency sketch; mirrored copies against the mirror's backend) as a
//!   [`MetricsSource`](serin_signals::MetricsSource) and as Prometheus text on the admin
//!   endpoint, so canary analysis needs no external infrastructure. Counts are kept in buckets
//!   of `metricsResolution` (one second by default) and a window sums the buckets that end
//!   inside it, so metric windows and check intervals should be at least as long: a shorter
//!   window may hold no bucket end, and reads as no data. A window that ends inside a bucket,
//!   as one ending now does, leaves that bucket, still filling, to the next window, which
//!   reads it whole: windows that follow one another, each read once it has ended, count
//!   every request exactly once, up to one resolution late.
//! - [`ProcessPlatform`]: a [`Platform`](serin_orchestrator::Platform) that runs each instance
//!   as a local process from a command (`PORT`, `VERSION`, `INSTANCE` in its environment), waits
//!   on an HTTP readiness path, reports deaths without restarting, stops with SIGTERM then
//!   SIGKILL, and keeps each process's output in a log file rotated at a size limit
//!   ([`LogRotation`]).
//! - [`ProxiedPlatform`]: a [`ProcessPlatform`] with the proxy kept in step with it, for the
//!   orchestrator: ready instances join the proxy, and a retired track leaves it and drains
//!   before its processes stop (the example below does the same by hand). Its readiness
//!   gating counts as Kubernetes does: an instance the proxy routes to leaves it only after
//!   `failureThreshold` reads in a row found it unready (3 by default), so one slow probe does
//!   not empty a track, and joins it again at the first read that finds it ready; a dead
//!   instance leaves at once.
//! - [`HttpHealth`]: HTTP readiness/liveness/dependency probes as a
//!   [`HealthSource`](serin_signals::HealthSource), set by hand or following what a platform
//!   runs ([`HttpHealth::spawn_refresh`]), so that health-check triggers have results.
//! - [`load::Load`]: steady HTTP traffic through the proxy that counts which version answered
//!   each request, and which requests no version answered.
//!
//! The `serin-demo-service` binary is a small service with a configurable error rate and
//! latency per version, for tests, the quickstart and the benches.
//!
//! ## Zero downtime, step by step
//!
//! ```no_run
//! use std::time::Duration;
//! use serin_local::{ProcessConfig, ProcessPlatform, ProxyConfig, ProxyRouter};
//! use serin_orchestrator::{Platform, TrackSpec, wait_ready};
//! use serin_signals::Track;
//! use serin_traffic::{TrafficRouter, TrafficSplit};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let platform = ProcessPlatform::new(ProcessConfig::new("/tmp/serin-logs"))?;
//! let proxy = ProxyRouter::bind(ProxyConfig::listening_on("127.0.0.1:8080".parse()?)).await?;
//! let poll = Duration::from_millis(100);
//!
//! // Green comes up beside blue; only its ready instances are given to the proxy.
//! let green = TrackSpec::new("web", "2.0.0", Track::Green, 2)?.with_command(["./web"])?;
//! platform.bring_up(&green).await?;
//! proxy.sync_track(&wait_ready(&platform, "web", &Track::Green, poll, Duration::from_secs(60)).await?);
//!
//! // The switch is atomic; then blue drains before its processes get SIGTERM.
//! proxy.apply(&TrafficSplit::all_to("green", &["blue"])?).await?;
//! let blue = proxy.endpoints("blue");
//! proxy.set_endpoints("blue", &[]);
//! proxy.wait_drained(&blue, Duration::from_secs(30)).await;
//! platform.retire("web", &Track::Blue, Duration::ZERO).await?;
//! # Ok(())
//! # }
//! ```

mod error;
mod health;
pub mod load;
mod lock;
mod logs;
mod metrics;
mod probe;
mod process;
mod proxied;
mod proxy;

pub use error::{Error, Result};
pub use health::{HttpHealth, HttpProbe, ProbePaths};
pub use lock::LockDir;
pub use logs::LogRotation;
pub use metrics::ProxyMetrics;
pub use process::{ProcessConfig, ProcessPlatform, free_loopback_port};
pub use proxied::ProxiedPlatform;
pub use proxy::{ProxyConfig, ProxyRouter};

/// The shortest pause between two passes of a background task
/// ([`HttpHealth::spawn_refresh`], [`ProxiedPlatform::spawn_sync`]): a zero period would run
/// them back to back, hammering the platform and starving the runtime.
const MIN_PERIOD: std::time::Duration = std::time::Duration::from_millis(1);
