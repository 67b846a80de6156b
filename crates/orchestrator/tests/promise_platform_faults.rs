//! Zero downtime and a small blast radius under platform faults, on the simulated fleet, for
//! every strategy: a start the platform fails (its deployment lock or the bring-up) or a
//! bring-up that never gets ready in time moves no traffic and loses no request; instances of
//! the new version that die mid-rollout are rolled back from fast, with traffic back on the old
//! version.

use crate::promise_support;

use std::ops::RangeFrom;
use std::time::Duration;

use serin_orchestrator::{DeploymentConfig, Error, EventKind, Outcome, Report, StrategyKind};
use serin_signals::Timestamp;
use serin_sim::{Fault, SimWorld, Span};

use promise_support::{
    STRATEGIES, assert_all_traffic_on, assert_no_request_lost, new_track, run, serving, since_start,
};

/// The shared config, the new track given two minutes to get ready.
fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = promise_support::config(version, strategy);
    c.blue_green_config.readiness_timeout = Duration::from_secs(120);
    c.validate().expect("valid");
    c
}

/// The new version never got traffic, the old one serves it all, and no request was lost.
async fn nothing_moved(world: &SimWorld, report: &Report, since: Timestamp) {
    assert!(
        !matches!(report.outcome, Some(Outcome::Succeeded)),
        "{report}"
    );
    let raised = report
        .timeline
        .iter()
        .any(|e| matches!(&e.kind, EventKind::WeightChanged { percent, .. } if *percent > 0.0));
    assert!(!raised, "{report}");
    let what = report.to_string();
    assert_all_traffic_on(world, "1.0.0", &what).await;
    assert_no_request_lost(world, since, &what);
}

/// Deploys 1.1.0 by every strategy over a fleet serving 1.0.0, `fault` (given the strategy
/// and how far into the world's script the deployment starts) injected first, and checks
/// nothing moved.
async fn moves_nothing_under(
    seeds: RangeFrom<u64>,
    fault: impl Fn(StrategyKind, Duration) -> Fault,
) {
    for (seed, strategy) in seeds.zip(STRATEGIES) {
        let (world, o) = serving(seed, &config("1.0.0", strategy)).await;
        world
            .inject(fault(strategy, since_start(&world)))
            .expect("fault");
        let since = world.now();
        match o.run(&config("1.1.0", strategy)).await {
            Ok(mut reports) => nothing_moved(&world, &reports.remove(0), since).await,
            // The platform failed the deployment lock too: refused before anything started.
            Err(e) => {
                assert!(matches!(e, Error::Platform { .. }), "{strategy:?}: {e}");
                let what = format!("{strategy:?} refused: {e}");
                assert_all_traffic_on(&world, "1.0.0", &what).await;
                assert_no_request_lost(&world, since, &what);
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_start_the_platform_fails_moves_no_traffic() {
    moves_nothing_under(1.., |_, at| Fault::PlatformErrors {
        span: Span::new(at, at + Duration::from_secs(2)),
        message: "quota exceeded".into(),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_new_version_that_never_gets_ready_in_time_moves_no_traffic() {
    moves_nothing_under(10.., |strategy, at| Fault::SlowStart {
        track: Some(new_track(strategy)),
        span: Span::new(at, at + Duration::from_secs(3_600)),
        extra: Duration::from_secs(600),
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn new_instances_dying_mid_rollout_are_rolled_back_from_fast() {
    for (seed, strategy) in (20..).zip(STRATEGIES) {
        let (world, o) = serving(seed, &config("1.0.0", strategy)).await;
        // A minute after the first weight (at about 5 s): mid-step.
        let crash = since_start(&world) + Duration::from_secs(65);
        world
            .inject(Fault::Crash {
                service: None,
                track: new_track(strategy),
                instance: None,
                at: crash,
            })
            .expect("fault");
        let r = run(&o, &config("1.1.0", strategy)).await;
        assert!(
            matches!(r.outcome, Some(Outcome::RolledBack { .. })),
            "{strategy:?}: {r}"
        );
        assert_all_traffic_on(&world, "1.0.0", &r.to_string()).await;
        let started = r
            .timeline
            .iter()
            .find_map(|e| matches!(e.kind, EventKind::RollbackStarted { .. }).then_some(e.at))
            .expect("a rollback");
        let after = started.saturating_duration_since(r.started_at);
        assert!(
            after <= Duration::from_secs(65 + 60),
            "{strategy:?}: rolled back {after:?} into the run, the crash at 65 s: {r}"
        );
    }
}
