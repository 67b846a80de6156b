//! A sequential judge read back from a journal is checked as a new one is: a state no test ever
//! writes is refused with an error that names the field as the saved state spells it, the value
//! and the reason, and the evidence prints the threshold the test really uses.

use crate::common;

use common::{Rng, counts, latency, second};
use serde_json::{Value, json};
use serin_canary::controller::{Action, CanaryController, CanaryPolicy, PromotionGate, Step};
use serin_canary::judge::{Judge, Judgement, Sample};
use serin_canary::sequential::{
    AlphaSharing, BatchCountConfig, BatchCountTest, CountMode, CountTest, CountTestConfig,
    LatencyTest, LatencyTestConfig, LatencyVariance, SequentialCountJudge, SequentialLatencyJudge,
    combine,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{LatencySketch, Metric, Timestamp, Track};

/// A latency test fed a minute of samples, the last with too few values to close its batch, so
/// that its open moments, spreads and sums all hold data.
fn fed_latency_test(variance: LatencyVariance) -> LatencyTest {
    let mut t = LatencyTest::new(LatencyTestConfig {
        variance,
        min_samples: 5,
        ..LatencyTestConfig::new(0.05)
    })
    .unwrap();
    let sketch = |n: u32, i: u32, scale: f64| {
        let mut s = LatencySketch::new();
        for k in 0..n {
            s.add(scale * (10.0 + f64::from((k * 7 + i) % 13))).unwrap();
        }
        s
    };
    for i in 0..60 {
        t.update(&sketch(40, i, 1.0), &sketch(20, i, 1.02));
    }
    t.update(&sketch(3, 60, 1.0), &sketch(2, 60, 1.02));
    t
}

fn edited(v: &Value, pointer: &str, value: Value) -> Value {
    let mut v = v.clone();
    *v.pointer_mut(pointer)
        .unwrap_or_else(|| panic!("{pointer} is not in the saved state")) = value;
    v
}

#[test]
fn a_latency_test_read_back_with_impossible_moments_or_spreads_is_refused_naming_the_field() {
    for variance in [
        LatencyVariance::WithinBatch,
        LatencyVariance::BetweenBatches,
    ] {
        let t = fed_latency_test(variance);
        let saved = serde_json::to_value(&t).unwrap();
        assert_eq!(
            serde_json::from_value::<LatencyTest>(saved.clone()).unwrap(),
            t
        );
        assert!(saved["openBaseline"]["count"].as_u64() > Some(0), "{saved}");
        for (pointer, field, value) in [
            ("/openBaseline/m2", "latencyTest.openBaseline.m2", -1.0),
            ("/openCanary/m2", "latencyTest.openCanary.m2", -0.5),
            (
                "/spreadBaseline/sumSqDev",
                "latencyTest.spreadBaseline.sumSqDev",
                -1.0,
            ),
            (
                "/spreadCanary/sumSqDev",
                "latencyTest.spreadCanary.sumSqDev",
                -1e300,
            ),
            ("/precision", "latencyTest.precision", -1.0),
            ("/sumAllowance", "latencyTest.sumAllowance", -1.0),
            ("/maxAllowance", "latencyTest.maxAllowance", -0.02),
        ] {
            let e = serde_json::from_value::<LatencyTest>(edited(&saved, pointer, json!(value)))
                .expect_err(&format!("{variance:?}: {pointer} = {value} was taken"))
                .to_string();
            assert!(
                e.contains(field) && e.contains(&value.to_string()) && e.contains(">= 0"),
                "{variance:?}: {pointer}: {e}"
            );
        }
    }
}

#[test]
fn a_latency_judge_read_back_with_a_negative_spread_is_refused_rather_than_judging_blind() {
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let mut rng = Rng::new(5);
    let values = |rng: &mut Rng, n: usize, scale: f64| -> Vec<f64> {
        (0..n)
            .map(|_| scale * (20.0 * (0.3 * rng.normal()).exp()))
            .collect()
    };
    for s in 0..30 {
        let w = second(s);
        let b = latency(Track::Stable, w, &values(&mut rng, 50, 1.0));
        let c = latency(Track::Canary, w, &values(&mut rng, 50, 1.0));
        judge
            .observe(&Sample::new(&b, &c, Some(0.5), w.end()).unwrap())
            .unwrap();
    }
    let saved = serde_json::to_value(&judge).unwrap();
    let e = serde_json::from_value::<SequentialLatencyJudge>(edited(
        &saved,
        "/test/spreadBaseline/sumSqDev",
        json!(-1e300),
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("latencyTest.spreadBaseline.sumSqDev") && e.contains("-1"),
        "{e}"
    );
}

#[test]
fn a_t_test_read_back_with_a_negative_sum_of_squares_names_its_full_path() {
    let t = fed_latency_test(LatencyVariance::BetweenBatches);
    let saved = serde_json::to_value(&t).unwrap();
    let e = serde_json::from_value::<LatencyTest>(edited(&saved, "/between/m2", json!(-1.0)))
        .unwrap_err()
        .to_string();
    assert!(e.contains("latencyTest.between.m2"), "{e}");
    assert!(!e.contains("sequentialT"), "{e}");

    let mut batch = BatchCountTest::new(BatchCountConfig {
        min_samples: 2,
        ..BatchCountConfig::new(0.05)
    })
    .unwrap();
    for i in 0..200u64 {
        batch.update(900, 5 + i % 3, 100, 1 + i % 2);
    }
    let saved = serde_json::to_value(&batch).unwrap();
    let e = serde_json::from_value::<BatchCountTest>(edited(&saved, "/t/m2", json!(-2.5)))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("batchCountTest.t.m2") && e.contains("-2.5") && !e.contains("sequentialT"),
        "{e}"
    );
}

/// A count judge's and a latency judge's judgements at level `alpha` after a canary as good as
/// the baseline: inconclusive, so their summaries quote `1/α`.
fn inconclusive_judgements(alpha: f64) -> (Judgement, Judgement) {
    let mode = CountMode::PerRequest(CountTestConfig::new(alpha));
    let mut judge =
        SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default()).unwrap();
    let mut count = None;
    for s in 0..60 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 9);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 1);
        let sample = Sample::new(&b, &c, Some(0.1), w.end()).unwrap();
        count = Some(judge.observe(&sample).unwrap());
    }
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, alpha, 0.0).unwrap();
    let w = second(0);
    let values: Vec<f64> = (0..40).map(|k| 10.0 + f64::from(k % 7)).collect();
    let b = latency(Track::Stable, w, &values);
    let c = latency(Track::Canary, w, &values);
    let latency = judge
        .observe(&Sample::new(&b, &c, Some(0.5), w.end()).unwrap())
        .unwrap();
    (count.unwrap(), latency)
}

