//! The lifecycle around the strategy on the in-memory world, under paused time: the validated
//! upgrade's checklist in preparation and completion, events that name the new version after
//! a promotion has moved it to the `stable` track, and the deadline after promotion.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_compat::steps::{StepKind, StepPhase};
use serin_orchestrator::backup::Retention;
use serin_orchestrator::{
    BackupProvider, DeploymentConfig, Event, EventKind, FileJournal, InMemoryBackup,
    InMemoryNotifier, InMemoryStepRunner, Journal, NotificationChannel, OnDeadline, Orchestrator,
    Outcome, Phase, Report, StepStatus,
};
use serin_signals::Track;
use support::{
    SERVICE, World, assert_succeeded, canary_config, drain, resume_to_end, run_to_end,
    short_canary_config, v,
};

fn orchestrator(
    world: &World,
    backup: Option<Arc<InMemoryBackup>>,
    runner: Option<Arc<InMemoryStepRunner>>,
) -> Orchestrator {
    let runner = runner.map(|r| r as Arc<dyn serin_orchestrator::StepRunner>);
    world.checklist_orchestrator(world.journal.clone(), backup, runner)
}

/// The phase each upgrade-step event was announced in.
fn step_phases(events: &[Event]) -> Vec<(Phase, StepPhase, StepKind, StepStatus)> {
    let mut phase = Phase::Validation;
    let mut out = Vec::new();
    for e in events {
        match &e.kind {
            EventKind::PhaseChanged { phase: p } => phase = *p,
            EventKind::UpgradeStep { step, status, .. } => {
                out.push((phase, step.phase, step.kind, *status));
            }
            _ => {}
        }
    }
    out
}

async fn on_1_0_0() -> Arc<World> {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    world.set_rate("1.2.0", 0.005);
    world.install("1.0.0").await;
    world
}

/// [`on_1_0_0`], then under traffic (which keeps flowing when the handle is dropped).
async fn serving_1_0_0() -> (Arc<World>, tokio::task::JoinHandle<()>) {
    let world = on_1_0_0().await;
    let traffic = world.spawn_traffic();
    (world, traffic)
}

#[tokio::test(start_paused = true)]
async fn upgrade_steps_are_planned_then_done_before_and_after_the_deployment() {
    let (world, _traffic) = serving_1_0_0().await;
    let backup = Arc::new(InMemoryBackup::new());
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = orchestrator(&world, Some(backup.clone()), Some(runner.clone()));
    let config = canary_config("1.1.0");

    let plan = o.plan(&config).await.expect("plan").remove(0);
    assert!(!plan.checklist.is_empty(), "{plan}");
    let text = plan.to_string();
    let expand = text.find("preparation: upgrade step [before]");
    let contract = text.find("completion: upgrade step [after]");
    assert!(
        expand.is_some() && contract.is_some() && expand < contract,
        "{text}"
    );
    assert!(text.contains("by the in-memory step runner"), "{text}");

    let mut events = o.subscribe();
    let report = run_to_end(&o, &config).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    let phases = step_phases(&drain(&mut events));
    assert!(!phases.is_empty());
    for (announced, phase, kind, status) in &phases {
        let expected = match phase {
            StepPhase::Before | StepPhase::Deploy if *kind != StepKind::Deploy => {
                Phase::Preparation
            }
            _ => Phase::Completion,
        };
        assert_eq!(*announced, expected, "{phase:?} {kind:?}");
        assert_eq!(*status, StepStatus::Done, "{kind:?}");
    }
    for kind in [StepKind::ExpandMigration, StepKind::ContractMigration] {
        assert!(
            phases.iter().any(|(_, _, k, _)| *k == kind),
            "{kind:?} in {phases:?}"
        );
    }
    // The backup step is done by the backup the provider took; the runner did the rest.
    let taken = backup.taken();
    assert_eq!(taken.len(), 1);
    let backup_step = report
        .checklist
        .iter()
        .find(|s| s.step.kind == StepKind::Backup)
        .expect("a backup step");
    assert_eq!(
        backup_step.evidence.as_deref(),
        Some(format!("backup {}", taken[0].0).as_str())
    );
    assert!(
        runner
            .ran()
            .iter()
            .all(|(_, s)| s.kind != StepKind::Backup && s.kind != StepKind::Deploy)
    );
    assert!(
        report
            .checklist
            .iter()
            .all(|s| s.status == StepStatus::Done)
    );
    assert!(
        report.to_string().contains("upgrade steps:"),
        "the text report lists the checklist"
    );
}

