//! A count judge's interval restarts at each new traffic split, and each restart spends its own
//! share of `α`, so that the chance of passing a canary worse than the limit stays at most `α`
//! over a whole rollout; the rollback decision does not depend on the splits.

mod common;

use std::f64::consts::PI;

use common::{counts, second};
use serin_canary::judge::{Judge, Judgement, Sample, Statistic, Verdict};
use serin_canary::sequential::{CountTest, CountTestConfig, SequentialCountJudge};
use serin_signals::{Metric, Track};

/// Requests per second over both arms; both err at 1%.
const TRAFFIC: u64 = 1_000;

/// Each arm's requests at the canary's `share`.
fn split(share: f64) -> (u64, u64) {
    let canary = (TRAFFIC as f64 * share).round() as u64;
    (TRAFFIC - canary, canary)
}

/// Feeds `seconds` samples from second `from` at the stated `share`, the same to `plain`
/// without any statement of the split; the last judgement.
fn feed(
    judge: &mut SequentialCountJudge,
    plain: &mut CountTest,
    from: u64,
    seconds: u64,
    share: f64,
) -> Judgement {
    let (base, can) = split(share);
    let mut last = None;
    for s in from..from + seconds {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, base, base / 100);
        let c = counts(Metric::ErrorRate, Track::Canary, w, can, can / 100);
        plain.update(base, base / 100, can, can / 100);
        let sample = Sample::new(&b, &c, Some(share), w.end()).unwrap();
        last = Some(judge.observe(&sample).unwrap());
    }
    last.unwrap()
}

#[test]
fn each_split_of_a_rollout_states_the_share_of_alpha_its_interval_spends() {
    let (alpha, margin) = (0.05, 0.2);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, alpha, margin).unwrap();
    let mut plain = CountTest::new(CountTestConfig::new(alpha).with_margin(margin)).unwrap();
    for (k, (share, shown)) in [(0.1, "0.9696"), (0.25, "0.9924"), (0.5, "0.99662")]
        .into_iter()
        .enumerate()
    {
        let j = feed(&mut judge, &mut plain, 1_000 * k as u64, 600, share);
        let n = (k + 1) as f64;
        let i = j.evidence.effects[0].interval.unwrap();
        assert!(
            (i.level - (1.0 - alpha * 6.0 / (PI * PI * n * n))).abs() < 1e-15,
            "split {n}: {i:?}"
        );
        assert_eq!(j.verdict, Verdict::Pass, "{}", j.evidence.summary);
        let stated = format!("with confidence {shown} (traffic split {n}'s share of alpha = 0.05)");
        assert!(
            j.evidence.summary.contains(&stated),
            "{}",
            j.evidence.summary
        );
        // The e-value, and so the rollback decision, is the one of a test never told the split.
        assert_eq!(
            j.evidence.statistic,
            Some(Statistic::EValue(plain.e_value()))
        );
    }
}

#[test]
fn an_inconclusive_judgement_states_the_confidence_of_its_interval() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.2).unwrap();
    let mut plain = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    feed(&mut judge, &mut plain, 0, 600, 0.1);
    let j = feed(&mut judge, &mut plain, 1_000, 5, 0.25);
    assert_eq!(j.verdict, Verdict::Inconclusive, "{}", j.evidence.summary);
    let i = j.evidence.effects[0].interval.unwrap();
    let stated = format!(
        "the interval [{:.3}, {:.3}] is not yet below 1.200 at confidence 0.9924",
        i.lower, i.upper
    );
    assert!(
        j.evidence.summary.contains(&stated),
        "{}",
        j.evidence.summary
    );
}

/// A judge saved before segments were numbered does not know how many splits it has passed:
/// its interval spends no more of `α` than a numbering judge's (its level is no lower), and one
/// that never changed its split keeps the first split's share.
#[test]
fn a_judge_saved_before_segments_were_numbered_spends_no_more_of_alpha() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.2).unwrap();
    let mut plain = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    let level = |j: &SequentialCountJudge| {
        j.judgement(second(0).end()).evidence.effects[0]
            .interval
            .unwrap()
            .level
    };
    let unnumbered = |j: &SequentialCountJudge| {
        let mut saved = serde_json::to_value(j).unwrap();
        let state = saved.pointer_mut("/engine/perRequest").unwrap();
        state.as_object_mut().unwrap().remove("segments").unwrap();
        serde_json::from_value::<SequentialCountJudge>(saved).unwrap()
    };
    feed(&mut judge, &mut plain, 0, 60, 0.1);
    assert_eq!(level(&unnumbered(&judge)), level(&judge));
    feed(&mut judge, &mut plain, 1_000, 60, 0.25);
    feed(&mut judge, &mut plain, 2_000, 60, 0.5);
    let old = unnumbered(&judge);
    assert!(
        level(&old) >= level(&judge),
        "{} {}",
        level(&old),
        level(&judge)
    );
}
