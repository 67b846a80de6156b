//! Conformance suites for [`MetricsSource`] and [`HealthSource`] backends (feature `testkit`).
//!
//! Every backend's tests call the same checks, so an in-memory source, a simulation, an embedded
//! proxy and Prometheus all answer alike. A check needs to know the truth it compares against, so
//! each takes the source under test **and a fixture** that arranges known data for it: the
//! in-memory fixtures record observations; a Prometheus test drives an exporter that Prometheus
//! scrapes. Each check starts from fresh tracks or fresh windows, and panics with a message that
//! names the source, the query and what differed.
//!
//! ```
//! use serin_signals::testkit::{self, InMemoryFixture, InMemoryHealthFixture, MetricsFixture};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let fixture = InMemoryFixture::new();
//! testkit::check_metrics_source_all(fixture.source().as_ref(), &fixture).await;
//!
//! let health = InMemoryHealthFixture::new();
//! testkit::check_health_source_all(health.source().as_ref(), &health).await;
//! # });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, Result};
use crate::health::{HealthSignal, Probe, ProbeStatus};
use crate::health_source::{HealthSource, InMemoryHealth, probe_key};
use crate::memory::{InMemorySource, lock};
use crate::metric::Metric;
use crate::observation::{Counts, Measurement, Observation};
use crate::sketch::LatencySketch;
use crate::source::{MetricQuery, MetricsSource};
use crate::time::{Timestamp, Window};
use crate::track::Track;

/// Arranges known data for the [`MetricsSource`] under test.
#[async_trait]
pub trait MetricsFixture: Send + Sync {
    /// Two distinct tracks data can be arranged on: (baseline, canary).
    fn tracks(&self) -> (Track, Track);

    /// A track on which nothing is ever arranged.
    fn unknown_track(&self) -> Track {
        Track::Named("serin-testkit-unknown".into())
    }

    /// A window in which nothing was or will be arranged, on any track.
    fn quiet_window(&self) -> Window;

    /// Arranges that each listed track served the given [`Metric::ErrorRate`] counts, all in one
    /// period, and returns a window that holds that period and no other arranged data. Later
    /// arrangements must fall after the returned window.
    async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> Result<Window>;

    /// Arranges that `track` served requests with these latencies (milliseconds) and returns a
    /// window that holds them and nothing else arranged; `Ok(None)` when the source does not
    /// report latency (the latency check is then skipped).
    async fn arrange_latency(&self, track: &Track, millis: &[f64]) -> Result<Option<Window>>;

    /// The step for range checks; arrangement windows must be whole steps long for exact
    /// sources.
    fn range_step(&self) -> Duration;

    /// Relative tolerance on counts (`0.0` = exact). Sources that extrapolate, such as
    /// Prometheus' `increase()`, need a little.
    fn count_tolerance(&self) -> f64 {
        0.0
    }

    /// The relative tolerance within which the steps of a range query must add up to everything
    /// arranged in the window, and the steps within the last arrangement's window to that
    /// arrangement; `None` to leave totals unchecked. The default is
    /// [`count_tolerance`](MetricsFixture::count_tolerance). Prometheus needs `None`: each step's
    /// `increase()` extrapolates on its own (up to a scrape interval at each edge), and increments
    /// between the last sample of one step and the first of the next belong to neither, so steps
    /// add up only roughly.
    fn range_total_tolerance(&self) -> Option<f64> {
        Some(self.count_tolerance())
    }

    /// Relative tolerance on latency quantiles on top of
    /// [`LatencySketch::RELATIVE_ACCURACY`].
    fn latency_tolerance(&self) -> f64 {
        0.0
    }
}

/// Arranges known probe results for the [`HealthSource`] under test.
#[async_trait]
pub trait HealthFixture: Send + Sync {
    /// Records `signal` as the result of its probe on its track and instance, run at
    /// `signal.at`. Results may be arranged out of order (as they arrive from probers that
    /// answer late): the source must keep the one with the latest `at`.
    async fn arrange(&self, signal: HealthSignal) -> Result<()>;

    /// A track name the check may use, unique to `purpose`, on which nothing was arranged yet.
    ///
    /// The default names the track after `purpose` alone, so it is fresh only the first time a
    /// check runs against a source; a fixture whose checks run more than once against the same
    /// source hands out a new track each call (as [`InMemoryHealthFixture`] does).
    fn fresh_track(&self, purpose: &str) -> Track {
        Track::Named(format!("tk-{purpose}"))
    }
}

fn close(got: u64, want: u64, tolerance: f64) -> bool {
    let (g, w) = (got as f64, want as f64);
    (g - w).abs() <= tolerance * w.max(1.0)
}

