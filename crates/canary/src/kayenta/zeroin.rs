//! Brent's root finder exactly as R's `uniroot` runs it (`R_zeroin2` in R's `zeroin.c`).
//!
//! R's `wilcox.test` finds its confidence bounds and its Hodges-Lehmann estimate by running
//! `uniroot` with `tol = 1e-4` on a *step* function. The answer it reports is wherever Brent's
//! iteration happens to stop inside a jump, not the jump itself, so matching R to 1e-6 means
//! reproducing the same sequence of steps: same interpolation rules, same tolerance arithmetic,
//! same order of floating-point operations.

/// The result of one root search.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Root {
    /// The approximation returned (R's `root`).
    pub(crate) root: f64,
    /// Whether the search met its tolerance within the iteration budget (R warns otherwise).
    pub(crate) converged: bool,
}

/// Finds a root of `f` in `[ax, bx]` given `fa = f(ax)` and `fb = f(bx)` of opposite signs (or a
/// zero), stopping when the bracket is within `tol` (plus a relative term of `2ε|b|`).
pub(crate) fn zeroin2(
    ax: f64,
    bx: f64,
    fa: f64,
    fb: f64,
    mut f: impl FnMut(f64) -> f64,
    tol: f64,
    max_iter: u32,
) -> Root {
    let (mut a, mut b) = (ax, bx);
    let (mut fa, mut fb) = (fa, fb);
    let (mut c, mut fc) = (a, fa);

    if fa == 0.0 {
        return Root {
            root: a,
            converged: true,
        };
    }
    if fb == 0.0 {
        return Root {
            root: b,
            converged: true,
        };
    }

    // R counts `maxit + 1` passes through the loop.
    for _ in 0..=max_iter {
        let prev_step = b - a;
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol_act = 2.0 * f64::EPSILON * b.abs() + tol / 2.0;
        let mut new_step = (c - b) / 2.0;

        if new_step.abs() <= tol_act || fb == 0.0 {
            return Root {
                root: b,
                converged: true,
            };
        }

        if prev_step.abs() >= tol_act && fa.abs() > fb.abs() {
            let cb = c - b;
            let (mut p, mut q);
            if a == c {
                let t1 = fb / fa;
                p = cb * t1;
                q = 1.0 - t1;
            } else {
                let qq = fa / fc;
                let t1 = fb / fc;
                let t2 = fb / fa;
                p = t2 * (cb * qq * (qq - t1) - (b - a) * (t1 - 1.0));
                q = (qq - 1.0) * (t1 - 1.0) * (t2 - 1.0);
            }
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if p < (0.75 * cb * q - (tol_act * q).abs() / 2.0) && p < (prev_step * q / 2.0).abs() {
                new_step = p / q;
            }
        }

        if new_step.abs() < tol_act {
            new_step = if new_step > 0.0 { tol_act } else { -tol_act };
        }
        a = b;
        fa = fb;
        b += new_step;
        fb = f(b);
        if (fb > 0.0 && fc > 0.0) || (fb < 0.0 && fc < 0.0) {
            c = a;
            fc = fa;
        }
    }
    Root {
        root: b,
        converged: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_smooth_root_within_tolerance() {
        let r = zeroin2(0.0, 2.0, -2.0, 2.0, |x| x * x - 2.0, 1e-10, 1000);
        assert!(r.converged);
        assert!((r.root - std::f64::consts::SQRT_2).abs() < 1e-9, "{r:?}");
    }

    #[test]
    fn returns_an_endpoint_that_is_already_a_root() {
        let r = zeroin2(
            1.0,
            3.0,
            0.0,
            5.0,
            |_| unreachable!("not evaluated"),
            1e-4,
            10,
        );
        assert_eq!(r.root, 1.0);
    }

    #[test]
    fn reports_non_convergence_when_the_budget_runs_out() {
        let r = zeroin2(0.0, 1000.0, -1.0, 1.0, |x| x - 123.456, 1e-12, 1);
        assert!(!r.converged);
    }
}
