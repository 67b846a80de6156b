//! The [`TimelineEvent`]s a simulated world records: every change a router or platform call
//! made or failed to make, with its virtual time, for tests to assert on. Reads (`status`,
//! `list`, `current`) are not recorded.

use std::time::Duration;

use serde::Serialize;
use serin_signals::{Timestamp, Track};
use serin_traffic::TrafficSplit;

use crate::fault::Fault;

/// One thing that happened in the world, at a virtual time.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TimelineEvent {
    /// When (virtual time).
    pub at: Timestamp,
    /// What.
    pub kind: EventKind,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "event")]
#[non_exhaustive]
pub enum EventKind {
    /// The router applied a split; `changed` is false when it was already in force.
    SplitApplied {
        /// The split.
        split: TrafficSplit,
        /// Whether it changed what was in force.
        changed: bool,
    },
    /// The router refused or failed to apply a split; nothing changed.
    ApplyFailed {
        /// The split asked for.
        split: TrafficSplit,
        /// Why.
        reason: String,
    },
    /// A track was brought up.
    BroughtUp {
        /// The service.
        service: String,
        /// The track.
        track: Track,
        /// The version it runs.
        version: String,
        /// How many instances.
        instances: u32,
    },
    /// A track was scaled.
    Scaled {
        /// The service.
        service: String,
        /// The track.
        track: Track,
        /// Instances before.
        from: u32,
        /// Instances after.
        to: u32,
    },
    /// A track finished draining and was stopped.
    Retired {
        /// The service.
        service: String,
        /// The track.
        track: Track,
        /// The drain it was given.
        #[serde(with = "serin_signals::duration")]
        drain: Duration,
    },
    /// A platform call failed, by a scripted platform error or refused (a track that does not
    /// run or already runs, an instance count out of range); nothing changed.
    PlatformCallFailed {
        /// `bringUp`, `scale` or `retire`.
        call: String,
        /// The service.
        service: String,
        /// The track.
        track: Track,
        /// Why.
        reason: String,
    },
    /// The platform's deployment lock of a service went to `holder`: taken, or taken back by
    /// the deployment that held it.
    Locked {
        /// The service.
        service: String,
        /// The deployment that holds it.
        holder: String,
    },
    /// `holder` asked for the deployment lock of a service that another deployment holds;
    /// nothing changed.
    LockRefused {
        /// The service.
        service: String,
        /// The deployment that asked.
        holder: String,
        /// Why, naming the deployment that holds it.
        reason: String,
    },
    /// A `lock` or `unlock` call failed by a scripted platform error; no holder changed.
    LockCallFailed {
        /// `lock` or `unlock`.
        call: String,
        /// The service whose lock it was about.
        service: String,
        /// The deployment that called.
        holder: String,
        /// Why.
        reason: String,
    },
    /// The deployment that held the lock of a service freed it.
    Unlocked {
        /// The service.
        service: String,
        /// The deployment that held it.
        holder: String,
    },
    /// A fault was added to the script while the world ran.
    FaultInjected {
        /// The fault.
        fault: Fault,
    },
}
