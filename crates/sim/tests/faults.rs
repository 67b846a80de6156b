//! One behaviour test per fault kind and readiness behaviour: what the platform, the router,
//! the metrics and the probes show while it lasts, and after.

use crate::common;

use std::time::Duration;

use common::*;
use serin_orchestrator::{Error as PlatformError, Platform, TrackSpec};
use serin_signals::{
    Error as SignalsError, HealthSource, Metric, MetricQuery, MetricsSource, Probe, ProbeStatus,
    Track, Window,
};
use serin_sim::{
    EventKind, Fault, LatencyProfile, Load, Readiness, Schedule, SimConfig, Span, Unready,
    VersionProfile,
};
use serin_traffic::{Error as TrafficError, TrafficRouter, TrafficSplit};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn span(from: Duration, until: Duration) -> Span {
    Span::new(from, until)
}

#[tokio::test(start_paused = true)]
async fn a_crash_kills_the_instances_and_their_traffic_fails() {
    let world = fleet(SimConfig::new(11).with_fault(Fault::Crash {
        service: None,
        track: Track::Canary,
        instance: None,
        at: mins(10),
    }))
    .await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 80), ("canary", 20)]).await;
    let before_crash = world.now();
    wait(mins(15)).await;

    let status = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    let dead = status.dead_instance().expect("a dead instance");
    assert!(
        dead.detail.as_deref().unwrap().contains("crashed at"),
        "{dead:?}"
    );
    assert_eq!(status.ready_count(), 0);
    let liveness = world
        .health()
        .probe(&Track::Canary, &Probe::Liveness)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(liveness.status, ProbeStatus::Fail);

    // Before the crash, the canary served; after it, everything sent to it failed.
    let start = world.config().start();
    let healthy = Window::new(before_crash, start.saturating_add(mins(10))).unwrap();
    let crashed = Window::new(start.saturating_add(mins(10)), world.now()).unwrap();
    let ok = counts(&world, Track::Canary, healthy).await.unwrap();
    assert!(ok.error_rate().unwrap() < 0.01, "{ok:?}");
    assert_eq!(world.unroutable(healthy).requests(), 0);
    let failed = counts(&world, Track::Canary, crashed).await.unwrap();
    assert_eq!(failed.errors(), failed.requests());
    assert_eq!(world.unroutable(crashed), failed);
    assert!(latency(&world, Track::Canary, crashed).await.is_none());
    // Stable never noticed.
    let stable = counts(&world, Track::Stable, crashed).await.unwrap();
    assert!(stable.error_rate().unwrap() < 0.01, "{stable:?}");
}

/// A crash at `t` kills the instances running at `t`, not one started at `t`: that one starts
/// after the crash, and lives on.
#[tokio::test(start_paused = true)]
async fn a_crash_spares_an_instance_started_at_its_instant() {
    let world = fleet(SimConfig::new(25).with_fault(Fault::Crash {
        service: None,
        track: Track::Canary,
        instance: None,
        at: mins(10),
    }))
    .await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    let since = world
        .now()
        .saturating_duration_since(world.config().start());
    wait(mins(10) - since).await;
    world
        .platform()
        .scale(SERVICE, &Track::Canary, 2)
        .await
        .unwrap();
    wait(secs(30)).await;
    let s = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    let live: Vec<(&str, ProbeStatus)> = s
        .instances
        .iter()
        .map(|i| (i.id.as_str(), i.liveness))
        .collect();
    assert_eq!(
        live,
        [
            ("canary-0", ProbeStatus::Fail),
            ("canary-1", ProbeStatus::Pass)
        ],
        "{s:?}"
    );
    assert_eq!(s.ready_count(), 1, "{s:?}");
}

#[tokio::test(start_paused = true)]
async fn a_profile_crash_hits_each_instance_after_its_own_start() {
    let crashy = VersionProfile::default().with_crash_after(mins(3));
    let world = fleet(SimConfig::new(12).with_profile(semver::Version::new(2, 0, 0), crashy)).await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    wait(mins(2)).await;
    world
        .platform()
        .scale(SERVICE, &Track::Canary, 2)
        .await
        .unwrap();
    wait(mins(1) + secs(30)).await;
    let s = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    let live: Vec<(String, ProbeStatus)> = s
        .instances
        .iter()
        .map(|i| (i.id.clone(), i.liveness))
        .collect();
    assert_eq!(
        live,
        [
            ("canary-0".to_owned(), ProbeStatus::Fail),
            ("canary-1".to_owned(), ProbeStatus::Pass)
        ]
    );
    wait(mins(2)).await;
    let s = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    assert!(s.instances.iter().all(|i| i.liveness == ProbeStatus::Fail));
}

