//! A deployment that stopped between "backup started" and "backup confirmed" takes no second
//! backup when it resumes, neither through the backup provider nor through the checklist's
//! backup step: the step runner is not asked for it, and the step is left to an operator,
//! saying what to check.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_compat::steps::StepKind;
use serin_orchestrator::{
    BackupProvider, InMemoryBackup, InMemoryStepRunner, Orchestrator, Outcome, Report, StepStatus,
};
use support::{HangingBackup, SERVICE, World, bounded, canary_within, checklist_validator};

/// An orchestrator on `world` with the [`checklist_validator`] (whose checklist has a backup
/// step before the deployment), `backup` and `runner`.
fn orchestrator(
    world: &World,
    backup: Arc<dyn BackupProvider>,
    runner: Arc<InMemoryStepRunner>,
) -> Orchestrator {
    let (validator, fleet) = checklist_validator();
    world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(backup)
        .step_runner(runner)
        .build()
}

/// The checklist's backup step of `report`.
fn backup_step(report: &Report) -> &serin_orchestrator::UpgradeStep {
    report
        .checklist
        .iter()
        .find(|s| s.step.kind == StepKind::Backup && s.step.service == SERVICE)
        .expect("a backup step")
}

#[tokio::test(start_paused = true)]
async fn a_backup_unconfirmed_after_a_restart_is_not_taken_again_by_the_checklist() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let provider = HangingBackup::over(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    provider.hang_backup.store(true, Ordering::SeqCst);
    let first = orchestrator(&world, provider.clone(), runner.clone());
    let h = first
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    // The process stops while the provider takes the backup: its start is journalled, its
    // end is not.
    provider.stall.until_hung().await;
    h.kill();
    provider.hang_backup.store(false, Ordering::SeqCst);
    // After the restart the catalog cannot say whether the backup exists.
    provider.inner.fail_next_list("catalog unreachable");
    let resumed = orchestrator(&world, provider.clone(), runner.clone());
    let report = bounded(
        "the resumed deployment",
        support::resume_to_end(&resumed, &id),
    )
    .await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert!(
        provider.inner.taken().is_empty(),
        "no backup through the provider"
    );
    let asked: Vec<_> = runner
        .ran()
        .into_iter()
        .filter(|(_, step)| step.kind == StepKind::Backup)
        .collect();
    assert!(
        asked.is_empty(),
        "the runner took a second backup: {asked:?}"
    );
    let step = backup_step(&report);
    assert_eq!(step.status, StepStatus::Due, "{step}");
    let evidence = step.evidence.as_deref().unwrap_or_default();
    assert!(
        evidence.contains("cannot be confirmed")
            && evidence.contains("catalog unreachable")
            && evidence.contains("not taken again")
            && evidence.contains("check the backups of web"),
        "{evidence}"
    );
}

/// The backup found again after the restart is the checklist's backup: done, with its id.
#[tokio::test(start_paused = true)]
async fn a_backup_found_after_a_restart_is_the_checklists_backup() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let provider = HangingBackup::over(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    // The backup takes a minute; the process stops once it is taken, before its id is
    // journalled.
    *provider.backup_takes.lock().expect("backup_takes") = Duration::from_secs(60);
    let first = orchestrator(&world, provider.clone(), runner.clone());
    let h = first
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    while provider.inner.taken().is_empty() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    h.kill();
    let resumed = orchestrator(&world, provider.clone(), runner.clone());
    let report = bounded(
        "the resumed deployment",
        support::resume_to_end(&resumed, &id),
    )
    .await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let taken = provider.inner.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(report.backup.as_deref(), Some(taken[0].0.as_str()));
    assert!(
        runner.ran().iter().all(|(_, s)| s.kind != StepKind::Backup),
        "{:?}",
        runner.ran()
    );
    let step = backup_step(&report);
    assert_eq!(step.status, StepStatus::Done, "{step}");
    assert_eq!(
        step.evidence.as_deref(),
        Some(format!("backup {}", taken[0].0).as_str())
    );
}
