//! Behaviour of the engine as a whole: transitions, cooldowns across triggers, staleness,
//! atomic errors, snapshots and replay.

use std::time::Duration;

use serin_signals::{
    Counts, Gauge, HealthSignal, Measurement, Metric, Observation, Probe, ProbeStatus, Timestamp,
    Track, Window,
};
use serin_triggers::{Action, Engine, EngineConfig, Error, Event, TriggerState};

fn ts(s: u64) -> Timestamp {
    Timestamp::from_millis(s * 1_000)
}

fn engine(json: &str) -> Engine {
    let config: EngineConfig = serde_json::from_str(json).unwrap();
    Engine::new(config, Timestamp::EPOCH).unwrap()
}

fn errors(track: Track, end_s: u64, requests: u64, errors: u64) -> Observation {
    Observation::new(
        Metric::ErrorRate,
        track,
        Window::ending_at(ts(end_s), Duration::from_secs(10)),
        Measurement::Counts(Counts::new(requests, errors).unwrap()),
    )
}

fn cpu(end_s: u64, cores: f64) -> Observation {
    Observation::new(
        Metric::Cpu,
        Track::Canary,
        Window::ending_at(ts(end_s), Duration::from_secs(10)),
        Measurement::Gauge(Gauge::new(cores).unwrap()),
    )
}

fn actions(engine: &mut Engine) -> Vec<(String, Action, Timestamp)> {
    engine
        .drain_events()
        .filter_map(|e| e.action.map(|a| (e.trigger, a, e.at)))
        .collect()
}

const BANDS: &str = r#"{"triggers": [
    {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
     "value":0.20,"warnValue":0.10,"duration":"20s","cooldown":"1m"},
    {"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":1,
     "warnPercent":80,"rollbackPercent":95,"cooldown":"5m"}
]}"#;

#[test]
fn warn_then_rollback_with_evidence() {
    let mut e = engine(BANDS);
    let mut seen = Vec::new();
    for (s, errs) in [
        (10, 50),
        (20, 150),
        (30, 150),
        (40, 150),
        (50, 250),
        (60, 250),
        (70, 250),
    ] {
        e.observe(&errors(Track::Canary, s, 1_000, errs)).unwrap();
        e.observe(&cpu(s, 0.5)).unwrap();
        e.tick(ts(s));
        seen.extend(e.drain_events());
    }
    let fired: Vec<&Event> = seen.iter().filter(|ev| ev.action.is_some()).collect();
    assert_eq!(fired.len(), 2, "{fired:#?}");
    assert_eq!((fired[0].action, fired[0].at), (Some(Action::Warn), ts(40)));
    assert_eq!(fired[0].evidence.since, Some(ts(20)));
    assert_eq!(fired[0].evidence.threshold, Some(0.10));
    assert_eq!(
        (fired[1].action, fired[1].at),
        (Some(Action::Rollback), ts(70))
    );
    assert_eq!(fired[1].evidence.observed, Some(0.25));
    assert_eq!(fired[1].evidence.threshold, Some(0.20));
    assert!(fired[1].evidence.to_string().contains("errors"));
    // Pending was reported before each fire.
    assert!(seen.iter().any(|ev| matches!(
        ev.to,
        TriggerState::Pending {
            action: Action::Warn,
            ..
        }
    )));
    assert_eq!(e.current_action(), Some(Action::Rollback));
}

#[test]
fn a_cooldown_never_hides_another_triggers_critical_condition() {
    let mut e = engine(BANDS);
    // CPU fires a rollback, clears, and sits in a 5-minute cooldown.
    e.observe(&cpu(10, 0.99)).unwrap();
    e.observe(&cpu(20, 0.10)).unwrap();
    assert!(matches!(
        e.state("cpu"),
        Some(TriggerState::Cooldown { .. })
    ));
    // The error-rate trigger still fires on its own schedule.
    e.observe(&errors(Track::Canary, 30, 100, 50)).unwrap();
    e.observe(&errors(Track::Canary, 50, 100, 50)).unwrap();
    let got = actions(&mut e);
    assert_eq!(
        got,
        vec![
            ("cpu".to_owned(), Action::Rollback, ts(10)),
            ("errors".to_owned(), Action::Rollback, ts(50)),
        ]
    );
    // And CPU itself does not fire again within its cooldown.
    e.observe(&cpu(60, 0.99)).unwrap();
    e.observe(&cpu(300, 0.99)).unwrap();
    assert!(actions(&mut e).is_empty());
    e.observe(&cpu(311, 0.99)).unwrap();
    let cpu_fires: Vec<_> = actions(&mut e)
        .into_iter()
        .filter(|a| a.0 == "cpu")
        .collect();
    assert_eq!(
        cpu_fires,
        vec![("cpu".to_owned(), Action::Rollback, ts(311))]
    );
}

