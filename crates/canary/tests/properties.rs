//! Invariants, checked with proptest: identical arms never fail, every answer carries evidence,
//! the latency test's outlier fences always bracket the baseline's middle, and the controller
//! never raises the weight while a judge fails.

use crate::common;

use std::time::Duration;

use common::{counts, latency, no_data, second};
use proptest::prelude::*;
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Command, OnWarning, Pacing, Pause, Step,
};
use serin_canary::judge::{Judge, Sample};
use serin_canary::sequential::{
    BatchCountConfig, CountMode, CountTestConfig, LatencyTest, LatencyTestConfig,
    SequentialCountJudge, SequentialLatencyJudge, Sides,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{Counts, LatencySketch, Metric, Track};

fn count_judges() -> Vec<SequentialCountJudge> {
    let bands = SeverityBands::default();
    vec![
        SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap(),
        SequentialCountJudge::with_mode(
            Metric::ErrorRate,
            CountMode::PerRequest(CountTestConfig::new(0.2).with_sides(Sides::TwoSided)),
            bands,
        )
        .unwrap(),
        SequentialCountJudge::with_mode(
            Metric::ErrorRate,
            CountMode::Batched(BatchCountConfig {
                min_samples: 1,
                min_expected_errors: 1.0,
                ..BatchCountConfig::new(0.2)
            }),
            bands,
        )
        .unwrap(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn identical_count_streams_never_fail(
        stream in prop::collection::vec((0u64..2_000, 0u64..50), 1..400)
    ) {
        for mut judge in count_judges() {
            for (s, (req, err)) in stream.iter().enumerate() {
                let w = second(s as u64);
                let b = counts(Metric::ErrorRate, Track::Stable, w, *req, *err);
                let c = counts(Metric::ErrorRate, Track::Canary, w, *req, *err);
                let j = judge.observe(&Sample::new(&b, &c, None, w.end()).unwrap()).unwrap();
                prop_assert!(!j.verdict.is_fail(), "{:?}", j.evidence);
            }
        }
    }

    #[test]
    fn identical_latency_streams_never_fail(
        stream in prop::collection::vec(prop::collection::vec(0.01f64..10_000.0, 0..40), 1..80)
    ) {
        let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.2, 0.0).unwrap();
        for (s, values) in stream.iter().enumerate() {
            let w = second(s as u64);
            let b = latency(Track::Stable, w, values);
            let c = latency(Track::Canary, w, values);
            let j = judge.observe(&Sample::new(&b, &c, None, w.end()).unwrap()).unwrap();
            prop_assert!(!j.verdict.is_fail(), "{:?}", j.evidence);
        }
    }

    #[test]
    fn every_judgement_carries_evidence(
        stream in prop::collection::vec(
            (0u64..500, 0u64..20, 0u64..500, 0u64..20, any::<bool>(), any::<bool>()), 1..200)
    ) {
        for mut judge in count_judges() {
            for (s, (br, be, cr, ce, b_none, c_none)) in stream.iter().enumerate() {
                let w = second(s as u64);
                let b = if *b_none { no_data(Metric::ErrorRate, Track::Stable, w) }
                    else { counts(Metric::ErrorRate, Track::Stable, w, *br, *be) };
                let c = if *c_none { no_data(Metric::ErrorRate, Track::Canary, w) }
                    else { counts(Metric::ErrorRate, Track::Canary, w, *cr, *ce) };
                let j = judge.observe(&Sample::new(&b, &c, None, w.end()).unwrap()).unwrap();
                prop_assert_eq!(&j.evidence.judge, judge.name());
                prop_assert_eq!(&j.evidence.metric, &Metric::ErrorRate);
                prop_assert_eq!(j.evidence.at, w.end());
                prop_assert!(!j.evidence.summary.is_empty());
                prop_assert!(j.evidence.statistic.is_some() && j.evidence.threshold.is_some());
                prop_assert!(!j.evidence.effects.is_empty());
                if *b_none || *c_none {
                    prop_assert!(!matches!(j.verdict, serin_canary::judge::Verdict::Pass));
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Event {
    /// One second of traffic: baseline errors per mille, canary error multiplier (×10).
    Traffic {
        base_permille: u64,
        canary_x10: u64,
    },
    NoData,
    Tick(u64),
    Resume,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (1u64..20, 5u64..80).prop_map(|(b, c)| Event::Traffic { base_permille: b, canary_x10: c }),
        1 => Just(Event::NoData),
        1 => (1u64..120).prop_map(Event::Tick),
        1 => Just(Event::Resume),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (1u8..=100).prop_map(Step::SetWeight),
        prop::option::of(1u64..120).prop_map(|d| Step::Pause(Pause {
            duration: d.map(Duration::from_secs)
        })),
        (1u64..300, 1u64..30).prop_map(|(d, m)| Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(d),
            min_samples: m,
        })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    #[test]
    fn the_controller_never_raises_the_weight_while_a_judge_fails_or_pacing_holds(
        steps in prop::collection::vec(step(), 1..8),
        events in prop::collection::vec(event(), 1..400),
        hold_on_warning in any::<bool>(),
        paced in any::<bool>(),
    ) {
        let mut policy = CanaryPolicy::new(steps);
        if hold_on_warning {
            policy.on_warning = OnWarning::Hold;
        }
        if paced {
            policy.pacing = Some(Pacing::default());
        }
        let judge = SequentialCountJudge::with_mode(
            Metric::ErrorRate,
            CountMode::PerRequest(CountTestConfig::new(0.1)),
            SeverityBands::new(0.0, 50.0).unwrap(),
        ).unwrap();
        // A policy refused on load (an analysis step at 100%, say) never runs.
        prop_assume!(policy.validate().is_ok());
        let pacing = policy.pacing.clone();
        let mut ctl = CanaryController::new(policy, vec![judge]).unwrap();
        let mut now_s = 0u64;
        let mut weight = 0u8;
        // Pacing's log likelihood ratio at the current weight, as the test reckons it.
        let mut llr = 0.0;
        for e in events {
            let failing_before = ctl.judges()[0].judgement(common::second(now_s).end()).verdict.is_fail();
            let d = match e {
                Event::Traffic { base_permille, canary_x10 } => {
                    let w = second(now_s);
                    let cw = u64::from(ctl.state().weight());
                    let (br, cr) = (10 * (100 - cw), 10 * cw);
                    // Deterministic error counts from the rates (rounded).
                    let be = br * base_permille / 1000;
                    let ce = cr * base_permille * canary_x10 / 10_000;
                    now_s += 1;
                    if let Some(p) = &pacing {
                        let (bc, cc) = (Counts::new(br, be).unwrap(), Counts::new(cr, ce).unwrap());
                        llr += p.log_likelihood_ratio(&bc, &cc);
                    }
                    let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
                    let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
                    ctl.observe(&b, &c, w.end()).unwrap()
                }
                Event::NoData => {
                    let w = second(now_s);
                    now_s += 1;
                    let b = no_data(Metric::ErrorRate, Track::Stable, w);
                    let c = no_data(Metric::ErrorRate, Track::Canary, w);
                    ctl.observe(&b, &c, w.end()).unwrap()
                }
                Event::Tick(s) => {
                    now_s += s;
                    ctl.tick(second(now_s).start())
                }
                Event::Resume => ctl.command(Command::Resume, second(now_s).start()).unwrap(),
            };
            let failing_now = ctl.judges()[0].judgement(d.at).verdict.is_fail();
            let gate_holds = pacing.as_ref().is_some_and(|p| weight > 0 && !p.gate_passed(llr));
            match d.action {
                Action::SetWeight(w) if w > weight => {
                    prop_assert!(!failing_before && !failing_now, "raised to {} while failing: {}", w, d.reason);
                    prop_assert!(!gate_holds, "raised from {} to {} before pacing's gate passed", weight, w);
                    weight = w;
                    llr = 0.0;
                }
                Action::SetWeight(w) => {
                    weight = w;
                    llr = 0.0;
                }
                Action::Promote => {
                    prop_assert!(!failing_now, "promoted while failing");
                    prop_assert!(weight == 100 || !gate_holds, "promoted from {} before pacing's gate passed", weight);
                }
                _ => {}
            }
            prop_assert!(!d.reason.is_empty());
        }
    }
}

fn sketch_of(values: &[f64]) -> LatencySketch {
    let mut s = LatencySketch::new();
    for v in values {
        s.add(*v).unwrap();
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the latencies (zeros, microseconds, hours, all in one sketch bin or spread over
    /// decades), the fences are an interval at least a doubling beyond the baseline's
    /// quartiles, and no more values are clipped than fed.
    #[test]
    fn outlier_fences_bracket_the_baseline_quartiles(
        seconds in prop::collection::vec(
            (
                prop_oneof![Just(0.0), 1e-3f64..1e7],
                prop_oneof![Just(0.0), 0.0f64..0.05, 0.0f64..3.0],
                0usize..40,
                0usize..40,
            ),
            1..30,
        ),
        fence in 0.1f64..10.0,
    ) {
        let config = LatencyTestConfig { outlier_fence: Some(fence), ..LatencyTestConfig::default() };
        let mut test = LatencyTest::new(config).unwrap();
        let mut baseline = LatencySketch::new();
        // `n` values around `center`, log-spread evenly over `±spread`.
        let values = |center: f64, spread: f64, n: usize| -> Vec<f64> {
            (0..n).map(|i| center * (spread * ((i % 7) as f64 - 3.0) / 3.0).exp()).collect()
        };
        for &(center, spread, nb, nc) in &seconds {
            let (b, c) = (values(center, spread, nb), values(center * 1.1, spread, nc));
            let (lo, hi) = test.fences();
            prop_assert!(lo < hi, "{lo} {hi}");
            if baseline.count() >= 20 {
                let ln_q = |q: f64| baseline.quantile(q).unwrap().max(1e-3).ln();
                prop_assert!(lo <= ln_q(0.25) - std::f64::consts::LN_2 + 1e-9);
                prop_assert!(hi >= ln_q(0.75) + std::f64::consts::LN_2 - 1e-9);
            } else {
                prop_assert!(lo == f64::NEG_INFINITY && hi == f64::INFINITY);
            }
            let (sb, sc) = (sketch_of(&b), sketch_of(&c));
            baseline.merge(&sb).unwrap();
            test.update(&sb, &sc);
        }
        let (nb, nc) = test.values();
        let (cb, cc) = test.clipped();
        prop_assert!(cb <= nb && cc <= nc);
    }
}
