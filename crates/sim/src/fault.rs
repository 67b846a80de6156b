//! [`Fault`]s: scripted things that go wrong in the simulated world at given times.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::{Probe, Track};

use crate::error::{Error, Result};

/// A half-open span of world time `[from, until)`, counted from the world's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Span {
    /// Start, after the world's start (inclusive).
    #[serde(with = "serin_signals::duration")]
    pub from: Duration,
    /// End, after the world's start (exclusive).
    #[serde(with = "serin_signals::duration")]
    pub until: Duration,
}

impl Span {
    /// The span `[from, until)` after the world's start.
    pub fn new(from: Duration, until: Duration) -> Self {
        Span { from, until }
    }

    /// Whether `since` (after the world's start) lies in the span.
    pub fn contains(&self, since: Duration) -> bool {
        self.from <= since && since < self.until
    }

    /// Whether the two spans share an instant.
    pub(crate) fn overlaps(&self, other: &Span) -> bool {
        self.from < other.until && other.from < self.until
    }

    /// The span in force at `since` among `spans` that all apply at once: the union of those
    /// that reach `since` without a break (overlapping, or one starting where another ends);
    /// `None` when none contains `since`.
    pub(crate) fn in_force(spans: impl IntoIterator<Item = Span>, since: Duration) -> Option<Span> {
        let mut sorted: Vec<Span> = spans.into_iter().collect();
        sorted.sort_by_key(|s| s.from);
        let mut joined: Option<Span> = None;
        for s in sorted {
            match joined {
                Some(j) if s.from <= j.until => {
                    joined = Some(Span::new(j.from, j.until.max(s.until)))
                }
                Some(j) if j.contains(since) => return Some(j),
                _ => joined = Some(s),
            }
        }
        joined.filter(|j| j.contains(since))
    }

    fn validate(&self, field: &str) -> Result<()> {
        if self.until <= self.from {
            return Err(Error::invalid(
                format!("{field}.until"),
                format!("{:?}", self.until),
                format!("must come after {field}.from ({:?})", self.from),
            ));
        }
        Ok(())
    }

    /// As [`validate`](Self::validate), for a fault that acts on traffic, which is drawn a
    /// second at a time: a span between seconds would act on the whole seconds whose first
    /// instant it holds, not on its own time, and one within a second on none.
    fn validate_on_traffic(&self, field: &str) -> Result<()> {
        self.validate(field)?;
        for (end, at) in [("from", self.from), ("until", self.until)] {
            if at.subsec_nanos() != 0 {
                return Err(Error::invalid(
                    format!("{field}.{end}"),
                    format!("{at:?}"),
                    "must be a whole number of seconds: this fault acts on traffic, which is \
                     drawn a second at a time (write `30s`; a bare number is milliseconds)",
                ));
            }
        }
        Ok(())
    }
}

