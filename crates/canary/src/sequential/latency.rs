//! The anytime-valid latency test: batch log-quantile differences and a sequential t-test.
//!
//! Latency sketches of each sample are merged per arm until both arms hold at least
//! [`LatencyTestConfig::min_batch`] values; the batch then contributes the shift of the centre
//! of the distribution, `d = mean_k ln Q_canary(k/10) − mean_k ln Q_baseline(k/10) − ln(1 + margin)`
//! over the deciles `k = 1..=9` (for a change of scale, the log ratio of the medians), and the
//! shift of the p99, and is cleared. The sequence of `d`s is tested for a positive mean with the scale-invariant
//! sequential t-test (see [`super`]), whose Bayes factor is a test martingale whatever the
//! variance of `d`: the noise of latencies, the sketch's 1% error and slow drifts shared by both
//! arms are estimated from the batches, never assumed.
//!
//! Logs make the test scale-free (a +10% median shift is the same effect at 5 ms and at 500 ms)
//! and the batch statistics close to Gaussian. The decision uses the **centre** (the mean log
//! decile, which is less noisy than the median alone and does not tie exactly between batches
//! the way a single sketch quantile, rounded to the sketch's 2% bins, does): central quantiles
//! of a batch are nearly unbiased whatever the batch size, while a batch's p99 from a few dozen
//! values is biased by an amount that depends on the arm's batch size, which differs between a
//! 5% canary and its baseline. The p99 shift is therefore estimated and reported with its interval,
//! but it does not decide. Memory: one open sketch per arm (at most about 16 KiB each).

use serde::{Deserialize, Serialize};
use serin_signals::LatencySketch;

use super::counts::Sides;
use super::ttest::SequentialT;
use crate::judge::Interval;
use crate::{Error, Result};

/// Settings of a [`LatencyTest`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct LatencyTestConfig {
    /// The false-rollback probability bound, in `(0, 1)`. Default `0.05`.
    pub alpha: f64,
    /// Fail only if the canary's median is more than `(1 + margin)` times the baseline's.
    /// Default `0`.
    pub margin: f64,
    /// One- or two-sided. Default [`Sides::CanaryWorse`].
    pub sides: Sides,
    /// Values each arm must hold before a batch closes. Default `30`.
    pub min_batch: u64,
    /// The prior variance of the standardized effect in the t-test mixture. Default `1`.
    pub prior_variance: f64,
}

impl Default for LatencyTestConfig {
    fn default() -> Self {
        LatencyTestConfig {
            alpha: 0.05,
            margin: 0.0,
            sides: Sides::CanaryWorse,
            min_batch: 30,
            prior_variance: 1.0,
        }
    }
}

impl LatencyTestConfig {
    /// The defaults with the given `alpha`.
    pub fn new(alpha: f64) -> Self {
        LatencyTestConfig {
            alpha,
            ..Self::default()
        }
    }

    /// With the practical-significance margin (a fraction: `0.05` = fail only if the median is
    /// more than 5% higher).
    pub fn with_margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        super::counts::check_open_unit(&format!("{path}.alpha"), self.alpha)?;
        if !(self.margin.is_finite() && self.margin >= 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.margin"),
                self.margin,
                "must be a finite fraction >= 0",
            ));
        }
        if self.min_batch < 3 {
            return Err(Error::invalid_config(
                format!("{path}.minBatch"),
                self.min_batch,
                "must be at least 3 values",
            ));
        }
        if !(self.prior_variance.is_finite() && self.prior_variance > 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.priorVariance"),
                self.prior_variance,
                "must be a finite number > 0",
            ));
        }
        Ok(())
    }
}

/// The smallest latency taken into logarithms (1 µs), so that a zero reading stays finite.
const FLOOR_MS: f64 = 1e-3;

/// The anytime-valid sequential latency test (see the [module docs](super)).
///
/// ```
/// use serin_canary::sequential::{LatencyTest, LatencyTestConfig};
/// use serin_signals::LatencySketch;
///
/// let mut test = LatencyTest::new(LatencyTestConfig::new(0.05))?;
/// let mut rejected = false;
/// for i in 0..200 {
///     let (mut base, mut can) = (LatencySketch::new(), LatencySketch::new());
///     for k in 0..100 {
///         let v = 20.0 + f64::from((k * 7 + i) % 13);
///         base.add(v)?;
///         can.add(v * 1.3)?; // the canary is 30% slower
///     }
///     rejected = test.update(&base, &can);
///     if rejected { break; }
/// }
/// assert!(rejected);
/// let shift = test.median_shift();
/// assert!((shift - 0.3).abs() < 0.05, "{shift}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyTest {
    config: LatencyTestConfig,
    open_baseline: LatencySketch,
    open_canary: LatencySketch,
    median: SequentialT,
    p99: SequentialT,
    values: (u64, u64),
    updates: u64,
    rejected_at: Option<u64>,
    rejected_worse: bool,
}

