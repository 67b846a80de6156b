//! A whole Kayenta canary config run as Spinnaker's canary stage runs it: one score per
//! judgement from every metric's label in its weighted groups, fed directly or one Serin
//! metric's sample at a time, journalled and read back checked.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{counts, latency, no_data, second};
use serin_canary::controller::{Action, AnalysisStep, CanaryController, CanaryPolicy, Phase, Step};
use serin_canary::judge::{Judge, Sample, Severity, Statistic, Verdict};
use serin_canary::kayenta::{
    CanaryConfig, KayentaAnalysis, KayentaAnalysisConfig, KayentaBinding, KayentaConfig,
    KayentaJudge, Quantity, RunConfig, RunStatus, ScoreConfig, ScoreThresholds,
};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Observation, Timestamp, Track};

/// `n` metrics `m0..` in one group, none critical unless listed.
fn one_group(n: usize, critical: &[usize]) -> CanaryConfig {
    let metrics: Vec<String> = (0..n)
        .map(|i| {
            format!(
                r#"{{"name":"m{i}","groups":["g"],"analysisConfigurations":{{"canary":{{"direction":"increase","critical":{}}}}}}}"#,
                critical.contains(&i)
            )
        })
        .collect();
    CanaryConfig::from_json(&format!(
        r#"{{"name":"ten","metrics":[{}]}}"#,
        metrics.join(",")
    ))
    .unwrap()
}

fn gauges(config: &CanaryConfig) -> BTreeMap<String, KayentaBinding> {
    config
        .metrics
        .iter()
        .map(|m| {
            let metric = Metric::named(&m.name).unwrap();
            (m.name.clone(), KayentaBinding::new(metric, Quantity::Value))
        })
        .collect()
}

fn analysis(config: CanaryConfig, run: RunConfig) -> KayentaAnalysis {
    let bindings = gauges(&config);
    KayentaAnalysis::new(KayentaAnalysisConfig::new(config, bindings, run)).unwrap()
}

/// Interval `i`'s points: every metric steady, those in `worse` doubled in the canary.
fn interval(n: usize, i: usize, worse: &[usize]) -> Vec<(Option<f64>, Option<f64>)> {
    let base = 100.0 + (i % 7) as f64;
    (0..n)
        .map(|m| {
            let canary = if worse.contains(&m) { 2.0 * base } else { base };
            (Some(base), Some(canary))
        })
        .collect()
}

#[test]
fn one_high_among_ten_scores_ninety_and_passes_where_a_judge_per_metric_fails() {
    let mut a = analysis(one_group(10, &[]), RunConfig::new(30).every(10));
    let mut alone = KayentaJudge::new(
        KayentaConfig::new(Metric::named("m3").unwrap(), Quantity::Value)
            .with_run(RunConfig::new(30).every(10)),
    )
    .unwrap();
    for i in 0..30 {
        let points = interval(10, i, &[3]);
        a.push_interval(&points).unwrap();
        alone.push_points(points[3].0, points[3].1);
    }
    assert_eq!(a.run_state().scores, [90.0, 90.0, 90.0]);
    assert_eq!(a.run_state().status, RunStatus::Passed);
    let j = a.judgement(Timestamp::from_millis(1_800_000));
    assert_eq!(j.verdict, Verdict::Pass, "{}", j.evidence.summary);
    // The evidence is about the metric that did not pass.
    assert_eq!(j.evidence.metric, Metric::named("m3").unwrap());
    assert!(
        j.evidence.summary.contains("m3 High"),
        "{}",
        j.evidence.summary
    );
    // The same metric judged alone fails its run at the first judgement.
    assert_eq!(alone.run_state().status, RunStatus::FailedEarly);
}

