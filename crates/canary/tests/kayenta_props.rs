//! Invariants of the Kayenta parity judge under arbitrary input.

use proptest::prelude::*;
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::kayenta::{
    KayentaConfig, KayentaJudge, MetricConfig, NanStrategy, OutlierStrategy, Outliers, Quantity,
    classify, shift_interval,
};
use serin_signals::{Gauge, Measurement, Metric, Observation, Timestamp, Track, Window};

fn values() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(
        prop_oneof![(0u32..20).prop_map(f64::from), -1.0e6f64..1.0e6, Just(0.0),],
        1..40,
    )
}

fn obs(v: Option<f64>, track: Track, i: u64) -> Observation {
    let w = Window::new(
        Timestamp::from_millis(i * 60_000),
        Timestamp::from_millis((i + 1) * 60_000),
    )
    .unwrap();
    let m = v.map_or(Measurement::NoData, |v| {
        Measurement::Gauge(Gauge::new(v).unwrap())
    });
    Observation::new(Metric::Cpu, track, w, m)
}

proptest! {
    #[test]
    fn the_interval_never_panics_and_is_ordered(x in values(), y in values()) {
        if let Ok(ci) = shift_interval(&x, &y, 0.98) {
            let tol = serin_canary::kayenta::ROOT_TOLERANCE;
            prop_assert!(ci.lower <= ci.upper + tol, "{ci:?}");
            prop_assert!(ci.lower.is_finite() && ci.upper.is_finite() && ci.estimate.is_finite());
        }
    }

    #[test]
    fn identical_arms_never_fail_and_always_carry_evidence(
        points in prop::collection::vec(prop::option::of(0u32..50), 0..40),
        replace in any::<bool>(),
        remove_outliers in any::<bool>(),
    ) {
        let mut cfg = KayentaConfig::new(Metric::Cpu, Quantity::Value);
        cfg.min_points = 1;
        cfg.metric_config = MetricConfig {
            nan_strategy: if replace { NanStrategy::Replace } else { NanStrategy::Remove },
            outliers: Outliers {
                strategy: if remove_outliers { OutlierStrategy::Remove } else { OutlierStrategy::Keep },
                ..Outliers::default()
            },
            ..MetricConfig::default()
        };
        let mut judge = KayentaJudge::new(cfg).unwrap();
        for (i, p) in points.iter().enumerate() {
            let v = p.map(f64::from);
            let (b, c) = (obs(v, Track::Stable, i as u64), obs(v, Track::Canary, i as u64));
            let now = Timestamp::from_millis((i as u64 + 1) * 60_000);
            let j = judge.observe(&Sample::new(&b, &c, Some(0.5), now).unwrap()).unwrap();
            prop_assert!(!j.verdict.is_fail(), "{j:?}");
            prop_assert_eq!(j.evidence.judge.as_str(), "kayenta");
            prop_assert!(!j.evidence.summary.is_empty());
            prop_assert_eq!(j.evidence.at, now);
        }
        let state = serde_json::to_string(&judge).unwrap();
        let back: KayentaJudge = serde_json::from_str(&state).unwrap();
        prop_assert_eq!(back, judge);
    }

    #[test]
    fn classification_never_panics(
        b in prop::collection::vec(prop::option::of(-1.0e3f64..1.0e3), 0..30),
        c in prop::collection::vec(prop::option::of(-1.0e3f64..1.0e3), 0..30),
    ) {
        let cls = classify(&MetricConfig::default(), &b, &c);
        prop_assert!(!cls.reason.is_empty());
    }
}

#[test]
fn a_verdict_on_no_data_is_never_a_pass() {
    let mut cfg = KayentaConfig::new(Metric::Cpu, Quantity::Value);
    cfg.min_points = 1;
    let mut judge = KayentaJudge::new(cfg).unwrap();
    for i in 0..5 {
        let (b, c) = (obs(None, Track::Stable, i), obs(None, Track::Canary, i));
        let s = Sample::new(&b, &c, None, Timestamp::from_millis(i * 60_000)).unwrap();
        assert_eq!(judge.observe(&s).unwrap().verdict, Verdict::Inconclusive);
    }
}
