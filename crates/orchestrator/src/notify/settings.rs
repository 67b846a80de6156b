//! [`NotifySettings`]: how the channels deliver (queues, timeouts, retries) and the secrets
//! they use, kept apart from the deployment config, which is journalled and reported.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::error::{Error, Result};

/// A secret value (a signing secret, a routing key, a password, a tokenised URL), without
/// the whitespace around it: a line break left by the tool that wrote it is no part of it,
/// whether it was set in the settings or read from the environment.
///
/// `Debug` and `Display` print `***`, and it cannot be serialized, so a secret does not leak
/// through logs, events, errors or reports by accident; [`expose`](Self::expose) is the one
/// deliberate way to read it.
///
/// ```
/// use serin_orchestrator::notify::Secret;
///
/// let s = Secret::new("hunter2");
/// assert_eq!(format!("{s} {s:?}"), "*** ***");
/// assert_eq!(s.expose(), "hunter2");
/// assert_eq!(Secret::new("hunter2\n"), s);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`, trimmed.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        Secret(value.trim().to_owned())
    }

    /// The secret itself, for the protocol that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// What a full delivery queue gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Overflow {
    /// Drop the oldest queued message to make room: receivers learn the latest state (a
    /// rollback) rather than stale progress. The default.
    #[default]
    DropOldest,
    /// Refuse the new message: receivers see an unbroken prefix of the stream.
    DropNewest,
}

/// Retries of a delivery that failed in a way that may pass (a timeout, a refused
/// connection, a 5xx, 408 or 429 answer, a transient SMTP reply). Answers that will not change
/// on retry (other 4xx, a permanent SMTP reply) are not retried. A 503 whose `Retry-After`
/// (seconds or a date) asks for a longer wait than the backoff gets it, up to `maxBackoff` (see
/// [`wait`](RetryPolicy::wait)).
///
/// A 429 (too many requests) is throttling, not a failure of the message, and has a budget of
/// its own: such answers do not count against `maxAttempts`; the message waits what
/// `Retry-After` asks, or, when the receiver does not say (PagerDuty's Events API never does,
/// and asks for "a backoff of a few minutes"), `throttledBackoff` doubling from one 429 to the
/// next, and is given up once it has waited `throttledBudget` in all on throttling (see
/// [`throttled_wait`](RetryPolicy::throttled_wait)). Throttling comes with wide incidents,
/// which is when a rollback's page matters most: seconds of ordinary backoff would drop it.
/// A channel delivers in order, so its later messages wait behind a throttled one, as the
/// receiver asks of them too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry), 429 answers aside. Default 5.
    #[serde(default = "five")]
    pub max_attempts: u32,
    /// The wait before the first retry; each later wait doubles. Default `500ms`.
    #[serde(default = "half_second", with = "serin_signals::duration")]
    pub initial_backoff: Duration,
    /// The longest wait between attempts, 429 answers aside. Default `30s`.
    #[serde(default = "thirty_seconds", with = "serin_signals::duration")]
    pub max_backoff: Duration,
    /// The wait after a message's first 429 that names no `Retry-After`; it doubles on each
    /// further 429 of the message. Default `1m`.
    #[serde(default = "sixty_seconds", with = "serin_signals::duration")]
    pub throttled_backoff: Duration,
    /// How long in all a message may wait on 429 answers before it is given up (at least
    /// `throttledBackoff`, at most `1h`). Default `10m`.
    #[serde(default = "ten_minutes", with = "serin_signals::duration")]
    pub throttled_budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: five(),
            initial_backoff: half_second(),
            max_backoff: thirty_seconds(),
            throttled_backoff: sixty_seconds(),
            throttled_budget: ten_minutes(),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (from 1): `initialBackoff * 2^(attempt-1)`,
    /// at most `maxBackoff`. No jitter: each channel has one delivery task, so retries of
    /// many messages do not stampede a receiver.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }

    /// The wait after failed attempt `attempt` whose receiver asked (`Retry-After`) for
    /// `asked`: as long as it asks if that is longer than the [`backoff`](Self::backoff), but
    /// never longer than `maxBackoff`, the longest a message waits between attempts.
    pub fn wait(&self, attempt: u32, asked: Duration) -> Duration {
        asked.max(self.backoff(attempt)).min(self.max_backoff)
    }

    /// The wait after a message's `throttled`-th 429 (from 1), whose receiver asked
    /// (`Retry-After`) for `asked`, when the message has waited `waited` on 429s already:
    /// what it asked (at least `initialBackoff`), else `throttledBackoff * 2^(throttled-1)`;
    /// never past what is left of `throttledBudget`. `None` once the budget is spent: the
    /// message is given up.
    pub fn throttled_wait(
        &self,
        throttled: u32,
        asked: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        let left = self
            .throttled_budget
            .checked_sub(waited)
            .filter(|d| !d.is_zero())?;
        let wanted = match asked {
            Some(asked) => asked.max(self.initial_backoff),
            None => {
                let factor = 1u32
                    .checked_shl(throttled.saturating_sub(1))
                    .unwrap_or(u32::MAX);
                self.throttled_backoff
                    .checked_mul(factor)
                    .unwrap_or(self.throttled_budget)
            }
        };
        Some(wanted.min(left))
    }
}

