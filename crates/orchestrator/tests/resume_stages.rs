//! Crashes and failed journal writes at the stages whose actions are not simple idempotent
//! effects: the retire of the old version at completion (after which only finishing forward is
//! safe), the backup, restore and upgrade steps of preparation and completion (journalled as
//! started before they are carried out, never repeated blindly), the wait for the new track's
//! readiness (which serves an operator's abort, and whose timeout counts from its journalled
//! start) and the promotion of a canary (finished on resume, paused or not).

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_canary::controller::Action;
use serin_compat::steps::StepKind;
use serin_orchestrator::backup::Retention;
use serin_orchestrator::{
    BackupProvider, DeploymentConfig, Effect, EventKind, InFlight, InMemoryBackup,
    InMemoryPlatform, InMemoryStepRunner, Journal, OnResume, Orchestrator, Outcome, Platform,
    Record, Report, Stage, StepStatus, StrategyKind, TrafficStrategyKind,
};
use serin_signals::Track;
use support::{
    Fault, Faulty, SERVICE, World, blue_green_config, canary_config, flagged_validator, kinds,
    resume_to_end, run_to_end, short_canary_config, until_stage, v,
};

/// A canary short enough to run in a few virtual minutes.
fn short_canary() -> DeploymentConfig {
    let mut config = short_canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    config.validate().expect("valid");
    config
}

/// Waits (in virtual time) until `done` holds of the journal's records of the deployments.
async fn until_journal(world: &World, what: &str, done: impl Fn(&[Record]) -> bool) {
    for _ in 0..20_000 {
        if done(&world.journal.all()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never happened: {what}");
}

async fn tracks(world: &World) -> Vec<(Track, String)> {
    world
        .platform
        .list()
        .await
        .expect("list")
        .into_iter()
        .filter(|t| t.service == SERVICE)
        .map(|t| (t.track, t.version.to_string()))
        .collect()
}

// ---- 1: after the old version's retire is journalled, only forward ----

fn retires_stable(r: &Record) -> bool {
    r.state.stage == Stage::Completion
        && r.effects
            .iter()
            .any(|e| matches!(e, Effect::Retire { track, .. } if *track == Track::Stable))
}

/// A canary of 1.1.0 over 1.0.0 (`config`), killed right after the record that retires the
/// old version; returns the deployment's id.
async fn killed_after_the_retire(world: &Arc<World>, config: DeploymentConfig) -> String {
    let journal = Faulty::new(world, Fault::Stall, retires_stable);
    let o = world.orchestrator_over(journal.clone());
    let h = o.start(&config, SERVICE).await.expect("start");
    let id = h.id().to_owned();
    until_journal(world, "the retire's record", |_| journal.fired()).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    h.kill();
    id
}

#[tokio::test(start_paused = true)]
async fn on_resume_rollback_after_the_old_version_was_retired_finishes_forward() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = short_canary();
    config.on_resume = OnResume::Rollback;
    let id = killed_after_the_retire(&world, config).await;

    let report = world.resumed(&id).await;
    // Rolling back would send all traffic to the retired 1.0.0 and retire 1.1.0: an outage.
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    world.assert_live(Track::Canary, "1.1.0").await;
    assert_eq!(tracks(&world).await, vec![(Track::Canary, "1.1.0".into())]);
    assert!(
        !kinds(&report)
            .iter()
            .any(|k| matches!(k, EventKind::RollbackStarted { .. })),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_repeat_of_the_retire_on_resume_finishes_forward() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = short_canary();
    assert!(config.rollback_on_error);
    let id = killed_after_the_retire(&world, config).await;
    // The router is still restarting when the deployment resumes: repeating the record's
    // apply fails once.
    world.router.fail_next_apply("connection refused");

    let report = world.resumed(&id).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    world.assert_live(Track::Canary, "1.1.0").await;
    assert_eq!(tracks(&world).await, vec![(Track::Canary, "1.1.0".into())]);
}

#[tokio::test(start_paused = true)]
async fn a_failed_retire_ends_the_deployment_as_failed_and_never_routes_back_to_the_old_track() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = short_canary();
    // The old version stays warm for 40 s after the watch.
    config.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    let h = world.start(&config).await;
    until_stage(&h, Stage::Completion).await;
    // The next platform change is the retire of 1.0.0.
    world.platform.fail_next("drain interrupted");
    let report = h.wait().await.expect("report");
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected a failure, got {report}");
    };
    assert!(
        reason.contains("drain interrupted") && reason.contains("no rollback"),
        "{reason}"
    );
    world.assert_live(Track::Canary, "1.1.0").await;
    assert!(
        !kinds(&report)
            .iter()
            .any(|k| matches!(k, EventKind::RollbackStarted { .. })),
        "{report}"
    );
}

