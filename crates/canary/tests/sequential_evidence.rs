//! What the sequential judges' evidence says matches the numbers beside it.

mod common;

use common::{counts, second};
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::sequential::{CountMode, CountTestConfig, SequentialCountJudge, Sides};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Track};

/// A two-sided judge whose interval already lies above 1 (or below it) while the e-value is
/// still short of `1/α` says which bounds a pass needs, not that the interval reaches them.
#[test]
fn an_inconclusive_count_judgement_states_its_interval_and_what_a_pass_needs() {
    for (b_errors, c_errors) in [(10, 11), (11, 10)] {
        let mut judge = SequentialCountJudge::with_mode(
            Metric::ErrorRate,
            CountMode::PerRequest(CountTestConfig::new(0.05).with_sides(Sides::TwoSided)),
            SeverityBands::default(),
        )
        .unwrap();
        let mut last = None;
        for s in 0..420 {
            let w = second(s);
            let b = counts(Metric::ErrorRate, Track::Stable, w, 500, b_errors);
            let c = counts(Metric::ErrorRate, Track::Canary, w, 500, c_errors);
            last = Some(
                judge
                    .observe(&Sample::new(&b, &c, Some(0.5), w.end()).unwrap())
                    .unwrap(),
            );
        }
        let j = last.unwrap();
        assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.evidence.summary);
        let i = j.evidence.effects[0].interval.unwrap();
        assert!(i.lower > 1.0 || i.upper < 1.0, "{i:?}");
        let summary = &j.evidence.summary;
        let stated = format!(
            "the interval [{:.3}, {:.3}] is not yet within (1.000, 1.000)",
            i.lower, i.upper
        );
        assert!(summary.contains(&stated), "{summary}");
    }
}
