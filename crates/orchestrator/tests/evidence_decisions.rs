//! Every promotion and rollback explains itself: the event announcing it, and the report
//! rebuilt from the journal, say what decided it (a metric with its estimate, interval or
//! e-value, threshold and time; or the operator, the deadline, the error) and when.

use crate::support;

use std::time::Duration;

use serin_canary::controller::{Action, Decision};
use serin_orchestrator::{Event, EventKind, Platform, Report, Stage, TrafficStrategyKind};
use serin_signals::Track;
use support::{World, blue_green_config, canary_config, rollback_reason};

/// The analysis results in the report (decisions with their evidence), in order.
fn analyses(report: &Report) -> Vec<(&Event, &Decision)> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AnalysisResult { decision } => Some((e, decision)),
            _ => None,
        })
        .collect()
}

/// The reason of the report's `rollbackStarted` event, and when it was announced.
fn rollback_started(report: &Report) -> (&str, &Event) {
    report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::RollbackStarted { reason } => Some((reason.as_str(), e)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no rollbackStarted event\n{report}"))
}

/// The report survives its JSON form with every decision's evidence.
fn assert_round_trips(report: &Report) {
    let json = report.to_json().expect("json");
    assert_eq!(&Report::from_json(&json).expect("read back"), report);
}

#[tokio::test(start_paused = true)]
async fn a_judged_promotion_carries_the_gates_and_the_judges_evidence() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = world.deploy(&canary_config("1.1.0")).await;
    support::assert_succeeded(&report);
    let (event, promote) = *analyses(&report)
        .iter()
        .find(|(_, d)| d.action == Action::Promote)
        .unwrap_or_else(|| panic!("no promotion\n{report}"));
    assert_eq!(promote.at, event.at, "decided when announced");
    // The promotion gate decided: it leads, with the canary's estimate, its e-value against
    // the threshold 1/alpha, and the bound it shows the error rate below.
    let gate = &promote.evidence[0];
    assert_eq!(gate.judge, "promotion-gate", "{promote:?}");
    assert_eq!(gate.metric.to_string(), "error_rate");
    assert_eq!(gate.at, event.at);
    assert!(gate.estimates.canary.is_some_and(|r| r < 0.05), "{gate:?}");
    assert!(
        gate.statistic.is_some() && gate.threshold == Some(20.0),
        "{gate:?}"
    );
    assert!(gate.effects[0].interval.is_some(), "{gate:?}");
    // Every judge's standing follows, with both arms' estimates over the window it judged.
    let judges = &promote.evidence[1..];
    assert!(!judges.is_empty(), "{promote:?}");
    for e in judges {
        assert!(e.window.is_some() && e.statistic.is_some(), "{e:?}");
        assert!(
            e.estimates.baseline.is_some() && e.estimates.canary.is_some(),
            "{e:?}"
        );
        assert!(e.threshold.is_some(), "{e:?}");
    }
    assert!(report.decisions().any(|e| e == event));
    assert_round_trips(&report);
}

#[tokio::test(start_paused = true)]
async fn a_judges_failure_names_its_metric_estimate_statistic_and_threshold() {
    let (world, _traffic) = World::serving(0.005, 0.05).await;
    let mut config = canary_config("1.1.0");
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    let outcome = rollback_reason(&report).to_owned();
    let (event, rollback) = *analyses(&report)
        .iter()
        .find(|(_, d)| d.action == Action::Rollback)
        .unwrap_or_else(|| panic!("no judged rollback\n{report}"));
    let decisive = rollback.decisive_evidence().expect("a judge decided");
    assert_eq!(decisive.metric.to_string(), "error_rate");
    assert_eq!(decisive.at, event.at);
    let (canary, baseline) = (decisive.estimates.canary, decisive.estimates.baseline);
    assert!(canary > baseline, "{decisive:?}");
    assert!(decisive.statistic.is_some() && decisive.threshold == Some(20.0));
    assert!(decisive.effects[0].interval.is_some(), "{decisive:?}");
    // The rollback and the outcome repeat the decisive evidence, at the same time.
    let (reason, started) = rollback_started(&report);
    assert_eq!(started.at, event.at);
    for why in [reason, outcome.as_str()] {
        assert!(
            why.contains("error_rate") && why.contains(&decisive.summary),
            "{why}"
        );
    }
    assert_round_trips(&report);
}

