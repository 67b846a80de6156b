//! The rollback triggers and the judges watch a canary that serves a share while it waits for
//! its track to grow: a raised weight whose track grows first (its size follows its weight)
//! does not keep a breach or a failing judge from rolling back until the track is ready, under
//! paused time.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use serin_orchestrator::{DeploymentConfig, DeploymentHandle, EventKind, InMemoryPlatform, Report};
use serin_signals::{Timestamp, Track};
use support::{World, canary_config, rollback_reason, weights};

fn fired_at(report: &Report) -> Timestamp {
    report
        .timeline
        .iter()
        .find_map(|e| matches!(e.kind, EventKind::TriggerFired { .. }).then_some(e.at))
        .unwrap_or_else(|| panic!("no trigger fired\n{report}"))
}

/// A canary whose size follows its weight (25%, a minute's pause, then 75% of 4 instances), on
/// a platform whose new instances take about 40 s to get ready, started; answers the world, the
/// deployment, its traffic and when its track began growing for the 75%, once it has.
async fn growing_canary(
    edit: impl FnOnce(&mut DeploymentConfig),
) -> (Arc<World>, DeploymentHandle, JoinHandle<()>, Timestamp) {
    let (world, traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(40), 0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
                {"pause":{"duration":"1m"}},{"setWeight":75},{"pause":{"duration":"1m"}}]"#,
        )
        .expect("steps"),
    );
    config.blue_green_config.replicas_per_env = 4;
    config.blue_green_config.readiness_timeout = Duration::from_secs(300);
    edit(&mut config);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    // The raise to 75% grows the canary track to 3 instances first.
    while world.instances_of(&Track::Canary).await < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growing = world.clock.now();
    (world, h, traffic, growing)
}

fn top_weight(report: &Report) -> f64 {
    weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max)
}

/// The canary goes bad while its track grows: the breach rolls back within a check or so,
/// before the track is ready, and the 75% is never applied.
#[tokio::test(start_paused = true)]
async fn a_breach_while_the_canary_grows_for_a_raised_weight_rolls_back_before_it_is_ready() {
    let (world, h, _traffic, growing) = growing_canary(|c| {
        c.canary_thresholds.max_error_rate = Some(0.2);
    })
    .await;
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("canary-max-error-rate"), "{reason}");
    assert_eq!(
        top_weight(&report),
        25.0,
        "the raised weight is never applied: {report}"
    );
    // Within a check interval or two, long before the 40 s the track takes.
    let took = fired_at(&report).saturating_duration_since(growing);
    assert!(took <= Duration::from_secs(15), "{took:?}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// The canary goes bad below every threshold trigger (8% errors against 0.5%) while its track
/// grows: the judges, fed each window of the wait as a held canary's, roll it back before the
/// track is ready, and the 75% is never applied.
#[tokio::test(start_paused = true)]
async fn the_judges_see_the_windows_of_the_wait_and_roll_a_failing_canary_back() {
    let (world, h, _traffic, growing) = growing_canary(|c| {
        c.monitoring.error_rate_threshold = None;
        c.canary_thresholds.max_error_rate = None;
    })
    .await;
    world.set_rate("1.1.0", 0.08);
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("error_rate"), "{reason}");
    assert_eq!(
        top_weight(&report),
        25.0,
        "the raised weight is never applied: {report}"
    );
    let took = report.last_at.saturating_duration_since(growing);
    assert!(took < Duration::from_secs(40), "{took:?}");
    world.assert_live(Track::Stable, "1.0.0").await;
}
