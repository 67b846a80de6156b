//! The evidence a canary must show before it is promoted.
//!
//! The judges compare the canary with the baseline, and most of the time a healthy canary ends its
//! steps with its judges *inconclusive*, not passing: with a zero margin, "no worse than the
//! baseline" can never be shown, only "worse" can. Promoting on "no judge fails" is therefore only
//! safe once the judges had the data to fail a bad canary. Under scarce traffic they may not have:
//! a canary that answered 3 requests with 1 error looks like nothing to a comparison and like a
//! disaster to anyone reading the numbers.
//!
//! The [`PromotionGate`] closes that gap with an absolute bound: the canary is promoted only once
//! its own error rate is shown below `maxErrorRate`, with the same anytime-valid guarantee as the
//! judges (checked after every observation, the chance of ever promoting a canary whose error rate
//! is at least `maxErrorRate` stays ≤ α). Until then the controller holds, so low traffic extends
//! the analysis (up to the rollout's deadlines) instead of guessing.
//!
//! The test is a beta-binomial mixture likelihood ratio against `p = maxErrorRate`, with a
//! Beta(1, (1 − p)/p) mixing prior whose mean is `p`:
//!
//! ```text
//! E = B(1 + e, (1 − p)/p + n − e) / B(1, (1 − p)/p)  /  (pᵉ (1 − p)ⁿ⁻ᵉ)
//! ```
//!
//! after `n` requests with `e` errors. For each rate `p' ≥ p` the likelihood ratio against `p'` is
//! a nonnegative martingale under `p'`, and when `e/n < p` it is smallest at `p' = p`; so by
//! Ville's inequality, promoting once `E ≥ 1/α` (with `e/n < p`) promotes a canary at any rate
//! `≥ p` with probability at most α. At `p` = 5% and α = 0.05, about 93 requests without an error
//! suffice; each error raises the count needed.

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp};
use statrs::function::beta::ln_beta;

use super::pacing::{check_counts_metric, percent};
use crate::judge::{ArmValues, Effect, Evidence, Interval, Statistic};
use crate::{Error, Result};

/// The name the gate's [`Evidence`] goes by, in the place of a judge's.
const NAME: &str = "promotion-gate";

/// The absolute bound a canary's error rate must be shown below before promotion.
///
/// ```
/// use serin_canary::controller::PromotionGate;
///
/// let gate = PromotionGate::new(0.05, 0.05)?;
/// assert!(!gate.shown(3, 1)); // 3 requests, 1 error: nothing is shown yet
/// assert!(!gate.shown(40, 0)); // clean, but too few requests
/// assert!(gate.shown(100, 0));
/// assert!(gate.shown(400, 4)); // 1% errors over enough requests
/// assert!(!gate.shown(10_000, 600)); // 6% is above the bound, however much data
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PromotionGate {
    /// The count metric whose canary requests and errors are tested. Default `error_rate`.
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// The error rate, as a fraction in `(0, 1)`, the canary must be shown below.
    pub max_error_rate: f64,
    /// The chance of ever promoting a canary at or above `maxErrorRate`. Default `0.05`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
}

fn default_metric() -> Metric {
    Metric::ErrorRate
}

fn default_alpha() -> f64 {
    0.05
}

