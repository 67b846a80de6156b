//! What the sequential judges' evidence says matches the numbers beside it.

use crate::common;

use common::{Rng, counts, latency, second};
use serin_canary::judge::{Effect, Judge, Judgement, Sample, Verdict};
use serin_canary::sequential::{
    AlphaSharing, CountMode, CountTestConfig, SequentialCountJudge, SequentialLatencyJudge, Sides,
    combine,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Observation, Track};

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

/// The effect named `name` in a judgement's evidence.
fn effect<'j>(j: &'j Judgement, name: &str) -> Option<&'j Effect> {
    j.evidence.effects.iter().find(|e| e.name == name)
}

/// Feeds `judge` per-second samples from `sample(s)` until it fails, and returns the failure
/// with the second it came at.
fn first_failure(
    judge: &mut impl Judge,
    mut sample: impl FnMut(u64) -> (Observation, Observation),
) -> (Judgement, u64) {
    for s in 0..20_000 {
        let (b, c) = sample(s);
        let j = judge
            .observe(&Sample::new(&b, &c, Some(0.05), second(s).end()).unwrap())
            .unwrap();
        if j.verdict.is_fail() {
            return (j, s);
        }
    }
    panic!("no failure");
}

/// A 15% slowdown that begins after half an hour fails by the start-time mixture while the
/// whole run's shift is still near 0: the evidence says that the recent part decided, from
/// which sample, and what the shift is since then, beside the whole run's.
#[test]
fn a_late_slowdown_s_failure_names_its_start_and_the_shift_since() {
    let onset = 1_800;
    let mut rng = Rng::new(7);
    let mut judge = SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let (j, failed_at) = first_failure(&mut judge, |s| {
        let shift = if s >= onset { 1.15f64.ln() } else { 0.0 };
        let mut values = |n: usize, shift: f64| -> Vec<f64> {
            (0..n)
                .map(|_| 40.0 * (0.4 * rng.normal() + shift).exp())
                .collect()
        };
        let (bv, cv) = (values(95, 0.0), values(5, shift));
        (
            latency(Track::Stable, second(s), &bv),
            latency(Track::Canary, second(s), &cv),
        )
    });
    assert!(failed_at > onset, "failed at {failed_at}");
    let whole = effect(&j, "medianShift").unwrap();
    assert!(whole.estimate < 0.05, "{whole:?}");
    let since = effect(&j, "medianShiftSinceOnset").expect("the shift since the onset");
    let i = since.interval.unwrap();
    assert!(i.contains(0.15) && i.lower > whole.estimate, "{since:?}");
    let summary = &j.evidence.summary;
    let (start, of) = stated_start(summary);
    assert!(start > onset - 120 && start <= failed_at, "{summary}");
    assert_eq!(of, failed_at + 1, "{summary}");
    let stated = format!(
        "the median shift is {:+.1}% [{:+.1}%, {:+.1}%] at confidence 0.95, against {:+.1}%",
        since.estimate * 100.0,
        i.lower * 100.0,
        i.upper * 100.0,
        whole.estimate * 100.0
    );
    assert!(summary.contains(&stated), "{summary}");
    assert!(summary.contains("over the whole run"), "{summary}");
}

/// Errors that treble after an hour fail by the start-time mixture: the evidence names the
/// start it weighs most and the error-rate ratio since then, beside the whole split's.
#[test]
fn a_late_error_rise_s_failure_names_its_start_and_the_ratio_since() {
    let onset = 3_600;
    let mut rng = Rng::new(11);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let (j, failed_at) = first_failure(&mut judge, |s| {
        let ratio = if s >= onset { 3.0 } else { 1.0 };
        let w = second(s);
        (
            counts(
                Metric::ErrorRate,
                Track::Stable,
                w,
                475,
                rng.poisson(475.0 * 0.005),
            ),
            counts(
                Metric::ErrorRate,
                Track::Canary,
                w,
                25,
                rng.poisson(25.0 * 0.005 * ratio),
            ),
        )
    });
    assert!(failed_at > onset, "failed at {failed_at}");
    let whole = effect(&j, "errorRateRatio").unwrap();
    assert!(whole.estimate < 1.5, "{whole:?}");
    let since = effect(&j, "errorRateRatioSinceOnset").expect("the ratio since the onset");
    let i = since.interval.unwrap();
    assert!(i.lower > 1.0 && i.contains(3.0), "{since:?}");
    let summary = &j.evidence.summary;
    let (start, of) = stated_start(summary);
    assert!(start > onset - 600 && start <= failed_at, "{summary}");
    assert_eq!(of, failed_at + 1, "{summary}");
    let stated = format!(
        "the error-rate ratio is {:.3} [{:.3}, {:.3}] at confidence 0.95, against {:.3}",
        since.estimate, i.lower, i.upper, whole.estimate
    );
    assert!(summary.contains(&stated), "{summary}");
    assert!(
        summary.contains("over the current traffic split"),
        "{summary}"
    );
}

