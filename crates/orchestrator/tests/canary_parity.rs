//! `canaryConfig.parityJudges`: Argo Rollouts, Flagger and Kayenta analyses, written as for
//! those controllers, judge a canary beside the sequential judges (or either side is a dry
//! run), on the in-memory world under paused time.

use crate::support;

use serin_compat::Format;
use serin_compat::catalog::from_str;
use serin_orchestrator::{DeploymentConfig, EventKind, Outcome, ParityJudges};
use serin_signals::Track;
use support::{World, canary_config, rollback_reason, weights};

/// `canary_config` with `parity` read from YAML, as a config file writes it.
fn with_parity(yaml: &str) -> DeploymentConfig {
    let mut config = canary_config("1.1.0");
    let parity: ParityJudges = from_str(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{e}"));
    config.canary_config.parity_judges = Some(parity);
    config.validate().expect("valid");
    config
}

/// The judges named in the evidence of every analysis result.
fn judges_in_evidence(report: &serin_orchestrator::Report) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in &report.timeline {
        if let EventKind::AnalysisResult { decision } = &e.kind {
            for ev in &decision.evidence {
                if !names.contains(&ev.judge) {
                    names.push(ev.judge.clone());
                }
            }
        }
    }
    names
}

const FLAGGER_P99: &str = "
flagger:
  threshold: 2
  metrics:
    - name: request-success-rate
      thresholdRange: {min: 99}
    - name: request-duration
      thresholdRange: {max: 500}
      interval: 10s
";

/// A Kayenta canary config of one metric, the p99 latency, over the run `run` (YAML flow
/// mapping), judging after six points.
fn kayenta_p99(run: &str) -> String {
    format!(
        "
kayenta:
  canaryConfig:
    name: checkout
    metrics:
      - name: p99
        groups: [latency]
        analysisConfigurations: {{canary: {{direction: increase}}}}
    classifier: {{groupWeights: {{latency: 100}}}}
  bindings:
    p99: {{metric: latency, quantity: {{latencyQuantile: 0.99}}}}
  minPoints: 6
  run: {run}
"
    )
}

/// The sequential judges read errors alone here, and both tracks err alike: only Flagger's
/// latency check can fail a slow canary, and it does at its threshold of two failed checks.
#[tokio::test(start_paused = true)]
async fn flagger_s_analysis_rolls_back_a_slow_canary_that_the_error_judge_passes() {
    let (world, _traffic) = World::serving(0.001, 0.001).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 900.0);
    let report = world.deploy(&with_parity(FLAGGER_P99)).await;
    println!("{report}");
    let reason = rollback_reason(&report);
    // The analysis is a judge of both metrics; the reason names the one that failed.
    assert!(reason.starts_with("regression in `latency`"), "{reason}");
    assert!(reason.contains("Flagger: 2 failed checks"), "{reason}");
    assert_eq!(weights(&report.timeline), vec![10.0, 0.0]);
    world.assert_live(Track::Stable, "1.0.0").await;
    // The latency metric is read for the analysis, and its evidence is in the decisions.
    let names = judges_in_evidence(&report);
    assert!(names.iter().any(|n| n.contains("flagger")), "{names:?}");
    crate::report_schema::assert_documented(&report, "a rollback by Flagger's analysis");
}

#[tokio::test(start_paused = true)]
async fn flagger_s_analysis_passes_a_canary_within_its_ranges() {
    let (world, _traffic) = World::serving(0.001, 0.001).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 100.0);
    let report = world.deploy(&with_parity(FLAGGER_P99)).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 70.0, 100.0]);
    let names = judges_in_evidence(&report);
    assert!(names.iter().any(|n| n.contains("flagger")), "{names:?}");
}

/// An Argo metric whose failure condition the canary meets fails it at Argo's default
/// `failureLimit` of 0, whether the condition is written as bounds or as in an Argo template;
/// the same metric as a dry run only advises, and the canary goes on.
#[tokio::test(start_paused = true)]
async fn an_argo_metric_rolls_back_unless_it_is_a_dry_run() {
    for (dry_run, condition) in [
        (false, "{min: 300}"),
        (false, "result[0] >= 300"),
        (true, "{min: 300}"),
    ] {
        let (world, _traffic) = World::serving(0.001, 0.001).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", 400.0);
        let config = with_parity(&format!(
            "
argo:
  - metric: latency
    quantity: latencyMean
    failureCondition: {condition}
    interval: 10s
    dryRun: {dry_run}
"
        ));
        let report = world.deploy(&config).await;
        println!("{report}");
        if dry_run {
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
        } else {
            let reason = rollback_reason(&report);
            assert!(reason.contains("Argo: run Failed"), "{reason}");
        }
        let names = judges_in_evidence(&report);
        assert!(names.iter().any(|n| n.contains("argo")), "{names:?}");
        crate::report_schema::assert_documented(&report, "a canary judged by an Argo metric");
    }
}

