//! `monitoring.readDelay`: each metrics window is read that long after its end, so that a
//! source recording its samples a little late (a scrape, a response that ends after the
//! request it counts) has them all by then; without it, a sample recorded just after the read
//! is in no window at all. Deadlines keep their meaning: a read due after the deadline is not
//! waited for.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, EventKind, Outcome, Report, Sample, StrategyKind, TrafficStrategyKind,
};
use serin_signals::{Metric, Timestamp, Track, Window};
use support::{World, blue_green_config, canary_config, rollback_reason};

/// Requests each track serves per second.
const PER_SECOND: u64 = 100;
/// How long after the second it belongs to each sample is recorded.
const LAG: Duration = Duration::from_millis(300);

/// Records, for blue and green, `PER_SECOND` requests over each whole second `[t - 1s, t)`,
/// `LAG` after `t`: the sample belonging to a window's last second arrives after its end.
fn spawn_lagging_source(world: &Arc<World>) -> tokio::task::JoinHandle<()> {
    let world = Arc::clone(world);
    tokio::spawn(async move {
        tokio::time::sleep(LAG).await;
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let second = Timestamp::from_millis(world.clock.now().as_millis() / 1_000 * 1_000);
            let window = Window::ending_at(second, Duration::from_secs(1));
            for track in [Track::Blue, Track::Green] {
                world
                    .source
                    .record_counts(track, Metric::ErrorRate, window, PER_SECOND, 0)
                    .expect("record");
            }
        }
    })
}

/// 1.0.0 serving on blue, then an immediate blue-green switch to 1.1.0 with `read_delay`,
/// under the lagging source; its report.
async fn switch_with(read_delay: Duration) -> Report {
    let world = Arc::new(World::new());
    let install = blue_green_config("1.0.0", TrafficStrategyKind::Immediate);
    let r = world.orchestrator().run(&install).await.expect("install");
    assert_eq!(r[0].outcome, Some(Outcome::Succeeded));
    let source = spawn_lagging_source(&world);
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.monitoring.read_delay = read_delay;
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    source.abort();
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    report
}

/// The new version's requests in `sample`, and those the source recorded in its window.
fn read_and_recorded(sample: &Sample) -> (u64, u64) {
    let green = sample
        .arms
        .iter()
        .find(|a| a.track == "green")
        .expect("green arm");
    let span = sample.window.length();
    assert_eq!(
        span.subsec_millis(),
        0,
        "windows on whole seconds: {sample:?}"
    );
    (green.requests.unwrap_or(0), span.as_secs() * PER_SECOND)
}

