//! Seeded draws for one track and one second: request and error counts, and a latency sketch.
//!
//! Every second of every track has its own random stream, keyed by the world's seed, the
//! track's name and the second's index. Nothing depends on the order or the number of queries,
//! so the same question always gets the same answer, and any partition of a window into
//! sub-windows adds up to the whole exactly, down to windows that cut a second (see
//! [`arrived_before`]).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, Hypergeometric, Poisson};
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

/// Adds `n` log-normal latencies (median `median_ms`, log-sd `sigma`) to `sketch`: the groups
/// of [`latency_groups`].
pub(crate) fn latencies(
    rng: &mut ChaCha8Rng,
    n: u64,
    median_ms: f64,
    sigma: f64,
    sketch: &mut LatencySketch,
) {
    latency_groups(rng, n, median_ms, sigma, |value, count| {
        // A finite, non-negative value by construction; a rejected one is simply not added.
        let _ = sketch.add_n(value, count);
    });
}

/// Draws `n` log-normal latencies (median `median_ms`, log-sd `sigma`) and hands them to
/// `each` as `(value, how many requests took it)`.
///
/// Up to [`STRATA`] requests, each latency is drawn on its own. Above, the distribution is cut
/// into [`STRATA`] slices of equal probability; how many requests fall in each slice is drawn
/// exactly (multinomially), and each slice's requests share one latency drawn within the slice.
/// The count below every slice boundary therefore has exactly the sampling distribution of `n`
/// independent requests, while the cost per second stays constant however heavy the traffic.
pub(crate) fn latency_groups(
    rng: &mut ChaCha8Rng,
    n: u64,
    median_ms: f64,
    sigma: f64,
    mut each: impl FnMut(f64, u64),
) {
    let value = |u: f64| median_ms * (sigma * inverse_normal(u)).exp();
    if n <= STRATA {
        for _ in 0..n {
            let u: f64 = rng.random();
            each(value(u), 1);
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
            each(value(u), c);
        }
        remaining -= c;
    }
}

/// Keys the draws that place a second's requests in time within it (one stream per node of
/// the halving below, whose bounds fill the low 32 bits).
const ARRIVALS: u64 = 0x4152_5249_0000_0000;

/// Keys the draw of which latency groups a second's errors fell in.
const ERRORS_BY_LATENCY: u64 = 0x4552_524c_0000_0001;

/// A second's requests sorted into classes: `ok[j]` succeeded and `failed[j]` failed, in
/// latency group `j` (one group when latencies are not asked for).
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Classes {
    pub(crate) ok: Vec<u64>,
    pub(crate) failed: Vec<u64>,
}

impl Classes {
    fn zero(groups: usize) -> Self {
        Classes {
            ok: vec![0; groups],
            failed: vec![0; groups],
        }
    }

    fn add(&mut self, other: &Classes) {
        for (a, b) in self.ok.iter_mut().zip(&other.ok) {
            *a += b;
        }
        for (a, b) in self.failed.iter_mut().zip(&other.failed) {
            *a += b;
        }
    }

    /// What is in `self` and not in `part` (a part of it).
    pub(crate) fn minus(&self, part: &Classes) -> Classes {
        let sub = |a: &[u64], b: &[u64]| a.iter().zip(b).map(|(x, y)| x - y).collect();
        Classes {
            ok: sub(&self.ok, &part.ok),
            failed: sub(&self.failed, &part.failed),
        }
    }

    /// All requests of group `j`.
    pub(crate) fn requests_of(&self, j: usize) -> u64 {
        self.ok[j] + self.failed[j]
    }

    /// All requests.
    pub(crate) fn requests(&self) -> u64 {
        self.ok.iter().chain(&self.failed).sum()
    }

    /// All failed requests.
    pub(crate) fn errors(&self) -> u64 {
        self.failed.iter().sum()
    }
}

/// How the `errors` of a second fell among its latency groups of `sizes` requests each: the
/// errors of the model strike independently of latency, so their spread over the groups is
/// multivariate hypergeometric.
pub(crate) fn errors_by_group(
    seed: u64,
    track: &Track,
    second: u64,
    errors: u64,
    sizes: &[u64],
) -> Vec<u64> {
    let mut rng = stream(seed, track, second, ERRORS_BY_LATENCY);
    spread(&mut rng, sizes, errors.min(sizes.iter().sum()))
}

