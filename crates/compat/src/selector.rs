//! Which versions a rule or an edge talks about.
//!
//! A [`Selector`] is written as a plain version (`1.4.0`: exactly that release), a Cargo
//! requirement (`^1.4`, `>=1.4.0, <2.0.0`, `1.2.*`, `7`: caret semantics of the `semver`
//! crate) or `*` (any release). A full version means "exactly" because that is what people mean
//! when they write one down in a rule; Cargo would read it as `^1.4.0`.
//!
//! Pre-releases follow the `semver` crate: a requirement matches a pre-release only if one of its
//! comparators names the same `major.minor.patch` with a pre-release, so `>=1.2.3, <1.8.0` does
//! not match `1.2.3-alpha.1`.

use std::fmt;
use std::str::FromStr;

use semver::{BuildMetadata, Comparator, Op, Version, VersionReq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A set of versions of one service.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Selector {
    /// Every release (`*`).
    #[default]
    Any,
    /// Exactly one release (`1.4.0`). Build metadata does not set two versions apart (SemVer
    /// §10), so `1.4.0` selects a release listed as `1.4.0+linux`, as `=1.4.0` does.
    Exact(Version),
    /// A Cargo requirement (`^1.4`, `>=1.4.0, <2.0.0`).
    Range(VersionReq),
}

impl Selector {
    /// Parses a selector; `path` names the input in the error.
    ///
    /// ```
    /// use serin_compat::Selector;
    /// let s = Selector::parse("^1.4", "rules[0].requires.req").unwrap();
    /// assert!(s.matches(&"1.9.2".parse().unwrap()));
    /// assert!(Selector::parse("1.x.y.z", "here").is_err());
    /// ```
    pub fn parse(text: &str, path: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed == "*" {
            return Ok(Self::Any);
        }
        if let Ok(version) = Version::parse(trimmed) {
            return Ok(Self::Exact(version));
        }
        VersionReq::parse(trimmed)
            .map(Self::Range)
            .map_err(|e| Error::InvalidVersion {
                path: path.to_owned(),
                value: text.to_owned(),
                reason: format!("neither a version nor a requirement ({e})"),
            })
    }

    /// Whether `version` is in the set.
    pub fn matches(&self, version: &Version) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(v) => v.cmp_precedence(version).is_eq(),
            Self::Range(req) => req.matches(version),
        }
    }

    /// Whether both select the same releases, as far as their text tells: written alike, or
    /// naming one release however written (`1.4.0`, `=1.4.0`, `1.4.0+linux`).
    pub(crate) fn same_releases(&self, other: &Self) -> bool {
        self == other
            || self
                .one_release()
                .is_some_and(|v| other.one_release() == Some(v))
    }

    /// The one release this selects, without build metadata, if it selects exactly one.
    fn one_release(&self) -> Option<Version> {
        match self {
            Self::Exact(v) => Some(Version {
                build: BuildMetadata::EMPTY,
                ..v.clone()
            }),
            Self::Range(req) => match req.comparators.as_slice() {
                [
                    Comparator {
                        op: Op::Exact,
                        major,
                        minor: Some(minor),
                        patch: Some(patch),
                        pre,
                    },
                ] => Some(Version {
                    major: *major,
                    minor: *minor,
                    patch: *patch,
                    pre: pre.clone(),
                    build: BuildMetadata::EMPTY,
                }),
                _ => None,
            },
            Self::Any => None,
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(v) => write!(f, "={v}"),
            Self::Range(req) => write!(f, "{req}"),
        }
    }
}

impl FromStr for Selector {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::parse(s, "selector")
    }
}

impl Serialize for Selector {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Exact(v) => serializer.serialize_str(&v.to_string()),
            other => serializer.serialize_str(&other.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for Selector {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text, "selector").map_err(|e| serde::de::Error::custom(unplaced(e)))
    }
}

