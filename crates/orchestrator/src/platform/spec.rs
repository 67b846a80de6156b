//! [`TrackSpec`]: what a [`Platform`](crate::Platform) is asked to bring up.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serin_signals::Track;

use crate::error::{Error, Result};

/// The environment variables a process platform sets itself; a spec may not set them.
pub const RESERVED_ENV: [&str; 3] = ["PORT", "VERSION", "INSTANCE"];

/// A version of a service to run as a track of N instances.
///
/// Valid by construction: the service is a DNS label, the track passes [`Track::validate`] (a
/// [`Track::Named`] is a DNS label and none of the four well-known names, so the spec can be
/// serialized, journalled and read back as the same track), there are
/// 1 ..= [`TrackSpec::MAX_INSTANCES`] instances, environment names are shell identifiers and none of [`RESERVED_ENV`]. The
/// `command` (program then arguments) and `env` are for platforms that start processes; others
/// ignore them. A process platform adds `PORT`, `VERSION` and `INSTANCE` to each instance's
/// environment.
///
/// ```
/// use serin_orchestrator::TrackSpec;
/// use serin_signals::Track;
///
/// let spec: TrackSpec = serde_json::from_str(r#"{
///     "service": "web", "version": "1.4.0", "track": "green", "instances": 2,
///     "command": ["./web", "--quiet"], "env": {"RUST_LOG": "info"}
/// }"#)?;
/// assert_eq!((spec.service(), spec.track(), spec.instances()), ("web", &Track::Green, 2));
/// let err = serde_json::from_str::<TrackSpec>(
///     r#"{"service": "web", "version": "1.4.0", "track": "green", "instances": 0}"#,
/// ).unwrap_err();
/// assert!(err.to_string().contains("trackSpec.instances"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawSpec", into = "RawSpec")]
pub struct TrackSpec {
    service: String,
    version: semver::Version,
    track: Track,
    instances: u32,
    command: Vec<String>,
    env: BTreeMap<String, String>,
}

impl TrackSpec {
    /// The most instances one track may have on any platform.
    pub const MAX_INSTANCES: u32 = 64;

    /// A spec for `instances` instances of `service` at `version` as `track`, with no command
    /// and no extra environment.
    ///
    /// A [`Track::Named`] that [`Track::validate`] refuses (`Named("stable")`, `Named("Bad Name")`)
    /// is [`Error::InvalidField`] on `trackSpec.track`: such a spec could not be serialized, and a
    /// platform would run under a second name a track the router and sources know by another.
    pub fn new(service: &str, version: &str, track: Track, instances: u32) -> Result<Self> {
        validate_service("trackSpec.service", service)?;
        let version = semver::Version::parse(version)
            .map_err(|e| Error::invalid("trackSpec.version", version, e.to_string()))?;
        validate_track("trackSpec.track", &track)?;
        validate_instances("trackSpec.instances", instances)?;
        Ok(TrackSpec {
            service: service.to_owned(),
            version,
            track,
            instances,
            command: Vec::new(),
            env: BTreeMap::new(),
        })
    }

    /// This spec with `command` (program, then arguments); the program must not be empty.
    pub fn with_command<S: AsRef<str>>(
        mut self,
        command: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let command: Vec<String> = command.into_iter().map(|s| s.as_ref().to_owned()).collect();
        match command.first() {
            Some(p) if !p.is_empty() => {}
            _ => {
                return Err(Error::invalid(
                    "trackSpec.command",
                    format!("{command:?}"),
                    "must start with a non-empty program",
                ));
            }
        }
        self.command = command;
        Ok(self)
    }

    /// This spec with the environment variable `name` set to `value`.
    pub fn with_env(mut self, name: &str, value: &str) -> Result<Self> {
        validate_env_name(&format!("trackSpec.env.{name}"), name)?;
        self.env.insert(name.to_owned(), value.to_owned());
        Ok(self)
    }

    /// The same spec as another track (`green` from a `blue` template); a track
    /// [`Track::validate`] refuses is an error, as in [`new`](TrackSpec::new).
    pub fn as_track(mut self, track: Track) -> Result<Self> {
        validate_track("trackSpec.track", &track)?;
        self.track = track;
        Ok(self)
    }

    /// The same spec with another instance count.
    pub fn with_instances(mut self, instances: u32) -> Result<Self> {
        validate_instances("trackSpec.instances", instances)?;
        self.instances = instances;
        Ok(self)
    }

    /// The service.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The version.
    pub fn version(&self) -> &semver::Version {
        &self.version
    }

    /// The track.
    pub fn track(&self) -> &Track {
        &self.track
    }

    /// How many instances.
    pub fn instances(&self) -> u32 {
        self.instances
    }

    /// The command (program, then arguments); empty when none was given.
    pub fn command(&self) -> &[String] {
        &self.command
    }

    /// The extra environment.
    pub fn env(&self) -> &BTreeMap<String, String> {
        &self.env
    }

    /// `service/track`, as errors and listings name a track.
    pub fn key(&self) -> TrackKey {
        TrackKey::new(&self.service, &self.track)
    }
}

/// A track of a service, named `service/track` in messages.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TrackKey {
    /// The service.
    pub service: String,
    /// The track.
    pub track: Track,
}

