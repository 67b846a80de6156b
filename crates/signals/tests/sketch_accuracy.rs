//! `LatencySketch` against exact quantiles: its stated relative accuracy on seeded data of
//! several shapes, and merges that are associative, commutative and count-preserving.

use proptest::prelude::*;
use serin_signals::LatencySketch;

/// A small seeded generator (SplitMix64), so that each case replays exactly.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `(0, 1]`.
    fn unit(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box-Muller).
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit(), self.unit());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

#[derive(Debug, Clone, Copy)]
enum Shape {
    LogNormal,
    Bimodal,
    Constant,
    HeavyTailed,
}

fn sample(shape: Shape, rng: &mut Rng) -> f64 {
    match shape {
        Shape::LogNormal => (3.0 + 1.2 * rng.normal()).exp(),
        Shape::Bimodal if rng.unit() < 0.7 => (20.0 + 2.0 * rng.normal()).max(0.0),
        Shape::Bimodal => (900.0 + 80.0 * rng.normal()).max(0.0),
        Shape::Constant => 250.0,
        // Pareto with tail index 1.1: a mean barely finite, extremes many orders above the median.
        Shape::HeavyTailed => 2.0 / rng.unit().powf(1.0 / 1.1),
    }
}

fn shape() -> impl Strategy<Value = Shape> {
    prop_oneof![
        Just(Shape::LogNormal),
        Just(Shape::Bimodal),
        Just(Shape::Constant),
        Just(Shape::HeavyTailed),
    ]
}

fn sketch_of(values: &[f64]) -> LatencySketch {
    let mut s = LatencySketch::new();
    for v in values {
        s.add(*v).unwrap();
    }
    s
}

/// The exact `q`-quantile as the sketch defines it: the value at rank `⌊q (n − 1)⌋`.
fn exact(sorted: &[f64], q: f64) -> f64 {
    sorted[(q * (sorted.len() - 1) as f64) as usize]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn quantiles_lie_within_the_stated_accuracy(
        shape in shape(),
        seed in any::<u64>(),
        n in 1usize..3_000,
    ) {
        let mut rng = Rng(seed);
        let mut values: Vec<f64> = (0..n).map(|_| sample(shape, &mut rng)).collect();
        let sketch = sketch_of(&values);
        values.sort_by(f64::total_cmp);
        prop_assert_eq!(sketch.count(), n as u64);
        prop_assert_eq!(sketch.min(), values.first().copied());
        prop_assert_eq!(sketch.max(), values.last().copied());
        for p in 0..=1000 {
            let q = f64::from(p) / 1000.0;
            let (want, got) = (exact(&values, q), sketch.quantile(q).unwrap());
            let bound = want * LatencySketch::RELATIVE_ACCURACY * (1.0 + 1e-9);
            prop_assert!((got - want).abs() <= bound, "{shape:?} q={q}: exact {want}, got {got}");
        }
    }

    #[test]
    fn merges_are_associative_commutative_and_keep_every_value(
        shape in shape(),
        seed in any::<u64>(),
        sizes in (0usize..400, 0usize..400, 0usize..400),
    ) {
        let mut rng = Rng(seed);
        let mut part = |n| (0..n).map(|_| sample(shape, &mut rng)).collect::<Vec<f64>>();
        let (a, b, c) = (part(sizes.0), part(sizes.1), part(sizes.2));
        let (sa, sb, sc) = (sketch_of(&a), sketch_of(&b), sketch_of(&c));
        let merged = |x: &LatencySketch, y: &LatencySketch| {
            let mut m = x.clone();
            m.merge(y).unwrap();
            m
        };
        let left = merged(&merged(&sa, &sb), &sc);
        let right = merged(&sa, &merged(&sb, &sc));
        let all: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
        prop_assert_eq!(left.count(), all.len() as u64);
        prop_assert_eq!(&left, &right);
        prop_assert_eq!(&merged(&sa, &sb), &merged(&sb, &sa));
        prop_assert_eq!(&left, &sketch_of(&all));
    }
}

/// However many values, and however far apart, the sketch keeps at most its 2,048 bins, and the
/// high quantiles stay within the bound when the lowest bins collapse.
#[test]
fn memory_stays_within_its_bins() {
    let mut s = LatencySketch::new();
    let mut values = Vec::new();
    for exp in -30..=180 {
        let v = 10f64.powf(f64::from(exp) / 10.0);
        s.add_n(v, 1_000).unwrap();
        values.push(v);
    }
    let form = serde_json::to_value(&s).unwrap();
    let bins = form["store"]["bins"].as_array().unwrap().len();
    assert!(bins <= 2_048, "{bins} bins");
    assert_eq!(s.count(), 1_000 * values.len() as u64);
    for q in [0.5, 0.9, 0.99] {
        let rank = (q * (s.count() - 1) as f64) as usize;
        let want = values[rank / 1_000];
        let got = s.quantile(q).unwrap();
        assert!(
            (got - want).abs() <= want * LatencySketch::RELATIVE_ACCURACY,
            "q={q}: exact {want}, got {got}"
        );
    }
}
