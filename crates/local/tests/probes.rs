//! Readiness and health probes count an answer as Kubernetes' HTTP probes do: any status from
//! 200 to 399 passes.

use crate::support;

use std::time::Duration;

use serin_local::{HttpHealth, HttpProbe, ProcessConfig, ProcessPlatform};
use serin_orchestrator::{Platform, TrackStatus};
use serin_signals::{HealthSource, Probe, ProbeStatus, Timestamp, Track};
use support::{demo_spec, start_demo};

/// The status of `track` once its instance answers its readiness path (whatever it answers),
/// within ten seconds.
async fn answered(platform: &ProcessPlatform, track: &Track) -> TrackStatus {
    for _ in 0..200 {
        let status = platform.status("web", track).await.unwrap();
        let i = &status.instances[0];
        let refused = i.detail.as_deref().is_some_and(|d| !d.contains("answered"));
        if !refused {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the instance of {track} never answered its readiness path");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_whose_readiness_path_redirects_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    for (path, ready) in [
        ("/status/302", ProbeStatus::Pass),
        ("/status/308", ProbeStatus::Pass),
        ("/status/404", ProbeStatus::Fail),
    ] {
        let config = ProcessConfig::new(dir.path()).with_readiness_path(path);
        let platform = ProcessPlatform::new(config).unwrap();
        let track = Track::Blue;
        platform
            .bring_up(&demo_spec("web", "1.0.0", track.clone(), 1))
            .await
            .unwrap();
        let status = answered(&platform, &track).await;
        let i = &status.instances[0];
        assert_eq!(i.readiness, ready, "{path}: {i:?}");
        assert_eq!(i.liveness, ProbeStatus::Pass, "{path}: {i:?}");
        platform
            .retire("web", &track, Duration::ZERO)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_health_probe_answered_with_a_redirect_passes() {
    let demo = start_demo("1.0.0", &[]).await;
    let health = HttpHealth::new(Duration::from_secs(2)).unwrap();
    let cases = [
        ("blue-0", "/status/301", ProbeStatus::Pass),
        ("blue-1", "/status/307", ProbeStatus::Pass),
        ("blue-2", "/status/399", ProbeStatus::Pass),
        ("blue-3", "/status/400", ProbeStatus::Fail),
        ("blue-4", "/status/503", ProbeStatus::Fail),
    ];
    for (instance, path, _) in cases {
        health
            .watch(HttpProbe {
                track: Track::Blue,
                probe: Probe::Readiness,
                instance: Some(instance.to_owned()),
                addr: demo.addr,
                path: path.to_owned(),
            })
            .unwrap();
    }
    health.check(Timestamp::from_millis(1_000)).await;
    let signals = health.signals(&Track::Blue).await.unwrap();
    for (instance, path, want) in cases {
        let got = signals
            .iter()
            .find(|s| s.instance.as_deref() == Some(instance))
            .unwrap_or_else(|| panic!("{instance}: no result in {signals:?}"));
        assert_eq!(got.status, want, "{path}: {got:?}");
    }
}
