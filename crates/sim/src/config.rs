//! [`SimConfig`]: everything a simulated world is made of, checked before it runs.

use std::collections::BTreeMap;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serin_signals::Timestamp;
use serin_traffic::Capabilities;

use crate::error::{Error, Result};
use crate::fault::{Fault, RawFault};
use crate::load::Load;
use crate::profile::VersionProfile;

/// What happens to the share of traffic a split gives a track with no ready instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Unready {
    /// Those requests fail, as behind a proxy with no healthy upstream (a 503): they count as
    /// requests and errors of the track they were sent to, and as
    /// [`SimWorld::unroutable`](crate::SimWorld::unroutable). Sending weight to a track before it
    /// is ready shows up in its error rate.
    #[default]
    Fail,
    /// The router spreads that share over the tracks of the split that have ready instances,
    /// in proportion to their weights (as a load balancer that skips empty pools). A track at
    /// weight 0 takes none, ready or not, as in a weighted load balancer: only when no track
    /// with a weight above 0 is ready do requests fail (a switch to a track not yet ready
    /// fails its traffic even though the track it left is ready).
    Redistribute,
}

/// A simulated world: the seed, the start of virtual time, the service and its load, how each
/// version behaves, and the faults to come.
///
/// Built in code with [`SimConfig::new`] and `with_*` setters, or read from YAML/JSON/TOML
/// (camelCase, unknown fields rejected, every field checked on load with its path). It is
/// written back in the same form, every field spelled out, so a world built or changed in code
/// (faults injected while it ran, say: [`SimWorld::config`](crate::SimWorld::config)) can be
/// kept as a scenario file and loaded again as the same world. The router's
/// [capabilities](SimConfig::with_capabilities) are set in code only and are not written.
///
/// ```
/// let yaml = r#"
/// seed: 7
/// start: 1700000000000
/// service: shop
/// load: {kind: diurnal, meanRps: 300, amplitude: 0.4, peakAt: 14h}
/// profiles:
///   "2.0.0": {errorRate: [{at: 0s, value: 0.005}, {at: 10m, value: 0.05}]}
/// faults:
///   - {kind: crash, track: canary, instance: canary-0, at: 45m}
/// "#;
/// let config: serin_sim::SimConfig = serde_yaml_ng::from_str(yaml)?;
/// assert_eq!(config.service(), "shop");
///
/// let bad = serde_yaml_ng::from_str::<serin_sim::SimConfig>("seed: 1\nprofiles: {\"2.0\": {}}");
/// assert!(bad.unwrap_err().to_string().contains("simConfig.profiles.2.0"));
///
/// let written = serde_yaml_ng::to_string(&config)?;
/// assert_eq!(serde_yaml_ng::from_str::<serin_sim::SimConfig>(&written)?, config);
/// # Ok::<(), serde_yaml_ng::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    seed: u64,
    start: Timestamp,
    service: String,
    load: Load,
    default_profile: VersionProfile,
    profiles: BTreeMap<semver::Version, VersionProfile>,
    dependencies: Vec<String>,
    unready: Unready,
    faults: Vec<Fault>,
    capabilities: Capabilities,
}

/// 2023-11-14T22:13:20Z: a fixed, readable default start for virtual time.
pub(crate) const DEFAULT_START: Timestamp = Timestamp::from_millis(1_700_000_000_000);

impl SimConfig {
    /// A world with this seed, starting at 2023-11-14T22:13:20Z, serving `web` at a constant
    /// 100 requests per second, every version healthy ([`VersionProfile::default`]), no
    /// dependencies, no faults, and a router with [`Capabilities::full`].
    pub fn new(seed: u64) -> Self {
        SimConfig {
            seed,
            start: DEFAULT_START,
            service: "web".to_owned(),
            load: Load::default(),
            default_profile: VersionProfile::default(),
            profiles: BTreeMap::new(),
            dependencies: Vec::new(),
            unready: Unready::default(),
            faults: Vec::new(),
            capabilities: Capabilities::full(),
        }
    }

    /// Virtual time starts at `start`.
    pub fn with_start(mut self, start: Timestamp) -> Self {
        self.start = start;
        self
    }

    /// The service whose tracks receive the load (other services may run, unloaded).
    pub fn with_service(mut self, service: impl Into<String>) -> Self {
        self.service = service.into();
        self
    }

    /// The total request rate.
    pub fn with_load(mut self, load: Load) -> Self {
        self.load = load;
        self
    }

