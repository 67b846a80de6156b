//! Which backup a rollback to an earlier version restores: the deployments it undoes include
//! those that got as far as a contract migration before they failed, and a contract migration
//! that failed may be partly carried out, and only one of a release above the target is
//! destructive for it. A rollback whose restored version then fails does not end as a clean
//! rollback: the newer version serves again over the restored database. A rollback whose
//! pre-upgrade step fails stops before its restore, with the database untouched.

use crate::support;

use std::sync::{Arc, Mutex};

use serin_compat::steps::StepKind;
use serin_orchestrator::{InMemoryBackup, InMemoryStepRunner, Orchestrator, Outcome, StepStatus};
use support::{SERVICE, World, canary_config, flagged_validator, run_to_end, v};

/// 1.0.0 serving under traffic, 1.1.0 and 1.2.0 healthy.
async fn serving() -> (Arc<World>, tokio::task::JoinHandle<()>) {
    let world = Arc::new(World::new());
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        world.set_rate(version, 0.005);
    }
    world.install("1.0.0").await;
    let traffic = world.spawn_traffic();
    (world, traffic)
}

fn orchestrator(world: &World, backup: &Arc<InMemoryBackup>) -> Orchestrator {
    world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(Arc::new(InMemoryStepRunner::new())),
    )
}

/// Carries out every step, but never answers for the steps of kind `hang`.
struct HangOn {
    hang: StepKind,
    called: Mutex<Vec<StepKind>>,
}

impl HangOn {
    fn called(&self, kind: StepKind) -> bool {
        self.called.lock().expect("lock").contains(&kind)
    }
}

#[async_trait::async_trait]
impl serin_orchestrator::StepRunner for HangOn {
    fn name(&self) -> &str {
        "hang-on"
    }

    async fn run(
        &self,
        _deployment: &str,
        step: &serin_compat::Step,
    ) -> serin_orchestrator::Result<Option<String>> {
        self.called.lock().expect("lock").push(step.kind);
        if step.kind == self.hang {
            std::future::pending::<()>().await;
        }
        Ok(Some(format!("{:?} done", step.kind)))
    }
}

fn hanging(
    world: &World,
    backup: &Arc<InMemoryBackup>,
    hang: StepKind,
) -> (Orchestrator, Arc<HangOn>) {
    let runner = Arc::new(HangOn {
        hang,
        called: Mutex::new(Vec::new()),
    });
    let o = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    (o, runner)
}

#[tokio::test(start_paused = true)]
async fn a_deployment_abandoned_after_its_contract_migration_is_undone_with_its_backup() {
    let (world, _traffic) = serving().await;
    let backup = Arc::new(InMemoryBackup::new());
    let (o, runner) = hanging(&world, &backup, StepKind::Cleanup);
    let handle = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    let id = handle.id().to_owned();
    while !runner.called(StepKind::Cleanup) {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    assert!(runner.called(StepKind::ContractMigration));
    handle.kill();
    let before = backup.taken()[0].0.clone();
    let o = orchestrator(&world, &backup);
    let abandoned = o
        .abandon(&id, "the process is gone")
        .await
        .expect("abandon");
    assert!(matches!(abandoned.outcome, Some(Outcome::Failed { .. })));
    let report = o
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(
        backup.restored(),
        [before],
        "the backup before 0003_drop_fax"
    );
}

#[tokio::test(start_paused = true)]
async fn a_contract_migration_that_failed_may_be_partly_carried_out_and_is_undone_with_its_backup()
{
    let (world, _traffic) = serving().await;
    let backup = Arc::new(InMemoryBackup::new());
    let (o, _runner) = hanging(&world, &backup, StepKind::ContractMigration);
    let up = run_to_end(&o, &canary_config("1.1.0")).await;
    let contract = up
        .checklist
        .iter()
        .find(|s| s.step.kind == StepKind::ContractMigration)
        .expect("contract step");
    assert_eq!(contract.status, StepStatus::Failed, "{up}");
    let before = backup.taken()[0].0.clone();
    let report = orchestrator(&world, &backup)
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.restored(), [before]);
}

