//! The latency part of pacing's gate: raise the weight only once the latencies at the current
//! weight rule out a slowdown of a stated size, as the count gate does for errors.
//!
//! # The likelihood ratio
//!
//! Within one batch of observations (consecutive ones pooled, see below) each arm's log
//! latencies have a mean, `m_c` for the `n_c` canary requests and `m_b` for the `n_b` baseline
//! ones. Whatever the load does to both arms in that time cancels in their difference
//! `D = m_c − m_b`, which, with log latencies of spread `σ_c` and `σ_b` within the arms, is
//! about `N(δ, v)`, `v = σ_c²/n_c + σ_b²/n_b`, when the canary is slower by a factor `e^δ`. The
//! likelihood ratio of a slowdown `δ₁ = ln(1 + detectable_shift)` against none, over the
//! batches at the current weight, is
//!
//! ```text
//! ln Λ = δ₁·Σ D/v − δ₁²·Σ 1/v / 2
//! ```
//!
//! and the gate passes once `ln Λ ≤ ln β`: Wald's SPRT acceptance boundary, as for errors, so a
//! version exactly `detectable_shift` slower passes it with probability at most `β`.
//!
//! The spreads are not assumed. Each arm's is pooled from its spread within every observation
//! of the rollout, and each batch's `v` (below: the gate pools observations into batches) is
//! taken from the upper confidence bounds on them that the latency test uses, as they stood
//! before it (an arm whose spread grows, as a regression's tail may make the canary's, weighs
//! less). Batches open only once both arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of
//! freedom. An overstated `v` shrinks each step of `ln Λ`, which only makes the gate slower to
//! pass, good versions and bad.
//!
//! A version as fast as the baseline passes once the precision `Σ 1/v` reaches about
//! `2 ln(1/β)/δ₁²` ([`LatencyPacing::precision_to_pass`]: 660 for the default 10%), that is once
//! the standard error of its estimated shift is down to `δ₁/√(2 ln(1/β))`, about 4%, and not
//! before [`MIN_SCATTER_PAIRS`] batches have counted over the rollout (five minutes of the
//! default 30-s batches). The precision grows by about `L·ρ(1 − ρ)/σ²` a second at load `L` and
//! share `ρ`: for log-normal latencies of spread 0.5, about three minutes at 20 requests/s and a
//! 5% share, seconds at 500. The errors' gate usually takes longer.
//!
//! # Latencies that wander
//!
//! The ratio takes `D` to vary only as much as the requests in the batch explain. A
//! latency level that wanders on its own in each arm (a busy neighbour, a garbage collector)
//! adds scatter they do not: at high traffic `v` is tiny and the wander dominates. Two things
//! keep the gate's `β` then:
//!
//! - **Batches.** The gate pools consecutive observations until they span
//!   [`LatencyPacing::batch`] (30 s by default, one observation at the orchestrator's default
//!   windows) and takes one `D` per batch, from the pooled means. Wander that is correlated from
//!   one second to the next makes consecutive per-second `D`s err together, which their scatter
//!   alone cannot show; batches that outlast the wander's memory are close to independent.
//!   Simulated as in the unit tests below, per-second observations whose levels wander with
//!   an autocorrelation of 0.6 (sd 0.1–0.5 per arm, at 20 and 500 requests/s, 20-minute runs)
//!   let a canary exactly 10% slower pass in 21–42% of runs taken one by one, and in 0–3.3% in
//!   30-s batches.
//! - **Their scatter.** The gate measures it as the latency test's diagnostic does, the weighted
//!   scatter of every counted `D` over the rollout against `v` (`Σ (D − D̄)²/v / (n − 1)`, about
//!   1 or less without wander), and divides `ln Λ` by it (its upper confidence bound, read as the
//!   spreads' are) when that exceeds 1: the likelihood ratio with each `v` widened by that factor.
//!   It needs [`MIN_SCATTER_PAIRS`] counted batches first.
//!
//! Wander slower than a batch still correlates the batches; raise `batch` for latencies that
//! wander over minutes.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serin_signals::{Metric, Timestamp, Window};

