//! Argo Rollouts and Flagger parity: the judges follow those controllers' rules.

use serin_canary::judge::{Judge, Sample, Severity, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, ArgoPhase, CheckOutcome, FlaggerConfig, FlaggerJudge, Range,
};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};

fn argo(success: Option<Range>, failure: Option<Range>) -> ArgoJudge {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = success.map(Into::into);
    c.failure_condition = failure.map(Into::into);
    ArgoJudge::new(c).unwrap()
}

#[test]
fn argo_measurement_phases_follow_evaluate_result() {
    let none = argo(None, None);
    assert_eq!(none.evaluate(Some(0.5)), ArgoPhase::Successful);
    assert_eq!(none.evaluate(None), ArgoPhase::Error);
    let only_success = argo(Some(Range::at_most(0.01)), None);
    assert_eq!(only_success.evaluate(Some(0.02)), ArgoPhase::Failed);
    assert_eq!(only_success.evaluate(Some(0.01)), ArgoPhase::Successful);
    let only_failure = argo(None, Some(Range::at_least(0.05)));
    assert_eq!(only_failure.evaluate(Some(0.02)), ArgoPhase::Successful);
    assert_eq!(only_failure.evaluate(Some(0.05)), ArgoPhase::Failed);
    let both = argo(Some(Range::at_most(0.01)), Some(Range::at_least(0.05)));
    assert_eq!(both.evaluate(Some(0.02)), ArgoPhase::Inconclusive);
    assert_eq!(both.evaluate(Some(0.06)), ArgoPhase::Failed);
}

#[test]
fn argo_limits_decide_the_run() {
    // failureLimit 0: the first failed measurement fails the run.
    let mut j = argo(Some(Range::at_most(0.01)), None);
    j.measure(Some(0.0));
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Failed);

    // failureLimit 2: the third failure fails; −1 never fails (Argo ≥ 1.8 takes −1 only with a
    // consecutiveSuccessLimit, which then is the only way the run ends).
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_limit = 2;
    let mut j = ArgoJudge::new(c.clone()).unwrap();
    for _ in 0..2 {
        j.measure(Some(0.5));
    }
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Failed);
    c.failure_limit = -1;
    c.consecutive_success_limit = 3;
    let mut j = ArgoJudge::new(c).unwrap();
    for _ in 0..50 {
        j.measure(Some(0.5));
    }
    assert_eq!(j.phase(), ArgoPhase::Running);

    // consecutiveErrorLimit 4: five errors in a row are an Error run; a success resets the run.
    let mut j = argo(Some(Range::at_most(0.01)), None);
    for _ in 0..4 {
        j.measure(None);
    }
    j.measure(Some(0.0));
    for _ in 0..4 {
        j.measure(None);
    }
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(None);
    assert_eq!(j.phase(), ArgoPhase::Error);

    // inconclusiveLimit 0: one inconclusive measurement makes the run inconclusive.
    let mut j = argo(Some(Range::at_most(0.01)), Some(Range::at_least(0.05)));
    j.measure(Some(0.03));
    assert_eq!(j.phase(), ArgoPhase::Inconclusive);

    // count and consecutiveSuccessLimit end the run successfully.
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.count = Some(3);
    let mut j = ArgoJudge::new(c.clone()).unwrap();
    for _ in 0..3 {
        j.measure(Some(1.0));
    }
    assert_eq!(j.phase(), ArgoPhase::Successful);
    c.count = None;
    c.consecutive_success_limit = 2;
    let mut j = ArgoJudge::new(c).unwrap();
    j.measure(Some(1.0));
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(1.0));
    assert_eq!(j.phase(), ArgoPhase::Successful);
}

fn sample_counts(requests: u64, errors: Option<u64>, minute: u64) -> (Observation, Observation) {
    let w = Window::new(
        Timestamp::from_millis(minute * 60_000),
        Timestamp::from_millis((minute + 1) * 60_000),
    )
    .unwrap();
    let base = Observation::new(
        Metric::ErrorRate,
        Track::Stable,
        w,
        Measurement::Counts(Counts::new(10_000, 50).unwrap()),
    );
    let m = match errors {
        Some(e) => Measurement::Counts(Counts::new(requests, e).unwrap()),
        None => Measurement::NoData,
    };
    (
        base,
        Observation::new(Metric::ErrorRate, Track::Canary, w, m),
    )
}

