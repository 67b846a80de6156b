//! Behaviour of the sequential judges on simulated, seeded traffic.

use crate::common;

use common::{Rng, counts, latency, no_data, second};
use serin_canary::judge::{Judge, Judgement, Sample, Severity, Statistic, Verdict};
use serin_canary::sequential::{
    AlphaSharing, BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest,
    LatencyTestConfig, SequentialCountJudge, SequentialLatencyJudge, Sides, combine,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Observation, Timestamp, Track};

/// Runs `runs` A/A streams of `secs` seconds (requests per second per arm fixed, errors Poisson)
/// and returns how many the test rejected.
fn aa_rejections(runs: u64, secs: u64, base_req: u64, can_req: u64, rate: f64, seed: u64) -> u64 {
    let mut rng = Rng::new(seed);
    let mut rejected = 0;
    for _ in 0..runs {
        let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
        for _ in 0..secs {
            let b = rng.poisson(base_req as f64 * rate);
            let c = rng.poisson(can_req as f64 * rate);
            if t.update(base_req, b, can_req, c) {
                rejected += 1;
                break;
            }
        }
    }
    rejected
}

#[test]
fn count_test_false_rollbacks_stay_below_alpha_under_continuous_monitoring() {
    // 400 A/A runs of 20 minutes at 200 req/s with a 10% canary, checked every second.
    let rejected = aa_rejections(400, 1_200, 180, 20, 0.01, 11);
    // α = 0.05: 20 expected at most; allow the binomial noise of 400 runs (sd ≈ 4.4).
    assert!(rejected <= 30, "{rejected} of 400 A/A runs rejected");
}

/// Seconds until the test rejects when the canary's error rate is `ratio` times the baseline's
/// from second `start` on.
fn detection_second(ratio: f64, start: u64, seed: u64) -> Option<u64> {
    let mut rng = Rng::new(seed);
    let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
    for s in 0..7_200 {
        let r = if s >= start { ratio } else { 1.0 };
        let b = rng.poisson(400.0 * 0.005);
        let c = rng.poisson(100.0 * 0.005 * r);
        if t.update(400, b, 100, c) {
            return Some(s + 1 - start.min(s + 1));
        }
    }
    None
}

fn median(mut v: Vec<u64>) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[test]
fn a_regression_is_detected_and_a_late_one_is_not_diluted_by_the_good_past() {
    let early: Vec<u64> = (0..41)
        .map(|i| detection_second(3.0, 0, 100 + i).expect("detected"))
        .collect();
    let late: Vec<u64> = (0..41)
        .map(|i| detection_second(3.0, 1_800, 200 + i).expect("detected"))
        .collect();
    let (me, ml) = (median(early), median(late));
    assert!(me < 120, "median detection {me} s from the start");
    // The start-time mixture bounds the price of 30 good minutes to a few multiples.
    assert!(ml < 5 * me.max(20), "late {ml} s vs early {me} s");
}

#[test]
fn a_changing_split_keeps_the_test_valid_and_powerful() {
    let mut rng = Rng::new(5);
    let mut rejections = 0;
    for _ in 0..200 {
        let mut t = CountTest::new(CountTestConfig::new(0.05)).unwrap();
        // 5% → 20% → 50%, the load swinging ×3 along the way; A/A.
        for s in 0..1_800u64 {
            let load = 100.0 * (2.0 + (s as f64 / 300.0).sin());
            let share = [0.05, 0.2, 0.5][(s / 600) as usize];
            let (cr, br) = ((load * share) as u64, (load * (1.0 - share)) as u64);
            let (c, b) = (rng.poisson(cr as f64 * 0.01), rng.poisson(br as f64 * 0.01));
            if t.update(br, b, cr, c) {
                rejections += 1;
                break;
            }
        }
    }
    assert!(rejections <= 18, "{rejections} of 200");
}

