//! The sequential tests take whatever the traffic hands them: a split so lopsided that a share
//! rounds to 0 or 1 leaves every number finite and the state restorable, and a state restored
//! from an edited journal is refused with an error naming the field, or judges as the original.

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Sample, Severity, Verdict};
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    LatencyVariance, SequentialLatencyJudge, Sides,
};
use serin_signals::{LatencySketch, Measurement, Metric, Observation, Timestamp, Track, Window};

/// A canary that errs at ten times the baseline's rate, every second.
fn regression(t: &mut CountTest, seconds: u64) -> bool {
    (0..seconds).any(|_| t.update(900, 1, 100, 1))
}

#[test]
fn a_share_that_rounds_to_zero_or_one_leaves_the_count_test_finite_and_restorable() {
    for sides in [Sides::CanaryWorse, Sides::TwoSided] {
        let cfg = CountTestConfig::new(0.05).with_sides(sides);
        let samples: [&dyn Fn(&mut CountTest); 4] = [
            // The canary holds all but one request in 2⁶⁰: its share rounds to 1.
            &|t| {
                t.update(1, 0, 1 << 60, 1);
            },
            // The baseline does: the canary's share is 1e-18, and 1 − share rounds to 1.
            &|t| {
                t.update(1 << 60, 1, 1, 0);
            },
            // Stated shares that close to 0 are refused and change nothing.
            &|t| {
                assert!(t.update_with_share(0, 1, 1e-17).is_err());
            },
            &|t| {
                assert!(t.update_with_share(1, 0, 1e-300).is_err());
            },
        ];
        for (i, sample) in samples.iter().enumerate() {
            let mut t = CountTest::new(cfg).unwrap();
            sample(&mut t);
            let json = serde_json::to_string(&t).unwrap();
            let restored: CountTest = serde_json::from_str(&json)
                .unwrap_or_else(|e| panic!("{sides:?}, sample {i}: {e}\n{json}"));
            assert!(t.e_value().is_finite(), "{sides:?}, sample {i}");
            // And it still catches a regression as a fresh test would.
            let mut fresh = CountTest::new(cfg).unwrap();
            for t in [&mut t, &mut restored.clone()] {
                assert!(regression(t, 120), "{sides:?}, sample {i}");
            }
            assert!(regression(&mut fresh, 120));
        }
    }
}

/// `value` with `v` at `pointer`.
fn edited(value: &Value, pointer: &str, v: Value) -> Value {
    let mut e = value.clone();
    *e.pointer_mut(pointer).unwrap() = v;
    e
}

#[test]
fn a_batch_test_restored_with_a_prior_other_than_its_settings_is_refused() {
    let mut t = BatchCountTest::new(BatchCountConfig::new(0.05)).unwrap();
    for i in 0..300u64 {
        t.update(500, 2 + i % 3, 500, 2 + i % 2);
    }
    let saved = serde_json::to_value(&t).unwrap();
    for (pointer, v) in [
        ("/t/g", json!(-1.0)),
        ("/t/g", json!(0.0)),
        ("/t/g", json!(1.0)),
        ("/t/m2", json!(-1.0)),
    ] {
        let e = serde_json::from_value::<BatchCountTest>(edited(&saved, pointer, v.clone()))
            .expect_err(&format!("{pointer} = {v}"));
        let field = pointer.rsplit('/').next().unwrap();
        assert!(e.to_string().contains(field), "{pointer} = {v}: {e}");
    }
}

#[test]
fn a_count_test_restored_with_a_factor_that_would_make_its_e_value_nan_is_refused() {
    for sides in [Sides::CanaryWorse, Sides::TwoSided] {
        let mut t = CountTest::new(CountTestConfig::new(0.05).with_sides(sides)).unwrap();
        for i in 0..300u64 {
            t.update(900, 5, 100, i % 2);
        }
        assert!(!t.rejected());
        let saved = serde_json::to_value(&t).unwrap();
        let restored: CountTest = serde_json::from_value(saved.clone()).unwrap();
        assert_eq!(restored, t);
        for (pointer, field) in [
            ("/worse/pendingPlug", "worse.pendingPlug"),
            ("/worse/pendingGrid/1", "worse.pendingGrid[1]"),
            ("/better/pendingPlug", "better.pendingPlug"),
            ("/worse/weightedOther", "worse.weightedOther"),
            ("/nextStart", "nextStart"),
        ] {
            let v = if field == "nextStart" {
                json!(0)
            } else {
                json!(-1.0)
            };
            let e = serde_json::from_value::<CountTest>(edited(&saved, pointer, v))
                .expect_err(&format!("{sides:?}: {pointer}"));
            assert!(e.to_string().contains(field), "{sides:?}: {pointer}: {e}");
        }
    }
}

