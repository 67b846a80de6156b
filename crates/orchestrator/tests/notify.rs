//! The real notification channels against real receivers on loopback: a hyper HTTP server
//! that verifies webhook signatures and records deliveries, and (when `SERIN_TEST_SMTP` is set,
//! see `scripts/services/smtp.sh`) a real SMTP server.

use crate::notify_support;
use crate::support;

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use notify_support::*;
use serde_json::Value;
use serin_orchestrator::notify::testkit::{Coverage, Delivered, Inbox, check_notifier};
use serin_orchestrator::notify::{
    ChannelNotifier, DeliveryStats, NotifySettings, Overflow, RetryPolicy, SIGNATURE_HEADER,
    SmtpSettings, StartTls, TIMESTAMP_HEADER, event_type, verify_signature,
};
use serin_orchestrator::{
    DeploymentConfig, Event, EventKind, Notifier, NotifyOn, Outcome, Phase, StrategyKind,
};
use serin_signals::Timestamp;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

// ---------------------------------------------------------------------------------------------
// Webhooks.

#[tokio::test]
async fn a_webhook_delivery_is_a_signed_cloudevent() {
    let rx = Receiver::start(Mode::Answer(204), Some(SECRET), &[]).await;
    let n = notifier(fast_settings());
    let e = event("web-42", 7, rolled_back());
    n.notify(&webhook(&rx.url("/hooks/deploy")), &e)
        .await
        .expect("queued");
    flush(&n).await;
    assert!(rx.rejected().is_empty(), "{:?}", rx.rejected());
    let got = rx.accepted();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.path, "/hooks/deploy");
    assert!(
        r.headers["content-type"].starts_with("application/cloudevents+json"),
        "{:?}",
        r.headers
    );
    let ts: u64 = r.headers["x-serin-timestamp"].parse().expect("seconds");
    let now = wall_now().as_millis() / 1_000;
    assert!(ts <= now && now - ts < 60, "timestamp {ts} vs now {now}");
    assert!(r.headers["x-serin-signature"].starts_with("sha256="));
    let ce = r.json();
    assert_eq!(ce["specversion"], "1.0");
    assert_eq!(ce["id"], "web-42-7");
    assert_eq!(ce["source"], "/serin/orchestrator");
    assert_eq!(ce["type"], "dev.serin.deployment.rolledBack");
    assert_eq!(ce["subject"], "web-42");
    assert_eq!(ce["time"], "2023-11-14T22:13:27.000Z");
    assert_eq!(ce["datacontenttype"], "application/json");
    let data: Event = serde_json::from_value(ce["data"].clone()).expect("the event");
    assert_eq!(data, e);
    // The secret signs; it is never sent.
    assert!(!String::from_utf8_lossy(&r.body).contains(SECRET));
    assert!(!r.headers.values().any(|v| v.contains(SECRET)));
    // A replay of the same request later, or with another body, fails verification.
    let later = Timestamp::from_millis((ts + 600) * 1_000);
    let sig = &r.headers["x-serin-signature"];
    let tol = Duration::from_secs(300);
    assert!(
        verify_signature(SECRET.as_bytes(), &ts.to_string(), &r.body, sig, later, tol).is_err()
    );
    assert!(
        verify_signature(
            SECRET.as_bytes(),
            &ts.to_string(),
            b"{}",
            sig,
            wall_now(),
            tol
        )
        .is_err()
    );
    assert_eq!(SIGNATURE_HEADER.to_ascii_lowercase(), "x-serin-signature");
    assert_eq!(TIMESTAMP_HEADER.to_ascii_lowercase(), "x-serin-timestamp");
    let stats = n.stats();
    assert_eq!((stats.queued, stats.delivered, stats.failed), (1, 1, 0));
}

#[tokio::test]
async fn a_receiver_rejects_a_delivery_signed_at_a_stale_time() {
    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), &[]).await;
    let n = notifier(fast_settings()).with_clock(|| Timestamp::from_millis(1_000_000_000_000));
    deliver_one(&n, &rx.url("/")).await;
    let rejected = rx.rejected();
    assert_eq!(rejected.len(), 1, "a 401 is not retried");
    assert!(rejected[0].contains("tolerance"), "{rejected:?}");
    assert!(rx.accepted().is_empty());
    assert_eq!((n.stats().failed, n.stats().retries), (1, 0));
}

#[tokio::test]
async fn a_receiver_that_fails_twice_gets_the_event_exactly_once_after_retries() {
    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), &[500, 503]).await;
    let n = notifier(fast_settings());
    deliver_one(&n, &rx.url("/")).await;
    assert_eq!(rx.attempts().len(), 3, "two failures, then success");
    assert_eq!(rx.accepted().len(), 1, "delivered exactly once");
    assert!(rx.rejected().is_empty(), "each retry is signed afresh");
    let stats = n.stats();
    assert_eq!((stats.delivered, stats.retries, stats.failed), (1, 2, 0));
}