#[test]
fn robust_mode_holds_alpha_where_wandering_rates_fool_the_per_request_model() {
    // Each arm's error rate is multiplied by its own wandering factor (AR(1) in logs, ρ = 0.6
    // per second, stationary sd 0.5, mean 1): A/A, but errors arrive in clumps.
    let (mut plain, mut robust) = (0, 0);
    let mut rng = Rng::new(77);
    let runs = 150;
    for _ in 0..runs {
        let mut a = CountTest::new(CountTestConfig::new(0.05)).unwrap();
        let mut b = BatchCountTest::new(BatchCountConfig::new(0.05)).unwrap();
        let (mut lb, mut lc) = (0.0f64, 0.0f64);
        let rho: f64 = 0.6;
        let innov = 0.5 * (1.0 - rho * rho).sqrt();
        let (mut a_done, mut b_done) = (false, false);
        for _ in 0..3_600 {
            lb = rho * lb + innov * rng.normal();
            lc = rho * lc + innov * rng.normal();
            let mb = (lb - 0.125).exp();
            let mc = (lc - 0.125).exp();
            let be = rng.poisson(250.0 * 0.02 * mb);
            let ce = rng.poisson(250.0 * 0.02 * mc);
            a_done |= a.update(250, be, 250, ce);
            b_done |= b.update(250, be, 250, ce);
        }
        plain += u64::from(a_done);
        robust += u64::from(b_done);
    }
    eprintln!("wandering A/A rates: per-request {plain}/{runs}, robust {robust}/{runs}");
    assert!(robust <= 15, "robust mode rejected {robust} of {runs}");
    assert!(plain > robust, "plain {plain} vs robust {robust}");
}

#[test]
fn latency_test_detects_a_median_shift_and_reports_both_quantiles() {
    let mut rng = Rng::new(9);
    let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
    let mut at = None;
    // Per second, 80 baseline and 20 canary values; the canary is 10% slower. A test that
    // knows the shift needs about 170 canary values (8 s); this one may take up to four times
    // that, and keeps estimating after it has rejected.
    for s in 0..300u64 {
        let mut base = serin_signals::LatencySketch::new();
        let mut can = serin_signals::LatencySketch::new();
        for _ in 0..80 {
            base.add((3.0 + 0.5 * rng.normal()).exp()).unwrap();
        }
        for _ in 0..20 {
            can.add(1.10 * (3.0 + 0.5 * rng.normal()).exp()).unwrap();
        }
        if t.update(&base, &can) && at.is_none() {
            at = Some(s);
        }
    }
    let at = at.expect("a 10% median shift is detected");
    assert!(at < 32, "detected after {at} s");
    let ci = t.median_shift_interval().unwrap();
    assert!(ci.lower > 0.0 && ci.contains(0.1), "{ci:?}");
    assert!((t.p99_shift() - 0.1).abs() < 0.1, "{}", t.p99_shift());
}

#[test]
fn latency_test_false_rollbacks_stay_below_alpha() {
    let mut rng = Rng::new(21);
    let mut rejected = 0;
    for _ in 0..100 {
        let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).unwrap();
        for _ in 0..200 {
            let base: Vec<f64> = (0..50).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect();
            let can: Vec<f64> = (0..50).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect();
            let (b, c) = (sketch(&base), sketch(&can));
            if t.update(&b, &c) {
                rejected += 1;
                break;
            }
        }
    }
    assert!(rejected <= 10, "{rejected} of 100");
}

#[test]
fn robust_latency_mode_detects_a_shift_from_the_scatter_between_batches() {
    let mut rng = Rng::new(31);
    let mut judge = SequentialLatencyJudge::robust(Metric::Latency, 0.05, 0.0).unwrap();
    let mut failed = false;
    for s in 0..900u64 {
        let w = second(s);
        let base: Vec<f64> = (0..60).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect();
        let can: Vec<f64> = (0..20)
            .map(|_| 1.25 * (3.0 + 0.5 * rng.normal()).exp())
            .collect();
        let (b, c) = (
            latency(Track::Stable, w, &base),
            latency(Track::Canary, w, &can),
        );
        let j = judge
            .observe(&Sample::new(&b, &c, Some(0.25), w.end()).unwrap())
            .unwrap();
        if j.verdict.is_fail() {
            failed = true;
            let shift = &j.evidence.effects[0];
            assert!(shift.interval.unwrap().contains(0.25), "{shift:?}");
            break;
        }
    }
    assert!(failed);
}

