//! What a [`Platform`](crate::Platform) reports about the tracks it runs.

use std::cmp::Reverse;
use std::net::SocketAddr;

use serin_signals::{ProbeStatus, Track};

use crate::platform::spec::TrackKey;

/// One instance of a track, as last seen by its platform.
///
/// `#[non_exhaustive]`, so that a field added later (a restart count, a zone) breaks no
/// backend: a platform outside this crate builds one with [`new`](Self::new) and the `with_`
/// methods, and reads and changes its fields freely.
///
/// ```
/// use serin_orchestrator::InstanceStatus;
/// use serin_signals::ProbeStatus;
///
/// let i = InstanceStatus::new("green-0", ProbeStatus::Pass, ProbeStatus::Pass)
///     .with_address("127.0.0.1:8080".parse()?)
///     .with_detail("ready");
/// assert!(i.is_ready());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceStatus {
    /// Unique within the track and stable over the instance's life (`green-0`).
    pub id: String,
    /// Where the instance serves, when the platform knows (a process platform's loopback port).
    pub address: Option<SocketAddr>,
    /// Whether it should receive traffic now.
    pub readiness: ProbeStatus,
    /// Whether it is alive (`Fail`: crashed or exited; a platform never restarts it silently).
    pub liveness: ProbeStatus,
    /// Why, when the platform knows more (`exited with status 3`, `connection refused`).
    pub detail: Option<String>,
}

impl InstanceStatus {
    /// Instance `id` with its probes' results, without an address or a detail.
    pub fn new(id: impl Into<String>, readiness: ProbeStatus, liveness: ProbeStatus) -> Self {
        InstanceStatus {
            id: id.into(),
            address: None,
            readiness,
            liveness,
            detail: None,
        }
    }

    /// With the address it serves at.
    pub fn with_address(mut self, address: SocketAddr) -> Self {
        self.address = Some(address);
        self
    }

    /// With what the platform knows of why it is in its state.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }

    /// Whether the instance is both alive and ready.
    pub fn is_ready(&self) -> bool {
        self.readiness == ProbeStatus::Pass && self.liveness != ProbeStatus::Fail
    }
}

/// One track as a platform runs it: its version and its instances, ordered by id.
///
/// `#[non_exhaustive]` as [`InstanceStatus`] is: built with [`new`](Self::new).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrackStatus {
    /// The service.
    pub service: String,
    /// The version the track runs.
    pub version: semver::Version,
    /// The track.
    pub track: Track,
    /// Its instances.
    pub instances: Vec<InstanceStatus>,
}

impl TrackStatus {
    /// `track` of `service`, running `version` as `instances`.
    pub fn new(
        service: impl Into<String>,
        version: semver::Version,
        track: Track,
        instances: Vec<InstanceStatus>,
    ) -> Self {
        TrackStatus {
            service: service.into(),
            version,
            track,
            instances,
        }
    }

    /// `service/track`.
    pub fn key(&self) -> TrackKey {
        TrackKey::new(&self.service, &self.track)
    }

    /// How many instances are alive and ready.
    pub fn ready_count(&self) -> usize {
        self.instances.iter().filter(|i| i.is_ready()).count()
    }

    /// Whether every instance is alive and ready (and there is at least one).
    pub fn all_ready(&self) -> bool {
        !self.instances.is_empty() && self.instances.iter().all(InstanceStatus::is_ready)
    }

    /// The addresses of the instances that are alive and ready: what a router may send to.
    pub fn ready_addresses(&self) -> Vec<SocketAddr> {
        self.instances
            .iter()
            .filter(|i| i.is_ready())
            .filter_map(|i| i.address)
            .collect()
    }

    /// The first instance whose liveness failed, if any.
    pub fn dead_instance(&self) -> Option<&InstanceStatus> {
        self.instances
            .iter()
            .find(|i| i.liveness == ProbeStatus::Fail)
    }

    /// The instances a scale-down to `instances` stops, in the order the
    /// [`Platform`](crate::Platform) contract asks for, as a Kubernetes ReplicaSet picks the
    /// pods to delete: dead ones (liveness failed) first, then unready ones, then ready ones,
    /// the newest (listed last: platforms list instances in the order they started them) first
    /// within each. Keeping a dead instance in place of a ready one would leave fewer serving
    /// than asked for. A platform stops these; a wrapper that drains instances before a
    /// scale-down takes these out of its router.
    pub fn scale_down_choice(&self, instances: u32) -> Vec<&InstanceStatus> {
        let rank = |i: &InstanceStatus| match (i.liveness, i.readiness) {
            (ProbeStatus::Fail, _) => 0,
            (_, ProbeStatus::Pass) => 2,
            _ => 1,
        };
        let mut order: Vec<(u8, Reverse<usize>, &InstanceStatus)> = self
            .instances
            .iter()
            .enumerate()
            .map(|(at, i)| (rank(i), Reverse(at), i))
            .collect();
        order.sort_by_key(|&(rank, at, _)| (rank, at));
        let excess = order.len().saturating_sub(instances as usize);
        order.into_iter().take(excess).map(|(_, _, i)| i).collect()
    }
}
