//! [`LatencySketch`]: a mergeable quantile sketch of latencies with a stated relative-error bound.

use serde::{Deserialize, Serialize};
use sketches_ddsketch::{Config, DDSketch};

use crate::error::{Error, Result};

/// A DDSketch of latencies in milliseconds.
///
/// Every quantile it answers is within **1% relative error** of the true quantile of the values
/// added (DDSketch's guarantee for `alpha = 0.01`), whatever the distribution, as long as the
/// sketch has not collapsed its lowest bins: with 2,048 bins that covers more than eight orders of
/// magnitude (for example 1 µs to 100 s), which latencies never exceed. Sketches merge exactly, so
/// per-instance or per-interval sketches add up to the sketch of the whole. Memory stays bounded
/// (at most 2,048 bins, about 16 KiB) however many values are added.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "SketchRepr", into = "SketchRepr")]
pub struct LatencySketch {
    inner: DDSketch,
}

/// The serialized form: an empty sketch is `null`, because DDSketch keeps infinite min/max while
/// empty and JSON cannot carry infinities.
#[derive(Serialize, Deserialize)]
#[serde(transparent)]
struct SketchRepr(Option<DDSketch>);

impl From<SketchRepr> for LatencySketch {
    fn from(r: SketchRepr) -> Self {
        r.0.map(|inner| LatencySketch { inner }).unwrap_or_default()
    }
}

impl From<LatencySketch> for SketchRepr {
    fn from(s: LatencySketch) -> Self {
        SketchRepr((s.count() > 0).then_some(s.inner))
    }
}

impl Default for LatencySketch {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for LatencySketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LatencySketch")
            .field("count", &self.count())
            .field("p50", &self.quantile(0.5))
            .field("p99", &self.quantile(0.99))
            .finish()
    }
}

/// Two sketches are equal when they hold the same number of values with the same sum, extremes and
/// quantiles at every percentile; sketches built from the same values in any order are equal.
impl PartialEq for LatencySketch {
    fn eq(&self, other: &Self) -> bool {
        self.count() == other.count()
            && self.inner.sum() == other.inner.sum()
            && self.min() == other.min()
            && self.max() == other.max()
            && (0..=100).all(|p| {
                self.quantile(f64::from(p) / 100.0) == other.quantile(f64::from(p) / 100.0)
            })
    }
}

impl LatencySketch {
    /// The guaranteed relative accuracy of every quantile.
    pub const RELATIVE_ACCURACY: f64 = 0.01;

    /// An empty sketch.
    pub fn new() -> Self {
        LatencySketch {
            inner: DDSketch::new(Config::new(Self::RELATIVE_ACCURACY, 2048, 1.0e-3)),
        }
    }

    /// Adds one latency in milliseconds. Negative, NaN or infinite values are rejected and leave
    /// the sketch unchanged.
    pub fn add(&mut self, millis: f64) -> Result<()> {
        self.add_n(millis, 1)
    }

    /// Adds `count` copies of one latency in milliseconds, in constant time.
    pub fn add_n(&mut self, millis: f64, count: u64) -> Result<()> {
        if !millis.is_finite() || millis < 0.0 {
            return Err(Error::invalid(
                "latency",
                millis,
                "must be a finite, non-negative number of milliseconds",
            ));
        }
        self.inner.add_with_count(millis, count);
        Ok(())
    }

    /// Merges `other` into this sketch; the result is the sketch of both sets of values.
    pub fn merge(&mut self, other: &LatencySketch) {
        if other.count() == 0 {
            return;
        }
        // Both sides are built with the same configuration, the only case DDSketch refuses.
        if self.inner.merge(&other.inner).is_err() {
            unreachable!("latency sketches always share one configuration");
        }
    }

    /// The number of values added.
    pub fn count(&self) -> u64 {
        self.inner.count() as u64
    }

    /// The `q`-quantile (`0.0..=1.0`), or `None` for an empty sketch or a `q` out of range.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        self.inner.quantile(q).ok().flatten()
    }

    /// The mean of the values added, or `None` if empty.
    pub fn mean(&self) -> Option<f64> {
        let n = self.count();
        self.inner.sum().filter(|_| n > 0).map(|s| s / n as f64)
    }

    /// The smallest value added, or `None` if empty.
    pub fn min(&self) -> Option<f64> {
        self.inner.min()
    }

    /// The largest value added, or `None` if empty.
    pub fn max(&self) -> Option<f64> {
        self.inner.max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_within_the_stated_bound() {
        let mut s = LatencySketch::new();
        let values: Vec<f64> = (1..=10_000).map(|i| f64::from(i) * 0.37).collect();
        for v in &values {
            s.add(*v).unwrap();
        }
        for q in [0.5, 0.9, 0.99] {
            let exact = values[((values.len() as f64 - 1.0) * q) as usize];
            let got = s.quantile(q).unwrap();
            assert!(
                (got - exact).abs() <= exact * LatencySketch::RELATIVE_ACCURACY * 1.01,
                "q={q} exact={exact} got={got}"
            );
        }
    }

    #[test]
    fn merge_equals_the_sketch_of_all_values() {
        let (mut a, mut b, mut all) = (
            LatencySketch::new(),
            LatencySketch::new(),
            LatencySketch::new(),
        );
        for i in 0..500 {
            let v = f64::from(i % 97) + 0.5;
            if i % 2 == 0 {
                a.add(v).unwrap()
            } else {
                b.add(v).unwrap()
            }
            all.add(v).unwrap();
        }
        a.merge(&b);
        assert_eq!(a, all);
    }

    #[test]
    fn bad_values_change_nothing() {
        let mut s = LatencySketch::new();
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            assert!(s.add(bad).unwrap_err().to_string().contains("latency"));
        }
        assert_eq!(s.count(), 0);
        assert_eq!(s.quantile(0.5), None);
        assert_eq!(s.mean(), None);
    }

    #[test]
    fn serde_round_trips_including_empty() {
        let empty = LatencySketch::new();
        let json = serde_json::to_string(&empty).unwrap();
        assert_eq!(json, "null");
        assert_eq!(serde_json::from_str::<LatencySketch>(&json).unwrap(), empty);
        let mut s = LatencySketch::new();
        s.add_n(12.5, 3).unwrap();
        s.add(250.0).unwrap();
        let back: LatencySketch =
            serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }
}
