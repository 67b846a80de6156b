//! The canary controller under an operator's hand: a hold of the caller's does not use up a
//! step's progress deadline, a command that contradicts a finished rollout is refused, and a
//! journalled state whose pacing evidence no rollout could gather is refused on load.

use crate::common;

use std::time::Duration;

use common::{Rng, counts, latency, second};
use serde_json::json;
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Command, ControllerState, LatencyPacing,
    Pacing, Phase, Step,
};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn judge() -> SequentialCountJudge {
    SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

/// Feeds second `s` of a healthy canary at 10%: both arms at 0.5% errors.
fn feed_healthy(ctl: &mut Ctl, rng: &mut Rng, s: u64) {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, rng.poisson(4.5));
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, rng.poisson(0.5));
    ctl.feed(&b, &c, w.end()).unwrap();
}

/// `[10%, analysis 60 s needing more samples than it gets, 50%]` with a 300 s progress deadline:
/// the analysis ends inconclusive at 60 s and holds, and its deadline ends at 360 s.
fn held_policy() -> CanaryPolicy {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(60),
            min_samples: 100_000,
        }),
        Step::SetWeight(50),
    ]);
    policy.progress_deadline = Some(Duration::from_secs(300));
    policy
}

#[test]
fn an_operator_s_hold_longer_than_the_progress_deadline_does_not_roll_back_on_resume() {
    let mut ctl = Ctl::new(held_policy(), vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(11);
    for s in 0..30 {
        feed_healthy(&mut ctl, &mut rng, s);
        assert_eq!(ctl.tick(at(s + 1)).action, Action::Hold);
    }
    // An operator holds the rollout for an hour, far past the step's progress deadline.
    for s in 30..3_630 {
        feed_healthy(&mut ctl, &mut rng, s);
        assert_eq!(ctl.tick_held(at(s + 1)).action, Action::Hold, "second {s}");
    }
    // The hold survives a journal.
    let (policy, judges, state) = ctl.into_parts();
    let state: ControllerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut ctl = Ctl::from_parts(policy, judges, state).unwrap();
    // On resuming, the step has its deadline afresh: it holds, and rolls back only once a
    // whole deadline has passed without progress after the hold.
    let d = ctl.tick(at(3_631));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert_eq!(ctl.tick(at(3_630 + 300)).action, Action::Hold);
    let d = ctl.tick(at(3_630 + 301));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("progress deadline"), "{}", d.reason);
}

/// [`held_policy`] with a 1,800 s `maxDuration`, started at 0.
fn started_with_a_maximum_duration() -> Ctl {
    let mut policy = held_policy();
    policy.max_duration = Some(Duration::from_secs(1_800));
    let mut ctl = Ctl::new(policy, vec![judge()]).unwrap();
    ctl.tick(at(0));
    ctl
}

/// [`started_with_a_maximum_duration`], held by the caller up to its maximum duration.
fn held_to_the_maximum_duration() -> Ctl {
    let mut ctl = started_with_a_maximum_duration();
    for s in 1..=1_800 {
        assert_eq!(ctl.tick_held(at(s)).action, Action::Hold);
    }
    ctl
}

#[test]
fn a_hold_never_extends_the_maximum_duration() {
    let mut ctl = held_to_the_maximum_duration();
    // Past it, the canary is rolled back while the caller still holds it.
    let d = ctl.tick_held(at(1_801));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("maximum duration"), "{}", d.reason);
    assert_eq!(ctl.state().phase(), Phase::RolledBack);
}

