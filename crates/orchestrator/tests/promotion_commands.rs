//! Operator commands while a promoted canary's track grows to full size: a promote is answered
//! when taken and journalled (so a restart honours it), and a pause holds the canary at its
//! share until the resume, as it holds the canary and the switch.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, DeploymentHandle, EventKind, Outcome, Platform};
use serin_signals::Track;
use support::{
    SERVICE, World, canary_config, canary_share, holding_canary_config as config,
    slow_serving_world,
};

/// New instances take this many status checks (one a second while the orchestrator waits)
/// to become ready (see [`slow_serving_world`]): the promotion's scale-up takes about as many
/// seconds.
const READY_AFTER: u32 = 40;

/// The number of instances the canary track runs.
async fn canary_instances(world: &World) -> usize {
    world
        .platform
        .list()
        .await
        .expect("list")
        .iter()
        .find(|t| t.track == Track::Canary)
        .map_or(0, |t| t.instances.len())
}

/// Whether every instance of the canary track is ready.
async fn canary_ready(world: &World) -> bool {
    world
        .platform
        .status(SERVICE, &Track::Canary)
        .await
        .expect("status")
        .all_ready()
}

/// Starts `config` and waits until the controller's promotion has scaled the canary track
/// to 2 instances.
async fn promoting(world: &World, config: &DeploymentConfig) -> DeploymentHandle {
    let h = world.start(config).await;
    while canary_instances(world).await < 2 {
        assert!(h.status().outcome.is_none(), "over before the scale-up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h
}

/// Starts `config` and waits until the deployment gives the new version at least `percent`
/// of traffic.
async fn at_weight(world: &World, config: &DeploymentConfig, percent: f64) -> DeploymentHandle {
    let h = world.start(config).await;
    while h.status().weight < percent {
        assert!(h.status().outcome.is_none(), "over before {percent}%");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    h
}

/// An operator promotes while the track grows and a hold-level breach holds it; the process
/// dies before the track is ready. The resumed deployment honours the journalled promote:
/// the ready track takes all traffic through the hold, without a second promote.
#[tokio::test(start_paused = true)]
async fn an_operators_promote_during_the_scale_up_is_honoured_after_a_restart() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let h = promoting(&world, &config()).await;
    let id = h.id().to_owned();
    world.set_rate("1.1.0", 0.5);
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert!(!canary_ready(&world).await, "still growing");
    h.promote().await.expect("promote");
    h.kill();

    let h = world.orchestrator().resume(&id).await.expect("resume");
    tokio::time::sleep(Duration::from_secs(u64::from(READY_AFTER) + 20)).await;
    assert!(canary_ready(&world).await, "grown by now");
    assert_eq!(canary_share(&world).await, 100.0, "{:?}", h.status());
    h.abort().await.expect("abort");
    let report = h.wait().await.expect("report");
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
}

/// An operator's promote from the canary stage while a metrics outage holds it is journalled
/// with the scale: a restart during the scale-up goes through the hold too.
#[tokio::test(start_paused = true)]
async fn an_operators_promote_from_the_canary_stage_is_honoured_after_a_restart() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let h = at_weight(&world, &config(), 40.0).await;
    let id = h.id().to_owned();
    world.source.set_unavailable(true);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.status().weight, 40.0, "held by the outage");
    // Whenever the promote is answered, the process dies while the track grows.
    let _ = tokio::time::timeout(Duration::from_secs(2), h.promote()).await;
    assert_eq!(canary_instances(&world).await, 2, "scaled");
    assert!(!canary_ready(&world).await, "still growing");
    h.kill();

    let h = world.orchestrator().resume(&id).await.expect("resume");
    tokio::time::sleep(Duration::from_secs(u64::from(READY_AFTER) + 20)).await;
    assert_eq!(canary_share(&world).await, 100.0, "{:?}", h.status());
    h.abort().await.expect("abort");
    h.wait().await.expect("report");
}

