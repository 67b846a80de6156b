//! A judge or a controller restored from a journal whose record was edited or damaged is either
//! refused with an error or keeps working: whatever one field holds, it neither panics nor hangs.
//! Extreme counts, times and durations fed through the public API are taken the same way.

use crate::common;

use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use common::{Rng, counts, latency, second};
use proptest::prelude::*;
use serde_json::{Value, json};
use serin_canary::controller::{
    AnalysisStep, CanaryController, CanaryPolicy, Command, ControllerState, LatencyPacing, Pacing,
    Pause, PromotionGate, Step,
};
use serin_canary::judge::{Judge, Sample};
use serin_canary::kayenta::{KayentaConfig, KayentaJudge, Quantity};
use serin_canary::sequential::{
    BatchCountConfig, CountMode, CountTestConfig, LatencyTestConfig, LatencyVariance,
    SequentialCountJudge, SequentialJudge, SequentialLatencyJudge, Sides,
};
use serin_canary::severity::SeverityBands;
use serin_canary::threshold::{ArgoConfig, ArgoJudge, FlaggerConfig, FlaggerJudge, Range};
use serin_signals::{LatencySketch, Measurement, Metric, Observation, Timestamp, Track, Window};

/// Every kind of state a journal holds for the canary.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Count,
    TwoSidedCount,
    BatchedCount,
    Latency,
    LatencyBetweenBatches,
    Kayenta,
    Argo,
    Flagger,
    Controller,
    /// A controller with both of pacing's gates, the errors' in robust mode.
    PacedController,
}

const KINDS: [Kind; 10] = [
    Kind::Count,
    Kind::TwoSidedCount,
    Kind::BatchedCount,
    Kind::Latency,
    Kind::LatencyBetweenBatches,
    Kind::Kayenta,
    Kind::Argo,
    Kind::Flagger,
    Kind::Controller,
    Kind::PacedController,
];

fn count_judge(kind: Kind) -> SequentialCountJudge {
    let mode = match kind {
        Kind::TwoSidedCount => CountMode::PerRequest(
            CountTestConfig::new(0.05)
                .with_margin(0.1)
                .with_sides(Sides::TwoSided),
        ),
        Kind::BatchedCount => CountMode::Batched(BatchCountConfig {
            min_samples: 5,
            min_expected_errors: 1.0,
            ..BatchCountConfig::new(0.05)
        }),
        _ => CountMode::PerRequest(CountTestConfig::new(0.05)),
    };
    SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default()).unwrap()
}

fn latency_judge(variance: LatencyVariance) -> SequentialLatencyJudge {
    let config = LatencyTestConfig {
        variance,
        min_samples: 5,
        ..LatencyTestConfig::new(0.05)
    };
    SequentialLatencyJudge::with_config(Metric::Latency, config, SeverityBands::default()).unwrap()
}

fn kayenta() -> KayentaJudge {
    KayentaJudge::new(KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)).unwrap()
}

fn argo() -> ArgoJudge {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.failure_condition = Some(Range::at_least(0.02).into());
    ArgoJudge::new(c).unwrap()
}

fn flagger() -> FlaggerJudge {
    let c = FlaggerConfig::new(Metric::ErrorRate, Quantity::ErrorRate, Range::at_most(0.02));
    FlaggerJudge::new(c).unwrap()
}

fn controller() -> CanaryController<SequentialCountJudge> {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(3_600),
            min_samples: 30,
        }),
        Step::SetWeight(50),
    ]);
    CanaryController::new(policy, vec![count_judge(Kind::Count)]).unwrap()
}

/// A 10%-then-50% policy paced by errors (in robust mode, 30-s batches) and latency.
fn paced_controller() -> CanaryController<SequentialCountJudge> {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::SetWeight(50)]);
    policy.pacing = Some(Pacing {
        latency: Some(LatencyPacing::default()),
        robust_batch: Some(Duration::from_secs(30)),
        ..Pacing::default()
    });
    CanaryController::new(policy, vec![count_judge(Kind::Count)]).unwrap()
}