/// Asks `query` and checks that the answer describes it (its metric, track and window): the
/// orchestrator takes an answer to another question for no answer at all, so a source whose
/// answers carry another window or metric would never have them read, whatever they hold.
async fn ask(source: &dyn MetricsSource, query: &MetricQuery) -> Observation {
    let o = match source.query(query).await {
        Ok(o) => o,
        Err(e) => panic!("{}: query {query:?} failed: {e}", source.name()),
    };
    assert_describes(source, query, &o);
    o
}

/// Panics unless `o` has the metric, track and window of `query`.
fn assert_describes(source: &dyn MetricsSource, query: &MetricQuery, o: &Observation) {
    assert_eq!(
        (&o.metric, &o.track, o.window),
        (&query.metric, &query.track, query.window),
        "{}: the observation must describe the query (metric, track, window)",
        source.name()
    );
}

fn counts_of(source: &dyn MetricsSource, o: &Observation) -> Counts {
    match &o.measurement {
        Measurement::Counts(c) => *c,
        other => panic!(
            "{}: expected counts for {} of {} over {}, got {other:?}",
            source.name(),
            o.metric,
            o.track,
            o.window
        ),
    }
}

fn assert_counts(
    source: &dyn MetricsSource,
    fixture: &dyn MetricsFixture,
    o: &Observation,
    want: Counts,
) {
    let got = counts_of(source, o);
    let tol = fixture.count_tolerance();
    assert!(
        close(got.requests(), want.requests(), tol) && close(got.errors(), want.errors(), tol),
        "{}: {} of {} over {}: got {got:?}, arranged {want:?} (tolerance {tol})",
        source.name(),
        o.metric,
        o.track,
        o.window
    );
}

/// Counts come back as arranged, per track: two arms with different counts in the same window
/// are kept apart, and the answer carries the query's metric, track and window.
pub async fn check_counts_per_track(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    let (a, b) = fixture.tracks();
    let (ca, cb) = (counts(1_000, 10), counts(400, 40));
    let window = arrange(fixture, &[(a.clone(), ca), (b.clone(), cb)]).await;
    for (track, want) in [(a, ca), (b, cb)] {
        let query = MetricQuery::new(Metric::ErrorRate, track, window);
        let o = ask(source, &query).await;
        assert_counts(source, fixture, &o, want);
    }
}

/// Nothing measured is [`Measurement::NoData`], never zero: a track nothing was arranged on,
/// and a window in which nothing was arranged.
pub async fn check_no_data(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    let (a, _) = fixture.tracks();
    let window = arrange(fixture, &[(a.clone(), counts(50, 1))]).await;
    let unknown = MetricQuery::new(Metric::ErrorRate, fixture.unknown_track(), window);
    let o = ask(source, &unknown).await;
    assert!(
        o.measurement.is_no_data(),
        "{}: unknown track {} must be NoData, got {:?}",
        source.name(),
        unknown.track,
        o.measurement
    );
    let quiet = MetricQuery::new(Metric::ErrorRate, a, fixture.quiet_window());
    let o = ask(source, &quiet).await;
    assert!(
        o.measurement.is_no_data(),
        "{}: quiet window {} must be NoData, got {:?}",
        source.name(),
        quiet.window,
        o.measurement
    );
}

/// Windows are respected: data arranged in one window does not show in another, and a window
/// spanning both holds the sum.
pub async fn check_windows_respected(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    let (a, _) = fixture.tracks();
    let (first, second) = (counts(300, 3), counts(700, 70));
    let w1 = arrange(fixture, &[(a.clone(), first)]).await;
    let w2 = arrange(fixture, &[(a.clone(), second)]).await;
    assert!(
        w1.end() <= w2.start(),
        "fixture: arrangement windows must not overlap ({w1} then {w2})"
    );
    for (window, want) in [(w1, first), (w2, second)] {
        let o = ask(
            source,
            &MetricQuery::new(Metric::ErrorRate, a.clone(), window),
        )
        .await;
        assert_counts(source, fixture, &o, want);
    }
    let both = span(w1, w2);
    let o = ask(source, &MetricQuery::new(Metric::ErrorRate, a, both)).await;
    assert_counts(source, fixture, &o, first.saturating_add(second));
}