#[test]
fn the_evidence_prints_one_over_alpha_as_it_is() {
    // 1/0.03 is 33.33…, not the 33 a rounding to whole numbers printed; a round threshold
    // stays round (20, not 20.0).
    for (alpha, shown) in [(0.03, "33.3"), (0.05, "20"), (0.001, "1000"), (0.4, "2.5")] {
        let (count, latency) = inconclusive_judgements(alpha);
        let text = &count.evidence.summary;
        assert!(
            text.contains(&format!("below 1/alpha = {shown},")),
            "{text}"
        );
        let text = &latency.evidence.summary;
        assert!(
            text.contains(&format!("below 1/alpha = {shown}:")),
            "{text}"
        );
        let both = combine(
            &[count, latency],
            alpha,
            AlphaSharing::Average,
            second(0).end(),
        );
        let text = both.unwrap().evidence.summary;
        assert!(
            text.contains(&format!("against 1/alpha = {shown} (")),
            "{text}"
        );
    }
}

#[test]
fn a_promotion_hold_prints_the_gate_s_threshold_as_it_is() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    policy.promotion = Some(PromotionGate::new(0.05, 0.03).unwrap());
    let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let mut ctl = CanaryController::new(policy, vec![judge]).unwrap();
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(10)
    );
    let w = second(0);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 90, 0);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 10, 0);
    let d = ctl.observe(&b, &c, w.end()).unwrap();
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("33.3 needed"), "{}", d.reason);
}

