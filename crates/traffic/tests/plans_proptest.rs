//! Properties of plans: for arbitrary strategies and starting splits, every step is a valid
//! split, weights move monotonically toward the target, the plan ends exactly at the target (with
//! the starting sticky sessions, without the starting routes and mirror), and rollback from any
//! step restores the starting weights and sticky sessions exactly without the starting routes and
//! mirror. Also: arbitrary serde input never panics the deserializers.

use std::collections::BTreeSet;
use std::time::Duration;

use proptest::prelude::*;
use serde_json::Value;
use serin_traffic::{
    Error, MatchRoute, Mirror, Next, Pause, Plan, PlanCursor, StickySession, Strategy as Switch,
    TrafficSplit, ValueMatch, Weight, WeightedStep,
};

const NAMES: [&str; 5] = ["stable", "canary", "blue", "green", "shadow-1"];

/// The granularities of the routers plans are built for: one basis point (a mesh), 1% (NGINX),
/// 5% and 100% (a Service-selector switch), in basis points.
const GRANULARITIES: [u16; 4] = [1, 100, 500, 10_000];

/// Weights in basis points for `n` backends adding up to 10 000, each a multiple of `unit` bps,
/// often with zeros and round numbers (the common cases), sometimes odd ones.
fn weights(n: usize, unit: u16) -> impl Strategy<Value = Vec<u16>> {
    let cut = prop_oneof![
        3 => (0u16..=100).prop_map(|p| p * 100),
        1 => Just(0u16),
        1 => Just(10_000u16),
        2 => 0u16..=10_000,
    ];
    proptest::collection::vec(cut, n.saturating_sub(1)).prop_map(move |mut cuts| {
        // Cuts rounded down to the unit stay sorted, so every weight is a multiple of it.
        for c in &mut cuts {
            *c -= *c % unit;
        }
        cuts.sort_unstable();
        let mut out = Vec::with_capacity(cuts.len() + 1);
        let mut last = 0u16;
        for c in cuts {
            out.push(c - last);
            last = c;
        }
        out.push(10_000 - last);
        out
    })
}

/// A starting split (1 to 5 backends, optionally with a route, a mirror and sticky sessions) and
/// the index of the backend to shift to.
fn start() -> impl Strategy<Value = (TrafficSplit, usize)> {
    start_on(1)
}

/// [`start`] with every weight a multiple of `unit` bps.
fn start_on(unit: u16) -> impl Strategy<Value = (TrafficSplit, usize)> {
    (1usize..=5)
        .prop_flat_map(move |n| {
            (
                weights(n, unit),
                0..n,
                any::<bool>(),
                any::<bool>(),
                any::<bool>(),
            )
        })
        .prop_map(|(w, to, route, mirror, sticky)| {
            let mut split = TrafficSplit::new(
                NAMES
                    .iter()
                    .zip(&w)
                    .map(|(name, bps)| (*name, Weight::from_bps(*bps).unwrap())),
            )
            .unwrap();
            if route {
                let r =
                    MatchRoute::header("x-canary", ValueMatch::Exact("always".into()), NAMES[to])
                        .unwrap();
                split = split.with_route(r).unwrap();
            }
            if mirror {
                split = split
                    .with_mirror(Mirror::new("mirror", Weight::from_bps(500).unwrap()).unwrap());
            }
            if sticky {
                split = split
                    .with_sticky(StickySession::new("serin", Duration::from_secs(60)).unwrap());
            }
            (split, to)
        })
}

fn pause() -> impl Strategy<Value = Pause> {
    prop_oneof![
        Just(Pause::None),
        Just(Pause::UntilApproved),
        (0u64..600_000).prop_map(|ms| Pause::Timed(Duration::from_millis(ms))),
    ]
}

fn strategy() -> impl Strategy<Value = Switch> {
    strategy_on(1)
}

