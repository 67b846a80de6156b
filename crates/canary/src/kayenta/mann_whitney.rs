//! The Mann-Whitney (Wilcoxon rank-sum) confidence interval for a location shift and the
//! Hodges-Lehmann estimate, computed exactly as R's
//! `wilcox.test(x, y, conf.int = TRUE, exact = FALSE)` computes them.
//!
//! Kayenta's `NetflixACAJudge` classifies a metric from this interval, so parity with Kayenta
//! starts here. R inverts the normal approximation of the rank-sum statistic (with the tie
//! correction of its variance and a continuity correction) and solves for the shift with
//! `uniroot(tol = 1e-4)`. The statistic is a step function of the shift, so the bounds R reports
//! are points inside a jump chosen by Brent's iteration; [`shift_interval`] replays that iteration
//! (see `zeroin`) and agrees with R to better than 1e-6 on the committed test vectors
//! (`fixtures/wilcox_cases.json`, made by `fixtures/gen_wilcox.R`). R's tolerance is absolute,
//! so where the shifts span less than 1 the classifier searches to that fraction of it instead
//! (`Precision::UnitFree`): there R's bounds are only as close to the jump as `1e-4` allows.

use std::cmp::Ordering;

use crate::kayenta::normal::upper_quantile;
use crate::kayenta::zeroin::zeroin2;
use crate::{Error, Result};

/// R's `uniroot` tolerance as `wilcox.test` passes it (`tol.root = 1e-4`).
pub const ROOT_TOLERANCE: f64 = 1e-4;
/// R's `uniroot` iteration budget (`maxiter = 1000`).
const MAX_ITERATIONS: u32 = 1000;

/// A confidence interval for the shift `experiment − control` and its Hodges-Lehmann estimate.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShiftInterval {
    /// Lower confidence bound of the shift.
    pub lower: f64,
    /// Upper confidence bound of the shift.
    pub upper: f64,
    /// The Hodges-Lehmann estimate of the shift (R's "difference in location").
    pub estimate: f64,
    /// The confidence level of `[lower, upper]`.
    pub confidence: f64,
    /// Whether every root search met R's tolerance (R warns when one does not).
    pub converged: bool,
}

/// Both samples, sorted once, with what the rank statistic needs at any shift.
struct RankSum<'a> {
    x: &'a [f64],
    y: &'a [f64],
    nx: f64,
    ny: f64,
}

impl RankSum<'_> {
    /// R's `W(d)`: the standardized rank-sum statistic of `x − d` against `y`, with the tie
    /// correction of its variance and, if `correct`, the continuity correction toward zero.
    /// `None` when every value is tied (zero variance).
    fn w(&self, d: f64, correct: bool) -> Option<f64> {
        let (rank_sum_x, ties) = self.rank_sum(d);
        let (nx, ny) = (self.nx, self.ny);
        let dz = rank_sum_x - nx * (nx + 1.0) / 2.0 - nx * ny / 2.0;
        let correction = if correct { sign(dz) * 0.5 } else { 0.0 };
        let sigma =
            ((nx * ny / 12.0) * ((nx + ny + 1.0) - ties / ((nx + ny) * (nx + ny - 1.0)))).sqrt();
        (sigma > 0.0).then(|| (dz - correction) / sigma)
    }

    /// The sum of the mid-ranks of `x − d` in the pooled sample and `Σ (t³ − t)` over tie groups.
    /// Both sorted inputs stay sorted after the shift, so one merge ranks them.
    fn rank_sum(&self, d: f64) -> (f64, f64) {
        let (mut i, mut j) = (0usize, 0usize);
        let mut rank_sum_x = 0.0;
        let mut ties = 0.0;
        let mut position = 0usize;
        let next = |i: usize, j: usize| -> Option<f64> {
            match (self.x.get(i).map(|v| v - d), self.y.get(j)) {
                (Some(a), Some(&b)) => Some(if a <= b { a } else { b }),
                (Some(a), None) => Some(a),
                (None, Some(&b)) => Some(b),
                (None, None) => None,
            }
        };
        while let Some(value) = next(i, j) {
            let mut in_x = 0usize;
            let mut in_y = 0usize;
            while self.x.get(i).is_some_and(|v| v - d == value) {
                in_x += 1;
                i += 1;
            }
            while self.y.get(j).is_some_and(|&v| v == value) {
                in_y += 1;
                j += 1;
            }
            let t = (in_x + in_y) as f64;
            // Ranks position+1 ..= position+t share their mean.
            let mid_rank = position as f64 + (t + 1.0) / 2.0;
            rank_sum_x += mid_rank * in_x as f64;
            ties += t * t * t - t;
            position += in_x + in_y;
        }
        (rank_sum_x, ties)
    }
}