#[test]
fn a_promotion_past_the_maximum_duration_is_refused_and_the_rollout_rolls_back() {
    let mut ctl = held_to_the_maximum_duration();
    // An operator promotes after the deadline ran out but before the next tick decided it:
    // refused, naming the command and why, and nothing changes.
    let before = serde_json::to_value(ctl.state()).unwrap();
    let e = ctl
        .command(Command::Promote, at(1_801))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("command") && e.contains("promote") && e.contains("maximum duration"),
        "{e}"
    );
    assert_eq!(serde_json::to_value(ctl.state()).unwrap(), before);
    // The next decision is the rollback the deadline asks for.
    let d = ctl.tick(at(1_801));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("maximum duration"), "{}", d.reason);
    // Within the deadline the same promotion is carried out (held up to it, so the step's
    // progress deadline has not run out either).
    let mut ctl = held_to_the_maximum_duration();
    let d = ctl.command(Command::Promote, at(1_800)).unwrap();
    assert_eq!(d.action, Action::Promote);
}

/// [`held_policy`], started at 0 and ticked each second while it holds on its inconclusive
/// analysis; with the second whose tick rolls it back for the progress deadline.
fn held_to_the_progress_deadline() -> (Ctl, u64) {
    let mut ctl = Ctl::new(held_policy(), vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(7);
    for s in 1..1_000 {
        feed_healthy(&mut ctl, &mut rng, s - 1);
        let mut ahead = ctl.clone();
        let d = ahead.tick(at(s));
        if d.action == Action::Rollback {
            assert!(d.reason.contains("progress deadline"), "{}", d.reason);
            return (ctl, s);
        }
        assert_eq!(ctl.tick(at(s)).action, Action::Hold, "second {s}");
    }
    panic!("the progress deadline never rolled the rollout back");
}

#[test]
fn a_promotion_past_the_progress_deadline_is_refused_and_the_rollout_rolls_back() {
    let (mut ctl, due) = held_to_the_progress_deadline();
    // An operator promotes after the step's deadline ran out but before the next tick decided
    // it: refused, naming the command and why, and nothing changes.
    let mut in_time = ctl.clone();
    let before = serde_json::to_value(ctl.state()).unwrap();
    let e = ctl
        .command(Command::Promote, at(due))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("command") && e.contains("promote") && e.contains("progress deadline"),
        "{e}"
    );
    assert_eq!(serde_json::to_value(ctl.state()).unwrap(), before);
    // The next decision is the rollback the deadline asks for.
    let d = ctl.tick(at(due));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("progress deadline"), "{}", d.reason);
    // Within the deadline the same promotion is carried out.
    let d = in_time.command(Command::Promote, at(due - 1)).unwrap();
    assert_eq!(d.action, Action::Promote);
}

#[test]
fn a_command_that_contradicts_a_finished_rollout_is_refused() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::SetWeight(50)]);
    // Promoted: an abort is refused, naming the command and why; a promote or resume repeats.
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    assert_eq!(
        ctl.command(Command::Promote, at(1)).unwrap().action,
        Action::Promote
    );
    let before = serde_json::to_value(ctl.state()).unwrap();
    let e = ctl.command(Command::Abort, at(2)).unwrap_err().to_string();
    assert!(
        e.contains("command") && e.contains("abort") && e.contains("promoted"),
        "{e}"
    );
    assert_eq!(serde_json::to_value(ctl.state()).unwrap(), before);
    assert_eq!(ctl.state().phase(), Phase::Promoted);
    for command in [Command::Promote, Command::Resume] {
        assert_eq!(ctl.command(command, at(3)).unwrap().action, Action::Promote);
    }

    // Rolled back: a promotion is refused; an abort or resume repeats.
    let mut ctl = Ctl::new(policy, vec![judge()]).unwrap();
    ctl.tick(at(0));
    assert_eq!(
        ctl.command(Command::Abort, at(1)).unwrap().action,
        Action::Rollback
    );
    let e = ctl
        .command(Command::Promote, at(2))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("command") && e.contains("promote") && e.contains("rolled back"),
        "{e}"
    );
    assert_eq!(ctl.state().phase(), Phase::RolledBack);
    for command in [Command::Abort, Command::Resume] {
        assert_eq!(
            ctl.command(command, at(3)).unwrap().action,
            Action::Rollback
        );
    }
}

