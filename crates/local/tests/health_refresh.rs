//! `HttpHealth` following a platform: every instance the platform runs for the service is
//! probed, instances that fail their probes read as failing, and a retired track is forgotten.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use serin_local::{HttpHealth, ProbePaths, ProcessConfig, ProcessPlatform};
use serin_orchestrator::{Platform, wait_ready};
use serin_signals::{HealthSource, Probe, ProbeStatus, Timestamp, Track};
use support::demo_spec;

fn paths() -> ProbePaths {
    ProbePaths::new("/ready", "/live")
}

fn status_of(
    signals: &[serin_signals::HealthSignal],
    probe: &Probe,
) -> Vec<(Option<String>, ProbeStatus)> {
    signals
        .iter()
        .filter(|s| &s.probe == probe)
        .map(|s| (s.instance.clone(), s.status))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_probes_what_the_platform_runs_and_forgets_what_it_retired() {
    let dir = support::scratch("refresh");
    let platform: Arc<dyn Platform> = Arc::new(
        ProcessPlatform::new(
            ProcessConfig::new(dir.path())
                .with_grace(Duration::from_millis(500))
                .with_probe_timeout(Duration::from_millis(500)),
        )
        .unwrap(),
    );
    platform
        .bring_up(&demo_spec("web", "1.0.0", Track::Stable, 2))
        .await
        .unwrap();
    wait_ready(
        &*platform,
        "web",
        &Track::Stable,
        Duration::from_millis(20),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    // A canary that never becomes ready, and another service's track, which is not followed.
    platform
        .bring_up(
            &demo_spec("web", "1.1.0", Track::Canary, 1)
                .with_env("DEMO_NEVER_READY", "1")
                .unwrap(),
        )
        .await
        .unwrap();
    platform
        .bring_up(&demo_spec("other", "1.0.0", Track::Stable, 1))
        .await
        .unwrap();

    // The canary answers its liveness probe once its process listens, which on a busy machine
    // may come after its bring-up returns: wait for that with a health source of its own, so
    // that the one under test starts from nothing.
    let warm = HttpHealth::new(Duration::from_secs(2)).unwrap();
    for ms in 0..400 {
        warm.refresh(
            platform.as_ref(),
            "web",
            &paths(),
            Timestamp::from_millis(ms),
        )
        .await
        .unwrap();
        let live = warm.probe(&Track::Canary, &Probe::Liveness).await.unwrap();
        if live.is_some_and(|s| s.status == ProbeStatus::Pass) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    let health = HttpHealth::new(Duration::from_secs(2)).unwrap();
    let t1 = Timestamp::from_millis(1_000);
    assert!(
        health.signals(&Track::Stable).await.unwrap().is_empty(),
        "nothing is probed before a refresh"
    );
    health
        .refresh(platform.as_ref(), "web", &paths(), t1)
        .await
        .unwrap();

    let stable = health.signals(&Track::Stable).await.unwrap();
    assert_eq!(
        status_of(&stable, &Probe::Readiness),
        vec![
            (Some("stable-0".into()), ProbeStatus::Pass),
            (Some("stable-1".into()), ProbeStatus::Pass)
        ],
        "{stable:?}"
    );
    assert_eq!(status_of(&stable, &Probe::Liveness).len(), 2, "{stable:?}");
    assert!(stable.iter().all(|s| s.at == t1), "{stable:?}");
    let canary = health
        .probe(&Track::Canary, &Probe::Readiness)
        .await
        .unwrap()
        .expect("the canary's readiness was probed");
    assert_eq!(canary.status, ProbeStatus::Fail, "{canary:?}");
    let alive = health
        .probe(&Track::Canary, &Probe::Liveness)
        .await
        .unwrap()
        .expect("the canary's liveness was probed");
    assert_eq!(alive.status, ProbeStatus::Pass, "{alive:?}");

    // The canary is retired: the next pass forgets it, and keeps probing the stable track.
    platform
        .retire("web", &Track::Canary, Duration::ZERO)
        .await
        .unwrap();
    let t2 = Timestamp::from_millis(2_000);
    health
        .refresh(platform.as_ref(), "web", &paths(), t2)
        .await
        .unwrap();
    assert!(
        health.signals(&Track::Canary).await.unwrap().is_empty(),
        "a retired track is forgotten"
    );
    let stable = health.signals(&Track::Stable).await.unwrap();
    assert_eq!(stable.len(), 4, "{stable:?}");
    assert!(stable.iter().all(|s| s.at == t2), "{stable:?}");

    for (service, track) in [("web", Track::Stable), ("other", Track::Stable)] {
        platform
            .retire(service, &track, Duration::ZERO)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawned_refresh_keeps_results_fresh_until_the_source_is_dropped() {
    let dir = support::scratch("refresh-spawn");
    let platform: Arc<dyn Platform> = Arc::new(
        ProcessPlatform::new(ProcessConfig::new(dir.path()).with_grace(Duration::from_millis(500)))
            .unwrap(),
    );
    platform
        .bring_up(&demo_spec("web", "1.0.0", Track::Blue, 1))
        .await
        .unwrap();
    wait_ready(
        &*platform,
        "web",
        &Track::Blue,
        Duration::from_millis(20),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let health = Arc::new(HttpHealth::new(Duration::from_secs(2)).unwrap());
    let task = health.spawn_refresh(platform.clone(), "web", paths(), Duration::from_millis(50));
    let mut seen = None;
    for _ in 0..200 {
        if let Some(s) = health.probe(&Track::Blue, &Probe::Readiness).await.unwrap() {
            seen = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let seen = seen.expect("the spawned refresh probed the blue track within 5 s");
    assert_eq!(seen.status, ProbeStatus::Pass, "{seen:?}");
    drop(health);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the refresh task ends once the source is dropped")
        .unwrap();
    platform
        .retire("web", &Track::Blue, Duration::ZERO)
        .await
        .unwrap();
}
