//! A deployment that ends frees the platform's deployment lock of its service. A platform that
//! fails the call (a conflict writing a Lease, a file it could not remove) is asked again a few
//! times, backing off; one that keeps failing leaves an anomaly in the report naming the
//! deployment to resume, which frees the lock, as every later deployment of the service is
//! refused until then.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    DeploymentConfig, Error, EventKind, InMemoryPlatform, Orchestrator, Platform, Report, Result,
    ServiceBackends, StrategyKind, TrackSpec, TrackStatus,
};
use serin_signals::Track;
use support::{SERVICE, World, run_to_end, v};

/// The world's platform, but its `unlock` fails (changing nothing) while `failures` is above
/// zero, one failure per call; `calls` counts the calls.
struct FailingUnlock {
    inner: Arc<InMemoryPlatform>,
    failures: AtomicU32,
    calls: AtomicU32,
}

#[async_trait]
impl Platform for FailingUnlock {
    fn name(&self) -> &str {
        "failing-unlock"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.inner.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.inner.list().await
    }
    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        self.inner.lock(service, holder).await
    }
    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let failing = self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if failing {
            return Err(Error::platform("failing-unlock", "the lease was modified"));
        }
        self.inner.unlock(service, holder).await
    }
    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        self.inner.lock_holder(service).await
    }
}

/// An orchestrator on `world`, whose platform fails its next `failures` unlocks.
fn failing(world: &World, failures: u32) -> (Arc<FailingUnlock>, Orchestrator) {
    let platform = Arc::new(FailingUnlock {
        inner: Arc::clone(&world.platform),
        failures: AtomicU32::new(failures),
        calls: AtomicU32::new(0),
    });
    let backends = ServiceBackends::new(
        world.router.clone(),
        world.source.clone(),
        world.health.clone(),
    );
    let o = world
        .builder_on(platform.clone(), backends, world.journal.clone())
        .build();
    (platform, o)
}

fn install(version: &str) -> DeploymentConfig {
    DeploymentConfig::new(StrategyKind::Canary, v(version), &[SERVICE]).expect("config")
}

/// The anomalies of `report` about the deployment lock.
fn lock_anomalies(report: &Report) -> Vec<&str> {
    report
        .timeline
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Anomaly { summary, .. } if summary.contains("deployment lock") => {
                Some(summary.as_str())
            }
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_lock_the_platform_fails_to_free_twice_is_freed_by_asking_again() {
    let world = World::new();
    let (platform, o) = failing(&world, 2);
    let began = tokio::time::Instant::now();
    let report = run_to_end(&o, &install("1.0.0")).await;
    assert!(
        report.outcome.as_ref().is_some_and(|o| o.is_success()),
        "{report}"
    );
    assert_eq!(platform.calls.load(Ordering::SeqCst), 3);
    assert!(
        began.elapsed() < Duration::from_secs(60),
        "backed off {:?}",
        began.elapsed()
    );
    assert_eq!(
        world.platform.lock_holder(SERVICE).await.expect("holder"),
        None
    );
    assert!(lock_anomalies(&report).is_empty(), "{report}");
    // The next deployment of the service is not refused.
    o.start(&install("1.1.0"), SERVICE).await.expect("start");
}

#[tokio::test(start_paused = true)]
async fn a_lock_the_platform_never_frees_is_reported_with_the_deployment_to_resume() {
    let world = World::new();
    let (platform, o) = failing(&world, u32::MAX);
    let report = run_to_end(&o, &install("1.0.0")).await;
    let id = report.deployment.clone();
    let calls = platform.calls.load(Ordering::SeqCst);
    assert!((2..=10).contains(&calls), "{calls} calls");
    let anomalies = lock_anomalies(&report);
    assert_eq!(anomalies.len(), 1, "{report}");
    assert!(
        anomalies[0].contains(&format!("resume deployment {id}"))
            && anomalies[0].contains("the lease was modified")
            && anomalies[0].contains(SERVICE),
        "{}",
        anomalies[0]
    );
    assert_eq!(
        world.platform.lock_holder(SERVICE).await.expect("holder"),
        Some(id.clone())
    );
    assert!(o.start(&install("1.1.0"), SERVICE).await.is_err());

    // Once the platform answers again, resuming the ended deployment frees the lock.
    platform.failures.store(0, Ordering::SeqCst);
    let resumed = support::resume_to_end(&o, &id).await;
    assert_eq!(resumed.outcome, report.outcome);
    assert_eq!(
        world.platform.lock_holder(SERVICE).await.expect("holder"),
        None
    );
    o.start(&install("1.1.0"), SERVICE).await.expect("start");
}

#[tokio::test(start_paused = true)]
async fn an_abandon_whose_lock_the_platform_never_frees_says_so() {
    let world = World::new();
    let h = world.start(&install("1.0.0")).await;
    let id = h.id().to_owned();
    h.kill();
    let (_platform, o) = failing(&world, u32::MAX);
    let report = o
        .abandon(&id, "its executor was killed")
        .await
        .expect("abandon");
    let anomalies = lock_anomalies(&report);
    assert_eq!(anomalies.len(), 1, "{report}");
    assert!(
        anomalies[0].contains(&format!("resume deployment {id}")),
        "{}",
        anomalies[0]
    );
}
