//! Argo conditions written as in an `AnalysisTemplate` (`result[0] >= 0.95`) are read and
//! evaluated as Argo evaluates them, kept as written in a saved judge, and refused with their
//! path where they ask for what Serin cannot honour.

use std::time::Duration;

use serde_json::json;
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, ArgoPhase};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};

fn judge(config: serde_json::Value) -> ArgoJudge {
    let config: ArgoConfig = serde_json::from_value(config).expect("reads");
    ArgoJudge::new(config).expect("valid")
}

/// Argo's docs' success-rate metric (`successCondition: result[0] >= 0.95`, `failureLimit: 3`,
/// every 5 minutes), over a success rate in percent. The fourth failed measurement fails the
/// run.
#[test]
fn the_docs_success_rate_template_fails_at_its_fourth_failure() {
    let mut j = judge(json!({
        "name": "success-rate",
        "metric": "error_rate",
        "quantity": "successRatePercent",
        "successCondition": "result[0] >= 95",
        "failureLimit": 3,
        "interval": "5m",
    }));
    for v in [99.0, 95.0, 94.0, 90.0, 97.0, 50.0] {
        j.measure(Some(v));
        assert_eq!(j.phase(), ArgoPhase::Running, "after {v}");
    }
    j.measure(Some(94.9));
    assert_eq!(j.phase(), ArgoPhase::Failed);
    assert_eq!(j.config().name.as_deref(), Some("success-rate"));
    assert!(matches!(
        j.judgement(Timestamp::EPOCH).verdict,
        Verdict::Fail(_)
    ));
}

/// A strict comparison is kept: `result[0] > 0.05` does not hold at 0.05, where the inclusive
/// bounds `{min: 0.05}` do.
#[test]
fn strict_comparisons_differ_from_inclusive_bounds_at_the_edge() {
    let phase_at = |condition: serde_json::Value, v: f64| {
        judge(
            json!({"metric": "error_rate", "quantity": "errorRate", "failureCondition": condition}),
        )
        .evaluate(Some(v))
    };
    assert_eq!(
        phase_at(json!("result[0] > 0.05"), 0.05),
        ArgoPhase::Successful
    );
    assert_eq!(phase_at(json!({"min": 0.05}), 0.05), ArgoPhase::Failed);
    assert_eq!(
        phase_at(json!("result[0] > 0.05"), 0.0501),
        ArgoPhase::Failed
    );
}

/// With both conditions, a value matching neither is inconclusive, as in Argo; a guard for no
/// data does not make no data a success: it stays an `Error` measurement.
#[test]
fn both_conditions_and_no_data_guards() {
    let j = judge(json!({
        "metric": "latency",
        "quantity": {"latencyQuantile": 0.99},
        "successCondition": "isNaN(result) || result[0] <= 300",
        "failureCondition": "result[0] > 500",
    }));
    assert_eq!(j.evaluate(Some(250.0)), ArgoPhase::Successful);
    assert_eq!(j.evaluate(Some(400.0)), ArgoPhase::Inconclusive);
    assert_eq!(j.evaluate(Some(600.0)), ArgoPhase::Failed);
    assert_eq!(j.evaluate(Some(f64::NAN)), ArgoPhase::Error);
    assert_eq!(j.evaluate(None), ArgoPhase::Error);
}

/// A saved judge keeps its expressions as written, and reads back to the same judge, in JSON
/// and in YAML.
#[test]
fn a_saved_judge_keeps_its_expressions_as_written() {
    let mut j = judge(json!({
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": "result[0] <= 0.01",
        "failureCondition": {"min": 0.05},
        "count": 5,
    }));
    j.measure(Some(0.001));
    j.measure(Some(0.02));
    let saved = serde_json::to_value(&j).unwrap();
    assert_eq!(
        saved["config"]["successCondition"],
        json!("result[0] <= 0.01")
    );
    let back: ArgoJudge = serde_json::from_value(saved).expect("reads back");
    assert_eq!(back, j);
    let yaml = serde_yaml_ng::to_string(&j).unwrap();
    assert!(
        yaml.contains("successCondition: result[0] <= 0.01"),
        "{yaml}"
    );
    let back: ArgoJudge = serde_yaml_ng::from_str(&yaml).expect("reads back");
    assert_eq!(back, j);
}

