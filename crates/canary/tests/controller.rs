//! Behaviour of the canary controller: steps, pauses, failures, deadlines, pacing, resumption.

use crate::common;

use std::time::Duration;

use common::{Rng, counts, no_data, second};
use serin_canary::controller::{
    Action, AnalysisStep, CanaryController, CanaryPolicy, CanaryScale, Command, ControllerState,
    LatencyPacing, OnInconclusive, OnWarning, Pacing, Pause, Phase, PromotionGate, Step,
};
use serin_canary::judge::{Judge, Severity, Verdict};
use serin_canary::sequential::SequentialCountJudge;
use serin_signals::{Metric, Timestamp, Track};

type Ctl = CanaryController<SequentialCountJudge>;

fn judge() -> SequentialCountJudge {
    SequentialCountJudge::new(Metric::ErrorRate, 0.05, 0.0).unwrap()
}

fn at(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1000)
}

/// Feeds second `s` with the given per-arm requests and errors.
fn feed(
    ctl: &mut Ctl,
    s: u64,
    br: u64,
    be: u64,
    cr: u64,
    ce: u64,
) -> serin_canary::controller::Decision {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
    let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
    ctl.observe(&b, &c, w.end()).unwrap()
}

/// A controller of `policy` with one default judge.
fn controller(policy: CanaryPolicy) -> Ctl {
    Ctl::new(policy, vec![judge()]).unwrap()
}

/// A pause of `secs` seconds.
fn pause(secs: u64) -> Step {
    Step::Pause(Pause {
        duration: Some(Duration::from_secs(secs)),
    })
}

fn analysis(secs: u64, min_samples: u64) -> Step {
    Step::Analysis(AnalysisStep {
        duration: Duration::from_secs(secs),
        min_samples,
    })
}

#[test]
fn a_good_canary_walks_through_the_steps_and_is_promoted() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        analysis(60, 30),
        Step::SetWeight(50),
        pause(30),
    ]);
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(1);
    let mut actions = vec![];
    for s in 0..200 {
        let w = u64::from(ctl.state().weight());
        let d = feed(
            &mut ctl,
            s,
            10 * (100 - w),
            rng.poisson(0.05 * (100 - w) as f64),
            10 * w,
            rng.poisson(0.05 * w as f64),
        );
        if d.action != Action::Hold {
            actions.push((s, d.action));
        }
        if ctl.state().phase() != Phase::Progressing {
            break;
        }
    }
    assert_eq!(actions.first().map(|a| a.1), Some(Action::SetWeight(50)));
    assert!(actions.first().unwrap().0 >= 59, "{actions:?}");
    assert_eq!(actions.last().map(|a| a.1), Some(Action::Promote));
    assert_eq!(ctl.state().phase(), Phase::Promoted);
    // Final: the action repeats, with the evidence.
    let again = ctl.tick(at(1_000));
    assert_eq!(again.action, Action::Promote);
    assert!(!again.evidence.is_empty());
}

#[test]
fn a_critical_regression_rolls_back_at_once_with_its_evidence() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        analysis(3_600, 1),
        Step::SetWeight(100),
    ]);
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    let mut rng = Rng::new(2);
    let mut decision = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(3.0));
        if d.action != Action::Hold {
            decision = Some(d);
            break;
        }
    }
    let d = decision.expect("a 6x regression is acted on");
    assert_eq!(d.action, Action::Rollback);
    assert_eq!(d.severity, Some(Severity::Critical));
    assert_eq!(d.weight, 0);
    assert_eq!(d.evidence[0].metric, Metric::ErrorRate);
    assert_eq!(d.decisive_evidence(), Some(&d.evidence[0]));
    assert!(d.reason.contains("critical"), "{}", d.reason);
}

#[test]
fn a_held_rollout_moves_no_step_but_its_judges_still_roll_a_critical_regression_back() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(30), Step::SetWeight(50)]);
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    // Held past the pause's end, with healthy traffic: nothing moves.
    let mut rng = Rng::new(7);
    for s in 1..120 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, rng.poisson(4.5));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, rng.poisson(0.5));
        ctl.feed(&b, &c, w.end()).unwrap();
        let d = ctl.tick_held(w.end());
        assert_eq!((d.action, d.weight), (Action::Hold, 10), "second {s}");
    }
    assert_eq!(ctl.tick(at(120)).action, Action::SetWeight(50));
    // A regression while held is judged, and rolls back at once.
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    let rolled_back = (1..600).find_map(|s| {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, rng.poisson(4.5));
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, rng.poisson(3.0));
        ctl.feed(&b, &c, w.end()).unwrap();
        let d = ctl.tick_held(w.end());
        (d.action != Action::Hold).then_some(d)
    });
    let d = rolled_back.expect("a 6x regression is acted on while held");
    assert_eq!(
        (d.action, d.severity),
        (Action::Rollback, Some(Severity::Critical))
    );
    assert_eq!(ctl.state().phase(), Phase::RolledBack);
}

fn warning_judge() -> SequentialCountJudge {
    SequentialCountJudge::with_mode(
        Metric::ErrorRate,
        serin_canary::sequential::CountMode::PerRequest(
            serin_canary::sequential::CountTestConfig::new(0.05),
        ),
        serin_canary::severity::SeverityBands::new(0.0, 1_000.0).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_warning_can_hold_instead_of_rolling_back_and_never_raises_the_weight() {
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        Step::Pause(Pause::default()),
        Step::SetWeight(50),
    ]);
    policy.on_warning = OnWarning::Hold;
    let mut ctl = Ctl::new(policy, vec![warning_judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(4);
    let mut failed_at = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(2.0));
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
        if ctl.judges()[0].judgement(at(s)).verdict.is_fail() {
            failed_at = Some(s);
            break;
        }
    }
    let s = failed_at.expect("a 4x regression fails");
    // Approval arrives, but the judge fails: the weight is not raised, nothing is promoted.
    let d = ctl.command(Command::Resume, at(s + 1)).unwrap();
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("weight not raised"), "{}", d.reason);
    for t in s + 2..s + 100 {
        assert_eq!(ctl.tick(at(t)).action, Action::Hold);
    }
    assert_eq!(ctl.state().weight(), 10);
}