/// One judgement of an even split's observations (both over the same window).
fn observe_even(judge: &mut impl Judge, b: &Observation, c: &Observation) -> Judgement {
    let sample = Sample::new(b, c, Some(0.5), b.window.end()).unwrap();
    judge.observe(&sample).unwrap()
}

/// Feeds `secs` seconds of log-normal latencies (60 values per arm per second) to a default
/// latency judge, each arm's median multiplied per second by what `scale(second)` gives, and
/// returns the last judgement.
fn latency_judgement(seed: u64, secs: u64, scale: impl Fn(u64) -> (f64, f64)) -> Judgement {
    let mut rng = Rng::new(seed);
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let mut last = None;
    for s in 0..secs {
        let w = second(s);
        let (sb, sc) = scale(s);
        let base: Vec<f64> = (0..60)
            .map(|_| sb * (3.0 + 0.5 * rng.normal()).exp())
            .collect();
        let can: Vec<f64> = (0..60)
            .map(|_| sc * (3.0 + 0.5 * rng.normal()).exp())
            .collect();
        let (b, c) = (
            latency(Track::Stable, w, &base),
            latency(Track::Canary, w, &can),
        );
        last = Some(observe_even(&mut judge, &b, &c));
    }
    last.unwrap()
}

#[test]
fn latency_evidence_says_when_the_batches_scatter_more_than_their_values_explain() {
    // Each arm's median 6% up or down from second to second, independently: the scatter of
    // the batch differences is several times what 60 values per arm explain.
    let mut wander = Rng::new(77);
    let mut steps = Vec::new();
    for _ in 0..120 {
        let mut up = || {
            if wander.normal() > 0.0 {
                1.06
            } else {
                1.0 / 1.06
            }
        };
        steps.push((up(), up()));
    }
    let j = latency_judgement(41, 120, |s| steps[s as usize]);
    assert!(
        j.evidence.summary.contains("scatter") && j.evidence.summary.contains("robust mode"),
        "{}",
        j.evidence.summary
    );
    assert!(!j.evidence.summary.contains("  "), "{}", j.evidence.summary);
    // The same arms without wander, and with a steady 10% shift: no note.
    for (seed, shift) in [(42, 1.0), (43, 1.1)] {
        let j = latency_judgement(seed, 120, |_| (1.0, shift));
        assert!(
            !j.evidence.summary.contains("scatter"),
            "{}",
            j.evidence.summary
        );
    }
}

fn sketch(values: &[f64]) -> serin_signals::LatencySketch {
    let mut s = serin_signals::LatencySketch::new();
    for v in values {
        s.add(*v).unwrap();
    }
    s
}

#[test]
fn judges_answer_with_evidence_and_treat_no_data_as_inconclusive() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let w = second(0);
    let nb = no_data(Metric::ErrorRate, Track::Stable, w);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 10, 1);
    let j = judge
        .observe(&Sample::new(&nb, &c, None, w.end()).unwrap())
        .unwrap();
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.evidence.summary.contains("No data"),
        "{}",
        j.evidence.summary
    );
    assert_eq!(j.evidence.judge, "sequential-counts");

    // A wrong kind of measurement is an error and changes nothing.
    let before = judge.clone();
    let lat = latency(Track::Canary, w, &[1.0]);
    let lb = latency(Track::Stable, w, &[1.0]);
    let wrong = Sample::new(&lb, &lat, None, w.end());
    let wrong = wrong.unwrap();
    assert!(judge.observe(&wrong).is_err());
    assert_eq!(judge, before);

    let mut lj = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let j = lj.observe(&wrong).unwrap();
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert_eq!(j.evidence.effects.len(), 2);
    assert_eq!(j.evidence.effects[1].name, "p99Shift");
}

