//! [`InMemoryPlatform`]: a [`Platform`] that runs nothing, scriptable for tests and dry runs.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use serin_signals::{ProbeStatus, Track};

use crate::error::{Error, Result};
use crate::platform::Platform;
use crate::platform::spec::{TrackKey, TrackSpec, validate_instances};
use crate::platform::status::{InstanceStatus, TrackStatus};

/// A platform that only keeps books: instances exist as records that become ready after a set
/// number of status checks, and can be made to die or never become ready. Scaling down stops
/// dead instances first, then unready ones, then ready ones, newest first within each, as the
/// [`Platform`] contract asks; [`scale_down`](Platform::scale_down) stops the instances it
/// names.
///
/// Always compiled and needing no runtime of its own, it is the platform of tests, examples and
/// dry runs. It sleeps nowhere: [`retire`](Platform::retire) records the drain it was given
/// (see [`retirements`](InMemoryPlatform::retirements)) instead of waiting, so the timing of a
/// deployment on it is the orchestrator's alone. Its instances serve nothing, so no request is
/// ever in flight on them, and the [`Platform`] contract lets a retire that knows it end at
/// once; its conformance tests say so (`PlatformFixture::waits_drain` of the `testkit` suite).
///
/// ```
/// use serin_orchestrator::{InMemoryPlatform, Platform, TrackSpec};
/// use serin_signals::Track;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let platform = InMemoryPlatform::new().with_ready_after(1);
/// let spec = TrackSpec::new("web", "1.1.0", Track::Green, 2)?;
/// let up = platform.bring_up(&spec).await?;
/// assert_eq!(up.ready_count(), 0);
/// assert!(platform.status("web", &Track::Green).await?.all_ready());
/// platform.kill("web", &Track::Green, "green-1", "exited with status 1")?;
/// assert_eq!(platform.status("web", &Track::Green).await?.ready_count(), 1);
/// # Ok::<(), serin_orchestrator::Error>(())
/// # }).unwrap();
/// ```
#[derive(Debug)]
pub struct InMemoryPlatform {
    name: String,
    ready_after: u32,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    tracks: BTreeMap<TrackKey, Running>,
    fail_next: Option<String>,
    retirements: Vec<(TrackKey, Duration)>,
    /// Deployment locks: service -> holder.
    locks: BTreeMap<String, String>,
}

#[derive(Debug)]
struct Running {
    version: semver::Version,
    next_index: u32,
    instances: Vec<Instance>,
}

#[derive(Debug)]
struct Instance {
    id: String,
    checks: u32,
    ready_after: u32,
    dead: Option<String>,
}

impl Default for InMemoryPlatform {
    fn default() -> Self {
        Self::new()
    }
}

impl InMemoryPlatform {
    /// A platform named `in-memory` whose instances are ready from their first status check.
    pub fn new() -> Self {
        InMemoryPlatform {
            name: "in-memory".to_owned(),
            ready_after: 0,
            state: Mutex::new(State::default()),
        }
    }

    /// Instances started from now on become ready after `checks` status checks (`u32::MAX`:
    /// never).
    pub fn with_ready_after(mut self, checks: u32) -> Self {
        self.ready_after = checks;
        self
    }

    /// The same platform under another name.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// Makes the next `bring_up`, `scale`, `scale_down` or `retire` fail with
    /// [`Error::Platform`] and change nothing.
    pub fn fail_next(&self, reason: impl Into<String>) {
        self.state().fail_next = Some(reason.into());
    }

    /// Makes `instance` of the track die: from now on it is reported not live and not ready,
    /// with `reason` as detail. It is not restarted.
    pub fn kill(&self, service: &str, track: &Track, instance: &str, reason: &str) -> Result<()> {
        let key = TrackKey::new(service, track);
        let mut state = self.state();
        let running = state
            .tracks
            .get_mut(&key)
            .ok_or_else(|| Error::not_found("track", &key))?;
        let found = running
            .instances
            .iter_mut()
            .find(|i| i.id == instance)
            .ok_or_else(|| Error::not_found("instance", format!("{key}/{instance}")))?;
        found.dead = Some(reason.to_owned());
        Ok(())
    }

    /// Every retirement so far, oldest first, with the drain it was given.
    pub fn retirements(&self) -> Vec<(TrackKey, Duration)> {
        self.state().retirements.clone()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::lock(&self.state)
    }

