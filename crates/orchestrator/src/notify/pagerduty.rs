//! PagerDuty Events API v2: a deployment's incidents. Rollbacks, failures and anomalies
//! `trigger` an alert; the deployment's end `resolve`s what it no longer needs. Starts and
//! phase changes page nobody and are not sent.
//!
//! | event | `event_action` | `payload.severity` | `dedup_key` |
//! |---|---|---|---|
//! | `failed` | `trigger` (and `resolve` the warning) | `critical` | `serin/{id}/critical` |
//! | `blocked` | `trigger` (and `resolve` the warning) | `error` | `serin/{id}` |
//! | `rollbackStarted`, `triggerFired` (a trigger asking for a rollback) | `trigger` | `error` | `serin/{id}` |
//! | `rolledBack` | `trigger` (and `resolve` the warning) | `error` | `serin/{id}` |
//! | `anomaly` | `trigger` | its own severity: `critical`, `error`, else `warning` (`warning`, and a trigger's `warn` or `hold`) | by its severity, as above; a warning's is `serin/{id}/warning` |
//! | `anomaly` of severity `info` | not sent | — | — |
//! | `completed` | `resolve` | — | all three |
//!
//! Each severity has its own alert (its own `dedup_key`), because PagerDuty folds a `trigger`
//! on an open alert's key into that alert as a log entry: the alert keeps the severity,
//! urgency and summary of its first event, and once acknowledged it notifies nobody again. With
//! one key per deployment, an early warning would open a low-urgency alert and the rollback
//! that follows, or a failure to roll back, would only add a line to it. So a warning opens
//! `serin/{id}/warning`, a rollback `serin/{id}`, and a failure, which leaves traffic where it
//! should not be (a rollback whose switch back failed, say), escalates to a new critical alert,
//! `serin/{id}/critical`, that pages even when the rollback's was acknowledged. Repeats of one
//! severity still fold into one alert. When the deployment ends, its warning is moot: a
//! rollback or failure resolves it (the alert that says how it ended stays open for a person),
//! and completion resolves all three (resolving a key that was never opened does nothing).
//! A channel is sent only the events it takes, resolves included, so one that takes
//! `anomaly` must take `completed`, `rollback` and `failed` too (or every event): a config
//! that leaves one out is refused when it loads, since it would leave alerts open.
//! Each body is one message on the channel's queue, counted in
//! [`DeliveryStats`](super::DeliveryStats) on its own.
//!
//! An `info` anomaly (an observation the canary could not use, say) pages nobody: the Events
//! API's `trigger` is for a problem someone must look at, and every trigger opens an alert (or
//! joins it), which notifies the on-call at the service's urgency whatever its `severity`
//! (urgency by severity is a setting a service opts into). Such anomalies still reach the
//! deployment's other channels.
//!
//! The summary names the environment, when the deployment's config names one
//! (`prod/web: rolled back: ...`); `payload.group` is the environment (the deployment's id
//! when none is named), so that PagerDuty's rules and alert grouping can tell environments
//! apart; `custom_details` carry the environment and the namespace.

use serde_json::{Map, Value, json};

use super::settings::Secret;
use super::{NotifyContext, event_type, scope};
use crate::error::{Error, Result};
use crate::event::{Event, EventKind};
use crate::truncate;

/// The Events API's limits: `summary` 1024 characters, `dedup_key` 255.
const SUMMARY_MAX: usize = 1_024;
const DEDUP_MAX: usize = 255;

/// The severities PagerDuty pages at, each with its own alert per deployment.
const SEVERITIES: [&str; 3] = ["critical", "error", "warning"];

/// The alert key of a deployment's alerts of `severity`: `serin/{id}` for `error` (the key
/// every alert had before severities were told apart), `serin/{id}/{severity}` for the others.
/// The deployment's id is cut so that the key stays within the API's 255 characters.
pub(super) fn dedup_key(deployment: &str, severity: &str) -> String {
    let suffix = match severity {
        "error" => String::new(),
        other => format!("/{other}"),
    };
    let room = DEDUP_MAX - "serin/".len() - suffix.chars().count();
    format!("serin/{}{suffix}", truncate(deployment, room))
}

/// The Events API severity of an anomaly raised with `severity`, or `None` for one that pages
/// nobody (`info`). Anything else that is neither `critical` nor `error` (`warning`, a
/// trigger's `warn` or `hold`, a word this version does not know) is a `warning`.
fn anomaly_severity(severity: &str) -> Option<&'static str> {
    let s = severity.trim();
    if s.eq_ignore_ascii_case("info") {
        None
    } else if s.eq_ignore_ascii_case("critical") {
        Some("critical")
    } else if s.eq_ignore_ascii_case("error") {
        Some("error")
    } else {
        Some("warning")
    }
}

