//! Signed webhooks: a CloudEvents 1.0 envelope (structured JSON mode) with the [`Event`] as
//! `data`, signed with HMAC-SHA256 so the receiver knows it came from us and was not replayed.
//!
//! Each attempt sends two headers:
//! - [`TIMESTAMP_HEADER`] (`X-Serin-Timestamp`): the send time, whole seconds since the Unix
//!   epoch (a retry is signed afresh);
//! - [`SIGNATURE_HEADER`] (`X-Serin-Signature`): `sha256=` and the lowercase hex HMAC-SHA256,
//!   keyed by the shared secret, of `{timestamp}.{body}`.
//!
//! A receiver recomputes the HMAC over the raw body and rejects timestamps too far from its
//! own clock ([`verify_signature`]); it de-duplicates by the CloudEvents `id`
//! (`{deployment}-{seq}`), since a delivery whose answer was lost is sent again.
//!
//! Where the deployment runs travels as CloudEvents extension attributes, beside the event
//! rather than in it, so a broker or receiver can route and filter on them without reading
//! `data`: [`ENVIRONMENT_ATTRIBUTE`] (`serinenvironment`) and [`NAMESPACE_ATTRIBUTE`]
//! (`serinnamespace`), strings, each present only when the deployment's config names it.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::json;
use serin_signals::Timestamp;
use sha2::Sha256;

use super::NotifyContext;
use super::queue::{Failure, classify};
use super::settings::Secret;
use crate::error::{Error, Result};
use crate::event::Event;

/// The header carrying the signature: `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Serin-Signature";

/// The header carrying the signing time, in seconds since the Unix epoch.
pub const TIMESTAMP_HEADER: &str = "X-Serin-Timestamp";

/// The CloudEvents extension attribute naming the deployment's environment (`prod`).
/// CloudEvents attribute names are lowercase letters and digits only, hence no separator.
pub const ENVIRONMENT_ATTRIBUTE: &str = "serinenvironment";

/// The CloudEvents extension attribute naming the deployment's namespace.
pub const NAMESPACE_ATTRIBUTE: &str = "serinnamespace";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], timestamp: &str, body: &[u8]) -> Result<HmacSha256> {
    // HMAC takes keys of any length, so this only fails if the hash ever changes.
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|e| {
        Error::invalid(
            "webhook secret",
            "***",
            format!("cannot key HMAC-SHA256: {e}"),
        )
    })?;
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

/// The [`SIGNATURE_HEADER`] value for `body` sent at `timestamp` (seconds since the epoch).
///
/// ```
/// use serin_orchestrator::notify::signature;
///
/// let sig = signature(b"secret", 1_700_000_000, br#"{"id":"web-1"}"#)?;
/// assert!(sig.starts_with("sha256=") && sig.len() == 7 + 64);
/// # Ok::<(), serin_orchestrator::Error>(())
/// ```
pub fn signature(secret: &[u8], timestamp: u64, body: &[u8]) -> Result<String> {
    let tag = mac(secret, &timestamp.to_string(), body)?
        .finalize()
        .into_bytes();
    Ok(format!("sha256={}", hex::encode(tag)))
}

/// Checks a delivery as a receiver should: the [`TIMESTAMP_HEADER`] value `timestamp` must be
/// within `tolerance` of `now` (either side), and the [`SIGNATURE_HEADER`] value `header` must be
/// the HMAC-SHA256 under `secret` of `{timestamp}.{body}` (compared in constant time).
///
/// ```
/// use std::time::Duration;
/// use serin_orchestrator::notify::{signature, verify_signature};
/// use serin_signals::Timestamp;
///
/// let body = br#"{"specversion":"1.0"}"#;
/// let header = signature(b"secret", 1_700_000_000, body)?;
/// let now = Timestamp::from_millis(1_700_000_030_000);
/// let tolerance = Duration::from_secs(300);
/// assert!(verify_signature(b"secret", "1700000000", body, &header, now, tolerance).is_ok());
/// assert!(verify_signature(b"wrong", "1700000000", body, &header, now, tolerance).is_err());
/// let much_later = Timestamp::from_millis(1_700_000_900_000);
/// assert!(verify_signature(b"secret", "1700000000", body, &header, much_later, tolerance).is_err());
/// # Ok::<(), serin_orchestrator::Error>(())
/// ```
pub fn verify_signature(
    secret: &[u8],
    timestamp: &str,
    body: &[u8],
    header: &str,
    now: Timestamp,
    tolerance: Duration,
) -> Result<()> {
    let ts = timestamp.trim();
    let secs: u64 = ts.parse().map_err(|_| {
        Error::invalid(
            TIMESTAMP_HEADER,
            ts,
            "must be whole seconds since the Unix epoch",
        )
    })?;
    let sent = Timestamp::from_millis(secs.saturating_mul(1_000));
    let skew = now
        .saturating_duration_since(sent)
        .max(sent.saturating_duration_since(now));
    if skew > tolerance {
        return Err(Error::invalid(
            TIMESTAMP_HEADER,
            ts,
            format!(
                "is {}s from now, beyond the {}s tolerance: a replay, or clocks out of step",
                skew.as_secs(),
                tolerance.as_secs()
            ),
        ));
    }
    let hex_tag = header.trim().strip_prefix("sha256=").ok_or_else(|| {
        Error::invalid(
            SIGNATURE_HEADER,
            header.trim(),
            "must be `sha256=` followed by the hex HMAC-SHA256",
        )
    })?;
    let tag = hex::decode(hex_tag)
        .map_err(|e| Error::invalid(SIGNATURE_HEADER, header.trim(), format!("is not hex: {e}")))?;
    mac(secret, ts, body)?.verify_slice(&tag).map_err(|_| {
        Error::invalid(
            SIGNATURE_HEADER,
            header.trim(),
            "does not match the body and timestamp under the shared secret",
        )
    })
}

