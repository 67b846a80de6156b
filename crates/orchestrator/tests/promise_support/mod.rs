//! The promise scenarios' common ground: the simulated fleet (its 1.2.0 fails 20% of
//! requests), a config whose every strategy steps within minutes, and the checks the promises
//! share: which version takes all traffic, that no request was lost, that a report's events
//! run without a gap or a repeat.

use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, Orchestrator, Outcome, Platform, Report, Status,
    StrategyKind,
};
use serin_signals::{Timestamp, Track, Window};
use serin_sim::SimWorld;

use crate::sim_fleet;

pub const STRATEGIES: [StrategyKind; 3] = [
    StrategyKind::Canary,
    StrategyKind::BlueGreen,
    StrategyKind::BlueGreenWithCanary,
];

/// How often the bad version, 1.2.0, fails a request.
const BAD_RATE: f64 = 0.20;

/// A fleet whose 1.0.0 and 1.1.0 fail 0.5% of requests and whose 1.2.0 fails 20%, nothing
/// installed yet.
pub fn world(seed: u64) -> SimWorld {
    sim_fleet::world(seed, BAD_RATE)
}

/// The fleet serving 1.0.0, installed by `install`, and the orchestrator that installed it.
pub async fn serving(seed: u64, install: &DeploymentConfig) -> (SimWorld, Orchestrator) {
    let (world, o) = sim_fleet::fleet(seed, BAD_RATE);
    installed(&o, install).await;
    (world, o)
}

/// Runs `install`, which must succeed.
pub async fn installed(o: &Orchestrator, install: &DeploymentConfig) {
    let r = o.run(install).await.expect("install").remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "install: {r}");
}

/// Runs `config` to its end.
pub async fn run(o: &Orchestrator, config: &DeploymentConfig) -> Report {
    o.run(config).await.expect("run").remove(0)
}

/// The fleet's config with the canary stopping at 50% and the old blue-green track retired
/// as soon as the switch is done.
pub fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = sim_fleet::config(version, strategy);
    c.canary_config.target_percentage = 50;
    c.blue_green_config.keep_old_warm_for = Duration::ZERO;
    c.validate().expect("valid");
    c
}

/// The track a deployment by `strategy` brings the new version up on.
pub fn new_track(strategy: StrategyKind) -> Track {
    match strategy {
        StrategyKind::Canary => Track::Canary,
        _ => Track::Green,
    }
}

/// How far into the world's script `world` is now.
pub fn since_start(world: &SimWorld) -> Duration {
    Duration::from_millis(
        world
            .now()
            .as_millis()
            .saturating_sub(world.config().start().as_millis()),
    )
}

/// Waits (in virtual time) until `done` holds for the deployment's status.
pub async fn until(h: &DeploymentHandle, done: impl Fn(&Status) -> bool) {
    for _ in 0..10_000 {
        if done(&h.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never reached: {:?}", h.status());
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

/// All traffic goes to `version`.
pub async fn assert_all_traffic_on(world: &SimWorld, version: &str, what: &str) {
    assert_eq!(live(world).await.as_deref(), Some(version), "{what}");
}

/// No request since `since` found no track to serve it.
pub fn assert_no_request_lost(world: &SimWorld, since: Timestamp, what: &str) {
    let w = Window::new(since, world.now()).expect("window");
    assert_eq!(world.unroutable(w).requests(), 0, "no request lost: {what}");
}

/// The report's events are numbered from 0 without a gap or a repeat.
pub fn assert_events_in_sequence(report: &Report, what: &str) {
    for (i, e) in report.timeline.iter().enumerate() {
        assert_eq!(e.seq, i as u64, "events without gap or repeat: {what}");
    }
}
