//! [`VersionProfile`]: how the instances of one version behave.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::schedule::Schedule;

/// Request latency of a version: log-normal with a median and a shape.
///
/// `sigma` is the standard deviation of the latency's natural logarithm: 0.5 puts the 99th
/// percentile at about 3.2 × the median. The median is multiplied by the profile's
/// `latencyFactor` schedule, which models a slow start or a latency regression.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyProfile {
    /// Median latency in milliseconds (positive).
    pub median_ms: f64,
    /// Standard deviation of the log of the latency (`0.0 ..= 4.0`).
    pub sigma: f64,
}

impl LatencyProfile {
    /// A log-normal latency with this median (ms) and shape.
    pub fn new(median_ms: f64, sigma: f64) -> Self {
        LatencyProfile { median_ms, sigma }
    }

    fn validate(&self, field: &str) -> Result<()> {
        if !self.median_ms.is_finite() || self.median_ms <= 0.0 || self.median_ms > 3_600_000.0 {
            return Err(Error::invalid(
                format!("{field}.medianMs"),
                self.median_ms,
                "must be a positive number of milliseconds, at most one hour",
            ));
        }
        if !self.sigma.is_finite() || !(0.0..=4.0).contains(&self.sigma) {
            return Err(Error::invalid(
                format!("{field}.sigma"),
                self.sigma,
                "must be a finite number in 0 ..= 4",
            ));
        }
        Ok(())
    }
}

impl Default for LatencyProfile {
    fn default() -> Self {
        LatencyProfile::new(50.0, 0.5)
    }
}

/// A version's error rate wandering on its own from second to second (a flaky dependency,
/// retry storms): each second's rate is multiplied by `exp(x − sd²/2)`, which has mean 1, with
/// `x` Gaussian of standard deviation `sd` and a correlation that decays by `rho` per second.
/// Each track wanders independently, so errors arrive in clumps that no per-request model
/// expects: the overdispersed traffic the canary judges' robust modes are for.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErrorWander {
    /// Standard deviation of the log multiplier (`0.0 ..= 2.0`).
    pub sd: f64,
    /// Correlation of the log multiplier from one second to the next (`0.0 ..= 0.9`).
    pub rho: f64,
}

impl ErrorWander {
    /// A wander of log-sd `sd` and one-second correlation `rho`.
    pub fn new(sd: f64, rho: f64) -> Self {
        ErrorWander { sd, rho }
    }

    fn validate(&self, field: &str) -> Result<()> {
        for (name, value, max) in [("sd", self.sd, 2.0), ("rho", self.rho, 0.9)] {
            if !value.is_finite() || !(0.0..=max).contains(&value) {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    value,
                    format!("must be a finite number in 0 ..= {max}"),
                ));
            }
        }
        Ok(())
    }
}

/// When an instance is ready to receive traffic, once its startup time has passed.
///
/// Serialized with a `kind` tag: `{"kind": "never"}`, `{"kind": "flapping", "up": "30s",
/// "down": "5s"}`; a field the kind does not have is rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(
    rename_all = "camelCase",
    tag = "kind",
    deny_unknown_fields,
    from = "ReadinessRepr"
)]
pub enum Readiness {
    /// Ready from the end of startup on.
    #[default]
    Ready,
    /// Never ready (a broken readiness endpoint, a missing dependency at boot).
    Never,
    /// Alternates: ready for `up`, then not ready for `down`, starting ready at the end of
    /// each instance's startup. Instances started together flap in step; one added later by a
    /// scale keeps its own rhythm. Each spell lasts at least a millisecond, the world's step.
    Flapping {
        /// How long each ready spell lasts.
        #[serde(with = "serin_signals::duration")]
        up: Duration,
        /// How long each unready spell lasts.
        #[serde(with = "serin_signals::duration")]
        down: Duration,
    },
}

/// The serialized form of [`Readiness`]: its kinds without fields are read as empty structs,
/// since a tagged unit variant would accept, and silently drop, any field given with it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", deny_unknown_fields)]
enum ReadinessRepr {
    Ready {},
    Never {},
    Flapping {
        #[serde(with = "serin_signals::duration")]
        up: Duration,
        #[serde(with = "serin_signals::duration")]
        down: Duration,
    },
}

impl From<ReadinessRepr> for Readiness {
    fn from(r: ReadinessRepr) -> Self {
        match r {
            ReadinessRepr::Ready {} => Readiness::Ready,
            ReadinessRepr::Never {} => Readiness::Never,
            ReadinessRepr::Flapping { up, down } => Readiness::Flapping { up, down },
        }
    }
}

