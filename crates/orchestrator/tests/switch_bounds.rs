//! The blue-green switch asks the platform whether the new track is ready, and the watch
//! asks the metrics and health sources for each check: under paused time, one that never
//! answers holds up neither the deployment's deadline nor, where the switch serves commands,
//! an operator's abort.

mod support;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    DeploymentConfig, InMemoryPlatform, Orchestrator, Outcome, Platform, Report, Result,
    ServiceBackends, Stage, TrackSpec, TrackStatus, TrafficStrategyKind,
};
use serin_signals::Track;
use support::{
    SERVICE, SilentHealth, SilentMetrics, Stall, World, abort_to_end, blue_green_config, bounded,
    took, until_stage,
};

const MAX: Duration = Duration::from_secs(20 * 60);

/// The world's platform, but its status of any track but `spared` never answers once
/// `spared` is set (the new track hangs, while the old one, on `stable`, keeps answering).
struct SilentPlatform {
    inner: Arc<InMemoryPlatform>,
    spared: Mutex<Option<Track>>,
    stall: Stall,
}

#[async_trait]
impl Platform for SilentPlatform {
    fn name(&self) -> &str {
        "silent"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        let hang = matches!(&*self.spared.lock().unwrap(), Some(t) if t != track);
        if hang {
            self.stall.now::<()>().await;
        }
        self.inner.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.inner.list().await
    }
}

/// 1.0.0 serving, and an orchestrator whose platform, metrics and health source can be told
/// to stop answering.
struct Setup {
    world: Arc<World>,
    platform: Arc<SilentPlatform>,
    metrics: Arc<SilentMetrics>,
    health: Arc<SilentHealth>,
    o: Orchestrator,
}

async fn setup() -> Setup {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    world.install("1.0.0").await;
    let platform = Arc::new(SilentPlatform {
        inner: world.platform.clone(),
        spared: Mutex::new(None),
        stall: Stall::default(),
    });
    let metrics = Arc::new(SilentMetrics::new(world.source.clone()));
    let health = Arc::new(SilentHealth::new(world.health.clone()));
    let backends = ServiceBackends::new(world.router.clone(), metrics.clone(), health.clone());
    let o = Orchestrator::builder(platform.clone(), world.journal.clone())
        .service(SERVICE, backends)
        .clock(world.clock)
        .build();
    Setup {
        world,
        platform,
        metrics,
        health,
        o,
    }
}

/// A gradual blue-green switch to 1.1.0 bounded by [`MAX`].
fn config() -> DeploymentConfig {
    let mut c = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    c.max_deployment_duration = MAX;
    c.validate().expect("valid");
    c
}

/// The reason of a rolled-back deployment; panics with the report otherwise.
fn rolled_back(report: &Report) -> &str {
    match &report.outcome {
        Some(Outcome::RolledBack { reason }) => reason,
        other => panic!("expected a rollback, got {other:?}\n{report}"),
    }
}

impl Setup {
    /// Starts the switch, and makes the platform's status of the new track hang once it runs.
    async fn switch_with_silent_status(&self) -> serin_orchestrator::DeploymentHandle {
        let h = self.o.start(&config(), SERVICE).await.expect("start");
        until_stage(&h, Stage::Switch).await;
        *self.platform.spared.lock().unwrap() = Some(Track::Stable);
        h
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_track_status_that_never_answers_rolls_the_switch_back_at_the_deadline() {
    let s = setup().await;
    let h = s.switch_with_silent_status().await;
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    assert!(
        rolled_back(&report).contains("maxDeploymentDuration"),
        "{report}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert_eq!(s.platform.stall.dropped(), 1, "the call was dropped");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_new_track_status_never_answers_rolls_back_at_once() {
    let s = setup().await;
    let h = s.switch_with_silent_status().await;
    s.platform.stall.until_hung().await;
    let (asked, report) = abort_to_end(&s.o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    assert!(rolled_back(&report).contains("aborted by an operator"));
    assert_eq!(s.platform.stall.dropped(), 1, "the call was dropped");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn metrics_that_never_answer_in_the_watch_end_it_at_the_deadline() {
    let s = setup().await;
    let h = s.o.start(&config(), SERVICE).await.expect("start");
    until_stage(&h, Stage::Monitoring).await;
    s.metrics.hang.store(true, Ordering::SeqCst);
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    assert!(report.outcome.is_some(), "{report}");
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert!(s.metrics.stall.dropped() >= 1, "the query was dropped");
}

#[tokio::test(start_paused = true)]
async fn health_signals_that_never_answer_in_the_switch_end_it_at_the_deadline() {
    let s = setup().await;
    let h = s.o.start(&config(), SERVICE).await.expect("start");
    until_stage(&h, Stage::Switch).await;
    s.health.hang.store(true, Ordering::SeqCst);
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    assert!(
        rolled_back(&report).contains("maxDeploymentDuration"),
        "{report}"
    );
    assert_eq!(took(&report), MAX, "given up at the deadline");
    assert!(s.health.stall.dropped() >= 1, "the call was dropped");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}
