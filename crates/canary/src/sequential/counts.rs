//! The anytime-valid count test: which arm did each error come from?
//!
//! # Model
//!
//! Following Lindon & Malek (2022), errors of arm *i* arrive at rate `ρᵢ·e^{δᵢ}·λ(t)`: a shared,
//! unknown and arbitrarily varying load `λ(t)`, the arm's share of traffic `ρᵢ`, and the arm's own
//! error propensity. Conditional on an error occurring, it came from the canary with probability
//! `θ = ρ·r / (ρ·r + 1 − ρ)`, where `ρ` is the canary's share and `r = e^{δ_c − δ_b}` the ratio of
//! the canary's error rate to the baseline's. The load cancels, so two counters per sample
//! suffice, whatever the traffic does, and the share may change from one sample to the next.
//!
//! The null hypothesis is "the canary is not worse by more than the margin": `r ≤ r₀ = 1 + margin`
//! (with `margin = 0`, any increase is a regression). The share `ρ` of each sample is the observed
//! share of requests in that sample ([`CountTest::update`]) or the share stated by the caller
//! ([`CountTest::update_with_share`]). With observed shares and binomial errors, the canary's
//! errors given the sample's total are hypergeometric, which is less dispersed (in the convex
//! order) than the binomial the likelihood ratio assumes, so the bound below still holds.
//!
//! # The e-process: a predictable plug-in likelihood ratio
//!
//! Before each sample the test picks a *bet* `r̂ ≥ r₀` from the samples it has already seen, and
//! multiplies its wealth by the likelihood ratio of the sample's `c` canary and `b` baseline
//! errors under `r̂` against `r₀`:
//!
//! ```text
//! W ← W · (θ̂/θ₀)^c · ((1 − θ̂)/(1 − θ₀))^b
//! ```
//!
//! For every `r ≤ r₀` each factor has expectation at most 1 given the past (the expectation is
//! increasing in the true `θ` and equals 1 at `θ₀`), so `W` is a nonnegative supermartingale
//! starting at 1 under the whole composite null, and by **Ville's inequality**
//! `P(sup_t W_t ≥ 1/α) ≤ α`: the test may be checked after every sample, for ever, and its false
//! rollback probability stays at most `α`. The e-value after `n` samples is `W_n`; the anytime
//! p-value is `min(1, 1 / max_{s≤n} W_s)`.
//!
//! The bet `r̂` is an estimate of the current rate ratio from **exponentially discounted** counts
//! (half-life [`CountTestConfig::half_life`] errors), shrunk towards a prior guess and clipped to
//! `[r₀, r_max]`. It bets close to the truth on a regression present from the start.
//!
//! # Late regressions: a mixture over start times
//!
//! A plug-in estimate lags behind a regression that starts after a long good period (a leak, a
//! filling cache), and a test that only multiplies likelihood ratios since the start must first
//! repay the small losses of the good period. So a second component, weighted
//! [`CountTestConfig::restart_weight`], mixes fixed bets `r̂ ∈ r₀·{1.5, 2.5, 5}` over **start
//! times**: a candidate start every [`CountTestConfig::restart_every`] errors (those a burst of
//! errors makes due at one sample start as one, with their summed weight). Half of the prior
//! is spread evenly in time over the first `H` samples ([`CountTestConfig::restart_horizon`],
//! an hour of one-second samples): the `k`-th candidate, started at sample `t_k`, takes
//! `½·(min(t_k, H) − min(t_{k−1}, H))/H`, the share of the samples since the candidate before
//! it. The other half decays over candidates, `½/((k+1)(k+2))`, so that candidates after the
//! horizon still have weight. Each weight `π_k` is fixed from the past when its candidate starts
//! and the weights never sum to more than 1, so the mixture stays a test supermartingale.
//!
//! Each candidate is the likelihood ratio since its own start, so the evidence of the good
//! minutes before it cannot dilute it; it pays only `ln(1/π_k)` for not knowing when the
//! regression began: within the horizon about `ln(2H/Δ)` for candidates `Δ` samples apart, the
//! logarithm of twice the number of candidates in the horizon (6 nats at 500 requests/s with
//! 0.5% errors, a candidate every 20 s; 3 at 20 requests/s, one every 500 s), and about `2 ln k`
//! after it. Weighting by time rather than by candidate index keeps that price matched to the
//! rate: a prior spread over a fixed number of candidates would cover ten hours at 20
//! requests/s and minutes at 500 (in the harness, a late regression at 20 requests/s is caught
//! 10% sooner than with one spread over 200 candidates). That price is real: a regression
//! that starts after thousands of good errors needs a few times the evidence of one present
//! from the start, never the unbounded debt of a single test run from the start. The mixture is
//! kept in O(1) state per bet with the Shiryaev–Roberts-style identity
//! `Σ_k π_k W_t/W_{s_k} = W_t · Σ_k π_k/W_{s_k}`.
//!
//! The e-value is `(1 − w)·plug-in + w·start-time mixture`. Both components are test
//! supermartingales under the null, so their average is one too and the guarantee below is
//! unchanged: the price of the start-time component on a regression present from the start is
//! `ln(1/(1 − w))` nats of evidence (0.22 for the default `w = 0.2`).
//!
//! # Guarantee
//!
//! Under the null (`r ≤ r₀`, with any load `λ(t)`, any shares, any stopping rule), every
//! component is a nonnegative supermartingale with initial value at most 1, so
//! `P(∃t: E_t ≥ 1/α) ≤ α` by Ville's inequality. This holds over an unbounded run and needs no
//! knowledge of the baseline's error rate; the only modelling assumption is the conditional one
//! above (given the errors of a sample, each came from the canary independently with probability
//! `θ`), which per-request traffic satisfies but per-arm rate multipliers that wander over time
//! (overdispersion) do not: see `BatchCountTest` for that case.
//!
//! The test cannot tell such wander from evidence, but it can see that its errors clump: it
//! batches them until each arm expects 8 under equal rates and, from ten batches on, reports when
//! their log-ratios scatter more than independent requests explain
//! ([`CountTest::excess_scatter`], a note in the judge's evidence; it decides nothing). The
//! harness counts the note at each rollback: at 33%–58% of the false rollbacks that wandering
//! rates cause at a 50% share; at 0.3%–0.5% of them at a 5% share, where the canary's few errors
//! (one every 8 s) vary mostly by chance and the wander adds only 14%–26% to their variance
//! however they are batched, too little to tell within the hour; at 1 of 1,908 chance false
//! rollbacks in independent traffic; and at none of the 33,485 rollbacks of real regressions
//! there.
//!
//! # The ratio's confidence sequence, split by split
//!
//! Beside the e-process, the test keeps a confidence sequence for the rate ratio
//! ([`CountTest::ratio_interval`]), from which a judge *passes* a canary once it lies below the
//! limit. Its share `ρ` must be the same for all its errors, so it restarts in a new **segment**
//! each time the traffic split changes ([`CountTest::start_segment`]). Each segment's sequence
//! misses the ratio with probability at most its level's complement, however often it is read;
//! at `α` in every segment, a canary truly worse than the limit would pass at one of `k` splits
//! with probability up to `k·α`. So the `k`-th segment spends `α·6/(π²k²)`, a share of `α` that
//! sums to `α` over all segments: by the union bound, the chance that a canary worse than the
//! limit ever passes stays at most `α` over the whole run, whatever the number of splits. Only
//! segments that held an error are numbered (one without an error never gave an interval, so
//! never spent its share). The e-process, and so every rollback decision, does not depend on
//! segments at all.
//!
//! Two-sided mode runs a second test with the arms' roles swapped (is the *baseline* worse by more
//! than the margin?) and averages the two e-values (an average of e-values is an e-value).
//!
//! The state is O(1): a few floating-point numbers per direction (no allocation). An update with
//! errors multiplies exact integer powers of rate ratios into pending linear factors — no
//! logarithm or exponential unless a factor leaves a safe range, a candidate start is added or
//! the e-value could reach the threshold — and a sample without errors costs almost nothing.

use serde::{Deserialize, Serialize};

