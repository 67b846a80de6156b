//! The backup and the restore a deployment's preparation carries out are bounded, under paused
//! time, as its upgrade steps are: a provider's call that never answers is dropped at the
//! deployment's deadline or at an operator's abort, nothing is left in flight, and the
//! deployment fails with nothing deployed (a backup) or with traffic not switched (a restore).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_orchestrator::{EventKind, Orchestrator, Report};
use serin_signals::Track;
use support::{
    HangingBackup, SERVICE, World, abort_to_end, assert_nothing_in_flight, backing_up, bounded,
    canary_within, failed_reason, took, v,
};

/// Asserts that the deployment of `report` changed nothing: 1.0.0 takes all traffic through
/// the same split, and no canary runs.
async fn assert_nothing_deployed(world: &World, applies: usize) {
    assert_eq!(world.router.apply_count(), applies, "no split changed");
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// 1.0.0 serving, and an orchestrator backing up through the provider answered, whose backups
/// never answer; with how many splits the router has applied so far.
async fn backing_up_hung() -> (Arc<HangingBackup>, Arc<World>, Orchestrator, usize) {
    let provider = Arc::new(HangingBackup::default());
    provider.hang_backup.store(true, Ordering::SeqCst);
    let (world, o) = backing_up(provider.clone()).await;
    let applies = world.router.apply_count();
    (provider, world, o, applies)
}

#[tokio::test(start_paused = true)]
async fn a_hung_backup_is_cancelled_at_the_deadline_and_nothing_is_deployed() {
    let (provider, world, o, applies) = backing_up_hung().await;
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("did not finish within maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.taken().is_empty());
    assert_nothing_in_flight(&world, &id).await;
    assert_nothing_deployed(&world, applies).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_hung_backup_cancels_it_at_once() {
    let (provider, world, o, applies) = backing_up_hung().await;
    let h = o
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    // Commands are served while the backup runs: a pause is journalled at once.
    bounded("the pause", h.pause()).await.expect("pause");
    let (asked, report) = abort_to_end(&o, h).await;
    assert!(report.timeline.iter().any(|e| e.kind == EventKind::Paused));
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("was aborted by an operator") && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert_nothing_in_flight(&world, &id).await;
    assert_nothing_deployed(&world, applies).await;
}

/// [`support::upgraded`] through `provider`, and the id of the backup a rollback to 1.0.0
/// must restore.
async fn upgraded(
    provider: &Arc<HangingBackup>,
    max: Duration,
) -> (Arc<World>, Orchestrator, String) {
    let (world, o) = support::upgraded(provider.clone(), max).await;
    let before = provider.inner.taken()[0].0.clone();
    (world, o, before)
}

/// Rolls `o` back to 1.0.0 within `max` and waits for its report.
async fn rolled_back(o: &Orchestrator, max: Duration) -> Report {
    let report = bounded(
        "the rollback",
        o.rollback_to(&canary_within(max), SERVICE, v("1.0.0")),
    )
    .await
    .expect("report");
    println!("{report}");
    report
}

/// Asserts that the rollback of `report`, to restore `before`, failed with traffic not
/// switched (1.1.0 still serves), saying the database may hold part of the backup.
async fn assert_restore_cancelled(world: &World, report: &Report, before: &str, why: &str) {
    let reason = failed_reason(report);
    assert!(
        reason.contains(&format!("restoring backup {before} was cancelled"))
            && reason.contains(why)
            && reason.contains("may hold part of it")
            && reason.contains(&format!("restore backup {before} again"))
            && reason.contains("traffic was not switched"),
        "{reason}"
    );
    assert!(
        !support::kinds(report)
            .iter()
            .any(|k| matches!(k, EventKind::BackupRestored { .. })),
        "{report}"
    );
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
    assert_nothing_in_flight(world, &report.deployment).await;
}

#[tokio::test(start_paused = true)]
async fn a_hung_restore_is_cancelled_at_the_deadline_and_traffic_is_not_switched() {
    let provider = Arc::new(HangingBackup::default());
    let max = Duration::from_secs(30 * 60);
    let (world, o, before) = upgraded(&provider, max).await;
    provider.hang_restore.store(true, Ordering::SeqCst);
    let report = rolled_back(&o, max).await;
    assert_restore_cancelled(&world, &report, &before, "maxDeploymentDuration (30m)").await;
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.restored().is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_hung_restore_cancels_it_at_once() {
    let provider = Arc::new(HangingBackup::default());
    let max = Duration::from_secs(30 * 60);
    let (world, o, before) = upgraded(&provider, max).await;
    provider.hang_restore.store(true, Ordering::SeqCst);
    let h = o
        .start_rollback_to(&canary_within(max), SERVICE, v("1.0.0"))
        .await
        .expect("start");
    provider.stall.until_hung().await;
    let (asked, report) = abort_to_end(&o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    assert_restore_cancelled(&world, &report, &before, "aborted by an operator").await;
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
}

/// A restore whose turn comes at the deadline (the fresh backup before it took all the time
/// there was) is not started, rather than started and cancelled at once.
#[tokio::test(start_paused = true)]
async fn a_restore_whose_turn_comes_past_the_deadline_is_not_started() {
    let provider = Arc::new(HangingBackup::default());
    let max = Duration::from_secs(30 * 60);
    let (world, o, before) = upgraded(&provider, max).await;
    *provider.backup_takes.lock().expect("lock") = max;
    let report = rolled_back(&o, max).await;
    let taken_at = report
        .timeline
        .iter()
        .find_map(|e| matches!(e.kind, EventKind::BackupTaken { .. }).then_some(e.at))
        .expect("the fresh backup is taken");
    assert_eq!(
        taken_at.saturating_duration_since(report.started_at),
        max,
        "the fresh backup answers at the deadline"
    );
    let reason = failed_reason(&report);
    assert!(
        reason.contains(&format!("restoring backup {before} was not started"))
            && reason.contains("maxDeploymentDuration (30m)")
            && reason.contains("traffic was not switched"),
        "{reason}"
    );
    assert!(
        provider.inner.restored().is_empty(),
        "the database is untouched"
    );
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
    assert_nothing_in_flight(&world, &report.deployment).await;
}
