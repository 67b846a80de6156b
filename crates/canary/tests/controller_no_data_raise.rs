//! A `setWeight` that raises the canary's weight from above 0% waits for every deciding judge to
//! have seen data at the weight in force: a metrics outage is no evidence, and never raises the
//! weight. A raise from 0%, a lowering, a pause and a scale step are not held by it, and a saved
//! state from before the counter existed holds until data comes. Nor does one window with data
//! stand for a step whose latest window had none, and a window is fed once.

use crate::common;

use std::time::Duration;

use common::{counts, no_data, second};
use serde_json::json;
use serin_canary::controller::{
    Action, CanaryController, CanaryPolicy, CanaryScale, ControllerState, Pause, Step,
};
use serin_canary::judge::Judge;
use serin_canary::sequential::SequentialCountJudge;
use serin_canary::threshold::{ArgoConfig, ArgoJudge};
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn pause(secs: u64) -> Step {
    Step::Pause(Pause {
        duration: Some(Duration::from_secs(secs)),
    })
}

/// setWeight 10, pause 5m, setWeight 20, pause 5m, setWeight 40: the orchestrator's default
/// steps' start.
fn outage_policy() -> CanaryPolicy {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        pause(300),
        Step::SetWeight(20),
        pause(300),
        Step::SetWeight(40),
    ]);
    policy.progress_deadline = Some(Duration::from_secs(600));
    policy
}

fn judge() -> SequentialCountJudge {
    SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
}

fn feed_no_data(ctl: &mut Ctl, s: u64) {
    let w = second(s);
    let b = no_data(Metric::ErrorRate, Track::Stable, w);
    let c = no_data(Metric::ErrorRate, Track::Canary, w);
    ctl.feed(&b, &c, w.end()).unwrap();
}

fn feed_data(ctl: &mut Ctl, s: u64) {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    ctl.feed(&b, &c, w.end()).unwrap();
}

#[test]
fn a_metrics_outage_at_10_percent_holds_the_raise_then_rolls_back_past_the_deadline() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    for s in 0..400 {
        feed_no_data(&mut ctl, s);
    }
    let d = ctl.tick(at(400));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert_eq!(d.weight, 10);
    assert!(d.reason.contains("sequential-counts"), "{}", d.reason);
    assert!(d.reason.contains("error_rate"), "{}", d.reason);
    assert!(d.reason.contains("no data at 10%"), "{}", d.reason);
    // The held step began when the pause ended, at the tick of 400 s: the progress deadline of
    // 600 s rolls back past 1000 s.
    assert_eq!(ctl.tick(at(1000)).action, Action::Hold);
    let d = ctl.tick(at(1001));
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert!(d.reason.contains("no data at 10%"), "{}", d.reason);
}

#[test]
fn a_controller_fed_nothing_holds_the_raise_too() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    let d = ctl.tick(at(400));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("no data at 10%"), "{}", d.reason);
}

#[test]
fn data_at_the_weight_raises_it_and_the_count_starts_afresh_at_the_next() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    feed_data(&mut ctl, 10);
    assert_eq!(ctl.tick(at(400)).action, Action::SetWeight(20));
    // Data at 10% is no evidence at 20%.
    let d = ctl.tick(at(800));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("no data at 20%"), "{}", d.reason);
    feed_data(&mut ctl, 801);
    assert_eq!(ctl.tick(at(802)).action, Action::SetWeight(40));
}

#[test]
fn samples_from_the_previous_split_are_no_evidence_at_the_new_weight() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    feed_data(&mut ctl, 10);
    assert_eq!(ctl.tick(at(400)).action, Action::SetWeight(20));
    // The router still splits at 10% while the raised weight waits for its track.
    let w = second(500);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    ctl.feed_in_force(&b, &c, 10, w.end()).unwrap();
    // The pause after the raise waits its 300 s at 20%, from the end of that window.
    let d = ctl.tick(at(800));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert_eq!(d.reason, "paused for 300s");
    let d = ctl.tick(at(801));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("no data at 20%"), "{}", d.reason);
}

#[test]
fn a_raise_from_zero_a_lowering_and_a_scale_step_are_not_held() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::SetCanaryScale(CanaryScale {
            replicas: Some(2),
            ..CanaryScale::default()
        }),
        Step::SetWeight(5),
        Step::SetWeight(0),
        Step::SetWeight(20),
    ]);
    let mut ctl = Ctl::new(policy, vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    assert!(matches!(ctl.tick(at(1)).action, Action::SetCanaryScale(_)));
    assert_eq!(ctl.tick(at(2)).action, Action::SetWeight(5));
    assert_eq!(ctl.tick(at(3)).action, Action::SetWeight(0));
    assert_eq!(ctl.tick(at(4)).action, Action::SetWeight(20));
}

