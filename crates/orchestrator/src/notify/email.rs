//! E-mail through an SMTP server (lettre): one plain-text message per event, with STARTTLS
//! required, opportunistic or off, or TLS from the first byte ([`StartTls`]), and a login when
//! the server wants one.
//! SMTP replies sort into retried (4xx, connection trouble) and not (5xx, and what the client
//! itself refuses, such as a server without the STARTTLS that is required).
//!
//! Each e-mail channel has one [`Mailer`], built once (TLS settings, credentials) and kept by
//! the channel's lane, which holds one SMTP connection open across messages: a deployment's
//! events go out as several messages of one session, not one connection (and TLS handshake and
//! login) each. lettre pools connections only with its `pool` feature, which this crate does not
//! build with; a lane delivers one message at a time, so one connection is all a pool would
//! hold. Before it is reused the connection is checked with `NOOP` (a server may have closed
//! it meanwhile), and the lane closes it with `QUIT` once it has been idle for
//! [`SmtpSettings::idle_timeout`] (lettre's pool does both likewise).
//!
//! One message goes to all of a channel's recipients in one transaction, but a recipient the
//! server refuses does not silence the others (lettre's `send` gives the message up on the first
//! refused `RCPT`, so one stale address would fail every message of the channel): a recipient
//! refused for good (5xx) is left out, logged and counted
//! ([`DeliveryStats::partial`](super::DeliveryStats::partial)); one deferred (4xx) is tried again
//! on the next attempt, alone with the others deferred, so nobody gets the message twice; the
//! rest get it now. The message fails only when every recipient refused it, or some were still
//! deferred after the last attempt.

use std::sync::Mutex;
use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::transport::smtp::authentication::{Credentials, DEFAULT_MECHANISMS};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::commands::{Data, Mail, Rcpt, Rset};
use lettre::transport::smtp::extension::{ClientId, Extension, MailBodyParameter, MailParameter};
use lettre::{Address, Message};

use super::queue::Failure;
use super::settings::{Secret, SmtpSettings, StartTls};
use super::{NotifyContext, environment, event_type, evidence, namespace, scope};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::{lock, truncate};

/// The recipients in `dest`, comma-separated.
pub(super) fn recipients(field: &str, dest: &str) -> Result<Vec<Mailbox>> {
    let mut out = Vec::new();
    for part in split_list(dest)
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
    {
        let m = part
            .parse::<Mailbox>()
            .map_err(|e| Error::invalid(field, part, format!("is not an e-mail address: {e}")))?;
        out.push(m);
    }
    if out.is_empty() {
        return Err(Error::invalid(
            field,
            dest,
            "name at least one recipient (comma-separated addresses)",
        ));
    }
    Ok(out)
}

/// `list` cut at each comma outside a quoted string, so that a display name may hold one
/// (`"Ops, EU" <ops@example.org>`). lettre's `Mailboxes` parser would take such a list too,
/// but it drops what it cannot read without a word, and its error does not say which part.
fn split_list(list: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in list.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&list[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&list[start..]);
    parts
}

/// Where one message stands with its recipients, from one attempt to the next.
pub(super) struct Recipients {
    /// Those still to take it: all at first, then those a server deferred.
    pending: Vec<Address>,
    /// How many took it.
    reached: usize,
    /// Those refused for good, with the server's reason.
    refused: Vec<String>,
}

impl Recipients {
    /// Every recipient of `message`, none reached yet.
    pub(super) fn of(message: &Message) -> Mutex<Self> {
        Mutex::new(Recipients {
            pending: message.envelope().to().to_vec(),
            reached: 0,
            refused: Vec::new(),
        })
    }

    /// The recipients refused for good, each with the server's reason.
    pub(super) fn refused(&self) -> &[String] {
        &self.refused
    }
}

/// What one transaction did with each of its recipients.
struct Transaction {
    accepted: usize,
    refused: Vec<String>,
    deferred: Vec<(Address, String)>,
}

/// The SMTP client of one e-mail channel and the connection it keeps open.
pub(super) struct Mailer {
    host: String,
    port: u16,
    starttls: StartTls,
    /// Built once: setting up TLS reads the root certificates.
    tls: Option<TlsParameters>,
    hello: ClientId,
    /// The password the login uses, to tell when the channel's secret changed.
    password: Option<Secret>,
    credentials: Option<Credentials>,
    /// The bound on one message: connect, greeting, login, and the whole transaction.
    timeout: Duration,
    idle_timeout: Duration,
    /// The open session between messages; taken out while a message is sent.
    conn: Mutex<Option<AsyncSmtpConnection>>,
}

