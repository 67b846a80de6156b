//! What keeps a canary's weight where it is: a rollback trigger's hold through an operator's
//! resume, and a canary track that grows for its next weight.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, DeploymentHandle, EventKind, InMemoryPlatform, Journal, Outcome, Platform,
    Report, Stage,
};
use serin_signals::Track;
use serin_traffic::{Capabilities, TrafficRouter, TrafficSplit};
use support::{SERVICE, World, canary_share, holding_canary_config, weights};

/// [`holding_canary_config`] with `steps`.
fn holding_with_steps(steps: &str) -> DeploymentConfig {
    let mut config = holding_canary_config();
    support::written_steps(&mut config, serde_json::from_str(steps).expect("steps"));
    config.validate().expect("valid");
    config
}

/// A resume that ends an indefinite pause step during a metrics outage, while a rollback
/// trigger holds, ends the pause but moves no weight: the next weight waits until data comes
/// back, and the evidence says the latest window had none.
#[tokio::test(start_paused = true)]
async fn a_resume_under_a_trigger_hold_ends_the_pause_but_moves_no_weight() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = holding_with_steps(
        r#"[{"setWeight":20},{"pause":{}},{"setWeight":60},{"pause":{"duration":"1m"}}]"#,
    );
    let h = world.start(&config).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.status().weight, 20.0, "at the indefinite pause");
    // A metrics outage: the trigger goes stale after 10 s and holds.
    world.source.set_unavailable(true);
    tokio::time::sleep(Duration::from_secs(60)).await;
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.status().weight, 20.0, "no weight moves under the hold");
    assert_eq!(canary_share(&world).await, 20.0, "the router keeps 20%");
    // The hold lifts: the next step runs without another resume.
    world.source.set_unavailable(false);
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![20.0, 60.0, 100.0]);
    let said = report.timeline.iter().any(|e| {
        matches!(&e.kind, EventKind::AnalysisResult { decision }
            if decision.reason.starts_with("weight not raised")
                && decision.reason.contains("had no data"))
    });
    assert!(said, "the evidence names the missing data: {report}");
}

/// A resume with nothing holding still takes the next step at once.
#[tokio::test(start_paused = true)]
async fn a_resume_with_nothing_holding_takes_the_next_step_at_once() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = holding_with_steps(
        r#"[{"setWeight":20},{"pause":{}},{"setWeight":60},{"pause":{"duration":"1m"}}]"#,
    );
    let h = world.start(&config).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    h.resume().await.expect("resume");
    assert_eq!(h.status().weight, 60.0);
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
}

/// The world's router, noting for every split that changes the canary's share the new share
/// and whether the canary track then had enough instances for it, every one of them ready.
struct ReadinessAtApply {
    world: Arc<World>,
    full: u32,
    last: Mutex<f64>,
    seen: Mutex<Vec<(f64, usize, bool)>>,
}

#[async_trait::async_trait]
impl TrafficRouter for ReadinessAtApply {
    fn name(&self) -> &str {
        "readiness-at-apply"
    }

    fn capabilities(&self) -> Capabilities {
        self.world.router.capabilities()
    }

    async fn apply(&self, split: &TrafficSplit) -> serin_traffic::Result<()> {
        let share = split.weight_of("canary").map_or(0.0, |w| w.as_percent());
        let changed = std::mem::replace(&mut *self.last.lock().expect("lock"), share) != share;
        if changed && share > 0.0 {
            // `list` does not count as a readiness check.
            let tracks = self.world.platform.list().await.expect("list");
            let canary = tracks.iter().find(|t| t.track == Track::Canary);
            let (n, ready) = canary.map_or((0, false), |t| (t.instances.len(), t.all_ready()));
            self.seen.lock().expect("lock").push((share, n, ready));
        }
        self.world.router.apply(split).await
    }

    async fn current(&self) -> serin_traffic::Result<Option<TrafficSplit>> {
        self.world.router.current().await
    }
}

impl ReadinessAtApply {
    /// The splits taken while the canary track was too small or not ready for its share.
    fn too_early(&self) -> Vec<(f64, usize, bool)> {
        let full = f64::from(self.full);
        self.seen
            .lock()
            .expect("lock")
            .iter()
            .filter(|(share, n, ready)| !*ready || (*n as f64) < (share * full / 100.0).ceil())
            .copied()
            .collect()
    }
}

/// A canary whose size follows its weight grows first and takes the new share only once its
/// new instances are ready: no split sends traffic to instances still starting.
#[tokio::test(start_paused = true)]
async fn a_canary_that_follows_the_weight_takes_a_raise_only_once_grown_and_ready() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(3), 0.005, 0.005).await;
    let mut config = holding_with_steps(
        r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
            {"pause":{"duration":"1m"}},{"setWeight":75},{"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    config.validate().expect("valid");
    let router = Arc::new(ReadinessAtApply {
        world: Arc::clone(&world),
        full: 4,
        last: Mutex::new(0.0),
        seen: Mutex::new(Vec::new()),
    });
    let o = world.orchestrator_routing(router.clone());
    let report = o
        .start(&config, SERVICE)
        .await
        .expect("start")
        .wait()
        .await
        .expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![0.0, 25.0, 75.0, 100.0]);
    let shares: Vec<f64> = router
        .seen
        .lock()
        .expect("lock")
        .iter()
        .map(|s| s.0)
        .collect();
    assert!(shares.contains(&75.0), "{shares:?}");
    assert_eq!(router.too_early(), vec![], "{report}");
}

