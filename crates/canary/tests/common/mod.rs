//! Shared helpers for the behaviour tests: a seeded generator and observation builders.

use serin_signals::{
    Counts, LatencySketch, Measurement, Metric, Observation, Timestamp, Track, Window,
};

/// SplitMix64: small, seeded, reproducible.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Poisson by inversion (fine for the small means used here).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        let l = (-mean).exp();
        let (mut k, mut p) = (0u64, 1.0);
        loop {
            p *= self.uniform();
            if p <= l {
                return k;
            }
            k += 1;
        }
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The one-second window starting at second `s`.
pub fn second(s: u64) -> Window {
    Window::new(
        Timestamp::from_millis(s * 1000),
        Timestamp::from_millis((s + 1) * 1000),
    )
    .unwrap()
}

pub fn counts(metric: Metric, track: Track, w: Window, requests: u64, errors: u64) -> Observation {
    Observation::new(
        metric,
        track,
        w,
        Measurement::Counts(Counts::new(requests, errors.min(requests)).unwrap()),
    )
}

pub fn latency(track: Track, w: Window, values: &[f64]) -> Observation {
    let mut s = LatencySketch::new();
    for v in values {
        s.add(*v).unwrap();
    }
    Observation::new(Metric::Latency, track, w, Measurement::Latency(s))
}

pub fn no_data(metric: Metric, track: Track, w: Window) -> Observation {
    Observation::new(metric, track, w, Measurement::NoData)
}

/// Flagger's built-ins: `request-success-rate` ≥ 99% and `request-duration` p99 ≤ 500 ms.
pub fn flagger_builtins() -> Vec<serin_canary::threshold::FlaggerMetric> {
    use serin_canary::kayenta::Quantity;
    use serin_canary::threshold::{FlaggerMetric, Range};
    vec![
        FlaggerMetric::new(
            Metric::ErrorRate,
            Quantity::SuccessRatePercent,
            Range::at_least(99.0),
        ),
        FlaggerMetric::new(
            Metric::Latency,
            Quantity::LatencyQuantile(0.99),
            Range::at_most(500.0),
        ),
    ]
}
