//! An analysis step after a raise counts only the samples of the split it analyses: while the
//! raised weight waits for its track, the windows of the split before it are no evidence at the
//! new weight, as Argo Rollouts starts a step's analysis only once its weight is set. A timed
//! pause after a raise likewise waits its duration at the raised weight.

use crate::common;

use std::time::Duration;

use common::{counts, second};
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, Decision, OnInconclusive, Pause, Step,
};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn controller(on_inconclusive: OnInconclusive) -> Ctl {
    controller_with(
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(60),
            min_samples: 10,
        }),
        on_inconclusive,
    )
}

/// 10%, then 50%, then `step`, then 80%.
fn controller_with(step: Step, on_inconclusive: OnInconclusive) -> Ctl {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::SetWeight(50),
        step,
        Step::SetWeight(80),
    ]);
    policy.on_inconclusive = on_inconclusive;
    let judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    Ctl::new(policy, vec![judge]).unwrap()
}

/// Feeds second `s` of a healthy canary from the split at `weight` percent, then decides.
fn feed(ctl: &mut Ctl, s: u64, weight: u8) -> Decision {
    let w = second(s);
    let (br, cr) = (10 * u64::from(100 - weight), 10 * u64::from(weight));
    let b = counts(Metric::ErrorRate, Track::Stable, w, br, br / 200);
    let c = counts(Metric::ErrorRate, Track::Canary, w, cr, cr / 200);
    ctl.feed_in_force(&b, &c, weight, w.end()).unwrap();
    ctl.tick(w.end())
}

/// The controller at the analysis step, its 50% set at second 1 and in force from second 60 on
/// (as while an operator's pause holds a raise whose track is still growing): the windows
/// before are of the 10% split.
fn analysing(on_inconclusive: OnInconclusive) -> Ctl {
    raised_late(controller(on_inconclusive))
}

/// `ctl` with its 50% set at second 1 and fed the 10% split up to second 60.
fn raised_late(mut ctl: Ctl) -> Ctl {
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(10)
    );
    assert_eq!(feed(&mut ctl, 0, 10).action, Action::SetWeight(50));
    for s in 1..60 {
        assert_eq!(feed(&mut ctl, s, 10).action, Action::Hold, "second {s}");
    }
    ctl
}

#[test]
fn an_analysis_after_a_raise_judges_its_own_split_for_its_whole_duration() {
    for on_inconclusive in [OnInconclusive::Hold, OnInconclusive::Rollback] {
        let mut ctl = analysing(on_inconclusive);
        // The minute since the step began is over, but not the minute at 50%, which began at
        // the end of the last window of the 10% split (second 60); neither are ten samples of
        // the 50% split, so it neither ends short of samples nor moves on.
        for s in 60..119 {
            let d = feed(&mut ctl, s, 50);
            assert_eq!(
                d.action,
                Action::Hold,
                "{on_inconclusive:?}, second {s}: {}",
                d.reason
            );
            assert_eq!(d.reason, "analysing");
        }
        assert_eq!(feed(&mut ctl, 119, 50).action, Action::SetWeight(80));
    }
}

#[test]
fn an_analysis_short_of_samples_at_its_weight_says_so_and_rolls_back_under_rollback() {
    let mut ctl = analysing(OnInconclusive::Rollback);
    for s in 60..63 {
        assert_eq!(feed(&mut ctl, s, 50).action, Action::Hold, "second {s}");
    }
    // A metrics outage for the rest of the step: three samples at 50%, however many before.
    let d = (63..200)
        .map(|s| {
            let w = second(s);
            let b = common::no_data(Metric::ErrorRate, Track::Stable, w);
            let c = common::no_data(Metric::ErrorRate, Track::Canary, w);
            ctl.observe(&b, &c, w.end()).unwrap()
        })
        .find(|d| d.action != Action::Hold)
        .expect("the step ends");
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert_eq!(d.at, Timestamp::from_millis(120_000));
    assert!(
        d.reason
            .contains("analysis ended with 3 of 10 samples with data at 50%"),
        "{}",
        d.reason
    );
}

#[test]
fn a_timed_pause_after_a_raise_waits_its_duration_at_the_raised_weight() {
    let pause = Step::Pause(Pause {
        duration: Some(Duration::from_secs(60)),
    });
    let mut ctl = raised_late(controller_with(pause, OnInconclusive::Hold));
    // A minute has passed since the pause began (second 1), but not since its weight came into
    // force at second 60.
    for s in 60..119 {
        let d = feed(&mut ctl, s, 50);
        assert_eq!(d.action, Action::Hold, "second {s}: {}", d.reason);
        assert_eq!(d.reason, "paused for 60s");
    }
    let d = feed(&mut ctl, 119, 50);
    assert_eq!(d.action, Action::SetWeight(80), "{}", d.reason);
    assert_eq!(d.at, Timestamp::from_millis(120_000));
}