// ---- 2: backups, restores and upgrade steps are never repeated blindly ----

/// 1.0.0 runs under traffic; the world, its backup provider and step runner.
async fn with_checklist() -> (
    Arc<World>,
    tokio::task::JoinHandle<()>,
    Arc<InMemoryBackup>,
    Arc<InMemoryStepRunner>,
) {
    let (world, traffic) = World::serving(0.005, 0.005).await;
    (
        world,
        traffic,
        Arc::new(InMemoryBackup::new()),
        Arc::new(InMemoryStepRunner::new()),
    )
}

/// Starts `config` over a journal that fails the first append `pick` chooses; the run stops
/// there with a journal error, and a new orchestrator (with the same backup provider and step
/// runner, and `prepare` run first) resumes it from the journal. Returns the resumed report.
async fn failed_append_then_resumed(
    world: &World,
    config: &DeploymentConfig,
    backup: &Arc<InMemoryBackup>,
    runner: &Arc<InMemoryStepRunner>,
    pick: impl Fn(&Record) -> bool + Send + Sync + 'static,
    prepare: impl FnOnce(),
) -> Report {
    let journal = Faulty::new(world, Fault::Fail, pick);
    let first =
        world.checklist_orchestrator(journal.clone(), Some(backup.clone()), Some(runner.clone()));
    let h = first.start(config, SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let e = h.wait().await.expect_err("the journal failed");
    assert!(journal.fired(), "{e}");
    assert!(e.to_string().contains("no space left"), "{e}");
    prepare();
    let second = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    resume_to_end(&second, &id).await
}

/// How often the runner carried out each step, by its text.
fn runs(runner: &InMemoryStepRunner) -> Vec<(String, usize)> {
    let ran = runner.ran();
    let mut out: Vec<(String, usize)> = Vec::new();
    for (_, step) in &ran {
        match out.iter_mut().find(|(t, _)| *t == step.text) {
            Some((_, n)) => *n += 1,
            None => out.push((step.text.clone(), 1)),
        }
    }
    out
}

/// Each of the four steps the runner handles ran exactly once, and the checklist says done.
fn every_step_ran_once_and_is_done(report: &Report, runner: &InMemoryStepRunner) {
    let runs = runs(runner);
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|(_, n)| *n == 1), "{runs:?}");
    assert!(
        report
            .checklist
            .iter()
            .all(|s| s.status == StepStatus::Done),
        "{:?}",
        report.checklist
    );
}

