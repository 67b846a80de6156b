//! What both arms looked like over each observation window, kept in the journal beside the
//! decisions so a report can show the data the decisions were made on (weight, error rate and
//! latency per arm over time) without asking the metrics source again.

use serde::{Deserialize, Serialize};
use serin_signals::{Arm, Measurement, Metric, Observation, Window};

/// One arm over one window: a compact summary, not the full observation (a latency sketch can
/// hold thousands of bins; the journal keeps only the quantiles a chart draws).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArmSample {
    /// Which side of the comparison: the old version is the baseline, the new one the canary.
    pub arm: Arm,
    /// The version this arm runs.
    pub version: String,
    /// The track it runs on.
    pub track: String,
    /// Requests seen in the window (`None`: the source had no data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    /// Errors (5xx and connection errors) among them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<u64>,
    /// Median latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    /// 99th percentile latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

impl ArmSample {
    /// An arm with nothing measured yet.
    pub fn new(arm: Arm, version: impl Into<String>, track: impl Into<String>) -> Self {
        Self {
            arm,
            version: version.into(),
            track: track.into(),
            requests: None,
            errors: None,
            p50_ms: None,
            p99_ms: None,
        }
    }

    /// Errors per request, if any request was seen.
    pub fn error_rate(&self) -> Option<f64> {
        match (self.requests, self.errors) {
            (Some(r), Some(e)) if r > 0 => Some(e as f64 / r as f64),
            _ => None,
        }
    }

    /// Takes what a chart needs from `obs` (counts from the error-rate query, quantiles from
    /// the latency query); other metrics and no data leave the sample as it is.
    pub fn absorb(&mut self, obs: &Observation) {
        match (&obs.metric, &obs.measurement) {
            (Metric::ErrorRate, Measurement::Counts(c)) => {
                self.requests = Some(c.requests());
                self.errors = Some(c.errors());
            }
            (Metric::Latency, Measurement::Latency(s)) => {
                self.p50_ms = s.quantile(0.5);
                self.p99_ms = s.quantile(0.99);
            }
            _ => {}
        }
    }
}

/// Both arms over one observation window, with the new version's share of traffic then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Sample {
    /// The window observed.
    pub window: Window,
    /// The new version's share of traffic during the window, in percent.
    pub weight_percent: f64,
    /// The baseline arm (absent on a first install) and the canary arm.
    pub arms: Vec<ArmSample>,
}

impl Sample {
    /// The sample of `arm`, if it was observed.
    pub fn arm(&self, arm: Arm) -> Option<&ArmSample> {
        self.arms.iter().find(|a| a.arm == arm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serin_signals::{Counts, LatencySketch, Timestamp, Track};

    fn window() -> Window {
        Window::new(Timestamp::from_millis(0), Timestamp::from_millis(10_000)).expect("window")
    }

    #[test]
    fn an_arm_takes_counts_and_quantiles_and_ignores_no_data() {
        let mut a = ArmSample::new(Arm::Canary, "1.2.0", "canary");
        assert_eq!(a.error_rate(), None);
        let counts = Counts::new(200, 5).expect("counts");
        a.absorb(&Observation::new(
            Metric::ErrorRate,
            Track::Canary,
            window(),
            Measurement::Counts(counts),
        ));
        let mut sketch = LatencySketch::new();
        for ms in 1..=100 {
            sketch.add(f64::from(ms)).expect("finite");
        }
        a.absorb(&Observation::new(
            Metric::Latency,
            Track::Canary,
            window(),
            Measurement::Latency(sketch),
        ));
        a.absorb(&Observation::new(
            Metric::Latency,
            Track::Canary,
            window(),
            Measurement::NoData,
        ));
        assert_eq!(a.error_rate(), Some(0.025));
        let p99 = a.p99_ms.expect("p99");
        assert!((p99 - 99.0).abs() / 99.0 < 0.02, "{p99}");
        let p50 = a.p50_ms.expect("p50");
        assert!((p50 - 50.0).abs() / 50.0 < 0.02, "{p50}");
        // Short decimals, so the JSON round trip below is exact.
        a.p50_ms = Some(50.5);
        a.p99_ms = Some(99.25);
        let s = Sample {
            window: window(),
            weight_percent: 10.0,
            arms: vec![a.clone()],
        };
        assert_eq!(s.arm(Arm::Canary), Some(&a));
        assert_eq!(s.arm(Arm::Baseline), None);
        let json = serde_json::to_string(&s).expect("json");
        assert_eq!(serde_json::from_str::<Sample>(&json).expect("back"), s);
    }
}