#[test]
fn an_analysis_that_ends_on_a_held_warning_holds_rather_than_taking_it_for_missing_data() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), analysis(600, 1)]);
    policy.on_warning = OnWarning::Hold;
    policy.on_inconclusive = OnInconclusive::Rollback;
    let mut ctl = Ctl::new(policy, vec![warning_judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(4);
    for s in 0..600 {
        let d = feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(2.0));
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
    }
    assert!(ctl.judges()[0].judgement(at(600)).verdict.is_fail());
    // The step's time is up with the judge failing: it holds for a command, as the warning
    // asks, and is not rolled back as if data were missing.
    let d = ctl.tick(at(601));
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("analysis ended while"), "{}", d.reason);
    assert_eq!(
        ctl.command(Command::Abort, at(602)).unwrap().action,
        Action::Rollback
    );
}

#[test]
fn feeding_does_not_decide_so_one_tick_covers_every_metric_of_a_window() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60), Step::SetWeight(50)]);
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let w = second(61);
    let (b, c) = (
        counts(Metric::ErrorRate, Track::Stable, w, 900, 4),
        counts(Metric::ErrorRate, Track::Canary, w, 100, 0),
    );
    ctl.feed(&b, &c, w.end()).unwrap();
    // The pause has ended, but nothing moves until the caller asks for the decision.
    assert_eq!(ctl.state().weight(), 10);
    assert_eq!(ctl.state().step(), 1);
    assert_eq!(ctl.tick(w.end()).action, Action::SetWeight(50));
}

#[test]
fn pauses_wait_for_their_duration_or_for_resume() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(20),
        Step::Pause(Pause::default()),
        pause(60),
        Step::SetWeight(60),
    ]);
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    feed(&mut ctl, 0, 800, 1, 200, 0);
    for s in 1..500 {
        assert_eq!(ctl.tick(at(s)).action, Action::Hold);
    }
    assert_eq!(
        ctl.command(Command::Resume, at(500)).unwrap().action,
        Action::Hold
    );
    assert_eq!(ctl.tick(at(559)).action, Action::Hold);
    assert_eq!(ctl.tick(at(560)).action, Action::SetWeight(60));
}

/// `end_pause` ends an indefinite pause as a resume does, but decides nothing: a held rollout
/// stays at its weight, and the next tick moves past the pause. The mark survives a
/// save and restore, and at a step that is not a pause it changes nothing.
#[test]
fn end_pause_ends_the_pause_without_deciding() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(20),
        Step::Pause(Pause::default()),
        Step::SetWeight(60),
        Step::Pause(Pause::default()),
        Step::SetWeight(80),
    ]);
    let mut ctl = controller(policy.clone());
    ctl.end_pause();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    // Data at 20% lets the weight rise once the pause ends.
    assert_eq!(
        feed(&mut ctl, 59, 900, 4, 200, 1).action,
        Action::Hold,
        "the mark set before it is gone"
    );
    ctl.end_pause();
    assert_eq!(ctl.state().step(), 1, "nothing decided");
    assert_eq!(ctl.tick_held(at(90)).action, Action::Hold, "held stays put");
    let (policy, judges, state) = ctl.into_parts();
    let restored: ControllerState =
        serde_json::from_str(&serde_json::to_string(&state).unwrap()).unwrap();
    let mut ctl = Ctl::from_parts(policy, judges, restored).unwrap();
    assert_eq!(ctl.tick(at(120)).action, Action::SetWeight(60));
    assert_eq!(
        ctl.tick(at(180)).action,
        Action::Hold,
        "the next pause waits for its own resume"
    );
}

#[test]
fn deadlines_roll_back_and_missing_data_never_promotes() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), analysis(60, 10)]);
    policy.progress_deadline = Some(Duration::from_secs(120));
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    for s in 0..100 {
        let w = second(s);
        let b = no_data(Metric::ErrorRate, Track::Stable, w);
        let c = no_data(Metric::ErrorRate, Track::Canary, w);
        let d = ctl.observe(&b, &c, w.end()).unwrap();
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
    }
    let d = ctl.tick(at(200));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("progress deadline"), "{}", d.reason);

    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), analysis(60, 10)]);
    policy.on_inconclusive = OnInconclusive::Rollback;
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    assert_eq!(ctl.tick(at(61)).action, Action::Rollback);

    // A pause waiting for approval has no progress deadline, but the maximum duration caps it.
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::Pause(Pause::default())]);
    policy.max_duration = Some(Duration::from_secs(600));
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    assert_eq!(ctl.tick(at(600)).action, Action::Hold);
    let d = ctl.tick(at(601));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("maximum duration"));
}

#[test]
fn a_canary_that_never_served_a_request_is_not_promoted_when_its_pauses_end() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60)]);
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    // The source reports counts of no requests for the canary rather than no data.
    for s in 0..120 {
        let d = feed(&mut ctl, s, 1_000, 5, 0, 0);
        assert_eq!(d.action, Action::Hold, "at {s}: {}", d.reason);
    }
    let d = ctl.tick(at(120));
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("has seen no data"), "{}", d.reason);
    // One window in which the canary served is enough for that rule.
    let d = feed(&mut ctl, 120, 900, 4, 100, 0);
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
}

#[test]
fn a_canary_its_judges_could_not_fail_is_not_promoted_until_its_error_rate_is_shown_low() {
    let policy = |gate: bool| {
        let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60)]);
        policy.max_duration = Some(Duration::from_secs(900));
        policy.promotion = gate.then(|| PromotionGate::new(0.05, 0.05).unwrap());
        let mut ctl = controller(policy);
        ctl.tick(at(0));
        ctl
    };
    // Scarce traffic: after its pause the canary has answered one request, with an error. No
    // comparison can fail it on so little, so without the gate it is promoted.
    let mut ungated = policy(false);
    let d = feed(&mut ungated, 60, 9, 0, 1, 1);
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    let mut ctl = policy(true);
    let d = feed(&mut ctl, 60, 9, 0, 1, 1);
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(
        d.reason.contains("1 of 1 canary requests failed"),
        "{}",
        d.reason
    );
    // Nothing more arrives: it holds until the rollout's deadline, then rolls back.
    let mut last = d;
    for s in (120..=960).step_by(60) {
        let w = second(s);
        let b = no_data(Metric::ErrorRate, Track::Stable, w);
        let c = no_data(Metric::ErrorRate, Track::Canary, w);
        last = ctl.observe(&b, &c, w.end()).unwrap();
        assert_ne!(last.action, Action::Promote, "{}", last.reason);
        if last.action == Action::Rollback {
            break;
        }
    }
    assert_eq!(last.action, Action::Rollback, "{}", last.reason);
    assert!(last.reason.contains("maximum duration"), "{}", last.reason);

    // A healthy canary with traffic is held only until its clean requests show the bound.
    let mut ctl = policy(true);
    let mut held = Vec::new();
    let mut promoted_at = None;
    for s in 1..=200 {
        let d = feed(&mut ctl, s, 9, 0, 1, 0);
        if d.reason.starts_with("not promoting yet") {
            held.push(s);
        }
        if d.action == Action::Promote {
            promoted_at = Some(s);
            break;
        }
    }
    let promoted_at = promoted_at.expect("promoted");
    assert!(!held.is_empty() && held[0] >= 59, "{held:?}");
    assert!(
        (80..=110).contains(&promoted_at),
        "promoted at {promoted_at}"
    );
}

