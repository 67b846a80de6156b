//! [`SimPlatform`]: the world as a [`Platform`].

use std::time::Duration;

use async_trait::async_trait;
use serin_orchestrator::{Error, Platform, Result, TrackKey, TrackSpec, TrackStatus};
use serin_signals::{ProbeStatus, Timestamp, Track};

use crate::fault::Fault;
use crate::timeline::EventKind;
use crate::world::{Incarnation, Instance, SimWorld, State};

/// The name the simulated platform gives in messages and errors.
const NAME: &str = "sim";

/// The simulated world as a [`Platform`]: tracks whose instances start, become ready, flap and
/// crash as their version's profile and the scripted faults say, at virtual times.
///
/// `bring_up` returns at once; instances become ready after their startup time as the virtual
/// clock moves on. `retire` waits its drain with `tokio::time::sleep`, so the drain passes in
/// virtual time. Every call that changes something (or fails) is recorded in the world's
/// timeline; `status`, `list` and `lock_holder` only read. Instances are named
/// `<track>-<n>`, numbered from 0 in order of start. Scaling down stops dead instances first,
/// then unready ones, then ready ones, newest first within each, as a Kubernetes ReplicaSet
/// chooses the pods to delete: a crashed instance is never kept in place of a healthy one.
///
/// The deployment lock of a service is the world's, so every view of the world (every
/// orchestrator over it) sees it: it goes to one holder at a time, again to the same holder,
/// and only its holder frees it. An executor killed mid-deployment leaves it held, and one
/// restarted over the same world finds it so until it resumes (or abandons) that deployment,
/// as on a platform that several processes share. Taking, refusing and freeing it are in the
/// timeline (reading its holder, which changes nothing, is not). The lock is the platform's (a
/// Kubernetes Lease, a file), so a platform-errors fault fails its calls too: `lock`, `unlock`
/// and `lock_holder` fail with the fault's message and no holder changes.
///
/// ```
/// use std::time::Duration;
/// use serin_orchestrator::{Platform, TrackSpec, wait_ready};
/// use serin_sim::{SimConfig, SimWorld};
/// use serin_signals::Track;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap().block_on(async {
/// let world = SimWorld::new(SimConfig::new(1))?;
/// let platform = world.platform();
/// platform.bring_up(&TrackSpec::new("web", "1.0.0", Track::Stable, 2)?).await?;
/// assert_eq!(platform.status("web", &Track::Stable).await?.ready_count(), 0);
/// // The default profile starts in five seconds of virtual time.
/// let up = wait_ready(&platform, "web", &Track::Stable, Duration::from_secs(1), Duration::from_secs(30)).await?;
/// assert_eq!(up.ready_count(), 2);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Debug, Clone)]
pub struct SimPlatform {
    world: SimWorld,
}

impl SimPlatform {
    pub(crate) fn new(world: SimWorld) -> Self {
        SimPlatform { world }
    }

    /// The world this platform belongs to.
    pub fn world(&self) -> &SimWorld {
        &self.world
    }
}

/// What the platform says while a platform-errors fault is active at `now`.
fn platform_error(state: &State, now: Timestamp) -> Option<String> {
    state.active_fault(now, |f, since| match f {
        Fault::PlatformErrors { span, message } if span.contains(since) => Some(message.clone()),
        _ => None,
    })
}

/// Fails the call when a platform-errors fault is active, recording the failure.
fn check_faults(
    state: &mut State,
    now: Timestamp,
    call: &str,
    service: &str,
    track: &Track,
) -> Result<()> {
    match platform_error(state, now) {
        Some(reason) => {
            let error = Error::platform(NAME, reason.clone());
            Err(failed(state, now, call, service, track, reason, error))
        }
        None => Ok(()),
    }
}

/// Fails `holder`'s `call` about the deployment lock of `service` when a platform-errors fault
/// is active, recording the failure; nothing else is touched.
fn check_lock_faults(
    state: &mut State,
    now: Timestamp,
    call: &str,
    service: &str,
    holder: &str,
) -> Result<()> {
    let Some(reason) = platform_error(state, now) else {
        return Ok(());
    };
    state.push(
        now,
        EventKind::LockCallFailed {
            call: call.to_owned(),
            service: service.to_owned(),
            holder: holder.to_owned(),
            reason: reason.clone(),
        },
    );
    Err(Error::platform(NAME, reason))
}

/// Records a failed call in the timeline, with `reason`, and hands back its `error`.
fn failed(
    state: &mut State,
    now: Timestamp,
    call: &str,
    service: &str,
    track: &Track,
    reason: String,
    error: Error,
) -> Error {
    state.push(
        now,
        EventKind::PlatformCallFailed {
            call: call.to_owned(),
            service: service.to_owned(),
            track: track.clone(),
            reason,
        },
    );
    error
}

