//! A canary whose weights its router cannot take is refused before anything moves: in the
//! dry run and when it starts, naming the field, the step, the weight and the router's
//! granularity — not by the router once the new track is up.

use crate::support;

use std::sync::Arc;

use serin_orchestrator::{DeploymentConfig, Journal, Outcome, Platform, StrategyKind};
use serin_signals::Track;
use serin_traffic::{Capabilities, InMemoryRouter, Weight};
use support::{SERVICE, World, canary_config};

/// A world serving 1.0.0 behind a router taking weights in multiples of `percent`.
async fn on_router_of(percent: u8) -> World {
    let caps = Capabilities::weights_only()
        .with_weight_granularity(Weight::from_percent(percent).expect("percent"))
        .expect("granularity");
    let world = World {
        router: Arc::new(InMemoryRouter::with_capabilities(caps)),
        ..World::new()
    };
    world.install("1.0.0").await;
    world
}

/// `config` is refused by the dry run and by `start` with an error naming each of `named`,
/// and nothing moved: no deployment journalled, no canary track, the router untouched.
async fn refused(world: &World, config: &DeploymentConfig, named: &[&str]) {
    let orchestrator = world.orchestrator();
    let seen = world.router.history();
    let deployments = world.journal.deployments().await.expect("deployments");
    let planned = orchestrator.plan(config).await.expect_err("a dry run");
    let started = orchestrator
        .start(config, SERVICE)
        .await
        .expect_err("a start");
    for err in [planned.to_string(), started.to_string()] {
        for name in named {
            assert!(err.contains(name), "`{name}` not in: {err}");
        }
    }
    assert_eq!(world.router.history(), seen, "the router was not touched");
    assert_eq!(
        world.journal.deployments().await.expect("deployments"),
        deployments,
        "nothing journalled"
    );
    let tracks = world.platform.list().await.expect("tracks");
    assert_eq!(tracks.len(), 1, "no new track came up: {tracks:?}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_first_weight_off_the_granularity_refuses_the_canary_before_it_moves() {
    let world = on_router_of(100).await;
    // 10%, 40%, 70%: the first is already finer than an all-or-nothing switch.
    let config = canary_config("1.1.0");
    refused(
        &world,
        &config,
        &[
            "canaryConfig.initialPercentage",
            "step 0",
            "10%",
            "granularity 100%",
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_increment_off_the_granularity_is_named_by_its_field_and_step() {
    let world = on_router_of(10).await;
    let mut config = canary_config("1.1.0");
    config.canary_config.increment_percentage = 15;
    config.validate().expect("valid");
    // 10%, 25%: the second setWeight is the policy's third step.
    refused(
        &world,
        &config,
        &[
            "canaryConfig.incrementPercentage",
            "step 2",
            "25%",
            "granularity 10%",
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn an_explicit_step_off_the_granularity_is_named_by_its_path() {
    let world = on_router_of(5).await;
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setWeight": 10}, {"pause": {"duration": "1m"}},
                {"setWeight": 12}, {"pause": {"duration": "1m"}}]"#,
        )
        .expect("steps"),
    );
    config.validate().expect("valid");
    refused(
        &world,
        &config,
        &["canaryConfig.steps[2].setWeight", "12%", "granularity 5%"],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_canary_keeps_to_the_granularity_too() {
    let world = on_router_of(100).await;
    let mut config = canary_config("1.1.0");
    config.strategy = StrategyKind::BlueGreenWithCanary;
    config.validate().expect("valid");
    refused(
        &world,
        &config,
        &["canaryConfig.initialPercentage", "granularity 100%"],
    )
    .await;
}

/// A budget sizes the first weight in whole percents while the canary runs, which a coarser
/// router may not take.
#[tokio::test(start_paused = true)]
async fn an_exposure_budget_needs_a_router_of_whole_percents() {
    let world = on_router_of(5).await;
    let mut config = canary_config("1.1.0");
    config.canary_config.pacing = Some(
        serde_json::from_str(r#"{"detectableRatio": 2.0, "exposureBudget": 3000}"#)
            .expect("pacing"),
    );
    config.validate().expect("valid");
    refused(
        &world,
        &config,
        &["canaryConfig.pacing.exposureBudget", "granularity 5%"],
    )
    .await;
}

/// Weights on the granularity are planned as before, and a first install (no canary, all
/// traffic at once) needs none.
#[tokio::test(start_paused = true)]
async fn weights_on_the_granularity_and_first_installs_are_not_refused() {
    let world = on_router_of(5).await;
    let plans = world
        .orchestrator()
        .plan(&canary_config("1.1.0"))
        .await
        .expect("10%, 40% and 70% are multiples of 5%");
    assert_eq!(plans.len(), 1);
    let fresh = World {
        router: Arc::new(InMemoryRouter::with_capabilities(
            Capabilities::switch_only(),
        )),
        ..World::new()
    };
    let report = fresh.deploy(&canary_config("1.0.0")).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}