fn observe(j: &mut dyn Judge, requests: u64, errors: Option<u64>, minute: u64) -> Verdict {
    let (b, c) = sample_counts(requests, errors, minute);
    let s = Sample::new(
        &b,
        &c,
        Some(0.05),
        Timestamp::from_millis((minute + 1) * 60_000),
    )
    .unwrap();
    j.observe(&s).unwrap().verdict
}

#[test]
fn argo_missing_data_is_inconclusive_never_a_failure() {
    let mut j = argo(Some(Range::at_most(0.01)), None);
    assert_eq!(observe(&mut j, 600, Some(1), 0), Verdict::Pass);
    let mut last = Verdict::Pass;
    for m in 1..=6 {
        last = observe(&mut j, 0, None, m);
    }
    assert_eq!(j.phase(), ArgoPhase::Error);
    assert_eq!(last, Verdict::Inconclusive);
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert!(ev.summary.contains("abort"), "{}", ev.summary);
    // As in Argo, an ended run measures no more: a failing measurement changes nothing.
    assert_eq!(observe(&mut j, 600, Some(60), 7), Verdict::Inconclusive);
    assert_eq!(j.phase(), ArgoPhase::Error);
}

#[test]
fn an_argo_run_that_ended_keeps_its_phase() {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.count = Some(3);
    let mut j = ArgoJudge::new(c).unwrap();
    for m in 0..3 {
        assert_eq!(observe(&mut j, 600, Some(1), m), Verdict::Pass);
    }
    assert_eq!(j.phase(), ArgoPhase::Successful);
    // Later failing measurements are not taken: the run stays Successful.
    for m in 3..6 {
        assert_eq!(observe(&mut j, 600, Some(60), m), Verdict::Pass);
    }
    assert_eq!(j.phase(), ArgoPhase::Successful);
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert!(
        ev.summary.starts_with("Argo: run Successful"),
        "{}",
        ev.summary
    );
    assert!(ev.summary.contains("3 measurements"), "{}", ev.summary);
}

fn flagger(no_data_fails: bool, threshold: u32) -> FlaggerJudge {
    let mut c = FlaggerConfig::new(
        Metric::ErrorRate,
        Quantity::SuccessRatePercent,
        Range::at_least(99.0),
    );
    c.no_data_fails = no_data_fails;
    c.threshold = threshold;
    FlaggerJudge::new(c).unwrap()
}

#[test]
fn flagger_counts_failed_checks_up_to_its_threshold() {
    let mut j = flagger(false, 2);
    assert_eq!(observe(&mut j, 1000, Some(5), 0), Verdict::Pass); // 99.5% ≥ 99
    assert_eq!(observe(&mut j, 1000, Some(20), 1), Verdict::Inconclusive); // 98%: failed check
    assert_eq!(j.failed_checks(), 1);
    // Failed checks are never reset by passing ones within an analysis.
    assert_eq!(observe(&mut j, 1000, Some(0), 2), Verdict::Pass);
    assert_eq!(
        observe(&mut j, 1000, Some(20), 3),
        Verdict::Fail(Severity::Warning)
    );
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert!(ev.summary.contains("2 failed checks"), "{}", ev.summary);
    j.reset();
    assert_eq!(j.failed_checks(), 0);
}

#[test]
fn flagger_no_data_fails_only_in_parity_mode() {
    let mut serin = flagger(false, 1);
    assert_eq!(serin.check(None), CheckOutcome::NoData);
    assert_eq!(
        serin.judgement(Timestamp::EPOCH).verdict,
        Verdict::Inconclusive
    );
    assert_eq!(observe(&mut serin, 0, Some(0), 1), Verdict::Inconclusive); // 0 requests
    let mut parity = flagger(true, 1);
    assert_eq!(
        observe(&mut parity, 0, None, 0),
        Verdict::Fail(Severity::Warning)
    );
}

