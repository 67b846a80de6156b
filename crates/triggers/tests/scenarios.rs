//! Replays recorded series from `tests/data/*.json` through the engine and checks what fired.
//!
//! Each file holds the engine config, the steps (observations and probe results, with the `now`
//! each step is ticked at) and the expectations: fires that must happen inside a time range,
//! actions that must never happen, and caps on repeated fires.

use std::path::Path;

use serde::Deserialize;
use serin_signals::{HealthSignal, Observation, Timestamp};
use serin_triggers::{Action, Engine, EngineConfig, Event};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Scenario {
    description: String,
    config: EngineConfig,
    expect: Expect,
    steps: Vec<Step>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Step {
    at: u64,
    #[serde(default)]
    observations: Vec<Observation>,
    #[serde(default)]
    signals: Vec<HealthSignal>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Expect {
    fires: Vec<Fire>,
    never: Vec<Never>,
    max_fires: Vec<MaxFires>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Fire {
    trigger: String,
    action: Action,
    not_before: u64,
    not_after: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Never {
    trigger: Option<String>,
    action: Option<Action>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct MaxFires {
    trigger: String,
    action: Action,
    max: usize,
}

fn replay(s: &Scenario) -> Vec<Event> {
    let mut engine = Engine::new(s.config.clone(), Timestamp::EPOCH).unwrap();
    let mut events = Vec::new();
    for step in &s.steps {
        for o in &step.observations {
            engine.observe(o).unwrap();
        }
        for sig in &step.signals {
            engine.observe_health(sig).unwrap();
        }
        engine.tick(Timestamp::from_millis(step.at));
        events.extend(engine.drain_events());
    }
    events
}

fn check(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    let s: Scenario = serde_json::from_str(&text).unwrap();
    let events = replay(&s);
    let fires: Vec<(&str, Action, u64)> = events
        .iter()
        .filter_map(|e| e.action.map(|a| (e.trigger.as_str(), a, e.at.as_millis())))
        .collect();
    let ctx = format!("{name} ({}): fired {fires:?}", s.description);
    for f in &s.expect.fires {
        let first = fires
            .iter()
            .find(|(t, a, _)| *t == f.trigger && *a == f.action)
            .map(|(_, _, at)| *at);
        let at = first.unwrap_or_else(|| panic!("{} never fired {}: {ctx}", f.trigger, f.action));
        assert!(
            (f.not_before..=f.not_after).contains(&at),
            "{} fired {} at {at}, expected in [{}, {}]: {ctx}",
            f.trigger,
            f.action,
            f.not_before,
            f.not_after
        );
        let ev = events
            .iter()
            .find(|e| e.trigger == f.trigger && e.action == Some(f.action))
            .unwrap();
        assert_eq!(ev.evidence.trigger, f.trigger);
        assert!(!ev.evidence.reason.is_empty());
    }
    for n in &s.expect.never {
        let hit = fires.iter().find(|(t, a, _)| {
            n.trigger.as_deref().is_none_or(|want| want == *t)
                && n.action.is_none_or(|want| want == *a)
        });
        assert!(hit.is_none(), "unexpected {hit:?}: {ctx}");
    }
    for m in &s.expect.max_fires {
        let n = fires
            .iter()
            .filter(|(t, a, _)| *t == m.trigger && *a == m.action)
            .count();
        assert!(
            n <= m.max,
            "{} fired {} {n} times, at most {}: {ctx}",
            m.trigger,
            m.action,
            m.max
        );
    }
    // The replay is deterministic.
    assert_eq!(replay(&s), events);
}

#[test]
fn bad_canary_error_rate() {
    check("bad_canary_error_rate.json");
}

#[test]
fn shared_database_outage_holds() {
    check("shared_database_outage.json");
}

#[test]
fn canary_breaks_dependency_rolls_back() {
    check("canary_breaks_dependency.json");
}

#[test]
fn metrics_outage_goes_stale() {
    check("metrics_outage.json");
}

#[test]
fn cpu_flapping_is_held_back_by_the_cooldown() {
    check("cpu_flapping.json");
}

#[test]
fn readiness_crashloop() {
    check("readiness_crashloop.json");
}
