//! Invariants of the Kayenta parity judges under arbitrary input.

use std::collections::BTreeMap;

use proptest::prelude::*;
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::kayenta::{
    CanaryConfig, KayentaAnalysis, KayentaAnalysisConfig, KayentaBinding, KayentaConfig,
    KayentaJudge, MetricConfig, NanStrategy, OutlierStrategy, Outliers, Quantity, RunConfig,
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
    fn a_whole_config_run_on_identical_arms_never_fails_and_always_carries_evidence(
        points in prop::collection::vec((0u32..50, 0u32..50), 0..40),
        interval in 1usize..15,
        critical in any::<bool>(),
    ) {
        // Two metrics, on the CPU and the memory gauges, in one group each.
        let canary_config = CanaryConfig::from_json(&format!(
            r#"{{"name":"aa","metrics":[
                {{"name":"cpu","groups":["a"],"analysisConfigurations":{{"canary":{{"critical":{critical}}}}}}},
                {{"name":"memory","groups":["b"]}}]}}"#
        ))
        .unwrap();
        let bindings = BTreeMap::from([
            ("cpu".to_owned(), KayentaBinding::new(Metric::Cpu, Quantity::Value)),
            ("memory".to_owned(), KayentaBinding::new(Metric::Memory, Quantity::Value)),
        ]);
        let mut config =
            KayentaAnalysisConfig::new(canary_config, bindings, RunConfig::new(40).every(interval));
        config.min_points = 1;
        let mut analysis = KayentaAnalysis::new(config).unwrap();
        for (i, (cpu, memory)) in points.iter().enumerate() {
            let now = Timestamp::from_millis((i as u64 + 1) * 60_000);
            for (metric, v) in [(Metric::Cpu, cpu), (Metric::Memory, memory)] {
                let mut b = obs(Some(f64::from(*v)), Track::Stable, i as u64);
                b.metric = metric.clone();
                let mut c = b.clone();
                c.track = Track::Canary;
                let j = analysis.observe(&Sample::new(&b, &c, Some(0.5), now).unwrap()).unwrap();
                prop_assert!(!j.verdict.is_fail(), "{j:?}");
                prop_assert_eq!(j.evidence.judge.as_str(), "kayenta-analysis");
                prop_assert!(!j.evidence.summary.is_empty());
                prop_assert_eq!(j.evidence.at, now);
            }
        }
        // Every interval is taken until the run ends (at its last whole interval).
        prop_assert!(analysis.points() == points.len() || analysis.concluded());
        let state = serde_json::to_string(&analysis).unwrap();
        let back: KayentaAnalysis = serde_json::from_str(&state).unwrap();
        prop_assert_eq!(back, analysis);
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
