//! Every decision carries every judge's evidence, the deciding judge's first, and names the judge
//! behind a hold or rollback for missing data; a promotion through the promotion gate leads with
//! the gate's evidence; the saved state records a held tick as the last action, and a saved state
//! that no rollout writes is refused.

use crate::common;

use std::time::Duration;

use common::{counts, second};
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, ControllerState, OnInconclusive,
    PromotionGate, Step,
};
use serin_canary::judge::Statistic;
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

/// Judges of the error rate and of 5xx responses; only the first is ever fed.
fn two_judges(policy: CanaryPolicy) -> Ctl {
    let judges = [Metric::ErrorRate, Metric::Custom("http_5xx".into())]
        .map(|m| SequentialCountJudge::new(m, 0.05, 0.0).unwrap());
    Ctl::new(policy, judges.into()).unwrap()
}

fn feed_error_rate(ctl: &mut Ctl, s: u64) {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    ctl.feed(&b, &c, w.end()).unwrap();
}

#[test]
fn a_judge_that_never_saw_data_has_evidence_and_comes_first_when_it_decides() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    policy.on_inconclusive = OnInconclusive::Rollback;
    let mut ctl = two_judges(policy);
    // Before any data, every judge is accounted for.
    let d = ctl.tick(at(0));
    assert_eq!(d.action, Action::SetWeight(10));
    assert_eq!(d.evidence.len(), 2, "{:?}", d.evidence);
    feed_error_rate(&mut ctl, 0);
    let d = ctl.tick(at(1));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("http_5xx"), "{}", d.reason);
    assert_eq!(d.evidence.len(), 2, "{:?}", d.evidence);
    assert_eq!(d.evidence[0].metric.as_str(), "http_5xx");
    assert!(!d.evidence[0].summary.is_empty(), "{:?}", d.evidence[0]);
}

/// The judges are still inconclusive when the canary is promoted (a zero margin can never be
/// shown), so what decided the promotion is the gate's showing that the canary's error rate is
/// below its bound: the decision carries that evidence, first.
#[test]
fn a_promotion_through_the_gate_leads_with_the_gates_evidence() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    policy.promotion = Some(PromotionGate::new(0.05, 0.05).unwrap());
    let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![judge]).unwrap();
    ctl.tick(at(0));
    feed_error_rate(&mut ctl, 0);
    let d = ctl.tick(at(1));
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    assert_eq!(d.evidence.len(), 2, "{:?}", d.evidence);
    assert_eq!(d.decisive_evidence(), None, "no judge failed");
    let (gate, judge) = (&d.evidence[0], &d.evidence[1]);
    assert_eq!(gate.judge, "promotion-gate", "{gate:?}");
    assert_eq!(gate.metric, Metric::ErrorRate);
    assert_eq!(gate.sample_size.canary, 100, "{gate:?}");
    assert_eq!(gate.estimates.canary, Some(0.0), "{gate:?}");
    let rate = gate.primary_effect().expect("the canary's error rate");
    let shown = rate.interval.expect("the interval the gate showed");
    assert_eq!((shown.upper, shown.level), (0.05, 0.95), "{rate:?}");
    assert!(
        matches!(gate.statistic, Some(Statistic::EValue(e)) if e >= 20.0),
        "{gate:?}"
    );
    assert_eq!(gate.threshold, Some(20.0));
    assert!(gate.summary.contains("0 of 100"), "{}", gate.summary);
    assert!(gate.summary.contains("below 5%"), "{}", gate.summary);
    assert_ne!(judge.judge, "promotion-gate", "{judge:?}");
}

#[test]
fn an_analysis_short_of_samples_names_the_judge_and_its_count() {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(60),
            min_samples: 5,
        }),
    ]);
    policy.on_inconclusive = OnInconclusive::Rollback;
    let mut ctl = two_judges(policy);
    ctl.tick(at(0));
    for s in 0..10 {
        feed_error_rate(&mut ctl, s);
    }
    let d = ctl.tick(at(61));
    assert_eq!(d.action, Action::Rollback);
    assert!(
        d.reason.contains("http_5xx") && d.reason.contains("0 of 5"),
        "{}",
        d.reason
    );
    assert_eq!(d.evidence[0].metric.as_str(), "http_5xx");
}

#[test]
fn a_state_held_before_its_rollout_started_is_refused() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    let ctl = two_judges(policy.clone());
    let mut state = serde_json::to_value(ctl.state()).unwrap();
    state["heldAt"] = serde_json::json!(1_000);
    let state: ControllerState = serde_json::from_value(state).unwrap();
    let judges = ctl.into_parts().1;
    let e = Ctl::from_parts(policy, judges, state)
        .unwrap_err()
        .to_string();
    assert!(e.contains("state.heldAt"), "{e}");
}

#[test]
fn a_held_tick_is_the_last_action_of_the_saved_state() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    let mut ctl = two_judges(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    assert_eq!(ctl.tick_held(at(1)).action, Action::Hold);
    let state = serde_json::to_value(ctl.state()).unwrap();
    assert_eq!(state["lastAction"], "hold", "{state}");
}

#[test]
fn a_state_whose_judge_counted_samples_it_never_judged_is_refused() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    let mut ctl = two_judges(policy.clone());
    ctl.tick(at(0));
    let mut state = serde_json::to_value(ctl.state()).unwrap();
    state["totalSamples"] = serde_json::json!([0, 3]);
    let state: ControllerState = serde_json::from_value(state).unwrap();
    let judges = ctl.into_parts().1;
    let e = Ctl::from_parts(policy, judges, state)
        .unwrap_err()
        .to_string();
    assert!(e.contains("state.judgements[1]"), "{e}");
}
