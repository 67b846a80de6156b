//! [`InMemorySource`]: a [`MetricsSource`] that answers from observations pushed into it.
//!
//! Tests, simulations and embedded shells record what they measured; queries aggregate it. It
//! reads no clock: every observation carries its own window. Fault injection
//! ([`fail_next`](InMemorySource::fail_next), [`set_unavailable`](InMemorySource::set_unavailable))
//! lets callers rehearse a metrics outage.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::observation::{Counts, Gauge, Measurement, Observation};
use crate::sketch::LatencySketch;
use crate::source::{MetricQuery, MetricsSource};
use crate::time::Window;
use crate::track::Track;

/// Injected failures shared by the in-memory sources: the next `n` calls fail, or every call
/// fails while unavailable.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    fail_next: u64,
    unavailable: bool,
}

impl Faults {
    /// Consumes one injected failure, if any, as an [`Error::Unavailable`].
    pub(crate) fn check(&mut self, source_name: &str) -> Result<()> {
        if self.unavailable {
            return Err(Error::Unavailable {
                source_name: source_name.to_owned(),
                reason: "marked unavailable (injected outage)".into(),
            });
        }
        if self.fail_next > 0 {
            self.fail_next -= 1;
            return Err(Error::Unavailable {
                source_name: source_name.to_owned(),
                reason: format!("injected failure ({} more to come)", self.fail_next),
            });
        }
        Ok(())
    }

    pub(crate) fn fail_next(&mut self, n: u64) {
        self.fail_next = n;
    }

    pub(crate) fn set_unavailable(&mut self, unavailable: bool) {
        self.unavailable = unavailable;
    }
}

/// Locks `m`, recovering the data if another thread panicked while holding it: every update
/// below is a single push or assignment, so the data is never left half-written.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Default)]
struct State {
    /// Recorded observations per (metric, track), in recording order.
    series: BTreeMap<(Metric, Track), Vec<Observation>>,
    faults: Faults,
}

/// A [`MetricsSource`] backed by observations pushed into it.
///
/// A query over a window `[start, end)` aggregates every recorded observation of that metric and
/// track whose window **ends** in it, in `(start, end]` (as a Prometheus range reads the samples
/// in it, and as a proxy counts a request when it ends): counts add, latency sketches merge, and
/// for gauges the reading with the latest window end wins (the later recording on a tie). So a
/// series of touching query windows counts every observation exactly once, one that straddles
/// their edge included, whatever the phase of the recording against the queries; an observation
/// over an empty window `[t, t)`, a reading at one instant, belongs to the window that contains
/// `t`. Nothing in the window,
/// or only latency sketches of no values, is [`Measurement::NoData`]. One metric of one track
/// holds one kind of measurement; recording another kind is an error and changes nothing.
///
/// ```
/// use serin_signals::{InMemorySource, Measurement, Metric, MetricQuery, MetricsSource, Timestamp, Track, Window};
///
/// # tokio_test(async {
/// let source = InMemorySource::new();
/// let minute = |m: u64| Window::new(Timestamp::from_millis(m * 60_000), Timestamp::from_millis((m + 1) * 60_000)).unwrap();
/// source.record_counts(Track::Canary, Metric::ErrorRate, minute(0), 1_000, 3)?;
/// source.record_counts(Track::Canary, Metric::ErrorRate, minute(1), 1_000, 5)?;
///
/// let both = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(120_000))?;
/// let obs = source.query(&MetricQuery::new(Metric::ErrorRate, Track::Canary, both)).await?;
/// assert_eq!(obs.error_rate(), Some(0.004));
///
/// let other_arm = source.query(&MetricQuery::new(Metric::ErrorRate, Track::Stable, both)).await?;
/// assert_eq!(other_arm.measurement, Measurement::NoData);
/// # Ok::<(), serin_signals::Error>(())
/// # });
/// # fn tokio_test<F: std::future::Future>(f: F) -> F::Output {
/// #     tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(f)
/// # }
/// ```
#[derive(Debug)]
pub struct InMemorySource {
    name: String,
    state: Mutex<State>,
}

impl Default for InMemorySource {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemorySource {
    /// An empty source named `in-memory`.
    pub fn new() -> Self {
        Self::named("in-memory")
    }

