//! Triggers that merge streams (a health check its instances, a dependency check its tracks)
//! judge what they watch: the baseline's view of a dependency never keeps a silent canary
//! fresh, an `unknown` result never hides a later pass, and a gap longer than `staleAfter` ends
//! a dependency check's failure streak as it ends a breach (a health check's streak outlasts
//! the gaps of an instance's restarts, the failure it is there to catch).

use serin_signals::{HealthSignal, Probe, ProbeStatus, Timestamp, Track};
use serin_triggers::{Action, Engine, EngineConfig, TriggerState};

fn ts(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1_000)
}

fn engine(json: &str) -> Engine {
    let config: EngineConfig = serde_json::from_str(json).unwrap();
    Engine::new(config, Timestamp::EPOCH).unwrap()
}

fn actions(engine: &mut Engine) -> Vec<(String, Action, Timestamp)> {
    engine
        .drain_events()
        .filter_map(|e| e.action.map(|a| (e.trigger, a, e.at)))
        .collect()
}

fn readiness(instance: &str, status: ProbeStatus, s: u64) -> HealthSignal {
    HealthSignal::new(Track::Canary, Probe::Readiness, status, ts(s)).with_instance(instance)
}

fn postgres(track: Track, status: ProbeStatus, s: u64) -> HealthSignal {
    HealthSignal::new(track, Probe::Dependency("postgres".into()), status, ts(s))
}

const DB: &str = r#"{"triggers": [{"kind":"dependencyFailure","id":"db","dependency":"postgres",
    "failureThreshold":3,"staleAfter":"30s","cooldown":"1s"}]}"#;

#[test]
fn a_silent_canary_goes_stale_however_often_the_baseline_reports() {
    let mut e = engine(DB);
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, 5))
        .unwrap();
    let stale_at = (10..=90).step_by(5).find(|s| {
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, *s))
            .unwrap();
        e.tick(ts(*s));
        matches!(e.state("db"), Some(TriggerState::Stale { .. }))
    });
    assert_eq!(stale_at, Some(40), "the canary's last result came at 5 s");
}

#[test]
fn an_unknown_result_does_not_hide_a_later_pass() {
    let mut e = engine(
        r#"{"triggers": [{"kind":"healthCheck","id":"ready","checkType":"readiness",
        "failureThreshold":3,"action":"hold"}]}"#,
    );
    for s in [5, 10, 15] {
        e.observe_health(&readiness("a", ProbeStatus::Fail, s))
            .unwrap();
    }
    e.tick(ts(16));
    assert_eq!(e.current_action(), Some(Action::Hold));
    // Instance b's `unknown` at 20 s is listed before instance a's pass at 19 s.
    e.observe_health(&readiness("b", ProbeStatus::Unknown, 20))
        .unwrap();
    e.observe_health(&readiness("a", ProbeStatus::Pass, 19))
        .unwrap();
    e.tick(ts(21));
    assert_eq!(e.current_action(), None, "{:?}", e.state("ready"));
}

#[test]
fn a_gap_longer_than_stale_after_ends_a_dependency_check_s_streak() {
    let mut e = engine(DB);
    for s in [5, 10] {
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, s))
            .unwrap();
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, s))
            .unwrap();
        e.tick(ts(s));
    }
    e.tick(ts(100));
    let _ = actions(&mut e);
    e.advance_clock(ts(600));
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, 600))
        .unwrap();
    e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, 600))
        .unwrap();
    e.tick(ts(600));
    assert_eq!(
        actions(&mut e),
        vec![],
        "one failure after ten minutes of silence"
    );
}

#[test]
fn a_call_metric_of_latency_is_refused() {
    let err = serde_json::from_str::<EngineConfig>(
        r#"{"triggers": [{"kind":"dependencyFailure","id":"db","dependency":"postgres",
        "callMetric":"latency","maxCallErrorRate":0.1}]}"#,
    )
    .map_err(|e| e.to_string())
    .and_then(|c| {
        Engine::new(c, Timestamp::EPOCH)
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .unwrap_err();
    assert!(err.contains("triggers[0].callMetric"), "{err}");
}

/// A snapshot of a merged trigger taken right after it was fed reads back: the baseline's view
/// of a dependency, or an `unknown` probe result, moves the trigger's own clock past the data
/// time its verdict stands for, and the engine's clock moves with it.
#[test]
fn an_engine_fed_newer_baseline_or_unknown_results_resumes() {
    let mut e = engine(DB);
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, 10))
        .unwrap();
    e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, 11))
        .unwrap();
    let saved = serde_json::to_string(&e).unwrap();
    if let Err(err) = serde_json::from_str::<Engine>(&saved) {
        panic!("dependency: the engine's own snapshot is refused: {err}");
    }

    let mut e =
        engine(r#"{"triggers": [{"kind":"healthCheck","id":"ready","checkType":"readiness"}]}"#);
    e.observe_health(&readiness("a", ProbeStatus::Pass, 10))
        .unwrap();
    e.observe_health(&readiness("b", ProbeStatus::Unknown, 11))
        .unwrap();
    let saved = serde_json::to_string(&e).unwrap();
    if let Err(err) = serde_json::from_str::<Engine>(&saved) {
        panic!("health check: the engine's own snapshot is refused: {err}");
    }
}

