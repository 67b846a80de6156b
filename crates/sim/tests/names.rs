//! Tracks and metrics built around their name checks (`Track::Named`, `Metric::Custom` written
//! directly) are refused where they enter the world, never answered as no data or scripted as
//! faults that could never fire.

use crate::common;

use std::time::Duration;

use common::*;
use serin_signals::{
    Error as SignalsError, HealthSource, Measurement, Metric, MetricQuery, MetricsSource,
    Observation, Probe, Track,
};
use serin_sim::{Fault, SimConfig, SimWorld, Span};

#[tokio::test(start_paused = true)]
async fn queries_and_recordings_with_unchecked_names_are_refused() {
    let world = fleet(SimConfig::new(60)).await;
    wait(Duration::from_secs(60)).await;
    let window = last(&world, Duration::from_secs(60));
    let metrics = world.metrics();
    for (query, field) in [
        (
            MetricQuery::new(Metric::ErrorRate, Track::Named("Canary".into()), window),
            "query.track",
        ),
        (
            MetricQuery::new(Metric::ErrorRate, Track::Named("stable".into()), window),
            "query.track",
        ),
        (
            MetricQuery::new(Metric::Custom("queue depth".into()), Track::Stable, window),
            "query.metric",
        ),
    ] {
        let err = metrics.query(&query).await.unwrap_err();
        assert!(
            matches!(&err, SignalsError::InvalidField { field: f, .. } if f == field),
            "{err}"
        );
    }
    let good = MetricQuery::new(Metric::ErrorRate, Track::Stable, window);
    assert!(metrics.query(&good).await.unwrap().error_rate().is_some());

    let err = world
        .health()
        .probe(&Track::Named(String::new()), &Probe::Readiness)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("track"), "{err}");

    let bad = Observation::new(
        Metric::Cpu,
        Track::Named("a b".into()),
        window,
        Measurement::NoData,
    );
    assert!(world.record(bad).is_err());
}

#[test]
fn faults_on_unchecked_tracks_are_refused() {
    let bad = Track::Named("Canary".into());
    let crash = Fault::Crash {
        service: None,
        track: bad.clone(),
        instance: None,
        at: Duration::from_secs(60),
    };
    let slow = Fault::SlowStart {
        track: Some(bad),
        span: Span::new(Duration::ZERO, Duration::from_secs(60)),
        extra: Duration::from_secs(5),
    };
    for fault in [crash, slow] {
        let err = SimWorld::new(SimConfig::new(61).with_fault(fault)).unwrap_err();
        assert!(
            err.to_string().contains("simConfig.faults[0].track"),
            "{err}"
        );
    }
}
