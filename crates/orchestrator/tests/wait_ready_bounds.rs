//! The readiness wait asks the platform for the new track's status, and a platform that never
//! answers holds up neither the deployment's deadline nor an operator's abort, under paused
//! time: the call is dropped and the deployment rolls back, the new track getting no traffic.
//! A track that gets ready only at the deadline takes no traffic either: the deadline rolls
//! back before any weight moves.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{Orchestrator, ServiceBackends};
use serin_signals::Track;
use support::{
    SERVICE, SilentStatus, World, abort_to_end, bounded, canary_config, canary_within,
    rollback_reason, run_to_end, slow_serving_world, took,
};

/// 1.0.0 serving, and an orchestrator on the world's backends whose platform's status of the
/// canary track never answers once it spares the stable track (set once the deployment has
/// started: starting one asks whether the track already runs).
async fn silent_world() -> (Arc<SilentStatus>, Arc<World>, Orchestrator) {
    let world = World::installed().await;
    let platform = Arc::new(SilentStatus::new(world.platform.clone()));
    let backends = ServiceBackends::new(
        world.router.clone(),
        world.source.clone(),
        world.health.clone(),
    );
    let o = world
        .builder_on(platform.clone(), backends, world.journal.clone())
        .build();
    (platform, world, o)
}

#[tokio::test(start_paused = true)]
async fn a_status_that_never_answers_ends_the_readiness_wait_at_the_deadline() {
    let (platform, world, o) = silent_world().await;
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    platform.spare(Track::Stable);
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("web/canary")
            && reason.contains("waiting for its readiness")
            && reason.contains("silent")
            && reason.contains("maxDeploymentDuration (20m)"),
        "{reason}"
    );
    assert_eq!(took(&report), max, "given up at the deadline");
    assert_eq!(platform.stall.dropped(), 1, "the call was dropped");
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_status_never_answers_rolls_back_at_once() {
    let (platform, world, o) = silent_world().await;
    let h = o
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    platform.spare(Track::Stable);
    platform.stall.until_hung().await;
    let (asked, report) = abort_to_end(&o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    assert!(rollback_reason(&report).contains("aborted by an operator"));
    assert_eq!(platform.stall.dropped(), 1, "the call was dropped");
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_promotion_whose_track_gets_ready_at_the_deadline_rolls_back_without_moving_traffic() {
    // New instances get ready at their fifth check: the promotion at 184 s grows the canary
    // track, whose new instance is ready at 188 s, the deadline.
    let (world, _traffic) = slow_serving_world(5).await;
    let max = Duration::from_secs(188);
    let mut config = canary_config("1.1.0");
    config.max_deployment_duration = max;
    config.blue_green_config.readiness_timeout = Duration::from_secs(60);
    config.validate().expect("valid");
    let report = bounded("the deployment", run_to_end(&world.orchestrator(), &config)).await;
    println!("{report}");
    assert!(
        rollback_reason(&report).contains("did not finish within maxDeploymentDuration"),
        "{report}"
    );
    assert_eq!(took(&report), max, "rolled back at the deadline");
    let all_to_canary = world.router.history().iter().any(|s| {
        s.weight_of("canary")
            .is_some_and(|w| w.as_percent() >= 100.0)
    });
    assert!(!all_to_canary, "{:?}", world.router.history());
    world.assert_live(Track::Stable, "1.0.0").await;
}
