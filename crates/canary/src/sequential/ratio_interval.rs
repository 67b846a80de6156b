//! The count test's confidence sequence for the rate ratio `r` (canary's error rate over the
//! baseline's), from which its judge passes: Lindon & Malek's Beta-mixture interval for the
//! share `θ` of errors that came from the canary, mapped to `r` through the traffic split, and
//! the share of `α` each split's interval may spend.

use statrs::function::gamma::ln_gamma;

use crate::judge::Interval;

/// The ratio of the canary's error rate to the baseline's from `c` canary and `b` baseline errors
/// at the canary's `share` of traffic: infinite when only the canary has erred, NaN without
/// errors or without a share strictly between 0 and 1.
pub(super) fn ratio_of(c: u64, b: u64, share: f64) -> f64 {
    if !(share > 0.0 && share < 1.0) || (b == 0 && c == 0) {
        return f64::NAN;
    }
    (c as f64 / share) / (b as f64 / (1.0 - share))
}

/// The confidence sequence at level `1 − alpha` of that ratio, from Lindon & Malek's
/// Beta-mixture form with a prior of 10 pseudo-errors centred on the share; `None` without
/// errors or without a share strictly between 0 and 1.
pub(super) fn ratio_cs(c: u64, b: u64, share: f64, alpha: f64) -> Option<Interval> {
    if (c == 0 && b == 0) || !(share > 0.0 && share < 1.0) {
        return None;
    }
    let (lo, hi) = beta_mixture_cs(c as f64, b as f64, share, 10.0, alpha);
    let to_ratio = |theta: f64| {
        if theta <= 0.0 {
            0.0
        } else if theta >= 1.0 {
            f64::INFINITY
        } else {
            theta * (1.0 - share) / (share * (1.0 - theta))
        }
    };
    Some(Interval {
        lower: to_ratio(lo),
        upper: to_ratio(hi),
        level: 1.0 - alpha,
    })
}

/// The share of `α` the confidence sequence of the `k`-th segment (from 1) spends: `α·6/(π²k²)`,
/// which sums to `α` over all segments since `Σ 1/k² = π²/6`. Its price grows as `2 ln k` nats
/// of evidence, where halving per segment (`α/2^k`) would grow as `k ln 2`. Halving gives the
/// second to fifth segments more, but the first `α/2` rather than `0.61·α` and every segment
/// from the sixth on less and ever less (the twentieth `α·10⁻⁶` rather than `α·1.5·10⁻³`), so
/// a rollout of many steps could hardly pass at its late ones.
pub(super) fn segment_alpha(alpha: f64, k: u64) -> f64 {
    let k = k as f64;
    alpha * 6.0 / (std::f64::consts::PI * std::f64::consts::PI * k * k)
}

/// `ln B(a, b)`, total: statrs' `ln_beta` panics at a share of 0 or 1 (`a` or `b` zero), where
/// this gives infinities that the bisection below handles.
fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// `ln Γ(z) − ((z − ½) ln z − z)`, the remainder of Stirling's form (about `½ ln 2π`): from
/// `ln Γ` below 10, from its series above (within 10⁻⁸), where `ln Γ(z)` and the main term are
/// both large and their difference would lose the digits.
fn stirling_rest(z: f64) -> f64 {
    if z < 10.0 {
        ln_gamma(z) - ((z - 0.5) * z.ln() - z)
    } else {
        0.5 * std::f64::consts::TAU.ln() + 1.0 / (12.0 * z) - 1.0 / (360.0 * z * z * z)
    }
}