#[test]
fn configs_validate_with_paths_and_deny_unknown_fields() {
    let mut c = FlaggerConfig::new(
        Metric::Latency,
        Quantity::LatencyQuantile(0.99),
        Range::at_most(500.0),
    );
    c.threshold_range = Range::default();
    let msg = FlaggerJudge::new(c).unwrap_err().to_string();
    assert!(msg.contains("flaggerConfig.thresholdRange"), "{msg}");
    let mut a = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    a.failure_limit = -2;
    let msg = ArgoJudge::new(a).unwrap_err().to_string();
    assert!(
        msg.contains("argoConfig.failureLimit") && msg.contains("-2"),
        "{msg}"
    );
    let json = r#"{"metric":"error_rate","quantity":"successRatePercent",
        "thresholdRange":{"min":99}}"#;
    let c: FlaggerConfig = serde_json::from_str(json).unwrap();
    assert_eq!((c.threshold, c.no_data_fails), (1, false));
    let json = r#"{"metric":"error_rate","quantity":"errorRate","failureLimits":1}"#;
    assert!(serde_json::from_str::<ArgoConfig>(json).is_err());
    let json = r#"{"metric":"error_rate","quantity":"errorRate","successCondition":{"max":0.01}}"#;
    let a: ArgoConfig = serde_json::from_str(json).unwrap();
    assert_eq!((a.failure_limit, a.consecutive_error_limit), (0, 4));
}

#[test]
fn argo_errored_measurements_do_not_count_toward_count() {
    // Argo retries an errored measurement and does not count it (`runMeasurements` increments
    // `count` only for Successful, Failed and Inconclusive), so `count: 3` is never reached by
    // errors alone: a provider outage is not a Successful run.
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.count = Some(3);
    let mut j = ArgoJudge::new(c).unwrap();
    for m in 0..3 {
        assert_eq!(observe(&mut j, 0, None, m), Verdict::Inconclusive);
    }
    assert_eq!(j.phase(), ArgoPhase::Running);
    // The run goes on: three good measurements end it successfully.
    for m in 3..6 {
        observe(&mut j, 600, Some(1), m);
    }
    assert_eq!(j.phase(), ArgoPhase::Successful);
    assert_eq!(j.judgement(Timestamp::EPOCH).verdict, Verdict::Pass);
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert_eq!(ev.sample_size.canary, 3);
    assert!(ev.summary.contains("3 errors"), "{}", ev.summary);

    // Errors alone past consecutiveErrorLimit are an Error run even before any count.
    let mut j = argo(Some(Range::at_most(0.01)), None);
    for _ in 0..5 {
        j.measure(None);
    }
    assert_eq!(j.phase(), ArgoPhase::Error);
}

#[test]
fn a_successful_argo_run_passes_whatever_its_last_measurement() {
    // failureLimit 1 tolerates one failure: Argo ends `count: 2` Successful after a success
    // and a failure, and the rollout goes on. The run has ended, so the judge must pass rather
    // than hold on an inconclusive verdict that no later measurement can change.
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_limit = 1;
    c.count = Some(2);
    let mut j = ArgoJudge::new(c).unwrap();
    assert_eq!(observe(&mut j, 600, Some(1), 0), Verdict::Pass);
    let last = observe(&mut j, 600, Some(60), 1);
    assert_eq!(j.phase(), ArgoPhase::Successful);
    assert_eq!(last, Verdict::Pass);
}

fn argo_limits(
    failure_limit: i64,
    consecutive_success_limit: u32,
    count: Option<u32>,
) -> ArgoConfig {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01).into());
    c.failure_limit = failure_limit;
    c.consecutive_success_limit = consecutive_success_limit;
    c.count = count;
    c
}

