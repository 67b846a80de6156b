//! The standard normal quantile that the Mann-Whitney interval inverts.

use statrs::distribution::{ContinuousCDF, Normal};

/// `z` such that `P(Z > z) = p` for a standard normal `Z` (R's `qnorm(p, lower.tail = FALSE)`).
/// For `p` outside (0, 1) the answer is ±∞ or NaN, as in R.
pub(crate) fn upper_quantile(p: f64) -> f64 {
    if p.is_nan() {
        return f64::NAN;
    }
    // Quantiles below the median are mirrored so both tails are computed from the small
    // probability, as R does, which keeps `upper_quantile(p) == -upper_quantile(1 - p)`.
    let n = Normal::standard();
    if p <= 0.5 {
        -n.inverse_cdf(p)
    } else {
        n.inverse_cdf(1.0 - p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_r_qnorm() {
        // R 4.2: sprintf("%.17g", qnorm(0.01, lower.tail = FALSE))
        let r = 2.3263478740408408;
        assert!((upper_quantile(0.01) - r).abs() < 1e-14);
        assert!((upper_quantile(0.99) + r).abs() < 1e-14);
        assert_eq!(upper_quantile(0.5), 0.0);
    }
}