use crate::sequential::{LogMoments, MIN_LOG_VARIANCE, Scatter, Spread};
use crate::{Error, Result};

/// The degrees of freedom each arm's pooled spread of log latencies needs before batches
/// open.
pub const MIN_SPREAD_DOF: u64 = 30;

/// The batches the gate counts before it may pass, so that their scatter is read from some
/// (ten of the default 30 s take five minutes).
pub const MIN_SCATTER_PAIRS: u64 = 10;

/// Settings of the latency gate of [`Pacing`](super::Pacing).
///
/// ```
/// use serin_canary::controller::LatencyPacing;
///
/// // Rule out a canary 5% slower than the baseline before each raise.
/// let gate: LatencyPacing = serde_json::from_str(r#"{"detectableShift": 0.05}"#)?;
/// assert_eq!(gate.metric.as_str(), "latency");
/// assert!(gate.validate("pacing.latency").is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LatencyPacing {
    /// The latency metric (sketches of both arms). Default `latency`.
    #[serde(default = "latency_metric")]
    pub metric: Metric,
    /// The slowdown of the canary's typical request (its latencies' geometric mean: their
    /// median, when log-normal) to rule out, as a fraction: `0.1` is 10% slower. Default `0.1`.
    #[serde(default = "default_shift")]
    pub detectable_shift: f64,
    /// How long a span of consecutive observations the gate pools into one batch (see the
    /// module docs): longer than the time over which latency levels wander. `0s` takes every
    /// observation on its own. Default `30s`.
    #[serde(default = "default_batch", with = "serin_signals::duration")]
    pub batch: Duration,
}

fn latency_metric() -> Metric {
    Metric::Latency
}
fn default_shift() -> f64 {
    0.1
}
fn default_batch() -> Duration {
    Duration::from_secs(30)
}

impl Default for LatencyPacing {
    fn default() -> Self {
        LatencyPacing {
            metric: latency_metric(),
            detectable_shift: default_shift(),
            batch: default_batch(),
        }
    }
}

impl LatencyPacing {
    /// Checks every field; `path` prefixes the field names in errors.
    pub fn validate(&self, path: &str) -> Result<()> {
        if !(self.detectable_shift.is_finite() && self.detectable_shift > 0.0) {
            return Err(Error::invalid_config(
                format!("{path}.detectableShift"),
                self.detectable_shift,
                "must be a finite fraction above 0 (0.1 = 10% slower)",
            ));
        }
        // The gate reads both arms' latency sketches: a metric that gives counts or a gauge
        // never gives one, so the gate would never pass and hold a healthy canary until its
        // deadline rolled it back. A custom metric is taken at its word.
        let gives = match self.metric {
            Metric::ErrorRate | Metric::Throughput => "request and error counts",
            Metric::Cpu | Metric::Memory => "a gauge",
            Metric::Latency | Metric::Custom(_) => return Ok(()),
        };
        Err(Error::invalid_config(
            format!("{path}.metric"),
            &self.metric,
            format!(
                "gives {gives}, not latency sketches: the gate compares the arms' latencies, so \
                 on this metric it would never pass; use a latency metric such as `latency`"
            ),
        ))
    }

    /// `δ₁`, the log of the slowdown ruled out.
    fn log_shift(&self) -> f64 {
        self.detectable_shift.ln_1p()
    }

    /// About the precision `Σ 1/v` a canary as fast as the baseline gathers before the gate
    /// passes at `beta`: `2 ln(1/β)/δ₁²`. It grows by about `L·ρ(1 − ρ)/σ²` a second at load
    /// `L`, canary share `ρ` and spread `σ` of log latencies.
    pub fn precision_to_pass(&self, beta: f64) -> f64 {
        let d = self.log_shift();
        2.0 * (1.0 / beta).ln() / (d * d)
    }

