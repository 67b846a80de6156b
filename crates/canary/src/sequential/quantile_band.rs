//! Anytime-valid bounds on a quantile from a sketch: the time-uniform Dvoretzky–Kiefer–Wolfowitz
//! band of Howard & Ramdas (2022, Theorem 2), which holds for every sample size at once.

use serin_signals::LatencySketch;

use super::moments::FLOOR_MS;

/// The half-width `u_n` of Howard & Ramdas's time-uniform DKW band at level `1 − alpha`.
fn dkw_band(n: u64, alpha: f64) -> f64 {
    let n = n.max(1) as f64;
    0.85 * (((std::f64::consts::E * n).ln().ln() + 0.8 * (1612.0 / alpha).ln()) / n).sqrt()
}

/// Bounds, in logs, on the true `p`-quantile of the values a sketch summarizes: its empirical
/// quantiles at `p ∓ (u_n + 1/n)` (the `1/n` covers the sketch's rank convention);
/// `±inf` where the band leaves `(0, 1)`.
pub(super) fn quantile_bounds(s: &LatencySketch, p: f64, alpha: f64) -> (f64, f64) {
    let n = s.count();
    let u = dkw_band(n, alpha) + 1.0 / n.max(1) as f64;
    let ln_q = |q: f64| s.quantile(q).map_or(f64::NAN, |v| v.max(FLOOR_MS).ln());
    let lo = if p - u > 0.0 {
        ln_q(p - u)
    } else {
        f64::NEG_INFINITY
    };
    let hi = if p + u < 1.0 {
        ln_q(p + u)
    } else {
        f64::INFINITY
    };
    (lo, hi)
}