#[test]
fn a_latency_test_restored_with_a_prior_other_than_its_settings_is_refused() {
    let mut t = LatencyTest::new(LatencyTestConfig {
        variance: LatencyVariance::BetweenBatches,
        min_samples: 2,
        ..LatencyTestConfig::new(0.05)
    })
    .unwrap();
    for i in 0..40u32 {
        let mut b = LatencySketch::new();
        let mut c = LatencySketch::new();
        for k in 0..20u32 {
            b.add(10.0 + f64::from((k * 7 + i) % 11)).unwrap();
            c.add(11.0 + f64::from((k * 5 + i) % 11)).unwrap();
        }
        t.update(&b, &c);
    }
    let saved = serde_json::to_value(&t).unwrap();
    assert_eq!(
        serde_json::from_value::<LatencyTest>(saved.clone()).unwrap(),
        t
    );
    for v in [-1.0, 0.0, 1.0] {
        let e = serde_json::from_value::<LatencyTest>(edited(&saved, "/between/g", json!(v)))
            .expect_err(&format!("between.g = {v}"));
        assert!(e.to_string().contains(".g"), "{v}: {e}");
    }
    let e = serde_json::from_value::<LatencyTest>(edited(&saved, "/between/m2", json!(-1.0)))
        .unwrap_err();
    assert!(e.to_string().contains("m2"), "{e}");
    assert!(t.e_value().is_finite());
}

fn latency_sample(s: u64, base: f64, canary: f64) -> (Observation, Observation) {
    let w = Window::new(
        Timestamp::from_millis(s * 1_000),
        Timestamp::from_millis((s + 1) * 1_000),
    )
    .unwrap();
    let arm = |track, scale: f64| {
        let mut sketch = LatencySketch::new();
        for k in 0..50u64 {
            sketch
                .add(scale * (10.0 + ((k * 7 + s) % 13) as f64))
                .unwrap();
        }
        Observation::new(Metric::Latency, track, w, Measurement::Latency(sketch))
    };
    (arm(Track::Stable, base), arm(Track::Canary, canary))
}

#[test]
fn a_reported_latency_failure_keeps_its_severity_as_batches_keep_arriving() {
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let observe = |judge: &mut SequentialLatencyJudge, s: u64, canary: f64| {
        let (b, c) = latency_sample(s, 1.0, canary);
        judge
            .observe(&Sample::new(&b, &c, Some(0.5), c.window.end()).unwrap())
            .unwrap()
            .verdict
    };
    // Twice as slow: critical (the latency bands call +50% critical).
    let failed = (0..60)
        .map(|s| observe(&mut judge, s, 2.0))
        .find(Verdict::is_fail);
    assert_eq!(failed, Some(Verdict::Fail(Severity::Critical)));
    // The canary then matches the baseline for a long while: the estimate of the shift falls
    // below the critical band, and the failure stands as reported, through a resume too.
    let mut last = Verdict::Inconclusive;
    for s in 60..3_000 {
        last = observe(&mut judge, s, 1.0);
    }
    let (_, c) = latency_sample(3_000, 1.0, 1.0);
    let shift = judge.judgement(c.window.end()).evidence.effects[0].estimate;
    assert!(shift < 0.5, "{shift}");
    assert_eq!(last, Verdict::Fail(Severity::Critical));
    let back: SequentialLatencyJudge =
        serde_json::from_str(&serde_json::to_string(&judge).unwrap()).unwrap();
    assert_eq!(
        back.judgement(c.window.end()).verdict,
        Verdict::Fail(Severity::Critical)
    );
}
