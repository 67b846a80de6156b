//! A canary of four simulated hours, shaped as the orchestrator runs one: the canary steps up
//! every twenty minutes while both arms are queried every ten seconds. Under the paused clock it
//! takes a moment of real time, and what it measures matches the scenario.

mod common;

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
