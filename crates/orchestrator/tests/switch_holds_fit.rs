//! A blue-green switch holds each step of its plan before the next (`trafficInterval`), and
//! the deployment must be promoted before `maxDeploymentDuration`: a config whose switch holds
//! together outlast the deadline would roll back every deployment, however healthy, after
//! moving most of the traffic, so it is refused when it loads. One whose holds fit is promoted
//! on a simulated fleet.

use crate::sim_fleet;

use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, Outcome, StrategyKind, TrafficStrategyKind};

/// The simulated fleet's blue-green config, switching 10% every minute: 10% to 90% each held
/// a minute, 9m of holds before all traffic moves.
fn tenths_every_minute(version: &str, deadline: Duration) -> DeploymentConfig {
    let mut c = sim_fleet::config(version, StrategyKind::BlueGreen);
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 10.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.blue_green_config.readiness_timeout = Duration::from_secs(60);
    c.max_deployment_duration = deadline;
    c
}

#[test]
fn a_gradual_switch_that_outlasts_the_deadline_is_refused() {
    let err = tenths_every_minute("1.1.0", Duration::from_secs(5 * 60))
        .validate()
        .expect_err("9m of holds in 5m")
        .to_string();
    assert!(
        err.contains("maxDeploymentDuration `5m`")
            && err.contains("(9m")
            && err.contains("blueGreenConfig.trafficInterval"),
        "{err}"
    );
    tenths_every_minute("1.1.0", Duration::from_secs(9 * 60))
        .validate()
        .expect_err("9m of holds in 9m");
    tenths_every_minute("1.1.0", Duration::from_secs(9 * 60 + 1))
        .validate()
        .expect("9m of holds in 9m 1s");
}

#[test]
fn a_weighted_switch_that_outlasts_the_deadline_is_refused() {
    let load = |deadline: &str| {
        DeploymentConfig::from_yaml(&format!(
            "strategy: blue-green\nversion: 1.1.0\ntargetServices: [web]\n\
             maxDeploymentDuration: {deadline}\nblueGreenConfig:\n  readinessTimeout: 1m\n  \
             trafficStrategy: weighted\n  weights: [10, 50]\n  trafficInterval: 3m\n"
        ))
    };
    let err = load("6m").expect_err("6m of holds in 6m").to_string();
    assert!(
        err.contains("maxDeploymentDuration `6m`")
            && err.contains("(6m")
            && err.contains("blueGreenConfig.weights"),
        "{err}"
    );
    load("7m").expect("6m of holds in 7m");
}

#[test]
fn the_environment_s_interval_is_named_when_it_makes_the_switch_outlast_the_deadline() {
    let c = tenths_every_minute("1.1.0", Duration::from_secs(10 * 60));
    let err = c
        .with_overrides(|k| (k == "TRAFFIC_INTERVAL").then(|| "120".to_owned()))
        .expect_err("18m of holds in 10m")
        .to_string();
    assert!(
        err.contains("maxDeploymentDuration `10m`") && err.contains("set by TRAFFIC_INTERVAL"),
        "{err}"
    );
}

#[test]
fn strategies_that_do_not_switch_are_not_held_to_the_switch_s_holds() {
    for strategy in [StrategyKind::Canary, StrategyKind::BlueGreenWithCanary] {
        let mut c = tenths_every_minute("1.1.0", Duration::from_secs(2 * 3600));
        c.strategy = strategy;
        c.blue_green_config.traffic_interval = Duration::from_secs(3600);
        c.validate()
            .expect("no switch: its holds are not waited for");
    }
}

#[tokio::test(start_paused = true)]
async fn a_switch_whose_holds_fit_is_promoted_before_the_deadline() {
    let (_world, o) = sim_fleet::fleet(31, 0.06);
    let install = sim_fleet::deploy(&o, "1.0.0", StrategyKind::BlueGreen).await;
    assert_eq!(install.outcome, Some(Outcome::Succeeded), "{install}");
    // The new colour is ready 5s after it starts; the holds end 9m later.
    let c = tenths_every_minute("1.1.0", Duration::from_secs(9 * 60 + 30));
    c.validate().expect("9m of holds in 9m 30s");
    let r = o.run(&c).await.expect("run").remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "{r}");
}
