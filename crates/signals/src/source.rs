//! Where observations come from: [`MetricQuery`] and the [`MetricsSource`] trait.
//!
//! A source answers one question — *this metric, this track, this window* — with an
//! [`Observation`]. Whatever the backend (in memory, Prometheus, a proxy's own counters, a
//! simulation), an answer with nothing in it is [`Measurement::NoData`](crate::Measurement::NoData),
//! and a backend that cannot answer returns an error: callers treat both as *inconclusive*, never
//! as a healthy zero.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::observation::Observation;
use crate::time::Window;
use crate::track::Track;

/// The most steps a range query may ask for (Prometheus' own limit is 11,000 points per series).
pub const MAX_RANGE_STEPS: u64 = 11_000;

/// One question to a [`MetricsSource`]: `metric` of `track` over `window`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MetricQuery {
    /// What to measure.
    pub metric: Metric,
    /// On which track.
    pub track: Track,
    /// Over which window `[start, end)`.
    pub window: Window,
}

impl MetricQuery {
    /// The query for `metric` of `track` over `window`.
    pub fn new(metric: Metric, track: Track, window: Window) -> Self {
        MetricQuery {
            metric,
            track,
            window,
        }
    }

    /// Checks the metric and the track (see [`Metric::validate`] and [`Track::validate`]), naming
    /// `query.metric` or `query.track`: a query built with [`Metric::Custom`] or [`Track::Named`]
    /// directly has not been checked. Every source calls this before it answers, so a bad name is
    /// refused rather than answered as no data or spliced into a backend's query language.
    pub fn validate(&self) -> Result<()> {
        self.metric.validate("query.metric")?;
        self.track.validate("query.track")
    }

    /// The same question over another window.
    pub fn with_window(&self, window: Window) -> Self {
        MetricQuery {
            window,
            ..self.clone()
        }
    }

    /// The consecutive steps of length `step` that a range query over this query's window
    /// answers, oldest first.
    ///
    /// Steps are aligned to the window's **end**, so the last step always ends at
    /// `window.end()` and the freshest data is never cut off; a remainder at the start shorter
    /// than one step is left out. A zero step, a step with a sub-millisecond part, a step longer
    /// than the window or more than [`MAX_RANGE_STEPS`] steps is an error.
    ///
    /// ```
    /// use std::time::Duration;
    /// use serin_signals::{Metric, MetricQuery, Timestamp, Track, Window};
    ///
    /// let w = Window::new(Timestamp::from_millis(500), Timestamp::from_millis(30_000))?;
    /// let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, w);
    /// let steps = q.steps(Duration::from_secs(10))?;
    /// assert_eq!(steps.len(), 2);
    /// assert_eq!(steps[0].start(), Timestamp::from_millis(10_000));
    /// assert_eq!(steps[1].end(), Timestamp::from_millis(30_000));
    /// # Ok::<(), serin_signals::Error>(())
    /// ```
    pub fn steps(&self, step: Duration) -> Result<Vec<Window>> {
        let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        if step_ms == 0 {
            return Err(Error::invalid(
                "step",
                format!("{step:?}"),
                "must be at least one millisecond",
            ));
        }
        // Windows and Prometheus' sample times are whole milliseconds: a step with a finer part
        // would space the windows by one length and ask the backend for another, and every
        // point after the first would fall between samples.
        if !step.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(Error::invalid(
                "step",
                format!("{step:?}"),
                "must be a whole number of milliseconds",
            ));
        }
        let length_ms = u64::try_from(self.window.length().as_millis()).unwrap_or(u64::MAX);
        let count = length_ms / step_ms;
        if count == 0 {
            return Err(Error::invalid(
                "step",
                format!("{step:?}"),
                format!(
                    "is longer than the query window {} ({:?})",
                    self.window,
                    self.window.length()
                ),
            ));
        }
        if count > MAX_RANGE_STEPS {
            return Err(Error::invalid(
                "step",
                format!("{step:?}"),
                format!(
                    "would split the window {} into {count} steps; at most {MAX_RANGE_STEPS} are allowed",
                    self.window
                ),
            ));
        }
        let end = self.window.end();
        (0..count)
            .rev()
            .map(|i| {
                let step_end = end.saturating_sub(Duration::from_millis(i * step_ms));
                Ok(Window::ending_at(step_end, step))
            })
            .collect()
    }
}

