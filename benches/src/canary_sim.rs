//! The canary evaluation model: seeded simulations of a baseline and a canary arm, second by
//! second, and the judges and oracles that watch them. Used by the `canary_eval` harness
//! (`cargo bench -p serin-benches --bench canary_eval -- --quick`).
//!
//! # Model
//!
//! Total load `L` requests/s (optionally a diurnal swing ×3: `L·(1 + ½·sin(2πt/3600 + φ))`, one
//! compressed cycle per run with a random phase), a canary share `s`. Each second, each arm
//! serves `Poisson(λ·(1 − p·m))` successes and `Poisson(λ·p·m)` errors (a Poisson process thinned
//! by the error rate, so errors given requests are binomial), with `λ` the arm's load, `p` its
//! error rate (baseline 0.5%, canary `ratio × 0.5%`) and `m` a per-second error-rate multiplier:
//! 1 in the independent model, or `exp(x − σ²/2)` with `x` an AR(1) in log space (`ρ` 0.3 or 0.6,
//! stationary sd `σ` = 0.5, mean 1), drawn independently per arm — overdispersion no per-request
//! model expects.
//!
//! Latency is log-normal per request (median 100 ms, log-sd 0.5; the canary's median shifted by
//! `+x%`). Per-request loops are avoided: per second, each arm's moments of log latency are
//! drawn exactly as the sequential latency test reads them from that second's sketch (mean,
//! spread and the sketch's rounding; the known-effect oracle reads the same means; the test's
//! outlier fences, 4.7 sd out, would clip one value in 400,000, which is left out), and so is
//! the sum of the canary's log latencies for Wald's SPRT (`N(n·μ, n·σ²)`); per minute, each
//! arm's sample median and p99 are drawn exactly as order statistics
//! (`U₍ₖ₎ ~ Beta(k, n + 1 − k)` mapped through the log-normal quantile) for the per-minute
//! judges. These follow the same distributions but are not drawn from the same requests. Rows
//! with another [`LatencyShape`] (heavy-tailed logs) draw their requests one by one instead into
//! each second's sketches, which the latency test reads as it would in production (outlier
//! fences included), and the per-minute judges read each minute's exact median and p99. In the
//! overdispersed latency rows each arm's log median wanders as an AR(1) too (`ρ` 0.3 or 0.6,
//! stationary sd [`LATENCY_WANDER_SD`] = 0.05, independently per arm), and the per-minute judges
//! read each minute at its mean log median.
//!
//! A row may start its effect late (`onset_s`): the canary equals the baseline until then, and
//! the oracles, which know the onset, start with it.
//!
//! In the overdispersed rows the per-request likelihood ratios are not likelihood ratios of the
//! model (a burst of errors from a high multiplier would count as evidence), so the oracles read
//! the model's own: the canary's errors filtered as a hidden Markov model over its wandering
//! multiplier ([`WanderFilter`]), knowing both rates and the wander's law (there is no which-arm
//! filter, so there both SPRTs and the LR oracle read this one, which knows the baseline's
//! level); for latency, Kalman filters over the wandering medians ([`GaussWanderFilter`]),
//! knowing the shift, the spread and the wander's law (the which-arm SPRT reads the LR oracle's,
//! over the difference of the arms' wanders).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, ChiSquared, Distribution, Exp1, Poisson, StandardNormal, StudentT};
use serin_canary::kayenta::{
    Direction, KayentaConfig, KayentaJudge, Quantity, RunConfig, RunStatus,
};
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    LatencyVariance, LogMoments, SKETCH_LOG_ERROR,
};
use serin_canary::threshold::{
    ArgoConfig, ArgoJudge, ArgoPhase, FlaggerConfig, FlaggerJudge, Range,
};
use serin_signals::{LatencySketch, Metric};
use statrs::distribution::{ContinuousCDF, Normal};

use crate::cusum::CusumTrace;
use crate::wander_filter::{GaussWanderFilter, WanderFilter};

/// Seconds in one run (the analysis horizon).
pub const HORIZON_S: u32 = 3600;
/// Baseline error rate.
pub const BASE_ERROR_RATE: f64 = 0.005;
/// Median latency of the baseline, in ms.
pub const BASE_MEDIAN_MS: f64 = 100.0;
/// Log-sd of per-request latency.
pub const LATENCY_LOG_SD: f64 = 0.5;
/// Stationary sd of the log error-rate multiplier in the overdispersed model.
pub const OVERDISPERSION_SD: f64 = 0.5;
/// Stationary sd of each arm's wandering log median latency in the overdispersed latency rows
/// (the median drifts by about ±5% around its level, independently per arm).
pub const LATENCY_WANDER_SD: f64 = 0.05;
/// The false-rollback bound α every judge and oracle is run at.
pub const ALPHA: f64 = 0.05;
/// β for Wald's SPRT acceptance boundary.
pub const BETA: f64 = 0.2;

/// What a row changes in the canary.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Effect {
    /// The canary's error rate is `ratio ×` the baseline's.
    ErrorRatio(f64),
    /// The canary's median latency is `(1 + shift) ×` the baseline's.
    LatencyShift(f64),
}

impl Effect {
    /// Whether the canary is identical to the baseline (an A/A row).
    pub fn is_null(&self) -> bool {
        match *self {
            Effect::ErrorRatio(r) => r == 1.0,
            Effect::LatencyShift(s) => s == 0.0,
        }
    }
}

/// The distribution of a request's log latency around its arm's log median.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum LatencyShape {
    /// Normal, of sd [`LATENCY_LOG_SD`] (log-normal latency): the model of the main rows.
    #[default]
    LogNormal,
    /// Student-t with `ν` degrees of freedom, scaled to the same sd: tails far heavier than
    /// the normal's on both sides (its fourth moment is infinite for `ν ≤ 4`).
    StudentT(f64),
    /// Normal, except [`PARETO_SHARE`] of the requests, which take a Pareto tail of index
    /// [`PARETO_INDEX`] from 10× the median, cut at 300× (a timeout).
    ParetoTail,
}

/// The share of requests in the Pareto tail of [`LatencyShape::ParetoTail`].
pub const PARETO_SHARE: f64 = 0.01;
/// The index of that tail (its variance is infinite below 2).
pub const PARETO_INDEX: f64 = 1.5;

impl LatencyShape {
    /// One request's log latency minus its arm's log median.
    fn draw(self, rng: &mut ChaCha8Rng) -> f64 {
        match self {
            LatencyShape::LogNormal => LATENCY_LOG_SD * rng.sample::<f64, _>(StandardNormal),
            LatencyShape::StudentT(nu) => {
                let t = StudentT::new(nu).map_or(0.0, |d| d.sample(rng));
                LATENCY_LOG_SD * t / (nu / (nu - 2.0)).sqrt()
            }
            LatencyShape::ParetoTail => {
                if rng.random::<f64>() < PARETO_SHARE {
                    let e: f64 = rng.sample(Exp1);
                    (10f64.ln() + e / PARETO_INDEX).min(300f64.ln())
                } else {
                    LATENCY_LOG_SD * rng.sample::<f64, _>(StandardNormal)
                }
            }
        }
    }