#[tokio::test(start_paused = true)]
async fn a_slow_start_delays_readiness_of_instances_started_during_it() {
    let world = fleet(SimConfig::new(13).with_fault(Fault::SlowStart {
        track: Some(Track::Canary),
        span: span(Duration::ZERO, mins(30)),
        extra: secs(90),
    }))
    .await;
    let t0 = world.now();
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    let waited = world.now().saturating_duration_since(t0);
    assert!(waited >= secs(95) && waited <= secs(97), "{waited:?}");

    // Stable is not affected, and after the span the canary starts as fast as its profile.
    world
        .platform()
        .retire(SERVICE, &Track::Canary, Duration::ZERO)
        .await
        .unwrap();
    wait(mins(30)).await;
    let t1 = world.now();
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    let waited = world.now().saturating_duration_since(t1);
    assert!(waited <= secs(6), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_metrics_outage_fails_queries_while_it_lasts_and_loses_no_data() {
    let world = fleet(SimConfig::new(14).with_fault(Fault::MetricsOutage {
        span: span(mins(10), mins(15)),
    }))
    .await;
    wait(mins(11) - secs(6)).await;
    let window = last(&world, mins(2));
    let q = MetricQuery::new(Metric::ErrorRate, Track::Stable, window);
    let err = world.metrics().query(&q).await.unwrap_err();
    assert!(
        matches!(err, SignalsError::Unavailable { .. }) && err.is_transient(),
        "{err}"
    );
    assert!(err.to_string().contains("outage"), "{err}");
    assert!(world.metrics().query_range(&q, secs(10)).await.is_err());
    wait(mins(5)).await;
    let after = world.metrics().query(&q).await.unwrap();
    assert!(after.throughput().is_some_and(|r| r > 50.0), "{after:?}");
}

#[tokio::test(start_paused = true)]
async fn a_metrics_gap_loses_its_seconds_for_good() {
    let world = fleet(SimConfig::new(15).with_fault(Fault::MetricsGap {
        span: span(mins(5), mins(6)),
    }))
    .await;
    wait(mins(8)).await;
    let start = world.config().start();
    let gap = Window::new(start.saturating_add(mins(5)), start.saturating_add(mins(6))).unwrap();
    assert_eq!(counts(&world, Track::Stable, gap).await, None);
    let around = Window::new(start.saturating_add(mins(4)), start.saturating_add(mins(7))).unwrap();
    let c = counts(&world, Track::Stable, around).await.unwrap();
    // Two minutes of about 100 requests per second.
    assert!((10_000..14_000).contains(&c.requests()), "{c:?}");
}

/// A gap hides the metrics, not what happened: requests lost in it still count as
/// unroutable, and no gauge is read from its seconds.
#[tokio::test(start_paused = true)]
async fn a_metrics_gap_hides_no_lost_requests_and_no_gauge_is_read_in_it() {
    let world = fleet(SimConfig::new(15).with_fault(Fault::MetricsGap {
        span: span(mins(5), mins(6)),
    }))
    .await;
    let start = world.config().start();
    wait(mins(5).saturating_sub(world.now().saturating_duration_since(start))).await;
    // Half the traffic goes to a canary for the five seconds before it is ready.
    up(&world, "2.0.0", Track::Canary, 1).await;
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    wait(mins(3)).await;
    let gap = Window::new(start.saturating_add(mins(5)), start.saturating_add(mins(6))).unwrap();
    let lost = world.unroutable(gap);
    assert!(lost.requests() > 100, "{lost:?}");
    assert_eq!(counts(&world, Track::Canary, gap).await, None);
    for metric in [Metric::Cpu, Metric::Memory] {
        let q = MetricQuery::new(metric.clone(), Track::Stable, gap);
        let o = world.metrics().query(&q).await.unwrap();
        assert!(o.measurement.is_no_data(), "{metric:?}: {o:?}");
        let around = Window::new(start.saturating_add(mins(4)), start.saturating_add(mins(7)));
        let q = MetricQuery::new(metric.clone(), Track::Stable, around.unwrap());
        let o = world.metrics().query(&q).await.unwrap();
        assert!(!o.measurement.is_no_data(), "{metric:?}: {o:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn router_errors_refuse_applies_while_they_last() {
    let world = fleet(SimConfig::new(16).with_fault(Fault::RouterErrors {
        span: span(mins(5), mins(6)),
        message: "ingress controller unavailable".into(),
    }))
    .await;
    let router = world.router();
    let before = router.current().await.unwrap();
    wait(mins(5)).await;
    let canary = TrafficSplit::from_percents([("stable", 90), ("canary", 10)]).unwrap();
    let err = router.apply(&canary).await.unwrap_err();
    assert!(
        matches!(err, TrafficError::Backend { ref message, .. } if message.contains("ingress")),
        "{err}"
    );
    assert_eq!(router.current().await.unwrap(), before);
    wait(mins(1)).await;
    router.apply(&canary).await.unwrap();
    world.fail_next_apply("reload failed");
    assert!(
        router
            .apply(&TrafficSplit::from_percents([("stable", 100)]).unwrap())
            .await
            .is_err()
    );
    assert_eq!(router.current().await.unwrap(), Some(canary.clone()));
    let failures = world
        .timeline()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::ApplyFailed { .. }))
        .count();
    assert_eq!(failures, 2);
    let applied: Vec<_> = world.applied_splits().into_iter().map(|(_, s)| s).collect();
    assert_eq!(applied.last(), Some(&canary));
}

#[tokio::test(start_paused = true)]
async fn platform_errors_change_nothing() {
    let world = fleet(SimConfig::new(17).with_fault(Fault::PlatformErrors {
        span: span(mins(1), mins(2)),
        message: "quota exceeded".into(),
    }))
    .await;
    wait(mins(1)).await;
    let platform = world.platform();
    let spec = TrackSpec::new(SERVICE, "2.0.0", Track::Canary, 1).unwrap();
    let err = platform.bring_up(&spec).await.unwrap_err();
    assert!(matches!(err, PlatformError::Platform { .. }), "{err}");
    assert!(platform.scale(SERVICE, &Track::Stable, 5).await.is_err());
    assert!(
        platform
            .retire(SERVICE, &Track::Stable, secs(1))
            .await
            .is_err()
    );
    let listed = platform.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instances.len(), 3);
    wait(mins(1)).await;
    platform.bring_up(&spec).await.unwrap();
    let failed = world
        .timeline()
        .into_iter()
        .filter(|e| matches!(e.kind, EventKind::PlatformCallFailed { .. }))
        .count();
    assert_eq!(failed, 3);
}

#[tokio::test(start_paused = true)]
async fn a_failing_readiness_probe_takes_the_track_out_of_traffic() {
    let world = fleet(
        SimConfig::new(18)
            .with_dependency("postgres")
            .with_fault(Fault::ProbeFailure {
                track: Some(Track::Canary),
                probe: Probe::Readiness,
                span: span(mins(5), mins(7)),
            })
            .with_fault(Fault::ProbeFailure {
                track: None,
                probe: Probe::Dependency("postgres".into()),
                span: span(mins(5), mins(7)),
            }),
    )
    .await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    let start = world.config().start();
    wait(
        start
            .saturating_add(mins(6))
            .saturating_duration_since(world.now()),
    )
    .await;

    let health = world.health();
    let probe = |track: Track, p: Probe| {
        let health = health.clone();
        async move { health.probe(&track, &p).await.unwrap().map(|s| s.status) }
    };
    assert_eq!(
        probe(Track::Canary, Probe::Readiness).await,
        Some(ProbeStatus::Fail)
    );
    assert_eq!(
        probe(Track::Stable, Probe::Readiness).await,
        Some(ProbeStatus::Pass)
    );
    let pg = Probe::Dependency("postgres".into());
    assert_eq!(
        probe(Track::Stable, pg.clone()).await,
        Some(ProbeStatus::Fail)
    );
    let status = world
        .platform()
        .status(SERVICE, &Track::Canary)
        .await
        .unwrap();
    assert_eq!(status.ready_count(), 0);
    assert_eq!(status.instances[0].liveness, ProbeStatus::Pass);

    wait(mins(2)).await;
    let during = Window::new(start.saturating_add(mins(5)), start.saturating_add(mins(7))).unwrap();
    let c = counts(&world, Track::Canary, during).await.unwrap();
    assert_eq!((c.errors(), world.unroutable(during)), (c.requests(), c));
    assert_eq!(
        probe(Track::Canary, Probe::Readiness).await,
        Some(ProbeStatus::Pass)
    );
    assert_eq!(probe(Track::Stable, pg).await, Some(ProbeStatus::Pass));
}

#[tokio::test(start_paused = true)]
async fn a_health_outage_fails_probes_while_it_lasts() {
    let world = fleet(SimConfig::new(19).with_fault(Fault::HealthOutage {
        span: span(mins(1), mins(2)),
    }))
    .await;
    wait(mins(1)).await;
    let err = world.health().signals(&Track::Stable).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    wait(mins(1)).await;
    assert_eq!(
        world.health().signals(&Track::Stable).await.unwrap().len(),
        9
    );
}

#[tokio::test(start_paused = true)]
async fn never_ready_versions_time_out_and_flapping_ones_come_and_go() {
    let v = semver::Version::parse;
    let world = fleet(
        SimConfig::new(20)
            .with_profile(
                v("2.0.0").unwrap(),
                VersionProfile::default().with_readiness(Readiness::Never),
            )
            .with_profile(
                v("3.0.0").unwrap(),
                VersionProfile::default()
                    .with_startup(secs(10))
                    .with_readiness(Readiness::Flapping {
                        up: secs(30),
                        down: secs(10),
                    }),
            ),
    )
    .await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    let err = ready(&world, &Track::Canary).await.unwrap_err();
    assert!(matches!(err, PlatformError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("never becomes ready"), "{err}");

    up(&world, "3.0.0", Track::Green, 2).await;
    let platform = world.platform();
    let mut seen = Vec::new();
    for _ in 0..8 {
        wait(secs(10)).await;
        seen.push(
            platform
                .status(SERVICE, &Track::Green)
                .await
                .unwrap()
                .ready_count(),
        );
    }
    // Starting until 10 s, ready 10–40 s, not ready 40–50 s, ready again from 50 s.
    assert_eq!(seen, [2, 2, 2, 0, 2, 2, 2, 0]);
}

#[tokio::test(start_paused = true)]
async fn unready_tracks_fail_their_share_or_hand_it_over() {
    for (unready, canary_served) in [(Unready::Fail, true), (Unready::Redistribute, false)] {
        let world = fleet(SimConfig::new(21).with_unready(unready)).await;
        // Weight sent before the canary is ready.
        up(&world, "2.0.0", Track::Canary, 1).await;
        split(&world, &[("stable", 90), ("canary", 10)]).await;
        let t = world.now();
        wait(secs(5)).await;
        let early = Window::new(t, world.now()).unwrap();
        wait(mins(1)).await;
        let lost = world.unroutable(early);
        let stable = counts(&world, Track::Stable, early).await.unwrap();
        match canary_served {
            true => {
                assert!(lost.requests() > 0, "{unready:?}: {lost:?}");
                assert!(stable.requests() < 500, "{stable:?}");
            }
            false => {
                assert_eq!(lost.requests(), 0, "{unready:?}");
                assert_eq!(counts(&world, Track::Canary, early).await, None);
                assert!(stable.requests() > 400, "{stable:?}");
            }
        }
    }
}

#[tokio::test(start_paused = true)]
async fn errors_ramp_and_latency_follows_the_profile() {
    let bad = VersionProfile::default()
        .with_error_rate(Schedule::ramp(0.005, 0.05, mins(10), mins(10)))
        .with_latency(LatencyProfile::new(120.0, 0.4))
        .with_latency_factor(Schedule::ramp(3.0, 1.0, Duration::ZERO, mins(5)));
    let world = fleet(
        SimConfig::new(22)
            .with_load(Load::constant(1_000.0))
            .with_profile(semver::Version::new(3, 0, 0), bad),
    )
    .await;
    up(&world, "3.0.0", Track::Canary, 2).await;
    let t0 = world.now();
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    wait(mins(30)).await;
    let at = |m: u64| t0.saturating_add(mins(m));
    let rate = |c: serin_signals::Counts| c.error_rate().unwrap();
    let early = rate(
        counts(&world, Track::Canary, Window::new(at(5), at(10)).unwrap())
            .await
            .unwrap(),
    );
    let late = rate(
        counts(&world, Track::Canary, Window::new(at(21), at(30)).unwrap())
            .await
            .unwrap(),
    );
    assert!((0.004..0.006).contains(&early), "{early}");
    assert!((0.045..0.055).contains(&late), "{late}");

    let p50 = |s: serin_signals::LatencySketch| s.quantile(0.5).unwrap();
    let warm = p50(
        latency(&world, Track::Canary, Window::new(at(10), at(30)).unwrap())
            .await
            .unwrap(),
    );
    assert!((warm / 120.0 - 1.0).abs() < 0.03, "{warm}");
    let cold = p50(latency(
        &world,
        Track::Canary,
        Window::new(t0.saturating_add(secs(6)), at(1)).unwrap(),
    )
    .await
    .unwrap());
    assert!(cold > 2.5 * 120.0, "a slow start: {cold}");
    let stable = p50(
        latency(&world, Track::Stable, Window::new(at(10), at(30)).unwrap())
            .await
            .unwrap(),
    );
    assert!((stable / 50.0 - 1.0).abs() < 0.03, "{stable}");
}

#[tokio::test(start_paused = true)]
async fn diurnal_load_peaks_and_dips() {
    let world = fleet(SimConfig::new(23).with_load(Load::diurnal(
        200.0,
        0.5,
        Duration::from_secs(6 * 3_600),
    )))
    .await;
    wait(Duration::from_secs(18 * 3_600 + 120)).await;
    let start = world.config().start();
    let around = |h: u64| {
        let mid = start.saturating_add(Duration::from_secs(h * 3_600));
        Window::new(mid, mid.saturating_add(mins(1))).unwrap()
    };
    let peak = counts(&world, Track::Stable, around(6))
        .await
        .unwrap()
        .requests() as f64
        / 60.0;
    let trough = counts(&world, Track::Stable, around(18))
        .await
        .unwrap()
        .requests() as f64
        / 60.0;
    assert!((280.0..320.0).contains(&peak), "{peak}");
    assert!((80.0..120.0).contains(&trough), "{trough}");
}

#[tokio::test(start_paused = true)]
async fn the_past_cannot_be_rewritten() {
    let world = fleet(SimConfig::new(24)).await;
    wait(mins(10)).await;
    let err = world
        .inject(Fault::MetricsGap {
            span: span(mins(1), mins(2)),
        })
        .unwrap_err();
    assert!(err.to_string().contains("before the present"), "{err}");
    world
        .inject(Fault::MetricsGap {
            span: span(mins(11), mins(12)),
        })
        .unwrap();
    assert!(
        world
            .set_profile(semver::Version::new(1, 0, 0), VersionProfile::default())
            .is_err()
    );
    world
        .set_profile(semver::Version::new(9, 0, 0), VersionProfile::default())
        .unwrap();
    // A dependency no track probes would never fail.
    let typo = Fault::ProbeFailure {
        track: None,
        probe: Probe::Dependency("postgress".into()),
        span: span(mins(20), mins(21)),
    };
    let err = world.inject(typo).unwrap_err();
    assert!(err.to_string().contains("fault.probe.dependency"), "{err}");
    assert!(world.config().faults().len() == 1);
    assert!(matches!(
        world.timeline().last().map(|e| &e.kind),
        Some(EventKind::FaultInjected { .. })
    ));
}

/// A profile set while the world runs is refused with the path it has in the config
/// (`simConfig.profiles.<version>`), as when the config is loaded, and changes nothing.
#[tokio::test(start_paused = true)]
async fn a_profile_set_at_run_time_is_refused_with_its_config_path() {
    let world = fleet(SimConfig::new(24)).await;
    let v9 = semver::Version::new(9, 0, 0);
    let err = world
        .set_profile(
            v9.clone(),
            VersionProfile::default().with_cpu(f64::NAN, 1.0),
        )
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid simConfig.profiles.9.0.0.cpuIdleCores `NaN`"),
        "{err}"
    );
    assert_eq!(world.config(), SimConfig::new(24));
    let err = world
        .set_profile(semver::Version::new(1, 0, 0), VersionProfile::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid simConfig.profiles.1.0.0 `1.0.0`"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn the_timeline_records_calls_at_their_virtual_times() {
    let world = fleet(SimConfig::new(25)).await;
    let start = world.config().start();
    let platform = world.platform();
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 90), ("canary", 10)]).await;
    split(&world, &[("stable", 90), ("canary", 10)]).await;
    wait(mins(5)).await;
    platform
        .retire(SERVICE, &Track::Canary, secs(30))
        .await
        .unwrap();
    let events: Vec<(u64, &str)> = world
        .timeline()
        .iter()
        .map(|e| {
            let kind = match &e.kind {
                EventKind::BroughtUp { .. } => "up",
                EventKind::SplitApplied { changed: true, .. } => "split",
                EventKind::SplitApplied { changed: false, .. } => "same",
                EventKind::Retired { .. } => "retired",
                _ => "other",
            };
            (e.at.saturating_duration_since(start).as_secs(), kind)
        })
        .collect();
    assert_eq!(
        events,
        [
            (0, "up"),
            (5, "split"),
            (5, "up"),
            (10, "split"),
            (10, "same"),
            (340, "retired")
        ]
    );
    assert_eq!(world.applied_splits().len(), 2);
    let json = serde_json::to_string(&world.timeline()).unwrap();
    assert!(json.contains("\"event\":\"retired\""), "{json}");
    // The canary served until it was retired; the split still sends it 10%, which now fails.
    assert_eq!(world.unroutable(last(&world, mins(1))).requests(), 0);
    wait(mins(1)).await;
    let lost = world.unroutable(last(&world, mins(1)));
    assert!(
        lost.requests() > 300 && lost.errors() == lost.requests(),
        "{lost:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn other_services_run_but_receive_no_load() {
    let world = fleet(SimConfig::new(26)).await;
    let spec = TrackSpec::new("billing", "1.0.0", Track::Canary, 1).unwrap();
    world.platform().bring_up(&spec).await.unwrap();
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    wait(mins(1)).await;
    let w = last(&world, secs(50));
    assert_eq!(
        counts(&world, Track::Canary, w)
            .await
            .map(|c| c.errors() == c.requests()),
        Some(true)
    );
    assert_eq!(world.platform().list().await.unwrap().len(), 2);
}