use super::logspace::{check_finite_log, log_add_exp, log_mean_exp, log_sum_exp};
use super::ratio_interval::{ratio_cs, ratio_of, segment_alpha};
use super::scatter::ErrorScatter;
use super::settings::{Sides, check_above, check_at_least, check_open_unit, check_rejection};
use super::starts::{
    LateStart, Onset, check_start_mixture, heaviest_start, start_tail, start_weight, start_weights,
    unknown_onsets, unknown_start,
};
use crate::judge::Interval;
use crate::{Error, Result};

/// Settings of a [`CountTest`].
///
/// ```
/// use serin_canary::sequential::CountTestConfig;
///
/// // Fail only if the canary's error rate is more than 10% higher, at α = 0.05.
/// let cfg = CountTestConfig::new(0.05).with_margin(0.10);
/// assert!(cfg.validate("counts").is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct CountTestConfig {
    /// The false-rollback probability bound, in `(0, 1)`. Default `0.05`.
    pub alpha: f64,
    /// The practical-significance margin as a fraction: fail only if the canary's error rate is
    /// more than `(1 + margin)` times the baseline's. `0` (the default) fails on any increase.
    pub margin: f64,
    /// One- or two-sided. Default [`Sides::CanaryWorse`].
    pub sides: Sides,
    /// Half-life, in errors (both arms together), of the discounted counts the bet is estimated
    /// from. Shorter follows a late regression faster; longer bets more precisely on a constant
    /// one. Default `200`.
    pub half_life: f64,
    /// The largest rate ratio the test bets on. Default `8`.
    pub max_ratio: f64,
    /// The prior guess of the ratio the bet shrinks towards while few errors have been seen, as a
    /// multiple of `1 + margin`. Default `2.5`.
    pub prior_ratio: f64,
    /// The weight of that prior guess, in baseline-equivalent errors. Default `16`.
    pub prior_weight: f64,
    /// The weight `w` of the start-time mixture that catches late regressions, in `[0, 1)`;
    /// `0` turns it off. Default `0.2`.
    pub restart_weight: f64,
    /// Errors (both arms) between candidate start times of that mixture. Default `50`.
    pub restart_every: u64,
    /// The samples (updates) over which half of the start-time prior is spread evenly in time:
    /// each candidate start takes the share of the samples since the one before it (the other
    /// half decays as `1/k²` over candidates). Default `3600`, an hour of one-second samples.
    pub restart_horizon: u64,
}

impl Default for CountTestConfig {
    fn default() -> Self {
        CountTestConfig {
            alpha: 0.05,
            margin: 0.0,
            sides: Sides::CanaryWorse,
            half_life: 200.0,
            max_ratio: 8.0,
            prior_ratio: 2.5,
            prior_weight: 16.0,
            restart_weight: 0.2,
            restart_every: 50,
            restart_horizon: 3_600,
        }
    }
}

impl CountTestConfig {
    /// The defaults with the given `alpha`.
    pub fn new(alpha: f64) -> Self {
        CountTestConfig {
            alpha,
            ..Self::default()
        }
    }

    /// With the practical-significance margin (a fraction: `0.1` = fail only if worse by > 10%).
    pub fn with_margin(mut self, margin: f64) -> Self {
        self.margin = margin;
        self
    }

    /// With one- or two-sided testing.
    pub fn with_sides(mut self, sides: Sides) -> Self {
        self.sides = sides;
        self
    }

    /// Checks every field; `path` prefixes the field names in errors (`judges[0].counts`).
    pub fn validate(&self, path: &str) -> Result<()> {
        check_open_unit(&format!("{path}.alpha"), self.alpha)?;
        check_at_least(
            path,
            "margin",
            self.margin,
            0.0,
            "must be a finite fraction >= 0 (0.1 = fail only if worse by more than 10%)",
        )?;
        check_at_least(
            path,
            "halfLife",
            self.half_life,
            1.0,
            "must be a finite number of errors >= 1",
        )?;
        check_above(
            path,
            "maxRatio",
            self.max_ratio,
            1.0 + self.margin,
            format!(
                "must be finite and above 1 + margin ({})",
                1.0 + self.margin
            ),
        )?;
        check_at_least(
            path,
            "priorRatio",
            self.prior_ratio,
            1.0,
            "must be a finite multiple >= 1",
        )?;
        check_above(
            path,
            "priorWeight",
            self.prior_weight,
            0.0,
            "must be a finite number of errors > 0",
        )?;
        check_start_mixture(path, self.restart_weight, self.restart_horizon)?;
        if self.restart_every == 0 {
            return Err(Error::invalid_config(
                format!("{path}.restartEvery"),
                self.restart_every,
                "must be at least one error",
            ));
        }
        Ok(())
    }
}

/// The fixed bets of the start-time mixture, as multiples of `r₀`.
const GRID: [f64; 3] = [1.5, 2.5, 5.0];

/// Bets are multiplied in linear space while the product of the factors not yet folded into
/// the logarithms stays within `[1/PENDING_LIMIT, PENDING_LIMIT]`.
const PENDING_LIMIT: f64 = 1e150;

/// The size of a fixed bet's `ln W^j` beyond which it is moved into the sum over candidate
/// starts (see `Direction::fold_pending`); a double resolves `10⁶` to `10⁻¹⁰`.
const REBASE_LOG: f64 = 1e6;

/// Samples with more errors than this are bet on in log space: their linear factors
/// (`r^c`, up to `8^c`) could leave the range of `f64`.
const LINEAR_MAX_ERRORS: u64 = 64;

fn one() -> f64 {
    1.0
}

fn ones() -> [f64; 3] {
    [1.0; 3]
}

/// `x^n` by repeated squaring, inline. These are the products, in the order, of the library
/// routine that `f64::powi` calls for an exponent known only at run time (`__powidf2`), so the
/// result is the same to the bit; that call took a fifth of a two-sided update.
#[inline(always)]
fn pow_small(mut x: f64, mut n: u32) -> f64 {
    let mut r = 1.0;
    loop {
        if n & 1 == 1 {
            r *= x;
        }
        n >>= 1;
        if n == 0 {
            return r;
        }
        x *= x;
    }
}

/// One direction of the test: a plug-in bettor and a start-time mixture of fixed bets.
///
/// Each wealth is `exp(log_x) · pending_x`: per sample the likelihood-ratio factor is a product
/// of integer powers of ratios of the share-weighted rates, `(r/r₀)^c · (d(r₀)/d(r))^(c+b)`,
/// multiplied into `pending_x` (no logarithm, no exponential), and folded into `log_x` only
/// when it leaves a safe range, when a candidate start is added, or when the e-value is
/// computed. "Could the e-value reach the threshold?" is asked in linear space against
/// `skip_x = exp(log_skip − log_x)`, recomputed at each fold. Both forms hold the same wealth up
/// to floating-point rounding, so the guarantee is unchanged.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Direction {
    /// `ln W` of the plug-in bettor, without the pending factor.
    log_plug: f64,
    /// The plug-in bettor's factors not yet folded into `log_plug`.
    #[serde(default = "one")]
    pending_plug: f64,
    /// Discounted errors of the tested arm divided by its share.
    weighted_tested: f64,
    /// Discounted errors of the other arm divided by its share.
    weighted_other: f64,
    /// `ln W^j` since the start, per fixed bet, without the pending factors (less what
    /// `fold_pending` has moved into `log_starts`).
    log_grid: [f64; 3],
    /// The fixed bets' factors not yet folded into `log_grid`.
    #[serde(default = "ones")]
    pending_grid: [f64; 3],
    /// `ln Σ_k π_k / W^j_{s_k}` over the candidate starts so far, per fixed bet (plus what
    /// `fold_pending` has moved there from `log_grid`).
    log_starts: [f64; 3],
    /// The pending factors at or above which a term could reach the threshold, as of the last
    /// fold (0 = unknown: check at the next sample). Serialized, so that a resumed test folds
    /// exactly when the original would have and continues identically.
    #[serde(default)]
    skip_plug: f64,
    #[serde(default)]
    skip_grid: [f64; 3],
    /// The share the cached ratios were computed for (0 = none).
    #[serde(skip)]
    cache_share: f64,
    /// `d(r₀) = 1 + ρ(r₀ − 1)` and `d(r₀)/d(r₀·g_j)` for that share.
    #[serde(skip)]
    cache_d0: f64,
    #[serde(skip)]
    cache_grid: [f64; 3],
}

