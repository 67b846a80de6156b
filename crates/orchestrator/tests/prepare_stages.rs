//! Validation and preparation as a user running database migrations sees them: the validator
//! routes the upgrade from the version that runs, a blocked upgrade or a failed pre-check
//! changes nothing and holds nothing, a failed preparation moves no traffic and runs no
//! post-upgrade step, and the report says what was done.

use crate::support;

use std::sync::Arc;

use serin_compat::Fleet;
use serin_compat::steps::StepKind;
use serin_orchestrator::{
    EventKind, InMemoryBackup, InMemoryStepRunner, Outcome, Platform, StepStatus, TrackSpec,
};
use serin_signals::{HealthSignal, Probe, ProbeStatus, Track};
use support::{
    SERVICE, World, assert_succeeded, canary_config, checklist_validator, run_to_end, v,
    yanking_validator,
};

/// The running version's `postgres` dependency check reports `status` now.
fn postgres_check(world: &World, status: ProbeStatus) {
    world
        .health
        .record(HealthSignal::new(
            Track::Stable,
            Probe::Dependency("postgres".into()),
            status,
            world.clock.now(),
        ))
        .expect("record");
}

#[tokio::test(start_paused = true)]
async fn a_blocked_upgrade_takes_no_backup_runs_no_step_and_holds_no_lock() {
    let world = World::installed().await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let (validator, fleet) = yanking_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(backup.clone())
        .step_runner(runner.clone())
        .build();
    let applies = world.router.apply_count();
    for _ in 0..2 {
        // The second start is refused if the first left the service's lock held.
        let report = run_to_end(&o, &canary_config("1.1.0")).await;
        let Some(Outcome::Blocked { reason }) = &report.outcome else {
            panic!("expected blocked, got {report}");
        };
        assert!(reason.contains("yanked"), "{reason}");
        assert_eq!(report.backup, None);
    }
    assert!(backup.taken().is_empty(), "{:?}", backup.taken());
    assert!(runner.ran().is_empty());
    assert_eq!(world.router.apply_count(), applies, "nothing changed");
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_failed_pre_check_takes_no_backup() {
    let world = World::installed().await;
    postgres_check(&world, ProbeStatus::Fail);
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(reason.contains("pre-check"), "{reason}");
    assert!(backup.taken().is_empty());
    assert!(runner.ran().is_empty());
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_failed_backup_runs_no_step_and_brings_nothing_up() {
    let world = World::installed().await;
    let backup = Arc::new(InMemoryBackup::new());
    backup.fail_next("disk full");
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    let applies = world.router.apply_count();
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(reason.contains("disk full"), "{reason}");
    assert!(runner.ran().is_empty());
    assert_eq!(world.router.apply_count(), applies);
    assert!(!world.has_track(&Track::Canary).await);
    assert!(
        report
            .checklist
            .iter()
            .all(|s| s.status == StepStatus::Pending),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_upgrade_runs_no_post_upgrade_step() {
    let (world, _traffic) = World::serving(0.005, 0.5).await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    assert!(report.backup.is_some());
    let post: Vec<_> = report
        .checklist
        .iter()
        .filter(|s| s.step.phase == serin_compat::steps::StepPhase::After)
        .collect();
    assert!(!post.is_empty());
    assert!(
        post.iter().all(|s| s.status == StepStatus::Pending),
        "{report}"
    );
    assert!(
        runner
            .ran()
            .iter()
            .all(|(_, s)| s.phase != serin_compat::steps::StepPhase::After)
    );
    let kinds: Vec<&EventKind> = report.timeline.iter().map(|e| &e.kind).collect();
    assert!(
        kinds
            .iter()
            .any(|k| matches!(k, EventKind::BackupTaken { .. }))
    );
}

/// Whether `kind` is a migration step.
fn is_migration(kind: StepKind) -> bool {
    matches!(
        kind,
        StepKind::ExpandMigration | StepKind::ContractMigration
    )
}

#[tokio::test(start_paused = true)]
async fn the_validator_takes_the_version_the_platform_runs_over_a_stale_fleet() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world.set_rate("1.2.0", 0.005);
    let first = world.checklist_orchestrator(
        world.journal.clone(),
        None,
        Some(Arc::new(InMemoryStepRunner::new())),
    );
    assert_succeeded(&run_to_end(&first, &canary_config("1.1.0")).await);
    // A new process, built with the fleet as it was before 1.1.0 (`web: 1.0.0`): 1.1.0's
    // migrations ran, and must not run again on the way to 1.2.0.
    let runner = Arc::new(InMemoryStepRunner::new());
    let second = world.checklist_orchestrator(world.journal.clone(), None, Some(runner.clone()));
    // The dry run routes as the run does.
    let plan = second.plan(&canary_config("1.2.0")).await.expect("plan");
    assert!(
        plan[0].checklist.iter().all(|s| !is_migration(s.kind)),
        "{:?}",
        plan[0].checklist
    );
    let report = run_to_end(&second, &canary_config("1.2.0")).await;
    assert_succeeded(&report);
    assert!(
        runner.ran().iter().all(|(_, s)| !is_migration(s.kind)),
        "{:?}",
        runner.ran()
    );
    assert!(
        report.checklist.iter().all(|s| !is_migration(s.step.kind)),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_validator_takes_the_version_the_platform_runs_over_a_fleet_ahead_of_it() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (validator, _) = checklist_validator();
    // The fleet says 1.1.0 runs (a rollback done by hand since), the platform runs 1.0.0:
    // deploying 1.1.0 is no no-op, and its expand migration runs before it.
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = world
        .builder(world.journal.clone())
        .validator(validator, Fleet::new().with(SERVICE, v("1.1.0")))
        .step_runner(runner.clone())
        .build();
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    assert_succeeded(&report);
    assert!(
        runner
            .ran()
            .iter()
            .any(|(_, s)| s.kind == StepKind::ExpandMigration),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_dependency_whose_check_could_not_run_fails_the_pre_check() {
    let world = World::installed().await;
    postgres_check(&world, ProbeStatus::Unknown);
    let backup = Arc::new(InMemoryBackup::new());
    let o = world
        .builder(world.journal.clone())
        .backup(backup.clone())
        .build();
    let applies = world.router.apply_count();
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(
        reason.contains("pre-check")
            && reason.contains("postgres")
            && reason.contains("unknown")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert!(backup.taken().is_empty());
    assert_eq!(world.router.apply_count(), applies);
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_away_from_a_crashing_version_is_not_refused_by_its_pre_check() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let o = world.orchestrator();
    assert_succeeded(&run_to_end(&o, &canary_config("1.1.0")).await);
    let (track, _) = world.live_version().await.expect("1.1.0 serves");
    let status = world
        .platform
        .status(SERVICE, &track)
        .await
        .expect("status");
    world
        .platform
        .kill(SERVICE, &track, &status.instances[0].id, "segfault")
        .expect("kill");
    // The version it escapes is unhealthy: that is why it rolls back.
    let back = o
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_succeeded(&back);
    let (_, live) = world.live_version().await.expect("1.0.0 serves");
    assert_eq!(live, "1.0.0");
    // Moving forward from an unhealthy version is still refused.
    let status = world
        .platform
        .status(SERVICE, &back.to.track)
        .await
        .expect("status");
    world
        .platform
        .kill(SERVICE, &back.to.track, &status.instances[0].id, "segfault")
        .expect("kill");
    let forward = run_to_end(&o, &canary_config("1.1.0")).await;
    let Some(Outcome::Failed { reason }) = &forward.outcome else {
        panic!("expected failed, got {forward}");
    };
    assert!(
        reason.contains("pre-check") && reason.contains("not healthy"),
        "{reason}"
    );
}

/// The dry run marks refused what `start` refuses before anything changes: a new track that
/// runs already (left by a deployment that was never finished, say).
#[tokio::test(start_paused = true)]
async fn the_dry_run_refuses_a_new_track_that_runs_already_as_start_does() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let o = world.orchestrator();
    let config = canary_config("1.1.0");
    let plan = o.plan(&config).await.expect("plan");
    assert!(!plan[0].steps[0].contains("REFUSED"), "{}", plan[0]);
    world
        .platform
        .bring_up(&TrackSpec::new(SERVICE, "1.1.0", Track::Canary, 1).expect("spec"))
        .await
        .expect("bring up");
    let plan = o.plan(&config).await.expect("plan");
    assert!(
        plan[0].steps[0].starts_with("start: REFUSED — track canary already runs 1.1.0"),
        "{}",
        plan[0]
    );
    let Err(err) = o.start(&config, SERVICE).await else {
        panic!("start refuses a new track that runs already");
    };
    assert!(err.to_string().contains("already runs 1.1.0"), "{err}");
}