/// The Events API v2 bodies for `event` of a deployment running in `ctx`, in the order they
/// are sent: none when it opens or closes no alert.
pub(super) fn events(event: &Event, ctx: &NotifyContext, routing_key: &Secret) -> Vec<Value> {
    let resolve = |severity: &str| {
        json!({
            "routing_key": routing_key.expose(),
            "event_action": "resolve",
            "dedup_key": dedup_key(&event.deployment, severity),
        })
    };
    let (severity, ends) = match &event.kind {
        EventKind::Failed { .. } => ("critical", true),
        EventKind::Blocked { .. } | EventKind::RolledBack { .. } => ("error", true),
        EventKind::TriggerFired { .. } | EventKind::RollbackStarted { .. } => ("error", false),
        EventKind::Anomaly { severity, .. } => match anomaly_severity(severity) {
            Some(s) => (s, false),
            None => return Vec::new(),
        },
        EventKind::Completed { .. } => return SEVERITIES.iter().map(|s| resolve(s)).collect(),
        _ => return Vec::new(),
    };
    let mut bodies = vec![trigger(event, ctx, routing_key, severity)];
    if ends {
        bodies.push(resolve("warning"));
    }
    bodies
}

/// The `trigger` of `event` at `severity`, on that severity's alert.
fn trigger(event: &Event, ctx: &NotifyContext, routing_key: &Secret, severity: &str) -> Value {
    let mut details = Map::new();
    details.insert(
        "id".into(),
        json!(format!("{}-{}", event.deployment, event.seq)),
    );
    if let Some(env) = super::environment(ctx) {
        details.insert("environment".into(), json!(env));
    }
    if let Some(ns) = super::namespace(ctx) {
        details.insert("namespace".into(), json!(ns));
    }
    details.insert("evidence".into(), json!(super::evidence(&event.kind)));
    details.insert("event".into(), json!(event));
    let group = super::environment(ctx).unwrap_or(&event.deployment);
    json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": dedup_key(&event.deployment, severity),
        "client": "Serin",
        "payload": {
            "summary": truncate(&format!("{}: {}", scope(ctx, &event.service), event.kind), SUMMARY_MAX),
            "source": event.service,
            "severity": severity,
            "timestamp": event.at.to_string(),
            "component": event.service,
            "group": group,
            "class": event_type(&event.kind),
            "custom_details": details,
        },
    })
}