/// The same after a tick, when a probe's completion time is a little ahead of the caller's
/// `now` (probe times stamped by another machine's clock).
#[test]
fn a_baseline_probe_stamped_after_the_tick_still_resumes() {
    let mut e = engine(DB);
    let at = Timestamp::from_millis;
    let pg = |track, ms| {
        HealthSignal::new(
            track,
            Probe::Dependency("postgres".into()),
            ProbeStatus::Pass,
            at(ms),
        )
    };
    e.observe_health(&pg(Track::Canary, 10_000)).unwrap();
    e.observe_health(&pg(Track::Stable, 10_400)).unwrap();
    e.tick(at(10_300));
    let saved = serde_json::to_string(&e).unwrap();
    if let Err(err) = serde_json::from_str::<Engine>(&saved) {
        panic!("the engine's own snapshot is refused: {err}");
    }
}

/// A probe result already older than `staleAfter` at the engine's clock arrives too late to
/// count: a trigger that merges streams keeps it out of its failure streak, as a trigger of one
/// stream keeps a window as old out of its breach.
#[test]
fn probe_results_stale_on_arrival_change_nothing() {
    // A health check's staleAfter is 15 s here (three check intervals).
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":3,
         "checkInterval":"5s"}
    ]}"#,
    );
    e.observe_health(&readiness("canary-0", ProbeStatus::Pass, 95))
        .unwrap();
    e.tick(ts(100));
    // Results from 40 s and 45 s of an instance not heard from yet arrive only now.
    e.observe_health(&readiness("canary-1", ProbeStatus::Fail, 40))
        .unwrap();
    e.observe_health(&readiness("canary-1", ProbeStatus::Fail, 45))
        .unwrap();
    e.tick(ts(100));
    // One fresh failure of canary-1: one failure taken, not three.
    e.observe_health(&readiness("canary-1", ProbeStatus::Fail, 100))
        .unwrap();
    e.tick(ts(100));
    assert_eq!(actions(&mut e), vec![], "state {:?}", e.state("ready"));

    // A dependency check (staleAfter 30 s) gone stale after both tracks passed at 70 s.
    let mut e = engine(DB);
    e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, 70))
        .unwrap();
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, 70))
        .unwrap();
    e.tick(ts(110));
    assert!(matches!(e.state("db"), Some(TriggerState::Stale { .. })));
    let _ = actions(&mut e);
    // The baseline passes at 110 s; the canary's failures from 72 s and 78 s arrive only
    // then, and one from 100 s (close enough to them to continue their streak).
    e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, 110))
        .unwrap();
    for s in [72, 78, 100] {
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, s))
            .unwrap();
    }
    // Past the cooldown of the stale trigger's hold.
    e.tick(ts(115));
    assert_eq!(actions(&mut e), vec![], "state {:?}", e.state("db"));
}

/// A source that probes the dependency from each instance gives one check per instance and
/// round, as `failureThreshold` says: three instances failing three rounds are nine checks,
/// whether their results carry the round's time or come listed by instance rather than by
/// time. Each instance's result read again is still the same check.
#[test]
fn a_dependency_probed_from_each_instance_counts_each_instance_s_check() {
    let mut e = engine(
        r#"{"triggers": [{"kind":"dependencyFailure","id":"db","dependency":"postgres",
        "failureThreshold":9,"staleAfter":"30s"}]}"#,
    );
    let from = |instance: &str, status, ms: u64| {
        HealthSignal::new(
            Track::Canary,
            Probe::Dependency("postgres".into()),
            status,
            Timestamp::from_millis(ms),
        )
        .with_instance(instance)
    };
    let mut fired = Vec::new();
    for round in [10_000u64, 20_000, 30_000] {
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, round / 1_000))
            .unwrap();
        // Listed by instance: `c` finished first, `a` and `b` at the round's time.
        for (instance, ms) in [("a", round), ("b", round), ("c", round - 3)] {
            // Read twice, as a source asked at each tick answers its latest result again.
            for _ in 0..2 {
                e.observe_health(&from(instance, ProbeStatus::Fail, ms))
                    .unwrap();
            }
        }
        e.tick(Timestamp::from_millis(round));
        fired.extend(actions(&mut e));
    }
    assert_eq!(
        fired,
        vec![("db".to_owned(), Action::Rollback, ts(30))],
        "{:?}",
        e.state("db")
    );
}
