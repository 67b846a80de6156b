//! The paths a resumed deployment takes before its stages run again, and the announcing of a
//! record whose effects fail: the split the journal has in force is read back from the router
//! and put back when the router lost it or it drifted; a rollback a resume begins (after a
//! failed repeat of the last record, or by `onResume: rollback`) is journalled and announced
//! like one an uninterrupted run begins, and a failed repeat without `rollbackOnError` ends the
//! deployment as failed; every journalled event reaches subscribers even when its record's
//! effects fail. A finished deployment resumed after its success was journalled counts in the
//! fleet that later deployments are validated against.

use crate::support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serin_compat::matrix::OneMinorAtATime;
use serin_compat::{Fleet, Matrix, Registry, Release, Rule, Validator};
use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, Effect, Event, EventKind, InMemoryPlatform, OnResume,
    Outcome, Phase, Record, Report, Stage, Status, TrafficStrategyKind,
};
use serin_signals::Track;
use serin_traffic::{InMemoryRouter, TrafficRouter, TrafficSplit};
use support::{
    Fault, Faulty, SERVICE, World, blue_green_config, bounded, canary_config, drain, resume_to_end,
    run_to_end, v,
};

fn records_of(world: &World, id: &str) -> Vec<Record> {
    world
        .journal
        .all()
        .into_iter()
        .filter(|r| r.deployment == id)
        .collect()
}

/// The last split the deployment's journal applies.
fn journalled_split(world: &World, id: &str) -> TrafficSplit {
    records_of(world, id)
        .iter()
        .flat_map(|r| r.effects.iter())
        .filter_map(|e| match e {
            Effect::Apply { split } => Some(split.clone()),
            _ => None,
        })
        .next_back()
        .expect("the deployment applied a split")
}

fn last_record(world: &World, id: &str) -> Record {
    records_of(world, id).pop().expect("records")
}

fn applies(record: &Record) -> bool {
    record
        .effects
        .iter()
        .any(|e| matches!(e, Effect::Apply { .. }))
}

/// Polls the handle's status every `step` until `done` holds (for at most two virtual hours).
async fn until(h: &DeploymentHandle, step: Duration, what: &str, done: impl Fn(&Status) -> bool) {
    for _ in 0..(7_200_000 / step.as_millis().max(1)) {
        if done(&h.status()) {
            return;
        }
        tokio::time::sleep(step).await;
    }
    panic!("never reached: {what}; status {:?}", h.status());
}

/// Every event of the timeline from `from_seq` on reached the subscriber, unchanged.
fn all_delivered(report: &Report, delivered: &BTreeMap<u64, Event>, from_seq: u64) {
    for e in report.timeline.iter().filter(|e| e.seq >= from_seq) {
        assert_eq!(
            delivered.get(&e.seq),
            Some(e),
            "journalled event {} ({}) never reached a subscriber\n{report}",
            e.seq,
            e.kind
        );
    }
}

fn collect(rx: &mut tokio::sync::broadcast::Receiver<Event>) -> BTreeMap<u64, Event> {
    drain(rx).into_iter().map(|e| (e.seq, e)).collect()
}

/// Starts `config` and waits (checking every second) until `done` holds of its status;
/// returns the handle and the deployment's id.
async fn started_until(
    world: &World,
    config: &DeploymentConfig,
    what: &str,
    done: impl Fn(&Status) -> bool,
) -> (DeploymentHandle, String) {
    let h = world.start(config).await;
    let id = h.id().to_owned();
    until(&h, Duration::from_secs(1), what, done).await;
    (h, id)
}

/// Resumes `id` with a fresh orchestrator; returns its report and the events it announced.
async fn resumed_and_announced(world: &World, id: &str) -> (Report, BTreeMap<u64, Event>) {
    let second = world.orchestrator();
    let mut events = second.subscribe();
    let report = resume_to_end(&second, id).await;
    (report, collect(&mut events))
}

// ---- A: the split is read back and put back on resume ----