/// Equal when the wealth states are equal (the caches are not state).
impl PartialEq for Direction {
    fn eq(&self, o: &Self) -> bool {
        self.log_plug == o.log_plug
            && self.pending_plug == o.pending_plug
            && self.weighted_tested == o.weighted_tested
            && self.weighted_other == o.weighted_other
            && self.log_grid == o.log_grid
            && self.pending_grid == o.pending_grid
            && self.log_starts == o.log_starts
            && self.skip_plug == o.skip_plug
            && self.skip_grid == o.skip_grid
    }
}

impl Direction {
    /// Checks a direction read back: a pending factor at or below 0, a logarithm of wealth
    /// that is not finite, or a negative discounted count, would turn the e-value into NaN (a
    /// test that can never reject) or its bet into one no past could have made. `path` names
    /// the direction in errors.
    fn check(&self, path: &str) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid_input(
                    format!("{path}.{name}"),
                    v,
                    "must be a finite factor > 0",
                ))
            }
        };
        let non_negative = |name: &str, v: f64, what: &str| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                Err(Error::invalid_input(
                    format!("{path}.{name}"),
                    v,
                    format!("must be a finite {what} >= 0"),
                ))
            }
        };
        positive("pendingPlug", self.pending_plug)?;
        for (j, v) in self.pending_grid.iter().enumerate() {
            positive(&format!("pendingGrid[{j}]"), *v)?;
        }
        check_finite_log(&format!("{path}.logPlug"), self.log_plug)?;
        for j in 0..GRID.len() {
            check_finite_log(&format!("{path}.logGrid[{j}]"), self.log_grid[j])?;
            check_finite_log(&format!("{path}.logStarts[{j}]"), self.log_starts[j])?;
        }
        non_negative("weightedTested", self.weighted_tested, "discounted count")?;
        non_negative("weightedOther", self.weighted_other, "discounted count")?;
        non_negative("skipPlug", self.skip_plug, "threshold")?;
        for (j, v) in self.skip_grid.iter().enumerate() {
            non_negative(&format!("skipGrid[{j}]"), *v, "threshold")?;
        }
        Ok(())
    }

    fn new(ln_first_start: f64) -> Self {
        Direction {
            log_plug: 0.0,
            pending_plug: 1.0,
            weighted_tested: 0.0,
            weighted_other: 0.0,
            log_grid: [0.0; 3],
            pending_grid: [1.0; 3],
            // The first candidate starts at once, with weight π_0.
            log_starts: [ln_first_start; 3],
            skip_plug: 0.0,
            skip_grid: [0.0; 3],
            cache_share: 0.0,
            cache_d0: 1.0,
            cache_grid: [1.0; 3],
        }
    }

    /// `ln W` of the plug-in bettor.
    fn log_plug(&self) -> f64 {
        self.log_plug + self.pending_plug.ln()
    }

    /// `ln W^j` of fixed bet `j`.
    fn log_grid(&self, j: usize) -> f64 {
        self.log_grid[j] + self.pending_grid[j].ln()
    }

    /// Folds every pending factor into the logarithms and recomputes the linear thresholds.
    #[cold]
    fn fold(&mut self, p: &Params) {
        self.fold_pending();
        self.refresh_skips(p);
    }

    /// Folds every pending factor into the logarithms. A fixed bet's `ln W^j` that has grown
    /// beyond [`REBASE_LOG`] is moved into its `ln Σ_k π_k / W^j_{s_k}`: only their sum counts,
    /// and two terms of 10¹⁹ (counts near `u64::MAX`) would leave it thousands of nats off.
    fn fold_pending(&mut self) {
        self.log_plug = self.log_plug();
        self.pending_plug = 1.0;
        for j in 0..GRID.len() {
            self.log_grid[j] = self.log_grid(j);
            self.pending_grid[j] = 1.0;
            if self.log_grid[j].abs() > REBASE_LOG {
                self.log_starts[j] += self.log_grid[j];
                self.log_grid[j] = 0.0;
            }
        }
    }

    /// Recomputes the linear thresholds from the logarithms. A wealth more than `e^709` below
    /// the threshold gives an infinite one, kept as the largest double: the pending factors
    /// stay far below either, and the state still saves in formats without infinities.
    fn refresh_skips(&mut self, p: &Params) {
        self.skip_plug = (p.log_skip - self.log_plug).exp().min(f64::MAX);
        for j in 0..GRID.len() {
            self.skip_grid[j] = (p.log_skip - self.log_grid[j] - self.log_starts[j])
                .exp()
                .min(f64::MAX);
        }
    }

    /// Bets on `c` errors of the tested arm and `b` of the other, the tested arm holding `share`
    /// of the traffic. With `θ = ρr/(ρr + 1 − ρ)` and `d(r) = 1 + ρ(r − 1)`, the likelihood
    /// ratio of `r` against `r₀` is `(r/r₀)^c · (d(r₀)/d(r))^(c + b)`.
    #[inline]
    fn update(&mut self, p: &Params, c: u64, b: u64, share: f64) {
        let r0 = p.null_ratio;
        if self.cache_share != share {
            self.cache_share = share;
            self.cache_d0 = 1.0 + share * (r0 - 1.0);
            for (j, g) in GRID.iter().enumerate() {
                self.cache_grid[j] = self.cache_d0 / (1.0 + share * (r0 * g - 1.0));
            }
        }
        let e = c.saturating_add(b);
        let guess = (self.weighted_tested + p.prior_weight * p.prior_ratio)
            / (self.weighted_other + p.prior_weight);
        let r_hat = guess.clamp(r0, p.max_ratio);
        let d1 = 1.0 + share * (r_hat - 1.0);
        let (cf, ef) = (c as f64, c as f64 + b as f64);
        if e <= LINEAR_MAX_ERRORS {
            // Exact integer powers: no transcendental call on the common path.
            let (ci, ei) = (c as u32, e as u32);
            if r_hat > r0 {
                self.pending_plug *= pow_small(r_hat / r0, ci) * pow_small(self.cache_d0 / d1, ei);
            }
            if p.restarts {
                for j in 0..GRID.len() {
                    self.pending_grid[j] *=
                        pow_small(p.grid[j], ci) * pow_small(self.cache_grid[j], ei);
                }
            }
            let out = |x: f64| !(x < PENDING_LIMIT && x * PENDING_LIMIT > 1.0);
            if out(self.pending_plug) || self.pending_grid.iter().any(|x| out(*x)) {
                self.fold(p);
            }
        } else {
            self.fold(p);
            if r_hat > r0 {
                self.log_plug += cf * (r_hat / r0).ln() + ef * (self.cache_d0 / d1).ln();
            }
            if p.restarts {
                for j in 0..GRID.len() {
                    self.log_grid[j] += cf * p.grid[j].ln() + ef * self.cache_grid[j].ln();
                }
            }
            self.fold(p);
        }
        let decay = match p.decay_table.get(e as usize) {
            Some(d) => *d,
            None => p.decay_per_error.powi(i32::try_from(e).unwrap_or(i32::MAX)),
        };
        self.weighted_tested = self.weighted_tested * decay + cf / share;
        self.weighted_other = self.weighted_other * decay + b as f64 / (1.0 - share);
    }

    /// Adds a candidate start with prior weight `π` (given as `ln π`); returns, per fixed bet,
    /// its term and the log-sums over starts without and with it (see [`Onset::follow`]).
    #[cold]
    fn add_start(&mut self, p: &Params, ln_pi: f64) -> [(f64, f64, f64); 3] {
        self.fold_pending();
        let added = std::array::from_fn(|j| {
            let (term, before) = (ln_pi - self.log_grid[j], self.log_starts[j]);
            self.log_starts[j] = log_add_exp(before, term);
            (term, before, self.log_starts[j])
        });
        self.refresh_skips(p);
        added
    }

    /// Whether some term could have reached `log_skip` (and the e-value the threshold).
    #[inline]
    fn could_reach(&self, p: &Params) -> bool {
        if self.pending_plug >= self.skip_plug {
            return true;
        }
        p.restarts && (0..GRID.len()).any(|j| self.pending_grid[j] >= self.skip_grid[j])
    }

    /// `ln E` of this direction: `(1 − w)·W_plug + w·(Σ_j W^j·A^j/3 + tail)`.
    fn log_e(&self, p: &Params, ln_tail: f64) -> f64 {
        if !p.restarts {
            return self.log_plug();
        }
        log_sum_exp(&self.log_e_terms(p, ln_tail))
    }

    /// The terms of [`log_e`](Self::log_e) with the start-time mixture on: the plug-in
    /// bettor's, each fixed bet's and the tail's, weighted.
    fn log_e_terms(&self, p: &Params, ln_tail: f64) -> [f64; 5] {
        let mut terms = [0.0; 5];
        terms[0] = p.ln_plug_weight + self.log_plug();
        for j in 0..GRID.len() {
            terms[j + 1] =
                p.ln_restart_weight + p.ln_grid_weight + self.log_grid(j) + self.log_starts[j];
        }
        terms[4] = p.ln_restart_weight + ln_tail;
        terms
    }

    /// The fixed bet whose start in `heaviest` the start-time mixture weighs most, with that
    /// start, when that mixture holds more of this direction's e-value than the plug-in bettor
    /// (see [`LateStart`] for why that start).
    fn deciding_start(
        &self,
        p: &Params,
        ln_tail: f64,
        heaviest: &[Onset<CountTotals>; 3],
    ) -> Option<(usize, Onset<CountTotals>)> {
        if !p.restarts {
            return None;
        }
        let terms = self.log_e_terms(p, ln_tail);
        if log_sum_exp(&terms[1..]) <= terms[0] {
            return None;
        }
        heaviest_start(heaviest, &self.log_starts, |j| self.log_grid(j))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Params {
    null_ratio: f64,
    max_ratio: f64,
    prior_ratio: f64,
    prior_weight: f64,
    decay_per_error: f64,
    log_threshold: f64,
    /// Below this largest log term the e-value cannot reach the threshold.
    log_skip: f64,
    restarts: bool,
    ln_plug_weight: f64,
    ln_restart_weight: f64,
    /// The fixed bets `g_j` (multiples of `r₀`).
    grid: [f64; 3],
    ln_grid_weight: f64,
    /// `decay_per_error^k` for the `k < 16` errors of a typical sample.
    decay_table: [f64; 16],
}

impl Params {
    fn from_config(cfg: &CountTestConfig) -> Self {
        let null_ratio = 1.0 + cfg.margin;
        let threshold = 1.0 / cfg.alpha;
        let decay = 0.5f64.powf(1.0 / cfg.half_life);
        Params {
            null_ratio,
            max_ratio: cfg.max_ratio,
            prior_ratio: null_ratio * cfg.prior_ratio,
            prior_weight: cfg.prior_weight,
            decay_per_error: decay,
            log_threshold: threshold.ln(),
            // E <= e^max + 1 (the tail of the start-time prior is at most 1).
            log_skip: if threshold > 1.0 {
                (threshold - 1.0).ln()
            } else {
                f64::NEG_INFINITY
            },
            restarts: cfg.restart_weight > 0.0,
            ln_plug_weight: (1.0 - cfg.restart_weight).ln(),
            ln_restart_weight: cfg.restart_weight.ln(),
            grid: GRID,
            ln_grid_weight: -(GRID.len() as f64).ln(),
            decay_table: std::array::from_fn(|k| decay.powi(k as i32)),
        }
    }
}

/// Totals of both arms' requests and errors since the start (or the last reset).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CountTotals {
    /// Baseline requests.
    pub baseline_requests: u64,
    /// Baseline errors.
    pub baseline_errors: u64,
    /// Canary requests.
    pub canary_requests: u64,
    /// Canary errors.
    pub canary_errors: u64,
}

