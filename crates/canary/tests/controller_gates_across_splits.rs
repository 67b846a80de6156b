//! Pacing's gates across a change of the traffic split: a latency common to both arms that
//! differs between the splits (the load, the hour) must not make an identical canary look
//! slower, and observations of the split before a raise are no evidence at the raised weight.

use crate::common;

use common::{Rng, counts, second};
use serin_canary::controller::{
    Action, CanaryController, CanaryPolicy, Decision, LatencyPacing, Pacing, Step,
};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Track};

type Ctl = CanaryController<SequentialCountJudge>;

/// Requests a second, split between the arms at the weight in force.
const LOAD: u64 = 200;

fn log_normal(rng: &mut Rng, n: u64, median_ms: f64) -> Vec<f64> {
    (0..n)
        .map(|_| median_ms * (0.5 * rng.normal()).exp())
        .collect()
}

/// A 5%-then-50%-then-100% policy paced on latency alone, judged by a count judge too lenient
/// to fail in time.
fn controller() -> Ctl {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(5),
        Step::SetWeight(50),
        Step::SetWeight(100),
    ]);
    policy.pacing = Some(Pacing {
        detectable_ratio: None,
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    });
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    Ctl::new(policy, vec![lenient]).unwrap()
}

/// Feeds second `s` of traffic split at `weight` percent, without errors, both arms' latencies
/// log-normal about `median_ms`, and ticks.
fn feed(ctl: &mut Ctl, rng: &mut Rng, s: u64, weight: u8, median_ms: f64) -> Decision {
    let w = second(s);
    let nc = LOAD * u64::from(weight) / 100;
    let nb = LOAD - nc;
    let b = counts(Metric::ErrorRate, Track::Stable, w, nb, 0);
    let c = counts(Metric::ErrorRate, Track::Canary, w, nc, 0);
    ctl.feed_in_force(&b, &c, weight, w.end()).unwrap();
    let b = common::latency(Track::Stable, w, &log_normal(rng, nb, median_ms));
    let c = common::latency(Track::Canary, w, &log_normal(rng, nc, median_ms));
    ctl.feed_in_force(&b, &c, weight, w.end()).unwrap();
    ctl.tick(w.end())
}

/// The canary is as fast as the baseline throughout; both arms' median is 100 ms while it
/// serves 5% and 130 ms once it serves 50%. The raise to 50% waits 15 s for the canary's
/// track, while the router still splits at 5%. Returns how many seconds at 50% it took the
/// latency gate to pass (the weight rising to 100%), `None` within `seconds`.
fn seconds_to_pass_at_half(seed: u64, seconds: u64) -> Option<u64> {
    let mut ctl = controller();
    let mut rng = Rng::new(seed);
    assert_eq!(
        ctl.tick(common::second(0).start()).action,
        Action::SetWeight(5)
    );
    let raised = (0..900)
        .find(|s| feed(&mut ctl, &mut rng, *s, 5, 100.0).action == Action::SetWeight(50))
        .expect("an identical canary passes the gate at 5%");
    let ready = raised + 16;
    for s in raised + 1..ready {
        feed(&mut ctl, &mut rng, s, 5, 100.0);
    }
    (ready..ready + seconds)
        .find(|s| feed(&mut ctl, &mut rng, *s, 50, 130.0).action == Action::SetWeight(100))
        .map(|s| s - ready)
}

#[test]
fn an_identical_canary_passes_the_latency_gate_after_the_split_changes() {
    // At 50% the gate's precision grows by 200 a second: its first full batch of 30 s
    // suffices. A batch of 5%'s observations then 50%'s would weigh the canary's values
    // towards the slower part, by about 15%, and hold it for many minutes.
    for seed in 1..=10 {
        let at = seconds_to_pass_at_half(seed, 600);
        assert!(
            at.is_some_and(|s| s < 60),
            "seed {seed}: passed after {at:?} s"
        );
    }
}