/// Records a call refused for its input or the state of the fleet, and hands back `error`.
fn refused(
    state: &mut State,
    now: Timestamp,
    call: &str,
    service: &str,
    track: &Track,
    error: Error,
) -> Error {
    let reason = error.to_string();
    failed(state, now, call, service, track, reason, error)
}

fn check_instances(instances: u32) -> Result<()> {
    if instances == 0 || instances > TrackSpec::MAX_INSTANCES {
        return Err(Error::invalid(
            "instances",
            instances,
            format!(
                "must be in 1 ..= {} (retire the track to run none)",
                TrackSpec::MAX_INSTANCES
            ),
        ));
    }
    Ok(())
}

fn present(inc: &Incarnation) -> impl Iterator<Item = &Instance> {
    inc.instances.iter().filter(|i| i.stopped.is_none())
}

/// Which present instances of `inc` (indices into its instances) scaling down to `instances`
/// stops, as a Kubernetes ReplicaSet picks the pods to delete: first those that are dead
/// (crashed or failing liveness), then those not ready (starting, flapping down, failing
/// readiness), then ready ones; newest first within each. Stopping a ready instance while a
/// dead one is kept would shrink the capacity that serves traffic below what was asked for.
fn to_stop(
    state: &State,
    key: &TrackKey,
    inc: &Incarnation,
    now: Timestamp,
    instances: u32,
) -> Vec<usize> {
    let mut present: Vec<(u8, Timestamp, usize)> = inc
        .instances
        .iter()
        .enumerate()
        .filter(|(_, i)| i.stopped.is_none())
        .map(|(index, inst)| {
            let rank = match state.instance_state(key, inc, inst, now) {
                Some(s) if s.liveness == ProbeStatus::Fail => 0,
                Some(s) if s.readiness != ProbeStatus::Pass => 1,
                Some(_) => 2,
                None => 0,
            };
            (rank, inst.started, index)
        })
        .collect();
    let excess = present.len().saturating_sub(instances as usize);
    // The worst first, and the newest (latest started, then last numbered) among equals.
    present.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)).then(b.2.cmp(&a.2)));
    present
        .into_iter()
        .take(excess)
        .map(|(_, _, i)| i)
        .collect()
}

#[async_trait]
impl Platform for SimPlatform {
    fn name(&self) -> &str {
        NAME
    }

    async fn bring_up(&self, spec: &TrackSpec) -> Result<TrackStatus> {
        let now = self.world.now();
        let key = spec.key();
        let mut state = self.world.lock();
        let (service, track) = (spec.service(), spec.track());
        if state.active(&key).is_some() {
            let error = Error::AlreadyExists {
                what: "track".into(),
                name: key.to_string(),
                reason: "retire it first, or bring the version up as another track".into(),
            };
            return Err(refused(&mut state, now, "bringUp", service, track, error));
        }
        check_faults(&mut state, now, "bringUp", service, track)?;
        let profile = state.config.profile_of(spec.version()).clone();
        let ready_delay = state.ready_delay(&key, &profile, now);
        let incarnation = Incarnation {
            version: spec.version().clone(),
            profile,
            started: now,
            retired: None,
            next_index: spec.instances(),
            instances: (0..spec.instances())
                .map(|i| Instance {
                    id: format!("{}-{i}", spec.track()),
                    started: now,
                    stopped: None,
                    ready_delay,
                })
                .collect(),
        };
        let status = state.report(&key, &incarnation, now);
        state.add_incarnation(key, incarnation);
        state.push(
            now,
            EventKind::BroughtUp {
                service: spec.service().to_owned(),
                track: spec.track().clone(),
                version: spec.version().to_string(),
                instances: spec.instances(),
            },
        );
        Ok(status)
    }

    async fn status(&self, service: &str, track: &Track) -> Result<TrackStatus> {
        let now = self.world.now();
        let key = TrackKey::new(service, track);
        let state = self.world.lock();
        let inc = state
            .active(&key)
            .ok_or_else(|| Error::not_found("track", &key))?;
        Ok(state.report(&key, inc, now))
    }