impl Mailer {
    /// The client for `smtp`, logging in with `password` (a channel's `secretEnv`, else the
    /// settings') when a username is set; `timeout` bounds each message.
    pub(super) fn new(
        smtp: &SmtpSettings,
        password: Option<Secret>,
        timeout: Duration,
    ) -> Result<Self> {
        let tls = match smtp.starttls {
            StartTls::Required | StartTls::Opportunistic | StartTls::Implicit => {
                Some(TlsParameters::new(smtp.host.clone()).map_err(|e| {
                    Error::invalid(
                        "notifySettings.smtp.host",
                        &smtp.host,
                        format!("cannot set up TLS for it: {e}"),
                    )
                })?)
            }
            StartTls::None => None,
        };
        let credentials = smtp.username.as_ref().map(|user| {
            let pw = password.as_ref().map(|p| p.expose().to_owned());
            Credentials::new(user.clone(), pw.unwrap_or_default())
        });
        Ok(Mailer {
            host: smtp.host.clone(),
            port: smtp.port,
            starttls: smtp.starttls,
            tls,
            hello: ClientId::default(),
            password,
            credentials,
            timeout,
            idle_timeout: smtp.idle_timeout,
            conn: Mutex::new(None),
        })
    }

    /// Whether this client logs in with `password`.
    pub(super) fn logs_in_with(&self, password: Option<&Secret>) -> bool {
        self.password.as_ref() == password
    }

    /// How long an unused connection stays open.
    pub(super) fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Whether a connection is open between messages.
    pub(super) fn is_open(&self) -> bool {
        lock(&self.conn).is_some()
    }

    /// A new session: TLS first if `implicit`, greeting, STARTTLS as configured, login.
    ///
    /// The login happens only on an encrypted session, unless STARTTLS is `none`: with
    /// `opportunistic`, a server that does not offer STARTTLS (or an attacker in the path who
    /// strips it from the server's answer) would otherwise get the password in clear text, and
    /// lettre's `auth` does not check. Such a session is refused, not retried (a stripped offer
    /// stays stripped): set STARTTLS `required` to insist on it, or `none` to log in in clear
    /// text on a network you trust.
    async fn connect(&self) -> std::result::Result<AsyncSmtpConnection, Failure> {
        let implicit = self
            .tls
            .clone()
            .filter(|_| self.starttls == StartTls::Implicit);
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &self.hello,
            implicit,
            None,
        )
        .await
        .map_err(|e| failure(&e))?;
        let upgraded = match (&self.tls, self.starttls) {
            (Some(tls), StartTls::Required) => conn.starttls(tls.clone(), &self.hello).await,
            (Some(tls), StartTls::Opportunistic) if conn.can_starttls() => {
                conn.starttls(tls.clone(), &self.hello).await
            }
            _ => Ok(()),
        }
        .map_err(|e| failure(&e));
        let logged_in = match (upgraded, &self.credentials) {
            (Ok(()), Some(_)) if !conn.is_encrypted() && self.starttls != StartTls::None => {
                Err(Failure::Permanent(format!(
                    "SMTP login refused: {}:{} did not offer STARTTLS, and notifySettings.smtp.starttls `opportunistic` does not send the password in clear text (set it to `required`, or to `none` for a trusted network)",
                    self.host, self.port
                )))
            }
            (Ok(()), Some(credentials)) => conn
                .auth(DEFAULT_MECHANISMS, credentials)
                .await
                .map(drop)
                .map_err(|e| failure(&e)),
            (outcome, _) => outcome,
        };
        match logged_in {
            Ok(()) => Ok(conn),
            Err(e) => {
                conn.abort().await;
                Err(e)
            }
        }
    }

    /// The open session if it still answers, else a new one.
    async fn session(&self) -> std::result::Result<AsyncSmtpConnection, Failure> {
        let kept = lock(&self.conn).take();
        if let Some(mut conn) = kept {
            if !conn.has_broken() && conn.test_connected().await {
                return Ok(conn);
            }
            conn.abort().await;
        }
        self.connect().await
    }

    /// Sends `message` to its `recipients` still pending within the timeout, keeping the
    /// session open for the next one: `Ok` once none is pending and some took it.
    pub(super) async fn send(
        &self,
        message: &Message,
        recipients: &Mutex<Recipients>,
    ) -> Result<(), Failure> {
        let pending = lock(recipients).pending.clone();
        let attempt = async {
            let mut conn = self.session().await?;
            let from = message.envelope().from();
            let done = transaction(&mut conn, from, &pending, &message.formatted()).await;
            // A refusal the client raised before the transaction began, or refused
            // recipients, leave the session usable; any other failure broke it off.
            if !conn.has_broken() {
                *lock(&self.conn) = Some(conn);
            }
            done
        };
        let done = match tokio::time::timeout(self.timeout, attempt).await {
            Ok(done) => done?,
            // The session was taken out for this message: dropping it closes it.
            Err(_) => {
                return Err(Failure::Transient(format!(
                    "SMTP delivery timed out after {:?}",
                    self.timeout
                )));
            }
        };
        let mut r = lock(recipients);
        r.reached += done.accepted;
        r.refused.extend(done.refused);
        r.pending = done.deferred.iter().map(|(a, _)| a.clone()).collect();
        if !done.deferred.is_empty() {
            let why: Vec<String> = done
                .deferred
                .iter()
                .map(|(a, why)| format!("{a}: {why}"))
                .collect();
            Err(Failure::Transient(format!(
                "the SMTP server deferred {} recipient(s): {}",
                why.len(),
                why.join("; ")
            )))
        } else if r.reached == 0 {
            Err(Failure::Permanent(format!(
                "the SMTP server refused every recipient: {}",
                r.refused.join("; ")
            )))
        } else {
            Ok(())
        }
    }

    /// Ends the open session, if any, with `QUIT`.
    pub(super) async fn close(&self) {
        let kept = lock(&self.conn).take();
        if let Some(mut conn) = kept {
            let _ = tokio::time::timeout(self.timeout, conn.quit()).await;
        }
    }
}

