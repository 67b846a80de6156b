//! The exact likelihoods of the overdispersed rows, for their oracles: of one arm's errors when
//! its error rate wanders ([`WanderFilter`]), and of a Gaussian statistic whose mean wanders
//! ([`GaussWanderFilter`], for latency).
//!
//! There each second's error rate is `p·m_t` with `m_t = exp(x_t − σ²/2)` and `x` an AR(1) of
//! coefficient `ρ` and stationary sd `σ` (see [`canary_sim`](crate::canary_sim)). A likelihood
//! ratio that treats requests as independent counts a burst of errors as strong evidence; under
//! this model it is not a likelihood ratio at all, and rejecting at `1/α` no longer bounds false
//! rollbacks by `α`. The oracles of those rows instead use the model's own likelihood: given a
//! second's requests `n`, its errors are `Binomial(n, min(1, p·m_t))`, and `x` is a hidden Markov
//! chain. This filter keeps the distribution of `x` given the seconds so far on a grid (a
//! discretized Gaussian transition, 41 points over ±4σ, a tenth of σ apart for σ = 0.5), once
//! for each hypothesized rate, and returns each second's log-likelihood ratio
//! `ln p(e_t | p₁, past) − ln p(e_t | p₀, past)`. Their sum is the log-likelihood ratio of the
//! whole run, exact up to the grid.

/// Grid points over `x`.
const POINTS: usize = 41;
/// Half-width of the grid in stationary sds.
const SPAN_SDS: f64 = 4.0;

/// One hypothesized base error rate: the log-probabilities of an error and of a success at each
/// grid point, and the filtered distribution over the grid.
#[derive(Debug, Clone)]
struct Hypothesis {
    ln_q: Vec<f64>,
    ln_not_q: Vec<f64>,
    filtered: Vec<f64>,
}

/// Hidden-Markov filters of one arm's wandering error rate under two base rates.
#[derive(Debug, Clone)]
pub struct WanderFilter {
    /// Row-major `POINTS × POINTS` transition probabilities from grid point `i` to `j`.
    transition: Vec<f64>,
    null: Hypothesis,
    alternative: Hypothesis,
    predicted: Vec<f64>,
}

impl WanderFilter {
    /// Filters for base error rates `p_null` and `p_alternative` (in `(0, 1)`) under an AR(1)
    /// log multiplier of coefficient `rho` (in `[0, 1)`) and stationary sd `sd` (> 0).
    pub fn new(rho: f64, sd: f64, p_null: f64, p_alternative: f64) -> Self {
        let step = 2.0 * SPAN_SDS * sd / (POINTS - 1) as f64;
        let grid: Vec<f64> = (0..POINTS)
            .map(|i| -SPAN_SDS * sd + step * i as f64)
            .collect();
        let gauss = |mean: f64, var: f64| -> Vec<f64> {
            let w: Vec<f64> = grid
                .iter()
                .map(|x| (-(x - mean) * (x - mean) / (2.0 * var)).exp())
                .collect();
            let total: f64 = w.iter().sum();
            w.into_iter().map(|v| v / total).collect()
        };
        let innovation = (1.0 - rho * rho) * sd * sd;
        let transition = grid
            .iter()
            .flat_map(|x| gauss(rho * x, innovation))
            .collect();
        let stationary = gauss(0.0, sd * sd);
        let hypothesis = |p: f64| {
            let q: Vec<f64> = grid
                .iter()
                .map(|x| (p * (x - sd * sd / 2.0).exp()).clamp(1e-300, 1.0))
                .collect();
            Hypothesis {
                ln_q: q.iter().map(|q| q.ln()).collect(),
                // ln(0) = −inf at a point where every request errs: a success rules it out.
                ln_not_q: q.iter().map(|q| (-q).ln_1p()).collect(),
                filtered: stationary.clone(),
            }
        };
        WanderFilter {
            transition,
            null: hypothesis(p_null),
            alternative: hypothesis(p_alternative),
            predicted: vec![0.0; POINTS],
        }
    }

