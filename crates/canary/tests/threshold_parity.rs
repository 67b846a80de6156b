//! Argo Rollouts and Flagger parity: the judges follow those controllers' rules.

use serin_canary::judge::{Judge, Sample, Severity, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, ArgoPhase, CheckOutcome, FlaggerConfig, FlaggerJudge, Range,
};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};

fn argo(success: Option<Range>, failure: Option<Range>) -> ArgoJudge {
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = success;
    c.failure_condition = failure;
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

    // failureLimit 2: the third failure fails; −1 never fails.
    let mut c = ArgoConfig::new(Metric::ErrorRate, Quantity::ErrorRate);
    c.success_condition = Some(Range::at_most(0.01));
    c.failure_limit = 2;
    let mut j = ArgoJudge::new(c.clone()).unwrap();
    for _ in 0..2 {
        j.measure(Some(0.5));
    }
    assert_eq!(j.phase(), ArgoPhase::Running);
    j.measure(Some(0.5));
    assert_eq!(j.phase(), ArgoPhase::Failed);
    c.failure_limit = -1;
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
    c.success_condition = Some(Range::at_most(0.01));
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
    c.threshold = 0;
    let msg = FlaggerJudge::new(c).unwrap_err().to_string();
    assert!(msg.contains("flaggerConfig.threshold"), "{msg}");
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
    c.success_condition = Some(Range::at_most(0.01));
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
    c.success_condition = Some(Range::at_most(0.01));
    c.failure_limit = 1;
    c.count = Some(2);
    let mut j = ArgoJudge::new(c).unwrap();
    assert_eq!(observe(&mut j, 600, Some(1), 0), Verdict::Pass);
    let last = observe(&mut j, 600, Some(60), 1);
    assert_eq!(j.phase(), ArgoPhase::Successful);
    assert_eq!(last, Verdict::Pass);
}