/// Counts since the traffic share last changed, for the confidence sequence of the ratio.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Segment {
    /// The share stated by the caller, or 0 when the shares come from request counts.
    stated_share: f64,
    canary_requests: u64,
    baseline_requests: u64,
    canary_errors: u64,
    baseline_errors: u64,
}

/// Whether a canary's share leaves both arms a share the bets can divide by: within
/// `f64::EPSILON` of 0 or 1, one arm's share (or `1 − share`) rounds to 0 or so near it that
/// its errors weigh infinitely, which would turn the bet's estimate into NaN for good and the
/// state into one that cannot be saved.
fn usable_share(share: f64) -> bool {
    share >= f64::EPSILON && 1.0 - share >= f64::EPSILON
}

/// The canary's share of the requests of a sample or a batch, summed in floats so that no count
/// overflows.
pub(crate) fn share_of(canary_requests: u64, baseline_requests: u64) -> f64 {
    canary_requests as f64 / (canary_requests as f64 + baseline_requests as f64)
}

impl Segment {
    fn share(&self) -> f64 {
        if self.canary_requests > 0 || self.baseline_requests > 0 {
            share_of(self.canary_requests, self.baseline_requests)
        } else {
            self.stated_share
        }
    }
}

/// The anytime-valid sequential count test (see the [`sequential`](super) module): feed it the errors of
/// each arm per sample (per second is fine: an update costs tens of nanoseconds) and read whether
/// it has rejected "the canary is not worse".
///
/// ```
/// use serin_canary::sequential::{CountTest, CountTestConfig};
///
/// let mut test = CountTest::new(CountTestConfig::new(0.05))?;
/// // 950 baseline requests with 5 errors, 50 canary requests with 3 errors, every second.
/// let mut rejected = false;
/// for _ in 0..60 {
///     rejected = test.update(950, 5, 50, 3);
///     if rejected { break; }
/// }
/// assert!(rejected, "an error rate ~11 times the baseline's is caught within a minute");
/// assert!(test.e_value() >= 20.0);
/// # Ok::<(), serin_canary::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CountTestState", into = "CountTestState")]
pub struct CountTest {
    state: CountTestState,
    params: Params,
}

/// The serialized state of a [`CountTest`]; the derived parameters are recomputed on load.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CountTestState {
    config: CountTestConfig,
    worse: Direction,
    better: Direction,
    totals: CountTotals,
    segment: Segment,
    updates: u64,
    /// Errors of both arms fed to the bets.
    errors_bet: u64,
    /// The index of the next candidate start time.
    next_start: u64,
    /// The update at which the last candidate started.
    #[serde(default = "unknown_start")]
    last_start_at: u64,
    /// The largest e-value computed exactly (the e-value is only computed exactly when it could
    /// reach the threshold).
    max_log_e: f64,
    /// The update after which the e-value first reached `1/α`, if it has.
    rejected_at: Option<u64>,
    /// Whether that rejection was for "canary worse".
    rejected_worse: bool,
    /// How the errors' batch log-ratios scatter against what independent requests explain (a
    /// diagnostic).
    #[serde(default)]
    scatter: ErrorScatter,
    /// The current segment's number `k` among the segments that held an error (see
    /// [`segment_alpha`]), from 1. A state saved before segments were numbered reads 0 and is
    /// numbered on load ([`CountTestState::resume_segments`]).
    #[serde(default)]
    segments: u64,
    /// The heaviest candidate start of each fixed bet of the "worse" direction, with the totals
    /// when it started, until a rejection (the "better" direction of the two-sided mode keeps
    /// none: the state stays within 1 KiB).
    #[serde(default = "unknown_onsets")]
    heaviest: [Onset<CountTotals>; 3],
    /// The fixed bet whose heaviest start decided the rejection, when the start-time mixture
    /// did (see [`CountTest::late_start`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    late_bet: Option<u8>,
    /// The canary errors the whole run would have had at the baseline's rate: each sample's
    /// baseline errors times `s/(1 − s)` at its share `s`. Against the canary's errors it is
    /// the run's ratio across every split, which a rejection is graded by. A state saved before
    /// it was kept reads [`UNKNOWN_RUN`], and its grade stays the current split's ratio.
    #[serde(default = "unknown_run")]
    run_expected: f64,
}