    fn label(self) -> Option<String> {
        match self {
            LatencyShape::LogNormal => None,
            LatencyShape::StudentT(nu) => Some(format!("t{nu}-logs")),
            LatencyShape::ParetoTail => Some("pareto-tail".to_owned()),
        }
    }
}

/// One row of the evaluation.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Total requests per second over both arms.
    pub load: f64,
    /// The canary's share of the load.
    pub share: f64,
    /// The canary's regression.
    pub effect: Effect,
    /// AR(1) coefficient of each arm's per-second wander (of its error-rate multiplier, or of its
    /// log median latency), `None` = independent.
    pub ar_rho: Option<f64>,
    /// Diurnal ×3 swing of the load.
    pub diurnal: bool,
    /// The second after which the canary's effect starts (0: from the start). The oracles start
    /// with it: they know the onset.
    pub onset_s: u32,
    /// The distribution of log latency. Rows other than log-normal draw every request (so they
    /// are only affordable at low load) and run no oracle.
    pub shape: LatencyShape,
}

impl Scenario {
    /// A short label for tables.
    pub fn label(&self) -> String {
        let effect = match self.effect {
            Effect::ErrorRatio(r) => format!("err×{r}"),
            Effect::LatencyShift(s) => format!("lat+{}%", s * 100.0),
        };
        let mut l = format!("{effect} {}rps {}%", self.load, self.share * 100.0);
        if let Some(rho) = self.ar_rho {
            l.push_str(&format!(" ar{rho}"));
        }
        if self.diurnal {
            l.push_str(" diurnal");
        }
        if let Some(shape) = self.shape.label() {
            l.push(' ');
            l.push_str(&shape);
        }
        if self.onset_s > 0 {
            l.push_str(&format!(" from {} min", self.onset_s / 60));
        }
        l
    }
}

/// The judges and oracles compared, in table order: the sequential judge in its default mode
/// (the per-request count test for errors, the normal-mixture test of mean log latency for
/// latency), its robust mode (batches with a variance estimated between them: for errors in every
/// row, for latency in the overdispersed rows), Kayenta, Argo, Flagger, Wald's SPRT knowing the
/// baseline's level, Wald's SPRT on the known-effect test's which-arm likelihood ratio (the
/// issue's reference) and the known-effect likelihood-ratio test.
pub const JUDGES: [&str; N_JUDGES] = [
    "sequential",
    "sequential-robust",
    "kayenta",
    "argo",
    "flagger",
    "wald-sprt knowing the baseline's level",
    "wald-sprt, which-arm (the issue's reference)",
    "lr-oracle",
];
/// How many judges and oracles are compared.
pub const N_JUDGES: usize = 8;
/// Index of the sequential judge (default mode) in [`JUDGES`].
pub const SEQ: usize = 0;
/// Index of the sequential judge's robust mode.
pub const ROBUST: usize = 1;
/// Index of the Kayenta judge.
pub const KAYENTA: usize = 2;
/// Index of the Argo judge.
pub const ARGO: usize = 3;
/// Index of the Flagger judge.
pub const FLAGGER: usize = 4;
/// Index of Wald's SPRT knowing both true rates (or medians): the canary's own observations
/// against the baseline's known level.
pub const SPRT: usize = 5;
/// Index of Wald's SPRT on the known-effect test's log-likelihood ratio (which arm each error
/// came from; for latency the difference of the arms' mean logs): the same information as that
/// test and the sequential judge, between Wald's boundaries.
pub const WHICH_ARM_SPRT: usize = 6;
/// Index of the known-effect likelihood-ratio test.
pub const LR: usize = 7;

/// What happened to one judge in one run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Outcome {
    /// Seconds from the start to the rollback, if the judge rolled back within the horizon.
    pub detected_at: Option<u32>,
    /// Requests the canary served after the onset up to that moment, or over the whole horizon
    /// if it never rolled back (past an early stop of the run, their expected number).
    pub canary_requests: u64,
    /// Whether the judge applies to this row (the robust mode runs on latency only where it
    /// wanders; the oracles need an effect).
    pub applicable: bool,
    /// Whether the latency test's evidence carried its note of excess scatter
    /// (`LatencyTest::excess_scatter`) when it rolled back.
    pub noted: bool,
}

pub(crate) fn poisson(rng: &mut ChaCha8Rng, mean: f64) -> u64 {
    if mean <= 0.0 {
        return 0;
    }
    match Poisson::new(mean) {
        Ok(p) => p.sample(rng) as u64,
        Err(_) => 0,
    }
}

/// One arm's AR(1) wander in log space: of its error rate (a multiplier `exp(x − σ²/2)`, mean 1)
/// or of its median latency (an offset `x` to the log median).
pub(crate) struct Wander {
    rho: f64,
    sd: f64,
    x: f64,
}

impl Wander {
    /// Autocorrelation `rho` per second and stationary sd `sd`, started from its stationary law.
    pub(crate) fn new(rho: f64, sd: f64, rng: &mut ChaCha8Rng) -> Self {
        let z: f64 = rng.sample(StandardNormal);
        Wander { rho, sd, x: sd * z }
    }

    /// The baseline's and the canary's wander in the overdispersed rows, autocorrelation `rho`:
    /// of their error rates (sd [`OVERDISPERSION_SD`]) or of their medians
    /// ([`LATENCY_WANDER_SD`]).
    pub(crate) fn per_track(rho: f64, errors: bool, rng: &mut ChaCha8Rng) -> (Self, Self) {
        let sd = if errors {
            OVERDISPERSION_SD
        } else {
            LATENCY_WANDER_SD
        };
        (Wander::new(rho, sd, rng), Wander::new(rho, sd, rng))
    }

    /// The next second's log offset `x`.
    pub(crate) fn next(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        let z: f64 = rng.sample(StandardNormal);
        self.x = self.rho * self.x + (1.0 - self.rho * self.rho).sqrt() * self.sd * z;
        self.x
    }

    /// The next second's error-rate multiplier, of mean 1.
    pub(crate) fn next_multiplier(&mut self, rng: &mut ChaCha8Rng) -> f64 {
        (self.next(rng) - self.sd * self.sd / 2.0).exp()
    }
}

/// Wald's SPRT (both boundaries) or the known-effect likelihood-ratio test (rejection only),
/// on a log-likelihood ratio accumulated per second.
struct LrTest {
    llr: f64,
    upper: f64,
    lower: Option<f64>,
    done: bool,
}

impl LrTest {
    fn sprt() -> Self {
        LrTest {
            llr: 0.0,
            upper: ((1.0 - BETA) / ALPHA).ln(),
            lower: Some((BETA / (1.0 - ALPHA)).ln()),
            done: false,
        }
    }

