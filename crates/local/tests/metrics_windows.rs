//! The proxy's measurements read as the orchestrator reads them: touching windows, each ending
//! at the moment of its check (inside a bucket, on the proxy's own clock), count every request
//! the proxy answered exactly once.

mod support;

use std::time::{Duration, SystemTime};

use serin_local::ProxyConfig;
use serin_signals::{Measurement, Metric, MetricQuery, MetricsSource, Timestamp, Track, Window};
use support::{get, proxy, start_demo};

const RESOLUTION: Duration = Duration::from_millis(100);

/// Between checks: not a multiple of the resolution, so the checks fall all over its buckets.
const CHECK_EVERY: Duration = Duration::from_millis(130);

fn now() -> Timestamp {
    Timestamp::from_system_time(SystemTime::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn touching_windows_read_at_their_ends_count_every_request_once() {
    let demo = start_demo("1.0.0", &[]).await;
    let router = proxy(
        ProxyConfig::default().with_metrics(RESOLUTION, Duration::from_secs(60)),
        demo.addr,
        None,
    )
    .await;
    let metrics = router.metrics();
    let read = |start, end| {
        let q = MetricQuery::new(
            Metric::Throughput,
            Track::Stable,
            Window::new(start, end).unwrap(),
        );
        let metrics = metrics.clone();
        async move {
            match metrics.query(&q).await.unwrap().measurement {
                Measurement::Counts(c) => c.requests(),
                Measurement::NoData => 0,
                other => panic!("{other:?}"),
            }
        }
    };
    // Requests one after another, each recorded before its answer comes; between them, a check
    // reads the window from the last check to now, as the orchestrator's checks do.
    let (mut sent, mut counted) = (0, 0);
    let mut start = now();
    for _ in 0..8 {
        let check = start.saturating_add(CHECK_EVERY);
        while now() < check {
            get(router.local_addr(), "/", &[]).await;
            sent += 1;
        }
        let end = now();
        counted += read(start, end).await;
        start = end;
    }
    // The last check's bucket is read once it has ended, by the window after it.
    tokio::time::sleep(RESOLUTION).await;
    counted += read(start, now()).await;
    assert!(sent > 0);
    assert_eq!(
        counted, sent,
        "counted across the windows, against answered"
    );
    router.shutdown();
}