/// What cannot be honoured is refused when read, naming the field, the expression and where
/// in it the trouble is.
#[test]
fn unreadable_conditions_are_refused_with_their_path() {
    for (condition, names) in [
        ("asInt(result) < 0.01", "`asInt` at character 1"),
        ("result[1] < 0.01", "`1` at character 8"),
        ("result[0] <", "ends before it is complete"),
    ] {
        let text = json!({
            "metric": "error_rate",
            "quantity": "errorRate",
            "successCondition": condition,
        })
        .to_string();
        let de = &mut serde_json::Deserializer::from_str(&text);
        let err = serde_path_to_error::deserialize::<_, ArgoConfig>(de).unwrap_err();
        assert_eq!(err.path().to_string(), "successCondition", "{condition}");
        let msg = err.to_string();
        assert!(msg.contains(condition) && msg.contains(names), "{msg}");
    }
}

/// A metric pasted from a template with its provider's query is refused with what to do
/// instead: the query is the metrics source's.
#[test]
fn a_provider_is_refused_with_a_pointer() {
    let config = json!({
        "name": "errors",
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": "result[0] <= 0.01",
        "provider": {"prometheus": {"query": "sum(rate(errors[5m]))"}},
    });
    let err = serde_json::from_value::<ArgoConfig>(config)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("argoConfig.provider") && err.contains("the provider's query is left out"),
        "{err}"
    );
}

fn errors_at(second: u64, errors: u64) -> [Observation; 2] {
    let window = Window::ending_at(
        Timestamp::from_millis(second * 1_000),
        Duration::from_secs(10),
    );
    let counts = |e| Measurement::Counts(Counts::new(1_000, e).unwrap());
    [
        Observation::new(Metric::ErrorRate, Track::Stable, window, counts(0)),
        Observation::new(Metric::ErrorRate, Track::Canary, window, counts(errors)),
    ]
}

/// `initialDelay` holds the first measurement until the delay from the run's start (its
/// first window's start) is over: windows that end earlier are not measured, whatever they
/// hold. A judge saved while it waits reads back waiting, and one reset waits again.
#[test]
fn an_initial_delay_skips_the_windows_that_end_before_it() {
    let mut j = judge(json!({
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": "result[0] <= 0.01",
        "count": 1,
        "initialDelay": "30s",
    }));
    // One measurement, taken once the delay is over. The run starts at 0 s (the first window
    // is [0 s, 10 s)); the delay ends at 30 s.
    for second in [10, 20] {
        let [b, c] = errors_at(second, 500);
        let judgement = j
            .observe(&Sample::new(&b, &c, None, c.window.end()).unwrap())
            .unwrap();
        assert_eq!(judgement.verdict, Verdict::Inconclusive);
        assert!(
            judgement.evidence.summary.contains("initialDelay 30s"),
            "{}",
            judgement.evidence.summary
        );
    }
    assert_eq!(j.phase(), ArgoPhase::Running);
    let saved: ArgoJudge = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
    assert_eq!(saved, j);
    let mut reset = j.clone();
    // The window ending at 30 s is the first one measured: it fails the run.
    let [b, c] = errors_at(30, 500);
    let judgement = j
        .observe(&Sample::new(&b, &c, None, c.window.end()).unwrap())
        .unwrap();
    assert!(matches!(judgement.verdict, Verdict::Fail(_)));
    assert_eq!(j.phase(), ArgoPhase::Failed);

    // Reset, the run starts again at the next window fed, and waits out the delay from there.
    reset.reset();
    let [b, c] = errors_at(40, 500);
    reset
        .observe(&Sample::new(&b, &c, None, c.window.end()).unwrap())
        .unwrap();
    assert_eq!(reset.phase(), ArgoPhase::Running);
    let [b, c] = errors_at(60, 0);
    reset
        .observe(&Sample::new(&b, &c, None, c.window.end()).unwrap())
        .unwrap();
    assert_eq!(
        reset.phase(),
        ArgoPhase::Successful,
        "the first measurement is the window ending at 60 s"
    );

    // A run that has measured is past its delay, even without its start (as `measure`, which
    // knows no time, leaves it): it reads back and measures the next window at once.
    let mut measured = judge(json!({
        "metric": "error_rate",
        "quantity": "errorRate",
        "successCondition": "result[0] <= 0.01",
        "count": 2,
        "initialDelay": "30s",
    }));
    assert_eq!(measured.measure(Some(0.001)), ArgoPhase::Successful);
    let saved = serde_json::to_value(&measured).unwrap();
    assert!(saved.get("started").is_none(), "{saved}");
    let mut saved: ArgoJudge = serde_json::from_value(saved).unwrap();
    assert_eq!(saved, measured);
    let [b, c] = errors_at(1_000, 0);
    saved
        .observe(&Sample::new(&b, &c, None, c.window.end()).unwrap())
        .unwrap();
    assert_eq!(saved.phase(), ArgoPhase::Successful, "two measurements");
}