/// [`CountTestState::run_expected`] of a state saved before it was kept: not a count (they are
/// never negative), so that it stays unknown rather than counting from a resume.
const UNKNOWN_RUN: f64 = -1.0;

fn unknown_run() -> f64 {
    UNKNOWN_RUN
}

impl CountTestState {
    fn new(config: CountTestConfig) -> Self {
        let ln_first = start_weight(0, 0, 0, config.restart_horizon).ln();
        CountTestState {
            config,
            worse: Direction::new(ln_first),
            better: Direction::new(ln_first),
            totals: CountTotals::default(),
            segment: Segment::default(),
            updates: 0,
            errors_bet: 0,
            next_start: 1,
            last_start_at: 0,
            max_log_e: 0.0,
            rejected_at: None,
            rejected_worse: false,
            scatter: ErrorScatter::default(),
            segments: 1,
            heaviest: [Onset::first(); 3],
            late_bet: None,
            run_expected: 0.0,
        }
    }

    /// `ln` of the tail of the start-time prior not yet spent.
    fn ln_tail(&self) -> f64 {
        start_tail(
            self.next_start,
            self.last_start_at,
            self.config.restart_horizon,
        )
        .ln()
    }

    /// The fixed bet whose heaviest start decided a rejection for "worse", if the start-time
    /// mixture did and the start is a later one than the test's own (which reads the whole
    /// run). The heaviest starts stop following candidates from then on, so the one named here
    /// stays the one that decided.
    fn deciding_bet(&self, p: &Params) -> Option<u8> {
        if !self.rejected_worse {
            return None;
        }
        let (j, onset) = self
            .worse
            .deciding_start(p, self.ln_tail(), &self.heaviest)?;
        (onset.at > 0).then_some(j as u8)
    }

    /// Numbers the current segment of a state saved before segments were numbered: one past
    /// the errors the earlier segments held (the run's errors not in this segment). Each earlier
    /// segment that spent any `α` held at least one of them, so the number is never below the
    /// one a numbering run would have reached and the interval never spends more of `α` than
    /// the numbering allows (it may spend less); a run whose errors all lie in this segment, as
    /// one that never changed its split, keeps the first segment's share.
    fn resume_segments(&mut self) {
        if self.segments == 0 {
            let here = self
                .segment
                .canary_errors
                .saturating_add(self.segment.baseline_errors);
            self.segments = self.errors_bet.saturating_sub(here).saturating_add(1);
        }
    }
}

impl TryFrom<CountTestState> for CountTest {
    type Error = Error;
    fn try_from(mut state: CountTestState) -> Result<Self> {
        state.config.validate("countTest.config")?;
        state.scatter.restore("countTest.scatter")?;
        for (j, onset) in state.heaviest.iter().enumerate() {
            onset.check(&format!("countTest.heaviest[{j}]"))?;
        }
        state.worse.check("countTest.worse")?;
        state.better.check("countTest.better")?;
        check_finite_log("countTest.maxLogE", state.max_log_e)?;
        let run = state.run_expected;
        if !(run.is_finite() && (run >= 0.0 || run == UNKNOWN_RUN)) {
            return Err(Error::invalid_input(
                "countTest.runExpected",
                run,
                "must be a finite number of errors, at least 0 (or -1, unknown)",
            ));
        }
        let stated = state.segment.stated_share;
        if stated != 0.0 && !usable_share(stated) {
            return Err(Error::invalid_input(
                "countTest.segment.statedShare",
                stated,
                "must be 0 (no share stated) or a share that update_with_share takes, strictly \
                 between 0 and 1",
            ));
        }
        // A one-sided test never rejects for a better canary; a record that it did would have
        // the judge report a lower error rate, graded as at most a warning.
        check_rejection(
            "countTest",
            state.config.sides,
            state.rejected_at.is_some(),
            state.rejected_worse,
        )?;
        state.resume_segments();
        // Candidate 0 starts with the test; a later one numbered 0 would spend its weight twice.
        if state.next_start == 0 {
            return Err(Error::invalid_input(
                "countTest.nextStart",
                state.next_start,
                "must be at least 1: the first candidate start is taken when the test begins",
            ));
        }
        Ok(CountTest {
            params: Params::from_config(&state.config),
            state,
        })
    }
}

impl From<CountTest> for CountTestState {
    fn from(t: CountTest) -> Self {
        t.state
    }
}

impl CountTest {
    /// A test with the given settings; invalid settings are an error naming the field.
    pub fn new(config: CountTestConfig) -> Result<Self> {
        config.validate("countTest")?;
        Ok(CountTest {
            state: CountTestState::new(config),
            params: Params::from_config(&config),
        })
    }

    /// The settings.
    pub fn config(&self) -> &CountTestConfig {
        &self.state.config
    }

    /// Feeds one sample: each arm's requests and errors. The canary's share for this sample is
    /// the observed share of requests. Returns whether the test has rejected (now or before).
    ///
    /// A sample in which either arm served no requests carries no information about the ratio
    /// and only adds to the totals, as does one whose split is so lopsided that the canary's
    /// share lies within `f64::EPSILON` of 0 or 1 (one request in 4·10¹⁵). Errors above
    /// requests are clamped to the requests (use [`serin_signals::Counts`] upstream to reject
    /// them).
    #[inline]
    pub fn update(
        &mut self,
        baseline_requests: u64,
        baseline_errors: u64,
        canary_requests: u64,
        canary_errors: u64,
    ) -> bool {
        let b = baseline_errors.min(baseline_requests);
        let c = canary_errors.min(canary_requests);
        let s = &mut self.state;
        s.totals.baseline_requests = s.totals.baseline_requests.saturating_add(baseline_requests);
        s.totals.baseline_errors = s.totals.baseline_errors.saturating_add(b);
        s.totals.canary_requests = s.totals.canary_requests.saturating_add(canary_requests);
        s.totals.canary_errors = s.totals.canary_errors.saturating_add(c);
        s.updates = s.updates.saturating_add(1);
        // A sample in which an arm served nothing says nothing of the ratio. Its requests stay
        // out of the segment as its errors do (they reach it only through `bet`): counted
        // alone, they would tilt the segment's share and so its ratio, by 1.6x in an A/A run
        // at 20 requests/s with a 5% share, where the canary serves nothing in a third of the
        // seconds.
        if baseline_requests == 0 || canary_requests == 0 {
            return s.rejected_at.is_some();
        }
        let share = share_of(canary_requests, baseline_requests);
        if !usable_share(share) {
            return s.rejected_at.is_some();
        }
        s.segment.baseline_requests = s
            .segment
            .baseline_requests
            .saturating_add(baseline_requests);
        s.segment.canary_requests = s.segment.canary_requests.saturating_add(canary_requests);
        if b == 0 && c == 0 {
            return s.rejected_at.is_some();
        }
        self.bet(c, b, share)
    }

    /// Feeds one sample's errors with the canary's share of traffic stated by the caller (the
    /// Lindon & Malek form, for error counts without request counts, such as crashes). A share
    /// different from the previous one starts a new segment of the ratio's confidence sequence
    /// ([`start_segment`](Self::start_segment)).
    /// Returns whether the test has rejected; a share outside `(0, 1)`, or within
    /// `f64::EPSILON` of 0 or 1, is an error and changes nothing.
    pub fn update_with_share(
        &mut self,
        baseline_errors: u64,
        canary_errors: u64,
        canary_share: f64,
    ) -> Result<bool> {
        if !(canary_share > 0.0 && canary_share < 1.0) {
            return Err(Error::invalid_input(
                "canaryShare",
                canary_share,
                "must be a fraction strictly between 0 and 1",
            ));
        }
        if !usable_share(canary_share) {
            return Err(Error::invalid_input(
                "canaryShare",
                canary_share,
                format!(
                    "must lie at least {:e} from 0 and from 1: closer, one arm's share \
                     cannot be told from 0 in floating point",
                    f64::EPSILON
                ),
            ));
        }
        if self.state.segment.stated_share != canary_share {
            self.start_segment();
            self.state.segment.stated_share = canary_share;
        }
        let s = &mut self.state;
        s.totals.baseline_errors = s.totals.baseline_errors.saturating_add(baseline_errors);
        s.totals.canary_errors = s.totals.canary_errors.saturating_add(canary_errors);
        s.updates = s.updates.saturating_add(1);
        if baseline_errors.saturating_add(canary_errors) == 0 {
            return Ok(s.rejected_at.is_some());
        }
        Ok(self.bet(canary_errors, baseline_errors, canary_share))
    }

