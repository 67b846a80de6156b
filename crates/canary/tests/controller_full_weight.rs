//! A `setWeight` of 100% leaves the baseline no traffic, so the comparing judges can gather
//! nothing there: a rollout that goes to 100% before its promotion (to let the canary carry all
//! traffic for a while, as Argo Rollouts policies may) is promoted on the evidence of the
//! weights before, and an analysis step at 100%, which could never gather a sample, is refused
//! when the policy is loaded.

use crate::common;

use std::time::Duration;

use common::{Rng, counts, second};
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Pause, Phase, Step,
};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

fn judge() -> SequentialCountJudge {
    SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
}

/// Runs `policy` for up to an hour at 1,000 requests a second split as the controller says,
/// the canary erring `canary_rate` and the baseline 0.5%; the last decision and when.
fn run(policy: CanaryPolicy, canary_rate: f64) -> (u64, serin_canary::controller::Decision) {
    let mut ctl = Ctl::new(policy, vec![judge()]).unwrap();
    let mut rng = Rng::new(7);
    let mut last = ctl.tick(at(0));
    for s in 0..3_600 {
        let w = u64::from(ctl.state().weight());
        let (nb, nc) = (10 * (100 - w), 10 * w);
        let window = second(s);
        let eb = rng.poisson(nb as f64 * 0.005);
        let ec = rng.poisson(nc as f64 * canary_rate);
        let b = counts(Metric::ErrorRate, Track::Stable, window, nb, eb);
        let c = counts(Metric::ErrorRate, Track::Canary, window, nc, ec);
        ctl.feed(&b, &c, window.end()).unwrap();
        last = ctl.tick(at(s + 1));
        if ctl.state().phase() != Phase::Progressing {
            return (s + 1, last);
        }
    }
    (3_600, last)
}

fn to_full(then: Vec<Step>) -> CanaryPolicy {
    let mut steps = vec![
        Step::SetWeight(20),
        Step::Pause(Pause {
            duration: Some(Duration::from_secs(120)),
        }),
        Step::SetWeight(100),
    ];
    steps.extend(then);
    let mut policy = CanaryPolicy::new(steps);
    policy.progress_deadline = Some(Duration::from_secs(600));
    policy
}

#[test]
fn a_rollout_that_ends_at_100_percent_is_promoted() {
    let (t, d) = run(to_full(vec![]), 0.005);
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    assert_eq!(
        t, 121,
        "promoted once the weight reached 100%: {}",
        d.reason
    );
}

#[test]
fn a_timed_pause_at_100_percent_runs_its_course_and_then_promotes() {
    let pause = Step::Pause(Pause {
        duration: Some(Duration::from_secs(300)),
    });
    let (t, d) = run(to_full(vec![pause]), 0.005);
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    assert!((420..=422).contains(&t), "promoted at {t} s: {}", d.reason);
}

#[test]
fn with_pacing_a_rollout_that_ends_at_100_percent_is_promoted() {
    let mut policy = to_full(vec![]);
    policy.pacing = Some(serin_canary::controller::Pacing::default());
    policy.validate().unwrap();
    let (_, d) = run(policy, 0.005);
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
}

#[test]
fn a_regression_is_still_caught_before_the_weight_reaches_100_percent() {
    let (t, d) = run(to_full(vec![]), 0.05);
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert!(t < 120, "rolled back at {t} s, after the raise to 100%");
}

#[test]
fn an_analysis_step_at_100_percent_is_refused_with_the_reason() {
    let err = to_full(vec![analysis_step()])
        .validate()
        .unwrap_err()
        .to_string();
    assert!(err.contains("canaryPolicy.steps[3].analysis"), "{err}");
    assert!(err.contains("baseline serves no traffic"), "{err}");
    assert!(!err.contains("  "), "{err}");
    // Before the raise to 100% it is an ordinary analysis step.
    let mut steps = to_full(vec![]).steps;
    steps.insert(2, analysis_step());
    assert!(CanaryPolicy::new(steps).validate().is_ok());
}

fn analysis_step() -> Step {
    Step::Analysis(AnalysisStep {
        duration: Duration::from_secs(60),
        min_samples: 10,
    })
}
