//! A journalled Argo or Flagger judge whose last measurement contradicts its own value, or the
//! streaks it left, is refused on load: read back, it would pass the canary on a measurement
//! that failed.

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, FlaggerAnalysis, FlaggerAnalysisConfig, FlaggerConfig, FlaggerJudge,
    FlaggerMetric, Range,
};
use serin_signals::{Metric, Timestamp};

fn refused<T: serde::de::DeserializeOwned>(state: Value, field: &str) -> String {
    let msg = serde_json::from_value::<T>(state)
        .err()
        .unwrap_or_else(|| panic!("a forged {field} was taken"))
        .to_string();
    assert!(msg.contains(field), "{msg}");
    msg
}

/// An Argo metric `result <= 0.01` that tolerates three failures, after one failed measurement.
fn argo_after_a_failure() -> Value {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_limit = 3;
    let mut j = ArgoJudge::new(c).unwrap();
    j.measure(Some(0.5));
    assert_eq!(j.judgement(Timestamp::EPOCH).verdict, Verdict::Inconclusive);
    serde_json::to_value(&j).unwrap()
}

#[test]
fn an_argo_last_measurement_its_value_contradicts_is_refused() {
    let state = argo_after_a_failure();
    let back: ArgoJudge = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(
        back.judgement(Timestamp::EPOCH).verdict,
        Verdict::Inconclusive
    );

    // 0.5 fails `result <= 0.01`; read as a success, it would pass the canary.
    let mut forged = state.clone();
    forged["last"] = json!(["successful", 0.5]);
    let msg = refused::<ArgoJudge>(forged, "argoJudge.last");
    assert!(msg.contains("Failed"), "{msg}");
    // A successful last measurement leaves a streak of at least one.
    let mut forged = state.clone();
    forged["last"] = json!(["successful", 0.0]);
    refused::<ArgoJudge>(forged, "argoJudge.last");
    // No data is an error, never a measured value.
    let mut forged = state;
    forged["last"] = json!(["failed", null]);
    refused::<ArgoJudge>(forged, "argoJudge.last");
}

#[test]
fn a_flagger_last_check_its_value_contradicts_is_refused() {
    let mut c = FlaggerConfig::new(Metric::ErrorRate, Quantity::ErrorRate, Range::at_most(0.01));
    c.threshold = 3;
    let mut j = FlaggerJudge::new(c).unwrap();
    j.check(Some(0.5));
    let state = serde_json::to_value(&j).unwrap();
    let back: FlaggerJudge = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(
        back.judgement(Timestamp::EPOCH).verdict,
        Verdict::Inconclusive
    );

    let mut forged = state.clone();
    forged["last"] = json!(["passed", 0.5]);
    let msg = refused::<FlaggerJudge>(forged, "flaggerJudge.last");
    assert!(msg.contains("Failed"), "{msg}");
    let mut forged = state;
    forged["last"] = json!(["passed", null]);
    refused::<FlaggerJudge>(forged, "flaggerJudge.last");
}

#[test]
fn a_flagger_analysis_check_its_value_contradicts_is_refused() {
    let mut c = FlaggerAnalysisConfig::new(vec![FlaggerMetric::new(
        Metric::ErrorRate,
        Quantity::ErrorRate,
        Range::at_most(0.01),
    )]);
    c.threshold = 3;
    let mut a = FlaggerAnalysis::new(c).unwrap();
    a.check(&[Some(0.5)]).unwrap();
    let state = serde_json::to_value(&a).unwrap();
    let back: FlaggerAnalysis = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(back, a);

    let mut forged = state;
    forged["checks"][0]["last"] = json!(["passed", 0.5]);
    refused::<FlaggerAnalysis>(forged, "flaggerAnalysis.checks[0].last");
}
