//! Flagger's analysis over several metrics keeps one `failedChecks` counter: each interval in
//! which any metric fails counts once, a passing interval resets nothing, and the canary rolls
//! back once the count reaches `threshold`, whichever metrics failed.

use crate::common;

use common::flagger_builtins;
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

fn analysis(threshold: u32, no_data_fails: bool) -> FlaggerAnalysis {
    let mut c = FlaggerAnalysisConfig::new(flagger_builtins());
    c.threshold = threshold;
    c.no_data_fails = no_data_fails;
    FlaggerAnalysis::new(c).unwrap()
}

/// The same checks as one `FlaggerJudge` per metric, each with the analysis's threshold.
fn per_metric(threshold: u32) -> Vec<FlaggerJudge> {
    flagger_builtins()
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

/// Flagger reads a `threshold` of 0 as its default of 1 (`GetAnalysisThreshold`): the first
/// failed check rolls back, and nothing rolls back before it.
#[test]
fn a_threshold_of_zero_rolls_back_at_the_first_failed_check_as_flagger_reads_it() {
    let c: FlaggerAnalysisConfig = serde_json::from_value(json!({
        "threshold": 0,
        "metrics": [{"metric": "error_rate", "quantity": "successRatePercent",
                     "thresholdRange": {"min": 99}},
                    {"metric": "latency", "quantity": {"latencyQuantile": 0.99},
                     "thresholdRange": {"max": 500}}]
    }))
    .unwrap();
    assert_eq!(c.failed_checks_to_roll_back(), 1);
    let mut a = FlaggerAnalysis::new(c).unwrap();
    a.check(&OK).unwrap();
    assert!(!a.rolls_back());
    assert_eq!(a.judgement(Timestamp::EPOCH).verdict, Verdict::Pass);
    a.check(&SLOW).unwrap();
    assert!(a.rolls_back());
    let j = a.judgement(Timestamp::from_millis(120_000));
    assert_eq!(j.verdict, Verdict::Fail(Severity::Warning));
    assert!(
        j.evidence.summary.contains("(threshold 1)"),
        "{}",
        j.evidence.summary
    );

    let mut one = per_metric(0).remove(1);
    assert!(!one.rolls_back());
    one.check(SLOW[1]);
    assert!(one.rolls_back());
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
    assert!(!Judge::concluded(&a));
    a.check(&ERRORS).unwrap();
    assert!(a.rolls_back() && Judge::concluded(&a));
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
    assert!(!Judge::concluded(&a));
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
        FlaggerAnalysis::new(FlaggerAnalysisConfig::new(flagger_builtins()[..1].to_vec())).unwrap();
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

    let msg = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(vec![]))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("flaggerAnalysis.metrics"), "{msg}");
    let mut m = flagger_builtins();
    m[1].threshold_range = Range::default();
    let msg = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(m))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("flaggerAnalysis.metrics[1].thresholdRange"),
        "{msg}"
    );
}

