//! What a deployment announces of the new version's share of traffic: every move the router
//! took, back to 0% when it rolls back, and no move the router refused — to subscribers and in
//! the report alike, across a crash between applying a split and announcing it.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serin_orchestrator::{Effect, Event, EventKind, Outcome, Report, TrafficStrategyKind};
use serin_signals::Track;
use serin_traffic::{TrafficRouter, TrafficSplit};
use support::{
    SERVICE, World, assert_succeeded, blue_green_config, canary_config, drain, rollback_reason,
    until_weight, weights,
};

/// The share `split` gives `track`, in percent.
fn share(split: &TrafficSplit, track: &Track) -> f64 {
    split
        .weight_of(track.as_str())
        .map_or(0.0, |w| w.as_percent())
}

#[tokio::test(start_paused = true)]
async fn a_canary_rolled_back_by_its_judges_announces_its_way_back_to_0_percent() {
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let o = world.orchestrator();
    let mut events = o.subscribe();
    let report = support::run_to_end(&o, &canary_config("1.1.0")).await;
    rollback_reason(&report);
    let seen = drain(&mut events);
    assert_eq!(
        seen, report.timeline,
        "subscribers see the journalled timeline"
    );
    let announced = weights(&seen);
    assert_eq!(announced.first(), Some(&10.0), "{announced:?}");
    assert_eq!(announced.last(), Some(&0.0), "{report}");
    // Announced after the rollback started, as the forward moves follow their decisions.
    let at = |hit: &dyn Fn(&EventKind) -> bool| seen.iter().position(|e| hit(&e.kind));
    let started = at(&|k| matches!(k, EventKind::RollbackStarted { .. })).expect("started");
    let back = at(&|k| matches!(k, EventKind::WeightChanged { percent, .. } if *percent == 0.0))
        .expect("back to 0%");
    let over = at(&|k| matches!(k, EventKind::RolledBack { .. })).expect("over");
    assert!(started < back && back < over, "{report}");
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// An abort of a gradual switch at 50% announces the new colour's way back to 0%.
#[tokio::test(start_paused = true)]
async fn an_operator_abort_of_a_switch_announces_green_back_at_0_percent() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    until_weight(&h, 50.0).await;
    h.abort().await.expect("abort");
    let report = h.wait().await.expect("report");
    assert!(rollback_reason(&report).contains("aborted"), "{report}");
    assert_eq!(weights(&report.timeline), vec![25.0, 50.0, 0.0], "{report}");
}

/// The world's router, refusing the first split that gives the new version (on `track`) any
/// traffic.
struct RefusesTheFirstRaise {
    world: Arc<World>,
    track: Track,
    refused: AtomicBool,
}

#[async_trait::async_trait]
impl TrafficRouter for RefusesTheFirstRaise {
    fn name(&self) -> &str {
        "refuses-the-first-raise"
    }

    fn capabilities(&self) -> serin_traffic::Capabilities {
        self.world.router.capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        if share(split, &self.track) > 0.0 && !self.refused.swap(true, Ordering::SeqCst) {
            self.world
                .router
                .fail_next_apply("weight rejected by the mesh");
        }
        self.world.router.apply(split).await
    }

    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.world.router.current().await
    }
}

/// Runs `config` through a router that refuses its first raise of the new version's share.
async fn through_a_refused_raise(
    world: &Arc<World>,
    config: &serin_orchestrator::DeploymentConfig,
    track: Track,
) -> (Report, Vec<Event>) {
    let router = Arc::new(RefusesTheFirstRaise {
        world: Arc::clone(world),
        track,
        refused: AtomicBool::new(false),
    });
    let o = world.orchestrator_routing(router);
    let mut events = o.subscribe();
    let report = o.run(config).await.expect("run").remove(0);
    (report, drain(&mut events))
}