    fn take_failure(&self, state: &mut State) -> Result<()> {
        match state.fail_next.take() {
            Some(reason) => Err(Error::platform(&self.name, reason)),
            None => Ok(()),
        }
    }

    fn new_instance(&self, track: &Track, index: u32) -> Instance {
        Instance {
            id: format!("{track}-{index}"),
            checks: 0,
            ready_after: self.ready_after,
            dead: None,
        }
    }
}

/// Stops instances until `want` are left, in the order the [`Platform`] contract asks for
/// (see [`TrackStatus::scale_down_choice`]).
fn scale_down(key: &TrackKey, running: &mut Running, want: u32) {
    let status = report(key, running);
    let doomed: Vec<&str> = status
        .scale_down_choice(want)
        .into_iter()
        .map(|i| i.id.as_str())
        .collect();
    running
        .instances
        .retain(|i| !doomed.contains(&i.id.as_str()));
}

fn report(key: &TrackKey, running: &Running) -> TrackStatus {
    TrackStatus {
        service: key.service.clone(),
        version: running.version.clone(),
        track: key.track.clone(),
        instances: running
            .instances
            .iter()
            .map(|i| {
                let (readiness, liveness, detail) = match &i.dead {
                    Some(why) => (ProbeStatus::Fail, ProbeStatus::Fail, Some(why.clone())),
                    None if i.checks >= i.ready_after => {
                        (ProbeStatus::Pass, ProbeStatus::Pass, None)
                    }
                    None => (
                        ProbeStatus::Fail,
                        ProbeStatus::Pass,
                        Some(format!("not ready after {} checks", i.checks)),
                    ),
                };
                InstanceStatus {
                    id: i.id.clone(),
                    address: None,
                    readiness,
                    liveness,
                    detail,
                }
            })
            .collect(),
    }
}

