//! Faults of one kind whose spans overlap: each applies, or, where two cannot both apply, the
//! script is refused naming both entries.

use crate::common;

use std::time::Duration;

use common::*;
use serin_signals::{HealthSource, Metric, MetricQuery, MetricsSource, Track};
use serin_sim::{Fault, Load, SimConfig, Span};

const fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

const fn mins(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

fn span(from: Duration, until: Duration) -> Span {
    Span::new(from, until)
}

/// Two slow starts over the same instant both delay an instance started then: one on the
/// canary and one on every track add their extras to the profile's five seconds.
#[tokio::test(start_paused = true)]
async fn overlapping_slow_starts_add_their_extras() {
    let world = fleet(
        SimConfig::new(31)
            .with_fault(Fault::SlowStart {
                track: Some(Track::Canary),
                span: span(Duration::ZERO, mins(30)),
                extra: secs(60),
            })
            .with_fault(Fault::SlowStart {
                track: None,
                span: span(Duration::ZERO, mins(30)),
                extra: secs(30),
            }),
    )
    .await;
    let t0 = world.now();
    up(&world, "2.0.0", Track::Canary, 1).await;
    ready(&world, &Track::Canary).await.unwrap();
    let waited = world.now().saturating_duration_since(t0);
    assert!(waited >= secs(95) && waited <= secs(97), "{waited:?}");
}

/// Latency factors multiply and error rates combine as independent failures where latency
/// and errors faults overlap.
#[tokio::test(start_paused = true)]
async fn overlapping_latency_and_errors_faults_compound() {
    let world = fleet(
        SimConfig::new(32)
            .with_load(Load::constant(400.0))
            .with_fault(Fault::Latency {
                track: None,
                span: span(mins(3), mins(5)),
                factor: 2.0,
            })
            .with_fault(Fault::Latency {
                track: Some(Track::Stable),
                span: span(mins(4), mins(6)),
                factor: 3.0,
            })
            .with_fault(Fault::Errors {
                track: None,
                span: span(mins(3), mins(5)),
                rate: 0.5,
            })
            .with_fault(Fault::Errors {
                track: Some(Track::Stable),
                span: span(mins(4), mins(6)),
                rate: 0.5,
            }),
    )
    .await;
    wait(mins(7)).await;
    let start = world.config().start();
    let both =
        serin_signals::Window::new(start.saturating_add(mins(4)), start.saturating_add(mins(5)))
            .unwrap();
    // The default profile's median is 50 ms: 2 × 3 × 50 ms while both are on.
    let median = latency(&world, Track::Stable, both)
        .await
        .unwrap()
        .quantile(0.5)
        .unwrap();
    assert!((270.0..330.0).contains(&median), "{median}");
    // 1 − 0.999 × 0.5 × 0.5 ≈ 75%.
    let rate = counts(&world, Track::Stable, both)
        .await
        .unwrap()
        .error_rate()
        .unwrap();
    assert!((0.73..0.77).contains(&rate), "{rate}");
}

/// Two outages of one source that overlap are one outage, from the first start to the last
/// end: the error names that span, not the first outage listed, which ends before it.
#[tokio::test(start_paused = true)]
async fn overlapping_outages_are_reported_until_the_last_ends() {
    let world = fleet(
        SimConfig::new(34)
            .with_fault(Fault::MetricsOutage {
                span: span(mins(1), mins(3)),
            })
            .with_fault(Fault::HealthOutage {
                span: span(mins(1), mins(3)),
            })
            .with_fault(Fault::MetricsOutage {
                span: span(mins(2), mins(5)),
            })
            .with_fault(Fault::HealthOutage {
                span: span(mins(3), mins(5)),
            }),
    )
    .await;
    let start = world.config().start();
    for at in [mins(2) + secs(30), mins(4)] {
        wait(
            start
                .saturating_add(at)
                .saturating_duration_since(world.now()),
        )
        .await;
        let q = MetricQuery::new(Metric::ErrorRate, Track::Stable, last(&world, mins(1)));
        let metrics = world.metrics().query(&q).await.unwrap_err().to_string();
        let health = world
            .health()
            .signals(&Track::Stable)
            .await
            .unwrap_err()
            .to_string();
        for msg in [metrics, health] {
            assert!(msg.contains("from 60s to 300s"), "at {at:?}: {msg}");
        }
    }
}

fn config(faults: &str) -> Result<SimConfig, String> {
    let json = format!(r#"{{"seed": 1, "faults": [{faults}]}}"#);
    serde_json::from_str::<SimConfig>(&json).map_err(|e| e.to_string())
}

/// A router or platform fails a call with one message: two errors faults of that kind that
/// overlap with different messages could not both apply, so the script is refused naming
/// both entries. Overlapping with the same message, or one after the other, they are taken.
#[test]
fn overlapping_router_or_platform_errors_with_different_messages_are_refused() {
    let metrics = r#"{"kind": "metricsOutage", "span": {"from": 0, "until": "1m"}}"#;
    for kind in ["routerErrors", "platformErrors"] {
        let fault = |from: &str, until: &str, message: &str| {
            format!(
                r#"{{"kind": "{kind}", "span": {{"from": "{from}", "until": "{until}"}},
                    "message": "{message}"}}"#
            )
        };
        let a = fault("5m", "10m", "503");
        let b = fault("9m", "12m", "timeout");
        let msg = config(&format!("{a}, {metrics}, {b}")).unwrap_err();
        assert!(
            msg.contains("simConfig.faults[2]") && msg.contains("simConfig.faults[0]"),
            "{kind}: {msg}"
        );
        config(&format!("{a}, {}", fault("9m", "12m", "503"))).unwrap();
        config(&format!("{a}, {}", fault("10m", "12m", "timeout"))).unwrap();
    }
    // Router and platform errors are different kinds: they may overlap.
    config(
        r#"{"kind": "routerErrors", "span": {"from": 0, "until": "1m"}, "message": "a"},
           {"kind": "platformErrors", "span": {"from": 0, "until": "1m"}, "message": "b"}"#,
    )
    .unwrap();
}

/// A fault injected while the world runs is held to the same rule, and a refused one changes
/// nothing.
#[tokio::test(start_paused = true)]
async fn an_injected_fault_overlapping_another_message_is_refused() {
    let world = fleet(SimConfig::new(33).with_fault(Fault::RouterErrors {
        span: span(mins(5), mins(10)),
        message: "503".into(),
    }))
    .await;
    let clash = Fault::RouterErrors {
        span: span(mins(8), mins(12)),
        message: "timeout".into(),
    };
    let err = world.inject(clash).unwrap_err().to_string();
    assert!(err.contains("simConfig.faults[0]"), "{err}");
    assert_eq!(world.config().faults().len(), 1);
    world
        .inject(Fault::RouterErrors {
            span: span(mins(10), mins(12)),
            message: "timeout".into(),
        })
        .unwrap();
}
