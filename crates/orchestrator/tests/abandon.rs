//! A deployment cut short that will not be resumed is abandoned: it ends as failed, journalled
//! and announced, its platform lock freed, and nothing else moves; a finished or running one,
//! or one whose lock another deployment holds, is refused and nothing is written.

use crate::support;

use serin_orchestrator::{EventKind, Journal, Outcome, Platform};
use serin_signals::Track;
use support::{SERVICE, World, canary_config, drain};

#[tokio::test(start_paused = true)]
async fn an_interrupted_canary_is_abandoned_as_failed_and_nothing_moves() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&canary_config("1.1.0")).await;
    let id = h.id().to_owned();
    support::until_weight(&h, 40.0).await;
    h.kill();
    let tracks_before = world.platform.list().await.unwrap();
    let records_before = world.journal.records(&id).await.unwrap().len();

    let orchestrator = world.orchestrator();
    let mut events = orchestrator.subscribe();
    assert_eq!(orchestrator.unfinished().await.unwrap(), vec![id.clone()]);
    let report = orchestrator
        .abandon(&id, "its processes ended with the command that ran them")
        .await
        .unwrap();
    match &report.outcome {
        Some(Outcome::Failed { reason }) => assert!(
            reason.contains("abandoned in the canary stage")
                && reason.contains("its processes ended"),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
    // One final record, its events announced; no split, no track touched.
    let records = world.journal.records(&id).await.unwrap();
    assert_eq!(records.len(), records_before + 1);
    assert!(records.last().unwrap().effects.is_empty());
    let kinds: Vec<EventKind> = drain(&mut events).into_iter().map(|e| e.kind).collect();
    assert!(
        kinds.iter().any(|k| matches!(k, EventKind::Failed { .. })),
        "{kinds:?}"
    );
    assert_eq!(world.platform.list().await.unwrap(), tracks_before);
    assert!(world.has_track(&Track::Canary).await);
    assert!(orchestrator.unfinished().await.unwrap().is_empty());
    // The platform's lock is free: another deployment may take it.
    world.platform.lock(SERVICE, "next").await.unwrap();
    world.platform.unlock(SERVICE, "next").await.unwrap();

    // Abandoned once: it has ended, and is refused again, writing nothing.
    let err = orchestrator.abandon(&id, "again").await.unwrap_err();
    assert!(err.to_string().contains("already ended"), "{err}");
    assert_eq!(
        world.journal.records(&id).await.unwrap().len(),
        records.len()
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_deployment_or_one_locked_by_another_is_not_abandoned() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let orchestrator = world.orchestrator();
    let h = orchestrator
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .unwrap();
    let id = h.id().to_owned();
    support::until_weight(&h, 10.0).await;
    let records = world.journal.records(&id).await.unwrap().len();
    let err = orchestrator.abandon(&id, "not mine").await.unwrap_err();
    assert!(err.to_string().contains("running"), "{err}");
    assert!(world.journal.records(&id).await.unwrap().len() >= records);
    assert_eq!(
        orchestrator.status(&id).await.unwrap().outcome,
        None,
        "still running"
    );
    h.kill();

    // Cut short, but another deployment holds the platform's lock: refused.
    world.platform.unlock(SERVICE, &id).await.unwrap();
    world.platform.lock(SERVICE, "other").await.unwrap();
    let fresh = world.orchestrator();
    let before = world.journal.records(&id).await.unwrap().len();
    assert!(fresh.abandon(&id, "locked").await.is_err());
    assert_eq!(world.journal.records(&id).await.unwrap().len(), before);
    assert!(fresh.abandon("no-such-deployment", "x").await.is_err());
}