/// Latency quantiles come back within the sketch's bound (plus the fixture's tolerance), the
/// slowest request included, and on the track they were arranged on only: the other track
/// reports no data over the same window. Skipped when the fixture says the source reports no
/// latency.
pub async fn check_latency_quantiles(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    let (a, b) = fixture.tracks();
    // Blocks of equal values, with the checked quantiles well inside a block, so the true
    // quantile is unambiguous: 50 × 10 ms, 40 × 50 ms, 9 × 250 ms, 1 × 1000 ms.
    let mut values = Vec::with_capacity(100);
    for (v, n) in [(10.0, 50), (50.0, 40), (250.0, 9), (1_000.0, 1)] {
        values.extend(std::iter::repeat_n(v, n));
    }
    let window = match fixture.arrange_latency(&b, &values).await {
        Ok(Some(w)) => w,
        Ok(None) => return,
        Err(e) => panic!("fixture: arranging latency failed: {e}"),
    };
    let o = ask(source, &MetricQuery::new(Metric::Latency, b, window)).await;
    let Measurement::Latency(sketch) = &o.measurement else {
        panic!(
            "{}: expected a latency sketch, got {:?}",
            source.name(),
            o.measurement
        )
    };
    let bound = LatencySketch::RELATIVE_ACCURACY + fixture.latency_tolerance();
    // q1 is the slowest request, which a source that loses a histogram's top bucket drops.
    for (q, exact) in [(0.25, 10.0), (0.75, 50.0), (0.95, 250.0), (1.0, 1_000.0)] {
        let got = sketch.quantile(q);
        assert!(
            got.is_some_and(|g| (g - exact).abs() <= exact * bound * 1.001),
            "{}: latency q{q} = {got:?}, true {exact} ms (bound {bound})",
            source.name()
        );
    }
    let other = ask(source, &MetricQuery::new(Metric::Latency, a, window)).await;
    assert!(
        other.measurement.is_no_data(),
        "{}: latency of {} over {window}, where only {} served requests, must be no data, got {:?}",
        source.name(),
        other.track,
        o.track,
        other.measurement
    );
}

/// Range queries return one observation per step, oldest first, contiguous, ending at the query
/// window's end, adding up to what was arranged, each arrangement in its own steps (see
/// [`MetricsFixture::range_total_tolerance`]); a zero step is an error.
pub async fn check_range_steps(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    let (a, _) = fixture.tracks();
    let step = fixture.range_step();
    let (first, second) = (counts(120, 12), counts(80, 0));
    let w1 = arrange(fixture, &[(a.clone(), first)]).await;
    let w2 = arrange(fixture, &[(a.clone(), second)]).await;
    let both = span(w1, w2);
    // Widen the window backwards to whole steps so no arranged data falls in a dropped remainder.
    let step_ms = u64::try_from(step.as_millis()).unwrap_or(u64::MAX).max(1);
    let len_ms = u64::try_from(both.length().as_millis()).unwrap_or(u64::MAX);
    let whole = Duration::from_millis(len_ms.div_ceil(step_ms).saturating_mul(step_ms));
    let window = Window::ending_at(both.end(), whole);
    let query = MetricQuery::new(Metric::ErrorRate, a, window);
    let got = match source.query_range(&query, step).await {
        Ok(v) => v,
        Err(e) => panic!(
            "{}: range query {query:?} step {step:?} failed: {e}",
            source.name()
        ),
    };
    let expected = query.steps(step).unwrap_or_default();
    let windows: Vec<Window> = got.iter().map(|o| o.window).collect();
    assert_eq!(
        windows,
        expected,
        "{}: range steps must be ordered, contiguous and end at the window's end",
        source.name()
    );
    // The steps within the later arrangement's window, which is whole steps long and ends the
    // query window, hold it alone: steps that add up yet each report another's counts fail.
    let (mut total, mut later) = (Counts::default(), Counts::default());
    for o in &got {
        assert_describes(source, &query.with_window(o.window), o);
        match o.measurement {
            Measurement::Counts(c) => {
                total = total.saturating_add(c);
                if o.window.start() >= w2.start() {
                    later = later.saturating_add(c);
                }
            }
            Measurement::NoData => {}
            ref other => panic!(
                "{}: range step {} holds {other:?}, expected counts or no data",
                source.name(),
                o.window
            ),
        }
    }
    let want = first.saturating_add(second);
    if let Some(tol) = fixture.range_total_tolerance() {
        assert!(
            close(total.requests(), want.requests(), tol)
                && close(total.errors(), want.errors(), tol),
            "{}: range steps add up to {total:?}, arranged {want:?} (tolerance {tol})",
            source.name()
        );
        assert!(
            close(later.requests(), second.requests(), tol)
                && close(later.errors(), second.errors(), tol),
            "{}: the steps within {w2} add up to {later:?}, arranged {second:?} there \
             (tolerance {tol})",
            source.name()
        );
    }
    assert!(
        source.query_range(&query, Duration::ZERO).await.is_err(),
        "{}: a zero step must be an error",
        source.name()
    );
}