/// Something that goes wrong in the simulated world, scripted in advance. Times count from the
/// world's start, so a script reads the same whatever the start timestamp.
///
/// A fault that names a track acts on that track of the world's own service
/// ([`SimConfig::service`](crate::SimConfig::service)), the one whose traffic, metrics and probes
/// the world simulates: other services the platform runs in the same world are bystanders with
/// tracks of the same names. A crash can name another service explicitly.
///
/// Faults that act on traffic (`errors`, `latency`, `metricsGap`, and `probeFailure` of
/// readiness or liveness) have spans of whole seconds, as traffic is drawn a second at a time;
/// a span between seconds is refused rather than moved.
///
/// Serialized with a `kind` tag: `{"kind": "crash", "track": "canary", "at": "30m"}`. A field
/// that the kind does not have, or a field it needs left out, is refused naming the field; read
/// as an entry of [`SimConfig`](crate::SimConfig)'s `faults`, every error also names the entry
/// (`simConfig.faults[2].at`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
#[non_exhaustive]
pub enum Fault {
    /// The instances of `track` of `service` (or only `instance`) running at `at` crash then,
    /// and stay dead. An instance started at `at` itself started after the crash, and lives.
    Crash {
        /// The service whose track crashes: the world's own service
        /// ([`SimConfig::service`](crate::SimConfig::service)) when absent. Another service
        /// the world runs (unloaded, brought up through the platform) is named here; its
        /// name must be a DNS-1123 label. A track name alone never reaches across services: a
        /// crash of `canary` scripted for the service under test does not also take down the
        /// `canary` track of a neighbour that happens to run in the same world.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        service: Option<String>,
        /// The track whose instances crash.
        track: Track,
        /// Only this instance (`canary-1`: instances are named `<track>-<n>`), or every
        /// instance when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        instance: Option<String>,
        /// When.
        #[serde(with = "serin_signals::duration")]
        at: Duration,
    },
    /// Instances of the world's service started during `span` (on `track`, or on every track
    /// when absent) take `extra` longer than their profile's startup to become ready. Slow
    /// starts that overlap add up: an instance started while two are active takes both extras.
    SlowStart {
        /// The track affected, or every track.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<Track>,
        /// When the affected instances were started.
        span: Span,
        /// The added startup time.
        #[serde(with = "serin_signals::duration")]
        extra: Duration,
    },
    /// The metrics source is unreachable during `span`: every query fails as unavailable.
    /// Outages of it that overlap or touch are one, reported from the first start to the last
    /// end.
    MetricsOutage {
        /// When.
        span: Span,
    },
    /// Nothing is recorded for the seconds in `span`: queries covering them see no data there
    /// (no counts, latencies or gauge readings), before and after, as after a scrape gap. The
    /// traffic itself still flows: [`SimWorld::unroutable`](crate::SimWorld::unroutable) still
    /// counts the requests lost in it.
    MetricsGap {
        /// Which seconds are lost.
        span: Span,
    },
    /// The router fails every `apply` during `span`, changing nothing. A failed call says one
    /// thing, so router errors whose spans overlap must give the same `message`: a script in
    /// which they do not is refused.
    RouterErrors {
        /// When.
        span: Span,
        /// What the router says.
        message: String,
    },
    /// The platform fails every `bring_up`, `scale` and `retire` during `span`, and every call
    /// about its deployment lock (`lock`, `unlock`, `lock_holder`: the lock is the platform's,
    /// a Kubernetes Lease or a file), changing nothing; `status` and `list` still answer. As
    /// with router errors, platform errors whose spans overlap must give the same `message`.
    PlatformErrors {
        /// When.
        span: Span,
        /// What the platform says.
        message: String,
    },
    /// `probe` fails on `track` of the world's service (or on every track of it) during `span`.
    /// A failing readiness probe
    /// takes the instances out of traffic and a failing liveness probe marks them not alive, as
    /// the platform sees them too; startup and dependency probes only show in health. A
    /// dependency probe must name one of the world's dependencies.
    ProbeFailure {
        /// The track affected, or every track.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<Track>,
        /// The probe that fails: `readiness`, `liveness`, `startup` or `{dependency: name}`.
        probe: Probe,
        /// When.
        span: Span,
    },
    /// The health source is unreachable during `span`: every call fails as unavailable.
    /// Outages of it that overlap or touch are one, reported from the first start to the last
    /// end.
    HealthOutage {
        /// When.
        span: Span,
    },
    /// Requests that `track` of the world's service (or every track of it) serves during
    /// `span` take `factor` times as long (the latency median is multiplied): a slow shared
    /// dependency, a noisy neighbour. A version's profile counts its times from the track's
    /// bring-up, so it cannot say "from 10:00 to 10:05 for everyone"; this can. On every track
    /// it is noise that a canary judge must not blame on the new version. Latency faults that
    /// overlap multiply their factors.
    Latency {
        /// The track affected, or every track.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<Track>,
        /// Which seconds' requests are slowed.
        span: Span,
        /// The multiplier on the latency (`0.0 < factor <= 1000.0`; below 1 speeds up).
        factor: f64,
    },
    /// Requests that `track` of the world's service (or every track of it) serves during
    /// `span` also fail, whatever their version, with probability `rate`: an outage of
    /// something every version calls. A request fails if its version fails it or the fault
    /// does, so the error rate is `1 − (1 − version's) × (1 − rate)`; errors faults that
    /// overlap fail it independently too (`1 − (1 − version's) × Π(1 − rateᵢ)`).
    Errors {
        /// The track affected, or every track.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        track: Option<Track>,
        /// Which seconds' requests fail.
        span: Span,
        /// The share of requests failed by the fault (`0.0 ..= 1.0`).
        rate: f64,
    },
}

