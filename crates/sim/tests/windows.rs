//! A query counts the requests that arrived in its window, whatever its bounds: a window that
//! cuts a second, or ends in the second under way, reads the rate the load says, and windows
//! cut anywhere add up to their union exactly. A window that ends after now is not measured
//! until it is over.

use crate::common;

use std::time::Duration;

use common::*;
use serin_signals::{Metric, MetricQuery, MetricsSource, Timestamp, Track, Window};
use serin_sim::{Load, Schedule, SimConfig, SimWorld, VersionProfile};

/// A world serving 1,000 requests per second, 2% of them failing, all on `stable`.
async fn busy(seed: u64) -> SimWorld {
    let profile = VersionProfile::default().with_error_rate(Schedule::constant(0.02));
    fleet(
        SimConfig::new(seed)
            .with_load(Load::constant(1_000.0))
            .with_default_profile(profile),
    )
    .await
}

fn at(t: Timestamp, plus_ms: u64) -> Timestamp {
    Timestamp::from_millis(t.as_millis() + plus_ms)
}

async fn throughput(world: &SimWorld, window: Window) -> f64 {
    let q = MetricQuery::new(Metric::Throughput, Track::Stable, window);
    let o = world.metrics().query(&q).await.expect("query");
    o.throughput().expect("requests in the window")
}

/// Ten seconds ending half-way through a second read the load's rate, not nine tenths of it:
/// the part of the second under way that has passed is counted.
#[tokio::test(start_paused = true)]
async fn a_window_ending_mid_second_reads_the_whole_rate() {
    let world = busy(5).await;
    wait(Duration::from_secs(60)).await;
    let off = 1_000 - world.now().as_millis() % 1_000;
    wait(Duration::from_millis(off + 500)).await;
    assert_eq!(world.now().as_millis() % 1_000, 500);
    let mut rates = Vec::new();
    for _ in 0..20 {
        wait(Duration::from_secs(10)).await;
        rates.push(throughput(&world, last(&world, Duration::from_secs(10))).await);
    }
    let mean = rates.iter().sum::<f64>() / rates.len() as f64;
    assert!(
        (mean / 1_000.0 - 1.0).abs() < 0.01,
        "mean {mean}: {rates:?}"
    );
    for rate in rates {
        assert!((rate / 1_000.0 - 1.0).abs() < 0.05, "{rate}");
    }
}

/// Windows shorter than a second, at any offset, read the load's rate on average.
#[tokio::test(start_paused = true)]
async fn windows_shorter_than_a_second_read_the_rate() {
    let world = busy(6).await;
    let begin = at(world.now(), 3_000);
    wait(Duration::from_secs(400)).await;
    let mut total = 0.0;
    for i in 0..300 {
        let start = at(begin, i * 1_237);
        let window = Window::new(start, at(start, 700)).unwrap();
        total += throughput(&world, window).await;
    }
    let mean = total / 300.0;
    assert!((mean / 1_000.0 - 1.0).abs() < 0.02, "mean {mean}");
}

/// Cut anywhere, even inside one second, windows add up to their union: requests, errors and
/// latencies, and the counts of a cut window are the same whether or not its latencies were
/// asked for.
#[tokio::test(start_paused = true)]
async fn windows_cut_anywhere_add_up_to_their_union() {
    let world = busy(7).await;
    let begin = at(world.now(), 1_234);
    wait(Duration::from_secs(30)).await;
    let cuts = [
        0, 1, 499, 500, 766, 1_000, 1_001, 2_999, 7_250, 7_251, 12_000,
    ];
    let mut sum = (0, 0, 0);
    let mut sketches = Vec::new();
    for pair in cuts.windows(2) {
        let window = Window::new(at(begin, pair[0]), at(begin, pair[1])).unwrap();
        let part = counts(&world, Track::Stable, window)
            .await
            .unwrap_or_default();
        sum = (sum.0 + part.requests(), sum.1 + part.errors(), sum.2);
        if let Some(sketch) = latency(&world, Track::Stable, window).await {
            assert_eq!(sketch.count(), part.requests(), "{pair:?}");
            sum.2 += sketch.count();
            sketches.push(sketch);
        } else {
            assert_eq!(part.requests(), 0, "{pair:?}");
        }
    }
    let whole = Window::new(begin, at(begin, 12_000)).unwrap();
    let all = counts(&world, Track::Stable, whole).await.unwrap();
    assert_eq!((sum.0, sum.1), (all.requests(), all.errors()));
    assert!(all.errors() > 0, "{all:?}");
    let mut merged = sketches.pop().unwrap();
    for s in &sketches {
        merged.merge(s).unwrap();
    }
    assert_eq!(merged, latency(&world, Track::Stable, whole).await.unwrap());
    assert_eq!(sum.2, all.requests());
}

