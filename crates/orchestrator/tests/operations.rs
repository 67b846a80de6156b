//! Operations on running deployments (promote, abort, pause/resume), the dry run, the lock,
//! validation, preparation and the manual rollbacks — in-memory world, paused time.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    BackupProvider, DeploymentConfig, DeploymentHandle, Effect, EventKind, InMemoryBackup,
    InMemoryNotifier, InMemoryPlatform, Journal, NotificationChannel, Orchestrator, Outcome,
    Platform, Record, Stage, StrategyKind,
};
use serin_signals::{HealthSignal, Metric, Probe, ProbeStatus, Track};
use support::{SERVICE, World, canary_config, until_stage, v};

async fn healthy_world() -> Arc<World> {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world
}

/// A healthy world and an orchestrator on it, running the canary of 1.1.0 up to its canary
/// stage.
async fn canary_running() -> (Arc<World>, Orchestrator, DeploymentHandle) {
    let world = healthy_world().await;
    let o = world.orchestrator();
    let h = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    until_stage(&h, Stage::Canary).await;
    (world, o, h)
}

/// Records, every virtual second, 100 counts of `metric` for each track given with its errors.
fn record_every_second(
    world: &Arc<World>,
    metric: Metric,
    errors: [(Track, u64); 2],
) -> tokio::task::JoinHandle<()> {
    let world = Arc::clone(world);
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let window =
                serin_signals::Window::ending_at(world.clock.now(), Duration::from_secs(1));
            for (track, errors) in errors.clone() {
                world
                    .source
                    .record_counts(track, metric.clone(), window, 100, errors)
                    .expect("record");
            }
        }
    })
}

/// `canary_config("1.1.0")` with `trigger` (JSON) as its one rollback trigger.
fn with_trigger(trigger: &str) -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    config.triggers = vec![serde_json::from_str(trigger).expect("trigger")];
    config.validate().expect("valid");
    config
}

/// `canary_config("1.1.0")` with `steps` (JSON) as its canary steps.
fn with_steps(steps: &str) -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    support::written_steps(&mut config, serde_json::from_str(steps).expect("steps"));
    config
}

/// The report's outcome is a failure whose reason names `what`.
fn assert_failed_naming(report: &serin_orchestrator::Report, what: &str) {
    assert!(
        matches!(&report.outcome, Some(Outcome::Failed { reason }) if reason.contains(what)),
        "{:?}",
        report.outcome
    );
}

