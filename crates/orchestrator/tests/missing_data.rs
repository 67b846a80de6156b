//! A rollback trigger whose missing data asks to roll back (`onMissingData: fire`) while the
//! new version serves no traffic: its silence there says nothing of the version, so it does
//! not roll back; once the version serves traffic, missing data rolls back again.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, EventKind, Outcome, Report};
use serin_signals::{Metric, Track, Window};
use support::{World, canary_config, rollback_reason, run_to_end, stale_at_zero_config};

/// The canary track has no data for the minute at 0%: the trigger goes stale, is announced,
/// and the deployment goes on to succeed once the canary's data flows.
#[tokio::test(start_paused = true)]
async fn a_trigger_stale_at_zero_percent_does_not_roll_back() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = run_to_end(&world.orchestrator(), &stale_at_zero_config()).await;
    support::assert_succeeded(&report);
    assert!(
        report.timeline.iter().any(|e| matches!(
            &e.kind,
            EventKind::Anomaly { source, severity, summary }
                if source == "trigger `errors`"
                    && severity == "warning"
                    && summary.contains("serves no traffic")
        )),
        "{report}"
    );
}

/// A metrics outage from the start: the trigger goes stale at 0% and does not roll back
/// there, but once the canary serves 10% and its data is still missing, it does.
#[tokio::test(start_paused = true)]
async fn a_trigger_still_stale_once_traffic_flows_rolls_back() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world.source.set_unavailable(true);
    let report = run_to_end(&world.orchestrator(), &stale_at_zero_config()).await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("`errors`") && reason.contains("no usable data"),
        "{reason}"
    );
    let first_weight = report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } if *percent > 0.0 => Some(e.at),
            _ => None,
        })
        .expect("the canary took traffic before rolling back");
    let rolled_back = report
        .timeline
        .iter()
        .rev()
        .find(|e| matches!(e.kind, EventKind::WeightChanged { percent, .. } if percent == 0.0))
        .map(|e| e.at)
        .expect("back to 0%");
    assert!(rolled_back > first_weight, "{report}");
}

/// The times `text` names, as written (RFC 3339 with milliseconds, which sort as they are
/// written).
fn times_named(text: &str) -> Vec<&str> {
    let shape = |t: &&str| {
        let b = t.as_bytes();
        b.len() == 24 && b[0].is_ascii_digit() && b[10] == b'T' && b[23] == b'Z'
    };
    text.char_indices()
        .filter_map(|(i, _)| text.get(i..i + 24))
        .filter(shape)
        .collect()
}

/// What the trigger `errors` said of its last data when it went stale: `last at <time>` or
/// `none since the start`.
fn last_data_when_stale(report: &Report) -> String {
    report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Anomaly {
                source, summary, ..
            } if source == "trigger `errors`" => {
                let (_, rest) = summary.split_once("ms (")?;
                Some(rest.split_once(')')?.0.to_owned())
            }
            _ => None,
        })
        .unwrap_or_else(|| panic!("the trigger went stale at 0%\n{report}"))
}

/// A metrics outage from the start: the rollback's reason dates the silence from the start,
/// as the trigger's own evidence does, and names no time after it (not when the trigger
/// went stale, which is later).
#[tokio::test(start_paused = true)]
async fn a_rollback_for_data_missing_from_the_start_says_so() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world.source.set_unavailable(true);
    let report = run_to_end(&world.orchestrator(), &stale_at_zero_config()).await;
    assert_eq!(last_data_when_stale(&report), "none since the start");
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("no usable data since the start"),
        "{reason}"
    );
    let start = report.started_at.to_string();
    assert!(
        times_named(reason).iter().all(|t| **t <= *start),
        "{reason} (started at {start})"
    );
}

/// The canary's metrics answer for a while at 0% (a smoke test's requests), then the
/// source goes down: the trigger goes stale at 0%, and rolls back once the canary has served
/// traffic for its `staleAfter` without data. The reason dates the silence from the last
/// data the trigger took, not from when it went stale.
#[tokio::test(start_paused = true)]
async fn a_rollback_for_data_missing_later_dates_it_from_the_last_data() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let handle = world.start(&stale_at_zero_config()).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let window = Window::ending_at(world.clock.now(), Duration::from_secs(1));
    world
        .source
        .record_counts(Track::Canary, Metric::ErrorRate, window, 100, 0)
        .expect("record");
    // Past the first read (of the first 10 s), which takes that data.
    tokio::time::sleep(Duration::from_secs(7)).await;
    world.source.set_unavailable(true);
    let report = handle.wait().await.expect("report");
    let last = last_data_when_stale(&report);
    let last = last
        .strip_prefix("last at ")
        .unwrap_or_else(|| panic!("the trigger took the canary's data: {last}\n{report}"));
    let reason = rollback_reason(&report);
    assert!(
        reason.contains(&format!("no usable data since {last}")),
        "{reason} (last data at {last})"
    );
}

/// `canary_config("1.1.0")` with a trigger on the old version's track that goes stale after
/// 10 s without data, asking to `missing` then.
fn on_the_old_track(missing: &str) -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    config.triggers = vec![
        serde_json::from_str(&format!(
            r#"{{"kind":"metricThreshold","id":"baseline-errors","track":"stable",
                "metric":"error_rate","operator":"gt","value":0.2,
                "onMissingData":"{missing}","staleAfter":"10s"}}"#
        ))
        .expect("trigger"),
    ];
    config.validate().expect("valid");
    config
}

/// Once the new version takes all traffic, the old one serves none and has no data, which
/// says nothing of either version: a trigger on it whose missing data asks to roll back does
/// not, and the deployment succeeds.
#[tokio::test(start_paused = true)]
async fn a_trigger_on_the_old_track_stale_after_promotion_does_not_roll_back() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = world
        .start(&on_the_old_track("fire"))
        .await
        .wait()
        .await
        .expect("report");
    support::assert_succeeded(&report);
}

/// Nor does one whose missing data asks to hold keep the watch after promotion from ending
/// on time: the deployment succeeds once its monitoring and warm delay are over, long
/// before `maxDeploymentDuration`.
#[tokio::test(start_paused = true)]
async fn a_trigger_on_the_old_track_stale_after_promotion_does_not_hold_the_watch() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = on_the_old_track("hold");
    let report = world.start(&config).await.wait().await.expect("report");
    support::assert_succeeded(&report);
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(
        took < config.max_deployment_duration / 2,
        "{took:?} of {:?}\n{report}",
        config.max_deployment_duration
    );
}