/// [`strategy`] with every weight it asks for a multiple of `unit` bps.
fn strategy_on(unit: u16) -> impl Strategy<Value = Switch> {
    let up = move |w: u16| w.div_ceil(unit) * unit;
    let increment = prop_oneof![
        4 => (1u16..=100).prop_map(|p| p * 100),
        2 => 1u16..=10_000,
        1 => Just(1u16),
    ];
    let gradual = (increment, 0u64..3_600_000).prop_map(move |(inc, ms)| {
        Switch::gradual(
            Weight::from_bps(up(inc)).unwrap(),
            Duration::from_millis(ms),
        )
        .unwrap()
    });
    let weighted = proptest::collection::btree_set(1u16..=10_000, 1..8)
        .prop_map(move |ws| ws.into_iter().map(up).collect::<BTreeSet<_>>())
        .prop_flat_map(|ws| {
            let n = ws.len();
            (
                Just(ws),
                proptest::collection::vec((0u64..600_000, pause()), n),
            )
        })
        .prop_map(|(ws, extra)| {
            let steps = ws
                .into_iter()
                .zip(extra)
                .map(|(w, (ms, p))| {
                    WeightedStep::new(Weight::from_bps(w).unwrap(), Duration::from_millis(ms))
                        .with_pause(p)
                })
                .collect();
            Switch::weighted(steps).unwrap()
        });
    prop_oneof![1 => Just(Switch::immediate()), 3 => gradual, 3 => weighted]
}

fn bps(split: &TrafficSplit) -> Vec<u16> {
    split.backends().iter().map(|b| b.weight().bps()).collect()
}

