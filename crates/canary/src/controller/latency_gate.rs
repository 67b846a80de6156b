//! The latency part of pacing's gate: raise the weight only once the latencies at the current
//! weight rule out a slowdown of a stated size, as the count gate does for errors.
//!
//! # The likelihood ratio
//!
//! Within one observation each arm's log latencies have a mean, `m_c` for the `n_c` canary
//! requests and `m_b` for the `n_b` baseline ones. Whatever the load does to both arms in that
//! window cancels in their difference `D = m_c − m_b`, which, with log latencies of spread `σ`
//! within each arm, is about `N(δ, σ²/w)`, `w = n_b·n_c/(n_b + n_c)`, when the canary is slower
//! by a factor `e^δ`. The likelihood ratio of a slowdown `δ₁ = ln(1 + detectable_shift)` against
//! none, over the observations at the current weight, is
//!
//! ```text
//! ln Λ = (δ₁·Σ w·D − δ₁²·Σ w / 2) / σ²
//! ```
//!
//! and the gate passes once `ln Λ ≤ ln β`: Wald's SPRT acceptance boundary, as for errors, so a
//! version exactly `detectable_shift` slower passes it with probability at most `β`.
//!
//! `σ²` is not assumed: it is an upper confidence bound on the variance pooled from the spread
//! within each arm of every observation of the rollout (the latency test's own bound), and the
//! gate holds until that rests on [`MIN_SPREAD_DOF`] degrees of freedom. An overstated `σ²`
//! shrinks `ln Λ` towards 0, which only makes the gate slower to pass, good versions and bad.
//!
//! A version as fast as the baseline passes after a pair weight `Σ w ≈ 2σ² ln(1/β)/δ₁²` (one
//! canary request beside many baseline ones weighs about 1); `w` grows by about `L·ρ(1 − ρ)` a
//! second at load `L` and share `ρ`. For log-normal latencies of spread 0.5 and
//! the default 10% that is 165: about three minutes at 20 requests/s and a 5% share, seconds at
//! 500. The errors' gate usually takes longer.
//!
//! Like the count gate and the default judges, it takes the requests of one observation as
//! independent: latencies whose level wanders per arm from second to second make `D` scatter
//! more than `σ²/w`, and the gate then passes a slow version more often than `β`.

use serde::{Deserialize, Serialize};
use serin_signals::Metric;

use crate::sequential::{LogMoments, Spread};
use crate::{Error, Result};

/// The degrees of freedom the pooled spread of log latencies needs before the gate may pass.
pub const MIN_SPREAD_DOF: u64 = 30;

/// Settings of the latency gate of [`Pacing`](super::Pacing).
///
/// ```
/// use serin_canary::controller::LatencyPacing;
///
/// // Rule out a canary 5% slower than the baseline before each raise.
/// let gate: LatencyPacing = serde_json::from_str(r#"{"detectableShift": 0.05}"#)?;
/// assert_eq!(gate.metric.as_str(), "latency");
/// assert!(gate.validate("pacing.latency").is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyPacing {
    /// The latency metric (sketches of both arms). Default `latency`.
    #[serde(default = "latency_metric")]
    pub metric: Metric,
    /// The slowdown of the canary's typical request (its latencies' geometric mean: their
    /// median, when log-normal) to rule out, as a fraction: `0.1` is 10% slower. Default `0.1`.
    #[serde(default = "default_shift")]
    pub detectable_shift: f64,
}

fn latency_metric() -> Metric {
    Metric::Latency
}
fn default_shift() -> f64 {
    0.1
}

impl Default for LatencyPacing {
    fn default() -> Self {
        LatencyPacing {
            metric: latency_metric(),
            detectable_shift: default_shift(),
        }
    }
}

impl LatencyPacing {
    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(self.detectable_shift.is_finite() && self.detectable_shift > 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.detectableShift"),
                self.detectable_shift,
                "must be a finite fraction above 0 (0.1 = 10% slower)",
            ));
        }
        Ok(())
    }

    /// `δ₁`, the log of the slowdown ruled out.
    fn log_shift(&self) -> f64 {
        self.detectable_shift.ln_1p()
    }

    /// About how much pair weight `Σ w` a canary as fast as the baseline gathers before the gate
    /// passes at `beta`, for log latencies of variance `log_variance`: `2σ² ln(1/β)/δ₁²`. The
    /// weight grows by about `L·ρ(1 − ρ)` a second at load `L` and canary share `ρ`.
    pub fn weight_to_pass(&self, log_variance: f64, beta: f64) -> f64 {
        let d = self.log_shift();
        2.0 * log_variance * (1.0 / beta).ln() / (d * d)
    }

    /// The gate's log likelihood ratio at the current weight, or `None` while the spread rests
    /// on fewer than [`MIN_SPREAD_DOF`] degrees of freedom.
    pub(crate) fn log_likelihood_ratio(&self, evidence: &LatencyEvidence) -> Option<f64> {
        if evidence.spread.dof() < MIN_SPREAD_DOF {
            return None;
        }
        let d = self.log_shift();
        let var = evidence.spread.upper();
        Some((d * evidence.shift - d * d * evidence.weight / 2.0) / var)
    }
}

/// What the latency gate has gathered: its sums at the current weight, and the spread of log
/// latencies within each arm over the whole rollout.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LatencyEvidence {
    /// `Σ w` at the current weight.
    weight: f64,
    /// `Σ w·D` at the current weight.
    shift: f64,
    spread: Spread,
}