/// A query [`MetricQuery::validate`] refuses (a [`Track::Named`] or [`Metric::Custom`] built
/// around its name check) is an error naming `query.track` or `query.metric`, from
/// [`query`](MetricsSource::query) and [`query_range`](MetricsSource::query_range) alike, never
/// an answer: `Named("stable")` answered as a track with no data would read as no data while
/// the stable track serves errors, and a name with quotes could be spliced into a query
/// language. Part of [`check_metrics_source_all`].
pub async fn check_invalid_queries_refused(
    source: &dyn MetricsSource,
    fixture: &dyn MetricsFixture,
) {
    let (a, _) = fixture.tracks();
    let window = fixture.quiet_window();
    let bad_tracks = ["stable", "Shadow 1", "", "a\"} or vector(1) #"]
        .map(|name| MetricQuery::new(Metric::ErrorRate, Track::Named(name.to_owned()), window));
    let bad_metrics = ["latency", "queue depth"]
        .map(|name| MetricQuery::new(Metric::Custom(name.to_owned()), a.clone(), window));
    let cases = bad_tracks
        .into_iter()
        .map(|q| (q, "query.track"))
        .chain(bad_metrics.into_iter().map(|q| (q, "query.metric")));
    for (query, field) in cases {
        let step = query.window.length();
        let outcomes = [
            ("query", source.query(&query).await.map(|_| ())),
            (
                "query_range",
                source.query_range(&query, step).await.map(|_| ()),
            ),
        ];
        for (call, outcome) in outcomes {
            match outcome {
                Err(Error::InvalidField { field: got, .. }) => assert!(
                    got == field,
                    "{}: {call} of {query:?} must be refused naming `{field}`, named `{got}`",
                    source.name()
                ),
                other => panic!(
                    "{}: {call} of {query:?} must be refused as invalid (`{field}`), got {other:?}",
                    source.name()
                ),
            }
        }
    }
}

/// Runs every [`MetricsSource`] check in turn. In every check, each answer must carry the
/// metric, track and window it was asked for (a range step, its step's window), as the
/// orchestrator reads an answer to another question as no data.
pub async fn check_metrics_source_all(source: &dyn MetricsSource, fixture: &dyn MetricsFixture) {
    check_counts_per_track(source, fixture).await;
    check_no_data(source, fixture).await;
    check_windows_respected(source, fixture).await;
    check_latency_quantiles(source, fixture).await;
    check_range_steps(source, fixture).await;
    check_invalid_queries_refused(source, fixture).await;
}

fn counts(requests: u64, errors: u64) -> Counts {
    Counts::new(requests, errors).unwrap_or_default()
}

fn span(first: Window, second: Window) -> Window {
    Window::new(first.start(), second.end()).unwrap_or(second)
}

async fn arrange(fixture: &dyn MetricsFixture, counts: &[(Track, Counts)]) -> Window {
    match fixture.arrange_counts(counts).await {
        Ok(w) => w,
        Err(e) => panic!("fixture: arranging counts failed: {e}"),
    }
}

async fn probe(source: &dyn HealthSource, track: &Track, p: &Probe) -> Option<HealthSignal> {
    match source.probe(track, p).await {
        Ok(s) => s,
        Err(e) => panic!("{}: probe {p:?} of {track} failed: {e}", source.name()),
    }
}

async fn signals(source: &dyn HealthSource, track: &Track) -> Vec<HealthSignal> {
    match source.signals(track).await {
        Ok(s) => s,
        Err(e) => panic!("{}: signals of {track} failed: {e}", source.name()),
    }
}

async fn put(fixture: &dyn HealthFixture, signal: HealthSignal) {
    if let Err(e) = fixture.arrange(signal).await {
        panic!("fixture: arranging a probe result failed: {e}");
    }
}

/// The newest result of a probe is the one reported, by its time, not by when it arrived: an
/// older result arranged after a newer one never rolls the state back (a late `Pass` must not
/// hide a `Fail`). A track never probed reports nothing (`None` and no signals), not a pass.
pub async fn check_health_latest(source: &dyn HealthSource, fixture: &dyn HealthFixture) {
    let track = fixture.fresh_track("latest");
    assert_eq!(
        probe(source, &track, &Probe::Readiness).await,
        None,
        "{}: a probe that never ran must report nothing",
        source.name()
    );
    assert!(signals(source, &track).await.is_empty());
    let at = Timestamp::from_millis;
    put(
        fixture,
        HealthSignal::new(
            track.clone(),
            Probe::Readiness,
            ProbeStatus::Pass,
            at(1_000),
        ),
    )
    .await;
    put(
        fixture,
        HealthSignal::new(
            track.clone(),
            Probe::Readiness,
            ProbeStatus::Fail,
            at(2_000),
        ),
    )
    .await;
    let got = probe(source, &track, &Probe::Readiness).await;
    assert_eq!(
        got.map(|s| (s.status, s.at)),
        Some((ProbeStatus::Fail, at(2_000))),
        "{}: the newest readiness result must win",
        source.name()
    );
    // A result older than the one held arrives late.
    put(
        fixture,
        HealthSignal::new(
            track.clone(),
            Probe::Readiness,
            ProbeStatus::Pass,
            at(1_500),
        ),
    )
    .await;
    let got = probe(source, &track, &Probe::Readiness).await;
    assert_eq!(
        got.map(|s| (s.status, s.at)),
        Some((ProbeStatus::Fail, at(2_000))),
        "{}: a readiness result of 1500 ms arranged after one of 2000 ms must not replace it",
        source.name()
    );
    let listed: Vec<_> = signals(source, &track)
        .await
        .into_iter()
        .map(|s| (s.status, s.at))
        .collect();
    assert_eq!(
        listed,
        [(ProbeStatus::Fail, at(2_000))],
        "{}: signals must hold the newest readiness result only, by time",
        source.name()
    );
}