#[tokio::test(start_paused = true)]
async fn resume_in_monitoring_puts_back_the_split_a_restarted_router_lost() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.monitoring.monitoring_duration = Duration::from_secs(600);
    let (h, id) = started_until(&world, &config, "monitoring", |s| {
        s.stage == Stage::Monitoring
    })
    .await;
    // A watch check or two: the last record then carries no apply.
    tokio::time::sleep(Duration::from_secs(12)).await;
    h.kill();
    let last = last_record(&world, &id);
    assert_eq!(last.state.stage, Stage::Monitoring);
    assert!(!applies(&last), "the last record applies: {last:?}");
    let intended = journalled_split(&world, &id);

    let restarted = Arc::new(InMemoryRouter::new());
    let second = world.orchestrator_routing(restarted.clone());
    let handle = second.resume(&id).await.expect("resume");
    let resumed_at = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        restarted.current().await.expect("current"),
        Some(intended.clone()),
        "right after the resume"
    );
    // Within the 600 s watch, which applies nothing of its own.
    for at in [1, 60, 300] {
        tokio::time::sleep_until(resumed_at + Duration::from_secs(at)).await;
        assert_eq!(
            restarted.current().await.expect("current"),
            Some(intended.clone()),
            "{at} s after the resume"
        );
    }
    let report = handle.wait().await.expect("report");
    assert_eq!(
        report.outcome,
        Some(Outcome::Succeeded),
        "{:?}\n{report}",
        report.outcome
    );
    assert_eq!(
        restarted.current().await.expect("current"),
        Some(TrafficSplit::all_to(Track::Canary.as_str(), &[]).expect("split"))
    );
}

#[tokio::test(start_paused = true)]
async fn resume_in_a_canary_hold_puts_back_a_split_that_drifted() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (h, id) = started_until(&world, &canary_config("1.1.0"), "40% to the canary", |s| {
        s.weight >= 40.0
    })
    .await;
    // Into the hold window after the step: the canary's ticks journal holds, no applies.
    tokio::time::sleep(Duration::from_secs(25)).await;
    h.kill();
    let last = last_record(&world, &id);
    assert_eq!(last.state.stage, Stage::Canary);
    assert!(!applies(&last), "the last record applies: {last:?}");
    let intended = journalled_split(&world, &id);
    assert_eq!(
        world.router.current().await.expect("current"),
        Some(intended.clone())
    );
    // Someone (or a router's reconciler) moved traffic while nothing ran.
    let drifted = TrafficSplit::from_percents([("stable", 50), ("canary", 50)]).expect("split");
    world.router.apply(&drifted).await.expect("drift");

    let handle = world.orchestrator().resume(&id).await.expect("resume");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        world.router.current().await.expect("current"),
        Some(intended),
        "the journalled split is back before anything else runs"
    );
    let report = handle.wait().await.expect("report");
    assert_eq!(
        report.outcome,
        Some(Outcome::Succeeded),
        "{:?}\n{report}",
        report.outcome
    );
}

/// A platform whose instances get ready after a few health checks, so a deployment can be
/// killed while it waits for its new track.
async fn slow_ready_world() -> (Arc<World>, tokio::task::JoinHandle<()>) {
    World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await
}

/// Starts `config` and kills it while it waits for the new track (the last record brought it
/// up); returns the deployment's id.
async fn killed_waiting_for_ready(world: &World, config: &DeploymentConfig) -> String {
    let h = world.start(config).await;
    let id = h.id().to_owned();
    until(&h, Duration::from_millis(100), "waiting for ready", |s| {
        s.stage == Stage::WaitReady
    })
    .await;
    h.kill();
    let last = last_record(world, &id);
    assert!(
        last.effects
            .iter()
            .any(|e| matches!(e, Effect::BringUp { .. })),
        "the last record brings the track up: {last:?}"
    );
    id
}

#[tokio::test(start_paused = true)]
async fn resume_before_any_apply_puts_back_the_split_the_deployment_started_under() {
    let (world, _traffic) = slow_ready_world().await;
    let started_under = world.router.current().await.expect("current");
    assert_eq!(
        started_under,
        Some(TrafficSplit::all_to(Track::Stable.as_str(), &[]).expect("split"))
    );
    let id = killed_waiting_for_ready(&world, &canary_config("1.1.0")).await;

    let restarted = Arc::new(InMemoryRouter::new());
    let handle = world
        .orchestrator_routing(restarted.clone())
        .resume(&id)
        .await
        .expect("resume");
    tokio::time::sleep(Duration::from_millis(1)).await;
    assert_eq!(
        restarted.current().await.expect("current"),
        started_under,
        "the old version serves while the new track gets ready"
    );
    // Then the canary starts from there, as it would have.
    until(
        &handle,
        Duration::from_secs(1),
        "the canary's first step",
        |s| s.stage == Stage::Canary,
    )
    .await;
    let first_step = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).expect("split");
    assert_eq!(
        restarted.history(),
        vec![started_under.expect("a split"), first_step]
    );
    handle.kill();
}

