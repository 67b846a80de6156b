//! How much the batch differences of the latency test (and the batch log-ratios of the count
//! test) scatter, against how much the values in them explain: a diagnostic for the one
//! assumption the fast modes cannot check by themselves.
//!
//! The within-batch mode takes each batch difference `d_k` to vary only as much as the arms'
//! values do (`v_k` from the spread inside the batches). Then `Σ (d_k − d̄)²/v_k` over `n`
//! batches, with `d̄` the `1/v_k`-weighted mean, is at most a `χ²` with `n − 1` degrees of
//! freedom (at most, because `v_k` is an upper bound). A median that wanders on its own in
//! each arm, or a shift that changes during the analysis, adds scatter the values do not
//! explain, and the mode's e-value then overstates the evidence. The ratio of the two is
//! reported once that `χ²` would exceed it with probability below [`EXCESS_P`]; it decides
//! nothing, but it tells the reader of a rollback that the robust mode, which estimates that
//! scatter, may fit the service better.

use serde::{Deserialize, Serialize};
use statrs::distribution::{ChiSquared, ContinuousCDF};

use crate::{Error, Result};

/// The `χ²` tail probability below which the scatter is reported as excess.
pub(crate) const EXCESS_P: f64 = 0.001;

/// Batches needed before the scatter is judged at all.
const MIN_BATCHES: u64 = 10;

/// The `1/v`-weighted running mean and sum of squared deviations of the batch differences
/// (West's weighted form of Welford's update, stable when the shift is much larger than the
/// scatter).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct Scatter {
    n: u64,
    weight: f64,
    mean: f64,
    /// `Σ w_k (d_k − d̄)²`.
    sum_sq: f64,
}

impl Scatter {
    /// Adds one batch difference `d` of variance `v` (ignored unless both are finite and
    /// `v > 0`, and `1/v` is finite: a weight of infinity would make the mean, and the state
    /// saved with it, not a number).
    pub(crate) fn push(&mut self, d: f64, v: f64) {
        let w = 1.0 / v;
        if !(d.is_finite() && v.is_finite() && v > 0.0 && w.is_finite()) {
            return;
        }
        self.n = self.n.saturating_add(1);
        self.weight += w;
        let delta = d - self.mean;
        self.mean += delta * w / self.weight;
        // Each term is `≥ 0` exactly; rounding can leave it a hair below (when the new mean
        // overshoots `d`), and a sum of squares below 0 is none.
        self.sum_sq = (self.sum_sq + w * delta * (d - self.mean)).max(0.0);
    }

    /// Checks a scatter read back from a saved state and takes rounding noise out of it. A
    /// weight or mean that is not finite, a negative weight, or a sum of squares that is not a
    /// number, infinite, or below 0 by more than rounding leaves (see
    /// [`rounding_allowance`](Self::rounding_allowance)) is no batches' scatter: the
    /// diagnostic, and the latency gate's widening that reads it, would report or weigh
    /// nonsense without a word, so it is refused, naming `path`'s field. A sum of squares a
    /// hair below 0 (states saved before updates clamped it held such values) is taken as 0.
    pub(crate) fn restore(&mut self, path: &str) -> Result<()> {
        if !(self.weight.is_finite() && self.weight >= 0.0) {
            return Err(Error::invalid_input(
                format!("{path}.weight"),
                self.weight,
                "must be a finite sum of batch weights >= 0",
            ));
        }
        if !self.mean.is_finite() {
            return Err(Error::invalid_input(
                format!("{path}.mean"),
                self.mean,
                "must be a finite weighted mean of batch differences",
            ));
        }
        // Every batch counted added a weight above 0: a count with no weight behind it (or a
        // weight with no count) would pass the batch minimums of the gates that read `n` with
        // no batch ever gathered.
        if (self.n == 0) != (self.weight == 0.0) {
            return Err(Error::invalid_input(
                format!("{path}.weight"),
                self.weight,
                format!(
                    "must be above 0 exactly when batches were counted, and n is {}",
                    self.n
                ),
            ));
        }
        let allowance = self.rounding_allowance();
        // One batch (or none) has no scatter but what rounding leaves.
        if self.n < 2 && self.sum_sq > allowance {
            return Err(Error::invalid_input(
                format!("{path}.sumSq"),
                self.sum_sq,
                format!(
                    "must be 0 with {} batch(es): one batch has no scatter",
                    self.n
                ),
            ));
        }
        if !(self.sum_sq.is_finite() && self.sum_sq >= -allowance) {
            return Err(Error::invalid_input(
                format!("{path}.sumSq"),
                self.sum_sq,
                format!(
                    "must be a finite sum of squared deviations >= 0 (or above -{allowance:e}, \
                     what rounding can leave)"
                ),
            ));
        }
        self.sum_sq = self.sum_sq.max(0.0);
        Ok(())
    }