/// A fault that names a track acts on that track of the world's service; another service
/// running in the same world with tracks of the same names is a bystander, unless a crash
/// names it.
#[tokio::test(start_paused = true)]
async fn faults_act_on_the_world_service_and_a_crash_may_name_another() {
    let config: SimConfig = serde_json::from_str(
        r#"{"seed": 19, "service": "web", "faults": [
            {"kind": "crash", "track": "canary", "at": "10m"},
            {"kind": "crash", "service": "api", "track": "stable", "at": "10m"},
            {"kind": "probeFailure", "track": "blue", "probe": "readiness",
             "span": {"from": 0, "until": "1h"}},
            {"kind": "slowStart", "track": "green", "span": {"from": 0, "until": "1h"},
             "extra": "2m"}
        ]}"#,
    )
    .unwrap();
    let world = fleet(config).await;
    let platform = world.platform();
    for service in [SERVICE, "api"] {
        for track in [Track::Canary, Track::Blue, Track::Green] {
            let spec = TrackSpec::new(service, "1.0.0", track, 1).unwrap();
            platform.bring_up(&spec).await.unwrap();
        }
    }
    let spec = TrackSpec::new("api", "1.0.0", Track::Stable, 1).unwrap();
    platform.bring_up(&spec).await.unwrap();
    let ready = |service: &'static str, track: Track| {
        let platform = platform.clone();
        async move {
            platform
                .status(service, &track)
                .await
                .unwrap()
                .ready_count()
        }
    };
    // Past the profile's startup of five seconds, not past the slow start's two minutes more.
    wait(secs(10)).await;
    assert_eq!(ready(SERVICE, Track::Green).await, 0, "slowed");
    assert_eq!(ready("api", Track::Green).await, 1, "a bystander");
    assert_eq!(ready(SERVICE, Track::Blue).await, 0, "readiness failing");
    assert_eq!(ready("api", Track::Blue).await, 1, "a bystander");
    // Past the crashes.
    wait(mins(15)).await;
    assert_eq!(ready(SERVICE, Track::Canary).await, 0, "crashed");
    assert_eq!(ready(SERVICE, Track::Stable).await, 3);
    assert_eq!(ready(SERVICE, Track::Green).await, 1);
    assert_eq!(ready("api", Track::Canary).await, 1, "a bystander");
    assert_eq!(ready("api", Track::Stable).await, 0, "named by the crash");
}

