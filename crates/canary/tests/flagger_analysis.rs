//! Flagger's analysis over several metrics keeps one `failedChecks` counter: each interval in
//! which any metric fails counts once, a passing interval resets nothing, and the canary rolls
//! back once the count reaches `threshold`, whichever metrics failed.

use serde_json::json;
use serin_canary::judge::{Judge, Sample, Severity, Verdict};
use serin_canary::kayenta::Quantity;
use serin_canary::threshold::{
    CheckOutcome, FlaggerAnalysis, FlaggerAnalysisConfig, FlaggerConfig, FlaggerJudge,
    FlaggerMetric, Range,
};
use serin_signals::{
    Counts, LatencySketch, Measurement, Metric, Observation, Timestamp, Track, Window,
};

/// Flagger's built-ins: `request-success-rate` ≥ 99% and `request-duration` p99 ≤ 500 ms.
fn builtins() -> Vec<FlaggerMetric> {
    vec![
        FlaggerMetric::new(
            Metric::ErrorRate,
            Quantity::SuccessRatePercent,
            Range::at_least(99.0),
        ),
        FlaggerMetric::new(
            Metric::Latency,
            Quantity::LatencyQuantile(0.99),
            Range::at_most(500.0),
        ),
    ]
}

fn analysis(threshold: u32, no_data_fails: bool) -> FlaggerAnalysis {
    let mut c = FlaggerAnalysisConfig::new(builtins());
    c.threshold = threshold;
    c.no_data_fails = no_data_fails;
    FlaggerAnalysis::new(c).unwrap()
}

/// The same checks as one `FlaggerJudge` per metric, each with the analysis's threshold.
fn per_metric(threshold: u32) -> Vec<FlaggerJudge> {
    builtins()
        .into_iter()
        .map(|m| {
            let mut c = FlaggerConfig::new(m.metric, m.quantity, m.threshold_range);
            c.threshold = threshold;
            FlaggerJudge::new(c).unwrap()
        })
        .collect()
}

const OK: [Option<f64>; 2] = [Some(99.8), Some(300.0)];
const ERRORS: [Option<f64>; 2] = [Some(97.0), Some(300.0)];
const SLOW: [Option<f64>; 2] = [Some(99.8), Some(900.0)];
const BOTH: [Option<f64>; 2] = [Some(97.0), Some(900.0)];

#[test]
fn failures_spread_over_metrics_roll_back_at_the_analysis_threshold() {
    let mut a = analysis(2, false);
    let mut judges = per_metric(2);
    for values in [ERRORS, OK, SLOW] {
        a.check(&values).unwrap();
        for (j, v) in judges.iter_mut().zip(values) {
            j.check(v);
        }
    }
    // Flagger: the error rate failed one interval, the latency another: two failed checks.
    assert_eq!((a.intervals(), a.failed_checks()), (3, 2));
    assert!(a.rolls_back());
    let j = a.judgement(Timestamp::from_millis(180_000));
    assert_eq!(j.verdict, Verdict::Fail(Severity::Warning));
    assert_eq!(j.evidence.metric, Metric::Latency, "{}", j.evidence.summary);
    assert_eq!(j.evidence.estimates.canary, Some(900.0));
    assert!(
        j.evidence
            .summary
            .contains("2 failed checks in 3 intervals (threshold 2), rolled back"),
        "{}",
        j.evidence.summary
    );
    // Each metric's own count is 1: per-metric judges would still be waiting.
    assert!(
        judges
            .iter()
            .all(|j| j.failed_checks() == 1 && !j.rolls_back())
    );
}

#[test]
fn an_interval_counts_once_however_many_metrics_fail_and_a_pass_resets_nothing() {
    let mut a = analysis(3, false);
    assert_eq!(a.check(&BOTH).unwrap(), CheckOutcome::Failed);
    assert_eq!(a.failed_checks(), 1);
    assert_eq!(a.judgement(Timestamp::EPOCH).verdict, Verdict::Inconclusive);
    assert_eq!(a.check(&OK).unwrap(), CheckOutcome::Passed);
    assert_eq!(
        a.failed_checks(),
        1,
        "a passing interval does not reset the count"
    );
    assert_eq!(a.judgement(Timestamp::EPOCH).verdict, Verdict::Pass);
    assert_eq!(a.check(&BOTH).unwrap(), CheckOutcome::Failed);
    assert!(!a.rolls_back());
    a.check(&SLOW).unwrap();
    assert_eq!(a.failed_checks(), 3);
    assert!(a.rolls_back());
}