#[test]
fn argo_refuses_a_metric_that_can_neither_fail_nor_succeed() {
    // Argo ≥ 1.8: "One of them has to be applicable (i.e. not disabled) ..., otherwise a
    // validation error is thrown" (failureLimit −1 and consecutiveSuccessLimit 0 disable both).
    let msg = ArgoJudge::new(argo_limits(-1, 0, None))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("argoConfig.failureLimit")
            && msg.contains("-1")
            && msg.contains("consecutiveSuccessLimit"),
        "{msg}"
    );
    assert!(ArgoJudge::new(argo_limits(-1, 1, None)).is_ok());
    // A journalled judge with both disabled is refused on load too.
    let mut saved =
        serde_json::to_value(ArgoJudge::new(argo_limits(-1, 1, None)).unwrap()).unwrap();
    saved["config"]["consecutiveSuccessLimit"] = serde_json::json!(0);
    assert!(serde_json::from_value::<ArgoJudge>(saved).is_err());
}

/// Argo reads `count` and the limits as `IntOrString`, so that a template may fill them from
/// its arguments (`count: "{{args.count}}"`): a quoted integer reads as the integer, and an
/// argument left unsubstituted is refused, as nothing here substitutes it.
#[test]
fn argo_counts_and_limits_written_as_quoted_integers_read_as_the_integers() {
    let read = |fields: serde_json::Value| {
        let mut c = serde_json::json!({"metric": "error_rate", "quantity": "errorRate"});
        for (k, v) in fields.as_object().unwrap() {
            c[k] = v.clone();
        }
        serde_json::from_value::<ArgoConfig>(c).map_err(|e| e.to_string())
    };
    let quoted = read(serde_json::json!({"count": "5", "failureLimit": "3",
        "inconclusiveLimit": "2", "consecutiveErrorLimit": "1", "interval": "1m"}))
    .unwrap();
    let bare = read(serde_json::json!({"count": 5, "failureLimit": 3,
        "inconclusiveLimit": 2, "consecutiveErrorLimit": 1, "interval": "1m"}))
    .unwrap();
    assert_eq!(quoted, bare);
    assert_eq!((quoted.count, quoted.failure_limit), (Some(5), 3));
    // Written back, they are numbers.
    assert_eq!(serde_json::to_value(&quoted).unwrap()["count"], 5);
    // −1, quoted too, disables the failure limit.
    let disabled = read(serde_json::json!({"failureLimit": "-1",
        "consecutiveSuccessLimit": "2", "interval": "1m"}))
    .unwrap();
    assert_eq!(
        (disabled.failure_limit, disabled.consecutive_success_limit),
        (-1, 2)
    );
    // A string that holds no integer is refused, naming the field and the value.
    let msg = read(serde_json::json!({"count": "{{args.count}}"})).unwrap_err();
    assert!(
        msg.contains("argoConfig.count `{{args.count}}`") && msg.contains("not substituted"),
        "{msg}"
    );
    let msg = read(serde_json::json!({"failureLimit": "three"})).unwrap_err();
    assert!(msg.contains("argoConfig.failureLimit `three`"), "{msg}");
    let msg = read(serde_json::json!({"inconclusiveLimit": "-2"})).unwrap_err();
    assert!(msg.contains("argoConfig.inconclusiveLimit `-2`"), "{msg}");
    assert!(read(serde_json::json!({"count": 2.5})).is_err());
}

#[test]
fn argo_refuses_a_count_its_limits_could_never_reach() {
    // Argo's ValidateMetric: count must be ≥ failureLimit and ≥ inconclusiveLimit; and a streak
    // longer than the run could never end it successfully.
    for (c, field) in [
        (argo_limits(3, 0, Some(2)), "failureLimit (3)"),
        (argo_limits(-1, 4, Some(3)), "consecutiveSuccessLimit (4)"),
    ] {
        let msg = ArgoJudge::new(c).unwrap_err().to_string();
        assert!(
            msg.contains("argoConfig.count") && msg.contains(field),
            "{msg}"
        );
    }
    let mut c = argo_limits(0, 0, Some(1));
    c.inconclusive_limit = 2;
    let msg = ArgoJudge::new(c).unwrap_err().to_string();
    assert!(msg.contains("inconclusiveLimit (2)"), "{msg}");
    assert!(ArgoJudge::new(argo_limits(2, 2, Some(2))).is_ok());
}

