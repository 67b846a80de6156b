//! Slack incoming webhooks: one message per event, with a plain-text fallback (`text`, shown
//! in notifications) and Block Kit `blocks`: a header naming the service and what happened,
//! the event's sentence, its evidence (judges' and triggers' readings) and a context line with
//! the deployment, the event's number and time, the environment and the namespace. The header and
//! the fallback name the environment before the service (`prod/web: rolled back`), so a
//! notification tells `prod` from `staging` before it is opened.

use serde_json::{Value, json};

use super::{NotifyContext, environment, event_type, evidence, namespace, scope};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::truncate;

/// Block Kit limits: header text 150 characters, other text objects (a section's, a context
/// element's) 3000; a message past them is refused whole (`invalid_blocks`).
const HEADER_MAX: usize = 150;
const SECTION_MAX: usize = 3_000;

/// Slack's mrkdwn reserves `&`, `<` and `>`.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `s` escaped and cut to `max` characters, never inside an entity: every `&` of the escaped
/// text starts one, and one cut short (`&am…`) would show as it is.
fn escape_within(s: &str, max: usize) -> String {
    let escaped = escape(s);
    let cut = truncate(&escaped, max);
    if cut == escaped {
        return cut;
    }
    let kept = cut.strip_suffix('…').unwrap_or(&cut);
    match kept.rfind('&') {
        Some(i) if !kept[i..].contains(';') => format!("{}…", &kept[..i]),
        _ => cut,
    }
}

fn headline(kind: &EventKind) -> &'static str {
    match kind {
        EventKind::Started { .. } => "deployment started",
        EventKind::PhaseChanged { .. } => "phase changed",
        EventKind::Completed { .. } => "deployment completed",
        EventKind::Failed { .. } => "deployment failed",
        EventKind::Blocked { .. } => "upgrade blocked",
        EventKind::Anomaly { .. } => "anomaly",
        EventKind::TriggerFired { .. } => "rollback trigger fired",
        EventKind::RollbackStarted { .. } => "rollback started",
        EventKind::RolledBack { .. } => "rolled back",
        EventKind::AnalysisResult { .. } => "canary analysis",
        EventKind::Paused => "deployment paused",
        EventKind::Resumed => "deployment resumed",
        EventKind::DeadlineReached { .. } => "deadline reached",
        EventKind::Validated { .. } => "upgrade validated",
        EventKind::BackupTaken { .. } => "backup taken",
        EventKind::BackupRestored { .. } => "backup restored",
        EventKind::TrackStarted { .. } => "new version started",
        EventKind::TrackReady { .. } => "new version ready",
        EventKind::WeightChanged { .. } => "traffic shifted",
        EventKind::UpgradeStep { .. } => "upgrade step",
    }
}

/// The message for `event` of a deployment running in `ctx`; `channel` is sent as Slack's
/// `channel` when the destination names one (honoured by legacy webhooks, ignored by app
/// webhooks bound to their channel).
pub(super) fn message(event: &Event, ctx: &NotifyContext, channel: Option<&str>) -> Value {
    let about = scope(ctx, &event.service);
    let title = truncate(&format!("{about}: {}", headline(&event.kind)), HEADER_MAX);
    let sentence = escape_within(&event.kind.to_string(), SECTION_MAX);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": title}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": sentence}}),
    ];
    let lines = evidence(&event.kind);
    if !lines.is_empty() {
        let heading = "*Evidence*\n";
        let text = lines
            .iter()
            .map(|l| format!("• {l}"))
            .collect::<Vec<_>>()
            .join("\n");
        let text = escape_within(&text, SECTION_MAX - heading.len());
        blocks.push(json!({
            "type": "section",
            "text": {"type": "mrkdwn", "text": format!("{heading}{text}")}
        }));
    }
    // The deployment and the event first, as before the environment was added (the header
    // already leads with it), then where the deployment runs.
    let mut context = vec![format!(
        "deployment `{}` · event #{} `{}` · {}",
        event.deployment,
        event.seq,
        event_type(&event.kind),
        event.at
    )];
    if let Some(env) = environment(ctx) {
        context.push(format!("environment `{env}`"));
    }
    if let Some(ns) = namespace(ctx) {
        context.push(format!("namespace `{ns}`"));
    }
    blocks.push(json!({
        "type": "context",
        "elements": [{
            "type": "mrkdwn",
            "text": escape_within(&context.join(" · "), SECTION_MAX),
        }],
    }));
    let mut msg = json!({
        "text": escape_within(&format!("{about}: {}", event.kind), SECTION_MAX),
        "blocks": blocks,
    });
    if let (Some(ch), Some(obj)) = (channel, msg.as_object_mut()) {
        obj.insert("channel".to_owned(), Value::String(ch.to_owned()));
    }
    msg
}