    async fn scale(&self, service: &str, track: &Track, instances: u32) -> Result<TrackStatus> {
        let now = self.world.now();
        let key = TrackKey::new(service, track);
        let mut state = self.world.lock();
        if let Err(error) = check_instances(instances) {
            return Err(refused(&mut state, now, "scale", service, track, error));
        }
        let Some(inc) = state.active(&key) else {
            let error = Error::not_found("track", &key);
            return Err(refused(&mut state, now, "scale", service, track, error));
        };
        let profile = inc.profile.clone();
        let from = u32::try_from(present(inc).count()).unwrap_or(u32::MAX);
        check_faults(&mut state, now, "scale", service, track)?;
        let ready_delay = state.ready_delay(&key, &profile, now);
        let doomed = state
            .active(&key)
            .map(|inc| to_stop(&state, &key, inc, now, instances))
            .unwrap_or_default();
        let Some(inc) = state.active_mut(&key) else {
            return Err(Error::not_found("track", &key));
        };
        for i in doomed {
            if let Some(inst) = inc.instances.get_mut(i) {
                inst.stopped = Some(now);
            }
        }
        let mut kept = u32::try_from(present(inc).count()).unwrap_or(u32::MAX);
        while kept < instances {
            let index = inc.next_index;
            inc.next_index = inc.next_index.saturating_add(1);
            inc.instances.push(Instance {
                id: format!("{track}-{index}"),
                started: now,
                stopped: None,
                ready_delay,
            });
            kept += 1;
        }
        let snapshot = inc.clone();
        state.push(
            now,
            EventKind::Scaled {
                service: service.to_owned(),
                track: track.clone(),
                from,
                to: instances,
            },
        );
        Ok(state.report(&key, &snapshot, now))
    }

    async fn retire(&self, service: &str, track: &Track, drain: Duration) -> Result<()> {
        let key = TrackKey::new(service, track);
        let draining = {
            let now = self.world.now();
            let mut state = self.world.lock();
            if state.active(&key).is_none() {
                let error = Error::not_found("track", &key);
                return Err(refused(&mut state, now, "retire", service, track, error));
            }
            check_faults(&mut state, now, "retire", service, track)?;
            state.incarnations(&key)
        };
        tokio::time::sleep(drain).await;
        let now = self.world.now();
        let mut state = self.world.lock();
        // Another call may have retired the track during the drain and brought it up anew:
        // that new incarnation was never drained, so it is not this call's to stop.
        if state.incarnations(&key) != draining || state.active(&key).is_none() {
            let error = Error::not_found("track", &key);
            return Err(refused(&mut state, now, "retire", service, track, error));
        }
        let Some(inc) = state.active_mut(&key) else {
            return Err(Error::not_found("track", &key));
        };
        inc.retired = Some(now);
        for inst in inc.instances.iter_mut().filter(|i| i.stopped.is_none()) {
            inst.stopped = Some(now);
        }
        state.push(
            now,
            EventKind::Retired {
                service: service.to_owned(),
                track: track.clone(),
                drain,
            },
        );
        Ok(())
    }

    async fn list(&self) -> Result<Vec<TrackStatus>> {
        let now = self.world.now();
        let state = self.world.lock();
        Ok(state
            .running()
            .map(|(key, inc)| state.report(key, inc, now))
            .collect())
    }

    async fn lock(&self, service: &str, holder: &str) -> Result<()> {
        let now = self.world.now();
        let mut state = self.world.lock();
        check_lock_faults(&mut state, now, "lock", service, holder)?;
        if let Some(other) = state.locks.get(service).filter(|h| *h != holder) {
            let reason = format!("deployment {other} holds the lock of this service");
            state.push(
                now,
                EventKind::LockRefused {
                    service: service.to_owned(),
                    holder: holder.to_owned(),
                    reason: reason.clone(),
                },
            );
            return Err(Error::conflict("lock", service, reason));
        }
        state.locks.insert(service.to_owned(), holder.to_owned());
        state.push(
            now,
            EventKind::Locked {
                service: service.to_owned(),
                holder: holder.to_owned(),
            },
        );
        Ok(())
    }

    async fn unlock(&self, service: &str, holder: &str) -> Result<()> {
        let now = self.world.now();
        let mut state = self.world.lock();
        check_lock_faults(&mut state, now, "unlock", service, holder)?;
        if state.locks.get(service).is_some_and(|h| h == holder) {
            state.locks.remove(service);
            state.push(
                now,
                EventKind::Unlocked {
                    service: service.to_owned(),
                    holder: holder.to_owned(),
                },
            );
        }
        Ok(())
    }

    async fn lock_holder(&self, service: &str) -> Result<Option<String>> {
        let now = self.world.now();
        let state = self.world.lock();
        // A read changes nothing, so its failure is not in the timeline.
        match platform_error(&state, now) {
            Some(reason) => Err(Error::platform(NAME, reason)),
            None => Ok(state.locks.get(service).cloned()),
        }
    }
}