/// Flagger's docs' analysis, pasted as written: the built-in checks by name, with the
/// analysis's and each metric's interval. The names stand for what Flagger's built-ins read,
/// and the analysis reads back as written.
#[test]
fn flagger_s_built_in_checks_read_by_name_as_written_for_flagger() {
    let yaml = "
interval: 1m
threshold: 5
metrics:
  - name: request-success-rate
    thresholdRange: {min: 99}
    interval: 1m
  - name: request-duration
    thresholdRange: {max: 500}
    interval: 30s
";
    let c: FlaggerAnalysisConfig = serde_yaml_ng::from_str(yaml).expect("reads");
    let reads: Vec<(Metric, Quantity)> = c
        .metrics
        .iter()
        .map(|m| (m.metric.clone(), m.quantity))
        .collect();
    assert_eq!(
        reads,
        vec![
            (Metric::ErrorRate, Quantity::SuccessRatePercent),
            (Metric::Latency, Quantity::LatencyQuantile(0.99)),
        ]
    );
    assert_eq!(c.interval, Some(std::time::Duration::from_secs(60)));
    assert_eq!(
        c.metrics[1].interval,
        Some(std::time::Duration::from_secs(30))
    );
    let checks: Vec<_> = c.metrics.iter().map(|m| m.threshold_range).collect();
    let builtins: Vec<_> = flagger_builtins()
        .iter()
        .map(|m| m.threshold_range)
        .collect();
    assert_eq!(
        checks, builtins,
        "the same checks as the built-ins written out"
    );
    let mut a = FlaggerAnalysis::new(c.clone()).expect("valid");
    a.check(&[Some(97.0), Some(300.0)]).unwrap();
    assert_eq!(a.failed_checks(), 1);
    let back: FlaggerAnalysis =
        serde_json::from_str(&serde_json::to_string(&a).unwrap()).expect("reads back");
    assert_eq!(back, a);
    assert_eq!(
        back.config().metrics[0].name.as_deref(),
        Some("request-success-rate")
    );

    // A custom check names what it reads, and may keep its Flagger name as a label.
    let custom: FlaggerAnalysisConfig = serde_json::from_value(json!({"metrics": [
        {"name": "cpu-usage", "metric": "cpu", "quantity": "value", "thresholdRange": {"max": 80}}
    ]}))
    .expect("reads");
    assert_eq!(custom.metrics[0].metric, Metric::Cpu);
    for (metric, says) in [
        (
            json!({"name": "cpu-usage", "thresholdRange": {"max": 80}}),
            "names the metric and quantity it reads",
        ),
        (
            json!({"name": "request-duration", "metric": "latency", "quantity": "latencyMean",
                   "thresholdRange": {"max": 500}}),
            "is Flagger's built-in check of",
        ),
        (
            json!({"name": "cpu-usage", "templateRef": {"name": "cpu", "namespace": "flagger"},
                   "thresholdRange": {"max": 80}}),
            "flaggerMetric.templateRef",
        ),
    ] {
        let err = serde_json::from_value::<FlaggerAnalysisConfig>(json!({"metrics": [metric]}))
            .unwrap_err()
            .to_string();
        assert!(err.contains(says) && !err.contains("  "), "{err}");
    }

    // Flagger's traffic steps, routing, webhooks and alerts, pasted with the analysis, are
    // pointed to where that job is done.
    for (fields, says) in [
        (
            "maxWeight: 50\nstepWeight: 10\n",
            "flaggerAnalysis.maxWeight `50`: is Flagger's traffic pacing",
        ),
        (
            "match: [{headers: {x-canary: {exact: insider}}}]\n",
            "flaggerAnalysis.match",
        ),
        ("mirror: true\n", "is Flagger's traffic routing"),
        (
            "webhooks: [{name: load-test, url: 'http://tester/'}]\n",
            "notificationChannels",
        ),
        ("alerts: [{name: on-call}]\n", "flaggerAnalysis.alerts"),
    ] {
        let pasted = format!("{yaml}{fields}");
        let err = serde_yaml_ng::from_str::<FlaggerAnalysisConfig>(&pasted)
            .unwrap_err()
            .to_string();
        assert!(err.contains(says) && !err.contains("  "), "{err}");
    }
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
    // Two failed checks cannot stand under a threshold of 1: the analysis rolled back at one.
    refused(
        &|s| s["config"]["threshold"] = json!(1),
        "flaggerAnalysis.failedChecks",
    );
}

#[test]
fn one_metric_analysis_counts_as_the_per_metric_judge() {
    let mut a = FlaggerAnalysis::new({
        let mut c = FlaggerAnalysisConfig::new(flagger_builtins()[..1].to_vec());
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

/// The minute's samples of both metrics, fed to `judge` one at a time as the controller feeds
/// them: the error rate with `canary_errors` in 1,000, the p99 at `canary_ms`.
fn feed_minute(
    ctl: &mut serin_canary::controller::CanaryController<FlaggerAnalysis>,
    minute: u64,
    canary_errors: Option<u64>,
    canary_ms: Option<f64>,
) -> serin_canary::controller::Decision {
    let end = window(minute).end();
    if let Some(e) = canary_errors {
        let (b, c) = (
            errors(Track::Stable, minute, 9_000, 9),
            errors(Track::Canary, minute, 1_000, e),
        );
        ctl.feed(&b, &c, end).unwrap();
    }
    if let Some(ms) = canary_ms {
        let (b, c) = (
            latency(Track::Stable, minute, 200.0),
            latency(Track::Canary, minute, ms),
        );
        ctl.feed(&b, &c, end).unwrap();
    }
    ctl.tick(end)
}

/// In the canary controller, the analysis is one judge of both metrics: the controller feeds
/// it each metric's sample, and failures spread over the metrics roll the canary back at the
/// analysis's threshold, as Flagger's one `failedChecks` counter does.
#[test]
fn the_controller_feeds_every_metric_to_the_analysis_and_rolls_back_at_its_threshold() {
    use serin_canary::controller::{Action, AnalysisStep, CanaryController, CanaryPolicy, Step};
    use std::time::Duration;

    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(3_600),
            min_samples: 1,
        }),
        Step::SetWeight(50),
    ]);
    let a = analysis(2, false);
    assert!(a.analyses(&Metric::ErrorRate) && a.analyses(&Metric::Latency));
    assert!(!a.analyses(&Metric::named("saturation").unwrap()));
    assert_eq!(
        a.analysed_metrics(),
        vec![Metric::ErrorRate, Metric::Latency]
    );
    let mut ctl = CanaryController::new(policy, vec![a]).unwrap();
    assert_eq!(
        ctl.tick(Timestamp::from_millis(0)).action,
        Action::SetWeight(10)
    );
    // Minute 1: 3% errors fail; minute 2: all pass; minute 3: the p99 fails.
    assert_eq!(
        feed_minute(&mut ctl, 1, Some(30), Some(250.0)).action,
        Action::Hold
    );
    assert_eq!(ctl.judges()[0].failed_checks(), 1);
    feed_minute(&mut ctl, 2, Some(1), Some(250.0));
    assert_eq!(ctl.judges()[0].intervals(), 2);
    let d = feed_minute(&mut ctl, 3, Some(1), Some(900.0));
    assert_eq!(d.action, Action::Rollback, "{d:?}");
    assert_eq!(ctl.judges()[0].failed_checks(), 2);
}

