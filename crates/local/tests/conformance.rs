//! The traffic, signals and platform conformance suites against the embedded backend's real
//! parts: the proxy on loopback, its measurements, HTTP probes and real processes.

use crate::support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serin_local::{
    HttpHealth, HttpProbe, ProcessConfig, ProcessPlatform, ProxyConfig, ProxyRouter,
};
use serin_orchestrator::Platform;
use serin_signals::testkit::{self, HealthFixture, MetricsFixture};
use serin_signals::{Counts, HealthSignal, ProbeStatus, Timestamp, Track, Window, probe_key};
use serin_traffic::{MatchRoute, TrafficRouter, TrafficSplit, ValueMatch};
use support::{Demo, get, read_head, start_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_router_passes_the_traffic_suite() {
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    serin_traffic::testkit::check_all(&router).await;
    let shared: Arc<dyn TrafficRouter> = Arc::new(router.clone());
    serin_traffic::testkit::check_all(&shared).await;
    router.shutdown();
}

const RESOLUTION: Duration = Duration::from_millis(100);

/// The least latency tolerance the suite is held to.
const LATENCY_TOLERANCE: f64 = 0.5;

/// Arranges counts and latencies by sending real requests through the proxy to a demo service,
/// each arrangement inside its own whole buckets of the measurement resolution.
///
/// Latencies are arranged by asking the demo for exactly the delay wanted: its timer never
/// ends early, so the proxy cannot measure less. What it may measure more is bounded by what
/// the client saw: the proxy times each request between the client sending it and the client
/// reading the answer. So the tolerance the suite is held to is the client's own slack (or
/// [`LATENCY_TOLERANCE`] when that is less) rather than a guess at the machine's overhead: a
/// guess taken a moment before the load changes is what made this check fail on a busy machine.
/// The suite's bound is symmetric, so a slack that large leaves it little to say below the
/// delays; `proxy_latency_lies_between_the_delay_asked_and_the_client_round_trip` checks that
/// side exactly.
struct ProxyFixture {
    router: ProxyRouter,
    /// The client-side slack of the last latency arrangement (see [`slack`]).
    latency_slack: std::sync::Mutex<f64>,
    _demo: Demo,
}

fn wall_ms() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// The most, over every rank, by which the `k`-th shortest round trip exceeds the `k`-th
/// shortest delay asked for, relative to that delay. Each request's proxy latency lies between
/// its delay and its round trip, so the proxy's `k`-th shortest latency does too, at every `k`.
fn slack(delays_ms: &[u64], round_trips_ms: &[f64]) -> f64 {
    let mut delays = delays_ms.to_vec();
    let mut trips = round_trips_ms.to_vec();
    delays.sort_unstable();
    trips.sort_by(f64::total_cmp);
    delays
        .iter()
        .zip(&trips)
        .map(|(d, t)| (t - *d as f64) / (*d as f64).max(1.0))
        .fold(0.0, f64::max)
}

/// The `/delay/{ms}` paths asking the demo for each latency, rounded up (the timer is in whole
/// milliseconds), with the delays asked.
fn delay_requests(track: &Track, millis: &[f64]) -> (Vec<(Track, String)>, Vec<u64>) {
    let delays: Vec<u64> = millis.iter().map(|ms| ms.max(0.0).ceil() as u64).collect();
    let requests = delays
        .iter()
        .map(|d| (track.clone(), format!("/delay/{d}")))
        .collect();
    (requests, delays)
}

impl ProxyFixture {
    async fn new() -> Self {
        let demo = start_demo("1.0.0", &[]).await;
        let router = ProxyRouter::bind(
            ProxyConfig::default().with_metrics(RESOLUTION, Duration::from_secs(600)),
        )
        .await
        .unwrap();
        router.set_endpoints("stable", &[demo.addr]);
        router.set_endpoints("canary", &[demo.addr]);
        let split = TrafficSplit::from_percents([("stable", 50), ("canary", 50)])
            .unwrap()
            .with_route(
                MatchRoute::header("x-track", ValueMatch::Exact("stable".into()), "stable")
                    .unwrap(),
            )
            .unwrap()
            .with_route(
                MatchRoute::header("x-track", ValueMatch::Exact("canary".into()), "canary")
                    .unwrap(),
            )
            .unwrap();
        router.apply(&split).await.unwrap();
        ProxyFixture {
            router,
            latency_slack: std::sync::Mutex::new(0.0),
            _demo: demo,
        }
    }

    /// Sleeps to the next bucket boundary and returns it.
    async fn boundary() -> u64 {
        let res = u64::try_from(RESOLUTION.as_millis()).unwrap();
        let now = wall_ms();
        let next = (now / res + 1) * res;
        tokio::time::sleep(Duration::from_millis(next - now + 2)).await;
        next
    }

    /// Sends the `(track, path)` requests, 16 at a time, and returns the window holding them
    /// with each request's round trip as the client saw it (milliseconds, in no given order).
    async fn send(&self, requests: Vec<(Track, String)>) -> (Window, Vec<f64>) {
        let start = Self::boundary().await;
        let addr = self.router.local_addr();
        let queue = Arc::new(std::sync::Mutex::new(requests));
        let mut workers = Vec::new();
        for _ in 0..16 {
            let queue = queue.clone();
            workers.push(tokio::spawn(async move {
                let mut trips = Vec::new();
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((track, path)) = next else { break };
                    let sent = tokio::time::Instant::now();
                    let (status, _, _) = get(addr, &path, &[("x-track", track.as_str())]).await;
                    trips.push(sent.elapsed().as_secs_f64() * 1_000.0);
                    assert!(status.as_u16() == 200 || status.as_u16() == 500, "{status}");
                }
                trips
            }));
        }
        let mut trips = Vec::new();
        for w in workers {
            trips.extend(w.await.unwrap());
        }
        let end = Self::boundary().await;
        let window =
            Window::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).unwrap();
        (window, trips)
    }

    /// The latency sketch the proxy measured for `track` in `window`.
    async fn latency(&self, track: &Track, window: Window) -> serin_signals::LatencySketch {
        let q =
            serin_signals::MetricQuery::new(serin_signals::Metric::Latency, track.clone(), window);
        let o = serin_signals::MetricsSource::query(&self.router.metrics(), &q)
            .await
            .unwrap();
        match o.measurement {
            serin_signals::Measurement::Latency(sketch) => sketch,
            other => panic!("expected a latency sketch, got {other:?}"),
        }
    }
}

