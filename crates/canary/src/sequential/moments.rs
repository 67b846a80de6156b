//! [`LogMoments`]: the count, mean and spread of log latencies, read from a latency sketch's bins
//! or given directly; the sufficient statistics of the latency test. `Spread` pools one arm's
//! within-batch squares over batches and bounds its variance from above.

use serde::{Deserialize, Serialize};
use serin_signals::LatencySketch;

use crate::{Error, Result};

/// The smallest latency taken into logarithms (1 µs), so that a zero reading stays finite.
pub(crate) const FLOOR_MS: f64 = 1e-3;

/// The largest error, in log units, of a value read back from a latency sketch: the sketch's
/// relative accuracy `a` = 1% maps a value to its bin's representative within a factor
/// `(1 ± a)`, that is within `½ ln((1 + a)/(1 − a)) ≈ 0.0100` in logs.
pub const SKETCH_LOG_ERROR: f64 = 0.010_000_333_353_334_718;

/// The largest size of the natural log of a latency a double can hold: `ln` of the smallest
/// positive double is about `−744.4`, of the largest about `709.8`.
pub const MAX_ABS_LOG: f64 = 745.0;

/// Count, mean and sum of squared deviations of the natural logs of latencies in milliseconds.
///
/// Built from a [`LatencySketch`] ([`LogMoments::from_sketch`]: every value is read back from its
/// bin, so the mean and the spread carry the sketch's rounding of at most
/// [`SKETCH_LOG_ERROR`] per value) or from known values ([`LogMoments::from_parts`]). Moments of
/// disjoint sets of values merge exactly ([`LogMoments::merge`]).
///
/// ```
/// use serin_canary::sequential::LogMoments;
/// use serin_signals::LatencySketch;
///
/// let mut sketch = LatencySketch::new();
/// for v in [10.0, 20.0, 40.0] {
///     sketch.add(v)?;
/// }
/// let m = LogMoments::from_sketch(&sketch);
/// assert_eq!(m.count(), 3);
/// assert!((m.mean() - 20f64.ln()).abs() < 0.011);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogMoments {
    count: u64,
    mean: f64,
    /// Σ (ln x − mean)².
    m2: f64,
}

impl LogMoments {
    /// No values.
    pub fn empty() -> Self {
        LogMoments::default()
    }

    /// Moments of `count` values whose logs have the given mean and sample variance (divisor
    /// `count − 1`; ignored below two values). Errors, naming the field, on a mean or a variance
    /// that no latencies a double can hold have: a mean beyond `±`[`MAX_ABS_LOG`], a negative
    /// variance, or one above `2·MAX_ABS_LOG²` (the most that values within `±MAX_ABS_LOG` can
    /// spread). Beyond those, merged moments overflow or turn NaN and the test's state could no
    /// longer be saved.
    pub fn from_parts(count: u64, mean_log: f64, variance_log: f64) -> Result<Self> {
        if count == 0 {
            return Ok(Self::empty());
        }
        check_mean_log("logMoments.meanLog", mean_log)?;
        if !(0.0..=MAX_LOG_VARIANCE).contains(&variance_log) {
            return Err(Error::invalid_input(
                "logMoments.varianceLog",
                variance_log,
                format!("must be a variance of log latencies, in [0, {MAX_LOG_VARIANCE}]"),
            ));
        }
        Ok(LogMoments {
            count,
            mean: mean_log,
            m2: variance_log * count.saturating_sub(1) as f64,
        })
    }

    /// The moments of the logs of every value a sketch holds, each read back from its bin.
    ///
    /// The sketch answers quantiles by rank, so the values are read run by run: one lookup
    /// finds a rank's bin and a galloping search finds where that bin ends, which costs
    /// `O(bins × log(values))` lookups per occupied bin. The largest value is read exactly.
    pub fn from_sketch(sketch: &LatencySketch) -> Self {
        Self::from_sketch_within(sketch, f64::NEG_INFINITY, f64::INFINITY).0
    }

    /// As [`from_sketch`](Self::from_sketch), with every log clamped into `[lo, hi]` (Huber's
    /// winsorizing: a value beyond a fence counts as the fence), and how many values were. The
    /// caller's fences satisfy `lo <= hi` (see `LatencyTest::fences`).
    pub(crate) fn from_sketch_within(sketch: &LatencySketch, lo: f64, hi: f64) -> (Self, u64) {
        let n = sketch.count();
        let mut m = LogMoments::empty();
        let mut clamped = 0;
        if n == 0 {
            return (m, clamped);
        }
        // The value of 0-based rank `r`: the sketch reads rank `⌊q (n − 1)⌋`, so `q` is put in
        // the middle of the rank's interval; the top rank is only reachable as the maximum.
        let at = |r: u64| -> f64 {
            let v = if r + 1 >= n {
                sketch.max()
            } else {
                sketch.quantile((r as f64 + 0.5) / (n - 1) as f64)
            };
            v.unwrap_or(FLOOR_MS)
        };
        let mut r = 0u64;
        while r < n {
            let v = at(r);
            // Gallop to a rank past the run of `v`, then bisect for the run's last rank.
            let mut step = 1u64;
            while r + step < n && at(r + step) == v {
                step = step.saturating_mul(2);
            }
            let (mut last, mut past) = (r + step / 2, (r + step).min(n));
            // Invariant: at(last) == v, and past is n or at(past) != v.
            while past - last > 1 {
                let mid = last + (past - last) / 2;
                if at(mid) == v {
                    last = mid;
                } else {
                    past = mid;
                }
            }
            let x = v.max(FLOOR_MS).ln();
            if !(lo..=hi).contains(&x) {
                clamped += last - r + 1;
            }
            m.add_value(x.clamp(lo, hi), last - r + 1);
            r = last + 1;
        }
        (m, clamped)
    }

