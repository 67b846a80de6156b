//! A canary config written for Kayenta's `NetflixACAJudge` reads the same here: its
//! `analysisConfigurations.canary` block, key for key, and settings that could never take
//! effect are refused with the field, the value and the reason.

use serin_canary::kayenta::{
    CanaryConfig, KayentaConfig, KayentaJudge, Label, MetricConfig, MetricSetPair, ScoreVerdict,
    classify,
};

fn metric_config(json: &str) -> MetricConfig {
    serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
}

fn judge_error(metric_config: &str) -> String {
    let json = format!(
        r#"{{"metric":"latency","quantity":"latencyMean","metricConfig":{metric_config}}}"#
    );
    let cfg: KayentaConfig = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    KayentaJudge::new(cfg).unwrap_err().to_string()
}

#[test]
fn kayentas_nested_outlier_block_is_read_and_applied() {
    // Kayenta reads `canary.outliers.strategy` and `canary.outliers.outlierFactor`.
    // (With fewer than 99 points the 99th percentile is the maximum, which Kayenta's
    // reduced-sensitivity fence always keeps.)
    let cfg = metric_config(r#"{"outliers":{"strategy":"remove","outlierFactor":3.0}}"#);
    let mut baseline: Vec<Option<f64>> = (0..200).map(|i| Some(100.0 + f64::from(i % 7))).collect();
    let canary = baseline.clone();
    baseline.push(Some(1.0e6));
    assert_eq!(classify(&cfg, &baseline, &canary).points, (200, 200));
    // The factor alone keeps the default strategy, which keeps every point.
    let cfg = metric_config(r#"{"outliers":{"outlierFactor":3.0}}"#);
    assert_eq!(classify(&cfg, &baseline, &canary).points, (201, 200));
    // Unknown keys inside the block are refused, as everywhere else.
    assert!(serde_json::from_str::<MetricConfig>(r#"{"outliers":{"factor":3.0}}"#).is_err());
}

#[test]
fn a_bad_outlier_factor_is_named_by_its_kayenta_path() {
    let msg = judge_error(r#"{"outliers":{"strategy":"remove","outlierFactor":0}}"#);
    assert!(
        msg.contains("kayentaConfig.metricConfig.outliers.outlierFactor") && msg.contains('0'),
        "{msg}"
    );
}

/// Kayenta builds its IQR filter, whose factor must be above zero, only when the strategy is
/// `remove`: with outliers kept, a factor left in the block is never read, so it loads.
#[test]
fn an_outlier_factor_is_checked_only_when_outliers_are_removed() {
    let text = r#"{"name":"c","metrics":[{"name":"m","groups":["g"],
        "analysisConfigurations":{"canary":{"outliers":{"strategy":"none","outlierFactor":0}}}}]}"#;
    let loaded = CanaryConfig::from_json(text);
    assert!(loaded.is_ok(), "{loaded:?}");
    let kept = r#"{"outliers":{"outlierFactor":-1}}"#;
    assert!(
        KayentaJudge::new(
            serde_json::from_str(&format!(
                r#"{{"metric":"latency","quantity":"latencyMean","metricConfig":{kept}}}"#
            ))
            .unwrap()
        )
        .is_ok()
    );
    // Removing outliers, the same factor is refused.
    let msg = CanaryConfig::from_json(&text.replace("none", "remove"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("metrics[0].analysisConfigurations.canary.outliers.outlierFactor"),
        "{msg}"
    );
}

/// Kayenta's `configVersion` is a string, into which Jackson reads a number too, and
/// Kayenta's own example config writes `"configVersion": 1.0`.
#[test]
fn a_numeric_config_version_loads_as_its_json_text() {
    let text = |version: &str| {
        format!(
            r#"{{"name":"MySampleAtlasCanaryConfig","configVersion":{version},
            "metrics":[{{"name":"cpu","groups":["system"],"analysisConfigurations":{{"canary":{{}}}}}}],
            "classifier":{{"groupWeights":{{"system":100.0}}}}}}"#
        )
    };
    let version = |v: &str| CanaryConfig::from_json(&text(v)).map(|c| c.config_version);
    assert_eq!(version("1.0").unwrap().as_deref(), Some("1.0"));
    assert_eq!(version("2").unwrap().as_deref(), Some("2"));
    assert_eq!(version(r#""1""#).unwrap().as_deref(), Some("1"));
    assert_eq!(version("null").unwrap(), None);
    // Written back, it is a string.
    let config = CanaryConfig::from_json(&text("1.0")).unwrap();
    assert_eq!(
        serde_json::to_value(&config).unwrap()["configVersion"],
        "1.0"
    );
    // Anything else is still refused, naming the field.
    let msg = version("[1]").unwrap_err().to_string();
    assert!(msg.contains("configVersion"), "{msg}");
}

#[test]
fn cles_limits_outside_zero_to_one_are_refused() {
    // A common-language effect size is a probability: a limit above 1 would silently turn
    // every `High` into a `Pass` (a meanRatio-style 1.2 left in after switching to cles).
    let msg = judge_error(r#"{"effectSize":{"measure":"cles","allowedIncrease":1.2}}"#);
    assert!(
        msg.contains("kayentaConfig.metricConfig.effectSize.allowedIncrease")
            && msg.contains("1.2")
            && msg.contains("[0, 1]"),
        "{msg}"
    );
    let msg = judge_error(r#"{"effectSize":{"measure":"cles","criticalDecrease":-0.1}}"#);
    assert!(
        msg.contains("effectSize.criticalDecrease") && msg.contains("-0.1"),
        "{msg}"
    );
    // The same numbers are fine as mean ratios, and limits inside [0, 1] for cles.
    assert!(
        serde_json::from_str::<KayentaConfig>(
            r#"{"metric":"latency","quantity":"latencyMean",
                "metricConfig":{"effectSize":{"allowedIncrease":1.2}}}"#
        )
        .map(|c| KayentaJudge::new(c).is_ok())
        .unwrap()
    );
    assert!(
        serde_json::from_str::<KayentaConfig>(
            r#"{"metric":"latency","quantity":"latencyMean",
                "metricConfig":{"effectSize":{"measure":"cles","allowedIncrease":0.8}}}"#
        )
        .map(|c| KayentaJudge::new(c).is_ok())
        .unwrap()
    );
}

#[test]
fn a_whole_canary_config_applies_each_metrics_own_block() {
    // The same points under two metrics whose blocks differ only in `nanStrategy`: missing
    // canary points (three in four) dropped leave a sample of the same series (Pass); replaced
    // by 0 they pull the canary down (Low), and the group holding both scores 50.
    let config = CanaryConfig::from_json(
        r#"{
          "name": "nan-strategies",
          "metrics": [
            { "name": "dropped", "groups": ["g"],
              "analysisConfigurations": { "canary": { "nanStrategy": "remove" } } },
            { "name": "zeroed", "groups": ["g"],
              "analysisConfigurations": { "canary": { "nanStrategy": "replace" } } }
          ]
        }"#,
    )
    .unwrap();
    let baseline: Vec<Option<f64>> = (0..40).map(|i| Some(100.0 + f64::from(i % 7))).collect();
    let canary: Vec<Option<f64>> = baseline
        .iter()
        .enumerate()
        .map(|(i, v)| if i % 4 == 0 { *v } else { None })
        .collect();
    let pair = |name: &str| MetricSetPair::new(name, baseline.clone(), canary.clone());
    let j = config
        .judge(&[pair("dropped"), pair("zeroed")], None)
        .unwrap();
    let labels: Vec<Label> = j.results.iter().map(|r| r.classification.label).collect();
    assert_eq!(labels, [Label::Pass, Label::Low]);
    for (result, strategy) in j.results.iter().zip(["remove", "replace"]) {
        let alone = metric_config(&format!(r#"{{"nanStrategy":"{strategy}"}}"#));
        assert_eq!(result.classification, classify(&alone, &baseline, &canary));
    }
    assert_eq!(
        (j.score.group_scores["g"], j.score.verdict),
        (50.0, ScoreVerdict::Marginal)
    );
}
