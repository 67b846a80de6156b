//! Whole rollouts in simulation: the canary controller, its policy and the default judges driven
//! second by second over seeded request streams, to measure what a policy costs — the canary
//! requests a bad version serves before it is rolled back, and the time a good one takes to be
//! promoted. Used by the `canary_pacing` harness.
//!
//! # Model
//!
//! The request model of [`canary_sim`](crate::canary_sim)'s independent rows: total load `L`
//! requests/s; each second each arm serves `Poisson(λ(1 − p))` successes and `Poisson(λp)`
//! errors, with `λ` its share of the load at the weight the controller last set, the baseline's
//! error rate 0.5% and the canary's `ratio ×` that. The controller is fed each second's pair of
//! observations of every metric, then decides once, and its action takes effect from the next
//! second. A run ends at promotion, at rollback, or at the horizon.
//!
//! Rows with an error-rate effect run the default count judge alone. Rows with a latency effect
//! also give every request a log-normal latency (median 100 ms, the canary's `1 + shift` times
//! that, log sd 0.5), fed each second as both arms' sketches to the default latency judge, and
//! to pacing's latency gate where the policy has one; the two judges share α equally, as the
//! orchestrator's do.
//!
//! Overdispersed rows (`ar…`) wander as `canary_sim`'s overdispersed rows do, each arm on its
//! own with the row's autocorrelation per second: in error rows each arm's error rate is
//! multiplied by a factor of mean 1 and log-sd 0.5, in latency rows each arm's log median is
//! offset by a wander of sd 0.05. They run the judges' robust modes with their defaults, as
//! `canaryConfig.robustJudges` does.

use std::time::Duration;

use rand::Rng;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;
use serin_canary::controller::{
    Action, CanaryController, CanaryPolicy, LatencyPacing, Pacing, Pause, Phase, Step,
};
use serin_canary::sequential::{SequentialCountJudge, SequentialJudge, SequentialLatencyJudge};
use serin_signals::{
    Counts, LatencySketch, Measurement, Metric, Observation, Timestamp, Track, Window,
};

use crate::canary_sim::{
    ALPHA, BASE_ERROR_RATE, BASE_MEDIAN_MS, Effect, LATENCY_LOG_SD, Wander, poisson, run_seeded,
};

/// Seconds a run may last before it counts as neither promoted nor rolled back.
pub const ROLLOUT_HORIZON_S: u32 = 4 * 3600;

/// The weights of the stepped policy, as Argo Rollouts' examples write them.
pub const STEP_WEIGHTS: &[u8] = &[5, 20, 50];

/// The weight of the one-step policy: half the traffic at once, as a blue-green switch with a
/// canary phase might.
pub const HALF: &[u8] = &[50];

/// How long each `pause` step of the policy waits after its weight is set, unless a row says
/// otherwise.
pub const STEP_PAUSE: Duration = Duration::from_secs(300);

/// The shorter pause of some latency rows: Flagger's default analysis interval.
pub const SHORT_PAUSE: Duration = Duration::from_secs(60);

/// How the policy paces its weight increases.
#[derive(Debug, Clone, PartialEq)]
pub enum Pacer {
    /// Fixed pauses only: the weight rises when the pause ends, whatever the evidence.
    Fixed,
    /// Pauses, and power-aware pacing with its defaults (each raise and the promotion wait until
    /// the errors rule out a 2× regression) and the given exposure budget, if any.
    Paced(Option<f64>),
    /// Pauses, and pacing with its defaults and its latency gate's (the latencies must also
    /// rule out a 10% slowdown).
    PacedBoth,
    /// Pauses, and pacing on the latency gate alone (no errors' gate).
    PacedLatency,
    /// Pauses, and pacing with its errors' gate in robust mode (half-minute batches), as
    /// `canaryConfig.robustJudges` sets it.
    PacedRobust,
    /// Pauses, and pacing on the latency gate alone, taking each second as its own batch (the
    /// gate without its default half-minute batches).
    PacedLatencyPerSecond,
}

impl Pacer {
    /// A short name for tables.
    pub fn label(&self) -> String {
        match self {
            Pacer::Fixed => "fixed pauses".into(),
            Pacer::Paced(None) => "paced".into(),
            Pacer::Paced(Some(b)) => format!("paced, budget {b:.0}"),
            Pacer::PacedBoth => "paced on errors and latency".into(),
            Pacer::PacedLatency => "paced on latency alone".into(),
            Pacer::PacedRobust => "paced, robust gate".into(),
            Pacer::PacedLatencyPerSecond => "paced on latency alone, second by second".into(),
        }
    }

