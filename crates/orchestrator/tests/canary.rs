//! The canary strategy end to end on the in-memory world, under paused time.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_canary::controller::{LatencyPacing, Pacing, Pause, Step};
use serin_orchestrator::{EventKind, Outcome};
use serin_signals::{Arm, Track};
use support::{World, canary_config, drain, rollback_reason, weights};

#[tokio::test(start_paused = true)]
async fn a_healthy_canary_is_promoted_and_the_old_track_retired() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let orchestrator = world.orchestrator();
    let mut events = orchestrator.subscribe();
    let report = support::run_to_end(&orchestrator, &canary_config("1.1.0")).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded));
    world.assert_live(Track::Canary, "1.1.0").await;
    assert!(!world.has_track(&Track::Stable).await, "old track retired");
    let seen = drain(&mut events);
    assert_eq!(weights(&seen), vec![10.0, 40.0, 70.0, 100.0]);
    assert_eq!(
        seen, report.timeline,
        "subscribers see exactly the journalled timeline"
    );
}

#[tokio::test(start_paused = true)]
async fn an_exposure_budget_starts_the_canary_at_0_percent_and_pacing_still_promotes() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    // Judges without a margin: the default 10% makes them slower to catch a 2x regression,
    // which pacing counts (at 1% the exposure would be about 3,750, over this budget).
    config.canary_config.error_rate_margin = 0.0;
    config.canary_config.pacing = Some(Pacing {
        exposure_budget: Some(3_000.0),
        ..Pacing::default()
    });
    let report = world.deploy(&config).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    // The canary waits at 0% while the baseline's errors give its rate, then takes the
    // largest weight up to the first step's 10% within the budget, and every later weight
    // once the errors there rule out a 2x regression.
    let seen = weights(&report.timeline);
    assert_eq!(seen.first(), Some(&0.0), "{seen:?}");
    assert_eq!(&seen[seen.len() - 3..], &[40.0, 70.0, 100.0], "{seen:?}");
    let paced = report.timeline.iter().any(|e| {
        matches!(&e.kind, EventKind::AnalysisResult { decision } if decision.reason.contains("pacing"))
    });
    assert!(paced, "the held weights say why");
}

#[tokio::test(start_paused = true)]
async fn robust_judges_pace_on_half_minute_batches_of_errors_before_the_first_raise() {
    // 5% errors on both tracks: at 10%, the canary's track expects one error a second, so each
    // half-minute batch holds enough, and the gate waits for ten of them.
    let (world, _traffic) = World::serving(0.05, 0.05).await;
    let mut config = canary_config("1.1.0");
    config.canary_config.robust_judges = true;
    // 5% is the promotion gate's default bound, which this canary could never be shown below.
    config.canary_config.promotion_max_error_rate = 1.0;
    config.canary_config.pacing = Some(Pacing::default());
    let report = world.deploy(&config).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 70.0, 100.0]);
    // Without the robust gate the weight rises when the first 60-s pause ends.
    let at = |percent: f64| {
        report.timeline.iter().find_map(|e| match &e.kind {
            EventKind::WeightChanged { percent: p, .. } if *p == percent => Some(e.at),
            _ => None,
        })
    };
    let (first, second) = (at(10.0).unwrap(), at(40.0).unwrap());
    let held = second.saturating_duration_since(first);
    assert!(held >= Duration::from_secs(300), "raised after {held:?}");
    let waited = report.timeline.iter().any(|e| {
        matches!(&e.kind, EventKind::AnalysisResult { decision }
            if decision.reason.contains("batches spanning 30s"))
    });
    assert!(waited, "the held weight says why");
}

#[tokio::test(start_paused = true)]
async fn with_two_judges_every_weight_the_controller_sets_is_carried_out() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 100.0);
    let mut config = canary_config("1.1.0");
    config.canary_config.judge_latency = true;
    let report = world.deploy(&config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    // Error rate and latency are fed each window, then one decision is carried out: a raise
    // decided on the first metric is not lost behind the second's hold.
    assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 70.0, 100.0]);
    world.assert_live(Track::Canary, "1.1.0").await;
}

