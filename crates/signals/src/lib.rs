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

pub mod duration;
mod error;
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
pub use health_source::{HealthSource, InMemoryHealth};
pub use memory::InMemorySource;
pub use metric::Metric;
pub use observation::{Counts, Gauge, Measurement, Observation};
pub use sketch::LatencySketch;
pub use source::{MAX_RANGE_STEPS, MetricQuery, MetricsSource};
pub use time::{Timestamp, Window};
pub use track::{Arm, Track};
