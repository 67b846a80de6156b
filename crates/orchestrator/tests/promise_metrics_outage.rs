//! Never promote on missing evidence, on the simulated fleet, for every strategy: the metrics
//! source goes down mid-canary or mid-watch and stays down. The rollout holds (no weight
//! raised, no promotion, no completion) and, past its deadline, rolls back to the old version;
//! what it reports says the data was missing.

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, DeploymentHandle, EventKind, InMemoryJournal, OnDeadline,
    Orchestrator, Outcome, Report, ServiceBackends, Stage, StrategyKind, TrafficStrategyKind,
};
use serin_sim::{Fault, Load, Schedule, SimConfig, SimWorld, Span, VersionProfile};

const SERVICE: &str = "web";
const DEADLINE: Duration = Duration::from_secs(1_200);

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

/// A fleet whose 1.0.0 and 1.1.0 fail 0.5% of requests, serving 1.0.0 by `strategy`.
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
    let mut install = config("1.0.0", strategy);
    install.blue_green_config.keep_old_warm_for = Duration::ZERO;
    let r = o.run(&install).await.expect("install").remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "install: {r}");
    (world, o)
}

fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = DeploymentConfig::new(strategy, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 10;
    c.canary_config.increment_percentage = 30;
    c.canary_config.increment_interval = Duration::from_secs(120);
    c.canary_config.metrics_window = Duration::from_secs(30);
    c.canary_config.target_percentage = 50;
    c.canary_config.max_duration = DEADLINE;
    c.canary_config.replicas = 1;
    c.blue_green_config.replicas_per_env = 2;
    c.blue_green_config.health_check_interval = Duration::from_secs(1);
    c.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.monitoring.monitoring_duration = Duration::from_secs(120);
    c.monitoring.on_deadline = OnDeadline::Rollback;
    c.max_deployment_duration = DEADLINE;
    c.validate().expect("valid");
    c
}

/// Cuts the world's metrics source off from now until long past the deadline.
fn outage_from_now(world: &SimWorld) {
    let since = Duration::from_millis(
        world
            .now()
            .as_millis()
            .saturating_sub(world.config().start().as_millis()),
    );
    world
        .inject(Fault::MetricsOutage {
            span: Span::new(since, since + 4 * DEADLINE),
        })
        .expect("outage");
}

/// Waits (in virtual time) until `done` holds for the deployment's status.
async fn until(h: &DeploymentHandle, done: impl Fn(&serin_orchestrator::Status) -> bool) {
    for _ in 0..10_000 {
        if done(&h.status()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("never reached: {:?}", h.status());
}

/// The promise under an outage: never a completion; a rollback only once the deadline has
/// passed, whose report says the data was missing.
fn held_then_rolled_back(report: &Report) {
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    let completed = report
        .timeline
        .iter()
        .any(|e| matches!(e.kind, EventKind::Completed { .. }));
    assert!(!completed, "{report}");
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(
        took >= DEADLINE,
        "held until the deadline: {took:?} {report}"
    );
    let says_no_data = report.timeline.iter().any(|e| match &e.kind {
        EventKind::Anomaly { summary, .. } => summary.contains("no usable data"),
        EventKind::AnalysisResult { decision } => decision
            .evidence
            .iter()
            .any(|ev| ev.summary.contains("No data")),
        _ => false,
    });
    assert!(says_no_data, "the evidence says no data: {report}");
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_mid_canary_never_promotes_and_rolls_back_past_the_deadline() {
    for (seed, strategy) in [
        (1, StrategyKind::Canary),
        (2, StrategyKind::BlueGreenWithCanary),
        (3, StrategyKind::BlueGreen),
    ] {
        let (world, o) = serving(seed, strategy).await;
        let h = o
            .start(&config("1.1.0", strategy), SERVICE)
            .await
            .expect("start");
        until(&h, |s| s.weight > 0.0).await;
        outage_from_now(&world);
        let r = h.wait().await.expect("report");
        held_then_rolled_back(&r);
    }
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_mid_watch_never_completes_and_rolls_back_past_the_deadline() {
    for (seed, strategy) in [
        (4, StrategyKind::Canary),
        (5, StrategyKind::BlueGreenWithCanary),
        (6, StrategyKind::BlueGreen),
    ] {
        let (world, o) = serving(seed, strategy).await;
        // The watch (2 minutes) is shorter than the triggers' `staleAfter` (5 minutes): they
        // never go stale in it, yet it has seen no data. (It used to end and complete.)
        let h = o
            .start(&config("1.1.0", strategy), SERVICE)
            .await
            .expect("start");
        until(&h, |s| s.stage == Stage::Monitoring).await;
        outage_from_now(&world);
        let r = h.wait().await.expect("report");
        held_then_rolled_back(&r);
    }
}
