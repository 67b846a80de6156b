//! Never an unknown traffic split, on the simulated fleet, for every strategy: a router that
//! takes a split and then reports an error (its answer lost on the way back) holds that split,
//! so the deployment, reading it back, carries on from it and announces it, rather than
//! rolling back from a split it does not know it is in, or ending failed while saying the new
//! version gets no traffic.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_orchestrator::{
    Clock, DeploymentConfig, EventKind, InMemoryJournal, Orchestrator, Outcome, Platform, Report,
    ServiceBackends, StrategyKind, TrafficStrategyKind,
};
use serin_sim::{Load, Schedule, SimConfig, SimRouter, SimWorld, VersionProfile};
use serin_traffic::{TrafficRouter, TrafficSplit};

const SERVICE: &str = "web";

fn v(s: &str) -> semver::Version {
    semver::Version::parse(s).expect("version")
}

/// The simulated router, which takes the first split that gives `track` a share and then
/// answers an error.
struct AppliesThenFails {
    inner: SimRouter,
    track: &'static str,
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
        let raises = share(split, self.track) > 0.0;
        if raises && !self.failed.swap(true, Ordering::SeqCst) {
            *self.lost.lock().expect("lost") = Some(share(split, self.track));
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
fn share(split: &TrafficSplit, track: &str) -> f64 {
    split
        .backends()
        .iter()
        .filter(|b| b.name().as_str() == track)
        .map(|b| f64::from(b.weight().bps()) / 100.0)
        .sum()
}

fn config(version: &str, strategy: StrategyKind) -> DeploymentConfig {
    let mut c = DeploymentConfig::new(strategy, v(version), &[SERVICE]).expect("config");
    c.canary_config.initial_percentage = 10;
    c.canary_config.increment_percentage = 30;
    c.canary_config.increment_interval = Duration::from_secs(120);
    c.canary_config.metrics_window = Duration::from_secs(30);
    c.canary_config.target_percentage = 50;
    c.canary_config.replicas = 1;
    c.blue_green_config.replicas_per_env = 2;
    c.blue_green_config.health_check_interval = Duration::from_secs(1);
    c.blue_green_config.keep_old_warm_for = Duration::ZERO;
    c.blue_green_config.traffic_strategy = TrafficStrategyKind::Gradual;
    c.blue_green_config.traffic_increment = 25.0;
    c.blue_green_config.traffic_interval = Duration::from_secs(60);
    c.monitoring.monitoring_duration = Duration::from_secs(120);
    c.validate().expect("valid");
    c
}

/// The version all traffic goes to, if one track takes it all.
async fn live(world: &SimWorld) -> Option<String> {
    let split = world.applied_splits().last()?.1.clone();
    let all = split
        .backends()
        .iter()
        .find(|b| b.weight().bps() == 10_000)?;
    let tracks = world.platform().list().await.expect("list");
    let t = tracks
        .iter()
        .find(|t| t.track.as_str() == all.name().as_str())?;
    Some(t.version.to_string())
}

/// Installs 1.0.0 by `strategy`, then deploys 1.1.0 through a router that applies the first
/// split giving the new track a share and answers an error; the report, the new track's
/// share in that split and the world.
async fn through_a_lost_answer(
    seed: u64,
    strategy: StrategyKind,
    rollback_on_error: bool,
) -> (Report, f64, SimWorld) {
    let profile = || {
        VersionProfile::default()
            .with_error_rate(Schedule::constant(0.005))
            .with_startup(Duration::from_secs(5))
    };
    let world = SimWorld::new(
        SimConfig::new(seed)
            .with_service(SERVICE)
            .with_load(Load::constant(300.0))
            .with_profile(v("1.0.0"), profile())
            .with_profile(v("1.1.0"), profile()),
    )
    .expect("world");
    let orchestrator = |router: Arc<dyn TrafficRouter>| {
        let backends =
            ServiceBackends::new(router, Arc::new(world.metrics()), Arc::new(world.health()));
        Orchestrator::builder(Arc::new(world.platform()), Arc::new(InMemoryJournal::new()))
            .service(SERVICE, backends)
            .clock(Clock::starting_at(world.now()))
            .build()
    };
    let r = orchestrator(Arc::new(world.router()))
        .run(&config("1.0.0", strategy))
        .await
        .expect("install")
        .remove(0);
    assert_eq!(r.outcome, Some(Outcome::Succeeded), "install: {r}");
    let new_track = match strategy {
        StrategyKind::Canary => "canary",
        _ => "green",
    };
    let router = Arc::new(AppliesThenFails {
        inner: world.router(),
        track: new_track,
        failed: AtomicBool::new(false),
        lost: Mutex::new(None),
    });
    let mut c = config("1.1.0", strategy);
    c.rollback_on_error = rollback_on_error;
    let report = orchestrator(router.clone())
        .run(&c)
        .await
        .expect("run")
        .remove(0);
    let lost = router
        .lost
        .lock()
        .expect("lost")
        .expect("an answer was lost");
    (report, lost, world)
}

const STRATEGIES: [StrategyKind; 3] = [
    StrategyKind::Canary,
    StrategyKind::BlueGreen,
    StrategyKind::BlueGreenWithCanary,
];

#[tokio::test(start_paused = true)]
async fn a_split_taken_but_answered_with_an_error_is_read_back_and_the_rollout_carries_on() {
    for rollback_on_error in [true, false] {
        for (seed, strategy) in (1..).zip(STRATEGIES) {
            let (report, lost, world) =
                through_a_lost_answer(seed, strategy, rollback_on_error).await;
            let what = format!("{strategy:?}, rollbackOnError {rollback_on_error}: {report}");
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{what}");
            assert_eq!(live(&world).await.as_deref(), Some("1.1.0"), "{what}");
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
