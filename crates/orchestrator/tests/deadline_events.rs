//! A deadline that ends a canary or a blue-green switch before promotion is announced in the
//! timeline, with the phase it ran out in and what follows, as one after promotion is: a
//! report reader sees why the deployment rolled back.

use crate::support;

use std::time::Duration;

use serin_canary::controller::{LatencyPacing, Pacing};
use serin_orchestrator::{DeploymentConfig, EventKind, Phase, Report, Stage, TrafficStrategyKind};
use support::{World, blue_green_config, canary_within, deadlines, rollback_reason, until_stage};

/// The position of the first rollback start in `report`'s timeline.
fn rollback_started(report: &Report) -> usize {
    report
        .timeline
        .iter()
        .position(|e| matches!(e.kind, EventKind::RollbackStarted { .. }))
        .expect("a rollback started")
}

/// Runs `config` with 1.0.0 serving, paused as soon as it reaches `stage`, to its end.
async fn paused_in(world: &World, config: &DeploymentConfig, stage: Stage) -> Report {
    let h = world.start(config).await;
    until_stage(&h, stage).await;
    h.pause().await.expect("pause");
    h.wait().await.expect("report")
}

/// Asserts that `report` rolled back for `maxDeploymentDuration` (20m) in the deployment
/// phase, announced once, before the rollback started, in a sentence its `Display` shows.
fn assert_deployment_deadline(report: &Report) {
    let reason = rollback_reason(report);
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    let seen = deadlines(report);
    let [(at, phase, action)] = seen.as_slice() else {
        panic!("one deadline event expected: {seen:?}\n{report}");
    };
    assert_eq!(*phase, Phase::Deployment, "{report}");
    assert!(
        action.contains("maxDeploymentDuration (20m) ran out") && action.contains("rolling back"),
        "{action}"
    );
    assert!(*at < rollback_started(report), "{report}");
    let shown = report.timeline[*at].kind.to_string();
    assert!(
        shown.contains("deadline reached in deployment") && shown.contains(action),
        "{shown}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canary_held_past_max_deployment_duration_announces_the_deadline() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = canary_within(Duration::from_secs(20 * 60));
    let report = paused_in(&world, &config, Stage::Canary).await;
    println!("{report}");
    assert_deployment_deadline(&report);
}

#[tokio::test(start_paused = true)]
async fn a_switch_held_past_max_deployment_duration_announces_the_deadline() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    config.max_deployment_duration = Duration::from_secs(20 * 60);
    config.validate().expect("valid");
    let report = paused_in(&world, &config, Stage::Switch).await;
    println!("{report}");
    assert_deployment_deadline(&report);
}

/// A canary whose latency pacing never lets the weight rise rolls back at the canary's own
/// `maxDuration`, long before `maxDeploymentDuration`: the deadline event names it.
#[tokio::test(start_paused = true)]
async fn a_canary_past_its_max_duration_announces_the_deadline() {
    let (world, _traffic) = World::serving(0.0, 0.0).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 130.0);
    let mut config = canary_within(Duration::from_secs(2 * 3_600));
    config.canary_config.pacing = Some(Pacing {
        detectable_ratio: None,
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    });
    config.canary_config.max_duration = Duration::from_secs(1_200);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(reason.contains("maximum duration"), "{reason}");
    let seen = deadlines(&report);
    let [(at, phase, action)] = seen.as_slice() else {
        panic!("one deadline event expected: {seen:?}\n{report}");
    };
    assert_eq!(*phase, Phase::Deployment);
    assert!(
        action.contains("canaryConfig.maxDuration (20m) ran out")
            && action.contains("rolling back"),
        "{action}"
    );
    assert!(*at < rollback_started(&report), "{report}");
}

/// A rollback a judge decided is no deadline's.
#[tokio::test(start_paused = true)]
async fn a_canary_rolled_back_by_its_judge_announces_no_deadline() {
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let mut config = canary_within(Duration::from_secs(2 * 3_600));
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("error_rate"), "{reason}");
    assert_eq!(deadlines(&report), Vec::new(), "{report}");
}
