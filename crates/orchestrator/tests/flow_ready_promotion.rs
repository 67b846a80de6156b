//! A promotion gives the new version all traffic only once every instance of its track is
//! alive and ready: an instance that died since the track came up stops it, whether the
//! promotion is the canary controller's or an operator's, and the deployment rolls back.

use crate::support;

use serin_orchestrator::{StrategyKind, TrafficStrategyKind};
use serin_signals::Track;
use support::{
    blue_green_config, kill_a_green_instance, rollback_reason, until_weight, weights, world_on_blue,
};

/// Blue-green-with-canary whose green loses an instance once the canary reaches `weight`.
async fn green_dying_at(weight: f64) -> serin_orchestrator::Report {
    let world = world_on_blue().await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.strategy = StrategyKind::BlueGreenWithCanary;
    config.canary_config.target_percentage = 50;
    config.validate().expect("valid");
    let h = world.start(&config).await;
    until_weight(&h, weight).await;
    kill_a_green_instance(&world).await;
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("out of memory"), "{reason}");
    world.assert_live(Track::Blue, "1.0.0").await;
    assert!(!world.has_track(&Track::Green).await);
    report
}

#[tokio::test(start_paused = true)]
async fn a_canary_weight_is_not_raised_onto_a_track_whose_instance_died() {
    let report = green_dying_at(10.0).await;
    assert_eq!(weights(&report.timeline), vec![10.0, 0.0], "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_canary_is_not_promoted_onto_a_track_whose_instance_died() {
    let report = green_dying_at(40.0).await;
    assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 0.0], "{report}");
}

#[tokio::test(start_paused = true)]
async fn an_operators_promotion_of_a_switch_whose_green_instance_died_rolls_back() {
    let world = world_on_blue().await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    until_weight(&h, 25.0).await;
    kill_a_green_instance(&world).await;
    let _ = h.promote().await;
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("out of memory"), "{reason}");
    assert_eq!(weights(&report.timeline), vec![25.0, 0.0], "{report}");
    world.assert_live(Track::Blue, "1.0.0").await;
}