#[test]
fn a_rolled_back_analysis_records_no_more_intervals() {
    let mut a = analysis(1, false);
    a.check(&ERRORS).unwrap();
    assert!(a.rolls_back());
    let before = a.clone();
    // The outcome is answered, but the analysis is over: the decisive interval stays.
    assert_eq!(a.check(&SLOW).unwrap(), CheckOutcome::Failed);
    assert_eq!(a.check(&OK).unwrap(), CheckOutcome::Passed);
    assert_eq!(a, before);
    assert_eq!(
        a.judgement(Timestamp::EPOCH).evidence.metric,
        Metric::ErrorRate
    );
    a.reset();
    assert_eq!((a.intervals(), a.failed_checks(), a.last()), (0, 0, None));
    assert_eq!(a.check(&OK).unwrap(), CheckOutcome::Passed);
}

#[test]
fn no_data_fails_the_interval_only_in_parity_mode() {
    let mut serin = analysis(1, false);
    assert_eq!(
        serin.check(&[Some(99.8), None]).unwrap(),
        CheckOutcome::NoData
    );
    assert_eq!(serin.failed_checks(), 0);
    let j = serin.judgement(Timestamp::EPOCH);
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert_eq!(
        j.evidence.metric,
        Metric::Latency,
        "names the metric without data"
    );
    // NaN is no data, never a pass.
    assert_eq!(
        serin.check(&[Some(f64::NAN), Some(300.0)]).unwrap(),
        CheckOutcome::NoData
    );
    let mut parity = analysis(1, true);
    assert_eq!(
        parity.check(&[Some(99.8), None]).unwrap(),
        CheckOutcome::Failed
    );
    assert!(parity.rolls_back());
}

fn window(minute: u64) -> Window {
    Window::new(
        Timestamp::from_millis(minute * 60_000),
        Timestamp::from_millis((minute + 1) * 60_000),
    )
    .unwrap()
}

fn errors(track: Track, minute: u64, requests: u64, errors: u64) -> Observation {
    let m = Measurement::Counts(Counts::new(requests, errors).unwrap());
    Observation::new(Metric::ErrorRate, track, window(minute), m)
}

fn latency(track: Track, minute: u64, ms: f64) -> Observation {
    let mut s = LatencySketch::new();
    for _ in 0..200 {
        s.add(ms).unwrap();
    }
    Observation::new(
        Metric::Latency,
        track,
        window(minute),
        Measurement::Latency(s),
    )
}

#[test]
fn observe_takes_one_sample_per_metric_and_bad_input_changes_nothing() {
    let mut a = analysis(2, false);
    let at = Timestamp::from_millis(60_000);
    let (eb, ec) = (
        errors(Track::Stable, 0, 10_000, 10),
        errors(Track::Canary, 0, 1000, 30),
    );
    let (lb, lc) = (
        latency(Track::Stable, 0, 200.0),
        latency(Track::Canary, 0, 250.0),
    );
    let e = Sample::new(&eb, &ec, Some(0.1), at).unwrap();
    let l = Sample::new(&lb, &lc, Some(0.1), at).unwrap();

    let msg = a.observe(&[e]).unwrap_err().to_string();
    assert!(msg.contains("samples") && msg.contains("latency"), "{msg}");
    let msg = a.observe(&[e, l, e]).unwrap_err().to_string();
    assert!(msg.contains("samples[2].metric"), "{msg}");
    let mut one =
        FlaggerAnalysis::new(FlaggerAnalysisConfig::new(builtins()[..1].to_vec())).unwrap();
    let msg = one.observe(&[e, l]).unwrap_err().to_string();
    assert!(
        msg.contains("samples[1].metric") && msg.contains("latency"),
        "{msg}"
    );
    assert_eq!(a.intervals(), 0, "refused intervals are not recorded");
    let msg = a.check(&[Some(99.0)]).unwrap_err().to_string();
    assert!(msg.contains("values") && msg.contains('1'), "{msg}");
    assert_eq!(a.intervals(), 0);

    // 97% success: the error rate fails its check; the latency passes.
    let j = a.observe(&[l, e]).unwrap();
    assert_eq!((a.intervals(), a.failed_checks()), (1, 1));
    assert_eq!(j.verdict, Verdict::Inconclusive);
    assert_eq!((j.evidence.metric, j.evidence.at), (Metric::ErrorRate, at));
    assert!(
        j.evidence.summary.contains("Failed with 97"),
        "{}",
        j.evidence.summary
    );
}

