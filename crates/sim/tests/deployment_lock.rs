//! The platform's deployment lock: one holder at a time, kept by the world, so that an executor
//! restarted after a crash finds the lock its unfinished deployment took.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use serin_orchestrator::{
    Clock, DeploymentConfig, Error as PlatformError, InMemoryJournal, Journal, Orchestrator,
    Outcome, Platform, ServiceBackends, StrategyKind,
};
use serin_sim::{EventKind, Fault, SimConfig, SimWorld, Span};

/// The lock events of the world's timeline, oldest first.
fn lock_events(world: &SimWorld) -> Vec<EventKind> {
    world
        .timeline()
        .into_iter()
        .map(|e| e.kind)
        .filter(|k| {
            matches!(
                k,
                EventKind::Locked { .. }
                    | EventKind::Unlocked { .. }
                    | EventKind::LockRefused { .. }
                    | EventKind::LockCallFailed { .. }
            )
        })
        .collect()
}

fn locked(service: &str, holder: &str) -> EventKind {
    EventKind::Locked {
        service: service.into(),
        holder: holder.into(),
    }
}

/// A lock taken through one view of the world holds against every other view (a restarted
/// executor builds a new one), is given back to its holder, and is freed by its holder alone;
/// each change and refusal is in the timeline.
#[tokio::test(start_paused = true)]
async fn a_lock_holds_across_views_until_its_holder_frees_it() {
    let world = fleet(SimConfig::new(43)).await;
    world.platform().lock(SERVICE, "web-1-a").await.unwrap();

    let restarted = world.platform();
    let err = restarted.lock(SERVICE, "web-2-b").await.unwrap_err();
    assert!(
        matches!(&err, PlatformError::Conflict { deployment, .. } if deployment == SERVICE),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("deployment web-1-a holds"),
        "{err}"
    );
    assert_eq!(world.lock_holder(SERVICE).as_deref(), Some("web-1-a"));
    // Every view reads the world's holder, without taking the lock or leaving a trace.
    let events = lock_events(&world).len();
    assert_eq!(
        restarted.lock_holder(SERVICE).await.unwrap().as_deref(),
        Some("web-1-a")
    );
    assert_eq!(lock_events(&world).len(), events);
    restarted.lock(SERVICE, "web-1-a").await.unwrap();
    restarted.unlock(SERVICE, "web-2-b").await.unwrap();
    assert_eq!(world.lock_holder(SERVICE).as_deref(), Some("web-1-a"));
    // Another service's lock is its own.
    restarted.lock("shop", "shop-1-c").await.unwrap();

    restarted.unlock(SERVICE, "web-1-a").await.unwrap();
    assert_eq!(world.lock_holder(SERVICE), None);
    assert_eq!(restarted.lock_holder(SERVICE).await.unwrap(), None);
    restarted.lock(SERVICE, "web-2-b").await.unwrap();
    assert_eq!(
        lock_events(&world),
        [
            locked(SERVICE, "web-1-a"),
            EventKind::LockRefused {
                service: SERVICE.into(),
                holder: "web-2-b".into(),
                reason: "deployment web-1-a holds the lock of this service".into(),
            },
            locked(SERVICE, "web-1-a"),
            locked("shop", "shop-1-c"),
            EventKind::Unlocked {
                service: SERVICE.into(),
                holder: "web-1-a".into(),
            },
            locked(SERVICE, "web-2-b"),
        ]
    );
}

