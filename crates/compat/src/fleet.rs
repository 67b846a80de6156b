//! What runs now ([`Fleet`]) and what should run next ([`Proposal`]).

use std::collections::BTreeMap;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::catalog::Format;
use crate::error::{Error, Result};
use crate::selector::parse_version;

/// The versions of one service as written: a version, a list of them, or something else,
/// kept to be named in the error (`kubelet: 1.30` is the number 1.3 to YAML, not a version).
enum Written {
    Text(String),
    List(Vec<Written>),
    Other { value: String, what: &'static str },
}

impl<'de> Deserialize<'de> for Written {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Any;
        impl<'de> serde::de::Visitor<'de> for Any {
            type Value = Written;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a version or a list of versions")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Written, E> {
                Ok(Written::Text(v.to_owned()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Written, E> {
                Ok(Written::Other {
                    value: v.to_string(),
                    what: "a number",
                })
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Written, E> {
                Ok(Written::Other {
                    value: v.to_string(),
                    what: "a number",
                })
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Written, E> {
                Ok(Written::Other {
                    value: v.to_string(),
                    what: "a number",
                })
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Written, E> {
                Ok(Written::Other {
                    value: v.to_string(),
                    what: "a boolean",
                })
            }
            fn visit_unit<E: serde::de::Error>(self) -> Result<Written, E> {
                Ok(Written::Other {
                    value: String::new(),
                    what: "empty",
                })
            }
            fn visit_none<E: serde::de::Error>(self) -> Result<Written, E> {
                self.visit_unit()
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Written, A::Error> {
                let mut list = Vec::new();
                while let Some(item) = seq.next_element()? {
                    list.push(item);
                }
                Ok(Written::List(list))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Written, A::Error> {
                use serde::de::IgnoredAny;
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Written::Other {
                    value: "{…}".into(),
                    what: "a map",
                })
            }
        }
        d.deserialize_any(Any)
    }
}

impl Written {
    /// The version it holds, or an error naming `path`, the value and why.
    fn version(self, path: &str) -> Result<Version> {
        match self {
            Written::Text(text) => parse_version(&text, path),
            Written::List(_) => Err(Error::InvalidVersion {
                path: path.to_owned(),
                value: "[…]".into(),
                reason: "a list inside a list of versions".into(),
            }),
            Written::Other { value, what } => Err(Error::InvalidVersion {
                path: path.to_owned(),
                value,
                reason: format!(
                    "it is {what}, not a version: write major.minor.patch as text, quoted where \
                     it could read as a number (`\"1.30.0\"`; YAML reads 1.30 as the number 1.3)"
                ),
            }),
        }
    }
}

/// A fleet as written: each service once.
struct WrittenFleet(BTreeMap<String, Written>);

impl<'de> Deserialize<'de> for WrittenFleet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::unique::unique_map(d, "fleet").map(WrittenFleet)
    }
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
    ///
    /// ```
    /// use serin_compat::Fleet;
    /// let err = Fleet::from_yaml_str("kubelet: 1.30").unwrap_err().to_string();
    /// assert!(err.starts_with("fleet.kubelet: invalid version \"1.3\": it is a number"), "{err}");
    /// ```
    pub fn from_yaml_str(text: &str) -> Result<Self> {
        let raw: WrittenFleet = crate::catalog::from_str(text, Format::Yaml)?;
        Self::from_raw(raw, "fleet")
    }

    fn from_raw(raw: WrittenFleet, root: &str) -> Result<Self> {
        let mut fleet = Self::new();
        for (service, versions) in raw.0 {
            let parsed = match versions {
                Written::List(list) => list
                    .into_iter()
                    .enumerate()
                    .map(|(i, w)| w.version(&format!("{root}.{service}[{i}]")))
                    .collect::<Result<Vec<_>>>()?,
                one => vec![one.version(&format!("{root}.{service}"))?],
            };
            fleet.set(service, parsed);
        }
        Ok(fleet)
    }
}

impl<'de> Deserialize<'de> for Fleet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = WrittenFleet::deserialize(d)?;
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
        let raw: BTreeMap<String, String> = crate::unique::unique_map(d, "proposal")?;
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
