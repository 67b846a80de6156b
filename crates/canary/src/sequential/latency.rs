//! The anytime-valid latency test: batch log-quantile differences and a sequential t-test.
//!
//! Latency sketches of each sample are merged per arm until both arms hold at least
//! [`LatencyTestConfig::min_batch`] values; the batch then contributes the shift of the centre
//! of the distribution, `d = mean_k ln Q_canary(k/10) − mean_k ln Q_baseline(k/10) − ln(1 + margin)`
//! over the deciles `k = 1..=9` (for a change of scale, the log ratio of the medians), and the
//! shift of the p99, and is cleared. The sequence of `d`s is tested for a positive mean in one of
//! two ways ([`LatencyVariance`]):
//!
//! - **Within batches** (the default): each batch's variance is estimated from the batch itself
//!   (the spread of its log deciles and the arms' batch sizes), and the `d`s feed the normal
//!   mixture e-process of Howard et al. (2021): with `S = Σ d_k/v_k` and `V = Σ 1/v_k`,
//!   `M = (1 + τ²V)^(−1/2) · exp(τ²S²/(2(1 + τ²V)))`, a test martingale for Gaussian batch
//!   statistics with known variances (for log-normal latencies, the within-batch spread is
//!   independent of the centre, so plugging it in keeps the guarantee up to the estimation error
//!   of the spread). Fast: every request counts from the first batch on.
//! - **Between batches** (the robust mode): the scale-invariant sequential t-test (see
//!   [`super`]), whose Bayes factor is a test martingale whatever the common variance of `d`:
//!   noise that the within-batch spread does not see (latency that wanders per arm between
//!   batches) is estimated from the batches, never assumed. Slower: it needs several batches.
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