    fn oracle() -> Self {
        LrTest {
            llr: 0.0,
            upper: (1.0 / ALPHA).ln(),
            lower: None,
            done: false,
        }
    }

    /// Adds one second's log-likelihood ratio; `Some(true)` = reject, `Some(false)` = accept.
    fn add(&mut self, llr: f64) -> Option<bool> {
        if self.done {
            return None;
        }
        self.llr += llr;
        if self.llr >= self.upper {
            self.done = true;
            return Some(true);
        }
        if self.lower.is_some_and(|b| self.llr <= b) {
            self.done = true;
            return Some(false);
        }
        None
    }
}

/// One second's log-likelihood ratios of the error oracles, from each arm's requests and errors
/// `[r_b, e_b, r_c, e_c]`: Wald's SPRT's, of the canary's errors given its requests at rate
/// `p_c` against the baseline's known rate `p_b` (knowing `p_b`, the baseline's own counts say
/// nothing more about the canary); and the known-effect test's, of which arm each error came
/// from given the second's split, at the rate ratio `ratio` against 1 (it knows the effect, not
/// the baseline's level).
fn error_llrs([rb, eb, rc, ec]: [u64; 4], p_b: f64, p_c: f64, ratio: f64) -> (f64, f64) {
    let (c, n) = (ec as f64, rc as f64);
    let sprt = c * (p_c / p_b).ln() + (n - c) * ((1.0 - p_c) / (1.0 - p_b)).ln();
    // A second in which an arm served nothing says nothing about which arm errs.
    let oracle = if rb > 0 && rc > 0 {
        let rho = rc as f64 / (rb + rc) as f64;
        let th1 = rho * ratio / (rho * ratio + 1.0 - rho);
        c * (th1 / rho).ln() + eb as f64 * ((1.0 - th1) / (1.0 - rho)).ln()
    } else {
        0.0
    };
    (sprt, oracle)
}

/// The k-th order statistic (type-1 quantile `q`) of `n` log-normal latencies, drawn exactly.
fn sample_quantile(
    rng: &mut ChaCha8Rng,
    n: u64,
    q: f64,
    log_median: f64,
    std_normal: &Normal,
) -> Option<f64> {
    if n == 0 {
        return None;
    }
    let k = ((q * n as f64).ceil() as u64).clamp(1, n);
    let u = Beta::new(k as f64, (n + 1 - k) as f64).ok()?.sample(rng);
    let z = std_normal.inverse_cdf(u.clamp(1e-300, 1.0 - 1e-16));
    Some((log_median + LATENCY_LOG_SD * z).exp())
}

/// Each arm's moments of log latency over one second of `n` log-normal requests, drawn exactly
/// as a sketch of those requests would give them, without drawing the requests one by one: the
/// mean of the logs is `N(μ, σ²/n)` and the sum of squared deviations `σ²·χ²(n − 1)`,
/// independent of it (Cochran's theorem). The sketch's rounding of each value to its bin (at
/// most ±0.01 in logs, spread evenly over a bin for a density as wide as this one's) is added as
/// independent noise of variance `0.01²/3` per value.
fn second_moments(rng: &mut ChaCha8Rng, n: u64, log_median: f64) -> LogMoments {
    if n == 0 {
        return LogMoments::empty();
    }
    let var = LATENCY_LOG_SD * LATENCY_LOG_SD + SKETCH_LOG_ERROR * SKETCH_LOG_ERROR / 3.0;
    let z: f64 = rng.sample(StandardNormal);
    let mean = log_median + (var / n as f64).sqrt() * z;
    let sample_var = if n >= 2 {
        ChiSquared::new((n - 1) as f64).map_or(var, |c| var * c.sample(rng) / (n - 1) as f64)
    } else {
        0.0
    };
    // Finite by construction, so the moments are accepted.
    LogMoments::from_parts(n, mean, sample_var).unwrap_or_default()
}

/// Each arm's sketch of one second of `n` requests of any shape, drawn request by request (the
/// latency test reads it as the orchestrator's would, outlier fences included). The logs are
/// also appended to `minute` for the per-minute judges.
fn drawn_sketch(
    rng: &mut ChaCha8Rng,
    n: u64,
    log_median: f64,
    shape: LatencyShape,
    minute: &mut Vec<f64>,
) -> LatencySketch {
    let mut sketch = LatencySketch::new();
    for _ in 0..n {
        let log = log_median + shape.draw(rng);
        minute.push(log);
        // Finite and positive by construction, so the sketch takes it.
        let _ = sketch.add(log.exp());
    }
    sketch
}

/// One second of latency, as the sequential latency test is fed it.
enum Second {
    /// Each arm's moments, drawn without drawing the requests (log-normal rows).
    Moments(LogMoments, LogMoments),
    /// Each arm's sketch of requests drawn one by one (other shapes).
    Sketches(Box<(LatencySketch, LatencySketch)>),
}

impl Second {
    /// Feeds the second to a latency test; whether it has rejected.
    fn feed(&self, test: &mut LatencyTest) -> bool {
        match self {
            Second::Moments(b, c) => test.update_log_moments(*b, *c),
            Second::Sketches(arms) => test.update(&arms.0, &arms.1),
        }
    }
}

/// The type-1 quantile `q` of some log latencies, as a latency (`None` without any).
fn empirical_quantile(logs: &mut [f64], q: f64) -> Option<f64> {
    let n = logs.len();
    if n == 0 {
        return None;
    }
    let k = ((q * n as f64).ceil() as usize).clamp(1, n) - 1;
    let (_, v, _) = logs.select_nth_unstable_by(k, f64::total_cmp);
    Some(v.exp())
}

/// Per-judge state for one run.
struct Judges {
    sequential: Option<CountTest>,
    robust: Option<BatchCountTest>,
    robust_latency: Option<LatencyTest>,
    latency: Option<LatencyTest>,
    kayenta: KayentaJudge,
    argo: ArgoJudge,
    flagger: FlaggerJudge,
    sprt: Option<LrTest>,
    which_arm_sprt: Option<LrTest>,
    oracle: Option<LrTest>,
    outcomes: [Outcome; N_JUDGES],
}

fn kayenta_for(effect: Effect) -> KayentaJudge {
    let (metric, quantity) = match effect {
        Effect::ErrorRatio(_) => (Metric::ErrorRate, Quantity::ErrorRate),
        Effect::LatencyShift(_) => (Metric::Latency, Quantity::LatencyQuantile(0.5)),
    };
    // Spinnaker's canary stage over the hour: a judgement every minute of the growing window
    // (from the 10th point), failing early at an interim score ≤ marginal (50), passing only if
    // the final score reaches the pass threshold (75).
    let minutes = (HORIZON_S / 60) as usize;
    let mut c = KayentaConfig::new(metric, quantity).with_run(RunConfig::new(minutes).every(1));
    c.metric_config.direction = Direction::Increase;
    // Configuration is fixed and valid, so construction cannot fail.
    KayentaJudge::new(c).unwrap_or_else(|e| panic!("kayenta config: {e}"))
}

