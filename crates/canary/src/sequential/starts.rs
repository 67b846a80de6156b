//! Mixtures over the time a regression starts, so that one that begins late is not diluted by
//! the good period before it: the prior over candidate starts that the count and latency tests
//! share, and the latency test's fixed bets over those starts.

use serde::{Deserialize, Serialize};

use super::logspace::log_add_exp;
use crate::{Error, Result};

/// `π_k`, the prior weight of the `k`-th candidate start, with `K` = `horizon`.
pub(crate) fn start_weight(k: u64, horizon: u64) -> f64 {
    let uniform = if k < horizon {
        0.5 / horizon as f64
    } else {
        0.0
    };
    let (k1, k2) = ((k + 1) as f64, (k + 2) as f64);
    uniform + 0.5 / (k1 * k2)
}

/// `Σ_{k' ≥ k} π_k'`, the prior weight of the candidates not started yet.
pub(crate) fn start_tail(k: u64, horizon: u64) -> f64 {
    let uniform = 0.5 * horizon.saturating_sub(k) as f64 / horizon as f64;
    uniform + 0.5 / (k + 1) as f64
}

/// Checks the weight and horizon of a start-time mixture (`{path}.restartWeight`,
/// `{path}.restartHorizon`).
pub(crate) fn check_start_mixture(path: &str, weight: f64, horizon: u64) -> Result<()> {
    if !(0.0..1.0).contains(&weight) {
        return Err(Error::invalid_config(
            format!("{path}.restartWeight"),
            weight,
            "must be a fraction in [0, 1) (0 turns the start-time mixture off)",
        ));
    }
    if horizon == 0 {
        return Err(Error::invalid_config(
            format!("{path}.restartHorizon"),
            horizon,
            "must be at least one candidate start",
        ));
    }
    Ok(())
}

/// The fixed bets of the latency test's start-time mixture, as multiples of
/// [`LatencyTestConfig::prior_scale`](super::LatencyTestConfig::prior_scale): half, once and
/// twice the shift the test is tuned for.
const START_BETS: [f64; 3] = [0.5, 1.0, 2.0];

/// `λ²` times the precision between two candidate starts of a bet `λ`. Evidence of the null
/// period between the last candidate and the onset costs that bet `λ²ΔV/2`, so this bounds the
/// cost at 1 nat (½ on average) while a shift of `λ` needs a few times more precision to detect.
const START_SPACING: f64 = 2.0;

/// The start-time mixture of the latency test's within-batch mode: for each fixed bet `λ_j` on the log shift,
/// `Σ_k π_k exp(λ_j (S_t − S_k) − λ_j² (V_t − V_k)/2)` over candidate starts `k`, kept in O(1)
/// as `exp(λ_j S_t − λ_j² V_t/2) · Σ_k π_k exp(−λ_j S_k + λ_j² V_k/2)`. The "faster" side of
/// the two-sided mode bets `−λ_j` on `S⁻`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct StartMixture {
    /// Candidates started, per bet.
    started: [u64; 3],
    /// The precision at which each bet's next candidate starts.
    next_at: [f64; 3],
    /// `ln Σ_k π_k exp(−λ_j S⁺_k + λ_j² V_k/2)` per bet.
    log_up: [f64; 3],
    /// `ln Σ_k π_k exp(λ_j S⁻_k + λ_j² V_k/2)` per bet.
    log_down: [f64; 3],
}

impl StartMixture {
    /// The first candidate of every bet starts with the test (`S = V = 0`).
    pub(super) fn new(tau: f64, horizon: u64) -> Self {
        let ln_first = start_weight(0, horizon).ln();
        StartMixture {
            started: [1; 3],
            next_at: START_BETS.map(|k| START_SPACING / (k * tau * k * tau)),
            log_up: [ln_first; 3],
            log_down: [ln_first; 3],
        }
    }

    /// Starts a candidate for every bet whose spacing has passed, at the current sums.
    pub(super) fn add_due(&mut self, up: f64, down: f64, v: f64, tau: f64, horizon: u64) {
        for (j, k) in START_BETS.iter().enumerate() {
            let lambda = k * tau;
            if v < self.next_at[j] {
                continue;
            }
            let ln_pi = start_weight(self.started[j], horizon).ln();
            let quad = lambda * lambda * v / 2.0;
            self.log_up[j] = log_add_exp(self.log_up[j], ln_pi - lambda * up + quad);
            self.log_down[j] = log_add_exp(self.log_down[j], ln_pi + lambda * down + quad);
            self.started[j] += 1;
            self.next_at[j] = v + START_SPACING / (lambda * lambda);
        }
    }

    /// `ln` of the mixture's e-value on one side: the average over bets of the started
    /// candidates' likelihood ratios plus the prior weight of those not started (each still 1).
    pub(super) fn log_e(&self, s: f64, v: f64, tau: f64, horizon: u64, worse: bool) -> f64 {
        let terms = START_BETS.iter().enumerate().map(|(j, k)| {
            let lambda = k * tau;
            let (lr, starts) = if worse {
                (lambda * s, self.log_up[j])
            } else {
                (-lambda * s, self.log_down[j])
            };
            let started = lr - lambda * lambda * v / 2.0 + starts;
            log_add_exp(started, start_tail(self.started[j], horizon).ln())
        });
        let n = START_BETS.len() as f64;
        terms.fold(f64::NEG_INFINITY, log_add_exp) - n.ln()
    }
}