fn sign(v: f64) -> f64 {
    match v.partial_cmp(&0.0) {
        Some(Ordering::Greater) => 1.0,
        Some(Ordering::Less) => -1.0,
        _ => 0.0,
    }
}

fn sorted_finite(field: &'static str, values: &[f64]) -> Result<Vec<f64>> {
    if values.is_empty() {
        return Err(Error::invalid_input(
            field,
            "[]",
            "needs at least one value",
        ));
    }
    if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::invalid_input(
            field,
            bad,
            "every value must be finite (remove or replace NaN first)",
        ));
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    Ok(sorted)
}

/// The two-sided confidence interval at `confidence` for the shift of `experiment` relative to
/// `control` (`experiment − control`) and the Hodges-Lehmann estimate, as R's
/// `wilcox.test(experiment, control, conf.int = TRUE, conf.level = confidence, exact = FALSE)`
/// reports them (continuity correction on for the interval and off for the estimate, as in R).
///
/// Errors name the input: an empty sample, a non-finite value, a confidence outside (0, 1), or
/// samples that cannot bracket a shift (both constant, or every value tied).
///
/// ```
/// use serin_canary::kayenta::shift_interval;
///
/// let canary = [10.0, 11.0, 12.0];
/// let baseline = [1.0, 2.0, 3.0];
/// let ci = shift_interval(&canary, &baseline, 0.98)?;
/// assert_eq!((ci.lower, ci.upper, ci.estimate), (7.0, 11.0, 9.0)); // as R reports
/// # Ok::<(), serin_canary::Error>(())
/// ```
pub fn shift_interval(
    experiment: &[f64],
    control: &[f64],
    confidence: f64,
) -> Result<ShiftInterval> {
    search(experiment, control, confidence, Precision::AsR)
}

/// How finely the bounds and the estimate are searched for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Precision {
    /// R's absolute tolerance, [`ROOT_TOLERANCE`]: R's numbers, whatever the data's unit.
    AsR,
    /// R's tolerance where the range of shifts spans at least 1, and that fraction of the
    /// range where it spans less, so that the interval scales with the data. With R's absolute
    /// `1e-4`, error rates written as fractions (a range of a few `1e-4`) end their search
    /// after a few steps, anywhere inside the range, while the same rates in percent are
    /// searched to the jump: the label would depend on the unit. Kayenta's own solver (Commons
    /// Math's, to an absolute `1e-6`) has the same flaw at smaller scales.
    UnitFree,
}