/// A crash naming a service that is no service name is refused on load, with its path.
#[test]
fn a_crash_naming_an_invalid_service_is_refused() {
    let json = r#"{"seed": 1, "faults": [
        {"kind": "crash", "service": "Api", "track": "canary", "at": "1m"}]}"#;
    let msg = serde_json::from_str::<SimConfig>(json)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("simConfig.faults[0].service") && msg.contains("Api"),
        "{msg}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_fault_on_traffic_between_seconds_is_refused_rather_than_moved() {
    let ms = Duration::from_millis;
    // Written as a bare number, `60` is 60 ms: a gap inside one second would hide nothing.
    let json =
        r#"{"seed": 1, "faults": [{"kind": "metricsGap", "span": {"from": 60, "until": 120}}]}"#;
    let msg = serde_json::from_str::<SimConfig>(json)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("simConfig.faults[0].span.from") && msg.contains("whole number of seconds"),
        "{msg}"
    );
    for fault in [
        Fault::Errors {
            track: None,
            span: span(ms(30_500), secs(40)),
            rate: 1.0,
        },
        Fault::Latency {
            track: Some(Track::Stable),
            span: span(secs(30), ms(40_500)),
            factor: 2.0,
        },
        Fault::ProbeFailure {
            track: None,
            probe: Probe::Readiness,
            span: span(ms(30_200), ms(30_800)),
        },
    ] {
        let err = SimConfig::new(1).with_fault(fault.clone()).validate();
        assert!(err.is_err(), "{fault:?}");
        let world = fleet(SimConfig::new(1)).await;
        assert!(world.inject(fault).is_err());
        assert!(world.config().faults().is_empty());
    }
    // Health alone is read at any instant: a startup probe may fail for half a second.
    SimConfig::new(1)
        .with_fault(Fault::ProbeFailure {
            track: None,
            probe: Probe::Startup,
            span: span(ms(30_200), ms(30_800)),
        })
        .validate()
        .unwrap();
}

