//! Edge cases where the Kayenta judge follows its peers' code: a run whose judgement interval
//! does not divide its lifetime (Spinnaker's `RunCanaryIntervalsStage`), NaN points, which is
//! how Kayenta's own metric set pairs mark missing data (`Transforms.removeNaNs` and
//! `replaceNaNs`), and the rounding of a score (`WeightedSumScorer`).

use std::collections::BTreeMap;

use serin_canary::judge::Judge;
use serin_canary::kayenta::{
    Classification, KayentaConfig, KayentaJudge, Label, MetricConfig, MetricResult, NanStrategy,
    Quantity, RunConfig, RunStatus, ScoreConfig, apply_nan_strategy, classify, score,
};
use serin_signals::Metric;

use crate::kayenta_run::{feed, judge};

#[test]
fn a_run_ends_at_its_last_whole_interval() {
    // Spinnaker makes `lifetime / interval` judgements (whole intervals only): a 60-minute
    // lifetime judged every 25 minutes is judged at 25 and 50, and the one at 50 is final.
    let mut j = judge(RunConfig::new(60).every(25));
    feed(&mut j, 0, 50, 1.0);
    assert_eq!(j.run_state().judged_at, [25, 50]);
    assert_eq!(j.run_state().status, RunStatus::Passed);
    assert!(j.concluded());
    // What comes after the last interval is never judged: the run is over.
    feed(&mut j, 50, 60, 3.0);
    assert_eq!(j.points(), 50);
    assert_eq!(j.run_state().status, RunStatus::Passed);
}

#[test]
fn whole_intervals_are_counted_after_the_warm_up() {
    // Spinnaker waits out the warm-up, then runs the lifetime: a 10-point warm-up and a
    // 60-point lifetime (70 points in all) judged every 25 are judged at 35 and 60.
    let run = RunConfig {
        begin_after_points: 10,
        ..RunConfig::new(70).every(25)
    };
    let mut j = judge(run);
    feed(&mut j, 0, 70, 1.0);
    assert_eq!(j.run_state().judged_at, [35, 60]);
    assert_eq!(j.run_state().status, RunStatus::Passed);
    assert_eq!(j.points(), 60);
}

#[test]
fn an_interval_longer_than_the_lifetime_is_one_judgement_at_the_end() {
    // Spinnaker: an interval longer than the lifetime is the lifetime.
    let mut j = judge(RunConfig::new(20).every(45));
    feed(&mut j, 0, 20, 1.0);
    assert_eq!(j.run_state().judged_at, [20]);
    assert_eq!(j.run_state().status, RunStatus::Passed);
}

#[test]
fn a_last_whole_interval_shorter_than_min_points_is_a_config_error() {
    // 15 points judged every 8: the last whole interval ends after 8 points, fewer than the
    // 10 a judgement needs, so the run could never reach its final judgement.
    let c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)
        .with_run(RunConfig::new(15).every(8));
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(
        e.contains("kayentaConfig.run.intervalPoints `8`") && e.contains("minPoints (10)"),
        "{e}"
    );
}

fn with_nan(points: &[Option<f64>]) -> Vec<Option<f64>> {
    points.iter().map(|p| p.or(Some(f64::NAN))).collect()
}

#[test]
fn nan_points_are_missing_points() {
    let baseline: Vec<Option<f64>> = (0..40)
        .map(|i| (i % 5 != 0).then(|| 100.0 + f64::from(i % 9)))
        .collect();
    let canary: Vec<Option<f64>> = (0..40)
        .map(|i| (i % 4 != 0).then(|| 150.0 + f64::from(i % 9)))
        .collect();
    for nan_strategy in [NanStrategy::Remove, NanStrategy::Replace] {
        let cfg = MetricConfig {
            nan_strategy,
            ..MetricConfig::default()
        };
        let as_none = classify(&cfg, &baseline, &canary);
        let as_nan = classify(&cfg, &with_nan(&baseline), &with_nan(&canary));
        assert_eq!(as_nan.label, as_none.label, "{nan_strategy:?}: {as_nan:?}");
        assert_eq!(as_nan.points, as_none.points, "{nan_strategy:?}");
        assert_ne!(as_nan.label, Label::Error, "{nan_strategy:?}");
    }
    // An arm of NaN alone has no data.
    let nan_only = vec![Some(f64::NAN); 20];
    let c = classify(&MetricConfig::default(), &baseline, &nan_only);
    assert_eq!((c.label, c.points.1), (Label::Nodata, 0));
    assert_eq!(
        apply_nan_strategy(&[Some(1.0), Some(f64::NAN), None], NanStrategy::Replace),
        [1.0, 0.0, 0.0]
    );
    assert_eq!(
        apply_nan_strategy(&[Some(1.0), Some(f64::NAN), None], NanStrategy::Remove),
        [1.0]
    );
}

fn results(group: &str, passed: usize, failed: usize) -> Vec<MetricResult> {
    (0..passed + failed)
        .map(|i| MetricResult {
            name: format!("m{i}"),
            groups: vec![group.into()],
            muted: false,
            classification: Classification {
                label: if i < passed { Label::Pass } else { Label::High },
                critical: false,
                interval: None,
                effect: f64::NAN,
                deviation: f64::NAN,
                points: (30, 30),
                reason: String::new(),
            },
        })
        .collect()
}

#[test]
fn a_score_is_rounded_as_kayenta_computes_it() {
    // Kayenta's group score is `(pass / counted) * 100`, then weighted and rounded half up to
    // two decimals. 1 of 12 metrics passing in a group weighted 1.5 is
    // (1 / 12) * 100 * 0.015 = 0.12499999999999997, which rounds to 0.12; computed in another
    // order it is 0.125 and would round to 0.13.
    let config = ScoreConfig {
        group_weights: BTreeMap::from([("g".to_owned(), 1.5)]),
        ..ScoreConfig::default()
    };
    assert_eq!(score(&results("g", 1, 11), &config).unwrap().score, 0.12);
    // 23 of 160 unweighted: (23 / 160) * 100 = 14.374999999999998, so 14.37.
    let s = score(&results("g", 23, 137), &ScoreConfig::default()).unwrap();
    assert_eq!(s.score, 14.37);
}
