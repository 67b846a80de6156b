//! # serin-signals
//!
//! What Serin observes, as plain data every other crate shares:
//!
//! - [`Timestamp`] and [`Window`]: time as milliseconds since the Unix epoch, so every observation
//!   and decision can be serialized and replayed exactly.
//! - [`Track`] (a running group of one version: `stable`, `canary`, `blue`, `green` or named) and
//!   [`Arm`] (the role it plays in an analysis: baseline or canary).
//! - [`Metric`] identities and [`Observation`]s: request/error [`Counts`], a mergeable
//!   [`LatencySketch`] with a 1% relative-error bound, or a [`Gauge`] — or [`Measurement::NoData`],
//!   which is never mistaken for zero.
//! - [`HealthSignal`]s: readiness, liveness, startup and dependency probe results.
//!
//! And where observations come from:
//!
//! - [`MetricsSource`]: an async, object-safe trait answering a [`MetricQuery`] — *this metric,
//!   this track, this window* — with an [`Observation`], or a series of them over consecutive
//!   steps ([`MetricsSource::query_range`]). Nothing measured is [`Measurement::NoData`]; a backend
//!   that fails returns an [`Error`] ([`Error::Unavailable`], [`Error::Timeout`],
//!   [`Error::BadQuery`], ...). Either way the caller holds: missing evidence is never a pass.
//! - [`InMemorySource`] (always compiled): observations pushed in, aggregated per window (counts
//!   add, sketches merge, gauges keep the latest), with injected outages for tests.
//! - [`HealthSource`] and [`InMemoryHealth`]: the latest probe results per track, instance and
//!   dependency.
//! - `prometheus::PrometheusSource` (feature `prometheus`): PromQL over HTTP, with per-metric
//!   templates, retries with exponential backoff on transient failures, and Prometheus histograms
//!   read as latency sketches.
//! - `testkit` (feature `testkit`): the conformance suites every backend's tests run, with
//!   fixtures that arrange known truth.
//!
//! ```
//! use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
//!
//! let window = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(60_000))?;
//! let counts = Counts::new(12_000, 60)?;
//! let obs = Observation::new(Metric::ErrorRate, Track::Canary, window, Measurement::Counts(counts));
//! assert_eq!(obs.error_rate(), Some(0.005));
//! assert_eq!(obs.throughput(), Some(200.0));
//! # Ok::<(), serin_signals::Error>(())
//! ```
//!
//! Asking a source, here the in-memory one:
//!
//! ```
//! use serin_signals::{InMemorySource, Measurement, Metric, MetricQuery, MetricsSource, Timestamp, Track, Window};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let source = InMemorySource::new();
//! let window = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(60_000))?;
//! source.record_counts(Track::Stable, Metric::ErrorRate, window, 10_000, 20)?;
//!
//! let source: &dyn MetricsSource = &source;
//! let stable = source.query(&MetricQuery::new(Metric::ErrorRate, Track::Stable, window)).await?;
//! assert_eq!(stable.error_rate(), Some(0.002));
//! let canary = source.query(&MetricQuery::new(Metric::ErrorRate, Track::Canary, window)).await?;
//! assert!(canary.measurement.is_no_data(), "nothing measured is no data, never 0%");
//! # Ok::<(), serin_signals::Error>(())
//! # }).unwrap();
//! ```

pub mod duration;
mod error;
pub mod float;
mod health;
mod health_source;
mod memory;
mod metric;
mod observation;
#[cfg(feature = "prometheus")]
pub mod prometheus;
mod sketch;
mod source;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;
mod time;
mod track;

pub use error::{Error, Result};
pub use health::{HealthSignal, Probe, ProbeStatus};
pub use health_source::{HealthSource, InMemoryHealth, probe_key, worst_signal};
pub use memory::InMemorySource;
pub use metric::Metric;
pub use observation::{Counts, Gauge, Measurement, Observation};
pub use sketch::LatencySketch;
pub use source::{MAX_RANGE_STEPS, MetricQuery, MetricsSource};
pub use time::{Timestamp, Window};
pub use track::{Arm, Track, dns_label_problem};