/// One mail transaction from `from` to `to`: each recipient the server accepts gets `body`;
/// those it refuses are left out rather than failing the message for all (see the module
/// docs). The mail parameters are lettre's `send`'s: `SMTPUTF8` for addresses beyond ASCII,
/// `BODY=8BITMIME` for such a body, refused when the server lacks them.
async fn transaction(
    conn: &mut AsyncSmtpConnection,
    from: Option<&Address>,
    to: &[Address],
    body: &[u8],
) -> Result<Transaction, Failure> {
    let impossible =
        |what: &str| Failure::Permanent(format!("SMTP delivery is impossible: {what}"));
    let mut options = Vec::new();
    if from
        .into_iter()
        .chain(to)
        .any(|a| !a.to_string().is_ascii())
    {
        if !conn.server_info().supports_feature(Extension::SmtpUtfEight) {
            return Err(impossible(
                "an address is not ASCII and the server does not support SMTPUTF8",
            ));
        }
        options.push(MailParameter::SmtpUtfEight);
    }
    if !body.is_ascii() {
        if !conn.server_info().supports_feature(Extension::EightBitMime) {
            return Err(impossible(
                "the message is not ASCII and the server does not support 8BITMIME",
            ));
        }
        options.push(MailParameter::Body(MailBodyParameter::EightBitMime));
    }
    let mut done = Transaction {
        accepted: 0,
        refused: Vec::new(),
        deferred: Vec::new(),
    };
    let broken = |e: lettre::transport::smtp::Error| failure(&e);
    if let Err(e) = conn.command(Mail::new(from.cloned(), options)).await {
        conn.abort().await;
        return Err(broken(e));
    }
    for rcpt in to {
        match conn.command(Rcpt::new(rcpt.clone(), Vec::new())).await {
            Ok(_) => done.accepted += 1,
            Err(e) if e.is_permanent() => done.refused.push(format!("{rcpt}: {e}")),
            Err(e) if e.is_transient() => done.deferred.push((rcpt.clone(), e.to_string())),
            Err(e) => {
                conn.abort().await;
                return Err(broken(e));
            }
        }
    }
    let sent = if done.accepted == 0 {
        conn.command(Rset).await.map(drop)
    } else {
        match conn.command(Data).await {
            Ok(_) => conn.message(body).await.map(drop),
            Err(e) => Err(e),
        }
    };
    match sent {
        Ok(()) => Ok(done),
        Err(e) => {
            conn.abort().await;
            Err(broken(e))
        }
    }
}

