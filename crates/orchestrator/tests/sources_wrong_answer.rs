//! A metrics or health source that answers another question than it was asked (another
//! window, another track) gives no data for that read, never evidence: taken as an answer, a
//! window dated an hour ahead would move the triggers' clock past every later window, and
//! another track's clean data would stand for the failing new version's. A health result
//! dated ahead is taken as of its answer, not as a fresh result for the time ahead.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serin_orchestrator::{Clock, InMemoryJournal, Outcome, ServiceBackends, TrafficStrategyKind};
use serin_signals::{
    Counts, HealthSignal, HealthSource, InMemorySource, Measurement, Metric, MetricQuery,
    MetricsSource, Observation, Probe, ProbeStatus, Track, Window,
};
use support::{World, blue_green_config, errors_or_missing_data_trigger, rollback_reason};

/// How [`Misanswering`] answers the new version's error-rate queries. The old version runs on
/// the track `stable` (installed by a canary), so the new one comes up on `blue`.
#[derive(Clone, Copy)]
enum Wrong {
    /// The first one with a clean window dated an hour after the one asked for.
    AnHourAhead,
    /// Every one with a clean observation of the old version's track, `stable`.
    OtherTrack,
}

/// The world's source, answering the new version's error-rate queries wrongly as `wrong` says.
struct Misanswering {
    inner: Arc<InMemorySource>,
    wrong: Wrong,
    /// Whether the window dated ahead has been answered.
    skewed: AtomicBool,
}

#[async_trait::async_trait]
impl MetricsSource for Misanswering {
    fn name(&self) -> &str {
        "misanswering"
    }

    async fn query(&self, query: &MetricQuery) -> serin_signals::Result<Observation> {
        if query.track != Track::Blue || query.metric != Metric::ErrorRate {
            return self.inner.query(query).await;
        }
        let clean = Measurement::Counts(Counts::new(1_000, 0)?);
        let (track, window) = match self.wrong {
            Wrong::AnHourAhead if !self.skewed.swap(true, Ordering::SeqCst) => {
                let hour = Duration::from_secs(3_600);
                let ahead = Window::new(
                    query.window.start().saturating_add(hour),
                    query.window.end().saturating_add(hour),
                )?;
                (query.track.clone(), ahead)
            }
            Wrong::AnHourAhead => return self.inner.query(query).await,
            Wrong::OtherTrack => (Track::Stable, query.window),
        };
        Ok(Observation::new(query.metric.clone(), track, window, clean))
    }
}

/// A health source that answers for every track a passing readiness result of the old
/// version's track, `stable`, taken now.
struct OldTrackHealth {
    clock: Clock,
}

impl OldTrackHealth {
    fn passing(&self) -> HealthSignal {
        HealthSignal::new(
            Track::Stable,
            Probe::Readiness,
            ProbeStatus::Pass,
            self.clock.now(),
        )
    }
}

#[async_trait::async_trait]
impl HealthSource for OldTrackHealth {
    fn name(&self) -> &str {
        "old-track-health"
    }

    async fn probe(
        &self,
        _track: &Track,
        _probe: &Probe,
    ) -> serin_signals::Result<Option<HealthSignal>> {
        Ok(Some(self.passing()))
    }

    async fn signals(&self, _track: &Track) -> serin_signals::Result<Vec<HealthSignal>> {
        Ok(vec![self.passing()])
    }
}

/// The world's health source, but the first answer for the new version's track, `blue`, is a
/// passing readiness result dated an hour ahead (a prober whose clock jumped).
struct AheadOnceHealth {
    inner: Arc<dyn HealthSource>,
    clock: Clock,
    skewed: AtomicBool,
}

#[async_trait::async_trait]
impl HealthSource for AheadOnceHealth {
    fn name(&self) -> &str {
        "ahead-once-health"
    }

    async fn probe(
        &self,
        track: &Track,
        probe: &Probe,
    ) -> serin_signals::Result<Option<HealthSignal>> {
        self.inner.probe(track, probe).await
    }

    async fn signals(&self, track: &Track) -> serin_signals::Result<Vec<HealthSignal>> {
        if *track == Track::Blue && !self.skewed.swap(true, Ordering::SeqCst) {
            let ahead = self.clock.now().saturating_add(Duration::from_secs(3_600));
            return Ok(vec![HealthSignal::new(
                track.clone(),
                Probe::Readiness,
                ProbeStatus::Pass,
                ahead,
            )]);
        }
        self.inner.signals(track).await
    }
}