/// An Argo metric with an `initialDelay` measures nothing before the delay is over: a slow
/// canary is rolled back by its first measurement after a minute, not at its first window.
#[tokio::test(start_paused = true)]
async fn an_argo_initial_delay_holds_the_first_measurement() {
    let (world, _traffic) = World::serving(0.001, 0.001).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 400.0);
    let config = with_parity(
        "
argo:
  - name: slow
    metric: latency
    quantity: latencyMean
    failureCondition: result[0] >= 300
    interval: 10s
    initialDelay: 1m
",
    );
    let report = world.deploy(&config).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("Argo: run Failed"), "{reason}");
    let evidence: Vec<&str> = report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::AnalysisResult { decision } => Some(decision),
            _ => None,
        })
        .flat_map(|d| d.evidence.iter())
        .filter(|ev| ev.judge == "argo")
        .map(|ev| ev.summary.as_str())
        .collect();
    let waiting = evidence
        .iter()
        .filter(|s| s.contains("no measurement yet (initialDelay"))
        .count();
    assert!(waiting >= 1, "{evidence:#?}");
    let first = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::AnalysisResult { .. }))
        .map(|e| e.at)
        .expect("an analysis");
    let rolled_back = report.timeline.last().expect("events").at;
    assert!(
        rolled_back.saturating_duration_since(first) >= std::time::Duration::from_secs(50),
        "rolled back at {rolled_back}, first analysis at {first}"
    );
}

