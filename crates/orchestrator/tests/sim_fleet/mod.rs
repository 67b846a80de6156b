//! A simulated fleet for the report tests (charts and schema): versions 1.0.0 and 1.1.0 make
//! 0.5% errors, 1.2.0 the rate the test asks for, under 300 requests a second, and a config
//! whose canary and gradual blue-green runs take a few virtual minutes.

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, InMemoryJournal, Journal, Orchestrator, Report, ServiceBackends,
    StrategyKind, TrafficStrategyKind,
};
use serin_sim::{Load, Schedule, SimConfig, SimWorld, VersionProfile};
use serin_traffic::TrafficRouter;

pub const SERVICE: &str = "web";

pub fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

/// The world and an orchestrator over it, nothing installed yet.
pub fn fleet(seed: u64, bad_rate: f64) -> (SimWorld, Orchestrator) {
    let world = world(seed, bad_rate);
    let orchestrator = orchestrator(
        &world,
        Arc::new(world.router()),
        Arc::new(InMemoryJournal::new()),
    );
    (world, orchestrator)
}

/// The world alone, nothing installed yet.
pub fn world(seed: u64, bad_rate: f64) -> SimWorld {
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
            .with_profile(v("1.2.0"), profile(bad_rate)),
    )
    .expect("world")
}

/// An orchestrator over `world`'s platform, metrics and health, as a process starting now
/// builds it: traffic goes through `router`, deployments are journalled to `journal`.
pub fn orchestrator(
    world: &SimWorld,
    router: Arc<dyn TrafficRouter>,
    journal: Arc<dyn Journal>,
) -> Orchestrator {
    let backends =
        ServiceBackends::new(router, Arc::new(world.metrics()), Arc::new(world.health()));
    Orchestrator::builder(Arc::new(world.platform()), journal)
        .service(SERVICE, backends)
        .clock(Clock::starting_at(world.now()))
        .build()
}

pub fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = DeploymentConfig::new(strategy, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 10;
    c.canary_config.increment_percentage = 30;
    c.canary_config.increment_interval = Duration::from_secs(120);
    c.canary_config.metrics_window = Duration::from_secs(30);
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

pub async fn deploy(o: &Orchestrator, version: &str, strategy: StrategyKind) -> Report {
    o.run(&config(version, strategy))
        .await
        .expect("run")
        .remove(0)
}
