//! An operator's abort or promote racing a step, on the simulated fleet, for every strategy:
//! sent at the very instant a step moves the weight (and just before and after it), the
//! command wins whichever way the race goes. An abort ends rolled back with all traffic on the
//! old version, a promote ends with all traffic on the new one; no request is lost either way,
//! and the report's events run without a gap or a repeat.

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, InMemoryJournal, Orchestrator, Outcome, Platform, ServiceBackends,
    StrategyKind, TrafficStrategyKind,
};
use serin_signals::Window;
use serin_sim::{Load, Schedule, SimConfig, SimWorld, VersionProfile};

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
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.monitoring.monitoring_duration = Duration::from_secs(120);
    c.validate().expect("valid");
    c
}

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

/// When the second weight is set, counting from the start: the new track is ready at 5 s and
/// takes its first weight then; a gradual switch steps every 60 s, a canary every 120 s.
fn second_step(strategy: StrategyKind) -> Duration {
    match strategy {
        StrategyKind::BlueGreen => Duration::from_secs(65),
        _ => Duration::from_secs(125),
    }
}

/// Sends `command` at `offset` around the second step and checks the run ends as it asks.
async fn race(seed: u64, strategy: StrategyKind, offset: i64, abort: bool) {
    let (world, o) = serving(seed, strategy).await;
    let since = world.now();
    let h = o
        .start(&config("1.1.0", strategy), SERVICE)
        .await
        .expect("start");
    let at = second_step(strategy).as_millis() as i64 + offset;
    tokio::time::sleep(Duration::from_millis(at as u64)).await;
    let sent = if abort {
        h.abort().await
    } else {
        h.promote().await
    };
    let r = h.wait().await.expect("report");
    let what = format!("{strategy:?}, abort {abort}, {offset:+} ms: {sent:?} {r}");
    let expected = if abort {
        assert!(
            matches!(&r.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("abort")),
            "{what}"
        );
        "1.0.0"
    } else {
        assert_eq!(r.outcome, Some(Outcome::Succeeded), "{what}");
        "1.1.0"
    };
    assert_eq!(live(&world).await.as_deref(), Some(expected), "{what}");
    let w = Window::new(since, world.now()).expect("window");
    assert_eq!(world.unroutable(w).requests(), 0, "{what}");
    for (i, e) in r.timeline.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "{what}");
    }
}

#[tokio::test(start_paused = true)]
async fn an_abort_racing_a_step_always_rolls_back() {
    for (seed, strategy) in (1..).zip(STRATEGIES) {
        for offset in [-1, 0, 1] {
            race(seed, strategy, offset, true).await;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_promote_racing_a_step_always_promotes() {
    for (seed, strategy) in (10..).zip(STRATEGIES) {
        for offset in [-1, 0, 1] {
            race(seed, strategy, offset, false).await;
        }
    }
}
