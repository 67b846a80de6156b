//! A count judge's interval restarts at each new traffic split, and each restart spends its own
//! share of `α`, so that the chance of passing a canary worse than the limit stays at most `α`
//! over a whole rollout; the rollback decision does not depend on the splits.

use crate::common;

use std::f64::consts::PI;

use common::{counts, second};
use serin_canary::judge::{Judge, Judgement, Sample, Statistic, Verdict};
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    LatencyVariance, LogMoments, SequentialCountJudge, SequentialLatencyJudge,
};
use serin_signals::{Metric, Observation, Track};

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

/// A batch of the robust count test that spans a change of the split weighs each part's errors
/// by that part's share: with an error rate common to both arms that is higher while the canary
/// holds half the traffic than while it holds 5%, pooling the batch's requests would expect the
/// canary to hold far fewer of the batch's errors than it does, and roll back a good canary.
#[test]
fn a_robust_count_batch_spanning_split_changes_stays_fair_to_a_good_canary() {
    let mut rng = common::Rng::new(11);
    let mut t = BatchCountTest::new(BatchCountConfig::default()).unwrap();
    // (canary share, error rate of both arms), alternating every 15 seconds.
    let parts = [(0.5, 0.04), (0.05, 0.005)];
    for s in 0..6_000u64 {
        if s % 15 == 0 && s > 0 {
            t.start_segment();
        }
        let (share, rate) = parts[(s / 15 % 2) as usize];
        let (base, can) = (
            (TRAFFIC as f64 * (1.0 - share)) as u64,
            (TRAFFIC as f64 * share) as u64,
        );
        let (be, ce) = (
            rng.poisson(base as f64 * rate),
            rng.poisson(can as f64 * rate),
        );
        assert!(
            !t.update(base, be, can, ce),
            "second {s}: {:?}",
            t.ratio_interval()
        );
    }
    assert!(t.batches() >= 150, "{}", t.batches());
    assert!(t.ratio_interval().unwrap().contains(1.0));
}

/// The same for the robust latency test: with a latency common to both arms that is higher
/// while the canary holds half the traffic, a batch spanning both splits would weigh the
/// canary's values towards the slow part and the baseline's towards the fast one.
#[test]
fn a_robust_latency_batch_spanning_split_changes_stays_fair_to_a_good_canary() {
    let mut rng = common::Rng::new(7);
    let config = LatencyTestConfig {
        variance: LatencyVariance::BetweenBatches,
        ..LatencyTestConfig::default()
    };
    let mut t = LatencyTest::new(config).unwrap();
    // (canary share, median latency of both arms in ms), alternating every 15 seconds.
    let parts = [(0.5, 20f64), (0.05, 10f64)];
    // Each arm's mean log latency of `n` values of log-sd 0.5 around `median`.
    let mut arm = |n: u64, median: f64| {
        let mean = median.ln() + 0.5 * rng.normal() / (n as f64).sqrt();
        LogMoments::from_parts(n, mean, 0.25).unwrap()
    };
    for s in 0..6_000u64 {
        if s % 15 == 0 && s > 0 {
            t.start_segment();
        }
        let (share, median) = parts[(s / 15 % 2) as usize];
        let can = (TRAFFIC as f64 * share) as u64;
        let (b, c) = (arm(TRAFFIC - can, median), arm(can, median));
        assert!(
            !t.update_log_moments(b, c),
            "second {s}: {:?}",
            t.median_shift_interval()
        );
    }
    assert!(t.batches() >= 150, "{}", t.batches());
    assert!(t.median_shift_interval().unwrap().contains(0.0));
}

