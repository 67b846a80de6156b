//! Error-spike detector quality on synthetic series with known change points.
//!
//! ```text
//! cargo bench -p serin-benches --bench spike_quality                 # 20 runs per scenario
//! cargo bench -p serin-benches --bench spike_quality -- --runs 100 --seed 7
//! ```
//!
//! Every detector sees the same sampled series in the same run. A point is one 10-second
//! observation of `n` requests with Binomial(`n`, `p`) errors; the baseline is `p0 = 2%`, the
//! spike level `+50%` (3%). Detectors, all through `serin-triggers`' public triggers:
//!
//! - CUSUM — `errorSpike` with `detector: cusum`, `averageRunLength: 10000` (so at most one
//!   false alarm per 10,000 points is promised), fixed baseline, `minErrorCount: 10`;
//! - CUSUM φ 2.3 — the same with `dispersion: 2.3`, the variance ratio of the `overdispersed`
//!   scenario at 1,000 requests per point (`1 + n·p·(e^{σ²} − 1)/(1 − p)` ≈ 2.3);
//! - ratio rule — `errorSpike` with `detector: ratio` over a 60 s window, `minErrorCount: 10`;
//! - static 3% — `metricThreshold` `error_rate gt 0.03` on each point;
//! - static 10% — the brief's `error_rate gt 0.10` on each point.
//!
//! Scenarios (change at point 5,000 unless said otherwise): `null` (20,000 points, no change),
//! `step` (p doubles to 4%), `ramp` (2% → 6% over 1,000 points), `spike` (15% for 6 points, then
//! back; detected only if the alarm comes within the first 12 points from the change, the
//! spike's six and six more), `drift` (2% → 3% over 5,000 points),
//! `seasonal` (traffic swings between 200 and 1,800 requests per point with a 4-hour period;
//! p steps to 4%), `overdispersed` (20,000 points, no change, but the rate wanders between points:
//! log-normal with σ 0.25 around 2% — outside the CUSUM's model, so its promise does not hold
//! there). Other scenarios use 1,000 ± 100 requests per point. After any alarm before
//! the change the detector is started afresh and the alarm counts as false.
//!
//! Columns: detections over runs (with the 95% Clopper-Pearson interval of the rate), mean and
//! median delay in points (10 s each) from the change to the first alarm, false alarms per
//! 10,000 pre-change points (with the exact Poisson 95% interval). A point's window starts 10 s
//! before its observation is made, so the delay counts the points from the change up to and
//! including the one that alarms: an alarm on the first changed point comes 1 point (10 s) after
//! the change, not 0.
//!
//! Options: `--runs N` (20 by default), `--seed S` (decimal or `0x` hex, as printed).

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Binomial, Distribution, StandardNormal};
use serin_benches::canary_sim::{lower_bound, upper_bound};
use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
use serin_triggers::{ErrorSpikeTrigger, MetricThresholdTrigger, Trigger, TriggerConfig, Verdict};
use statrs::distribution::{ContinuousCDF, Gamma};

const P0: f64 = 0.02;
const CHANGE: usize = 5_000;
const STEP_MS: u64 = 10_000;

#[derive(Clone, Copy)]
enum Kind {
    Null,
    Step,
    Ramp,
    Spike,
    Drift,
    Seasonal,
    Overdispersed,
}

struct Scenario {
    name: &'static str,
    kind: Kind,
    len: usize,
}

impl Scenario {
    fn change(&self) -> Option<usize> {
        (!matches!(self.kind, Kind::Null | Kind::Overdispersed)).then_some(CHANGE)
    }

    /// The last point at which an alarm still counts as a detection: for the spike, the 12th
    /// point from the change (the change's own point being the first).
    fn deadline(&self) -> usize {
        match self.kind {
            Kind::Spike => CHANGE + 11,
            _ => self.len,
        }
    }

    fn rate(&self, i: usize, rng: &mut ChaCha8Rng) -> f64 {
        let after = i.saturating_sub(CHANGE) as f64;
        match self.kind {
            Kind::Null => P0,
            // Log-normal wander of the rate between points, mean kept at P0.
            Kind::Overdispersed => {
                let z: f64 = StandardNormal.sample(rng);
                P0 * (0.25 * z - 0.25 * 0.25 / 2.0).exp()
            }
            _ if i < CHANGE => P0,
            Kind::Step | Kind::Seasonal => 0.04,
            Kind::Ramp => P0 + 0.04 * (after / 1_000.0).min(1.0),
            Kind::Spike => {
                if i < CHANGE + 6 {
                    0.15
                } else {
                    P0
                }
            }
            Kind::Drift => P0 + 0.01 * (after / 5_000.0).min(1.0),
        }
    }