/// As Kayenta takes the canary config's `classifier.scoreThresholds` when the execution
/// request carries none, a run that writes no thresholds judges by the config's.
#[test]
fn a_run_without_thresholds_judges_by_the_canary_config_s_own() {
    let mut strict = one_group(5, &[]);
    strict.classifier.score_thresholds = Some(ScoreThresholds {
        pass: 95.0,
        marginal: 75.0,
    });
    // One of five metrics High: 80, a pass at 75 but marginal against the config's 95.
    let run_over = |run: RunConfig| {
        let mut a = analysis(strict.clone(), run);
        for i in 0..20 {
            a.push_interval(&interval(5, i, &[0])).unwrap();
        }
        a
    };
    let a = run_over(RunConfig::new(20));
    assert_eq!(a.run_state().scores, [80.0]);
    assert_eq!(a.run_state().status, RunStatus::Failed);
    let j = a.judgement(Timestamp::EPOCH);
    assert_eq!(j.evidence.threshold, Some(95.0));
    assert!(
        j.evidence.summary.contains("(marginal 75, pass 95)"),
        "{}",
        j.evidence.summary
    );
    // Read back, it still judges by the config's thresholds.
    let back: KayentaAnalysis = serde_json::from_value(serde_json::to_value(&a).unwrap()).unwrap();
    assert_eq!(back, a);
    // Thresholds the run writes win over the config's, and a run saved with them written, as
    // every run used to be saved, reads back judged by them.
    let own = RunConfig {
        thresholds: Some(ScoreConfig::default()),
        ..RunConfig::new(20)
    };
    let a = run_over(own);
    assert_eq!(a.run_state().status, RunStatus::Passed);
    let saved = serde_json::to_value(&a).unwrap();
    assert_eq!(
        saved["config"]["run"]["thresholds"],
        serde_json::json!({"groupWeights": {}, "pass": 75.0, "marginal": 50.0})
    );
    assert_eq!(serde_json::from_value::<KayentaAnalysis>(saved).unwrap(), a);
}

#[test]
fn a_critical_metric_that_fails_zeroes_the_score_and_the_failure_is_critical() {
    let mut a = analysis(one_group(10, &[3]), RunConfig::new(30).every(10));
    for i in 0..30 {
        a.push_interval(&interval(10, i, &[3])).unwrap();
    }
    assert_eq!(a.run_state().scores, [0.0]);
    assert_eq!(a.run_state().status, RunStatus::FailedEarly);
    assert!(a.concluded());
    let j = a.judgement(Timestamp::EPOCH);
    assert_eq!(j.verdict, Verdict::Fail(Severity::Critical));
    assert!(
        j.evidence.summary.contains("forced to 0"),
        "{}",
        j.evidence.summary
    );
    // A run that has ended takes no more points.
    assert_eq!(a.points(), 10);
}

#[test]
fn a_final_score_between_marginal_and_pass_fails_with_a_warning() {
    // Two of five metrics High: 60, above marginal (50), below pass (75).
    let mut a = analysis(one_group(5, &[]), RunConfig::new(20));
    for i in 0..20 {
        a.push_interval(&interval(5, i, &[0, 1])).unwrap();
    }
    assert_eq!(a.run_state().scores, [60.0]);
    assert_eq!(a.run_state().status, RunStatus::Failed);
    let j = a.judgement(Timestamp::EPOCH);
    assert_eq!(j.verdict, Verdict::Fail(Severity::Warning));
}

/// With severity bands, a failed run is graded by the worst metric's `|meanRatio − 1|`, as a
/// judge of one metric grades its failure; without, it is a warning.
#[test]
fn severity_bands_grade_a_failed_run_by_its_worst_metric() {
    // Two of five metrics twice as high: a mean ratio of 2, an effect of 1.
    for (bands, graded) in [
        (None, Severity::Warning),
        (Some((0.2, 0.5)), Severity::Critical),
        (Some((0.2, 1.5)), Severity::Warning),
        (Some((2.0, 3.0)), Severity::Info),
    ] {
        let config = one_group(5, &[]);
        let mut settings =
            KayentaAnalysisConfig::new(config.clone(), gauges(&config), RunConfig::new(20));
        settings.severity = bands.map(|(w, c)| SeverityBands::new(w, c).unwrap());
        let mut a = KayentaAnalysis::new(settings).unwrap();
        for i in 0..20 {
            a.push_interval(&interval(5, i, &[0, 1])).unwrap();
        }
        assert_eq!(a.run_state().status, RunStatus::Failed);
        let j = a.judgement(Timestamp::EPOCH);
        assert_eq!(j.verdict, Verdict::Fail(graded), "bands {bands:?}");
    }
}

