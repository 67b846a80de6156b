//! The [`Platform`] trait: what runs the instances of each track (processes on one machine, a
//! simulated fleet, Kubernetes Deployments), its in-memory implementation and, behind the
//! `testkit` feature, its conformance suite.

mod memory;
mod spec;
mod status;
#[cfg(any(feature = "testkit", test))]
pub mod testkit;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serin_signals::Track;

use crate::error::{Error, Result};

pub use memory::InMemoryPlatform;
pub(crate) use spec::validate_service;
pub use spec::{RESERVED_ENV, TrackKey, TrackSpec};
pub use status::{InstanceStatus, TrackStatus};

/// Something that runs tracks: brings a version up as N instances, reports their readiness and
/// liveness, scales them, retires them with a drain, and lists what runs.
///
/// The contract, checked by the conformance suite in `testkit` (feature `testkit`):
/// - [`bring_up`](Platform::bring_up) starts the instances and returns at once, without waiting
///   for readiness; a track of a service runs once ([`Error::AlreadyExists`] otherwise). Bad
///   input or a start failure is an error and leaves nothing running.
/// - [`status`](Platform::status) reports each instance with readiness and liveness as last
///   checked; an instance that died is reported dead, never restarted silently.
/// - [`scale`](Platform::scale) adds instances with new ids, or removes dead instances first,
///   then unready ones, then ready ones, newest first within each, as a Kubernetes ReplicaSet
///   picks the pods to delete: a crashed instance is never kept in place of a healthy one.
///   [`TrackStatus::scale_down_choice`] gives that choice from a status. Every built-in
///   platform (in-memory, process, simulated) does so, and the conformance suite checks it.
/// - [`scale_down`](Platform::scale_down) stops the instances it names, and no other, or
///   refuses (changing nothing) an id the track does not run and a call that would leave none.
/// - [`retire`](Platform::retire) drains, then stops every instance; the track is then gone,
///   and a `bring_up` of it succeeds at once (blue-green alternates two tracks). The router has
///   already stopped sending the track new requests, so the drain lets those in flight finish:
///   a platform that sees them (one that keeps a proxy in step with it) waits until none is
///   left or `drain` has passed, whichever comes first, as Envoy and nginx drain until idle or
///   a timeout; one that cannot tell waits the whole of `drain`. Either way `drain` bounds the
///   wait (the orchestrator gives a retire that much time on top of its own bound), and the
///   instances run until it ends.
/// - Calls about a track that does not run are [`Error::NotFound`].
/// - [`lock`](Platform::lock) gives a service's deployment lock to one holder at a time, and
///   again to the same holder (a resumed deployment takes back its own lock);
///   [`unlock`](Platform::unlock) by the holder frees it, and
///   [`lock_holder`](Platform::lock_holder) reads who holds it without taking it. A platform
///   that several orchestrators share (processes on one machine, a cluster) keeps the lock
///   where they all see it; the default is no lock of the platform's own (each orchestrator
///   still locks in-process), which only a platform one orchestrator alone uses may keep, and
///   its conformance test must say so
///   (`testkit::PlatformFixture::keeps_own_lock`). A `lock` call dropped before it answers (the
///   orchestrator bounds each call) may have taken the lock; `unlock` by the same holder frees
///   it, and the orchestrator does so for a start that gave up.
///
/// The suite measures the drain on `tokio::time`'s clock (the whole of it, unless the fixture
/// says the platform ends it once nothing is in flight) and, with a fixture that can hold a
/// request in flight, checks that the request is answered before the retire returns; it brings
/// a retired track up again at once, stops named instances and refuses unknown ones, orders
/// the listing, holds the lock against a second holder while another service's lock stays
/// free, reads its holder back and, with a fixture that can kill an instance, checks that the
/// dead instance is reported dead, stays so and is the one a scale-down stops.
///
/// The trait is object-safe; `Arc<T>` and `Box<T>` forward to `T`.
#[async_trait]
pub trait Platform: Send + Sync {
    /// A short name for messages and errors (`in-memory`, `process`).
    fn name(&self) -> &str;