    fn requests(&self, i: usize, rng: &mut ChaCha8Rng) -> u64 {
        match self.kind {
            Kind::Seasonal => {
                let phase = i as f64 / 1_440.0 * std::f64::consts::TAU;
                (1_000.0 + 800.0 * phase.sin()).round() as u64
            }
            _ => rng.random_range(900..=1_100),
        }
    }
}

const SCENARIOS: [Scenario; 7] = [
    Scenario {
        name: "null",
        kind: Kind::Null,
        len: 20_000,
    },
    Scenario {
        name: "step 2%→4%",
        kind: Kind::Step,
        len: 7_000,
    },
    Scenario {
        name: "ramp 2%→6%/1000",
        kind: Kind::Ramp,
        len: 7_000,
    },
    Scenario {
        name: "spike 15% x6",
        kind: Kind::Spike,
        len: 5_100,
    },
    Scenario {
        name: "drift 2%→3%/5000",
        kind: Kind::Drift,
        len: 12_000,
    },
    Scenario {
        name: "seasonal + step",
        kind: Kind::Seasonal,
        len: 7_000,
    },
    Scenario {
        name: "overdispersed",
        kind: Kind::Overdispersed,
        len: 20_000,
    },
];

const DETECTORS: [&str; 5] = [
    "CUSUM ARL 1e4",
    "CUSUM φ 2.3",
    "ratio 60s",
    "static 3%",
    "static 10%",
];

fn detector(d: usize) -> Box<dyn Trigger> {
    let json = match d {
        0 => {
            r#"{"kind":"errorSpike","id":"cusum","baselineErrorRate":0.02,"increasePercentage":50,
                 "averageRunLength":10000,"minErrorCount":10,"windowSize":"1m"}"#
        }
        1 => {
            r#"{"kind":"errorSpike","id":"cusum-q","baselineErrorRate":0.02,"increasePercentage":50,
                 "averageRunLength":10000,"dispersion":2.3,"minErrorCount":10,"windowSize":"1m"}"#
        }
        2 => {
            r#"{"kind":"errorSpike","id":"ratio","baselineErrorRate":0.02,"increasePercentage":50,
                 "detector":"ratio","minErrorCount":10,"windowSize":"1m"}"#
        }
        3 => {
            r#"{"kind":"metricThreshold","id":"static","metric":"error_rate","operator":"gt","value":0.03}"#
        }
        _ => {
            r#"{"kind":"metricThreshold","id":"brief","metric":"error_rate","operator":"gt","value":0.10}"#
        }
    };
    match serde_json::from_str::<TriggerConfig>(json).expect("detector config parses") {
        TriggerConfig::ErrorSpike(c) => Box::new(ErrorSpikeTrigger::new(c).expect("valid")),
        TriggerConfig::MetricThreshold(c) => {
            Box::new(MetricThresholdTrigger::new(c).expect("valid"))
        }
        _ => unreachable!("only spike and threshold detectors are benchmarked"),
    }
}

#[derive(Default, Clone)]
struct Tally {
    runs: u64,
    detected: u64,
    delays: Vec<u64>,
    false_alarms: u64,
    pre_points: u64,
}

fn run(s: &Scenario, seed: u64, tallies: &mut [Tally]) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut dets: Vec<Box<dyn Trigger>> = (0..DETECTORS.len()).map(detector).collect();
    let mut done = vec![false; DETECTORS.len()];
    let change = s.change();
    for i in 0..s.len {
        let n = s.requests(i, &mut rng);
        let p = s.rate(i, &mut rng);
        let errors = Binomial::new(n, p).map_or(0, |b| b.sample(&mut rng));
        let end = Timestamp::from_millis((i as u64 + 1) * STEP_MS);
        let obs = Observation::new(
            Metric::ErrorRate,
            Track::Canary,
            Window::ending_at(end, Duration::from_millis(STEP_MS)),
            Measurement::Counts(Counts::new(n, errors).expect("errors <= requests")),
        );
        for (d, det) in dets.iter_mut().enumerate() {
            if done[d] {
                continue;
            }
            let alarm = matches!(det.observe(&obs), Ok(Some(Verdict::Breach(_))));
            let pre = change.is_none_or(|c| i < c);
            if pre {
                tallies[d].pre_points += 1;
            }
            if !alarm {
                continue;
            }
            match change {
                Some(c) if i >= c => {
                    if i <= s.deadline() {
                        tallies[d].detected += 1;
                        // Points from the change through the one that alarmed.
                        tallies[d].delays.push((i - c + 1) as u64);
                    }
                    done[d] = true;
                }
                _ => {
                    tallies[d].false_alarms += 1;
                    *det = detector(d);
                }
            }
        }
        if change.is_some() && i > s.deadline() {
            break;
        }
    }
    for t in tallies.iter_mut() {
        t.runs += 1;
    }
}