    /// An empty source with its own name (for errors and evidence).
    pub fn named(name: impl Into<String>) -> Self {
        InMemorySource {
            name: name.into(),
            state: Mutex::new(State::default()),
        }
    }

    /// Records one observation. [`Measurement::NoData`] is accepted and ignored by queries.
    /// A measurement of another kind than those already recorded for the same metric and track,
    /// or a metric or track built around its name checks ([`Metric::validate`],
    /// [`Track::validate`]), is an error and changes nothing.
    pub fn record(&self, observation: Observation) -> Result<()> {
        observation.metric.validate("observation.metric")?;
        observation.track.validate("observation.track")?;
        let mut state = lock(&self.state);
        let series = state
            .series
            .entry((observation.metric.clone(), observation.track.clone()))
            .or_default();
        // A series holds one kind, so its first measurement with data says which, and recording
        // does not read the whole series each time (which made long recordings quadratic).
        let clash = (!observation.measurement.is_no_data())
            .then(|| series.iter().find(|o| !o.measurement.is_no_data()))
            .flatten()
            .filter(|o| kind(&o.measurement) != kind(&observation.measurement));
        if let Some(existing) = clash {
            return Err(Error::invalid(
                "observation.measurement",
                kind(&observation.measurement),
                format!(
                    "metric `{}` of track `{}` already holds {} measurements",
                    observation.metric,
                    observation.track,
                    kind(&existing.measurement)
                ),
            ));
        }
        series.push(observation);
        Ok(())
    }

    /// Records `requests` requests of which `errors` failed, for `metric` of `track` over
    /// `window`.
    pub fn record_counts(
        &self,
        track: Track,
        metric: Metric,
        window: Window,
        requests: u64,
        errors: u64,
    ) -> Result<()> {
        let counts = Counts::new(requests, errors)?;
        self.record(Observation::new(
            metric,
            track,
            window,
            Measurement::Counts(counts),
        ))
    }

    /// Records latencies in milliseconds for [`Metric::Latency`] of `track` over `window`. A
    /// negative, NaN or infinite value is an error and records nothing.
    pub fn record_latency(&self, track: Track, window: Window, millis: &[f64]) -> Result<()> {
        let mut sketch = LatencySketch::new();
        for &v in millis {
            sketch.add(v)?;
        }
        self.record_sketch(track, window, sketch)
    }

    /// Records a ready-made latency sketch for [`Metric::Latency`] of `track` over `window`.
    pub fn record_sketch(&self, track: Track, window: Window, sketch: LatencySketch) -> Result<()> {
        self.record(Observation::new(
            Metric::Latency,
            track,
            window,
            Measurement::Latency(sketch),
        ))
    }

    /// Records a gauge reading for `metric` of `track` over `window`. A NaN or infinite value is
    /// an error and records nothing.
    pub fn record_gauge(
        &self,
        track: Track,
        metric: Metric,
        window: Window,
        value: f64,
    ) -> Result<()> {
        let gauge = Gauge::new(value)?;
        self.record(Observation::new(
            metric,
            track,
            window,
            Measurement::Gauge(gauge),
        ))
    }

    /// Makes the next `n` queries fail with [`Error::Unavailable`] (replacing any earlier count).
    pub fn fail_next(&self, n: u64) {
        lock(&self.state).faults.fail_next(n);
    }

    /// While `true`, every query fails with [`Error::Unavailable`]: a metrics outage.
    pub fn set_unavailable(&self, unavailable: bool) {
        lock(&self.state).faults.set_unavailable(unavailable);
    }

    /// Forgets every recorded observation (injected faults stay).
    pub fn clear(&self) {
        lock(&self.state).series.clear();
    }

    /// The number of observations recorded (including no-data ones).
    pub fn len(&self) -> usize {
        lock(&self.state).series.values().map(Vec::len).sum()
    }

