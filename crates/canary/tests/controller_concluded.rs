//! The controller and judges whose analysis has ended: an Argo Rollouts run that ended
//! `Inconclusive` or `Error` is never moved past (Argo pauses for a person), and a Kayenta run
//! that ended says so.

use crate::common;

use std::time::Duration;

use common::{counts, no_data, second};
use proptest::prelude::*;
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Command, Decision, OnInconclusive, Phase,
    Step,
};
use serin_canary::judge::{Judge, Verdict};
use serin_canary::kayenta::{
    Direction, KayentaConfig, KayentaJudge, Quantity, RunConfig, RunStatus,
};
use serin_canary::threshold::{ArgoConfig, ArgoJudge, Range};
use serin_signals::{Metric, Observation, Timestamp, Track};

/// Argo's analysis of the canary's error rate: successful at most 1%, failed from 5%, and
/// inconclusive in between.
fn argo(inconclusive_limit: u32) -> ArgoJudge {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_condition = Some(Range::at_least(0.05).into());
    c.inconclusive_limit = inconclusive_limit;
    ArgoJudge::new(c).unwrap()
}

fn analysis(secs: u64, min_samples: u64) -> Step {
    Step::Analysis(AnalysisStep {
        duration: Duration::from_secs(secs),
        min_samples,
    })
}

fn policy(on_inconclusive: OnInconclusive) -> CanaryPolicy {
    let mut p = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        analysis(60, 5),
        Step::SetWeight(50),
        analysis(60, 5),
    ]);
    p.on_inconclusive = on_inconclusive;
    p
}

/// Second `s`'s pair of observations: 1,000 baseline requests with 5 errors, and 1,000 canary
/// requests with `canary_errors` (`None`: the canary's query came back empty).
fn pair(s: u64, canary_errors: Option<u64>) -> (Observation, Observation) {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000, 5);
    let c = match canary_errors {
        Some(e) => counts(Metric::ErrorRate, Track::Canary, w, 1_000, e),
        None => no_data(Metric::ErrorRate, Track::Canary, w),
    };
    (b, c)
}

fn feed<J: Judge>(ctl: &mut CanaryController<J>, s: u64, canary_errors: Option<u64>) -> Decision {
    let (b, c) = pair(s, canary_errors);
    ctl.observe(&b, &c, second(s).end()).unwrap()
}

#[test]
fn an_argo_run_ended_inconclusive_holds_the_rollout_and_never_promotes() {
    let judge: Box<dyn Judge> = Box::new(argo(0));
    let mut ctl = CanaryController::new(policy(OnInconclusive::Hold), vec![judge]).unwrap();
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(10)
    );
    // 2% errors: neither condition holds, and one inconclusive measurement ends the run.
    let mut last = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, Some(20));
        assert_eq!(d.action, Action::Hold, "second {s}: {}", d.reason);
        last = Some(d);
    }
    assert!(ctl.judges()[0].concluded());
    assert_eq!(ctl.state().phase(), Phase::Progressing);
    assert_eq!(ctl.state().weight(), 10);
    assert_eq!(ctl.state().step(), 1, "still at the analysis step");
    let last = last.unwrap();
    assert!(
        last.reason.contains("argo") && last.reason.contains("concluded inconclusive"),
        "{}",
        last.reason
    );
    // A person decides, as for Argo's paused rollout: promoting is theirs to do.
    let d = ctl.command(Command::Promote, second(600).end()).unwrap();
    assert_eq!(d.action, Action::Promote);
}

#[test]
fn an_argo_run_ended_inconclusive_rolls_back_under_on_inconclusive_rollback() {
    let mut ctl = CanaryController::new(policy(OnInconclusive::Rollback), vec![argo(1)]).unwrap();
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(10)
    );
    // The first inconclusive measurement is within the limit of 1: the run goes on.
    assert_eq!(feed(&mut ctl, 0, Some(20)).action, Action::Hold);
    assert!(!ctl.judges()[0].concluded());
    // The second exceeds it: the run has ended, and will never pass.
    let d = feed(&mut ctl, 1, Some(20));
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert!(d.reason.contains("concluded inconclusive"), "{}", d.reason);
    assert_eq!(d.evidence[0].judge, "argo");
    assert_eq!(d.severity, None, "not a regression: missing evidence");
    for s in 2..200 {
        assert_eq!(feed(&mut ctl, s, Some(0)).action, Action::Rollback);
    }
    assert_eq!(ctl.state().phase(), Phase::RolledBack);
}