#[tokio::test(start_paused = true)]
async fn promote_skips_the_remaining_steps() {
    let (_world, _o, h) = canary_running().await;
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(h.status().weight, 10.0);
    h.promote().await.expect("promote");
    assert_eq!(h.status().weight, 100.0);
    assert_eq!(h.status().stage, Stage::Monitoring);
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(
        took < Duration::from_secs(150),
        "promotion skipped the steps: {took:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn abort_rolls_back_and_a_second_abort_is_refused() {
    let (world, o, h) = canary_running().await;
    h.abort().await.expect("abort");
    let status = h.status();
    assert_eq!(o.status(h.id()).await.expect("status"), status);
    assert!(o.status("nope").await.is_err());
    assert!(
        matches!(status.outcome, Some(Outcome::RolledBack { ref reason }) if reason.contains("aborted"))
    );
    let err = h.abort().await.expect_err("over");
    assert!(err.to_string().contains("abort"), "{err}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn pause_holds_the_weight_until_resumed() {
    let (_world, _o, h) = canary_running().await;
    h.pause().await.expect("pause");
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(h.status().weight, 10.0, "no step while paused");
    assert!(h.status().paused);
    h.resume().await.expect("resume");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    let kinds = support::kinds(&report);
    assert!(kinds.contains(&&EventKind::Paused) && kinds.contains(&&EventKind::Resumed));
}

#[tokio::test(start_paused = true)]
async fn a_paused_canary_is_still_judged_and_a_critical_regression_rolls_it_back() {
    // The canary errs ten times as often as the baseline, under the error-rate trigger's 10%.
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let h = world.start(&canary_config("1.1.0")).await;
    until_stage(&h, Stage::Canary).await;
    h.pause().await.expect("pause");
    for _ in 0..60 {
        if h.status().outcome.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let status = h.status();
    assert!(
        matches!(&status.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("critical")),
        "{status:?}"
    );
    assert!(
        !status.paused,
        "a finished deployment is not paused: {status:?}"
    );
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_dependency_trigger_reads_the_call_metric_it_names() {
    let world = healthy_world().await;
    // Calls to the database: the new version's fail half the time, the old version's never.
    let calls = Metric::named("db_calls").expect("metric");
    let recorder = record_every_second(&world, calls, [(Track::Stable, 0), (Track::Canary, 50)]);
    let config = with_trigger(
        r#"{"kind":"dependencyFailure","id":"db","dependency":"postgres",
            "callMetric":"db_calls","maxCallErrorRate":0.1,"failureThreshold":2}"#,
    );
    let report = world.deploy(&config).await;
    recorder.abort();
    let reason = support::rollback_reason(&report);
    assert!(reason.contains("db"), "{reason}");
}

/// A source that answers counts for `cpu` leaves a threshold on it blind: the deployment says so
/// once, not at every window (the trigger then only warns that its data is missing, as asked).
#[tokio::test(start_paused = true)]
async fn a_trigger_input_the_engine_cannot_read_is_announced_once() {
    let world = healthy_world().await;
    let recorder = record_every_second(
        &world,
        Metric::Cpu,
        [(Track::Stable, 1), (Track::Canary, 1)],
    );
    let config = with_trigger(
        r#"{"kind":"metricThreshold","id":"cpu-high","metric":"cpu","operator":"gt",
            "value":4,"duration":30000,"onMissingData":"warn"}"#,
    );
    let report = world.deploy(&config).await;
    recorder.abort();
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let warnings: Vec<&str> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly {
                source, summary, ..
            } if source == "rollback triggers" => Some(summary.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:#?}");
    assert!(
        warnings[0].contains("holds counts, but trigger `cpu-high` needs a gauge")
            && warnings[0].contains("`cpu` of `canary` go without it"),
        "{}",
        warnings[0]
    );
}

#[tokio::test(start_paused = true)]
async fn one_deployment_per_service_at_a_time() {
    let world = healthy_world().await;
    let o = world.orchestrator();
    let h = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    let err = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect_err("locked");
    assert!(err.to_string().contains("another deployment"), "{err}");
    h.abort().await.expect("abort");
    h.wait().await.expect("report");
    // The lock is released with the deployment.
    let again = o.run(&canary_config("1.1.0")).await.expect("second run");
    assert_eq!(again[0].outcome, Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_lists_every_step_and_changes_nothing() {
    let world = healthy_world().await;
    let o = world.orchestrator();
    let before_router = world.router.apply_count();
    let before_tracks = world.platform.list().await.expect("list");
    let before_journal = world.journal.len();
    let plans = o.plan(&canary_config("1.1.0")).await.expect("plan");
    let text = plans[0].to_string();
    println!("{text}");
    assert!(
        text.contains("1.0.0 on stable -> 1.1.0 on canary"),
        "{text}"
    );
    assert!(
        text.contains("10% held 1m → 40% held 1m → 70% held 1m"),
        "{text}"
    );
    assert!(text.contains("retire stable"), "{text}");
    let mut bg = canary_config("1.1.0");
    bg.strategy = StrategyKind::BlueGreen;
    bg.blue_green_config.traffic_strategy = serin_orchestrator::TrafficStrategyKind::Gradual;
    bg.blue_green_config.traffic_increment = 25.0;
    let plans = o.plan(&bg).await.expect("plan");
    assert_eq!(plans[0].traffic.as_ref().map(|p| p.len()), Some(4));
    assert_eq!(world.router.apply_count(), before_router);
    assert_eq!(world.platform.list().await.expect("list"), before_tracks);
    assert_eq!(world.journal.len(), before_journal);
}

#[tokio::test(start_paused = true)]
async fn an_unhealthy_running_version_stops_preparation_and_changes_nothing() {
    let world = healthy_world().await;
    world
        .platform
        .kill(
            SERVICE,
            &Track::Stable,
            &first_instance(&world).await,
            "oom",
        )
        .expect("kill");
    let applies = world.router.apply_count();
    let report = world.deploy(&canary_config("1.1.0")).await;
    assert_failed_naming(&report, "not healthy");
    assert_eq!(world.router.apply_count(), applies);
    assert!(!world.has_track(&Track::Canary).await);
}

async fn first_instance(world: &World) -> String {
    world
        .platform
        .status(SERVICE, &Track::Stable)
        .await
        .expect("stable")
        .instances[0]
        .id
        .clone()
}

#[tokio::test(start_paused = true)]
async fn a_failing_dependency_stops_preparation() {
    let world = healthy_world().await;
    let now = world.clock.now();
    world
        .health
        .record(HealthSignal::new(
            Track::Stable,
            Probe::Dependency("postgres".into()),
            ProbeStatus::Fail,
            now,
        ))
        .expect("record");
    let report = world.deploy(&canary_config("1.1.0")).await;
    assert_failed_naming(&report, "postgres");
}

#[tokio::test(start_paused = true)]
async fn backups_and_notifications_follow_the_config() {
    let world = healthy_world().await;
    let backup = Arc::new(InMemoryBackup::new());
    let notifier = Arc::new(InMemoryNotifier::new());
    let o = world
        .builder(world.journal.clone())
        .backup(backup.clone())
        .notifier(notifier.clone())
        .build();
    let mut config = canary_config("1.1.0");
    config.notification_channels = vec![
        serde_json::from_str::<NotificationChannel>(
            r##"{"type":"slack","destination":"#deploys","events":["started","completed"]}"##,
        )
        .expect("channel"),
    ];
    let report = o.run(&config).await.expect("run").remove(0);
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(backup.taken().len(), 1);
    assert_eq!(report.backup.as_deref(), Some(backup.taken()[0].0.as_str()));
    let sent: Vec<String> = notifier
        .sent()
        .iter()
        .map(|(_, e)| e.kind.to_string())
        .collect();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent[0].starts_with("started") && sent[1].starts_with("completed"),
        "{sent:?}"
    );
    // A failing backup stops the deployment before any change.
    backup.fail_next("disk full");
    let report = o.run(&canary_config("1.2.0")).await.expect("run").remove(0);
    assert_failed_naming(&report, "disk full");
}

#[tokio::test(start_paused = true)]
async fn rollback_deploys_the_previous_version_back() {
    let world = healthy_world().await;
    let o = world.orchestrator();
    let config = canary_config("1.1.0");
    assert_eq!(
        o.run(&config).await.expect("run")[0].outcome,
        Some(Outcome::Succeeded)
    );
    world.assert_live(Track::Canary, "1.1.0").await;
    let report = o.rollback(&config, SERVICE).await.expect("rollback");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(report.to.version, v("1.0.0"));
    assert_eq!(
        world.live_version().await.map(|(_, v)| v),
        Some("1.0.0".into())
    );
    let report = o
        .rollback_to(&config, SERVICE, v("1.1.0"))
        .await
        .expect("rollback_to");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(
        world.live_version().await.map(|(_, v)| v),
        Some("1.1.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn an_indefinite_pause_step_waits_for_resume() {
    let world = healthy_world().await;
    let config = with_steps(
        r#"[{"setWeight":20},{"pause":{}},{"setWeight":60},{"pause":{"duration":"1m"}}]"#,
    );
    config.validate().expect("valid");
    let h = world.start(&config).await;
    tokio::time::sleep(Duration::from_secs(1_200)).await;
    assert_eq!(h.status().weight, 20.0, "held at the indefinite pause");
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(h.status().weight, 60.0);
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
}

#[tokio::test(start_paused = true)]
async fn set_canary_scale_sizes_the_canary_by_replicas_weight_or_traffic() {
    let world = healthy_world().await;
    let mut config = with_steps(
        r#"[{"setCanaryScale":{"weight":50}},{"setWeight":10},{"pause":{"duration":"1m"}},
            {"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":60},
            {"pause":{"duration":"1m"}},{"setCanaryScale":{"replicas":3}},
            {"setWeight":80},{"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    let (report, records) = deployed_with_records(&world, &config).await;
    // The canary's sizes, in order, from the journal's scale effects: 50% of 4, then the
    // traffic weight (10% -> 1, 60% -> 3), then a fixed 3 that 80% does not change, then all 4
    // at promotion.
    let sizes: Vec<u32> = records
        .iter()
        .flat_map(|r| &r.effects)
        .filter_map(|e| match e {
            Effect::Scale { instances, .. } => Some(*instances),
            _ => None,
        })
        .collect();
    assert_eq!(sizes, vec![2, 1, 3, 3, 4], "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_follows_the_weight_scales_up_before_a_raise_and_down_after_a_cut() {
    let world = healthy_world().await;
    let mut config = with_steps(
        r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":60},
            {"pause":{"duration":"1m"}},{"setWeight":20},{"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    let (report, records) = deployed_with_records(&world, &config).await;
    // Each weight's record, as the kinds of its effects in order.
    let orders: Vec<Vec<&str>> = records
        .iter()
        .filter(|r| {
            r.effects.iter().any(|e| matches!(e, Effect::Scale { .. }))
                && r.effects.iter().any(|e| matches!(e, Effect::Apply { .. }))
                && r.state.weight < 100.0
        })
        .map(|r| {
            r.effects
                .iter()
                .map(|e| match e {
                    Effect::Scale { .. } => "scale",
                    Effect::Apply { .. } => "apply",
                    _ => "other",
                })
                .collect()
        })
        .collect();
    assert_eq!(
        orders,
        vec![vec!["scale", "apply"], vec!["apply", "scale"]],
        "{report}"
    );
}

/// Validates `config`, deploys it (it must succeed) and answers its report and journal records.
async fn deployed_with_records(
    world: &World,
    config: &DeploymentConfig,
) -> (serin_orchestrator::Report, Vec<Record>) {
    config.validate().expect("valid");
    let report = world.deploy(config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let records = world
        .journal
        .records(&report.deployment)
        .await
        .expect("records");
    (report, records)
}

#[tokio::test(start_paused = true)]
async fn the_platform_lock_keeps_two_orchestrators_from_deploying_one_service_at_once() {
    let world = healthy_world().await;
    let (a, b) = (world.orchestrator(), world.orchestrator());
    let config = canary_config("1.1.0");
    let h = a.start(&config, SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let err = b
        .start(&config, SERVICE)
        .await
        .expect_err("locked")
        .to_string();
    assert!(err.contains(&id), "{err}");
    // A crash keeps the lock: the service stays locked until the deployment is resumed.
    h.kill();
    let err = b
        .start(&canary_config("1.2.0"), SERVICE)
        .await
        .expect_err("still locked")
        .to_string();
    assert!(err.contains(&id) && err.contains("resume"), "{err}");
    let report = support::resume_to_end(&b, &id).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    // It ended, so the lock is free again, for either orchestrator.
    let next = a
        .start(&canary_config("1.2.0"), SERVICE)
        .await
        .expect("free")
        .wait()
        .await
        .expect("report");
    assert_eq!(next.outcome, Some(Outcome::Succeeded), "{next}");
}

/// A promotion whose switch fails is not taken as done: the operator hears of the failure,
/// and the deployment takes its error path (`rollbackOnError`) instead of watching and
/// completing a promotion the router never carried out.
#[tokio::test(start_paused = true)]
async fn a_promotion_the_router_fails_to_carry_out_rolls_back() {
    let (world, _o, h) = canary_running().await;
    world.router.fail_next_apply("connection refused");
    let err = h.promote().await.expect_err("the switch failed");
    assert!(err.to_string().contains("connection refused"), "{err}");
    let report = h.wait().await.expect("report");
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback, got {report}");
    };
    assert!(reason.contains("connection refused"), "{reason}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// A canary a scale step shrank grows back to `replicasPerEnv` before it takes all traffic,
/// also when `canaryConfig.replicas` is full size already.
#[tokio::test(start_paused = true)]
async fn a_canary_shrunk_by_a_scale_step_takes_all_traffic_only_at_full_size() {
    let world = healthy_world().await;
    let mut config = with_steps(
        r#"[{"setCanaryScale":{"replicas":1}},{"setWeight":20},{"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 3;
    config.canary_config.replicas = 3;
    config.validate().expect("valid");
    // The dry run says so too.
    let plan = world.plan(&config).await;
    assert!(
        plan.steps
            .iter()
            .any(|s| s.starts_with("scale canary to 3 instance(s), rollback triggers")),
        "{plan}"
    );
    let report = world.deploy(&config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    world.assert_live(Track::Canary, "1.1.0").await;
    let canary = world
        .platform
        .status(SERVICE, &Track::Canary)
        .await
        .expect("canary");
    assert_eq!(canary.instances.len(), 3, "{report}");
}

/// A pause that comes while the new track starts holds the canary at 0%: no weight moves
/// until the resume.
#[tokio::test(start_paused = true)]
async fn a_pause_while_the_canary_starts_holds_its_first_weight() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let h = world.start(&canary_config("1.1.0")).await;
    until_stage(&h, Stage::WaitReady).await;
    h.pause().await.expect("pause");
    tokio::time::sleep(Duration::from_secs(600)).await;
    let status = h.status();
    assert_eq!(status.stage, Stage::Canary, "{status:?}");
    assert_eq!(status.weight, 0.0, "{status:?}");
    let split = serin_traffic::TrafficRouter::current(world.router.as_ref())
        .await
        .expect("split")
        .expect("a split");
    assert_eq!(split.weight_of("canary").map(|w| w.bps()), Some(0));
    h.resume().await.expect("resume");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// A resume with nothing to resume is a no-op, as a second pause is: it announces no resume
/// that did not happen.
#[tokio::test(start_paused = true)]
async fn a_resume_with_nothing_paused_changes_nothing() {
    let (_world, _o, h) = canary_running().await;
    h.resume().await.expect("a no-op");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert!(
        !report.timeline.iter().any(|e| e.kind == EventKind::Resumed),
        "{report}"
    );
}

/// `maxDeploymentDuration` bounds the wait for the new track too: a track that takes longer
/// than what is left of the deployment is rolled back at the deadline, not when
/// `readinessTimeout` runs out.
#[tokio::test(start_paused = true)]
async fn the_deadline_ends_a_readiness_wait_that_outlasts_it() {
    // Ready after about 200 s of checks, one a second.
    let world = World::on(InMemoryPlatform::new().with_ready_after(200));
    let mut install = canary_config("1.0.0");
    install.blue_green_config.readiness_timeout = Duration::from_secs(1_000);
    let r = world.deploy(&install).await;
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
    // A backup of 100 s: the readiness wait starts with 100 s of the deadline left, and its
    // timeout, shorter than the deadline as it must be, would end it 50 s later.
    let o = world
        .builder(world.journal.clone())
        .backup(Arc::new(SlowBackup(InMemoryBackup::new())))
        .build();
    let mut config = canary_config("1.1.0");
    config.blue_green_config.readiness_timeout = Duration::from_secs(150);
    config.max_deployment_duration = Duration::from_secs(200);
    let report = o.run(&config).await.expect("run").remove(0);
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback, got {report}");
    };
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(took <= Duration::from_secs(201), "{took:?}");
    assert!(!world.has_track(&Track::Canary).await);
}

/// A backup that takes 100 s.
struct SlowBackup(InMemoryBackup);

#[async_trait::async_trait]
impl BackupProvider for SlowBackup {
    fn name(&self) -> &str {
        "slow"
    }

    async fn backup(&self, service: &str, label: &str) -> serin_orchestrator::Result<String> {
        tokio::time::sleep(Duration::from_secs(100)).await;
        self.0.backup(service, label).await
    }

    async fn restore(&self, id: &str) -> serin_orchestrator::Result<()> {
        self.0.restore(id).await
    }
}