/// Sorts an SMTP failure: permanent replies (5xx) and what the client itself refused (the
/// required STARTTLS not offered, no login mechanism in common, a message the server cannot
/// take) will not pass on retry; transient replies (4xx) and connection trouble may.
fn failure(e: &lettre::transport::smtp::Error) -> Failure {
    if e.is_permanent() {
        Failure::Permanent(format!("the SMTP server refused: {e}"))
    } else if e.is_client() {
        Failure::Permanent(format!("SMTP delivery is impossible: {e}"))
    } else {
        Failure::Transient(format!("SMTP delivery failed: {e}"))
    }
}

/// The `Message-ID` of `event`, `<serin.{deployment}.{seq}@{domain of from}>`: the same for
/// every sending of the event (a retry whose answer was lost, the re-announcement after a
/// resume), so mail systems and readers can drop the copy, as webhook receivers do by the
/// CloudEvents `id`. Characters a message id cannot hold are written `=XX` (hex), so distinct
/// deployments keep distinct ids. A deployment written longer than [`MAX_ID_DEPLOYMENT`]
/// (a version with long build metadata) keeps its first characters followed by the SHA-256 of
/// the whole id: the header line stays within RFC 5322's 998 characters, which a server may
/// otherwise refuse the message for, and the id stays the same at every sending and distinct.
fn message_id(from: &Mailbox, event: &Event) -> String {
    let mut deployment = String::new();
    for b in event.deployment.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            deployment.push(char::from(b));
        } else {
            deployment.push_str(&format!("={b:02X}"));
        }
    }
    if deployment.len() > MAX_ID_DEPLOYMENT {
        use sha2::{Digest, Sha256};
        let digest = hex::encode(Sha256::digest(event.deployment.as_bytes()));
        // ASCII only: any byte is a character boundary.
        deployment.truncate(MAX_ID_DEPLOYMENT - digest.len() - 1);
        deployment = format!("{deployment}-{digest}");
    }
    format!("<serin.{deployment}.{}@{}>", event.seq, from.email.domain())
}

/// The most characters of a message id the deployment takes (see [`message_id`]): with the
/// seq and a domain name (at most 255), the `Message-ID` line stays well within 998.
const MAX_ID_DEPLOYMENT: usize = 200;

