//! Health and dependency [`HealthSignal`]s: probe results with timestamps.

use serde::{Deserialize, Serialize};

use crate::time::Timestamp;
use crate::track::Track;

/// What a probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Probe {
    /// Ready to receive traffic (a failing readiness probe takes an instance out of the split).
    Readiness,
    /// Alive (a failing liveness probe means the instance should be replaced).
    Liveness,
    /// Finished starting (as Kubernetes' startup probe).
    Startup,
    /// An external dependency the service calls (a database, another service), by name.
    Dependency(String),
}

/// The outcome of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ProbeStatus {
    /// The probe succeeded.
    Pass,
    /// The probe ran and failed.
    Fail,
    /// The probe could not be run or timed out: unknown, never healthy.
    Unknown,
}

/// One probe result for one instance (or the whole track) at one time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HealthSignal {
    /// The track probed.
    pub track: Track,
    /// The instance probed, or `None` for the track as a whole.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What was probed.
    pub probe: Probe,
    /// The outcome.
    pub status: ProbeStatus,
    /// When the probe completed.
    pub at: Timestamp,
    /// What the probe saw (status code, error message), for evidence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl HealthSignal {
    /// A probe result for the whole track, with no instance and no detail.
    pub fn new(track: Track, probe: Probe, status: ProbeStatus, at: Timestamp) -> Self {
        HealthSignal {
            track,
            instance: None,
            probe,
            status,
            at,
            detail: None,
        }
    }

    /// The same signal for one instance.
    pub fn with_instance(mut self, instance: impl Into<String>) -> Self {
        self.instance = Some(instance.into());
        self
    }

    /// The same signal with what the probe saw.
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip() {
        let s = HealthSignal::new(
            Track::Green,
            Probe::Dependency("postgres".into()),
            ProbeStatus::Fail,
            Timestamp::from_millis(7),
        )
        .with_instance("green-0")
        .with_detail("connection refused");
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"dependency\":\"postgres\""), "{json}");
        assert_eq!(serde_json::from_str::<HealthSignal>(&json).unwrap(), s);
    }
}
