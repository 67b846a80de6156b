//! Kayenta's score of several metrics (`WeightedSumScorer`, `ScoringHelper`): group weights,
//! groups without evidence and muted metrics.

use std::collections::BTreeMap;

use serin_canary::kayenta::{
    Classification, Label, MetricResult, ScoreConfig, ScoreVerdict, score,
};

fn result(name: &str, group: &str, label: Label) -> MetricResult {
    MetricResult {
        name: name.into(),
        groups: vec![group.into()],
        muted: false,
        classification: Classification {
            label,
            critical: false,
            interval: None,
            effect: f64::NAN,
            deviation: f64::NAN,
            points: (30, 30),
            reason: String::new(),
        },
    }
}

fn weights(w: &[(&str, f64)]) -> ScoreConfig {
    ScoreConfig {
        group_weights: w.iter().map(|(g, w)| ((*g).to_owned(), *w)).collect(),
        ..ScoreConfig::default()
    }
}

#[test]
fn unweighted_groups_share_only_what_every_configured_weight_leaves() {
    // Weights errors 50, latency 30; latency has no results this time. Kayenta gives the one
    // unweighted group (cpu) 100 − 80 = 20, not the 50 the present weights would leave, so
    // the best reachable score is 70: the missing group's share is lost, not handed on.
    let rs = vec![
        result("e", "errors", Label::Pass),
        result("c", "cpu", Label::Pass),
    ];
    let s = score(&rs, &weights(&[("errors", 50.0), ("latency", 30.0)])).unwrap();
    assert_eq!((s.score, s.verdict), (70.0, ScoreVerdict::Marginal));
    assert_eq!(s.group_scores.get("latency"), None);

    // With every configured group present the remainder is as before.
    let rs = vec![
        result("e", "errors", Label::High),
        result("l", "latency", Label::Pass),
        result("c", "cpu", Label::Pass),
    ];
    let s = score(&rs, &weights(&[("errors", 50.0), ("latency", 30.0)])).unwrap();
    assert_eq!(s.score, 50.0);
}

#[test]
fn a_group_without_evidence_reports_zero_but_counts_as_full() {
    // The cpu group's only metric errored: Kayenta reports the group at 0 (it has no data),
    // while the summary counts it at 100, so the canary is neither helped nor hurt by it.
    let rs = vec![
        result("e", "errors", Label::Pass),
        result("c", "cpu", Label::Error),
    ];
    let s = score(&rs, &ScoreConfig::default()).unwrap();
    assert_eq!(s.group_scores.get("cpu"), Some(&0.0));
    assert_eq!(s.group_scores.get("errors"), Some(&100.0));
    assert_eq!((s.score, s.verdict), (100.0, ScoreVerdict::Pass));

    // Likewise a group of `Nodata` below the 50% rule.
    let rs = vec![
        result("a", "errors", Label::Pass),
        result("b", "errors", Label::High),
        result("c", "cpu", Label::Nodata),
    ];
    let s = score(&rs, &ScoreConfig::default()).unwrap();
    assert_eq!(s.group_scores.get("cpu"), Some(&0.0));
    assert_eq!(s.score, 75.0); // errors 50 × ½ + cpu 100 × ½
}

#[test]
fn muted_metrics_are_reported_but_never_scored() {
    let mut muted_critical = result("m", "errors", Label::High);
    muted_critical.muted = true;
    muted_critical.classification.critical = true;
    let mut muted_nodata = result("n", "latency", Label::Nodata);
    muted_nodata.muted = true;
    let rs = vec![
        result("e", "errors", Label::Pass),
        muted_critical,
        muted_nodata,
    ];
    let s = score(&rs, &ScoreConfig::default()).unwrap();
    // No forced zero from the muted critical failure, no `Nodata` share, no latency group.
    assert_eq!((s.score, s.forced_zero), (100.0, None));
    assert_eq!(
        s.group_scores,
        BTreeMap::from([("errors".to_owned(), 100.0)])
    );
}