    /// Feeds one second (`requests` served, `errors` of them failed) and returns its
    /// log-likelihood ratio of the alternative rate against the null.
    pub fn llr(&mut self, requests: u64, errors: u64) -> f64 {
        let errors = errors.min(requests);
        let ln_alt = self.step(true, requests, errors);
        let ln_null = self.step(false, requests, errors);
        ln_alt - ln_null
    }

    /// Advances one hypothesis by a second and returns `ln p(errors | requests, past)` up to the
    /// binomial coefficient (which cancels in the ratio).
    fn step(&mut self, alternative: bool, requests: u64, errors: u64) -> f64 {
        let h = if alternative {
            &mut self.alternative
        } else {
            &mut self.null
        };
        self.predicted.fill(0.0);
        for (i, w) in h.filtered.iter().enumerate() {
            if *w == 0.0 {
                continue;
            }
            let row = &self.transition[i * POINTS..(i + 1) * POINTS];
            for (p, t) in self.predicted.iter_mut().zip(row) {
                *p += w * t;
            }
        }
        let (e, s) = (errors as f64, (requests - errors) as f64);
        let ln_l: Vec<f64> = (0..POINTS)
            .map(|j| {
                let a = if errors > 0 { e * h.ln_q[j] } else { 0.0 };
                let b = if requests > errors {
                    s * h.ln_not_q[j]
                } else {
                    0.0
                };
                a + b
            })
            .collect();
        let top = ln_l.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        for ((f, p), l) in h.filtered.iter_mut().zip(&self.predicted).zip(&ln_l) {
            *f = p * (l - top).exp();
            total += *f;
        }
        for f in h.filtered.iter_mut() {
            *f /= total;
        }
        top + total.ln()
    }
}

/// The exact likelihood ratio of a shift `δ` against 0 for a Gaussian statistic whose mean also
/// wanders: each second `y_t = δ + z_t + e_t` with `z` an AR(1) of coefficient `ρ` and
/// stationary variance `V`, and `e_t ~ N(0, v_t)` of a known variance. A Kalman filter on `z`
/// gives each second's predictive density under either mean; both filters share one variance
/// recursion (it does not depend on the data), so only the innovations differ.
#[derive(Debug, Clone)]
pub struct GaussWanderFilter {
    rho: f64,
    stationary_var: f64,
    delta: f64,
    /// The filtered mean of `z` under the null (mean 0) and under the shift.
    mean: [f64; 2],
    /// The filtered variance of `z`.
    var: f64,
}

impl GaussWanderFilter {
    /// Filters for a shift `delta` against 0 when the wander has coefficient `rho` and
    /// stationary variance `stationary_var`.
    pub fn new(rho: f64, stationary_var: f64, delta: f64) -> Self {
        GaussWanderFilter {
            rho,
            stationary_var,
            delta,
            mean: [0.0; 2],
            var: stationary_var,
        }
    }

