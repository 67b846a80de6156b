//! Crash-safety on the simulated fleet, for every strategy: the executor is killed at a chosen
//! virtual time, stays down a while as traffic keeps flowing, and a new orchestrator resumes
//! from the same journal. The split in force is always one the journal knows, the deployment
//! ends with all traffic on one version that agrees with its outcome, no request ever reaches
//! an unready track, and the report's events run without a gap or a repeat.

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, EventKind, InMemoryJournal, Orchestrator, Outcome, Platform, Report,
    ServiceBackends, StrategyKind, TrafficStrategyKind,
};
use serin_signals::{Timestamp, Window};
use serin_sim::{Load, Schedule, SimConfig, SimWorld, VersionProfile};

const SERVICE: &str = "web";

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

/// A fleet whose 1.0.0 and 1.1.0 fail 0.5% of requests and whose 1.2.0 fails 20%.
fn world(seed: u64) -> SimWorld {
    let profile = |rate| {
        VersionProfile::default()
            .with_error_rate(Schedule::constant(rate))
            .with_startup(Duration::from_secs(5))
    };
    SimWorld::new(
        SimConfig::new(seed)
            .with_service(SERVICE)
            .with_load(Load::constant(300.0))
            .with_profile(v("1.0.0"), profile(0.005))
            .with_profile(v("1.1.0"), profile(0.005))
            .with_profile(v("1.2.0"), profile(0.20)),
    )
    .expect("world")
}

/// A new orchestrator, as a restarted process builds it, over the world and `journal`.
fn orchestrator(world: &SimWorld, journal: &Arc<InMemoryJournal>) -> Orchestrator {
    let backends = ServiceBackends::new(
        Arc::new(world.router()),
        Arc::new(world.metrics()),
        Arc::new(world.health()),
    );
    Orchestrator::builder(Arc::new(world.platform()), journal.clone())
        .service(SERVICE, backends)
        .clock(Clock::starting_at(world.now()))
        .build()
}

fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = DeploymentConfig::new(strategy, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 10;
    c.canary_config.increment_percentage = 30;
    c.canary_config.increment_interval = Duration::from_secs(120);
    c.canary_config.metrics_window = Duration::from_secs(30);
    c.canary_config.target_percentage = 50;
    c.canary_config.replicas = 1;
    c.blue_green_config.replicas_per_env = 2;
    c.blue_green_config.health_check_interval = Duration::from_secs(1);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.monitoring.monitoring_duration = Duration::from_secs(120);
    c.validate().expect("valid");
    c
}

/// The version all traffic goes to, if one track takes it all.
async fn live(world: &SimWorld) -> Option<String> {
    let split = world.applied_splits().last()?.1.clone();
    let all = split
        .backends()
        .iter()
        .find(|b| b.weight().bps() == 10_000)?;
    let tracks = world.platform().list().await.expect("list");
    let t = tracks
        .iter()
        .find(|t| t.track.as_str() == all.name().as_str())?;
    Some(t.version.to_string())
}

fn unroutable_since(world: &SimWorld, since: Timestamp) -> u64 {
    let w = Window::new(since, world.now()).expect("window");
    world.unroutable(w).requests()
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
    let first = orchestrator(world, &journal);
    let mut install = config("1.0.0", strategy);
    install.blue_green_config.keep_old_warm_for = Duration::ZERO;
    let r = first.run(&install).await.expect("install").remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "install: {r}");
    let since = world.now();
    let splits_before = world.applied_splits().len();

    let h = first
        .start(&config(version, strategy), SERVICE)
        .await
        .expect("start");
    let id = h.id().to_owned();
    tokio::time::sleep(crash_after).await;
    h.kill();
    drop(first);
    let split_at_crash = world.applied_splits().last().expect("a split").1.clone();
    tokio::time::sleep(down).await;
    assert_eq!(
        world.applied_splits().last().expect("a split").1,
        split_at_crash,
        "nothing moves traffic while the executor is down"
    );

    let second = orchestrator(world, &journal);
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
    assert_eq!(live(world).await.as_deref(), Some(expected), "{what}");
    assert_eq!(unroutable_since(world, since), 0, "no request lost: {what}");
    for (i, e) in report.timeline.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "events without gap or repeat: {what}");
    }
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

const STRATEGIES: [StrategyKind; 3] = [
    StrategyKind::Canary,
    StrategyKind::BlueGreen,
    StrategyKind::BlueGreenWithCanary,
];

/// Crash points across a good version's run (each strategy's takes five to six minutes): the
/// bring-up, the first weight, later steps, the watch, the warm delay before the old track
/// retires.
const GOOD_CRASHES: [u64; 6] = [1, 4, 30, 130, 250, 300];

/// Crash points across a bad version's run (rolled back within a minute): the bring-up, the
/// first weight, the first analyses, the rollback.
const BAD_CRASHES: [u64; 5] = [1, 4, 10, 18, 25];

#[tokio::test(start_paused = true)]
async fn a_good_version_crashed_at_any_stage_is_promoted_after_resume() {
    for strategy in STRATEGIES {
        for (i, at) in GOOD_CRASHES.into_iter().enumerate() {
            let world = world(40 + i as u64);
            let r = crashed_and_resumed(
                &world,
                "1.1.0",
                strategy,
                Duration::from_secs(at),
                Duration::from_secs(300),
            )
            .await;
            assert_eq!(
                r.outcome,
                Some(Outcome::Succeeded),
                "{strategy:?} at {at}s: {r}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_version_crashed_at_any_stage_is_rolled_back_after_resume() {
    for strategy in STRATEGIES {
        for (i, at) in BAD_CRASHES.into_iter().enumerate() {
            let world = world(60 + i as u64);
            let r = crashed_and_resumed(
                &world,
                "1.2.0",
                strategy,
                Duration::from_secs(at),
                Duration::from_secs(300),
            )
            .await;
            assert!(
                matches!(r.outcome, Some(Outcome::RolledBack { .. })),
                "{strategy:?} at {at}s: {r}"
            );
        }
    }
}