#[tokio::test]
async fn client_errors_are_not_retried_and_server_errors_are_given_up_after_the_last_attempt() {
    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), &[400]).await;
    let n = notifier(fast_settings());
    deliver_one(&n, &rx.url("/")).await;
    assert_eq!(rx.attempts().len(), 1);
    assert_eq!(n.stats().failed, 1);

    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), &[500; 10]).await;
    n.notify(&webhook(&rx.url("/")), &event("web-2", 0, rolled_back()))
        .await
        .expect("queued");
    flush(&n).await;
    assert_eq!(rx.attempts().len(), 4, "retry.maxAttempts");
    assert!(rx.accepted().is_empty());
    assert_eq!(n.stats().failed, 2);
}

/// Delivers one event to a receiver that answers `script` with `Retry-After: retry_after`;
/// returns the waits between its attempts.
async fn waits_asked(script: &[u16], retry_after: &str, max_backoff: Duration) -> Vec<Duration> {
    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), script).await;
    rx.set_retry_after(retry_after);
    let settings = NotifySettings {
        retry: RetryPolicy {
            max_backoff,
            ..fast_settings().retry
        },
        ..fast_settings()
    };
    let n = notifier(settings);
    deliver_one(&n, &rx.url("/")).await;
    assert_eq!(rx.accepted().len(), 1);
    let retries = u64::try_from(script.len()).expect("a short script");
    assert_eq!((n.stats().retries, n.stats().delivered), (retries, 1));
    let attempts = rx.attempts();
    attempts.windows(2).map(|p| p[1].at - p[0].at).collect()
}

#[tokio::test]
async fn a_throttled_or_busy_receiver_is_left_alone_as_long_as_it_asks_within_bounds() {
    // The backoff alone would wait 20 ms, then 40 ms.
    let waits = waits_asked(&[429, 503], "1", Duration::from_secs(5)).await;
    assert_eq!(waits.len(), 2, "a 429 and a 503, then success");
    assert!(
        waits.iter().all(|w| *w >= Duration::from_secs(1)),
        "{waits:?}"
    );
    // A 503 asking for longer than maxBackoff gets maxBackoff.
    let waits = waits_asked(&[503], "3600", Duration::from_millis(200)).await;
    assert!(
        waits[0] >= Duration::from_millis(200) && waits[0] < Duration::from_secs(2),
        "{waits:?}"
    );
    // A 429 is throttling: it gets what it asks, past maxBackoff, up to what is left of
    // retry.throttledBudget (2 s in these settings).
    let waits = waits_asked(&[429], "3600", Duration::from_millis(200)).await;
    assert!(
        waits[0] >= Duration::from_secs(2) && waits[0] < Duration::from_secs(4),
        "{waits:?}"
    );
}

#[tokio::test]
async fn a_refused_connection_is_retried() {
    // A port with nothing listening: bind, read the port, close.
    let addr = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind")
        .local_addr()
        .expect("addr");
    let n = notifier(fast_settings());
    deliver_one(&n, &format!("http://{addr}/")).await;
    let stats = n.stats();
    assert_eq!((stats.retries, stats.failed, stats.delivered), (3, 1, 0));
}