    /// How many times more the batches of errors scatter than independent requests explain,
    /// once that is too much to be chance (a `χ²` tail below 0.001, from ten batches on, each
    /// expecting at least 8 errors in either arm); `None` otherwise. Error rates that wander on
    /// their own in each arm, or a ratio that changes during the analysis, show here: the
    /// e-value then overstates the evidence, and the batched test
    /// ([`BatchCountTest`](super::BatchCountTest)) fits better. It decides nothing.
    pub fn excess_scatter(&self) -> Option<f64> {
        self.state.scatter.excess()
    }

    /// Starts a new segment for the ratio's confidence sequence (call it when the traffic split
    /// changes); the test itself is unaffected, it handles changing shares by construction.
    /// A segment that held no error never gave an interval, so it spent none of `α` and the
    /// new segment takes its number; otherwise the new one is numbered next.
    pub fn start_segment(&mut self) {
        let s = &mut self.state;
        if s.segment.canary_errors > 0 || s.segment.baseline_errors > 0 {
            s.segments = s.segments.saturating_add(1);
        }
        s.segment = Segment::default();
    }

    /// The current segment's number among the segments that held an error, from 1; its
    /// interval is at level `1 − α·6/(π²k²)` ([`ratio_interval`](Self::ratio_interval)).
    pub fn segments(&self) -> u64 {
        self.state.segments
    }

    #[inline]
    fn bet(&mut self, c: u64, b: u64, share: f64) -> bool {
        let p = &self.params;
        let s = &mut self.state;
        let two_sided = s.config.sides == Sides::TwoSided;
        s.worse.update(p, c, b, share);
        if two_sided {
            s.better.update(p, b, c, 1.0 - share);
        }
        s.segment.canary_errors = s.segment.canary_errors.saturating_add(c);
        s.segment.baseline_errors = s.segment.baseline_errors.saturating_add(b);
        if s.run_expected >= 0.0 {
            s.run_expected += b as f64 * share / (1.0 - share);
        }
        s.scatter.add(c, b, share);
        s.errors_bet = s.errors_bet.saturating_add(c.saturating_add(b));
        let every = s.config.restart_every;
        if p.restarts && s.errors_bet >= s.next_start.saturating_mul(every) {
            // Every candidate due by now starts at this sample, as one with their summed weight.
            let (k, last, t) = (s.next_start, s.last_start_at, s.updates);
            let through = (s.errors_bet / every).max(k);
            let ln_pi = start_weights(k, through, last, t, s.config.restart_horizon).ln();
            let added = s.worse.add_start(p, ln_pi);
            if s.rejected_at.is_none() {
                for (onset, added) in s.heaviest.iter_mut().zip(added) {
                    onset.follow(added, t, s.totals);
                }
            }
            if two_sided {
                s.better.add_start(p, ln_pi);
            }
            s.next_start = through.saturating_add(1);
            // A state saved before candidates kept their times keeps its time half spent.
            s.last_start_at = last.max(t);
        }
        if s.rejected_at.is_none()
            && (s.worse.could_reach(p) || (two_sided && s.better.could_reach(p)))
        {
            let log_e = self.log_e_value();
            let p = &self.params;
            let s = &mut self.state;
            s.max_log_e = s.max_log_e.max(log_e);
            if log_e >= p.log_threshold {
                s.rejected_worse = !two_sided || s.worse.log_e(p, 0.0) >= s.better.log_e(p, 0.0);
                s.rejected_at = Some(s.updates);
                s.late_bet = s.deciding_bet(p);
            } else {
                // Fold so that the next sample asks against fresh thresholds.
                s.worse.fold(p);
                if two_sided {
                    s.better.fold(p);
                }
            }
        }
        self.state.rejected_at.is_some()
    }

    fn log_e_value(&self) -> f64 {
        let s = &self.state;
        let ln_tail = s.ln_tail();
        match s.config.sides {
            Sides::CanaryWorse => s.worse.log_e(&self.params, ln_tail),
            Sides::TwoSided => log_mean_exp(
                s.worse.log_e(&self.params, ln_tail),
                s.better.log_e(&self.params, ln_tail),
            ),
        }
    }

    /// The current e-value (the test supermartingale's value); the test rejects at `1/α`.
    pub fn e_value(&self) -> f64 {
        self.log_e_value().exp()
    }

    /// The largest e-value seen at the updates where it could have reached `1/α` (at others it
    /// was known to be below); `min(1, 1/that)` is an anytime-valid p-value once it is at least 1.
    pub fn max_e_value(&self) -> f64 {
        self.state.max_log_e.exp().max(self.e_value())
    }

    /// Whether the e-value has ever reached `1/α`.
    pub fn rejected(&self) -> bool {
        self.state.rejected_at.is_some()
    }

    /// Whether a rejection was for "canary worse" (as opposed to "canary better" in two-sided
    /// mode); `None` before any rejection.
    pub fn rejected_worse(&self) -> Option<bool> {
        self.state.rejected_at.map(|_| self.state.rejected_worse)
    }

    /// The number of updates after which the test first rejected.
    pub fn rejected_at(&self) -> Option<u64> {
        self.state.rejected_at
    }

    /// The number of updates fed.
    pub fn updates(&self) -> u64 {
        self.state.updates
    }

    /// The threshold the e-value is compared with: `1/α`.
    pub fn threshold(&self) -> f64 {
        1.0 / self.state.config.alpha
    }

    /// Requests and errors fed so far.
    pub fn totals(&self) -> CountTotals {
        self.state.totals
    }

    /// The ratio of the canary's error rate to the baseline's over the current segment: infinite
    /// when only the canary has erred, NaN before any error (or before both arms had traffic).
    pub fn ratio_estimate(&self) -> f64 {
        let s = &self.state.segment;
        ratio_of(s.canary_errors, s.baseline_errors, s.share())
    }

    /// The same ratio over the whole run, across every split: the canary's errors over those it
    /// would have had at the baseline's rate at each sample's share. A split changed just
    /// before a rejection leaves the current segment a few errors, whose ratio says little of
    /// the run's. (The canary's errors are the run's total, which also holds those of samples
    /// in which the baseline served nothing.) Infinite when only the canary has erred, NaN
    /// before any error, for a state saved before the run was kept, and once the canary's
    /// errors reach `u64::MAX`, where their count saturates.
    pub fn run_ratio_estimate(&self) -> f64 {
        let (c, expected) = (self.state.totals.canary_errors, self.state.run_expected);
        // A canary error count that saturated at `u64::MAX` no longer counts the errors that
        // the expected ones (a float) go on counting: their ratio would fall with every sample.
        if expected == UNKNOWN_RUN || c == u64::MAX {
            return f64::NAN;
        }
        match (c, expected > 0.0) {
            (_, true) => c as f64 / expected,
            (0, false) => f64::NAN,
            (_, false) => f64::INFINITY,
        }
    }

    /// The candidate starts the start-time mixture follows (the heaviest of each bet), each as
    /// the samples before it: one of them is the [`late_start`](Self::late_start) a rejection
    /// may name.
    pub(super) fn followed_starts(&self) -> [u64; 3] {
        self.state.heaviest.map(|o| o.at)
    }