#[test]
fn argo_count_ends_the_run_by_which_limits_apply() {
    // Success, failure, success, success: count 4 is reached with a streak of 2.
    let run = |c: ArgoConfig| {
        let mut j = ArgoJudge::new(c).unwrap();
        for v in [0.0, 0.5, 0.0, 0.0] {
            j.measure(Some(v));
        }
        (j.phase(), j.judgement(Timestamp::EPOCH))
    };
    // Only failureLimit (1 failure tolerated): Successful, as before 1.8.
    let (phase, j) = run(argo_limits(1, 0, Some(4)));
    assert_eq!((phase, j.verdict), (ArgoPhase::Successful, Verdict::Pass));
    // Only consecutiveSuccessLimit 3: the streak never came, so the run is Failed.
    let (phase, j) = run(argo_limits(-1, 3, Some(4)));
    assert_eq!(
        (phase, j.verdict),
        (ArgoPhase::Failed, Verdict::Fail(Severity::Warning))
    );
    assert!(
        j.evidence
            .summary
            .contains("without 3 consecutive successes"),
        "{}",
        j.evidence.summary
    );
    // Both apply and neither was reached: Inconclusive.
    let (phase, j) = run(argo_limits(1, 3, Some(4)));
    assert_eq!(
        (phase, j.verdict),
        (ArgoPhase::Inconclusive, Verdict::Inconclusive)
    );
    // The streak reached before the count ends the run successfully.
    let mut j = ArgoJudge::new(argo_limits(-1, 2, Some(4))).unwrap();
    for v in [0.5, 0.0, 0.0] {
        j.measure(Some(v));
    }
    assert_eq!(j.phase(), ArgoPhase::Successful);
}

#[test]
fn argo_with_a_success_streak_to_reach_passes_only_once_it_is_reached() {
    // Argo waits for consecutiveSuccessLimit successes in a row: one success is not yet a pass.
    let mut j = ArgoJudge::new(argo_limits(-1, 3, None)).unwrap();
    assert_eq!(observe(&mut j, 600, Some(1), 0), Verdict::Inconclusive);
    assert_eq!(observe(&mut j, 600, Some(60), 1), Verdict::Inconclusive);
    assert_eq!(observe(&mut j, 600, Some(1), 2), Verdict::Inconclusive);
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert!(
        ev.summary.contains("1 of 3 consecutive successes"),
        "{}",
        ev.summary
    );
    assert_eq!(observe(&mut j, 600, Some(1), 3), Verdict::Inconclusive);
    assert_eq!(observe(&mut j, 600, Some(1), 4), Verdict::Pass);
    assert_eq!(j.phase(), ArgoPhase::Successful);
}

/// A NaN or infinite result is no data, whichever way it is judged: `evaluate` answers what
/// `measure` records, so NaN never passes a failure condition it is not inside.
#[test]
fn argo_evaluate_takes_a_non_finite_result_as_no_data() {
    let only_success = argo(Some(Range::at_most(0.01)), None);
    let only_failure = argo(None, Some(Range::at_least(0.05)));
    let both = argo(Some(Range::at_most(0.01)), Some(Range::at_least(0.05)));
    for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        for j in [&only_success, &only_failure, &both] {
            assert_eq!(j.evaluate(Some(v)), ArgoPhase::Error, "{v}");
        }
    }
}

/// Flagger rolls back once failed checks reach the threshold and the analysis stops there:
/// later checks change nothing, and the judge has concluded.
#[test]
fn a_rolled_back_flagger_judge_records_no_more_checks() {
    let mut j = flagger(false, 1);
    assert!(!j.concluded());
    assert_eq!(j.check(Some(50.0)), CheckOutcome::Failed);
    assert!(j.rolls_back() && j.concluded());
    let before = j.clone();
    assert_eq!(j.check(Some(50.0)), CheckOutcome::Failed);
    assert_eq!(j.check(Some(100.0)), CheckOutcome::Passed);
    assert_eq!(j, before);
    let ev = j.judgement(Timestamp::EPOCH).evidence;
    assert!(
        ev.summary.contains("1 failed checks of 1"),
        "{}",
        ev.summary
    );
    j.reset();
    assert!(!j.concluded());
}
