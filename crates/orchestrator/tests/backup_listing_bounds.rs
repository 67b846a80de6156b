//! Listing a backup provider's backups is bounded as its backups and restores are, under
//! paused time: in preparation (the listing before the backup, and the one a resumed
//! deployment looks for its backup in) at the deployment's deadline or an operator's abort,
//! with nothing deployed; before a rollback (its retention check) at the config's
//! `maxDeploymentDuration`, with nothing started.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_orchestrator::backup::Retention;
use serin_orchestrator::{EventKind, InMemoryBackup, Orchestrator};
use serin_signals::Track;
use support::{
    HangingBackup, SERVICE, World, abort_to_end, assert_nothing_in_flight, backing_up, bounded,
    canary_within, failed_reason, took, upgraded, v,
};

/// Asserts that nothing was deployed and that the last record of `id` leaves nothing in
/// flight.
async fn assert_nothing_deployed(world: &World, id: &str) {
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
    assert_nothing_in_flight(world, id).await;
}

#[tokio::test(start_paused = true)]
async fn a_listing_before_the_backup_that_never_answers_ends_at_the_deadline() {
    let provider = HangingBackup::over(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    let report = bounded("the deployment", h.wait()).await.expect("report");
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("was not started: listing the backups of web")
            && reason.contains("did not finish within maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

#[tokio::test(start_paused = true)]
async fn an_abort_during_a_listing_that_never_answers_ends_it_at_once() {
    let provider = HangingBackup::over(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let h = o
        .start(&canary_within(Duration::from_secs(2 * 3_600)), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    let (asked, report) = abort_to_end(&o, h).await;
    assert_eq!(report.last_at, asked, "the abort is served at once");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("listing the backups of web") && reason.contains("aborted by an operator"),
        "{reason}"
    );
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

/// A deployment resumed with its backup started and not ended looks for it in the listing;
/// a listing that never answers ends at the deadline journalled at the start, the backup
/// left unconfirmed (and not taken again).
#[tokio::test(start_paused = true)]
async fn a_resumed_deployment_whose_listing_never_answers_ends_at_the_deadline() {
    let provider = HangingBackup::over(InMemoryBackup::new());
    let (world, o) = backing_up(provider.clone()).await;
    provider.hang_backup.store(true, Ordering::SeqCst);
    let max = Duration::from_secs(20 * 60);
    let h = o.start(&canary_within(max), SERVICE).await.expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    h.kill();
    provider.hang_backup.store(false, Ordering::SeqCst);
    provider.hang_list.store(true, Ordering::SeqCst);
    let resumed = world
        .builder(world.journal.clone())
        .backup(provider.clone())
        .build();
    let report = bounded(
        "the resumed deployment",
        support::resume_to_end(&resumed, &id),
    )
    .await;
    println!("{report}");
    let reason = failed_reason(&report);
    assert!(
        reason.contains("cannot be confirmed")
            && reason.contains("listing the backups of web")
            && reason.contains("maxDeploymentDuration (20m)")
            && reason.contains("nothing was deployed"),
        "{reason}"
    );
    assert!(
        support::kinds(&report)
            .iter()
            .any(|k| matches!(k, EventKind::Anomaly { summary, .. } if summary.contains("cannot be confirmed"))),
        "{report}"
    );
    assert_eq!(took(&report), max, "cancelled at the deadline");
    assert!(provider.inner.taken().is_empty(), "no backup was taken");
    assert_nothing_deployed(&world, &id).await;
}

/// Starts the rollback of `o` to 1.0.0 within `max`, which must be refused; answers the
/// refusal's message and how long it took.
async fn refused_rollback(o: &Orchestrator, max: Duration) -> (String, Duration) {
    let asked = o.clock().now();
    let started = bounded(
        "the rollback",
        o.start_rollback_to(&canary_within(max), SERVICE, v("1.0.0")),
    )
    .await;
    let Err(refused) = started else {
        panic!("the rollback was not refused");
    };
    let after = o.clock().now().saturating_duration_since(asked);
    (refused.to_string(), after)
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_retention_check_never_answers_is_refused_at_the_deadline() {
    let retention = Retention::keep_last(5).expect("retention");
    let provider = HangingBackup::over(InMemoryBackup::new().with_retention(retention));
    let max = Duration::from_secs(30 * 60);
    let (world, o) = upgraded(provider.clone(), max).await;
    provider.hang_list.store(true, Ordering::SeqCst);
    let (msg, after) = refused_rollback(&o, max).await;
    assert!(
        msg.contains("cannot be checked")
            && msg.contains("listing the backups of web")
            && msg.contains("maxDeploymentDuration (30m) ran out"),
        "{msg}"
    );
    assert_eq!(after, max);
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
    assert_eq!(provider.inner.taken().len(), 1, "no backup was taken");
    assert_eq!(
        world.live_version().await.map(|l| l.1),
        Some("1.1.0".into())
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_restore_point_lookup_never_answers_is_refused_at_the_deadline() {
    let provider = HangingBackup::over(InMemoryBackup::new());
    let max = Duration::from_secs(30 * 60);
    let (_world, o) = upgraded(provider.clone(), max).await;
    provider.hang_info.store(true, Ordering::SeqCst);
    let (msg, after) = refused_rollback(&o, max).await;
    assert!(
        msg.contains("whether it exists cannot be checked")
            && msg.contains("maxDeploymentDuration (30m) ran out"),
        "{msg}"
    );
    assert_eq!(after, max);
    assert_eq!(provider.stall.dropped(), 1, "the call was dropped");
}