#[test]
fn configs_validate_with_paths_and_deny_unknown_fields() {
    let c: FlaggerAnalysisConfig = serde_json::from_value(json!({
        "metrics": [{"metric": "error_rate", "quantity": "successRatePercent",
                     "thresholdRange": {"min": 99}}]
    }))
    .unwrap();
    assert_eq!((c.threshold, c.no_data_fails), (1, false));
    let unknown = json!({"threshold": 2, "metrics": [{"metric": "error_rate",
        "quantity": "errorRate", "thresholdRange": {"max": 0.01}, "threshold": 2}]});
    assert!(serde_json::from_value::<FlaggerAnalysisConfig>(unknown).is_err());

    let mut c = FlaggerAnalysisConfig::new(builtins());
    c.threshold = 0;
    let msg = FlaggerAnalysis::new(c).unwrap_err().to_string();
    assert!(msg.contains("flaggerAnalysis.threshold"), "{msg}");
    let msg = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(vec![]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("flaggerAnalysis.metrics"), "{msg}");
    let mut m = builtins();
    m[1].threshold_range = Range::default();
    let msg = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(m))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("flaggerAnalysis.metrics[1].thresholdRange"),
        "{msg}"
    );
}

#[test]
fn a_journalled_analysis_reads_back_only_with_counts_its_intervals_can_leave() {
    let mut a = analysis(3, false);
    for values in [ERRORS, OK, SLOW] {
        a.check(&values).unwrap();
    }
    let state = serde_json::to_value(&a).unwrap();
    let back: FlaggerAnalysis = serde_json::from_value(state.clone()).unwrap();
    assert_eq!(back, a);

    let refused = |edit: &dyn Fn(&mut serde_json::Value), field: &str| {
        let mut forged = state.clone();
        edit(&mut forged);
        let msg = serde_json::from_value::<FlaggerAnalysis>(forged)
            .err()
            .unwrap_or_else(|| panic!("a forged {field} was taken"))
            .to_string();
        assert!(msg.contains(field), "{msg}");
    };
    // A third failed check with no third failing metric check would roll back on nothing.
    refused(
        &|s| s["failedChecks"] = json!(3),
        "flaggerAnalysis.failedChecks",
    );
    refused(
        &|s| s["failedChecks"] = json!(9),
        "flaggerAnalysis.failedChecks",
    );
    refused(
        &|s| s["checks"][0]["failed"] = json!(3),
        "flaggerAnalysis.checks[0].failed",
    );
    refused(
        &|s| s["checks"][1]["last"] = json!(null),
        "flaggerAnalysis.checks[1].last",
    );
    refused(
        &|s| {
            s["checks"].as_array_mut().unwrap().pop();
        },
        "flaggerAnalysis.checks",
    );
    refused(
        &|s| s["config"]["threshold"] = json!(0),
        "flaggerAnalysis.threshold",
    );
}

#[test]
fn one_metric_analysis_counts_as_the_per_metric_judge() {
    let mut a = FlaggerAnalysis::new({
        let mut c = FlaggerAnalysisConfig::new(builtins()[..1].to_vec());
        c.threshold = 2;
        c
    })
    .unwrap();
    let mut j = per_metric(2).remove(0);
    for v in [Some(99.5), Some(98.0), None, Some(99.9), Some(97.0)] {
        a.check(&[v]).unwrap();
        j.check(v);
        assert_eq!(a.failed_checks(), j.failed_checks());
        assert_eq!(a.rolls_back(), j.rolls_back());
        let now = Timestamp::EPOCH;
        assert_eq!(a.judgement(now).verdict, j.judgement(now).verdict);
    }
}
