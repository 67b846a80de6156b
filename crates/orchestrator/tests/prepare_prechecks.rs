//! The pre-checks before a deployment changes anything take no missing evidence for a pass: a
//! health source that cannot answer fails them, with nothing changed.

use crate::support;

use std::sync::Arc;

use async_trait::async_trait;
use serin_orchestrator::{Orchestrator, Outcome, ServiceBackends};
use serin_signals::{HealthSignal, HealthSource, InMemoryHealth, Probe, Track};
use support::{SERVICE, World, canary_config, run_to_end};

/// A health source in an outage: every question fails.
struct Down;

fn outage() -> serin_signals::Error {
    serin_signals::Error::Unavailable {
        source_name: "down".into(),
        reason: "connection refused (3 attempts)".into(),
    }
}

#[async_trait]
impl HealthSource for Down {
    fn name(&self) -> &str {
        "down"
    }

    async fn probe(
        &self,
        _track: &Track,
        _probe: &Probe,
    ) -> serin_signals::Result<Option<HealthSignal>> {
        Err(outage())
    }

    async fn signals(&self, _track: &Track) -> serin_signals::Result<Vec<HealthSignal>> {
        Err(outage())
    }
}

/// An orchestrator on `world`'s backends but reading health from `health`.
fn reading_health(world: &World, health: Arc<dyn HealthSource>) -> Orchestrator {
    let backends = ServiceBackends::new(world.router.clone(), world.source.clone(), health);
    Orchestrator::builder(world.platform.clone(), world.journal.clone())
        .service(SERVICE, backends)
        .clock(world.clock)
        .build()
}

#[tokio::test(start_paused = true)]
async fn a_health_source_that_cannot_answer_fails_the_pre_check_and_changes_nothing() {
    let world = World::new();
    world.install("1.0.0").await;
    let applies = world.router.apply_count();
    let o = reading_health(&world, Arc::new(Down));
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    println!("{report}");
    let Some(Outcome::Failed { reason }) = &report.outcome else {
        panic!("expected failed, got {report}");
    };
    assert!(
        reason.contains("pre-check")
            && reason.contains("could not be read from the health source down")
            && reason.contains("connection refused")
            && reason.contains("nothing was changed"),
        "{reason}"
    );
    assert_eq!(world.router.apply_count(), applies, "no split changed");
    assert!(!world.has_track(&Track::Canary).await);
    world.assert_live(Track::Stable, "1.0.0").await;
}

/// The same source once it answers (with no failing dependency) lets the deployment through.
#[tokio::test(start_paused = true)]
async fn a_health_source_that_answers_passes_the_pre_check() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let o = reading_health(&world, Arc::new(InMemoryHealth::new()));
    let report = run_to_end(&o, &canary_config("1.1.0")).await;
    support::assert_succeeded(&report);
}
