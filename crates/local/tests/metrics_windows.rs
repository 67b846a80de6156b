//! The proxy's measurements read as the orchestrator reads them: touching windows, each ending
//! at the moment of its check (inside a bucket, on the proxy's own clock), count every request
//! the proxy answered exactly once.

use crate::support;

use std::time::{Duration, SystemTime};

use http_body_util::BodyExt;
use serin_local::ProxyConfig;
use serin_signals::{Measurement, Metric, MetricQuery, MetricsSource, Timestamp, Track, Window};
use support::{get, get_response, measured, proxy, read_head, start_demo};
use tokio::io::AsyncWriteExt;

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

/// An answer whose body breaks off after its head: the request is counted once its body has
/// ended, as an error, in the window in which that happens, so the windows read before and
/// after add up to what the totals say.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_fails_after_its_head_is_counted_in_the_window_it_fails_in() {
    // An instance that sends its head and half its body, then closes when told.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let instance = listener.local_addr().unwrap();
    let (cut, cut_off) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        read_head(&mut stream).await;
        let head = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello";
        stream.write_all(head).await.unwrap();
        let _ = cut_off.await;
    });
    let router = proxy(
        ProxyConfig::default().with_metrics(RESOLUTION, Duration::from_secs(60)),
        instance,
        None,
    )
    .await;
    let metrics = router.metrics();
    let read = |start, end| {
        let q = MetricQuery::new(
            Metric::ErrorRate,
            Track::Stable,
            Window::new(start, end).unwrap(),
        );
        let metrics = metrics.clone();
        async move {
            match metrics.query(&q).await.unwrap().measurement {
                Measurement::Counts(c) => (c.requests(), c.errors()),
                Measurement::NoData => (0, 0),
                other => panic!("{other:?}"),
            }
        }
    };
    let start = now();
    let res = get_response(router.local_addr(), "shop", "/", &[]).await;
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(&first[..], b"hello");
    // A check once the head's bucket has ended, while the body is still coming.
    tokio::time::sleep(RESOLUTION * 2).await;
    let middle = now();
    let before = read(start, middle).await;
    drop(cut);
    let rest = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("the broken body ends the answer");
    assert!(rest.is_err(), "a body cut short passed off as whole");
    // The next check, once the failure's bucket has ended.
    tokio::time::sleep(RESOLUTION * 2).await;
    let after = read(middle, now()).await;
    assert_eq!(measured(&router, "stable"), (1.0, 1.0));
    assert_eq!(
        (before.0 + after.0, before.1 + after.1),
        (1, 1),
        "windows {before:?} then {after:?}, against the totals"
    );
    router.shutdown();
}