#[async_trait]
impl Platform for InMemoryPlatform {
    fn name(&self) -> &str {
        &self.name
    }

    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        let key = spec.key();
        let mut state = self.state();
        if state.tracks.contains_key(&key) {
            return Err(Error::AlreadyExists {
                what: "track".into(),
                name: key.to_string(),
                reason: "retire it first, or bring the version up as another track".into(),
            });
        }
        self.take_failure(&mut state)?;
        let running = Running {
            version: spec.version().clone(),
            next_index: spec.instances(),
            instances: (0..spec.instances())
                .map(|i| self.new_instance(spec.track(), i))
                .collect(),
        };
        let status = report(&key, &running);
        state.tracks.insert(key, running);
        Ok(status)
    }

    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        let key = TrackKey::new(service, track);
        let mut state = self.state();
        let running = state
            .tracks
            .get_mut(&key)
            .ok_or_else(|| Error::not_found("track", &key))?;
        for i in &mut running.instances {
            i.checks = i.checks.saturating_add(1);
        }
        Ok(report(&key, running))
    }

    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        validate_instances("instances", instances)?;
        let key = TrackKey::new(service, track);
        let mut state = self.state();
        if !state.tracks.contains_key(&key) {
            return Err(Error::not_found("track", &key));
        }
        self.take_failure(&mut state)?;
        let Some(running) = state.tracks.get_mut(&key) else {
            return Err(Error::not_found("track", &key));
        };
        let want = instances as usize;
        scale_down(&key, running, instances);
        while running.instances.len() < want {
            let index = running.next_index;
            running.next_index = running.next_index.saturating_add(1);
            running.instances.push(self.new_instance(track, index));
        }
        Ok(report(&key, running))
    }

    async fn scale_down(
        &self,
        service: &str,
        track: &Track,
        ids: &[String],
    ) -> Result<TrackStatus> {
        let key = TrackKey::new(service, track);
        let mut state = self.state();
        let running = state
            .tracks
            .get(&key)
            .ok_or_else(|| Error::not_found("track", &key))?;
        let running: Vec<&str> = running.instances.iter().map(|i| i.id.as_str()).collect();
        crate::platform::check_scale_down(&key, &running, ids)?;
        self.take_failure(&mut state)?;
        let Some(running) = state.tracks.get_mut(&key) else {
            return Err(Error::not_found("track", &key));
        };
        running.instances.retain(|i| !ids.contains(&i.id));
        Ok(report(&key, running))
    }

    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        let key = TrackKey::new(service, track);
        let mut state = self.state();
        if !state.tracks.contains_key(&key) {
            return Err(Error::not_found("track", &key));
        }
        self.take_failure(&mut state)?;
        state.tracks.remove(&key);
        state.retirements.push((key, drain));
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TrackStatus>> {
        let state = self.state();
        Ok(state.tracks.iter().map(|(k, r)| report(k, r)).collect())
    }

    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        let mut state = self.state();
        match state.locks.get(service) {
            Some(h) if h != holder => Err(Error::conflict(
                "lock",
                service,
                format!("deployment {h} holds the lock of this service"),
            )),
            _ => {
                state.locks.insert(service.to_owned(), holder.to_owned());
                Ok(())
            }
        }
    }

    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        let mut state = self.state();
        if state.locks.get(service).is_some_and(|h| h == holder) {
            state.locks.remove(service);
        }
        Ok(())
    }

    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        Ok(self.state().locks.get(service).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::testkit;

    /// Waits for the canary track of `web` on `p` to be ready.
    async fn wait_canary(
        p: &InMemoryPlatform,
        poll: Duration,
        timeout: Duration,
    ) -> Result<TrackStatus> {
        crate::wait_ready(p, "web", &Track::Canary, poll, timeout).await
    }

    fn spec(track: Track, n: u32) -> TrackSpec {
        TrackSpec::new("web", "1.0.0", track, n).unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn conformance() {
        let platform = InMemoryPlatform::new().with_ready_after(3);
        let fixture =
            testkit::Template::new(spec(Track::Blue, 1), Duration::from_secs(5)).recording_drains();
        testkit::check_all_with(&platform, &fixture).await;
    }

    /// Kills instances with [`InMemoryPlatform::kill`].
    struct Killer<'a>(&'a InMemoryPlatform);

    #[async_trait]
    impl testkit::PlatformFixture for Killer<'_> {
        fn template(&self) -> TrackSpec {
            spec(Track::Blue, 1)
        }
        fn ready_timeout(&self) -> Duration {
            Duration::from_secs(5)
        }
        fn waits_drain(&self) -> bool {
            false
        }
        async fn kill(&self, service: &str, track: &Track, instance: &str) -> Result<bool> {
            self.0
                .kill(service, track, instance, "killed by the suite")?;
            Ok(true)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn conformance_with_dead_instances() {
        let platform = InMemoryPlatform::new().with_ready_after(2);
        testkit::check_all_with(&platform, &Killer(&platform)).await;
    }

    #[tokio::test]
    async fn injected_failures_change_nothing() {
        let p = InMemoryPlatform::new();
        p.fail_next("quota exceeded");
        let err = p.bring_up(&spec(Track::Blue, 1)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "platform `in-memory` failed: quota exceeded"
        );
        assert!(p.list().await.unwrap().is_empty());
        p.bring_up(&spec(Track::Blue, 2)).await.unwrap();
        p.fail_next("api down");
        assert!(p.scale("web", &Track::Blue, 4).await.is_err());
        assert_eq!(
            p.status("web", &Track::Blue).await.unwrap().instances.len(),
            2
        );
        p.fail_next("api down");
        assert!(p.retire("web", &Track::Blue, Duration::ZERO).await.is_err());
        assert_eq!(p.list().await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn dead_instances_stay_dead_and_scale_keeps_ids_unique() {
        let p = InMemoryPlatform::new();
        p.bring_up(&spec(Track::Green, 2)).await.unwrap();
        p.kill("web", &Track::Green, "green-0", "exited with status 3")
            .unwrap();
        let s = p.status("web", &Track::Green).await.unwrap();
        let dead = s.dead_instance().unwrap();
        assert_eq!(
            (dead.id.as_str(), dead.detail.as_deref()),
            ("green-0", Some("exited with status 3"))
        );
        assert!(p.kill("web", &Track::Green, "green-9", "x").is_err());
        // The dead instance goes first.
        p.scale("web", &Track::Green, 1).await.unwrap();
        let s = p.scale("web", &Track::Green, 3).await.unwrap();
        let ids: Vec<&str> = s.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["green-1", "green-2", "green-3"]);
        assert!(s.dead_instance().is_none(), "{s:?}");
    }

    /// A scale-down of named instances stops those, whatever the platform's own choice would
    /// be, and refuses an unknown one or stopping them all, changing nothing.
    #[tokio::test]
    async fn a_scale_down_of_named_instances_stops_those_alone() {
        let names = |ids: &[&str]| -> Vec<String> { ids.iter().map(|&i| i.to_owned()).collect() };
        let p = InMemoryPlatform::new();
        p.bring_up(&spec(Track::Green, 3)).await.unwrap();
        // The oldest ready one, which a scale to 2 would keep.
        let s = p
            .scale_down("web", &Track::Green, &names(&["green-0"]))
            .await
            .unwrap();
        let ids: Vec<&str> = s.instances.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["green-1", "green-2"]);
        let unknown = p
            .scale_down("web", &Track::Green, &names(&["green-1", "green-9"]))
            .await
            .unwrap_err();
        assert!(matches!(unknown, Error::NotFound { .. }), "{unknown}");
        assert!(unknown.to_string().contains("green-9"), "{unknown}");
        let all = p
            .scale_down("web", &Track::Green, &names(&["green-1", "green-2"]))
            .await
            .unwrap_err();
        assert!(matches!(all, Error::InvalidField { .. }), "{all}");
        assert_eq!(
            p.status("web", &Track::Green)
                .await
                .unwrap()
                .instances
                .len(),
            2
        );
    }

    /// A scale-down stops dead instances first, then unready ones, then ready ones, newest first
    /// within each: a crashed instance is never kept in place of a healthy one.
    #[tokio::test]
    async fn scaling_down_stops_dead_then_unready_then_newest_ready_instances() {
        let ids = |s: &TrackStatus| -> Vec<String> {
            s.instances.iter().map(|i| i.id.clone()).collect::<Vec<_>>()
        };
        let p = InMemoryPlatform::new().with_ready_after(1);
        p.bring_up(&spec(Track::Green, 3)).await.unwrap();
        p.status("web", &Track::Green).await.unwrap();
        // green-3 and green-4 start unready; green-0 dies.
        p.scale("web", &Track::Green, 5).await.unwrap();
        p.kill("web", &Track::Green, "green-0", "exited with status 1")
            .unwrap();
        let s = p.scale("web", &Track::Green, 4).await.unwrap();
        assert_eq!(ids(&s), ["green-1", "green-2", "green-3", "green-4"]);
        let s = p.scale("web", &Track::Green, 3).await.unwrap();
        assert_eq!(ids(&s), ["green-1", "green-2", "green-3"]);
        let s = p.scale("web", &Track::Green, 2).await.unwrap();
        assert_eq!(ids(&s), ["green-1", "green-2"]);
        p.kill("web", &Track::Green, "green-1", "exited with status 1")
            .unwrap();
        let s = p.scale("web", &Track::Green, 1).await.unwrap();
        assert_eq!(ids(&s), ["green-2"]);
        assert!(s.all_ready(), "{s:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn wait_ready_times_out_or_stops_on_a_death() {
        let p = InMemoryPlatform::new().with_ready_after(u32::MAX);
        p.bring_up(&spec(Track::Canary, 1)).await.unwrap();
        let err = wait_canary(&p, Duration::from_millis(100), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("canary-0"), "{err}");
        p.kill("web", &Track::Canary, "canary-0", "segfault")
            .unwrap();
        let err = wait_canary(&p, Duration::from_millis(100), Duration::from_secs(2))
            .await
            .unwrap_err();
        assert!(
            matches!(err, Error::Platform { .. }) && err.to_string().contains("segfault"),
            "{err}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_poll_longer_than_the_timeout_still_times_out_on_time() {
        let p = InMemoryPlatform::new().with_ready_after(u32::MAX);
        p.bring_up(&spec(Track::Canary, 1)).await.unwrap();
        let started = tokio::time::Instant::now();
        let err = wait_canary(&p, Duration::from_secs(60), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_timeout_past_what_the_clock_holds_never_ends_the_wait() {
        let p = InMemoryPlatform::new().with_ready_after(3);
        p.bring_up(&spec(Track::Canary, 1)).await.unwrap();
        let status = wait_canary(&p, Duration::from_millis(100), Duration::MAX)
            .await
            .expect("ready");
        assert!(status.all_ready());
    }
}
