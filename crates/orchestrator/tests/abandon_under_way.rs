//! A deployment abandoned while something was under way (a promotion's scale-up, a backup)
//! ends with nothing under way: its last record is a finished deployment's, which a resume (that
//! frees the platform's lock its end could not free) reads back like any other.

use crate::support;

use std::sync::atomic::Ordering;
use std::time::Duration;

use serin_orchestrator::{EventKind, InMemoryBackup, Journal, Outcome, Stage};
use support::{HangingBackup, SERVICE, backing_up, canary_config, slow_serving_world, until_stage};

#[tokio::test(start_paused = true)]
async fn a_deployment_abandoned_during_its_promotion_resumes_as_finished() {
    let (world, _traffic) = slow_serving_world(40).await;
    let h = world.start(&canary_config("1.1.0")).await;
    let id = h.id().to_owned();
    until_stage(&h, Stage::Canary).await;
    h.promote().await.expect("promote");
    // The promotion grows the canary track to full size, which takes some 40 s.
    let last = world.journal.records(&id).await.expect("records");
    assert!(last.last().expect("a record").state.promoting, "under way");
    h.kill();

    let orchestrator = world.orchestrator();
    let report = orchestrator
        .abandon(&id, "its processes ended with the command that ran them")
        .await
        .expect("abandoned");
    assert!(
        matches!(&report.outcome, Some(Outcome::Failed { reason }) if reason.contains("abandoned")),
        "{report}"
    );
    let records = world.journal.records(&id).await.expect("records");
    let last = records.last().expect("the final record");
    last.check_restored()
        .unwrap_or_else(|e| panic!("the final record reads back: {e}"));
    assert!(!last.state.promoting && !last.state.operator_promoted);

    // A finished deployment resumes to its report, changing nothing.
    let resumed = tokio::time::timeout(Duration::from_secs(60), async {
        orchestrator
            .resume(&id)
            .await
            .expect("resumed")
            .wait()
            .await
            .expect("report")
    })
    .await
    .expect("ends at once");
    assert_eq!(resumed.outcome, report.outcome);
}

/// Abandoned while its preparation backup was being taken: the final record leaves nothing
/// in flight, and says the backup cannot be confirmed (it may exist), as a resume would.
#[tokio::test(start_paused = true)]
async fn a_deployment_abandoned_during_its_backup_leaves_it_unconfirmed() {
    let provider = HangingBackup::over(InMemoryBackup::new());
    provider.hang_backup.store(true, Ordering::SeqCst);
    let (world, o) = backing_up(provider.clone()).await;
    let h = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    provider.stall.until_hung().await;
    h.kill();

    let report = world
        .orchestrator()
        .abandon(&id, "its process died")
        .await
        .expect("abandoned");
    assert!(
        matches!(report.outcome, Some(Outcome::Failed { .. })),
        "{report}"
    );
    let records = world.journal.records(&id).await.expect("records");
    let last = records.last().expect("the final record");
    last.check_restored()
        .unwrap_or_else(|e| panic!("the final record reads back: {e}"));
    assert_eq!(last.state.in_flight, None);
    assert!(last.state.backup_unconfirmed.is_some(), "{report}");
    assert!(
        report.timeline.iter().any(|e| matches!(
            &e.kind,
            EventKind::Anomaly { source, .. } if source == "backup"
        )),
        "{report}"
    );
}
