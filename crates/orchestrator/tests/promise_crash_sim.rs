//! Crash-safety on the simulated fleet, for every strategy: the executor is killed at a chosen
//! virtual time, stays down a while as traffic keeps flowing, and a new orchestrator resumes
//! from the same journal. The split in force is always one the journal knows, the deployment
//! ends with all traffic on one version that agrees with its outcome, no request ever reaches
//! an unready track, and the report's events run without a gap or a repeat.

use crate::promise_support;
use crate::sim_fleet;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, EventKind, InMemoryJournal, Outcome, Report, StrategyKind,
};
use serin_sim::SimWorld;

use promise_support::{
    STRATEGIES, assert_all_traffic_on, assert_events_in_sequence, assert_no_request_lost, config,
    installed, world,
};
use sim_fleet::{SERVICE, orchestrator};

/// The shared config with the old blue-green track kept warm a minute after the switch: one
/// more stage to crash in.
fn kept_warm(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = config(version, strategy);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    c
}

/// Deploys `version` by `strategy`, killing the executor `crash_after` into the run and
/// resuming it `down` later with a new orchestrator; checks every promise and returns the
/// report.
async fn crashed_and_resumed(
    world: &SimWorld,
    version: &str,
    strategy: StrategyKind,
    crash_after: Duration,
    down: Duration,
) -> Report {
    let journal = Arc::new(InMemoryJournal::new());
    let first = orchestrator(world, Arc::new(world.router()), journal.clone());
    installed(&first, &config("1.0.0", strategy)).await;
    let since = world.now();
    let splits_before = world.applied_splits().len();

    let h = first
        .start(&kept_warm(version, strategy), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    tokio::time::sleep(crash_after).await;
    h.kill();
    drop(first);
    let split_at_crash = world.applied_splits().last().expect("a split").1.clone();
    tokio::time::sleep(down).await;
    assert_eq!(
        world.lock_holder(SERVICE).as_deref(),
        Some(id.as_str()),
        "the killed deployment keeps the service's lock while the executor is down"
    );
    assert_eq!(
        world.applied_splits().last().expect("a split").1,
        split_at_crash,
        "nothing moves traffic while the executor is down"
    );

    // A new orchestrator, as a restarted process builds it, over the same journal.
    let second = orchestrator(world, Arc::new(world.router()), journal);
    let unfinished = second.unfinished().await.expect("unfinished");
    assert_eq!(
        unfinished,
        vec![id.clone()],
        "{strategy:?} killed before its end at {crash_after:?}"
    );
    let resumed = second.resume(&id).await.expect("resume");
    let report = resumed.wait().await.expect("report");
    let what = format!("{strategy:?} to {version}, crash after {crash_after:?}: {report}");

    let old = match &report.outcome {
        Some(Outcome::Succeeded) => false,
        Some(Outcome::RolledBack { .. }) => true,
        other => panic!("ended {other:?}: {what}"),
    };
    let expected = if old { "1.0.0" } else { version };
    assert_all_traffic_on(world, expected, &what).await;
    assert_no_request_lost(world, since, &what);
    assert_events_in_sequence(&report, &what);
    assert_eq!(
        world.lock_holder(SERVICE),
        None,
        "the lock is freed: {what}"
    );
    let count = |f: fn(&EventKind) -> bool| report.timeline.iter().filter(|e| f(&e.kind)).count();
    assert_eq!(
        count(|k| matches!(k, EventKind::Started { .. })),
        1,
        "{what}"
    );
    assert_eq!(
        count(|k| matches!(
            k,
            EventKind::Completed { .. } | EventKind::RolledBack { .. }
        )),
        1,
        "{what}"
    );
    // Every split applied is one the deployment announced (journalled) or the one it
    // started under: never an unknown split.
    let announced: Vec<f64> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    for (_, split) in &world.applied_splits()[splits_before..] {
        let news: f64 = split
            .backends()
            .iter()
            .filter(|b| !is_old_track(&report, b.name().as_str()))
            .map(|b| f64::from(b.weight().bps()) / 100.0)
            .sum();
        assert!(
            news == 0.0 || announced.contains(&news),
            "split {split:?} ({news}% new) never announced ({announced:?}): {what}"
        );
    }
    report
}

/// Whether `track` is the track the deployment started from.
fn is_old_track(report: &Report, track: &str) -> bool {
    report
        .from
        .as_ref()
        .is_some_and(|p| p.track.as_str() == track)
}

/// Crash points across a good version's run (each strategy's takes five to six minutes): the
/// bring-up, the first weight, later steps, the watch, the warm delay before the old track
/// retires.
const GOOD_CRASHES: [u64; 6] = [1, 4, 30, 130, 250, 300];

/// Crash points across a bad version's run (rolled back within a minute): the bring-up, the
/// first weight, the first analyses, the rollback.
const BAD_CRASHES: [u64; 5] = [1, 4, 10, 18, 25];

/// Deploys `version` by every strategy, crashed at each of `crashes` (seconds into the run)
/// on a world of its own, seeded from `first_seed` on; every run's strategy, crash point and
/// report.
async fn crashed_everywhere(
    version: &str,
    first_seed: u64,
    crashes: &[u64],
) -> Vec<(StrategyKind, u64, Report)> {
    let mut runs = Vec::new();
    for strategy in STRATEGIES {
        for (seed, &at) in (first_seed..).zip(crashes) {
            let world = world(seed);
            let down = Duration::from_secs(300);
            let r =
                crashed_and_resumed(&world, version, strategy, Duration::from_secs(at), down).await;
            runs.push((strategy, at, r));
        }
    }
    runs
}

#[tokio::test(start_paused = true)]
async fn a_good_version_crashed_at_any_stage_is_promoted_after_resume() {
    for (strategy, at, r) in crashed_everywhere("1.1.0", 40, &GOOD_CRASHES).await {
        assert_eq!(
            r.outcome,
            Some(Outcome::Succeeded),
            "{strategy:?} at {at}s: {r}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_version_crashed_at_any_stage_is_rolled_back_after_resume() {
    for (strategy, at, r) in crashed_everywhere("1.2.0", 60, &BAD_CRASHES).await {
        assert!(
            matches!(r.outcome, Some(Outcome::RolledBack { .. })),
            "{strategy:?} at {at}s: {r}"
        );
    }
}
