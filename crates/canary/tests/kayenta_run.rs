//! Kayenta's multi-judgement run logic (Spinnaker's canary stage) in the Kayenta judge.

use serin_canary::judge::{Judge, Statistic, Verdict};
use serin_canary::kayenta::{
    Direction, KayentaConfig, KayentaJudge, Quantity, RunConfig, RunStatus, ScoreConfig,
};
use serin_signals::{Metric, Timestamp};

pub(crate) fn judge(run: RunConfig) -> KayentaJudge {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run);
    c.metric_config.direction = Direction::Increase;
    KayentaJudge::new(c).unwrap()
}

/// Per-interval baseline points that vary, and the canary's at `ratio` times them.
pub(crate) fn feed(j: &mut KayentaJudge, from: u32, to: u32, ratio: f64) {
    for i in from..to {
        let b = 0.010 + 0.001 * f64::from(i % 7);
        j.push_points(Some(b), Some(ratio * b));
    }
}

#[test]
fn a_regression_fails_at_the_first_interim_judgement() {
    let mut j = judge(RunConfig::new(60).every(1));
    feed(&mut j, 0, 9, 2.0);
    assert_eq!(j.run_state().status, RunStatus::Running);
    assert!(
        j.run_state().scores.is_empty(),
        "no judgement below minPoints"
    );
    assert_eq!(
        j.judgement(Timestamp::from_millis(0)).verdict,
        Verdict::Inconclusive
    );
    feed(&mut j, 9, 10, 2.0);
    assert_eq!(j.run_state().status, RunStatus::FailedEarly);
    assert_eq!(j.run_state().judged_at, [10]);
    assert_eq!(j.run_state().scores, [0.0]);
    let judgement = j.judgement(Timestamp::from_millis(600_000));
    assert!(judgement.verdict.is_fail());
    assert_eq!(judgement.evidence.statistic, Some(Statistic::Score(0.0)));
    assert!(
        judgement.evidence.summary.contains("marginal"),
        "{}",
        judgement.evidence.summary
    );
    // The run has ended: later points are not taken, and its judgement stands as it was.
    let before = j.judgement(Timestamp::from_millis(0));
    feed(&mut j, 10, 30, 1.0);
    assert_eq!(j.points(), 10);
    assert_eq!(j.run_state().scores.len(), 1);
    assert_eq!(j.judgement(Timestamp::from_millis(0)), before);
}

#[test]
fn a_sliding_window_keeps_only_the_points_it_may_still_judge() {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.lookback_points = Some(20);
    let mut j = KayentaJudge::new(c).unwrap();
    feed(&mut j, 0, 1_000, 1.0);
    assert_eq!(j.points(), 1_000);
    let state: serde_json::Value = serde_json::to_value(&j).unwrap();
    let held = state["baseline"].as_array().map_or(0, Vec::len);
    assert!((20..40).contains(&held), "{held} points held");
    // The window is still the last 20 points: a regression in them fails.
    feed(&mut j, 1_000, 1_020, 2.0);
    assert!(j.judgement(Timestamp::from_millis(0)).verdict.is_fail());
    let back: KayentaJudge = serde_json::from_value(serde_json::to_value(&j).unwrap()).unwrap();
    assert_eq!(back, j);
}

#[test]
fn a_sliding_window_shorter_than_min_points_is_a_config_error() {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.lookback_points = Some(5);
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(
        e.contains("kayentaConfig.lookbackPoints `5`") && e.contains("minPoints (10)"),
        "{e}"
    );
}

#[test]
fn identical_arms_pass_only_at_the_final_judgement() {
    let mut j = judge(RunConfig::new(30).every(5));
    feed(&mut j, 0, 29, 1.0);
    assert_eq!(j.run_state().status, RunStatus::Running);
    assert_eq!(j.run_state().judged_at, [10, 15, 20, 25]);
    assert!(j.run_state().scores.iter().all(|s| *s == 100.0));
    assert_eq!(
        j.judgement(Timestamp::from_millis(0)).verdict,
        Verdict::Inconclusive
    );
    feed(&mut j, 29, 30, 1.0);
    assert_eq!(j.run_state().status, RunStatus::Passed);
    assert_eq!(
        j.judgement(Timestamp::from_millis(0)).verdict,
        Verdict::Pass
    );
}

