//! Seeded draws for one track and one second: request and error counts, and a latency sketch.
//!
//! Every second of every track has its own random stream, keyed by the world's seed, the
//! track's name and the second's index. Nothing depends on the order or the number of queries,
//! so the same question always gets the same answer, and any partition of a window into
//! sub-windows adds up to the whole exactly.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Poisson};
use serin_signals::{LatencySketch, Track};

use crate::profile::ErrorWander;

/// Above this many requests in one second, latencies are drawn by strata (see [`latencies`]).
const STRATA: u64 = 32;

/// The stream of a second's traffic: its request and error counts are drawn first, then its
/// latencies, so the counts never depend on whether latencies were asked for.
pub(crate) const TRAFFIC: u64 = 0x5345_5249_4e00_0001;

/// Keys the innovations of a track's error-rate wander apart from every stream.
const WANDER: u64 = 0x5345_5249_4e00_0002;

/// Terms of the wander's moving average are kept while their weight `ρ^i` is at least this.
const WANDER_TAIL: f64 = 0.01;

/// The error-rate multiplier of `track` at `second` under `wander`: `exp(x − sd²/2)`, with `x`
/// the moving average `Σ ρ^i z_{second − i}` of independent standard normals (one per second),
/// truncated where `ρ^i` falls below 1% and scaled to sd `sd`. Like every other draw here it
/// is a pure function of the second, and it is close to an AR(1) of coefficient `ρ` (exactly
/// its truncation). Each multiplier reads a dozen innovations and the metrics read each second
/// many times, so an innovation is a hash of its key through the normal quantile rather than
/// a fresh stream.
pub(crate) fn wander_multiplier(seed: u64, track: &Track, second: u64, wander: ErrorWander) -> f64 {
    let ErrorWander { sd, rho } = wander;
    if sd == 0.0 {
        return 1.0;
    }
    let (mut x, mut weights) = (0.0, 0.0);
    let mut w = 1.0;
    for i in 0..=second {
        let z = innovation(seed, track, second - i);
        x += w * z;
        weights += w * w;
        w *= rho;
        if w < WANDER_TAIL {
            break;
        }
    }
    (sd * x / weights.sqrt() - sd * sd / 2.0).exp()
}

/// The standard normal innovation of `track`'s wander at `second`: SplitMix64 of the key, as
/// a uniform in `(0, 1)`, through the normal quantile.
fn innovation(seed: u64, track: &Track, second: u64) -> f64 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let h = mix(seed ^ mix(fnv1a(track.as_str()) ^ mix(second ^ WANDER)));
    let u = ((h >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    inverse_normal(u)
}

/// The random stream `purpose` of `track` at `second` under `seed`.
pub(crate) fn stream(seed: u64, track: &Track, second: u64, purpose: u64) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    let parts = [seed, fnv1a(track.as_str()), second, purpose];
    for (chunk, part) in key.chunks_exact_mut(8).zip(parts) {
        chunk.copy_from_slice(&part.to_le_bytes());
    }
    ChaCha8Rng::from_seed(key)
}

/// FNV-1a: a hash of track names that is the same on every platform and Rust release.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A Poisson count with mean `lambda` (zero for a non-positive or non-finite mean).
pub(crate) fn poisson(rng: &mut ChaCha8Rng, lambda: f64) -> u64 {
    if !lambda.is_finite() || lambda <= 0.0 {
        return 0;
    }
    match Poisson::new(lambda) {
        // Draws are whole numbers; the cast saturates on the (impossible) overflow.
        Ok(p) => p.sample(rng) as u64,
        Err(_) => 0,
    }
}

/// A binomial count of `n` trials with success probability `p` (clamped to `0..=1`).
pub(crate) fn binomial(rng: &mut ChaCha8Rng, n: u64, p: f64) -> u64 {
    let p = if p.is_finite() {
        p.clamp(0.0, 1.0)
    } else {
        0.0
    };
    match Binomial::new(n, p) {
        Ok(b) => b.sample(rng),
        Err(_) => 0,
    }
}

/// Adds `n` log-normal latencies (median `median_ms`, log-sd `sigma`) to `sketch`.
///
/// Up to [`STRATA`] requests, each latency is drawn on its own. Above, the distribution is cut
/// into [`STRATA`] slices of equal probability; how many requests fall in each slice is drawn
/// exactly (multinomially), and each slice's requests share one latency drawn within the slice.
/// The count below every slice boundary therefore has exactly the sampling distribution of `n`
/// independent requests, while the cost per second stays constant however heavy the traffic.
pub(crate) fn latencies(
    rng: &mut ChaCha8Rng,
    n: u64,
    median_ms: f64,
    sigma: f64,
    sketch: &mut LatencySketch,
) {
    let value = |u: f64| median_ms * (sigma * inverse_normal(u)).exp();
    if n <= STRATA {
        for _ in 0..n {
            let u: f64 = rng.random();
            // A finite, non-negative value by construction; a rejected one is simply not added.
            let _ = sketch.add(value(u));
        }
        return;
    }
    let mut remaining = n;
    for i in 0..STRATA {
        let left = STRATA - i;
        let c = if left == 1 {
            remaining
        } else {
            binomial(rng, remaining, 1.0 / left as f64)
        };
        if c > 0 {
            let u = (i as f64 + rng.random::<f64>()) / STRATA as f64;
            let _ = sketch.add_n(value(u), c);
        }
        remaining -= c;
    }
}

