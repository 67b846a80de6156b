//! The latency part of pacing's gate: raise the weight only once the latencies at the current
//! weight rule out a slowdown of a stated size, as the count gate does for errors.
//!
//! # The likelihood ratio
//!
//! Within one observation each arm's log latencies have a mean, `m_c` for the `n_c` canary
//! requests and `m_b` for the `n_b` baseline ones. Whatever the load does to both arms in that
//! window cancels in their difference `D = m_c − m_b`, which, with log latencies of spread `σ_c`
//! and `σ_b` within the arms, is about `N(δ, v)`, `v = σ_c²/n_c + σ_b²/n_b`, when the canary is
//! slower by a factor `e^δ`. The likelihood ratio of a slowdown `δ₁ = ln(1 + detectable_shift)`
//! against none, over the observations at the current weight, is
//!
//! ```text
//! ln Λ = δ₁·Σ D/v − δ₁²·Σ 1/v / 2
//! ```
//!
//! and the gate passes once `ln Λ ≤ ln β`: Wald's SPRT acceptance boundary, as for errors, so a
//! version exactly `detectable_shift` slower passes it with probability at most `β`.
//!
//! The spreads are not assumed. Each arm's is pooled from its spread within every observation
//! of the rollout, and each observation's `v` is taken from the upper confidence bounds on them
//! that the latency test uses, as they stood before it (an arm whose spread grows, as a
//! regression's tail may make the canary's, weighs less). Observations count only once both
//! arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of freedom. An overstated `v` shrinks each
//! step of `ln Λ`, which only makes the gate slower to pass, good versions and bad.
//!
//! A version as fast as the baseline passes once the precision `Σ 1/v` reaches about
//! `2 ln(1/β)/δ₁²` ([`LatencyPacing::precision_to_pass`]: 660 for the default 10%), that is once
//! the standard error of its estimated shift is down to `δ₁/√(2 ln(1/β))`, about 4%. The
//! precision grows by about `L·ρ(1 − ρ)/σ²` a second at load `L` and share `ρ`: for log-normal
//! latencies of spread 0.5, about three minutes at 20 requests/s and a 5% share, seconds at 500.
//! The errors' gate usually takes longer.
//!
//! # Latencies that wander
//!
//! The ratio takes `D` to vary only as much as the requests in the observation explain. A
//! latency level that wanders on its own in each arm from one observation to the next (a busy
//! neighbour, a garbage collector) adds scatter they do not: at high traffic `v` is tiny and the
//! wander dominates. The gate measures that as the latency test's diagnostic does, the weighted
//! scatter of every counted `D` over the rollout against `v` (`Σ (D − D̄)²/v / (n − 1)`, about 1
//! or less without wander), and divides `ln Λ` by it (its upper confidence bound, read as the
//! spreads' are) when that exceeds 1: the likelihood ratio with each `v` widened by that factor.
//! It needs [`MIN_SCATTER_PAIRS`] counted observations first. Wander that is correlated from one observation to the next widens the sum's spread
//! more than the scatter shows, so at high traffic with strongly correlated wander the gate
//! passes a slow version more often than `β`.

use serde::{Deserialize, Serialize};
use serin_signals::Metric;

use crate::sequential::{LogMoments, Scatter, Spread};
use crate::{Error, Result};

/// The degrees of freedom each arm's pooled spread of log latencies needs before observations
/// count.
pub const MIN_SPREAD_DOF: u64 = 30;

/// The observations the gate counts before it may pass, so that their scatter is read from
/// some (ten at the orchestrator's default 30-second windows take five minutes).
pub const MIN_SCATTER_PAIRS: u64 = 10;

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

    /// About the precision `Σ 1/v` a canary as fast as the baseline gathers before the gate
    /// passes at `beta`: `2 ln(1/β)/δ₁²`. It grows by about `L·ρ(1 − ρ)/σ²` a second at load
    /// `L`, canary share `ρ` and spread `σ` of log latencies.
    pub fn precision_to_pass(&self, beta: f64) -> f64 {
        let d = self.log_shift();
        2.0 * (1.0 / beta).ln() / (d * d)
    }

    /// The gate's log likelihood ratio at the current weight, widened by the observations'
    /// excess scatter; `None` until both arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of
    /// freedom and [`MIN_SCATTER_PAIRS`] observations have counted.
    pub(crate) fn log_likelihood_ratio(&self, evidence: &LatencyEvidence) -> Option<f64> {
        let d = self.log_shift();
        (evidence.ready() && evidence.scatter.count() >= MIN_SCATTER_PAIRS).then(|| {
            (d * evidence.shift - d * d * evidence.precision / 2.0) / evidence.dispersion()
        })
    }
}