#[test]
fn missing_data_is_stale_per_trigger_policy() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"hold","metric":"error_rate","operator":"gt","value":0.1,
         "staleAfter":"30s"},
        {"kind":"metricThreshold","id":"warn","metric":"error_rate","operator":"gt","value":0.1,
         "staleAfter":"30s","onMissingData":"warn"},
        {"kind":"metricThreshold","id":"fire","metric":"error_rate","operator":"gt","value":0.1,
         "staleAfter":"30s","onMissingData":"fire"}
    ]}"#,
    );
    e.observe(&errors(Track::Canary, 10, 100, 1)).unwrap();
    // No requests is no data, not a healthy 0%.
    e.observe(&errors(Track::Canary, 20, 0, 0)).unwrap();
    e.tick(ts(40));
    assert!(actions(&mut e).is_empty());
    e.tick(ts(41));
    let stale: Vec<Event> = e.drain_events().collect();
    for ev in &stale {
        let r = &ev.evidence.reason;
        assert!(
            r.contains("no usable data")
                && r.contains("30000 ms")
                && r.contains("1970-01-01T00:00:10"),
            "{r}"
        );
    }
    let got: Vec<(String, Action, Timestamp)> = stale
        .into_iter()
        .filter_map(|e| e.action.map(|a| (e.trigger, a, e.at)))
        .collect();
    assert_eq!(
        got,
        vec![
            ("hold".to_owned(), Action::Hold, ts(41)),
            ("warn".to_owned(), Action::Warn, ts(41)),
            ("fire".to_owned(), Action::Rollback, ts(41)),
        ]
    );
    assert_eq!(e.current_action(), Some(Action::Rollback));
    e.tick(ts(60));
    assert!(e.drain_events().next().is_none(), "stale is reported once");
    // Data returns: the stale action counts as a fire, so each trigger cools down, then is ok.
    e.observe(&errors(Track::Canary, 50, 100, 1)).unwrap();
    assert!(
        e.states()
            .all(|(_, s)| matches!(s, TriggerState::Cooldown { .. }))
    );
    // Ticks 41 s apart, further than staleAfter: the caller gives its time before feeding.
    e.advance_clock(ts(101));
    e.observe(&errors(Track::Canary, 101, 100, 1)).unwrap();
    e.tick(ts(101));
    assert!(e.states().all(|(_, s)| s == TriggerState::Ok));
    assert_eq!(e.current_action(), None);
}

#[test]
fn a_measurement_no_trigger_can_read_changes_nothing() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"a","metric":"cpu","operator":"gt","value":0.5},
        {"kind":"resourceUsage","id":"b","resource":"cpu","capacity":1,"rollbackPercent":50}
    ]}"#,
    );
    let before = serde_json::to_string(&e).unwrap();
    let bad = Observation::new(
        Metric::Cpu,
        Track::Canary,
        Window::ending_at(ts(10), Duration::from_secs(10)),
        Measurement::Counts(Counts::new(10, 10).unwrap()),
    );
    let err = e.observe(&bad).unwrap_err();
    assert!(matches!(err, Error::MeasurementMismatch { .. }));
    // Neither reads counts as CPU; the first trigger routed to it names the mismatch.
    let msg = err.to_string();
    assert!(
        msg.contains("`a`") && msg.contains("cpu") && msg.contains("canary"),
        "{msg}"
    );
    assert_eq!(serde_json::to_string(&e).unwrap(), before);
}

#[test]
fn bad_configs_are_refused_with_the_path() {
    let dup = r#"{"triggers": [
        {"kind":"metricThreshold","id":"a","metric":"cpu","operator":"gt","value":0.5},
        {"kind":"metricThreshold","id":"a","metric":"cpu","operator":"gt","value":0.5}
    ]}"#;
    let msg = serde_json::from_str::<EngineConfig>(dup)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`a`") && msg.contains("triggers[1]"), "{msg}");
    // A config built in code is checked by the engine as one read is on load.
    let one: serin_triggers::TriggerConfig = serde_json::from_str(
        r#"{"kind":"metricThreshold","id":"a","metric":"cpu","operator":"gt","value":0.5}"#,
    )
    .unwrap();
    let config = EngineConfig {
        triggers: vec![one.clone(), one],
    };
    let msg = Engine::new(config, Timestamp::EPOCH)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("`a`") && msg.contains("triggers[1]"), "{msg}");
    let bad = r#"{"triggers": [
        {"kind":"metricThreshold","id":"a","metric":"cpu","operator":"gt","value":0.5},
        {"kind":"errorSpike","id":"b","baselineErrorRate":1.5}
    ]}"#;
    let msg = serde_json::from_str::<EngineConfig>(bad)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("triggers[1].baselineErrorRate") && msg.contains("1.5"),
        "{msg}"
    );
}

const MIXED: &str = r#"{"triggers": [
    {"kind":"errorSpike","id":"spike","baselineTrack":"stable","increasePercentage":50,
     "minErrorCount":5},
    {"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":2},
    {"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":2},
    {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt","value":0.05,
     "duration":"20s"}
]}"#;

/// A deterministic mixed stream: healthy at first, then the canary degrades.
fn feed(e: &mut Engine, from: u64, to: u64) {
    for s in (from..to).step_by(5) {
        let bad = s >= 200;
        e.observe(&errors(Track::Stable, s, 1_000, 10 + s % 3))
            .unwrap();
        e.observe(&errors(
            Track::Canary,
            s,
            1_000,
            if bad { 60 } else { 10 + s % 4 },
        ))
        .unwrap();
        let status = if bad && s % 10 == 0 {
            ProbeStatus::Fail
        } else {
            ProbeStatus::Pass
        };
        e.observe_health(
            &HealthSignal::new(Track::Canary, Probe::Readiness, status, ts(s)).with_instance("c-0"),
        )
        .unwrap();
        for track in [Track::Stable, Track::Canary] {
            let st = if s >= 300 {
                ProbeStatus::Fail
            } else {
                ProbeStatus::Pass
            };
            e.observe_health(&HealthSignal::new(
                track,
                Probe::Dependency("postgres".into()),
                st,
                ts(s),
            ))
            .unwrap();
        }
        e.tick(ts(s));
    }
}

#[test]
fn a_restarted_engine_resumes_exactly() {
    let mut straight = engine(MIXED);
    feed(&mut straight, 0, 400);
    let expected: Vec<Event> = straight.drain_events().collect();

    let mut first = engine(MIXED);
    feed(&mut first, 0, 210);
    let mut got: Vec<Event> = first.drain_events().collect();
    let saved = serde_json::to_string(&first).unwrap();
    drop(first);
    let mut resumed: Engine = serde_json::from_str(&saved).unwrap();
    assert_eq!(serde_json::to_string(&resumed).unwrap(), saved);
    feed(&mut resumed, 210, 400);
    got.extend(resumed.drain_events());
    assert_eq!(got, expected);
    // The stream did make things happen: a spike rollback and a shared-outage hold.
    assert!(
        expected
            .iter()
            .any(|e| e.trigger == "spike" && e.action == Some(Action::Rollback))
    );
    assert!(
        expected
            .iter()
            .any(|e| e.trigger == "db" && e.action == Some(Action::Hold))
    );
    assert!(
        !expected
            .iter()
            .any(|e| e.trigger == "db" && e.action == Some(Action::Rollback))
    );
}

