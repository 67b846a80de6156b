//! A retired track is gone at once: the conformance suite fails a platform that still holds a
//! retired track's name when the next deployment brings that track up again (blue-green
//! alternates two tracks, so every other deployment reuses the name retired before it).

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{
    Error, InMemoryPlatform, Platform, Result, TrackSpec, TrackStatus, testkit,
};
use serin_signals::Track;

/// Retires a track from status and listing but keeps its name taken, as a cluster does while
/// it is still deleting what ran it.
struct Lingering {
    inner: InMemoryPlatform,
    retired: Mutex<BTreeSet<String>>,
}

#[async_trait]
impl Platform for Lingering {
    fn name(&self) -> &str {
        "lingering"
    }
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        let key = spec.key().to_string();
        if self.retired.lock().unwrap().contains(&key) {
            return Err(Error::AlreadyExists {
                what: "track".into(),
                name: key,
                reason: "still being deleted".into(),
            });
        }
        self.inner.bring_up(spec).await
    }
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        self.inner.status(service, track).await
    }
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        self.inner.scale(service, track, instances).await
    }
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        self.inner.retire(service, track, drain).await?;
        self.retired
            .lock()
            .unwrap()
            .insert(format!("{service}/{track}"));
        Ok(())
    }
    async fn list(&self) -> Result<Vec<TrackStatus>> {
        self.inner.list().await
    }
}

fn fixture() -> testkit::Template {
    let template = TrackSpec::new("shop", "3.1.4", Track::Stable, 1).unwrap();
    testkit::Template::new(template, Duration::from_secs(1))
        .recording_drains()
        .without_own_lock()
}

#[tokio::test(start_paused = true)]
#[should_panic(expected = "could not be brought up again right after it was retired")]
async fn a_platform_that_keeps_a_retired_track_taken_fails_the_suite() {
    let lingering = Lingering {
        inner: InMemoryPlatform::new(),
        retired: Mutex::new(BTreeSet::new()),
    };
    testkit::check_all_with(&lingering, &fixture()).await;
}