pub(super) fn body(event: &Event, ctx: &NotifyContext, channel: Option<&str>) -> Result<Vec<u8>> {
    serde_json::to_vec(&message(event, ctx, channel)).map_err(|e| {
        Error::backend(
            "notifier",
            "slack",
            format!("cannot encode the message: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::Timestamp;

    #[test]
    fn a_message_has_fallback_text_header_and_context() {
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 7,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RolledBack {
                reason: "error_rate <canary> 0.2 > 0.05 & rising".into(),
            },
        };
        let m = message(&e, &NotifyContext::default(), Some("#deploys"));
        assert_eq!(m["channel"], "#deploys");
        assert!(
            m["text"]
                .as_str()
                .expect("text")
                .starts_with("web: rolled back")
        );
        assert_eq!(m["blocks"][0]["type"], "header");
        assert_eq!(m["blocks"][0]["text"]["text"], "web: rolled back");
        let section = m["blocks"][1]["text"]["text"].as_str().expect("section");
        assert!(
            section.contains("&lt;canary&gt;") && section.contains("&amp;"),
            "{section}"
        );
        let ctx = m["blocks"][2]["elements"][0]["text"]
            .as_str()
            .expect("context");
        assert!(
            ctx.contains("`web-1`") && ctx.contains("#7") && ctx.contains("`rolledBack`"),
            "{ctx}"
        );
        assert!(
            message(&e, &NotifyContext::default(), None)
                .get("channel")
                .is_none()
        );
    }

    #[test]
    fn the_fallback_text_is_escaped_so_a_reason_cannot_mention_anyone() {
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 1,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::Failed {
                reason: "<!channel> p99 <canary> > 2s & rising".into(),
            },
        };
        let text = message(&e, &NotifyContext::default(), None)["text"]
            .as_str()
            .expect("text")
            .to_owned();
        assert!(!text.contains('<') && !text.contains('>'), "{text}");
        assert!(
            text.contains("&lt;!channel&gt;") && text.contains("&amp; rising"),
            "{text}"
        );
    }

    #[test]
    fn a_long_message_is_never_cut_inside_an_escaped_character() {
        // Every `&` of a mrkdwn text starts an entity: one cut short (`&am…`) shows as it is.
        let whole = |text: &str| {
            text.match_indices('&').all(|(i, _)| {
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|entity| text[i..].starts_with(entity))
            })
        };
        for at in 2_975..2_995 {
            let reason = format!("{}&<>{}", "x".repeat(at), "y".repeat(100));
            let e = Event {
                deployment: "web-1".into(),
                service: "web".into(),
                seq: 1,
                at: Timestamp::from_millis(1_700_000_000_000),
                kind: EventKind::RolledBack { reason },
            };
            let m = message(&e, &NotifyContext::default(), None);
            for text in [&m["text"], &m["blocks"][1]["text"]["text"]] {
                let text = text.as_str().expect("text");
                assert!(text.chars().count() <= SECTION_MAX, "{at}");
                assert!(
                    text.ends_with('…') && whole(text),
                    "{at}: {}",
                    &text[2_900..]
                );
            }
        }
    }

    #[test]
    fn a_long_context_line_stays_within_the_text_limit() {
        // Slack refuses a whole message (`invalid_blocks`) whose context text is too long.
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 1,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::Paused,
        };
        let ctx = NotifyContext::new()
            .with_environment("prod")
            .with_namespace(format!("shop&{}", "n".repeat(SECTION_MAX)));
        let m = message(&e, &ctx, None);
        let line = m["blocks"][2]["elements"][0]["text"]
            .as_str()
            .expect("context");
        assert!(line.chars().count() <= SECTION_MAX, "{}", line.len());
        assert!(
            line.contains("environment `prod` · namespace `shop&amp;nnn") && line.ends_with('…'),
            "{line}"
        );
    }

    #[test]
    fn the_environment_leads_the_header_and_fallback_and_is_in_the_context_line() {
        let e = Event {
            deployment: "web-1".into(),
            service: "web".into(),
            seq: 7,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind: EventKind::RolledBack {
                reason: "5xx".into(),
            },
        };
        let ctx = NotifyContext::new()
            .with_environment("prod<eu>")
            .with_namespace("shop");
        let m = message(&e, &ctx, None);
        assert_eq!(m["blocks"][0]["text"]["text"], "prod<eu>/web: rolled back");
        assert_eq!(m["text"], "prod&lt;eu&gt;/web: rolled back: 5xx");
        let ctx_line = m["blocks"][2]["elements"][0]["text"]
            .as_str()
            .expect("context");
        assert!(
            ctx_line.starts_with("deployment `web-1` · event #7 `rolledBack`")
                && ctx_line.ends_with(" · environment `prod&lt;eu&gt;` · namespace `shop`"),
            "{ctx_line}"
        );
        let bare = message(&e, &NotifyContext::new().with_namespace("shop"), None);
        assert_eq!(bare["blocks"][0]["text"]["text"], "web: rolled back");
        let ctx_line = bare["blocks"][2]["elements"][0]["text"]
            .as_str()
            .expect("context");
        assert!(
            ctx_line.starts_with("deployment `web-1`")
                && ctx_line.ends_with("Z · namespace `shop`"),
            "{ctx_line}"
        );
    }
}
