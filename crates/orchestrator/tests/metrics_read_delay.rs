//! `monitoring.readDelay`: each metrics window is read that long after its end, so that a
//! source recording its samples a little late (a scrape, a response that ends after the
//! request it counts) has them all by then; without it, a sample recorded just after the read
//! is in no window at all. Deadlines keep their meaning: a read due after the deadline is not
//! waited for.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_orchestrator::{
    DeploymentConfig, EventKind, InMemoryPlatform, Outcome, Phase, Report, Sample, StrategyKind,
    TrafficStrategyKind,
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
    support::written_steps(
        &mut c,
        serde_json::from_str(r#"[{"setWeight":10},{"pause":{}}]"#).expect("steps"),
    );
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
    let plan = world.plan(&config).await;
    assert!(
        !plan.steps.iter().any(|s| s.contains("readDelay")),
        "{:?}",
        plan.steps
    );
    config.monitoring.read_delay = Duration::from_secs(2);
    let plan = world.plan(&config).await;
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
            .any(|s| s == "retire stable (1.0.0) 1m 2s after promotion"),
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

/// [`support::short_canary_config`] (two timed pauses of 30 s, windows of 10 s) with its
/// windows read 4 s after their end.
fn paused_canary_read_late() -> DeploymentConfig {
    let mut c = support::short_canary_config("1.1.0");
    c.blue_green_config.readiness_timeout = Duration::from_secs(10);
    c.monitoring.read_delay = Duration::from_secs(4);
    c
}

/// A canary's timed pauses end with the windows that cover them, and those are read
/// `readDelay` later: its two pauses of 30 s are over 64 s after its first step at the
/// earliest, so a deadline of 62 s (or a rollout `maxDuration` of 62 s) rolls every such
/// canary back, however good; the config is refused when loaded, naming the read delay.
#[test]
fn timed_pauses_that_fit_a_deadline_only_without_the_read_delay_are_refused() {
    let mut deadline = paused_canary_read_late();
    deadline.max_deployment_duration = Duration::from_secs(62);
    let err = deadline.validate().expect_err("refused").to_string();
    assert!(
        err.contains("maxDeploymentDuration `1m 2s`")
            && err.contains("1m, from canaryConfig.incrementInterval")
            && err.contains("monitoring.readDelay 4s"),
        "{err}"
    );
    deadline.max_deployment_duration = Duration::from_secs(65);
    deadline
        .validate()
        .expect("the pauses and their last read fit");

    let mut rollout = paused_canary_read_late();
    rollout.canary_config.max_duration = Duration::from_secs(62);
    let err = rollout.validate().expect_err("refused").to_string();
    assert!(
        err.contains("canaryConfig.maxDuration `1m 2s`") && err.contains("monitoring.readDelay 4s"),
        "{err}"
    );
    rollout.canary_config.max_duration = Duration::from_secs(65);
    rollout
        .validate()
        .expect("the pauses and their last read fit");
}

/// The canary of [`timed_pauses_that_fit_a_deadline_only_without_the_read_delay_are_refused`]
/// with room for its last read: its second pause is over, and its weight raised, 64 s after
/// its first step, as the refusal counts.
#[tokio::test(start_paused = true)]
async fn the_last_timed_pause_is_over_when_its_window_is_read() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = paused_canary_read_late();
    config.max_deployment_duration = Duration::from_secs(300);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    let raised: Vec<u64> = report
        .timeline
        .iter()
        .filter(|e| matches!(e.kind, EventKind::WeightChanged { .. }))
        .map(|e| e.at.as_millis() - report.started_at.as_millis())
        .collect();
    assert_eq!(raised.get(..3), Some(&[0, 34_000, 64_000][..]), "{report}");
    // The window read when the weight was raised to 55% (at 34 s) ended at 30 s; the next one
    // starts there, so its first 4 s saw the previous weight, as `readDelay` documents.
    let read = reads(&world, &config);
    let after = read
        .iter()
        .find(|(at, _)| *at > 34_000)
        .expect("a window read after the raise");
    assert_eq!(*after, (44_000, (30_000, 40_000)), "{read:?}");
}