/// The start a summary names, "since T (sample N of M)", as `(N, M)`, checking that `T` is the
/// end of the sample before it (the samples here are seconds from the epoch).
fn stated_start(summary: &str) -> (u64, u64) {
    let tail = summary
        .split_once("a change that began late: since ")
        .unwrap_or_else(|| panic!("no start named: {summary}"))
        .1;
    let (time, rest) = tail.split_once(" (sample ").unwrap();
    let (n, rest) = rest.split_once(" of ").unwrap();
    let m = rest.split_once(')').unwrap().0;
    let (n, m) = (n.parse().unwrap(), m.parse().unwrap());
    assert_eq!(time, second(n - 1).start().to_string(), "{summary}");
    (n, m)
}

/// A judge read back from a state saved before it kept the onsets' times (the `onsets` field
/// removed) still names the start that decides, by its sample; one read back whole names it by
/// time, as if it had never been saved.
#[test]
fn a_late_start_saved_without_its_time_is_named_by_its_sample() {
    let onset = 3_600;
    let sample = |s: u64, rng: &mut Rng| {
        let ratio = if s >= onset { 3.0 } else { 1.0 };
        let w = second(s);
        (
            counts(Metric::ErrorRate, Track::Stable, w, 475, rng.poisson(2.375)),
            counts(
                Metric::ErrorRate,
                Track::Canary,
                w,
                25,
                rng.poisson(0.125 * ratio),
            ),
        )
    };
    let mut rng = Rng::new(11);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let (whole, failed_at) = first_failure(&mut judge, |s| sample(s, &mut rng));
    let (start, _) = stated_start(&whole.evidence.summary);

    let mut rng = Rng::new(11);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    for s in 0..failed_at {
        let (b, c) = sample(s, &mut rng);
        judge
            .observe(&Sample::new(&b, &c, Some(0.05), second(s).end()).unwrap())
            .unwrap();
    }
    let saved = serde_json::to_value(&judge).unwrap();
    assert!(saved.get("onsets").is_some(), "{saved}");
    let mut old = saved.clone();
    old.as_object_mut().unwrap().remove("onsets");
    let (b, c) = sample(failed_at, &mut rng);
    let last = Sample::new(&b, &c, Some(0.05), second(failed_at).end()).unwrap();
    let mut read_back: SequentialCountJudge = serde_json::from_value(saved).unwrap();
    assert_eq!(read_back.observe(&last).unwrap(), whole);
    let mut from_old: SequentialCountJudge = serde_json::from_value(old).unwrap();
    let j = from_old.observe(&last).unwrap();
    assert_eq!(j.verdict, whole.verdict);
    let named = format!("since sample {start} (of {}), the start", failed_at + 1);
    assert!(
        j.evidence.summary.contains(&named),
        "{}",
        j.evidence.summary
    );
}

/// A regression that begins after a good hour is graded by its size since it began, as the
/// evidence beside states it: the whole run's ratio, diluted by the hour, is near 1.
#[test]
fn a_late_regression_is_graded_by_its_size_since_it_began() {
    let mut rng = Rng::new(3);
    let mut judge = SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap();
    let failed = (0..7_200)
        .find_map(|s| {
            let w = second(s);
            let canary_rate = if s < 3_600 { 0.005 } else { 0.025 };
            let b = counts(
                Metric::ErrorRate,
                Track::Stable,
                w,
                475,
                rng.poisson(475.0 * 0.005),
            );
            let c = counts(
                Metric::ErrorRate,
                Track::Canary,
                w,
                25,
                rng.poisson(25.0 * canary_rate),
            );
            let j = judge
                .observe(&Sample::new(&b, &c, Some(0.05), w.end()).unwrap())
                .unwrap();
            j.verdict.is_fail().then_some((s, j))
        })
        .expect("caught");
    let (s, j) = failed;
    let effect = |name: &str| {
        j.evidence
            .effects
            .iter()
            .find(|e| e.name == name)
            .unwrap()
            .estimate
    };
    assert!(s > 3_600, "rolled back at {s} s, before the regression");
    assert!(effect("errorRateRatio") < 2.0, "{:?}", j.evidence.effects);
    assert!(
        effect("errorRateRatioSinceOnset") >= 2.0,
        "{:?}",
        j.evidence.effects
    );
    assert_eq!(
        j.verdict,
        Verdict::Fail(serin_canary::judge::Severity::Critical),
        "{}",
        j.evidence.summary
    );
}
