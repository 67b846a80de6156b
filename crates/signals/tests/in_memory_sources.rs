//! The in-memory sources as many tasks use them at once: one `Arc` shared across a
//! multi-threaded runtime, many tracks, windows that touch, and a window ending past every
//! recording.

use std::sync::Arc;

use serin_signals::{
    Counts, HealthSignal, HealthSource, InMemoryHealth, InMemorySource, Measurement, Metric,
    MetricQuery, MetricsSource, Probe, ProbeStatus, Timestamp, Track, Window,
};

fn window(start_ms: u64, end_ms: u64) -> Window {
    Window::new(
        Timestamp::from_millis(start_ms),
        Timestamp::from_millis(end_ms),
    )
    .unwrap()
}

fn counts_of(o: &serin_signals::Observation) -> Counts {
    match &o.measurement {
        Measurement::Counts(c) => *c,
        other => panic!("expected counts, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tasks_recording_at_once_lose_and_double_nothing() {
    let source = Arc::new(InMemorySource::new());
    let tracks: Vec<Track> = (0..8)
        .map(|i| Track::named(&format!("shard-{i}")).unwrap())
        .collect();
    let mut tasks = Vec::new();
    for track in tracks.clone() {
        for task in 0..4u64 {
            let (source, track) = (Arc::clone(&source), track.clone());
            tasks.push(tokio::spawn(async move {
                for second in 0..50u64 {
                    let w = window(second * 1_000, (second + 1) * 1_000);
                    source
                        .record_counts(track.clone(), Metric::ErrorRate, w, 10, task)
                        .unwrap();
                    tokio::task::yield_now().await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(source.len(), 8 * 4 * 50);
    let dyn_source: Arc<dyn MetricsSource> = source;
    for track in tracks {
        let ask = |w| MetricQuery::new(Metric::ErrorRate, track.clone(), w);
        // Two touching windows hold every observation once between them, and a window ending
        // far past the last recording holds them all, with its own window.
        let first = dyn_source.query(&ask(window(0, 20_000))).await.unwrap();
        let rest = dyn_source
            .query(&ask(window(20_000, 50_000)))
            .await
            .unwrap();
        let open = dyn_source.query(&ask(window(0, u64::MAX))).await.unwrap();
        assert_eq!(counts_of(&first), Counts::new(20 * 40, 20 * 6).unwrap());
        assert_eq!(counts_of(&rest), Counts::new(30 * 40, 30 * 6).unwrap());
        assert_eq!(counts_of(&open), Counts::new(50 * 40, 50 * 6).unwrap());
        assert_eq!(open.window, window(0, u64::MAX));
        let later = dyn_source
            .query(&ask(window(50_000, 60_000)))
            .await
            .unwrap();
        assert_eq!(
            later.measurement,
            Measurement::NoData,
            "no data, never zero"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_results_pushed_from_many_tasks_keep_the_latest_per_instance() {
    let health = Arc::new(InMemoryHealth::new());
    let mut tasks = Vec::new();
    for instance in 0..6u64 {
        let health = Arc::clone(&health);
        tasks.push(tokio::spawn(async move {
            // Pushed newest first: an older result arriving late never replaces a newer one.
            for at in (0..40u64).rev() {
                let status = if at == 39 && instance == 3 {
                    ProbeStatus::Fail
                } else {
                    ProbeStatus::Pass
                };
                let signal = HealthSignal::new(
                    Track::Canary,
                    Probe::Readiness,
                    status,
                    Timestamp::from_millis(at),
                )
                .with_instance(format!("canary-{instance}"));
                health.record(signal).unwrap();
                tokio::task::yield_now().await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let all = health.signals(&Track::Canary).await.unwrap();
    assert_eq!(all.len(), 6);
    assert!(
        all.iter().all(|s| s.at == Timestamp::from_millis(39)),
        "{all:?}"
    );
    let worst = health
        .probe(&Track::Canary, &Probe::Readiness)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (worst.status, worst.instance.as_deref()),
        (ProbeStatus::Fail, Some("canary-3"))
    );
    assert_eq!(
        health
            .probe(&Track::Canary, &Probe::Liveness)
            .await
            .unwrap(),
        None
    );
}