    /// How versions without a profile of their own behave.
    pub fn with_default_profile(mut self, profile: VersionProfile) -> Self {
        self.default_profile = profile;
        self
    }

    /// How `version` behaves.
    pub fn with_profile(mut self, version: semver::Version, profile: VersionProfile) -> Self {
        self.profiles.insert(version, profile);
        self
    }

    /// A dependency every track probes (reported by the health source; fails only by fault).
    pub fn with_dependency(mut self, name: impl Into<String>) -> Self {
        self.dependencies.push(name.into());
        self
    }

    /// What happens to traffic sent to a track with no ready instance.
    pub fn with_unready(mut self, unready: Unready) -> Self {
        self.unready = unready;
        self
    }

    /// A fault to come.
    pub fn with_fault(mut self, fault: Fault) -> Self {
        self.faults.push(fault);
        self
    }

    /// What the router can do (not part of the serialized form).
    pub fn with_capabilities(mut self, capabilities: Capabilities) -> Self {
        self.capabilities = capabilities;
        self
    }

    /// The seed of every random draw.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// The start of virtual time.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The service that receives the load.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The total request rate.
    pub fn load(&self) -> &Load {
        &self.load
    }

    /// The profile `version` runs with.
    pub fn profile_of(&self, version: &semver::Version) -> &VersionProfile {
        self.profiles.get(version).unwrap_or(&self.default_profile)
    }

    /// The dependencies every track probes.
    pub fn dependencies(&self) -> &[String] {
        &self.dependencies
    }

    /// What happens to traffic sent to a track with no ready instance.
    pub fn unready(&self) -> Unready {
        self.unready
    }

    /// The scripted faults.
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// What the router can do.
    pub fn capabilities(&self) -> Capabilities {
        self.capabilities
    }

    pub(crate) fn push_fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    pub(crate) fn set_profile(&mut self, version: semver::Version, profile: VersionProfile) {
        self.profiles.insert(version, profile);
    }

    /// Checks every field, naming its path (`simConfig.profiles.2.0.0.errorRate[1].value`).
    pub fn validate(&self) -> Result<()> {
        validate_label("simConfig.service", &self.service)?;
        self.load.validate("simConfig.load")?;
        self.default_profile.validate("simConfig.defaultProfile")?;
        for (version, profile) in &self.profiles {
            profile.validate(&format!("simConfig.profiles.{version}"))?;
        }
        for (i, name) in self.dependencies.iter().enumerate() {
            // A blank or padded name is a slip: a health report would name a dependency no
            // one can read, and a fault's probe would have to repeat the padding to match it.
            if name.trim().is_empty() || name.trim() != name || name.len() > 253 {
                return Err(Error::invalid(
                    format!("simConfig.dependencies[{i}]"),
                    name,
                    "must be a name of 1 to 253 characters, not blank and without surrounding \
                     whitespace",
                ));
            }
            if self.dependencies[..i].contains(name) {
                return Err(Error::invalid(
                    format!("simConfig.dependencies[{i}]"),
                    name,
                    "is listed twice",
                ));
            }
        }
        for (i, fault) in self.faults.iter().enumerate() {
            let earlier = self.faults.get(..i).unwrap_or_default();
            self.check_fault(fault, &format!("simConfig.faults[{i}]"), earlier)?;
        }
        Ok(())
    }

    /// Checks `fault` on its own and against this world: a dependency probe can only fail
    /// for a dependency the tracks probe, or the fault would never show; and it must not
    /// clash with any of the `earlier` faults, which are the first of `simConfig.faults`.
    pub(crate) fn check_fault(&self, fault: &Fault, field: &str, earlier: &[Fault]) -> Result<()> {
        fault.validate(field)?;
        for (j, other) in earlier.iter().enumerate() {
            if let Some(reason) = fault.clash(other) {
                return Err(Error::invalid(
                    field,
                    format!("{fault:?}"),
                    format!("overlaps simConfig.faults[{j}], which {reason}"),
                ));
            }
        }
        if let Fault::ProbeFailure {
            probe: serin_signals::Probe::Dependency(name),
            ..
        } = fault
            && !self.dependencies.contains(name)
        {
            return Err(Error::invalid(
                format!("{field}.probe.dependency"),
                name,
                format!(
                    "is not a dependency of the world (simConfig.dependencies: {:?})",
                    self.dependencies
                ),
            ));
        }
        Ok(())
    }
}

