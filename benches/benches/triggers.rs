//! Trigger engine throughput and memory: 1,000 triggers over 1,000 streams.
//!
//! ```text
//! cargo bench -p serin-benches --bench triggers -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Streams and triggers, one trigger per stream (250 of each kind below, each on its own stream):
//! metric thresholds on custom gauges, CUSUM error-spike detectors on counts, resource-usage
//! triggers on CPU gauges, and banded error-rate thresholds on counts. Observations come in rounds
//! (every stream once per 10 s round) from a seeded generator, mostly healthy with occasional
//! breaches, so the engine does real state changes. Criterion measures the engine; a table is
//! printed after it with the engine's rate beside two baselines measured in the same run: the
//! bare routing lookup (a two-level hash map, as the engine routes) and a loop that only reads
//! each observation's value. Memory per trigger is the engine's own accounting
//! (`Engine::memory_bytes`: structs, owned heap and routing tables).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serin_benches::items_per_second;
use serin_signals::{
    Counts, Gauge, HealthSignal, Measurement, Metric, Observation, Probe, ProbeStatus, Timestamp,
    Track, Window,
};
use serin_triggers::{Engine, EngineConfig, TriggerConfig};

const SEED: u64 = 0x5e71_2026;
const TRIGGERS: usize = 1_000;
const ROUNDS: u64 = 100;

fn stream(i: usize) -> (Metric, Track) {
    let track = Track::named(&format!("t{i}")).expect("valid track name");
    match i % 4 {
        0 => (
            Metric::named(&format!("m{i}")).expect("valid metric"),
            Track::Canary,
        ),
        1 | 3 => (Metric::ErrorRate, track),
        _ => (Metric::Cpu, track),
    }
}

fn config() -> EngineConfig {
    let triggers = (0..TRIGGERS)
        .map(|i| {
            let (metric, track) = stream(i);
            let json = match i % 4 {
                0 => format!(
                    r#"{{"kind":"metricThreshold","id":"m{i}","metric":"{metric}","operator":"gt",
                        "value":90,"warnValue":80,"duration":"30s"}}"#
                ),
                1 => format!(
                    r#"{{"kind":"errorSpike","id":"s{i}","track":"{track}","baselineErrorRate":0.02}}"#
                ),
                2 => format!(
                    r#"{{"kind":"resourceUsage","id":"r{i}","track":"{track}","resource":"cpu",
                        "capacity":2,"warnPercent":80,"rollbackPercent":95,"duration":"30s"}}"#
                ),
                _ => format!(
                    r#"{{"kind":"metricThreshold","id":"e{i}","track":"{track}","metric":"error_rate",
                        "operator":"gt","value":0.20,"warnValue":0.10,"duration":"30s"}}"#
                ),
            };
            serde_json::from_str::<TriggerConfig>(&json).expect("bench config parses")
        })
        .collect();
    EngineConfig { triggers }
}

fn observations() -> Vec<Observation> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut out = Vec::with_capacity(TRIGGERS * ROUNDS as usize);
    for round in 1..=ROUNDS {
        let end = Timestamp::from_millis(round * 10_000);
        let window = Window::ending_at(end, Duration::from_secs(10));
        for i in 0..TRIGGERS {
            let (metric, track) = stream(i);
            let bad = rng.random_bool(0.02);
            let m = match i % 4 {
                0 | 2 => {
                    let v: f64 = if bad {
                        rng.random_range(80.0..100.0)
                    } else {
                        rng.random_range(0.0..70.0)
                    };
                    let v = if i % 4 == 2 { v / 50.0 } else { v };
                    Measurement::Gauge(Gauge::new(v).expect("finite"))
                }
                _ => {
                    let requests = rng.random_range(500..1_500u64);
                    let rate = if bad { 0.25 } else { 0.02 };
                    let errors = (requests as f64 * rate * rng.random_range(0.5..1.5)) as u64;
                    Measurement::Counts(
                        Counts::new(requests, errors.min(requests)).expect("counts"),
                    )
                }
            };
            out.push(Observation::new(metric, track, window, m));
        }
    }
    out
}

/// Feeds `obs` round by round, moving the engine's clock to each round's end before its
/// observations, as a caller that reads up to its `now` does: each observation is then checked
/// against the clock (an input dated far past it is refused).
fn feed(engine: &mut Engine, obs: &[Observation]) -> usize {
    for o in obs {
        engine.advance_clock(o.window.end());
        engine.observe(o).expect("bench observations are valid");
    }
    engine.tick(obs.last().map_or(Timestamp::EPOCH, |o| o.window.end()));
    engine.drain_events().count()
}

/// The routing floor: the same two-level lookup the engine does, nothing else.
fn route_only(routes: &HashMap<Metric, HashMap<Track, Vec<u32>>>, obs: &[Observation]) -> u64 {
    let mut hits = 0u64;
    for o in obs {
        if let Some(list) = routes.get(&o.metric).and_then(|t| t.get(&o.track)) {
            hits += u64::from(list[0]);
        }
    }
    hits
}

/// The reading floor: extract each observation's value.
fn read_only(obs: &[Observation]) -> f64 {
    obs.iter()
        .map(|o| match &o.measurement {
            Measurement::Counts(c) => c.error_rate().unwrap_or(0.0),
            Measurement::Gauge(g) => g.value(),
            _ => 0.0,
        })
        .sum()
}

