//! An error-spike trigger that learns its baseline over `learnFor` learns nothing after it.

use std::time::Duration;

use serin_signals::{Counts, Measurement, Metric, Observation, Timestamp, Track, Window};
use serin_triggers::{Action, Engine, EngineConfig, TriggerState};

fn errors(end_s: u64, requests: u64, errors: u64) -> Observation {
    Observation::new(
        Metric::ErrorRate,
        Track::Stable,
        Window::ending_at(
            Timestamp::from_millis(end_s * 1_000),
            Duration::from_secs(10),
        ),
        Measurement::Counts(Counts::new(requests, errors).unwrap()),
    )
}

/// A baseline short of `minBaselineRequests` when `learnFor` ends stays unknown: the spike
/// that follows is never taken into it (it would read as the baseline and pass), and the
/// trigger holds on missing evidence, saying why.
#[test]
fn a_spike_after_a_short_learning_window_is_never_learned_as_the_baseline() {
    let config: EngineConfig = serde_json::from_str(
        r#"{"triggers": [{
            "kind": "errorSpike", "id": "spike", "track": "stable", "learnFor": "30s",
            "detector": "ratio", "windowSize": "10s", "minErrorCount": 1,
            "minBaselineRequests": 100, "staleAfter": "30s"
        }]}"#,
    )
    .unwrap();
    let mut engine = Engine::new(config, Timestamp::EPOCH).unwrap();
    let mut asked = Vec::new();
    let mut feed = |engine: &mut Engine, s: u64, obs: Observation| {
        engine.observe(&obs).unwrap();
        engine.tick(Timestamp::from_millis(s * 1_000));
        asked.extend(engine.drain_events());
    };
    // 60 requests at 5% over the learning window.
    for s in [10, 20, 30] {
        feed(&mut engine, s, errors(s, 20, 1));
    }
    // Errors jump to 50%, then stay at 40%: learned, the spike would put the baseline near
    // 33%, and 40% would read as healthy from then on.
    feed(&mut engine, 40, errors(40, 100, 50));
    for s in (50..=80).step_by(10) {
        feed(&mut engine, s, errors(s, 100, 40));
    }
    // Nothing past the learning window is judged healthy, so nothing keeps the trigger
    // fresh: it goes stale and holds, where a baseline learned from the spike would have
    // kept it `ok`, asking for nothing.
    assert!(matches!(
        engine.state("spike"),
        Some(TriggerState::Stale { .. })
    ));
    assert_eq!(engine.current_action(), Some(Action::Hold));
    let stale = asked
        .iter()
        .find(|e| matches!(e.to, TriggerState::Stale { .. }))
        .expect("went stale");
    assert_eq!(stale.action, Some(Action::Hold));
    let reason = &stale.evidence.reason;
    assert!(
        reason.contains("no usable data")
            && reason.contains("60 requests")
            && reason.contains("minBaselineRequests 100"),
        "{reason}"
    );
}