/// A policy of 50% paced on errors within an exposure budget and on latency. Before its gates
/// pass, the budget raises the first weight as its estimate of the baseline's error rate
/// (0.1%) firms up, keeping the evidence gathered so far. Returns, for each such raise, the
/// latency gate's evidence just before and just after it.
fn budget_raises(seed: u64) -> Vec<(serde_json::Value, serde_json::Value)> {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(50)]);
    policy.pacing = Some(Pacing {
        exposure_budget: Some(20_000.0),
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    });
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![lenient]).unwrap();
    let mut rng = Rng::new(seed);
    let evidence = |ctl: &Ctl| serde_json::to_value(ctl.state()).unwrap()["stepLatency"].clone();
    let mut raises = Vec::new();
    for s in 0..600 {
        let weight = ctl.state().weight();
        let w = second(s);
        let nc = 1_000 * u64::from(weight) / 100;
        let nb = 1_000 - nc;
        let (eb, ec) = (
            rng.poisson(nb as f64 * 0.001),
            rng.poisson(nc as f64 * 0.001),
        );
        let b = counts(Metric::ErrorRate, Track::Stable, w, nb, eb);
        let c = counts(Metric::ErrorRate, Track::Canary, w, nc, ec);
        ctl.feed(&b, &c, w.end()).unwrap();
        if nc > 0 {
            let b = common::latency(Track::Stable, w, &log_normal(&mut rng, nb / 10, 100.0));
            let c = common::latency(Track::Canary, w, &log_normal(&mut rng, nc / 10, 100.0));
            ctl.feed(&b, &c, w.end()).unwrap();
        }
        let before = evidence(&ctl);
        match ctl.tick(w.end()).action {
            Action::SetWeight(50) => return raises,
            Action::SetWeight(_) if weight > 0 => raises.push((before, evidence(&ctl))),
            _ => {}
        }
    }
    panic!("the weight never reached 50%");
}

#[test]
fn a_raise_within_the_budget_ends_the_latency_gate_s_batch_and_keeps_its_sums() {
    let raises: Vec<_> = (1..=5).flat_map(budget_raises).collect();
    let mid_batch = raises
        .iter()
        .filter(|(before, _)| before.get("open").is_some());
    assert!(mid_batch.clone().count() > 0, "no raise came mid-batch");
    for (before, after) in mid_batch {
        assert_eq!(after.get("open"), None, "{after}");
        assert_eq!(before["precision"], after["precision"]);
        assert_eq!(before["shift"], after["shift"]);
    }
}

/// Feeds second `s` of 1,000 requests split at `weight` percent, each arm erring at 1%, as
/// the caller does with `weight` in force, and ticks.
fn feed_errors(ctl: &mut Ctl, rng: &mut Rng, s: u64, weight: u8) -> Decision {
    let w = second(s);
    let nc = 1_000 * u64::from(weight) / 100;
    let nb = 1_000 - nc;
    let (eb, ec) = (rng.poisson(nb as f64 * 0.01), rng.poisson(nc as f64 * 0.01));
    let b = counts(Metric::ErrorRate, Track::Stable, w, nb, eb);
    let c = counts(Metric::ErrorRate, Track::Canary, w, nc, ec);
    ctl.feed_in_force(&b, &c, weight, w.end()).unwrap();
    ctl.tick(w.end())
}

#[test]
fn the_errors_gate_counts_no_error_of_the_split_before_a_raise() {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(5),
        Step::SetWeight(20),
        Step::SetWeight(50),
    ]);
    policy.pacing = Some(Pacing::default());
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![lenient]).unwrap();
    let mut rng = Rng::new(3);
    assert_eq!(ctl.tick(second(0).start()).action, Action::SetWeight(5));
    let raised = (0..600)
        .find(|s| feed_errors(&mut ctl, &mut rng, *s, 5).action == Action::SetWeight(20))
        .expect("an identical canary passes the errors' gate at 5%");
    // The canary's track takes ten minutes to be ready for 20%: its 6,000 or so errors of the 5%
    // split, far more than the 69 or so that pass the gate at 20%, are no evidence at 20%.
    for s in raised + 1..raised + 601 {
        feed_errors(&mut ctl, &mut rng, s, 5);
    }
    let state = serde_json::to_value(ctl.state()).unwrap();
    assert_eq!(state["stepErrors"], 0, "{state}");
    assert_eq!(state["stepLogLr"], 0.0, "{state}");
    // The first second at 20% gives the judge data at the weight, and the gate its first errors.
    let d = feed_errors(&mut ctl, &mut rng, raised + 601, 20);
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    let errors = serde_json::to_value(ctl.state()).unwrap()["stepErrors"].clone();
    assert!(
        d.reason.contains(&format!(
            "the {errors} errors toward the gate at 20% do not yet rule out"
        )),
        "{}",
        d.reason
    );
    // Its errors at 20% alone pass it, within a minute.
    let at = (raised + 602..raised + 662)
        .find(|s| feed_errors(&mut ctl, &mut rng, *s, 20).action == Action::SetWeight(50));
    assert!(at.is_some(), "still held at 20%");
}