#[test]
fn a_window_in_which_an_arm_served_nothing_is_inconclusive_even_after_a_pass() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.5).unwrap();
    let mut last = None;
    for s in 0..600 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000, 5);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 1_000, 5);
        last = Some(observe_even(&mut judge, &b, &c).verdict);
    }
    assert_eq!(last, Some(Verdict::Pass), "an A/A run this long passes");
    let w = second(600);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000, 5);
    let idle = counts(Metric::ErrorRate, Track::Canary, w, 0, 0);
    let j = observe_even(&mut judge, &b, &idle);
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(
        j.evidence.summary.contains("Nothing served by the canary"),
        "{}",
        j.evidence.summary
    );
    assert_eq!(
        j.evidence.sample_size.baseline, 601_000,
        "totals still grow"
    );
    // The next window in which both arms serve passes again.
    let w = second(601);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000, 5);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 1_000, 5);
    assert_eq!(observe_even(&mut judge, &b, &c).verdict, Verdict::Pass);

    let mut lj = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let w = second(0);
    let empty = latency(Track::Canary, w, &[]);
    let j = observe_even(&mut lj, &latency(Track::Stable, w, &[5.0]), &empty);
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert!(j.evidence.summary.contains("Nothing served by the canary"));
}

/// Feeds a default count judge 20 minutes of 1,000 requests/s and a 0.5% error rate, the canary
/// taking `share(second)` of them, each arm's rate multiplied per 10 seconds by what
/// `factor(rng)` gives, and returns the last judgement.
fn count_judgement(
    seed: u64,
    share: impl Fn(u64) -> f64,
    mut factor: impl FnMut(&mut Rng) -> f64,
) -> Judgement {
    let mut rng = Rng::new(seed);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let (mut fb, mut fc) = (1.0, 1.0);
    let mut last = None;
    for s in 0..1_200 {
        if s % 10 == 0 {
            (fb, fc) = (factor(&mut rng), factor(&mut rng));
        }
        let w = second(s);
        let nc = (1_000.0 * share(s)).round() as u64;
        let nb = 1_000 - nc;
        let (eb, ec) = (
            rng.poisson(0.005 * nb as f64 * fb),
            rng.poisson(0.005 * nc as f64 * fc),
        );
        let b = counts(Metric::ErrorRate, Track::Stable, w, nb, eb.min(nb));
        let c = counts(Metric::ErrorRate, Track::Canary, w, nc, ec.min(nc));
        let sample = Sample::new(&b, &c, Some(share(s)), w.end()).unwrap();
        last = Some(judge.observe(&sample).unwrap());
    }
    last.unwrap()
}

#[test]
fn count_evidence_says_when_errors_clump_more_than_independent_requests_explain() {
    // Each arm's error rate 4 times higher or lower, independently, every 10 seconds.
    let even = |_| 0.5;
    let j = count_judgement(
        51,
        even,
        |rng| {
            if rng.uniform() < 0.5 { 0.25 } else { 1.75 }
        },
    );
    let summary = &j.evidence.summary;
    assert!(
        summary.contains("scatter") && summary.contains("robust (batched) mode"),
        "{summary}"
    );
    assert!(!summary.contains("  "), "{summary}");
    // The same arms at a steady rate get no note, at an even split or at one that steps from
    // 5% to 20% to 50%, which moves the share of errors the canary should have.
    let steps = |s: u64| [0.05, 0.2, 0.5][(s / 400) as usize];
    for seed in 52..55 {
        for j in [
            count_judgement(seed, even, |_| 1.0),
            count_judgement(seed, steps, |_| 1.0),
        ] {
            assert!(
                !j.evidence.summary.contains("scatter"),
                "{}",
                j.evidence.summary
            );
        }
    }
}