    /// The policy: for each of `weights`, set it, then pause for `pause`; promote after the last
    /// pause.
    pub fn policy(&self, weights: &[u8], pause: Duration) -> CanaryPolicy {
        let steps = weights
            .iter()
            .flat_map(|w| {
                [
                    Step::SetWeight(*w),
                    Step::Pause(Pause {
                        duration: Some(pause),
                    }),
                ]
            })
            .collect();
        let mut policy = CanaryPolicy::new(steps);
        policy.pacing = match self {
            Pacer::Fixed => None,
            Pacer::Paced(budget) => Some(Pacing {
                exposure_budget: *budget,
                ..Pacing::default()
            }),
            Pacer::PacedBoth => Some(Pacing {
                latency: Some(LatencyPacing::default()),
                ..Pacing::default()
            }),
            Pacer::PacedLatency => Some(Pacing {
                detectable_ratio: None,
                latency: Some(LatencyPacing::default()),
                ..Pacing::default()
            }),
            Pacer::PacedRobust => Some(Pacing {
                robust_batch: Some(Duration::from_secs(30)),
                ..Pacing::default()
            }),
            Pacer::PacedLatencyPerSecond => Some(Pacing {
                detectable_ratio: None,
                latency: Some(LatencyPacing {
                    batch: Duration::ZERO,
                    ..LatencyPacing::default()
                }),
                ..Pacing::default()
            }),
        };
        policy
    }
}

/// One row: a load, the canary's regression, the policy's weights and a pacer.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutScenario {
    /// Total requests per second.
    pub load_rps: f64,
    /// The canary's regression: its error-rate ratio (1 = a good version), or its latency
    /// shift (0 = a good version, errors alike).
    pub effect: Effect,
    /// The weights the policy steps through ([`STEP_WEIGHTS`] or [`HALF`]).
    pub weights: &'static [u8],
    /// How long each weight's pause lasts ([`STEP_PAUSE`] in most rows).
    pub pause: Duration,
    /// How weight increases are paced.
    pub pacer: Pacer,
    /// The autocorrelation per second of each arm's wander (of its error rate, or in latency
    /// rows of its median latency), in overdispersed rows (judged by the robust modes); `None`
    /// for independent requests.
    pub ar_rho: Option<f64>,
}

impl RolloutScenario {
    /// The row's label (its streams are drawn from the seed and this label).
    pub fn label(&self) -> String {
        let weights: Vec<String> = self.weights.iter().map(u8::to_string).collect();
        let effect = match self.effect {
            Effect::ErrorRatio(r) => format!("err×{r}"),
            Effect::LatencyShift(s) => format!("lat+{}%", s * 100.0),
        };
        let pause = if self.pause == STEP_PAUSE {
            String::new()
        } else {
            format!(" with {} s pauses", self.pause.as_secs())
        };
        let wander = self.ar_rho.map_or(String::new(), |rho| format!(" ar{rho}"));
        format!(
            "{effect} {}rps{wander}, {}%{pause}, {}",
            self.load_rps,
            weights.join("/"),
            self.pacer.label()
        )
    }
}

/// How one rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// Promoted at this second.
    Promoted(u32),
    /// Rolled back at this second.
    RolledBack(u32),
    /// Still progressing at the horizon.
    Unfinished,
}

/// One rollout's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutRun {
    /// How it ended.
    pub ending: Ending,
    /// Requests the canary served before the rollout ended (its whole exposure; a promoted
    /// version serves everyone from then on).
    pub canary_requests: u64,
    /// Of those, the requests that failed.
    pub canary_errors: u64,
    /// The highest weight the canary reached before the end.
    pub max_weight: u8,
}

fn second(s: u32) -> Window {
    let at = |s: u32| Timestamp::from_millis(u64::from(s) * 1000);
    Window::new(at(s), at(s + 1)).expect("a second is a window")
}

fn counts(track: Track, window: Window, requests: u64, errors: u64) -> Observation {
    let c = Counts::new(requests + errors, errors).expect("errors never exceed requests");
    Observation::new(Metric::ErrorRate, track, window, Measurement::Counts(c))
}

/// A sketch of `n` requests' latencies, log-normal around `median_ms`.
fn latencies(
    rng: &mut ChaCha8Rng,
    track: Track,
    window: Window,
    n: u64,
    median_ms: f64,
) -> Observation {
    let mut sketch = LatencySketch::new();
    for _ in 0..n {
        let z: f64 = rng.sample(StandardNormal);
        // Finite and positive by construction, so the sketch takes it.
        let _ = sketch.add(median_ms * (LATENCY_LOG_SD * z).exp());
    }
    Observation::new(Metric::Latency, track, window, Measurement::Latency(sketch))
}

