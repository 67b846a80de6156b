//! The confidence sequences the sequential tests report hold the true effect at every sample
//! at once, in at least `1 − α` of seeded runs: the latency test's median shift (from exact
//! log moments and from sketches) and the count test's error-rate ratio.

use crate::common;

use common::Rng;
use serin_canary::judge::Interval;
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    LatencyVariance, LogMoments,
};
use serin_signals::LatencySketch;

const RUNS: u64 = 300;
const ALPHA: f64 = 0.05;

/// Runs `run` for `RUNS` seeds; each answers whether its interval ever missed. At most `α` of
/// the runs may miss, with three binomial standard deviations of slack for chance.
fn misses_at_most_alpha(what: &str, run: impl Fn(&mut Rng) -> bool) {
    let missed = (0..RUNS).filter(|&seed| run(&mut Rng::new(seed))).count() as f64;
    let n = RUNS as f64;
    let allowed = ALPHA * n + 3.0 * (ALPHA * (1.0 - ALPHA) * n).sqrt();
    assert!(
        missed <= allowed,
        "{what}: {missed} of {RUNS} runs missed (at most {allowed:.0})"
    );
}

fn misses(i: Option<Interval>, truth: f64) -> bool {
    i.is_some_and(|i| !(i.lower <= truth && truth <= i.upper))
}

/// `n` log-normal latencies with median `e^mu` and log-sd 0.5, as exact log moments.
fn moments(rng: &mut Rng, n: u64, mu: f64) -> LogMoments {
    let logs: Vec<f64> = (0..n).map(|_| mu + 0.5 * rng.normal()).collect();
    let mean = logs.iter().sum::<f64>() / n as f64;
    let var = logs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
    LogMoments::from_parts(n, mean, var).unwrap()
}

#[test]
fn the_median_shift_interval_covers_the_true_shift_at_every_sample() {
    let shift = 0.1f64;
    misses_at_most_alpha("median shift, log moments", |rng| {
        let mut t = LatencyTest::new(LatencyTestConfig::new(ALPHA)).unwrap();
        (0..200).any(|_| {
            t.update_log_moments(moments(rng, 20, 3.0), moments(rng, 10, 3.0 + shift.ln_1p()));
            misses(t.median_shift_interval(), shift)
        })
    });
}

#[test]
fn the_median_shift_interval_from_sketches_covers_the_true_shift_at_every_sample() {
    let shift = 0.1f64;
    let sketch = |rng: &mut Rng, n: usize, mu: f64| {
        let mut s = LatencySketch::new();
        for _ in 0..n {
            s.add((mu + 0.5 * rng.normal()).exp()).unwrap();
        }
        s
    };
    misses_at_most_alpha("median shift, sketches", |rng| {
        let mut t = LatencyTest::new(LatencyTestConfig::new(ALPHA)).unwrap();
        (0..100).any(|_| {
            t.update(&sketch(rng, 20, 3.0), &sketch(rng, 10, 3.0 + shift.ln_1p()));
            misses(t.median_shift_interval(), shift)
        })
    });
}

#[test]
fn the_error_rate_ratio_interval_covers_the_true_ratio_at_every_sample() {
    let (ratio, rate) = (2.0, 0.01);
    misses_at_most_alpha("error-rate ratio", |rng| {
        let mut t = CountTest::new(CountTestConfig::new(ALPHA)).unwrap();
        (0..600).any(|_| {
            t.update(
                800,
                rng.poisson(800.0 * rate),
                200,
                rng.poisson(200.0 * rate * ratio),
            );
            misses(t.ratio_interval(), ratio)
        })
    });
}

#[test]
fn the_robust_modes_intervals_cover_the_true_effect_at_every_sample() {
    let shift = 0.1f64;
    misses_at_most_alpha("median shift, between batches", |rng| {
        let mut t = LatencyTest::new(LatencyTestConfig {
            variance: LatencyVariance::BetweenBatches,
            min_samples: 5,
            ..LatencyTestConfig::new(ALPHA)
        })
        .unwrap();
        (0..300).any(|_| {
            t.update_log_moments(moments(rng, 20, 3.0), moments(rng, 10, 3.0 + shift.ln_1p()));
            misses(t.median_shift_interval(), shift)
        })
    });
    let (ratio, rate) = (2.0, 0.01);
    misses_at_most_alpha("error-rate ratio, batched", |rng| {
        let mut t = BatchCountTest::new(BatchCountConfig {
            min_samples: 5,
            ..BatchCountConfig::new(ALPHA)
        })
        .unwrap();
        (0..1_000).any(|_| {
            t.update(
                800,
                rng.poisson(800.0 * rate),
                200,
                rng.poisson(200.0 * rate * ratio),
            );
            misses(t.ratio_interval(), ratio)
        })
    });
}