/// Where a [`LatencyTest`] takes the variance of its batch statistics from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LatencyVariance {
    /// From the spread inside each batch: a normal-mixture e-process, fast.
    #[default]
    WithinBatch,
    /// From the scatter between batches: the sequential t-test, robust to per-arm drifts.
    BetweenBatches,
}

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
    /// Where the variance comes from. Default [`LatencyVariance::WithinBatch`].
    pub variance: LatencyVariance,
    /// The prior scale `τ` of the log shift in the within-batch normal mixture (the test is most
    /// powerful for shifts near it). Default `0.1` (about 10%).
    pub prior_scale: f64,
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
            variance: LatencyVariance::WithinBatch,
            prior_scale: 0.1,
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
        if !(self.prior_scale.is_finite() && self.prior_scale > 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.priorScale"),
                self.prior_scale,
                "must be a finite log shift > 0",
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

/// The variance of the mean of the nine log deciles relative to the mean of the logs, for normal
/// log-latencies, rounded up (the exact asymptotic figure is about 1.1).
const DECILE_MEAN_INFLATION: f64 = 1.25;

/// The smallest variance of a batch statistic: the rounding of two sketch quantiles to bins of
/// 2% (`(ln 1.0202)² / 12` each, doubled and rounded up).
const MIN_BATCH_VARIANCE: f64 = 1e-4;

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
    /// `Σ d_k / v_k` and `Σ 1 / v_k` of the within-batch normal mixture.
    weighted_sum: f64,
    precision: f64,
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
            weighted_sum: 0.0,
            precision: 0.0,
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

    fn close_batch(&mut self) {
        let q = |s: &LatencySketch, p: f64| s.quantile(p).unwrap_or(f64::NAN);
        let ln = |x: f64| x.max(FLOOR_MS).ln();
        // The centre of the distribution: the mean log of the deciles 0.1..=0.9. For a shift of
        // scale it estimates the same log ratio as the median, with less noise and without the
        // sketch's bin steps (which make single medians of different batches tie exactly).
        let centre =
            |s: &LatencySketch| (1..=9).map(|k| ln(q(s, f64::from(k) / 10.0))).sum::<f64>() / 9.0;
        // The spread: for a normal log-latency, ln Q(0.9) − ln Q(0.1) = 2.563 σ.
        let var_of_centre = |s: &LatencySketch| {
            let sigma = (ln(q(s, 0.9)) - ln(q(s, 0.1))) / 2.563;
            DECILE_MEAN_INFLATION * sigma * sigma / s.count().max(1) as f64
        };
        let d_centre = centre(&self.open_canary) - centre(&self.open_baseline);
        let var = (var_of_centre(&self.open_canary) + var_of_centre(&self.open_baseline))
            .max(MIN_BATCH_VARIANCE);
        let d99 = ln(q(&self.open_canary, 0.99)) - ln(q(&self.open_baseline, 0.99));
        self.open_baseline = LatencySketch::new();
        self.open_canary = LatencySketch::new();
        self.push_log_diffs(d_centre, var, d99);
    }

    fn push_log_diffs(&mut self, d_centre: f64, var: f64, d99: f64) {
        let margin = self.config.margin.ln_1p();
        let x = d_centre - margin;
        self.median.push(x);
        self.p99.push(d99);
        if x.is_finite() && var.is_finite() {
            self.weighted_sum += x / var;
            self.precision += 1.0 / var;
        }
        if self.rejected_at.is_none() && self.log_e_two_sided() >= (1.0 / self.config.alpha).ln() {
            let worse = self.centre_estimate() > 0.0;
            if worse || self.config.sides == Sides::TwoSided {
                self.rejected_at = Some(self.updates);
                self.rejected_worse = worse;
            }
        }
    }

    /// `ln` of the two-sided e-value of the configured variance mode.
    fn log_e_two_sided(&self) -> f64 {
        match self.config.variance {
            LatencyVariance::BetweenBatches => self.median.log_bf(0.0),
            LatencyVariance::WithinBatch => {
                let t2 = self.config.prior_scale * self.config.prior_scale;
                let a = 1.0 + t2 * self.precision;
                -0.5 * a.ln() + t2 * self.weighted_sum * self.weighted_sum / (2.0 * a)
            }
        }
    }

    /// The estimate of the log shift over the margin.
    fn centre_estimate(&self) -> f64 {
        match self.config.variance {
            LatencyVariance::BetweenBatches => self.median.mean(),
            LatencyVariance::WithinBatch if self.precision > 0.0 => {
                self.weighted_sum / self.precision
            }
            LatencyVariance::WithinBatch => 0.0,
        }
    }

    /// The confidence sequence of the log shift over the margin.
    fn centre_interval(&self) -> Option<Interval> {
        match self.config.variance {
            LatencyVariance::BetweenBatches => self.median.interval(self.config.alpha),
            LatencyVariance::WithinBatch => {
                if self.median.n() == 0 || self.precision <= 0.0 {
                    return None;
                }
                let t2 = self.config.prior_scale * self.config.prior_scale;
                let a = 1.0 + t2 * self.precision;
                let bound = 2.0 * a * ((1.0 / self.config.alpha).ln() + 0.5 * a.ln()) / t2;
                let half = bound.sqrt() / self.precision;
                let mid = self.weighted_sum / self.precision;
                Some(Interval {
                    lower: mid - half,
                    upper: mid + half,
                    level: 1.0 - self.config.alpha,
                })
            }
        }
    }

    /// The e-value of the centre-shift test (one-sided mode counts only the "canary slower"
    /// side).
    pub fn e_value(&self) -> f64 {
        let e = self.log_e_two_sided().exp();
        if self.config.sides == Sides::CanaryWorse && self.centre_estimate() <= 0.0 {
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
        to_shift(self.config.margin, self.centre_estimate())
    }

    /// The anytime-valid confidence sequence of the median shift; `None` below two batches.
    pub fn median_shift_interval(&self) -> Option<Interval> {
        let m = self.config.margin;
        self.centre_interval().map(|i| Interval {
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