/// The window from `from` to `until` after the world's start.
fn between(world: &serin_sim::SimWorld, from: Duration, until: Duration) -> Window {
    let start = world.config().start();
    Window::new(start.saturating_add(from), start.saturating_add(until)).unwrap()
}

/// The one-second window that starts `from` after the world's start.
fn second_at(world: &serin_sim::SimWorld, from: Duration) -> Window {
    between(world, from, from.saturating_add(secs(1)))
}

/// A fleet on `config` whose canary (2.0.0, one instance) takes half the traffic once ready,
/// run until 8 minutes after the world's start.
async fn halved_until_8m(config: SimConfig) -> serin_sim::SimWorld {
    let world = fleet(config).await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 50), ("canary", 50)]).await;
    wait(
        mins(8).saturating_sub(
            world
                .now()
                .saturating_duration_since(world.config().start()),
        ),
    )
    .await;
    world
}

#[tokio::test(start_paused = true)]
async fn an_errors_fault_fails_the_requests_of_its_track_exactly_while_it_lasts() {
    let world = halved_until_8m(
        SimConfig::new(27)
            .with_load(Load::constant(400.0))
            .with_fault(Fault::Errors {
                track: Some(Track::Canary),
                span: span(mins(5), mins(6)),
                rate: 1.0,
            }),
    )
    .await;

    // The last second before the span, its first and last seconds, the first after it.
    let canary = |from| {
        let world = world.clone();
        async move {
            counts(&world, Track::Canary, second_at(&world, from))
                .await
                .unwrap()
        }
    };
    let edges = [
        canary(mins(5) - secs(1)).await,
        canary(mins(5)).await,
        canary(mins(6) - secs(1)).await,
        canary(mins(6)).await,
    ];
    let failing: Vec<bool> = edges.iter().map(|c| c.errors() == c.requests()).collect();
    assert_eq!(failing, [false, true, true, false], "{edges:?}");

    let during = between(&world, mins(5), mins(6));
    let failed = counts(&world, Track::Canary, during).await.unwrap();
    assert_eq!(failed.errors(), failed.requests());
    // Served and failed, not lost to routing; the other track is untouched.
    assert_eq!(world.unroutable(during).requests(), 0);
    let stable = counts(&world, Track::Stable, during).await.unwrap();
    assert!(stable.error_rate().unwrap() < 0.01, "{stable:?}");
}

