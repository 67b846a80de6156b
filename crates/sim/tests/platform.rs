//! Platform calls that overlap in virtual time: each acts on the track as it found it.

use crate::common;

use std::time::Duration;

use common::*;
use serin_orchestrator::{Error as PlatformError, Platform, TrackSpec};
use serin_signals::Track;
use serin_sim::{EventKind, Fault, SimConfig};

/// A retirement still draining when the track is retired by another call and brought up
/// again must not stop the new, undrained incarnation.
#[tokio::test(start_paused = true)]
async fn a_slow_retirement_leaves_a_track_brought_up_again_alone() {
    let world = fleet(SimConfig::new(40)).await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    let platform = world.platform();
    let slow = tokio::spawn({
        let platform = platform.clone();
        async move {
            platform
                .retire(SERVICE, &Track::Canary, Duration::from_secs(60))
                .await
        }
    });
    tokio::task::yield_now().await;
    platform
        .retire(SERVICE, &Track::Canary, Duration::ZERO)
        .await
        .unwrap();
    up(&world, "2.1.0", Track::Canary, 1).await;

    let late = slow.await.unwrap();
    assert!(
        matches!(late, Err(PlatformError::NotFound { .. })),
        "{late:?}"
    );
    let status = platform.status(SERVICE, &Track::Canary).await.unwrap();
    assert_eq!(status.version, semver::Version::new(2, 1, 0));
    assert_eq!(status.instances.len(), 1);
}

/// Every failed call is in the timeline, whether a scripted fault or the call itself was at
/// fault, so a test can assert that a driver never made a call the platform refused.
#[tokio::test(start_paused = true)]
async fn refused_calls_are_in_the_timeline_and_change_nothing() {
    let world = fleet(SimConfig::new(41)).await;
    let platform = world.platform();
    let spec = TrackSpec::new(SERVICE, "1.0.0", Track::Stable, 2).unwrap();
    let err = platform.bring_up(&spec).await.unwrap_err();
    assert!(matches!(err, PlatformError::AlreadyExists { .. }), "{err}");
    let err = platform
        .scale(SERVICE, &Track::Stable, 0)
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::InvalidField { .. }), "{err}");
    let err = platform.scale(SERVICE, &Track::Blue, 2).await.unwrap_err();
    assert!(matches!(err, PlatformError::NotFound { .. }), "{err}");
    let err = platform
        .retire(SERVICE, &Track::Green, Duration::ZERO)
        .await
        .unwrap_err();
    assert!(matches!(err, PlatformError::NotFound { .. }), "{err}");

    let failed: Vec<(String, Track)> = world
        .timeline()
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::PlatformCallFailed { call, track, .. } => Some((call, track)),
            _ => None,
        })
        .collect();
    assert_eq!(
        failed,
        [
            ("bringUp".to_owned(), Track::Stable),
            ("scale".to_owned(), Track::Stable),
            ("scale".to_owned(), Track::Blue),
            ("retire".to_owned(), Track::Green),
        ]
    );
    let listed = platform.list().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].instances.len(), 3);
}

/// Scaling down stops a crashed instance before any healthy one, however old it is, and then
/// the newest of the ready ones, as a ReplicaSet chooses the pods to delete.
#[tokio::test(start_paused = true)]
async fn scaling_down_stops_dead_instances_first_then_the_newest() {
    let world = fleet(SimConfig::new(42).with_fault(Fault::Crash {
        service: None,
        track: Track::Canary,
        instance: Some("canary-0".into()),
        at: Duration::from_secs(600),
    }))
    .await;
    up(&world, "2.0.0", Track::Canary, 3).await;
    ready(&world, &Track::Canary).await.unwrap();
    wait(Duration::from_secs(660)).await;
    let platform = world.platform();
    let ids = |s: &serin_orchestrator::TrackStatus| -> Vec<String> {
        s.instances.iter().map(|i| i.id.clone()).collect()
    };

    let two = platform.scale(SERVICE, &Track::Canary, 2).await.unwrap();
    assert_eq!(ids(&two), ["canary-1", "canary-2"], "{two:?}");
    assert_eq!(two.ready_count(), 2);

    // Among ready instances the newest goes first.
    let one = platform.scale(SERVICE, &Track::Canary, 1).await.unwrap();
    assert_eq!(ids(&one), ["canary-1"], "{one:?}");
    assert_eq!(one.ready_count(), 1);

    // A starting instance goes before a ready one.
    platform.scale(SERVICE, &Track::Canary, 2).await.unwrap();
    let back = platform.scale(SERVICE, &Track::Canary, 1).await.unwrap();
    assert_eq!(ids(&back), ["canary-1"], "{back:?}");
}
