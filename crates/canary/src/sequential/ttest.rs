//! The sequential t-test: an anytime-valid test of a mean with an **unknown variance**, for
//! per-batch statistics (batch log-ratios of error counts, batch log-medians of latency).
//!
//! With batch statistics `x₁, x₂, …` modelled as independent `N(μ, σ²)` with `σ` unknown, the
//! Bayes factor of `μ ≠ μ₀` against `μ = μ₀` with the right-Haar prior `1/σ` on the scale and a
//! `N(0, g)` prior on the standardized effect `(μ − μ₀)/σ` is, after `n ≥ 2` batches with
//! t-statistic `t` and `ν = n − 1`,
//!
//! ```text
//! BF_n = (1 + n·g)^(−1/2) · [(1 + t²/ν) / (1 + t²/(ν(1 + n·g)))]^((ν + 1)/2)
//! ```
//!
//! (Rouder et al. 2009 with a fixed `g`). Because the prior on the scale is the right-Haar measure
//! of the scale group, this Bayes factor is a test martingale for the scale-invariant data
//! (Lai 1976; Pérez-Ortiz, Lardy, de Heide & Grünwald 2024), so `P(sup_n BF_n ≥ 1/α) ≤ α` under the
//! null whatever σ is: the nuisance variance is estimated, never assumed known. The state is three
//! numbers (Welford's running mean and sum of squares).

use serde::{Deserialize, Serialize};

use crate::judge::Interval;
use crate::{Error, Result};

/// The running state of a sequential t-test against `μ₀`. Its owner checks a state read back
/// ([`SequentialT::check`]), naming the test's place in the owner's state: a prior variance
/// other than the settings', a mean that is not finite, or a negative sum of squares, would make
/// every Bayes factor NaN or one nobody configured, and a test that can never reject would pass
/// for a working one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct SequentialT {
    /// The prior variance `g` of the standardized effect.
    g: f64,
    n: u64,
    mean: f64,
    /// Σ (x − mean)².
    m2: f64,
}

impl SequentialT {
    pub(crate) fn new(g: f64) -> Self {
        SequentialT {
            g,
            n: 0,
            mean: 0.0,
            m2: 0.0,
        }
    }