/// What the latency gate has gathered: its sums at the current weight, and each arm's spread
/// of log latencies over the whole rollout.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LatencyEvidence {
    /// `Σ 1/v` at the current weight.
    precision: f64,
    /// `Σ D/v` at the current weight.
    shift: f64,
    baseline: Spread,
    canary: Spread,
    /// Every counted `D` against its `v`, over the rollout.
    scatter: Scatter,
}

impl LatencyEvidence {
    /// Whether both arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of freedom.
    fn ready(&self) -> bool {
        self.baseline.dof() >= MIN_SPREAD_DOF && self.canary.dof() >= MIN_SPREAD_DOF
    }

    /// Adds one observation of each arm's log latencies: its difference of means, weighed by
    /// the spreads as they stood before it, then its spreads.
    pub(crate) fn add(&mut self, baseline: &LogMoments, canary: &LogMoments) {
        let (nb, nc) = (baseline.count() as f64, canary.count() as f64);
        if self.ready() && nb > 0.0 && nc > 0.0 {
            let v = self.canary.upper() / nc + self.baseline.upper() / nb;
            let d = canary.mean() - baseline.mean();
            self.precision += 1.0 / v;
            self.shift += d / v;
            self.scatter.push(d, v);
        }
        self.baseline.add(baseline);
        self.canary.add(canary);
    }

    /// Starts the current weight's sums afresh; the spreads are kept.
    pub(crate) fn new_level(&mut self) {
        self.precision = 0.0;
        self.shift = 0.0;
    }

    /// `Σ 1/v` at the current weight.
    pub(crate) fn precision(&self) -> f64 {
        self.precision
    }

    /// How many times what their spreads explain the observations scatter (an upper
    /// confidence bound, as for the spreads), at least 1.
    pub(crate) fn dispersion(&self) -> f64 {
        self.scatter.upper_ratio().map_or(1.0, |r| r.max(1.0))
    }