#[test]
fn latency_evidence_counts_the_values_clipped_at_the_outlier_fences() {
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let values: Vec<f64> = (0..40).map(|k| 10.0 + f64::from(k % 7)).collect();
    let mut with_outliers = values.clone();
    with_outliers[0] = 1e7;
    with_outliers[1] = 1e8;
    let mut last = None;
    for s in 0..3 {
        let w = second(s);
        let can = if s == 2 { &with_outliers } else { &values };
        let (b, c) = (
            latency(Track::Stable, w, &values),
            latency(Track::Canary, w, can),
        );
        last = Some(observe_even(&mut judge, &b, &c));
    }
    let summary = last.unwrap().evidence.summary;
    assert!(
        summary.contains("0 baseline and 2 canary latencies lay beyond the outlier fences"),
        "{summary}"
    );
}

/// Feeds a default count judge (α 0.05, no margin) up to `secs` seconds of
/// `((baseline requests, errors), (canary requests, errors))` at the stated canary `share`, and
/// returns its first failing judgement.
fn first_failure(
    secs: u64,
    share: f64,
    mut arms: impl FnMut(u64) -> ((u64, u64), (u64, u64)),
) -> Option<Judgement> {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    (0..secs).find_map(|s| {
        let w = second(s);
        let ((br, be), (cr, ce)) = arms(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
        let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
        let j = judge
            .observe(&Sample::new(&b, &c, Some(share), w.end()).unwrap())
            .unwrap();
        j.verdict.is_fail().then_some(j)
    })
}

#[test]
fn a_large_regression_fails_critical_and_the_evidence_names_it() {
    let mut rng = Rng::new(3);
    let j = first_failure(600, 0.1, |_| {
        ((900, rng.poisson(4.5)), (100, rng.poisson(2.5)))
    })
    .expect("a 5x regression fails");
    assert_eq!(j.verdict, Verdict::Fail(Severity::Critical));
    let effect = j.evidence.primary_effect().unwrap();
    assert_eq!(effect.name, "errorRateRatio");
    assert!(effect.estimate > 2.0, "{}", effect.estimate);
    assert!(j.evidence.threshold == Some(20.0));
    assert!(j.evidence.window.is_some() && j.evidence.sample_size.canary > 0);
}

/// A canary that errs while the baseline never has: the ratio is unbounded, not undefined, and
/// the summary says why.
#[test]
fn errors_only_in_the_canary_fail_critical_with_an_unbounded_ratio() {
    let j = first_failure(60, 0.5, |_| ((100, 0), (100, 2))).expect("only the canary errs");
    assert_eq!(j.verdict, Verdict::Fail(Severity::Critical));
    let ratio = j.evidence.primary_effect().unwrap().estimate;
    assert!(ratio.is_infinite() && ratio > 0.0, "{ratio}");
    assert!(
        j.evidence
            .summary
            .contains("unbounded: no baseline errors yet"),
        "{}",
        j.evidence.summary
    );
}

#[test]
fn alpha_sharing_splits_or_averages_and_says_how() {
    let now = Timestamp::from_millis(1);
    let mut a = SequentialCountJudge::new(
        Metric::ErrorRate,
        AlphaSharing::Split.per_judge_alpha(0.05, 2),
        0.0,
    )
    .unwrap();
    let l = SequentialLatencyJudge::new(Metric::Latency, 0.025, 0.0).unwrap();
    let w = second(0);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 100, 1);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 1);
    let ja = a.observe(&Sample::new(&b, &c, None, now).unwrap()).unwrap();
    let jl = l.judgement(now);
    let split = combine(&[ja.clone(), jl.clone()], 0.05, AlphaSharing::Split, now).unwrap();
    assert_eq!(split.verdict, Verdict::Inconclusive);
    assert!(
        split.evidence.summary.contains("Bonferroni"),
        "{}",
        split.evidence.summary
    );
    let avg = combine(&[ja.clone(), jl.clone()], 0.05, AlphaSharing::Average, now).unwrap();
    assert!(avg.evidence.summary.contains("e-value averaging"));
    // Averaged, the evidence states the mean and the 1/alpha the verdict was decided on, not
    // the top judge's own.
    let e = |j: &Judgement| match j.evidence.statistic {
        Some(Statistic::EValue(e)) => e,
        _ => 0.0,
    };
    assert_eq!(
        avg.evidence.statistic,
        Some(Statistic::EValue((e(&ja) + e(&jl)) / 2.0))
    );
    assert_eq!(avg.evidence.threshold, Some(20.0));
    assert!(combine(&[], 0.05, AlphaSharing::Split, now).is_err());
}