/// The CloudEvents 1.0 envelope of `event` (structured mode): `id` is `{deployment}-{seq}`,
/// `type` is `dev.serin.deployment.{eventType}`, `subject` the deployment, `time` the event's
/// time, `data` the event itself. No extension attributes: [`cloud_event_in`] adds where the
/// deployment runs.
pub fn cloud_event(source: &str, event: &Event) -> serde_json::Value {
    cloud_event_in(source, &NotifyContext::default(), event)
}

/// [`cloud_event`] of a deployment running in `ctx`, with the extension attributes
/// [`ENVIRONMENT_ATTRIBUTE`] and [`NAMESPACE_ATTRIBUTE`] for what `ctx` names: what the
/// orchestrator's webhooks send.
///
/// ```
/// use serin_orchestrator::NotifyContext;
/// use serin_orchestrator::notify::cloud_event_in;
/// # use serin_orchestrator::{Event, EventKind};
/// # use serin_signals::Timestamp;
/// # let event = Event { deployment: "web-1".into(), service: "web".into(), seq: 0,
/// #     at: Timestamp::from_millis(0), kind: EventKind::Paused };
///
/// let ctx = NotifyContext::new().with_environment("prod");
/// let ce = cloud_event_in("/serin/orchestrator", &ctx, &event);
/// assert_eq!(ce["serinenvironment"], "prod");
/// assert!(ce.get("serinnamespace").is_none());
/// ```
pub fn cloud_event_in(source: &str, ctx: &NotifyContext, event: &Event) -> serde_json::Value {
    let mut ce = json!({
        "specversion": "1.0",
        "id": format!("{}-{}", event.deployment, event.seq),
        "source": source,
        "type": format!("dev.serin.deployment.{}", super::event_type(&event.kind)),
        "subject": event.deployment,
        "time": event.at.to_string(),
        "datacontenttype": "application/json",
        "data": event,
    });
    if let Some(obj) = ce.as_object_mut() {
        for (name, value) in [
            (ENVIRONMENT_ATTRIBUTE, super::environment(ctx)),
            (NAMESPACE_ATTRIBUTE, super::namespace(ctx)),
        ] {
            if let Some(v) = value {
                obj.insert(name.to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
    }
    ce
}

pub(super) fn body(source: &str, ctx: &NotifyContext, event: &Event) -> Result<Vec<u8>> {
    serde_json::to_vec(&cloud_event_in(source, ctx, event)).map_err(|e| {
        Error::backend(
            "notifier",
            "webhook",
            format!("cannot encode the event: {e}"),
        )
    })
}

pub(super) async fn send(
    http: &reqwest::Client,
    url: &reqwest::Url,
    secret: &Secret,
    body: &[u8],
    now: Timestamp,
) -> Result<(), Failure> {
    let secs = now.as_millis() / 1_000;
    let sig = signature(secret.expose().as_bytes(), secs, body)
        .map_err(|e| Failure::Permanent(e.to_string()))?;
    let req = http
        .post(url.clone())
        .header(
            reqwest::header::CONTENT_TYPE,
            "application/cloudevents+json; charset=utf-8",
        )
        .header(TIMESTAMP_HEADER, secs.to_string())
        .header(SIGNATURE_HEADER, sig)
        .body(body.to_vec());
    classify(req.send().await, now).await
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp::from_millis(1_700_000_000_000);

    #[test]
    fn a_signature_verifies_and_any_change_breaks_it() {
        let body = br#"{"a":1}"#;
        let sig = signature(b"k", 1_700_000_000, body).expect("sign");
        let tol = Duration::from_secs(300);
        verify_signature(b"k", "1700000000", body, &sig, NOW, tol).expect("valid");
        for (secret, ts, body, header, needle) in [
            (
                &b"x"[..],
                "1700000000",
                &body[..],
                sig.as_str(),
                "does not match",
            ),
            (b"k", "1700000001", body, &sig, "does not match"),
            (b"k", "1700000000", br#"{"a":2}"#, &sig, "does not match"),
            (b"k", "1700000000", body, "md5=00", "sha256="),
            (b"k", "1700000000", body, "sha256=zz", "not hex"),
            (b"k", "yesterday", body, &sig, TIMESTAMP_HEADER),
            (b"k", "1699999000", body, &sig, "tolerance"),
            (b"k", "1700001000", body, &sig, "tolerance"),
        ] {
            let e = verify_signature(secret, ts, body, header, NOW, tol)
                .expect_err(ts)
                .to_string();
            assert!(e.contains(needle), "{e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn a_signature_verifies_exactly_its_secret_timestamp_and_body(
            secret in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..80),
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
            ts in 0u64..4_000_000_000,
            flip in proptest::prelude::any::<proptest::sample::Index>(),
        ) {
            let tol = Duration::from_secs(300);
            let now = Timestamp::from_millis(ts * 1_000);
            let sig = signature(&secret, ts, &body).expect("sign");
            proptest::prop_assert!(verify_signature(&secret, &ts.to_string(), &body, &sig, now, tol).is_ok());
            if !body.is_empty() {
                let mut changed = body.clone();
                let i = flip.index(changed.len());
                if let Some(b) = changed.get_mut(i) {
                    *b ^= 0x01;
                }
                proptest::prop_assert!(verify_signature(&secret, &ts.to_string(), &changed, &sig, now, tol).is_err());
            }
            let mut other = secret.clone();
            other.push(0x2a);
            proptest::prop_assert!(verify_signature(&other, &ts.to_string(), &body, &sig, now, tol).is_err());
        }
    }

    #[test]
    fn the_signature_is_the_hmac_of_timestamp_dot_body() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let sig = signature(b"Jefe", 0, b"what do ya want for nothing?").expect("sign");
        assert_ne!(
            sig,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut m = HmacSha256::new_from_slice(b"Jefe").expect("key");
        m.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(m.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        let mut m = HmacSha256::new_from_slice(b"Jefe").expect("key");
        m.update(b"0.what do ya want for nothing?");
        assert_eq!(
            sig,
            format!("sha256={}", hex::encode(m.finalize().into_bytes()))
        );
    }

    #[test]
    fn the_environment_and_namespace_are_cloudevents_extension_attributes() {
        // CloudEvents: extension names are lowercase letters and digits, at most 20 of them.
        for name in [ENVIRONMENT_ATTRIBUTE, NAMESPACE_ATTRIBUTE] {
            assert!(
                name.len() <= 20
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
                "{name}"
            );
        }
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 4,
            at: NOW,
            kind: crate::event::EventKind::Paused,
        };
        let ctx = NotifyContext::new()
            .with_environment("prod")
            .with_namespace("shop");
        let body = body("/serin/orchestrator", &ctx, &e).expect("body");
        let ce: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(ce["serinenvironment"], "prod");
        assert_eq!(ce["serinnamespace"], "shop");
        assert_eq!(ce["id"], "web-1-4");
        // The event itself is unchanged: the context is beside it, not in it.
        assert_eq!(
            serde_json::from_value::<Event>(ce["data"].clone()).expect("event"),
            e
        );
        // Named nowhere (or blank), the attributes are absent, not empty.
        for ctx in [
            NotifyContext::default(),
            NotifyContext::new()
                .with_environment(" ")
                .with_namespace(""),
        ] {
            let ce = cloud_event_in("/serin/orchestrator", &ctx, &e);
            let obj = ce.as_object().expect("object");
            assert!(
                !obj.contains_key(ENVIRONMENT_ATTRIBUTE) && !obj.contains_key(NAMESPACE_ATTRIBUTE),
                "{ce}"
            );
            assert_eq!(ce, cloud_event("/serin/orchestrator", &e));
        }
    }
}
