//! The traffic, signals and platform conformance suites against the embedded backend's real
//! parts: the proxy on loopback, its measurements, HTTP probes and real processes.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serin_local::{
    HttpHealth, HttpProbe, ProcessConfig, ProcessPlatform, ProxyConfig, ProxyRouter,
};
use serin_orchestrator::Platform;
use serin_signals::testkit::{self, HealthFixture, MetricsFixture};
use serin_signals::{Counts, HealthSignal, ProbeStatus, Timestamp, Track, Window};
use serin_traffic::{MatchRoute, TrafficRouter, TrafficSplit, ValueMatch};
use support::{Demo, get, start_demo};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_router_passes_the_traffic_suite() {
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    serin_traffic::testkit::check_all(&router).await;
    let shared: Arc<dyn TrafficRouter> = Arc::new(router.clone());
    serin_traffic::testkit::check_all(&shared).await;
    router.shutdown();
}

const RESOLUTION: Duration = Duration::from_millis(100);

/// Arranges counts and latencies by sending real requests through the proxy to a demo service,
/// each arrangement inside its own whole buckets of the measurement resolution.
struct ProxyFixture {
    router: ProxyRouter,
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
        router.set_endpoints("calibration", &[demo.addr]);
        let split =
            TrafficSplit::from_percents([("stable", 50), ("canary", 50), ("calibration", 0)])
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
                .unwrap()
                .with_route(
                    MatchRoute::header(
                        "x-track",
                        ValueMatch::Exact("calibration".into()),
                        "calibration",
                    )
                    .unwrap(),
                )
                .unwrap();
        router.apply(&split).await.unwrap();
        ProxyFixture {
            router,
            _demo: demo,
        }
    }

    /// What the demo's timer and the proxy add to a requested delay right now: the median
    /// latency the proxy measures for 10 ms delays, less 10 ms.
    async fn overhead_ms(&self) -> f64 {
        let calibration = Track::named("calibration").unwrap();
        let window = self
            .send(
                (0..32)
                    .map(|_| (calibration.clone(), "/delay/10".to_owned()))
                    .collect(),
            )
            .await;
        let q =
            serin_signals::MetricQuery::new(serin_signals::Metric::Latency, calibration, window);
        let o = serin_signals::MetricsSource::query(&self.router.metrics(), &q)
            .await
            .unwrap();
        match o.measurement {
            serin_signals::Measurement::Latency(sketch) => {
                (sketch.quantile(0.5).unwrap_or(10.0) - 10.0).clamp(0.0, 8.0)
            }
            _ => 0.0,
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

    /// Sends the `(track, path)` requests, 16 at a time, and returns the window holding them.
    async fn send(&self, requests: Vec<(Track, String)>) -> Window {
        let start = Self::boundary().await;
        let addr = self.router.local_addr();
        let queue = Arc::new(std::sync::Mutex::new(requests));
        let mut workers = Vec::new();
        for _ in 0..16 {
            let queue = queue.clone();
            workers.push(tokio::spawn(async move {
                loop {
                    let next = queue.lock().unwrap().pop();
                    let Some((track, path)) = next else { break };
                    let (status, _, _) = get(addr, &path, &[("x-track", track.as_str())]).await;
                    assert!(status.as_u16() == 200 || status.as_u16() == 500, "{status}");
                }
            }));
        }
        for w in workers {
            w.await.unwrap();
        }
        let end = Self::boundary().await;
        Window::new(Timestamp::from_millis(start), Timestamp::from_millis(end)).unwrap()
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
        Ok(self.send(requests).await)
    }

    async fn arrange_latency(
        &self,
        track: &Track,
        millis: &[f64],
    ) -> serin_signals::Result<Option<Window>> {
        let overhead = self.overhead_ms().await;
        let requests = millis
            .iter()
            .map(|ms| {
                let delay = (ms - overhead).max(0.0).round() as u64;
                (track.clone(), format!("/delay/{delay}"))
            })
            .collect();
        Ok(Some(self.send(requests).await))
    }

    fn range_step(&self) -> Duration {
        RESOLUTION
    }

    /// Real timers on a shared machine: the overhead is calibrated away, but it varies from
    /// request to request by a few milliseconds, which is a lot next to 10 ms.
    fn latency_tolerance(&self) -> f64 {
        0.5
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

/// Arranges probe results by pointing an HTTP probe at a demo path answering the wanted status.
struct HealthFix {
    health: Arc<HttpHealth>,
    addr: SocketAddr,
}

#[async_trait]
impl HealthFixture for HealthFix {
    async fn arrange(&self, signal: HealthSignal) -> serin_signals::Result<()> {
        let path = match signal.status {
            ProbeStatus::Pass => "/status/200",
            ProbeStatus::Fail => "/status/503",
            ProbeStatus::Unknown => "/status/404",
        };
        self.health
            .watch(HttpProbe {
                track: signal.track,
                probe: signal.probe,
                instance: signal.instance,
                addr: self.addr,
                path: path.into(),
            })
            .map_err(|e| serin_signals::Error::invalid("signal", &e, "cannot be watched"))?;
        self.health.check(signal.at).await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_health_passes_the_health_suite() {
    let demo = start_demo("1.0.0", &[]).await;
    let fixture = HealthFix {
        health: Arc::new(HttpHealth::new(Duration::from_secs(2)).expect("timeout")),
        addr: demo.addr,
    };
    testkit::check_health_source_all(fixture.health.as_ref(), &fixture).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_platform_passes_the_platform_suite() {
    let dir = std::env::temp_dir().join(format!("serin-local-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(dir.join("locks"));
    let config = ProcessConfig::new(&dir)
        .with_grace(Duration::from_secs(2))
        .with_lock_dir(dir.join("locks"));
    let platform = ProcessPlatform::new(config.clone()).unwrap();
    let template = support::demo_spec("web", "1.0.0", Track::Stable, 1);
    serin_orchestrator::testkit::check_all(&platform, &template, Duration::from_secs(10)).await;
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