/// An interval is checked once every metric has had its sample of the window; a metric whose
/// sample never comes counts as no data when a later window begins. A second sample of a
/// metric for the same window, or one older than the interval gathered, is refused and
/// changes nothing; the gathered interval is journalled with the analysis.
#[test]
fn samples_fed_one_metric_at_a_time_make_one_interval_per_window() {
    let mut a = analysis(3, false);
    let at = |m: u64| window(m).end();
    let (eb, ec) = (
        errors(Track::Stable, 0, 9_000, 9),
        errors(Track::Canary, 0, 1_000, 30),
    );
    let e0 = Sample::new(&eb, &ec, Some(0.1), at(0)).unwrap();
    let j = Judge::observe(&mut a, &e0).unwrap();
    assert_eq!(a.intervals(), 0, "the latency of minute 0 is still due");
    assert_eq!(j.verdict, Verdict::Inconclusive);
    let before = a.clone();
    let msg = Judge::observe(&mut a, &e0).unwrap_err().to_string();
    assert!(msg.contains("second sample"), "{msg}");
    assert_eq!(a, before);
    let saved: FlaggerAnalysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(saved, a, "the gathered interval is journalled");

    // Minute 1's latency arrives, minute 0's never came: minute 0 is checked with its
    // latency missing (no data), and minute 1 waits for its error rate.
    let (lb, lc) = (
        latency(Track::Stable, 1, 200.0),
        latency(Track::Canary, 1, 250.0),
    );
    let l1 = Sample::new(&lb, &lc, Some(0.1), at(1)).unwrap();
    Judge::observe(&mut a, &l1).unwrap();
    assert_eq!((a.intervals(), a.failed_checks()), (1, 1));
    assert_eq!(a.last(), Some(CheckOutcome::Failed));
    let before = a.clone();
    let msg = Judge::observe(&mut a, &e0).unwrap_err().to_string();
    assert!(msg.contains("older"), "{msg}");
    assert_eq!(a, before);
    let (eb1, ec1) = (
        errors(Track::Stable, 1, 9_000, 9),
        errors(Track::Canary, 1, 1_000, 1),
    );
    let e1 = Sample::new(&eb1, &ec1, Some(0.1), at(1)).unwrap();
    let j = Judge::observe(&mut a, &e1).unwrap();
    assert_eq!((a.intervals(), a.failed_checks()), (2, 1));
    assert_eq!(j.verdict, Verdict::Pass);

    let mut bad: serde_json::Value = serde_json::to_value(&before).unwrap();
    bad["pending"]["values"] = json!([null, null, null]);
    let msg = serde_json::from_value::<FlaggerAnalysis>(bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("flaggerAnalysis.pending"), "{msg}");
}