    /// The gate's log likelihood ratio at the current weight, widened by the batches' excess
    /// scatter; `None` until both arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of
    /// freedom and [`MIN_SCATTER_PAIRS`] batches have counted.
    pub(crate) fn log_likelihood_ratio(&self, evidence: &LatencyEvidence) -> Option<f64> {
        let d = self.log_shift();
        (evidence.ready() && evidence.batches() >= MIN_SCATTER_PAIRS).then(|| {
            (d * evidence.shift - d * d * evidence.precision / 2.0) / evidence.dispersion()
        })
    }
}

/// What the latency gate has gathered: its sums at the current weight, and each arm's spread
/// of log latencies over the whole rollout.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct LatencyEvidence {
    /// `Σ 1/v` at the current weight.
    precision: f64,
    /// `Σ D/v` at the current weight.
    shift: f64,
    baseline: Spread,
    canary: Spread,
    /// Every counted `D` against its `v`, over the rollout.
    scatter: Scatter,
    /// The batch being gathered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    open: Option<Batch>,
}

/// Observations pooled until they span the gate's batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Batch {
    /// The start of its first observation's window.
    start: Timestamp,
    baseline: LogMoments,
    canary: LogMoments,
    /// Each arm's per-value variance in `v`: its spread's upper bound as it stood when the batch
    /// opened.
    baseline_variance: f64,
    canary_variance: f64,
}