    /// Advances one second; with an observation `y` of noise variance `noise_var`, returns its
    /// log-likelihood ratio of the shift against 0 (`None`: nothing observed, ratio 0).
    pub fn llr(&mut self, observed: Option<(f64, f64)>) -> f64 {
        let predicted_var =
            self.rho * self.rho * self.var + (1.0 - self.rho * self.rho) * self.stationary_var;
        let predicted = self.mean.map(|m| self.rho * m);
        let Some((y, noise_var)) = observed else {
            self.mean = predicted;
            self.var = predicted_var;
            return 0.0;
        };
        let s = predicted_var + noise_var;
        let gain = predicted_var / s;
        let innovation = [y - predicted[0], y - self.delta - predicted[1]];
        self.mean = [
            predicted[0] + gain * innovation[0],
            predicted[1] + gain * innovation[1],
        ];
        self.var = (1.0 - gain) * predicted_var;
        (innovation[0] * innovation[0] - innovation[1] * innovation[1]) / (2.0 * s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Without wander the Gaussian filter's ratio is the plain normal one; with it, a run of
    /// values above 0 counts for less, since the wander explains part of it.
    #[test]
    fn the_gaussian_filter_reduces_to_the_normal_ratio_and_discounts_a_wander() {
        let (delta, v) = (0.1, 0.04);
        let mut plain = GaussWanderFilter::new(0.6, 1e-12, delta);
        let mut wander = GaussWanderFilter::new(0.6, 0.01, delta);
        let (mut a, mut b) = (0.0, 0.0);
        for y in [0.15, 0.12, 0.2, 0.08, 0.11] {
            let exact = (delta * y - delta * delta / 2.0) / v;
            let l = plain.llr(Some((y, v)));
            assert!((l - exact).abs() < 1e-9, "{l} vs {exact}");
            a += l;
            b += wander.llr(Some((y, v)));
        }
        assert!(b < a, "{b} vs {a}");
        // A second without data changes nothing but the state.
        assert_eq!(wander.llr(None), 0.0);
    }

    /// Under the null its expected ratio is 1 (it is a likelihood ratio): checked by simulating
    /// the model and averaging `exp(llr)` over many runs.
    #[test]
    fn the_gaussian_filter_ratio_has_mean_one_under_the_null() {
        use rand::{Rng, SeedableRng};
        use rand_distr::StandardNormal;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let (rho, var, noise): (f64, f64, f64) = (0.6, 0.0025, 0.01);
        let runs = 20_000;
        let mut total = 0.0;
        for _ in 0..runs {
            let mut f = GaussWanderFilter::new(rho, var, 0.05);
            let mut z = var.sqrt() * rng.sample::<f64, _>(StandardNormal);
            let mut llr = 0.0;
            for _ in 0..5 {
                let e: f64 = rng.sample(StandardNormal);
                llr += f.llr(Some((z + noise.sqrt() * e, noise)));
                let u: f64 = rng.sample(StandardNormal);
                z = rho * z + ((1.0 - rho * rho) * var).sqrt() * u;
            }
            total += llr.exp();
        }
        let mean = total / f64::from(runs);
        assert!((mean - 1.0).abs() < 0.03, "{mean}");
    }

    /// With a negligible wander the filter's ratio is the binomial one.
    #[test]
    fn without_wander_it_is_the_binomial_likelihood_ratio() {
        let mut f = WanderFilter::new(0.5, 1e-6, 0.01, 0.02);
        let llr = f.llr(300, 5);
        let direct = 5.0 * (0.02f64 / 0.01).ln() + 295.0 * (0.98f64 / 0.99).ln();
        assert!((llr - direct).abs() < 1e-6, "{llr} vs {direct}");
    }

    /// A burst of errors is weaker evidence when rates wander: part of it is explained by a
    /// high multiplier, which the next seconds then reveal.
    #[test]
    fn a_burst_counts_for_less_when_rates_wander() {
        let burst = |sd: f64| WanderFilter::new(0.6, sd, 0.005, 0.01).llr(500, 12);
        assert!(
            burst(0.5) < burst(1e-6),
            "{} vs {}",
            burst(0.5),
            burst(1e-6)
        );
    }

    /// Under the null the likelihood ratio has mean one: the average of `exp(llr)` over every
    /// error count of one second, weighted by its probability under the null, is 1.
    #[test]
    fn the_ratio_has_mean_one_under_the_null() {
        let (rho, sd, p0, p1, n) = (0.6, 0.5, 0.02, 0.04, 50u64);
        let f = WanderFilter::new(rho, sd, p0, p1);
        // The null's predictive distribution of one second's errors.
        let predicted: Vec<f64> = (0..POINTS)
            .map(|j| {
                (0..POINTS)
                    .map(|i| f.null.filtered[i] * f.transition[i * POINTS + j])
                    .sum()
            })
            .collect();
        let pred = |e: u64| -> f64 {
            predicted
                .iter()
                .zip(f.null.ln_q.iter().zip(&f.null.ln_not_q))
                .map(|(w, (lq, lnq))| {
                    let ln_c = statrs::function::factorial::ln_binomial(n, e);
                    w * (ln_c + e as f64 * lq + (n - e) as f64 * lnq).exp()
                })
                .sum()
        };
        let mean: f64 = (0..=n).map(|e| pred(e) * f.clone().llr(n, e).exp()).sum();
        assert!((mean - 1.0).abs() < 1e-9, "{mean}");
    }
}
