//! A deployment cut short and resumed with a router that cannot take the weights it has still
//! to set (a coarser one swapped in meanwhile) is refused before anything moves, naming the
//! field, the step, the weight and the router's granularity; it stays unfinished, and resumes
//! once the router is right.

use crate::support;

use std::sync::Arc;

use serin_orchestrator::{DeploymentConfig, Journal, Stage, TrafficStrategyKind};
use serin_traffic::{Capabilities, InMemoryRouter, TrafficRouter, Weight};
use support::{World, blue_green_config, canary_config};

/// A router taking weights only in multiples of `percent`.
fn router_of(percent: u8) -> Arc<InMemoryRouter> {
    let caps = Capabilities::weights_only()
        .with_weight_granularity(Weight::from_percent(percent).expect("percent"))
        .expect("granularity");
    Arc::new(InMemoryRouter::with_capabilities(caps))
}

/// Runs `config` until `stage` and kills it there; returns the deployment's id.
async fn killed_in(world: &World, config: &DeploymentConfig, stage: Stage) -> String {
    let handle = world.start(config).await;
    support::until_stage(&handle, stage).await;
    support::until_weight(&handle, 10.0).await;
    let id = handle.id().to_owned();
    handle.kill();
    id
}

/// Resuming `id` with a 100% router is refused naming each of `named`, with nothing journalled
/// and the split untouched; with the world's router it then finishes.
async fn refused_then_resumed(world: &World, id: &str, named: &[&str]) {
    let records = world.journal.records(id).await.expect("records").len();
    let split = world.router.current().await.expect("split");
    let coarse = router_of(100);
    let err = world
        .orchestrator_routing(coarse.clone())
        .resume(id)
        .await
        .expect_err("a resume on a coarser router");
    let err = err.to_string();
    for name in named {
        assert!(err.contains(name), "`{name}` not in: {err}");
    }
    assert!(
        coarse.history().is_empty(),
        "the coarse router was not touched"
    );
    assert_eq!(world.router.current().await.expect("split"), split);
    assert_eq!(
        world.journal.records(id).await.expect("records").len(),
        records,
        "nothing journalled"
    );
    let again = world.orchestrator();
    assert_eq!(again.unfinished().await.expect("unfinished"), vec![id]);
    support::assert_succeeded(&support::resume_to_end(&again, id).await);
}

#[tokio::test(start_paused = true)]
async fn a_canary_resumed_on_a_coarser_router_is_refused_until_the_router_is_right() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let id = killed_in(&world, &canary_config("1.1.0"), Stage::Canary).await;
    // 10% is in force; 40% and 70% are still to come.
    refused_then_resumed(
        &world,
        &id,
        &[
            "canaryConfig.incrementPercentage",
            "40%",
            "granularity 100%",
        ],
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_switch_resumed_on_a_coarser_router_is_refused_until_the_router_is_right() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    let id = killed_in(&world, &config, Stage::Switch).await;
    // 25% is in force; 50% and 75% are still to come.
    refused_then_resumed(
        &world,
        &id,
        &["blueGreenConfig.trafficStrategy", "50%", "granularity 100%"],
    )
    .await;
}