/// Seconds `from..from + n` of errors, the canary's rate a little above the baseline's.
fn feed_counts(judge: &mut dyn Judge, rng: &mut Rng, from: u64, n: u64) {
    for s in from..from + n {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 450, rng.poisson(2.0));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 50, rng.poisson(0.4));
        let _ = judge.observe(&Sample::new(&b, &c, Some(0.1), w.end()).unwrap());
    }
}

/// Seconds `from..from + n` of log-normal latencies, the canary's 10% slower.
fn feed_latency(judge: &mut dyn Judge, rng: &mut Rng, from: u64, n: u64) {
    for s in from..from + n {
        let w = second(s);
        let mut values = |k: usize, mu: f64| -> Vec<f64> {
            (0..k).map(|_| (mu + 0.5 * rng.normal()).exp()).collect()
        };
        let b = latency(Track::Stable, w, &values(20, 3.0));
        let c = latency(Track::Canary, w, &values(5, 3.1));
        let _ = judge.observe(&Sample::new(&b, &c, Some(0.2), w.end()).unwrap());
    }
}

fn feed_controller(ctl: &mut CanaryController<SequentialCountJudge>, rng: &mut Rng, from: u64) {
    for s in from..from + 60 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 450, rng.poisson(2.0));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 50, rng.poisson(0.4));
        let _ = ctl.observe(&b, &c, w.end());
        let _ = ctl.tick(w.end());
    }
}

/// Seconds `from..from + n` of errors and latencies for a paced controller: each second's
/// metrics fed, then one decision.
fn feed_paced(ctl: &mut CanaryController<SequentialCountJudge>, rng: &mut Rng, from: u64, n: u64) {
    for s in from..from + n {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 450, rng.poisson(2.0));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 50, rng.poisson(0.4));
        let _ = ctl.feed(&b, &c, w.end());
        let mut values =
            |k: usize| -> Vec<f64> { (0..k).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect() };
        let (b, c) = (
            latency(Track::Stable, w, &values(18)),
            latency(Track::Canary, w, &values(2)),
        );
        let _ = ctl.feed(&b, &c, w.end());
        let _ = ctl.tick(w.end());
    }
}

/// The kind's state after a few minutes of data, serialized.
fn saved(kind: Kind) -> Value {
    fn fed<J: Judge + serde::Serialize>(mut judge: J, seconds: u64) -> Value {
        feed_counts(&mut judge, &mut Rng::new(7), 0, seconds);
        serde_json::to_value(&judge).unwrap()
    }
    match kind {
        Kind::Count | Kind::TwoSidedCount | Kind::BatchedCount => fed(count_judge(kind), 300),
        Kind::Latency | Kind::LatencyBetweenBatches => {
            let variance = match kind {
                Kind::Latency => LatencyVariance::WithinBatch,
                _ => LatencyVariance::BetweenBatches,
            };
            let mut judge = latency_judge(variance);
            feed_latency(&mut judge, &mut Rng::new(7), 0, 60);
            serde_json::to_value(&judge).unwrap()
        }
        Kind::Kayenta => fed(kayenta(), 30),
        Kind::Argo => fed(argo(), 120),
        Kind::Flagger => fed(flagger(), 120),
        Kind::Controller => {
            let mut ctl = controller();
            let _ = ctl.tick(Timestamp::from_millis(0));
            feed_controller(&mut ctl, &mut Rng::new(7), 0);
            let (_, judges, state) = ctl.into_parts();
            json!({ "judges": judges, "state": state })
        }
        Kind::PacedController => {
            let mut ctl = paced_controller();
            let _ = ctl.tick(Timestamp::from_millis(0));
            // Long enough for closed batches of both gates and an open one of each.
            feed_paced(&mut ctl, &mut Rng::new(7), 0, 100);
            let (_, judges, state) = ctl.into_parts();
            json!({ "judges": judges, "state": state })
        }
    }
}