/// A source of metric observations: Prometheus, an embedded proxy's counters, a simulation, or
/// [`InMemorySource`](crate::InMemorySource) in tests.
///
/// Implementations must be deterministic in what they report (no clock reads in the answer: the
/// window is the caller's), keep tracks apart, answer [`Measurement::NoData`](crate::Measurement)
/// rather than zero when nothing was measured, and return an error — never a made-up value — when
/// the backend fails. The conformance suite in `testkit` (feature `testkit`) checks all of this.
///
/// # What the orchestrator asks
///
/// `serin-orchestrator` asks [`query`](MetricsSource::query) (never
/// [`query_range`](MetricsSource::query_range)) at each canary analysis step and each
/// monitoring check after promotion, once for the old version's track and once for the new
/// one's, for each of these metrics:
/// - [`Metric::ErrorRate`](crate::Metric::ErrorRate) and [`Metric::Latency`](crate::Metric::Latency)
///   always, whatever the judges read (the report charts both for both versions);
/// - every metric a judge, the pacing, the promotion gate or a trigger reads (`metricThreshold`,
///   `resourceUsage`, `errorSpike`, a `dependencyFailure`'s `callMetric`).
///
/// The track is the platform's real track name (`blue`, `green`, `stable`, `canary` or a
/// named track), never an arm name: after a promotion the old version may run on `canary` and
/// the new one on `stable`, so a source keys its data by the track that served it. Each window
/// runs from the end of the previous one to now, so windows touch without overlapping and last
/// the canary's `metricsWindow` or the monitoring `checkInterval` (shorter at the deployment's
/// deadline or after an operator's command). `now` is the orchestrator's `Clock`: wall time in
/// production, virtual time under paused time, so a source stamps what it measures on that
/// clock.
///
/// An error is logged as a warning for that track and window and read as no data (never as a
/// pass); the next window asks again. So is an answer with another metric, track or window
/// than the query's: the orchestrator does not take it for the answer it asked for. A metric the source never measures (a source without
/// latency) is therefore better answered with [`Measurement::NoData`](crate::Measurement) than
/// with an error, which would be logged at every window.
///
/// The trait is object-safe; `Arc<T>` and `Box<T>` forward to `T`.
#[async_trait]
pub trait MetricsSource: Send + Sync {
    /// A short name for errors and evidence (`prometheus`, `in-memory`, `local-proxy`).
    fn name(&self) -> &str;

    /// The observation of `query.metric` on `query.track` over `query.window`, with the query's
    /// window, or [`Measurement::NoData`](crate::Measurement::NoData) when nothing was measured.
    /// A query that [`MetricQuery::validate`] refuses is an error, never no data.
    async fn query(&self, query: &MetricQuery) -> Result<Observation>;

    /// One observation per step of the query's window (see [`MetricQuery::steps`]), oldest
    /// first, each over its own step window.
    ///
    /// The default checks the query ([`MetricQuery::validate`]), then asks
    /// [`query`](MetricsSource::query) once per step; backends with a native range query
    /// (Prometheus' `query_range`) override it.
    async fn query_range(&self, query: &MetricQuery, step: Duration) -> Result<Vec<Observation>> {
        query.validate()?;
        let steps = query.steps(step)?;
        let mut out = Vec::with_capacity(steps.len());
        for window in steps {
            out.push(self.query(&query.with_window(window)).await?);
        }
        Ok(out)
    }
}

#[async_trait]
impl<T: MetricsSource + ?Sized> MetricsSource for Arc<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn query(&self, query: &MetricQuery) -> Result<Observation> {
        (**self).query(query).await
    }

    async fn query_range(&self, query: &MetricQuery, step: Duration) -> Result<Vec<Observation>> {
        (**self).query_range(query, step).await
    }
}

#[async_trait]
impl<T: MetricsSource + ?Sized> MetricsSource for Box<T> {
    fn name(&self) -> &str {
        (**self).name()
    }

    async fn query(&self, query: &MetricQuery) -> Result<Observation> {
        (**self).query(query).await
    }