/// [`shift_interval`] searched to `precision`.
pub(crate) fn search(
    experiment: &[f64],
    control: &[f64],
    confidence: f64,
    precision: Precision,
) -> Result<ShiftInterval> {
    if !(confidence > 0.0 && confidence < 1.0) {
        return Err(Error::invalid_input(
            "confidence",
            confidence,
            "must lie strictly between 0 and 1",
        ));
    }
    let x = sorted_finite("experiment", experiment)?;
    let y = sorted_finite("control", control)?;
    let (x_min, x_max, y_min, y_max) = match (x.first(), x.last(), y.first(), y.last()) {
        (Some(&a), Some(&b), Some(&c), Some(&d)) => (a, b, c, d),
        _ => {
            return Err(Error::invalid_input(
                "experiment",
                "[]",
                "needs at least one value",
            ));
        }
    };
    let mu_min = x_min - y_max;
    let mu_max = x_max - y_min;
    if mu_min >= mu_max {
        return Err(Error::invalid_input(
            "experiment",
            format!("constant {x_min} against constant control {y_min}"),
            "two constant samples leave no range of shifts to search",
        ));
    }
    let stat = RankSum {
        x: &x,
        y: &y,
        nx: x.len() as f64,
        ny: y.len() as f64,
    };
    let all_tied = || {
        Error::invalid_input(
            "experiment",
            format!("{} values against {} control values", x.len(), y.len()),
            "every value is tied, so the rank statistic has no variance",
        )
    };
    let tolerance = match precision {
        Precision::AsR => ROOT_TOLERANCE,
        Precision::UnitFree => ROOT_TOLERANCE * (mu_max - mu_min).min(1.0),
    };
    let w_min = stat.w(mu_min, true).ok_or_else(all_tied)?;
    let w_max = stat.w(mu_max, true).ok_or_else(all_tied)?;
    let mut converged = true;

    // R: root(zq) returns an endpoint when the statistic never crosses zq inside the range.
    let mut root = |zq: f64| -> Result<f64> {
        let f_lower = w_min - zq;
        if f_lower <= 0.0 {
            return Ok(mu_min);
        }
        let f_upper = w_max - zq;
        if f_upper >= 0.0 {
            return Ok(mu_max);
        }
        let mut tied = false;
        let r = zeroin2(
            mu_min,
            mu_max,
            f_lower,
            f_upper,
            |d| match stat.w(d, true) {
                Some(w) => w - zq,
                None => {
                    tied = true;
                    f64::NAN
                }
            },
            tolerance,
            MAX_ITERATIONS,
        );
        if tied {
            return Err(all_tied());
        }
        converged &= r.converged;
        Ok(r.root)
    };
    let alpha = 1.0 - confidence;
    let z = upper_quantile(alpha / 2.0);
    let lower = root(z)?;
    let upper = root(-z)?;

    // The estimate: the root of the uncorrected statistic (R sets `correct <- FALSE` first).
    let e_lower = stat.w(mu_min, false).ok_or_else(all_tied)?;
    let e_upper = stat.w(mu_max, false).ok_or_else(all_tied)?;
    if sign(e_lower) * sign(e_upper) > 0.0 {
        return Err(Error::invalid_input(
            "experiment",
            format!("W({mu_min}) = {e_lower}, W({mu_max}) = {e_upper}"),
            "the rank statistic does not change sign over the range of shifts",
        ));
    }
    let mut tied = false;
    let est = zeroin2(
        mu_min,
        mu_max,
        e_lower,
        e_upper,
        |d| match stat.w(d, false) {
            Some(w) => w,
            None => {
                tied = true;
                f64::NAN
            }
        },
        tolerance,
        MAX_ITERATIONS,
    );
    if tied {
        return Err(all_tied());
    }
    converged &= est.converged;
    Ok(ShiftInterval {
        lower,
        upper,
        estimate: est.root,
        confidence,
        converged,
    })
}

/// The rank sum of `experiment` in the pooled sample (mid-ranks for ties), for the CLES effect
/// size. Non-finite values must have been removed.
pub(crate) fn experiment_rank_sum(experiment: &[f64], control: &[f64]) -> f64 {
    let mut x = experiment.to_vec();
    let mut y = control.to_vec();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    RankSum {
        x: &x,
        y: &y,
        nx: x.len() as f64,
        ny: y.len() as f64,
    }
    .rank_sum(0.0)
    .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mid_ranks_and_tie_sums() {
        let x = [1.0, 2.0, 2.0];
        let y = [2.0, 3.0];
        let s = RankSum {
            x: &x,
            y: &y,
            nx: 3.0,
            ny: 2.0,
        };
        // Pooled 1, 2, 2, 2, 3: ranks 1, 3, 3, 3, 5; x holds 1 + 3 + 3.
        assert_eq!(s.rank_sum(0.0), (7.0, 24.0));
        // Shifting x by 1 gives 0, 1, 1 below 2, 3: ranks 1, 2.5, 2.5.
        assert_eq!(s.rank_sum(1.0), (6.0, 6.0));
    }

    #[test]
    fn rejects_bad_input_by_name() {
        let msg = |r: Result<ShiftInterval>| r.unwrap_err().to_string();
        assert!(msg(shift_interval(&[], &[1.0], 0.98)).contains("experiment"));
        assert!(msg(shift_interval(&[1.0], &[], 0.98)).contains("control"));
        assert!(msg(shift_interval(&[1.0, f64::NAN], &[1.0, 2.0], 0.98)).contains("NaN"));
        assert!(msg(shift_interval(&[1.0, 2.0], &[1.0, 2.0], 1.0)).contains("confidence"));
        assert!(msg(shift_interval(&[3.0, 3.0], &[1.0, 1.0], 0.98)).contains("constant"));
    }

    #[test]
    fn a_clear_shift_is_bracketed() {
        let x: Vec<f64> = (0..30).map(|i| 10.0 + f64::from(i) * 0.1).collect();
        let y: Vec<f64> = (0..30).map(|i| f64::from(i) * 0.1).collect();
        let ci = shift_interval(&x, &y, 0.98).unwrap();
        assert!(ci.lower < 10.0 && 10.0 < ci.upper, "{ci:?}");
        assert!((ci.estimate - 10.0).abs() < 1e-3, "{ci:?}");
        assert!(ci.converged);
    }
}
