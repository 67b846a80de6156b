//! [`ProxyMetrics`]: what the proxy measured, per backend, as a [`MetricsSource`] and as
//! Prometheus text.
//!
//! Every forwarded request is counted against the backend (track) that answered it: one
//! request, an error if the answer was a 5xx or the proxy could not reach any instance (a 502
//! it made itself), and its latency to the response headers in milliseconds. An instance that
//! received a request and then failed it (crashed mid-answer) or did not answer it in time is
//! charged with one errored request too, even when the request is then replayed elsewhere and
//! counted there as well: canary analysis reads these counts, and a version that crashes or
//! hangs must show as failing even though the proxy saved its requests. An instance that
//! stopped reading a request's body for the body timeout counts as not answering in time. A
//! mirrored copy is measured against the mirror's backend the same way (a copy that could not
//! even be sent counts as an error there, as the 502 a client would have had), except a copy
//! cut short because the mirror fell behind. A request whose client broke or stalled its own
//! body (disconnected mid-upload: nginx's 499) is charged to no one.
//!
//! A request is counted once its outcome is known, in the bucket of that moment: one the proxy
//! answered itself or charged to a failing instance at once, and one an instance answered
//! when its answer's body has ended (read in full, failed, or dropped by a client gone), as
//! an error if its body broke off or stalled whatever its status, with its latency to the
//! headers all the same. A request is thus in flight on its instance, and in no count, for
//! as long as its body streams (as nginx logs a request when it ends), and a bucket is never
//! changed for a request after its end: an error that a body shows late lands in a bucket no
//! window has read yet, so windows and totals agree on every request and every error.
//!
//! Counts are kept in time buckets of a fixed resolution (one second by default) for a bounded
//! retention, and a query over a window `[start, end)` sums the buckets that end inside it
//! (their end in `(start, end]`): exact for windows aligned to the resolution. A window that
//! ends inside a bucket, as one read at the moment it ends does, leaves that bucket, still
//! filling, to the window after it, which reads it whole: windows that follow one another,
//! each read once it has ended, count every request exactly once, at the cost of reading it up
//! to one resolution late (a window's first bucket may hold requests from just before it). A
//! window read before it has ended reads its last bucket only as far as it has filled, so that
//! a query over all time (a window ending far ahead) sees every request so far; the window
//! after such an early read does not read the rest of that bucket.
//!
//! Retention is time, not a number of buckets: a bucket older than `metricsRetention` is never
//! answered, however sparse the traffic since it. A window starting before the oldest time
//! still held is refused (an error naming the window and the retention), never answered with
//! the part that is left as if it were whole; one starting before the proxy started is whole
//! as long as nothing has been let go of since.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serin_signals::{
    Counts, LatencySketch, Measurement, Metric, MetricQuery, MetricsSource, Observation, Timestamp,
};

use crate::error::{Error, Result};

fn lock(m: &Mutex<Series>) -> MutexGuard<'_, Series> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[derive(Debug, Default, Clone)]
struct Bucket {
    requests: u64,
    errors: u64,
    latency: LatencySketch,
}

#[derive(Debug, Default)]
struct Series {
    /// (bucket index, bucket), oldest first.
    buckets: VecDeque<(u64, Bucket)>,
    total_requests: u64,
    total_errors: u64,
    connect_errors: u64,
    retries: u64,
    /// Requests chosen for mirroring to this backend whose body could not be teed.
    mirror_skipped: u64,
    /// Mirror copies to this backend dropped because it fell behind: the primary's body, or
    /// with as many copies outstanding as it may have.
    mirror_dropped: u64,
    /// Requests routed to this backend whose client went away before their answer began.
    client_closed: u64,
    latency_sum_ms: f64,
    latency: LatencySketch,
}