/// The encoded [`events`] of `e`.
pub(super) fn bodies(e: &Event, ctx: &NotifyContext, routing_key: &Secret) -> Result<Vec<Vec<u8>>> {
    events(e, ctx, routing_key)
        .iter()
        .map(|v| {
            serde_json::to_vec(v).map_err(|err| {
                Error::backend(
                    "notifier",
                    "pagerduty",
                    format!("cannot encode the event: {err}"),
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::Timestamp;

    /// The trigger `kind` sends (its first body).
    fn event(e: &Event, ctx: &NotifyContext, key: &Secret) -> Option<Value> {
        events(e, ctx, key).into_iter().next()
    }

    fn ev(kind: EventKind) -> Event {
        Event {
            deployment: "web-9".into(),
            service: "web".into(),
            seq: 3,
            at: Timestamp::from_millis(1_700_000_000_000),
            kind,
        }
    }

    #[test]
    fn rollbacks_trigger_completion_resolves_starts_are_skipped() {
        let key = Secret::new("R0UT1NG");
        let t = event(
            &ev(EventKind::RolledBack {
                reason: "5xx".into(),
            }),
            &NotifyContext::default(),
            &key,
        )
        .expect("trigger");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "R0UT1NG");
        assert_eq!(t["dedup_key"], "serin/web-9");
        assert_eq!(t["payload"]["severity"], "error");
        assert_eq!(t["payload"]["source"], "web");
        assert_eq!(t["payload"]["timestamp"], "2023-11-14T22:13:20.000Z");
        let none = NotifyContext::default();
        let f = event(&ev(EventKind::Failed { reason: "x".into() }), &none, &key).expect("trigger");
        assert_eq!(f["payload"]["severity"], "critical");
        let r = event(
            &ev(EventKind::Completed {
                version: "1.1.0".into(),
            }),
            &none,
            &key,
        )
        .expect("resolve");
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], "serin/web-9/critical");
        assert!(r.get("payload").is_none());
        assert!(event(&ev(EventKind::Paused), &none, &key).is_none());
        let long = "x".repeat(300);
        for severity in SEVERITIES {
            let k = dedup_key(&long, severity);
            assert_eq!(k.chars().count(), DEDUP_MAX, "{k}");
            assert!(k.starts_with("serin/xxx"), "{k}");
        }
        assert!(dedup_key(&long, "warning").ends_with("…/warning"));
    }

    #[test]
    fn each_severity_has_its_own_alert_so_a_later_rollback_or_failure_pages_anew() {
        let key = Secret::new("k");
        let none = NotifyContext::default();
        let sent = |kind: EventKind| -> Vec<(String, String, String)> {
            events(&ev(kind), &none, &key)
                .iter()
                .map(|v| {
                    let severity = v["payload"]["severity"].as_str().unwrap_or("-");
                    (
                        v["event_action"].as_str().unwrap_or_default().to_owned(),
                        v["dedup_key"].as_str().unwrap_or_default().to_owned(),
                        severity.to_owned(),
                    )
                })
                .collect()
        };
        let t =
            |key: &str, severity: &str| ("trigger".to_owned(), key.to_owned(), severity.to_owned());
        let r = |key: &str| ("resolve".to_owned(), key.to_owned(), "-".to_owned());
        // A warning opens an alert of its own: the rollback's does not fold into it.
        assert_eq!(
            sent(anomaly("warn")),
            vec![t("serin/web-9/warning", "warning")]
        );
        assert_eq!(
            sent(EventKind::RollbackStarted {
                reason: "5xx".into()
            }),
            vec![t("serin/web-9", "error")]
        );
        assert_eq!(sent(anomaly("error")), vec![t("serin/web-9", "error")]);
        assert_eq!(
            sent(anomaly("critical")),
            vec![t("serin/web-9/critical", "critical")]
        );
        // The end of the deployment says how it ended and resolves the warning.
        assert_eq!(
            sent(EventKind::RolledBack {
                reason: "5xx".into()
            }),
            vec![t("serin/web-9", "error"), r("serin/web-9/warning")]
        );
        assert_eq!(
            sent(EventKind::Blocked {
                reason: "incompatible".into()
            }),
            vec![t("serin/web-9", "error"), r("serin/web-9/warning")]
        );
        // A failure (a rollback whose switch back failed) escalates to a critical alert, not a
        // line in the rollback's, which may be acknowledged already.
        assert_eq!(
            sent(EventKind::Failed {
                reason: "router down".into()
            }),
            vec![
                t("serin/web-9/critical", "critical"),
                r("serin/web-9/warning")
            ]
        );
        assert_eq!(
            sent(EventKind::Completed {
                version: "1.1.0".into()
            }),
            vec![
                r("serin/web-9/critical"),
                r("serin/web-9"),
                r("serin/web-9/warning")
            ]
        );
        assert!(sent(anomaly("info")).is_empty());
    }

    fn anomaly(severity: &str) -> EventKind {
        EventKind::Anomaly {
            source: "canary".into(),
            severity: severity.into(),
            summary: "something".into(),
        }
    }

    #[test]
    fn anomalies_page_at_their_own_severity_and_info_pages_nobody() {
        let key = Secret::new("k");
        let none = NotifyContext::default();
        let severity = |kind: EventKind| {
            event(&ev(kind), &none, &key).map(|v| v["payload"]["severity"].clone())
        };
        for (raised, paged) in [
            ("warning", "warning"),
            ("warn", "warning"),
            ("hold", "warning"),
            ("error", "error"),
            ("critical", "critical"),
            ("Critical", "critical"),
            ("something new", "warning"),
        ] {
            assert_eq!(severity(anomaly(raised)), Some(json!(paged)), "{raised}");
        }
        assert_eq!(severity(anomaly("info")), None);
        assert_eq!(severity(anomaly(" INFO ")), None);
        let at = Timestamp::from_millis(1_700_000_000_000);
        let fired = serin_triggers::Event {
            trigger: "error-rate".into(),
            at,
            from: serin_triggers::TriggerState::Ok,
            to: serin_triggers::TriggerState::Firing {
                action: serin_triggers::Action::Rollback,
                since: at,
            },
            action: Some(serin_triggers::Action::Rollback),
            evidence: serin_triggers::Evidence {
                trigger: "error-rate".into(),
                kind: serin_triggers::TriggerKind::MetricThreshold,
                subject: "error_rate on canary".into(),
                observed: Some(0.3),
                threshold: Some(0.05),
                operator: None,
                since: None,
                at,
                reason: "above its threshold".into(),
            },
        };
        assert_eq!(
            severity(EventKind::TriggerFired { event: fired }),
            Some(json!("error"))
        );
    }

    #[test]
    fn the_environment_is_in_the_summary_the_group_and_the_details() {
        let key = Secret::new("k");
        let e = ev(EventKind::RolledBack {
            reason: "5xx".into(),
        });
        let ctx = NotifyContext::new()
            .with_environment("prod")
            .with_namespace("shop");
        let t = event(&e, &ctx, &key).expect("trigger");
        assert_eq!(t["payload"]["summary"], "prod/web: rolled back: 5xx");
        assert_eq!(t["payload"]["group"], "prod");
        assert_eq!(t["payload"]["source"], "web");
        assert_eq!(t["payload"]["custom_details"]["environment"], "prod");
        assert_eq!(t["payload"]["custom_details"]["namespace"], "shop");
        assert_eq!(t["dedup_key"], "serin/web-9");
        // Without one, the summary names the service alone and the group is the deployment.
        let t = event(&e, &NotifyContext::default(), &key).expect("trigger");
        assert_eq!(t["payload"]["summary"], "web: rolled back: 5xx");
        assert_eq!(t["payload"]["group"], "web-9");
        let details = t["payload"]["custom_details"].as_object().expect("details");
        assert!(!details.contains_key("environment") && !details.contains_key("namespace"));
    }
}
