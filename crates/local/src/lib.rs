//! # serin-local
//!
//! The embedded default backend for one machine — what a user gets without Kubernetes:
//!
//! - [`ProxyRouter`]: an HTTP/1.1 + HTTP/2 reverse proxy on hyper, a
//!   [`TrafficRouter`](serin_traffic::TrafficRouter) that routes by the applied split (weights,
//!   header/cookie routes, sticky sessions, mirroring), gates on readiness, drains, retries
//!   requests that were never sent, and measures what it forwards.
//! - [`ProxyMetrics`]: those measurements as a [`MetricsSource`](serin_signals::MetricsSource)
//!   and as Prometheus text, so canary analysis needs no external infrastructure.
//!
//! The process platform and the HTTP health source are documented in their modules below when
//! present; the `serin-demo-service` binary is the small service the tests and benches run.

mod error;
mod health;
mod metrics;
mod probe;
mod process;
mod proxy;

pub use error::{Error, Result};
pub use health::{HttpHealth, HttpProbe};
pub use metrics::ProxyMetrics;
pub use process::{ProcessConfig, ProcessPlatform};
pub use proxy::{ProxyConfig, ProxyRouter};
