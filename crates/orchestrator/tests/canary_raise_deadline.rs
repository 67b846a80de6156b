//! A raised canary weight that waits for its track to grow is not put in force once the
//! canary's `maxDuration` has run out meanwhile: no weight moves to be taken back at once, as
//! none moves past `maxDeploymentDuration` — in-memory world, paused time.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{InMemoryPlatform, Phase};
use support::{World, canary_config, deadlines, rollback_reason, weights};

/// The canary follows its weight in size; its 75% waits some 20 s for two new instances,
/// and `maxDuration` (2m 20s from the first step) runs out during that wait: it rolls back at
/// 25%, for the deadline, which the report names.
#[tokio::test(start_paused = true)]
async fn a_raise_whose_track_is_ready_past_max_duration_rolls_back_instead() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
                {"pause":{"duration":"2m"}},{"setWeight":75},{"pause":{"duration":"10s"}}]"#,
        )
        .expect("steps"),
    );
    config.blue_green_config.replicas_per_env = 4;
    config.canary_config.max_duration = Duration::from_secs(140);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    assert!(
        rollback_reason(&report).contains("maximum duration"),
        "{report}"
    );
    assert_eq!(weights(&report.timeline), vec![0.0, 25.0, 0.0], "{report}");
    let deadlines = deadlines(&report);
    assert!(
        matches!(
            deadlines.as_slice(),
            [(_, Phase::Deployment, action)] if action.contains("canaryConfig.maxDuration")
        ),
        "{deadlines:?}"
    );
}
