//! [`ProxiedPlatform`]: a [`Platform`] whose tracks the [`ProxyRouter`] follows, so that bringing
//! tracks up and retiring them can never fail a request.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{Platform, TrackSpec, TrackStatus};
use serin_signals::Track;

use crate::process::ProcessPlatform;
use crate::proxy::ProxyRouter;

/// A platform with the proxy kept in step with it.
///
/// The proxy routes only to the instances it is given. This wrapper gives it, for each track,
/// the instances the platform reports ready — at every bring-up, status read and scale, and on
/// each pass of [`sync`](ProxiedPlatform::sync) — and retires a track in the only order that
/// drops nothing: take the track's instances out of the proxy, wait until no request is in
/// flight on them, and only then stop the processes.
///
/// A status read that started before a bring-up or retire of the same track is never given to
/// the proxy after it (each track carries a generation number), so a retired track cannot come
/// back into the proxy from a stale read.
///
/// Scaling a track down stops instances the proxy still lists until the next status read; the
/// proxy then retries requests whose connection failed before any byte was sent on another
/// instance. Retire the track instead where no retry may happen.
pub struct ProxiedPlatform<P = ProcessPlatform> {
    platform: P,
    router: ProxyRouter,
    /// Per track: the generation, bumped at every bring-up and retire, and whether the track
    /// is retired (withheld from the proxy).
    tracks: Mutex<BTreeMap<String, (u64, bool)>>,
}

impl<P: Platform> ProxiedPlatform<P> {
    /// Wraps `platform` so that `router` follows it.
    pub fn new(platform: P, router: ProxyRouter) -> Self {
        ProxiedPlatform {
            platform,
            router,
            tracks: Mutex::new(BTreeMap::new()),
        }
    }

    /// The wrapped platform.
    pub fn inner(&self) -> &P {
        &self.platform
    }

    fn tracks(&self) -> MutexGuard<'_, BTreeMap<String, (u64, bool)>> {
        self.tracks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn generation(&self, track: &str) -> u64 {
        self.tracks().get(track).map_or(0, |(g, _)| *g)
    }

    /// Gives the proxy the ready instances of `status`, unless the track was brought up or
    /// retired since `generation` was read, or is retired.
    fn offer(&self, status: &TrackStatus, generation: u64) {
        let tracks = self.tracks();
        let (current, retired) = tracks
            .get(status.track.as_str())
            .copied()
            .unwrap_or((0, false));
        if current == generation && !retired {
            self.router.sync_track(status);
        }
    }

    /// One pass over every track: instances that became ready or died since the last read reach
    /// the proxy. A platform error leaves the proxy as it was (the next pass tries again).
    pub async fn sync(&self) {
        let before = self.tracks().clone();
        if let Ok(tracks) = self.platform.list().await {
            for t in &tracks {
                let g = before.get(t.track.as_str()).map_or(0, |(g, _)| *g);
                self.offer(t, g);
            }
        }
    }
}

impl<P: Platform + 'static> ProxiedPlatform<P> {
    /// Runs [`sync`](ProxiedPlatform::sync) every `every` on the tokio runtime, until the
    /// platform is dropped (the task holds only a weak reference).
    pub fn spawn_sync(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(platform) = weak.upgrade() {
                platform.sync().await;
                drop(platform);
                tokio::time::sleep(every).await;
            }
        })
    }
}

#[async_trait]
impl<P: Platform> Platform for ProxiedPlatform<P> {
    fn name(&self) -> &str {
        self.platform.name()
    }

    async fn bring_up(&self, spec: &TrackSpec) -> serin_orchestrator::Result<TrackStatus> {
        let g = {
            let mut tracks = self.tracks();
            let e = tracks.entry(spec.track().to_string()).or_insert((0, false));
            *e = (e.0 + 1, false);
            e.0
        };
        let status = self.platform.bring_up(spec).await?;
        self.offer(&status, g);
        Ok(status)
    }

    async fn status(
        &self,
        service: &str,
        track: &Track,
    ) -> serin_orchestrator::Result<TrackStatus> {
        let g = self.generation(track.as_str());
        let status = self.platform.status(service, track).await?;
        self.offer(&status, g);
        Ok(status)
    }

    async fn scale(
        &self,
        service: &str,
        track: &Track,
        instances: u32,
    ) -> serin_orchestrator::Result<TrackStatus> {
        let g = self.generation(track.as_str());
        let status = self.platform.scale(service, track, instances).await?;
        self.offer(&status, g);
        Ok(status)
    }

    /// Takes the track out of the proxy, waits until nothing is in flight on it (at most
    /// `drain`, and at least 5 s so a slow answer is not cut off), then retires it.
    async fn retire(
        &self,
        service: &str,
        track: &Track,
        drain: Duration,
    ) -> serin_orchestrator::Result<()> {
        let endpoints = {
            let mut tracks = self.tracks();
            let e = tracks.entry(track.to_string()).or_insert((0, false));
            *e = (e.0 + 1, true);
            let endpoints = self.router.endpoints(track.as_str());
            self.router.set_endpoints(track.as_str(), &[]);
            endpoints
        };
        self.router
            .wait_drained(&endpoints, drain.max(Duration::from_secs(5)))
            .await;
        self.platform.retire(service, track, Duration::ZERO).await
    }

    async fn list(&self) -> serin_orchestrator::Result<Vec<TrackStatus>> {
        self.platform.list().await
    }
}