#[tokio::test(start_paused = true)]
async fn without_a_runner_steps_are_due_and_after_a_rollback_the_later_ones_stay_pending() {
    let world = on_1_0_0().await;
    world.set_rate("1.1.0", 0.08);
    let _traffic = world.spawn_traffic();
    let o = orchestrator(&world, None, None);
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    for s in &report.checklist {
        let expected = match s.step.phase {
            StepPhase::Before => StepStatus::Due,
            StepPhase::Deploy if s.step.kind != StepKind::Deploy => StepStatus::Due,
            _ => StepStatus::Pending,
        };
        assert_eq!(s.status, expected, "{s}");
    }
    assert!(
        report
            .checklist
            .iter()
            .any(|s| s.step.kind == StepKind::ContractMigration && s.status == StepStatus::Pending),
        "the contract migration is never due after a rollback"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_pre_upgrade_step_fails_the_deployment_before_anything_changes() {
    let world = on_1_0_0().await;
    let runner = Arc::new(InMemoryStepRunner::new());
    runner.fail_next("migration tool unreachable");
    let o = orchestrator(&world, None, Some(runner));
    let applies = world.router.apply_count();
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(reason.contains("migration tool unreachable"), "{reason}");
    assert!(reason.contains("nothing was deployed"), "{reason}");
    assert_eq!(world.router.apply_count(), applies, "no split changed");
    assert!(!world.has_track(&Track::Canary).await);
    assert!(
        report
            .checklist
            .iter()
            .any(|s| s.status == StepStatus::Failed)
    );
}

/// Carries out every step but the contract migration, which fails.
#[derive(Default)]
struct ContractFails {
    ran: std::sync::Mutex<Vec<StepKind>>,
}

#[async_trait::async_trait]
impl serin_orchestrator::StepRunner for ContractFails {
    fn name(&self) -> &str {
        "contract-fails"
    }

    async fn run(
        &self,
        _deployment: &str,
        step: &serin_compat::Step,
    ) -> serin_orchestrator::Result<Option<String>> {
        self.ran.lock().expect("ran").push(step.kind);
        if step.kind == StepKind::ContractMigration {
            return Err(serin_orchestrator::Error::backend(
                "step runner",
                "contract-fails",
                "DROP COLUMN timed out",
            ));
        }
        Ok(Some("done".into()))
    }
}

/// A post-upgrade step that fails may be partly carried out, as a cancelled one may: the
/// steps after it (removing the old code path once the column is dropped) are not started but
/// left to an operator, naming the failed step.
#[tokio::test(start_paused = true)]
async fn a_failed_post_upgrade_step_leaves_the_steps_after_it_to_an_operator() {
    let (world, _traffic) = serving_1_0_0().await;
    let runner = Arc::new(ContractFails::default());
    let o = world.checklist_orchestrator(world.journal.clone(), None, Some(runner.clone()));
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    assert_succeeded(&report);
    let after: Vec<_> = report
        .checklist
        .iter()
        .filter(|s| s.step.phase == StepPhase::After)
        .collect();
    let failed = after
        .iter()
        .position(|s| s.status == StepStatus::Failed)
        .expect("the contract migration failed");
    assert!(failed + 1 < after.len(), "a step follows it: {report}");
    for s in &after[failed + 1..] {
        assert_eq!(s.status, StepStatus::Due, "{s}");
        let evidence = s.evidence.as_deref().unwrap_or_default();
        assert!(
            evidence.contains("not started") && evidence.contains("DROP COLUMN timed out"),
            "{s}"
        );
    }
    let ran = runner.ran.lock().expect("ran").clone();
    assert_eq!(ran.last(), Some(&StepKind::ContractMigration), "{ran:?}");
}

/// A contract migration that fails once 1.0.0 is retired leaves the deployment succeeded (the
/// new version serves, nothing rolls back) but reaches an operator: a critical anomaly, which
/// a channel subscribed to failures and anomalies is sent, and the report's outcome line.
#[tokio::test(start_paused = true)]
async fn a_failed_contract_migration_reaches_a_channel_subscribed_to_failures() {
    let (world, _traffic) = serving_1_0_0().await;
    let notifier = Arc::new(InMemoryNotifier::new());
    let (validator, fleet) = support::checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .step_runner(Arc::new(ContractFails::default()))
        .notifier(notifier.clone())
        .build();
    let mut config = canary_config("1.1.0");
    config.notification_channels = vec![
        serde_json::from_str::<NotificationChannel>(
            r##"{"type":"slack","destination":"#oncall","events":["failed","anomaly"]}"##,
        )
        .expect("channel"),
    ];
    let report = run_to_end(&o, &config).await;
    assert_succeeded(&report);
    let sent: Vec<EventKind> = notifier.sent().into_iter().map(|(_, e)| e.kind).collect();
    let anomaly = sent.iter().find_map(|k| match k {
        EventKind::Anomaly {
            source,
            severity,
            summary,
        } if source == "upgrade step" => Some((severity, summary)),
        _ => None,
    });
    let Some((severity, summary)) = anomaly else {
        panic!("the on-call channel got nothing about the contract migration: {sent:?}");
    };
    assert_eq!(severity, "critical");
    assert!(
        summary.contains("0003_drop_fax")
            && summary.contains("DROP COLUMN timed out")
            && summary.contains("1.0.0 on stable was already retired")
            && summary.contains("partly migrated")
            && summary.contains("left to an operator"),
        "{summary}"
    );
    let text = report.to_string();
    assert!(
        text.contains(
            "outcome: succeeded, but 1 upgrade step failed once the old version was retired"
        ),
        "{text}"
    );
}

#[tokio::test(start_paused = true)]
async fn events_name_the_new_version_when_a_canary_runs_on_the_stable_track() {
    let (world, _traffic) = serving_1_0_0().await;
    let o = world.orchestrator();
    let first = o.run(&canary_config("1.1.0")).await.expect("run").remove(0);
    assert_eq!(first.to.track, Track::Canary);
    // 1.1.0 now runs on `canary`; the next canary runs 1.2.0 on the idle `stable` track.
    let second = o.run(&canary_config("1.2.0")).await.expect("run").remove(0);
    assert_succeeded(&second);
    assert_eq!(second.to.track, Track::Stable);
    let weights: Vec<&EventKind> = second
        .timeline
        .iter()
        .map(|e| &e.kind)
        .filter(|k| matches!(k, EventKind::WeightChanged { .. }))
        .collect();
    assert!(!weights.is_empty());
    for k in weights {
        let EventKind::WeightChanged { version, track, .. } = k else {
            unreachable!("filtered");
        };
        assert_eq!((version.as_str(), track.as_str()), ("1.2.0", "stable"));
        let line = k.to_string();
        assert!(
            line.contains("new version 1.2.0") && line.contains("canary arm"),
            "{line}"
        );
    }
    assert!(second.timeline.iter().any(|e| matches!(
        &e.kind,
        EventKind::TrackStarted { version, track, .. } if version == "1.2.0" && track == "stable"
    )));
}

/// Runs 1.0.0 -> 1.1.0 (promoted about 190 s after start) with `max` as the deadline.
async fn deadline_run(
    max: Duration,
    monitoring: Duration,
    warm: Duration,
    on: OnDeadline,
) -> (Arc<World>, Report) {
    let (world, _traffic) = serving_1_0_0().await;
    let mut c = canary_config("1.1.0");
    c.max_deployment_duration = max;
    // Within the deadline, as it must be; tracks here are ready at once.
    c.blue_green_config.readiness_timeout = Duration::from_secs(60);
    c.monitoring.monitoring_duration = monitoring;
    c.blue_green_config.keep_old_warm_for = warm;
    c.monitoring.on_deadline = on;
    c.validate().expect("valid");
    let report = world.deploy(&c).await;
    println!("{report}");
    (world, report)
}

fn deadline_event(report: &Report) -> Option<(Phase, u64)> {
    report.timeline.iter().find_map(|e| match &e.kind {
        EventKind::DeadlineReached { phase, .. } => Some((
            *phase,
            e.at.saturating_duration_since(report.started_at).as_secs(),
        )),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn the_deadline_ends_monitoring_and_completes_by_default() {
    let max = Duration::from_secs(240);
    let (world, report) = deadline_run(
        max,
        Duration::from_secs(600),
        Duration::from_secs(600),
        OnDeadline::Complete,
    )
    .await;
    assert_succeeded(&report);
    assert_eq!(deadline_event(&report), Some((Phase::Monitoring, 240)));
    assert_took_at_most(&report, max);
    world.assert_live(Track::Canary, "1.1.0").await;
    assert!(!world.has_track(&Track::Stable).await);
}

/// The deployment ended within a second after `max`.
fn assert_took_at_most(report: &Report, max: Duration) {
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(took <= max + Duration::from_secs(1), "{took:?}");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_in_monitoring_rolls_back_when_configured() {
    let (world, report) = deadline_run(
        Duration::from_secs(240),
        Duration::from_secs(600),
        Duration::from_secs(60),
        OnDeadline::Rollback,
    )
    .await;
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback, got {report}");
    };
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    assert_eq!(deadline_event(&report), Some((Phase::Monitoring, 240)));
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_cuts_the_warm_delay_short() {
    let max = Duration::from_secs(300);
    let (world, report) = deadline_run(
        max,
        Duration::from_secs(20),
        Duration::from_secs(3_600),
        OnDeadline::Complete,
    )
    .await;
    assert_succeeded(&report);
    assert_eq!(deadline_event(&report), Some((Phase::Completion, 300)));
    assert_took_at_most(&report, max);
    assert!(!world.has_track(&Track::Stable).await);
}

#[tokio::test(start_paused = true)]
async fn a_paused_deployment_still_ends_at_the_deadline_after_promotion() {
    let (world, _traffic) = serving_1_0_0().await;
    let mut c = canary_config("1.1.0");
    c.max_deployment_duration = Duration::from_secs(400);
    c.monitoring.monitoring_duration = Duration::from_secs(20);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    let o = world.orchestrator();
    let handle = o.start(&c, SERVICE).await.expect("start");
    let mut status = handle.watch();
    while status.borrow().phase != Phase::Completion {
        status.changed().await.expect("status");
    }
    handle.pause().await.expect("pause");
    let report = handle.wait().await.expect("report");
    assert_succeeded(&report);
    assert_eq!(deadline_event(&report), Some((Phase::Completion, 400)));
}

/// The canary of 1.1.0 with its checklist, crashing after the `crash_at`-th record when
/// given and resumed by a new orchestrator with the same step runner, which is returned.
async fn checklist_run(crash_at: Option<usize>) -> (Report, usize, Arc<InMemoryStepRunner>) {
    let (world, _traffic) = serving_1_0_0().await;
    let runner = Arc::new(InMemoryStepRunner::new());
    let before = world.journal.len();
    // A short canary keeps the number of crash points (one per record) small.
    let config = short_canary_config("1.1.0");
    let first = orchestrator(&world, None, Some(runner.clone()));
    let report = match crash_at {
        None => run_to_end(&first, &config).await,
        Some(k) => {
            let id = support::crash_at(&world, first, config, before + k)
                .await
                .deployment;
            resume_to_end(&orchestrator(&world, None, Some(runner.clone())), &id).await
        }
    };
    (report, world.journal.len() - before, runner)
}

#[tokio::test(start_paused = true)]
async fn the_checklist_survives_a_crash_at_every_journal_write() {
    let (reference, records, reference_runner) = checklist_run(None).await;
    assert_eq!(reference.outcome, Some(Outcome::Succeeded));
    assert!(records > 10, "{records} records");
    let mut handed_over = 0;
    for k in 1..=records {
        let (report, _, runner) = checklist_run(Some(k)).await;
        assert_eq!(report.outcome, Some(Outcome::Succeeded), "crash after {k}");
        assert_eq!(report.checklist.len(), reference.checklist.len());
        // A step the crash caught between the record of its start and that of its end may or
        // may not have run: it is handed to an operator as due, never run a second time.
        // Every other step is done.
        let not_done: Vec<_> = report
            .checklist
            .iter()
            .filter(|s| s.status != StepStatus::Done)
            .collect();
        assert!(
            not_done.len() <= 1
                && not_done.iter().all(|s| s.status == StepStatus::Due
                    && s.evidence
                        .as_deref()
                        .is_some_and(|e| e.contains("not confirmed"))),
            "crash after {k}: {:?}",
            report.checklist
        );
        handed_over += not_done.len();
        let ran = runner.ran();
        for (i, (_, step)) in ran.iter().enumerate() {
            assert!(
                !ran[..i].iter().any(|(_, s)| s == step),
                "crash after {k}: {step} ran twice"
            );
        }
        // Each step is announced once, wherever the crash came.
        let step_events = report
            .timeline
            .iter()
            .filter(|e| matches!(e.kind, EventKind::UpgradeStep { .. }))
            .count();
        assert_eq!(step_events, report.checklist.len(), "crash after {k}");
    }
    // One crash point lies between the start and the end of each step the runner carries out.
    assert_eq!(handed_over, reference_runner.ran().len());
}

/// 1.0.0 runs; 1.1.0 (whose contract migration a step runner carries out) is deployed over it
/// through an orchestrator with `backup`, and succeeds. Traffic keeps flowing.
async fn upgraded(
    backup: Option<Arc<InMemoryBackup>>,
) -> (Arc<World>, Orchestrator, DeploymentConfig) {
    let (world, _traffic) = serving_1_0_0().await;
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = orchestrator(&world, backup, Some(runner));
    let config = canary_config("1.1.0");
    let up = run_to_end(&o, &config).await;
    assert_eq!(up.outcome, Some(Outcome::Succeeded));
    (world, o, config)
}

/// Asks for a rollback of the upgraded service to 1.0.0 that must be refused, checks that it
/// changed nothing (no new deployment, 1.1.0 still serves) and answers the refusal.
async fn refused_rollback(world: &World, o: &Orchestrator, config: &DeploymentConfig) -> String {
    let deployments = world.journal.deployments().await.expect("list").len();
    let err = o
        .rollback_to(config, SERVICE, v("1.0.0"))
        .await
        .expect_err("refused")
        .to_string();
    assert_eq!(
        world.journal.deployments().await.expect("list").len(),
        deployments,
        "{err}"
    );
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into()),
        "{err}"
    );
    err
}

#[tokio::test(start_paused = true)]
async fn rolling_back_across_a_destructive_migration_restores_the_backup_taken_before_it() {
    let backup = Arc::new(InMemoryBackup::new());
    let (world, o, config) = upgraded(Some(backup.clone())).await;
    let before = backup.taken()[0].0.clone();

    let report = o
        .rollback_to(&config, SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    println!("{report}");
    assert_succeeded(&report);
    assert_eq!(backup.restored(), vec![before.clone()]);
    // A fresh backup of the migrated database is taken first, then the old one restored,
    // all before the switch.
    let kinds = support::kinds(&report);
    let taken = kinds
        .iter()
        .position(|k| matches!(k, EventKind::BackupTaken { .. }));
    let restored = kinds
        .iter()
        .position(|k| matches!(k, EventKind::BackupRestored { id } if *id == before));
    let switched = kinds
        .iter()
        .position(|k| matches!(k, EventKind::WeightChanged { .. }));
    assert!(taken < restored && restored < switched, "{report}");
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.0.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_compacted_file_journal_still_tells_a_rollback_which_backup_to_restore() {
    let backup = Arc::new(InMemoryBackup::new());
    let (world, _, config) = upgraded(Some(backup.clone())).await;
    let before = backup.taken()[0].0.clone();
    // The same history in a file journal, every finished deployment trimmed to its last record.
    let dir = tempfile::tempdir().expect("dir");
    let file = Arc::new(FileJournal::open(dir.path().join("journal.jsonl")).expect("journal"));
    for record in world.journal.all() {
        file.append(&record).await.expect("append");
    }
    let done = file.compact(0).await.expect("compact");
    assert!(done.trimmed > 0 && done.records_dropped > 10, "{done:?}");

    let o = world.checklist_orchestrator(file, Some(backup.clone()), None);
    rolls_back_restoring(&o, &config, &backup, before).await;
}

/// Rolls the upgraded service back to 1.0.0 and checks that it succeeded by restoring `before`.
async fn rolls_back_restoring(
    o: &Orchestrator,
    config: &DeploymentConfig,
    backup: &InMemoryBackup,
    before: String,
) {
    let report = o
        .rollback_to(config, SERVICE, v("1.0.0"))
        .await
        .expect("rollback");
    assert_succeeded(&report);
    assert_eq!(backup.restored(), vec![before]);
}

#[tokio::test(start_paused = true)]
async fn a_rollback_is_refused_when_its_restore_point_is_gone_or_retention_would_delete_it() {
    let backup = Arc::new(InMemoryBackup::new().with_retention(Retention::keep_last(3).unwrap()));
    let (world, o, config) = upgraded(Some(backup.clone())).await;
    let before = backup.taken()[0].0.clone();
    // Two backups by hand since: with keepLast 3, the rollback's fresh backup would expire the
    // one before the deployment.
    for label in ["by hand", "by hand again"] {
        backup.backup(SERVICE, label).await.expect("backup");
    }
    let err = refused_rollback(&world, &o, &config).await;
    assert!(err.contains(&before), "{err}");
    assert!(err.contains("keepLast 3"), "{err}");
    assert!(err.contains("2 newer backups"), "{err}");
    assert!(err.contains("at least 4"), "{err}");
    // The restore point is still there.
    assert!(backup.info(&before).await.is_ok());

    // The backups cannot be listed: refused rather than risking the restore point.
    backup.fail_next_list("catalog unreachable");
    let err = refused_rollback(&world, &o, &config).await;
    assert!(
        err.contains("cannot be checked") && err.contains("catalog unreachable"),
        "{err}"
    );

    // Deleted (by hand, or by a retention elsewhere): refused as gone.
    backup.delete(&before).await.expect("delete");
    let err = refused_rollback(&world, &o, &config).await;
    assert!(err.contains("no longer exists"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn a_rollback_restores_under_the_smallest_retention() {
    let backup = Arc::new(InMemoryBackup::new().with_retention(Retention::keep_last(2).unwrap()));
    let (world, o, config) = upgraded(Some(backup.clone())).await;
    let before = backup.taken()[0].0.clone();
    rolls_back_restoring(&o, &config, &backup, before).await;
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.0.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_across_a_destructive_migration_without_a_backup_is_refused() {
    let (world, o, config) = upgraded(None).await;
    let err = refused_rollback(&world, &o, &config).await;
    assert!(err.contains("destructive migration"), "{err}");
    assert!(
        err.contains("DROP COLUMN") || err.contains("0003_drop_fax"),
        "{err}"
    );
    assert!(err.contains("took no backup"), "{err}");
}

#[tokio::test(start_paused = true)]
async fn the_verdict_is_written_by_its_serialized_name_in_events_and_the_dry_run() {
    let (world, _traffic) = serving_1_0_0().await;
    let runner = Arc::new(InMemoryStepRunner::new());
    let o = orchestrator(&world, Some(Arc::new(InMemoryBackup::new())), Some(runner));
    let config = canary_config("1.1.0");
    let plan = o.plan(&config).await.expect("plan").remove(0);
    let report = o.run(&config).await.expect("run").remove(0);
    let verdict = report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::Validated { verdict, .. } => Some(verdict.as_str()),
            _ => None,
        })
        .expect("a validated event");
    // 1.1.0 drops a column: allowed, with warnings.
    assert_eq!(verdict, "okWithWarnings");
    assert!(
        plan.steps[0].starts_with("validation: okWithWarnings"),
        "{plan}"
    );
}

/// A crash right after a post-upgrade step's failure is journalled does not let the resumed
/// deployment carry out the steps after it: they stay left to an operator, as without the
/// crash.
#[tokio::test(start_paused = true)]
async fn a_failed_post_upgrade_step_stops_the_steps_after_it_across_a_crash() {
    let config = short_canary_config("1.1.0");
    let (world, _traffic) = serving_1_0_0().await;
    let before = world.journal.len();
    let runner = Arc::new(ContractFails::default());
    let o = world.checklist_orchestrator(world.journal.clone(), None, Some(runner.clone()));
    assert_succeeded(&run_to_end(&o, &config).await);
    let records = world.journal.len() - before;
    for k in 1..=records {
        let (world, _traffic) = serving_1_0_0().await;
        let before = world.journal.len();
        let runner = Arc::new(ContractFails::default());
        let first = world.checklist_orchestrator(world.journal.clone(), None, Some(runner.clone()));
        let id = support::crash_at(&world, first, config.clone(), before + k)
            .await
            .deployment;
        let o = world.checklist_orchestrator(world.journal.clone(), None, Some(runner.clone()));
        let report = resume_to_end(&o, &id).await;
        let after: Vec<_> = report
            .checklist
            .iter()
            .filter(|s| s.step.phase == StepPhase::After)
            .collect();
        if let Some(failed) = after.iter().position(|s| s.status == StepStatus::Failed) {
            for s in &after[failed + 1..] {
                assert_ne!(s.status, StepStatus::Done, "crash after {k}: {s}");
            }
            let ran = runner.ran.lock().expect("ran").clone();
            assert_eq!(
                ran.last(),
                Some(&StepKind::ContractMigration),
                "crash after {k}: {ran:?}"
            );
        }
    }
}

/// A crash right after a pre-upgrade step's failure is journalled does not let the resumed
/// deployment go on to deploy: it fails, with nothing deployed, as without the crash.
#[tokio::test(start_paused = true)]
async fn a_failed_pre_upgrade_step_fails_the_deployment_across_a_crash() {
    let config = short_canary_config("1.1.0");
    let mut crashed_after_the_failure = 0;
    for k in 1..=4 {
        let world = on_1_0_0().await;
        let before = world.journal.len();
        let runner = Arc::new(InMemoryStepRunner::new());
        runner.fail_next("migration tool unreachable");
        let first = orchestrator(&world, None, Some(runner.clone()));
        let id = support::crash_at(&world, first, config.clone(), before + k)
            .await
            .deployment;
        let report = resume_to_end(&orchestrator(&world, None, Some(runner)), &id).await;
        let failed_before = report
            .checklist
            .iter()
            .any(|s| s.step.phase == StepPhase::Before && s.status == StepStatus::Failed);
        if failed_before {
            crashed_after_the_failure += 1;
            assert!(
                matches!(&report.outcome, Some(Outcome::Failed { reason })
                    if reason.contains("nothing was deployed")),
                "crash after {k}: {report}"
            );
            assert!(!world.has_track(&Track::Canary).await, "crash after {k}");
        }
    }
    assert!(
        crashed_after_the_failure > 0,
        "no crash came after the failure"
    );
}