/// How the instances of one version behave: errors, latency, startup, readiness, crashes, CPU
/// and memory.
///
/// Times in schedules count from the moment the track was brought up, so the same profile
/// describes a version wherever and whenever it runs. Every field has a default (a healthy
/// version: 0.1% errors, 50 ms median latency, ready 5 s after start, 0.05 idle cores plus
/// 2 ms of CPU per request, 256 MiB per instance).
///
/// ```
/// use std::time::Duration;
/// use serin_sim::{LatencyProfile, Readiness, Schedule, VersionProfile};
///
/// let bad = VersionProfile::default()
///     .with_error_rate(Schedule::ramp(0.005, 0.05, Duration::ZERO, Duration::from_secs(300)))
///     .with_latency(LatencyProfile::new(80.0, 0.6))
///     .with_startup(Duration::from_secs(20))
///     .with_readiness(Readiness::Flapping { up: Duration::from_secs(30), down: Duration::from_secs(5) });
/// assert!(bad.validate("profile").is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct VersionProfile {
    /// Share of requests that fail (`0.0 ..= 1.0`), over the track's life.
    pub error_rate: Schedule,
    /// The error rate's own wander from second to second around that schedule (none by
    /// default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_wander: Option<ErrorWander>,
    /// Latency distribution.
    pub latency: LatencyProfile,
    /// Multiplier on the latency median over the track's life (`0.0 ..= 1000.0`): `3` falling to
    /// `1` over two minutes is a slow start (cold caches, JIT warm-up).
    pub latency_factor: Schedule,
    /// Time from start until an instance can first be ready.
    #[serde(with = "serin_signals::duration")]
    pub startup: Duration,
    /// Readiness once started.
    pub readiness: Readiness,
    /// Each instance crashes this long after it started (and is never restarted).
    #[serde(
        with = "serin_signals::duration::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub crash_after: Option<Duration>,
    /// CPU each live instance uses while idle, in cores (`0.0 ..= 1024.0`).
    pub cpu_idle_cores: f64,
    /// CPU time each request costs, in milliseconds (`0.0 ..= 60000.0`): a track serving
    /// 500 requests per second at 2 ms each adds one core.
    pub cpu_ms_per_request: f64,
    /// Resident memory of each live instance in MiB, over the track's life (`0.0 ..= 1048576.0`):
    /// a rising schedule is a leak.
    pub memory_mib: Schedule,
}

impl Default for VersionProfile {
    fn default() -> Self {
        VersionProfile {
            error_rate: Schedule::constant(0.001),
            error_wander: None,
            latency: LatencyProfile::default(),
            latency_factor: Schedule::constant(1.0),
            startup: Duration::from_secs(5),
            readiness: Readiness::Ready,
            crash_after: None,
            cpu_idle_cores: 0.05,
            cpu_ms_per_request: 2.0,
            memory_mib: Schedule::constant(256.0),
        }
    }
}

impl VersionProfile {
    /// The same profile with this error rate over time.
    pub fn with_error_rate(mut self, error_rate: Schedule) -> Self {
        self.error_rate = error_rate;
        self
    }

    /// The same profile whose error rate wanders around its schedule.
    pub fn with_error_wander(mut self, wander: ErrorWander) -> Self {
        self.error_wander = Some(wander);
        self
    }

    /// The same profile with this latency distribution.
    pub fn with_latency(mut self, latency: LatencyProfile) -> Self {
        self.latency = latency;
        self
    }

    /// The same profile with this latency multiplier over time.
    pub fn with_latency_factor(mut self, factor: Schedule) -> Self {
        self.latency_factor = factor;
        self
    }

    /// The same profile with this startup time.
    pub fn with_startup(mut self, startup: Duration) -> Self {
        self.startup = startup;
        self
    }

    /// The same profile with this readiness behaviour.
    pub fn with_readiness(mut self, readiness: Readiness) -> Self {
        self.readiness = readiness;
        self
    }

    /// The same profile whose instances crash `after` their start.
    pub fn with_crash_after(mut self, after: Duration) -> Self {
        self.crash_after = Some(after);
        self
    }

    /// The same profile with this CPU use: `idle_cores` per live instance plus
    /// `ms_per_request` of CPU time per request served.
    pub fn with_cpu(mut self, idle_cores: f64, ms_per_request: f64) -> Self {
        self.cpu_idle_cores = idle_cores;
        self.cpu_ms_per_request = ms_per_request;
        self
    }

    /// The same profile with this memory per instance (MiB) over time.
    pub fn with_memory_mib(mut self, memory: Schedule) -> Self {
        self.memory_mib = memory;
        self
    }