/// The standard normal quantile of `p` (Acklam's rational approximation, relative error below
/// 1.2e-9), with `p` clamped away from 0 and 1.
pub(crate) fn inverse_normal(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    const LOW: f64 = 0.024_25;
    let p = p.clamp(1e-15, 1.0 - 1e-15);
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_normal_matches_known_quantiles() {
        for (p, z) in [
            (0.5, 0.0),
            (0.975, 1.959_963_984_540_054),
            (0.025, -1.959_963_984_540_054),
            (0.999, 3.090_232_306_167_813_5),
            (0.001, -3.090_232_306_167_813_5),
        ] {
            assert!((inverse_normal(p) - z).abs() < 1e-8, "p={p}");
        }
        assert!(inverse_normal(0.0).is_finite() && inverse_normal(1.0).is_finite());
    }

    /// The multiplier has mean 1, log-sd `sd` and one-second correlation `ρ` in log space.
    #[test]
    fn the_error_wander_has_its_mean_spread_and_correlation() {
        let track = Track::Canary;
        let w = ErrorWander::new(0.5, 0.6);
        let m: Vec<f64> = (0..20_000)
            .map(|s| wander_multiplier(3, &track, s, w))
            .collect();
        let n = m.len() as f64;
        let mean = m.iter().sum::<f64>() / n;
        let logs: Vec<f64> = m.iter().map(|v| v.ln()).collect();
        let lm = logs.iter().sum::<f64>() / n;
        let var = logs.iter().map(|x| (x - lm) * (x - lm)).sum::<f64>() / n;
        let lag1 = logs
            .windows(2)
            .map(|p| (p[0] - lm) * (p[1] - lm))
            .sum::<f64>()
            / (n - 1.0)
            / var;
        assert!((mean - 1.0).abs() < 0.03, "mean {mean}");
        assert!((var.sqrt() - 0.5).abs() < 0.02, "sd {}", var.sqrt());
        assert!((lag1 - 0.6).abs() < 0.03, "correlation {lag1}");
        assert_eq!(
            wander_multiplier(3, &track, 77, w),
            m[77],
            "a pure function"
        );
        assert_eq!(
            wander_multiplier(3, &track, 5, ErrorWander::new(0.0, 0.6)),
            1.0
        );
    }

    #[test]
    fn streams_differ_by_seed_track_and_second_and_repeat_exactly() {
        let draw = |seed, track: &Track, s| stream(seed, track, s, TRAFFIC).random::<u64>();
        let base = draw(1, &Track::Canary, 10);
        assert_eq!(base, draw(1, &Track::Canary, 10));
        assert_ne!(base, draw(2, &Track::Canary, 10));
        assert_ne!(base, draw(1, &Track::Stable, 10));
        assert_ne!(base, draw(1, &Track::Canary, 11));
        let other = stream(1, &Track::Canary, 10, TRAFFIC + 1).random::<u64>();
        assert_ne!(base, other);
    }

    #[test]
    fn stratified_latencies_keep_count_and_quantiles() {
        let mut rng = stream(7, &Track::Stable, 0, TRAFFIC);
        let mut all = LatencySketch::new();
        for _ in 0..200 {
            latencies(&mut rng, 1_000, 40.0, 0.5, &mut all);
        }
        assert_eq!(all.count(), 200_000);
        let median = all.quantile(0.5).unwrap();
        assert!((median / 40.0 - 1.0).abs() < 0.03, "median {median}");
        let p99 = all.quantile(0.99).unwrap();
        let want = 40.0 * (0.5_f64 * 2.326_347_874_040_841).exp();
        assert!((p99 / want - 1.0).abs() < 0.05, "p99 {p99} want {want}");
        let mut few = LatencySketch::new();
        latencies(&mut rng, 7, 40.0, 0.5, &mut few);
        assert_eq!(few.count(), 7);
    }

    #[test]
    fn counts_have_the_right_means() {
        let mut rng = stream(3, &Track::Canary, 0, TRAFFIC);
        let n: u64 = (0..2_000).map(|_| poisson(&mut rng, 50.0)).sum();
        assert!((n as f64 / 2_000.0 - 50.0).abs() < 1.0, "{n}");
        assert_eq!(poisson(&mut rng, 0.0), 0);
        assert_eq!(binomial(&mut rng, 100, 0.0), 0);
        assert_eq!(binomial(&mut rng, 100, 1.0), 100);
        assert_eq!(binomial(&mut rng, 100, f64::NAN), 0);
    }
}