/// [`failed_append_then_resumed`] for the canary of 1.1.0 with its checklist on a fresh world,
/// with nothing to prepare: the resumed report must say the deployment succeeded.
async fn succeeds_after_a_failed_append(
    pick: impl Fn(&Record) -> bool + Send + Sync + 'static,
) -> (Report, Arc<InMemoryBackup>, Arc<InMemoryStepRunner>) {
    let (world, _traffic, backup, runner) = with_checklist().await;
    let report =
        failed_append_then_resumed(&world, &short_canary(), &backup, &runner, pick, || {}).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    (report, backup, runner)
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_after_preparation_takes_no_second_backup_and_runs_no_step_twice() {
    let (report, backup, runner) =
        succeeds_after_a_failed_append(|r| r.state.stage == Stage::BringUp).await;
    let taken = backup.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(report.backup.as_deref(), Some(taken[0].0.as_str()));
    every_step_ran_once_and_is_done(&report, &runner);
}

#[tokio::test(start_paused = true)]
async fn a_failed_write_of_the_end_runs_no_post_upgrade_step_twice() {
    let (report, backup, runner) =
        succeeds_after_a_failed_append(|r| r.state.stage == Stage::Done).await;
    every_step_ran_once_and_is_done(&report, &runner);
    assert_eq!(backup.taken().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_step_whose_end_was_not_journalled_is_handed_to_an_operator_not_run_again() {
    // The expand migration ran, and the record of its end could not be written.
    let expand_done = |r: &Record| {
        r.state.checklist.iter().any(|s| {
            s.step.kind == serin_compat::steps::StepKind::ExpandMigration
                && s.status == StepStatus::Done
        })
    };
    let (report, _backup, runner) = succeeds_after_a_failed_append(expand_done).await;
    let runs = runs(&runner);
    assert!(runs.iter().all(|(_, n)| *n == 1), "{runs:?}");
    let expand = report
        .checklist
        .iter()
        .find(|s| s.step.kind == serin_compat::steps::StepKind::ExpandMigration)
        .expect("an expand migration");
    assert_eq!(expand.status, StepStatus::Due, "{expand}");
    assert!(
        expand
            .evidence
            .as_deref()
            .is_some_and(|e| e.contains("not run again")),
        "{expand}"
    );
    // Every other step was carried out once.
    assert!(
        report
            .checklist
            .iter()
            .filter(|s| s.step.kind != serin_compat::steps::StepKind::ExpandMigration)
            .all(|s| s.status == StepStatus::Done),
        "{:?}",
        report.checklist
    );
}

fn backup_named(r: &Record) -> bool {
    r.state.backup.is_some()
}

#[tokio::test(start_paused = true)]
async fn a_backup_whose_id_was_not_journalled_is_found_again_not_taken_twice() {
    let (report, backup, _runner) = succeeds_after_a_failed_append(backup_named).await;
    let taken = backup.taken();
    assert_eq!(taken.len(), 1, "{taken:?}");
    assert_eq!(report.backup.as_deref(), Some(taken[0].0.as_str()));
    assert!(
        kinds(&report)
            .iter()
            .any(|k| matches!(k, EventKind::BackupTaken { id } if *id == taken[0].0))
    );
}

#[tokio::test(start_paused = true)]
async fn a_backup_that_cannot_be_looked_up_after_a_crash_is_not_taken_again() {
    let (world, _traffic, backup, runner) = with_checklist().await;
    let report = failed_append_then_resumed(
        &world,
        &short_canary(),
        &backup,
        &runner,
        backup_named,
        || backup.fail_next_list("catalog unreachable"),
    )
    .await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.taken().len(), 1, "{:?}", backup.taken());
    assert_eq!(report.backup, None);
    assert!(
        kinds(&report).iter().any(|k| matches!(
            k,
            EventKind::Anomaly { source, summary, .. }
                if source == "backup" && summary.contains("catalog unreachable")
        )),
        "{report}"
    );
}

/// 1.0.0 runs; 1.1.0 (whose contract migration the runner carries out) was deployed over it
/// with a backup, and succeeded. Returns the id of that backup.
async fn upgraded(
    world: &World,
    backup: &Arc<InMemoryBackup>,
    runner: &Arc<InMemoryStepRunner>,
) -> String {
    let o = world.checklist_orchestrator(
        world.journal.clone(),
        Some(backup.clone()),
        Some(runner.clone()),
    );
    let up = run_to_end(&o, &short_canary()).await;
    assert_eq!(up.outcome, Some(Outcome::Succeeded));
    backup.taken()[0].0.clone()
}

/// An orchestrator on the world's backends over `journal`, with `backup` and no validator:
/// what rolls a service back needs no more.
fn with_backup(
    world: &World,
    journal: Arc<dyn Journal>,
    backup: &Arc<InMemoryBackup>,
) -> Orchestrator {
    world.builder(journal).backup(backup.clone()).build()
}

/// Starts a rollback of the upgraded service to 1.0.0 over a journal that fails the first
/// append `pick` chooses, then resumes it from the journal.
async fn rollback_failed_then_resumed(
    world: &World,
    backup: &Arc<InMemoryBackup>,
    pick: impl Fn(&Record) -> bool + Send + Sync + 'static,
) -> Report {
    let journal = Faulty::new(world, Fault::Fail, pick);
    let first = with_backup(world, journal.clone(), backup);
    let e = first
        .rollback_to(&short_canary(), SERVICE, v("1.0.0"))
        .await
        .expect_err("the journal failed");
    assert!(journal.fired(), "{e}");
    let id = world
        .journal
        .all()
        .last()
        .expect("records")
        .deployment
        .clone();
    resume_to_end(&with_backup(world, world.journal.clone(), backup), &id).await
}

#[tokio::test(start_paused = true)]
async fn a_rollback_resumed_after_its_restore_backs_up_and_restores_once() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    // keepLast 2: a second fresh backup of the restored database would expire the restore
    // point.
    let backup = Arc::new(InMemoryBackup::new().with_retention(Retention::keep_last(2).unwrap()));
    let runner = Arc::new(InMemoryStepRunner::new());
    let before = upgraded(&world, &backup, &runner).await;

    let report =
        rollback_failed_then_resumed(&world, &backup, |r| r.state.stage == Stage::BringUp).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.restored(), vec![before.clone()]);
    assert_eq!(backup.taken().len(), 2, "{:?}", backup.taken());
    assert!(
        backup.info(&before).await.is_ok(),
        "the restore point is kept"
    );
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.0.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_restore_whose_end_was_not_journalled_is_not_repeated() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let before = upgraded(&world, &backup, &runner).await;

    let report = rollback_failed_then_resumed(&world, &backup, |r| r.state.restored).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected a failure for an operator, got {report}");
    };
    assert!(
        reason.contains(&before) && reason.contains("not restored a second time"),
        "{reason}"
    );
    assert_eq!(backup.restored(), vec![before]);
    assert_eq!(backup.taken().len(), 2, "{:?}", backup.taken());
    // Traffic was not switched: 1.1.0 still serves.
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
}