/// Checks what every plan from `from` to backend `to` promises: every step valid (the same
/// backends, weights adding up to exactly 100%) and monotone (the target only rises, strictly
/// after the first step; the others only fall), intermediate steps with the starting routes,
/// mirror and sticky sessions; the target exact, with the starting sticky sessions and nothing
/// else; and a rollback from any step restoring the starting weights and sticky sessions in one
/// step, without the starting routes and mirror.
fn valid_monotone_exact_and_reversible(
    plan: &Plan,
    from: &TrafficSplit,
    to: usize,
) -> Result<(), TestCaseError> {
    prop_assert!(!plan.is_empty());
    prop_assert_eq!(plan.from(), from);

    let names: Vec<_> = from.backends().iter().map(|b| b.name().clone()).collect();
    let mut prev = bps(from);
    for (i, step) in plan.steps().iter().enumerate() {
        let split = step.split();
        // Valid: same backends in the same order, weights adding up to exactly 100%.
        let step_names: Vec<_> = split.backends().iter().map(|b| b.name().clone()).collect();
        prop_assert_eq!(&step_names, &names);
        let now = bps(split);
        prop_assert_eq!(now.iter().map(|&w| u32::from(w)).sum::<u32>(), 10_000);
        // Monotone: the target only rises (strictly after the first step), others only fall.
        for (j, (&p, &n)) in prev.iter().zip(&now).enumerate() {
            if j == to {
                prop_assert!(n >= p, "step {}: target fell {} -> {}", i, p, n);
                if i > 0 {
                    prop_assert!(n > p, "step {}: target stalled at {}", i, n);
                }
            } else {
                prop_assert!(n <= p, "step {}: {} rose {} -> {}", i, names[j], p, n);
            }
        }
        // Intermediate steps keep the starting routes, mirror and sticky sessions.
        if i + 1 < plan.len() {
            prop_assert_eq!(split.routes(), from.routes());
            prop_assert_eq!(split.mirror(), from.mirror());
            prop_assert_eq!(split.sticky(), from.sticky());
        }
        prev = now;
    }

    // Exactly at the target: all weight on `to`, the others listed at 0%, the starting
    // sticky sessions and nothing else.
    let expected = TrafficSplit::new(names.iter().enumerate().map(|(j, n)| {
        (
            n.as_str(),
            if j == to { Weight::FULL } else { Weight::ZERO },
        )
    }))
    .unwrap();
    let expected = match from.sticky() {
        Some(s) => expected.with_sticky(s.clone()),
        None => expected,
    };
    prop_assert_eq!(plan.target(), &expected);

    // Rollback from any step restores the starting weights and sticky sessions exactly, in
    // one step, and drops the starting routes and mirror (the deployment's managed routes).
    let restored = match from.sticky() {
        Some(s) => from.plain().with_sticky(s.clone()),
        None => from.plain(),
    };
    for i in 0..plan.len() {
        let back = plan.rollback_from(i).unwrap();
        prop_assert_eq!(back.len(), 1);
        prop_assert_eq!(back.target(), &restored);
        prop_assert_eq!(back.from(), plan.step(i).unwrap().split());
    }
    let back = plan.rollback();
    prop_assert_eq!(back.target(), &restored);
    prop_assert!(back.target().routes().is_empty() && back.target().mirror().is_none());
    prop_assert!(plan.rollback_from(plan.len()).is_err());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_are_valid_monotone_exact_and_reversible(
        (from, to) in start(),
        strategy in strategy(),
    ) {
        let plan = Plan::shift(&from, NAMES[to], &strategy).unwrap();
        valid_monotone_exact_and_reversible(&plan, &from, to)?;

        // The plan is a value: it survives serialization unchanged.
        let json = serde_json::to_string(&plan).unwrap();
        prop_assert_eq!(&serde_json::from_str::<Plan>(&json).unwrap(), &plan);

        // A cursor walks it to the end, honouring every hold and approval.
        let mut cursor = PlanCursor::new();
        let mut now = 0u64;
        let mut applied = 0usize;
        loop {
            let next = cursor.next(&plan, now).unwrap();
            match next {
                Next::Apply { step } => {
                    prop_assert_eq!(step, applied);
                    cursor.applied(&plan, step, now).unwrap();
                    applied += 1;
                }
                Next::Wait { until_millis } => {
                    prop_assert!(until_millis > now);
                    now = until_millis;
                }
                Next::AwaitApproval { step } => cursor.approve(&plan, step).unwrap(),
                Next::Done => break,
            }
        }
        prop_assert_eq!(applied, plan.len());
        prop_assert_eq!(u128::from(now), plan.total_hold().as_millis());
    }

    /// At a router's granularity (1 bp, 1%, 5%, 100%) a plan is built exactly when the
    /// starting weights and every weight the strategy puts on the target are multiples of it;
    /// then every weight of every step is one, the plan keeps every promise of a plan, and it
    /// has the steps, target weights, holds and approvals of the plan at basis points (no step
    /// dropped or rounded). Otherwise the error names the field and the granularity.
    #[test]
    fn plans_at_a_granularity_stay_on_it_or_name_what_is_off_it(
        (unit, (from, to), strategy) in proptest::sample::select(GRANULARITIES.to_vec())
            .prop_flat_map(|unit| (
                Just(unit),
                prop_oneof![4 => start_on(unit), 1 => start()],
                prop_oneof![4 => strategy_on(unit), 1 => strategy()],
            )),
    ) {
        let granularity = Weight::from_bps(unit).unwrap();
        let target = |split: &TrafficSplit| split.weight_of(NAMES[to]).unwrap().bps();
        let off = |w: &u16| !w.is_multiple_of(unit);
        let at_bps = Plan::shift(&from, NAMES[to], &strategy).unwrap();
        let asked_off = bps(&from).iter().any(off)
            || at_bps.steps().iter().any(|s| off(&target(s.split())));
        match Plan::shift_with_granularity(&from, NAMES[to], &strategy, granularity) {
            Ok(plan) => {
                prop_assert!(!asked_off, "built from a weight off {}: {}", granularity, plan);
                valid_monotone_exact_and_reversible(&plan, &from, to)?;
                prop_assert_eq!(plan.len(), at_bps.len());
                for (i, (step, asked)) in plan.steps().iter().zip(at_bps.steps()).enumerate() {
                    prop_assert!(!bps(step.split()).iter().any(off), "step {}: {}", i, plan);
                    prop_assert_eq!(target(step.split()), target(asked.split()));
                    prop_assert_eq!(
                        (step.hold(), step.await_approval()),
                        (asked.hold(), asked.await_approval())
                    );
                }
                if unit == 1 {
                    prop_assert_eq!(&plan, &at_bps);
                }
            }
            Err(e) => {
                prop_assert!(asked_off, "refused with every weight on {}: {}", granularity, e);
                let message = e.to_string();
                prop_assert!(
                    message.contains(&format!("weight granularity {granularity}")),
                    "{}",
                    message
                );
                let Error::InvalidField { field, .. } = e else {
                    return Err(TestCaseError::fail(format!("not InvalidField: {message}")));
                };
                prop_assert!(
                    field.starts_with("from.backends[")
                        || field.starts_with("strategy.steps[")
                        || field == "strategy.increment",
                    "{}",
                    message
                );
            }
        }
    }

    #[test]
    fn split_constructor_accepts_exactly_the_valid_inputs(
        entries in proptest::collection::vec(
            (prop_oneof![Just("stable".to_owned()), Just("canary".to_owned()), "[a-zA-Z_-]{0,6}"],
             0u16..=10_000),
            0..5,
        )
    ) {
        let result = TrafficSplit::new(
            entries.iter().map(|(n, w)| (n.as_str(), Weight::from_bps(*w).unwrap())),
        );
        let names_ok = entries.iter().all(|(n, _)| serin_traffic::BackendName::new(n).is_ok());
        let unique = entries
            .iter()
            .enumerate()
            .all(|(i, (n, _))| entries[..i].iter().all(|(m, _)| m != n));
        let sum: u32 = entries.iter().map(|(_, w)| u32::from(*w)).sum();
        let valid = !entries.is_empty() && names_ok && unique && sum == 10_000;
        prop_assert_eq!(result.is_ok(), valid, "{:?} -> {:?}", entries, result);
    }
}

