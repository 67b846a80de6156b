//! What is measured: [`Metric`] identities.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The identity of a metric. Serialized as its name: `error_rate`, `latency`, `throughput`, `cpu`,
/// `memory`, or a custom name.
///
/// Units are fixed so that every source and judge agrees: latency in milliseconds, CPU in cores
/// (1.0 = one core busy), memory in bytes; error rate and throughput are derived from request and
/// error [`Counts`](crate::Counts) over a window.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
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
    /// five names above.
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
                let mut bytes = other.bytes();
                let first_ok = bytes
                    .next()
                    .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':');
                if !first_ok || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
                {
                    return Err(Error::invalid(
                        "metric",
                        other,
                        "a custom metric name must match [a-zA-Z_:][a-zA-Z0-9_:]*",
                    ));
                }
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
}
