//! Never an unknown traffic split, on the simulated fleet, for every strategy: a router that
//! takes a split and then reports an error (its answer lost on the way back) holds that split,
//! so the deployment, reading it back, carries on from it and announces it, rather than
//! rolling back from a split it does not know it is in, or ending failed while saying the new
//! version gets no traffic.

use crate::promise_support;
use crate::sim_fleet;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serin_orchestrator::{EventKind, InMemoryJournal, Outcome, Report, StrategyKind};
use serin_signals::Track;
use serin_sim::{SimRouter, SimWorld};
use serin_traffic::{TrafficRouter, TrafficSplit};

use promise_support::{STRATEGIES, assert_all_traffic_on, config, new_track, run, serving};
use sim_fleet::orchestrator;

/// The simulated router, which takes the first split that gives `track` a share and then
/// answers an error.
struct AppliesThenFails {
    inner: SimRouter,
    track: Track,
    failed: AtomicBool,
    /// The new track's share in the split whose answer was lost, in percent.
    lost: Mutex<Option<f64>>,
}

#[async_trait::async_trait]
impl TrafficRouter for AppliesThenFails {
    fn name(&self) -> &str {
        "applies-then-fails"
    }

    fn capabilities(&self) -> serin_traffic::Capabilities {
        self.inner.capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        self.inner.apply(split).await?;
        let raises = share(split, &self.track) > 0.0;
        if raises && !self.failed.swap(true, Ordering::SeqCst) {
            *self.lost.lock().expect("lost") = Some(share(split, &self.track));
            return Err(serin_traffic::Error::Backend {
                router: self.name().into(),
                message: "connection reset before the answer".into(),
            });
        }
        Ok(())
    }

    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.inner.current().await
    }
}

/// `track`'s share of `split`, in percent.
fn share(split: &TrafficSplit, track: &Track) -> f64 {
    split
        .backends()
        .iter()
        .filter(|b| b.name().as_str() == track.as_str())
        .map(|b| f64::from(b.weight().bps()) / 100.0)
        .sum()
}

/// Installs 1.0.0 by `strategy`, then deploys 1.1.0 through a router that applies the first
/// split giving the new track a share and answers an error; the report, the new track's
/// share in that split and the world.
async fn through_a_lost_answer(
    seed: u64,
    strategy: StrategyKind,
    rollback_on_error: bool,
) -> (Report, f64, SimWorld) {
    let (world, _) = serving(seed, &config("1.0.0", strategy)).await;
    let router = Arc::new(AppliesThenFails {
        inner: world.router(),
        track: new_track(strategy),
        failed: AtomicBool::new(false),
        lost: Mutex::new(None),
    });
    let mut c = config("1.1.0", strategy);
    c.rollback_on_error = rollback_on_error;
    let o = orchestrator(&world, router.clone(), Arc::new(InMemoryJournal::new()));
    let report = run(&o, &c).await;
    let lost = router
        .lost
        .lock()
        .expect("lost")
        .expect("an answer was lost");
    (report, lost, world)
}

#[tokio::test(start_paused = true)]
async fn a_split_taken_but_answered_with_an_error_is_read_back_and_the_rollout_carries_on() {
    for rollback_on_error in [true, false] {
        for (seed, strategy) in (1..).zip(STRATEGIES) {
            let (report, lost, world) =
                through_a_lost_answer(seed, strategy, rollback_on_error).await;
            let what = format!("{strategy:?}, rollbackOnError {rollback_on_error}: {report}");
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{what}");
            assert_all_traffic_on(&world, "1.1.0", &what).await;
            let announced = report.timeline.iter().any(
                |e| matches!(&e.kind, EventKind::WeightChanged { percent, .. } if *percent == lost),
            );
            assert!(
                announced,
                "the {lost}% the router took is announced: {what}"
            );
        }
    }
}