/// Whether the SMTP connection upgrades to TLS with STARTTLS, or begins with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StartTls {
    /// Refuse to send unless the server offers STARTTLS. The default.
    #[default]
    Required,
    /// Upgrade when offered, send in clear text otherwise; but never log in in clear text: a
    /// channel with a `username` refuses a session without STARTTLS (an attacker in the path
    /// can strip the offer to read the password), so its messages fail until the server offers
    /// it, or STARTTLS is set to `none`.
    Opportunistic,
    /// Never upgrade (a relay on loopback or a trusted network); a login, if any, goes in
    /// clear text, as chosen.
    None,
    /// TLS from the first byte, no STARTTLS: SMTPS, on port 465. A login goes only over it.
    Implicit,
}

/// The SMTP server e-mail channels send through.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SmtpSettings {
    /// Host name (also the name checked in the server's certificate).
    pub host: String,
    /// Port. Default 587 (submission).
    #[serde(default = "submission")]
    pub port: u16,
    /// STARTTLS, or `implicit` TLS (port 465). Default `required`.
    #[serde(default)]
    pub starttls: StartTls,
    /// The sender, `Name <address>` or `address`.
    pub from: String,
    /// The user to log in as, if the server wants a login.
    #[serde(default)]
    pub username: Option<String>,
    /// The password (or a channel's `secretEnv`).
    #[serde(default)]
    pub password: Option<Secret>,
    /// How long a channel keeps its SMTP connection open without a message before it closes
    /// it: the events of a deployment then share one session (one handshake, one login)
    /// rather than each opening its own. Default `60s`, as lettre's connection pool.
    #[serde(default = "sixty_seconds", with = "serin_signals::duration")]
    pub idle_timeout: Duration,
}

impl SmtpSettings {
    /// A server at `host:port` sending as `from`, STARTTLS required, no login.
    pub fn new(host: impl Into<String>, port: u16, from: impl Into<String>) -> Self {
        SmtpSettings {
            host: host.into(),
            port,
            starttls: StartTls::Required,
            from: from.into(),
            username: None,
            password: None,
            idle_timeout: sixty_seconds(),
        }
    }
}

/// How [`ChannelNotifier`](super::ChannelNotifier) delivers, and the default secret of each
/// kind of channel (a channel's `secretEnv` takes precedence).
///
/// Deserialize it (camelCase, unknown fields rejected) or start from `Default`; the
/// notifier's constructor validates it and errors name `notifySettings.field`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifySettings {
    /// Messages each channel may hold while its receiver is slow. Default 256.
    #[serde(default = "capacity")]
    pub queue_capacity: usize,
    /// What a full queue drops. Default `dropOldest`.
    #[serde(default)]
    pub overflow: Overflow,
    /// The bound on one attempt (connect, send, answer). Default `10s`.
    #[serde(default = "ten_seconds", with = "serin_signals::duration")]
    pub request_timeout: Duration,
    /// Retries of failed attempts.
    #[serde(default)]
    pub retry: RetryPolicy,
    /// The CloudEvents `source` of webhook deliveries. Default `/serin/orchestrator`.
    #[serde(default = "source")]
    pub source: String,
    /// The signing secret of webhooks without `secretEnv`.
    #[serde(default)]
    pub webhook_secret: Option<Secret>,
    /// The incoming-webhook URL of Slack channels without `secretEnv` whose destination is a
    /// channel name (a destination that is itself a URL posts there).
    #[serde(default)]
    pub slack_webhook_url: Option<Secret>,
    /// The routing key of PagerDuty channels without `secretEnv`.
    #[serde(default)]
    pub pagerduty_routing_key: Option<Secret>,
    /// The Events API v2 endpoint. Default `https://events.pagerduty.com/v2/enqueue`.
    #[serde(default = "pagerduty_url")]
    pub pagerduty_events_url: String,
    /// The SMTP server of e-mail channels.
    #[serde(default)]
    pub smtp: Option<SmtpSettings>,
}

