//! The watch after promotion looks at all of `monitoring.monitoringDuration`: a breach in its
//! last stretch, shorter than a check interval, is checked before the watch ends, not left
//! unseen while the old version is retired.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{EventKind, Stage, TrafficStrategyKind};
use serin_signals::Track;
use support::{
    World, blue_green_config, errors_or_missing_data_trigger, rollback_reason, until_stage,
};

#[tokio::test(start_paused = true)]
async fn a_breach_in_the_last_stretch_of_the_watch_rolls_back() {
    let (world, _traffic) = World::serving(0.0, 0.0).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.error_rate_threshold = None;
    config.monitoring.check_interval = Duration::from_secs(5);
    // Checks every 5 s of a 62 s watch: the last 2 s come after the last whole interval.
    config.monitoring.monitoring_duration = Duration::from_secs(62);
    config.triggers = vec![errors_or_missing_data_trigger()];
    config.validate().expect("valid");
    let h = world.start(&config).await;
    until_stage(&h, Stage::Monitoring).await;
    tokio::time::sleep(Duration::from_millis(60_500)).await;
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    assert!(rollback_reason(&report).contains("errors"), "{report}");
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::Completed { .. })),
        "{report}"
    );
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// `monitoring.latencyThreshold` is set, but nothing records the new version's latency: its
/// trigger judges nothing the whole watch, yet stays `Ok` (its `staleAfter` is as long as the
/// watch). The old version is not retired on that silence: the watch goes on, saying why,
/// until latencies come; then it ends.
#[tokio::test(start_paused = true)]
async fn a_trigger_that_never_had_data_keeps_the_watch_from_ending() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.latency_threshold = Some(500.0);
    config.max_deployment_duration = Duration::from_secs(1800);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    until_stage(&h, Stage::Monitoring).await;
    let watch = config.monitoring.monitoring_duration;
    tokio::time::sleep(watch + Duration::from_secs(60)).await;
    assert_eq!(h.status().stage, Stage::Monitoring, "the watch ended");
    world.set_latency("1.1.0", 20.0);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    let told: Vec<&String> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly { summary, .. } if summary.contains("`latency-threshold`") => {
                Some(summary)
            }
            _ => None,
        })
        .collect();
    assert_eq!(told.len(), 1, "said once: {report}");
    assert!(told[0].contains("judged nothing"), "{}", told[0]);
}