#[tokio::test(start_paused = true)]
async fn a_switch_step_the_router_refuses_is_never_announced() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    let (report, seen) = through_a_refused_raise(&world, &config, Track::Blue).await;
    assert!(
        rollback_reason(&report).contains("weight rejected by the mesh"),
        "{report}"
    );
    // Green never served: no share was announced, not even the way back.
    assert_eq!(weights(&report.timeline), Vec::<f64>::new(), "{report}");
    assert_eq!(
        seen, report.timeline,
        "subscribers see the journalled timeline"
    );
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_canary_weight_the_router_refuses_is_never_announced() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.rollback_on_error = false;
    let (report, seen) = through_a_refused_raise(&world, &config, Track::Canary).await;
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected a failure, got {report}");
    };
    assert!(reason.contains("weight rejected by the mesh"), "{reason}");
    assert_eq!(weights(&report.timeline), Vec::<f64>::new(), "{report}");
    assert_eq!(seen, report.timeline);
    // The decision stands in the timeline; only the weight it did not get is left out.
    assert!(
        report.timeline.iter().any(|e| matches!(
            &e.kind,
            EventKind::AnalysisResult { decision } if decision.weight == 10
        )),
        "{report}"
    );
}

/// A crash after the record that applies the canary's first weight and before the one that
/// announces it: the resumed deployment applies it again and announces it, once.
#[tokio::test(start_paused = true)]
async fn a_weight_applied_before_a_crash_is_announced_by_the_resumed_run() {
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    let reference = {
        let (world, _traffic) = World::serving(0.005, 0.005).await;
        world.deploy(&config).await
    };
    assert_succeeded(&reference);

    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let before = world.journal.len();
    let h = world.start(&config).await;
    let id = h.id().to_owned();
    // The record that applies 10% and the record after it.
    let applies_10 = |r: &serin_orchestrator::Record| {
        r.effects
            .iter()
            .any(|e| matches!(e, Effect::Apply { split } if share(split, &Track::Canary) == 10.0))
    };
    while !world.journal.all()[before..].iter().any(applies_10) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    h.kill();
    let mut records = world.journal.all().split_off(before);
    let k = records.iter().position(applies_10).expect("the apply");
    // Cut the journal right after that record, as a crash before the next write would.
    records.truncate(k + 1);
    let cut = Arc::new(serin_orchestrator::InMemoryJournal::new());
    for r in &records {
        serin_orchestrator::Journal::append(cut.as_ref(), r)
            .await
            .expect("append");
    }
    assert_eq!(weights(&records[k].events), Vec::<f64>::new());
    let report = support::resume_to_end(&world.orchestrator_over(cut), &id).await;
    assert_succeeded(&report);
    assert_eq!(
        weights(&report.timeline),
        weights(&reference.timeline),
        "{report}"
    );
}

/// The world's router, refusing every apply once `broken`.
struct Breaks {
    world: Arc<World>,
    broken: AtomicBool,
}

#[async_trait::async_trait]
impl TrafficRouter for Breaks {
    fn name(&self) -> &str {
        "breaks"
    }

    fn capabilities(&self) -> serin_traffic::Capabilities {
        self.world.router.capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        if self.broken.load(Ordering::SeqCst) {
            self.world.router.fail_next_apply("the mesh is down");
        }
        self.world.router.apply(split).await
    }

    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.world.router.current().await
    }
}

/// A rollback that cannot switch back ends as failed, saying where traffic was left: the
/// operator must finish it by hand, and nothing watches the new version any more.
#[tokio::test(start_paused = true)]
async fn a_rollback_that_cannot_switch_back_says_where_it_left_traffic() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let router = Arc::new(Breaks {
        world: Arc::clone(&world),
        broken: AtomicBool::new(false),
    });
    let h = world
        .orchestrator_routing(router.clone())
        .start(&canary_config("1.1.0"), SERVICE)
        .await
        .expect("start");
    until_weight(&h, 40.0).await;
    router.broken.store(true, Ordering::SeqCst);
    let _ = h.abort().await;
    let report = h.wait().await.expect("report");
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected a failure, got {report}");
    };
    assert!(
        reason.contains("rolling back (aborted by an operator) failed")
            && reason.contains("the mesh is down")
            && reason.contains("1.1.0 on canary 40% of traffic")
            && reason.contains("beside 1.0.0 on stable"),
        "{reason}"
    );
    assert_eq!(
        world.router.current().await.expect("current"),
        Some(TrafficSplit::from_percents([("stable", 60), ("canary", 40)]).expect("split"))
    );
}