/// A sample whose two observations are of one track compares that track with itself: it is
/// refused, as a sample of two metrics is, rather than judged (it would pass any canary).
#[test]
fn a_sample_whose_arms_are_one_track_is_refused() {
    let w = second(0);
    let canary = counts(Metric::ErrorRate, Track::Canary, w, 1000, 20);
    let msg = Sample::new(&canary, &canary, Some(0.5), w.end())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(msg.contains("sample.canary.track `canary`"), "{msg}");
    let stable = counts(Metric::ErrorRate, Track::Stable, w, 1000, 20);
    assert!(Sample::new(&stable, &stable, Some(0.5), w.end()).is_err());
}

/// The verdicts of a count judge with `margin` and `sides`, fed an even split of 2,000 requests
/// a second with the canary's error rate `ratio` times the baseline's 2%: every verdict over
/// `secs` seconds.
fn count_verdicts(margin: f64, sides: Sides, ratio: f64, secs: u64) -> Vec<Verdict> {
    let mut rng = Rng::new(11);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, margin)
        .and_then(|j| j.with_sides(sides))
        .unwrap();
    (0..secs)
        .map(|s| {
            let w = second(s);
            let (eb, ec) = (rng.poisson(20.0), rng.poisson(20.0 * ratio));
            let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000, eb);
            let c = counts(Metric::ErrorRate, Track::Canary, w, 1_000, ec);
            observe_even(&mut judge, &b, &c).verdict
        })
        .collect()
}

/// The same for a latency judge: 60 log-normal values per arm a second, the canary's median
/// `ratio` times the baseline's.
fn latency_verdicts(margin: f64, sides: Sides, ratio: f64, secs: u64) -> Vec<Verdict> {
    let mut rng = Rng::new(12);
    let config = LatencyTestConfig {
        sides,
        ..LatencyTestConfig::new(0.05).with_margin(margin)
    };
    let mut judge =
        SequentialLatencyJudge::with_config(Metric::Latency, config, SeverityBands::default())
            .unwrap();
    (0..secs)
        .map(|s| {
            let w = second(s);
            let base: Vec<f64> = (0..60).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect();
            let can: Vec<f64> = (0..60)
                .map(|_| ratio * (3.0 + 0.5 * rng.normal()).exp())
                .collect();
            let (b, c) = (
                latency(Track::Stable, w, &base),
                latency(Track::Canary, w, &can),
            );
            observe_even(&mut judge, &b, &c).verdict
        })
        .collect()
}

#[test]
fn a_two_sided_judge_passes_only_a_canary_within_the_margin_on_both_sides() {
    for verdicts in [
        count_verdicts(0.2, Sides::TwoSided, 0.6, 600),
        latency_verdicts(0.1, Sides::TwoSided, 0.8, 600),
    ] {
        // Better beyond the margin: never a pass; in time, a failure.
        assert!(!verdicts.contains(&Verdict::Pass), "{verdicts:?}");
        assert!(
            verdicts.last().is_some_and(Verdict::is_fail),
            "{verdicts:?}"
        );
    }
    // One-sided, the same canaries pass; and two-sided, ones within the margin do.
    for verdicts in [
        count_verdicts(0.2, Sides::CanaryWorse, 0.6, 600),
        latency_verdicts(0.1, Sides::CanaryWorse, 0.8, 600),
        count_verdicts(0.2, Sides::TwoSided, 1.0, 600),
        latency_verdicts(0.1, Sides::TwoSided, 1.0, 600),
    ] {
        assert_eq!(verdicts.last(), Some(&Verdict::Pass));
    }
}

