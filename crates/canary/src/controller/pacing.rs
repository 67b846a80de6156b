//! Power-aware pacing: raise the canary's weight only once the evidence at the current weight
//! rules out a regression of a stated size, and keep the expected exposure to a bad version
//! within a budget.
//!
//! # The gate
//!
//! Given where the errors of one observation came from, a canary whose error rate is `r` times
//! the baseline's makes each error come from the canary with probability
//! `θ₁ = ρr/(ρr + 1 − ρ)` instead of `θ₀ = ρ`, `ρ` being the canary's share of the requests
//! (read from the observation's own counts). The likelihood ratio of the two,
//!
//! ```text
//! Λ = Π θ₁^c (1 − θ₁)^b / (θ₀^c (1 − θ₀)^b)      over the errors at the current weight
//! ```
//!
//! (`c` canary and `b` baseline errors per observation), does not depend on the baseline's own
//! error rate. It counts only the observations fed while the current weight was in force: while
//! a raised weight waits for its track, the router still splits at the old one, and those
//! errors are no evidence at the new weight (the robust mode's batches below, which measure how
//! the errors clump, and the baseline's error rate, which the budget reads, take every window).
//! The weight rises (or the canary is promoted) only once `Λ ≤ β`. By Wald's
//! likelihood-ratio identity, a version with exactly the detectable regression passes that gate
//! with probability at most `β`, however often it is checked: it is the acceptance boundary of
//! Wald's SPRT. A good version reaches it after about `ln(1/β) / KL(θ₀‖θ₁)` errors; one near
//! the detectable size hovers and is held, which a fixed count of errors would let through.
//! Each weight starts its own ratio, so a version with the regression reaches the `k`-th weight
//! with probability at most `β^(k−1)` (the product of the ratios is the likelihood ratio of all
//! the data).
//!
//! With [`Pacing::latency`], the latencies at the current weight must also rule out a slowdown
//! of a stated size, by the same boundary (see [`LatencyPacing`]): the weight rises once both
//! gates have passed. The exposure model below is the errors' alone.
//!
//! The ratio takes the errors to come from the arms independently. Error rates that wander on
//! their own per arm make them clump, and a bad version then passes more often than `β`; with
//! [`Pacing::robust_batch`] the gate measures that clumping and widens its evidence by it (see
//! `error_batches.rs`' docs).
//!
//! # Exposure
//!
//! Until then the judges must catch a bad version. Judges with a margin `m` (that fail only a
//! canary worse than `1 + m` times the baseline) weigh it against `θₘ`, the chance that an error
//! came from the canary at a ratio of `1 + m` (`θ₀` without a margin). The likelihood ratio
//! that knows `r` gains `KL(θ₁‖θₘ)` nats per error on average and rejects at `ln(1/α)`, so
//! about `N(ρ) = ln(1/α) / KL(θ₁‖θₘ)` errors are needed at share `ρ` (the best any
//! anytime-valid test can do; the sequential judge needs a little more,
//! [`Pacing::evidence_factor`] times). A margin of 10% needs about a third more errors to catch
//! a 2× regression than none, so [`Pacing::judge_margin`] must be the judges'. Errors
//! arrive at `λ·p_b·((1 − ρ) + ρr)` and canary requests at `λρ`, so the expected number of canary
//! requests a bad version serves at share `ρ` before it is caught is
//!
//! ```text
//! X(ρ) = evidence_factor · N(ρ) · ρ / (p_b · ((1 − ρ) + ρr))
//! ```
//!
//! whatever the load. It barely grows with small shares (it tends to a floor as `ρ → 0`: a
//! regression costs about as many canary requests to see at 1% as at 5%), and faster above,
//! where the baseline's errors thin out.
//!
//! # The exposure budget
//!
//! A bad version's expected exposure is then about `X(ρ₁) + Σₖ₌₂ β^(k−1) X(ρₖ)` over the
//! weights `ρₖ` it could reach: most is spent at the first weight, the only one taken without
//! evidence, and the gate discounts the rest. An [`Pacing::exposure_budget`] sizes that first
//! weight: the largest in the first step's range with `X(ρ₁) + β/(1 − β)·X(ρ_top) ≤ budget`,
//! `ρ_top` being the policy's highest weight below 100% (a `setWeight` of 100% leaves the judges
//! no baseline to catch a regression by, so the model cannot count it: leave the last step to
//! the promotion). The canary stays at 0% until the baseline has shown
//! [`Pacing::BASELINE_ERRORS`] errors, with `p_b` estimated as `(e − 1)/(n − 1)` (unbiased when
//! sampling stops at the `e`-th error; `X` is inversely proportional to `p_b`, so the exposure
//! chosen, averaged over the estimate's error, stays within the budget). A budget that no
//! weight keeps at the baseline's true rate holds the canary at 0% until an estimate errs high
//! enough, and a rollout that then starts exposes more than the budget: a hold at 0% that
//! outlasts the baseline's first errors is the sign to raise the budget. As the
//! estimate improves, the first weight may rise within the budget, up to the first step's
//! target, before its gate passes: the requests already served carry their evidence, and the
//! judges' cost per nat, `X(ρ)/ln(1/α)`, grows with the share, so the total stays within the new
//! weight's `X`. A step that raises the weight from 0% again, after one that lowered it there,
//! sets a first weight too: the evidence at 0% rules nothing out for the canary, and its users
//! are exposed afresh, so the budget sizes that weight and the gate stands before the rest of the
//! step, as in the rollout's first step. The `canary_pacing` harness measures all of this over
//! whole rollouts.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::{Counts, Metric, Timestamp};

