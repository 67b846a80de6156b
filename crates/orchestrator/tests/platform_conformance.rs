//! The platform conformance suite as an implementation outside the crate runs it, through the
//! `Arc` and `Box` forwarding impls too, and a platform that breaks the contract is caught.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{InMemoryPlatform, Platform, Result, TrackSpec, TrackStatus, testkit};
use serin_signals::Track;

fn template() -> TrackSpec {
    TrackSpec::new("shop", "3.1.4", Track::Stable, 1).unwrap()
}

#[tokio::test(start_paused = true)]
async fn in_memory_passes_directly_and_through_arc_and_box() {
    testkit::check_all(
        &InMemoryPlatform::new(),
        &template(),
        Duration::from_secs(1),
    )
    .await;
    let shared: Arc<dyn Platform> = Arc::new(InMemoryPlatform::new().with_ready_after(5));
    testkit::check_all(&shared, &template(), Duration::from_secs(1)).await;
    let boxed: Box<dyn Platform> = Box::new(InMemoryPlatform::new().named("boxed"));
    testkit::check_all(&boxed, &template(), Duration::from_secs(1)).await;
}

/// Forgets to remove a retired track.
struct Forgetful(InMemoryPlatform);

#[async_trait]
impl Platform for Forgetful {
    fn name(&self) -> &str {
        "forgetful"
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
    async fn retire(&self, _service: &str, _track: &Track, _drain: Duration) -> Result<()> {
        Ok(())
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.0.list().await
    }
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "a retired track must be NotFound")]
async fn a_platform_that_keeps_retired_tracks_fails_the_suite() {
    testkit::check_retire(
        &Forgetful(InMemoryPlatform::new()),
        &template(),
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "never became ready")]
async fn instances_that_never_become_ready_fail_the_suite() {
    let never = InMemoryPlatform::new().with_ready_after(u32::MAX);
    testkit::check_bring_up_and_list(&never, &template(), Duration::from_secs(1)).await;
}

/// Names instances by their place in the track, so a new instance takes the id of one removed
/// before.
struct Renumbering(InMemoryPlatform);

fn renumbered(mut status: TrackStatus) -> TrackStatus {
    for (n, instance) in status.instances.iter_mut().enumerate() {
        instance.id = format!("{}-{n}", status.track);
    }
    status
}

#[async_trait]
impl Platform for Renumbering {
    fn name(&self) -> &str {
        "renumbering"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.0.bring_up(spec).await.map(renumbered)
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.0.status(service, track).await.map(renumbered)
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.0
            .scale(service, track, instances)
            .await
            .map(renumbered)
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.0.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        Ok(self.0.list().await?.into_iter().map(renumbered).collect())
    }
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "must add one instance with a new id")]
async fn a_platform_that_gives_a_new_instance_an_old_id_fails_the_suite() {
    testkit::check_scale(
        &Renumbering(InMemoryPlatform::new()),
        &template(),
        Duration::from_secs(1),
    )
    .await;
}