/// Kayenta's run of twelve one-window points, judged after six: a canary three times slower
/// scores 0 at the first judgement and is rolled back; the same canary at the baseline's
/// latency passes the run, and the canary is promoted once the run has ended.
#[tokio::test(start_paused = true)]
async fn a_kayenta_config_judges_points_of_each_window_and_decides_the_canary() {
    for (canary_median, promoted) in [(300.0, false), (100.0, true)] {
        let (world, _traffic) = World::serving(0.001, 0.001).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", canary_median);
        let report = world
            .deploy(&with_parity(&kayenta_p99(
                "{lifetimePoints: 12, intervalPoints: 6}",
            )))
            .await;
        println!("{report}");
        let names = judges_in_evidence(&report);
        assert!(names.iter().any(|n| n.contains("kayenta")), "{names:?}");
        if promoted {
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
        } else {
            let reason = rollback_reason(&report);
            assert!(reason.contains("Kayenta run of `checkout`"), "{reason}");
            assert_eq!(weights(&report.timeline), vec![10.0, 0.0]);
        }
        crate::report_schema::assert_documented(&report, "a canary judged by Kayenta's run");
    }
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_lists_the_parity_judges() {
    let world = World::new();
    world.install("1.0.0").await;
    let config = with_parity(&format!(
        "{FLAGGER_P99}argo:\n  - {{metric: error_rate, quantity: errorRate, dryRun: true}}\n  \
         - {{name: errors, metric: error_rate, quantity: errorRate, interval: 10s}}\n{}",
        kayenta_p99("{lifetimePoints: 12}")
    ));
    let step = world.canary_step(&config).await;
    for said in [
        "also judged by Argo Rollouts' error_rate (dry run), errors on error_rate",
        "Flagger's analysis of request-success-rate and request-duration (threshold 2)",
        "Kayenta's canary config `checkout` (1 metric, a run of 12 points)",
    ] {
        assert!(step.contains(said), "`{said}` not in: {step}");
    }
}

/// What the judges refuse is refused on load, under the path of this config; so is a Kayenta
/// run that would end after the canary's pauses, and an Argo interval that is not the window
/// each measurement is read over.
#[test]
fn settings_the_parity_judges_cannot_run_are_refused_with_their_path() {
    for (yaml, path, why) in [
        (
            "argo: [{metric: error_rate, quantity: errorRate, interval: 1m}]",
            "canaryConfig.parityJudges.argo[0].interval",
            "metricsWindow (10s) is one measurement",
        ),
        (
            "flagger: {interval: 1m, metrics: [{name: request-success-rate, \
             thresholdRange: {min: 99}}]}",
            "canaryConfig.parityJudges.flagger.interval",
            "metricsWindow (10s) is one check",
        ),
        (
            "flagger: {metrics: [{name: request-duration, thresholdRange: {max: 500}, \
             interval: 30s}]}",
            "canaryConfig.parityJudges.flagger.metrics[0].interval",
            "metricsWindow (10s) is one check",
        ),
        (
            "argo: [{metric: error_rate, quantity: errorRate, interval: 10s, \
             initialDelay: 4m}]",
            "canaryConfig.parityJudges.argo[0].initialDelay",
            "the metric's first measurement comes after its initialDelay: 4m, longer than the \
             canary's timed pauses together (3m, canaryConfig.incrementInterval, once for each \
             weight from canaryConfig.initialPercentage by canaryConfig.incrementPercentage to \
             canaryConfig.targetPercentage), so the canary would be promoted first",
        ),
        (
            "kayenta: {canaryConfig: {name: c, metrics: [{name: e, \
             analysisConfigurations: {canary: {}}}]}, bindings: {e: {metric: error_rate, \
             quantity: errorRate}}, run: {lifetimePoints: 19}}",
            "canaryConfig.parityJudges.kayenta.run.lifetimePoints",
            "comes after 19 points, one per canaryConfig.metricsWindow of 10s: 3m 10s, longer \
             than the canary's timed pauses together (3m, canaryConfig.incrementInterval, once \
             for each weight from canaryConfig.initialPercentage by \
             canaryConfig.incrementPercentage to canaryConfig.targetPercentage), so the canary \
             would be promoted first",
        ),
        (
            "kayenta: {canaryConfig: {name: c, metrics: [{name: e, \
             analysisConfigurations: {canary: {}}}]}, bindings: {}, run: {lifetimePoints: 20}}",
            "canaryConfig.parityJudges.kayenta.bindings.e",
            "needs the metric and quantity",
        ),
    ] {
        let mut config = canary_config("1.1.0");
        config.canary_config.parity_judges =
            Some(from_str(yaml, Format::Yaml).unwrap_or_else(|e| panic!("{yaml}: {e}")));
        let err = config.validate().expect_err(yaml).to_string();
        assert!(err.contains(path) && err.contains(why), "{yaml}: {err}");
    }
    // Judged every 6 points, 19 points end in a final judgement after 18: 3m, which fits.
    let mut config = canary_config("1.1.0");
    config.canary_config.parity_judges = Some(
        from_str(
            &kayenta_p99("{lifetimePoints: 19, intervalPoints: 6}"),
            Format::Yaml,
        )
        .expect("parity judges"),
    );
    config
        .validate()
        .expect("a final judgement after 18 points fits in 3m");
    let unknown = from_str::<ParityJudges>("kayentaa: {}", Format::Yaml);
    assert!(unknown.is_err(), "an unknown judge is refused");
}

/// Written back, a config with parity judges reads as the same config.
#[test]
fn parity_judges_round_trip_through_json() {
    let config = with_parity(FLAGGER_P99);
    let json = serde_json::to_string(&config).expect("json");
    assert!(json.contains("parityJudges"), "{json}");
    let back: DeploymentConfig = serde_json::from_str(&json).expect("reads back");
    assert_eq!(back, config);
    let plain = serde_json::to_string(&canary_config("1.1.0")).expect("json");
    assert!(
        !plain.contains("parityJudges"),
        "left out when unset: {plain}"
    );
}

/// Flagger's failed checks are journalled with the canary: a crash after any record of a slow
/// canary's run, resumed, rolls back for the same reason, after the same three failed checks
/// (a count lost to the crash would need more intervals, one counted twice fewer). So are the
/// sequential judges run as a dry run (`role: instead`): one resumed as deciding would roll
/// back the erring canary for its errors.
#[tokio::test(start_paused = true)]
async fn flagger_s_failed_checks_survive_a_crash_at_every_journal_write() {
    for role in ["alongside", "instead"] {
        crash_at_every_journal_write(role).await;
    }
}

async fn crash_at_every_journal_write(role: &str) {
    // Beside the sequential judges the canary errs as the baseline does; instead of them, 20
    // times as often, which only their dry run sees.
    let canary_errors = if role == "instead" { 0.02 } else { 0.001 };
    let run = |crash_at: Option<usize>| async move {
        let (world, _traffic) = World::serving(0.001, canary_errors).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", 900.0);
        let errors_pass = "thresholdRange: {min: 90}";
        let config = with_parity(&format!(
            "role: {role}\n{}",
            FLAGGER_P99
                .replace("threshold: 2", "threshold: 3")
                .replace("thresholdRange: {min: 99}", errors_pass)
        ));
        let before = world.journal.len();
        let first = world.orchestrator();
        let report = match crash_at {
            None => support::run_to_end(&first, &config).await,
            Some(k) => {
                let last = support::crash_at(&world, first, config, before + k).await;
                support::resume_to_end(&world.orchestrator(), &last.deployment).await
            }
        };
        (report, world.journal.len() - before)
    };
    let (reference, records) = run(None).await;
    let reason = rollback_reason(&reference).to_owned();
    assert!(
        reason.contains("3 failed checks in 3 intervals"),
        "{role}: {reason}"
    );
    let windows = |r: &serin_orchestrator::Report| {
        r.timeline
            .iter()
            .filter(|e| matches!(e.kind, EventKind::AnalysisResult { .. }))
            .count()
    };
    for k in 1..=records {
        let (resumed, _) = run(Some(k)).await;
        assert_eq!(
            rollback_reason(&resumed),
            reason,
            "{role}: crash after record {k}"
        );
        assert_eq!(
            windows(&resumed),
            windows(&reference),
            "{role}: crash after record {k}"
        );
    }
}

/// A Kayenta run judges once, at the end of its lifetime, as Spinnaker's canary stage does:
/// a run longer than the canary's pauses is refused (the canary would be promoted before its
/// verdict), and one within them decides before the promotion.
#[tokio::test(start_paused = true)]
async fn a_kayenta_run_s_final_judgement_comes_before_the_promotion() {
    let parity: ParityJudges =
        from_str(&kayenta_p99("{lifetimePoints: 30}"), Format::Yaml).expect("parity judges");
    let mut config = canary_config("1.1.0");
    config.canary_config.parity_judges = Some(parity);
    let err = config.validate().expect_err("5m of points in 3m of pauses");
    assert!(err.to_string().contains("lifetimePoints"), "{err}");
    config.canary_config.increment_interval = std::time::Duration::from_secs(120);
    config.validate().expect("5m of points in 6m of pauses");
    for (canary_median, promoted) in [(100.0, true), (300.0, false)] {
        let (world, _traffic) = World::serving(0.001, 0.001).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", canary_median);
        let report = world.deploy(&config).await;
        println!("{report}");
        let judged = report.timeline.iter().find_map(|e| match &e.kind {
            EventKind::AnalysisResult { decision } => decision
                .evidence
                .iter()
                .any(|ev| ev.summary.contains("judgement 1 after 30 of 30 points"))
                .then_some(e.at),
            _ => None,
        });
        let judged = judged.unwrap_or_else(|| panic!("no final judgement: {report}"));
        let ended = report.timeline.iter().find_map(|e| match &e.kind {
            EventKind::WeightChanged { percent, .. } if *percent == 100.0 || *percent == 0.0 => {
                Some(e.at)
            }
            _ => None,
        });
        assert!(
            ended.expect("promoted or rolled back") >= judged,
            "{report}"
        );
        if promoted {
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
        } else {
            let reason = rollback_reason(&report);
            assert!(reason.contains("Kayenta run of `checkout`"), "{reason}");
        }
    }
}

/// What an Argo metric or a Flagger analysis refuses is refused as the file is read, named at
/// its path in this config and by its field in the analysis.
#[test]
fn settings_an_analysis_refuses_are_refused_when_read_at_their_path() {
    for (parity, path, why) in [
        (
            "flagger: {metrics: []}",
            "canaryConfig.parityJudges.flagger: invalid configuration flaggerAnalysis.metrics `[]`",
            "an analysis checks at least one metric",
        ),
        (
            "argo: [{metric: error_rate, quantity: errorRate, failureLimit: -1}]",
            "canaryConfig.parityJudges.argo[0]: invalid configuration argoConfig.failureLimit `-1`",
            "consecutiveSuccessLimit",
        ),
        (
            "argo: [{metric: error_rate, quantity: errorRate, failureLimit: -5}]",
            "canaryConfig.parityJudges.argo[0]: invalid configuration argoConfig.failureLimit `-5`",
            "must be ≥ 0",
        ),
        (
            "argo: [{metric: error_rate, quantity: errorRate, successCondition: {}}]",
            "canaryConfig.parityJudges.argo[0]: invalid configuration argoConfig.successCondition `{}`",
            "a range needs a min, a max or both",
        ),
    ] {
        let file = format!(
            "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\ncanaryConfig:\n  \
             parityJudges:\n    {parity}\n"
        );
        let err = DeploymentConfig::from_yaml(&file)
            .expect_err(parity)
            .to_string();
        assert!(err.contains(path) && err.contains(why), "{parity}: {err}");
    }
}

/// A whole deployment file with parity judges loads, and a metric name written as config keys
/// are (`errorRate`) is refused at its path with the spelling that was meant; so is an Argo
/// condition that asks for more than one measurement holds.
#[test]
fn a_deployment_file_with_parity_judges_loads_and_a_misspelt_metric_names_its_path() {
    let file = |metric: &str| {
        format!(
            "strategy: canary
version: 1.1.0
targetServices: [web]
canaryConfig:
  metricsWindow: 30s
  parityJudges:
    flagger:
      metrics:
        - metric: {metric}
          quantity: successRatePercent
          thresholdRange: {{min: 99}}
"
        )
    };
    let config = DeploymentConfig::from_yaml(&file("error_rate")).expect("loads");
    let parity = config.canary_config.parity_judges.expect("parity judges");
    assert_eq!(
        parity.flagger.expect("flagger").threshold,
        1,
        "Flagger's default"
    );
    let err = DeploymentConfig::from_yaml(&file("errorRate"))
        .expect_err("a custom metric no source measures")
        .to_string();
    assert!(
        err.contains("canaryConfig.parityJudges.flagger.metrics[0].metric")
            && err.contains("write `error_rate`"),
        "{err}"
    );
    let argo = |condition: &str| {
        format!(
            "strategy: canary
version: 1.1.0
targetServices: [web]
canaryConfig:
  parityJudges:
    argo:
      - metric: error_rate
        quantity: errorRate
        successCondition: {condition}
"
        )
    };
    let config = DeploymentConfig::from_yaml(&argo("result[0] <= 0.01")).expect("loads");
    let parity = config.canary_config.parity_judges.expect("parity judges");
    let written = parity.argo[0].success_condition.as_ref().expect("written");
    assert_eq!(written.to_string(), "result[0] <= 0.01");
    let err = DeploymentConfig::from_yaml(&argo("result[1] <= 0.01"))
        .expect_err("a second value")
        .to_string();
    assert!(
        err.contains("canaryConfig.parityJudges.argo[0].successCondition")
            && err.contains("`1` at character 8 is not an index Serin reads"),
        "{err}"
    );
}

/// The README's example of parity judges loads as a deployment's `canaryConfig`, as written.
#[test]
fn the_readme_s_parity_judges_example_loads() {
    let readme = include_str!("../../../README.md");
    let section = readme
        .split("## Moving an analysis from Argo Rollouts, Flagger or Kayenta")
        .nth(1)
        .expect("the README's section");
    let yaml = section
        .split("```yaml\n")
        .nth(1)
        .and_then(|block| block.split("```").next())
        .expect("a YAML example");
    let file = format!("strategy: canary\nversion: 1.1.0\ntargetServices: [web]\n{yaml}");
    let config = DeploymentConfig::from_yaml(&file).unwrap_or_else(|e| panic!("{e}\n{file}"));
    let parity = config.canary_config.parity_judges.expect("parity judges");
    assert_eq!(parity.role, serin_orchestrator::ParityRole::DryRun);
    assert_eq!(parity.flagger.expect("flagger").metrics.len(), 2);
    assert_eq!(parity.argo[0].name.as_deref(), Some("error-rate"));
}

/// Argo conditions and Flagger's built-in names read the same from TOML as from YAML.
#[test]
fn parity_judges_read_from_toml() {
    let toml = r#"
[[argo]]
metric = "error_rate"
quantity = "errorRate"
successCondition = "result[0] <= 0.01"
failureCondition = { min = 0.05 }

[flagger]
metrics = [{ name = "request-duration", thresholdRange = { max = 500 } }]
"#;
    let parity: ParityJudges = from_str(toml, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    let argo = &parity.argo[0];
    let success = argo.success_condition.as_ref().expect("success condition");
    let failure = argo.failure_condition.as_ref().expect("failure condition");
    assert!(success.holds(0.01) && !success.holds(0.02));
    assert!(failure.holds(0.05) && !failure.holds(0.04));
    let flagger = parity.flagger.expect("flagger");
    assert_eq!(flagger.metrics[0].metric, serin_signals::Metric::Latency);
}

/// In a blue-green deployment with a canary, the canary's judges are the same: Flagger's
/// analysis rolls a slow green back before the full switch, and blue keeps serving.
#[tokio::test(start_paused = true)]
async fn blue_green_with_canary_takes_the_parity_judges_too() {
    let world = support::world_on_blue().await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 900.0);
    let mut config = with_parity(FLAGGER_P99);
    config.strategy = serin_orchestrator::StrategyKind::BlueGreenWithCanary;
    config.canary_config.target_percentage = 50;
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(reason.contains("Flagger: 2 failed checks"), "{reason}");
    world.assert_live(Track::Blue, "1.0.0").await;
}

/// With explicit steps, the analysis steps count toward the time a Kayenta run has: while the
/// run goes on its judge has not passed, so no analysis step ends early. A run that fits in
/// them is accepted, and decides before the promotion.
#[tokio::test(start_paused = true)]
async fn a_kayenta_run_may_span_the_analysis_steps() {
    let steps = |analysis: &str| {
        serde_json::from_str::<Vec<serin_canary::controller::Step>>(&format!(
            r#"[{{"setWeight": 10}}, {{"pause": {{"duration": "30s"}}}},
                {{"setWeight": 50}}, {{"analysis": {{"duration": "{analysis}"}}}}]"#
        ))
        .expect("steps")
    };
    let mut config = canary_config("1.1.0");
    config.canary_config.parity_judges =
        Some(from_str(&kayenta_p99("{lifetimePoints: 20}"), Format::Yaml).expect("parity judges"));
    support::written_steps(&mut config, steps("2m"));
    let err = config
        .validate()
        .expect_err("200s of points in 150s")
        .to_string();
    assert!(
        err.contains(
            "longer than the canary's timed pauses together (30s, canaryConfig.steps) \
             and its analysis steps (2m)"
        ),
        "{err}"
    );
    support::written_steps(&mut config, steps("3m"));
    config.validate().expect("200s of points in 210s");
    let (world, _traffic) = World::serving(0.001, 0.001).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 100.0);
    let report = world.deploy(&config).await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let passed = report.timeline.iter().any(|e| {
        matches!(&e.kind, EventKind::AnalysisResult { decision } if decision.evidence.iter()
            .any(|ev| ev.summary.contains("20 of 20 points") && ev.summary.contains("pass threshold")))
    });
    assert!(
        passed,
        "the run's final judgement passed before the promotion: {report}"
    );
}