/// The robust count judge tells its batch test of each new split it is stated, so a good
/// canary whose errors, common to both arms, differ between the splits is never rolled back
/// for it: the judge passes the splits on, as the batch test's own test does by hand.
#[test]
fn a_robust_count_judge_marks_each_new_split_for_its_batches() {
    let mut rng = common::Rng::new(11);
    let mut judge = SequentialCountJudge::robust(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let parts = [(0.5, 0.04), (0.05, 0.005)];
    for s in 0..3_000u64 {
        let (share, rate) = parts[(s / 15 % 2) as usize];
        let (base, can) = split(share);
        let w = second(s);
        let b = counts(
            Metric::ErrorRate,
            Track::Stable,
            w,
            base,
            rng.poisson(base as f64 * rate),
        );
        let c = counts(
            Metric::ErrorRate,
            Track::Canary,
            w,
            can,
            rng.poisson(can as f64 * rate),
        );
        never_fails(&mut judge, &b, &c, share);
    }
}

/// The latency judge does the same for its test: with a latency common to both arms that is
/// higher while the canary holds half the traffic, a robust judge is not misled into a
/// rollback by batches that mix the splits.
#[test]
fn a_robust_latency_judge_marks_each_new_split_for_its_batches() {
    let mut rng = common::Rng::new(7);
    let mut judge = SequentialLatencyJudge::robust(Metric::Latency, 0.05, 0.0).unwrap();
    let parts = [(0.5, 20f64), (0.05, 10f64)];
    for s in 0..1_500u64 {
        let (share, median) = parts[(s / 15 % 2) as usize];
        let (base, can) = split(share);
        let mut values = |n: u64| -> Vec<f64> {
            (0..n)
                .map(|_| median * (0.5 * rng.normal()).exp())
                .collect()
        };
        let w = second(s);
        let b = common::latency(Track::Stable, w, &values(base / 10));
        let c = common::latency(Track::Canary, w, &values(can / 10));
        never_fails(&mut judge, &b, &c, share);
    }
}

/// Feeds `judge` one sample of `b` and `c` at the stated `share`, which must not fail it.
fn never_fails(judge: &mut impl Judge, b: &Observation, c: &Observation, share: f64) {
    let sample = Sample::new(b, c, Some(share), b.window.end()).unwrap();
    let j = judge.observe(&sample).unwrap();
    assert!(
        !matches!(j.verdict, Verdict::Fail(_)),
        "{:?}: {}",
        b.window,
        j.evidence.summary
    );
}

/// A 1.4x regression seen over a whole first split, whose e-value reaches `1/α` with the first
/// sample of a new split, is graded by the ratio the run supports, not by the ten errors seen
/// since the split changed (a ratio of 6, whose interval still holds 1).
#[test]
fn a_rejection_just_after_a_split_change_is_graded_by_the_run_not_by_the_new_split() {
    use serin_canary::judge::Severity;
    fn feed_one(
        j: &mut SequentialCountJudge,
        s: u64,
        (br, be): (u64, u64),
        (cr, ce): (u64, u64),
        share: f64,
    ) -> Judgement {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
        let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
        j.observe(&Sample::new(&b, &c, Some(share), w.end()).unwrap())
            .unwrap()
    }
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let mut s = 0;
    // An even split, the canary at 1.4 times the baseline's 1%: fed until one more such second
    // would reach the threshold. Rejected there, within the one split, it would be graded by
    // that split's ratio, the one its evidence states.
    loop {
        let j = feed_one(&mut judge.clone(), s, (1000, 10), (1000, 14), 0.5);
        if j.verdict.is_fail() {
            assert!(
                !j.evidence.summary.contains("Graded by"),
                "{}",
                j.evidence.summary
            );
            break;
        }
        feed_one(&mut judge, s, (1000, 10), (1000, 14), 0.5);
        s += 1;
        assert!(s < 1000);
    }
    // The split moves to 20%; its first second tips the e-value over.
    let j = feed_one(&mut judge, s, (1600, 4), (400, 6), 0.2);
    assert_eq!(
        j.verdict,
        Verdict::Fail(Severity::Warning),
        "{}",
        j.evidence.summary
    );
    assert!(
        j.evidence.summary.contains("Graded by the run's ratio"),
        "{}",
        j.evidence.summary
    );
}