#[tokio::test(start_paused = true)]
async fn a_triggers_rollback_names_the_value_it_saw_and_its_threshold() {
    let (world, _traffic) = World::serving(0.03, 0.03).await;
    let mut config = canary_config("1.1.0");
    config.canary_thresholds.max_error_rate = Some(0.02);
    config.monitoring.error_rate_threshold = None;
    let report = world.deploy(&config).await;
    let (event, fired) = report
        .timeline
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::TriggerFired { event } => Some((e, event)),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no trigger fired\n{report}"));
    let evidence = &fired.evidence;
    assert!(evidence.subject.starts_with("error_rate"), "{evidence:?}");
    assert_eq!(evidence.threshold, Some(0.02));
    assert!(evidence.observed.is_some_and(|o| o > 0.02), "{evidence:?}");
    assert!(
        evidence.operator.is_some() && evidence.at <= event.at,
        "{evidence:?}"
    );
    let (reason, started) = rollback_started(&report);
    assert_eq!(started.at, event.at);
    assert!(
        reason.contains(&fired.trigger) && reason.contains(&evidence.reason),
        "{reason}"
    );
    assert_eq!(rollback_reason(&report), reason);
    assert_round_trips(&report);
}

#[tokio::test(start_paused = true)]
async fn a_deadlines_rollback_says_the_deadline_decided_and_blames_no_judge() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = canary_config("1.1.0");
    config.max_deployment_duration = Duration::from_secs(90);
    config.blue_green_config.readiness_timeout = Duration::from_secs(60);
    support::written_steps(
        &mut config,
        serde_json::from_str(r#"[{"setWeight":10},{"pause":{}}]"#).expect("steps"),
    );
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    let (reason, started) = rollback_started(&report);
    assert!(reason.contains("maxDeploymentDuration 90s"), "{reason}");
    assert_eq!(
        started.at.saturating_duration_since(report.started_at),
        config.max_deployment_duration,
        "announced when the deadline came"
    );
    assert!(
        analyses(&report)
            .iter()
            .all(|(_, d)| d.decisive_evidence().is_none()),
        "no judge decided\n{report}"
    );
    assert_round_trips(&report);
}

#[tokio::test(start_paused = true)]
async fn an_operators_abort_says_an_operator_decided() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world.start(&canary_config("1.1.0")).await;
    support::until_weight(&h, 10.0).await;
    let asked = world.clock.now();
    h.abort().await.expect("abort");
    let report = h.wait().await.expect("report");
    let (reason, started) = rollback_started(&report);
    assert!(reason.contains("operator"), "{reason}");
    assert_eq!(started.at, asked);
    assert_eq!(rollback_reason(&report), reason);
}

/// The announcement of a promotion at `at` that no metric decided.
fn promotion_at(report: &Report, at: serin_signals::Timestamp) -> &Decision {
    analyses(report)
        .into_iter()
        .find(|(e, d)| d.action == Action::Promote && e.at == at)
        .map(|(_, d)| d)
        .unwrap_or_else(|| panic!("no promotion announced at {at:?}\n{report}"))
}

#[tokio::test(start_paused = true)]
async fn an_operators_promote_of_a_switch_and_of_its_watch_says_an_operator_decided() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    support::until_stage(&h, Stage::Switch).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let switch = world.clock.now();
    h.promote().await.expect("promote the switch");
    support::until_stage(&h, Stage::Monitoring).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let watch = world.clock.now();
    h.promote().await.expect("promote the watch");
    let report = h.wait().await.expect("report");
    support::assert_succeeded(&report);
    for at in [switch, watch] {
        let d = promotion_at(&report, at);
        assert!(d.reason.contains("operator"), "{d:?}");
        assert!(d.evidence.is_empty() && d.severity.is_none(), "{d:?}");
        assert_eq!(d.at, at);
    }
    assert_round_trips(&report);
}