use super::error_batches::ErrorBatches;
use super::latency_gate::{LatencyEvidence, LatencyPacing, MIN_SCATTER_PAIRS, MIN_SPREAD_DOF};
use super::policy::opt_duration;
use crate::sequential::MIN_EXPECTED_ERRORS;
use crate::{Error, Result};

/// Settings of power-aware pacing.
///
/// ```
/// use serin_canary::controller::Pacing;
///
/// // Before each raise, rule out a 2x error-rate regression and a 10% slowdown; the errors may
/// // clump, so their gate runs in its robust mode with half-minute batches.
/// let pacing: Pacing = serde_json::from_str(
///     r#"{"detectableRatio": 2, "latency": {"detectableShift": 0.1}, "robustBatch": "30s"}"#,
/// )?;
/// assert!(pacing.validate("pacing").is_ok());
/// assert_eq!(pacing.metrics().count(), 2);
///
/// // The robust mode belongs to the errors' gate, so pacing on latency alone refuses it.
/// let latency_only: Pacing = serde_json::from_str(
///     r#"{"detectableRatio": null, "latency": {}, "robustBatch": "30s"}"#,
/// )?;
/// let refused = latency_only.validate("pacing").unwrap_err().to_string();
/// assert!(refused.contains("pacing.robustBatch"), "{refused}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pacing {
    /// The count metric whose errors measure the evidence. Default `error_rate`.
    #[serde(default = "default_metric")]
    pub metric: Metric,
    /// The error-rate ratio (canary / baseline) that must be ruled out before each increase,
    /// above 1. Default `2`.
    ///
    /// `null` turns the errors' gate off, to pace on latency alone ([`Pacing::latency`] is then
    /// required, and no exposure budget applies): for a service whose errors are too rare for
    /// their gate to pass in reasonable time.
    #[serde(default = "default_ratio")]
    pub detectable_ratio: Option<f64>,
    /// The largest chance that a version with exactly the detectable regression passes one
    /// weight's gate, in (0, 1). Default `0.05`.
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// The judges' `α`, to predict how soon they catch a bad version: half theirs for two-sided
    /// judges, which average the e-values of their two sides and so reject a worse canary only
    /// at `2/α`. Default `0.05`.
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// How many times the likelihood ratio that knows the effect's errors the judges need to
    /// catch it (at least 1), for the exposure model `X`. Default `1.5`, about the default
    /// count judge's median in the `canary_eval` harness.
    #[serde(default = "default_factor")]
    pub evidence_factor: f64,
    /// The count judges' margin, as a fraction: they fail the canary only once its error rate is
    /// shown above `1 + judgeMargin` times the baseline's, and so need more errors to catch a
    /// regression, which the exposure model counts. At least 0 and, with an exposure budget,
    /// below `detectableRatio − 1` (judges with a wider margin never catch the detectable
    /// regression). Default `0`.
    #[serde(default)]
    pub judge_margin: f64,
    /// The largest expected number of canary requests a regression of the detectable size may
    /// serve before it is caught; it sizes the first weight (see the module docs). `None` for no
    /// budget. Its model is the per-request count judge's evidence
    /// ([`evidence_factor`](Self::evidence_factor)); the robust batched judge needs several
    /// batches first, which the model does not count. The controller refuses a budget without
    /// a judge of [`metric`](Self::metric) that decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposure_budget: Option<f64>,
    /// A slowdown the latencies must rule out as well before each increase, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<LatencyPacing>,
    /// Robust mode of the errors' gate, for error rates that wander on their own per arm (the
    /// traffic the judges' robust mode is for): the errors are pooled into batches that span at
    /// least this long and in which each arm expects 8 errors, and the gate's likelihood ratio
    /// is divided by how much more their split scatters than independent requests explain. The
    /// gate then waits for ten batches: five minutes at 500 requests a second, from half an
    /// hour to hours at 20 (each arm must expect 8 errors per batch); while it waits, the hold
    /// reason says how long the rest take at the pace so far, and whether that is past the
    /// rollout's maximum duration or progress deadline. `None` (the default) takes requests as
    /// independent, as the default judges do.
    #[serde(
        default,
        with = "opt_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub robust_batch: Option<Duration>,
}

fn default_metric() -> Metric {
    Metric::ErrorRate
}
fn default_ratio() -> Option<f64> {
    Some(2.0)
}
fn default_beta() -> f64 {
    0.05
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
            beta: default_beta(),
            alpha: default_alpha(),
            evidence_factor: default_factor(),
            judge_margin: 0.0,
            exposure_budget: None,
            latency: None,
            robust_batch: None,
        }
    }
}

/// `(θ₀, θ₁)`: the chance that an error came from the canary at canary share `share`, without
/// and with an error-rate ratio of `r`.
fn arm_odds(share: f64, r: f64) -> (f64, f64) {
    (share, share * r / (share * r + 1.0 - share))
}

/// `KL(p‖q)` of two Bernoulli laws, with `0·ln 0 = 0`: for a ratio so large that `q` rounds
/// to 1, the `1 − p` term would otherwise be `0·(−∞)`, NaN, and no weight would ever be
/// affordable.
fn bernoulli_kl(p: f64, q: f64) -> f64 {
    let term = |a: f64, b: f64| if a > 0.0 { a * (a / b).ln() } else { 0.0 };
    term(p, q) + term(1.0 - p, 1.0 - q)
}

/// Where pacing stands at the current weight, since it was last set by a passed gate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Level {
    /// The current weight.
    pub(crate) weight: u8,
    /// Errors (both arms) of the windows fed while it was in force, and, after a raise the
    /// exposure budget allowed before the gate passed, of those at the weights before it (the
    /// evidence carries over).
    pub(crate) errors: u64,
    /// The gate's log likelihood ratio over them.
    pub(crate) log_lr: f64,
    /// What the latency gate has gathered.
    pub(crate) latency: LatencyEvidence,
    /// The robust errors' gate's batches, over the rollout.
    pub(crate) error_batches: ErrorBatches,
}