/// Once the analysis has rolled back it has concluded: a sample fed one metric at a time
/// afterwards is neither gathered nor checked, so nothing changes.
#[test]
fn a_rolled_back_analysis_gathers_no_more_samples() {
    let mut a = analysis(1, false);
    let at = |m: u64| window(m).end();
    let (eb, ec) = (
        errors(Track::Stable, 0, 9_000, 9),
        errors(Track::Canary, 0, 1_000, 30),
    );
    let (lb, lc) = (
        latency(Track::Stable, 0, 200.0),
        latency(Track::Canary, 0, 250.0),
    );
    Judge::observe(&mut a, &Sample::new(&eb, &ec, Some(0.1), at(0)).unwrap()).unwrap();
    Judge::observe(&mut a, &Sample::new(&lb, &lc, Some(0.1), at(0)).unwrap()).unwrap();
    assert!(a.rolls_back() && Judge::concluded(&a));
    let before = a.clone();
    let (eb1, ec1) = (
        errors(Track::Stable, 1, 9_000, 9),
        errors(Track::Canary, 1, 1_000, 1),
    );
    let j = Judge::observe(&mut a, &Sample::new(&eb1, &ec1, Some(0.1), at(1)).unwrap()).unwrap();
    assert_eq!(j.verdict, Verdict::Fail(Severity::Warning));
    assert_eq!(a, before);
}

/// A metric fed without data is journalled as fed: read back, the gathered interval still
/// holds it, and does not wait for it again.
#[test]
fn a_metric_fed_without_data_is_journalled_as_fed() {
    let mut a = analysis(3, false);
    let w = window(0);
    let (b, c) = (
        common::no_data(Metric::ErrorRate, Track::Stable, w),
        common::no_data(Metric::ErrorRate, Track::Canary, w),
    );
    Judge::observe(&mut a, &Sample::new(&b, &c, Some(0.1), w.end()).unwrap()).unwrap();
    let saved: FlaggerAnalysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(saved, a);
    let msg = Judge::observe(
        &mut a.clone(),
        &Sample::new(&b, &c, Some(0.1), w.end()).unwrap(),
    )
    .unwrap_err()
    .to_string();
    assert!(msg.contains("second sample"), "{msg}");
}

/// A metric checked twice (its p99 and its mean) is read once: the caller feeding the analysis
/// asks its source for each metric `analysed_metrics` lists.
#[test]
fn a_metric_checked_twice_is_listed_once() {
    let mut metrics = flagger_builtins();
    metrics.push(FlaggerMetric::new(
        Metric::Latency,
        Quantity::LatencyMean,
        Range::at_most(200.0),
    ));
    let a = FlaggerAnalysis::new(FlaggerAnalysisConfig::new(metrics)).unwrap();
    assert_eq!(
        a.analysed_metrics(),
        vec![Metric::ErrorRate, Metric::Latency]
    );
}

/// Flagger's built-in `request-duration` truncates the measured p99 and its bounds to whole
/// milliseconds before comparing them; a custom check of the same quantity compares numbers.
#[test]
fn request_duration_is_compared_in_whole_milliseconds_as_flagger_compares_it() {
    let built_in = |range: serde_json::Value| -> FlaggerAnalysis {
        let c: FlaggerAnalysisConfig = serde_json::from_value(json!({"metrics": [
            {"name": "request-duration", "thresholdRange": range}
        ]}))
        .unwrap();
        FlaggerAnalysis::new(c).unwrap()
    };
    let mut a = built_in(json!({"max": 500}));
    assert_eq!(a.check(&[Some(500.6)]).unwrap(), CheckOutcome::Passed);
    assert_eq!(a.check(&[Some(501.0)]).unwrap(), CheckOutcome::Failed);
    // The check recorded as passed at 500.6 ms reads back as passed.
    let mut passed = built_in(json!({"max": 500}));
    passed.check(&[Some(500.9)]).unwrap();
    let back: FlaggerAnalysis = serde_json::from_value(serde_json::to_value(&passed).unwrap())
        .expect("a pass of 500.9 ms against max 500 reads back");
    assert_eq!(back, passed);
    // A bound of 500.9 acts as 500, and a minimum of 10.5 as 10.
    let mut fractional = built_in(json!({"min": 10.5, "max": 500.9}));
    assert_eq!(
        fractional.check(&[Some(500.95)]).unwrap(),
        CheckOutcome::Passed
    );
    assert_eq!(
        fractional.check(&[Some(10.2)]).unwrap(),
        CheckOutcome::Passed
    );
    assert_eq!(
        fractional.check(&[Some(9.99)]).unwrap(),
        CheckOutcome::Failed
    );

    let custom: FlaggerAnalysisConfig = serde_json::from_value(json!({"metrics": [
        {"name": "p99", "metric": "latency", "quantity": {"latencyQuantile": 0.99},
         "thresholdRange": {"max": 500}}
    ]}))
    .unwrap();
    let mut custom = FlaggerAnalysis::new(custom).unwrap();
    assert_eq!(custom.check(&[Some(500.6)]).unwrap(), CheckOutcome::Failed);
}
