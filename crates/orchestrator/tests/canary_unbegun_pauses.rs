//! Canary pause steps the rollout has not reached yet: the dry run lists a pause before the
//! first weight (an approval before any traffic, or a wait at 0%), and an operator's resume
//! before the canary reaches a pause step neither ends that step nor is announced as a resume
//! — in-memory world, paused time.

use crate::support;

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, EventKind, InMemoryPlatform, Outcome, Stage};
use serin_signals::Track;
use support::{World, canary_config, until_stage};

/// [`canary_config`] of 1.1.0 with `steps` (JSON).
fn with_steps(steps: &str) -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    support::written_steps(&mut config, serde_json::from_str(steps).expect("steps"));
    config.validate().expect("valid");
    config
}

/// A pause before the first weight holds the canary at 0%: the dry run says so, as it says how
/// long every later weight holds.
#[tokio::test(start_paused = true)]
async fn the_dry_run_lists_a_pause_before_the_first_weight() {
    let world = World::new();
    world.install("1.0.0").await;
    for (steps, said) in [
        (
            r#"[{"pause":{}},{"setWeight":20},{"pause":{"duration":"1m"}}]"#,
            "weights 0% held until resumed → 20% held 1m",
        ),
        (
            r#"[{"pause":{"duration":"1m"}},{"setWeight":10},{"pause":{"duration":"30s"}}]"#,
            "weights 0% held 1m → 10% held 30s",
        ),
    ] {
        let step = world.canary_step(&with_steps(steps)).await;
        assert!(step.contains(said), "`{said}` not in: {step}");
    }
}

/// A canary whose first step is an indefinite pause, paused by an operator while its track
/// starts: the resume lifts the operator's pause only. The pause step has not begun (the
/// canary had not reached it), so it then waits for its own resume, as Argo Rollouts adds a
/// pause step's condition only once the rollout reaches it.
#[tokio::test(start_paused = true)]
async fn a_resume_of_a_pause_taken_before_the_first_step_does_not_end_that_step() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let config = with_steps(r#"[{"pause":{}},{"setWeight":20},{"pause":{"duration":"1m"}}]"#);
    let h = world.start(&config).await;
    until_stage(&h, Stage::WaitReady).await;
    h.pause().await.expect("pause");
    until_stage(&h, Stage::Canary).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(600)).await;
    let status = h.status();
    assert_eq!(
        (status.stage, status.weight, status.paused),
        (Stage::Canary, 0.0, false),
        "the approval step still waits: {status:?}"
    );
    h.resume().await.expect("the approval");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.status().weight, 20.0, "{:?}", h.status());
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// A resume with nothing paused, while the canary grows for the weight before an indefinite
/// pause step, resumes nothing: the step has not begun, and no resume is announced. The
/// resume that ends the step once the weight is in force is.
#[tokio::test(start_paused = true)]
async fn a_resume_before_the_canary_reaches_a_pause_step_announces_no_resume() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let mut config = with_steps(
        r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
            {"pause":{"duration":"1m"}},{"setWeight":75},{"pause":{}},{"setWeight":90},
            {"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    config.validate().expect("valid");
    let h = world.start(&config).await;
    // Growing for 75%: three instances, the new ones not ready.
    while world.instances_of(&Track::Canary).await < 3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(h.status().weight, 75.0, "held at the pause step after 75%");
    h.resume().await.expect("resume");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let resumed = report
        .timeline
        .iter()
        .filter(|e| e.kind == EventKind::Resumed)
        .count();
    assert_eq!(resumed, 1, "only the resume that ended the step: {report}");
}
