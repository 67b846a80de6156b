//! Power-aware pacing: raise the canary's weight only once the current step could have caught a
//! regression of a stated size, and keep the expected exposure to a bad version within a budget.
//!
//! For the count test, a canary whose error rate is `r` times the baseline's makes each error
//! come from the canary with probability `θ₁ = ρr/(ρr + 1 − ρ)` instead of `θ₀ = ρ` (share `ρ`).
//! The likelihood ratio that knows `r` gains `KL(θ₁‖θ₀)` nats per error on average and rejects at
//! `ln(1/α)`, so about
//!
//! ```text
//! N(ρ) = ln(1/α) / KL(θ₁ ‖ θ₀)
//! ```
//!
//! errors are needed to detect the regression at share `ρ` (the best any anytime-valid test can
//! do; the sequential judge needs a little more, hence [`Pacing::evidence_factor`]). Until the
//! current step has seen `evidence_factor · N(ρ)` errors, a bad version could still be hiding,
//! and raising the weight would expose more users to it: the controller holds instead.
//!
//! Errors arrive at `λ·p_b·((1 − ρ) + ρr)` and canary requests at `λρ`, so the expected number of
//! canary requests served before detection is
//!
//! ```text
//! X(ρ) = N(ρ) · ρ / (p_b · ((1 − ρ) + ρr))
//! ```
//!
//! whatever the load. With an [`Pacing::exposure_budget`], a weight increase goes only as far as
//! the largest weight whose `X` stays within the budget (with `p_b` estimated from the baseline's
//! observed counts); when no higher weight fits, the weight is held and the evidence says why.

use serde::{Deserialize, Serialize};
use serin_signals::Metric;

use crate::{Error, Result};

/// Settings of power-aware pacing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pacing {
    /// The count metric whose errors measure the evidence. Default `error_rate`.
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// The error-rate ratio (canary / baseline) that must be detectable before each increase,
    /// above 1. Default `2`.
    #[serde(default = "default_ratio")]
    pub detectable_ratio: f64,
    /// The `α` of the calculation (use the judges' `α`). Default `0.05`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// Multiple of the oracle's expected errors a step must gather, at least 1. Default `1.5`.
    #[serde(default = "default_factor")]
    pub evidence_factor: f64,
    /// The largest expected number of canary requests served before a regression of the
    /// detectable size is caught, at any weight; `None` for no budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_budget: Option<f64>,
}

fn default_metric() -> Metric {
    Metric::ErrorRate
}
fn default_ratio() -> f64 {
    2.0
}
fn default_alpha() -> f64 {
    0.05
}
fn default_factor() -> f64 {
    1.5
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            metric: default_metric(),
            detectable_ratio: default_ratio(),
            alpha: default_alpha(),
            evidence_factor: default_factor(),
            exposure_budget: None,
        }
    }
}

impl Pacing {
    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(self.detectable_ratio.is_finite() && self.detectable_ratio > 1.0) {
            return Err(Error::invalid_config(
                format!("{path}.detectableRatio"),
                self.detectable_ratio,
                "must be a finite error-rate ratio above 1",
            ));
        }
        crate::sequential::check_alpha(&format!("{path}.alpha"), self.alpha)?;
        if !(self.evidence_factor.is_finite() && self.evidence_factor >= 1.0) {
            return Err(Error::invalid_config(
                format!("{path}.evidenceFactor"),
                self.evidence_factor,
                "must be a finite multiple >= 1",
            ));
        }
        if let Some(b) = self.exposure_budget
            && !(b.is_finite() && b > 0.0)
        {
            return Err(Error::invalid_config(
                format!("{path}.exposureBudget"),
                b,
                "must be a finite number of requests > 0",
            ));
        }
        Ok(())
    }

    /// `N(ρ)`: the errors the known-effect likelihood ratio needs on average at canary share
    /// `share` (infinite outside `(0, 1)`).
    pub fn oracle_errors(&self, share: f64) -> f64 {
        if !(share > 0.0 && share < 1.0) {
            return f64::INFINITY;
        }
        let r = self.detectable_ratio;
        let t0 = share;
        let t1 = share * r / (share * r + 1.0 - share);
        let kl = t1 * (t1 / t0).ln() + (1.0 - t1) * ((1.0 - t1) / (1.0 - t0)).ln();
        (1.0 / self.alpha).ln() / kl
    }

    /// The errors a step at `share` must gather before the weight may rise:
    /// `evidence_factor · N(share)`; zero when the canary has no traffic yet.
    pub fn errors_required(&self, share: f64) -> f64 {
        if share <= 0.0 {
            return 0.0;
        }
        self.evidence_factor * self.oracle_errors(share)
    }

    /// `X(ρ)`: the expected canary requests served before a regression of the detectable size is
    /// caught at `share`, given the baseline's error rate.
    pub fn expected_exposure(&self, share: f64, baseline_error_rate: f64) -> f64 {
        let r = self.detectable_ratio;
        if baseline_error_rate.is_nan() || baseline_error_rate <= 0.0 {
            return f64::INFINITY;
        }
        self.evidence_factor * self.oracle_errors(share) * share
            / (baseline_error_rate * ((1.0 - share) + share * r))
    }

    /// The weight to move to when the policy asks to go from `current` to `target` percent:
    /// the largest weight in `(current, target]` whose expected exposure fits the budget, or
    /// `current` when none does. Without a budget, or without an estimate of the baseline's error
    /// rate, `target`.
    pub fn cap_weight(&self, current: u8, target: u8, baseline_error_rate: Option<f64>) -> u8 {
        let (Some(budget), Some(p)) = (self.exposure_budget, baseline_error_rate) else {
            return target;
        };
        if target <= current {
            return target;
        }
        (current + 1..=target)
            .rev()
            .find(|w| self.expected_exposure(f64::from(*w) / 100.0, p) <= budget)
            .unwrap_or(current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oracle_errors_match_the_likelihood_ratio_drift() {
        let p = Pacing::default();
        // ρ = 0.5, r = 2: θ₁ = 2/3; KL = 2/3 ln(4/3) + 1/3 ln(2/3) = 0.0566; ln 20 / KL ≈ 52.9.
        assert!(
            (p.oracle_errors(0.5) - 52.9).abs() < 0.2,
            "{}",
            p.oracle_errors(0.5)
        );
        assert!(p.oracle_errors(0.05) > p.oracle_errors(0.5));
        assert_eq!(p.errors_required(0.0), 0.0);
        assert!(p.oracle_errors(1.0).is_infinite());
    }

    #[test]
    fn the_budget_caps_the_weight() {
        let p = Pacing {
            exposure_budget: Some(4_000.0),
            ..Pacing::default()
        };
        let capped = p.cap_weight(5, 50, Some(0.005));
        assert!(capped > 5 && capped < 50, "{capped}");
        assert!(p.expected_exposure(f64::from(capped) / 100.0, 0.005) <= 4_000.0);
        assert!(p.expected_exposure(f64::from(capped + 1) / 100.0, 0.005) > 4_000.0);
        assert_eq!(p.cap_weight(5, 50, None), 50);
        let tiny = Pacing {
            exposure_budget: Some(1.0),
            ..Pacing::default()
        };
        assert_eq!(tiny.cap_weight(5, 50, Some(0.005)), 5);
    }

    #[test]
    fn bad_settings_name_the_field() {
        let p = Pacing {
            detectable_ratio: 1.0,
            ..Pacing::default()
        };
        let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
        assert!(msg.contains("canaryPolicy.pacing.detectableRatio"), "{msg}");
    }
}