#[test]
fn replay_is_deterministic() {
    let run = || {
        let mut e = engine(MIXED);
        feed(&mut e, 0, 400);
        (
            e.drain_events().collect::<Vec<_>>(),
            serde_json::to_string(&e).unwrap(),
        )
    };
    assert_eq!(run(), run());
}

#[test]
fn a_tampered_snapshot_is_refused() {
    let e = engine(MIXED);
    let mut v: serde_json::Value = serde_json::to_value(&e).unwrap();
    v["triggers"][1]["trigger"]["healthCheck"]["config"]["failureThreshold"] = 0.into();
    let msg = serde_json::from_value::<Engine>(v).unwrap_err().to_string();
    assert!(msg.contains("triggers[1].failureThreshold"), "{msg}");
    let mut v: serde_json::Value = serde_json::to_value(&e).unwrap();
    v["triggers"][0]["trigger"]["errorSpike"]["config"]["windowSize"] = "2m".into();
    let msg = serde_json::from_value::<Engine>(v).unwrap_err().to_string();
    assert!(
        msg.contains("triggers[0]") && msg.contains("windowSize"),
        "{msg}"
    );
}

#[test]
fn a_snapshot_with_an_unknown_key_in_a_state_is_refused() {
    let mut e = engine(MIXED);
    feed(&mut e, 0, 210);
    let v: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert!(serde_json::from_value::<Engine>(v.clone()).is_ok());
    // A key no state has (a cooldown's end on a healthy trigger, say) is damage or another
    // format, not something to drop in silence.
    let mut bad = v.clone();
    assert_eq!(bad["triggers"][2]["lifecycle"]["state"]["state"], "ok");
    bad["triggers"][2]["lifecycle"]["state"]["until"] = serde_json::json!(1_000);
    let msg = serde_json::from_value::<Engine>(bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("until"), "{msg}");
    let mut bad = v;
    bad["events"][0]["to"]["actoin"] = "rollback".into();
    let msg = serde_json::from_value::<Engine>(bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("actoin"), "{msg}");
}

#[test]
fn memory_per_trigger_stays_small_at_default_windows() {
    let mut e = engine(MIXED);
    feed(&mut e, 0, 400);
    let per = e.memory_bytes() / e.len();
    assert!(per <= 4 * 1024, "{per} bytes per trigger");
    // A health check that has seen more instances than it remembers stays bounded.
    let mut h =
        engine(r#"{"triggers": [{"kind":"healthCheck","id":"h","checkType":"readiness"}]}"#);
    let empty = h.memory_bytes();
    for i in 0..500u64 {
        let name = format!("checkout-7d9f8c6b5-{i:05}");
        h.observe_health(
            &HealthSignal::new(Track::Canary, Probe::Readiness, ProbeStatus::Fail, ts(i))
                .with_instance(name),
        )
        .unwrap();
    }
    let full = h.memory_bytes();
    assert!(full > empty && full <= 4 * 1024, "{empty} -> {full} bytes");
}

fn readiness(instance: &str, status: ProbeStatus, s: u64) -> HealthSignal {
    HealthSignal::new(Track::Canary, Probe::Readiness, status, ts(s)).with_instance(instance)
}

fn postgres(track: Track, status: ProbeStatus, s: u64) -> HealthSignal {
    HealthSignal::new(track, Probe::Dependency("postgres".into()), status, ts(s))
}

#[test]
fn a_probe_result_read_at_every_tick_counts_once() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":3,
         "checkInterval":"30s"},
        {"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":3}
    ]}"#,
    );
    // The source answers its latest result at each tick: the probe of 30 s, three times.
    for now in [30, 35, 40] {
        e.observe_health(&readiness("canary-0", ProbeStatus::Fail, 30))
            .unwrap();
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, 30))
            .unwrap();
        e.tick(ts(now));
    }
    assert!(actions(&mut e).is_empty());
    assert_eq!(e.state("ready"), Some(TriggerState::Ok));
    // Two more probes make three failures.
    for now in [60, 90] {
        e.observe_health(&readiness("canary-0", ProbeStatus::Fail, now))
            .unwrap();
        e.tick(ts(now));
    }
    assert_eq!(
        actions(&mut e),
        vec![("ready".to_owned(), Action::Rollback, ts(90))]
    );
}

#[test]
fn a_baseline_pass_from_before_an_outage_does_not_make_it_ours() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":3}
    ]}"#,
    );
    e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, 30))
        .unwrap();
    e.tick(ts(30));
    for s in [35, 40, 45] {
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, s))
            .unwrap();
        e.tick(ts(s));
    }
    assert_eq!(
        actions(&mut e),
        vec![("db".to_owned(), Action::Hold, ts(45))]
    );
}

