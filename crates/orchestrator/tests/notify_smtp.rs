//! The e-mail channel against a scripted SMTP server on loopback (`notify_support::smtp`):
//! one session carries a channel's messages, a session the server closed is replaced, a
//! stalled server is given up on within the request timeout, a refusal by the client itself
//! is not retried, and a message's text goes out as whole lines.

#![cfg(feature = "notify")]

use crate::notify_support;

use std::time::Duration;

use notify_support::smtp::{FakeSmtp, SmtpMode};
use notify_support::{channel, event, fast_settings, flush, rolled_back};
use serin_orchestrator::notify::{ChannelNotifier, NotifySettings, SmtpSettings, StartTls};
use serin_orchestrator::{EventKind, NotificationChannel, Notifier};

fn settings(server: &FakeSmtp) -> NotifySettings {
    let mut s = fast_settings();
    let mut smtp = SmtpSettings::new(server.host(), server.port(), "Serin <serin@example.org>");
    smtp.starttls = StartTls::None;
    s.smtp = Some(smtp);
    s
}

fn email() -> NotificationChannel {
    channel(r#"{"type":"email","destination":"ops@example.org"}"#)
}

/// Queues a rolled-back event numbered `seq` for `ch` on `n`, and waits until it is handled.
async fn send(n: &ChannelNotifier, ch: &NotificationChannel, seq: u64) {
    n.notify(ch, &event("web-mail", seq, rolled_back()))
        .await
        .expect("queued");
    flush(n).await;
}

#[tokio::test]
async fn one_smtp_session_carries_a_channels_messages_until_it_idles() {
    let server = FakeSmtp::start(SmtpMode::Serve).await;
    let mut s = settings(&server);
    if let Some(smtp) = s.smtp.as_mut() {
        smtp.idle_timeout = Duration::from_millis(300);
    }
    let n = ChannelNotifier::new(s).expect("notifier");
    for seq in 0..3 {
        n.notify(&email(), &event("web-mail", seq, rolled_back()))
            .await
            .expect("queued");
    }
    flush(&n).await;
    send(&n, &email(), 3).await;
    assert_eq!(n.stats().delivered, 4, "{:?}", n.stats());
    assert_eq!(server.messages().len(), 4);
    assert_eq!(
        (server.connections(), server.quits()),
        (1, 0),
        "one session, still open between messages"
    );
    // Left idle, the session is ended politely; the next message opens another.
    server
        .wait_until("the idle session is closed", |s| s.quits() == 1)
        .await;
    send(&n, &email(), 4).await;
    assert_eq!((server.connections(), server.messages().len()), (2, 5));
    // Dropping the notifier ends the open session too.
    drop(n);
    server
        .wait_until("the session ends with the notifier", |s| s.quits() == 2)
        .await;
}

#[tokio::test]
async fn a_session_the_server_closed_is_replaced_without_a_failed_attempt() {
    let server = FakeSmtp::start(SmtpMode::HangUpAfterEachMessage).await;
    let n = ChannelNotifier::new(settings(&server)).expect("notifier");
    for seq in 0..2 {
        send(&n, &email(), seq).await;
    }
    let stats = n.stats();
    assert_eq!(
        (stats.delivered, stats.retries, stats.failed),
        (2, 0, 0),
        "{stats:?}"
    );
    assert_eq!((server.connections(), server.messages().len()), (2, 2));
}

#[tokio::test]
async fn a_server_that_never_answers_is_given_up_on_within_the_request_timeout() {
    let server = FakeSmtp::start(SmtpMode::Silent).await;
    let mut s = settings(&server);
    s.request_timeout = Duration::from_millis(300);
    s.retry.max_attempts = 2;
    let n = ChannelNotifier::new(s).expect("notifier");
    let started = tokio::time::Instant::now();
    send(&n, &email(), 0).await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let stats = n.stats();
    assert_eq!((stats.retries, stats.failed), (1, 1), "{stats:?}");
    assert_eq!(server.connections(), 2, "each attempt connects afresh");
}

#[tokio::test]
async fn a_server_without_the_required_starttls_is_refused_once_not_retried() {
    let server = FakeSmtp::start(SmtpMode::Serve).await;
    let mut s = settings(&server);
    s.retry.max_attempts = 3;
    if let Some(smtp) = s.smtp.as_mut() {
        smtp.starttls = StartTls::Required;
    }
    let n = ChannelNotifier::new(s).expect("notifier");
    send(&n, &email(), 0).await;
    let stats = n.stats();
    assert_eq!((stats.retries, stats.failed), (0, 1), "{stats:?}");
    assert_eq!(server.connections(), 1);
    assert!(server.messages().is_empty(), "nothing sent in clear text");
}

/// Settings that log in as `serin` with a password, STARTTLS as `starttls`.
fn with_login(server: &FakeSmtp, starttls: StartTls) -> NotifySettings {
    let mut s = settings(server);
    s.retry.max_attempts = 3;
    if let Some(smtp) = s.smtp.as_mut() {
        smtp.starttls = starttls;
        smtp.username = Some("serin".into());
        smtp.password = Some(serin_orchestrator::notify::Secret::new("smtp-pa55w0rd"));
    }
    s
}

#[tokio::test]
async fn opportunistic_starttls_never_sends_the_password_in_clear_text() {
    // The server offers a login but no STARTTLS, as when an attacker strips the offer.
    let server = FakeSmtp::start(SmtpMode::ServeWithLogin).await;
    let n = ChannelNotifier::new(with_login(&server, StartTls::Opportunistic)).expect("notifier");
    send(&n, &email(), 0).await;
    assert!(server.logins().is_empty(), "{:?}", server.logins());
    assert!(server.messages().is_empty());
    let stats = n.stats();
    assert_eq!(
        (stats.delivered, stats.retries, stats.failed),
        (0, 0, 1),
        "refused once, not retried: {stats:?}"
    );
    // Without a login, opportunistic still sends in clear text when it must.
    let mut s = with_login(&server, StartTls::Opportunistic);
    if let Some(smtp) = s.smtp.as_mut() {
        smtp.username = None;
        smtp.password = None;
    }
    let n = ChannelNotifier::new(s).expect("notifier");
    send(&n, &email(), 1).await;
    assert_eq!(n.stats().delivered, 1, "{:?}", n.stats());
}

#[tokio::test]
async fn starttls_none_logs_in_in_clear_text_as_chosen() {
    let server = FakeSmtp::start(SmtpMode::ServeWithLogin).await;
    let n = ChannelNotifier::new(with_login(&server, StartTls::None)).expect("notifier");
    send(&n, &email(), 0).await;
    assert_eq!(server.logins().len(), 1, "{:?}", server.logins());
    assert_eq!(n.stats().delivered, 1, "{:?}", n.stats());
}

#[tokio::test]
async fn a_refused_recipient_does_not_silence_the_others() {
    let server = FakeSmtp::start(SmtpMode::Serve).await;
    let n = ChannelNotifier::new(settings(&server)).expect("notifier");
    let ch = channel(
        r#"{"type":"email","destination":"ops@example.org, gone@example.org, sre@example.org"}"#,
    );
    send(&n, &ch, 0).await;
    assert_eq!(
        server.recipients(),
        vec![vec![
            "ops@example.org".to_owned(),
            "sre@example.org".to_owned()
        ]],
        "one message, to everyone but the stale address"
    );
    let stats = n.stats();
    assert_eq!(
        (stats.delivered, stats.partial, stats.retries, stats.failed),
        (1, 1, 0, 0),
        "{stats:?}"
    );
    // Every recipient refused: the message fails, once.
    let ch = channel(r#"{"type":"email","destination":"gone@example.org"}"#);
    send(&n, &ch, 1).await;
    let stats = n.stats();
    assert_eq!(
        (stats.delivered, stats.failed, stats.retries),
        (1, 1, 0),
        "{stats:?}"
    );
    assert_eq!(server.messages().len(), 1);
}

#[tokio::test]
async fn a_deferred_recipient_is_tried_again_alone_and_no_one_gets_it_twice() {
    let server = FakeSmtp::start(SmtpMode::Serve).await;
    let n = ChannelNotifier::new(settings(&server)).expect("notifier");
    let ch = channel(r#"{"type":"email","destination":"ops@example.org, busy@example.org"}"#);
    send(&n, &ch, 0).await;
    // The server defers `busy` every time: `ops` has the message once, and the message fails
    // after its last attempt, each retry for `busy` alone.
    assert_eq!(
        server.recipients(),
        vec![vec!["ops@example.org".to_owned()]],
        "{:?}",
        server.recipients()
    );
    let stats = n.stats();
    assert_eq!(
        (stats.delivered, stats.retries, stats.failed),
        (0, 3, 1),
        "{stats:?}"
    );
}

#[tokio::test]
async fn a_reason_with_bare_carriage_returns_goes_out_as_whole_lines() {
    // `<CR>.<CR><LF>` ends the message early on a server that takes a bare CR for a line
    // break (SMTP smuggling); RFC 5322 allows CR only before LF.
    let server = FakeSmtp::start(SmtpMode::Serve).await;
    let n = ChannelNotifier::new(settings(&server)).expect("notifier");
    let reason = "p99 2.1s \r.\r\nQUIT\rthen\0more".to_owned();
    n.notify(
        &email(),
        &event("web-mail", 0, EventKind::RolledBack { reason }),
    )
    .await
    .expect("queued");
    flush(&n).await;
    assert_eq!(n.stats().delivered, 1, "{:?}", n.stats());
    let messages = server.messages();
    let body = messages.first().expect("one message");
    assert!(!body.contains(['\r', '\0']), "{body:?}");
    assert!(
        body.contains("rolled back: p99 2.1s \n.\nQUIT\nthen"),
        "{body:?}"
    );
}