    /// How far below 0 rounding can take the sum of squares: a few parts in 10⁹ of the size
    /// of the terms it sums, which is about `weight · mean²` when a common shift dominates the
    /// scatter, and 1 otherwise.
    fn rounding_allowance(&self) -> f64 {
        1e-9 * (1.0 + self.weight * self.mean * self.mean)
    }

    /// The number of differences pushed.
    pub(crate) fn count(&self) -> u64 {
        self.n
    }

    /// The scatter over what the values explain, `Σ w_k (d_k − d̄)² / (n − 1)`: about 1 (or
    /// less) when the within-batch model holds; `None` below two batches.
    pub(crate) fn ratio(&self) -> Option<f64> {
        (self.n >= 2).then(|| self.sum_sq / (self.n - 1) as f64)
    }

    /// An upper confidence bound on the ratio, read as the latency test reads its variances
    /// (see `Spread::upper`); `None` below two batches.
    pub(crate) fn upper_ratio(&self) -> Option<f64> {
        (self.n >= 2).then(|| super::moments::variance_upper(self.sum_sq, self.n - 1))
    }

    /// The ratio, when at least [`MIN_BATCHES`] batches scatter more than a `χ²` with
    /// `n − 1` degrees of freedom does with probability [`EXCESS_P`].
    pub(crate) fn excess(&self) -> Option<f64> {
        if self.n < MIN_BATCHES {
            return None;
        }
        let chi = ChiSquared::new((self.n - 1) as f64).ok()?;
        (chi.sf(self.sum_sq) < EXCESS_P)
            .then(|| self.ratio())
            .flatten()
    }
}

/// The errors each arm must expect, under equal rates, before a batch of [`ErrorScatter`]
/// closes: enough for its log-ratio to be close to Gaussian.
pub(crate) const MIN_EXPECTED_ERRORS: f64 = 8.0;

/// The same diagnostic for the per-request count test, which takes every error to come from
/// the canary independently with a probability set by the split and the rate ratio. Its errors
/// are batched until each arm expects [`MIN_EXPECTED_ERRORS`] under equal rates; a batch's
/// log-ratio `ln((c + ½)/(b + ½)) − ln(ρ/(1 − ρ))` estimates the log rate ratio with variance
/// about `1/(c + ½) + 1/(b + ½)` (Woolf's), and the batches' weighted scatter is read as above
/// (Cochran's Q). Error rates that wander on their own in each arm make the errors clump, and
/// the batches scatter more than independent requests explain.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ErrorScatter {
    canary: u64,
    baseline: u64,
    /// `Σ n_t ρ_t`: the canary errors the open batch expects under equal rates.
    expected_canary: f64,
    scatter: Scatter,
}

impl ErrorScatter {
    /// Adds one sample's errors, `c` of the canary and `b` of the baseline, at the canary's
    /// share `share` of the traffic.
    pub(crate) fn add(&mut self, c: u64, b: u64, share: f64) {
        self.add_closing(c, b, share, true);
    }

    /// As [`add`](Self::add), but the batch closes only if `may_close` too (a caller's own
    /// condition, such as a span of time); whether it closed.
    pub(crate) fn add_closing(&mut self, c: u64, b: u64, share: f64, may_close: bool) -> bool {
        self.canary = self.canary.saturating_add(c);
        self.baseline = self.baseline.saturating_add(b);
        let total = self.held();
        // At most the errors held: near `u64::MAX` the counts saturate and the floats do not.
        self.expected_canary = (self.expected_canary + (c as f64 + b as f64) * share).min(total);
        if !may_close
            || self.expected_canary < MIN_EXPECTED_ERRORS
            || total - self.expected_canary < MIN_EXPECTED_ERRORS
        {
            return false;
        }
        let (c, b) = (self.canary as f64 + 0.5, self.baseline as f64 + 0.5);
        let rho = self.expected_canary / total;
        self.scatter
            .push((c / b).ln() - (rho / (1.0 - rho)).ln(), 1.0 / c + 1.0 / b);
        *self = ErrorScatter {
            scatter: self.scatter,
            ..ErrorScatter::default()
        };
        true
    }

