//! With pacing, the canary is promoted only once the evidence at its last weight rules the
//! regression out; a last step back to 0% would leave none to gather, and is refused.

use crate::common;

use common::{counts, second};
use serin_canary::controller::{Action, CanaryController, CanaryPolicy, Pacing, Step};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

fn steps() -> Vec<Step> {
    vec![Step::SetWeight(5), Step::SetWeight(50), Step::SetWeight(0)]
}

fn judge() -> SequentialCountJudge {
    SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
}

#[test]
fn a_paced_policy_whose_last_weight_is_0_percent_is_refused_naming_the_step() {
    let mut policy = CanaryPolicy::new(steps());
    policy.pacing = Some(Pacing::default());
    let msg = policy.validate().unwrap_err().to_string();
    assert!(
        msg.contains("canaryPolicy.steps[2].setWeight `0`") && msg.contains("pacing"),
        "{msg}"
    );
    let json = r#"{"steps":[{"setWeight":5},{"setWeight":50},{"setWeight":0}],"pacing":{}}"#;
    let msg = serde_json::from_str::<CanaryPolicy>(json)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("canaryPolicy.steps[2].setWeight"), "{msg}");
    assert!(CanaryController::new(policy, vec![judge()]).is_err());
    // A step back to 0% and up again is paced as a first weight; and without pacing, a
    // promotion from 0% is the policy's to ask for.
    let mut up_again = CanaryPolicy::new(vec![
        Step::SetWeight(5),
        Step::SetWeight(0),
        Step::SetWeight(20),
    ]);
    up_again.pacing = Some(Pacing::default());
    assert!(up_again.validate().is_ok());
    assert!(CanaryPolicy::new(steps()).validate().is_ok());
}

#[test]
fn without_pacing_a_canary_stepped_back_to_0_percent_is_promoted_as_asked() {
    let mut ctl = CanaryController::new(CanaryPolicy::new(steps()), vec![judge()]).unwrap();
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(5)
    );
    let mut actions = Vec::new();
    for s in 0..3 {
        let w = second(s);
        let weight = u64::from(ctl.state().weight());
        let (br, cr) = (10 * (100 - weight), 10 * weight);
        let b = counts(Metric::ErrorRate, Track::Stable, w, br, 0);
        let c = counts(Metric::ErrorRate, Track::Canary, w, cr, 0);
        actions.push(ctl.observe(&b, &c, w.end()).unwrap().action);
    }
    assert_eq!(
        actions,
        [Action::SetWeight(50), Action::SetWeight(0), Action::Promote]
    );
}