#[tokio::test(start_paused = true)]
async fn a_latency_fault_on_every_track_slows_both_exactly_while_it_lasts() {
    let world = halved_until_8m(
        SimConfig::new(28)
            .with_load(Load::constant(400.0))
            .with_fault(Fault::Latency {
                track: None,
                span: span(mins(5), mins(6)),
                factor: 4.0,
            })
            .with_fault(Fault::Errors {
                track: None,
                span: span(mins(5), mins(6)),
                rate: 0.1,
            }),
    )
    .await;

    // The default profile's median is 50 ms: 200 ms while the fault lasts, on both tracks.
    for track in [Track::Stable, Track::Canary] {
        let mut medians = Vec::new();
        for from in [mins(5) - secs(1), mins(5), mins(6) - secs(1), mins(6)] {
            let sketch = latency(&world, track.clone(), second_at(&world, from))
                .await
                .unwrap();
            medians.push(sketch.quantile(0.5).unwrap());
        }
        let slow: Vec<bool> = medians.iter().map(|m| *m > 100.0).collect();
        assert_eq!(slow, [false, true, true, false], "{track}: {medians:?}");
        let during = between(&world, mins(5), mins(6));
        let median = latency(&world, track.clone(), during)
            .await
            .unwrap()
            .quantile(0.5)
            .unwrap();
        assert!((180.0..220.0).contains(&median), "{track}: {median}");
        // 0.1% of its own and 10% from the fault: 1 − 0.999 × 0.9 ≈ 10.1%.
        let rate = counts(&world, track.clone(), during)
            .await
            .unwrap()
            .error_rate()
            .unwrap();
        assert!((0.085..0.115).contains(&rate), "{track}: {rate}");
    }
}