#[test]
fn a_run_ended_inconclusive_rolls_back_at_once_while_the_caller_holds() {
    let mut ctl = CanaryController::new(policy(OnInconclusive::Rollback), vec![argo(1)]).unwrap();
    ctl.tick(Timestamp::from_millis(0));
    // Held by the caller (an operator's pause) while the run goes on and ends inconclusive.
    let (b, c) = pair(0, Some(20));
    ctl.feed(&b, &c, second(0).end()).unwrap();
    assert_eq!(ctl.tick_held(second(0).end()).action, Action::Hold);
    let (b, c) = pair(1, Some(20));
    ctl.feed(&b, &c, second(1).end()).unwrap();
    assert!(ctl.judges()[0].concluded());
    // The hold does not keep a run that will never pass: it rolls back as `tick` would.
    let d = ctl.tick_held(second(1).end());
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert!(d.reason.contains("concluded inconclusive"), "{}", d.reason);
    assert_eq!(d.evidence[0].judge, "argo");
    assert_eq!(d.severity, None, "not a regression: missing evidence");
    assert_eq!(ctl.state().phase(), Phase::RolledBack);
    // Under `hold`, the caller's hold holds.
    let mut ctl = CanaryController::new(policy(OnInconclusive::Hold), vec![argo(0)]).unwrap();
    ctl.tick(Timestamp::from_millis(0));
    let (b, c) = pair(0, Some(20));
    ctl.feed(&b, &c, second(0).end()).unwrap();
    assert!(ctl.judges()[0].concluded());
    assert_eq!(ctl.tick_held(second(0).end()).action, Action::Hold);
}

#[test]
fn an_argo_run_ended_in_error_is_not_moved_past_when_data_returns() {
    // Argo with a success condition alone: a measurement fails or succeeds, or errors on no data.
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    let mut ctl = CanaryController::new(
        policy(OnInconclusive::Hold),
        vec![ArgoJudge::new(c).unwrap()],
    )
    .unwrap();
    ctl.tick(Timestamp::from_millis(0));
    // Five good seconds pass the first analysis step, and the weight is raised.
    let mut actions = vec![];
    for s in 0..5 {
        actions.push(feed(&mut ctl, s, Some(0)).action);
    }
    assert_eq!(actions.last(), Some(&Action::SetWeight(50)));
    // Five empty queries: more consecutive errors than Argo's limit of 4 end the run in Error.
    for s in 5..10 {
        assert_eq!(feed(&mut ctl, s, None).action, Action::Hold);
    }
    assert!(ctl.judges()[0].concluded());
    assert_eq!(
        ctl.judges()[0].judgement(second(10).end()).verdict,
        Verdict::Inconclusive,
        "a source error is inconclusive, never a failure"
    );
    // The data comes back, but the ended run takes none of it: no promotion on its silence.
    for s in 10..400 {
        let d = feed(&mut ctl, s, Some(0));
        assert_eq!(d.action, Action::Hold, "second {s}: {}", d.reason);
    }
    assert_eq!(ctl.state().phase(), Phase::Progressing);
}

#[test]
fn a_held_concluded_run_still_rolls_back_at_the_progress_deadline() {
    let mut p = policy(OnInconclusive::Hold);
    p.progress_deadline = Some(Duration::from_secs(120));
    let mut ctl = CanaryController::new(p, vec![argo(0)]).unwrap();
    ctl.tick(Timestamp::from_millis(0));
    let mut rolled_back = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, Some(20));
        assert_ne!(d.action, Action::SetWeight(50));
        if d.action == Action::Rollback {
            rolled_back = Some(s);
            break;
        }
    }
    // The analysis step's minute, then the two minutes of the deadline.
    let s = rolled_back.expect("the deadline rolls back");
    assert!((179..=181).contains(&s), "rolled back at second {s}");
}

