//! E-mail through an SMTP server (lettre): one plain-text message per event, with STARTTLS
//! required, opportunistic or off ([`StartTls`]), and a login when the server wants one.
//! SMTP replies sort into retried (4xx, connection trouble) and not (5xx).

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::queue::Failure;
use super::settings::{Secret, SmtpSettings, StartTls};
use super::{event_type, evidence};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::truncate;

/// The SMTP client of one channel.
pub(super) type Transport = AsyncSmtpTransport<Tokio1Executor>;

/// The recipients in `dest`, comma-separated.
pub(super) fn recipients(field: &str, dest: &str) -> Result<Vec<Mailbox>> {
    let mut out = Vec::new();
    for part in dest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
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

/// The client for `smtp`, logging in with `password` (a channel's `secretEnv`, else the
/// settings') when a username is set.
pub(super) fn transport(
    smtp: &SmtpSettings,
    password: Option<Secret>,
    timeout: Duration,
) -> Result<Transport> {
    let params = || {
        TlsParameters::new(smtp.host.clone()).map_err(|e| {
            Error::invalid(
                "notifySettings.smtp.host",
                &smtp.host,
                format!("cannot set up TLS for it: {e}"),
            )
        })
    };
    let tls = match smtp.starttls {
        StartTls::Required => Tls::Required(params()?),
        StartTls::Opportunistic => Tls::Opportunistic(params()?),
        StartTls::None => Tls::None,
    };
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp.host.as_str())
        .port(smtp.port)
        .tls(tls)
        .timeout(Some(timeout));
    if let Some(user) = &smtp.username {
        let pw = password.map(|p| p.expose().to_owned()).unwrap_or_default();
        builder = builder.credentials(Credentials::new(user.clone(), pw));
    }
    Ok(builder.build())
}

/// The message for `event`: subject `[serin] {service}: {what happened}`, then the sentence,
/// its evidence, where it belongs, and the event as JSON for machines.
pub(super) fn message(from: &str, to: &[Mailbox], event: &Event) -> Result<Message> {
    let from: Mailbox = from.parse().map_err(|e| {
        Error::invalid(
            "notifySettings.smtp.from",
            from,
            format!("is not an e-mail address: {e}"),
        )
    })?;
    let subject = truncate(
        &format!("[serin] {}: {}", event.service, event.kind).replace(['\r', '\n'], " "),
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
    text.push_str(&format!(
        "\nService:    {}\nDeployment: {}\nEvent:      #{} ({})\nTime:       {}\n",
        event.service,
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
    let mut builder = Message::builder().from(from).subject(subject);
    for m in to {
        builder = builder.to(m.clone());
    }
    builder
        .header(ContentType::TEXT_PLAIN)
        .body(text)
        .map_err(|e| {
            Error::backend(
                "notifier",
                "email",
                format!("cannot build the message: {e}"),
            )
        })
}

pub(super) async fn send(transport: &Transport, message: &Message) -> Result<(), Failure> {
    match transport.send(message.clone()).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => {
            Err(Failure::Permanent(format!("the SMTP server refused: {e}")))
        }
        Err(e) => Err(Failure::Transient(format!("SMTP delivery failed: {e}"))),
    }
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
        let m = message("serin@example.org", &to, &e).expect("message");
        let raw = String::from_utf8(m.formatted()).expect("utf8");
        assert!(
            raw.contains("Subject: [serin] web: rollback started: error rate  Bcc: x@y"),
            "{raw}"
        );
        let headers = raw.split("\r\n\r\n").next().unwrap_or_default();
        assert!(!headers.contains("\r\nBcc:"), "{raw}");
        assert!(raw.contains("\"rollbackStarted\""), "{raw}");
    }
}