// ---- B: a rollback a resume begins goes through the journal ----

/// Kills a canary right after the record that moves 40% of traffic to it, makes the router
/// fail the repeat of that apply, and resumes; also runs the same failure uninterrupted (the
/// router fails the 40% step). Returns (resumed, uninterrupted) reports, the events the resumed
/// run announced and the first sequence number it could announce.
async fn failed_repeat(rollback_on_error: bool) -> (Report, Report, BTreeMap<u64, Event>, u64) {
    let mut config = canary_config("1.1.0");
    config.rollback_on_error = rollback_on_error;
    let at_40 = |s: &serin_orchestrator::Status| s.weight >= 40.0;

    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (h, id) = started_until(&world, &config, "40% to the canary", at_40).await;
    h.kill();
    let last = last_record(&world, &id);
    assert!(
        matches!(last.effects.as_slice(), [Effect::Apply { .. }]) && last.state.weight == 40.0,
        "the last record moves 40% to the canary: {last:?}"
    );
    world.router.fail_next_apply("router unreachable");
    let (resumed, delivered) = resumed_and_announced(&world, &id).await;

    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let (h, _) = started_until(&world, &config, "10% to the canary", |s| s.weight >= 10.0).await;
    world.router.fail_next_apply("router unreachable");
    let uninterrupted = h.wait().await.expect("report");
    (resumed, uninterrupted, delivered, last.state.next_event)
}

fn rollback_started(report: &Report) -> Option<&str> {
    report.timeline.iter().find_map(|e| match &e.kind {
        EventKind::RollbackStarted { reason } => Some(reason.as_str()),
        _ => None,
    })
}

#[tokio::test(start_paused = true)]
async fn a_failed_repeat_without_rollback_on_error_ends_failed_as_an_uninterrupted_run_does() {
    let (resumed, uninterrupted, delivered, from) = failed_repeat(false).await;
    assert!(
        matches!(&uninterrupted.outcome, Some(Outcome::Failed { reason }) if reason.contains("router unreachable")),
        "uninterrupted: {uninterrupted}"
    );
    assert!(
        matches!(&resumed.outcome, Some(Outcome::Failed { reason }) if reason.contains("router unreachable")),
        "resumed: {resumed}"
    );
    assert_eq!(rollback_started(&resumed), None, "{resumed}");
    all_delivered(&resumed, &delivered, from);
}

#[tokio::test(start_paused = true)]
async fn a_failed_repeat_starts_a_journalled_and_announced_rollback() {
    let (resumed, uninterrupted, delivered, from) = failed_repeat(true).await;
    for (name, report) in [("uninterrupted", &uninterrupted), ("resumed", &resumed)] {
        assert!(
            matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("router unreachable")),
            "{name}: {report}"
        );
        assert!(
            rollback_started(report).is_some_and(|r| r.contains("router unreachable")),
            "{name}: no rollback-started event naming the failure\n{report}"
        );
        assert!(
            report.timeline.iter().any(|e| e.kind
                == EventKind::PhaseChanged {
                    phase: Phase::Rollback
                }),
            "{name}: no change to the rollback phase\n{report}"
        );
    }
    all_delivered(&resumed, &delivered, from);
}

