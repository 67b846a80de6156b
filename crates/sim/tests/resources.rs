//! CPU and memory gauges: CPU follows the traffic a track serves, memory follows the profile
//! (a rising schedule is a leak), and a track with no live instance has no reading.

use crate::common;

use std::time::Duration;

use common::*;
use serin_orchestrator::Platform;
use serin_signals::{Measurement, Metric, MetricQuery, MetricsSource, Track};
use serin_sim::{Fault, Load, Schedule, SimConfig, VersionProfile};

async fn gauge(world: &serin_sim::SimWorld, metric: Metric, track: Track) -> Option<f64> {
    let q = MetricQuery::new(metric, track, last(world, Duration::from_secs(60)));
    match world.metrics().query(&q).await.unwrap().measurement {
        Measurement::Gauge(g) => Some(g.value()),
        Measurement::NoData => None,
        other => panic!("expected a gauge, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn cpu_follows_traffic_and_memory_follows_the_profile() {
    let leaky = VersionProfile::default()
        .with_cpu(0.1, 4.0)
        .with_memory_mib(Schedule::ramp(
            200.0,
            800.0,
            Duration::ZERO,
            Duration::from_secs(3_600),
        ));
    let world = fleet(
        SimConfig::new(31)
            .with_load(Load::constant(1_000.0))
            .with_profile(semver::Version::new(2, 0, 0), leaky)
            .with_fault(Fault::Crash {
                service: None,
                track: Track::Canary,
                instance: Some("canary-1".into()),
                at: Duration::from_secs(7_200),
            }),
    )
    .await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 75), ("canary", 25)]).await;
    wait(Duration::from_secs(1_800)).await;

    // Stable: 3 × 0.05 idle cores + ~750 rps × 2 ms; canary: 2 × 0.1 + ~250 rps × 4 ms.
    let stable = gauge(&world, Metric::Cpu, Track::Stable).await.unwrap();
    let canary = gauge(&world, Metric::Cpu, Track::Canary).await.unwrap();
    assert!((1.45..1.85).contains(&stable), "{stable}");
    assert!((1.0..1.4).contains(&canary), "{canary}");

    let mib = |bytes: f64| bytes / 1_048_576.0;
    let stable_mem = mib(gauge(&world, Metric::Memory, Track::Stable).await.unwrap());
    assert!((stable_mem - 3.0 * 256.0).abs() < 1e-6, "{stable_mem}");
    let early = mib(gauge(&world, Metric::Memory, Track::Canary).await.unwrap());
    wait(Duration::from_secs(1_800)).await;
    let late = mib(gauge(&world, Metric::Memory, Track::Canary).await.unwrap());
    assert!(late > early + 500.0 && late <= 1_600.0, "{early} -> {late}");

    // One canary instance crashes: only the live one counts.
    wait(Duration::from_secs(3_600)).await;
    let after = mib(gauge(&world, Metric::Memory, Track::Canary).await.unwrap());
    assert!((after - 800.0).abs() < 1e-6, "{after}");

    world
        .platform()
        .retire(SERVICE, &Track::Canary, Duration::ZERO)
        .await
        .unwrap();
    wait(Duration::from_secs(120)).await;
    assert_eq!(gauge(&world, Metric::Cpu, Track::Canary).await, None);
    assert_eq!(gauge(&world, Metric::Memory, Track::Blue).await, None);
}