/// Of `n` draws without replacement from `population` items of which `marked` are marked, how
/// many are marked.
fn hypergeometric(rng: &mut ChaCha8Rng, population: u64, marked: u64, n: u64) -> u64 {
    if n == 0 || marked == 0 {
        return 0;
    }
    if n >= population {
        return marked;
    }
    if marked >= population {
        return n;
    }
    match Hypergeometric::new(population, marked, n) {
        Ok(h) => h.sample(rng),
        // Out of the distribution's range only for impossible inputs; the mean stands in.
        Err(_) => n * marked / population,
    }
}

/// Which of a second's requests (`all`, by class) arrived in its first `ms` milliseconds.
///
/// Each request arrives at a uniform instant of its second, independently of its class. The
/// second's millisecond range is halved again and again; how many requests of each class fall
/// in the first half of a range is drawn from a stream keyed by that range, so every cut of the
/// second sees the same arrivals: the requests before an earlier cut are among those before a
/// later one, and the parts between cuts add up to the whole second exactly. The totals of
/// failed and succeeded requests are drawn before their spread over latency groups, so the
/// counts a window reads do not depend on whether its latencies were asked for.
pub(crate) fn arrived_before(
    seed: u64,
    track: &Track,
    second: u64,
    all: &Classes,
    ms: u64,
) -> Classes {
    let groups = all.ok.len();
    let mut before = Classes::zero(groups);
    let mut node = all.clone();
    let (mut lo, mut hi) = (0u64, 1_000u64);
    while ms > lo {
        if ms >= hi {
            before.add(&node);
            break;
        }
        let mid = (lo + hi) / 2;
        let p = (mid - lo) as f64 / (hi - lo) as f64;
        let mut rng = stream(seed, track, second, ARRIVALS | (lo << 16) | hi);
        let ok_total: u64 = node.ok.iter().sum();
        let failed_total: u64 = node.failed.iter().sum();
        let ok_first = binomial(&mut rng, ok_total, p);
        let failed_first = binomial(&mut rng, failed_total, p);
        let first = Classes {
            ok: spread(&mut rng, &node.ok, ok_first),
            failed: spread(&mut rng, &node.failed, failed_first),
        };
        if ms <= mid {
            node = first;
            hi = mid;
        } else {
            before.add(&first);
            node = node.minus(&first);
            lo = mid;
        }
    }
    before
}

/// How `n` requests drawn at random from groups of `sizes` fall among the groups.
fn spread(rng: &mut ChaCha8Rng, sizes: &[u64], n: u64) -> Vec<u64> {
    if let [_] = sizes {
        return vec![n];
    }
    let mut population: u64 = sizes.iter().sum();
    let mut left = n;
    sizes
        .iter()
        .map(|&size| {
            let k = hypergeometric(rng, population, size, left);
            population -= size;
            left -= k;
            k
        })
        .collect()
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

    /// Arrivals before a later cut include those before an earlier one, class by class; the
    /// whole second is all of them; the share before a cut is the cut's share of the second.
    #[test]
    fn arrivals_are_nested_and_uniform() {
        let all = Classes {
            ok: vec![4_000, 1, 3_000],
            failed: vec![200, 0, 50],
        };
        let track = Track::Canary;
        assert_eq!(arrived_before(1, &track, 9, &all, 0), Classes::zero(3));
        assert_eq!(arrived_before(1, &track, 9, &all, 1_000), all);
        let mut previous = Classes::zero(3);
        for ms in (0..=1_000).step_by(37) {
            let now = arrived_before(1, &track, 9, &all, ms);
            let part = now.minus(&previous);
            assert_eq!(part.requests() + previous.requests(), now.requests());
            let share = now.requests() as f64 / all.requests() as f64;
            assert!((share - ms as f64 / 1_000.0).abs() < 0.03, "{ms}: {share}");
            previous = now;
        }
        let one = Classes {
            ok: vec![7_001],
            failed: vec![250],
        };
        for ms in [1, 333, 500, 999] {
            let (grouped, single) = (
                arrived_before(4, &track, 2, &all, ms),
                arrived_before(4, &track, 2, &one, ms),
            );
            assert_eq!(
                (grouped.requests(), grouped.errors()),
                (single.requests(), single.errors()),
                "{ms}"
            );
        }
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
