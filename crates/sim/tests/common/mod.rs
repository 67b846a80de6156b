//! Shared set-up for the behaviour tests: a world with a ready stable track, helpers to add a
//! canary and to ask the metrics.

use std::time::Duration;

use serin_orchestrator::{Error, Platform, TrackSpec, TrackStatus, wait_ready};
use serin_signals::{
    Counts, LatencySketch, Measurement, Metric, MetricQuery, MetricsSource, Track, Window,
};
use serin_sim::{SimConfig, SimWorld};
use serin_traffic::{TrafficRouter, TrafficSplit};

pub const SERVICE: &str = "web";

/// A world from `config` with three ready instances of 1.0.0 on `stable` taking all traffic.
pub async fn fleet(config: SimConfig) -> SimWorld {
    let world = SimWorld::new(config).expect("valid config");
    up(&world, "1.0.0", Track::Stable, 3).await;
    ready(&world, &Track::Stable).await.expect("stable ready");
    split(&world, &[("stable", 100), ("canary", 0)]).await;
    world
}

pub async fn up(world: &SimWorld, version: &str, track: Track, instances: u32) -> TrackStatus {
    let spec = TrackSpec::new(SERVICE, version, track, instances).expect("valid spec");
    world.platform().bring_up(&spec).await.expect("bring up")
}

pub async fn ready(world: &SimWorld, track: &Track) -> Result<TrackStatus, Error> {
    wait_ready(
        &world.platform(),
        SERVICE,
        track,
        Duration::from_secs(1),
        Duration::from_secs(300),
    )
    .await
}

pub async fn split(world: &SimWorld, percents: &[(&str, u8)]) {
    let split = TrafficSplit::from_percents(percents.iter().copied()).expect("valid split");
    world.router().apply(&split).await.expect("apply");
}

pub async fn wait(d: Duration) {
    tokio::time::sleep(d).await;
}

/// The window of length `back` ending now.
pub fn last(world: &SimWorld, back: Duration) -> Window {
    Window::ending_at(world.now(), back)
}

pub async fn counts(world: &SimWorld, track: Track, window: Window) -> Option<Counts> {
    let o = world
        .metrics()
        .query(&MetricQuery::new(Metric::ErrorRate, track, window))
        .await
        .expect("query");
    match o.measurement {
        Measurement::Counts(c) => Some(c),
        Measurement::NoData => None,
        other => panic!("expected counts, got {other:?}"),
    }
}

pub async fn latency(world: &SimWorld, track: Track, window: Window) -> Option<LatencySketch> {
    let o = world
        .metrics()
        .query(&MetricQuery::new(Metric::Latency, track, window))
        .await
        .expect("query");
    match o.measurement {
        Measurement::Latency(s) => Some(s),
        Measurement::NoData => None,
        other => panic!("expected latency, got {other:?}"),
    }
}