#[tokio::test(start_paused = true)]
async fn on_resume_rollback_is_journalled_before_it_is_carried_out_and_announced() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.on_resume = OnResume::Rollback;
    let (h, id) = started_until(&world, &config, "40% to the canary", |s| s.weight >= 40.0).await;
    h.kill();
    let killed_at = records_of(&world, &id).len();
    let from = last_record(&world, &id).state.next_event;
    let (report, delivered) = resumed_and_announced(&world, &id).await;
    assert!(
        matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("onResume")),
        "{report}"
    );
    // The first record the resumed run writes starts the rollback: stage, reason, events, and
    // the switch back to the old version as its effect.
    let records = records_of(&world, &id);
    let first = &records[killed_at];
    assert_eq!(first.state.stage, Stage::RollingBack, "{first:?}");
    assert_eq!(first.state.weight, 0.0);
    let kinds: Vec<&EventKind> = first.events.iter().map(|e| &e.kind).collect();
    assert!(
        matches!(kinds.as_slice(), [EventKind::RollbackStarted { reason }, EventKind::PhaseChanged { phase: Phase::Rollback }] if reason.contains("onResume")),
        "{kinds:?}"
    );
    assert_eq!(
        first.effects,
        vec![Effect::Apply {
            split: TrafficSplit::all_to(Track::Stable.as_str(), &[Track::Canary.as_str()])
                .expect("split")
        }]
    );
    all_delivered(&report, &delivered, from);
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}

// ---- C: the events of a record whose effects fail are announced ----

#[tokio::test(start_paused = true)]
async fn the_events_of_a_record_whose_effects_fail_reach_subscribers() {
    let world = World::new();
    let install = blue_green_config("1.0.0", TrafficStrategyKind::Immediate);
    assert_eq!(
        world.deploy(&install).await.outcome,
        Some(Outcome::Succeeded)
    );
    let o = world.orchestrator();
    let mut events = o.subscribe();
    world.platform.fail_next("quota exceeded");
    let report = support::run_to_end(
        &o,
        &blue_green_config("1.1.0", TrafficStrategyKind::Immediate),
    )
    .await;
    assert!(
        matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("quota exceeded")),
        "{report}"
    );
    let received: Vec<Event> = drain(&mut events);
    let started = report
        .timeline
        .iter()
        .find(|e| matches!(&e.kind, EventKind::TrackStarted { version, .. } if version == "1.1.0"))
        .expect("the track-started event is journalled");
    assert!(
        received.contains(started),
        "{started:?} is in the timeline but was never announced"
    );
    // All of them, in the journal's order: the failed record's events before the rollback's.
    assert_eq!(received, report.timeline, "{report}");
}

/// A canary whose first step scales its track, on a platform whose new instances take a few
/// checks to become ready: it enters its stage at 0%.
fn scaled_canary() -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
            {"pause":{"duration":"30s"}},{"setWeight":75},{"pause":{"duration":"30s"}}]"#,
        )
        .expect("steps"),
    );
    config.blue_green_config.replicas_per_env = 4;
    config.monitoring.monitoring_duration = Duration::from_secs(20);
    config.blue_green_config.keep_old_warm_for = Duration::from_secs(20);
    config.monitoring.error_rate_threshold = None;
    config.validate().expect("valid");
    config
}

/// The 0% a canary enters its stage at is announced once the router took it; a crash right
/// after the record that entered the stage, before the one announcing it, does not lose it,
/// though no share was announced before and 0% is the share the new version had.
#[tokio::test(start_paused = true)]
async fn a_canary_entered_at_0_percent_announces_it_when_resumed_before_announcing_it() {
    let slow = || InMemoryPlatform::new().with_ready_after(3);
    let config = scaled_canary();
    let (world, _traffic) = World::serving_on(slow(), 0.005, 0.005).await;
    let before = world.journal.len();
    let reference = support::run_to_end(&world.orchestrator(), &config).await;
    assert_eq!(
        support::weights(&reference.timeline),
        [0.0, 25.0, 75.0, 100.0]
    );
    let entered = world.journal.all()[before..]
        .iter()
        .position(|r| r.state.stage == Stage::Canary)
        .expect("the canary stage");

    let (world, _traffic) = World::serving_on(slow(), 0.005, 0.005).await;
    let records = world.journal.len() + entered + 1;
    let last = support::crash_at(&world, world.orchestrator(), config, records).await;
    assert_eq!(last.state.stage, Stage::Canary, "{last:?}");
    let resumed = resume_to_end(&world.orchestrator(), &last.deployment).await;
    assert_eq!(
        support::weights(&resumed.timeline),
        support::weights(&reference.timeline),
        "{resumed}"
    );
}