impl LatencyEvidence {
    /// Adds one observation of each arm's log latencies.
    pub(crate) fn add(&mut self, baseline: &LogMoments, canary: &LogMoments) {
        self.spread.add(baseline);
        self.spread.add(canary);
        let (nb, nc) = (baseline.count() as f64, canary.count() as f64);
        if nb > 0.0 && nc > 0.0 {
            let w = nb * nc / (nb + nc);
            self.weight += w;
            self.shift += w * (canary.mean() - baseline.mean());
        }
    }

    /// Starts the current weight's sums afresh; the spread is kept.
    pub(crate) fn new_level(&mut self) {
        self.weight = 0.0;
        self.shift = 0.0;
    }

    /// `Σ w` at the current weight, and the pooled variance of log latencies (NaN without
    /// degrees of freedom).
    pub(crate) fn weight_and_variance(&self) -> (f64, f64) {
        (self.weight, self.spread.estimate())
    }

    /// The estimated slowdown at the current weight, as a fraction (`None` without pairs).
    pub(crate) fn estimated_shift(&self) -> Option<f64> {
        (self.weight > 0.0).then(|| (self.shift / self.weight).exp_m1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(n: u64, mean: f64, sd: f64) -> LogMoments {
        LogMoments::from_parts(n, mean, sd * sd).unwrap()
    }

    #[test]
    fn the_ratio_waits_for_the_spread_then_weighs_the_shift() {
        let gate = LatencyPacing::default();
        let mut ev = LatencyEvidence::default();
        // 19 + 1 values: 18 degrees of freedom, not enough.
        ev.add(&arm(19, 4.6, 0.5), &arm(1, 4.6, 0.0));
        assert_eq!(gate.log_likelihood_ratio(&ev), None);
        ev.add(&arm(19, 4.6, 0.5), &arm(1, 4.6, 0.0));
        let llr = gate.log_likelihood_ratio(&ev).unwrap();
        // No shift: −δ²Σw/(2σ²) with Σw = 2·19/20 and σ² a little above 0.25.
        let d = 1.1f64.ln();
        let plain = -d * d * 1.9 / (2.0 * 0.25);
        assert!(llr < 0.0 && llr > plain, "{llr} vs {plain}");
        // A canary exactly 10% slower drifts up instead.
        let mut slow = LatencyEvidence::default();
        for _ in 0..40 {
            slow.add(&arm(19, 4.6, 0.5), &arm(1, 4.6 + d, 0.0));
        }
        assert!(gate.log_likelihood_ratio(&slow).unwrap() > 0.0);
        // Σw = 40·19/20 so far; a fast canary needs about 2·0.25·ln 20/δ² ≈ 165.
        let (weight, var) = slow.weight_and_variance();
        assert!(
            (weight - 38.0).abs() < 1e-9 && (var - 0.25).abs() < 0.01,
            "{var}"
        );
        assert!((gate.weight_to_pass(0.25, 0.05) - 165.0).abs() < 1.0);
        assert!((slow.estimated_shift().unwrap() - 0.1).abs() < 1e-9);
        // A new weight keeps the spread and drops the sums.
        slow.new_level();
        assert_eq!(gate.log_likelihood_ratio(&slow), Some(0.0));
        assert_eq!(slow.estimated_shift(), None);
    }

    /// Runs of per-second observations at 20 requests/s and a 20% share, log-normal latencies of
    /// spread 0.5 with the canary slower by `shift`; the share of runs whose gate passes within
    /// `seconds`.
    fn pass_rate(shift: f64, runs: u32, seconds: u32) -> f64 {
        use rand::{Rng, SeedableRng};
        use rand_distr::StandardNormal;
        let gate = LatencyPacing::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // The arms' means are drawn; their spread is taken as known, which the gate's bound
        // on it barely moves at these degrees of freedom.
        let mean = |rng: &mut rand_chacha::ChaCha8Rng, n: u64, mu: f64| {
            let z: f64 = rng.sample(StandardNormal);
            LogMoments::from_parts(n, mu + 0.5 * z / (n as f64).sqrt(), 0.25).unwrap()
        };
        let passed = (0..runs)
            .filter(|_| {
                let mut ev = LatencyEvidence::default();
                (0..seconds).any(|_| {
                    let b = mean(&mut rng, 16, 4.6);
                    let c = mean(&mut rng, 4, 4.6 + shift.ln_1p());
                    ev.add(&b, &c);
                    gate.log_likelihood_ratio(&ev)
                        .is_some_and(|l| l <= 0.05f64.ln())
                })
            })
            .count();
        passed as f64 / f64::from(runs)
    }

    #[test]
    fn a_version_exactly_that_slow_rarely_passes_and_a_fast_one_does() {
        // Wald: at most β = 5% with exactly the slowdown; 2,000 runs put 3 sd at 1.5%.
        let slow = pass_rate(0.1, 2_000, 600);
        assert!(slow <= 0.065, "{slow}");
        // As fast as the baseline: Σw grows 3.2 a second and 165 suffices on average.
        let good = pass_rate(0.0, 500, 300);
        assert!(good >= 0.99, "{good}");
        assert!(pass_rate(0.25, 2_000, 600) <= slow);
    }

    #[test]
    fn bad_settings_name_the_field() {
        for shift in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let gate = LatencyPacing {
                detectable_shift: shift,
                ..LatencyPacing::default()
            };
            let msg = gate.validate("pacing.latency").unwrap_err().to_string();
            assert!(msg.contains("pacing.latency.detectableShift"), "{msg}");
        }
        let unknown = serde_json::from_str::<LatencyPacing>(r#"{"shift": 0.1}"#);
        assert!(unknown.is_err());
    }
}