#[test]
fn late_and_repeated_windows_are_not_fresh_data() {
    let json = r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.10,"duration":"30s","staleAfter":"1m"}
    ]}"#;
    // A healthy window that ended before a breach began, arriving late, does not clear it.
    let mut e = engine(json);
    e.observe(&errors(Track::Canary, 40, 100, 50)).unwrap();
    e.tick(ts(45));
    e.observe(&errors(Track::Canary, 35, 100, 0)).unwrap();
    e.observe(&errors(Track::Canary, 70, 100, 50)).unwrap();
    assert_eq!(
        actions(&mut e),
        vec![("errors".to_owned(), Action::Rollback, ts(70))]
    );
    // Old data sent again does not keep the trigger fresh: it goes stale a minute after 10 s.
    let mut e = engine(json);
    e.observe(&errors(Track::Canary, 10, 100, 1)).unwrap();
    e.tick(ts(40));
    e.observe(&errors(Track::Canary, 10, 100, 1)).unwrap();
    e.observe(&errors(Track::Canary, 5, 100, 1)).unwrap();
    e.tick(ts(70));
    assert!(actions(&mut e).is_empty());
    e.tick(ts(71));
    assert_eq!(
        actions(&mut e),
        vec![("errors".to_owned(), Action::Hold, ts(71))]
    );
}

#[test]
fn a_late_probe_of_another_instance_still_counts() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":3}
    ]}"#,
    );
    for s in [21, 26] {
        e.observe_health(&readiness("b", ProbeStatus::Fail, s))
            .unwrap();
    }
    e.tick(ts(30));
    // Sources list results by instance: a's newer pass comes before b's third failure.
    e.observe_health(&readiness("a", ProbeStatus::Pass, 33))
        .unwrap();
    e.observe_health(&readiness("b", ProbeStatus::Fail, 31))
        .unwrap();
    assert_eq!(
        actions(&mut e),
        vec![("ready".to_owned(), Action::Rollback, ts(33))]
    );
}

#[test]
fn a_hold_breached_again_inside_its_cooldown_still_holds() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":2,
         "cooldown":"2m","staleAfter":"1m"}
    ]}"#,
    );
    // Both tracks fail: a shared outage asks to hold.
    for s in [5, 10] {
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Fail, s))
            .unwrap();
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, s))
            .unwrap();
        e.tick(ts(s));
    }
    assert_eq!(
        actions(&mut e),
        vec![("db".to_owned(), Action::Hold, ts(10))]
    );
    assert_eq!(e.current_action(), Some(Action::Hold));
    // One passing check clears it; the outage comes back inside the cooldown.
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, 15))
        .unwrap();
    e.tick(ts(15));
    assert_eq!(e.current_action(), None);
    for s in [20, 25] {
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Fail, s))
            .unwrap();
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Fail, s))
            .unwrap();
        e.tick(ts(s));
    }
    // The cooldown keeps the hold from being asked for again, not the condition from holding.
    assert!(actions(&mut e).is_empty());
    assert!(matches!(e.state("db"), Some(TriggerState::Cooldown { .. })));
    assert_eq!(e.current_action(), Some(Action::Hold));
    // Once the dependency recovers, nothing holds any more.
    e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, 30))
        .unwrap();
    e.tick(ts(30));
    assert_eq!(e.current_action(), None);
}

#[test]
fn a_hold_eased_to_a_warning_stops_holding() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.20,"warnValue":0.10,"action":"hold","duration":"20s","cooldown":"5m"}
    ]}"#,
    );
    for s in [10, 20, 30] {
        e.observe(&errors(Track::Canary, s, 1_000, 250)).unwrap();
        e.tick(ts(s));
    }
    assert_eq!(
        actions(&mut e),
        vec![("errors".to_owned(), Action::Hold, ts(30))]
    );
    assert_eq!(e.current_action(), Some(Action::Hold));
    // The error rate eases to the warn band: the hold is released, the warning stays.
    e.observe(&errors(Track::Canary, 40, 1_000, 150)).unwrap();
    e.tick(ts(40));
    let events: Vec<Event> = e.drain_events().collect();
    assert_eq!(events.len(), 1, "{events:#?}");
    let down = &events[0];
    assert_eq!(down.action, None);
    assert_eq!(
        (down.from, down.to),
        (
            TriggerState::Firing {
                action: Action::Hold,
                since: ts(30)
            },
            TriggerState::Firing {
                action: Action::Warn,
                since: ts(40)
            }
        )
    );
    assert_eq!(
        (down.evidence.threshold, down.evidence.since),
        (Some(0.10), Some(ts(10)))
    );
    assert_eq!(e.current_action(), Some(Action::Warn));
    assert_eq!(e.data_action(), Some(Action::Warn));
    // Healthy again: nothing is asked for.
    e.observe(&errors(Track::Canary, 50, 1_000, 10)).unwrap();
    e.tick(ts(50));
    assert!(matches!(
        e.state("errors"),
        Some(TriggerState::Cooldown {
            action: Action::Hold,
            ..
        })
    ));
    assert_eq!(e.current_action(), None);
}

#[test]
fn an_error_spike_followed_by_silence_does_not_fire() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"errorSpike","id":"spike","baselineErrorRate":0.02,"minErrorCount":1,
         "detector":"ratio","duration":"20s","staleAfter":"1m"}
    ]}"#,
    );
    e.observe(&errors(Track::Canary, 10, 1_000, 300)).unwrap();
    e.tick(ts(10));
    // The canary stops serving: windows without requests neither end the breach nor extend it.
    for s in [20, 30, 40] {
        e.observe(&errors(Track::Canary, s, 0, 0)).unwrap();
        e.tick(ts(s));
    }
    assert!(actions(&mut e).is_empty());
    assert_eq!(e.current_action(), None);
    // A breaching window at the end of the duration fires, from the first breach.
    e.observe(&errors(Track::Canary, 50, 1_000, 300)).unwrap();
    let fired: Vec<Event> = e.drain_events().filter(|ev| ev.action.is_some()).collect();
    assert_eq!(fired.len(), 1, "{fired:#?}");
    assert_eq!(
        (fired[0].action, fired[0].at, fired[0].evidence.since),
        (Some(Action::Rollback), ts(50), Some(ts(10)))
    );
}