    /// Where the error-rate rise that the start-time mixture rejected for began, and the ratio
    /// of error rates since then with its interval at `1 − α`; `None` unless the test rejected
    /// for "canary worse" because of that mixture. The ratio reads the requests and errors
    /// since the start, so it is NaN, without an interval, for samples fed with stated shares
    /// ([`update_with_share`](Self::update_with_share)), which carry no request counts. The
    /// current segment's ratio can sit near 1 while the rise since a late start is clear: this
    /// says which the rejection rests on.
    pub fn late_start(&self) -> Option<LateStart> {
        let o = self.state.heaviest.get(usize::from(self.state.late_bet?))?;
        let (now, then) = (self.state.totals, o.sums);
        let c = now.canary_errors.saturating_sub(then.canary_errors);
        let b = now.baseline_errors.saturating_sub(then.baseline_errors);
        let share = share_of(
            now.canary_requests.saturating_sub(then.canary_requests),
            now.baseline_requests.saturating_sub(then.baseline_requests),
        );
        Some(LateStart {
            after: o.at,
            estimate: ratio_of(c, b, share),
            interval: ratio_cs(c, b, share, self.state.config.alpha),
        })
    }

    /// An anytime-valid confidence sequence for the ratio of error rates over the errors of the
    /// current segment (since the traffic split last changed), from Lindon & Malek's
    /// Beta-mixture form with a prior of 10 pseudo-errors centred on the share, at level
    /// `1 − α·6/(π²k²)` in the `k`-th segment ([`segments`](Self::segments)), stated in the
    /// interval's `level`: so the chance that any segment's interval ever misses the ratio, and
    /// a judge passes a canary worse than its limit, stays at most `α` over the whole run
    /// (see the module docs). `None` before any error. With shares from request counts the
    /// segment's pooled share is used, which is exact when the split is constant within the
    /// segment.
    pub fn ratio_interval(&self) -> Option<Interval> {
        self.segment_interval(segment_alpha(self.state.config.alpha, self.state.segments))
    }

    /// The current segment's confidence sequence at level `1 − alpha`.
    fn segment_interval(&self, alpha: f64) -> Option<Interval> {
        let s = &self.state.segment;
        ratio_cs(s.canary_errors, s.baseline_errors, s.share(), alpha)
    }

    /// Forgets every sample; the settings are kept.
    pub fn reset(&mut self) {
        self.state = CountTestState::new(self.state.config);
    }

    /// The bytes of state this test holds (it never allocates).
    pub const fn state_bytes() -> usize {
        std::mem::size_of::<CountTest>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        for (cfg, field) in [
            (CountTestConfig::new(0.0), "alpha"),
            (CountTestConfig::new(0.05).with_margin(-0.1), "margin"),
            (
                CountTestConfig {
                    half_life: 0.5,
                    ..Default::default()
                },
                "halfLife",
            ),
            (
                CountTestConfig {
                    max_ratio: 1.0,
                    ..Default::default()
                },
                "maxRatio",
            ),
        ] {
            let msg = CountTest::new(cfg).unwrap_err().to_string();
            assert!(msg.contains(&format!("countTest.{field}")), "{msg}");
        }
    }

    #[test]
    fn samples_without_errors_change_nothing_but_totals() {
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        for _ in 0..1_000 {
            assert!(!t.update(100, 0, 100, 0));
        }
        assert!((t.e_value() - 1.0).abs() < 1e-12);
        assert_eq!(t.totals().canary_requests, 100_000);
    }

    #[test]
    fn identical_arms_never_build_evidence_of_harm() {
        // Equal shares and equal errors every second: the bet sits at the null or loses.
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        for _ in 0..10_000 {
            assert!(!t.update(500, 3, 500, 3));
        }
        assert!(t.e_value() <= 1.0, "{}", t.e_value());
    }

    #[test]
    fn a_doubled_error_rate_is_detected_and_the_interval_covers_it() {
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        // Baseline 900 req/s with 0.9 errors/s (0.1%), canary 100 req/s with 0.2 errors/s
        // (0.2%), as a deterministic stream.
        let mut detected = None;
        for i in 0..600u64 {
            let c = u64::from(i % 5 == 0);
            let b = u64::from(i % 10 != 0);
            if t.update(900, b, 100, c) && detected.is_none() {
                detected = Some(i);
            }
        }
        assert!(detected.is_some(), "e = {}", t.e_value());
        assert!(
            (t.ratio_estimate() - 2.0).abs() < 1e-9,
            "{}",
            t.ratio_estimate()
        );
        let ci = t.ratio_interval().unwrap();
        assert!(ci.lower > 1.0 && ci.contains(2.0), "{ci:?}");
    }

    #[test]
    fn the_margin_tolerates_a_small_increase() {
        let cfg = CountTestConfig::new(0.05).with_margin(0.5);
        let mut t = CountTest::new(cfg).unwrap();
        // Canary 20% worse, every second, for an hour: never rejects with a 50% margin.
        for i in 0..3_600u64 {
            let c = u64::from(i % 5 < 1) * 6; // 1.2/s over 5 s on 100 req/s
            assert!(!t.update(100, 5 * u64::from(i % 5 == 0), 100, c));
        }
        assert!(t.e_value() < 1.0);
    }

    #[test]
    fn two_sided_mode_catches_a_better_canary_and_says_so() {
        let mut t = CountTest::new(CountTestConfig::new(0.05).with_sides(Sides::TwoSided)).unwrap();
        for _ in 0..600 {
            if t.update(500, 4, 500, 1) {
                break;
            }
        }
        assert_eq!(t.rejected_worse(), Some(false));
    }

    #[test]
    fn update_with_share_rejects_bad_shares_and_changes_nothing() {
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        let before = t.clone();
        assert!(t.update_with_share(1, 1, 1.0).is_err());
        assert!(t.update_with_share(1, 1, f64::NAN).is_err());
        assert_eq!(t, before);
        assert!(!t.update_with_share(10, 1, 0.1).unwrap());
    }

    #[test]
    fn samples_with_many_errors_take_the_log_path_and_agree_with_small_ones() {
        // 70 errors in one sample (beyond the linear path) against the same errors in 70
        // one-error samples: the bets differ (the plug-in adapts between samples) but both
        // see a tenfold canary rate, and the fixed bets agree exactly in what they multiply.
        let mut big = CountTest::new(CountTestConfig::default().with_margin(0.0)).unwrap();
        let mut small = big.clone();
        big.update(100_000, 35, 100_000, 35);
        for _ in 0..35 {
            small.update(10_000, 1, 10_000, 1);
        }
        let (gb, gs) = (big.state.worse, small.state.worse);
        for j in 0..GRID.len() {
            assert!(
                (gb.log_grid(j) - gs.log_grid(j)).abs() < 1e-9,
                "{gb:?} {gs:?}"
            );
        }
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        let mut rejected = false;
        for _ in 0..20 {
            rejected = t.update(100_000, 50, 10_000, 500);
            assert!(!t.e_value().is_nan());
        }
        assert!(rejected && t.rejected_worse() == Some(true));
    }

