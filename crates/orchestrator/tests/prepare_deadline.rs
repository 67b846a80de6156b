//! A deadline that ends a deployment in preparation (a pre-check, the backup, a restore or a
//! pre-upgrade step that does not answer in time, or one whose turn comes past it) is
//! announced in the timeline, with the phase and what follows, as one in a later phase is:
//! a report reader sees why the deployment failed. An operator's abort is no deadline.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{EventKind, Orchestrator, Phase, Report, Result, StepRunner};
use support::{
    HangingBackup, SERVICE, SilentHealth, World, abort_to_end, backing_up, bounded, canary_within,
    checklist_validator, deadlines, failed_reason, v,
};

/// `maxDeploymentDuration` of every deployment here.
const MAX: Duration = Duration::from_secs(20 * 60);

/// Asserts that `report` failed in preparation for `maxDeploymentDuration` (20m), announced
/// once, before the end, saying that nothing rolls back, in a sentence its `Display` shows.
fn assert_preparation_deadline(report: &Report) {
    println!("{report}");
    let reason = failed_reason(report);
    assert!(reason.contains("maxDeploymentDuration (20m)"), "{reason}");
    let seen = deadlines(report);
    let [(at, phase, action)] = seen.as_slice() else {
        panic!("one deadline event expected: {seen:?}\n{report}");
    };
    assert_eq!(*phase, Phase::Preparation, "{report}");
    assert!(
        action.contains("maxDeploymentDuration (20m) ran out before anything was deployed")
            && action.contains("nothing to roll back"),
        "{action}"
    );
    assert!(*at < report.timeline.len() - 1, "before the end: {report}");
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::RollbackStarted { .. })),
        "{report}"
    );
    let shown = report.timeline[*at].kind.to_string();
    assert!(shown.contains("deadline reached in preparation"), "{shown}");
}

/// Runs the canary of 1.1.0 within [`MAX`] on `o` to its end.
async fn deployed(o: &Orchestrator) -> Report {
    let h = o.start(&canary_within(MAX), SERVICE).await.expect("start");
    bounded("the deployment", h.wait()).await.expect("report")
}

#[tokio::test(start_paused = true)]
async fn a_backup_cancelled_at_the_deadline_is_announced() {
    let provider = Arc::new(HangingBackup::default());
    provider.hang_backup.store(true, Ordering::SeqCst);
    let (_world, o) = backing_up(provider).await;
    assert_preparation_deadline(&deployed(&o).await);
}

/// A backup that takes all the time there was leaves the pre-upgrade steps past the deadline:
/// they are not started, and the deadline says so.
#[tokio::test(start_paused = true)]
async fn a_step_whose_turn_comes_past_the_deadline_is_announced() {
    let provider = Arc::new(HangingBackup::default());
    *provider.backup_takes.lock().expect("lock") = MAX;
    let world = World::installed().await;
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(provider)
        .step_runner(Arc::new(Stuck))
        .build();
    let report = deployed(&o).await;
    assert!(failed_reason(&report).contains("was not started"));
    assert_preparation_deadline(&report);
}

#[tokio::test(start_paused = true)]
async fn a_pre_check_cancelled_at_the_deadline_is_announced() {
    let world = World::installed().await;
    let health = Arc::new(SilentHealth::new(world.health.clone()));
    health.hang.store(true, Ordering::SeqCst);
    let backends = serin_orchestrator::ServiceBackends::new(
        world.router.clone(),
        world.source.clone(),
        health,
    );
    let o = world
        .builder_on(world.platform.clone(), backends, world.journal.clone())
        .build();
    assert_preparation_deadline(&deployed(&o).await);
}

/// A step runner whose steps never answer, as a migration tool stuck on a lock.
struct Stuck;

#[async_trait]
impl StepRunner for Stuck {
    fn name(&self) -> &str {
        "stuck"
    }

    async fn run(&self, _deployment: &str, _step: &serin_compat::Step) -> Result<Option<String>> {
        std::future::pending().await
    }
}

/// An installed world whose orchestrator's pre-upgrade step never answers.
async fn with_a_stuck_step() -> (Arc<World>, Orchestrator) {
    let world = World::installed().await;
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .step_runner(Arc::new(Stuck))
        .build();
    (world, o)
}

#[tokio::test(start_paused = true)]
async fn a_pre_upgrade_step_cancelled_at_the_deadline_is_announced() {
    let (_world, o) = with_a_stuck_step().await;
    assert_preparation_deadline(&deployed(&o).await);
}

#[tokio::test(start_paused = true)]
async fn a_restore_cancelled_at_the_deadline_is_announced() {
    let provider = Arc::new(HangingBackup::default());
    let (_world, o) = support::upgraded(provider.clone(), MAX).await;
    provider.hang_restore.store(true, Ordering::SeqCst);
    let report = bounded(
        "the rollback",
        o.rollback_to(&canary_within(MAX), SERVICE, v("1.0.0")),
    )
    .await
    .expect("report");
    assert_preparation_deadline(&report);
}

/// An operator's abort that ends preparation is no deadline: none is announced.
#[tokio::test(start_paused = true)]
async fn an_abort_in_preparation_announces_no_deadline() {
    let provider = Arc::new(HangingBackup::default());
    provider.hang_backup.store(true, Ordering::SeqCst);
    let (_world, o) = backing_up(provider.clone()).await;
    let h = o.start(&canary_within(MAX), SERVICE).await.expect("start");
    provider.stall.until_hung().await;
    let (_, report) = abort_to_end(&o, h).await;
    assert!(failed_reason(&report).contains("aborted by an operator"));
    assert_eq!(deadlines(&report), Vec::new(), "{report}");
}

/// Nor is one that cancels a pre-upgrade step.
#[tokio::test(start_paused = true)]
async fn an_abort_of_a_pre_upgrade_step_announces_no_deadline() {
    let (_world, o) = with_a_stuck_step().await;
    let h = o.start(&canary_within(MAX), SERVICE).await.expect("start");
    tokio::time::sleep(Duration::from_secs(60)).await;
    let (_, report) = abort_to_end(&o, h).await;
    assert!(failed_reason(&report).contains("aborted by an operator"));
    assert_eq!(deadlines(&report), Vec::new(), "{report}");
}