#[test]
fn a_hold_after_missing_data_is_not_lost_to_the_stale_cooldown() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.10,"action":"hold","cooldown":"5m","staleAfter":"30s"}
    ]}"#,
    );
    // The metrics go missing: stale, holding; the data itself asks for nothing.
    e.tick(ts(31));
    assert_eq!(e.current_action(), Some(Action::Hold));
    assert_eq!(e.data_action(), None);
    // They come back breaching the hold level inside the stale action's cooldown.
    e.observe(&errors(Track::Canary, 40, 1_000, 500)).unwrap();
    e.tick(ts(40));
    assert_eq!(e.current_action(), Some(Action::Hold));
    assert_eq!(e.data_action(), Some(Action::Hold));
    e.observe(&errors(Track::Canary, 50, 1_000, 10)).unwrap();
    e.tick(ts(50));
    assert_eq!(e.current_action(), None);
}

#[test]
fn data_that_keeps_going_missing_asks_once_per_cooldown() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.10,"cooldown":"5m","staleAfter":"30s","onMissingData":"warn"},
        {"kind":"metricThreshold","id":"strict","metric":"error_rate","operator":"gt",
         "value":0.10,"cooldown":"5m","staleAfter":"30s","onMissingData":"fire"}
    ]}"#,
    );
    e.observe(&errors(Track::Canary, 10, 1_000, 500)).unwrap();
    e.tick(ts(10));
    let fired = actions(&mut e);
    assert_eq!(
        fired,
        vec![
            ("errors".to_owned(), Action::Rollback, ts(10)),
            ("strict".to_owned(), Action::Rollback, ts(10)),
        ]
    );
    // The source flaps: data, then none, three times within the cooldown. The rollback was
    // asked for already; neither the warning nor a second rollback is asked for again.
    for s in [50, 100, 150] {
        e.advance_clock(ts(s));
        e.observe(&errors(Track::Canary, s, 1_000, 10)).unwrap();
        e.tick(ts(s));
        e.tick(ts(s + 31));
        assert!(matches!(
            e.state("errors"),
            Some(TriggerState::Stale { .. })
        ));
    }
    assert!(actions(&mut e).is_empty());
    // Still stale, so the missing-data action still counts.
    assert_eq!(e.current_action(), Some(Action::Rollback));
    // After the cooldown, going stale asks again.
    e.advance_clock(ts(400));
    e.observe(&errors(Track::Canary, 400, 1_000, 10)).unwrap();
    e.tick(ts(400));
    e.tick(ts(431));
    assert_eq!(
        actions(&mut e),
        vec![
            ("errors".to_owned(), Action::Warn, ts(431)),
            ("strict".to_owned(), Action::Rollback, ts(431)),
        ]
    );
}

#[test]
fn a_snapshot_with_times_past_its_clock_is_refused() {
    let mut e = engine(MIXED);
    feed(&mut e, 0, 100);
    let v: serde_json::Value = serde_json::to_value(&e).unwrap();
    let clock = v["triggers"][3]["lifecycle"]["clock"].clone();
    assert!(
        serde_json::from_value::<Engine>(v.clone()).is_ok(),
        "{clock}"
    );
    // A rollback dated a year ahead would keep the trigger in cooldown for a year, and last
    // data dated there would make every real window look late: the trigger would be silent.
    let year_ahead = serde_json::to_value(ts(100 + 365 * 24 * 3600)).unwrap();
    for (field, value) in [
        (
            "fired",
            serde_json::json!({"action": "rollback", "at": year_ahead}),
        ),
        ("lastData", year_ahead.clone()),
    ] {
        let mut bad = v.clone();
        bad["triggers"][3]["lifecycle"][field] = value;
        let msg = serde_json::from_value::<Engine>(bad)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("triggers[3].lifecycle") && msg.contains("later than the clock"),
            "{field}: {msg}"
        );
    }
}

#[test]
fn a_breach_held_through_the_cooldown_fires_at_the_tick_that_ends_it() {
    let mut e = engine(
        r#"{"triggers": [{"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":1,
            "warnPercent":80,"rollbackPercent":95,"cooldown":"5m"}]}"#,
    );
    e.observe(&cpu(10, 0.99)).unwrap();
    e.observe(&cpu(20, 0.10)).unwrap();
    // Breached again inside the 5-minute cooldown (until 310 s), and still breached after it.
    for s in (30..=300).step_by(30) {
        e.observe(&cpu(s, 0.99)).unwrap();
        e.tick(ts(s));
    }
    e.tick(ts(309));
    assert_eq!(
        actions(&mut e),
        vec![("cpu".to_owned(), Action::Rollback, ts(10))]
    );
    // The first evaluation at the cooldown's end asks again, not the next input.
    e.tick(ts(310));
    assert_eq!(
        actions(&mut e),
        vec![("cpu".to_owned(), Action::Rollback, ts(310))]
    );
    assert!(matches!(
        e.state("cpu"),
        Some(TriggerState::Firing {
            action: Action::Rollback,
            ..
        })
    ));
}

#[test]
fn a_snapshot_with_probe_times_past_its_clock_is_refused() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"healthCheck","id":"ready","checkType":"readiness","failureThreshold":3},
        {"kind":"dependencyFailure","id":"db","dependency":"postgres","failureThreshold":3}
    ]}"#,
    );
    for s in [5, 10] {
        e.observe_health(&readiness("canary-0", ProbeStatus::Pass, s))
            .unwrap();
        e.observe_health(&readiness("canary-1", ProbeStatus::Pass, s))
            .unwrap();
        e.observe_health(&postgres(Track::Stable, ProbeStatus::Pass, s))
            .unwrap();
        e.observe_health(&postgres(Track::Canary, ProbeStatus::Pass, s))
            .unwrap();
        e.tick(ts(s));
    }
    let v: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert!(serde_json::from_value::<Engine>(v.clone()).is_ok());
    // A probe dated a year ahead would make every real result of its instance (or track) look
    // already seen: a crashlooping instance would never count as failing, and a baseline never
    // seen passing again would make every failure of the canary a shared outage.
    let year_ahead = serde_json::to_value(ts(10 + 365 * 24 * 3600)).unwrap();
    for (trigger, pointer) in [
        (0, "/triggers/0/trigger/healthCheck/instances/0/lastSeen"),
        (
            1,
            "/triggers/1/trigger/dependencyFailure/baseline/lastProbe",
        ),
    ] {
        let mut bad = v.clone();
        *bad.pointer_mut(pointer).expect(pointer) = year_ahead.clone();
        let msg = serde_json::from_value::<Engine>(bad)
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains(&format!("triggers[{trigger}]")) && msg.contains("later than the clock"),
            "{pointer}: {msg}"
        );
    }
}

