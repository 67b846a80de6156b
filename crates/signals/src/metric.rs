//! What is measured: [`Metric`] identities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize, Serializer};

use crate::error::{Error, Result};

/// The identity of a metric. Serialized as its name: `error_rate`, `latency`, `throughput`, `cpu`,
/// `memory`, or a custom name.
///
/// Units are fixed so that every source and judge agrees: latency in milliseconds, CPU in cores
/// (1.0 = one core busy), memory in bytes; error rate and throughput are derived from request and
/// error [`Counts`](crate::Counts) over a window.
///
/// [`Metric::named`] checks a custom name; a [`Metric::Custom`] built directly does not, so every
/// boundary that takes a metric from a caller checks it with [`Metric::validate`]: the sources'
/// queries, recordings and templates, and serialization, which refuses to write a name it could
/// not read back.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub enum Metric {
    /// Share of requests that failed (5xx or connection error), from counts.
    ErrorRate,
    /// Request latency in milliseconds, as a sketch.
    Latency,
    /// Requests served, from counts (per second over the window).
    Throughput,
    /// CPU use in cores, as a gauge.
    Cpu,
    /// Resident memory in bytes, as a gauge.
    Memory,
    /// Anything else, by a Prometheus-style name (`[a-zA-Z_:][a-zA-Z0-9_:]*`), never one of the
    /// five names above. Build it with [`Metric::named`]; one built directly is refused where it
    /// is used ([`Metric::validate`]).
    Custom(String),
}

impl Metric {
    /// A metric by name; the five well-known names map to their variants.
    pub fn named(name: &str) -> Result<Self> {
        name.parse()
    }

    /// The metric's name as written in config.
    pub fn as_str(&self) -> &str {
        match self {
            Metric::ErrorRate => "error_rate",
            Metric::Latency => "latency",
            Metric::Throughput => "throughput",
            Metric::Cpu => "cpu",
            Metric::Memory => "memory",
            Metric::Custom(n) => n,
        }
    }

    /// Whether the metric may be read as request and error [`Counts`](crate::Counts): not
    /// [`Metric::Latency`] (milliseconds), [`Metric::Cpu`] (cores) nor [`Metric::Memory`]
    /// (bytes), whose readers would take a request count for their unit. The Prometheus source
    /// refuses counts queries for them. The in-memory source records whatever it is given, so
    /// tests can play a source that answers the wrong kind.
    pub fn countable(&self) -> bool {
        !matches!(self, Metric::Latency | Metric::Cpu | Metric::Memory)
    }

    /// Checks a metric built around [`Metric::named`]: a [`Metric::Custom`] whose name does not
    /// match `[a-zA-Z_:][a-zA-Z0-9_:]*`, or is one of the five well-known names (which have their
    /// own variants, so `Custom("cpu")` would be another key for the CPU metric), is an error
    /// naming `field`. The well-known variants are always valid.
    ///
    /// ```
    /// use serin_signals::Metric;
    ///
    /// assert!(Metric::named("queue_depth").unwrap().validate("metric").is_ok());
    /// let err = Metric::Custom("queue depth".into()).validate("query.metric").unwrap_err();
    /// assert!(err.to_string().contains("query.metric"));
    /// assert!(Metric::Custom("latency".into()).validate("metric").is_err());
    /// ```
    pub fn validate(&self, field: &str) -> Result<()> {
        let Metric::Custom(name) = self else {
            return Ok(());
        };
        check_custom(field, name)?;
        if WELL_KNOWN.contains(&name.as_str()) {
            return Err(Error::invalid(
                field,
                name,
                "is a well-known metric name; build it with `Metric::named`, which gives its own variant",
            ));
        }
        Ok(())
    }
}

/// The names of the well-known variants.
const WELL_KNOWN: [&str; 5] = ["error_rate", "latency", "throughput", "cpu", "memory"];