fn bench(c: &mut Criterion, engine: &Engine, obs: &[Observation]) {
    let mut g = c.benchmark_group("triggers");
    g.throughput(Throughput::Elements(obs.len() as u64));
    g.bench_function("engine_1000_triggers_1000_streams", |b| {
        b.iter_batched(
            || engine.clone(),
            |mut e| black_box(feed(&mut e, obs)),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn memory_by_kind() -> Vec<(&'static str, usize)> {
    let all = config();
    let mut rows = Vec::new();
    for (k, name) in [
        (0, "metricThreshold (gauge)"),
        (1, "errorSpike (CUSUM, 1m window)"),
        (2, "resourceUsage"),
        (3, "metricThreshold (error rate)"),
    ] {
        let triggers: Vec<_> = all.triggers.iter().skip(k).step_by(4).cloned().collect();
        let n = triggers.len();
        let e = Engine::new(EngineConfig { triggers }, Timestamp::EPOCH).expect("valid");
        rows.push((name, e.memory_bytes() / n));
    }
    rows
}

/// Probe-fed kinds, filled to their default bounds: a health check remembering its default 32
/// instances (Kubernetes-style pod names) and a dependency trigger with both sides seen.
fn memory_probe_kinds() -> Vec<(&'static str, usize)> {
    let mut rows = Vec::new();
    for (name, json) in [
        (
            "healthCheck (32 instances seen)",
            r#"{"kind":"healthCheck","id":"ready","serviceName":"checkout","checkType":"readiness"}"#,
        ),
        (
            "dependencyFailure",
            r#"{"kind":"dependencyFailure","id":"db","dependency":"postgres","callMetric":"db_calls","maxCallErrorRate":0.05}"#,
        ),
    ] {
        let t: TriggerConfig = serde_json::from_str(json).expect("bench config parses");
        let mut e =
            Engine::new(EngineConfig { triggers: vec![t] }, Timestamp::EPOCH).expect("valid");
        for i in 0..64u64 {
            let at = Timestamp::from_millis(1_000 + i);
            let probe = if name.starts_with("health") {
                Probe::Readiness
            } else {
                Probe::Dependency("postgres".into())
            };
            for track in [Track::Canary, Track::Stable] {
                e.observe_health(
                    &HealthSignal::new(track, probe.clone(), ProbeStatus::Fail, at)
                        .with_instance(format!("checkout-7d9f8c6b5-{i:05}")),
                )
                .expect("bench signals are valid");
            }
        }
        rows.push((name, e.memory_bytes()));
    }
    rows
}

fn main() {
    let engine = Engine::new(config(), Timestamp::EPOCH).expect("bench config is valid");
    let obs = observations();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &engine, &obs);
    c.final_summary();

    // The table: one core, the same observations, measured back to back.
    let reps = 5;
    let mut routes: HashMap<Metric, HashMap<Track, Vec<u32>>> = HashMap::new();
    for i in 0..TRIGGERS {
        let (m, t) = stream(i);
        routes
            .entry(m)
            .or_default()
            .entry(t)
            .or_default()
            .push(i as u32);
    }
    let mut e = engine.clone();
    let mut events = 0;
    let engine_rate = items_per_second(obs.len(), reps, || {
        e = engine.clone();
        events = feed(&mut e, &obs);
    });
    let clone_rate = items_per_second(obs.len(), reps, || {
        black_box(engine.clone());
    });
    // The engine figure above includes one engine clone per pass; take it out.
    let engine_rate = 1.0 / (1.0 / engine_rate - 1.0 / clone_rate);
    let route_rate = items_per_second(obs.len(), reps, || {
        black_box(route_only(&routes, &obs));
    });
    let read_rate = items_per_second(obs.len(), reps, || {
        black_box(read_only(&obs));
    });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!();
    println!(
        "trigger engine throughput — seed {SEED:#x}, {TRIGGERS} triggers over {TRIGGERS} streams, {} observations per pass ({ROUNDS} rounds), median of {reps} passes, 1 thread, {cores} cores on the machine",
        obs.len()
    );
    println!(
        "{:<44} {:>16} {:>12}",
        "what", "observations/s", "vs target"
    );
    for (what, r) in [
        ("engine (observe + state machine + events)", engine_rate),
        ("baseline: routing lookup only", route_rate),
        ("baseline: read the value only", read_rate),
    ] {
        println!("{what:<44} {r:>16.0} {:>11.2}x", r / 1_000_000.0);
    }
    println!("target: >= 1,000,000 observations/s per core; events emitted per pass: {events}");
    println!(
        "engine cost per observation: {:.0} ns (routing alone {:.0} ns)",
        1e9 / engine_rate,
        1e9 / route_rate
    );
    println!();
    println!(
        "{:<44} {:>16} {:>12}",
        "memory per trigger (default windows)", "bytes", "vs 4 KiB"
    );
    let total = engine.memory_bytes() / engine.len();
    for (name, bytes) in memory_by_kind()
        .into_iter()
        .chain(memory_probe_kinds())
        .chain([("all 1,000 (mixed, as benchmarked)", total)])
    {
        println!("{name:<44} {bytes:>16} {:>11.2}x", bytes as f64 / 4096.0);
    }
}
