//! A deployment resumed once `maxDeploymentDuration` has run out moves nothing more towards the
//! new version: no weight goes in force to be taken back at once, and no track comes up to be
//! retired at once — in-memory world, paused time.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{EventKind, InMemoryPlatform, Outcome, Platform, Stage};
use serin_signals::Track;
use support::{
    SERVICE, World, canary_config, deadlines, failed_reason, rollback_reason, short_canary_config,
    weights,
};

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

/// The process dies right after preparation is journalled, before the new track is brought
/// up, and stays down past `maxDeploymentDuration`. The resumed deployment fails with nothing
/// deployed, as one whose deadline runs out in preparation does, rather than start the new
/// version only to retire it.
#[tokio::test(start_paused = true)]
async fn a_deployment_resumed_past_the_deadline_before_its_bring_up_starts_nothing() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = short_canary_config("1.1.0");
    config.max_deployment_duration = Duration::from_secs(600);
    config.validate().expect("valid");
    let before = world.journal.len();
    // The first record starts the deployment, the second ends its validation.
    let last = support::crash_at(&world, world.orchestrator(), config, before + 2).await;
    assert_eq!(
        last.state.stage,
        Stage::Preparation,
        "{:?}",
        last.state.stage
    );
    tokio::time::sleep(Duration::from_secs(700)).await;

    let report = world.resumed(&last.deployment).await;
    println!("{report}");
    assert!(
        matches!(report.outcome, Some(Outcome::Failed { .. })),
        "{report}"
    );
    let reason = failed_reason(&report);
    assert!(
        reason.contains("maxDeploymentDuration") && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::TrackStarted { .. })),
        "{report}"
    );
    assert!(
        !world.has_track(&Track::Canary).await,
        "nothing was brought up"
    );
    assert_eq!(deadlines(&report).len(), 1, "{report}");
}