/// One seeded rollout of `scenario`.
pub fn run_rollout(scenario: &RolloutScenario, seed: u64) -> RolloutRun {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let (ratio, shift) = match scenario.effect {
        Effect::ErrorRatio(r) => (r, None),
        Effect::LatencyShift(s) => (1.0, Some(s)),
    };
    // With two judges, each takes half of α, as the orchestrator splits it.
    let alpha = if shift.is_some() { ALPHA / 2.0 } else { ALPHA };
    let count_judge = match scenario.ar_rho {
        None => SequentialCountJudge::new(Metric::ErrorRate, alpha, 0.0),
        Some(_) => SequentialCountJudge::robust(Metric::ErrorRate, alpha, 0.0),
    };
    let mut judges: Vec<SequentialJudge> =
        vec![count_judge.expect("the judge's settings are valid").into()];
    // Each arm's wander: of its error rate in error rows, of its median in latency rows.
    let mut wander = scenario
        .ar_rho
        .map(|rho| Wander::per_track(rho, shift.is_none(), &mut rng));
    if shift.is_some() {
        let judge = match scenario.ar_rho {
            None => SequentialLatencyJudge::new(Metric::Latency, alpha, 0.0),
            Some(_) => SequentialLatencyJudge::robust(Metric::Latency, alpha, 0.0),
        };
        judges.push(judge.expect("the judge's settings are valid").into());
    }
    let mut ctl = CanaryController::new(
        scenario.pacer.policy(scenario.weights, scenario.pause),
        judges,
    )
    .expect("the harness's policy is valid");
    let mut out = RolloutRun {
        ending: Ending::Unfinished,
        canary_requests: 0,
        canary_errors: 0,
        max_weight: 0,
    };
    let mut action = ctl.tick(Timestamp::from_millis(0)).action;
    let p_c = BASE_ERROR_RATE * ratio;
    for s in 0..ROLLOUT_HORIZON_S {
        match action {
            Action::Promote => {
                out.ending = Ending::Promoted(s);
                break;
            }
            Action::Rollback => {
                out.ending = Ending::RolledBack(s);
                break;
            }
            _ => {}
        }
        let w = f64::from(ctl.state().weight()) / 100.0;
        out.max_weight = out.max_weight.max(ctl.state().weight());
        let (lb, lc) = (scenario.load_rps * (1.0 - w), scenario.load_rps * w);
        // This second's wander of each arm: of its error rate, or in latency rows its median.
        let (mut rate_factor, mut median_factor) = ((1.0, 1.0), (1.0, 1.0));
        if let Some((wb, wc)) = wander.as_mut() {
            if shift.is_some() {
                median_factor = (wb.next(&mut rng).exp(), wc.next(&mut rng).exp());
            } else {
                rate_factor = (wb.next_multiplier(&mut rng), wc.next_multiplier(&mut rng));
            }
        }
        let (p_b, p_c) = (BASE_ERROR_RATE * rate_factor.0, p_c * rate_factor.1);
        let (bs, be) = (
            poisson(&mut rng, lb * (1.0 - p_b)),
            poisson(&mut rng, lb * p_b),
        );
        let (cs, ce) = (
            poisson(&mut rng, lc * (1.0 - p_c)),
            poisson(&mut rng, lc * p_c),
        );
        out.canary_requests += cs + ce;
        out.canary_errors += ce;
        let window = second(s);
        // Every metric of the second, then one decision, as the orchestrator does.
        ctl.feed(
            &counts(Track::Stable, window, bs, be),
            &counts(Track::Canary, window, cs, ce),
            window.end(),
        )
        .expect("the observations pair up");
        if let Some(shift) = shift {
            let (b, c) = (
                BASE_MEDIAN_MS * median_factor.0,
                BASE_MEDIAN_MS * (1.0 + shift) * median_factor.1,
            );
            ctl.feed(
                &latencies(&mut rng, Track::Stable, window, bs + be, b),
                &latencies(&mut rng, Track::Canary, window, cs + ce, c),
                window.end(),
            )
            .expect("the observations pair up");
        }
        action = ctl.tick(window.end()).action;
    }
    if out.ending == Ending::Unfinished {
        match ctl.state().phase() {
            Phase::Promoted => out.ending = Ending::Promoted(ROLLOUT_HORIZON_S),
            Phase::RolledBack => out.ending = Ending::RolledBack(ROLLOUT_HORIZON_S),
            Phase::Progressing => {}
        }
    }
    out
}

