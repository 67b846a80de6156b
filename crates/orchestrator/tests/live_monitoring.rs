//! Watching the new version after the promotion decision: while a promoted canary's track
//! grows to full size, during the watch (`monitoring.consecutiveFailures` as a span of time),
//! and not in the part of `keepOldWarmFor` that outlasts the watch.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    EventKind, InMemoryPlatform, Journal, Platform, Report, Stage, TrafficStrategyKind,
};
use serin_signals::{Timestamp, Track};
use support::{
    SERVICE, World, assert_succeeded, blue_green_config, canary_config, rollback_reason,
    until_stage, weights,
};

/// The samples' windows of the canary arm with data, each with whether its error rate is above
/// `threshold`, and the windows without data (`None`).
fn breaches(report: &Report, threshold: f64) -> Vec<(Timestamp, Option<bool>)> {
    report
        .samples
        .iter()
        .filter_map(|s| {
            let canary = s
                .arms
                .iter()
                .find(|a| a.arm == serin_signals::Arm::Canary)?;
            let breached = match (canary.requests, canary.errors) {
                (Some(n), Some(e)) if n > 0 => Some(e as f64 / n as f64 > threshold),
                _ => None,
            };
            Some((s.window.end(), breached))
        })
        .collect()
}

/// When the first rollback trigger fired.
fn fired_at(report: &Report) -> Timestamp {
    report
        .timeline
        .iter()
        .find_map(|e| matches!(e.kind, EventKind::TriggerFired { .. }).then_some(e.at))
        .unwrap_or_else(|| panic!("no trigger fired\n{report}"))
}

/// A blue-green switch to 1.1.0 watched every 5 s for three breaching checks over 20% errors;
/// 1.1.0 fails half its requests from 12 s into the watch, and when `gap` the metrics are
/// out for the check after the first breaching one.
async fn watched(gap: bool) -> Report {
    let (world, _traffic) = World::serving(0.0, 0.0).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.error_rate_threshold = Some(0.2);
    config.monitoring.consecutive_failures = 3;
    config.monitoring.check_interval = Duration::from_secs(5);
    let h = world.start(&config).await;
    until_stage(&h, Stage::Monitoring).await;
    tokio::time::sleep(Duration::from_millis(12_000)).await;
    world.set_rate("1.1.0", 0.5);
    if gap {
        tokio::time::sleep(Duration::from_secs(3)).await;
        world.source.set_unavailable(true);
        tokio::time::sleep(Duration::from_secs(5)).await;
        world.source.set_unavailable(false);
    }
    h.wait().await.expect("report")
}

/// `consecutiveFailures` is a span: with data at every check it is that many breaching checks
/// in a row; a check without data between two breaching ones neither ends the breach nor
/// stretches it, so the rollback comes at the same time, after two breaching checks.
#[tokio::test(start_paused = true)]
async fn consecutive_failures_after_promotion_are_a_span_of_checks() {
    let hold = Duration::from_secs(10);
    for (gap, breaching) in [(false, 3), (true, 2)] {
        let report = watched(gap).await;
        assert!(
            rollback_reason(&report).contains("error-rate-threshold"),
            "{report}"
        );
        let fired = fired_at(&report);
        let seen: Vec<(Timestamp, Option<bool>)> = breaches(&report, 0.2)
            .into_iter()
            .filter(|(end, _)| *end <= fired)
            .collect();
        let first = seen
            .iter()
            .find(|(_, b)| *b == Some(true))
            .map(|(end, _)| *end)
            .expect("a breaching check");
        assert_eq!(
            fired.saturating_duration_since(first),
            hold,
            "gap {gap}: {seen:?}"
        );
        let after: Vec<Option<bool>> = seen
            .iter()
            .filter(|(end, _)| *end >= first)
            .map(|(_, b)| *b)
            .collect();
        let expected = if gap {
            vec![Some(true), None, Some(true)]
        } else {
            vec![Some(true); 3]
        };
        assert_eq!(after, expected, "gap {gap}");
        assert_eq!(
            after.iter().filter(|b| **b == Some(true)).count(),
            breaching
        );
    }
}

