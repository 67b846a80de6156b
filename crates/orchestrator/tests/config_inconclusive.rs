//! `canaryConfig.onInconclusive`: what the canary does when its analysis is still
//! inconclusive at an analysis step's end. Read and written back, refused when unknown, passed
//! to the canary controller (and the dry run's policy), and acted on in a run.

use crate::support;

use std::time::Duration;

use serin_canary::controller::{OnInconclusive, Step};
use serin_orchestrator::{DeploymentConfig, EventKind, Report};
use support::{SERVICE, World, canary_within, rollback_reason, took};

const HEAD: &str = "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\n";

#[test]
fn on_inconclusive_defaults_to_the_policys_default_and_round_trips() {
    let c = DeploymentConfig::from_yaml(HEAD).expect("valid");
    assert_eq!(c.canary_config.on_inconclusive, OnInconclusive::default());
    assert_eq!(c.canary_config.on_inconclusive, OnInconclusive::Hold);
    for value in [OnInconclusive::Hold, OnInconclusive::Rollback] {
        let name = serde_json::to_value(value).expect("serializes");
        let name = name.as_str().expect("a name");
        let yaml = format!("{HEAD}canaryConfig:\n  onInconclusive: {name}\n");
        let c = DeploymentConfig::from_yaml(&yaml).expect("valid");
        assert_eq!(c.canary_config.on_inconclusive, value);
        assert_eq!(
            c.canary_config.policy().expect("policy").on_inconclusive,
            value
        );
        let json = serde_json::to_string(&c).expect("serializes");
        assert!(
            json.contains(&format!(r#""onInconclusive":"{name}""#)),
            "{json}"
        );
        let back = DeploymentConfig::from_json(&json).expect("reads back");
        assert_eq!(back, c);
        let toml_text = toml::to_string(&c).expect("serializes");
        assert_eq!(
            DeploymentConfig::from_toml(&toml_text).expect("reads back"),
            c
        );
    }
}

#[test]
fn an_unknown_on_inconclusive_is_refused_naming_the_field() {
    let yaml = format!("{HEAD}canaryConfig:\n  onInconclusive: promote\n");
    let json = r#"{"strategy":"canary","version":"1.1.0","targetServices":["web"],
        "canaryConfig":{"onInconclusive":"promote"}}"#;
    for err in [
        DeploymentConfig::from_yaml(&yaml).expect_err("refused"),
        DeploymentConfig::from_json(json).expect_err("refused"),
    ] {
        let err = err.to_string();
        assert!(
            err.contains("canaryConfig.onInconclusive") && err.contains("promote"),
            "{err}"
        );
    }
}

/// A canary to 1.1.0 whose analysis step at 10% wants far more samples than its minute gives
/// (one per 10-s window), with `onInconclusive` as given.
fn short_of_samples(on_inconclusive: OnInconclusive) -> DeploymentConfig {
    let mut c = canary_within(Duration::from_secs(2 * 3_600));
    support::written_steps(
        &mut c,
        serde_json::from_str(
            r#"[{"setWeight":10},{"analysis":{"duration":"1m","minSamples":100}},
                {"setWeight":50},{"pause":{"duration":"1m"}}]"#,
        )
        .expect("steps"),
    );
    c.canary_config.max_duration = Duration::from_secs(600);
    c.canary_config.on_inconclusive = on_inconclusive;
    c.validate().expect("valid");
    c
}

/// Whether the controller said, holding or rolling back, that the analysis step ended short
/// of samples.
fn analysis_ended_short(report: &Report) -> bool {
    report.timeline.iter().any(|e| {
        matches!(&e.kind, EventKind::AnalysisResult { decision }
            if decision.reason.contains("analysis ended with"))
    })
}

#[tokio::test(start_paused = true)]
async fn on_inconclusive_decides_what_an_analysis_short_of_samples_does_at_its_end() {
    // Rollback: rolled back as soon as the analysis step's minute is over.
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = world
        .deploy(&short_of_samples(OnInconclusive::Rollback))
        .await;
    println!("{report}");
    let reason = rollback_reason(&report);
    assert!(
        reason.contains("analysis ended with") && reason.contains("of 100 samples"),
        "{reason}"
    );
    assert!(took(&report) < Duration::from_secs(300), "{report}");

    // Hold (the default): the canary holds at 10% past the step's end, until the canary's
    // maxDuration rolls it back.
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let report = world.deploy(&short_of_samples(OnInconclusive::Hold)).await;
    println!("{report}");
    assert!(analysis_ended_short(&report), "the hold says why: {report}");
    let reason = rollback_reason(&report);
    assert!(reason.contains("maximum duration"), "{reason}");
    assert!(took(&report) >= Duration::from_secs(600), "{report}");
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_shows_the_policy_with_on_inconclusive() {
    let world = World::installed().await;
    let config = short_of_samples(OnInconclusive::Rollback);
    let plan = world.plan(&config).await;
    assert_eq!(plan.service, SERVICE);
    let policy = plan.canary.expect("a canary policy");
    assert_eq!(policy.on_inconclusive, OnInconclusive::Rollback);
    assert!(matches!(policy.steps[1], Step::Analysis(_)));
}