#[test]
fn commands_abort_and_promote_but_promotion_is_refused_while_failing() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), analysis(3_600, 1)]);
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    assert_eq!(
        ctl.command(Command::Abort, at(1)).unwrap().action,
        Action::Rollback
    );

    let mut policy = policy;
    policy.on_warning = OnWarning::Hold;
    let mut ctl = Ctl::new(policy, vec![warning_judge()]).unwrap();
    ctl.tick(at(0));
    let mut rng = Rng::new(8);
    for s in 0..600 {
        feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(2.5));
        if ctl.judges()[0].judgement(at(s)).verdict.is_fail() {
            break;
        }
    }
    let err = ctl
        .command(Command::Promote, at(700))
        .unwrap_err()
        .to_string();
    assert!(err.contains("refused"), "{err}");
    assert_eq!(ctl.state().phase(), Phase::Progressing);
}

#[test]
fn pacing_raises_the_weight_once_the_errors_rule_out_the_regression() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(5), Step::SetWeight(50)]);
    policy.pacing = Some(Pacing::default());
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(5));
    // Both errors of each second from the baseline: each is ln(0.9048/0.95) of evidence that
    // the canary is not 2x worse, and the gate passes at ln(0.05).
    let per_error = (1.0 - 0.1 / 1.05f64).ln() - 0.95f64.ln();
    let needed = (0.05f64.ln() / per_error).ceil();
    let mut errors = 0.0;
    for s in 0..3_600 {
        let d = feed(&mut ctl, s, 950, 2, 50, 0);
        errors += 2.0;
        if d.action == Action::SetWeight(50) {
            assert!(
                errors >= needed && errors < needed + 2.0,
                "{errors} vs {needed}"
            );
            return;
        }
        assert!(d.reason.contains("pacing"), "{}", d.reason);
    }
    panic!("the weight never rose");
}

#[test]
fn pacing_holds_a_canary_as_bad_as_the_detectable_regression() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(20)]);
    policy.pacing = Some(Pacing::default());
    // A judge that cannot fail in time: pacing alone must keep the weight and the promotion.
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![lenient]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    // At 20%, a 2x worse canary makes 1 of 3 errors: 1 canary and 2 baseline errors a second.
    for s in 0..3_600 {
        let d = feed(&mut ctl, s, 800, 2, 200, 1);
        assert_ne!(d.action, Action::Promote, "promoted at {s}");
        if d.action == Action::Rollback {
            return;
        }
        assert!(d.reason.contains("before promoting"), "{}", d.reason);
    }
    assert_eq!(ctl.state().weight(), 20);
}

#[test]
fn a_robust_errors_gate_waits_for_ten_batches_of_errors_and_survives_a_resume() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(20), Step::SetWeight(50)]);
    policy.pacing = Some(Pacing {
        robust_batch: Some(Duration::from_secs(30)),
        ..Pacing::default()
    });
    let lenient = || SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy.clone(), vec![lenient()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    // A canary as good as the baseline, 5 errors a second: the plain gate would pass after
    // about 69 errors, in 14 s; the robust one waits for ten half-minute batches.
    let mut reason = String::new();
    for s in 0..299 {
        let d = feed(&mut ctl, s, 800, 4, 200, 1);
        assert_eq!(d.action, Action::Hold, "at {s}");
        reason = d.reason;
        if s == 150 {
            // Resumed from its journalled state, the controller goes on with the open batch.
            let json = serde_json::to_string(ctl.state()).unwrap();
            let state = serde_json::from_str(&json).unwrap();
            ctl = Ctl::from_parts(policy.clone(), vec![lenient()], state).unwrap();
        }
    }
    assert!(
        reason.contains("10 batches spanning 30s") && reason.contains("(9 so far)"),
        "{reason}"
    );
    // As the 298th second's window ends, the tenth batch lacks only its last second.
    assert!(
        reason.ends_with("at the pace so far, 1 more take about 1s"),
        "{reason}"
    );
    assert_eq!(
        feed(&mut ctl, 299, 800, 4, 200, 1).action,
        Action::SetWeight(50)
    );
}

/// The last hold reason of a rollout paced by a robust errors' gate at low traffic, with
/// `policy`'s limits, after 900 s.
fn robust_gate_at_low_traffic(limits: impl FnOnce(&mut CanaryPolicy)) -> String {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(20), Step::SetWeight(50)]);
    limits(&mut policy);
    policy.pacing = Some(Pacing {
        robust_batch: Some(Duration::from_secs(30)),
        ..Pacing::default()
    });
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![lenient]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    // A baseline error every 10 s and a canary one every 40 s: the canary's arm expects 8
    // errors in 320 s, so ten batches take some 53 minutes.
    let mut reason = String::new();
    for s in 0..900 {
        let d = feed(
            &mut ctl,
            s,
            80,
            u64::from(s % 10 == 0),
            20,
            u64::from(s % 40 == 0),
        );
        assert_eq!(d.action, Action::Hold, "at {s}");
        reason = d.reason;
    }
    assert!(reason.contains("(2 so far)"), "{reason}");
    // Two batches of about 320 s and most of a third in 900 s: 8 more take about 38 minutes.
    assert!(
        reason.contains("at the pace so far, 8 more take about 38m"),
        "{reason}"
    );
    reason
}

