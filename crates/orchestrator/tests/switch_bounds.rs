//! The blue-green switch asks the platform whether the new track is ready, and the watch
//! asks the metrics and health sources for each check: under paused time, one that never
//! answers holds up neither the deployment's deadline nor, where the switch serves commands,
//! an operator's abort.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, Orchestrator, Report, ServiceBackends, Stage,
    TrafficStrategyKind,
};
use serin_signals::Track;
use support::{
    SERVICE, SilentHealth, SilentMetrics, SilentStatus, World, abort_to_end, blue_green_config,
    bounded, rollback_reason, took, until_stage,
};

const MAX: Duration = Duration::from_secs(20 * 60);

/// 1.0.0 serving under traffic (a switch raises the new track's share only once a check read
/// data of it), and an orchestrator whose platform, metrics and health source can be told to
/// stop answering.
struct Setup {
    world: Arc<World>,
    platform: Arc<SilentStatus>,
    metrics: Arc<SilentMetrics>,
    health: Arc<SilentHealth>,
    o: Orchestrator,
}

async fn setup() -> Setup {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let platform = Arc::new(SilentStatus::new(world.platform.clone()));
    let metrics = Arc::new(SilentMetrics::new(world.source.clone()));
    let health = Arc::new(SilentHealth::new(world.health.clone()));
    let backends = ServiceBackends::new(world.router.clone(), metrics.clone(), health.clone());
    let o = world
        .builder_on(platform.clone(), backends, world.journal.clone())
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

impl Setup {
    /// Starts the switch, and makes the platform's status of the new track hang once it runs.
    async fn switch_with_silent_status(&self) -> DeploymentHandle {
        let h = self.o.start(&config(), SERVICE).await.expect("start");
        until_stage(&h, Stage::Switch).await;
        self.platform.spare(Track::Stable);
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
        rollback_reason(&report).contains("maxDeploymentDuration"),
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
    assert!(rollback_reason(&report).contains("aborted by an operator"));
    assert_eq!(s.platform.stall.dropped(), 1, "the call was dropped");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

impl Setup {
    /// Runs the switch to its end, setting `hang` once it reaches `stage`; asserts that it
    /// ended at the deadline.
    async fn hung_from(&self, stage: Stage, hang: &AtomicBool) -> Report {
        let h = self.o.start(&config(), SERVICE).await.expect("start");
        until_stage(&h, stage).await;
        hang.store(true, Ordering::SeqCst);
        let report = bounded("the deployment", h.wait()).await.expect("report");
        println!("{report}");
        assert_eq!(took(&report), MAX, "given up at the deadline");
        report
    }
}

#[tokio::test(start_paused = true)]
async fn metrics_that_never_answer_in_the_watch_end_it_at_the_deadline() {
    let s = setup().await;
    let report = s.hung_from(Stage::Monitoring, &s.metrics.hang).await;
    assert!(report.outcome.is_some(), "{report}");
    assert!(s.metrics.stall.dropped() >= 1, "the query was dropped");
}

#[tokio::test(start_paused = true)]
async fn health_signals_that_never_answer_in_the_switch_end_it_at_the_deadline() {
    let s = setup().await;
    let report = s.hung_from(Stage::Switch, &s.health.hang).await;
    assert!(
        rollback_reason(&report).contains("maxDeploymentDuration"),
        "{report}"
    );
    assert!(s.health.stall.dropped() >= 1, "the call was dropped");
    s.world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_pause_held_behind_an_abort_by_a_hung_read_is_refused_in_the_rollback() {
    let s = setup().await;
    let h = s.o.start(&config(), SERVICE).await.expect("start");
    support::until_weight(&h, 25.0).await;
    s.metrics.hang.store(true, Ordering::SeqCst);
    s.metrics.stall.until_hung().await;
    let (aborted, paused) =
        bounded("the commands", async { tokio::join!(h.abort(), h.pause()) }).await;
    aborted.expect("the abort rolls back");
    let e = paused.expect_err("a rollback cannot be paused");
    assert!(e.to_string().contains("rolling back"), "{e}");
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    assert!(rollback_reason(&report).contains("aborted by an operator"));
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.kind, serin_orchestrator::EventKind::Paused)),
        "no pause is journalled in the rollback: {report}"
    );
    s.world.assert_live(Track::Stable, "1.0.0").await;
}