/// Each window the journal holds as `(read, (start, end))`, in milliseconds since the
/// deployment started, checked to be read `config`'s read delay after its end, and back to
/// back with the one before it: none read twice, none skipped.
fn reads(world: &World, config: &DeploymentConfig) -> Vec<(u64, (u64, u64))> {
    let records = world.journal.all();
    let deployment = &records.last().expect("records").deployment;
    let records: Vec<_> = records
        .iter()
        .filter(|r| &r.deployment == deployment)
        .collect();
    let started = records[0].state.started_at.as_millis();
    let read: Vec<(u64, (u64, u64))> = records
        .iter()
        .filter_map(|r| {
            let w = r.sample.as_ref()?.window;
            let since = |t: Timestamp| t.as_millis() - started;
            Some((since(r.at), (since(w.start()), since(w.end()))))
        })
        .collect();
    let delay = config.monitoring.read_delay.as_millis() as u64;
    for pair in read.windows(2) {
        assert_eq!(pair[0].1.1, pair[1].1.0, "back to back: {read:?}");
    }
    for (at, (_, end)) in &read {
        assert_eq!(*at, end + delay, "read `readDelay` after its end: {read:?}");
    }
    read
}

/// A canary whose windows are read 4 s late, cut short mid-analysis and resumed 25 s later
/// with the same config: the windows stay back to back across the crash, none read twice
/// and none skipped, each read 4 s after its end (the first after the resume covers the
/// time the deployment was down).
#[tokio::test(start_paused = true)]
async fn a_resumed_canary_reads_each_window_once_and_late() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let config = paused_canary_read_late();
    let installed = world.journal.len();
    let last = support::crash_at(&world, world.orchestrator(), config.clone(), installed + 9).await;
    assert_eq!(
        last.state.stage,
        serin_orchestrator::Stage::Canary,
        "{last:?}"
    );
    let before = reads(&world, &config).len();
    assert!(before >= 2, "windows read before the crash: {before}");
    tokio::time::sleep(Duration::from_secs(25)).await;
    let report = world.resumed(&last.deployment).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let read = reads(&world, &config);
    assert!(read.len() > before + 2, "{read:?}");
}

/// A gradual blue-green switch (25% every 30 s) read 2 s late: each check of its steps and of
/// the watch after promotion is read 2 s after its window's end, the windows back to back.
#[tokio::test(start_paused = true)]
async fn a_gradual_switch_and_its_watch_read_each_window_once_and_late() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Gradual);
    config.monitoring.read_delay = Duration::from_secs(2);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    // Three steps of 30 s and a minute's watch, a window each 5 s.
    let read = reads(&world, &config);
    assert!(read.len() >= 30, "{read:?}");
}

/// A canary promoted on a platform whose instances take about 20 s to get ready, its windows
/// read 3 s late: the checks while its track grows for the promotion are read late too, and
/// the windows stay back to back from its first step to the end of the watch.
#[tokio::test(start_paused = true)]
async fn a_growing_canary_reads_each_window_once_and_late() {
    let (world, _traffic) =
        World::serving_on(InMemoryPlatform::new().with_ready_after(20), 0.005, 0.005).await;
    let mut config = support::short_canary_config("1.1.0");
    config.blue_green_config.readiness_timeout = Duration::from_secs(300);
    config.monitoring.read_delay = Duration::from_secs(3);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    let watched = report
        .timeline
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::PhaseChanged {
                    phase: Phase::Monitoring
                }
            )
        })
        .map(|e| e.at.as_millis() - report.started_at.as_millis())
        .expect("promoted");
    let read = reads(&world, &config);
    // While the track grew, before the watch, the checks came each 5 s (`checkInterval`),
    // not each canary window (10 s).
    let growing: Vec<_> = read.iter().filter(|(at, _)| *at < watched).collect();
    assert!(
        growing
            .windows(2)
            .any(|p| p[1].0 - p[0].0 == 5_000 && p[1].1.1 - p[1].1.0 == 5_000),
        "{read:?}"
    );
}

/// The watch after an immediate switch, its windows (5 s) read 2 s late, with
/// `maxDeploymentDuration` 33 s: the deadline falls between the read of the window ending at
/// 30 s (at 32 s) and that of the next one (at 37 s). That read is not waited for; the
/// deadline decides at 33 s.
#[tokio::test(start_paused = true)]
async fn the_watch_makes_no_read_past_the_deadline() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.blue_green_config.readiness_timeout = Duration::from_secs(10);
    config.monitoring.read_delay = Duration::from_secs(2);
    config.max_deployment_duration = Duration::from_secs(33);
    config.validate().expect("valid");
    let report = world.deploy(&config).await;
    let reached = report
        .timeline
        .iter()
        .find(|e| matches!(e.kind, EventKind::DeadlineReached { .. }))
        .expect("deadline reached");
    let deadline = report.started_at.saturating_add(Duration::from_secs(33));
    assert_eq!(reached.at, deadline, "{report}");
    let read = reads(&world, &config);
    assert_eq!(read.last().map(|r| r.0), Some(32_000), "{read:?}");
}