/// Checks a DNS-1123 label (a service name).
fn validate_label(field: &str, value: &str) -> Result<()> {
    match serin_signals::dns_label_problem(value) {
        Some(reason) => Err(Error::invalid(field, value, reason)),
        None => Ok(()),
    }
}

impl Serialize for SimConfig {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        ConfigOut {
            seed: self.seed,
            start: self.start,
            service: &self.service,
            load: &self.load,
            default_profile: &self.default_profile,
            profiles: self
                .profiles
                .iter()
                .map(|(version, profile)| (version.to_string(), profile))
                .collect(),
            dependencies: &self.dependencies,
            unready: self.unready,
            faults: &self.faults,
        }
        .serialize(s)
    }
}

/// The written form of a [`SimConfig`]: what [`RawConfig`] reads, by reference.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigOut<'a> {
    seed: u64,
    start: Timestamp,
    service: &'a str,
    load: &'a Load,
    default_profile: &'a VersionProfile,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    profiles: BTreeMap<String, &'a VersionProfile>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    dependencies: &'a [String],
    unready: Unready,
    #[serde(skip_serializing_if = "<[Fault]>::is_empty")]
    faults: &'a [Fault],
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawConfig {
    seed: u64,
    #[serde(default)]
    start: Option<Timestamp>,
    #[serde(default)]
    service: Option<String>,
    #[serde(default)]
    load: Option<Load>,
    #[serde(default)]
    default_profile: Option<VersionProfile>,
    #[serde(default)]
    profiles: ProfileEntries,
    #[serde(default)]
    dependencies: Vec<String>,
    #[serde(default)]
    unready: Unready,
    #[serde(default)]
    faults: FaultEntries,
}

/// Reads a value that stands at `prefix` in the config (`simConfig.faults[2]`) and, when it is
/// refused, names where in it (`simConfig.faults[2].span.until`): the readers' own errors name
/// at most the list or map it is in, or only a line and column.
struct AtPath<T> {
    prefix: String,
    /// Whether the value is the whole config: its error leaves the reader as it is, so it
    /// keeps the line and column the reader put at its end.
    root: bool,
    value: std::marker::PhantomData<T>,
}

impl<T> AtPath<T> {
    fn new(prefix: String) -> Self {
        AtPath {
            prefix,
            root: false,
            value: std::marker::PhantomData,
        }
    }

    /// The whole config, at `simConfig`.
    fn root() -> Self {
        AtPath {
            root: true,
            ..AtPath::new("simConfig".to_owned())
        }
    }
}

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for AtPath<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<T, D::Error> {
        serde_path_to_error::deserialize(d).map_err(|e| {
            let inner = e.path().to_string();
            let path = match inner.as_str() {
                "." => self.prefix.clone(),
                i if i.starts_with('[') => format!("{}{i}", self.prefix),
                i => format!("{}.{i}", self.prefix),
            };
            let message = e.into_inner().to_string();
            let (message, position) = split_position(&message);
            let position = if self.root { position } else { "" };
            serde::de::Error::custom(format!("{}{position}", located(&path, message)))
        })
    }
}

/// `message`, a reader's error about the value at `path`, as `path: reason`. The paths put in
/// front of the reason are dropped: a reader's own (the YAML reader's `faults[1].at: `) that
/// `path` holds, and an inner [`AtPath`]'s that names a field deeper in the value
/// (`simConfig.faults[2].at` inside `simConfig.faults`), which then replaces `path`.
fn located<'a>(mut path: &'a str, message: &'a str) -> String {
    let mut reason = message;
    while let Some((own, rest)) = reason.split_once(": ")
        && !own.is_empty()
        && !own.contains(' ')
    {
        let deeper = own
            .strip_prefix(path)
            .is_some_and(|tail| tail.is_empty() || tail.starts_with(['.', '[']));
        if deeper {
            path = own;
        } else if !path.contains(own) {
            break;
        }
        reason = rest;
    }
    format!("{path}: {reason}")
}

/// `message` and the position a reader put at its end (` at line 3 column 7`), apart: inside
/// the config, the reader adds its own again to the error built from it.
fn split_position(message: &str) -> (&str, &str) {
    let Some((head, tail)) = message.rsplit_once(" at line ") else {
        return (message, "");
    };
    let position = tail.split_once(" column ").is_some_and(|(line, column)| {
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        digits(line) && digits(column)
    });
    if position {
        message.split_at(head.len())
    } else {
        (message, "")
    }
}

/// The `faults` list as written, each entry read with its index in its errors.
#[derive(Default)]
struct FaultEntries(Vec<Fault>);

