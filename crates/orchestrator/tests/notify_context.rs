//! What a deployment gives its notifier: a notifier implementing only `notify` still gets
//! every event it is subscribed to, and one implementing `notify_in` also gets where the
//! deployment runs (the config's `environment` and `namespace`); channels subscribed to a
//! category hear of its events alone.

use crate::support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use serin_orchestrator::{
    DeploymentConfig, Event, EventKind, NotificationChannel, Notifier, Report, Result, StepStatus,
};
use support::{World, assert_succeeded, canary_config, checklist_validator};

/// A notifier written before `notify_in` existed: it implements `notify` alone.
#[derive(Default)]
struct Plain {
    seen: Mutex<Vec<Event>>,
}

#[async_trait]
impl Notifier for Plain {
    async fn notify(&self, _channel: &NotificationChannel, event: &Event) -> Result<()> {
        self.seen.lock().expect("seen").push(event.clone());
        Ok(())
    }
}

/// Runs `config` to its end on the world, announcing to `notifier`.
async fn run_notifying(
    world: &World,
    notifier: Arc<dyn Notifier>,
    config: &DeploymentConfig,
) -> Report {
    let o = world
        .builder(world.journal.clone())
        .notifier(notifier)
        .build();
    o.run(config).await.expect("run").remove(0)
}

fn channel() -> NotificationChannel {
    serde_json::from_str(r##"{"type":"slack","destination":"#deploys"}"##).expect("channel")
}

/// A canary config of `version` with one channel subscribed to every event, deployed to
/// `environment`.
fn notified_config(version: &str, environment: &str) -> DeploymentConfig {
    let mut config = canary_config(version);
    config.notification_channels = vec![channel()];
    config.environment = Some(environment.into());
    config
}

#[tokio::test(start_paused = true)]
async fn a_notifier_implementing_only_notify_gets_every_subscribed_event() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let plain = Arc::new(Plain::default());
    let config = notified_config("1.1.0", "prod");
    let report = run_notifying(&world, plain.clone(), &config).await;
    assert_succeeded(&report);
    let expected: Vec<Event> = report.timeline.clone();
    assert!(!expected.is_empty());
    assert_eq!(*plain.seen.lock().expect("seen"), expected);
}

/// A notifier that records which channel got which event.
#[derive(Default)]
struct ByChannel {
    seen: Mutex<Vec<(String, EventKind)>>,
}

#[async_trait]
impl Notifier for ByChannel {
    async fn notify(&self, channel: &NotificationChannel, event: &Event) -> Result<()> {
        let to = channel.destination.clone();
        self.seen
            .lock()
            .expect("seen")
            .push((to, event.kind.clone()));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn the_progress_and_step_categories_carry_the_rollout_and_its_checklist() {
    let (world, _traffic) = World::serving(0.005, 0.005).await;
    let by_channel = Arc::new(ByChannel::default());
    // No step runner: the contract migration falls due for whoever runs the database.
    let (validator, fleet) = checklist_validator();
    let o = world
        .builder(world.journal.clone())
        .validator(validator, fleet)
        .notifier(by_channel.clone())
        .build();
    let mut config = canary_config("1.1.0");
    config.notification_channels = vec![
        serde_json::from_str(
            r##"{"type":"slack","destination":"#rollouts","events":["progress"]}"##,
        )
        .expect("channel"),
        serde_json::from_str(r##"{"type":"slack","destination":"#dba","events":["step"]}"##)
            .expect("channel"),
    ];
    let report = o.run(&config).await.expect("run").remove(0);
    assert_succeeded(&report);
    let seen = by_channel.seen.lock().expect("seen").clone();
    let got = |to: &str| -> Vec<EventKind> {
        seen.iter()
            .filter(|(d, _)| d == to)
            .map(|(_, k)| k.clone())
            .collect()
    };
    let steps: Vec<EventKind> = report
        .timeline
        .iter()
        .filter(|e| matches!(e.kind, EventKind::UpgradeStep { .. }))
        .map(|e| e.kind.clone())
        .collect();
    assert!(
        steps.iter().any(|k| matches!(
            k,
            EventKind::UpgradeStep {
                status: StepStatus::Due,
                ..
            }
        )),
        "{report}"
    );
    assert_eq!(got("#dba"), steps);
    let progress = got("#rollouts");
    assert!(
        progress.iter().all(|k| matches!(
            k,
            EventKind::Validated { .. }
                | EventKind::BackupTaken { .. }
                | EventKind::BackupRestored { .. }
                | EventKind::TrackStarted { .. }
                | EventKind::TrackReady { .. }
                | EventKind::WeightChanged { .. }
                | EventKind::AnalysisResult { .. }
        )),
        "{progress:?}"
    );
    for wanted in [
        "validated",
        "trackStarted",
        "trackReady",
        "weightChanged",
        "analysisResult",
    ] {
        assert!(
            progress
                .iter()
                .any(|k| serde_json::to_value(k).expect("json")["type"] == wanted),
            "{wanted} missing from {progress:?}"
        );
    }
}

#[cfg(feature = "notify")]
mod with_context {
    use super::*;
    use serin_orchestrator::NotifyContext;

    /// A notifier that tells where the deployment runs.
    #[derive(Default)]
    struct Placed {
        seen: Mutex<Vec<(NotifyContext, Event)>>,
        plain: Mutex<usize>,
    }

    #[async_trait]
    impl Notifier for Placed {
        async fn notify(&self, _channel: &NotificationChannel, _event: &Event) -> Result<()> {
            *self.plain.lock().expect("plain") += 1;
            Ok(())
        }

        async fn notify_in(
            &self,
            ctx: &NotifyContext,
            _channel: &NotificationChannel,
            event: &Event,
        ) -> Result<()> {
            self.seen
                .lock()
                .expect("seen")
                .push((ctx.clone(), event.clone()));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_notifier_implementing_notify_in_gets_the_environment_and_namespace() {
        let (world, _traffic) = World::serving(0.005, 0.005).await;
        let placed = Arc::new(Placed::default());
        let mut config = notified_config("1.1.0", "prod");
        config.namespace = Some("shop".into());
        let report = run_notifying(&world, placed.clone(), &config).await;
        assert_succeeded(&report);
        let want = NotifyContext::new()
            .with_environment("prod")
            .with_namespace("shop");
        let seen = placed.seen.lock().expect("seen").clone();
        assert_eq!(seen.len(), report.timeline.len());
        assert!(seen.iter().all(|(ctx, _)| *ctx == want), "{seen:?}");
        assert_eq!(
            *placed.plain.lock().expect("plain"),
            0,
            "notify_in is called"
        );
        // A config naming neither (or blanks) gives an empty context.
        let placed = Arc::new(Placed::default());
        let config = notified_config("1.2.0", "  ");
        world.set_rate("1.2.0", 0.005);
        run_notifying(&world, placed.clone(), &config).await;
        let seen = placed.seen.lock().expect("seen").clone();
        assert!(!seen.is_empty());
        assert!(
            seen.iter().all(|(ctx, _)| *ctx == NotifyContext::default()),
            "{seen:?}"
        );
    }
}
