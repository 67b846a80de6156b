//! The dry run of a canary says what a user deciding whether to run it needs: how long each
//! weight holds, the canary's `maxDuration`, what an inconclusive judge does, and pacing when
//! it is set.

use crate::support;

use std::time::Duration;

use serin_orchestrator::DeploymentConfig;
use support::{World, canary_config};

/// The canary step of the dry run of `config` over 1.0.0.
async fn canary_step(config: &DeploymentConfig) -> String {
    let world = World::new();
    world.install("1.0.0").await;
    world.canary_step(config).await
}

#[tokio::test(start_paused = true)]
async fn each_weight_s_hold_the_max_duration_and_on_inconclusive_are_listed() {
    let mut config = canary_config("1.1.0");
    config.canary_config.max_duration = Duration::from_secs(1_800);
    config.validate().expect("valid");
    let step = canary_step(&config).await;
    for said in [
        "weights 10% held 1m → 40% held 1m → 70% held 1m",
        "judged every 10s",
        "maxDuration 30m",
        "onInconclusive: hold",
    ] {
        assert!(step.contains(said), "`{said}` not in: {step}");
    }
    assert!(!step.contains("pacing"), "{step}");
}

#[tokio::test(start_paused = true)]
async fn explicit_steps_pauses_analyses_and_pacing_are_listed() {
    let mut config = canary_config("1.1.0");
    support::written_steps(
        &mut config,
        serde_json::from_str(
            r#"[{"setWeight": 10}, {"pause": {"duration": "2m"}},
                {"setWeight": 50}, {"pause": {}},
                {"setWeight": 80}, {"analysis": {"duration": "5m"}}]"#,
        )
        .expect("steps"),
    );
    config.canary_config.on_inconclusive = serin_canary::controller::OnInconclusive::Rollback;
    config.canary_config.pacing = Some(
        serde_json::from_str(r#"{"detectableRatio": 2.0, "exposureBudget": 3000}"#)
            .expect("pacing"),
    );
    config.validate().expect("valid");
    let step = canary_step(&config).await;
    for said in [
        "weights 10% held 2m → 50% held until resumed → 80% held by an analysis of up to 5m",
        "onInconclusive: rollback",
        "pacing: a raise waits until errors rule out 2× the baseline's error rate",
        "exposure budget of 3000 requests",
    ] {
        assert!(step.contains(said), "`{said}` not in: {step}");
    }
}

/// A pause ends at the first window read at or after its end: read every 90 s, a 2m pause
/// holds 3m, and the dry run says so, as `maxDuration`'s check counts it.
#[tokio::test(start_paused = true)]
async fn a_pause_is_listed_as_long_as_it_runs_in_whole_windows() {
    let mut config = canary_config("1.1.0");
    config.canary_config.increment_interval = Duration::from_secs(120);
    config.canary_config.metrics_window = Duration::from_secs(90);
    config.canary_config.max_duration = Duration::from_secs(1_800);
    config.validate().expect("valid");
    let step = canary_step(&config).await;
    let said =
        "weights 10% held 3m (a 2m pause) → 40% held 3m (a 2m pause) → 70% held 3m (a 2m pause)";
    assert!(step.contains(said), "`{said}` not in: {step}");
}

/// A canary is promoted only once its own error rate is shown below
/// `promotionMaxErrorRate`, not merely when no judge fails: under scarce traffic it holds.
/// The dry run says so, and says nothing of it with the gate turned off.
#[tokio::test(start_paused = true)]
async fn the_promotion_gate_is_listed_with_its_bound() {
    let mut config = canary_config("1.1.0");
    config.canary_config.promotion_max_error_rate = 0.07;
    config.validate().expect("valid");
    let step = canary_step(&config).await;
    let said = "promote when no judge fails and the canary's error rate is shown below 7% \
                (canaryConfig.promotionMaxErrorRate), holding until then";
    assert!(step.contains(said), "`{said}` not in: {step}");
    let mut config = canary_config("1.1.0");
    config.canary_config.promotion_max_error_rate = 1.0;
    config.validate().expect("valid");
    let step = canary_step(&config).await;
    assert!(step.contains("promote when no judge fails;"), "{step}");
    assert!(!step.contains("promotionMaxErrorRate"), "{step}");
}

/// The watch counts as rollback triggers only those that can roll back: `minThroughput`
/// warns only, and a trigger whose action is `warn` or `hold` never switches back.
#[tokio::test(start_paused = true)]
async fn the_watch_counts_only_the_triggers_that_roll_back_as_rollback_triggers() {
    let mut config = canary_config("1.1.0");
    config.canary_thresholds.min_throughput = Some(1.0);
    config.triggers = serde_json::from_str(
        r#"[{"kind":"metricThreshold","id":"slow","metric":"latency","operator":"gt",
             "value":900,"action":"warn"}]"#,
    )
    .expect("triggers");
    config.validate().expect("valid");
    let world = World::new();
    world.install("1.0.0").await;
    let plan = world.plan(&config).await;
    let watch = plan
        .steps
        .iter()
        .find(|s| s.starts_with("monitor for"))
        .unwrap_or_else(|| panic!("no watch: {plan}"));
    // The default monitoring.errorRateThreshold rolls back; the other two warn.
    assert!(
        watch.contains("with 1 rollback trigger(s) and 2 trigger(s) that only warn or hold"),
        "{watch}"
    );
}

/// The dry run says its durations as a config writes them (`5m`, `1m 30s`), as it says the
/// canary's, not as Rust debug-prints them (`300s`, `90s`).
#[tokio::test(start_paused = true)]
async fn the_watch_and_the_retire_say_their_durations_as_a_config_writes_them() {
    let mut config = canary_config("1.1.0");
    config.monitoring.monitoring_duration = Duration::from_secs(300);
    config.monitoring.check_interval = Duration::from_secs(90);
    config.monitoring.read_delay = Duration::from_secs(2);
    config.blue_green_config.keep_old_warm_for = Duration::from_secs(60);
    config.validate().expect("valid");
    let world = World::new();
    world.install("1.0.0").await;
    let plan = world.plan(&config).await;
    for said in [
        "monitor for 5m, checked every 1m 30s",
        "each window read 2s after its end",
        "retire stable (1.0.0) 5m 2s after promotion",
    ] {
        assert!(
            plan.steps.iter().any(|s| s.contains(said)),
            "`{said}` not in:\n{plan}"
        );
    }
}