#[test]
fn a_robust_errors_gate_at_low_traffic_says_early_that_its_batches_outlast_the_deadline() {
    let reason = robust_gate_at_low_traffic(|_| {});
    assert!(reason.ends_with("take about 38m"), "{reason}");
    let reason = robust_gate_at_low_traffic(|p| p.max_duration = Some(Duration::from_secs(1_800)));
    assert!(
        reason.ends_with(
            "past the rollout's maximum duration (30m), which ends in 15m, when the rollout \
             rolls back"
        ),
        "{reason}"
    );
    // The nearer deadline is the one named.
    let reason = robust_gate_at_low_traffic(|p| {
        p.max_duration = Some(Duration::from_secs(1_800));
        p.progress_deadline = Some(Duration::from_secs(1_200));
    });
    assert!(
        reason.ends_with(
            "past the progress deadline (20m), which ends in 5m, when the rollout rolls back"
        ),
        "{reason}"
    );
}

/// A 20%-then-50% policy paced by `pacing`, judged by a count judge too lenient to fail in
/// time; per second the baseline makes `baseline_errors` errors and the canary none, and the
/// canary's median is `slowdown` times the baseline's. The second at which the weight rose to
/// 50%, with the last hold's reason, or `None` within `seconds`.
fn latency_paced(
    pacing: Pacing,
    baseline_errors: u64,
    slowdown: f64,
    seconds: u64,
) -> (Option<u64>, String) {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(20), Step::SetWeight(50)]);
    policy.pacing = Some(pacing);
    let lenient = SequentialCountJudge::new(Metric::ErrorRate, 1e-9, 0.0).unwrap();
    let mut ctl = Ctl::new(policy, vec![lenient]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    let mut rng = Rng::new(5);
    let mut reason = String::new();
    for s in 0..seconds {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 800, baseline_errors);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 200, 0);
        ctl.feed(&b, &c, w.end()).unwrap();
        let base = log_normal(&mut rng, 16, 100.0, 0.5);
        let can = log_normal(&mut rng, 4, 100.0 * slowdown, 0.5);
        ctl.feed(
            &common::latency(Track::Stable, w, &base),
            &common::latency(Track::Canary, w, &can),
            w.end(),
        )
        .unwrap();
        let d = ctl.tick(w.end());
        if d.action == Action::SetWeight(50) {
            return (Some(s), reason);
        }
        reason = d.reason;
    }
    (None, reason)
}

fn both_gates() -> Pacing {
    Pacing {
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    }
}

#[test]
fn a_latency_gate_holds_a_slow_canary_the_errors_would_let_through() {
    // As fast as the baseline: Σw grows 3.2 a second and about 165 rules out 10%, after the
    // errors' 69 or so (4 a second); but ten 30-s batches must count first, which the canary's
    // spread lets begin after 9 s.
    let (rose, reason) = latency_paced(both_gates(), 4, 1.0, 600);
    let rose = rose.expect("a fast canary's weight rises");
    assert!((300..360).contains(&rose), "rose at {rose}");
    assert!(
        reason.contains("10 batches") && reason.contains("(9 so far)"),
        "{reason}"
    );
    // 25% slower: the errors' gate has long passed, the latencies' never does.
    let (rose, reason) = latency_paced(both_gates(), 4, 1.25, 900);
    assert_eq!(rose, None);
    assert!(
        reason.contains("do not yet rule out a canary 10% slower")
            && !reason.contains("errors toward"),
        "{reason}"
    );
    assert!(reason.contains("estimated shift +2"), "{reason}");
}

#[test]
fn pacing_on_latency_alone_raises_the_weight_of_a_service_without_errors() {
    // Without a single error, the errors' gate has nothing to weigh and holds for ever.
    let (rose, reason) = latency_paced(both_gates(), 0, 1.0, 900);
    assert_eq!(rose, None);
    assert!(
        reason.contains("the 0 errors toward the gate at 20%"),
        "{reason}"
    );
    // On latency alone, the weight rises once the latencies rule out a 10% slowdown.
    let latency_only = Pacing {
        detectable_ratio: None,
        ..both_gates()
    };
    let (rose, _) = latency_paced(latency_only.clone(), 0, 1.0, 900);
    assert!(rose.is_some_and(|s| s < 360), "{rose:?}");
    let (rose, reason) = latency_paced(latency_only, 0, 1.25, 900);
    assert_eq!(rose, None, "{reason}");
}

#[test]
fn the_latency_gate_s_evidence_is_in_the_state_and_older_states_load_without_it() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(20), Step::SetWeight(50)]);
    policy.pacing = Some(Pacing {
        latency: Some(LatencyPacing::default()),
        ..Pacing::default()
    });
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    ctl.tick(at(0));
    let w = second(0);
    let (base, can) = ([90.0, 100.0, 110.0, 120.0], [130.0, 140.0]);
    ctl.observe(
        &common::latency(Track::Stable, w, &base),
        &common::latency(Track::Canary, w, &can),
        w.end(),
    )
    .unwrap();
    let (_, judges, state) = ctl.into_parts();
    let mut json = serde_json::to_value(&state).unwrap();
    let gathered = json["stepLatency"].clone();
    assert_eq!(gathered["baseline"]["dof"], 3, "{gathered}");
    assert_eq!(gathered["canary"]["dof"], 1, "{gathered}");
    let restored: ControllerState = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(restored, state);
    // A state journalled before the latency gate existed starts it empty.
    json.as_object_mut().unwrap().remove("stepLatency");
    let older: ControllerState = serde_json::from_value(json).unwrap();
    assert!(CanaryController::from_parts(policy, judges, older).is_ok());
}