impl PromotionGate {
    /// A gate on the error rate: `max_error_rate` in `(0, 1)`, `alpha` in `(0, 1)`.
    pub fn new(max_error_rate: f64, alpha: f64) -> Result<Self> {
        let gate = PromotionGate {
            metric: default_metric(),
            max_error_rate,
            alpha,
        };
        gate.validate("promotion")?;
        Ok(gate)
    }

    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(self.max_error_rate > 0.0 && self.max_error_rate < 1.0) {
            return Err(Error::invalid_config(
                format!("{path}.maxErrorRate"),
                self.max_error_rate,
                "must be a fraction in (0, 1) (0.05 = 5%)",
            ));
        }
        crate::sequential::check_alpha(&format!("{path}.alpha"), self.alpha)?;
        check_counts_metric(&format!("{path}.metric"), &self.metric)
    }

    /// The e-value against "the canary's error rate is at least `maxErrorRate`" after
    /// `requests` requests with `errors` errors (1 when nothing speaks against it).
    pub fn e_value(&self, requests: u64, errors: u64) -> f64 {
        let e = errors.min(requests) as f64;
        let n = requests as f64;
        let p = self.max_error_rate;
        if n == 0.0 || e / n >= p {
            return 1.0;
        }
        let b0 = (1.0 - p) / p;
        let ln_e =
            ln_beta(1.0 + e, b0 + n - e) - ln_beta(1.0, b0) - e * p.ln() - (n - e) * (-p).ln_1p();
        ln_e.exp().max(1.0)
    }

    /// Whether `requests` requests with `errors` errors show the error rate below the bound.
    pub fn shown(&self, requests: u64, errors: u64) -> bool {
        self.e_value(requests, errors) >= 1.0 / self.alpha
    }

    /// What `requests` canary requests with `errors` errors show, in words: the counts, whether
    /// they show the error rate below the bound, the e-value and the `1/α` it must reach.
    pub(crate) fn showing(&self, requests: u64, errors: u64) -> String {
        let verb = if self.shown(requests, errors) {
            "shows"
        } else {
            "does not yet show"
        };
        format!(
            "{errors} of {requests} canary requests failed, which {verb} its error rate below {}% \
             (e-value {}, {} needed)",
            percent(self.max_error_rate),
            crate::sequential::threshold_text(self.e_value(requests, errors)),
            crate::sequential::threshold_text(1.0 / self.alpha)
        )
    }

    /// The gate's evidence as of `at`, after `requests` canary requests with `errors` errors:
    /// the canary's observed error rate, with the interval `[0, maxErrorRate]` at level `1 − α`
    /// once the rate is shown below the bound (anytime-valid, as the judges' confidence
    /// sequences are), and the e-value with the `1/α` it is compared with.
    pub fn evidence(&self, requests: u64, errors: u64, at: Timestamp) -> Evidence {
        let errors = errors.min(requests);
        let rate = (requests > 0).then(|| errors as f64 / requests as f64);
        let shown = self.shown(requests, errors).then_some(Interval {
            lower: 0.0,
            upper: self.max_error_rate,
            level: 1.0 - self.alpha,
        });
        Evidence {
            sample_size: ArmValues::new(0, requests),
            estimates: ArmValues::new(None, rate),
            effects: vec![Effect {
                name: "errorRate".into(),
                estimate: rate.unwrap_or(f64::NAN),
                interval: shown,
            }],
            statistic: Some(Statistic::EValue(self.e_value(requests, errors))),
            threshold: Some(1.0 / self.alpha),
            summary: format!("{}.", self.showing(requests, errors)),
            ..Evidence::empty(NAME, self.metric.clone(), at)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn a_huge_e_value_is_written_with_an_exponent() {
        let gate = PromotionGate::new(0.05, 0.01).unwrap();
        let text = gate.showing(2_181, 8);
        assert!(text.contains("(e-value 4.21e34, 100 needed)"), "{text}");
        let small = gate.showing(20, 0);
        assert!(small.contains("does not yet show"), "{small}");
        let e = small
            .split("(e-value ")
            .nth(1)
            .and_then(|r| r.split(',').next());
        assert!(
            e.is_some_and(|e| e.parse::<f64>().is_ok_and(|v| v < 100.0) && !e.contains('e')),
            "{small}"
        );
    }

    #[test]
    fn the_bound_is_written_as_the_percentage_it_was_given() {
        // 0.07 · 100 is 7.000000000000001 in binary floating point.
        let gate = PromotionGate::new(0.07, 0.05).unwrap();
        let text = gate.showing(10, 0);
        assert!(text.contains("below 7% (e-value"), "{text}");
        let fine = PromotionGate::new(0.000_05, 0.05).unwrap().showing(10, 0);
        assert!(fine.contains("below 0.005% (e-value"), "{fine}");
    }

    #[test]
    fn bad_settings_are_rejected_with_their_path() {
        for (rate, alpha) in [(0.0, 0.05), (1.0, 0.05), (f64::NAN, 0.05), (0.05, 0.0)] {
            let err = PromotionGate::new(rate, alpha)
                .expect_err("invalid")
                .to_string();
            assert!(err.contains("promotion."), "{err}");
        }
    }

    #[test]
    fn evidence_shows_the_bound_as_an_interval_only_once_the_rate_is_shown_below_it() {
        let gate = PromotionGate::new(0.05, 0.05).expect("gate");
        let at = Timestamp::from_millis(1_000);
        let scarce = gate.evidence(3, 1, at);
        assert_eq!(scarce.primary_effect().and_then(|e| e.interval), None);
        assert!(
            scarce.summary.contains("does not yet show"),
            "{}",
            scarce.summary
        );
        let none = gate.evidence(0, 0, at);
        assert_eq!((none.estimates.canary, none.sample_size.canary), (None, 0));
        let clean = gate.evidence(400, 4, at);
        let shown = clean
            .primary_effect()
            .and_then(|e| e.interval)
            .expect("shown");
        assert_eq!((shown.lower, shown.upper), (0.0, 0.05));
        assert_eq!(clean.estimates.canary, Some(0.01));
        assert!(clean.summary.starts_with("4 of 400"), "{}", clean.summary);
    }

    #[test]
    fn clean_requests_needed_grow_as_the_bound_tightens() {
        let needed = |p: f64| {
            let g = PromotionGate::new(p, 0.05).expect("gate");
            (1..100_000u64).find(|n| g.shown(*n, 0)).expect("finite")
        };
        let (at5, at1) = (needed(0.05), needed(0.01));
        assert!((80..110).contains(&at5), "{at5}");
        assert!(at1 > 4 * at5, "{at1} vs {at5}");
    }

    #[test]
    fn a_canary_at_the_bound_is_almost_never_promoted_however_often_it_is_checked() {
        // 1,000 canaries at exactly the bound, each checked after every request for 5,000
        // requests: the share ever promoted must stay within α (plus sampling slack).
        let gate = PromotionGate::new(0.05, 0.05).expect("gate");
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let runs = 1_000;
        let mut promoted = 0;
        for _ in 0..runs {
            let mut errors = 0;
            for n in 1..=5_000u64 {
                errors += u64::from(rng.random_bool(0.05));
                if gate.shown(n, errors) {
                    promoted += 1;
                    break;
                }
            }
        }
        let rate = f64::from(promoted) / f64::from(runs);
        assert!(rate <= 0.05 + 0.02, "promoted {rate}");
    }

    #[test]
    fn a_healthy_canary_is_shown_below_the_bound() {
        let gate = PromotionGate::new(0.05, 0.05).expect("gate");
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let mut errors = 0;
        let shown_at = (1..=5_000u64).find(|n| {
            errors += u64::from(rng.random_bool(0.005));
            gate.shown(*n, errors)
        });
        assert!(shown_at.is_some_and(|n| n < 400), "{shown_at:?}");
    }
}