/// An orchestrator on the world's backends over `journal` whose validator gives a rollback of
/// 1.1.0 to 1.0.0 a feature-flag step for `runner` (see [`flagged_validator`]).
fn flagged(
    world: &World,
    journal: Arc<dyn Journal>,
    backup: &Arc<InMemoryBackup>,
    runner: &Arc<InMemoryStepRunner>,
) -> Orchestrator {
    let (validator, fleet) = flagged_validator();
    world
        .builder(journal)
        .validator(validator, fleet)
        .backup(backup.clone())
        .step_runner(runner.clone())
        .build()
}

/// 1.1.0 deployed over 1.0.0 with [`flagged`], then a rollback to 1.0.0 over a journal that
/// fails the first append `pick` chooses. Returns the backup taken before 1.1.0, the number
/// of steps the runner ran before the rollback, and the rollback's id.
async fn flagged_rollback_failed(
    world: &World,
    backup: &Arc<InMemoryBackup>,
    runner: &Arc<InMemoryStepRunner>,
    pick: impl Fn(&Record) -> bool + Send + Sync + 'static,
) -> (String, usize, String) {
    let up = run_to_end(
        &flagged(world, world.journal.clone(), backup, runner),
        &short_canary(),
    )
    .await;
    assert_eq!(up.outcome, Some(Outcome::Succeeded), "{up}");
    let before = backup.taken()[0].0.clone();
    let ran = runner.ran().len();
    let journal = Faulty::new(world, Fault::Fail, pick);
    let e = flagged(world, journal.clone(), backup, runner)
        .rollback_to(&short_canary(), SERVICE, v("1.0.0"))
        .await
        .expect_err("the journal failed");
    assert!(journal.fired(), "{e}");
    let last = world.journal.all().last().expect("records").clone();
    (before, ran, last.deployment)
}