#[test]
fn a_snapshot_with_spike_state_past_its_clock_is_refused() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"errorSpike","id":"pre","track":"stable","learnFor":"30s"},
        {"kind":"errorSpike","id":"vs","baselineTrack":"stable"}
    ]}"#,
    );
    for s in (10..=60).step_by(10) {
        e.observe(&errors(Track::Stable, s, 1_000, 10)).unwrap();
        e.observe(&errors(Track::Canary, s, 1_000, 10)).unwrap();
        e.tick(ts(s));
    }
    // The baseline's next window comes first, as it should: it may lie past the clock.
    e.observe(&errors(Track::Stable, 70, 1_000, 10)).unwrap();
    let v: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert!(serde_json::from_value::<Engine>(v.clone()).is_ok());
    // A learning window begun a year ahead would judge every window healthy by definition for a
    // year; a window end dated there would make every real window look already counted, and a
    // bucket dated there would drop every count that falls into it.
    let year_ahead = serde_json::to_value(ts(60 + 365 * 24 * 3600)).unwrap();
    let bucket_ahead = serde_json::json!(u64::MAX / 2);
    for (trigger, pointer, value, reason) in [
        (
            0,
            "/triggers/0/trigger/errorSpike/state/learning/started",
            &year_ahead,
            "later than the clock",
        ),
        (
            0,
            "/triggers/0/trigger/errorSpike/state/lastWatched",
            &year_ahead,
            "later than the clock",
        ),
        (
            1,
            "/triggers/1/trigger/errorSpike/state/lastJudged",
            &year_ahead,
            "later than the clock",
        ),
        (
            1,
            "/triggers/1/trigger/errorSpike/state/window/slots/0/epoch",
            &bucket_ahead,
            "later than the clock",
        ),
        (
            1,
            "/triggers/1/trigger/errorSpike/state/cusum/statistic",
            &serde_json::json!(-1.0),
            "statistic",
        ),
        (
            1,
            "/triggers/1/trigger/errorSpike/state/cusum/statistic",
            &serde_json::json!(1e9),
            "statistic",
        ),
    ] {
        let mut bad = v.clone();
        *bad.pointer_mut(pointer).expect(pointer) = value.clone();
        let msg = serde_json::from_value::<Engine>(bad)
            .unwrap_err()
            .to_string();
        // Named by the trigger's place, as its state check says it, or, for a CUSUM whose own
        // type refuses it as it is read, by the CUSUM's field.
        let named =
            msg.contains(&format!("triggers[{trigger}]")) || msg.contains("cusum.statistic");
        assert!(named && msg.contains(reason), "{pointer}: {msg}");
    }
}

/// An error-spike trigger against a 2% baseline (a minute's `staleAfter`, two minutes'
/// cooldown, and `detector` settings), rolled back by 30% errors at 10 s.
fn spiked_at_10s(detector: &str) -> Engine {
    let mut e = engine(&format!(
        r#"{{"triggers": [
        {{"kind":"errorSpike","id":"spike","baselineErrorRate":0.02,"minErrorCount":1,
         {detector},"cooldown":"2m","staleAfter":"1m"}}
    ]}}"#
    ));
    e.observe(&errors(Track::Canary, 10, 1_000, 300)).unwrap();
    e.tick(ts(10));
    assert_eq!(
        actions(&mut e),
        vec![("spike".to_owned(), Action::Rollback, ts(10))]
    );
    e
}

