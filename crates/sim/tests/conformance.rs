//! Every conformance suite of the traits the simulated world implements, run against its views:
//! the router suite, the platform suite, and the metrics and health suites with fixtures that
//! arrange known data while simulated traffic flows on other tracks of the same world.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{Platform, TrackSpec, wait_ready};
use serin_signals::testkit::{self, HealthFixture, MetricsFixture};
use serin_signals::{
    Counts, HealthSignal, HealthSource, Measurement, Metric, MetricQuery, MetricsSource,
    Observation, Timestamp, Track, Window,
};
use serin_sim::{Fault, SimConfig, SimWorld, VersionProfile};
use serin_traffic::{Capabilities, TrafficRouter, TrafficSplit, Weight};

#[tokio::test(start_paused = true)]
async fn router_passes_the_traffic_suite_with_every_capability_set() {
    let whole_percent = Capabilities::weights_only()
        .with_weight_granularity(Weight::from_percent(1).unwrap())
        .unwrap();
    for caps in [
        Capabilities::full(),
        Capabilities::weights_only(),
        Capabilities::switch_only(),
        whole_percent,
        whole_percent.with_header_routing(true),
        Capabilities::full().with_mirroring(false),
    ] {
        let world = SimWorld::new(SimConfig::new(1).with_capabilities(caps)).unwrap();
        serin_traffic::testkit::check_all(&world.router()).await;
        let shared: Arc<dyn TrafficRouter> = Arc::new(world.router());
        serin_traffic::testkit::check_all(&shared).await;
        assert!(!world.applied_splits().is_empty());
    }
}

/// The platform suite's fixture for a world: a template, and a kill that scripts a crash of
/// the instance now. The simulated platform keeps a deployment lock of its own, which the
/// suite checks.
struct Crashing {
    world: SimWorld,
    template: TrackSpec,
}

#[async_trait]
impl serin_orchestrator::testkit::PlatformFixture for Crashing {
    fn template(&self) -> TrackSpec {
        self.template.clone()
    }
    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    async fn kill(
        &self,
        service: &str,
        track: &Track,
        instance: &str,
    ) -> serin_orchestrator::Result<bool> {
        let at = self
            .world
            .now()
            .saturating_duration_since(self.world.config().start());
        self.world
            .inject(Fault::Crash {
                service: Some(service.to_owned()),
                track: track.clone(),
                instance: Some(instance.to_owned()),
                at,
            })
            .map_err(|e| serin_orchestrator::Error::platform("sim", e.to_string()))?;
        Ok(true)
    }
}

#[tokio::test(start_paused = true)]
async fn platform_passes_the_platform_suite() {
    let slow = VersionProfile::default().with_startup(Duration::from_secs(20));
    let world =
        SimWorld::new(SimConfig::new(2).with_profile(semver::Version::new(3, 1, 4), slow)).unwrap();
    for (service, version) in [("web", "1.0.0"), ("web", "3.1.4"), ("shop", "3.1.4")] {
        let fixture = Crashing {
            world: world.clone(),
            template: TrackSpec::new(service, version, Track::Stable, 1).unwrap(),
        };
        serin_orchestrator::testkit::check_all_with(&world.platform(), &fixture).await;
    }
    let boxed: Box<dyn Platform> = Box::new(world.platform());
    let fixture = Crashing {
        world: world.clone(),
        template: TrackSpec::new("web", "1.0.0", Track::Stable, 1).unwrap(),
    };
    serin_orchestrator::testkit::check_all_with(&boxed, &fixture).await;
    assert!(world.platform().list().await.unwrap().is_empty());
}

/// A world serving live traffic on `stable`, in which the fixture arranges known data on two
/// other tracks, one ten-second slot after another.
struct SimFixture {
    world: SimWorld,
    next: Mutex<Timestamp>,
}

const SLOT: Duration = Duration::from_secs(10);