    /// Whether nothing has been recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn aggregate(&self, query: &MetricQuery) -> Result<Observation> {
        // Before the faults: a refused query does not use up an injected failure.
        query.validate()?;
        let mut state = lock(&self.state);
        state.faults.check(&self.name)?;
        let key = (query.metric.clone(), query.track.clone());
        let held = state
            .series
            .get(&key)
            .into_iter()
            .flatten()
            .filter(|o| !o.measurement.is_no_data() && belongs(&o.window, &query.window));
        let mut acc: Option<Measurement> = None;
        let mut latest_gauge_end = None;
        for o in held {
            acc = Some(match (acc, &o.measurement) {
                (None, m) => {
                    latest_gauge_end = Some(o.window.end());
                    m.clone()
                }
                (Some(Measurement::Counts(a)), Measurement::Counts(b)) => {
                    Measurement::Counts(a.saturating_add(*b))
                }
                (Some(Measurement::Latency(mut a)), Measurement::Latency(b)) => {
                    a.merge(b)?;
                    Measurement::Latency(a)
                }
                (Some(Measurement::Gauge(a)), Measurement::Gauge(b)) => {
                    if latest_gauge_end.is_some_and(|end| o.window.end() >= end) {
                        latest_gauge_end = Some(o.window.end());
                        Measurement::Gauge(*b)
                    } else {
                        Measurement::Gauge(a)
                    }
                }
                // `record` keeps one kind per series, so mixed kinds cannot meet here; keep the
                // accumulated value rather than panic should that ever change.
                (Some(a), _) => a,
            });
        }
        // A sketch of no values has no quantile to weigh: it is no data, never a reading.
        let acc = acc.filter(|m| !matches!(m, Measurement::Latency(s) if s.count() == 0));
        Ok(Observation::new(
            query.metric.clone(),
            query.track.clone(),
            query.window,
            acc.unwrap_or(Measurement::NoData),
        ))
    }
}

/// Whether an observation over `observed` belongs to a query over `queried`: its end lies in
/// `(start, end]`. An empty window `[t, t)`, a reading at one instant, belongs where `t` does, so
/// of two touching windows only the later one holds a reading at their common edge. Either
/// way, of a series of touching windows exactly one holds each observation.
fn belongs(observed: &Window, queried: &Window) -> bool {
    if observed.length().is_zero() {
        return queried.contains(observed.start());
    }
    observed.end() > queried.start() && observed.end() <= queried.end()
}

fn kind(m: &Measurement) -> &'static str {
    match m {
        Measurement::Counts(_) => "counts",
        Measurement::Latency(_) => "latency",
        Measurement::Gauge(_) => "gauge",
        Measurement::NoData => "no-data",
    }
}

#[async_trait]
impl MetricsSource for InMemorySource {
    fn name(&self) -> &str {
        &self.name
    }