/// The service at 1.0.0, 1.1.0 and 1.2.0, moving one minor version at a time: 1.2.0 goes
/// only over 1.1.0.
fn one_minor_at_a_time() -> Validator {
    let mut registry = Registry::new();
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        registry
            .add_release(SERVICE, Release::new(v(version)))
            .expect("release");
    }
    let rule = Rule::OneMinorAtATime(OneMinorAtATime {
        id: Some("one-minor".into()),
        service: SERVICE.into(),
    });
    let matrix = Matrix::new(vec![rule], &registry).expect("matrix");
    Validator::new(registry, matrix).expect("validator")
}

#[tokio::test(start_paused = true)]
async fn a_resumed_finished_deployment_counts_in_the_fleet_later_ones_are_validated_against() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    // The final record of 1.1.0's deployment is written, and its append never answers: a
    // crash right after the write.
    let journal = Faulty::new(&world, Fault::Stall, |r| r.state.outcome.is_some());
    let o = world
        .builder(journal.clone())
        .validator(
            one_minor_at_a_time(),
            Fleet::new().with(SERVICE, v("1.0.0")),
        )
        .build();
    let config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    let h = o.start(&config, SERVICE).await.expect("start");
    let id = h.id().to_owned();
    bounded("the deployment", h.wait())
        .await
        .expect_err("its last append never answers");
    assert!(journal.fired());

    let report = resume_to_end(&o, &id).await;
    assert!(
        report.outcome.as_ref().is_some_and(Outcome::is_success),
        "{report}"
    );
    assert_eq!(o.fleet().expect("fleet").running(SERVICE), [v("1.1.0")]);
    // 1.2.0 goes over the 1.1.0 that runs: not blocked as if 1.0.0 still ran.
    let next = run_to_end(
        &o,
        &blue_green_config("1.2.0", TrafficStrategyKind::Immediate),
    )
    .await;
    assert!(
        next.outcome.as_ref().is_some_and(Outcome::is_success),
        "{next}"
    );
}

/// A canary whose track follows its weight down: 50%, then 25%, the split applied before the
/// track shrinks. Without `rollbackOnError`, so a failed scale ends the deployment as failed.
fn falling_canary() -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":50},
            {"pause":{"duration":"30s"}},{"setWeight":25},{"pause":{"duration":"30s"}}]"#,
        )
        .expect("steps"),
    );
    config.blue_green_config.replicas_per_env = 4;
    config.rollback_on_error = false;
    config.validate().expect("valid");
    config
}

/// The split a record applies before one of its effects fails is in force, and a resumed run
/// that repeats the record announces its share as an uninterrupted run does: the timeline has
/// it, and the failure's reason says which share the router was left with.
#[tokio::test(start_paused = true)]
async fn a_split_applied_before_a_failed_effect_of_a_repeated_record_is_announced() {
    let config = falling_canary();
    let lowered = |r: &Record| {
        matches!(
            r.effects.as_slice(),
            [Effect::Apply { .. }, Effect::Scale { .. }]
        ) && r.state.weight == 25.0
    };
    // Uninterrupted: the 25% step's scale fails.
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let before = world.journal.len();
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    until(&h, Duration::from_millis(100), "50% to the canary", |s| {
        s.weight >= 50.0
    })
    .await;
    world.platform.fail_next("quota exceeded");
    let uninterrupted = h.wait().await.expect("report");
    assert!(
        records_of(&world, &id).iter().any(lowered),
        "{uninterrupted}"
    );
    let lowered_at = world.journal.all()[before..]
        .iter()
        .position(lowered)
        .expect("the 25% record");

    // Resumed: a crash right after that record was written, and its repeat's scale fails.
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let records = world.journal.len() + lowered_at + 1;
    let last = support::crash_at(&world, world.orchestrator(), config, records).await;
    assert!(lowered(&last), "{last:?}");
    world.platform.fail_next("quota exceeded");
    let (resumed, delivered) = resumed_and_announced(&world, &last.deployment).await;
    all_delivered(&resumed, &delivered, last.state.next_event);

    for (name, report) in [("uninterrupted", &uninterrupted), ("resumed", &resumed)] {
        assert_eq!(
            support::weights(&report.timeline).last(),
            Some(&25.0),
            "{name}: the 25% in force is announced\n{report}"
        );
        assert!(
            matches!(&report.outcome, Some(Outcome::Failed { reason })
                if reason.contains("quota exceeded") && reason.contains("25% of traffic")),
            "{name}: {report}"
        );
    }
}