    fn add_value(&mut self, x: f64, k: u64) {
        self.merge(&LogMoments {
            count: k,
            mean: x,
            m2: 0.0,
        });
    }

    /// Adds the moments of another, disjoint set of values (Chan et al.'s pairwise update).
    pub fn merge(&mut self, other: &LogMoments) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = *other;
            return;
        }
        let n = self.count.saturating_add(other.count);
        let (na, nb) = (self.count as f64, other.count as f64);
        let d = other.mean - self.mean;
        self.mean += d * nb / n as f64;
        self.m2 += other.m2 + d * d * na * nb / n as f64;
        self.count = n;
    }

    /// The number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The mean log latency (0 when empty).
    pub fn mean(&self) -> f64 {
        self.mean
    }

    /// The sum of squared deviations of the logs from their mean.
    pub fn sum_sq_dev(&self) -> f64 {
        self.m2
    }

    /// The sample variance of the logs (NaN below two values).
    pub fn variance(&self) -> f64 {
        if self.count < 2 {
            return f64::NAN;
        }
        self.m2 / (self.count - 1) as f64
    }

    /// Checks moments read back from a saved state, as [`from_parts`](Self::from_parts) checks
    /// its arguments: a mean beyond `±`[`MAX_ABS_LOG`], or a sum of squared deviations that is
    /// not a finite number `>= 0`, are no latencies' moments. Merged into a batch they make its
    /// difference NaN or its variance wrong, and the test would skip or misweigh its batches
    /// without a word. `path` names the moments in errors (`latencyTest.openBaseline`).
    pub(crate) fn check(&self, path: &str) -> Result<()> {
        check_mean_log(&format!("{path}.mean"), self.mean)?;
        check_sum_sq(&format!("{path}.m2"), self.m2)
    }
}

/// Refuses a mean log latency beyond `±MAX_ABS_LOG` (or NaN).
fn check_mean_log(path: &str, v: f64) -> Result<()> {
    if v.abs() <= MAX_ABS_LOG {
        return Ok(());
    }
    Err(Error::invalid_input(
        path,
        v,
        format!("must be a mean of log latencies, within ±{MAX_ABS_LOG}"),
    ))
}

/// The largest sample variance of logs within `±MAX_ABS_LOG`.
const MAX_LOG_VARIANCE: f64 = 2.0 * MAX_ABS_LOG * MAX_ABS_LOG;

/// Checks a sum of squared deviations read back: finite and `>= 0`.
fn check_sum_sq(path: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        return Ok(());
    }
    Err(Error::invalid_input(
        path,
        v,
        "must be a finite sum of squared deviations >= 0",
    ))
}

/// The standard deviations below its mean at which the χ² quantile bounding the variance is read
/// (see "Why the plug-in variance keeps the guarantee" on [`LatencyTest`](super::LatencyTest)).
const VARIANCE_BOUND_Z: f64 = 0.5;

/// The smallest per-value variance of a log latency: the sketch's rounding alone, uniform
/// within `±0.01`.
pub(crate) const MIN_LOG_VARIANCE: f64 = SKETCH_LOG_ERROR * SKETCH_LOG_ERROR / 3.0;

/// Running within-batch squares and degrees of freedom of one arm.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Spread {
    sum_sq_dev: f64,
    dof: u64,
}

impl Spread {
    /// Checks a spread read back from a saved state: a negative or non-finite sum of squares
    /// is no spread. Its variance bound would be the sketch's rounding alone or not a number,
    /// and the test would overweigh or skip its batches without a word. `path` names the
    /// spread in errors (`latencyTest.spreadBaseline`).
    pub(crate) fn check(&self, path: &str) -> Result<()> {
        check_sum_sq(&format!("{path}.sumSqDev"), self.sum_sq_dev)
    }

    pub(crate) fn add(&mut self, m: &LogMoments) {
        self.sum_sq_dev += m.sum_sq_dev();
        self.dof = self.dof.saturating_add(m.count().saturating_sub(1));
    }

    /// The degrees of freedom.
    pub(crate) fn dof(&self) -> u64 {
        self.dof
    }

    /// The plain estimate of the variance (NaN without degrees of freedom).
    pub(crate) fn estimate(&self) -> f64 {
        if self.dof == 0 {
            return f64::NAN;
        }
        self.sum_sq_dev / self.dof as f64
    }

