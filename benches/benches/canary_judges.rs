//! Cost of the sequential judges: update time per observation and memory per metric per arm.
//!
//! Run: `cargo bench -p serin-benches --bench canary_judges -- --warm-up-time 1 --measurement-time 3`
//!
//! Targets: ≤ 100 ns per per-second observation for the count test, ≤ 32 KiB per metric per arm.
//!
//! Instruction counts, repeatable on a busy machine (subtract the `none` run):
//!
//! ```text
//! cargo bench -p serin-benches --bench canary_judges --no-run
//! valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/deps/canary_judges-* --count-only one_sided   # or two_sided, none
//! ```

use std::hint::black_box;

use criterion::{BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    Sides,
};
use serin_signals::LatencySketch;

/// Per-second counts: (baseline requests, baseline errors, canary requests, canary errors).
fn per_second_counts(load: f64, share: f64, rate: f64, n: usize, seed: u64) -> Vec<[u64; 4]> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let pb = Poisson::new(load * (1.0 - share)).expect("positive mean");
    let pc = Poisson::new(load * share).expect("positive mean");
    (0..n)
        .map(|_| {
            let br = pb.sample(&mut rng) as u64;
            let cr = pc.sample(&mut rng) as u64;
            let be = (0..br).filter(|_| rng.random::<f64>() < rate).count() as u64;
            let ce = (0..cr).filter(|_| rng.random::<f64>() < rate).count() as u64;
            [br, be, cr, ce]
        })
        .collect()
}

const N: usize = 100_000;

fn count_updates(c: &mut Criterion) {
    let mut g = c.benchmark_group("count_test_update");
    g.throughput(Throughput::Elements(N as u64));
    for (name, load) in [("500rps_5pct", 500.0), ("20rps_5pct", 20.0)] {
        let data = per_second_counts(load, 0.05, 0.005, N, 1);
        for (mode, cfg) in [
            ("one_sided", CountTestConfig::new(0.05)),
            (
                "two_sided",
                CountTestConfig::new(0.05).with_sides(Sides::TwoSided),
            ),
        ] {
            g.bench_function(format!("{mode}/{name}"), |b| {
                b.iter_batched_ref(
                    || CountTest::new(cfg).expect("valid config"),
                    |t| {
                        for [br, be, cr, ce] in &data {
                            black_box(t.update(*br, *be, *cr, *ce));
                        }
                    },
                    BatchSize::LargeInput,
                )
            });
        }
        g.bench_function(format!("one_sided_stated_share/{name}"), |b| {
            b.iter_batched_ref(
                || CountTest::new(CountTestConfig::new(0.05)).expect("valid config"),
                |t| {
                    for [_, be, _, ce] in &data {
                        black_box(t.update_with_share(*be, *ce, 0.05).ok());
                    }
                },
                BatchSize::LargeInput,
            )
        });
        g.bench_function(format!("batched/{name}"), |b| {
            b.iter_batched_ref(
                || BatchCountTest::new(BatchCountConfig::new(0.05)).expect("valid config"),
                |t| {
                    for [br, be, cr, ce] in &data {
                        black_box(t.update(*br, *be, *cr, *ce));
                    }
                },
                BatchSize::LargeInput,
            )
        });
    }
    g.finish();
}

fn latency_updates(c: &mut Criterion) {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let ln = LogNormal::new(3.0, 0.5).expect("valid");
    // One second at 500 req/s with a 5% canary, as sketches.
    let seconds: Vec<(LatencySketch, LatencySketch)> = (0..200)
        .map(|_| {
            let (mut b, mut c) = (LatencySketch::new(), LatencySketch::new());
            for _ in 0..475 {
                b.add(ln.sample(&mut rng)).expect("finite");
            }
            for _ in 0..25 {
                c.add(ln.sample(&mut rng)).expect("finite");
            }
            (b, c)
        })
        .collect();
    let mut g = c.benchmark_group("latency_test_update");
    g.throughput(Throughput::Elements(seconds.len() as u64));
    g.bench_function("per_second_sketches/500rps_5pct", |b| {
        b.iter_batched_ref(
            || LatencyTest::new(LatencyTestConfig::new(0.05)).expect("valid config"),
            |t| {
                for (bs, cs) in &seconds {
                    black_box(t.update(bs, cs));
                }
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

/// Prints the memory each judge holds per metric and per arm (not a timing).
fn memory_report() {
    let count = CountTest::state_bytes();
    println!(
        "memory: CountTest {count} B per metric (both arms, no heap) = {} B per metric per arm",
        count / 2
    );
    let batch = std::mem::size_of::<BatchCountTest>();
    println!(
        "memory: BatchCountTest {batch} B per metric (no heap) = {} B per metric per arm",
        batch / 2
    );
    // A latency test holds one cumulative sketch per arm (for the p99); fill them with a wide spread of values and
    // measure the serialized bins as a proxy for the heap they hold.
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let ln = LogNormal::new(3.0, 2.0).expect("valid");
    let (mut b, mut c) = (LatencySketch::new(), LatencySketch::new());
    for _ in 0..1_000_000 {
        b.add(ln.sample(&mut rng)).expect("finite");
    }
    for _ in 0..1_000_000 {
        c.add(ln.sample(&mut rng)).expect("finite");
    }
    let json = serde_json::to_vec(&b).map(|v| v.len()).unwrap_or(0);
    let inline = std::mem::size_of::<LatencyTest>();
    println!(
        "memory: LatencyTest {inline} B inline + one sketch per arm (at most 2,048 bins of 8 B = \
         16 KiB each); a sketch of 1e6 log-normal values (sigma 2) serializes to {json} B of JSON"
    );
}

/// `--count-only MODE`: feeds [`N`] per-second samples (500 req/s, 5% canary, 0.5% errors) to
/// one count test once and exits, so that `valgrind --tool=callgrind` counts its instructions;
/// `MODE` is `one_sided`, `two_sided` or `none` (the data alone, to subtract). Prints the
/// rejection so the work is not optimized away.
fn count_only(mode: &str) {
    let data = per_second_counts(500.0, 0.05, 0.005, N, 1);
    let cfg = match mode {
        "one_sided" => CountTestConfig::new(0.05),
        "two_sided" => CountTestConfig::new(0.05).with_sides(Sides::TwoSided),
        _ => {
            println!("data only: {} samples", black_box(&data).len());
            return;
        }
    };
    let mut t = CountTest::new(cfg).expect("valid config");
    for [br, be, cr, ce] in &data {
        black_box(t.update(*br, *be, *cr, *ce));
    }
    println!(
        "{mode}: rejected {:?}, e-value {:.4}",
        t.rejected_at(),
        t.e_value()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--count-only") {
        count_only(args.get(i + 1).map_or("none", String::as_str));
        return;
    }
    memory_report();
    let mut c = Criterion::default().configure_from_args();
    count_updates(&mut c);
    latency_updates(&mut c);
    c.final_summary();
}
