//! Blue-green and blue-green-with-canary end to end, and compatibility validation — in-memory
//! world, paused time.

use crate::support;

use std::sync::Arc;

use serin_orchestrator::{
    DeploymentHandle, EventKind, Outcome, Platform, Report, StrategyKind, TrafficStrategyKind,
};
use serin_signals::Track;
use support::{
    SERVICE, World, blue_green_config, kill_a_green_instance, rollback_reason, v, world_on_blue,
    yanking_validator,
};

fn weights(report: &Report) -> Vec<f64> {
    support::weights(&report.timeline)
}

/// Deploys `config`, which must be rolled back to blue (1.0.0) with green retired; answers the
/// rollback's reason.
async fn switched_back(world: &World, config: &serin_orchestrator::DeploymentConfig) -> String {
    let report = world.deploy(config).await;
    let reason = rollback_reason(&report).to_owned();
    world.assert_live(Track::Blue, "1.0.0").await;
    assert!(!world.has_track(&Track::Green).await);
    reason
}

#[tokio::test(start_paused = true)]
async fn a_gradual_blue_green_switch_moves_to_green_and_retires_blue() {
    let world = world_on_blue().await;
    let report = world
        .deploy(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(weights(&report), vec![25.0, 50.0, 75.0, 100.0]);
    world.assert_live(Track::Green, "1.1.0").await;
    assert!(!world.has_track(&Track::Blue).await);
    let green = world
        .platform
        .status(SERVICE, &Track::Green)
        .await
        .expect("green");
    assert_eq!(
        green.instances.len(),
        2,
        "green comes up with replicasPerEnv"
    );
    // Every split the router saw summed to 100% and only ever named blue and green.
    for split in world.router.history() {
        assert!(
            split
                .backends()
                .iter()
                .all(|b| ["blue", "green"].contains(&b.name().as_str()))
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_green_is_switched_back_to_blue_by_the_error_rate_threshold() {
    let world = world_on_blue().await;
    world.set_rate("1.1.0", 0.30);
    let reason = switched_back(
        &world,
        &blue_green_config("1.1.0", TrafficStrategyKind::Gradual),
    )
    .await;
    assert!(reason.contains("error-rate-threshold"), "{reason}");
}

#[tokio::test(start_paused = true)]
async fn an_immediate_switch_is_watched_after_promotion_and_switched_back() {
    let world = world_on_blue().await;
    world.set_rate("1.1.0", 0.30);
    let report = world
        .deploy(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{:?}",
        report.outcome
    );
    assert!(report.timeline.iter().any(|e| e.kind
        == EventKind::PhaseChanged {
            phase: serin_orchestrator::Phase::Monitoring
        }));
    world.assert_live(Track::Blue, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn blue_green_with_canary_brings_green_up_fully_then_judges_then_switches() {
    let world = world_on_blue().await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.strategy = StrategyKind::BlueGreenWithCanary;
    config.canary_config.target_percentage = 50;
    let report = world.deploy(&config).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(weights(&report), vec![10.0, 40.0, 100.0]);
    world.assert_live(Track::Green, "1.1.0").await;
    let started = report.timeline.iter().find_map(|e| match &e.kind {
        EventKind::TrackStarted { instances, .. } => Some(*instances),
        _ => None,
    });
    assert_eq!(started, Some(2), "green comes up fully before any traffic");

    // And a bad version is judged and rolled back before the full switch.
    world.set_rate("1.2.0", 0.08);
    let mut config = config.clone();
    config.version = v("1.2.0");
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    assert!(
        matches!(&report.outcome, Some(Outcome::RolledBack { reason }) if reason.contains("error_rate")),
        "{:?}",
        report.outcome
    );
    world.assert_live(Track::Green, "1.1.0").await;
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_promises_pre_checks_only_where_a_version_runs() {
    let preparation = |plan: &serin_orchestrator::DeploymentPlan| {
        plan.steps
            .iter()
            .find(|s| s.starts_with("preparation"))
            .cloned()
            .expect("a preparation step")
    };
    let world = World::new();
    let first = world
        .plan(&blue_green_config("1.0.0", TrafficStrategyKind::Immediate))
        .await;
    assert_eq!(
        preparation(&first),
        "preparation: no pre-checks (nothing runs yet), no backup provider"
    );
    let world = world_on_blue().await;
    let upgrade = world
        .plan(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await;
    assert_eq!(
        preparation(&upgrade),
        "preparation: pre-checks, no backup provider"
    );
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_names_the_switch_as_the_config_writes_it() {
    let world = world_on_blue().await;
    let switch = |plan: &serin_orchestrator::DeploymentPlan| {
        plan.steps
            .iter()
            .find(|s| s.starts_with("switch traffic"))
            .cloned()
            .expect("a switch step")
    };
    let gradual = world
        .plan(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    let step = switch(&gradual);
    assert!(
        step.contains("(gradual: trafficIncrement 25% every trafficInterval 30s, 4 step(s))"),
        "{step}"
    );
    let mut weighted = blue_green_config("1.1.0", TrafficStrategyKind::Weighted);
    weighted.blue_green_config.weights = vec![10.0, 40.0];
    weighted.blue_green_config.traffic_interval = std::time::Duration::from_secs(120);
    let step = switch(&world.plan(&weighted).await);
    assert!(
        step.contains("(weighted: weights [10, 40] each held trafficInterval 2m, 3 step(s))"),
        "{step}"
    );
    let immediate = world
        .plan(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await;
    let step = switch(&immediate);
    assert!(step.contains("(immediate, 1 step(s))"), "{step}");
}

#[tokio::test(start_paused = true)]
async fn a_blocked_upgrade_stops_at_validation_with_the_explanation() {
    let world = world_on_blue().await;
    let (validator, fleet) = yanking_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .build();
    let applies = world.router.apply_count();
    let report = o
        .run(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await
        .expect("run")
        .remove(0);
    let Some(Outcome::Blocked { reason }) = &report.outcome else {
        panic!("expected blocked, got {:?}", report.outcome);
    };
    assert!(reason.contains("yanked"), "{reason}");
    assert_eq!(world.router.apply_count(), applies, "nothing changed");
    assert!(!world.has_track(&Track::Green).await);
    let plan = o
        .plan(&blue_green_config("1.1.0", TrafficStrategyKind::Immediate))
        .await
        .expect("plan");
    assert!(plan[0].steps[0].contains("BLOCKED"), "{:?}", plan[0].steps);
}

#[tokio::test(start_paused = true)]
async fn a_paused_switch_is_rolled_back_at_the_deadline_whatever_the_check_interval() {
    let world = world_on_blue().await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    config.max_deployment_duration = std::time::Duration::from_secs(120);
    config.blue_green_config.readiness_timeout = std::time::Duration::from_secs(60);
    // Longer than the whole deployment may take: the wait for the next check ends at the
    // deadline. (The watch after promotion must be at least as long.)
    config.monitoring.check_interval = std::time::Duration::from_secs(3_600);
    config.monitoring.monitoring_duration = std::time::Duration::from_secs(3_600);
    let h = world.start(&config).await;
    support::until_weight(&h, 25.0).await;
    h.pause().await.expect("pause");
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    let took = report.last_at.saturating_duration_since(report.started_at);
    assert!(took.as_secs() >= 120 && took.as_secs() <= 130, "{took:?}");
    world.assert_live(Track::Blue, "1.0.0").await;
}

/// The world's router, failing the next `failures` applies.
struct FlakyRouter {
    world: Arc<World>,
    failures: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl serin_traffic::TrafficRouter for FlakyRouter {
    fn name(&self) -> &str {
        "flaky"
    }

    fn capabilities(&self) -> serin_traffic::Capabilities {
        self.world.router.capabilities()
    }

    async fn apply(&self, split: &serin_traffic::TrafficSplit) -> serin_traffic::Result<()> {
        use std::sync::atomic::Ordering;
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            self.world.router.fail_next_apply("connection refused");
        }
        self.world.router.apply(split).await
    }

    async fn current(&self) -> serin_traffic::Result<Option<serin_traffic::TrafficSplit>> {
        self.world.router.current().await
    }
}

/// Runs a gradual switch to 1.1.0 through a router that fails its next `failures` applies.
async fn switch_through_a_failing_router(
    failures: usize,
) -> (Arc<World>, serin_orchestrator::Report) {
    let world = world_on_blue().await;
    let router = Arc::new(FlakyRouter {
        world: Arc::clone(&world),
        failures: failures.into(),
    });
    let report = world
        .orchestrator_routing(router)
        .run(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await
        .expect("the deployment ends with a report")
        .remove(0);
    (world, report)
}

#[tokio::test(start_paused = true)]
async fn a_router_failing_again_as_the_rollback_starts_is_retried_and_the_rollback_finishes() {
    // The first step of the switch fails, then the rollback's first switch back.
    let (world, report) = switch_through_a_failing_router(2).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("connection refused"), "{reason}");
    world.assert_live(Track::Blue, "1.0.0").await;
    assert!(!world.has_track(&Track::Green).await);
    // The deployment is over, so its lock is free.
    world
        .platform
        .lock(SERVICE, "next")
        .await
        .expect("lock freed");
}

#[tokio::test(start_paused = true)]
async fn a_router_failing_through_the_whole_rollback_ends_the_deployment_as_failed() {
    let (world, report) = switch_through_a_failing_router(3).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(reason.contains("connection refused"), "{reason}");
    world
        .platform
        .lock(SERVICE, "next")
        .await
        .expect("lock freed");
}

/// The anomalies of `report` that say the switch waits, each starting with `what`.
fn waits_said<'a>(report: &'a Report, what: &str) -> Vec<&'a String> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly { summary, .. } if summary.starts_with(what) => Some(summary),
            _ => None,
        })
        .collect()
}

/// A metrics outage from the start is no evidence: a gradual or weighted switch, at its own
/// pace, raises green no further than its first weight (the data of which never comes, well
/// within the triggers' `staleAfter`), says why once, and rolls back at the deadline; nothing
/// promotes.
#[tokio::test(start_paused = true)]
async fn a_metrics_outage_holds_a_gradual_switch_and_never_promotes() {
    let mut weighted = blue_green_config("1.1.0", TrafficStrategyKind::Weighted);
    weighted.blue_green_config.weights = vec![20.0, 60.0];
    for mut config in [
        blue_green_config("1.1.0", TrafficStrategyKind::Gradual),
        weighted,
    ] {
        let world = world_on_blue().await;
        world.source.set_unavailable(true);
        config.monitoring.on_deadline = serin_orchestrator::OnDeadline::Rollback;
        config.max_deployment_duration = std::time::Duration::from_secs(900);
        let report = world.deploy(&config).await;
        let reason = rollback_reason(&report);
        assert!(reason.contains("maxDeploymentDuration"), "{reason}");
        let first = weights(&report)[0];
        assert_eq!(weights(&report), vec![first, 0.0], "{report}");
        assert!(
            !report.timeline.iter().any(|e| matches!(
                &e.kind,
                EventKind::AnalysisResult { decision }
                    if decision.action == serin_canary::controller::Action::Promote
            )),
            "{report}"
        );
        let said = waits_said(&report, &format!("the switch holds 1.1.0 at {first}%"));
        assert_eq!(said.len(), 1, "said once: {report}");
        world.assert_live(Track::Blue, "1.0.0").await;
    }
}

/// A short outage only delays the switch: green gets no more traffic while the checks read
/// nothing of it, and the switch goes on once its data comes back.
#[tokio::test(start_paused = true)]
async fn a_short_metrics_outage_delays_a_gradual_switch_until_data_comes_back() {
    let world = world_on_blue().await;
    world.source.set_unavailable(true);
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    let start = world.clock.now();
    tokio::time::sleep(std::time::Duration::from_secs(50)).await;
    assert_eq!(h.status().weight, 25.0, "held while no data comes");
    world.source.set_unavailable(false);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    assert_eq!(weights(&report), vec![25.0, 50.0, 75.0, 100.0]);
    let raised = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::WeightChanged { percent, .. } if percent == 50.0))
        .expect("raised to 50%");
    assert!(
        raised.at.saturating_duration_since(start) >= std::time::Duration::from_secs(50),
        "{report}"
    );
    world.assert_live(Track::Green, "1.1.0").await;
}

/// A rollback trigger that has judged nothing of green (nothing records its latency) keeps a
/// gradual switch from giving it all traffic on that silence: it holds at its last weight,
/// saying why once, and finishes once latencies come.
#[tokio::test(start_paused = true)]
async fn a_gradual_switch_gives_green_all_traffic_only_once_every_trigger_has_data() {
    let world = world_on_blue().await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    config.monitoring.latency_threshold = Some(500.0);
    config.max_deployment_duration = std::time::Duration::from_secs(1800);
    config.validate().expect("valid");
    let h = world.start(&config).await;
    // Its four steps of half a minute are long done.
    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
    let status = h.status();
    assert_eq!(
        status.stage,
        serin_orchestrator::Stage::Switch,
        "{status:?}"
    );
    assert_eq!(status.weight, 75.0, "{status:?}");
    world.set_latency("1.1.0", 20.0);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    assert_eq!(weights(&report), vec![25.0, 50.0, 75.0, 100.0]);
    let said = waits_said(&report, "the switch's last step waits");
    assert_eq!(said.len(), 1, "said once: {report}");
    assert!(said[0].contains("`latency-threshold`"), "{}", said[0]);
}

/// After the switch, a watch whose triggers hold for want of data does not end at
/// `monitoringDuration` and retire blue: it goes on until the data comes back or the deadline
/// decides (here: roll back).
#[tokio::test(start_paused = true)]
async fn a_metrics_outage_after_an_immediate_switch_keeps_blue_until_the_deadline() {
    let world = world_on_blue().await;
    world.source.set_unavailable(true);
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.monitoring_duration = std::time::Duration::from_secs(600);
    config.monitoring.on_deadline = serin_orchestrator::OnDeadline::Rollback;
    config.max_deployment_duration = std::time::Duration::from_secs(1_200);
    let reason = switched_back(&world, &config).await;
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
}

/// A green instance that dies during a gradual switch stops it: no more traffic goes to a
/// track that is not wholly ready, and the switch rolls back to blue.
#[tokio::test(start_paused = true)]
async fn a_green_instance_dying_mid_switch_stops_the_switch_and_rolls_back() {
    let world = world_on_blue().await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    support::until_weight(&h, 25.0).await;
    kill_a_green_instance(&world).await;
    let report = h.wait().await.expect("report");
    let reason = rollback_reason(&report);
    assert!(reason.contains("out of memory"), "{reason}");
    assert_eq!(weights(&report), vec![25.0, 0.0], "{report}");
    world.assert_live(Track::Blue, "1.0.0").await;
}

/// A world whose router takes weights only in multiples of `granularity`, with 1.0.0
/// installed on blue.
async fn installed_on_granularity(granularity: serin_traffic::Weight) -> World {
    let caps = serin_traffic::Capabilities::weights_only()
        .with_weight_granularity(granularity)
        .expect("granularity");
    let world = World {
        router: Arc::new(serin_traffic::InMemoryRouter::with_capabilities(caps)),
        ..World::new()
    };
    let r = world
        .orchestrator()
        .run(&blue_green_config("1.0.0", TrafficStrategyKind::Immediate))
        .await
        .expect("install");
    assert_eq!(r[0].outcome, Some(Outcome::Succeeded));
    world
}

/// A switch whose weights a router cannot take is refused naming the field that asked for
/// the weight (`trafficIncrement`, `weights[i]`), as a canary's is.
#[tokio::test(start_paused = true)]
async fn a_switch_step_off_the_routers_granularity_names_the_field_that_set_it() {
    let world =
        installed_on_granularity(serin_traffic::Weight::from_percent(10).expect("10%")).await;
    let gradual = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    let mut weighted = blue_green_config("1.1.0", TrafficStrategyKind::Weighted);
    weighted.blue_green_config.weights = vec![20.0, 55.0];
    for (config, field) in [
        (gradual, "blueGreenConfig.trafficIncrement `25`"),
        (weighted, "blueGreenConfig.weights[1] `55`"),
    ] {
        let orchestrator = world.orchestrator();
        let planned = orchestrator.plan(&config).await.map(|_| ());
        let started = orchestrator.run(&config).await.map(|_| ());
        for err in [planned, started] {
            let err = err.expect_err("off the granularity").to_string();
            assert!(
                err.contains(field) && err.contains("granularity 10%"),
                "{field}: {err}"
            );
        }
    }
    world.assert_live(Track::Blue, "1.0.0").await;
}

/// A gradual switch a router cannot follow (it only switches all at once, as a Kubernetes
/// Service-selector does) is refused before anything moves, in the dry run and at the start,
/// naming the strategy and the router's granularity, rather than by the router halfway
/// through the switch.
#[tokio::test(start_paused = true)]
async fn a_gradual_switch_on_an_all_or_nothing_router_is_refused_before_it_moves() {
    let world = installed_on_granularity(serin_traffic::Weight::FULL).await;
    let applied = world.router.history().len();
    let gradual = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    let orchestrator = world.orchestrator();
    let planned = orchestrator.plan(&gradual).await.map(|_| ());
    let started = orchestrator.run(&gradual).await.map(|_| ());
    for err in [planned, started] {
        let err = err
            .expect_err("a gradual switch on an all-or-nothing router")
            .to_string();
        assert!(
            err.contains("blueGreenConfig.trafficStrategy") && err.contains("granularity 100%"),
            "{err}"
        );
    }
    assert_eq!(
        world.router.history().len(),
        applied,
        "no split was applied"
    );
    assert!(
        !world.has_track(&Track::Green).await,
        "nothing was brought up"
    );
    world.assert_live(Track::Blue, "1.0.0").await;
}

/// A gradual switch of the world on blue to 1.1.0, once green has 25% of traffic.
async fn switching_at_25() -> (Arc<World>, DeploymentHandle) {
    let world = world_on_blue().await;
    let h = world
        .orchestrator()
        .start(
            &blue_green_config("1.1.0", TrafficStrategyKind::Gradual),
            SERVICE,
        )
        .await
        .expect("start");
    support::until_weight(&h, 25.0).await;
    (world, h)
}

#[tokio::test(start_paused = true)]
async fn a_switch_resumed_past_a_holds_end_does_not_say_its_last_check_read_no_data() {
    let (world, h) = switching_at_25().await;
    // Checks at 25% read data of green; the process then stops until the hold is over.
    tokio::time::sleep(std::time::Duration::from_secs(12)).await;
    let id = h.id().to_owned();
    h.kill();
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    let report = world.resumed(&id).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(weights(&report), vec![25.0, 50.0, 75.0, 100.0]);
    assert!(
        !report.timeline.iter().any(|e| matches!(&e.kind,
            EventKind::Anomaly { summary, .. } if summary.contains("read no data"))),
        "no check read no data: {report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rollback_whose_retire_fails_after_its_switch_back_says_the_old_version_has_all_traffic()
{
    let (world, h) = switching_at_25().await;
    // The abort's first switch back is refused; the rolling-back stage's goes through, and
    // retiring green then fails.
    world.router.fail_next_apply("router unreachable");
    world.platform.fail_next("api down");
    let _ = h.abort().await;
    let report = h.wait().await.expect("report");
    println!("{report}");
    world.assert_live(Track::Blue, "1.0.0").await;
    assert_eq!(
        weights(&report).last(),
        Some(&0.0),
        "the switch back is announced"
    );
    let reason = support::failed_reason(&report);
    assert!(reason.contains("api down"), "{reason}");
    assert!(
        !reason.contains("25%"),
        "the router took 0% since: {reason}"
    );
    assert!(reason.contains("gets no traffic"), "{reason}");
}
