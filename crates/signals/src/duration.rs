//! Serde for [`Duration`] fields in config: human strings (`30s`, `5m`, `1h30m`, `250ms`) or
//! integer milliseconds (`30000`, or `"30000"` quoted) are accepted; the human string is
//! written.
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct Step {
//!     #[serde(with = "serin_signals::duration")]
//!     interval: Duration,
//! }
//!
//! let a: Step = serde_json::from_str(r#"{"interval":"1m30s"}"#).unwrap();
//! let b: Step = serde_json::from_str(r#"{"interval":90000}"#).unwrap();
//! assert_eq!(a.interval, b.interval);
//! assert_eq!(serde_json::to_string(&a).unwrap(), r#"{"interval":"1m 30s"}"#);
//! ```

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// `d` as config writes it (`1m 30s`, `0s`), for messages that quote a duration back.
pub fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}

/// Writes `d` as a human string (`1m 30s`).
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Reads a human string or integer milliseconds.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Parses a human duration string (`30s`, `5m`, `1h30m`, `250ms`), or a string of digits as
/// milliseconds (`"30000"`, as a quoted YAML value or an environment variable carries the
/// brief's integer milliseconds), naming the value on error.
pub fn parse(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        return t
            .parse::<u64>()
            .map(Duration::from_millis)
            .map_err(|_| format!("`{s}` milliseconds is too large a duration"));
    }
    humantime::parse_duration(t).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write e.g. `30s`, `5m`, `1h30m` or milliseconds")
    })
}

struct DurationVisitor;

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\", \"5m\", \"1h30m\", or integer milliseconds")
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_millis(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_millis)
            .map_err(|_| E::custom(format!("duration {v} ms is negative")))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        // `u64::MAX as f64` is 2⁶⁴, one past the largest: below it, every whole float fits.
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < u64::MAX as f64 {
            Ok(Duration::from_millis(v as u64))
        } else {
            Err(E::custom(format!(
                "duration {v} ms must be a whole, non-negative number of milliseconds"
            )))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }
}

/// The same for `Option<Duration>` fields (use with `#[serde(default)]`).
pub mod option {
    use super::*;

    /// Writes `Some(d)` as a human string and `None` as null.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    /// Reads null, a human string or integer milliseconds.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        struct OptVisitor;
        impl<'de> Visitor<'de> for OptVisitor {
            type Value = Option<Duration>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("null or a duration")
            }
            fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Ok(None)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
                super::deserialize(d).map(Some)
            }
        }
        d.deserialize_option(OptVisitor)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use std::time::Duration;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct T {
        #[serde(with = "super")]
        d: Duration,
        #[serde(default, with = "super::option")]
        o: Option<Duration>,
    }

    #[test]
    fn accepts_strings_and_millis() {
        for (json, want) in [
            (r#"{"d":"30s"}"#, Duration::from_secs(30)),
            (r#"{"d":"1h30m"}"#, Duration::from_secs(5400)),
            (r#"{"d":30000}"#, Duration::from_secs(30)),
            (r#"{"d":"250ms"}"#, Duration::from_millis(250)),
        ] {
            let t: T = serde_json::from_str(json).unwrap();
            assert_eq!(t.d, want, "{json}");
            assert_eq!(t.o, None);
        }
        let t: T = serde_json::from_str(r#"{"d":"5m","o":"2s"}"#).unwrap();
        assert_eq!(t.o, Some(Duration::from_secs(2)));
        let back: T = serde_json::from_str(&serde_json::to_string(&t).unwrap()).unwrap();
        assert_eq!(back, t);
    }

    /// Quoted, the brief's integer milliseconds are still milliseconds (a bare number without
    /// a unit is otherwise no human duration at all).
    #[test]
    fn digits_in_a_string_are_milliseconds() {
        for (json, want) in [
            (r#"{"d":"30000"}"#, Duration::from_secs(30)),
            (r#"{"d":" 250 "}"#, Duration::from_millis(250)),
            (r#"{"d":"0"}"#, Duration::ZERO),
        ] {
            let t: T = serde_json::from_str(json).unwrap();
            assert_eq!(t.d, want, "{json}");
        }
        let t: T = serde_json::from_str(r#"{"d":"5s","o":"1500"}"#).unwrap();
        assert_eq!(t.o, Some(Duration::from_millis(1_500)));
        let msg = serde_json::from_str::<T>(r#"{"d":"99999999999999999999"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("99999999999999999999") && msg.contains("too large"),
            "{msg}"
        );
    }

    #[test]
    fn rejects_bad_durations_naming_the_value() {
        for bad in [r#"{"d":"soon"}"#, r#"{"d":-5}"#, r#"{"d":1.5}"#] {
            let msg = serde_json::from_str::<T>(bad).unwrap_err().to_string();
            assert!(
                msg.contains("duration") || msg.contains("soon"),
                "{bad}: {msg}"
            );
        }
    }

    /// Milliseconds past `u64::MAX` are refused whether written as a number or a string.
    #[test]
    fn milliseconds_past_the_largest_are_refused_in_either_form() {
        let quoted = serde_json::from_str::<T>(r#"{"d":"18446744073709551616"}"#);
        assert!(quoted.is_err(), "{quoted:?}");
        let bare = serde_json::from_str::<T>(r#"{"d":18446744073709551616}"#);
        assert!(bare.is_err(), "{bare:?}");
    }
}