impl Fault {
    /// The earliest world time the fault affects: a fault injected while the world runs must
    /// not start before the present, or it would rewrite what was already observed.
    pub fn starts(&self) -> Duration {
        match self {
            Fault::Crash { at, .. } => *at,
            Fault::SlowStart { span, .. }
            | Fault::MetricsOutage { span }
            | Fault::MetricsGap { span }
            | Fault::RouterErrors { span, .. }
            | Fault::PlatformErrors { span, .. }
            | Fault::ProbeFailure { span, .. }
            | Fault::HealthOutage { span }
            | Fault::Latency { span, .. }
            | Fault::Errors { span, .. } => span.from,
        }
    }

    /// Why this fault and `earlier` cannot both apply, if they cannot: router or platform
    /// errors whose spans overlap and whose messages differ. A failed call gives one message,
    /// and the script would not say which; the fault kinds that can both apply (slow starts
    /// add up, latency factors multiply, error rates combine as independent failures, the
    /// earliest crash kills, an outage, gap or failing probe is one while any is on) never
    /// clash.
    pub(crate) fn clash(&self, earlier: &Fault) -> Option<String> {
        match (self, earlier) {
            (
                Fault::RouterErrors { span, message },
                Fault::RouterErrors {
                    span: other,
                    message: theirs,
                },
            )
            | (
                Fault::PlatformErrors { span, message },
                Fault::PlatformErrors {
                    span: other,
                    message: theirs,
                },
            ) if span.overlaps(other) && message != theirs => Some(format!(
                "fails the same calls from {:?} to {:?} with the message `{theirs}`; a failed \
                 call gives one message, so overlapping errors must give the same one (or \
                 their spans must not overlap)",
                span.from.max(other.from),
                span.until.min(other.until),
            )),
            _ => None,
        }
    }

    /// Checks spans and names; `field` names the fault in errors (`simConfig.faults[2]`).
    pub fn validate(&self, field: &str) -> Result<()> {
        // A track built as `Track::Named` around its name check would never match a running
        // track.
        let track = match self {
            Fault::Crash { track, .. } => Some(track),
            Fault::SlowStart { track, .. }
            | Fault::ProbeFailure { track, .. }
            | Fault::Latency { track, .. }
            | Fault::Errors { track, .. } => track.as_ref(),
            _ => None,
        };
        if let Some(track) = track {
            track.validate(&format!("{field}.track"))?;
        }
        match self {
            Fault::Crash {
                service,
                track,
                instance,
                ..
            } => {
                if let Some(name) = service
                    && let Some(reason) = serin_signals::dns_label_problem(name)
                {
                    return Err(Error::invalid(format!("{field}.service"), name, reason));
                }
                // Instances are named `<track>-<n>`: any other name would never crash.
                let of_track = |name: &str| {
                    name.strip_prefix(track.as_str())
                        .and_then(|rest| rest.strip_prefix('-'))
                        .and_then(|n| n.parse::<u32>().ok().filter(|i| i.to_string() == n))
                        .is_some()
                };
                match instance {
                    Some(name) if !of_track(name) => Err(Error::invalid(
                        format!("{field}.instance"),
                        name,
                        format!(
                            "must name an instance of track `{track}` as `{track}-<n>` \
                             (or be left out for all)"
                        ),
                    )),
                    _ => Ok(()),
                }
            }
            Fault::ProbeFailure {
                span,
                probe: Probe::Readiness | Probe::Liveness,
                ..
            }
            | Fault::MetricsGap { span } => span.validate_on_traffic(&format!("{field}.span")),
            Fault::SlowStart { span, .. }
            | Fault::MetricsOutage { span }
            | Fault::ProbeFailure { span, .. }
            | Fault::HealthOutage { span } => span.validate(&format!("{field}.span")),
            Fault::Latency { span, factor, .. } => {
                span.validate_on_traffic(&format!("{field}.span"))?;
                if !factor.is_finite() || *factor <= 0.0 || *factor > 1_000.0 {
                    return Err(Error::invalid(
                        format!("{field}.factor"),
                        factor,
                        "must be a finite multiplier in 0 < factor <= 1000",
                    ));
                }
                Ok(())
            }
            Fault::Errors { span, rate, .. } => {
                span.validate_on_traffic(&format!("{field}.span"))?;
                if !rate.is_finite() || !(0.0..=1.0).contains(rate) {
                    return Err(Error::invalid(
                        format!("{field}.rate"),
                        rate,
                        "must be a share of requests in 0 ..= 1",
                    ));
                }
                Ok(())
            }
            Fault::RouterErrors { span, message } | Fault::PlatformErrors { span, message } => {
                span.validate(&format!("{field}.span"))?;
                if message.is_empty() {
                    return Err(Error::invalid(
                        format!("{field}.message"),
                        "",
                        "must say what failed",
                    ));
                }
                Ok(())
            }
        }
    }
}