/// Spans count from the world's start to the millisecond, so a start that is not a whole
/// second of the epoch moves no fault by the fraction.
#[tokio::test(start_paused = true)]
async fn faults_hold_exactly_their_spans_from_a_start_between_seconds() {
    let world = halved_until_8m(
        SimConfig::new(29)
            .with_start(serin_signals::Timestamp::from_millis(1_700_000_000_500))
            .with_load(Load::constant(400.0))
            .with_fault(Fault::Errors {
                track: Some(Track::Canary),
                span: span(mins(5), mins(6)),
                rate: 1.0,
            })
            .with_fault(Fault::MetricsGap {
                span: span(mins(7), mins(7) + secs(1)),
            }),
    )
    .await;

    let mut failing = Vec::new();
    for from in [mins(5) - secs(1), mins(5), mins(6) - secs(1), mins(6)] {
        let c = counts(&world, Track::Canary, second_at(&world, from))
            .await
            .unwrap();
        failing.push(c.errors() == c.requests());
    }
    assert_eq!(failing, [false, true, true, false]);
    let failed = counts(&world, Track::Canary, between(&world, mins(5), mins(6)))
        .await
        .unwrap();
    assert_eq!(failed.errors(), failed.requests());

    let mut seen = Vec::new();
    for from in [mins(7) - secs(1), mins(7), mins(7) + secs(1)] {
        seen.push(
            counts(&world, Track::Stable, second_at(&world, from))
                .await
                .is_some(),
        );
    }
    assert_eq!(seen, [true, false, true]);
}

