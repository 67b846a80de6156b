//! A saved scatter (the diagnostic of how batches scatter against what their values explain)
//! is checked on load wherever a state holds one: rounding noise below 0 is taken as 0, and
//! impossible values are refused with the field's path.

use crate::common;

use common::{Rng, counts, latency, second};
use serde_json::{Value, json};
use serin_canary::controller::{
    CanaryController, CanaryPolicy, ControllerState, LatencyPacing, Pacing, Step,
};
use serin_canary::sequential::{CountTest, CountTestConfig, LatencyTest, LatencyTestConfig};
use serin_signals::{LatencySketch, Metric, Track};

fn sketch(rng: &mut Rng, k: usize, mu: f64) -> LatencySketch {
    let mut s = LatencySketch::new();
    for _ in 0..k {
        s.add((mu + 0.5 * rng.normal()).exp()).unwrap();
    }
    s
}

fn with(mut state: Value, pointer: &str, v: f64) -> Value {
    *state.pointer_mut(pointer).expect(pointer) = json!(v);
    state
}

/// The saved state with `pointer` set to rounding noise reads back; set to -1, it is refused
/// with an error naming `path`.
fn check<T: serde::de::DeserializeOwned + serde::Serialize>(
    state: Value,
    pointer: &str,
    path: &str,
) {
    let noisy: T = serde_json::from_value(with(state.clone(), pointer, -4e-18))
        .unwrap_or_else(|e| panic!("{pointer}: {e}"));
    assert_eq!(
        serde_json::to_value(noisy).unwrap().pointer(pointer),
        Some(&json!(0.0))
    );
    let msg = serde_json::from_value::<T>(with(state, pointer, -1.0))
        .err()
        .unwrap_or_else(|| panic!("{pointer} = -1 was taken"))
        .to_string();
    assert!(msg.contains(path), "{msg}");
}

#[test]
fn a_latency_tests_saved_scatter_is_checked() {
    let mut rng = Rng::new(1);
    let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    for _ in 0..200 {
        t.update(&sketch(&mut rng, 20, 3.0), &sketch(&mut rng, 20, 3.0));
    }
    let state = serde_json::to_value(&t).unwrap();
    check::<LatencyTest>(state, "/scatter/sumSq", "latencyTest.scatter.sumSq");
}

#[test]
fn a_count_tests_saved_scatter_is_checked() {
    let mut rng = Rng::new(2);
    let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    for _ in 0..200 {
        t.update(500, rng.poisson(5.0), 500, rng.poisson(5.0));
    }
    let state = serde_json::to_value(&t).unwrap();
    check::<CountTest>(
        state,
        "/scatter/scatter/sumSq",
        "countTest.scatter.scatter.sumSq",
    );
}

#[test]
fn a_controllers_saved_scatters_are_checked() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(50), Step::SetWeight(60)]);
    policy.pacing = Some(Pacing {
        latency: Some(LatencyPacing::default()),
        robust_batch: Some(std::time::Duration::from_secs(1)),
        ..Pacing::default()
    });
    let judge = || {
        serin_canary::sequential::SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
    };
    let mut ctl = CanaryController::new(policy.clone(), vec![judge()]).unwrap();
    let mut rng = Rng::new(3);
    for s in 0..120 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 500, rng.poisson(10.0));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 500, rng.poisson(10.0));
        ctl.feed(&b, &c, w.end()).unwrap();
        let values = |rng: &mut Rng| -> Vec<f64> {
            (0..20).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect()
        };
        let (b, c) = (
            latency(Track::Stable, w, &values(&mut rng)),
            latency(Track::Canary, w, &values(&mut rng)),
        );
        ctl.feed(&b, &c, w.end()).unwrap();
        let _ = ctl.tick(w.end());
    }
    let state = serde_json::to_value(ctl.state()).unwrap();
    for (pointer, path) in [
        (
            "/stepLatency/scatter/sumSq",
            "state.stepLatency.scatter.sumSq",
        ),
        (
            "/errorBatches/batches/scatter/sumSq",
            "state.errorBatches.batches.scatter.sumSq",
        ),
    ] {
        let restore = |v: f64| {
            let s: ControllerState =
                serde_json::from_value(with(state.clone(), pointer, v)).unwrap();
            CanaryController::from_parts(policy.clone(), vec![judge()], s)
        };
        let noisy = restore(-4e-18).unwrap_or_else(|e| panic!("{pointer}: {e}"));
        let saved = serde_json::to_value(noisy.state()).unwrap();
        assert_eq!(saved.pointer(pointer), Some(&json!(0.0)));
        let Err(e) = restore(-1.0) else {
            panic!("{pointer} = -1 was taken");
        };
        let msg = e.to_string();
        assert!(msg.contains(path), "{msg}");
    }
}

#[test]
fn a_saved_open_batch_expecting_more_canary_errors_than_it_holds_is_refused() {
    let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    // Three errors at an even split: the open batch (closing at 8 expected per arm) holds them.
    t.update(500, 1, 500, 2);
    let state = serde_json::to_value(&t).unwrap();
    let held = ["/scatter/canary", "/scatter/baseline"]
        .iter()
        .map(|p| state.pointer(p).and_then(Value::as_u64).expect(p))
        .sum::<u64>();
    assert!(held > 0, "{state}");
    // As many as it holds is possible (every error at a share of 1); one more is not.
    let at = with(state.clone(), "/scatter/expectedCanary", held as f64);
    assert!(serde_json::from_value::<CountTest>(at).is_ok());
    let over = with(state, "/scatter/expectedCanary", held as f64 + 1.0);
    let msg = serde_json::from_value::<CountTest>(over)
        .expect_err("an impossible open batch was taken")
        .to_string();
    assert!(
        msg.contains("countTest.scatter.expectedCanary")
            && msg.contains(&format!("{}", held + 1))
            && msg.contains("at most"),
        "{msg}"
    );
}
