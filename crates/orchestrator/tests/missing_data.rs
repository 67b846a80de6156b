//! A rollback trigger whose missing data asks to roll back (`onMissingData: fire`) while the
//! new version serves no traffic: its silence there says nothing of the version, so it does
//! not roll back; once the version serves traffic, missing data rolls back again.

use crate::support;

use serin_orchestrator::{DeploymentConfig, EventKind, Outcome};
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
