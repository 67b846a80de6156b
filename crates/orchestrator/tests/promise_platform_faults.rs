//! Zero downtime and a small blast radius under platform faults, on the simulated fleet, for
//! every strategy: a bring-up the platform fails or that never gets ready in time moves no
//! traffic and loses no request; instances of the new version that die mid-rollout are rolled
//! back from fast, with traffic back on the old version.

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, EventKind, InMemoryJournal, Orchestrator, Outcome, Platform, Report,
    ServiceBackends, StrategyKind, TrafficStrategyKind,
};
use serin_signals::{Timestamp, Track, Window};
use serin_sim::{Fault, Load, Schedule, SimConfig, SimWorld, Span, VersionProfile};

const SERVICE: &str = "web";

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

const STRATEGIES: [StrategyKind; 3] = [
    StrategyKind::Canary,
    StrategyKind::BlueGreen,
    StrategyKind::BlueGreenWithCanary,
];

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
    c.blue_green_config.keep_old_warm_for = Duration::ZERO;
    c.blue_green_config.readiness_timeout = Duration::from_secs(120);
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.monitoring.monitoring_duration = Duration::from_secs(120);
    c.validate().expect("valid");
    c
}

/// A fleet serving 1.0.0 by `strategy` (1.0.0 and 1.1.0 fail 0.5% of requests) and an
/// orchestrator over it.
async fn serving(seed: u64, strategy: StrategyKind) -> (SimWorld, Orchestrator) {
    let profile = || {
        VersionProfile::default()
            .with_error_rate(Schedule::constant(0.005))
            .with_startup(Duration::from_secs(5))
    };
    let world = SimWorld::new(
        SimConfig::new(seed)
            .with_service(SERVICE)
            .with_load(Load::constant(300.0))
            .with_profile(v("1.0.0"), profile())
            .with_profile(v("1.1.0"), profile()),
    )
    .expect("world");
    let backends = ServiceBackends::new(
        Arc::new(world.router()),
        Arc::new(world.metrics()),
        Arc::new(world.health()),
    );
    let o = Orchestrator::builder(Arc::new(world.platform()), Arc::new(InMemoryJournal::new()))
        .service(SERVICE, backends)
        .clock(Clock::starting_at(world.now()))
        .build();
    let r = o
        .run(&config("1.0.0", strategy))
        .await
        .expect("install")
        .remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "install: {r}");
    (world, o)
}

/// How far into the world's script `world` is now.
fn since_start(world: &SimWorld) -> Duration {
    Duration::from_millis(
        world
            .now()
            .as_millis()
            .saturating_sub(world.config().start().as_millis()),
    )
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

fn new_track(strategy: StrategyKind) -> Track {
    match strategy {
        StrategyKind::Canary => Track::Canary,
        _ => Track::Green,
    }
}

/// The new version never got traffic, the old one serves it all, and no request was lost.
async fn nothing_moved(world: &SimWorld, report: &Report, since: Timestamp) {
    assert!(
        !matches!(report.outcome, Some(Outcome::Succeeded)),
        "{report}"
    );
    let raised = report
        .timeline
        .iter()
        .any(|e| matches!(&e.kind, EventKind::WeightChanged { percent, .. } if *percent > 0.0));
    assert!(!raised, "{report}");
    assert_eq!(live(world).await.as_deref(), Some("1.0.0"), "{report}");
    assert_eq!(unroutable_since(world, since), 0, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_bring_up_the_platform_fails_moves_no_traffic() {
    for (seed, strategy) in (1..).zip(STRATEGIES) {
        let (world, o) = serving(seed, strategy).await;
        let at = since_start(&world);
        world
            .inject(Fault::PlatformErrors {
                span: Span::new(at, at + Duration::from_secs(2)),
                message: "quota exceeded".into(),
            })
            .expect("fault");
        let since = world.now();
        let r = o
            .run(&config("1.1.0", strategy))
            .await
            .expect("run")
            .remove(0);
        nothing_moved(&world, &r, since).await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_new_version_that_never_gets_ready_in_time_moves_no_traffic() {
    for (seed, strategy) in (10..).zip(STRATEGIES) {
        let (world, o) = serving(seed, strategy).await;
        let at = since_start(&world);
        world
            .inject(Fault::SlowStart {
                track: Some(new_track(strategy)),
                span: Span::new(at, at + Duration::from_secs(3_600)),
                extra: Duration::from_secs(600),
            })
            .expect("fault");
        let since = world.now();
        let r = o
            .run(&config("1.1.0", strategy))
            .await
            .expect("run")
            .remove(0);
        nothing_moved(&world, &r, since).await;
    }
}

#[tokio::test(start_paused = true)]
async fn new_instances_dying_mid_rollout_are_rolled_back_from_fast() {
    for (seed, strategy) in (20..).zip(STRATEGIES) {
        let (world, o) = serving(seed, strategy).await;
        // A minute after the first weight (at about 5 s): mid-step.
        let crash = since_start(&world) + Duration::from_secs(65);
        world
            .inject(Fault::Crash {
                service: None,
                track: new_track(strategy),
                instance: None,
                at: crash,
            })
            .expect("fault");
        let r = o
            .run(&config("1.1.0", strategy))
            .await
            .expect("run")
            .remove(0);
        assert!(
            matches!(r.outcome, Some(Outcome::RolledBack { .. })),
            "{strategy:?}: {r}"
        );
        assert_eq!(live(&world).await.as_deref(), Some("1.0.0"), "{r}");
        let started = r
            .timeline
            .iter()
            .find_map(|e| matches!(e.kind, EventKind::RollbackStarted { .. }).then_some(e.at))
            .expect("a rollback");
        let after = started.saturating_duration_since(r.started_at);
        assert!(
            after <= Duration::from_secs(65 + 60),
            "{strategy:?}: rolled back {after:?} into the run, the crash at 65 s: {r}"
        );
    }
}
