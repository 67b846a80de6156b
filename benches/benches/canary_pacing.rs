//! The pacing harness: whole canary rollouts under three policies, to measure what power-aware
//! pacing buys (fewer requests served by a bad version) and what it costs (time to promote a
//! good one), and whether an exposure budget holds.
//!
//! ```text
//! cargo bench -p serin-benches --bench canary_pacing             # 2,000 runs per row
//! cargo bench -p serin-benches --bench canary_pacing -- --quick  # 300 runs per row
//! ```
//!
//! Options: `--quick`, `--runs N`, `--seed S`, `--threads N` (default 2; results do not depend
//! on it), `--budget B` (the budget row's exposure budget, in canary requests), `--set errors`,
//! `--set latency` or `--set overdispersed` (one set of rows; all three by default). Values are
//! checked before any row runs (see `serin_benches::rollout_sim::HarnessOptions`).
//!
//! The model and the policies are documented in `serin_benches::rollout_sim`. Two shapes of
//! policy: steps of 5%, 20% and 50%, each held for a 5-minute pause, then promotion; and one
//! step to 50%, held 5 minutes. The default count judge (one-sided, α 0.05) watches the error
//! rate every second throughout. Each shape runs without pacing (Argo Rollouts' and Flagger's
//! way: the pause alone decides) and with pacing's defaults (the errors at each weight must rule
//! out a 2× regression before the weight rises or the canary is promoted); the one-step shape
//! also with an exposure budget, which sizes its first weight.
//!
//! The latency rows (20 requests/s, where a slowdown takes minutes to see) give the canary a
//! median 5% or 10% above the baseline's, errors alike, and add the default latency judge;
//! the stepped shape also runs with 1-minute pauses, Flagger's default interval.
//! Each shape runs with fixed pauses, with pacing on errors alone, with pacing's latency gate
//! too (the latencies at each weight must rule out a 10% slowdown), and on latency alone.
//!
//! The overdispersed rows (500 requests/s, each arm wandering on its own with autocorrelation
//! 0.3 or 0.6 per second, as in `canary_eval`'s) run the judges' robust modes, as
//! `canaryConfig.robustJudges` does. Error rows wander in their error rates and run the stepped
//! shape with 5- and 1-minute pauses, with fixed pauses, with pacing's errors' gate as it is by
//! default (taking requests as independent), and with it in robust mode (`robustBatch` of half
//! a minute). Latency rows wander in their medians (autocorrelation 0.6) and run the stepped
//! shape with 1-minute pauses, with fixed pauses and paced on latency alone, with the latency
//! gate's default half-minute batches and second by second.

use std::time::Instant;

use serin_benches::canary_sim::{
    ALPHA, BASE_ERROR_RATE, Effect, LATENCY_LOG_SD, row_seed, upper_bound,
};
use serin_benches::rollout_sim::{
    Ending, HALF, HarnessOptions, Pacer, ROLLOUT_HORIZON_S, RolloutRun, RolloutScenario,
    SHORT_PAUSE, STEP_PAUSE, STEP_WEIGHTS, budget_verdict, run_rollouts,
};
use serin_canary::controller::{LatencyPacing, MIN_SCATTER_PAIRS, Pacing};

fn quantile(sorted: &[f64], q: f64) -> f64 {
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len().max(1)) - 1;
    sorted.get(idx).copied().unwrap_or(f64::NAN)
}

/// Mean and the half-width of its normal 95% interval.
fn mean_ci(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, 1.96 * (var / n).sqrt())
}

fn share(k: usize, n: usize) -> String {
    format!("{:.1}%", 100.0 * k as f64 / n.max(1) as f64)
}