#[async_trait]
impl MetricsFixture for ProxyFixture {
    fn tracks(&self) -> (Track, Track) {
        (Track::Stable, Track::Canary)
    }

    fn quiet_window(&self) -> Window {
        Window::new(Timestamp::from_millis(0), Timestamp::from_millis(3_600_000)).unwrap()
    }

    async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> serin_signals::Result<Window> {
        let mut requests = Vec::new();
        for (track, c) in counts {
            for i in 0..c.requests() {
                let path = if i < c.errors() { "/status/500" } else { "/" };
                requests.push((track.clone(), path.to_owned()));
            }
        }
        Ok(self.send(requests).await.0)
    }

    /// Asks the demo for each delay, and keeps the client's slack for the tolerance.
    async fn arrange_latency(
        &self,
        track: &Track,
        millis: &[f64],
    ) -> serin_signals::Result<Option<Window>> {
        let (requests, delays) = delay_requests(track, millis);
        let (window, trips) = self.send(requests).await;
        *self.latency_slack.lock().unwrap() = slack(&delays, &trips);
        Ok(Some(window))
    }

    fn range_step(&self) -> Duration {
        RESOLUTION
    }

    /// The last latency arrangement's client-side slack, widened by the sketch's own accuracy
    /// (the bound applies to the sketch's answer), or [`LATENCY_TOLERANCE`] when that is more.
    fn latency_tolerance(&self) -> f64 {
        let slack = *self.latency_slack.lock().unwrap();
        (slack * (1.0 + 2.0 * serin_signals::LatencySketch::RELATIVE_ACCURACY))
            .max(LATENCY_TOLERANCE)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_metrics_pass_the_metrics_suite() {
    let fixture = ProxyFixture::new().await;
    let metrics = fixture.router.metrics();
    testkit::check_metrics_source_all(&metrics, &fixture).await;
    let text = metrics.prometheus_text();
    assert!(
        text.contains("serin_proxy_requests_total{backend=\"stable\"}"),
        "{text}"
    );
    fixture.router.shutdown();
}

/// Whatever the machine's load, the latency the proxy measured lies, at every quantile, between
/// the delay the instance was asked for (its timer never ends early, and it starts after the
/// proxy's clock) and the round trip the client saw (which holds the proxy's whole measure),
/// and every request is measured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_latency_lies_between_the_delay_asked_and_the_client_round_trip() {
    let fixture = ProxyFixture::new().await;
    let mut millis = Vec::new();
    for (ms, n) in [(5.0, 40), (20.0, 40), (80.0, 20)] {
        millis.extend(std::iter::repeat_n(ms, n));
    }
    let (requests, mut delays) = delay_requests(&Track::Stable, &millis);
    let (window, mut trips) = fixture.send(requests).await;
    let sketch = fixture.latency(&Track::Stable, window).await;
    assert_eq!(sketch.count(), 100, "every request is measured once");
    delays.sort_unstable();
    trips.sort_by(f64::total_cmp);
    let accuracy = serin_signals::LatencySketch::RELATIVE_ACCURACY;
    // Quantiles well inside a block of equal delays, so the delay at the quantile is the
    // block's whatever rank the sketch takes; the round trip is taken two ranks above it.
    for q in [0.1, 0.3, 0.5, 0.7, 0.9] {
        let rank = (q * 99.0_f64).floor() as usize;
        let floor = delays[rank] as f64 * (1.0 - accuracy);
        let ceiling = trips[(rank + 2).min(99)] * (1.0 + accuracy);
        let got = sketch.quantile(q).unwrap();
        assert!(
            (floor..=ceiling).contains(&got),
            "q{q}: the proxy measured {got:.2} ms, outside [{floor:.2}, {ceiling:.2}] ms \
             (the delay asked, the client's round trip)"
        );
    }
    fixture.router.shutdown();
}

/// Arranges probe results by setting the status a small server answers on each probe's own
/// path. A probe keeps its address and path from one result to the next, as a probe of one
/// instance does: moved elsewhere, it would start over with no result, and an older result
/// arranged late would meet nothing newer to lose to.
struct HealthFix {
    health: Arc<HttpHealth>,
    addr: SocketAddr,
    answers: Arc<Mutex<BTreeMap<String, u16>>>,
}

impl HealthFix {
    async fn new() -> Self {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let answers: Arc<Mutex<BTreeMap<String, u16>>> = Arc::default();
        let served = Arc::clone(&answers);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let served = Arc::clone(&served);
                tokio::spawn(async move {
                    let head = read_head(&mut stream).await;
                    let path = head.split_whitespace().nth(1).unwrap_or_default();
                    let code = served.lock().unwrap().get(path).copied().unwrap_or(404);
                    let answer = format!("HTTP/1.1 {code} Set\r\ncontent-length: 0\r\n\r\n");
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        HealthFix {
            health: Arc::new(HttpHealth::new(Duration::from_secs(2)).expect("timeout")),
            addr,
            answers,
        }
    }

    /// Has `path` answer `code` from now on.
    fn answering(&self, path: String, code: u16) -> String {
        self.answers.lock().unwrap().insert(path.clone(), code);
        path
    }
}

#[async_trait]
impl HealthFixture for HealthFix {
    async fn arrange(&self, signal: HealthSignal) -> serin_signals::Result<()> {
        let (kind, name) = probe_key(&signal.probe);
        let instance = signal.instance.as_deref().unwrap_or("all");
        let path = format!("/{}/{kind}{name}/{instance}", signal.track);
        let path = match signal.status {
            ProbeStatus::Pass => self.answering(path, 200),
            // A client error fails the probe, as the kubelet counts it.
            ProbeStatus::Fail => self.answering(path, 404),
            // A path no request can carry: the probe cannot be sent, which says nothing about
            // the instance (any status it answers is a pass or a failure, as for the kubelet).
            ProbeStatus::Unknown => path.trim_start_matches('/').to_owned(),
        };
        self.health
            .watch(HttpProbe {
                track: signal.track,
                probe: signal.probe,
                instance: signal.instance,
                addr: self.addr,
                path,
            })
            .map_err(|e| serin_signals::Error::invalid("signal", &e, "cannot be watched"))?;
        self.health.check(signal.at).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_passes_the_health_suite() {
    let fixture = HealthFix::new().await;
    testkit::check_health_source_all(fixture.health.as_ref(), &fixture).await;
}

/// The platform suite's fixture for processes: a demo instance is killed by asking it to crash
/// (it exits with status 3), which the platform learns only by looking.
struct Crashing<'a> {
    platform: &'a ProcessPlatform,
    template: serin_orchestrator::TrackSpec,
}

#[async_trait]
impl serin_orchestrator::testkit::PlatformFixture for Crashing<'_> {
    fn template(&self) -> serin_orchestrator::TrackSpec {
        self.template.clone()
    }
    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(10)
    }
    async fn kill(
        &self,
        service: &str,
        track: &Track,
        instance: &str,
    ) -> serin_orchestrator::Result<bool> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let status = self.platform.status(service, track).await?;
        let Some(addr) = status
            .instances
            .iter()
            .find(|i| i.id == instance)
            .and_then(|i| i.address)
        else {
            let why = format!("{instance} has no address in {status:?}");
            return Err(serin_orchestrator::Error::platform("test", why));
        };
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| serin_orchestrator::Error::platform("test", e.to_string()))?;
        let request = format!("GET /crash HTTP/1.1\r\nhost: {addr}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| serin_orchestrator::Error::platform("test", e.to_string()))?;
        // The process exits without answering: the connection closes.
        let _ = stream.read_to_end(&mut Vec::new()).await;
        Ok(true)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_platform_passes_the_platform_suite() {
    let dir = support::scratch("conformance");
    let config = ProcessConfig::new(dir.path())
        .with_grace(Duration::from_secs(2))
        .with_lock_dir(dir.path().join("locks"));
    let platform = ProcessPlatform::new(config.clone()).unwrap();
    let template = support::demo_spec("web", "1.0.0", Track::Stable, 1);
    serin_orchestrator::testkit::check_all(&platform, &template, Duration::from_secs(10)).await;
    // Again with instances made to crash: each one dead is reported dead and stays so.
    let crashing = Crashing {
        platform: &platform,
        template,
    };
    serin_orchestrator::testkit::check_all_with(&platform, &crashing).await;
    // A retired instance's log holds its output to the end: the demo service's last words.
    let log = std::fs::read_to_string(platform.log_path("web", "tk-up-0")).unwrap();
    assert!(log.trim_end().ends_with("drained; exiting"), "{log}");
    // The lock is in files: a second platform (another process, say) on the same directory
    // sees it, and it outlives the platform that took it.
    platform.lock("web", "deploy-1").await.unwrap();
    drop(platform);
    let other = ProcessPlatform::new(config).unwrap();
    let err = other.lock("web", "deploy-2").await.unwrap_err().to_string();
    assert!(err.contains("deploy-1"), "{err}");
    other.lock("web", "deploy-1").await.unwrap();
    other.unlock("web", "deploy-1").await.unwrap();
    other.lock("web", "deploy-2").await.unwrap();
    other.unlock("web", "deploy-2").await.unwrap();
}