/// Restores `state` as `kind` and feeds it more data; `Ok(false)` when the state is refused.
fn restore_and_feed(kind: Kind, state: Value, seed: u64) -> serde_json::Result<bool> {
    fn fed<J: Judge + serde::de::DeserializeOwned>(
        state: Value,
        rng: &mut Rng,
        from: u64,
        seconds: u64,
    ) -> serde_json::Result<bool> {
        let mut judge: J = serde_json::from_value(state)?;
        feed_counts(&mut judge, rng, from, seconds);
        let _ = judge.judgement(Timestamp::from_millis(400_000));
        Ok(true)
    }
    let rng = &mut Rng::new(seed);
    match kind {
        Kind::Count | Kind::TwoSidedCount | Kind::BatchedCount => {
            fed::<SequentialCountJudge>(state, rng, 300, 100)
        }
        Kind::Latency | Kind::LatencyBetweenBatches => {
            let mut judge: SequentialLatencyJudge = serde_json::from_value(state)?;
            feed_latency(&mut judge, rng, 60, 30);
            let _ = judge.judgement(Timestamp::from_millis(400_000));
            Ok(true)
        }
        Kind::Kayenta => fed::<KayentaJudge>(state, rng, 30, 15),
        Kind::Argo => fed::<ArgoJudge>(state, rng, 120, 60),
        Kind::Flagger => fed::<FlaggerJudge>(state, rng, 120, 60),
        Kind::Controller | Kind::PacedController => {
            let paced = matches!(kind, Kind::PacedController);
            let judges: Vec<SequentialCountJudge> =
                serde_json::from_value(state["judges"].clone())?;
            let saved: ControllerState = serde_json::from_value(state["state"].clone())?;
            let fresh = if paced {
                paced_controller()
            } else {
                controller()
            };
            let Ok(mut ctl) = CanaryController::from_parts(fresh.policy().clone(), judges, saved)
            else {
                return Ok(false);
            };
            if paced {
                feed_paced(&mut ctl, rng, 100, 60);
            } else {
                feed_controller(&mut ctl, rng, 60);
            }
            Ok(true)
        }
    }
}

/// The JSON pointers of every value and array in `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    match v {
        Value::Array(items) => {
            out.push(at.clone());
            for (i, x) in items.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        Value::Object(fields) => {
            for (k, x) in fields {
                let step = k.replace('~', "~0").replace('/', "~1");
                pointers(x, format!("{at}/{step}"), out);
            }
        }
        _ => out.push(at),
    }
}

/// Each kind's saved state and its pointers, computed once.
fn states() -> &'static [(Kind, Value, Vec<String>)] {
    static STATES: OnceLock<Vec<(Kind, Value, Vec<String>)>> = OnceLock::new();
    STATES.get_or_init(|| {
        KINDS
            .iter()
            .map(|&k| {
                let v = saved(k);
                let mut ps = Vec::new();
                pointers(&v, String::new(), &mut ps);
                (k, v, ps)
            })
            .collect()
    })
}

/// Whether `pointer` passes through an array entry after the second.
fn beyond_second_entry(pointer: &str) -> bool {
    pointer
        .split('/')
        .any(|step| step.parse::<usize>().is_ok_and(|i| i >= 2))
}

/// What a damaged or hand-edited field may hold.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!(0)),
        Just(json!(1)),
        Just(json!(-1)),
        Just(json!(u64::MAX)),
        Just(json!(u64::MAX - 1)),
        Just(json!(i64::MIN)),
        Just(json!(1e308)),
        Just(json!(-1e308)),
        Just(json!(0.5)),
        Just(json!(-0.5)),
        Just(json!(1e-300)),
        Just(json!(null)),
        Just(json!([])),
        Just(json!(true)),
        Just(json!("x")),
    ]
}

/// Runs `f` on its own thread; a panic or more than `limit` is the error.
fn within<F: FnOnce() -> R + Send + 'static, R: Send + 'static>(
    limit: Duration,
    f: F,
) -> Result<R, String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => Ok(r),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("it panicked".into()),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("it ran for more than {limit:?}")),
    }
}