    /// Checks every field; `field` names the profile in errors (`simConfig.profiles.2.0.0`).
    pub fn validate(&self, field: &str) -> Result<()> {
        self.error_rate
            .validate(&format!("{field}.errorRate"), 0.0, 1.0)?;
        if let Some(w) = &self.error_wander {
            w.validate(&format!("{field}.errorWander"))?;
        }
        self.latency.validate(&format!("{field}.latency"))?;
        self.latency_factor
            .validate(&format!("{field}.latencyFactor"), 0.0, 1_000.0)?;
        self.memory_mib
            .validate(&format!("{field}.memoryMib"), 0.0, 1_048_576.0)?;
        for (name, value, max) in [
            ("cpuIdleCores", self.cpu_idle_cores, 1_024.0),
            ("cpuMsPerRequest", self.cpu_ms_per_request, 60_000.0),
        ] {
            if !value.is_finite() || !(0.0..=max).contains(&value) {
                return Err(Error::invalid(
                    format!("{field}.{name}"),
                    value,
                    format!("must be a finite number in 0 ..= {max}"),
                ));
            }
        }
        // The world's clock counts whole milliseconds: a shorter spell would never show, and
        // an instance meant to flap would be ready (or not ready) throughout.
        if let Readiness::Flapping { up, down } = self.readiness
            && (up < Duration::from_millis(1) || down < Duration::from_millis(1))
        {
            return Err(Error::invalid(
                format!("{field}.readiness"),
                format!("flapping up {up:?}, down {down:?}"),
                "both spells must last at least 1ms, the simulated clock's step",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_round_trip() {
        let p = VersionProfile::default();
        p.validate("p").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<VersionProfile>(&json).unwrap(), p);
        let crashing = p.with_crash_after(Duration::from_secs(90));
        let json = serde_json::to_string(&crashing).unwrap();
        assert!(json.contains("\"crashAfter\":\"1m 30s\""), "{json}");
        assert_eq!(
            serde_json::from_str::<VersionProfile>(&json).unwrap(),
            crashing
        );
    }

    #[test]
    fn partial_profiles_fill_in_defaults_and_reject_unknown_fields() {
        let p: VersionProfile = serde_json::from_str(
            r#"{"errorRate": 0.05, "readiness": {"kind": "flapping", "up": "30s", "down": 5000}}"#,
        )
        .unwrap();
        assert_eq!(p.error_rate, Schedule::constant(0.05));
        assert_eq!(
            p.readiness,
            Readiness::Flapping {
                up: Duration::from_secs(30),
                down: Duration::from_secs(5)
            }
        );
        assert_eq!(p.startup, Duration::from_secs(5));
        assert_eq!(p.error_wander, None);
        assert!(serde_json::from_str::<VersionProfile>(r#"{"errorRates": 0.05}"#).is_err());
        for (json, want) in [
            (r#"{"kind": "never"}"#, Some(Readiness::Never)),
            (r#"{"kind": "ready"}"#, Some(Readiness::Ready)),
            (r#"{"kind": "never", "up": "30s", "down": "5s"}"#, None),
            (r#"{"kind": "ready", "up": "30s"}"#, None),
            (r#"{"kind": "flapping", "up": "30s"}"#, None),
        ] {
            let got = serde_json::from_str::<Readiness>(json).ok();
            assert_eq!(got, want, "{json}");
        }
        let json = serde_json::to_string(&Readiness::Never).unwrap();
        assert_eq!(
            serde_json::from_str::<Readiness>(&json).unwrap(),
            Readiness::Never
        );
        let w: VersionProfile =
            serde_json::from_str(r#"{"errorWander": {"sd": 0.5, "rho": 0.6}}"#).unwrap();
        assert_eq!(w.error_wander, Some(ErrorWander::new(0.5, 0.6)));
    }

    #[test]
    fn bad_fields_are_named() {
        for (p, field) in [
            (
                VersionProfile::default().with_latency(LatencyProfile::new(0.0, 0.5)),
                "p.latency.medianMs",
            ),
            (
                VersionProfile::default().with_latency(LatencyProfile::new(10.0, f64::NAN)),
                "p.latency.sigma",
            ),
            (
                VersionProfile::default().with_error_rate(Schedule::constant(-0.1)),
                "p.errorRate[0].value",
            ),
            (
                VersionProfile::default().with_cpu(-1.0, 2.0),
                "p.cpuIdleCores",
            ),
            (
                VersionProfile::default().with_error_wander(ErrorWander::new(0.5, 0.95)),
                "p.errorWander.rho",
            ),
            (
                VersionProfile::default().with_error_wander(ErrorWander::new(-0.5, 0.5)),
                "p.errorWander.sd",
            ),
            (
                VersionProfile::default().with_memory_mib(Schedule::constant(f64::INFINITY)),
                "p.memoryMib[0].value",
            ),
            (
                VersionProfile::default().with_readiness(Readiness::Flapping {
                    up: Duration::ZERO,
                    down: Duration::from_secs(1),
                }),
                "p.readiness",
            ),
            // Shorter than the clock's step: it would never show.
            (
                VersionProfile::default().with_readiness(Readiness::Flapping {
                    up: Duration::from_secs(30),
                    down: Duration::from_micros(500),
                }),
                "p.readiness",
            ),
        ] {
            match p.validate("p") {
                Err(Error::InvalidField { field: f, .. }) => assert_eq!(f, field),
                other => panic!("expected {field}, got {other:?}"),
            }
        }
    }
}