#[tokio::test(start_paused = true)]
async fn a_restoring_rollback_whose_version_fails_ends_as_failed_naming_the_database() {
    let (world, _traffic) = serving().await;
    let backup = Arc::new(InMemoryBackup::new());
    let o = orchestrator(&world, &backup);
    let up = run_to_end(&o, &canary_config("1.1.0")).await;
    assert_eq!(up.outcome, Some(Outcome::Succeeded));
    let before = backup.taken()[0].0.clone();
    // 1.0.0 has since gone bad: the rollback's own trigger switches 1.1.0 back.
    world.set_rate("1.0.0", 0.5);
    let report = o
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_eq!(backup.restored(), std::slice::from_ref(&before));
    assert_eq!(
        world
            .live_version()
            .await
            .map(|(_, version)| version)
            .as_deref(),
        Some("1.1.0")
    );
    let fresh = backup.taken()[1].0.clone();
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("not a clean rollback: {:?}", report.outcome);
    };
    assert!(
        reason.contains(&format!("backup {before} had been restored for 1.0.0"))
            && reason.contains(&format!("restore backup {fresh}")),
        "{reason}"
    );
}

/// 1.0.0 -> 1.1.0 (drops a column) -> 1.2.0, back to 1.0.0, forward again to 1.2.0 (which runs
/// 1.1.0's migrations again): rolling 1.2.0 back to 1.1.0 then crosses only 1.1.0's own
/// contract migration, which 1.1.0 runs with, and restores nothing, as a direct rollback from
/// 1.2.0 to 1.1.0 does.
#[tokio::test(start_paused = true)]
async fn a_contract_migration_of_the_target_release_is_no_reason_to_restore() {
    let (world, _traffic) = serving().await;
    let backup = Arc::new(InMemoryBackup::new());
    let o = orchestrator(&world, &backup);
    let config = canary_config("1.2.0");
    for version in ["1.1.0", "1.2.0"] {
        let up = run_to_end(&o, &canary_config(version)).await;
        assert_eq!(up.outcome, Some(Outcome::Succeeded), "{up}");
    }
    for version in ["1.0.0", "1.2.0"] {
        let moved = o
            .rollback_to(&config, SERVICE, v(version))
            .await
            .expect("rollback_to");
        assert_eq!(moved.outcome, Some(Outcome::Succeeded), "{moved}");
    }
    let restored = backup.restored();
    assert_eq!(restored.len(), 1, "back to 1.0.0 restored: {restored:?}");
    let report = o
        .rollback_to(&config, SERVICE, v("1.1.0"))
        .await
        .expect("rollback_to");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.restored(), restored, "nothing more was restored");
    // Back to 1.0.0, below the release of the migration, restores again.
    let report = o
        .rollback_to(&config, SERVICE, v("1.0.0"))
        .await
        .expect("rollback_to");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.restored().len(), 2);
}

/// The rollback's feature-flag step fails: the restore, which comes after the pre-upgrade
/// steps, is not made, so 1.1.0 serves on over the database it ran on and nothing was
/// deployed; the restore point is still there for the next try.
#[tokio::test(start_paused = true)]
async fn a_rollback_whose_pre_upgrade_step_fails_leaves_the_database_unrestored() {
    let (world, _traffic) = serving().await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let (validator, fleet) = flagged_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .backup(backup.clone())
        .step_runner(runner.clone())
        .build();
    let up = run_to_end(&o, &canary_config("1.1.0")).await;
    assert_eq!(up.outcome, Some(Outcome::Succeeded), "{up}");
    let before = backup.taken()[0].0.clone();
    runner.fail_next("the flag service is down");
    let report = o
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("{report}");
    };
    assert!(
        reason.contains("the flag service is down") && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert!(backup.restored().is_empty(), "{:?}", backup.restored());
    assert_eq!(backup.taken().len(), 2, "the fresh backup was taken");
    assert_eq!(
        world
            .live_version()
            .await
            .map(|(_, version)| version)
            .as_deref(),
        Some("1.1.0")
    );
    let again = o
        .rollback_to(&canary_config("1.1.0"), SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_eq!(again.outcome, Some(Outcome::Succeeded), "{again}");
    assert_eq!(backup.restored(), [before]);
}