#[test]
fn an_advisory_judge_without_data_does_not_hold_the_raise() {
    let dry: ArgoConfig = serde_json::from_value(json!({
        "metric": "http_5xx",
        "quantity": "errorRate",
        "successCondition": {"max": 0.01},
        "interval": "1m",
        "dryRun": true,
    }))
    .unwrap();
    let judges: Vec<Box<dyn Judge>> =
        vec![Box::new(judge()), Box::new(ArgoJudge::new(dry).unwrap())];
    let mut ctl = CanaryController::new(outage_policy(), judges).unwrap();
    ctl.tick(at(0));
    let w = second(10);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    ctl.feed(&b, &c, w.end()).unwrap();
    assert_eq!(ctl.tick(at(400)).action, Action::SetWeight(20));
}

#[test]
fn a_state_saved_without_the_counter_holds_until_data_comes() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    feed_data(&mut ctl, 10);
    let mut saved = serde_json::to_value(ctl.state()).unwrap();
    saved.as_object_mut().unwrap().remove("weightSamples");
    let state: ControllerState = serde_json::from_value(saved).unwrap();
    let (policy, judges, _) = ctl.into_parts();
    let mut ctl = Ctl::from_parts(policy, judges, state).unwrap();
    let d = ctl.tick(at(400));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("no data at 10%"), "{}", d.reason);
    feed_data(&mut ctl, 401);
    assert_eq!(ctl.tick(at(402)).action, Action::SetWeight(20));
}

#[test]
fn a_saved_state_with_more_samples_at_the_weight_than_in_the_rollout_is_refused() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    feed_data(&mut ctl, 10);
    let mut saved = serde_json::to_value(ctl.state()).unwrap();
    saved["weightSamples"] = serde_json::json!([2]);
    let state: ControllerState = serde_json::from_value(saved).unwrap();
    let (policy, judges, _) = ctl.into_parts();
    let err = Ctl::from_parts(policy, judges, state)
        .unwrap_err()
        .to_string();
    assert!(err.contains("weightSamples[0]"), "{err}");
    assert!(err.contains("totalSamples[0]"), "{err}");
}

/// The promotion after the last `setWeight` is the last raise, to 100%: during a metrics outage
/// that began as the last weight was set, it waits for data at that weight as a raise does,
/// rather than promote a weight no judge has seen.
#[test]
fn a_metrics_outage_right_after_the_last_raise_holds_the_promotion() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60), Step::SetWeight(50)]);
    let mut ctl = Ctl::new(policy, vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    for s in 0..60 {
        feed_data(&mut ctl, s);
    }
    assert_eq!(ctl.tick(at(60)).action, Action::SetWeight(50));
    for s in 60..120 {
        feed_no_data(&mut ctl, s);
    }
    let d = ctl.tick(at(120));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("not promoting"), "{}", d.reason);
    assert!(d.reason.contains("no data at 50%"), "{}", d.reason);
    feed_data(&mut ctl, 120);
    assert_eq!(ctl.tick(at(121)).action, Action::Promote);
}

#[test]
fn an_outage_late_in_a_step_holds_the_raise_and_the_promotion_until_data_comes() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    // Data early in the pause, then the source goes dark for the rest of it.
    feed_data(&mut ctl, 10);
    for s in 11..400 {
        feed_no_data(&mut ctl, s);
    }
    let d = ctl.tick(at(400));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(
        d.reason.contains("latest window of `error_rate`") && d.reason.contains("had no data"),
        "{}",
        d.reason
    );
    feed_data(&mut ctl, 400);
    assert_eq!(ctl.tick(at(401)).action, Action::SetWeight(20));
    feed_data(&mut ctl, 401);
    feed_data(&mut ctl, 402);
    for s in 403..800 {
        feed_no_data(&mut ctl, s);
    }
    assert_eq!(ctl.tick(at(801)).action, Action::Hold);
    feed_data(&mut ctl, 801);
    assert_eq!(ctl.tick(at(802)).action, Action::SetWeight(40));
    // The last step: the promotion waits on the same rule.
    feed_data(&mut ctl, 802);
    feed_no_data(&mut ctl, 803);
    let d = ctl.tick(at(804));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.starts_with("not promoting"), "{}", d.reason);
    feed_data(&mut ctl, 804);
    assert_eq!(ctl.tick(at(805)).action, Action::Promote);
}

#[test]
fn a_window_fed_twice_or_overlapping_one_fed_is_refused_and_changes_nothing() {
    let mut ctl = Ctl::new(outage_policy(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    feed_data(&mut ctl, 10);
    let before = ctl.state().clone();
    let w = second(10);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    let e = ctl.feed(&b, &c, w.end()).unwrap_err().to_string();
    assert!(
        e.contains("observation.window") && e.contains("fed once"),
        "{e}"
    );
    assert_eq!(ctl.state(), &before);
    // A window that overlaps the one fed: the last half of second 10 and the first of 11.
    let overlapping = serin_signals::Window::new(
        Timestamp::from_millis(10_500),
        Timestamp::from_millis(11_500),
    )
    .unwrap();
    let b = counts(Metric::ErrorRate, Track::Stable, overlapping, 900, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, overlapping, 100, 0);
    assert!(ctl.feed(&b, &c, overlapping.end()).is_err());
    assert_eq!(ctl.state(), &before);
    // The window after it is taken.
    feed_data(&mut ctl, 11);
}