impl LatencyTest {
    /// A test with the given settings; invalid settings are an error naming the field.
    pub fn new(config: LatencyTestConfig) -> Result<Self> {
        config.validate("latencyTest")?;
        Ok(LatencyTest {
            config,
            open_baseline: LatencySketch::new(),
            open_canary: LatencySketch::new(),
            median: SequentialT::new(config.prior_variance),
            p99: SequentialT::new(config.prior_variance),
            values: (0, 0),
            updates: 0,
            rejected_at: None,
            rejected_worse: false,
        })
    }

    /// The settings.
    pub fn config(&self) -> &LatencyTestConfig {
        &self.config
    }

    /// Feeds one sample: each arm's latency sketch over the same window. Returns whether the
    /// test has rejected (now or before).
    pub fn update(&mut self, baseline: &LatencySketch, canary: &LatencySketch) -> bool {
        self.updates += 1;
        self.values.0 = self.values.0.saturating_add(baseline.count());
        self.values.1 = self.values.1.saturating_add(canary.count());
        self.open_baseline.merge(baseline);
        self.open_canary.merge(canary);
        if self.open_baseline.count() >= self.config.min_batch
            && self.open_canary.count() >= self.config.min_batch
        {
            self.close_batch();
        }
        self.rejected_at.is_some()
    }

    /// Feeds one closed batch directly, as its medians and p99s per arm (for callers that keep
    /// their own per-batch summaries). Values are floored at 1 µs; non-finite values are
    /// ignored. Returns whether the test has rejected.
    pub fn update_batch(
        &mut self,
        baseline_median: f64,
        canary_median: f64,
        baseline_p99: f64,
        canary_p99: f64,
    ) -> bool {
        self.updates += 1;
        self.push(baseline_median, canary_median, baseline_p99, canary_p99);
        self.rejected_at.is_some()
    }

    fn close_batch(&mut self) {
        let q = |s: &LatencySketch, p: f64| s.quantile(p).unwrap_or(f64::NAN);
        let ln = |x: f64| x.max(FLOOR_MS).ln();
        // The centre of the distribution: the mean log of the deciles 0.1..=0.9. For a shift of
        // scale it estimates the same log ratio as the median, with less noise and without the
        // sketch's bin steps (which make single medians of different batches tie exactly).
        let centre =
            |s: &LatencySketch| (1..=9).map(|k| ln(q(s, f64::from(k) / 10.0))).sum::<f64>() / 9.0;
        let d_centre = centre(&self.open_canary) - centre(&self.open_baseline);
        let d99 = ln(q(&self.open_canary, 0.99)) - ln(q(&self.open_baseline, 0.99));
        self.open_baseline = LatencySketch::new();
        self.open_canary = LatencySketch::new();
        self.push_log_diffs(d_centre, d99);
    }

    fn push(&mut self, bm: f64, cm: f64, b99: f64, c99: f64) {
        let ln = |x: f64| x.max(FLOOR_MS).ln();
        self.push_log_diffs(ln(cm) - ln(bm), ln(c99) - ln(b99));
    }

    fn push_log_diffs(&mut self, d_centre: f64, d99: f64) {
        let margin = self.config.margin.ln_1p();
        self.median.push(d_centre - margin);
        self.p99.push(d99);
        if self.rejected_at.is_none() && self.median.log_bf(0.0) >= (1.0 / self.config.alpha).ln() {
            let worse = self.median.mean() > 0.0;
            if worse || self.config.sides == Sides::TwoSided {
                self.rejected_at = Some(self.updates);
                self.rejected_worse = worse;
            }
        }
    }

    /// The e-value of the median test (one-sided mode counts only the "canary slower" side).
    pub fn e_value(&self) -> f64 {
        let e = self.median.log_bf(0.0).exp();
        if self.config.sides == Sides::CanaryWorse && self.median.mean() <= 0.0 {
            e.min(1.0)
        } else {
            e
        }
    }

