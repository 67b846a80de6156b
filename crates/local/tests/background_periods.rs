//! The background passes (`HttpHealth::spawn_refresh`, `ProxiedPlatform::spawn_sync`) given a
//! zero period still pause between passes: they never run back to back, starving the runtime
//! and hammering the platform.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use serin_local::{HttpHealth, ProbePaths, ProxiedPlatform, ProxyConfig, ProxyRouter};
use serin_orchestrator::{InMemoryPlatform, Platform, Result, TrackSpec, TrackStatus};
use serin_signals::Track;

/// An in-memory platform that counts the passes over it (its `list` calls).
#[derive(Default)]
struct Listed {
    platform: InMemoryPlatform,
    lists: AtomicUsize,
}

impl Listed {
    fn lists(&self) -> usize {
        self.lists.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl Platform for Listed {
    fn name(&self) -> &str {
        "listed"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        self.platform.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.platform.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.platform.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.platform.retire(service, track, drain).await
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.lists.fetch_add(1, Ordering::SeqCst);
        self.platform.list().await
    }
}

/// Lets the spawned task run as much as it will while the clock stands still, then moves the
/// clock by 10 ms: the passes made meanwhile are one at the start and one per millisecond.
async fn passes_stay_paced(lists: impl Fn() -> usize) {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
    assert_eq!(lists(), 1, "passes ran back to back while no time passed");
    for _ in 0..10 {
        tokio::time::advance(Duration::from_millis(1)).await;
        tokio::task::yield_now().await;
    }
    let passes = lists();
    assert!((2..=11).contains(&passes), "{passes} passes in 10 ms");
}

#[tokio::test(start_paused = true)]
async fn a_zero_refresh_period_is_taken_as_one_millisecond() {
    let platform = Arc::new(Listed::default());
    let health = Arc::new(HttpHealth::new(Duration::from_secs(2)).unwrap());
    let task = health.spawn_refresh(
        platform.clone(),
        "web",
        ProbePaths::new("/ready", "/live"),
        Duration::ZERO,
    );
    passes_stay_paced(|| platform.lists()).await;
    task.abort();
}

#[tokio::test(start_paused = true)]
async fn a_zero_sync_period_is_taken_as_one_millisecond() {
    let router = ProxyRouter::bind(ProxyConfig::default()).await.unwrap();
    let proxied = Arc::new(ProxiedPlatform::new(Listed::default(), router.clone()));
    proxied
        .bring_up(&TrackSpec::new("web", "1.0.0", Track::Blue, 1).unwrap())
        .await
        .unwrap();
    let task = proxied.spawn_sync(Duration::ZERO);
    passes_stay_paced(|| proxied.inner().lists()).await;
    task.abort();
    router.shutdown();
}
