//! Mirroring, as Flagger's blue-green mirroring and Argo Rollouts' `setMirrorRoute` use it: the
//! mirror's track serves copies of a share of the requests, and its metrics show them, while
//! users only ever get answers from the weighted tracks.

use crate::common;

use std::time::Duration;

use common::*;
use serin_signals::{Track, Window};
use serin_sim::{Schedule, SimConfig, VersionProfile};
use serin_traffic::{Mirror, TrafficRouter, TrafficSplit, Weight};

fn mirrored(percents: &[(&str, u8)], to: &str, share: u8) -> TrafficSplit {
    TrafficSplit::from_percents(percents.iter().copied())
        .unwrap()
        .with_mirror(Mirror::new(to, Weight::from_percent(share).unwrap()).unwrap())
}

#[tokio::test(start_paused = true)]
async fn a_mirrored_track_serves_its_share_of_copies_and_its_metrics_show_them() {
    let failing = VersionProfile::default().with_error_rate(Schedule::constant(0.2));
    let world =
        fleet(SimConfig::new(70).with_profile(semver::Version::new(2, 0, 0), failing)).await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    let split = mirrored(&[("stable", 100), ("canary", 0)], "canary", 50);
    world.router().apply(&split).await.unwrap();
    let from = world.now();
    wait(Duration::from_secs(600)).await;
    let window = Window::new(from, world.now()).unwrap();

    // About 100 requests per second in all: every one answered by stable, half copied to
    // the canary, whose failures no user sees.
    let stable = counts(&world, Track::Stable, window).await.unwrap();
    let canary = counts(&world, Track::Canary, window)
        .await
        .expect("the mirrored canary serves copies");
    let ratio = canary.requests() as f64 / stable.requests() as f64;
    assert!((0.45..0.55).contains(&ratio), "{canary:?} / {stable:?}");
    assert!(stable.error_rate().unwrap() < 0.01, "{stable:?}");
    let rate = canary.error_rate().unwrap();
    assert!((0.17..0.23).contains(&rate), "{canary:?}");
    assert!(latency(&world, Track::Canary, window).await.is_some());
    assert_eq!(world.unroutable(window).requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_mirror_adds_copies_to_a_weighted_track_and_reaches_a_shadow_outside_the_split() {
    let world = fleet(SimConfig::new(71)).await;
    let shadow = Track::named("shadow").unwrap();
    up(&world, "2.0.0", Track::Canary, 1).await;
    up(&world, "2.0.0", shadow.clone(), 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    ready(&world, &shadow).await.unwrap();

    world
        .router()
        .apply(&mirrored(&[("stable", 80), ("canary", 20)], "canary", 30))
        .await
        .unwrap();
    let from = world.now();
    wait(Duration::from_secs(600)).await;
    let first = Window::new(from, world.now()).unwrap();
    let stable = counts(&world, Track::Stable, first).await.unwrap();
    let canary = counts(&world, Track::Canary, first).await.unwrap();
    // 20% of the load by weight, plus copies of 30% of it: 50 against stable's 80.
    let ratio = canary.requests() as f64 / stable.requests() as f64;
    assert!((0.58..0.67).contains(&ratio), "{canary:?} / {stable:?}");

    world
        .router()
        .apply(&mirrored(&[("stable", 100), ("canary", 0)], "shadow", 10))
        .await
        .unwrap();
    let from = world.now();
    wait(Duration::from_secs(600)).await;
    let second = Window::new(from, world.now()).unwrap();
    let stable = counts(&world, Track::Stable, second).await.unwrap();
    let copies = counts(&world, shadow, second).await.unwrap();
    let ratio = copies.requests() as f64 / stable.requests() as f64;
    assert!((0.08..0.12).contains(&ratio), "{copies:?} / {stable:?}");
    assert_eq!(counts(&world, Track::Canary, second).await, None);
}

/// Copies sent to a track with no ready instance are dropped by the router: no user request
/// was lost, so none is counted as unroutable, and nothing reached the track to be measured.
#[tokio::test(start_paused = true)]
async fn copies_for_a_track_that_is_not_ready_are_dropped_not_lost() {
    let world = fleet(SimConfig::new(72)).await;
    up(&world, "2.0.0", Track::Canary, 1).await;
    world
        .router()
        .apply(&mirrored(&[("stable", 100), ("canary", 0)], "canary", 50))
        .await
        .unwrap();
    let from = world.now();
    // The canary starts in five seconds: copies sent before then go nowhere.
    wait(Duration::from_secs(4)).await;
    let starting = Window::new(from, world.now()).unwrap();
    wait(Duration::from_secs(60)).await;
    assert_eq!(counts(&world, Track::Canary, starting).await, None);
    assert_eq!(world.unroutable(starting).requests(), 0);
    let later = Window::ending_at(world.now(), Duration::from_secs(30));
    assert!(counts(&world, Track::Canary, later).await.is_some());
}