fn kayenta(run: RunConfig) -> KayentaJudge {
    let mut c = KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate).with_run(run);
    c.metric_config.direction = Direction::Increase;
    KayentaJudge::new(c).unwrap()
}

#[test]
fn a_kayenta_run_concludes_at_its_last_judgement_with_a_pass_or_a_failure() {
    let mut j = kayenta(RunConfig::new(20).every(5));
    let mut without_run =
        KayentaJudge::new(KayentaConfig::new(Metric::ErrorRate, Quantity::ErrorRate)).unwrap();
    for i in 0..19 {
        let b = 0.010 + 0.001 * f64::from(i % 7);
        j.push_points(Some(b), Some(b));
        without_run.push_points(Some(b), Some(b));
    }
    assert!(!j.concluded(), "the run goes on");
    j.push_points(Some(0.01), Some(0.01));
    assert_eq!(j.run_state().status, RunStatus::Passed);
    assert!(j.concluded());
    assert_eq!(
        j.judgement(Timestamp::from_millis(0)).verdict,
        Verdict::Pass
    );
    assert!(!without_run.concluded(), "a judge without a run never ends");
    j.reset();
    assert!(!j.concluded());
}

#[test]
fn a_final_kayenta_score_below_pass_concludes_the_run_failed() {
    // One judgement, at the end: a canary erring three times as often scores 0.
    let mut j = kayenta(RunConfig::new(20));
    for i in 0..20 {
        let b = 0.010 + 0.001 * f64::from(i % 7);
        j.push_points(Some(b), Some(3.0 * b));
        assert_eq!(j.concluded(), i == 19, "point {i}");
    }
    assert_eq!(j.run_state().scores, [0.0]);
    assert_eq!(j.run_state().status, RunStatus::Failed);
    assert!(j.judgement(Timestamp::from_millis(0)).verdict.is_fail());
}

/// One second of the canary: good, inconclusive for Argo, failing, or no data.
fn second_of_canary() -> impl Strategy<Value = Option<u64>> {
    prop_oneof![
        4 => Just(Some(0)),
        2 => Just(Some(20)),
        1 => Just(Some(80)),
        1 => Just(None),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Whatever the canary does, once the Argo judge's run has ended inconclusive the controller
    /// never raises the weight nor promotes, and rolls back at once under `rollback`.
    #[test]
    fn no_weight_is_raised_past_a_run_ended_inconclusive(
        stream in prop::collection::vec(second_of_canary(), 1..150),
        inconclusive_limit in 0u32..3,
        rollback in any::<bool>(),
        analysis_secs in 1u64..30,
    ) {
        let on_inconclusive = if rollback { OnInconclusive::Rollback } else { OnInconclusive::Hold };
        let mut p = CanaryPolicy::new(vec![
            Step::SetWeight(10),
            analysis(analysis_secs, 1),
            Step::SetWeight(30),
            analysis(analysis_secs, 1),
            Step::SetWeight(60),
        ]);
        p.on_inconclusive = on_inconclusive;
        let mut ctl = CanaryController::new(p, vec![argo(inconclusive_limit)]).unwrap();
        ctl.tick(Timestamp::from_millis(0));
        for (s, errors) in stream.into_iter().enumerate() {
            let s = s as u64;
            let weight = ctl.state().weight();
            let d = feed(&mut ctl, s, errors);
            let j = &ctl.judges()[0];
            let stuck = j.concluded() && j.judgement(d.at).verdict == Verdict::Inconclusive;
            if stuck {
                prop_assert_ne!(d.action, Action::Promote, "second {}: {}", s, d.reason);
                if let Action::SetWeight(w) = d.action {
                    prop_assert!(w <= weight, "second {}: raised to {}: {}", s, w, d.reason);
                }
                if rollback {
                    prop_assert_eq!(d.action, Action::Rollback, "second {}: {}", s, d.reason);
                }
            }
        }
    }
}