/// A latency judged in both directions that fails because the canary is faster is graded at
/// most a warning: an improvement is no reason for an immediate rollback.
#[test]
fn a_run_failed_by_an_improvement_is_at_most_a_warning() {
    let config = CanaryConfig::from_json(
        r#"{"name": "fast", "metrics": [{"name": "mean",
            "analysisConfigurations": {"canary": {"direction": "either"}}}]}"#,
    )
    .unwrap();
    let bindings = BTreeMap::from([(
        "mean".to_owned(),
        KayentaBinding::new(Metric::Latency, Quantity::LatencyMean),
    )]);
    let mut settings = KayentaAnalysisConfig::new(config, bindings, RunConfig::new(20));
    settings.severity = Some(SeverityBands::new(0.1, 0.2).unwrap());
    for (factor, graded) in [(0.25, Severity::Warning), (4.0, Severity::Critical)] {
        let mut a = KayentaAnalysis::new(settings.clone()).unwrap();
        for i in 0..20 {
            let base = 100.0 + (i % 7) as f64;
            a.push_interval(&[(Some(base), Some(factor * base))])
                .unwrap();
        }
        let j = a.judgement(Timestamp::EPOCH);
        assert_eq!(
            j.verdict,
            Verdict::Fail(graded),
            "canary ×{factor}: {}",
            j.evidence.summary
        );
    }
}

fn sample<'a>(b: &'a Observation, c: &'a Observation, s: u64) -> Sample<'a> {
    Sample::new(b, c, Some(0.1), Timestamp::from_millis((s + 1) * 1000)).unwrap()
}

/// Errors and p99 latency, 50/50 weighted.
fn errors_and_latency(run: RunConfig) -> KayentaAnalysis {
    let config = CanaryConfig::from_json(
        r#"{
          "name": "checkout",
          "metrics": [
            { "name": "errors", "groups": ["availability"],
              "analysisConfigurations": { "canary": { "direction": "increase" } } },
            { "name": "p99", "groups": ["latency"],
              "analysisConfigurations": { "canary": { "direction": "increase" } } }
          ],
          "classifier": { "groupWeights": { "availability": 50, "latency": 50 } }
        }"#,
    )
    .unwrap();
    let bindings = BTreeMap::from([
        (
            "errors".to_owned(),
            KayentaBinding::new(Metric::ErrorRate, Quantity::ErrorRate),
        ),
        (
            "p99".to_owned(),
            KayentaBinding::new(Metric::Latency, Quantity::LatencyQuantile(0.99)),
        ),
    ]);
    KayentaAnalysis::new(KayentaAnalysisConfig::new(config, bindings, run)).unwrap()
}

/// Second `s`'s error samples: 1,000 requests per arm, the canary with `canary_errors`.
fn errors_at(s: u64, canary_errors: u64) -> (Observation, Observation) {
    (
        counts(
            Metric::ErrorRate,
            Track::Stable,
            second(s),
            1_000,
            10 + s % 5,
        ),
        counts(
            Metric::ErrorRate,
            Track::Canary,
            second(s),
            1_000,
            canary_errors,
        ),
    )
}

fn latency_at(s: u64) -> (Observation, Observation) {
    let values: Vec<f64> = (0..50)
        .map(|i| 100.0 + f64::from(i) + (s % 7) as f64)
        .collect();
    (
        latency(Track::Stable, second(s), &values),
        latency(Track::Canary, second(s), &values),
    )
}