    /// How far the open batch has come toward holding its errors, in `[0, 1]`: the errors its
    /// smaller arm expects over [`MIN_EXPECTED_ERRORS`].
    pub(crate) fn open_progress(&self) -> f64 {
        let smaller = self.expected_canary.min(self.held() - self.expected_canary);
        (smaller / MIN_EXPECTED_ERRORS).clamp(0.0, 1.0)
    }

    /// Checks errors read back from a saved state (see [`Scatter::restore`]): the errors the
    /// open batch expects in the canary must be a finite number `>= 0`, or the batch would
    /// never close, or close on a log-ratio of no errors. Nor may they exceed the errors the
    /// batch holds: each error adds at most 1 (its share of the traffic), so more is no batch
    /// of this test, and its canary share above 1 would close the batch on a log-ratio that is
    /// not a number, dropped without a word. `path` names the errors in messages.
    pub(crate) fn restore(&mut self, path: &str) -> Result<()> {
        if !(self.expected_canary.is_finite() && self.expected_canary >= 0.0) {
            return Err(Error::invalid_input(
                format!("{path}.expectedCanary"),
                self.expected_canary,
                "must be a finite number of expected errors >= 0",
            ));
        }
        // A sum of `n · share` with `share <= 1` never rounds above the sum of the `n`, and
        // beyond 2⁵³ errors it is kept at most the errors held.
        if self.expected_canary > self.held() {
            return Err(Error::invalid_input(
                format!("{path}.expectedCanary"),
                self.expected_canary,
                format!(
                    "must be at most the errors the open batch holds ({} canary + {} \
                     baseline): each error is expected in the canary with at most \
                     probability 1",
                    self.canary, self.baseline
                ),
            ));
        }
        self.scatter.restore(&format!("{path}.scatter"))
    }

    /// The errors the open batch holds, summed in floats so that the sum does not saturate.
    fn held(&self) -> f64 {
        self.canary as f64 + self.baseline as f64
    }

    /// The closed batches' scatter.
    pub(crate) fn scatter(&self) -> &Scatter {
        &self.scatter
    }

    /// As [`Scatter::excess`], over the closed batches.
    pub(crate) fn excess(&self) -> Option<f64> {
        self.scatter.excess()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ratio_is_the_weighted_variance_over_the_stated_one() {
        let mut s = Scatter::default();
        for (d, v) in [(1.0, 1.0), (3.0, 1.0), (2.0, 0.5)] {
            s.push(d, v);
        }
        // Weights 1, 1, 2: mean 2, squares 1 + 1 + 0 = 2 over 2 degrees of freedom.
        assert!((s.ratio().unwrap() - 1.0).abs() < 1e-12);
        s.push(f64::NAN, 1.0);
        s.push(1.0, 0.0);
        assert_eq!(s.n, 3);
    }

    #[test]
    fn a_restored_scatter_takes_rounding_noise_and_refuses_the_impossible() {
        let mut s = Scatter::default();
        for (d, v) in [(1.0, 1.0), (3.0, 1.0)] {
            s.push(d, v);
        }
        let saved = serde_json::to_value(s).unwrap();
        let with = |field: &str, v: f64| {
            let mut edited = saved.clone();
            edited[field] = serde_json::json!(v);
            let mut r: Scatter = serde_json::from_value(edited).unwrap();
            r.restore("latencyTest.scatter").map(|()| r)
        };
        let r = with("sumSq", -4e-18).unwrap();
        assert_eq!(r.sum_sq, 0.0);
        assert_eq!(with("sumSq", 2.0).unwrap(), s);
        for (field, v) in [("sumSq", -0.5), ("weight", -1.0)] {
            let msg = with(field, v).unwrap_err().to_string();
            assert!(
                msg.contains(&format!("latencyTest.scatter.{field}")),
                "{msg}"
            );
        }
        // NaN and infinities are not JSON; a state read from another format can hold them.
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            for (field, r) in [
                ("sumSq", Scatter { sum_sq: v, ..s }),
                ("mean", Scatter { mean: v, ..s }),
                ("weight", Scatter { weight: v, ..s }),
            ] {
                let msg = { r }.restore("x").unwrap_err().to_string();
                assert!(msg.contains(&format!("x.{field}")), "{msg}");
            }
        }
        // Batches counted with no weight behind them, or scatter of a single batch.
        for (r, field) in [
            (Scatter { weight: 0.0, ..s }, "weight"),
            (
                Scatter {
                    n: 0,
                    weight: 2.0,
                    ..s
                },
                "weight",
            ),
            (
                Scatter {
                    n: 10,
                    weight: 0.0,
                    mean: 0.0,
                    sum_sq: 0.0,
                },
                "weight",
            ),
            (Scatter { n: 1, ..s }, "sumSq"),
        ] {
            let msg = { r }.restore("x").unwrap_err().to_string();
            assert!(msg.contains(&format!("x.{field}")), "{msg}");
        }
        assert!(Scatter::default().restore("x").is_ok());
        let mut e = ErrorScatter {
            expected_canary: f64::NAN,
            ..ErrorScatter::default()
        };
        let msg = e.restore("countTest.scatter").unwrap_err().to_string();
        assert!(msg.contains("countTest.scatter.expectedCanary"), "{msg}");
        e.expected_canary = 1.0;
        e.canary = 1;
        e.scatter.sum_sq = -1.0;
        let msg = e.restore("countTest.scatter").unwrap_err().to_string();
        assert!(msg.contains("countTest.scatter.scatter.sumSq"), "{msg}");
    }

