//! A promoted canary whose track grows to full size before it takes all traffic: a rollback
//! trigger asking to hold (a metrics outage, a hold-level breach) keeps it at its share, as it
//! holds the canary, the switch and the watch, until the hold clears or the deadline rolls
//! back; an operator's promotion goes through the hold.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, EventKind, Outcome, Platform, Report,
};
use serin_signals::{Timestamp, Track};
use support::{
    SERVICE, World, canary_share, holding_canary_config as config, rollback_reason,
    slow_serving_world,
};

/// New instances take this many status checks (one a second while the orchestrator waits)
/// to become ready (see [`slow_serving_world`]): the promotion's scale-up takes about as many
/// seconds.
const READY_AFTER: u32 = 40;

/// Starts `config` and waits until the promotion has scaled the canary track to 2 instances;
/// answers the handle and when that was seen.
async fn promoting(world: &World, config: &DeploymentConfig) -> (DeploymentHandle, Timestamp) {
    let h = world.start(config).await;
    loop {
        if world.instances_of(&Track::Canary).await >= 2 {
            return (h, world.clock.now());
        }
        if h.status().outcome.is_some() {
            let report = h.wait().await.expect("report");
            panic!("over before the promotion's scale-up:\n{report}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The new version's shares announced, with when.
fn weights(report: &Report) -> Vec<(Timestamp, f64)> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } => Some((e.at, *percent)),
            _ => None,
        })
        .collect()
}

/// A metrics outage while the track grows: the trigger goes stale and holds, so the canary
/// stays at 70% well past the moment its track is ready, and takes all traffic only once the
/// data is back.
#[tokio::test(start_paused = true)]
async fn a_metrics_outage_while_a_promoted_canary_grows_holds_it_until_the_data_returns() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let (h, scaled) = promoting(&world, &config()).await;
    world.source.set_unavailable(true);
    // The track is ready some 40 s after the scale; the hold keeps it at its share.
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert!(
        world
            .platform
            .status(SERVICE, &Track::Canary)
            .await
            .expect("status")
            .all_ready(),
        "the scaled track is ready by now"
    );
    assert_eq!(canary_share(&world).await, 70.0);
    assert_eq!(h.status().weight, 70.0);
    let back = world.clock.now();
    world.source.set_unavailable(false);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    let full = weights(&report)
        .into_iter()
        .find(|(_, w)| *w == 100.0)
        .map(|(at, _)| at)
        .expect("promoted");
    assert!(
        full >= back,
        "all traffic at {full:?}, before the data returned at {back:?} (scaled at {scaled:?})"
    );
    assert!(
        report.timeline.iter().any(|e| matches!(
            &e.kind,
            EventKind::Anomaly { source, severity, .. }
                if source == "trigger `errors-hold`" && severity == "hold"
        )),
        "{report}"
    );
}

/// A hold-level breach that does not clear keeps the canary at its share until
/// `maxDeploymentDuration` rolls it back: it never takes all traffic.
#[tokio::test(start_paused = true)]
async fn a_hold_that_never_clears_while_the_track_grows_rolls_back_at_the_deadline() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let mut config = config();
    config.max_deployment_duration = Duration::from_secs(600);
    let (h, _) = promoting(&world, &config).await;
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    let top = weights(&report)
        .into_iter()
        .map(|(_, w)| w)
        .fold(0.0, f64::max);
    assert_eq!(top, 70.0, "{report}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// An operator's promotion goes through a hold, as it does in the canary stage, the switch
/// and the watch: promoting again during the held wait gives the ready track all traffic.
#[tokio::test(start_paused = true)]
async fn an_operators_promotion_goes_through_a_hold_while_the_track_grows() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let (h, _) = promoting(&world, &config()).await;
    world.set_rate("1.1.0", 0.5);
    tokio::time::sleep(Duration::from_secs(90)).await;
    assert_eq!(canary_share(&world).await, 70.0, "held");
    let asked = world.clock.now();
    h.promote().await.expect("promote");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(canary_share(&world).await, 100.0);
    let took = world.clock.now().saturating_duration_since(asked);
    assert!(took <= Duration::from_secs(3), "{took:?}");
    rolled_back_by_an_abort(h).await;
}

/// An operator who promotes a canary held by a metrics outage promotes it through the hold:
/// its track grows, and takes all traffic once ready, though the data is still missing.
#[tokio::test(start_paused = true)]
async fn an_operators_promotion_of_a_held_canary_is_not_held_while_its_track_grows() {
    let (world, _traffic) = slow_serving_world(READY_AFTER).await;
    let h = world.start(&config()).await;
    support::until_weight(&h, 40.0).await;
    world.source.set_unavailable(true);
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.status().weight, 40.0, "held by the outage");
    assert_eq!(canary_share(&world).await, 40.0);
    h.promote().await.expect("promote");
    // The track grows in some 40 s; then it takes all traffic.
    tokio::time::sleep(Duration::from_secs(u64::from(READY_AFTER) + 10)).await;
    assert_eq!(canary_share(&world).await, 100.0);
    rolled_back_by_an_abort(h).await;
}

/// Aborts the deployment, which then ends rolled back.
async fn rolled_back_by_an_abort(h: DeploymentHandle) {
    h.abort().await.expect("abort");
    let report = h.wait().await.expect("report");
    assert!(matches!(report.outcome, Some(Outcome::RolledBack { .. })));
}
