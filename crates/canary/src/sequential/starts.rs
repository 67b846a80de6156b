//! Mixtures over the time a regression starts, so that one that begins late is not diluted by
//! the good period before it: the prior over candidate starts that the count and latency tests
//! share, and the latency test's fixed bets over those starts.

use serde::{Deserialize, Serialize};

use super::logspace::{check_finite_log, log_add_exp};
use crate::{Error, Result};

/// The share of the time prior spent by sample `t`: the samples up to `t` within the horizon.
fn time_spent(t: u64, horizon: u64) -> f64 {
    t.min(horizon) as f64 / horizon as f64
}

/// `π_k`, the prior weight of the `k`-th candidate start, starting at sample `t` after the one
/// before it started at sample `last`: half of the prior is spread evenly in **time** over the
/// first `horizon` samples (each candidate takes the share of the samples since the one before),
/// half decays over candidates as `1/((k + 1)(k + 2))`, so that candidates after the horizon
/// still have weight. Spreading in time rather than over candidate indices keeps the weight where
/// a regression may begin whatever the rate at which candidates start: at 20 requests/s a
/// candidate may start every few minutes, at 500 every few seconds.
///
/// `last` is `u64::MAX` in states saved before candidates kept their times: the time half then
/// counts as spent, which only lowers the e-value.
pub(crate) fn start_weight(k: u64, last: u64, t: u64, horizon: u64) -> f64 {
    start_weights(k, k, last, t, horizon)
}

/// `Σ_{j=k}^{through} π_j`, the summed weight of candidates `k` to `through` all starting at
/// sample `t`: they would hold the same sums, so one candidate with their weight is the same
/// mixture, whatever the number of candidates one sample makes due. The first takes the time
/// since `last`, the others none; the decaying halves telescope to
/// `½ (through − k + 1)/((k + 1)(through + 2))`. Indices are taken as floats, so no index
/// overflows.
pub(crate) fn start_weights(k: u64, through: u64, last: u64, t: u64, horizon: u64) -> f64 {
    let time = (time_spent(t, horizon) - time_spent(last, horizon)).max(0.0);
    let (k, through) = (k as f64, (through as f64).max(k as f64));
    0.5 * time + 0.5 * (through - k + 1.0) / ((k + 1.0) * (through + 2.0))
}

/// `Σ_{k' ≥ k} π_k'`, the prior weight of the candidates not started yet, the last started at
/// sample `last`.
pub(crate) fn start_tail(k: u64, last: u64, horizon: u64) -> f64 {
    0.5 * (1.0 - time_spent(last, horizon)) + 0.5 / (k as f64 + 1.0)
}

/// The sample of the last candidate start in states saved before candidates kept their times.
pub(crate) fn unknown_start() -> u64 {
    u64::MAX
}