/// What a window ending in the second under way read is what it reads once that second is
/// over: the part already passed does not change.
#[tokio::test(start_paused = true)]
async fn the_second_under_way_reads_the_same_later() {
    let world = busy(8).await;
    wait(Duration::from_millis(20_300)).await;
    let window = last(&world, Duration::from_millis(2_600));
    let now = counts(&world, Track::Stable, window).await.unwrap();
    let sketch = latency(&world, Track::Stable, window).await.unwrap();
    wait(Duration::from_secs(5)).await;
    assert_eq!(counts(&world, Track::Stable, window).await.unwrap(), now);
    assert_eq!(
        latency(&world, Track::Stable, window).await.unwrap(),
        sketch
    );
}

/// A window that ends after now asks about requests that have not arrived: the world does not
/// measure it until it is over (no data, never a rate diluted by the seconds to come), and then
/// reads the load's rate.
#[tokio::test(start_paused = true)]
async fn a_window_ending_after_now_is_no_data_until_it_is_over() {
    let world = busy(9).await;
    wait(Duration::from_secs(60)).await;
    let window = Window::ending_at(at(world.now(), 30_000), Duration::from_secs(60));
    for metric in [Metric::Throughput, Metric::Latency, Metric::Cpu] {
        let q = MetricQuery::new(metric, Track::Stable, window);
        let o = world.metrics().query(&q).await.expect("query");
        assert!(o.measurement.is_no_data(), "{o:?}");
    }
    wait(Duration::from_secs(30)).await;
    let rate = throughput(&world, window).await;
    assert!((rate / 1_000.0 - 1.0).abs() < 0.05, "{rate}");
}

/// An observation recorded with `SimWorld::record` is aggregated as the in-memory source does:
/// it counts toward the query window its end lies in, so of two touching windows exactly one
/// holds an observation that straddles their edge, and neither loses it.
#[tokio::test(start_paused = true)]
async fn a_recorded_observation_counts_in_the_window_its_end_lies_in() {
    let world = SimWorld::new(SimConfig::new(3)).expect("world");
    let start = world.now();
    let metric = Metric::named("checkout_failures").expect("metric");
    let window =
        |from: u64, until: u64| Window::new(at(start, from), at(start, until)).expect("window");
    world
        .record(serin_signals::Observation::new(
            metric.clone(),
            Track::Stable,
            window(0, 60_000),
            serin_signals::Measurement::Counts(serin_signals::Counts::new(10, 1).unwrap()),
        ))
        .expect("record");
    wait(Duration::from_secs(90)).await;
    let requests = |w: Window| {
        let q = MetricQuery::new(metric.clone(), Track::Stable, w);
        let metrics = world.metrics();
        async move {
            match metrics.query(&q).await.expect("query").measurement {
                serin_signals::Measurement::Counts(c) => c.requests(),
                _ => 0,
            }
        }
    };
    // The later half holds the observation's end, though not its whole window.
    assert_eq!(requests(window(30_000, 60_000)).await, 10);
    assert_eq!(requests(window(0, 30_000)).await, 0);
    assert_eq!(requests(window(0, 60_000)).await, 10);
}
