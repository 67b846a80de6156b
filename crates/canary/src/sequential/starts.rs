//! Mixtures over the time a regression starts, so that one that begins late is not diluted by
//! the good period before it: the prior over candidate starts that the count and latency tests
//! share, and the latency test's fixed bets over those starts.

use serde::{Deserialize, Serialize};

use super::latency::WithinSums;
use super::logspace::{check_finite_log, log_add_exp};
use crate::judge::Interval;
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

/// Where a regression that the start-time mixture caught began, and its effect since then: what
/// a test reports when it rejected because of that mixture rather than the component from the
/// start ([`LatencyTest::late_start`](super::LatencyTest::late_start),
/// [`CountTest::late_start`](super::CountTest::late_start)).
///
/// The start is the candidate the mixture weighed most at the rejection. Its term in the mixture
/// is its prior weight times its likelihood ratio since it began, so, within its bet, it is the
/// most probable onset a posteriori under the mixture's prior: one onset that the data and the
/// prior both favour, not the first candidate whose own term would have crossed `1/α` (terms of
/// neighbouring candidates overlap, and which one crosses first is a matter of chance and of
/// the spacing of candidates), and one the state can follow in O(1), since a candidate's rank
/// among its bet's candidates never changes once it has started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LateStart {
    /// The samples (updates) fed before the start: the estimate reads the samples after them.
    pub after: u64,
    /// The effect since the start: the median shift (latency) or the ratio of error rates
    /// (counts), as the test's whole-run estimate states it.
    pub estimate: f64,
    /// Its confidence interval at `1 − α`, as if the start had been fixed in advance. It was
    /// chosen after the fact, by the data it reads, so the interval describes the period rather
    /// than guaranteeing coverage; the rejection's guarantee is the e-value's.
    pub interval: Option<Interval>,
}

/// The heaviest candidate start of one bet of a start-time mixture, with the test's sums when
/// it began, from which the estimate since it is taken.
///
/// It is kept as its **share** of the bet's sum over starts, in logs: every candidate of a bet
/// is multiplied by the same likelihood ratio from sample to sample, so shares change only
/// when a candidate is added, and a state that moves part of that common factor into the sum
/// (the count test's rebasing) leaves them as they are.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct Onset<T> {
    /// `ln` of its share of the bet's sum over starts (at most 0).
    pub(super) log_share: f64,
    /// The sample (update) at which it started; [`UNKNOWN_ONSET`] in a state saved before the
    /// heaviest starts were kept, whose share 0 then stands for all the earlier candidates.
    pub(super) at: u64,
    /// The test's sums at that sample.
    pub(super) sums: T,
}

/// The sample of an [`Onset`] that stands for the candidates of a state saved before the
/// heaviest starts were kept.
const UNKNOWN_ONSET: u64 = u64::MAX;

impl<T: Copy + Default> Onset<T> {
    /// The test's own first candidate, the whole sum over starts when the test begins.
    pub(super) fn first() -> Self {
        Onset {
            log_share: 0.0,
            at: 0,
            sums: T::default(),
        }
    }

    /// All the candidates of a state saved before the heaviest starts were kept: a later
    /// candidate takes their place only once it outweighs them together.
    pub(super) fn unknown() -> Self {
        Onset {
            at: UNKNOWN_ONSET,
            ..Self::first()
        }
    }

    /// Follows a candidate added to the bet's sum over starts at sample `at`, where the test's
    /// sums were `sums`: `term` is its term, `before` and `after` the log-sums without and with
    /// it. It becomes the heaviest if it outweighs the one kept.
    pub(super) fn follow(&mut self, (term, before, after): (f64, f64, f64), at: u64, sums: T) {
        let kept = self.log_share + before;
        if term > kept {
            *self = Onset {
                log_share: term - after,
                at,
                sums,
            };
        } else {
            self.log_share = kept - after;
        }
    }

    /// Checks a share read back, naming it under `path`.
    pub(super) fn check(&self, path: &str) -> Result<()> {
        check_finite_log(&format!("{path}.logShare"), self.log_share)
    }
}

/// The bet whose heaviest start the mixture weighs most now, with that start: each bet's is
/// weighed by its share of the bet's sum over starts (`log_sums`) times the factor the bet's
/// candidates share now (`common(j)`). `None` when it stands for the candidates of a state
/// saved before the heaviest starts were kept.
pub(super) fn heaviest_start<T: Copy>(
    heaviest: &[Onset<T>; 3],
    log_sums: &[f64; 3],
    common: impl Fn(usize) -> f64,
) -> Option<(usize, Onset<T>)> {
    (0..3)
        .map(|j| (heaviest[j].log_share + log_sums[j] + common(j), j))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, j)| (j, heaviest[j]))
        .filter(|(_, o)| o.at != UNKNOWN_ONSET)
}