fn unknown_starts() -> [u64; 3] {
    [u64::MAX; 3]
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
            "must be at least one sample",
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
    /// The sample at which each bet's last candidate started.
    #[serde(default = "unknown_starts")]
    last_at: [u64; 3],
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
        let ln_first = start_weight(0, 0, 0, horizon).ln();
        StartMixture {
            started: [1; 3],
            last_at: [0; 3],
            next_at: START_BETS.map(|k| START_SPACING / (k * tau * k * tau)),
            log_up: [ln_first; 3],
            log_down: [ln_first; 3],
        }
    }

    /// Checks a mixture read back, naming its fields under `path`: a logarithm that is not
    /// finite would leave the e-value NaN or stuck, a spacing that is not a finite precision
    /// above 0 would start candidates never or at every batch, and a bet with no candidate
    /// started would spend the first candidate's weight twice.
    pub(super) fn check(&self, path: &str) -> Result<()> {
        for j in 0..START_BETS.len() {
            check_finite_log(&format!("{path}.logUp[{j}]"), self.log_up[j])?;
            check_finite_log(&format!("{path}.logDown[{j}]"), self.log_down[j])?;
            let next = self.next_at[j];
            if !(next.is_finite() && next > 0.0) {
                return Err(Error::invalid_input(
                    format!("{path}.nextAt[{j}]"),
                    next,
                    "must be a finite precision > 0",
                ));
            }
            if self.started[j] == 0 {
                return Err(Error::invalid_input(
                    format!("{path}.started[{j}]"),
                    0,
                    "must be at least 1: the first candidate start is taken when the test begins",
                ));
            }
        }
        Ok(())
    }

    /// Starts a candidate for every bet whose spacing has passed, at the current sums and
    /// sample `t`.
    pub(super) fn add_due(&mut self, up: f64, down: f64, v: f64, t: u64, tau: f64, horizon: u64) {
        for (j, k) in START_BETS.iter().enumerate() {
            let lambda = k * tau;
            if v < self.next_at[j] {
                continue;
            }
            let ln_pi = start_weight(self.started[j], self.last_at[j], t, horizon).ln();
            let quad = lambda * lambda * v / 2.0;
            self.log_up[j] = log_add_exp(self.log_up[j], ln_pi - lambda * up + quad);
            self.log_down[j] = log_add_exp(self.log_down[j], ln_pi + lambda * down + quad);
            self.started[j] = self.started[j].saturating_add(1);
            // A state saved before candidates kept their times keeps its time half spent.
            self.last_at[j] = self.last_at[j].max(t);
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
            let tail = start_tail(self.started[j], self.last_at[j], horizon);
            log_add_exp(started, tail.ln())
        });
        let n = START_BETS.len() as f64;
        terms.fold(f64::NEG_INFINITY, log_add_exp) - n.ln()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Candidates started at the given samples (several may share one), the first at 0.
    fn check_sums(times: &[u64], horizon: u64) {
        let mut spent = start_weight(0, 0, 0, horizon);
        let mut last = 0;
        for (k, &t) in times.iter().enumerate() {
            let k = k as u64 + 1;
            let tail = start_tail(k, last, horizon);
            assert!((spent + tail - 1.0).abs() < 1e-12, "{spent} + {tail}");
            let pi = start_weight(k, last, t, horizon);
            assert!(pi > 0.0 && pi <= tail, "π {pi}, tail {tail}");
            spent += pi;
            last = last.max(t);
        }
        assert!(spent < 1.0 + 1e-12);
    }

    #[test]
    fn the_start_time_prior_never_spends_more_than_one() {
        assert!((start_tail(0, 0, 3_600) - 1.0).abs() < 1e-12);
        for horizon in [1, 7, 3_600] {
            // Regular, irregular, repeated and beyond the horizon.
            let regular: Vec<u64> = (1..500).map(|k| k * 20).collect();
            check_sums(&regular, horizon);
            check_sums(&[3, 3, 3, 50, 51, 4_000, 4_000, 9_000], horizon);
        }
    }

    #[test]
    fn candidates_due_together_weigh_what_they_would_one_by_one() {
        let one_by_one = start_weight(7, 100, 400, 3_600)
            + (8..=40)
                .map(|k| start_weight(k, 400, 400, 3_600))
                .sum::<f64>();
        let together = start_weights(7, 40, 100, 400, 3_600);
        assert!(
            (one_by_one - together).abs() < 1e-15,
            "{one_by_one} vs {together}"
        );
        // And the tail after them is what is left.
        let spent_before = 1.0 - start_tail(7, 100, 3_600);
        let left = start_tail(41, 400, 3_600);
        assert!((spent_before + together + left - 1.0).abs() < 1e-12);
        // The largest indices stay finite and positive.
        let w = start_weights(u64::MAX - 1, u64::MAX, 0, 0, 3_600);
        assert!(w.is_finite() && w > 0.0 && start_tail(u64::MAX, 0, 3_600).is_finite());
    }

    #[test]
    fn the_time_half_follows_the_samples_not_the_candidates() {
        // One candidate per 500 samples or per 20: within the horizon each takes its share of
        // the time, so a sparse candidate weighs 25 times a dense one.
        let sparse = start_weight(3, 1_000, 1_500, 3_600);
        let dense = start_weight(75, 1_480, 1_500, 3_600);
        let decay = |k: f64| 0.5 / ((k + 1.0) * (k + 2.0));
        assert!((sparse - decay(3.0) - 0.5 * 500.0 / 3_600.0).abs() < 1e-12);
        assert!((dense - decay(75.0) - 0.5 * 20.0 / 3_600.0).abs() < 1e-12);
        // After the horizon only the decaying half is left.
        assert!((start_weight(200, 3_700, 3_800, 3_600) - decay(200.0)).abs() < 1e-15);
        // A state saved before candidates kept their times has its time half spent.
        let old = unknown_start();
        assert!((start_weight(10, old, 100, 3_600) - decay(10.0)).abs() < 1e-15);
        assert!((start_tail(10, old, 3_600) - 0.5 / 11.0).abs() < 1e-15);
    }
}
