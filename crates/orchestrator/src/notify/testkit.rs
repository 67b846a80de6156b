//! The conformance suite for [`Notifier`] implementations (features `notify` and `testkit`).
//!
//! A notifier is called inline by the orchestrator while it emits events, so the suite checks
//! what the orchestrator relies on: [`notify_in`](Notifier::notify_in), which the orchestrator
//! calls (a notifier implementing only `notify` gets it by default), returns promptly,
//! everything it accepts reaches the receiver exactly once, and each deployment's events
//! arrive in order. The caller gives
//! a view of the receiving end ([`Inbox`]) and says which events its channel carries
//! ([`Coverage`]). Run it with real time (receivers on loopback answer in real time).
//!
//! ```
//! use serin_orchestrator::notify::testkit::{Coverage, check_notifier};
//! use serin_orchestrator::{InMemoryNotifier, NotificationChannel};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
//! let notifier = InMemoryNotifier::new();
//! let channel: NotificationChannel =
//!     serde_json::from_str(r##"{"type":"slack","destination":"#deploys"}"##).unwrap();
//! check_notifier(&notifier, &channel, &notifier, Coverage::Every).await;
//! # });
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_signals::Timestamp;

use super::event_type;
use crate::config::{NotificationChannel, StrategyKind};
use crate::event::{Event, EventKind, Phase};
use crate::hooks::{InMemoryNotifier, Notifier, NotifyContext};

/// One message as the receiver saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The deployment it is about.
    pub deployment: String,
    /// The event's type as its JSON names it (`started`, `rolledBack`, ...;
    /// [`event_type`]).
    pub event_type: String,
}

/// The receiving end of a channel, as the suite inspects it.
#[async_trait]
pub trait Inbox: Send + Sync {
    /// Every message received so far, in arrival order (earlier runs' included: the suite
    /// uses fresh deployment ids).
    async fn delivered(&self) -> Vec<Delivered>;
}

/// Which events a channel carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Every event it is given (webhooks, Slack, e-mail, the in-memory recorder).
    Every,
    /// Only what opens or closes an incident: anomalies above `info`, rollbacks, failures,
    /// completion (PagerDuty).
    Incidents,
}

impl Coverage {
    fn carries(self, kind: &EventKind) -> bool {
        match self {
            Coverage::Every => true,
            Coverage::Incidents => match kind {
                EventKind::Anomaly { severity, .. } => !severity.eq_ignore_ascii_case("info"),
                _ => matches!(
                    kind,
                    EventKind::TriggerFired { .. }
                        | EventKind::RollbackStarted { .. }
                        | EventKind::RolledBack { .. }
                        | EventKind::Failed { .. }
                        | EventKind::Blocked { .. }
                        | EventKind::Completed { .. }
                ),
            },
        }
    }
}

#[async_trait]
impl Inbox for InMemoryNotifier {
    async fn delivered(&self) -> Vec<Delivered> {
        self.sent()
            .into_iter()
            .map(|(_, e)| Delivered {
                deployment: e.deployment,
                event_type: event_type(&e.kind),
            })
            .collect()
    }
}

/// How long one `notify` call may take: it must hand the event off, not deliver it.
pub const NOTIFY_BOUND: Duration = Duration::from_millis(500);

/// How long the suite waits for everything to arrive.
pub const ARRIVAL_BOUND: Duration = Duration::from_secs(15);

static RUNS: AtomicU64 = AtomicU64::new(0);

fn scripts() -> Vec<(String, Vec<EventKind>)> {
    let run = RUNS.fetch_add(1, Ordering::SeqCst);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let id = |s: &str| format!("conformance-{s}-{nonce:x}-{run}");
    vec![
        (
            id("rollback"),
            vec![
                EventKind::Started {
                    strategy: StrategyKind::Canary,
                    from: Some("1.0.0".into()),
                    to: "1.1.0".into(),
                },
                EventKind::PhaseChanged {
                    phase: Phase::Deployment,
                },
                EventKind::Anomaly {
                    source: "canary".into(),
                    severity: "info".into(),
                    summary: "observation of latency not usable: no requests in the window".into(),
                },
                EventKind::Anomaly {
                    source: "sequential-counts".into(),
                    severity: "warning".into(),
                    summary: "canary error rate 4.1% vs 1.0% (e-value 12.3 < 20)".into(),
                },
                EventKind::RollbackStarted {
                    reason: "error_rate: canary 9.8% > 5% for 30s".into(),
                },
                EventKind::RolledBack {
                    reason: "error_rate: canary 9.8% > 5% for 30s".into(),
                },
            ],
        ),
        (
            id("success"),
            vec![
                EventKind::Started {
                    strategy: StrategyKind::BlueGreen,
                    from: None,
                    to: "2.0.0".into(),
                },
                EventKind::PhaseChanged {
                    phase: Phase::Completion,
                },
                EventKind::Completed {
                    version: "2.0.0".into(),
                },
            ],
        ),
        (
            id("failure"),
            vec![EventKind::Failed {
                reason: "platform `sim` failed: no capacity".into(),
            }],
        ),
    ]
}