#[test]
fn a_canary_better_than_the_baseline_fails_two_sided_as_a_warning_never_critical() {
    // No canary errors at all (ratio 0, effect -1): as large as the critical band, yet an
    // improvement must not ask for an immediate rollback.
    let verdicts = count_verdicts(0.2, Sides::TwoSided, 0.0, 600);
    assert_eq!(
        verdicts.iter().find(|v| v.is_fail()),
        Some(&Verdict::Fail(Severity::Warning)),
    );
    // A canary 70% faster under the latency bands (critical from +50%): a warning too.
    let mut rng = Rng::new(13);
    let config = LatencyTestConfig {
        sides: Sides::TwoSided,
        ..LatencyTestConfig::new(0.05).with_margin(0.1)
    };
    let mut judge =
        SequentialLatencyJudge::with_config(Metric::Latency, config, SeverityBands::latency())
            .unwrap();
    let failed = (0..600).find_map(|s| {
        let w = second(s);
        let base: Vec<f64> = (0..60).map(|_| (3.0 + 0.5 * rng.normal()).exp()).collect();
        let can: Vec<f64> = (0..60)
            .map(|_| 0.3 * (3.0 + 0.5 * rng.normal()).exp())
            .collect();
        let (b, c) = (
            latency(Track::Stable, w, &base),
            latency(Track::Canary, w, &can),
        );
        let j = observe_even(&mut judge, &b, &c);
        j.verdict.is_fail().then_some(j)
    });
    let failed = failed.expect("a canary far faster fails a two-sided judge");
    assert_eq!(failed.verdict, Verdict::Fail(Severity::Warning));
    assert!(
        failed.evidence.summary.contains("lower"),
        "{}",
        failed.evidence.summary
    );
    // Worse by as much is still critical, one- or two-sided.
    for sides in [Sides::CanaryWorse, Sides::TwoSided] {
        let verdicts = count_verdicts(0.2, sides, 3.0, 600);
        assert_eq!(
            verdicts.iter().find(|v| v.is_fail()),
            Some(&Verdict::Fail(Severity::Critical)),
            "{sides:?}"
        );
    }
}

#[test]
fn a_reported_failure_keeps_its_severity_when_the_split_changes() {
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let mut rng = Rng::new(3);
    let feed = |judge: &mut SequentialCountJudge, rng: &mut Rng, s: u64, share: f64| {
        let w = second(s);
        let nc = (1_000.0 * share) as u64;
        let (eb, ec) = (
            rng.poisson(0.02 * (1_000 - nc) as f64),
            rng.poisson(0.03 * nc as f64),
        );
        let b = counts(Metric::ErrorRate, Track::Stable, w, 1_000 - nc, eb);
        let c = counts(Metric::ErrorRate, Track::Canary, w, nc, ec);
        let sample = Sample::new(&b, &c, Some(share), w.end()).unwrap();
        judge.observe(&sample).unwrap().verdict
    };
    // Half as bad again: a warning, not critical.
    let failed = (0..600)
        .map(|s| feed(&mut judge, &mut rng, s, 0.5))
        .find(Verdict::is_fail);
    assert_eq!(failed, Some(Verdict::Fail(Severity::Warning)));
    // A new split starts a new segment of the ratio, with no errors yet: the failure stands
    // as reported, and stays through a resume.
    let w = second(600);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 0);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
    let sample = Sample::new(&b, &c, Some(0.1), w.end()).unwrap();
    assert_eq!(
        judge.observe(&sample).unwrap().verdict,
        Verdict::Fail(Severity::Warning)
    );
    let back: SequentialCountJudge =
        serde_json::from_str(&serde_json::to_string(&judge).unwrap()).unwrap();
    assert_eq!(
        back.judgement(w.end()).verdict,
        Verdict::Fail(Severity::Warning)
    );
}