fn thresholds_for(effect: Effect) -> (ArgoJudge, FlaggerJudge) {
    let (metric, argo_q, argo_ok, flagger_q, flagger_ok) = match effect {
        // Flagger's built-in request-success-rate ≥ 99%, i.e. error rate ≤ 1% per minute.
        Effect::ErrorRatio(_) => (
            Metric::ErrorRate,
            Quantity::ErrorRate,
            Range::at_most(0.01),
            Quantity::SuccessRatePercent,
            Range::at_least(99.0),
        ),
        // Flagger's built-in request-duration: p99 ≤ 500 ms per minute.
        Effect::LatencyShift(_) => (
            Metric::Latency,
            Quantity::LatencyQuantile(0.99),
            Range::at_most(500.0),
            Quantity::LatencyQuantile(0.99),
            Range::at_most(500.0),
        ),
    };
    let mut a = ArgoConfig::new(metric.clone(), argo_q);
    a.success_condition = Some(argo_ok.into());
    let mut f = FlaggerConfig::new(metric, flagger_q, flagger_ok);
    f.no_data_fails = true; // Flagger's own behaviour.
    (
        ArgoJudge::new(a).unwrap_or_else(|e| panic!("argo config: {e}")),
        FlaggerJudge::new(f).unwrap_or_else(|e| panic!("flagger config: {e}")),
    )
}

/// One simulated run: each judge's outcome, in [`JUDGES`] order, and in a row with a late onset
/// the known-effect CUSUM's trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    /// Each judge's outcome, in [`JUDGES`] order.
    pub judges: [Outcome; N_JUDGES],
    /// The known-effect CUSUM, in rows with a late onset and oracles.
    pub cusum: Option<CusumTrace>,
}