/// Arbitrary JSON built from this crate's field names and value shapes, so that deserializers
/// get past the first key often.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("backends"),
        Just("name"),
        Just("weight"),
        Just("routes"),
        Just("header"),
        Just("cookie"),
        Just("exact"),
        Just("prefix"),
        Just("backend"),
        Just("mirror"),
        Just("percent"),
        Just("sticky"),
        Just("ttl"),
        Just("type"),
        Just("increment"),
        Just("interval"),
        Just("steps"),
        Just("duration"),
        Just("pause"),
        Just("timed"),
        Just("from"),
        Just("split"),
        Just("hold"),
        Just("awaitApproval"),
        Just("applied"),
        Just("step"),
        Just("atMillis"),
        Just("approved"),
        Just("plan"),
        Just("bogus"),
    ]
    .prop_map(str::to_owned);
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-200.0f64..200.0).prop_map(Value::from),
        prop_oneof![
            Just("stable"),
            Just("canary"),
            Just("gradual"),
            Just("weighted"),
            Just("immediate"),
            Just("untilApproved"),
            Just("none"),
            Just("30s"),
            Just("1h30m"),
            Just("Bad Name"),
            Just(""),
            Just("x-canary"),
            Just("always"),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            proptest::collection::btree_map(key.clone(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn round_trips<T>(v: &Value)
where
    T: serde::de::DeserializeOwned + serde::Serialize + PartialEq + std::fmt::Debug,
{
    if let Ok(t) = serde_json::from_value::<T>(v.clone()) {
        // What is accepted is valid, so it writes and reads back unchanged.
        let again: T = serde_json::from_value(serde_json::to_value(&t).unwrap()).unwrap();
        assert_eq!(again, t);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn deserializers_never_panic_on_arbitrary_json(v in json()) {
        round_trips::<TrafficSplit>(&v);
        round_trips::<Switch>(&v);
        round_trips::<Plan>(&v);
        round_trips::<PlanCursor>(&v);
        round_trips::<MatchRoute>(&v);
        round_trips::<Mirror>(&v);
        round_trips::<StickySession>(&v);
        round_trips::<Weight>(&v);
        round_trips::<Pause>(&v);
    }

    #[test]
    fn deserializers_never_panic_on_arbitrary_text(s in ".{0,64}") {
        let _ = serde_json::from_str::<TrafficSplit>(&s);
        let _ = serde_json::from_str::<Switch>(&s);
        let _ = serde_json::from_str::<Plan>(&s);
        let _ = serde_json::from_str::<Weight>(&s);
    }
}

/// Replaces the `n`-th leaf (in depth-first order) of `v` with `with`; returns whether it did.
fn replace_leaf(v: &mut Value, n: &mut usize, with: &Value) -> bool {
    match v {
        Value::Array(items) => items.iter_mut().any(|i| replace_leaf(i, n, with)),
        Value::Object(map) => map.values_mut().any(|i| replace_leaf(i, n, with)),
        leaf => {
            if *n == 0 {
                *leaf = with.clone();
                true
            } else {
                *n -= 1;
                false
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Valid plans with one value swapped for an arbitrary one: close to valid input, where
    /// validation has the most to catch. Never a panic; whatever is accepted round-trips.
    #[test]
    fn deserializers_never_panic_on_near_valid_plans(
        (from, to) in start(),
        strategy in strategy(),
        leaf in 0usize..400,
        with in json(),
    ) {
        let plan = Plan::shift(&from, NAMES[to], &strategy).unwrap();
        let mut v = serde_json::to_value(&plan).unwrap();
        let mut n = leaf;
        replace_leaf(&mut v, &mut n, &with);
        round_trips::<Plan>(&v);
        if let Some(split) = v.get("from") {
            round_trips::<TrafficSplit>(split);
        }
        let mut s = serde_json::to_value(&strategy).unwrap();
        let mut n = leaf % 16;
        replace_leaf(&mut s, &mut n, &with);
        round_trips::<Switch>(&s);
    }
}