/// A promote in the canary stage is answered when taken, not once the grown track is ready
/// (some 40 s later): the operator is not kept waiting, and the track takes all traffic
/// once ready.
#[tokio::test(start_paused = true)]
async fn an_operators_promote_in_the_canary_stage_is_answered_when_taken() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let h = at_weight(&world, &config(), 10.0).await;
    tokio::time::timeout(Duration::from_secs(2), h.promote())
        .await
        .expect("answered at once")
        .expect("promote");
    assert_eq!(
        canary_instances(&world).await,
        2,
        "the scale is carried out"
    );
    assert!(canary_share(&world).await < 100.0, "the track still grows");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// A pause while the promoted canary's track grows holds it at its share once ready; the
/// resume lets it take all traffic.
#[tokio::test(start_paused = true)]
async fn a_pause_during_the_promotions_scale_up_holds_the_canary_share_until_resumed() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let h = promoting(&world, &config()).await;
    h.pause().await.expect("pause");
    tokio::time::sleep(Duration::from_secs(u64::from(READY_AFTER) + 30)).await;
    assert!(canary_ready(&world).await, "grown by now");
    assert_eq!(canary_share(&world).await, 70.0, "held by the pause");
    assert_eq!(h.status().weight, 70.0);
    let resumed = world.clock.now();
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(canary_share(&world).await, 100.0);
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let full = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::WeightChanged { percent, .. } if percent == 100.0))
        .expect("promoted");
    assert!(
        full.at >= resumed,
        "all traffic before the resume\n{report}"
    );
}

/// A promote during the watch after promotion ends the watch and lifts a pause, as it does
/// before promotion: the old version is retired after its warm delay, not kept warm by the
/// pause until the deadline.
#[tokio::test(start_paused = true)]
async fn an_operators_promote_in_the_watch_lifts_a_pause() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = canary_config("1.1.0");
    let h = world.start(&config).await;
    while h.status().stage != serin_orchestrator::Stage::Monitoring {
        assert!(h.status().outcome.is_none(), "over before the watch");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.pause().await.expect("pause");
    h.promote().await.expect("promote");
    assert!(!h.status().paused, "{:?}", h.status());
    let warm = config.blue_green_config.keep_old_warm_for;
    let report = tokio::time::timeout(warm + Duration::from_secs(30), h.wait())
        .await
        .expect("the old version retired after its warm delay")
        .expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// After the watch, the old version is kept warm for `keepOldWarmFor` so that an abort can
/// still switch back at once: a promote does not cut that short (it is refused, saying until
/// when the old version is kept warm), but it lifts a pause that would keep the old version
/// warm past the delay, as it lifts a pause in every other stage.
#[tokio::test(start_paused = true)]
async fn an_operators_promote_in_completion_lifts_a_pause_but_keeps_the_warm_delay() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.blue_green_config.keep_old_warm_for = Duration::from_secs(120);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    support::until_stage(&h, serin_orchestrator::Stage::Completion).await;
    let e = h.promote().await.expect_err("nothing is left to promote");
    assert!(
        e.to_string().contains("keepOldWarmFor") && e.to_string().contains("kept warm until"),
        "{e}"
    );
    assert!(world.has_track(&Track::Stable).await, "still warm");
    h.pause().await.expect("pause");
    h.promote().await.expect("a promote lifts the pause");
    assert!(!h.status().paused, "{:?}", h.status());
    assert!(world.has_track(&Track::Stable).await, "still warm");
    let report = tokio::time::timeout(Duration::from_secs(90), h.wait())
        .await
        .expect("the old version retired after its warm delay, not at the deadline")
        .expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let promoted = report
        .timeline
        .iter()
        .find_map(|e| match e.kind {
            EventKind::WeightChanged { percent, .. } if percent >= 100.0 => Some(e.at),
            _ => None,
        })
        .expect("promoted");
    let took = report.last_at.saturating_duration_since(promoted);
    assert!(
        took >= Duration::from_secs(120),
        "retired {took:?} after promotion"
    );
}