/// Simulates one run of `scenario` with `seed`.
pub fn run(scenario: &Scenario, seed: u64) -> Run {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let std_normal = Normal::standard();
    let (argo, flagger) = thresholds_for(scenario.effect);
    let null = scenario.effect.is_null();
    let errors = matches!(scenario.effect, Effect::ErrorRatio(_));
    // Latency drawn request by request, in a shape the oracles do not model.
    let drawn = !errors && scenario.shape != LatencyShape::LogNormal;
    let oracles = !null && !drawn;
    let mut minute_logs: (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    let mut j = Judges {
        sequential: errors
            .then(|| CountTest::new(CountTestConfig::new(ALPHA)).ok())
            .flatten(),
        robust: errors
            .then(|| BatchCountTest::new(BatchCountConfig::new(ALPHA)).ok())
            .flatten(),
        // The latency test's robust mode (between batches) where latency wanders.
        robust_latency: (!errors && scenario.ar_rho.is_some())
            .then(|| {
                LatencyTest::new(LatencyTestConfig {
                    variance: LatencyVariance::BetweenBatches,
                    ..LatencyTestConfig::new(ALPHA)
                })
                .ok()
            })
            .flatten(),
        latency: (!errors)
            .then(|| LatencyTest::new(LatencyTestConfig::new(ALPHA)).ok())
            .flatten(),
        kayenta: kayenta_for(scenario.effect),
        argo,
        flagger,
        sprt: oracles.then(LrTest::sprt),
        which_arm_sprt: oracles.then(LrTest::sprt),
        oracle: oracles.then(LrTest::oracle),
        outcomes: [Outcome::default(); N_JUDGES],
    };
    for (i, o) in j.outcomes.iter_mut().enumerate() {
        o.applicable = match i {
            SEQ => j.sequential.is_some() || j.latency.is_some(),
            ROBUST => j.robust.is_some() || j.robust_latency.is_some(),
            SPRT | WHICH_ARM_SPRT | LR => oracles,
            _ => true,
        };
    }
    let (ratio, shift) = match scenario.effect {
        Effect::ErrorRatio(r) => (r, 0.0),
        Effect::LatencyShift(s) => (1.0, s),
    };
    let p_b = BASE_ERROR_RATE;
    let log_mu_b = BASE_MEDIAN_MS.ln();
    let delta = (1.0 + shift).ln();
    let var = LATENCY_LOG_SD * LATENCY_LOG_SD;
    // The variance of a log latency as read from a sketch (see `second_moments`).
    let read_var = var + SKETCH_LOG_ERROR * SKETCH_LOG_ERROR / 3.0;
    let phase = rng.random::<f64>() * std::f64::consts::TAU;
    let mut wander = scenario
        .ar_rho
        .map(|rho| Wander::per_track(rho, errors, &mut rng));
    // In the overdispersed rows the oracles' likelihood is the model's own (see
    // `wander_filter`): for errors a hidden Markov filter over the canary's multiplier; for
    // latency Kalman filters, over the difference of the arms' wanders (the LR oracle, which
    // reads the difference of their means) and over the canary's own (Wald's SPRT, which knows
    // the baseline's median).
    let mut canary_filter = scenario
        .ar_rho
        .filter(|_| errors && !null)
        .map(|rho| WanderFilter::new(rho, OVERDISPERSION_SD, p_b, p_b * ratio));
    let mut latency_filters = scenario.ar_rho.filter(|_| !errors && oracles).map(|rho| {
        let v = LATENCY_WANDER_SD * LATENCY_WANDER_SD;
        (
            GaussWanderFilter::new(rho, 2.0 * v, delta),
            GaussWanderFilter::new(rho, v, delta),
        )
    });
    // Each arm's summed wander over the current minute, for the per-minute judges.
    let mut minute_wander = (0.0, 0.0);

    // Rows with a late onset also follow the known-effect CUSUM, which does not know the onset
    // (see `cusum`).
    let mut cusum =
        (scenario.onset_s > 0 && oracles && canary_filter.is_none()).then(CusumTrace::default);

    let load_at = |t: u32| {
        if scenario.diurnal {
            scenario.load
                * (1.0
                    + 0.5
                        * (std::f64::consts::TAU * f64::from(t) / f64::from(HORIZON_S) + phase)
                            .sin())
        } else {
            scenario.load
        }
    };
    let mut canary_requests_total = 0u64;
    let mut last_s = HORIZON_S;
    let (mut min_req_b, mut min_err_b, mut min_req_c, mut min_err_c) = (0u64, 0u64, 0u64, 0u64);
    for t in 1..=HORIZON_S {
        let load = load_at(t);
        let lam_b = load * (1.0 - scenario.share);
        let lam_c = load * scenario.share;
        let on = t > scenario.onset_s;
        let p_c = if on { p_b * ratio } else { p_b };
        let log_mu_c = if on { log_mu_b + delta } else { log_mu_b };
        // This second's wander of each arm: its error-rate multiplier, or its log median.
        let ((m_b, m_c), (sec_mu_b, sec_mu_c)) = match wander.as_mut() {
            Some((wb, wc)) if errors => (
                (wb.next_multiplier(&mut rng), wc.next_multiplier(&mut rng)),
                (log_mu_b, log_mu_c),
            ),
            Some((wb, wc)) => {
                let (xb, xc) = (wb.next(&mut rng), wc.next(&mut rng));
                minute_wander.0 += xb;
                minute_wander.1 += xc;
                ((1.0, 1.0), (log_mu_b + xb, log_mu_c + xc))
            }
            None => ((1.0, 1.0), (log_mu_b, log_mu_c)),
        };
        let (rb, eb, rc, ec) = if errors {
            let q_b = (p_b * m_b).min(1.0);
            let q_c = (p_c * m_c).min(1.0);
            let eb = poisson(&mut rng, lam_b * q_b);
            let ec = poisson(&mut rng, lam_c * q_c);
            let rb = eb + poisson(&mut rng, lam_b * (1.0 - q_b));
            let rc = ec + poisson(&mut rng, lam_c * (1.0 - q_c));
            (rb, eb, rc, ec)
        } else {
            (poisson(&mut rng, lam_b), 0, poisson(&mut rng, lam_c), 0)
        };
        if on {
            canary_requests_total += rc;
        }
        min_req_b += rb;
        min_err_b += eb;
        min_req_c += rc;
        min_err_c += ec;

        // Per-second judges and oracles.
        let hit = |idx: usize, outcomes: &mut [Outcome; N_JUDGES]| {
            if let Some(o) = outcomes.get_mut(idx)
                && o.detected_at.is_none()
            {
                o.detected_at = Some(t);
                o.canary_requests = canary_requests_total;
            }
        };
        if let Some(seq) = j.sequential.as_mut()
            && j.outcomes[SEQ].detected_at.is_none()
            && seq.update(rb, eb, rc, ec)
        {
            hit(SEQ, &mut j.outcomes);
            j.outcomes[SEQ].noted = seq.excess_scatter().is_some();
        }
        if let Some(robust) = j.robust.as_mut()
            && j.outcomes[ROBUST].detected_at.is_none()
            && robust.update(rb, eb, rc, ec)
        {
            hit(ROBUST, &mut j.outcomes);
        }
        // Each second, each arm's moments of log latency as its sketch would give them (see
        // `second_moments`); the test batches them itself.
        let second = if errors {
            Second::Moments(LogMoments::empty(), LogMoments::empty())
        } else if drawn {
            let shape = scenario.shape;
            Second::Sketches(Box::new((
                drawn_sketch(&mut rng, rb, sec_mu_b, shape, &mut minute_logs.0),
                drawn_sketch(&mut rng, rc, sec_mu_c, shape, &mut minute_logs.1),
            )))
        } else {
            Second::Moments(
                second_moments(&mut rng, rb, sec_mu_b),
                second_moments(&mut rng, rc, sec_mu_c),
            )
        };
        if let Some(lat) = j.latency.as_mut()
            && j.outcomes[SEQ].detected_at.is_none()
            && second.feed(lat)
        {
            hit(SEQ, &mut j.outcomes);
            j.outcomes[SEQ].noted = lat.excess_scatter().is_some();
        }
        if let Some(lat) = j.robust_latency.as_mut()
            && j.outcomes[ROBUST].detected_at.is_none()
            && second.feed(lat)
        {
            hit(ROBUST, &mut j.outcomes);
        }
        if oracles && (on || cusum.is_some()) {
            let (llr_sprt, llr_oracle) = if let Some(filter) = canary_filter.as_mut() {
                // Both oracles read the exact likelihood ratio of the canary's errors under the
                // wandering rate, knowing both rates and the wander's law.
                let llr = filter.llr(rc, ec);
                (llr, llr)
            } else if errors {
                error_llrs([rb, eb, rc, ec], p_b, p_c, ratio)
            } else {
                // The known-effect test knows δ and σ but, like the count oracle, not the
                // baseline's level: the likelihood ratio of the difference of the arms' mean
                // log latencies, `N(δ, σ²(1/n_c + 1/n_b))`, on the same values the sequential
                // test reads (filtered over the wanders in the overdispersed rows).
                let observed = match &second {
                    Second::Moments(mb, mc) if rb > 0 && rc > 0 => {
                        let v = read_var * (1.0 / rc as f64 + 1.0 / rb as f64);
                        Some((mc.mean() - mb.mean(), v))
                    }
                    _ => None,
                };
                let oracle = match (latency_filters.as_mut(), observed) {
                    (Some((diff, _)), observed) => diff.llr(observed),
                    (None, Some((d, v))) => (delta * d - delta * delta / 2.0) / v,
                    (None, None) => 0.0,
                };
                // Wald's SPRT knows both medians: the mean of (log latency − μ_b) over the
                // canary's requests this second, drawn exactly, and the normal log-likelihood
                // ratio of shift δ against 0 (filtered over the canary's wander in the
                // overdispersed rows). Drawn only from the onset on.
                let sprt = if on {
                    let n = rc as f64;
                    let z: f64 = rng.sample(StandardNormal);
                    match latency_filters.as_mut() {
                        Some((_, canary)) => canary.llr(
                            (rc > 0).then(|| (sec_mu_c - log_mu_b + (var / n).sqrt() * z, var / n)),
                        ),
                        None => {
                            let s = n * delta + (n * var).sqrt() * z;
                            (delta * s - n * delta * delta / 2.0) / var
                        }
                    }
                } else {
                    0.0
                };
                (sprt, oracle)
            };
            if let Some(c) = cusum.as_mut() {
                c.add(
                    llr_oracle,
                    t.saturating_sub(scenario.onset_s),
                    canary_requests_total,
                );
            }
            if on {
                for (idx, test, llr) in [
                    (SPRT, j.sprt.as_mut(), llr_sprt),
                    (WHICH_ARM_SPRT, j.which_arm_sprt.as_mut(), llr_oracle),
                    (LR, j.oracle.as_mut(), llr_oracle),
                ] {
                    if let Some(test) = test
                        && test.add(llr) == Some(true)
                    {
                        hit(idx, &mut j.outcomes);
                    }
                }
            }
        }

        // Per-minute judges.
        if t % 60 == 0 {
            let (point_b, point_c, p99_c) = if errors {
                let rate = |e: u64, r: u64| (r > 0).then(|| e as f64 / r as f64);
                let c = rate(min_err_c, min_req_c);
                (rate(min_err_b, min_req_b), c, c)
            } else if drawn {
                let (b, c) = (&mut minute_logs.0, &mut minute_logs.1);
                let points = (
                    empirical_quantile(b, 0.5),
                    empirical_quantile(c, 0.5),
                    empirical_quantile(c, 0.99),
                );
                b.clear();
                c.clear();
                points
            } else {
                // With a wander, at the minute's mean log median (an approximation: the
                // minute's requests are a mixture over its seconds).
                let (mu_b, mu_c) = (
                    log_mu_b + minute_wander.0 / 60.0,
                    log_mu_c + minute_wander.1 / 60.0,
                );
                minute_wander = (0.0, 0.0);
                (
                    sample_quantile(&mut rng, min_req_b, 0.5, mu_b, &std_normal),
                    sample_quantile(&mut rng, min_req_c, 0.5, mu_c, &std_normal),
                    sample_quantile(&mut rng, min_req_c, 0.99, mu_c, &std_normal),
                )
            };
            if j.outcomes[KAYENTA].detected_at.is_none() {
                j.kayenta.push_points(point_b, point_c);
                if matches!(
                    j.kayenta.run_state().status,
                    RunStatus::FailedEarly | RunStatus::Failed
                ) {
                    hit(KAYENTA, &mut j.outcomes);
                }
            }
            let (argo_v, flagger_v) = if errors {
                (point_c, point_c.map(|r| 100.0 * (1.0 - r)))
            } else {
                (p99_c, p99_c)
            };
            if j.outcomes[ARGO].detected_at.is_none() {
                j.argo.measure(argo_v);
                if j.argo.phase() == ArgoPhase::Failed {
                    hit(ARGO, &mut j.outcomes);
                }
            }
            if j.outcomes[FLAGGER].detected_at.is_none() {
                j.flagger.check(flagger_v);
                if j.flagger.rolls_back() {
                    hit(FLAGGER, &mut j.outcomes);
                }
            }
            min_req_b = 0;
            min_err_b = 0;
            min_req_c = 0;
            min_err_c = 0;
        }
        let all_done = cusum.as_ref().is_none_or(CusumTrace::done)
            && j.outcomes.iter().enumerate().all(|(i, o)| {
                !o.applicable || o.detected_at.is_some() || (i >= SPRT && j_done(&j, i))
            });
        if all_done {
            last_s = t;
            break;
        }
    }
    // A judge that never detects serves the bad canary for the whole horizon. The run stops
    // early once every judge has decided (Wald's SPRT by accepting, say); the canary's requests
    // after that are counted at their expected number, which draws nothing, so every other
    // figure of the run stays as it was.
    let unserved: f64 = (last_s + 1..=HORIZON_S)
        .filter(|t| *t > scenario.onset_s)
        .map(|t| load_at(t) * scenario.share)
        .sum();
    for o in j.outcomes.iter_mut() {
        if o.detected_at.is_none() {
            o.canary_requests = canary_requests_total + unserved.round() as u64;
        }
    }
    Run {
        judges: j.outcomes,
        cusum,
    }
}

fn j_done(j: &Judges, i: usize) -> bool {
    match i {
        SPRT => j.sprt.as_ref().is_some_and(|t| t.done),
        WHICH_ARM_SPRT => j.which_arm_sprt.as_ref().is_some_and(|t| t.done),
        LR => j.oracle.as_ref().is_some_and(|t| t.done),
        _ => false,
    }
}

/// The one-sided upper `level` Clopper-Pearson bound of a binomial proportion `x / n`.
pub fn upper_bound(x: u64, n: u64, level: f64) -> f64 {
    if n == 0 {
        return 1.0;
    }
    if x >= n {
        return 1.0;
    }
    match statrs::distribution::Beta::new(x as f64 + 1.0, (n - x) as f64) {
        Ok(b) => b.inverse_cdf(level),
        Err(_) => 1.0,
    }
}

/// The one-sided lower `level` Clopper-Pearson bound of `x / n`.
pub fn lower_bound(x: u64, n: u64, level: f64) -> f64 {
    if x == 0 || n == 0 {
        return 0.0;
    }
    match statrs::distribution::Beta::new(x as f64, (n - x + 1) as f64) {
        Ok(b) => b.inverse_cdf(1.0 - level),
        Err(_) => 0.0,
    }
}

/// Summary of one judge over the runs of one row.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Runs.
    pub runs: u64,
    /// Runs in which the judge rolled back within the horizon.
    pub detected: u64,
    /// Median seconds to rollback over all runs (undetected = never), if more than half detected.
    pub median_s: Option<f64>,
    /// Distribution-free 95% interval of that median (order statistics), if defined.
    pub median_ci: Option<(f64, f64)>,
    /// Median seconds to rollback among the runs that rolled back (Wald's SPRT also stops by
    /// accepting, so its time to detect is read among the runs it rejects).
    pub median_detected_s: Option<f64>,
    /// 90th percentile of seconds to rollback, if more than 90% detected.
    pub p90_s: Option<f64>,
    /// Median and p90 of canary requests served before rollback (whole run if none).
    pub exposure: (f64, f64),
    /// Whether the judge applies to the row.
    pub applicable: bool,
    /// Rollbacks whose evidence carried the latency test's note of excess scatter.
    pub noted: u64,
}