    async fn query(&self, query: &MetricQuery) -> Result<Observation> {
        self.aggregate(query)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::time::Timestamp;

    fn w(start_s: u64, end_s: u64) -> Window {
        Window::new(
            Timestamp::from_millis(start_s * 1_000),
            Timestamp::from_millis(end_s * 1_000),
        )
        .unwrap()
    }

    fn q(metric: Metric, track: Track, window: Window) -> MetricQuery {
        MetricQuery::new(metric, track, window)
    }

    #[tokio::test]
    async fn counts_add_inside_the_window_only() {
        let s = InMemorySource::new();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(0, 10), 100, 1)
            .unwrap();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(10, 20), 200, 2)
            .unwrap();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(15, 25), 999, 9)
            .unwrap();
        let got = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(0, 20)))
            .await
            .unwrap();
        assert_eq!(
            got.measurement,
            Measurement::Counts(Counts::new(300, 3).unwrap())
        );
        assert_eq!(got.window, w(0, 20));
        let none = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(30, 40)))
            .await
            .unwrap();
        assert!(none.measurement.is_no_data());
        let other = s
            .query(&q(Metric::Throughput, Track::Canary, w(0, 20)))
            .await
            .unwrap();
        assert!(other.measurement.is_no_data(), "metrics are kept apart");
    }

    /// An observation that straddles the edge of two touching windows counts once, in the one
    /// its end lies in: recordings out of phase with the queries lose nothing (a second of
    /// traffic that ends mid-window used to be counted in neither window).
    #[tokio::test]
    async fn an_observation_straddling_two_windows_counts_in_the_one_it_ends_in() {
        let s = InMemorySource::new();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(5, 15), 100, 1)
            .unwrap();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(15, 20), 50, 2)
            .unwrap();
        let first = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(0, 10)))
            .await
            .unwrap();
        let second = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(10, 20)))
            .await
            .unwrap();
        assert_eq!(first.measurement, Measurement::NoData);
        assert_eq!(
            second.measurement,
            Measurement::Counts(Counts::new(150, 3).unwrap())
        );
    }

    /// An observation over an empty window `[t, t)` (a reading at one instant) belongs to the
    /// one window of a series of touching windows that holds `t`, so it is never counted twice.
    #[tokio::test]
    async fn an_instant_observation_counts_in_one_of_two_touching_windows() {
        let s = InMemorySource::new();
        s.record_counts(Track::Canary, Metric::ErrorRate, w(10, 10), 100, 1)
            .unwrap();
        let before = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(0, 10)))
            .await
            .unwrap();
        let after = s
            .query(&q(Metric::ErrorRate, Track::Canary, w(10, 20)))
            .await
            .unwrap();
        assert_eq!(before.measurement, Measurement::NoData);
        assert_eq!(
            after.measurement,
            Measurement::Counts(Counts::new(100, 1).unwrap())
        );
    }

    #[tokio::test]
    async fn latency_sketches_merge_and_gauges_keep_the_latest() {
        let s = InMemorySource::new();
        s.record_latency(Track::Stable, w(0, 10), &[10.0, 20.0])
            .unwrap();
        s.record_latency(Track::Stable, w(10, 20), &[30.0]).unwrap();
        let got = s
            .query(&q(Metric::Latency, Track::Stable, w(0, 20)))
            .await
            .unwrap();
        let Measurement::Latency(sketch) = got.measurement else {
            panic!("expected latency, got {:?}", got.measurement)
        };
        assert_eq!(sketch.count(), 3);

        s.record_gauge(Track::Stable, Metric::Cpu, w(10, 20), 2.0)
            .unwrap();
        s.record_gauge(Track::Stable, Metric::Cpu, w(0, 10), 1.0)
            .unwrap();
        s.record_gauge(Track::Stable, Metric::Cpu, w(15, 20), 3.0)
            .unwrap();
        let got = s
            .query(&q(Metric::Cpu, Track::Stable, w(0, 20)))
            .await
            .unwrap();
        assert_eq!(
            got.measurement,
            Measurement::Gauge(Gauge::new(3.0).unwrap())
        );
        let early = s
            .query(&q(Metric::Cpu, Track::Stable, w(0, 10)))
            .await
            .unwrap();
        assert_eq!(
            early.measurement,
            Measurement::Gauge(Gauge::new(1.0).unwrap())
        );
    }

    #[tokio::test]
    async fn sketches_of_no_values_are_no_data() {
        let s = InMemorySource::new();
        s.record_latency(Track::Canary, w(0, 10), &[]).unwrap();
        s.record_sketch(Track::Canary, w(10, 20), LatencySketch::new())
            .unwrap();
        let got = s
            .query(&q(Metric::Latency, Track::Canary, w(0, 20)))
            .await
            .unwrap();
        assert_eq!(got.measurement, Measurement::NoData);
        s.record_latency(Track::Canary, w(5, 10), &[12.0]).unwrap();
        let got = s
            .query(&q(Metric::Latency, Track::Canary, w(0, 20)))
            .await
            .unwrap();
        assert!(
            matches!(&got.measurement, Measurement::Latency(sk) if sk.count() == 1),
            "{got:?}"
        );
    }

    #[test]
    fn bad_input_is_an_error_and_records_nothing() {
        let s = InMemorySource::new();
        assert!(
            s.record_counts(Track::Blue, Metric::ErrorRate, w(0, 1), 1, 2)
                .is_err()
        );
        assert!(
            s.record_latency(Track::Blue, w(0, 1), &[1.0, f64::NAN])
                .is_err()
        );
        assert!(
            s.record_gauge(Track::Blue, Metric::Memory, w(0, 1), f64::INFINITY)
                .is_err()
        );
        assert!(s.is_empty());
        s.record_gauge(Track::Blue, Metric::Memory, w(0, 1), 5.0)
            .unwrap();
        let msg = s
            .record_counts(Track::Blue, Metric::Memory, w(1, 2), 1, 0)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("observation.measurement")
                && msg.contains("counts")
                && msg.contains("gauge"),
            "{msg}"
        );
        assert_eq!(s.len(), 1);
    }

    /// A name built around `Track::named` or `Metric::named` is refused where it enters: it
    /// would otherwise be answered as no data, or recorded under a key no query can name.
    #[tokio::test]
    async fn names_built_around_their_checks_are_refused() {
        let s = InMemorySource::new();
        s.fail_next(1);
        let bad_track = q(Metric::ErrorRate, Track::Named("Canary 2".into()), w(0, 10));
        let err = s.query(&bad_track).await.unwrap_err();
        assert!(err.to_string().contains("query.track"), "{err}");
        let err = s
            .query_range(&bad_track, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("query.track"), "{err}");
        let bad_metric = q(Metric::Custom("cpu".into()), Track::Canary, w(0, 10));
        let err = s.query(&bad_metric).await.unwrap_err();
        assert!(err.to_string().contains("query.metric"), "{err}");
        let err = s
            .record_counts(
                Track::Named(String::new()),
                Metric::ErrorRate,
                w(0, 1),
                1,
                0,
            )
            .unwrap_err();
        assert!(err.to_string().contains("observation.track"), "{err}");
        let err = s
            .record_gauge(Track::Blue, Metric::Custom("a b".into()), w(0, 1), 1.0)
            .unwrap_err();
        assert!(err.to_string().contains("observation.metric"), "{err}");
        assert!(s.is_empty());
        // The refused query did not use up the injected failure.
        let good = q(Metric::ErrorRate, Track::Canary, w(0, 10));
        assert!(matches!(
            s.query(&good).await,
            Err(Error::Unavailable { .. })
        ));
    }

    #[tokio::test]
    async fn injected_faults_fail_queries_then_clear() {
        let s = InMemorySource::named("fake-prom");
        let query = q(Metric::ErrorRate, Track::Canary, w(0, 10));
        s.fail_next(2);
        for _ in 0..2 {
            let err = s.query(&query).await.unwrap_err();
            assert!(err.to_string().contains("fake-prom"), "{err}");
        }
        assert!(s.query(&query).await.is_ok());
        s.set_unavailable(true);
        assert!(matches!(
            s.query_range(&query, Duration::from_secs(5)).await,
            Err(Error::Unavailable { .. })
        ));
        s.set_unavailable(false);
        assert_eq!(
            s.query_range(&query, Duration::from_secs(5))
                .await
                .unwrap()
                .len(),
            2
        );
    }

    fn counts_in(s: &InMemorySource, window: Window) -> Option<Counts> {
        match s.aggregate(&q(Metric::ErrorRate, Track::Canary, window)) {
            Ok(Observation {
                measurement: Measurement::Counts(c),
                ..
            }) => Some(c),
            Ok(o) if o.measurement.is_no_data() => None,
            other => panic!("unexpected answer {other:?}"),
        }
    }

    proptest::proptest! {
        /// Splitting a window in two never loses or invents counts, and a window is no data
        /// exactly when nothing was recorded inside it.
        #[test]
        fn counts_add_up_over_adjacent_windows(
            slots in proptest::collection::vec((0u64..20, 0u64..1_000, 0u64..1_000), 0..40),
            split in 0u64..=20,
        ) {
            let s = InMemorySource::new();
            let mut recorded = vec![Counts::default(); 20];
            let mut any = [false; 20];
            for (slot, a, b) in slots {
                let (requests, errors) = (a.max(b), a.min(b));
                s.record_counts(Track::Canary, Metric::ErrorRate, w(slot * 10, slot * 10 + 10), requests, errors).unwrap();
                let i = usize::try_from(slot).unwrap();
                recorded[i] = recorded[i].saturating_add(Counts::new(requests, errors).unwrap());
                any[i] = true;
            }
            let whole = counts_in(&s, w(0, 200));
            let left = counts_in(&s, w(0, split * 10));
            let right = counts_in(&s, w(split * 10, 200));
            let sum = |c: Option<Counts>| c.unwrap_or_default();
            proptest::prop_assert_eq!(sum(whole), sum(left).saturating_add(sum(right)));
            let cut = usize::try_from(split).unwrap();
            proptest::prop_assert_eq!(left.is_some(), any[..cut].iter().any(|a| *a));
            proptest::prop_assert_eq!(right.is_some(), any[cut..].iter().any(|a| *a));
            let total = recorded.iter().fold(Counts::default(), |acc, c| acc.saturating_add(*c));
            proptest::prop_assert_eq!(sum(whole), total);
        }
    }

    #[tokio::test]
    async fn conformance() {
        let fixture = crate::testkit::InMemoryFixture::new();
        crate::testkit::check_metrics_source_all(fixture.source().as_ref(), &fixture).await;
    }
}