/// Restores `state` with `value` at `pointer` on its own thread: refused or working within 20 s.
fn check_edit(
    kind: Kind,
    state: &Value,
    pointer: &str,
    value: &Value,
    seed: u64,
) -> Result<(), String> {
    let mut edited = state.clone();
    *edited.pointer_mut(pointer).unwrap() = value.clone();
    within(Duration::from_secs(20), move || {
        let _ = restore_and_feed(kind, edited, seed);
    })
    .map_err(|e| format!("{kind:?} with {pointer} = {value}: {e}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn an_edited_state_is_refused_or_keeps_working(
        kind in any::<prop::sample::Index>(),
        field in any::<prop::sample::Index>(),
        value in odd_value(),
        seed in any::<u64>(),
    ) {
        let (kind, state, pointers) = kind.get(states());
        let outcome = check_edit(*kind, state, field.get::<String>(pointers), &value, seed);
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

#[test]
fn every_field_at_its_extremes_is_refused_or_works() {
    let extremes = [json!(u64::MAX), json!(-1), json!(1e308), json!(null)];
    for (kind, state, pointers) in states() {
        // Every field; of the arrays (points, bins), the array and its first two entries.
        for pointer in pointers.iter().filter(|p| !beyond_second_entry(p)) {
            for value in &extremes {
                check_edit(*kind, state, pointer, value, 3).unwrap();
            }
        }
    }
}

#[test]
fn the_saved_states_restore_and_keep_working() {
    for (kind, state, _) in states() {
        let restored = restore_and_feed(*kind, state.clone(), 1);
        assert!(matches!(restored, Ok(true)), "{kind:?}: {restored:?}");
    }
}

#[test]
fn extreme_counts_are_taken_without_a_panic() {
    let extremes = [0, 1, u64::MAX / 2, u64::MAX - 1, u64::MAX];
    let mut judges: Vec<Box<dyn Judge>> = vec![
        Box::new(count_judge(Kind::Count)),
        Box::new(count_judge(Kind::TwoSidedCount)),
        Box::new(count_judge(Kind::BatchedCount)),
        Box::new(kayenta()),
        Box::new(argo()),
        Box::new(flagger()),
    ];
    for judge in &mut judges {
        let mut s = 0;
        for &br in &extremes {
            for &cr in &extremes {
                for (be, ce) in [(br, cr), (br / 2, cr), (0, cr), (br, 0)] {
                    let w = second(s);
                    s += 1;
                    let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
                    let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
                    for share in [None, Some(0.5)] {
                        let j = judge.observe(&Sample::new(&b, &c, share, w.end()).unwrap());
                        assert!(
                            j.is_ok(),
                            "{} at {br}/{be} and {cr}/{ce}: {j:?}",
                            judge.name()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn sketches_at_their_limit_are_taken_without_a_panic() {
    let full = |track, w, v: f64| {
        let mut s = LatencySketch::new();
        s.add_n(v, LatencySketch::MAX_VALUES).unwrap();
        Observation::new(Metric::Latency, track, w, Measurement::Latency(s))
    };
    for variance in [
        LatencyVariance::WithinBatch,
        LatencyVariance::BetweenBatches,
    ] {
        let mut judge = latency_judge(variance);
        for s in 0..40 {
            let w = second(s);
            let b = full(Track::Stable, w, 10.0);
            let c = full(Track::Canary, w, 12.0 + s as f64);
            let j = judge.observe(&Sample::new(&b, &c, Some(0.5), w.end()).unwrap());
            assert!(j.is_ok(), "{variance:?} at second {s}: {j:?}");
        }
    }
}

/// A count, a time in milliseconds or a window length, often at an end of its range.
fn extreme() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0),
        Just(u64::MAX),
        Just(u64::MAX - 1),
        Just(1 << 53),
        0u64..1_000,
        any::<u64>(),
    ]
}

fn extreme_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::ZERO),
        Just(Duration::MAX),
        Just(Duration::from_millis(u64::MAX)),
        (0u64..100_000).prop_map(Duration::from_millis),
    ]
}

fn extreme_step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0u8..=100).prop_map(Step::SetWeight),
        prop::option::of(extreme_duration()).prop_map(|duration| Step::Pause(Pause { duration })),
        (extreme_duration(), extreme()).prop_map(|(duration, min_samples)| {
            Step::Analysis(AnalysisStep {
                duration,
                min_samples,
            })
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A controller with pacing, a promotion gate, deadlines and one judge of each sequential
    /// kind takes any counts, latencies, times, window lengths, commands and step durations
    /// without a panic, and its state always survives a journal and restores.
    #[test]
    fn a_controller_takes_extreme_inputs_without_a_panic(
        steps in prop::collection::vec(extreme_step(), 1..6),
        max_duration in prop::option::of(extreme_duration()),
        progress_deadline in prop::option::of(extreme_duration()),
        inputs in prop::collection::vec(
            (0u8..6, extreme(), extreme(), extreme(), extreme(), extreme()),
            1..80,
        ),
    ) {
        let mut policy = CanaryPolicy::new(steps);
        policy.max_duration = max_duration;
        policy.progress_deadline = progress_deadline;
        policy.pacing = Some(Pacing::default());
        policy.promotion = Some(PromotionGate::new(0.05, 0.05).unwrap());
        prop_assume!(policy.validate().is_ok());
        let judges: Vec<SequentialJudge> = vec![
            count_judge(Kind::Count).into(),
            count_judge(Kind::TwoSidedCount).into(),
            count_judge(Kind::BatchedCount).into(),
            latency_judge(LatencyVariance::WithinBatch).into(),
            latency_judge(LatencyVariance::BetweenBatches).into(),
        ];
        let mut ctl = CanaryController::new(policy, judges).unwrap();
        for (input, at, length, a, b, c) in inputs {
            let now = Timestamp::from_millis(at);
            let w = Window::ending_at(now, Duration::from_millis(length));
            let sketch = |v: u64, n: u64| {
                let mut s = LatencySketch::new();
                // Past `LatencySketch::MAX_VALUES` the sketch refuses and stays as it was.
                let _ = s.add_n((v % 100_000) as f64 / 7.0, n);
                Measurement::Latency(s)
            };
            let decision = match input {
                0 | 1 => {
                    let base = counts(Metric::ErrorRate, Track::Stable, w, a.max(b), a.min(b));
                    let canary = counts(Metric::ErrorRate, Track::Canary, w, a.max(c), a.min(c));
                    ctl.observe(&base, &canary, now).ok()
                }
                2 => {
                    let base = Observation::new(Metric::Latency, Track::Stable, w, sketch(a, b));
                    let canary = Observation::new(Metric::Latency, Track::Canary, w, sketch(c, b ^ a));
                    ctl.observe(&base, &canary, now).ok()
                }
                3 => Some(ctl.tick(now)),
                4 => ctl.command(Command::Resume, now).ok(),
                _ => ctl.command(Command::Promote, now).ok(),
            };
            if let Some(d) = decision {
                prop_assert!(!d.reason.is_empty());
                serde_json::to_string(&d.evidence).unwrap();
            }
            let saved = serde_json::to_string(ctl.state()).unwrap();
            let saved: ControllerState = serde_json::from_str(&saved).unwrap();
            // The controller never writes a state it would refuse to restore, whatever the clock.
            let restored =
                CanaryController::from_parts(ctl.policy().clone(), ctl.judges().to_vec(), saved);
            prop_assert!(restored.is_ok(), "{:?}", restored.err());
        }
    }
}

#[test]
fn a_journalled_judge_with_a_setting_its_constructor_refuses_is_refused() {
    // A setting no constructor takes, and a field no judge has.
    let bad_settings: [(&str, Value); 5] = [
        ("/alpha", json!(0.0)),
        ("/minExpectedErrors", json!(0.0)),
        ("/minPoints", json!(0)),
        ("/failureLimit", json!(-5)),
        ("/quantity", json!({"latencyQuantile": 1.5})),
    ];
    for (kind, state, pointers) in states() {
        if matches!(kind, Kind::Controller | Kind::PacedController) {
            continue;
        }
        let mut refused = 0;
        for p in pointers {
            for (end, value) in &bad_settings {
                if p.contains("/config/") && p.ends_with(end) {
                    let mut edited = state.clone();
                    *edited.pointer_mut(p).unwrap() = value.clone();
                    assert!(
                        restore_and_feed(*kind, edited, 1).is_err(),
                        "{kind:?}: {p} = {value} was taken"
                    );
                    refused += 1;
                }
            }
        }
        assert!(refused > 0, "{kind:?}: no setting edited");
        let mut extra = state.clone();
        extra["unknownField"] = json!(1);
        assert!(
            restore_and_feed(*kind, extra, 1).is_err(),
            "{kind:?}: an unknown field was taken"
        );
    }
}