impl Summary {
    /// Detected fraction.
    pub fn rate(&self) -> f64 {
        self.detected as f64 / self.runs.max(1) as f64
    }
}

fn order_stat(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted.get(idx).copied().filter(|v| v.is_finite())
}

/// Summarizes one judge's outcomes.
pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let runs = outcomes.len() as u64;
    let applicable = outcomes.first().is_some_and(|o| o.applicable);
    let mut times: Vec<f64> = outcomes
        .iter()
        .map(|o| o.detected_at.map_or(f64::INFINITY, f64::from))
        .collect();
    times.sort_by(f64::total_cmp);
    let detected = outcomes.iter().filter(|o| o.detected_at.is_some()).count() as u64;
    let mut exposure: Vec<f64> = outcomes.iter().map(|o| o.canary_requests as f64).collect();
    exposure.sort_by(f64::total_cmp);
    let n = times.len() as f64;
    let half_width = 1.96 * n.sqrt() / 2.0;
    let median_s = order_stat(&times, 0.5);
    // The order statistics of ranks ⌊n/2 − 0.98√n⌋ and ⌈n/2 + 0.98√n⌉ + 1 (from 1): the
    // normal approximation to the binomial ranks that cover the median with 95%.
    let ranked = |rank: f64| {
        let i = (rank as usize).clamp(1, times.len()) - 1;
        times.get(i).copied()
    };
    let median_ci = median_s.and_then(|_| {
        let lo = ranked((n / 2.0 - half_width).floor()).filter(|t| t.is_finite())?;
        let hi = ranked((n / 2.0 + half_width).ceil() + 1.0).unwrap_or(f64::INFINITY);
        Some((lo, hi))
    });
    let finite: Vec<f64> = times.iter().copied().filter(|t| t.is_finite()).collect();
    Summary {
        runs,
        detected,
        median_s,
        median_detected_s: order_stat(&finite, 0.5),
        median_ci,
        p90_s: order_stat(&times, 0.9),
        exposure: (
            order_stat(&exposure, 0.5).unwrap_or(0.0),
            order_stat(&exposure, 0.9).unwrap_or(0.0),
        ),
        applicable,
        noted: outcomes.iter().filter(|o| o.noted).count() as u64,
    }
}