/// The message for `event` of a deployment running in `ctx`: subject
/// `[serin] {environment}/{service}: {what happened}` (`[serin] {service}: ...` when no
/// environment is named), then the sentence, its evidence, where it belongs (environment and
/// namespace included), and the event as JSON for machines.
pub(super) fn message(
    from: &str,
    to: &[Mailbox],
    ctx: &NotifyContext,
    event: &Event,
) -> Result<Message> {
    let from: Mailbox = from.parse().map_err(|e| {
        Error::invalid(
            "notifySettings.smtp.from",
            from,
            format!("is not an e-mail address: {e}"),
        )
    })?;
    let subject = truncate(
        &format!("[serin] {}: {}", scope(ctx, &event.service), event.kind)
            .replace(['\r', '\n'], " "),
        200,
    );
    let mut text = format!("{}\n", event.kind);
    let lines = evidence(&event.kind);
    if !lines.is_empty() {
        text.push_str("\nEvidence:\n");
        for l in lines {
            text.push_str(&format!("  - {l}\n"));
        }
    }
    text.push_str(&format!("\nService:    {}\n", event.service));
    if let Some(env) = environment(ctx) {
        text.push_str(&format!("Environment: {env}\n"));
    }
    if let Some(ns) = namespace(ctx) {
        text.push_str(&format!("Namespace:  {ns}\n"));
    }
    text.push_str(&format!(
        "Deployment: {}\nEvent:      #{} ({})\nTime:       {}\n",
        event.deployment,
        event.seq,
        event_type(&event.kind),
        event.at
    ));
    let json = serde_json::to_string_pretty(event).map_err(|e| {
        Error::backend("notifier", "email", format!("cannot encode the event: {e}"))
    })?;
    text.push_str("\n-- event (JSON) --\n");
    text.push_str(&json);
    text.push('\n');
    let id = message_id(&from, event);
    // RFC 3834: out-of-office replies and other auto-responders leave it unanswered.
    let auto_submitted = HeaderValue::new(
        HeaderName::new_from_ascii_str("Auto-Submitted"),
        "auto-generated".to_owned(),
    );
    let mut builder = Message::builder()
        .message_id(Some(id))
        .raw_header(auto_submitted)
        .from(from)
        .subject(subject);
    for m in to {
        builder = builder.to(m.clone());
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(body_text(&text))
        .map_err(|e| {
            Error::backend(
                "notifier",
                "email",
                format!("cannot build the message: {e}"),
            )
        })
}

/// `text` with line breaks as RFC 5322 allows them in a body: a CR only before an LF (lettre
/// writes each LF as CRLF), and no NUL. A reason's bare CR left in would let `\r.\r\n` end
/// the message early on a server that takes a bare CR for a line break, and the rest be read
/// as commands.
fn body_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .replace('\0', "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::EventKind;
    use serin_signals::Timestamp;

    #[test]
    fn recipients_are_checked_and_named() {
        assert_eq!(
            recipients("d", "a@example.org, Ops <ops@example.org>")
                .expect("two")
                .len(),
            2
        );
        let e = recipients("notificationChannels[0].destination", "a@example.org, nope")
            .expect_err("bad")
            .to_string();
        assert!(
            e.contains("notificationChannels[0].destination") && e.contains("nope"),
            "{e}"
        );
        assert!(recipients("d", " , ").is_err());
    }

    #[test]
    fn a_quoted_display_name_may_hold_a_comma() {
        let to = recipients(
            "d",
            r#""Ops, EU" <ops-eu@example.org>, "Say \"hi\", ops" <hi@example.org>,b@example.org"#,
        )
        .expect("three");
        let names: Vec<_> = to.iter().map(|m| m.name.as_deref()).collect();
        assert_eq!(names, [Some("Ops, EU"), Some("Say \"hi\", ops"), None]);
        assert_eq!(to[0].email.to_string(), "ops-eu@example.org");
        // An unclosed quote leaves no comma to split at: the whole is refused, and named.
        let e = recipients("d", r#""Ops, EU <a@example.org>, b@example.org"#)
            .expect_err("unclosed quote")
            .to_string();
        assert!(e.contains("Ops, EU"), "{e}");
    }

    #[tokio::test]
    async fn implicit_tls_speaks_tls_before_the_greeting() {
        use tokio::io::AsyncReadExt;
        // An SMTPS server waits for the client's TLS hello; an SMTP client would wait for the
        // server's greeting, and both would wait until the timeout.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut smtp = SmtpSettings::new(
            "localhost",
            listener.local_addr().unwrap().port(),
            "serin@example.org",
        );
        smtp.starttls = StartTls::Implicit;
        let mailer = Mailer::new(&smtp, None, Duration::from_secs(10)).expect("mailer");
        let first_byte = async {
            let (mut stream, _) = listener.accept().await?;
            let mut first = [0u8; 1];
            stream.read_exact(&mut first).await.map(|_| first[0])
        };
        let (first, refused) = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::join!(first_byte, mailer.connect())
        })
        .await
        .expect("one side waited for the other");
        // 22: a TLS handshake record, the client's hello; no TLS server answered it.
        assert_eq!(first.expect("a first byte"), 22);
        assert!(refused.is_err());
    }

    #[test]
    fn a_message_says_it_was_sent_automatically() {
        // RFC 3834: out-of-office replies and auto-responders do not answer it.
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 1,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RolledBack {
                reason: "5xx".into(),
            },
        };
        let to = recipients("d", "ops@example.org").expect("to");
        let m = message("serin@example.org", &to, &NotifyContext::default(), &e).expect("message");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(
            headers
                .split("\r\n")
                .any(|h| h == "Auto-Submitted: auto-generated"),
            "{raw}"
        );
    }

    #[test]
    fn a_message_carries_the_event() {
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 2,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RollbackStarted {
                reason: "error rate\r\nBcc: x@y".into(),
            },
        };
        let to = recipients("d", "ops@example.org").expect("to");
        let m = message("serin@example.org", &to, &NotifyContext::default(), &e).expect("message");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        assert!(
            raw.contains("Subject: [serin] web: rollback started: error rate  Bcc: x@y"),
            "{raw}"
        );
        let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!headers.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("\"rollbackStarted\""), "{raw}");
        // Every sending of the event carries the same id; other events and deployments
        // (however they are spelt) get their own.
        assert!(
            headers
                .split("\r\n")
                .any(|h| h == "Message-ID: <serin.web-1.2@example.org>"),
            "{raw}"
        );
        let again = String::from_utf8(
            message("serin@example.org", &to, &NotifyContext::default(), &e)
                .expect("again")
                .formatted(),
        )
        .expect("utf8");
        assert!(again.contains("Message-ID: <serin.web-1.2@example.org>"));
        let from: Mailbox = "serin@example.org".parse().expect("from");
        let id = |deployment: &str, seq| {
            message_id(
                &from,
                &Event {
                    deployment: deployment.into(),
                    seq,
                    ..e.clone()
                },
            )
        };
        assert_eq!(id("web 1\r\n", 0), "<serin.web=201=0D=0A.0@example.org>");
        assert_ne!(id("web.1", 0), id("web=2E1", 0));
        assert_ne!(id("web-1", 2), id("web-1", 3));
    }

    #[test]
    fn a_long_deployment_id_keeps_the_message_id_line_within_the_line_limit() {
        // A version with long build metadata (`+build.…`) makes a long deployment id, each of
        // its dots written `=2E` in the message id.
        let long = format!("web-1.2.0+{}-1700000000000", ["build"; 200].join("."));
        let e = Event {
            deployment: long.clone(),
            service: "web".into(),
            seq: 2,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RolledBack {
                reason: "5xx".into(),
            },
        };
        let to = recipients("d", "ops@example.org").expect("to");
        let m = message("serin@example.org", &to, &NotifyContext::default(), &e).expect("message");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
        // RFC 5322 §2.1.1: no line longer than 998 characters.
        for line in headers.split("\r\n") {
            assert!(line.len() <= 998, "{} characters: {line}", line.len());
        }
        let from: Mailbox = "serin@example.org".parse().expect("from");
        let id = |deployment: &str, seq| {
            message_id(
                &from,
                &Event {
                    deployment: deployment.into(),
                    seq,
                    ..e.clone()
                },
            )
        };
        // Still the same at every sending, and distinct for ids that differ only at the end.
        assert_eq!(id(&long, 2), id(&long, 2));
        assert_ne!(id(&long, 2), id(&format!("{long}-2"), 2));
        assert_ne!(id(&long, 2), id(&long, 3));
        assert!(id(&long, 2).starts_with("<serin.web-1=2E2=2E0=2Bbuild=2E"));
        // A short id is written out whole, as before.
        assert_eq!(id("web-1", 2), "<serin.web-1.2@example.org>");
    }

    #[test]
    fn the_subject_names_the_environment_and_the_body_the_namespace() {
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 2,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RolledBack {
                reason: "5xx".into(),
            },
        };
        let to = recipients("d", "ops@example.org").expect("to");
        let raw = |ctx: &NotifyContext| {
            let m = message("serin@example.org", &to, ctx, &e).expect("message");
            String::from_utf8(m.formatted()).expect("utf8")
        };
        let ctx = NotifyContext::new()
            .with_environment("prod\r\nBcc: x@y")
            .with_namespace("shop");
        let msg = raw(&ctx);
        assert!(
            msg.contains("Subject: [serin] prod  Bcc: x@y/web: rolled back: 5xx"),
            "{msg}"
        );
        assert!(
            msg.contains("Environment: prod") && msg.contains("Namespace:  shop\r\n"),
            "{msg}"
        );
        let headers = msg.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!headers.contains("\r\nBcc:"), "{msg}");
        let msg = raw(&NotifyContext::new().with_environment("staging"));
        assert!(
            msg.contains("Subject: [serin] staging/web: rolled back"),
            "{msg}"
        );
        assert!(!msg.contains("Namespace:"), "{msg}");
        let msg = raw(&NotifyContext::default());
        assert!(msg.contains("Subject: [serin] web: rolled back"), "{msg}");
        assert!(!msg.contains("Environment:"), "{msg}");
    }
}
