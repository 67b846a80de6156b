//! A Kayenta judge read back from a journal: a damaged state is refused on load, never a panic
//! later.

use serin_canary::kayenta::{KayentaConfig, KayentaJudge, Quantity};
use serin_signals::Metric;

fn saved_with_lookback() -> serde_json::Value {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.lookback_points = Some(20);
    let mut j = KayentaJudge::new(c).unwrap();
    for i in 0..30 {
        let b = 0.01 + 0.001 * f64::from(i % 7);
        j.push_points(Some(b), Some(b));
    }
    serde_json::to_value(&j).unwrap()
}

#[test]
fn arms_of_different_lengths_are_refused_on_load() {
    let mut state = saved_with_lookback();
    state["canary"] = serde_json::json!([0.01]);
    let err = serde_json::from_value::<KayentaJudge>(state)
        .expect_err("a state whose arms differ in length is refused")
        .to_string();
    assert!(
        err.contains("kayentaJudge.canary") && err.contains("1 points"),
        "{err}"
    );
    // Loaded, such a state would panic when the sliding window is trimmed at the next point.
    // An intact state loads and keeps working.
    let mut back: KayentaJudge = serde_json::from_value(saved_with_lookback()).unwrap();
    for _ in 0..30 {
        back.push_points(Some(0.01), None);
    }
    assert_eq!(back.points(), 60);
}