/// A world whose new instances take `checks` status checks to become ready.
async fn slow_world(checks: u32) -> (Arc<World>, tokio::task::JoinHandle<()>) {
    World::serving_on(
        InMemoryPlatform::new().with_ready_after(checks),
        0.005,
        0.005,
    )
    .await
}

/// A promoted canary serves its last weight until its track has grown to full size: the
/// rollback triggers watch it meanwhile, so a version that goes bad then is rolled back before
/// it takes all traffic.
#[tokio::test(start_paused = true)]
async fn a_canary_going_bad_while_its_track_grows_is_rolled_back_before_taking_all_traffic() {
    let (world, _traffic) = slow_world(30).await;
    let mut config = canary_config("1.1.0");
    config.canary_thresholds.max_error_rate = Some(0.2);
    config.blue_green_config.readiness_timeout = Duration::from_secs(120);
    let h = world.start(&config).await;
    // The promotion scales the canary track from 1 instance to 2.
    while world.instances_of(&Track::Canary).await < 2 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scaled = world.clock.now();
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("canary-max-error-rate"), "{reason}");
    let top = weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max);
    assert_eq!(top, 70.0, "{report}");
    // Within a check interval or so, long before the 30 s the track takes.
    let took = fired_at(&report).saturating_duration_since(scaled);
    assert!(took <= Duration::from_secs(10), "{took:?}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// The watch after promotion, on [`blue_green_config`]'s timings but 10 s long, with the old
/// version kept warm for a minute.
fn warm_config() -> serin_orchestrator::DeploymentConfig {
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.monitoring_duration = Duration::from_secs(10);
    config.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    config
}

/// The world serving 1.0.0 and the switch of [`warm_config`] to 1.1.0, past its watch.
async fn past_the_watch() -> (
    Arc<World>,
    tokio::task::JoinHandle<()>,
    serin_orchestrator::DeploymentHandle,
) {
    let (world, traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&warm_config()).await;
    until_stage(&h, Stage::Completion).await;
    (world, traffic, h)
}

/// Past the watch, the rest of `keepOldWarmFor` keeps the old version for a switch back and
/// watches nothing: a version that goes bad then is not rolled back by a trigger.
#[tokio::test(start_paused = true)]
async fn the_warm_delay_past_the_watch_is_not_watched() {
    let (world, _traffic, h) = past_the_watch().await;
    let watch_ended = world.clock.now();
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    assert_succeeded(&report);
    assert!(
        report.samples.iter().all(|s| s.window.end() <= watch_ended),
        "{report}"
    );
}

/// Until the old version is retired, an abort gives it all traffic again at once, without
/// starting it again.
#[tokio::test(start_paused = true)]
async fn an_abort_in_the_warm_delay_past_the_watch_switches_back_to_the_warm_version() {
    let (world, _traffic, h) = past_the_watch().await;
    tokio::time::sleep(Duration::from_secs(20)).await;
    let old = world
        .platform
        .status(SERVICE, &Track::Stable)
        .await
        .expect("the old version is warm");
    h.abort().await.expect("abort");
    let report = h.wait().await.expect("report");
    assert!(rollback_reason(&report).contains("aborted"), "{report}");
    world.assert_live(Track::Stable, "1.0.0").await;
    let now = world
        .platform
        .status(SERVICE, &Track::Stable)
        .await
        .expect("still running");
    assert_eq!(now.instances.len(), old.instances.len());
    assert!(
        now.instances
            .iter()
            .zip(&old.instances)
            .all(|(a, b)| a.id == b.id),
        "the same instances serve"
    );
    let records = world
        .journal
        .records(&report.deployment)
        .await
        .expect("records");
    assert!(
        records.iter().flat_map(|r| &r.effects).all(|e| !matches!(
            e,
            serin_orchestrator::Effect::BringUp { track, .. } if *track == Track::Stable
        )),
        "the old version was not started again"
    );
}