/// A rollout paced by both gates, fed long enough for the latency gate to hold spreads, batches
/// and an open batch, with its state as JSON.
fn paced_state() -> (CanaryPolicy, serde_json::Value) {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::SetWeight(50)]);
    policy.pacing = Some(Pacing {
        latency: Some(LatencyPacing {
            batch: Duration::from_secs(5),
            ..LatencyPacing::default()
        }),
        ..Pacing::default()
    });
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    let mut rng = Rng::new(2);
    for s in 0..62 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, rng.poisson(9.0));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, rng.poisson(1.0));
        ctl.feed(&b, &c, w.end()).unwrap();
        let values = |rng: &mut Rng, n: usize| -> Vec<f64> {
            (0..n).map(|_| 20.0 * (0.4 * rng.normal()).exp()).collect()
        };
        let b = latency(Track::Stable, w, &values(&mut rng, 90));
        let c = latency(Track::Canary, w, &values(&mut rng, 10));
        ctl.feed(&b, &c, w.end()).unwrap();
        ctl.tick(w.end());
    }
    (policy, serde_json::to_value(ctl.state()).unwrap())
}

#[test]
fn a_state_with_a_per_judge_list_of_another_length_names_that_list() {
    let (policy, saved) = paced_state();
    for (key, field) in [
        ("judgements", "state.judgements"),
        ("stepSamples", "state.stepSamples"),
        ("totalSamples", "state.totalSamples"),
        ("weightSamples", "state.weightSamples"),
    ] {
        let mut state = saved.clone();
        let list = state[key].as_array_mut().unwrap();
        assert_eq!(list.len(), 1, "{key}");
        list.push(list[0].clone());
        let state: ControllerState = serde_json::from_value(state).unwrap();
        let e = Ctl::from_parts(policy.clone(), vec![judge()], state)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(field) && e.contains("2 entries") && e.contains("controller has 1"),
            "{key}: {e}"
        );
    }
}

#[test]
fn a_state_whose_pacing_evidence_no_rollout_gathers_is_refused_naming_the_field() {
    let (policy, saved) = paced_state();
    let restore = |state: serde_json::Value| {
        let state: ControllerState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        Ctl::from_parts(policy.clone(), vec![judge()], state).map_err(|e| e.to_string())
    };
    assert!(restore(saved.clone()).is_ok());
    let latency = &saved["stepLatency"];
    assert!(latency["open"].is_object(), "{latency}");
    for (pointer, field, value) in [
        (
            "/stepLatency/precision",
            "state.stepLatency.precision",
            -1.0,
        ),
        (
            "/stepLatency/baseline/sumSqDev",
            "state.stepLatency.baseline.sumSqDev",
            -1e300,
        ),
        (
            "/stepLatency/canary/sumSqDev",
            "state.stepLatency.canary.sumSqDev",
            -1.0,
        ),
        (
            "/stepLatency/open/baseline/m2",
            "state.stepLatency.open.baseline.m2",
            -1.0,
        ),
        (
            "/stepLatency/open/canaryVariance",
            "state.stepLatency.open.canaryVariance",
            0.0,
        ),
    ] {
        let mut state = saved.clone();
        *state.pointer_mut(pointer).unwrap() = json!(value);
        let e = restore(state).expect_err(&format!("{pointer} = {value} was taken"));
        assert!(
            e.contains(field) && e.contains(&value.to_string()),
            "{pointer}: {e}"
        );
    }
}

/// A batch's variance is a spread's upper bound, never below the sketch's rounding of a log
/// (`0.01² / 3`): one far below it would weigh the batch as no latencies could, and one batch
/// would pass the gate at once.
#[test]
fn a_state_whose_open_latency_batch_has_a_variance_below_the_sketch_s_rounding_is_refused() {
    let (policy, saved) = paced_state();
    let restore = |state: serde_json::Value| {
        let state: ControllerState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        Ctl::from_parts(policy.clone(), vec![judge()], state).map_err(|e| e.to_string())
    };
    for field in ["baselineVariance", "canaryVariance"] {
        let mut state = saved.clone();
        state["stepLatency"]["open"][field] = json!(1e-12);
        let e = restore(state.clone()).expect_err(&format!("{field} 1e-12 was taken"));
        assert!(
            e.contains(&format!("state.stepLatency.open.{field}"))
                && e.contains(&1e-12f64.to_string()),
            "{e}"
        );
        state["stepLatency"]["open"][field] = json!(4e-5);
        assert!(restore(state).is_ok(), "{field}");
    }
}