impl Default for NotifySettings {
    fn default() -> Self {
        NotifySettings {
            queue_capacity: capacity(),
            overflow: Overflow::default(),
            request_timeout: ten_seconds(),
            retry: RetryPolicy::default(),
            source: source(),
            webhook_secret: None,
            slack_webhook_url: None,
            pagerduty_routing_key: None,
            pagerduty_events_url: pagerduty_url(),
            smtp: None,
        }
    }
}

impl NotifySettings {
    /// Parses and validates JSON settings.
    pub fn from_json(text: &str) -> Result<Self> {
        let s: NotifySettings = serin_compat::catalog::from_str(text, serin_compat::Format::Json)
            .map_err(|e| {
            Error::invalid("notifySettings", "(json)", crate::config::parse_reason(e))
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks every field; errors name `notifySettings.field`, the value and the reason.
    pub fn validate(&self) -> Result<()> {
        if self.queue_capacity == 0 || self.queue_capacity > 1_000_000 {
            return Err(Error::invalid(
                "notifySettings.queueCapacity",
                self.queue_capacity,
                "must be between 1 and 1000000 messages",
            ));
        }
        if self.request_timeout.is_zero() {
            return Err(Error::invalid(
                "notifySettings.requestTimeout",
                "0s",
                "must be above zero",
            ));
        }
        let r = &self.retry;
        if r.max_attempts == 0 || r.max_attempts > 20 {
            return Err(Error::invalid(
                "notifySettings.retry.maxAttempts",
                r.max_attempts,
                "must be between 1 (no retry) and 20",
            ));
        }
        if r.initial_backoff.is_zero() {
            return Err(Error::invalid(
                "notifySettings.retry.initialBackoff",
                "0s",
                "must be above zero",
            ));
        }
        if r.max_backoff < r.initial_backoff {
            return Err(Error::invalid(
                "notifySettings.retry.maxBackoff",
                format!("{:?}", r.max_backoff),
                format!(
                    "must be at least retry.initialBackoff ({:?})",
                    r.initial_backoff
                ),
            ));
        }
        if r.throttled_backoff.is_zero() {
            return Err(Error::invalid(
                "notifySettings.retry.throttledBackoff",
                "0s",
                "must be above zero",
            ));
        }
        if r.throttled_budget < r.throttled_backoff || r.throttled_budget > MAX_THROTTLED_BUDGET {
            return Err(Error::invalid(
                "notifySettings.retry.throttledBudget",
                format!("{:?}", r.throttled_budget),
                format!(
                    "must be at least retry.throttledBackoff ({:?}) and at most 1h: a throttled message holds up its channel's later ones",
                    r.throttled_backoff
                ),
            ));
        }
        if self.source.trim().is_empty() {
            return Err(Error::invalid(
                "notifySettings.source",
                "",
                "must be a non-empty URI reference (CloudEvents `source`)",
            ));
        }
        super::http_url(
            "notifySettings.pagerdutyEventsUrl",
            &self.pagerduty_events_url,
        )?;
        // A blank secret would sign webhooks with an empty key, or fail only at delivery.
        let secrets = [
            ("notifySettings.webhookSecret", &self.webhook_secret),
            ("notifySettings.slackWebhookUrl", &self.slack_webhook_url),
            (
                "notifySettings.pagerdutyRoutingKey",
                &self.pagerduty_routing_key,
            ),
            (
                "notifySettings.smtp.password",
                self.smtp.as_ref().map_or(&None, |s| &s.password),
            ),
        ];
        for (field, secret) in secrets {
            if secret
                .as_ref()
                .is_some_and(|s| s.expose().trim().is_empty())
            {
                return Err(Error::invalid(
                    field,
                    "(blank)",
                    "must not be empty: leave it out instead",
                ));
            }
        }
        if let Some(url) = &self.slack_webhook_url {
            super::http_url("notifySettings.slackWebhookUrl", url.expose())?;
        }
        if let Some(smtp) = &self.smtp {
            if smtp.host.trim().is_empty() {
                return Err(Error::invalid(
                    "notifySettings.smtp.host",
                    "",
                    "must name the SMTP server",
                ));
            }
            check_smtp_host(&smtp.host)?;
            if smtp.port == 0 {
                return Err(Error::invalid(
                    "notifySettings.smtp.port",
                    0,
                    "must be a TCP port (1-65535)",
                ));
            }
            if smtp.port == SMTPS && smtp.starttls != StartTls::Implicit {
                return Err(Error::invalid(
                    "notifySettings.smtp.port",
                    SMTPS,
                    "is SMTPS, which speaks TLS from the first byte and never answers a STARTTLS session: set notifySettings.smtp.starttls to `implicit`",
                ));
            }
            smtp.from.parse::<lettre::message::Mailbox>().map_err(|e| {
                Error::invalid(
                    "notifySettings.smtp.from",
                    &smtp.from,
                    format!("is not an e-mail address: {e}"),
                )
            })?;
            if smtp.idle_timeout.is_zero() {
                return Err(Error::invalid(
                    "notifySettings.smtp.idleTimeout",
                    "0s",
                    "must be above zero",
                ));
            }
            if smtp.password.is_some() && smtp.username.is_none() {
                return Err(Error::invalid(
                    "notifySettings.smtp.username",
                    "(none)",
                    "a password is set: name the user it logs in as",
                ));
            }
        }
        Ok(())
    }
}

/// Refuses an SMTP host that no connection can reach: the client connects to it on `port` as
/// written, so a scheme, a path, a port or spaces around or inside it would fail every message
/// (and only when one is sent, under `starttls: none`, where no TLS name is checked up front).
fn check_smtp_host(host: &str) -> Result<()> {
    let field = "notifySettings.smtp.host";
    if host.parse::<std::net::Ipv6Addr>().is_ok() {
        return Ok(());
    }
    if let Some((name, port)) = host.rsplit_once(':')
        && !name.is_empty()
        && !name.contains([':', '/'])
        && !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(Error::invalid(
            field,
            host,
            format!(
                "holds a port: write the host alone ({name}) and the port in notifySettings.smtp.port"
            ),
        ));
    }
    if host.contains(|c: char| c.is_whitespace() || matches!(c, '/' | ':' | '@' | '?' | '#')) {
        return Err(Error::invalid(
            field,
            host,
            "must be a host name or an IP address alone: no scheme, path, user, port or spaces",
        ));
    }
    Ok(())
}

fn five() -> u32 {
    5
}

fn half_second() -> Duration {
    Duration::from_millis(500)
}

fn thirty_seconds() -> Duration {
    Duration::from_secs(30)
}

fn sixty_seconds() -> Duration {
    Duration::from_secs(60)
}

fn ten_minutes() -> Duration {
    Duration::from_secs(600)
}

/// The longest `retry.throttledBudget`.
const MAX_THROTTLED_BUDGET: Duration = Duration::from_secs(3_600);

fn ten_seconds() -> Duration {
    Duration::from_secs(10)
}

fn capacity() -> usize {
    256
}

/// The port of SMTP over implicit TLS (RFC 8314).
const SMTPS: u16 = 465;

fn submission() -> u16 {
    587
}

fn source() -> String {
    "/serin/orchestrator".to_owned()
}

fn pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrong_type_names_its_field() {
        let err = NotifySettings::from_json(r#"{"queueCapacity": "many"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("notifySettings `(json)`: queueCapacity: invalid type: string"),
            "{err}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let r = RetryPolicy {
            max_attempts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1_000),
            ..RetryPolicy::default()
        };
        let waits: Vec<u128> = (1..=6).map(|a| r.backoff(a).as_millis()).collect();
        assert_eq!(waits, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(r.backoff(u32::MAX), Duration::from_millis(1_000));
        // A receiver's Retry-After lengthens a wait, never shortens it, and stops at the cap.
        let ms = Duration::from_millis;
        assert_eq!(r.wait(1, ms(500)), ms(500));
        assert_eq!(r.wait(3, ms(50)), ms(400));
        assert_eq!(r.wait(1, Duration::from_secs(3_600)), ms(1_000));
    }

    #[test]
    fn throttling_waits_minutes_within_its_own_budget() {
        let r = RetryPolicy::default();
        let s = Duration::from_secs;
        // No Retry-After (PagerDuty): a minute, doubling, cut to what is left of the budget.
        let mut waited = Duration::ZERO;
        let mut waits = Vec::new();
        for n in 1.. {
            let Some(w) = r.throttled_wait(n, None, waited) else {
                break;
            };
            waits.push(w.as_secs());
            waited += w;
        }
        assert_eq!(waits, vec![60, 120, 240, 180]);
        assert_eq!(waited, s(600));
        // What the receiver asks for is honoured, past maxBackoff, within the budget.
        assert_eq!(
            r.throttled_wait(1, Some(s(90)), Duration::ZERO),
            Some(s(90))
        );
        assert_eq!(r.throttled_wait(3, Some(s(3_600)), s(100)), Some(s(500)));
        assert_eq!(
            r.throttled_wait(1, Some(Duration::ZERO), Duration::ZERO),
            Some(r.initial_backoff)
        );
        assert_eq!(r.throttled_wait(1, Some(s(1)), s(600)), None);
        assert_eq!(
            r.throttled_wait(u32::MAX, None, Duration::ZERO),
            Some(s(600))
        );
    }

    #[test]
    fn settings_parse_with_defaults_and_reject_unknown_fields() {
        let s = NotifySettings::from_json(
            r#"{"requestTimeout":"2s","retry":{"maxAttempts":3},"webhookSecret":"s3cr3t",
                "smtp":{"host":"127.0.0.1","port":2525,"starttls":"none","from":"serin@example.org"}}"#,
        )
        .expect("valid");
        assert_eq!(s.request_timeout, Duration::from_secs(2));
        assert_eq!(s.retry.max_attempts, 3);
        assert_eq!(s.retry.initial_backoff, Duration::from_millis(500));
        assert_eq!(s.smtp.as_ref().map(|m| m.starttls), Some(StartTls::None));
        assert_eq!(
            s.smtp.as_ref().map(|m| m.idle_timeout),
            Some(Duration::from_secs(60))
        );
        let idle =
            NotifySettings::from_json(r#"{"smtp":{"host":"h","from":"a@b.c","idleTimeout":"5s"}}"#)
                .expect("valid");
        assert_eq!(
            idle.smtp.map(|m| m.idle_timeout),
            Some(Duration::from_secs(5))
        );
        assert!(!format!("{s:?}").contains("s3cr3t"));
        let e = NotifySettings::from_json(r#"{"queueCapacity":1,"oops":true}"#)
            .expect_err("unknown field")
            .to_string();
        assert!(e.contains("oops"), "{e}");
    }

    #[test]
    fn blank_secrets_and_a_bad_slack_url_are_refused_on_load() {
        let cases = [
            (r#"{"webhookSecret":""}"#, "notifySettings.webhookSecret"),
            (
                r#"{"pagerdutyRoutingKey":"  "}"#,
                "notifySettings.pagerdutyRoutingKey",
            ),
            (
                r#"{"slackWebhookUrl":""}"#,
                "notifySettings.slackWebhookUrl",
            ),
            (
                r#"{"slackWebhookUrl":"hooks.example/T/B/tok3n"}"#,
                "notifySettings.slackWebhookUrl",
            ),
            (
                r#"{"smtp":{"host":"h","from":"a@b.c","username":"u","password":""}}"#,
                "notifySettings.smtp.password",
            ),
        ];
        for (json, needle) in cases {
            let e = NotifySettings::from_json(json).expect_err(json).to_string();
            assert!(e.contains(needle), "{json}: `{e}`");
            assert!(!e.contains("tok3n"), "{e}");
        }
    }

    #[test]
    fn secrets_are_trimmed_as_those_read_from_the_environment() {
        let s = NotifySettings::from_json(
            r#"{"webhookSecret":" s3cr3t\n","pagerdutyRoutingKey":"\tk3y ",
                "smtp":{"host":"h","from":"a@b.c","username":"u","password":"pw\r\n"}}"#,
        )
        .expect("valid");
        assert_eq!(
            s.webhook_secret.as_ref().map(Secret::expose),
            Some("s3cr3t")
        );
        assert_eq!(
            s.pagerduty_routing_key.as_ref().map(Secret::expose),
            Some("k3y")
        );
        let password = s.smtp.as_ref().and_then(|m| m.password.as_ref());
        assert_eq!(password.map(Secret::expose), Some("pw"));
        assert_eq!(Secret::new(" hunter2\n").expose(), "hunter2");
    }

    #[test]
    fn smtps_on_port_465_takes_implicit_tls() {
        let s = NotifySettings::from_json(
            r#"{"smtp":{"host":"h","port":465,"starttls":"implicit","from":"a@b.c"}}"#,
        )
        .expect("valid");
        assert_eq!(s.smtp.map(|m| m.starttls), Some(StartTls::Implicit));
        // STARTTLS against a port that speaks TLS first would only ever time out.
        for mode in ["required", "opportunistic", "none"] {
            let json = format!(
                r#"{{"smtp":{{"host":"h","port":465,"starttls":"{mode}","from":"a@b.c"}}}}"#
            );
            let e = NotifySettings::from_json(&json)
                .expect_err(mode)
                .to_string();
            assert!(
                e.contains("notifySettings.smtp.port")
                    && e.contains("465")
                    && e.contains("implicit"),
                "{e}"
            );
        }
    }

    #[test]
    fn an_smtp_host_with_a_scheme_a_port_or_spaces_is_refused() {
        // The client connects to `host` on `port` as written: any of these fails every message.
        for (host, reason) in [
            ("smtp.example.org:587", "notifySettings.smtp.port"),
            ("smtp://smtp.example.org", "a host name or an IP address"),
            ("smtp.example.org/", "a host name or an IP address"),
            (" smtp.example.org", "a host name or an IP address"),
            ("smtp example org", "a host name or an IP address"),
        ] {
            let json =
                format!(r#"{{"smtp":{{"host":"{host}","starttls":"none","from":"a@b.c"}}}}"#);
            let e = NotifySettings::from_json(&json)
                .expect_err(host)
                .to_string();
            assert!(
                e.contains("notifySettings.smtp.host") && e.contains(host) && e.contains(reason),
                "{host}: {e}"
            );
        }
        for host in ["smtp.example.org", "localhost", "127.0.0.1", "::1"] {
            let json =
                format!(r#"{{"smtp":{{"host":"{host}","starttls":"none","from":"a@b.c"}}}}"#);
            NotifySettings::from_json(&json).expect(host);
        }
    }

    #[test]
    fn bad_settings_name_the_path() {
        let cases = [
            (r#"{"queueCapacity":0}"#, "notifySettings.queueCapacity"),
            (r#"{"requestTimeout":0}"#, "notifySettings.requestTimeout"),
            (
                r#"{"retry":{"maxAttempts":0}}"#,
                "notifySettings.retry.maxAttempts",
            ),
            (
                r#"{"retry":{"initialBackoff":"2s","maxBackoff":"1s"}}"#,
                "notifySettings.retry.maxBackoff",
            ),
            (
                r#"{"retry":{"throttledBackoff":0}}"#,
                "notifySettings.retry.throttledBackoff",
            ),
            (
                r#"{"retry":{"throttledBackoff":"2m","throttledBudget":"1m"}}"#,
                "notifySettings.retry.throttledBudget",
            ),
            (
                r#"{"retry":{"throttledBudget":"2h"}}"#,
                "notifySettings.retry.throttledBudget",
            ),
            (r#"{"source":" "}"#, "notifySettings.source"),
            (
                r#"{"pagerdutyEventsUrl":"ftp://x"}"#,
                "notifySettings.pagerdutyEventsUrl",
            ),
            (
                r#"{"smtp":{"host":"","from":"a@b.c"}}"#,
                "notifySettings.smtp.host",
            ),
            (
                r#"{"smtp":{"host":"h","from":"not an address"}}"#,
                "notifySettings.smtp.from",
            ),
            (
                r#"{"smtp":{"host":"h","from":"a@b.c","password":"pw"}}"#,
                "notifySettings.smtp.username",
            ),
            (
                r#"{"smtp":{"host":"h","from":"a@b.c","idleTimeout":0}}"#,
                "notifySettings.smtp.idleTimeout",
            ),
        ];
        for (json, needle) in cases {
            let e = NotifySettings::from_json(json).expect_err(json).to_string();
            assert!(e.contains(needle), "{json}: `{e}`");
            assert!(!e.contains("pw`"), "{e}");
        }
    }
}