    /// Adds one batch statistic (ignored unless finite).
    pub(crate) fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        self.n = self.n.saturating_add(1);
        let d = x - self.mean;
        self.mean += d / self.n as f64;
        self.m2 += d * (x - self.mean);
    }

    /// Checks a test read back. Its prior must be the one `configured` by its owner's
    /// settings (the test keeps its own copy, and one edited apart from the settings would
    /// judge with a prior nobody configured); its mean must be finite and its sum of squares a
    /// finite number `>= 0`, and both 0 where no batch (or, for the sum, only one) made them.
    /// `path` names the test where its owner's state holds it
    /// (`latencyTest.between`), so that an error names the field as the saved state spells it.
    pub(crate) fn check(&self, path: &str, configured: f64) -> Result<()> {
        if self.g != configured {
            return Err(Error::invalid_input(
                format!("{path}.g"),
                self.g,
                format!("must equal config.priorVariance ({configured})"),
            ));
        }
        if !self.mean.is_finite() {
            return Err(Error::invalid_input(
                format!("{path}.mean"),
                self.mean,
                "must be a finite mean of the batch statistics",
            ));
        }
        if !(self.m2.is_finite() && self.m2 >= 0.0) {
            return Err(Error::invalid_input(
                format!("{path}.m2"),
                self.m2,
                "must be a finite sum of squared deviations >= 0",
            ));
        }
        // Welford's sums start at 0 and one batch has no spread: a mean before any batch, or a
        // spread below two, would stay in the sums pushed on and skew every later variance.
        if self.n == 0 && self.mean != 0.0 {
            return Err(Error::invalid_input(
                format!("{path}.mean"),
                self.mean,
                "must be 0 before any batch (n = 0)",
            ));
        }
        if self.n < 2 && self.m2 != 0.0 {
            return Err(Error::invalid_input(
                format!("{path}.m2"),
                self.m2,
                format!("must be 0 below two batches (n = {})", self.n),
            ));
        }
        Ok(())
    }

    pub(crate) fn n(&self) -> u64 {
        self.n
    }

    pub(crate) fn mean(&self) -> f64 {
        self.mean
    }

    /// The sample standard deviation (NaN below two batches).
    pub(crate) fn sd(&self) -> f64 {
        if self.n < 2 {
            return f64::NAN;
        }
        (self.m2 / (self.n - 1) as f64).sqrt()
    }

    /// The t-statistic against `mu0` (±inf when every batch was identical and differs from
    /// `mu0`, 0 when identical and equal). The Bayes factor of an infinite `t` is its finite
    /// limit (see [`log_bf_t`]): a handful of identical batches is not proof.
    fn t(&self, mu0: f64) -> f64 {
        let se = self.sd() / (self.n as f64).sqrt();
        let diff = self.mean - mu0;
        if se > 0.0 {
            diff / se
        } else if diff == 0.0 {
            0.0
        } else {
            diff.signum() * f64::INFINITY
        }
    }

    /// `ln BF` of the mixture against `μ = mu0`; 0 below two batches.
    pub(crate) fn log_bf(&self, mu0: f64) -> f64 {
        if self.n < 2 {
            return 0.0;
        }
        log_bf_t(self.t(mu0), self.n, self.g)
    }

    /// The confidence sequence `{μ₀ : BF(μ₀) < 1/α}` for the mean; `None` below two batches or
    /// while it is still the whole line (no `μ₀` reaches `1/α` yet). Batches without any spread
    /// give the single point of their mean once the Bayes factor's bound allows it (every other
    /// `μ₀` then has that bound as its Bayes factor).
    pub(crate) fn interval(&self, alpha: f64) -> Option<Interval> {
        let sd = self.sd();
        if self.n < 2 || sd.is_nan() {
            return None;
        }
        let target = (1.0 / alpha).ln();
        if sd == 0.0 {
            return (log_bf_t(f64::INFINITY, self.n, self.g) >= target).then_some(Interval {
                lower: self.mean,
                upper: self.mean,
                level: 1.0 - alpha,
            });
        }
        // BF grows with |t|: find t* with ln BF(t*) = ln(1/α) by bisection.
        let (mut lo, mut hi) = (0.0f64, 1.0f64);
        while log_bf_t(hi, self.n, self.g) < target {
            hi *= 2.0;
            if hi > 1e12 {
                return None;
            }
        }
        for _ in 0..100 {
            let mid = 0.5 * (lo + hi);
            if log_bf_t(mid, self.n, self.g) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let half = hi * sd / (self.n as f64).sqrt();
        Some(Interval {
            lower: self.mean - half,
            upper: self.mean + half,
            level: 1.0 - alpha,
        })
    }
}