impl Pacing {
    /// The baseline errors to see before the baseline's error rate sizes a weight for the
    /// budget (the estimate is then within about ±22%).
    pub const BASELINE_ERRORS: u64 = 20;

    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        match self.detectable_ratio {
            Some(r) if !(r.is_finite() && r > 1.0) => {
                return Err(Error::invalid_config(
                    format!("{path}.detectableRatio"),
                    r,
                    "must be a finite error-rate ratio above 1",
                ));
            }
            None if self.latency.is_none() => {
                return Err(Error::invalid_config(
                    format!("{path}.detectableRatio"),
                    "null",
                    "may be null only with a latency gate: pacing must rule out something",
                ));
            }
            None if self.robust_batch.is_some() => {
                return Err(Error::invalid_config(
                    format!("{path}.robustBatch"),
                    format!("{:?}", self.robust_batch.unwrap_or_default()),
                    "needs the errors' gate (a detectableRatio): it is that gate's robust mode",
                ));
            }
            None if self.exposure_budget.is_some() => {
                return Err(Error::invalid_config(
                    format!("{path}.exposureBudget"),
                    self.exposure_budget.unwrap_or_default(),
                    "needs the errors' gate (a detectableRatio): the budget models error-rate \
                     regressions",
                ));
            }
            _ => {}
        }
        if self.robust_batch.is_some_and(|b| b.is_zero()) {
            return Err(Error::invalid_config(
                format!("{path}.robustBatch"),
                "0s",
                "must be longer than zero (or left out): a batch must outlast the error rates' \
                 wander to measure it, and batches closed by their error count alone do not",
            ));
        }
        crate::sequential::check_alpha(&format!("{path}.beta"), self.beta)?;
        crate::sequential::check_alpha(&format!("{path}.alpha"), self.alpha)?;
        if !(self.evidence_factor.is_finite() && self.evidence_factor >= 1.0) {
            return Err(Error::invalid_config(
                format!("{path}.evidenceFactor"),
                self.evidence_factor,
                "must be a finite multiple >= 1",
            ));
        }
        if !(self.judge_margin.is_finite() && self.judge_margin >= 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.judgeMargin"),
                self.judge_margin,
                "must be a finite fraction >= 0 (0.1 = 10%)",
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
        if let (Some(r), Some(_)) = (self.detectable_ratio, self.exposure_budget)
            && 1.0 + self.judge_margin >= r
        {
            return Err(Error::invalid_config(
                format!("{path}.judgeMargin"),
                self.judge_margin,
                format!(
                    "must be below detectableRatio - 1 ({}) with an exposure budget: judges \
                     with this margin never catch the detectable regression, so no weight keeps \
                     its exposure within the budget",
                    r - 1.0
                ),
            ));
        }
        if self.detectable_ratio.is_some() {
            check_counts_metric(&format!("{path}.metric"), &self.metric)?;
        }
        if let Some(l) = &self.latency {
            l.validate(&format!("{path}.latency"))?;
            // A metric gives counts or latency sketches, never both (only a custom metric can
            // pass both checks above): one of the two gates would never gather anything.
            if self.detectable_ratio.is_some() && l.metric == self.metric {
                return Err(Error::invalid_config(
                    format!("{path}.latency.metric"),
                    &l.metric,
                    format!(
                        "is {path}.metric too: the errors' gate reads it as request and error \
                         counts and the latency gate as latency sketches, and a metric gives one \
                         or the other, so one gate would never pass and would hold a healthy \
                         canary until its deadline rolled it back; give each gate its own metric"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// The metrics pacing reads: its count metric with the errors' gate, and the latency
    /// gate's metric with that gate.
    pub fn metrics(&self) -> impl Iterator<Item = &Metric> {
        let counts = self.detectable_ratio.map(|_| &self.metric);
        counts
            .into_iter()
            .chain(self.latency.as_ref().map(|l| &l.metric))
    }

    /// The log of the gate's likelihood ratio carried by one pair of observations over the same
    /// window: how much more likely their errors' split between the arms is with the canary
    /// `detectable_ratio` times worse than with both alike. Zero when either arm served
    /// nothing, or without the errors' gate.
    pub fn log_likelihood_ratio(&self, baseline: &Counts, canary: &Counts) -> f64 {
        let (nb, nc) = (baseline.requests() as f64, canary.requests() as f64);
        let Some(r) = self.detectable_ratio.filter(|_| nb > 0.0 && nc > 0.0) else {
            return 0.0;
        };
        // θ₁/θ₀ = r/(1 + ρ(r − 1)) and (1 − θ₁)/(1 − θ₀) = 1/(1 + ρ(r − 1)), written so that
        // no share near 0 or 1 loses them to cancellation.
        let spread = (nc / (nb + nc) * (r - 1.0)).ln_1p();
        let errors = canary.errors() as f64 + baseline.errors() as f64;
        canary.errors() as f64 * r.ln() - errors * spread
    }

    /// Whether a weight's gate has passed: its log likelihood ratio is at most `ln β`.
    pub fn gate_passed(&self, log_lr: f64) -> bool {
        log_lr <= self.beta.ln()
    }

    /// Whether every gate has passed at `level`: the errors' and the latencies', each if set.
    pub(crate) fn passed(&self, level: &Level) -> bool {
        self.errors_passed(level) && self.latency_passed(level)
    }

    fn errors_passed(&self, level: &Level) -> bool {
        self.detectable_ratio.is_none()
            || self
                .errors_log_lr(level)
                .is_some_and(|llr| self.gate_passed(llr))
    }

    /// The errors' gate's log likelihood ratio at `level`; in robust mode divided by the
    /// batches' dispersion, and `None` before there are enough batches to read it.
    fn errors_log_lr(&self, level: &Level) -> Option<f64> {
        match self.robust_batch {
            None => Some(level.log_lr),
            Some(_) => level.error_batches.dispersion().map(|d| level.log_lr / d),
        }
    }

    fn latency_passed(&self, level: &Level) -> bool {
        self.latency.as_ref().is_none_or(|gate| {
            gate.log_likelihood_ratio(&level.latency)
                .is_some_and(|llr| self.gate_passed(llr))
        })
    }

    /// About how many errors a version no worse than the baseline gathers at canary share
    /// `share` before the gate passes, `ln(1/β) / KL(θ₀‖θ₁)` (infinite outside `(0, 1)` or
    /// without the errors' gate).
    pub fn errors_to_pass(&self, share: f64) -> f64 {
        let Some(r) = self.detectable_ratio.filter(|_| share > 0.0 && share < 1.0) else {
            return f64::INFINITY;
        };
        let (t0, t1) = arm_odds(share, r);
        (1.0 / self.beta).ln() / bernoulli_kl(t0, t1)
    }

    /// `N(ρ)`: the errors the known-effect likelihood ratio needs on average to catch the
    /// regression at canary share `share`, against the judges' margin (infinite outside
    /// `(0, 1)`, without the errors' gate, or with a margin as wide as the regression).
    pub fn oracle_errors(&self, share: f64) -> f64 {
        let Some(r) = self.detectable_ratio.filter(|_| share > 0.0 && share < 1.0) else {
            return f64::INFINITY;
        };
        let edge = 1.0 + self.judge_margin;
        if edge >= r {
            return f64::INFINITY;
        }
        let (_, t1) = arm_odds(share, r);
        let (_, tm) = arm_odds(share, edge);
        (1.0 / self.alpha).ln() / bernoulli_kl(t1, tm)
    }

    /// `X(ρ)`: the expected canary requests a version with the detectable regression serves at
    /// `share` before the judges catch it, given the baseline's error rate.
    pub fn expected_exposure(&self, share: f64, baseline_error_rate: f64) -> f64 {
        let Some(r) = self.detectable_ratio.filter(|_| baseline_error_rate > 0.0) else {
            return f64::INFINITY;
        };
        self.evidence_factor * self.oracle_errors(share) * share
            / (baseline_error_rate * ((1.0 - share) + share * r))
    }

    /// The largest weight up to `target` whose expected exposure, with the gate-discounted
    /// exposure at the policy's highest weight `top` added, fits the budget, given the
    /// baseline's `(requests, errors)` so far; 0 until the baseline has shown
    /// [`Pacing::BASELINE_ERRORS`] errors, and while no weight fits. `None` without a budget.
    pub fn budget_weight(&self, target: u8, top: u8, baseline: (u64, u64)) -> Option<u8> {
        let budget = self.exposure_budget?;
        let Some(p) = Self::baseline_rate(baseline) else {
            return Some(0);
        };
        Some(
            (1..=target)
                .rev()
                .find(|w| self.first_weight_cost(*w, top, p) <= budget)
                .unwrap_or(0),
        )
    }

    /// The baseline's error rate as the budget reads it from its `(requests, errors)`,
    /// `(e − 1)/(n − 1)`; `None` before [`Pacing::BASELINE_ERRORS`] errors.
    fn baseline_rate(baseline: (u64, u64)) -> Option<f64> {
        let (requests, errors) = baseline;
        (errors >= Self::BASELINE_ERRORS && requests > errors)
            .then(|| (errors - 1) as f64 / (requests - 1) as f64)
    }

    /// What the budget charges a first weight of `weight` percent at the baseline's error rate
    /// `p`: its expected exposure, and the gate-discounted one at the highest weight `top`.
    fn first_weight_cost(&self, weight: u8, top: u8, p: f64) -> f64 {
        let tail = match top {
            1..=99 => {
                self.beta / (1.0 - self.beta) * self.expected_exposure(f64::from(top) / 100.0, p)
            }
            _ => 0.0,
        };
        self.expected_exposure(f64::from(weight) / 100.0, p) + tail
    }

    /// The weight a `setWeight` step may take now on its way from `level.weight` to `target`
    /// percent; or, when it must hold, why. `top` is the policy's highest weight, `baseline`
    /// the baseline's `(requests, errors)` so far, and `fresh` says whether the step raises the
    /// weight from 0%: the rollout's first weight, or a first weight again after a step back
    /// to 0%, which exposes users afresh and is paced as the first one is.
    ///
    /// From 0%, the target, or with a budget in a fresh step, the largest weight the budget
    /// allows. Then the target once the gate passes; before that, in a fresh step with a
    /// budget, a higher weight as soon as the budget allows the target or half again the
    /// current weight.
    pub(crate) fn next_weight(
        &self,
        level: &Level,
        target: u8,
        top: u8,
        baseline: (u64, u64),
        fresh: bool,
    ) -> std::result::Result<u8, String> {
        let budget = self.budget_weight(target, top, baseline).filter(|_| fresh);
        if level.weight > 0 && self.passed(level) {
            return Ok(target);
        }
        match budget {
            // Before its gate, the first weight rises only to the target or by half again at
            // least: the estimate of the baseline's rate firms up by the second, and traffic
            // should not shift with each digit.
            Some(w) if level.weight == 0 && w > 0 => Ok(w),
            Some(w)
                if w > level.weight
                    && (w == target || 2 * u16::from(w) > 3 * u16::from(level.weight)) =>
            {
                Ok(w)
            }
            Some(_) if level.weight == 0 => {
                let cost = Self::baseline_rate(baseline).map_or(String::new(), |p| {
                    format!(
                        "; at its estimated error rate of {:.3}%, even 1% would expose about {:.0}",
                        p * 100.0,
                        self.first_weight_cost(1, top, p)
                    )
                });
                Err(format!(
                    "pacing: no first weight yet keeps the expected exposure to a {}x error-rate \
                     regression within the budget of {:.0} requests (the baseline's error rate \
                     is read from at least {} errors; {} in {} requests so far{cost})",
                    self.detectable_ratio.unwrap_or(f64::NAN),
                    self.exposure_budget.unwrap_or(f64::INFINITY),
                    Self::BASELINE_ERRORS,
                    baseline.1,
                    baseline.0
                ))
            }
            None if level.weight == 0 => Ok(target),
            _ => Err(self.gate_reason(level, "raising the weight")),
        }
    }

    /// Why the canary may not be promoted yet from `level`, if its gate has not passed.
    pub(crate) fn promotion_hold(&self, level: &Level) -> Option<String> {
        ((1..100).contains(&level.weight) && !self.passed(level))
            .then(|| self.gate_reason(level, "promoting"))
    }

    /// Why the latency gate holds at `level`, if it is set and has not passed.
    fn latency_hold(&self, level: &Level) -> Option<String> {
        let gate = self
            .latency
            .as_ref()
            .filter(|_| !self.latency_passed(level))?;
        let slowdown = percent(gate.detectable_shift);
        match gate.log_likelihood_ratio(&level.latency) {
            Some(llr) => {
                let se = |precision: f64| 100.0 / precision.sqrt();
                Some(format!(
                    "the latencies at {}% do not yet rule out a canary {slowdown}% slower \
                     (likelihood ratio {:.3}, at most {} needed; estimated shift {}, standard \
                     error {:.1}%, which a canary as fast as the baseline must bring down to \
                     about {:.1}%)",
                    level.weight,
                    llr.exp(),
                    self.beta,
                    level
                        .latency
                        .estimated_shift()
                        .map_or("none yet".into(), |s| format!("{:+.1}%", s * 100.0)),
                    se(level.latency.precision() / level.latency.dispersion()),
                    se(gate.precision_to_pass(self.beta)),
                ))
            }
            None => Some(format!(
                "the latencies cannot rule out a canary {slowdown}% slower before each arm's \
                 spread rests on {MIN_SPREAD_DOF} degrees of freedom and {MIN_SCATTER_PAIRS} \
                 batches of both arms spanning {:?} each have counted ({} so far)",
                gate.batch,
                level.latency.batches()
            )),
        }
    }

    /// While the robust errors' gate waits for its batches: how long the rest take at the pace
    /// so far, as of `now`, and whether that is past `deadline` (what ends, and when), at which
    /// the rollout rolls back. At tens of requests a second the batches take hours, so an
    /// operator learns early what the hold will come to.
    pub(crate) fn batches_outlook(
        &self,
        level: &Level,
        now: Timestamp,
        deadline: Option<(String, Timestamp)>,
    ) -> Option<String> {
        let span = self.robust_batch?;
        self.detectable_ratio?;
        let wait = level.error_batches.remaining(now, span)?;
        let more = MIN_SCATTER_PAIRS - level.error_batches.count();
        let outlook = format!(
            "at the pace so far, {more} more take about {}",
            rounded(wait)
        );
        Some(match deadline {
            Some((what, end)) if now.saturating_add(wait) > end => format!(
                "{outlook}, past {what}, which ends in {}, when the rollout rolls back",
                rounded(end.saturating_duration_since(now))
            ),
            _ => outlook,
        })
    }

    fn gate_reason(&self, level: &Level, what: &str) -> String {
        let errors = self
            .detectable_ratio
            .filter(|_| !self.errors_passed(level))
            .map(|r| match self.errors_log_lr(level) {
                Some(llr) => {
                    // Robust, the ratio is divided by the errors' clumping, and a good canary
                    // needs that many times the errors to pass.
                    let clumping = level
                        .error_batches
                        .dispersion()
                        .filter(|_| self.robust_batch.is_some());
                    format!(
                        "the {} errors toward the gate at {}% do not yet rule out a {r}x \
                         error-rate regression (likelihood ratio {:.3}{}, at most {} needed; a \
                         canary as good as the baseline needs about {:.0})",
                        level.errors,
                        level.weight,
                        llr.exp(),
                        clumping.map_or(String::new(), |d| format!(
                            ", widened {d:.2}x for errors that clump"
                        )),
                        self.beta,
                        self.errors_to_pass(f64::from(level.weight) / 100.0)
                            * clumping.unwrap_or(1.0)
                    )
                }
                None => format!(
                    "the errors cannot rule out a {r}x error-rate regression before \
                     {MIN_SCATTER_PAIRS} batches spanning {:?}, with {MIN_EXPECTED_ERRORS} \
                     errors expected of each arm, have closed ({} so far)",
                    self.robust_batch.unwrap_or_default(),
                    level.error_batches.count()
                ),
            });
        let holds: Vec<String> = errors.into_iter().chain(self.latency_hold(level)).collect();
        format!("pacing: {} before {what}", holds.join("; and "))
    }
}

/// Refuses, naming `field`, a well-known metric that is not read as request and error counts
/// (`latency` is a sketch, `cpu` and `memory` are gauges): a gate that counts the canary's
/// errors finds none in it, so it would hold a healthy canary until its deadline rolled it
/// back. A custom metric is taken at its word, as its source decides what it gives.
pub(crate) fn check_counts_metric(field: &str, metric: &Metric) -> Result<()> {
    let gives = match metric {
        Metric::Latency => "latency sketches",
        Metric::Cpu | Metric::Memory => "a gauge",
        Metric::ErrorRate | Metric::Throughput | Metric::Custom(_) => return Ok(()),
    };
    Err(Error::invalid_config(
        field,
        metric,
        format!(
            "gives {gives}, not request and error counts: the gate counts the canary's errors, \
             so on this metric it would never pass; use a counts metric such as `error_rate`"
        ),
    ))
}

/// `fraction` as a percentage for a reason's reader, without the binary rounding noise of
/// `fraction · 100` (`7`, not `7.000000000000001`, for 0.07).
pub(crate) fn percent(fraction: f64) -> String {
    ((fraction * 100.0 * 1e9).round() / 1e9).to_string()
}

/// `d` for a reason's reader: to the second under ten minutes, to the minute above.
pub(crate) fn rounded(d: Duration) -> String {
    let secs = d.as_secs_f64().round() as u64;
    let secs = if secs < 600 {
        secs
    } else {
        secs.saturating_add(30) / 60 * 60
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(requests: u64, errors: u64) -> Counts {
        Counts::new(requests, errors).unwrap()
    }

    fn level(weight: u8, errors: u64, log_lr: f64) -> Level {
        Level {
            weight,
            errors,
            log_lr,
            latency: LatencyEvidence::default(),
            error_batches: ErrorBatches::default(),
        }
    }

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
        assert!(p.oracle_errors(1.0).is_infinite());
        // A good canary's drift the other way: KL(1/2 ‖ 2/3) = 0.0589; ln 20 / KL ≈ 50.9.
        assert!(
            (p.errors_to_pass(0.5) - 50.9).abs() < 0.2,
            "{}",
            p.errors_to_pass(0.5)
        );
        // Judges with a 10% margin weigh a 2x regression against 1.1x: θ = 11/21, KL(2/3 ‖
        // 11/21) = 0.0419, ln 20 / KL ≈ 71.5; the exposure grows with it. None catch a
        // regression within their margin.
        let margin = Pacing {
            judge_margin: 0.1,
            ..Pacing::default()
        };
        assert!(
            (margin.oracle_errors(0.5) - 71.5).abs() < 0.2,
            "{}",
            margin.oracle_errors(0.5)
        );
        let ratio = margin.expected_exposure(0.2, 0.005) / p.expected_exposure(0.2, 0.005);
        assert!((ratio - margin.oracle_errors(0.2) / p.oracle_errors(0.2)).abs() < 1e-12);
        let wide = Pacing {
            judge_margin: 1.0,
            ..Pacing::default()
        };
        assert!(wide.oracle_errors(0.5).is_infinite());
    }

    #[test]
    fn the_gate_weighs_where_the_errors_came_from() {
        let p = Pacing::default();
        // Half the requests each: a canary error counts ln(4/3), a baseline one ln(2/3).
        let llr = p.log_likelihood_ratio(&counts(100, 1), &counts(100, 1));
        assert!((llr - (4.0f64 / 3.0).ln() - (2.0f64 / 3.0).ln()).abs() < 1e-12);
        // The split is read from the requests, not the weight.
        let skewed = p.log_likelihood_ratio(&counts(300, 1), &counts(100, 0));
        assert!((skewed - (1.0 - 0.4f64).ln() + (1.0 - 0.25f64).ln()).abs() < 1e-12);
        assert_eq!(p.log_likelihood_ratio(&counts(0, 0), &counts(100, 3)), 0.0);
        assert!(p.gate_passed(0.05f64.ln()) && !p.gate_passed(0.051f64.ln()));
    }

    /// Runs of errors at a 20% share whose arm is drawn with the canary `ratio` times worse; the
    /// share of runs whose gate passes within `max_errors`.
    fn gate_pass_rate(ratio: f64, runs: u32, max_errors: u32) -> f64 {
        use rand::{Rng, SeedableRng};
        let p = Pacing::default();
        let (_, t1) = arm_odds(0.2, ratio);
        // What one error adds to the log ratio, from each arm.
        let from_canary = p.log_likelihood_ratio(&counts(800, 0), &counts(200, 1));
        let from_baseline = p.log_likelihood_ratio(&counts(800, 1), &counts(200, 0));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let passed = (0..runs)
            .filter(|_| {
                let mut llr = 0.0;
                (0..max_errors).any(|_| {
                    llr += if rng.random::<f64>() < t1 {
                        from_canary
                    } else {
                        from_baseline
                    };
                    p.gate_passed(llr)
                })
            })
            .count();
        passed as f64 / f64::from(runs)
    }

    #[test]
    fn a_version_with_the_regression_rarely_passes_and_a_good_one_does() {
        // Wald: at most β = 5% ever pass with exactly the regression (after 500 errors its log
        // ratio has drifted about 25 nats up); 3,000 runs put 3 sd at 1.2%.
        let bad = gate_pass_rate(2.0, 3_000, 500);
        assert!(bad <= 0.062, "{bad}");
        // A good version passes, after about 69 errors on average at 20%.
        let good = gate_pass_rate(1.0, 1_000, 400);
        assert!(good >= 0.99, "{good}");
        // A worse one passes less often than one with exactly the regression.
        assert!(gate_pass_rate(3.0, 3_000, 500) <= bad);
    }

    #[test]
    fn the_gate_holds_until_the_regression_is_ruled_out() {
        let p = Pacing::default();
        // From 0% without a budget: the target at once.
        assert_eq!(p.next_weight(&level(0, 0, 0.0), 5, 50, (0, 0), true), Ok(5));
        let hold = p
            .next_weight(&level(5, 40, -1.0), 20, 50, (0, 0), false)
            .unwrap_err();
        assert!(
            hold.contains("40 errors toward the gate at 5%") && hold.contains("before raising"),
            "{hold}"
        );
        assert_eq!(
            p.next_weight(&level(5, 200, -3.1), 20, 50, (0, 0), false),
            Ok(20)
        );
        // Promotion waits for the last weight's gate too.
        assert!(
            p.promotion_hold(&level(50, 10, -1.0))
                .unwrap()
                .contains("promoting")
        );
        assert_eq!(p.promotion_hold(&level(50, 60, -3.1)), None);
        assert_eq!(p.promotion_hold(&level(100, 0, 0.0)), None);
    }

    #[test]
    fn the_budget_sizes_the_first_weight() {
        let p = Pacing {
            exposure_budget: Some(3_000.0),
            ..Pacing::default()
        };
        let tail = p.beta / (1.0 - p.beta) * p.expected_exposure(0.5, 0.005);
        let w = p.budget_weight(50, 50, (4_001, 21)).unwrap();
        assert!(w > 5 && w < 50, "{w}");
        assert!(p.expected_exposure(f64::from(w) / 100.0, 0.005) + tail <= 3_000.0);
        assert!(p.expected_exposure(f64::from(w + 1) / 100.0, 0.005) + tail > 3_000.0);
        // A lower error rate means more requests per error: a smaller weight.
        assert!(p.budget_weight(50, 50, (4_401, 21)).unwrap() < w);
        // Too few baseline errors to estimate its rate, or a budget no weight fits: 0%.
        assert_eq!(p.budget_weight(50, 50, (3_801, 19)), Some(0));
        let tiny = Pacing {
            exposure_budget: Some(1.0),
            ..Pacing::default()
        };
        assert_eq!(tiny.budget_weight(50, 50, (4_001, 21)), Some(0));
        // Once the baseline's rate is estimated, the hold says what the smallest weight costs,
        // so that a budget too small for any is seen as such.
        let cost = tiny.expected_exposure(0.01, 0.005) + tail;
        let hold = tiny
            .next_weight(&level(0, 0, 0.0), 50, 50, (4_001, 21), true)
            .unwrap_err();
        assert!(
            hold.contains(&format!(
                "at its estimated error rate of 0.500%, even 1% would expose about {cost:.0}"
            )),
            "{hold}"
        );
        assert_eq!(Pacing::default().budget_weight(50, 50, (0, 0)), None);

        // The first step takes the budget's weight, or holds at 0% with the reason.
        assert_eq!(
            p.next_weight(&level(0, 0, 0.0), 50, 50, (4_001, 21), true),
            Ok(w)
        );
        let hold = p
            .next_weight(&level(0, 0, 0.0), 50, 50, (100, 0), true)
            .unwrap_err();
        assert!(hold.contains("budget of 3000 requests"), "{hold}");
        // A better estimate of the baseline's rate lifts the first weight before its gate.
        let better = p.next_weight(&level(w, 10, -0.5), 50, 50, (3_601, 21), true);
        assert!(better.unwrap() > w);
        assert!(
            p.next_weight(&level(w, 10, -0.5), 50, 50, (4_001, 21), true)
                .is_err()
        );
        // The gate lifts the budget's cap; a later step never rises before its gate.
        assert_eq!(
            p.next_weight(&level(w, 80, -3.1), 50, 50, (4_001, 21), true),
            Ok(50)
        );
        assert!(
            p.next_weight(&level(5, 10, -0.5), 50, 50, (3_601, 21), false)
                .is_err()
        );
        // Near the top, "half again" the current weight is past 100%: the budget's weight
        // below the target waits for the gate (and the sum does not overflow).
        let near_top = (1..1_000)
            .map(|k| Pacing {
                exposure_budget: Some(1_000.0 * f64::from(k)),
                ..Pacing::default()
            })
            .find(|p| {
                p.budget_weight(99, 99, (4_001, 21))
                    .is_some_and(|w| (91..99).contains(&w))
            })
            .unwrap();
        let hold = near_top.next_weight(&level(90, 10, -0.5), 99, 99, (4_001, 21), true);
        assert!(hold.is_err(), "{hold:?}");
    }

    #[test]
    fn pacing_on_latency_alone_drops_the_errors_gate_and_needs_the_latency_one() {
        let p: Pacing =
            serde_json::from_str(r#"{"detectableRatio": null, "latency": {}}"#).unwrap();
        assert!(p.validate("pacing").is_ok());
        assert_eq!(p.metrics().collect::<Vec<_>>(), [&Metric::Latency]);
        assert_eq!(
            p.log_likelihood_ratio(&counts(100, 0), &counts(100, 9)),
            0.0
        );
        assert!(p.errors_to_pass(0.2).is_infinite());
        // No errors at all: the errors' gate would never pass; without it, only the latencies'
        // holds (here for want of spread).
        let hold = p.promotion_hold(&level(20, 0, 0.0)).unwrap();
        assert!(
            !hold.contains("errors at") && hold.contains("degrees of freedom"),
            "{hold}"
        );
        let back: Pacing = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
        assert_eq!(back, p);
        // Nothing to rule out, or a budget without the errors it models: refused.
        let nothing: Pacing = serde_json::from_str(r#"{"detectableRatio": null}"#).unwrap();
        let msg = nothing.validate("pacing").unwrap_err().to_string();
        assert!(msg.contains("pacing.detectableRatio"), "{msg}");
        let budget = Pacing {
            exposure_budget: Some(3_000.0),
            ..p
        };
        let msg = budget.validate("pacing").unwrap_err().to_string();
        assert!(msg.contains("pacing.exposureBudget"), "{msg}");
        // With both gates, the errors' metric comes first.
        let both = Pacing {
            latency: Some(LatencyPacing::default()),
            ..Pacing::default()
        };
        assert_eq!(
            both.metrics().collect::<Vec<_>>(),
            [&Metric::ErrorRate, &Metric::Latency]
        );
    }

    #[test]
    fn a_hold_writes_the_slowdown_as_the_percentage_it_was_given() {
        let p = Pacing {
            detectable_ratio: None,
            latency: Some(LatencyPacing {
                detectable_shift: 0.07,
                ..LatencyPacing::default()
            }),
            ..Pacing::default()
        };
        let hold = p.promotion_hold(&level(20, 0, 0.0)).unwrap();
        assert!(hold.contains("a canary 7% slower"), "{hold}");
    }

    /// Robust, the gate divides the ratio by the errors' clumping, so the errors a good
    /// canary needs, as a hold states them, are that many times the plain count: at that many
    /// errors of a good canary's mean drift the gate passes.
    #[test]
    fn a_robust_hold_states_the_errors_a_good_canary_needs_with_the_clumping() {
        let p = Pacing {
            robust_batch: Some(Duration::from_secs(1)),
            ..Pacing::default()
        };
        let mut batches = ErrorBatches::default();
        for k in 0..12u64 {
            let (c, b) = if k % 2 == 0 { (30, 30) } else { (2, 58) };
            let w = serin_signals::Window::new(
                Timestamp::from_millis(k * 1_000),
                Timestamp::from_millis((k + 1) * 1_000),
            )
            .unwrap();
            batches.add(c, b, 0.2, w, Duration::from_secs(1));
        }
        let d = batches.dispersion().unwrap();
        assert!(d > 2.0, "{d}");
        // The mean drift per error of a canary as good as the baseline at a 20% share.
        let from_canary = p.log_likelihood_ratio(&counts(800, 0), &counts(200, 1));
        let from_baseline = p.log_likelihood_ratio(&counts(800, 1), &counts(200, 0));
        let drift = 0.2 * from_canary + 0.8 * from_baseline;
        let at = |errors: u64| Level {
            error_batches: batches,
            ..level(20, errors, errors as f64 * drift)
        };
        let hold = p.gate_reason(&at(40), "raising the weight");
        let stated: f64 = hold
            .split("needs about ")
            .nth(1)
            .and_then(|rest| rest.split(')').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{hold}"));
        assert!((stated - d * p.errors_to_pass(0.2)).abs() <= 1.0, "{hold}");
        // "About": the plain count is rounded up from the drift's expectation.
        assert!(p.passed(&at((stated * 1.01) as u64)), "{hold}");
        assert!(!p.passed(&at((stated * 0.9) as u64)), "{hold}");
    }

    /// A detectable ratio so large that an error is the canary's with a chance that rounds to
    /// 1 still prices each weight (`0·ln 0 = 0`), so a budget can afford one.
    #[test]
    fn a_huge_detectable_ratio_still_prices_the_first_weight() {
        let p = Pacing {
            exposure_budget: Some(1e300),
            detectable_ratio: Some(1e20),
            ..Pacing::default()
        };
        p.validate("pacing").unwrap();
        assert!(p.budget_weight(50, 50, (4_001, 21)).is_some_and(|w| w > 0));
    }

    /// One metric gives either counts or latency sketches: with both gates on the same
    /// (custom) metric, one of them never gathers anything and holds a healthy canary until
    /// its deadline rolls it back.
    #[test]
    fn both_gates_on_one_metric_are_refused_naming_the_latency_metric() {
        let p: Pacing =
            serde_json::from_str(r#"{"metric": "http", "latency": {"metric": "http"}}"#).unwrap();
        let msg = p.validate("pacing").unwrap_err().to_string();
        assert!(
            msg.contains("pacing.latency.metric `http`") && msg.contains("pacing.metric"),
            "{msg}"
        );
        // On latency alone, or each gate on its own metric: taken.
        let alone: Pacing = serde_json::from_str(
            r#"{"detectableRatio": null, "metric": "http", "latency": {"metric": "http"}}"#,
        )
        .unwrap();
        assert!(alone.validate("pacing").is_ok());
        let apart: Pacing =
            serde_json::from_str(r#"{"metric": "http", "latency": {"metric": "http_ms"}}"#)
                .unwrap();
        assert!(apart.validate("pacing").is_ok());
    }

    #[test]
    fn bad_settings_name_the_field() {
        let p = Pacing {
            detectable_ratio: Some(1.0),
            ..Pacing::default()
        };
        let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
        assert!(msg.contains("canaryPolicy.pacing.detectableRatio"), "{msg}");
        let p = Pacing {
            beta: 1.0,
            ..Pacing::default()
        };
        let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
        assert!(msg.contains("canaryPolicy.pacing.beta"), "{msg}");
        for judge_margin in [-0.1, f64::NAN] {
            let p = Pacing {
                judge_margin,
                ..Pacing::default()
            };
            let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
            assert!(msg.contains("canaryPolicy.pacing.judgeMargin"), "{msg}");
        }
        // A margin as wide as the regression: no weight fits a budget, which is refused; without
        // a budget the margin is not read.
        let p = Pacing {
            judge_margin: 1.0,
            exposure_budget: Some(3_000.0),
            ..Pacing::default()
        };
        let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
        assert!(
            msg.contains("canaryPolicy.pacing.judgeMargin `1`") && msg.contains("never catch"),
            "{msg}"
        );
        let p = Pacing {
            exposure_budget: None,
            ..p
        };
        assert!(p.validate("canaryPolicy.pacing").is_ok());
        let p = Pacing {
            robust_batch: Some(Duration::ZERO),
            ..Pacing::default()
        };
        let msg = p.validate("canaryPolicy.pacing").unwrap_err().to_string();
        assert!(
            msg.contains("canaryPolicy.pacing.robustBatch `0s`") && msg.contains("outlast"),
            "{msg}"
        );
    }
}