#[test]
fn spinnakers_default_interval_judges_once_at_the_end() {
    let mut j = judge(RunConfig::new(20));
    feed(&mut j, 0, 19, 3.0);
    assert_eq!(j.run_state().status, RunStatus::Running);
    assert!(j.run_state().scores.is_empty());
    feed(&mut j, 19, 20, 3.0);
    assert_eq!(j.run_state().status, RunStatus::Failed);
    assert_eq!(j.run_state().judged_at, [20]);
}

#[test]
fn an_interim_score_equal_to_the_marginal_threshold_fails_early() {
    // With the marginal threshold at 100 even a perfect interim score is "at or below" it.
    let run = RunConfig {
        thresholds: Some(ScoreConfig {
            marginal: 100.0,
            pass: 100.0,
            ..ScoreConfig::default()
        }),
        ..RunConfig::new(30).every(5)
    };
    let mut j = judge(run);
    feed(&mut j, 0, 10, 1.0);
    assert_eq!(j.run_state().scores, [100.0]);
    assert_eq!(j.run_state().status, RunStatus::FailedEarly);
}

#[test]
fn the_run_survives_serde_and_reset_starts_it_over() {
    let mut j = judge(RunConfig::new(30).every(1));
    feed(&mut j, 0, 12, 1.0);
    let json = serde_json::to_string(&j).unwrap();
    let mut back: KayentaJudge = serde_json::from_str(&json).unwrap();
    assert_eq!(back, j);
    feed(&mut back, 12, 30, 1.0);
    assert_eq!(back.run_state().status, RunStatus::Passed);
    back.reset();
    assert_eq!(back.run_state().status, RunStatus::Running);
    assert!(back.run_state().scores.is_empty());
}

#[test]
fn a_run_shorter_than_min_points_is_a_config_error() {
    let c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(RunConfig::new(5));
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(e.contains("kayentaConfig.run.lifetimePoints"), "{e}");
}

#[test]
fn a_bad_run_threshold_is_named_where_it_is_written() {
    let run = RunConfig {
        thresholds: Some(ScoreConfig {
            pass: 120.0,
            ..ScoreConfig::default()
        }),
        ..RunConfig::new(30)
    };
    let c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run);
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(
        e.contains("kayentaConfig.run.thresholds.pass `120`") && e.contains("[0, 100]"),
        "{e}"
    );
    let json = r#"{"metric":"error_rate","quantity":"errorRate",
        "run":{"lifetimePoints":30,"thresholds":{"pass":60,"marginal":70}}}"#;
    let c: KayentaConfig = serde_json::from_str(json).unwrap();
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(
        e.contains("kayentaConfig.run.thresholds.marginal `70`")
            && e.contains("exceeds kayentaConfig.run.thresholds.pass (60)"),
        "{e}"
    );
}

#[test]
fn an_ended_run_keeps_the_window_it_judged() {
    use serin_canary::judge::{Judge, Sample};
    use serin_signals::{Counts, Measurement, Observation, Track, Window};

    let mut j = judge(RunConfig::new(10));
    let observe = |j: &mut KayentaJudge, minute: u64, errors: u64| {
        let w = Window::new(
            Timestamp::from_millis(minute * 60_000),
            Timestamp::from_millis((minute + 1) * 60_000),
        )
        .unwrap();
        let obs = |track, e| {
            let m = Measurement::Counts(Counts::new(1_000, e).unwrap());
            Observation::new(Metric::ErrorRate, track, w, m)
        };
        let (b, c) = (
            obs(Track::Stable, 10 + minute % 3),
            obs(Track::Canary, errors + minute % 3),
        );
        let s = Sample::new(&b, &c, Some(0.1), w.end()).unwrap();
        j.observe(&s).unwrap()
    };
    for minute in 0..10 {
        observe(&mut j, minute, 40);
    }
    assert_eq!(j.run_state().status, RunStatus::Failed);
    let judged = j.judgement(Timestamp::from_millis(600_000)).evidence.window;
    assert_eq!(
        judged.map(|w| w.end()),
        Some(Timestamp::from_millis(600_000))
    );
    // Later samples are not taken, so the evidence does not claim their time either.
    for minute in 10..20 {
        observe(&mut j, minute, 10);
    }
    assert_eq!(j.points(), 10);
    assert_eq!(
        j.judgement(Timestamp::from_millis(1_200_000))
            .evidence
            .window,
        judged
    );
}