/// Tracks are kept apart: a failure on one track never shows on another.
pub async fn check_health_tracks_apart(source: &dyn HealthSource, fixture: &dyn HealthFixture) {
    let (sick, well) = (fixture.fresh_track("sick"), fixture.fresh_track("well"));
    let at = Timestamp::from_millis(5_000);
    put(
        fixture,
        HealthSignal::new(sick.clone(), Probe::Liveness, ProbeStatus::Fail, at),
    )
    .await;
    put(
        fixture,
        HealthSignal::new(well.clone(), Probe::Liveness, ProbeStatus::Pass, at),
    )
    .await;
    for (track, want) in [(sick, ProbeStatus::Fail), (well, ProbeStatus::Pass)] {
        let got = probe(source, &track, &Probe::Liveness)
            .await
            .map(|s| s.status);
        assert_eq!(got, Some(want), "{}: liveness of {track}", source.name());
        let all = signals(source, &track).await;
        assert!(
            all.iter().all(|s| s.track == track) && all.len() == 1,
            "{}: signals of {track} must hold exactly its own result, got {all:?}",
            source.name()
        );
    }
}

/// Dependency probes are reported by name, and a track's probe summary is its worst instance,
/// even when a better one was probed more recently: an unknown instance outranks a passing one,
/// and a failing instance outranks an unknown one (a summary of `Unknown` while an instance
/// fails would be read as missing data, not as the failure it is).
pub async fn check_health_dependencies_and_instances(
    source: &dyn HealthSource,
    fixture: &dyn HealthFixture,
) {
    let track = fixture.fresh_track("deps");
    let at = Timestamp::from_millis(9_000);
    let db = Probe::Dependency("postgres".into());
    let cache = Probe::Dependency("redis".into());
    put(
        fixture,
        HealthSignal::new(track.clone(), db.clone(), ProbeStatus::Fail, at)
            .with_detail("connection refused"),
    )
    .await;
    put(
        fixture,
        HealthSignal::new(track.clone(), cache.clone(), ProbeStatus::Pass, at),
    )
    .await;
    // The passing instance was probed last, so a source that reports the newest instance
    // result instead of the worst hides the unknown one.
    let later = at.saturating_add(Duration::from_millis(1));
    for (instance, status, when) in [
        ("i-0", ProbeStatus::Pass, later),
        ("i-1", ProbeStatus::Unknown, at),
    ] {
        put(
            fixture,
            HealthSignal::new(track.clone(), Probe::Readiness, status, when)
                .with_instance(instance),
        )
        .await;
    }
    assert_eq!(
        probe(source, &track, &db).await.map(|s| s.status),
        Some(ProbeStatus::Fail),
        "{}: dependency `postgres`",
        source.name()
    );
    assert_eq!(
        probe(source, &track, &cache).await.map(|s| s.status),
        Some(ProbeStatus::Pass),
        "{}: dependency `redis`",
        source.name()
    );
    assert_eq!(
        probe(source, &track, &Probe::Readiness)
            .await
            .map(|s| s.status),
        Some(ProbeStatus::Unknown),
        "{}: readiness must report the worst instance",
        source.name()
    );
    let all = signals(source, &track).await;
    for wanted in [&db, &cache, &Probe::Readiness] {
        assert!(
            all.iter().any(|s| &s.probe == wanted),
            "{}: signals must list {wanted:?}, got {all:?}",
            source.name()
        );
    }
    assert_eq!(
        all.len(),
        4,
        "{}: one signal per probe and instance, got {all:?}",
        source.name()
    );
    let order: Vec<_> = all
        .iter()
        .map(|s| (probe_key(&s.probe), s.instance.clone()))
        .collect();
    assert!(
        order.windows(2).all(|w| w[0] <= w[1]),
        "{}: signals must be ordered by probe (readiness, liveness, startup, then dependencies \
         by name; see `probe_key`) then instance, got {order:?}",
        source.name()
    );
    // The unknown instance was probed last, so a source that ranks unknown above a failure,
    // or reports the newest instance result, hides the failing one.
    let mixed = fixture.fresh_track("worst");
    for (instance, status, when) in [
        ("i-0", ProbeStatus::Fail, at),
        ("i-1", ProbeStatus::Unknown, later),
    ] {
        put(
            fixture,
            HealthSignal::new(mixed.clone(), Probe::Liveness, status, when).with_instance(instance),
        )
        .await;
    }
    assert_eq!(
        probe(source, &mixed, &Probe::Liveness)
            .await
            .map(|s| s.status),
        Some(ProbeStatus::Fail),
        "{}: liveness of {mixed}: a failing instance must outrank an unknown one",
        source.name()
    );
}