#[tokio::test]
async fn a_hanging_receiver_holds_up_neither_notify_nor_other_channels() {
    let hang = Receiver::start(Mode::Hang, None, &[]).await;
    let ok = Receiver::start(Mode::Answer(200), Some(SECRET), &[]).await;
    let mut settings = fast_settings();
    settings.request_timeout = Duration::from_millis(300);
    settings.retry.max_attempts = 2;
    let n = notifier(settings);
    let started = tokio::time::Instant::now();
    for seq in 0..5 {
        let e = event("web-1", seq, rolled_back());
        n.notify(&webhook(&hang.url("/slow")), &e)
            .await
            .expect("queued");
        n.notify(&webhook(&ok.url("/fast")), &e)
            .await
            .expect("queued");
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "notify queues and returns: {:?}",
        started.elapsed()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while ok.accepted().len() < 5 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the fast channel was held up"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(hang.accepted().is_empty());
    flush(&n).await;
    let stats = n.stats();
    assert_eq!(stats.delivered, 5);
    assert_eq!(
        stats.failed, 5,
        "each hung delivery times out on every attempt"
    );
}

/// A receiver on a runtime of its own that answers each delivery once `gate` gives it a permit.
fn gated_receiver() -> (tokio::runtime::Runtime, Arc<Semaphore>, Receiver) {
    let io = io_runtime();
    let gate = Arc::new(Semaphore::new(0));
    let rx = io.block_on(Receiver::start(
        Mode::Gate(Arc::clone(&gate)),
        Some(SECRET),
        &[],
    ));
    (io, gate, rx)
}

#[test]
fn a_notifier_keeps_delivering_after_the_runtime_that_first_used_it_is_gone() {
    // The receiver lives on its own runtime throughout.
    let (_io, gate, rx) = gated_receiver();
    let n = notifier(fast_settings());
    let ch = webhook(&rx.url("/"));
    // The first runtime ends while its delivery task holds a message in flight.
    let first = current_thread_runtime();
    first.block_on(async {
        n.notify(&ch, &event("web-1", 0, rolled_back()))
            .await
            .expect("queued");
        until_attempted(&rx, "delivery in flight").await;
    });
    drop(first);
    gate.add_permits(100);
    current_thread_runtime().block_on(async {
        n.notify(&ch, &event("web-1", 1, rolled_back()))
            .await
            .expect("queued");
        tokio::time::timeout(Duration::from_secs(5), n.flush())
            .await
            .expect("a message lost with its runtime leaves nothing pending");
    });
    let seqs = accepted_seqs(&rx);
    assert!(seqs.contains(&1), "delivered on the new runtime: {seqs:?}");
    let stats = n.stats();
    assert_eq!(
        (stats.queued, stats.delivered, stats.failed),
        (2, 1, 1),
        "the message lost in flight counts as failed"
    );
}

#[test]
fn flush_returns_when_the_runtime_given_to_on_runtime_has_shut_down() {
    let io = current_thread_runtime();
    let n = notifier(fast_settings()).on_runtime(io.handle().clone());
    drop(io);
    current_thread_runtime().block_on(async {
        let err = n
            .notify(
                &webhook("http://127.0.0.1:9/"),
                &event("web-1", 0, rolled_back()),
            )
            .await
            .expect_err("nothing can deliver it")
            .to_string();
        assert!(err.contains("has shut down"), "{err}");
        tokio::time::timeout(Duration::from_secs(5), n.flush())
            .await
            .expect("flush returns");
    });
    assert_eq!(n.stats().queued, 0);
}

/// Queues three messages on `ch` while the first is held in flight by a gated receiver, then
/// shuts down the runtime the deliveries ran on; returns the sequence numbers of the queued
/// two that arrived once `flush` returned (on a runtime of its own), and the stats.
fn flush_after_the_delivery_runtime_died(given: bool) -> (Vec<u64>, DeliveryStats) {
    let (io, gate, rx) = gated_receiver();
    let deliveries = current_thread_runtime();
    let mut n = notifier(fast_settings());
    if given {
        n = n.on_runtime(deliveries.handle().clone());
    }
    let ch = webhook(&rx.url("/"));
    deliveries.block_on(async {
        for seq in 0..3 {
            n.notify(&ch, &event("web-1", seq, rolled_back()))
                .await
                .expect("queued");
        }
        until_attempted(&rx, "delivery in flight").await;
    });
    drop(deliveries);
    gate.add_permits(100);
    current_thread_runtime().block_on(async {
        tokio::time::timeout(Duration::from_secs(5), n.flush())
            .await
            .expect("flush returns");
    });
    let seqs = accepted_seqs(&rx)
        .into_iter()
        // The receiver still answers the one that was in flight once its gate opens.
        .filter(|seq| *seq > 0)
        .collect();
    io.shutdown_background();
    (seqs, n.stats())
}

#[test]
fn messages_left_queued_by_a_runtime_that_shut_down_are_delivered_or_given_up_by_flush() {
    // Without a runtime of its own, the notifier delivers on the runtime that flushes.
    let (seqs, stats) = flush_after_the_delivery_runtime_died(false);
    assert_eq!(
        seqs,
        vec![1, 2],
        "the one in flight was lost with its runtime"
    );
    assert_eq!((stats.delivered, stats.failed), (2, 1), "{stats:?}");
    // The runtime it was given is gone, so nothing is left to deliver them.
    let (seqs, stats) = flush_after_the_delivery_runtime_died(true);
    assert!(seqs.is_empty(), "{seqs:?}");
    assert_eq!((stats.delivered, stats.failed), (0, 3), "{stats:?}");
}

async fn overflow(policy: Overflow) -> (Vec<u64>, u64) {
    let gate = Arc::new(Semaphore::new(0));
    let rx = Receiver::start(Mode::Gate(Arc::clone(&gate)), Some(SECRET), &[]).await;
    let mut settings = fast_settings();
    settings.queue_capacity = 2;
    settings.overflow = policy;
    settings.request_timeout = Duration::from_secs(10);
    let n = notifier(settings);
    let ch = webhook(&rx.url("/"));
    n.notify(&ch, &event("web-1", 0, rolled_back()))
        .await
        .expect("queued");
    until_attempted(&rx, "first delivery in flight").await;
    for seq in 1..5 {
        n.notify(&ch, &event("web-1", seq, rolled_back()))
            .await
            .expect("never refused: a full queue drops");
    }
    let dropped = n.stats().dropped;
    gate.add_permits(100);
    flush(&n).await;
    (accepted_seqs(&rx), dropped)
}

#[tokio::test]
async fn a_full_queue_drops_the_oldest_or_the_newest_and_counts_it() {
    assert_eq!(overflow(Overflow::DropOldest).await, (vec![0, 3, 4], 2));
    assert_eq!(overflow(Overflow::DropNewest).await, (vec![0, 1, 2], 2));
}

// ---------------------------------------------------------------------------------------------
// Slack and PagerDuty.

#[tokio::test]
async fn slack_gets_an_incoming_webhook_message_with_the_decision_and_evidence() {
    let rx = Receiver::start(Mode::Answer(200), None, &[]).await;
    let slack_url = rx.url(&format!("/services/T000/B000/{SLACK_TOKEN}"));
    let n = ChannelNotifier::new(fast_settings())
        .expect("notifier")
        .with_env(move |name| (name == "SLACK_URL").then(|| slack_url.clone()));
    let ch = channel(r##"{"type":"slack","destination":"#deploys","secretEnv":"SLACK_URL"}"##);
    let e = event(
        "web-3",
        4,
        EventKind::Anomaly {
            source: "sequential-counts".into(),
            severity: "warning".into(),
            summary: "canary error rate 4.1% vs 1.0% (e-value 12.3 < 20)".into(),
        },
    );
    n.notify(&ch, &e).await.expect("queued");
    flush(&n).await;
    let got = rx.accepted();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, format!("/services/T000/B000/{SLACK_TOKEN}"));
    assert_eq!(got[0].headers["content-type"], "application/json");
    let m = got[0].json();
    // Incoming-webhook fields: `text` (the fallback), `blocks` (Block Kit), `channel`.
    assert!(m["text"].as_str().expect("text").contains("e-value 12.3"));
    assert_eq!(m["channel"], "#deploys");
    let blocks = m["blocks"].as_array().expect("blocks");
    let types: Vec<&str> = blocks.iter().filter_map(|b| b["type"].as_str()).collect();
    assert_eq!(types, vec!["header", "section", "context"]);
    assert_eq!(blocks[0]["text"]["type"], "plain_text");
    assert_eq!(blocks[0]["text"]["text"], "web: anomaly");
    assert_eq!(blocks[1]["text"]["type"], "mrkdwn");
    assert!(
        blocks[1]["text"]["text"]
            .as_str()
            .expect("section")
            .contains("sequential-counts")
    );
    // The webhook URL's token is the secret: it is the address, never the content.
    assert!(!String::from_utf8_lossy(&got[0].body).contains(SLACK_TOKEN));
}

#[tokio::test]
async fn pagerduty_triggers_on_rollback_and_resolves_on_completion_per_deployment() {
    let rx = Receiver::start(Mode::Answer(202), None, &[]).await;
    let mut settings = fast_settings();
    settings.pagerduty_events_url = rx.url("/v2/enqueue");
    let n = notifier(settings);
    let ch =
        channel(r#"{"type":"pagerduty","destination":"web on-call","secretEnv":"SERIN_PD_KEY"}"#);
    let start = EventKind::Started {
        strategy: StrategyKind::Canary,
        from: Some("1.0.0".into()),
        to: "1.1.0".into(),
    };
    for e in [
        event("web-5", 0, start.clone()),
        event(
            "web-5",
            1,
            EventKind::PhaseChanged {
                phase: Phase::Deployment,
            },
        ),
        event(
            "web-5",
            2,
            EventKind::RollbackStarted {
                reason: "5xx".into(),
            },
        ),
        event("web-6", 0, start),
        event(
            "web-6",
            1,
            EventKind::Failed {
                reason: "platform down".into(),
            },
        ),
        event(
            "web-5",
            3,
            EventKind::Completed {
                version: "1.0.0".into(),
            },
        ),
    ] {
        n.notify(&ch, &e).await.expect("queued or skipped");
    }
    flush(&n).await;
    let got: Vec<Value> = rx.accepted().iter().map(Request_::json).collect();
    let sent: Vec<(&str, &str)> = got
        .iter()
        .map(|v| {
            (
                v["event_action"].as_str().unwrap_or_default(),
                v["dedup_key"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        sent,
        vec![
            ("trigger", "serin/web-5"),
            ("trigger", "serin/web-6/critical"),
            ("resolve", "serin/web-6/warning"),
            ("resolve", "serin/web-5/critical"),
            ("resolve", "serin/web-5"),
            ("resolve", "serin/web-5/warning"),
        ],
        "starts and phase changes page nobody; each severity is an alert: {got:?}"
    );
    assert!(rx.accepted().iter().all(|r| r.path == "/v2/enqueue"));
    let t = &got[0];
    assert_eq!(t["routing_key"], ROUTING_KEY);
    assert_eq!(t["event_action"], "trigger");
    assert_eq!(t["dedup_key"], "serin/web-5");
    let p = &t["payload"];
    assert_eq!(p["summary"], "web: rollback started: 5xx");
    assert_eq!(p["source"], "web");
    assert_eq!(p["severity"], "error");
    assert_eq!(p["timestamp"], "2023-11-14T22:13:22.000Z");
    assert_eq!(p["class"], "rollbackStarted");
    assert_eq!(p["custom_details"]["event"]["seq"], 2);
    assert_eq!(got[1]["payload"]["severity"], "critical");
    let r = &got[4];
    assert_eq!(r["routing_key"], ROUTING_KEY);
    assert!(r.get("payload").is_none());
    assert_eq!(n.stats().delivered, 6, "a message per body");
}

// ---------------------------------------------------------------------------------------------
// Channel configuration (secrets in logs are checked in `notify_logs.rs`).

#[tokio::test]
async fn channels_are_checked_with_the_path_of_the_bad_field() {
    let mut settings = fast_settings();
    settings.webhook_secret = None;
    let n = notifier(settings);
    let cases = [
        (
            r#"{"type":"webhook","destination":"ftp://example.org"}"#,
            "notificationChannels[0].destination",
        ),
        (
            r#"{"type":"webhook","destination":"https://example.org/h"}"#,
            "notificationChannels[0].secretEnv",
        ),
        (
            r##"{"type":"slack","destination":"#deploys"}"##,
            "notificationChannels[0].secretEnv",
        ),
        (
            r#"{"type":"pagerduty","destination":"on-call"}"#,
            "notificationChannels[0].secretEnv",
        ),
        (
            r#"{"type":"email","destination":"ops@example.org"}"#,
            "notifySettings.smtp",
        ),
    ];
    for (json, needle) in cases {
        let err = n
            .check_channels(&[channel(json)])
            .expect_err(json)
            .to_string();
        assert!(err.contains(needle), "{json}: {err}");
    }
    n.check_channels(&[
        webhook("https://example.org/h"),
        channel(r#"{"type":"slack","destination":"https://hooks.example.org/T/B/x"}"#),
        channel(r#"{"type":"pagerduty","destination":"on-call","secretEnv":"SERIN_PD_KEY"}"#),
    ])
    .expect("valid channels");
    assert_eq!(n.stats().queued, 0, "checking sends nothing");
    assert!(
        ChannelNotifier::new(NotifySettings {
            queue_capacity: 0,
            ..NotifySettings::default()
        })
        .is_err()
    );
}

#[tokio::test]
async fn a_url_without_its_scheme_is_refused_not_taken_for_a_name() {
    // With defaults for every kind, a name falls back to them: a URL taken for a name would
    // post its token as the Slack channel, or page through the default PagerDuty endpoint.
    let mut settings = fast_settings();
    settings.slack_webhook_url = Some(serin_orchestrator::notify::Secret::new(
        "https://hooks.example.org/T/B/default",
    ));
    settings.pagerduty_routing_key = Some(serin_orchestrator::notify::Secret::new(ROUTING_KEY));
    let n = notifier(settings);
    for (json, shown) in [
        (
            r#"{"type":"slack","destination":"hooks.slack.com/services/T0/B0/tok3n"}"#,
            "`hooks.slack.com/***`",
        ),
        (
            r#"{"type":"slack","destination":"hooks.slack.com:443/services/T0/B0/tok3n"}"#,
            "`hooks.slack.com:443/***`",
        ),
        (
            r#"{"type":"pagerduty","destination":"events.eu.pagerduty.com/v2/enqueue?tok3n"}"#,
            "`events.eu.pagerduty.com/***`",
        ),
        (
            r#"{"type":"webhook","destination":"hooks.example.org/deploys?token=tok3n"}"#,
            "`hooks.example.org/***`",
        ),
    ] {
        let err = n
            .check_channels(&[channel(json)])
            .expect_err(json)
            .to_string();
        assert!(
            err.contains("notificationChannels[0].destination")
                && err.contains(shown)
                && err.contains("without its scheme"),
            "{json}: {err}"
        );
        assert!(!err.contains("tok3n"), "{err}");
        let err = n
            .notify(&channel(json), &event("web-1", 0, rolled_back()))
            .await
            .expect_err(json)
            .to_string();
        assert!(err.contains("without its scheme"), "{err}");
    }
    // Another scheme is refused too, and names stay names.
    let err = n
        .check_channels(&[channel(
            r#"{"type":"slack","destination":"ftp://hooks.slack.com/services/tok3n"}"#,
        )])
        .expect_err("ftp")
        .to_string();
    assert!(err.contains("http:// or https://"), "{err}");
    n.check_channels(&[
        channel(r##"{"type":"slack","destination":"#deploys"}"##),
        channel(r#"{"type":"slack","destination":"C024BE91L"}"#),
        channel(r#"{"type":"slack","destination":"@oncall.web"}"#),
        channel(r#"{"type":"pagerduty","destination":"web on-call"}"#),
        channel(r#"{"type":"pagerduty","destination":"api.web team"}"#),
    ])
    .expect("names");
    assert_eq!(n.stats().queued, 0);
}

#[test]
fn the_config_names_a_secret_variable_and_subscribes_to_phase_changes() {
    let yaml = |ch: &str| {
        format!(
            "strategy: canary\nversion: 1.1.0\ntargetServices: [web]\nnotificationChannels: [{ch}]\n"
        )
    };
    let c = DeploymentConfig::from_yaml(&yaml(
        "{type: webhook, destination: 'https://example.org/h', secretEnv: HOOK_SECRET, events: [phase, rollback]}",
    ))
    .expect("valid");
    let ch = &c.notification_channels[0];
    assert_eq!(ch.secret_env.as_deref(), Some("HOOK_SECRET"));
    assert_eq!(ch.events, vec![NotifyOn::Phase, NotifyOn::Rollback]);
    assert_eq!(
        EventKind::PhaseChanged {
            phase: Phase::Monitoring
        }
        .notify_on(),
        NotifyOn::Phase
    );
    // An operator's pause and resume, and a deadline running out, have categories of their
    // own: an on-call may want to know that a deployment stands still, or why it rolls back.
    let c = DeploymentConfig::from_yaml(&yaml(
        "{type: slack, destination: '#deploys', events: [paused, deadline]}",
    ))
    .expect("valid");
    assert_eq!(
        c.notification_channels[0].events,
        vec![NotifyOn::Paused, NotifyOn::Deadline]
    );
    for kind in [EventKind::Paused, EventKind::Resumed] {
        assert_eq!(kind.notify_on(), NotifyOn::Paused, "{kind:?}");
    }
    let deadline = EventKind::DeadlineReached {
        phase: Phase::Deployment,
        action: "maxDeploymentDuration ran out: rolling back".into(),
    };
    assert_eq!(deadline.notify_on(), NotifyOn::Deadline);
    let err = DeploymentConfig::from_yaml(&yaml(
        "{type: webhook, destination: 'https://example.org/h', secretEnv: 'my secret'}",
    ))
    .expect_err("bad name")
    .to_string();
    assert!(
        err.starts_with("invalid notificationChannels[0].secretEnv"),
        "the path as the file writes it: {err}"
    );
    let err = DeploymentConfig::from_yaml(&yaml(
        "{type: webhook, destination: 'https://example.org/h', secret: 'inline'}",
    ))
    .expect_err("secrets are not written in the config")
    .to_string();
    assert!(err.contains("secret"), "{err}");
}

// ---------------------------------------------------------------------------------------------
// The conformance suite against every channel.

struct WebhookInbox(Receiver);

#[async_trait]
impl Inbox for WebhookInbox {
    async fn delivered(&self) -> Vec<Delivered> {
        self.0
            .accepted()
            .iter()
            .map(|r| {
                let ce = r.json();
                Delivered {
                    deployment: ce["subject"].as_str().unwrap_or_default().to_owned(),
                    event_type: ce["type"]
                        .as_str()
                        .and_then(|t| t.strip_prefix("dev.serin.deployment."))
                        .unwrap_or_default()
                        .to_owned(),
                }
            })
            .collect()
    }
}

struct SlackInbox(Receiver);

#[async_trait]
impl Inbox for SlackInbox {
    async fn delivered(&self) -> Vec<Delivered> {
        self.0
            .accepted()
            .iter()
            .map(|r| {
                let m = r.json();
                let blocks = m["blocks"].as_array().cloned().unwrap_or_default();
                let ctx = blocks
                    .last()
                    .and_then(|b| b["elements"][0]["text"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                // "deployment `ID` · event #N `TYPE` · TIME"
                let parts: Vec<&str> = ctx.split('`').collect();
                Delivered {
                    deployment: parts.get(1).copied().unwrap_or_default().to_owned(),
                    event_type: parts.get(3).copied().unwrap_or_default().to_owned(),
                }
            })
            .collect()
    }
}

struct PagerDutyInbox(Receiver);

#[async_trait]
impl Inbox for PagerDutyInbox {
    async fn delivered(&self) -> Vec<Delivered> {
        self.0
            .accepted()
            .iter()
            .filter_map(|r| {
                let m = r.json();
                let key = m["dedup_key"]
                    .as_str()
                    .and_then(|k| k.strip_prefix("serin/"))
                    .unwrap_or_default();
                let (deployment, severity) = match key.rsplit_once('/') {
                    Some((d, s @ ("warning" | "critical"))) => (d, s),
                    _ => (key, "error"),
                };
                let event_type = match m["event_action"].as_str() {
                    // Completion resolves each severity's alert, and the end of a deployment
                    // its warning: the resolve of the `error` alert stands for the event.
                    Some("resolve") if severity == "error" => "completed".to_owned(),
                    Some("resolve") => return None,
                    _ => m["payload"]["class"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                };
                Some(Delivered {
                    deployment: deployment.to_owned(),
                    event_type,
                })
            })
            .collect()
    }
}

#[tokio::test]
async fn every_channel_passes_the_notifier_conformance_suite() {
    let settings = {
        let mut s = fast_settings();
        s.retry.max_attempts = 5;
        s
    };
    // Webhook, with a receiver that fails now and then.
    let rx = Receiver::start(Mode::Answer(200), Some(SECRET), &[500, 502]).await;
    let n = ChannelNotifier::new(settings.clone())
        .expect("notifier")
        .with_env(env());
    check_notifier(
        &n,
        &webhook(&rx.url("/")),
        &WebhookInbox(rx.clone()),
        Coverage::Every,
    )
    .await;
    assert!(rx.rejected().is_empty());

    let rx = Receiver::start(Mode::Answer(200), None, &[]).await;
    let ch = channel(&format!(
        r#"{{"type":"slack","destination":"{}"}}"#,
        rx.url("/services/x")
    ));
    check_notifier(&n, &ch, &SlackInbox(rx), Coverage::Every).await;

    let rx = Receiver::start(Mode::Answer(202), None, &[]).await;
    let ch = channel(&format!(
        r#"{{"type":"pagerduty","destination":"{}","secretEnv":"SERIN_PD_KEY"}}"#,
        rx.url("/v2/enqueue")
    ));
    check_notifier(&n, &ch, &PagerDutyInbox(rx), Coverage::Incidents).await;

    let memory = serin_orchestrator::InMemoryNotifier::new();
    check_notifier(&memory, &ch, &memory, Coverage::Every).await;
}

// ---------------------------------------------------------------------------------------------
// E-mail against a real SMTP server.

fn smtp_server() -> Option<(String, u16, String)> {
    let Ok(addr) = std::env::var("SERIN_TEST_SMTP") else {
        let _ = writeln!(
            std::io::stderr(),
            "skipped: SERIN_TEST_SMTP is not set (eval \"$(scripts/services/smtp.sh)\")"
        );
        return None;
    };
    let mailbox = std::env::var("SERIN_TEST_SMTP_MAILBOX").unwrap_or_default();
    let (host, port) = addr.rsplit_once(':').expect("SERIN_TEST_SMTP is host:port");
    Some((host.to_owned(), port.parse().expect("port"), mailbox))
}

fn smtp_settings(host: &str, port: u16) -> NotifySettings {
    let mut s = fast_settings();
    let mut smtp = SmtpSettings::new(host, port, "Serin <serin@example.org>");
    smtp.starttls = StartTls::None;
    s.smtp = Some(smtp);
    s
}

/// The messages of a Maildir (aiosmtpd's `Mailbox` handler), in delivery order.
fn read_maildir(dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    for sub in ["new", "cur"] {
        let Ok(entries) = std::fs::read_dir(std::path::Path::new(dir).join(sub)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            // `{seconds}.M{microseconds}P{pid}Q{counter}.{host}`
            let num = |after: char, upto: char| -> u64 {
                name.split_once(after)
                    .and_then(|(_, rest)| rest.split(upto).next())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0)
            };
            let secs: u64 = name
                .split('.')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let key = (secs, num('M', 'P'), num('Q', '.'));
            if let Ok(text) = std::fs::read_to_string(entry.path()) {
                files.push((key, text));
            }
        }
    }
    files.sort();
    files.into_iter().map(|(_, text)| text).collect()
}

struct Mailbox(String);

#[async_trait]
impl Inbox for Mailbox {
    async fn delivered(&self) -> Vec<Delivered> {
        read_maildir(&self.0)
            .iter()
            .filter_map(|msg| {
                let field = |prefix: &str| {
                    msg.lines()
                        .find_map(|l| l.strip_prefix(prefix))
                        .map(|v| v.trim().to_owned())
                };
                let deployment = field("Deployment: ")?;
                let event_type = field("Event:      #")?
                    .split_once('(')
                    .map(|(_, t)| t.trim_end_matches(')').to_owned())?;
                Some(Delivered {
                    deployment,
                    event_type,
                })
            })
            .collect()
    }
}

#[tokio::test]
async fn email_goes_through_a_real_smtp_server() {
    let Some((host, port, mailbox)) = smtp_server() else {
        return;
    };
    let n = ChannelNotifier::new(smtp_settings(&host, port)).expect("notifier");
    let deployment = format!("web-mail-{}", wall_now().as_millis());
    let ch = channel(r#"{"type":"email","destination":"ops@example.org, Dev <dev@example.org>"}"#);
    n.notify(&ch, &event(&deployment, 3, rolled_back()))
        .await
        .expect("queued");
    flush(&n).await;
    assert_eq!(n.stats().delivered, 1, "{:?}", n.stats());
    let needle = format!("Deployment: {deployment}");
    let msg = read_maildir(&mailbox)
        .into_iter()
        .find(|m| m.contains(&needle))
        .expect("our message arrived");
    assert!(
        msg.contains("Subject: [serin] web: rolled back: error_rate on canary 9.8% > 5%"),
        "{msg}"
    );
    assert!(
        msg.contains("To: ops@example.org, Dev <dev@example.org>"),
        "{msg}"
    );
    assert!(msg.contains("\"rolledBack\""), "{msg}");

    // Conformance, through the same server.
    check_notifier(
        &n,
        &channel(r#"{"type":"email","destination":"ops@example.org"}"#),
        &Mailbox(mailbox),
        Coverage::Every,
    )
    .await;
}

#[tokio::test]
async fn starttls_required_refuses_a_server_without_it() {
    let Some((host, port, _)) = smtp_server() else {
        return;
    };
    let mut settings = smtp_settings(&host, port);
    settings.retry.max_attempts = 1;
    if let Some(smtp) = settings.smtp.as_mut() {
        smtp.starttls = StartTls::Required;
    }
    let n = ChannelNotifier::new(settings).expect("notifier");
    let ch = channel(r#"{"type":"email","destination":"ops@example.org"}"#);
    n.notify(&ch, &event("web-tls", 0, rolled_back()))
        .await
        .expect("queued");
    flush(&n).await;
    assert_eq!((n.stats().delivered, n.stats().failed), (0, 1));
}

// ---------------------------------------------------------------------------------------------
// End to end: a whole deployment through the orchestrator, notified over a signed webhook.

#[test]
fn a_rolled_back_canary_is_announced_to_a_signed_webhook() {
    // The notifier and receiver keep real time on their own runtime; the deployment runs in
    // paused virtual time.
    let io = io_runtime();
    let rx = io.block_on(Receiver::start(Mode::Answer(200), Some(SECRET), &[500]));
    let notifier = Arc::new(notifier(fast_settings()).on_runtime(io.handle().clone()));
    let sim = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .expect("virtual-time runtime");
    let url = rx.url("/deploys");
    let n = Arc::clone(&notifier);
    let report = sim.block_on(async move {
        let (world, traffic) = support::World::serving(0.005, 0.08).await;
        let o = world.builder(world.journal.clone()).notifier(n).build();
        let mut config = support::canary_config("1.1.0");
        config.notification_channels = vec![webhook(&url)];
        config.environment = Some("prod".into());
        config.namespace = Some("shop".into());
        let report = o.run(&config).await.expect("run").remove(0);
        traffic.abort();
        report
    });
    assert!(
        matches!(report.outcome, Some(Outcome::RolledBack { .. })),
        "{report}"
    );
    let n = Arc::clone(&notifier);
    io.block_on(async move { flush(&n).await });
    assert!(
        rx.rejected().is_empty(),
        "every delivery is signed: {:?}",
        rx.rejected()
    );
    let got: Vec<Value> = rx.accepted().iter().map(Request_::json).collect();
    let types: Vec<String> = got
        .iter()
        .map(|ce| ce["type"].as_str().unwrap_or_default().to_owned())
        .collect();
    let data: Vec<Event> = got
        .iter()
        .map(|ce| serde_json::from_value(ce["data"].clone()).expect("event"))
        .collect();
    // What the channel subscribed to (all categories), in the journalled order, nothing else.
    let expected: Vec<&Event> = report.timeline.iter().collect();
    assert_eq!(data.iter().collect::<Vec<_>>(), expected, "{types:?}");
    // Every delivery says where the deployment runs, beside the event.
    for ce in &got {
        assert_eq!(ce["serinenvironment"], "prod", "{ce}");
        assert_eq!(ce["serinnamespace"], "shop", "{ce}");
    }
    for t in [
        "dev.serin.deployment.started",
        "dev.serin.deployment.phaseChanged",
        "dev.serin.deployment.rollbackStarted",
        "dev.serin.deployment.rolledBack",
    ] {
        assert!(types.iter().any(|x| x == t), "{t} missing from {types:?}");
    }
    let last_outcome = data
        .iter()
        .rev()
        .find(|e| !matches!(e.kind, EventKind::PhaseChanged { .. }))
        .expect("events");
    assert_eq!(event_type(&last_outcome.kind), "rolledBack");
    io.shutdown_background();
}
