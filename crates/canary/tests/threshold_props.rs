//! Invariants of the threshold parity judges under arbitrary input.

use proptest::prelude::*;
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{ArgoConfig, ArgoJudge, FlaggerConfig, FlaggerJudge, Range};
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
        a.success_condition = Some(Range::at_most(0.01));
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
