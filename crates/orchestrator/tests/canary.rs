//! The canary strategy end to end on the in-memory world, under paused time.

mod support;

use std::sync::Arc;

use serin_orchestrator::{EventKind, Outcome, Platform};
use serin_signals::Track;
use support::{SERVICE, World, canary_config, drain};

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_is_promoted_and_the_old_track_retired() {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.005);
    let _traffic = world.spawn_traffic();
    world.install("1.0.0").await;
    let orchestrator = world.orchestrator();
    let mut events = orchestrator.subscribe();
    let handle = orchestrator
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    let report = handle.wait().await.expect("report");
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    assert_eq!(
        world.live_version().await,
        Some((Track::Canary, "1.1.0".into()))
    );
    assert!(
        world
            .platform
            .status(SERVICE, &Track::Stable)
            .await
            .is_err(),
        "old track retired"
    );
    let seen = drain(&mut events);
    let weights: Vec<f64> = seen
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } => Some(*percent),
            _ => None,
        })
        .collect();
    assert_eq!(weights, vec![10.0, 40.0, 70.0, 100.0]);
    assert_eq!(
        seen, report.timeline,
        "subscribers see exactly the journalled timeline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_canary_with_five_percent_errors_is_rolled_back_by_the_judge() {
    let world = Arc::new(World::new());
    world.set_rate("1.0.0", 0.005);
    world.set_rate("1.1.0", 0.05);
    let _traffic = world.spawn_traffic();
    world.install("1.0.0").await;
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    let report = world
        .orchestrator()
        .run(&config)
        .await
        .expect("run")
        .remove(0);
    println!("{report}");
    let Some(Outcome::RolledBack { reason }) = &report.outcome else {
        panic!("expected a rollback, got {:?}", report.outcome);
    };
    assert!(reason.contains("error_rate"), "{reason}");
    assert_eq!(
        world.live_version().await,
        Some((Track::Stable, "1.0.0".into()))
    );
    assert!(
        world
            .platform
            .status(SERVICE, &Track::Canary)
            .await
            .is_err(),
        "canary retired"
    );
    assert!(report.timeline.iter().any(|e| matches!(&e.kind, EventKind::AnalysisResult { decision } if !decision.evidence.is_empty() && decision.severity.is_some())));
}