    /// Whether the test has rejected.
    pub fn rejected(&self) -> bool {
        self.rejected_at.is_some()
    }

    /// Whether the rejection was for "canary slower"; `None` before any rejection.
    pub fn rejected_worse(&self) -> Option<bool> {
        self.rejected_at.map(|_| self.rejected_worse)
    }

    /// The number of updates after which the test rejected.
    pub fn rejected_at(&self) -> Option<u64> {
        self.rejected_at
    }

    /// The number of closed batches.
    pub fn batches(&self) -> u64 {
        self.median.n()
    }

    /// Latency values fed per arm: `(baseline, canary)`.
    pub fn values(&self) -> (u64, u64) {
        self.values
    }

    /// The threshold the e-value is compared with: `1/α`.
    pub fn threshold(&self) -> f64 {
        1.0 / self.config.alpha
    }

    /// The estimated relative shift of the canary's median (`0.1` = 10% slower), measured on the
    /// centre of the distribution (the mean log decile, equal to the median's shift for a change
    /// of scale); NaN before the first batch.
    pub fn median_shift(&self) -> f64 {
        if self.median.n() == 0 {
            return f64::NAN;
        }
        to_shift(self.config.margin, self.median.mean())
    }

    /// The anytime-valid confidence sequence of the median shift; `None` below two batches.
    pub fn median_shift_interval(&self) -> Option<Interval> {
        let m = self.config.margin;
        self.median.interval(self.config.alpha).map(|i| Interval {
            lower: to_shift(m, i.lower),
            upper: to_shift(m, i.upper),
            level: i.level,
        })
    }

    /// The estimated relative shift of the canary's p99; NaN before the first batch.
    pub fn p99_shift(&self) -> f64 {
        if self.p99.n() == 0 {
            return f64::NAN;
        }
        self.p99.mean().exp() - 1.0
    }

    /// The confidence sequence of the p99 shift (subject to the small-batch bias described in
    /// the module docs); `None` below two batches.
    pub fn p99_shift_interval(&self) -> Option<Interval> {
        self.p99.interval(self.config.alpha).map(|i| Interval {
            lower: i.lower.exp() - 1.0,
            upper: i.upper.exp() - 1.0,
            level: i.level,
        })
    }

    /// Forgets every sample; the settings are kept.
    pub fn reset(&mut self) {
        if let Ok(fresh) = LatencyTest::new(self.config) {
            *self = fresh;
        }
    }
}

/// A log difference over the margin, back to a relative shift.
fn to_shift(margin: f64, x: f64) -> f64 {
    (1.0 + margin) * x.exp() - 1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sketch(values: impl IntoIterator<Item = f64>) -> LatencySketch {
        let mut s = LatencySketch::new();
        for v in values {
            s.add(v).unwrap();
        }
        s
    }

    #[test]
    fn identical_arms_never_reject() {
        let mut t = LatencyTest::new(LatencyTestConfig::default()).unwrap();
        for i in 0..500u32 {
            let s = sketch((0..60).map(|k| 10.0 + f64::from((k * 13 + i) % 17)));
            assert!(!t.update(&s, &s));
        }
        assert!(t.batches() >= 400);
        assert!(t.e_value() <= 1.0);
        assert!(t.median_shift().abs() < 1e-9);
    }

    #[test]
    fn small_samples_wait_for_a_full_batch() {
        let mut t = LatencyTest::new(LatencyTestConfig::default()).unwrap();
        let s = sketch([5.0, 6.0]);
        for _ in 0..14 {
            t.update(&s, &s);
        }
        assert_eq!(t.batches(), 0);
        t.update(&s, &s);
        assert_eq!(t.batches(), 1);
        assert_eq!(t.values(), (30, 30));
    }

    #[test]
    fn the_margin_tolerates_a_small_shift() {
        let mut t = LatencyTest::new(LatencyTestConfig::new(0.05).with_margin(0.2)).unwrap();
        for i in 0..300u32 {
            let base = sketch((0..60).map(|k| 10.0 + f64::from((k * 13 + i) % 17)));
            let can = sketch((0..60).map(|k| 1.1 * (10.0 + f64::from((k * 13 + i) % 17))));
            assert!(!t.update(&base, &can));
        }
        let ci = t.median_shift_interval().unwrap();
        assert!(
            (t.median_shift() - 0.1).abs() < 0.02,
            "{}",
            t.median_shift()
        );
        assert!(ci.upper < 0.2, "{ci:?}");
    }
}
