//! Never promote on missing evidence, on the simulated fleet, for every strategy: the metrics
//! source goes down mid-canary or mid-watch and stays down. The rollout holds (no weight
//! raised, no promotion, no completion) and, past its deadline, rolls back to the old version;
//! what it reports says the data was missing.

use crate::promise_support;
use crate::sim_fleet;

use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, EventKind, OnDeadline, Outcome, Report, Stage, Status, StrategyKind,
};
use serin_sim::{Fault, SimWorld, Span};

use promise_support::{serving, since_start, until};
use sim_fleet::SERVICE;

const DEADLINE: Duration = Duration::from_secs(1_200);

/// The shared config, held to `DEADLINE` and rolled back past it.
fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = promise_support::config(version, strategy);
    c.canary_config.max_duration = DEADLINE;
    c.monitoring.on_deadline = OnDeadline::Rollback;
    c.max_deployment_duration = DEADLINE;
    c.validate().expect("valid");
    c
}

/// Cuts the world's metrics source off from now until long past the deadline.
fn outage_from_now(world: &SimWorld) {
    let since = since_start(world);
    world
        .inject(Fault::MetricsOutage {
            span: Span::new(since, since + 4 * DEADLINE),
        })
        .expect("outage");
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

/// Deploys 1.1.0 over a fleet serving 1.0.0, for each seed and strategy, cuts the metrics off
/// once `reached` holds for its status, and checks the promise.
async fn outage_once(runs: [(u64, StrategyKind); 3], reached: impl Fn(&Status) -> bool) {
    for (seed, strategy) in runs {
        let (world, o) = serving(seed, &config("1.0.0", strategy)).await;
        let mut deploy = config("1.1.0", strategy);
        deploy.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
        let h = o.start(&deploy, SERVICE).await.expect("start");
        until(&h, &reached).await;
        outage_from_now(&world);
        let r = h.wait().await.expect("report");
        held_then_rolled_back(&r);
    }
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_mid_canary_never_promotes_and_rolls_back_past_the_deadline() {
    outage_once(
        [
            (1, StrategyKind::Canary),
            (2, StrategyKind::BlueGreenWithCanary),
            (3, StrategyKind::BlueGreen),
        ],
        |s| s.weight > 0.0,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_mid_watch_never_completes_and_rolls_back_past_the_deadline() {
    // The watch (2 minutes) is shorter than the triggers' `staleAfter` (5 minutes): they
    // never go stale in it, yet it has seen no data. (It used to end and complete.)
    outage_once(
        [
            (4, StrategyKind::Canary),
            (5, StrategyKind::BlueGreenWithCanary),
            (6, StrategyKind::BlueGreen),
        ],
        |s| s.stage == Stage::Monitoring,
    )
    .await;
}