/// `ln B(a0 + c, b0 + b) − [c ln θ̂ + b ln(1 − θ̂)]` with `θ̂ = c/(c + b)`: the log marginal
/// likelihood of the Beta mixture below the maximum likelihood, a few nats. Both are about
/// `(c + b) ln(c + b)` nats, which a double holds only to thousands of nats beyond 10¹⁵ errors,
/// so the difference is taken term by term from Stirling's form, never from either.
fn ln_marginal_below_max(c: f64, b: f64, a0: f64, b0: f64) -> f64 {
    let (x, y) = (a0 + c, b0 + b);
    let s = x + y;
    // `k ln((x/s)/θ̂)` for the `k` errors of one arm and its prior weight: 0 without errors.
    let arm = |k: f64, prior: f64| {
        if k > 0.0 {
            k * ((prior / k).ln_1p() - ((a0 + b0) / (c + b)).ln_1p())
        } else {
            0.0
        }
    };
    arm(c, a0) + arm(b, b0) + (a0 - 0.5) * (x / s).ln() + (b0 - 0.5) * (y / s).ln() - 0.5 * s.ln()
        + stirling_rest(x)
        + stirling_rest(y)
        - stirling_rest(s)
}

/// The confidence sequence `{θ : BF(θ) < 1/α}` for a binomial proportion after `c` successes and
/// `b` failures, with a Beta(kρ, k(1−ρ)) mixture: the set where
/// `c·lnθ + b·ln(1−θ) > ln B(kρ + c, k(1−ρ) + b) − ln B(kρ, k(1−ρ)) + ln α`, taken relative to
/// the maximum likelihood so that astronomical counts keep the few nats that draw it.
fn beta_mixture_cs(c: f64, b: f64, share: f64, k: f64, alpha: f64) -> (f64, f64) {
    let (a0, b0) = (k * share, k * (1.0 - share));
    let theta_hat = c / (c + b);
    let bound = ln_marginal_below_max(c, b, a0, b0) - ln_beta(a0, b0) + alpha.ln();
    // The log-likelihood over its maximum; an arm without errors adds nothing.
    let below_max = |theta: f64| {
        let term = |k: f64, ratio: f64| if k > 0.0 { k * ratio.ln() } else { 0.0 };
        term(c, theta / theta_hat) + term(b, (1.0 - theta) / (1.0 - theta_hat))
    };
    let f = |theta: f64| below_max(theta) - bound;
    // The log-likelihood is concave with its maximum at the MLE; bisect on each side.
    let mle = theta_hat.clamp(1e-12, 1.0 - 1e-12);
    let solve = |mut inside: f64, mut outside: f64| {
        if f(outside) > 0.0 {
            return outside;
        }
        for _ in 0..80 {
            let mid = 0.5 * (inside + outside);
            if f(mid) > 0.0 {
                inside = mid;
            } else {
                outside = mid;
            }
        }
        inside
    };
    let lo = if c == 0.0 { 0.0 } else { solve(mle, 0.0) };
    let hi = if b == 0.0 { 1.0 } else { solve(mle, 1.0) };
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bound_relative_to_the_maximum_is_the_direct_one() {
        for (c, b, share) in [
            (30.0f64, 70.0f64, 0.3f64),
            (0.0, 5.0, 0.05),
            (3.0, 0.0, 0.5),
            (1e6, 7.0, 0.9),
        ] {
            let (a0, b0) = (10.0 * share, 10.0 * (1.0 - share));
            let max = if c > 0.0 { c * (c / (c + b)).ln() } else { 0.0 }
                + if b > 0.0 { b * (b / (c + b)).ln() } else { 0.0 };
            let direct = ln_beta(a0 + c, b0 + b) - max;
            let relative = ln_marginal_below_max(c, b, a0, b0);
            assert!(
                (direct - relative).abs() < 1e-7,
                "{c} {b}: {direct} {relative}"
            );
        }
    }

    #[test]
    fn beta_mixture_interval_covers_the_mle() {
        let (lo, hi) = beta_mixture_cs(30.0, 70.0, 0.3, 10.0, 0.05);
        assert!(lo < 0.3 && 0.3 < hi && lo > 0.1 && hi < 0.5, "{lo} {hi}");
    }
}