#[test]
fn samples_fed_one_metric_at_a_time_make_one_interval_per_window() {
    let mut a = errors_and_latency(RunConfig::new(20).every(10));
    assert!(a.analyses(&Metric::ErrorRate) && a.analyses(&Metric::Latency));
    assert_eq!(
        a.analysed_metrics(),
        vec![Metric::ErrorRate, Metric::Latency]
    );
    for s in 0..10 {
        let (eb, ec) = errors_at(s, 2 * (10 + s % 5));
        let (lb, lc) = latency_at(s);
        Judge::observe(&mut a, &sample(&eb, &ec, s)).unwrap();
        assert_eq!(a.points() as u64, s, "the window's latency is still due");
        Judge::observe(&mut a, &sample(&lb, &lc, s)).unwrap();
        assert_eq!(a.points() as u64, s + 1);
    }
    // Errors doubled (availability 0), latency the same (100): 50, at or below marginal, so
    // the first judgement, after 10 windows, ends the run, and later samples add nothing.
    assert_eq!(a.run_state().scores, [50.0]);
    assert_eq!(a.run_state().status, RunStatus::FailedEarly);
    let (eb, ec) = errors_at(10, 20);
    Judge::observe(&mut a, &sample(&eb, &ec, 10)).unwrap();
    assert_eq!(a.points(), 10);
    let j = a.judgement(Timestamp::from_millis(20_000));
    assert_eq!(j.verdict, Verdict::Fail(Severity::Warning));
    assert_eq!(j.evidence.metric, Metric::ErrorRate);
    assert_eq!(j.evidence.statistic, Some(Statistic::Score(50.0)));
}

#[test]
fn a_metric_whose_sample_never_comes_has_missing_points_for_that_window() {
    let mut a = errors_and_latency(RunConfig::new(20).every(10));
    let (eb, ec) = errors_at(0, 10);
    Judge::observe(&mut a, &sample(&eb, &ec, 0)).unwrap();
    // The next window's first sample closes second 0 without its latency.
    let (eb, ec) = errors_at(1, 10);
    Judge::observe(&mut a, &sample(&eb, &ec, 1)).unwrap();
    assert_eq!(a.points(), 1);
    // A sample without data is a missing point too, and a second sample of a metric for the
    // same window, or one of an older window, is refused and changes nothing.
    let (nb, nc) = (
        no_data(Metric::Latency, Track::Stable, second(1)),
        no_data(Metric::Latency, Track::Canary, second(1)),
    );
    let before = a.clone();
    let again = Judge::observe(&mut a, &sample(&eb, &ec, 1)).unwrap_err();
    assert!(again.to_string().contains("second sample"), "{again}");
    let (ob, oc) = errors_at(0, 10);
    let old = Judge::observe(&mut a, &sample(&ob, &oc, 0)).unwrap_err();
    assert!(old.to_string().contains("older"), "{old}");
    let stray_of = |track| {
        Observation::new(
            Metric::Cpu,
            track,
            second(1),
            serin_signals::Measurement::NoData,
        )
    };
    let (other_b, other_c) = (stray_of(Track::Stable), stray_of(Track::Canary));
    let stray = Judge::observe(&mut a, &sample(&other_b, &other_c, 1)).unwrap_err();
    assert!(stray.to_string().contains("no binding"), "{stray}");
    assert_eq!(a, before);
    Judge::observe(&mut a, &sample(&nb, &nc, 1)).unwrap();
    assert_eq!(a.points(), 2);
}