/// A counter family: name, type, help, and how to read it from a series.
type Family = (&'static str, &'static str, &'static str, fn(&Series) -> f64);

/// A request the instance answered, counted once its answer has ended: its body read in full,
/// broken off or paused past the response body timeout (an error, whatever its status), or
/// dropped unfinished (the client went away, which is no error of the instance). Counted then
/// and not at its head, so that the one bucket it is counted in is never changed after a
/// window has read it: windows and totals agree on every request, whenever its body fails.
#[derive(Debug)]
pub(crate) struct Answered {
    series: Arc<Mutex<Series>>,
    keep: u64,
    resolution_ms: u64,
    /// Its latency to the response head.
    latency_ms: f64,
    error: bool,
    /// Whether it is counted already: a request counts once.
    counted: bool,
}

impl Answered {
    /// Counts the request as an error, now: its body failed.
    pub(crate) fn fail(&mut self) {
        self.error = true;
        self.end();
    }

    /// Counts the request now, unless it is counted already.
    pub(crate) fn end(&mut self) {
        if std::mem::replace(&mut self.counted, true) {
            return;
        }
        let index = now().as_millis() / self.resolution_ms;
        add(&self.series, self.keep, index, self.latency_ms, self.error);
    }
}

impl Drop for Answered {
    fn drop(&mut self) {
        self.end();
    }
}

/// The wall-clock time the proxy's measurements are stamped with.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

/// Counts one answered request in `shared`, in bucket `index`, keeping the buckets of the last
/// `keep` resolutions up to the newest.
fn add(shared: &Mutex<Series>, keep: u64, index: u64, latency_ms: f64, error: bool) {
    let mut series = lock(shared);
    series.total_requests += 1;
    series.total_errors += u64::from(error);
    let latency_ms = if latency_ms.is_finite() {
        latency_ms.max(0.0)
    } else {
        0.0
    };
    series.latency_sum_ms += latency_ms;
    let _ = series.latency.add(latency_ms);
    // Buckets are let go of by their time, not their number: with sparse traffic a count of
    // buckets would reach back further than the retention.
    let newest = series.buckets.back().map_or(index, |(i, _)| index.max(*i));
    let first_kept = newest.saturating_add(1).saturating_sub(keep);
    while series.buckets.front().is_some_and(|(i, _)| *i < first_kept) {
        series.buckets.pop_front();
    }
    if index < first_kept {
        // Already past the retention: in the totals only.
        return;
    }
    let bucket = match series.buckets.iter_mut().rev().find(|(i, _)| *i == index) {
        Some((_, b)) => b,
        None => {
            // Requests finish out of order by a little; keep buckets sorted by index.
            let pos = series
                .buckets
                .iter()
                .rposition(|(i, _)| *i < index)
                .map_or(0, |p| p + 1);
            series.buckets.insert(pos, (index, Bucket::default()));
            match series.buckets.iter_mut().find(|(i, _)| *i == index) {
                Some((_, b)) => b,
                None => return,
            }
        }
    };
    bucket.requests += 1;
    bucket.errors += u64::from(error);
    let _ = bucket.latency.add(latency_ms);
}

#[derive(Debug)]
pub(crate) struct Store {
    resolution_ms: u64,
    /// The retention in buckets.
    keep: u64,
    /// The clock the proxy stamps its measurements with ([`now`]), read by queries to tell
    /// what retention has let go of since.
    clock: fn() -> Timestamp,
    /// When the store was made: a window reaching before it lost nothing to retention.
    created: Timestamp,
    /// One lock per backend, so the proxy's workers counting requests for different backends
    /// never wait for each other; the map itself is only written when a backend first appears.
    series: RwLock<BTreeMap<String, Arc<Mutex<Series>>>>,
}

impl Store {
    pub(crate) fn new(resolution: Duration, retention: Duration) -> Result<Self> {
        Self::with_clock(resolution, retention, now)
    }

    /// A store whose retention runs on `clock` rather than on the wall clock.
    fn with_clock(
        resolution: Duration,
        retention: Duration,
        clock: fn() -> Timestamp,
    ) -> Result<Self> {
        let resolution_ms = u64::try_from(resolution.as_millis()).unwrap_or(u64::MAX);
        if resolution_ms == 0 {
            return Err(Error::invalid(
                "proxyConfig.metricsResolution",
                format!("{resolution:?}"),
                "must be at least one millisecond",
            ));
        }
        let retention_ms = u64::try_from(retention.as_millis()).unwrap_or(u64::MAX);
        let keep = retention_ms / resolution_ms;
        if keep == 0 || keep > 1_000_000 {
            return Err(Error::invalid(
                "proxyConfig.metricsRetention",
                format!("{retention:?}"),
                "must hold between 1 and 1,000,000 buckets of metricsResolution",
            ));
        }
        Ok(Store {
            resolution_ms,
            keep,
            clock,
            created: clock(),
            series: RwLock::new(BTreeMap::new()),
        })
    }

    /// The series of `backend`, created on first use.
    fn series(&self, backend: &str) -> Arc<Mutex<Series>> {
        if let Some(s) = self
            .series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(backend)
        {
            return Arc::clone(s);
        }
        let mut all = self
            .series
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(all.entry(backend.to_owned()).or_default())
    }

    /// The series of `backend` if it has one.
    fn existing(&self, backend: &str) -> Option<Arc<Mutex<Series>>> {
        self.series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(backend)
            .map(Arc::clone)
    }

    /// Every backend's series, by name.
    fn all(&self) -> Vec<(String, Arc<Mutex<Series>>)> {
        self.series
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .map(|(k, v)| (k.clone(), Arc::clone(v)))
            .collect()
    }

    /// Counts one request, at `at`: answered by the proxy (a 502, a 504), or charged to an
    /// instance that failed it.
    pub(crate) fn record(&self, backend: &str, at: Timestamp, latency_ms: f64, error: bool) {
        let index = at.as_millis() / self.resolution_ms;
        add(&self.series(backend), self.keep, index, latency_ms, error);
    }

    /// A request an instance of `backend` answered (with a 5xx: `error`) after `latency_ms`,
    /// to be counted when its answer ends.
    pub(crate) fn answered(&self, backend: &str, latency_ms: f64, error: bool) -> Answered {
        Answered {
            series: self.series(backend),
            keep: self.keep,
            resolution_ms: self.resolution_ms,
            latency_ms,
            error,
            counted: false,
        }
    }

    /// Counts a connection failure to an instance of `backend` (retried or not).
    pub(crate) fn record_connect_error(&self, backend: &str) {
        lock(&self.series(backend)).connect_errors += 1;
    }

    /// Counts a request whose attempt on `backend` failed and that was sent again elsewhere.
    pub(crate) fn record_retry(&self, backend: &str) {
        lock(&self.series(backend)).retries += 1;
    }

    /// Counts a request chosen for mirroring to `mirror` that was not mirrored because of its
    /// body (over the limit, or of unknown length).
    pub(crate) fn record_mirror_skipped(&self, mirror: &str) {
        lock(&self.series(mirror)).mirror_skipped += 1;
    }

    /// Counts a mirror copy to `mirror` dropped because it fell behind: behind the primary's
    /// body, or with as many copies outstanding as it may have.
    pub(crate) fn record_mirror_dropped(&self, mirror: &str) {
        lock(&self.series(mirror)).mirror_dropped += 1;
    }

    /// Counts a request routed to `backend` whose client went away before its answer began
    /// (nginx's 499): in neither the backend's requests nor its errors.
    pub(crate) fn record_client_closed(&self, backend: &str) {
        lock(&self.series(backend)).client_closed += 1;
    }

    /// Requests routed to `backend` whose client went away before their answer, since start.
    pub(crate) fn client_closed(&self, backend: &str) -> u64 {
        self.existing(backend).map_or(0, |s| lock(&s).client_closed)
    }

    /// (skipped, dropped) mirror copies of `mirror` since start.
    pub(crate) fn mirror_counts(&self, mirror: &str) -> (u64, u64) {
        self.existing(mirror).map_or((0, 0), |s| {
            let s = lock(&s);
            (s.mirror_skipped, s.mirror_dropped)
        })
    }

    /// The buckets of `backend` that end inside the window, its end included: the end of a
    /// window read at its end (as a check's is) falls inside a bucket still filling, which is
    /// read whole by the next window instead, so touching windows read each bucket once.
    ///
    /// A window whose first bucket retention has let go of is refused with the start of what
    /// is still held: its sum would be partial. One that starts before the store was made is
    /// whole as long as nothing since then has been let go of.
    fn window_sum(
        &self,
        backend: &str,
        start: Timestamp,
        end: Timestamp,
    ) -> std::result::Result<Option<Bucket>, Timestamp> {
        let Some(shared) = self.existing(backend) else {
            return Ok(None);
        };
        let series = lock(&shared);
        // The buckets wholly inside the retention, as of now or of the newest bucket should
        // the clock have stepped back; `add` lets go of none of them.
        let now = (self.clock)().as_millis().div_ceil(self.resolution_ms);
        let newest = series
            .buckets
            .back()
            .map_or(0, |(i, _)| i.saturating_add(1));
        let first_kept = now.max(newest).saturating_sub(self.keep);
        let held_since = first_kept.saturating_mul(self.resolution_ms);
        if start.as_millis() / self.resolution_ms < first_kept
            && self.created.as_millis() < held_since
        {
            return Err(Timestamp::from_millis(held_since));
        }
        let mut sum = Bucket::default();
        for (index, b) in &series.buckets {
            let ends = index.saturating_add(1).saturating_mul(self.resolution_ms);
            if *index >= first_kept && ends > start.as_millis() && ends <= end.as_millis() {
                sum.requests += b.requests;
                sum.errors += b.errors;
                // A proxy's own counts never approach the sketch's limit; past it the sum would
                // stop growing rather than fail the window.
                let _ = sum.latency.merge(&b.latency);
            }
        }
        Ok((sum.requests > 0).then_some(sum))
    }

    pub(crate) fn prometheus(&self) -> String {
        let all = self.all();
        let guards: Vec<(String, MutexGuard<'_, Series>)> = all
            .iter()
            .map(|(name, s)| (label_value(name), lock(s)))
            .collect();
        let mut out = String::new();
        let families: [Family; 8] = [
            (
                "serin_proxy_requests_total",
                "counter",
                "Requests sent to this backend's instances (answered, failed or timed out) \
                 or answered 502 for it, per backend.",
                |s| s.total_requests as f64,
            ),
            (
                "serin_proxy_errors_total",
                "counter",
                "Requests answered 5xx, failed or timed out on an instance (even if replayed \
                 elsewhere), or not answered at all, per backend.",
                |s| s.total_errors as f64,
            ),
            (
                "serin_proxy_connect_errors_total",
                "counter",
                "Failed connections to an instance, per backend.",
                |s| s.connect_errors as f64,
            ),
            (
                "serin_proxy_retries_total",
                "counter",
                "Requests sent again to another instance after their attempt on this backend \
                 could not be sent or, for idempotent bodyless requests, failed or timed out.",
                |s| s.retries as f64,
            ),
            (
                "serin_proxy_mirror_skipped_total",
                "counter",
                "Requests chosen for mirroring but not mirrored because their body was over \
                 mirrorBodyLimit or of unknown length, per mirror backend.",
                |s| s.mirror_skipped as f64,
            ),
            (
                "serin_proxy_mirror_dropped_total",
                "counter",
                "Mirror copies dropped because the mirror fell behind: part-way, behind the \
                 request body, or before sending, with 128 copies already outstanding, per \
                 mirror backend.",
                |s| s.mirror_dropped as f64,
            ),
            (
                "serin_proxy_client_closed_total",
                "counter",
                "Requests whose client went away before their answer began (nginx's 499), per \
                 backend they were routed to; in neither requests nor errors.",
                |s| s.client_closed as f64,
            ),
            (
                "serin_proxy_request_duration_seconds_sum",
                "counter",
                "Total latency to response headers, per backend.",
                |s| s.latency_sum_ms / 1_000.0,
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (backend, s) in &guards {
                let _ = writeln!(out, "{name}{{backend=\"{backend}\"}} {}", value(s));
            }
        }
        let q = "serin_proxy_request_duration_seconds";
        let _ = writeln!(
            out,
            "# HELP {q} Latency to response headers since start, per backend.\n# TYPE {q} gauge"
        );
        for (backend, s) in &guards {
            for quantile in [0.5, 0.9, 0.99] {
                if let Some(v) = s.latency.quantile(quantile) {
                    let _ = writeln!(
                        out,
                        "{q}{{backend=\"{backend}\",quantile=\"{quantile}\"}} {}",
                        v / 1_000.0
                    );
                }
            }
        }
        out
    }
}

/// `value` as a label value of the Prometheus text format, which escapes a backslash, a double
/// quote and a line feed. Track names hold none of them today, but the exposition must stay
/// parseable whatever a backend is called: one stray quote would fail the whole scrape.
fn label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The proxy's own measurements as a [`MetricsSource`] named `local-proxy`: tracks are the
/// split's backend names; [`Metric::ErrorRate`] and [`Metric::Throughput`] answer counts,
/// [`Metric::Latency`] a sketch in milliseconds; a window with no request is
/// [`Measurement::NoData`]. A window starting before what retention still holds is refused
/// with [`serin_signals::Error::Unsupported`] naming it and the retention: its counts would be
/// partial. Other metrics are not measured by a proxy and are refused with
/// [`serin_signals::Error::Unsupported`]: the question is fine, this source cannot answer it.
///
/// Get one from [`ProxyRouter::metrics`](crate::ProxyRouter::metrics); clones share the data.
#[derive(Debug, Clone)]
pub struct ProxyMetrics {
    pub(crate) store: Arc<Store>,
}

impl ProxyMetrics {
    /// The bucket resolution: windows aligned to it are answered exactly, and others read the
    /// buckets that end inside them.
    pub fn resolution(&self) -> Duration {
        Duration::from_millis(self.store.resolution_ms)
    }

    /// Everything measured since start, in the Prometheus text exposition format (what the
    /// admin endpoint serves at `/metrics`), requests closed by their client included
    /// (`serin_proxy_client_closed_total`): a library user scraping this text sees all that
    /// the admin endpoint's scraper sees.
    pub fn prometheus_text(&self) -> String {
        self.store.prometheus()
    }

    /// Requests routed to `backend` whose client went away (closed its connection or reset its
    /// HTTP/2 stream) before their answer began, since start: nginx's 499. They are in neither
    /// the backend's requests nor its errors, as the instance did nothing wrong.
    pub fn client_closed(&self, backend: &str) -> u64 {
        self.store.client_closed(backend)
    }

    /// Requests chosen for mirroring to `mirror` that were not mirrored because their body was
    /// over [`ProxyConfig::mirror_body_limit`](crate::ProxyConfig::mirror_body_limit) or of
    /// unknown length (chunked), since start.
    pub fn mirror_skipped(&self, mirror: &str) -> u64 {
        self.store.mirror_counts(mirror).0
    }

    /// Mirror copies to `mirror` dropped because the mirror fell behind, since start (the
    /// request itself went on either way): part-way, because the mirror read its copy of the
    /// request body more slowly than the instance read the body, or before being sent, because
    /// the mirror already had 128 copies outstanding (sent and not yet answered and read) as
    /// one that answers slowly or not at all does. The bound keeps such a mirror from holding
    /// a connection, and a file descriptor, for every request.
    pub fn mirror_dropped(&self, mirror: &str) -> u64 {
        self.store.mirror_counts(mirror).1
    }
}

#[async_trait]
impl MetricsSource for ProxyMetrics {
    fn name(&self) -> &str {
        "local-proxy"
    }

    async fn query(&self, query: &MetricQuery) -> serin_signals::Result<Observation> {
        // A track built around its name check (`Named("stable")`) would otherwise read as a
        // backend that saw no request: no data, while the stable track serves errors.
        query.validate()?;
        let sum = || {
            self.store
                .window_sum(
                    query.track.as_str(),
                    query.window.start(),
                    query.window.end(),
                )
                .map_err(|held_since| serin_signals::Error::Unsupported {
                    source_name: self.name().to_owned(),
                    what: format!(
                        "window {} of track `{}`: it starts before {held_since}, the oldest \
                         time still held ({:?}: proxyConfig.metricsRetention in whole \
                         metricsResolution buckets), and a sum of what is left would be \
                         partial; ask a shorter window or raise metricsRetention",
                        query.window,
                        query.track,
                        Duration::from_millis(self.store.keep * self.store.resolution_ms),
                    ),
                })
        };
        let measurement = match &query.metric {
            Metric::ErrorRate | Metric::Throughput => match sum()? {
                Some(b) => Measurement::Counts(Counts::new(b.requests, b.errors)?),
                None => Measurement::NoData,
            },
            Metric::Latency => match sum()? {
                Some(b) => Measurement::Latency(b.latency),
                None => Measurement::NoData,
            },
            other => {
                return Err(serin_signals::Error::Unsupported {
                    source_name: self.name().to_owned(),
                    what: format!(
                        "metric `{other}` (a proxy measures only error_rate, throughput and \
                         latency; take {other} from a metrics store)"
                    ),
                });
            }
        };
        Ok(Observation::new(
            query.metric.clone(),
            query.track.clone(),
            query.window,
            measurement,
        ))
    }
}

#[cfg(test)]
mod tests {
    use serin_signals::{Track, Window};

    use super::*;

    fn at(ms: u64) -> Timestamp {
        Timestamp::from_millis(ms)
    }

    thread_local! {
        /// The time [`clock`] reads, in milliseconds: each test sets its own.
        static NOW: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    fn clock() -> Timestamp {
        at(NOW.get())
    }

    /// A store on the test's own clock, [`NOW`].
    fn test_store(resolution: Duration, retention: Duration) -> Result<Store> {
        Store::with_clock(resolution, retention, clock)
    }

    fn window(from: u64, to: u64) -> MetricQuery {
        MetricQuery::new(
            Metric::ErrorRate,
            Track::Canary,
            Window::new(at(from), at(to)).unwrap(),
        )
    }

    /// A request at 1 s and none after it: a minute later, with ten seconds of retention, its
    /// second is no longer answered, though no newer request has pushed its bucket out.
    #[tokio::test]
    async fn data_older_than_the_retention_is_not_answered_however_sparse_the_traffic() {
        NOW.set(1_000);
        let m = ProxyMetrics {
            store: Arc::new(test_store(Duration::from_secs(1), Duration::from_secs(10)).unwrap()),
        };
        m.store.record("canary", at(1_000), 5.0, true);
        let counts = m.query(&window(1_000, 2_000)).await.unwrap().measurement;
        assert!(matches!(counts, Measurement::Counts(_)), "{counts:?}");
        NOW.set(61_000);
        let err = m
            .query(&window(1_000, 2_000))
            .await
            .unwrap_err()
            .to_string();
        for part in [
            "local-proxy",
            "1970-01-01T00:00:01.000Z",
            "10s",
            "00:00:51.000Z",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
        assert!(
            m.query(&window(51_000, 61_000))
                .await
                .unwrap()
                .measurement
                .is_no_data()
        );
    }

    /// A window that starts before the retained span is refused rather than answered with
    /// the part of it that is left; one that starts before the proxy measured anything, within
    /// the retention of its start, is whole and answered.
    #[tokio::test]
    async fn a_window_reaching_before_the_retained_span_is_refused_not_summed_in_part() {
        NOW.set(100_000);
        let m = ProxyMetrics {
            store: Arc::new(test_store(Duration::from_secs(1), Duration::from_secs(10)).unwrap()),
        };
        let counts = |o: Observation| match o.measurement {
            Measurement::Counts(c) => c.requests(),
            other => panic!("{other:?}"),
        };
        for second in 100..105 {
            NOW.set(second * 1_000);
            m.store.record("canary", at(second * 1_000), 5.0, false);
        }
        NOW.set(105_000);
        assert_eq!(counts(m.query(&window(0, 105_000)).await.unwrap()), 5);
        for second in 105..130 {
            NOW.set(second * 1_000);
            m.store.record("canary", at(second * 1_000), 5.0, false);
        }
        NOW.set(130_000);
        assert_eq!(
            counts(m.query(&window(120_000, 130_000)).await.unwrap()),
            10
        );
        for from in [0, 100_000, 119_999] {
            let err = m.query(&window(from, 130_000)).await.unwrap_err();
            assert!(
                matches!(err, serin_signals::Error::Unsupported { .. }),
                "{from}: {err:?}"
            );
        }
        assert_eq!(
            m.store.existing("canary").map(|s| lock(&s).buckets.len()),
            Some(10)
        );
    }

    #[test]
    fn backend_names_are_escaped_as_label_values() {
        let store = test_store(Duration::from_secs(1), Duration::from_secs(10)).unwrap();
        store.record("a\"b\\c\nd", at(1_000), 5.0, false);
        let text = store.prometheus();
        assert!(
            text.contains("serin_proxy_requests_total{backend=\"a\\\"b\\\\c\\nd\"} 1\n"),
            "{text}"
        );
        // Every sample line is one line, its label value closed where it should be.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("serin_proxy_"), "{line}");
            assert_eq!(line.matches("backend=\"a\\\"b").count(), 1, "{line}");
        }
    }

    #[tokio::test]
    async fn windows_sum_the_buckets_that_end_inside_them() {
        let store =
            Arc::new(test_store(Duration::from_millis(100), Duration::from_secs(10)).unwrap());
        let m = ProxyMetrics {
            store: store.clone(),
        };
        store.record("canary", at(1_000), 5.0, false);
        store.record("canary", at(1_050), 7.0, true);
        store.record("canary", at(1_100), 9.0, false);
        store.record("stable", at(1_000), 1.0, false);
        let q = |from, to, metric| {
            MetricQuery::new(
                metric,
                Track::Canary,
                Window::new(at(from), at(to)).unwrap(),
            )
        };
        let counts = |o: Observation| match o.measurement {
            Measurement::Counts(c) => (c.requests(), c.errors()),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            counts(m.query(&q(1_000, 1_100, Metric::ErrorRate)).await.unwrap()),
            (2, 1)
        );
        assert_eq!(
            counts(m.query(&q(1_000, 1_200, Metric::Throughput)).await.unwrap()),
            (3, 1)
        );
        assert!(
            m.query(&q(0, 1_000, Metric::ErrorRate))
                .await
                .unwrap()
                .measurement
                .is_no_data()
        );
        let Measurement::Latency(s) = m
            .query(&q(1_000, 1_200, Metric::Latency))
            .await
            .unwrap()
            .measurement
        else {
            panic!("latency")
        };
        assert_eq!(s.count(), 3);
        let err = m.query(&q(1_000, 1_200, Metric::Cpu)).await.unwrap_err();
        assert!(
            matches!(err, serin_signals::Error::Unsupported { .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("local-proxy"), "{err}");
        let text = m.prometheus_text();
        assert!(
            text.contains("serin_proxy_requests_total{backend=\"canary\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("serin_proxy_errors_total{backend=\"canary\"} 1"),
            "{text}"
        );
    }

    /// The orchestrator's windows touch, and each ends at its check, inside a bucket: every
    /// bucket is read, whole, by the one window in which it ends, so across the windows every
    /// request is counted exactly once, however the checks fall within the second.
    #[tokio::test]
    async fn touching_windows_ending_inside_buckets_count_every_request_once() {
        let store = Arc::new(test_store(Duration::from_secs(1), Duration::from_secs(60)).unwrap());
        let m = ProxyMetrics {
            store: store.clone(),
        };
        let counts = |o: Observation| match o.measurement {
            Measurement::Counts(c) => (c.requests(), c.errors()),
            Measurement::NoData => (0, 0),
            other => panic!("{other:?}"),
        };
        let window = |from, to| {
            MetricQuery::new(
                Metric::ErrorRate,
                Track::Canary,
                Window::new(at(from), at(to)).unwrap(),
            )
        };
        // 100 requests a second from 10 s to 17 s, one in ten an error. Each window is read at
        // its end, when the requests before that moment, and no others, are counted.
        let mut sent = 10_000;
        let mut start = 10_000;
        let mut per_window = Vec::new();
        for end in [11_370, 12_370, 13_020, 14_990, 15_001, 17_500] {
            while sent < end.min(17_000) {
                store.record("canary", at(sent), 5.0, sent % 100 == 0);
                sent += 10;
            }
            per_window.push(counts(m.query(&window(start, end)).await.unwrap()));
            start = end;
        }
        assert_eq!(
            per_window,
            [
                (100, 10),
                (100, 10),
                (100, 10),
                (100, 10),
                (100, 10),
                (200, 20)
            ]
        );
        // Windows aligned to the resolution read exactly the requests inside them.
        for ((from, to), want) in [
            ((10_000, 17_000), (700, 70)),
            ((12_000, 14_000), (200, 20)),
            ((11_000, 11_500), (0, 0)),
        ] {
            assert_eq!(counts(m.query(&window(from, to)).await.unwrap()), want);
        }
    }

    #[test]
    fn requests_closed_by_their_client_are_in_the_text_and_in_no_other_count() {
        let store = Arc::new(test_store(Duration::from_secs(1), Duration::from_secs(10)).unwrap());
        let m = ProxyMetrics {
            store: store.clone(),
        };
        store.record_client_closed("stable");
        store.record_client_closed("stable");
        store.record("canary", at(1_000), 5.0, false);
        assert_eq!(
            (m.client_closed("stable"), m.client_closed("canary")),
            (2, 0)
        );
        assert_eq!(m.client_closed("unknown"), 0);
        let text = m.prometheus_text();
        let name = "serin_proxy_client_closed_total";
        assert_eq!(
            text.matches(&format!("# TYPE {name} counter")).count(),
            1,
            "{text}"
        );
        for line in [
            format!("{name}{{backend=\"stable\"}} 2"),
            format!("{name}{{backend=\"canary\"}} 0"),
            "serin_proxy_requests_total{backend=\"stable\"} 0".to_owned(),
            "serin_proxy_errors_total{backend=\"stable\"} 0".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line}: {text}");
        }
    }

    #[test]
    fn retention_is_bounded_and_config_is_checked() {
        let store = test_store(Duration::from_millis(10), Duration::from_millis(50)).unwrap();
        for i in 0..100 {
            store.record("stable", at(i * 10), 1.0, false);
        }
        assert_eq!(
            store.existing("stable").map(|s| lock(&s).buckets.len()),
            Some(5)
        );
        assert_eq!(
            store.window_sum("stable", at(0), at(900)).err(),
            Some(at(950))
        );
        assert_eq!(
            store
                .window_sum("stable", at(950), at(1_000))
                .map(|b| b.map(|b| b.requests)),
            Ok(Some(5))
        );
        let e = test_store(Duration::ZERO, Duration::from_secs(1)).unwrap_err();
        assert!(
            e.to_string().contains("proxyConfig.metricsResolution"),
            "{e}"
        );
        assert!(test_store(Duration::from_secs(1), Duration::from_millis(10)).is_err());
    }
}
