//! The rollback triggers watch a canary that serves a share while it waits for its track to
//! grow: a raised weight whose track grows first (its size follows its weight) does not keep a
//! breach from rolling back until the track is ready, under paused time.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{EventKind, InMemoryPlatform, Report};
use serin_signals::{Timestamp, Track};
use support::{World, canary_config, rollback_reason, weights};

fn fired_at(report: &Report) -> Timestamp {
    report
        .timeline
        .iter()
        .find_map(|e| matches!(e.kind, EventKind::TriggerFired { .. }).then_some(e.at))
        .unwrap_or_else(|| panic!("no trigger fired\n{report}"))
}

/// A canary whose size follows its weight (25%, a minute's pause, then 75% of 4 instances)
/// goes bad while its track grows from 1 instance to 3 for the 75%, on a platform whose new
/// instances take about 40 s to get ready: the breach rolls back within a check or so,
/// before the track is ready, and the 75% is never applied.
#[tokio::test(start_paused = true)]
async fn a_breach_while_the_canary_grows_for_a_raised_weight_rolls_back_before_it_is_ready() {
    let (world, _traffic) =
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
    config.canary_thresholds.max_error_rate = Some(0.2);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    // The raise to 75% grows the canary track to 3 instances first.
    while world.instances_of(&Track::Canary).await < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growing = world.clock.now();
    world.set_rate("1.1.0", 0.5);
    let report = h.wait().await.expect("report");
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(reason.contains("canary-max-error-rate"), "{reason}");
    let top = weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max);
    assert_eq!(top, 25.0, "the raised weight is never applied: {report}");
    // Within a check interval or two, long before the 40 s the track takes.
    let took = fired_at(&report).saturating_duration_since(growing);
    assert!(took <= Duration::from_secs(15), "{took:?}");
    world.assert_live(Track::Stable, "1.0.0").await;
}