#[test]
fn a_journalled_run_resumes_exactly_and_a_forged_one_is_refused() {
    let mut a = analysis(one_group(4, &[]), RunConfig::new(40).every(10));
    for i in 0..15 {
        a.push_interval(&interval(4, i, &[])).unwrap();
    }
    let saved = serde_json::to_value(&a).unwrap();
    let mut b: KayentaAnalysis = serde_json::from_value(saved.clone()).unwrap();
    assert_eq!(b, a);
    for i in 15..40 {
        a.push_interval(&interval(4, i, &[])).unwrap();
        b.push_interval(&interval(4, i, &[])).unwrap();
    }
    assert_eq!(b, a);
    assert_eq!(a.run_state().status, RunStatus::Passed);

    let forged = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = saved.clone();
        edit(&mut v);
        serde_json::from_value::<KayentaAnalysis>(v)
            .unwrap_err()
            .to_string()
    };
    // A run that claims to have passed on its interim score.
    let msg = forged(&|v| v["runState"]["status"] = "passed".into());
    assert!(msg.contains("kayentaAnalysis.runState.status"), "{msg}");
    // One arm of one metric a point short.
    let msg = forged(&|v| {
        v["experiment"][2].as_array_mut().unwrap().pop();
    });
    assert!(msg.contains("kayentaAnalysis.experiment"), "{msg}");
    // A setting no constructor takes.
    let msg = forged(&|v| v["config"]["minPoints"] = 0.into());
    assert!(msg.contains("kayentaAnalysis.minPoints"), "{msg}");
}

#[test]
fn settings_that_cannot_run_are_refused_with_their_path() {
    let config = one_group(3, &[]);
    let run = RunConfig::new(30).every(10);
    let error = |edit: &dyn Fn(&mut KayentaAnalysisConfig)| {
        let mut c = KayentaAnalysisConfig::new(config.clone(), gauges(&config), run.clone());
        edit(&mut c);
        KayentaAnalysis::new(c).unwrap_err().to_string()
    };
    let msg = error(&|c| {
        c.bindings.remove("m1");
    });
    assert!(msg.contains("kayentaAnalysis.bindings.m1"), "{msg}");
    let msg = error(&|c| {
        c.bindings.insert(
            "m9".into(),
            KayentaBinding::new(Metric::ErrorRate, Quantity::ErrorRate),
        );
    });
    assert!(msg.contains("kayentaAnalysis.bindings.m9"), "{msg}");
    let msg = error(&|c| {
        let mut thresholds = ScoreConfig::default();
        thresholds.group_weights.insert("g".into(), 100.0);
        c.run.thresholds = Some(thresholds);
    });
    assert!(
        msg.contains("kayentaAnalysis.run.thresholds.groupWeights.g"),
        "{msg}"
    );
    let msg = error(&|c| {
        for m in &mut c.canary_config.metrics {
            m.analysis_configurations.canary.muted = true;
        }
    });
    assert!(msg.contains("muted"), "{msg}");
    let msg = error(&|c| c.run = RunConfig::new(5));
    assert!(msg.contains("kayentaAnalysis.run.lifetimePoints"), "{msg}");
    let msg =
        error(&|c| c.canary_config.classifier.group_weights = BTreeMap::from([("h".into(), 10.0)]));
    assert!(
        msg.contains("kayentaAnalysis.canaryConfig.classifier.groupWeights.h"),
        "{msg}"
    );
}

/// A controller judged by the errors-and-latency analysis alone, whose run is judged every 10
/// windows over 20.
fn controlled() -> CanaryController {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Analysis(AnalysisStep {
            duration: Duration::from_secs(600),
            min_samples: 10,
        }),
        Step::SetWeight(50),
    ]);
    let judges: Vec<Box<dyn Judge>> =
        vec![Box::new(errors_and_latency(RunConfig::new(20).every(10)))];
    CanaryController::new(policy, judges).unwrap()
}

/// Feeds second `s` (errors, then latency) and decides; the canary's errors are
/// `factor` × the baseline's.
fn controlled_second(ctl: &mut CanaryController, s: u64, factor: u64) -> Action {
    let (eb, ec) = errors_at(s, factor * (10 + s % 5));
    let (lb, lc) = latency_at(s);
    let now = second(s).end();
    ctl.feed(&eb, &ec, now).unwrap();
    ctl.observe(&lb, &lc, now).unwrap().action
}

