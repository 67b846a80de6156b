//! [`SimMetrics`]: the world as a [`MetricsSource`].

use async_trait::async_trait;
use serin_signals::{
    Error, Gauge, Measurement, Metric, MetricQuery, MetricsSource, Observation, Result,
};

use crate::fault::Fault;
use crate::world::SimWorld;

/// The name the simulated metrics source gives in messages and errors.
const NAME: &str = "sim";

/// The simulated world as a [`MetricsSource`].
///
/// It answers [`Metric::ErrorRate`] and [`Metric::Throughput`] with the requests and errors
/// each track of the service served over the window, and [`Metric::Latency`] with the merged
/// sketch of their latencies, generated second by second (see [`SimWorld`]). [`Metric::Cpu`]
/// (cores) and [`Metric::Memory`] (bytes) are gauges read at the last whole second of the window
/// in which the track had a live instance and that no metrics gap lost: idle CPU per live
/// instance plus CPU time per request served, and the profile's memory per live instance.
/// Counts and latencies are those of the requests that arrived in the window, to the
/// millisecond, so [`Observation::throughput`] is the served rate for any window that ends by
/// now; gauges report seconds once they are over. A window that ends after now asks about
/// requests that have not arrived: the world does not measure it until it is over (no data,
/// which judges hold on), rather than report a rate diluted by the seconds to come.
/// Observations recorded with [`SimWorld::record`] are added on top; custom metrics come from
/// those recordings only.
/// A window in which a track served nothing is [`Measurement::NoData`]; a query whose track or
/// metric fails its name check ([`MetricQuery::validate`]) is an error. During a
/// metrics-outage fault every query fails with [`Error::Unavailable`]; seconds lost to a
/// metrics-gap fault are missing from every answer.
///
/// ```
/// use std::time::Duration;
/// use serin_orchestrator::{Platform, TrackSpec};
/// use serin_signals::{Metric, MetricQuery, MetricsSource, Track, Window};
/// use serin_sim::{SimConfig, SimWorld};
/// use serin_traffic::{TrafficRouter, TrafficSplit};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let world = SimWorld::new(SimConfig::new(42))?;
/// world.platform().bring_up(&TrackSpec::new("web", "1.0.0", Track::Stable, 2)?).await?;
/// tokio::time::sleep(Duration::from_secs(5)).await; // startup
/// world.router().apply(&TrafficSplit::from_percents([("stable", 100)])?).await?;
/// tokio::time::sleep(Duration::from_secs(60)).await;
///
/// let minute = Window::ending_at(world.now(), Duration::from_secs(60));
/// let obs = world.metrics().query(&MetricQuery::new(Metric::ErrorRate, Track::Stable, minute)).await?;
/// let rps = obs.throughput().unwrap();
/// assert!((80.0..120.0).contains(&rps), "about 100 requests per second, got {rps}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SimMetrics {
    world: SimWorld,
}

impl SimMetrics {
    pub(crate) fn new(world: SimWorld) -> Self {
        SimMetrics { world }
    }

    /// The world this source belongs to.
    pub fn world(&self) -> &SimWorld {
        &self.world
    }

    /// What the simulation generated for `query`, without recordings.
    fn generate(&self, query: &MetricQuery) -> Result<Measurement> {
        let now = self.world.now();
        let mut state = self.world.lock();
        let outage = state.fault_span_in_force(now, |f| match f {
            Fault::MetricsOutage { span } => Some(*span),
            _ => None,
        });
        if let Some(span) = outage {
            return Err(Error::Unavailable {
                source_name: NAME.to_owned(),
                reason: format!(
                    "metrics outage from {:?} to {:?} after the start (scripted fault)",
                    span.from, span.until
                ),
            });
        }
        if query.window.end() > now {
            return Ok(Measurement::NoData);
        }
        let cover = state.cover(query.window, now);
        Ok(match query.metric {
            Metric::ErrorRate | Metric::Throughput => {
                let total = state.counts_over(&query.track, &cover);
                if total.requests() == 0 {
                    Measurement::NoData
                } else {
                    Measurement::Counts(total)
                }
            }
            Metric::Latency => {
                let sketch = state.latency_over(&query.track, &cover);
                if sketch.count() == 0 {
                    Measurement::NoData
                } else {
                    Measurement::Latency(sketch)
                }
            }
            Metric::Cpu | Metric::Memory => {
                let memory = query.metric == Metric::Memory;
                state
                    .gauge(&query.track, state.seconds_in(query.window, now), memory)
                    .and_then(|v| Gauge::new(v).ok())
                    .map_or(Measurement::NoData, Measurement::Gauge)
            }
            Metric::Custom(_) => Measurement::NoData,
        })
    }
}

/// The sum of two measurements of one metric; no data adds nothing.
fn combine(a: Measurement, b: Measurement) -> Measurement {
    match (a, b) {
        (Measurement::NoData, m) | (m, Measurement::NoData) => m,
        (Measurement::Counts(x), Measurement::Counts(y)) => {
            Measurement::Counts(x.saturating_add(y))
        }
        (Measurement::Latency(mut x), Measurement::Latency(y)) => {
            // Simulated counts never approach the sketch's limit; past it `x` would stay as is.
            let _ = x.merge(&y);
            Measurement::Latency(x)
        }
        // Two readings of one gauge: the simulated one describes the window's last live
        // second, so it stands; so does anything generated against a recording of another kind.
        (generated, _) => generated,
    }
}

#[async_trait]
impl MetricsSource for SimMetrics {
    fn name(&self) -> &str {
        NAME
    }

    async fn query(&self, query: &MetricQuery) -> Result<Observation> {
        // A track or metric built around its name check would otherwise be answered as no data.
        query.validate()?;
        let generated = self.generate(query)?;
        let recorded = self.world.recorded().query(query).await?.measurement;
        Ok(Observation::new(
            query.metric.clone(),
            query.track.clone(),
            query.window,
            combine(generated, recorded),
        ))
    }
}
