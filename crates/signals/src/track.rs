//! Who is observed: [`Track`]s (running groups of one version) and analysis [`Arm`]s.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// A running group of instances of one version of a service.
///
/// The well-known roles have their own variants; anything else is a [`Track::Named`] track whose
/// name is a DNS-1123 label (lowercase letters, digits and `-`, at most 63 characters, starting and
/// ending with a letter or digit), so the same name works as a Kubernetes label value, a process
/// name and a Prometheus label. Serialized as the plain name: `"stable"`, `"green"`, `"shadow-1"`.
///
/// [`Track::named`] checks the name; a [`Track::Named`] built directly does not, so every
/// boundary that takes a track from a caller checks it with [`Track::validate`]: the sources'
/// queries and recordings, and serialization, which refuses to write a name it could not read
/// back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum Track {
    /// The version that serves production traffic today.
    Stable,
    /// The version under evaluation in a canary release.
    Canary,
    /// The blue environment of a blue-green pair.
    Blue,
    /// The green environment of a blue-green pair.
    Green,
    /// Any other track, by name (never one of the four names above). Build it with
    /// [`Track::named`]; one built directly is refused where it is used
    /// ([`Track::validate`]).
    Named(String),
}

impl Track {
    /// A track by name: the four well-known names map to their variants; any other name must be a
    /// DNS-1123 label.
    pub fn named(name: &str) -> Result<Self> {
        name.parse()
    }

    /// The track's name as it is written in config, labels and metrics.
    pub fn as_str(&self) -> &str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
            Track::Blue => "blue",
            Track::Green => "green",
            Track::Named(n) => n,
        }
    }

    /// Checks a track built around [`Track::named`]: a [`Track::Named`] whose name is not a
    /// DNS-1123 label, or is one of the four well-known names (which have their own variants, so
    /// `Named("stable")` would be another key for the stable track), is an error naming `field`.
    /// The well-known variants are always valid.
    ///
    /// The variant stays public so that callers can match on it and build it in tests; this
    /// check, at every boundary that takes a track, is what keeps a bad name out of a PromQL
    /// label matcher or a journal.
    ///
    /// ```
    /// use serin_signals::Track;
    ///
    /// assert!(Track::named("shadow-1").unwrap().validate("track").is_ok());
    /// let err = Track::Named("Shadow 1".into()).validate("query.track").unwrap_err();
    /// assert!(err.to_string().contains("query.track"));
    /// assert!(Track::Named("stable".into()).validate("track").is_err());
    /// ```
    pub fn validate(&self, field: &str) -> Result<()> {
        let Track::Named(name) = self else {
            return Ok(());
        };
        validate_label(field, name)?;
        if matches!(name.as_str(), "stable" | "canary" | "blue" | "green") {
            return Err(Error::invalid(
                field,
                name,
                "is a well-known track name; build it with `Track::named`, which gives its own variant",
            ));
        }
        Ok(())
    }
}

/// The plain name; a [`Track::Named`] that [`Track::validate`] refuses is an error, since it could
/// not be read back.
impl Serialize for Track {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.validate("track").map_err(serde::ser::Error::custom)?;
        s.serialize_str(self.as_str())
    }
}

impl FromStr for Track {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "stable" => Track::Stable,
            "canary" => Track::Canary,
            "blue" => Track::Blue,
            "green" => Track::Green,
            other => {
                validate_label("track", other)?;
                Track::Named(other.to_owned())
            }
        })
    }
}

impl TryFrom<String> for Track {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Track> for String {
    fn from(t: Track) -> String {
        t.as_str().to_owned()
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why `value` is not a DNS-1123 label (lowercase letters, digits and `-`, 1 to 63 characters,
/// starting and ending with a letter or digit), or `None` if it is one.
///
/// Track names, service names and backend names all follow this rule so that one name works as a
/// Kubernetes label value, a process name and a Prometheus label; crates that validate such names
/// ask this function for the reason and wrap it in their own error.
///
/// ```
/// assert_eq!(serin_signals::dns_label_problem("checkout-v2"), None);
/// assert_eq!(serin_signals::dns_label_problem("Checkout"), Some("may only hold lowercase letters, digits and '-'"));
/// ```
pub fn dns_label_problem(value: &str) -> Option<&'static str> {
    if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > 63 {
        Some("must be at most 63 characters")
    } else if !value
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        Some("may only hold lowercase letters, digits and '-'")
    } else if value.starts_with('-') || value.ends_with('-') {
        Some("must start and end with a letter or digit")
    } else {
        None
    }
}

/// Checks that `value` is a DNS-1123 label; `field` names it in the error.
fn validate_label(field: &str, value: &str) -> Result<()> {
    match dns_label_problem(value) {
        Some(reason) => Err(Error::invalid(field, value, reason)),
        None => Ok(()),
    }
}

/// The role a track plays in an analysis. Judges and triggers speak of arms, never of colours: in
/// blue-green-with-canary, green is the canary arm and blue the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Arm {
    /// The reference: the version currently trusted.
    Baseline,
    /// The version being judged.
    Canary,
}

impl Arm {
    /// Both arms, baseline first.
    pub const BOTH: [Arm; 2] = [Arm::Baseline, Arm::Canary];

    /// The other arm.
    pub fn other(self) -> Arm {
        match self {
            Arm::Baseline => Arm::Canary,
            Arm::Canary => Arm::Baseline,
        }
    }
}

impl fmt::Display for Arm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Arm::Baseline => "baseline",
            Arm::Canary => "canary",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn well_known_names_round_trip() {
        for t in [Track::Stable, Track::Canary, Track::Blue, Track::Green] {
            let s = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Track>(&s).unwrap(), t);
        }
        assert_eq!(Track::named("green").unwrap(), Track::Green);
        assert_eq!(
            Track::named("shadow-1").unwrap(),
            Track::Named("shadow-1".into())
        );
    }

    #[test]
    fn bad_names_are_rejected_with_the_reason() {
        for (name, why) in [
            ("", "empty"),
            ("Blue", "lowercase"),
            ("-a", "start and end"),
            ("a_b", "lowercase"),
        ] {
            let msg = Track::named(name).unwrap_err().to_string();
            assert!(msg.contains("track") && msg.contains(why), "{name}: {msg}");
        }
        assert!(Track::named(&"a".repeat(64)).is_err());
        assert!(serde_json::from_str::<Track>("\"Not Valid\"").is_err());
    }

    /// A `Track::Named` built directly is checked where it is used: it could otherwise hold any
    /// string, or a second name for a well-known track.
    #[test]
    fn tracks_built_directly_are_checked_and_never_written_unreadable() {
        for (name, why) in [
            ("", "empty"),
            ("Not Valid", "lowercase"),
            ("a\"} or vector(1)", "lowercase"),
            ("canary", "well-known"),
        ] {
            let track = Track::Named(name.to_owned());
            let msg = track.validate("query.track").unwrap_err().to_string();
            assert!(
                msg.contains("query.track") && msg.contains(why),
                "{name}: {msg}"
            );
            assert!(serde_json::to_string(&track).is_err(), "{name}");
        }
        for track in [Track::Stable, Track::named("shadow-1").unwrap()] {
            track.validate("track").unwrap();
            let json = serde_json::to_string(&track).unwrap();
            assert_eq!(serde_json::from_str::<Track>(&json).unwrap(), track);
        }
    }

    #[test]
    fn arms_are_opposites() {
        assert_eq!(Arm::Baseline.other(), Arm::Canary);
        assert_eq!(
            serde_json::to_string(&Arm::Baseline).unwrap(),
            "\"baseline\""
        );
    }
}
