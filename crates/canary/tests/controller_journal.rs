//! A rollout journalled and restored after every input decides exactly as one never
//! interrupted, whatever the inputs: traffic at the weight in force or the one before it,
//! latencies, no data, time running on, leaping years ahead, standing still or stepping back,
//! the caller's holds and commands.

use crate::common;

use std::time::Duration;

use common::{counts, latency, no_data, second};
use proptest::prelude::*;
use serin_canary::controller::{
    AnalysisStep, CanaryController, CanaryPolicy, CanaryScale, Command, ControllerState,
    LatencyPacing, OnInconclusive, OnWarning, Pacing, Pause, PromotionGate, Step,
};
use serin_canary::sequential::SequentialCountJudge;
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

#[derive(Debug, Clone)]
enum Event {
    /// One second of traffic, the canary's errors `canary_x10 / 10` times the baseline's rate;
    /// `stale` reports it at the weight in force before the last one set.
    Traffic {
        base_permille: u64,
        canary_x10: u64,
        stale: bool,
    },
    /// One second of latencies, the canary's `canary_pct` percent slower.
    Latency {
        canary_pct: u64,
    },
    NoData,
    /// Moves the clock by this many seconds (backwards when negative) after ticking.
    Tick(i64),
    TickHeld,
    Command(Command),
    EndPause,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (1u64..20, 5u64..60, prop::bool::weighted(0.1)).prop_map(|(b, c, stale)| {
            Event::Traffic { base_permille: b, canary_x10: c, stale }
        }),
        2 => (0u64..40).prop_map(|canary_pct| Event::Latency { canary_pct }),
        1 => Just(Event::NoData),
        1 => (1i64..4_000_000_000).prop_map(Event::Tick),
        2 => (-30i64..200).prop_map(Event::Tick),
        1 => Just(Event::TickHeld),
        1 => prop_oneof![
            4 => Just(Command::Resume),
            1 => Just(Command::Promote),
            1 => Just(Command::Abort),
        ].prop_map(Event::Command),
        1 => Just(Event::EndPause),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0u8..=100).prop_map(Step::SetWeight),
        1 => prop::option::of(1u64..120).prop_map(|d| Step::Pause(Pause {
            duration: d.map(Duration::from_secs)
        })),
        2 => (1u64..300, 1u64..30).prop_map(|(d, m)| Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(d),
            min_samples: m,
        })),
        1 => (0u32..5).prop_map(|r| Step::SetCanaryScale(CanaryScale {
            replicas: Some(r),
            ..CanaryScale::default()
        })),
    ]
}

fn pacing() -> impl Strategy<Value = Option<Pacing>> {
    prop_oneof![
        Just(None),
        Just(Some(Pacing::default())),
        (500.0f64..50_000.0).prop_map(|b| Some(Pacing {
            exposure_budget: Some(b),
            ..Pacing::default()
        })),
        Just(Some(Pacing {
            robust_batch: Some(Duration::from_secs(5)),
            ..Pacing::default()
        })),
        Just(Some(Pacing {
            latency: Some(LatencyPacing {
                batch: Duration::from_secs(3),
                ..LatencyPacing::default()
            }),
            ..Pacing::default()
        })),
        Just(Some(Pacing {
            detectable_ratio: None,
            latency: Some(LatencyPacing {
                batch: Duration::ZERO,
                ..LatencyPacing::default()
            }),
            ..Pacing::default()
        })),
    ]
}