#[test]
fn an_exposure_budget_sizes_the_first_weight_and_the_gate_lifts_it() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(50)]);
    let pacing = Pacing {
        exposure_budget: Some(3_000.0),
        ..Pacing::default()
    };
    policy.pacing = Some(pacing.clone());
    let mut ctl = controller(policy);
    // No baseline error seen yet: nothing estimates its rate, so the canary stays at 0%.
    let d = ctl.tick(at(0));
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("budget of 3000 requests"), "{}", d.reason);
    // The baseline alone, 1,000 requests and 5 errors a second: once 20 errors estimate its
    // rate, the first weight is the largest within the budget.
    let mut first = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, 1_000, 5, 0, 0);
        if let Action::SetWeight(w) = d.action {
            first = Some((s, w));
            break;
        }
        assert_eq!(ctl.state().weight(), 0);
    }
    let (s0, w) = first.expect("a first weight within the budget");
    assert!(w > 5 && w < 50, "{w}");
    assert!(pacing.expected_exposure(f64::from(w) / 100.0, 0.005) <= 3_000.0);
    // As the estimate firms up, the weight may rise within the budget; then the gate lifts the
    // cap and the weight goes to 50%.
    let mut w = w;
    for s in s0 + 1..s0 + 3_600 {
        let (c, b) = (10 * u64::from(w), 10 * (100 - u64::from(w)));
        let d = feed(&mut ctl, s, b, 5, c, 0);
        match d.action {
            Action::SetWeight(50) => return,
            Action::SetWeight(higher) => {
                assert!(higher > w, "{}", d.reason);
                assert!(pacing.expected_exposure(f64::from(higher) / 100.0, 0.005) <= 3_000.0);
                w = higher;
            }
            other => assert_eq!(other, Action::Hold, "{}", d.reason),
        }
    }
    panic!("the weight never reached 50%");
}

#[test]
fn an_interrupted_rollout_resumes_exactly_from_its_serialized_state() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        analysis(120, 10),
        Step::SetWeight(40),
        analysis(120, 10),
    ]);
    let mut a = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    a.tick(at(0));
    let mut rng = Rng::new(12);
    let stream: Vec<(u64, u64)> = (0..400)
        .map(|_| (rng.poisson(4.0), rng.poisson(0.5)))
        .collect();
    for (s, (be, ce)) in stream.iter().enumerate().take(150) {
        feed(&mut a, s as u64, 900, *be, 100, *ce);
    }
    let (p, judges, state) = a.into_parts();
    let state_json = serde_json::to_string(&state).unwrap();
    let judges_json = serde_json::to_string(&judges).unwrap();
    let mut a = Ctl::from_parts(p, judges, state).unwrap();
    let state: ControllerState = serde_json::from_str(&state_json).unwrap();
    let judges: Vec<SequentialCountJudge> = serde_json::from_str(&judges_json).unwrap();
    let mut b = Ctl::from_parts(policy, judges, state).unwrap();
    for (s, (be, ce)) in stream.iter().enumerate().skip(150) {
        let da = feed(&mut a, s as u64, 900, *be, 100, *ce);
        let db = feed(&mut b, s as u64, 900, *be, 100, *ce);
        assert_eq!(da, db);
    }
    assert_eq!(a.state(), b.state());
}

#[test]
fn bad_inputs_are_errors_that_change_nothing() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10)]);
    assert!(Ctl::new(policy.clone(), vec![]).is_err());
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    let before = ctl.state().clone();
    let w = second(1);
    let b = counts(Metric::Latency, Track::Stable, w, 1, 0);
    let c = counts(Metric::Latency, Track::Canary, w, 1, 0);
    let msg = ctl.observe(&b, &c, w.end()).unwrap_err().to_string();
    assert!(msg.contains("observation.metric"), "{msg}");
    let c2 = counts(Metric::ErrorRate, Track::Canary, second(2), 1, 0);
    let b2 = counts(Metric::ErrorRate, Track::Stable, w, 1, 0);
    assert!(ctl.observe(&b2, &c2, w.end()).is_err());
    assert_eq!(ctl.state(), &before);
}

#[test]
fn counts_and_latency_judges_run_together_and_serialize_whole() {
    use serin_canary::sequential::{SequentialJudge, SequentialLatencyJudge};
    let policy = CanaryPolicy::new(vec![Step::SetWeight(20), analysis(60, 5)]);
    let judges: Vec<SequentialJudge> = vec![
        judge().into(),
        SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0)
            .unwrap()
            .into(),
    ];
    let mut ctl = CanaryController::new(policy, judges).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(20));
    let mut rng = Rng::new(21);
    let mut last = None;
    for s in 0..120 {
        feed_any(&mut ctl, s, 800, rng.poisson(4.0), 200, rng.poisson(1.0));
        let w = second(s);
        let base = log_normal(&mut rng, 40, 20.0, 0.4);
        let can = log_normal(&mut rng, 10, 20.0, 0.4);
        ctl.feed(
            &common::latency(Track::Stable, w, &base),
            &common::latency(Track::Canary, w, &can),
            w.end(),
        )
        .unwrap();
        last = Some(ctl.tick(w.end()));
        if ctl.state().phase() != Phase::Progressing {
            break;
        }
    }
    let d = last.unwrap();
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    assert_eq!(d.evidence.len(), 2);
    let (_, judges, state) = ctl.into_parts();
    let json = serde_json::to_string(&(judges, state)).unwrap();
    let (judges, state): (Vec<SequentialJudge>, ControllerState) =
        serde_json::from_str(&json).unwrap();
    let ctl = CanaryController::from_parts(
        CanaryPolicy::new(vec![Step::SetWeight(20), analysis(60, 5)]),
        judges,
        state,
    )
    .unwrap();
    assert_eq!(ctl.state().phase(), Phase::Promoted);
}

/// `n` latencies, log-normal around `median_ms` with log sd `log_sd`.
fn log_normal(rng: &mut Rng, n: usize, median_ms: f64, log_sd: f64) -> Vec<f64> {
    (0..n)
        .map(|_| median_ms * (log_sd * rng.normal()).exp())
        .collect()
}

fn feed_any(
    ctl: &mut CanaryController<serin_canary::sequential::SequentialJudge>,
    s: u64,
    br: u64,
    be: u64,
    cr: u64,
    ce: u64,
) {
    let w = second(s);
    let b = counts(Metric::ErrorRate, Track::Stable, w, br, be);
    let c = counts(Metric::ErrorRate, Track::Canary, w, cr, ce);
    ctl.feed(&b, &c, w.end()).unwrap();
}