/// Runs every check against `notifier` delivering to `channel`, observed through `inbox`;
/// panics with what went wrong. The events are given as the orchestrator gives them, through
/// [`notify_in`](Notifier::notify_in), with a context naming an environment and a namespace.
pub async fn check_notifier(
    notifier: &dyn Notifier,
    channel: &NotificationChannel,
    inbox: &dyn Inbox,
    coverage: Coverage,
) {
    let ctx = NotifyContext::new()
        .with_environment("conformance")
        .with_namespace("serin-conformance");
    let scripts = scripts();
    // Interleave the deployments, as concurrent deployments of several services do.
    let longest = scripts.iter().map(|(_, s)| s.len()).max().unwrap_or(0);
    let mut expected: Vec<(String, Vec<String>)> = scripts
        .iter()
        .map(|(d, _)| (d.clone(), Vec::new()))
        .collect();
    for i in 0..longest {
        for (n, (deployment, script)) in scripts.iter().enumerate() {
            let Some(kind) = script.get(i) else { continue };
            let event = Event {
                deployment: deployment.clone(),
                service: "conformance".into(),
                seq: i as u64,
                at: Timestamp::from_millis(1_700_000_000_000 + (i as u64) * 1_000),
                kind: kind.clone(),
            };
            let started = tokio::time::Instant::now();
            match tokio::time::timeout(NOTIFY_BOUND, notifier.notify_in(&ctx, channel, &event))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("notify({event}) failed: {e}"),
                Err(_) => panic!(
                    "notify({event}) did not return within {NOTIFY_BOUND:?}: it must queue, not deliver"
                ),
            }
            assert!(started.elapsed() <= NOTIFY_BOUND);
            if coverage.carries(kind)
                && let Some((_, want)) = expected.get_mut(n)
            {
                want.push(event_type(kind));
            }
        }
    }
    let ours = |all: Vec<Delivered>| -> Vec<(String, Vec<String>)> {
        expected
            .iter()
            .map(|(d, _)| {
                let got = all
                    .iter()
                    .filter(|x| &x.deployment == d)
                    .map(|x| x.event_type.clone())
                    .collect();
                (d.clone(), got)
            })
            .collect()
    };
    let deadline = tokio::time::Instant::now() + ARRIVAL_BOUND;
    let mut got = ours(inbox.delivered().await);
    while got != expected {
        let too_many = got
            .iter()
            .zip(&expected)
            .any(|((_, g), (_, w))| g.len() > w.len());
        assert!(
            !too_many,
            "more deliveries than events (duplicates, or events the channel should not carry):\n got  {got:?}\n want {expected:?}"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "not everything arrived within {ARRIVAL_BOUND:?}:\n got  {got:?}\n want {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        got = ours(inbox.delivered().await);
    }
    // Exactly once: nothing more turns up afterwards.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = ours(inbox.delivered().await);
    assert_eq!(after, expected, "deliveries arrived twice");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_in_memory_notifier_conforms() {
        let n = InMemoryNotifier::new();
        let ch: NotificationChannel =
            serde_json::from_str(r#"{"type":"webhook","destination":"http://127.0.0.1:1/"}"#)
                .expect("channel");
        check_notifier(&n, &ch, &n, Coverage::Every).await;
        check_notifier(&n, &ch, &n, Coverage::Every).await;
    }

    #[tokio::test]
    #[should_panic(expected = "more deliveries than events")]
    async fn a_notifier_that_delivers_twice_fails() {
        struct Twice(InMemoryNotifier);
        #[async_trait]
        impl Notifier for Twice {
            async fn notify(&self, c: &NotificationChannel, e: &Event) -> crate::Result<()> {
                self.0.notify(c, e).await?;
                self.0.notify(c, e).await
            }
        }
        let n = Twice(InMemoryNotifier::new());
        let ch: NotificationChannel =
            serde_json::from_str(r#"{"type":"email","destination":"a@b.c"}"#).expect("channel");
        check_notifier(&n, &ch, &n.0, Coverage::Every).await;
    }
}