    /// The estimated slowdown at the current weight, as a fraction (`None` without pairs).
    pub(crate) fn estimated_shift(&self) -> Option<f64> {
        (self.precision > 0.0).then(|| (self.shift / self.precision).exp_m1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(n: u64, mean: f64, sd: f64) -> LogMoments {
        LogMoments::from_parts(n, mean, sd * sd).unwrap()
    }

    /// `n` observations of 16 baseline and 4 canary values, of spread 0.5 and `canary_sd`,
    /// with the canary's mean log latency `shift` above the baseline's.
    fn observed(n: usize, shift: f64, canary_sd: f64) -> LatencyEvidence {
        let mut ev = LatencyEvidence::default();
        for _ in 0..n {
            ev.add(&arm(16, 4.6, 0.5), &arm(4, 4.6 + shift, canary_sd));
        }
        ev
    }

    #[test]
    fn the_ratio_waits_for_both_spreads_then_weighs_the_shift() {
        let gate = LatencyPacing::default();
        let d = 1.1f64.ln();
        // The canary's 3 degrees of freedom an observation reach 30 at the tenth, which itself
        // is weighed by the spreads before it; ten observations count from the eleventh on.
        assert_eq!(gate.log_likelihood_ratio(&observed(19, 0.0, 0.5)), None);
        // Ten without a shift: −δ²·10/(2v), v a little above 0.25/4 + 0.25/16.
        let llr = gate.log_likelihood_ratio(&observed(20, 0.0, 0.5)).unwrap();
        let plain = -10.0 * d * d / (2.0 * (0.25 / 4.0 + 0.25 / 16.0));
        assert!(llr < 0.0 && llr > plain, "{llr} vs {plain}");
        // A canary exactly 10% slower drifts up instead, and its shift is read back.
        let slow = observed(50, d, 0.5);
        assert!(gate.log_likelihood_ratio(&slow).unwrap() > 0.0);
        assert!((slow.estimated_shift().unwrap() - 0.1).abs() < 1e-9);
        // A canary whose own spread is twice the baseline's weighs less.
        assert!(observed(50, d, 1.0).precision() < 0.5 * slow.precision());
        // A good canary passes at a precision of about 2 ln 20/δ² ≈ 660.
        assert!((gate.precision_to_pass(0.05) - 659.5).abs() < 1.0);
        // A new weight keeps the spreads and the scatter, and drops the sums.
        let mut next = slow;
        next.new_level();
        assert_eq!(gate.log_likelihood_ratio(&next), Some(0.0));
        assert_eq!(next.estimated_shift(), None);
    }

    #[test]
    fn observations_that_scatter_beyond_their_spread_count_for_less() {
        let gate = LatencyPacing::default();
        let mut ev = observed(10, 0.0, 0.5);
        let mut calm = ev;
        for k in 0..40 {
            // The arms' levels wander ±0.4 apart: a variance of 0.16 beside v ≈ 0.08.
            let wander = if k % 2 == 0 { 0.4 } else { -0.4 };
            ev.add(&arm(16, 4.6, 0.5), &arm(4, 4.6 + wander, 0.5));
            calm.add(&arm(16, 4.6, 0.5), &arm(4, 4.6, 0.5));
        }
        assert_eq!(calm.dispersion(), 1.0);
        assert!(ev.dispersion() > 1.5, "{}", ev.dispersion());
        let (wandering, still) = (
            gate.log_likelihood_ratio(&ev).unwrap(),
            gate.log_likelihood_ratio(&calm).unwrap(),
        );
        // About the same precision and no net shift: the wander shrinks the evidence that the
        // canary is not slower by the dispersion.
        assert!(still < 0.0 && wandering < 0.0, "{wandering} {still}");
        assert!(wandering > still / 1.5, "{wandering} {still}");
    }

    /// Runs of per-second observations at 20 requests/s and a 20% share, log-normal latencies of
    /// spread 0.5 (the canary's `canary_sd`) with the canary slower by `shift` and each arm's
    /// level wandering by `wander` (sd, independently each second); the share of runs whose gate
    /// passes within `seconds`.
    fn pass_rate(shift: f64, canary_sd: f64, wander: f64, runs: u32, seconds: u32) -> f64 {
        use rand::{Rng, SeedableRng};
        use rand_distr::StandardNormal;
        let gate = LatencyPacing::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        // The arms' means are drawn; their spreads are taken as known, which the gate's bounds
        // on them barely move at these degrees of freedom.
        let mean = |rng: &mut rand_chacha::ChaCha8Rng, n: u64, mu: f64, sd: f64| {
            let (z, level): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            let m = mu + wander * level + sd * z / (n as f64).sqrt();
            LogMoments::from_parts(n, m, sd * sd).unwrap()
        };
        let passed = (0..runs)
            .filter(|_| {
                let mut ev = LatencyEvidence::default();
                (0..seconds).any(|_| {
                    let b = mean(&mut rng, 16, 4.6, 0.5);
                    let c = mean(&mut rng, 4, 4.6 + shift.ln_1p(), canary_sd);
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
        let slow = pass_rate(0.1, 0.5, 0.0, 2_000, 600);
        assert!(slow <= 0.065, "{slow}");
        // Also when the slow canary's own latencies spread twice as wide (its arm weighs less),
        // and when both arms' levels wander by more than their requests explain.
        let wide = pass_rate(0.1, 1.0, 0.0, 2_000, 600);
        assert!(wide <= 0.065, "{wide}");
        let wandering = pass_rate(0.1, 0.5, 0.2, 2_000, 600);
        assert!(wandering <= 0.065, "{wandering}");
        // As fast as the baseline: the precision grows 12.8 a second and 660 suffices on
        // average.
        let good = pass_rate(0.0, 0.5, 0.0, 500, 300);
        assert!(good >= 0.99, "{good}");
        assert!(pass_rate(0.25, 0.5, 0.0, 2_000, 600) <= slow);
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