/// How a row's mean exposure, `mean ± half` (its 95% interval), stands against an exposure
/// budget, which bounds the expected exposure. The mean is an estimate: the promise is broken
/// only where the whole interval lies above the budget, and kept where the whole interval lies
/// within it; an interval that spans the budget neither confirms nor refutes it (more runs
/// narrow it).
pub fn budget_verdict(mean: f64, half: f64, budget: f64) -> &'static str {
    if mean + half <= budget {
        "within"
    } else if mean - half > budget {
        "OVER"
    } else {
        "not distinguishable (its 95% interval spans it) from"
    }
}

/// The `canary_pacing` harness's command line.
#[derive(Debug, Clone, PartialEq)]
pub struct HarnessOptions {
    /// Runs per row (`--runs N`, at least 1; `--quick` sets 300).
    pub runs: u64,
    /// The harness's seed (`--seed S`), from which each row's is drawn.
    pub seed: u64,
    /// Worker threads (`--threads N`, at least 1); the results do not depend on it.
    pub threads: usize,
    /// The budget row's exposure budget, in canary requests (`--budget B`).
    pub budget: f64,
    /// Whether the error rows run (`--set errors` runs them alone).
    pub errors: bool,
    /// Whether the latency rows run (`--set latency`).
    pub latency: bool,
    /// Whether the overdispersed rows run (`--set overdispersed`).
    pub overdispersed: bool,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        HarnessOptions {
            runs: 2_000,
            seed: 20_261_129,
            threads: 2,
            budget: 3_000.0,
            errors: true,
            latency: true,
            overdispersed: true,
        }
    }
}

impl HarnessOptions {
    /// Parses the arguments after the program's name. Counts and seeds are integers (a seed
    /// read as a float would lose its low bits, and a run count of `1.5` or `-3` is a typo, not
    /// a request), at least one run and one thread, and the budget one the controller takes
    /// (finite and above zero): a value the rows could not run with is refused here, where the message can
    /// name it, rather than found in every run of the budget rows.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut o = HarnessOptions::default();
        let mut args = args.into_iter();
        fn value<T: std::str::FromStr>(v: Option<String>, what: &str) -> Result<T, String>
        where
            T::Err: std::fmt::Display,
        {
            let v = v.ok_or(format!("{what} needs a value"))?;
            v.parse::<T>().map_err(|e| format!("{what} {v:?}: {e}"))
        }
        while let Some(a) = args.next() {
            match a.as_str() {
                "--quick" => o.runs = 300,
                "--runs" => {
                    o.runs = value(args.next(), "--runs")?;
                    if o.runs == 0 {
                        return Err("--runs 0: a row of no runs has no figures".into());
                    }
                }
                "--seed" => o.seed = value(args.next(), "--seed")?,
                "--threads" => {
                    o.threads = value(args.next(), "--threads")?;
                    if o.threads == 0 {
                        return Err("--threads 0: at least one thread must run the rows".into());
                    }
                }
                "--budget" => {
                    o.budget = value(args.next(), "--budget")?;
                    if !(o.budget.is_finite() && o.budget > 0.0) {
                        return Err(format!(
                            "--budget {}: must be a finite number of canary requests > 0",
                            o.budget
                        ));
                    }
                }
                "--set" => {
                    let set = args.next();
                    o.errors = set.as_deref() == Some("errors");
                    o.latency = set.as_deref() == Some("latency");
                    o.overdispersed = set.as_deref() == Some("overdispersed");
                    if !(o.errors || o.latency || o.overdispersed) {
                        return Err(format!(
                            "--set takes errors, latency or overdispersed, not {set:?}"
                        ));
                    }
                }
                // Flags cargo bench passes to every harness.
                "--bench" | "--nocapture" => {}
                other => return Err(format!("unknown option `{other}`")),
            }
        }
        Ok(o)
    }
}