/// The journal fails the record that starts the restore, after the rollback's feature-flag
/// step: the resumed rollback runs no step again and restores once, before bringing 1.0.0 up.
#[tokio::test(start_paused = true)]
async fn a_rollback_stopped_between_its_steps_and_its_restore_restores_once_on_resume() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let (before, ran, id) = flagged_rollback_failed(&world, &backup, &runner, |r| {
        matches!(r.state.in_flight, Some(InFlight::Restore { .. }))
    })
    .await;
    assert!(backup.restored().is_empty());
    let flag_steps = || {
        runner.ran()[ran..]
            .iter()
            .filter(|(_, step)| step.kind == StepKind::FeatureFlag)
            .count()
    };
    assert_eq!(flag_steps(), 1);

    let o = flagged(&world, world.journal.clone(), &backup, &runner);
    let report = resume_to_end(&o, &id).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(backup.restored(), vec![before]);
    assert_eq!(flag_steps(), 1, "the step was not run again");
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.0.0".into())
    );
}

/// A rollback journalled as an earlier release made it, restored before its pre-upgrade
/// steps, whose feature-flag step fails once it resumes: 1.1.0 still serves, over the
/// database restored for 1.0.0, and the reason says so, naming the backup to restore.
#[tokio::test(start_paused = true)]
async fn a_step_failing_after_a_journalled_restore_says_the_running_version_serves_over_it() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let (before, _, id) = flagged_rollback_failed(&world, &backup, &runner, |r| {
        matches!(r.state.in_flight, Some(InFlight::Step { .. }))
    })
    .await;
    // The record after the backup, as the earlier order wrote it once the restore was done.
    let mut restored = world.journal.all().last().expect("records").clone();
    assert_eq!(restored.state.stage, Stage::Preparation);
    restored.seq += 1;
    restored.state.restored = true;
    restored.effects.clear();
    restored.events.clear();
    world.journal.append(&restored).await.expect("append");
    let fresh = restored.state.backup.clone().expect("the fresh backup");

    runner.fail_next("the flag service is down");
    let o = flagged(&world, world.journal.clone(), &backup, &runner);
    let report = resume_to_end(&o, &id).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("{report}");
    };
    assert!(
        reason.contains("the flag service is down")
            && reason.contains(&format!("backup {before} had been restored for 1.0.0"))
            && reason.contains("1.1.0 still serves")
            && reason.contains(&format!("restore backup {fresh}")),
        "{reason}"
    );
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
}

// ---- 3 and 5: the readiness wait ----

/// A world whose instances get ready after `checks` health checks, serving 1.0.0 (installed
/// with a readiness timeout long enough for it).
async fn slow_world(checks: u32) -> (Arc<World>, tokio::task::JoinHandle<()>) {
    let (world, traffic) =
        World::on(InMemoryPlatform::new().with_ready_after(checks)).under_traffic(0.005, 0.005);
    let mut install =
        DeploymentConfig::new(StrategyKind::Canary, v("1.0.0"), &[SERVICE]).expect("config");
    install.blue_green_config.health_check_interval = Duration::from_secs(1);
    install.blue_green_config.readiness_timeout = Duration::from_secs(3_600);
    let report = world.deploy(&install).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    (world, traffic)
}