impl TrackKey {
    /// The key of `track` of `service`.
    pub fn new(service: &str, track: &Track) -> Self {
        TrackKey {
            service: service.to_owned(),
            track: track.clone(),
        }
    }
}

impl fmt::Display for TrackKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.service, self.track)
    }
}

/// Checks an instance count: 1 ..= [`TrackSpec::MAX_INSTANCES`].
pub(crate) fn validate_instances(field: &str, instances: u32) -> Result<()> {
    if instances == 0 {
        return Err(Error::invalid(
            field,
            instances,
            "must be at least 1 (retire the track to run none)",
        ));
    }
    if instances > TrackSpec::MAX_INSTANCES {
        return Err(Error::invalid(
            field,
            instances,
            format!("must be at most {}", TrackSpec::MAX_INSTANCES),
        ));
    }
    Ok(())
}

/// Checks a track: [`Track::validate`], with its error as this crate's.
fn validate_track(field: &str, track: &Track) -> Result<()> {
    track.validate(field).map_err(|e| match e {
        serin_signals::Error::InvalidField {
            field,
            value,
            reason,
        } => Error::invalid(field, value, reason),
        other => Error::invalid(field, track.as_str(), other.to_string()),
    })
}

/// Checks a service name: a DNS label, as every platform and backup provider names it.
pub(crate) fn validate_service(field: &str, value: &str) -> Result<()> {
    match serin_signals::dns_label_problem(value) {
        Some(reason) => Err(Error::invalid(field, value, reason)),
        None => Ok(()),
    }
}

fn validate_env_name(field: &str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let ok_start = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    if !ok_start || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(Error::invalid(
            field,
            name,
            "must be a letter or '_' followed by letters, digits or '_'",
        ));
    }
    if RESERVED_ENV.contains(&name) {
        return Err(Error::invalid(
            field,
            name,
            "is set by the platform for each instance",
        ));
    }
    Ok(())
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawSpec {
    service: String,
    version: String,
    track: Track,
    instances: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    command: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    env: BTreeMap<String, String>,
}

impl TryFrom<RawSpec> for TrackSpec {
    type Error = Error;
    fn try_from(raw: RawSpec) -> Result<Self> {
        let mut spec = TrackSpec::new(&raw.service, &raw.version, raw.track, raw.instances)?;
        if !raw.command.is_empty() {
            spec = spec.with_command(raw.command)?;
        }
        for (name, value) in &raw.env {
            spec = spec.with_env(name, value)?;
        }
        Ok(spec)
    }
}

impl From<TrackSpec> for RawSpec {
    fn from(s: TrackSpec) -> Self {
        RawSpec {
            service: s.service,
            version: s.version.to_string(),
            track: s.track,
            instances: s.instances,
            command: s.command,
            env: s.env,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field_of(e: Error) -> String {
        match e {
            Error::InvalidField { field, .. } => field,
            other => panic!("expected InvalidField, got {other:?}"),
        }
    }

    #[test]
    fn bad_input_names_the_field() {
        for (service, version, instances, field) in [
            ("Web", "1.0.0", 1, "trackSpec.service"),
            ("", "1.0.0", 1, "trackSpec.service"),
            ("web", "1.0", 1, "trackSpec.version"),
            ("web", "1.0.0", 0, "trackSpec.instances"),
            ("web", "1.0.0", 65, "trackSpec.instances"),
        ] {
            let e = TrackSpec::new(service, version, Track::Blue, instances).unwrap_err();
            assert_eq!(field_of(e), field, "{service} {version} {instances}");
        }
        let spec = TrackSpec::new("web", "1.0.0", Track::Blue, 1).unwrap();
        assert_eq!(
            field_of(spec.clone().with_env("PORT", "1").unwrap_err()),
            "trackSpec.env.PORT"
        );
        assert!(spec.clone().with_env("1X", "1").is_err());
        for bad in ["stable", "Bad Name", ""] {
            let track = Track::Named(bad.to_owned());
            let e = TrackSpec::new("web", "1.0.0", track.clone(), 1).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidField { field, value, .. }
                    if field == "trackSpec.track" && value == bad),
                "{bad:?}: {e:?}"
            );
            let e = spec.clone().as_track(track).unwrap_err();
            assert_eq!(field_of(e), "trackSpec.track", "{bad:?}");
        }
        let shadow = Track::named("shadow-1").unwrap();
        assert_eq!(
            spec.clone().as_track(shadow.clone()).unwrap().track(),
            &shadow
        );
        assert!(spec.clone().with_command([""]).is_err());
        assert!(spec.with_command(Vec::<String>::new()).is_err());
    }

    #[test]
    fn round_trips_in_camel_case_and_refuses_unknown_fields() {
        let spec = TrackSpec::new("web", "2.0.0-rc.1", Track::Canary, 3)
            .unwrap()
            .with_command(["serve", "--port-from-env"])
            .unwrap()
            .with_env("MODE", "canary")
            .unwrap();
        let json = serde_json::to_string(&spec).unwrap();
        assert_eq!(serde_json::from_str::<TrackSpec>(&json).unwrap(), spec);
        assert_eq!(spec.key().to_string(), "web/canary");
        let extra =
            r#"{"service":"web","version":"1.0.0","track":"blue","instances":1,"replicas":2}"#;
        assert!(serde_json::from_str::<TrackSpec>(extra).is_err());
    }
}