/// The message of an error raised while deserializing one value, without the placeholder path
/// it was made with: the reader puts the value's own path (`rules[0].requires.versions`) in
/// front, as it knows where the value stands and the value does not.
fn unplaced(error: Error) -> String {
    match error {
        Error::InvalidVersion { value, reason, .. } => {
            format!("invalid version {value:?}: {reason}")
        }
        other => other.to_string(),
    }
}

/// Parses a version, naming `path` and the text in the error.
///
/// ```
/// let v = serin_compat::parse_version("1.29.3", "fleet.kubelet").unwrap();
/// assert_eq!(v.minor, 29);
/// let err = serin_compat::parse_version("1.29", "fleet.kubelet").unwrap_err();
/// assert!(err.to_string().contains("fleet.kubelet"));
/// ```
pub fn parse_version(text: &str, path: &str) -> Result<Version> {
    Version::parse(text.trim()).map_err(|e| Error::InvalidVersion {
        path: path.to_owned(),
        value: text.to_owned(),
        reason: e.to_string(),
    })
}

/// Serde for `Version` fields whose error quotes the rejected text.
pub(crate) mod version_serde {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &Version, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Version, D::Error> {
        let text = String::deserialize(d)?;
        parse_version(&text, "version").map_err(|e| serde::de::Error::custom(unplaced(e)))
    }
}

/// Serde for `VersionReq` fields whose error quotes the rejected text.
pub(crate) mod req_serde {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(v: &VersionReq, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<VersionReq, D::Error> {
        let text = String::deserialize(d)?;
        VersionReq::parse(text.trim()).map_err(|e| {
            serde::de::Error::custom(format!("invalid version requirement {text:?}: {e}"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn plain_version_is_exact_not_caret() {
        let s = Selector::parse("1.4.0", "x").unwrap();
        assert!(s.matches(&v("1.4.0")));
        assert!(!s.matches(&v("1.4.1")));
    }

    #[test]
    fn an_exact_version_ignores_build_metadata_as_a_requirement_does() {
        for (written, release) in [("1.4.0", "1.4.0+linux"), ("1.4.0+b1", "1.4.0")] {
            let s = Selector::parse(written, "x").unwrap();
            assert!(s.matches(&v(release)), "{written} should select {release}");
        }
        let s = Selector::parse("1.4.0", "x").unwrap();
        assert!(!s.matches(&v("1.4.0-rc.1+linux")));
        assert!(!s.matches(&v("1.4.1+linux")));
    }

    #[test]
    fn requirement_uses_caret_semantics() {
        let s = Selector::parse("^0.2", "x").unwrap();
        assert!(s.matches(&v("0.2.9")));
        assert!(!s.matches(&v("0.3.0")));
        let s = Selector::parse("7", "x").unwrap();
        assert!(s.matches(&v("7.17.3")));
        assert!(!s.matches(&v("8.0.0")));
    }

    #[test]
    fn prerelease_needs_same_triple() {
        let s = Selector::parse(">=1.2.3, <1.8.0", "x").unwrap();
        assert!(!s.matches(&v("1.2.3-alpha.1")));
        let s = Selector::parse(">=1.2.3-alpha.0", "x").unwrap();
        assert!(s.matches(&v("1.2.3-alpha.1")));
    }

    #[test]
    fn any_and_errors() {
        assert_eq!(Selector::parse(" * ", "x").unwrap(), Selector::Any);
        let err = Selector::parse(">=banana", "rules[2].deny.a.versions").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("rules[2].deny.a.versions") && text.contains("banana"));
    }

    #[test]
    fn display_round_trips() {
        for text in ["*", "1.2.3", ">=1.4.0, <2.0.0", "^7"] {
            let s = Selector::parse(text, "x").unwrap();
            let json = serde_json::to_string(&s).unwrap();
            let back: Selector = serde_json::from_str(&json).unwrap();
            assert_eq!(s, back);
        }
    }
}