/// A probe's summary over instances that fail alike is the most recent of them, whatever the
/// order the results arrived in or the instances sort in, and it keeps the instance it is the
/// result of: evidence that names no instance, or the wrong one, sends an operator to the
/// wrong place. [`HealthSource::signals`] names each instance too.
pub async fn check_health_ties_and_instances(
    source: &dyn HealthSource,
    fixture: &dyn HealthFixture,
) {
    let track = fixture.fresh_track("ties");
    let at = Timestamp::from_millis(12_000);
    let later = at.saturating_add(Duration::from_millis(1));
    // The newer failure arrives first and sorts first, so a source that keeps the last
    // arranged, or the last listed, reports the older one.
    for (instance, when) in [("i-0", later), ("i-1", at)] {
        put(
            fixture,
            HealthSignal::new(track.clone(), Probe::Liveness, ProbeStatus::Fail, when)
                .with_instance(instance),
        )
        .await;
    }
    let got = probe(source, &track, &Probe::Liveness).await;
    assert_eq!(
        got.as_ref()
            .map(|s| (s.status, s.at, s.instance.as_deref())),
        Some((ProbeStatus::Fail, later, Some("i-0"))),
        "{}: of instances failing alike, the most recent result must win, with its instance",
        source.name()
    );
    let listed: Vec<_> = signals(source, &track)
        .await
        .into_iter()
        .map(|s| (s.instance, s.at))
        .collect();
    assert_eq!(
        listed,
        [
            (Some("i-0".to_owned()), later),
            (Some("i-1".to_owned()), at)
        ],
        "{}: signals must keep each instance's name",
        source.name()
    );
}

/// A [`Track::Named`] built around its name check is refused by both calls with an error
/// naming the track, not answered as a track never probed: a `Named("stable")` would read as
/// unknown while the stable track's probes fail.
pub async fn check_health_invalid_tracks_refused(
    source: &dyn HealthSource,
    _fixture: &dyn HealthFixture,
) {
    for name in ["stable", "Shadow 1", ""] {
        let track = Track::Named(name.to_owned());
        let probed = source.probe(&track, &Probe::Readiness).await;
        let listed = source.signals(&track).await;
        for (call, outcome) in [
            ("probe", probed.map(|_| ())),
            ("signals", listed.map(|_| ())),
        ] {
            match outcome {
                Err(Error::InvalidField { field, value, .. }) => assert!(
                    field.contains("track") && value == name,
                    "{}: {call} of Named({name:?}) must name the track, got {field} `{value}`",
                    source.name()
                ),
                other => panic!(
                    "{}: {call} of Named({name:?}) must be refused as an invalid track, got \
                     {other:?}",
                    source.name()
                ),
            }
        }
    }
}

/// Runs every [`HealthSource`] check in turn.
pub async fn check_health_source_all(source: &dyn HealthSource, fixture: &dyn HealthFixture) {
    check_health_latest(source, fixture).await;
    check_health_tracks_apart(source, fixture).await;
    check_health_dependencies_and_instances(source, fixture).await;
    check_health_ties_and_instances(source, fixture).await;
    check_health_invalid_tracks_refused(source, fixture).await;
}

/// A [`MetricsFixture`] over an [`InMemorySource`]: each arrangement is recorded over the next
/// ten-second window of a virtual clock, so windows never overlap and no clock is read.
#[derive(Debug)]
pub struct InMemoryFixture {
    source: Arc<InMemorySource>,
    next_start: Mutex<Timestamp>,
}

impl Default for InMemoryFixture {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryFixture {
    const SLOT: Duration = Duration::from_secs(10);

    /// A fixture over a fresh source.
    pub fn new() -> Self {
        Self::over(Arc::new(InMemorySource::new()))
    }

