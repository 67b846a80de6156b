//! Invariants of the threshold parity judges under arbitrary input.

use proptest::prelude::*;
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, CheckOutcome, FlaggerAnalysis, FlaggerAnalysisConfig, FlaggerConfig,
    FlaggerJudge, FlaggerMetric, Range,
};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};

fn obs(m: Measurement, track: Track, i: u64) -> Observation {
    let w = Window::new(
        Timestamp::from_millis(i * 60_000),
        Timestamp::from_millis((i + 1) * 60_000),
    )
    .unwrap();
    Observation::new(Metric::ErrorRate, track, w, m)
}

fn measurement() -> impl Strategy<Value = Measurement> {
    prop_oneof![
        Just(Measurement::NoData),
        (0u64..500, 0u64..500).prop_map(|(r, e)| {
            Measurement::Counts(Counts::new(r.max(e), e.min(r.max(e))).unwrap())
        }),
    ]
}

proptest! {
    #[test]
    fn evidence_is_always_present_and_no_data_never_fails_by_default(
        stream in prop::collection::vec(measurement(), 1..60),
        failure_limit in -1i64..3,
    ) {
        let mut a = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
        a.success_condition = Some(Range::at_most(0.01).into());
        a.failure_limit = failure_limit;
        // Argo takes failureLimit −1 only with a consecutiveSuccessLimit.
        a.consecutive_success_limit = if failure_limit < 0 { 3 } else { 0 };
        let mut argo = ArgoJudge::new(a).unwrap();
        let f = FlaggerConfig::new(Metric::ErrorRate, Quantity::SuccessRatePercent, Range::at_least(99.0));
        let mut flagger = FlaggerJudge::new(f).unwrap();
        let mut any_value = false;
        for (i, m) in stream.iter().enumerate() {
            let i = i as u64;
            any_value |= Quantity::ErrorRate.of(m).is_some();
            let (b, c) = (obs(m.clone(), Track::Stable, i), obs(m.clone(), Track::Canary, i));
            let s = Sample::new(&b, &c, Some(0.1), Timestamp::from_millis((i + 1) * 60_000)).unwrap();
            for judge in [&mut argo as &mut dyn Judge, &mut flagger] {
                let j = judge.observe(&s).unwrap();
                prop_assert!(!j.evidence.summary.is_empty());
                prop_assert_eq!(j.evidence.at, s.now());
                if !any_value {
                    // Only missing data so far: never a failure, never a pass.
                    prop_assert_eq!(j.verdict, Verdict::Inconclusive);
                }
            }
        }
        let back: ArgoJudge = serde_json::from_str(&serde_json::to_string(&argo).unwrap()).unwrap();
        prop_assert_eq!(back, argo);
        let back: FlaggerJudge = serde_json::from_str(&serde_json::to_string(&flagger).unwrap()).unwrap();
        prop_assert_eq!(back, flagger);
    }
}

proptest! {
    #[test]
    fn a_flagger_analysis_counts_each_failing_interval_once_until_it_rolls_back(
        stream in prop::collection::vec(
            prop::collection::vec(prop::option::of(0.0f64..2.0), 3), 0..40),
        threshold in 0u32..6,
        no_data_fails in any::<bool>(),
    ) {
        // Flagger reads a threshold of 0 as 1.
        let rolls_back_at = threshold.max(1);
        let metrics = [Metric::ErrorRate, Metric::Latency, Metric::Cpu]
            .into_iter()
            .map(|m| FlaggerMetric::new(m, Quantity::Value, Range::at_most(1.0)))
            .collect();
        let mut c = FlaggerAnalysisConfig::new(metrics);
        c.threshold = threshold;
        c.no_data_fails = no_data_fails;
        let mut a = FlaggerAnalysis::new(c).unwrap();
        let mut failing = 0u32;
        for values in &stream {
            let fails = values
                .iter()
                .any(|v| v.map_or(no_data_fails, |v| v > 1.0));
            let outcome = a.check(values).unwrap();
            prop_assert_eq!(outcome == CheckOutcome::Failed, fails);
            if failing < rolls_back_at && fails {
                failing += 1;
            }
            prop_assert_eq!(a.failed_checks(), failing);
            prop_assert_eq!(a.rolls_back(), failing >= rolls_back_at);
            let verdict = a.judgement(Timestamp::EPOCH).verdict;
            if verdict == Verdict::Pass {
                prop_assert!(values.iter().all(|v| v.is_some_and(|v| v <= 1.0)));
            }
        }
        let back: FlaggerAnalysis =
            serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
        prop_assert_eq!(back, a);
    }
}

proptest! {
    /// Fed one metric's sample at a time, some windows missing a metric and some samples
    /// without data, the analysis reads back from its journal as it was after every sample.
    #[test]
    fn a_flagger_analysis_fed_one_metric_at_a_time_always_reads_back(
        stream in prop::collection::vec(
            (0usize..2, prop::option::of(0u64..50), any::<bool>()), 0..40),
    ) {
        let metrics = vec![
            FlaggerMetric::new(Metric::ErrorRate, Quantity::ErrorRate, Range::at_most(0.05)),
            FlaggerMetric::new(Metric::Throughput, Quantity::ErrorRate, Range::at_most(0.05)),
        ];
        let mut a = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(metrics)).unwrap();
        let mut minute = 0;
        for (which, errors, next_window) in stream {
            minute += u64::from(next_window);
            let metric = [Metric::ErrorRate, Metric::Throughput][which].clone();
            let m = errors.map_or(Measurement::NoData, |e| {
                Measurement::Counts(Counts::new(1_000, e).unwrap())
            });
            let (mut b, mut c) = (obs(m.clone(), Track::Stable, minute), obs(m, Track::Canary, minute));
            b.metric = metric.clone();
            c.metric = metric;
            let s = Sample::new(&b, &c, Some(0.1), b.window.end()).unwrap();
            // A second sample of a metric for the window is refused; the rest are taken.
            if Judge::observe(&mut a, &s).is_err() {
                continue;
            }
            let back: FlaggerAnalysis =
                serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
            prop_assert_eq!(&back, &a);
        }
    }
}
