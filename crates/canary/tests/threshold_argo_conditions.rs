//! Argo conditions written as in an `AnalysisTemplate` (`result[0] >= 0.95`) are read and
//! evaluated as Argo evaluates them, kept as written in a saved judge, and refused with their
//! path where they ask for what Serin cannot honour.

use serde_json::json;
use serin_canary::judge::{Judge, Verdict};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, ArgoPhase};
use serin_signals::Timestamp;

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
        ("default(result, 0) < 0.01", "`default` at character 1"),
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

/// A metric pasted from a template with its provider's query or an initial delay is refused
/// with what to do instead: the query is the metrics source's, and measuring starts with the
/// first window.
#[test]
fn a_provider_or_an_initial_delay_is_refused_with_a_pointer() {
    for (field, value, says) in [
        (
            "provider",
            json!({"prometheus": {"query": "sum(rate(errors[5m]))"}}),
            "the provider's query is left out",
        ),
        (
            "initialDelay",
            json!("5m"),
            "measured from the first window",
        ),
    ] {
        let mut config = json!({
            "name": "errors",
            "metric": "error_rate",
            "quantity": "errorRate",
            "successCondition": "result[0] <= 0.01",
        });
        config[field] = value;
        let err = serde_json::from_value::<ArgoConfig>(config)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("argoConfig.{field}")) && err.contains(says),
            "{err}"
        );
    }
}