impl<'de> Deserialize<'de> for FaultEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = FaultEntries;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of faults")
            }

            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<FaultEntries, A::Error> {
                let mut faults = Vec::new();
                loop {
                    let prefix = format!("simConfig.faults[{}]", faults.len());
                    let Some(raw) =
                        seq.next_element_seed(AtPath::<RawFault>::new(prefix.clone()))?
                    else {
                        break;
                    };
                    let fault = raw.into_fault().map_err(|(field, reason)| {
                        serde::de::Error::custom(format!("{prefix}.{field}: {reason}"))
                    })?;
                    faults.push(fault);
                }
                Ok(FaultEntries(faults))
            }
        }
        d.deserialize_seq(Entries)
    }
}

/// The `profiles` map as written: every entry, in order. Read into a map directly, a version
/// written twice (a copied block not renamed) would keep whichever profile came last and drop
/// the other without a word; kept as a list, it is refused with its path.
#[derive(Default)]
struct ProfileEntries(Vec<(String, VersionProfile)>);

impl<'de> Deserialize<'de> for ProfileEntries {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = ProfileEntries;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from versions (`2.0.0`) to version profiles")
            }

            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<ProfileEntries, A::Error> {
                let mut entries = Vec::new();
                while let Some(version) = map.next_key::<String>()? {
                    let at = AtPath::new(format!("simConfig.profiles.{version}"));
                    let profile: VersionProfile = map.next_value_seed(at)?;
                    entries.push((version, profile));
                }
                Ok(ProfileEntries(entries))
            }
        }
        d.deserialize_map(Entries)
    }
}

impl<'de> Deserialize<'de> for SimConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let raw = AtPath::<RawConfig>::root().deserialize(d)?;
        SimConfig::try_from(raw).map_err(serde::de::Error::custom)
    }
}

