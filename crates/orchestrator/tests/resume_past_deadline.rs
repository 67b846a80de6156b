//! A deployment resumed once `maxDeploymentDuration` has run out moves nothing more towards the
//! new version: no weight goes in force to be taken back at once — in-memory world, paused
//! time.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{InMemoryPlatform, Platform, Stage};
use serin_signals::Track;
use support::{SERVICE, World, canary_config, deadlines, rollback_reason, weights};

/// The canary grows to two instances, then raises its weight to 50%, which waits for the new
/// instance; the process dies during that wait and stays down past `maxDeploymentDuration`,
/// while the instance becomes ready. The resumed deployment rolls back from 25%.
#[tokio::test(start_paused = true)]
async fn a_raise_waiting_for_its_track_is_not_put_in_force_when_resumed_past_the_deadline() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(30), 0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setWeight":25},{"setCanaryScale":{"replicas":2}},{"setWeight":50},
                {"pause":{"duration":"10s"}}]"#,
        )
        .expect("steps"),
    );
    config.max_deployment_duration = Duration::from_secs(600);
    config.blue_green_config.readiness_timeout = Duration::from_secs(300);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    // Until the raise to 50% is journalled as waiting for the grown track.
    loop {
        let last = world.journal.all().last().cloned().expect("records");
        if last.state.stage == Stage::Canary && last.state.readiness_since.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(h.status().weight, 25.0, "{:?}", h.status());
    h.kill();
    // The new instance becomes ready while the process is down, past the deadline.
    for _ in 0..40 {
        let _ = world.platform.status(SERVICE, &Track::Canary).await;
    }
    tokio::time::sleep(Duration::from_secs(700)).await;

    let report = world.resumed(&id).await;
    println!("{report}");
    assert_eq!(weights(&report.timeline), vec![25.0, 0.0], "{report}");
    assert!(
        rollback_reason(&report).contains("maxDeploymentDuration"),
        "{report}"
    );
    assert_eq!(deadlines(&report).len(), 1, "{report}");
}
