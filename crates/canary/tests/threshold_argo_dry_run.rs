//! Argo's dry-run metrics (`dryRun: [{metricName: …}]`): measured, assessed and answered as
//! usual, and advisory, so that the controller never acts on them (`controller_dry_run.rs`).

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, ArgoPhase};
use serin_signals::Timestamp;

/// The canary's error rate, successful at most 1% and failed from 5%, plus `extra` fields.
fn judge(extra: Value) -> ArgoJudge {
    let mut c = json!({
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": {"max": 0.01},
        "failureCondition": {"min": 0.05},
        "interval": "1m",
        "dryRun": true,
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    ArgoJudge::new(serde_json::from_value::<ArgoConfig>(c).unwrap()).unwrap()
}

fn judged(j: &ArgoJudge) -> (Verdict, String) {
    let jm = j.judgement(Timestamp::EPOCH);
    (jm.verdict, jm.evidence.summary)
}

#[test]
fn a_dry_run_metric_answers_what_its_run_says_and_is_advisory() {
    let mut j = judge(json!({}));
    assert!(j.advisory());
    j.measure(Some(0.5));
    // Assessed as Argo assesses it: the metric's own phase is Failed, and it has ended.
    assert_eq!(j.phase(), ArgoPhase::Failed);
    assert!(j.concluded());
    assert!(judged(&j).0.is_fail());

    let mut j = judge(json!({}));
    j.measure(Some(0.02));
    assert_eq!(j.phase(), ArgoPhase::Inconclusive);
    assert_eq!(judged(&j).0, Verdict::Inconclusive);

    let mut j = judge(json!({}));
    for _ in 0..5 {
        j.measure(None);
    }
    assert_eq!(j.phase(), ArgoPhase::Error);
    let (verdict, summary) = judged(&j);
    assert_eq!(verdict, Verdict::Inconclusive);
    assert!(summary.contains("Error"), "{summary}");
}

#[test]
fn a_running_dry_run_metric_is_judged_as_any_running_metric() {
    // Argo's run waits for a dry-run metric still measuring, as for any other.
    let mut j = judge(json!({"failureLimit": 2, "inconclusiveLimit": 2}));
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Running);
    assert_eq!(judged(&j).0, Verdict::Inconclusive);
    j.measure(Some(0.0));
    assert_eq!(judged(&j).0, Verdict::Pass);
}

#[test]
fn dry_run_is_off_by_default_and_kept_in_saved_state() {
    assert!(!judge(json!({"dryRun": false})).advisory());
    let c: ArgoConfig = serde_json::from_value(json!({
        "metric": "error_rate", "quantity": "errorRate"
    }))
    .unwrap();
    assert!(!c.dry_run);
    assert!(
        !serde_json::to_value(&c)
            .unwrap()
            .as_object()
            .unwrap()
            .contains_key("dryRun")
    );

    let mut j = judge(json!({}));
    j.measure(Some(0.5));
    let back: ArgoJudge = serde_json::to_value(&j)
        .and_then(serde_json::from_value)
        .unwrap();
    assert_eq!(back, j);
    assert!(back.advisory());
}