    /// A fixture that arranges data in `source` (say, one wrapped by a decorator under test).
    /// Arrangements start at one hour past the epoch; the first hour stays quiet.
    pub fn over(source: Arc<InMemorySource>) -> Self {
        InMemoryFixture {
            source,
            next_start: Mutex::new(Timestamp::from_millis(3_600_000)),
        }
    }

    /// The source this fixture arranges data in.
    pub fn source(&self) -> &Arc<InMemorySource> {
        &self.source
    }

    fn next_window(&self) -> Window {
        let mut next = lock(&self.next_start);
        let window = Window::ending_at(next.saturating_add(Self::SLOT), Self::SLOT);
        *next = window.end();
        window
    }
}

#[async_trait]
impl MetricsFixture for InMemoryFixture {
    fn tracks(&self) -> (Track, Track) {
        (Track::Stable, Track::Canary)
    }

    fn quiet_window(&self) -> Window {
        Window::ending_at(
            Timestamp::from_millis(3_600_000),
            Duration::from_secs(3_600),
        )
    }

    async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> Result<Window> {
        let window = self.next_window();
        for (track, c) in counts {
            self.source.record_counts(
                track.clone(),
                Metric::ErrorRate,
                window,
                c.requests(),
                c.errors(),
            )?;
        }
        Ok(window)
    }

    async fn arrange_latency(&self, track: &Track, millis: &[f64]) -> Result<Option<Window>> {
        let window = self.next_window();
        self.source.record_latency(track.clone(), window, millis)?;
        Ok(Some(window))
    }

    fn range_step(&self) -> Duration {
        Self::SLOT
    }
}

/// A [`HealthFixture`] over an [`InMemoryHealth`]. Each fresh track it hands out is new, so the
/// checks may run on one fixture any number of times.
#[derive(Debug, Default)]
pub struct InMemoryHealthFixture {
    source: Arc<InMemoryHealth>,
    tracks_given: AtomicU64,
}

impl InMemoryHealthFixture {
    /// A fixture over a fresh source.
    pub fn new() -> Self {
        Self::default()
    }

    /// The source this fixture arranges results in.
    pub fn source(&self) -> &Arc<InMemoryHealth> {
        &self.source
    }
}

#[async_trait]
impl HealthFixture for InMemoryHealthFixture {
    async fn arrange(&self, signal: HealthSignal) -> Result<()> {
        self.source.record(signal)
    }

