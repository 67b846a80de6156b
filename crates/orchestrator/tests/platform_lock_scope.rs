//! The deployment lock is a service's own: the conformance suite fails a platform that keeps
//! one lock for every service, under which a deployment of one service would stop those of
//! all the others.

use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{InMemoryPlatform, Platform, Result, TrackSpec, TrackStatus, testkit};
use serin_signals::Track;

/// Every service's lock is one lock (a lease or lock file with a fixed name).
struct OneLockForAll(InMemoryPlatform);

/// The one name the platform locks, whatever the service.
const ALL: &str = "all-services";

#[async_trait]
impl Platform for OneLockForAll {
    fn name(&self) -> &str {
        "one-lock"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.0.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.0.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.0.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.0.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.0.list().await
    }
    async fn lock(&self, _service: &str, holder: &str) -> Result<()> {
        self.0.lock(ALL, holder).await
    }
    async fn unlock(&self, _service: &str, holder: &str) -> Result<()> {
        self.0.unlock(ALL, holder).await
    }
    async fn lock_holder(&self, _service: &str) -> Result<Option<String>> {
        self.0.lock_holder(ALL).await
    }
}

fn template() -> TrackSpec {
    TrackSpec::new("shop", "3.1.4", Track::Stable, 1).unwrap()
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "a deployment of one service must not hold back another's")]
async fn a_platform_with_one_lock_for_every_service_fails_the_suite() {
    testkit::check_lock(&OneLockForAll(InMemoryPlatform::new()), &template()).await;
}

#[tokio::test(start_paused = true)]
async fn the_in_memory_platform_locks_each_service_apart() {
    testkit::check_lock(&InMemoryPlatform::new(), &template()).await;
}
