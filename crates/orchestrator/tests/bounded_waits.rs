//! The user's code a deployment awaits is bounded, under paused time: an upgrade step the step
//! runner carries out ends at the deployment's deadline or at an operator's abort (its call is
//! dropped and the step marked failed), and a notifier that never answers holds up neither the
//! deployment nor its rollback for longer than the notify timeout.

use crate::support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use serin_compat::steps::{StepKind, StepPhase};
use serin_orchestrator::{
    DeploymentHandle, Event, EventKind, NotificationChannel, Notifier, Orchestrator, Outcome,
    Report, Result, StepRunner, StepStatus, UpgradeStep,
};
use serin_signals::Track;
use support::{
    Dropped, SERVICE, World, abort_to_end, assert_succeeded, bounded, canary_config, canary_within,
    checklist_validator, failed_reason, run_to_end, took,
};

/// A step runner that does the steps of one side at once and never answers for the others,
/// as a migration tool stuck on a lock would.
struct Hanging {
    /// Hangs on the steps after the deployment; otherwise on those before it.
    after: bool,
    calls: Mutex<Vec<(StepPhase, StepKind)>>,
    dropped: AtomicUsize,
}

impl Hanging {
    fn new(after: bool) -> Arc<Self> {
        Arc::new(Hanging {
            after,
            calls: Mutex::new(Vec::new()),
            dropped: AtomicUsize::new(0),
        })
    }

    fn calls(&self) -> Vec<(StepPhase, StepKind)> {
        self.calls.lock().expect("calls").clone()
    }

    fn hung_calls(&self) -> usize {
        self.calls()
            .iter()
            .filter(|(phase, _)| (*phase == StepPhase::After) == self.after)
            .count()
    }

    /// How many of its calls were dropped before they answered.
    fn dropped_calls(&self) -> usize {
        self.dropped.load(Ordering::SeqCst)
    }

