//! The share the judges are told: the weight in force, which the caller states while a raised
//! weight waits for its track, or else the weight the controller set last.

use crate::common;

use std::sync::{Arc, Mutex};

use common::{counts, second};
use serin_canary::controller::{Action, CanaryController, CanaryPolicy, Step};
use serin_canary::judge::{Evidence, Judge, Judgement, Sample, Verdict};
use serin_canary::{Error, Result};
use serin_signals::{Metric, Timestamp, Track};

/// A judge that records the canary share of every sample it is fed, and never decides.
#[derive(Debug)]
struct Shares(Arc<Mutex<Vec<Option<f64>>>>);

impl Judge for Shares {
    fn name(&self) -> &str {
        "shares"
    }
    fn metric(&self) -> &Metric {
        &Metric::ErrorRate
    }
    fn observe(&mut self, sample: &Sample<'_>) -> Result<Judgement> {
        self.0.lock().unwrap().push(sample.canary_share());
        Ok(self.judgement(sample.now()))
    }
    fn judgement(&self, now: Timestamp) -> Judgement {
        Judgement {
            verdict: Verdict::Inconclusive,
            evidence: Evidence::empty("shares", Metric::ErrorRate, now),
        }
    }
    fn reset(&mut self) {}
}

#[test]
fn judges_are_told_the_weight_in_force_when_the_caller_states_it() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::SetWeight(40)]);
    let mut ctl = CanaryController::new(policy, vec![Shares(seen.clone())]).unwrap();
    assert_eq!(ctl.tick(Timestamp::EPOCH).action, Action::SetWeight(10));
    let feed = |ctl: &mut CanaryController<Shares>, s: u64, in_force: Option<u8>| {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 0);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
        match in_force {
            Some(weight) => ctl.feed_in_force(&b, &c, weight, w.end()),
            None => ctl.feed(&b, &c, w.end()),
        }
    };
    feed(&mut ctl, 1, None).unwrap();
    // The controller sets 40%; the caller's track is not ready for it, and 10% stays in force.
    assert_eq!(
        ctl.tick(Timestamp::from_millis(1_500)).action,
        Action::SetWeight(40)
    );
    feed(&mut ctl, 2, Some(10)).unwrap();
    feed(&mut ctl, 3, None).unwrap();
    let shares = seen.lock().unwrap().clone();
    assert_eq!(shares[0], Some(0.1));
    assert_eq!(shares[1], Some(0.1), "told the weight in force");
    assert_eq!(shares[2], Some(0.4), "told the weight the controller set");
    // A weight that is no percentage is refused, and nothing is fed.
    let err = feed(&mut ctl, 4, Some(101)).unwrap_err();
    assert!(matches!(err, Error::InvalidInput { .. }), "{err:?}");
    assert_eq!(seen.lock().unwrap().len(), 3);
}
