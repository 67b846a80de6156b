//! Sums of exponentials kept in logs, where e-values of hundreds of nats live.

/// `ln(e^a + e^b)`, stable.
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// `ln Σ e^{x_i}`, stable.
pub(crate) fn log_sum_exp(xs: &[f64]) -> f64 {
    let m = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + xs.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `ln((e^a + e^b)/2)`, stable.
pub(crate) fn log_mean_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + (((a - m).exp() + (b - m).exp()) / 2.0).ln()
}

/// Refuses a logarithm read back from a saved state unless it is finite: the tests only ever
/// hold finite ones, and one that is not would leave an e-value NaN or stuck.
pub(crate) fn check_finite_log(path: &str, v: f64) -> crate::Result<()> {
    if v.is_finite() {
        return Ok(());
    }
    Err(crate::Error::invalid_input(
        path,
        v,
        "must be a finite logarithm",
    ))
}