fn print_row(scenario: &RolloutScenario, runs: &[RolloutRun], budget: Option<f64>) {
    let n = runs.len();
    let count = |f: fn(&Ending) -> bool| runs.iter().filter(|r| f(&r.ending)).count();
    let promoted = count(|e| matches!(e, Ending::Promoted(_)));
    let rolled = count(|e| matches!(e, Ending::RolledBack(_)));
    let unfinished = n - promoted - rolled;
    let mut ends: Vec<f64> = runs
        .iter()
        .map(|r| match r.ending {
            Ending::Promoted(t) | Ending::RolledBack(t) => f64::from(t),
            Ending::Unfinished => f64::INFINITY,
        })
        .collect();
    ends.sort_by(f64::total_cmp);
    let mut exposure: Vec<f64> = runs.iter().map(|r| r.canary_requests as f64).collect();
    let (mean, half) = mean_ci(&exposure);
    exposure.sort_by(f64::total_cmp);
    let errors = runs.iter().map(|r| r.canary_errors as f64).sum::<f64>() / n.max(1) as f64;
    let time = |q: f64| {
        let t = quantile(&ends, q);
        if t.is_finite() {
            format!("{t:.0}")
        } else {
            format!(">{ROLLOUT_HORIZON_S}")
        }
    };
    let bad = !scenario.effect.is_null();
    let verdict = if !bad {
        format!(
            "false rollback {} (95% upper {:.1}%)",
            share(rolled, n),
            100.0 * upper_bound(rolled as u64, n as u64, 0.95)
        )
    } else {
        // Each weight's gate lets a version with the detectable regression past with
        // probability at most β, unless a judge rolls it back first.
        let first = scenario.weights.first().copied().unwrap_or(0);
        let raised = runs.iter().filter(|r| r.max_weight > first).count();
        let raised = if scenario.weights.len() > 1 {
            format!(", raised past {first}% {}", share(raised, n))
        } else {
            String::new()
        };
        let promoted = format!("bad version promoted {}{raised}", share(promoted, n));
        match budget {
            Some(b)
                if matches!(scenario.effect, Effect::ErrorRatio(r)
                    if Pacing::default().detectable_ratio.is_some_and(|d| r >= d)) =>
            {
                let within = budget_verdict(mean, half, b);
                format!("mean exposure {within} the budget {b:.0}; {promoted}")
            }
            _ => promoted,
        }
    };
    println!(
        "| {} | {} | {} | {} | {} | {} / {} | {mean:.0} ± {half:.0} | {:.0} | {errors:.1} | {verdict} |",
        scenario.label(),
        share(promoted, n),
        share(rolled, n),
        share(unfinished, n),
        runs.iter().map(|r| r.max_weight).max().unwrap_or(0),
        time(0.5),
        time(0.9),
        quantile(&exposure, 0.9),
    );
}