impl TryFrom<RawConfig> for SimConfig {
    type Error = Error;
    fn try_from(raw: RawConfig) -> Result<Self> {
        let mut config = SimConfig::new(raw.seed);
        if let Some(start) = raw.start {
            config.start = start;
        }
        if let Some(service) = raw.service {
            config.service = service;
        }
        if let Some(load) = raw.load {
            config.load = load;
        }
        if let Some(profile) = raw.default_profile {
            config.default_profile = profile;
        }
        for (version, profile) in raw.profiles.0 {
            let parsed = semver::Version::parse(&version).map_err(|e| {
                Error::invalid(
                    format!("simConfig.profiles.{version}"),
                    &version,
                    format!("is not a semver version: {e}"),
                )
            })?;
            if config.profiles.contains_key(&parsed) {
                return Err(Error::invalid(
                    format!("simConfig.profiles.{version}"),
                    &version,
                    "is written twice; a version has one profile",
                ));
            }
            config.profiles.insert(parsed, profile);
        }
        config.dependencies = raw.dependencies;
        config.unready = raw.unready;
        config.faults = raw.faults.0;
        config.validate()?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fault::Span;
    use crate::schedule::Schedule;

    #[test]
    fn defaults_are_valid() {
        SimConfig::new(1).validate().unwrap();
        let c: SimConfig = serde_json::from_str(r#"{"seed": 3}"#).unwrap();
        assert_eq!(c, SimConfig::new(3));
    }

    #[test]
    fn errors_name_the_path_value_and_reason() {
        for (json, path) in [
            (r#"{"seed": 1, "service": "Web"}"#, "simConfig.service"),
            (
                r#"{"seed": 1, "load": {"kind": "constant", "rps": -5}}"#,
                "simConfig.load.rps",
            ),
            (
                r#"{"seed": 1, "profiles": {"3.0.0": {"errorRate": 2}}}"#,
                "simConfig.profiles.3.0.0.errorRate[0].value",
            ),
            (
                r#"{"seed": 1, "faults": [{"kind": "metricsOutage", "span": {"from": "5m", "until": "1m"}}]}"#,
                "simConfig.faults[0].span.until",
            ),
            (
                r#"{"seed": 1, "dependencies": ["pg", "pg"]}"#,
                "simConfig.dependencies[1]",
            ),
        ] {
            let msg = serde_json::from_str::<SimConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(path), "{json}: {msg}");
        }
        assert!(serde_json::from_str::<SimConfig>(r#"{"seed": 1, "sed": 2}"#).is_err());
        assert!(serde_json::from_str::<SimConfig>(r#"{"service": "web"}"#).is_err());
    }

    #[test]
    fn a_blank_or_padded_dependency_is_refused() {
        for (json, index) in [
            (r#"{"seed": 1, "dependencies": ["pg", "  "]}"#, 1),
            (r#"{"seed": 1, "dependencies": [""]}"#, 0),
            (r#"{"seed": 1, "dependencies": [" pg"]}"#, 0),
        ] {
            let msg = serde_json::from_str::<SimConfig>(json)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains(&format!("simConfig.dependencies[{index}]")) && msg.contains("blank"),
                "{json}: {msg}"
            );
        }
        assert!(SimConfig::new(1).with_dependency(" ").validate().is_err());
        SimConfig::new(1).with_dependency("pg").validate().unwrap();
    }

    /// A value the reader refuses outside the faults and profiles, or a field it does not
    /// know, is named with its path too, in JSON and in YAML.
    #[test]
    fn reader_errors_name_the_top_level_field() {
        for (json, path) in [
            (r#"{"seed": 1, "sed": 2}"#, "simConfig.sed: unknown field"),
            (r#"{"seed": "x"}"#, "simConfig.seed: invalid type"),
            (r#"{"service": "web"}"#, "simConfig: missing field `seed`"),
            (r#"{"seed": 1, "start": "yesterday"}"#, "simConfig.start: "),
            (r#"{"seed": 1, "unready": "maybe"}"#, "simConfig.unready: "),
            (
                r#"{"seed": 1, "dependencies": {}}"#,
                "simConfig.dependencies: ",
            ),
            (
                r#"{"seed": 1, "load": {"kind": "constant", "rps": "x"}}"#,
                "simConfig.load",
            ),
            (
                r#"{"seed": 1, "defaultProfile": {"startup": "soon"}}"#,
                "simConfig.defaultProfile.startup: `soon` is not a duration",
            ),
            (
                r#"{"seed": 1, "defaultProfile": {"errorRat": 0.1}}"#,
                "simConfig.defaultProfile.errorRat: unknown field",
            ),
            (
                r#"{"seed": 1, "defaultProfile": {"errorRate": [{"at": "1m", "valu": 0.1}]}}"#,
                "simConfig.defaultProfile.errorRate[0].valu: unknown field `valu`",
            ),
            (
                r#"{"seed": 1, "defaultProfile": {"errorRate": "5%"}}"#,
                r#"simConfig.defaultProfile.errorRate: invalid type: string "5%", expected a number"#,
            ),
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let yaml = serde_yaml_ng::to_string(&value).unwrap();
            for msg in [
                serde_json::from_str::<SimConfig>(json)
                    .unwrap_err()
                    .to_string(),
                serde_yaml_ng::from_str::<SimConfig>(&yaml)
                    .unwrap_err()
                    .to_string(),
            ] {
                assert!(msg.contains(path), "{json}: {msg}");
                assert_eq!(msg.matches("simConfig").count(), 1, "{msg}");
            }
        }
    }

    /// A value the reader refuses inside a fault or a profile is named with the entry it is
    /// in and its field, in JSON and in YAML, so that a long script points at its typo.
    #[test]
    fn reader_errors_name_the_entry_and_the_field() {
        let ok = r#"{"kind": "metricsOutage", "span": {"from": "1m", "until": "2m"}}"#;
        for (fault, path) in [
            (
                r#"{"kind": "crash", "track": "canary", "at": "banana"}"#,
                "simConfig.faults[2].at: `banana` is not a duration",
            ),
            (
                r#"{"kind": "latency", "span": {"from": 0, "until": "1m"}, "factor": "x"}"#,
                "simConfig.faults[2].factor: invalid type",
            ),
            (
                r#"{"kind": "crsh", "track": "canary", "at": "1m"}"#,
                "simConfig.faults[2].kind: unknown variant `crsh`",
            ),
            (
                r#"{"kind": "metricsGap", "span": {"from": 0, "untl": "1m"}}"#,
                "simConfig.faults[2].span.untl: unknown field `untl`",
            ),
            (
                r#"{"kind": "crash", "track": "canary", "at": "1m", "extra": "5s"}"#,
                "simConfig.faults[2].extra: is not a field of a `crash` fault",
            ),
            (
                r#"{"kind": "crash", "at": "1m"}"#,
                "simConfig.faults[2].track: is missing: a `crash` fault needs it",
            ),
        ] {
            let json = format!(r#"{{"seed": 1, "faults": [{ok}, {ok}, {fault}]}}"#);
            let yaml = format!("seed: 1\nfaults:\n  - {ok}\n  - {ok}\n  - {fault}\n");
            for msg in [
                serde_json::from_str::<SimConfig>(&json)
                    .unwrap_err()
                    .to_string(),
                serde_yaml_ng::from_str::<SimConfig>(&yaml)
                    .unwrap_err()
                    .to_string(),
            ] {
                assert!(msg.contains(path), "{fault}: {msg}");
                assert_eq!(msg.matches("at line").count(), 1, "{msg}");
                assert_eq!(msg.matches("simConfig").count(), 1, "{msg}");
            }
        }
        let json = r#"{"seed": 1, "profiles": {"1.0.0": {}, "2.0.0": {"startup": "soon"}}}"#;
        let msg = serde_json::from_str::<SimConfig>(json)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("simConfig.profiles.2.0.0.startup: "), "{msg}");
    }

    /// A fault that names a dependency nobody probes or an instance its track never has
    /// would never fire: a typo must not make a scenario pass vacuously.
    #[test]
    fn faults_that_could_never_fire_are_refused() {
        let probe = r#"{"kind": "probeFailure", "probe": {"dependency": "postgress"},
                        "span": {"from": 0, "until": "1m"}}"#;
        for (faults, path) in [
            (probe, "simConfig.faults[0].probe.dependency"),
            (
                r#"{"kind": "crash", "track": "canary", "instance": "1", "at": "1m"}"#,
                "simConfig.faults[0].instance",
            ),
            (
                r#"{"kind": "crash", "track": "canary", "instance": "stable-0", "at": "1m"}"#,
                "simConfig.faults[0].instance",
            ),
            (
                r#"{"kind": "crash", "track": "canary", "instance": "canary-01", "at": "1m"}"#,
                "simConfig.faults[0].instance",
            ),
        ] {
            let json =
                format!(r#"{{"seed": 1, "dependencies": ["postgres"], "faults": [{faults}]}}"#);
            let msg = serde_json::from_str::<SimConfig>(&json)
                .unwrap_err()
                .to_string();
            assert!(msg.contains(path), "{json}: {msg}");
        }
        let json = r#"{"seed": 1, "dependencies": ["postgress"], "faults": [FAULT,
            {"kind": "crash", "track": "canary", "instance": "canary-12", "at": "1m"}]}"#;
        serde_json::from_str::<SimConfig>(&json.replace("FAULT", probe)).unwrap();
    }

    /// A version written twice would otherwise keep one of its two profiles, silently.
    #[test]
    fn a_version_written_twice_is_refused() {
        let json = r#"{"seed": 1, "profiles": {"2.0.0": {"errorRate": 0.1},
                       "1.0.0": {}, "2.0.0": {"errorRate": 0.2}}}"#;
        let yaml = "seed: 1\nprofiles:\n  2.0.0: {errorRate: 0.1}\n  1.0.0: {}\n  \"2.0.0\": {errorRate: 0.2}\n";
        for msg in [
            serde_json::from_str::<SimConfig>(json)
                .unwrap_err()
                .to_string(),
            serde_yaml_ng::from_str::<SimConfig>(yaml)
                .unwrap_err()
                .to_string(),
        ] {
            assert!(
                msg.contains("invalid simConfig.profiles.2.0.0 `2.0.0`: is written twice"),
                "{msg}"
            );
        }
        let c: SimConfig =
            serde_json::from_str(r#"{"seed": 1, "profiles": {"2.0.0": {}, "2.0.1": {}}}"#).unwrap();
        assert_eq!(c.profiles.len(), 2);
        let c: SimConfig = serde_yaml_ng::from_str("seed: 1\nprofiles: {}\n").unwrap();
        assert!(c.profiles.is_empty());
    }

    #[test]
    fn profiles_fall_back_to_the_default() {
        let v2 = semver::Version::new(2, 0, 0);
        let bad = VersionProfile::default().with_error_rate(Schedule::constant(0.2));
        let c = SimConfig::new(1).with_profile(v2.clone(), bad.clone());
        assert_eq!(c.profile_of(&v2), &bad);
        assert_eq!(
            c.profile_of(&semver::Version::new(1, 0, 0)),
            &VersionProfile::default()
        );
        let c = c.with_fault(Fault::HealthOutage {
            span: Span::new(Duration::from_secs(2), Duration::from_secs(1)),
        });
        assert!(c.validate().is_err());
    }
}