/// `runs` seeded rollouts of `scenario` on `threads` threads; run `i` uses
/// `run_seed(seed, i)`, so the result does not depend on the thread count.
pub fn run_rollouts(
    scenario: &RolloutScenario,
    seed: u64,
    runs: u64,
    threads: usize,
) -> Vec<RolloutRun> {
    run_seeded(seed, runs, threads, |s| run_rollout(scenario, s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<HarnessOptions, String> {
        HarnessOptions::parse(args.iter().map(|a| (*a).to_owned()))
    }

    #[test]
    fn a_budget_is_broken_only_where_the_whole_interval_lies_above_it() {
        assert_eq!(budget_verdict(2_700.0, 250.0, 3_000.0), "within");
        // The estimate above the budget, but the budget inside its interval: no verdict.
        assert!(budget_verdict(3_100.0, 250.0, 3_000.0).starts_with("not distinguishable"));
        assert!(budget_verdict(2_900.0, 250.0, 3_000.0).starts_with("not distinguishable"));
        assert_eq!(budget_verdict(3_300.0, 250.0, 3_000.0), "OVER");
    }

    #[test]
    fn options_refuse_values_the_rows_cannot_run_with() {
        for bad in [
            &["--budget", "0"][..],
            &["--budget", "-5"],
            &["--budget", "inf"],
            &["--budget", "NaN"],
            &["--threads", "0"],
            &["--runs", "0"],
            &["--runs", "1.5"],
            &["--runs", "-3"],
            &["--seed", "1e3"],
            &["--set", "latencies"],
            &["--runs"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // A seed above 2^53 is kept to its last bit.
        let o = parse(&["--bench", "--quick", "--seed", "18446744073709551615"]).unwrap();
        assert_eq!((o.runs, o.seed), (300, u64::MAX));
        let o = parse(&["--budget", "1500", "--set", "errors", "--threads", "1"]).unwrap();
        assert_eq!((o.budget, o.threads), (1_500.0, 1));
        assert!(o.errors && !o.latency && !o.overdispersed);
        assert_eq!(parse(&[]).unwrap(), HarnessOptions::default());
    }

    #[test]
    fn a_rollout_is_reproducible_from_its_seed() {
        let s = RolloutScenario {
            load_rps: 500.0,
            effect: Effect::ErrorRatio(5.0),
            weights: STEP_WEIGHTS,
            pause: STEP_PAUSE,
            pacer: Pacer::Fixed,
            ar_rho: None,
        };
        assert_eq!(run_rollout(&s, 7), run_rollout(&s, 7));
    }

    #[test]
    fn a_slow_canary_paced_on_latency_is_held_and_rolled_back_by_the_latency_judge() {
        let s = RolloutScenario {
            load_rps: 20.0,
            effect: Effect::LatencyShift(0.5),
            weights: HALF,
            pause: SHORT_PAUSE,
            pacer: Pacer::PacedLatency,
            ar_rho: None,
        };
        let r = run_rollout(&s, 3);
        assert!(
            matches!(r.ending, Ending::RolledBack(t) if t < 120),
            "{r:?}"
        );
    }

    #[test]
    fn a_much_worse_canary_is_rolled_back_at_the_first_step() {
        let s = RolloutScenario {
            load_rps: 500.0,
            effect: Effect::ErrorRatio(20.0),
            weights: STEP_WEIGHTS,
            pause: STEP_PAUSE,
            pacer: Pacer::Paced(None),
            ar_rho: None,
        };
        let r = run_rollout(&s, 1);
        assert!(
            matches!(r.ending, Ending::RolledBack(t) if t < 300),
            "{r:?}"
        );
        assert_eq!(r.max_weight, STEP_WEIGHTS[0]);
    }

    #[test]
    fn the_robust_gate_holds_the_first_weight_until_its_batches_have_closed() {
        // At 500 requests/s and a 5% share, the canary expects an error every 8 s, so each
        // batch takes about 64 s to expect 8 of them, and the gate waits for ten.
        let paced = |pacer| RolloutScenario {
            load_rps: 500.0,
            effect: Effect::ErrorRatio(1.0),
            weights: STEP_WEIGHTS,
            pause: SHORT_PAUSE,
            pacer,
            ar_rho: Some(0.6),
        };
        let robust = run_rollout(&paced(Pacer::PacedRobust), 2);
        assert!(
            matches!(robust.ending, Ending::Promoted(t) if t > 600),
            "{robust:?}"
        );
        let plain = run_rollout(&paced(Pacer::Paced(None)), 2);
        assert!(
            matches!(plain.ending, Ending::Promoted(t) if t < 600),
            "{plain:?}"
        );
    }

    #[test]
    fn the_latency_gate_waits_for_its_batches_where_medians_wander() {
        let paced = |pacer| RolloutScenario {
            load_rps: 500.0,
            effect: Effect::LatencyShift(0.0),
            weights: STEP_WEIGHTS,
            pause: SHORT_PAUSE,
            pacer,
            ar_rho: Some(0.6),
        };
        // Ten half-minute batches must count before the first raise; second by second the
        // gate would pass within the first pause.
        let batched = run_rollout(&paced(Pacer::PacedLatency), 4);
        assert!(
            matches!(batched.ending, Ending::Promoted(t) if t > 300),
            "{batched:?}"
        );
        let seconds = run_rollout(&paced(Pacer::PacedLatencyPerSecond), 4);
        assert!(
            matches!(seconds.ending, Ending::Promoted(t) if t < 300),
            "{seconds:?}"
        );
    }
}
