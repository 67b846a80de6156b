//! What runs now ([`Fleet`]) and what should run next ([`Proposal`]).

use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::catalog::Format;
use crate::error::Result;
use crate::selector::parse_version;

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The versions running per service. Usually one; several while a rollout is under way (or
/// for an HA control plane mid-upgrade). Written as `service: 1.2.0` or `service: [1.2.0, 1.3.0]`.
///
/// ```
/// use serin_compat::Fleet;
/// let fleet = Fleet::from_yaml_str("api: 1.2.0\nkube-apiserver: [1.29.4, 1.30.1]\n").unwrap();
/// assert_eq!(fleet.running("kube-apiserver").len(), 2);
/// assert!(Fleet::from_yaml_str("api: one").unwrap_err().to_string().contains("api"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Fleet {
    running: BTreeMap<String, Vec<Version>>,
}

impl Fleet {
    /// An empty fleet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a running version of a service.
    #[must_use]
    pub fn with(mut self, service: impl Into<String>, version: Version) -> Self {
        self.insert(service, version);
        self
    }

    /// Adds a running version of a service.
    pub fn insert(&mut self, service: impl Into<String>, version: Version) {
        let list = self.running.entry(service.into()).or_default();
        if !list.contains(&version) {
            list.push(version);
            list.sort();
        }
    }

    /// Replaces the running versions of a service.
    pub fn set(&mut self, service: impl Into<String>, versions: Vec<Version>) {
        let mut versions = versions;
        versions.sort();
        versions.dedup();
        self.running.insert(service.into(), versions);
    }

    /// The versions running for a service (empty if it is not deployed).
    pub fn running(&self, service: &str) -> &[Version] {
        self.running.get(service).map(Vec::as_slice).unwrap_or(&[])
    }

    /// Every deployed service and its versions.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[Version])> {
        self.running.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Parses the YAML form.
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        let raw: BTreeMap<String, OneOrMany> = crate::catalog::from_str(text, Format::Yaml)?;
        Self::from_raw(raw, "fleet")
    }

    fn from_raw(raw: BTreeMap<String, OneOrMany>, root: &str) -> Result<Self> {
        let mut fleet = Self::new();
        for (service, versions) in raw {
            let list = match versions {
                OneOrMany::One(v) => vec![v],
                OneOrMany::Many(v) => v,
            };
            let mut parsed = Vec::with_capacity(list.len());
            for (i, text) in list.iter().enumerate() {
                parsed.push(parse_version(text, &format!("{root}.{service}[{i}]"))?);
            }
            fleet.set(service, parsed);
        }
        Ok(fleet)
    }
}

impl<'de> Deserialize<'de> for Fleet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = BTreeMap::<String, OneOrMany>::deserialize(d)?;
        Self::from_raw(raw, "fleet").map_err(serde::de::Error::custom)
    }
}

/// The target version per service to change.
///
/// ```
/// use serin_compat::Proposal;
/// let p = Proposal::new().with("api", "2.0.0".parse().unwrap());
/// assert_eq!(p.target("api").unwrap().major, 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Proposal {
    #[serde(with = "targets_serde")]
    targets: BTreeMap<String, Version>,
}

mod targets_serde {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(
        map: &BTreeMap<String, Version>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let strings: BTreeMap<&String, String> =
            map.iter().map(|(k, v)| (k, v.to_string())).collect();
        strings.serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, Version>, D::Error> {
        let raw = BTreeMap::<String, String>::deserialize(d)?;
        raw.into_iter()
            .map(|(k, v)| {
                parse_version(&v, &format!("proposal.{k}"))
                    .map(|parsed| (k, parsed))
                    .map_err(serde::de::Error::custom)
            })
            .collect()
    }
}

impl Proposal {
    /// No changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a target.
    #[must_use]
    pub fn with(mut self, service: impl Into<String>, target: Version) -> Self {
        self.targets.insert(service.into(), target);
        self
    }

    /// The target of a service, if it changes.
    pub fn target(&self, service: &str) -> Option<&Version> {
        self.targets.get(service)
    }

    /// Every change.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Version)> {
        self.targets.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of services changing.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether nothing changes.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fleet_sorts_and_dedups() {
        let mut f = Fleet::new();
        f.set(
            "a",
            vec![
                Version::new(1, 1, 0),
                Version::new(1, 0, 0),
                Version::new(1, 1, 0),
            ],
        );
        assert_eq!(
            f.running("a"),
            &[Version::new(1, 0, 0), Version::new(1, 1, 0)]
        );
        assert!(f.running("b").is_empty());
    }

    #[test]
    fn proposal_json_round_trip_and_errors() {
        let p: Proposal = serde_json::from_str(r#"{"api":"2.0.0"}"#).unwrap();
        assert_eq!(serde_json::to_string(&p).unwrap(), r#"{"api":"2.0.0"}"#);
        let err = serde_json::from_str::<Proposal>(r#"{"api":"2.x"}"#).unwrap_err();
        assert!(err.to_string().contains("proposal.api"), "{err}");
    }
}