/// Checks a custom metric name against Prometheus' metric name syntax, and refuses one that
/// is a well-known name in another case or without its underscore (`errorRate`, `Latency`):
/// written in a camelCase config, it means the well-known metric, and read as a custom one it
/// would be a metric no source measures, silently without data.
fn check_custom(field: &str, name: &str) -> Result<()> {
    let mut bytes = name.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
    if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':') {
        return Err(Error::invalid(
            field,
            name,
            "a custom metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*",
        ));
    }
    let folded = |n: &str| n.replace('_', "").to_ascii_lowercase();
    if let Some(known) = WELL_KNOWN
        .iter()
        .find(|k| **k != name && folded(k) == folded(name))
    {
        return Err(Error::invalid(
            field,
            name,
            format!(
                "metric names are snake_case: write `{known}` for the well-known metric (a \
                 custom metric may not be named like one)"
            ),
        ));
    }
    Ok(())
}

impl FromStr for Metric {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "error_rate" => Metric::ErrorRate,
            "latency" => Metric::Latency,
            "throughput" => Metric::Throughput,
            "cpu" => Metric::Cpu,
            "memory" => Metric::Memory,
            other => {
                check_custom("metric", other)?;
                Metric::Custom(other.to_owned())
            }
        })
    }
}

impl TryFrom<String> for Metric {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        s.parse()
    }
}

impl From<Metric> for String {
    fn from(m: Metric) -> String {
        m.as_str().to_owned()
    }
}

/// The name; a [`Metric::Custom`] that [`Metric::validate`] refuses is an error, since it could
/// not be read back.
impl Serialize for Metric {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        self.validate("metric").map_err(serde::ser::Error::custom)?;
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in [
            "error_rate",
            "latency",
            "throughput",
            "cpu",
            "memory",
            "queue_depth",
        ] {
            let m = Metric::named(name).unwrap();
            assert_eq!(m.as_str(), name);
            let json = serde_json::to_string(&m).unwrap();
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), m);
        }
        assert_eq!(Metric::named("cpu").unwrap(), Metric::Cpu);
    }

    #[test]
    fn bad_custom_names_are_rejected() {
        for bad in ["", "9lives", "has space", "dash-ed"] {
            let msg = Metric::named(bad).unwrap_err().to_string();
            assert!(msg.contains("metric"), "{msg}");
        }
    }

    /// A well-known name written as config keys are (`errorRate`) means the well-known
    /// metric: read as a custom metric, no source would measure it.
    #[test]
    fn well_known_names_in_another_case_are_refused_with_the_right_spelling() {
        for (written, meant) in [
            ("errorRate", "error_rate"),
            ("ErrorRate", "error_rate"),
            ("ERROR_RATE", "error_rate"),
            ("errorrate", "error_rate"),
            ("Latency", "latency"),
            ("CPU", "cpu"),
        ] {
            let msg = Metric::named(written).unwrap_err().to_string();
            assert!(
                msg.contains(written) && msg.contains(&format!("write `{meant}`")),
                "{written}: {msg}"
            );
            let read = serde_json::from_str::<Metric>(&format!("\"{written}\""));
            assert!(read.is_err(), "{written} read as {read:?}");
        }
        for fine in ["error_rate_5xx", "latency_ms", "cpu_seconds", "error_rates"] {
            assert!(Metric::named(fine).is_ok(), "{fine}");
        }
    }

    /// A `Metric::Custom` built directly is checked where it is used: it could otherwise hold any
    /// string, or a second name for a well-known metric.
    #[test]
    fn custom_metrics_built_directly_are_checked_and_never_written_unreadable() {
        for (name, why) in [
            ("", "must match"),
            ("queue depth", "must match"),
            ("latency", "well-known"),
        ] {
            let metric = Metric::Custom(name.to_owned());
            let msg = metric.validate("query.metric").unwrap_err().to_string();
            assert!(
                msg.contains("query.metric") && msg.contains(why),
                "{name}: {msg}"
            );
            assert!(serde_json::to_string(&metric).is_err(), "{name}");
        }
        for metric in [Metric::Cpu, Metric::named("queue_depth").unwrap()] {
            metric.validate("metric").unwrap();
            let json = serde_json::to_string(&metric).unwrap();
            assert_eq!(serde_json::from_str::<Metric>(&json).unwrap(), metric);
        }
    }
}
