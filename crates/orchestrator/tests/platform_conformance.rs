//! The platform conformance suite as an implementation outside the crate runs it, through the
//! `Arc` and `Box` forwarding impls too, and a platform that breaks the contract is caught.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    Error, InMemoryPlatform, Platform, Result, TrackSpec, TrackStatus, testkit,
};
use serin_signals::{ProbeStatus, Track};

fn template() -> TrackSpec {
    TrackSpec::new("shop", "3.1.4", Track::Stable, 1).unwrap()
}

#[tokio::test(start_paused = true)]
async fn in_memory_passes_directly_and_through_arc_and_box() {
    // The in-memory platform records its drains instead of waiting them.
    let fixture = testkit::Template::new(template(), Duration::from_secs(1)).recording_drains();
    testkit::check_all_with(&InMemoryPlatform::new(), &fixture).await;
    let shared: Arc<dyn Platform> = Arc::new(InMemoryPlatform::new().with_ready_after(5));
    testkit::check_all_with(&shared, &fixture).await;
    let boxed: Box<dyn Platform> = Box::new(InMemoryPlatform::new().named("boxed"));
    testkit::check_all_with(&boxed, &fixture).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "it must wait the drain before it stops the instances")]
async fn the_in_memory_platform_does_not_wait_its_drains() {
    testkit::check_retire(
        &InMemoryPlatform::new(),
        &template(),
        Duration::from_secs(1),
    )
    .await;
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
    async fn retire(&self, _service: &str, _track: &Track, drain: Duration) -> Result<()> {
        tokio::time::sleep(drain).await;
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

/// How a platform breaks the contract.
#[derive(Clone, Copy, PartialEq)]
enum Flaw {
    None,
    /// Retires at once, ignoring its drain.
    NoDrain,
    /// Lists tracks newest first.
    UnorderedList,
    /// Grants every lock.
    NoLock,
    /// Keeps a lock but never says who holds it (the default `lock_holder`).
    HolderUnread,
    /// Names the holder of a lock in the conflict's `deployment` field, not its reason.
    HolderInDeploymentField,
    /// Reports a dead instance alive and ready again once it has been reported dead (a silent
    /// restart).
    Resurrects,
    /// Never reports an instance dead.
    HidesDeaths,
}

struct Flawed {
    inner: InMemoryPlatform,
    flaw: Flaw,
    reported_dead: AtomicBool,
}

impl Flawed {
    fn new(flaw: Flaw) -> Self {
        Flawed {
            inner: InMemoryPlatform::new().with_ready_after(2),
            flaw,
            reported_dead: AtomicBool::new(false),
        }
    }

    fn restarted(&self, mut status: TrackStatus) -> TrackStatus {
        let restart = match self.flaw {
            Flaw::HidesDeaths => true,
            Flaw::Resurrects => {
                status.dead_instance().is_some() && self.reported_dead.swap(true, Ordering::SeqCst)
            }
            _ => false,
        };
        if restart {
            for i in &mut status.instances {
                i.liveness = ProbeStatus::Pass;
                i.readiness = ProbeStatus::Pass;
                i.detail = None;
            }
        }
        status
    }
}

#[async_trait]
impl Platform for Flawed {
    fn name(&self) -> &str {
        "flawed"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        let status = self.inner.status(service, track).await?;
        Ok(self.restarted(status))
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        if self.flaw != Flaw::NoDrain {
            tokio::time::sleep(drain).await;
        }
        self.inner.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        let mut listed = self.inner.list().await?;
        if self.flaw == Flaw::UnorderedList {
            listed.reverse();
        }
        Ok(listed)
    }
    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        match (self.flaw, self.inner.lock(service, holder).await) {
            (Flaw::NoLock, _) => Ok(()),
            (Flaw::HolderInDeploymentField, Err(Error::Conflict { .. })) => Err(Error::conflict(
                "lock",
                "tk-a",
                format!("service `{service}` is locked"),
            )),
            (_, other) => other,
        }
    }
    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        self.inner.unlock(service, holder).await
    }
    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        match self.flaw {
            Flaw::NoLock | Flaw::HolderUnread => Ok(None),
            _ => self.inner.lock_holder(service).await,
        }
    }
}

/// Kills instances of the platform it wraps as a crash would.
struct Killing<'a>(&'a Flawed);

#[async_trait]
impl testkit::PlatformFixture for Killing<'_> {
    fn template(&self) -> TrackSpec {
        template()
    }
    fn ready_timeout(&self) -> Duration {
        Duration::from_secs(1)
    }
    async fn kill(&self, service: &str, track: &Track, instance: &str) -> Result<bool> {
        self.0
            .inner
            .kill(service, track, instance, "exited with status 9")?;
        Ok(true)
    }
}

#[tokio::test(start_paused = true)]
async fn an_honest_platform_passes_with_every_fixture_hook() {
    let honest = Flawed::new(Flaw::None);
    testkit::check_all_with(&honest, &Killing(&honest)).await;
    // The holder may be named in any field, as long as the message names it.
    let other_field = Flawed::new(Flaw::HolderInDeploymentField);
    testkit::check_all_with(&other_field, &Killing(&other_field)).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "it must wait the drain before it stops the instances")]
async fn a_platform_that_retires_without_its_drain_fails_the_suite() {
    testkit::check_all(
        &Flawed::new(Flaw::NoDrain),
        &template(),
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "list must be ordered by service then track")]
async fn a_platform_that_lists_out_of_order_fails_the_suite() {
    testkit::check_all(
        &Flawed::new(Flaw::UnorderedList),
        &template(),
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "went to tk-b while tk-a held it")]
async fn a_platform_without_a_lock_fails_the_suite_unless_it_says_so() {
    let unlocked = Flawed::new(Flaw::NoLock);
    let said = testkit::Template::new(template(), Duration::from_secs(1)).without_own_lock();
    testkit::check_all_with(&unlocked, &said).await;
    testkit::check_all(&unlocked, &template(), Duration::from_secs(1)).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "the holder of the lock of shop-tk-lock read after tk-b was refused")]
async fn a_platform_that_keeps_a_lock_but_reads_no_holder_fails_the_suite() {
    testkit::check_all(
        &Flawed::new(Flaw::HolderUnread),
        &template(),
        Duration::from_secs(1),
    )
    .await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "reported dead, then alive again")]
async fn a_platform_that_restarts_a_dead_instance_silently_fails_the_suite() {
    let restarting = Flawed::new(Flaw::Resurrects);
    testkit::check_dead_reported(&restarting, &Killing(&restarting)).await;
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "was killed but is still not reported dead")]
async fn a_platform_that_hides_a_dead_instance_fails_the_suite() {
    let hiding = Flawed::new(Flaw::HidesDeaths);
    testkit::check_dead_reported(&hiding, &Killing(&hiding)).await;
}