/// Runs `runs` seeded runs of `scenario` on `threads` threads; the result is independent of the
/// thread count (run `i` always uses seed `seed ^ mix(i)`).
pub fn run_many(scenario: &Scenario, seed: u64, runs: u64, threads: usize) -> Vec<Run> {
    run_seeded(seed, runs, threads, |s| run(scenario, s))
}

/// `runs` calls of `f`, the `i`-th with seed [`run_seed`]`(seed, i)`, spread over `threads`
/// threads and returned in order: the result does not depend on the thread count.
pub fn run_seeded<T: Send>(
    seed: u64,
    runs: u64,
    threads: usize,
    f: impl Fn(u64) -> T + Sync,
) -> Vec<T> {
    let threads = threads.max(1) as u64;
    let f = &f;
    let mut all: Vec<(u64, T)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|k| {
                s.spawn(move || {
                    (k..runs)
                        .step_by(threads as usize)
                        .map(|i| (i, f(run_seed(seed, i))))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        // A worker that panicked takes the harness down with it: its runs are not quietly
        // left out of a table that says how many runs it holds.
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    all.sort_by_key(|(i, _)| *i);
    all.into_iter().map(|(_, o)| o).collect()
}

/// A row's seed: the run's seed mixed with a hash (FNV-1a) of the row's label, so that a row
/// draws the same streams whichever other rows run beside it (`--set`, `--only`) and wherever
/// it sits in the list.
pub fn row_seed(seed: u64, label: &str) -> u64 {
    let hash = label.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    seed ^ hash
}

/// The seed of run `i` of a row seeded `seed` (splitmix64 of the pair).
pub fn run_seed(seed: u64, i: u64) -> u64 {
    let mut z = seed ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cusum::Crossing;

    /// A row of `load` requests/s, `share` of them to a canary with `effect` from `onset_s`:
    /// log-normal latency, no wander, no diurnal swing.
    fn row(load: f64, share: f64, effect: Effect, onset_s: u32) -> Scenario {
        Scenario {
            load,
            share,
            effect,
            ar_rho: None,
            diurnal: false,
            onset_s,
            shape: LatencyShape::LogNormal,
        }
    }

    /// The median's interval takes the ranks that cover it with 95% (the normal approximation
    /// to the binomial): for 100 runs detecting at 1..=100 s, the 40th and the 61st.
    #[test]
    fn the_median_interval_takes_the_covering_ranks() {
        let outcome = |t: u32| Outcome {
            detected_at: Some(t),
            canary_requests: 0,
            applicable: true,
            noted: false,
        };
        let s = summarize(&(1..=100).map(outcome).collect::<Vec<_>>());
        assert_eq!(s.median_ci, Some((40.0, 61.0)));
        // A bound past the last run detecting is never.
        let mut col: Vec<Outcome> = (1..=55).map(outcome).collect();
        col.extend((0..45).map(|_| Outcome {
            detected_at: None,
            ..outcome(1)
        }));
        assert_eq!(summarize(&col).median_ci, Some((40.0, f64::INFINITY)));
    }
    #[test]
    fn runs_are_reproducible_and_thread_count_free() {
        let s = row(500.0, 0.05, Effect::ErrorRatio(5.0), 0);
        assert_eq!(run(&s, 7), run(&s, 7));
        assert_eq!(run_many(&s, 1, 6, 1), run_many(&s, 1, 6, 2));
    }

    /// A run that panics is not dropped from the results: the harness stops.
    #[test]
    #[should_panic(expected = "run 3 failed")]
    fn a_run_that_panics_stops_the_harness() {
        let first = run_seed(9, 3);
        let _ = run_seeded(9, 6, 2, |seed| {
            assert!(seed != first, "run 3 failed");
            seed
        });
    }

    #[test]
    fn a_large_regression_is_caught_by_the_oracles_quickly() {
        let s = row(500.0, 0.2, Effect::ErrorRatio(5.0), 0);
        let r = run(&s, 3);
        assert!(r.judges[LR].detected_at.is_some_and(|t| t < 120), "{r:?}");
        // Without a late onset there is no CUSUM to follow.
        assert_eq!(r.cusum, None);
    }

    #[test]
    fn a_late_effect_starts_at_its_onset_and_the_oracles_with_it() {
        for effect in [Effect::ErrorRatio(5.0), Effect::LatencyShift(0.25)] {
            let s = row(500.0, 0.2, effect, 600);
            let mut sequential_after_onset = 0;
            for seed in 0..10 {
                let r = run(&s, seed);
                // The CUSUM, which does not know the onset, crosses a high bar soon after it.
                let crossing = r.cusum.as_ref().map(|c| c.crossing(12.0));
                assert!(
                    matches!(crossing, Some(Crossing::After { seconds, .. }) if seconds < 300),
                    "{effect:?}: {crossing:?}"
                );
                let o = r.judges;
                let t = o[LR].detected_at;
                assert!(t.is_some_and(|t| t > 600 && t < 900), "{effect:?}: {t:?}");
                // The judge may roll back a good canary (at most α of the time) but otherwise
                // catches the late regression soon after its onset.
                let t = o[SEQ].detected_at;
                sequential_after_onset += usize::from(t.is_some_and(|t| t > 600 && t < 900));
                // Exposure counts the canary's requests after the onset only.
                let after = f64::from(o[LR].detected_at.unwrap_or(0) - 600) * 100.0;
                assert!((o[LR].canary_requests as f64) < 2.0 * after + 50.0, "{o:?}");
            }
            assert!(
                sequential_after_onset >= 8,
                "{effect:?}: {sequential_after_onset} of 10"
            );
        }
    }

    #[test]
    fn the_oracle_survives_seconds_without_canary_requests() {
        // At 20 req/s and a 5% share most seconds have no canary request at all.
        let s = row(20.0, 0.05, Effect::ErrorRatio(5.0), 0);
        let detected = (0..20)
            .filter(|seed| run(&s, *seed).judges[LR].detected_at.is_some())
            .count();
        assert!(detected >= 15, "{detected} of 20");
    }

    #[test]
    fn second_moments_have_the_model_mean_and_spread() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        assert_eq!(second_moments(&mut rng, 0, 1.0).count(), 0);
        let mut all = LogMoments::empty();
        for _ in 0..2_000 {
            let m = second_moments(&mut rng, 25, BASE_MEDIAN_MS.ln());
            assert_eq!(m.count(), 25);
            all.merge(&m);
        }
        assert!(
            (all.mean() - BASE_MEDIAN_MS.ln()).abs() < 0.01,
            "{}",
            all.mean()
        );
        let sd = all.variance().sqrt();
        assert!((sd - LATENCY_LOG_SD).abs() < 0.01, "{sd}");
    }

    #[test]
    fn heavy_tailed_shapes_have_their_spread_and_tail() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut draws = |shape: LatencyShape| -> Vec<f64> {
            (0..100_000).map(|_| shape.draw(&mut rng)).collect()
        };
        // Student-t(4) scaled to sd 0.5: its upper quartile is 0.741·0.5/√2.
        let mut t4 = draws(LatencyShape::StudentT(4.0));
        let q3 = empirical_quantile(&mut t4, 0.75).map(f64::ln);
        assert!(q3.is_some_and(|q| (q - 0.262).abs() < 0.01), "{q3:?}");
        // The Pareto tail: about 1% of requests beyond 10× the median, none beyond 300×.
        let pareto = draws(LatencyShape::ParetoTail);
        let tail = pareto.iter().filter(|x| **x >= 10f64.ln()).count();
        assert!((800..=1_200).contains(&tail), "{tail}");
        assert!(pareto.iter().all(|x| *x <= 300f64.ln() + 1e-12));
    }

    #[test]
    fn empirical_quantiles_are_type_1() {
        let mut logs: Vec<f64> = (1..=100).rev().map(|v| f64::from(v).ln()).collect();
        let q = |logs: &mut Vec<f64>, p| empirical_quantile(logs, p).map(f64::round);
        assert_eq!(q(&mut logs, 0.5), Some(50.0));
        assert_eq!(q(&mut logs, 0.99), Some(99.0));
        assert_eq!(q(&mut logs, 0.001), Some(1.0));
        assert_eq!(empirical_quantile(&mut [], 0.5), None);
    }

    #[test]
    fn clopper_pearson_bounds() {
        assert!((upper_bound(0, 100, 0.95) - 0.0295).abs() < 1e-3);
        assert!(lower_bound(50, 100, 0.95) < 0.5 && upper_bound(50, 100, 0.95) > 0.5);
    }

    /// The multiplier `exp(x − σ²/2)` of a stationary AR(1) `x` has mean 1, log-sd σ and the
    /// stated autocorrelation: the overdispersed rows wander around the row's rates, not above.
    #[test]
    fn the_error_rate_multiplier_has_mean_one_and_the_stated_wander() {
        let (rho, sd, n) = (0.6, OVERDISPERSION_SD, 200_000);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut w = Wander::new(rho, sd, &mut rng);
        let m: Vec<f64> = (0..n).map(|_| w.next_multiplier(&mut rng)).collect();
        let mean = m.iter().sum::<f64>() / f64::from(n);
        assert!((mean - 1.0).abs() < 0.01, "{mean}");
        let x: Vec<f64> = m.iter().map(|v| v.ln() + sd * sd / 2.0).collect();
        let var = x.iter().map(|v| v * v).sum::<f64>() / f64::from(n);
        assert!((var.sqrt() - sd).abs() < 0.01, "{}", var.sqrt());
        let lag = x.windows(2).map(|p| p[0] * p[1]).sum::<f64>() / f64::from(n - 1);
        assert!((lag / var - rho).abs() < 0.01, "{}", lag / var);
    }

    /// The reference puts Wald's SPRT at 41 s at 500 requests/s, a 5% share and errors
    /// ×2. The SPRT knowing the baseline's level, on the canary's errors given the baseline's
    /// known rate, takes about 38 s among the runs it rejects; between the same boundaries, the
    /// known-effect test's which-arm ratio takes about 41 s there: the reference's reading, and
    /// the figure of the harness's which-arm SPRT on that row (see `canary_eval`).
    #[test]
    fn the_reference_sprt_reads_which_arm_each_error_came_from() {
        let (p_b, ratio) = (BASE_ERROR_RATE, 2.0);
        let p_c = ratio * p_b;
        let mut rng = ChaCha8Rng::seed_from_u64(41);
        let mut rejected: [Vec<u32>; 2] = [Vec::new(), Vec::new()];
        for _ in 0..4_000 {
            let mut tests = [LrTest::sprt(), LrTest::sprt()];
            for t in 1..=HORIZON_S {
                let eb = poisson(&mut rng, 475.0 * p_b);
                let rb = eb + poisson(&mut rng, 475.0 * (1.0 - p_b));
                let ec = poisson(&mut rng, 25.0 * p_c);
                let rc = ec + poisson(&mut rng, 25.0 * (1.0 - p_c));
                let (canary, which_arm) = error_llrs([rb, eb, rc, ec], p_b, p_c, ratio);
                for ((test, llr), times) in
                    tests.iter_mut().zip([canary, which_arm]).zip(&mut rejected)
                {
                    if test.add(llr) == Some(true) {
                        times.push(t);
                    }
                }
                if tests.iter().all(|t| t.done) {
                    break;
                }
            }
        }
        let [canary, which_arm] = rejected.map(|mut v| {
            v.sort_unstable();
            v[v.len().div_ceil(2) - 1]
        });
        assert!((36..=39).contains(&canary), "{canary}");
        assert!((40..=43).contains(&which_arm), "{which_arm}");
        // The harness's which-arm SPRT gives that row the reference's figure.
        let s = row(500.0, 0.05, Effect::ErrorRatio(2.0), 0);
        let col: Vec<Outcome> = run_many(&s, 41, 4_000, 2)
            .iter()
            .map(|r| r.judges[WHICH_ARM_SPRT])
            .collect();
        let m = summarize(&col).median_detected_s;
        assert!(m.is_some_and(|m| (40.0..=43.0).contains(&m)), "{m:?}");
    }

    /// The which-arm SPRT adds each second the LR oracle's log-likelihood ratio: on the same
    /// sums its upper boundary `ln((1 − β)/α)` lies below the oracle's `ln(1/α)`, so in every
    /// run both reject it rejects no later than the oracle, for errors and for latency, wander
    /// or not. The SPRT knowing the baseline's level, on other sums, does not.
    #[test]
    fn the_which_arm_sprt_reads_the_lr_oracles_likelihood_ratio() {
        let mut other_sums_later = 0;
        for s in [
            row(500.0, 0.05, Effect::ErrorRatio(2.0), 0),
            row(500.0, 0.5, Effect::LatencyShift(0.05), 0),
            Scenario {
                ar_rho: Some(0.3),
                ..row(500.0, 0.5, Effect::LatencyShift(0.10), 0)
            },
        ] {
            for seed in 0..60 {
                let o = run(&s, seed).judges;
                let lr = o[LR].detected_at;
                let before_lr = |t: u32| lr.is_none_or(|l| t <= l);
                if let Some(t) = o[WHICH_ARM_SPRT].detected_at {
                    assert!(before_lr(t), "{s:?} seed {seed}: {o:?}");
                }
                other_sums_later += usize::from(o[SPRT].detected_at.is_some_and(|t| !before_lr(t)));
            }
        }
        assert!(other_sums_later > 0);
    }
}