#[tokio::test(start_paused = true)]
async fn a_dead_instances_rollback_names_the_instance_and_why_it_died() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let h = world
        .start(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    support::until_weight(&h, 25.0).await;
    // The world serves 1.0.0 on `stable`: the new version comes up on `blue`.
    let blue = world
        .platform
        .status(support::SERVICE, &Track::Blue)
        .await
        .expect("blue");
    let instance = blue.instances[0].id.clone();
    world
        .platform
        .kill(support::SERVICE, &Track::Blue, &instance, "out of memory")
        .expect("kill");
    let report = h.wait().await.expect("report");
    let (reason, _) = rollback_started(&report);
    assert!(
        reason.contains("out of memory") && reason.contains(instance.as_str()),
        "{reason}"
    );
    assert_eq!(rollback_reason(&report), reason);
}

#[tokio::test(start_paused = true)]
async fn a_promotion_finished_after_a_restart_keeps_the_evidence_that_decided_it() {
    let (world, _traffic) = support::slow_serving_world(40).await;
    let config = canary_config("1.1.0");
    // Where the promotion is journalled as under way (its track grows to full size).
    let first = world.deploy(&config).await;
    support::assert_succeeded(&first);
    let promoting = world
        .journal
        .all()
        .iter()
        .position(|r| r.deployment == first.deployment && r.state.promoting)
        .expect("a promotion under way is journalled");
    let (world, _traffic) = support::slow_serving_world(40).await;
    let last = support::crash_at(&world, world.orchestrator(), config, promoting + 1).await;
    assert!(last.state.promoting, "{last:?}");
    let report = support::resume_to_end(&world.orchestrator(), &last.deployment).await;
    support::assert_succeeded(&report);
    let promoted = analyses(&report)
        .into_iter()
        .filter(|(_, d)| d.action == Action::Promote)
        .collect::<Vec<_>>();
    assert_eq!(promoted.len(), 1, "announced once\n{report}");
    let (event, decision) = promoted[0];
    assert_eq!(decision.evidence[0].judge, "promotion-gate", "{decision:?}");
    let completed = report
        .timeline
        .iter()
        .position(|e| matches!(e.kind, EventKind::Completed { .. }))
        .expect("completed");
    assert!(event.seq < report.timeline[completed].seq);
}

#[tokio::test(start_paused = true)]
async fn blue_green_with_canary_switches_on_the_analysis_evidence() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.strategy = serin_orchestrator::StrategyKind::BlueGreenWithCanary;
    config.canary_config.target_percentage = 50;
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    support::assert_succeeded(&report);
    let promotions: Vec<_> = analyses(&report)
        .into_iter()
        .filter(|(_, d)| d.action == Action::Promote)
        .collect();
    assert_eq!(promotions.len(), 1, "the analysis decided, once\n{report}");
    let (event, promote) = promotions[0];
    assert_eq!(promote.evidence[0].judge, "promotion-gate", "{promote:?}");
    assert!(promote.evidence.len() > 1, "{promote:?}");
    let full = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::WeightChanged { percent, .. } if percent == 100.0))
        .expect("the full switch");
    assert!(event.seq < full.seq && event.at <= full.at, "{report}");
}

#[tokio::test(start_paused = true)]
async fn a_blue_green_switch_that_completes_says_its_plan_decided_and_when() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = world
        .deploy(&blue_green_config("1.1.0", TrafficStrategyKind::Gradual))
        .await;
    support::assert_succeeded(&report);
    let full = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::WeightChanged { percent, .. } if percent == 100.0))
        .expect("the full switch");
    let d = promotion_at(&report, full.at);
    assert!(
        d.reason.contains("switch plan") && d.reason.contains("no rollback trigger"),
        "{d:?}"
    );
    assert!(d.evidence.is_empty() && d.severity.is_none(), "{d:?}");
}