impl LatencyEvidence {
    /// Refuses evidence the gate never gathers (an edited or damaged record), naming the field
    /// under `path`, its value and why. A negative spread would floor each batch's variance at
    /// the sketch's rounding, and a negative precision or a batch variance below that rounding
    /// would weigh batches as no latencies could: the gate could pass on evidence it never had and
    /// raise the weight.
    pub(crate) fn check(&mut self, path: &str) -> Result<()> {
        self.scatter.restore(&format!("{path}.scatter"))?;
        if !(self.precision.is_finite() && self.precision >= 0.0) {
            return Err(Error::invalid_input(
                format!("{path}.precision"),
                self.precision,
                "must be a finite sum of batch precisions >= 0",
            ));
        }
        if !self.shift.is_finite() {
            return Err(Error::invalid_input(
                format!("{path}.shift"),
                self.shift,
                "must be a finite sum of weighted batch differences",
            ));
        }
        // Each batch adds to both sums: a shift without precision is one no batch made, and
        // the gate would pass (or hold) on it at once.
        if self.precision == 0.0 && self.shift != 0.0 {
            return Err(Error::invalid_input(
                format!("{path}.shift"),
                self.shift,
                "must be 0 while no batch has counted at the weight (precision is 0): each of \
                 its terms is a batch's",
            ));
        }
        self.baseline.check(&format!("{path}.baseline"))?;
        self.canary.check(&format!("{path}.canary"))?;
        if let Some(open) = &self.open {
            let path = format!("{path}.open");
            open.baseline.check(&format!("{path}.baseline"))?;
            open.canary.check(&format!("{path}.canary"))?;
            for (field, v) in [
                ("baselineVariance", open.baseline_variance),
                ("canaryVariance", open.canary_variance),
            ] {
                // Below the sketch's rounding, the batch would weigh as no latencies could,
                // and pass the gate at once.
                if !(v.is_finite() && v >= MIN_LOG_VARIANCE) {
                    return Err(Error::invalid_input(
                        format!("{path}.{field}"),
                        v,
                        format!(
                            "must be a finite variance >= {MIN_LOG_VARIANCE:e}: the gate takes it \
                             from a spread's upper bound, never below the sketch's rounding"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether both arms' spreads rest on [`MIN_SPREAD_DOF`] degrees of freedom.
    fn ready(&self) -> bool {
        self.baseline.dof() >= MIN_SPREAD_DOF && self.canary.dof() >= MIN_SPREAD_DOF
    }

    /// Adds one observation of each arm's log latencies over `window`, into the open batch;
    /// a batch that spans `batch` closes into one difference of means, weighed by the spreads
    /// as they stood when it opened. The spreads then take the observation.
    pub(crate) fn add(
        &mut self,
        baseline: &LogMoments,
        canary: &LogMoments,
        window: Window,
        batch: Duration,
    ) {
        if self.ready() {
            let (b, c) = (self.baseline.upper(), self.canary.upper());
            let open = self.open.get_or_insert(Batch {
                start: window.start(),
                baseline: LogMoments::empty(),
                canary: LogMoments::empty(),
                baseline_variance: b,
                canary_variance: c,
            });
            open.baseline.merge(baseline);
            open.canary.merge(canary);
            let (nb, nc) = (open.baseline.count() as f64, open.canary.count() as f64);
            if window.end().saturating_duration_since(open.start) >= batch && nb > 0.0 && nc > 0.0 {
                let v = open.canary_variance / nc + open.baseline_variance / nb;
                let d = open.canary.mean() - open.baseline.mean();
                self.precision += 1.0 / v;
                self.shift += d / v;
                self.scatter.push(d, v);
                self.open = None;
            }
        }
        self.baseline.add(baseline);
        self.canary.add(canary);
    }

    /// Call when the traffic split changes: the open batch is dropped, the sums are kept. A
    /// batch must not span two splits: each arm's mean weighs the parts of the batch by that
    /// arm's values in them, so with a latency common to both arms that differs between the
    /// splits (the load, the hour), the arm whose share grew would be weighed towards the later
    /// part, and its mean would differ from the other's with no difference between versions.
    /// Dropping rather than closing it keeps every batch spanning the gate's time.
    pub(crate) fn new_split(&mut self) {
        self.open = None;
    }

    /// Starts the current weight's sums afresh, dropping the batch gathered at the weight
    /// before; the spreads and the scatter are kept.
    pub(crate) fn new_level(&mut self) {
        self.precision = 0.0;
        self.shift = 0.0;
        self.new_split();
    }

    /// The batches counted over the rollout.
    pub(crate) fn batches(&self) -> u64 {
        self.scatter.count()
    }

    /// `Σ 1/v` at the current weight.
    pub(crate) fn precision(&self) -> f64 {
        self.precision
    }

    /// How many times what their spreads explain the batches scatter (an upper confidence
    /// bound, as for the spreads), at least 1.
    pub(crate) fn dispersion(&self) -> f64 {
        self.scatter.upper_ratio().map_or(1.0, |r| r.max(1.0))
    }

    /// The estimated slowdown at the current weight, as a fraction (`None` before a batch).
    pub(crate) fn estimated_shift(&self) -> Option<f64> {
        (self.precision > 0.0).then(|| (self.shift / self.precision).exp_m1())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arm(n: u64, mean: f64, sd: f64) -> LogMoments {
        LogMoments::from_parts(n, mean, sd * sd).unwrap()
    }

    /// The `k`-th one-second window.
    fn second(k: u64) -> Window {
        Window::ending_at(
            Timestamp::from_millis((k + 1) * 1_000),
            Duration::from_secs(1),
        )
    }

    /// `n` one-second observations, each its own batch, of 16 baseline and 4 canary values, of
    /// spread 0.5 and `canary_sd`, with the canary's mean log latency `shift` above the
    /// baseline's.
    fn observed(n: u64, shift: f64, canary_sd: f64) -> LatencyEvidence {
        let mut ev = LatencyEvidence::default();
        for k in 0..n {
            let (b, c) = (arm(16, 4.6, 0.5), arm(4, 4.6 + shift, canary_sd));
            ev.add(&b, &c, second(k), Duration::ZERO);
        }
        ev
    }

    #[test]
    fn the_ratio_waits_for_both_spreads_then_weighs_the_shift() {
        let gate = LatencyPacing::default();
        let d = 1.1f64.ln();
        // The canary's 3 degrees of freedom an observation reach 30 at the tenth, which itself
        // is weighed by the spreads before it; ten observations count from the eleventh on.
        assert_eq!(gate.log_likelihood_ratio(&observed(19, 0.0, 0.5)), None);
        // Ten without a shift: −δ²·10/(2v), v a little above 0.25/4 + 0.25/16.
        let llr = gate.log_likelihood_ratio(&observed(20, 0.0, 0.5)).unwrap();
        let plain = -10.0 * d * d / (2.0 * (0.25 / 4.0 + 0.25 / 16.0));
        assert!(llr < 0.0 && llr > plain, "{llr} vs {plain}");
        // A canary exactly 10% slower drifts up instead, and its shift is read back.
        let slow = observed(50, d, 0.5);
        assert!(gate.log_likelihood_ratio(&slow).unwrap() > 0.0);
        assert!((slow.estimated_shift().unwrap() - 0.1).abs() < 1e-9);
        // A canary whose own spread is twice the baseline's weighs less.
        assert!(observed(50, d, 1.0).precision() < 0.5 * slow.precision());
        // A good canary passes at a precision of about 2 ln 20/δ² ≈ 660.
        assert!((gate.precision_to_pass(0.05) - 659.5).abs() < 1.0);
        // A new weight keeps the spreads and the scatter, and drops the sums.
        let mut next = slow;
        next.new_level();
        assert_eq!(gate.log_likelihood_ratio(&next), Some(0.0));
        assert_eq!(next.estimated_shift(), None);
    }

    #[test]
    fn observations_that_scatter_beyond_their_spread_count_for_less() {
        let gate = LatencyPacing::default();
        let mut ev = observed(10, 0.0, 0.5);
        let mut calm = ev;
        for k in 10..50 {
            // The arms' levels wander ±0.4 apart: a variance of 0.16 beside v ≈ 0.08.
            let wander = if k % 2 == 0 { 0.4 } else { -0.4 };
            let b = arm(16, 4.6, 0.5);
            ev.add(&b, &arm(4, 4.6 + wander, 0.5), second(k), Duration::ZERO);
            calm.add(&b, &arm(4, 4.6, 0.5), second(k), Duration::ZERO);
        }
        assert_eq!(calm.dispersion(), 1.0);
        assert!(ev.dispersion() > 1.5, "{}", ev.dispersion());
        let (wandering, still) = (
            gate.log_likelihood_ratio(&ev).unwrap(),
            gate.log_likelihood_ratio(&calm).unwrap(),
        );
        // About the same precision and no net shift: the wander shrinks the evidence that the
        // canary is not slower by the dispersion.
        assert!(still < 0.0 && wandering < 0.0, "{wandering} {still}");
        assert!(wandering > still / 1.5, "{wandering} {still}");
    }

    /// How a simulated run's latencies behave: log-normal of spread 0.5 (the canary's
    /// `canary_sd`), the canary slower by `shift`, and each arm's level wandering by `wander`
    /// (its sd) with autocorrelation `rho` from one second to the next, independently per arm.
    #[derive(Clone, Copy)]
    struct Run {
        shift: f64,
        canary_sd: f64,
        wander: f64,
        rho: f64,
        /// Baseline and canary requests a second.
        load: (u64, u64),
        batch: Duration,
    }

    /// 20 requests/s at a 20% share, no wander, 30-s batches.
    const PLAIN: Run = Run {
        shift: 0.0,
        canary_sd: 0.5,
        wander: 0.0,
        rho: 0.0,
        load: (16, 4),
        batch: Duration::from_secs(30),
    };

    /// The share of `runs` runs of per-second observations whose gate passes within `seconds`.
    fn pass_rate(run: Run, runs: u32, seconds: u64) -> f64 {
        use rand::{Rng, SeedableRng};
        use rand_distr::StandardNormal;
        let gate = LatencyPacing {
            batch: run.batch,
            ..LatencyPacing::default()
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let innovation = (1.0 - run.rho * run.rho).sqrt();
        // The arms' means are drawn; their spreads are taken as known, which the gate's bounds
        // on them barely move at these degrees of freedom.
        let mut mean = |level: &mut f64, n: u64, mu: f64, sd: f64| {
            let (z, e): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
            *level = run.rho * *level + innovation * e;
            let m = mu + run.wander * *level + sd * z / (n as f64).sqrt();
            LogMoments::from_parts(n, m, sd * sd).unwrap()
        };
        let passed = (0..runs)
            .filter(|_| {
                let mut ev = LatencyEvidence::default();
                // Each arm's level starts from its stationary law.
                let (mut lb, mut lc) = (0.0, 0.0);
                for _ in 0..20 {
                    mean(&mut lb, 1, 0.0, 0.0);
                    mean(&mut lc, 1, 0.0, 0.0);
                }
                (0..seconds).any(|k| {
                    let b = mean(&mut lb, run.load.0, 4.6, 0.5);
                    let c = mean(&mut lc, run.load.1, 4.6 + run.shift.ln_1p(), run.canary_sd);
                    ev.add(&b, &c, second(k), run.batch);
                    gate.log_likelihood_ratio(&ev)
                        .is_some_and(|l| l <= 0.05f64.ln())
                })
            })
            .count();
        passed as f64 / f64::from(runs)
    }

    #[test]
    fn a_version_exactly_that_slow_rarely_passes_and_a_fast_one_does() {
        // Wald: at most β = 5% with exactly the slowdown; 2,000 runs put 3 sd at 1.5%.
        let slow = Run {
            shift: 0.1,
            ..PLAIN
        };
        let slow_rate = pass_rate(slow, 2_000, 600);
        assert!(slow_rate <= 0.065, "{slow_rate}");
        // Also when the slow canary's own latencies spread twice as wide (its arm weighs less),
        // and when both arms' levels wander by more than their requests explain.
        let wide = pass_rate(
            Run {
                canary_sd: 1.0,
                ..slow
            },
            2_000,
            600,
        );
        assert!(wide <= 0.065, "{wide}");
        let wandering = pass_rate(
            Run {
                wander: 0.2,
                ..slow
            },
            2_000,
            600,
        );
        assert!(wandering <= 0.065, "{wandering}");
        // As fast as the baseline: the precision grows 12.8 a second and 660 suffices on
        // average, but ten batches must count first.
        let good = pass_rate(PLAIN, 500, 400);
        assert!(good >= 0.99, "{good}");
        assert!(
            pass_rate(
                Run {
                    shift: 0.25,
                    ..slow
                },
                2_000,
                600
            ) <= slow_rate
        );
    }

    #[test]
    fn batches_keep_the_bound_when_the_wander_remembers() {
        // At 500 requests/s and a 20% share the requests explain little of each second's
        // difference, and levels that wander with autocorrelation 0.6 make seconds err together.
        let slow = Run {
            shift: 0.1,
            wander: 0.1,
            rho: 0.6,
            load: (400, 100),
            ..PLAIN
        };
        let batched = pass_rate(slow, 2_000, 600);
        assert!(batched <= 0.065, "{batched}");
        // Second by second, the scatter misses what the seconds share.
        let seconds = pass_rate(
            Run {
                batch: Duration::ZERO,
                ..slow
            },
            1_000,
            600,
        );
        assert!(seconds > 0.1, "{seconds}");
        // A good canary still passes, once ten batches have counted.
        let good = pass_rate(Run { shift: 0.0, ..slow }, 500, 600);
        assert!(good >= 0.99, "{good}");
    }

    #[test]
    fn bad_settings_name_the_field() {
        for shift in [0.0, -0.1, f64::NAN, f64::INFINITY] {
            let gate = LatencyPacing {
                detectable_shift: shift,
                ..LatencyPacing::default()
            };
            let msg = gate.validate("pacing.latency").unwrap_err().to_string();
            assert!(msg.contains("pacing.latency.detectableShift"), "{msg}");
        }
        let unknown = serde_json::from_str::<LatencyPacing>(r#"{"shift": 0.1}"#);
        assert!(unknown.is_err());
        let batch = serde_json::from_str::<LatencyPacing>(r#"{"batch": "thirty"}"#);
        assert!(batch.unwrap_err().to_string().contains("thirty"));
    }
}