    /// Starts `spec.instances()` instances of the spec's version as its track.
    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus>;

    /// The track's instances with their readiness and liveness, checked now.
    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus>;

    /// Runs `instances` instances of the track (1 ..= [`TrackSpec::MAX_INSTANCES`]).
    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus>;

    /// Stops the instances of the track named by `ids` (as its status names them), and no
    /// other. A caller that has drained given instances (a wrapper that keeps a router in
    /// step) stops them so: a [`scale`](Platform::scale) chooses on its own read of the
    /// instances, which may differ from the caller's if one's readiness changed in between,
    /// and would then stop an instance still routed and undrained. An id the track does not
    /// run ([`Error::NotFound`]) or stopping every instance ([`Error::InvalidField`]; retire
    /// the track to run none) is refused, changing nothing (see [`check_scale_down`]).
    ///
    /// The default, for a platform that can only scale by a count, reads the status and
    /// scales to the count left: it stops the named instances when they are the platform's
    /// own choice ([`TrackStatus::scale_down_choice`]) at its read, as they are for a caller
    /// that chose them from a status read just before, but may stop others if the instances
    /// changed in between. A platform that can stop given instances overrides it, as the
    /// in-memory and process platforms do.
    async fn scale_down(
        &self,
        service: &str,
        track: &Track,
        ids: &[String],
    ) -> Result<TrackStatus> {
        let status = self.status(service, track).await?;
        let running: Vec<&str> = status.instances.iter().map(|i| i.id.as_str()).collect();
        check_scale_down(&status.key(), &running, ids)?;
        let left = running
            .iter()
            .filter(|id| !ids.iter().any(|s| s == *id))
            .count();
        self.scale(service, track, u32::try_from(left).unwrap_or(u32::MAX))
            .await
    }

    /// Waits until the track's in-flight requests have finished or `drain` has passed
    /// (the whole of `drain`, for a platform that cannot tell), then stops every instance of
    /// the track and forgets it.
    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()>;

    /// Every track that runs, ordered by service then track.
    async fn list(&self) -> Result<Vec<TrackStatus>>;

    /// Takes the deployment lock of `service` for `holder` (a deployment id). Held by another
    /// holder: [`Error::Conflict`] whose message names that holder, so that an operator knows
    /// which deployment to resume or abort (by convention `deployment` is the service and
    /// `reason` says who holds it: "deployment web-42 holds the lock of this service"). The lock outlives a crash of its holder, so a
    /// deployment found unfinished keeps its service locked until it is resumed (or aborted).
    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        let _ = (service, holder);
        Ok(())
    }

    /// Frees the deployment lock of `service` if `holder` holds it (otherwise does nothing).
    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        let _ = (service, holder);
        Ok(())
    }

    /// Who holds the deployment lock of `service`, read without taking it: the holder that a
    /// [`lock`](Platform::lock) by anyone else would be refused for, or `None` when `lock`
    /// would grant it to any holder. The dry run reads it to say that a start would be refused
    /// and which deployment to resume or abandon first.
    ///
    /// The default answers `None`, which is true of the default `lock`: it grants every
    /// request, so no holder of the platform's own is ever in the way (the orchestrator's
    /// in-process lock is not the platform's, and is not reported here). A platform that keeps
    /// a lock of its own overrides both; the conformance suite reads the holder back after a
    /// `lock`, so one that overrides `lock` alone fails it.
    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        let _ = service;
        Ok(None)
    }
}

