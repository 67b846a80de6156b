//! Serde for [`Duration`] fields: human strings (`30s`, `5m`, `1h30m`, `250ms`) or integer
//! milliseconds (`30000`, or `"30000"` quoted, as YAML or an environment variable may carry
//! it) are read; the human string is written.
//!
//! The same convention as the rest of Serin; kept private here because this crate depends on no
//! other Serin crate.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Writes `d` as a human string (`1m 30s`).
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&humantime::format_duration(*d))
}

/// Reads a human string or integer milliseconds.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor)
}

/// Renders `d` for tables and messages (`30s`, `1m 30s`).
pub(crate) fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
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
        if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
            Ok(Duration::from_millis(v as u64))
        } else {
            Err(E::custom(format!(
                "duration {v} ms must be a whole, non-negative number of milliseconds"
            )))
        }
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let t = v.trim();
        if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
            return t
                .parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| E::custom(format!("`{v}` milliseconds is too large a duration")));
        }
        humantime::parse_duration(t).map_err(|e| {
            E::custom(format!(
                "`{v}` is not a duration ({e}); write e.g. `30s`, `5m`, `1h30m` or milliseconds"
            ))
        })
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
    }

    #[test]
    fn reads_strings_and_millis_and_writes_strings() {
        for (json, want) in [
            (r#"{"d":"30s"}"#, Duration::from_secs(30)),
            (r#"{"d":"1h30m"}"#, Duration::from_secs(5400)),
            (r#"{"d":30000}"#, Duration::from_secs(30)),
            (r#"{"d":"250ms"}"#, Duration::from_millis(250)),
            (r#"{"d":"30000"}"#, Duration::from_secs(30)),
            (r#"{"d":" 1500 "}"#, Duration::from_millis(1500)),
        ] {
            let t: T = serde_json::from_str(json).unwrap();
            assert_eq!(t.d, want, "{json}");
        }
        let t = T {
            d: Duration::from_secs(90),
        };
        assert_eq!(serde_json::to_string(&t).unwrap(), r#"{"d":"1m 30s"}"#);
    }

    #[test]
    fn rejects_bad_durations_naming_the_value() {
        for (bad, needle) in [
            (r#"{"d":"soon"}"#, "soon"),
            (r#"{"d":-5}"#, "negative"),
            (r#"{"d":1.5}"#, "whole"),
            (r#"{"d":"99999999999999999999"}"#, "too large"),
        ] {
            let msg = serde_json::from_str::<T>(bad).unwrap_err().to_string();
            assert!(msg.contains(needle), "{bad}: {msg}");
        }
    }
}
