//! How long an Argo metric runs, read as Argo reads an `AnalysisTemplate` (`EffectiveCount`):
//! `count` measurements when given, until stopped with an `interval` alone, and exactly one
//! with neither.

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, ArgoPhase};
use serin_signals::Timestamp;

/// The canary's error rate, successful at most 1%, plus `extra` fields.
fn config(extra: Value) -> Result<ArgoConfig, serde_json::Error> {
    let mut c = json!({
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": {"max": 0.01},
    });
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    serde_json::from_value(c)
}

fn judge(extra: Value) -> ArgoJudge {
    ArgoJudge::new(config(extra).unwrap()).unwrap()
}

fn verdict(j: &ArgoJudge) -> Verdict {
    j.judgement(Timestamp::EPOCH).verdict
}

#[test]
fn neither_count_nor_interval_takes_exactly_one_measurement() {
    let mut j = judge(json!({}));
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Successful);
    assert!(j.concluded());
    assert_eq!(verdict(&j), Verdict::Pass);
    // The run has ended: a later failing value is not measured.
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Successful);

    // Its one measurement failing fails the run.
    let mut j = judge(json!({}));
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Failed);

    // An errored measurement is retried, not counted: the run waits for a value.
    let mut j = judge(json!({}));
    j.measure(None);
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Successful);
}

#[test]
fn an_interval_alone_runs_until_stopped_and_a_count_ends_it() {
    let mut j = judge(json!({"interval": "5m", "failureLimit": 3}));
    for _ in 0..50 {
        j.measure(Some(0.0));
    }
    assert_eq!(j.phase(), ArgoPhase::Running);

    let mut j = judge(json!({"interval": "1m", "count": 3}));
    j.measure(Some(0.0));
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Successful);

    // Integer milliseconds, as for the crate's other durations.
    let c = config(json!({"interval": 90_000})).unwrap();
    assert_eq!(c.interval, Some(std::time::Duration::from_secs(90)));
    assert_eq!(c.count, None);
}

#[test]
fn argo_reads_count_zero_as_no_count() {
    // `EffectiveCount`: a count of 0 is no count.
    assert_eq!(config(json!({"count": 0})).unwrap().count, Some(1));
    assert_eq!(
        config(json!({"count": 0, "interval": "1m"})).unwrap().count,
        None
    );
}

#[test]
fn configs_and_judges_written_without_an_interval_read_back_as_written() {
    // A run until stopped was written `count: null`, before `interval` existed: it still is one.
    let c = config(json!({"count": null})).unwrap();
    assert_eq!((c.count, c.interval), (None, None));
    let mut j = ArgoJudge::new(c).unwrap();
    j.measure(Some(0.0));
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Running);
    let back: ArgoJudge = serde_json::to_value(&j)
        .and_then(serde_json::from_value)
        .unwrap();
    assert_eq!(back, j);

    // One measurement by default is written as a count of 1, and stays one.
    let mut j = judge(json!({}));
    j.measure(Some(0.0));
    let written = serde_json::to_value(&j).unwrap();
    assert_eq!(written["config"]["count"], json!(1));
    let back: ArgoJudge = serde_json::from_value(written).unwrap();
    assert_eq!(back, j);
    assert!(back.concluded());

    // An interval is written as a human duration and read back.
    let c = config(json!({"interval": "1m30s"})).unwrap();
    let written = serde_json::to_value(&c).unwrap();
    assert_eq!(written["interval"], json!("1m 30s"));
    assert_eq!(serde_json::from_value::<ArgoConfig>(written).unwrap(), c);
}

#[test]
fn a_limit_one_default_measurement_cannot_reach_is_refused_with_the_way_out() {
    // Refused when the config is read, and by the judge for one built in code.
    let read = config(json!({"failureLimit": 3})).unwrap_err().to_string();
    let built = ArgoConfig {
        failure_limit: 3,
        count: Some(1),
        ..config(json!({})).unwrap()
    };
    let judged = ArgoJudge::new(built).unwrap_err().to_string();
    for msg in [read, judged] {
        assert!(
            msg.contains("argoConfig.count") && msg.contains("`1`") && msg.contains("failureLimit"),
            "{msg}"
        );
        assert!(msg.contains("interval"), "{msg}");
    }
    // With an interval it runs until stopped, and any limit can be reached.
    ArgoJudge::new(config(json!({"failureLimit": 3, "interval": "1m"})).unwrap()).unwrap();
}

#[test]
fn a_bad_interval_or_an_unknown_field_is_refused() {
    let msg = config(json!({"interval": "5 fortnights"}))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("5 fortnights"), "{msg}");
    assert!(config(json!({"intervall": "1m"})).is_err());
    assert!(config(json!({"interval": -5})).is_err());
}