/// The last split a count judge was told of, and the split a count test's segment was fed at,
/// are shares no sample can state outside `(0, 1)`; a saved one there (or NaN, which YAML can
/// write) is refused, naming the field.
#[test]
fn a_count_judge_read_back_with_an_impossible_stated_share_is_refused_naming_the_field() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let mut test = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    for s in 0..10 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 9);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 1);
        judge
            .observe(&Sample::new(&b, &c, Some(0.1), w.end()).unwrap())
            .unwrap();
        test.update_with_share(9, 1, 0.1).unwrap();
    }
    for (saved, pointer, field) in [
        (
            serde_json::to_value(&judge).unwrap(),
            "/lastStatedShare",
            "sequentialCountJudge.lastStatedShare",
        ),
        (
            serde_json::to_value(&test).unwrap(),
            "/segment/statedShare",
            "countTest.segment.statedShare",
        ),
    ] {
        assert_eq!(saved.pointer(pointer), Some(&json!(0.1)), "{saved}");
        let yaml = serde_yaml_ng::to_string(&saved).unwrap();
        let key = pointer.rsplit('/').next().unwrap();
        let nan = yaml.replace(&format!("{key}: 0.1"), &format!("{key}: .nan"));
        assert_ne!(nan, yaml);
        for value in [1.5, -0.1, 1.0] {
            let edited = edited(&saved, pointer, json!(value));
            let e = if field.starts_with("countTest") {
                serde_json::from_value::<CountTest>(edited).map(|_| ())
            } else {
                serde_json::from_value::<SequentialCountJudge>(edited).map(|_| ())
            }
            .expect_err(&format!("{pointer} = {value} was taken"))
            .to_string();
            assert!(
                e.contains(&format!("{field} `{value}`")) && e.contains("between 0 and 1"),
                "{e}"
            );
        }
        let e = if field.starts_with("countTest") {
            serde_yaml_ng::from_str::<CountTest>(&nan).map(|_| ())
        } else {
            serde_yaml_ng::from_str::<SequentialCountJudge>(&nan).map(|_| ())
        }
        .expect_err("NaN was taken")
        .to_string();
        assert!(e.contains(&format!("{field} `NaN`")), "{e}");
    }
}

/// A one-sided test rejects only "the canary is not worse": a record of a one-sided rejection
/// for a *better* canary is none a test ever wrote, and read back it would have the judge
/// report a lower error rate or a faster canary, graded as at most a warning. It is refused,
/// naming the field.
#[test]
fn a_one_sided_test_read_back_as_rejected_for_a_better_canary_is_refused() {
    let mut counts = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    let mut batch = BatchCountTest::new(BatchCountConfig::new(0.05)).unwrap();
    for _ in 0..600 {
        counts.update(950, 5, 50, 3);
        batch.update(200, 1, 200, 6);
    }
    let mut latency = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    for _ in 0..600 {
        let b = serin_canary::sequential::LogMoments::from_parts(50, 0.0, 0.25).unwrap();
        let c = serin_canary::sequential::LogMoments::from_parts(50, 0.5, 0.25).unwrap();
        latency.update_log_moments(b, c);
    }
    assert_eq!(counts.rejected_worse(), Some(true));
    assert_eq!(batch.rejected_worse(), Some(true));
    assert_eq!(latency.rejected_worse(), Some(true));
    let better = |v: Value| edited(&v, "/rejectedWorse", json!(false));
    let e = serde_json::from_value::<CountTest>(better(serde_json::to_value(&counts).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("countTest.rejectedWorse"), "{e}");
    let e = serde_json::from_value::<BatchCountTest>(better(serde_json::to_value(&batch).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("batchCountTest.rejectedWorse"), "{e}");
    let e = serde_json::from_value::<LatencyTest>(better(serde_json::to_value(&latency).unwrap()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("latencyTest.rejectedWorse"), "{e}");
    // Two-sided, a rejection for a better canary is one the test writes.
    let mut two = CountTest::new(
        CountTestConfig::new(0.05).with_sides(serin_canary::sequential::Sides::TwoSided),
    )
    .unwrap();
    for _ in 0..600 {
        two.update(950, 5, 50, 3);
    }
    let v = better(serde_json::to_value(&two).unwrap());
    assert!(serde_json::from_value::<CountTest>(v).is_ok());
}
