//! PagerDuty Events API v2: an incident per deployment. Rollbacks, failures and anomalies
//! `trigger` it (PagerDuty folds repeats into one alert by `dedup_key`, one per deployment);
//! completion `resolves` it. Starts and phase changes page nobody and are not sent.
//!
//! | event | `event_action` | `payload.severity` |
//! |---|---|---|
//! | `failed`, `blocked` | `trigger` | `critical`, `error` |
//! | `rollbackStarted`, `rolledBack` | `trigger` | `error` |
//! | `anomaly`, `triggerFired` | `trigger` | `warning` |
//! | `completed` | `resolve` | — |

use serde_json::{Value, json};

use super::event_type;
use super::settings::Secret;
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

/// The Events API v2 body for `event`, or `None` when it opens or closes no incident.
pub(super) fn event(event: &Event, routing_key: &Secret) -> Option<Value> {
    let severity = match &event.kind {
        EventKind::Failed { .. } => "critical",
        EventKind::Blocked { .. }
        | EventKind::RollbackStarted { .. }
        | EventKind::RolledBack { .. } => "error",
        EventKind::Anomaly { .. } | EventKind::TriggerFired { .. } => "warning",
        EventKind::Completed { .. } => {
            return Some(json!({
                "routing_key": routing_key.expose(),
                "event_action": "resolve",
                "dedup_key": dedup_key(&event.deployment),
            }));
        }
        _ => return None,
    };
    Some(json!({
        "routing_key": routing_key.expose(),
        "event_action": "trigger",
        "dedup_key": dedup_key(&event.deployment),
        "client": "Serin",
        "payload": {
            "summary": truncate(&format!("{}: {}", event.service, event.kind), SUMMARY_MAX),
            "source": event.service,
            "severity": severity,
            "timestamp": event.at.to_string(),
            "component": event.service,
            "group": event.deployment,
            "class": event_type(&event.kind),
            "custom_details": {
                "id": format!("{}-{}", event.deployment, event.seq),
                "evidence": super::evidence(&event.kind),
                "event": event,
            },
        },
    }))
}

pub(super) fn body(e: &Event, routing_key: &Secret) -> Result<Option<Vec<u8>>> {
    event(e, routing_key)
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
            &key,
        )
        .expect("trigger");
        assert_eq!(t["event_action"], "trigger");
        assert_eq!(t["routing_key"], "R0UT1NG");
        assert_eq!(t["dedup_key"], "serin/web-9");
        assert_eq!(t["payload"]["severity"], "error");
        assert_eq!(t["payload"]["source"], "web");
        assert_eq!(t["payload"]["timestamp"], "2023-11-14T22:13:20.000Z");
        let f = event(&ev(EventKind::Failed { reason: "x".into() }), &key).expect("trigger");
        assert_eq!(f["payload"]["severity"], "critical");
        let r = event(
            &ev(EventKind::Completed {
                version: "1.1.0".into(),
            }),
            &key,
        )
        .expect("resolve");
        assert_eq!(r["event_action"], "resolve");
        assert_eq!(r["dedup_key"], "serin/web-9");
        assert!(r.get("payload").is_none());
        assert!(event(&ev(EventKind::Paused), &key).is_none());
        let long = "x".repeat(300);
        assert_eq!(dedup_key(&long).chars().count(), DEDUP_MAX);
    }
}