#[tokio::test(start_paused = true)]
async fn pacing_on_latency_alone_promotes_a_service_without_errors_and_holds_a_slow_one() {
    let pacing = Pacing {
        detectable_ratio: None,
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    };
    for (median, promoted) in [(100.0, true), (130.0, false)] {
        let (world, _traffic) = World::serving(0.0, 0.0).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", median);
        let mut config = canary_config("1.1.0");
        config.canary_config.pacing = Some(pacing.clone());
        config.canary_config.max_duration = Duration::from_secs(1_200);
        let report = world.deploy(&config).await;
        println!("{report}");
        let holds = report.timeline.iter().any(|e| {
            matches!(&e.kind, EventKind::AnalysisResult { decision }
                if decision.reason.contains("do not yet rule out a canary 10% slower"))
        });
        if promoted {
            // Errors never come, so only the latencies can pace it, and they do. Every weight is
            // carried out, though each window feeds two metrics.
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
            assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 70.0, 100.0]);
        } else {
            // No judge reads latency: the gate alone keeps it at 10% until the rollout's end,
            // and the rollback takes it back to 0%.
            let reason = rollback_reason(&report);
            assert!(reason.contains("maximum duration"), "{reason}");
            assert_eq!(weights(&report.timeline), vec![10.0, 0.0]);
            assert!(holds, "the held weight says why");
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_canary_with_five_percent_errors_is_rolled_back_by_the_judge() {
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(reason.contains("error_rate"), "{reason}");
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await, "canary retired");
    assert!(report.timeline.iter().any(|e| matches!(&e.kind, EventKind::AnalysisResult { decision } if !decision.evidence.is_empty() && decision.severity.is_some())));
    // The report keeps what each arm looked like at every observation: the canary's error
    // rate, summed over the run, is near the 5% it was given, the baseline's near 0.5%.
    assert!(!report.samples.is_empty());
    let total = |arm: Arm| {
        let (mut r, mut e) = (0u64, 0u64);
        for s in &report.samples {
            if let Some(a) = s.arm(arm) {
                r += a.requests.unwrap_or(0);
                e += a.errors.unwrap_or(0);
            }
        }
        e as f64 / r.max(1) as f64
    };
    let (canary, baseline) = (total(Arm::Canary), total(Arm::Baseline));
    assert!((0.02..0.09).contains(&canary), "canary error rate {canary}");
    assert!(baseline < 0.02, "baseline error rate {baseline}");
    assert!(report.samples.iter().any(|s| s.weight_percent > 0.0));
}

#[tokio::test(start_paused = true)]
async fn an_absolute_threshold_rolls_back_through_its_trigger() {
    // Both versions fail 3% of requests: the judges see no difference, but the canary
    // breaches the configured 2% ceiling.
    let (world, _traffic) = World::serving(0.03, 0.03).await;
    let mut config = canary_config("1.1.0");
    config.canary_thresholds.max_error_rate = Some(0.02);
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("canary-max-error-rate"), "{reason}");
    let fired = report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::TriggerFired { event } => Some(event.clone()),
            _ => None,
        })
        .expect("trigger event in the timeline");
    assert_eq!(fired.evidence.threshold, Some(0.02));
    assert!(fired.evidence.observed.is_some_and(|o| o > 0.02));
    world.assert_live(Track::Stable, "1.0.0").await;
}