    /// An upper confidence bound on the variance ([`variance_upper`]), never below the sketch's
    /// rounding alone.
    pub(crate) fn upper(&self) -> f64 {
        variance_upper(self.sum_sq_dev, self.dof).max(MIN_LOG_VARIANCE)
    }
}

/// An upper confidence bound on a variance from a sum of squares with `dof` degrees of freedom:
/// the squares over the Wilson–Hilferty approximation of χ²'s quantile [`VARIANCE_BOUND_Z`] sd
/// below its mean; infinite without degrees of freedom.
pub(crate) fn variance_upper(sum_sq: f64, dof: u64) -> f64 {
    if dof == 0 {
        return f64::INFINITY;
    }
    let k = dof as f64;
    let h = 2.0 / (9.0 * k);
    let base = (1.0 - h - VARIANCE_BOUND_Z * h.sqrt()).max(0.05);
    sum_sq / (k * base * base * base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moments_from_a_sketch_match_the_values_within_the_rounding() {
        let values: Vec<f64> = (1..=997).map(|i| 5.0 + f64::from(i % 113) * 1.7).collect();
        let mut s = LatencySketch::new();
        for v in &values {
            s.add(*v).unwrap();
        }
        let m = LogMoments::from_sketch(&s);
        let n = values.len() as f64;
        let mean = values.iter().map(|v| v.ln()).sum::<f64>() / n;
        let var = values.iter().map(|v| (v.ln() - mean).powi(2)).sum::<f64>() / (n - 1.0);
        assert_eq!(m.count(), values.len() as u64);
        assert!(
            (m.mean() - mean).abs() <= SKETCH_LOG_ERROR,
            "{} {mean}",
            m.mean()
        );
        assert!(
            (m.variance() - var).abs() < 0.01 * var,
            "{} {var}",
            m.variance()
        );
    }

    #[test]
    fn single_values_zero_and_empty_sketches() {
        assert_eq!(LogMoments::from_sketch(&LatencySketch::new()).count(), 0);
        let mut s = LatencySketch::new();
        s.add(0.0).unwrap();
        let m = LogMoments::from_sketch(&s);
        assert_eq!(m.count(), 1);
        assert!((m.mean() - FLOOR_MS.ln()).abs() < 1e-12);
        let mut s = LatencySketch::new();
        s.add_n(42.0, 7).unwrap();
        let m = LogMoments::from_sketch(&s);
        assert_eq!(m.count(), 7);
        assert!((m.mean() - 42f64.ln()).abs() <= SKETCH_LOG_ERROR);
        assert!(m.variance() < 1e-4);
    }

    #[test]
    fn merging_equals_the_moments_of_the_union() {
        let mut a = LogMoments::from_parts(10, 1.0, 0.5).unwrap();
        let b = LogMoments::from_parts(30, 2.0, 0.25).unwrap();
        a.merge(&b);
        assert_eq!(a.count(), 40);
        assert!((a.mean() - 1.75).abs() < 1e-12);
        // Σ squares: 9·0.5 + 29·0.25 + 10·30/40·1² = 4.5 + 7.25 + 7.5.
        assert!((a.sum_sq_dev() - 19.25).abs() < 1e-12);
    }

    /// Formats other than JSON carry NaN and infinities; moments and spreads read back with
    /// them are refused, naming the field under the owner's path.
    #[test]
    fn moments_and_spreads_read_back_are_checked() {
        let m = LogMoments::from_parts(5, 1.0, 0.5).unwrap();
        assert!(m.check("x").is_ok() && Spread::default().check("x").is_ok());
        for (bad, field) in [
            (
                LogMoments {
                    mean: f64::NAN,
                    ..m
                },
                "open.mean",
            ),
            (
                LogMoments {
                    mean: f64::INFINITY,
                    ..m
                },
                "open.mean",
            ),
            (LogMoments { m2: -1e-9, ..m }, "open.m2"),
            (LogMoments { m2: f64::NAN, ..m }, "open.m2"),
            (
                LogMoments {
                    m2: f64::INFINITY,
                    ..m
                },
                "open.m2",
            ),
        ] {
            let e = bad.check("open").unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        for v in [-1.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let s = Spread {
                sum_sq_dev: v,
                dof: 3,
            };
            let e = s.check("spread").unwrap_err().to_string();
            assert!(e.contains("spread.sumSqDev") && e.contains(">= 0"), "{e}");
        }
    }

    #[test]
    fn bad_parts_are_errors_naming_the_field() {
        let e = LogMoments::from_parts(3, f64::NAN, 1.0).unwrap_err();
        assert!(e.to_string().contains("logMoments.meanLog"), "{e}");
        let e = LogMoments::from_parts(3, 0.0, -1.0).unwrap_err();
        assert!(e.to_string().contains("logMoments.varianceLog"), "{e}");
        assert_eq!(LogMoments::from_parts(0, f64::NAN, 1.0).unwrap().count(), 0);
    }
}