/// A fault as written: every field any kind has, checked against its kind by
/// [`RawFault::into_fault`]. Read as a plain struct rather than a tagged enum (which serde
/// buffers before it knows the kind), so that a reader that follows paths sees into it and
/// an error names the field it is about (`faults[2].at`), not just the entry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct RawFault {
    kind: Kind,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    track: Option<Track>,
    #[serde(default)]
    instance: Option<String>,
    #[serde(default, with = "serin_signals::duration::option")]
    at: Option<Duration>,
    #[serde(default)]
    span: Option<Span>,
    #[serde(default, with = "serin_signals::duration::option")]
    extra: Option<Duration>,
    #[serde(default)]
    probe: Option<Probe>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    factor: Option<f64>,
    #[serde(default)]
    rate: Option<f64>,
}

/// The `kind` tag of a [`Fault`].
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "camelCase")]
enum Kind {
    Crash,
    SlowStart,
    MetricsOutage,
    MetricsGap,
    RouterErrors,
    PlatformErrors,
    ProbeFailure,
    HealthOutage,
    Latency,
    Errors,
}

impl Kind {
    /// The tag as written, and the fields a fault of this kind has.
    fn describe(self) -> (&'static str, &'static [&'static str]) {
        match self {
            Kind::Crash => ("crash", &["service", "track", "instance", "at"]),
            Kind::SlowStart => ("slowStart", &["track", "span", "extra"]),
            Kind::MetricsOutage => ("metricsOutage", &["span"]),
            Kind::MetricsGap => ("metricsGap", &["span"]),
            Kind::RouterErrors => ("routerErrors", &["span", "message"]),
            Kind::PlatformErrors => ("platformErrors", &["span", "message"]),
            Kind::ProbeFailure => ("probeFailure", &["track", "probe", "span"]),
            Kind::HealthOutage => ("healthOutage", &["span"]),
            Kind::Latency => ("latency", &["track", "span", "factor"]),
            Kind::Errors => ("errors", &["track", "span", "rate"]),
        }
    }
}

/// A field a fault must have, or the field and why it is refused.
fn need<T>(value: Option<T>, field: &'static str, kind: &str) -> Result<T, (&'static str, String)> {
    value.ok_or_else(|| (field, format!("is missing: a `{kind}` fault needs it")))
}

impl RawFault {
    /// The fault written, or the field at fault (relative to the fault) and why.
    pub(crate) fn into_fault(self) -> Result<Fault, (&'static str, String)> {
        let (kind, fields) = self.kind.describe();
        let given = [
            ("service", self.service.is_some()),
            ("track", self.track.is_some()),
            ("instance", self.instance.is_some()),
            ("at", self.at.is_some()),
            ("span", self.span.is_some()),
            ("extra", self.extra.is_some()),
            ("probe", self.probe.is_some()),
            ("message", self.message.is_some()),
            ("factor", self.factor.is_some()),
            ("rate", self.rate.is_some()),
        ];
        if let Some((field, _)) = given.iter().find(|(f, set)| *set && !fields.contains(f)) {
            return Err((
                field,
                format!(
                    "is not a field of a `{kind}` fault (its fields: {})",
                    fields.join(", ")
                ),
            ));
        }
        let span = || need(self.span, "span", kind);
        Ok(match self.kind {
            Kind::Crash => Fault::Crash {
                service: self.service,
                track: need(self.track, "track", kind)?,
                instance: self.instance,
                at: need(self.at, "at", kind)?,
            },
            Kind::SlowStart => Fault::SlowStart {
                track: self.track,
                span: span()?,
                extra: need(self.extra, "extra", kind)?,
            },
            Kind::MetricsOutage => Fault::MetricsOutage { span: span()? },
            Kind::MetricsGap => Fault::MetricsGap { span: span()? },
            Kind::RouterErrors => Fault::RouterErrors {
                span: span()?,
                message: need(self.message, "message", kind)?,
            },
            Kind::PlatformErrors => Fault::PlatformErrors {
                span: span()?,
                message: need(self.message, "message", kind)?,
            },
            Kind::ProbeFailure => Fault::ProbeFailure {
                track: self.track,
                probe: need(self.probe, "probe", kind)?,
                span: span()?,
            },
            Kind::HealthOutage => Fault::HealthOutage { span: span()? },
            Kind::Latency => Fault::Latency {
                track: self.track,
                span: span()?,
                factor: need(self.factor, "factor", kind)?,
            },
            Kind::Errors => Fault::Errors {
                track: self.track,
                span: span()?,
                rate: need(self.rate, "rate", kind)?,
            },
        })
    }
}

impl<'de> Deserialize<'de> for Fault {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        RawFault::deserialize(d)?
            .into_fault()
            .map_err(|(field, reason)| serde::de::Error::custom(format!("{field}: {reason}")))
    }
}

