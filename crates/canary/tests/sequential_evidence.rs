//! What the sequential judges' evidence says matches the numbers beside it.

use crate::common;

use common::{counts, second};
use serin_canary::judge::{Judge, Sample, Verdict};
use serin_canary::sequential::{
    AlphaSharing, CountMode, CountTestConfig, SequentialCountJudge, SequentialLatencyJudge, Sides,
    combine,
};
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

/// Split, each judge spends the `α` it was built with, and the evidence says so. A judge added
/// on resume at `α/3` beside two built at `α/2` would spend more than `α` in all, which is
/// refused; two left of three built at `α/3` spend less, and the evidence states what each
/// fails at rather than `α/2`.
#[test]
fn split_alpha_states_what_each_judge_spends_and_refuses_more_than_alpha() {
    let now = second(0).end();
    let judgement = |alpha: f64| {
        SequentialLatencyJudge::new(Metric::Latency, alpha, 0.0)
            .unwrap()
            .judgement(now)
    };
    let per = |m| AlphaSharing::Split.per_judge_alpha(0.05, m);
    let added = [judgement(per(2)), judgement(per(2)), judgement(per(3))];
    let e = combine(&added, 0.05, AlphaSharing::Split, now).unwrap_err();
    assert!(e.to_string().contains("judgements"), "{e}");
    let removed = [judgement(per(3)), judgement(per(3))];
    let j = combine(&removed, 0.05, AlphaSharing::Split, now).unwrap();
    let text = &j.evidence.summary;
    assert!(
        text.contains(
            "alpha 0.05 split over 2 metric(s) (Bonferroni): each fails at its own 1/alpha = 60"
        ),
        "{text}"
    );
    let uneven = [judgement(0.04), judgement(0.01)];
    let text = combine(&uneven, 0.05, AlphaSharing::Split, now)
        .unwrap()
        .evidence
        .summary;
    assert!(text.contains("1/alpha = 25, 100"), "{text}");
}
