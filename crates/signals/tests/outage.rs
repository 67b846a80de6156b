//! A metrics outage as later crates rehearse it: queries fail while the source is down, the
//! failure is transient (hold, never pass), and the recorded data is intact once it is back.

use std::time::Duration;

use serin_signals::{
    Counts, Error, HealthSignal, HealthSource, InMemoryHealth, InMemorySource, Measurement, Metric,
    MetricQuery, MetricsSource, Probe, ProbeStatus, Timestamp, Track, Window,
};

fn window(start_s: u64, end_s: u64) -> Window {
    Window::new(
        Timestamp::from_millis(start_s * 1_000),
        Timestamp::from_millis(end_s * 1_000),
    )
    .expect("valid window")
}

#[tokio::test]
async fn an_outage_is_transient_and_leaves_the_data_intact() {
    let source = InMemorySource::named("metrics");
    for minute in 0..3 {
        source
            .record_counts(
                Track::Canary,
                Metric::ErrorRate,
                window(minute * 60, (minute + 1) * 60),
                1_000,
                minute,
            )
            .expect("valid counts");
    }
    let query = MetricQuery::new(Metric::ErrorRate, Track::Canary, window(0, 180));

    source.set_unavailable(true);
    let err = source.query(&query).await.expect_err("the source is down");
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("metrics"), "{err}");
    let err = source
        .query_range(&query, Duration::from_secs(60))
        .await
        .expect_err("the source is down");
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");

    source.set_unavailable(false);
    source.fail_next(1);
    assert!(
        source.query(&query).await.is_err(),
        "one more injected failure"
    );
    let o = source.query(&query).await.expect("back up");
    assert_eq!(
        o.measurement,
        Measurement::Counts(Counts::new(3_000, 3).expect("valid counts"))
    );
    let steps = source
        .query_range(&query, Duration::from_secs(60))
        .await
        .expect("back up");
    let errors: Vec<Option<f64>> = steps.iter().map(|o| o.error_rate()).collect();
    assert_eq!(errors, vec![Some(0.0), Some(0.001), Some(0.002)]);
}

#[tokio::test]
async fn a_probe_outage_is_transient_too() {
    let health = InMemoryHealth::named("probes");
    health
        .record(HealthSignal::new(
            Track::Green,
            Probe::Readiness,
            ProbeStatus::Pass,
            Timestamp::from_millis(1),
        ))
        .unwrap();
    health.set_unavailable(true);
    let err = health
        .probe(&Track::Green, &Probe::Readiness)
        .await
        .expect_err("down");
    assert!(
        err.is_transient() && err.to_string().contains("probes"),
        "{err}"
    );
    health.set_unavailable(false);
    let got = health
        .probe(&Track::Green, &Probe::Readiness)
        .await
        .expect("back up");
    assert_eq!(got.map(|s| s.status), Some(ProbeStatus::Pass));
}