/// The controller as a new process reads it back from its journal.
fn journalled(ctl: Ctl) -> Ctl {
    let (policy, judges, state) = ctl.into_parts();
    let policy: CanaryPolicy =
        serde_json::from_str(&serde_json::to_string(&policy).unwrap()).unwrap();
    let judges: Vec<SequentialCountJudge> =
        serde_json::from_str(&serde_json::to_string(&judges).unwrap()).unwrap();
    let state: ControllerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    Ctl::from_parts(policy, judges, state).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn a_rollout_journalled_after_every_input_decides_as_one_never_interrupted(
        steps in prop::collection::vec(step(), 1..8),
        events in prop::collection::vec(event(), 1..300),
        pacing in pacing(),
        gate in any::<bool>(),
        limits in (prop::option::of(300u64..3_000), prop::option::of(30u64..600)),
        on_inconclusive in prop_oneof![Just(OnInconclusive::Hold), Just(OnInconclusive::Rollback)],
        on_warning in prop_oneof![Just(OnWarning::Hold), Just(OnWarning::Rollback)],
    ) {
        let mut policy = CanaryPolicy::new(steps);
        policy.pacing = pacing;
        policy.promotion = gate.then(|| PromotionGate::new(0.05, 0.05).unwrap());
        policy.max_duration = limits.0.map(Duration::from_secs);
        policy.progress_deadline = limits.1.map(Duration::from_secs);
        policy.on_inconclusive = on_inconclusive;
        policy.on_warning = on_warning;
        prop_assume!(policy.validate().is_ok());
        let judge = SequentialCountJudge::with_mode(
            Metric::ErrorRate,
            serin_canary::sequential::CountMode::PerRequest(
                serin_canary::sequential::CountTestConfig::new(0.1),
            ),
            SeverityBands::new(0.0, 50.0).unwrap(),
        ).unwrap();
        let mut a = Ctl::new(policy.clone(), vec![judge.clone()]).unwrap();
        let mut b = Ctl::new(policy, vec![judge]).unwrap();
        let mut now_s = 0u64;
        let (mut weight, mut before) = (0u8, 0u8);
        for (k, e) in events.into_iter().enumerate() {
            let now = Timestamp::from_millis(now_s * 1000);
            let run = |ctl: &mut Ctl| -> Result<_, String> {
                let d = match &e {
                    Event::Traffic { base_permille, canary_x10, stale } => {
                        let w = second(now_s);
                        let cw = if *stale { before } else { weight };
                        let (br, cr) = (10 * u64::from(100 - cw), 10 * u64::from(cw));
                        let be = br * base_permille / 1000;
                        let ce = cr * base_permille * canary_x10 / 10_000;
                        let bo = counts(Metric::ErrorRate, Track::Stable, w, br, be);
                        let co = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
                        ctl.feed_in_force(&bo, &co, cw, w.end()).map_err(|e| e.to_string())?;
                        ctl.tick(w.end())
                    }
                    Event::Latency { canary_pct } => {
                        let w = second(now_s);
                        let base: Vec<f64> = (1..=40).map(|k| 20.0 + f64::from(k % 13)).collect();
                        let slow: Vec<f64> =
                            base.iter().map(|v| v * (1.0 + *canary_pct as f64 / 100.0)).collect();
                        let bo = latency(Track::Stable, w, &base);
                        let co = latency(Track::Canary, w, &slow);
                        ctl.observe(&bo, &co, w.end()).map_err(|e| e.to_string())?
                    }
                    Event::NoData => {
                        let w = second(now_s);
                        let bo = no_data(Metric::ErrorRate, Track::Stable, w);
                        let co = no_data(Metric::ErrorRate, Track::Canary, w);
                        ctl.observe(&bo, &co, w.end()).map_err(|e| e.to_string())?
                    }
                    Event::Tick(_) => ctl.tick(now),
                    Event::TickHeld => ctl.tick_held(now),
                    Event::Command(c) => ctl.command(*c, now).map_err(|e| e.to_string())?,
                    Event::EndPause => {
                        ctl.end_pause();
                        ctl.tick(now)
                    }
                };
                Ok(d)
            };
            let (da, db) = (run(&mut a), run(&mut b));
            // As their journal reads them: an undefined effect (NaN) is equal to itself there.
            prop_assert_eq!(format!("{da:?}"), format!("{db:?}"), "input {}: {:?}", k, e);
            prop_assert_eq!(format!("{:?}", a.state()), format!("{:?}", b.state()), "input {}: {:?}", k, e);
            b = journalled(b);
            prop_assert_eq!(format!("{:?}", a.state()), format!("{:?}", b.state()), "journalled after input {}: {:?}", k, e);
            match e {
                Event::Traffic { .. } | Event::Latency { .. } | Event::NoData => now_s += 1,
                Event::Tick(s) => now_s = now_s.saturating_add_signed(s),
                _ => {}
            }
            if let Ok(d) = da
                && d.weight != weight
            {
                (before, weight) = (weight, d.weight);
            }
        }
    }
}
