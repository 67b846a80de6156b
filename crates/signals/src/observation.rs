//! What a source reports: [`Observation`]s of one metric of one track over a window.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::metric::Metric;
use crate::sketch::LatencySketch;
use crate::time::Window;
use crate::track::Track;

/// Requests and failed requests over a window. `errors <= requests` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "CountsRepr", into = "CountsRepr")]
pub struct Counts {
    requests: u64,
    errors: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CountsRepr {
    requests: u64,
    errors: u64,
}

impl TryFrom<CountsRepr> for Counts {
    type Error = Error;
    fn try_from(r: CountsRepr) -> Result<Self> {
        Counts::new(r.requests, r.errors)
    }
}

impl From<Counts> for CountsRepr {
    fn from(c: Counts) -> Self {
        CountsRepr {
            requests: c.requests,
            errors: c.errors,
        }
    }
}

impl Counts {
    /// `requests` requests of which `errors` failed; more errors than requests is an error.
    pub fn new(requests: u64, errors: u64) -> Result<Self> {
        if errors > requests {
            return Err(Error::invalid(
                "counts.errors",
                errors,
                format!("exceeds counts.requests ({requests})"),
            ));
        }
        Ok(Counts { requests, errors })
    }

    /// Requests over the window.
    pub fn requests(&self) -> u64 {
        self.requests
    }

    /// Failed requests over the window.
    pub fn errors(&self) -> u64 {
        self.errors
    }

    /// Successful requests over the window.
    pub fn successes(&self) -> u64 {
        self.requests - self.errors
    }

    /// `errors / requests`, or `None` when there were no requests (no data, never 0%).
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }

    /// The sum of two counts (saturating).
    pub fn saturating_add(self, other: Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_add(other.requests),
            errors: self
                .errors
                .saturating_add(other.errors)
                .min(self.requests.saturating_add(other.requests)),
        }
    }
}

/// A finite gauge reading (CPU cores, memory bytes, or a custom metric's value).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Gauge(f64);

impl Gauge {
    /// A gauge reading; NaN and infinities are rejected (a source reports those as no data).
    pub fn new(value: f64) -> Result<Self> {
        if !value.is_finite() {
            return Err(Error::invalid("gauge", value, "must be a finite number"));
        }
        Ok(Gauge(value))
    }

    /// The reading.
    pub fn value(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Gauge {
    type Error = Error;
    fn try_from(v: f64) -> Result<Self> {
        Gauge::new(v)
    }
}

impl From<Gauge> for f64 {
    fn from(g: Gauge) -> f64 {
        g.0
    }
}

/// The value of an observation. [`Measurement::NoData`] is a first-class answer: an empty query
/// result, NaN, or a window with nothing in it is *no data*, never zero, so no consumer can mistake
/// missing evidence for a healthy reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Measurement {
    /// Request and error counts (error rate, throughput).
    Counts(Counts),
    /// A latency sketch in milliseconds.
    Latency(LatencySketch),
    /// A point reading (CPU, memory, custom).
    Gauge(Gauge),
    /// The source had nothing for this metric, track and window.
    NoData,
}

impl Measurement {
    /// Whether this is [`Measurement::NoData`].
    pub fn is_no_data(&self) -> bool {
        matches!(self, Measurement::NoData)
    }

    /// Whether this holds nothing to weigh: [`Measurement::NoData`], counts of no requests, or
    /// a sketch of no values. Sources report counts of no requests as they are, because they are
    /// a reading of throughput (traffic fell to zero), while they say nothing of an error rate;
    /// a sketch of no values they report as no data. A consumer that must not take an empty
    /// window for evidence checks this rather than [`is_no_data`](Self::is_no_data).
    pub fn is_empty(&self) -> bool {
        match self {
            Measurement::Counts(c) => c.requests() == 0,
            Measurement::Latency(s) => s.count() == 0,
            Measurement::Gauge(_) => false,
            Measurement::NoData => true,
        }
    }
}

/// One metric of one track over one window, as a source reported it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Observation {
    /// What was measured.
    pub metric: Metric,
    /// Which track it was measured on.
    pub track: Track,
    /// Over which window.
    pub window: Window,
    /// The value, or no data.
    pub measurement: Measurement,
}

impl Observation {
    /// An observation of `metric` on `track` over `window`.
    pub fn new(metric: Metric, track: Track, window: Window, measurement: Measurement) -> Self {
        Observation {
            metric,
            track,
            window,
            measurement,
        }
    }

    /// The error rate, if this observation holds counts with at least one request.
    pub fn error_rate(&self) -> Option<f64> {
        match &self.measurement {
            Measurement::Counts(c) => c.error_rate(),
            _ => None,
        }
    }

    /// Requests per second over the window, if this observation holds counts and the window is not
    /// empty.
    pub fn throughput(&self) -> Option<f64> {
        let secs = self.window.length().as_secs_f64();
        match &self.measurement {
            Measurement::Counts(c) if secs > 0.0 => Some(c.requests() as f64 / secs),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn counts_reject_more_errors_than_requests() {
        let msg = Counts::new(3, 4).unwrap_err().to_string();
        assert!(
            msg.contains("counts.errors") && msg.contains('4') && msg.contains('3'),
            "{msg}"
        );
        assert!(serde_json::from_str::<Counts>(r#"{"requests":1,"errors":2}"#).is_err());
        assert!(serde_json::from_str::<Counts>(r#"{"requests":1,"errors":0,"x":1}"#).is_err());
    }

    #[test]
    fn empty_counts_have_no_error_rate() {
        assert_eq!(Counts::default().error_rate(), None);
        assert_eq!(Counts::new(200, 1).unwrap().error_rate(), Some(0.005));
    }

    #[test]
    fn gauges_reject_non_finite_values() {
        assert!(Gauge::new(f64::NAN).is_err());
        assert!(serde_json::from_str::<Gauge>("1e400").is_err());
        assert_eq!(Gauge::new(0.5).unwrap().value(), 0.5);
    }

    #[test]
    fn observation_round_trips_and_derives_rates() {
        let w = Window::new(Timestamp::from_millis(0), Timestamp::from_millis(10_000)).unwrap();
        let o = Observation::new(
            Metric::ErrorRate,
            Track::Canary,
            w,
            Measurement::Counts(Counts::new(1_000, 5).unwrap()),
        );
        assert_eq!(o.throughput(), Some(100.0));
        assert_eq!(o.error_rate(), Some(0.005));
        let back: Observation = serde_json::from_str(&serde_json::to_string(&o).unwrap()).unwrap();
        assert_eq!(back, o);
        let none = Observation::new(Metric::Latency, Track::Stable, w, Measurement::NoData);
        assert!(none.measurement.is_no_data() && none.error_rate().is_none());
        // Empty counts and sketches are data to no consumer, though not `NoData` by name.
        for empty in [
            Measurement::Counts(Counts::new(0, 0).unwrap()),
            Measurement::Latency(crate::LatencySketch::default()),
            Measurement::NoData,
        ] {
            assert!(empty.is_empty(), "{empty:?}");
        }
        assert!(!o.measurement.is_empty());
        assert!(!Measurement::Gauge(Gauge::new(0.0).unwrap()).is_empty());
    }
}