impl SimFixture {
    async fn new() -> Self {
        let world = SimWorld::new(SimConfig::new(3)).unwrap();
        let platform = world.platform();
        platform
            .bring_up(&TrackSpec::new("web", "1.0.0", Track::Stable, 2).unwrap())
            .await
            .unwrap();
        wait_ready(
            &platform,
            "web",
            &Track::Stable,
            Duration::from_secs(1),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
        world
            .router()
            .apply(&TrafficSplit::from_percents([("stable", 100)]).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_secs(120)).await;
        let next = world.now();
        SimFixture {
            world,
            next: Mutex::new(Timestamp::from_millis(next.as_millis() / 1_000 * 1_000)),
        }
    }

    fn next_window(&self) -> Window {
        let mut next = self.next.lock().unwrap();
        let window = Window::ending_at(next.saturating_add(SLOT), SLOT);
        *next = window.end();
        window
    }
}

#[async_trait]
impl MetricsFixture for SimFixture {
    fn tracks(&self) -> (Track, Track) {
        (
            Track::named("tk-baseline").unwrap(),
            Track::named("tk-canary").unwrap(),
        )
    }

    fn quiet_window(&self) -> Window {
        Window::ending_at(self.world.config().start(), Duration::from_secs(3_600))
    }

    async fn arrange_counts(&self, counts: &[(Track, Counts)]) -> serin_signals::Result<Window> {
        let window = self.next_window();
        for (track, c) in counts {
            self.world
                .record(Observation::new(
                    Metric::ErrorRate,
                    track.clone(),
                    window,
                    Measurement::Counts(*c),
                ))
                .map_err(|e| serin_signals::Error::invalid("arrangement", e, "rejected"))?;
        }
        Ok(window)
    }

    async fn arrange_latency(
        &self,
        track: &Track,
        millis: &[f64],
    ) -> serin_signals::Result<Option<Window>> {
        let window = self.next_window();
        let mut sketch = serin_signals::LatencySketch::new();
        for &m in millis {
            sketch.add(m)?;
        }
        self.world
            .record(Observation::new(
                Metric::Latency,
                track.clone(),
                window,
                Measurement::Latency(sketch),
            ))
            .map_err(|e| serin_signals::Error::invalid("arrangement", e, "rejected"))?;
        Ok(Some(window))
    }

    fn range_step(&self) -> Duration {
        SLOT
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_pass_the_metrics_suite_beside_live_traffic() {
    let fixture = SimFixture::new().await;
    let metrics = fixture.world.metrics();
    testkit::check_metrics_source_all(&metrics, &fixture).await;
    let shared: Arc<dyn MetricsSource> = Arc::new(metrics.clone());
    testkit::check_metrics_source_all(&shared, &fixture).await;

    // The live traffic kept flowing on `stable` the whole time, untouched by the arrangements.
    let last_minute = Window::ending_at(fixture.world.now(), Duration::from_secs(60));
    let live = metrics
        .query(&MetricQuery::new(
            Metric::ErrorRate,
            Track::Stable,
            last_minute,
        ))
        .await
        .unwrap();
    assert!(live.throughput().is_some_and(|rps| rps > 50.0), "{live:?}");
}

struct HealthArranger(SimWorld);

#[async_trait]
impl HealthFixture for HealthArranger {
    async fn arrange(&self, signal: HealthSignal) -> serin_signals::Result<()> {
        self.0.record_health(signal).map_err(|e| match e {
            serin_sim::Error::Signals(e) => e,
            other => serin_signals::Error::invalid("signal", "", other.to_string()),
        })
    }
}

#[tokio::test(start_paused = true)]
async fn health_passes_the_health_suite_beside_running_tracks() {
    let world = SimWorld::new(SimConfig::new(4).with_dependency("postgres")).unwrap();
    world
        .platform()
        .bring_up(&TrackSpec::new("web", "1.0.0", Track::Stable, 2).unwrap())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let fixture = HealthArranger(world.clone());
    testkit::check_health_source_all(&world.health(), &fixture).await;
    // The simulated probes of the running track are there too: three per instance, one per
    // dependency.
    let stable = world.health().signals(&Track::Stable).await.unwrap();
    assert_eq!(stable.len(), 2 * 3 + 1, "{stable:?}");

    let fresh = SimWorld::new(SimConfig::new(5)).unwrap();
    let boxed: Box<dyn HealthSource> = Box::new(fresh.health());
    testkit::check_health_source_all(&boxed, &HealthArranger(fresh.clone())).await;
}