/// `(runs, seed)` from the command line; a value that does not parse is an error, not the
/// default, so that a printed seed given back reproduces the table or is refused.
fn parse() -> Result<(u64, u64), String> {
    let (mut runs, mut seed) = (20, 0x5e71_2026);
    let number = |v: Option<String>, what: &str| -> Result<u64, String> {
        let v = v.ok_or(format!("{what} needs a value"))?;
        match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16),
            None => v.parse(),
        }
        .map_err(|e| format!("{what} {v:?}: {e}"))
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--runs" => runs = number(args.next(), "--runs")?,
            "--seed" => seed = number(args.next(), "--seed")?,
            // Flags cargo bench passes to every harness.
            "--bench" | "--nocapture" => {}
            other => return Err(format!("unknown option `{other}`")),
        }
    }
    if runs == 0 {
        return Err("--runs 0: a scenario of no runs has no figures".into());
    }
    Ok((runs, seed))
}

/// Alarms per 10,000 points and the exact (Garwood) 95% interval of that rate, taking the
/// alarms as Poisson.
fn alarm_rate(alarms: u64, points: u64) -> (f64, f64, f64) {
    let per = 10_000.0 / points.max(1) as f64;
    let k = alarms as f64;
    let quantile =
        |shape: f64, p: f64| Gamma::new(shape, 1.0).map_or(f64::NAN, |g| g.inverse_cdf(p));
    let low = if alarms == 0 { 0.0 } else { quantile(k, 0.025) };
    (k * per, low * per, quantile(k + 1.0, 0.975) * per)
}

fn main() {
    let (runs, seed) = match parse() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("spike_quality: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "error-spike detector quality — seed {seed} ({seed:#x}), {runs} runs per scenario, p0 = 2%, spike level +50%, 10 s points"
    );
    println!(
        "detected: runs, and the rate's 95% interval; delay (over the detected runs): points from the change through the alarm; FA: per 10,000 pre-change points, and its 95% interval"
    );
    println!(
        "{:<18} {:<14} {:>20} {:>11} {:>11} {:>22}",
        "scenario", "detector", "detected", "mean delay", "med delay", "FA per 10k"
    );
    let mut total = vec![Tally::default(); DETECTORS.len()];
    for (k, s) in SCENARIOS.iter().enumerate() {
        let mut tallies = vec![Tally::default(); DETECTORS.len()];
        for r in 0..runs {
            run(s, seed ^ ((k as u64) << 32) ^ r, &mut tallies);
        }
        for (d, t) in tallies.iter_mut().enumerate() {
            t.delays.sort_unstable();
            let (mean, med) = if t.delays.is_empty() {
                ("-".to_owned(), "-".to_owned())
            } else {
                let mean = t.delays.iter().sum::<u64>() as f64 / t.delays.len() as f64;
                (
                    format!("{mean:.1}"),
                    format!("{}", t.delays[t.delays.len() / 2]),
                )
            };
            let detected = if s.change().is_some() {
                format!(
                    "{}/{} ({:.0}–{:.0}%)",
                    t.detected,
                    t.runs,
                    100.0 * lower_bound(t.detected, t.runs, 0.975),
                    100.0 * upper_bound(t.detected, t.runs, 0.975)
                )
            } else {
                "-".to_owned()
            };
            let (fa, low, high) = alarm_rate(t.false_alarms, t.pre_points);
            let fa = format!("{fa:.2} ({low:.2}–{high:.2})");
            println!(
                "{:<18} {:<14} {:>20} {:>11} {:>11} {:>22}",
                if d == 0 { s.name } else { "" },
                DETECTORS[d],
                detected,
                mean,
                med,
                fa
            );
            if !matches!(s.kind, Kind::Overdispersed) {
                total[d].false_alarms += t.false_alarms;
                total[d].pre_points += t.pre_points;
            }
        }
    }
    println!();
    println!(
        "false alarms per 10,000 healthy points over all scenarios but overdispersed (CUSUM promise: <= 1.00)"
    );
    for (d, t) in total.iter().enumerate() {
        let (fa, low, high) = alarm_rate(t.false_alarms, t.pre_points);
        println!(
            "  {:<14} {fa:>8.2}  (95% {low:.2}–{high:.2}; {} alarms in {} points)",
            DETECTORS[d], t.false_alarms, t.pre_points
        );
    }
}
