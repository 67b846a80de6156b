//! Crash and resume at every journal write of one canary run: the executor is stopped right
//! after each record is written (before it acts), a new orchestrator resumes from the journal,
//! and the deployment ends exactly as an uninterrupted run does, with no event lost. A record
//! edited so that its configuration no longer validates is refused on resume.

use crate::support;

use std::collections::BTreeMap;
use std::time::Duration;

use serin_orchestrator::{Event, Journal, Outcome, Platform, Report};
use serin_signals::Track;
use serin_traffic::TrafficRouter;
use support::{SERVICE, World, canary_config, drain, short_canary_config};

struct Run {
    report: Report,
    delivered: BTreeMap<u64, Event>,
    live: Option<(Track, String)>,
    tracks: usize,
    records: usize,
}

/// Runs the canary of 1.1.0 over 1.0.0 (error rates given), crashing after the `crash_at`-th
/// record of the deployment when given.
async fn run(old_rate: f64, new_rate: f64, crash_at: Option<usize>) -> Run {
    let (world, _traffic) = World::serving(old_rate, new_rate).await;
    let before = world.journal.len();
    let first = world.orchestrator();
    let mut events = first.subscribe();
    let mut delivered = BTreeMap::new();
    // A short canary keeps the number of crash points (one per record) small.
    let mut config = short_canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;

    let report = match crash_at {
        None => support::run_to_end(&first, &config).await,
        Some(k) => {
            let last = support::crash_at(&world, first.clone(), config, before + k).await;
            for e in drain(&mut events) {
                delivered.insert(e.seq, e);
            }
            let second = world.orchestrator();
            events = second.subscribe();
            let unfinished = second.unfinished().await.expect("unfinished");
            let id = if last.state.is_done() {
                // The crash came after the final record: nothing is left to do but to announce
                // its events, which resuming a finished deployment does.
                assert!(unfinished.is_empty());
                last.deployment
            } else {
                assert_eq!(unfinished, vec![last.deployment.clone()]);
                last.deployment
            };
            support::resume_to_end(&second, &id).await
        }
    };
    for e in drain(&mut events) {
        delivered.insert(e.seq, e);
    }
    let tracks = world
        .platform
        .list()
        .await
        .expect("list")
        .iter()
        .filter(|t| t.service == SERVICE)
        .count();
    Run {
        report,
        delivered,
        live: world.live_version().await,
        tracks,
        records: world.journal.len() - before,
    }
}

fn check_against(reference: &Run, resumed: &Run, k: usize) {
    assert_eq!(
        resumed.report.outcome.as_ref().map(std::mem::discriminant),
        reference
            .report
            .outcome
            .as_ref()
            .map(std::mem::discriminant),
        "crash after record {k}: {:?}",
        resumed.report.outcome
    );
    assert_eq!(resumed.live, reference.live, "crash after record {k}");
    assert_eq!(resumed.tracks, 1, "crash after record {k}: one track left");
    // No gap and no loss: every journalled event reached a subscriber.
    let seqs: Vec<u64> = resumed.report.timeline.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (0..seqs.len() as u64).collect::<Vec<_>>(),
        "crash after record {k}"
    );
    for e in &resumed.report.timeline {
        assert_eq!(
            resumed.delivered.get(&e.seq),
            Some(e),
            "crash after record {k}: event {} lost",
            e.seq
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_promoted_canary_survives_a_crash_at_every_journal_write() {
    let reference = run(0.005, 0.005, None).await;
    assert_eq!(reference.report.outcome, Some(Outcome::Succeeded));
    assert!(reference.records > 10, "{} records", reference.records);
    for k in 1..=reference.records {
        let resumed = run(0.005, 0.005, Some(k)).await;
        check_against(&reference, &resumed, k);
    }
}

#[tokio::test(start_paused = true)]
async fn a_rolled_back_canary_survives_a_crash_at_every_journal_write() {
    let reference = run(0.005, 0.05, None).await;
    assert!(matches!(
        reference.report.outcome,
        Some(Outcome::RolledBack { .. })
    ));
    for k in 1..=reference.records {
        let resumed = run(0.005, 0.05, Some(k)).await;
        check_against(&reference, &resumed, k);
    }
}

#[tokio::test(start_paused = true)]
async fn on_resume_rollback_rolls_an_interrupted_canary_back() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.on_resume = serin_orchestrator::OnResume::Rollback;
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    support::until_weight(&h, 40.0).await;
    h.kill();
    let report = world.resumed(&id).await;
    assert!(
        matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("onResume")),
        "{:?}",
        report.outcome
    );
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}

#[tokio::test(start_paused = true)]
async fn a_record_whose_config_no_longer_validates_is_refused_on_resume() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&canary_config("1.1.0")).await;
    let id = h.id().to_owned();
    support::until_weight(&h, 10.0).await;
    h.kill();
    // The journal's last record, edited by hand: a canary step of 0%.
    let mut edited = world.journal.all().last().expect("records").clone();
    edited.seq += 1;
    edited.state.config.canary_config.increment_percentage = 0;
    world.journal.append(&edited).await.expect("append");
    let split = world.router.current().await.expect("split");
    let Err(e) = world.orchestrator().resume(&id).await else {
        panic!("a record whose config does not validate was resumed");
    };
    assert!(e.to_string().contains("incrementPercentage"), "{e}");
    // Nothing moved: the split is as the killed run left it.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(world.router.current().await.expect("split"), split);
}