#[test]
fn latency_and_errors_faults_are_checked_and_read_back() {
    for (fault, path) in [
        (
            r#"{"kind": "latency", "span": {"from": "1m", "until": "2m"}, "factor": 0}"#,
            "simConfig.faults[0].factor",
        ),
        (
            r#"{"kind": "latency", "span": {"from": "1m", "until": "2m"}, "factor": 1001}"#,
            "simConfig.faults[0].factor",
        ),
        (
            r#"{"kind": "errors", "track": "canary", "span": {"from": "1m", "until": "2m"}, "rate": 1.5}"#,
            "simConfig.faults[0].rate",
        ),
        (
            r#"{"kind": "errors", "span": {"from": "2m", "until": "1m"}, "rate": 0.5}"#,
            "simConfig.faults[0].span.until",
        ),
    ] {
        let json = format!(r#"{{"seed": 1, "faults": [{fault}]}}"#);
        let msg = serde_json::from_str::<SimConfig>(&json)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(path), "{json}: {msg}");
    }
    let yaml = "seed: 1\nfaults:\n  - {kind: latency, track: canary, span: {from: 10m, until: 15m}, factor: 3}\n  - {kind: errors, span: {from: 10m, until: 11m}, rate: 0.05}\n";
    let config: SimConfig = serde_yaml_ng::from_str(yaml).unwrap();
    assert_eq!(
        config.faults(),
        [
            Fault::Latency {
                track: Some(Track::Canary),
                span: span(mins(10), mins(15)),
                factor: 3.0,
            },
            Fault::Errors {
                track: None,
                span: span(mins(10), mins(11)),
                rate: 0.05,
            },
        ]
    );
    let written = serde_yaml_ng::to_string(&config).unwrap();
    assert_eq!(
        serde_yaml_ng::from_str::<SimConfig>(&written).unwrap(),
        config
    );
}