#[test]
fn the_warm_up_is_never_judged() {
    // Ten points of warm-up in which the canary, still starting, errs three times as often;
    // then twenty points as good as the baseline, judged every five.
    let run = RunConfig {
        begin_after_points: 10,
        ..RunConfig::new(30).every(5)
    };
    let mut j = judge(run);
    feed(&mut j, 0, 10, 3.0);
    assert!(j.run_state().scores.is_empty());
    assert_eq!(
        j.judgement(Timestamp::from_millis(0)).verdict,
        Verdict::Inconclusive,
        "no point after the warm-up yet"
    );
    feed(&mut j, 10, 30, 1.0);
    // The window opens after the warm-up: its 10 points are there at 20, not at 15.
    assert_eq!(j.run_state().judged_at, [20, 25, 30]);
    assert_eq!(j.run_state().status, RunStatus::Passed);
    assert_eq!(
        j.judgement(Timestamp::from_millis(0))
            .evidence
            .sample_size
            .canary,
        20
    );
}

#[test]
fn a_run_whose_window_after_the_warm_up_is_shorter_than_min_points_is_a_config_error() {
    let run = RunConfig {
        begin_after_points: 25,
        ..RunConfig::new(30)
    };
    let c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run.clone());
    let e = KayentaJudge::new(c).unwrap_err().to_string();
    assert!(
        e.contains("kayentaConfig.run.lifetimePoints `30`") && e.contains("beginAfterPoints (25)"),
        "{e}"
    );
    // A sliding window reaches back into the warm-up, as Spinnaker's lookback does.
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run);
    c.lookback_points = Some(10);
    assert!(KayentaJudge::new(c).is_ok());
}

#[test]
fn a_saved_run_that_ended_without_a_judgement_is_refused() {
    let mut j = judge(RunConfig::new(30).every(5));
    feed(&mut j, 0, 12, 1.0);
    let state = serde_json::to_value(&j).unwrap();
    let edit = |pointer: &str, v: serde_json::Value| {
        let mut s = state.clone();
        *s.pointer_mut(pointer).expect(pointer) = v;
        serde_json::from_value::<KayentaJudge>(s)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    // Passed with no score would pass the canary on nothing judged.
    let mut fresh = serde_json::to_value(judge(RunConfig::new(30).every(5))).unwrap();
    fresh["runState"]["status"] = serde_json::json!("passed");
    let msg = serde_json::from_value::<KayentaJudge>(fresh)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("kayentaJudge.runState.status") && msg.contains("Passed"),
        "{msg}"
    );
    let msg = edit("/runState/scores/0", serde_json::json!(150.0));
    assert!(
        msg.contains("kayentaJudge.runState.scores") && msg.contains("150"),
        "{msg}"
    );
    let msg = edit("/runState/judgedAt", serde_json::json!([10, 15]));
    assert!(msg.contains("kayentaJudge.runState.judgedAt"), "{msg}");
    let msg = edit("/runState/judgedAt/0", serde_json::json!(40));
    assert!(msg.contains("past the 12 points"), "{msg}");
    // A growing window never drops points.
    let msg = edit("/dropped", serde_json::json!(5));
    assert!(
        msg.contains("kayentaJudge.dropped") && msg.contains("lookbackPoints"),
        "{msg}"
    );
    let back: KayentaJudge = serde_json::from_value(state).unwrap();
    assert_eq!(back, j);
}