/// An immediate blue-green switch from 1.0.0 (0.5% errors) to 1.1.0 (failing `new_rate` of
/// its requests), watched by `trigger`, over the sources `backends` makes of the world's: it
/// must roll back; the reason why.
async fn rollback_over(
    new_rate: f64,
    trigger: serin_triggers::TriggerConfig,
    backends: impl FnOnce(&World) -> ServiceBackends,
) -> String {
    let (world, _traffic) = World::serving(0.005, new_rate).await;
    let backends = backends(&world);
    let orchestrator = world
        .builder_on(
            world.platform.clone(),
            backends,
            Arc::new(InMemoryJournal::new()),
        )
        .build();
    let mut config = blue_green_config("1.1.0", TrafficStrategyKind::Immediate);
    config.triggers = vec![trigger];
    config.validate().expect("valid");
    let report = support::run_to_end(&orchestrator, &config).await;
    let text = report.to_string();
    assert!(text.contains("1.0.0 on stable -> 1.1.0 on blue"), "{text}");
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{text}"
    );
    rollback_reason(&report).to_owned()
}

/// [`rollback_over`] with 1.1.0 failing half its requests and the error-rate trigger, over a
/// metrics source that answers `wrong`.
async fn rollback_over_metrics(wrong: Wrong) -> String {
    rollback_over(0.5, errors_or_missing_data_trigger(), |world| {
        let source = Arc::new(Misanswering {
            inner: world.source.clone(),
            wrong,
            skewed: AtomicBool::new(false),
        });
        ServiceBackends::new(world.router.clone(), source, world.health.clone())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn a_window_dated_ahead_does_not_blind_the_triggers_to_later_ones() {
    let reason = rollback_over_metrics(Wrong::AnHourAhead).await;
    assert!(
        reason.contains("`errors`") && !reason.contains("no usable data"),
        "rolled back on the later windows' errors: {reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_tracks_data_does_not_stand_for_the_new_versions() {
    let reason = rollback_over_metrics(Wrong::OtherTrack).await;
    assert!(
        reason.contains("`errors`") && reason.contains("no usable data"),
        "the new version's data is missing, not the old one's in its place: {reason}"
    );
}

/// A readiness trigger that fires on missing data: only a fresh passing result keeps it quiet.
fn readiness_trigger() -> serin_triggers::TriggerConfig {
    serde_json::from_str(
        r#"{"kind":"healthCheck","id":"ready","checkType":"readiness","onMissingData":"fire"}"#,
    )
    .expect("trigger")
}

#[tokio::test(start_paused = true)]
async fn another_tracks_health_does_not_stand_for_the_new_versions() {
    let trigger = readiness_trigger();
    // 1.1.0 errs no more than 1.0.0: only its health can roll it back.
    let reason = rollback_over(0.005, trigger, |world| {
        let health = Arc::new(OldTrackHealth { clock: world.clock });
        ServiceBackends::new(world.router.clone(), world.source.clone(), health)
    })
    .await;
    assert!(
        reason.contains("`ready`") && reason.contains("no usable data"),
        "the new version's probe results are missing: {reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_result_dated_ahead_does_not_blind_the_triggers_to_later_windows() {
    let reason = rollback_over(0.5, errors_or_missing_data_trigger(), |world| {
        let health = Arc::new(AheadOnceHealth {
            inner: world.health.clone(),
            clock: world.clock,
            skewed: AtomicBool::new(false),
        });
        ServiceBackends::new(world.router.clone(), world.source.clone(), health)
    })
    .await;
    assert!(
        reason.contains("`errors`") && !reason.contains("no usable data"),
        "rolled back on the later windows' errors: {reason}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_health_result_dated_ahead_does_not_stand_for_the_hour_ahead() {
    // 1.1.0 errs no more than 1.0.0 and its prober answers once, a pass dated an hour ahead,
    // then nothing: taken as of its date, that pass would be fresh for the whole hour.
    let trigger = readiness_trigger();
    let reason = rollback_over(0.005, trigger, |world| {
        let health = Arc::new(AheadOnceHealth {
            inner: Arc::new(serin_signals::InMemoryHealth::new()),
            clock: world.clock,
            skewed: AtomicBool::new(false),
        });
        ServiceBackends::new(world.router.clone(), world.source.clone(), health)
    })
    .await;
    assert!(
        reason.contains("`ready`") && reason.contains("no usable data"),
        "the one pass went stale: {reason}"
    );
}