#[tokio::test(start_paused = true)]
async fn without_a_read_delay_each_window_misses_its_last_second() {
    let report = switch_with(Duration::ZERO).await;
    assert!(!report.samples.is_empty(), "{report}");
    for sample in &report.samples {
        let (read, recorded) = read_and_recorded(sample);
        assert_eq!(read, recorded - PER_SECOND, "{sample:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_read_delay_reads_every_sample_of_each_window() {
    let report = switch_with(Duration::from_millis(500)).await;
    assert!(!report.samples.is_empty(), "{report}");
    let mut previous_end = None;
    for sample in &report.samples {
        let (read, recorded) = read_and_recorded(sample);
        assert_eq!(read, recorded, "{sample:?}");
        // The windows themselves are those of a read without delay: each starts where the
        // last one ended.
        if let Some(end) = previous_end {
            assert_eq!(sample.window.start(), end, "{report}");
        }
        previous_end = Some(sample.window.end());
    }
}

/// A canary held at 10% until the deadline (an indefinite pause), whose windows (10 s) are
/// read 4 s after their end, with `maxDeploymentDuration` 32 s: the deadline falls between
/// the third window's end (30 s) and its read (34 s).
fn held_canary_within_32s() -> DeploymentConfig {
    let mut c = canary_config("1.1.0");
    c.canary_config.steps =
        Some(serde_json::from_str(r#"[{"setWeight":10},{"pause":{}}]"#).expect("steps"));
    c.blue_green_config.readiness_timeout = Duration::from_secs(10);
    c.monitoring.read_delay = Duration::from_secs(4);
    c.max_deployment_duration = Duration::from_secs(32);
    c.validate().expect("valid");
    c
}

#[tokio::test(start_paused = true)]
async fn a_read_delay_does_not_carry_a_deployment_past_its_deadline() {
    let world = Arc::new(World::new());
    world.install("1.0.0").await;
    let report = world.deploy(&held_canary_within_32s()).await;
    let reason = rollback_reason(&report);
    assert!(reason.contains("maxDeploymentDuration"), "{reason}");
    let deadline = report.started_at.saturating_add(Duration::from_secs(32));
    let reached = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::DeadlineReached { .. }))
        .expect("deadline reached");
    assert_eq!(reached.at, deadline, "{report}");
    // The window whose read was due after the deadline was not read.
    assert!(
        report.samples.iter().all(|s| s.window.end() < deadline),
        "{report}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_read_delay_not_shorter_than_the_check_interval_is_refused() {
    let mut config = DeploymentConfig::new(
        StrategyKind::BlueGreen,
        support::v("1.1.0"),
        &[support::SERVICE],
    )
    .expect("config");
    config.monitoring.read_delay = config.monitoring.check_interval;
    let err = config.validate().expect_err("refused").to_string();
    assert!(
        err.contains("monitoring.readDelay")
            && err.contains("5s")
            && err.contains("monitoring.checkInterval")
            && err.contains("pile up"),
        "{err}"
    );
}

#[test]
fn a_negative_or_unparsable_read_delay_is_refused_naming_the_field() {
    for bad in ["-1s", "soon"] {
        let yaml = format!(
            "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\nmonitoring: {{ readDelay: {bad} }}\n"
        );
        let err = DeploymentConfig::from_yaml(&yaml)
            .expect_err("refused")
            .to_string();
        assert!(err.contains("monitoring.readDelay"), "{bad}: {err}");
    }
    let ok = DeploymentConfig::from_yaml(
        "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\nmonitoring: { readDelay: 15s, checkInterval: 30s }\n",
    )
    .expect("valid");
    assert_eq!(ok.monitoring.read_delay, Duration::from_secs(15));
    let default =
        DeploymentConfig::from_yaml("strategy: canary\nversion: 1.1.0\ntargetServices: [web]\n")
            .expect("valid");
    assert_eq!(default.monitoring.read_delay, Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn the_dry_run_shows_the_read_delay() {
    let world = World::new();
    world.install("1.0.0").await;
    let mut config = canary_config("1.1.0");
    let plan = world
        .orchestrator()
        .plan(&config)
        .await
        .expect("plan")
        .remove(0);
    assert!(
        !plan.steps.iter().any(|s| s.contains("readDelay")),
        "{:?}",
        plan.steps
    );
    config.monitoring.read_delay = Duration::from_secs(2);
    let plan = world
        .orchestrator()
        .plan(&config)
        .await
        .expect("plan")
        .remove(0);
    assert!(
        plan.steps
            .iter()
            .any(|s| s.contains("each window read 2s after its end (monitoring.readDelay)")),
        "{:?}",
        plan.steps
    );
    // The watch (1m) ends with its last window's read, after the old version's warm delay
    // (1m): the old version goes then.
    assert!(
        plan.steps
            .iter()
            .any(|s| s == "retire stable (1.0.0) 62s after promotion"),
        "{:?}",
        plan.steps
    );
}

#[test]
fn a_canary_read_delay_not_shorter_than_its_metrics_window_is_refused() {
    let mut config = DeploymentConfig::new(
        StrategyKind::Canary,
        support::v("1.1.0"),
        &[support::SERVICE],
    )
    .expect("config");
    config.monitoring.check_interval = Duration::from_secs(60);
    config.canary_config.metrics_window = Duration::from_secs(10);
    config.monitoring.read_delay = Duration::from_secs(10);
    let err = config.validate().expect_err("refused").to_string();
    assert!(
        err.contains("monitoring.readDelay") && err.contains("canaryConfig.metricsWindow"),
        "{err}"
    );
    config.monitoring.read_delay = Duration::from_secs(9);
    config.validate().expect("shorter than the window");
}