/// A restart while the canary track grows for its next weight waits for it again, then gives
/// it the weight: the weight is neither skipped nor given to instances still starting.
#[tokio::test(start_paused = true)]
async fn a_restart_while_the_canary_grows_for_its_weight_waits_then_applies_it() {
    let config = || {
        let mut config = holding_with_steps(
            r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
                {"pause":{"duration":"1m"}},{"setWeight":75},{"pause":{"duration":"1m"}}]"#,
        );
        config.blue_green_config.replicas_per_env = 4;
        config.validate().expect("valid");
        config
    };
    let slow = || World::serving_on(InMemoryPlatform::new().with_ready_after(3), 0.005, 0.005);
    // Where the scale for 75% is journalled, in an uninterrupted run.
    let (reference, _traffic) = slow().await;
    let before = reference.journal.len();
    let report = reference.deploy(&config()).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let records = reference
        .journal
        .records(&report.deployment)
        .await
        .expect("records");
    let grow = records
        .iter()
        .position(|r| r.state.readiness_since.is_some() && r.state.weight == 25.0)
        .expect("the scale for 75% is journalled before the weight");

    let (world, _traffic) = slow().await;
    let last = support::crash_at(&world, world.orchestrator(), config(), before + grow + 1).await;
    assert_eq!(last.state.weight, 25.0);
    let router = Arc::new(ReadinessAtApply {
        world: Arc::clone(&world),
        full: 4,
        last: Mutex::new(25.0),
        seen: Mutex::new(Vec::new()),
    });
    let report = support::resume_to_end(
        &world.orchestrator_routing(router.clone()),
        &last.deployment,
    )
    .await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![0.0, 25.0, 75.0, 100.0]);
    assert_eq!(router.too_early(), vec![], "{report}");
}

/// A pause and a resume while the canary grows for its weight lift the operator's pause only:
/// the indefinite pause step after that weight has not begun, and still waits for its own
/// resume once the weight is in force.
#[tokio::test(start_paused = true)]
async fn a_resume_while_the_canary_grows_does_not_end_the_pause_step_after_its_weight() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let mut config = holding_with_steps(
        r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},
            {"pause":{"duration":"1m"}},{"setWeight":75},{"pause":{}},{"setWeight":90},
            {"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    config.validate().expect("valid");
    let h = world.start(&config).await;
    // Growing for 75%: three instances, the new ones not ready.
    while world.instances_of(&Track::Canary).await < 3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(h.status().weight, 25.0);
    h.pause().await.expect("pause");
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(300)).await;
    assert_eq!(h.status().weight, 75.0, "held at the pause step after 75%");
    h.resume().await.expect("resume");
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(
        weights(&report.timeline),
        vec![0.0, 25.0, 75.0, 90.0, 100.0]
    );
}

/// A resume that ends an indefinite pause step before a weight the canary must grow for is
/// answered once the scale is under way, not once the track is ready; the weight follows when
/// it is, and never before.
#[tokio::test(start_paused = true)]
async fn a_resume_before_a_weight_that_grows_the_canary_is_answered_at_once() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let mut config = holding_with_steps(
        r#"[{"setCanaryScale":{"matchTrafficWeight":true}},{"setWeight":25},{"pause":{}},
            {"setWeight":75},{"pause":{"duration":"1m"}}]"#,
    );
    config.blue_green_config.replicas_per_env = 4;
    config.validate().expect("valid");
    let router = Arc::new(ReadinessAtApply {
        world: Arc::clone(&world),
        full: 4,
        last: Mutex::new(0.0),
        seen: Mutex::new(Vec::new()),
    });
    let h = world
        .orchestrator_routing(router.clone())
        .start(&config, SERVICE)
        .await
        .expect("start");
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.status().weight, 25.0, "at the indefinite pause");
    let asked = tokio::time::Instant::now();
    h.resume().await.expect("resume");
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(
        world.instances_of(&Track::Canary).await,
        3,
        "growing for 75%"
    );
    assert_eq!(
        h.status().weight,
        25.0,
        "the weight waits for the instances"
    );
    let report = h.wait().await.expect("report");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![0.0, 25.0, 75.0, 100.0]);
    assert_eq!(router.too_early(), vec![], "{report}");
}

/// A canary to 1.1.0 with a `latencyThreshold`, whose trigger judges nothing until the world
/// records 1.1.0's latencies.
fn latency_unfed_config() -> DeploymentConfig {
    let mut config = support::canary_config("1.1.0");
    config.monitoring.latency_threshold = Some(500.0);
    config.max_deployment_duration = Duration::from_secs(1800);
    config.validate().expect("valid");
    config
}

