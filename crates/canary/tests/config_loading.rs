//! Configs are refused when they are read, naming the field, the value and why, when what
//! they ask for could never work: a gate on a metric that never gives what it reads would
//! hold a healthy canary until its deadline rolled it back.

use serin_canary::controller::{CanaryPolicy, Step};
use serin_canary::threshold::{ArgoConfig, FlaggerAnalysisConfig, FlaggerConfig, FlaggerMetric};

/// `{"steps":[{"setWeight":5},{"setWeight":50}], …}` with `rest` after the steps.
fn policy(rest: &str) -> Result<CanaryPolicy, String> {
    let json = format!(r#"{{"steps":[{{"setWeight":5}},{{"setWeight":50}}]{rest}}}"#);
    serde_json::from_str::<CanaryPolicy>(&json).map_err(|e| e.to_string())
}

#[test]
fn a_gate_on_a_metric_that_never_gives_what_it_reads_is_refused_on_load() {
    for (rest, path, metric, why) in [
        (
            r#","promotion":{"metric":"latency","maxErrorRate":0.05}"#,
            "canaryPolicy.promotion.metric",
            "latency",
            "not request and error counts",
        ),
        (
            r#","promotion":{"metric":"memory","maxErrorRate":0.05}"#,
            "canaryPolicy.promotion.metric",
            "memory",
            "not request and error counts",
        ),
        (
            r#","pacing":{"metric":"cpu"}"#,
            "canaryPolicy.pacing.metric",
            "cpu",
            "not request and error counts",
        ),
        (
            r#","pacing":{"metric":"latency"}"#,
            "canaryPolicy.pacing.metric",
            "latency",
            "not request and error counts",
        ),
        (
            r#","pacing":{"latency":{"metric":"error_rate"}}"#,
            "canaryPolicy.pacing.latency.metric",
            "error_rate",
            "not latency sketches",
        ),
        (
            r#","pacing":{"detectableRatio":null,"latency":{"metric":"throughput"}}"#,
            "canaryPolicy.pacing.latency.metric",
            "throughput",
            "not latency sketches",
        ),
        (
            r#","pacing":{"latency":{"metric":"cpu"}}"#,
            "canaryPolicy.pacing.latency.metric",
            "cpu",
            "not latency sketches",
        ),
    ] {
        let msg = policy(rest).expect_err(rest);
        assert!(
            msg.contains(&format!("{path} `{metric}`")) && msg.contains(why),
            "{rest}: {msg}"
        );
    }
}

#[test]
fn a_gate_on_a_metric_of_its_kind_or_a_custom_one_loads() {
    for rest in [
        r#","promotion":{"maxErrorRate":0.05}"#,
        r#","promotion":{"metric":"throughput","maxErrorRate":0.05}"#,
        r#","promotion":{"metric":"grpc_errors","maxErrorRate":0.05}"#,
        r#","pacing":{"metric":"grpc_errors","latency":{"metric":"p99_ms"}}"#,
        r#","pacing":{"latency":{}}"#,
        // Without the errors' gate, its metric is not read.
        r#","pacing":{"metric":"latency","detectableRatio":null,"latency":{}}"#,
    ] {
        let loaded = policy(rest);
        assert!(loaded.is_ok(), "{rest}: {loaded:?}");
    }
}

/// A Flagger check that names its metric but not its quantity is refused naming what is
/// missing, the quantity, not the metric that is there.
#[test]
fn a_flagger_check_without_its_quantity_names_the_quantity() {
    let read = |json: &str| {
        serde_json::from_str::<FlaggerMetric>(json)
            .expect_err(json)
            .to_string()
    };
    let msg = read(r#"{"name":"error-ratio","metric":"error_rate","thresholdRange":{"max":0.01}}"#);
    assert!(
        msg.contains("flaggerMetric.quantity `(missing)`") && msg.contains("`error_rate`"),
        "{msg}"
    );
    // Without its metric, the metric is what is missing, with or without the quantity.
    for json in [
        r#"{"name":"error-ratio","thresholdRange":{"max":0.01}}"#,
        r#"{"name":"error-ratio","quantity":"errorRate","thresholdRange":{"max":0.01}}"#,
    ] {
        let msg = read(json);
        assert!(msg.contains("flaggerMetric.metric `error-ratio`"), "{msg}");
    }
}

/// A weight past what a byte holds is refused as one just past 100% is, naming the field, the
/// value and the range, not in the integer reader's words.
#[test]
fn a_weight_past_255_is_refused_like_101() {
    let refused = |second: &str| {
        let json = format!(r#"{{"steps":[{{"setWeight":5}},{second}]}}"#);
        serde_json::from_str::<CanaryPolicy>(&json)
            .expect_err(&json)
            .to_string()
    };
    let reason = "must be a percentage in 0..=100";
    for (second, field) in [
        (
            r#"{"setWeight":101}"#,
            "canaryPolicy.steps[1].setWeight `101`",
        ),
        (r#"{"setWeight":300}"#, "setWeight `300`"),
        (r#"{"setWeight":-5}"#, "setWeight `-5`"),
        (
            r#"{"setCanaryScale":{"weight":101}}"#,
            "canaryPolicy.steps[1].setCanaryScale.weight `101`",
        ),
        (
            r#"{"setCanaryScale":{"weight":300}}"#,
            "setCanaryScale.weight `300`",
        ),
    ] {
        let msg = refused(second);
        assert!(
            msg.contains(&format!("{field}: {reason}")),
            "{second}: {msg}"
        );
    }
    // In YAML, in both forms of a step.
    for yaml in [
        "steps:\n- setWeight: 5\n- setWeight: 300\n",
        "steps:\n- setWeight: 5\n- !setWeight 300\n",
    ] {
        let msg = serde_yaml_ng::from_str::<CanaryPolicy>(yaml)
            .expect_err(yaml)
            .to_string();
        assert!(
            msg.contains(&format!("setWeight `300`: {reason}")),
            "{yaml}: {msg}"
        );
    }
    // Weights in range read as before, and a policy reads back as written.
    let json = r#"{"steps":[{"setWeight":5},{"setCanaryScale":{"weight":100}},{"setWeight":100}]}"#;
    let policy: CanaryPolicy = serde_json::from_str(json).unwrap();
    assert_eq!(policy.steps[2], Step::SetWeight(100));
    let back = serde_json::to_string(&policy).unwrap();
    assert_eq!(serde_json::from_str::<CanaryPolicy>(&back).unwrap(), policy);
}

/// Argo's and Flagger's configs are checked when read, as their judges check them, naming
/// the field: one that loaded and failed only once a judge was built from it would pass every
/// check of the file it came in.
#[test]
fn threshold_configs_are_checked_when_read() {
    let argo = |json: &str| serde_json::from_str::<ArgoConfig>(json).map_err(|e| e.to_string());
    for (json, field) in [
        (
            r#"{"metric":"error_rate","quantity":"errorRate","failureLimit":-5}"#,
            "argoConfig.failureLimit `-5`",
        ),
        (
            r#"{"metric":"error_rate","quantity":"errorRate","successCondition":{}}"#,
            "argoConfig.successCondition `{}`",
        ),
        (
            r#"{"metric":"error_rate","quantity":"errorRate","failureCondition":{"min":2,"max":1}}"#,
            "argoConfig.failureCondition.min `2`",
        ),
    ] {
        let msg = argo(json).expect_err(json);
        assert!(msg.contains(field), "{json}: {msg}");
    }
    let flagger = |json: &str| {
        serde_json::from_str::<FlaggerConfig>(json)
            .expect_err(json)
            .to_string()
    };
    let msg = flagger(
        r#"{"metric":"error_rate","quantity":"errorRate","thresholdRange":{"min":2,"max":1}}"#,
    );
    assert!(
        msg.contains("flaggerConfig.thresholdRange.min `2`") && msg.contains("exceeds"),
        "{msg}"
    );
    let msg = flagger(r#"{"metric":"error_rate","quantity":"errorRate","thresholdRange":{}}"#);
    assert!(msg.contains("flaggerConfig.thresholdRange `{}`"), "{msg}");
    let analysis = |json: &str| {
        serde_json::from_str::<FlaggerAnalysisConfig>(json)
            .expect_err(json)
            .to_string()
    };
    let msg = analysis(r#"{"metrics":[]}"#);
    assert!(
        msg.contains("flaggerAnalysis.metrics `[]`") && msg.contains("at least one metric"),
        "{msg}"
    );
    let msg = analysis(
        r#"{"metrics":[{"name":"request-success-rate","thresholdRange":{"min":99}},
            {"name":"request-duration","thresholdRange":{"min":500,"max":100}}]}"#,
    );
    assert!(
        msg.contains("flaggerAnalysis.metrics[1].thresholdRange.min `500`"),
        "{msg}"
    );
    // Configs that their judges take load, and read back as written.
    let fine = argo(r#"{"metric":"error_rate","quantity":"errorRate","failureLimit":-1,"consecutiveSuccessLimit":3,"count":5}"#)
        .unwrap();
    let back = serde_json::to_string(&fine).unwrap();
    assert_eq!(argo(&back).unwrap(), fine);
    let fine: FlaggerConfig = serde_json::from_str(
        r#"{"metric":"latency","quantity":{"latencyQuantile":0.99},"thresholdRange":{"max":500}}"#,
    )
    .unwrap();
    let back = serde_json::to_string(&fine).unwrap();
    assert_eq!(serde_json::from_str::<FlaggerConfig>(&back).unwrap(), fine);
}