#[test]
fn a_timed_pause_or_analysis_longer_than_the_progress_deadline_runs_its_course() {
    for wait in [pause(600), analysis(600, 30)] {
        let mut policy =
            CanaryPolicy::new(vec![Step::SetWeight(10), wait.clone(), Step::SetWeight(50)]);
        policy.progress_deadline = Some(Duration::from_secs(300));
        policy.max_duration = Some(Duration::from_secs(3_600));
        let mut ctl = controller(policy);
        assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
        // A healthy canary: both arms at 0.5% errors.
        let mut rng = Rng::new(3);
        let mut raised = None;
        for s in 0..700 {
            let d = feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(0.5));
            match d.action {
                Action::Hold => {}
                Action::SetWeight(50) => {
                    raised = Some(s + 1);
                    break;
                }
                other => panic!("{wait:?} at {}: {other:?}: {}", s + 1, d.reason),
            }
        }
        // The planned wait is not a lack of progress: the weight rises when it ends.
        assert_eq!(raised, Some(600), "{wait:?}");
    }
}

#[test]
fn the_progress_deadline_counts_from_the_end_of_a_step_s_planned_wait() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), analysis(600, 10)]);
    policy.progress_deadline = Some(Duration::from_secs(300));
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    // No data: the analysis runs its 600 s, ends inconclusive and holds (`onInconclusive:
    // hold`), and only then does the progress deadline's 300 s start.
    for s in [1, 299, 301, 599, 600, 601, 899, 900] {
        let d = ctl.tick(at(s));
        assert_eq!(d.action, Action::Hold, "at {s}: {}", d.reason);
    }
    let d = ctl.tick(at(901));
    assert_eq!(d.action, Action::Rollback);
    assert!(
        d.reason.contains("progress deadline") && d.reason.contains("analysis ended"),
        "{}",
        d.reason
    );
}

#[test]
fn a_failing_judge_after_the_last_step_is_held_only_until_the_progress_deadline() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::Pause(Pause::default())]);
    policy.on_warning = OnWarning::Hold;
    policy.progress_deadline = Some(Duration::from_secs(3_600));
    let mut ctl = Ctl::new(policy, vec![warning_judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(4);
    let mut failed_at = None;
    for s in 0..600 {
        let d = feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(2.0));
        assert_eq!(d.action, Action::Hold, "{}", d.reason);
        if ctl.judges()[0].judgement(at(s)).verdict.is_fail() {
            failed_at = Some(s + 1);
            break;
        }
    }
    let s = failed_at.expect("a 4x regression fails");
    // Approved past the last step, but the judge fails: not promoted, held as at any step.
    let d = ctl.command(Command::Resume, at(s)).unwrap();
    assert_eq!(d.action, Action::Hold);
    assert!(d.reason.contains("not promoting"), "{}", d.reason);
    assert_eq!(ctl.tick(at(s + 3_600)).action, Action::Hold);
    let d = ctl.tick(at(s + 3_601));
    assert_eq!(d.action, Action::Rollback, "{}", d.reason);
    assert!(
        d.reason.contains("progress deadline") && d.reason.contains("not promoting"),
        "{}",
        d.reason
    );
}

#[test]
fn a_decision_names_the_step_that_made_it() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        pause(60),
        Step::SetCanaryScale(CanaryScale {
            replicas: Some(2),
            ..CanaryScale::default()
        }),
        Step::SetWeight(50),
        Step::SetWeight(20),
    ]);
    let mut ctl = controller(policy);
    let steps = |d: serin_canary::controller::Decision| (d.action, d.step);
    assert_eq!(steps(ctl.tick(at(0))), (Action::SetWeight(10), 0));
    // Data at 10% lets the weight rise past the pause.
    assert_eq!(steps(feed(&mut ctl, 29, 900, 4, 100, 0)), (Action::Hold, 1));
    let scale = Action::SetCanaryScale(CanaryScale {
        replicas: Some(2),
        ..CanaryScale::default()
    });
    assert_eq!(steps(ctl.tick(at(60))), (scale, 2));
    assert_eq!(steps(ctl.tick(at(61))), (Action::SetWeight(50), 3));
    assert_eq!(steps(ctl.tick(at(62))), (Action::SetWeight(20), 4));
    // Past the last step: `steps.len()`.
    assert_eq!(
        steps(feed(&mut ctl, 62, 800, 4, 200, 1)),
        (Action::Promote, 5)
    );
    assert_eq!(steps(ctl.tick(at(100))), (Action::Promote, 5));
}

#[test]
fn resume_ends_a_timed_pause_too() {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(600), Step::SetWeight(50)]);
    let mut ctl = controller(policy);
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    // Data at 10% lets the weight rise once the pause ends.
    assert_eq!(feed(&mut ctl, 99, 900, 4, 100, 0).action, Action::Hold);
    assert_eq!(
        ctl.command(Command::Resume, at(101)).unwrap().action,
        Action::SetWeight(50)
    );
}

/// A controller part way through a pause of `[10%, pause 60s, 50%]`, with its state as JSON.
fn paused_state() -> (CanaryPolicy, serde_json::Value) {
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60), Step::SetWeight(50)]);
    let mut ctl = Ctl::new(policy.clone(), vec![judge()]).unwrap();
    assert_eq!(ctl.tick(at(5)).action, Action::SetWeight(10));
    for s in 5..15 {
        assert_eq!(feed(&mut ctl, s, 900, 4, 100, 0).action, Action::Hold);
    }
    (policy, serde_json::to_value(ctl.state()).unwrap())
}

fn restored(policy: &CanaryPolicy, state: serde_json::Value) -> serin_canary::Result<Ctl> {
    let state: ControllerState = serde_json::from_value(state).unwrap();
    Ctl::from_parts(policy.clone(), vec![judge()], state)
}