    #[test]
    fn pushes_never_leave_the_sum_of_squares_below_zero() {
        // `d·w/w` rounds a hair past `d` here: the term added is about -9e-21 unless clamped.
        let mut s = Scatter::default();
        s.push(3.968_183_918_281_253_5, 202_242.784_161_184_97);
        assert!(s.sum_sq >= 0.0, "{}", s.sum_sq);
    }

    #[test]
    fn a_variance_whose_weight_is_infinite_is_ignored() {
        let mut s = Scatter::default();
        s.push(1.0, 1e-320);
        s.push(2.0, 1.0);
        s.push(4.0, 1.0);
        assert_eq!((s.n, s.weight, s.mean, s.sum_sq), (2, 2.0, 3.0, 2.0));
        assert!(s.restore("x").is_ok());
    }

    #[test]
    fn error_batches_close_once_both_arms_expect_eight_errors() {
        let mut e = ErrorScatter::default();
        // At a 20% share a batch needs 40 errors: 8 expected in the canary, 32 in the baseline.
        for _ in 0..3 {
            e.add(2, 8, 0.2);
        }
        assert_eq!(e.scatter.n, 0);
        e.add(2, 8, 0.2);
        assert_eq!((e.scatter.n, e.canary, e.baseline), (1, 0, 0));
        // Errors exactly as the split predicts, at any share, scatter not at all.
        for k in 0..200u64 {
            let share = if k % 2 == 0 { 0.2 } else { 0.5 };
            let (c, b) = if k % 2 == 0 { (8, 32) } else { (8, 8) };
            e.add(c, b, share);
        }
        assert!(e.scatter.ratio().is_some_and(|r| r < 0.01));
        assert_eq!(e.excess(), None);
    }

    #[test]
    fn clumped_errors_are_excess_scatter() {
        // At an even split, batches of 16 errors that all come from one arm or the other:
        // independent requests would split them about 8:8.
        let mut e = ErrorScatter::default();
        for k in 0..20 {
            let (c, b) = if k % 2 == 0 { (14, 2) } else { (2, 14) };
            e.add(c, b, 0.5);
        }
        assert!(
            e.excess().is_some_and(|r| r > 5.0),
            "{:?}",
            e.scatter.ratio()
        );
    }

    #[test]
    fn a_large_common_shift_is_no_scatter() {
        let mut s = Scatter::default();
        for k in 0..1_000 {
            let noise = if k % 2 == 0 { 1e-3 } else { -1e-3 };
            s.push(5.0 + noise, 1e-6);
        }
        let r = s.ratio().unwrap();
        assert!((r - 1.0).abs() < 0.01, "{r}");
        assert_eq!(s.excess(), None);
    }

    #[test]
    fn excess_needs_enough_batches_and_a_significant_ratio() {
        let mut s = Scatter::default();
        for k in 0..9 {
            s.push(if k % 2 == 0 { 3.0 } else { -3.0 }, 1.0);
        }
        assert_eq!(s.excess(), None, "nine batches are too few");
        s.push(3.0, 1.0);
        assert!(s.excess().is_some_and(|r| r > 9.0));
        // A ratio of 1.5 is chance over 10 batches but not over 400.
        let mut few = Scatter::default();
        let mut many = Scatter::default();
        for k in 0..400 {
            let d = if k % 2 == 0 {
                1.5f64.sqrt()
            } else {
                -(1.5f64.sqrt())
            };
            if k < 10 {
                few.push(d, 1.0);
            }
            many.push(d, 1.0);
        }
        assert_eq!(few.excess(), None);
        assert!(many.excess().is_some_and(|r| (r - 1.5).abs() < 0.01));
    }
}
