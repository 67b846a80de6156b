//! No secret (a webhook signing secret, a PagerDuty routing key, a Slack token, an SMTP
//! password) shows in a notifier's `Debug`, its log events, its errors or the bodies it sends.
//!
//! This test captures log events with a thread-local subscriber, so it runs alone in its own
//! binary: `tracing` caches each call site's interest when the site is first hit, and a test on
//! another thread hitting a site at the moment this one installs its subscriber can cache
//! "never", hiding the events this test must read.

use crate::notify_support;

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use notify_support::{
    Mode, ROUTING_KEY, Receiver, SECRET, SLACK_TOKEN, channel, env, event, fast_settings, flush,
    rolled_back, webhook,
};
use serin_orchestrator::Notifier;
use serin_orchestrator::notify::{ChannelNotifier, Secret, SmtpSettings};

/// Captures every `tracing` event (message and fields) as text.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<String>>);

struct Fields<'a>(&'a mut String);

impl tracing::field::Visit for Fields<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        let mut out = self.0.lock().expect("capture");
        span.record(&mut Fields(&mut out));
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, values: &tracing::span::Record<'_>) {
        values.record(&mut Fields(&mut self.0.lock().expect("capture")));
    }
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let mut out = self.0.lock().expect("capture");
        event.record(&mut Fields(&mut out));
        out.push('\n');
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[tokio::test]
async fn secrets_appear_in_no_debug_output_log_error_or_body() {
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let failing = Receiver::start(Mode::Answer(200), None, &[500; 10]).await;
    let slack_url = failing.url(&format!("/services/T/B/{SLACK_TOKEN}"));
    let mut settings = fast_settings();
    settings.retry.max_attempts = 2;
    settings.pagerduty_routing_key = Some(Secret::new(ROUTING_KEY));
    settings.slack_webhook_url = Some(Secret::new(slack_url));
    let mut smtp = SmtpSettings::new("127.0.0.1", 1, "serin@example.org");
    smtp.username = Some("serin".into());
    smtp.password = Some(Secret::new("smtp-pa55w0rd"));
    settings.smtp = Some(smtp);
    let secrets = [SECRET, ROUTING_KEY, SLACK_TOKEN, "smtp-pa55w0rd"];
    let n = ChannelNotifier::new(settings.clone())
        .expect("notifier")
        .with_env(env());
    let channels = [
        webhook(&failing.url("/hook")),
        channel(r##"{"type":"slack","destination":"#deploys"}"##),
        channel(&format!(
            r#"{{"type":"pagerduty","destination":"{}"}}"#,
            failing.url("/v2/enqueue")
        )),
        channel(r#"{"type":"email","destination":"ops@example.org"}"#),
        // A Slack URL written as the destination: logs and errors show only its host.
        channel(&format!(
            r#"{{"type":"slack","destination":"{}"}}"#,
            failing.url(&format!("/services/T/B/{SLACK_TOKEN}"))
        )),
    ];
    for ch in &channels {
        n.notify(ch, &event("web-1", 0, rolled_back()))
            .await
            .expect("queued");
    }
    flush(&n).await;
    // Six messages: PagerDuty's rollback is a trigger and the resolve of its warning.
    assert_eq!(n.stats().failed, 6, "{:?}", n.stats());
    // A missing secret is named by its variable.
    let missing =
        channel(r#"{"type":"webhook","destination":"http://127.0.0.1:9/","secretEnv":"NOT_SET"}"#);
    let err = n
        .notify(&missing, &event("web-1", 1, rolled_back()))
        .await
        .expect_err("no secret")
        .to_string();
    assert!(
        err.contains("secretEnv") && err.contains("NOT_SET"),
        "{err}"
    );

    let logs = capture.0.lock().expect("capture").clone();
    assert!(
        logs.contains("not delivered"),
        "the failures were logged: {logs}"
    );
    let debug = format!("{n:?} {settings:?} {:?}", n.settings());
    assert!(debug.contains("***"), "{debug}");
    for s in secrets {
        assert!(!logs.contains(s), "`{s}` in the logs:\n{logs}");
        assert!(!debug.contains(s), "`{s}` in Debug:\n{debug}");
        assert!(!err.contains(s), "`{s}` in an error: {err}");
    }
    // Bodies: only PagerDuty's carries its routing key, as its protocol requires.
    for r in failing.attempts() {
        let body = String::from_utf8_lossy(&r.body).into_owned();
        for s in secrets {
            let allowed = s == ROUTING_KEY && r.path == "/v2/enqueue";
            assert!(
                allowed || !body.contains(s),
                "`{s}` in the body to {}",
                r.path
            );
        }
    }
}

#[tokio::test]
async fn a_failing_channel_is_told_from_another_with_the_same_destination() {
    // One channel name in two Slack workspaces, each webhook URL in its own variable: the
    // failures of one must not read as the other's.
    let capture = Capture::default();
    let _guard = tracing::subscriber::set_default(capture.clone());
    let ok = Receiver::start(Mode::Answer(200), None, &[]).await;
    let revoked = Receiver::start(Mode::Answer(200), None, &[404]).await;
    let (ok_url, revoked_url) = (ok.url("/services/T/B/a"), revoked.url("/services/T/B/b"));
    let n = ChannelNotifier::new(fast_settings())
        .expect("notifier")
        .with_env(move |name| match name {
            "SLACK_TEAM_A" => Some(ok_url.clone()),
            "SLACK_TEAM_B" => Some(revoked_url.clone()),
            _ => None,
        });
    for var in ["SLACK_TEAM_A", "SLACK_TEAM_B"] {
        let ch = channel(&format!(
            r##"{{"type":"slack","destination":"#deploys","secretEnv":"{var}"}}"##
        ));
        n.notify(&ch, &event("web-1", 0, rolled_back()))
            .await
            .expect("queued");
    }
    flush(&n).await;
    assert_eq!((n.stats().delivered, n.stats().failed), (1, 1));
    let logs = capture.0.lock().expect("capture").clone();
    let failed: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("not delivered"))
        .collect();
    assert!(
        failed.len() == 1 && failed[0].contains("SLACK_TEAM_B"),
        "the failure names the channel that failed: {logs}"
    );
}