/// Gives 1.1.0 latencies, and waits for the deployment to succeed having said once that its
/// promotion waited.
async fn succeeds_once_latencies_come(world: &World, h: DeploymentHandle) -> Report {
    world.set_latency("1.1.0", 20.0);
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    let waits = unfed_said(&report, "the promotion waits");
    assert_eq!(waits.len(), 1, "said once: {report}");
    assert!(waits[0].contains("`latency-threshold`"), "{}", waits[0]);
    report
}

/// A canary whose `latencyThreshold` trigger has judged nothing (nothing records the new
/// version's latency) is not promoted on that silence once its steps are done: it holds at
/// its last weight, saying why once, and is promoted when latencies come.
#[tokio::test(start_paused = true)]
async fn a_canary_waits_to_be_promoted_until_every_rollback_trigger_has_data() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&latency_unfed_config()).await;
    // Its three steps of a minute are long done.
    tokio::time::sleep(Duration::from_secs(600)).await;
    let status = h.status();
    assert_eq!(status.stage, Stage::Canary, "{status:?}");
    assert!(status.weight < 100.0, "{status:?}");
    succeeds_once_latencies_come(&world, h).await;
}

/// Without those latencies ever, `canaryConfig.maxDuration` rolls the canary back: missing
/// evidence is never a pass.
#[tokio::test(start_paused = true)]
async fn a_canary_whose_rollback_trigger_never_has_data_is_rolled_back_at_its_max_duration() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = latency_unfed_config();
    config.canary_config.max_duration = Duration::from_secs(600);
    let report = world.start(&config).await.wait().await.expect("report");
    let reason = support::rollback_reason(&report);
    assert!(reason.contains("maximum duration 600s"), "{reason}");
    assert!(
        weights(&report.timeline).iter().all(|w| *w < 100.0),
        "{report}"
    );
    assert_eq!(
        unfed_said(&report, "the promotion waits").len(),
        1,
        "{report}"
    );
}

/// A resume that ends the last (indefinite) pause step does not promote such a canary either:
/// the promotion waits, as it does at the end of timed steps, until latencies come.
#[tokio::test(start_paused = true)]
async fn a_resume_at_the_last_pause_step_waits_for_a_trigger_without_data() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = latency_unfed_config();
    support::written_steps(
        &mut config,
        serde_json::from_str(r#"[{"setWeight":20},{"pause":{}}]"#).expect("steps"),
    );
    let h = world.start(&config).await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(h.status().weight, 20.0, "at the indefinite pause");
    h.resume().await.expect("resume");
    tokio::time::sleep(Duration::from_secs(30)).await;
    let status = h.status();
    assert_eq!(
        (status.stage, status.weight),
        (Stage::Canary, 20.0),
        "{status:?}"
    );
    succeeds_once_latencies_come(&world, h).await;
}

/// An operator's promotion while the canary waits for a trigger without data goes through,
/// and the watch after it, which then goes on past `monitoringDuration` for the same trigger
/// (not yet stale: it says nothing itself), says why.
#[tokio::test(start_paused = true)]
async fn the_watch_says_why_it_goes_on_after_a_promotion_through_the_wait() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = latency_unfed_config();
    let h = world.start(&config).await;
    // Its steps end at 3 minutes; the trigger would go stale only past 5.
    tokio::time::sleep(Duration::from_secs(200)).await;
    assert_eq!(h.status().stage, Stage::Canary);
    h.promote().await.expect("promote");
    support::until_stage(&h, Stage::Monitoring).await;
    tokio::time::sleep(config.monitoring.monitoring_duration + Duration::from_secs(20)).await;
    assert_eq!(h.status().stage, Stage::Monitoring);
    let report = succeeds_once_latencies_come(&world, h).await;
    let watch = "the watch goes on past monitoringDuration";
    assert_eq!(unfed_said(&report, watch).len(), 1, "{report}");
}

/// The anomalies of `report` that begin with `what`.
fn unfed_said<'a>(report: &'a Report, what: &str) -> Vec<&'a String> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly { summary, .. } if summary.starts_with(what) => Some(summary),
            _ => None,
        })
        .collect()
}

/// A metrics outage that begins partway through the last step's wait holds the promotion: one
/// window with data early in the step does not stand for the rest of it. Past the deadline the
/// deployment rolls back.
#[tokio::test(start_paused = true)]
async fn an_outage_late_in_the_last_step_holds_the_promotion_until_the_deadline() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = support::canary_config("1.1.0");
    config.max_deployment_duration = Duration::from_secs(600);
    config.monitoring.on_deadline = serin_orchestrator::OnDeadline::Rollback;
    config.validate().expect("valid");
    let h = world.start(&config).await;
    support::until_weight(&h, 70.0).await;
    // One window with data at 70%, then the source goes dark for good.
    tokio::time::sleep(Duration::from_secs(12)).await;
    world.source.set_unavailable(true);
    let report = h.wait().await.expect("report");
    let top = weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max);
    assert_eq!(top, 70.0, "{report}");
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    assert!(
        report
            .timeline
            .iter()
            .any(|e| e.kind.to_string().contains("had no data")),
        "{report}"
    );
}
