//! Pacing's exposure budget over whole rollouts: a version with exactly the detectable regression
//! serves, on average, no more canary requests than the budget before it is rolled back, at the
//! weights the controller itself sets, when pacing is told how the judges weigh errors.

use crate::common;

use std::time::Duration;

use common::{Rng, counts, second};
use serin_canary::controller::{Action, CanaryController, CanaryPolicy, Pacing, Pause, Step};
use serin_canary::sequential::{CountMode, CountTestConfig, SequentialCountJudge, Sides};
use serin_canary::severity::SeverityBands;
use serin_signals::{Metric, Timestamp, Track};

const BASELINE_ERROR_RATE: f64 = 0.005;

/// What one rollout came to: the canary requests served, and whether it was rolled back.
struct Run {
    canary_requests: u64,
    rolled_back: bool,
}

/// A count judge of the error rate at α 0.05.
fn judge(margin: f64, sides: Sides) -> SequentialCountJudge {
    let test = CountTestConfig::new(0.05)
        .with_margin(margin)
        .with_sides(sides);
    let mode = CountMode::PerRequest(test);
    SequentialCountJudge::with_mode(Metric::ErrorRate, mode, SeverityBands::default()).unwrap()
}

/// One seeded rollout, at 500 requests a second, of a canary `ratio` times as error-prone as
/// the baseline: one step to 50% held five minutes, paced by `pacing` and watched by `judge`;
/// every second is fed, then one decision, as the orchestrator does.
fn rollout(seed: u64, ratio: f64, judge: SequentialCountJudge, pacing: Pacing) -> Run {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(50),
        Step::Pause(Pause {
            duration: Some(Duration::from_secs(300)),
        }),
    ]);
    policy.pacing = Some(pacing);
    let mut ctl = CanaryController::new(policy, vec![judge]).unwrap();
    let mut rng = Rng::new(seed);
    let mut action = ctl.tick(Timestamp::from_millis(0)).action;
    let mut canary_requests = 0;
    for s in 0..3_600 {
        if matches!(action, Action::Promote | Action::Rollback) {
            break;
        }
        let canary = 5 * u64::from(ctl.state().weight());
        let baseline = 500 - canary;
        let errors = |rng: &mut Rng, n: u64, rate: f64| rng.poisson(n as f64 * rate).min(n);
        let be = errors(&mut rng, baseline, BASELINE_ERROR_RATE);
        let ce = errors(&mut rng, canary, BASELINE_ERROR_RATE * ratio);
        canary_requests += canary;
        let w = second(s);
        ctl.feed(
            &counts(Metric::ErrorRate, Track::Stable, w, baseline, be),
            &counts(Metric::ErrorRate, Track::Canary, w, canary, ce),
            w.end(),
        )
        .unwrap();
        action = ctl.tick(w.end()).action;
    }
    Run {
        canary_requests,
        rolled_back: action == Action::Rollback,
    }
}

/// The mean canary requests served over `runs` seeded rollouts, with the half-width of its
/// normal 95% interval; every one of them must have been rolled back.
fn mean_exposure(
    runs: u64,
    ratio: f64,
    judge: &SequentialCountJudge,
    pacing: &Pacing,
) -> (f64, f64) {
    let exposure: Vec<f64> = (0..runs)
        .map(|seed| {
            let run = rollout(seed, ratio, judge.clone(), pacing.clone());
            assert!(run.rolled_back, "run {seed}: a bad version got through");
            run.canary_requests as f64
        })
        .collect();
    let n = exposure.len() as f64;
    let mean = exposure.iter().sum::<f64>() / n;
    let var = exposure.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, 1.96 * (var / n).sqrt())
}

/// Pacing with `budget`, told the judges' margin and α.
fn paced(budget: f64, judge_margin: f64, alpha: f64) -> Pacing {
    Pacing {
        exposure_budget: Some(budget),
        judge_margin,
        alpha,
        ..Pacing::default()
    }
}

#[test]
fn a_regression_of_the_detectable_size_serves_no_more_than_the_budget_on_average() {
    // One-sided judges without a margin; with the 10% that needs about a third more errors to
    // catch a 2x regression (a budget of 3,000 is then below what any weight keeps); and
    // two-sided, which need 1/α on the side of a worse canary twice over, as with half the α.
    for (judge, pacing) in [
        (judge(0.0, Sides::CanaryWorse), paced(3_000.0, 0.0, 0.05)),
        (judge(0.1, Sides::CanaryWorse), paced(5_000.0, 0.1, 0.05)),
        (judge(0.0, Sides::TwoSided), paced(4_000.0, 0.0, 0.025)),
    ] {
        let budget = pacing.exposure_budget.unwrap_or_default();
        let (mean, half) = mean_exposure(1_000, 2.0, &judge, &pacing);
        assert!(
            mean - half <= budget && mean <= 1.05 * budget,
            "{pacing:?}: mean exposure {mean:.0} ± {half:.0}"
        );
    }
    // A worse version is caught sooner.
    let one_sided = judge(0.0, Sides::CanaryWorse);
    let (mean, _) = mean_exposure(300, 3.0, &one_sided, &paced(3_000.0, 0.0, 0.05));
    assert!(mean <= 1_500.0, "{mean:.0}");
}

#[test]
fn a_budget_without_a_deciding_judge_of_its_metric_is_refused() {
    use serin_canary::judge::Judge;
    use serin_canary::sequential::SequentialLatencyJudge;
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(50)]);
    policy.pacing = Some(paced(3_000.0, 0.0, 0.05));
    let latency = || {
        Box::new(SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap()) as Box<dyn Judge>
    };
    // Judged on latency alone, a 2x error-rate regression is never caught: the budget, which
    // bounds how soon the judges catch it, would bound nothing.
    let refused = CanaryController::new(policy.clone(), vec![latency()])
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("canaryPolicy.pacing.exposureBudget `3000`")
            && refused.contains("`error_rate`"),
        "{refused}"
    );
    let counts = Box::new(judge(0.0, Sides::CanaryWorse)) as Box<dyn Judge>;
    assert!(CanaryController::new(policy, vec![latency(), counts]).is_ok());
}
