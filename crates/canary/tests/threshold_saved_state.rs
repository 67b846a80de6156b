//! A journalled Argo or Flagger judge reads back only with counters its measurements can have
//! left: an edited record that would end or pass the run on measurements never taken is
//! refused, naming the field.

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{ArgoConfig, ArgoJudge, FlaggerConfig, FlaggerJudge, Range};
use serin_signals::{Metric, Timestamp};

fn argo() -> ArgoJudge {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_limit = 3;
    c.inconclusive_limit = 3;
    c.consecutive_success_limit = 5;
    ArgoJudge::new(c).unwrap()
}

fn with(mut state: Value, edits: &[(&str, Value)]) -> Value {
    for (field, v) in edits {
        state[*field] = v.clone();
    }
    state
}

fn refused<T: serde::de::DeserializeOwned>(state: Value, field: &str) -> String {
    let msg = serde_json::from_value::<T>(state)
        .err()
        .unwrap_or_else(|| panic!("an impossible {field} was taken"))
        .to_string();
    assert!(msg.contains(field), "{msg}");
    msg
}

#[test]
fn an_argo_streak_no_measurement_made_is_refused() {
    let mut j = argo();
    // Two successes, a failure, one success, two errors.
    for v in [Some(0.0), Some(0.0), Some(0.5), Some(0.0), None, None] {
        j.measure(v);
    }
    let state = serde_json::to_value(&j).unwrap();
    let back: ArgoJudge = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(back, j);

    // Five successes in a row would end the run Successful: a pass on nothing measured.
    let forged = with(state.clone(), &[("consecutiveSuccesses", json!(5))]);
    let msg = refused::<ArgoJudge>(forged, "argoJudge.consecutiveSuccesses");
    assert!(msg.contains("`5`") && msg.contains("3 successful"), "{msg}");
    let fresh = serde_json::to_value(argo()).unwrap();
    let forged = with(fresh, &[("consecutiveSuccesses", json!(5))]);
    refused::<ArgoJudge>(forged, "argoJudge.consecutiveSuccesses");

    refused::<ArgoJudge>(
        with(state.clone(), &[("failed", json!(5))]),
        "argoJudge.failed",
    );
    refused::<ArgoJudge>(
        with(state.clone(), &[("consecutiveErrors", json!(3))]),
        "argoJudge.consecutiveErrors",
    );
    refused::<ArgoJudge>(with(state, &[("last", Value::Null)]), "argoJudge.last");
}

#[test]
fn a_flagger_check_never_made_is_refused() {
    let mut c = FlaggerConfig::new(Metric::ErrorRate, Quantity::ErrorRate, Range::at_most(0.01));
    c.threshold = 3;
    let mut j = FlaggerJudge::new(c).unwrap();
    let fresh = serde_json::to_value(&j).unwrap();
    // A passed last check without a check made would pass the canary.
    let forged = with(fresh, &[("last", json!(["passed", 0.0]))]);
    let msg = refused::<FlaggerJudge>(forged, "flaggerJudge.last");
    assert!(msg.contains("0 made"), "{msg}");

    j.check(Some(0.5));
    j.check(Some(0.0));
    let state = serde_json::to_value(&j).unwrap();
    let back: FlaggerJudge = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(back.judgement(Timestamp::EPOCH).verdict, Verdict::Pass);
    let msg = refused::<FlaggerJudge>(
        with(state, &[("failedChecks", json!(3))]),
        "flaggerJudge.failedChecks",
    );
    assert!(msg.contains("`3`") && msg.contains("2 checks"), "{msg}");
}

#[test]
fn flagger_failed_checks_past_the_threshold_are_refused() {
    let mut c = FlaggerConfig::new(Metric::ErrorRate, Quantity::ErrorRate, Range::at_most(0.01));
    c.threshold = 3;
    let mut j = FlaggerJudge::new(c).unwrap();
    for v in [0.5, 0.5, 0.0, 0.0, 0.0] {
        j.check(Some(v));
    }
    let state = serde_json::to_value(&j).unwrap();
    let back: FlaggerJudge = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(back, j);
    // The third failed check rolls back and no check is recorded after it, so no run leaves
    // four, though five checks were made.
    let msg = refused::<FlaggerJudge>(
        with(state.clone(), &[("failedChecks", json!(4))]),
        "flaggerJudge.failedChecks",
    );
    assert!(msg.contains("`4`") && msg.contains("threshold 3"), "{msg}");
    // A judge that reached it reads back, failed for good.
    j.check(Some(0.5));
    assert!(j.rolls_back());
    let back: FlaggerJudge = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
    assert_eq!(back, j);
}