#[test]
fn cusum_evidence_from_before_a_gap_does_not_fire_on_healthy_data() {
    let mut e = spiked_at_10s(r#""averageRunLength":10"#);
    // The canary stops serving for five minutes (rolled back, say): windows without requests,
    // then nothing at all.
    for s in (20..=100).step_by(10) {
        e.observe(&errors(Track::Canary, s, 0, 0)).unwrap();
        e.tick(ts(s));
    }
    e.tick(ts(310));
    e.drain_events();
    // It serves again at the baseline rate: the spike's evidence ended with the gap, as the
    // breach did, and a window at 2% is no spike.
    e.observe(&errors(Track::Canary, 320, 1_000, 20)).unwrap();
    e.tick(ts(320));
    assert_eq!(actions(&mut e), vec![]);
    assert_eq!(e.data_action(), None);
}

/// A trigger tells when it last took usable data: never, for one that saw only windows
/// without requests or none at all, though it stays `Ok` all along.
#[test]
fn last_data_is_the_newest_usable_input_taken() {
    let mut e = engine(BANDS);
    assert_eq!(e.last_data("errors"), None);
    e.observe(&errors(Track::Canary, 10, 0, 0)).unwrap();
    e.tick(ts(10));
    assert_eq!(e.state("errors"), Some(TriggerState::Ok));
    assert_eq!(e.last_data("errors"), None, "a window without requests");
    e.observe(&errors(Track::Canary, 20, 100, 1)).unwrap();
    e.observe(&errors(Track::Canary, 30, 0, 0)).unwrap();
    assert_eq!(e.last_data("errors"), Some(ts(20)));
    assert_eq!(e.last_data("cpu"), None);
    assert_eq!(e.last_data("no-such-trigger"), None);
}

/// The ratio rule's window ends with a gap in the data longer than `staleAfter`, as the CUSUM's
/// evidence does: kept, a spike from before the silence made the first healthy window after it
/// breach and roll back a second time.
#[test]
fn ratio_evidence_from_before_a_gap_does_not_fire_on_healthy_data() {
    let mut e = spiked_at_10s(r#""detector":"ratio","windowSize":"5m""#);
    // The canary serves nothing for two and a half minutes (rolled back, say): longer than
    // staleAfter, shorter than windowSize.
    for s in (20..=150).step_by(10) {
        e.observe(&errors(Track::Canary, s, 0, 0)).unwrap();
        e.tick(ts(s));
    }
    e.drain_events();
    // At the baseline's rate again: a window at 2% is no spike.
    e.observe(&errors(Track::Canary, 160, 1_000, 20)).unwrap();
    e.tick(ts(160));
    assert_eq!(actions(&mut e), vec![]);
    assert_eq!(e.data_action(), None);
}

/// A failure both tracks share is not a spike, however total: with every request failing on
/// the baseline track too, no error rate can stand out, and neither detector fires.
#[test]
fn a_total_outage_on_both_tracks_is_not_a_spike() {
    let mut all = vec![];
    for detector in ["cusum", "ratio"] {
        let mut e = engine(&format!(
            r#"{{"triggers": [
            {{"kind":"errorSpike","id":"spike","baselineTrack":"stable","detector":"{detector}"}}
        ]}}"#
        ));
        let mut fired = vec![];
        for s in (10..=300).step_by(10) {
            // The baseline's window first, as the trigger asks; both at 100% errors.
            e.observe(&errors(Track::Stable, s, 1_000, 1_000)).unwrap();
            e.observe(&errors(Track::Canary, s, 1_000, 1_000)).unwrap();
            e.tick(ts(s));
            fired.extend(actions(&mut e));
        }
        all.push((detector, fired));
    }
    assert_eq!(all, vec![("cusum", vec![]), ("ratio", vec![])]);
}

/// A gap in the data longer than `staleAfter` ends a breach whatever input comes after it: a
/// window without requests concludes nothing of its own, but the trigger no longer waits on
/// the breach (pending) nor asks for it (firing).
#[test]
fn a_gap_ended_by_an_empty_window_ends_the_breach() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"pending","metric":"error_rate","operator":"gt",
         "value":0.20,"duration":"30s","staleAfter":"1m"},
        {"kind":"metricThreshold","id":"holding","metric":"error_rate","operator":"gt",
         "value":0.20,"action":"hold","duration":"10s","cooldown":"1m","staleAfter":"1m"}
    ]}"#,
    );
    e.observe(&errors(Track::Canary, 10, 1_000, 500)).unwrap();
    e.observe(&errors(Track::Canary, 20, 1_000, 500)).unwrap();
    assert!(matches!(
        e.state("pending"),
        Some(TriggerState::Pending { .. })
    ));
    assert!(matches!(
        e.state("holding"),
        Some(TriggerState::Firing {
            action: Action::Hold,
            ..
        })
    ));
    e.drain_events();
    // 90 s later, before any tick: a window without requests.
    e.observe(&errors(Track::Canary, 110, 0, 0)).unwrap();
    assert_eq!(e.state("pending"), Some(TriggerState::Ok));
    assert_eq!(e.state("holding"), Some(TriggerState::Ok));
    assert_eq!(e.current_action(), None);
    let moves: Vec<_> = e
        .drain_events()
        .map(|ev| (ev.trigger, ev.from.name(), ev.to.name(), ev.action, ev.at))
        .collect();
    assert_eq!(
        moves,
        vec![
            ("pending".to_owned(), "pending", "ok", None, ts(110)),
            ("holding".to_owned(), "firing", "ok", None, ts(110)),
        ]
    );
}

/// A window stamped ahead of the engine's clock by more than `staleAfter` (a source whose
/// clock runs an hour fast) is refused and changes nothing: taken, it made every real window
/// after it late, so the trigger neither fired on a real breach nor went stale.
#[test]
fn a_window_stamped_far_ahead_is_refused_and_real_breaches_still_fire() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.20,"duration":"20s","cooldown":"1m","staleAfter":"1m"}
    ]}"#,
    );
    e.observe(&errors(Track::Canary, 10, 1_000, 0)).unwrap();
    e.tick(ts(10));
    let before = serde_json::to_value(&e).unwrap();
    // One healthy window whose end is an hour ahead of the clock the caller ticks with.
    let err = e
        .observe(&errors(Track::Canary, 3_600, 1_000, 0))
        .unwrap_err();
    assert!(matches!(err, Error::AheadOfClock { .. }), "{err:?}");
    let msg = err.to_string();
    for part in [
        "error_rate on track canary",
        "1970-01-01T01:00:00",
        "1970-01-01T00:00:10",
        "`errors`",
        "60000 ms",
    ] {
        assert!(msg.contains(part), "{part}: {msg}");
    }
    assert_eq!(
        serde_json::to_value(&e).unwrap(),
        before,
        "refused, it changed nothing"
    );
    // A window up to staleAfter past the last tick is the one read up to the next tick's now.
    e.observe(&errors(Track::Canary, 70, 1_000, 0)).unwrap();
    e.tick(ts(70));
    // Then real windows at 50% errors, each followed by a tick at its end: they fire.
    let mut fired = vec![];
    for s in (80..=120).step_by(10) {
        e.observe(&errors(Track::Canary, s, 1_000, 500)).unwrap();
        e.tick(ts(s));
        fired.extend(actions(&mut e));
    }
    assert_eq!(
        fired,
        vec![("errors".to_owned(), Action::Rollback, ts(100))]
    );
    // Probe results are refused past the clock alike.
    let mut h = engine(
        r#"{"triggers": [{"kind":"healthCheck","id":"ready","checkType":"readiness",
        "checkInterval":"5s"}]}"#,
    );
    h.tick(ts(10));
    let err = h
        .observe_health(&readiness("canary-0", ProbeStatus::Pass, 3_600))
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("readiness probe result of instance canary-0 on track canary")
            && msg.contains("`ready`")
            && msg.contains("15000 ms"),
        "{msg}"
    );
    assert_eq!(h.last_data("ready"), None);
}