    fn fresh_track(&self, purpose: &str) -> Track {
        let n = self.tracks_given.fetch_add(1, Ordering::Relaxed);
        Track::Named(format!("tk-{purpose}-{n}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source that answers zero for everything: the suite must reject it.
    struct Zeroes;

    #[async_trait]
    impl MetricsSource for Zeroes {
        fn name(&self) -> &str {
            "zeroes"
        }
        async fn query(&self, q: &MetricQuery) -> Result<Observation> {
            Ok(Observation::new(
                q.metric.clone(),
                q.track.clone(),
                q.window,
                Measurement::Counts(Counts::default()),
            ))
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be NoData")]
    async fn a_source_that_reports_zero_for_nothing_fails_the_suite() {
        check_no_data(&Zeroes, &InMemoryFixture::new()).await;
    }

    #[tokio::test]
    #[should_panic(expected = "arranged")]
    async fn a_source_that_loses_counts_fails_the_suite() {
        check_counts_per_track(&Zeroes, &InMemoryFixture::new()).await;
    }

    /// Answers every query from the canary track's data, whatever track was asked.
    struct OneTrack(Arc<InMemorySource>);

    #[async_trait]
    impl MetricsSource for OneTrack {
        fn name(&self) -> &str {
            "one-track"
        }
        async fn query(&self, q: &MetricQuery) -> Result<Observation> {
            let asked = q.track.clone();
            let mut o = self
                .0
                .query(&MetricQuery {
                    track: Track::Canary,
                    ..q.clone()
                })
                .await?;
            o.track = asked;
            Ok(o)
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be no data")]
    async fn a_source_that_mixes_up_tracks_latency_fails_the_suite() {
        let fixture = InMemoryFixture::new();
        let source = OneTrack(Arc::clone(fixture.source()));
        check_latency_quantiles(&source, &fixture).await;
    }

    /// Answers latency queries with the right sketch but dated over another window, as a source
    /// that reports the span its samples cover rather than the window asked for would.
    struct LatencyRedated(Arc<InMemorySource>);

    #[async_trait]
    impl MetricsSource for LatencyRedated {
        fn name(&self) -> &str {
            "latency-redated"
        }
        async fn query(&self, q: &MetricQuery) -> Result<Observation> {
            let mut o = self.0.query(q).await?;
            if q.metric == Metric::Latency {
                o.window = Window::ending_at(q.window.end(), q.window.length() / 2);
            }
            Ok(o)
        }
    }

    /// The orchestrator takes an answer to another question for no answer, so a source whose
    /// latency answers are dated otherwise never has its latency read.
    #[tokio::test]
    #[should_panic(expected = "must describe the query")]
    async fn a_source_that_dates_latency_otherwise_fails_the_suite() {
        let fixture = InMemoryFixture::new();
        let source = LatencyRedated(Arc::clone(fixture.source()));
        check_latency_quantiles(&source, &fixture).await;
    }

    /// Answers a range with the right step windows but each step's measurement in reverse
    /// order, as a source that reads its samples newest first would.
    struct StepsReversed(Arc<InMemorySource>);

    #[async_trait]
    impl MetricsSource for StepsReversed {
        fn name(&self) -> &str {
            "steps-reversed"
        }
        async fn query(&self, q: &MetricQuery) -> Result<Observation> {
            self.0.query(q).await
        }
        async fn query_range(&self, q: &MetricQuery, step: Duration) -> Result<Vec<Observation>> {
            let mut steps = self.0.query_range(q, step).await?;
            let mut measurements: Vec<Measurement> =
                steps.iter().map(|o| o.measurement.clone()).collect();
            for o in &mut steps {
                o.measurement = measurements.pop().unwrap_or(Measurement::NoData);
            }
            Ok(steps)
        }
    }

    #[tokio::test]
    #[should_panic(expected = "steps within")]
    async fn a_source_that_misplaces_range_steps_fails_the_suite() {
        let fixture = InMemoryFixture::new();
        let source = StepsReversed(Arc::clone(fixture.source()));
        check_range_steps(&source, &fixture).await;
    }

    /// Arranges latency without the slowest requests, as a source that loses a histogram's top
    /// bucket reports it.
    struct DropsSlowest(InMemoryFixture);

    #[async_trait]
    impl MetricsFixture for DropsSlowest {
        fn tracks(&self) -> (Track, Track) {
            self.0.tracks()
        }
        fn quiet_window(&self) -> Window {
            self.0.quiet_window()
        }
        async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> Result<Window> {
            self.0.arrange_counts(counts).await
        }
        async fn arrange_latency(&self, track: &Track, millis: &[f64]) -> Result<Option<Window>> {
            let fastest = millis.iter().fold(f64::INFINITY, |a, b| a.min(*b));
            let kept: Vec<f64> = millis
                .iter()
                .copied()
                .filter(|m| *m <= fastest * 50.0)
                .collect();
            self.0.arrange_latency(track, &kept).await
        }
        fn range_step(&self) -> Duration {
            self.0.range_step()
        }
    }

    #[tokio::test]
    #[should_panic(expected = "latency q1")]
    async fn a_source_that_loses_the_slowest_requests_fails_the_suite() {
        let fixture = DropsSlowest(InMemoryFixture::new());
        check_latency_quantiles(fixture.0.source().as_ref(), &fixture).await;
    }

    /// Answers every query with no data, refusing nothing.
    struct Accepting;

    #[async_trait]
    impl MetricsSource for Accepting {
        fn name(&self) -> &str {
            "accepting"
        }
        async fn query(&self, q: &MetricQuery) -> Result<Observation> {
            Ok(Observation::new(
                q.metric.clone(),
                q.track.clone(),
                q.window,
                Measurement::NoData,
            ))
        }
    }

    #[tokio::test]
    #[should_panic(expected = "must be refused as invalid")]
    async fn a_source_that_answers_invalid_queries_fails_the_suite() {
        check_invalid_queries_refused(&Accepting, &InMemoryFixture::new()).await;
    }

    #[tokio::test]
    async fn the_in_memory_source_refuses_invalid_queries() {
        let fixture = InMemoryFixture::new();
        check_invalid_queries_refused(fixture.source().as_ref(), &fixture).await;
    }

    #[tokio::test]
    async fn the_health_suite_runs_again_on_the_same_fixture() {
        let fixture = InMemoryHealthFixture::new();
        for _ in 0..2 {
            check_health_source_all(fixture.source().as_ref(), &fixture).await;
        }
    }

    #[tokio::test]
    async fn the_suite_runs_through_arc_and_box() {
        let fixture = InMemoryFixture::new();
        let boxed: Box<dyn MetricsSource> = Box::new(Arc::clone(fixture.source()));
        check_metrics_source_all(&boxed, &fixture).await;
        let health = InMemoryHealthFixture::new();
        let shared: Arc<dyn HealthSource> = Arc::clone(health.source()) as Arc<dyn HealthSource>;
        check_health_source_all(&shared, &health).await;
    }
}
