//! A canary of four simulated hours, shaped as the orchestrator runs one: the canary steps up
//! every twenty minutes while both arms are queried every ten seconds. Under the paused clock it
//! takes a moment of real time, and what it measures matches the scenario.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serin_signals::{Counts, Metric, MetricQuery, MetricsSource, Track, Window};
use serin_sim::{Load, SimConfig};

#[tokio::test(start_paused = true)]
async fn four_hours_of_canary_run_in_moments() {
    let real = Instant::now();
    let world = fleet(SimConfig::new(2_026).with_load(Load::constant(400.0))).await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    ready(&world, &Track::Canary).await.unwrap();
    let metrics = world.metrics();
    let begin = world.now();

    let mut queries = 0u32;
    let mut canary_total = Counts::default();
    let steps: Vec<u8> = (1..=12).map(|i| (i * 8).min(100)).collect();
    for canary in steps {
        split(&world, &[("stable", 100 - canary), ("canary", canary)]).await;
        // Twenty minutes of ticks, ten seconds apart.
        for _ in 0..120 {
            wait(Duration::from_secs(10)).await;
            let window = last(&world, Duration::from_secs(10));
            for track in [Track::Stable, Track::Canary] {
                for metric in [Metric::ErrorRate, Metric::Latency] {
                    let q = MetricQuery::new(metric, track.clone(), window);
                    let o = metrics.query(&q).await.unwrap();
                    if let (Track::Canary, serin_signals::Measurement::Counts(c)) =
                        (&track, &o.measurement)
                    {
                        canary_total = canary_total.saturating_add(*c);
                    }
                    queries += 1;
                }
            }
        }
    }
    let simulated = world.now().saturating_duration_since(begin);
    let took = real.elapsed();
    println!("{simulated:?} simulated, {queries} queries, in {took:?} of real time");
    assert_eq!(simulated, Duration::from_secs(4 * 3_600));
    assert_eq!(queries, 12 * 120 * 4);
    // Generous for a debug build on a shared machine; it usually takes well under a second.
    assert!(took < Duration::from_secs(60), "took {took:?}");

    // The ticks saw every canary request of the run exactly once.
    let whole = Window::new(begin, world.now()).unwrap();
    assert_eq!(
        counts(&world, Track::Canary, whole).await,
        Some(canary_total)
    );
    assert_eq!(world.applied_splits().len(), 13);
    assert_eq!(world.unroutable(whole).requests(), 0);
}

#[tokio::test(start_paused = true)]
async fn sliding_five_minute_windows_every_ten_seconds_for_an_hour() {
    let real = Instant::now();
    let world = fleet(SimConfig::new(7).with_load(Load::constant(1_000.0))).await;
    up(&world, "2.0.0", Track::Canary, 2).await;
    ready(&world, &Track::Canary).await.unwrap();
    split(&world, &[("stable", 90), ("canary", 10)]).await;
    let metrics = world.metrics();
    let mut p99s = Vec::new();
    for _ in 0..360 {
        wait(Duration::from_secs(10)).await;
        let window = last(&world, Duration::from_secs(300));
        for track in [Track::Stable, Track::Canary] {
            let q = MetricQuery::new(Metric::ErrorRate, track.clone(), window);
            assert!(metrics.query(&q).await.unwrap().error_rate().is_some());
            let q = MetricQuery::new(Metric::Latency, track, window);
            if let serin_signals::Measurement::Latency(s) =
                metrics.query(&q).await.unwrap().measurement
            {
                p99s.extend(s.quantile(0.99));
            }
        }
    }
    let took = real.elapsed();
    println!("one hour of 5-minute windows every 10 s (1,440 queries) in {took:?} of real time");
    assert_eq!(p99s.len(), 720);
    // The default profile's p99: 50 ms × e^(0.5 × 2.326) ≈ 160 ms.
    assert!(p99s.iter().all(|p| (130.0..195.0).contains(p)), "{p99s:?}");
    assert!(took < Duration::from_secs(60), "took {took:?}");
}