#[test]
fn a_state_whose_errors_gate_holds_evidence_no_error_made_is_refused() {
    let (policy, saved) = paced_state();
    let restore = |state: serde_json::Value| {
        let state: ControllerState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        Ctl::from_parts(policy.clone(), vec![judge()], state).map_err(|e| e.to_string())
    };
    assert!(
        saved["stepErrors"].as_u64().is_some_and(|n| n > 0),
        "{saved}"
    );
    // Errors made it: any ratio they could carry is taken.
    let mut state = saved.clone();
    state["stepLogLr"] = json!(-10.0);
    assert!(restore(state.clone()).is_ok());
    // No error at the weight, yet a ratio far below ln β: the gate would pass at once.
    state["stepErrors"] = json!(0);
    let e = restore(state.clone()).expect_err("a ratio without errors was taken");
    assert!(
        e.contains("state.stepLogLr") && e.contains("-10") && e.contains("stepErrors"),
        "{e}"
    );
    state["stepLogLr"] = json!(0.0);
    assert!(restore(state).is_ok());
}

/// Each error moves the errors' gate's log likelihood ratio by at most `ln(detectableRatio)`
/// (`ln 2` here), either way: a ratio beyond what the errors counted can carry is evidence
/// they never made, and would pass the gate at once.
#[test]
fn a_state_whose_errors_gate_holds_more_evidence_than_its_errors_carry_is_refused() {
    let (policy, saved) = paced_state();
    let restore = |state: serde_json::Value| {
        let state: ControllerState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        Ctl::from_parts(policy.clone(), vec![judge()], state).map_err(|e| e.to_string())
    };
    let mut state = saved.clone();
    state["stepErrors"] = json!(3);
    // Three errors carry at most 3 ln 2 ≈ 2.08 either way.
    for ok in [-2.0, 2.0] {
        state["stepLogLr"] = json!(ok);
        assert!(restore(state.clone()).is_ok(), "{ok}");
    }
    for beyond in [-50.0, 50.0] {
        state["stepLogLr"] = json!(beyond);
        let e = restore(state.clone()).expect_err("a ratio beyond its errors was taken");
        assert!(
            e.contains("state.stepLogLr")
                && e.contains(&beyond.to_string())
                && e.contains("stepErrors"),
            "{e}"
        );
    }
}

#[test]
fn a_state_whose_latency_gate_holds_a_shift_no_batch_made_is_refused() {
    let (policy, saved) = paced_state();
    let restore = |state: serde_json::Value| {
        let state: ControllerState = serde_json::from_value(state).map_err(|e| e.to_string())?;
        Ctl::from_parts(policy.clone(), vec![judge()], state).map_err(|e| e.to_string())
    };
    // The weight was just raised: no batch at it yet, though the gate is ready to read one.
    let latency = &saved["stepLatency"];
    assert_eq!(latency["precision"], json!(0.0), "{latency}");
    assert_eq!(latency["shift"], json!(0.0), "{latency}");
    let mut state = saved.clone();
    state["stepLatency"]["shift"] = json!(-1e6);
    let e = restore(state.clone()).expect_err("a shift without batches was taken");
    assert!(
        e.contains("state.stepLatency.shift") && e.contains("-1000000") && e.contains("precision"),
        "{e}"
    );
    // With the precision a batch brings, any shift is one it could have measured.
    state["stepLatency"]["precision"] = json!(4.0);
    assert!(restore(state).is_ok());
}