#[test]
fn the_controller_moves_on_when_the_run_passes_and_rolls_back_when_it_fails() {
    let mut good = controlled();
    assert_eq!(good.tick(Timestamp::EPOCH).action, Action::SetWeight(10));
    let moved = (0..60)
        .map(|s| (s, controlled_second(&mut good, s, 1)))
        .find(|(_, a)| *a != Action::Hold);
    // The run's final judgement, after 20 windows, passes the analysis step.
    assert_eq!(moved, Some((19, Action::SetWeight(50))));

    let mut bad = controlled();
    bad.tick(Timestamp::EPOCH);
    let moved = (0..60)
        .map(|s| (s, controlled_second(&mut bad, s, 2)))
        .find(|(_, a)| *a != Action::Hold);
    // Its first judgement, after 10 windows, scores 50 and ends the run.
    assert_eq!(moved, Some((9, Action::Rollback)));
    assert_eq!(bad.state().phase(), Phase::RolledBack);
}

#[test]
fn an_interval_half_gathered_reads_back_from_json_and_yaml() {
    let mut a = errors_and_latency(RunConfig::new(20).every(10));
    for s in 0..3 {
        let (eb, ec) = errors_at(s, 10);
        let (lb, lc) = latency_at(s);
        Judge::observe(&mut a, &sample(&eb, &ec, s)).unwrap();
        Judge::observe(&mut a, &sample(&lb, &lc, s)).unwrap();
    }
    // Second 3's error rate came without data; its latency is still due.
    let (nb, nc) = (
        no_data(Metric::ErrorRate, Track::Stable, second(3)),
        no_data(Metric::ErrorRate, Track::Canary, second(3)),
    );
    Judge::observe(&mut a, &sample(&nb, &nc, 3)).unwrap();
    let json: KayentaAnalysis = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(json, a);
    let yaml = serde_yaml_ng::to_string(&a).unwrap();
    assert!(!yaml.contains('!'), "a tag in the saved form:\n{yaml}");
    let back: KayentaAnalysis = serde_yaml_ng::from_str(&yaml).unwrap();
    assert_eq!(back, a);
    // Read back, it still waits for second 3's latency only.
    let mut back = back;
    let msg = Judge::observe(&mut back, &sample(&nb, &nc, 3))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("second sample"), "{msg}");
}

#[test]
fn a_sliding_window_judges_only_its_last_points() {
    // Metric 0 is good for 20 points, then doubled for the last 10; metric 1 is always good.
    let run = RunConfig::new(30).every(10);
    let final_score = |lookback: Option<usize>| {
        let config = one_group(2, &[]);
        let bindings = gauges(&config);
        let mut c = KayentaAnalysisConfig::new(config, bindings, run.clone());
        c.lookback_points = lookback;
        let mut a = KayentaAnalysis::new(c).unwrap();
        for i in 0..30 {
            let worse: &[usize] = if i < 20 { &[] } else { &[0] };
            a.push_interval(&interval(2, i, worse)).unwrap();
        }
        (a.run_state().scores.clone(), a.run_state().status)
    };
    // Growing: the 20 good points dilute the 10 slow ones inside Kayenta's tolerance band.
    assert_eq!(
        final_score(None),
        (vec![100.0, 100.0, 100.0], RunStatus::Passed)
    );
    // Sliding over the last 10 points: only the slow ones.
    assert_eq!(
        final_score(Some(10)),
        (vec![100.0, 100.0, 50.0], RunStatus::Failed)
    );
    // A lookback shorter than minPoints could never judge.
    let config = one_group(2, &[]);
    let bindings = gauges(&config);
    let mut c = KayentaAnalysisConfig::new(config, bindings, run);
    c.lookback_points = Some(5);
    let msg = KayentaAnalysis::new(c).unwrap_err().to_string();
    assert!(msg.contains("kayentaAnalysis.lookbackPoints"), "{msg}");
}