#[tokio::test(start_paused = true)]
async fn a_canary_that_cannot_finish_in_time_is_rolled_back_at_the_deadline() {
    // Waiting for an approval that never comes: the wait ends at the deadline. (Timed pauses
    // that outlast it, each lasting whole windows, and a metrics window longer than the whole
    // deployment may take, are refused when the config is loaded.)
    for window in [Duration::from_secs(10), Duration::from_secs(3_600)] {
        let (world, _traffic) = World::serving(0.005, 0.005).await;
        let mut config = canary_config("1.1.0");
        config.max_deployment_duration = Duration::from_secs(90);
        config.blue_green_config.readiness_timeout = Duration::from_secs(60);
        let timed = (window < config.max_deployment_duration).then_some(Step::Pause(Pause {
            duration: Some(Duration::from_secs(30)),
        }));
        let steps = [Step::SetWeight(10)]
            .into_iter()
            .chain(timed)
            .chain([Step::SetWeight(40), Step::Pause(Pause::default())]);
        support::written_steps(&mut config, steps.collect());
        config.canary_config.metrics_window = window;
        if window >= config.max_deployment_duration {
            let err = world
                .orchestrator()
                .run(&config)
                .await
                .expect_err("a window read only after the deadline")
                .to_string();
            assert!(
                err.contains("canaryConfig.metricsWindow `1h`")
                    && err.contains("maxDeploymentDuration"),
                "{err}"
            );
            world.assert_live(Track::Stable, "1.0.0").await;
            continue;
        }
        let report = world.deploy(&config).await;
        let reason = rollback_reason(&report);
        assert!(reason.contains("maxDeploymentDuration"), "{reason}");
        let took = report.last_at.saturating_duration_since(report.started_at);
        assert!(
            took.as_secs() >= 90 && took.as_secs() <= 100,
            "{window:?}: {took:?}"
        );
        world.assert_live(Track::Stable, "1.0.0").await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_holds_the_canary_and_never_promotes() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    world.source.set_unavailable(true);
    let mut config = canary_config("1.1.0");
    config.max_deployment_duration = Duration::from_secs(600);
    let report = world.deploy(&config).await;
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{:?}",
        report.outcome
    );
    let max_weight = weights(&report.timeline)
        .into_iter()
        .fold(0.0_f64, f64::max);
    assert!(max_weight < 100.0, "promoted without evidence");
}

/// The world's router, failing the first switch back to the stable track once the canary has
/// had traffic.
struct FailsTheSwitchBack {
    world: Arc<World>,
    exposed: std::sync::atomic::AtomicBool,
    failed: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl serin_traffic::TrafficRouter for FailsTheSwitchBack {
    fn name(&self) -> &str {
        "fails-the-switch-back"
    }

    fn capabilities(&self) -> serin_traffic::Capabilities {
        self.world.router.capabilities()
    }

    async fn apply(&self, split: &serin_traffic::TrafficSplit) -> serin_traffic::Result<()> {
        use std::sync::atomic::Ordering;
        let canary = split.weight_of("canary").map_or(0, |w| w.bps());
        if canary > 0 {
            self.exposed.store(true, Ordering::SeqCst);
        } else if self.exposed.load(Ordering::SeqCst) && !self.failed.swap(true, Ordering::SeqCst) {
            self.world.router.fail_next_apply("connection refused");
        }
        self.world.router.apply(split).await
    }

    async fn current(&self) -> serin_traffic::Result<Option<serin_traffic::TrafficSplit>> {
        self.world.router.current().await
    }
}

/// A rollback a judge decides whose first switch back fails is switched back again by the
/// rolling-back stage, as one started on an error is: the deployment does not end with the
/// bad version still taking traffic.
#[tokio::test(start_paused = true)]
async fn a_judged_rollback_whose_first_switch_back_fails_switches_back_again() {
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let router = Arc::new(FailsTheSwitchBack {
        world: Arc::clone(&world),
        exposed: false.into(),
        failed: false.into(),
    });
    let o = world.orchestrator_routing(router.clone());
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    let report = o.run(&config).await.expect("run").remove(0);
    assert!(router.failed.load(std::sync::atomic::Ordering::SeqCst));
    let reason = rollback_reason(&report);
    assert!(reason.contains("error_rate"), "{reason}");
    world.assert_live(Track::Stable, "1.0.0").await;
    assert!(!world.has_track(&Track::Canary).await);
}