/// Whether `fault_track` (absent: every track) covers `track`.
pub(crate) fn covers(fault_track: Option<&Track>, track: &Track) -> bool {
    fault_track.is_none_or(|t| t == track)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Spans that overlap or touch hold as one; one past a gap does not reach back.
    #[test]
    fn the_span_in_force_joins_spans_without_a_break() {
        let s = |from: u64, until: u64| {
            Span::new(Duration::from_secs(from), Duration::from_secs(until))
        };
        let spans = [s(50, 60), s(10, 30), s(20, 40), s(40, 45)];
        let at = |since: u64| Span::in_force(spans, Duration::from_secs(since));
        assert_eq!(at(12), Some(s(10, 45)));
        assert_eq!(at(44), Some(s(10, 45)));
        assert_eq!(at(45), None);
        assert_eq!(at(55), Some(s(50, 60)));
        assert_eq!(at(5), None);
        assert_eq!(Span::in_force([], Duration::ZERO), None);
    }

    #[test]
    fn faults_read_with_a_kind_tag() {
        let f: Vec<Fault> = serde_json::from_str(
            r#"[
                {"kind": "crash", "track": "canary", "at": "30m"},
                {"kind": "metricsOutage", "span": {"from": "1h", "until": "1h5m"}},
                {"kind": "probeFailure", "probe": {"dependency": "postgres"},
                 "span": {"from": 0, "until": "10m"}},
                {"kind": "routerErrors", "span": {"from": "0s", "until": "1s"}, "message": "503"}
            ]"#,
        )
        .unwrap();
        assert_eq!(
            f[0],
            Fault::Crash {
                service: None,
                track: Track::Canary,
                instance: None,
                at: Duration::from_secs(1_800)
            }
        );
        assert_eq!(f[1].starts(), Duration::from_secs(3_600));
        let json = serde_json::to_string(&f).unwrap();
        assert_eq!(serde_json::from_str::<Vec<Fault>>(&json).unwrap(), f);
        assert!(
            serde_json::from_str::<Fault>(
                r#"{"kind": "crash", "track": "canary", "at": 1, "x": 1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn empty_spans_are_rejected_with_the_path() {
        let f = Fault::MetricsOutage {
            span: Span::new(Duration::from_secs(5), Duration::from_secs(5)),
        };
        let msg = f.validate("faults[0]").unwrap_err().to_string();
        assert!(msg.contains("faults[0].span.until"), "{msg}");
        let f = Fault::RouterErrors {
            span: Span::new(Duration::ZERO, Duration::from_secs(5)),
            message: String::new(),
        };
        assert!(
            f.validate("f")
                .unwrap_err()
                .to_string()
                .contains("f.message")
        );
    }
}