#[test]
fn an_edited_or_inconsistent_state_is_refused_with_the_field_and_the_reason() {
    use serde_json::json;
    let (policy, saved) = paused_state();
    assert!(restored(&policy, saved.clone()).is_ok());
    let edits: Vec<(&str, serde_json::Value, &str)> = vec![
        ("weight", json!(200), "state.weight"),
        ("stepStartedAt", json!(null), "state.stepStartedAt"),
        ("stepStartedAt", json!(4_000), "state.stepStartedAt"),
        ("startedAt", json!(null), "state.startedAt"),
        ("stepSamples", json!([11]), "state.stepSamples[0]"),
        ("baselineErrors", json!(3), "state.baselineErrors"),
        ("canaryErrors", json!(3), "state.canaryErrors"),
        ("lastAction", json!({"setWeight": 30}), "state.lastAction"),
        ("lastAction", json!("promote"), "state.lastAction"),
        ("phase", json!("promoted"), "state.lastAction"),
        ("phase", json!("rolledBack"), "state.lastAction"),
    ];
    for (field, value, named) in edits {
        let mut state = saved.clone();
        state[field] = value.clone();
        let msg = match restored(&policy, state) {
            Ok(_) => panic!("{field} = {value} was taken"),
            Err(e) => e.to_string(),
        };
        assert!(msg.contains(named), "{field} = {value}: {msg}");
    }
    // A rollout that never started cannot have left its first step.
    let mut state = saved.clone();
    state["startedAt"] = json!(null);
    state["stepStartedAt"] = json!(null);
    let msg = restored(&policy, state).err().unwrap().to_string();
    assert!(msg.contains("state.startedAt"), "{msg}");
    // A weight past 100, a final phase at odds with its last action or its weight.
    let mut state = saved.clone();
    state["weight"] = json!(200);
    let msg = restored(&policy, state).err().unwrap().to_string();
    assert!(msg.contains("200") && msg.contains("100"), "{msg}");
    for (phase, action, weight, named) in [
        ("promoted", json!({"setWeight": 7}), 7, "state.lastAction"),
        ("promoted", json!("promote"), 10, "state.weight"),
        ("rolledBack", json!("rollback"), 10, "state.weight"),
        ("rolledBack", json!("promote"), 0, "state.lastAction"),
    ] {
        let mut state = saved.clone();
        state["phase"] = json!(phase);
        state["lastAction"] = action.clone();
        state["weight"] = json!(weight);
        let msg = restored(&policy, state).err().map(|e| e.to_string());
        assert!(
            msg.as_ref().is_some_and(|m| m.contains(named)),
            "{phase} with {action} at {weight}%: {msg:?}"
        );
    }
    // Final states the controller wrote restore.
    for command in [Command::Abort, Command::Promote] {
        let mut ctl = restored(&policy, saved.clone()).unwrap();
        let d = ctl.command(command, at(20)).unwrap();
        let state = serde_json::to_value(ctl.state()).unwrap();
        let mut again = restored(&policy, state).unwrap();
        assert_eq!(again.tick(at(30)).action, d.action);
    }
}

#[test]
fn a_rollback_no_judge_decided_quotes_no_decisive_evidence() {
    let mut policy = CanaryPolicy::new(vec![Step::SetWeight(10), Step::Pause(Pause::default())]);
    policy.max_duration = Some(Duration::from_secs(600));
    let mut ctl = controller(policy);
    ctl.tick(at(0));
    for s in 0..10 {
        feed(&mut ctl, s, 900, 4, 100, 0);
    }
    let d = ctl.tick(at(601));
    assert_eq!(d.action, Action::Rollback);
    assert!(d.reason.contains("maximum duration"), "{}", d.reason);
    // The judges' standing is there, but none of them decided it.
    assert_eq!(d.evidence.len(), 1);
    assert_eq!(d.decisive_evidence(), None);
}

#[test]
fn a_raise_from_zero_is_paced_as_a_first_weight() {
    // Back to 0% and up again: the second exposure is as fresh as the first.
    let mut policy = CanaryPolicy::new(vec![
        Step::SetWeight(5),
        Step::SetWeight(0),
        Step::SetWeight(50),
    ]);
    let pacing = Pacing {
        exposure_budget: Some(3_000.0),
        ..Pacing::default()
    };
    policy.pacing = Some(pacing.clone());
    let mut ctl = controller(policy);
    // The baseline alone until its error rate sizes the first weight: the budget allows more
    // than 5%, so the first step takes its target.
    let s0 = (0..600)
        .find(|s| feed(&mut ctl, *s, 1_000, 5, 0, 0).action == Action::SetWeight(5))
        .expect("a first weight within the budget");
    let d = feed(&mut ctl, s0 + 1, 950, 5, 50, 0);
    assert_eq!(d.action, Action::SetWeight(0), "{}", d.reason);
    // From 0% again: the budget's weight, not the step's 50%, and the gate before the rest.
    let d = feed(&mut ctl, s0 + 2, 1_000, 5, 0, 0);
    let Action::SetWeight(w) = d.action else {
        panic!("{d:?}");
    };
    assert!(w > 5 && w < 50, "{w}: {}", d.reason);
    assert!(pacing.expected_exposure(f64::from(w) / 100.0, 0.005) <= 3_000.0);
    let (c, b) = (10 * u64::from(w), 10 * (100 - u64::from(w)));
    let d = feed(&mut ctl, s0 + 3, b, 5, c, 0);
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("pacing"), "{}", d.reason);
    assert_eq!(ctl.state().weight(), w);
}

/// A judge whose failures are all informational: no regression it can find reaches the
/// warning band.
fn info_judge() -> SequentialCountJudge {
    SequentialCountJudge::with_mode(
        Metric::ErrorRate,
        serin_canary::sequential::CountMode::PerRequest(
            serin_canary::sequential::CountTestConfig::new(0.05),
        ),
        serin_canary::severity::SeverityBands::new(1_000.0, 1_000.0).unwrap(),
    )
    .unwrap()
}

#[test]
fn an_informational_failure_is_reported_but_neither_rolls_back_nor_holds() {
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(10),
        analysis(600, 1),
        Step::SetWeight(50),
    ]);
    let mut ctl = Ctl::new(policy, vec![info_judge()]).unwrap();
    assert_eq!(ctl.tick(at(0)).action, Action::SetWeight(10));
    let mut rng = Rng::new(4);
    let failed_at = (0..600).find(|s| {
        let d = feed(&mut ctl, *s, 900, rng.poisson(4.5), 100, rng.poisson(2.0));
        assert_ne!(d.action, Action::Rollback, "{}", d.reason);
        d.evidence[0].summary.contains("severity info")
    });
    let s = failed_at.expect("a 4x regression fails");
    assert_eq!(
        ctl.judges()[0].judgement(at(s)).verdict,
        Verdict::Fail(Severity::Info)
    );
    // The analysis runs its course, and the rollout goes on to the end.
    let d = ctl.tick(at(601));
    assert_eq!(d.action, Action::SetWeight(50), "{}", d.reason);
    // The promotion waits for a window at 50%, as a raise does.
    assert_eq!(ctl.tick(at(602)).action, Action::Hold);
    let d = feed(&mut ctl, 602, 500, rng.poisson(2.5), 500, rng.poisson(10.0));
    assert_eq!(d.action, Action::Promote, "{}", d.reason);
    assert!(d.evidence[0].summary.contains("severity info"), "{d:?}");
    // Nor does it refuse a promotion by command.
    let mut ctl = Ctl::new(
        CanaryPolicy::new(vec![Step::SetWeight(10), Step::Pause(Pause::default())]),
        vec![info_judge()],
    )
    .unwrap();
    ctl.tick(at(0));
    let mut rng = Rng::new(4);
    for s in 0..=s {
        feed(&mut ctl, s, 900, rng.poisson(4.5), 100, rng.poisson(2.0));
    }
    assert!(ctl.judges()[0].judgement(at(s)).verdict.is_fail());
    let d = ctl.command(Command::Promote, at(s + 1)).unwrap();
    assert_eq!(d.action, Action::Promote);
}

