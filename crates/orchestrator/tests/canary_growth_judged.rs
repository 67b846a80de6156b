//! While a raised canary weight waits for its track to grow, the judges see every window, as
//! they do while the canary is held: a canary that fails meanwhile is rolled back, not raised
//! once the track is ready.

use crate::support;

use std::time::Duration;

use serin_orchestrator::InMemoryPlatform;
use serin_signals::Track;
use support::{World, canary_config, rollback_reason, weights};

/// A canary (25%, then 75% with a track that grows for it) goes bad (8% errors against 0.5%,
/// below every threshold trigger) while its track grows for the 75%: the judges, fed every
/// window, would fail it; the 75% must never be applied.
#[tokio::test(start_paused = true)]
async fn a_canary_failing_while_its_track_grows_is_rolled_back_not_raised() {
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
    config.blue_green_config.readiness_timeout = Duration::from_secs(600);
    config.monitoring.error_rate_threshold = None;
    config.canary_thresholds.max_error_rate = None;
    config.validate().expect("valid");
    let h = world.start(&config).await;
    while world.instances_of(&Track::Canary).await < 3 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let growing = world.clock.now();
    world.set_rate("1.1.0", 0.08);
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("error_rate"), "{reason}");
    let rolled_back = report.last_at.saturating_duration_since(growing);
    assert!(
        rolled_back < Duration::from_secs(40),
        "rolled back {rolled_back:?} after"
    );
    let top = weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max);
    assert_eq!(
        top, 25.0,
        "a canary failing its judges during the wait was raised to {top}%"
    );
}
