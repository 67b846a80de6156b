//! Cost of the sequential judges: update time per observation and memory per metric per arm.
//!
//! Run: `cargo bench -p serin-benches --bench canary_judges -- --warm-up-time 1 --measurement-time 3`
//!
//! Targets: ≤ 100 ns per per-second observation for the count test, ≤ 32 KiB per metric per arm.
//!
//! After criterion, a table prints each judge's cost per update beside baselines measured back
//! to back in the same run, on the same samples: for counts, the known-effect likelihood ratio
//! (a running sum of log-likelihood ratios, the least any sequential statistic does per sample)
//! and an exact conditional binomial test recomputed from the totals every second (what
//! re-running a fixed-horizon test at each look costs, without the anytime guarantee); for
//! latency, merging each second's sketches into cumulative ones and reading both arms' log
//! moments (the least a test that reads every value and reports the p99 does).
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
use serin_benches::items_per_second;
use serin_canary::sequential::{
    BatchCountConfig, BatchCountTest, CountTest, CountTestConfig, LatencyTest, LatencyTestConfig,
    LogMoments, Sides,
};
use serin_signals::LatencySketch;
use statrs::distribution::{Binomial, DiscreteCDF};

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

/// 200 seconds at 500 req/s with a 5% canary, each arm's second as a sketch.
fn per_second_sketches() -> Vec<(LatencySketch, LatencySketch)> {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let ln = LogNormal::new(3.0, 0.5).expect("valid");
    (0..200)
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
        .collect()
}

fn latency_updates(c: &mut Criterion) {
    let seconds = per_second_sketches();
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
/// rejection so the work is not optimized away. Any other mode is refused before any work: a
/// misspelt one run as `none` would count the data alone, and the subtraction would say the
/// test costs nothing.
fn count_only(mode: &str) {
    let cfg = match mode {
        "one_sided" => Some(CountTestConfig::new(0.05)),
        "two_sided" => Some(CountTestConfig::new(0.05).with_sides(Sides::TwoSided)),
        "none" => None,
        other => {
            eprintln!(
                "canary_judges: --count-only takes one_sided, two_sided or none, not {other:?}"
            );
            std::process::exit(2);
        }
    };
    let data = per_second_counts(500.0, 0.05, 0.005, N, 1);
    let Some(cfg) = cfg else {
        println!("data only: {} samples", black_box(&data).len());
        return;
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

/// Per-second samples, as [`per_second_counts`] draws them.
type Samples = [[u64; 4]];

/// One pass of a judge or baseline over the samples.
type Feed = fn(&Samples);

/// The known-effect likelihood ratio of an error-rate ratio of 2 over `data`: per sample with
/// errors, one logarithm for the share-weighted rate.
fn known_effect_lr(data: &Samples) -> f64 {
    let ln_r = 2f64.ln();
    let mut llr = 0.0;
    for [br, be, cr, ce] in data {
        if br + cr == 0 || be + ce == 0 {
            continue;
        }
        let share = *cr as f64 / (br + cr) as f64;
        llr += *ce as f64 * ln_r - (be + ce) as f64 * (1.0 + share).ln();
    }
    llr
}

/// The exact one-sided conditional binomial test of "the canary's errors are no more than its
/// share of all errors", recomputed from the totals after every sample with errors; returns the
/// smallest p-value.
fn binomial_recomputed(data: &Samples) -> f64 {
    let (mut br_t, mut be_t, mut cr_t, mut ce_t) = (0u64, 0u64, 0u64, 0u64);
    let mut min_p = 1.0f64;
    for [br, be, cr, ce] in data {
        (br_t, be_t, cr_t, ce_t) = (br_t + br, be_t + be, cr_t + cr, ce_t + ce);
        if be + ce == 0 || ce_t == 0 {
            continue;
        }
        let share = cr_t as f64 / (br_t + cr_t) as f64;
        if let Ok(b) = Binomial::new(share, be_t + ce_t) {
            min_p = min_p.min(b.sf(ce_t - 1));
        }
    }
    min_p
}

/// Feeds `d` to a fresh count test of `cfg`.
fn feed_count(cfg: CountTestConfig, d: &Samples) {
    let mut t = CountTest::new(cfg).expect("valid config");
    for [br, be, cr, ce] in d {
        black_box(t.update(*br, *be, *cr, *ce));
    }
}

/// Nanoseconds per item of `f` handling `n` items per call.
fn ns_per_item(n: usize, passes: u32, f: impl FnMut()) -> f64 {
    1e9 / items_per_second(n, passes, f)
}

/// The cost table: each judge beside its baselines, measured back to back on the same samples.
fn cost_table() {
    let passes = 15;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let loads = [("500 rps, 5% canary", 500.0), ("20 rps, 5% canary", 20.0)];
    let data: Vec<Vec<[u64; 4]>> = loads
        .iter()
        .map(|(_, load)| per_second_counts(*load, 0.05, 0.005, N, 1))
        .collect();
    let rows: [(&str, Feed); 6] = [
        ("count test, one-sided (the default)", |d| {
            feed_count(CountTestConfig::new(0.05), d)
        }),
        ("count test, two-sided", |d| {
            feed_count(CountTestConfig::new(0.05).with_sides(Sides::TwoSided), d)
        }),
        ("count test, stated share", |d| {
            let mut t = CountTest::new(CountTestConfig::new(0.05)).expect("valid config");
            for [_, be, _, ce] in d {
                black_box(t.update_with_share(*be, *ce, 0.05).ok());
            }
        }),
        ("batched count test (robust mode)", |d| {
            let mut t = BatchCountTest::new(BatchCountConfig::new(0.05)).expect("valid config");
            for [br, be, cr, ce] in d {
                black_box(t.update(*br, *be, *cr, *ce));
            }
        }),
        ("baseline: known-effect LR", |d| {
            black_box(known_effect_lr(d));
        }),
        ("baseline: binomial test recomputed", |d| {
            black_box(binomial_recomputed(d));
        }),
    ];
    println!();
    println!(
        "cost per per-second update — {N} samples, 0.5% errors in both arms, median of {passes} \
         passes back to back, 1 thread, {cores} cores on the machine"
    );
    println!("{:<40} {:>20} {:>20}", "what", loads[0].0, loads[1].0);
    for (what, f) in rows {
        let ns: Vec<f64> = data
            .iter()
            .map(|d| ns_per_item(N, passes, || f(d)))
            .collect();
        println!("{what:<40} {:>17.1} ns {:>17.1} ns", ns[0], ns[1]);
    }
    println!("target: count test <= 100 ns per update");

    let seconds = per_second_sketches();
    let latency = ns_per_item(seconds.len(), passes, || {
        let mut t = LatencyTest::new(LatencyTestConfig::new(0.05)).expect("valid config");
        for (bs, cs) in &seconds {
            black_box(t.update(bs, cs));
        }
    });
    let floor = ns_per_item(seconds.len(), passes, || {
        let (mut cum_b, mut cum_c) = (LatencySketch::new(), LatencySketch::new());
        for (bs, cs) in &seconds {
            cum_b.merge(bs).unwrap();
            cum_c.merge(cs).unwrap();
            black_box((LogMoments::from_sketch(bs), LogMoments::from_sketch(cs)));
        }
        black_box((cum_b, cum_c));
    });
    println!();
    println!("{:<40} {:>20}", "latency, per-second sketches", loads[0].0);
    println!("{:<40} {:>17.1} µs", "latency test", latency / 1e3);
    println!(
        "{:<40} {:>17.1} µs",
        "baseline: merge sketches, read moments",
        floor / 1e3
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
    cost_table();
}