/// The lock lives on the platform (a Lease, a file), so a platform-errors fault fails its
/// calls as it fails the others: taking, taking back, freeing and reading it fail with the
/// fault's message while it lasts, and no holder changes; after it, the lock is where it was.
/// The failed changes are in the timeline (the failed read, like any read, is not).
#[tokio::test(start_paused = true)]
async fn platform_errors_fail_the_lock_calls_and_move_no_lock() {
    let world = fleet(SimConfig::new(45).with_fault(Fault::PlatformErrors {
        span: Span::new(Duration::from_secs(60), Duration::from_secs(120)),
        message: "lease store unreachable".into(),
    }))
    .await;
    let platform = world.platform();
    platform.lock(SERVICE, "web-1-a").await.unwrap();
    wait(Duration::from_secs(60)).await;

    let failed = |result: Result<(), PlatformError>, call: &str| {
        let err = result.expect_err(call);
        assert!(
            matches!(&err, PlatformError::Platform { .. })
                && err.to_string().contains("lease store unreachable"),
            "{call}: {err:?}"
        );
    };
    failed(platform.lock(SERVICE, "web-1-a").await, "taking it back");
    failed(platform.lock(SERVICE, "web-2-b").await, "taking it held");
    failed(platform.lock("shop", "shop-1-c").await, "taking it free");
    failed(platform.unlock(SERVICE, "web-1-a").await, "freeing it");
    failed(
        platform.lock_holder(SERVICE).await.map(drop),
        "reading its holder",
    );
    assert_eq!(world.lock_holder(SERVICE).as_deref(), Some("web-1-a"));
    assert_eq!(world.lock_holder("shop"), None);
    let refused = |call: &str, service: &str, holder: &str| EventKind::LockCallFailed {
        call: call.into(),
        service: service.into(),
        holder: holder.into(),
        reason: "lease store unreachable".into(),
    };
    assert_eq!(
        lock_events(&world),
        [
            locked(SERVICE, "web-1-a"),
            refused("lock", SERVICE, "web-1-a"),
            refused("lock", SERVICE, "web-2-b"),
            refused("lock", "shop", "shop-1-c"),
            refused("unlock", SERVICE, "web-1-a"),
        ]
    );

    wait(Duration::from_secs(60)).await;
    assert_eq!(
        platform.lock_holder(SERVICE).await.unwrap().as_deref(),
        Some("web-1-a")
    );
    platform.unlock(SERVICE, "web-1-a").await.unwrap();
    platform.lock(SERVICE, "web-2-b").await.unwrap();
    assert_eq!(world.lock_holder(SERVICE).as_deref(), Some("web-2-b"));
}

/// An orchestrator over `world`, journalling to `journal`, as a process starting now builds it.
fn orchestrator(world: &SimWorld, journal: Arc<dyn Journal>) -> Orchestrator {
    let backends = ServiceBackends::new(
        Arc::new(world.router()),
        Arc::new(world.metrics()),
        Arc::new(world.health()),
    );
    Orchestrator::builder(Arc::new(world.platform()), journal)
        .service(SERVICE, backends)
        .clock(Clock::starting_at(world.now()))
        .build()
}

/// A short canary of `version` on one replica.
fn canary(version: &str) -> DeploymentConfig {
    let version = semver::Version::parse(version).unwrap();
    let mut c = DeploymentConfig::new(StrategyKind::Canary, version, &[SERVICE]).unwrap();
    c.canary_config.replicas = 1;
    c.canary_config.increment_interval = Duration::from_secs(60);
    c.canary_config.metrics_window = Duration::from_secs(30);
    c.monitoring.monitoring_duration = Duration::from_secs(60);
    c
}

/// A deployment whose executor was killed keeps its service locked on the platform: an
/// orchestrator restarted over the same journal cannot start another deployment of it, and its
/// dry run says so, only resume the one cut short, which frees the lock when it ends.
#[tokio::test(start_paused = true)]
async fn a_deployment_cut_short_keeps_its_lock_until_resumed() {
    let world = fleet(SimConfig::new(44)).await;
    let journal: Arc<dyn Journal> = Arc::new(InMemoryJournal::new());
    let first = orchestrator(&world, journal.clone());
    let handle = first.start(&canary("1.1.0"), SERVICE).await.unwrap();
    let id = handle.id().to_owned();
    wait(Duration::from_secs(30)).await;
    handle.kill();
    drop(first);
    wait(Duration::from_secs(60)).await;

    let second = orchestrator(&world, journal);
    let plan = second.plan(&canary("1.2.0")).await.unwrap().remove(0);
    assert!(
        plan.steps[0].starts_with(&format!("start: REFUSED — deployment {id} holds the lock")),
        "{plan}"
    );
    let err = second.start(&canary("1.2.0"), SERVICE).await.unwrap_err();
    assert!(
        matches!(&err, PlatformError::Conflict { .. }) && err.to_string().contains(&id),
        "{err}"
    );
    assert_eq!(world.lock_holder(SERVICE), Some(id.clone()));
    let report = second.resume(&id).await.unwrap().wait().await.unwrap();
    assert_eq!(report.outcome, Some(Outcome::Succeeded), "{report}");
    assert_eq!(world.lock_holder(SERVICE), None);
    second.start(&canary("1.2.0"), SERVICE).await.unwrap();
}