#[tokio::test(start_paused = true)]
async fn an_abort_while_the_new_track_gets_ready_rolls_back_at_once_and_moves_no_traffic() {
    let (world, _traffic) = slow_world(30).await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await;
    until_stage(&h, Stage::WaitReady).await;
    let applies = world.router.history().len();
    let asked = tokio::time::Instant::now();
    h.abort().await.expect("abort");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "the abort waited {:?}",
        asked.elapsed()
    );
    let report = h.wait().await.expect("report");
    assert!(
        matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("aborted")),
        "{report}"
    );
    assert!(
        !kinds(&report).iter().any(|k| matches!(
            k,
            EventKind::WeightChanged { percent, .. } if *percent > 0.0
        ) || matches!(k, EventKind::PhaseChanged { phase } if *phase == serin_orchestrator::Phase::Monitoring)),
        "{report}"
    );
    // No split the deployment applied gave the new track (blue, beside 1.0.0 on stable) any
    // traffic.
    for split in &world.router.history()[applies..] {
        assert!(
            split
                .weight_of(Track::Blue.as_str())
                .is_none_or(|w| w.is_zero()),
            "{split:?}"
        );
    }
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn the_readiness_timeout_counts_from_the_journalled_start_of_the_wait() {
    // The new track would be ready after 200 s; the deployment waits 60 s at most.
    let (world, _traffic) = slow_world(200).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.blue_green_config.readiness_timeout = Duration::from_secs(60);
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    until_stage(&h, Stage::WaitReady).await;
    h.kill();
    let waiting_since = world
        .journal
        .all()
        .into_iter()
        .rev()
        .find(|r| r.deployment == id && r.state.stage == Stage::WaitReady)
        .expect("the record that started the wait")
        .at;
    // The process is down for 50 s.
    tokio::time::sleep(Duration::from_secs(50)).await;
    let report = world.resumed(&id).await;
    let (at, reason) = report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RollbackStarted { reason } => Some((e.at, reason.clone())),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rollback: {report}"));
    assert!(reason.contains("readiness"), "{reason}");
    let waited = at.saturating_duration_since(waiting_since);
    assert!(
        waited <= Duration::from_secs(61),
        "gave up {waited:?} after the wait began, not 60 s\n{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_install_resumed_after_giving_its_ready_track_all_traffic_announces_it_ready_once()
{
    let config =
        DeploymentConfig::new(StrategyKind::Canary, v("1.0.0"), &[SERVICE]).expect("config");
    let reference = run_to_end(&World::new().orchestrator(), &config).await;
    let world = World::new();
    // Records: started, validated, prepared, bring-up, then the one that gives the ready
    // track all traffic, written while the deployment still waits for readiness.
    let last = support::crash_at(&world, world.orchestrator(), config, 5).await;
    assert_eq!(last.state.stage, Stage::WaitReady, "{last:?}");
    assert!(
        last.effects
            .iter()
            .any(|e| matches!(e, Effect::Apply { .. })),
        "{last:?}"
    );
    let resumed = resume_to_end(&world.orchestrator(), &last.deployment).await;
    assert_eq!(kinds(&resumed), kinds(&reference), "{resumed}");
}

// ---- 4: a promotion cut short by a crash ----

#[tokio::test(start_paused = true)]
async fn a_promotion_cut_short_by_a_crash_finishes_on_resume_even_while_paused() {
    let (world, _traffic) = slow_world(20).await;
    let config = canary_config("1.1.0");
    // The canary runs 1 instance and is scaled to 2 before it takes all traffic.
    assert!(config.blue_green_config.replicas_per_env > config.canary_config.replicas);
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    until_stage(&h, Stage::Canary).await;
    h.pause().await.expect("pause");
    // The promote is answered once taken; the process dies before the scaled track is ready.
    tokio::time::timeout(Duration::from_secs(3), h.promote())
        .await
        .expect("the promote is answered once taken")
        .expect("promote");
    let last = world.journal.all().last().expect("records").clone();
    assert!(
        last.effects
            .iter()
            .any(|e| matches!(e, Effect::Scale { instances: 2, .. })),
        "{last:?}"
    );
    h.kill();

    let report = world.resumed(&id).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let promotions = report
        .timeline
        .iter()
        .filter(|e| {
            matches!(&e.kind, EventKind::AnalysisResult { decision } if decision.action == Action::Promote)
        })
        .count();
    assert_eq!(promotions, 1, "{report}");
    world.assert_live(Track::Canary, "1.1.0").await;
    // Monitoring began once the scaled track was ready, not after another analysis window.
    let monitoring = report
        .timeline
        .iter()
        .find(|e| {
            matches!(&e.kind, EventKind::PhaseChanged { phase } if *phase == serin_orchestrator::Phase::Monitoring)
        })
        .expect("monitoring");
    let promoted_at = last.at;
    assert!(
        monitoring.at.saturating_duration_since(promoted_at) < Duration::from_secs(30),
        "{report}"
    );
}
