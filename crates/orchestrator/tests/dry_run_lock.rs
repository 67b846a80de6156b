//! The dry run reads the platform's deployment lock without taking it: while a deployment cut
//! short (its executor killed) holds it, the plan says that `start` would be refused, naming
//! that deployment and what to do about it, as `start` then refuses.

use crate::support;

use serin_orchestrator::Platform;
use support::{SERVICE, World, canary_config};

#[tokio::test(start_paused = true)]
async fn the_dry_run_refuses_a_start_while_a_deployment_cut_short_holds_the_lock() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&canary_config("1.1.0")).await;
    let id = h.id().to_owned();
    support::until_weight(&h, 40.0).await;
    h.kill();

    let o = world.orchestrator();
    let config = canary_config("1.2.0");
    let plan = o.plan(&config).await.expect("plan").remove(0);
    let refused: Vec<&String> = plan
        .steps
        .iter()
        .filter(|s| s.starts_with("start: REFUSED"))
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "start refuses for the lock first:\n{plan}"
    );
    assert!(
        plan.steps[0].starts_with(&format!(
            "start: REFUSED — deployment {id} holds the lock of {SERVICE}"
        )) && plan.steps[0].contains("resume it")
            && plan.steps[0].contains("abandon it"),
        "{plan}"
    );
    // Reading the lock took nothing: it is still the killed deployment's.
    assert_eq!(
        world.platform.lock_holder(SERVICE).await.expect("holder"),
        Some(id.clone())
    );
    let Err(err) = o.start(&config, SERVICE).await else {
        panic!("start refuses while {id} holds the lock");
    };
    assert!(err.to_string().contains(&id), "{err}");

    // Abandoned, the deployment frees the lock, and the plan no longer names it.
    o.abandon(&id, "its executor was killed")
        .await
        .expect("abandon");
    let plan = o.plan(&config).await.expect("plan").remove(0);
    assert!(
        !plan.steps.iter().any(|s| s.contains("holds the lock")),
        "{plan}"
    );
}

/// A deployment that this orchestrator is running is no deployment to resume or abandon: the
/// plan says that it runs here, as `start` refuses it, and what to do.
#[tokio::test(start_paused = true)]
async fn the_dry_run_refuses_a_start_while_this_orchestrator_runs_a_deployment() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let o = world.orchestrator();
    let h = o
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    support::until_weight(&h, 10.0).await;

    let config = canary_config("1.2.0");
    let plan = o.plan(&config).await.expect("plan").remove(0);
    assert!(
        plan.steps[0].starts_with(&format!(
            "start: REFUSED — a deployment of {SERVICE} is running in this orchestrator"
        )) && plan.steps[0].contains("wait for it or abort it"),
        "{plan}"
    );
    let Err(err) = o.start(&config, SERVICE).await else {
        panic!("start refuses while a deployment runs");
    };
    assert!(err.to_string().contains("running"), "{err}");
    h.abort().await.expect("abort");
}
