//! A Kayenta run read back from a journal must be one its judgements can have left: a status
//! that its scores contradict would end the run on a verdict no judgement made.

use serde_json::{Value, json};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::kayenta::{
    KayentaConfig, KayentaJudge, Quantity, RunConfig, RunStatus, ScoreConfig,
};
use serin_signals::{Metric, Timestamp};

/// A run of 20 points judged every 10, after its first (passing) judgement.
fn running() -> KayentaJudge {
    let config = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)
        .with_run(RunConfig::new(20).every(10));
    let mut j = KayentaJudge::new(config).unwrap();
    for i in 0..10 {
        let b = 0.01 + 0.001 * f64::from(i % 5);
        j.push_points(Some(b), Some(b));
    }
    assert_eq!(j.run_state().status, RunStatus::Running);
    assert_eq!(j.run_state().scores, [100.0]);
    j
}

fn with_run_state(j: &KayentaJudge, status: &str, scores: Value, judged_at: Value) -> Value {
    let mut state = serde_json::to_value(j).unwrap();
    state["runState"] = json!({ "status": status, "scores": scores, "judgedAt": judged_at });
    state
}

fn refused(state: Value) -> String {
    serde_json::from_value::<KayentaJudge>(state)
        .expect_err("a run state its scores contradict is refused")
        .to_string()
}

#[test]
fn an_intact_run_reads_back_and_goes_on() {
    let j = running();
    let back: KayentaJudge = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
    assert_eq!(back, j);
    assert_eq!(
        back.judgement(Timestamp::EPOCH).verdict,
        Verdict::Inconclusive
    );
}

#[test]
fn a_pass_its_last_score_does_not_reach_is_refused() {
    // The run passed, it says, on a final score of 10 (pass threshold 75).
    let msg = refused(with_run_state(
        &running(),
        "passed",
        json!([10.0]),
        json!([10]),
    ));
    assert!(msg.contains("kayentaJudge.runState.status"), "{msg}");
}

#[test]
fn a_pass_before_the_end_of_the_run_is_refused() {
    // Only the final judgement (at point 20) passes a run; this one has seen 10 points.
    let msg = refused(with_run_state(
        &running(),
        "passed",
        json!([100.0]),
        json!([10]),
    ));
    assert!(msg.contains("kayentaJudge.runState.status"), "{msg}");
}

#[test]
fn a_run_still_going_after_a_failing_interim_score_is_refused() {
    // An interim score at or below the marginal threshold ends the run at once.
    let msg = refused(with_run_state(
        &running(),
        "running",
        json!([0.0]),
        json!([10]),
    ));
    assert!(msg.contains("kayentaJudge.runState.status"), "{msg}");
}

/// A run that has seen its final point without a verdict would never end: refused.
#[test]
fn a_run_still_running_past_its_final_point_is_refused() {
    let j = running();
    let mut state = serde_json::to_value(&j).unwrap();
    for arm in ["baseline", "canary"] {
        let points = state[arm].as_array_mut().unwrap();
        points.extend(std::iter::repeat_n(json!(0.01), 15));
    }
    let msg = refused(state);
    assert!(
        msg.contains("kayentaJudge.runState.status") && msg.contains("would never end"),
        "{msg}"
    );
}

/// A sliding window that has dropped points keeps at least its lookback, as a live one does.
#[test]
fn a_sliding_window_holding_less_than_its_lookback_is_refused() {
    let config = KayentaConfig {
        lookback_points: Some(10),
        ..KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)
    }
    .with_run(RunConfig::new(30));
    let mut j = KayentaJudge::new(config).unwrap();
    for _ in 0..25 {
        j.push_points(Some(0.01), Some(0.01));
    }
    let intact: KayentaJudge = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
    assert_eq!(intact, j);
    let mut state = serde_json::to_value(&j).unwrap();
    let kept = state["baseline"].as_array().unwrap().len();
    let cut = kept - 3;
    for arm in ["baseline", "canary"] {
        state[arm].as_array_mut().unwrap().drain(..cut);
    }
    state["dropped"] = json!(state["dropped"].as_u64().unwrap() + cut as u64);
    let msg = refused(state);
    assert!(
        msg.contains("kayentaJudge.baseline") && msg.contains("lookbackPoints"),
        "{msg}"
    );
}

/// A run's thresholds are pass and marginal: group weights belong to a canary config's
/// classifier, and over one metric they would cap a perfect score below pass.
#[test]
fn group_weights_in_a_single_metric_run_are_refused() {
    let mut thresholds = ScoreConfig::default();
    thresholds.group_weights.insert("latency".into(), 30.0);
    let run = RunConfig {
        thresholds: Some(thresholds),
        ..RunConfig::new(20)
    };
    let msg =
        KayentaJudge::new(KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run))
            .unwrap_err()
            .to_string();
    assert!(msg.contains("thresholds.groupWeights.latency"), "{msg}");
}