/// Every bet's heaviest start in a state saved before they were kept.
pub(super) fn unknown_onsets<T: Copy + Default>() -> [Onset<T>; 3] {
    [Onset::unknown(); 3]
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
    /// The heaviest candidate start of each bet on the "slower" side.
    #[serde(default = "unknown_onsets")]
    heaviest_up: [Onset<WithinSums>; 3],
    /// The same on the "faster" side.
    #[serde(default = "unknown_onsets")]
    heaviest_down: [Onset<WithinSums>; 3],
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
            heaviest_up: [Onset::first(); 3],
            heaviest_down: [Onset::first(); 3],
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
            self.heaviest_up[j].check(&format!("{path}.heaviestUp[{j}]"))?;
            self.heaviest_down[j].check(&format!("{path}.heaviestDown[{j}]"))?;
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

    /// The candidate starts followed on both sides (the heaviest of each bet), each as the
    /// samples before it.
    pub(super) fn followed(&self) -> [u64; 6] {
        let (up, down) = (self.heaviest_up, self.heaviest_down);
        [
            up[0].at, up[1].at, up[2].at, down[0].at, down[1].at, down[2].at,
        ]
    }

    /// Starts a candidate for every bet whose spacing has passed, at the current sums and
    /// sample `t`: the sides' sums `up` and `down`, and the test's `sums` (whose precision is
    /// `V`).
    pub(super) fn add_due(
        &mut self,
        (up, down): (f64, f64),
        sums: WithinSums,
        t: u64,
        tau: f64,
        horizon: u64,
    ) {
        let v = sums.precision;
        for (j, k) in START_BETS.iter().enumerate() {
            let lambda = k * tau;
            if v < self.next_at[j] {
                continue;
            }
            let ln_pi = start_weight(self.started[j], self.last_at[j], t, horizon).ln();
            let quad = lambda * lambda * v / 2.0;
            let (term_up, term_down) = (ln_pi - lambda * up + quad, ln_pi + lambda * down + quad);
            let (up_before, down_before) = (self.log_up[j], self.log_down[j]);
            self.log_up[j] = log_add_exp(up_before, term_up);
            self.log_down[j] = log_add_exp(down_before, term_down);
            let added_up = (term_up, up_before, self.log_up[j]);
            self.heaviest_up[j].follow(added_up, t, sums);
            let added_down = (term_down, down_before, self.log_down[j]);
            self.heaviest_down[j].follow(added_down, t, sums);
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

    /// The candidate start the mixture weighs most now on one side, at that side's sum `s` and
    /// precision `v` (see [`heaviest_start`]).
    pub(super) fn heaviest(
        &self,
        s: f64,
        v: f64,
        tau: f64,
        worse: bool,
    ) -> Option<Onset<WithinSums>> {
        let (heaviest, log_sums, sign) = if worse {
            (&self.heaviest_up, &self.log_up, 1.0)
        } else {
            (&self.heaviest_down, &self.log_down, -1.0)
        };
        heaviest_start(heaviest, log_sums, |j| {
            let lambda = START_BETS[j] * tau;
            sign * lambda * s - lambda * lambda * v / 2.0
        })
        .map(|(_, o)| o)
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

    /// A candidate takes the place of the heaviest start only if it outweighs it, and one of a
    /// state saved before they were kept only if it outweighs all the earlier ones together;
    /// the shares follow the sum.
    #[test]
    fn a_candidate_replaces_the_heaviest_only_if_heavier() {
        let add = |o: &mut Onset<u64>, term: f64, before: f64, at: u64| {
            o.follow((term, before, log_add_exp(before, term)), at, at);
        };
        let mut unknown = Onset::<u64>::unknown();
        add(&mut unknown, 1.5, 2.0, 10);
        assert_eq!(unknown.at, UNKNOWN_ONSET);
        let sum = log_add_exp(2.0, 1.5);
        add(&mut unknown, 2.5, sum, 20);
        assert_eq!((unknown.at, unknown.sums), (20, 20));
        let sum = log_add_exp(sum, 2.5);
        assert!((unknown.log_share - (2.5 - sum)).abs() < 1e-15);
        add(&mut unknown, 2.4, sum, 30);
        assert_eq!(unknown.at, 20);
        let mut first = Onset::<u64>::first();
        add(&mut first, -1.0, 0.0, 5);
        assert_eq!(first.at, 0);
        assert!((first.log_share + (-1f64).exp().ln_1p()).abs() < 1e-15);
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