/// A caller whose ticks are further apart than a trigger's `staleAfter` tells the engine its
/// `now` before feeding what it read up to it.
#[test]
fn a_caller_that_advances_the_clock_first_may_tick_seldom() {
    let mut e = engine(
        r#"{"triggers": [{"kind":"healthCheck","id":"ready","checkType":"readiness",
        "checkInterval":"5s","failureThreshold":1}]}"#,
    );
    e.tick(ts(0));
    assert!(matches!(
        e.observe_health(&readiness("canary-0", ProbeStatus::Fail, 60)),
        Err(Error::AheadOfClock { .. })
    ));
    e.advance_clock(ts(60));
    assert!(
        actions(&mut e).is_empty(),
        "advancing the clock judges nothing"
    );
    e.observe_health(&readiness("canary-0", ProbeStatus::Fail, 60))
        .unwrap();
    e.tick(ts(60));
    assert_eq!(
        actions(&mut e),
        vec![("ready".to_owned(), Action::Rollback, ts(60))]
    );
}

/// An input already older than `staleAfter` at the engine's clock changes nothing, also when
/// only [`Engine::advance_clock`] moved that clock: a window or probe result that old would
/// have found the trigger stale had it come in time, so it neither fires nor keeps it fresh.
#[test]
fn an_input_older_than_stale_after_at_an_advanced_clock_changes_nothing() {
    let mut e = engine(
        r#"{"triggers": [
        {"kind":"metricThreshold","id":"errors","metric":"error_rate","operator":"gt",
         "value":0.20,"cooldown":"1m","staleAfter":"1m"},
        {"kind":"healthCheck","id":"ready","checkType":"readiness","checkInterval":"5s",
         "failureThreshold":1}
    ]}"#,
    );
    e.tick(ts(0));
    e.advance_clock(ts(100));
    let before = serde_json::to_value(&e).unwrap();
    // A window that ended 70 s before the clock, and a probe result 16 s before it.
    e.observe(&errors(Track::Canary, 30, 1_000, 500)).unwrap();
    e.observe_health(&readiness("canary-0", ProbeStatus::Fail, 84))
        .unwrap();
    assert_eq!(actions(&mut e), vec![]);
    assert_eq!(serde_json::to_value(&e).unwrap(), before);
    assert_eq!((e.last_data("errors"), e.last_data("ready")), (None, None));
    // Inputs within staleAfter of the clock are taken.
    e.observe(&errors(Track::Canary, 40, 1_000, 500)).unwrap();
    e.observe_health(&readiness("canary-0", ProbeStatus::Fail, 85))
        .unwrap();
    assert_eq!(
        actions(&mut e),
        vec![
            ("errors".to_owned(), Action::Rollback, ts(40)),
            ("ready".to_owned(), Action::Rollback, ts(85)),
        ]
    );
}

/// A firing or cooling trigger holds the fire it answers: a snapshot that drops that fire, or
/// lowers it below the level in force, is one no run writes, and read back it would let the
/// same rollback be asked for again at once, cooldown or not.
#[test]
fn a_snapshot_whose_state_outranks_its_fire_is_refused() {
    let mut e = engine(
        r#"{"triggers": [{"kind":"resourceUsage","id":"cpu","resource":"cpu","capacity":1,
            "warnPercent":80,"rollbackPercent":95,"cooldown":"5m"}]}"#,
    );
    e.observe(&cpu(10, 0.99)).unwrap();
    e.tick(ts(10));
    assert_eq!(actions(&mut e).len(), 1);
    let firing: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert_eq!(
        firing["triggers"][0]["lifecycle"]["state"]["state"],
        "firing"
    );
    e.observe(&cpu(20, 0.10)).unwrap();
    e.tick(ts(20));
    assert!(actions(&mut e).is_empty());
    let cooling: serde_json::Value = serde_json::to_value(&e).unwrap();
    assert_eq!(
        cooling["triggers"][0]["lifecycle"]["state"]["state"],
        "cooldown"
    );
    for v in [&firing, &cooling] {
        assert!(serde_json::from_value::<Engine>(v.clone()).is_ok());
        let warn = serde_json::json!({"action": "warn", "at": ts(10)});
        for fired in [serde_json::Value::Null, warn] {
            let mut bad = v.clone();
            bad["triggers"][0]["lifecycle"]["fired"] = fired.clone();
            let msg = match serde_json::from_value::<Engine>(bad) {
                Ok(mut restored) => {
                    // Read back, the trigger asks for the rollback again inside its cooldown.
                    restored.observe(&cpu(30, 0.99)).unwrap();
                    panic!(
                        "{fired} accepted; asked again: {:?}",
                        actions(&mut restored)
                    );
                }
                Err(e) => e.to_string(),
            };
            assert!(
                msg.contains("triggers[0].lifecycle") && msg.contains("fired"),
                "{fired}: {msg}"
            );
        }
    }
    // A cooldown that ends elsewhere than its fire's cooldown does is refused too.
    let mut bad = cooling.clone();
    bad["triggers"][0]["lifecycle"]["state"]["until"] = serde_json::to_value(ts(30)).unwrap();
    let msg = serde_json::from_value::<Engine>(bad)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("state.until"), "{msg}");
}