    /// Waits (in virtual time) until a step it hangs on was called.
    async fn until_hung(&self) {
        while self.hung_calls() == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

#[async_trait]
impl StepRunner for Hanging {
    fn name(&self) -> &str {
        "hanging"
    }

    async fn run(&self, _deployment: &str, step: &serin_compat::Step) -> Result<Option<String>> {
        self.calls
            .lock()
            .expect("calls")
            .push((step.phase, step.kind));
        if (step.phase == StepPhase::After) != self.after {
            return Ok(Some("done".into()));
        }
        let _dropped = Dropped(&self.dropped);
        std::future::pending().await
    }
}

/// A [`Hanging`] runner (on the steps after the deployment if `after`), 1.0.0 serving, and an
/// orchestrator with the checklist's validator and that runner.
async fn world_with(after: bool) -> (Arc<Hanging>, Arc<World>, Orchestrator) {
    let runner = Hanging::new(after);
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    world.install("1.0.0").await;
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .step_runner(runner.clone())
        .build();
    (runner, world, o)
}

/// The runner's steps (neither the backup nor the deployment itself) of `phase`'s side.
fn runner_steps(report: &Report, after: bool) -> Vec<&UpgradeStep> {
    report
        .checklist
        .iter()
        .filter(|s| (s.step.phase == StepPhase::After) == after)
        .filter(|s| !matches!(s.step.kind, StepKind::Backup | StepKind::Deploy))
        .collect()
}

/// Starts a deployment with two hours to go on `o`, and waits until `runner` hangs on a step.
async fn start_until_hung(o: &Orchestrator, runner: &Hanging) -> DeploymentHandle {
    let handle = o
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    runner.until_hung().await;
    handle
}

/// Asserts that every step of `steps` is still due, its evidence saying `why`.
fn assert_left_due(steps: &[&UpgradeStep], why: &str) {
    for s in steps {
        assert_eq!(s.status, StepStatus::Due, "{s}");
        assert!(
            s.evidence.as_deref().is_some_and(|e| e.contains(why)),
            "{s}"
        );
    }
}

/// A Slack channel for the deployment's events.
fn slack() -> Vec<NotificationChannel> {
    vec![serde_json::from_str(r##"{"type":"slack","destination":"#deploys"}"##).expect("ch")]
}

#[tokio::test(start_paused = true)]
async fn a_hung_pre_upgrade_step_is_cancelled_at_the_deadline_and_nothing_is_deployed() {
    let (runner, world, o) = world_with(false).await;
    let applies = world.router.apply_count();
    let max = Duration::from_secs(20 * 60);
    let report = bounded("the deployment", run_to_end(&o, &canary_within(max))).await;
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("was cancelled")
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(runner.hung_calls(), 1, "no later step started");
    assert_eq!(runner.dropped_calls(), 1, "the call was dropped");
    let failed: Vec<_> = report
        .checklist
        .iter()
        .filter(|s| s.status == StepStatus::Failed)
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    let evidence = failed[0].evidence.as_deref().unwrap_or_default();
    assert!(
        evidence.contains("cancelled after 20m")
            && evidence.contains("maxDeploymentDuration")
            && evidence.contains("partly carried out"),
        "{evidence}"
    );
    assert_eq!(world.router.apply_count(), applies, "no split changed");
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_hung_pre_upgrade_step_cancels_it_at_once() {
    let (runner, world, o) = world_with(false).await;
    let applies = world.router.apply_count();
    let handle = start_until_hung(&o, &runner).await;
    // Commands are served while the step runs: a pause is journalled at once.
    bounded("the pause", handle.pause()).await.expect("pause");
    let (asked, report) = abort_to_end(&o, handle).await;
    assert!(report.timeline.iter().any(|e| e.kind == EventKind::Paused));
    assert_eq!(
        report.last_at, asked,
        "the abort is served at once, not when the step ends"
    );
    let reason = failed_reason(&report);
    assert!(
        reason.contains("was cancelled: aborted by an operator")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(runner.dropped_calls(), 1, "the call was dropped");
    let cancelled = report
        .checklist
        .iter()
        .find(|s| s.status == StepStatus::Failed)
        .expect("the cancelled step");
    let evidence = cancelled.evidence.as_deref().unwrap_or_default();
    assert!(evidence.contains("aborted by an operator"), "{evidence}");
    assert_eq!(world.router.apply_count(), applies, "no split changed");
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_hung_post_upgrade_step_is_cancelled_at_the_deadline_and_the_rest_left_due() {
    let (runner, world, o) = world_with(true).await;
    let _traffic = world.spawn_traffic();
    let max = Duration::from_secs(30 * 60);
    let report = bounded("the deployment", run_to_end(&o, &canary_within(max))).await;
    println!("{report}");
    // The old version is retired before the steps after the deployment: it finishes forward.
    assert_succeeded(&report);
    world.assert_live(Track::Canary, "1.1.0").await;
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(runner.hung_calls(), 1, "no later step started");
    assert_eq!(runner.dropped_calls(), 1);
    let after = runner_steps(&report, true);
    assert!(after.len() >= 2, "{report}");
    let evidence = |s: &UpgradeStep| s.evidence.clone().unwrap_or_default();
    assert_eq!(after[0].status, StepStatus::Failed, "{report}");
    assert!(
        evidence(after[0]).contains("cancelled after")
            && evidence(after[0]).contains("maxDeploymentDuration (30m) ran out while it ran"),
        "{}",
        after[0]
    );
    assert_left_due(
        &after[1..],
        "not started: maxDeploymentDuration (30m) ran out",
    );
}

#[tokio::test(start_paused = true)]
async fn post_upgrade_steps_whose_turn_comes_past_the_deadline_are_not_started() {
    let (runner, world, o) = world_with(true).await;
    let _traffic = world.spawn_traffic();
    let max = Duration::from_secs(8 * 60);
    let mut c = canary_within(max);
    // The watch outlasts the deadline, which completes the deployment (the default).
    c.monitoring.monitoring_duration = Duration::from_secs(10 * 60);
    c.validate().expect("valid");
    let report = bounded("the deployment", run_to_end(&o, &c)).await;
    println!("{report}");
    assert_succeeded(&report);
    assert_eq!(took(&report), max);
    assert_eq!(runner.hung_calls(), 0, "no step started past the deadline");
    let after = runner_steps(&report, true);
    assert!(!after.is_empty(), "{report}");
    assert_left_due(
        &after,
        "not started: maxDeploymentDuration (8m) ran out before its turn",
    );
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_hung_post_upgrade_step_cancels_it_and_finishes_forward() {
    let (runner, world, o) = world_with(true).await;
    let _traffic = world.spawn_traffic();
    let handle = start_until_hung(&o, &runner).await;
    let (asked, report) = abort_to_end(&o, handle).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    assert_succeeded(&report);
    world.assert_live(Track::Canary, "1.1.0").await;
    assert_eq!(runner.hung_calls(), 1, "no later step started");
    assert_eq!(runner.dropped_calls(), 1);
    let after = runner_steps(&report, true);
    assert_eq!(after[0].status, StepStatus::Failed, "{report}");
    assert_left_due(&after[1..], "not started: aborted by an operator");
    assert!(
        report.timeline.iter().any(|e| matches!(&e.kind,
            EventKind::Anomaly { source, summary, .. }
                if source == "rollback" && summary.contains("aborted by an operator"))),
        "the abort is told it cannot roll back: {report}"
    );
}

/// A notifier that never answers once a rollback has started, as a receiver that hangs under
/// the load of an incident would.
#[derive(Default)]
struct Silent {
    rolling_back: Mutex<bool>,
    answered: Mutex<Vec<Event>>,
}

#[async_trait]
impl Notifier for Silent {
    async fn notify(&self, _channel: &NotificationChannel, event: &Event) -> Result<()> {
        let hang = {
            let mut rolling_back = self.rolling_back.lock().expect("flag");
            *rolling_back |= matches!(event.kind, EventKind::RollbackStarted { .. });
            *rolling_back
        };
        if hang {
            return std::future::pending().await;
        }
        self.answered.lock().expect("answered").push(event.clone());
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn a_notifier_that_never_answers_holds_a_rollback_up_for_its_timeout_at_most() {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.3);
    world.install("1.0.0").await;
    let _traffic = world.spawn_traffic();
    let silent = Arc::new(Silent::default());
    let timeout = Duration::from_secs(3);
    let o = world
        .builder(world.journal.clone())
        .notifier(silent.clone())
        .notify_timeout(timeout)
        .build();
    let mut c = canary_config("1.1.0");
    c.notification_channels = slack();
    let report = bounded("the rollback", run_to_end(&o, &c)).await;
    println!("{report}");
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
    // Every event from the rollback's start on was given up, each after the timeout.
    let started = report
        .timeline
        .iter()
        .position(|e| matches!(e.kind, EventKind::RollbackStarted { .. }))
        .expect("a rollback");
    let given_up = report.timeline[started..].len();
    assert!(given_up >= 3, "{report}");
    assert_eq!(o.notifications_timed_out(), given_up as u64);
    let answered = silent.answered.lock().expect("answered").len();
    assert_eq!(answered, started);
    // The rollback lasted no longer than one timeout per notification it gave up.
    let from = report.timeline[started].at;
    let rollback = report.last_at.saturating_duration_since(from);
    assert!(
        rollback <= timeout * u32::try_from(given_up).expect("few"),
        "{rollback:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn notifications_answered_in_time_are_not_counted() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let silent = Arc::new(Silent::default());
    let o = world
        .builder(world.journal.clone())
        .notifier(silent.clone())
        .build();
    let mut c = canary_config("1.1.0");
    c.notification_channels = slack();
    let report = bounded("the deployment", run_to_end(&o, &c)).await;
    assert_succeeded(&report);
    assert_eq!(o.notifications_timed_out(), 0);
    assert!(!silent.answered.lock().expect("answered").is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_pause_during_a_post_upgrade_step_is_refused_as_the_old_version_is_retired() {
    let (runner, world, o) = world_with(true).await;
    let _traffic = world.spawn_traffic();
    let handle = start_until_hung(&o, &runner).await;
    let refused = bounded("the pause", handle.pause()).await;
    let e = refused.expect_err("nothing is left to hold once the old version is retired");
    assert!(e.to_string().contains("retired"), "{e}");
    assert!(!handle.status().paused, "{:?}", handle.status());
    let (_, report) = abort_to_end(&o, handle).await;
    assert_succeeded(&report);
    assert!(
        !report
            .timeline
            .iter()
            .any(|e| matches!(e.kind, EventKind::Paused)),
        "no pause is journalled: {report}"
    );
}
