//! `PrometheusSource` against a real Prometheus (feature `prometheus`).
//!
//! Set `SERIN_TEST_PROMETHEUS` to Prometheus' base URL (`eval "$(scripts/services/prometheus.sh)"`
//! starts one). That Prometheus must scrape `127.0.0.1:19464` every second: this test serves a
//! small exporter there whose counters it controls, so it knows the true values, and runs the
//! conformance suite against the source. Without the variable the test says so and returns.
//!
//! Real time is unavoidable here: every wait polls Prometheus with a bounded timeout.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use serin_signals::prometheus::PrometheusSource;
use serin_signals::testkit::{self, MetricsFixture};
use serin_signals::{
    Counts, Error, Measurement, Metric, MetricQuery, MetricsSource, Result, Timestamp, Track,
    Window,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const EXPORTER: &str = "127.0.0.1:19464";
/// Histogram bounds in seconds; the suite's latencies (10, 50, 250, 1000 ms) sit on them.
const BOUNDS: [f64; 4] = [0.01, 0.05, 0.25, 1.0];
/// The longest any wait for Prometheus may take.
const PATIENCE: Duration = Duration::from_secs(60);

/// What the exporter serves: per track, successful and failed requests and latency buckets.
#[derive(Debug, Default, Clone)]
struct Truth {
    ok: BTreeMap<String, u64>,
    failed: BTreeMap<String, u64>,
    /// Per track, non-cumulative counts per bound of [`BOUNDS`] (and one for `+Inf`).
    buckets: BTreeMap<String, [u64; 5]>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The exposition of `truth` in Prometheus' text format, every series labelled with `run`.
fn exposition(run: &str, tracks: &[&str], truth: &Truth) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# TYPE serin_test_up gauge");
    let _ = writeln!(out, "serin_test_up{{run=\"{run}\"}} 1");
    let _ = writeln!(out, "# TYPE serin_test_requests_total counter");
    for t in tracks {
        let ok = truth.ok.get(*t).copied().unwrap_or(0);
        let failed = truth.failed.get(*t).copied().unwrap_or(0);
        let _ = writeln!(
            out,
            "serin_test_requests_total{{run=\"{run}\",track=\"{t}\",code=\"200\"}} {ok}"
        );
        let _ = writeln!(
            out,
            "serin_test_requests_total{{run=\"{run}\",track=\"{t}\",code=\"500\"}} {failed}"
        );
    }
    let _ = writeln!(out, "# TYPE serin_test_latency_seconds histogram");
    for t in tracks {
        let counts = truth.buckets.get(*t).copied().unwrap_or_default();
        let mut cumulative = 0;
        for (i, n) in counts.iter().enumerate() {
            cumulative += n;
            let le = BOUNDS
                .get(i)
                .map_or_else(|| "+Inf".to_owned(), |b| b.to_string());
            let _ = writeln!(
                out,
                "serin_test_latency_seconds_bucket{{run=\"{run}\",track=\"{t}\",le=\"{le}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "serin_test_latency_seconds_count{{run=\"{run}\",track=\"{t}\"}} {cumulative}"
        );
    }
    let _ = writeln!(out, "# TYPE serin_test_nan gauge");
    let _ = writeln!(out, "serin_test_nan{{run=\"{run}\",track=\"canary\"}} NaN");
    out
}

/// Serves `/metrics` (any path, in fact) on `listener` from `truth`, one request per connection.
async fn serve(listener: TcpListener, run: String, truth: Arc<Mutex<Truth>>) {
    let tracks = ["stable", "canary"];
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let body = exposition(&run, &tracks, &locked(&truth));
        tokio::spawn(async move {
            let mut request = Vec::new();
            let mut buf = [0u8; 1024];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16_384 {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => request.extend_from_slice(buf.get(..n).unwrap_or_default()),
                }
            }
            let response = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
            let _ = stream.shutdown().await;
        });
    }
}

fn now_millis() -> u64 {
    Timestamp::from_system_time(SystemTime::now()).as_millis()
}

/// Arranges counts and latencies by changing the exporter's counters, and picks windows whose
/// edges sit on scrape timestamps, so `increase()` has (almost) nothing to extrapolate.
struct PromFixture {
    base: String,
    run: String,
    http: reqwest::Client,
    truth: Arc<Mutex<Truth>>,
    /// The end of the last window handed out; the next one starts after it.
    last_end: tokio::sync::Mutex<u64>,
    started: u64,
}

impl PromFixture {
    /// Scrape timestamps (ms) of this run's exporter seen by Prometheus in the last minute.
    async fn scrapes(&self) -> Vec<u64> {
        let query = format!("serin_test_up{{run=\"{}\"}}[1m]", self.run);
        let url = format!("{}/api/v1/query", self.base.trim_end_matches('/'));
        let Ok(resp) = self.http.get(&url).query(&[("query", query)]).send().await else {
            return Vec::new();
        };
        let Ok(json) = resp.json::<serde_json::Value>().await else {
            return Vec::new();
        };
        let mut times: Vec<u64> = json["data"]["result"][0]["values"]
            .as_array()
            .map(|values| {
                values
                    .iter()
                    .filter_map(|v| v[0].as_f64())
                    .map(|t| (t * 1_000.0).round() as u64)
                    .collect()
            })
            .unwrap_or_default();
        times.sort_unstable();
        times
    }

    /// Waits until `ready(scrapes)` gives a value, polling every 200 ms, for at most
    /// [`PATIENCE`].
    async fn wait_for<T>(&self, what: &str, ready: impl Fn(&[u64]) -> Option<T>) -> T {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(v) = ready(&self.scrapes().await) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus at {} did not {what} within {PATIENCE:?}; does it scrape {EXPORTER} every second?",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Runs `change` on the exporter's truth between two scrapes, and returns the window from just
    /// before a scrape that saw the old values to a scrape at least four seconds later that saw
    /// the new ones.
    async fn arrange(&self, change: impl FnOnce(&mut Truth)) -> Window {
        let mut last_end = self.last_end.lock().await;
        let after = *last_end;
        let before = self
            .wait_for("scrape the exporter twice", |s| {
                let fresh: Vec<&u64> = s.iter().filter(|t| **t > after).collect();
                (fresh.len() >= 2)
                    .then(|| fresh.last().map(|t| **t))
                    .flatten()
            })
            .await;
        let changed_at = now_millis();
        change(&mut locked(&self.truth));
        let end = self
            .wait_for("scrape the new values", |s| {
                let newer = s.iter().filter(|t| **t > changed_at + 500).count();
                s.last()
                    .copied()
                    .filter(|last| newer >= 2 && *last >= before + 4_000)
            })
            .await;
        *last_end = end;
        // One millisecond before the first scrape, so that scrape lies inside the range whether
        // Prometheus treats the range's start as open or closed.
        Window::new(
            Timestamp::from_millis(before - 1),
            Timestamp::from_millis(end),
        )
        .unwrap_or_else(|e| panic!("fixture window: {e}"))
    }
}

#[async_trait]
impl MetricsFixture for PromFixture {
    fn tracks(&self) -> (Track, Track) {
        (Track::Stable, Track::Canary)
    }

    fn quiet_window(&self) -> Window {
        // This run's series did not exist before the test started.
        Window::ending_at(
            Timestamp::from_millis(self.started).saturating_sub(Duration::from_secs(300)),
            Duration::from_secs(300),
        )
    }

    async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> Result<Window> {
        Ok(self
            .arrange(|truth| {
                for (track, c) in counts {
                    let name = track.as_str().to_owned();
                    *truth.ok.entry(name.clone()).or_default() += c.successes();
                    *truth.failed.entry(name).or_default() += c.errors();
                }
            })
            .await)
    }

    async fn arrange_latency(&self, track: &Track, millis: &[f64]) -> Result<Option<Window>> {
        Ok(Some(
            self.arrange(|truth| {
                let buckets = truth.buckets.entry(track.as_str().to_owned()).or_default();
                for v in millis {
                    let i = BOUNDS
                        .iter()
                        .position(|b| *v <= b * 1_000.0)
                        .unwrap_or(BOUNDS.len());
                    if let Some(slot) = buckets.get_mut(i) {
                        *slot += 1;
                    }
                }
            })
            .await,
        ))
    }

    fn range_step(&self) -> Duration {
        Duration::from_secs(5)
    }

    fn count_tolerance(&self) -> f64 {
        // Windows start one millisecond before a scrape, so increase() extrapolates by about
        // 1 ms in 4 s; rounding absorbs that, and this allows for a slow scrape.
        0.01
    }

    fn range_total_tolerance(&self) -> Option<f64> {
        // Each step's increase() extrapolates on its own; see the trait's docs.
        None
    }
}

fn source_for(base: &str, run: &str) -> PrometheusSource {
    let sel = |extra: &str| format!("run=\"{run}\",track=\"{{{{track}}}}\"{extra}");
    PrometheusSource::builder(base)
        .with_counts_queries(
            Metric::ErrorRate,
            format!(
                "sum(increase(serin_test_requests_total{{{}}}[{{{{window}}}}]))",
                sel("")
            ),
            format!(
                "sum(increase(serin_test_requests_total{{{}}}[{{{{window}}}}]))",
                sel(",code=~\"5..\"")
            ),
        )
        .with_latency_query(format!(
            "sum by (le) (increase(serin_test_latency_seconds_bucket{{{}}}[{{{{window}}}}]))",
            sel("")
        ))
        .with_gauge_query(
            Metric::named("nan_gauge").unwrap_or(Metric::Cpu),
            format!("max(serin_test_nan{{{}}})", sel("")),
        )
        .with_timeout(Duration::from_secs(5))
        .with_retries(2)
        .with_backoff(Duration::from_millis(50), Duration::from_millis(200))
        .build()
        .unwrap_or_else(|e| panic!("building the source: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_source_against_a_real_prometheus() {
    let Ok(base) = std::env::var("SERIN_TEST_PROMETHEUS") else {
        // Written to the process's stderr, past the test harness's capture, so that a plain
        // `cargo test` says what it skipped.
        let _ = writeln!(
            std::io::stderr(),
            "skipped: prometheus_source_against_a_real_prometheus (SERIN_TEST_PROMETHEUS not set; scripts/test.sh sets it)"
        );
        return;
    };
    let started = now_millis();
    let run = format!("r{}x{started}", std::process::id());
    let listener = TcpListener::bind(EXPORTER)
        .await
        .unwrap_or_else(|e| panic!("binding the test exporter at {EXPORTER}: {e}"));
    let truth = Arc::new(Mutex::new(Truth::default()));
    let server = tokio::spawn(serve(listener, run.clone(), Arc::clone(&truth)));

    let fixture = PromFixture {
        base: base.clone(),
        run: run.clone(),
        http: reqwest::Client::new(),
        truth,
        last_end: tokio::sync::Mutex::new(0),
        started,
    };
    let source = source_for(&base, &run);

    testkit::check_metrics_source_all(&source, &fixture).await;

    // A restarted instance starts its counters again from zero: increase() counts across the
    // reset instead of reporting a negative or huge value.
    let restart = fixture
        .arrange(|truth| {
            truth.ok.insert("stable".into(), 30);
            truth.failed.insert("stable".into(), 3);
        })
        .await;
    let o = source
        .query(&MetricQuery::new(Metric::ErrorRate, Track::Stable, restart))
        .await
        .unwrap_or_else(|e| panic!("query across a counter reset: {e}"));
    assert_eq!(
        o.measurement,
        Measurement::Counts(Counts::new(33, 3).unwrap_or_default()),
        "counts across a counter reset"
    );

    // NaN is no data, never zero.
    let window = Window::ending_at(
        Timestamp::from_millis(now_millis()),
        Duration::from_secs(30),
    );
    let nan = MetricQuery::new(
        Metric::named("nan_gauge").unwrap_or(Metric::Cpu),
        Track::Canary,
        window,
    );
    let o = source
        .query(&nan)
        .await
        .unwrap_or_else(|e| panic!("NaN gauge query: {e}"));
    assert_eq!(o.measurement, Measurement::NoData, "NaN must be no data");

    // A query Prometheus rejects is a BadQuery naming the query.
    let bad = PrometheusSource::builder(&base)
        .with_gauge_query(
            Metric::Cpu,
            r#"nosuchfunction(serin_test_up{track="{{track}}"})"#,
        )
        .build()
        .unwrap_or_else(|e| panic!("building: {e}"));
    let err = bad
        .query(&MetricQuery::new(Metric::Cpu, Track::Canary, window))
        .await
        .expect_err("an unknown function must be rejected");
    match &err {
        Error::BadQuery { query, reason } => {
            assert!(query.contains("nosuchfunction"), "{err}");
            assert!(reason.contains("bad_data"), "{err}");
        }
        other => panic!("expected BadQuery, got {other:?}"),
    }

    // A Prometheus that is down is Unavailable after the retries.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a probe port");
        l.local_addr().expect("probe port address").port()
    };
    let down = PrometheusSource::builder(format!("http://127.0.0.1:{closed}"))
        .with_retries(2)
        .with_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .build()
        .unwrap_or_else(|e| panic!("building: {e}"));
    let err = down
        .query(&MetricQuery::new(Metric::ErrorRate, Track::Canary, window))
        .await
        .expect_err("nothing listens there");
    assert!(
        matches!(err, Error::Unavailable { .. }) && err.to_string().contains("3 attempts"),
        "{err}"
    );

    server.abort();
}