    async fn query_range(&self, query: &MetricQuery, step: Duration) -> Result<Vec<Observation>> {
        (**self).query_range(query, step).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observation::Measurement;
    use crate::time::Timestamp;

    mockall::mock! {
        Source {}
        #[async_trait]
        impl MetricsSource for Source {
            fn name(&self) -> &str;
            async fn query(&self, query: &MetricQuery) -> Result<Observation>;
        }
    }

    fn window(start: u64, end: u64) -> Window {
        Window::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).unwrap()
    }

    #[test]
    fn steps_are_aligned_to_the_end_and_ordered() {
        let q = MetricQuery::new(Metric::Latency, Track::Stable, window(1, 10_001));
        let steps = q.steps(Duration::from_secs(3)).unwrap();
        assert_eq!(
            steps,
            vec![
                window(1_001, 4_001),
                window(4_001, 7_001),
                window(7_001, 10_001)
            ]
        );
    }

    #[test]
    fn bad_steps_are_errors_naming_the_step() {
        let q = MetricQuery::new(Metric::Latency, Track::Stable, window(0, 10_000));
        for (step, why) in [
            (Duration::ZERO, "at least one millisecond"),
            (Duration::from_secs(11), "longer than the query window"),
            (Duration::from_micros(10), "at least one millisecond"),
            (Duration::new(1, 600_000), "whole number of milliseconds"),
        ] {
            let msg = q.steps(step).unwrap_err().to_string();
            assert!(msg.contains("step") && msg.contains(why), "{msg}");
        }
        let long = MetricQuery::new(Metric::Latency, Track::Stable, window(0, 20_000));
        let msg = long
            .steps(Duration::from_millis(1))
            .unwrap_err()
            .to_string();
        assert!(msg.contains("20000 steps"), "{msg}");
    }

    #[test]
    fn queries_serialize_in_camel_case_and_reject_unknown_fields() {
        let q = MetricQuery::new(Metric::ErrorRate, Track::Canary, window(0, 60_000));
        let json = serde_json::to_string(&q).unwrap();
        assert_eq!(
            json,
            r#"{"metric":"error_rate","track":"canary","window":{"start":0,"end":60000}}"#
        );
        assert_eq!(serde_json::from_str::<MetricQuery>(&json).unwrap(), q);
        let extra = r#"{"metric":"cpu","track":"blue","window":{"start":0,"end":1},"x":1}"#;
        assert!(serde_json::from_str::<MetricQuery>(extra).is_err());
    }

    #[tokio::test]
    async fn default_range_asks_each_step_in_order_through_arc_and_box() {
        let mut mock = MockSource::new();
        let mut seq = mockall::Sequence::new();
        for (start, end) in [(0, 5_000), (5_000, 10_000)] {
            mock.expect_query()
                .withf(move |q| q.window == window(start, end) && q.track == Track::Canary)
                .times(1)
                .in_sequence(&mut seq)
                .returning(|q| {
                    Ok(Observation::new(
                        q.metric.clone(),
                        q.track.clone(),
                        q.window,
                        Measurement::NoData,
                    ))
                });
        }
        mock.expect_name().return_const("mock".to_owned());
        let boxed: Box<dyn MetricsSource> = Box::new(mock);
        let shared: Arc<dyn MetricsSource> = Arc::new(boxed);
        assert_eq!(shared.name(), "mock");
        let q = MetricQuery::new(Metric::Cpu, Track::Canary, window(0, 10_000));
        let got = shared
            .query_range(&q, Duration::from_secs(5))
            .await
            .unwrap();
        let windows: Vec<Window> = got.iter().map(|o| o.window).collect();
        assert_eq!(windows, vec![window(0, 5_000), window(5_000, 10_000)]);
    }

    #[tokio::test]
    async fn default_range_stops_at_the_first_error() {
        let mut mock = MockSource::new();
        mock.expect_query().times(1).returning(|_| {
            Err(Error::Unavailable {
                source_name: "mock".into(),
                reason: "down".into(),
            })
        });
        let q = MetricQuery::new(Metric::Cpu, Track::Canary, window(0, 10_000));
        let err = mock
            .query_range(&q, Duration::from_secs(1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    }
}