fn main() {
    let opts = match HarnessOptions::parse(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("canary_pacing: {e}");
            std::process::exit(2);
        }
    };
    let pacing = Pacing {
        exposure_budget: Some(opts.budget),
        ..Pacing::default()
    };
    println!(
        "canary_pacing: seed {}, {} runs per row, horizon {ROLLOUT_HORIZON_S} s, α {ALPHA}, \
         baseline error rate {}%, {} thread(s)",
        opts.seed,
        opts.runs,
        100.0 * BASE_ERROR_RATE,
        opts.threads
    );
    let ratio = pacing.detectable_ratio.unwrap_or(f64::NAN);
    let latency = LatencyPacing::default();
    let variance = LATENCY_LOG_SD * LATENCY_LOG_SD;
    let precision = latency.precision_to_pass(pacing.beta);
    println!(
        "Policies: set weight {STEP_WEIGHTS:?}% or {HALF:?}%, each held 5 min (or 1 min where \
         the row says so), then promote; the default count judge watches every second (with \
         the latency judge in the latency rows, each at α/2). Pacing's gate holds each weight \
         until the errors there make a {}× regression unlikely (likelihood ratio ≤ β = {}); \
         its latency gate, until the latencies make a {}% slowdown unlikely, which for a canary \
         as fast as the baseline takes a precision of about {precision:.0} (the estimated log \
         shift's standard error down to {:.1}%). At each weight: \
         errors a good canary needs to pass, the expected canary requests a {}× regression \
         serves before the judge catches it (X), and the seconds a good canary needs to pass \
         the latency gate at 20 requests/s (counted in {}-s batches, of which {MIN_SCATTER_PAIRS} \
         must count over the rollout before the first raise):",
        ratio,
        pacing.beta,
        latency.detectable_shift * 100.0,
        100.0 / precision.sqrt(),
        ratio,
        latency.batch.as_secs()
    );
    for &w in STEP_WEIGHTS {
        let s = f64::from(w) / 100.0;
        println!(
            "- {w}%: {:.0} errors, X = {:.0} requests; latency gate about {:.0} s",
            pacing.errors_to_pass(s),
            pacing.expected_exposure(s, BASE_ERROR_RATE),
            precision * variance / (20.0 * s * (1.0 - s))
        );
    }
    println!(
        "\nend = seconds to promotion or rollback (median / p90; >{ROLLOUT_HORIZON_S} if \
         unfinished). exposure = canary requests served before the end (mean ± 95%, p90; a \
         promoted bad version goes on to serve everyone), errors = of those, failed (mean). \
         The budget rows of a regression the gate is sized for compare the mean exposure with \
         the budget: within it or OVER it where the 95% interval lies wholly on one side.\n"
    );
    println!(
        "| row | promoted | rolled back | unfinished | top weight | end s median / p90 | \
         exposure mean | exposure p90 | errors | verdict |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let started = Instant::now();
    let mut rows = Vec::new();
    if opts.errors {
        for load in [20.0, 500.0] {
            for ratio in [1.0, 1.5, 2.0, 5.0] {
                for (weights, pacer) in [
                    (STEP_WEIGHTS, Pacer::Fixed),
                    (STEP_WEIGHTS, Pacer::Paced(None)),
                    (HALF, Pacer::Fixed),
                    (HALF, Pacer::Paced(None)),
                    (HALF, Pacer::Paced(Some(opts.budget))),
                ] {
                    let row = (load, Effect::ErrorRatio(ratio), weights, STEP_PAUSE, pacer);
                    rows.push((row, None));
                }
            }
        }
    }
    if opts.latency {
        for shift in [0.0, 0.05, 0.1] {
            for (weights, pause) in [
                (STEP_WEIGHTS, STEP_PAUSE),
                (STEP_WEIGHTS, SHORT_PAUSE),
                (HALF, STEP_PAUSE),
            ] {
                for pacer in [
                    Pacer::Fixed,
                    Pacer::Paced(None),
                    Pacer::PacedBoth,
                    Pacer::PacedLatency,
                ] {
                    let row = (20.0, Effect::LatencyShift(shift), weights, pause, pacer);
                    rows.push((row, None));
                }
            }
        }
    }
    if opts.overdispersed {
        for rho in [0.3, 0.6] {
            for ratio in [1.0, 2.0] {
                for pause in [STEP_PAUSE, SHORT_PAUSE] {
                    for pacer in [Pacer::Fixed, Pacer::Paced(None), Pacer::PacedRobust] {
                        let row = (500.0, Effect::ErrorRatio(ratio), STEP_WEIGHTS, pause, pacer);
                        rows.push((row, Some(rho)));
                    }
                }
            }
        }
        for shift in [0.0, 0.05, 0.1] {
            for pacer in [
                Pacer::Fixed,
                Pacer::PacedLatency,
                Pacer::PacedLatencyPerSecond,
            ] {
                let effect = Effect::LatencyShift(shift);
                let row = (500.0, effect, STEP_WEIGHTS, SHORT_PAUSE, pacer);
                rows.push((row, Some(0.6)));
            }
        }
    }
    for ((load_rps, effect, weights, pause, pacer), ar_rho) in rows {
        let budget = match pacer {
            Pacer::Paced(b) => b,
            Pacer::Fixed
            | Pacer::PacedBoth
            | Pacer::PacedLatency
            | Pacer::PacedRobust
            | Pacer::PacedLatencyPerSecond => None,
        };
        let scenario = RolloutScenario {
            load_rps,
            effect,
            weights,
            pause,
            pacer,
            ar_rho,
        };
        let seed = row_seed(opts.seed, &scenario.label());
        let runs = run_rollouts(&scenario, seed, opts.runs, opts.threads);
        // A worker that panicked loses its runs; a row over fewer runs than the header states
        // must not be printed as if it had them all.
        if runs.len() as u64 != opts.runs {
            eprintln!(
                "canary_pacing: row `{}` finished {} of its {} runs",
                scenario.label(),
                runs.len(),
                opts.runs
            );
            std::process::exit(1);
        }
        print_row(&scenario, &runs, budget);
    }
    println!("\ntotal {:.1} s", started.elapsed().as_secs_f64());
}