/// A platform behind a smart pointer (`Arc<dyn Platform>`, `Box<dyn Platform>`) is the
/// platform it points to: every call is forwarded.
macro_rules! forward_platform {
    ($($pointer:ident),+) => {$(
        #[async_trait]
        impl<T: Platform + ?Sized> Platform for $pointer<T> {
            fn name(&self) -> &str {
                (**self).name()
            }
            async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
                (**self).bring_up(spec).await
            }
            async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
                (**self).status(service, track).await
            }
            async fn scale(
                &self,
                service: &str,
                track: &Track,
                instances: u32,
            ) -> Result<TrackStatus> {
                (**self).scale(service, track, instances).await
            }
            async fn scale_down(
                &self,
                service: &str,
                track: &Track,
                ids: &[String],
            ) -> Result<TrackStatus> {
                (**self).scale_down(service, track, ids).await
            }
            async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
                (**self).retire(service, track, drain).await
            }
            async fn list(&self) -> Result<Vec<TrackStatus>> {
                (**self).list().await
            }
            async fn lock(&self, service: &str, holder: &str) -> Result<()> {
                (**self).lock(service, holder).await
            }
            async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
                (**self).unlock(service, holder).await
            }
            async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
                (**self).lock_holder(service).await
            }
        }
    )+};
}

forward_platform!(Arc, Box);

/// Checks a [`scale_down`](Platform::scale_down) of the track `key`, whose instances are
/// `running` (their ids), stopping `ids`: each must name one of them ([`Error::NotFound`]
/// naming the instance otherwise), and one at least must be left ([`Error::InvalidField`]
/// otherwise: retire the track to run none). A platform that implements `scale_down` refuses
/// with it, before it stops anything.
pub fn check_scale_down(key: &TrackKey, running: &[&str], ids: &[String]) -> Result<()> {
    if let Some(unknown) = ids.iter().find(|id| !running.contains(&id.as_str())) {
        return Err(Error::not_found("instance", format!("{key}/{unknown}")));
    }
    if running.iter().all(|id| ids.iter().any(|s| s == id)) {
        return Err(Error::invalid(
            "ids",
            ids.join(","),
            format!("would stop every instance of {key} (retire the track to run none)"),
        ));
    }
    Ok(())
}

/// Asks `platform` for the track's status every `poll` until every instance is ready, and
/// returns that status.
///
/// An instance that dies while waiting ends the wait at once with [`Error::Platform`] naming it
/// (a platform never restarts it, so waiting longer cannot help); still not ready after
/// `timeout` is [`Error::Timeout`] with the last state seen. Waits with `tokio::time`, so tests
/// can run it under paused time.
pub async fn wait_ready(
    platform: &dyn Platform,
    service: &str,
    track: &Track,
    poll: Duration,
    timeout: Duration,
) -> Result<TrackStatus> {
    // A timeout past what the clock can hold never ends the wait.
    let deadline = tokio::time::Instant::now().checked_add(timeout);
    let poll = poll.max(Duration::from_millis(1));
    loop {
        let status = platform.status(service, track).await?;
        if let Some(e) = died_while_starting(platform.name(), &status) {
            return Err(e);
        }
        if status.all_ready() {
            return Ok(status);
        }
        let now = tokio::time::Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            return Err(not_ready(&status, timeout));
        }
        // A poll longer than what is left of the timeout is cut to it, so the wait ends at its
        // timeout, not up to a poll later.
        let nap = deadline.map_or(poll, |d| poll.min(d.saturating_duration_since(now)));
        tokio::time::sleep(nap).await;
    }
}

/// The error of a track one of whose instances died while it was starting (a platform never
/// restarts it, so waiting longer cannot help), if one did.
pub(crate) fn died_while_starting(platform: &str, status: &TrackStatus) -> Option<Error> {
    status.dead_instance().map(|dead| {
        Error::platform(
            platform,
            format!(
                "instance {} of {} died while starting: {}",
                dead.id,
                status.key(),
                dead.detail.as_deref().unwrap_or("no detail")
            ),
        )
    })
}

/// The error of a track still not ready after `timeout`, naming the instances it waits for.
pub(crate) fn not_ready(status: &TrackStatus, timeout: Duration) -> Error {
    let waiting: Vec<String> = status
        .instances
        .iter()
        .filter(|i| !i.is_ready())
        .map(|i| match &i.detail {
            Some(d) => format!("{} ({d})", i.id),
            None => i.id.clone(),
        })
        .collect();
    Error::Timeout {
        what: format!("readiness of {}", status.key()),
        after: timeout,
        reason: format!("not ready: {}", waiting.join(", ")),
    }
}
