//! Advisory judges (Argo Rollouts' dry-run metrics): fed and listed in every decision, marked as
//! dry run, but never holding, rolling back or keeping the canary from a promotion; and a
//! controller whose judges are all advisory is refused, since nothing would then decide.

use crate::common;

use std::time::Duration;

use common::{counts, second};
use serde_json::json;
use serin_canary::Error;
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Command, OnInconclusive, Phase, Step,
};
use serin_canary::judge::Judge;
use serin_canary::sequential::SequentialCountJudge;
use serin_canary::threshold::{ArgoConfig, ArgoJudge};
use serin_signals::{Metric, Timestamp, Track};

fn http_5xx() -> Metric {
    Metric::Custom("http_5xx".into())
}

/// An Argo judge of the canary's 5xx rate (successful at most 1%, failed from 5%) in dry run:
/// the controller must only record its verdict, whatever it is.
fn advisory_argo() -> Box<dyn Judge> {
    let config: ArgoConfig = serde_json::from_value(json!({
        "metric": "http_5xx",
        "quantity": "errorRate",
        "successCondition": {"max": 0.01},
        "failureCondition": {"min": 0.05},
        "interval": "1m",
        "dryRun": true,
    }))
    .unwrap();
    Box::new(ArgoJudge::new(config).unwrap())
}

type Ctl = CanaryController<Box<dyn Judge>>;

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

/// A deciding judge of the error rate and an advisory one of 5xx responses, under a policy that
/// rolls back on missing data.
fn controller(steps: Vec<Step>, advisory: Box<dyn Judge>) -> Ctl {
    let mut policy = CanaryPolicy::new(steps);
    policy.on_inconclusive = OnInconclusive::Rollback;
    let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    Ctl::new(policy, vec![Box::new(judge), advisory]).unwrap()
}

/// Feeds second `s` of `metric` (the canary with `canary_errors` of 100 requests), no decision.
fn feed(ctl: &mut Ctl, metric: Metric, s: u64, canary_errors: u64) {
    let w = second(s);
    let b = counts(metric.clone(), Track::Stable, w, 900, 9);
    let c = counts(metric, Track::Canary, w, 100, canary_errors);
    ctl.feed(&b, &c, w.end()).unwrap();
}

fn analysis(secs: u64) -> Step {
    Step::Analysis(AnalysisStep {
        duration: Duration::from_secs(secs),
        min_samples: 1,
    })
}

/// The advisory judge's evidence in a decision, which must list it.
fn advisory_summary(evidence: &[serin_canary::judge::Evidence]) -> &str {
    &evidence
        .iter()
        .find(|e| e.metric == http_5xx())
        .expect("every decision lists the advisory judge")
        .summary
}

#[test]
fn a_dry_run_metric_without_data_neither_holds_an_analysis_step_nor_rolls_it_back() {
    let steps = vec![Step::SetWeight(10), analysis(60), Step::SetWeight(50)];
    let mut ctl = controller(steps, advisory_argo());
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    for s in 1..=61 {
        feed(&mut ctl, Metric::ErrorRate, s, 1);
    }
    let d = ctl.tick(at(62));
    assert_eq!(d.action, Action::SetWeight(50), "{d:?}");
    let summary = advisory_summary(&d.evidence);
    assert!(summary.starts_with("Dry run"), "{summary}");
}

#[test]
fn a_dry_run_metric_without_data_does_not_keep_the_canary_from_promotion() {
    let mut ctl = controller(vec![Step::SetWeight(10)], advisory_argo());
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    feed(&mut ctl, Metric::ErrorRate, 1, 1);
    let d = ctl.tick(at(2));
    assert_eq!(d.action, Action::Promote, "{d:?}");
    assert!(advisory_summary(&d.evidence).starts_with("Dry run"));
}

#[test]
fn an_advisory_judges_failure_or_ended_run_decides_nothing() {
    let steps = vec![Step::SetWeight(10), analysis(60), Step::SetWeight(50)];
    let mut ctl = controller(steps, advisory_argo());
    ctl.tick(at(0));
    feed(&mut ctl, Metric::ErrorRate, 1, 1);
    // A 50% 5xx rate: the Argo run fails, and has ended.
    feed(&mut ctl, http_5xx(), 1, 50);
    assert!(ctl.judges()[1].judgement(at(2)).verdict.is_fail());
    let d = ctl.tick(at(2));
    assert_eq!(ctl.state().phase(), Phase::Progressing, "{d:?}");
    assert_eq!(d.severity, None, "{d:?}");
    assert_eq!(d.evidence[0].metric, Metric::ErrorRate, "{d:?}");
    let summary = advisory_summary(&d.evidence);
    assert!(
        summary.starts_with("Dry run") && summary.contains("Failed"),
        "{summary}"
    );
    // Held while the analysis runs, and neither the failure nor the ended run holds it past.
    for s in 2..=61 {
        feed(&mut ctl, Metric::ErrorRate, s, 1);
    }
    assert_eq!(ctl.tick(at(62)).action, Action::SetWeight(50));
    assert_eq!(ctl.tick_held(at(63)).action, Action::Hold);
    let d = ctl.command(Command::Promote, at(64)).unwrap();
    assert_eq!(d.action, Action::Promote, "{d:?}");
}

#[test]
fn an_advisory_judges_run_ended_inconclusive_decides_nothing() {
    let steps = vec![Step::SetWeight(10), Step::SetWeight(50)];
    let mut ctl = controller(steps, advisory_argo());
    ctl.tick(at(0));
    feed(&mut ctl, Metric::ErrorRate, 1, 1);
    // A 2% 5xx rate, between success and failure: the Argo run ends Inconclusive.
    feed(&mut ctl, http_5xx(), 1, 2);
    assert!(ctl.judges()[1].concluded());
    let d = ctl.tick(at(2));
    assert_eq!(d.action, Action::SetWeight(50), "{d:?}");
}

#[test]
fn a_controller_whose_judges_are_all_advisory_is_refused() {
    let steps = vec![Step::SetWeight(10), analysis(60)];
    let err = Ctl::new(CanaryPolicy::new(steps), vec![advisory_argo()]).unwrap_err();
    assert!(matches!(err, Error::InvalidConfig { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("judges") && msg.contains("argo") && msg.contains("dry run"),
        "{msg}"
    );
}