    /// The run's ratio reads every split: an even split at 1.4x then a 20% split at 1.4x give
    /// 1.4 over the run. A state saved before the run was kept reads it as unknown (NaN), never
    /// as infinite from the canary's errors alone.
    #[test]
    fn the_run_ratio_reads_every_split_and_an_old_state_leaves_it_unknown() {
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        for _ in 0..10 {
            t.update(1_000, 10, 1_000, 14);
            t.update(16_000, 160, 4_000, 56);
        }
        assert!(
            (t.run_ratio_estimate() - 1.4).abs() < 1e-9,
            "{}",
            t.run_ratio_estimate()
        );
        let mut old = serde_json::to_value(&t).unwrap();
        old.as_object_mut().unwrap().remove("runExpected").unwrap();
        let old: CountTest = serde_json::from_value(old).unwrap();
        assert!(old.run_ratio_estimate().is_nan());
        let mut bad = serde_json::to_value(&t).unwrap();
        bad["runExpected"] = (-5.0).into();
        let msg = serde_json::from_value::<CountTest>(bad)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("countTest.runExpected"), "{msg}");
    }

    /// Arms equally bad at counts near `u64::MAX`: the canary's error count saturates while
    /// the errors expected at the baseline's rate go on, so the run's ratio is unknown rather
    /// than a third after three samples.
    #[test]
    fn the_run_ratio_past_a_saturated_error_count_is_unknown_not_falling() {
        let mut t = CountTest::new(CountTestConfig::default()).unwrap();
        t.update(u64::MAX, u64::MAX / 2, u64::MAX, u64::MAX / 2);
        assert!((t.run_ratio_estimate() - 1.0).abs() < 1e-9);
        for _ in 0..2 {
            t.update(u64::MAX, u64::MAX / 2, u64::MAX, u64::MAX / 2);
        }
        let run = t.run_ratio_estimate();
        assert!(run.is_nan(), "{run}");
        assert!((t.ratio_estimate() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn state_survives_serde_and_continues_identically() {
        let mut a = CountTest::new(CountTestConfig::default()).unwrap();
        for i in 0..100u64 {
            a.update(100, i % 3, 20, i % 2);
        }
        let json = serde_json::to_string(&a).unwrap();
        let mut b: CountTest = serde_json::from_str(&json).unwrap();
        for i in 0..100u64 {
            a.update(100, i % 4, 20, i % 3);
            b.update(100, i % 4, 20, i % 3);
        }
        assert_eq!(a.e_value(), b.e_value());
        assert_eq!(a, b);
        // A state saved before the scatter diagnostic existed reads back with none.
        let mut old: serde_json::Value = serde_json::to_value(&a).unwrap();
        old.as_object_mut().unwrap().remove("scatter");
        let old: CountTest = serde_json::from_value(old).unwrap();
        assert_eq!(old.state.scatter, ErrorScatter::default());
        // One saved before candidate starts kept their times counts the time half of their
        // prior as spent, which can only lower the e-value.
        let mut even = CountTest::new(CountTestConfig::default()).unwrap();
        for _ in 0..300 {
            even.update(100, 1, 100, 1);
        }
        let mut old: serde_json::Value = serde_json::to_value(&even).unwrap();
        old.as_object_mut().unwrap().remove("lastStartAt").unwrap();
        let old: CountTest = serde_json::from_value(old).unwrap();
        assert!(old.e_value() < even.e_value(), "{}", even.e_value());
        assert!(
            CountTest::state_bytes() <= 1024,
            "{}",
            CountTest::state_bytes()
        );
    }

    /// A state saved before the heaviest candidate starts were kept loads and bets alike, and
    /// names the start a rejection rests on only where it knows it: the same as the test that
    /// kept them all.
    #[test]
    fn a_state_saved_before_heaviest_starts_were_kept_bets_alike() {
        let mut kept = CountTest::new(CountTestConfig::default()).unwrap();
        for i in 0..3_000u64 {
            kept.update(475, u64::from(i % 3 == 0), 25, u64::from(i % 57 == 0));
        }
        let mut old = serde_json::to_value(&kept).unwrap();
        old.as_object_mut().unwrap().remove("heaviest").unwrap();
        let mut old: CountTest = serde_json::from_value(old).unwrap();
        assert_eq!(old.state.heaviest, [Onset::unknown(); 3]);
        for i in 0..3_000u64 {
            let (b, c) = (u64::from(i % 3 == 0), u64::from(i % 10 == 0));
            assert_eq!(kept.update(475, b, 25, c), old.update(475, b, 25, c));
            assert_eq!(kept.e_value().to_bits(), old.e_value().to_bits());
        }
        let late = kept.late_start().expect("a late rise");
        assert!(late.after > 2_800 && late.estimate > 2.0, "{late:?}");
        assert!(old.late_start().is_none_or(|l| l == late), "{late:?}");
    }

    #[test]
    fn small_powers_match_powi_to_the_bit() {
        for x in [0.3f64, 0.999_7, 1.0, 1.000_3, 1.5, 7.25] {
            for n in 0..=LINEAR_MAX_ERRORS as u32 {
                let powi = std::hint::black_box(x).powi(std::hint::black_box(n as i32));
                assert_eq!(pow_small(x, n).to_bits(), powi.to_bits(), "{x}^{n}");
            }
        }
    }

    /// Taken relative to the maximum likelihood, the bound is the one formed directly from
    /// `ln Γ`, wherever that still resolves it.
    /// A sample in which one arm served nothing leaves the ratio alone: A/A with the canary
    /// idle every other second still estimates 1, and a canary twice as bad as the baseline,
    /// idle every other second, is never passed under a limit of 1.5.
    #[test]
    fn samples_where_an_arm_served_nothing_leave_the_ratio_alone() {
        let mut aa = CountTest::new(CountTestConfig::new(0.05)).unwrap();
        for _ in 0..1_000 {
            aa.update(100, 1, 0, 0);
            aa.update(100, 1, 100, 1);
        }
        let i = aa.ratio_interval().unwrap();
        assert!(
            (aa.ratio_estimate() - 1.0).abs() < 1e-9,
            "{}",
            aa.ratio_estimate()
        );
        assert!(i.lower <= 1.0 && 1.0 <= i.upper, "{i:?}");
        let mut worse = CountTest::new(CountTestConfig::new(0.05).with_margin(0.5)).unwrap();
        for n in 0..20_000 {
            worse.update(0, 0, 100, 2);
            worse.update(100, 1, 100, 2);
            let i = worse.ratio_interval().unwrap();
            assert!(worse.rejected() || i.upper >= 1.5, "{n}: passes at {i:?}");
        }
        assert!((worse.ratio_estimate() - 2.0).abs() < 1e-9);
    }

    #[test]
    fn each_split_s_interval_spends_its_share_of_alpha() {
        let alpha = 0.05;
        let level = |k: f64| 1.0 - alpha * 6.0 / (std::f64::consts::PI.powi(2) * k * k);
        let mut t = CountTest::new(CountTestConfig::new(alpha)).unwrap();
        for (k, share) in [0.1, 0.2, 0.5, 0.2].into_iter().enumerate() {
            t.update_with_share(9, 1, share).unwrap();
            assert_eq!(t.segments(), k as u64 + 1);
            let i = t.ratio_interval().unwrap();
            assert!(
                (i.level - level(k as f64 + 1.0)).abs() < 1e-15,
                "split {k}: {i:?}"
            );
        }
        // A split that saw no error gave no interval, so it spent nothing: the next takes its
        // number.
        t.update_with_share(0, 0, 0.3).unwrap();
        assert!(t.ratio_interval().is_none());
        t.update_with_share(9, 1, 0.4).unwrap();
        assert_eq!(t.segments(), 5);
        let i = t.ratio_interval().unwrap();
        assert!((i.level - level(5.0)).abs() < 1e-15, "{i:?}");
    }

    /// A canary worse by exactly the margin must never pass. Over a rollout of twenty splits,
    /// an interval at the full `α` in each split, checked after every sample, passes it at one
    /// of them in more than `α` of the runs; the split's share of `α` keeps that within `α`.
    #[test]
    fn over_many_splits_a_canary_at_the_limit_passes_in_at_most_alpha_of_the_runs() {
        use rand::{Rng, SeedableRng};
        let (alpha, ratio) = (0.05, 1.25);
        let cfg = CountTestConfig::new(alpha).with_margin(ratio - 1.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let (runs, splits, samples) = (200, 20, 20);
        let below = |i: Option<Interval>| i.is_some_and(|i| i.upper < ratio);
        let (mut full, mut spent) = (0, 0);
        for _ in 0..runs {
            let mut t = CountTest::new(cfg).unwrap();
            let (mut full_pass, mut spent_pass) = (false, false);
            for k in 0..splits {
                let share = [0.1, 0.25, 0.5][k % 3];
                let theta = share * ratio / (share * ratio + 1.0 - share);
                for _ in 0..samples {
                    let c = (0..5).filter(|_| rng.random_bool(theta)).count() as u64;
                    t.update_with_share(5 - c, c, share).unwrap();
                    full_pass = full_pass || below(t.segment_interval(alpha));
                    spent_pass = spent_pass || below(t.ratio_interval());
                }
            }
            full += usize::from(full_pass);
            spent += usize::from(spent_pass);
        }
        let allowed = alpha * runs as f64;
        assert!(full as f64 > allowed, "{full} of {runs} at the full alpha");
        assert!(
            spent as f64 <= allowed,
            "{spent} of {runs} with alpha spent"
        );
    }
}
