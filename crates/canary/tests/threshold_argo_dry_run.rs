//! Argo's dry-run metrics (`dryRun: [{metricName: …}]`): measured and assessed as usual, their
//! phase recorded (the run's `dryRunSummary`), but never failing or pausing the run.

use std::time::Duration;

use serde_json::{Value, json};
use serin_canary::controller::{Action, AnalysisStep, CanaryController, CanaryPolicy, Phase, Step};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, ArgoPhase};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};

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
fn a_failed_dry_run_metric_passes_and_says_it_would_have_failed() {
    let mut j = judge(json!({}));
    j.measure(Some(0.5));
    // Assessed as Argo assesses it: the metric's own phase is Failed, and it has ended.
    assert_eq!(j.phase(), ArgoPhase::Failed);
    assert!(j.concluded());
    let (verdict, summary) = judged(&j);
    assert_eq!(verdict, Verdict::Pass);
    assert!(
        summary.contains("dry run") && summary.contains("Failed"),
        "{summary}"
    );
}

#[test]
fn inconclusive_and_errored_dry_run_metrics_pass_too() {
    let mut j = judge(json!({}));
    j.measure(Some(0.02));
    assert_eq!(j.phase(), ArgoPhase::Inconclusive);
    let (verdict, summary) = judged(&j);
    assert_eq!(verdict, Verdict::Pass);
    assert!(summary.contains("Inconclusive"), "{summary}");

    let mut j = judge(json!({}));
    for _ in 0..5 {
        j.measure(None);
    }
    assert_eq!(j.phase(), ArgoPhase::Error);
    let (verdict, summary) = judged(&j);
    assert_eq!(verdict, Verdict::Pass);
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
    let mut j = judge(json!({"dryRun": false}));
    j.measure(Some(0.5));
    assert!(matches!(judged(&j).0, Verdict::Fail(_)));
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
    assert_eq!(judged(&back).0, Verdict::Pass);
}

fn sample_at(minute: u64, errors: u64) -> (Observation, Observation) {
    let w = Window::new(
        Timestamp::from_millis(minute * 60_000),
        Timestamp::from_millis((minute + 1) * 60_000),
    )
    .unwrap();
    let obs = |track, e| {
        Observation::new(
            Metric::ErrorRate,
            track,
            w,
            Measurement::Counts(Counts::new(1_000, e).unwrap()),
        )
    };
    (obs(Track::Stable, 1), obs(Track::Canary, errors))
}

#[test]
fn a_controller_neither_rolls_back_nor_holds_for_a_failed_dry_run_metric() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(600),
            min_samples: 1,
        }),
        Step::SetWeight(50),
    ]);
    let mut ctl = CanaryController::new(policy, vec![judge(json!({}))]).unwrap();
    ctl.tick(Timestamp::EPOCH);
    // A 10% canary error rate: Argo's metric fails, and the run goes on as if it succeeded.
    let (b, c) = sample_at(0, 100);
    let d = ctl.observe(&b, &c, Timestamp::from_millis(60_000)).unwrap();
    assert_ne!(ctl.state().phase(), Phase::RolledBack, "{d:?}");
    assert_eq!(d.action, Action::SetWeight(50), "{d:?}");
}