#[test]
fn a_measurement_one_judge_of_its_metric_rejects_feeds_none_of_them() {
    use serin_canary::sequential::{SequentialJudge, SequentialLatencyJudge};
    let policy = CanaryPolicy::new(vec![Step::SetWeight(20)]);
    // Two judges of one metric, the second of latency sketches: counts are not for it.
    let judges: Vec<SequentialJudge> = vec![
        judge().into(),
        SequentialLatencyJudge::new(Metric::ErrorRate, 0.05, 0.0)
            .unwrap()
            .into(),
    ];
    let mut ctl = CanaryController::new(policy, judges).unwrap();
    ctl.tick(at(0));
    let (judges, state) = (ctl.judges().to_vec(), ctl.state().clone());
    let w = second(0);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 800, 4);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 200, 1);
    let msg = ctl.feed(&b, &c, w.end()).unwrap_err().to_string();
    assert!(
        msg.contains("sequential-latency") && msg.contains("counts"),
        "{msg}"
    );
    assert_eq!(
        ctl.judges(),
        judges.as_slice(),
        "the first judge was not fed"
    );
    assert_eq!(ctl.state(), &state);
}

#[test]
fn a_window_fed_again_feeds_none_of_the_judges() {
    use serin_canary::threshold::{FlaggerAnalysis, FlaggerAnalysisConfig};
    let flagger =
        FlaggerAnalysis::new(FlaggerAnalysisConfig::new(common::flagger_builtins())).unwrap();
    let judges: Vec<Box<dyn Judge>> = vec![Box::new(judge()), Box::new(flagger)];
    let policy = CanaryPolicy::new(vec![Step::SetWeight(20)]);
    let mut ctl = CanaryController::new(policy, judges).unwrap();
    ctl.tick(at(0));
    let w = second(0);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 800, 4);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 200, 1);
    ctl.feed(&b, &c, w.end()).unwrap();
    let (state, evidence) = (ctl.state().clone(), ctl.judges()[0].judgement(w.end()));
    // The window's error rate again: the analysis would refuse a second sample, and the count
    // judge would count its requests twice; the controller feeds it to neither.
    let msg = ctl.feed(&b, &c, w.end()).unwrap_err().to_string();
    assert!(msg.contains("fed once"), "{msg}");
    assert_eq!(ctl.state(), &state);
    assert_eq!(ctl.judges()[0].judgement(w.end()), evidence);
}

/// A judge of several metrics (Flagger's analysis here) that fails on its second metric names
/// that metric when the failure rolls back a held canary, as when it rolls back a moving one.
#[test]
fn a_held_rollback_names_the_metric_a_judge_of_several_failed_on() {
    use serin_canary::threshold::{FlaggerAnalysis, FlaggerAnalysisConfig};
    let mut config = FlaggerAnalysisConfig::new(common::flagger_builtins());
    config.threshold = 1;
    let flagger = FlaggerAnalysis::new(config).unwrap();
    let policy = CanaryPolicy::new(vec![
        Step::SetWeight(20),
        Step::Pause(Pause {
            duration: Some(Duration::from_secs(600)),
        }),
        Step::SetWeight(50),
    ]);
    let mut ctl = CanaryController::new(policy, vec![flagger]).unwrap();
    ctl.tick(at(0));
    let w = second(0);
    let b = counts(Metric::ErrorRate, Track::Stable, w, 800, 0);
    let c = counts(Metric::ErrorRate, Track::Canary, w, 200, 0);
    ctl.feed(&b, &c, w.end()).unwrap();
    let bl = common::latency(Track::Stable, w, &[100.0; 50]);
    let cl = common::latency(Track::Canary, w, &[800.0; 50]);
    ctl.feed(&bl, &cl, w.end()).unwrap();
    let (mut held, mut moving) = (ctl.clone(), ctl);
    let by_tick = moving.tick(w.end());
    let by_held = held.tick_held(w.end());
    assert_eq!(by_held.action, Action::Rollback);
    assert_eq!(by_held.evidence[0].metric, Metric::Latency);
    assert!(by_held.reason.contains("`latency`"), "{}", by_held.reason);
    assert_eq!(by_held.reason, by_tick.reason);
}

/// A hold that waits on a judge lists that judge's evidence first, so that a report's line for
/// the hold shows what it waits on rather than another judge's standing.
#[test]
fn a_hold_on_a_judge_leads_with_that_judge_s_evidence() {
    let latency =
        serin_canary::sequential::SequentialLatencyJudge::new(Metric::Latency, 0.05, 0.0).unwrap();
    let judges: Vec<Box<dyn Judge>> = vec![Box::new(judge()), Box::new(latency)];
    let policy = CanaryPolicy::new(vec![Step::SetWeight(10), pause(60), Step::SetWeight(50)]);
    let mut ctl = CanaryController::new(policy, judges).unwrap();
    ctl.tick(at(0));
    for s in 0..60 {
        let w = second(s);
        let b = counts(Metric::ErrorRate, Track::Stable, w, 900, 1);
        let c = counts(Metric::ErrorRate, Track::Canary, w, 100, 0);
        ctl.feed(&b, &c, w.end()).unwrap();
    }
    // The latency judge has seen nothing at 10%: the raise waits on it.
    let d = ctl.tick(at(60));
    assert_eq!(d.action, Action::Hold, "{}", d.reason);
    assert!(d.reason.contains("sequential-latency"), "{}", d.reason);
    assert_eq!(d.evidence[0].judge, "sequential-latency");
    assert_eq!(d.evidence.len(), 2);
}
