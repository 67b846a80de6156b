//! PagerDuty Events API v2: an incident per deployment. Rollbacks, failures and anomalies
//! `trigger` it (PagerDuty folds repeats into one alert by `dedup_key`, one per deployment);
//! completion `resolves` it. Starts and phase changes page nobody and are not sent.
//!
//! | event | `event_action` | `payload.severity` |
//! |---|---|---|
//! | `failed`, `blocked` | `trigger` | `critical`, `error` |
//! | `rollbackStarted`, `rolledBack` | `trigger` | `error` |
//! | `triggerFired` (a trigger asking for a rollback) | `trigger` | `error` |
//! | `anomaly` | `trigger` | its own severity: `critical`, `error`, else `warning` (`warning`, and a trigger's `warn` or `hold`) |
//! | `anomaly` of severity `info` | not sent | — |
//! | `completed` | `resolve` | — |
//!
//! An `info` anomaly (an observation the canary could not use, say) pages nobody: the Events
//! API's `trigger` is for a problem someone must look at, and every trigger opens the
//! deployment's incident (or joins it), which notifies the on-call at the service's urgency
//! whatever its `severity` (urgency by severity is a setting a service opts into). Such
//! anomalies still reach the deployment's other channels.
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

/// The incident key of a deployment.
pub(super) fn dedup_key(deployment: &str) -> String {
    truncate(&format!("serin/{deployment}"), DEDUP_MAX)
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

/// The Events API v2 body for `event` of a deployment running in `ctx`, or `None` when it
/// opens or closes no incident.
pub(super) fn event(event: &Event, ctx: &NotifyContext, routing_key: &Secret) -> Option<Value> {
    let severity = match &event.kind {
        EventKind::Failed { .. } => "critical",
        EventKind::Blocked { .. }
        | EventKind::TriggerFired { .. }
        | EventKind::RollbackStarted { .. }
        | EventKind::RolledBack { .. } => "error",
        EventKind::Anomaly { severity, .. } => anomaly_severity(severity)?,
        EventKind::Completed { .. } => {
            return Some(json!({
                "routing_key": routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": dedup_key(&event.deployment),
            }));
        }
        _ => return None,
    };
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
    Some(json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": dedup_key(&event.deployment),
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
    }))
}

pub(super) fn body(
    e: &Event,
    ctx: &NotifyContext,
    routing_key: &Secret,
) -> Result<Option<Vec<u8>>> {
    event(e, ctx, routing_key)
        .map(|v| {
            serde_json::to_vec(&v).map_err(|err| {
                Error::backend(
                    "notifier",
                    "pagerduty",
                    format!("cannot encode the event: {err}"),
                )
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::Timestamp;

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
        assert_eq!(r["dedup_key"], "serin/web-9");
        assert!(r.get("payload").is_none());
        assert!(event(&ev(EventKind::Paused), &none, &key).is_none());
        let long = "x".repeat(300);
        assert_eq!(dedup_key(&long).chars().count(), DEDUP_MAX);
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