/// The evidence of `judge` (a name part) in the last analysis result.
fn last_evidence_of<'r>(report: &'r serin_orchestrator::Report, judge: &str) -> &'r str {
    report
        .timeline
        .iter()
        .rev()
        .find_map(|e| match &e.kind {
            EventKind::AnalysisResult { decision } => decision
                .evidence
                .iter()
                .find(|ev| ev.judge.contains(judge))
                .map(|ev| ev.summary.as_str()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no evidence of {judge} in {report}"))
}

/// `role: dryRun` watches Flagger's analysis while the sequential judges decide: the slow
/// canary Flagger rolls back beside them is promoted, and every decision records that the
/// analysis failed, marked as a dry run.
#[tokio::test(start_paused = true)]
async fn a_dry_run_role_records_what_flagger_would_do_and_acts_on_the_sequential_judges() {
    let (world, _traffic) = World::serving(0.001, 0.001).await;
    world.set_latency("1.0.0", 100.0);
    world.set_latency("1.1.0", 900.0);
    let report = world
        .deploy(&with_parity(&format!("role: dryRun\n{FLAGGER_P99}")))
        .await;
    println!("{report}");
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(weights(&report.timeline), vec![10.0, 40.0, 70.0, 100.0]);
    let flagger = last_evidence_of(&report, "flagger");
    assert!(
        flagger.starts_with("Dry run, recorded only: Flagger: 2 failed checks"),
        "{flagger}"
    );
    crate::report_schema::assert_documented(&report, "a canary with a dry-run Flagger analysis");
}

/// `role: instead` lets Flagger's analysis decide and watches the sequential judges: a canary
/// erring 20 times as often as the baseline, which the count judge rolls back beside Flagger's
/// latency check, is promoted on that check alone, its count judge's failure recorded as a dry
/// run; a slow canary is still rolled back by the check.
#[tokio::test(start_paused = true)]
async fn an_instead_role_lets_the_parity_judges_alone_decide() {
    const LATENCY_ONLY: &str = "
flagger:
  metrics:
    - metric: latency
      quantity: {latencyQuantile: 0.99}
      thresholdRange: {max: 500}
";
    for (role, median, promoted) in [
        ("alongside", 100.0, false),
        ("instead", 100.0, true),
        ("instead", 900.0, false),
    ] {
        let (world, _traffic) = World::serving(0.001, 0.02).await;
        world.set_latency("1.0.0", 100.0);
        world.set_latency("1.1.0", median);
        let config = with_parity(&format!("role: {role}\n{LATENCY_ONLY}"));
        let report = world.deploy(&config).await;
        println!("{report}");
        let errors = last_evidence_of(&report, "count");
        if promoted {
            assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
            assert!(errors.starts_with("Dry run, recorded only: "), "{errors}");
        } else {
            let reason = rollback_reason(&report);
            let by = if median > 500.0 {
                "`latency`"
            } else {
                "`error_rate`"
            };
            assert!(
                reason.contains(&format!("regression in {by}")),
                "{role}: {reason}"
            );
        }
        crate::report_schema::assert_documented(&report, "a canary with parity judges instead");
    }
}

/// A role that leaves no judge deciding is refused, and so is an exposure budget that models
/// judges that only watch.
#[test]
fn roles_that_leave_nothing_deciding_are_refused() {
    for (yaml, path, why) in [
        (
            "role: instead\nargo: [{metric: error_rate, quantity: errorRate, dryRun: true}]",
            "canaryConfig.parityJudges.role",
            "needs a parity judge that decides",
        ),
        (
            "role: instead",
            "canaryConfig.parityJudges.role",
            "needs a parity judge that decides",
        ),
        ("role: sideways", "", "unknown variant `sideways`"),
    ] {
        let parsed = from_str::<ParityJudges>(yaml, Format::Yaml);
        let err = match parsed {
            Err(e) => e.to_string(),
            Ok(parity) => {
                let mut config = canary_config("1.1.0");
                config.canary_config.parity_judges = Some(parity);
                config.validate().expect_err(yaml).to_string()
            }
        };
        assert!(err.contains(path) && err.contains(why), "{yaml}: {err}");
    }
    let mut config = with_parity(&format!("role: instead\n{FLAGGER_P99}"));
    config.canary_config.pacing = Some(serin_canary::controller::Pacing {
        exposure_budget: Some(3_000.0),
        ..serin_canary::controller::Pacing::default()
    });
    let err = config
        .validate()
        .expect_err("a budget of a dry run")
        .to_string();
    assert!(
        err.contains("canaryConfig.pacing.exposureBudget") && err.contains("`instead`"),
        "{err}"
    );
}

/// The dry run says which judges decide.
#[tokio::test(start_paused = true)]
async fn the_dry_run_says_which_judges_decide() {
    let world = World::new();
    world.install("1.0.0").await;
    for (role, said) in [
        (
            "dryRun",
            "also judged, as a dry run recorded and never acted on, by Flagger's",
        ),
        (
            "instead",
            "instead of the sequential judges, which are a dry run",
        ),
    ] {
        let config = with_parity(&format!("role: {role}\n{FLAGGER_P99}"));
        let step = world.canary_step(&config).await;
        assert!(step.contains(said), "`{said}` not in: {step}");
        let json = serde_json::to_string(&config).expect("json");
        assert!(json.contains(&format!("\"role\":\"{role}\"")), "{json}");
        let back: DeploymentConfig = serde_json::from_str(&json).expect("reads back");
        assert_eq!(back, config);
    }
}