/// `ln BF` as a function of the t-statistic, `n ≥ 2` batches and the prior variance `g`. It
/// grows with `|t|` towards `(ν/2)·ln(1 + n·g)`, its value at an infinite `t`: after `n`
/// batches no data can give more.
fn log_bf_t(t: f64, n: u64, g: f64) -> f64 {
    let nu = (n - 1) as f64;
    let ng1 = 1.0 + n as f64 * g;
    if t.is_infinite() {
        return 0.5 * nu * ng1.ln();
    }
    let t2 = t * t;
    -0.5 * ng1.ln() + 0.5 * (nu + 1.0) * ((t2 / nu).ln_1p() - (t2 / (nu * ng1)).ln_1p())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bayes_factor_is_below_one_at_zero_and_grows_with_t() {
        assert!(log_bf_t(0.0, 10, 1.0) < 0.0);
        assert!(log_bf_t(2.0, 10, 1.0) < log_bf_t(4.0, 10, 1.0));
        // A t of 5 after 10 batches is strong evidence.
        assert!(log_bf_t(5.0, 10, 1.0) > (20.0f64).ln());
    }

    #[test]
    fn interval_covers_the_mean_and_shrinks() {
        let mut s = SequentialT::new(1.0);
        for i in 0..10 {
            s.push(1.0 + if i % 2 == 0 { 0.1 } else { -0.1 });
        }
        let a = s.interval(0.05).unwrap();
        for i in 0..90 {
            s.push(1.0 + if i % 2 == 0 { 0.1 } else { -0.1 });
        }
        let b = s.interval(0.05).unwrap();
        assert!(a.contains(1.0) && b.contains(1.0));
        assert!(b.upper - b.lower < a.upper - a.lower);
        assert!(s.log_bf(0.0) > 100.0 && s.log_bf(1.0) < 0.0);
    }

    #[test]
    fn identical_batches_are_strong_evidence_only_once_there_are_enough() {
        let mut s = SequentialT::new(1.0);
        let target = 20f64.ln();
        // With g = 1 the bound (1 + n)^((n − 1)/2) first reaches 20 at five batches.
        for n in 1..=5u64 {
            s.push(0.5);
            let bound = if n < 2 {
                0.0
            } else {
                0.5 * (n - 1) as f64 * (1.0 + n as f64).ln()
            };
            assert!((s.log_bf(0.0) - bound).abs() < 1e-12, "n = {n}");
            assert_eq!(s.log_bf(0.0) >= target, n >= 5, "n = {n}");
            assert_eq!(s.interval(0.05).is_some(), n >= 5, "n = {n}");
        }
        let i = s.interval(0.05).unwrap();
        assert_eq!((i.lower, i.upper), (0.5, 0.5));
        assert!(s.log_bf(0.5) < 0.0);
    }

    #[test]
    fn the_bayes_factor_approaches_its_bound_as_t_grows() {
        for n in [2u64, 4, 10] {
            let bound = log_bf_t(f64::INFINITY, n, 4.0);
            let big = log_bf_t(1e8, n, 4.0);
            assert!(big < bound + 1e-9 && bound - big < 1e-6, "{big} vs {bound}");
        }
    }

    #[test]
    fn a_test_read_back_is_checked_under_its_owner_s_path() {
        let mut s = SequentialT::new(4.0);
        s.push(1.0);
        s.push(2.0);
        assert!(s.check("owner.t", 4.0).is_ok());
        let e = s.check("owner.t", 1.0).unwrap_err().to_string();
        assert!(
            e.contains("owner.t.g") && e.contains("priorVariance"),
            "{e}"
        );
        for (bad, field) in [
            (
                SequentialT {
                    mean: f64::NAN,
                    ..s
                },
                "owner.t.mean",
            ),
            (
                SequentialT {
                    mean: f64::NEG_INFINITY,
                    ..s
                },
                "owner.t.mean",
            ),
            (SequentialT { m2: -1.0, ..s }, "owner.t.m2"),
            (
                SequentialT {
                    m2: f64::INFINITY,
                    ..s
                },
                "owner.t.m2",
            ),
            (SequentialT { g: f64::NAN, ..s }, "owner.t.g"),
        ] {
            let e = bad.check("owner.t", 4.0).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
    }

    /// A mean or a spread that no batch made (before any batch, or a spread of one batch) is
    /// refused: pushed on, it would stay in the sum of squares, and the Bayes factors would
    /// weigh batches by a variance they never had.
    #[test]
    fn a_test_read_back_with_a_mean_or_spread_of_batches_it_never_had_is_refused() {
        let fresh = SequentialT::new(4.0);
        let mut one = fresh;
        one.push(0.7);
        for (bad, field) in [
            (SequentialT { m2: 5.0, ..fresh }, "owner.t.m2"),
            (SequentialT { mean: 3.0, ..fresh }, "owner.t.mean"),
            (SequentialT { m2: 0.5, ..one }, "owner.t.m2"),
        ] {
            let e = bad.check("owner.t", 4.0).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        assert!(fresh.check("owner.t", 4.0).is_ok() && one.check("owner.t", 4.0).is_ok());
    }

    #[test]
    fn non_finite_values_are_ignored() {
        let mut s = SequentialT::new(1.0);
        s.push(f64::NAN);
        s.push(f64::INFINITY);
        assert_eq!(s.n(), 0);
        assert_eq!(s.log_bf(0.0), 0.0);
        assert!(s.interval(0.05).is_none());
    }
}
